//! Rendering of control-plane and worker machine configs (multi-document YAML)
//! from the cluster input and the secrets bundle, then patches, then schema
//! validation. Pure: no I/O except through the passed schema.
//!
//! Two layouts: the v1.13 one ([`legacy`], a single `v1alpha1` document plus
//! resolver/mirror documents) and the v1.14 one ([`multidoc`], the Kubernetes,
//! install, sysctl and discovery settings in documents of their own kinds).
//! [`Layout::for_version`] picks one from the spec's Talos version.

use crate::error::{Result, TalosError};
use crate::patch::{apply_patch, Patch};
use crate::schema::TalosSchema;
use crate::secrets::SecretsBundle;
use crate::version::TalosVersion;
use base64::Engine as _;
use serde::Deserialize as _;
use serde_yaml::{Mapping, Value};
use std::collections::BTreeMap;

pub mod legacy;
pub mod multidoc;

/// Talos version the defaults target (its schema is `v1.13.schema.json`). The
/// v1.14 layout renders and validates too, but v1.14 is a release candidate
/// (schema from v1.14.0-rc.1), so the default stays on the stable v1.13 line.
pub const DEFAULT_TALOS_VERSION: &str = "v1.13.9";
/// Kubernetes version for layouts that need explicit component images (v1.14)
/// when the spec names none: the default of Talos v1.13.9, which v1.14 supports
/// too, so changing the Talos version does not change Kubernetes. (The v1.13
/// layout leaves the images unset and Talos picks the same version.)
pub const DEFAULT_KUBERNETES_VERSION: &str = "v1.36.3";
/// The public Talos discovery service (the `talosctl gen config` default).
pub const DISCOVERY_SERVICE_ENDPOINT: &str = "https://discovery.talos.dev/";
/// IPv6 pod subnet (ULA), /56 gives 256 node /64s.
pub const DEFAULT_POD_SUBNET: &str = "fd00:10:244::/56";
/// IPv6 service subnet (ULA), /112 as Kubernetes requires (<= 20 host bits).
pub const DEFAULT_SERVICE_SUBNET: &str = "fd00:10:96::/112";
/// Subnets the kubelet and etcd pick the node IP from: global unicast IPv6
/// (Hetzner's public /64 per server), never the IPv4 private network.
pub const DEFAULT_NODE_SUBNET: &str = "2000::/3";
/// Public DNS64 resolvers of the nat64.net service (with its NAT64 gateways), so
/// IPv6-only nodes reach IPv4-only registries such as ghcr.io.
pub const DEFAULT_DNS64_NAMESERVERS: &[&str] =
    &["2a01:4f8:c2c:123f::1", "2a00:1098:2b::1", "2a00:1098:2c::1"];
/// Socket buffer size cloudflared's QUIC (quic-go) asks for (7.5 MB).
pub const QUIC_SOCKET_BUFFER: &str = "7500000";
/// KubePrism port (Talos default).
pub const KUBEPRISM_PORT: u16 = 7445;

/// Node role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    ControlPlane,
    Worker,
}

impl Role {
    /// The Talos `machine.type` value (also the patch sub-directory name).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::ControlPlane => "controlplane",
            Role::Worker => "worker",
        }
    }
}

/// Cluster-wide settings (from the cluster spec).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterInput {
    pub cluster_name: String,
    /// Kubernetes API endpoint, `https://host:6443` (host may be an IPv6 literal in brackets).
    pub endpoint: String,
    /// Talos version, `v1.13.9`; picks the schema and the installer image.
    pub talos_version: String,
    /// Kubernetes version (`v1.35.0`); `None` lets Talos use its default for the release.
    pub kubernetes_version: Option<String>,
    pub pod_subnets: Vec<String>,
    pub service_subnets: Vec<String>,
    /// `machine.kubelet.nodeIP.validSubnets` and etcd advertised subnets.
    pub node_subnets: Vec<String>,
    /// Resolvers (DNS64 by default).
    pub nameservers: Vec<String>,
    /// Registry mirrors: registry host -> mirror endpoint URLs.
    pub registry_mirrors: BTreeMap<String, Vec<String>>,
    /// Extra SANs for the Talos API and Kubernetes API certificates.
    pub cert_sans: Vec<String>,
    /// Install disk (Hetzner: `/dev/sda`).
    pub install_disk: String,
    /// Installer image; default `ghcr.io/siderolabs/installer:<talos_version>`.
    pub install_image: Option<String>,
}

impl ClusterInput {
    /// IPv6-only defaults for `name` with the API at `endpoint`.
    pub fn new(name: &str, endpoint: &str) -> Self {
        ClusterInput {
            cluster_name: name.to_string(),
            endpoint: endpoint.to_string(),
            talos_version: DEFAULT_TALOS_VERSION.to_string(),
            kubernetes_version: None,
            pod_subnets: vec![DEFAULT_POD_SUBNET.into()],
            service_subnets: vec![DEFAULT_SERVICE_SUBNET.into()],
            node_subnets: vec![DEFAULT_NODE_SUBNET.into()],
            nameservers: DEFAULT_DNS64_NAMESERVERS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            registry_mirrors: BTreeMap::new(),
            cert_sans: Vec::new(),
            install_disk: "/dev/sda".into(),
            install_image: None,
        }
    }
}

/// Input for one node's (or one pool's) config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfigInput {
    pub cluster: ClusterInput,
    pub role: Role,
    /// Kubernetes node labels (worker pool labels).
    pub node_labels: BTreeMap<String, String>,
    /// Kubernetes node taints `key -> value:Effect` (worker pool taints).
    pub node_taints: BTreeMap<String, String>,
}

impl NodeConfigInput {
    pub fn new(cluster: ClusterInput, role: Role) -> Self {
        NodeConfigInput {
            cluster,
            role,
            node_labels: BTreeMap::new(),
            node_taints: BTreeMap::new(),
        }
    }
}

fn input_err(msg: impl Into<String>) -> TalosError {
    TalosError::Input(msg.into())
}

fn is_ipv6_cidr(s: &str) -> bool {
    match s.split_once('/') {
        Some((a, p)) => {
            a.parse::<std::net::Ipv6Addr>().is_ok() && p.parse::<u8>().is_ok_and(|p| p <= 128)
        }
        None => false,
    }
}

/// Checks the input before anything is rendered.
pub fn check_input(input: &NodeConfigInput) -> Result<()> {
    let c = &input.cluster;
    let name_ok = !c.cluster_name.is_empty()
        && c.cluster_name.len() <= 63
        && c.cluster_name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !c.cluster_name.starts_with('-')
        && !c.cluster_name.ends_with('-');
    if !name_ok {
        return Err(input_err(format!(
            "cluster name `{}` is not DNS-safe: use 1-63 lowercase letters, digits and `-`",
            c.cluster_name
        )));
    }
    if !c.endpoint.starts_with("https://") || c.endpoint.len() <= "https://".len() {
        return Err(input_err(format!(
            "cluster endpoint `{}` must be an https:// URL such as https://[2a01:4f8::1]:6443",
            c.endpoint
        )));
    }
    for (what, list) in [
        ("pod subnet", &c.pod_subnets),
        ("service subnet", &c.service_subnets),
        ("node subnet", &c.node_subnets),
    ] {
        if list.is_empty() {
            return Err(input_err(format!(
                "no {what} given: the cluster is IPv6-only, give an IPv6 CIDR"
            )));
        }
        for s in list {
            if !is_ipv6_cidr(s) {
                return Err(input_err(format!(
                    "{what} `{s}` is not an IPv6 CIDR: the cluster is IPv6-only (e.g. {})",
                    match what {
                        "pod subnet" => DEFAULT_POD_SUBNET,
                        "service subnet" => DEFAULT_SERVICE_SUBNET,
                        _ => DEFAULT_NODE_SUBNET,
                    }
                )));
            }
        }
    }
    if c.nameservers.is_empty() && c.registry_mirrors.is_empty() {
        return Err(input_err(
            "neither DNS64 nameservers nor registry mirrors are set: IPv6-only nodes could not pull from ghcr.io; keep the default DNS64 nameservers or configure mirrors",
        ));
    }
    for ns in &c.nameservers {
        if ns.parse::<std::net::IpAddr>().is_err() {
            return Err(input_err(format!("nameserver `{ns}` is not an IP address")));
        }
    }
    for (reg, eps) in &c.registry_mirrors {
        if reg.is_empty() || eps.is_empty() {
            return Err(input_err(format!(
                "registry mirror `{reg}` needs a registry name and at least one endpoint URL"
            )));
        }
        for e in eps {
            if !(e.starts_with("https://") || e.starts_with("http://")) {
                return Err(input_err(format!(
                    "mirror endpoint `{e}` for `{reg}` must be an http:// or https:// URL"
                )));
            }
        }
    }
    if !c.install_disk.starts_with("/dev/") {
        return Err(input_err(format!(
            "install disk `{}` must be a device path such as /dev/sda",
            c.install_disk
        )));
    }
    Ok(())
}

/// Ordered map builder.
fn m<const N: usize>(pairs: [(&str, Value); N]) -> Value {
    let mut map = Mapping::new();
    for (k, v) in pairs {
        if !v.is_null() {
            map.insert(Value::String(k.to_string()), v);
        }
    }
    Value::Mapping(map)
}

fn s(v: &str) -> Value {
    Value::String(v.to_string())
}

fn list(v: &[String]) -> Value {
    Value::Sequence(v.iter().map(|x| s(x)).collect())
}

fn smap(v: &BTreeMap<String, String>) -> Value {
    if v.is_empty() {
        return Value::Null;
    }
    Value::Mapping(v.iter().map(|(k, x)| (s(k), s(x))).collect())
}

fn b64(v: &str) -> Value {
    s(&base64::engine::general_purpose::STANDARD.encode(v.as_bytes()))
}

fn endpoint_host(endpoint: &str) -> Option<String> {
    let rest = endpoint.strip_prefix("https://")?;
    let hostport = rest.split('/').next()?;
    if let Some(r) = hostport.strip_prefix('[') {
        return r.split(']').next().map(String::from);
    }
    Some(
        hostport
            .rsplit_once(':')
            .map_or(hostport, |(h, _)| h)
            .to_string(),
    )
}

fn opt_image(repo: &str, version: &Option<String>) -> Value {
    match version {
        Some(v) => s(&format!("{repo}:{v}")),
        None => Value::Null,
    }
}

/// The machine-config layout of a Talos release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Up to v1.13: one `v1alpha1` document with machine and cluster settings.
    V1Alpha1,
    /// v1.14 and later: Kubernetes, install, sysctl and discovery settings in
    /// documents of their own kinds (see [`multidoc`]).
    MultiDoc,
}

/// Document kinds the multi-document layout needs from a schema.
const MULTIDOC_KINDS: &[&str] = &[
    "KubeletConfig",
    "KubeNodeConfig",
    "KubeClusterConfig",
    "KubeNetworkConfig",
    "KubeAPIServerCAConfig",
    "KubeAPIServerConfig",
    "KubeServiceAccountConfig",
    "KubeEtcdEncryptionConfig",
    "KubeAuthorizerConfig",
    "SysctlConfig",
    "UnattendedInstall",
    "DiscoveryIdentityConfig",
    "DiscoveryServiceConfig",
];

impl Layout {
    /// The layout of `talos_version` (v1.14 and later: multi-document); `None`
    /// if the version does not parse.
    pub fn for_version(talos_version: &str) -> Option<Layout> {
        let v = TalosVersion::parse(talos_version)?;
        Some(if v.at_least(1, 14) {
            Layout::MultiDoc
        } else {
            Layout::V1Alpha1
        })
    }

    /// Checks that `schema` describes this layout (so a schema file that does
    /// not match its version name is caught before rendering).
    pub fn check_schema(self, schema: &TalosSchema) -> Result<()> {
        let missing: Vec<&str> = match self {
            Layout::V1Alpha1 => {
                if schema.def_has_property("v1alpha1.MachineConfig", "kubelet") {
                    vec![]
                } else {
                    vec!["machine.kubelet in the v1alpha1 document"]
                }
            }
            Layout::MultiDoc => MULTIDOC_KINDS
                .iter()
                .copied()
                .filter(|k| !schema.has_kind(k))
                .collect(),
        };
        if missing.is_empty() {
            return Ok(());
        }
        Err(input_err(format!(
            "the Talos {} schema lacks what the {} layout renders ({}); the schema file does not match its version: replace it with the schema published for that Talos release",
            schema.version(),
            match self {
                Layout::V1Alpha1 => "v1.13 (single v1alpha1 document)",
                Layout::MultiDoc => "v1.14 (multi-document)",
            },
            missing.join(", ")
        )))
    }
}

/// SANs of the Talos API and Kubernetes API certificates: the endpoint's host,
/// then the spec's extra SANs.
pub(crate) fn cert_sans(c: &ClusterInput) -> Vec<String> {
    let mut sans: Vec<String> = endpoint_host(&c.endpoint).into_iter().collect();
    for x in &c.cert_sans {
        if !sans.contains(x) {
            sans.push(x.clone());
        }
    }
    sans
}

/// The node's taints: the pool's, plus the control-plane `NoSchedule` taint.
pub(crate) fn base_taints(input: &NodeConfigInput) -> BTreeMap<String, String> {
    let mut taints = input.node_taints.clone();
    if input.role == Role::ControlPlane {
        taints
            .entry("node-role.kubernetes.io/control-plane".into())
            .or_insert_with(|| ":NoSchedule".into());
    }
    taints
}

pub(crate) fn install_image(c: &ClusterInput) -> String {
    c.install_image
        .clone()
        .unwrap_or_else(|| format!("ghcr.io/siderolabs/installer:{}", c.talos_version))
}

pub(crate) fn resolver_nameservers(c: &ClusterInput) -> Value {
    Value::Sequence(
        c.nameservers
            .iter()
            .map(|n| m([("address", s(n))]))
            .collect(),
    )
}

pub(crate) fn registry_mirror_docs(c: &ClusterInput) -> Vec<Value> {
    c.registry_mirrors
        .iter()
        .map(|(reg, eps)| {
            m([
                ("apiVersion", s("v1alpha1")),
                ("kind", s("RegistryMirrorConfig")),
                ("name", s(reg)),
                (
                    "endpoints",
                    Value::Sequence(eps.iter().map(|e| m([("url", s(e))])).collect()),
                ),
            ])
        })
        .collect()
}

/// Builds the un-patched documents in the layout of the input's Talos version
/// (an unparsable version renders the v1.13 layout; [`render_node_config`]
/// rejects it before that).
pub fn base_documents(input: &NodeConfigInput, secrets: &SecretsBundle) -> Vec<Value> {
    match Layout::for_version(&input.cluster.talos_version) {
        Some(Layout::MultiDoc) => multidoc::documents(input, secrets),
        _ => legacy::documents(input, secrets),
    }
}

/// Serializes documents as multi-document YAML (no comments, no examples).
pub fn to_yaml(docs: &[Value]) -> Result<String> {
    let mut out = String::new();
    for (i, d) in docs.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(
            &serde_yaml::to_string(d).map_err(|source| TalosError::Yaml {
                what: "generated config".into(),
                source,
            })?,
        );
    }
    Ok(out)
}

/// Splits multi-document YAML into documents (empty documents skipped).
pub fn split_docs(yaml: &str) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for d in serde_yaml::Deserializer::from_str(yaml) {
        let v = Value::deserialize(d).map_err(|source| TalosError::Yaml {
            what: "machine config".into(),
            source,
        })?;
        if !v.is_null() {
            out.push(v);
        }
    }
    Ok(out)
}

fn schema_errors(schema: &TalosSchema, docs: &[Value]) -> Result<Option<(String, String)>> {
    for (i, d) in docs.iter().enumerate() {
        let json = serde_json::to_value(d).map_err(|e| input_err(e.to_string()))?;
        let errs = schema.validate_doc(&json)?;
        if !errs.is_empty() {
            let kind = TalosSchema::doc_kind(&json).unwrap_or_else(|| format!("#{i}"));
            return Ok(Some((kind, errs.join("\n"))));
        }
    }
    Ok(None)
}

/// Renders one node's machine config: checks the input, builds the documents,
/// applies `patches` in order and validates against `schema` after each step, so
/// a patch that introduces an unknown field or a wrong type is named in the error.
pub fn render_node_config(
    input: &NodeConfigInput,
    secrets: &SecretsBundle,
    patches: &[Patch],
    schema: &TalosSchema,
) -> Result<String> {
    check_input(input)?;
    let want = crate::schema::minor_version(&input.cluster.talos_version).unwrap_or_default();
    if want != schema.version() {
        return Err(input_err(format!(
            "the schema passed is for Talos {} but the cluster spec names {}; load the schema for the spec's version",
            schema.version(),
            input.cluster.talos_version
        )));
    }
    let layout = Layout::for_version(&input.cluster.talos_version).ok_or_else(|| {
        input_err(format!(
            "Talos version `{}` is not of the form v<major>.<minor>.<patch> (e.g. {DEFAULT_TALOS_VERSION})",
            input.cluster.talos_version
        ))
    })?;
    layout.check_schema(schema)?;
    let node = input.role.as_str();
    let mut docs = match layout {
        Layout::V1Alpha1 => legacy::documents(input, secrets),
        Layout::MultiDoc => multidoc::documents(input, secrets),
    };
    if let Some((doc, errors)) = schema_errors(schema, &docs)? {
        return Err(TalosError::Invalid {
            node: node.into(),
            doc,
            version: schema.version().into(),
            errors,
        });
    }
    for p in patches {
        apply_patch(&mut docs, p)?;
        if let Some((doc, errors)) = schema_errors(schema, &docs)? {
            return Err(TalosError::Patch {
                file: p.source.clone(),
                detail: format!(
                    "after applying it the {node} config document `{doc}` is not a valid Talos {} config (a field it sets does not exist there or has the wrong type):\n{errors}",
                    schema.version()
                ),
                fix: patch_fix(layout, schema.version(), p),
            });
        }
    }
    to_yaml(&docs)
}

/// The fix for a patch that made a config invalid; for a v1.13-layout patch
/// applied to a v1.14 config it names where each moved field lives now.
fn patch_fix(layout: Layout, version: &str, patch: &Patch) -> String {
    let moved: Vec<String> = if layout == Layout::MultiDoc {
        patch
            .docs
            .iter()
            .filter(|d| d.get("kind").is_none())
            .flat_map(multidoc::moved_fields)
            .map(|(from, to)| format!("`{from}` -> {to}"))
            .collect()
    } else {
        vec![]
    };
    if moved.is_empty() {
        return format!(
            "correct the field names/types against the Talos {version} configuration reference, or remove them from the patch"
        );
    }
    format!(
        "this patch uses the v1.13 layout, but Talos {version} moved these fields out of the v1alpha1 document: {}; rewrite it as documents of those kinds (`apiVersion: v1alpha1`, `kind: ...`) and keep patches for {version} in a `{version}/` directory next to the v1.13 ones (it replaces them for that version)",
        moved.join("; ")
    )
}

/// Hetzner's user-data limit.
pub const USER_DATA_LIMIT: usize = 32 * 1024;

/// Checks a rendered config against Hetzner's 32 KiB user-data limit.
pub fn check_user_data_size(role: Role, yaml: &str) -> Result<usize> {
    let n = yaml.len();
    if n >= USER_DATA_LIMIT {
        return Err(input_err(format!(
            "the {} machine config is {n} bytes, over Hetzner's 32 KiB user-data limit; shrink the patches in infra/talos/ (e.g. move inline manifests to extraManifests URLs)",
            role.as_str()
        )));
    }
    Ok(n)
}

/// Control-plane and worker configs of a cluster, rendered, validated and size-checked.
#[derive(Clone, PartialEq, Eq)]
pub struct RenderedConfigs {
    pub controlplane: String,
    pub worker: String,
}

impl std::fmt::Debug for RenderedConfigs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RenderedConfigs")
            .field("controlplane_bytes", &self.controlplane.len())
            .field("worker_bytes", &self.worker.len())
            .finish()
    }
}

/// Renders both roles: loads the schema for `cluster.talos_version` from
/// `schema_dir`, the patches from `patch_dir` (`infra/talos`, may be absent;
/// its `v<major>.<minor>/` overlay when present, see [`Patch::load_for_version`]),
/// validates every document and checks the 32 KiB user-data limit. Worker pools
/// with labels/taints call [`render_node_config`] per pool instead.
pub fn render_role_configs(
    cluster: &ClusterInput,
    secrets: &SecretsBundle,
    patch_dir: &std::path::Path,
    schema_dir: &std::path::Path,
) -> Result<RenderedConfigs> {
    let schema = TalosSchema::load(schema_dir, &cluster.talos_version)?;
    let mut out = Vec::new();
    for role in [Role::ControlPlane, Role::Worker] {
        let patches = Patch::load_for_version(patch_dir, role, &cluster.talos_version)?;
        let yaml = render_node_config(
            &NodeConfigInput::new(cluster.clone(), role),
            secrets,
            &patches,
            &schema,
        )?;
        check_user_data_size(role, &yaml)?;
        out.push(yaml);
    }
    let worker = out.pop().unwrap_or_default();
    let controlplane = out.pop().unwrap_or_default();
    Ok(RenderedConfigs {
        controlplane,
        worker,
    })
}
