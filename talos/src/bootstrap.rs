//! Bootstrap over the Talos API: check the version, call `Bootstrap` once
//! ("already bootstrapped" counts as success), then wait, with progress and a
//! deadline, for a healthy etcd, a ready Kubernetes API and all nodes registered.

use crate::api::client::{error_chain, TalosClient};
use crate::clientcfg::TalosClientCreds;
use crate::error::{Result, TalosError};
use crate::version::TalosVersion;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::{Duration, Instant};
use tonic::Code;

/// A boxed future (the readiness trait must be object-safe).
pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The Kubernetes-side readiness checks (injectable so tests can use a local server).
pub trait K8sReadiness: Send + Sync {
    /// `GET /readyz` answered `ok`.
    fn readyz(&self) -> BoxFut<'_, std::result::Result<(), String>>;
    /// Names of the registered Node objects.
    fn registered_nodes(&self) -> BoxFut<'_, std::result::Result<Vec<String>, String>>;
}

/// Checks against a real Kubernetes API with the admin kubeconfig's credentials.
pub struct KubeApiReadiness {
    server: String,
    http: reqwest::Client,
}

impl KubeApiReadiness {
    /// Builds the checker from an admin kubeconfig (as [`crate::admin_kubeconfig`] writes it).
    pub fn from_kubeconfig(kubeconfig: &str) -> Result<Self> {
        use base64::Engine as _;
        crate::api::client::ensure_crypto_provider();
        let bad = |d: &str| TalosError::Kube(format!("kubeconfig: {d}"));
        let v: serde_yaml::Value =
            serde_yaml::from_str(kubeconfig).map_err(|e| bad(&e.to_string()))?;
        let cluster = &v["clusters"][0]["cluster"];
        let user = &v["users"][0]["user"];
        let field = |x: &serde_yaml::Value, k: &str| -> Result<Vec<u8>> {
            let s = x[k]
                .as_str()
                .ok_or_else(|| bad(&format!("missing `{k}`")))?;
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|_| bad(&format!("`{k}` is not base64")))
        };
        let server = cluster["server"]
            .as_str()
            .ok_or_else(|| bad("missing `server`"))?
            .trim_end_matches('/')
            .to_string();
        let ca = field(cluster, "certificate-authority-data")?;
        let crt = field(user, "client-certificate-data")?;
        let key = zeroize::Zeroizing::new(field(user, "client-key-data")?);
        let key_pem = std::str::from_utf8(&key).map_err(|_| bad("client key is not PEM"))?;
        let key_pkcs8 = crate::pki::PrivKey::from_pem(key_pem)?.to_pkcs8_pem()?;
        let mut ident = zeroize::Zeroizing::new(crt);
        ident.extend_from_slice(key_pkcs8.as_bytes());
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(
                reqwest::Certificate::from_pem(&ca).map_err(|e| bad(&format!("CA: {e}")))?,
            )
            .identity(
                reqwest::Identity::from_pem(&ident)
                    .map_err(|e| bad(&format!("client cert: {e}")))?,
            )
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| TalosError::Kube(error_chain(&e)))?;
        Ok(KubeApiReadiness { server, http })
    }
}

impl K8sReadiness for KubeApiReadiness {
    fn readyz(&self) -> BoxFut<'_, std::result::Result<(), String>> {
        Box::pin(async move {
            let url = format!("{}/readyz", self.server);
            let r = self
                .http
                .get(&url)
                .send()
                .await
                .map_err(|e| error_chain(&e))?;
            let status = r.status();
            let body = r.text().await.unwrap_or_default();
            if status.is_success() && body.trim() == "ok" {
                Ok(())
            } else {
                Err(format!("{url}: HTTP {status}: {}", body.trim()))
            }
        })
    }

    fn registered_nodes(&self) -> BoxFut<'_, std::result::Result<Vec<String>, String>> {
        Box::pin(async move {
            let url = format!("{}/api/v1/nodes", self.server);
            let r = self
                .http
                .get(&url)
                .send()
                .await
                .map_err(|e| error_chain(&e))?;
            let status = r.status();
            if !status.is_success() {
                return Err(format!("{url}: HTTP {status}"));
            }
            let v: serde_json::Value = r.json().await.map_err(|e| error_chain(&e))?;
            Ok(v["items"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|n| n["metadata"]["name"].as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default())
        })
    }
}

/// Progress callback of [`bootstrap`].
pub type ProgressFn = Box<dyn Fn(&BootstrapStage) + Send + Sync>;

/// Options of [`bootstrap`].
pub struct BootstrapOptions {
    /// Overall deadline for the whole bootstrap.
    pub timeout: Duration,
    /// Pause between polls.
    pub poll_interval: Duration,
    /// Per-RPC and connect timeout.
    pub rpc_timeout: Duration,
    /// Number of nodes that must be registered in Kubernetes.
    pub expected_nodes: usize,
    /// The cluster spec's `talos_version`: the node's version must be of the
    /// same minor release (else [`TalosError::VersionMismatch`] before
    /// `Bootstrap`); a patch-level difference is a warning. `None` skips the check.
    pub expected_talos_version: Option<String>,
    /// Progress callback (also logged with `tracing`).
    pub progress: Option<ProgressFn>,
}

impl Default for BootstrapOptions {
    fn default() -> Self {
        BootstrapOptions {
            timeout: Duration::from_secs(900),
            poll_interval: Duration::from_secs(5),
            rpc_timeout: Duration::from_secs(20),
            expected_nodes: 1,
            expected_talos_version: None,
            progress: None,
        }
    }
}

/// Progress stages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootstrapStage {
    Connecting,
    Version(String),
    /// Something the operator should know that does not stop the bootstrap.
    Warning(String),
    Bootstrap(BootstrapOutcome),
    WaitingEtcd(String),
    EtcdHealthy(usize),
    WaitingApi(String),
    ApiReady,
    WaitingNodes {
        registered: usize,
        expected: usize,
    },
    Done,
}

impl std::fmt::Display for BootstrapStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BootstrapStage::Connecting => write!(f, "connecting to the Talos API"),
            BootstrapStage::Version(v) => write!(f, "node runs Talos {v}"),
            BootstrapStage::Warning(w) => write!(f, "warning: {w}"),
            BootstrapStage::Bootstrap(BootstrapOutcome::Bootstrapped) => {
                write!(f, "etcd bootstrapped")
            }
            BootstrapStage::Bootstrap(BootstrapOutcome::AlreadyBootstrapped) => {
                write!(f, "etcd was already bootstrapped")
            }
            BootstrapStage::Bootstrap(BootstrapOutcome::EtcdAlreadyRunning) => {
                write!(f, "etcd already running, Bootstrap not needed")
            }
            BootstrapStage::WaitingEtcd(s) => write!(f, "waiting for etcd: {s}"),
            BootstrapStage::EtcdHealthy(n) => write!(f, "etcd healthy ({n} member(s))"),
            BootstrapStage::WaitingApi(s) => write!(f, "waiting for the Kubernetes API: {s}"),
            BootstrapStage::ApiReady => write!(f, "Kubernetes API ready"),
            BootstrapStage::WaitingNodes {
                registered,
                expected,
            } => write!(f, "{registered} of {expected} nodes registered"),
            BootstrapStage::Done => write!(f, "done"),
        }
    }
}

/// Compares the version a node reports (`Version` RPC) with the spec's
/// `talos_version`: another major.minor release is an error, another patch
/// level (or pre-release) a warning (returned), the same version `Ok(None)`.
/// A tag that does not parse as a version is a warning too.
pub fn check_node_version(endpoint: &str, spec: &str, node: &str) -> Result<Option<String>> {
    let (Some(want), Some(got)) = (TalosVersion::parse(spec), TalosVersion::parse(node)) else {
        return Ok(Some(format!(
            "cannot compare the node's Talos version `{node}` with the spec's talos_version `{spec}`; check that the servers boot the intended Talos image"
        )));
    };
    if !want.same_minor(&got) {
        return Err(TalosError::VersionMismatch {
            endpoint: endpoint.to_string(),
            node: node.to_string(),
            spec: spec.to_string(),
            spec_minor: want.minor_release(),
        });
    }
    let same_patch = match (want.patch, got.patch) {
        (Some(a), Some(b)) => a == b && want.pre == got.pre,
        // The spec names only the minor release: any patch level matches.
        (None, _) => true,
        (Some(_), None) => false,
    };
    if same_patch {
        return Ok(None);
    }
    Ok(Some(format!(
        "the node at {endpoint} runs Talos {node} but the cluster spec's talos_version is {spec} (same {} release, different patch level); the configs are valid for both, but upgrades and the installer image follow the spec: set `talos_version = \"{node}\"` in the spec or boot a {spec} image to match",
        want.minor_release()
    )))
}

/// What happened to the `Bootstrap` call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BootstrapOutcome {
    /// `Bootstrap` was called and succeeded.
    Bootstrapped,
    /// `Bootstrap` answered AlreadyExists (etcd data directory not empty).
    AlreadyBootstrapped,
    /// etcd already had members; `Bootstrap` was not called.
    EtcdAlreadyRunning,
}

/// The result of [`bootstrap`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct BootstrapReport {
    pub talos_version: String,
    /// Warnings shown during the run (e.g. a patch-level version difference).
    pub warnings: Vec<String>,
    pub outcome: BootstrapOutcome,
    pub etcd_members: usize,
    pub nodes: Vec<String>,
    pub elapsed_ms: u128,
}

struct Ctx<'a> {
    opts: &'a BootstrapOptions,
    deadline: Instant,
    start: Instant,
    endpoint: String,
}

impl Ctx<'_> {
    fn report(&self, s: BootstrapStage) {
        tracing::info!(endpoint = %self.endpoint, stage = ?s, "talos bootstrap");
        if let Some(p) = &self.opts.progress {
            p(&s);
        }
    }
    fn timeout(&self, what: &str, last: String) -> TalosError {
        TalosError::Timeout {
            what: what.to_string(),
            secs: self.opts.timeout.as_secs(),
            last,
        }
    }
    async fn pause(&self, what: &str, last: &str) -> Result<()> {
        let now = Instant::now();
        if now >= self.deadline {
            return Err(self.timeout(what, last.to_string()));
        }
        tokio::time::sleep(self.opts.poll_interval.min(self.deadline - now)).await;
        if Instant::now() >= self.deadline {
            return Err(self.timeout(what, last.to_string()));
        }
        Ok(())
    }
}

fn status_str(s: &tonic::Status) -> String {
    format!("{:?}: {}", s.code(), s.message())
}

/// Whether a transport failure is a TLS trust problem (fatal, not retried).
fn is_tls_rejection(msg: &str) -> bool {
    let m = msg.to_ascii_lowercase();
    m.contains("certificate")
        || m.contains("handshake")
        || m.contains("unknownissuer")
        || m.contains("alert")
}

fn tls_error(endpoint: &str, detail: &str) -> TalosError {
    TalosError::Api {
        endpoint: endpoint.to_string(),
        detail: format!("TLS handshake failed ({detail}); the node's certificate is not signed by this cluster's Talos CA or it rejects our client certificate: the node runs a config from other secrets (re-create it with the current user_data) or the secrets file belongs to another cluster"),
    }
}

/// Bootstraps the cluster through the first control-plane node at `endpoint`
/// (`[ipv6]:50000`). Safe to re-run: `Bootstrap` is skipped when etcd already has
/// members and an AlreadyExists answer counts as success.
pub async fn bootstrap(
    endpoint: SocketAddr,
    creds: &TalosClientCreds,
    k8s: &dyn K8sReadiness,
    opts: &BootstrapOptions,
) -> Result<BootstrapReport> {
    let start = Instant::now();
    let ctx = Ctx {
        opts,
        deadline: start + opts.timeout,
        start,
        endpoint: endpoint.to_string(),
    };
    let ep = ctx.endpoint.clone();

    // 1. Connect and check the version.
    ctx.report(BootstrapStage::Connecting);
    let what = "the Talos API to answer Version";
    let (mut client, version) = loop {
        let last = match TalosClient::connect(endpoint, creds, opts.rpc_timeout, opts.rpc_timeout).await {
            Ok(mut c) => match c.version().await {
                Ok(v) => {
                    let tag = v
                        .messages
                        .first()
                        .and_then(|m| m.version.as_ref())
                        .map(|v| v.tag.clone())
                        .unwrap_or_default();
                    break (c, tag);
                }
                Err(s) if is_tls_rejection(s.message()) => return Err(tls_error(&ep, s.message())),
                Err(s) if matches!(s.code(), Code::Unauthenticated | Code::PermissionDenied) => {
                    return Err(TalosError::Api {
                        endpoint: ep,
                        detail: format!("Version was refused ({}); the client certificate needs role os:admin from this cluster's Talos CA", status_str(&s)),
                    })
                }
                Err(s) => status_str(&s),
            },
            Err(TalosError::Api { detail, .. }) if is_tls_rejection(&detail) => {
                return Err(tls_error(&ep, &detail))
            }
            Err(e) => e.to_string(),
        };
        tracing::debug!(endpoint = %ep, error = %last, "Talos API not answering yet");
        ctx.pause(what, &last).await?;
    };
    if version.is_empty() {
        return Err(TalosError::Api {
            endpoint: ep,
            detail: "Version answered without a version tag; is this a Talos node?".into(),
        });
    }
    ctx.report(BootstrapStage::Version(version.clone()));
    let mut warnings = Vec::new();
    if let Some(spec) = &opts.expected_talos_version {
        if let Some(w) = check_node_version(&ep, spec, &version)? {
            tracing::warn!(endpoint = %ep, node_version = %version, spec_version = %spec, "{w}");
            if let Some(p) = &opts.progress {
                p(&BootstrapStage::Warning(w.clone()));
            }
            warnings.push(w);
        }
    }

    // 2. Bootstrap exactly once.
    let members_now = client
        .etcd_member_list()
        .await
        .ok()
        .map(|r| r.messages.iter().map(|m| m.members.len()).sum::<usize>())
        .unwrap_or(0);
    let outcome = if members_now > 0 {
        BootstrapOutcome::EtcdAlreadyRunning
    } else {
        let what = "the node to accept Bootstrap";
        loop {
            let last = match client.bootstrap().await {
                Ok(_) => break BootstrapOutcome::Bootstrapped,
                Err(s) if s.code() == Code::AlreadyExists => break BootstrapOutcome::AlreadyBootstrapped,
                Err(s)
                    if matches!(
                        s.code(),
                        Code::FailedPrecondition | Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled
                    ) =>
                {
                    status_str(&s)
                }
                Err(s) => {
                    return Err(TalosError::Api {
                        endpoint: ep,
                        detail: format!("Bootstrap failed: {}; fix the cause on the node (`talosctl dmesg`) and re-run", status_str(&s)),
                    })
                }
            };
            tracing::debug!(endpoint = %ep, error = %last, "Bootstrap not accepted yet");
            ctx.pause(what, &last).await?;
        }
    };
    ctx.report(BootstrapStage::Bootstrap(outcome));

    // 3. etcd healthy.
    let what = "etcd to become healthy";
    let etcd_members = loop {
        let last = match client.service_list().await {
            Ok(r) => {
                let etcd = r
                    .messages
                    .iter()
                    .flat_map(|m| m.services.iter())
                    .find(|s| s.id == "etcd");
                match etcd {
                    Some(s)
                        if s.state == "Running" && s.health.as_ref().is_some_and(|h| h.healthy) =>
                    {
                        match client.etcd_member_list().await {
                            Ok(m) => {
                                let n: usize = m.messages.iter().map(|x| x.members.len()).sum();
                                if n > 0 {
                                    break n;
                                }
                                "etcd has no members yet".to_string()
                            }
                            Err(s) => format!("EtcdMemberList: {}", status_str(&s)),
                        }
                    }
                    Some(s) => format!(
                        "etcd service {} ({})",
                        s.state,
                        s.health
                            .as_ref()
                            .map(|h| h.last_message.as_str())
                            .unwrap_or("")
                    ),
                    None => "etcd service not listed yet".into(),
                }
            }
            Err(s) => format!("ServiceList: {}", status_str(&s)),
        };
        ctx.report(BootstrapStage::WaitingEtcd(last.clone()));
        ctx.pause(what, &last).await?;
    };
    ctx.report(BootstrapStage::EtcdHealthy(etcd_members));

    // 4. Kubernetes API /readyz.
    let what = "the Kubernetes API to answer /readyz";
    loop {
        let last = match k8s.readyz().await {
            Ok(()) => break,
            Err(e) => e,
        };
        ctx.report(BootstrapStage::WaitingApi(last.clone()));
        ctx.pause(what, &last).await?;
    }
    ctx.report(BootstrapStage::ApiReady);

    // 5. All nodes registered.
    let what = "all nodes to register in Kubernetes";
    let nodes = loop {
        let last = match k8s.registered_nodes().await {
            Ok(n) if n.len() >= opts.expected_nodes => break n,
            Ok(n) => {
                ctx.report(BootstrapStage::WaitingNodes {
                    registered: n.len(),
                    expected: opts.expected_nodes,
                });
                format!("{} of {} nodes registered", n.len(), opts.expected_nodes)
            }
            Err(e) => e,
        };
        ctx.pause(what, &last).await?;
    };
    ctx.report(BootstrapStage::Done);
    Ok(BootstrapReport {
        talos_version: version,
        warnings,
        outcome,
        etcd_members,
        nodes,
        elapsed_ms: ctx.start.elapsed().as_millis(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const EP: &str = "[2001:db8::1]:50000";

    #[test]
    fn same_version_passes_silently() {
        assert_eq!(check_node_version(EP, "v1.13.9", "v1.13.9").unwrap(), None);
        // A spec naming only the minor release accepts any patch level.
        assert_eq!(check_node_version(EP, "v1.13", "v1.13.4").unwrap(), None);
    }

    #[test]
    fn another_minor_release_is_an_error_naming_both_and_the_fix() {
        for (spec, node) in [
            ("v1.13.9", "v1.14.0"),
            ("v1.14.0-rc.1", "v1.13.9"),
            ("v1.13.9", "v2.13.9"),
        ] {
            let e = check_node_version(EP, spec, node).unwrap_err();
            assert!(matches!(e, TalosError::VersionMismatch { .. }), "{e:?}");
            let msg = e.to_string();
            for want in [spec, node, EP, "talos_version", "image", "fix:"] {
                assert!(msg.contains(want), "expected `{want}` in: {msg}");
            }
        }
    }

    #[test]
    fn a_patch_level_or_prerelease_difference_is_a_warning() {
        for (spec, node) in [
            ("v1.13.9", "v1.13.8"),
            ("v1.14.0-rc.1", "v1.14.0"),
            ("v1.13.9", "v1.13"),
        ] {
            let w = check_node_version(EP, spec, node).unwrap().unwrap();
            assert!(
                w.contains(spec) && w.contains(node) && w.contains("patch level"),
                "{w}"
            );
        }
        let w = check_node_version(EP, "v1.13.9", "custom-build")
            .unwrap()
            .unwrap();
        assert!(
            w.contains("custom-build") && w.contains("cannot compare"),
            "{w}"
        );
    }

    #[test]
    fn stages_read_as_sentences() {
        assert_eq!(
            BootstrapStage::Warning("x".into()).to_string(),
            "warning: x"
        );
        assert_eq!(
            BootstrapStage::WaitingNodes {
                registered: 1,
                expected: 3
            }
            .to_string(),
            "1 of 3 nodes registered"
        );
        assert_eq!(
            BootstrapStage::Version("v1.13.9".into()).to_string(),
            "node runs Talos v1.13.9"
        );
    }
}
