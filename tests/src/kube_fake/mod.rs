//! A fake Kubernetes API server, in-process, on 127.0.0.1: over plain HTTP
//! (kube's connector speaks it to `http://` servers), or over HTTPS with a
//! serving certificate from a cluster CA that also verifies client
//! certificates ([`KubeFake::start_tls_with`]; [`ServingTls::from_talos_bundle`]
//! uses the Kubernetes CA of a Talos secrets bundle, like a real cluster). Stateful: it keeps
//! objects, implements server-side apply (`application/apply-patch+yaml`,
//! required `fieldManager`, field ownership and 409 conflicts, `force`),
//! serves custom resources only once their CRD is `Established`, simulates
//! the controllers' rollout status, and records every request so tests can
//! assert method, path, content type, query and order.
//!
//! Behaviour follows the Kubernetes API conventions: `Status` failure bodies
//! with `reason`/`code`, 404 `NotFound` for missing objects and for resource
//! types the server does not serve, 401 for a wrong bearer token, 415 for a
//! patch type it does not support, 422 when an apply has no field manager.
//!
//! Field ownership follows structured merge: lists of named objects
//! (`containers`, `env`, `ports`, `volumes`...) merge per element keyed by
//! `name`; other lists are atomic (the real server also uses other keys such
//! as `containerPort`; where it would merge such a list, this fake reports a
//! conflict, so it never misses one). There is no watch, no admission and no
//! garbage collection.
//! Over plain HTTP a request without a header is accepted (there is no TLS
//! to carry a client certificate); over HTTPS it needs the bearer token or a
//! client certificate the handshake verified.

mod store;
mod tls;

pub use tls::{ClusterCa, ServingTls};

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Value};

use store::{status, ApplyResult, State};
pub use store::{ResourceType, Rollout};

/// One request as the fake saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: String,
    pub content_type: Option<String>,
    pub body: Option<Value>,
    /// Position in the process-wide request sequence ([`crate::seq`]).
    pub seq: u64,
}

impl Recorded {
    /// `fieldManager` and other query parameters.
    pub fn param(&self, key: &str) -> Option<String> {
        self.query.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k == key).then(|| v.to_string())
        })
    }
    pub fn is_mutation(&self) -> bool {
        !matches!(self.method.as_str(), "GET" | "HEAD")
    }
}

/// An injected failure: the next `times` requests matching get `status`.
#[derive(Debug, Clone)]
struct Fault {
    method: String,
    path_contains: String,
    code: u16,
    reason: String,
    times: u32,
}

#[derive(Default)]
struct Shared {
    state: State,
    requests: Vec<Recorded>,
    faults: Vec<Fault>,
    token: String,
    /// Serving HTTPS: requests need a bearer token or a client certificate.
    tls: bool,
}

/// The running fake. Dropping it stops the server.
pub struct KubeFake {
    addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    task: tokio::task::JoinHandle<()>,
    scheme: &'static str,
}

impl Drop for KubeFake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(s: &Arc<Mutex<Shared>>) -> MutexGuard<'_, Shared> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

impl KubeFake {
    /// Start on an ephemeral port of 127.0.0.1. Requests must carry `Bearer <token>`.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Mutex::new(Shared {
            token: "fake-admin-token".into(),
            ..Default::default()
        }));
        let s2 = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let s3 = s2.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| handle(s3.clone(), req, false));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        let fake = Self {
            addr,
            shared,
            task,
            scheme: "http",
        };
        fake.seed_system_namespaces();
        fake
    }

    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    fn seed_system_namespaces(&self) {
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            self.seed(
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}}}),
                "kube-apiserver",
            );
        }
    }

    /// A kubeconfig with bearer-token auth for this server.
    pub fn kubeconfig(&self) -> String {
        let token = lock(&self.shared).token.clone();
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: fake\nclusters:\n- name: fake\n  cluster:\n    server: {}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: admin\nusers:\n- name: admin\n  user:\n    token: {token}\n",
            self.url()
        )
    }

    /// A kubeconfig with a client certificate (base64 PEM data) for this server.
    pub fn kubeconfig_with_cert(&self, cert_pem: &str, key_pem: &str) -> String {
        use base64::Engine;
        let b = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: fake\nclusters:\n- name: fake\n  cluster:\n    server: {}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: admin\nusers:\n- name: admin\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n",
            self.url(),
            b(cert_pem),
            b(key_pem)
        )
    }

    /// All requests so far.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.shared).requests.clone()
    }
    pub fn clear_requests(&self) {
        lock(&self.shared).requests.clear();
    }
    /// Applies that created or changed an object.
    pub fn mutations(&self) -> u64 {
        lock(&self.shared).state.mutations
    }
    /// An object by group, plural, namespace ("" if cluster-scoped) and name.
    pub fn object(&self, group: &str, plural: &str, ns: &str, name: &str) -> Option<Value> {
        lock(&self.shared)
            .state
            .objects
            .get(&(group.into(), plural.into(), ns.into(), name.into()))
            .map(|s| s.obj.clone())
    }
    pub fn object_count(&self) -> usize {
        lock(&self.shared).state.objects.len()
    }
    /// The manager owning a field path (`.spec.replicas`) of an object.
    pub fn owner(
        &self,
        group: &str,
        plural: &str,
        ns: &str,
        name: &str,
        field: &str,
    ) -> Option<String> {
        lock(&self.shared)
            .state
            .objects
            .get(&(group.into(), plural.into(), ns.into(), name.into()))
            .and_then(|s| {
                s.owners
                    .get(
                        &field
                            .trim_start_matches('.')
                            .replace('.', &store::SEP.to_string()),
                    )
                    .cloned()
            })
    }
    /// How workloads roll out unless set per object.
    pub fn set_default_rollout(&self, r: Rollout) {
        lock(&self.shared).state.default_rollout = r;
    }
    /// How one workload rolls out (kind, namespace, name).
    pub fn set_rollout(&self, kind: &str, ns: &str, name: &str, r: Rollout) {
        lock(&self.shared)
            .state
            .rollouts
            .insert((kind.into(), ns.into(), name.into()), r);
    }
    /// Reads before a CRD reports Established.
    pub fn set_crd_establish_reads(&self, n: u32) {
        lock(&self.shared).state.crd_establish_reads = n;
    }
    /// This CRD's names are rejected (NamesAccepted=False, never Established).
    pub fn reject_crd_names(&self, crd_name: &str) {
        lock(&self.shared)
            .state
            .crd_names_rejected
            .insert(crd_name.into());
    }
    /// Store an object as another field manager (a controller, kubectl...).
    /// Panics if the type is not served.
    pub fn seed(&self, obj: Value, manager: &str) {
        let mut g = lock(&self.shared);
        let av = obj
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let kind = obj
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let t = g
            .state
            .types
            .iter()
            .find(|t| t.api_version() == av && t.kind == kind)
            .cloned()
            .unwrap_or_else(|| panic!("fake: {av} {kind} is not served"));
        g.state.seed(&t, obj, manager);
    }
    /// Register a served type without a CRD object (e.g. a CRD installed earlier).
    pub fn serve_type(&self, t: ResourceType) {
        lock(&self.shared).state.types.push(t);
    }
    /// Add a node (and count it for DaemonSets).
    pub fn add_node(&self, name: &str, ready: bool, control_plane: bool) {
        let mut labels = json!({"kubernetes.io/hostname": name});
        if control_plane {
            labels["node-role.kubernetes.io/control-plane"] = json!("");
        }
        let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels},
            "status": {"conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"},
                "reason": if ready {"KubeletReady"} else {"KubeletNotReady"},
                "message": if ready {"kubelet is posting ready status"} else {"container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized"}}],
                "addresses": [{"type": "InternalIP", "address": "10.0.0.2"}, {"type": "ExternalIP", "address": "2a01:4f8::1"}],
                "nodeInfo": {"kubeletVersion": "v1.34.1", "architecture": "amd64", "bootID": "", "containerRuntimeVersion": "containerd://2.1.4",
                    "kernelVersion": "6.12.48-talos", "kubeProxyVersion": "", "machineID": "", "operatingSystem": "linux", "osImage": "Talos (v1.11.3)", "systemUUID": ""}}});
        let mut g = lock(&self.shared);
        let count = g.state.objects.keys().filter(|k| k.1 == "nodes").count() as i32 + 1;
        g.state.node_count = count;
        let t = g
            .state
            .types
            .iter()
            .find(|t| t.plural == "nodes")
            .cloned()
            .expect("nodes served");
        g.state.seed(&t, node, "kubelet");
    }
    /// Prometheus text served by a pod's port through the API server proxy.
    pub fn set_pod_metrics(&self, ns: &str, pod: &str, port: u16, text: &str) {
        lock(&self.shared)
            .state
            .pod_metrics
            .insert((ns.into(), pod.into(), port), text.into());
    }
    /// The next `times` requests with this method whose path contains `path_contains` fail.
    pub fn fail(&self, method: &str, path_contains: &str, code: u16, reason: &str, times: u32) {
        lock(&self.shared).faults.push(Fault {
            method: method.into(),
            path_contains: path_contains.into(),
            code,
            reason: reason.into(),
            times,
        });
    }
}

fn reply(code: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = code;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

fn fail(code: u16, reason: &str, message: &str) -> Response<Full<Bytes>> {
    reply(
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &status(code, reason, message),
    )
}

async fn handle(
    shared: Arc<Mutex<Shared>>,
    req: Request<Incoming>,
    client_cert: bool,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let content_type = req
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let auth = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let parsed: Option<Value> = if body.is_empty() {
        None
    } else {
        serde_yaml::from_slice::<Value>(&body).ok()
    };
    let mut g = lock(&shared);
    g.requests.push(Recorded {
        method: method.clone(),
        path: path.clone(),
        query: query.clone(),
        content_type: content_type.clone(),
        body: parsed.clone(),
        seq: crate::seq::next(),
    });
    // Authentication: bearer token, or a client certificate (TLS is not
    // terminated here; a kubeconfig with a certificate sends no header).
    match &auth {
        Some(a) if a != &format!("Bearer {}", g.token) => {
            return Ok(fail(401, "Unauthorized", "Unauthorized"));
        }
        None if g.tls && !client_cert => return Ok(fail(401, "Unauthorized", "Unauthorized")),
        _ => {}
    }
    if let Some(i) = g
        .faults
        .iter()
        .position(|f| f.method == method && path.contains(&f.path_contains) && f.times > 0)
    {
        g.faults[i].times -= 1;
        let f = g.faults[i].clone();
        return Ok(fail(
            f.code,
            &f.reason,
            &format!("injected failure for {method} {path}"),
        ));
    }
    Ok(route(
        &mut g.state,
        &method,
        &path,
        &query,
        content_type.as_deref(),
        parsed.as_ref(),
        !body.is_empty(),
    ))
}

fn route(
    st: &mut State,
    method: &str,
    path: &str,
    query: &str,
    ct: Option<&str>,
    body: Option<&Value>,
    has_body: bool,
) -> Response<Full<Bytes>> {
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    if segs == ["version"] && method == "GET" {
        return reply(
            StatusCode::OK,
            &json!({"major": "1", "minor": "34", "gitVersion": "v1.34.1", "gitCommit": "0000000000000000000000000000000000000000",
            "gitTreeState": "clean", "buildDate": "2025-09-09T00:00:00Z", "goVersion": "go1.24.6", "compiler": "gc", "platform": "linux/amd64"}),
        );
    }
    if matches!(segs.as_slice(), ["readyz"] | ["livez"] | ["healthz"]) && method == "GET" {
        let mut r = Response::new(Full::new(Bytes::from_static(b"ok")));
        r.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        return r;
    }
    // (group, version, rest)
    let (group, version, rest): (&str, &str, &[&str]) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", v, rest),
        ["apis", g, v, rest @ ..] => (g, v, rest),
        _ => {
            return fail(
                404,
                "NotFound",
                "the server could not find the requested resource",
            )
        }
    };
    if rest.is_empty() {
        // Discovery.
        let resources: Vec<Value> = st
            .types
            .iter()
            .filter(|t| t.group == group && t.version == version)
            .map(|t| json!({"name": t.plural, "singularName": t.kind.to_lowercase(), "namespaced": t.namespaced, "kind": t.kind,
                             "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]}))
            .collect();
        if resources.is_empty() {
            return fail(
                404,
                "NotFound",
                "the server could not find the requested resource",
            );
        }
        let gv = if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        };
        return reply(
            StatusCode::OK,
            &json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
        );
    }
    let (ns, plural, name, sub): (Option<&str>, &str, Option<&str>, &[&str]) = match rest {
        ["namespaces", ns, plural, name, sub @ ..] => (Some(ns), plural, Some(name), sub),
        ["namespaces", ns, plural] => (Some(ns), plural, None, &[]),
        [plural] => (None, plural, None, &[]),
        [plural, name, sub @ ..] => (None, plural, Some(name), sub),
        _ => {
            return fail(
                404,
                "NotFound",
                "the server could not find the requested resource",
            )
        }
    };
    // Pod proxy: /api/v1/namespaces/{ns}/pods/{name}:{port}/proxy/{path}
    if group.is_empty() && plural == "pods" && sub.first() == Some(&"proxy") {
        let (pod, port) = name
            .and_then(|n| n.rsplit_once(':'))
            .map(|(p, port)| (p, port.parse::<u16>().unwrap_or(0)))
            .unwrap_or(("", 0));
        return match st.pod_metrics.get(&(ns.unwrap_or("").to_string(), pod.to_string(), port)) {
            Some(text) if sub.get(1) == Some(&"metrics") => {
                let mut r = Response::new(Full::new(Bytes::from(text.clone())));
                r.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"));
                r
            }
            _ => fail(503, "ServiceUnavailable", &format!("error trying to reach service: dial tcp [fd00::1]:{port}: connect: connection refused")),
        };
    }
    let Some(t) = st.find_type(group, version, plural) else {
        return fail(
            404,
            "NotFound",
            "the server could not find the requested resource",
        );
    };
    if t.namespaced && ns.is_none() && name.is_some() {
        return fail(
            404,
            "NotFound",
            "the server could not find the requested resource",
        );
    }
    if !t.namespaced && ns.is_some() {
        return fail(
            404,
            "NotFound",
            "the server could not find the requested resource",
        );
    }
    let qualified = if group.is_empty() {
        plural.to_string()
    } else {
        format!("{plural}.{group}")
    };
    match (method, name) {
        ("GET", None) => {
            let selector = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("labelSelector="))
                .map(url_decode);
            let keys: Vec<_> = st
                .objects
                .keys()
                .filter(|k| k.0 == group && k.1 == plural && ns.is_none_or(|n| k.2 == n))
                .cloned()
                .collect();
            let mut items = Vec::new();
            for k in keys {
                if let Some(o) = st.read(&k) {
                    if selector.as_deref().is_none_or(|s| matches_selector(&o, s)) {
                        items.push(o);
                    }
                }
            }
            reply(
                StatusCode::OK,
                &json!({"kind": format!("{}List", t.kind), "apiVersion": t.api_version(),
                "metadata": {"resourceVersion": st.resource_version.to_string()}, "items": items}),
            )
        }
        ("GET", Some(n)) => match st.read(&(
            group.into(),
            plural.into(),
            ns.unwrap_or("").into(),
            n.into(),
        )) {
            Some(o) => reply(StatusCode::OK, &o),
            None => fail(404, "NotFound", &format!("{qualified} \"{n}\" not found")),
        },
        ("PATCH", Some(n)) => {
            if ct != Some("application/apply-patch+yaml") {
                return fail(415, "UnsupportedMediaType", &format!("the body of the request was in an unknown format - accepted media types include: application/apply-patch+yaml (this fake implements server-side apply only; got {})", ct.unwrap_or("none")));
            }
            let manager = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("fieldManager="))
                .unwrap_or("");
            if manager.is_empty() {
                return fail(422, "Invalid", "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch");
            }
            let force = query.split('&').any(|kv| kv == "force=true");
            let Some(obj) = body.filter(|_| has_body) else {
                return fail(
                    400,
                    "BadRequest",
                    "error decoding YAML: the body is empty or not an object",
                );
            };
            let av = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
            let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
            if av != t.api_version() || kind != t.kind {
                return fail(400, "BadRequest", &format!("the API version in the data ({av}) does not match the expected API version ({})", t.api_version()));
            }
            let body_name = obj
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            if body_name != n {
                return fail(400, "BadRequest", &format!("the name of the object ({body_name}) does not match the name on the URL ({n})"));
            }
            if let (Some(bns), Some(uns)) = (
                obj.pointer("/metadata/namespace").and_then(Value::as_str),
                ns,
            ) {
                if bns != uns {
                    return fail(400, "BadRequest", "the namespace of the provided object does not match the namespace sent on the request");
                }
            }
            if let Some(uns) = ns {
                let ns_exists = st.objects.contains_key(&(
                    String::new(),
                    "namespaces".into(),
                    String::new(),
                    uns.to_string(),
                ));
                if !ns_exists {
                    return fail(404, "NotFound", &format!("namespaces \"{uns}\" not found"));
                }
            }
            let key = (
                group.to_string(),
                plural.to_string(),
                ns.unwrap_or("").to_string(),
                n.to_string(),
            );
            match st.apply(&t, key, obj, manager, force) {
                ApplyResult::Created(o) => reply(StatusCode::CREATED, &o),
                ApplyResult::Updated(o) => reply(StatusCode::OK, &o),
                ApplyResult::Conflict(msg) => fail(409, "Conflict", &msg),
            }
        }
        _ => fail(
            405,
            "MethodNotAllowed",
            &format!("{method} is not supported by this fake for {qualified}"),
        ),
    }
}

fn url_decode(s: &str) -> String {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Equality-based label selectors: `k`, `k=v`, `k==v`, `k!=v`, `!k`, comma-separated.
fn matches_selector(obj: &Value, sel: &str) -> bool {
    let labels = obj.pointer("/metadata/labels").and_then(Value::as_object);
    let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    sel.split(',').filter(|t| !t.is_empty()).all(|term| {
        if let Some((k, v)) = term.split_once("!=") {
            get(k) != Some(v)
        } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
            get(k) == Some(v)
        } else if let Some(k) = term.strip_prefix('!') {
            get(k).is_none()
        } else {
            get(term).is_some()
        }
    })
}
