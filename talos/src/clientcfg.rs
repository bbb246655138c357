//! Admin client configurations: the kubeconfig (client certificate issued
//! locally from the Kubernetes CA, `O=system:masters`) and the talosconfig
//! (client certificate from the Talos API CA, role `os:admin`), plus writing
//! them with mode 0600.

use crate::error::{Result, TalosError};
use crate::pki::{issue_leaf, CaKind, KeyAlg, LeafSpec, PrivKey};
use crate::secrets::SecretsBundle;
use base64::Engine as _;
use rand::{CryptoRng, RngCore};
use serde_yaml::{Mapping, Value};
use std::path::Path;
use time::OffsetDateTime;
use zeroize::Zeroizing;

/// Validity of issued admin client certificates (Talos uses one year).
pub const ADMIN_CERT_DAYS: i64 = 365;

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
}

fn m(pairs: Vec<(&str, Value)>) -> Value {
    Value::Mapping(
        pairs
            .into_iter()
            .map(|(k, v)| (Value::String(k.into()), v))
            .collect::<Mapping>(),
    )
}

fn s(v: &str) -> Value {
    Value::String(v.to_string())
}

fn yaml(v: &Value) -> Result<Zeroizing<String>> {
    serde_yaml::to_string(v)
        .map(Zeroizing::new)
        .map_err(|source| TalosError::Yaml {
            what: "client config".into(),
            source,
        })
}

/// A client identity for the Talos API (PEM; the key uses the PKCS#8 label rustls reads).
#[derive(Clone)]
pub struct TalosClientCreds {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: Zeroizing<String>,
}

impl std::fmt::Debug for TalosClientCreds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TalosClientCreds")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

impl TalosClientCreds {
    /// Issues an `os:admin` client certificate (Ed25519) from the Talos API CA.
    pub fn issue_admin<R: RngCore + CryptoRng>(
        secrets: &SecretsBundle,
        rng: &mut R,
        now: OffsetDateTime,
    ) -> Result<Self> {
        let leaf = issue_leaf(
            CaKind::Os,
            &secrets.os_ca,
            &LeafSpec {
                common_name: "admin".into(),
                organizations: vec!["os:admin".into()],
                sans: vec![],
                server_auth: false,
                client_auth: true,
                alg: KeyAlg::Ed25519,
                validity: time::Duration::days(ADMIN_CERT_DAYS),
            },
            rng,
            now,
        )?;
        let key = PrivKey::from_pem(&leaf.key)?;
        Ok(TalosClientCreds {
            ca_pem: secrets.os_ca.crt.clone(),
            cert_pem: leaf.crt,
            key_pem: key.to_pkcs8_pem()?,
        })
    }
}

/// The admin kubeconfig for `cluster_name` at `endpoint` (`https://...:6443`).
pub fn admin_kubeconfig<R: RngCore + CryptoRng>(
    secrets: &SecretsBundle,
    cluster_name: &str,
    endpoint: &str,
    rng: &mut R,
    now: OffsetDateTime,
) -> Result<Zeroizing<String>> {
    let leaf = issue_leaf(
        CaKind::Kubernetes,
        &secrets.k8s_ca,
        &LeafSpec {
            common_name: "admin".into(),
            organizations: vec!["system:masters".into()],
            sans: vec![],
            server_auth: false,
            client_auth: true,
            alg: KeyAlg::EcdsaP256,
            validity: time::Duration::days(ADMIN_CERT_DAYS),
        },
        rng,
        now,
    )?;
    let user = format!("admin@{cluster_name}");
    let key = Zeroizing::new(b64(&leaf.key));
    let doc = m(vec![
        ("apiVersion", s("v1")),
        ("kind", s("Config")),
        (
            "clusters",
            Value::Sequence(vec![m(vec![
                ("name", s(cluster_name)),
                (
                    "cluster",
                    m(vec![
                        ("server", s(endpoint)),
                        ("certificate-authority-data", s(&b64(&secrets.k8s_ca.crt))),
                    ]),
                ),
            ])]),
        ),
        (
            "users",
            Value::Sequence(vec![m(vec![
                ("name", s(&user)),
                (
                    "user",
                    m(vec![
                        ("client-certificate-data", s(&b64(&leaf.crt))),
                        ("client-key-data", s(&key)),
                    ]),
                ),
            ])]),
        ),
        (
            "contexts",
            Value::Sequence(vec![m(vec![
                ("name", s(&user)),
                (
                    "context",
                    m(vec![
                        ("cluster", s(cluster_name)),
                        ("namespace", s("default")),
                        ("user", s(&user)),
                    ]),
                ),
            ])]),
        ),
        ("current-context", s(&user)),
        ("preferences", Value::Mapping(Mapping::new())),
    ]);
    yaml(&doc)
}

/// The talosconfig (as `talosctl` reads it) with context `cluster_name`.
pub fn talosconfig(
    creds: &TalosClientCreds,
    cluster_name: &str,
    endpoints: &[String],
    nodes: &[String],
) -> Result<Zeroizing<String>> {
    // talosctl reads Ed25519 keys under Talos's own PEM label.
    let key = PrivKey::from_pem(&creds.key_pem)?.to_pem()?;
    let list = |v: &[String]| Value::Sequence(v.iter().map(|x| s(x)).collect());
    let key_b64 = Zeroizing::new(b64(&key));
    let ctx = m(vec![
        ("endpoints", list(endpoints)),
        ("nodes", list(nodes)),
        ("ca", s(&b64(&creds.ca_pem))),
        ("crt", s(&b64(&creds.cert_pem))),
        ("key", s(&key_b64)),
    ]);
    let mut contexts = Mapping::new();
    contexts.insert(s(cluster_name), ctx);
    let doc = m(vec![
        ("context", s(cluster_name)),
        ("contexts", Value::Mapping(contexts)),
    ]);
    yaml(&doc)
}

/// Writes a file readable only by the owner (mode 0600): temp file created with
/// 0600 in the same directory, then renamed over `path`.
pub fn write_private_file(path: &Path, content: &str) -> Result<()> {
    use std::io::Write as _;
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| TalosError::Io { path: p, source }
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        std::process::id()
    ));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp).map_err(io(&tmp))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(io(&tmp))?;
    }
    f.write_all(content.as_bytes()).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io(path))?;
    Ok(())
}
