//! One type per Cloudflare API call we make, with the documented paths and
//! bodies. Result types keep only the fields we read (unknown fields are
//! ignored, as the API adds fields over time).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use cloudflare::framework::endpoint::spec::EndpointSpec;
use cloudflare::framework::endpoint::RequestBody;
use cloudflare::framework::response::{ApiResult, ApiSuccess};

use cloudflare::endpoints::{cfd_tunnel as cfd, workers, workerskv};

use super::{Call, List, Method};
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
    /// Workers VPC services (the connectivity directory); Cloudflare's docs
    /// name the role "Connectivity Directory Admin" (create, update, delete).
    pub const CONNECTIVITY: &str = "Account: Connectivity Directory Admin";
}

/// Implements [`Call`] for one of the crate's endpoint types.
macro_rules! call {
    ($ty:ty, $perm:expr, |$s:ident| $desc:expr) => {
        impl Call for $ty {
            #[allow(unused_variables)]
            fn describe(&self) -> String {
                let $s = self;
                $desc
            }
            fn permission(&self) -> &'static str {
                $perm
            }
        }
    };
}

/// Implements the `cloudflare` crate's [`EndpointSpec`] (JSON result) and our
/// [`Call`] for one of our endpoint types.
macro_rules! endpoint {
    ($ty:ty, $res:ty, $method:expr, $perm:expr, |$s:ident| path: $path:expr, describe: $desc:expr $(, query: $query:expr)? $(, body: $body:expr)? $(,)?) => {
        impl EndpointSpec for $ty {
            type JsonResponse = $res;
            type ResponseType = ApiSuccess<$res>;
            fn method(&self) -> Method {
                $method
            }
            #[allow(unused_variables)]
            fn path(&self) -> String {
                let $s = self;
                $path
            }
            $(#[allow(unused_variables)]
            fn query(&self) -> Option<String> {
                let $s = self;
                Some(encode_query($query))
            })?
            $(fn body(&self) -> Option<RequestBody<'_>> {
                let $s = self;
                Some(RequestBody::Json(($body).to_string()))
            })?
        }
        call!($ty, $perm, |$s| $desc);
    };
}

/// `name=value&…`, form-encoded.
fn encode_query(pairs: Vec<(&str, String)>) -> String {
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        ser.append_pair(k, &v);
    }
    ser.finish()
}

/// Marks our result types as the crate's [`ApiResult`].
macro_rules! api_result {
    ($($ty:ty),* $(,)?) => { $(impl ApiResult for $ty {})* };
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
endpoint!(ListZones, List<Zone>, Method::GET, perm::ZONE_READ, |s|
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

/// `GET /accounts/{account_id}/cfd_tunnel/{tunnel_id}`: the tunnel with the
/// fields the crate's `Tunnel` leaves out (`config_src`, `status`).
pub struct GetTunnel {
    /// Account id.
    pub account: String,
    /// Tunnel id.
    pub tunnel_id: String,
}
endpoint!(GetTunnel, Tunnel, Method::GET, perm::TUNNEL, |s|
    path: format!("accounts/{}/cfd_tunnel/{}", s.account, s.tunnel_id),
    describe: format!("get tunnel {}", s.tunnel_id));

/// The crate's `ListTunnels` for the non-deleted tunnels named `name`.
pub fn list_tunnels<'a>(account: &'a str, name: &str) -> cfd::list_tunnels::ListTunnels<'a> {
    cfd::list_tunnels::ListTunnels {
        account_identifier: account,
        params: cfd::list_tunnels::Params {
            name: Some(name.to_string()),
            is_deleted: Some(false),
            ..Default::default()
        },
    }
}

call!(
    cfd::list_tunnels::ListTunnels<'_>,
    perm::TUNNEL,
    |s| format!(
        "list tunnels named {}",
        s.params.name.as_deref().unwrap_or("(any)")
    )
);

/// The secret a new tunnel is created with. For a remotely managed tunnel
/// it only ever travels inside the tunnel token the API hands out, so it is
/// random, held in memory for the one call and wiped on drop.
pub struct TunnelSecret(Vec<u8>);

impl TunnelSecret {
    /// 32 random bytes (the API's minimum).
    pub fn random() -> Self {
        let mut b = vec![0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
        Self(b)
    }
}

impl Drop for TunnelSecret {
    fn drop(&mut self) {
        for b in self.0.iter_mut() {
            // SAFETY: `b` is a valid, exclusive reference into the buffer;
            // the volatile write keeps the compiler from eliding the wipe.
            unsafe { std::ptr::write_volatile(b, 0) };
        }
    }
}

/// The crate's `CreateTunnel` for a remotely managed tunnel.
pub fn create_tunnel<'a>(
    account: &'a str,
    name: &'a str,
    secret: &'a TunnelSecret,
) -> cfd::create_tunnel::CreateTunnel<'a> {
    cfd::create_tunnel::CreateTunnel {
        account_identifier: account,
        params: cfd::create_tunnel::Params {
            name,
            tunnel_secret: &secret.0,
            config_src: &cfd::ConfigurationSrc::Cloudflare,
            metadata: None,
        },
    }
}

call!(
    cfd::create_tunnel::CreateTunnel<'_>,
    perm::TUNNEL,
    |s| format!("create tunnel {}", s.params.name)
);

/// A tunnel token (the value of cloudflared's `TUNNEL_TOKEN`).
#[derive(Debug, Clone, Deserialize)]
#[serde(transparent)]
pub struct TunnelToken(pub SecretField);

/// `GET /accounts/{account_id}/cfd_tunnel/{tunnel_id}/token`
pub struct GetTunnelToken {
    /// Account id.
    pub account: String,
    /// Tunnel id.
    pub tunnel_id: String,
}
endpoint!(GetTunnelToken, TunnelToken, Method::GET, perm::TUNNEL, |s|
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
endpoint!(ListDnsRecords, List<DnsRecord>, Method::GET, perm::DNS, |s|
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

/// `DELETE /zones/{zone_id}/dns_records/{id}`: only for our own record on
/// the Medusa hostname once Workers VPC makes it unnecessary.
pub struct DeleteDnsRecord {
    /// Zone id.
    pub zone: String,
    /// Record id.
    pub id: String,
    /// Name (for messages).
    pub name: String,
}
endpoint!(DeleteDnsRecord, IdOnly, Method::DELETE, perm::DNS, |s|
    path: format!("zones/{}/dns_records/{}", s.zone, s.id),
    describe: format!("delete DNS record {}", s.name));

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
endpoint!(ListAccessApps, List<AccessApp>, Method::GET, perm::ACCESS_APPS, |s|
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

/// `DELETE /accounts/{account_id}/access/apps/{app_id}` (with its policies):
/// only for our own Medusa application once Workers VPC replaces it.
pub struct DeleteAccessApp {
    /// Account id.
    pub account: String,
    /// App id.
    pub id: String,
    /// Name (for messages).
    pub name: String,
}
endpoint!(DeleteAccessApp, IdOnly, Method::DELETE, perm::ACCESS_APPS, |s|
    path: format!("accounts/{}/access/apps/{}", s.account, s.id),
    describe: format!("delete Access application {}", s.name));

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
endpoint!(ListAccessPolicies, List<AccessPolicy>, Method::GET, perm::ACCESS_APPS, |s|
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
endpoint!(DeleteAccessPolicy, IdOnly, Method::DELETE, perm::ACCESS_APPS, |s|
    path: format!("accounts/{}/access/apps/{}/policies/{}", s.account, s.app_id, s.id),
    describe: format!("delete foreign policy {} from our Access application {}", s.id, s.app_id));

/// The result of a DELETE that answers with the id.
#[derive(Debug, Clone, Deserialize)]
pub struct IdOnly {
    /// Id of the deleted object.
    pub id: String,
}

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
#[derive(Debug, Clone, Deserialize)]
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
#[derive(Debug, Clone)]
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
endpoint!(ListServiceTokens, List<ServiceToken>, Method::GET, perm::ACCESS_TOKENS, |s|
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
endpoint!(ListHyperdrive, List<HyperdriveConfig>, Method::GET, perm::HYPERDRIVE, |s|
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

// ---------- Workers VPC (connectivity directory services) ----------

/// A Workers VPC service as read (`GET …/connectivity/directory/services`).
#[derive(Debug, Clone, Deserialize)]
pub struct VpcService {
    /// Id (UUID); the `service_id` of the Worker's `vpc_services` binding.
    pub service_id: String,
    /// Name (unique in the account).
    pub name: String,
    /// `http` or `tcp`.
    #[serde(rename = "type")]
    pub kind: String,
    /// HTTP port (http services).
    #[serde(default)]
    pub http_port: Option<u32>,
    /// HTTPS port (http services).
    #[serde(default)]
    pub https_port: Option<u32>,
    /// TCP port (tcp services).
    #[serde(default)]
    pub tcp_port: Option<u32>,
    /// One of the documented host shapes (`{ipv4, network}`, `{ipv6,
    /// network}`, `{ipv4, ipv6, network}`, `{hostname, resolver_network}`).
    #[serde(default)]
    pub host: Value,
    /// TLS settings (`cert_verification_mode`), if set.
    #[serde(default)]
    pub tls_settings: Option<Value>,
    /// Creation time.
    #[serde(default)]
    pub created_at: Option<String>,
    /// Last update.
    #[serde(default)]
    pub updated_at: Option<String>,
}

/// Our Workers VPC service: `type = "http"`, reached by an in-cluster
/// hostname resolved by cloudflared (`resolver_network`) on our tunnel,
/// plain HTTP only (no `https_port`: giving only one of the two ports
/// enforces that scheme).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VpcServiceBody {
    /// Name.
    pub name: String,
    /// In-cluster hostname (`<service>.<namespace>.svc.cluster.local`).
    pub hostname: String,
    /// Tunnel id.
    pub tunnel_id: String,
    /// HTTP port.
    pub http_port: u16,
}

impl VpcServiceBody {
    fn host(&self) -> Value {
        json!({"hostname": self.hostname, "resolver_network": {"tunnel_id": self.tunnel_id}})
    }

    /// The request body (create and PUT: a PUT replaces the whole service).
    pub fn json(&self) -> Value {
        json!({"name": self.name, "type": "http", "http_port": self.http_port,
               "host": self.host()})
    }

    /// Whether `s` is what this body would create. Judged on every field we
    /// set and on the absence of the ones we leave out (an added
    /// `https_port`, resolver IPs, IP addresses or TLS settings are drift).
    pub fn matches(&self, s: &VpcService) -> bool {
        let resolver_ips_empty = match &s.host["resolver_network"]["resolver_ips"] {
            Value::Null => true,
            Value::Array(a) => a.is_empty(),
            _ => false,
        };
        let host_keys_ok = s
            .host
            .as_object()
            .is_some_and(|m| m.keys().all(|k| k == "hostname" || k == "resolver_network"));
        let resolver_keys_ok = s.host["resolver_network"]
            .as_object()
            .is_some_and(|m| m.keys().all(|k| k == "tunnel_id" || k == "resolver_ips"));
        s.name == self.name
            && s.kind == "http"
            && s.http_port == Some(u32::from(self.http_port))
            && s.https_port.is_none()
            && s.tcp_port.is_none()
            && host_keys_ok
            && resolver_keys_ok
            && s.host["hostname"].as_str() == Some(self.hostname.as_str())
            && s.host["resolver_network"]["tunnel_id"].as_str() == Some(self.tunnel_id.as_str())
            && resolver_ips_empty
            && s.tls_settings.as_ref().is_none_or(Value::is_null)
    }
}

/// `GET /accounts/{account_id}/connectivity/directory/services?type=http`
pub struct ListVpcServices {
    /// Account id.
    pub account: String,
}
endpoint!(ListVpcServices, List<VpcService>, Method::GET, perm::CONNECTIVITY, |s|
    path: format!("accounts/{}/connectivity/directory/services", s.account),
    describe: "list Workers VPC services".into(),
    query: vec![("type", "http".to_string())]);

/// `POST /accounts/{account_id}/connectivity/directory/services`
pub struct CreateVpcService {
    /// Account id.
    pub account: String,
    /// Service.
    pub service: VpcServiceBody,
}
endpoint!(CreateVpcService, VpcService, Method::POST, perm::CONNECTIVITY, |s|
    path: format!("accounts/{}/connectivity/directory/services", s.account),
    describe: format!("create Workers VPC service {}", s.service.name),
    body: s.service.json());

/// `PUT /accounts/{account_id}/connectivity/directory/services/{service_id}`
/// (replaces the whole service).
pub struct UpdateVpcService {
    /// Account id.
    pub account: String,
    /// Service id.
    pub service_id: String,
    /// Service.
    pub service: VpcServiceBody,
}
endpoint!(UpdateVpcService, VpcService, Method::PUT, perm::CONNECTIVITY, |s|
    path: format!("accounts/{}/connectivity/directory/services/{}", s.account, s.service_id),
    describe: format!("update Workers VPC service {}", s.service.name),
    body: s.service.json());

api_result!(
    VpcService,
    Zone,
    Tunnel,
    TunnelToken,
    TunnelConfiguration,
    DnsRecord,
    AccessApp,
    AccessPolicy,
    IdOnly,
    ServiceToken,
    ServiceTokenWithSecret,
    HyperdriveConfig,
);

// ---------- Workers secrets (the crate's endpoints) ----------

/// The crate's `ListSecrets`.
pub fn list_worker_secrets<'a>(account: &'a str, script: &'a str) -> workers::ListSecrets<'a> {
    workers::ListSecrets {
        account_identifier: account,
        script_name: script,
    }
}

call!(workers::ListSecrets<'_>, perm::WORKERS, |s| format!(
    "list secrets of Worker {}",
    s.script_name
));

/// The crate's `CreateSecret` (a PUT that creates or replaces).
pub fn put_worker_secret<'a>(
    account: &'a str,
    script: &'a str,
    name: &str,
    value: &SecretString,
) -> workers::CreateSecret<'a> {
    workers::CreateSecret {
        account_identifier: account,
        script_name: script,
        params: workers::CreateSecretParams {
            name: name.to_string(),
            text: value.expose().to_string(),
            secret_type: "secret_text".into(),
        },
    }
}

call!(workers::CreateSecret<'_>, perm::WORKERS, |s| format!(
    "set secret {} of Worker {}",
    s.params.name, s.script_name
));

/// The crate's `DeleteSecret`.
pub fn delete_worker_secret<'a>(
    account: &'a str,
    script: &'a str,
    name: &'a str,
) -> workers::DeleteSecret<'a> {
    workers::DeleteSecret {
        account_identifier: account,
        script_name: script,
        secret_name: name,
    }
}

call!(workers::DeleteSecret<'_>, perm::WORKERS, |s| format!(
    "delete secret {} of Worker {}",
    s.secret_name, s.script_name
));

// ---------- Workers KV (the crate's endpoints) ----------

/// The crate's `ReadKey` (a raw body, not an envelope).
pub fn read_kv<'a>(
    account: &'a str,
    namespace: &'a str,
    key: &'a str,
) -> workerskv::read_key::ReadKey<'a> {
    workerskv::read_key::ReadKey {
        account_identifier: account,
        namespace_identifier: namespace,
        key,
    }
}

call!(workerskv::read_key::ReadKey<'_>, perm::KV, |s| format!(
    "read KV key {}",
    s.key
));

/// The crate's `WriteKey` with a plain value.
pub fn write_kv<'a>(
    account: &'a str,
    namespace: &'a str,
    key: &'a str,
    value: Vec<u8>,
) -> workerskv::write_key::WriteKey<'a> {
    workerskv::write_key::WriteKey {
        account_identifier: account,
        namespace_identifier: namespace,
        key,
        params: Default::default(),
        body: workerskv::write_key::WriteKeyBody::Value(value),
    }
}

call!(workerskv::write_key::WriteKey<'_>, perm::KV, |s| format!(
    "write KV key {}",
    s.key
));

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::*;

    fn json_body<E: EndpointSpec>(ep: &E) -> Value {
        match ep.body() {
            Some(RequestBody::Json(s)) => serde_json::from_str(&s).unwrap(),
            _ => panic!("expected a JSON body"),
        }
    }

    #[test]
    fn crate_tunnel_endpoints_send_the_documented_request() {
        let list = list_tunnels("acc", "shop tunnel");
        assert_eq!(list.method(), Method::GET);
        assert_eq!(list.path(), "accounts/acc/cfd_tunnel");
        assert_eq!(
            list.query().as_deref(),
            Some("name=shop+tunnel&is_deleted=false")
        );
        assert_eq!(list.permission(), perm::TUNNEL);

        let secret = TunnelSecret::random();
        let create = create_tunnel("acc", "shop-tunnel", &secret);
        assert_eq!(create.method(), Method::POST);
        assert_eq!(create.path(), "accounts/acc/cfd_tunnel");
        let body = json_body(&create);
        assert_eq!(body["name"], "shop-tunnel");
        assert_eq!(body["config_src"], "cloudflare");
        assert!(body.get("metadata").is_none(), "{body}");
        let raw = base64::engine::general_purpose::STANDARD
            .decode(body["tunnel_secret"].as_str().unwrap())
            .unwrap();
        assert_eq!(raw.len(), 32);
        let other = json_body(&create_tunnel("acc", "x", &TunnelSecret::random()));
        assert_ne!(body["tunnel_secret"], other["tunnel_secret"]);
    }

    #[test]
    fn crate_secret_and_kv_endpoints_send_the_documented_request() {
        let put = put_worker_secret("acc", "edge", "API_KEY", &SecretString::new("v"));
        assert_eq!(put.method(), Method::PUT);
        assert_eq!(put.path(), "accounts/acc/workers/scripts/edge/secrets");
        assert_eq!(
            json_body(&put),
            json!({"name": "API_KEY", "text": "v", "type": "secret_text"})
        );
        // Messages name the secret, never its value.
        assert_eq!(put.describe(), "set secret API_KEY of Worker edge");
        let del = delete_worker_secret("acc", "edge", "API_KEY");
        assert_eq!(del.method(), Method::DELETE);
        assert_eq!(
            del.path(),
            "accounts/acc/workers/scripts/edge/secrets/API_KEY"
        );

        let read = read_kv("acc", "ns", "secret-digests/edge");
        assert_eq!(
            read.path(),
            "accounts/acc/storage/kv/namespaces/ns/values/secret-digests%2Fedge"
        );
        let write = write_kv("acc", "ns", "k", b"{}".to_vec());
        assert_eq!(write.method(), Method::PUT);
        assert!(matches!(write.body(), Some(RequestBody::Raw(b)) if b == b"{}"));
        assert_eq!(write.query().as_deref().unwrap_or(""), "");
    }

    #[test]
    fn our_endpoints_encode_query_and_body() {
        let z = ListZones {
            account: "a b".into(),
            name: "shop.example".into(),
        };
        assert_eq!(
            z.query().as_deref(),
            Some("name=shop.example&account.id=a+b")
        );
        assert!(z.body().is_none());
        let d = CreateDnsRecord {
            zone: "z".into(),
            record: CnameBody {
                name: "api.shop.example".into(),
                content: "t.cfargotunnel.com".into(),
                comment: "managed-by=shopedge".into(),
            },
        };
        assert_eq!(d.path(), "zones/z/dns_records");
        let b = json_body(&d);
        assert_eq!(b["type"], "CNAME");
        assert_eq!(b["proxied"], true);
        assert_eq!(b["comment"], "managed-by=shopedge");
    }

    #[test]
    fn vpc_service_endpoints_send_the_documented_request() {
        let body = VpcServiceBody {
            name: "shop-medusa".into(),
            hostname: "medusa.shop.svc.cluster.local".into(),
            tunnel_id: "0191dce4-9ab4-7fce-b660-8e5dec5172da".into(),
            http_port: 9000,
        };
        let list = ListVpcServices {
            account: "acc".into(),
        };
        assert_eq!(list.method(), Method::GET);
        assert_eq!(list.path(), "accounts/acc/connectivity/directory/services");
        assert_eq!(list.query().as_deref(), Some("type=http"));
        assert_eq!(list.permission(), perm::CONNECTIVITY);
        let create = CreateVpcService {
            account: "acc".into(),
            service: body.clone(),
        };
        assert_eq!(create.method(), Method::POST);
        assert_eq!(
            create.path(),
            "accounts/acc/connectivity/directory/services"
        );
        // Exactly the hostname host shape, plain HTTP only.
        assert_eq!(
            json_body(&create),
            json!({"name": "shop-medusa", "type": "http", "http_port": 9000,
                   "host": {"hostname": "medusa.shop.svc.cluster.local",
                            "resolver_network": {"tunnel_id": "0191dce4-9ab4-7fce-b660-8e5dec5172da"}}})
        );
        let put = UpdateVpcService {
            account: "acc".into(),
            service_id: "s1".into(),
            service: body.clone(),
        };
        assert_eq!(put.method(), Method::PUT);
        assert_eq!(
            put.path(),
            "accounts/acc/connectivity/directory/services/s1"
        );
        assert_eq!(json_body(&put), json_body(&create));
    }

    #[test]
    fn vpc_service_drift_is_judged_on_every_field() {
        let body = VpcServiceBody {
            name: "shop-medusa".into(),
            hostname: "medusa.shop.svc.cluster.local".into(),
            tunnel_id: "t1".into(),
            http_port: 9000,
        };
        let read = |extra: Value| -> VpcService {
            let mut v = body.json();
            v["service_id"] = json!("s1");
            v["created_at"] = json!("2026-01-01T00:00:00Z");
            for (k, x) in extra.as_object().unwrap() {
                v[k] = x.clone();
            }
            serde_json::from_value(v).unwrap()
        };
        assert!(body.matches(&read(json!({}))));
        // An empty resolver list and a null TLS setting are what we sent.
        let mut same = read(json!({"tls_settings": null}));
        same.host["resolver_network"]["resolver_ips"] = json!([]);
        assert!(body.matches(&same));
        for drift in [
            json!({"http_port": 8080}),
            json!({"https_port": 443}),
            json!({"type": "tcp"}),
            json!({"tls_settings": {"cert_verification_mode": "disabled"}}),
            json!({"host": {"hostname": "medusa.shop.svc.cluster.local",
                            "resolver_network": {"tunnel_id": "t2"}}}),
            json!({"host": {"hostname": "evil.example", "resolver_network": {"tunnel_id": "t1"}}}),
            json!({"host": {"hostname": "medusa.shop.svc.cluster.local",
                            "resolver_network": {"tunnel_id": "t1", "resolver_ips": ["10.0.0.53"]}}}),
            json!({"host": {"ipv4": "10.0.0.1", "network": {"tunnel_id": "t1"}}}),
        ] {
            assert!(!body.matches(&read(drift.clone())), "{drift}");
        }
    }

    #[test]
    fn results_decode_from_documented_shapes() {
        let l: List<Zone> = serde_json::from_value(
            json!([{"id": "z1", "name": "shop.example", "status": "active"}]),
        )
        .unwrap();
        assert_eq!(l.0[0].id, "z1");
        let t: TunnelToken = serde_json::from_value(json!("eyJhIjoi")).unwrap();
        assert_eq!(format!("{t:?}"), "TunnelToken(SecretField(<redacted>))");
        assert_eq!(t.0 .0.expose(), "eyJhIjoi");
        let s: ServiceTokenWithSecret = serde_json::from_value(json!({
            "id": "i", "name": "n", "client_id": "c.access", "client_secret": "s3cr3t"}))
        .unwrap();
        assert!(!format!("{s:?}").contains("s3cr3t"));
    }
}
