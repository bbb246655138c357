//! Worker secrets, the GitOps way: an age-encrypted file per environment in
//! the repo (`infra/secrets/edge.<env>.age`), managed by `secrets set/edit/list`
//! and pushed to the Worker by `secrets push`.
//!
//! Plaintext exists only in memory: files are encrypted before they are
//! written (to a temporary file in the same directory, then renamed), `edit`
//! reads changes from standard input instead of opening an editor on a
//! plaintext temporary file.

pub mod digest;
pub mod keys;
pub mod push;
pub mod store;

pub use keys::AgeKeys;
pub use store::SecretsFile;

/// Errors of the secrets store.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// No identity to decrypt with.
    #[error("no age identity: set SHOPEDGE_AGE_IDENTITY (an AGE-SECRET-KEY-1… line) or SHOPEDGE_AGE_IDENTITY_FILE (a file of such lines) to decrypt {0}")]
    NoIdentity(String),
    /// No recipients to encrypt to.
    #[error("no age recipients: set SHOPEDGE_AGE_RECIPIENTS (age1… public keys, comma or space separated) or list them in {0}")]
    NoRecipients(String),
    /// A key did not parse.
    #[error("{source_name}: {detail}")]
    BadKey { source_name: String, detail: String },
    /// The file could not be decrypted with the identity.
    #[error("cannot decrypt {path}: {detail}; check that SHOPEDGE_AGE_IDENTITY is the key of one of the file's recipients (infra/secrets/.recipients) and that the file is not corrupted")]
    Undecryptable { path: String, detail: String },
    /// The decrypted content is not a secrets document.
    #[error("{path} decrypted but is not a shopedge secrets document: {detail}")]
    BadDocument { path: String, detail: String },
    /// Encryption failed.
    #[error("cannot encrypt {path}: {detail}")]
    Encrypt { path: String, detail: String },
    /// A secret name is not acceptable.
    #[error("invalid secret name {0:?}: use letters, digits and '_', not starting with a digit (at most 64 chars)")]
    BadName(String),
    /// Input of `set` / `edit` is malformed.
    #[error("input line {line}: {detail}")]
    BadInput { line: usize, detail: String },
    /// The named environment has no secrets file.
    #[error("{0} does not exist: create it with `provisioner secrets set --env <env> NAME` (reads the value from stdin)")]
    Missing(String),
    /// File I/O.
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Whether `name` is an acceptable secret name.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.as_bytes()[0].is_ascii_digit()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}
