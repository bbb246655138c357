//! The fake's data and the documented rules it enforces.

use std::collections::{BTreeMap, BTreeSet};

use rand::Rng;
use serde_json::{json, Value};

/// Token permission scopes (the dashboard's permission groups we model).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// Account: Cloudflare Tunnel Edit.
    TunnelEdit,
    /// Account: Cloudflare Tunnel Read.
    TunnelRead,
    /// Zone: DNS Edit.
    DnsEdit,
    /// Zone: DNS Read.
    DnsRead,
    /// Zone: Zone Read.
    ZoneRead,
    /// Access: Apps and Policies Edit.
    AccessAppsEdit,
    /// Access: Service Tokens Edit.
    AccessTokensEdit,
    /// Account: Workers Scripts Edit.
    WorkersEdit,
    /// Account: Hyperdrive Edit.
    HyperdriveEdit,
    /// Account: Workers KV Storage Edit.
    KvEdit,
    /// Account: Connectivity Directory Admin (Workers VPC services).
    ConnectivityAdmin,
    /// Account: Connectivity Directory Read (list and read only).
    ConnectivityRead,
}

impl Scope {
    /// Every scope.
    pub const ALL: &'static [Scope] = &[
        Scope::TunnelEdit,
        Scope::DnsEdit,
        Scope::ZoneRead,
        Scope::AccessAppsEdit,
        Scope::AccessTokensEdit,
        Scope::WorkersEdit,
        Scope::HyperdriveEdit,
        Scope::KvEdit,
        Scope::ConnectivityAdmin,
    ];
}

/// An error the API answers with.
#[derive(Debug, Clone)]
pub struct ApiErr {
    pub status: u16,
    pub code: i64,
    pub message: String,
}

/// Error codes the fake answers Workers VPC service calls with. Cloudflare's
/// reference documents the statuses, not the codes; these are the fake's own.
pub(crate) const VPC_INVALID: i64 = 1001;
/// A service of that name exists (names are unique in the account).
pub(crate) const VPC_NAME_TAKEN: i64 = 1009;
/// No such service.
pub(crate) const VPC_NOT_FOUND: i64 = 1004;

pub(crate) fn err(status: u16, code: i64, message: impl Into<String>) -> ApiErr {
    ApiErr {
        status,
        code,
        message: message.into(),
    }
}

/// A zone.
#[derive(Debug, Clone)]
pub struct Zone {
    pub id: String,
    pub name: String,
    pub account: String,
}

/// A DNS record.
#[derive(Debug, Clone, PartialEq)]
pub struct DnsRecord {
    pub id: String,
    pub zone: String,
    pub kind: String,
    pub name: String,
    pub content: String,
    pub proxied: bool,
    pub ttl: i64,
    pub comment: Option<String>,
}

/// A tunnel.
#[derive(Debug, Clone)]
pub struct Tunnel {
    pub id: String,
    pub account: String,
    pub name: String,
    pub config_src: String,
    pub deleted: bool,
    pub config: Option<Value>,
    pub version: i64,
    pub secret: String,
    pub connections: usize,
}

/// An Access application.
#[derive(Debug, Clone)]
pub struct AccessApp {
    pub id: String,
    pub account: String,
    pub body: Value,
    pub aud: String,
}

/// An app-scoped policy.
#[derive(Debug, Clone)]
pub struct Policy {
    pub id: String,
    pub app: String,
    pub body: Value,
}

/// A service token.
#[derive(Debug, Clone)]
pub struct ServiceToken {
    pub id: String,
    pub account: String,
    pub name: String,
    pub client_id: String,
    pub client_secret: String,
    pub duration: String,
    /// Unix seconds.
    pub expires_at: i64,
}

/// Unix seconds now.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Seconds of a token duration like `8760h` (`forever`: 100 years).
pub(crate) fn duration_secs(d: &str) -> i64 {
    d.strip_suffix('h')
        .and_then(|h| h.parse::<i64>().ok())
        .map(|h| h * 3600)
        .unwrap_or(100 * 365 * 86_400)
}

/// Unix seconds as RFC 3339 UTC.
pub fn rfc3339(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Civil from days (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// A Hyperdrive config (the password and Access secret are kept to check
/// them, never returned).
#[derive(Debug, Clone)]
pub struct Hyperdrive {
    pub id: String,
    pub account: String,
    pub body: Value,
}

/// A Workers VPC service (connectivity directory service). `body` holds the
/// validated request fields; id and timestamps are kept beside it.
#[derive(Debug, Clone)]
pub struct VpcService {
    pub id: String,
    pub account: String,
    pub body: Value,
    pub created_at: String,
    pub updated_at: String,
}

/// The whole fake account world.
#[derive(Debug, Default)]
pub struct State {
    /// token -> (account, scopes)
    pub tokens: BTreeMap<String, (String, BTreeSet<Scope>)>,
    pub accounts: BTreeSet<String>,
    pub zones: Vec<Zone>,
    pub dns: Vec<DnsRecord>,
    pub tunnels: Vec<Tunnel>,
    pub apps: Vec<AccessApp>,
    pub policies: Vec<Policy>,
    pub service_tokens: Vec<ServiceToken>,
    pub hyperdrive: Vec<Hyperdrive>,
    pub vpc_services: Vec<VpcService>,
    /// (account, script) -> secret name -> value
    pub scripts: BTreeMap<(String, String), BTreeMap<String, String>>,
    /// (account, namespace) -> key -> value
    pub kv: BTreeMap<(String, String), BTreeMap<String, Vec<u8>>>,
}

pub(crate) fn hex_id(bytes: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..bytes)
        .map(|_| format!("{:02x}", rng.gen::<u8>()))
        .collect()
}

pub(crate) fn uuid() -> String {
    let h = hex_id(16);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

impl State {
    /// Adds an account and a token with the given scopes on it.
    pub fn add_account_token(&mut self, account: &str, token: &str, scopes: &[Scope]) {
        self.accounts.insert(account.to_string());
        self.tokens.insert(
            token.to_string(),
            (account.to_string(), scopes.iter().copied().collect()),
        );
    }

    /// Adds a zone; returns its id.
    pub fn add_zone(&mut self, account: &str, name: &str) -> String {
        let id = hex_id(16);
        self.zones.push(Zone {
            id: id.clone(),
            name: name.to_string(),
            account: account.to_string(),
        });
        id
    }

    /// Adds a record directly (e.g. someone else's); returns its id.
    pub fn add_dns(
        &mut self,
        zone: &str,
        kind: &str,
        name: &str,
        content: &str,
        comment: Option<&str>,
    ) -> String {
        let id = hex_id(16);
        self.dns.push(DnsRecord {
            id: id.clone(),
            zone: zone.into(),
            kind: kind.into(),
            name: name.into(),
            content: content.into(),
            proxied: true,
            ttl: 1,
            comment: comment.map(String::from),
        });
        id
    }

    /// Adds a Worker script.
    pub fn add_script(&mut self, account: &str, name: &str) {
        self.scripts
            .entry((account.into(), name.into()))
            .or_default();
    }

    /// Adds a KV namespace; returns its id.
    pub fn add_kv_namespace(&mut self, account: &str) -> String {
        let id = hex_id(16);
        self.kv
            .insert((account.into(), id.clone()), BTreeMap::new());
        id
    }

    /// Adds a foreign Access application (e.g. for pagination or conflicts).
    pub fn add_app(&mut self, account: &str, name: &str, domain: &str) -> String {
        let id = uuid();
        self.apps.push(AccessApp {
            id: id.clone(),
            account: account.into(),
            body: json!({"name": name, "domain": domain, "type": "self_hosted"}),
            aud: hex_id(32),
        });
        id
    }

    /// Secret value of a Worker (inspection only).
    pub fn worker_secret(&self, account: &str, script: &str, name: &str) -> Option<String> {
        self.scripts
            .get(&(account.to_string(), script.to_string()))
            .and_then(|m| m.get(name).cloned())
    }

    /// A Workers VPC service's JSON as the API returns it.
    pub fn vpc_service_json(v: &VpcService) -> Value {
        let mut out = v.body.clone();
        out["service_id"] = json!(v.id);
        out["created_at"] = json!(v.created_at);
        out["updated_at"] = json!(v.updated_at);
        out
    }

    /// Validates a Workers VPC service body as the API documents it: `name`,
    /// `type` `http` (optional `http_port`/`https_port`) or `tcp` (required
    /// `tcp_port`, optional `app_protocol`), ports 1..=65535, `host` exactly
    /// one of `{ipv4, network}`, `{ipv6, network}`, `{ipv4, ipv6, network}`,
    /// `{hostname, resolver_network}` whose `tunnel_id` is a live tunnel of
    /// the account, optional `tls_settings.cert_verification_mode`. Returns
    /// the stored body (the fields given, nothing else).
    pub(crate) fn validate_vpc_service(&self, acc: &str, b: &Value) -> Result<Value, ApiErr> {
        let bad = |m: String| Err(err(400, VPC_INVALID, format!("Invalid service: {m}")));
        let Some(m) = b.as_object() else {
            return bad("body must be a JSON object".into());
        };
        const KNOWN: &[&str] = &[
            "name",
            "type",
            "host",
            "http_port",
            "https_port",
            "tcp_port",
            "app_protocol",
            "tls_settings",
        ];
        if let Some(k) = m.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return bad(format!("unknown field {k}"));
        }
        let Some(name) = b["name"].as_str().filter(|n| !n.trim().is_empty()) else {
            return bad("name is required".into());
        };
        let kind = b["type"].as_str().unwrap_or("");
        let port = |k: &str| -> Result<Option<u64>, ApiErr> {
            match m.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => match v.as_u64() {
                    Some(p) if (1..=65535).contains(&p) => Ok(Some(p)),
                    _ => Err(err(
                        400,
                        VPC_INVALID,
                        format!("Invalid service: {k} must be an integer 1..65535"),
                    )),
                },
            }
        };
        let (http, https, tcp) = (port("http_port")?, port("https_port")?, port("tcp_port")?);
        match kind {
            "http" => {
                if tcp.is_some() || m.contains_key("app_protocol") {
                    return bad("tcp_port and app_protocol are for type tcp".into());
                }
            }
            "tcp" => {
                if tcp.is_none() {
                    return bad("tcp_port is required for type tcp".into());
                }
                if http.is_some() || https.is_some() {
                    return bad("http_port and https_port are for type http".into());
                }
                if let Some(p) = m.get("app_protocol") {
                    if !matches!(p.as_str(), Some("postgresql" | "mysql")) {
                        return bad("app_protocol must be postgresql or mysql".into());
                    }
                }
            }
            _ => return bad("type must be http or tcp".into()),
        }
        let tunnel_id = Self::vpc_host_tunnel(&b["host"])
            .map_err(|m| err(400, VPC_INVALID, format!("Invalid service: {m}")))?;
        if !self
            .tunnels
            .iter()
            .any(|t| t.account == acc && t.id == tunnel_id && !t.deleted)
        {
            return bad(format!("tunnel {tunnel_id} does not exist in this account"));
        }
        if let Some(tls) = m.get("tls_settings").filter(|v| !v.is_null()) {
            let ok = tls.as_object().is_some_and(|t| {
                t.keys().all(|k| k == "cert_verification_mode")
                    && matches!(
                        t.get("cert_verification_mode").and_then(Value::as_str),
                        Some("verify_full" | "verify_ca" | "disabled")
                    )
            });
            if !ok {
                return bad(
                    "tls_settings.cert_verification_mode must be verify_full, verify_ca or disabled"
                        .into(),
                );
            }
        }
        let mut out = json!({"name": name, "type": kind, "host": b["host"]});
        for k in [
            "http_port",
            "https_port",
            "tcp_port",
            "app_protocol",
            "tls_settings",
        ] {
            if let Some(v) = m.get(k).filter(|v| !v.is_null()) {
                out[k] = v.clone();
            }
        }
        Ok(out)
    }

    /// The tunnel id of a valid host shape, or what is wrong with it.
    fn vpc_host_tunnel(host: &Value) -> Result<String, String> {
        let Some(h) = host.as_object() else {
            return Err("host is required and must be an object".into());
        };
        let mut keys: Vec<&str> = h.keys().map(String::as_str).collect();
        keys.sort_unstable();
        let tunnel_of = |net: &Value, allowed: &[&str]| -> Result<String, String> {
            let Some(n) = net.as_object() else {
                return Err("the host's network must be an object with tunnel_id".into());
            };
            if let Some(k) = n.keys().find(|k| !allowed.contains(&k.as_str())) {
                return Err(format!("unknown field {k} in the host's network"));
            }
            n.get("tunnel_id")
                .and_then(Value::as_str)
                .filter(|t| t.len() == 36 && t.bytes().all(|c| c.is_ascii_hexdigit() || c == b'-'))
                .map(String::from)
                .ok_or_else(|| "tunnel_id must be a tunnel UUID".to_string())
        };
        let v4 = |v: &Value| {
            v.as_str()
                .is_some_and(|s| s.parse::<std::net::Ipv4Addr>().is_ok())
        };
        let v6 = |v: &Value| {
            v.as_str()
                .is_some_and(|s| s.parse::<std::net::Ipv6Addr>().is_ok())
        };
        match keys.as_slice() {
            ["ipv4", "network"] if v4(&h["ipv4"]) => tunnel_of(&h["network"], &["tunnel_id"]),
            ["ipv6", "network"] if v6(&h["ipv6"]) => tunnel_of(&h["network"], &["tunnel_id"]),
            ["ipv4", "ipv6", "network"] if v4(&h["ipv4"]) && v6(&h["ipv6"]) => {
                tunnel_of(&h["network"], &["tunnel_id"])
            }
            ["hostname", "resolver_network"] => {
                let ok_name = h["hostname"].as_str().is_some_and(|n| {
                    !n.is_empty()
                        && n.len() <= 253
                        && n.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.')
                });
                if !ok_name {
                    return Err("host.hostname is not a valid hostname".into());
                }
                let ips = &h["resolver_network"]["resolver_ips"];
                let ips_ok = match ips {
                    Value::Null => true,
                    Value::Array(a) => a.iter().all(|ip| v4(ip) || v6(ip)),
                    _ => false,
                };
                if !ips_ok {
                    return Err("resolver_network.resolver_ips must be a list of IP addresses".into());
                }
                tunnel_of(&h["resolver_network"], &["tunnel_id", "resolver_ips"])
            }
            _ => Err(
                "host must be exactly one of {ipv4, network}, {ipv6, network}, {ipv4, ipv6, network} or {hostname, resolver_network}, with valid addresses"
                    .into(),
            ),
        }
    }

    /// Live tunnels.
    pub fn live_tunnels(&self) -> Vec<&Tunnel> {
        self.tunnels.iter().filter(|t| !t.deleted).collect()
    }

    pub(crate) fn tunnel_json(t: &Tunnel) -> Value {
        json!({
            "id": t.id, "account_tag": t.account, "name": t.name,
            "created_at": "2026-01-01T00:00:00Z",
            "deleted_at": if t.deleted { json!("2026-01-02T00:00:00Z") } else { Value::Null },
            "config_src": t.config_src, "remote_config": t.config_src == "cloudflare",
            "status": if t.connections > 0 { "healthy" } else { "inactive" },
            "tun_type": "cfd_tunnel",
            "connections": (0..t.connections).map(|i| json!({
                "colo_name": "fra", "id": format!("1bedc50d-42b3-473c-b108-ff3d10c0d92{i}"),
                "uuid": format!("1bedc50d-42b3-473c-b108-ff3d10c0d92{i}"),
                "client_id": "1bedc50d-42b3-473c-b108-ff3d10c0d925",
                "client_version": "2025.7.0", "is_pending_reconnect": false,
                "opened_at": "2026-01-01T00:00:00Z", "origin_ip": "2a01:4f8:c0c:1::1",
            })).collect::<Vec<_>>(),
            "metadata": {},
        })
    }

    pub(crate) fn dns_json(r: &DnsRecord) -> Value {
        json!({
            "id": r.id, "zone_id": r.zone, "type": r.kind, "name": r.name, "content": r.content,
            "proxied": r.proxied, "proxiable": true, "ttl": r.ttl, "comment": r.comment,
            "tags": [], "created_on": "2026-01-01T00:00:00Z", "modified_on": "2026-01-01T00:00:00Z",
        })
    }

    /// Validates a DNS record body for zone `zone_name`.
    pub(crate) fn validate_dns(body: &Value, zone_name: &str) -> Result<DnsRecord, ApiErr> {
        let kind = body["type"]
            .as_str()
            .ok_or_else(|| err(400, 9005, "DNS record type is required"))?;
        if !["A", "AAAA", "CNAME", "TXT", "MX", "NS", "CAA", "SRV"].contains(&kind) {
            return Err(err(400, 9008, format!("Invalid DNS record type {kind}")));
        }
        let name = body["name"]
            .as_str()
            .ok_or_else(|| err(400, 9007, "DNS record name is required"))?;
        let content = body["content"]
            .as_str()
            .ok_or_else(|| err(400, 9006, "DNS record content is required"))?;
        if !(name == zone_name || name.ends_with(&format!(".{zone_name}"))) {
            return Err(err(
                400,
                9007,
                format!("DNS name {name} is not within zone {zone_name}"),
            ));
        }
        let comment = match &body["comment"] {
            Value::Null => None,
            Value::String(s) if s.chars().count() <= 100 => Some(s.clone()),
            Value::String(_) => {
                return Err(err(
                    400,
                    9100,
                    "DNS record comment is too long (100 characters on this plan)",
                ))
            }
            _ => return Err(err(400, 9100, "comment must be a string")),
        };
        let proxied = body["proxied"].as_bool().unwrap_or(false);
        if proxied && !["A", "AAAA", "CNAME"].contains(&kind) {
            return Err(err(400, 9004, "This record type cannot be proxied."));
        }
        let ttl = body["ttl"].as_i64().unwrap_or(1);
        if ttl != 1 && !(30..=86400).contains(&ttl) {
            return Err(err(
                400,
                9021,
                "Invalid TTL. Must be between 30 and 86,400 seconds, or 1 for Automatic.",
            ));
        }
        Ok(DnsRecord {
            id: String::new(),
            zone: String::new(),
            kind: kind.into(),
            name: name.to_ascii_lowercase(),
            content: content.into(),
            proxied,
            ttl,
            comment,
        })
    }

    /// The CNAME/host conflict rules of the DNS API.
    pub(crate) fn dns_conflict(&self, rec: &DnsRecord, except: Option<&str>) -> Result<(), ApiErr> {
        for r in self
            .dns
            .iter()
            .filter(|r| r.zone == rec.zone && Some(r.id.as_str()) != except)
        {
            if r.name != rec.name {
                continue;
            }
            if r.kind == rec.kind && r.content == rec.content {
                return Err(err(400, 81057, "Record already exists."));
            }
            let hostish = ["A", "AAAA", "CNAME"];
            if (rec.kind == "CNAME" || r.kind == "CNAME")
                && hostish.contains(&r.kind.as_str())
                && hostish.contains(&rec.kind.as_str())
            {
                return Err(err(
                    400,
                    81053,
                    "An A, AAAA, or CNAME record with that host already exists.",
                ));
            }
        }
        Ok(())
    }

    /// Validates a tunnel configuration as cloudflared and the API do.
    pub(crate) fn validate_tunnel_config(config: &Value) -> Result<(), ApiErr> {
        let bad = |m: String| Err(err(400, 1055, format!("Invalid tunnel configuration: {m}")));
        let Some(ingress) = config["ingress"].as_array() else {
            return bad("ingress must be a list".into());
        };
        if ingress.is_empty() {
            return bad("ingress must not be empty".into());
        }
        let mut seen = BTreeSet::new();
        for (i, rule) in ingress.iter().enumerate() {
            let last = i + 1 == ingress.len();
            let service = rule["service"].as_str().unwrap_or("");
            let ok_service = service.starts_with("http://")
                || service.starts_with("https://")
                || service.starts_with("tcp://")
                || service.starts_with("ssh://")
                || service.starts_with("rdp://")
                || service.starts_with("unix:")
                || service == "hello_world"
                || service
                    .strip_prefix("http_status:")
                    .is_some_and(|c| c.parse::<u16>().is_ok_and(|c| (100..600).contains(&c)));
            if !ok_service {
                return bad(format!("rule {i}: unsupported service {service:?}"));
            }
            match rule.get("hostname").and_then(|h| h.as_str()) {
                Some(h) => {
                    if last {
                        return bad(
                            "the last ingress rule must match all URLs (no hostname)".into()
                        );
                    }
                    if !seen.insert(h.to_string()) {
                        return bad(format!("duplicate hostname {h}"));
                    }
                }
                None if !last => return bad(format!("rule {i} has no hostname but is not last")),
                None => {}
            }
            if let Some(or) = rule.get("originRequest") {
                Self::validate_origin_request(or).or_else(&bad)?;
            }
        }
        if let Some(or) = config.get("originRequest") {
            Self::validate_origin_request(or).or_else(&bad)?;
        }
        Ok(())
    }

    fn validate_origin_request(or: &Value) -> Result<(), String> {
        let Some(m) = or.as_object() else {
            return Err("originRequest must be an object".into());
        };
        const INTS: &[&str] = &[
            "connectTimeout",
            "tlsTimeout",
            "tcpKeepAlive",
            "keepAliveTimeout",
            "keepAliveConnections",
        ];
        const BOOLS: &[&str] = &[
            "noHappyEyeballs",
            "http2Origin",
            "noTLSVerify",
            "disableChunkedEncoding",
        ];
        const STRS: &[&str] = &["httpHostHeader", "originServerName", "caPool", "proxyType"];
        for (k, v) in m {
            let ok = if INTS.contains(&k.as_str()) {
                v.as_u64().is_some()
            } else if BOOLS.contains(&k.as_str()) {
                v.is_boolean()
            } else if STRS.contains(&k.as_str()) {
                v.is_string()
            } else {
                k == "access"
            };
            if !ok {
                return Err(format!(
                    "originRequest.{k} is unknown or has the wrong type"
                ));
            }
        }
        Ok(())
    }
}
