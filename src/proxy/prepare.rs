//! Preparing a client request for signing: which headers travel, which the
//! signer owns, and the upstream URI.
//!
//! What is signed is exactly what is sent: after [`strip_request_headers`] the
//! header map holds the forwarded headers, the signer adds its own, and the
//! request goes out with that map unchanged.

use http::header::{self, HeaderMap, HeaderName};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::Uri;

use crate::sigv4;

/// Headers that describe one connection, never forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: &[HeaderName] = &[
    header::CONNECTION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
    header::PROXY_AUTHENTICATE,
];

/// `Keep-Alive`, hop-by-hop though not in `http`'s constants.
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");

/// Client headers that signing owns ([`sigv4::SIGNING_HEADERS`] but the
/// payload hash, and the S3 Express session token): whatever the client sent
/// is replaced (`x-amz-region-set` is SigV4a's; on a SigV4 route it would
/// only be dead weight; `x-amz-s3session-token` is set only on requests
/// signed with an S3 Express session).
pub(crate) const SIGNING_OWNED: [HeaderName; 5] = [
    HeaderName::from_static(sigv4::AUTHORIZATION),
    HeaderName::from_static(sigv4::X_AMZ_DATE),
    HeaderName::from_static(sigv4::X_AMZ_SECURITY_TOKEN),
    HeaderName::from_static(sigv4::X_AMZ_REGION_SET),
    HeaderName::from_static(super::s3express::X_AMZ_S3SESSION_TOKEN),
];

/// The payload-hash header, owned by signing except in aws-chunked modes,
/// where it announces the chunk framing the body carries.
pub const CONTENT_SHA256: HeaderName = HeaderName::from_static(sigv4::X_AMZ_CONTENT_SHA256);

fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(name) || *name == KEEP_ALIVE || name.as_str().starts_with("proxy-")
}

/// Removes hop-by-hop headers: `Connection` and every header it names,
/// `Keep-Alive`, `Proxy-*`, `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most requests carry none, and most responses only `Connection:
    // keep-alive`: one pass over the names decides.
    let mut found = headers.keys().filter(|k| is_hop_by_hop(k));
    match (found.next(), found.next()) {
        (None, _) => return,
        (Some(only), None) if *only == header::CONNECTION && names_no_header(headers) => {
            headers.remove(header::CONNECTION);
            return;
        }
        _ => {}
    }
    let mut doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|k| is_hop_by_hop(k))
        .cloned()
        .collect();
    for value in headers.get_all(header::CONNECTION) {
        let tokens = value.to_str().ok().into_iter().flat_map(|v| v.split(','));
        for token in tokens.map(str::trim).filter(|t| names_a_header(t)) {
            if let Ok(name) = HeaderName::from_bytes(token.as_bytes()) {
                doomed.push(name);
            }
        }
    }
    for name in doomed {
        headers.remove(name);
    }
}

/// Whether no `Connection` token names a header to remove.
fn names_no_header(headers: &HeaderMap) -> bool {
    headers.get_all(header::CONNECTION).iter().all(|value| {
        value
            .to_str()
            .is_ok_and(|v| !v.split(',').map(str::trim).any(names_a_header))
    })
}

/// Whether a trimmed `Connection` token names a header to remove: anything
/// but an empty token, `keep-alive` (removed anyway) and `close` (an option,
/// not a header).
fn names_a_header(token: &str) -> bool {
    !(token.is_empty()
        || token.eq_ignore_ascii_case("keep-alive")
        || token.eq_ignore_ascii_case("close"))
}

/// Prepares the headers of a request bound upstream: drops hop-by-hop headers
/// and everything signing owns (the client's `Authorization`, `X-Amz-Date`,
/// `X-Amz-Security-Token`, `X-Amz-Region-Set`, `X-Amz-S3session-Token`, and `X-Amz-Content-Sha256`
/// unless `keep_content_sha256` is set for aws-chunked bodies), and sets
/// `Host` to the upstream's.
pub fn strip_request_headers(
    headers: &mut HeaderMap,
    host: &http::HeaderValue,
    keep_content_sha256: bool,
) {
    strip_hop_by_hop(headers);
    let owned = |name: &HeaderName| {
        SIGNING_OWNED.contains(name) || (!keep_content_sha256 && *name == CONTENT_SHA256)
    };
    if headers.keys().any(owned) {
        for name in SIGNING_OWNED {
            headers.remove(name);
        }
        if !keep_content_sha256 {
            headers.remove(CONTENT_SHA256);
        }
    }
    headers.insert(header::HOST, host.clone());
}

/// The upstream URI: the target's scheme and authority, then the path routing
/// chose (base path joined, prefix stripped) and the client's query, byte for
/// byte.
///
/// Returns `None` when the combination is not a valid URI.
pub fn upstream_uri(
    scheme: &Scheme,
    authority: &Authority,
    path: &str,
    query: Option<&str>,
) -> Option<Uri> {
    let mut pq = String::with_capacity(path.len() + query.map_or(0, |q| q.len() + 1) + 1);
    if !path.starts_with('/') {
        pq.push('/');
    }
    pq.push_str(path);
    if let Some(q) = query {
        pq.push('?');
        pq.push_str(q);
    }
    let pq = PathAndQuery::from_maybe_shared(pq).ok()?;
    Uri::builder()
        .scheme(scheme.clone())
        .authority(authority.clone())
        .path_and_query(pq)
        .build()
        .ok()
}

/// Removes the response headers that describe the upstream connection.
pub fn strip_response_headers(headers: &mut HeaderMap) {
    strip_hop_by_hop(headers);
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        m
    }

    #[test]
    fn strips_hop_by_hop_and_connection_named_headers() {
        let mut h = map(&[
            ("connection", "keep-alive, X-Custom-Hop"),
            ("x-custom-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("proxy-authorization", "Basic abc"),
            ("te", "trailers"),
            ("trailer", "x-amz-checksum-crc32"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "h2c"),
            ("content-type", "application/json"),
        ]);
        strip_hop_by_hop(&mut h);
        let left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, vec!["content-type"]);
    }

    #[test]
    fn a_lone_connection_header_goes_and_takes_the_headers_it_names() {
        let mut h = map(&[("connection", "Keep-Alive"), ("content-type", "text/plain")]);
        strip_hop_by_hop(&mut h);
        let left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, vec!["content-type"]);

        let mut h = map(&[
            ("connection", "close, x-session"),
            ("x-session", "1"),
            ("etag", "\"abc\""),
        ]);
        strip_hop_by_hop(&mut h);
        let left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, vec!["etag"]);

        let mut h = map(&[("etag", "\"abc\"")]);
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn drops_signing_owned_headers_and_sets_host() {
        let mut h = map(&[
            ("host", "localhost:8080"),
            ("authorization", "AWS4-HMAC-SHA256 Credential=client"),
            ("x-amz-date", "20200101T000000Z"),
            ("x-amz-security-token", "client-token"),
            ("x-amz-s3session-token", "client-session-token"),
            ("x-amz-content-sha256", "abc"),
            ("x-amz-target", "DynamoDB_20120810.ListTables"),
        ]);
        let host = HeaderValue::from_static("dynamodb.us-east-1.amazonaws.com");
        strip_request_headers(&mut h, &host, false);
        assert_eq!(h.get("host").unwrap(), "dynamodb.us-east-1.amazonaws.com");
        assert!(h.get("authorization").is_none());
        assert!(h.get("x-amz-date").is_none());
        assert!(h.get("x-amz-security-token").is_none());
        assert!(h.get("x-amz-s3session-token").is_none());
        assert!(h.get("x-amz-content-sha256").is_none());
        assert_eq!(
            h.get("x-amz-target").unwrap(),
            "DynamoDB_20120810.ListTables"
        );
    }

    #[test]
    fn keeps_streaming_content_sha256_for_aws_chunked() {
        let mut h = map(&[("x-amz-content-sha256", "STREAMING-UNSIGNED-PAYLOAD-TRAILER")]);
        let host = HeaderValue::from_static("s3.us-east-1.amazonaws.com");
        strip_request_headers(&mut h, &host, true);
        assert_eq!(
            h.get("x-amz-content-sha256").unwrap(),
            "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
        );
    }

    #[test]
    fn builds_upstream_uri_keeping_path_and_query_bytes() {
        let uri = upstream_uri(
            &Scheme::HTTPS,
            &"search-d.us-west-2.es.amazonaws.com".parse().unwrap(),
            "/my%20index/_search",
            Some("q=a%2Fb&q=c&z"),
        )
        .unwrap();
        assert_eq!(
            uri.to_string(),
            "https://search-d.us-west-2.es.amazonaws.com/my%20index/_search?q=a%2Fb&q=c&z"
        );
    }

    #[test]
    fn refuses_paths_that_are_not_a_valid_uri() {
        let host = "127.0.0.1:9000".parse().unwrap();
        let uri = upstream_uri(&Scheme::HTTP, &host, "object", None).unwrap();
        assert_eq!(uri.to_string(), "http://127.0.0.1:9000/object");
        assert!(upstream_uri(&Scheme::HTTP, &host, "/a b", None).is_none());
    }
}
