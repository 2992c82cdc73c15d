//! The immutable snapshot a refresher publishes and the request path reads.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;

use crate::sigv4::Credentials;

/// What a source holds right now. Replaced whole by the refresher, never mutated.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    /// The last good credentials, kept after failed refreshes until they expire.
    pub(crate) credentials: Option<Arc<Credentials>>,
    /// When `credentials` stop being valid; `None` for long-term keys.
    pub(crate) expires_at: Option<SystemTime>,
    /// Why the most recent fetch failed, if it did (never contains secrets).
    pub(crate) last_error: Option<String>,
}

/// The shared cell between one refresher and every reader of its source.
#[derive(Debug)]
pub(crate) struct SnapshotCell {
    pub(crate) name: String,
    pub(crate) kind: &'static str,
    snapshot: ArcSwap<Snapshot>,
    refresh_failures: AtomicU64,
}

impl SnapshotCell {
    pub(crate) fn new(name: String, kind: &'static str) -> Self {
        Self {
            name,
            kind,
            snapshot: ArcSwap::from_pointee(Snapshot::default()),
            refresh_failures: AtomicU64::new(0),
        }
    }

    /// A cell that holds `credentials` (valid until `expires_at`) and that
    /// no refresher ever replaces.
    pub(crate) fn holding(
        name: String,
        kind: &'static str,
        credentials: Arc<Credentials>,
        expires_at: Option<SystemTime>,
    ) -> Self {
        Self {
            name,
            kind,
            snapshot: ArcSwap::from_pointee(Snapshot {
                credentials: Some(credentials),
                expires_at,
                last_error: None,
            }),
            refresh_failures: AtomicU64::new(0),
        }
    }

    pub(crate) fn load(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// Publishes freshly fetched credentials and clears the last error.
    pub(crate) fn publish(&self, credentials: Credentials, expires_at: Option<SystemTime>) {
        self.snapshot.store(Arc::new(Snapshot {
            credentials: Some(Arc::new(credentials)),
            expires_at,
            last_error: None,
        }));
    }

    /// Records a failed fetch, keeping the last good credentials.
    pub(crate) fn record_failure(&self, reason: String) {
        self.refresh_failures.fetch_add(1, Ordering::Relaxed);
        let old = self.snapshot.load();
        self.snapshot.store(Arc::new(Snapshot {
            credentials: old.credentials.clone(),
            expires_at: old.expires_at,
            last_error: Some(reason),
        }));
    }

    pub(crate) fn refresh_failures(&self) -> u64 {
        self.refresh_failures.load(Ordering::Relaxed)
    }
}

/// The first 4 and last 4 characters of an access key id, e.g. `ASIA…MPLE`.
pub fn access_key_hint(access_key_id: &str) -> String {
    let chars: Vec<char> = access_key_id.chars().collect();
    if chars.len() <= 8 {
        return "…".repeat(usize::from(!chars.is_empty()));
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}…{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_hint_shows_only_first_and_last_four() {
        assert_eq!(access_key_hint("ASIAIOSFODNN7EXAMPLE"), "ASIA…MPLE");
        assert_eq!(access_key_hint("SHORT"), "…");
        assert_eq!(access_key_hint(""), "");
    }

    #[test]
    fn failure_keeps_last_good_credentials_and_counts() {
        let cell = SnapshotCell::new("s".into(), "imds");
        cell.publish(
            Credentials {
                access_key_id: "ASIAIOSFODNN7EXAMPLE".into(),
                secret_access_key: "secret".into(),
                session_token: None,
            },
            None,
        );
        cell.record_failure("IMDS returned 500".into());
        cell.record_failure("IMDS returned 500".into());
        let snap = cell.load();
        assert_eq!(
            snap.credentials.as_ref().map(|c| c.access_key_id.as_str()),
            Some("ASIAIOSFODNN7EXAMPLE")
        );
        assert_eq!(snap.last_error.as_deref(), Some("IMDS returned 500"));
        assert_eq!(cell.refresh_failures(), 2);
    }
}
