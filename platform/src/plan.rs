//! The add-on plan: what `provisioner up` applies before Argo CD exists, in
//! order, read from `infra/bootstrap/<NN-name>/` (each a kustomization).
//!
//! Building the plan is pure (files in, objects out) and validates every
//! object, so a bad manifest stops `up` before the first API request.
//!
//! Two kinds of object are completed at plan time:
//! - Secrets in Git carry no data, only the annotation
//!   `platform.shopedge.dev/secret-inputs: "key=input,key2=input2"`; the
//!   plan fills `data` from [`PlanInputs::secrets`] (decrypted by the
//!   provisioner from its age files). A missing input is an error naming the
//!   object.
//! - The root Application (annotation `platform.shopedge.dev/root-application`)
//!   gets the repository URL, revision and environment path from the inputs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};

use crate::checks;
use crate::error::PlatformError;
use crate::kustomize;
use crate::manifest::{Manifest, ObjectRef};
use crate::schema::{self, SchemaResult};
use crate::secret::SecretValue;

pub const ANN_SECRET_INPUTS: &str = "platform.shopedge.dev/secret-inputs";
pub const ANN_ROOT_APP: &str = "platform.shopedge.dev/root-application";
/// Objects whose apply may take over fields from another manager. Each use
/// is documented in the manifest's `platform.shopedge.dev/force-apply-reason`.
pub const ANN_FORCE: &str = "platform.shopedge.dev/force-apply";
pub const ANN_FORCE_REASON: &str = "platform.shopedge.dev/force-apply-reason";
/// Per-step readiness timeout override in seconds, on the step's first object
/// or any object of the step.
pub const ANN_TIMEOUT: &str = "platform.shopedge.dev/ready-timeout-seconds";
pub const LABEL_ADDON: &str = "platform.shopedge.dev/addon";
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const FIELD_MANAGER: &str = "provisioner";

/// Inputs of the plan that are not in Git.
#[derive(Debug, Clone)]
pub struct PlanInputs {
    /// `staging` or `production`: selects `infra/argocd/overlays/<env>`.
    pub environment: String,
    /// The Git repository Argo CD follows.
    pub repo_url: String,
    /// Branch, tag or commit.
    pub revision: String,
    /// Secret inputs by name, e.g. `hcloud.token`, `hcloud.network`,
    /// `cloudflared.tunnel-token`.
    pub secrets: BTreeMap<String, SecretValue>,
}

/// One add-on, applied and waited for before the next.
#[derive(Debug, Clone)]
pub struct AddonStep {
    pub name: String,
    pub dir: PathBuf,
    pub objects: Vec<Manifest>,
    pub ready_timeout: Duration,
}

/// The ordered add-ons.
#[derive(Debug, Clone, Default)]
pub struct AddonPlan {
    pub steps: Vec<AddonStep>,
}

/// Default readiness timeout per step.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

impl AddonPlan {
    /// Every object with its step name, in apply order of steps.
    pub fn objects(&self) -> impl Iterator<Item = (&str, &Manifest)> {
        self.steps
            .iter()
            .flat_map(|s| s.objects.iter().map(move |o| (s.name.as_str(), o)))
    }

    /// Schema and secret checks of every object. Empty when the plan is valid.
    pub fn validate(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (step, m) in self.objects() {
            let mut v = m.value.clone();
            if m.kind() == "Secret" {
                if let Some(o) = v.as_object_mut() {
                    o.remove("sops");
                }
            }
            match schema::validate(&v) {
                SchemaResult::Valid => {}
                SchemaResult::Invalid(errs) => {
                    for e in errs {
                        out.push(format!(
                            "{}: [schema] {} (step {step}): {e}",
                            m.location(),
                            m.object_ref()
                        ));
                    }
                }
                SchemaResult::UnknownKind => {
                    // Custom resources whose CRD is applied by this plan are
                    // checked by the API server against that CRD.
                    let served = self.objects().any(|(_, c)| {
                        c.kind() == "CustomResourceDefinition"
                            && crd_serves(&c.value, m.api_version(), m.kind())
                    });
                    if !served && !m.api_version().contains('/') {
                        out.push(format!(
                            "{}: [schema] {} (step {step}): unknown kind {}",
                            m.location(),
                            m.object_ref(),
                            m.kind()
                        ));
                    }
                }
            }
            if m.name().is_empty() {
                out.push(format!(
                    "{}: [schema] object without metadata.name (step {step})",
                    m.location()
                ));
            }
        }
        out
    }
}

/// Whether a CRD object serves `api_version`/`kind`.
pub fn crd_serves(crd: &Value, api_version: &str, kind: &str) -> bool {
    let group = crd
        .pointer("/spec/group")
        .and_then(Value::as_str)
        .unwrap_or("");
    let k = crd
        .pointer("/spec/names/kind")
        .and_then(Value::as_str)
        .unwrap_or("");
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    k == kind
        && versions.iter().any(|v| {
            let name = v.get("name").and_then(Value::as_str).unwrap_or("");
            format!("{group}/{name}") == api_version
        })
}

/// The step directories of `infra_root/bootstrap/`, in apply order.
fn step_dirs(infra_root: &Path) -> Result<Vec<PathBuf>, PlatformError> {
    let boot = infra_root.join("bootstrap");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&boot)
        .map_err(|e| PlatformError::Validation {
            violations: vec![format!(
                "{}: cannot read the bootstrap directory: {e}",
                boot.display()
            )],
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir() && kustomize::kustomization_file(p).is_some())
        .collect();
    dirs.sort();
    Ok(dirs)
}

/// A secret input named by a bootstrap Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputUse {
    /// The input (`hcloud.token`, `b2.key-id`...).
    pub input: String,
    /// The Secret that needs it.
    pub object: ObjectRef,
    /// Where the Secret is defined, for messages.
    pub location: String,
}

/// Every secret input the bootstrap Secrets of `infra_root` name, in plan
/// order, so the caller can gather them (and say what is missing) before
/// building the plan. Malformed annotations are left to [`plan_addons`].
pub fn required_inputs(infra_root: &Path) -> Result<Vec<InputUse>, PlatformError> {
    let infra_root = &kustomize::normalize(infra_root);
    let mut out = Vec::new();
    for dir in step_dirs(infra_root)? {
        for m in kustomize::build(&dir)? {
            let Some(spec) = m.annotation(ANN_SECRET_INPUTS) else {
                continue;
            };
            for pair in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                if let Some((_, input)) = pair.split_once('=') {
                    out.push(InputUse {
                        input: input.trim().to_string(),
                        object: m.object_ref(),
                        location: m.location(),
                    });
                }
            }
        }
    }
    Ok(out)
}

/// Read the plan from `infra_root/bootstrap/` and complete it with `inputs`.
pub fn plan_addons(infra_root: &Path, inputs: &PlanInputs) -> Result<AddonPlan, PlatformError> {
    let infra_root = &kustomize::normalize(infra_root);
    let dirs = step_dirs(infra_root)?;
    let mut plan = AddonPlan::default();
    let mut problems = Vec::new();
    for dir in dirs {
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .map(|n| n.split_once('-').map(|(_, r)| r).unwrap_or(n).to_string())
            .unwrap_or_default();
        let mut objects = kustomize::build(&dir)?;
        let mut timeout = DEFAULT_TIMEOUT;
        for m in &mut objects {
            if let Some(t) = m
                .annotation(ANN_TIMEOUT)
                .and_then(|t| t.parse::<u64>().ok())
            {
                timeout = Duration::from_secs(t);
            }
            label(&mut m.value, &name);
            if m.annotation(ANN_ROOT_APP) == Some("true") {
                root_app(m, inputs);
            }
            if m.annotation(ANN_FORCE) == Some("true")
                && m.annotation(ANN_FORCE_REASON)
                    .is_none_or(|r| r.trim().is_empty())
            {
                problems.push(format!(
                    "{}: [force-apply] {}: force-apply without a documented {ANN_FORCE_REASON}",
                    m.location(),
                    m.object_ref()
                ));
            }
        }
        plan.steps.push(AddonStep {
            name,
            dir,
            objects,
            ready_timeout: timeout,
        });
    }
    // The bootstrap manifests get the same workload checks as the GitOps
    // tree (before secret inputs are filled in).
    let exceptions = load_exceptions(infra_root);
    let all: Vec<Manifest> = plan.objects().map(|(_, m)| m.clone()).collect();
    let base = infra_root.parent().unwrap_or(infra_root);
    for v in checks::check_manifests(&all, base, exceptions) {
        if !matches!(
            v.rule.as_str(),
            "schema" | "namespace-declared" | "network-policy-peer"
        ) {
            problems.push(v.to_string());
        }
    }
    for step in &mut plan.steps {
        for m in &mut step.objects {
            if let Err(e) = fill_secret(m, &inputs.secrets) {
                problems.push(e);
            }
        }
    }
    problems.extend(plan.validate());
    if problems.is_empty() {
        Ok(plan)
    } else {
        Err(PlatformError::Validation {
            violations: problems,
        })
    }
}

fn load_exceptions(infra_root: &Path) -> Vec<checks::Exception> {
    std::fs::read_to_string(infra_root.join("policy").join("exceptions.yaml"))
        .ok()
        .and_then(|t| serde_yaml::from_str::<checks::Exceptions>(&t).ok())
        .map(|e| e.exceptions)
        .unwrap_or_default()
}

fn label(v: &mut Value, step: &str) {
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        let labels = meta.entry("labels").or_insert_with(|| json!({}));
        if let Some(l) = labels.as_object_mut() {
            l.insert(LABEL_ADDON.into(), Value::String(step.to_string()));
            l.insert(LABEL_MANAGED_BY.into(), Value::String(FIELD_MANAGER.into()));
        }
    }
}

fn fill_secret(m: &mut Manifest, secrets: &BTreeMap<String, SecretValue>) -> Result<(), String> {
    let Some(spec) = m.annotation(ANN_SECRET_INPUTS).map(str::to_string) else {
        return Ok(());
    };
    if m.kind() != "Secret" {
        return Err(format!(
            "{}: [secret-inputs] {}: only Secrets take secret inputs",
            m.location(),
            m.object_ref()
        ));
    }
    let mut data = serde_json::Map::new();
    for pair in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((key, input)) = pair.split_once('=') else {
            return Err(format!(
                "{}: [secret-inputs] {}: `{pair}` is not key=input",
                m.location(),
                m.object_ref()
            ));
        };
        let value = secrets.get(input.trim()).ok_or_else(|| {
            format!(
                "{}: [secret-inputs] {}: secret input `{}` was not provided (add it to the cluster's age-encrypted secrets)",
                m.location(),
                m.object_ref(),
                input.trim()
            )
        })?;
        // `data` (base64), not the write-only `stringData`: what is applied
        // is what the server stores, so re-applying is a no-op.
        let encoded = base64::engine::general_purpose::STANDARD.encode(value.expose());
        data.insert(key.trim().to_string(), Value::String(encoded));
    }
    if let Some(o) = m.value.as_object_mut() {
        o.insert("data".into(), Value::Object(data));
    }
    Ok(())
}

fn root_app(m: &mut Manifest, inputs: &PlanInputs) {
    let path = format!("infra/argocd/overlays/{}", inputs.environment);
    if let Some(src) = m
        .value
        .pointer_mut("/spec/source")
        .and_then(Value::as_object_mut)
    {
        src.insert("repoURL".into(), Value::String(inputs.repo_url.clone()));
        src.insert(
            "targetRevision".into(),
            Value::String(inputs.revision.clone()),
        );
        src.insert("path".into(), Value::String(path));
    }
}

/// Objects of a plan in a readable list (for `provisioner plan`).
pub fn describe(plan: &AddonPlan) -> Vec<(String, ObjectRef)> {
    plan.objects()
        .map(|(s, m)| (s.to_string(), m.object_ref()))
        .collect()
}
