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
//! workers, keyed by IAM access key id and bucket) or creates it through the
//! same upstream client, route policy and signer as the request; the attempt
//! is then signed with it (`SessionAuth::for_attempt`). A request that
//! needs a session is never sent without one: when CreateSession fails, the
//! client gets 502 `s3express_session` with the upstream's status and error
//! code.
//!
//! CopyObject and UploadPartCopy (a PUT with `x-amz-copy-source`), HeadBucket
//! (HEAD on the bucket root) and CreateSession itself sign with the IAM
//! credentials, as S3 Express requires.

mod answer;
mod cache;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use http::header::{HeaderMap, HeaderValue, HOST};
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

/// What the requests signing with sessions share: the cache, and what
/// CreateSession is sent and signed with.
pub struct Sessions {
    cache: SessionCache,
    upstream: Upstream,
    signer: Arc<Signer>,
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
    /// Sessions created through `upstream`, signed by `signer`, counted in
    /// `metrics`.
    pub fn new(upstream: Upstream, signer: Arc<Signer>, metrics: Arc<Metrics>) -> Self {
        Self {
            cache: SessionCache::new(SessionCache::DEFAULT_CAPACITY),
            upstream,
            signer,
            metrics,
        }
    }
}

/// One request's session authentication: which session (IAM identity and
/// bucket), and the session its next attempt signs with.
pub(crate) struct SessionAuth {
    sessions: Arc<Sessions>,
    target: Target,
    /// The bucket part of the cache key: upstream, signed host, root path.
    bucket: Box<str>,
    credentials: CredentialsHandle,
    current: Mutex<Option<Arc<Session>>>,
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
        let bucket = format!("{} {host}{root}", target.upstream).into_boxed_str();
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
        let iam = self
            .credentials
            .current()
            .map_err(|e| SignFailure::CredentialsUnavailable(e.reason))?;
        let key = SessionKey::new(&iam.access_key_id, &self.bucket);
        let session = self
            .sessions
            .cache
            .get(&key, || self.create_counted())
            .await
            .map_err(SessionError::into_sign_failure)?;
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = Some(session);
        Ok(())
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
            .clone()
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
    async fn create_counted(&self) -> Result<Session, SessionError> {
        let made = self.create().await;
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

    /// Sends CreateSession for the bucket, signed with the IAM credentials,
    /// and reads the session from its answer.
    async fn create(&self) -> Result<Session, SessionError> {
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
            self.credentials.clone(),
            self.sessions.signer.clone(),
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
        Session::new(
            &values.access_key_id,
            &values.secret_access_key,
            &values.session_token,
            values.expiration,
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
