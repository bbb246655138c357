//! Error type of the talos crate. Messages name the problem and the fix.

use std::path::PathBuf;

/// Everything that can go wrong generating, storing or using the Talos side of a cluster.
#[derive(Debug, thiserror::Error)]
pub enum TalosError {
    #[error("certificate/key generation failed ({what}): {source}")]
    Pki {
        what: String,
        #[source]
        source: rcgen::Error,
    },
    #[error("invalid key material in the secrets bundle ({what}): {detail}; the bundle is damaged, restore {hint} from Git history or regenerate it (see `rotate` in the talos crate docs)")]
    BadKey {
        what: String,
        detail: String,
        hint: String,
    },
    #[error("invalid config input: {0}")]
    Input(String),
    #[error("no Talos config schema for version {version} in {dir}: available versions: {available}; set the cluster spec's Talos version to one of them (or add the schema `v<major>.<minor>.schema.json` to that directory)")]
    NoSchema {
        version: String,
        dir: PathBuf,
        available: String,
    },
    #[error("cannot read the Talos config schema {path}: {detail}")]
    SchemaRead { path: PathBuf, detail: String },
    #[error("generated {node} config document `{doc}` does not validate against the Talos {version} schema:\n{errors}")]
    Invalid {
        node: String,
        doc: String,
        version: String,
        errors: String,
    },
    #[error("patch {file}: {detail}; fix: {fix}")]
    Patch {
        file: String,
        detail: String,
        fix: String,
    },
    #[error("cannot read patch file {path}: {source}")]
    PatchRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("YAML error in {what}: {source}")]
    Yaml {
        what: String,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("secrets file {path}: {detail}; fix: {fix}")]
    Secrets {
        path: PathBuf,
        detail: String,
        fix: String,
    },
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Talos API at {endpoint}: {detail}")]
    Api { endpoint: String, detail: String },
    #[error("timed out after {secs}s waiting for {what} (last status: {last}); check that the node is reachable on the endpoint and look at `talosctl dmesg`/`talosctl services` on it, then re-run (re-running is safe)")]
    Timeout {
        what: String,
        secs: u64,
        last: String,
    },
    #[error("the node at {endpoint} runs Talos {node}, but the cluster spec's talos_version is {spec}: a different minor release, whose machine-config layout differs from the configs generated for {spec}; fix: set `talos_version = \"{node}\"` in the cluster spec (the configs are then generated for it), or boot the servers from a Talos {spec_minor} image (the spec's image selector), then re-run `provisioner up`")]
    VersionMismatch {
        endpoint: String,
        node: String,
        spec: String,
        spec_minor: String,
    },
    #[error("Kubernetes API readiness check failed: {0}")]
    Kube(String),
}

pub type Result<T, E = TalosError> = std::result::Result<T, E>;
