//! The platform step of `up` and the cluster section of `status`: the
//! `platform` crate's plan, apply and status, with the kubeconfig from the
//! Talos step and the secret inputs from [`crate::inputs`].
//!
//! [`prepare`] does everything that can fail locally (secret inputs, the
//! plan's validation with a stand-in for the tunnel token) before `up` sends
//! its first request; [`apply`] runs after the tunnel step with the real token.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use platform::apply::{ApplyOptions, ApplyReport, Outcome};
use platform::{AddonPlan, PlanInputs, PlatformError, ProgressEvent, SecretValue};
use tunnel::secrets::store::SecretMap;
use tunnel::secrets::{AgeKeys, SecretsFile};
use tunnel::TunnelError;

use crate::inputs::{self, Resolved, TUNNEL_TOKEN};
use crate::progress::{line, Sink};
use crate::spec::{ClusterSpec, PlatformSpec};

/// Errors of the platform step that are not the `platform` crate's own.
#[derive(Debug, thiserror::Error)]
pub enum PlatformStepError {
    #[error(transparent)]
    Platform(#[from] PlatformError),
    #[error(transparent)]
    Secrets(#[from] TunnelError),
    #[error("secret inputs are missing, nothing was changed:\n{}", .0.join("\n"))]
    MissingInputs(Vec<String>),
    #[error("{0}")]
    Config(String),
}

/// The platform step, ready to run: inputs gathered and the plan validated.
pub struct Prepared {
    pub infra_root: PathBuf,
    pub inputs: PlanInputs,
    /// Whether the plan needs the tunnel token (cloudflared's Secret).
    pub needs_tunnel_token: bool,
    /// Entries generated into the secrets file by this run (names only).
    pub generated: Vec<String>,
    /// The secrets file the inputs came from (for messages).
    pub secrets_file: String,
    /// The file with the generated entries, saved by [`Prepared::persist`].
    unsaved: Option<(SecretsFile, AgeKeys, SecretMap)>,
}

impl Prepared {
    /// Saves the generated entries (encrypted), once every other check passed.
    pub fn persist(&mut self) -> Result<(), PlatformStepError> {
        if let Some((file, keys, map)) = self.unsaved.take() {
            file.save(&keys, &map).map_err(TunnelError::from)?;
        }
        Ok(())
    }
}

/// Gathers the secret inputs (generating and saving the ones the cluster
/// alone uses) and builds the plan once with a stand-in tunnel token, so a
/// missing input or an invalid manifest stops `up` before any request.
pub fn prepare(
    spec: &ClusterSpec,
    pl: &PlatformSpec,
    root: &Path,
    vars: &BTreeMap<String, String>,
    hcloud_token: &str,
) -> Result<Prepared, PlatformStepError> {
    let infra_root = root.join(&pl.infra_dir);
    let overlay = infra_root
        .join("argocd")
        .join("overlays")
        .join(&pl.environment);
    if !overlay.is_dir() {
        return Err(PlatformStepError::Config(format!(
            "platform.environment = {:?} but {} does not exist: the root Application would point Argo CD at nothing; use one of the overlays there",
            pl.environment,
            overlay.display()
        )));
    }
    let uses = platform::required_inputs(&infra_root)?;
    let lookup = |k: &str| vars.get(k).cloned();
    let keys = AgeKeys::load(&lookup, root).map_err(TunnelError::from)?;
    let file = SecretsFile::for_env(root, &pl.environment);
    let needs_file = uses
        .iter()
        .any(|u| matches!(inputs::source_of(&u.input), inputs::Source::File { .. }));
    let mut map = if needs_file {
        file.load_or_empty(&keys).map_err(TunnelError::from)?
    } else {
        Default::default()
    };
    let Resolved {
        values,
        generated,
        needs_tunnel_token,
        missing,
    } = inputs::resolve(
        &uses,
        &mut map,
        hcloud_token,
        &spec.name,
        &pl.environment,
        &mut inputs::random_hex,
    );
    if !missing.is_empty() {
        return Err(PlatformStepError::MissingInputs(missing));
    }
    let mut inputs = PlanInputs {
        environment: pl.environment.clone(),
        repo_url: pl.repo_url.clone(),
        revision: pl.revision.clone(),
        secrets: values,
    };
    // Validate the whole plan now; the stand-in is never applied.
    if needs_tunnel_token {
        inputs.secrets.insert(
            TUNNEL_TOKEN.into(),
            SecretValue::new("stand-in: the tunnel token is read after the tunnel step"),
        );
    }
    platform::plan_addons(&infra_root, &inputs)?;
    inputs.secrets.remove(TUNNEL_TOKEN);
    // Generated entries are kept once the plan is known to be good and the
    // caller's other checks passed: they need the recipients now.
    let unsaved = if generated.is_empty() {
        None
    } else {
        keys.recipients().map_err(TunnelError::from)?;
        Some((file.clone(), keys, map))
    };
    Ok(Prepared {
        infra_root,
        inputs,
        needs_tunnel_token,
        generated,
        secrets_file: file.display().to_string(),
        unsaved,
    })
}

/// The plan with every input, readiness timeouts multiplied by `scale`.
pub fn plan(
    p: &Prepared,
    tunnel_token: Option<SecretValue>,
    scale: f64,
) -> Result<AddonPlan, PlatformStepError> {
    let mut inputs = p.inputs.clone();
    if let Some(t) = tunnel_token {
        inputs.secrets.insert(TUNNEL_TOKEN.into(), t);
    }
    let mut plan = platform::plan_addons(&p.infra_root, &inputs)?;
    let scale = scale.clamp(0.0, 1.0);
    for s in &mut plan.steps {
        s.ready_timeout = s.ready_timeout.mul_f64(scale);
    }
    Ok(plan)
}

/// Apply options: the poll interval multiplied by `scale` (tests).
pub fn options(scale: f64) -> ApplyOptions {
    let d = ApplyOptions::default();
    ApplyOptions {
        poll_interval: d
            .poll_interval
            .mul_f64(scale.clamp(0.0, 1.0))
            .max(Duration::from_millis(10)),
        timeout: None,
    }
}

/// Connects with `kubeconfig` and applies the plan, step by step.
pub async fn apply(
    kubeconfig: &str,
    plan: &AddonPlan,
    opts: &ApplyOptions,
    progress: &dyn platform::Progress,
) -> Result<ApplyReport, PlatformError> {
    let conn = platform::connect(kubeconfig, std::time::SystemTime::now()).await?;
    platform::apply_addons(&conn, plan, opts, progress).await
}

/// Progress as lines on a sink: each step, objects created or changed,
/// waits (once per new state) and each step's end with its counts.
pub struct LineProgress {
    sink: Sink,
    state: Mutex<LineState>,
}

#[derive(Default)]
struct LineState {
    changed: usize,
    unchanged: usize,
    last_wait: BTreeMap<String, String>,
}

impl LineProgress {
    pub fn new(sink: Sink) -> Self {
        Self {
            sink,
            state: Mutex::new(LineState::default()),
        }
    }
}

impl platform::Progress for LineProgress {
    fn event(&self, e: &ProgressEvent<'_>) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match e {
            ProgressEvent::StepStarted { step, objects } => {
                *st = LineState::default();
                line(
                    &self.sink,
                    &format!("… platform {step} ({objects} objects)"),
                );
            }
            ProgressEvent::Applied {
                object, outcome, ..
            } => match outcome {
                Outcome::Unchanged => st.unchanged += 1,
                Outcome::Created | Outcome::Configured => {
                    st.changed += 1;
                    let verb = if *outcome == Outcome::Created {
                        "created"
                    } else {
                        "configured"
                    };
                    line(&self.sink, &format!("  {verb} {object}"));
                }
            },
            ProgressEvent::Waiting { object, detail, .. } => {
                let key = object.to_string();
                if st.last_wait.get(&key).map(String::as_str) != Some(*detail) {
                    line(&self.sink, &format!("  waiting for {object}: {detail}"));
                    st.last_wait.insert(key, detail.to_string());
                }
            }
            ProgressEvent::Ready { .. } => {}
            ProgressEvent::StepDone { step, elapsed } => {
                line(
                    &self.sink,
                    &format!(
                        "✓ platform {step} ready: {} changed, {} unchanged ({:.1}s)",
                        st.changed,
                        st.unchanged,
                        elapsed.as_secs_f64()
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use platform::manifest::ObjectRef;
    use platform::Progress;

    #[test]
    fn progress_lines_skip_unchanged_objects_and_repeated_waits() {
        let cap = crate::cli::Capture::default();
        let p = LineProgress::new(cap.sink());
        let o = ObjectRef {
            api_version: "apps/v1".into(),
            kind: "DaemonSet".into(),
            namespace: Some("kube-system".into()),
            name: "cilium".into(),
        };
        p.event(&ProgressEvent::StepStarted {
            step: "cilium",
            objects: 2,
        });
        for outcome in [Outcome::Created, Outcome::Unchanged] {
            p.event(&ProgressEvent::Applied {
                step: "cilium",
                object: &o,
                outcome,
            });
        }
        for _ in 0..3 {
            p.event(&ProgressEvent::Waiting {
                step: "cilium",
                object: &o,
                detail: "0/3 ready",
            });
        }
        p.event(&ProgressEvent::StepDone {
            step: "cilium",
            elapsed: Duration::from_millis(1500),
        });
        let t = cap.text();
        assert_eq!(
            t.matches("waiting for DaemonSet kube-system/cilium")
                .count(),
            1
        );
        assert!(t.contains("created DaemonSet kube-system/cilium"), "{t}");
        assert!(t.contains("1 changed, 1 unchanged (1.5s)"), "{t}");
    }

    #[test]
    fn options_scale_the_poll_interval() {
        assert_eq!(options(1.0).poll_interval, Duration::from_secs(2));
        assert_eq!(options(0.0001).poll_interval, Duration::from_millis(10));
    }
}
