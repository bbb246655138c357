//! The parts of Hetzner Cloud API objects the provisioner reads and writes.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub type Labels = BTreeMap<String, String>;

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Action {
    pub id: u64,
    pub command: String,
    pub status: String,
    #[serde(default)]
    pub progress: u32,
    #[serde(default)]
    pub error: Option<ActionError>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct ActionError {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct NamedRef {
    pub id: u64,
    pub name: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Location {
    pub id: u64,
    pub name: String,
    #[serde(default)]
    pub network_zone: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ServerType {
    pub id: u64,
    pub name: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub deprecated: Option<bool>,
    /// Locations where this type can be ordered.
    #[serde(default)]
    pub locations: Vec<ServerTypeLocation>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ServerTypeLocation {
    pub name: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Image {
    pub id: u64,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub created: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub labels: Labels,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Server {
    pub id: u64,
    pub name: String,
    pub status: String,
    pub labels: Labels,
    pub server_type: NamedRef,
    #[serde(default)]
    pub image: Option<ImageRef>,
    pub location: NamedRef,
    #[serde(default)]
    pub placement_group: Option<NamedRef>,
    pub public_net: ServerPublicNet,
    #[serde(default)]
    pub private_net: Vec<ServerPrivateNet>,
    #[serde(default)]
    pub protection: Protection,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ImageRef {
    pub id: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
pub struct Protection {
    #[serde(default)]
    pub delete: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ServerPublicNet {
    #[serde(default)]
    pub ipv4: Option<serde_json::Value>,
    #[serde(default)]
    pub ipv6: Option<Ipv6Info>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Ipv6Info {
    pub ip: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ServerPrivateNet {
    pub network: u64,
    #[serde(default)]
    pub ip: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Network {
    pub id: u64,
    pub name: String,
    pub ip_range: String,
    pub labels: Labels,
    #[serde(default)]
    pub subnets: Vec<Subnet>,
    #[serde(default)]
    pub servers: Vec<u64>,
    #[serde(default)]
    pub protection: Protection,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Subnet {
    #[serde(rename = "type")]
    pub kind: String,
    pub ip_range: String,
    pub network_zone: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct PlacementGroup {
    pub id: u64,
    pub name: String,
    pub labels: Labels,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub servers: Vec<u64>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Firewall {
    pub id: u64,
    pub name: String,
    pub labels: Labels,
    #[serde(default)]
    pub rules: Vec<FirewallRule>,
    #[serde(default)]
    pub applied_to: Vec<FirewallResource>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct FirewallRule {
    pub direction: String,
    pub protocol: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_ips: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destination_ips: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct FirewallResource {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<LabelSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<IdRef>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct LabelSelector {
    pub selector: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct IdRef {
    pub id: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct LoadBalancer {
    pub id: u64,
    pub name: String,
    pub labels: Labels,
    #[serde(default)]
    pub private_net: Vec<LbPrivateNet>,
    #[serde(default)]
    pub targets: Vec<LbTarget>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct LbPrivateNet {
    pub network: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct LbTarget {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub server: Option<IdRef>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Volume {
    pub id: u64,
    pub name: String,
    pub labels: Labels,
    #[serde(default)]
    pub server: Option<u64>,
}

/// Request body of `POST /servers`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CreateServer {
    pub name: String,
    pub server_type: String,
    pub image: String,
    pub location: String,
    pub labels: Labels,
    pub networks: Vec<u64>,
    pub placement_group: u64,
    pub public_net: CreatePublicNet,
    pub user_data: String,
    pub start_after_create: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CreatePublicNet {
    pub enable_ipv4: bool,
    pub enable_ipv6: bool,
}

/// Request body of `POST /networks`.
#[derive(Debug, Clone, Serialize)]
pub struct CreateNetwork {
    pub name: String,
    pub ip_range: String,
    pub labels: Labels,
    pub subnets: Vec<Subnet>,
}

/// Request body of `POST /placement_groups`.
#[derive(Debug, Clone, Serialize)]
pub struct CreatePlacementGroup {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub labels: Labels,
}

/// Request body of `POST /firewalls`.
#[derive(Debug, Clone, Serialize)]
pub struct CreateFirewall {
    pub name: String,
    pub labels: Labels,
    pub rules: Vec<FirewallRule>,
    pub apply_to: Vec<FirewallResource>,
}
