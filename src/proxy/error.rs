//! Every way a proxied request can fail, and the one place that turns a failure
//! into an HTTP answer: a short JSON body plus an `x-signet-error` header.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};

use crate::routing::RouteError;
use crate::upstream::ForwardError;

/// Name of the response header carrying the machine-readable failure kind.
pub const ERROR_HEADER: &str = "x-signet-error";

/// Why signet answered a request itself instead of forwarding it.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// No route matches, or the Host may not be signed for.
    #[error(transparent)]
    Route(#[from] RouteError),
    /// The body is larger than the route's cap for signed payloads.
    #[error("request body exceeds the {cap} byte limit for signed payloads on this route")]
    BodyTooLarge {
        /// The route's cap in bytes.
        cap: u64,
    },
    /// Reading the client's body failed.
    #[error("reading the request body failed: {0}")]
    ClientBody(String),
    /// The client's aws-chunked body is malformed.
    #[error("malformed aws-chunked body: {0}")]
    AwsChunked(String),
    /// The client's aws-chunked framing is one signet cannot re-sign.
    #[error("unsupported aws-chunked upload: {0}")]
    AwsChunkedUnsupported(&'static str),
    /// The request cannot be turned into an upstream request.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The route names a credentials source that is not running.
    #[error("no credentials source {0:?} for this route")]
    NoCredentialsSource(String),
    /// Forwarding failed (unreachable, timeout, shed, signing).
    #[error(transparent)]
    Forward(#[from] ForwardError),
}

impl ProxyError {
    /// The HTTP status signet answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::Route(e) => e.status(),
            ProxyError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::ClientBody(_)
            | ProxyError::AwsChunked(_)
            | ProxyError::AwsChunkedUnsupported(_)
            | ProxyError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ProxyError::NoCredentialsSource(_) => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::Forward(e) => e.status(),
        }
    }

    /// Whether the signer refused the request (as opposed to credentials
    /// being unavailable or the upstream failing).
    pub fn is_signing_failure(&self) -> bool {
        matches!(
            self,
            ProxyError::Forward(ForwardError::Sign(crate::upstream::SignFailure::Signing(_)))
        )
    }

    /// A short machine-readable name for the `x-signet-error` header.
    pub fn kind(&self) -> &'static str {
        match self {
            ProxyError::Route(RouteError::NoRoute { .. }) => "no_route",
            ProxyError::Route(RouteError::UnknownHost { .. }) => "unknown_host",
            ProxyError::BodyTooLarge { .. } => "body_too_large",
            ProxyError::ClientBody(_) => "client_body",
            ProxyError::AwsChunked(_) | ProxyError::AwsChunkedUnsupported(_) => "aws_chunked",
            ProxyError::BadRequest(_) => "bad_request",
            ProxyError::NoCredentialsSource(_) => "credentials_unavailable",
            ProxyError::Forward(e) => e.kind(),
        }
    }
}

impl IntoResponse for ProxyError {
    fn into_response(self) -> Response {
        let status = self.status();
        let kind = self.kind();
        let body = serde_json::json!({ "error": kind, "message": self.to_string() });
        let mut response = Response::new(Body::from(body.to_string()));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(ERROR_HEADER, HeaderValue::from_static(kind));
        if let ProxyError::Forward(e) = &self {
            if let Some(after) = e.retry_after() {
                // Whole seconds, rounded up so a client never retries early.
                let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
                headers.insert(http::header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
            }
        }
        response
    }
}
