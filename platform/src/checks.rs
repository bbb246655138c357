//! The checks on the `infra/` GitOps tree. Pure logic over files: every
//! failing check is a [`Violation`] naming the file, the rule and the object.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::kustomize;
use crate::manifest::{self, pod_labels, pod_spec, Manifest};
use crate::schema::{self, SchemaResult};

/// One failed check.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Violation {
    /// File, relative to the infra root's parent (the repository root) when possible.
    pub file: String,
    /// Rule id, e.g. `resources`, `security-context.run-as-non-root`.
    pub rule: String,
    /// The object concerned (`Kind ns/name`), if any.
    pub object: Option<String>,
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.object {
            Some(o) => write!(f, "{}: [{}] {}: {}", self.file, self.rule, o, self.message),
            None => write!(f, "{}: [{}] {}", self.file, self.rule, self.message),
        }
    }
}

/// Directories under `infra/` that hold no Kubernetes manifests.
pub const NOT_MANIFESTS: [&str; 3] = ["talos", "clusters", "policy"];

/// Exceptions to the workload rules, kept in `infra/policy/exceptions.yaml`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Exceptions {
    #[serde(default)]
    pub exceptions: Vec<Exception>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exception {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// Container name, or `*` for all of the workload's containers.
    #[serde(default = "star")]
    pub container: String,
    pub rules: Vec<String>,
    pub reason: String,
}

fn star() -> String {
    "*".into()
}

/// The outcome of checking a tree.
#[derive(Debug, Default)]
pub struct Report {
    pub violations: Vec<Violation>,
    /// Number of objects checked.
    pub objects: usize,
    /// Kustomizations built.
    pub kustomizations: usize,
}

struct Ctx {
    base: PathBuf,
    exceptions: Vec<Exception>,
    used: BTreeSet<usize>,
    out: Vec<Violation>,
}

impl Ctx {
    fn rel(&self, p: &Path) -> String {
        p.strip_prefix(&self.base)
            .unwrap_or(p)
            .display()
            .to_string()
    }
    fn push(
        &mut self,
        file: &Path,
        rule: &str,
        object: Option<String>,
        message: impl Into<String>,
    ) {
        let v = Violation {
            file: self.rel(file),
            rule: rule.to_string(),
            object,
            message: message.into(),
        };
        if !self.out.contains(&v) {
            self.out.push(v);
        }
    }
    fn excepted(&mut self, m: &Manifest, container: &str, rule: &str) -> bool {
        let ns = m.namespace().unwrap_or("");
        let hit = self.exceptions.iter().position(|e| {
            e.kind == m.kind()
                && e.namespace == ns
                && e.name == m.name()
                && (e.container == "*" || e.container == container)
                && e.rules
                    .iter()
                    .any(|r| r == rule || rule.starts_with(&format!("{r}.")))
        });
        match hit {
            Some(i) => {
                self.used.insert(i);
                true
            }
            None => false,
        }
    }
}

fn obj_label(m: &Manifest) -> Option<String> {
    Some(m.object_ref().to_string())
}

/// Collect YAML files under `dir`, skipping the directories in [`NOT_MANIFESTS`] at the top.
fn yaml_files(root: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, top: bool, out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        entries.sort();
        for p in entries {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if p.is_dir() {
                if top && NOT_MANIFESTS.contains(&name) {
                    continue;
                }
                walk(&p, false, out);
            } else if name.ends_with(".yaml") || name.ends_with(".yml") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, true, &mut out);
    out
}

fn is_values_file(p: &Path) -> bool {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name == "values.yaml" || (name.starts_with("values-") && name.ends_with(".yaml"))
}

/// Check the whole `infra/` tree at `infra_root`.
pub fn check_tree(infra_root: &Path) -> Report {
    let infra_root = &kustomize::normalize(infra_root);
    let base = infra_root.parent().unwrap_or(infra_root).to_path_buf();
    let mut ctx = Ctx {
        base: base.clone(),
        exceptions: Vec::new(),
        used: BTreeSet::new(),
        out: Vec::new(),
    };
    let exc_file = infra_root.join("policy").join("exceptions.yaml");
    if exc_file.is_file() {
        match std::fs::read_to_string(&exc_file)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_yaml::from_str::<Exceptions>(&t).map_err(|e| e.to_string()))
        {
            Ok(e) => {
                for x in &e.exceptions {
                    if x.reason.trim().len() < 10 {
                        ctx.push(
                            &exc_file,
                            "exception-reason",
                            Some(format!("{} {}/{}", x.kind, x.namespace, x.name)),
                            "every exception needs a documented reason",
                        );
                    }
                }
                ctx.exceptions = e.exceptions
            }
            Err(e) => ctx.push(&exc_file, "yaml", None, e),
        }
    }

    let files = yaml_files(infra_root);
    let mut loose: Vec<Manifest> = Vec::new();
    let mut in_kustomization: BTreeSet<PathBuf> = BTreeSet::new();
    let mut kdirs: Vec<PathBuf> = Vec::new();
    let patch_files: BTreeSet<PathBuf> = files
        .iter()
        .filter(|f| {
            f.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| kustomize::KUSTOMIZATION_FILES.contains(&n))
        })
        .filter_map(|f| f.parent())
        .flat_map(kustomize::patch_files)
        .collect();
    for f in &files {
        if patch_files.contains(&kustomize::normalize(f)) {
            continue; // checked as part of the objects it patches
        }
        let name = f.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if kustomize::KUSTOMIZATION_FILES.contains(&name) {
            if let Some(d) = f.parent() {
                kdirs.push(d.to_path_buf());
            }
            continue;
        }
        if is_values_file(f) {
            check_values_file(&mut ctx, f);
            continue;
        }
        match manifest::load_file(f) {
            Ok(ms) => loose.extend(ms),
            Err(e) => ctx.push(f, "yaml", None, e.to_string()),
        }
    }

    // Build every kustomization; objects from builds carry their namespace.
    let mut built: Vec<Manifest> = Vec::new();
    let mut report = Report::default();
    for d in &kdirs {
        let kfile =
            kustomize::kustomization_file(d).unwrap_or_else(|| d.join("kustomization.yaml"));
        if let Ok(ms) = manifest::load_file(&kfile) {
            for m in ms {
                if let SchemaResult::Invalid(errs) = schema::validate(&m.value) {
                    for e in errs {
                        ctx.push(&kfile, "schema", None, e);
                    }
                }
            }
        }
        report.kustomizations += 1;
        match kustomize::build(d) {
            Ok(ms) => {
                for m in ms {
                    in_kustomization.insert(m.file.clone());
                    built.push(m);
                }
            }
            Err(e) => {
                let msg = e.to_string();
                let rule = msg
                    .split("rule ")
                    .nth(1)
                    .and_then(|s| s.split(':').next())
                    .unwrap_or("kustomize")
                    .to_string();
                let short = msg
                    .split_once(&format!("rule {rule}: "))
                    .map(|(_, r)| r.to_string())
                    .unwrap_or(msg.clone());
                ctx.push(&kfile, &rule, None, short);
            }
        }
    }

    // The universe: built objects (deduplicated by origin) plus loose files
    // that no kustomization includes.
    let mut seen: BTreeSet<(PathBuf, usize, String)> = BTreeSet::new();
    let mut all: Vec<Manifest> = Vec::new();
    for m in built.into_iter().chain(
        loose
            .into_iter()
            .filter(|m| !in_kustomization.contains(&m.file)),
    ) {
        let key = (m.file.clone(), m.doc, m.object_ref().to_string());
        if seen.insert(key) {
            all.push(m);
        }
    }
    report.objects = all.len();
    check_objects(&mut ctx, &all, &base);

    for (i, e) in ctx.exceptions.clone().iter().enumerate() {
        if !ctx.used.contains(&i) {
            ctx.push(
                &exc_file,
                "exception-unused",
                Some(format!("{} {}/{}", e.kind, e.namespace, e.name)),
                "exception matches no violation; remove it",
            );
        }
    }
    ctx.out.sort();
    report.violations = ctx.out;
    report
}

/// Check a set of objects (one environment, or a bootstrap plan).
pub fn check_manifests(
    objects: &[Manifest],
    base: &Path,
    exceptions: Vec<Exception>,
) -> Vec<Violation> {
    let mut ctx = Ctx {
        base: base.to_path_buf(),
        exceptions,
        used: BTreeSet::new(),
        out: Vec::new(),
    };
    check_objects(&mut ctx, objects, base);
    ctx.out.sort();
    ctx.out
}

fn check_objects(ctx: &mut Ctx, all: &[Manifest], base: &Path) {
    for m in all {
        check_schema(ctx, m);
        check_images(ctx, m);
        check_workload(ctx, m);
        check_service(ctx, m);
        check_application(ctx, m, base);
    }
    check_replicated(ctx, all);
    check_namespaces(ctx, all);
}

fn check_schema(ctx: &mut Ctx, m: &Manifest) {
    let mut v = m.value.clone();
    if m.kind() == "Secret" {
        if let Some(reason) = secret_plaintext(&v) {
            ctx.push(&m.file, "plaintext-secret", obj_label(m), reason);
        }
        if let Some(o) = v.as_object_mut() {
            // SOPS values are ciphertext, not base64 of the plaintext: check
            // the shape of the decrypted Secret (same keys, empty values).
            if o.remove("sops").is_some() {
                for key in ["data", "stringData"] {
                    if let Some(d) = o.get_mut(key).and_then(Value::as_object_mut) {
                        for x in d.values_mut() {
                            *x = Value::String(String::new());
                        }
                    }
                }
            }
        }
    }
    match schema::validate(&v) {
        SchemaResult::Valid => {}
        SchemaResult::Invalid(errs) => {
            for e in errs {
                ctx.push(&m.file, "schema", obj_label(m), e);
            }
        }
        SchemaResult::UnknownKind => ctx.push(
            &m.file,
            "schema",
            obj_label(m),
            format!(
                "no Kubernetes type or kept schema for {} {}; add one to platform/schemas/",
                m.api_version(),
                m.kind()
            ),
        ),
    }
}

/// `Some(reason)` when a Secret carries data that is not SOPS/age-encrypted.
pub fn secret_plaintext(v: &Value) -> Option<String> {
    let mut values: Vec<&Value> = Vec::new();
    for key in ["data", "stringData"] {
        if let Some(o) = v.get(key).and_then(Value::as_object) {
            values.extend(o.values());
        }
    }
    if values.is_empty() {
        return None;
    }
    let Some(sops) = v.get("sops") else {
        return Some("Secret has data in plaintext; encrypt it with SOPS (age recipients) or leave the data out and let the provisioner fill it".into());
    };
    let has_age = sops
        .get("age")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    if !has_age {
        return Some("SOPS metadata has no age recipients".into());
    }
    if values.iter().any(|x| {
        !x.as_str()
            .is_some_and(|s| s.starts_with("ENC[AES256_GCM,data:"))
    }) {
        return Some("Secret has a value that is not SOPS-encrypted (ENC[AES256_GCM,...])".into());
    }
    None
}

fn containers(spec: &Value, key: &str) -> Vec<Value> {
    spec.get(key)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// An image reference is pinned when it has a tag other than `latest`, or a digest.
pub fn image_problem(image: &str) -> Option<&'static str> {
    if image.contains("@sha256:") {
        return None;
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.rsplit_once(':') {
        None => Some("image has no tag; pin a version"),
        Some((_, "latest")) => Some("image uses the `latest` tag; pin a version"),
        Some((_, "")) => Some("image has an empty tag"),
        _ => None,
    }
}

fn check_images(ctx: &mut Ctx, m: &Manifest) {
    let Some(spec) = pod_spec(&m.value) else {
        return;
    };
    for key in ["initContainers", "containers"] {
        for c in containers(spec, key) {
            let image = c.get("image").and_then(Value::as_str).unwrap_or("");
            let cname = c.get("name").and_then(Value::as_str).unwrap_or("?");
            if image.is_empty() {
                ctx.push(
                    &m.file,
                    "image-tag",
                    obj_label(m),
                    format!("container {cname} has no image"),
                );
            } else if let Some(p) = image_problem(image) {
                ctx.push(
                    &m.file,
                    "image-tag",
                    obj_label(m),
                    format!("container {cname}: {p} ({image})"),
                );
            }
        }
    }
}

fn is_long_running(kind: &str) -> bool {
    matches!(kind, "Deployment" | "DaemonSet" | "StatefulSet")
}

fn check_workload(ctx: &mut Ctx, m: &Manifest) {
    let Some(spec) = pod_spec(&m.value).cloned() else {
        return;
    };
    let pod_sc = spec.get("securityContext").cloned().unwrap_or(Value::Null);
    let long = is_long_running(m.kind());
    for (key, is_init) in [("initContainers", true), ("containers", false)] {
        for c in containers(&spec, key) {
            let cname = c
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_string();
            let who = format!("container {cname}");
            let rule = |ctx: &mut Ctx, id: &str, msg: String| {
                if !ctx.excepted(m, &cname, id) {
                    ctx.push(&m.file, id, obj_label(m), msg);
                }
            };
            for (sect, res) in [
                ("requests", "cpu"),
                ("requests", "memory"),
                ("limits", "cpu"),
                ("limits", "memory"),
            ] {
                if c.pointer(&format!("/resources/{sect}/{res}")).is_none() {
                    rule(
                        ctx,
                        "resources",
                        format!("{who} has no resources.{sect}.{res}"),
                    );
                }
            }
            if long && !is_init {
                for probe in ["readinessProbe", "livenessProbe"] {
                    if c.get(probe).is_none() {
                        rule(ctx, "probes", format!("{who} has no {probe}"));
                    }
                }
            }
            let sc = c.get("securityContext").cloned().unwrap_or(Value::Null);
            let non_root = sc
                .get("runAsNonRoot")
                .or_else(|| pod_sc.get("runAsNonRoot"))
                .and_then(Value::as_bool)
                == Some(true);
            if !non_root {
                rule(
                    ctx,
                    "security-context.run-as-non-root",
                    format!("{who}: runAsNonRoot must be true (container or pod securityContext)"),
                );
            }
            if sc.get("allowPrivilegeEscalation").and_then(Value::as_bool) != Some(false) {
                rule(
                    ctx,
                    "security-context.allow-privilege-escalation",
                    format!("{who}: allowPrivilegeEscalation must be false"),
                );
            }
            if sc.get("readOnlyRootFilesystem").and_then(Value::as_bool) != Some(true) {
                rule(ctx, "security-context.read-only-root-filesystem", format!("{who}: readOnlyRootFilesystem must be true (or add a documented exception)"));
            }
            if sc.get("privileged").and_then(Value::as_bool) == Some(true) {
                rule(
                    ctx,
                    "security-context.privileged",
                    format!("{who} is privileged"),
                );
            }
            let drops_all = sc
                .pointer("/capabilities/drop")
                .and_then(Value::as_array)
                .is_some_and(|d| d.iter().any(|x| x.as_str() == Some("ALL")));
            if !drops_all {
                rule(
                    ctx,
                    "security-context.capabilities",
                    format!("{who}: capabilities.drop must include ALL"),
                );
            }
        }
    }
}

fn check_service(ctx: &mut Ctx, m: &Manifest) {
    if m.kind() != "Service" {
        return;
    }
    if let Some(t) = m.value.pointer("/spec/type").and_then(Value::as_str) {
        if t == "LoadBalancer" || t == "NodePort" {
            ctx.push(
                &m.file,
                "service-type",
                obj_label(m),
                format!("Service of type {t} opens a public port; use ClusterIP behind the tunnel"),
            );
        }
    }
}

fn check_values_file(ctx: &mut Ctx, f: &Path) {
    let text = match std::fs::read_to_string(f) {
        Ok(t) => t,
        Err(e) => return ctx.push(f, "yaml", None, e.to_string()),
    };
    let v: Value = match serde_yaml::from_str(&text) {
        Ok(v) => v,
        Err(e) => return ctx.push(f, "yaml", None, e.to_string()),
    };
    fn walk(v: &Value, path: &str, hits: &mut Vec<(String, String)>) {
        match v {
            Value::Object(o) => {
                for (k, x) in o {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    if k == "type" {
                        if let Some(t @ ("LoadBalancer" | "NodePort")) = x.as_str() {
                            hits.push((
                                "service-type".into(),
                                format!("`{p}: {t}` opens a public port"),
                            ));
                        }
                    }
                    if k == "tag" && x.as_str() == Some("latest") {
                        hits.push(("image-tag".into(), format!("`{p}: latest`; pin a version")));
                    }
                    walk(x, &p, hits);
                }
            }
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    walk(x, &format!("{path}[{i}]"), hits);
                }
            }
            _ => {}
        }
    }
    let mut hits = Vec::new();
    walk(&v, "", &mut hits);
    for (rule, msg) in hits {
        ctx.push(f, &rule, None, msg);
    }
}

fn is_exact_version(v: &str) -> bool {
    let core = v.split(['-', '+']).next().unwrap_or("");
    let core = core.strip_prefix('v').unwrap_or(core);
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

fn check_application(ctx: &mut Ctx, m: &Manifest, base: &Path) {
    if m.kind() != "Application" || m.api_version() != "argoproj.io/v1alpha1" {
        return;
    }
    match m.annotation("argocd.argoproj.io/sync-wave") {
        Some(w) if w.parse::<i32>().is_ok() => {}
        Some(w) => ctx.push(
            &m.file,
            "sync-wave",
            obj_label(m),
            format!("sync-wave `{w}` is not an integer"),
        ),
        None => ctx.push(
            &m.file,
            "sync-wave",
            obj_label(m),
            "Application has no argocd.argoproj.io/sync-wave annotation",
        ),
    }
    let mut sources: Vec<Value> = Vec::new();
    if let Some(s) = m.value.pointer("/spec/source") {
        sources.push(s.clone());
    }
    if let Some(a) = m.value.pointer("/spec/sources").and_then(Value::as_array) {
        sources.extend(a.iter().cloned());
    }
    let rev_ok = |s: &Value| {
        s.get("targetRevision")
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    for s in &sources {
        if s.get("chart").is_some() {
            match rev_ok(s) {
                Some(r) if is_exact_version(&r) => {}
                Some(r) => ctx.push(
                    &m.file,
                    "helm-pinned",
                    obj_label(m),
                    format!("chart targetRevision `{r}` is not an exact version"),
                ),
                None => ctx.push(
                    &m.file,
                    "helm-pinned",
                    obj_label(m),
                    "chart source has no targetRevision",
                ),
            }
            let files = s
                .pointer("/helm/valueFiles")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if files.is_empty() && s.pointer("/helm/valuesObject").is_none() {
                ctx.push(
                    &m.file,
                    "helm-values",
                    obj_label(m),
                    "chart source has no values files of ours",
                );
            }
            for f in files {
                let f = f.as_str().unwrap_or("");
                match f.strip_prefix("$values/") {
                    Some(rel) if base.join(rel).is_file() => {}
                    Some(rel) => ctx.push(
                        &m.file,
                        "app-source",
                        obj_label(m),
                        format!("values file `{rel}` does not exist in the repository"),
                    ),
                    None => ctx.push(
                        &m.file,
                        "app-source",
                        obj_label(m),
                        format!("values file `{f}` must come from this repository (`$values/...`)"),
                    ),
                }
            }
        } else if let Some(p) = s.get("path").and_then(Value::as_str) {
            if !base.join(p).is_dir() {
                ctx.push(
                    &m.file,
                    "app-source",
                    obj_label(m),
                    format!("source path `{p}` does not exist in the repository"),
                );
            }
        }
    }
}

fn int_at(v: &Value, ptr: &str) -> Option<i64> {
    v.pointer(ptr).and_then(Value::as_i64)
}

fn selector_matches(sel: &Value, labels: &serde_json::Map<String, Value>) -> bool {
    let Some(ml) = sel.get("matchLabels").and_then(Value::as_object) else {
        return false;
    };
    !ml.is_empty() && ml.iter().all(|(k, v)| labels.get(k) == Some(v))
}

fn check_replicated(ctx: &mut Ctx, all: &[Manifest]) {
    // Workloads scaled by an HPA or a KEDA ScaledObject count as replicated.
    let mut scaled: BTreeMap<(String, String), i64> = BTreeMap::new();
    for m in all {
        let (ptr, max) = match m.kind() {
            "HorizontalPodAutoscaler" => (
                "/spec/scaleTargetRef/name",
                int_at(&m.value, "/spec/maxReplicas"),
            ),
            "ScaledObject" => (
                "/spec/scaleTargetRef/name",
                int_at(&m.value, "/spec/maxReplicaCount"),
            ),
            _ => continue,
        };
        if let Some(n) = m.value.pointer(ptr).and_then(Value::as_str) {
            scaled.insert(
                (m.namespace().unwrap_or("").to_string(), n.to_string()),
                max.unwrap_or(100),
            );
        }
    }
    for m in all {
        if !matches!(m.kind(), "Deployment" | "StatefulSet") {
            continue;
        }
        let ns = m.namespace().unwrap_or("").to_string();
        let replicas = int_at(&m.value, "/spec/replicas").unwrap_or(1);
        let max = scaled
            .get(&(ns.clone(), m.name().to_string()))
            .copied()
            .unwrap_or(replicas);
        if replicas.max(max) < 2 {
            continue;
        }
        let Some(labels) = pod_labels(&m.value) else {
            continue;
        };
        let has_pdb = all.iter().any(|p| {
            p.kind() == "PodDisruptionBudget"
                && p.namespace().unwrap_or("") == ns
                && p.value
                    .pointer("/spec/selector")
                    .is_some_and(|s| selector_matches(s, labels))
        });
        if !has_pdb && !ctx.excepted(m, "*", "pdb") {
            ctx.push(
                &m.file,
                "pdb",
                obj_label(m),
                "replicated workload has no PodDisruptionBudget selecting its pods",
            );
        }
        let spec = pod_spec(&m.value).cloned().unwrap_or(Value::Null);
        let anti = spec.pointer("/affinity/podAntiAffinity").is_some()
            || spec
                .get("topologySpreadConstraints")
                .and_then(Value::as_array)
                .is_some_and(|t| {
                    t.iter().any(|c| {
                        c.get("topologyKey").and_then(Value::as_str)
                            == Some("kubernetes.io/hostname")
                    })
                });
        if !anti && !ctx.excepted(m, "*", "anti-affinity") {
            ctx.push(
                &m.file,
                "anti-affinity",
                obj_label(m),
                "replicated workload has no podAntiAffinity or hostname topologySpreadConstraints",
            );
        }
    }
}

/// Namespaces not declared by us (the cluster's own) are exempt.
pub const SYSTEM_NAMESPACES: [&str; 4] =
    ["kube-system", "kube-public", "kube-node-lease", "default"];

fn is_default_deny(p: &Manifest) -> (bool, bool) {
    if p.kind() != "NetworkPolicy" {
        return (false, false);
    }
    let v = &p.value;
    let empty_sel = v
        .pointer("/spec/podSelector")
        .and_then(Value::as_object)
        .is_some_and(|o| {
            o.values().all(|x| {
                x.as_object().is_some_and(|m| m.is_empty())
                    || x.as_array().is_some_and(|a| a.is_empty())
            })
        });
    if !empty_sel {
        return (false, false);
    }
    let types: Vec<&str> = v
        .pointer("/spec/policyTypes")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let no_rules = |k: &str| {
        v.pointer(&format!("/spec/{k}"))
            .and_then(Value::as_array)
            .is_none_or(|a| a.is_empty())
    };
    (
        types.contains(&"Ingress") && no_rules("ingress"),
        types.contains(&"Egress") && no_rules("egress"),
    )
}

fn check_namespaces(ctx: &mut Ctx, all: &[Manifest]) {
    let declared: BTreeMap<String, &Manifest> = all
        .iter()
        .filter(|m| m.kind() == "Namespace")
        .map(|m| (m.name().to_string(), m))
        .collect();
    for (ns, m) in &declared {
        let (mut ing, mut eg) = (false, false);
        for p in all.iter().filter(|p| p.namespace() == Some(ns.as_str())) {
            let (i, e) = is_default_deny(p);
            ing |= i;
            eg |= e;
        }
        if !(ing && eg) {
            ctx.push(&m.file, "default-deny", obj_label(m), format!("namespace {ns} has no default-deny NetworkPolicy (empty podSelector, policyTypes Ingress and Egress, no rules)"));
        }
    }
    // NetworkPolicy peers must name namespaces that exist, and CNPG pods by a
    // Cluster that exists (a typo there silently blocks the flow).
    for m in all.iter().filter(|m| m.kind() == "NetworkPolicy") {
        let own_ns = m.namespace().unwrap_or("");
        for dir in ["ingress", "egress"] {
            let rules = m
                .value
                .pointer(&format!("/spec/{dir}"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for rule in rules {
                let peers = rule
                    .get(if dir == "ingress" { "from" } else { "to" })
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                for peer in peers {
                    let ns = peer
                        .pointer("/namespaceSelector/matchLabels/kubernetes.io~1metadata.name")
                        .and_then(Value::as_str);
                    if let Some(ns) = ns {
                        if !SYSTEM_NAMESPACES.contains(&ns) && !declared.contains_key(ns) {
                            ctx.push(
                                &m.file,
                                "network-policy-peer",
                                obj_label(m),
                                format!("{dir} peer namespace {ns} is not declared in infra/"),
                            );
                        }
                    }
                    let peer_ns = ns.unwrap_or(if peer.get("namespaceSelector").is_some() {
                        ""
                    } else {
                        own_ns
                    });
                    if let Some(cluster) = peer
                        .pointer("/podSelector/matchLabels/cnpg.io~1cluster")
                        .and_then(Value::as_str)
                    {
                        let exists = all.iter().any(|c| {
                            c.kind() == "Cluster"
                                && c.name() == cluster
                                && c.namespace().unwrap_or("") == peer_ns
                        });
                        if !exists {
                            ctx.push(&m.file, "network-policy-peer", obj_label(m), format!("{dir} peer selects Postgres cluster {cluster} in namespace {peer_ns}, which is not declared in infra/"));
                        }
                    }
                }
            }
        }
    }
    // Every namespace we deploy into must be one we declare (so it has its policy).
    for m in all {
        let target = if m.kind() == "Application" {
            m.value
                .pointer("/spec/destination/namespace")
                .and_then(Value::as_str)
        } else {
            m.namespace()
        };
        let Some(ns) = target else { continue };
        if !SYSTEM_NAMESPACES.contains(&ns) && !declared.contains_key(ns) {
            ctx.push(&m.file, "namespace-declared", obj_label(m), format!("namespace {ns} is not declared in infra/ (declare it with its default-deny NetworkPolicy)"));
        }
    }
}
