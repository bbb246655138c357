//! `provisioner up` end to end with generated Talos configs: the fake Hetzner API
//! receives the rendered configs as user data, the fake Talos API is bootstrapped
//! exactly once across runs, and `kubeconfig`/`talosconfig` produce usable files.
//! With `[tunnel]` and `[platform]` in the spec, `up` goes on to the fake
//! Cloudflare API and the fake Kubernetes API (HTTPS with a serving certificate
//! from the cluster's Kubernetes CA, so the admin kubeconfig `up` issues is
//! verified as against a real cluster), then locks the firewall; `status` reads
//! all of it back. No secret reaches output, logs or a plaintext file. Needs the
//! Talos config schemas in `../shared/talos-config-schema` (skips with a notice
//! otherwise).

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

/// The secrets bundle of a fresh world (created by an `up` without a token,
/// which stops before any Hetzner request), with the spec at `talos_version`.
async fn world_with_bundle(schema: &Path, talos_version: &str) -> (World, talos::SecretsBundle) {
    let w = World::new().await;
    w.write_spec(&spec("https://127.0.0.1:1", schema, talos_version));
    let mut no_token = w.env();
    no_token.vars.remove("HCLOUD_TOKEN");
    let (code, _, err) = w.run_env(no_token, &["up"]).await;
    assert_eq!(code, 1, "{err}");
    let bundle = w.bundle();
    (w, bundle)
}

#[tokio::test]
async fn up_checks_the_node_talos_version_against_the_spec() {
    let Some(schema) = schema_dir() else { return };
    let (w, bundle) = world_with_bundle(&schema, "v1.13.9").await;
    let talos_api = FakeTalos::start(&bundle).await;
    let kube = FakeKube::start(&bundle).await;
    kube.state().pending_nodes = ["shop-cp-1", "shop-w-default-1", "shop-w-edge-1"]
        .map(String::from)
        .into();
    w.write_spec(&spec(&kube.endpoint(), &schema, "v1.13.9"));
    let env = w
        .env()
        .var("SHOPEDGE_TALOS_ENDPOINT", &talos_api.addr().to_string());

    // Another minor release on the node: an error naming both and the fix, no Bootstrap.
    talos_api.state().version = "v1.14.0".into();
    let (code, out, err) = w.run_env(env.clone(), &["up"]).await;
    assert_eq!(code, 1, "{out}\n{err}");
    for want in ["v1.14.0", "v1.13.9", "talos_version", "image"] {
        assert!(err.contains(want), "expected `{want}` in: {err}");
    }
    assert_eq!(talos_api.count("Bootstrap"), 0);

    // A patch-level difference: a warning line, and the bootstrap goes on.
    talos_api.state().version = "v1.13.8".into();
    let (code, out, err) = w.run_env(env, &["up"]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    let warning = err
        .lines()
        .find(|l| l.contains("warning:"))
        .unwrap_or_else(|| panic!("no warning line in: {err}"));
    assert!(
        warning.contains("v1.13.8") && warning.contains("v1.13.9"),
        "{warning}"
    );
    assert_eq!(talos_api.count("Bootstrap"), 1);
}

#[tokio::test]
async fn up_with_talos_v1_14_sends_multi_document_configs() {
    const V1_14: &str = "v1.14.0-rc.1";
    let Some(schema) = schema_dir() else { return };
    let (w, bundle) = world_with_bundle(&schema, V1_14).await;
    let talos_api = FakeTalos::start(&bundle).await;
    talos_api.state().version = V1_14.into();
    let kube = FakeKube::start(&bundle).await;
    kube.state().pending_nodes = ["shop-cp-1", "shop-w-default-1", "shop-w-edge-1"]
        .map(String::from)
        .into();
    w.write_spec(&spec(&kube.endpoint(), &schema, V1_14));
    let env = w
        .env()
        .var("SHOPEDGE_TALOS_ENDPOINT", &talos_api.addr().to_string());
    let (code, out, err) = w.run_env(env, &["up"]).await;
    assert_eq!(code, 0, "up failed:\n{out}\n{err}");
    assert!(!err.contains("warning:"), "{err}");
    assert_eq!(talos_api.count("Bootstrap"), 1);
    let servers = w
        .hetzner
        .with(|st| st.servers.values().cloned().collect::<Vec<_>>());
    assert_eq!(servers.len(), 3);
    for s in &servers {
        assert!(s.user_data.len() < 32 * 1024, "{}", s.name);
        talos::validate_config(&s.user_data, V1_14, &schema).unwrap();
        let docs = talos::render::split_docs(&s.user_data).unwrap();
        let node = docs
            .iter()
            .find(|d| d["kind"] == "KubeNodeConfig")
            .unwrap_or_else(|| panic!("{}: no KubeNodeConfig", s.name));
        let cluster = docs
            .iter()
            .find(|d| d["kind"] == "KubeClusterConfig")
            .unwrap();
        assert_eq!(cluster["endpoint"].as_str(), Some(kube.endpoint().as_str()));
        if s.name.contains("-w-edge-") {
            assert_eq!(node["labels"]["shopedge.io/pool"], "edge", "{}", s.name);
            assert_eq!(node["taints"]["dedicated"], "edge:NoSchedule", "{}", s.name);
        }
        // The v1.14 patch overlay was used (the v1.13 kubelet patch would not validate).
        if s.name.contains("-w-") {
            let kubelet = docs.iter().find(|d| d["kind"] == "KubeletConfig").unwrap();
            assert_eq!(
                kubelet["config"]["shutdownGracePeriod"], "30s",
                "{}",
                s.name
            );
        }
    }
}

// ------------------------------------------------------------------ the whole `up`

use shopedge_tests::cloudflare_fake::{FakeCloudflare, Scope};
use shopedge_tests::kube_fake::{KubeFake, Recorded, Rollout, ServingTls};
use tunnel::secrets::{AgeKeys, SecretsFile};

const CF_ACCOUNT: &str = "0123456789abcdef0123456789abcdef";
const CF_TOKEN: &str = "cf-api-token-e2e-7d41c0a9b3f2";
const B2_KEY_ID: &str = "0041b2e2ekeyid000000000007";
const B2_APP_KEY: &str = "K004b2e2eapplicationkey00000000000";

const TUNNEL_SPEC: &str = r#"
cluster = "shop"
zone = "example.com"
environment = "production"

[medusa]
hostname = "medusa-origin.example.com"
namespace = "shop"
service = "medusa"
port = 9000

[postgres]
hostname = "pg-origin.example.com"
namespace = "data"
service = "pg-rw"
port = 5432

[hyperdrive]
name = "shop-pg"
database = "medusa"
user = "medusa"
"#;

fn platform_spec(endpoint: &str, schema: &Path, infra: &Path) -> String {
    format!(
        "{}\n[tunnel]\nspec = \"tunnel.toml\"\n\n[platform]\nrepo_url = \"https://github.com/example/shop-fork\"\nrevision = \"v1.2.3\"\nenvironment = \"production\"\ninfra_dir = {:?}\n",
        spec(endpoint, schema, "v1.13.9"),
        infra.display().to_string()
    )
}

/// A cluster world: the fakes of every API `up` talks to.
struct Full {
    w: World,
    cf: FakeCloudflare,
    talos: FakeTalos,
    kube: KubeFake,
    bundle: talos::SecretsBundle,
}

const NODES: [(&str, bool); 3] = [
    ("shop-cp-1", true),
    ("shop-w-default-1", false),
    ("shop-w-edge-1", false),
];

impl Full {
    /// Generates the Talos secrets (a first `up` without a Hetzner token stops
    /// right after that), then starts the fakes trusting the cluster's CAs.
    async fn start(schema: &Path, infra: &Path, b2: bool) -> Full {
        let w = World::new().await;
        std::fs::write(w.dir.path().join("tunnel.toml"), TUNNEL_SPEC).unwrap();
        w.write_spec(&platform_spec("https://127.0.0.1:1", schema, infra));
        let mut no_token = w.env();
        no_token.vars.remove("HCLOUD_TOKEN");
        let (code, _, err) = w.run_env(no_token, &["up"]).await;
        assert_eq!(code, 1, "{err}");
        assert!(err.contains("HCLOUD_TOKEN"), "{err}");
        let bundle = w.bundle();
        let talos = FakeTalos::start(&bundle).await;
        let kube = KubeFake::start_tls_with(&ServingTls::from_talos_bundle(&bundle)).await;
        for (n, cp) in NODES {
            kube.add_node(n, true, cp);
        }
        let cf = FakeCloudflare::start().await.unwrap();
        {
            let mut st = cf.state();
            st.add_account_token(CF_ACCOUNT, CF_TOKEN, Scope::ALL);
            st.add_zone(CF_ACCOUNT, "example.com");
        }
        w.write_spec(&platform_spec(&kube.url(), schema, infra));
        if b2 {
            let f = Full::secrets_file(&w);
            let keys = Full::keys(&w);
            let mut map = f.load_or_empty(&keys).unwrap();
            map.insert(
                "PROVISION_B2_KEY_ID".into(),
                tunnel::SecretString::new(B2_KEY_ID),
            );
            map.insert(
                "PROVISION_B2_APPLICATION_KEY".into(),
                tunnel::SecretString::new(B2_APP_KEY),
            );
            f.save(&keys, &map).unwrap();
        }
        Full {
            w,
            cf,
            talos,
            kube,
            bundle,
        }
    }

    fn secrets_file(w: &World) -> SecretsFile {
        SecretsFile::for_env(w.dir.path(), "production")
    }

    fn keys(w: &World) -> AgeKeys {
        let vars = w.env().vars;
        AgeKeys::load(&|k: &str| vars.get(k).cloned(), w.dir.path()).unwrap()
    }

    fn env(&self) -> Env {
        self.w
            .env()
            .var("SHOPEDGE_TALOS_ENDPOINT", &self.talos.addr().to_string())
            .var("CLOUDFLARE_API_TOKEN", CF_TOKEN)
            .var("CLOUDFLARE_ACCOUNT_ID", CF_ACCOUNT)
            .var("CLOUDFLARE_API_BASE_URL", &self.cf.base_url())
    }

    async fn run(&self, args: &[&str]) -> (i32, String, String) {
        self.w.run_env(self.env(), args).await
    }

    /// The tunnel token Cloudflare hands out for the (only) tunnel.
    async fn tunnel_token(&self) -> String {
        let id = self.cf.state().live_tunnels()[0].id.clone();
        let v: serde_json::Value = reqwest::Client::new()
            .get(format!(
                "{}accounts/{CF_ACCOUNT}/cfd_tunnel/{id}/token",
                self.cf.base_url()
            ))
            .bearer_auth(CF_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["result"].as_str().unwrap().to_string()
    }
}

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn first_patch(reqs: &[Recorded], path_part: &str) -> u64 {
    reqs.iter()
        .find(|r| r.method == "PATCH" && r.path.contains(path_part))
        .unwrap_or_else(|| panic!("no PATCH of {path_part}"))
        .seq
}

fn last_patch(reqs: &[Recorded], path_part: &str) -> u64 {
    reqs.iter()
        .rev()
        .find(|r| r.method == "PATCH" && r.path.contains(path_part))
        .unwrap_or_else(|| panic!("no PATCH of {path_part}"))
        .seq
}

fn repo_infra() -> PathBuf {
    shopedge_tests::shared_data::repo_root().join("infra")
}

#[tokio::test]
async fn up_runs_hetzner_talos_tunnel_platform_lockdown_in_order_and_again_as_a_no_op() {
    let Some(schema) = schema_dir() else { return };
    let c = Full::start(&schema, &repo_infra(), true).await;
    let w = &c.w;

    // 1. The whole sequence.
    let (code, out, err) = c.run(&["up"]).await;
    assert_eq!(code, 0, "up failed:\n{out}\n{err}");
    assert_eq!(c.talos.count("Bootstrap"), 1);

    let hetzner = w.hetzner.exchanges();
    let is_lockdown = |x: &fake::Exchange| x.path.contains("/firewalls/") && x.mutating;
    let hetzner_build = hetzner
        .iter()
        .filter(|x| x.mutating && !is_lockdown(x))
        .map(|x| x.seq)
        .max()
        .expect("Hetzner resources created");
    let set_rules = hetzner
        .iter()
        .find(|x| x.path.ends_with("/actions/set_rules"))
        .expect("lockdown set the firewall rules");
    let bootstrap = c
        .talos
        .calls()
        .iter()
        .find(|x| x.method == "Bootstrap")
        .map(|x| x.seq)
        .unwrap();
    let cf_log = c.cf.log();
    let cf_first = cf_log
        .iter()
        .filter(|l| l.is_mutating())
        .map(|l| l.seq)
        .min()
        .unwrap();
    let cf_last = cf_log.iter().map(|l| l.seq).max().unwrap();
    assert!(
        cf_log.iter().any(|l| l.path.contains("/token")),
        "tunnel token read"
    );
    let reqs = c.kube.requests();
    let cilium = first_patch(&reqs, "/daemonsets/cilium");
    let cilium_ready = reqs
        .iter()
        .rev()
        .find(|r| r.method == "GET" && r.path.ends_with("/daemonsets/cilium"))
        .unwrap()
        .seq;
    let ccm = first_patch(&reqs, "/deployments/hcloud-cloud-controller-manager");
    let csi = first_patch(&reqs, "/storageclasses/hcloud-volumes");
    let cloudflared = first_patch(&reqs, "/namespaces/cloudflared/");
    let argocd = first_patch(&reqs, "/customresourcedefinitions/applications.argoproj.io");
    let root = last_patch(&reqs, "/namespaces/argocd/applications/root");
    let order = [
        ("Hetzner", hetzner_build),
        ("Talos Bootstrap", bootstrap),
        ("Cloudflare first change", cf_first),
        ("Cloudflare last request", cf_last),
        ("Cilium", cilium),
        ("Cilium ready", cilium_ready),
        ("CCM", ccm),
        ("CSI", csi),
        ("cloudflared", cloudflared),
        ("Argo CD", argocd),
        ("root Application", root),
        ("lockdown", set_rules.seq),
    ];
    for pair in order.windows(2) {
        assert!(
            pair[0].1 < pair[1].1,
            "{} must come before {}",
            pair[0].0,
            pair[1].0
        );
    }
    // Every Kubernetes write is a server-side apply by `provisioner`, unforced.
    let patches: Vec<_> = reqs.iter().filter(|r| r.method == "PATCH").collect();
    assert!(patches.len() > 60, "{}", patches.len());
    for r in &patches {
        assert_eq!(
            r.content_type.as_deref(),
            Some("application/apply-patch+yaml")
        );
        assert_eq!(
            r.param("fieldManager").as_deref(),
            Some("provisioner"),
            "{}",
            r.path
        );
        assert_eq!(r.param("force"), None, "{}", r.path);
    }
    assert!(!reqs.iter().any(|r| r.is_mutation() && r.method != "PATCH"));
    // The firewall is locked: no inbound rule but ICMP.
    let fw = w
        .hetzner
        .with(|st| st.firewalls.values().next().cloned())
        .unwrap();
    assert_eq!(
        fw.labels.get("firewall-phase").map(String::as_str),
        Some("locked")
    );
    assert!(
        fw.rules.iter().all(|r| r["protocol"] == "icmp"),
        "{:?}",
        fw.rules
    );

    // What went in: the tunnel token, the HCLOUD token and network, the repo.
    let token = c.tunnel_token().await;
    let cf_secret = c
        .kube
        .object("", "secrets", "cloudflared", "cloudflared-token")
        .unwrap();
    assert_eq!(
        cf_secret["data"]["token"].as_str(),
        Some(b64(&token).as_str())
    );
    let hc = c
        .kube
        .object("", "secrets", "kube-system", "hcloud")
        .unwrap();
    assert_eq!(
        hc["data"]["token"].as_str(),
        Some(b64(fake::TOKEN).as_str())
    );
    assert_eq!(hc["data"]["network"].as_str(), Some(b64("shop").as_str()));
    let app = c
        .kube
        .object("argoproj.io", "applications", "argocd", "root")
        .unwrap();
    assert_eq!(
        app["spec"]["source"]["repoURL"],
        "https://github.com/example/shop-fork"
    );
    assert_eq!(app["spec"]["source"]["targetRevision"], "v1.2.3");
    assert_eq!(
        app["spec"]["source"]["path"],
        "infra/argocd/overlays/production"
    );
    // Generated inputs persist (encrypted) and are what the cluster got.
    let stored = Full::secrets_file(w).load(&Full::keys(w)).unwrap();
    let pg = stored
        .get("PROVISION_POSTGRES_PASSWORD")
        .expect("generated")
        .expose()
        .to_string();
    assert_eq!(pg.len(), 64);
    let db = c.kube.object("", "secrets", "shop", "medusa-db").unwrap();
    assert_eq!(db["data"]["password"].as_str(), Some(b64(&pg).as_str()));
    assert!(
        err.contains("generated") && err.contains("PROVISION_REDIS_PASSWORD"),
        "{err}"
    );
    assert!(
        out.contains("Platform: ") && out.contains("all ready"),
        "{out}"
    );
    assert!(out.contains("Firewall shop locked"), "{out}");
    assert!(
        err.contains("… platform cilium") && err.contains("✓ platform root-app ready"),
        "{err}"
    );

    // 2. Again, with the firewall locked: a kubeconfig that reaches the API is
    //    passed explicitly. Nothing changes anywhere; the applies are sent
    //    (server-side apply of identical objects changes nothing).
    let (code, o, e) = c.run(&["kubeconfig", "--out", "kc.yaml"]).await;
    assert_eq!(code, 0, "{o}{e}");
    w.hetzner.clear_log();
    c.cf.clear_log();
    c.kube.clear_requests();
    let mutations = c.kube.mutations();
    let objects = c.kube.object_count();
    let (code, out, err) = c.run(&["up", "--kubeconfig", "kc.yaml"]).await;
    assert_eq!(code, 0, "second up failed:\n{out}\n{err}");
    let hz: Vec<_> = w
        .hetzner
        .exchanges()
        .into_iter()
        .filter(|x| x.mutating)
        .collect();
    assert!(hz.is_empty(), "Hetzner changes: {hz:?}");
    assert!(
        c.cf.mutating().is_empty(),
        "Cloudflare changes: {:?}",
        c.cf.mutating()
    );
    assert_eq!(c.kube.mutations(), mutations, "Kubernetes objects changed");
    assert_eq!(c.kube.object_count(), objects);
    assert_eq!(
        c.kube
            .requests()
            .iter()
            .filter(|r| r.method == "PATCH")
            .count(),
        patches.len()
    );
    assert_eq!(c.talos.count("Bootstrap"), 1, "bootstrapped twice");
    assert!(out.contains("is up to date"), "{out}");
    assert!(out.contains("Tunnel shop-tunnel: up to date."), "{out}");
    assert!(out.contains("Platform: up to date"), "{out}");
    assert!(out.contains("already locked"), "{out}");
    assert!(!err.contains("generated"), "nothing generated twice: {err}");

    // 3. Locked, without a way in: the Kubernetes step is skipped and says how.
    c.kube.clear_requests();
    let (code, out, err) = c.run(&["up", "-o", "json"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(c.kube.requests().is_empty());
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["platform"].is_null());
    assert!(v["skipped"].to_string().contains("--kubeconfig"), "{v}");
    assert_eq!(v["tunnel"]["actions"].as_array().map(Vec::len), Some(0));
    assert_eq!(v["lockdown"]["changed"], false);

    // 4. status: nodes, rollouts, Argo CD applications, cloudflared and the
    //    tunnel's connections as Cloudflare reports them.
    c.cf.state().tunnels[0].connections = 4;
    c.kube.seed(serde_json::json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": "postgres", "namespace": "argocd"},
        "spec": {"project": "platform", "destination": {"namespace": "data"}, "source": {"repoURL": "r", "path": "p"}},
        "status": {"sync": {"status": "Synced", "revision": "abc123"}, "health": {"status": "Healthy"}}}),
        "argocd-application-controller");
    let (code, out, err) = c.run(&["status", "--kubeconfig", "kc.yaml"]).await;
    assert_eq!(code, 0, "{out}{err}");
    for want in [
        "firewall shop (",
        "node shop-cp-1 Ready control-plane v1.34.1",
        "node shop-w-edge-1 Ready worker",
        "add-on cilium DaemonSet kube-system/cilium rolled out (3/3 ready)",
        "add-on hcloud-ccm Deployment kube-system/hcloud-cloud-controller-manager rolled out",
        "application postgres Synced Healthy at abc123",
        "application root Unknown Unknown",
        "cloudflared 2/2 ready",
        "Tunnel shop-tunnel healthy (4 connections to Cloudflare), in sync",
    ] {
        assert!(out.contains(want), "want {want:?} in\n{out}");
    }
    let (code, out, err) = c
        .run(&["status", "--kubeconfig", "kc.yaml", "-o", "json"])
        .await;
    assert_eq!(code, 0, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let k = &v["kubernetes"];
    assert_eq!(k["nodes"].as_array().map(Vec::len), Some(3));
    assert!(k["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .all(|n| n["ready"] == true));
    let addons = k["addons"].as_array().unwrap();
    assert!(addons
        .iter()
        .any(|a| a["addon"] == "argocd" && a["rollout"]["ready"] == true));
    assert!(addons.iter().all(|a| a["rollout"]["ready"] == true));
    let apps = k["applications"].as_array().unwrap();
    assert!(apps
        .iter()
        .any(|a| a["name"] == "postgres" && a["health"] == "Healthy"));
    assert_eq!(k["cloudflared"]["desired"], 2);
    assert_eq!(v["tunnel"]["connections"], 4);
    assert_eq!(v["tunnel"]["pending"].as_array().map(Vec::len), Some(0));
    // Without a kubeconfig, a locked cluster is not read (and says why).
    let (code, out, _) = c.run(&["status"]).await;
    assert_eq!(code, 0);
    assert!(
        out.contains("Kubernetes: not read (the firewall is locked"),
        "{out}"
    );

    // 5. Bad kubeconfigs name the problem; nothing reaches the server.
    c.kube.clear_requests();
    let old = talos::admin_kubeconfig(
        &c.bundle,
        "shop",
        &c.kube.url(),
        &mut rand::rngs::OsRng,
        time::OffsetDateTime::now_utc() - time::Duration::days(400),
    )
    .unwrap();
    std::fs::write(w.dir.path().join("old.yaml"), old.as_str()).unwrap();
    let (code, out, err) = c.run(&["status", "--kubeconfig", "old.yaml"]).await;
    assert_eq!(code, 1);
    assert!(
        out.contains("expired") && err.contains("provisioner kubeconfig"),
        "{out}\n{err}"
    );
    assert!(c.kube.requests().is_empty());
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = format!("https://{}", l.local_addr().unwrap());
    drop(l);
    let kc = std::fs::read_to_string(w.dir.path().join("kc.yaml")).unwrap();
    std::fs::write(
        w.dir.path().join("gone.yaml"),
        kc.replace(&c.kube.url(), &closed),
    )
    .unwrap();
    let (code, out, err) = c.run(&["status", "--kubeconfig", "gone.yaml"]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains(&closed) && err.contains("unreachable"),
        "{out}\n{err}"
    );

    // 6. No secret in any output, log or plaintext file.
    let mut needles = secret_needles(&c.bundle);
    needles.push(w.identity.trim().to_string());
    needles.extend([
        CF_TOKEN.to_string(),
        fake::TOKEN.to_string(),
        B2_APP_KEY.to_string(),
    ]);
    needles.extend([
        token.clone(),
        b64(&token),
        b64(B2_APP_KEY),
        b64(fake::TOKEN),
    ]);
    for (name, v) in &stored {
        if name.ends_with("_USER") {
            continue; // user names, not secrets
        }
        needles.push(v.expose().to_string());
        needles.push(b64(v.expose()));
    }
    let logged = String::from_utf8_lossy(&logs().0.lock().unwrap()).into_owned();
    assert!(
        logged.contains("create tunnel shop-tunnel"),
        "the log capture sees this test's steps"
    );
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
async fn rollout_that_never_becomes_ready_stops_up_naming_the_object_and_keeps_the_firewall_open() {
    let Some(schema) = schema_dir() else { return };
    let c = Full::start(&schema, &repo_infra(), true).await;
    c.kube.set_rollout(
        "Deployment",
        "kube-system",
        "hcloud-cloud-controller-manager",
        Rollout::Never,
    );
    // Readiness timeouts scale with time_scale: the CCM step's 600 s become 1.2 s.
    let mut env = c.env();
    env.time_scale = 0.002;
    let started = std::time::Instant::now();
    let (code, out, err) = c.w.run_env(env, &["up"]).await;
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    assert!(
        err.contains("Deployment kube-system/hcloud-cloud-controller-manager: not ready after")
            && err.contains("ProgressDeadlineExceeded"),
        "{err}"
    );
    assert!(
        err.contains("waiting for Deployment kube-system/hcloud-cloud-controller-manager"),
        "{err}"
    );
    let reqs = c.kube.requests();
    assert!(reqs
        .iter()
        .any(|r| r.method == "PATCH" && r.path.contains("/daemonsets/cilium")));
    assert!(
        !reqs.iter().any(|r| r.method == "PATCH"
            && (r.path.contains("/namespaces/cloudflared/") || r.path.contains("argoproj.io"))),
        "nothing after the failed step is applied"
    );
    assert!(
        !c.w.hetzner
            .exchanges()
            .iter()
            .any(|x| x.path.ends_with("/actions/set_rules")),
        "lockdown must not run after a failure"
    );
    // status (not locked: the admin kubeconfig is issued from the bundle) shows it.
    let (code, out, err) = c.run(&["status"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("firewall shop (") && out.contains("bootstrap)"),
        "{out}"
    );
    assert!(
        out.contains(
            "add-on hcloud-ccm Deployment kube-system/hcloud-cloud-controller-manager NOT READY"
        ),
        "{out}"
    );
    assert!(
        out.contains("Argo CD: not installed") && out.contains("cloudflared: not deployed"),
        "{out}"
    );
}

#[tokio::test]
async fn platform_input_problems_stop_up_before_any_request() {
    let Some(schema) = schema_dir() else { return };
    let c = Full::start(&schema, &repo_infra(), false).await;
    let requests = |c: &Full| {
        c.w.hetzner.exchanges().len()
            + c.cf.log().len()
            + c.kube.requests().len()
            + c.talos.calls().len()
    };

    // The B2 keys were never stored: named with the Secret and the command.
    let (code, _, err) = c.run(&["up"]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("secret input `b2.key-id` needed by Secret data/b2-backup-credentials")
            && err.contains("Secret observability/loki-object-storage")
            && err.contains("provisioner secrets set --env production PROVISION_B2_KEY_ID"),
        "{err}"
    );
    assert!(
        !Full::secrets_file(&c.w).exists(),
        "nothing generated while inputs are missing"
    );

    // Cloudflare credentials missing: the tunnel token cannot be had; the
    // passwords `up` would generate are not written either.
    let f = Full::secrets_file(&c.w);
    let keys = Full::keys(&c.w);
    let mut map = tunnel::secrets::store::SecretMap::new();
    map.insert(
        "PROVISION_B2_KEY_ID".into(),
        tunnel::SecretString::new(B2_KEY_ID),
    );
    map.insert(
        "PROVISION_B2_APPLICATION_KEY".into(),
        tunnel::SecretString::new(B2_APP_KEY),
    );
    f.save(&keys, &map).unwrap();
    let mut env = c.env();
    env.vars.remove("CLOUDFLARE_API_TOKEN");
    let (code, _, err) = c.w.run_env(env, &["up"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("CLOUDFLARE_API_TOKEN is not set"), "{err}");
    assert_eq!(f.load(&keys).unwrap().len(), 2);

    // A manifest that fails validation: named by file and rule.
    let bad = tempfile::tempdir().unwrap();
    let infra = bad.path().join("infra");
    std::fs::create_dir_all(infra.join("argocd/overlays/production")).unwrap();
    std::fs::create_dir_all(infra.join("bootstrap/10-demo")).unwrap();
    std::fs::write(
        infra.join("bootstrap/10-demo/kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - web.yaml\n",
    )
    .unwrap();
    std::fs::write(
        infra.join("bootstrap/10-demo/web.yaml"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: default\nspec:\n  replicas: one\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n        - name: web\n          image: nginx:latest\n",
    )
    .unwrap();
    c.w.write_spec(&platform_spec(&c.kube.url(), &schema, &infra));
    let (code, _, err) = c.run(&["up"]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("nothing was applied") && err.contains("web.yaml"),
        "{err}"
    );
    assert!(err.contains("Deployment default/web"), "{err}");

    assert_eq!(
        requests(&c),
        0,
        "no request to any API before the inputs are complete and valid"
    );
}
