//! `secrets push`: set the Worker's secrets from the decrypted file, writing
//! only what changed.
//!
//! What is deployed cannot be read back (the API lists secret names only), so
//! after each push we store the HMAC digests of the pushed values in Workers
//! KV (key `secret-digests/<script>`, namespace from
//! `SHOPEDGE_SECRETS_STATE_KV_NAMESPACE`). The next push compares against
//! them. Without that namespace, every secret is written on every push.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::digest::DigestKey;
use super::store::SecretMap;
use crate::api::endpoints::{
    delete_worker_secret, list_worker_secrets, put_worker_secret, read_kv, write_kv,
};
use crate::api::{ApiError, Client};

/// What push does with one secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PushAction {
    /// Not on the Worker yet.
    Create,
    /// On the Worker with a different (or unknown) value.
    Update,
    /// Same value as last pushed.
    Unchanged,
    /// On the Worker but no longer in the file (with `--prune`).
    Delete,
    /// On the Worker, not in the file, kept (no `--prune`).
    KeepExtra,
}

/// One line of the push plan (names only, never values).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PushItem {
    /// Secret name.
    pub name: String,
    /// Action.
    pub action: PushAction,
}

/// Where digests are kept.
#[derive(Debug, Clone)]
pub struct DigestStore {
    /// KV namespace id.
    pub namespace: String,
}

/// Push settings.
#[derive(Debug, Clone)]
pub struct PushTarget {
    /// Account id.
    pub account: String,
    /// Worker script.
    pub script: String,
    /// Digest store.
    pub digests: Option<DigestStore>,
}

/// Names with this prefix are for the provisioner only (e.g. the Postgres
/// password Hyperdrive needs) and are never pushed to the Worker.
pub const PROVISIONER_ONLY_PREFIX: &str = "PROVISION_";

/// Whether a secret goes to the Worker.
pub fn is_worker_secret(name: &str) -> bool {
    !name.starts_with(PROVISIONER_ONLY_PREFIX)
}

/// Pure planning: compare the file with the Worker's secret names and the
/// digests of the last push. Provisioner-only names are left out.
pub fn plan_push(
    local: &SecretMap,
    remote: &BTreeSet<String>,
    last: &BTreeMap<String, String>,
    key: &DigestKey,
    prune: bool,
) -> Vec<PushItem> {
    let mut items = Vec::new();
    for (name, value) in local.iter().filter(|(n, _)| is_worker_secret(n)) {
        let action = if !remote.contains(name) {
            PushAction::Create
        } else if last.get(name) == Some(&key.digest(name, value)) {
            PushAction::Unchanged
        } else {
            PushAction::Update
        };
        items.push(PushItem {
            name: name.clone(),
            action,
        });
    }
    for name in remote {
        if !local.contains_key(name) {
            items.push(PushItem {
                name: name.clone(),
                action: if prune {
                    PushAction::Delete
                } else {
                    PushAction::KeepExtra
                },
            });
        }
    }
    items
}

/// KV key of a Worker's secret digests.
fn digest_key(t: &PushTarget) -> String {
    format!("secret-digests/{}", t.script)
}

/// Reads the Worker's secret names and the last digests (read-only).
pub async fn observe(
    client: &Client,
    target: &PushTarget,
) -> Result<(BTreeSet<String>, BTreeMap<String, String>), ApiError> {
    let remote = client
        .send(&list_worker_secrets(&target.account, &target.script))
        .await?
        .into_iter()
        .map(|s| s.name)
        .collect();
    let mut last = BTreeMap::new();
    if let Some(ns) = &target.digests {
        let key = digest_key(target);
        if let Some(bytes) = client
            .read_bytes(&read_kv(&target.account, &ns.namespace, &key))
            .await?
        {
            // A corrupt digest document just means "unknown": push everything.
            last = serde_json::from_slice(&bytes).unwrap_or_default();
        }
    }
    Ok((remote, last))
}

/// Executes a plan. Writes digests after the changes; a failure part-way
/// leaves the digests of the last complete push, so a re-run rewrites the
/// affected secrets (harmless: writes are idempotent).
pub async fn execute(
    client: &Client,
    target: &PushTarget,
    local: &SecretMap,
    plan: &[PushItem],
    key: &DigestKey,
) -> Result<usize, ApiError> {
    let mut writes = 0;
    for item in plan {
        match item.action {
            PushAction::Create | PushAction::Update => {
                if let Some(value) = local.get(&item.name) {
                    client
                        .send(&put_worker_secret(
                            &target.account,
                            &target.script,
                            &item.name,
                            value,
                        ))
                        .await?;
                    writes += 1;
                }
            }
            PushAction::Delete => {
                client
                    .send(&delete_worker_secret(
                        &target.account,
                        &target.script,
                        &item.name,
                    ))
                    .await?;
                writes += 1;
            }
            PushAction::Unchanged | PushAction::KeepExtra => {}
        }
    }
    if let Some(ns) = &target.digests {
        if writes > 0 {
            let digests: BTreeMap<String, String> = local
                .iter()
                .filter(|(k, _)| is_worker_secret(k))
                .map(|(k, v)| (k.clone(), key.digest(k, v)))
                .collect();
            let body = serde_json::to_vec(&digests).unwrap_or_default();
            let key = digest_key(target);
            client
                .send(&write_kv(&target.account, &ns.namespace, &key, body))
                .await?;
        }
    }
    Ok(writes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::SecretString;

    #[test]
    fn plan_compares_digests() {
        let key = DigestKey::derive(&SecretString::new("k"));
        let mut local = SecretMap::new();
        local.insert("A".into(), SecretString::new("1"));
        local.insert("B".into(), SecretString::new("2"));
        local.insert("C".into(), SecretString::new("3"));
        local.insert("PROVISION_DB".into(), SecretString::new("4"));
        let remote: BTreeSet<String> = ["A", "B", "Z"].iter().map(|s| s.to_string()).collect();
        let mut last = BTreeMap::new();
        last.insert("A".to_string(), key.digest("A", &SecretString::new("1")));
        last.insert("B".to_string(), key.digest("B", &SecretString::new("old")));
        let p = plan_push(&local, &remote, &last, &key, false);
        let got: Vec<_> = p.iter().map(|i| (i.name.as_str(), i.action)).collect();
        assert_eq!(
            got,
            vec![
                ("A", PushAction::Unchanged),
                ("B", PushAction::Update),
                ("C", PushAction::Create),
                ("Z", PushAction::KeepExtra)
            ]
        );
        let p = plan_push(&local, &remote, &last, &key, true);
        assert_eq!(p[3].action, PushAction::Delete);
    }
}
