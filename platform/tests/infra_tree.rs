//! The checks on the repository's `infra/` tree (part of `make test`), and
//! negative tests: bad manifests in a temporary tree fail with the file and
//! the rule named.

use std::path::{Path, PathBuf};

use platform::checks::{check_tree, Violation};

fn infra_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("infra")
}

#[test]
fn repository_infra_tree_passes_every_check() {
    let report = check_tree(&infra_root());
    let text: Vec<String> = report.violations.iter().map(Violation::to_string).collect();
    assert!(text.is_empty(), "infra/ violations:\n{}", text.join("\n"));
    assert!(
        report.objects > 50,
        "expected the whole tree, checked {} objects",
        report.objects
    );
    assert!(
        report.kustomizations >= 10,
        "built {} kustomizations",
        report.kustomizations
    );
}

/// Cross-check the repository's kustomize subset against the real kustomize
/// (kubectl's built-in) when kubectl is installed: same objects, same content.
#[test]
fn resolver_matches_kubectl_kustomize_when_available() {
    // kubectl embeds kustomize; only v5+ knows every field we use (Debian
    // 12's kubectl 1.20 embeds kustomize v2).
    let probe = std::process::Command::new("kubectl")
        .args(["version", "--client"])
        .output();
    let kustomize_major = probe.ok().filter(|o| o.status.success()).and_then(|o| {
        let text = String::from_utf8_lossy(&o.stdout).to_string();
        text.lines()
            .find_map(|l| l.strip_prefix("Kustomize Version: v").map(str::to_string))
            .and_then(|v| v.split('.').next().and_then(|m| m.parse::<u32>().ok()))
    });
    if kustomize_major.is_none_or(|m| m < 5) {
        eprintln!(
            "notice: skipping the kustomize cross-check: no kubectl with kustomize v5+ on PATH"
        );
        return;
    }
    let root = platform::kustomize::normalize(&infra_root());
    let mut dirs = Vec::new();
    fn walk(d: &Path, out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.file_name().is_some_and(|n| n == "kustomization.yaml") {
                out.push(d.to_path_buf());
            }
        }
    }
    walk(&root, &mut dirs);
    assert!(!dirs.is_empty());
    for d in dirs {
        let out = std::process::Command::new("kubectl")
            .args(["kustomize", "--load-restrictor", "LoadRestrictionsNone"])
            .arg(&d)
            .output()
            .expect("run kubectl");
        assert!(
            out.status.success(),
            "kubectl kustomize {}: {}",
            d.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let theirs = platform::manifest::parse_documents(&String::from_utf8_lossy(&out.stdout), &d)
            .expect("kubectl output parses");
        let ours = platform::kustomize::build(&d).unwrap_or_else(|e| panic!("{e}"));
        let key = |m: &platform::manifest::Manifest| m.object_ref();
        let mut a: Vec<_> = theirs.iter().map(|m| (key(m), m.value.clone())).collect();
        let mut b: Vec<_> = ours.iter().map(|m| (key(m), m.value.clone())).collect();
        a.sort_by(|x, y| x.0.cmp(&y.0));
        b.sort_by(|x, y| x.0.cmp(&y.0));
        assert_eq!(a.len(), b.len(), "{}: object count differs", d.display());
        for ((ka, va), (kb, vb)) in a.iter().zip(b.iter()) {
            assert_eq!(ka, kb, "{}", d.display());
            assert_eq!(
                va,
                vb,
                "{}: {ka} differs from kubectl kustomize",
                d.display()
            );
        }
    }
}

// ------------------------------------------------------------ negative tests

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, text).expect("write");
}

const GOOD_NS: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: demo\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: default-deny\n  namespace: demo\nspec:\n  podSelector: {}\n  policyTypes: [Ingress, Egress]\n";

fn good_deployment() -> String {
    r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: demo
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      securityContext: {runAsNonRoot: true}
      containers:
        - name: main
          image: registry.example.com/web:1.0.0
          readinessProbe: {httpGet: {path: /ready, port: 8080}}
          livenessProbe: {httpGet: {path: /live, port: 8080}}
          resources:
            requests: {cpu: 10m, memory: 16Mi}
            limits: {cpu: 100m, memory: 64Mi}
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities: {drop: [ALL]}
"#
    .to_string()
}

/// Check a temporary tree holding `files` plus a good namespace; return the violations.
fn check_with(files: &[(&str, &str)]) -> Vec<Violation> {
    let d = tempfile::tempdir().expect("tempdir");
    let root = d.path().join("infra");
    write(&root, "ns/namespace.yaml", GOOD_NS);
    for (p, t) in files {
        write(&root, p, t);
    }
    check_tree(&root).violations
}

fn assert_violation(vs: &[Violation], file: &str, rule: &str, needle: &str) {
    assert!(
        vs.iter()
            .any(|v| v.file.ends_with(file) && v.rule == rule && v.to_string().contains(needle)),
        "expected {file}: [{rule}] ...{needle}... in:\n{}",
        vs.iter()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn a_good_tree_has_no_violations() {
    let vs = check_with(&[("apps/web.yaml", &good_deployment())]);
    assert!(vs.is_empty(), "{vs:?}");
}

#[test]
fn latest_and_untagged_images_fail() {
    let latest = good_deployment().replace("web:1.0.0", "web:latest");
    let untagged = good_deployment()
        .replace(
            "registry.example.com/web:1.0.0",
            "registry.example.com:5000/web",
        )
        .replace("name: web\n", "name: web2\n");
    let vs = check_with(&[
        ("apps/latest.yaml", &latest),
        ("apps/untagged.yaml", &untagged),
    ]);
    assert_violation(&vs, "apps/latest.yaml", "image-tag", "`latest`");
    assert_violation(&vs, "apps/untagged.yaml", "image-tag", "no tag");
    // A digest is pinned.
    let digest = good_deployment().replace(
        "web:1.0.0",
        "web@sha256:0000000000000000000000000000000000000000000000000000000000000000",
    );
    assert!(check_with(&[("apps/d.yaml", &digest)]).is_empty());
}

#[test]
fn missing_resources_probes_and_security_context_fail() {
    let bad = good_deployment()
        .replace("            limits: {cpu: 100m, memory: 64Mi}\n", "")
        .replace(
            "          livenessProbe: {httpGet: {path: /live, port: 8080}}\n",
            "",
        )
        .replace("      securityContext: {runAsNonRoot: true}\n", "")
        .replace(
            "readOnlyRootFilesystem: true",
            "readOnlyRootFilesystem: false",
        )
        .replace(
            "allowPrivilegeEscalation: false",
            "allowPrivilegeEscalation: true",
        );
    let vs = check_with(&[("apps/web.yaml", &bad)]);
    assert_violation(&vs, "apps/web.yaml", "resources", "resources.limits.memory");
    assert_violation(&vs, "apps/web.yaml", "probes", "no livenessProbe");
    assert_violation(
        &vs,
        "apps/web.yaml",
        "security-context.run-as-non-root",
        "Deployment demo/web",
    );
    assert_violation(
        &vs,
        "apps/web.yaml",
        "security-context.read-only-root-filesystem",
        "container main",
    );
    assert_violation(
        &vs,
        "apps/web.yaml",
        "security-context.allow-privilege-escalation",
        "container main",
    );
}

#[test]
fn replicated_workload_needs_pdb_and_anti_affinity() {
    let two = good_deployment().replace("replicas: 1", "replicas: 3");
    let vs = check_with(&[("apps/web.yaml", &two)]);
    assert_violation(&vs, "apps/web.yaml", "pdb", "no PodDisruptionBudget");
    assert_violation(&vs, "apps/web.yaml", "anti-affinity", "podAntiAffinity");
    // A KEDA ScaledObject makes a 1-replica Deployment replicated too.
    let so = "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata:\n  name: web\n  namespace: demo\nspec:\n  scaleTargetRef: {name: web}\n  maxReplicaCount: 5\n  triggers:\n    - type: cpu\n      metricType: Utilization\n      metadata: {value: \"70\"}\n";
    let vs = check_with(&[("apps/web.yaml", &good_deployment()), ("apps/so.yaml", so)]);
    assert_violation(&vs, "apps/web.yaml", "pdb", "Deployment demo/web");
}

#[test]
fn public_service_types_fail_in_manifests_and_helm_values() {
    let svc = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: demo\nspec:\n  type: LoadBalancer\n  ports: [{port: 80}]\n";
    let values = "controller:\n  service:\n    type: NodePort\n";
    let vs = check_with(&[("apps/svc.yaml", svc), ("apps/chart/values.yaml", values)]);
    assert_violation(&vs, "apps/svc.yaml", "service-type", "LoadBalancer");
    assert_violation(
        &vs,
        "apps/chart/values.yaml",
        "service-type",
        "controller.service.type: NodePort",
    );
}

#[test]
fn namespace_without_default_deny_and_undeclared_namespaces_fail() {
    let ns = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: open\n";
    let elsewhere = good_deployment().replace("namespace: demo", "namespace: nowhere");
    let vs = check_with(&[("ns/open.yaml", ns), ("apps/web.yaml", &elsewhere)]);
    assert_violation(&vs, "ns/open.yaml", "default-deny", "namespace open");
    assert_violation(
        &vs,
        "apps/web.yaml",
        "namespace-declared",
        "namespace nowhere",
    );
    // An allow-all "deny" is no default deny.
    let fake_deny = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: default-deny\n  namespace: open\nspec:\n  podSelector: {}\n  policyTypes: [Ingress, Egress]\n  ingress: [{}]\n  egress: [{}]\n";
    let vs = check_with(&[("ns/open.yaml", ns), ("ns/deny.yaml", fake_deny)]);
    assert_violation(&vs, "ns/open.yaml", "default-deny", "namespace open");
}

#[test]
fn plaintext_secrets_fail_and_sops_age_secrets_pass() {
    let plain = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: demo\nstringData:\n  password: hunter2\n";
    let vs = check_with(&[("apps/secret.yaml", plain)]);
    assert_violation(
        &vs,
        "apps/secret.yaml",
        "plaintext-secret",
        "Secret demo/db",
    );
    let sops = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: demo\ndata:\n  password: ENC[AES256_GCM,data:p6Zq,iv:AAAA,tag:BBBB,type:str]\nsops:\n  age:\n    - recipient: age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq\n      enc: |\n        -----BEGIN AGE ENCRYPTED FILE-----\n        x\n        -----END AGE ENCRYPTED FILE-----\n  lastmodified: \"2026-01-01T00:00:00Z\"\n  mac: ENC[AES256_GCM,data:x,iv:y,tag:z,type:str]\n  version: 3.9.0\n";
    assert!(check_with(&[("apps/secret.yaml", sops)]).is_empty());
    let half = sops.replace(
        "ENC[AES256_GCM,data:p6Zq,iv:AAAA,tag:BBBB,type:str]",
        "aHVudGVyMg==",
    );
    assert_violation(
        &check_with(&[("apps/secret.yaml", &half)]),
        "apps/secret.yaml",
        "plaintext-secret",
        "not SOPS-encrypted",
    );
    let gen = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nsecretGenerator:\n  - name: db\n    literals: [password=hunter2]\n";
    assert_violation(
        &check_with(&[("apps/kustomization.yaml", gen)]),
        "apps/kustomization.yaml",
        "kustomize-field",
        "generators are not allowed",
    );
}

#[test]
fn broken_kustomizations_fail_with_file_and_rule() {
    let k = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - web.yaml\n  - missing.yaml\n";
    let vs = check_with(&[
        ("apps/kustomization.yaml", k),
        ("apps/web.yaml", &good_deployment()),
    ]);
    assert_violation(
        &vs,
        "apps/kustomization.yaml",
        "kustomize-resource",
        "`missing.yaml` does not exist",
    );
    let k = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [web.yaml]\npatches:\n  - target: {kind: Deployment, name: api}\n    patch: |\n      - op: replace\n        path: /spec/replicas\n        value: 2\n";
    let vs = check_with(&[
        ("apps/kustomization.yaml", k),
        ("apps/web.yaml", &good_deployment()),
    ]);
    assert_violation(
        &vs,
        "apps/kustomization.yaml",
        "kustomize-patch",
        "matches no resource",
    );
    let k = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [web.yaml]\npatches:\n  - target: {kind: Deployment, name: web}\n    patch: |\n      - op: replace\n        path: /spec/nothere/x\n        value: 2\n";
    let vs = check_with(&[
        ("apps/kustomization.yaml", k),
        ("apps/web.yaml", &good_deployment()),
    ]);
    assert_violation(
        &vs,
        "apps/kustomization.yaml",
        "kustomize-patch",
        "/spec/nothere",
    );
}

#[test]
fn schema_errors_name_the_field() {
    let typo = good_deployment().replace("imagePullPolicy", "x").replace(
        "image: registry",
        "imagePullPolice: Always\n          image: registry",
    );
    let vs = check_with(&[("apps/web.yaml", &typo)]);
    assert_violation(
        &vs,
        "apps/web.yaml",
        "schema",
        "spec.template.spec.containers[0].imagePullPolice",
    );
    let unknown =
        "apiVersion: example.com/v1\nkind: Gadget\nmetadata:\n  name: g\n  namespace: demo\n";
    assert_violation(
        &check_with(&[("apps/g.yaml", unknown)]),
        "apps/g.yaml",
        "schema",
        "no Kubernetes type or kept schema",
    );
    let backup = "apiVersion: postgresql.cnpg.io/v1\nkind: ScheduledBackup\nmetadata:\n  name: b\n  namespace: demo\nspec:\n  schedule: \"0 3 * * *\"\n  cluster: {name: pg}\n";
    assert_violation(
        &check_with(&[("apps/b.yaml", backup)]),
        "apps/b.yaml",
        "schema",
        "/spec/schedule",
    );
}

#[test]
fn applications_need_waves_pinned_charts_and_existing_sources() {
    let app = r#"apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: x
  namespace: demo
spec:
  project: default
  destination: {server: "https://kubernetes.default.svc", namespace: demo}
  sources:
    - repoURL: https://charts.example.com
      chart: x
      targetRevision: 1.x
      helm:
        valueFiles: [$values/infra/apps/x/values.yaml]
    - repoURL: https://github.com/example/repo
      targetRevision: main
      ref: values
    - repoURL: https://github.com/example/repo
      targetRevision: main
      path: infra/apps/nothere
"#;
    let vs = check_with(&[("argocd/x.yaml", app)]);
    assert_violation(
        &vs,
        "argocd/x.yaml",
        "sync-wave",
        "no argocd.argoproj.io/sync-wave",
    );
    assert_violation(
        &vs,
        "argocd/x.yaml",
        "helm-pinned",
        "`1.x` is not an exact version",
    );
    assert_violation(
        &vs,
        "argocd/x.yaml",
        "app-source",
        "values file `infra/apps/x/values.yaml` does not exist",
    );
    assert_violation(
        &vs,
        "argocd/x.yaml",
        "app-source",
        "`infra/apps/nothere` does not exist",
    );
}

#[test]
fn exceptions_must_match_and_be_documented() {
    let root_ex = "exceptions:\n  - kind: Deployment\n    namespace: demo\n    name: gone\n    rules: [probes]\n    reason: ok\n";
    let vs = check_with(&[("policy/exceptions.yaml", root_ex)]);
    assert_violation(
        &vs,
        "policy/exceptions.yaml",
        "exception-unused",
        "Deployment demo/gone",
    );
    assert_violation(
        &vs,
        "policy/exceptions.yaml",
        "exception-reason",
        "documented reason",
    );
    // A matching, documented exception silences exactly its rule.
    let no_probe = good_deployment().replace(
        "          livenessProbe: {httpGet: {path: /live, port: 8080}}\n",
        "",
    );
    let ex = "exceptions:\n  - kind: Deployment\n    namespace: demo\n    name: web\n    container: main\n    rules: [probes]\n    reason: the image has no health endpoint; tested by the readiness of its sidecar\n";
    assert!(check_with(&[("apps/web.yaml", &no_probe), ("policy/exceptions.yaml", ex)]).is_empty());
}
