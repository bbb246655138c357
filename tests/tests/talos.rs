//! talos integration tests: bootstrap over mutual-TLS gRPC against the fake
//! Talos API, Kubernetes readiness against the fake Kubernetes API, and the
//! guarantee that secrets never reach logs or output.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use shopedge_tests::talos_fake::{FakeKube, FakeTalos};
use talos::{
    admin_kubeconfig, bootstrap, generate_secrets, seeded_rng, BootstrapOptions, BootstrapOutcome,
    BootstrapStage, K8sReadiness, KubeApiReadiness, SecretsBundle, TalosClientCreds, TalosError,
};
use tonic::Code;

/// Everything logged by any test of this binary (global subscriber, installed
/// by the first test that runs, before any logging happens).
static LOGS: std::sync::OnceLock<Buf> = std::sync::OnceLock::new();

fn logs() -> &'static Buf {
    LOGS.get_or_init(|| {
        let buf = Buf::default();
        let w = buf.clone();
        let sub = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || w.clone())
            .with_ansi(false)
            .finish();
        let _ = tracing::subscriber::set_global_default(sub);
        buf
    })
}

fn now() -> time::OffsetDateTime {
    logs();
    time::OffsetDateTime::now_utc()
}

fn secrets(seed: u64) -> SecretsBundle {
    generate_secrets(&mut seeded_rng(seed), now()).unwrap()
}

fn creds(s: &SecretsBundle) -> TalosClientCreds {
    TalosClientCreds::issue_admin(s, &mut rand::rngs::OsRng, now()).unwrap()
}

fn opts(expected_nodes: usize) -> BootstrapOptions {
    BootstrapOptions {
        timeout: Duration::from_secs(20),
        poll_interval: Duration::from_millis(20),
        rpc_timeout: Duration::from_secs(5),
        expected_nodes,
        // The fake node reports v1.13.9 unless a test changes it.
        expected_talos_version: Some("v1.13.9".into()),
        progress: None,
    }
}

async fn kube(s: &SecretsBundle, nodes: &[&str]) -> (FakeKube, KubeApiReadiness) {
    let k = FakeKube::start(s).await;
    {
        let mut st = k.state();
        st.not_ready_polls = 2;
        st.pending_nodes = nodes.iter().map(|n| n.to_string()).collect();
    }
    let kc = admin_kubeconfig(s, "shop", &k.endpoint(), &mut rand::rngs::OsRng, now()).unwrap();
    let r = KubeApiReadiness::from_kubeconfig(&kc).unwrap();
    (k, r)
}

#[tokio::test]
async fn bootstrap_happens_once_across_repeated_runs() {
    let s = secrets(1);
    let talos = FakeTalos::start(&s).await;
    talos.state().etcd_ready_after_polls = 2;
    let (k, ready) = kube(&s, &["shop-cp-1", "shop-worker-1", "shop-worker-2"]).await;
    let c = creds(&s);
    let stages = Arc::new(Mutex::new(Vec::new()));
    let st2 = stages.clone();
    let mut o = opts(3);
    o.progress = Some(Box::new(move |s: &BootstrapStage| {
        st2.lock().unwrap().push(s.clone())
    }));
    let r = bootstrap(talos.addr(), &c, &ready, &o).await.unwrap();
    assert_eq!(r.outcome, BootstrapOutcome::Bootstrapped);
    assert_eq!(r.talos_version, "v1.13.9");
    assert_eq!(r.etcd_members, 1);
    assert_eq!(r.nodes, vec!["shop-cp-1", "shop-worker-1", "shop-worker-2"]);
    assert_eq!(talos.count("Bootstrap"), 1);
    assert!(talos.count("ServiceList") >= 3, "waited for etcd health");
    assert!(talos
        .calls()
        .iter()
        .all(|c| c.roles == vec!["os:admin".to_string()]));
    let stages = stages.lock().unwrap().clone();
    assert_eq!(stages.first(), Some(&BootstrapStage::Connecting));
    assert!(stages.contains(&BootstrapStage::Bootstrap(BootstrapOutcome::Bootstrapped)));
    assert!(stages
        .iter()
        .any(|s| matches!(s, BootstrapStage::WaitingEtcd(_))));
    assert!(stages
        .iter()
        .any(|s| matches!(s, BootstrapStage::WaitingApi(_))));
    assert!(stages
        .iter()
        .any(|s| matches!(s, BootstrapStage::WaitingNodes { .. })));
    assert_eq!(stages.last(), Some(&BootstrapStage::Done));
    {
        let ks = k.state();
        assert!(ks.requests.iter().filter(|p| *p == "/readyz").count() >= 3);
        assert!(ks
            .client_orgs
            .iter()
            .all(|o| o == &vec!["system:masters".to_string()]));
    }
    // Second and third `up`: no further Bootstrap call.
    for _ in 0..2 {
        let r = bootstrap(talos.addr(), &creds(&s), &ready, &opts(3))
            .await
            .unwrap();
        assert_eq!(r.outcome, BootstrapOutcome::EtcdAlreadyRunning);
    }
    assert_eq!(
        talos.count("Bootstrap"),
        1,
        "bootstrap must be called exactly once"
    );
}

#[tokio::test]
async fn already_bootstrapped_answer_counts_as_success() {
    let s = secrets(2);
    let talos = FakeTalos::start(&s).await;
    talos.state().bootstrapped = true;
    // etcd member list unavailable at first, so the client falls back to Bootstrap.
    talos.inject("EtcdMemberList", Code::Unavailable, "etcd is starting", 1);
    let (_k, ready) = kube(&s, &["shop-cp-1"]).await;
    let r = bootstrap(talos.addr(), &creds(&s), &ready, &opts(1))
        .await
        .unwrap();
    assert_eq!(r.outcome, BootstrapOutcome::AlreadyBootstrapped);
    assert_eq!(talos.count("Bootstrap"), 1);
}

#[tokio::test]
async fn node_not_ready_for_bootstrap_is_retried() {
    let s = secrets(3);
    let talos = FakeTalos::start(&s).await;
    talos.state().bootstrap_not_ready = 2;
    talos.inject("Version", Code::Unavailable, "apid starting", 2);
    let (_k, ready) = kube(&s, &["n1"]).await;
    let r = bootstrap(talos.addr(), &creds(&s), &ready, &opts(1))
        .await
        .unwrap();
    assert_eq!(r.outcome, BootstrapOutcome::Bootstrapped);
    assert_eq!(talos.count("Version"), 3);
    assert_eq!(
        talos.count("Bootstrap"),
        3,
        "two FailedPrecondition answers, then success"
    );
}

#[tokio::test]
async fn a_node_on_another_minor_release_fails_before_bootstrap() {
    let s = secrets(11);
    let talos = FakeTalos::start(&s).await;
    talos.state().version = "v1.14.0".into();
    let (_k, ready) = kube(&s, &["shop-cp-1"]).await;
    let e = bootstrap(talos.addr(), &creds(&s), &ready, &opts(1))
        .await
        .unwrap_err();
    assert!(matches!(e, TalosError::VersionMismatch { .. }), "{e:?}");
    let msg = e.to_string();
    for want in [
        "v1.14.0",
        "v1.13.9",
        "talos_version",
        "image",
        &talos.addr().to_string(),
    ] {
        assert!(msg.contains(want), "expected `{want}` in: {msg}");
    }
    assert_eq!(talos.count("Version"), 1);
    assert_eq!(talos.count("Bootstrap"), 0, "nothing changed on the node");
    // Without an expected version the same node bootstraps (the check is opt-in).
    let mut o = opts(1);
    o.expected_talos_version = None;
    let r = bootstrap(talos.addr(), &creds(&s), &ready, &o)
        .await
        .unwrap();
    assert_eq!(r.talos_version, "v1.14.0");
    assert!(r.warnings.is_empty());
}

#[tokio::test]
async fn a_patch_level_difference_is_a_warning_line() {
    let s = secrets(12);
    let talos = FakeTalos::start(&s).await;
    talos.state().version = "v1.13.8".into();
    let (_k, ready) = kube(&s, &["shop-cp-1"]).await;
    let stages = Arc::new(Mutex::new(Vec::new()));
    let st2 = stages.clone();
    let mut o = opts(1);
    o.progress = Some(Box::new(move |s: &BootstrapStage| {
        st2.lock().unwrap().push(s.clone())
    }));
    let r = bootstrap(talos.addr(), &creds(&s), &ready, &o)
        .await
        .unwrap();
    assert_eq!(r.outcome, BootstrapOutcome::Bootstrapped);
    assert_eq!(r.talos_version, "v1.13.8");
    assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
    let w = &r.warnings[0];
    assert!(
        w.contains("v1.13.8") && w.contains("v1.13.9") && w.contains("patch level"),
        "{w}"
    );
    let stages = stages.lock().unwrap().clone();
    let line: Vec<String> = stages
        .iter()
        .filter(|s| matches!(s, BootstrapStage::Warning(_)))
        .map(|s| s.to_string())
        .collect();
    assert_eq!(line, vec![format!("warning: {w}")]);
    let logged = String::from_utf8_lossy(&logs().0.lock().unwrap()).into_owned();
    assert!(logged.contains(w.as_str()), "warning logged");
    assert_eq!(talos.count("Bootstrap"), 1);
}

#[tokio::test]
async fn client_cert_from_another_ca_is_rejected_clearly_and_fast() {
    let s = secrets(4);
    let other = secrets(5);
    let talos = FakeTalos::start(&s).await;
    let (_k, ready) = kube(&s, &["n1"]).await;
    let mut o = opts(1);
    o.timeout = Duration::from_secs(30);
    let started = std::time::Instant::now();
    // Client presents a cert from another cluster's Talos CA (and trusts that CA).
    let e = bootstrap(talos.addr(), &creds(&other), &ready, &o)
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "TLS rejection must not wait for the timeout"
    );
    let msg = e.to_string();
    assert!(matches!(e, TalosError::Api { .. }), "{e:?}");
    assert!(msg.contains("TLS") && msg.contains("Talos CA"), "{msg}");
    assert!(msg.contains(&talos.addr().to_string()), "{msg}");
    assert_eq!(talos.count("Version"), 0, "no call may pass the handshake");
    assert_eq!(talos.count("Bootstrap"), 0);
}

#[tokio::test]
async fn server_with_a_foreign_ca_is_rejected() {
    // The node's certificate comes from another CA, but it would accept our client cert.
    let s = secrets(6);
    let other = secrets(7);
    let talos = FakeTalos::start_with_ca(&other, &s.os_ca).await;
    let (_k, ready) = kube(&s, &["n1"]).await;
    let e = bootstrap(talos.addr(), &creds(&s), &ready, &opts(1))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("TLS") && e.contains("certificate"), "{e}");
    assert_eq!(talos.count("Bootstrap"), 0);
}

#[tokio::test]
async fn reader_role_cannot_bootstrap() {
    let s = secrets(8);
    let talos = FakeTalos::start(&s).await;
    let (_k, ready) = kube(&s, &["n1"]).await;
    let leaf = talos::pki::issue_leaf(
        talos::pki::CaKind::Os,
        &s.os_ca,
        &talos::pki::LeafSpec {
            common_name: "reader".into(),
            organizations: vec!["os:reader".into()],
            sans: vec![],
            server_auth: false,
            client_auth: true,
            alg: talos::pki::KeyAlg::Ed25519,
            validity: time::Duration::days(1),
        },
        &mut rand::rngs::OsRng,
        now(),
    )
    .unwrap();
    let c = TalosClientCreds {
        ca_pem: s.os_ca.crt.clone(),
        cert_pem: leaf.crt,
        key_pem: talos::pki::PrivKey::from_pem(&leaf.key)
            .unwrap()
            .to_pkcs8_pem()
            .unwrap(),
    };
    let e = bootstrap(talos.addr(), &c, &ready, &opts(1))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("Bootstrap failed") && e.contains("PermissionDenied"),
        "{e}"
    );
    assert!(!talos.state().bootstrapped);
}

#[tokio::test]
async fn injected_bootstrap_error_is_reported_with_the_cause() {
    let s = secrets(9);
    let talos = FakeTalos::start(&s).await;
    talos.inject(
        "Bootstrap",
        Code::Internal,
        "failed to write etcd data: no space left on device",
        1,
    );
    let (_k, ready) = kube(&s, &["n1"]).await;
    let e = bootstrap(talos.addr(), &creds(&s), &ready, &opts(1))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no space left on device") && e.contains("re-run"),
        "{e}"
    );
    // Re-running after the cause is fixed succeeds and bootstraps once.
    let r = bootstrap(talos.addr(), &creds(&s), &ready, &opts(1))
        .await
        .unwrap();
    assert_eq!(r.outcome, BootstrapOutcome::Bootstrapped);
    assert!(talos.state().bootstrapped);
}

#[tokio::test]
async fn etcd_never_healthy_times_out_clearly() {
    let s = secrets(10);
    let talos = FakeTalos::start(&s).await;
    talos.state().etcd_ready_after_polls = u32::MAX;
    let (_k, ready) = kube(&s, &["n1"]).await;
    let mut o = opts(1);
    o.timeout = Duration::from_millis(800);
    let e = bootstrap(talos.addr(), &creds(&s), &ready, &o)
        .await
        .unwrap_err();
    assert!(matches!(e, TalosError::Timeout { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("etcd to become healthy") && msg.contains("Preparing"),
        "{msg}"
    );
    assert!(msg.contains("re-run"), "{msg}");
}

#[tokio::test]
async fn unresponsive_node_times_out_with_the_last_error() {
    let s = secrets(11);
    let talos = FakeTalos::start(&s).await;
    talos.delay("Version", Duration::from_secs(5));
    let (_k, ready) = kube(&s, &["n1"]).await;
    let mut o = opts(1);
    o.timeout = Duration::from_millis(1500);
    o.rpc_timeout = Duration::from_millis(300);
    let e = bootstrap(talos.addr(), &creds(&s), &ready, &o)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("timed out") && e.contains("Version"), "{e}");
    assert_eq!(talos.count("Bootstrap"), 0);
}

#[tokio::test]
async fn closed_port_times_out_naming_the_step() {
    let s = secrets(12);
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    let (_k, ready) = kube(&s, &["n1"]).await;
    let mut o = opts(1);
    o.timeout = Duration::from_millis(600);
    let e = bootstrap(addr, &creds(&s), &ready, &o)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("the Talos API to answer Version") && e.contains("cannot connect"),
        "{e}"
    );
}

#[tokio::test]
async fn missing_nodes_time_out_with_a_count() {
    let s = secrets(13);
    let talos = FakeTalos::start(&s).await;
    let (_k, ready) = kube(&s, &["shop-cp-1"]).await;
    let mut o = opts(3);
    o.timeout = Duration::from_secs(2);
    let e = bootstrap(talos.addr(), &creds(&s), &ready, &o)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("all nodes to register") && e.contains("1 of 3"),
        "{e}"
    );
}

#[tokio::test]
async fn kube_readiness_uses_the_admin_kubeconfig_and_rejects_foreign_certs() {
    let s = secrets(14);
    let (k, ready) = kube(&s, &["a", "b"]).await;
    k.state().not_ready_polls = 1;
    let e = ready.readyz().await.unwrap_err();
    assert!(
        e.contains("503") && e.contains("readyz check failed"),
        "{e}"
    );
    ready.readyz().await.unwrap();
    assert_eq!(ready.registered_nodes().await.unwrap(), vec!["a"]);
    assert_eq!(ready.registered_nodes().await.unwrap(), vec!["a", "b"]);
    // A kubeconfig from another cluster's CA fails the TLS handshake.
    let other = secrets(15);
    let kc = admin_kubeconfig(&other, "x", &k.endpoint(), &mut rand::rngs::OsRng, now()).unwrap();
    let foreign = KubeApiReadiness::from_kubeconfig(&kc).unwrap();
    assert!(foreign.readyz().await.is_err());
}

/// A `tracing` writer that keeps everything in memory.
#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn secrets_never_appear_in_logs_errors_or_reports() {
    let buf = logs();
    let s = secrets(16);
    let dir = tempfile::tempdir().unwrap();
    let id = age::x25519::Identity::generate();
    let store = talos::SecretsStore::new(dir.path(), "shop");
    let rec = talos::Recipients::parse(&[id.to_public().to_string()], "t", store.path()).unwrap();
    store.save(&s, &rec).unwrap();
    let talos_node = FakeTalos::start(&s).await;
    talos_node.state().bootstrap_not_ready = 1;
    let (_k, ready) = kube(&s, &["n1"]).await;
    let c = creds(&s);
    let report = bootstrap(talos_node.addr(), &c, &ready, &opts(1))
        .await
        .unwrap();
    let mut o = opts(1);
    o.timeout = Duration::from_millis(300);
    talos_node.state().etcd_ready_after_polls = u32::MAX;
    talos_node.state().bootstrapped = false;
    let err = bootstrap(talos_node.addr(), &c, &ready, &o)
        .await
        .unwrap_err();

    let mut out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(
        out.contains("talos bootstrap"),
        "logging must be captured: {out}"
    );
    out.push_str(&serde_json::to_string(&report).unwrap());
    out.push_str(&format!("{report:?}{err}{err:?}{s:?}{c:?}{store:?}{rec:?}"));
    let mut secrets_list: Vec<String> = s.secret_values().iter().map(|v| v.to_string()).collect();
    secrets_list.push(c.key_pem.to_string());
    for v in secrets_list {
        assert!(!out.contains(&v), "secret value leaked into logs/output");
        if let Some(line) = v.lines().nth(1) {
            assert!(!out.contains(line), "PEM key body leaked into logs/output");
        }
    }
}
