//! Tunnel, DNS, Access, Hyperdrive and Worker secrets against the fake
//! Cloudflare API, driven through the `provisioner tunnel|secrets` command
//! groups in-process (injected env, stdin, stdout, stderr).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use clap::Parser;
use serde_json::Value;
use shopedge_tests::cloudflare_fake::{FakeCloudflare, Fault, Scope};
use tunnel::cli::{CliIo, Output, SecretsCommand, TunnelCommand};
use tunnel::secrets::keys::generate_identity;
use tunnel::SecretString;

const ACCOUNT: &str = "0123456789abcdef0123456789abcdef";
const TOKEN: &str = "test-token-with-all-permissions-0001";
const SCRIPT: &str = "shopedge-edge-production";

const SPEC: &str = r#"
cluster = "shop"
zone = "example.com"
environment = "production"
worker_script = "shopedge-edge-production"

[medusa]
hostname = "medusa-origin.example.com"
namespace = "medusa"
service = "medusa"
port = 9000

[postgres]
hostname = "pg-origin.example.com"
namespace = "data"
service = "pg-rw"
port = 5432

[origin_request]
connect_timeout_s = 15
keep_alive_timeout_s = 60

[hyperdrive]
name = "shop-pg"
database = "medusa"
user = "medusa"
"#;

#[derive(Parser)]
struct TunnelCli {
    #[command(subcommand)]
    cmd: TunnelCommand,
}

#[derive(Parser)]
struct SecretsCli {
    #[command(subcommand)]
    cmd: SecretsCommand,
}

/// `--output json` is the provisioner's global option; the harness plays
/// that part.
fn split_output<'a>(args: &[&'a str]) -> (Vec<&'a str>, Output) {
    let mut out = Vec::new();
    let mut output = Output::Text;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if *a == "--output" {
            if it.next() == Some(&"json") {
                output = Output::Json;
            }
        } else {
            out.push(*a);
        }
    }
    (out, output)
}

struct World {
    fake: FakeCloudflare,
    repo: tempfile::TempDir,
    identity: SecretString,
    recipient: String,
    kv_ns: String,
    zone_id: String,
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl World {
    async fn new() -> World {
        let fake = FakeCloudflare::start().await.expect("start fake");
        let (zone_id, kv_ns) = {
            let mut st = fake.state();
            st.add_account_token(ACCOUNT, TOKEN, Scope::ALL);
            let z = st.add_zone(ACCOUNT, "example.com");
            st.add_zone(ACCOUNT, "other.org");
            st.add_script(ACCOUNT, SCRIPT);
            (z, st.add_kv_namespace(ACCOUNT))
        };
        let repo = tempfile::tempdir().expect("tempdir");
        let spec_path = repo.path().join("infra/apps/cloudflared/tunnel.toml");
        std::fs::create_dir_all(spec_path.parent().unwrap()).unwrap();
        std::fs::write(&spec_path, SPEC).unwrap();
        std::fs::write(
            repo.path().join("wrangler.toml"),
            "name = \"shopedge-edge\"\nmain = \"build/worker.js\"\n[env.production]\n",
        )
        .unwrap();
        let (identity, recipient) = generate_identity();
        let w = World {
            fake,
            repo,
            identity,
            recipient,
            kv_ns,
            zone_id,
        };
        // Hyperdrive needs the Postgres password in the secrets file.
        let o = w
            .secrets(
                &["edit", "--env", "production"],
                "PROVISION_POSTGRES_PASSWORD=pg-pass-7f3a9c\n",
            )
            .await;
        assert_eq!(o.code, 0, "{}", o.stderr);
        w
    }

    fn vars(&self) -> BTreeMap<String, String> {
        let mut v = BTreeMap::new();
        v.insert("CLOUDFLARE_API_TOKEN".into(), TOKEN.into());
        v.insert("CLOUDFLARE_ACCOUNT_ID".into(), ACCOUNT.into());
        v.insert("CLOUDFLARE_API_BASE_URL".into(), self.fake.base_url());
        v.insert(
            "SHOPEDGE_AGE_IDENTITY".into(),
            self.identity.expose().into(),
        );
        v.insert("SHOPEDGE_AGE_RECIPIENTS".into(), self.recipient.clone());
        v.insert(
            "SHOPEDGE_SECRETS_STATE_KV_NAMESPACE".into(),
            self.kv_ns.clone(),
        );
        v
    }

    async fn tunnel(&self, args: &[&str]) -> Out {
        self.tunnel_with(args, self.vars()).await
    }

    async fn tunnel_with(&self, args: &[&str], vars: BTreeMap<String, String>) -> Out {
        let (args, output) = split_output(args);
        let cli = TunnelCli::try_parse_from(std::iter::once("tunnel").chain(args.iter().copied()))
            .expect("args parse");
        let (mut stdin, mut stdout, mut stderr) = (std::io::empty(), Vec::new(), Vec::new());
        let mut io = CliIo {
            vars,
            repo_root: self.repo.path().to_path_buf(),
            stdin: &mut stdin,
            stdout: &mut stdout,
            stderr: &mut stderr,
            output,
        };
        let code = cli.cmd.run_exit_code(&mut io).await;
        Out {
            code,
            stdout: String::from_utf8(stdout).unwrap(),
            stderr: String::from_utf8(stderr).unwrap(),
        }
    }

    async fn secrets(&self, args: &[&str], stdin: &str) -> Out {
        self.secrets_with(args, stdin, self.vars()).await
    }

    async fn secrets_with(
        &self,
        args: &[&str],
        stdin: &str,
        vars: BTreeMap<String, String>,
    ) -> Out {
        let (args, output) = split_output(args);
        let cli =
            SecretsCli::try_parse_from(std::iter::once("secrets").chain(args.iter().copied()))
                .expect("args parse");
        let mut input = std::io::Cursor::new(stdin.as_bytes().to_vec());
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let mut io = CliIo {
            vars,
            repo_root: self.repo.path().to_path_buf(),
            stdin: &mut input,
            stdout: &mut stdout,
            stderr: &mut stderr,
            output,
        };
        let code = cli.cmd.run_exit_code(&mut io).await;
        Out {
            code,
            stdout: String::from_utf8(stdout).unwrap(),
            stderr: String::from_utf8(stderr).unwrap(),
        }
    }

    /// Decrypted secrets file (test inspection through the library).
    fn stored(&self) -> BTreeMap<String, String> {
        let keys = tunnel::secrets::AgeKeys::load(
            &|k: &str| self.vars().get(k).cloned(),
            self.repo.path(),
        )
        .unwrap();
        tunnel::secrets::SecretsFile::for_env(self.repo.path(), "production")
            .load(&keys)
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k, v.expose().to_string()))
            .collect()
    }

    /// Asserts the account holds exactly one of everything, consistent.
    fn assert_converged(&self) {
        let st = self.fake.state();
        let tunnels = st.live_tunnels();
        assert_eq!(tunnels.len(), 1, "one tunnel");
        let t = tunnels[0];
        assert_eq!(t.name, "shop-tunnel");
        assert_eq!(t.config_src, "cloudflare");
        let cfg = t.config.as_ref().expect("tunnel configured");
        let ingress = cfg["ingress"].as_array().unwrap();
        assert_eq!(ingress.len(), 3);
        assert_eq!(ingress[0]["hostname"], "medusa-origin.example.com");
        assert_eq!(
            ingress[0]["service"],
            "http://medusa.medusa.svc.cluster.local:9000"
        );
        assert_eq!(
            ingress[1]["service"],
            "tcp://pg-rw.data.svc.cluster.local:5432"
        );
        assert_eq!(ingress[2]["service"], "http_status:404");
        assert_eq!(cfg["originRequest"]["connectTimeout"], 15);
        assert_eq!(cfg["originRequest"]["keepAliveTimeout"], 60);
        let recs: Vec<_> = st.dns.iter().filter(|r| r.zone == self.zone_id).collect();
        assert_eq!(recs.len(), 2, "{recs:?}");
        for r in &recs {
            assert_eq!(r.kind, "CNAME");
            assert!(r.proxied);
            assert_eq!(r.content, format!("{}.cfargotunnel.com", t.id));
            assert!(r.comment.as_deref().unwrap().contains("shopedge"));
        }
        assert_eq!(st.service_tokens.len(), 1, "one service token");
        let tok = &st.service_tokens[0];
        assert_eq!(st.apps.len(), 2);
        for app in &st.apps {
            let ps: Vec<_> = st.policies.iter().filter(|p| p.app == app.id).collect();
            assert_eq!(ps.len(), 1, "one policy on {}", app.body["name"]);
            assert_eq!(ps[0].body["decision"], "non_identity");
            assert_eq!(
                ps[0].body["include"],
                serde_json::json!([{"service_token": {"token_id": tok.id}}])
            );
            assert_eq!(app.body["type"], "self_hosted");
        }
        assert_eq!(st.hyperdrive.len(), 1);
        let h = &st.hyperdrive[0].body["origin"];
        assert_eq!(h["host"], "pg-origin.example.com");
        assert_eq!(h["access_client_id"], tok.client_id.as_str());
        assert_eq!(h["access_client_secret"], tok.client_secret.as_str());
        assert_eq!(h["password"], "pg-pass-7f3a9c");
        let (cid, csec) = (tok.client_id.clone(), tok.client_secret.clone());
        drop(st);
        let stored = self.stored();
        assert_eq!(stored.get("ACCESS_CLIENT_ID"), Some(&cid));
        assert_eq!(stored.get("ACCESS_CLIENT_SECRET"), Some(&csec));
    }
}

#[tokio::test]
async fn first_run_creates_everything_and_second_run_changes_nothing() {
    let w = World::new().await;
    let o = w.tunnel(&["up"]).await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        o.stdout.contains("did: create tunnel shop-tunnel"),
        "{}",
        o.stdout
    );
    w.assert_converged();
    let first = w.fake.mutating().len();
    assert_eq!(first, 10, "{:#?}", w.fake.mutating());

    w.fake.clear_log();
    let o = w.tunnel(&["up"]).await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stdout.contains("up to date"), "{}", o.stdout);
    assert!(w.fake.mutating().is_empty(), "{:#?}", w.fake.mutating());
    assert!(!w.fake.log().is_empty(), "the second run did observe");

    let o = w.tunnel(&["status", "--output", "json"]).await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["pending"], serde_json::json!([]));
    assert_eq!(v["tunnel"], "shop-tunnel");
    w.assert_converged();
}

#[tokio::test]
async fn dry_run_plans_without_changing_anything() {
    let w = World::new().await;
    let o = w.tunnel(&["up", "--dry-run", "--output", "json"]).await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["dry_run"], true);
    let actions: Vec<&str> = v["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "create_tunnel",
            "put_tunnel_config",
            "create_dns_record",
            "create_dns_record",
            "create_service_token",
            "create_access_app",
            "create_access_policy",
            "create_access_app",
            "create_access_policy",
            "create_hyperdrive"
        ]
    );
    assert!(w.fake.mutating().is_empty());
    assert!(w.fake.state().tunnels.is_empty());
}

#[tokio::test]
async fn tunnel_token_is_the_cloudflared_token_of_our_tunnel() {
    let w = World::new().await;
    assert_eq!(w.tunnel(&["up"]).await.code, 0);
    let var = |k: &str| w.vars().get(k).cloned();
    let creds = tunnel::reconcile::Credentials::from_env(&var).unwrap();
    let spec = tunnel::spec::TunnelSpec::from_toml(SPEC).unwrap();
    let keys = tunnel::secrets::AgeKeys::load(&var, w.repo.path()).unwrap();
    let file = tunnel::secrets::SecretsFile::for_env(w.repo.path(), "production");
    let r = tunnel::reconcile::Reconciler::new(&creds, spec, file, keys).unwrap();
    let token = r.tunnel_token().await.unwrap();
    assert_eq!(format!("{token:?}"), "<redacted>");
    let st = w.fake.state();
    let t = &st.tunnels[0];
    use base64::Engine as _;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token.expose())
        .unwrap();
    let v: Value = serde_json::from_slice(&decoded).unwrap();
    assert_eq!(v["a"], ACCOUNT);
    assert_eq!(v["t"], t.id.as_str());
    assert_eq!(v["s"], t.secret.as_str());

    // The secret the tunnel was created with (the crate's CreateTunnel
    // requires one): 32 random bytes, base64, different per tunnel.
    let secret = base64::engine::general_purpose::STANDARD
        .decode(&t.secret)
        .unwrap();
    assert_eq!(secret.len(), 32);
    assert!(secret.iter().any(|b| *b != 0));
}

#[tokio::test]
async fn fake_rejects_a_tunnel_secret_shorter_than_32_bytes() {
    let fake = FakeCloudflare::start().await.unwrap();
    fake.state().add_account_token(ACCOUNT, TOKEN, Scope::ALL);
    let http = reqwest::Client::new();
    let post = |secret: Value| {
        http.post(format!("{}accounts/{ACCOUNT}/cfd_tunnel", fake.base_url()))
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({"name": "t", "config_src": "cloudflare", "tunnel_secret": secret}))
            .send()
    };
    let short = post(Value::from("c2hvcnQ=")).await.unwrap();
    assert_eq!(short.status(), 400);
    let v: Value = short.json().await.unwrap();
    assert_eq!(v["success"], false);
    assert!(fake.state().tunnels.is_empty());
    let not_b64 = post(Value::from("not base64 at all, but long enough to be 32+"))
        .await
        .unwrap();
    assert_eq!(not_b64.status(), 400);
    let ok = post(Value::from("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="))
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(fake.state().tunnels.len(), 1);
}

#[tokio::test]
async fn drift_is_repaired() {
    let w = World::new().await;
    assert_eq!(w.tunnel(&["up"]).await.code, 0);
    {
        let mut st = w.fake.state();
        let t = st.tunnels.iter_mut().next().unwrap();
        t.config.as_mut().unwrap()["ingress"][0]["service"] = "http://evil:80".into();
        st.dns[0].proxied = false;
        let app = &mut st.apps[0];
        app.body["session_duration"] = "720h".into();
    }
    let extra_app = w.fake.state().apps[0].id.clone();
    {
        // Someone adds an allow-everyone policy to our application.
        let mut st = w.fake.state();
        st.policies.push(shopedge_tests::cloudflare_fake::Policy {
            id: "manual-policy".into(),
            app: extra_app,
            body: serde_json::json!({"name": "everyone", "decision": "allow", "include": [{"everyone": {}}]}),
        });
    }
    w.fake.clear_log();
    let o = w.tunnel(&["up"]).await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    let m: Vec<String> = w
        .fake
        .mutating()
        .iter()
        .map(|l| format!("{} {}", l.method, l.path))
        .collect();
    assert_eq!(m.len(), 4, "{m:#?}");
    assert!(
        m.iter()
            .any(|l| l.starts_with("DELETE") && l.ends_with("manual-policy")),
        "{m:#?}"
    );
    w.assert_converged();
}

/// Crashes a first run after each of its mutating calls in turn (the fake
/// applies call n, then never answers; the run is dropped there, as a killed
/// process would be); the re-run converges and the run after it changes
/// nothing.
async fn assert_crash_safe<F, Fut>(new_world: F, min_calls: usize, converged: impl Fn(&World))
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = World>,
{
    // Count the mutating calls of a clean first run.
    let total = {
        let w = new_world().await;
        assert_eq!(w.tunnel(&["up"]).await.code, 0);
        w.fake.mutating().len()
    };
    assert!(total >= min_calls, "{total} mutating calls");
    for n in 1..=total {
        let w = new_world().await;
        w.fake.crash_after_mutation(n);
        tokio::select! {
            o = w.tunnel(&["up"]) => panic!("run finished without reaching mutating call {n}: {}", o.stdout),
            _ = w.fake.crashed() => {}
        }
        w.fake.clear_faults();
        let o = w.tunnel(&["up"]).await;
        assert_eq!(o.code, 0, "re-run after crash at {n}: {}", o.stderr);
        converged(&w);
        w.fake.clear_log();
        let o = w.tunnel(&["up"]).await;
        assert_eq!(o.code, 0);
        assert!(
            w.fake.mutating().is_empty(),
            "after crash at {n}: {:#?}",
            w.fake.mutating()
        );
    }
}

#[tokio::test]
async fn crash_after_every_mutating_call_converges() {
    assert_crash_safe(World::new, 9, World::assert_converged).await;
}

#[tokio::test]
async fn foreign_dns_record_is_left_alone_and_reported() {
    let w = World::new().await;
    let id = w.fake.state().add_dns(
        &w.zone_id,
        "A",
        "medusa-origin.example.com",
        "192.0.2.10",
        Some("the web team"),
    );
    let o = w.tunnel(&["up"]).await;
    assert_eq!(o.code, 1);
    assert!(
        o.stderr.contains("medusa-origin.example.com"),
        "{}",
        o.stderr
    );
    assert!(o.stderr.contains("not managed by shopedge"), "{}", o.stderr);
    assert!(
        w.fake.mutating().is_empty(),
        "nothing changed: {:#?}",
        w.fake.mutating()
    );
    let st = w.fake.state();
    let rec = st.dns.iter().find(|r| r.id == id).unwrap();
    assert_eq!(rec.content, "192.0.2.10");
    assert_eq!(st.dns.len(), 1);
    assert!(st.tunnels.is_empty());
}

#[tokio::test]
async fn foreign_access_app_on_our_hostname_is_an_error() {
    let w = World::new().await;
    w.fake
        .state()
        .add_app(ACCOUNT, "someone-elses", "pg-origin.example.com");
    let o = w.tunnel(&["up"]).await;
    assert_eq!(o.code, 1);
    assert!(
        o.stderr.contains("someone-elses") && o.stderr.contains("pg-origin.example.com"),
        "{}",
        o.stderr
    );
    assert!(w.fake.mutating().is_empty());
}

#[tokio::test]
async fn token_rotation_stores_new_secret_and_updates_hyperdrive() {
    let w = World::new().await;
    assert_eq!(w.tunnel(&["up"]).await.code, 0);
    let (id_before, secret_before) = {
        let st = w.fake.state();
        (
            st.service_tokens[0].id.clone(),
            st.service_tokens[0].client_secret.clone(),
        )
    };
    w.fake.clear_log();
    let o = w.tunnel(&["rotate-token"]).await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        o.stdout.contains("secrets push --env production"),
        "{}",
        o.stdout
    );
    let m: Vec<String> = w
        .fake
        .mutating()
        .iter()
        .map(|l| format!("{} {}", l.method, l.path))
        .collect();
    assert_eq!(m.len(), 2, "{m:#?}");
    assert!(m[0].ends_with("/rotate"));
    assert!(m[1].starts_with("PUT") && m[1].contains("hyperdrive"));
    {
        let st = w.fake.state();
        assert_eq!(st.service_tokens.len(), 1);
        assert_eq!(st.service_tokens[0].id, id_before);
        assert_ne!(st.service_tokens[0].client_secret, secret_before);
    }
    w.assert_converged();
    w.fake.clear_log();
    assert_eq!(w.tunnel(&["up"]).await.code, 0);
    assert!(w.fake.mutating().is_empty());
}

#[tokio::test]
async fn expiring_service_token_is_refreshed_not_replaced() {
    let w = World::new().await;
    assert_eq!(w.tunnel(&["up"]).await.code, 0);
    let soon = shopedge_tests::cloudflare_fake::now_unix() + 86_400;
    let secret = {
        let mut st = w.fake.state();
        st.service_tokens[0].expires_at = soon;
        st.service_tokens[0].client_secret.clone()
    };
    w.fake.clear_log();
    let o = w.tunnel(&["up"]).await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        o.stdout
            .contains("refresh Access service token shop-worker"),
        "{}",
        o.stdout
    );
    let m = w.fake.mutating();
    assert_eq!(m.len(), 1, "{m:#?}");
    assert!(m[0].path.ends_with("/refresh"));
    {
        let st = w.fake.state();
        assert!(st.service_tokens[0].expires_at > soon + 300 * 86_400);
        assert_eq!(st.service_tokens[0].client_secret, secret);
    }
    w.assert_converged();
    w.fake.clear_log();
    assert_eq!(w.tunnel(&["up"]).await.code, 0);
    assert!(w.fake.mutating().is_empty());
}

#[test]
fn fake_dates_are_rfc3339() {
    use shopedge_tests::cloudflare_fake::rfc3339;
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    assert_eq!(rfc3339(951_868_800), "2000-03-01T00:00:00Z");
    assert_eq!(rfc3339(1_798_761_601), "2027-01-01T00:00:01Z");
    let now = shopedge_tests::cloudflare_fake::now_unix();
    assert_eq!(tunnel::plan::parse_rfc3339(&rfc3339(now)), Some(now));
}

#[tokio::test]
async fn rotate_before_up_is_a_clear_error() {
    let w = World::new().await;
    let o = w.tunnel(&["rotate-token"]).await;
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("tunnel up` first"), "{}", o.stderr);
    assert!(w.fake.mutating().is_empty());
}

#[tokio::test]
async fn secrets_push_writes_only_changes_and_prunes_on_request() {
    let w = World::new().await;
    let o = w
        .secrets(
            &["edit", "--env", "production"],
            "API_KEY=k-111-aaa\nSESSION_SECRET=s-222-bbb\n",
        )
        .await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    let o = w.secrets(&["list", "--env", "production"], "").await;
    assert_eq!(
        o.stdout,
        "API_KEY\nPROVISION_POSTGRES_PASSWORD\nSESSION_SECRET\n"
    );

    let o = w.secrets(&["push", "--env", "production"], "").await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    let puts = |w: &World| {
        w.fake
            .mutating()
            .iter()
            .filter(|l| l.path.contains("/secrets"))
            .map(|l| l.method.clone())
            .collect::<Vec<_>>()
    };
    // The file also holds ACCESS_CLIENT_* after `tunnel up`; here: API_KEY and
    // SESSION_SECRET; the provisioner-only Postgres password stays home.
    assert_eq!(puts(&w), vec!["PUT", "PUT"]);
    assert!(w
        .fake
        .state()
        .worker_secret(ACCOUNT, SCRIPT, "PROVISION_POSTGRES_PASSWORD")
        .is_none());
    assert_eq!(
        w.fake
            .state()
            .worker_secret(ACCOUNT, SCRIPT, "API_KEY")
            .as_deref(),
        Some("k-111-aaa")
    );

    // Unchanged: zero writes.
    w.fake.clear_log();
    let o = w.secrets(&["push", "--env", "production"], "").await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(w.fake.mutating().is_empty(), "{:#?}", w.fake.mutating());
    assert!(o.stdout.contains("unchanged: API_KEY"), "{}", o.stdout);

    // One change: one write (plus the digest record).
    let o = w
        .secrets(&["set", "--env", "production", "API_KEY"], "k-333-ccc\n")
        .await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    // Someone added a secret by hand.
    w.fake
        .state()
        .scripts
        .get_mut(&(ACCOUNT.to_string(), SCRIPT.to_string()))
        .unwrap()
        .insert("MANUAL".into(), "x".into());
    w.fake.clear_log();
    let o = w
        .secrets(&["push", "--env", "production", "--dry-run"], "")
        .await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(w.fake.mutating().is_empty());
    assert!(
        o.stdout.contains("update: API_KEY") && o.stdout.contains("keep"),
        "{}",
        o.stdout
    );
    assert!(!o.stdout.contains("k-333-ccc"));

    let o = w.secrets(&["push", "--env", "production"], "").await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(puts(&w), vec!["PUT"]);
    assert_eq!(
        w.fake
            .state()
            .worker_secret(ACCOUNT, SCRIPT, "API_KEY")
            .as_deref(),
        Some("k-333-ccc")
    );
    assert!(w
        .fake
        .state()
        .worker_secret(ACCOUNT, SCRIPT, "MANUAL")
        .is_some());

    w.fake.clear_log();
    let o = w
        .secrets(
            &["push", "--env", "production", "--prune", "--output", "json"],
            "",
        )
        .await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(puts(&w), vec!["DELETE"]);
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["writes"], 1);
    assert!(w
        .fake
        .state()
        .worker_secret(ACCOUNT, SCRIPT, "MANUAL")
        .is_none());

    // Remove via edit, then prune deletes it remotely.
    let o = w
        .secrets(&["edit", "--env", "production"], "-SESSION_SECRET\n")
        .await;
    assert_eq!(o.stdout, "removed SESSION_SECRET\n");
    w.fake.clear_log();
    let o = w
        .secrets(&["push", "--env", "production", "--prune"], "")
        .await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(puts(&w), vec!["DELETE"]);
}

#[tokio::test]
async fn push_to_a_missing_worker_says_deploy_first() {
    let w = World::new().await;
    let o = w
        .secrets(&["push", "--env", "production", "--script", "nope"], "")
        .await;
    assert_eq!(o.code, 1);
    assert!(
        o.stderr.contains("Worker \"nope\" does not exist"),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr.contains("wrangler deploy --env production"),
        "{}",
        o.stderr
    );
    assert!(w.fake.mutating().is_empty());
}

#[tokio::test]
async fn push_without_digest_store_writes_everything_with_a_notice() {
    let w = World::new().await;
    let o = w.secrets(&["set", "--env", "production", "ONE"], "1").await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    let mut vars = w.vars();
    vars.remove("SHOPEDGE_SECRETS_STATE_KV_NAMESPACE");
    for _ in 0..2 {
        w.fake.clear_log();
        let o = w
            .secrets_with(&["push", "--env", "production"], "", vars.clone())
            .await;
        assert_eq!(o.code, 0, "{}", o.stderr);
        assert!(o.stderr.contains("SHOPEDGE_SECRETS_STATE_KV_NAMESPACE"));
        assert_eq!(w.fake.mutating().len(), 1);
    }
}

/// Captures tracing output of everything run inside.
#[derive(Clone, Default)]
struct LogBuf(Arc<Mutex<Vec<u8>>>);

impl Write for LogBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A process-wide subscriber (a scoped one misses events when tests run on
/// several threads, as tracing caches callsite interest globally).
fn capture_logs() -> LogBuf {
    static LOGS: std::sync::OnceLock<LogBuf> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = LogBuf::default();
        let sink = buf.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || sink.clone())
            .with_ansi(false)
            .init();
        buf
    })
    .clone()
}

#[tokio::test]
async fn secrets_never_appear_in_output_or_logs() {
    let logs = capture_logs();

    let w = World::new().await;
    let mut all = String::new();
    let mut run = |o: Out| {
        all.push_str(&o.stdout);
        all.push_str(&o.stderr);
        o.code
    };
    run(w
        .secrets(
            &["set", "--env", "production", "STRIPE_KEY"],
            "sk_live_9f8e7d6c5b4a\n",
        )
        .await);
    // A retried call and a failed call are logged too.
    w.fake.inject(Fault {
        method: Some("GET".into()),
        path_contains: "cfd_tunnel".into(),
        status: 429,
        retry_after: Some(1),
        count: 1,
    });
    assert_eq!(run(w.tunnel(&["up"]).await), 0);
    assert_eq!(run(w.tunnel(&["up", "--output", "json"]).await), 0);
    assert_eq!(
        run(w.tunnel(&["rotate-token", "--output", "json"]).await),
        0
    );
    assert_eq!(run(w.tunnel(&["status"]).await), 0);
    assert_eq!(
        run(w
            .secrets(&["push", "--env", "production", "--output", "json"], "")
            .await),
        0
    );
    assert_eq!(
        run(w
            .secrets(&["push", "--env", "production", "--dry-run"], "")
            .await),
        0
    );
    assert_eq!(
        run(w.secrets(&["list", "--env", "production"], "").await),
        0
    );
    let mut bad = w.vars();
    bad.insert(
        "SHOPEDGE_AGE_IDENTITY".into(),
        generate_identity().0.expose().into(),
    );
    run(w
        .secrets_with(&["list", "--env", "production"], "", bad)
        .await);

    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("cloudflare"), "logs were captured: {logs}");
    let st = w.fake.state();
    let mut secrets: Vec<String> = vec![
        "sk_live_9f8e7d6c5b4a".into(),
        "pg-pass-7f3a9c".into(),
        TOKEN.into(),
        w.identity.expose().into(),
        st.service_tokens[0].client_secret.clone(),
        st.tunnels[0].secret.clone(),
    ];
    secrets.push(w.identity.expose()["AGE-SECRET-KEY-1".len()..].to_string());
    for s in &secrets {
        assert!(!all.contains(s.as_str()), "secret leaked in output");
        assert!(!logs.contains(s.as_str()), "secret leaked in logs");
    }
    // No plaintext in the repo either.
    for entry in walk(w.repo.path()) {
        let bytes = std::fs::read(&entry).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        for s in &secrets {
            assert!(
                !text.contains(s.as_str()),
                "secret in plaintext in {}",
                entry.display()
            );
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test]
async fn retries_429_and_5xx_and_a_failed_post_converges_on_rerun() {
    let w = World::new().await;
    w.fake.inject(Fault {
        method: Some("GET".into()),
        path_contains: "access/apps".into(),
        status: 429,
        retry_after: Some(1),
        count: 1,
    });
    w.fake.inject(Fault {
        method: Some("PUT".into()),
        path_contains: "configurations".into(),
        status: 503,
        retry_after: None,
        count: 2,
    });
    w.fake.inject(Fault {
        method: Some("GET".into()),
        path_contains: "dns_records".into(),
        status: 502,
        retry_after: None,
        count: 1,
    });
    // A POST that fails with 500 is not retried (it may have been applied).
    w.fake.inject(Fault {
        method: Some("POST".into()),
        path_contains: "access/service_tokens".into(),
        status: 500,
        retry_after: None,
        count: 1,
    });
    let o = w.tunnel(&["up"]).await;
    assert_eq!(o.code, 1, "{}", o.stdout);
    assert!(o.stderr.contains("HTTP 500"), "{}", o.stderr);
    let log = w.fake.log();
    assert!(log.iter().any(|l| l.status == 429));
    assert_eq!(log.iter().filter(|l| l.status == 503).count(), 2);
    assert_eq!(
        log.iter()
            .filter(|l| l.path.contains("service_tokens") && l.method == "POST")
            .count(),
        1
    );
    let o = w.tunnel(&["up"]).await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    w.assert_converged();
}

#[tokio::test]
async fn persistent_429_gives_up_with_a_clear_message() {
    let w = World::new().await;
    w.fake.inject(Fault {
        method: None,
        path_contains: "zones".into(),
        status: 429,
        retry_after: Some(0),
        count: 100,
    });
    let o = w.tunnel(&["up"]).await;
    assert_eq!(o.code, 1);
    assert!(
        o.stderr.contains("gave up after 5 attempts"),
        "{}",
        o.stderr
    );
    assert!(w.fake.mutating().is_empty());
}

#[tokio::test]
async fn lists_are_paginated() {
    let w = World::new().await;
    {
        let mut st = w.fake.state();
        for i in 0..130 {
            st.add_app(ACCOUNT, &format!("other-{i}"), &format!("app{i}.other.org"));
        }
    }
    assert_eq!(w.tunnel(&["up"]).await.code, 0);
    w.fake.clear_log();
    assert_eq!(w.tunnel(&["up"]).await.code, 0);
    assert!(
        w.fake.mutating().is_empty(),
        "our apps were found on later pages"
    );
    let pages: Vec<_> = w
        .fake
        .log()
        .into_iter()
        .filter(|l| {
            l.path
                .starts_with(&format!("accounts/{ACCOUNT}/access/apps?"))
        })
        .collect();
    assert_eq!(pages.len(), 3, "{pages:#?}");
}

#[tokio::test]
async fn missing_and_underprivileged_token_name_the_variable_and_permission() {
    let w = World::new().await;
    let mut vars = w.vars();
    vars.remove("CLOUDFLARE_API_TOKEN");
    let o = w.tunnel_with(&["up"], vars).await;
    assert_eq!(o.code, 1);
    assert!(
        o.stderr.contains("CLOUDFLARE_API_TOKEN is not set"),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr.contains("Cloudflare Tunnel Edit") && o.stderr.contains("DNS Edit"),
        "{}",
        o.stderr
    );
    assert!(w.fake.log().is_empty());

    let mut vars = w.vars();
    vars.remove("CLOUDFLARE_ACCOUNT_ID");
    let o = w.tunnel_with(&["up"], vars).await;
    assert!(o.stderr.contains("CLOUDFLARE_ACCOUNT_ID"), "{}", o.stderr);

    let cases: &[(Scope, &str)] = &[
        (Scope::DnsEdit, "Zone: DNS Edit"),
        (Scope::TunnelEdit, "Account: Cloudflare Tunnel Edit"),
        (Scope::AccessAppsEdit, "Access: Apps and Policies Edit"),
        (Scope::AccessTokensEdit, "Access: Service Tokens Edit"),
        (Scope::HyperdriveEdit, "Account: Hyperdrive Edit"),
    ];
    for (missing, named) in cases {
        let scopes: Vec<Scope> = Scope::ALL
            .iter()
            .copied()
            .filter(|s| s != missing)
            .collect();
        let tok = format!("limited-{missing:?}");
        w.fake.state().add_account_token(ACCOUNT, &tok, &scopes);
        let mut vars = w.vars();
        vars.insert("CLOUDFLARE_API_TOKEN".into(), tok);
        w.fake.clear_log();
        let o = w.tunnel_with(&["up"], vars).await;
        assert_eq!(o.code, 1);
        assert!(o.stderr.contains("CLOUDFLARE_API_TOKEN"), "{}", o.stderr);
        assert!(
            o.stderr.contains(&format!("the missing one is \"{named}")),
            "{missing:?}: {}",
            o.stderr
        );
        assert!(
            w.fake.mutating().is_empty(),
            "validation before the first mutating call"
        );
    }

    // Workers Scripts for push.
    let scopes: Vec<Scope> = Scope::ALL
        .iter()
        .copied()
        .filter(|s| *s != Scope::WorkersEdit)
        .collect();
    w.fake
        .state()
        .add_account_token(ACCOUNT, "no-workers", &scopes);
    let mut vars = w.vars();
    vars.insert("CLOUDFLARE_API_TOKEN".into(), "no-workers".into());
    let o = w
        .secrets_with(&["push", "--env", "production"], "", vars)
        .await;
    assert!(o.stderr.contains("Workers Scripts Edit"), "{}", o.stderr);

    let mut vars = w.vars();
    vars.insert("CLOUDFLARE_API_TOKEN".into(), "revoked-token".into());
    let o = w.tunnel_with(&["up"], vars).await;
    assert!(
        o.stderr.contains("was rejected") && o.stderr.contains("Invalid access token"),
        "{}",
        o.stderr
    );
}

#[tokio::test]
async fn missing_zone_and_hostname_outside_zone_are_clear() {
    let w = World::new().await;
    let spec_path = w.repo.path().join("infra/apps/cloudflared/tunnel.toml");
    std::fs::write(
        &spec_path,
        SPEC.replace("zone = \"example.com\"", "zone = \"example.net\"")
            .replace(".example.com", ".example.net"),
    )
    .unwrap();
    let o = w.tunnel(&["up"]).await;
    assert_eq!(o.code, 1);
    assert!(
        o.stderr.contains("zone \"example.net\" was not found"),
        "{}",
        o.stderr
    );
    assert!(w.fake.mutating().is_empty());

    std::fs::write(
        &spec_path,
        SPEC.replace("pg-origin.example.com", "pg.other.org"),
    )
    .unwrap();
    w.fake.clear_log();
    let o = w.tunnel(&["up"]).await;
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("outside the zone"), "{}", o.stderr);
    assert!(w.fake.log().is_empty(), "rejected before any API call");
}

#[tokio::test]
async fn undecryptable_secrets_file_stops_before_any_change() {
    let w = World::new().await;
    let mut vars = w.vars();
    vars.insert(
        "SHOPEDGE_AGE_IDENTITY".into(),
        generate_identity().0.expose().into(),
    );
    let o = w.tunnel_with(&["up"], vars.clone()).await;
    assert_eq!(o.code, 1);
    assert!(
        o.stderr
            .contains("cannot decrypt infra/secrets/edge.production.age"),
        "{}",
        o.stderr
    );
    assert!(w.fake.mutating().is_empty());
    let o = w
        .secrets_with(&["push", "--env", "production"], "", vars.clone())
        .await;
    assert!(o.stderr.contains("cannot decrypt"), "{}", o.stderr);

    // Corrupt file.
    let f = w.repo.path().join("infra/secrets/edge.production.age");
    std::fs::write(
        &f,
        "-----BEGIN AGE ENCRYPTED FILE-----\ngarbage\n-----END AGE ENCRYPTED FILE-----\n",
    )
    .unwrap();
    let o = w.secrets(&["list", "--env", "production"], "").await;
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("cannot decrypt"), "{}", o.stderr);

    let mut vars = w.vars();
    vars.remove("SHOPEDGE_AGE_IDENTITY");
    let o = w
        .secrets_with(&["list", "--env", "production"], "", vars)
        .await;
    assert!(o.stderr.contains("SHOPEDGE_AGE_IDENTITY"), "{}", o.stderr);
    let o = w.secrets(&["list", "--env", "staging"], "").await;
    assert!(
        o.stderr.contains("edge.staging.age does not exist"),
        "{}",
        o.stderr
    );
}

#[tokio::test]
async fn bad_secret_input_is_rejected_without_echoing_values() {
    let w = World::new().await;
    let o = w
        .secrets(
            &["edit", "--env", "production"],
            "GOOD=1\nthis line has no equals\n",
        )
        .await;
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("line 2"), "{}", o.stderr);
    assert!(!o.stderr.contains("this line"), "{}", o.stderr);
    let o = w
        .secrets(&["set", "--env", "production", "bad-name"], "v")
        .await;
    assert!(o.stderr.contains("invalid secret name"), "{}", o.stderr);
    let o = w
        .secrets(&["set", "--env", "production", "EMPTY"], "")
        .await;
    assert!(
        o.stderr.contains("no value on standard input"),
        "{}",
        o.stderr
    );
    assert!(!w.stored().contains_key("GOOD"), "nothing half-applied");
}

// ---------- manifests ----------

fn repo_root() -> PathBuf {
    shopedge_tests::shared_data::repo_root()
}

#[tokio::test]
async fn committed_cloudflared_manifests_are_up_to_date_and_valid() {
    let root = repo_root();
    let dir = root.join("infra/apps/cloudflared");
    let spec = tunnel::spec::TunnelSpec::from_toml(
        &std::fs::read_to_string(dir.join("tunnel.toml")).unwrap(),
    )
    .unwrap();
    let stale = tunnel::manifests::stale(&spec, &dir).unwrap();
    assert!(
        stale.is_empty(),
        "re-render with `provisioner tunnel render-manifests`: {stale:?}"
    );

    let kust: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(dir.join("kustomization.yaml")).unwrap())
            .unwrap();
    assert_eq!(kust["namespace"], "cloudflared");
    let mut kinds = BTreeMap::new();
    for r in kust["resources"].as_sequence().unwrap() {
        let text = std::fs::read_to_string(dir.join(r.as_str().unwrap())).unwrap();
        let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        kinds.insert(doc["kind"].as_str().unwrap().to_string(), doc);
    }
    let dep = &kinds["Deployment"];
    let pod = &dep["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    assert_eq!(dep["spec"]["replicas"], 2);
    assert!(pod["affinity"]["podAntiAffinity"].is_mapping());
    let image = c["image"].as_str().unwrap();
    let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap();
    assert!(
        tag != "latest" && tag.chars().next().unwrap().is_ascii_digit(),
        "{image}"
    );
    let args: Vec<&str> = c["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(
        args,
        [
            "tunnel",
            "--no-autoupdate",
            "--metrics",
            "0.0.0.0:2000",
            "run"
        ]
    );
    let env = c["env"].as_sequence().unwrap();
    let tok = env.iter().find(|e| e["name"] == "TUNNEL_TOKEN").unwrap();
    assert_eq!(
        tok["valueFrom"]["secretKeyRef"]["name"],
        "cloudflared-token"
    );
    assert!(env
        .iter()
        .any(|e| e["name"] == "TUNNEL_EDGE_IP_VERSION" && e["value"] == "6"));
    for p in ["readinessProbe", "livenessProbe"] {
        assert_eq!(c[p]["httpGet"]["path"], "/ready");
        assert_eq!(c[p]["httpGet"]["port"], 2000);
    }
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    for k in ["requests", "limits"] {
        assert!(c["resources"][k]["cpu"].is_string() && c["resources"][k]["memory"].is_string());
    }
    assert_eq!(kinds["PodDisruptionBudget"]["spec"]["minAvailable"], 1);
    let np = &kinds["NetworkPolicy"]["spec"];
    let ports: Vec<(String, u64)> = np["egress"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|r| {
            r["ports"].as_sequence().unwrap().iter().map(|p| {
                (
                    p["protocol"].as_str().unwrap().to_string(),
                    p["port"].as_u64().unwrap(),
                )
            })
        })
        .collect();
    for want in [
        ("UDP", 7844),
        ("TCP", 7844),
        ("TCP", 443),
        ("UDP", 53),
        ("TCP", 9000),
        ("TCP", 5432),
    ] {
        assert!(
            ports.contains(&(want.0.to_string(), want.1)),
            "egress {want:?} in {ports:?}"
        );
    }
    assert_eq!(ports.len(), 7, "no other egress: {ports:?}");
    for (_, doc) in kinds.iter().filter(|(k, _)| *k != "Namespace") {
        assert_eq!(doc["metadata"]["namespace"], "cloudflared");
    }
}

#[test]
fn repo_tunnel_spec_matches_wrangler_production_origin() {
    let root = repo_root();
    let spec = tunnel::spec::TunnelSpec::from_toml(
        &std::fs::read_to_string(root.join("infra/apps/cloudflared/tunnel.toml")).unwrap(),
    )
    .unwrap();
    let wrangler: toml::Value =
        toml::from_str(&std::fs::read_to_string(root.join("wrangler.toml")).unwrap()).unwrap();
    let env = &wrangler["env"][spec.environment.as_str()];
    let origin = env["vars"]["MEDUSA_ORIGIN"].as_str().unwrap();
    let host = url::Url::parse(origin)
        .unwrap()
        .host_str()
        .unwrap()
        .to_string();
    assert_eq!(
        host, spec.medusa.hostname,
        "wrangler's MEDUSA_ORIGIN is the tunnel hostname"
    );
    assert_eq!(
        tunnel::cli::script_from_wrangler(&root, &spec.environment).unwrap(),
        spec.worker_script
    );
}

#[tokio::test]
async fn render_manifests_command_writes_and_checks() {
    let w = World::new().await;
    let o = w.tunnel(&["render-manifests", "--check"]).await;
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("out of date"), "{}", o.stderr);
    let o = w.tunnel(&["render-manifests"]).await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stdout.contains("deployment.yaml"));
    let o = w.tunnel(&["render-manifests", "--check"]).await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    let np = std::fs::read_to_string(
        w.repo
            .path()
            .join("infra/apps/cloudflared/networkpolicy.yaml"),
    )
    .unwrap();
    assert!(np.contains("5432"));
}

// ---------- CI workflow ----------

#[test]
fn github_workflows_pass_the_structural_check() {
    let dir = repo_root().join(".github/workflows");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).expect(".github/workflows exists") {
        let p = e.unwrap().path();
        if !matches!(p.extension().and_then(|e| e.to_str()), Some("yml" | "yaml")) {
            continue;
        }
        n += 1;
        let text = std::fs::read_to_string(&p).unwrap();
        let problems = tunnel::workflow::check_workflow(&text);
        assert!(problems.is_empty(), "{}: {problems:#?}", p.display());
        let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        let steps = |job: &str| -> Vec<String> {
            doc["jobs"][job]["steps"]
                .as_sequence()
                .unwrap()
                .iter()
                .map(|s| s["run"].as_str().unwrap_or("").to_string())
                .collect()
        };
        assert!(steps("test").iter().any(|s| s.contains("make test")));
        let deploy = steps("deploy").join("\n");
        let (a, b, c) = (
            deploy.find("make test"),
            deploy.find("wrangler deploy"),
            deploy.find("secrets push --env production"),
        );
        assert!(
            b.is_some() && c.is_some() && b < c,
            "deploy order: {deploy}"
        );
        let _ = a;
    }
    assert!(n >= 1, "no workflow found");
    // actionlint, when a developer has it on PATH, checks more.
    if let Ok(out) = std::process::Command::new("actionlint")
        .arg("-no-color")
        .current_dir(repo_root())
        .output()
    {
        assert!(
            out.status.success(),
            "actionlint: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    } else {
        eprintln!("notice: actionlint not on PATH; the structural check above ran instead");
    }
}

// ---------- Workers VPC (worker_binding = "workers_vpc") ----------

/// [`SPEC`] with Medusa reached through a Workers VPC service.
fn spec_vpc() -> String {
    SPEC.replace(
        "worker_script = \"shopedge-edge-production\"\n",
        "worker_script = \"shopedge-edge-production\"\nworker_binding = \"workers_vpc\"\n",
    )
}

impl World {
    async fn new_vpc() -> World {
        let w = World::new().await;
        w.write_spec(&spec_vpc());
        w
    }

    fn write_spec(&self, text: &str) {
        let path = self.repo.path().join("infra/apps/cloudflared/tunnel.toml");
        std::fs::write(path, text).unwrap();
    }

    /// Asserts the Workers VPC layout: one tunnel publishing Postgres only,
    /// one VPC service on it for Medusa, no Medusa DNS record or Access app.
    fn assert_converged_vpc(&self) -> String {
        let st = self.fake.state();
        let tunnels: Vec<_> = st
            .live_tunnels()
            .into_iter()
            .filter(|t| t.name == "shop-tunnel")
            .collect();
        assert_eq!(tunnels.len(), 1, "one tunnel");
        let t = tunnels[0];
        let ingress = t.config.as_ref().expect("configured")["ingress"].clone();
        assert_eq!(
            ingress,
            serde_json::json!([
                {"hostname": "pg-origin.example.com", "service": "tcp://pg-rw.data.svc.cluster.local:5432"},
                {"service": "http_status:404"}
            ])
        );
        assert!(
            !st.dns.iter().any(|r| r.name == "medusa-origin.example.com"),
            "no Medusa record"
        );
        let recs: Vec<_> = st
            .dns
            .iter()
            .filter(|r| {
                r.zone == self.zone_id
                    && r.comment.as_deref().is_some_and(|c| c.contains("shopedge"))
            })
            .collect();
        assert_eq!(recs.len(), 1, "{recs:?}");
        assert_eq!(recs[0].name, "pg-origin.example.com");
        assert_eq!(st.apps.len(), 1);
        assert_eq!(st.apps[0].body["name"], "shop-postgres");
        assert_eq!(st.service_tokens.len(), 1, "Postgres stays behind Access");
        assert_eq!(st.hyperdrive.len(), 1);
        assert_eq!(
            st.hyperdrive[0].body["origin"]["host"],
            "pg-origin.example.com"
        );
        let ours: Vec<_> = st
            .vpc_services
            .iter()
            .filter(|v| v.body["name"] == "shop-medusa")
            .collect();
        assert_eq!(ours.len(), 1, "one VPC service of our name");
        let v = ours[0];
        assert_eq!(v.account, ACCOUNT);
        assert_eq!(
            v.body,
            serde_json::json!({
                "name": "shop-medusa", "type": "http", "http_port": 9000,
                "host": {"hostname": "medusa.medusa.svc.cluster.local",
                         "resolver_network": {"tunnel_id": t.id}}
            })
        );
        v.id.clone()
    }
}

#[tokio::test]
async fn workers_vpc_first_run_creates_tunnel_and_service_and_second_run_changes_nothing() {
    let w = World::new_vpc().await;
    let o = w.tunnel(&["up"]).await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        o.stdout
            .contains("did: create Workers VPC service shop-medusa"),
        "{}",
        o.stdout
    );
    let id = w.assert_converged_vpc();
    // The wrangler.toml entry to add, with the new id.
    let snippet =
        format!("[[env.production.vpc_services]]\nbinding = \"MEDUSA_VPC\"\nservice_id = \"{id}\"");
    assert!(o.stdout.contains(&snippet), "{}", o.stdout);
    let m: Vec<String> = w
        .fake
        .mutating()
        .iter()
        .map(|l| format!("{} {}", l.method, l.path))
        .collect();
    // tunnel, config, pg CNAME, VPC service, token, pg app + policy, Hyperdrive.
    assert_eq!(m.len(), 8, "{m:#?}");
    assert_eq!(
        m.iter()
            .filter(|l| l.contains("connectivity/directory/services"))
            .count(),
        1
    );
    assert!(!m.iter().any(|l| l.contains("medusa")), "{m:#?}");

    w.fake.clear_log();
    let o = w.tunnel(&["up", "--output", "json"]).await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(w.fake.mutating().is_empty(), "{:#?}", w.fake.mutating());
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["actions"], serde_json::json!([]));
    assert_eq!(v["vpc_service"]["service_id"], id.as_str());
    assert_eq!(v["vpc_service"]["binding"], "MEDUSA_VPC");

    let o = w.tunnel(&["status", "--output", "json"]).await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["pending"], serde_json::json!([]));
    assert_eq!(v["vpc_service"]["name"], "shop-medusa");
    assert_eq!(v["vpc_service"]["service_id"], id.as_str());
    assert!(v["vpc_service"]["wrangler_toml"]
        .as_str()
        .unwrap()
        .contains(&format!("service_id = \"{id}\"")));
    let o = w.tunnel(&["status"]).await;
    assert!(o.stdout.contains("in sync"), "{}", o.stdout);
    assert!(o.stdout.contains(&snippet), "{}", o.stdout);
    assert!(w.fake.mutating().is_empty());

    // Access mode's JSON does not grow the field.
    let a = World::new().await;
    let o = a.tunnel(&["up", "--dry-run", "--output", "json"]).await;
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    assert!(v.get("vpc_service").is_none(), "{v}");
}

#[tokio::test]
async fn workers_vpc_dry_run_says_the_id_comes_later() {
    let w = World::new_vpc().await;
    let o = w.tunnel(&["up", "--dry-run"]).await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        o.stdout
            .contains("would: create Workers VPC service shop-medusa"),
        "{}",
        o.stdout
    );
    assert!(o.stdout.contains("does not exist yet"), "{}", o.stdout);
    assert!(w.fake.mutating().is_empty());
    assert!(w.fake.state().vpc_services.is_empty());
}

#[tokio::test]
async fn workers_vpc_drift_is_repaired_and_other_services_are_left_alone() {
    let w = World::new_vpc().await;
    assert_eq!(w.tunnel(&["up"]).await.code, 0);
    let id = w.assert_converged_vpc();
    let (tunnel_id, other_tunnel) = {
        let st = w.fake.state();
        (
            st.live_tunnels()[0].id.clone(),
            "0191dce4-9ab4-7fce-b660-8e5dec5172da".to_string(),
        )
    };
    // Someone else's service on our tunnel, and another tunnel they use.
    {
        let mut st = w.fake.state();
        let mut t = st.tunnels[0].clone();
        t.id = other_tunnel.clone();
        t.name = "someone-elses".into();
        st.tunnels.push(t);
        st.vpc_services
            .push(shopedge_tests::cloudflare_fake::VpcService {
                id: "11111111-2222-3333-4444-555555555555".into(),
                account: ACCOUNT.into(),
                body: serde_json::json!({"name": "billing", "type": "http", "http_port": 8080,
                    "host": {"ipv4": "10.0.0.7", "network": {"tunnel_id": tunnel_id}}}),
                created_at: "2026-01-01T00:00:00Z".into(),
                updated_at: "2026-01-01T00:00:00Z".into(),
            });
    }
    type Drift = Box<dyn Fn(&mut Value)>;
    let drifts: Vec<(&str, Drift)> = vec![
        (
            "port",
            Box::new(|b: &mut Value| b["http_port"] = 8080.into()),
        ),
        (
            "https added",
            Box::new(|b: &mut Value| b["https_port"] = 443.into()),
        ),
        (
            "another tunnel",
            Box::new(move |b: &mut Value| {
                b["host"]["resolver_network"]["tunnel_id"] = other_tunnel.clone().into()
            }),
        ),
    ];
    for (what, drift) in drifts {
        {
            let mut st = w.fake.state();
            let v = st.vpc_services.iter_mut().find(|v| v.id == id).unwrap();
            drift(&mut v.body);
        }
        w.fake.clear_log();
        let o = w.tunnel(&["up"]).await;
        assert_eq!(o.code, 0, "{what}: {}", o.stderr);
        let m = w.fake.mutating();
        assert_eq!(m.len(), 1, "{what}: {m:#?}");
        assert_eq!(m[0].method, "PUT");
        assert_eq!(
            m[0].path,
            format!("accounts/{ACCOUNT}/connectivity/directory/services/{id}")
        );
        assert_eq!(
            w.assert_converged_vpc(),
            id,
            "{what}: same service, repaired"
        );
        w.fake.clear_log();
        assert_eq!(w.tunnel(&["up"]).await.code, 0);
        assert!(w.fake.mutating().is_empty(), "{what}");
    }
    let st = w.fake.state();
    let billing = st
        .vpc_services
        .iter()
        .find(|v| v.body["name"] == "billing")
        .unwrap();
    assert_eq!(billing.body["http_port"], 8080, "never touched");
}

#[tokio::test]
async fn workers_vpc_crash_after_every_mutating_call_converges() {
    assert_crash_safe(World::new_vpc, 8, |w| {
        w.assert_converged_vpc();
    })
    .await;
}

#[tokio::test]
async fn switching_to_workers_vpc_unpublishes_medusa() {
    let w = World::new().await;
    assert_eq!(w.tunnel(&["up"]).await.code, 0);
    w.assert_converged();
    // A record of someone else's elsewhere in the zone stays.
    w.fake
        .state()
        .add_dns(&w.zone_id, "A", "www.example.com", "192.0.2.1", None);
    w.write_spec(&spec_vpc());
    w.fake.clear_log();
    let o = w.tunnel(&["up"]).await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    let m: Vec<String> = w
        .fake
        .mutating()
        .iter()
        .map(|l| format!("{} {}", l.method, l.path))
        .collect();
    // Ingress without Medusa, the VPC service, our CNAME and app removed.
    assert_eq!(m.len(), 4, "{m:#?}");
    assert!(o
        .stdout
        .contains("delete our CNAME medusa-origin.example.com"));
    assert!(o.stdout.contains("delete Access application shop-medusa"));
    {
        let st = w.fake.state();
        assert!(st.dns.iter().any(|r| r.name == "www.example.com"));
        // The app went with its policy.
        assert!(st
            .policies
            .iter()
            .all(|p| st.apps.iter().any(|a| a.id == p.app)));
    }
    w.assert_converged_vpc();
    w.fake.clear_log();
    assert_eq!(w.tunnel(&["up"]).await.code, 0);
    assert!(w.fake.mutating().is_empty(), "{:#?}", w.fake.mutating());
}

#[tokio::test]
async fn workers_vpc_without_connectivity_permission_changes_nothing() {
    let w = World::new_vpc().await;
    let scopes: Vec<Scope> = Scope::ALL
        .iter()
        .copied()
        .filter(|s| *s != Scope::ConnectivityAdmin)
        .collect();
    w.fake.state().add_account_token(ACCOUNT, "no-vpc", &scopes);
    let mut vars = w.vars();
    vars.insert("CLOUDFLARE_API_TOKEN".into(), "no-vpc".into());
    let o = w.tunnel_with(&["up"], vars).await;
    assert_eq!(o.code, 1);
    assert!(
        o.stderr
            .contains("the missing one is \"Account: Connectivity Directory Admin\""),
        "{}",
        o.stderr
    );
    assert!(w.fake.mutating().is_empty(), "validation before any change");
    // Access mode never needs it.
    w.write_spec(SPEC);
    let mut vars = w.vars();
    vars.insert("CLOUDFLARE_API_TOKEN".into(), "no-vpc".into());
    assert_eq!(w.tunnel_with(&["up"], vars).await.code, 0);
}

#[tokio::test]
async fn fake_validates_vpc_services_as_documented() {
    let fake = FakeCloudflare::start().await.unwrap();
    let tunnel_id = {
        let mut st = fake.state();
        st.add_account_token(ACCOUNT, TOKEN, Scope::ALL);
        st.add_account_token(ACCOUNT, "read-only", &[Scope::ConnectivityRead]);
        st.tunnels.push(shopedge_tests::cloudflare_fake::Tunnel {
            id: "0191dce4-9ab4-7fce-b660-8e5dec5172da".into(),
            account: ACCOUNT.into(),
            name: "t".into(),
            config_src: "cloudflare".into(),
            deleted: false,
            config: None,
            version: 0,
            secret: String::new(),
            connections: 0,
        });
        st.tunnels[0].id.clone()
    };
    let url = format!(
        "{}accounts/{ACCOUNT}/connectivity/directory/services",
        fake.base_url()
    );
    let http = reqwest::Client::new();
    let post =
        |token: &'static str, body: Value| http.post(&url).bearer_auth(token).json(&body).send();
    let svc = |host: Value| serde_json::json!({"name": "svc", "type": "http", "http_port": 8080, "host": host});
    let net = serde_json::json!({"tunnel_id": tunnel_id});
    let bad_hosts = [
        // Two shapes at once.
        serde_json::json!({"ipv4": "10.0.0.1", "network": net, "hostname": "a.internal",
                           "resolver_network": net}),
        // hostname with network instead of resolver_network.
        serde_json::json!({"hostname": "a.internal", "network": net}),
        // IP without network.
        serde_json::json!({"ipv4": "10.0.0.1"}),
        // Not an address.
        serde_json::json!({"ipv4": "not-an-ip", "network": net}),
        serde_json::json!({"ipv6": "10.0.0.1", "network": net}),
        // A tunnel that does not exist in the account.
        serde_json::json!({"ipv4": "10.0.0.1",
                           "network": {"tunnel_id": "99999999-9999-9999-9999-999999999999"}}),
        serde_json::json!({}),
        Value::Null,
    ];
    for host in bad_hosts {
        let r = post(TOKEN, svc(host.clone())).await.unwrap();
        assert_eq!(r.status(), 400, "{host}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["success"], false, "{host}");
        assert!(v["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("Invalid service"));
    }
    for body in [
        serde_json::json!({"name": "svc", "type": "udp", "host": {"ipv4": "10.0.0.1", "network": net}}),
        serde_json::json!({"name": "svc", "type": "http", "http_port": 0, "host": {"ipv4": "10.0.0.1", "network": net}}),
        serde_json::json!({"name": "svc", "type": "http", "https_port": 70000, "host": {"ipv4": "10.0.0.1", "network": net}}),
        serde_json::json!({"name": "svc", "type": "tcp", "host": {"ipv4": "10.0.0.1", "network": net}}),
        serde_json::json!({"name": "", "type": "http", "host": {"ipv4": "10.0.0.1", "network": net}}),
        serde_json::json!({"name": "svc", "type": "http", "host": {"ipv4": "10.0.0.1", "network": net},
                           "tls_settings": {"cert_verification_mode": "sometimes"}}),
    ] {
        let r = post(TOKEN, body.clone()).await.unwrap();
        assert_eq!(r.status(), 400, "{body}");
    }
    assert!(fake.state().vpc_services.is_empty());

    // Each documented shape is accepted; names are unique.
    let good = [
        serde_json::json!({"ipv4": "10.0.0.1", "network": net}),
        serde_json::json!({"ipv6": "fd00::1", "network": net}),
        serde_json::json!({"ipv4": "10.0.0.1", "ipv6": "fd00::1", "network": net}),
        serde_json::json!({"hostname": "a.internal", "resolver_network": net}),
        serde_json::json!({"hostname": "a.internal",
                           "resolver_network": {"tunnel_id": tunnel_id, "resolver_ips": ["10.0.0.53"]}}),
    ];
    for (i, host) in good.iter().enumerate() {
        let mut b = svc(host.clone());
        b["name"] = format!("svc-{i}").into();
        let r = post(TOKEN, b).await.unwrap();
        assert_eq!(r.status(), 200, "{host}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["result"]["host"], *host);
        assert!(v["result"]["service_id"].as_str().is_some());
        assert!(v["result"]["created_at"].as_str().is_some());
    }
    let dup = post(TOKEN, svc(good[0].clone())).await.unwrap();
    assert_eq!(dup.status(), 200);
    let dup = post(TOKEN, svc(good[0].clone())).await.unwrap();
    assert_eq!(dup.status(), 409);

    // A read-only token lists but cannot create.
    let r = http
        .get(format!("{url}?per_page=5&page=2"))
        .bearer_auth("read-only")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["result_info"]["total_count"], 6);
    assert_eq!(v["result"].as_array().unwrap().len(), 1);
    let r = post("read-only", svc(good[0].clone())).await.unwrap();
    assert_eq!(r.status(), 403);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["errors"][0]["code"], 10000);

    // A deleted tunnel is not a target any more.
    fake.state().tunnels[0].deleted = true;
    let mut b = svc(good[0].clone());
    b["name"] = "after-delete".into();
    assert_eq!(post(TOKEN, b).await.unwrap().status(), 400);
}
