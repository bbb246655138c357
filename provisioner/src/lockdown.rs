//! Closing the bootstrap firewall window: the last step of `up`, and
//! `provisioner lockdown` on its own.

use crate::hcloud::{Client, HcloudError};
use crate::plan::{self, LABEL_PHASE};
use crate::spec::ClusterSpec;

/// What lockdown found and did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Lockdown {
    pub firewall: String,
    /// Whether the rules or the phase label had to change.
    pub changed: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum LockdownError {
    #[error(transparent)]
    Api(#[from] HcloudError),
    #[error("cluster {0} has no firewall: run `provisioner up` first")]
    NoFirewall(String),
}

/// Sets the firewall to the locked rules (no public inbound port) and labels
/// it `locked` so `up` keeps it so. Changes nothing when already locked.
pub async fn lockdown(client: &Client, spec: &ClusterSpec) -> Result<Lockdown, LockdownError> {
    let sel = plan::owned_selector(&spec.name);
    let fws = client.firewalls(&sel).await?;
    let Some(fw) = fws.iter().find(|f| f.name == spec.name) else {
        return Err(LockdownError::NoFirewall(spec.name.clone()));
    };
    let mut changed = false;
    let locked = plan::firewall_rules(spec, false);
    if !plan::same_rules(&fw.rules, &locked) {
        let actions = client.set_firewall_rules(fw.id, &locked).await?;
        client.wait_actions(actions).await?;
        changed = true;
    }
    if fw.labels.get(LABEL_PHASE).map(String::as_str) != Some("locked") {
        let mut labels = fw.labels.clone();
        labels.insert(LABEL_PHASE.into(), "locked".into());
        client.set_labels("firewalls", fw.id, &labels).await?;
        changed = true;
    }
    Ok(Lockdown {
        firewall: fw.name.clone(),
        changed,
    })
}
