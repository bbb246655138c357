//! Observe, validate, plan and execute against the Cloudflare API.
//!
//! Every read happens before the first mutating call, so a missing
//! permission, a missing zone, a foreign object or an undecryptable secrets
//! file stops the run with nothing changed. After a crash at any point a
//! re-run observes what exists (found by name and ownership mark) and
//! continues; nothing is created twice.

use std::collections::BTreeMap;

use serde::Serialize;
use url::Url;

use crate::api::endpoints::*;
use crate::api::{ApiError, Call, Client, ClientConfig, Listing, DEFAULT_BASE_URL};
use crate::error::TunnelError;
use crate::plan::{
    self, desired_tunnel_config, desired_vpc_service, tunnel_target, Action, Observed,
};
use crate::secret::SecretString;
use crate::secrets::{AgeKeys, SecretsFile};
use crate::spec::{
    ownership_comment, TunnelSpec, ACCESS_CLIENT_ID, ACCESS_CLIENT_SECRET, VPC_BINDING,
};

/// API credentials, named as wrangler names them.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// `CLOUDFLARE_API_TOKEN`.
    pub token: SecretString,
    /// `CLOUDFLARE_ACCOUNT_ID`.
    pub account_id: String,
    /// `CLOUDFLARE_API_BASE_URL` (tests point it at the fake).
    pub base_url: Url,
}

impl Credentials {
    /// Reads the credentials from a variable lookup.
    pub fn from_env(var: &dyn Fn(&str) -> Option<String>) -> Result<Self, TunnelError> {
        let get = |k: &'static str, hint: &str| {
            var(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| TunnelError::MissingEnv {
                    var: k,
                    hint: hint.to_string(),
                })
        };
        let token = get(
            "CLOUDFLARE_API_TOKEN",
            &format!(
                "create an API token with {} and export it",
                crate::error::REQUIRED_PERMISSIONS
            ),
        )?;
        let account_id = get(
            "CLOUDFLARE_ACCOUNT_ID",
            "export the account id shown in the Cloudflare dashboard (Workers & Pages overview)",
        )?;
        if !account_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(TunnelError::Spec(
                "CLOUDFLARE_ACCOUNT_ID must be the 32-character hex account id".into(),
            ));
        }
        let base = var("CLOUDFLARE_API_BASE_URL")
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| DEFAULT_BASE_URL.to_string());
        let base_url = Url::parse(&base).map_err(|e| {
            TunnelError::Spec(format!(
                "CLOUDFLARE_API_BASE_URL {base:?} is not a URL: {e}"
            ))
        })?;
        Ok(Self {
            token: SecretString::new(token),
            account_id,
            base_url,
        })
    }

    /// A client for these credentials.
    pub fn client(&self) -> Result<Client, TunnelError> {
        Ok(Client::new(ClientConfig::new(
            self.base_url.clone(),
            self.token.clone(),
        ))?)
    }
}

/// Turns an API error from a read into the clearest message.
pub fn classify(e: ApiError) -> TunnelError {
    if let ApiError::Api {
        what,
        status,
        errors,
        permission,
    } = &e
    {
        let code = errors.first().map(|m| m.code).unwrap_or(0);
        // 9109 invalid token, 6003/6111 malformed header, 10001 token expired.
        if errors
            .iter()
            .any(|m| matches!(m.code, 9109 | 6003 | 6111 | 10001 | 9106))
        {
            return TunnelError::BadToken(e.to_string());
        }
        if *status == 403 || *status == 401 || code == 10000 {
            return TunnelError::Permission {
                action: what.clone(),
                permission,
                status: *status,
                code,
            };
        }
    }
    TunnelError::Api(e)
}

/// What a run did, for humans and `--output json`.
#[derive(Debug, Clone, Serialize, Default)]
pub struct UpReport {
    /// Tunnel name.
    pub tunnel: String,
    /// Tunnel id.
    pub tunnel_id: Option<String>,
    /// Actions planned (and executed unless dry-run).
    pub actions: Vec<Action>,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// Secrets written to the secrets file (names only).
    pub secrets_stored: Vec<String>,
    /// The Workers VPC service (`worker_binding = "workers_vpc"` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vpc_service: Option<VpcServiceReport>,
}

/// Our Workers VPC service and how the Worker binds it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct VpcServiceReport {
    /// Service name (`<cluster>-medusa`).
    pub name: String,
    /// Service id (unknown in a dry run before it is created).
    pub service_id: Option<String>,
    /// The Worker binding name.
    pub binding: String,
    /// The wrangler.toml entry to add (when the id is known).
    pub wrangler_toml: Option<String>,
}

impl VpcServiceReport {
    fn new(spec: &TunnelSpec, service_id: Option<String>) -> Self {
        Self {
            name: spec.vpc_service_name(),
            wrangler_toml: service_id
                .as_deref()
                .map(|id| wrangler_vpc_binding(&spec.environment, id)),
            service_id,
            binding: VPC_BINDING.to_string(),
        }
    }
}

/// The wrangler.toml entry binding the Medusa VPC service in environment
/// `env` (bindings are not inherited by wrangler environments, so it goes
/// under `env.<env>`, like the repo's other bindings).
pub fn wrangler_vpc_binding(env: &str, service_id: &str) -> String {
    format!(
        "[[env.{env}.vpc_services]]\nbinding = \"{VPC_BINDING}\"\nservice_id = \"{service_id}\"\n"
    )
}

/// The reconciler.
pub struct Reconciler {
    client: Client,
    account: String,
    spec: TunnelSpec,
    secrets: SecretsFile,
    keys: AgeKeys,
}

struct Ctx {
    tunnel_id: Option<String>,
    token: Option<ServiceToken>,
    token_secret: Option<SecretString>,
    app_ids: BTreeMap<String, String>,
    stored: Vec<String>,
    vpc_service_id: Option<String>,
}

impl Reconciler {
    /// A reconciler. Validates the spec.
    pub fn new(
        creds: &Credentials,
        spec: TunnelSpec,
        secrets: SecretsFile,
        keys: AgeKeys,
    ) -> Result<Self, TunnelError> {
        spec.validate()?;
        Ok(Self {
            client: creds.client()?,
            account: creds.account_id.clone(),
            spec,
            secrets,
            keys,
        })
    }

    async fn read<E: Call>(&self, ep: &E) -> Result<E::JsonResponse, TunnelError> {
        self.client.send(ep).await.map_err(classify)
    }

    async fn read_all<E>(
        &self,
        ep: &E,
    ) -> Result<Vec<<E::JsonResponse as Listing>::Item>, TunnelError>
    where
        E: Call,
        E::JsonResponse: Listing,
    {
        self.client.list_all(ep).await.map_err(classify)
    }

    /// The id of our tunnel, if it exists (found by name with the crate's
    /// list call).
    async fn find_tunnel_id(&self) -> Result<Option<String>, TunnelError> {
        let name = self.spec.tunnel_name();
        let listed = self.read_all(&list_tunnels(&self.account, &name)).await?;
        Ok(listed
            .into_iter()
            .find(|t| t.name == name && t.deleted_at.is_none())
            .map(|t| t.id.to_string()))
    }

    /// Our tunnel, if it exists, read whole (the crate's list type has no
    /// `config_src`/`status`).
    async fn find_tunnel(&self) -> Result<Option<Tunnel>, TunnelError> {
        let Some(tunnel_id) = self.find_tunnel_id().await? else {
            return Ok(None);
        };
        let t = self
            .read(&GetTunnel {
                account: self.account.clone(),
                tunnel_id,
            })
            .await?;
        Ok(Some(t))
    }

    /// Reads everything (no mutating call).
    pub async fn observe(&self) -> Result<Observed, TunnelError> {
        let spec = &self.spec;
        let zones = self
            .read_all(&ListZones {
                account: self.account.clone(),
                name: spec.zone.clone(),
            })
            .await?;
        let zone = zones
            .into_iter()
            .find(|z| z.name.eq_ignore_ascii_case(&spec.zone))
            .ok_or_else(|| TunnelError::ZoneNotFound {
                zone: spec.zone.clone(),
                account: self.account.clone(),
            })?;
        let mut obs = Observed {
            zone_id: zone.id.clone(),
            now_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0),
            ..Observed::default()
        };
        obs.tunnel = self.find_tunnel().await?;
        if let Some(t) = &obs.tunnel {
            if t.config_src.as_deref() == Some("cloudflare") {
                let c = self
                    .read(&GetTunnelConfig {
                        account: self.account.clone(),
                        tunnel_id: t.id.clone(),
                    })
                    .await?;
                obs.tunnel_config = c.config.filter(|v| !v.is_null());
            }
        }
        // Published hostnames, and under Workers VPC the old Medusa hostname
        // (to remove our record there).
        let mut hostnames: Vec<&str> = spec
            .public_origins()
            .into_iter()
            .map(|(_, o)| o.hostname.as_str())
            .collect();
        if spec.uses_vpc() && !spec.medusa.hostname.is_empty() {
            hostnames.push(&spec.medusa.hostname);
        }
        for hostname in hostnames {
            let recs = self
                .read_all(&ListDnsRecords {
                    zone: zone.id.clone(),
                    name: hostname.to_string(),
                })
                .await?;
            let recs: Vec<_> = recs
                .into_iter()
                .filter(|r| r.name.eq_ignore_ascii_case(hostname))
                .collect();
            obs.dns.insert(hostname.to_string(), recs);
        }
        if spec.uses_access() {
            let tokens = self
                .read_all(&ListServiceTokens {
                    account: self.account.clone(),
                })
                .await?;
            obs.service_token = tokens
                .into_iter()
                .find(|t| t.name == spec.service_token_name());
        }
        obs.access_apps = self
            .read_all(&ListAccessApps {
                account: self.account.clone(),
            })
            .await?;
        for (role, _) in spec.public_origins() {
            let name = spec.access_app_name(role);
            if let Some(app) = obs.access_apps.iter().find(|a| a.name == name) {
                let ps = self
                    .read_all(&ListAccessPolicies {
                        account: self.account.clone(),
                        app_id: app.id.clone(),
                    })
                    .await?;
                obs.policies.insert(app.id.clone(), ps);
            }
        }
        if let Some(h) = &spec.hyperdrive {
            let all = self
                .read_all(&ListHyperdrive {
                    account: self.account.clone(),
                })
                .await?;
            obs.hyperdrive = all.into_iter().find(|c| c.name == h.name);
        }
        if spec.uses_vpc() {
            let name = spec.vpc_service_name();
            let all = self
                .read_all(&ListVpcServices {
                    account: self.account.clone(),
                })
                .await?;
            obs.vpc_service = all.into_iter().find(|s| s.name == name);
        }
        // The secrets file must be readable before we change anything.
        let stored = self.secrets.load_or_empty(&self.keys)?;
        obs.token_secret_stored = match &obs.service_token {
            Some(t) => {
                stored.get(ACCESS_CLIENT_ID).map(|v| v.expose()) == Some(t.client_id.as_str())
                    && stored.contains_key(ACCESS_CLIENT_SECRET)
            }
            None => false,
        };
        Ok(obs)
    }

    /// Observes and plans (no mutating call).
    pub async fn plan(&self) -> Result<(Observed, Vec<Action>), TunnelError> {
        let obs = self.observe().await?;
        let actions = plan::plan(&self.spec, &obs)?;
        self.preflight(&actions)?;
        Ok((obs, actions))
    }

    /// Checks that every input the actions need is present.
    fn preflight(&self, actions: &[Action]) -> Result<(), TunnelError> {
        let needs_store = actions.iter().any(|a| {
            matches!(
                a,
                Action::CreateServiceToken { .. } | Action::RecoverServiceTokenSecret { .. }
            )
        });
        if needs_store {
            self.keys.recipients()?;
        }
        let needs_hyperdrive = actions.iter().any(|a| {
            matches!(
                a,
                Action::CreateHyperdrive { .. } | Action::UpdateHyperdrive { .. }
            )
        });
        if let (true, Some(h)) = (needs_hyperdrive, &self.spec.hyperdrive) {
            let stored = self.secrets.load_or_empty(&self.keys)?;
            if !stored.contains_key(&h.password_secret) {
                return Err(TunnelError::Spec(format!(
                    "hyperdrive needs the Postgres password in {} under {}: run `provisioner secrets set --env {} {}` first",
                    self.secrets.display(),
                    h.password_secret,
                    self.spec.environment,
                    h.password_secret
                )));
            }
        }
        Ok(())
    }

    /// `tunnel up`: observe, plan, and (unless `dry_run`) execute.
    pub async fn up(&self, dry_run: bool) -> Result<UpReport, TunnelError> {
        let (obs, actions) = self.plan().await?;
        let mut report = UpReport {
            tunnel: self.spec.tunnel_name(),
            tunnel_id: obs.tunnel.as_ref().map(|t| t.id.clone()),
            actions: actions.clone(),
            dry_run,
            secrets_stored: Vec::new(),
            vpc_service: self.vpc_report(&obs),
        };
        if dry_run || actions.is_empty() {
            return Ok(report);
        }
        let mut ctx = Ctx {
            tunnel_id: obs.tunnel.as_ref().map(|t| t.id.clone()),
            token: obs.service_token.clone(),
            token_secret: None,
            app_ids: BTreeMap::new(),
            stored: Vec::new(),
            vpc_service_id: obs.vpc_service.as_ref().map(|s| s.service_id.clone()),
        };
        for (role, _) in self.spec.public_origins() {
            let name = self.spec.access_app_name(role);
            if let Some(a) = obs.access_apps.iter().find(|a| a.name == name) {
                ctx.app_ids.insert(role.to_string(), a.id.clone());
            }
        }
        for action in &actions {
            tracing::info!(action = %action.describe(), "cloudflare");
            self.execute(action, &obs, &mut ctx).await?;
        }
        report.tunnel_id = ctx.tunnel_id;
        report.secrets_stored = ctx.stored;
        if self.spec.uses_vpc() {
            report.vpc_service = Some(VpcServiceReport::new(&self.spec, ctx.vpc_service_id));
        }
        Ok(report)
    }

    fn vpc_report(&self, obs: &Observed) -> Option<VpcServiceReport> {
        self.spec.uses_vpc().then(|| {
            VpcServiceReport::new(
                &self.spec,
                obs.vpc_service.as_ref().map(|s| s.service_id.clone()),
            )
        })
    }

    async fn execute(
        &self,
        action: &Action,
        obs: &Observed,
        ctx: &mut Ctx,
    ) -> Result<(), TunnelError> {
        let account = self.account.clone();
        let spec = &self.spec;
        let tunnel_id = || {
            ctx.tunnel_id
                .clone()
                .ok_or_else(|| TunnelError::Internal("tunnel id unknown".into()))
        };
        match action {
            Action::CreateTunnel { name } => {
                let secret = TunnelSecret::random();
                let t = self
                    .client
                    .send(&create_tunnel(&account, name, &secret))
                    .await?;
                ctx.tunnel_id = Some(t.id.to_string());
            }
            Action::PutTunnelConfig { .. } => {
                self.client
                    .send(&PutTunnelConfig {
                        account,
                        tunnel_id: tunnel_id()?,
                        config: desired_tunnel_config(spec),
                    })
                    .await?;
            }
            Action::CreateDnsRecord { hostname } => {
                let body = CnameBody {
                    name: hostname.clone(),
                    content: tunnel_target(&tunnel_id()?),
                    comment: ownership_comment(&spec.cluster),
                };
                self.client
                    .send(&CreateDnsRecord {
                        zone: obs.zone_id.clone(),
                        record: body,
                    })
                    .await?;
            }
            Action::UpdateDnsRecord { hostname, id } => {
                let body = CnameBody {
                    name: hostname.clone(),
                    content: tunnel_target(&tunnel_id()?),
                    comment: ownership_comment(&spec.cluster),
                };
                self.client
                    .send(&UpdateDnsRecord {
                        zone: obs.zone_id.clone(),
                        id: id.clone(),
                        record: body,
                    })
                    .await?;
            }
            Action::CreateServiceToken { name } => {
                let t = self
                    .client
                    .send(&CreateServiceToken {
                        account,
                        name: name.clone(),
                    })
                    .await?;
                self.store_token(&t, ctx)?;
            }
            Action::RefreshServiceToken { id, .. } => {
                self.client
                    .send(&RefreshServiceToken {
                        account,
                        id: id.clone(),
                    })
                    .await?;
            }
            Action::RecoverServiceTokenSecret { id, .. } => {
                let t = self
                    .client
                    .send(&RotateServiceToken {
                        account,
                        id: id.clone(),
                    })
                    .await?;
                self.store_token(&t, ctx)?;
            }
            Action::CreateAccessApp { role, hostname } => {
                let app = self
                    .client
                    .send(&CreateAccessApp {
                        account,
                        app: AccessAppBody {
                            name: spec.access_app_name(role),
                            domain: hostname.clone(),
                        },
                    })
                    .await?;
                ctx.app_ids.insert(role.clone(), app.id);
            }
            Action::UpdateAccessApp { role, id } => {
                let hostname = self.hostname(role);
                self.client
                    .send(&UpdateAccessApp {
                        account,
                        id: id.clone(),
                        app: AccessAppBody {
                            name: spec.access_app_name(role),
                            domain: hostname,
                        },
                    })
                    .await?;
            }
            Action::CreateAccessPolicy { role } | Action::UpdateAccessPolicy { role, .. } => {
                let app_id =
                    ctx.app_ids.get(role).cloned().ok_or_else(|| {
                        TunnelError::Internal(format!("no Access app id for {role}"))
                    })?;
                let token_id = ctx
                    .token
                    .as_ref()
                    .map(|t| t.id.clone())
                    .ok_or_else(|| TunnelError::Internal("no service token".into()))?;
                let policy = ServiceAuthPolicy {
                    name: format!("{}-service-auth", spec.access_app_name(role)),
                    token_id,
                };
                if let Action::UpdateAccessPolicy { id, .. } = action {
                    self.client
                        .send(&UpdateAccessPolicy {
                            account,
                            app_id,
                            id: id.clone(),
                            policy,
                        })
                        .await?;
                } else {
                    self.client
                        .send(&CreateAccessPolicy {
                            account,
                            app_id,
                            policy,
                        })
                        .await?;
                }
            }
            Action::DeleteAccessPolicy { role, id, .. } => {
                let app_id = ctx.app_ids.get(role).cloned().unwrap_or_default();
                self.client
                    .send(&DeleteAccessPolicy {
                        account,
                        app_id,
                        id: id.clone(),
                    })
                    .await?;
            }
            Action::CreateHyperdrive { .. } | Action::UpdateHyperdrive { .. } => {
                let body = self.hyperdrive_body(ctx)?;
                if let Action::UpdateHyperdrive { id, .. } = action {
                    self.client
                        .send(&UpdateHyperdrive {
                            account,
                            id: id.clone(),
                            config: body,
                        })
                        .await?;
                } else {
                    self.client
                        .send(&CreateHyperdrive {
                            account,
                            config: body,
                        })
                        .await?;
                }
            }
            Action::CreateVpcService { .. } => {
                let s = self
                    .client
                    .send(&CreateVpcService {
                        account,
                        service: desired_vpc_service(spec, &tunnel_id()?),
                    })
                    .await?;
                ctx.vpc_service_id = Some(s.service_id);
            }
            Action::UpdateVpcService { id, .. } => {
                let s = self
                    .client
                    .send(&UpdateVpcService {
                        account,
                        service_id: id.clone(),
                        service: desired_vpc_service(spec, &tunnel_id()?),
                    })
                    .await?;
                ctx.vpc_service_id = Some(s.service_id);
            }
            Action::DeleteDnsRecord { hostname, id } => {
                self.client
                    .send(&DeleteDnsRecord {
                        zone: obs.zone_id.clone(),
                        id: id.clone(),
                        name: hostname.clone(),
                    })
                    .await?;
            }
            Action::DeleteAccessApp { id, name, .. } => {
                self.client
                    .send(&DeleteAccessApp {
                        account,
                        id: id.clone(),
                        name: name.clone(),
                    })
                    .await?;
            }
        }
        Ok(())
    }

    fn hostname(&self, role: &str) -> String {
        self.spec
            .origins()
            .into_iter()
            .find(|(r, _)| *r == role)
            .map(|(_, o)| o.hostname.clone())
            .unwrap_or_default()
    }

    fn hyperdrive_body(&self, ctx: &Ctx) -> Result<HyperdriveBody, TunnelError> {
        let (Some(h), Some(pg)) = (&self.spec.hyperdrive, &self.spec.postgres) else {
            return Err(TunnelError::Spec("hyperdrive not configured".into()));
        };
        let stored = self.secrets.load(&self.keys)?;
        let missing =
            |n: &str| TunnelError::Spec(format!("{n} missing from {}", self.secrets.display()));
        let password = stored
            .get(&h.password_secret)
            .cloned()
            .ok_or_else(|| missing(&h.password_secret))?;
        let client_id = match &ctx.token {
            Some(t) => t.client_id.clone(),
            None => return Err(missing(ACCESS_CLIENT_ID)),
        };
        let secret = match &ctx.token_secret {
            Some(s) => s.clone(),
            None => stored
                .get(ACCESS_CLIENT_SECRET)
                .cloned()
                .ok_or_else(|| missing(ACCESS_CLIENT_SECRET))?,
        };
        Ok(HyperdriveBody {
            name: h.name.clone(),
            host: pg.hostname.clone(),
            database: h.database.clone(),
            user: h.user.clone(),
            password,
            access_client_id: client_id,
            access_client_secret: secret,
            caching_disabled: h.caching_disabled,
        })
    }

    /// Stores a freshly shown token secret in the secrets file at once.
    fn store_token(&self, t: &ServiceTokenWithSecret, ctx: &mut Ctx) -> Result<(), TunnelError> {
        let mut map = self.secrets.load_or_empty(&self.keys)?;
        map.insert(
            ACCESS_CLIENT_ID.into(),
            SecretString::new(t.client_id.clone()),
        );
        map.insert(ACCESS_CLIENT_SECRET.into(), t.client_secret.0.clone());
        self.secrets.save(&self.keys, &map)?;
        ctx.token = Some(ServiceToken {
            id: t.id.clone(),
            name: t.name.clone(),
            client_id: t.client_id.clone(),
            expires_at: None,
        });
        ctx.token_secret = Some(t.client_secret.0.clone());
        for n in [ACCESS_CLIENT_ID, ACCESS_CLIENT_SECRET] {
            if !ctx.stored.iter().any(|s| s == n) {
                ctx.stored.push(n.to_string());
            }
        }
        Ok(())
    }

    /// `tunnel rotate-token`: rotate the service token's secret, store it, and
    /// update Hyperdrive if configured. Run `secrets push` afterwards.
    pub async fn rotate_token(&self) -> Result<UpReport, TunnelError> {
        if !self.spec.uses_access() {
            return Err(TunnelError::Spec(
                "no Access service token is in use: worker_binding = \"workers_vpc\" and no [postgres] origin, so there is nothing to rotate".into(),
            ));
        }
        let obs = self.observe().await?;
        plan::check_ownership(&self.spec, &obs)?;
        let Some(token) = obs.service_token.clone() else {
            return Err(TunnelError::Spec(format!(
                "service token {} does not exist yet: run `provisioner tunnel up` first",
                self.spec.service_token_name()
            )));
        };
        self.keys.recipients()?;
        let mut actions = vec![Action::RecoverServiceTokenSecret {
            name: token.name.clone(),
            id: token.id.clone(),
        }];
        if let (Some(h), Some(c)) = (&self.spec.hyperdrive, &obs.hyperdrive) {
            actions.push(Action::UpdateHyperdrive {
                name: h.name.clone(),
                id: c.id.clone(),
                reason: "new service token secret".into(),
            });
        }
        self.preflight(&actions)?;
        let mut ctx = Ctx {
            tunnel_id: obs.tunnel.as_ref().map(|t| t.id.clone()),
            token: Some(token),
            token_secret: None,
            app_ids: BTreeMap::new(),
            stored: Vec::new(),
            vpc_service_id: None,
        };
        for a in &actions {
            self.execute(a, &obs, &mut ctx).await?;
        }
        Ok(UpReport {
            tunnel: self.spec.tunnel_name(),
            tunnel_id: ctx.tunnel_id,
            actions,
            dry_run: false,
            secrets_stored: ctx.stored,
            vpc_service: self.vpc_report(&obs),
        })
    }

    /// The tunnel token for cloudflared's Kubernetes Secret (`TUNNEL_TOKEN`).
    /// The platform step puts it into Secret `cloudflared/cloudflared-token`,
    /// key `token`; it is never written to the repo.
    pub async fn tunnel_token(&self) -> Result<SecretString, TunnelError> {
        let tunnel_id = self.find_tunnel_id().await?.ok_or_else(|| {
            TunnelError::Spec(format!(
                "tunnel {} does not exist: run `provisioner tunnel up` first",
                self.spec.tunnel_name()
            ))
        })?;
        let token = self
            .read(&GetTunnelToken {
                account: self.account.clone(),
                tunnel_id,
            })
            .await?;
        Ok(token.0 .0)
    }
}

/// Status of the tunnel for `tunnel status`.
#[derive(Debug, Clone, Serialize)]
pub struct TunnelStatus {
    /// Tunnel name.
    pub tunnel: String,
    /// Tunnel id.
    pub tunnel_id: Option<String>,
    /// `healthy`, `inactive`, …
    pub status: Option<String>,
    /// Number of cloudflared connections.
    pub connections: usize,
    /// Pending actions (empty when in sync).
    pub pending: Vec<Action>,
    /// The Workers VPC service (`worker_binding = "workers_vpc"` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vpc_service: Option<VpcServiceReport>,
}

impl Reconciler {
    /// Observes and reports drift without changing anything.
    pub async fn status(&self) -> Result<TunnelStatus, TunnelError> {
        let (obs, actions) = self.plan().await?;
        Ok(TunnelStatus {
            tunnel: self.spec.tunnel_name(),
            tunnel_id: obs.tunnel.as_ref().map(|t| t.id.clone()),
            status: obs.tunnel.as_ref().and_then(|t| t.status.clone()),
            connections: obs.tunnel.as_ref().map_or(0, |t| t.connections.len()),
            vpc_service: self.vpc_report(&obs),
            pending: actions,
        })
    }
}
