//! The cluster platform: the add-ons `provisioner up` applies through the
//! Kubernetes API before Argo CD takes over (Cilium, Hetzner CCM and CSI,
//! cloudflared, Argo CD and the root Application), the cluster section of
//! `provisioner status`, and the checks on the `infra/` GitOps tree.
//!
//! - [`plan::plan_addons`] reads `infra/bootstrap/` into an ordered, validated plan;
//! - [`apply::apply_addons`] applies it with server-side apply and waits;
//! - [`status::cluster_status`] reads nodes, rollouts, Argo CD apps, cloudflared;
//! - [`checks::check_tree`] checks `infra/`.

// Errors carry the object and file they concern; they are built once, on
// the cold path, so their size does not matter.
#![allow(clippy::result_large_err)]

pub mod apply;
pub mod checks;
pub mod error;
pub mod kubeconfig;
pub mod kustomize;
pub mod manifest;
pub mod plan;
pub mod schema;
pub mod secret;
pub mod status;

pub use apply::{
    apply_addons, ApplyOptions, ApplyReport, LogProgress, NoProgress, Progress, ProgressEvent,
};
pub use error::{KustomizeError, ManifestError, PlatformError};
pub use kubeconfig::{connect, Connection};
pub use plan::{plan_addons, required_inputs, AddonPlan, AddonStep, InputUse, PlanInputs};
pub use secret::SecretValue;
pub use status::{cluster_status, ClusterStatus, StatusOptions};

/// `provisioner up`'s platform step in one call: build and validate the plan
/// from `infra_root/bootstrap/` (no network yet), check the kubeconfig's
/// client certificate, then apply every step and wait for it.
pub async fn bootstrap(
    kubeconfig_yaml: &str,
    infra_root: &std::path::Path,
    inputs: &PlanInputs,
    opts: &ApplyOptions,
    progress: &dyn Progress,
) -> Result<ApplyReport, PlatformError> {
    let plan = plan_addons(infra_root, inputs)?;
    let conn = connect(kubeconfig_yaml, std::time::SystemTime::now()).await?;
    apply_addons(&conn, &plan, opts, progress).await
}
