//! What we want from Cloudflare, parsed and validated before any API call.

use serde::{Deserialize, Serialize};

use crate::error::TunnelError;

/// The tunnel spec (a TOML file, or a section of the provisioner's spec).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TunnelSpec {
    /// Cluster name; the tunnel is `<cluster>-tunnel`.
    pub cluster: String,
    /// DNS zone apex (e.g. `example.com`); every hostname must be inside it.
    pub zone: String,
    /// Environment: selects `infra/secrets/edge.<environment>.age`.
    #[serde(default = "default_env")]
    pub environment: String,
    /// The Worker script whose secrets we manage.
    #[serde(default = "default_script")]
    pub worker_script: String,
    /// Medusa origin.
    pub medusa: Origin,
    /// Optional Postgres origin (TCP through the tunnel, for Hyperdrive).
    #[serde(default)]
    pub postgres: Option<Origin>,
    /// Origin request settings for every ingress rule.
    #[serde(default)]
    pub origin_request: OriginRequest,
    /// Optional Hyperdrive config (needs `postgres`).
    #[serde(default)]
    pub hyperdrive: Option<Hyperdrive>,
    /// How the Worker reaches Medusa: `access` (public tunnel hostname
    /// behind Access) or `workers_vpc` (a Workers VPC service on the tunnel,
    /// no public hostname); see the README.
    #[serde(default)]
    pub worker_binding: WorkerBinding,
}

fn default_env() -> String {
    "production".into()
}
fn default_script() -> String {
    "shopedge-edge".into()
}

/// An origin behind the tunnel.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Origin {
    /// Public hostname (inside the zone). Required, except for Medusa with
    /// `worker_binding = "workers_vpc"`, where it is not published (when
    /// given there, our old DNS record of that name is removed).
    #[serde(default)]
    pub hostname: String,
    /// Kubernetes namespace of the Service.
    pub namespace: String,
    /// Service name.
    pub service: String,
    /// Service port.
    pub port: u16,
    /// Labels of the origin's pods, to narrow cloudflared's egress
    /// NetworkPolicy (default: the whole namespace on that port).
    #[serde(default)]
    pub pod_labels: std::collections::BTreeMap<String, String>,
}

/// Origin request settings (cloudflared `originRequest`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OriginRequest {
    /// `connectTimeout`, seconds.
    pub connect_timeout_s: u32,
    /// `tlsTimeout`, seconds.
    pub tls_timeout_s: u32,
    /// `tcpKeepAlive`, seconds.
    pub tcp_keep_alive_s: u32,
    /// `keepAliveTimeout`, seconds.
    pub keep_alive_timeout_s: u32,
    /// `keepAliveConnections`.
    pub keep_alive_connections: u32,
    /// `http2Origin`.
    pub http2_origin: bool,
}

impl Default for OriginRequest {
    fn default() -> Self {
        Self {
            connect_timeout_s: 10,
            tls_timeout_s: 10,
            tcp_keep_alive_s: 30,
            keep_alive_timeout_s: 90,
            keep_alive_connections: 100,
            http2_origin: false,
        }
    }
}

/// Hyperdrive settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Hyperdrive {
    /// Config name.
    pub name: String,
    /// Database.
    pub database: String,
    /// User.
    pub user: String,
    /// Name of the entry in the secrets file holding the password
    /// (`PROVISION_…` names are never pushed to the Worker).
    #[serde(default = "default_pw")]
    pub password_secret: String,
    /// Disable query caching.
    #[serde(default)]
    pub caching_disabled: bool,
}

fn default_pw() -> String {
    "PROVISION_POSTGRES_PASSWORD".into()
}

/// How the Worker reaches the origin.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum WorkerBinding {
    /// Public tunnel hostname protected by Access with a service token.
    #[default]
    Access,
    /// A Workers VPC service (`<cluster>-medusa`) reaching Medusa's
    /// in-cluster Service through the tunnel; the Worker binds it as
    /// [`VPC_BINDING`]. Medusa then has no public hostname, DNS record,
    /// ingress rule or Access application.
    WorkersVpc,
}

/// The Worker binding name of the Medusa VPC service (`[[vpc_services]]`).
pub const VPC_BINDING: &str = "MEDUSA_VPC";

/// Oldest cloudflared that serves Workers VPC traffic (Cloudflare's Workers
/// VPC troubleshooting notes; older ones fail with `dns_error`).
pub const WORKERS_VPC_MIN_CLOUDFLARED: &str = "2025.7.0";

/// Names of the Worker secrets holding the Access service token.
pub const ACCESS_CLIENT_ID: &str = "ACCESS_CLIENT_ID";
/// See [`ACCESS_CLIENT_ID`].
pub const ACCESS_CLIENT_SECRET: &str = "ACCESS_CLIENT_SECRET";

/// Ownership comment put on our DNS records.
pub fn ownership_comment(cluster: &str) -> String {
    format!("managed-by=shopedge-provisioner cluster={cluster}")
}

impl TunnelSpec {
    /// Parses TOML and validates.
    pub fn from_toml(text: &str) -> Result<Self, TunnelError> {
        let spec: TunnelSpec =
            toml::from_str(text).map_err(|e| TunnelError::Spec(e.to_string()))?;
        spec.validate()?;
        Ok(spec)
    }

    /// The tunnel's name.
    pub fn tunnel_name(&self) -> String {
        format!("{}-tunnel", self.cluster)
    }

    /// The Access service token's name.
    pub fn service_token_name(&self) -> String {
        format!("{}-worker", self.cluster)
    }

    /// Access application name for an origin role (`medusa`, `postgres`).
    pub fn access_app_name(&self, role: &str) -> String {
        format!("{}-{role}", self.cluster)
    }

    /// The origins with their role, Medusa first (all of them, whether
    /// published or reached through Workers VPC: cloudflared's egress).
    pub fn origins(&self) -> Vec<(&'static str, &Origin)> {
        let mut v = vec![("medusa", &self.medusa)];
        if let Some(p) = &self.postgres {
            v.push(("postgres", p));
        }
        v
    }

    /// The origins published on a tunnel hostname (ingress rule, proxied
    /// CNAME, Access application): all but Medusa under Workers VPC.
    pub fn public_origins(&self) -> Vec<(&'static str, &Origin)> {
        self.origins()
            .into_iter()
            .filter(|(role, _)| !(*role == "medusa" && self.uses_vpc()))
            .collect()
    }

    /// Whether Medusa is reached through a Workers VPC service.
    pub fn uses_vpc(&self) -> bool {
        self.worker_binding == WorkerBinding::WorkersVpc
    }

    /// Whether anything is behind Access (then the service token is needed).
    pub fn uses_access(&self) -> bool {
        !self.public_origins().is_empty()
    }

    /// The Workers VPC service's name (unique in the account).
    pub fn vpc_service_name(&self) -> String {
        format!("{}-medusa", self.cluster)
    }

    /// The in-cluster name of an origin's Service (what the ingress rule and
    /// the VPC service point at).
    pub fn cluster_host(o: &Origin) -> String {
        format!("{}.{}.svc.cluster.local", o.service, o.namespace)
    }

    /// Checks everything that can be checked without the API.
    pub fn validate(&self) -> Result<(), TunnelError> {
        let bad = |m: String| Err(TunnelError::Spec(m));
        if !is_dns_label(&self.cluster) {
            return bad(format!(
                "cluster {:?} must be a DNS label (lowercase letters, digits, '-', at most 50 chars)",
                self.cluster
            ));
        }
        if !is_hostname(&self.zone) {
            return bad(format!("zone {:?} is not a valid domain name", self.zone));
        }
        if !is_dns_label(&self.environment) {
            return bad(format!(
                "environment {:?} must be lowercase letters, digits and '-'",
                self.environment
            ));
        }
        if self.worker_script.is_empty() || !is_dns_label(&self.worker_script) {
            return bad(format!(
                "worker_script {:?} is not a valid Worker name",
                self.worker_script
            ));
        }
        let public = self.public_origins();
        for (role, o) in self.origins() {
            let published = public.iter().any(|(r, _)| *r == role);
            if o.hostname.is_empty() {
                // Medusa under Workers VPC needs none.
                if published {
                    return bad(format!(
                    "{role}.hostname is missing: the public tunnel hostname (inside {}) is required{}",
                    self.zone,
                    if role == "medusa" {
                        " unless worker_binding = \"workers_vpc\""
                    } else {
                        ""
                    }
                    ));
                }
            } else if !is_hostname(&o.hostname) {
                return bad(format!(
                    "{role}.hostname {:?} is not a valid hostname",
                    o.hostname
                ));
            }
            let zone = self.zone.to_ascii_lowercase();
            let host = o.hostname.to_ascii_lowercase();
            if !host.is_empty() && (host == zone || !host.ends_with(&format!(".{zone}"))) {
                return bad(format!(
                    "{role}.hostname {:?} is outside the zone {:?}: use a name under {}",
                    o.hostname, self.zone, self.zone
                ));
            }
            if !is_dns_label(&o.namespace) || !is_dns_label(&o.service) {
                return bad(format!(
                    "{role}.namespace / {role}.service must be Kubernetes DNS labels"
                ));
            }
            if o.port == 0 {
                return bad(format!("{role}.port must not be 0"));
            }
        }
        if let (Some(m), Some(p)) = (Some(&self.medusa), &self.postgres) {
            if !m.hostname.is_empty() && m.hostname.eq_ignore_ascii_case(&p.hostname) {
                return bad("medusa.hostname and postgres.hostname must differ".into());
            }
        }
        if self.hyperdrive.is_some() && self.postgres.is_none() {
            return bad("hyperdrive needs a [postgres] origin to connect through".into());
        }
        let or = &self.origin_request;
        if or.connect_timeout_s == 0 || or.connect_timeout_s > 300 {
            return bad("origin_request.connect_timeout_s must be 1..=300".into());
        }
        Ok(())
    }
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 50
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_hostname(s: &str) -> bool {
    s.len() <= 253
        && s.contains('.')
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const EXAMPLE: &str = r#"
cluster = "shop"
zone = "example.com"
[medusa]
hostname = "medusa-origin.example.com"
namespace = "medusa"
service = "medusa"
port = 9000
"#;

    #[test]
    fn example_parses_with_defaults() {
        let s = TunnelSpec::from_toml(EXAMPLE).unwrap();
        assert_eq!(s.tunnel_name(), "shop-tunnel");
        assert_eq!(s.environment, "production");
        assert_eq!(s.origin_request.keep_alive_timeout_s, 90);
    }

    #[test]
    fn hostname_outside_zone_is_rejected() {
        let t = EXAMPLE.replace("medusa-origin.example.com", "medusa.example.org");
        let e = TunnelSpec::from_toml(&t).unwrap_err().to_string();
        assert!(e.contains("outside the zone"), "{e}");
        let t = EXAMPLE.replace("medusa-origin.example.com", "badexample.com");
        assert!(TunnelSpec::from_toml(&t).is_err());
    }

    #[test]
    fn workers_vpc_makes_the_medusa_hostname_optional() {
        let vpc = format!("worker_binding = \"workers_vpc\"\n{EXAMPLE}");
        let s = TunnelSpec::from_toml(&vpc).unwrap();
        assert!(s.uses_vpc() && !s.uses_access());
        assert!(s.public_origins().is_empty());
        assert_eq!(s.origins().len(), 1, "cloudflared still reaches Medusa");
        assert_eq!(s.vpc_service_name(), "shop-medusa");
        assert_eq!(
            TunnelSpec::cluster_host(&s.medusa),
            "medusa.medusa.svc.cluster.local"
        );
        let no_host = vpc.replace("hostname = \"medusa-origin.example.com\"\n", "");
        assert!(TunnelSpec::from_toml(&no_host)
            .unwrap()
            .medusa
            .hostname
            .is_empty());
        // Given, it must still be a name in the zone (our old record there
        // is what gets removed).
        let outside = vpc.replace("medusa-origin.example.com", "medusa.example.org");
        let e = TunnelSpec::from_toml(&outside).unwrap_err().to_string();
        assert!(e.contains("outside the zone"), "{e}");
        // In Access mode it is required.
        let e = TunnelSpec::from_toml(
            &EXAMPLE.replace("hostname = \"medusa-origin.example.com\"\n", ""),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("medusa.hostname is missing") && e.contains("workers_vpc"),
            "{e}"
        );
    }

    #[test]
    fn unknown_keys_and_hyperdrive_without_postgres_are_rejected() {
        assert!(TunnelSpec::from_toml(&format!("{EXAMPLE}\nbogus = 1")).is_err());
        let t = format!("{EXAMPLE}\n[hyperdrive]\nname=\"x\"\ndatabase=\"d\"\nuser=\"u\"\n");
        let e = TunnelSpec::from_toml(&t).unwrap_err().to_string();
        assert!(e.contains("postgres"), "{e}");
    }
}
