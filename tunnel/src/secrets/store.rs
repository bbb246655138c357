//! The encrypted secrets file: ASCII-armored age, the plaintext a small JSON
//! document `{"version":1,"secrets":{"NAME":"value",…}}` held only in memory.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use age::armor::{ArmoredReader, ArmoredWriter, Format};
use serde::{Deserialize, Serialize};

use super::{valid_name, AgeKeys, SecretsError};
use crate::secret::SecretString;

/// Secrets by name.
pub type SecretMap = BTreeMap<String, SecretString>;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    version: u32,
    secrets: BTreeMap<String, String>,
}

/// The secrets file of one environment.
#[derive(Debug, Clone)]
pub struct SecretsFile {
    path: PathBuf,
    display: String,
}

impl SecretsFile {
    /// `<repo_root>/infra/secrets/edge.<env>.age`.
    pub fn for_env(repo_root: &Path, env: &str) -> Self {
        let rel = format!("infra/secrets/edge.{env}.age");
        Self {
            path: repo_root.join(&rel),
            display: rel,
        }
    }

    /// A file at an explicit path.
    pub fn at(path: PathBuf) -> Self {
        let display = path.display().to_string();
        Self { path, display }
    }

    /// The path (as shown in messages).
    pub fn display(&self) -> &str {
        &self.display
    }

    /// Whether the file exists.
    pub fn exists(&self) -> bool {
        self.path.is_file()
    }

    /// Decrypts and returns the secrets. A missing file is an error.
    pub fn load(&self, keys: &AgeKeys) -> Result<SecretMap, SecretsError> {
        if !self.exists() {
            return Err(SecretsError::Missing(self.display.clone()));
        }
        let identity = keys.identity(&self.display)?;
        let file = std::fs::File::open(&self.path).map_err(|source| SecretsError::Io {
            what: "open",
            path: self.display.clone(),
            source,
        })?;
        let undecryptable = |detail: String| SecretsError::Undecryptable {
            path: self.display.clone(),
            detail,
        };
        let decryptor = age::Decryptor::new(ArmoredReader::new(std::io::BufReader::new(file)))
            .map_err(|e| undecryptable(e.to_string()))?;
        let mut reader = decryptor
            .decrypt(std::iter::once(identity as &dyn age::Identity))
            .map_err(|e| undecryptable(e.to_string()))?;
        let mut plain = Vec::new();
        reader
            .read_to_end(&mut plain)
            .map_err(|e| undecryptable(e.to_string()))?;
        let doc: Result<Document, _> = serde_json::from_slice(&plain);
        wipe(&mut plain);
        let doc = doc.map_err(|e| SecretsError::BadDocument {
            path: self.display.clone(),
            detail: e.to_string(),
        })?;
        if doc.version != 1 {
            return Err(SecretsError::BadDocument {
                path: self.display.clone(),
                detail: format!("unsupported version {}", doc.version),
            });
        }
        Ok(doc
            .secrets
            .into_iter()
            .map(|(k, v)| (k, SecretString::new(v)))
            .collect())
    }

    /// Loads, or an empty map when the file does not exist yet.
    pub fn load_or_empty(&self, keys: &AgeKeys) -> Result<SecretMap, SecretsError> {
        if self.exists() {
            self.load(keys)
        } else {
            Ok(SecretMap::new())
        }
    }

    /// Encrypts to the recipients and replaces the file atomically.
    pub fn save(&self, keys: &AgeKeys, secrets: &SecretMap) -> Result<(), SecretsError> {
        let recipients = keys.recipients()?;
        for name in secrets.keys() {
            if !valid_name(name) {
                return Err(SecretsError::BadName(name.clone()));
            }
        }
        let doc = Document {
            version: 1,
            secrets: secrets
                .iter()
                .map(|(k, v)| (k.clone(), v.expose().to_string()))
                .collect(),
        };
        let enc_err = |detail: String| SecretsError::Encrypt {
            path: self.display.clone(),
            detail,
        };
        let mut plain = serde_json::to_vec_pretty(&doc).map_err(|e| enc_err(e.to_string()))?;
        drop(doc);
        let encryptor =
            age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
                .map_err(|e| enc_err(e.to_string()))?;
        let mut out = Vec::new();
        let result = (|| -> std::io::Result<()> {
            let armor = ArmoredWriter::wrap_output(&mut out, Format::AsciiArmor)?;
            let mut w = encryptor.wrap_output(armor)?;
            w.write_all(&plain)?;
            w.finish()?.finish()?;
            Ok(())
        })();
        wipe(&mut plain);
        result.map_err(|e| enc_err(e.to_string()))?;

        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|source| SecretsError::Io {
            what: "create directory for",
            path: self.display.clone(),
            source,
        })?;
        let tmp = dir.join(format!(
            ".{}.tmp-{}",
            self.path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("secrets"),
            std::process::id()
        ));
        let io = |what: &'static str| {
            let path = self.display.clone();
            move |source| SecretsError::Io { what, path, source }
        };
        std::fs::write(&tmp, &out).map_err(io("write"))?;
        std::fs::rename(&tmp, &self.path).map_err(io("replace"))?;
        Ok(())
    }
}

fn wipe(buf: &mut Vec<u8>) {
    for b in buf.iter_mut() {
        // SAFETY: `b` is a valid, exclusive reference into the buffer.
        unsafe { std::ptr::write_volatile(b, 0) };
    }
    buf.clear();
}

/// One change read by `secrets edit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// `NAME=VALUE`: set.
    Set(String, SecretString),
    /// `-NAME`: remove.
    Remove(String),
}

/// Parses `edit` input: one change per line, `NAME=VALUE` or `-NAME`; blank
/// lines and `#` comments are ignored. Values are taken verbatim after the
/// first `=` (no quoting rules to get wrong).
pub fn parse_edits(input: &str) -> Result<Vec<Edit>, SecretsError> {
    let mut edits = Vec::new();
    for (i, line) in input.lines().enumerate() {
        let line_no = i + 1;
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if let Some(name) = trimmed.strip_prefix('-') {
            let name = name.trim();
            if !valid_name(name) {
                return Err(SecretsError::BadName(name.to_string()));
            }
            edits.push(Edit::Remove(name.to_string()));
            continue;
        }
        let Some((name, value)) = trimmed.split_once('=') else {
            return Err(SecretsError::BadInput {
                line: line_no,
                detail: "expected NAME=VALUE or -NAME (the value is not shown)".into(),
            });
        };
        let name = name.trim();
        if !valid_name(name) {
            return Err(SecretsError::BadName(name.to_string()));
        }
        let value = value.strip_suffix('\r').unwrap_or(value);
        if value.is_empty() {
            return Err(SecretsError::BadInput {
                line: line_no,
                detail: format!("empty value for {name}; use -{name} to remove it"),
            });
        }
        edits.push(Edit::Set(name.to_string(), SecretString::new(value)));
    }
    Ok(edits)
}

/// Applies edits; returns (set, removed) names.
pub fn apply_edits(map: &mut SecretMap, edits: Vec<Edit>) -> (Vec<String>, Vec<String>) {
    let (mut set, mut removed) = (Vec::new(), Vec::new());
    for e in edits {
        match e {
            Edit::Set(k, v) => {
                map.insert(k.clone(), v);
                set.push(k);
            }
            Edit::Remove(k) => {
                if map.remove(&k).is_some() {
                    removed.push(k);
                }
            }
        }
    }
    (set, removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use age::x25519;

    fn keys() -> AgeKeys {
        let id = x25519::Identity::generate();
        AgeKeys {
            recipients: vec![id.to_public()],
            identity: Some(id),
            recipients_source: "test".into(),
        }
    }

    #[test]
    fn roundtrip_and_no_plaintext_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let f = SecretsFile::for_env(dir.path(), "test");
        let k = keys();
        let mut m = SecretMap::new();
        m.insert("API_KEY".into(), SecretString::new("s3cr3t-value-xyz"));
        f.save(&k, &m).unwrap();
        let raw = std::fs::read_to_string(dir.path().join("infra/secrets/edge.test.age")).unwrap();
        assert!(raw.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"));
        assert!(!raw.contains("s3cr3t") && !raw.contains("API_KEY"));
        assert_eq!(f.load(&k).unwrap(), m);
        // no stray temporary files
        let n = std::fs::read_dir(dir.path().join("infra/secrets"))
            .unwrap()
            .count();
        assert_eq!(n, 1);
    }

    #[test]
    fn wrong_identity_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let f = SecretsFile::for_env(dir.path(), "test");
        f.save(&keys(), &SecretMap::new()).unwrap();
        let e = f.load(&keys()).unwrap_err().to_string();
        assert!(
            e.contains("cannot decrypt infra/secrets/edge.test.age"),
            "{e}"
        );
        assert!(e.contains("SHOPEDGE_AGE_IDENTITY"), "{e}");
    }

    #[test]
    fn edits_parse() {
        let e = parse_edits("# c\nA=1=2\n\n-B\n").unwrap();
        assert_eq!(
            e,
            vec![
                Edit::Set("A".into(), SecretString::new("1=2")),
                Edit::Remove("B".into())
            ]
        );
        assert!(parse_edits("nonsense").is_err());
        assert!(parse_edits("9X=1").is_err());
        assert!(parse_edits("A=").is_err());
    }
}
