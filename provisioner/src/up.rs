//! The in-cluster half of `up`, after Hetzner and Talos: the Cloudflare
//! Tunnel, the platform add-ons, then lockdown.
//!
//! [`prepare`] checks everything that can be checked locally (the tunnel
//! spec, the Cloudflare credentials, the secret inputs, every bootstrap
//! manifest) so that `up` fails before its first request; the steps then run
//! in `cli::cmd_up` in order.

use std::collections::BTreeMap;
use std::path::Path;

use tunnel::reconcile::Reconciler;

use crate::platform_ops::{self, PlatformStepError, Prepared};
use crate::spec::ClusterSpec;
use crate::tunnel_ops;

/// The tunnel step.
pub enum TunnelStep {
    /// No `[tunnel]` in the spec.
    Off,
    /// Configured but not run (why).
    Skipped(String),
    /// Ready to run.
    Run(Box<Reconciler>),
}

/// The steps after Talos, prepared.
pub struct Steps {
    pub tunnel: TunnelStep,
    pub platform: Option<Prepared>,
}

/// Prepares the tunnel and platform steps. `kubeconfig_source`: whether
/// a kubeconfig can be had (generated machine configs or `--kubeconfig`).
pub fn prepare(
    spec: &ClusterSpec,
    root: &Path,
    vars: &BTreeMap<String, String>,
    hcloud_token: &str,
    kubeconfig_source: bool,
) -> Result<Steps, PlatformStepError> {
    let mut platform = match &spec.platform {
        Some(pl) => {
            if !kubeconfig_source {
                return Err(PlatformStepError::Config(
                    "[platform] needs a kubeconfig: use [machine_config.generated] (an admin kubeconfig is issued from its Kubernetes CA) or pass --kubeconfig".into(),
                ));
            }
            Some(platform_ops::prepare(spec, pl, root, vars, hcloud_token)?)
        }
        None => None,
    };
    let needs_token = platform.as_ref().is_some_and(|p| p.needs_tunnel_token);
    let tunnel = match &spec.tunnel {
        None if needs_token => {
            return Err(PlatformStepError::Config(format!(
                "the bootstrap Secret cloudflared/cloudflared-token needs the tunnel token, which `up` reads from Cloudflare: add [tunnel] (spec = \"infra/apps/cloudflared/tunnel.toml\") to the cluster spec and set {}",
                tunnel_ops::CREDENTIAL_VARS.join(" and ")
            )))
        }
        None => TunnelStep::Off,
        Some(t) => {
            let (tspec, path) = tunnel_ops::load_spec(root, &t.spec)?;
            if let Some(pl) = &spec.platform {
                if tspec.environment != pl.environment {
                    return Err(PlatformStepError::Config(format!(
                        "{} has environment {:?} but platform.environment is {:?}: both name the secrets file (infra/secrets/edge.<environment>.age); make them equal",
                        path.display(),
                        tspec.environment,
                        pl.environment
                    )));
                }
            }
            if tunnel_ops::credentials_given(vars) {
                TunnelStep::Run(Box::new(tunnel_ops::reconciler(tspec, root, vars)?))
            } else if needs_token {
                // Names the missing variable and the permissions the token needs.
                tunnel_ops::reconciler(tspec, root, vars)?;
                return Err(PlatformStepError::Config(
                    "the Cloudflare credentials are missing".into(),
                ));
            } else {
                TunnelStep::Skipped(format!(
                    "{} not set: the tunnel was not reconciled",
                    tunnel_ops::CREDENTIAL_VARS.join(" / ")
                ))
            }
        }
    };
    if let Some(p) = platform.as_mut() {
        p.persist()?;
    }
    Ok(Steps { tunnel, platform })
}
