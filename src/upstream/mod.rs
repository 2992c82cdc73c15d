//! The upstream path: one pooled TLS client with retries, timeouts and load shedding.
//!
//! The proxy hands each prepared request to [`Upstream::send`] as an
//! [`OutboundRequest`]: the absolute upstream URI and the exact headers to send
//! (unsigned), the body, an [`AttemptSigner`] that signs one attempt in place, and the
//! route's [`RoutePolicy`]. The answer is either the upstream's response, whose body
//! ([`ResponseBody`]) streams frame by frame, or a [`ForwardError`] that the proxy maps
//! to a response in one place:
//!
//! ```ignore
//! match upstream.send(request).await {
//!     Ok(response) => response.map(axum::body::Body::new),
//!     Err(e) => error_response(e.status(), e.kind(), &e.to_string(), e.retry_after()),
//! }
//! ```
//!
//! The steps, in the order a request takes them ([`Upstream::send`]):
//!
//! 1. **shed**: per-upstream (scheme + authority) in-flight limit; past it, an immediate
//!    [`ForwardError::Shed`] (503 + Retry-After), never a queue. A request counts until
//!    its response body ends.
//! 2. **retry**: up to `max_attempts`, full-jitter exponential backoff with a cap, a
//!    per-route-and-upstream retry budget, Retry-After honoured, optional adaptive rate
//!    limiting. Retries connection failures, timeouts, 429/500/502/503/504 and the AWS
//!    throttling and transient error codes (from `x-amzn-ErrorType` or a small JSON/XML
//!    error body, which is handed back to the client intact), and an error answer whose
//!    credentials the signer has dropped ([`AttemptSigner::rejected`]: a refused S3
//!    Express session). Only replayable bodies are retried: buffered ones always,
//!    streamed ones only if no byte went out.
//! 3. **attempt** (`attempt::send_attempt`): one future per attempt that
//!    - signs it with [`AttemptSigner::sign`] afresh (new X-Amz-Date, current
//!      credentials, after [`AttemptSigner::prepare`] when the signer needs a
//!      session first); an attempt that cannot be signed is never sent;
//!    - sends it on a pooled connection of this thread (rustls with the `ring` provider,
//!      webpki roots plus an optional CA bundle; h1 and h2 by ALPN; plain http too),
//!      whose connector enforces the connect timeout;
//!    - waits for the response head at most the first-byte timeout after the request
//!      body was handed over, and never past the total deadline across attempts;
//!    - for a streamed body (`upload`): the time it takes to send does not count
//!      against the deadline while it moves, and an upstream that stops taking it
//!      for the idle timeout ends the attempt.
//!
//! The response body enforces the idle timeout between frames.
//!
//! Counters go to an [`UpstreamObserver`] (telemetry implements it for `/metrics`).

mod attempt;
mod body;
mod client;
mod error;
mod gap;
mod retry;
mod settings;
mod shed;
mod sweep;
mod upload;

use std::sync::Arc;

pub use body::ResponseBody;
pub use client::tls_config;
pub use error::{ForwardError, SignFailure, TimeoutKind, UpstreamError};
pub(crate) use gap::GapTimer;
pub(crate) use retry::xml_element;
pub use retry::{backoff_bound, classify_error_code, ErrorClass};
pub use settings::{
    duration_serde, LimitSettings, RetryMode, RetrySettings, RoutePolicy, TimeoutSettings,
    TlsSettings,
};
pub use shed::upstream_key;

/// Signs one attempt in place: sets `x-amz-date`, `authorization` (and the session
/// token, content hash, ...) from the current credentials snapshot.
///
/// Called once per attempt, so every retry carries a fresh date and the newest
/// credentials. Must not block: read the credentials snapshot, do not wait for a refresh.
/// What cannot be had without waiting (an S3 Express session) is fetched by
/// [`prepare`](AttemptSigner::prepare), which the retry loop awaits before each attempt.
pub trait AttemptSigner: Send + Sync {
    /// Signs `parts` (absolute upstream URI, headers as they will be sent).
    fn sign(&self, parts: &mut http::request::Parts) -> Result<(), SignFailure>;

    /// Makes ready what signing the next attempt needs and only a request of its
    /// own can get (an S3 Express session, from CreateSession); awaited before
    /// each attempt, within the request's total deadline. `None`, the default,
    /// when there is nothing to wait for: no allocation, no await.
    fn prepare(&self) -> Option<futures_util::future::BoxFuture<'_, Result<(), SignFailure>>> {
        None
    }

    /// Told of an error answer to an attempt it signed, with the AWS error code
    /// the retry loop read from it (`x-amzn-ErrorType`, or a small error body
    /// it reads anyway to classify the answer; answers without a code, and
    /// successes, are not reported): a signer whose credentials the upstream
    /// may reject (an S3 Express session) forgets them. Returns true when it
    /// did, so that another attempt would sign with other credentials: the
    /// retry loop then retries the answer under the route's retry policy,
    /// naming the code as the reason. The default does nothing and returns
    /// false. Must not block.
    fn rejected(&self, _status: http::StatusCode, _code: &str) -> bool {
        false
    }
}

/// The body of an outbound request.
pub enum OutboundBody {
    /// No body.
    Empty,
    /// A body held in memory (signed payloads); always replayable.
    Buffered(bytes::Bytes),
    /// A body streamed from the client; replayable only until its first byte went out.
    Streaming(axum::body::Body),
}

impl std::fmt::Debug for OutboundBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OutboundBody::Empty => f.write_str("Empty"),
            OutboundBody::Buffered(b) => write!(f, "Buffered({} bytes)", b.len()),
            OutboundBody::Streaming(_) => f.write_str("Streaming"),
        }
    }
}

/// One request for the upstream, as the proxy prepared it.
pub struct OutboundRequest {
    /// Method, absolute upstream URI (`https://host/path?query`), and the unsigned
    /// headers exactly as they will be sent. Signing headers are added per attempt.
    pub parts: http::request::Parts,
    /// The body.
    pub body: OutboundBody,
    /// Signs each attempt.
    pub signer: Arc<dyn AttemptSigner>,
    /// The route's retry, timeout and limit settings.
    pub policy: Arc<RoutePolicy>,
    /// The route's name, for metrics and logs.
    pub route: Arc<str>,
    /// The upstream's key, `scheme://authority` ([`upstream_key`] of the URI): the
    /// in-flight limit and the retry budget are kept per upstream.
    pub upstream: Arc<str>,
}

/// Receives the upstream path's counters. Every method has a no-op default.
///
/// Implementations must be cheap and must not block (they run on the request path).
pub trait UpstreamObserver: Send + Sync {
    /// An attempt is about to be sent (first attempts and retries alike).
    fn attempt(&self, _route: &str) {}
    /// A retry was decided; `reason` is e.g. `connection`, `first_byte_timeout`,
    /// `http_503` or an AWS error code such as `SlowDown`.
    fn retry(&self, _route: &str, _reason: &str) {}
    /// A retry was wanted but the retry budget was empty; the last answer went back.
    fn budget_exhausted(&self, _route: &str) {}
    /// A timeout fired; `kind` is a [`TimeoutKind::as_str`] name.
    fn timeout(&self, _route: &str, _kind: &str) {}
    /// A request was shed (503 at once) because its upstream was at its in-flight limit.
    fn shed(&self, _route: &str) {}
    /// The backoff delay chosen before a retry (for histograms and tests).
    fn backoff(&self, _route: &str, _delay: std::time::Duration) {}
}

/// An observer that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopObserver;

impl UpstreamObserver for NoopObserver {}

/// The upstream client: its connection pool, in-flight counts and retry states.
/// Cheap to clone; build once at start.
#[derive(Clone)]
pub struct Upstream {
    shared: Arc<Shared>,
}

struct Shared {
    pool: client::Pool,
    observer: Arc<dyn UpstreamObserver>,
    in_flight: shed::InFlight,
    retry_states: retry::RetryStates,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream").finish_non_exhaustive()
    }
}

impl Upstream {
    /// Builds the pooled client. Fails only on bad TLS settings (unreadable or empty
    /// CA bundle). Logs a warning when certificate verification is off. Connections
    /// are opened lazily, on the first request to each upstream.
    pub fn new(
        tls: &TlsSettings,
        observer: Arc<dyn UpstreamObserver>,
    ) -> Result<Self, UpstreamError> {
        Ok(Self {
            shared: Arc::new(Shared {
                pool: client::Pool::new(tls)?,
                observer,
                in_flight: shed::InFlight::default(),
                retry_states: retry::RetryStates::default(),
            }),
        })
    }

    /// Sends one request through shedding, retries, timeouts and signing, and returns
    /// the upstream's response (its body streaming) or why it could not be forwarded.
    pub async fn send(
        &self,
        request: OutboundRequest,
    ) -> Result<http::Response<ResponseBody>, ForwardError> {
        let shared = &*self.shared;
        let permit = shared.in_flight.admit(&request, &*shared.observer)?;
        let response = retry::send_with_retries(
            &shared.pool,
            &shared.observer,
            &shared.retry_states,
            request,
        )
        .await?;
        // The request counts as in flight until its response body ends.
        Ok(response.map(|body| body.with_permit(permit)))
    }

    /// Like [`send`](Self::send), without the in-flight limit: for a request
    /// signet makes on behalf of others (an S3 Express CreateSession, one per
    /// bucket at a time), which requests already holding a place under the limit
    /// wait for.
    pub async fn send_unshed(
        &self,
        request: OutboundRequest,
    ) -> Result<http::Response<ResponseBody>, ForwardError> {
        let shared = &*self.shared;
        retry::send_with_retries(
            &shared.pool,
            &shared.observer,
            &shared.retry_states,
            request,
        )
        .await
    }
}
