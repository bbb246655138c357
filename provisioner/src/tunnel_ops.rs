//! The Cloudflare Tunnel step of `up` and `status`: the `tunnel` crate's
//! reconciler, set up from the cluster spec's `[tunnel]` and the
//! environment before any request is made.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tunnel::reconcile::{Credentials, Reconciler, TunnelStatus, UpReport};
use tunnel::secrets::{AgeKeys, SecretsFile};
use tunnel::spec::TunnelSpec;
use tunnel::{SecretString, TunnelError};

/// The credentials' variables, as wrangler names them.
pub const CREDENTIAL_VARS: [&str; 2] = ["CLOUDFLARE_API_TOKEN", "CLOUDFLARE_ACCOUNT_ID"];

/// Whether the Cloudflare credentials are set (both non-empty).
pub fn credentials_given(vars: &BTreeMap<String, String>) -> bool {
    CREDENTIAL_VARS
        .iter()
        .all(|k| vars.get(*k).is_some_and(|v| !v.trim().is_empty()))
}

/// Reads and validates the tunnel spec at `root/rel`.
pub fn load_spec(root: &Path, rel: &Path) -> Result<(TunnelSpec, PathBuf), TunnelError> {
    let path = root.join(rel);
    let text = std::fs::read_to_string(&path).map_err(|source| TunnelError::Io {
        what: "read tunnel spec ([tunnel] spec in the cluster spec)",
        path: path.display().to_string(),
        source,
    })?;
    let spec = TunnelSpec::from_toml(&text)
        .map_err(|e| TunnelError::Spec(format!("{}: {e}", path.display())))?;
    Ok((spec, path))
}

/// A reconciler for the spec, with credentials and age keys from `vars`;
/// its Access service token is kept in `root/infra/secrets/edge.<env>.age`.
pub fn reconciler(
    spec: TunnelSpec,
    root: &Path,
    vars: &BTreeMap<String, String>,
) -> Result<Reconciler, TunnelError> {
    let lookup = |k: &str| vars.get(k).cloned();
    let creds = Credentials::from_env(&lookup)?;
    let keys = AgeKeys::load(&lookup, root)?;
    let file = SecretsFile::for_env(root, &spec.environment);
    Reconciler::new(&creds, spec, file, keys)
}

/// What the tunnel step did; the token stays out of every report.
pub struct TunnelOutcome {
    pub report: UpReport,
    /// cloudflared's tunnel token, for its Secret only.
    pub token: SecretString,
}

/// Reconciles the tunnel, then reads its token (a read: no change).
pub async fn up(r: &Reconciler) -> Result<TunnelOutcome, TunnelError> {
    let report = r.up(false).await?;
    let token = r.tunnel_token().await?;
    Ok(TunnelOutcome { report, token })
}

/// The tunnel's state for `status` (reads only).
pub async fn status(r: &Reconciler) -> Result<TunnelStatus, TunnelError> {
    r.status().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_need_both_variables() {
        let mut v = BTreeMap::new();
        assert!(!credentials_given(&v));
        v.insert("CLOUDFLARE_API_TOKEN".to_string(), "t".to_string());
        assert!(!credentials_given(&v));
        v.insert("CLOUDFLARE_ACCOUNT_ID".to_string(), " ".to_string());
        assert!(!credentials_given(&v));
        v.insert("CLOUDFLARE_ACCOUNT_ID".to_string(), "abc".to_string());
        assert!(credentials_given(&v));
    }

    #[test]
    fn missing_spec_names_the_file_and_the_setting() {
        let d = tempfile::tempdir().unwrap();
        let e = load_spec(d.path(), Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("t.toml") && e.contains("[tunnel] spec"), "{e}");
    }
}
