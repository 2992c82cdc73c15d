//! The S3 Express session cache: one session per (IAM identity, route,
//! bucket), reused until shortly before it expires, and created once however
//! many requests ask for it at the same time.
//!
//! A lookup ([`SessionCache::get`]) takes one lock, never held across an
//! await, and ends in one of three ways:
//! - a session with more than [`REFRESH_BEFORE`] left is used as it is;
//! - otherwise, while another request is creating the next one, a session
//!   with at least [`MIN_REMAINING`] left is still used, and a request
//!   without one waits for that creation (single flight);
//! - otherwise the request creates the session itself and the waiters get
//!   its outcome. A failure is handed to them but never cached: the next
//!   request tries again. When a refresh fails while the previous session
//!   still has [`MIN_REMAINING`] left, that session serves on.
//!
//! A session the endpoint rejects (an expired or invalid token) is forgotten
//! ([`SessionCache::forget`]), so that the next lookup creates a new one.
//!
//! The cache holds at most its capacity of entries: expired ones go first,
//! then the least recently used. An entry whose session is being created is
//! never evicted (its creator would store the session nowhere, and the next
//! request would create it again): when every entry is being created, the
//! cache holds more than its capacity until those creations end, at most one
//! entry per creation in progress plus the one being added. A creator that is
//! cancelled (its client went away) lets its waiters go, and one of them
//! creates the session instead.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use super::{Session, SessionError};
use crate::credentials::access_key_hint;

/// A session with less than this left is replaced by the next request.
pub const REFRESH_BEFORE: Duration = Duration::from_secs(60);

/// The least a cached session must have left to sign with. A session that
/// has just been created is used whatever it has left, unless it has expired.
pub const MIN_REMAINING: Duration = Duration::from_secs(10);

/// The outcome of one creation, as its waiters get it.
type Outcome = Result<Arc<Session>, SessionError>;

/// Which session: the IAM identity that creates it, the route whose headers
/// CreateSession carries (a route's `custom_headers` may ask for a ReadOnly
/// session or set encryption, so routes never share sessions), and the bucket
/// it is for.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SessionKey {
    access_key_id: Box<str>,
    route: Arc<str>,
    bucket: Arc<str>,
}

impl SessionKey {
    /// The key of the session `access_key_id` creates for `bucket` (the
    /// bucket's upstream, signed host and root path, as one string) through
    /// `route`.
    pub fn new(access_key_id: &str, route: Arc<str>, bucket: Arc<str>) -> Self {
        Self {
            access_key_id: access_key_id.into(),
            route,
            bucket,
        }
    }
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionKey")
            .field("access_key_id", &access_key_hint(&self.access_key_id))
            .field("route", &self.route)
            .field("bucket", &self.bucket)
            .finish()
    }
}

/// A creation in progress: its number, and where its outcome appears.
struct Flight {
    id: u64,
    outcome: watch::Receiver<Option<Outcome>>,
}

struct Entry {
    /// The last session created, until the next one replaces it.
    session: Option<Arc<Session>>,
    flight: Option<Flight>,
    /// When it was last asked for (a tick of the cache's clock).
    used: u64,
}

struct Entries {
    map: HashMap<SessionKey, Entry, foldhash::fast::RandomState>,
    /// Ticks once per lookup: orders entries by use, numbers flights.
    clock: u64,
}

/// Sessions by [`SessionKey`], bounded, with single-flight creation.
///
/// ```
/// # async fn demo() -> Result<(), signet::proxy::s3express::SessionError> {
/// use std::time::{Duration, SystemTime};
/// use signet::proxy::s3express::{Session, SessionCache, SessionKey};
///
/// let cache = SessionCache::new(16);
/// let bucket = "https://b--usw2-az1--x-s3.s3express-usw2-az1.us-west-2.amazonaws.com/";
/// let key = SessionKey::new("AKIDEXAMPLE", "zonal".into(), bucket.into());
/// let expires = SystemTime::now() + Duration::from_secs(300);
/// let first = cache
///     .get(&key, || async move { Session::new("ASIAEXAMPLE", "secret", "token", expires) })
///     .await?;
/// // Fresh: the second lookup does not create another.
/// let again = cache.get(&key, || async { unreachable!() }).await?;
/// assert_eq!(first.access_key_id(), again.access_key_id());
/// # Ok(()) }
/// ```
pub struct SessionCache {
    capacity: usize,
    entries: Mutex<Entries>,
}

impl fmt::Debug for SessionCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionCache")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish()
    }
}

/// What a lookup does next.
enum Step<'c> {
    Use(Arc<Session>),
    Wait(watch::Receiver<Option<Outcome>>),
    Create(FlightGuard<'c>),
}

impl SessionCache {
    /// Entries a proxy keeps: distinct (identity, route, bucket) triples in use.
    pub const DEFAULT_CAPACITY: usize = 256;

    /// A cache of at most `capacity` entries (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            entries: Mutex::new(Entries {
                map: HashMap::default(),
                clock: 0,
            }),
        }
    }

    /// Entries held now (sessions and creations in progress).
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The session for `key`: cached, or the one another request is creating,
    /// or the one `create` makes (see the module docs for which).
    pub async fn get<F, Fut>(&self, key: &SessionKey, create: F) -> Outcome
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Session, SessionError>>,
    {
        let guard = loop {
            match self.step(key) {
                Step::Use(session) => return Ok(session),
                Step::Create(guard) => break guard,
                Step::Wait(mut outcome) => {
                    // A creator that went away closes the channel without an
                    // outcome: look again (and perhaps create it ourselves).
                    if let Ok(seen) = outcome.wait_for(Option::is_some).await {
                        if let Some(outcome) = seen.as_ref() {
                            return outcome.clone();
                        }
                    }
                }
            }
        };
        let made = create().await.and_then(|session| {
            if session.expires_at() <= SystemTime::now() {
                Err(SessionError::Expired)
            } else {
                Ok(Arc::new(session))
            }
        });
        guard.finish(made)
    }

    /// Forgets `session`, which the endpoint rejected, if it is still the
    /// one cached for `key` (a newer session is kept); a creation in progress
    /// carries on. Returns whether it was forgotten.
    pub fn forget(&self, key: &SessionKey, session: &Arc<Session>) -> bool {
        let mut entries = self.lock();
        let Some(entry) = entries.map.get_mut(key) else {
            return false;
        };
        if !entry
            .session
            .as_ref()
            .is_some_and(|cached| Arc::ptr_eq(cached, session))
        {
            return false;
        }
        entry.session = None;
        if entry.flight.is_none() {
            entries.map.remove(key);
        }
        true
    }

    fn step(&self, key: &SessionKey) -> Step<'_> {
        let now = SystemTime::now();
        let mut entries = self.lock();
        entries.clock += 1;
        let tick = entries.clock;
        if let Some(entry) = entries.map.get_mut(key) {
            entry.used = tick;
            let left = entry.session.as_ref().map_or(Duration::ZERO, |s| {
                s.expires_at().duration_since(now).unwrap_or_default()
            });
            if let Some(session) = &entry.session {
                if left > REFRESH_BEFORE || (left >= MIN_REMAINING && entry.flight.is_some()) {
                    return Step::Use(session.clone());
                }
            }
            if let Some(flight) = &entry.flight {
                return Step::Wait(flight.outcome.clone());
            }
            let (guard, flight) = FlightGuard::new(self, key, tick);
            entry.flight = Some(flight);
            return Step::Create(guard);
        }
        if entries.map.len() >= self.capacity {
            // Expired sessions nobody is replacing go first, then the least
            // recently used entries no creation is running for (see the
            // module docs for when there are none).
            entries.map.retain(|_, e| {
                e.flight.is_some() || e.session.as_ref().is_some_and(|s| s.expires_at() > now)
            });
            while entries.map.len() >= self.capacity {
                let oldest = entries
                    .map
                    .iter()
                    .filter(|(_, e)| e.flight.is_none())
                    .min_by_key(|(_, e)| e.used)
                    .map(|(k, _)| k.clone());
                let Some(oldest) = oldest else { break };
                entries.map.remove(&oldest);
            }
        }
        let (guard, flight) = FlightGuard::new(self, key, tick);
        entries.map.insert(
            key.clone(),
            Entry {
                session: None,
                flight: Some(flight),
                used: tick,
            },
        );
        Step::Create(guard)
    }
}

/// The creator's side of a flight: publishes its outcome, or on drop without
/// one (cancelled) clears the flight so that a waiter takes over.
struct FlightGuard<'c> {
    cache: &'c SessionCache,
    key: SessionKey,
    id: u64,
    outcome: Option<watch::Sender<Option<Outcome>>>,
}

impl<'c> FlightGuard<'c> {
    fn new(cache: &'c SessionCache, key: &SessionKey, id: u64) -> (Self, Flight) {
        let (tx, rx) = watch::channel(None);
        let guard = FlightGuard {
            cache,
            key: key.clone(),
            id,
            outcome: Some(tx),
        };
        (guard, Flight { id, outcome: rx })
    }

    /// Stores a created session (a failure is not stored: the previous
    /// session serves on while it has [`MIN_REMAINING`] left) and hands the
    /// outcome to the waiters.
    fn finish(mut self, made: Outcome) -> Outcome {
        let outcome = {
            let mut entries = self.cache.lock();
            match entries.map.get_mut(&self.key) {
                Some(entry) if entry.flight.as_ref().is_some_and(|f| f.id == self.id) => {
                    entry.flight = None;
                    match made {
                        Ok(session) => {
                            entry.session = Some(session.clone());
                            Ok(session)
                        }
                        Err(e) => {
                            let min = SystemTime::now() + MIN_REMAINING;
                            match entry.session.as_ref().filter(|s| s.expires_at() >= min) {
                                Some(previous) => Ok(previous.clone()),
                                None => Err(e),
                            }
                        }
                    }
                }
                // Evicted meanwhile: the outcome is this flight's alone.
                _ => made,
            }
        };
        if let Some(tx) = self.outcome.take() {
            tx.send_replace(Some(outcome.clone()));
        }
        outcome
    }
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        if self.outcome.is_none() {
            return;
        }
        let mut entries = self.cache.lock();
        let mine = entries
            .map
            .get(&self.key)
            .is_some_and(|e| e.flight.as_ref().is_some_and(|f| f.id == self.id));
        if mine {
            let empty = match entries.map.get_mut(&self.key) {
                Some(entry) => {
                    entry.flight = None;
                    entry.session.is_none()
                }
                None => false,
            };
            if empty {
                entries.map.remove(&self.key);
            }
        }
        // Dropping the sender wakes the waiters, which look again.
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn session(id: &str, lasts: Duration) -> Session {
        Session::new(id, "secret", "token", SystemTime::now() + lasts).unwrap()
    }

    fn key(bucket: &str) -> SessionKey {
        SessionKey::new("AKIDEXAMPLE", "zonal".into(), bucket.into())
    }

    const LONG: Duration = Duration::from_secs(300);

    /// Caches a session for bucket "b" that is due for renewal but still
    /// valid.
    async fn cache_stale_session(cache: &SessionCache) -> Arc<Session> {
        let stale = REFRESH_BEFORE - Duration::from_secs(5);
        cache
            .get(&key("b"), || async { Ok(session("ASIA-OLD", stale)) })
            .await
            .unwrap()
    }

    /// Looks `bucket` up in the background; a creation waits until `released`
    /// turns true, then answers with `made()`.
    fn held_lookup(
        cache: &Arc<SessionCache>,
        bucket: &'static str,
        released: &watch::Receiver<bool>,
        made: impl FnOnce() -> Result<Session, SessionError> + Send + 'static,
    ) -> tokio::task::JoinHandle<Outcome> {
        let (cache, mut released) = (cache.clone(), released.clone());
        tokio::spawn(async move {
            cache
                .get(&key(bucket), || async move {
                    let _ = released.wait_for(|r| *r).await;
                    made()
                })
                .await
        })
    }

    /// Looks `bucket` up in the background, expecting a creation already in
    /// flight (it must not create one).
    fn waiting_lookup(
        cache: &Arc<SessionCache>,
        bucket: &'static str,
    ) -> tokio::task::JoinHandle<Outcome> {
        let cache = cache.clone();
        tokio::spawn(async move {
            cache
                .get(&key(bucket), || async {
                    unreachable!("a creation is in flight")
                })
                .await
        })
    }

    #[tokio::test]
    async fn reuses_a_fresh_session_without_creating_another() {
        let cache = SessionCache::new(8);
        let created = AtomicUsize::new(0);
        let create = || async {
            created.fetch_add(1, Ordering::SeqCst);
            Ok(session("ASIA1", LONG))
        };
        for _ in 0..5 {
            let s = cache.get(&key("b"), create).await.unwrap();
            assert_eq!(s.access_key_id(), "ASIA1");
        }
        assert_eq!(created.load(Ordering::SeqCst), 1);
        // Another identity, another route, or another bucket is another session.
        let other_identity = SessionKey::new("AKIDOTHER", "zonal".into(), "b".into());
        cache.get(&other_identity, create).await.unwrap();
        let other_route = SessionKey::new("AKIDEXAMPLE", "zonal-readonly".into(), "b".into());
        cache.get(&other_route, create).await.unwrap();
        cache.get(&key("c"), create).await.unwrap();
        assert_eq!(created.load(Ordering::SeqCst), 4);
        assert_eq!(cache.len(), 4);
    }

    #[tokio::test]
    async fn replaces_a_session_with_less_than_a_minute_left() {
        let cache = SessionCache::new(8);
        cache_stale_session(&cache).await;
        let s = cache
            .get(&key("b"), || async { Ok(session("ASIA-NEW", LONG)) })
            .await
            .unwrap();
        assert_eq!(s.access_key_id(), "ASIA-NEW");
        let s = cache
            .get(&key("b"), || async { unreachable!("fresh") })
            .await
            .unwrap();
        assert_eq!(s.access_key_id(), "ASIA-NEW");
    }

    #[tokio::test]
    async fn never_hands_out_an_expired_session() {
        let cache = SessionCache::new(8);
        // Created with less than MIN_REMAINING left: used once, by its creator.
        let short = MIN_REMAINING / 2;
        let s = cache
            .get(&key("b"), || async { Ok(session("ASIA-SHORT", short)) })
            .await
            .unwrap();
        assert_eq!(s.access_key_id(), "ASIA-SHORT");
        // The next lookup creates again rather than signing with it.
        let s = cache
            .get(&key("b"), || async { Ok(session("ASIA-NEXT", LONG)) })
            .await
            .unwrap();
        assert_eq!(s.access_key_id(), "ASIA-NEXT");
        // One that arrives already expired is a failure, not a session.
        let e = cache
            .get(&key("c"), || async {
                Session::new(
                    "ASIA-DEAD",
                    "s",
                    "t",
                    SystemTime::now() - Duration::from_secs(1),
                )
            })
            .await
            .unwrap_err();
        assert_eq!(e, SessionError::Expired);
    }

    #[tokio::test]
    async fn concurrent_lookups_share_one_creation() {
        let cache = Arc::new(SessionCache::new(8));
        let created = Arc::new(AtomicUsize::new(0));
        let (release, released) = watch::channel(false);
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (cache, created, mut released) = (cache.clone(), created.clone(), released.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .get(&key("b"), || async move {
                        created.fetch_add(1, Ordering::SeqCst);
                        let _ = released.wait_for(|r| *r).await;
                        Ok(session("ASIA1", LONG))
                    })
                    .await
            }));
        }
        tokio::task::yield_now().await;
        release.send_replace(true);
        for task in tasks {
            assert_eq!(task.await.unwrap().unwrap().access_key_id(), "ASIA1");
        }
        assert_eq!(created.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_failure_reaches_the_waiters_and_is_not_cached() {
        let cache = Arc::new(SessionCache::new(8));
        let (release, released) = watch::channel(false);
        let failing = held_lookup(&cache, "b", &released, || {
            Err(SessionError::Refused {
                status: 403,
                code: Some("AccessDenied".into()),
            })
        });
        tokio::task::yield_now().await;
        let waiter = waiting_lookup(&cache, "b");
        tokio::task::yield_now().await;
        release.send_replace(true);
        let refused = SessionError::Refused {
            status: 403,
            code: Some("AccessDenied".into()),
        };
        assert_eq!(failing.await.unwrap().unwrap_err(), refused);
        assert_eq!(waiter.await.unwrap().unwrap_err(), refused);
        // The next lookup tries again.
        let s = cache
            .get(&key("b"), || async { Ok(session("ASIA1", LONG)) })
            .await
            .unwrap();
        assert_eq!(s.access_key_id(), "ASIA1");
    }

    #[tokio::test]
    async fn a_failed_refresh_keeps_serving_the_previous_session_while_it_lasts() {
        let cache = SessionCache::new(8);
        cache_stale_session(&cache).await;
        let s = cache
            .get(&key("b"), || async {
                Err(SessionError::Unreachable("connection refused".into()))
            })
            .await
            .unwrap();
        assert_eq!(s.access_key_id(), "ASIA-OLD");
        // Still due: the next lookup tries again.
        let s = cache
            .get(&key("b"), || async { Ok(session("ASIA-NEW", LONG)) })
            .await
            .unwrap();
        assert_eq!(s.access_key_id(), "ASIA-NEW");
    }

    #[tokio::test]
    async fn while_a_refresh_runs_others_sign_with_the_session_it_replaces() {
        let cache = Arc::new(SessionCache::new(8));
        cache_stale_session(&cache).await;
        let (release, released) = watch::channel(false);
        let refresh = held_lookup(&cache, "b", &released, || Ok(session("ASIA-NEW", LONG)));
        tokio::task::yield_now().await;
        let s = cache
            .get(&key("b"), || async {
                unreachable!("a refresh is in flight")
            })
            .await
            .unwrap();
        assert_eq!(s.access_key_id(), "ASIA-OLD");
        release.send_replace(true);
        assert_eq!(refresh.await.unwrap().unwrap().access_key_id(), "ASIA-NEW");
    }

    #[tokio::test]
    async fn a_cancelled_creation_lets_a_waiter_create_instead() {
        let cache = Arc::new(SessionCache::new(8));
        let stuck = {
            let cache = cache.clone();
            tokio::spawn(async move {
                cache
                    .get(&key("b"), || {
                        std::future::pending::<Result<Session, SessionError>>()
                    })
                    .await
            })
        };
        tokio::task::yield_now().await;
        let waiter = {
            let cache = cache.clone();
            tokio::spawn(async move {
                cache
                    .get(&key("b"), || async { Ok(session("ASIA-WAITER", LONG)) })
                    .await
            })
        };
        tokio::task::yield_now().await;
        stuck.abort();
        let s = waiter.await.unwrap().unwrap();
        assert_eq!(s.access_key_id(), "ASIA-WAITER");
    }

    #[tokio::test]
    async fn holds_at_most_its_capacity_dropping_the_least_recently_used() {
        let cache = SessionCache::new(3);
        for bucket in ["a", "b", "c"] {
            cache
                .get(&key(bucket), || async { Ok(session("ASIA", LONG)) })
                .await
                .unwrap();
        }
        // "a" is used again, so "b" is the least recently used.
        cache
            .get(&key("a"), || async { unreachable!() })
            .await
            .unwrap();
        cache
            .get(&key("d"), || async { Ok(session("ASIA", LONG)) })
            .await
            .unwrap();
        assert_eq!(cache.len(), 3);
        let created = AtomicUsize::new(0);
        let create = || async {
            created.fetch_add(1, Ordering::SeqCst);
            Ok(session("ASIA", LONG))
        };
        for bucket in ["a", "c", "d"] {
            cache.get(&key(bucket), create).await.unwrap();
        }
        assert_eq!(created.load(Ordering::SeqCst), 0, "a, c and d stayed");
        cache.get(&key("b"), create).await.unwrap();
        assert_eq!(created.load(Ordering::SeqCst), 1, "b was dropped");
        assert_eq!(cache.len(), 3);
        for i in 0..100 {
            cache.get(&key(&format!("x{i}")), create).await.unwrap();
        }
        assert_eq!(cache.len(), 3);
    }

    #[tokio::test]
    async fn never_evicts_an_entry_whose_session_is_being_created() {
        let cache = Arc::new(SessionCache::new(2));
        let (release, released) = watch::channel(false);
        // "a" is the least recently used entry, but its creation is running.
        let creating = held_lookup(&cache, "a", &released, || Ok(session("ASIA-A", LONG)));
        tokio::task::yield_now().await;
        for bucket in ["b", "c"] {
            cache
                .get(&key(bucket), || async { Ok(session("ASIA", LONG)) })
                .await
                .unwrap();
        }
        // "b" went instead, as the least recently used of the others.
        assert_eq!(cache.len(), 2);
        release.send_replace(true);
        assert_eq!(creating.await.unwrap().unwrap().access_key_id(), "ASIA-A");
        let created = AtomicUsize::new(0);
        let create = || async {
            created.fetch_add(1, Ordering::SeqCst);
            Ok(session("ASIA", LONG))
        };
        for bucket in ["a", "c"] {
            cache.get(&key(bucket), create).await.unwrap();
        }
        assert_eq!(created.load(Ordering::SeqCst), 0, "a and c stayed");
        cache.get(&key("b"), create).await.unwrap();
        assert_eq!(created.load(Ordering::SeqCst), 1, "b was dropped");
    }

    #[tokio::test]
    async fn exceeds_its_capacity_while_every_entry_is_being_created() {
        let cache = Arc::new(SessionCache::new(1));
        let (release, released) = watch::channel(false);
        let mut creations = Vec::new();
        for bucket in ["a", "b", "c"] {
            creations.push(held_lookup(&cache, bucket, &released, || {
                Ok(session("ASIA", LONG))
            }));
            tokio::task::yield_now().await;
        }
        assert_eq!(cache.len(), 3, "one entry per creation in progress");
        release.send_replace(true);
        for creation in creations {
            creation.await.unwrap().unwrap();
        }
        // Each creation stored its session: none is created again.
        for bucket in ["a", "b", "c"] {
            cache
                .get(&key(bucket), || async { unreachable!("cached") })
                .await
                .unwrap();
        }
        // The next new entry brings the cache back within its capacity.
        cache
            .get(&key("d"), || async { Ok(session("ASIA", LONG)) })
            .await
            .unwrap();
        assert_eq!(cache.len(), 1);
    }

    #[tokio::test]
    async fn forgets_a_rejected_session_but_not_a_newer_one() {
        let cache = SessionCache::new(8);
        let first = cache
            .get(&key("b"), || async { Ok(session("ASIA-1", LONG)) })
            .await
            .unwrap();
        assert!(cache.forget(&key("b"), &first));
        assert!(cache.is_empty());
        let second = cache
            .get(&key("b"), || async { Ok(session("ASIA-2", LONG)) })
            .await
            .unwrap();
        assert_eq!(second.access_key_id(), "ASIA-2");
        // A late rejection of the first session leaves the second alone.
        assert!(!cache.forget(&key("b"), &first));
        assert!(!cache.forget(&key("other"), &second));
        let s = cache
            .get(&key("b"), || async { unreachable!("the second is cached") })
            .await
            .unwrap();
        assert!(Arc::ptr_eq(&s, &second));
    }

    #[tokio::test]
    async fn forgetting_during_a_refresh_makes_lookups_wait_for_it() {
        let cache = Arc::new(SessionCache::new(8));
        let old = cache_stale_session(&cache).await;
        let (release, released) = watch::channel(false);
        let refresh = held_lookup(&cache, "b", &released, || Ok(session("ASIA-NEW", LONG)));
        tokio::task::yield_now().await;
        assert!(cache.forget(&key("b"), &old));
        // The rejected session is not handed out while the refresh runs.
        let waiter = waiting_lookup(&cache, "b");
        tokio::task::yield_now().await;
        release.send_replace(true);
        assert_eq!(refresh.await.unwrap().unwrap().access_key_id(), "ASIA-NEW");
        assert_eq!(waiter.await.unwrap().unwrap().access_key_id(), "ASIA-NEW");
    }

    #[test]
    fn keys_print_only_a_hint_of_the_access_key() {
        let k = SessionKey::new("AKIAIOSFODNN7EXAMPLE", "zonal".into(), "https://b/".into());
        let printed = format!("{k:?}");
        assert!(printed.contains("AKIA…MPLE"), "{printed}");
        assert!(!printed.contains("AKIAIOSFODNN7EXAMPLE"), "{printed}");
    }
}
