//! Validation of one object against its type: built-in kinds through the
//! `k8s-openapi` types (a round trip that also catches unknown fields, which
//! the API server would drop or reject), custom resources through the JSON
//! schemas kept in `platform/schemas/` for the kinds this repository uses.

use std::sync::OnceLock;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use k8s_openapi::api::{apps, autoscaling, batch, core, networking, policy, rbac, storage};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

/// Outcome of validating one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaResult {
    Valid,
    /// The kind is known and the object does not fit it.
    Invalid(Vec<String>),
    /// No type and no kept schema for this apiVersion/kind.
    UnknownKind,
}

fn roundtrip<T: DeserializeOwned + Serialize>(v: &Value) -> SchemaResult {
    let typed: T = match serde_json::from_value(v.clone()) {
        Ok(t) => t,
        Err(e) => return SchemaResult::Invalid(vec![e.to_string()]),
    };
    let back = match serde_json::to_value(&typed) {
        Ok(b) => b,
        Err(e) => return SchemaResult::Invalid(vec![e.to_string()]),
    };
    let mut lost = Vec::new();
    lost_fields(v, &back, String::new(), &mut lost);
    if lost.is_empty() {
        SchemaResult::Valid
    } else {
        SchemaResult::Invalid(
            lost.into_iter()
                .map(|p| format!("unknown field `{p}`"))
                .collect(),
        )
    }
}

/// Paths present in `orig` but missing from `back` (fields the type does not have).
fn lost_fields(orig: &Value, back: &Value, path: String, out: &mut Vec<String>) {
    match (orig, back) {
        (Value::Object(o), Value::Object(b)) => {
            for (k, ov) in o {
                if ov.is_null() {
                    continue;
                }
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match b.get(k) {
                    Some(bv) => lost_fields(ov, bv, p, out),
                    None => out.push(p),
                }
            }
        }
        (Value::Array(o), Value::Array(b)) => {
            for (i, (ov, bv)) in o.iter().zip(b.iter()).enumerate() {
                lost_fields(ov, bv, format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

macro_rules! builtin {
    ($av:expr, $kind:expr, $v:expr; $( $a:literal, $k:literal => $t:ty ),* $(,)?) => {
        match ($av, $kind) {
            $( ($a, $k) => Some(roundtrip::<$t>($v)), )*
            _ => None,
        }
    };
}

fn builtin(api_version: &str, kind: &str, v: &Value) -> Option<SchemaResult> {
    builtin!(api_version, kind, v;
        "v1", "Namespace" => core::v1::Namespace,
        "v1", "ServiceAccount" => core::v1::ServiceAccount,
        "v1", "ConfigMap" => core::v1::ConfigMap,
        "v1", "Secret" => core::v1::Secret,
        "v1", "Service" => core::v1::Service,
        "v1", "Pod" => core::v1::Pod,
        "v1", "PersistentVolumeClaim" => core::v1::PersistentVolumeClaim,
        "apps/v1", "Deployment" => apps::v1::Deployment,
        "apps/v1", "DaemonSet" => apps::v1::DaemonSet,
        "apps/v1", "StatefulSet" => apps::v1::StatefulSet,
        "batch/v1", "Job" => batch::v1::Job,
        "batch/v1", "CronJob" => batch::v1::CronJob,
        "rbac.authorization.k8s.io/v1", "ClusterRole" => rbac::v1::ClusterRole,
        "rbac.authorization.k8s.io/v1", "ClusterRoleBinding" => rbac::v1::ClusterRoleBinding,
        "rbac.authorization.k8s.io/v1", "Role" => rbac::v1::Role,
        "rbac.authorization.k8s.io/v1", "RoleBinding" => rbac::v1::RoleBinding,
        "networking.k8s.io/v1", "NetworkPolicy" => networking::v1::NetworkPolicy,
        "policy/v1", "PodDisruptionBudget" => policy::v1::PodDisruptionBudget,
        "autoscaling/v2", "HorizontalPodAutoscaler" => autoscaling::v2::HorizontalPodAutoscaler,
        "storage.k8s.io/v1", "StorageClass" => storage::v1::StorageClass,
        "storage.k8s.io/v1", "CSIDriver" => storage::v1::CSIDriver,
        "apiextensions.k8s.io/v1", "CustomResourceDefinition" => CustomResourceDefinition,
    )
}

/// The custom resource kinds we keep schemas for: (apiVersion, kind, schema file).
pub const KEPT_SCHEMAS: [(&str, &str, &str); 7] = [
    (
        "argoproj.io/v1alpha1",
        "Application",
        include_str!("../schemas/argocd-application.json"),
    ),
    (
        "argoproj.io/v1alpha1",
        "AppProject",
        include_str!("../schemas/argocd-appproject.json"),
    ),
    (
        "postgresql.cnpg.io/v1",
        "Cluster",
        include_str!("../schemas/cnpg-cluster.json"),
    ),
    (
        "postgresql.cnpg.io/v1",
        "ScheduledBackup",
        include_str!("../schemas/cnpg-scheduledbackup.json"),
    ),
    (
        "keda.sh/v1alpha1",
        "ScaledObject",
        include_str!("../schemas/keda-scaledobject.json"),
    ),
    (
        "monitoring.coreos.com/v1",
        "ServiceMonitor",
        include_str!("../schemas/prometheus-servicemonitor.json"),
    ),
    (
        "kustomize.config.k8s.io/v1beta1",
        "Kustomization",
        include_str!("../schemas/kustomization.json"),
    ),
];

type Compiled = Vec<(
    &'static str,
    &'static str,
    Result<jsonschema::Validator, String>,
)>;

fn compiled() -> &'static Compiled {
    static C: OnceLock<Compiled> = OnceLock::new();
    C.get_or_init(|| {
        KEPT_SCHEMAS
            .iter()
            .map(|(av, kind, text)| {
                let v = serde_json::from_str::<Value>(text)
                    .map_err(|e| format!("schema for {kind} is not JSON: {e}"))
                    .and_then(|s| {
                        jsonschema::validator_for(&s)
                            .map_err(|e| format!("schema for {kind} does not compile: {e}"))
                    });
                (*av, *kind, v)
            })
            .collect()
    })
}

/// Validate one object against its kind.
pub fn validate(v: &Value) -> SchemaResult {
    let av = v.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = v.get("kind").and_then(Value::as_str).unwrap_or("");
    if av.is_empty() || kind.is_empty() {
        return SchemaResult::Invalid(vec!["missing apiVersion or kind".into()]);
    }
    if kind != "Kustomization"
        && v.pointer("/metadata/name")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
    {
        return SchemaResult::Invalid(vec!["missing metadata.name".into()]);
    }
    if let Some(r) = builtin(av, kind, v) {
        return r;
    }
    for (a, k, validator) in compiled() {
        if *a == av && *k == kind {
            return match validator {
                Err(e) => SchemaResult::Invalid(vec![e.clone()]),
                Ok(val) => {
                    let errs: Vec<String> = val
                        .iter_errors(v)
                        .map(|e| format!("{} at `{}`", e, e.instance_path))
                        .collect();
                    if errs.is_empty() {
                        SchemaResult::Valid
                    } else {
                        SchemaResult::Invalid(errs)
                    }
                }
            };
        }
    }
    SchemaResult::UnknownKind
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kept_schemas_compile() {
        for (_, kind, v) in compiled() {
            assert!(v.is_ok(), "{kind}: {:?}", v.as_ref().err());
        }
    }

    #[test]
    fn unknown_field_in_builtin_is_reported() {
        let d = json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"x"},
            "spec":{"selector":{"matchLabels":{"a":"b"}},"template":{"metadata":{"labels":{"a":"b"}},
            "spec":{"containers":[{"name":"c","image":"i:1","imagePullPolice":"Always"}]}}}});
        match validate(&d) {
            SchemaResult::Invalid(e) => assert!(
                e[0].contains("spec.template.spec.containers[0].imagePullPolice"),
                "{e:?}"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn wrong_type_in_builtin_is_reported() {
        let d = json!({"apiVersion":"v1","kind":"Service","metadata":{"name":"x"},"spec":{"ports":"80"}});
        assert!(matches!(validate(&d), SchemaResult::Invalid(_)));
    }

    #[test]
    fn crd_kind_checked_against_kept_schema() {
        let good = json!({"apiVersion":"postgresql.cnpg.io/v1","kind":"ScheduledBackup","metadata":{"name":"b","namespace":"data"},
            "spec":{"schedule":"0 0 3 * * *","cluster":{"name":"pg"},"method":"barmanObjectStore","backupOwnerReference":"self"}});
        assert_eq!(validate(&good), SchemaResult::Valid);
        let bad = json!({"apiVersion":"postgresql.cnpg.io/v1","kind":"ScheduledBackup","metadata":{"name":"b"},
            "spec":{"schedul":"0 0 3 * * *","cluster":{"name":"pg"}}});
        assert!(matches!(validate(&bad), SchemaResult::Invalid(_)));
        let unknown =
            json!({"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w"}});
        assert_eq!(validate(&unknown), SchemaResult::UnknownKind);
    }
}
