//! Cloudflare Access JWT (`Cf-Access-Jwt-Assertion`) checks.
//!
//! Parsing, claims validation (`exp`, `nbf`, `aud`, `iss`) and JWKS parsing
//! are pure Rust. Signature verification is the [`SignatureVerifier`]
//! trait: the worker verifies with WebCrypto (asynchronously, using
//! [`UnverifiedJwt::signing_input`], [`UnverifiedJwt::signature`] and the
//! key found with [`Jwks::find`]); hosts and tests can enable the
//! `rsa-verify` feature for [`RsaVerifier`].

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::Deserialize;

use crate::config::AccessJwtConfig;

/// The request header Cloudflare Access sets.
pub const HEADER: &str = "cf-access-jwt-assertion";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwtError {
    #[error("token is not three base64url parts separated by dots")]
    Malformed,
    #[error("token {0} is not valid base64url JSON")]
    Decode(&'static str),
    #[error("unsupported algorithm `{0}` (Cloudflare Access signs with RS256)")]
    Algorithm(String),
    #[error("token expired")]
    Expired,
    #[error("token not valid yet (nbf)")]
    NotYetValid,
    #[error("token has no `exp` claim")]
    MissingExp,
    #[error("audience does not match this application")]
    Audience,
    #[error("issuer `{0}` is not the configured team domain")]
    Issuer(String),
    #[error("no key with kid `{0}` in the JWKS (keys rotate: refresh the cached JWKS)")]
    UnknownKey(String),
    #[error("signature does not verify")]
    BadSignature,
    #[error("JWKS is invalid: {0}")]
    Jwks(String),
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Header {
    pub alg: String,
    #[serde(default)]
    pub kid: Option<String>,
    #[serde(default)]
    pub typ: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Claims {
    #[serde(default)]
    pub aud: Option<Audience>,
    #[serde(default)]
    pub iss: Option<String>,
    #[serde(default)]
    pub exp: Option<i64>,
    #[serde(default)]
    pub nbf: Option<i64>,
    #[serde(default)]
    pub iat: Option<i64>,
    #[serde(default)]
    pub sub: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
}

/// A token whose claims passed, awaiting signature verification.
#[derive(Debug, Clone)]
pub struct UnverifiedJwt {
    pub header: Header,
    pub claims: Claims,
    signing_input: String,
    signature: Vec<u8>,
}

impl UnverifiedJwt {
    /// `base64url(header) + "." + base64url(payload)`, the signed bytes.
    pub fn signing_input(&self) -> &[u8] {
        self.signing_input.as_bytes()
    }
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }

    /// Verify the signature with the key named by `kid` in `jwks`.
    pub fn verify(self, jwks: &Jwks, verifier: &dyn SignatureVerifier) -> Result<Claims, JwtError> {
        let kid = self.header.kid.clone().unwrap_or_default();
        let key = jwks
            .find(&kid)
            .ok_or_else(|| JwtError::UnknownKey(kid.clone()))?;
        if verifier.verify_rs256(key, self.signing_input(), self.signature()) {
            Ok(self.claims)
        } else {
            Err(JwtError::BadSignature)
        }
    }
}

fn b64json<T: for<'de> Deserialize<'de>>(part: &str, what: &'static str) -> Result<T, JwtError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|_| JwtError::Decode(what))?;
    serde_json::from_slice(&bytes).map_err(|_| JwtError::Decode(what))
}

/// Parse the token and check `alg`, `exp`, `nbf`, `aud` and `iss` at
/// `now` (Unix seconds). The signature is NOT checked here.
pub fn validate_claims(
    token: &str,
    cfg: &AccessJwtConfig,
    now: i64,
) -> Result<UnverifiedJwt, JwtError> {
    if token.len() > 16 * 1024 {
        return Err(JwtError::Malformed);
    }
    let mut parts = token.trim().split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    let header: Header = b64json(h, "header")?;
    if header.alg != "RS256" {
        return Err(JwtError::Algorithm(header.alg));
    }
    let claims: Claims = b64json(p, "payload")?;
    let signature = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| JwtError::Decode("signature"))?;
    let leeway = i64::try_from(cfg.leeway_secs).unwrap_or(0);
    let exp = claims.exp.ok_or(JwtError::MissingExp)?;
    if now > exp.saturating_add(leeway) {
        return Err(JwtError::Expired);
    }
    if let Some(nbf) = claims.nbf {
        if now.saturating_add(leeway) < nbf {
            return Err(JwtError::NotYetValid);
        }
    }
    let aud_ok = match &claims.aud {
        Some(Audience::One(a)) => cfg.audience.iter().any(|x| x == a),
        Some(Audience::Many(v)) => v.iter().any(|a| cfg.audience.iter().any(|x| x == a)),
        None => false,
    };
    if !aud_ok {
        return Err(JwtError::Audience);
    }
    let want_iss = cfg.issuer.trim_end_matches('/');
    match &claims.iss {
        Some(iss) if iss.trim_end_matches('/') == want_iss => {}
        other => return Err(JwtError::Issuer(other.clone().unwrap_or_default())),
    }
    Ok(UnverifiedJwt {
        header,
        claims,
        signing_input: format!("{h}.{p}"),
        signature,
    })
}

/// One RSA public key from a JWKS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jwk {
    pub kid: String,
    /// Big-endian modulus.
    pub n: Vec<u8>,
    /// Big-endian public exponent.
    pub e: Vec<u8>,
    /// The key as JSON, for WebCrypto's `importKey("jwk", ...)`.
    pub json: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

impl Jwks {
    /// Parse `{"keys":[{"kty":"RSA","kid":..,"n":..,"e":..}, ...]}` (the
    /// Access certs endpoint). Non-RSA keys are skipped.
    pub fn parse(json: &[u8]) -> Result<Jwks, JwtError> {
        #[derive(Deserialize)]
        struct Raw {
            keys: Vec<serde_json::Value>,
        }
        let raw: Raw = serde_json::from_slice(json).map_err(|e| JwtError::Jwks(e.to_string()))?;
        let mut keys = Vec::new();
        for k in raw.keys {
            if k.get("kty").and_then(|v| v.as_str()) != Some("RSA") {
                continue;
            }
            let get = |f: &str| k.get(f).and_then(|v| v.as_str()).map(str::to_string);
            let kid = get("kid").ok_or_else(|| JwtError::Jwks("RSA key without kid".into()))?;
            let n = get("n").ok_or_else(|| JwtError::Jwks(format!("key {kid} has no n")))?;
            let e = get("e").ok_or_else(|| JwtError::Jwks(format!("key {kid} has no e")))?;
            let n = URL_SAFE_NO_PAD
                .decode(n)
                .map_err(|_| JwtError::Jwks(format!("key {kid}: n is not base64url")))?;
            let e = URL_SAFE_NO_PAD
                .decode(e)
                .map_err(|_| JwtError::Jwks(format!("key {kid}: e is not base64url")))?;
            keys.push(Jwk {
                kid,
                n,
                e,
                json: k.to_string(),
            });
        }
        if keys.is_empty() {
            return Err(JwtError::Jwks("no RSA keys".into()));
        }
        Ok(Jwks { keys })
    }

    pub fn find(&self, kid: &str) -> Option<&Jwk> {
        self.keys.iter().find(|k| k.kid == kid)
    }
}

/// RS256 (RSASSA-PKCS1-v1_5 with SHA-256) verification.
pub trait SignatureVerifier {
    fn verify_rs256(&self, key: &Jwk, signing_input: &[u8], signature: &[u8]) -> bool;
}

/// Host implementation with the `rsa` crate.
#[cfg(feature = "rsa-verify")]
pub struct RsaVerifier;

#[cfg(feature = "rsa-verify")]
impl SignatureVerifier for RsaVerifier {
    fn verify_rs256(&self, key: &Jwk, signing_input: &[u8], signature: &[u8]) -> bool {
        use rsa::signature::Verifier;
        let n = rsa::BigUint::from_bytes_be(&key.n);
        let e = rsa::BigUint::from_bytes_be(&key.e);
        let Ok(pk) = rsa::RsaPublicKey::new(n, e) else {
            return false;
        };
        let vk = rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(pk);
        let Ok(sig) = rsa::pkcs1v15::Signature::try_from(signature) else {
            return false;
        };
        vk.verify(signing_input, &sig).is_ok()
    }
}
