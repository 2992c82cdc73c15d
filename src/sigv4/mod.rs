//! AWS Signature Version 4, written for the proxy's hot path.
//!
//! Pure: no I/O, no async, and no dependency on the rest of the crate.
//!
//! # Entry points
//!
//! - [`Signer`]: signs with a cached signing key ([`SigningKeyCache`],
//!   keyed by access key id, date, region and service). Share one across
//!   tasks. [`Signer::sign`] takes a request as primitives
//!   ([`SignableRequest`]); [`Signer::sign_http`] /
//!   [`Signer::sign_http_request`] sign `http` types in place;
//!   [`Signer::explain`] returns every intermediate value
//!   ([`SigningExplanation`]).
//! - [`sign`] / [`explain`]: the same without a cache.
//! - [`SigningSettings::for_service`]: S3-family or generic rules; override
//!   fields for `--no-normalize`, `--sign-body`, presigning
//!   ([`SignatureLocation::Query`]), token handling ([`SessionTokenMode`])
//!   and which headers are signed ([`SignedHeaders`]).
//! - [`ChunkSigner`]: aws-chunked chunk and trailer signatures, seeded by a
//!   request signed with a `STREAMING-*` [`PayloadHash`].
//! - [`raw_request::RawRequest`]: parses a raw HTTP/1.x request (the test
//!   suite's `request.txt`, `signet sign`'s stdin).
//!
//! # Example
//!
//! ```
//! use signet::sigv4::{
//!     AmzDate, Credentials, PayloadHash, SignableRequest, SignatureLocation, Signer,
//!     SigningParams, SigningSettings,
//! };
//!
//! let signer = Signer::new();
//! let creds = Credentials {
//!     access_key_id: "AKIDEXAMPLE".into(),
//!     secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
//!     session_token: Some("token".into()),
//! };
//! let settings = SigningSettings::for_service("s3");
//! let params = SigningParams {
//!     credentials: &creds,
//!     region: "us-east-1",
//!     service: "s3",
//!     time: AmzDate::parse("20150830T123600Z").unwrap(), // the proxy uses AmzDate::now()
//!     settings: &settings,
//! };
//!
//! // 1. Primitives: any path/query bytes, headers in order (repeats allowed).
//! let headers: [(&str, &[u8]); 2] = [("Host", b"bucket.s3.amazonaws.com"), ("Range", b"bytes=0-9")];
//! let request = SignableRequest {
//!     method: "GET",
//!     path: "/my key.txt",
//!     query: "versionId=1",
//!     headers: &headers,
//!     payload: PayloadHash::Unsigned,
//! };
//! let out = signer.sign(&request, &params).unwrap();
//! for (name, value) in out.headers() {
//!     // x-amz-date, x-amz-security-token, x-amz-content-sha256, authorization
//!     assert!(!value.is_empty(), "{name}");
//! }
//! assert_eq!(out.signed_headers(), "host;range;x-amz-content-sha256;x-amz-date;x-amz-security-token");
//!
//! // 2. Every intermediate value, for debugging.
//! let ex = signer.explain(&request, &params).unwrap();
//! assert!(ex.canonical_request.starts_with("GET\n/my%20key.txt\nversionId=1\n"));
//! assert_eq!(ex.signature, out.signature());
//!
//! // 3. `http` types, in place (adds Host from the URI when missing).
//! let mut req = http::Request::get("https://bucket.s3.amazonaws.com/key").body(()).unwrap();
//! signer.sign_http_request(&mut req, PayloadHash::Unsigned, &params).unwrap();
//! assert!(req.headers().contains_key("authorization"));
//!
//! // 4. Presigned URL.
//! let mut presign = SigningSettings::for_service("s3");
//! presign.location = SignatureLocation::Query { expires: std::time::Duration::from_secs(3600) };
//! let params = SigningParams { settings: &presign, ..params };
//! let out = signer.sign(&request, &params).unwrap();
//! let query = out.query_with(request.query); // versionId=1&X-Amz-Algorithm=...&X-Amz-Signature=...
//! assert!(query.contains("&X-Amz-Signature="));
//! ```

use std::fmt;

use thiserror::Error;

mod canonical;
mod chunked;
mod encoding;
mod http;
mod key;
pub mod raw_request;
mod settings;
mod sign;
mod time;
mod v4a;

pub use chunked::{ChunkHeader, ChunkSigner};
pub use key::{Signature, SigningKey, SigningKeyCache};
pub use settings::{
    is_s3_family, Algorithm, PayloadHash, SessionTokenMode, SignatureLocation, SignedHeaders,
    SigningSettings, AUTHORIZATION, EMPTY_PAYLOAD_SHA256, MAX_PRESIGN_EXPIRES, SIGNING_HEADERS,
    STREAMING_SIGNED_PAYLOAD, STREAMING_SIGNED_PAYLOAD_TRAILER, STREAMING_UNSIGNED_PAYLOAD_TRAILER,
    UNSIGNED_PAYLOAD, X_AMZ_CONTENT_SHA256, X_AMZ_DATE, X_AMZ_REGION_SET, X_AMZ_SECURITY_TOKEN,
};
pub use sign::{
    explain, sign, SignableRequest, Signer, SigningExplanation, SigningOutput, SigningParams,
    ALGORITHM,
};
pub use time::AmzDate;
pub use v4a::{EcdsaKey, EcdsaKeyCache};

/// An AWS access key pair and optional session token, as the signer uses them.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The access key id (`AKIA...` or `ASIA...`).
    pub access_key_id: String,
    /// The secret access key. Never printed.
    pub secret_access_key: String,
    /// The session token of temporary credentials. Never printed.
    pub session_token: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Why a request could not be signed. Messages never contain secrets.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SigningError {
    /// No `host` header (and, for `http` requests, no URI authority).
    #[error("request has no Host header")]
    MissingHost,
    /// A header name is empty or not an HTTP token.
    #[error("invalid header name {0:?}")]
    InvalidHeaderName(String),
    /// A header value contains a line break or control character.
    #[error("header {name} has a value with a line break or control character")]
    InvalidHeaderValue {
        /// Lower-cased header name.
        name: String,
    },
    /// The method is empty or not an HTTP token.
    #[error("invalid HTTP method")]
    InvalidMethod,
    /// Presign expiry outside 1 s ..= 7 days or not whole seconds.
    #[error("presign expiry must be whole seconds between 1 and 604800, got {0}")]
    InvalidExpires(u64),
    /// A precomputed payload hash is not 64 hex digits, or an explicit one
    /// is empty or not printable ASCII.
    #[error("payload hash must be 64 hex digits or a printable token")]
    InvalidPayloadHash,
    /// A time outside 1970..=9999 or not in `20150830T123600Z` /
    /// `2015-08-30T12:36:00Z` form.
    #[error("invalid signing time (expected 20150830T123600Z or 2015-08-30T12:36:00Z)")]
    InvalidTime,
    /// Region or service is empty or contains `/`, spaces or non-ASCII.
    #[error("region and service must be non-empty printable ASCII without '/'")]
    InvalidScope,
    /// The access key id is empty or not printable ASCII.
    #[error("access key id must be non-empty printable ASCII")]
    InvalidAccessKeyId,
    /// The session token is empty or not printable ASCII.
    #[error("session token must be non-empty printable ASCII")]
    InvalidSessionToken,
    /// The query string is too long to sign.
    #[error("query string too long")]
    QueryTooLong,
    /// The presigned URI could not be rebuilt.
    #[error("presigned URI is not a valid URI")]
    InvalidUri,
    /// No SigV4a key could be derived from the access key pair.
    #[error("cannot derive a SigV4a key from these credentials")]
    KeyDerivation,
    /// aws-chunked chunk signatures were asked of a SigV4a signature.
    #[error("signed aws-chunked payloads are not supported with SigV4a")]
    ChunkedV4a,
}
