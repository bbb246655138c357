//! The cluster secrets bundle: the same kinds of material `talosctl gen secrets`
//! makes, generated natively. Secret fields never appear in `Debug` output.

use crate::error::Result;
use crate::pki::{new_ca, CaKind, CertKey, KeyAlg, PrivKey};
use base64::Engine as _;
use rand::{CryptoRng, Rng, RngCore};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Format version of the serialized bundle (inside the age file).
pub const BUNDLE_FORMAT: u32 = 1;

/// Validity of the generated CAs, in years (Talos uses 10).
pub const CA_YEARS: i64 = 10;

/// All secret material of one cluster.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SecretsBundle {
    pub format: u32,
    /// RFC 3339 creation time (also the CAs' not-before, minus 5 minutes).
    pub created: String,
    /// `cluster.id`: 32 random bytes, base64.
    pub cluster_id: String,
    /// `cluster.secret`: 32 random bytes, base64.
    pub cluster_secret: String,
    /// `cluster.token`: Kubernetes bootstrap token `[a-z0-9]{6}.[a-z0-9]{16}`.
    pub bootstrap_token: String,
    /// `cluster.secretboxEncryptionSecret`: 32 random bytes, base64.
    pub secretbox_encryption_secret: String,
    /// `machine.token`: trustd join token, same shape as a bootstrap token.
    pub trustd_token: String,
    /// Talos API (OS) CA, Ed25519.
    pub os_ca: CertKey,
    /// Kubernetes CA, ECDSA P-256.
    pub k8s_ca: CertKey,
    /// Front-proxy (aggregator) CA, ECDSA P-256.
    pub k8s_aggregator_ca: CertKey,
    /// etcd CA, ECDSA P-256.
    pub etcd_ca: CertKey,
    /// Service-account signing key (PEM, `EC PRIVATE KEY`, P-256).
    pub service_account_key: String,
}

impl std::fmt::Debug for SecretsBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretsBundle")
            .field("created", &self.created)
            .field("secrets", &"<redacted>")
            .finish()
    }
}

const TOKEN_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

fn token_part<R: RngCore>(rng: &mut R, n: usize) -> String {
    (0..n)
        .map(|_| TOKEN_ALPHABET[rng.gen_range(0..TOKEN_ALPHABET.len())] as char)
        .collect()
}

/// A token of the Kubernetes bootstrap-token form `[a-z0-9]{6}.[a-z0-9]{16}`.
pub fn gen_token<R: RngCore>(rng: &mut R) -> String {
    format!("{}.{}", token_part(rng, 6), token_part(rng, 16))
}

/// Checks the bootstrap-token shape.
pub fn is_token(s: &str) -> bool {
    let ok = |p: &str, n: usize| {
        p.len() == n
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    match s.split_once('.') {
        Some((a, b)) => ok(a, 6) && ok(b, 16),
        None => false,
    }
}

fn b64_random<R: RngCore>(rng: &mut R) -> String {
    let mut b = [0u8; 32];
    rng.fill_bytes(&mut b);
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// Generates a new secrets bundle. With a seeded RNG and a fixed `now` the
/// output is byte-identical between runs (used by the snapshot tests).
pub fn generate_secrets<R: RngCore + CryptoRng>(
    rng: &mut R,
    now: OffsetDateTime,
) -> Result<SecretsBundle> {
    let cluster_id = b64_random(rng);
    let cluster_secret = b64_random(rng);
    let bootstrap_token = gen_token(rng);
    let secretbox_encryption_secret = b64_random(rng);
    let trustd_token = gen_token(rng);
    let os_ca = new_ca(CaKind::Os, rng, now, CA_YEARS)?;
    let k8s_ca = new_ca(CaKind::Kubernetes, rng, now, CA_YEARS)?;
    let k8s_aggregator_ca = new_ca(CaKind::Aggregator, rng, now, CA_YEARS)?;
    let etcd_ca = new_ca(CaKind::Etcd, rng, now, CA_YEARS)?;
    let service_account_key = PrivKey::generate(KeyAlg::EcdsaP256, rng)
        .to_pem()?
        .to_string();
    let created = now
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    Ok(SecretsBundle {
        format: BUNDLE_FORMAT,
        created,
        cluster_id,
        cluster_secret,
        bootstrap_token,
        secretbox_encryption_secret,
        trustd_token,
        os_ca,
        k8s_ca,
        k8s_aggregator_ca,
        etcd_ca,
        service_account_key,
    })
}

impl SecretsBundle {
    /// Every secret string in the bundle (for leak scans in tests and for
    /// callers that want to redact output). Certificates are public and omitted.
    pub fn secret_values(&self) -> Vec<&str> {
        vec![
            &self.cluster_secret,
            &self.bootstrap_token,
            &self.secretbox_encryption_secret,
            &self.trustd_token,
            &self.os_ca.key,
            &self.k8s_ca.key,
            &self.k8s_aggregator_ca.key,
            &self.etcd_ca.key,
            &self.service_account_key,
        ]
    }

    /// Checks that the bundle is structurally sound (used after decryption).
    pub fn check(&self) -> std::result::Result<(), String> {
        if self.format != BUNDLE_FORMAT {
            return Err(format!("unsupported bundle format {}", self.format));
        }
        if !is_token(&self.bootstrap_token) || !is_token(&self.trustd_token) {
            return Err("token has the wrong shape".into());
        }
        for (name, k) in [
            ("os CA", &self.os_ca.key),
            ("kubernetes CA", &self.k8s_ca.key),
            ("aggregator CA", &self.k8s_aggregator_ca.key),
            ("etcd CA", &self.etcd_ca.key),
            ("service account", &self.service_account_key),
        ] {
            PrivKey::from_pem(k).map_err(|e| format!("{name} key: {e}"))?;
        }
        Ok(())
    }
}
