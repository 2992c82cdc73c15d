//! Header and presigned-query signing of a request given as primitives.

use std::fmt;
use std::fmt::Write as _;

use hmac::Mac;
use sha2::{Digest, Sha256};

use super::canonical::{
    check_header_name, check_header_value, push_signed_headers, sort_headers, write_headers,
    write_uri, CanonicalQuery, HeaderEntry,
};
use super::chunked::ChunkSigner;
use super::encoding::{hex32, write_encoded, BufferedHasher, Sink, Tee};
use super::key::{Signature, SigningKey, SigningKeyCache};
use super::settings::{
    Algorithm, PayloadHash, SessionTokenMode, SignatureLocation, SigningSettings, AUTHORIZATION,
    MAX_PRESIGN_EXPIRES, STREAMING_SIGNED_PAYLOAD, STREAMING_SIGNED_PAYLOAD_TRAILER,
    STREAMING_UNSIGNED_PAYLOAD_TRAILER, UNSIGNED_PAYLOAD, X_AMZ_CONTENT_SHA256, X_AMZ_DATE,
    X_AMZ_REGION_SET, X_AMZ_SECURITY_TOKEN,
};
use super::v4a::{EcdsaKey, EcdsaKeyCache};
use super::{AmzDate, Credentials, SigningError};

/// `AWS4-HMAC-SHA256` (SigV4; see [`Algorithm::name`] for SigV4a's).
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// A request to sign, as primitives: what HTTP types cannot express (raw
/// UTF-8 or spaces in the target, repeated or odd headers) can be signed.
///
/// `headers` are signed in the order given for repeated names; names may be
/// in any case. A `host` header is required. Existing `authorization`
/// headers are ignored; in header mode so are `x-amz-date` and the headers
/// signing replaces (`x-amz-security-token` when a token is sent,
/// `x-amz-content-sha256` when that header is enabled).
#[derive(Clone, Copy, Debug)]
pub struct SignableRequest<'a> {
    /// HTTP method, e.g. `GET`.
    pub method: &'a str,
    /// Path as sent (percent-encoded or raw), without the query.
    pub path: &'a str,
    /// Query as sent, without the leading `?` (empty when none).
    pub query: &'a str,
    /// Header (name, value) pairs in request order.
    pub headers: &'a [(&'a str, &'a [u8])],
    /// The payload hash to sign.
    pub payload: PayloadHash<'a>,
}

/// Who signs, for which scope and when, and with which settings.
#[derive(Clone, Copy, Debug)]
pub struct SigningParams<'a> {
    /// Access key, secret and optional session token.
    pub credentials: &'a Credentials,
    /// Region of the credential scope, e.g. `us-east-1`; with SigV4a, the
    /// region set (`*`, `us-east-1,us-west-2`).
    pub region: &'a str,
    /// Signing name of the service, e.g. `s3`, `execute-api`.
    pub service: &'a str,
    /// Signing time.
    pub time: AmzDate,
    /// Signing options.
    pub settings: &'a SigningSettings,
}

/// The payload hash as text, without borrowing the request.
#[derive(Clone)]
enum PayloadText {
    Static(&'static str),
    Hex([u8; 64]),
    Owned(String),
}

impl PayloadText {
    fn as_str(&self) -> &str {
        match self {
            PayloadText::Static(s) => s,
            PayloadText::Hex(h) => std::str::from_utf8(h).unwrap_or_default(),
            PayloadText::Owned(s) => s,
        }
    }

    fn from_payload(p: &PayloadHash<'_>) -> Result<Self, SigningError> {
        Ok(match *p {
            PayloadHash::Bytes(b) => PayloadText::Hex(hex32(&Sha256::digest(b))),
            PayloadHash::Precomputed(h) => {
                if h.len() != 64 || !h.bytes().all(|c| c.is_ascii_hexdigit()) {
                    return Err(SigningError::InvalidPayloadHash);
                }
                let mut hex = [0u8; 64];
                for (o, c) in hex.iter_mut().zip(h.bytes()) {
                    *o = c.to_ascii_lowercase();
                }
                PayloadText::Hex(hex)
            }
            PayloadHash::Unsigned => PayloadText::Static(UNSIGNED_PAYLOAD),
            PayloadHash::StreamingSigned => PayloadText::Static(STREAMING_SIGNED_PAYLOAD),
            PayloadHash::StreamingSignedTrailer => {
                PayloadText::Static(STREAMING_SIGNED_PAYLOAD_TRAILER)
            }
            PayloadHash::StreamingUnsignedTrailer => {
                PayloadText::Static(STREAMING_UNSIGNED_PAYLOAD_TRAILER)
            }
            PayloadHash::Explicit(v) => {
                if v.is_empty() || !v.bytes().all(|c| c > 0x20 && c < 0x7f) {
                    return Err(SigningError::InvalidPayloadHash);
                }
                PayloadText::Owned(v.to_owned())
            }
        })
    }
}

/// The result of signing: the signature and what to add to the request.
///
/// `Debug` redacts the signature, the Authorization value and the token.
#[derive(Clone)]
pub struct SigningOutput<'p> {
    location: SignatureLocation,
    time: AmzDate,
    signature: SignatureText,
    /// SigV4a in header mode: the `x-amz-region-set` value.
    region_set: Option<&'p str>,
    signed_headers: String,
    /// Header mode: the Authorization value; query mode: the X-Amz-* params.
    text: String,
    session_token: Option<&'p str>,
    content_sha256: Option<PayloadText>,
}

/// A signature as it is sent.
#[derive(Clone)]
enum SignatureText {
    /// SigV4: 64 hex digits.
    V4(Signature),
    /// SigV4a: a DER-encoded ECDSA signature in hex.
    V4a(String),
}

impl<'p> SigningOutput<'p> {
    /// The signature: 64 hex digits (SigV4) or a hex DER ECDSA signature
    /// (SigV4a).
    pub fn signature(&self) -> &str {
        match &self.signature {
            SignatureText::V4(s) => s.as_str(),
            SignatureText::V4a(s) => s,
        }
    }

    /// A SigV4 signature as a value (seed for [`ChunkSigner`]); `None` for
    /// SigV4a.
    pub fn signature_value(&self) -> Option<Signature> {
        match self.signature {
            SignatureText::V4(s) => Some(s),
            SignatureText::V4a(_) => None,
        }
    }

    /// The `;`-separated signed header names, e.g. `host;x-amz-date`.
    pub fn signed_headers(&self) -> &str {
        &self.signed_headers
    }

    /// The signing time (`X-Amz-Date`).
    pub fn time(&self) -> AmzDate {
        self.time
    }

    /// Where the signature goes.
    pub fn location(&self) -> SignatureLocation {
        self.location
    }

    /// Header mode: the `Authorization` value.
    pub fn authorization(&self) -> Option<&str> {
        match self.location {
            SignatureLocation::Headers => Some(&self.text),
            SignatureLocation::Query { .. } => None,
        }
    }

    /// Query mode: the encoded parameters to append to the query, in the
    /// conventional order `X-Amz-Algorithm`, `X-Amz-Credential`,
    /// `X-Amz-Date`, `X-Amz-SignedHeaders`, `X-Amz-Expires`,
    /// (`X-Amz-Security-Token`), (`X-Amz-Region-Set`), `X-Amz-Signature`.
    pub fn presigned_params(&self) -> Option<&str> {
        match self.location {
            SignatureLocation::Headers => None,
            SignatureLocation::Query { .. } => Some(&self.text),
        }
    }

    /// Query mode: `query` (as sent, may be empty) with the presign
    /// parameters appended. Header mode: `query` unchanged.
    pub fn query_with(&self, query: &str) -> String {
        match self.presigned_params() {
            None => query.to_owned(),
            Some(params) if query.is_empty() => params.to_owned(),
            Some(params) => {
                let mut q = String::with_capacity(query.len() + 1 + params.len());
                q.push_str(query);
                q.push('&');
                q.push_str(params);
                q
            }
        }
    }

    /// Header mode: the headers to set on the request (lower-case names),
    /// in this order: `x-amz-date`, `x-amz-region-set` (SigV4a),
    /// `x-amz-security-token` (when a token is sent), `x-amz-content-sha256`
    /// (when enabled), `authorization`. Query mode: nothing.
    pub fn headers(&self) -> impl Iterator<Item = (&'static str, &str)> + '_ {
        let header_mode = self.location == SignatureLocation::Headers;
        let date = header_mode.then(|| (X_AMZ_DATE, self.time.as_str()));
        let region_set = self
            .region_set
            .filter(|_| header_mode)
            .map(|r| (X_AMZ_REGION_SET, r));
        let token = self
            .session_token
            .filter(|_| header_mode)
            .map(|t| (X_AMZ_SECURITY_TOKEN, t));
        let sha = self
            .content_sha256
            .as_ref()
            .filter(|_| header_mode)
            .map(|p| (X_AMZ_CONTENT_SHA256, p.as_str()));
        let auth = header_mode.then_some((AUTHORIZATION, self.text.as_str()));
        date.into_iter()
            .chain(region_set)
            .chain(token)
            .chain(sha)
            .chain(auth)
    }
}

impl fmt::Debug for SigningOutput<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningOutput")
            .field("location", &self.location)
            .field("time", &self.time)
            .field("signed_headers", &self.signed_headers)
            .field("signature", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// Every intermediate value of one signature (for `signet sign --format
/// json` and debugging SignatureDoesNotMatch). Built only when asked for.
///
/// These strings contain the signature and, in presign mode or with a
/// token, the session token: print them only where the user asked to.
/// `Debug` redacts them.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningExplanation {
    /// The canonical request, exactly as hashed (header bytes that are not
    /// UTF-8 appear as U+FFFD here; the hash covers the original bytes).
    pub canonical_request: String,
    /// The string to sign, exactly as signed.
    pub string_to_sign: String,
    /// The signature (hex).
    pub signature: String,
    /// The signed header names, `;`-separated.
    pub signed_headers: String,
    /// Header mode: the `Authorization` value.
    pub authorization: Option<String>,
    /// Query mode: the full query to send (original query plus the
    /// presign parameters).
    pub query: Option<String>,
    /// Header mode: headers to add, (lower-case name, value), in the order
    /// of [`SigningOutput::headers`].
    pub added_headers: Vec<(String, String)>,
}

impl fmt::Debug for SigningExplanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningExplanation")
            .field("signed_headers", &self.signed_headers)
            .field("canonical_request_len", &self.canonical_request.len())
            .finish_non_exhaustive()
    }
}

/// Signs requests, caching derived signing keys.
///
/// `Send + Sync`: share one (e.g. in an `Arc`) across all tasks.
///
/// ```
/// use signet::sigv4::{AmzDate, Credentials, PayloadHash, SignableRequest, Signer, SigningParams, SigningSettings};
/// let signer = Signer::new();
/// let creds = Credentials {
///     access_key_id: "AKIDEXAMPLE".into(),
///     secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
///     session_token: None,
/// };
/// let settings = SigningSettings::for_service("service");
/// let params = SigningParams {
///     credentials: &creds,
///     region: "us-east-1",
///     service: "service",
///     time: AmzDate::parse("20150830T123600Z").unwrap(),
///     settings: &settings,
/// };
/// let headers: [(&str, &[u8]); 1] = [("Host", b"example.amazonaws.com")];
/// let request = SignableRequest {
///     method: "GET",
///     path: "/",
///     query: "",
///     headers: &headers,
///     payload: PayloadHash::Bytes(b""),
/// };
/// let out = signer.sign(&request, &params).unwrap();
/// assert_eq!(out.signature(), "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
/// ```
#[derive(Debug, Default)]
pub struct Signer {
    keys: SigningKeyCache,
    v4a_keys: EcdsaKeyCache,
}

impl Signer {
    /// A signer with a key cache of [`SigningKeyCache::DEFAULT_CAPACITY`].
    pub fn new() -> Self {
        Self::default()
    }

    /// A signer using `keys` as its cache.
    pub fn with_key_cache(keys: SigningKeyCache) -> Self {
        Self {
            keys,
            v4a_keys: EcdsaKeyCache::default(),
        }
    }

    /// The SigV4 key cache.
    pub fn key_cache(&self) -> &SigningKeyCache {
        &self.keys
    }

    /// The signing key for `params`' scope (cached).
    pub fn signing_key(&self, params: &SigningParams<'_>) -> SigningKey {
        self.keys.get_or_derive(
            params.credentials,
            params.time.date(),
            params.region,
            params.service,
        )
    }

    /// Signs `request`. SigV4 builds no intermediate strings.
    pub fn sign<'p>(
        &self,
        request: &SignableRequest<'_>,
        params: &SigningParams<'p>,
    ) -> Result<SigningOutput<'p>, SigningError> {
        validate_scope(params)?;
        match params.settings.algorithm {
            Algorithm::V4 => {
                sign_with_key(request, params, Key::V4(&self.signing_key(params)), None)
            }
            Algorithm::V4a => {
                let key = self.v4a_keys.get_or_derive(params.credentials)?;
                sign_with_key(request, params, Key::V4a(&key), None)
            }
        }
    }

    /// Signs `request` and returns every intermediate value.
    pub fn explain(
        &self,
        request: &SignableRequest<'_>,
        params: &SigningParams<'_>,
    ) -> Result<SigningExplanation, SigningError> {
        validate_scope(params)?;
        match params.settings.algorithm {
            Algorithm::V4 => explain_with_key(request, params, Key::V4(&self.signing_key(params))),
            Algorithm::V4a => {
                let key = self.v4a_keys.get_or_derive(params.credentials)?;
                explain_with_key(request, params, Key::V4a(&key))
            }
        }
    }

    /// A [`ChunkSigner`] continuing from a request signed with a
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]` payload hash.
    /// SigV4a chunk signatures are not supported: [`SigningError::ChunkedV4a`].
    pub fn chunk_signer(
        &self,
        seed: &SigningOutput<'_>,
        params: &SigningParams<'_>,
    ) -> Result<ChunkSigner, SigningError> {
        let seed = match (params.settings.algorithm, seed.signature_value()) {
            (Algorithm::V4, Some(seed)) => seed,
            _ => return Err(SigningError::ChunkedV4a),
        };
        Ok(ChunkSigner::new(
            self.signing_key(params),
            params.time,
            params.region,
            params.service,
            seed,
        ))
    }
}

/// The key one signature is made with.
#[derive(Clone, Copy)]
enum Key<'k> {
    /// SigV4's derived HMAC key.
    V4(&'k SigningKey),
    /// SigV4a's ECDSA key.
    V4a(&'k EcdsaKey),
}

/// Signs `request` without a key cache (derives the key every call).
pub fn sign<'p>(
    request: &SignableRequest<'_>,
    params: &SigningParams<'p>,
) -> Result<SigningOutput<'p>, SigningError> {
    validate_scope(params)?;
    match params.settings.algorithm {
        Algorithm::V4 => sign_with_key(request, params, Key::V4(&derive_key(params)), None),
        Algorithm::V4a => {
            let key = derive_v4a_key(params)?;
            sign_with_key(request, params, Key::V4a(&key), None)
        }
    }
}

/// Like [`sign`], returning every intermediate value.
pub fn explain(
    request: &SignableRequest<'_>,
    params: &SigningParams<'_>,
) -> Result<SigningExplanation, SigningError> {
    validate_scope(params)?;
    match params.settings.algorithm {
        Algorithm::V4 => explain_with_key(request, params, Key::V4(&derive_key(params))),
        Algorithm::V4a => explain_with_key(request, params, Key::V4a(&derive_v4a_key(params)?)),
    }
}

fn derive_v4a_key(params: &SigningParams<'_>) -> Result<EcdsaKey, SigningError> {
    EcdsaKey::derive(
        &params.credentials.access_key_id,
        &params.credentials.secret_access_key,
    )
}

fn derive_key(params: &SigningParams<'_>) -> SigningKey {
    SigningKey::derive(
        &params.credentials.secret_access_key,
        params.time.date(),
        params.region,
        params.service,
    )
}

fn validate_scope(params: &SigningParams<'_>) -> Result<(), SigningError> {
    let ok = |s: &str| !s.is_empty() && s.bytes().all(|b| b > 0x20 && b < 0x7f && b != b'/');
    if !ok(params.region) || !ok(params.service) {
        return Err(SigningError::InvalidScope);
    }
    if !ok(&params.credentials.access_key_id) {
        return Err(SigningError::InvalidAccessKeyId);
    }
    Ok(())
}

/// Text captured while explaining.
struct ExplainText {
    canonical_request: Vec<u8>,
    string_to_sign: String,
}

fn explain_with_key(
    request: &SignableRequest<'_>,
    params: &SigningParams<'_>,
    key: Key<'_>,
) -> Result<SigningExplanation, SigningError> {
    let mut text = ExplainText {
        canonical_request: Vec::new(),
        string_to_sign: String::new(),
    };
    let out = sign_with_key(request, params, key, Some(&mut text))?;
    Ok(SigningExplanation {
        canonical_request: String::from_utf8_lossy(&text.canonical_request).into_owned(),
        string_to_sign: text.string_to_sign,
        signature: out.signature().to_owned(),
        signed_headers: out.signed_headers().to_owned(),
        authorization: out.authorization().map(str::to_owned),
        query: out
            .presigned_params()
            .map(|_| out.query_with(request.query)),
        added_headers: out
            .headers()
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect(),
    })
}

/// Appends `v` percent-encoded (strict) to `s`.
fn push_encoded(s: &mut String, v: &str) {
    let mut buf = Vec::with_capacity(v.len());
    write_encoded(&mut buf, v.as_bytes(), false);
    // Percent-encoding output is ASCII.
    s.push_str(&String::from_utf8_lossy(&buf));
}

/// The credential scope: `date/region/service/aws4_request`, or
/// `date/service/aws4_request` with SigV4a.
fn push_scope(s: &mut String, params: &SigningParams<'_>, sep: &str) {
    s.push_str(params.time.date());
    s.push_str(sep);
    if params.settings.algorithm == Algorithm::V4 {
        s.push_str(params.region);
        s.push_str(sep);
    }
    s.push_str(params.service);
    s.push_str(sep);
    s.push_str("aws4_request");
}

fn is_name(name: &str, lower: &str) -> bool {
    name.eq_ignore_ascii_case(lower)
}

/// Everything the canonical request is written from.
struct CanonicalParts<'r, 'h> {
    request: &'r SignableRequest<'r>,
    settings: &'r SigningSettings,
    headers: &'h [HeaderEntry<'h>],
    signed_headers: &'h str,
    payload: &'h str,
    extra: &'h [u8],
}

impl CanonicalParts<'_, '_> {
    fn write<S: Sink + ?Sized>(&self, sink: &mut S, query: &mut CanonicalQuery<'_>) {
        sink.put(self.request.method.as_bytes());
        sink.put(b"\n");
        write_uri(
            sink,
            self.request.path,
            self.settings.normalize_path,
            self.settings.double_encode_path,
        );
        sink.put(b"\n");
        query.write(sink, self.extra);
        sink.put(b"\n");
        write_headers(sink, self.headers);
        sink.put(b"\n");
        sink.put(self.signed_headers.as_bytes());
        sink.put(b"\n");
        sink.put(self.payload.as_bytes());
    }
}

/// The signing core shared by every entry point.
fn sign_with_key<'p>(
    request: &SignableRequest<'_>,
    params: &SigningParams<'p>,
    key: Key<'_>,
    mut explain: Option<&mut ExplainText>,
) -> Result<SigningOutput<'p>, SigningError> {
    let settings = params.settings;
    let algorithm = settings.algorithm.name();
    let region_set = (settings.algorithm == Algorithm::V4a).then_some(params.region);
    let header_mode = settings.location == SignatureLocation::Headers;
    if let SignatureLocation::Query { expires } = settings.location {
        if expires.as_secs() == 0 || expires > MAX_PRESIGN_EXPIRES || expires.subsec_nanos() != 0 {
            return Err(SigningError::InvalidExpires(expires.as_secs()));
        }
    }
    if request.method.is_empty() || !request.method.bytes().all(super::canonical::is_tchar) {
        return Err(SigningError::InvalidMethod);
    }
    // SigV4a chunk signatures (STREAMING-AWS4-ECDSA-...) are not supported:
    // an HMAC streaming declaration under an ECDSA signature would be refused.
    if settings.algorithm == Algorithm::V4a
        && matches!(
            request.payload,
            PayloadHash::StreamingSigned | PayloadHash::StreamingSignedTrailer
        )
    {
        return Err(SigningError::ChunkedV4a);
    }

    let payload = PayloadText::from_payload(&request.payload)?;
    let token = params.credentials.session_token.as_deref();
    let token_sent = match settings.session_token {
        SessionTokenMode::Omitted => None,
        _ => token,
    };
    let token_signed = settings.session_token == SessionTokenMode::Signed;
    if let Some(t) = token_sent {
        if t.is_empty() || !t.bytes().all(|b| b > 0x20 && b < 0x7f) {
            return Err(SigningError::InvalidSessionToken);
        }
    }
    let add_sha = header_mode && settings.content_sha256_header;

    // Headers: the caller's (filtered) plus those signing adds.
    let mut headers: Vec<HeaderEntry<'_>> = Vec::with_capacity(request.headers.len() + 3);
    let mut has_host = false;
    for &(name, value) in request.headers {
        check_header_name(name)?;
        check_header_value(name, value)?;
        if is_name(name, "host") {
            has_host = true;
        } else if settings.replaces_header(name, token_sent.is_some())
            || !settings.signed_headers.includes(name)
        {
            continue;
        }
        headers.push(HeaderEntry { name, value });
    }
    if !has_host {
        return Err(SigningError::MissingHost);
    }
    if header_mode {
        headers.push(HeaderEntry {
            name: X_AMZ_DATE,
            value: params.time.as_str().as_bytes(),
        });
        if let Some(set) = region_set {
            headers.push(HeaderEntry {
                name: X_AMZ_REGION_SET,
                value: set.as_bytes(),
            });
        }
        if let (Some(t), true) = (token_sent, token_signed) {
            headers.push(HeaderEntry {
                name: X_AMZ_SECURITY_TOKEN,
                value: t.as_bytes(),
            });
        }
        if add_sha {
            headers.push(HeaderEntry {
                name: X_AMZ_CONTENT_SHA256,
                value: payload.as_str().as_bytes(),
            });
        }
    }
    sort_headers(&mut headers);
    let mut signed_headers =
        String::with_capacity(headers.iter().map(|h| h.name.len() + 1).sum::<usize>());
    push_signed_headers(&mut signed_headers, &headers);

    // Query (with the presign parameters in query mode).
    let mut query = CanonicalQuery::parse(request.query)?;
    let mut text = String::with_capacity(
        200 + params.credentials.access_key_id.len()
            + params.region.len()
            + params.service.len()
            + 3 * signed_headers.len()
            + token_sent.map_or(0, |t| 3 * t.len()),
    );
    if let SignatureLocation::Query { expires } = settings.location {
        let mut param = |text: &mut String, name: &str, value: &dyn Fn(&mut String), signed| {
            if !text.is_empty() {
                text.push('&');
            }
            let k = text.len()..text.len() + name.len();
            text.push_str(name);
            text.push('=');
            let vs = text.len();
            value(text);
            if signed {
                query.push_extra(k, vs..text.len());
            }
        };
        param(
            &mut text,
            "X-Amz-Algorithm",
            &|t| t.push_str(algorithm),
            true,
        );
        param(
            &mut text,
            "X-Amz-Credential",
            &|t| {
                push_encoded(t, &params.credentials.access_key_id);
                t.push_str("%2F");
                push_scope(t, params, "%2F");
            },
            true,
        );
        param(
            &mut text,
            "X-Amz-Date",
            &|t| t.push_str(params.time.as_str()),
            true,
        );
        param(
            &mut text,
            "X-Amz-SignedHeaders",
            &|t| push_encoded(t, &signed_headers),
            true,
        );
        param(
            &mut text,
            "X-Amz-Expires",
            &|t| {
                let _ = write!(t, "{}", expires.as_secs());
            },
            true,
        );
        if let Some(tok) = token_sent {
            param(
                &mut text,
                "X-Amz-Security-Token",
                &|t| push_encoded(t, tok),
                token_signed,
            );
        }
        if let Some(set) = region_set {
            param(
                &mut text,
                "X-Amz-Region-Set",
                &|t| push_encoded(t, set),
                true,
            );
        }
    } else {
        text.push_str(algorithm);
        text.push_str(" Credential=");
        text.push_str(&params.credentials.access_key_id);
        text.push('/');
        push_scope(&mut text, params, "/");
        text.push_str(", SignedHeaders=");
        text.push_str(&signed_headers);
        text.push_str(", Signature=");
    }

    // Canonical request, straight into the hasher.
    let mut hasher = BufferedHasher::new();
    let parts = CanonicalParts {
        request,
        settings,
        headers: &headers,
        signed_headers: &signed_headers,
        payload: payload.as_str(),
        extra: text.as_bytes(),
    };
    match explain.as_deref_mut() {
        Some(ex) => parts.write(
            &mut Tee {
                hasher: &mut hasher,
                text: &mut ex.canonical_request,
            },
            &mut query,
        ),
        None => parts.write(&mut hasher, &mut query),
    }
    let creq_hash = hex32(&hasher.finalize());

    let signature = match key {
        Key::V4(key) => {
            // String to sign, straight into the HMAC.
            let mut mac = key.mac();
            mac.update(ALGORITHM.as_bytes());
            mac.update(b"\n");
            mac.update(params.time.as_str().as_bytes());
            mac.update(b"\n");
            mac.update(params.time.date().as_bytes());
            mac.update(b"/");
            mac.update(params.region.as_bytes());
            mac.update(b"/");
            mac.update(params.service.as_bytes());
            mac.update(b"/aws4_request\n");
            mac.update(&creq_hash);
            SignatureText::V4(Signature::from_digest(&mac.finalize().into_bytes()))
        }
        Key::V4a(key) => {
            SignatureText::V4a(key.sign(string_to_sign(params, &creq_hash).as_bytes()))
        }
    };
    if let Some(ex) = explain {
        ex.string_to_sign = string_to_sign(params, &creq_hash);
    }

    let signature_text = match &signature {
        SignatureText::V4(s) => s.as_str(),
        SignatureText::V4a(s) => s.as_str(),
    };
    if header_mode {
        text.push_str(signature_text);
    } else {
        text.push_str("&X-Amz-Signature=");
        text.push_str(signature_text);
    }

    Ok(SigningOutput {
        location: settings.location,
        time: params.time,
        signature,
        region_set: region_set.filter(|_| header_mode),
        signed_headers,
        text,
        session_token: if header_mode { token_sent } else { None },
        content_sha256: add_sha.then_some(payload),
    })
}

/// The string to sign: algorithm, time, credential scope and the canonical
/// request's hash, one per line.
fn string_to_sign(params: &SigningParams<'_>, creq_hash: &[u8; 64]) -> String {
    let mut sts = String::with_capacity(160);
    sts.push_str(params.settings.algorithm.name());
    sts.push('\n');
    sts.push_str(params.time.as_str());
    sts.push('\n');
    push_scope(&mut sts, params, "/");
    sts.push('\n');
    sts.push_str(std::str::from_utf8(creq_hash).unwrap_or_default());
    sts
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const HOST: [(&str, &[u8]); 1] = [("Host", b"example.amazonaws.com")];

    fn creds(token: Option<&str>) -> Credentials {
        Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: token.map(str::to_owned),
        }
    }

    fn params<'a>(c: &'a Credentials, s: &'a SigningSettings) -> SigningParams<'a> {
        SigningParams {
            credentials: c,
            region: "us-east-1",
            service: "service",
            time: AmzDate::parse("20150830T123600Z").unwrap(),
            settings: s,
        }
    }

    fn get<'a>(headers: &'a [(&'a str, &'a [u8])]) -> SignableRequest<'a> {
        SignableRequest {
            method: "GET",
            path: "/",
            query: "",
            headers,
            payload: PayloadHash::Bytes(b""),
        }
    }

    #[test]
    fn signs_the_token_header_in_header_mode() {
        let c = creds(Some("tok"));
        let s = SigningSettings::for_service("service");
        let out = sign(&get(&HOST), &params(&c, &s)).unwrap();
        assert_eq!(out.signed_headers(), "host;x-amz-date;x-amz-security-token");
        let names: Vec<_> = out.headers().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            ["x-amz-date", "x-amz-security-token", "authorization"]
        );
    }

    #[test]
    fn sends_but_does_not_sign_a_token_added_after_signing() {
        let c = creds(Some("tok"));
        let mut s = SigningSettings::for_service("service");
        s.session_token = SessionTokenMode::AddedAfterSigning;
        let out = sign(&get(&HOST), &params(&c, &s)).unwrap();
        assert_eq!(out.signed_headers(), "host;x-amz-date");
        assert!(out
            .headers()
            .any(|(n, v)| n == "x-amz-security-token" && v == "tok"));
        s.session_token = SessionTokenMode::Omitted;
        let out = sign(&get(&HOST), &params(&c, &s)).unwrap();
        assert!(!out.headers().any(|(n, _)| n == "x-amz-security-token"));
    }

    #[test]
    fn puts_the_token_in_the_canonical_query_when_presigning() {
        let c = creds(Some("a/b+c"));
        let mut s = SigningSettings::for_service("service");
        s.location = SignatureLocation::Query {
            expires: Duration::from_secs(60),
        };
        let ex = explain(&get(&HOST), &params(&c, &s)).unwrap();
        assert!(ex
            .canonical_request
            .contains("&X-Amz-Security-Token=a%2Fb%2Bc&X-Amz-SignedHeaders=host\n"));
        let q = ex.query.unwrap();
        assert!(q.contains("&X-Amz-Expires=60&X-Amz-Security-Token=a%2Fb%2Bc&X-Amz-Signature="));
        assert!(ex.authorization.is_none() && ex.added_headers.is_empty());

        s.session_token = SessionTokenMode::AddedAfterSigning;
        let ex = explain(&get(&HOST), &params(&c, &s)).unwrap();
        assert!(!ex.canonical_request.contains("X-Amz-Security-Token"));
        assert!(ex.query.unwrap().contains("X-Amz-Security-Token=a%2Fb%2Bc"));
    }

    #[test]
    fn replaces_caller_signing_headers_and_ignores_authorization() {
        let c = creds(None);
        let mut s = SigningSettings::for_service("service");
        s.content_sha256_header = true;
        let stale: [(&str, &[u8]); 4] = [
            ("Host", b"example.amazonaws.com"),
            ("X-Amz-Date", b"19990101T000000Z"),
            ("Authorization", b"AWS4-HMAC-SHA256 old"),
            ("x-amz-content-sha256", b"stale"),
        ];
        let a = explain(&get(&stale), &params(&c, &s)).unwrap();
        let b = explain(&get(&HOST), &params(&c, &s)).unwrap();
        assert_eq!(a, b);
        assert!(a.canonical_request.contains(
            "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
        ));
    }

    #[test]
    fn explain_matches_the_fast_path_and_cached_keys() {
        let c = creds(Some("tok"));
        let s = SigningSettings::for_service("s3");
        let signer = Signer::new();
        let p = params(&c, &s);
        let fast = signer.sign(&get(&HOST), &p).unwrap();
        let again = signer.sign(&get(&HOST), &p).unwrap();
        let ex = signer.explain(&get(&HOST), &p).unwrap();
        assert_eq!(fast.signature(), ex.signature);
        assert_eq!(again.signature(), ex.signature);
        assert_eq!(sign(&get(&HOST), &p).unwrap().signature(), ex.signature);
        assert_eq!(fast.authorization(), ex.authorization.as_deref());
        assert_eq!(signer.key_cache().derivations(), 1);
    }

    #[test]
    fn normalizes_precomputed_hashes_and_rejects_bad_ones() {
        let c = creds(None);
        let s = SigningSettings::for_service("s3");
        let upper = EMPTY_HASH_UPPER;
        let mut r = get(&HOST);
        r.payload = PayloadHash::Precomputed(upper);
        let a = sign(&r, &params(&c, &s)).unwrap();
        let b = sign(&get(&HOST), &params(&c, &s)).unwrap();
        assert_eq!(a.signature(), b.signature());
        let not_hex = "g".repeat(64);
        for bad in ["", "abc", not_hex.as_str()] {
            r.payload = PayloadHash::Precomputed(bad);
            assert_eq!(
                sign(&r, &params(&c, &s)).unwrap_err(),
                SigningError::InvalidPayloadHash
            );
        }
        r.payload = PayloadHash::Explicit("a b");
        assert!(sign(&r, &params(&c, &s)).is_err());
    }

    const EMPTY_HASH_UPPER: &str =
        "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855";

    #[test]
    fn rejects_bad_expiry_method_and_scope() {
        let c = creds(None);
        let mut s = SigningSettings::for_service("service");
        for secs in [0, 604_801] {
            s.location = SignatureLocation::Query {
                expires: Duration::from_secs(secs),
            };
            assert_eq!(
                sign(&get(&HOST), &params(&c, &s)).unwrap_err(),
                SigningError::InvalidExpires(secs)
            );
        }
        s.location = SignatureLocation::Headers;
        let mut r = get(&HOST);
        r.method = "G ET";
        assert_eq!(
            sign(&r, &params(&c, &s)).unwrap_err(),
            SigningError::InvalidMethod
        );
        let mut p = params(&c, &s);
        p.region = "us/east";
        assert_eq!(
            sign(&get(&HOST), &p).unwrap_err(),
            SigningError::InvalidScope
        );
    }

    #[test]
    fn debug_output_hides_signatures_and_tokens() {
        let c = creds(Some("supersecrettoken"));
        let s = SigningSettings::for_service("service");
        let out = sign(&get(&HOST), &params(&c, &s)).unwrap();
        let ex = explain(&get(&HOST), &params(&c, &s)).unwrap();
        for text in [format!("{out:?}"), format!("{ex:?}"), format!("{c:?}")] {
            assert!(!text.contains(out.signature()), "{text}");
            assert!(!text.contains("supersecrettoken"), "{text}");
            assert!(!text.contains("wJalrXUtnFEMI"), "{text}");
        }
    }

    #[test]
    fn sigv4a_signs_the_region_set_and_replaces_a_callers() {
        let c = creds(Some("tok"));
        let mut s = SigningSettings::for_service("service");
        s.algorithm = Algorithm::V4a;
        let mut p = params(&c, &s);
        p.region = "us-east-1,us-west-2";
        let stale: [(&str, &[u8]); 2] = [
            ("Host", b"example.amazonaws.com"),
            ("X-Amz-Region-Set", b"eu-west-1"),
        ];
        let out = Signer::new().sign(&get(&stale), &p).unwrap();
        let added: Vec<(&str, &str)> = out.headers().collect();
        assert_eq!(added[0], ("x-amz-date", "20150830T123600Z"));
        assert_eq!(added[1], ("x-amz-region-set", "us-east-1,us-west-2"));
        assert_eq!(
            out.signed_headers(),
            "host;x-amz-date;x-amz-region-set;x-amz-security-token"
        );
        let auth = out.authorization().unwrap();
        assert!(
            auth.starts_with(
                "AWS4-ECDSA-P256-SHA256 Credential=AKIDEXAMPLE/20150830/service/aws4_request, "
            ),
            "{auth}"
        );
        assert!(out.signature_value().is_none());
        // Deterministic: the cached and uncached keys sign alike.
        assert_eq!(out.signature(), sign(&get(&stale), &p).unwrap().signature());
        let ex = explain(&get(&stale), &p).unwrap();
        assert!(ex
            .canonical_request
            .contains("x-amz-region-set:us-east-1,us-west-2\n"));
        assert!(ex.string_to_sign.starts_with(
            "AWS4-ECDSA-P256-SHA256\n20150830T123600Z\n20150830/service/aws4_request\n"
        ));
    }

    #[test]
    fn sigv4a_refuses_chunk_signing() {
        let c = creds(None);
        let mut s = SigningSettings::for_service("s3");
        s.algorithm = Algorithm::V4a;
        let signer = Signer::new();
        let mut r = get(&HOST);
        for payload in [
            PayloadHash::StreamingSigned,
            PayloadHash::StreamingSignedTrailer,
        ] {
            r.payload = payload;
            assert_eq!(
                signer.sign(&r, &params(&c, &s)).unwrap_err(),
                SigningError::ChunkedV4a
            );
        }
        // Unsigned-trailer chunks need no chunk signatures: fine.
        r.payload = PayloadHash::StreamingUnsignedTrailer;
        let out = signer.sign(&r, &params(&c, &s)).unwrap();
        assert_eq!(
            signer.chunk_signer(&out, &params(&c, &s)).unwrap_err(),
            SigningError::ChunkedV4a
        );
    }
}
