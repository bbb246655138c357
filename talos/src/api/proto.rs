//! The few Talos API messages the provisioner uses, written from the Talos gRPC
//! API reference (packages `common` and `machine`), field numbers as published.

/// `google.protobuf.Empty`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Empty {}

/// `google.rpc.Status` (details omitted).
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

/// `common.Metadata`: which node answered, and its per-node error if any.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Metadata {
    #[prost(string, tag = "1")]
    pub hostname: String,
    #[prost(string, tag = "2")]
    pub error: String,
    #[prost(message, optional, tag = "3")]
    pub status: Option<RpcStatus>,
}

/// `machine.VersionInfo`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct VersionInfo {
    #[prost(string, tag = "1")]
    pub tag: String,
    #[prost(string, tag = "2")]
    pub sha: String,
    #[prost(string, tag = "3")]
    pub built: String,
    #[prost(string, tag = "4")]
    pub go_version: String,
    #[prost(string, tag = "5")]
    pub os: String,
    #[prost(string, tag = "6")]
    pub arch: String,
}

/// `machine.PlatformInfo`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PlatformInfo {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub mode: String,
}

/// `machine.Version`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Version {
    #[prost(message, optional, tag = "1")]
    pub metadata: Option<Metadata>,
    #[prost(message, optional, tag = "2")]
    pub version: Option<VersionInfo>,
    #[prost(message, optional, tag = "3")]
    pub platform: Option<PlatformInfo>,
}

/// `machine.VersionResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct VersionResponse {
    #[prost(message, repeated, tag = "1")]
    pub messages: Vec<Version>,
}

/// `machine.BootstrapRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BootstrapRequest {
    #[prost(bool, tag = "1")]
    pub recover_etcd: bool,
    #[prost(bool, tag = "2")]
    pub recover_skip_hash_check: bool,
}

/// `machine.Bootstrap`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Bootstrap {
    #[prost(message, optional, tag = "1")]
    pub metadata: Option<Metadata>,
}

/// `machine.BootstrapResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BootstrapResponse {
    #[prost(message, repeated, tag = "1")]
    pub messages: Vec<Bootstrap>,
}

/// `machine.EtcdMemberListRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EtcdMemberListRequest {
    #[prost(bool, tag = "1")]
    pub query_local: bool,
}

/// `machine.EtcdMember`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EtcdMember {
    #[prost(uint64, tag = "2")]
    pub id: u64,
    #[prost(string, tag = "3")]
    pub hostname: String,
    #[prost(string, repeated, tag = "4")]
    pub peer_urls: Vec<String>,
    #[prost(string, repeated, tag = "5")]
    pub client_urls: Vec<String>,
    #[prost(bool, tag = "6")]
    pub is_learner: bool,
}

/// `machine.EtcdMembers`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EtcdMembers {
    #[prost(message, optional, tag = "1")]
    pub metadata: Option<Metadata>,
    #[prost(string, repeated, tag = "2")]
    pub legacy_members: Vec<String>,
    #[prost(message, repeated, tag = "3")]
    pub members: Vec<EtcdMember>,
}

/// `machine.EtcdMemberListResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EtcdMemberListResponse {
    #[prost(message, repeated, tag = "1")]
    pub messages: Vec<EtcdMembers>,
}

/// `machine.ServiceHealth` (last_change omitted).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ServiceHealth {
    #[prost(bool, tag = "1")]
    pub unknown: bool,
    #[prost(bool, tag = "2")]
    pub healthy: bool,
    #[prost(string, tag = "3")]
    pub last_message: String,
}

/// `machine.ServiceInfo` (events omitted).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ServiceInfo {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, tag = "2")]
    pub state: String,
    #[prost(message, optional, tag = "4")]
    pub health: Option<ServiceHealth>,
}

/// `machine.ServiceList`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ServiceList {
    #[prost(message, optional, tag = "1")]
    pub metadata: Option<Metadata>,
    #[prost(message, repeated, tag = "2")]
    pub services: Vec<ServiceInfo>,
}

/// `machine.ServiceListResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ServiceListResponse {
    #[prost(message, repeated, tag = "1")]
    pub messages: Vec<ServiceList>,
}

/// gRPC method paths of `machine.MachineService`.
pub mod paths {
    pub const VERSION: &str = "/machine.MachineService/Version";
    pub const BOOTSTRAP: &str = "/machine.MachineService/Bootstrap";
    pub const ETCD_MEMBER_LIST: &str = "/machine.MachineService/EtcdMemberList";
    pub const SERVICE_LIST: &str = "/machine.MachineService/ServiceList";
}
