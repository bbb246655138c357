//! platform: the add-on apply logic against the fake Kubernetes API server
//! (tests/src/kube_fake), bad input, and the cluster status.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use platform::apply::{apply_addons, ApplyOptions, NoProgress, Outcome};
use platform::{plan_addons, AddonPlan, PlanInputs, PlatformError, SecretValue};
use shopedge_tests::kube_fake::{KubeFake, Recorded, Rollout};
use shopedge_tests::shared_data::repo_root;

const SECRET_INPUTS: [(&str, &str); 12] = [
    (
        "hcloud.token",
        "hc-token-7f3a9c1e5b2d4f6a8c0e2b4d6f8a0c2e4b6d8f0a2c4e6b8d0f2a4c6e8b0d2f4a",
    ),
    ("hcloud.network", "shop-net"),
    (
        "cloudflared.tunnel-token",
        "cf-tunnel-token-eyJhIjoiMTIzIiwidCI6IjQ1NiIsInMiOiI3ODkifQ",
    ),
    ("b2.key-id", "0041b2keyidexample0000000001"),
    ("b2.application-key", "K004b2applicationkeyexample000000000"),
    ("redis.password", "redis-pw-2c7e9a4b1d3f5e7a"),
    ("medusa.jwt-secret", "jwt-secret-9d8c7b6a5f4e3d2c1b0a"),
    ("medusa.cookie-secret", "cookie-secret-1a2b3c4d5e6f7a8b9c0d"),
    ("grafana.admin-user", "admin"),
    ("grafana.admin-password", "grafana-pw-5e6f7a8b9c0d1e2f"),
    ("postgres.medusa-user", "medusa"),
    ("postgres.medusa-password", "pg-pw-3b4c5d6e7f8a9b0c1d2e"),
];

fn inputs() -> PlanInputs {
    PlanInputs {
        environment: "production".into(),
        repo_url: "https://github.com/example/shop-fork".into(),
        revision: "v1.2.3".into(),
        secrets: SECRET_INPUTS
            .iter()
            .map(|(k, v)| (k.to_string(), SecretValue::new(*v)))
            .collect(),
    }
}

fn fast() -> ApplyOptions {
    ApplyOptions {
        poll_interval: Duration::from_millis(5),
        timeout: Some(Duration::from_secs(5)),
    }
}

async fn fake_with_nodes() -> KubeFake {
    let f = KubeFake::start().await;
    for (i, cp) in [(1, true), (2, true), (3, true)] {
        f.add_node(&format!("shop-cp-{i}"), true, cp);
    }
    f
}

async fn connect(f: &KubeFake) -> platform::Connection {
    platform::connect(&f.kubeconfig(), SystemTime::now())
        .await
        .expect("connect to the fake")
}

/// Collects progress events as text.
#[derive(Default)]
struct Collect(std::sync::Mutex<Vec<String>>);

impl platform::Progress for Collect {
    fn event(&self, e: &platform::ProgressEvent<'_>) {
        use platform::ProgressEvent as E;
        let line = match e {
            E::StepStarted { step, objects } => format!("started {step} ({objects})"),
            E::Applied {
                object, outcome, ..
            } => format!("applied {object} {}", format!("{outcome:?}").to_lowercase()),
            E::Waiting { object, detail, .. } => format!("waiting {object}: {detail}"),
            E::Ready { object, .. } => format!("ready {object}"),
            E::StepDone { step, .. } => format!("done {step}"),
        };
        self.0.lock().expect("events").push(line);
    }
}

fn patches(reqs: &[Recorded]) -> Vec<&Recorded> {
    reqs.iter().filter(|r| r.method == "PATCH").collect()
}

fn index_of(reqs: &[Recorded], method: &str, path_end: &str) -> usize {
    reqs.iter()
        .position(|r| r.method == method && r.path.ends_with(path_end))
        .unwrap_or_else(|| {
            panic!(
                "no {method} ...{path_end} in {:#?}",
                reqs.iter()
                    .map(|r| format!("{} {}", r.method, r.path))
                    .collect::<Vec<_>>()
            )
        })
}

/// Write a small infra tree: `files` are (relative path, content).
fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().expect("tempdir");
    let infra = d.path().join("infra");
    for (p, c) in files {
        let path = infra.join(p);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, c).expect("write");
    }
    d
}

fn infra(d: &tempfile::TempDir) -> PathBuf {
    d.path().join("infra")
}

const NS: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: demo\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: default-deny\n  namespace: demo\nspec:\n  podSelector: {}\n  policyTypes: [Ingress, Egress]\n";
const KUST: &str = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n";

fn deployment(name: &str, replicas: u32, extra_annotations: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: demo
  annotations:
    note: demo{extra_annotations}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      securityContext: {{runAsNonRoot: true}}
      affinity:
        podAntiAffinity:
          preferredDuringSchedulingIgnoredDuringExecution:
            - weight: 100
              podAffinityTerm:
                topologyKey: kubernetes.io/hostname
                labelSelector:
                  matchLabels: {{app: {name}}}
      containers:
        - name: main
          image: registry.example.com/{name}:1.0.0
          readinessProbe: {{httpGet: {{path: /ready, port: 8080}}}}
          livenessProbe: {{httpGet: {{path: /live, port: 8080}}}}
          resources:
            requests: {{cpu: 10m, memory: 16Mi}}
            limits: {{cpu: 100m, memory: 64Mi}}
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities: {{drop: [ALL]}}
"#
    )
}

const PDB: &str = "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: web\n  namespace: demo\nspec:\n  minAvailable: 1\n  selector:\n    matchLabels: {app: web}\n";

const WIDGET_CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  names: {kind: Widget, plural: widgets, singular: widget, listKind: WidgetList}
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
"#;
const WIDGET: &str = "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w1\n  namespace: demo\nspec:\n  size: 3\n";

fn demo_tree(with_crd: bool, web_annotations: &str) -> tempfile::TempDir {
    let web = deployment("web", 2, web_annotations);
    let mut files: Vec<(&str, String)> = vec![
        (
            "bootstrap/10-base/kustomization.yaml",
            format!("{KUST}  - ns.yaml\n  - web.yaml\n  - pdb.yaml\n"),
        ),
        ("bootstrap/10-base/ns.yaml", NS.to_string()),
        ("bootstrap/10-base/web.yaml", web),
        ("bootstrap/10-base/pdb.yaml", PDB.to_string()),
        ("bootstrap/20-widgets/widget.yaml", WIDGET.to_string()),
    ];
    if with_crd {
        files.push((
            "bootstrap/20-widgets/kustomization.yaml",
            format!("{KUST}  - crd.yaml\n  - widget.yaml\n"),
        ));
        files.push(("bootstrap/20-widgets/crd.yaml", WIDGET_CRD.to_string()));
    } else {
        files.push((
            "bootstrap/20-widgets/kustomization.yaml",
            format!("{KUST}  - widget.yaml\n"),
        ));
    }
    let refs: Vec<(&str, &str)> = files.iter().map(|(p, c)| (*p, c.as_str())).collect();
    tree(&refs)
}

fn demo_inputs() -> PlanInputs {
    PlanInputs {
        environment: "staging".into(),
        repo_url: "https://example.com/r".into(),
        revision: "main".into(),
        secrets: BTreeMap::new(),
    }
}

// ---------------------------------------------------------------- the real plan

fn real_plan() -> Option<AddonPlan> {
    let root = repo_root().join("infra");
    if !root.join("apps").join("cloudflared").is_dir() {
        eprintln!("notice: infra/apps/cloudflared is not there yet; the real plan cannot be built");
        return None;
    }
    Some(
        plan_addons(&root, &inputs())
            .unwrap_or_else(|e| panic!("the repository's bootstrap plan is invalid:\n{e}")),
    )
}

#[tokio::test]
async fn real_plan_applies_in_documented_order_with_server_side_apply_and_is_idempotent() {
    let Some(plan) = real_plan() else { return };
    let names: Vec<&str> = plan.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "cilium",
            "hcloud-ccm",
            "hcloud-csi",
            "namespaces",
            "cloudflared",
            "argocd",
            "root-app"
        ]
    );
    let f = fake_with_nodes().await;
    let conn = connect(&f).await;
    let report = apply_addons(&conn, &plan, &fast(), &NoProgress)
        .await
        .expect("first apply");
    let reqs = f.requests();
    let p = patches(&reqs);
    assert!(
        p.len() > 60,
        "expected every object applied, saw {} PATCHes",
        p.len()
    );
    for r in &p {
        assert_eq!(
            r.content_type.as_deref(),
            Some("application/apply-patch+yaml"),
            "{}",
            r.path
        );
        assert_eq!(
            r.param("fieldManager").as_deref(),
            Some("provisioner"),
            "{}",
            r.path
        );
        assert_eq!(
            r.param("force"),
            None,
            "no object of the bootstrap plan is force-applied: {}",
            r.path
        );
    }
    // Order: Cilium, then CCM, CSI, namespaces, cloudflared, Argo CD, root app.
    let cilium = index_of(&reqs, "PATCH", "/namespaces/kube-system/daemonsets/cilium");
    let cilium_ready = reqs
        .iter()
        .rposition(|r| r.method == "GET" && r.path.ends_with("/daemonsets/cilium"))
        .expect("waited for cilium");
    let ccm = index_of(
        &reqs,
        "PATCH",
        "/deployments/hcloud-cloud-controller-manager",
    );
    let csi = index_of(&reqs, "PATCH", "/storageclasses/hcloud-volumes");
    let argocd_crd = index_of(
        &reqs,
        "PATCH",
        "/customresourcedefinitions/applications.argoproj.io",
    );
    let argocd_established = reqs
        .iter()
        .rposition(|r| {
            r.method == "GET"
                && r.path
                    .ends_with("/customresourcedefinitions/applications.argoproj.io")
        })
        .expect("waited for the CRD");
    let root = index_of(&reqs, "PATCH", "/namespaces/argocd/applications/root");
    let cloudflared = reqs
        .iter()
        .position(|r| r.method == "PATCH" && r.path.contains("/namespaces/cloudflared/"))
        .expect("cloudflared applied");
    assert!(
        cilium < cilium_ready
            && cilium_ready < ccm
            && ccm < csi
            && csi < cloudflared
            && cloudflared < argocd_crd
    );
    assert!(
        argocd_crd < argocd_established && argocd_established < root,
        "CRD established before its resources"
    );
    // Every request body is a valid object of its type (k8s-openapi types or
    // the kept CRD schemas), and so is every built-in object the fake stores
    // and returns, status included.
    for r in &p {
        let body = r.body.as_ref().expect("apply body");
        let v = platform::schema::validate(body);
        assert!(
            matches!(v, platform::schema::SchemaResult::Valid),
            "{}: {v:?}",
            r.path
        );
    }
    for r in &p {
        let body = r.body.as_ref().expect("apply body");
        let av = body["apiVersion"].as_str().unwrap_or("");
        if av.contains(".io/") && !av.contains("k8s.io") {
            continue; // custom resources: stored fields (resourceVersion...) are outside our kept schemas
        }
        let segs: Vec<&str> = r.path.trim_start_matches('/').split('/').collect();
        let (group, rest) = if segs[0] == "api" {
            ("", &segs[2..])
        } else {
            (segs[1], &segs[3..])
        };
        let (ns, plural, name) = if rest[0] == "namespaces" && rest.len() == 4 {
            (rest[1], rest[2], rest[3])
        } else {
            ("", rest[0], rest[1])
        };
        let stored = f.object(group, plural, ns, name).expect("stored");
        let v = platform::schema::validate(&stored);
        assert!(
            matches!(v, platform::schema::SchemaResult::Valid),
            "stored {}: {v:?}",
            r.path
        );
    }
    // The root Application follows the inputs.
    let app = f
        .object("argoproj.io", "applications", "argocd", "root")
        .expect("root app stored");
    assert_eq!(
        app.pointer("/spec/source/repoURL").and_then(|v| v.as_str()),
        Some("https://github.com/example/shop-fork")
    );
    assert_eq!(
        app.pointer("/spec/source/targetRevision")
            .and_then(|v| v.as_str()),
        Some("v1.2.3")
    );
    assert_eq!(
        app.pointer("/spec/source/path").and_then(|v| v.as_str()),
        Some("infra/argocd/overlays/production")
    );
    // The HCLOUD_TOKEN Secret was filled from the inputs.
    let s = f
        .object("", "secrets", "kube-system", "hcloud")
        .expect("hcloud secret");
    use base64::Engine;
    let token = base64::engine::general_purpose::STANDARD.encode(SECRET_INPUTS[0].1);
    assert_eq!(
        s.pointer("/data/token").and_then(|v| v.as_str()),
        Some(token.as_str())
    );
    assert!(report.changed() > 60);

    // Second run: no change at all.
    let before = f.mutations();
    f.clear_requests();
    let again = apply_addons(&conn, &plan, &fast(), &NoProgress)
        .await
        .expect("second apply");
    assert_eq!(f.mutations(), before, "re-running changed objects");
    assert_eq!(again.changed(), 0);
    assert!(again
        .steps
        .iter()
        .flat_map(|s| &s.objects)
        .all(|o| o.outcome == Outcome::Unchanged));
    // Secrets never in the report or in error/debug output.
    let text = format!(
        "{}{:?}{:?}",
        serde_json::to_string(&again).expect("json"),
        plan,
        inputs()
    );
    for (_, v) in SECRET_INPUTS
        .iter()
        .filter(|(k, _)| !k.ends_with("-user") && *k != "hcloud.network")
    {
        let b64 = base64::engine::general_purpose::STANDARD.encode(v);
        assert!(
            !text.contains(v) && !text.contains(&b64),
            "a secret value leaked into output"
        );
    }
}

#[tokio::test]
async fn status_reports_nodes_rollouts_argocd_apps_and_cloudflared_connections() {
    let Some(plan) = real_plan() else { return };
    let f = fake_with_nodes().await;
    f.add_node("shop-worker-1", false, false);
    let conn = connect(&f).await;
    apply_addons(&conn, &plan, &fast(), &NoProgress)
        .await
        .expect("apply");
    f.seed(serde_json::json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": "postgres", "namespace": "argocd"},
        "spec": {"project": "platform", "destination": {"namespace": "data"}, "source": {"repoURL": "r", "path": "p"}},
        "status": {"sync": {"status": "OutOfSync", "revision": "abc123"}, "health": {"status": "Progressing"}}}), "argocd-application-controller");
    let dep = f
        .object("apps", "deployments", "cloudflared", "cloudflared")
        .expect("cloudflared deployment");
    let labels = dep
        .pointer("/spec/selector/matchLabels")
        .cloned()
        .expect("selector");
    for i in 0..2 {
        let pod = format!("cloudflared-abc-{i}");
        f.seed(serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod, "namespace": "cloudflared", "labels": labels},
            "spec": {"containers": [{"name": "cloudflared", "image": "cloudflare/cloudflared:2025.10.0"}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}), "kubelet");
        f.set_pod_metrics(
            "cloudflared",
            &pod,
            2000,
            "# TYPE cloudflared_tunnel_ha_connections gauge\ncloudflared_tunnel_ha_connections 4\n",
        );
    }
    let st = platform::cluster_status(&conn, &platform::StatusOptions::default())
        .await
        .expect("status");
    assert_eq!(st.nodes.len(), 4);
    let worker = st
        .nodes
        .iter()
        .find(|n| n.name == "shop-worker-1")
        .expect("worker");
    assert!(
        !worker.ready
            && worker
                .reason
                .as_deref()
                .is_some_and(|r| r.contains("cni plugin not initialized"))
    );
    assert!(st
        .nodes
        .iter()
        .filter(|n| n.ready)
        .all(|n| n.roles == ["control-plane"]));
    let cilium = st
        .addons
        .iter()
        .find(|a| a.name == "cilium")
        .expect("cilium rollout");
    assert_eq!(
        (cilium.addon.as_str(), cilium.kind.as_str()),
        ("cilium", "DaemonSet")
    );
    assert!(st
        .addons
        .iter()
        .any(|a| a.addon == "argocd" && a.kind == "StatefulSet"));
    let apps = st.applications.as_ref().expect("argo cd installed");
    let pg = apps
        .iter()
        .find(|a| a.name == "postgres")
        .expect("postgres app");
    assert_eq!(
        (pg.sync.as_str(), pg.health.as_str(), pg.revision.as_deref()),
        ("OutOfSync", "Progressing", Some("abc123"))
    );
    assert!(apps.iter().any(|a| a.name == "root" && a.sync == "Unknown"));
    let cf = st.cloudflared.as_ref().expect("cloudflared");
    assert_eq!(cf.connections, Some(8));
    assert_eq!(cf.pods.len(), 2);
    let json = serde_json::to_value(&st).expect("serialisable");
    assert_eq!(json["cloudflared"]["connections"], 8);
}

#[tokio::test]
async fn status_before_argocd_and_cloudflared_reports_them_absent() {
    let f = fake_with_nodes().await;
    let conn = connect(&f).await;
    let st = platform::cluster_status(&conn, &platform::StatusOptions::default())
        .await
        .expect("status");
    assert_eq!(st.nodes.len(), 3);
    assert!(st.applications.is_none() && st.cloudflared.is_none() && st.addons.is_empty());
}

// ---------------------------------------------------------------- order, CRDs, waits

#[tokio::test]
async fn crd_is_established_before_its_resources_are_applied() {
    let d = demo_tree(true, "");
    let plan = plan_addons(&infra(&d), &demo_inputs()).expect("plan");
    let f = fake_with_nodes().await;
    f.set_crd_establish_reads(3);
    let conn = connect(&f).await;
    apply_addons(&conn, &plan, &fast(), &NoProgress)
        .await
        .expect("apply");
    let reqs = f.requests();
    let crd_patch = index_of(
        &reqs,
        "PATCH",
        "/customresourcedefinitions/widgets.example.com",
    );
    let crd_gets: Vec<usize> = reqs
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            r.method == "GET"
                && r.path
                    .ends_with("/customresourcedefinitions/widgets.example.com")
        })
        .map(|(i, _)| i)
        .collect();
    let widget = index_of(
        &reqs,
        "PATCH",
        "/apis/example.com/v1/namespaces/demo/widgets/w1",
    );
    assert!(
        crd_gets.len() >= 4,
        "1 existence check + 3 polls, saw {}",
        crd_gets.len()
    );
    assert!(crd_patch < widget && crd_gets.iter().all(|&g| g < widget));
    // Namespace before the Deployment in it, Deployment waited for before the next step.
    let ns = index_of(&reqs, "PATCH", "/api/v1/namespaces/demo");
    let web = index_of(&reqs, "PATCH", "/namespaces/demo/deployments/web");
    assert!(ns < web && web < crd_patch);
    assert!(reqs[web..crd_patch]
        .iter()
        .any(|r| r.method == "GET" && r.path.ends_with("/deployments/web")));
}

#[tokio::test]
async fn rollout_that_never_becomes_ready_times_out_naming_object_and_conditions() {
    let d = demo_tree(true, "");
    let plan = plan_addons(&infra(&d), &demo_inputs()).expect("plan");
    let f = fake_with_nodes().await;
    f.set_rollout("Deployment", "demo", "web", Rollout::Never);
    let conn = connect(&f).await;
    let opts = ApplyOptions {
        poll_interval: Duration::from_millis(10),
        timeout: Some(Duration::from_millis(200)),
    };
    let progress = Collect::default();
    let err = apply_addons(&conn, &plan, &opts, &progress)
        .await
        .expect_err("must time out");
    let msg = err.to_string();
    assert!(matches!(err, PlatformError::NotReady { .. }), "{msg}");
    assert!(msg.contains("Deployment demo/web"), "{msg}");
    assert!(
        msg.contains("0/2 ready") && msg.contains("ProgressDeadlineExceeded"),
        "{msg}"
    );
    // Progress showed the wait, with the counts.
    let events = progress.0.lock().expect("events").clone();
    assert!(
        events.iter().any(|e| e.starts_with("started base")),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e == "applied Deployment demo/web created"),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .filter(|e| e.starts_with("waiting Deployment demo/web: 0/2 ready"))
            .count()
            >= 3,
        "{events:?}"
    );
    // Nothing of the next step was applied.
    assert!(!f
        .requests()
        .iter()
        .any(|r| r.method == "PATCH" && r.path.contains("widgets")));
}

#[tokio::test]
async fn crd_with_rejected_names_fails_with_its_conditions() {
    let d = demo_tree(true, "");
    let plan = plan_addons(&infra(&d), &demo_inputs()).expect("plan");
    let f = fake_with_nodes().await;
    f.reject_crd_names("widgets.example.com");
    let conn = connect(&f).await;
    let err = apply_addons(&conn, &plan, &fast(), &NoProgress)
        .await
        .expect_err("names rejected");
    let msg = err.to_string();
    assert!(
        msg.contains("CustomResourceDefinition widgets.example.com")
            && msg.contains("NamesAccepted=False"),
        "{msg}"
    );
}

// ---------------------------------------------------------------- bad input

#[tokio::test]
async fn missing_crd_is_reported_with_the_object() {
    let d = demo_tree(false, "");
    let plan = plan_addons(&infra(&d), &demo_inputs()).expect("plan");
    let f = fake_with_nodes().await;
    let conn = connect(&f).await;
    let err = apply_addons(&conn, &plan, &fast(), &NoProgress)
        .await
        .expect_err("no CRD");
    let msg = err.to_string();
    assert!(matches!(err, PlatformError::MissingCrd { .. }), "{msg}");
    assert!(
        msg.contains("Widget demo/w1") && msg.contains("example.com/v1"),
        "{msg}"
    );
    // Discovery got the 404; the widget itself was never sent.
    assert!(f
        .requests()
        .iter()
        .any(|r| r.method == "GET" && r.path == "/apis/example.com/v1"));
    assert!(!f
        .requests()
        .iter()
        .any(|r| r.method == "PATCH" && r.path.contains("widgets")));
}

#[tokio::test]
async fn conflict_names_object_and_other_manager_and_force_is_only_used_when_annotated() {
    let d = demo_tree(true, "");
    let plan = plan_addons(&infra(&d), &demo_inputs()).expect("plan");
    let f = fake_with_nodes().await;
    f.seed(
        serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}}),
        "kubectl-create",
    );
    f.seed(serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "demo"},
        "spec": {"replicas": 5}}), "kubectl-edit");
    let conn = connect(&f).await;
    let err = apply_addons(&conn, &plan, &fast(), &NoProgress)
        .await
        .expect_err("conflict");
    let msg = err.to_string();
    assert!(matches!(err, PlatformError::Conflict { .. }), "{msg}");
    assert!(
        msg.contains("Deployment demo/web")
            && msg.contains("kubectl-edit")
            && msg.contains(".spec.replicas"),
        "{msg}"
    );
    assert_eq!(
        f.owner("apps", "deployments", "demo", "web", ".spec.replicas")
            .as_deref(),
        Some("kubectl-edit")
    );

    // With the documented force annotation, the provisioner takes the field over.
    let forced = demo_tree(true, "\n    platform.shopedge.dev/force-apply: \"true\"\n    platform.shopedge.dev/force-apply-reason: \"replicas are ours during bootstrap\"");
    let plan = plan_addons(&infra(&forced), &demo_inputs()).expect("plan");
    apply_addons(&conn, &plan, &fast(), &NoProgress)
        .await
        .expect("forced apply");
    let web = f
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.method == "PATCH" && r.path.ends_with("/deployments/web"))
        .expect("patch");
    assert_eq!(web.param("force").as_deref(), Some("true"));
    assert_eq!(
        f.owner("apps", "deployments", "demo", "web", ".spec.replicas")
            .as_deref(),
        Some("provisioner")
    );
}

#[test]
fn force_without_a_documented_reason_is_refused() {
    let d = demo_tree(true, "\n    platform.shopedge.dev/force-apply: \"true\"");
    let err = plan_addons(&infra(&d), &demo_inputs()).expect_err("undocumented force");
    assert!(
        err.to_string().contains("force-apply-reason")
            && err.to_string().contains("Deployment demo/web"),
        "{err}"
    );
}

#[tokio::test]
async fn invalid_manifest_stops_before_any_request() {
    let bad = deployment("web", 2, "").replace("readinessProbe:", "readinesProbe:");
    let d = tree(&[
        (
            "bootstrap/10-base/kustomization.yaml",
            &format!("{KUST}  - ns.yaml\n  - web.yaml\n  - pdb.yaml\n"),
        ),
        ("bootstrap/10-base/ns.yaml", NS),
        ("bootstrap/10-base/web.yaml", &bad),
        ("bootstrap/10-base/pdb.yaml", PDB),
    ]);
    let err = plan_addons(&infra(&d), &demo_inputs()).expect_err("invalid");
    let msg = err.to_string();
    assert!(
        msg.contains("web.yaml") && msg.contains("[schema]") && msg.contains("readinesProbe"),
        "{msg}"
    );
    assert!(
        msg.contains("[probes]"),
        "the missing readiness probe is named too: {msg}"
    );

    // A plan assembled by hand is validated by apply too: zero requests.
    let good = plan_addons(&infra(&demo_tree(true, "")), &demo_inputs()).expect("plan");
    let mut broken = good.clone();
    broken.steps[1].objects[1].value["spec"] = serde_json::json!("not a mapping");
    broken.steps[0].objects[0].value["spec"] = serde_json::json!({"finalizers": "kubernetes"});
    let f = fake_with_nodes().await;
    let conn = connect(&f).await;
    let err = apply_addons(&conn, &broken, &fast(), &NoProgress)
        .await
        .expect_err("invalid");
    assert!(matches!(err, PlatformError::Validation { .. }));
    assert!(err.to_string().contains("Namespace demo"), "{err}");
    assert!(
        f.requests().is_empty(),
        "nothing may be sent after a validation failure"
    );
}

#[test]
fn required_inputs_of_the_repository_are_the_documented_ones() {
    let root = repo_root().join("infra");
    let uses = platform::required_inputs(&root).expect("inputs");
    let mut found: Vec<&str> = uses.iter().map(|u| u.input.as_str()).collect();
    found.sort_unstable();
    found.dedup();
    let mut documented: Vec<String> = SECRET_INPUTS.iter().map(|(k, _)| k.to_string()).collect();
    documented.sort();
    assert_eq!(found, documented);
    let readme = std::fs::read_to_string(root.join("README.md")).expect("infra/README.md");
    for i in &found {
        assert!(
            readme.contains(&format!("`{i}`")),
            "{i} is not in infra/README.md"
        );
    }
    let hcloud = uses
        .iter()
        .find(|u| u.input == "hcloud.token")
        .expect("hcloud.token");
    assert_eq!(hcloud.object.to_string(), "Secret kube-system/hcloud");
    assert!(
        hcloud.location.ends_with("secret.yaml"),
        "{}",
        hcloud.location
    );
}

#[test]
fn missing_secret_input_names_the_object_and_the_input() {
    let d = tree(&[
        ("bootstrap/10-s/kustomization.yaml", &format!("{KUST}  - s.yaml\n")),
        ("bootstrap/10-s/s.yaml", "apiVersion: v1\nkind: Secret\nmetadata:\n  name: hcloud\n  namespace: kube-system\n  annotations:\n    platform.shopedge.dev/secret-inputs: \"token=hcloud.token\"\n"),
    ]);
    let err = plan_addons(&infra(&d), &demo_inputs()).expect_err("missing input");
    let msg = err.to_string();
    assert!(
        msg.contains("Secret kube-system/hcloud") && msg.contains("`hcloud.token`"),
        "{msg}"
    );
}

#[tokio::test]
async fn unreachable_api_server_names_the_server() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    drop(l);
    let kc = format!("apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:{port}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\nusers:\n- name: u\n  user:\n    token: t\n");
    let conn = platform::connect(&kc, SystemTime::now())
        .await
        .expect("config is fine");
    let plan = plan_addons(&infra(&demo_tree(true, "")), &demo_inputs()).expect("plan");
    let err = apply_addons(&conn, &plan, &fast(), &NoProgress)
        .await
        .expect_err("unreachable");
    let msg = err.to_string();
    assert!(matches!(err, PlatformError::Unreachable { .. }), "{msg}");
    assert!(
        msg.contains(&format!("127.0.0.1:{port}")) && msg.contains("unreachable"),
        "{msg}"
    );
    let st = platform::cluster_status(&conn, &Default::default())
        .await
        .expect_err("status too");
    assert!(st.to_string().contains("unreachable"));
}

#[tokio::test]
async fn wrong_credentials_are_a_kubeconfig_error() {
    let f = fake_with_nodes().await;
    let kc = f.kubeconfig().replace("fake-admin-token", "stale-token");
    let conn = platform::connect(&kc, SystemTime::now())
        .await
        .expect("parses");
    let plan = plan_addons(&infra(&demo_tree(true, "")), &demo_inputs()).expect("plan");
    let err = apply_addons(&conn, &plan, &fast(), &NoProgress)
        .await
        .expect_err("401");
    assert!(
        err.to_string().contains("rejected the credentials")
            && err.to_string().contains("provisioner kubeconfig"),
        "{err}"
    );
    assert!(!f.requests().iter().any(Recorded::is_mutation));
}

fn client_cert(not_before: (i32, u8, u8), not_after: (i32, u8, u8)) -> (String, String) {
    let mut params = rcgen::CertificateParams::new(vec!["admin".to_string()]).expect("params");
    params.not_before = rcgen::date_time_ymd(not_before.0, not_before.1, not_before.2);
    params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("cert");
    (cert.pem(), key.serialize_pem())
}

#[tokio::test]
async fn expired_client_certificate_is_refused_before_any_request() {
    let f = fake_with_nodes().await;
    let (cert, key) = client_cert((2020, 1, 1), (2021, 1, 1));
    let err = platform::connect(&f.kubeconfig_with_cert(&cert, &key), SystemTime::now())
        .await
        .expect_err("expired");
    let msg = err.to_string();
    assert!(
        matches!(err, PlatformError::KubeconfigExpired { .. }),
        "{msg}"
    );
    assert!(
        msg.contains("2021-01-01T00:00:00Z")
            && msg.contains("user `admin`")
            && msg.contains("provisioner kubeconfig"),
        "{msg}"
    );
    assert!(f.requests().is_empty());

    // A currently valid certificate connects and talks to the server.
    let (cert, key) = client_cert((2020, 1, 1), (2099, 1, 1));
    let conn = platform::connect(&f.kubeconfig_with_cert(&cert, &key), SystemTime::now())
        .await
        .expect("valid");
    platform::apply::preflight(&conn)
        .await
        .expect("version answered");
    assert_eq!(
        f.requests().last().map(|r| r.path.as_str()),
        Some("/version")
    );
}

// ---------------------------------------------------------------- the fake itself

#[tokio::test]
async fn fake_rejects_what_the_real_api_server_rejects() {
    let f = fake_with_nodes().await;
    let http = reqwest::Client::new();
    let auth = "Bearer fake-admin-token";
    let url = format!("{}/api/v1/namespaces/x", f.url());
    let body = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n";
    let r = http
        .patch(&url)
        .header("authorization", auth)
        .header("content-type", "application/apply-patch+yaml")
        .body(body)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 422, "apply without fieldManager");
    let r = http
        .patch(format!("{url}?fieldManager=t"))
        .header("authorization", auth)
        .header("content-type", "application/merge-patch+json")
        .body("{}")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 415);
    let r = http
        .patch(format!("{}/api/v1/namespaces/y?fieldManager=t", f.url()))
        .header("authorization", auth)
        .header("content-type", "application/apply-patch+yaml")
        .body(body)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 400, "name mismatch");
    let r = http
        .patch(format!(
            "{}/api/v1/namespaces/nope/configmaps/c?fieldManager=t",
            f.url()
        ))
        .header("authorization", auth)
        .header("content-type", "application/apply-patch+yaml")
        .body("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 404, "namespace must exist");
    let r = http
        .get(format!(
            "{}/apis/example.com/v1/namespaces/d/widgets/w",
            f.url()
        ))
        .header("authorization", auth)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 404);
    let s: serde_json::Value = r.json().await.expect("status body");
    assert_eq!(
        (s["kind"].as_str(), s["reason"].as_str(), s["code"].as_u64()),
        (Some("Status"), Some("NotFound"), Some(404))
    );
    let r = http
        .get(format!("{}/api/v1/nodes", f.url()))
        .send()
        .await
        .expect("send");
    assert_eq!(
        r.status(),
        200,
        "no header: TLS client certificates are not checked by the fake"
    );
    let r = http
        .get(format!("{}/readyz", f.url()))
        .header("authorization", auth)
        .send()
        .await
        .expect("send");
    assert_eq!(
        (r.status().as_u16(), r.text().await.expect("body")),
        (200, "ok".to_string())
    );
    let r = http
        .get(format!("{}/api/v1/nodes", f.url()))
        .header("authorization", "Bearer wrong")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn injected_server_errors_name_the_object() {
    let d = demo_tree(true, "");
    let plan = plan_addons(&infra(&d), &demo_inputs()).expect("plan");
    let f = fake_with_nodes().await;
    f.fail("PATCH", "/deployments/web", 500, "InternalError", 1);
    let conn = connect(&f).await;
    let err = apply_addons(&conn, &plan, &fast(), &NoProgress)
        .await
        .expect_err("500");
    assert!(err.to_string().contains("Deployment demo/web"), "{err}");
    // Re-running converges.
    apply_addons(&conn, &plan, &fast(), &NoProgress)
        .await
        .expect("re-run converges");
    assert!(f.object("apps", "deployments", "demo", "web").is_some());
    let _ = Path::new("");
}

#[tokio::test]
async fn bootstrap_validates_before_touching_the_network() {
    // An invalid tree and a server that does not exist: the validation error wins.
    let d = tree(&[
        (
            "bootstrap/10-base/kustomization.yaml",
            &format!("{KUST}  - ns.yaml\n  - missing.yaml\n"),
        ),
        ("bootstrap/10-base/ns.yaml", NS),
    ]);
    let kc = "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:9\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\nusers:\n- name: u\n  user:\n    token: t\n";
    let err = platform::bootstrap(kc, &infra(&d), &demo_inputs(), &fast(), &NoProgress)
        .await
        .expect_err("invalid");
    assert!(
        err.to_string().contains("`missing.yaml` does not exist"),
        "{err}"
    );

    // A valid tree against the fake: applied; again: unchanged.
    let f = fake_with_nodes().await;
    let d = demo_tree(true, "");
    let r = platform::bootstrap(
        &f.kubeconfig(),
        &infra(&d),
        &demo_inputs(),
        &fast(),
        &NoProgress,
    )
    .await
    .expect("bootstrap");
    assert_eq!(r.changed(), 6);
    let r = platform::bootstrap(
        &f.kubeconfig(),
        &infra(&d),
        &demo_inputs(),
        &fast(),
        &NoProgress,
    )
    .await
    .expect("again");
    assert_eq!(r.changed(), 0);
}

#[tokio::test]
async fn fake_merges_named_lists_per_element_like_structured_merge() {
    let d = demo_tree(true, "");
    let plan = plan_addons(&infra(&d), &demo_inputs()).expect("plan");
    let f = fake_with_nodes().await;
    f.seed(
        serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}}),
        "kubectl-create",
    );
    // Another manager added a sidecar container: not a conflict with ours.
    f.seed(serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "demo"},
        "spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "proxy:1.0"}]}}}}), "mesh-injector");
    let conn = connect(&f).await;
    apply_addons(&conn, &plan, &fast(), &NoProgress)
        .await
        .expect("apply merges");
    let web = f.object("apps", "deployments", "demo", "web").expect("web");
    let names: Vec<&str> = web
        .pointer("/spec/template/spec/containers")
        .and_then(|c| c.as_array())
        .expect("containers")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["sidecar", "main"]);
    assert_eq!(
        f.owner(
            "apps",
            "deployments",
            "demo",
            "web",
            ".spec.template.spec.containers.[name=main].image"
        )
        .as_deref(),
        Some("provisioner")
    );
    assert_eq!(
        f.owner(
            "apps",
            "deployments",
            "demo",
            "web",
            ".spec.template.spec.containers.[name=sidecar].image"
        )
        .as_deref(),
        Some("mesh-injector")
    );
}

#[tokio::test]
async fn https_with_client_certificates_from_the_cluster_ca() {
    use shopedge_tests::kube_fake::ClusterCa;
    let ca = ClusterCa::new();
    let f = KubeFake::start_tls(&ca).await;
    for i in 1..=3 {
        f.add_node(&format!("shop-cp-{i}"), true, true);
    }
    // The admin certificate from the cluster CA works over verified TLS.
    let (cert, key) = ca.client_cert("admin", (2020, 1, 1), (2099, 1, 1));
    let kc = f.kubeconfig_tls(&ca, &cert, &key);
    let plan = plan_addons(&infra(&demo_tree(true, "")), &demo_inputs()).expect("plan");
    let conn = platform::connect(&kc, SystemTime::now())
        .await
        .expect("connect");
    assert!(
        conn.server.starts_with("https://127.0.0.1:"),
        "{}",
        conn.server
    );
    let r = apply_addons(&conn, &plan, &fast(), &NoProgress)
        .await
        .expect("apply over TLS");
    assert_eq!(r.changed(), 6);

    // A certificate from another CA is refused in the handshake: no request reaches the server.
    let other = ClusterCa::new();
    let (cert, key) = other.client_cert("admin", (2020, 1, 1), (2099, 1, 1));
    let before = f.requests().len();
    let conn = platform::connect(&f.kubeconfig_tls(&ca, &cert, &key), SystemTime::now())
        .await
        .expect("config ok");
    let err = apply_addons(&conn, &plan, &fast(), &NoProgress)
        .await
        .expect_err("foreign client CA");
    assert!(matches!(err, PlatformError::Unreachable { .. }), "{err}");
    assert_eq!(f.requests().len(), before);

    // No credentials at all: 401, reported as a kubeconfig problem.
    let anon = f.kubeconfig_tls(&ca, "", "").replace(
        "    client-certificate-data: \n    client-key-data: \n",
        "    username: nobody\n",
    );
    let conn = platform::connect(&anon, SystemTime::now())
        .await
        .expect("config ok");
    let err = apply_addons(&conn, &plan, &fast(), &NoProgress)
        .await
        .expect_err("anonymous");
    assert!(
        err.to_string().contains("rejected the credentials (401"),
        "{err}"
    );
}
