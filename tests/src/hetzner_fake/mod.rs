//! A stateful fake of the Hetzner Cloud API, written from Hetzner's API
//! documentation, served over real HTTP on 127.0.0.1.
//!
//! It keeps servers, networks (with subnets), placement groups, firewalls, images,
//! load balancers, volumes and actions; actions progress from `running` to `success`
//! over configurable durations; lists paginate (`meta.pagination`) and filter by
//! label selector; errors use Hetzner's envelope and codes; every response carries
//! `RateLimit-*` headers. Faults can be injected (5xx per endpoint, 429 bursts,
//! failing actions, latency, capacity errors, and a "crash" that stops answering
//! after the k-th mutating request). Every exchange is recorded so tests can check
//! it against the published OpenAPI description ([`openapi`]).

pub mod openapi;
mod render;
pub mod selector;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

pub type Labels = BTreeMap<String, String>;

/// One request/response pair as seen by the fake.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub request: Option<Value>,
    pub status: u16,
    pub response: Option<Value>,
    pub mutating: bool,
    /// Position in the process-wide request sequence ([`crate::seq`]).
    pub seq: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    Read,
    ReadWrite,
}

/// Durations and limits; tests shrink them, the benchmark uses realistic ones scaled.
#[derive(Debug, Clone)]
pub struct Config {
    pub tokens: BTreeMap<String, Permission>,
    /// Server create actions take a duration spread evenly over this range.
    pub server_create: (Duration, Duration),
    pub server_delete: Duration,
    pub other_action: Duration,
    /// Token bucket: capacity and refill per second.
    pub rate_limit: u64,
    pub refill_per_sec: f64,
    /// Latency added to every request.
    pub latency: Duration,
}

pub const TOKEN: &str = "test-token-rw";
pub const READ_ONLY_TOKEN: &str = "test-token-ro";

impl Default for Config {
    fn default() -> Self {
        let mut tokens = BTreeMap::new();
        tokens.insert(TOKEN.to_string(), Permission::ReadWrite);
        tokens.insert(READ_ONLY_TOKEN.to_string(), Permission::Read);
        Self {
            tokens,
            server_create: (Duration::from_millis(30), Duration::from_millis(60)),
            server_delete: Duration::from_millis(20),
            other_action: Duration::from_millis(10),
            rate_limit: 3600,
            refill_per_sec: 1.0,
            latency: Duration::ZERO,
        }
    }
}

/// Injected faults.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// The next `count` requests whose method and path start match get `status`.
    pub server_errors: Vec<ServerErrorFault>,
    /// The next N requests get 429 `rate_limit_exceeded`.
    pub rate_limit_burst: usize,
    /// Mutating requests that take effect but whose answer is lost: the client gets
    /// `status` instead (like a proxy timing out after the API did the work).
    pub lost_responses: Vec<ServerErrorFault>,
    /// Actions with these commands end in `error` (count per command).
    pub fail_actions: BTreeMap<String, usize>,
    /// Server creates in these locations answer `resource_unavailable`.
    pub unavailable_locations: BTreeSet<String>,
    /// After this many successful mutating requests, the fake stops answering (the
    /// k-th request takes effect, but its response and all later ones are lost).
    pub crash_after_mutations: Option<usize>,
    /// Extra latency for requests whose path (without `/v1`) starts with the prefix.
    pub slow_paths: Vec<(String, Duration)>,
}

#[derive(Debug, Clone)]
pub struct ServerErrorFault {
    pub method: Option<String>,
    pub path_prefix: String,
    pub remaining: usize,
    pub status: u16,
}

#[derive(Debug, Clone)]
pub(crate) enum Effect {
    None,
    ServerRunning(u64),
    ServerDeleted(u64),
    VolumeDetached(u64),
}

#[derive(Debug, Clone)]
pub(crate) struct ActionRec {
    pub id: u64,
    pub command: String,
    pub started: Instant,
    pub started_at: String,
    pub duration: Duration,
    pub fail: bool,
    pub resources: Vec<(u64, &'static str)>,
    pub effect: Effect,
    pub done: bool,
}

#[derive(Debug, Clone)]
pub struct ServerRec {
    pub id: u64,
    pub name: String,
    pub status: String,
    pub server_type: String,
    pub image: u64,
    pub location: String,
    pub labels: Labels,
    pub networks: Vec<(u64, String)>,
    pub placement_group: Option<u64>,
    pub ipv4: bool,
    pub ipv6: Option<String>,
    pub user_data: String,
    pub created: String,
    pub delete_protection: bool,
    /// Generated when a server is created without SSH keys, as Hetzner does.
    pub root_password: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NetworkRec {
    pub id: u64,
    pub name: String,
    pub ip_range: String,
    pub subnets: Vec<Value>,
    pub labels: Labels,
    pub created: String,
}

#[derive(Debug, Clone)]
pub struct GroupRec {
    pub id: u64,
    pub name: String,
    pub kind: String,
    pub labels: Labels,
    pub created: String,
}

#[derive(Debug, Clone)]
pub struct FirewallRec {
    pub id: u64,
    pub name: String,
    pub labels: Labels,
    pub rules: Vec<Value>,
    /// `{"type": "label_selector", "label_selector": {...}}` or `{"type": "server", ...}`.
    pub applied_to: Vec<Value>,
    pub created: String,
}

#[derive(Debug, Clone)]
pub struct ImageRec {
    pub id: u64,
    pub name: Option<String>,
    pub kind: String,
    pub description: String,
    pub labels: Labels,
    pub created: String,
    pub architecture: String,
}

#[derive(Debug, Clone)]
pub struct LoadBalancerRec {
    pub id: u64,
    pub name: String,
    pub labels: Labels,
    pub networks: Vec<u64>,
    pub target_servers: Vec<u64>,
    pub location: String,
    pub created: String,
}

#[derive(Debug, Clone)]
pub struct VolumeRec {
    pub id: u64,
    pub name: String,
    pub labels: Labels,
    pub server: Option<u64>,
    pub size: u64,
    pub location: String,
    pub created: String,
}

#[derive(Default)]
pub struct State {
    next_id: u64,
    pub(crate) actions: BTreeMap<u64, ActionRec>,
    pub servers: BTreeMap<u64, ServerRec>,
    pub networks: BTreeMap<u64, NetworkRec>,
    pub groups: BTreeMap<u64, GroupRec>,
    pub firewalls: BTreeMap<u64, FirewallRec>,
    pub images: BTreeMap<u64, ImageRec>,
    pub load_balancers: BTreeMap<u64, LoadBalancerRec>,
    pub volumes: BTreeMap<u64, VolumeRec>,
    pub log: Vec<Exchange>,
    pub mutations: usize,
    pub crashed: bool,
    pub faults: Faults,
    bucket: f64,
    bucket_at: Option<Instant>,
    create_counter: u64,
}

impl State {
    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }
}

/// Locations: (id, name, city, country, zone).
pub const LOCATIONS: &[(u64, &str, &str, &str, &str)] = &[
    (1, "fsn1", "Falkenstein", "DE", "eu-central"),
    (2, "nbg1", "Nuremberg", "DE", "eu-central"),
    (3, "hel1", "Helsinki", "FI", "eu-central"),
    (4, "ash", "Ashburn, VA", "US", "us-east"),
    (5, "hil", "Hillsboro, OR", "US", "us-west"),
    (6, "sin", "Singapore", "SG", "ap-southeast"),
];

/// Server types: (id, name, cores, memory GB, disk GB, cpu type, architecture).
pub const SERVER_TYPES: &[(u64, &str, u32, f64, u64, &str, &str)] = &[
    (22, "cx22", 2, 4.0, 40, "shared", "x86"),
    (23, "cx32", 4, 8.0, 80, "shared", "x86"),
    (31, "cpx11", 2, 2.0, 40, "shared", "x86"),
    (32, "cpx21", 3, 4.0, 80, "shared", "x86"),
    (33, "cpx31", 4, 8.0, 160, "shared", "x86"),
    (34, "cpx41", 8, 16.0, 240, "shared", "x86"),
    (45, "cax11", 2, 4.0, 40, "shared", "arm"),
    (96, "ccx13", 2, 8.0, 80, "dedicated", "x86"),
];

pub struct FakeHetzner {
    addr: SocketAddr,
    pub state: Arc<Mutex<State>>,
    config: Arc<Config>,
    crashed: Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeHetzner {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// RFC 3339 UTC timestamp.
pub fn timestamp(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

fn now_ts() -> String {
    timestamp(SystemTime::now())
}

impl FakeHetzner {
    pub async fn start(config: Config) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State {
            next_id: 1000,
            bucket: config.rate_limit as f64,
            ..Default::default()
        }));
        let config = Arc::new(config);
        let crashed = Arc::new(tokio::sync::Notify::new());
        let (s, c, n) = (state.clone(), config.clone(), crashed.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (s, c, n) = (s.clone(), c.clone(), n.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let (s, c, n) = (s.clone(), c.clone(), n.clone());
                        async move { handle(req, s, c, n).await }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Ok(Self {
            addr,
            state,
            config,
            crashed,
            task,
        })
    }

    /// Base URL to give the client (`HCLOUD_ENDPOINT`).
    pub fn url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut s = self.state.lock().unwrap();
        tick(&mut s);
        f(&mut s)
    }

    pub fn set_faults(&self, faults: Faults) {
        self.with(|s| {
            s.faults = faults;
            s.crashed = false;
        });
    }

    /// Waits until the crash fault fired.
    pub async fn crashed(&self) {
        self.crashed.notified().await
    }

    pub fn exchanges(&self) -> Vec<Exchange> {
        self.with(|s| s.log.clone())
    }

    /// The longest duration of the actions with this command (benchmarks).
    pub fn max_action_duration(&self, command: &str) -> Duration {
        self.with(|s| {
            s.actions
                .values()
                .filter(|a| a.command == command)
                .map(|a| a.duration)
                .max()
                .unwrap_or_default()
        })
    }

    pub fn clear_log(&self) {
        self.with(|s| s.log.clear());
    }

    /// Adds a snapshot image (e.g. the Talos image) and returns its id.
    pub fn add_image(&self, description: &str, labels: &[(&str, &str)]) -> u64 {
        self.with(|s| {
            let id = s.id();
            s.create_counter += 1;
            // Later images are newer.
            let created = timestamp(
                SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + s.create_counter * 60),
            );
            s.images.insert(
                id,
                ImageRec {
                    id,
                    name: None,
                    kind: "snapshot".into(),
                    description: description.into(),
                    labels: labels
                        .iter()
                        .map(|(a, b)| (a.to_string(), b.to_string()))
                        .collect(),
                    created,
                    architecture: "x86".into(),
                },
            );
            id
        })
    }

    /// Adds a server that is not ours (tests check it is left alone).
    pub fn add_foreign_server(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        self.with(|s| {
            let id = s.id();
            s.servers.insert(
                id,
                ServerRec {
                    id,
                    name: name.into(),
                    status: "running".into(),
                    server_type: "cx22".into(),
                    image: 1,
                    location: "hil".into(),
                    labels: labels
                        .iter()
                        .map(|(a, b)| (a.to_string(), b.to_string()))
                        .collect(),
                    networks: vec![],
                    placement_group: None,
                    ipv4: true,
                    ipv6: Some(format!("2a01:4ff:f0:{id:x}::1")),
                    user_data: String::new(),
                    created: now_ts(),
                    delete_protection: false,
                    root_password: None,
                },
            );
            id
        })
    }

    pub fn add_load_balancer(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        networks: Vec<u64>,
        targets: Vec<u64>,
    ) -> u64 {
        self.with(|s| {
            let id = s.id();
            s.load_balancers.insert(
                id,
                LoadBalancerRec {
                    id,
                    name: name.into(),
                    labels: labels
                        .iter()
                        .map(|(a, b)| (a.to_string(), b.to_string()))
                        .collect(),
                    networks,
                    target_servers: targets,
                    location: "hil".into(),
                    created: now_ts(),
                },
            );
            id
        })
    }

    pub fn add_volume(&self, name: &str, labels: &[(&str, &str)], server: Option<u64>) -> u64 {
        self.with(|s| {
            let id = s.id();
            s.volumes.insert(
                id,
                VolumeRec {
                    id,
                    name: name.into(),
                    labels: labels
                        .iter()
                        .map(|(a, b)| (a.to_string(), b.to_string()))
                        .collect(),
                    server,
                    size: 10,
                    location: "hil".into(),
                    created: now_ts(),
                },
            );
            id
        })
    }
}

/// Applies the effects of finished actions.
fn tick(s: &mut State) {
    let now = Instant::now();
    let due: Vec<u64> = s
        .actions
        .values()
        .filter(|a| !a.done && now.duration_since(a.started) >= a.duration)
        .map(|a| a.id)
        .collect();
    for id in due {
        let Some(a) = s.actions.get_mut(&id) else {
            continue;
        };
        a.done = true;
        let (effect, fail) = (a.effect.clone(), a.fail);
        match effect {
            Effect::ServerRunning(sid) => {
                if let Some(srv) = s.servers.get_mut(&sid) {
                    srv.status = if fail { "off".into() } else { "running".into() };
                }
            }
            Effect::ServerDeleted(sid) => {
                if !fail {
                    s.servers.remove(&sid);
                    for v in s.volumes.values_mut() {
                        if v.server == Some(sid) {
                            v.server = None;
                        }
                    }
                    for lb in s.load_balancers.values_mut() {
                        lb.target_servers.retain(|t| *t != sid);
                    }
                }
            }
            Effect::VolumeDetached(vid) => {
                if let Some(v) = s.volumes.get_mut(&vid) {
                    v.server = None;
                }
            }
            Effect::None => {}
        }
    }
}

pub(crate) struct Reply {
    pub status: u16,
    pub body: Option<Value>,
}

pub(crate) fn ok(status: u16, body: Value) -> Reply {
    Reply {
        status,
        body: Some(body),
    }
}

pub(crate) fn err(status: u16, code: &str, message: &str) -> Reply {
    ok(
        status,
        json!({ "error": { "code": code, "message": message, "details": {} } }),
    )
}

pub(crate) fn invalid(field: &str, message: &str) -> Reply {
    ok(
        400,
        json!({ "error": { "code": "invalid_input", "message": format!("invalid input in field '{field}'"),
            "details": { "fields": [ { "name": field, "messages": [message] } ] } } }),
    )
}

fn method_mutates(m: &str) -> bool {
    m != "GET"
}

async fn handle(
    req: Request<hyper::body::Incoming>,
    state: Arc<Mutex<State>>,
    config: Arc<Config>,
    crashed_notify: Arc<tokio::sync::Notify>,
) -> Result<Response<Full<Bytes>>, std::io::Error> {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let query: Vec<(String, String)> = req
        .uri()
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default();
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let p = path.strip_prefix("/v1").unwrap_or(&path).to_string();
    let extra: Duration = state
        .lock()
        .unwrap()
        .faults
        .slow_paths
        .iter()
        .filter(|(prefix, _)| p.starts_with(prefix.as_str()))
        .map(|(_, d)| *d)
        .sum();
    let delay = config.latency + extra;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mutating = method_mutates(&method);
    let mut s = state.lock().unwrap();
    if s.crashed {
        return Err(std::io::Error::other("fake crashed"));
    }
    tick(&mut s);
    let parsed_body: Option<Value> = if body.is_empty() {
        None
    } else {
        serde_json::from_slice(&body).ok()
    };
    // Token bucket.
    let now = Instant::now();
    let elapsed = s
        .bucket_at
        .map(|t| now.duration_since(t).as_secs_f64())
        .unwrap_or(0.0);
    s.bucket = (s.bucket + elapsed * config.refill_per_sec).min(config.rate_limit as f64);
    s.bucket_at = Some(now);

    let mut burst = false;
    let reply = if !body.is_empty() && parsed_body.is_none() {
        err(400, "json_error", "invalid JSON in request body")
    } else if auth.as_deref().and_then(|t| config.tokens.get(t)).is_none() {
        err(401, "unauthorized", "unable to authenticate")
    } else if mutating
        && config.tokens.get(auth.as_deref().unwrap_or("")) == Some(&Permission::Read)
    {
        err(
            403,
            "forbidden",
            "insufficient permissions for this request: token is read-only",
        )
    } else if s.faults.rate_limit_burst > 0 {
        s.faults.rate_limit_burst -= 1;
        burst = true;
        err(
            429,
            "rate_limit_exceeded",
            "limit of requests per hour reached",
        )
    } else if s.bucket < 1.0 {
        err(
            429,
            "rate_limit_exceeded",
            "limit of requests per hour reached",
        )
    } else if let Some(st) = take_server_error(&mut s, &method, &path) {
        s.bucket -= 1.0;
        if st == 503 {
            err(
                503,
                "maintenance",
                "cannot perform operation due to maintenance",
            )
        } else {
            err(st, "service_error", "internal error")
        }
    } else {
        s.bucket -= 1.0;
        let p = path.strip_prefix("/v1").unwrap_or(&path).to_string();
        render::route(&mut s, &config, &method, &p, &query, parsed_body.as_ref())
    };
    let mut crash_now = false;
    let mut reply = reply;
    if mutating && (200..300).contains(&reply.status) {
        s.mutations += 1;
        let p = path.strip_prefix("/v1").unwrap_or(&path).to_string();
        if let Some(i) = s.faults.lost_responses.iter().position(|f| {
            f.remaining > 0
                && f.method.as_deref().is_none_or(|m| m == method)
                && p.starts_with(&f.path_prefix)
        }) {
            s.faults.lost_responses[i].remaining -= 1;
            let st = s.faults.lost_responses[i].status;
            reply = err(st, "service_error", "upstream timed out");
        }
        if s.faults.crash_after_mutations == Some(s.mutations) {
            s.crashed = true;
            crash_now = true;
        }
    }
    s.log.push(Exchange {
        method: method.clone(),
        path: path.clone(),
        query,
        request: parsed_body,
        status: reply.status,
        response: reply.body.clone(),
        mutating,
        seq: crate::seq::next(),
    });
    let remaining = if burst {
        0
    } else {
        s.bucket.floor().max(0.0) as u64
    };
    let secs_to_full = ((config.rate_limit as f64 - s.bucket) / config.refill_per_sec)
        .ceil()
        .max(0.0) as u64;
    let reset = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        + secs_to_full;
    drop(s);
    if crash_now {
        crashed_notify.notify_waiters();
        crashed_notify.notify_one();
        return Err(std::io::Error::other("fake crashed after this request"));
    }
    let bytes = reply
        .body
        .map(|b| serde_json::to_vec(&b).unwrap_or_default())
        .unwrap_or_default();
    let mut resp = Response::builder()
        .status(reply.status)
        .header("ratelimit-limit", config.rate_limit.to_string())
        .header("ratelimit-remaining", remaining.to_string())
        .header("ratelimit-reset", reset.to_string());
    if !bytes.is_empty() {
        resp = resp.header("content-type", "application/json");
    }
    resp.body(Full::new(Bytes::from(bytes)))
        .map_err(std::io::Error::other)
}

fn take_server_error(s: &mut State, method: &str, path: &str) -> Option<u16> {
    let p = path.strip_prefix("/v1").unwrap_or(path);
    for f in s.faults.server_errors.iter_mut() {
        if f.remaining > 0
            && f.method.as_deref().is_none_or(|m| m == method)
            && p.starts_with(&f.path_prefix)
        {
            f.remaining -= 1;
            return Some(f.status);
        }
    }
    None
}
