//! S3 Express One Zone session authentication.
//!
//! The zonal endpoints of directory buckets
//! (`bucket--usw2-az1--x-s3.s3express-usw2-az1.us-west-2.amazonaws.com`) take
//! data requests signed with a *session*, not with IAM credentials: a
//! CreateSession request (`GET /?session` on the bucket, signed with the IAM
//! credentials for the service `s3express`) returns an access key, secret and
//! token valid for that bucket for five minutes; each data request is then
//! signed with that key and secret and carries the token in the signed header
//! `x-amz-s3session-token` (never `x-amz-security-token`).
//!
//! For a [`Target`] with [`Target::s3express_session`] set, the proxy gives
//! each request that [`signs_with_session`] a `SessionAuth`. Before every
//! attempt the upstream's retry loop awaits `SessionAuth::prepare`, which
//! takes the session from the [`SessionCache`] (shared by all requests and
//! workers, keyed by IAM access key id, route and bucket) or creates it
//! through the same upstream client and route policy as the request, signed
//! with the IAM credentials snapshot whose access key id is in the key; the
//! attempt is then signed with it (`SessionAuth::for_attempt`). A request
//! that needs a session is never sent without one: when CreateSession fails,
//! the client gets 502 `s3express_session` with the upstream's status and
//! error code.
//!
//! How long a session lasts is read from the endpoint's clock, not ours: its
//! lifetime is `<Expiration>` less the answer's `Date` (at most
//! [`MAX_LIFETIME`]), counted from when the answer arrived; only an answer
//! without a usable `Date` is taken at its `<Expiration>` by the local clock.
//!
//! Attempts signed with sessions use a signer of their own
//! ([`Sessions`]), so that session keys (new ones per bucket every few
//! minutes) never evict the IAM signing keys of busy routes from the proxy's
//! key cache; CreateSession, signed with IAM credentials, uses the proxy's.
//!
//! A session the endpoint rejects (400 or 403 `ExpiredToken` or
//! `InvalidToken`, read from the small error bodies the retry loop already
//! reads to classify them) is dropped from the cache, and the request is
//! retried with a new one under the route's retry policy (when its body can
//! be sent again and attempts and budget allow; otherwise it gets the
//! endpoint's answer and the next request creates the new session).
//!
//! CopyObject and UploadPartCopy (a PUT with `x-amz-copy-source`), HeadBucket
//! (HEAD on the bucket root) and CreateSession itself sign with the IAM
//! credentials, as S3 Express requires.

mod answer;
mod cache;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use http::header::{HeaderMap, HeaderValue, DATE, HOST};
use http_body_util::{BodyExt, Limited};

use crate::credentials::{access_key_hint, CredentialsHandle};
use crate::routing::Target;
use crate::sigv4::{Credentials, Signer};
use crate::telemetry::metrics::Metrics;
use crate::upstream::{ForwardError, OutboundBody, OutboundRequest, SignFailure, Upstream};

use super::prepare::upstream_uri;
use super::signer::{RequestPayload, RequestSigner};

pub use answer::AnswerError;
pub use cache::{SessionCache, SessionKey, MIN_REMAINING, REFRESH_BEFORE};

/// The header a session-signed request carries its session token in.
pub const X_AMZ_S3SESSION_TOKEN: &str = "x-amz-s3session-token";

/// The largest CreateSession answer read (a real one is under 2 KiB).
const MAX_ANSWER: usize = 64 * 1024;

/// The longest a session is taken to last, whatever its answer says: S3
/// Express sessions last five minutes.
pub const MAX_LIFETIME: Duration = Duration::from_secs(300);

/// The S3 error codes with which an endpoint rejects a session's token
/// (`ExpiredToken`: "The provided token has expired"; `InvalidToken`: "The
/// provided token is malformed or otherwise invalid"), answered 400, or 403.
const REJECTED_TOKEN_CODES: [&str; 2] = ["ExpiredToken", "InvalidToken"];

/// Whether an error answer to a session-signed attempt says the endpoint no
/// longer takes the session.
///
/// ```
/// use http::StatusCode;
/// use signet::proxy::s3express::rejects_session;
/// assert!(rejects_session(StatusCode::BAD_REQUEST, "ExpiredToken"));
/// assert!(rejects_session(StatusCode::FORBIDDEN, "InvalidToken"));
/// assert!(!rejects_session(StatusCode::FORBIDDEN, "AccessDenied"));
/// assert!(!rejects_session(StatusCode::INTERNAL_SERVER_ERROR, "ExpiredToken"));
/// ```
pub fn rejects_session(status: http::StatusCode, code: &str) -> bool {
    matches!(status.as_u16(), 400 | 403) && REJECTED_TOKEN_CODES.contains(&code)
}

/// When a session whose `<Expiration>` is `expiration` expires by the local
/// clock, for an answer that arrived at `now` with the `Date` `date`.
///
/// With a `Date`, the session's lifetime by the endpoint's own clock
/// (`expiration - date`, at most [`MAX_LIFETIME`]) counted from `now`, so that
/// a local clock that is off neither discards a good session nor keeps an
/// expired one; a lifetime of zero or less is [`SessionError::Expired`].
/// Without one, `expiration` as it is.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use signet::proxy::s3express::local_expiry;
/// let now = SystemTime::now();
/// // The endpoint's clock is ten minutes behind ours.
/// let date = now - Duration::from_secs(600);
/// let expiration = date + Duration::from_secs(300);
/// assert_eq!(local_expiry(expiration, Some(date), now), Ok(now + Duration::from_secs(300)));
/// assert_eq!(local_expiry(expiration, None, now), Ok(expiration));
/// ```
pub fn local_expiry(
    expiration: SystemTime,
    date: Option<SystemTime>,
    now: SystemTime,
) -> Result<SystemTime, SessionError> {
    let Some(date) = date else {
        return Ok(expiration);
    };
    match expiration.duration_since(date) {
        Ok(lifetime) if !lifetime.is_zero() => now
            .checked_add(lifetime.min(MAX_LIFETIME))
            .ok_or(SessionError::Expired),
        _ => Err(SessionError::Expired),
    }
}

/// Whether a request to a bucket whose root is `root` (on a target with
/// sessions) signs with the session: every request but CopyObject and
/// UploadPartCopy (PUT with `x-amz-copy-source`), HeadBucket (HEAD on the
/// root) and CreateSession (GET on the root with a `session` query
/// parameter), which sign with the IAM credentials.
///
/// `path` is the path forwarded upstream, `query` the client's query.
///
/// ```
/// use http::{HeaderMap, Method};
/// use signet::proxy::s3express::signs_with_session;
/// let none = HeaderMap::new();
/// assert!(signs_with_session(&Method::GET, "/photos/cat.jpg", None, &none, "/"));
/// assert!(signs_with_session(&Method::GET, "/", Some("list-type=2"), &none, "/"));
/// assert!(!signs_with_session(&Method::HEAD, "/", None, &none, "/"));
/// assert!(!signs_with_session(&Method::GET, "/", Some("session"), &none, "/"));
/// ```
pub fn signs_with_session(
    method: &http::Method,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    root: &str,
) -> bool {
    let at_root = || path.trim_end_matches('/') == root.trim_end_matches('/');
    let copy = *method == http::Method::PUT && headers.contains_key("x-amz-copy-source");
    let head_bucket = *method == http::Method::HEAD && at_root();
    let create_session = *method == http::Method::GET
        && at_root()
        && query.is_some_and(|q| {
            q.split('&')
                .any(|p| p.split('=').next().is_some_and(|name| name == "session"))
        });
    !(copy || head_bucket || create_session)
}

/// Session credentials from CreateSession: what attempts are signed with
/// (the key and secret) and the token they carry. `Debug` shows the access
/// key id only.
pub struct Session {
    credentials: Arc<Credentials>,
    token: HeaderValue,
    expires_at: SystemTime,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("access_key_id", &self.credentials.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl Session {
    /// A session from CreateSession's values. Fails when the access key id or
    /// the token cannot travel in a header.
    pub fn new(
        access_key_id: &str,
        secret_access_key: &str,
        token: &str,
        expires_at: SystemTime,
    ) -> Result<Self, SessionError> {
        let sendable_key = access_key_id
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"/,=".contains(&b));
        if access_key_id.is_empty() || !sendable_key {
            return Err(SessionError::Answer(AnswerError::Unsendable("AccessKeyId")));
        }
        let mut token = HeaderValue::from_str(token)
            .map_err(|_| SessionError::Answer(AnswerError::Unsendable("SessionToken")))?;
        token.set_sensitive(true);
        Ok(Self {
            credentials: Arc::new(Credentials {
                access_key_id: access_key_id.to_owned(),
                secret_access_key: secret_access_key.to_owned(),
                // The token travels in x-amz-s3session-token, not as the
                // credentials' x-amz-security-token.
                session_token: None,
            }),
            token,
            expires_at,
        })
    }

    /// The session's access key id.
    pub fn access_key_id(&self) -> &str {
        &self.credentials.access_key_id
    }

    /// When the session stops being accepted.
    pub fn expires_at(&self) -> SystemTime {
        self.expires_at
    }
}

/// Why a request that must sign with a session has none. Never holds a
/// secret; mapped to the client's answer through [`SignFailure`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// The IAM credentials that create the session are unavailable. → 503.
    #[error("credentials unavailable: {0}")]
    CredentialsUnavailable(String),
    /// CreateSession could not be sent or its answer broke off.
    #[error("CreateSession failed: {0}")]
    Unreachable(String),
    /// CreateSession was answered with an error status.
    #[error("CreateSession answered {status}{}", code.as_deref().map(|c| format!(" {c}")).unwrap_or_default())]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The S3 error code (`AccessDenied`, `NoSuchBucket`, ...), when given.
        code: Option<String>,
    },
    /// CreateSession's answer could not be read.
    #[error("CreateSession answer unreadable: {0}")]
    Answer(#[from] AnswerError),
    /// CreateSession returned a session that has already expired.
    #[error("CreateSession returned a session that has already expired (is the clock right?)")]
    Expired,
}

impl SessionError {
    fn into_sign_failure(self) -> SignFailure {
        match self {
            SessionError::CredentialsUnavailable(reason) => {
                SignFailure::CredentialsUnavailable(reason)
            }
            other => SignFailure::Session(other.to_string()),
        }
    }
}

/// What the requests signing with sessions share: the cache, what
/// CreateSession is sent and signed with, and the signer of session-signed
/// attempts.
pub struct Sessions {
    cache: SessionCache,
    upstream: Upstream,
    /// Signs CreateSession with the IAM credentials: the proxy's signer,
    /// whose key cache holds the IAM keys.
    iam_signer: Arc<Signer>,
    /// Signs the attempts signed with sessions, with a key cache of its own.
    session_signer: Signer,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

impl Sessions {
    /// Sessions created through `upstream`, CreateSession signed by
    /// `iam_signer` (the signer of the requests signed with IAM credentials),
    /// counted in `metrics`.
    pub fn new(upstream: Upstream, iam_signer: Arc<Signer>, metrics: Arc<Metrics>) -> Self {
        Self {
            cache: SessionCache::new(SessionCache::DEFAULT_CAPACITY),
            upstream,
            iam_signer,
            session_signer: Signer::new(),
            metrics,
        }
    }

    /// The signer of session-signed attempts (its key cache holds session
    /// keys only).
    pub fn session_signer(&self) -> &Signer {
        &self.session_signer
    }
}

/// The session an attempt was signed with, and where it is cached.
#[derive(Clone)]
struct Current {
    key: SessionKey,
    session: Arc<Session>,
}

/// One request's session authentication: which session (IAM identity, route
/// and bucket), and the session its next attempt signs with.
pub(crate) struct SessionAuth {
    sessions: Arc<Sessions>,
    target: Target,
    /// The bucket part of the cache key: upstream, signed host, root path.
    bucket: Arc<str>,
    credentials: CredentialsHandle,
    current: Mutex<Option<Current>>,
}

impl SessionAuth {
    /// Session authentication for a request to `target` (which has
    /// [`Target::s3express_session`] set), creating sessions with
    /// `credentials`.
    pub(crate) fn new(
        sessions: Arc<Sessions>,
        target: &Target,
        credentials: CredentialsHandle,
    ) -> Self {
        let root = target.s3express_session.as_deref().unwrap_or("/");
        let host = target.host.to_str().unwrap_or_default();
        let bucket = Arc::from(format!("{} {host}{root}", target.upstream));
        Self {
            sessions,
            target: target.clone(),
            bucket,
            credentials,
            current: Mutex::new(None),
        }
    }

    /// Makes a session with at least [`MIN_REMAINING`] left (or just created)
    /// ready for the next attempt.
    pub(crate) async fn prepare(&self) -> Result<(), SignFailure> {
        let (iam, iam_expires) = self
            .credentials
            .current_with_expiry()
            .map_err(|e| SignFailure::CredentialsUnavailable(e.reason))?;
        let key = SessionKey::new(
            &iam.access_key_id,
            self.target.route.clone(),
            self.bucket.clone(),
        );
        // CreateSession signs with the very snapshot that named the key: a
        // rotation meanwhile cannot file a session under the old key id.
        let session = self
            .sessions
            .cache
            .get(&key, || {
                self.create_counted(self.credentials.pinned(iam, iam_expires))
            })
            .await
            .map_err(SessionError::into_sign_failure)?;
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(Current { key, session });
        Ok(())
    }

    /// The signer of session-signed attempts.
    pub(crate) fn signer(&self) -> &Signer {
        &self.sessions.session_signer
    }

    /// Told of an error answer with the S3 error code `code` to an attempt
    /// signed with the current session: when it says the session is no
    /// longer taken, drops it from the cache (unless a newer one replaced it
    /// already), so that the next attempt or request signs with another one,
    /// and returns true.
    pub(crate) fn rejected(&self, status: http::StatusCode, code: &str) -> bool {
        if !rejects_session(status, code) {
            return false;
        }
        let current = self
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let Some(Current { key, session }) = current else {
            return false;
        };
        if self.sessions.cache.forget(&key, &session) {
            tracing::warn!(
                route = %self.target.route,
                bucket = self.target.host.to_str().unwrap_or_default(),
                key = %access_key_hint(session.access_key_id()),
                status = status.as_u16(),
                code,
                "S3 Express session rejected; signing with a new one"
            );
        }
        true
    }

    /// The credentials to sign an attempt with; adds the session token to
    /// `headers`. Fails rather than fall back to the IAM credentials.
    pub(crate) fn for_attempt(
        &self,
        headers: &mut HeaderMap,
    ) -> Result<Arc<Credentials>, SignFailure> {
        let session = self
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|current| current.session.clone())
            .ok_or_else(|| {
                SignFailure::Session("no session was made ready for the attempt".into())
            })?;
        if session.expires_at <= SystemTime::now() {
            return Err(SignFailure::Session(
                "the session expired before the attempt was signed".into(),
            ));
        }
        headers.insert(X_AMZ_S3SESSION_TOKEN, session.token.clone());
        Ok(session.credentials.clone())
    }

    /// [`create`](Self::create), counted and logged.
    async fn create_counted(&self, iam: CredentialsHandle) -> Result<Session, SessionError> {
        let made = self.create(iam).await;
        let route = &self.target.route;
        let bucket = self.target.host.to_str().unwrap_or_default();
        self.sessions.metrics.s3express_session(route, made.is_ok());
        match &made {
            Ok(session) => {
                let lasts = session
                    .expires_at
                    .duration_since(SystemTime::now())
                    .unwrap_or_default();
                tracing::debug!(
                    route = %route,
                    bucket,
                    key = %access_key_hint(session.access_key_id()),
                    expires_in_secs = lasts.as_secs(),
                    "S3 Express session created"
                );
            }
            Err(e) => {
                tracing::warn!(route = %route, bucket, error = %e, "S3 Express CreateSession failed");
            }
        }
        made
    }

    /// Sends CreateSession for the bucket, signed with the IAM credentials
    /// `iam`, and reads the session from its answer.
    async fn create(&self, iam: CredentialsHandle) -> Result<Session, SessionError> {
        let target = &self.target;
        let root = target.s3express_session.as_deref().unwrap_or("/");
        let uri = upstream_uri(&target.scheme, &target.authority, root, Some("session"))
            .ok_or_else(|| {
                SessionError::Unreachable("the bucket root is not a valid request path".into())
            })?;
        let (mut parts, ()) = http::Request::new(()).into_parts();
        parts.uri = uri;
        parts.headers.insert(HOST, target.host.clone());
        for (name, value) in target.policy.custom_headers.iter() {
            parts.headers.insert(name.clone(), value.clone());
        }
        let signer = RequestSigner::new(
            iam,
            self.sessions.iam_signer.clone(),
            target,
            RequestPayload::empty(),
            &parts.headers,
            None,
            Arc::default(),
            None,
        );
        let request = OutboundRequest {
            parts,
            body: OutboundBody::Empty,
            signer: Arc::new(signer),
            policy: target.policy.upstream.clone(),
            route: target.route.clone(),
            upstream: target.upstream.clone(),
        };
        let response = self
            .sessions
            .upstream
            .send_unshed(request)
            .await
            .map_err(|e| match e {
                ForwardError::Sign(SignFailure::CredentialsUnavailable(reason)) => {
                    SessionError::CredentialsUnavailable(reason)
                }
                e => SessionError::Unreachable(e.to_string()),
            })?;
        let status = response.status();
        let date = response
            .headers()
            .get(DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok());
        let answered_at = SystemTime::now();
        let body = Limited::new(response.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map(|b| b.to_bytes());
        if !status.is_success() {
            let code = body.ok().and_then(|b| error_code(&b));
            return Err(SessionError::Refused {
                status: status.as_u16(),
                code,
            });
        }
        let body = body.map_err(|e| match e.downcast::<ForwardError>() {
            Ok(e) => SessionError::Unreachable(e.to_string()),
            Err(_) => SessionError::Answer(AnswerError::TooLarge),
        })?;
        let values = answer::parse(&body)?;
        let expires_at = local_expiry(values.expiration, date, answered_at)?;
        Session::new(
            &values.access_key_id,
            &values.secret_access_key,
            &values.session_token,
            expires_at,
        )
    }
}

/// The `<Code>` of an S3 error answer, when it looks like one (letters,
/// digits, `.`, `-`, `_`; at most 64 characters).
fn error_code(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let code = crate::upstream::xml_element(text, "Code")?;
    let plausible = !code.is_empty()
        && code.len() <= 64
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    plausible.then(|| code.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;
    use std::time::Duration;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.insert(
                http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn data_operations_sign_with_the_session() {
        let none = HeaderMap::new();
        for (method, path, query) in [
            (Method::GET, "/photos/cat.jpg", None),
            (Method::PUT, "/photos/cat.jpg", None),
            (Method::DELETE, "/photos/cat.jpg", None),
            (Method::HEAD, "/photos/cat.jpg", None),
            (Method::GET, "/", Some("list-type=2&prefix=photos/")),
            (Method::POST, "/", Some("delete")),
            (Method::POST, "/big.bin", Some("uploads")),
            (Method::PUT, "/big.bin", Some("partNumber=1&uploadId=abc")),
            (Method::GET, "/", Some("sessions")),
            (Method::GET, "/photos", Some("session")),
            (Method::PUT, "/", Some("session")),
        ] {
            assert!(
                signs_with_session(&method, path, query, &none, "/"),
                "{method} {path}?{query:?}"
            );
        }
    }

    #[test]
    fn copies_head_bucket_and_create_session_sign_with_iam() {
        let none = HeaderMap::new();
        let copy = headers(&[("x-amz-copy-source", "/src--usw2-az1--x-s3/a.txt")]);
        for (method, path, query, h, root) in [
            (Method::PUT, "/b.txt", None, &copy, "/"),
            (
                Method::PUT,
                "/b.txt",
                Some("partNumber=2&uploadId=x"),
                &copy,
                "/",
            ),
            (Method::HEAD, "/", None, &none, "/"),
            (Method::HEAD, "/", Some("x-id=HeadBucket"), &none, "/"),
            (Method::GET, "/", Some("session"), &none, "/"),
            (Method::GET, "/", Some("session="), &none, "/"),
            (
                Method::GET,
                "/",
                Some("x-id=CreateSession&session"),
                &none,
                "/",
            ),
            // Under an upstream base path, the bucket root is that path.
            (Method::HEAD, "/zonal/", None, &none, "/zonal"),
            (Method::GET, "/zonal", Some("session"), &none, "/zonal"),
        ] {
            assert!(
                !signs_with_session(&method, path, query, h, root),
                "{method} {path}?{query:?} under {root}"
            );
        }
        // A copy header on anything but a PUT does not make a copy.
        assert!(signs_with_session(&Method::GET, "/b.txt", None, &copy, "/"));
        assert!(signs_with_session(
            &Method::HEAD,
            "/zonal/k",
            None,
            &none,
            "/zonal"
        ));
    }

    #[test]
    fn sessions_print_no_secret() {
        let s = Session::new(
            "ASIASESSION",
            "session-secret",
            "session-token",
            SystemTime::now() + Duration::from_secs(300),
        )
        .unwrap();
        let printed = format!("{s:?}");
        assert!(printed.contains("ASIASESSION"), "{printed}");
        assert!(
            !printed.contains("session-secret") && !printed.contains("session-token"),
            "{printed}"
        );
        assert!(s.token.is_sensitive());
    }

    #[test]
    fn refuses_session_values_that_cannot_travel_in_headers() {
        let later = SystemTime::now() + Duration::from_secs(300);
        assert_eq!(
            Session::new("ASIA", "s", "line\nbreak", later).unwrap_err(),
            SessionError::Answer(AnswerError::Unsendable("SessionToken"))
        );
        for key in ["", "AS IA", "ASIA/1", "ASIA,1"] {
            assert_eq!(
                Session::new(key, "s", "t", later).unwrap_err(),
                SessionError::Answer(AnswerError::Unsendable("AccessKeyId")),
                "{key:?}"
            );
        }
    }

    #[test]
    fn errors_read_as_the_client_gets_them() {
        let refused = SessionError::Refused {
            status: 403,
            code: Some("AccessDenied".into()),
        };
        assert_eq!(
            refused.to_string(),
            "CreateSession answered 403 AccessDenied"
        );
        let bare = SessionError::Refused {
            status: 503,
            code: None,
        };
        assert_eq!(bare.to_string(), "CreateSession answered 503");
        assert_eq!(
            refused.into_sign_failure(),
            SignFailure::Session("CreateSession answered 403 AccessDenied".into())
        );
        assert_eq!(
            SessionError::CredentialsUnavailable("default (imds): not resolved yet".into())
                .into_sign_failure(),
            SignFailure::CredentialsUnavailable("default (imds): not resolved yet".into())
        );
        assert_eq!(
            SessionError::Answer(AnswerError::Missing("SessionToken")).to_string(),
            "CreateSession answer unreadable: <Credentials> has no <SessionToken>"
        );
    }

    #[test]
    fn counts_a_session_lifetime_by_the_endpoints_clock() {
        let now = SystemTime::now();
        let minutes = |m: u64| Duration::from_secs(60 * m);
        // The endpoint's clock ten minutes behind or ahead of ours: five
        // minutes from now either way.
        for date in [now - minutes(10), now + minutes(10)] {
            assert_eq!(
                local_expiry(date + minutes(5), Some(date), now),
                Ok(now + minutes(5))
            );
        }
        // A shorter lifetime is kept; a longer one is cut to five minutes.
        assert_eq!(
            local_expiry(now + Duration::from_secs(90), Some(now), now),
            Ok(now + Duration::from_secs(90))
        );
        assert_eq!(
            local_expiry(now + minutes(60), Some(now), now),
            Ok(now + MAX_LIFETIME)
        );
        // Expired by the endpoint's own clock, whatever ours says.
        let date = now + minutes(10);
        for expiration in [date, date - Duration::from_secs(1)] {
            assert_eq!(
                local_expiry(expiration, Some(date), now),
                Err(SessionError::Expired)
            );
        }
        // Without a Date: the Expiration as it is, by the local clock.
        let expiration = now + minutes(7);
        assert_eq!(local_expiry(expiration, None, now), Ok(expiration));
    }

    #[test]
    fn only_expired_and_invalid_tokens_reject_a_session() {
        use http::StatusCode;
        for status in [StatusCode::BAD_REQUEST, StatusCode::FORBIDDEN] {
            assert!(rejects_session(status, "ExpiredToken"));
            assert!(rejects_session(status, "InvalidToken"));
            for code in ["AccessDenied", "SignatureDoesNotMatch", "expiredtoken", ""] {
                assert!(!rejects_session(status, code), "{status} {code}");
            }
        }
        for status in [StatusCode::UNAUTHORIZED, StatusCode::INTERNAL_SERVER_ERROR] {
            assert!(!rejects_session(status, "ExpiredToken"), "{status}");
        }
    }

    /// Sessions and the credentials, signers and stand-in zonal endpoint of
    /// the tests that create them.
    mod created {
        use super::*;
        use crate::config::{ConfigFormat, Settings};
        use crate::routing::RouteTable;
        use crate::sigv4::AmzDate;
        use crate::upstream::{AttemptSigner, NoopObserver, TlsSettings};
        use bytes::Bytes;
        use http::StatusCode;
        use http_body_util::Full;

        const ZONAL: &str = "b--usw2-az1--x-s3.s3express-usw2-az1.us-west-2.amazonaws.com";

        type Answer =
            Arc<dyn Fn(usize, &http::request::Parts) -> http::Response<Full<Bytes>> + Send + Sync>;

        /// A zonal endpoint on 127.0.0.1 that answers the `n`th request (from
        /// 0) with `answer(n, head)`, adds no `Date` of its own, and keeps
        /// every request head. It checks no signature: the tests read them.
        struct StandIn {
            url: String,
            heads: Arc<Mutex<Vec<http::request::Parts>>>,
        }

        impl StandIn {
            async fn start(answer: Answer) -> StandIn {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let url = format!("http://{}", listener.local_addr().unwrap());
                let heads = Arc::new(Mutex::new(Vec::new()));
                let kept = heads.clone();
                tokio::spawn(async move {
                    loop {
                        let Ok((stream, _)) = listener.accept().await else {
                            continue;
                        };
                        let (kept, answer) = (kept.clone(), answer.clone());
                        let service = hyper::service::service_fn(
                            move |request: http::Request<hyper::body::Incoming>| {
                                let (head, _) = request.into_parts();
                                let mut kept = kept.lock().unwrap();
                                let response = answer(kept.len(), &head);
                                kept.push(head);
                                async move { Ok::<_, std::convert::Infallible>(response) }
                            },
                        );
                        tokio::spawn(async move {
                            let _ = hyper::server::conn::http1::Builder::new()
                                .auto_date_header(false)
                                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                                .await;
                        });
                    }
                });
                StandIn { url, heads }
            }

            /// The access key ids the requests were signed with.
            fn signed_by(&self) -> Vec<String> {
                self.heads.lock().unwrap().iter().map(key_id).collect()
            }
        }

        fn key_id(head: &http::request::Parts) -> String {
            let auth = head.headers["authorization"].to_str().unwrap();
            let credential = auth.split("Credential=").nth(1).unwrap();
            credential.split('/').next().unwrap().to_owned()
        }

        /// CreateSession's answer for session `n`, lasting `lifetime` from
        /// `date` (the endpoint's clock), with `Date: date` when `dated`.
        fn session_answer(
            n: usize,
            date: SystemTime,
            lifetime: Duration,
            dated: bool,
        ) -> http::Response<Full<Bytes>> {
            let t = AmzDate::from_system_time(date + lifetime).unwrap();
            let t = t.as_str();
            let expiration = format!(
                "{}-{}-{}T{}:{}:{}Z",
                &t[0..4],
                &t[4..6],
                &t[6..8],
                &t[9..11],
                &t[11..13],
                &t[13..15]
            );
            let body = format!(
                "<CreateSessionResult><Credentials>\
                 <AccessKeyId>ASIASESSION{n}</AccessKeyId>\
                 <SecretAccessKey>session-secret-{n}</SecretAccessKey>\
                 <SessionToken>session-token-{n}</SessionToken>\
                 <Expiration>{expiration}</Expiration>\
                 </Credentials></CreateSessionResult>"
            );
            let mut answer = http::Response::builder();
            if dated {
                answer = answer.header(DATE, httpdate::fmt_http_date(date));
            }
            answer.body(Full::new(Bytes::from(body))).unwrap()
        }

        /// A stand-in that creates a five-minute session on every request.
        async fn creating_sessions() -> StandIn {
            StandIn::start(Arc::new(|n, _| {
                session_answer(n, SystemTime::now(), MAX_LIFETIME, true)
            }))
            .await
        }

        fn zonal_target(url: &str) -> Target {
            let toml = format!(
                "[[routes]]\nname = \"zonal\"\nupstream = \"{url}\"\nsign_host = \"{ZONAL}\"\n\
                 retry = {{ base_backoff = \"1ms\" }}\n"
            );
            let settings = Settings::from_str(&toml, ConfigFormat::Toml).unwrap();
            let target = RouteTable::new(&settings).resolve(None, "/k").unwrap();
            assert_eq!(target.s3express_session.as_deref(), Some("/"));
            target
        }

        fn iam(access_key_id: &str) -> Credentials {
            Credentials {
                access_key_id: access_key_id.into(),
                secret_access_key: "iam-secret".into(),
                session_token: None,
            }
        }

        fn iam_handle(access_key_id: &str) -> CredentialsHandle {
            CredentialsHandle::holding(
                "default".into(),
                "static",
                Arc::new(iam(access_key_id)),
                None,
            )
        }

        /// Sessions, and the proxy's signer (which signs CreateSession).
        fn sessions() -> (Arc<Sessions>, Arc<Signer>) {
            let upstream = Upstream::new(&TlsSettings::default(), Arc::new(NoopObserver)).unwrap();
            let proxy_signer = Arc::new(Signer::new());
            let sessions = Sessions::new(upstream, proxy_signer.clone(), Arc::new(Metrics::new()));
            (Arc::new(sessions), proxy_signer)
        }

        /// The signer of one request to `target` that signs with a session.
        fn request(
            sessions: &Arc<Sessions>,
            proxy_signer: &Arc<Signer>,
            target: &Target,
            iam: &CredentialsHandle,
        ) -> RequestSigner {
            let auth = SessionAuth::new(sessions.clone(), target, iam.clone());
            RequestSigner::new(
                iam.clone(),
                proxy_signer.clone(),
                target,
                RequestPayload::empty(),
                &HeaderMap::new(),
                None,
                Arc::default(),
                Some(Box::new(auth)),
            )
        }

        /// Prepares and signs one attempt of `signer`; the access key id it
        /// was signed with.
        async fn attempt(signer: &RequestSigner, target: &Target) -> String {
            signer.prepare().unwrap().await.unwrap();
            let uri = format!("{}://{}/k", target.scheme, target.authority);
            let (mut head, ()) = http::Request::get(uri).body(()).unwrap().into_parts();
            head.headers.insert(HOST, target.host.clone());
            signer.sign(&mut head).unwrap();
            key_id(&head)
        }

        #[tokio::test]
        async fn session_keys_stay_out_of_the_proxys_key_cache() {
            let up = creating_sessions().await;
            let target = zonal_target(&up.url);
            let (sessions, proxy_signer) = sessions();
            let iam = iam_handle("AKIDIAM");
            let signer = request(&sessions, &proxy_signer, &target, &iam);
            assert_eq!(attempt(&signer, &target).await, "ASIASESSION0");
            assert_eq!(up.signed_by(), ["AKIDIAM"], "CreateSession, with IAM");
            // The proxy's cache holds the IAM key only; the session's key is
            // in the sessions' own.
            assert_eq!(proxy_signer.key_cache().len(), 1);
            assert_eq!(sessions.session_signer().key_cache().len(), 1);
            let mut unsigned = HeaderMap::new();
            let iam_signed = RequestSigner::new(
                iam.clone(),
                proxy_signer.clone(),
                &target,
                RequestPayload::empty(),
                &unsigned,
                None,
                Arc::default(),
                None,
            );
            let (mut head, ()) = http::Request::get(format!("{}/k", up.url))
                .body(())
                .unwrap()
                .into_parts();
            unsigned.insert(HOST, target.host.clone());
            head.headers = unsigned;
            iam_signed.sign(&mut head).unwrap();
            assert_eq!(key_id(&head), "AKIDIAM");
            assert!(!head.headers.contains_key(X_AMZ_S3SESSION_TOKEN));
            assert_eq!(proxy_signer.key_cache().len(), 1, "the same IAM key");
        }

        #[tokio::test]
        async fn create_session_signs_with_the_snapshot_that_named_the_key() {
            let iam = iam_handle("AKIDOLD");
            let rotating = iam.clone();
            // The first CreateSession is answered 503 after the credentials
            // rotated; its retry must still sign with the old ones.
            let up = StandIn::start(Arc::new(move |n, _| {
                if n == 0 {
                    rotating.rotate_to(self::iam("AKIDNEW"));
                    return http::Response::builder()
                        .status(StatusCode::SERVICE_UNAVAILABLE)
                        .body(Full::new(Bytes::new()))
                        .unwrap();
                }
                session_answer(n, SystemTime::now(), MAX_LIFETIME, true)
            }))
            .await;
            let target = zonal_target(&up.url);
            let (sessions, proxy_signer) = sessions();
            let first = request(&sessions, &proxy_signer, &target, &iam);
            assert_eq!(attempt(&first, &target).await, "ASIASESSION1");
            assert_eq!(up.signed_by(), ["AKIDOLD", "AKIDOLD"]);
            // Filed under the old key id: the new one creates its own session.
            let second = request(&sessions, &proxy_signer, &target, &iam);
            assert_eq!(attempt(&second, &target).await, "ASIASESSION2");
            assert_eq!(up.signed_by(), ["AKIDOLD", "AKIDOLD", "AKIDNEW"]);
        }

        #[tokio::test]
        async fn reads_how_long_a_session_lasts_from_the_answers_date() {
            // The endpoint's clock is ten minutes behind ours: by ours, its
            // sessions expired five minutes ago.
            let behind = Duration::from_secs(600);
            let up = StandIn::start(Arc::new(move |n, _| {
                session_answer(n, SystemTime::now() - behind, MAX_LIFETIME, true)
            }))
            .await;
            let target = zonal_target(&up.url);
            let (sessions, _) = sessions();
            let auth = SessionAuth::new(sessions.clone(), &target, iam_handle("AKIDIAM"));
            let before = SystemTime::now();
            auth.prepare().await.unwrap();
            let mut headers = HeaderMap::new();
            let signing = auth.for_attempt(&mut headers).unwrap();
            assert_eq!(signing.access_key_id, "ASIASESSION0");
            let current = auth.current.lock().unwrap().clone().unwrap();
            let lasts = current.session.expires_at().duration_since(before).unwrap();
            // Five minutes, give or take the Date's whole seconds.
            assert!(
                lasts > MAX_LIFETIME - Duration::from_secs(2)
                    && lasts <= MAX_LIFETIME + Duration::from_secs(2),
                "{lasts:?}"
            );
        }

        #[tokio::test]
        async fn without_a_date_reads_the_expiration_by_the_local_clock() {
            let behind = Duration::from_secs(600);
            let up = StandIn::start(Arc::new(move |n, _| {
                session_answer(n, SystemTime::now() - behind, MAX_LIFETIME, false)
            }))
            .await;
            let target = zonal_target(&up.url);
            let (sessions, _) = sessions();
            let auth = SessionAuth::new(sessions, &target, iam_handle("AKIDIAM"));
            assert_eq!(
                auth.prepare().await.unwrap_err(),
                SessionError::Expired.into_sign_failure()
            );
        }

        #[tokio::test]
        async fn a_rejected_session_is_dropped_and_the_next_request_creates_another() {
            let up = creating_sessions().await;
            let target = zonal_target(&up.url);
            let (sessions, proxy_signer) = sessions();
            let iam = iam_handle("AKIDIAM");
            let first = request(&sessions, &proxy_signer, &target, &iam);
            assert_eq!(attempt(&first, &target).await, "ASIASESSION0");
            // Other errors leave the session be.
            assert!(!first.rejected(StatusCode::FORBIDDEN, "AccessDenied"));
            assert!(!first.rejected(StatusCode::NOT_FOUND, "NoSuchKey"));
            let again = request(&sessions, &proxy_signer, &target, &iam);
            assert_eq!(attempt(&again, &target).await, "ASIASESSION0");
            // Worth another attempt, which signs with a new session.
            assert!(first.rejected(StatusCode::BAD_REQUEST, "ExpiredToken"));
            assert!(sessions.cache.is_empty());
            let second = request(&sessions, &proxy_signer, &target, &iam);
            assert_eq!(attempt(&second, &target).await, "ASIASESSION1");
            // A late rejection of the first session leaves the new one alone.
            // (still worth another attempt: it would sign with the new one).
            assert!(again.rejected(StatusCode::FORBIDDEN, "InvalidToken"));
            let third = request(&sessions, &proxy_signer, &target, &iam);
            assert_eq!(attempt(&third, &target).await, "ASIASESSION1");
            assert_eq!(up.signed_by(), ["AKIDIAM", "AKIDIAM"], "two CreateSessions");
        }

        #[test]
        fn a_request_signer_without_a_session_is_no_larger_for_it() {
            // One pointer, null when there is no session (a `SessionAuth`
            // inline took some 330 bytes more on 64-bit targets).
            assert_eq!(
                std::mem::size_of::<Option<Box<SessionAuth>>>(),
                std::mem::size_of::<usize>()
            );
            assert!(
                std::mem::size_of::<RequestSigner>() <= 160,
                "{}",
                std::mem::size_of::<RequestSigner>()
            );
        }
    }

    #[test]
    fn reads_only_plausible_error_codes() {
        let code = |body: &str| error_code(body.as_bytes());
        assert_eq!(
            code("<Error><Code>NoSuchBucket</Code><Message>x</Message></Error>").as_deref(),
            Some("NoSuchBucket")
        );
        assert_eq!(code("<Error><Code>a b</Code></Error>"), None);
        assert_eq!(code(&format!("<Code>{}</Code>", "A".repeat(65))), None);
        assert_eq!(code("{\"message\":\"no\"}"), None);
    }
}
