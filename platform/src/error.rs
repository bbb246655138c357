//! Error types. Every message names the file or object concerned and, where
//! there is one, the fix.

use std::path::PathBuf;

use crate::manifest::ObjectRef;

/// Reading manifests.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{}: cannot read: {source}", file.display())]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} (document {}): invalid YAML: {source}", file.display(), doc + 1)]
    Yaml {
        file: PathBuf,
        doc: usize,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("{} (document {}): a Kubernetes manifest must be a mapping", file.display(), doc + 1)]
    NotAnObject { file: PathBuf, doc: usize },
}

/// Building a kustomization.
#[derive(Debug, thiserror::Error)]
pub enum KustomizeError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("{}: rule kustomize-resource: `{entry}` does not exist (resolved to {})", file.display(), resolved.display())]
    MissingResource {
        file: PathBuf,
        entry: String,
        resolved: PathBuf,
    },
    #[error("{}: rule kustomize-resource: directory `{entry}` has no kustomization.yaml", file.display())]
    NotAKustomization { file: PathBuf, entry: String },
    #[error("{}: rule kustomize-field: unsupported or invalid field `{field}`: {reason}", file.display())]
    Field {
        file: PathBuf,
        field: String,
        reason: String,
    },
    #[error("{}: rule kustomize-patch: patch {patch} matches no resource ({target})", file.display())]
    PatchNoTarget {
        file: PathBuf,
        patch: String,
        target: String,
    },
    #[error("{}: rule kustomize-patch: patch {patch}: {reason}", file.display())]
    PatchFailed {
        file: PathBuf,
        patch: String,
        reason: String,
    },
    #[error("{}: rule kustomize-duplicate: {object} is defined twice (in {} and {})", file.display(), first.display(), second.display())]
    Duplicate {
        file: PathBuf,
        object: ObjectRef,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("{}: rule kustomize-cycle: kustomization includes itself", file.display())]
    Cycle { file: PathBuf },
}

/// Errors of the Kubernetes side (plan building, apply, status).
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error(transparent)]
    Kustomize(#[from] KustomizeError),
    #[error("manifest validation failed, nothing was applied:\n{}", violations.join("\n"))]
    Validation { violations: Vec<String> },
    #[error("kubeconfig: {reason}")]
    Kubeconfig { reason: String },
    #[error("kubeconfig: the client certificate of user `{user}` expired at {not_after} (now {now}); regenerate it with `provisioner kubeconfig`")]
    KubeconfigExpired {
        user: String,
        not_after: String,
        now: String,
    },
    #[error("Kubernetes API server {server} is unreachable: {source}; check the kubeconfig's server address and that the bootstrap firewall admits this machine")]
    Unreachable {
        server: String,
        #[source]
        source: kube::Error,
    },
    #[error("{object}: no CustomResourceDefinition serves {api_version} kind {kind} in the cluster; install the CRD first (the add-on that owns it must come earlier in the plan)")]
    MissingCrd {
        object: ObjectRef,
        api_version: String,
        kind: String,
    },
    #[error("{object}: server-side apply conflict: {message}; another field manager owns these fields — resolve the conflict or mark the object `platform.shopedge.dev/force-apply: \"true\"` with a documented reason")]
    Conflict { object: ObjectRef, message: String },
    #[error("{object}: the API server rejected the apply: {message}")]
    Rejected { object: ObjectRef, message: String },
    #[error("{object}: not ready after {waited_secs}s: {conditions}")]
    NotReady {
        object: ObjectRef,
        waited_secs: u64,
        conditions: String,
    },
    #[error("{object}: Kubernetes API error: {source}")]
    Api {
        object: ObjectRef,
        #[source]
        source: kube::Error,
    },
    #[error("{what}: Kubernetes API error: {source}")]
    Status {
        what: String,
        #[source]
        source: kube::Error,
    },
}
