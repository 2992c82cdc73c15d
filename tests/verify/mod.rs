//! Independent SigV4 and SigV4a verification for the test upstreams: reads a
//! request's `Authorization` header, checks its scope, time, session token and
//! which headers it signs, and recomputes the signature with the `aws-sigv4`
//! crate (never signet's signer) over exactly the headers it names as signed.
//! SigV4a signatures are deterministic on both sides (RFC 6979 nonces), so they
//! are compared the same way.
//!
//! Included by `tests/common` and `tests/standins` with `#[path]`.

#![allow(dead_code)]

use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

/// How far `X-Amz-Date` may be from now, as AWS allows.
pub const MAX_SKEW: Duration = Duration::from_secs(15 * 60);

/// What a signature that verified says.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The access key id of the credential scope.
    pub akid: String,
    /// The scope's service.
    pub service: String,
    /// The scope's region; with SigV4a, the `X-Amz-Region-Set` value.
    pub region: String,
    /// Whether the signature was SigV4a (`AWS4-ECDSA-P256-SHA256`).
    pub v4a: bool,
    /// The headers named as signed, in order.
    pub signed_headers: Vec<String>,
}

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No secret is known for this access key id.
    UnknownKey(String),
    /// The session token sent is not the one of the key.
    WrongToken,
    /// Anything else, with the reason.
    Bad(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::UnknownKey(akid) => write!(f, "unknown access key {akid}"),
            Refusal::WrongToken => f.write_str("session token mismatch"),
            Refusal::Bad(reason) => f.write_str(reason),
        }
    }
}

impl From<&str> for Refusal {
    fn from(reason: &str) -> Self {
        Refusal::Bad(reason.to_string())
    }
}

impl From<String> for Refusal {
    fn from(reason: String) -> Self {
        Refusal::Bad(reason)
    }
}

/// Services signed with S3's rules (single encoding, no path normalisation).
pub fn is_s3_family(service: &str) -> bool {
    matches!(
        service,
        "s3" | "s3express" | "s3-object-lambda" | "s3-outposts"
    )
}

/// Recomputes the request's signature with the `aws-sigv4` crate, with the
/// secret and session token `key_of` knows for the access key it names.
pub fn verify(
    parts: &http::request::Parts,
    body: &[u8],
    key_of: impl Fn(&str) -> Option<(String, Option<String>)>,
) -> Result<Verified, Refusal> {
    use aws_sigv4::http_request::{
        sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest,
        SigningSettings, UriPathNormalizationMode,
    };
    let auth = parts
        .headers
        .get("authorization")
        .ok_or("missing Authorization header")?
        .to_str()
        .map_err(|_| "non-ASCII Authorization")?;
    let (v4a, rest) = match (
        auth.strip_prefix("AWS4-HMAC-SHA256 "),
        auth.strip_prefix("AWS4-ECDSA-P256-SHA256 "),
    ) {
        (Some(rest), _) => (false, rest),
        (_, Some(rest)) => (true, rest),
        _ => {
            return Err(
                "Authorization is neither AWS4-HMAC-SHA256 nor AWS4-ECDSA-P256-SHA256".into(),
            )
        }
    };
    let mut credential = None;
    let mut signed = None;
    let mut signature = None;
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        }
    }
    let (credential, signed, signature) = (
        credential.ok_or("no Credential")?,
        signed.ok_or("no SignedHeaders")?,
        signature.ok_or("no Signature")?,
    );
    // SigV4: key/date/region/service/aws4_request; SigV4a has no region.
    let scope: Vec<&str> = credential.split('/').collect();
    if scope.len() != if v4a { 4 } else { 5 } || scope.last() != Some(&"aws4_request") {
        return Err(format!("bad credential scope {credential}").into());
    }
    let (akid, service) = (scope[0], scope[scope.len() - 2]);
    let region = if v4a {
        parts
            .headers
            .get("x-amz-region-set")
            .ok_or("SigV4a without X-Amz-Region-Set")?
            .to_str()
            .map_err(|_| "bad X-Amz-Region-Set")?
    } else {
        scope[2]
    };
    let (secret, token) = key_of(akid).ok_or_else(|| Refusal::UnknownKey(akid.to_string()))?;
    let amz_date = parts
        .headers
        .get("x-amz-date")
        .ok_or("missing X-Amz-Date")?
        .to_str()
        .map_err(|_| "bad X-Amz-Date")?;
    let time = parse_amz_date(amz_date).ok_or("unparsable X-Amz-Date")?;
    let skew = match SystemTime::now().duration_since(time) {
        Ok(d) => d,
        Err(e) => e.duration(),
    };
    if skew > MAX_SKEW {
        return Err("request time too skewed".into());
    }
    if scope[1] != amz_date.get(..8).unwrap_or("") {
        return Err("scope date differs from X-Amz-Date".into());
    }
    let sent_token = parts
        .headers
        .get("x-amz-security-token")
        .and_then(|v| v.to_str().ok());
    if sent_token != token.as_deref() {
        return Err(Refusal::WrongToken);
    }
    let signed_headers: Vec<String> = signed.split(';').map(str::to_string).collect();
    let required: &[&str] = if v4a {
        &["host", "x-amz-date", "x-amz-region-set"]
    } else {
        &["host", "x-amz-date"]
    };
    for required in required {
        if !signed_headers.iter().any(|h| h == required) {
            return Err(format!("{required} is not signed").into());
        }
    }
    // Every x-amz-* header that was sent must be signed.
    for name in parts.headers.keys() {
        if name.as_str().starts_with("x-amz-") && !signed_headers.iter().any(|h| h == name.as_str())
        {
            return Err(format!("{name} travels unsigned").into());
        }
    }
    let content_sha = parts
        .headers
        .get("x-amz-content-sha256")
        .and_then(|v| v.to_str().ok());
    if let Some(h) = content_sha {
        if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) {
            let actual = hex::encode(Sha256::digest(body));
            if actual != h {
                return Err("XAmzContentSHA256Mismatch".into());
            }
        }
    }
    let mut header_pairs: Vec<(&str, String)> = Vec::new();
    for name in &signed_headers {
        let values: Vec<&str> = parts
            .headers
            .get_all(name.as_str())
            .iter()
            .map(|v| std::str::from_utf8(v.as_bytes()).unwrap_or(""))
            .collect();
        if values.is_empty() && name != "host" {
            return Err(format!("signed header {name} is missing").into());
        }
        for v in values {
            header_pairs.push((name.as_str(), v.to_string()));
        }
    }
    let host_sent = parts.headers.contains_key("host");
    let authority = parts.uri.authority().map(|a| a.to_string());
    if !host_sent {
        if let Some(a) = &authority {
            header_pairs.push(("host", a.clone()));
        }
    }
    let pq = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let host = parts
        .headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or(authority)
        .unwrap_or_default();
    let uri = format!("http://{host}{pq}");
    let mut settings = SigningSettings::default();
    settings.excluded_headers = Some(Vec::new());
    if is_s3_family(service) {
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    }
    let body_for_sig = match content_sha {
        Some(h) if signed_headers.iter().any(|s| s == "x-amz-content-sha256") => {
            settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
            SignableBody::Precomputed(h.to_string())
        }
        _ => SignableBody::Bytes(body),
    };
    let identity =
        aws_credential_types::Credentials::new(akid, secret, token, None, "verifier").into();
    let params = if v4a {
        aws_sigv4::sign::v4a::SigningParams::builder()
            .identity(&identity)
            .region_set(region)
            .name(service)
            .time(time)
            .settings(settings)
            .build()
            .map_err(|e| e.to_string())?
            .into()
    } else {
        aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(region)
            .name(service)
            .time(time)
            .settings(settings)
            .build()
            .map_err(|e| e.to_string())?
            .into()
    };
    let signable = SignableRequest::new(
        parts.method.as_str(),
        uri,
        header_pairs.iter().map(|(k, v)| (*k, v.as_str())),
        body_for_sig,
    )
    .map_err(|e| e.to_string())?;
    let (_, expected) = sign(signable, &params)
        .map_err(|e| e.to_string())?
        .into_parts();
    if expected != signature {
        return Err(format!("SignatureDoesNotMatch (signed headers {signed})").into());
    }
    Ok(Verified {
        akid: akid.to_string(),
        service: service.to_string(),
        region: region.to_string(),
        v4a,
        signed_headers,
    })
}

/// Parses `20150830T123600Z`.
pub fn parse_amz_date(s: &str) -> Option<SystemTime> {
    if s.len() != 16 || &s[8..9] != "T" || &s[15..] != "Z" {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<u64>().ok();
    let (y, mo, d) = (n(0..4)?, n(4..6)?, n(6..8)?);
    let (h, mi, se) = (n(9..11)?, n(11..13)?, n(13..15)?);
    // days from civil (Howard Hinnant)
    let (y, mo) = if mo <= 2 {
        (y - 1, mo + 9)
    } else {
        (y, mo - 3)
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * mo + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(days * 86400 + h * 3600 + mi * 60 + se))
}
