//! A stateful, in-process fake of the Cloudflare v4 API, written from the
//! API documentation, for the tunnel tests.
//!
//! - Listens on 127.0.0.1 (random port); base URL `http://127.0.0.1:<port>/client/v4/`.
//! - v4 envelope: `success`, `errors`, `messages`, `result`, `result_info`
//!   (page, per_page, count, total_count, total_pages) on lists.
//! - Bearer tokens with permission scopes: a missing header is 400/9106, a
//!   malformed one 400/6003 (chain 6111), an unknown token 403/9109, a token
//!   without the needed scope or account 403/10000 ("Authentication error").
//! - Endpoints: zones, DNS records, cfd_tunnel (+ token, configurations),
//!   Access apps, app policies, service tokens (+ rotate), Hyperdrive
//!   configs, Worker secrets, Workers KV values, Workers VPC services
//!   (connectivity directory) — with their validations and error codes (DNS
//!   81053/81057, tunnel name 1013, script 10007, …; the Workers VPC codes
//!   are the fake's own, the reference documents none).
//! - Faults: a status (5xx, 429 with `Retry-After`) for the next N matching
//!   requests, and "crash": the N-th mutating request is applied and then
//!   never answered; [`FakeCloudflare::crashed`] resolves so the test can drop
//!   the client mid-call, as if its process had been killed.
//! - A request log (method + path) to count mutating calls.

mod routes;
mod state;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

pub use state::{
    now_unix, rfc3339, AccessApp, DnsRecord, Hyperdrive, Policy, Scope, ServiceToken, State,
    Tunnel, VpcService,
};

/// A fault to inject.
#[derive(Debug, Clone)]
pub struct Fault {
    /// Only requests with this method (None: any).
    pub method: Option<String>,
    /// Only requests whose path contains this.
    pub path_contains: String,
    /// HTTP status to answer with.
    pub status: u16,
    /// `Retry-After` seconds (for 429).
    pub retry_after: Option<u64>,
    /// How many matching requests fail.
    pub count: usize,
}

/// One logged request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    /// Method.
    pub method: String,
    /// Path (without the `/client/v4/` prefix) and query.
    pub path: String,
    /// Response status (0 when the connection was dropped).
    pub status: u16,
    /// Position in the process-wide request sequence ([`crate::seq`]).
    pub seq: u64,
}

impl Logged {
    /// Whether the method changes state.
    pub fn is_mutating(&self) -> bool {
        !matches!(self.method.as_str(), "GET" | "HEAD" | "OPTIONS")
    }
}

#[derive(Default)]
pub(crate) struct Control {
    pub faults: Vec<Fault>,
    /// Drop the connection after applying the mutating request number N
    /// (1-based, counted from when it was set).
    pub crash_at: Option<usize>,
    pub mutations_seen: usize,
    pub log: Vec<Logged>,
}

pub(crate) type CrashSignal = Arc<tokio::sync::Notify>;

pub(crate) struct Shared {
    pub state: Mutex<State>,
    pub control: Mutex<Control>,
    pub crashed: CrashSignal,
}

/// The running fake.
pub struct FakeCloudflare {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl FakeCloudflare {
    /// Starts the fake on 127.0.0.1 with an empty account.
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            control: Mutex::new(Control::default()),
            crashed: Arc::new(tokio::sync::Notify::new()),
        });
        let s2 = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let s3 = s2.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| routes::handle(s3.clone(), req));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Ok(Self { addr, shared, task })
    }

    /// `http://127.0.0.1:<port>/client/v4/`
    pub fn base_url(&self) -> String {
        format!("http://{}/client/v4/", self.addr)
    }

    /// Mutable access to the state (seeding and inspection).
    pub fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.shared.state)
    }

    /// Adds a fault.
    pub fn inject(&self, fault: Fault) {
        lock(&self.shared.control).faults.push(fault);
    }

    /// Applies the `n`-th mutating request from now, then drops the
    /// connection without answering (a crash right after the call).
    pub fn crash_after_mutation(&self, n: usize) {
        let mut c = lock(&self.shared.control);
        c.crash_at = Some(n);
        c.mutations_seen = 0;
    }

    /// Resolves once an injected crash has happened.
    pub async fn crashed(&self) {
        self.shared.crashed.notified().await;
    }

    /// Clears crash injection and faults.
    pub fn clear_faults(&self) {
        let mut c = lock(&self.shared.control);
        c.crash_at = None;
        c.faults.clear();
    }

    /// The request log.
    pub fn log(&self) -> Vec<Logged> {
        lock(&self.shared.control).log.clone()
    }

    /// Clears the request log.
    pub fn clear_log(&self) {
        lock(&self.shared.control).log.clear();
    }

    /// Mutating requests in the log.
    pub fn mutating(&self) -> Vec<Logged> {
        self.log().into_iter().filter(|l| l.is_mutating()).collect()
    }
}

impl Drop for FakeCloudflare {
    fn drop(&mut self) {
        self.task.abort();
    }
}
