//! One type per Cloudflare API call we make, with the documented paths and
//! bodies. Result types keep only the fields we read (unknown fields are
//! ignored, as the API adds fields over time).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{Endpoint, Method};
use crate::secret::SecretString;

/// Permission names as the dashboard shows them.
pub mod perm {
    /// Tunnels and their configuration.
    pub const TUNNEL: &str = "Account: Cloudflare Tunnel Edit";
    /// Access applications and policies.
    pub const ACCESS_APPS: &str = "Access: Apps and Policies Edit";
    /// Access service tokens.
    pub const ACCESS_TOKENS: &str = "Access: Service Tokens Edit";
    /// DNS records.
    pub const DNS: &str = "Zone: DNS Edit";
    /// Zone lookup.
    pub const ZONE_READ: &str = "Zone: Zone Read";
    /// Worker secrets.
    pub const WORKERS: &str = "Account: Workers Scripts Edit";
    /// Hyperdrive.
    pub const HYPERDRIVE: &str = "Account: Hyperdrive Edit";
    /// Workers KV (secret digests).
    pub const KV: &str = "Account: Workers KV Storage Edit";
}

macro_rules! endpoint {
    ($ty:ty, $res:ty, $method:expr, $perm:expr, |$s:ident| path: $path:expr, describe: $desc:expr $(, query: $query:expr)? $(, body: $body:expr)? $(,)?) => {
        impl Endpoint for $ty {
            type Result = $res;
            fn method(&self) -> Method {
                $method
            }
            #[allow(unused_variables)]
            fn path(&self) -> String {
                let $s = self;
                $path
            }
            #[allow(unused_variables)]
            fn describe(&self) -> String {
                let $s = self;
                $desc
            }
            fn permission(&self) -> &'static str {
                $perm
            }
            $(fn query(&self) -> Vec<(&'static str, String)> {
                let $s = self;
                $query
            })?
            $(fn body(&self) -> Option<Value> {
                let $s = self;
                Some($body)
            })?
        }
    };
}

// ---------- zones ----------

/// A zone.
#[derive(Debug, Clone, Deserialize)]
pub struct Zone {
    /// Zone id.
    pub id: String,
    /// Apex name.
    pub name: String,
}

/// `GET /zones?name=…&account.id=…`
pub struct ListZones {
    /// Account id.
    pub account: String,
    /// Zone apex name.
    pub name: String,
}
endpoint!(ListZones, Vec<Zone>, Method::GET, perm::ZONE_READ, |s|
    path: "zones".into(),
    describe: format!("look up zone {}", s.name),
    query: vec![("name", s.name.clone()), ("account.id", s.account.clone())]);

// ---------- tunnels ----------

/// A Cloudflare Tunnel (`cfd_tunnel`).
#[derive(Debug, Clone, Deserialize)]
pub struct Tunnel {
    /// UUID.
    pub id: String,
    /// Name (unique among the account's non-deleted tunnels).
    pub name: String,
    /// `cloudflare` (remotely managed) or `local`.
    #[serde(default)]
    pub config_src: Option<String>,
    /// Set when deleted.
    #[serde(default)]
    pub deleted_at: Option<String>,
    /// `inactive`, `healthy`, `degraded`, `down`.
    #[serde(default)]
    pub status: Option<String>,
    /// Active connections.
    #[serde(default)]
    pub connections: Vec<Value>,
}

/// `GET /accounts/{account_id}/cfd_tunnel?name=…&is_deleted=false`
pub struct ListTunnels {
    /// Account id.
    pub account: String,
    /// Exact name.
    pub name: String,
}
endpoint!(ListTunnels, Vec<Tunnel>, Method::GET, perm::TUNNEL, |s|
    path: format!("accounts/{}/cfd_tunnel", s.account),
    describe: format!("list tunnels named {}", s.name),
    query: vec![("name", s.name.clone()), ("is_deleted", "false".into())]);

/// `POST /accounts/{account_id}/cfd_tunnel`
pub struct CreateTunnel {
    /// Account id.
    pub account: String,
    /// Name.
    pub name: String,
}
endpoint!(CreateTunnel, Tunnel, Method::POST, perm::TUNNEL, |s|
    path: format!("accounts/{}/cfd_tunnel", s.account),
    describe: format!("create tunnel {}", s.name),
    body: json!({"name": s.name, "config_src": "cloudflare"}));

/// `GET /accounts/{account_id}/cfd_tunnel/{tunnel_id}/token`
pub struct GetTunnelToken {
    /// Account id.
    pub account: String,
    /// Tunnel id.
    pub tunnel_id: String,
}
endpoint!(GetTunnelToken, String, Method::GET, perm::TUNNEL, |s|
    path: format!("accounts/{}/cfd_tunnel/{}/token", s.account, s.tunnel_id),
    describe: format!("get the token of tunnel {}", s.tunnel_id));

/// A tunnel's remote configuration.
#[derive(Debug, Clone, Deserialize)]
pub struct TunnelConfiguration {
    /// The `config` object (ingress, originRequest, warp-routing).
    #[serde(default)]
    pub config: Option<Value>,
    /// Version counter.
    #[serde(default)]
    pub version: Option<i64>,
}

/// `GET /accounts/{account_id}/cfd_tunnel/{tunnel_id}/configurations`
pub struct GetTunnelConfig {
    /// Account id.
    pub account: String,
    /// Tunnel id.
    pub tunnel_id: String,
}
endpoint!(GetTunnelConfig, TunnelConfiguration, Method::GET, perm::TUNNEL, |s|
    path: format!("accounts/{}/cfd_tunnel/{}/configurations", s.account, s.tunnel_id),
    describe: format!("get the configuration of tunnel {}", s.tunnel_id));

/// `PUT /accounts/{account_id}/cfd_tunnel/{tunnel_id}/configurations`
pub struct PutTunnelConfig {
    /// Account id.
    pub account: String,
    /// Tunnel id.
    pub tunnel_id: String,
    /// The whole `config` object.
    pub config: Value,
}
endpoint!(PutTunnelConfig, TunnelConfiguration, Method::PUT, perm::TUNNEL, |s|
    path: format!("accounts/{}/cfd_tunnel/{}/configurations", s.account, s.tunnel_id),
    describe: format!("put the configuration of tunnel {}", s.tunnel_id),
    body: json!({"config": s.config}));

// ---------- DNS ----------

/// A DNS record.
#[derive(Debug, Clone, Deserialize)]
pub struct DnsRecord {
    /// Record id.
    pub id: String,
    /// Type (CNAME, A, …).
    #[serde(rename = "type")]
    pub kind: String,
    /// Full name.
    pub name: String,
    /// Content.
    pub content: String,
    /// Orange-clouded.
    #[serde(default)]
    pub proxied: Option<bool>,
    /// Comment.
    #[serde(default)]
    pub comment: Option<String>,
}

/// `GET /zones/{zone_id}/dns_records?name=…` (all types: a CNAME cannot
/// share its name with any other record).
pub struct ListDnsRecords {
    /// Zone id.
    pub zone: String,
    /// Exact name.
    pub name: String,
}
endpoint!(ListDnsRecords, Vec<DnsRecord>, Method::GET, perm::DNS, |s|
    path: format!("zones/{}/dns_records", s.zone),
    describe: format!("list DNS records named {}", s.name),
    query: vec![("name", s.name.clone())]);

/// The body of a proxied CNAME record we own.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CnameBody {
    /// Name.
    pub name: String,
    /// Target.
    pub content: String,
    /// Ownership comment.
    pub comment: String,
}

impl CnameBody {
    fn json(&self) -> Value {
        json!({"type": "CNAME", "name": self.name, "content": self.content,
               "proxied": true, "ttl": 1, "comment": self.comment})
    }
}

/// `POST /zones/{zone_id}/dns_records`
pub struct CreateDnsRecord {
    /// Zone id.
    pub zone: String,
    /// Record.
    pub record: CnameBody,
}
endpoint!(CreateDnsRecord, DnsRecord, Method::POST, perm::DNS, |s|
    path: format!("zones/{}/dns_records", s.zone),
    describe: format!("create DNS record {}", s.record.name),
    body: s.record.json());

/// `PUT /zones/{zone_id}/dns_records/{id}` (overwrite).
pub struct UpdateDnsRecord {
    /// Zone id.
    pub zone: String,
    /// Record id.
    pub id: String,
    /// Record.
    pub record: CnameBody,
}
endpoint!(UpdateDnsRecord, DnsRecord, Method::PUT, perm::DNS, |s|
    path: format!("zones/{}/dns_records/{}", s.zone, s.id),
    describe: format!("update DNS record {}", s.record.name),
    body: s.record.json());

// ---------- Access ----------

/// An Access application.
#[derive(Debug, Clone, Deserialize)]
pub struct AccessApp {
    /// Id (UUID).
    pub id: String,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Protected hostname.
    #[serde(default)]
    pub domain: String,
    /// `self_hosted`, …
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Session duration.
    #[serde(default)]
    pub session_duration: Option<String>,
    /// Shown in the App Launcher.
    #[serde(default)]
    pub app_launcher_visible: Option<bool>,
    /// 401 instead of a login redirect for service-auth-only apps.
    #[serde(default)]
    pub service_auth_401_redirect: Option<bool>,
}

/// Desired fields of our Access application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessAppBody {
    /// Name.
    pub name: String,
    /// Hostname.
    pub domain: String,
}

impl AccessAppBody {
    fn json(&self) -> Value {
        json!({"name": self.name, "domain": self.domain, "type": "self_hosted",
               "session_duration": "24h", "app_launcher_visible": false,
               "service_auth_401_redirect": true})
    }

    /// Whether `app` matches this body.
    pub fn matches(&self, app: &AccessApp) -> bool {
        app.name == self.name
            && app.domain == self.domain
            && app.kind == "self_hosted"
            && app.session_duration.as_deref() == Some("24h")
            && app.app_launcher_visible == Some(false)
            && app.service_auth_401_redirect == Some(true)
    }
}

/// `GET /accounts/{account_id}/access/apps`
pub struct ListAccessApps {
    /// Account id.
    pub account: String,
}
endpoint!(ListAccessApps, Vec<AccessApp>, Method::GET, perm::ACCESS_APPS, |s|
    path: format!("accounts/{}/access/apps", s.account),
    describe: "list Access applications".into());

/// `POST /accounts/{account_id}/access/apps`
pub struct CreateAccessApp {
    /// Account id.
    pub account: String,
    /// App.
    pub app: AccessAppBody,
}
endpoint!(CreateAccessApp, AccessApp, Method::POST, perm::ACCESS_APPS, |s|
    path: format!("accounts/{}/access/apps", s.account),
    describe: format!("create Access application {}", s.app.name),
    body: s.app.json());

/// `PUT /accounts/{account_id}/access/apps/{app_id}`
pub struct UpdateAccessApp {
    /// Account id.
    pub account: String,
    /// App id.
    pub id: String,
    /// App.
    pub app: AccessAppBody,
}
endpoint!(UpdateAccessApp, AccessApp, Method::PUT, perm::ACCESS_APPS, |s|
    path: format!("accounts/{}/access/apps/{}", s.account, s.id),
    describe: format!("update Access application {}", s.app.name),
    body: s.app.json());

/// An application-scoped Access policy.
#[derive(Debug, Clone, Deserialize)]
pub struct AccessPolicy {
    /// Id.
    pub id: String,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// `allow`, `deny`, `non_identity`, `bypass`.
    #[serde(default)]
    pub decision: String,
    /// Include rules.
    #[serde(default)]
    pub include: Vec<Value>,
    /// Exclude rules.
    #[serde(default)]
    pub exclude: Vec<Value>,
    /// Require rules.
    #[serde(default)]
    pub require: Vec<Value>,
}

/// Our Service Auth policy: `non_identity`, only our service token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAuthPolicy {
    /// Name.
    pub name: String,
    /// Service token id.
    pub token_id: String,
}

impl ServiceAuthPolicy {
    fn include(&self) -> Vec<Value> {
        vec![json!({"service_token": {"token_id": self.token_id}})]
    }

    fn json(&self) -> Value {
        json!({"name": self.name, "decision": "non_identity", "include": self.include(),
               "exclude": [], "require": [], "precedence": 1})
    }

    /// Whether `p` matches.
    pub fn matches(&self, p: &AccessPolicy) -> bool {
        p.name == self.name
            && p.decision == "non_identity"
            && p.include == self.include()
            && p.exclude.is_empty()
            && p.require.is_empty()
    }
}

/// `GET /accounts/{account_id}/access/apps/{app_id}/policies`
pub struct ListAccessPolicies {
    /// Account id.
    pub account: String,
    /// App id.
    pub app_id: String,
}
endpoint!(ListAccessPolicies, Vec<AccessPolicy>, Method::GET, perm::ACCESS_APPS, |s|
    path: format!("accounts/{}/access/apps/{}/policies", s.account, s.app_id),
    describe: format!("list policies of Access application {}", s.app_id));

/// `POST /accounts/{account_id}/access/apps/{app_id}/policies`
pub struct CreateAccessPolicy {
    /// Account id.
    pub account: String,
    /// App id.
    pub app_id: String,
    /// Policy.
    pub policy: ServiceAuthPolicy,
}
endpoint!(CreateAccessPolicy, AccessPolicy, Method::POST, perm::ACCESS_APPS, |s|
    path: format!("accounts/{}/access/apps/{}/policies", s.account, s.app_id),
    describe: format!("create Access policy {}", s.policy.name),
    body: s.policy.json());

/// `PUT /accounts/{account_id}/access/apps/{app_id}/policies/{policy_id}`
pub struct UpdateAccessPolicy {
    /// Account id.
    pub account: String,
    /// App id.
    pub app_id: String,
    /// Policy id.
    pub id: String,
    /// Policy.
    pub policy: ServiceAuthPolicy,
}
endpoint!(UpdateAccessPolicy, AccessPolicy, Method::PUT, perm::ACCESS_APPS, |s|
    path: format!("accounts/{}/access/apps/{}/policies/{}", s.account, s.app_id, s.id),
    describe: format!("update Access policy {}", s.policy.name),
    body: s.policy.json());

/// `DELETE /accounts/{account_id}/access/apps/{app_id}/policies/{policy_id}`
pub struct DeleteAccessPolicy {
    /// Account id.
    pub account: String,
    /// App id.
    pub app_id: String,
    /// Policy id.
    pub id: String,
}
endpoint!(DeleteAccessPolicy, Value, Method::DELETE, perm::ACCESS_APPS, |s|
    path: format!("accounts/{}/access/apps/{}/policies/{}", s.account, s.app_id, s.id),
    describe: format!("delete foreign policy {} from our Access application {}", s.id, s.app_id));

/// A service token as listed (no secret).
#[derive(Debug, Clone, Deserialize)]
pub struct ServiceToken {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Client id (the `CF-Access-Client-Id` value).
    pub client_id: String,
    /// Expiry (RFC 3339), if the token expires.
    #[serde(default)]
    pub expires_at: Option<String>,
}

/// A service token with its secret (create and rotate responses only).
#[derive(Clone, Deserialize)]
pub struct ServiceTokenWithSecret {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Client id.
    pub client_id: String,
    /// The secret, shown once.
    pub client_secret: SecretField,
}

/// A secret field of a response.
#[derive(Clone)]
pub struct SecretField(pub SecretString);

impl<'de> Deserialize<'de> for SecretField {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|s| SecretField(SecretString::new(s)))
    }
}

/// `GET /accounts/{account_id}/access/service_tokens`
pub struct ListServiceTokens {
    /// Account id.
    pub account: String,
}
endpoint!(ListServiceTokens, Vec<ServiceToken>, Method::GET, perm::ACCESS_TOKENS, |s|
    path: format!("accounts/{}/access/service_tokens", s.account),
    describe: "list Access service tokens".into());

/// `POST /accounts/{account_id}/access/service_tokens`
pub struct CreateServiceToken {
    /// Account id.
    pub account: String,
    /// Name.
    pub name: String,
}
endpoint!(CreateServiceToken, ServiceTokenWithSecret, Method::POST, perm::ACCESS_TOKENS, |s|
    path: format!("accounts/{}/access/service_tokens", s.account),
    describe: format!("create Access service token {}", s.name),
    body: json!({"name": s.name, "duration": "8760h"}));

/// `POST /accounts/{account_id}/access/service_tokens/{id}/refresh`: extends
/// the expiry by the token's duration; the secret is unchanged.
pub struct RefreshServiceToken {
    /// Account id.
    pub account: String,
    /// Token id.
    pub id: String,
}
endpoint!(RefreshServiceToken, ServiceToken, Method::POST, perm::ACCESS_TOKENS, |s|
    path: format!("accounts/{}/access/service_tokens/{}/refresh", s.account, s.id),
    describe: format!("refresh Access service token {}", s.id));

/// `POST /accounts/{account_id}/access/service_tokens/{id}/rotate`
pub struct RotateServiceToken {
    /// Account id.
    pub account: String,
    /// Token id.
    pub id: String,
}
endpoint!(RotateServiceToken, ServiceTokenWithSecret, Method::POST, perm::ACCESS_TOKENS, |s|
    path: format!("accounts/{}/access/service_tokens/{}/rotate", s.account, s.id),
    describe: format!("rotate Access service token {}", s.id));

// ---------- Hyperdrive ----------

/// A Hyperdrive config as read (no password, no Access secret).
#[derive(Debug, Clone, Deserialize)]
pub struct HyperdriveConfig {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Origin.
    #[serde(default)]
    pub origin: Value,
    /// Caching.
    #[serde(default)]
    pub caching: Option<Value>,
}

/// Desired Hyperdrive config (origin over the Access-protected hostname).
#[derive(Clone)]
pub struct HyperdriveBody {
    /// Name.
    pub name: String,
    /// Tunnel hostname.
    pub host: String,
    /// Database.
    pub database: String,
    /// User.
    pub user: String,
    /// Password.
    pub password: SecretString,
    /// Access client id.
    pub access_client_id: String,
    /// Access client secret.
    pub access_client_secret: SecretString,
    /// Caching disabled.
    pub caching_disabled: bool,
}

impl HyperdriveBody {
    fn json(&self) -> Value {
        json!({"name": self.name,
               "origin": {"scheme": "postgres", "host": self.host, "database": self.database,
                          "user": self.user, "password": self.password.expose(),
                          "access_client_id": self.access_client_id,
                          "access_client_secret": self.access_client_secret.expose()},
               "caching": {"disabled": self.caching_disabled}})
    }
}

/// `GET /accounts/{account_id}/hyperdrive/configs`
pub struct ListHyperdrive {
    /// Account id.
    pub account: String,
}
endpoint!(ListHyperdrive, Vec<HyperdriveConfig>, Method::GET, perm::HYPERDRIVE, |s|
    path: format!("accounts/{}/hyperdrive/configs", s.account),
    describe: "list Hyperdrive configs".into());

/// `POST /accounts/{account_id}/hyperdrive/configs`
pub struct CreateHyperdrive {
    /// Account id.
    pub account: String,
    /// Config.
    pub config: HyperdriveBody,
}
endpoint!(CreateHyperdrive, HyperdriveConfig, Method::POST, perm::HYPERDRIVE, |s|
    path: format!("accounts/{}/hyperdrive/configs", s.account),
    describe: format!("create Hyperdrive config {}", s.config.name),
    body: s.config.json());

/// `PUT /accounts/{account_id}/hyperdrive/configs/{id}`
pub struct UpdateHyperdrive {
    /// Account id.
    pub account: String,
    /// Id.
    pub id: String,
    /// Config.
    pub config: HyperdriveBody,
}
endpoint!(UpdateHyperdrive, HyperdriveConfig, Method::PUT, perm::HYPERDRIVE, |s|
    path: format!("accounts/{}/hyperdrive/configs/{}", s.account, s.id),
    describe: format!("update Hyperdrive config {}", s.config.name),
    body: s.config.json());

// ---------- Workers secrets ----------

/// A Worker secret as listed (name and type only).
#[derive(Debug, Clone, Deserialize)]
pub struct WorkerSecret {
    /// Name.
    pub name: String,
    /// `secret_text`.
    #[serde(rename = "type", default)]
    pub kind: String,
}

/// `GET /accounts/{account_id}/workers/scripts/{script}/secrets`
pub struct ListWorkerSecrets {
    /// Account id.
    pub account: String,
    /// Script name.
    pub script: String,
}
endpoint!(ListWorkerSecrets, Vec<WorkerSecret>, Method::GET, perm::WORKERS, |s|
    path: format!("accounts/{}/workers/scripts/{}/secrets", s.account, s.script),
    describe: format!("list secrets of Worker {}", s.script));

/// `PUT /accounts/{account_id}/workers/scripts/{script}/secrets`
pub struct PutWorkerSecret {
    /// Account id.
    pub account: String,
    /// Script name.
    pub script: String,
    /// Secret name.
    pub name: String,
    /// Value.
    pub value: SecretString,
}
endpoint!(PutWorkerSecret, Value, Method::PUT, perm::WORKERS, |s|
    path: format!("accounts/{}/workers/scripts/{}/secrets", s.account, s.script),
    describe: format!("set secret {} of Worker {}", s.name, s.script),
    body: json!({"name": s.name, "text": s.value.expose(), "type": "secret_text"}));

/// `DELETE /accounts/{account_id}/workers/scripts/{script}/secrets/{name}`
pub struct DeleteWorkerSecret {
    /// Account id.
    pub account: String,
    /// Script name.
    pub script: String,
    /// Secret name.
    pub name: String,
}
endpoint!(DeleteWorkerSecret, Value, Method::DELETE, perm::WORKERS, |s|
    path: format!("accounts/{}/workers/scripts/{}/secrets/{}", s.account, s.script, s.name),
    describe: format!("delete secret {} of Worker {}", s.name, s.script));

/// Path of a Workers KV value.
pub fn kv_value_path(account: &str, namespace: &str, key: &str) -> String {
    let enc: String = url::form_urlencoded::byte_serialize(key.as_bytes()).collect();
    format!("accounts/{account}/storage/kv/namespaces/{namespace}/values/{enc}")
}
