//! A typed Hetzner Cloud API client: one rate limiter shared by all calls,
//! bounded jittered retries, pagination, and action polling with backoff.

pub mod ratelimit;
pub mod types;

use ratelimit::RateLimiter;
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use types::*;

/// The public API endpoint.
pub const DEFAULT_ENDPOINT: &str = "https://api.hetzner.cloud/v1";

/// What the token needs, named in every authentication error.
pub const TOKEN_HELP: &str = "set HCLOUD_TOKEN (or --token-file) to a Hetzner Cloud API token with \"Read & Write\" permission (Hetzner Console > your project > Security > API tokens)";

#[derive(Debug, thiserror::Error)]
pub enum HcloudError {
    #[error("the Hetzner API rejected the token (401 unauthorized): {TOKEN_HELP}")]
    Unauthorized,
    #[error("the Hetzner API token may only read (403 forbidden: {message}): {TOKEN_HELP}")]
    Forbidden { message: String },
    #[error("Hetzner API error on {method} {path}: {code}: {message}{}", details_suffix(.details))]
    Api {
        method: String,
        path: String,
        status: u16,
        code: String,
        message: String,
        details: Value,
    },
    #[error("Hetzner API request {method} {path} failed after {attempts} attempts: {last}")]
    Exhausted {
        method: String,
        path: String,
        attempts: u32,
        last: String,
    },
    #[error("unexpected response from {path}: {source}")]
    Decode {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("action {id} ({command}) failed: {code}: {message}")]
    ActionFailed {
        id: u64,
        command: String,
        code: String,
        message: String,
    },
    #[error("invalid API endpoint {0:?}")]
    Endpoint(String),
    #[error("cannot build HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

fn details_suffix(details: &Value) -> String {
    match details.get("fields").and_then(Value::as_array) {
        Some(fields) if !fields.is_empty() => {
            let parts: Vec<String> = fields
                .iter()
                .map(|f| {
                    format!(
                        "{}: {}",
                        f.get("name").and_then(Value::as_str).unwrap_or("?"),
                        f.get("messages").map(Value::to_string).unwrap_or_default()
                    )
                })
                .collect();
            format!(" ({})", parts.join("; "))
        }
        _ => String::new(),
    }
}

impl HcloudError {
    /// The Hetzner error code, if the API answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            HcloudError::Api { code, .. } => Some(code),
            HcloudError::ActionFailed { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// Timing and retry knobs. Tests and the benchmark shrink the durations.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub endpoint: String,
    pub token: String,
    /// Attempts for 5xx and network errors (first try included).
    pub max_attempts: u32,
    /// Base delay of the jittered exponential retry backoff.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// How many 429 answers in a row are waited out before giving up.
    pub max_rate_limited: u32,
    /// Longest wait for a rate limit reset.
    pub max_rate_wait: Duration,
    /// First and longest interval between action polls.
    pub poll_initial: Duration,
    pub poll_max: Duration,
    /// Give up waiting for an action after this long.
    pub action_timeout: Duration,
    /// Concurrent requests in flight.
    pub concurrency: usize,
    pub request_timeout: Duration,
}

impl ClientConfig {
    pub fn new(endpoint: impl Into<String>, token: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            token: token.into(),
            max_attempts: 6,
            retry_base: Duration::from_millis(500),
            retry_max: Duration::from_secs(20),
            max_rate_limited: 20,
            max_rate_wait: Duration::from_secs(3600),
            poll_initial: Duration::from_millis(500),
            poll_max: Duration::from_secs(2),
            action_timeout: Duration::from_secs(600),
            concurrency: 8,
            request_timeout: Duration::from_secs(60),
        }
    }

    /// Multiplies every delay by `f` (tests and benchmarks run in scaled time).
    pub fn scale_time(mut self, f: f64) -> Self {
        let s = |d: Duration| d.mul_f64(f);
        self.retry_base = s(self.retry_base);
        self.retry_max = s(self.retry_max);
        self.poll_initial = s(self.poll_initial);
        self.poll_max = s(self.poll_max);
        self.action_timeout = s(self.action_timeout);
        self
    }
}

/// Counts of requests sent, for summaries and benchmarks.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct RequestStats {
    pub reads: u64,
    pub writes: u64,
    pub retries: u64,
    pub rate_limited: u64,
}

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    cfg: Arc<ClientConfig>,
    limiter: Arc<RateLimiter>,
    stats: Arc<std::sync::Mutex<RequestStats>>,
    inflight: Arc<tokio::sync::Semaphore>,
}

impl Client {
    pub fn new(cfg: ClientConfig) -> Result<Self, HcloudError> {
        let base = cfg.endpoint.trim_end_matches('/').to_string();
        url::Url::parse(&base).map_err(|_| HcloudError::Endpoint(cfg.endpoint.clone()))?;
        let http = reqwest::Client::builder()
            .timeout(cfg.request_timeout)
            .user_agent(concat!("shopedge-provisioner/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(HcloudError::Client)?;
        Ok(Self {
            http,
            base,
            limiter: Arc::new(RateLimiter::default()),
            stats: Arc::default(),
            inflight: Arc::new(tokio::sync::Semaphore::new(cfg.concurrency.max(1))),
            cfg: Arc::new(cfg),
        })
    }

    pub fn config(&self) -> &ClientConfig {
        &self.cfg
    }

    pub fn stats(&self) -> RequestStats {
        self.stats.lock().map(|s| *s).unwrap_or_default()
    }

    fn bump(&self, f: impl FnOnce(&mut RequestStats)) {
        if let Ok(mut s) = self.stats.lock() {
            f(&mut s);
        }
    }

    /// Sends one request, retrying 429 (after the reset), 5xx and network errors.
    pub async fn request<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&B>,
    ) -> Result<Value, HcloudError> {
        let url = format!("{}{}", self.base, path);
        let mutating = method != Method::GET;
        let mut attempts = 0u32;
        let mut limited = 0u32;
        loop {
            self.limiter.wait_for_budget(self.cfg.max_rate_wait).await;
            let _permit = self.inflight.acquire().await;
            attempts += 1;
            self.bump(|s| {
                if mutating {
                    s.writes += 1
                } else {
                    s.reads += 1
                }
            });
            let mut req = self
                .http
                .request(method.clone(), &url)
                .bearer_auth(&self.cfg.token)
                .query(query);
            if let Some(b) = body {
                req = req.json(b);
            }
            tracing::debug!(%method, path, attempt = attempts, "hcloud request");
            let outcome = req.send().await;
            drop(_permit);
            let resp = match outcome {
                Ok(r) => r,
                Err(e) => {
                    if attempts >= self.cfg.max_attempts {
                        return Err(HcloudError::Exhausted {
                            method: method.to_string(),
                            path: path.to_string(),
                            attempts,
                            last: e.to_string(),
                        });
                    }
                    tracing::warn!(%method, path, error = %e, "network error, retrying");
                    self.bump(|s| s.retries += 1);
                    tokio::time::sleep(self.backoff(attempts)).await;
                    continue;
                }
            };
            self.limiter.observe(resp.headers());
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap_or_default();
            if (200..300).contains(&status) {
                if text.trim().is_empty() {
                    return Ok(Value::Null);
                }
                return serde_json::from_str(&text).map_err(|source| HcloudError::Decode {
                    path: path.to_string(),
                    source,
                });
            }
            let (code, message, details) = parse_error(&text);
            match status {
                401 => return Err(HcloudError::Unauthorized),
                403 if code == "forbidden" || code == "unauthorized" => {
                    return Err(HcloudError::Forbidden { message })
                }
                429 => {
                    limited += 1;
                    self.bump(|s| s.rate_limited += 1);
                    if limited > self.cfg.max_rate_limited {
                        return Err(HcloudError::Api {
                            method: method.to_string(),
                            path: path.to_string(),
                            status,
                            code,
                            message,
                            details,
                        });
                    }
                    tracing::warn!(path, "rate limited, waiting for the reset");
                    self.limiter.exhausted();
                    attempts -= 1;
                    continue;
                }
                500..=599 if attempts < self.cfg.max_attempts && code != "resource_unavailable" => {
                    tracing::warn!(%method, path, status, "server error, retrying");
                    self.bump(|s| s.retries += 1);
                    tokio::time::sleep(self.backoff(attempts)).await;
                    continue;
                }
                _ => {
                    return Err(HcloudError::Api {
                        method: method.to_string(),
                        path: path.to_string(),
                        status,
                        code,
                        message,
                        details,
                    })
                }
            }
        }
    }

    /// Full-jitter exponential backoff, bounded by `retry_max`.
    fn backoff(&self, attempt: u32) -> Duration {
        use rand::Rng;
        let exp = self
            .cfg
            .retry_base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(10));
        let cap = exp.min(self.cfg.retry_max);
        let f: f64 = rand::thread_rng().gen_range(0.5..1.0);
        cap.mul_f64(f)
    }

    async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, HcloudError> {
        let v = self.request::<()>(Method::GET, path, query, None).await?;
        decode(path, v)
    }

    /// Lists every page of a collection (`key` is the JSON field holding the items).
    pub async fn list<T: DeserializeOwned>(
        &self,
        path: &str,
        key: &str,
        label_selector: Option<&str>,
    ) -> Result<Vec<T>, HcloudError> {
        let mut out = Vec::new();
        let mut page = 1u64;
        loop {
            let mut q = vec![("page", page.to_string()), ("per_page", "50".to_string())];
            if let Some(sel) = label_selector {
                q.push(("label_selector", sel.to_string()));
            }
            let v = self.request::<()>(Method::GET, path, &q, None).await?;
            let items = v.get(key).cloned().unwrap_or(Value::Array(vec![]));
            let mut items: Vec<T> = decode(path, items)?;
            out.append(&mut items);
            match v
                .pointer("/meta/pagination/next_page")
                .and_then(Value::as_u64)
            {
                Some(n) if n > page => page = n,
                _ => break,
            }
        }
        Ok(out)
    }

    pub async fn locations(&self) -> Result<Vec<Location>, HcloudError> {
        self.list("/locations", "locations", None).await
    }
    pub async fn server_types(&self) -> Result<Vec<ServerType>, HcloudError> {
        self.list("/server_types", "server_types", None).await
    }
    pub async fn images(&self, selector: &str) -> Result<Vec<Image>, HcloudError> {
        let mut out = Vec::new();
        let mut page = 1u64;
        loop {
            let q = vec![
                ("page", page.to_string()),
                ("per_page", "50".to_string()),
                ("label_selector", selector.to_string()),
                ("type", "snapshot".to_string()),
            ];
            let v = self.request::<()>(Method::GET, "/images", &q, None).await?;
            let mut items: Vec<Image> =
                decode("/images", v.get("images").cloned().unwrap_or_default())?;
            out.append(&mut items);
            match v
                .pointer("/meta/pagination/next_page")
                .and_then(Value::as_u64)
            {
                Some(n) if n > page => page = n,
                _ => break,
            }
        }
        Ok(out)
    }
    pub async fn image(&self, id: u64) -> Result<Image, HcloudError> {
        let v: Value = self.get(&format!("/images/{id}"), &[]).await?;
        decode("/images/{id}", v.get("image").cloned().unwrap_or_default())
    }
    pub async fn servers(&self, sel: &str) -> Result<Vec<Server>, HcloudError> {
        self.list("/servers", "servers", Some(sel)).await
    }
    pub async fn networks(&self, sel: &str) -> Result<Vec<Network>, HcloudError> {
        self.list("/networks", "networks", Some(sel)).await
    }
    pub async fn placement_groups(&self, sel: &str) -> Result<Vec<PlacementGroup>, HcloudError> {
        self.list("/placement_groups", "placement_groups", Some(sel))
            .await
    }
    pub async fn firewalls(&self, sel: &str) -> Result<Vec<Firewall>, HcloudError> {
        self.list("/firewalls", "firewalls", Some(sel)).await
    }
    pub async fn load_balancers(
        &self,
        sel: Option<&str>,
    ) -> Result<Vec<LoadBalancer>, HcloudError> {
        self.list("/load_balancers", "load_balancers", sel).await
    }
    pub async fn volumes(&self, sel: Option<&str>) -> Result<Vec<Volume>, HcloudError> {
        self.list("/volumes", "volumes", sel).await
    }

    async fn post<B: Serialize>(&self, path: &str, body: &B) -> Result<Value, HcloudError> {
        self.request(Method::POST, path, &[], Some(body)).await
    }

    /// POSTs a resource action (`/<kind>/<id>/actions/<name>`) and returns
    /// the actions to wait for.
    async fn post_action(&self, path: &str, body: &Value) -> Result<Vec<Action>, HcloudError> {
        let v = self.post(path, body).await?;
        actions_of(path, &v)
    }

    /// Creates a server; returns it and the actions to wait for.
    pub async fn create_server(
        &self,
        req: &CreateServer,
    ) -> Result<(Server, Vec<Action>), HcloudError> {
        let v = self.post("/servers", req).await?;
        let server: Server = decode("/servers", v.get("server").cloned().unwrap_or_default())?;
        let mut actions: Vec<Action> = Vec::new();
        if let Some(a) = v.get("action").filter(|a| !a.is_null()) {
            actions.push(decode("/servers", a.clone())?);
        }
        if let Some(n) = v.get("next_actions") {
            let mut more: Vec<Action> = decode("/servers", n.clone())?;
            actions.append(&mut more);
        }
        Ok((server, actions))
    }
    pub async fn create_network(&self, req: &CreateNetwork) -> Result<Network, HcloudError> {
        let v = self.post("/networks", req).await?;
        decode("/networks", v.get("network").cloned().unwrap_or_default())
    }
    pub async fn create_placement_group(
        &self,
        req: &CreatePlacementGroup,
    ) -> Result<PlacementGroup, HcloudError> {
        let v = self.post("/placement_groups", req).await?;
        decode(
            "/placement_groups",
            v.get("placement_group").cloned().unwrap_or_default(),
        )
    }
    pub async fn create_firewall(
        &self,
        req: &CreateFirewall,
    ) -> Result<(Firewall, Vec<Action>), HcloudError> {
        let v = self.post("/firewalls", req).await?;
        let fw = decode("/firewalls", v.get("firewall").cloned().unwrap_or_default())?;
        Ok((fw, actions_of("/firewalls", &v)?))
    }
    pub async fn set_firewall_rules(
        &self,
        id: u64,
        rules: &[FirewallRule],
    ) -> Result<Vec<Action>, HcloudError> {
        let path = format!("/firewalls/{id}/actions/set_rules");
        self.post_action(&path, &serde_json::json!({ "rules": rules }))
            .await
    }
    pub async fn remove_firewall_from(
        &self,
        id: u64,
        resources: &[FirewallResource],
    ) -> Result<Vec<Action>, HcloudError> {
        let path = format!("/firewalls/{id}/actions/remove_from_resources");
        self.post_action(&path, &serde_json::json!({ "remove_from": resources }))
            .await
    }
    pub async fn apply_firewall_to(
        &self,
        id: u64,
        resources: &[FirewallResource],
    ) -> Result<Vec<Action>, HcloudError> {
        let path = format!("/firewalls/{id}/actions/apply_to_resources");
        self.post_action(&path, &serde_json::json!({ "apply_to": resources }))
            .await
    }
    /// Finds a resource by its exact name (`kind` is the collection, e.g. `servers`);
    /// returns its id and labels.
    pub async fn find_by_name(
        &self,
        kind: &str,
        name: &str,
    ) -> Result<Option<(u64, Labels)>, HcloudError> {
        let path = format!("/{kind}");
        let v = self
            .request::<()>(Method::GET, &path, &[("name", name.to_string())], None)
            .await?;
        let first = v.get(kind).and_then(|a| a.get(0)).cloned();
        match first {
            None => Ok(None),
            Some(item) => {
                let id = item.get("id").and_then(Value::as_u64).unwrap_or(0);
                let labels: Labels =
                    decode(&path, item.get("labels").cloned().unwrap_or_default())?;
                Ok(Some((id, labels)))
            }
        }
    }

    /// Replaces a resource's labels (`kind` is the collection, e.g. `servers`).
    pub async fn set_labels(
        &self,
        kind: &str,
        id: u64,
        labels: &Labels,
    ) -> Result<(), HcloudError> {
        self.request(
            Method::PUT,
            &format!("/{kind}/{id}"),
            &[],
            Some(&serde_json::json!({ "labels": labels })),
        )
        .await
        .map(|_| ())
    }
    /// Deletes a resource; returns the action when the API answers with one.
    pub async fn delete(&self, kind: &str, id: u64) -> Result<Option<Action>, HcloudError> {
        let v = self
            .request::<()>(Method::DELETE, &format!("/{kind}/{id}"), &[], None)
            .await?;
        match v.get("action") {
            Some(a) if !a.is_null() => Ok(Some(decode(kind, a.clone())?)),
            _ => Ok(None),
        }
    }
    pub async fn detach_volume(&self, id: u64) -> Result<Action, HcloudError> {
        let path = format!("/volumes/{id}/actions/detach");
        let v = self.post(&path, &serde_json::json!({})).await?;
        decode(&path, v.get("action").cloned().unwrap_or_default())
    }

    /// Fetches several actions in one request.
    pub async fn actions(&self, ids: &[u64]) -> Result<Vec<Action>, HcloudError> {
        let q: Vec<(&str, String)> = ids.iter().map(|i| ("id", i.to_string())).collect();
        let v: Value = self.get("/actions", &q).await?;
        decode("/actions", v.get("actions").cloned().unwrap_or_default())
    }

    /// Waits until every action succeeded, polling all of them in one request per round
    /// with growing intervals. The first failed action is returned as an error.
    pub async fn wait_actions(&self, actions: Vec<Action>) -> Result<(), HcloudError> {
        let mut pending: HashMap<u64, Action> = HashMap::new();
        for a in actions {
            check_action(&a)?;
            if a.status == "running" {
                pending.insert(a.id, a);
            }
        }
        let mut interval = self.cfg.poll_initial;
        let started = tokio::time::Instant::now();
        while !pending.is_empty() {
            if started.elapsed() > self.cfg.action_timeout {
                let a = pending.values().next().cloned();
                let (id, command) = a.map(|a| (a.id, a.command)).unwrap_or_default();
                return Err(HcloudError::ActionFailed {
                    id,
                    command,
                    code: "timeout".into(),
                    message: format!("still running after {:?}", self.cfg.action_timeout),
                });
            }
            tokio::time::sleep(interval).await;
            interval = (interval * 2).min(self.cfg.poll_max);
            let mut ids: Vec<u64> = pending.keys().copied().collect();
            ids.sort_unstable();
            for a in self.actions(&ids).await? {
                check_action(&a)?;
                if a.status != "running" {
                    pending.remove(&a.id);
                }
            }
        }
        Ok(())
    }
}

fn check_action(a: &Action) -> Result<(), HcloudError> {
    if a.status == "error" {
        let (code, message) = a
            .error
            .as_ref()
            .map(|e| (e.code.clone(), e.message.clone()))
            .unwrap_or_else(|| ("action_failed".into(), "unknown".into()));
        return Err(HcloudError::ActionFailed {
            id: a.id,
            command: a.command.clone(),
            code,
            message,
        });
    }
    Ok(())
}

fn decode<T: DeserializeOwned>(path: &str, v: Value) -> Result<T, HcloudError> {
    serde_json::from_value(v).map_err(|source| HcloudError::Decode {
        path: path.to_string(),
        source,
    })
}

fn parse_error(text: &str) -> (String, String, Value) {
    let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let e = v.get("error");
    let s = |k: &str| {
        e.and_then(|e| e.get(k))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let code = s("code");
    let message = s("message");
    let details = e
        .and_then(|e| e.get("details"))
        .cloned()
        .unwrap_or(Value::Null);
    if code.is_empty() {
        ("unknown".into(), text.chars().take(200).collect(), details)
    } else {
        (code, message, details)
    }
}

/// Builds a label selector string from exact matches.
pub fn selector(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The `actions` of a response (none when absent).
fn actions_of(path: &str, v: &Value) -> Result<Vec<Action>, HcloudError> {
    decode(
        path,
        v.get("actions").cloned().unwrap_or(Value::Array(vec![])),
    )
}
