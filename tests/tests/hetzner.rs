//! The provisioner's Hetzner part, driven in-process against the fake Hetzner API.
//! Every exchange of every test is checked against Hetzner's OpenAPI description
//! when `../shared/hcloud-openapi` is present.

use provisioner::{Capture, Env};
use serde_json::{json, Value};
use shopedge_tests::hetzner_fake::openapi::OpenApi;
use shopedge_tests::hetzner_fake::{
    self as fake, Config, Exchange, FakeHetzner, Faults, ServerErrorFault,
};
use std::collections::BTreeSet;
use std::sync::OnceLock;
use std::time::Duration;

const CP_CONFIG: &str = "version: v1alpha1\nmachine:\n  type: controlplane\n  token: not-a-real-token\ncluster:\n  clusterName: shop\n";
const WORKER_CONFIG: &str =
    "version: v1alpha1\nmachine:\n  type: worker\ncluster:\n  clusterName: shop\n";

fn spec_text(cp: u32, workers: u32) -> String {
    format!(
        r#"name = "shop"
location = "hil"
fallback_locations = []

[network]
ip_range = "10.0.0.0/16"
subnet = "10.0.1.0/24"

[control_plane]
count = {cp}
server_type = "cpx21"

[[worker_pools]]
name = "default"
count = {workers}
server_type = "cpx31"

[image]
selector = "os=talos"

[firewall]
admin_sources = ["2001:db8::/32"]

[machine_config.files]
control_plane = "controlplane.yaml"
worker = "worker.yaml"
"#
    )
}

fn openapi() -> Option<&'static OpenApi> {
    static API: OnceLock<Option<OpenApi>> = OnceLock::new();
    API.get_or_init(|| {
        let dir = shopedge_tests::shared_data::shared_dir(
            "hcloud-openapi",
            "validation of Hetzner API exchanges against the OpenAPI description",
        )?;
        Some(OpenApi::load(&dir.join("hcloud.json")).expect("hcloud.json loads"))
    })
    .as_ref()
}

struct Harness {
    fake: FakeHetzner,
    dir: tempfile::TempDir,
    image: u64,
}

impl Harness {
    async fn new(cp: u32, workers: u32) -> Self {
        Self::with_config(cp, workers, Config::default()).await
    }

    async fn with_config(cp: u32, workers: u32, config: Config) -> Self {
        let fake = FakeHetzner::start(config).await.unwrap();
        // An older Talos image and the newest one; the newest must be chosen.
        fake.add_image("talos v1.8", &[("os", "talos"), ("version", "v1.8.0")]);
        let image = fake.add_image("talos v1.9", &[("os", "talos"), ("version", "v1.9.5")]);
        fake.add_image("ubuntu", &[("os", "ubuntu")]);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("controlplane.yaml"), CP_CONFIG).unwrap();
        std::fs::write(dir.path().join("worker.yaml"), WORKER_CONFIG).unwrap();
        let h = Self { fake, dir, image };
        h.write_spec(&spec_text(cp, workers));
        h
    }

    fn write_spec(&self, text: &str) {
        std::fs::write(self.dir.path().join("cluster.toml"), text).unwrap();
    }

    fn env(&self) -> Env {
        let mut env = Env::empty(self.dir.path())
            .var("HCLOUD_TOKEN", fake::TOKEN)
            .var("HCLOUD_ENDPOINT", &self.fake.url());
        env.time_scale = 0.01;
        env
    }

    async fn run_env(&self, env: Env, args: &[&str]) -> (i32, String, String) {
        let (out, err) = (Capture::default(), Capture::default());
        let mut argv = vec!["provisioner".to_string()];
        argv.extend(args.iter().map(|s| s.to_string()));
        let code = provisioner::run(argv, env, out.sink(), err.sink()).await;
        (code, out.text(), err.text())
    }

    async fn run(&self, args: &[&str]) -> (i32, String, String) {
        self.run_env(self.env(), args).await
    }

    async fn up_ok(&self) {
        let (code, out, err) = self.run(&["up"]).await;
        assert_eq!(code, 0, "up failed:\n{out}\n{err}");
    }

    fn mutations(&self) -> Vec<Exchange> {
        self.fake
            .exchanges()
            .into_iter()
            .filter(|x| x.mutating)
            .collect()
    }

    /// Checks every exchange so far against the OpenAPI description.
    fn validate_all(&self) {
        let Some(api) = openapi() else { return };
        let mut problems = Vec::new();
        for x in self.fake.exchanges() {
            problems.extend(api.validate(&x));
        }
        problems.dedup();
        assert!(
            problems.is_empty(),
            "exchanges violate the API description:\n{}",
            problems.join("\n")
        );
    }

    fn owned_counts(&self) -> (usize, usize, usize, usize) {
        self.fake.with(|s| {
            let owned = |l: &fake::Labels| {
                l.get("cluster").map(String::as_str) == Some("shop")
                    && l.get("managed-by").map(String::as_str) == Some("provisioner")
            };
            (
                s.networks.values().filter(|x| owned(&x.labels)).count(),
                s.groups.values().filter(|x| owned(&x.labels)).count(),
                s.firewalls.values().filter(|x| owned(&x.labels)).count(),
                s.servers.values().filter(|x| owned(&x.labels)).count(),
            )
        })
    }

    fn server_names(&self) -> BTreeSet<String> {
        self.fake
            .with(|s| s.servers.values().map(|x| x.name.clone()).collect())
    }

    /// Asserts the converged state of a cp+workers cluster and that nothing is duplicated.
    fn assert_converged(&self, cp: u32, workers: u32) {
        let (n, g, f, s) = self.owned_counts();
        assert_eq!(
            (n, g, f, s as u32),
            (1, 2, 1, cp + workers),
            "owned resource counts"
        );
        let mut want: BTreeSet<String> = (1..=cp).map(|i| format!("shop-cp-{i}")).collect();
        want.extend((1..=workers).map(|i| format!("shop-w-default-{i}")));
        let have: BTreeSet<String> = self
            .server_names()
            .into_iter()
            .filter(|n| n.starts_with("shop-"))
            .collect();
        assert_eq!(have, want);
    }
}

#[tokio::test]
async fn plan_from_empty_without_a_token_sends_nothing() {
    let h = Harness::new(3, 3).await;
    let env = Env::empty(h.dir.path()).var("HCLOUD_ENDPOINT", &h.fake.url());
    let (code, out, err) = h.run_env(env.clone(), &["plan"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("planning from an empty project"), "{out}");
    assert!(
        out.contains("+ server shop-cp-1 (control-plane, cpx21"),
        "{out}"
    );
    assert!(
        out.contains("Plan: 10 to create, 0 to change, 0 to replace, 0 to delete."),
        "{out}"
    );
    let (code, out, _) = h.run_env(env, &["plan", "--output", "json"]).await;
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["from_empty"], true);
    assert_eq!(v["steps"].as_array().unwrap().len(), 10);
    assert!(
        h.fake.exchanges().is_empty(),
        "plan without a token must not call the API"
    );
    h.validate_all();
}

#[tokio::test]
async fn plan_with_a_token_only_reads() {
    let h = Harness::new(3, 3).await;
    let (code, out, err) = h.run(&["plan", "-o", "json"]).await;
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["from_empty"], false);
    let steps = v["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 10);
    assert_eq!(steps[0]["action"], "create_network");
    let image = steps
        .iter()
        .find(|s| s["action"] == "create_server")
        .unwrap()["server"]["image"]
        .clone();
    assert_eq!(image, json!(h.image), "newest matching image is chosen");
    assert!(h.mutations().is_empty());
    h.validate_all();
}

#[tokio::test]
async fn up_creates_exactly_the_expected_resources() {
    let h = Harness::new(3, 3).await;
    let foreign = h
        .fake
        .add_foreign_server("someone-else", &[("cluster", "other")]);
    let (code, up_out, up_err) = h.run(&["up"]).await;
    assert_eq!(code, 0, "{up_out}\n{up_err}");
    assert!(up_out.contains("Cluster shop: 10 created"), "{up_out}");
    // The machine config (it holds secrets) is never printed.
    assert!(!up_out.contains("not-a-real-token") && !up_err.contains("not-a-real-token"));
    // Nor are the root passwords Hetzner returns for servers created without SSH keys.
    let passwords: Vec<String> = h.fake.with(|s| {
        s.servers
            .values()
            .filter_map(|x| x.root_password.clone())
            .collect()
    });
    assert_eq!(passwords.len(), 6);
    for p in &passwords {
        assert!(
            !up_out.contains(p.as_str()) && !up_err.contains(p.as_str()),
            "root password printed"
        );
    }
    h.assert_converged(3, 3);
    h.fake.with(|s| {
        let net = s.networks.values().next().unwrap();
        assert_eq!(net.name, "shop");
        assert_eq!(net.ip_range, "10.0.0.0/16");
        assert_eq!(net.subnets[0]["ip_range"], "10.0.1.0/24");
        assert_eq!(net.subnets[0]["network_zone"], "us-west");
        let groups: BTreeSet<&str> = s.groups.values().map(|g| g.name.as_str()).collect();
        assert_eq!(groups, BTreeSet::from(["shop-cp", "shop-w-default"]));
        assert!(s.groups.values().all(|g| g.kind == "spread"));
        let fw = s.firewalls.values().next().unwrap();
        let rules: Vec<(String, String, Value)> = fw
            .rules
            .iter()
            .map(|r| {
                (
                    r["protocol"].as_str().unwrap().into(),
                    r["port"].to_string(),
                    r["source_ips"].clone(),
                )
            })
            .collect();
        assert_eq!(
            rules,
            vec![
                ("icmp".into(), "null".into(), json!(["::/0"])),
                ("tcp".into(), "\"50000\"".into(), json!(["2001:db8::/32"])),
                ("tcp".into(), "\"6443\"".into(), json!(["2001:db8::/32"])),
            ]
        );
        assert!(fw.rules.iter().all(|r| r["direction"] == "in"));
        assert_eq!(fw.applied_to.len(), 1);
        assert_eq!(fw.applied_to[0]["type"], "label_selector");
        for srv in s.servers.values().filter(|x| x.name.starts_with("shop-")) {
            assert!(!srv.ipv4, "{} has a public IPv4", srv.name);
            assert!(srv.ipv6.is_some(), "{} has no IPv6", srv.name);
            assert_eq!(srv.location, "hil");
            assert_eq!(srv.image, h.image);
            assert_eq!(srv.status, "running");
            assert_eq!(srv.networks.len(), 1);
            assert_eq!(srv.networks[0].0, net.id);
            assert_eq!(srv.labels["cluster"], "shop");
            assert_eq!(srv.labels["managed-by"], "provisioner");
            assert_eq!(srv.labels["spec-hash"].len(), 16);
            let g = &s.groups[&srv.placement_group.unwrap()];
            if srv.name.contains("-cp-") {
                assert_eq!(srv.labels["role"], "control-plane");
                assert_eq!(srv.server_type, "cpx21");
                assert_eq!(g.name, "shop-cp");
                assert_eq!(srv.user_data, CP_CONFIG);
            } else {
                assert_eq!(srv.labels["role"], "worker");
                assert_eq!(srv.labels["pool"], "default");
                assert_eq!(srv.server_type, "cpx31");
                assert_eq!(g.name, "shop-w-default");
                assert_eq!(srv.user_data, WORKER_CONFIG);
            }
        }
        // The firewall's selector catches all six cluster servers and nothing else.
        let sel = fw.applied_to[0]["label_selector"]["selector"]
            .as_str()
            .unwrap();
        let exprs = fake::selector::parse(sel).unwrap();
        let hit: Vec<&str> = s
            .servers
            .values()
            .filter(|x| fake::selector::matches(&exprs, &x.labels))
            .map(|x| x.name.as_str())
            .collect();
        assert_eq!(hit.len(), 6);
        assert_eq!(s.servers[&foreign].labels["cluster"], "other");
    });
    // Exactly one mutating request per resource.
    assert_eq!(h.mutations().len(), 10);
    // The machine config (it holds secrets) never appears in the output.
    let (_, out, err) = h.run(&["status"]).await;
    assert!(!out.contains("not-a-real-token") && !err.contains("not-a-real-token"));
    h.validate_all();
}

#[tokio::test]
async fn second_up_makes_no_mutating_request() {
    let h = Harness::new(3, 3).await;
    h.up_ok().await;
    h.fake.clear_log();
    let (code, out, err) = h.run(&["up"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("is up to date"), "{out}");
    let log = h.fake.exchanges();
    assert!(
        log.iter().all(|x| !x.mutating),
        "no-op up mutated: {:?}",
        h.mutations()
    );
    assert!(log.len() <= 10, "no-op up used {} requests", log.len());
    let (code, out, _) = h.run(&["plan"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("No changes"), "{out}");
    h.validate_all();
}

#[tokio::test]
async fn crash_after_every_mutating_request_then_rerun_converges() {
    let (cp, workers) = (1, 2);
    // A clean run tells how many mutating requests an up makes.
    let clean = Harness::new(cp, workers).await;
    clean.up_ok().await;
    let total = clean.mutations().len();
    assert_eq!(total, 7);
    for k in 1..=total {
        let h = Harness::new(cp, workers).await;
        h.fake.set_faults(Faults {
            crash_after_mutations: Some(k),
            ..Default::default()
        });
        let (out, err) = (Capture::default(), Capture::default());
        let argv = vec!["provisioner".to_string(), "up".to_string()];
        let run = tokio::spawn(provisioner::run(argv, h.env(), out.sink(), err.sink()));
        // The "process" dies as soon as its k-th mutating request has taken effect.
        tokio::select! {
            _ = h.fake.crashed() => {}
            r = tokio::time::sleep(Duration::from_secs(20)) => panic!("crash fault never fired for k={k}: {r:?}"),
        }
        run.abort();
        let _ = run.await;
        assert_eq!(h.fake.with(|s| s.mutations), k, "k={k}");
        h.fake.set_faults(Faults::default());
        let (code, o, e) = h.run(&["up"]).await;
        assert_eq!(code, 0, "re-run after crash at k={k} failed:\n{o}\n{e}");
        h.assert_converged(cp, workers);
        assert!(
            h.fake
                .with(|s| s.servers.values().all(|x| x.status == "running")),
            "k={k}: servers not running"
        );
        // The re-run created exactly what was missing: no duplicate, no extra.
        assert_eq!(
            h.fake.with(|s| s.mutations),
            total,
            "k={k}: total mutating requests"
        );
        h.fake.clear_log();
        let (code, _, _) = h.run(&["up"]).await;
        assert_eq!(code, 0);
        assert!(h.mutations().is_empty(), "k={k}: third up still mutates");
        h.validate_all();
    }
}

#[tokio::test]
async fn crash_during_down_then_rerun_leaves_nothing() {
    let (cp, workers) = (1, 2);
    let probe = Harness::new(cp, workers).await;
    probe.up_ok().await;
    let before = probe.fake.with(|s| s.mutations);
    let (code, _, err) = probe.run(&["down", "--yes"]).await;
    assert_eq!(code, 0, "{err}");
    let total = probe.fake.with(|s| s.mutations) - before;
    // 3 servers, firewall detach + delete, 2 groups, 1 network.
    assert_eq!(total, 8);
    for k in 1..=total {
        let h = Harness::new(cp, workers).await;
        h.up_ok().await;
        let done = h.fake.with(|s| s.mutations);
        h.fake.set_faults(Faults {
            crash_after_mutations: Some(done + k),
            ..Default::default()
        });
        let (out, err) = (Capture::default(), Capture::default());
        let argv = ["provisioner", "down", "--yes"].map(String::from).to_vec();
        let run = tokio::spawn(provisioner::run(argv, h.env(), out.sink(), err.sink()));
        tokio::select! {
            _ = h.fake.crashed() => {}
            _ = tokio::time::sleep(Duration::from_secs(20)) => panic!("crash fault never fired for k={k}"),
        }
        run.abort();
        let _ = run.await;
        h.fake.set_faults(Faults::default());
        let (code, o, e) = h.run(&["down", "--yes"]).await;
        assert_eq!(code, 0, "down after crash at k={k}:\n{o}\n{e}");
        assert_eq!(h.owned_counts(), (0, 0, 0, 0), "k={k}");
        h.validate_all();
    }
}

#[tokio::test]
async fn yaml_spec_and_json_output() {
    let h = Harness::new(1, 1).await;
    let yaml = r#"name: shop
location: hil
control_plane: {count: 1, server_type: cpx21}
worker_pools:
  - {name: default, count: 1, server_type: cpx31}
image: {selector: os=talos}
firewall: {admin_sources: ["2001:db8::/32"]}
machine_config:
  files: {control_plane: controlplane.yaml, worker: worker.yaml}
"#;
    std::fs::write(h.dir.path().join("cluster.yaml"), yaml).unwrap();
    let (code, out, err) = h.run(&["up", "-f", "cluster.yaml", "-o", "json"]).await;
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["cluster"], "shop");
    assert_eq!(v["outcome"]["created"].as_array().unwrap().len(), 6);
    assert_eq!(v["requests"]["writes"], 6);
    h.assert_converged(1, 1);
    std::fs::write(
        h.dir.path().join("cluster.yaml"),
        format!("{yaml}colour: blue\n"),
    )
    .unwrap();
    let (code, _, err) = h.run(&["plan", "-f", "cluster.yaml"]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("cluster.yaml:10:1: unknown field `colour`"),
        "{err}"
    );
    h.validate_all();
}

#[tokio::test]
async fn down_deletes_only_what_the_cluster_owns() {
    let h = Harness::new(3, 2).await;
    h.up_ok().await;
    let other = h.fake.add_foreign_server(
        "other-1",
        &[("cluster", "other"), ("managed-by", "provisioner")],
    );
    let lookalike = h
        .fake
        .add_foreign_server("shop-lookalike", &[("cluster", "shop")]);
    let (net, cp1) = h.fake.with(|s| {
        let net = *s.networks.keys().next().unwrap();
        let cp1 = s
            .servers
            .values()
            .find(|x| x.name == "shop-cp-1")
            .unwrap()
            .id;
        (net, cp1)
    });
    let our_lb = h.fake.add_load_balancer(
        "a1b2c3",
        &[("hcloud-ccm/service-uid", "uid-1")],
        vec![net],
        vec![],
    );
    let foreign_lb = h.fake.add_load_balancer(
        "other-lb",
        &[("hcloud-ccm/service-uid", "uid-2")],
        vec![],
        vec![],
    );
    let plain_lb = h
        .fake
        .add_load_balancer("manual-lb", &[], vec![], vec![cp1]);
    let our_vol = h.fake.add_volume("pvc-1234", &[], Some(cp1));
    let foreign_vol = h.fake.add_volume("pvc-9999", &[], None);

    // Without a terminal, down needs --yes; nothing is deleted.
    let before = h.fake.exchanges().len();
    let (code, _, err) = h.run(&["down"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("--yes"), "{err}");
    assert!(h.fake.exchanges()[before..].iter().all(|x| !x.mutating));

    // With delete protection in the spec, down refuses.
    h.write_spec(&spec_text(3, 2).replace(
        "fallback_locations",
        "delete_protection = true\nfallback_locations",
    ));
    let (code, _, err) = h.run(&["down", "--yes"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("delete_protection"), "{err}");
    h.write_spec(&spec_text(3, 2));

    // On a terminal the cluster name must be typed.
    let mut env = h.env();
    env.terminal = true;
    env.prompt = Some(std::sync::Arc::new(|_: &str| Some("wrong".to_string())));
    let (code, _, err) = h.run_env(env, &["down"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("did not match"), "{err}");
    assert_eq!(h.owned_counts(), (1, 2, 1, 5));

    h.fake.clear_log();
    let (code, out, err) = h.run(&["down", "--yes", "--include-cluster-created"]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(h.owned_counts(), (0, 0, 0, 0));
    h.fake.with(|s| {
        assert!(s.servers.contains_key(&other) && s.servers.contains_key(&lookalike));
        assert!(
            !s.load_balancers.contains_key(&our_lb),
            "CCM load balancer of the cluster left behind"
        );
        assert!(
            s.load_balancers.contains_key(&foreign_lb) && s.load_balancers.contains_key(&plain_lb)
        );
        assert!(
            !s.volumes.contains_key(&our_vol),
            "CSI volume of the cluster left behind"
        );
        assert!(s.volumes.contains_key(&foreign_vol));
    });
    // Deletes touched only owned ids.
    let touched: Vec<String> = h.mutations().iter().map(|x| x.path.clone()).collect();
    for id in [other, lookalike, foreign_lb, plain_lb, foreign_vol] {
        assert!(
            !touched.iter().any(|p| p.ends_with(&format!("/{id}"))),
            "touched foreign {id}: {touched:?}"
        );
    }
    // down again: nothing left, no mutation.
    h.fake.clear_log();
    let (code, out, _) = h.run(&["down", "--yes"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("Nothing owned"), "{out}");
    assert!(h.mutations().is_empty());
    h.validate_all();
}

#[tokio::test]
async fn survives_429_storms_and_5xx_bursts() {
    let h = Harness::new(3, 3).await;
    h.fake.set_faults(Faults {
        slow_paths: vec![("/actions".into(), Duration::from_millis(15))],
        rate_limit_burst: 8,
        server_errors: vec![
            ServerErrorFault {
                method: Some("POST".into()),
                path_prefix: "/servers".into(),
                remaining: 4,
                status: 503,
            },
            ServerErrorFault {
                method: Some("GET".into()),
                path_prefix: "/servers".into(),
                remaining: 2,
                status: 500,
            },
            ServerErrorFault {
                method: Some("GET".into()),
                path_prefix: "/actions".into(),
                remaining: 3,
                status: 502,
            },
            ServerErrorFault {
                method: None,
                path_prefix: "/networks".into(),
                remaining: 2,
                status: 500,
            },
        ],
        ..Default::default()
    });
    h.up_ok().await;
    h.assert_converged(3, 3);
    let log = h.fake.exchanges();
    assert_eq!(log.iter().filter(|x| x.status == 429).count(), 8);
    assert_eq!(log.iter().filter(|x| x.status >= 500).count(), 11);
    h.validate_all();
}

#[tokio::test]
async fn lost_answers_to_creates_are_retried_without_duplicates() {
    let h = Harness::new(3, 3).await;
    let lost = |path: &str, n: usize| ServerErrorFault {
        method: Some("POST".into()),
        path_prefix: path.into(),
        remaining: n,
        status: 502,
    };
    h.fake.set_faults(Faults {
        lost_responses: vec![
            lost("/servers", 3),
            lost("/networks", 1),
            lost("/placement_groups", 1),
            lost("/firewalls", 1),
        ],
        ..Default::default()
    });
    let (code, out, err) = h.run(&["up"]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    h.assert_converged(3, 3);
    // Every adopted server is waited for until it runs.
    assert!(h
        .fake
        .with(|s| s.servers.values().all(|x| x.status == "running")));
    let conflicts = h
        .fake
        .exchanges()
        .iter()
        .filter(|x| x.status == 409)
        .count();
    assert_eq!(
        conflicts, 6,
        "each retried create meets its first attempt's resource"
    );
    h.fake.clear_log();
    h.up_ok().await;
    assert!(h.mutations().is_empty());
    h.validate_all();
}

#[tokio::test]
async fn a_foreign_resource_with_our_name_is_not_adopted() {
    let h = Harness::new(1, 1).await;
    h.fake
        .add_foreign_server("shop-cp-1", &[("cluster", "shop")]);
    let (code, _, err) = h.run(&["up"]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains(
            "a server named \"shop-cp-1\" already exists but is not owned by this cluster"
        ),
        "{err}"
    );
    h.validate_all();
}

#[tokio::test]
async fn exhausted_rate_limit_budget_is_waited_out() {
    // A tiny budget refilling 20 requests per second: up must pace itself, not fail.
    let config = Config {
        rate_limit: 5,
        refill_per_sec: 20.0,
        ..Default::default()
    };
    let h = Harness::with_config(1, 1, config).await;
    h.up_ok().await;
    h.assert_converged(1, 1);
    h.validate_all();
}

#[tokio::test]
async fn spec_errors_are_reported_before_any_request() {
    let h = Harness::new(3, 3).await;
    let good = spec_text(3, 3);
    let cases: Vec<(String, &str)> = vec![
        (
            good.replace(
                "fallback_locations = []",
                "fallback_locations = []\nregion = \"x\"",
            ),
            "cluster.toml:4:1: unknown field `region`",
        ),
        (
            good.replace(
                "count = 3\nserver_type = \"cpx21\"",
                "count = 4\nserver_type = \"cpx21\"",
            ),
            "control_plane.count is 4: use 1, 3 or 5",
        ),
        (
            good.replace(
                "count = 3\nserver_type = \"cpx31\"",
                "count = 12\nserver_type = \"cpx31\"",
            ),
            "a spread placement group holds at most 10",
        ),
        (
            good.replace("name = \"shop\"", "name = \"Shop.Prod\""),
            "is not DNS-safe",
        ),
        (
            good.replace("selector = \"os=talos\"", "id = 5\nselector = \"os=talos\""),
            "set only one of them",
        ),
        (
            good.replace("worker = \"worker.yaml\"", "worker = \"missing.yaml\""),
            "missing.yaml",
        ),
        (
            good.replace("subnet = \"10.0.1.0/24\"", "subnet = \"10.0.1.0/33\""),
            "network.subnet \"10.0.1.0/33\" is not an IPv4 CIDR",
        ),
        (
            good.replace("[\"2001:db8::/32\"]", "[\"everyone\"]"),
            "\"everyone\" is not a CIDR",
        ),
        (
            good.replace(
                "count = 3\nserver_type = \"cpx21\"",
                "count = \"three\"\nserver_type = \"cpx21\"",
            ),
            "cluster.toml:10:9: invalid type: string \"three\", expected u32",
        ),
    ];
    for (text, want) in cases {
        h.write_spec(&text);
        for cmd in ["up", "plan"] {
            let (code, _, err) = h.run(&[cmd]).await;
            assert_eq!(code, 1, "{cmd} accepted a bad spec ({want})");
            assert!(err.contains(want), "{cmd}: want {want:?} in:\n{err}");
        }
    }
    // User data over 32 KiB.
    h.write_spec(&good);
    std::fs::write(h.dir.path().join("worker.yaml"), "#".repeat(33 * 1024)).unwrap();
    let (code, _, err) = h.run(&["up"]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("32 KiB") && err.contains("shop-w-default-1"),
        "{err}"
    );
    assert!(
        h.fake.exchanges().is_empty(),
        "requests were sent for an invalid spec"
    );
}

#[tokio::test]
async fn unknown_location_is_checked_offline_or_against_the_api() {
    let h = Harness::new(1, 1).await;
    h.write_spec(&spec_text(1, 1).replace("location = \"hil\"", "location = \"moon\""));
    let offline = Env::empty(h.dir.path());
    let (code, _, err) = h.run_env(offline, &["plan"]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("location \"moon\" is unknown: use one of fsn1, nbg1, hel1, ash, hil, sin"),
        "{err}"
    );
    assert!(h.fake.exchanges().is_empty());
    for cmd in ["plan", "up"] {
        let (code, _, err) = h.run(&[cmd]).await;
        assert_eq!(code, 1);
        assert!(err.contains("location \"moon\" is not offered by Hetzner: use one of fsn1, nbg1, hel1, ash, hil, sin"), "{err}");
    }
    assert!(h.mutations().is_empty());
    h.validate_all();
}

#[tokio::test]
async fn unknown_server_type_and_location_list_the_valid_ones() {
    let h = Harness::new(1, 1).await;
    h.write_spec(&spec_text(1, 1).replace("cpx31", "cpx99"));
    let (code, _, err) = h.run(&["up"]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("server type \"cpx99\" is not offered by Hetzner: use one of")
            && err.contains("cpx21"),
        "{err}"
    );
    h.write_spec(&spec_text(1, 1).replace("cpx31", "cax11"));
    let (code, _, err) = h.run(&["up"]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("server type \"cax11\" is not offered in hil: choose another type or a location where it is offered (fsn1, nbg1, hel1)"),
        "{err}"
    );
    h.write_spec(&spec_text(1, 1).replace(
        "selector = \"os=talos\"",
        "selector = \"os=talos,version=v0\"",
    ));
    let (code, _, err) = h.run(&["up"]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("no image matches selector \"os=talos,version=v0\""),
        "{err}"
    );
    assert!(h.mutations().is_empty());
    h.validate_all();
}

#[tokio::test]
async fn bad_token_names_hcloud_token_and_the_permission() {
    let h = Harness::new(1, 1).await;
    let env = |t: &str| {
        let mut e = Env::empty(h.dir.path()).var("HCLOUD_ENDPOINT", &h.fake.url());
        if !t.is_empty() {
            e = e.var("HCLOUD_TOKEN", t);
        }
        e.time_scale = 0.01;
        e
    };
    for (token, want) in [
        ("", "no Hetzner API token"),
        ("wrong", "rejected the token (401"),
        (fake::READ_ONLY_TOKEN, "may only read"),
    ] {
        let (code, _, err) = h.run_env(env(token), &["up"]).await;
        assert_eq!(code, 1);
        assert!(err.contains(want), "{err}");
        assert!(
            err.contains("HCLOUD_TOKEN") && err.contains("\"Read & Write\""),
            "{err}"
        );
        assert!(
            !err.contains("wrong"),
            "the token must not be echoed: {err}"
        );
    }
    assert_eq!(h.owned_counts(), (0, 0, 0, 0));
    // --token-file works.
    std::fs::write(h.dir.path().join("token"), format!("{}\n", fake::TOKEN)).unwrap();
    let (code, _, err) = h.run_env(env(""), &["up", "--token-file", "token"]).await;
    assert_eq!(code, 0, "{err}");
    h.assert_converged(1, 1);
    h.validate_all();
}

#[tokio::test]
async fn capacity_errors_fall_back_to_the_next_location() {
    let h = Harness::new(1, 1).await;
    // Fallbacks must share the private network's zone: fsn1 -> nbg1 (eu-central).
    h.write_spec(&spec_text(1, 1).replace(
        "location = \"hil\"\nfallback_locations = []",
        "location = \"fsn1\"\nfallback_locations = [\"nbg1\"]",
    ));
    h.fake.set_faults(Faults {
        unavailable_locations: ["fsn1".to_string()].into(),
        ..Default::default()
    });
    h.up_ok().await;
    h.assert_converged(1, 1);
    assert!(h
        .fake
        .with(|s| s.servers.values().all(|x| x.location == "nbg1")));
    h.fake.with(|s| {
        assert_eq!(
            s.networks.values().next().unwrap().subnets[0]["network_zone"],
            "eu-central"
        )
    });
    h.validate_all();

    // A fallback in another zone is rejected up front: its servers could not join.
    let h = Harness::new(1, 1).await;
    h.write_spec(
        &spec_text(1, 1).replace("fallback_locations = []", "fallback_locations = [\"ash\"]"),
    );
    let (code, _, err) = h.run(&["up"]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("location \"ash\" is in network zone us-east"),
        "{err}"
    );
    assert!(h.fake.exchanges().is_empty());

    // Without a fallback the error says what failed where.
    h.write_spec(&spec_text(1, 1));
    h.fake.set_faults(Faults {
        unavailable_locations: ["hil".to_string()].into(),
        ..Default::default()
    });
    let (code, _, err) = h.run(&["up"]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("could not be created in any location (hil)")
            && err.contains("resource_unavailable"),
        "{err}"
    );
    h.validate_all();
}

#[tokio::test]
async fn failed_actions_are_reported() {
    let h = Harness::new(1, 1).await;
    h.fake.set_faults(Faults {
        fail_actions: [("create_server".to_string(), 1)].into(),
        ..Default::default()
    });
    let (code, _, err) = h.run(&["up"]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("(create_server) failed: action_failed"),
        "{err}"
    );
    h.validate_all();
}

#[tokio::test]
async fn lockdown_closes_the_bootstrap_window_and_stays_closed() {
    let h = Harness::new(1, 1).await;
    // On a terminal, progress is drawn as spinners (hidden when stderr is not a tty).
    let mut env = h.env();
    env.terminal = true;
    let (code, _, err) = h.run_env(env, &["up"]).await;
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = h.run(&["lockdown"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("no public inbound port"), "{out}");
    h.fake.with(|s| {
        let fw = s.firewalls.values().next().unwrap();
        assert_eq!(fw.rules.len(), 1);
        assert_eq!(fw.rules[0]["protocol"], "icmp");
    });
    h.fake.clear_log();
    h.up_ok().await;
    assert!(
        h.mutations().is_empty(),
        "up re-opened the firewall: {:?}",
        h.mutations()
    );
    h.validate_all();
}

#[tokio::test]
async fn scale_down_deletes_highest_and_replacement_needs_consent() {
    let h = Harness::new(1, 3).await;
    h.up_ok().await;
    h.write_spec(&spec_text(1, 1));
    let (code, out, _) = h.run(&["plan"]).await;
    assert_eq!(code, 0);
    let a = out.find("- server shop-w-default-3").expect(&out);
    let b = out.find("- server shop-w-default-2").expect(&out);
    assert!(a < b);
    h.up_ok().await;
    h.assert_converged(1, 1);

    h.write_spec(&spec_text(1, 1).replace("cpx21", "cpx41"));
    h.fake.clear_log();
    let (code, _, err) = h.run(&["up"]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("--allow-replace") && err.contains("server type cpx21 -> cpx41"),
        "{err}"
    );
    assert!(h.mutations().is_empty());
    let (_, plan_out, _) = h.run(&["plan"]).await;
    assert!(
        plan_out.contains("-/+ server shop-cp-1 (server type cpx21 -> cpx41)"),
        "{plan_out}"
    );
    assert!(plan_out.contains("--allow-replace"), "{plan_out}");
    let (code, _, err) = h.run(&["up", "--allow-replace"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(h.fake.with(|s| s
        .servers
        .values()
        .any(|x| x.name == "shop-cp-1" && x.server_type == "cpx41")));
    h.validate_all();
}

#[tokio::test]
async fn firewall_drift_and_config_changes_are_repaired_in_place() {
    let h = Harness::new(1, 2).await;
    h.up_ok().await;
    // Someone removed the firewall's target and opened SSH.
    h.fake.with(|s| {
        let fw = s.firewalls.values_mut().next().unwrap();
        fw.applied_to.clear();
        fw.rules.push(json!({"direction": "in", "protocol": "tcp", "port": "22", "source_ips": ["::/0"], "destination_ips": [], "description": null}));
    });
    h.fake.clear_log();
    h.up_ok().await;
    let paths: BTreeSet<String> = h
        .mutations()
        .iter()
        .map(|x| x.path.rsplit('/').next().unwrap().to_string())
        .collect();
    assert_eq!(
        paths,
        BTreeSet::from(["set_rules".to_string(), "apply_to_resources".to_string()])
    );
    h.fake.with(|s| {
        let fw = s.firewalls.values().next().unwrap();
        assert_eq!(fw.rules.len(), 3);
        assert_eq!(fw.applied_to.len(), 1);
    });
    // A new worker machine config relabels the workers (no replacement).
    std::fs::write(
        h.dir.path().join("worker.yaml"),
        format!("{WORKER_CONFIG}# v2\n"),
    )
    .unwrap();
    h.fake.clear_log();
    let (code, out, _) = h.run(&["plan"]).await;
    assert_eq!(code, 0);
    assert!(
        out.contains("~ server shop-w-default-1: relabel (machine config changed"),
        "{out}"
    );
    h.up_ok().await;
    let muts = h.mutations();
    assert_eq!(muts.len(), 2);
    assert!(muts.iter().all(|x| x.method == "PUT"));
    h.fake.clear_log();
    h.up_ok().await;
    assert!(h.mutations().is_empty());
    h.validate_all();
}

#[tokio::test]
async fn status_reports_what_exists() {
    let h = Harness::new(1, 1).await;
    h.up_ok().await;
    let (code, out, _) = h.run(&["status", "-o", "json"]).await;
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["servers"].as_array().unwrap().len(), 2);
    assert_eq!(v["servers"][0]["ipv4"], false);
    assert!(v["servers"][0]["ipv6"].as_str().unwrap().contains(':'));
    assert_eq!(v["firewalls"][0]["phase"], "bootstrap");
    let (_, text, _) = h.run(&["status"]).await;
    assert!(
        text.contains("server shop-cp-1 running cpx21 hil"),
        "{text}"
    );
    h.validate_all();
}

#[tokio::test]
async fn init_writes_a_spec_that_validates() {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (Capture::default(), Capture::default());
    let args = ["provisioner", "init", "--name", "edge"]
        .map(String::from)
        .to_vec();
    let code = provisioner::run(args.clone(), Env::empty(dir.path()), out.sink(), err.sink()).await;
    assert_eq!(code, 0, "{}", err.text());
    let spec = provisioner::spec::ClusterSpec::load(&dir.path().join("cluster.toml")).unwrap();
    assert_eq!(spec.name, "edge");
    assert!(spec.problems().is_empty());
    let code = provisioner::run(args, Env::empty(dir.path()), out.sink(), err.sink()).await;
    assert_eq!(code, 1);
    assert!(err.text().contains("--force"));
}

/// The fake itself rejects what Hetzner rejects.
#[tokio::test]
async fn fake_rejects_what_hetzner_rejects() {
    let h = Harness::new(1, 1).await;
    let http = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        http.post(format!("{}{path}", h.fake.url()))
            .bearer_auth(fake::TOKEN)
            .json(&body)
            .send()
    };
    let code = |r: Value| r["error"]["code"].as_str().unwrap_or("").to_string();
    let r = post(
        "/servers",
        json!({"name": "bad_name!", "server_type": "cx22", "image": h.image.to_string()}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(code(r.json().await.unwrap()), "invalid_input");
    let r = post(
        "/servers",
        json!({"name": "x", "image": h.image.to_string()}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    let r = post(
        "/servers",
        json!({"name": "x", "server_type": "cx999", "image": h.image.to_string()}),
    )
    .await
    .unwrap();
    assert_eq!(code(r.json().await.unwrap()), "invalid_input");
    let ok = post(
        "/servers",
        json!({"name": "dup", "server_type": "cx22", "image": h.image.to_string()}),
    )
    .await
    .unwrap();
    assert_eq!(ok.status(), 201);
    let r = post(
        "/servers",
        json!({"name": "dup", "server_type": "cx22", "image": h.image.to_string()}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 409);
    assert_eq!(code(r.json().await.unwrap()), "uniqueness_error");
    let r = post("/servers", json!({"name": "nonet", "server_type": "cx22", "image": h.image.to_string(), "public_net": {"enable_ipv4": false, "enable_ipv6": false}})).await.unwrap();
    assert_eq!(r.status(), 400);
    let r = post("/firewalls", json!({"name": "fw", "rules": [{"direction": "in", "protocol": "tcp", "source_ips": ["::/0"]}]})).await.unwrap();
    assert_eq!(r.status(), 400, "tcp rule without port accepted");
    let net: Value = post("/networks", json!({"name": "n", "ip_range": "10.0.0.0/16", "subnets": [{"type": "cloud", "ip_range": "10.0.1.0/24", "network_zone": "us-west"}]})).await.unwrap().json().await.unwrap();
    let r = post("/servers", json!({"name": "far", "server_type": "cx22", "image": h.image.to_string(), "location": "fsn1", "networks": [net["network"]["id"]]})).await.unwrap();
    assert_eq!(r.status(), 400, "server joined a network outside its zone");
    let r = http
        .get(format!("{}/servers", h.fake.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("ratelimit-remaining"));
    // Pagination and label selectors.
    for i in 0..7 {
        h.fake.add_foreign_server(
            &format!("p-{i}"),
            &[("tier", if i % 2 == 0 { "a" } else { "b" })],
        );
    }
    let get = |q: &str| {
        let url = format!("{}/servers?{q}", h.fake.url());
        let http = http.clone();
        async move {
            http.get(url)
                .bearer_auth(fake::TOKEN)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let v = get("per_page=3&page=2&label_selector=tier").await;
    assert_eq!(v["servers"].as_array().unwrap().len(), 3);
    assert_eq!(v["meta"]["pagination"]["total_entries"], 7);
    assert_eq!(v["meta"]["pagination"]["next_page"], 3);
    assert_eq!(v["meta"]["pagination"]["previous_page"], 1);
    assert_eq!(
        get("label_selector=tier%20in%20(a)").await["servers"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    assert_eq!(
        get("label_selector=tier%20notin%20(a),tier").await["servers"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        get("label_selector=tier!%3Da").await["servers"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    assert_eq!(
        get("label_selector=!tier").await["servers"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Actions progress from running to success.
    let created: Value = ok.json().await.unwrap();
    assert_eq!(created["action"]["status"], "running");
    tokio::time::sleep(Duration::from_millis(150)).await;
    let id = created["action"]["id"].as_u64().unwrap();
    let a: Value = http
        .get(format!("{}/actions?id={id}", h.fake.url()))
        .bearer_auth(fake::TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(a["actions"][0]["status"], "success");
    // The requests above are deliberately invalid; every response must still conform.
    if let Some(api) = openapi() {
        let problems: Vec<String> = h
            .fake
            .exchanges()
            .iter()
            .flat_map(|x| api.validate(x))
            .filter(|p| !p.contains(" request:"))
            .collect();
        assert!(problems.is_empty(), "{problems:#?}");
    }
}

/// The validator is not a rubber stamp: it flags wrong shapes.
#[test]
fn openapi_validator_flags_wrong_requests_and_responses() {
    let Some(api) = openapi() else { return };
    let bad_request = Exchange {
        method: "POST".into(),
        path: "/v1/servers".into(),
        query: vec![],
        request: Some(
            json!({"name": "x", "server_type": "cx22", "image": "1", "public_net": {"enable_ipv4": "no"}, "colour": "red"}),
        ),
        status: 201,
        response: Some(json!({"server": {"id": 1}})),
        mutating: true,
        seq: 0,
    };
    let p = api.validate(&bad_request);
    assert!(
        p.iter()
            .any(|m| m.contains("request") && m.contains("enable_ipv4")),
        "{p:?}"
    );
    assert!(p.iter().any(|m| m.contains("colour")), "{p:?}");
    assert!(p.iter().any(|m| m.contains("response 201")), "{p:?}");
    let bad_path = Exchange {
        path: "/v1/servers/1/actions/teleport".into(),
        ..bad_request.clone()
    };
    assert!(!api.validate(&bad_path).is_empty());
    let bad_query = Exchange {
        method: "GET".into(),
        path: "/v1/servers".into(),
        query: vec![("labelselector".into(), "a=b".into())],
        request: None,
        status: 200,
        response: Some(
            json!({"servers": [], "meta": {"pagination": {"page": 1, "per_page": 25, "previous_page": null, "next_page": null, "last_page": 1, "total_entries": 0}}}),
        ),
        mutating: false,
        seq: 0,
    };
    let p = api.validate(&bad_query);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].contains("labelselector"));
}

/// The `tunnel` and `secrets` groups of the tunnel crate are wired into the
/// provisioner CLI: paths resolve against the working directory, output and
/// exit codes come back through `provisioner::run`.
#[tokio::test]
async fn tunnel_and_secrets_groups_run_through_the_provisioner_cli() {
    let root = shopedge_tests::shared_data::repo_root();
    let spec = std::fs::read_to_string(root.join("infra/apps/cloudflared/tunnel.toml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cf = dir.path().join("infra/apps/cloudflared");
    std::fs::create_dir_all(&cf).unwrap();
    std::fs::write(cf.join("tunnel.toml"), spec).unwrap();
    let run = |args: &[&str]| {
        let argv: Vec<String> = std::iter::once("provisioner")
            .chain(args.iter().copied())
            .map(String::from)
            .collect();
        let (out, err) = (Capture::default(), Capture::default());
        let env = Env::empty(dir.path());
        async move {
            let code = provisioner::run(argv, env, out.sink(), err.sink()).await;
            (code, out.text(), err.text())
        }
    };
    // A stale (missing) render fails the check and names the fix.
    let (code, _, err) = run(&["tunnel", "render-manifests", "--check"]).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("error:"), "{err}");
    let (code, _, err) = run(&["tunnel", "render-manifests"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(cf.join("deployment.yaml").is_file());
    let (code, _, err) = run(&["tunnel", "render-manifests", "--check"]).await;
    assert_eq!(code, 0, "{err}");
    // The committed manifests of this repository are up to date.
    let (out, err) = (Capture::default(), Capture::default());
    let args = ["provisioner", "tunnel", "render-manifests", "--check"].map(String::from);
    let code = provisioner::run(args.to_vec(), Env::empty(&root), out.sink(), err.sink()).await;
    assert_eq!(code, 0, "{}", err.text());
    // Tampering is detected.
    let dep = cf.join("deployment.yaml");
    let text = std::fs::read_to_string(&dep).unwrap();
    std::fs::write(&dep, text.replace("replicas: 2", "replicas: 1")).unwrap();
    let (code, _, err) = run(&["tunnel", "render-manifests", "--check"]).await;
    assert_eq!(code, 1, "{err}");
    // `secrets` is reachable too: an unknown environment name is refused by the group.
    let (code, _, err) = run(&["secrets", "list", "--env", "Bad Env"]).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("error:"), "{err}");
    // clap usage errors of the group come back as exit code 2.
    let (code, _, _) = run(&["tunnel", "no-such-command"]).await;
    assert_eq!(code, 2);
}
