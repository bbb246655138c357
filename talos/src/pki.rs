//! Keys and certificates: Ed25519 (Talos OS CA, Talos API clients) and ECDSA P-256
//! (Kubernetes, aggregator and etcd CAs, service-account key) from a caller-supplied
//! RNG, so a fixed seed gives byte-identical output. Signing goes through rcgen's
//! remote-key interface with deterministic signatures (Ed25519, RFC 6979 ECDSA).

use crate::error::{Result, TalosError};
use ed25519_dalek::pkcs8::EncodePrivateKey as _;
use p256::ecdsa::signature::Signer as _;
use rand::{CryptoRng, RngCore};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, RemoteKeyPair, SanType, SerialNumber, SignatureAlgorithm,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use zeroize::Zeroizing;

/// PEM label Talos uses for Ed25519 private keys (PKCS#8 body).
const ED25519_LABEL: &str = "ED25519 PRIVATE KEY";

/// Key algorithm of a generated key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlg {
    Ed25519,
    EcdsaP256,
}

/// A private key (secret material; never printed).
pub struct PrivKey {
    alg: KeyAlg,
    secret: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for PrivKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PrivKey({:?}, <redacted>)", self.alg)
    }
}

fn bad_key(what: &str, detail: impl ToString) -> TalosError {
    TalosError::BadKey {
        what: what.to_string(),
        detail: detail.to_string(),
        hint: "talos-secrets.age".into(),
    }
}

impl PrivKey {
    /// Generates a fresh key from `rng`.
    pub fn generate<R: RngCore + CryptoRng>(alg: KeyAlg, rng: &mut R) -> Self {
        let secret = match alg {
            KeyAlg::Ed25519 => ed25519_dalek::SigningKey::generate(rng).to_bytes(),
            KeyAlg::EcdsaP256 => {
                let k = p256::SecretKey::random(rng);
                let mut out = [0u8; 32];
                out.copy_from_slice(&k.to_bytes());
                out
            }
        };
        PrivKey {
            alg,
            secret: Zeroizing::new(secret),
        }
    }

    pub fn alg(&self) -> KeyAlg {
        self.alg
    }

    /// PEM as Talos writes it: `ED25519 PRIVATE KEY` (PKCS#8) or `EC PRIVATE KEY` (SEC1).
    pub fn to_pem(&self) -> Result<Zeroizing<String>> {
        match self.alg {
            KeyAlg::Ed25519 => {
                let pkcs8 = self.to_pkcs8_pem()?;
                Ok(Zeroizing::new(pkcs8.replace("PRIVATE KEY", ED25519_LABEL)))
            }
            KeyAlg::EcdsaP256 => {
                let k = p256::SecretKey::from_slice(&self.secret[..])
                    .map_err(|e| bad_key("p256", e))?;
                let pem = k
                    .to_sec1_pem(p256::pkcs8::LineEnding::LF)
                    .map_err(|e| bad_key("p256", e))?;
                Ok(Zeroizing::new(pem.to_string()))
            }
        }
    }

    /// PEM with the generic PKCS#8 label `PRIVATE KEY` (what rustls/reqwest read).
    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>> {
        match self.alg {
            KeyAlg::Ed25519 => {
                let k = ed25519_dalek::SigningKey::from_bytes(&self.secret);
                let pem = k
                    .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
                    .map_err(|e| bad_key("ed25519", e))?;
                Ok(Zeroizing::new(pem.to_string()))
            }
            KeyAlg::EcdsaP256 => {
                use p256::pkcs8::EncodePrivateKey as _;
                let k = p256::SecretKey::from_slice(&self.secret[..])
                    .map_err(|e| bad_key("p256", e))?;
                let pem = k
                    .to_pkcs8_pem(p256::pkcs8::LineEnding::LF)
                    .map_err(|e| bad_key("p256", e))?;
                Ok(Zeroizing::new(pem.to_string()))
            }
        }
    }

    /// Parses any PEM this module writes (and plain PKCS#8).
    pub fn from_pem(pem: &str) -> Result<Self> {
        if pem.contains(ED25519_LABEL) || pem.contains("BEGIN PRIVATE KEY") {
            let generic = Zeroizing::new(pem.replace(ED25519_LABEL, "PRIVATE KEY"));
            if let Ok(k) = ed25519_dalek::SigningKey::from_pkcs8_pem(&generic) {
                return Ok(PrivKey {
                    alg: KeyAlg::Ed25519,
                    secret: Zeroizing::new(k.to_bytes()),
                });
            }
            use p256::pkcs8::DecodePrivateKey as _;
            let k =
                p256::SecretKey::from_pkcs8_pem(&generic).map_err(|e| bad_key("private key", e))?;
            let mut out = [0u8; 32];
            out.copy_from_slice(&k.to_bytes());
            return Ok(PrivKey {
                alg: KeyAlg::EcdsaP256,
                secret: Zeroizing::new(out),
            });
        }
        if pem.contains("EC PRIVATE KEY") {
            let k =
                p256::SecretKey::from_sec1_pem(pem).map_err(|e| bad_key("EC private key", e))?;
            let mut out = [0u8; 32];
            out.copy_from_slice(&k.to_bytes());
            return Ok(PrivKey {
                alg: KeyAlg::EcdsaP256,
                secret: Zeroizing::new(out),
            });
        }
        Err(bad_key("private key", "unknown PEM type"))
    }

    /// The public key in PEM (SubjectPublicKeyInfo).
    pub fn public_pem(&self) -> Result<String> {
        let kp = self.key_pair()?;
        Ok(kp.public_key_pem())
    }

    /// An rcgen key pair that signs deterministically with this key.
    pub fn key_pair(&self) -> Result<KeyPair> {
        let remote: Box<dyn RemoteKeyPair + Send + Sync> = match self.alg {
            KeyAlg::Ed25519 => {
                let sk = ed25519_dalek::SigningKey::from_bytes(&self.secret);
                let public = sk.verifying_key().to_bytes().to_vec();
                Box::new(Ed25519Remote { sk, public })
            }
            KeyAlg::EcdsaP256 => {
                let sk = p256::ecdsa::SigningKey::from_slice(&self.secret[..])
                    .map_err(|e| bad_key("p256", e))?;
                let public = sk
                    .verifying_key()
                    .to_encoded_point(false)
                    .as_bytes()
                    .to_vec();
                Box::new(P256Remote { sk, public })
            }
        };
        KeyPair::from_remote(remote).map_err(|source| TalosError::Pki {
            what: "key pair".into(),
            source,
        })
    }
}

struct Ed25519Remote {
    sk: ed25519_dalek::SigningKey,
    public: Vec<u8>,
}

impl RemoteKeyPair for Ed25519Remote {
    fn public_key(&self) -> &[u8] {
        &self.public
    }
    fn sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, rcgen::Error> {
        Ok(self.sk.sign(msg).to_bytes().to_vec())
    }
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &rcgen::PKCS_ED25519
    }
}

struct P256Remote {
    sk: p256::ecdsa::SigningKey,
    public: Vec<u8>,
}

impl RemoteKeyPair for P256Remote {
    fn public_key(&self) -> &[u8] {
        &self.public
    }
    fn sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, rcgen::Error> {
        // RFC 6979 deterministic ECDSA over SHA-256.
        let sig: p256::ecdsa::Signature = self.sk.sign(msg);
        Ok(sig.to_der().as_bytes().to_vec())
    }
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

/// A PEM certificate and its PEM private key.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CertKey {
    pub crt: String,
    pub key: String,
}

impl std::fmt::Debug for CertKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertKey")
            .field("crt", &self.crt)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// The cluster's certificate authorities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaKind {
    /// Talos API / OS CA (Ed25519, like Talos).
    Os,
    /// Kubernetes CA.
    Kubernetes,
    /// Front-proxy (aggregation layer) CA.
    Aggregator,
    /// etcd CA.
    Etcd,
}

impl CaKind {
    pub fn alg(self) -> KeyAlg {
        match self {
            CaKind::Os => KeyAlg::Ed25519,
            _ => KeyAlg::EcdsaP256,
        }
    }

    fn dn(self) -> DistinguishedName {
        let mut dn = DistinguishedName::new();
        match self {
            CaKind::Os => dn.push(DnType::OrganizationName, "talos"),
            CaKind::Kubernetes => dn.push(DnType::OrganizationName, "kubernetes"),
            CaKind::Aggregator => dn.push(DnType::CommonName, "front-proxy"),
            CaKind::Etcd => dn.push(DnType::OrganizationName, "etcd"),
        }
        dn
    }
}

fn serial<R: RngCore>(rng: &mut R) -> SerialNumber {
    let mut b = [0u8; 16];
    rng.fill_bytes(&mut b);
    b[0] &= 0x7f; // positive
    b[0] |= 0x01; // no leading zero byte
    SerialNumber::from_slice(&b)
}

fn pki_err(what: &str) -> impl FnOnce(rcgen::Error) -> TalosError + '_ {
    move |source| TalosError::Pki {
        what: what.to_string(),
        source,
    }
}

/// Creates a self-signed CA valid for `years` from `now`.
pub fn new_ca<R: RngCore + CryptoRng>(
    kind: CaKind,
    rng: &mut R,
    now: OffsetDateTime,
    years: i64,
) -> Result<CertKey> {
    let key = PrivKey::generate(kind.alg(), rng);
    let kp = key.key_pair()?;
    let mut p = CertificateParams::default();
    p.distinguished_name = kind.dn();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ];
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    p.not_before = now - time::Duration::minutes(5);
    p.not_after = now + time::Duration::days(365 * years);
    p.serial_number = Some(serial(rng));
    let cert = p.self_signed(&kp).map_err(pki_err("self-signed CA"))?;
    Ok(CertKey {
        crt: cert.pem(),
        key: key.to_pem()?.to_string(),
    })
}

/// What a leaf certificate is for.
#[derive(Debug, Clone)]
pub struct LeafSpec {
    pub common_name: String,
    pub organizations: Vec<String>,
    /// DNS names or IP addresses.
    pub sans: Vec<String>,
    pub server_auth: bool,
    pub client_auth: bool,
    pub alg: KeyAlg,
    pub validity: time::Duration,
}

/// Issues a leaf certificate (new key) signed by `ca` of kind `kind`.
pub fn issue_leaf<R: RngCore + CryptoRng>(
    kind: CaKind,
    ca: &CertKey,
    spec: &LeafSpec,
    rng: &mut R,
    now: OffsetDateTime,
) -> Result<CertKey> {
    // Rebuild the issuer: same DN and key as the stored CA, so subject/issuer
    // names and key identifiers match the CA certificate the nodes trust.
    let ca_key = PrivKey::from_pem(&ca.key)?;
    if ca_key.alg() != kind.alg() {
        return Err(bad_key(
            "CA key",
            format!("{kind:?} CA key has the wrong algorithm"),
        ));
    }
    let ca_kp = ca_key.key_pair()?;
    let mut ip = CertificateParams::default();
    ip.distinguished_name = kind.dn();
    ip.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let issuer = ip.self_signed(&ca_kp).map_err(pki_err("CA issuer"))?;

    let key = PrivKey::generate(spec.alg, rng);
    let kp = key.key_pair()?;
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    for o in &spec.organizations {
        dn.push(DnType::OrganizationName, o.as_str());
    }
    dn.push(DnType::CommonName, spec.common_name.as_str());
    p.distinguished_name = dn;
    p.subject_alt_names = spec
        .sans
        .iter()
        .map(|s| match s.parse::<std::net::IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => s
                .clone()
                .try_into()
                .map(SanType::DnsName)
                .map_err(pki_err("SAN")),
        })
        .collect::<Result<Vec<_>>>()?;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    if spec.alg == KeyAlg::EcdsaP256 {
        p.key_usages.push(KeyUsagePurpose::KeyEncipherment);
    }
    if spec.server_auth {
        p.extended_key_usages
            .push(ExtendedKeyUsagePurpose::ServerAuth);
    }
    if spec.client_auth {
        p.extended_key_usages
            .push(ExtendedKeyUsagePurpose::ClientAuth);
    }
    p.use_authority_key_identifier_extension = true;
    p.not_before = now - time::Duration::minutes(5);
    p.not_after = now + spec.validity;
    p.serial_number = Some(serial(rng));
    let cert = p
        .signed_by(&kp, &issuer, &ca_kp)
        .map_err(pki_err("leaf certificate"))?;
    Ok(CertKey {
        crt: cert.pem(),
        key: key.to_pem()?.to_string(),
    })
}
