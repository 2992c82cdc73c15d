//! The upstream path's errors and their one mapping to HTTP status codes.

use std::time::Duration;

use http::StatusCode;

use super::settings::duration_serde;

/// Which timeout fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeoutKind {
    /// TCP connect plus TLS handshake.
    Connect,
    /// Waiting for the response head of one attempt after the request went out.
    FirstByte,
    /// The deadline across all attempts.
    Total,
    /// Waiting between two frames of a body (the response, or a streamed request body
    /// the upstream stopped taking).
    Idle,
}

impl TimeoutKind {
    /// Short machine-readable name, used as a metrics label and in `x-signet-error`.
    pub fn as_str(self) -> &'static str {
        match self {
            TimeoutKind::Connect => "connect_timeout",
            TimeoutKind::FirstByte => "first_byte_timeout",
            TimeoutKind::Total => "total_deadline",
            TimeoutKind::Idle => "idle_timeout",
        }
    }

    fn label(self) -> &'static str {
        match self {
            TimeoutKind::Connect => "connect timeout",
            TimeoutKind::FirstByte => "first-byte timeout",
            TimeoutKind::Total => "total deadline",
            TimeoutKind::Idle => "idle timeout",
        }
    }
}

/// What an [`AttemptSigner`](super::AttemptSigner) reports when it cannot sign.
///
/// Messages must not contain secrets: they reach the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignFailure {
    /// No valid credentials right now (not yet loaded, expired, refresh failing). → 503.
    #[error("credentials unavailable: {0}")]
    CredentialsUnavailable(String),
    /// The request could not be signed (e.g. a header value the signer refuses). → 500.
    #[error("signing failed: {0}")]
    Signing(String),
    /// The S3 Express session the request must be signed with could not be
    /// created (CreateSession unreachable, refused or unreadable). → 502.
    #[error("no S3 Express session: {0}")]
    Session(String),
}

/// Why a request could not be forwarded (or its response body broke off).
///
/// Map it to a response in one place with [`ForwardError::status`],
/// [`ForwardError::kind`] (for the `x-signet-error` header) and
/// [`ForwardError::retry_after`]; `Display` is the short reason for the body.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// Connecting failed: refused, unreachable, DNS or TLS handshake failure. → 502.
    #[error("upstream unreachable: {0}")]
    Unreachable(String),
    /// The connection failed after it was established (reset, closed early, protocol
    /// error). → 502.
    #[error("upstream connection failed: {0}")]
    Connection(String),
    /// A timeout fired. → 504.
    #[error("{}", timeout_message(*.kind, *.after))]
    Timeout {
        /// Which one.
        kind: TimeoutKind,
        /// Its configured length.
        after: Duration,
    },
    /// The upstream has too many requests in flight; try again after `retry_after`. → 503.
    #[error("upstream overloaded: {in_flight} requests in flight")]
    Shed {
        /// The in-flight limit that was reached.
        in_flight: usize,
        /// What to tell the client in Retry-After.
        retry_after: Duration,
    },
    /// The signer could not sign the attempt. → 503 or 500.
    #[error(transparent)]
    Sign(#[from] SignFailure),
    /// The outbound request itself is malformed (e.g. no absolute upstream URI). → 500.
    #[error("invalid upstream request: {0}")]
    InvalidRequest(String),
    /// The streamed request body failed while being read from the client. → 400.
    #[error("request body failed: {0}")]
    RequestBody(String),
    /// The response body failed mid-stream (only seen while streaming it). → 502.
    #[error("upstream response body failed: {0}")]
    ResponseBody(String),
}

fn timeout_message(kind: TimeoutKind, after: Duration) -> String {
    format!("{} after {}", kind.label(), duration_serde::format(after))
}

impl ForwardError {
    /// Counts a fired timeout of `kind` on `route` with `observer` and returns
    /// the error that names it.
    pub(crate) fn timed_out(
        observer: &dyn super::UpstreamObserver,
        route: &str,
        kind: TimeoutKind,
        after: Duration,
    ) -> ForwardError {
        observer.timeout(route, kind.as_str());
        ForwardError::Timeout { kind, after }
    }

    /// The HTTP status signet answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            ForwardError::Unreachable(_)
            | ForwardError::Connection(_)
            | ForwardError::ResponseBody(_)
            | ForwardError::Sign(SignFailure::Session(_)) => StatusCode::BAD_GATEWAY,
            ForwardError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ForwardError::Shed { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ForwardError::Sign(SignFailure::CredentialsUnavailable(_)) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ForwardError::Sign(SignFailure::Signing(_)) | ForwardError::InvalidRequest(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            ForwardError::RequestBody(_) => StatusCode::BAD_REQUEST,
        }
    }

    /// Short machine-readable name for the `x-signet-error` header and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ForwardError::Unreachable(_) => "upstream_unreachable",
            ForwardError::Connection(_) => "upstream_connection",
            ForwardError::Timeout { kind, .. } => kind.as_str(),
            ForwardError::Shed { .. } => "overloaded",
            ForwardError::Sign(SignFailure::CredentialsUnavailable(_)) => "credentials_unavailable",
            ForwardError::Sign(SignFailure::Signing(_)) => "signing_failed",
            ForwardError::Sign(SignFailure::Session(_)) => "s3express_session",
            ForwardError::InvalidRequest(_) => "invalid_upstream_request",
            ForwardError::RequestBody(_) => "request_body",
            ForwardError::ResponseBody(_) => "upstream_body",
        }
    }

    /// The Retry-After to send with this error, if any (shedding).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ForwardError::Shed { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}

/// Why the upstream client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The CA bundle file could not be read.
    #[error("ca_bundle {path}: {source}")]
    CaBundleRead {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The CA bundle held no usable certificate.
    #[error("ca_bundle {path}: {reason}")]
    CaBundleInvalid {
        /// The file.
        path: String,
        /// What was wrong.
        reason: String,
    },
    /// rustls refused the configuration.
    #[error("tls configuration: {0}")]
    Tls(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_messages_name_the_timeout_and_its_length() {
        let e = ForwardError::Timeout {
            kind: TimeoutKind::Connect,
            after: Duration::from_secs(3),
        };
        assert_eq!(e.to_string(), "connect timeout after 3s");
        assert_eq!(e.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(e.kind(), "connect_timeout");
        let e = ForwardError::Timeout {
            kind: TimeoutKind::FirstByte,
            after: Duration::from_millis(250),
        };
        assert_eq!(e.to_string(), "first-byte timeout after 250ms");
    }

    #[test]
    fn maps_each_error_to_its_status() {
        assert_eq!(
            ForwardError::Unreachable("refused".into()).status(),
            StatusCode::BAD_GATEWAY
        );
        let shed = ForwardError::Shed {
            in_flight: 4,
            retry_after: Duration::from_secs(1),
        };
        assert_eq!(shed.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(shed.retry_after(), Some(Duration::from_secs(1)));
        let creds = ForwardError::from(SignFailure::CredentialsUnavailable("expired".into()));
        assert_eq!(creds.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(creds.to_string(), "credentials unavailable: expired");
        assert_eq!(creds.kind(), "credentials_unavailable");
        let sign = ForwardError::from(SignFailure::Signing("bad header".into()));
        assert_eq!(sign.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let session = ForwardError::from(SignFailure::Session(
            "CreateSession answered 403 AccessDenied".into(),
        ));
        assert_eq!(session.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(session.kind(), "s3express_session");
        assert_eq!(
            session.to_string(),
            "no S3 Express session: CreateSession answered 403 AccessDenied"
        );
    }
}
