//! Pure planning: desired state (spec) vs observed state -> actions.
//! No I/O here; [`crate::reconcile`] observes and executes.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{json, Value};

use crate::api::endpoints::{
    AccessApp, AccessAppBody, AccessPolicy, DnsRecord, HyperdriveConfig, ServiceAuthPolicy,
    ServiceToken, Tunnel, VpcService, VpcServiceBody,
};
use crate::error::TunnelError;
use crate::spec::{ownership_comment, Origin, TunnelSpec};

/// What we saw in the account (read-only calls only).
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// Zone id.
    pub zone_id: String,
    /// Our tunnel, if it exists.
    pub tunnel: Option<Tunnel>,
    /// Its current configuration.
    pub tunnel_config: Option<Value>,
    /// DNS records by hostname (all types).
    pub dns: BTreeMap<String, Vec<DnsRecord>>,
    /// Service tokens with our name.
    pub service_token: Option<ServiceToken>,
    /// All Access applications.
    pub access_apps: Vec<AccessApp>,
    /// Policies of our applications, by app id.
    pub policies: BTreeMap<String, Vec<AccessPolicy>>,
    /// Hyperdrive configs with our name.
    pub hyperdrive: Option<HyperdriveConfig>,
    /// The Workers VPC service with our name (Workers VPC mode only).
    pub vpc_service: Option<VpcService>,
    /// Whether the secrets file holds a usable secret for the observed token.
    pub token_secret_stored: bool,
    /// Current time, Unix seconds (for token expiry).
    pub now_unix: i64,
}

/// Refresh the service token when it expires within this many seconds.
pub const TOKEN_REFRESH_WINDOW_S: i64 = 30 * 24 * 3600;

/// Parses an RFC 3339 UTC timestamp (`2027-01-01T00:00:00Z`, fractional
/// seconds and numeric offsets accepted) into Unix seconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !(b[10] == b'T' || b[10] == b't' || b[10] == b' ')
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(|c| c.is_ascii_digit()).count();
        rest = &frac[n..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && (rest.starts_with('+') || rest.starts_with('-')) => {
            let oh: i64 = rest.get(1..3)?.parse().ok()?;
            let om: i64 = rest.get(4..6)?.parse().ok()?;
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (oh * 3600 + om * 60)
        }
        _ => return None,
    };
    // Days from civil (proleptic Gregorian), after H. Hinnant's algorithm.
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + se - offset)
}

/// One step of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Create the tunnel.
    CreateTunnel { name: String },
    /// Replace the tunnel's configuration.
    PutTunnelConfig { reason: String },
    /// Create a proxied CNAME.
    CreateDnsRecord { hostname: String },
    /// Fix our CNAME.
    UpdateDnsRecord { hostname: String, id: String },
    /// Create the service token and store its secret.
    CreateServiceToken { name: String },
    /// Our token expires soon (or its expiry is unreadable): extend it.
    RefreshServiceToken { name: String, id: String },
    /// Our token exists but its secret is not in the secrets file (lost in a
    /// crash right after creation): rotate it to get a new secret and store it.
    RecoverServiceTokenSecret { name: String, id: String },
    /// Create an Access application.
    CreateAccessApp { role: String, hostname: String },
    /// Fix our Access application.
    UpdateAccessApp { role: String, id: String },
    /// Create the Service Auth policy.
    CreateAccessPolicy { role: String },
    /// Fix the Service Auth policy.
    UpdateAccessPolicy { role: String, id: String },
    /// Remove a policy someone added to our application (it would admit more
    /// than our service token).
    DeleteAccessPolicy {
        role: String,
        id: String,
        name: String,
    },
    /// Create the Hyperdrive config.
    CreateHyperdrive { name: String },
    /// Update the Hyperdrive config.
    UpdateHyperdrive {
        name: String,
        id: String,
        reason: String,
    },
    /// Create the Workers VPC service for Medusa.
    CreateVpcService { name: String },
    /// Replace our Workers VPC service (it has our name, so it is ours).
    UpdateVpcService {
        name: String,
        id: String,
        reason: String,
    },
    /// Delete our CNAME of a hostname no longer published (Medusa under
    /// Workers VPC).
    DeleteDnsRecord { hostname: String, id: String },
    /// Delete our Access application of an origin no longer published.
    DeleteAccessApp {
        role: String,
        id: String,
        name: String,
    },
}

impl Action {
    /// One-line description (names only, never secret values).
    pub fn describe(&self) -> String {
        match self {
            Action::CreateTunnel { name } => format!("create tunnel {name}"),
            Action::PutTunnelConfig { reason } => format!("put tunnel configuration ({reason})"),
            Action::CreateDnsRecord { hostname } => format!("create proxied CNAME {hostname}"),
            Action::UpdateDnsRecord { hostname, .. } => format!("update CNAME {hostname}"),
            Action::CreateServiceToken { name } => format!("create Access service token {name}"),
            Action::RefreshServiceToken { name, .. } => {
                format!("refresh Access service token {name} (expires within 30 days)")
            }
            Action::RecoverServiceTokenSecret { name, .. } => {
                format!(
                    "rotate Access service token {name} (its secret is not in the secrets file)"
                )
            }
            Action::CreateAccessApp { role, hostname } => {
                format!("create Access application for {role} ({hostname})")
            }
            Action::UpdateAccessApp { role, .. } => format!("update Access application for {role}"),
            Action::CreateAccessPolicy { role } => format!("create Service Auth policy for {role}"),
            Action::UpdateAccessPolicy { role, .. } => {
                format!("update Service Auth policy for {role}")
            }
            Action::DeleteAccessPolicy { role, name, .. } => {
                format!("delete policy {name:?} from our {role} application")
            }
            Action::CreateHyperdrive { name } => format!("create Hyperdrive config {name}"),
            Action::UpdateHyperdrive { name, reason, .. } => {
                format!("update Hyperdrive config {name} ({reason})")
            }
            Action::CreateVpcService { name } => format!("create Workers VPC service {name}"),
            Action::UpdateVpcService { name, reason, .. } => {
                format!("update Workers VPC service {name} ({reason})")
            }
            Action::DeleteDnsRecord { hostname, .. } => {
                format!("delete our CNAME {hostname} (Medusa is reached through Workers VPC)")
            }
            Action::DeleteAccessApp { role, name, .. } => {
                format!("delete Access application {name} ({role} is reached through Workers VPC)")
            }
        }
    }
}

/// The `service` URL of an origin.
pub fn origin_service(role: &str, o: &Origin) -> String {
    let scheme = if role == "postgres" { "tcp" } else { "http" };
    format!("{scheme}://{}:{}", TunnelSpec::cluster_host(o), o.port)
}

/// The Workers VPC service we want on tunnel `tunnel_id`: Medusa's
/// in-cluster Service, the same one the Access-mode ingress rule targets.
pub fn desired_vpc_service(spec: &TunnelSpec, tunnel_id: &str) -> VpcServiceBody {
    VpcServiceBody {
        name: spec.vpc_service_name(),
        hostname: TunnelSpec::cluster_host(&spec.medusa),
        tunnel_id: tunnel_id.to_string(),
        http_port: spec.medusa.port,
    }
}

/// The tunnel configuration we want (we own the whole list): an ingress rule
/// per published origin (Workers VPC traffic needs none).
pub fn desired_tunnel_config(spec: &TunnelSpec) -> Value {
    let or = &spec.origin_request;
    let mut ingress: Vec<Value> = spec
        .public_origins()
        .into_iter()
        .map(|(role, o)| json!({"hostname": o.hostname, "service": origin_service(role, o)}))
        .collect();
    ingress.push(json!({"service": "http_status:404"}));
    json!({
        "ingress": ingress,
        "originRequest": {
            "connectTimeout": or.connect_timeout_s,
            "tlsTimeout": or.tls_timeout_s,
            "tcpKeepAlive": or.tcp_keep_alive_s,
            "keepAliveTimeout": or.keep_alive_timeout_s,
            "keepAliveConnections": or.keep_alive_connections,
            "http2Origin": or.http2_origin,
        },
        "warp-routing": {"enabled": false},
    })
}

/// Whether `observed` has every value of `desired` (objects may carry extra
/// keys the API adds; arrays must match element by element).
pub fn json_covers(desired: &Value, observed: &Value) -> bool {
    match (desired, observed) {
        (Value::Object(d), Value::Object(o)) => d
            .iter()
            .all(|(k, v)| o.get(k).is_some_and(|ov| json_covers(v, ov))),
        (Value::Array(d), Value::Array(o)) => {
            d.len() == o.len() && d.iter().zip(o).all(|(a, b)| json_covers(a, b))
        }
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (a, b) => a == b,
    }
}

/// The CNAME target of a tunnel.
pub fn tunnel_target(tunnel_id: &str) -> String {
    format!("{tunnel_id}.cfargotunnel.com")
}

/// Whether a DNS record carries our ownership mark.
pub fn dns_is_ours(rec: &DnsRecord, cluster: &str) -> bool {
    rec.kind == "CNAME" && rec.comment.as_deref() == Some(ownership_comment(cluster).as_str())
}

/// Our Access application for a role, or an error if the hostname is taken
/// by an application that is not ours.
pub fn find_app<'a>(
    spec: &TunnelSpec,
    apps: &'a [AccessApp],
    role: &str,
    hostname: &str,
) -> Result<Option<&'a AccessApp>, TunnelError> {
    let name = spec.access_app_name(role);
    if let Some(foreign) = apps
        .iter()
        .find(|a| a.domain.eq_ignore_ascii_case(hostname) && a.name != name)
    {
        return Err(TunnelError::Foreign(format!(
            "Access application {:?} (id {}) already protects {hostname} and is not managed by shopedge (expected name {name:?}): remove it or choose another hostname",
            foreign.name, foreign.id
        )));
    }
    Ok(apps.iter().find(|a| a.name == name))
}

/// Ownership checks on what we observed; run before planning and before any
/// mutating call.
pub fn check_ownership(spec: &TunnelSpec, obs: &Observed) -> Result<(), TunnelError> {
    if let Some(t) = &obs.tunnel {
        if t.config_src.as_deref() != Some("cloudflare") {
            return Err(TunnelError::Foreign(format!(
                "tunnel {} (id {}) exists but is locally managed (config_src={}); shopedge manages remotely managed tunnels only: delete it or rename the cluster",
                t.name,
                t.id,
                t.config_src.as_deref().unwrap_or("unknown")
            )));
        }
    }
    for (_, o) in spec.public_origins() {
        for rec in obs.dns.get(&o.hostname).into_iter().flatten() {
            if !dns_is_ours(rec, &spec.cluster) {
                return Err(TunnelError::ForeignDnsRecord {
                    name: rec.name.clone(),
                    kind: rec.kind.clone(),
                    content: rec.content.clone(),
                    id: rec.id.clone(),
                });
            }
        }
    }
    for (role, o) in spec.public_origins() {
        find_app(spec, &obs.access_apps, role, &o.hostname)?;
    }
    Ok(())
}

/// Computes the actions that bring the account to the spec.
/// `hyperdrive_forced` is set when the token secret changes in this run.
pub fn plan(spec: &TunnelSpec, obs: &Observed) -> Result<Vec<Action>, TunnelError> {
    check_ownership(spec, obs)?;
    let mut actions = Vec::new();
    match &obs.tunnel {
        None => {
            actions.push(Action::CreateTunnel {
                name: spec.tunnel_name(),
            });
            actions.push(Action::PutTunnelConfig {
                reason: "new tunnel".into(),
            });
        }
        Some(_) => {
            let desired = desired_tunnel_config(spec);
            match &obs.tunnel_config {
                Some(c) if json_covers(&desired, c) => {}
                Some(_) => actions.push(Action::PutTunnelConfig {
                    reason: "configuration drifted".into(),
                }),
                None => actions.push(Action::PutTunnelConfig {
                    reason: "no configuration".into(),
                }),
            }
        }
    }
    for (_, o) in spec.public_origins() {
        let ours: Vec<&DnsRecord> = obs.dns.get(&o.hostname).into_iter().flatten().collect();
        match (ours.first(), &obs.tunnel) {
            (None, _) => actions.push(Action::CreateDnsRecord {
                hostname: o.hostname.clone(),
            }),
            (Some(rec), Some(t))
                if rec.content == tunnel_target(&t.id) && rec.proxied == Some(true) => {}
            (Some(rec), _) => actions.push(Action::UpdateDnsRecord {
                hostname: o.hostname.clone(),
                id: rec.id.clone(),
            }),
        }
    }
    if spec.uses_vpc() {
        plan_vpc_service(spec, obs, &mut actions);
    }
    let mut token_changes = false;
    match &obs.service_token {
        _ if !spec.uses_access() => {}
        None => {
            token_changes = true;
            actions.push(Action::CreateServiceToken {
                name: spec.service_token_name(),
            });
        }
        Some(t) if !obs.token_secret_stored => {
            token_changes = true;
            actions.push(Action::RecoverServiceTokenSecret {
                name: t.name.clone(),
                id: t.id.clone(),
            });
        }
        Some(t) => {
            let expires = t.expires_at.as_deref().map(parse_rfc3339);
            let soon = match expires {
                None => false,      // does not expire
                Some(None) => true, // unreadable: refresh to be safe
                Some(Some(at)) => at - obs.now_unix < TOKEN_REFRESH_WINDOW_S,
            };
            if soon {
                actions.push(Action::RefreshServiceToken {
                    name: t.name.clone(),
                    id: t.id.clone(),
                });
            }
        }
    }
    for (role, o) in spec.public_origins() {
        let body = AccessAppBody {
            name: spec.access_app_name(role),
            domain: o.hostname.clone(),
        };
        let app = find_app(spec, &obs.access_apps, role, &o.hostname)?;
        let policy_name = format!("{}-service-auth", spec.access_app_name(role));
        match app {
            None => {
                actions.push(Action::CreateAccessApp {
                    role: role.into(),
                    hostname: o.hostname.clone(),
                });
                actions.push(Action::CreateAccessPolicy { role: role.into() });
            }
            Some(app) => {
                if !body.matches(app) {
                    actions.push(Action::UpdateAccessApp {
                        role: role.into(),
                        id: app.id.clone(),
                    });
                }
                let policies = obs.policies.get(&app.id).cloned().unwrap_or_default();
                let token_id = obs.service_token.as_ref().map(|t| t.id.clone());
                match policies.iter().find(|p| p.name == policy_name) {
                    None => actions.push(Action::CreateAccessPolicy { role: role.into() }),
                    Some(p) => {
                        let want = token_id.map(|token_id| ServiceAuthPolicy {
                            name: policy_name.clone(),
                            token_id,
                        });
                        if !want.is_some_and(|w| w.matches(p)) {
                            actions.push(Action::UpdateAccessPolicy {
                                role: role.into(),
                                id: p.id.clone(),
                            });
                        }
                    }
                }
                for p in policies.iter().filter(|p| p.name != policy_name) {
                    actions.push(Action::DeleteAccessPolicy {
                        role: role.into(),
                        id: p.id.clone(),
                        name: p.name.clone(),
                    });
                }
            }
        }
    }
    if let (Some(h), Some(pg)) = (&spec.hyperdrive, &spec.postgres) {
        match &obs.hyperdrive {
            None => actions.push(Action::CreateHyperdrive {
                name: h.name.clone(),
            }),
            Some(c) => {
                let o = &c.origin;
                let readable_ok = o["host"] == pg.hostname.as_str()
                    && o["database"] == h.database.as_str()
                    && o["user"] == h.user.as_str()
                    && o["scheme"] == "postgres"
                    && obs
                        .service_token
                        .as_ref()
                        .is_some_and(|t| o["access_client_id"] == t.client_id.as_str())
                    && c.caching
                        .as_ref()
                        .is_some_and(|v| v["disabled"].as_bool() == Some(h.caching_disabled));
                if token_changes || !readable_ok {
                    actions.push(Action::UpdateHyperdrive {
                        name: h.name.clone(),
                        id: c.id.clone(),
                        reason: if token_changes {
                            "new service token secret".into()
                        } else {
                            "configuration drifted".into()
                        },
                    });
                }
            }
        }
    }
    if spec.uses_vpc() {
        plan_unpublish_medusa(spec, obs, &mut actions);
    }
    Ok(actions)
}

/// Our Workers VPC service, found by name (names are unique in the account).
/// A service of our name that differs from what we would create — another
/// tunnel, host, port, an added HTTPS port, resolver IPs or TLS settings — is
/// replaced with a PUT: the name `<cluster>-medusa` marks it as ours, as the
/// tunnel's name does. Services of other names are never read further nor
/// touched.
fn plan_vpc_service(spec: &TunnelSpec, obs: &Observed, actions: &mut Vec<Action>) {
    let name = spec.vpc_service_name();
    match (&obs.vpc_service, &obs.tunnel) {
        (None, _) => actions.push(Action::CreateVpcService { name }),
        (Some(s), None) => actions.push(Action::UpdateVpcService {
            name,
            id: s.service_id.clone(),
            reason: "new tunnel".into(),
        }),
        (Some(s), Some(t)) => {
            if desired_vpc_service(spec, &t.id).matches(s) {
                return;
            }
            let other_tunnel =
                s.host["resolver_network"]["tunnel_id"].as_str() != Some(t.id.as_str());
            actions.push(Action::UpdateVpcService {
                name,
                id: s.service_id.clone(),
                reason: if other_tunnel {
                    "it points at another tunnel or host".into()
                } else {
                    "configuration drifted".into()
                },
            });
        }
    }
}

/// Under Workers VPC, Medusa has no public hostname: our CNAME on the old
/// `medusa.hostname` (found by our ownership mark) and our Access application
/// `<cluster>-medusa` (found by name) are removed. Anyone else's record of
/// that name is no concern of ours any more and is left alone.
fn plan_unpublish_medusa(spec: &TunnelSpec, obs: &Observed, actions: &mut Vec<Action>) {
    let host = &spec.medusa.hostname;
    if !host.is_empty() {
        for rec in obs.dns.get(host).into_iter().flatten() {
            if dns_is_ours(rec, &spec.cluster) {
                actions.push(Action::DeleteDnsRecord {
                    hostname: host.clone(),
                    id: rec.id.clone(),
                });
            }
        }
    }
    let name = spec.access_app_name("medusa");
    if let Some(app) = obs.access_apps.iter().find(|a| a.name == name) {
        actions.push(Action::DeleteAccessApp {
            role: "medusa".into(),
            id: app.id.clone(),
            name,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> TunnelSpec {
        TunnelSpec::from_toml(
            r#"
cluster = "shop"
zone = "example.com"
[medusa]
hostname = "api.example.com"
namespace = "medusa"
service = "medusa"
port = 9000
[postgres]
hostname = "pg.example.com"
namespace = "data"
service = "pg-rw"
port = 5432
"#,
        )
        .unwrap()
    }

    #[test]
    fn empty_account_plans_everything() {
        let a = plan(&spec(), &Observed::default()).unwrap();
        let kinds: Vec<String> = a.iter().map(|a| a.describe()).collect();
        assert_eq!(kinds.len(), 9, "{kinds:#?}");
        assert!(matches!(a[0], Action::CreateTunnel { .. }));
    }

    #[test]
    fn desired_config_has_catch_all_and_services() {
        let c = desired_tunnel_config(&spec());
        let ingress = c["ingress"].as_array().unwrap();
        assert_eq!(ingress.len(), 3);
        assert_eq!(
            ingress[0]["service"],
            "http://medusa.medusa.svc.cluster.local:9000"
        );
        assert_eq!(
            ingress[1]["service"],
            "tcp://pg-rw.data.svc.cluster.local:5432"
        );
        assert_eq!(ingress[2]["service"], "http_status:404");
        assert!(ingress[2].get("hostname").is_none());
    }

    #[test]
    fn covers_ignores_added_keys_but_not_changed_values() {
        let d = json!({"a": [{"x": 1}], "b": 2});
        assert!(json_covers(
            &d,
            &json!({"a": [{"x": 1, "y": 0}], "b": 2.0, "c": 3})
        ));
        assert!(!json_covers(
            &d,
            &json!({"a": [{"x": 1}, {"x": 2}], "b": 2})
        ));
        assert!(!json_covers(&d, &json!({"a": [{"x": 2}], "b": 2})));
    }

    #[test]
    fn rfc3339_parses() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2000-03-01T00:00:00Z"), Some(951_868_800));
        assert_eq!(
            parse_rfc3339("2027-01-01T00:00:00.123456Z"),
            Some(1_798_761_600)
        );
        assert_eq!(
            parse_rfc3339("2027-01-01T01:00:00+01:00"),
            Some(1_798_761_600)
        );
        assert_eq!(parse_rfc3339("2027-13-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("soon"), None);
    }

    #[test]
    fn expiring_token_is_refreshed() {
        let tok = |exp: &str| ServiceToken {
            id: "t".into(),
            name: "shop-worker".into(),
            client_id: "c".into(),
            expires_at: Some(exp.into()),
        };
        let mut obs = Observed {
            now_unix: parse_rfc3339("2027-01-01T00:00:00Z").unwrap(),
            token_secret_stored: true,
            ..Observed::default()
        };
        obs.service_token = Some(tok("2027-01-20T00:00:00Z"));
        assert!(plan(&spec(), &obs)
            .unwrap()
            .iter()
            .any(|a| matches!(a, Action::RefreshServiceToken { .. })));
        obs.service_token = Some(tok("2027-06-01T00:00:00Z"));
        assert!(!plan(&spec(), &obs)
            .unwrap()
            .iter()
            .any(|a| matches!(a, Action::RefreshServiceToken { .. })));
    }

    fn vpc_spec() -> TunnelSpec {
        let mut s = spec();
        s.worker_binding = crate::spec::WorkerBinding::WorkersVpc;
        s.validate().unwrap();
        s
    }

    fn tunnel(id: &str) -> Tunnel {
        Tunnel {
            id: id.into(),
            name: "shop-tunnel".into(),
            config_src: Some("cloudflare".into()),
            deleted_at: None,
            status: None,
            connections: vec![],
        }
    }

    fn vpc_read(body: &VpcServiceBody) -> VpcService {
        let mut v = body.json();
        v["service_id"] = json!("svc-1");
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn workers_vpc_plans_a_service_and_publishes_postgres_only() {
        let s = vpc_spec();
        let a = plan(&s, &Observed::default()).unwrap();
        let kinds: Vec<String> = a.iter().map(|a| a.describe()).collect();
        assert!(
            a.contains(&Action::CreateVpcService {
                name: "shop-medusa".into()
            }),
            "{kinds:#?}"
        );
        // Postgres keeps its CNAME and Access application; Medusa has none.
        let dns: Vec<&Action> = a
            .iter()
            .filter(|a| matches!(a, Action::CreateDnsRecord { .. }))
            .collect();
        assert_eq!(
            dns,
            [&Action::CreateDnsRecord {
                hostname: "pg.example.com".into()
            }]
        );
        assert!(!a
            .iter()
            .any(|a| matches!(a, Action::CreateAccessApp { role, .. } if role == "medusa")));
        assert!(a
            .iter()
            .any(|a| matches!(a, Action::CreateServiceToken { .. })));
        let c = desired_tunnel_config(&s);
        let ingress = c["ingress"].as_array().unwrap();
        assert_eq!(ingress.len(), 2, "{c}");
        assert_eq!(ingress[0]["hostname"], "pg.example.com");

        // The service targets the same in-cluster Service as Access mode's
        // ingress rule, on our tunnel.
        let d = desired_vpc_service(&s, "t1");
        assert_eq!(d.hostname, "medusa.medusa.svc.cluster.local");
        assert_eq!(d.http_port, 9000);
        assert_eq!(d.tunnel_id, "t1");
        assert_eq!(d.name, "shop-medusa");
    }

    #[test]
    fn workers_vpc_service_in_sync_drifted_or_on_another_tunnel() {
        let s = vpc_spec();
        let mut obs = Observed {
            tunnel: Some(tunnel("t1")),
            ..Observed::default()
        };
        let vpc_actions = |obs: &Observed| -> Vec<Action> {
            plan(&s, obs)
                .unwrap()
                .into_iter()
                .filter(|a| {
                    matches!(
                        a,
                        Action::CreateVpcService { .. } | Action::UpdateVpcService { .. }
                    )
                })
                .collect()
        };
        obs.vpc_service = Some(vpc_read(&desired_vpc_service(&s, "t1")));
        assert!(vpc_actions(&obs).is_empty());

        let mut drifted = desired_vpc_service(&s, "t1");
        drifted.http_port = 80;
        obs.vpc_service = Some(vpc_read(&drifted));
        assert_eq!(
            vpc_actions(&obs),
            [Action::UpdateVpcService {
                name: "shop-medusa".into(),
                id: "svc-1".into(),
                reason: "configuration drifted".into()
            }]
        );
        // Our name on another tunnel (say, an older one of this cluster):
        // ours, repointed.
        obs.vpc_service = Some(vpc_read(&desired_vpc_service(&s, "t-old")));
        assert!(matches!(
            &vpc_actions(&obs)[..],
            [Action::UpdateVpcService { reason, .. }] if reason.contains("another tunnel")
        ));
        // The tunnel is gone and will be recreated: the service follows it.
        obs.tunnel = None;
        assert!(matches!(
            &vpc_actions(&obs)[..],
            [Action::UpdateVpcService { reason, .. }] if reason == "new tunnel"
        ));
    }

    #[test]
    fn switching_to_workers_vpc_removes_our_medusa_record_and_app_only() {
        let s = vpc_spec();
        let cname = |id: &str, comment: Option<String>| DnsRecord {
            id: id.into(),
            kind: "CNAME".into(),
            name: "api.example.com".into(),
            content: "t1.cfargotunnel.com".into(),
            proxied: Some(true),
            comment,
        };
        let mut obs = Observed {
            tunnel: Some(tunnel("t1")),
            ..Observed::default()
        };
        obs.dns.insert(
            "api.example.com".into(),
            vec![cname("ours", Some(ownership_comment("shop")))],
        );
        obs.access_apps = vec![AccessApp {
            id: "app-m".into(),
            name: "shop-medusa".into(),
            domain: "api.example.com".into(),
            kind: "self_hosted".into(),
            session_duration: None,
            app_launcher_visible: None,
            service_auth_401_redirect: None,
        }];
        let a = plan(&s, &obs).unwrap();
        assert!(a.contains(&Action::DeleteDnsRecord {
            hostname: "api.example.com".into(),
            id: "ours".into()
        }));
        assert!(a.contains(&Action::DeleteAccessApp {
            role: "medusa".into(),
            id: "app-m".into(),
            name: "shop-medusa".into()
        }));
        // Someone else's record on the old hostname is neither an error nor
        // deleted.
        obs.dns.insert(
            "api.example.com".into(),
            vec![cname("theirs", Some("the web team".into()))],
        );
        let a = plan(&s, &obs).unwrap();
        assert!(!a
            .iter()
            .any(|a| matches!(a, Action::DeleteDnsRecord { .. })));
    }

    #[test]
    fn workers_vpc_without_postgres_needs_no_service_token() {
        let mut s = vpc_spec();
        s.postgres = None;
        s.medusa.hostname.clear();
        s.validate().unwrap();
        let a = plan(&s, &Observed::default()).unwrap();
        assert_eq!(
            a.iter().map(|a| a.describe()).collect::<Vec<_>>(),
            [
                "create tunnel shop-tunnel",
                "put tunnel configuration (new tunnel)",
                "create Workers VPC service shop-medusa"
            ]
        );
        let c = desired_tunnel_config(&s);
        assert_eq!(c["ingress"], json!([{"service": "http_status:404"}]));
    }

    #[test]
    fn foreign_dns_record_is_an_error() {
        let mut obs = Observed::default();
        obs.dns.insert(
            "api.example.com".into(),
            vec![DnsRecord {
                id: "r1".into(),
                kind: "A".into(),
                name: "api.example.com".into(),
                content: "192.0.2.1".into(),
                proxied: Some(true),
                comment: None,
            }],
        );
        let e = plan(&spec(), &obs).unwrap_err().to_string();
        assert!(
            e.contains("api.example.com") && e.contains("not managed"),
            "{e}"
        );
    }
}
