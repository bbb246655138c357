//! age identity and recipients from the environment or the repo.

use std::path::Path;
use std::str::FromStr;

use age::secrecy::ExposeSecret;
use age::x25519;

use super::SecretsError;
use crate::secret::SecretString;

/// Relative path of the recipients file in the repo.
pub const RECIPIENTS_FILE: &str = "infra/secrets/.recipients";

/// The keys in use.
#[derive(Clone, Default)]
pub struct AgeKeys {
    /// Identity (private key), if provided.
    pub identity: Option<x25519::Identity>,
    /// Recipients (public keys).
    pub recipients: Vec<x25519::Recipient>,
    /// Where the recipients came from, for messages.
    pub recipients_source: String,
}

impl std::fmt::Debug for AgeKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgeKeys")
            .field("identity", &self.identity.as_ref().map(|_| "<redacted>"))
            .field("recipients", &self.recipients.len())
            .finish()
    }
}

impl AgeKeys {
    /// Loads keys: identity from `SHOPEDGE_AGE_IDENTITY` or the file in
    /// `SHOPEDGE_AGE_IDENTITY_FILE`; recipients from `SHOPEDGE_AGE_RECIPIENTS`
    /// or `<repo_root>/infra/secrets/.recipients`. Missing keys are not an
    /// error here; operations that need them say so.
    pub fn load(
        var: &dyn Fn(&str) -> Option<String>,
        repo_root: &Path,
    ) -> Result<Self, SecretsError> {
        let mut keys = AgeKeys::default();
        if let Some(text) = var("SHOPEDGE_AGE_IDENTITY").filter(|s| !s.trim().is_empty()) {
            keys.identity = Some(parse_identity(&text, "SHOPEDGE_AGE_IDENTITY")?);
        } else if let Some(file) = var("SHOPEDGE_AGE_IDENTITY_FILE").filter(|s| !s.is_empty()) {
            let text = std::fs::read_to_string(&file).map_err(|source| SecretsError::Io {
                what: "read SHOPEDGE_AGE_IDENTITY_FILE",
                path: file.clone(),
                source,
            })?;
            keys.identity = Some(parse_identity(&text, "SHOPEDGE_AGE_IDENTITY_FILE")?);
        }
        if let Some(text) = var("SHOPEDGE_AGE_RECIPIENTS").filter(|s| !s.trim().is_empty()) {
            keys.recipients = parse_recipients(&text, "SHOPEDGE_AGE_RECIPIENTS")?;
            keys.recipients_source = "SHOPEDGE_AGE_RECIPIENTS".into();
        } else {
            let path = repo_root.join(RECIPIENTS_FILE);
            keys.recipients_source = RECIPIENTS_FILE.into();
            if path.is_file() {
                let text = std::fs::read_to_string(&path).map_err(|source| SecretsError::Io {
                    what: "read",
                    path: RECIPIENTS_FILE.into(),
                    source,
                })?;
                keys.recipients = parse_recipients(&text, RECIPIENTS_FILE)?;
            }
        }
        Ok(keys)
    }

    /// The identity or a clear error naming `what` needs it.
    pub fn identity(&self, what: &str) -> Result<&x25519::Identity, SecretsError> {
        self.identity
            .as_ref()
            .ok_or_else(|| SecretsError::NoIdentity(what.to_string()))
    }

    /// The recipients or a clear error.
    pub fn recipients(&self) -> Result<&[x25519::Recipient], SecretsError> {
        if self.recipients.is_empty() {
            Err(SecretsError::NoRecipients(RECIPIENTS_FILE.into()))
        } else {
            Ok(&self.recipients)
        }
    }

    /// The identity's secret string (for deriving the digest key).
    pub fn identity_secret(&self, what: &str) -> Result<SecretString, SecretsError> {
        let id = self.identity(what)?;
        Ok(SecretString::new(
            id.to_string().expose_secret().to_string(),
        ))
    }
}

fn parse_identity(text: &str, source_name: &str) -> Result<x25519::Identity, SecretsError> {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .ok_or_else(|| SecretsError::BadKey {
            source_name: source_name.into(),
            detail: "no AGE-SECRET-KEY-1… line found".into(),
        })?;
    x25519::Identity::from_str(line).map_err(|_| SecretsError::BadKey {
        source_name: source_name.into(),
        detail: "not an age X25519 identity (expected AGE-SECRET-KEY-1…)".into(),
    })
}

fn parse_recipients(text: &str, source_name: &str) -> Result<Vec<x25519::Recipient>, SecretsError> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        for tok in line.split(|c: char| c == ',' || c.is_whitespace()) {
            if tok.is_empty() {
                continue;
            }
            let r = x25519::Recipient::from_str(tok).map_err(|e| SecretsError::BadKey {
                source_name: source_name.into(),
                detail: format!("{tok:?} is not an age X25519 recipient (age1…): {e}"),
            })?;
            out.push(r);
        }
    }
    Ok(out)
}

/// A new X25519 identity: (identity line `AGE-SECRET-KEY-1…`, recipient `age1…`).
pub fn generate_identity() -> (SecretString, String) {
    let id = x25519::Identity::generate();
    let public = id.to_public().to_string();
    (
        SecretString::new(id.to_string().expose_secret().to_string()),
        public,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_from_env() {
        let id = x25519::Identity::generate();
        let idtext = id.to_string().expose_secret().to_string();
        let pk = id.to_public().to_string();
        let var = |k: &str| match k {
            "SHOPEDGE_AGE_IDENTITY" => Some(idtext.clone()),
            "SHOPEDGE_AGE_RECIPIENTS" => Some(format!("{pk}, {pk}")),
            _ => None,
        };
        let k = AgeKeys::load(&var, Path::new("/nonexistent")).unwrap();
        assert!(k.identity.is_some());
        assert_eq!(k.recipients.len(), 2);
        assert!(!format!("{k:?}").contains("AGE-SECRET"));
    }

    #[test]
    fn bad_identity_is_named() {
        let var = |k: &str| (k == "SHOPEDGE_AGE_IDENTITY").then(|| "nope".to_string());
        let e = AgeKeys::load(&var, Path::new(".")).unwrap_err().to_string();
        assert!(e.contains("SHOPEDGE_AGE_IDENTITY"), "{e}");
    }
}
