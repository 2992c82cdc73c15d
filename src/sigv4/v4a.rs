//! SigV4a keys: the ECDSA P-256 key derived from an access key pair, its
//! cache, and the signature over a string to sign.
//!
//! Unlike SigV4's key, the SigV4a key depends on the access key pair only
//! (not on date, region or service), so one derivation serves a credential
//! for its whole life.

use std::fmt;
use std::sync::RwLock;

use hmac::{Hmac, Mac};
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature as EcdsaSignature, SigningKey as P256Key};
use sha2::Sha256;

use super::{Credentials, SigningError};

/// `AWS4-ECDSA-P256-SHA256`, the KDF's label.
const LABEL: &[u8] = b"AWS4-ECDSA-P256-SHA256";

/// The order of P-256 minus two, big-endian: a derived candidate must not
/// exceed it.
const ORDER_MINUS_TWO: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x4f,
];

/// A SigV4a signing key (an ECDSA P-256 private key). Its `Debug` output
/// never shows key material.
#[derive(Clone)]
pub struct EcdsaKey {
    key: P256Key,
}

impl EcdsaKey {
    /// Derives the key of `access_key_id` / `secret_access_key` as SigV4a
    /// defines it: NIST SP 800-108 counter-mode KDF with HMAC-SHA256, keyed
    /// by `"AWS4A" + secret`, over the label `AWS4-ECDSA-P256-SHA256` and the
    /// context `access_key_id || counter`; the first candidate `c <= n - 2`
    /// gives the private scalar `c + 1`.
    pub fn derive(access_key_id: &str, secret_access_key: &str) -> Result<Self, SigningError> {
        let mut input_key = Vec::with_capacity(5 + secret_access_key.len());
        input_key.extend_from_slice(b"AWS4A");
        input_key.extend_from_slice(secret_access_key.as_bytes());
        let base = match Hmac::<Sha256>::new_from_slice(&input_key) {
            Ok(mac) => mac,
            Err(_) => return Err(SigningError::KeyDerivation),
        };
        input_key.iter_mut().for_each(|b| *b = 0);
        for counter in 1u8..=254 {
            let mut mac = base.clone();
            // i (the KDF's own counter: one 256-bit block) || label || 0x00
            // || context || L (256 bits).
            mac.update(&1u32.to_be_bytes());
            mac.update(LABEL);
            mac.update(&[0]);
            mac.update(access_key_id.as_bytes());
            mac.update(&[counter]);
            mac.update(&256u32.to_be_bytes());
            let mut candidate: [u8; 32] = mac.finalize().into_bytes().into();
            // Big-endian byte strings of equal length compare as numbers.
            if candidate <= ORDER_MINUS_TWO {
                increment(&mut candidate);
                let key = P256Key::from_bytes(&candidate.into());
                candidate.iter_mut().for_each(|b| *b = 0);
                return key
                    .map(|key| Self { key })
                    .map_err(|_| SigningError::KeyDerivation);
            }
        }
        Err(SigningError::KeyDerivation)
    }

    /// The ECDSA signature (SHA-256 digest, RFC 6979 nonce) of
    /// `string_to_sign`, DER-encoded, as lower-case hex.
    pub fn sign(&self, string_to_sign: &[u8]) -> String {
        let signature: EcdsaSignature = self.key.sign(string_to_sign);
        hex::encode(signature.to_der().as_bytes())
    }

    /// The public key's affine coordinates (big-endian), for checking a
    /// derivation against published test keys.
    pub fn public_xy(&self) -> Option<([u8; 32], [u8; 32])> {
        let point = self.key.verifying_key().to_sec1_point(false);
        let (x, y) = (point.x()?, point.y()?);
        let mut out = ([0u8; 32], [0u8; 32]);
        out.0.copy_from_slice(x);
        out.1.copy_from_slice(y);
        Some(out)
    }
}

impl fmt::Debug for EcdsaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EcdsaKey(<redacted>)")
    }
}

/// Adds one to a big-endian number that is known not to overflow.
fn increment(n: &mut [u8; 32]) {
    for byte in n.iter_mut().rev() {
        let (sum, carry) = byte.overflowing_add(1);
        *byte = sum;
        if !carry {
            return;
        }
    }
}

struct Entry {
    access_key_id: Box<str>,
    /// Held only to notice a changed secret under the same key id.
    secret: Box<[u8]>,
    key: EcdsaKey,
}

/// Bounded cache of derived SigV4a keys by access key pair. A credential
/// derives its key once; when full, the oldest entry goes.
pub struct EcdsaKeyCache {
    capacity: usize,
    entries: RwLock<Vec<Entry>>,
}

impl EcdsaKeyCache {
    /// Default number of cached keys.
    pub const DEFAULT_CAPACITY: usize = 16;

    /// A cache holding at most `capacity` keys (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            entries: RwLock::new(Vec::new()),
        }
    }

    /// The key of `creds`, derived on a miss.
    pub fn get_or_derive(&self, creds: &Credentials) -> Result<EcdsaKey, SigningError> {
        let matches = |e: &Entry| {
            *e.access_key_id == *creds.access_key_id
                && *e.secret == *creds.secret_access_key.as_bytes()
        };
        {
            let entries = match self.entries.read() {
                Ok(g) => g,
                Err(poisoned) => poisoned.into_inner(),
            };
            if let Some(e) = entries.iter().find(|e| matches(e)) {
                return Ok(e.key.clone());
            }
        }
        let key = EcdsaKey::derive(&creds.access_key_id, &creds.secret_access_key)?;
        let mut entries = match self.entries.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        // A new secret under the same key id replaces the old entry.
        entries.retain(|e| *e.access_key_id != *creds.access_key_id);
        if entries.len() >= self.capacity {
            entries.remove(0);
        }
        entries.push(Entry {
            access_key_id: creds.access_key_id.as_str().into(),
            secret: creds.secret_access_key.as_bytes().into(),
            key: key.clone(),
        });
        Ok(key)
    }

    /// Number of cached keys.
    pub fn len(&self) -> usize {
        match self.entries.read() {
            Ok(g) => g.len(),
            Err(poisoned) => poisoned.into_inner().len(),
        }
    }

    /// True when no key is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for EcdsaKeyCache {
    fn default() -> Self {
        Self::new(Self::DEFAULT_CAPACITY)
    }
}

impl fmt::Debug for EcdsaKeyCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EcdsaKeyCache")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Verifier as _;

    fn creds(id: &str, secret: &str) -> Credentials {
        Credentials {
            access_key_id: id.into(),
            secret_access_key: secret.into(),
            session_token: None,
        }
    }

    #[test]
    fn derives_the_published_key_of_the_suite_credentials() {
        // ../shared/sigv4-test-suite/v4a/*/public-key.json
        let key = EcdsaKey::derive("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
            .expect("derives");
        let (x, y) = key.public_xy().expect("affine point");
        assert_eq!(
            hex::encode(x),
            "b6618f6a65740a99e650b33b6b4b5bd0d43b176d721a3edfea7e7d2d56d936b1"
        );
        assert_eq!(
            hex::encode(y),
            "865ed22a7eadc9c5cb9d2cbaca1b3699139fedc5043dc6661864218330c8e518"
        );
    }

    #[test]
    fn signatures_verify_with_the_public_key_and_not_for_other_text() {
        let key = EcdsaKey::derive("AKID", "secret").expect("derives");
        let der = hex::decode(key.sign(b"string to sign")).expect("hex");
        let signature = EcdsaSignature::from_der(&der).expect("DER");
        let public = key.key.verifying_key();
        assert!(public.verify(b"string to sign", &signature).is_ok());
        assert!(public.verify(b"string to sigN", &signature).is_err());
    }

    #[test]
    fn increment_carries() {
        let mut n = [0u8; 32];
        n[31] = 0xff;
        n[30] = 0xff;
        increment(&mut n);
        assert_eq!(&n[29..], &[1, 0, 0]);
    }

    #[test]
    fn cache_derives_once_per_key_pair_and_notices_a_new_secret() {
        let cache = EcdsaKeyCache::new(2);
        let a = cache.get_or_derive(&creds("A", "s1")).expect("derives");
        let again = cache.get_or_derive(&creds("A", "s1")).expect("cached");
        assert_eq!(a.public_xy(), again.public_xy());
        assert_eq!(cache.len(), 1);
        let rotated = cache.get_or_derive(&creds("A", "s2")).expect("derives");
        assert_ne!(a.public_xy(), rotated.public_xy());
        assert_eq!(cache.len(), 1, "the old secret's key is replaced");
        cache.get_or_derive(&creds("B", "s")).expect("derives");
        cache.get_or_derive(&creds("C", "s")).expect("derives");
        assert_eq!(cache.len(), 2, "bounded");
    }

    #[test]
    fn debug_never_shows_key_material() {
        let key = EcdsaKey::derive("AKID", "secret").expect("derives");
        assert_eq!(format!("{key:?}"), "EcdsaKey(<redacted>)");
    }
}
