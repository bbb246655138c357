//! Cloudflare Access JWT: claims checks, JWKS parsing and RS256 signatures
//! with real keys (throwaway test keys in tests/fixtures).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use edge_waf::access_jwt::{validate_claims, Jwks, JwtError, RsaVerifier};
use edge_waf::AccessJwtConfig;
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{SignatureEncoding, Signer};
use rsa::traits::PublicKeyParts;
use rsa::RsaPrivateKey;

const NOW: i64 = 1_800_000_000;

fn key(n: u8) -> RsaPrivateKey {
    let pem = std::fs::read_to_string(format!(
        "{}/tests/fixtures/test-access-key-{n}.pem",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    RsaPrivateKey::from_pkcs8_pem(&pem).unwrap()
}

fn cfg() -> AccessJwtConfig {
    AccessJwtConfig {
        issuer: "https://shopedge.cloudflareaccess.com".into(),
        audience: vec!["aud-tag-123".into()],
        leeway_secs: 30,
        certs_url: None,
    }
}

fn sign(k: &RsaPrivateKey, kid: &str, claims: serde_json::Value) -> String {
    let header = serde_json::json!({"alg": "RS256", "kid": kid, "typ": "JWT"});
    let h = URL_SAFE_NO_PAD.encode(header.to_string());
    let p = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(k.clone());
    let sig = signer.sign(format!("{h}.{p}").as_bytes()).to_vec();
    format!("{h}.{p}.{}", URL_SAFE_NO_PAD.encode(sig))
}

fn jwks(keys: &[(&str, &RsaPrivateKey)]) -> Jwks {
    let keys: Vec<_> = keys
        .iter()
        .map(|(kid, k)| {
            let pk = k.to_public_key();
            serde_json::json!({"kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid,
                "n": URL_SAFE_NO_PAD.encode(pk.n().to_bytes_be()), "e": URL_SAFE_NO_PAD.encode(pk.e().to_bytes_be())})
        })
        .collect();
    let doc = serde_json::json!({"keys": keys, "public_cert": {"kid": "x", "cert": "..."}});
    Jwks::parse(doc.to_string().as_bytes()).unwrap()
}

fn claims(aud: serde_json::Value, exp: i64) -> serde_json::Value {
    serde_json::json!({"aud": aud, "iss": "https://shopedge.cloudflareaccess.com", "exp": exp, "nbf": NOW - 10, "iat": NOW - 10, "sub": "user-1", "email": "ops@example.com"})
}

#[test]
fn good_token_verifies() {
    let k1 = key(1);
    let set = jwks(&[("k1", &k1)]);
    let tok = sign(
        &k1,
        "k1",
        claims(serde_json::json!(["aud-tag-123"]), NOW + 600),
    );
    let c = validate_claims(&tok, &cfg(), NOW)
        .unwrap()
        .verify(&set, &RsaVerifier)
        .unwrap();
    assert_eq!(c.email.as_deref(), Some("ops@example.com"));
    // audience as a single string works too
    let tok = sign(
        &k1,
        "k1",
        claims(serde_json::json!("aud-tag-123"), NOW + 600),
    );
    assert!(validate_claims(&tok, &cfg(), NOW)
        .unwrap()
        .verify(&set, &RsaVerifier)
        .is_ok());
}

#[test]
fn expired_token_is_rejected() {
    let k1 = key(1);
    let tok = sign(
        &k1,
        "k1",
        claims(serde_json::json!(["aud-tag-123"]), NOW - 120),
    );
    assert_eq!(
        validate_claims(&tok, &cfg(), NOW).unwrap_err(),
        JwtError::Expired
    );
    // within the leeway it passes
    let tok = sign(
        &k1,
        "k1",
        claims(serde_json::json!(["aud-tag-123"]), NOW - 10),
    );
    assert!(validate_claims(&tok, &cfg(), NOW).is_ok());
    // not yet valid
    let mut c = claims(serde_json::json!(["aud-tag-123"]), NOW + 600);
    c["nbf"] = serde_json::json!(NOW + 300);
    assert_eq!(
        validate_claims(&sign(&k1, "k1", c), &cfg(), NOW).unwrap_err(),
        JwtError::NotYetValid
    );
}

#[test]
fn wrong_audience_and_issuer_are_rejected() {
    let k1 = key(1);
    let tok = sign(
        &k1,
        "k1",
        claims(serde_json::json!(["other-app"]), NOW + 600),
    );
    assert_eq!(
        validate_claims(&tok, &cfg(), NOW).unwrap_err(),
        JwtError::Audience
    );
    let mut c = claims(serde_json::json!(["aud-tag-123"]), NOW + 600);
    c["iss"] = serde_json::json!("https://evil.cloudflareaccess.com");
    assert!(matches!(
        validate_claims(&sign(&k1, "k1", c), &cfg(), NOW).unwrap_err(),
        JwtError::Issuer(_)
    ));
}

#[test]
fn wrong_key_and_tampering_are_rejected() {
    let k1 = key(1);
    let k2 = key(2);
    let set = jwks(&[("k1", &k1)]);
    // signed by another key under the published kid
    let tok = sign(
        &k2,
        "k1",
        claims(serde_json::json!(["aud-tag-123"]), NOW + 600),
    );
    assert_eq!(
        validate_claims(&tok, &cfg(), NOW)
            .unwrap()
            .verify(&set, &RsaVerifier)
            .unwrap_err(),
        JwtError::BadSignature
    );
    // unknown kid
    let tok = sign(
        &k2,
        "k2",
        claims(serde_json::json!(["aud-tag-123"]), NOW + 600),
    );
    assert_eq!(
        validate_claims(&tok, &cfg(), NOW)
            .unwrap()
            .verify(&set, &RsaVerifier)
            .unwrap_err(),
        JwtError::UnknownKey("k2".into())
    );
    // tampered payload with the original signature
    let tok = sign(
        &k1,
        "k1",
        claims(serde_json::json!(["aud-tag-123"]), NOW + 600),
    );
    let parts: Vec<&str> = tok.split('.').collect();
    let mut c = claims(serde_json::json!(["aud-tag-123"]), NOW + 600);
    c["email"] = serde_json::json!("attacker@example.com");
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(c.to_string()),
        parts[2]
    );
    assert_eq!(
        validate_claims(&forged, &cfg(), NOW)
            .unwrap()
            .verify(&set, &RsaVerifier)
            .unwrap_err(),
        JwtError::BadSignature
    );
    // key rotation: a set with both keys accepts k2 under its own kid
    let both = jwks(&[("k1", &k1), ("k2", &k2)]);
    let tok = sign(
        &k2,
        "k2",
        claims(serde_json::json!(["aud-tag-123"]), NOW + 600),
    );
    assert!(validate_claims(&tok, &cfg(), NOW)
        .unwrap()
        .verify(&both, &RsaVerifier)
        .is_ok());
}

#[test]
fn malformed_tokens_and_jwks() {
    assert_eq!(
        validate_claims("abc", &cfg(), NOW).unwrap_err(),
        JwtError::Malformed
    );
    assert_eq!(
        validate_claims("a.b.c.d", &cfg(), NOW).unwrap_err(),
        JwtError::Malformed
    );
    assert!(matches!(
        validate_claims("!!.??.**", &cfg(), NOW).unwrap_err(),
        JwtError::Decode(_)
    ));
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
        URL_SAFE_NO_PAD.encode("{}")
    );
    assert_eq!(
        validate_claims(&none, &cfg(), NOW).unwrap_err(),
        JwtError::Algorithm("none".into())
    );
    let hs = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256"}"#),
        URL_SAFE_NO_PAD.encode("{}")
    );
    assert_eq!(
        validate_claims(&hs, &cfg(), NOW).unwrap_err(),
        JwtError::Algorithm("HS256".into())
    );
    assert!(Jwks::parse(b"{}").is_err());
    assert!(Jwks::parse(br#"{"keys":[]}"#).is_err());
    assert!(Jwks::parse(br#"{"keys":[{"kty":"RSA","kid":"a","n":"***","e":"AQAB"}]}"#).is_err());
    assert_eq!(
        cfg().certs_url(),
        "https://shopedge.cloudflareaccess.com/cdn-cgi/access/certs"
    );
}
