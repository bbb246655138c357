//! Non-secret digests of secret values, to know which ones changed.
//!
//! HMAC-SHA256 keyed by a key derived from the age identity: without the
//! identity nobody can test guesses of a (possibly low-entropy) value against
//! a stored digest.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::secret::SecretString;

/// The digest key.
#[derive(Clone)]
pub struct DigestKey([u8; 32]);

impl DigestKey {
    /// Derives the key from the identity's secret string.
    pub fn derive(identity_secret: &SecretString) -> Self {
        let mut h = Sha256::new();
        h.update(b"shopedge/secret-digest/v1\0");
        h.update(identity_secret.expose().as_bytes());
        DigestKey(h.finalize().into())
    }

    /// The digest of one named value (hex).
    pub fn digest(&self, name: &str, value: &SecretString) -> String {
        let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(&self.0) {
            Ok(m) => m,
            // HMAC accepts keys of any length; unreachable in practice.
            Err(_) => return String::new(),
        };
        mac.update(name.as_bytes());
        mac.update(&[0]);
        mac.update(value.expose().as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_depends_on_key_name_and_value() {
        let k1 = DigestKey::derive(&SecretString::new("id-one"));
        let k2 = DigestKey::derive(&SecretString::new("id-two"));
        let v = SecretString::new("value");
        let d = k1.digest("A", &v);
        assert_eq!(d.len(), 64);
        assert_eq!(d, k1.digest("A", &v));
        assert_ne!(d, k2.digest("A", &v));
        assert_ne!(d, k1.digest("B", &v));
        assert_ne!(d, k1.digest("A", &SecretString::new("value2")));
        assert!(!d.contains("value"));
    }
}
