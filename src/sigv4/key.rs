//! Signing-key derivation and the per-(key id, date, region, service) cache.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::encoding::hex32;
use super::Credentials;

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail here.
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable_hmac(),
    };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

#[cold]
fn unreachable_hmac() -> ! {
    unreachable!("HMAC-SHA256 accepts keys of any length")
}

/// A derived SigV4 signing key, held as a pre-keyed HMAC-SHA256 state so
/// each signature clones the state instead of re-keying.
///
/// Its `Debug` output never shows key material.
#[derive(Clone)]
pub struct SigningKey {
    mac: HmacSha256,
}

impl SigningKey {
    /// Runs the four-step derivation:
    /// `HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")`.
    ///
    /// `date` is `YYYYMMDD` (see [`AmzDate::date`](super::AmzDate::date)).
    pub fn derive(secret_access_key: &str, date: &str, region: &str, service: &str) -> Self {
        let mut seed = Vec::with_capacity(4 + secret_access_key.len());
        seed.extend_from_slice(b"AWS4");
        seed.extend_from_slice(secret_access_key.as_bytes());
        let k_date = hmac(&seed, date.as_bytes());
        seed.iter_mut().for_each(|b| *b = 0);
        let k_region = hmac(&k_date, region.as_bytes());
        let k_service = hmac(&k_region, service.as_bytes());
        let k_signing = hmac(&k_service, b"aws4_request");
        Self::from_bytes(&k_signing)
    }

    /// Wraps already-derived key bytes (`kSigning`).
    pub fn from_bytes(key: &[u8; 32]) -> Self {
        let mac = match HmacSha256::new_from_slice(key) {
            Ok(mac) => mac,
            Err(_) => unreachable_hmac(),
        };
        Self { mac }
    }

    /// A fresh HMAC state keyed with this signing key.
    #[inline]
    pub(crate) fn mac(&self) -> HmacSha256 {
        self.mac.clone()
    }

    /// HMAC-SHA256 of `data` under this key, as 64 lower-case hex digits.
    pub fn sign(&self, data: &[u8]) -> Signature {
        let mut mac = self.mac();
        mac.update(data);
        Signature::from_digest(&mac.finalize().into_bytes())
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

/// A SigV4 signature: 64 lower-case hex digits, kept on the stack.
///
/// `Debug` redacts it; use [`Signature::as_str`] where it is meant to be seen.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature {
    hex: [u8; 64],
}

impl Signature {
    pub(crate) fn from_digest(digest: &[u8]) -> Self {
        Self { hex: hex32(digest) }
    }

    /// The hex digits.
    pub fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever stored.
        std::str::from_utf8(&self.hex).unwrap_or_default()
    }

    /// Parses 64 hex digits (case-insensitive; stored lower-case).
    pub fn parse(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        if b.len() != 64 || !b.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        let mut hex = [0u8; 64];
        for (o, i) in hex.iter_mut().zip(b) {
            *o = i.to_ascii_lowercase();
        }
        Some(Self { hex })
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Signature(<redacted>)")
    }
}

struct CacheEntry {
    access_key_id: Box<str>,
    /// Held only to notice a changed secret under the same key id; never printed.
    secret: Box<[u8]>,
    date: [u8; 8],
    region: Box<str>,
    service: Box<str>,
    key: SigningKey,
    stamp: u64,
}

impl CacheEntry {
    fn matches(&self, creds: &Credentials, date: &[u8], region: &str, service: &str) -> bool {
        &self.date[..] == date
            && *self.access_key_id == *creds.access_key_id
            && *self.region == *region
            && *self.service == *service
            && *self.secret == *creds.secret_access_key.as_bytes()
    }
}

/// Thread-safe, bounded cache of derived signing keys, keyed by
/// (access key id, date, region, service).
///
/// A steady stream of requests with the same credentials derives the key
/// once per day and scope. When full, the least recently inserted entry is
/// evicted. Lookups take a shared lock and do not allocate.
///
/// ```
/// use signet::sigv4::{Credentials, SigningKeyCache};
/// let cache = SigningKeyCache::new(16);
/// let creds = Credentials {
///     access_key_id: "AKIDEXAMPLE".into(),
///     secret_access_key: "secret".into(),
///     session_token: None,
/// };
/// let a = cache.get_or_derive(&creds, "20150830", "us-east-1", "s3");
/// let b = cache.get_or_derive(&creds, "20150830", "us-east-1", "s3");
/// assert_eq!(a.sign(b"x"), b.sign(b"x"));
/// assert_eq!(cache.len(), 1);
/// ```
pub struct SigningKeyCache {
    capacity: usize,
    derivations: AtomicU64,
    entries: RwLock<(Vec<CacheEntry>, u64)>,
}

impl SigningKeyCache {
    /// Default number of cached keys.
    pub const DEFAULT_CAPACITY: usize = 64;

    /// A cache holding at most `capacity` keys (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            derivations: AtomicU64::new(0),
            entries: RwLock::new((Vec::new(), 0)),
        }
    }

    /// The key for this scope, derived on a miss.
    ///
    /// `date` is `YYYYMMDD`.
    pub fn get_or_derive(
        &self,
        creds: &Credentials,
        date: &str,
        region: &str,
        service: &str,
    ) -> SigningKey {
        let date_bytes = date.as_bytes();
        {
            let guard = match self.entries.read() {
                Ok(g) => g,
                Err(poisoned) => poisoned.into_inner(),
            };
            if let Some(e) = guard
                .0
                .iter()
                .find(|e| e.matches(creds, date_bytes, region, service))
            {
                return e.key.clone();
            }
        }
        let key = SigningKey::derive(&creds.secret_access_key, date, region, service);
        self.derivations.fetch_add(1, Ordering::Relaxed);
        if date_bytes.len() != 8 {
            // Not a real scope date; do not let it occupy the cache.
            return key;
        }
        let mut guard = match self.entries.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let (entries, clock) = &mut *guard;
        *clock += 1;
        let stamp = *clock;
        // Replace an entry for the same key id and scope (new day or new secret).
        if let Some(pos) = entries.iter().position(|e| {
            *e.access_key_id == *creds.access_key_id
                && *e.region == *region
                && *e.service == *service
        }) {
            entries.swap_remove(pos);
        }
        if entries.len() >= self.capacity {
            if let Some(oldest) = entries
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.stamp)
                .map(|(i, _)| i)
            {
                entries.swap_remove(oldest);
            }
        }
        let mut d = [0u8; 8];
        d.copy_from_slice(date_bytes);
        entries.push(CacheEntry {
            access_key_id: creds.access_key_id.as_str().into(),
            secret: creds.secret_access_key.as_bytes().into(),
            date: d,
            region: region.into(),
            service: service.into(),
            key: key.clone(),
            stamp,
        });
        key
    }

    /// Number of cached keys.
    pub fn len(&self) -> usize {
        match self.entries.read() {
            Ok(g) => g.0.len(),
            Err(poisoned) => poisoned.into_inner().0.len(),
        }
    }

    /// How many keys this cache has derived (its misses) since creation.
    pub fn derivations(&self) -> u64 {
        self.derivations.load(Ordering::Relaxed)
    }

    /// True when no key is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for SigningKeyCache {
    fn default() -> Self {
        Self::new(Self::DEFAULT_CAPACITY)
    }
}

impl fmt::Debug for SigningKeyCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKeyCache")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .field("derivations", &self.derivations())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(id: &str, secret: &str) -> Credentials {
        Credentials {
            access_key_id: id.into(),
            secret_access_key: secret.into(),
            session_token: None,
        }
    }

    #[test]
    fn derives_the_documented_example_key() {
        // AWS documentation example: secret wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY,
        // 20120215 / us-east-1 / iam.
        let expected = "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d";
        let mut raw = [0u8; 32];
        hex::decode_to_slice(expected, &mut raw).unwrap();
        let derived = SigningKey::derive(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20120215",
            "us-east-1",
            "iam",
        );
        assert_eq!(
            derived.sign(b"abc"),
            SigningKey::from_bytes(&raw).sign(b"abc")
        );
    }

    #[test]
    fn caches_one_key_per_scope_and_rederives_on_new_day() {
        let cache = SigningKeyCache::new(8);
        let c = creds("AKID", "secret");
        let k1 = cache.get_or_derive(&c, "20150830", "us-east-1", "s3");
        for _ in 0..1000 {
            cache.get_or_derive(&c, "20150830", "us-east-1", "s3");
        }
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.derivations(), 1, "one derivation per day and scope");
        let k2 = cache.get_or_derive(&c, "20150831", "us-east-1", "s3");
        assert_eq!(cache.len(), 1, "the previous day's key is replaced");
        assert_eq!(cache.derivations(), 2);
        assert_ne!(k1.sign(b"x"), k2.sign(b"x"));
        cache.get_or_derive(&c, "20150831", "eu-west-1", "s3");
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn notices_a_changed_secret_under_the_same_key_id() {
        let cache = SigningKeyCache::new(8);
        let a = cache.get_or_derive(&creds("AKID", "one"), "20150830", "r", "s");
        let b = cache.get_or_derive(&creds("AKID", "two"), "20150830", "r", "s");
        assert_ne!(a.sign(b"x"), b.sign(b"x"));
        assert_eq!(
            b.sign(b"x"),
            SigningKey::derive("two", "20150830", "r", "s").sign(b"x")
        );
    }

    #[test]
    fn stays_within_capacity() {
        let cache = SigningKeyCache::new(3);
        for i in 0..10 {
            cache.get_or_derive(&creds(&format!("AKID{i}"), "s"), "20150830", "r", "s");
        }
        assert_eq!(cache.len(), 3);
    }

    #[test]
    fn debug_output_never_shows_key_material() {
        let cache = SigningKeyCache::new(3);
        let k = cache.get_or_derive(&creds("AKID", "topsecret"), "20150830", "r", "s");
        let sig = k.sign(b"x");
        for text in [format!("{k:?}"), format!("{cache:?}"), format!("{sig:?}")] {
            assert!(!text.contains("topsecret"));
            assert!(!text.contains(sig.as_str()));
        }
    }

    #[test]
    fn is_shared_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<SigningKeyCache>();
        assert_send_sync::<SigningKey>();
        let cache = std::sync::Arc::new(SigningKeyCache::new(4));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let cache = cache.clone();
                std::thread::spawn(move || {
                    let c = creds("AKID", "s");
                    (0..100)
                        .map(|_| cache.get_or_derive(&c, "20150830", "r", "s").sign(b"x"))
                        .next_back()
                })
            })
            .collect();
        let sigs: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert!(sigs.windows(2).all(|w| w[0] == w[1]));
        assert_eq!(cache.len(), 1);
    }
}
