//! `provisioner up` end to end with generated Talos configs: the fake Hetzner API
//! receives the rendered configs as user data, the fake Talos API is bootstrapped
//! exactly once across runs, and `kubeconfig`/`talosconfig` produce usable files.
//! No secret reaches output, logs or a plaintext file. Needs the Talos config
//! schemas in `../shared/talos-config-schema` (skips with a notice otherwise).

use provisioner::{Capture, Env};
use shopedge_tests::hetzner_fake::{self as fake, Config, FakeHetzner};
use shopedge_tests::talos_fake::{FakeKube, FakeTalos};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// Everything logged by this test binary (global subscriber, installed first).
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

fn logs() -> &'static Buf {
    static LOGS: OnceLock<Buf> = OnceLock::new();
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

fn schema_dir() -> Option<PathBuf> {
    shopedge_tests::shared_data::shared_dir(
        "talos-config-schema",
        "provisioner up with generated Talos configs",
    )
}

fn spec(endpoint: &str, schema: &Path, talos_version: &str) -> String {
    let patches = shopedge_tests::shared_data::repo_root().join("infra/talos");
    format!(
        r#"name = "shop"
location = "hil"

[control_plane]
count = 1
server_type = "cpx21"

[[worker_pools]]
name = "default"
count = 1
server_type = "cpx31"

[[worker_pools]]
name = "edge"
count = 1
server_type = "cpx31"
labels = {{ "shopedge.io/pool" = "edge" }}
taints = ["dedicated=edge:NoSchedule"]

[image]
selector = "os=talos"

[firewall]
admin_sources = ["2001:db8::/32"]

[machine_config.generated]
talos_version = "{talos_version}"
endpoint = "{endpoint}"
schema_dir = {schema:?}
patch_dir = {patches:?}
"#,
        schema = schema.display().to_string(),
        patches = patches.display().to_string(),
    )
}

struct World {
    hetzner: FakeHetzner,
    dir: tempfile::TempDir,
    identity: String,
    recipient: String,
    out: Capture,
    err: Capture,
}

impl World {
    async fn new() -> World {
        logs();
        let hetzner = FakeHetzner::start(Config::default()).await.unwrap();
        hetzner.add_image("talos", &[("os", "talos"), ("version", "v1.13.9")]);
        let id = age::x25519::Identity::generate();
        World {
            hetzner,
            dir: tempfile::tempdir().unwrap(),
            identity: talos::SecretsStore::identity_to_string(&id).to_string(),
            recipient: id.to_public().to_string(),
            out: Capture::default(),
            err: Capture::default(),
        }
    }

    fn write_spec(&self, text: &str) {
        std::fs::write(self.dir.path().join("cluster.toml"), text).unwrap();
    }

    fn env(&self) -> Env {
        let mut env = Env::empty(self.dir.path())
            .var("HCLOUD_TOKEN", fake::TOKEN)
            .var("HCLOUD_ENDPOINT", &self.hetzner.url())
            .var("SHOPEDGE_AGE_RECIPIENTS", &self.recipient)
            .var("SHOPEDGE_AGE_IDENTITY", &self.identity);
        env.time_scale = 0.01;
        env
    }

    async fn run_env(&self, env: Env, args: &[&str]) -> (i32, String, String) {
        let (out, err) = (Capture::default(), Capture::default());
        let argv: Vec<String> = std::iter::once("provisioner")
            .chain(args.iter().copied())
            .map(String::from)
            .collect();
        let code = provisioner::run(argv, env, out.sink(), err.sink()).await;
        let (o, e) = (out.text(), err.text());
        // Everything printed is kept for the secrets scan.
        for (all, t) in [(&self.out, &o), (&self.err, &e)] {
            all.0.lock().unwrap().extend_from_slice(t.as_bytes());
        }
        (code, o, e)
    }

    fn secrets_path(&self) -> PathBuf {
        self.dir
            .path()
            .join("infra/clusters/shop/talos-secrets.age")
    }

    fn bundle(&self) -> talos::SecretsBundle {
        let store = talos::SecretsStore::new(self.dir.path(), "shop");
        let ids = talos::Identities::parse(&self.identity, "test", store.path()).unwrap();
        store.load(&ids).unwrap()
    }
}

/// Secret material of a bundle: tokens, and each base64 line of the private keys.
fn secret_needles(b: &talos::SecretsBundle) -> Vec<String> {
    let mut v = vec![
        b.cluster_secret.clone(),
        b.bootstrap_token.clone(),
        b.secretbox_encryption_secret.clone(),
        b.trustd_token.clone(),
    ];
    for pem in [
        &b.os_ca.key,
        &b.k8s_ca.key,
        &b.k8s_aggregator_ca.key,
        &b.etcd_ca.key,
        &b.service_account_key,
    ] {
        v.extend(
            pem.lines()
                .filter(|l| !l.starts_with("-----") && l.len() >= 16)
                .map(String::from),
        );
    }
    v.retain(|s| s.len() >= 8);
    v
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn up_renders_configs_bootstraps_once_and_writes_client_configs() {
    let Some(schema) = schema_dir() else { return };
    let w = World::new().await;

    // 1. The secrets bundle is generated (age-encrypted) before anything is sent:
    //    without a Hetzner token `up` stops after that, with no request made.
    w.write_spec(&spec("https://127.0.0.1:1", &schema, "v1.13.9"));
    let mut no_token = w.env();
    no_token.vars.remove("HCLOUD_TOKEN");
    let (code, _, err) = w.run_env(no_token, &["up"]).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("HCLOUD_TOKEN"), "{err}");
    assert!(w.hetzner.exchanges().is_empty());
    let enc = std::fs::read(w.secrets_path()).unwrap();
    assert!(enc.starts_with(b"age-encryption.org/v1") || enc.starts_with(b"-----BEGIN AGE"));
    let bundle = w.bundle();

    // 2. The fakes trust the cluster's CAs; the configs point at the fake API server.
    let talos_api = FakeTalos::start(&bundle).await;
    talos_api.state().etcd_ready_after_polls = 2;
    let kube = FakeKube::start(&bundle).await;
    {
        let mut st = kube.state();
        st.not_ready_polls = 1;
        st.pending_nodes = ["shop-cp-1", "shop-w-default-1", "shop-w-edge-1"]
            .map(String::from)
            .into();
    }
    w.write_spec(&spec(&kube.endpoint(), &schema, "v1.13.9"));
    let env = w
        .env()
        .var("SHOPEDGE_TALOS_ENDPOINT", &talos_api.addr().to_string());

    let (code, out, err) = w.run_env(env.clone(), &["up"]).await;
    assert_eq!(code, 0, "up failed:\n{out}\n{err}");
    assert_eq!(talos_api.count("Bootstrap"), 1);
    assert!(err.contains("Bootstrapped"), "{err}");

    // Each server got its role's config (the edge pool with its label and taint).
    let servers = w
        .hetzner
        .with(|st| st.servers.values().cloned().collect::<Vec<_>>());
    assert_eq!(servers.len(), 3);
    for s in &servers {
        let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&s.user_data)
            .map(|d| serde::Deserialize::deserialize(d).unwrap())
            .collect();
        let main = docs
            .iter()
            .find(|d| d.get("machine").is_some())
            .unwrap_or_else(|| panic!("{}: no v1alpha1 document", s.name));
        let want = if s.name.contains("-cp-") {
            "controlplane"
        } else {
            "worker"
        };
        assert_eq!(main["machine"]["type"], want, "{}", s.name);
        assert_eq!(main["cluster"]["clusterName"], "shop");
        assert_eq!(
            main["cluster"]["controlPlane"]["endpoint"].as_str(),
            Some(kube.endpoint().as_str())
        );
        assert!(s.user_data.len() < 32 * 1024);
        talos::validate_config(&s.user_data, "v1.13.9", &schema).unwrap();
        let labels = &main["machine"]["nodeLabels"];
        let taints = &main["machine"]["nodeTaints"];
        if s.name.contains("-w-edge-") {
            assert_eq!(labels["shopedge.io/pool"], "edge", "{}", s.name);
            assert_eq!(taints["dedicated"], "edge:NoSchedule", "{}", s.name);
        } else {
            assert!(labels.get("shopedge.io/pool").is_none(), "{}", s.name);
        }
    }

    // 3. A second `up` changes nothing at Hetzner and does not bootstrap again.
    w.hetzner.clear_log();
    {
        let mut st = kube.state();
        st.pending_nodes.clear();
        st.nodes = ["shop-cp-1", "shop-w-default-1", "shop-w-edge-1"]
            .map(String::from)
            .into();
    }
    let (code, out, err) = w.run_env(env.clone(), &["up"]).await;
    assert_eq!(code, 0, "second up failed:\n{out}\n{err}");
    assert!(out.contains("up to date"), "{out}");
    let mutations: Vec<_> = w
        .hetzner
        .exchanges()
        .into_iter()
        .filter(|x| x.mutating)
        .collect();
    assert!(mutations.is_empty(), "{mutations:?}");
    assert_eq!(talos_api.count("Bootstrap"), 1, "bootstrapped twice");

    // 4. Client configs: files with mode 0600 that work against the (fake) APIs.
    let (code, out, err) = w
        .run_env(env.clone(), &["kubeconfig", "--out", "kubeconfig"])
        .await;
    assert_eq!(code, 0, "{out}{err}");
    let kc_path = w.dir.path().join("kubeconfig");
    assert_eq!(mode(&kc_path), 0o600);
    let kc = std::fs::read_to_string(&kc_path).unwrap();
    let v: serde_yaml::Value = serde_yaml::from_str(&kc).unwrap();
    assert_eq!(
        v["clusters"][0]["cluster"]["server"].as_str(),
        Some(kube.endpoint().as_str())
    );
    let before = kube.state().requests.len();
    let r = talos::KubeApiReadiness::from_kubeconfig(&kc).unwrap();
    talos::K8sReadiness::readyz(&r).await.unwrap();
    assert!(kube.state().requests.len() > before);

    let (code, out, err) = w
        .run_env(env.clone(), &["talosconfig", "--out", "talosconfig"])
        .await;
    assert_eq!(code, 0, "{out}{err}");
    let tc_path = w.dir.path().join("talosconfig");
    assert_eq!(mode(&tc_path), 0o600);
    let tc: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&tc_path).unwrap()).unwrap();
    let cp = servers.iter().find(|s| s.name == "shop-cp-1").unwrap();
    let ctx = &tc["contexts"]["shop"];
    assert_eq!(ctx["endpoints"][0].as_str(), cp.ipv6.as_deref());
    assert!(ctx["crt"].as_str().is_some_and(|c| !c.is_empty()));

    // 5. No secret of the bundle (nor the age identity) in output, logs or any file.
    let mut needles = secret_needles(&bundle);
    needles.push(w.identity.trim().to_string());
    let logged = String::from_utf8_lossy(&logs().0.lock().unwrap()).into_owned();
    let printed = format!("{}{}", w.out.text(), w.err.text());
    for n in &needles {
        assert!(!printed.contains(n.as_str()), "a secret was printed");
        assert!(!logged.contains(n.as_str()), "a secret was logged");
    }
    for f in files(w.dir.path()) {
        let text = String::from_utf8_lossy(&std::fs::read(&f).unwrap()).into_owned();
        for n in &needles {
            assert!(
                !text.contains(n.as_str()),
                "a secret is in plaintext in {}",
                f.display()
            );
        }
    }
}

#[tokio::test]
async fn generated_config_problems_stop_up_before_any_hetzner_request() {
    let Some(schema) = schema_dir() else { return };
    let w = World::new().await;

    // A Talos version without a schema names the directory.
    w.write_spec(&spec("https://[2001:db8::10]:6443", &schema, "v1.2.3"));
    let (code, _, err) = w.run_env(w.env(), &["up"]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("v1.2.3") && err.contains("talos-config-schema"),
        "{err}"
    );
    assert!(
        !w.secrets_path().exists(),
        "nothing written before the schema check"
    );

    // A bad endpoint.
    w.write_spec(&spec("http://api.example.com", &schema, "v1.13.9"));
    let (code, _, err) = w.run_env(w.env(), &["up"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("https://"), "{err}");

    // The bundle exists but no identity is given.
    w.write_spec(&spec("https://[2001:db8::10]:6443", &schema, "v1.13.9"));
    assert!(
        w.secrets_path().is_file(),
        "earlier runs created the bundle"
    );
    let mut env = w.env();
    env.vars.remove("SHOPEDGE_AGE_IDENTITY");
    let (code, _, err) = w.run_env(env, &["up"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("SHOPEDGE_AGE_IDENTITY"), "{err}");
    assert!(err.contains("talos-secrets.age"), "{err}");

    // A wrong identity.
    let other = age::x25519::Identity::generate();
    let env = w.env().var(
        "SHOPEDGE_AGE_IDENTITY",
        &talos::SecretsStore::identity_to_string(&other),
    );
    let (code, _, err) = w.run_env(env, &["up"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("talos-secrets.age"), "{err}");

    assert!(
        w.hetzner.exchanges().is_empty(),
        "nothing is sent before the configs are generated and validated"
    );

    // `plan` is read-only: it does not create a bundle.
    let w2 = World::new().await;
    w2.write_spec(&spec("https://[2001:db8::10]:6443", &schema, "v1.13.9"));
    let mut env = w2.env();
    env.vars.remove("HCLOUD_TOKEN");
    let (code, out, err) = w2.run_env(env, &["plan"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("provisional"), "{out}");
    assert!(!w2.secrets_path().exists());

    // Client configs need the bundle.
    let (code, _, err) = w2.run_env(w2.env(), &["kubeconfig"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("provisioner up"), "{err}");
}
