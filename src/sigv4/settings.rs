//! What to sign and how: per-service defaults and caller overrides.

use std::time::Duration;

/// Longest presigned-URL lifetime AWS accepts (7 days).
pub const MAX_PRESIGN_EXPIRES: Duration = Duration::from_secs(604_800);

/// Where the signature goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureLocation {
    /// `Authorization` header (plus `X-Amz-Date` and friends as headers).
    Headers,
    /// Presigned URL: `X-Amz-*` query parameters valid for `expires`
    /// (whole seconds, 1 s to 7 days).
    Query {
        /// Value of `X-Amz-Expires`.
        expires: Duration,
    },
}

/// The signature algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
pub enum Algorithm {
    /// SigV4 (`AWS4-HMAC-SHA256`): scoped to one region.
    #[default]
    V4,
    /// SigV4a (`AWS4-ECDSA-P256-SHA256`): an ECDSA P-256 signature valid in a
    /// set of regions, which [`SigningParams::region`](super::SigningParams)
    /// names (`*`, `us-east-1`, `us-east-1,us-west-2`). It travels in
    /// `X-Amz-Region-Set` and the credential scope has no region. Multi-Region
    /// Access Points and EventBridge global endpoints require it.
    V4a,
}

impl Algorithm {
    /// The name in the Authorization header and the string to sign.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::V4 => "AWS4-HMAC-SHA256",
            Algorithm::V4a => "AWS4-ECDSA-P256-SHA256",
        }
    }
}

/// How the session token of temporary credentials is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SessionTokenMode {
    /// Sent and signed: the `x-amz-security-token` header in header mode,
    /// `X-Amz-Security-Token` in the canonical query in presign mode.
    #[default]
    Signed,
    /// Sent but added after signing (not covered by the signature), as a
    /// few services expect.
    AddedAfterSigning,
    /// Not sent at all.
    Omitted,
}

/// Which of the request's own headers are signed.
///
/// `host` and the headers signing adds (`x-amz-date`,
/// `x-amz-security-token`, `x-amz-content-sha256`, SigV4a's
/// `x-amz-region-set`) are always signed;
/// `authorization` never is. Names compare case-insensitively.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum SignedHeaders {
    /// Every header present.
    #[default]
    All,
    /// Every header except these.
    AllExcept(Vec<String>),
    /// Only these (plus the always-signed ones).
    Only(Vec<String>),
}

impl SignedHeaders {
    /// Whether a caller-supplied header called `name` is signed.
    pub fn includes(&self, name: &str) -> bool {
        if name.eq_ignore_ascii_case("host") {
            return true;
        }
        match self {
            SignedHeaders::All => true,
            SignedHeaders::AllExcept(list) => !list.iter().any(|n| n.eq_ignore_ascii_case(name)),
            SignedHeaders::Only(list) => list.iter().any(|n| n.eq_ignore_ascii_case(name)),
        }
    }
}

/// True for the services that use S3's signing rules
/// (s3, s3express, s3-object-lambda, s3-outposts).
pub fn is_s3_family(service: &str) -> bool {
    matches!(
        service,
        "s3" | "s3express" | "s3-object-lambda" | "s3-outposts"
    )
}

/// Signing options. Start from [`SigningSettings::for_service`] and override
/// fields as needed.
///
/// ```
/// use signet::sigv4::{SigningSettings, SignatureLocation};
/// let s3 = SigningSettings::for_service("s3");
/// assert!(!s3.normalize_path && !s3.double_encode_path && s3.content_sha256_header);
/// let mut ddb = SigningSettings::for_service("dynamodb");
/// assert!(ddb.normalize_path && ddb.double_encode_path && !ddb.content_sha256_header);
/// ddb.location = SignatureLocation::Query { expires: std::time::Duration::from_secs(900) };
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigningSettings {
    /// Remove `.`/`..` segments and duplicate slashes from the path before
    /// encoding (every service but S3).
    pub normalize_path: bool,
    /// Percent-encode the path as sent once more (every service but S3).
    /// When false the path is used as sent, with only bytes that cannot
    /// appear in a request target (space, controls, non-ASCII) escaped.
    pub double_encode_path: bool,
    /// Send and sign `x-amz-content-sha256` with the payload hash
    /// (always on for S3; `--sign-body` elsewhere). Header mode only.
    pub content_sha256_header: bool,
    /// Header or presigned-query signing.
    pub location: SignatureLocation,
    /// How a session token is sent.
    pub session_token: SessionTokenMode,
    /// Which of the request's headers are signed.
    pub signed_headers: SignedHeaders,
    /// SigV4 or SigV4a.
    pub algorithm: Algorithm,
}

impl SigningSettings {
    /// Whether a request's header `name` (any case) is left out of the
    /// signature because signing with these settings replaces it:
    /// `authorization` always; in header mode also `x-amz-date`,
    /// `x-amz-security-token` when a session token is sent (`token_sent`),
    /// `x-amz-content-sha256` when the payload-hash header is on, and
    /// `x-amz-region-set` with SigV4a.
    ///
    /// ```
    /// use signet::sigv4::SigningSettings;
    /// let s3 = SigningSettings::for_service("s3");
    /// assert!(s3.replaces_header("Authorization", false));
    /// assert!(s3.replaces_header("x-amz-content-sha256", false));
    /// assert!(!s3.replaces_header("x-amz-security-token", false));
    /// assert!(s3.replaces_header("x-amz-security-token", true));
    /// assert!(!SigningSettings::for_service("sqs").replaces_header("x-amz-content-sha256", false));
    /// ```
    pub fn replaces_header(&self, name: &str, token_sent: bool) -> bool {
        let is = |owned: &str| name.eq_ignore_ascii_case(owned);
        is(AUTHORIZATION)
            || (self.location == SignatureLocation::Headers
                && (is(X_AMZ_DATE)
                    || (token_sent && is(X_AMZ_SECURITY_TOKEN))
                    || (self.content_sha256_header && is(X_AMZ_CONTENT_SHA256))
                    || (self.algorithm == Algorithm::V4a && is(X_AMZ_REGION_SET))))
    }

    /// Defaults for `service`: S3-family rules for the S3 services, the
    /// generic SigV4 rules for all others; header signing, token signed,
    /// every header signed, SigV4.
    pub fn for_service(service: &str) -> Self {
        let s3 = is_s3_family(service);
        Self {
            normalize_path: !s3,
            double_encode_path: !s3,
            content_sha256_header: s3,
            location: SignatureLocation::Headers,
            session_token: SessionTokenMode::Signed,
            signed_headers: SignedHeaders::All,
            algorithm: Algorithm::V4,
        }
    }
}

impl Default for SigningSettings {
    /// The generic (non-S3) rules.
    fn default() -> Self {
        Self::for_service("")
    }
}

/// The payload hash that ends the canonical request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadHash<'a> {
    /// Hash these body bytes (SHA-256, hex).
    Bytes(&'a [u8]),
    /// A SHA-256 hex digest computed by the caller (64 hex digits).
    Precomputed(&'a str),
    /// `UNSIGNED-PAYLOAD`.
    Unsigned,
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD` (aws-chunked, signed chunks).
    StreamingSigned,
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER` (signed chunks and trailer).
    StreamingSignedTrailer,
    /// `STREAMING-UNSIGNED-PAYLOAD-TRAILER` (unsigned chunks, trailer).
    StreamingUnsignedTrailer,
    /// Any other value, used verbatim.
    Explicit(&'a str),
}

/// `Authorization`: the signature in header mode.
pub const AUTHORIZATION: &str = "authorization";
/// `X-Amz-Date`: the signing time in header mode.
pub const X_AMZ_DATE: &str = "x-amz-date";
/// `X-Amz-Security-Token`: the session token of temporary credentials.
pub const X_AMZ_SECURITY_TOKEN: &str = "x-amz-security-token";
/// `X-Amz-Content-Sha256`: the payload hash (S3, or when asked for).
pub const X_AMZ_CONTENT_SHA256: &str = "x-amz-content-sha256";
/// `X-Amz-Region-Set`: the regions a SigV4a signature is valid in.
pub const X_AMZ_REGION_SET: &str = "x-amz-region-set";

/// The headers signing owns: whatever a request carries under these names is
/// left out of the signature and replaced by what the signer adds (see
/// [`SigningSettings::replaces_header`] for when each one applies).
pub const SIGNING_HEADERS: [&str; 5] = [
    AUTHORIZATION,
    X_AMZ_DATE,
    X_AMZ_SECURITY_TOKEN,
    X_AMZ_CONTENT_SHA256,
    X_AMZ_REGION_SET,
];

/// `UNSIGNED-PAYLOAD`.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`.
pub const STREAMING_SIGNED_PAYLOAD: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
/// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER`.
pub const STREAMING_SIGNED_PAYLOAD_TRAILER: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER";
/// `STREAMING-UNSIGNED-PAYLOAD-TRAILER`.
pub const STREAMING_UNSIGNED_PAYLOAD_TRAILER: &str = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";
/// SHA-256 of the empty string.
pub const EMPTY_PAYLOAD_SHA256: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

impl PayloadHash<'_> {
    /// Maps a CLI/config spelling to a payload hash: the four named values
    /// are recognised, anything else is [`PayloadHash::Explicit`].
    pub fn from_value(value: &str) -> PayloadHash<'_> {
        match value {
            UNSIGNED_PAYLOAD => PayloadHash::Unsigned,
            STREAMING_SIGNED_PAYLOAD => PayloadHash::StreamingSigned,
            STREAMING_SIGNED_PAYLOAD_TRAILER => PayloadHash::StreamingSignedTrailer,
            STREAMING_UNSIGNED_PAYLOAD_TRAILER => PayloadHash::StreamingUnsignedTrailer,
            other => PayloadHash::Explicit(other),
        }
    }
}
