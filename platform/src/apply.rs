//! Applying an [`AddonPlan`] with server-side apply, in order, waiting for
//! each step to be ready.
//!
//! Per step: CustomResourceDefinitions first, each waited for until
//! `Established`; then the other objects in dependency order (namespaces,
//! RBAC and config, services, workloads, custom resources); then every
//! Deployment, DaemonSet and StatefulSet of the step is waited for until
//! rolled out. Applies use field manager `provisioner` and force only on
//! objects annotated `platform.shopedge.dev/force-apply: "true"` (with a
//! documented reason). Re-running changes nothing: server-side apply of an
//! unchanged configuration is a no-op, and the report says `unchanged`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use serde_json::Value;

use crate::error::PlatformError;
use crate::kubeconfig::Connection;
use crate::manifest::{group_of, Manifest, ObjectRef};
use crate::plan::{crd_serves, AddonPlan, AddonStep, ANN_FORCE, FIELD_MANAGER};

/// Options of an apply run.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// How often readiness is polled.
    pub poll_interval: Duration,
    /// Overrides every step's readiness timeout when set.
    pub timeout: Option<Duration>,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(2),
            timeout: None,
        }
    }
}

/// What happened to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Created,
    Configured,
    Unchanged,
}

/// Progress events, for spinners or log lines.
#[derive(Debug, Clone)]
pub enum ProgressEvent<'a> {
    StepStarted {
        step: &'a str,
        objects: usize,
    },
    Applied {
        step: &'a str,
        object: &'a ObjectRef,
        outcome: Outcome,
    },
    Waiting {
        step: &'a str,
        object: &'a ObjectRef,
        detail: &'a str,
    },
    Ready {
        step: &'a str,
        object: &'a ObjectRef,
    },
    StepDone {
        step: &'a str,
        elapsed: Duration,
    },
}

/// Receives progress events.
pub trait Progress: Send + Sync {
    fn event(&self, event: &ProgressEvent<'_>);
}

/// Progress as `tracing` log lines.
pub struct LogProgress;

impl Progress for LogProgress {
    fn event(&self, e: &ProgressEvent<'_>) {
        match e {
            ProgressEvent::StepStarted { step, objects } => {
                tracing::info!(step, objects, "applying add-on")
            }
            ProgressEvent::Applied {
                step,
                object,
                outcome,
            } => tracing::info!(step, %object, ?outcome, "applied"),
            ProgressEvent::Waiting {
                step,
                object,
                detail,
            } => tracing::info!(step, %object, detail, "waiting"),
            ProgressEvent::Ready { step, object } => tracing::info!(step, %object, "ready"),
            ProgressEvent::StepDone { step, elapsed } => {
                tracing::info!(step, secs = elapsed.as_secs_f64(), "add-on ready")
            }
        }
    }
}

/// No progress output.
pub struct NoProgress;
impl Progress for NoProgress {
    fn event(&self, _: &ProgressEvent<'_>) {}
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ObjectReport {
    pub object: ObjectRef,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct StepReport {
    pub name: String,
    pub objects: Vec<ObjectReport>,
    pub elapsed_ms: u128,
}

/// The result of an apply run.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ApplyReport {
    pub steps: Vec<StepReport>,
}

impl ApplyReport {
    /// Objects created or changed.
    pub fn changed(&self) -> usize {
        self.steps
            .iter()
            .flat_map(|s| &s.objects)
            .filter(|o| o.outcome != Outcome::Unchanged)
            .count()
    }
}

/// Built-in kinds: (apiVersion, kind) -> (plural, namespaced).
const BUILTIN: [(&str, &str, &str, bool); 23] = [
    ("v1", "Namespace", "namespaces", false),
    ("v1", "ServiceAccount", "serviceaccounts", true),
    ("v1", "ConfigMap", "configmaps", true),
    ("v1", "Secret", "secrets", true),
    ("v1", "Service", "services", true),
    ("v1", "Pod", "pods", true),
    (
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        true,
    ),
    ("apps/v1", "Deployment", "deployments", true),
    ("apps/v1", "DaemonSet", "daemonsets", true),
    ("apps/v1", "StatefulSet", "statefulsets", true),
    ("batch/v1", "Job", "jobs", true),
    ("batch/v1", "CronJob", "cronjobs", true),
    (
        "rbac.authorization.k8s.io/v1",
        "ClusterRole",
        "clusterroles",
        false,
    ),
    (
        "rbac.authorization.k8s.io/v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        false,
    ),
    ("rbac.authorization.k8s.io/v1", "Role", "roles", true),
    (
        "rbac.authorization.k8s.io/v1",
        "RoleBinding",
        "rolebindings",
        true,
    ),
    (
        "networking.k8s.io/v1",
        "NetworkPolicy",
        "networkpolicies",
        true,
    ),
    (
        "policy/v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        true,
    ),
    (
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        true,
    ),
    ("storage.k8s.io/v1", "StorageClass", "storageclasses", false),
    ("storage.k8s.io/v1", "CSIDriver", "csidrivers", false),
    (
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        false,
    ),
    (
        "scheduling.k8s.io/v1",
        "PriorityClass",
        "priorityclasses",
        false,
    ),
];

/// Apply order inside a step (lower first).
pub fn kind_rank(kind: &str) -> u8 {
    match kind {
        "CustomResourceDefinition" => 0,
        "Namespace" => 1,
        "PriorityClass" | "StorageClass" | "CSIDriver" => 2,
        "ServiceAccount" | "Secret" | "ConfigMap" | "ClusterRole" | "Role" => 3,
        "ClusterRoleBinding" | "RoleBinding" => 4,
        "Service" | "NetworkPolicy" => 5,
        "PodDisruptionBudget" | "PersistentVolumeClaim" => 6,
        "Deployment" | "DaemonSet" | "StatefulSet" | "Job" | "CronJob" => 7,
        "HorizontalPodAutoscaler" => 8,
        _ => 9,
    }
}

fn api_resource(api_version: &str, kind: &str, plural: &str) -> ApiResource {
    let (group, version) = match api_version.rsplit_once('/') {
        Some((g, v)) => (g.to_string(), v.to_string()),
        None => (String::new(), api_version.to_string()),
    };
    ApiResource {
        group,
        version,
        api_version: api_version.to_string(),
        kind: kind.to_string(),
        plural: plural.to_string(),
    }
}

fn status_of(e: &kube::Error) -> Option<&kube::core::Status> {
    match e {
        kube::Error::Api(s) => Some(s),
        _ => None,
    }
}

struct Applier<'a> {
    conn: &'a Connection,
    plan: &'a AddonPlan,
    opts: &'a ApplyOptions,
    progress: &'a dyn Progress,
    /// Resolved custom kinds: (apiVersion, kind) -> (plural, namespaced).
    discovered: BTreeMap<(String, String), (String, bool)>,
}

/// Apply the plan. Validation happens first: nothing is applied when any
/// object is invalid.
pub async fn apply_addons(
    conn: &Connection,
    plan: &AddonPlan,
    opts: &ApplyOptions,
    progress: &dyn Progress,
) -> Result<ApplyReport, PlatformError> {
    let violations = plan.validate();
    if !violations.is_empty() {
        return Err(PlatformError::Validation { violations });
    }
    preflight(conn).await?;
    let mut a = Applier {
        conn,
        plan,
        opts,
        progress,
        discovered: BTreeMap::new(),
    };
    let mut report = ApplyReport::default();
    for step in &plan.steps {
        report.steps.push(a.step(step).await?);
    }
    Ok(report)
}

/// One request that proves the API server answers and accepts our credentials.
pub async fn preflight(conn: &Connection) -> Result<(), PlatformError> {
    match conn.client.apiserver_version().await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 401 || s.code == 403 => Err(PlatformError::Kubeconfig {
            reason: format!(
                "the API server {} rejected the credentials ({} {}): {}; regenerate the kubeconfig with `provisioner kubeconfig`",
                conn.server, s.code, s.reason, s.message
            ),
        }),
        Err(source) => Err(PlatformError::Unreachable {
            server: conn.server.clone(),
            source,
        }),
    }
}

impl Applier<'_> {
    async fn step(&mut self, step: &AddonStep) -> Result<StepReport, PlatformError> {
        let started = Instant::now();
        let name = step.name.as_str();
        self.progress.event(&ProgressEvent::StepStarted {
            step: name,
            objects: step.objects.len(),
        });
        let timeout = self.opts.timeout.unwrap_or(step.ready_timeout);
        let deadline = started + timeout;
        let mut objects: Vec<&Manifest> = step.objects.iter().collect();
        objects.sort_by_key(|m| kind_rank(m.kind()));
        let mut out = Vec::new();

        // CRDs, then wait for them to be established.
        for m in objects
            .iter()
            .filter(|m| m.kind() == "CustomResourceDefinition")
        {
            out.push(self.apply_one(name, m).await?);
        }
        for m in objects
            .iter()
            .filter(|m| m.kind() == "CustomResourceDefinition")
        {
            self.wait_crd(name, m, deadline, timeout).await?;
        }
        for m in objects
            .iter()
            .filter(|m| m.kind() != "CustomResourceDefinition")
        {
            out.push(self.apply_one(name, m).await?);
        }
        for m in objects
            .iter()
            .filter(|m| matches!(m.kind(), "Deployment" | "DaemonSet" | "StatefulSet"))
        {
            self.wait_rollout(name, m, deadline, timeout).await?;
        }
        let elapsed = started.elapsed();
        self.progress.event(&ProgressEvent::StepDone {
            step: name,
            elapsed,
        });
        Ok(StepReport {
            name: step.name.clone(),
            objects: out,
            elapsed_ms: elapsed.as_millis(),
        })
    }

    /// (plural, namespaced) of an object's kind.
    async fn resolve(&mut self, m: &Manifest) -> Result<(String, bool), PlatformError> {
        let (av, kind) = (m.api_version(), m.kind());
        if let Some((_, _, plural, ns)) = BUILTIN.iter().find(|(a, k, _, _)| *a == av && *k == kind)
        {
            return Ok((plural.to_string(), *ns));
        }
        let key = (av.to_string(), kind.to_string());
        if let Some(r) = self.discovered.get(&key) {
            return Ok(r.clone());
        }
        if let Some((_, crd)) = self
            .plan
            .objects()
            .find(|(_, c)| c.kind() == "CustomResourceDefinition" && crd_serves(&c.value, av, kind))
        {
            let plural = crd
                .value
                .pointer("/spec/names/plural")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let ns = crd.value.pointer("/spec/scope").and_then(Value::as_str) != Some("Cluster");
            self.discovered.insert(key, (plural.clone(), ns));
            return Ok((plural, ns));
        }
        // Ask the server (like kubectl's discovery).
        let missing = || PlatformError::MissingCrd {
            object: m.object_ref(),
            api_version: av.to_string(),
            kind: kind.to_string(),
        };
        let list = if group_of(av).is_empty() {
            self.conn.client.list_core_api_resources(av).await
        } else {
            self.conn.client.list_api_group_resources(av).await
        };
        match list {
            Ok(list) => {
                let r = list
                    .resources
                    .iter()
                    .find(|r| r.kind == kind && !r.name.contains('/'))
                    .ok_or_else(missing)?;
                let v = (r.name.clone(), r.namespaced);
                self.discovered.insert(key, v.clone());
                Ok(v)
            }
            Err(e) if status_of(&e).is_some_and(|s| s.code == 404) => Err(missing()),
            Err(source) => Err(PlatformError::Api {
                object: m.object_ref(),
                source,
            }),
        }
    }

    async fn api_for(&mut self, m: &Manifest) -> Result<Api<DynamicObject>, PlatformError> {
        let (plural, namespaced) = self.resolve(m).await?;
        let ar = api_resource(m.api_version(), m.kind(), &plural);
        let client = self.conn.client.clone();
        if namespaced {
            let ns = m.namespace().ok_or_else(|| PlatformError::Rejected {
                object: m.object_ref(),
                message: "namespaced object without metadata.namespace; set it in the manifest or its kustomization".into(),
            })?;
            Ok(Api::namespaced_with(client, ns, &ar))
        } else {
            Ok(Api::all_with(client, &ar))
        }
    }

    async fn apply_one(&mut self, step: &str, m: &Manifest) -> Result<ObjectReport, PlatformError> {
        let object = m.object_ref();
        let api = self.api_for(m).await?;
        let map_err = |e: kube::Error, object: &ObjectRef| -> PlatformError {
            match status_of(&e) {
                Some(s) if s.code == 409 => PlatformError::Conflict {
                    object: object.clone(),
                    message: s.message.clone(),
                },
                Some(s) if s.code == 404 && s.message.starts_with("namespaces ") => {
                    PlatformError::Rejected {
                        object: object.clone(),
                        message: format!(
                            "{}; the namespace must be created by an earlier object or step",
                            s.message
                        ),
                    }
                }
                Some(s) if s.code == 404 => PlatformError::MissingCrd {
                    object: object.clone(),
                    api_version: object.api_version.clone(),
                    kind: object.kind.clone(),
                },
                Some(s) if s.code == 400 || s.code == 422 || s.code == 403 => {
                    PlatformError::Rejected {
                        object: object.clone(),
                        message: format!("{} {}: {}", s.code, s.reason, s.message),
                    }
                }
                _ => PlatformError::Api {
                    object: object.clone(),
                    source: e,
                },
            }
        };
        let before = api
            .get_opt(m.name())
            .await
            .map_err(|e| map_err(e, &object))?;
        let mut params = PatchParams::apply(FIELD_MANAGER);
        if m.annotation(ANN_FORCE) == Some("true") {
            params = params.force();
        }
        let after = api
            .patch(m.name(), &params, &Patch::Apply(&m.value))
            .await
            .map_err(|e| map_err(e, &object))?;
        let outcome = match before {
            None => Outcome::Created,
            Some(b) if b.metadata.resource_version == after.metadata.resource_version => {
                Outcome::Unchanged
            }
            Some(_) => Outcome::Configured,
        };
        self.progress.event(&ProgressEvent::Applied {
            step,
            object: &object,
            outcome,
        });
        Ok(ObjectReport { object, outcome })
    }

    async fn wait_crd(
        &self,
        step: &str,
        m: &Manifest,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<(), PlatformError> {
        let object = m.object_ref();
        let api: Api<CustomResourceDefinition> = Api::all(self.conn.client.clone());
        loop {
            let crd = api
                .get(m.name())
                .await
                .map_err(|source| PlatformError::Api {
                    object: object.clone(),
                    source,
                })?;
            let conds = crd
                .status
                .as_ref()
                .and_then(|s| s.conditions.clone())
                .unwrap_or_default();
            let has = |t: &str, st: &str| conds.iter().any(|c| c.type_ == t && c.status == st);
            if has("Established", "True") {
                self.progress.event(&ProgressEvent::Ready {
                    step,
                    object: &object,
                });
                return Ok(());
            }
            let text = conds
                .iter()
                .map(|c| {
                    format!(
                        "{}={} ({}: {})",
                        c.type_,
                        c.status,
                        c.reason.as_deref().unwrap_or(""),
                        c.message.as_deref().unwrap_or("")
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            if has("NamesAccepted", "False") {
                return Err(PlatformError::NotReady {
                    object,
                    waited_secs: timeout.as_secs(),
                    conditions: text,
                });
            }
            if Instant::now() >= deadline {
                return Err(PlatformError::NotReady {
                    object,
                    waited_secs: timeout.as_secs(),
                    conditions: if text.is_empty() {
                        "no conditions reported: the CRD was never Established".into()
                    } else {
                        text
                    },
                });
            }
            self.progress.event(&ProgressEvent::Waiting {
                step,
                object: &object,
                detail: "waiting for the CRD to be Established",
            });
            tokio::time::sleep(self.opts.poll_interval).await;
        }
    }

    async fn wait_rollout(
        &self,
        step: &str,
        m: &Manifest,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<(), PlatformError> {
        let object = m.object_ref();
        let ns = m.namespace().unwrap_or("default");
        let client = self.conn.client.clone();
        loop {
            let got = match m.kind() {
                "Deployment" => Api::<Deployment>::namespaced(client.clone(), ns)
                    .get(m.name())
                    .await
                    .map(|d| deployment_rollout(&d)),
                "DaemonSet" => Api::<DaemonSet>::namespaced(client.clone(), ns)
                    .get(m.name())
                    .await
                    .map(|d| daemonset_rollout(&d)),
                _ => Api::<StatefulSet>::namespaced(client.clone(), ns)
                    .get(m.name())
                    .await
                    .map(|d| statefulset_rollout(&d)),
            };
            let r = got.map_err(|source| PlatformError::Api {
                object: object.clone(),
                source,
            })?;
            if r.ready {
                self.progress.event(&ProgressEvent::Ready {
                    step,
                    object: &object,
                });
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(PlatformError::NotReady {
                    object,
                    waited_secs: timeout.as_secs(),
                    conditions: r.detail,
                });
            }
            self.progress.event(&ProgressEvent::Waiting {
                step,
                object: &object,
                detail: &r.detail,
            });
            tokio::time::sleep(self.opts.poll_interval).await;
        }
    }
}

/// Rollout state of a workload.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Rollout {
    pub ready: bool,
    pub desired: i32,
    pub ready_replicas: i32,
    pub updated: i32,
    pub available: i32,
    /// Counts and conditions, for messages.
    pub detail: String,
}

fn cond_text<'a>(
    conds: impl Iterator<Item = (&'a str, &'a str, Option<&'a str>, Option<&'a str>)>,
) -> String {
    conds
        .map(|(t, s, r, m)| format!("{t}={s} ({}: {})", r.unwrap_or(""), m.unwrap_or("")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether a Deployment has rolled out (kubectl's `rollout status` logic).
pub fn deployment_rollout(d: &Deployment) -> Rollout {
    let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let st = d.status.clone().unwrap_or_default();
    let gen_ok = st.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0);
    let (ready_r, updated, available) = (
        st.ready_replicas.unwrap_or(0),
        st.updated_replicas.unwrap_or(0),
        st.available_replicas.unwrap_or(0),
    );
    let conds = st.conditions.clone().unwrap_or_default();
    let ready = gen_ok
        && updated >= desired
        && available >= desired
        && ready_r >= desired
        && st.replicas.unwrap_or(0) <= updated;
    let ct = cond_text(conds.iter().map(|c| {
        (
            c.type_.as_str(),
            c.status.as_str(),
            c.reason.as_deref(),
            c.message.as_deref(),
        )
    }));
    Rollout {
        ready,
        desired,
        ready_replicas: ready_r,
        updated,
        available,
        detail: format!(
            "{ready_r}/{desired} ready, {updated} updated, {available} available{}{}",
            if ct.is_empty() { "" } else { "; conditions: " },
            ct
        ),
    }
}

pub fn statefulset_rollout(s: &StatefulSet) -> Rollout {
    let desired = s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let st = s.status.clone().unwrap_or_default();
    let gen_ok = st.observed_generation.unwrap_or(0) >= s.metadata.generation.unwrap_or(0);
    let (ready_r, updated, available) = (
        st.ready_replicas.unwrap_or(0),
        st.updated_replicas.unwrap_or(0),
        st.available_replicas.unwrap_or(0),
    );
    let rev_ok = st.update_revision.is_none() || st.current_revision == st.update_revision;
    let ready = gen_ok && ready_r >= desired && updated >= desired && rev_ok;
    let ct = cond_text(st.conditions.iter().flatten().map(|c| {
        (
            c.type_.as_str(),
            c.status.as_str(),
            c.reason.as_deref(),
            c.message.as_deref(),
        )
    }));
    Rollout {
        ready,
        desired,
        ready_replicas: ready_r,
        updated,
        available,
        detail: format!(
            "{ready_r}/{desired} ready, {updated} updated{}{}",
            if ct.is_empty() { "" } else { "; conditions: " },
            ct
        ),
    }
}

pub fn daemonset_rollout(d: &DaemonSet) -> Rollout {
    let st = d.status.clone().unwrap_or_default();
    let desired = st.desired_number_scheduled;
    let gen_ok = st.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0);
    let updated = st.updated_number_scheduled.unwrap_or(0);
    let available = st.number_available.unwrap_or(0);
    let ready = gen_ok
        && desired > 0
        && st.number_ready >= desired
        && updated >= desired
        && available >= desired;
    let ct = cond_text(st.conditions.iter().flatten().map(|c| {
        (
            c.type_.as_str(),
            c.status.as_str(),
            c.reason.as_deref(),
            c.message.as_deref(),
        )
    }));
    Rollout {
        ready,
        desired,
        ready_replicas: st.number_ready,
        updated,
        available,
        detail: format!(
            "{}/{} ready, {updated} updated, {available} available{}{}{}",
            st.number_ready,
            desired,
            if desired == 0 {
                " (no node runs it yet)"
            } else {
                ""
            },
            if ct.is_empty() { "" } else { "; conditions: " },
            ct
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dep(v: serde_json::Value) -> Deployment {
        serde_json::from_value(v).expect("deployment")
    }

    #[test]
    fn deployment_rollout_follows_kubectl_rollout_status() {
        let spec = json!({"replicas": 2, "selector": {}, "template": {}});
        let ready = dep(
            json!({"metadata": {"name": "d", "generation": 3}, "spec": spec,
            "status": {"observedGeneration": 3, "replicas": 2, "readyReplicas": 2, "updatedReplicas": 2, "availableReplicas": 2}}),
        );
        assert!(deployment_rollout(&ready).ready);
        // The controller has not seen the new generation yet.
        let stale = dep(
            json!({"metadata": {"name": "d", "generation": 4}, "spec": spec,
            "status": {"observedGeneration": 3, "replicas": 2, "readyReplicas": 2, "updatedReplicas": 2, "availableReplicas": 2}}),
        );
        assert!(!deployment_rollout(&stale).ready);
        // Old replicas still around during a rolling update.
        let rolling = dep(
            json!({"metadata": {"name": "d", "generation": 3}, "spec": spec,
            "status": {"observedGeneration": 3, "replicas": 3, "readyReplicas": 3, "updatedReplicas": 2, "availableReplicas": 3}}),
        );
        let r = deployment_rollout(&rolling);
        assert!(!r.ready);
        assert!(r.detail.starts_with("3/2 ready, 2 updated"), "{}", r.detail);
        // No status at all.
        let none = dep(json!({"metadata": {"name": "d", "generation": 1}, "spec": spec}));
        assert!(!deployment_rollout(&none).ready);
    }

    #[test]
    fn daemonset_with_no_scheduled_pods_is_not_ready() {
        let ds: DaemonSet = serde_json::from_value(json!({"metadata": {"name": "c", "generation": 1},
            "status": {"observedGeneration": 1, "desiredNumberScheduled": 0, "currentNumberScheduled": 0,
                       "numberReady": 0, "numberMisscheduled": 0}})).expect("ds");
        let r = daemonset_rollout(&ds);
        assert!(
            !r.ready && r.detail.contains("no node runs it yet"),
            "{}",
            r.detail
        );
    }

    #[test]
    fn kinds_are_applied_in_dependency_order() {
        let mut kinds = vec![
            "Widget",
            "Deployment",
            "Service",
            "RoleBinding",
            "ServiceAccount",
            "Namespace",
            "CustomResourceDefinition",
        ];
        kinds.sort_by_key(|k| kind_rank(k));
        assert_eq!(
            kinds,
            [
                "CustomResourceDefinition",
                "Namespace",
                "ServiceAccount",
                "RoleBinding",
                "Service",
                "Deployment",
                "Widget"
            ]
        );
    }
}
