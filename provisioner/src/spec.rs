//! The cluster spec: one strict TOML or YAML file describing the cluster.
//!
//! Parsing rejects unknown keys with their line and column; [`ClusterSpec::validate`]
//! checks everything that can be checked without the API and names the fix.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// Locations known without asking the API (used when no token is available).
pub const KNOWN_LOCATIONS: &[&str] = &["fsn1", "nbg1", "hel1", "ash", "hil", "sin"];

/// Hetzner allows at most this many servers in one spread placement group.
pub const MAX_SPREAD_GROUP_SERVERS: u32 = 10;

/// The longest server name suffix we append to the cluster name (`-cp-5`, `-w-<pool>-10`).
const MAX_NAME_LEN: usize = 63;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSpec {
    /// Cluster name: DNS-safe, used as a prefix of every resource name and as the `cluster` label.
    pub name: String,
    /// Hetzner location of all servers.
    #[serde(default = "default_location")]
    pub location: String,
    /// Locations tried in order when the main location has no capacity.
    #[serde(default)]
    pub fallback_locations: Vec<String>,
    #[serde(default)]
    pub network: NetworkSpec,
    pub control_plane: ControlPlaneSpec,
    #[serde(default)]
    pub worker_pools: Vec<WorkerPoolSpec>,
    pub image: ImageSpec,
    #[serde(default)]
    pub firewall: FirewallSpec,
    /// `[machine_config.generated]` or `[machine_config.files]` (in YAML,
    /// `machine_config: {generated: ...}`).
    #[serde(with = "serde_yaml::with::singleton_map")]
    pub machine_config: MachineConfigSource,
    /// When true, `down` refuses to delete the cluster.
    #[serde(default)]
    pub delete_protection: bool,
    /// `[tunnel]`: the Cloudflare Tunnel `up` reconciles after Talos.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<TunnelRef>,
    /// `[platform]`: the add-ons `up` applies through the Kubernetes API after
    /// the tunnel (Cilium, Hetzner CCM and CSI, cloudflared, Argo CD).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<PlatformSpec>,
}

/// `[tunnel]`: where the tunnel spec is (the file `provisioner tunnel ...` uses).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TunnelRef {
    /// The tunnel spec (TOML), relative to this file.
    #[serde(default = "default_tunnel_spec")]
    pub spec: PathBuf,
}

fn default_tunnel_spec() -> PathBuf {
    PathBuf::from("infra/apps/cloudflared/tunnel.toml")
}

/// `[platform]`: the GitOps tree and what Argo CD follows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformSpec {
    /// The Git repository Argo CD follows (the root Application's `repoURL`).
    pub repo_url: String,
    /// Branch, tag or commit Argo CD follows.
    #[serde(default = "default_revision")]
    pub revision: String,
    /// `staging` or `production`: the Argo CD overlay
    /// (`infra/argocd/overlays/<environment>`) and the secrets file
    /// (`infra/secrets/edge.<environment>.age`) the secret inputs come from.
    #[serde(default = "default_environment")]
    pub environment: String,
    /// The GitOps tree whose `bootstrap/` steps are applied, relative to this file.
    #[serde(default = "default_infra_dir")]
    pub infra_dir: PathBuf,
}

fn default_revision() -> String {
    "main".to_string()
}
fn default_environment() -> String {
    "production".to_string()
}
fn default_infra_dir() -> PathBuf {
    PathBuf::from("infra")
}

fn default_location() -> String {
    "hil".to_string()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    /// The private network's IPv4 range (Hetzner private networks are IPv4-only).
    #[serde(default = "default_ip_range")]
    pub ip_range: String,
    /// The subnet the servers are attached to; inside `ip_range`.
    #[serde(default = "default_subnet")]
    pub subnet: String,
    /// Hetzner network zone of the subnet; defaults to the zone of `location`. Servers
    /// can only join a subnet of their own location's zone.
    #[serde(default)]
    pub network_zone: Option<String>,
}

impl Default for NetworkSpec {
    fn default() -> Self {
        Self {
            ip_range: default_ip_range(),
            subnet: default_subnet(),
            network_zone: None,
        }
    }
}

fn default_ip_range() -> String {
    "10.0.0.0/16".to_string()
}
fn default_subnet() -> String {
    "10.0.1.0/24".to_string()
}
/// The network zone of a known location.
pub fn zone_of(location: &str) -> Option<&'static str> {
    Some(match location {
        "fsn1" | "nbg1" | "hel1" => "eu-central",
        "ash" => "us-east",
        "hil" => "us-west",
        "sin" => "ap-southeast",
        _ => return None,
    })
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlPlaneSpec {
    pub count: u32,
    pub server_type: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerPoolSpec {
    pub name: String,
    pub count: u32,
    pub server_type: String,
    /// Kubernetes node labels (applied by the Talos side).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Kubernetes taints, `key=value:Effect`.
    #[serde(default)]
    pub taints: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSpec {
    /// Hetzner label selector of the Talos snapshot, e.g. `os=talos,version=v1.9.5`.
    #[serde(default)]
    pub selector: Option<String>,
    /// Or a fixed image id.
    #[serde(default)]
    pub id: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FirewallSpec {
    /// Sources (CIDRs) allowed to reach the Talos API and Kubernetes API during bootstrap.
    #[serde(default)]
    pub admin_sources: Vec<String>,
}

/// Where a node's machine config (its `user_data`) comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum MachineConfigSource {
    /// Bring your own config: one file per role, e.g. from `talosctl gen config`.
    Files(FilesSource),
    /// Generated natively (`[machine_config.generated]`): the Talos secrets bundle,
    /// age-encrypted at `infra/clusters/<name>/talos-secrets.age`, and the configs
    /// rendered from it plus the patches in `infra/talos/`.
    Generated(GeneratedSource),
}

/// `[machine_config.generated]`. Paths are relative to the spec's directory, which is
/// taken as the repository root.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratedSource {
    /// Talos version the configs target; picks the JSON schema used to validate them.
    #[serde(default = "default_talos_version")]
    pub talos_version: String,
    /// Kubernetes version; unset lets Talos use its default for the release.
    #[serde(default)]
    pub kubernetes_version: Option<String>,
    /// Kubernetes API endpoint baked into every config, `https://host:6443`: a DNS
    /// name with the control-plane nodes' AAAA records (or a fixed IPv6 address).
    pub endpoint: String,
    /// Extra SANs of the Talos and Kubernetes API certificates.
    #[serde(default)]
    pub cert_sans: Vec<String>,
    /// age public keys the secrets bundle is encrypted to (else `SHOPEDGE_AGE_RECIPIENTS`).
    #[serde(default)]
    pub age_recipients: Vec<String>,
    /// Directory of the Talos config JSON schemas (`v1.13.schema.json`, ...).
    #[serde(default = "default_schema_dir")]
    pub schema_dir: PathBuf,
    /// Strategic-merge patches (`infra/talos/{all,controlplane,worker}...`).
    #[serde(default = "default_patch_dir")]
    pub patch_dir: PathBuf,
}

fn default_talos_version() -> String {
    talos::DEFAULT_TALOS_VERSION.to_string()
}
fn default_schema_dir() -> PathBuf {
    PathBuf::from("../shared/talos-config-schema")
}
fn default_patch_dir() -> PathBuf {
    PathBuf::from("infra/talos")
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesSource {
    pub control_plane: PathBuf,
    pub worker: PathBuf,
}

/// A spec that could not be read or parsed.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("cannot read cluster spec {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: {message}")]
    ParseNoLocation { path: PathBuf, message: String },
    #[error("cluster spec {path} is invalid:\n{}", .problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        path: PathBuf,
        problems: Vec<String>,
    },
}

/// Line and column (1-based) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |i| before.len() - i - 1)
        + 1;
    (line, column)
}

impl ClusterSpec {
    /// Reads and parses a spec file (TOML, or YAML for `.yaml`/`.yml`), without validating it.
    pub fn load(path: &Path) -> Result<Self, SpecError> {
        let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses spec text; the format is chosen by the file extension of `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Self, SpecError> {
        let yaml = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        );
        if yaml {
            serde_yaml::from_str(text).map_err(|e| match e.location() {
                Some(loc) => SpecError::Parse {
                    path: path.to_path_buf(),
                    line: loc.line(),
                    column: loc.column(),
                    message: strip_location(&e.to_string()),
                },
                None => SpecError::ParseNoLocation {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                },
            })
        } else {
            toml::from_str(text).map_err(|e| match e.span() {
                Some(span) => {
                    let (line, column) = line_col(text, span.start);
                    SpecError::Parse {
                        path: path.to_path_buf(),
                        line,
                        column,
                        message: e.message().to_string(),
                    }
                }
                None => SpecError::ParseNoLocation {
                    path: path.to_path_buf(),
                    message: e.message().to_string(),
                },
            })
        }
    }

    /// Checks the spec without the API. `path` names the file in the error.
    pub fn validate(&self, path: &Path) -> Result<(), SpecError> {
        self.validate_with(path, true)
    }

    /// Like [`validate`](Self::validate); `static_locations = false` leaves the
    /// location check to the API (done when a token is available).
    pub fn validate_with(&self, path: &Path, static_locations: bool) -> Result<(), SpecError> {
        let problems = self.problems_with(static_locations);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(SpecError::Invalid {
                path: path.to_path_buf(),
                problems,
            })
        }
    }

    /// All problems found in the spec, each naming the fix.
    pub fn problems(&self) -> Vec<String> {
        self.problems_with(true)
    }

    /// Problems; locations are checked against [`KNOWN_LOCATIONS`] only when
    /// `static_locations` (without a token; with one, the API's list is used).
    pub fn problems_with(&self, static_locations: bool) -> Vec<String> {
        let mut p = Vec::new();
        if let Err(e) = check_dns_label(&self.name) {
            p.push(format!("name {:?} {e}", self.name));
        } else if self.name.len() + "-w-".len() + 3 > 40 {
            p.push(format!(
                "name {:?} is too long: use at most {} characters so server names stay short",
                self.name,
                40 - 6
            ));
        }
        for loc in std::iter::once(&self.location).chain(self.fallback_locations.iter()) {
            if static_locations && !KNOWN_LOCATIONS.contains(&loc.as_str()) {
                p.push(format!(
                    "location {loc:?} is unknown: use one of {}",
                    KNOWN_LOCATIONS.join(", ")
                ));
            }
        }
        let zone = self.network_zone();
        for loc in std::iter::once(&self.location).chain(self.fallback_locations.iter()) {
            if let Some(z) = zone_of(loc) {
                if z != zone {
                    p.push(format!(
                        "location {loc:?} is in network zone {z} but the private network's subnet is in {zone}: its servers could not join the network; use locations in {zone} (Hetzner private networks do not span zones)"
                    ));
                }
            }
        }
        if self.fallback_locations.contains(&self.location) {
            p.push(format!(
                "fallback_locations repeats the main location {:?}: remove it",
                self.location
            ));
        }
        self.check_network(&mut p);
        let cp = self.control_plane.count;
        if !matches!(cp, 1 | 3 | 5) {
            p.push(format!(
                "control_plane.count is {cp}: use 1, 3 or 5 (an odd count keeps etcd quorum; more than 5 slows etcd down)"
            ));
        }
        if self.control_plane.server_type.trim().is_empty() {
            p.push(
                "control_plane.server_type is empty: name a Hetzner server type such as \"cpx21\""
                    .into(),
            );
        }
        let mut seen = std::collections::BTreeSet::new();
        for pool in &self.worker_pools {
            if let Err(e) = check_dns_label(&pool.name) {
                p.push(format!("worker pool name {:?} {e}", pool.name));
            } else if pool.name.len() > 20 {
                p.push(format!(
                    "worker pool name {:?} is too long: use at most 20 characters",
                    pool.name
                ));
            }
            if !seen.insert(pool.name.clone()) {
                p.push(format!(
                    "worker pool {:?} is defined twice: pool names must be unique",
                    pool.name
                ));
            }
            if pool.count > MAX_SPREAD_GROUP_SERVERS {
                p.push(format!(
                    "worker pool {:?} has {} servers: a spread placement group holds at most {MAX_SPREAD_GROUP_SERVERS}; split it into several pools",
                    pool.name, pool.count
                ));
            }
            if pool.server_type.trim().is_empty() {
                p.push(format!(
                    "worker pool {:?} has an empty server_type: name a Hetzner server type such as \"cpx31\"",
                    pool.name
                ));
            }
            for t in &pool.taints {
                if !valid_taint(t) {
                    p.push(format!(
                        "worker pool {:?} taint {t:?} is malformed: write key=value:Effect with Effect NoSchedule, PreferNoSchedule or NoExecute",
                        pool.name
                    ));
                }
            }
        }
        match (&self.image.selector, self.image.id) {
            (Some(_), Some(_)) => p.push(
                "image sets both selector and id: set only one of them".into(),
            ),
            (None, None) => p.push(
                "image sets neither selector nor id: set image.selector (e.g. \"os=talos\") or image.id".into(),
            ),
            (Some(s), None) if s.trim().is_empty() => {
                p.push("image.selector is empty: write a label selector such as \"os=talos\"".into())
            }
            _ => {}
        }
        if let Some(pl) = &self.platform {
            let url = pl.repo_url.trim();
            if !(url.starts_with("https://")
                || url.starts_with("ssh://")
                || url.starts_with("git@"))
                || url.contains(char::is_whitespace)
            {
                p.push(format!(
                    "platform.repo_url {:?} is not a Git URL Argo CD can clone: write https://... (or ssh://... / git@host:path with a repository credential in Argo CD)",
                    pl.repo_url
                ));
            }
            if pl.revision.trim().is_empty() || pl.revision.contains(char::is_whitespace) {
                p.push(format!(
                    "platform.revision {:?} is not a branch, tag or commit: write e.g. \"main\"",
                    pl.revision
                ));
            }
            if let Err(e) = check_dns_label(&pl.environment) {
                p.push(format!(
                    "platform.environment {:?} {e} (it names infra/argocd/overlays/<environment>)",
                    pl.environment
                ));
            }
        }
        for src in &self.firewall.admin_sources {
            if parse_cidr_any(src).is_none() {
                p.push(format!(
                    "firewall.admin_sources entry {src:?} is not a CIDR: write e.g. \"2001:db8::/64\" or \"203.0.113.7/32\""
                ));
            }
        }
        p
    }

    fn check_network(&self, p: &mut Vec<String>) {
        let range = parse_cidr4(&self.network.ip_range);
        let subnet = parse_cidr4(&self.network.subnet);
        match range {
            None => p.push(format!(
                "network.ip_range {:?} is not an IPv4 CIDR: write e.g. \"10.0.0.0/16\"",
                self.network.ip_range
            )),
            Some((addr, len)) => {
                if !addr.is_private() {
                    p.push(format!(
                        "network.ip_range {:?} is not a private range: use one inside 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16",
                        self.network.ip_range
                    ));
                }
                if len > 24 {
                    p.push(format!(
                        "network.ip_range {:?} is too small: use a prefix of /24 or shorter",
                        self.network.ip_range
                    ));
                }
            }
        }
        match (range, subnet) {
            (_, None) => p.push(format!(
                "network.subnet {:?} is not an IPv4 CIDR: write e.g. \"10.0.1.0/24\"",
                self.network.subnet
            )),
            (Some((ra, rl)), Some((sa, sl))) if sl < rl || !cidr_contains(ra, rl, sa) => {
                p.push(format!(
                    "network.subnet {:?} is not inside network.ip_range {:?}",
                    self.network.subnet, self.network.ip_range
                ));
            }
            _ => {}
        }
    }

    /// The subnet's network zone: explicit, or that of the main location.
    pub fn network_zone(&self) -> String {
        self.network
            .network_zone
            .clone()
            .or_else(|| zone_of(&self.location).map(str::to_string))
            .unwrap_or_else(|| "eu-central".to_string())
    }

    /// Total number of servers.
    pub fn server_count(&self) -> u32 {
        self.control_plane.count + self.worker_pools.iter().map(|p| p.count).sum::<u32>()
    }

    /// The spec's hash (hex, 16 chars): a label on every resource.
    pub fn hash(&self) -> String {
        short_hash(&serde_json::to_string(self).unwrap_or_default())
    }

    /// A commented starting spec.
    pub fn template(name: &str) -> String {
        format!(
            r#"# Cluster spec for `provisioner`. Unknown keys are errors.
# Cluster name: lowercase letters, digits and dashes; prefixes every resource name.
name = "{name}"
# Hetzner location of the servers (hil = Hillsboro, Oregon).
location = "hil"
# Locations tried in order when the main one has no capacity.
fallback_locations = []
# When true, `provisioner down` refuses to delete this cluster.
delete_protection = false

[network]
# Private network for node-to-node traffic (Hetzner private networks are IPv4-only;
# the servers have no public IPv4, only IPv6).
ip_range = "10.0.0.0/16"
subnet = "10.0.1.0/24"
# network_zone defaults to the location's zone (us-west for hil); fallback
# locations must be in the same zone.

[control_plane]
# 1, 3 or 5.
count = 3
server_type = "cpx21"

[[worker_pools]]
name = "default"
count = 3
server_type = "cpx31"
labels = {{}}
taints = []

[image]
# Label selector of your Talos snapshot (or `id = 123456`).
selector = "os=talos"

[firewall]
# Who may reach the Talos API (50000) and Kubernetes API (6443) until `provisioner lockdown`.
admin_sources = ["2001:db8::/32"]

# Talos machine configs, generated natively (no talosctl needed). The secrets bundle is
# written age-encrypted to infra/clusters/{name}/talos-secrets.age (paths relative to
# this file, which sits at the repository root).
[machine_config.generated]
talos_version = "{talos}"
# Kubernetes API endpoint in every config: a DNS name with the control-plane nodes'
# AAAA records (or a fixed IPv6 address).
endpoint = "https://api.{name}.example.com:6443"
# age public keys to encrypt the secrets to (else SHOPEDGE_AGE_RECIPIENTS);
# decrypting needs SHOPEDGE_AGE_IDENTITY or SHOPEDGE_AGE_IDENTITY_FILE.
age_recipients = []
# Talos config JSON schemas, used to validate every config before anything is created.
schema_dir = "../shared/talos-config-schema"
# Strategic-merge patches applied to the generated configs.
patch_dir = "infra/talos"

# After Talos, `up` reconciles the Cloudflare Tunnel (needs CLOUDFLARE_API_TOKEN and
# CLOUDFLARE_ACCOUNT_ID) and applies the add-ons of infra/bootstrap/ through the
# Kubernetes API (Cilium, Hetzner CCM and CSI, cloudflared, Argo CD and the root
# Application), then closes the bootstrap firewall window (`lockdown`).
# [tunnel]
# spec = "infra/apps/cloudflared/tunnel.toml"
# [platform]
# repo_url = "https://github.com/you/shopedge"
# revision = "main"
# environment = "production"   # infra/argocd/overlays/<env>, infra/secrets/edge.<env>.age
# infra_dir = "infra"

# Or bring your own machine configs, e.g. from `talosctl gen config`:
# [machine_config.files]
# control_plane = "controlplane.yaml"
# worker = "worker.yaml"
"#,
            talos = talos::DEFAULT_TALOS_VERSION
        )
    }
}

/// Short hex sha256 of a string.
pub fn short_hash(s: &str) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(s.as_bytes());
    hex::encode(&d[..8])
}

fn strip_location(msg: &str) -> String {
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// Checks an RFC 1123 DNS label; the error says what is wrong and how to fix it.
pub fn check_dns_label(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("is empty: use lowercase letters, digits and dashes".into());
    }
    if s.len() > MAX_NAME_LEN {
        return Err(format!("is longer than {MAX_NAME_LEN} characters"));
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err("is not DNS-safe: use only lowercase letters, digits and dashes".into());
    }
    if s.starts_with('-') || s.ends_with('-') {
        return Err("starts or ends with a dash: DNS names cannot".into());
    }
    if !s.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err("must start with a letter".into());
    }
    Ok(())
}

fn valid_taint(t: &str) -> bool {
    let Some((kv, effect)) = t.rsplit_once(':') else {
        return false;
    };
    if !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
        return false;
    }
    let key = kv.split_once('=').map_or(kv, |(k, _)| k);
    !key.is_empty() && !key.contains(char::is_whitespace)
}

/// Parses an IPv4 CIDR with a network address (no host bits set).
pub fn parse_cidr4(s: &str) -> Option<(Ipv4Addr, u8)> {
    let (a, l) = s.split_once('/')?;
    let addr: Ipv4Addr = a.parse().ok()?;
    let len: u8 = l.parse().ok()?;
    if len > 32 {
        return None;
    }
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    if u32::from(addr) & !mask != 0 {
        return None;
    }
    Some((addr, len))
}

fn parse_cidr_any(s: &str) -> Option<()> {
    let (a, l) = s.split_once('/')?;
    let addr: std::net::IpAddr = a.parse().ok()?;
    let len: u8 = l.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    (len <= max).then_some(())
}

fn cidr_contains(net: Ipv4Addr, len: u8, addr: Ipv4Addr) -> bool {
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    u32::from(net) & mask == u32::from(addr) & mask
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> String {
        ClusterSpec::template("shop")
    }

    fn parse(t: &str) -> Result<ClusterSpec, SpecError> {
        ClusterSpec::parse(t, Path::new("cluster.toml"))
    }

    #[test]
    fn template_parses_and_validates() {
        let s = parse(&good()).unwrap();
        assert_eq!(s.location, "hil");
        assert_eq!(s.server_count(), 6);
        assert!(s.problems().is_empty(), "{:?}", s.problems());
    }

    #[test]
    fn unknown_key_has_line_and_column() {
        let t = good().replace(
            "delete_protection = false",
            "delete_protection = false\nflavour = 1",
        );
        let e = parse(&t).unwrap_err().to_string();
        assert!(e.contains("unknown field `flavour`"), "{e}");
        let line = t.lines().position(|l| l.starts_with("flavour")).unwrap() + 1;
        assert!(e.starts_with(&format!("cluster.toml:{line}:1:")), "{e}");
    }

    #[test]
    fn yaml_unknown_key_has_line() {
        let y = "name: shop\ncontrol_plane: {count: 1, server_type: cx22}\nimage: {id: 1}\nmachine_config: {files: {control_plane: a, worker: b}}\nbogus: 1\n";
        let e = ClusterSpec::parse(y, Path::new("c.yaml"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("c.yaml:5:"), "{e}");
        assert!(e.contains("bogus"), "{e}");
    }

    #[test]
    fn problems_name_the_fix() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "count = 3\nserver_type = \"cpx21\"",
                "count = 2\nserver_type = \"cpx21\"",
                "use 1, 3 or 5",
            ),
            ("name = \"shop\"", "name = \"Shop_1\"", "not DNS-safe"),
            (
                "location = \"hil\"",
                "location = \"mars\"",
                "location \"mars\" is unknown: use one of",
            ),
            (
                "count = 3\nserver_type = \"cpx31\"",
                "count = 11\nserver_type = \"cpx31\"",
                "at most 10",
            ),
            (
                "selector = \"os=talos\"",
                "selector = \"os=talos\"\nid = 5",
                "set only one",
            ),
            ("selector = \"os=talos\"", "", "neither selector nor id"),
            (
                "subnet = \"10.0.1.0/24\"",
                "subnet = \"10.9.1.0/24\"",
                "not inside network.ip_range",
            ),
            (
                "ip_range = \"10.0.0.0/16\"",
                "ip_range = \"8.8.0.0/16\"",
                "not a private range",
            ),
            ("[\"2001:db8::/32\"]", "[\"nonsense\"]", "is not a CIDR"),
            (
                "taints = []",
                "taints = [\"a=b\"]",
                "taint \"a=b\" is malformed",
            ),
            (
                "name = \"default\"",
                "name = \"-x\"",
                "starts or ends with a dash",
            ),
            (
                "fallback_locations = []",
                "fallback_locations = [\"ash\"]",
                "location \"ash\" is in network zone us-east but the private network's subnet is in us-west",
            ),
        ];
        for (from, to, want) in cases {
            let t = good().replacen(from, to, 1);
            assert_ne!(t, good(), "case {want} did not change the spec");
            let s = parse(&t).unwrap();
            let e = s
                .validate(Path::new("cluster.toml"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "want {want:?} in {e}");
        }
    }

    #[test]
    fn platform_and_tunnel_sections_parse_with_defaults_and_are_checked() {
        let t = format!(
            "{}\n[tunnel]\n\n[platform]\nrepo_url = \"https://github.com/example/shop\"\n",
            good()
        );
        let s = parse(&t).unwrap();
        assert!(s.problems().is_empty(), "{:?}", s.problems());
        let pl = s.platform.as_ref().unwrap();
        assert_eq!(
            (pl.revision.as_str(), pl.environment.as_str()),
            ("main", "production")
        );
        assert_eq!(pl.infra_dir, PathBuf::from("infra"));
        assert_eq!(
            s.tunnel.as_ref().unwrap().spec,
            PathBuf::from("infra/apps/cloudflared/tunnel.toml")
        );
        // Absent sections leave the spec hash as it was.
        let plain = parse(&good()).unwrap();
        assert!(!serde_json::to_string(&plain).unwrap().contains("platform"));
        for (bad, want) in [
            ("repo_url = \"ftp://x/y\"", "platform.repo_url"),
            (
                "repo_url = \"https://x/y\"\nenvironment = \"Prod\"",
                "platform.environment",
            ),
            (
                "repo_url = \"https://x/y\"\nrevision = \"\"",
                "platform.revision",
            ),
        ] {
            let s = parse(&format!("{}\n[platform]\n{bad}\n", good())).unwrap();
            let e = s
                .validate(Path::new("cluster.toml"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "want {want:?} in {e}");
        }
        let e = parse(&format!("{}\n[platform]\nrepo = \"x\"\n", good()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `repo`"), "{e}");
    }

    #[test]
    fn missing_required_field_is_reported() {
        let t = good().replace("server_type = \"cpx21\"\n", "");
        let e = parse(&t).unwrap_err().to_string();
        assert!(e.contains("missing field `server_type`"), "{e}");
    }

    #[test]
    fn hash_changes_with_spec() {
        let a = parse(&good()).unwrap();
        let mut b = a.clone();
        b.control_plane.server_type = "cpx31".into();
        assert_ne!(a.hash(), b.hash());
        assert_eq!(a.hash().len(), 16);
    }
}
