//! Pure planning: desired state (from the spec) against observed state (from the
//! API, found by ownership labels) gives a serialisable list of steps.

use crate::hcloud::types::{
    Firewall, FirewallResource, FirewallRule, LabelSelector, Labels, LoadBalancer, Network,
    PlacementGroup, Server, Subnet, Volume,
};
use crate::spec::{short_hash, ClusterSpec};
use crate::userdata::{Node, Role};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

pub const LABEL_CLUSTER: &str = "cluster";
pub const LABEL_MANAGED_BY: &str = "managed-by";
pub const MANAGED_BY: &str = "provisioner";
pub const LABEL_ROLE: &str = "role";
pub const LABEL_POOL: &str = "pool";
pub const LABEL_HASH: &str = "spec-hash";
pub const LABEL_PHASE: &str = "firewall-phase";
/// Label the hcloud CCM puts on the load balancers it creates.
pub const CCM_LB_LABEL: &str = "hcloud-ccm/service-uid";

/// Selector of everything this cluster owns.
pub fn owned_selector(cluster: &str) -> String {
    format!("{LABEL_CLUSTER}={cluster},{LABEL_MANAGED_BY}={MANAGED_BY}")
}

/// Selector the firewall uses to find the cluster's servers.
pub fn server_selector(cluster: &str) -> String {
    format!(
        "{},{LABEL_ROLE} in (control-plane,worker)",
        owned_selector(cluster)
    )
}

fn base_labels(cluster: &str, role: &str) -> Labels {
    let mut l = Labels::new();
    l.insert(LABEL_CLUSTER.into(), cluster.into());
    l.insert(LABEL_MANAGED_BY.into(), MANAGED_BY.into());
    l.insert(LABEL_ROLE.into(), role.into());
    l
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DesiredServer {
    pub node: Node,
    pub server_type: String,
    pub image: u64,
    pub placement_group: String,
    pub labels: Labels,
    /// sha256 prefix of the user data (the data itself is not part of the plan).
    pub user_data_hash: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DesiredNetwork {
    pub name: String,
    pub ip_range: String,
    pub subnet: Subnet,
    pub labels: Labels,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DesiredGroup {
    pub name: String,
    pub labels: Labels,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DesiredFirewall {
    pub name: String,
    pub labels: Labels,
    pub bootstrap_rules: Vec<FirewallRule>,
    pub locked_rules: Vec<FirewallRule>,
    pub apply_to: Vec<FirewallResource>,
}

/// Everything `up` should make exist.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Desired {
    pub cluster: String,
    pub network: DesiredNetwork,
    pub groups: Vec<DesiredGroup>,
    pub firewall: DesiredFirewall,
    pub servers: Vec<DesiredServer>,
}

/// What exists, owned by this cluster (found by label selector).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Observed {
    pub networks: Vec<Network>,
    pub groups: Vec<PlacementGroup>,
    pub firewalls: Vec<Firewall>,
    pub servers: Vec<Server>,
    /// Only filled for `down --include-cluster-created`.
    pub load_balancers: Vec<LoadBalancer>,
    pub volumes: Vec<Volume>,
}

pub fn cp_group(cluster: &str) -> String {
    format!("{cluster}-cp")
}
pub fn pool_group(cluster: &str, pool: &str) -> String {
    format!("{cluster}-w-{pool}")
}
pub fn cp_name(cluster: &str, i: u32) -> String {
    format!("{cluster}-cp-{i}")
}
pub fn worker_name(cluster: &str, pool: &str, i: u32) -> String {
    format!("{cluster}-w-{pool}-{i}")
}

/// The nodes of a spec, control plane first.
pub fn nodes(spec: &ClusterSpec) -> Vec<Node> {
    let mut out = Vec::new();
    for i in 1..=spec.control_plane.count {
        out.push(Node {
            name: cp_name(&spec.name, i),
            role: Role::ControlPlane,
            pool: None,
            index: i,
        });
    }
    for p in &spec.worker_pools {
        for i in 1..=p.count {
            out.push(Node {
                name: worker_name(&spec.name, &p.name, i),
                role: Role::Worker,
                pool: Some(p.name.clone()),
                index: i,
            });
        }
    }
    out
}

/// Firewall rules: ICMP always; the Talos and Kubernetes APIs from the admin
/// sources only while bootstrapping.
pub fn firewall_rules(spec: &ClusterSpec, bootstrap: bool) -> Vec<FirewallRule> {
    let mut rules = vec![FirewallRule {
        direction: "in".into(),
        protocol: "icmp".into(),
        port: None,
        source_ips: vec!["::/0".into()],
        destination_ips: vec![],
        description: Some("ICMPv6 (path MTU discovery, neighbour discovery)".into()),
    }];
    if bootstrap && !spec.firewall.admin_sources.is_empty() {
        for (port, what) in [("50000", "Talos API"), ("6443", "Kubernetes API")] {
            rules.push(FirewallRule {
                direction: "in".into(),
                protocol: "tcp".into(),
                port: Some(port.into()),
                source_ips: spec.firewall.admin_sources.clone(),
                destination_ips: vec![],
                description: Some(format!("{what} from admin sources (bootstrap only)")),
            });
        }
    }
    rules
}

/// Computes the desired state. `image` is the resolved image id; `user_data_hash`
/// gives each node's user-data hash.
pub fn desired(
    spec: &ClusterSpec,
    image: u64,
    user_data_hash: &dyn Fn(&Node) -> String,
) -> Desired {
    let c = &spec.name;
    let mut net_labels = base_labels(c, "network");
    let subnet = Subnet {
        kind: "cloud".into(),
        ip_range: spec.network.subnet.clone(),
        network_zone: spec.network_zone(),
    };
    net_labels.insert(
        LABEL_HASH.into(),
        short_hash(&format!("{}|{:?}", spec.network.ip_range, subnet)),
    );
    let mut groups = vec![DesiredGroup {
        name: cp_group(c),
        labels: base_labels(c, "placement-group"),
    }];
    for p in spec.worker_pools.iter().filter(|p| p.count > 0) {
        let mut l = base_labels(c, "placement-group");
        l.insert(LABEL_POOL.into(), p.name.clone());
        groups.push(DesiredGroup {
            name: pool_group(c, &p.name),
            labels: l,
        });
    }
    let mut fw_labels = base_labels(c, "firewall");
    fw_labels.insert(LABEL_PHASE.into(), "bootstrap".into());
    let firewall = DesiredFirewall {
        name: c.clone(),
        labels: fw_labels,
        bootstrap_rules: firewall_rules(spec, true),
        locked_rules: firewall_rules(spec, false),
        apply_to: vec![FirewallResource {
            kind: "label_selector".into(),
            label_selector: Some(LabelSelector {
                selector: server_selector(c),
            }),
            server: None,
        }],
    };
    let mut servers = Vec::new();
    for node in nodes(spec) {
        let (server_type, group) = match &node.pool {
            None => (spec.control_plane.server_type.clone(), cp_group(c)),
            Some(pool) => (
                spec.worker_pools
                    .iter()
                    .find(|p| &p.name == pool)
                    .map(|p| p.server_type.clone())
                    .unwrap_or_default(),
                pool_group(c, pool),
            ),
        };
        let ud = user_data_hash(&node);
        let mut labels = base_labels(c, node.role.label());
        if let Some(pool) = &node.pool {
            labels.insert(LABEL_POOL.into(), pool.clone());
        }
        labels.insert(
            LABEL_HASH.into(),
            short_hash(&format!("{server_type}|{image}|{ud}")),
        );
        servers.push(DesiredServer {
            node,
            server_type,
            image,
            placement_group: group,
            labels,
            user_data_hash: ud,
        });
    }
    Desired {
        cluster: c.clone(),
        network: DesiredNetwork {
            name: c.clone(),
            ip_range: spec.network.ip_range.clone(),
            subnet,
            labels: net_labels,
        },
        groups,
        firewall,
        servers,
    }
}

/// One change. Ids refer to existing resources; names of resources created by
/// earlier steps are resolved when the plan runs.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Step {
    CreateNetwork {
        name: String,
        ip_range: String,
        subnet: Subnet,
        labels: Labels,
    },
    CreatePlacementGroup {
        name: String,
        labels: Labels,
    },
    CreateFirewall {
        name: String,
        labels: Labels,
        rules: Vec<FirewallRule>,
        apply_to: Vec<FirewallResource>,
    },
    SetFirewallRules {
        id: u64,
        name: String,
        rules: Vec<FirewallRule>,
    },
    ApplyFirewall {
        id: u64,
        name: String,
        apply_to: Vec<FirewallResource>,
    },
    CreateServer {
        server: DesiredServer,
    },
    /// Delete and re-create (server type or image changed): needs `--allow-replace`.
    ReplaceServer {
        id: u64,
        reason: String,
        server: DesiredServer,
    },
    /// Only the spec hash differs (e.g. the machine config changed): relabel.
    UpdateServerLabels {
        id: u64,
        name: String,
        labels: Labels,
        reason: String,
    },
    DeleteServer {
        id: u64,
        name: String,
        reason: String,
    },
    DeleteLoadBalancer {
        id: u64,
        name: String,
    },
    DeleteVolume {
        id: u64,
        name: String,
        attached: bool,
    },
    DeleteFirewall {
        id: u64,
        name: String,
        applied_to: Vec<FirewallResource>,
    },
    DeletePlacementGroup {
        id: u64,
        name: String,
    },
    DeleteNetwork {
        id: u64,
        name: String,
    },
}

impl Step {
    /// One line for humans.
    pub fn describe(&self) -> String {
        match self {
            Step::CreateNetwork { name, ip_range, .. } => {
                format!("+ network {name} ({ip_range})")
            }
            Step::CreatePlacementGroup { name, .. } => format!("+ placement group {name} (spread)"),
            Step::CreateFirewall { name, rules, .. } => {
                format!("+ firewall {name} ({} inbound rules)", rules.len())
            }
            Step::SetFirewallRules { name, rules, .. } => {
                format!("~ firewall {name}: set {} inbound rules", rules.len())
            }
            Step::ApplyFirewall { name, .. } => {
                format!("~ firewall {name}: apply to cluster servers")
            }
            Step::CreateServer { server } => format!(
                "+ server {} ({}, {}, {})",
                server.node.name,
                server.node.role.label(),
                server.server_type,
                if server.image == 0 {
                    "image resolved from the selector when a token is given".to_string()
                } else {
                    format!("image {}", server.image)
                }
            ),
            Step::ReplaceServer { server, reason, .. } => {
                format!("-/+ server {} ({reason})", server.node.name)
            }
            Step::UpdateServerLabels { name, reason, .. } => {
                format!("~ server {name}: relabel ({reason})")
            }
            Step::DeleteServer { name, reason, .. } => format!("- server {name} ({reason})"),
            Step::DeleteLoadBalancer { name, .. } => {
                format!("- load balancer {name} (cluster-created)")
            }
            Step::DeleteVolume { name, .. } => format!("- volume {name} (cluster-created)"),
            Step::DeleteFirewall { name, .. } => format!("- firewall {name}"),
            Step::DeletePlacementGroup { name, .. } => format!("- placement group {name}"),
            Step::DeleteNetwork { name, .. } => format!("- network {name}"),
        }
    }

    pub fn is_replacement(&self) -> bool {
        matches!(self, Step::ReplaceServer { .. })
    }
}

/// The ordered list of changes plus notes for the reader.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Plan {
    pub cluster: String,
    pub steps: Vec<Step>,
    pub notes: Vec<String>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
    pub fn replacements(&self) -> usize {
        self.steps.iter().filter(|s| s.is_replacement()).count()
    }
}

/// Plans `up`: what to create, change or delete so that `observed` becomes `desired`.
pub fn plan_up(desired: &Desired, observed: &Observed) -> Plan {
    let mut steps = Vec::new();
    let mut notes = Vec::new();
    let c = &desired.cluster;

    match observed
        .networks
        .iter()
        .find(|n| n.name == desired.network.name)
    {
        None => steps.push(Step::CreateNetwork {
            name: desired.network.name.clone(),
            ip_range: desired.network.ip_range.clone(),
            subnet: desired.network.subnet.clone(),
            labels: desired.network.labels.clone(),
        }),
        Some(n) => {
            if n.ip_range != desired.network.ip_range {
                notes.push(format!(
                    "network {} has ip_range {} but the spec says {}: a network's range cannot be changed in place; run `provisioner down` first to change it",
                    n.name, n.ip_range, desired.network.ip_range
                ));
            }
            if !n
                .subnets
                .iter()
                .any(|s| s.ip_range == desired.network.subnet.ip_range)
            {
                notes.push(format!(
                    "network {} has no subnet {}: servers cannot be attached; run `provisioner down` first",
                    n.name, desired.network.subnet.ip_range
                ));
            }
        }
    }

    for g in &desired.groups {
        if !observed.groups.iter().any(|o| o.name == g.name) {
            steps.push(Step::CreatePlacementGroup {
                name: g.name.clone(),
                labels: g.labels.clone(),
            });
        }
    }

    match observed
        .firewalls
        .iter()
        .find(|f| f.name == desired.firewall.name)
    {
        None => steps.push(Step::CreateFirewall {
            name: desired.firewall.name.clone(),
            labels: desired.firewall.labels.clone(),
            rules: desired.firewall.bootstrap_rules.clone(),
            apply_to: desired.firewall.apply_to.clone(),
        }),
        Some(fw) => {
            let locked = fw.labels.get(LABEL_PHASE).map(String::as_str) == Some("locked");
            let want = if locked {
                &desired.firewall.locked_rules
            } else {
                &desired.firewall.bootstrap_rules
            };
            if !same_rules(&fw.rules, want) {
                steps.push(Step::SetFirewallRules {
                    id: fw.id,
                    name: fw.name.clone(),
                    rules: want.clone(),
                });
            }
            let missing: Vec<FirewallResource> = desired
                .firewall
                .apply_to
                .iter()
                .filter(|want| {
                    !fw.applied_to.iter().any(|have| {
                        have.kind == want.kind && have.label_selector == want.label_selector
                    })
                })
                .cloned()
                .collect();
            if !missing.is_empty() {
                steps.push(Step::ApplyFirewall {
                    id: fw.id,
                    name: fw.name.clone(),
                    apply_to: missing,
                });
            }
        }
    }

    let wanted: BTreeSet<&str> = desired
        .servers
        .iter()
        .map(|s| s.node.name.as_str())
        .collect();
    for d in &desired.servers {
        match observed.servers.iter().find(|s| s.name == d.node.name) {
            None => steps.push(Step::CreateServer { server: d.clone() }),
            Some(s) => {
                let mut why = Vec::new();
                if s.server_type.name != d.server_type {
                    why.push(format!(
                        "server type {} -> {}",
                        s.server_type.name, d.server_type
                    ));
                }
                if let Some(img) = &s.image {
                    if img.id != d.image {
                        why.push(format!("image {} -> {}", img.id, d.image));
                    }
                }
                if s.placement_group.as_ref().map(|g| g.name.as_str())
                    != Some(d.placement_group.as_str())
                {
                    why.push(format!("placement group -> {}", d.placement_group));
                }
                if !why.is_empty() {
                    steps.push(Step::ReplaceServer {
                        id: s.id,
                        reason: why.join(", "),
                        server: d.clone(),
                    });
                } else if s.labels != d.labels {
                    let reason = if s.labels.get(LABEL_HASH) != d.labels.get(LABEL_HASH) {
                        "machine config changed; apply it through the Talos API".to_string()
                    } else {
                        "labels differ".to_string()
                    };
                    steps.push(Step::UpdateServerLabels {
                        id: s.id,
                        name: s.name.clone(),
                        labels: d.labels.clone(),
                        reason,
                    });
                }
            }
        }
    }
    // Scale down: owned servers the spec no longer has, highest-numbered first.
    let mut extra: Vec<&Server> = observed
        .servers
        .iter()
        .filter(|s| !wanted.contains(s.name.as_str()))
        .collect();
    extra.sort_by_key(|s| std::cmp::Reverse(name_index(&s.name)));
    for s in &extra {
        if s.labels.get(LABEL_ROLE).map(String::as_str) == Some("control-plane") {
            notes.push(format!(
                "control-plane server {} is not in the spec: remove it from etcd first, then it is deleted",
                s.name
            ));
        }
        steps.push(Step::DeleteServer {
            id: s.id,
            name: s.name.clone(),
            reason: "scaled down".into(),
        });
    }
    let wanted_groups: BTreeSet<&str> = desired.groups.iter().map(|g| g.name.as_str()).collect();
    for g in &observed.groups {
        if !wanted_groups.contains(g.name.as_str()) {
            steps.push(Step::DeletePlacementGroup {
                id: g.id,
                name: g.name.clone(),
            });
        }
    }
    Plan {
        cluster: c.clone(),
        steps,
        notes,
    }
}

/// Plans `down`: delete everything observed, in dependency order.
pub fn plan_down(cluster: &str, observed: &Observed) -> Plan {
    let mut steps = Vec::new();
    let mut servers: Vec<&Server> = observed.servers.iter().collect();
    servers.sort_by(|a, b| a.name.cmp(&b.name));
    for s in servers {
        steps.push(Step::DeleteServer {
            id: s.id,
            name: s.name.clone(),
            reason: "down".into(),
        });
    }
    for lb in &observed.load_balancers {
        steps.push(Step::DeleteLoadBalancer {
            id: lb.id,
            name: lb.name.clone(),
        });
    }
    for v in &observed.volumes {
        steps.push(Step::DeleteVolume {
            id: v.id,
            name: v.name.clone(),
            attached: v.server.is_some(),
        });
    }
    for f in &observed.firewalls {
        steps.push(Step::DeleteFirewall {
            id: f.id,
            name: f.name.clone(),
            applied_to: f.applied_to.clone(),
        });
    }
    for g in &observed.groups {
        steps.push(Step::DeletePlacementGroup {
            id: g.id,
            name: g.name.clone(),
        });
    }
    for n in &observed.networks {
        steps.push(Step::DeleteNetwork {
            id: n.id,
            name: n.name.clone(),
        });
    }
    Plan {
        cluster: cluster.to_string(),
        steps,
        notes: vec![],
    }
}

/// The load balancers and volumes the in-cluster CCM and CSI made for this cluster:
/// load balancers carrying the CCM's label that are attached to the cluster's network
/// or target its servers, and volumes attached to its servers or labelled with the
/// cluster name. Anything else is left alone.
pub fn cluster_created(
    cluster: &str,
    observed: &Observed,
    lbs: &[LoadBalancer],
    volumes: &[Volume],
) -> (Vec<LoadBalancer>, Vec<Volume>) {
    let nets: BTreeSet<u64> = observed.networks.iter().map(|n| n.id).collect();
    let servers: BTreeSet<u64> = observed.servers.iter().map(|s| s.id).collect();
    let lbs = lbs
        .iter()
        .filter(|lb| {
            lb.labels.contains_key(CCM_LB_LABEL)
                && (lb.private_net.iter().any(|p| nets.contains(&p.network))
                    || lb
                        .targets
                        .iter()
                        .any(|t| t.server.as_ref().is_some_and(|s| servers.contains(&s.id))))
        })
        .cloned()
        .collect();
    let volumes = volumes
        .iter()
        .filter(|v| {
            v.labels.get(LABEL_CLUSTER).map(String::as_str) == Some(cluster)
                || (v.name.starts_with("pvc-") && v.server.is_some_and(|s| servers.contains(&s)))
        })
        .cloned()
        .collect();
    (lbs, volumes)
}

fn name_index(name: &str) -> u32 {
    name.rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Firewall rules compared as sets (order and descriptions do not matter).
pub fn same_rules(a: &[FirewallRule], b: &[FirewallRule]) -> bool {
    let norm =
        |r: &[FirewallRule]| -> BTreeSet<(String, String, Option<String>, BTreeSet<String>)> {
            r.iter()
                .map(|r| {
                    (
                        r.direction.clone(),
                        r.protocol.clone(),
                        r.port.clone(),
                        r.source_ips
                            .iter()
                            .chain(&r.destination_ips)
                            .cloned()
                            .collect(),
                    )
                })
                .collect()
        };
    norm(a) == norm(b)
}

/// Counts of resources by kind, for summaries.
pub fn summary(plan: &Plan) -> BTreeMap<&'static str, usize> {
    let mut m = BTreeMap::new();
    for s in &plan.steps {
        let k = match s {
            Step::CreateNetwork { .. }
            | Step::CreatePlacementGroup { .. }
            | Step::CreateFirewall { .. }
            | Step::CreateServer { .. } => "create",
            Step::ReplaceServer { .. } => "replace",
            Step::SetFirewallRules { .. }
            | Step::ApplyFirewall { .. }
            | Step::UpdateServerLabels { .. } => "update",
            _ => "delete",
        };
        *m.entry(k).or_insert(0) += 1;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hcloud::types::{ImageRef, NamedRef, Protection, ServerPublicNet};
    use std::path::Path;

    fn spec() -> ClusterSpec {
        ClusterSpec::parse(&ClusterSpec::template("shop"), Path::new("c.toml")).unwrap()
    }

    fn d(spec: &ClusterSpec) -> Desired {
        desired(spec, 42, &|n: &Node| format!("ud-{}", n.role.label()))
    }

    fn as_server(ds: &DesiredServer, id: u64) -> Server {
        Server {
            id,
            name: ds.node.name.clone(),
            status: "running".into(),
            labels: ds.labels.clone(),
            server_type: NamedRef {
                id: 1,
                name: ds.server_type.clone(),
            },
            image: Some(ImageRef { id: ds.image }),
            location: NamedRef {
                id: 1,
                name: "hil".into(),
            },
            placement_group: Some(NamedRef {
                id: 1,
                name: ds.placement_group.clone(),
            }),
            public_net: ServerPublicNet {
                ipv4: None,
                ipv6: None,
            },
            private_net: vec![],
            protection: Protection::default(),
        }
    }

    fn observed_all(d: &Desired) -> Observed {
        Observed {
            networks: vec![Network {
                id: 1,
                name: d.network.name.clone(),
                ip_range: d.network.ip_range.clone(),
                labels: d.network.labels.clone(),
                subnets: vec![d.network.subnet.clone()],
                servers: vec![],
                protection: Protection::default(),
            }],
            groups: d
                .groups
                .iter()
                .enumerate()
                .map(|(i, g)| PlacementGroup {
                    id: 10 + i as u64,
                    name: g.name.clone(),
                    labels: g.labels.clone(),
                    kind: "spread".into(),
                    servers: vec![],
                })
                .collect(),
            firewalls: vec![Firewall {
                id: 5,
                name: d.firewall.name.clone(),
                labels: d.firewall.labels.clone(),
                rules: d.firewall.bootstrap_rules.clone(),
                applied_to: d.firewall.apply_to.clone(),
            }],
            servers: d
                .servers
                .iter()
                .enumerate()
                .map(|(i, s)| as_server(s, 100 + i as u64))
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn from_empty_creates_everything() {
        let s = spec();
        let p = plan_up(&d(&s), &Observed::default());
        let creates = summary(&p)["create"];
        // network + 2 groups + firewall + 6 servers
        assert_eq!(creates, 10);
        assert_eq!(p.steps.len(), 10);
        let names: Vec<String> = p
            .steps
            .iter()
            .filter_map(|s| match s {
                Step::CreateServer { server } => Some(server.node.name.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(
            names,
            [
                "shop-cp-1",
                "shop-cp-2",
                "shop-cp-3",
                "shop-w-default-1",
                "shop-w-default-2",
                "shop-w-default-3"
            ]
        );
    }

    #[test]
    fn converged_plans_nothing() {
        let s = spec();
        let d = d(&s);
        let p = plan_up(&d, &observed_all(&d));
        assert!(p.is_empty(), "{p:#?}");
    }

    #[test]
    fn type_change_is_replacement_and_scale_down_deletes_highest() {
        let s = spec();
        let d0 = d(&s);
        let obs = observed_all(&d0);
        let mut s2 = s.clone();
        s2.control_plane.server_type = "cpx31".into();
        s2.worker_pools[0].count = 1;
        let p = plan_up(&d(&s2), &obs);
        assert_eq!(p.replacements(), 3);
        let deletes: Vec<&str> = p
            .steps
            .iter()
            .filter_map(|s| match s {
                Step::DeleteServer { name, .. } => Some(name.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(deletes, ["shop-w-default-3", "shop-w-default-2"]);
    }

    #[test]
    fn user_data_change_only_relabels() {
        let s = spec();
        let obs = observed_all(&d(&s));
        let d2 = desired(&s, 42, &|_: &Node| "other".to_string());
        let p = plan_up(&d2, &obs);
        assert_eq!(p.steps.len(), 6);
        assert!(p
            .steps
            .iter()
            .all(|s| matches!(s, Step::UpdateServerLabels { .. })));
    }

    #[test]
    fn locked_firewall_stays_locked() {
        let s = spec();
        let d0 = d(&s);
        let mut obs = observed_all(&d0);
        obs.firewalls[0]
            .labels
            .insert(LABEL_PHASE.into(), "locked".into());
        obs.firewalls[0].rules = d0.firewall.locked_rules.clone();
        assert!(plan_up(&d0, &obs).is_empty());
        obs.firewalls[0].rules = d0.firewall.bootstrap_rules.clone();
        let p = plan_up(&d0, &obs);
        assert!(matches!(&p.steps[0], Step::SetFirewallRules { rules, .. } if rules.len() == 1));
    }

    #[test]
    fn down_orders_servers_first_network_last() {
        let s = spec();
        let obs = observed_all(&d(&s));
        let p = plan_down("shop", &obs);
        assert!(matches!(p.steps.first(), Some(Step::DeleteServer { .. })));
        assert!(matches!(p.steps.last(), Some(Step::DeleteNetwork { .. })));
        assert_eq!(p.steps.len(), 6 + 1 + 2 + 1);
    }

    #[test]
    fn plan_serialises() {
        let p = plan_up(&d(&spec()), &Observed::default());
        let j = serde_json::to_value(&p).unwrap();
        assert_eq!(j["steps"][0]["action"], "create_network");
        assert_eq!(
            j["steps"][4]["server"]["user_data_hash"],
            "ud-control-plane"
        );
    }
}
