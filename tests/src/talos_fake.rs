//! A stateful fake of the Talos API (`machine.MachineService` over gRPC with
//! mutual TLS, like a node's apid on port 50000) and a minimal fake Kubernetes
//! API (`/readyz`, `/api/v1/nodes` over HTTPS with client certificates).
//!
//! Faithful to what the provisioner relies on: the node's server certificate is
//! issued by the cluster's Talos CA for the node's address; client certificates
//! not issued by that CA fail the TLS handshake; `Bootstrap` needs role
//! `os:admin` and answers `AlreadyExists` ("etcd data directory is not empty")
//! once etcd was bootstrapped; `EtcdMemberList` fails while etcd is not running;
//! etcd reports healthy in `ServiceList` only some polls after bootstrap. Faults
//! (gRPC errors) and delays can be injected per method; every call is recorded.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use talos::api::proto::{self, paths};
use talos::pki::{issue_leaf, CaKind, KeyAlg, LeafSpec, PrivKey};
use talos::SecretsBundle;
use tonic::body::BoxBody;
use tonic::codegen::{BoxFuture, Service, StdError};
use tonic::server::{NamedService, UnaryService};
use tonic::{Code, Status};

/// One recorded call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub method: String,
    /// Organizations (Talos roles) of the client certificate.
    pub roles: Vec<String>,
    /// Position in the process-wide request sequence ([`crate::seq`]).
    pub seq: u64,
}

/// Mutable state of the fake node.
#[derive(Debug, Default)]
pub struct TalosState {
    pub calls: Vec<Call>,
    pub bootstrapped: bool,
    /// ServiceList polls after bootstrap until etcd reports healthy.
    pub etcd_ready_after_polls: u32,
    polls_since_bootstrap: u32,
    /// Bootstrap answers FailedPrecondition this many times first (node not ready).
    pub bootstrap_not_ready: u32,
    /// Queued faults per method name (`Version`, `Bootstrap`, ...), one per call.
    pub faults: HashMap<String, VecDeque<(Code, String)>>,
    /// Delay before answering, per method name.
    pub delays: HashMap<String, Duration>,
    pub version: String,
    pub hostname: String,
}

/// A running fake Talos node.
pub struct FakeTalos {
    addr: SocketAddr,
    state: Arc<Mutex<TalosState>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

fn lock(s: &Mutex<TalosState>) -> std::sync::MutexGuard<'_, TalosState> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

impl FakeTalos {
    /// Starts a node on 127.0.0.1 (random port) whose certificates come from `secrets`.
    pub async fn start(secrets: &SecretsBundle) -> FakeTalos {
        Self::start_with_ca(secrets, &secrets.os_ca).await
    }

    /// Like [`start`] but trusting client certificates of `client_ca` (a node
    /// configured with another cluster's secrets).
    pub async fn start_with_ca(
        secrets: &SecretsBundle,
        client_ca: &talos::pki::CertKey,
    ) -> FakeTalos {
        let mut rng = rand::rngs::OsRng;
        let now = time::OffsetDateTime::now_utc();
        let server = issue_leaf(
            CaKind::Os,
            &secrets.os_ca,
            &LeafSpec {
                common_name: "fake-cp-1".into(),
                organizations: vec![],
                sans: vec!["127.0.0.1".into(), "localhost".into()],
                server_auth: true,
                client_auth: false,
                alg: KeyAlg::Ed25519,
                validity: time::Duration::days(1),
            },
            &mut rng,
            now,
        )
        .expect("issue server cert");
        let key = PrivKey::from_pem(&server.key)
            .expect("key")
            .to_pkcs8_pem()
            .expect("pkcs8");
        talos::api::client::ensure_crypto_provider();
        let tls = tonic::transport::ServerTlsConfig::new()
            .identity(tonic::transport::Identity::from_pem(
                &server.crt,
                key.as_bytes(),
            ))
            .client_ca_root(tonic::transport::Certificate::from_pem(&client_ca.crt));
        let state = Arc::new(Mutex::new(TalosState {
            etcd_ready_after_polls: 1,
            version: "v1.13.9".into(),
            hostname: "fake-cp-1".into(),
            ..Default::default()
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let svc = MachineSvc {
            state: state.clone(),
        };
        let router = tonic::transport::Server::builder()
            .tls_config(tls)
            .expect("tls config")
            .add_service(svc);
        tokio::spawn(async move {
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
            let _ = router
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = rx.await;
                })
                .await;
        });
        FakeTalos {
            addr,
            state,
            shutdown: Some(tx),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Locked access to the state (set fields, read calls).
    pub fn state(&self) -> std::sync::MutexGuard<'_, TalosState> {
        lock(&self.state)
    }

    /// Queues `times` failures with `code` for `method` (e.g. "Bootstrap").
    pub fn inject(&self, method: &str, code: Code, message: &str, times: usize) {
        let mut s = self.state();
        let q = s.faults.entry(method.to_string()).or_default();
        for _ in 0..times {
            q.push_back((code, message.to_string()));
        }
    }

    /// Delays every answer of `method`.
    pub fn delay(&self, method: &str, d: Duration) {
        self.state().delays.insert(method.to_string(), d);
    }

    /// Recorded calls of `method`.
    pub fn count(&self, method: &str) -> usize {
        self.state()
            .calls
            .iter()
            .filter(|c| c.method == method)
            .count()
    }

    pub fn calls(&self) -> Vec<Call> {
        self.state().calls.clone()
    }
}

impl Drop for FakeTalos {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

#[derive(Clone)]
struct MachineSvc {
    state: Arc<Mutex<TalosState>>,
}

impl NamedService for MachineSvc {
    const NAME: &'static str = "machine.MachineService";
}

fn meta(s: &TalosState) -> Option<proto::Metadata> {
    Some(proto::Metadata {
        hostname: s.hostname.clone(),
        ..Default::default()
    })
}

fn roles_of<T>(req: &tonic::Request<T>) -> Vec<String> {
    let Some(certs) = req.peer_certs() else {
        return vec![];
    };
    let Some(first) = certs.first() else {
        return vec![];
    };
    match x509_parser::parse_x509_certificate(first.as_ref()) {
        Ok((_, c)) => c
            .subject()
            .iter_organization()
            .filter_map(|o| o.as_str().ok().map(String::from))
            .collect(),
        Err(_) => vec![],
    }
}

/// Records the call, applies delay and queued faults.
async fn prologue<T>(
    state: &Arc<Mutex<TalosState>>,
    method: &str,
    req: &tonic::Request<T>,
) -> Result<Vec<String>, Status> {
    let roles = roles_of(req);
    let delay = {
        let mut s = lock(state);
        s.calls.push(Call {
            method: method.to_string(),
            roles: roles.clone(),
            seq: crate::seq::next(),
        });
        s.delays.get(method).copied()
    };
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    let fault = lock(state)
        .faults
        .get_mut(method)
        .and_then(|q| q.pop_front());
    if let Some((code, msg)) = fault {
        return Err(Status::new(code, msg));
    }
    Ok(roles)
}

struct FnSvc<F>(F);

impl<Req, Resp, F> UnaryService<Req> for FnSvc<F>
where
    F: FnMut(tonic::Request<Req>) -> BoxFuture<tonic::Response<Resp>, Status>,
{
    type Response = Resp;
    type Future = BoxFuture<tonic::Response<Resp>, Status>;
    fn call(&mut self, request: tonic::Request<Req>) -> Self::Future {
        (self.0)(request)
    }
}

fn serve<Req, Resp, B, F>(
    req: http::Request<B>,
    f: F,
) -> BoxFuture<http::Response<BoxBody>, Infallible>
where
    Req: prost::Message + Default + Send + 'static,
    Resp: prost::Message + Send + 'static,
    B: http_body::Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
    F: FnMut(tonic::Request<Req>) -> BoxFuture<tonic::Response<Resp>, Status> + Send + 'static,
{
    Box::pin(async move {
        let codec = tonic::codec::ProstCodec::<Resp, Req>::default();
        let mut grpc = tonic::server::Grpc::new(codec);
        Ok(grpc.unary(FnSvc(f), req).await)
    })
}

impl<B> Service<http::Request<B>> for MachineSvc
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<BoxBody>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let st = self.state.clone();
        match req.uri().path() {
            paths::VERSION => serve(req, move |r: tonic::Request<proto::Empty>| {
                let st = st.clone();
                Box::pin(async move {
                    prologue(&st, "Version", &r).await?;
                    let s = lock(&st);
                    Ok(tonic::Response::new(proto::VersionResponse {
                        messages: vec![proto::Version {
                            metadata: meta(&s),
                            version: Some(proto::VersionInfo {
                                tag: s.version.clone(),
                                os: "linux".into(),
                                arch: "amd64".into(),
                                ..Default::default()
                            }),
                            platform: Some(proto::PlatformInfo {
                                name: "hcloud".into(),
                                mode: "cloud".into(),
                            }),
                        }],
                    }))
                })
            }),
            paths::BOOTSTRAP => serve(req, move |r: tonic::Request<proto::BootstrapRequest>| {
                let st = st.clone();
                Box::pin(async move {
                    let roles = prologue(&st, "Bootstrap", &r).await?;
                    if !roles.iter().any(|x| x == "os:admin") {
                        return Err(Status::permission_denied("not authorized"));
                    }
                    let mut s = lock(&st);
                    if r.get_ref().recover_etcd {
                        return Err(Status::invalid_argument("no etcd snapshot uploaded"));
                    }
                    if s.bootstrapped {
                        return Err(Status::already_exists("etcd data directory is not empty"));
                    }
                    if s.bootstrap_not_ready > 0 {
                        s.bootstrap_not_ready -= 1;
                        return Err(Status::failed_precondition("time is not in sync yet"));
                    }
                    s.bootstrapped = true;
                    s.polls_since_bootstrap = 0;
                    Ok(tonic::Response::new(proto::BootstrapResponse {
                        messages: vec![proto::Bootstrap { metadata: meta(&s) }],
                    }))
                })
            }),
            paths::SERVICE_LIST => serve(req, move |r: tonic::Request<proto::Empty>| {
                let st = st.clone();
                Box::pin(async move {
                    prologue(&st, "ServiceList", &r).await?;
                    let mut s = lock(&st);
                    let healthy = if s.bootstrapped {
                        s.polls_since_bootstrap += 1;
                        s.polls_since_bootstrap > s.etcd_ready_after_polls
                    } else {
                        false
                    };
                    let etcd = proto::ServiceInfo {
                        id: "etcd".into(),
                        state: if healthy { "Running" } else { "Preparing" }.into(),
                        health: Some(proto::ServiceHealth {
                            unknown: !healthy,
                            healthy,
                            last_message: if healthy { "" } else { "waiting for bootstrap" }.into(),
                        }),
                    };
                    let apid = proto::ServiceInfo {
                        id: "apid".into(),
                        state: "Running".into(),
                        health: Some(proto::ServiceHealth {
                            healthy: true,
                            ..Default::default()
                        }),
                    };
                    Ok(tonic::Response::new(proto::ServiceListResponse {
                        messages: vec![proto::ServiceList {
                            metadata: meta(&s),
                            services: vec![apid, etcd],
                        }],
                    }))
                })
            }),
            paths::ETCD_MEMBER_LIST => serve(
                req,
                move |r: tonic::Request<proto::EtcdMemberListRequest>| {
                    let st = st.clone();
                    Box::pin(async move {
                        prologue(&st, "EtcdMemberList", &r).await?;
                        let s = lock(&st);
                        if !s.bootstrapped {
                            return Err(Status::unavailable("etcd is not running on this node"));
                        }
                        Ok(tonic::Response::new(proto::EtcdMemberListResponse {
                            messages: vec![proto::EtcdMembers {
                                metadata: meta(&s),
                                legacy_members: vec![],
                                members: vec![proto::EtcdMember {
                                    id: 0x4f3f_b4c3_3808_229a,
                                    hostname: s.hostname.clone(),
                                    peer_urls: vec!["https://[2001:db8::1]:2380".into()],
                                    client_urls: vec!["https://[2001:db8::1]:2379".into()],
                                    is_learner: false,
                                }],
                            }],
                        }))
                    })
                },
            ),
            other => {
                let path = other.to_string();
                {
                    lock(&st).calls.push(Call {
                        method: path,
                        roles: vec![],
                        seq: crate::seq::next(),
                    });
                }
                Box::pin(async move {
                    let mut resp = http::Response::new(tonic::body::empty_body());
                    let h = resp.headers_mut();
                    h.insert("grpc-status", http::HeaderValue::from_static("12"));
                    h.insert(
                        "content-type",
                        http::HeaderValue::from_static("application/grpc"),
                    );
                    Ok(resp)
                })
            }
        }
    }
}

/// State of the fake Kubernetes API.
#[derive(Debug, Default)]
pub struct KubeState {
    /// `/readyz` answers 503 this many times before `ok`.
    pub not_ready_polls: u32,
    /// Registered Node names.
    pub nodes: Vec<String>,
    /// Node names that register on successive `/api/v1/nodes` polls.
    pub pending_nodes: VecDeque<String>,
    pub requests: Vec<String>,
    /// Subject organizations of the client certificates seen.
    pub client_orgs: Vec<Vec<String>>,
}

/// A fake Kubernetes API server on 127.0.0.1 (HTTPS, client cert from the cluster's Kubernetes CA).
pub struct FakeKube {
    addr: SocketAddr,
    state: Arc<Mutex<KubeState>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeKube {
    pub async fn start(secrets: &SecretsBundle) -> FakeKube {
        use tokio_rustls::rustls;
        talos::api::client::ensure_crypto_provider();
        let leaf = issue_leaf(
            CaKind::Kubernetes,
            &secrets.k8s_ca,
            &LeafSpec {
                common_name: "kube-apiserver".into(),
                organizations: vec![],
                sans: vec!["127.0.0.1".into()],
                server_auth: true,
                client_auth: false,
                alg: KeyAlg::EcdsaP256,
                validity: time::Duration::days(1),
            },
            &mut rand::rngs::OsRng,
            time::OffsetDateTime::now_utc(),
        )
        .expect("apiserver cert");
        let certs: Vec<_> = rustls_pemfile::certs(&mut leaf.crt.as_bytes())
            .collect::<Result<_, _>>()
            .expect("certs");
        let key_pem = PrivKey::from_pem(&leaf.key)
            .expect("key")
            .to_pkcs8_pem()
            .expect("pkcs8");
        let key = rustls_pemfile::private_key(&mut key_pem.as_bytes())
            .expect("key pem")
            .expect("a key");
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_pemfile::certs(&mut secrets.k8s_ca.crt.as_bytes()) {
            roots.add(c.expect("ca")).expect("add ca");
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
            .build()
            .expect("verifier");
        let cfg = rustls::ServerConfig::builder()
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs, key)
            .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(Mutex::new(KubeState::default()));
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    break;
                };
                let acceptor = acceptor.clone();
                let st = st.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let orgs: Vec<String> = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first().cloned())
                        .and_then(|c| {
                            x509_parser::parse_x509_certificate(c.as_ref())
                                .ok()
                                .map(|(_, x)| {
                                    x.subject()
                                        .iter_organization()
                                        .filter_map(|o| o.as_str().ok().map(String::from))
                                        .collect()
                                })
                        })
                        .unwrap_or_default();
                    let svc = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            let st = st.clone();
                            let orgs = orgs.clone();
                            async move {
                                let mut s = st.lock().unwrap_or_else(|p| p.into_inner());
                                s.requests.push(req.uri().path().to_string());
                                s.client_orgs.push(orgs.clone());
                                let (code, body) = if !orgs.iter().any(|o| o == "system:masters") {
                                    (403, "forbidden".to_string())
                                } else {
                                    match req.uri().path() {
                                        "/readyz" if s.not_ready_polls > 0 => {
                                            s.not_ready_polls -= 1;
                                            (503, "[-]etcd failed: reason withheld\nreadyz check failed".into())
                                        }
                                        "/readyz" => (200, "ok".into()),
                                        "/api/v1/nodes" => {
                                            if let Some(n) = s.pending_nodes.pop_front() {
                                                s.nodes.push(n);
                                            }
                                            let items: Vec<_> = s
                                            .nodes
                                            .iter()
                                            .map(|n| serde_json::json!({"metadata": {"name": n}}))
                                            .collect();
                                            (
                                            200,
                                            serde_json::json!({"kind": "NodeList", "apiVersion": "v1", "items": items})
                                                .to_string(),
                                        )
                                        }
                                        _ => (404, "not found".into()),
                                    }
                                };
                                let resp = hyper::Response::builder()
                                    .status(code)
                                    .body(http_body_util::Full::new(bytes::Bytes::from(body)))
                                    .expect("response");
                                Ok::<_, Infallible>(resp)
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        FakeKube { addr, state, task }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("https://{}", self.addr)
    }

    pub fn state(&self) -> std::sync::MutexGuard<'_, KubeState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        self.task.abort();
    }
}
