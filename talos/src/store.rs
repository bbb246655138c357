//! Secrets at rest: the bundle lives only age-encrypted (x25519 recipients) at
//! `<root>/infra/clusters/<name>/talos-secrets.age`. Encryption and decryption
//! happen in memory; only ciphertext is ever written.

use crate::error::{Result, TalosError};
use crate::secrets::SecretsBundle;
use age::secrecy::ExposeSecret as _;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use zeroize::Zeroizing;

/// Recipients (age public keys, `age1...`), separated by commas, spaces or newlines.
pub const RECIPIENTS_ENV: &str = "SHOPEDGE_AGE_RECIPIENTS";
/// An age identity (`AGE-SECRET-KEY-1...`), or several on separate lines.
pub const IDENTITY_ENV: &str = "SHOPEDGE_AGE_IDENTITY";
/// Path of an age identity file (as written by `age-keygen`).
pub const IDENTITY_FILE_ENV: &str = "SHOPEDGE_AGE_IDENTITY_FILE";
/// File name of the encrypted bundle.
pub const SECRETS_FILE: &str = "talos-secrets.age";

/// `<root>/infra/clusters/<cluster>/talos-secrets.age`.
pub fn secrets_path(root: &Path, cluster: &str) -> PathBuf {
    root.join("infra")
        .join("clusters")
        .join(cluster)
        .join(SECRETS_FILE)
}

/// Parsed age recipients.
#[derive(Clone)]
pub struct Recipients(Vec<age::x25519::Recipient>);

impl std::fmt::Debug for Recipients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|r| r.to_string()))
            .finish()
    }
}

impl Recipients {
    /// Parses `age1...` public keys; `origin` (e.g. "cluster spec") names them in errors.
    pub fn parse<S: AsRef<str>>(keys: &[S], origin: &str, path: &Path) -> Result<Self> {
        let mut out = Vec::new();
        for k in keys {
            let k = k.as_ref().trim();
            if k.is_empty() {
                continue;
            }
            let r = age::x25519::Recipient::from_str(k).map_err(|e| TalosError::Secrets {
                path: path.to_path_buf(),
                detail: format!("age recipient `{k}` from {origin} is invalid ({e})"),
                fix: "give X25519 public keys of the form age1... (the `Public key:` line of age-keygen)".into(),
            })?;
            out.push(r);
        }
        if out.is_empty() {
            return Err(TalosError::Secrets {
                path: path.to_path_buf(),
                detail: "no age recipients to encrypt the Talos secrets to".into(),
                fix: format!("list age public keys in the cluster spec or in {RECIPIENTS_ENV} (comma-separated); create one with `age-keygen`"),
            });
        }
        Ok(Recipients(out))
    }

    /// Recipients from the spec, or else from `SHOPEDGE_AGE_RECIPIENTS`.
    pub fn from_spec_or_env(spec: &[String], path: &Path) -> Result<Self> {
        if spec.iter().any(|s| !s.trim().is_empty()) {
            return Self::parse(spec, "the cluster spec", path);
        }
        let env = std::env::var(RECIPIENTS_ENV).unwrap_or_default();
        let keys: Vec<&str> = env.split(|c: char| c == ',' || c.is_whitespace()).collect();
        Self::parse(&keys, RECIPIENTS_ENV, path)
    }

    pub fn public_keys(&self) -> Vec<String> {
        self.0.iter().map(|r| r.to_string()).collect()
    }
}

/// Parsed age identities (secret keys; never printed).
pub struct Identities(Vec<age::x25519::Identity>);

impl std::fmt::Debug for Identities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Identities(<{} redacted>)", self.0.len())
    }
}

impl Identities {
    /// Parses identity text: `AGE-SECRET-KEY-1...` lines; `#` comments and blanks ignored.
    pub fn parse(text: &str, origin: &str, path: &Path) -> Result<Self> {
        let mut out = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let id = age::x25519::Identity::from_str(line).map_err(|_| TalosError::Secrets {
                path: path.to_path_buf(),
                detail: format!(
                    "line {} of the age identity from {origin} is not an X25519 identity",
                    i + 1
                ),
                fix: "use the AGE-SECRET-KEY-1... key written by `age-keygen`".into(),
            })?;
            out.push(id);
        }
        if out.is_empty() {
            return Err(TalosError::Secrets {
                path: path.to_path_buf(),
                detail: format!("the age identity from {origin} is empty"),
                fix: "use the AGE-SECRET-KEY-1... key written by `age-keygen`".into(),
            });
        }
        Ok(Identities(out))
    }

    /// Reads an identity file.
    pub fn from_file(file: &Path, secrets: &Path) -> Result<Self> {
        let text =
            Zeroizing::new(
                std::fs::read_to_string(file).map_err(|e| TalosError::Secrets {
                    path: secrets.to_path_buf(),
                    detail: format!("cannot read the age identity file {} ({e})", file.display()),
                    fix: format!("point {IDENTITY_FILE_ENV} at an existing age-keygen key file"),
                })?,
            );
        Self::parse(&text, &file.display().to_string(), secrets)
    }

    /// `SHOPEDGE_AGE_IDENTITY`, else the file named by `SHOPEDGE_AGE_IDENTITY_FILE`.
    pub fn from_env(secrets: &Path) -> Result<Self> {
        if let Ok(v) = std::env::var(IDENTITY_ENV) {
            let v = Zeroizing::new(v);
            if !v.trim().is_empty() {
                return Self::parse(&v, IDENTITY_ENV, secrets);
            }
        }
        if let Some(f) = std::env::var_os(IDENTITY_FILE_ENV) {
            return Self::from_file(Path::new(&f), secrets);
        }
        Err(TalosError::Secrets {
            path: secrets.to_path_buf(),
            detail: "no age identity to decrypt it with".into(),
            fix: format!("set {IDENTITY_ENV} to the AGE-SECRET-KEY-1... key, or {IDENTITY_FILE_ENV} to the file holding it, for one of the recipients the file was encrypted to"),
        })
    }

    /// The public keys (recipients) matching these identities.
    pub fn to_public(&self) -> Vec<String> {
        self.0.iter().map(|i| i.to_public().to_string()).collect()
    }
}

/// The encrypted secrets file of one cluster.
#[derive(Debug, Clone)]
pub struct SecretsStore {
    path: PathBuf,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TalosError + '_ {
    move |source| TalosError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl SecretsStore {
    /// The store of `cluster` under the repository root `root`.
    pub fn new(root: &Path, cluster: &str) -> Self {
        SecretsStore {
            path: secrets_path(root, cluster),
        }
    }

    /// A store at an explicit path.
    pub fn at(path: PathBuf) -> Self {
        SecretsStore { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn exists(&self) -> bool {
        self.path.is_file()
    }

    /// Encrypts `bundle` to `recipients` in memory and writes the ciphertext
    /// atomically (temp file in the same directory, then rename).
    pub fn save(&self, bundle: &SecretsBundle, recipients: &Recipients) -> Result<()> {
        let plain =
            Zeroizing::new(
                serde_yaml::to_string(bundle).map_err(|source| TalosError::Yaml {
                    what: "secrets bundle".into(),
                    source,
                })?,
            );
        let enc =
            age::Encryptor::with_recipients(recipients.0.iter().map(|r| r as &dyn age::Recipient))
                .map_err(|e| TalosError::Secrets {
                    path: self.path.clone(),
                    detail: format!("cannot encrypt ({e})"),
                    fix: "check the age recipients".into(),
                })?;
        let mut cipher = Vec::new();
        let enc_fail = |e: std::io::Error| TalosError::Secrets {
            path: self.path.clone(),
            detail: format!("encryption failed ({e})"),
            fix: "retry".into(),
        };
        let mut w = enc.wrap_output(&mut cipher).map_err(enc_fail)?;
        w.write_all(plain.as_bytes()).map_err(enc_fail)?;
        w.finish().map_err(enc_fail)?;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let tmp = dir.join(format!(".{SECRETS_FILE}.tmp-{}", std::process::id()));
        std::fs::write(&tmp, &cipher).map_err(io_err(&tmp))?;
        std::fs::rename(&tmp, &self.path).map_err(io_err(&self.path))?;
        tracing::info!(path = %self.path.display(), recipients = recipients.0.len(), "wrote encrypted Talos secrets");
        Ok(())
    }

    /// Decrypts and parses the bundle.
    pub fn load(&self, identities: &Identities) -> Result<SecretsBundle> {
        let cipher = std::fs::read(&self.path).map_err(|e| TalosError::Secrets {
            path: self.path.clone(),
            detail: format!("cannot read it ({e})"),
            fix:
                "run `provisioner up` to generate the cluster secrets, or restore the file from Git"
                    .into(),
        })?;
        let corrupted = |detail: String| {
            TalosError::Secrets {
            path: self.path.clone(),
            detail: format!("is corrupted or not an age file ({detail})"),
            fix: format!(
                "restore it from Git history (`git log -- {}`); if no good copy exists the cluster's CAs are lost and the cluster must be rebuilt with new secrets",
                self.path.display()
            ),
        }
        };
        let dec = age::Decryptor::new(&cipher[..]).map_err(|e| corrupted(e.to_string()))?;
        let mut reader = dec
            .decrypt(identities.0.iter().map(|i| i as &dyn age::Identity))
            .map_err(|e| match e {
                age::DecryptError::NoMatchingKeys => TalosError::Secrets {
                    path: self.path.clone(),
                    detail: format!(
                        "it is not encrypted to the given age identity (its public key: {})",
                        identities.to_public().join(", ")
                    ),
                    fix: format!("set {IDENTITY_ENV}/{IDENTITY_FILE_ENV} to an identity of one of the recipients the file was encrypted to, or have a holder of such an identity re-encrypt it to your key (`SecretsStore::rekey`)"),
                },
                other => corrupted(other.to_string()),
            })?;
        let mut plain = Zeroizing::new(Vec::new());
        reader
            .read_to_end(&mut plain)
            .map_err(|e| corrupted(e.to_string()))?;
        let text = std::str::from_utf8(&plain).map_err(|e| corrupted(e.to_string()))?;
        let bundle: SecretsBundle = serde_yaml::from_str(text).map_err(|e| {
            corrupted(format!(
                "decrypted content is not a secrets bundle: {}",
                e.location()
                    .map(|l| format!("line {}", l.line()))
                    .unwrap_or_default()
            ))
        })?;
        bundle.check().map_err(corrupted)?;
        Ok(bundle)
    }

    /// Loads the bundle if the file exists, else generates one with `generate`
    /// and saves it first (idempotent: a re-run after a crash reuses the file).
    /// Returns the bundle and whether it was created now.
    pub fn load_or_create(
        &self,
        identities: Option<&Identities>,
        recipients: &Recipients,
        generate: impl FnOnce() -> Result<SecretsBundle>,
    ) -> Result<(SecretsBundle, bool)> {
        if self.exists() {
            let ids = match identities {
                Some(i) => i,
                None => {
                    return Err(TalosError::Secrets {
                        path: self.path.clone(),
                        detail: "it exists but no age identity was given to decrypt it".into(),
                        fix: format!("set {IDENTITY_ENV} or {IDENTITY_FILE_ENV}"),
                    })
                }
            };
            return Ok((self.load(ids)?, false));
        }
        let bundle = generate()?;
        self.save(&bundle, recipients)?;
        Ok((bundle, true))
    }

    /// Re-encrypts the existing bundle to a new recipient set (key rotation of the
    /// age layer; the cluster secrets themselves are unchanged).
    pub fn rekey(&self, identities: &Identities, recipients: &Recipients) -> Result<()> {
        let b = self.load(identities)?;
        self.save(&b, recipients)
    }

    /// Reads the age identity secret as a string (for tests that need to pass it on).
    pub fn identity_to_string(id: &age::x25519::Identity) -> Zeroizing<String> {
        Zeroizing::new(id.to_string().expose_secret().to_string())
    }
}
