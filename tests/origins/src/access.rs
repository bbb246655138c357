//! The test Cloudflare Access application: its signing keys (throwaway RSA
//! keys kept in `edge-waf/tests/fixtures`), the key set the Access stand-in
//! origin publishes, and tokens signed like Access signs them (RS256).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{SignatureEncoding, Signer};
use rsa::traits::PublicKeyParts;
use rsa::RsaPrivateKey;
use std::sync::OnceLock;

/// Where Access publishes a team's keys.
pub const CERTS_PATH: &str = "/cdn-cgi/access/certs";
/// The test application's audience tag.
pub const AUDIENCE: &str = "shopedge-test-aud";
/// Key id of the published key.
pub const KID: &str = "test-key-1";

fn load(n: u8) -> RsaPrivateKey {
    let path = crate::edge_harness::repo_root()
        .join(format!("edge-waf/tests/fixtures/test-access-key-{n}.pem"));
    let pem = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    RsaPrivateKey::from_pkcs8_pem(&pem).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The published key (1) and an unpublished one (2).
fn keys() -> &'static (RsaPrivateKey, RsaPrivateKey) {
    static KEYS: OnceLock<(RsaPrivateKey, RsaPrivateKey)> = OnceLock::new();
    KEYS.get_or_init(|| (load(1), load(2)))
}

/// The key set, as the certs endpoint serves it.
pub fn jwks() -> serde_json::Value {
    let pk = keys().0.to_public_key();
    serde_json::json!({
        "keys": [{
            "kid": KID, "kty": "RSA", "alg": "RS256", "use": "sig",
            "e": URL_SAFE_NO_PAD.encode(pk.e().to_bytes_be()),
            "n": URL_SAFE_NO_PAD.encode(pk.n().to_bytes_be()),
        }],
        "public_cert": {"kid": KID, "cert": "-----BEGIN CERTIFICATE-----\n(not used)\n-----END CERTIFICATE-----"},
    })
}

/// Which key signs a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignedBy {
    /// The published key.
    Published,
    /// A key the team does not publish (claims the published key's id).
    Unpublished,
}

/// An RS256 token with `claims`, signed by `by`, naming `kid`.
pub fn sign(claims: &serde_json::Value, by: SignedBy, kid: &str) -> String {
    let header = serde_json::json!({"alg": "RS256", "kid": kid, "typ": "JWT"});
    let h = URL_SAFE_NO_PAD.encode(header.to_string());
    let p = URL_SAFE_NO_PAD.encode(claims.to_string());
    let key = match by {
        SignedBy::Published => keys().0.clone(),
        SignedBy::Unpublished => keys().1.clone(),
    };
    let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(key);
    let sig = signer.sign(format!("{h}.{p}").as_bytes()).to_vec();
    format!("{h}.{p}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// Claims Access would issue for `issuer` (the team domain), valid for
/// `ttl` seconds from now (negative: already expired).
pub fn claims(issuer: &str, audience: &str, ttl: i64) -> serde_json::Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    serde_json::json!({
        "aud": [audience], "iss": issuer, "exp": now + ttl, "iat": now - 5, "nbf": now - 5,
        "sub": "7f3c2a", "email": "ops@shop.example.com", "type": "app",
    })
}
