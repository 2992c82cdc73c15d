//! The proxy handler: route, prepare, choose the body mode, sign every attempt,
//! forward, and stream the answer back.
//!
//! One request, top to bottom ([`Proxy::handle`]):
//! 1. [`RouteTable::resolve`] finds the [`Target`] (404/403 with a reason
//!    otherwise).
//! 2. [`prepare`] drops hop-by-hop headers and whatever signing owns, sets
//!    `Host`, applies the route's strip list and custom headers, and builds the
//!    upstream URI from the client's path and query bytes.
//! 3. The body mode ([`PayloadMode`]): signed payloads are buffered up to the
//!    route's cap and hashed once; unsigned ones stream untouched with
//!    `UNSIGNED-PAYLOAD`; aws-chunked uploads keep their framing (re-signed
//!    chunk by chunk when the client signed them, see [`chunked`]).
//! 4. [`Upstream::send`] runs shedding, retries and timeouts, and calls
//!    [`RequestSigner`] afresh for every attempt. Requests to S3 Express
//!    zonal endpoints sign with a session, made ready before each attempt
//!    ([`s3express`]).
//! 5. The response streams back frame by frame; when it ends, one access-log
//!    event and the request metrics are recorded.
//!
//! Reload swaps the whole [`ProxyState`] atomically: a request keeps the state
//! it started with until it finishes.

pub mod body;
pub mod chunked;
pub mod error;
pub mod prepare;
pub mod s3express;
pub mod signer;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_LENGTH, HOST};
use http::uri::Scheme;
use http_body::Body as _;
use sha2::{Digest, Sha256};

use crate::config::{PayloadMode, Settings};
use crate::credentials::{CredentialsError, CredentialsHandle, CredentialsSet, SourceSettings};
use crate::routing::{RouteTable, Target};
use crate::sigv4::{is_s3_family, Algorithm, Signer};
use crate::telemetry::logging::{access_log, upstream_request_id, AccessRecord, ClientAddr};
use crate::telemetry::metrics::{CredentialGauge, Metrics, RouteMetrics};
use crate::upstream::{OutboundBody, OutboundRequest, Upstream};

use body::{buffer_capped, ClientBody, StreamEnd, Tapped};
use chunked::{ChunkChain, Resigned};
use error::ProxyError;
use prepare::{strip_request_headers, strip_response_headers, upstream_uri, CONTENT_SHA256};
use s3express::{signs_with_session, SessionAuth, Sessions};
use signer::{RequestPayload, RequestSigner};

/// With [`PayloadMode::Auto`], S3 bodies up to this size with a known length
/// are signed; larger or unknown-length ones stream with `UNSIGNED-PAYLOAD`.
pub const S3_AUTO_SIGNED_MAX: u64 = 1024 * 1024;

/// The largest aws-chunked chunk signet holds while re-signing it.
pub const MAX_AWS_CHUNK: u64 = 16 * 1024 * 1024;

/// Why the proxy state could not be built from settings.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A credentials source could not start.
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    /// On reload: credentials that sign for the running configuration would
    /// not resolve in the new one (each `source[ as role]: reason`, joined).
    #[error("credentials that sign now would stop resolving: {0}")]
    CredentialsLost(String),
}

/// What one configuration generation serves with: its routes and the
/// credential sources they name.
pub struct ProxyState {
    routes: RouteTable,
    credentials: Arc<CredentialsSet>,
    credential_settings: BTreeMap<String, SourceSettings>,
    /// (source, role) pairs in use, each with its handle.
    handles: Vec<(Arc<str>, Option<Arc<str>>, CredentialsHandle)>,
}

impl std::fmt::Debug for ProxyState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyState")
            .field("routes", &self.routes.len())
            .field("credentials", &self.credentials)
            .finish()
    }
}

impl ProxyState {
    /// Builds the state for `settings`. Credential sources are reused from
    /// `previous` when unchanged (no refetch on reload); new ones are started
    /// and given a moment to resolve before the state serves. On reload, a
    /// new set in which a (source, role) that signs now has not resolved by
    /// then is stopped and refused ([`BuildError::CredentialsLost`]): the
    /// running state keeps serving.
    pub async fn build(
        settings: &Settings,
        previous: Option<&ProxyState>,
    ) -> Result<ProxyState, BuildError> {
        let routes = RouteTable::new(settings);
        let pairs = routes.credential_sources();
        let route_roles: Vec<(String, String)> = pairs
            .iter()
            .filter_map(|(s, r)| r.as_ref().map(|r| (s.to_string(), r.to_string())))
            .collect();
        // Only the sources some route uses are started (and waited for).
        let used: BTreeMap<String, SourceSettings> = settings
            .credentials
            .iter()
            .filter(|(name, _)| pairs.iter().any(|(s, _)| **s == ***name))
            .map(|(name, source)| (name.clone(), source.clone()))
            .collect();
        // The running set serves on only for exactly the same sources and
        // roles: one it has no use for would keep refreshing.
        let reusable = previous.filter(|p| {
            p.credential_settings == used
                && p.handles
                    .iter()
                    .map(|(s, r, _)| (s, r))
                    .eq(pairs.iter().map(|(s, r)| (s, r)))
        });
        let credentials = match reusable {
            Some(p) => p.credentials.clone(),
            None => {
                let set = Arc::new(CredentialsSet::start(&used, &route_roles)?);
                // Let sources resolve before serving; a slow one is reported as
                // not ready and keeps refreshing in the background.
                if !set.wait_ready(Duration::from_secs(5)).await {
                    if let Some(previous) = previous {
                        let lost = lost_credentials(previous, &set, &pairs);
                        if !lost.is_empty() {
                            set.shutdown().await;
                            return Err(BuildError::CredentialsLost(lost.join("; ")));
                        }
                    }
                }
                set
            }
        };
        let handles = pairs
            .into_iter()
            .filter_map(|(s, r)| {
                let h = credentials.handle(&s, r.as_deref())?;
                Some((s, r, h))
            })
            .collect();
        Ok(ProxyState {
            routes,
            credentials,
            credential_settings: used,
            handles,
        })
    }

    fn handle(&self, source: &str, role: Option<&str>) -> Option<&CredentialsHandle> {
        self.handles
            .iter()
            .find(|(s, r, _)| &**s == source && r.as_deref() == role)
            .map(|(_, _, h)| h)
    }
}

/// The (source, role) pairs that sign in `previous` but have not resolved in
/// `next`, each as `source[ as role]: reason`.
fn lost_credentials(
    previous: &ProxyState,
    next: &CredentialsSet,
    pairs: &[(Arc<str>, Option<Arc<str>>)],
) -> Vec<String> {
    pairs
        .iter()
        .filter(|(s, r)| {
            previous
                .handle(s, r.as_deref())
                .is_some_and(|h| h.current().is_ok())
        })
        .filter_map(|(s, r)| {
            let reason = match next.handle(s, r.as_deref())?.current() {
                Ok(_) => return None,
                Err(e) => e.reason,
            };
            Some(match r {
                Some(role) => format!("{s} as {role}: {reason}"),
                None => format!("{s}: {reason}"),
            })
        })
        .collect()
}

/// The running proxy: the current state, the upstream client, metrics, the
/// signer with its key cache and the S3 Express sessions (kept across reloads).
pub struct Proxy {
    state: ArcSwap<ProxyState>,
    upstream: Upstream,
    metrics: Arc<Metrics>,
    signer: Arc<Signer>,
    sessions: Arc<Sessions>,
    in_flight: Arc<AtomicU64>,
}

impl Proxy {
    /// A proxy serving `state`.
    pub fn new(state: ProxyState, upstream: Upstream, metrics: Arc<Metrics>) -> Self {
        let signer = Arc::new(Signer::new());
        let sessions = Arc::new(Sessions::new(
            upstream.clone(),
            signer.clone(),
            metrics.clone(),
        ));
        Self {
            state: ArcSwap::from_pointee(state),
            upstream,
            metrics,
            signer,
            sessions,
            in_flight: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The state new requests use.
    pub fn state(&self) -> Arc<ProxyState> {
        self.state.load_full()
    }

    /// Makes `next` the state for new requests; in-flight ones keep theirs.
    /// Credential sources the new state no longer uses stop refreshing.
    pub fn swap(&self, next: ProxyState) {
        let old = self.state.swap(Arc::new(next));
        let current = self.state.load();
        if !Arc::ptr_eq(&old.credentials, &current.credentials) {
            let set = old.credentials.clone();
            tokio::spawn(async move { set.shutdown().await });
        }
    }

    /// The metrics the proxy records into.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Requests currently being served (until their response body ends).
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Readiness: every credentials source in use holds valid credentials.
    pub fn credentials_ready(&self) -> Result<(), String> {
        let state = self.state.load();
        let bad: Vec<String> = state
            .handles
            .iter()
            .filter_map(|(s, r, h)| {
                h.current().err().map(|e| match r {
                    Some(role) => format!("credentials {s} as {role}: {}", e.reason),
                    None => format!("credentials {s}: {}", e.reason),
                })
            })
            .collect();
        if bad.is_empty() {
            Ok(())
        } else {
            Err(bad.join("; "))
        }
    }

    /// Per-source expiry and refresh-failure figures for `/metrics`.
    pub fn credential_gauges(&self) -> Vec<CredentialGauge> {
        let now = SystemTime::now();
        self.state
            .load()
            .credentials
            .status()
            .into_iter()
            .map(|s| CredentialGauge {
                source: s.name,
                seconds_until_expiry: s.expires_at.map(|t| match t.duration_since(now) {
                    Ok(d) => d.as_secs_f64(),
                    Err(e) => -e.duration().as_secs_f64(),
                }),
                refresh_failures: s.refresh_failures,
            })
            .collect()
    }

    /// Serves one request from `client` (its connection's address, for the
    /// access log).
    pub async fn handle(self: Arc<Self>, client: ClientAddr, request: Request) -> Response {
        let started = Instant::now();
        let state = self.state.load_full();
        let method = request.method().clone();
        let client_uri = request.uri().clone();
        let host = request
            .headers()
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| request.uri().authority().map(|a| a.as_str()));
        let target = match state.routes.resolve(host, request.uri().path()) {
            Ok(t) => t,
            Err(e) => {
                let err = ProxyError::from(e);
                let record = Exchange::unrouted(&self, client, &method, &client_uri, started);
                return record.finish_error(err);
            }
        };
        let exchange = Exchange {
            client,
            metrics: self.metrics.route(&target.route),
            route: target.route.clone(),
            service: target.service.clone(),
            region: target.region.clone(),
            method,
            uri: client_uri,
            started,
            bytes_in: Arc::new(AtomicU64::new(0)),
            attempts: Arc::new(AtomicU32::new(0)),
        };
        let guard = InFlight::new(&self, &exchange.metrics);
        match self.forward(&state, &target, request, &exchange).await {
            Ok(response) => exchange.stream_back(response, guard),
            Err(e) => {
                if e.is_signing_failure() {
                    self.metrics.signing_error(&exchange.route);
                }
                drop(guard);
                exchange.finish_error(e)
            }
        }
    }

    async fn forward(
        &self,
        state: &ProxyState,
        target: &Target,
        request: Request,
        exchange: &Exchange,
    ) -> Result<http::Response<crate::upstream::ResponseBody>, ProxyError> {
        let policy = &target.policy;
        let credentials = state
            .handle(&policy.credentials, policy.role_arn.as_deref())
            .ok_or_else(|| ProxyError::NoCredentialsSource(policy.credentials.to_string()))?
            .clone();
        let (mut parts, body) = request.into_parts();
        let body = ClientBody::new(body, policy.upstream.timeouts.idle);

        let chunked = AwsChunked::detect(&parts.headers, target.algorithm)
            .map_err(ProxyError::AwsChunkedUnsupported)?;
        strip_request_headers(&mut parts.headers, &target.host, chunked.is_some());
        if !policy.strip_headers.is_empty() {
            let names: Vec<http::HeaderName> = parts
                .headers
                .keys()
                .filter(|n| n.as_str() != "host" && policy.strip_headers.matches(n.as_str()))
                .cloned()
                .collect();
            for n in names {
                parts.headers.remove(n);
            }
        }
        for (name, value) in policy.custom_headers.iter() {
            parts.headers.insert(name.clone(), value.clone());
        }
        let scheme: &Scheme = &target.scheme;
        parts.uri = upstream_uri(scheme, &target.authority, &target.path, parts.uri.query())
            .ok_or_else(|| ProxyError::BadRequest("path cannot be forwarded".into()))?;
        parts.version = http::Version::HTTP_11;

        let declared_len = body.size_hint().exact();
        let empty = body.is_end_stream();
        let s3 = is_s3_family(&target.service);
        let chain: Option<ChunkChain> = match chunked {
            Some(AwsChunked::Signed { .. }) => Some(Arc::default()),
            _ => None,
        };
        let bytes_in = exchange.bytes_in.clone();
        let count_in = move |n: u64, _end: StreamEnd| {
            bytes_in.store(n, Ordering::Relaxed);
        };
        let (payload, outbound) = match chunked {
            Some(mode) => {
                let payload = match mode {
                    AwsChunked::Signed { trailer: true } => RequestPayload::StreamingSignedTrailer,
                    AwsChunked::Signed { trailer: false } => RequestPayload::StreamingSigned,
                    AwsChunked::UnsignedTrailer => RequestPayload::StreamingUnsignedTrailer,
                };
                let counted = Tapped::new(body, count_in);
                let body = match &chain {
                    Some(chain) => Body::new(Resigned::new(
                        counted,
                        chain.clone(),
                        MAX_AWS_CHUNK,
                        declared_len,
                    )),
                    None => Body::new(counted),
                };
                (payload, OutboundBody::Streaming(body))
            }
            None if empty => (RequestPayload::empty(), OutboundBody::Empty),
            None => {
                let signed = match policy.payload {
                    PayloadMode::Signed => true,
                    PayloadMode::Unsigned => false,
                    PayloadMode::Auto => {
                        !s3 || declared_len.is_some_and(|n| n <= S3_AUTO_SIGNED_MAX)
                    }
                };
                if signed {
                    let bytes: Bytes = buffer_capped(body, declared_len, policy.body_cap).await?;
                    exchange
                        .bytes_in
                        .store(bytes.len() as u64, Ordering::Relaxed);
                    let hash = hex::encode(Sha256::digest(&bytes));
                    (RequestPayload::Sha256(hash), OutboundBody::Buffered(bytes))
                } else {
                    let counted = Tapped::new(body, count_in);
                    (
                        RequestPayload::Unsigned,
                        OutboundBody::Streaming(Body::new(counted)),
                    )
                }
            }
        };
        if let OutboundBody::Buffered(b) = &outbound {
            parts
                .headers
                .insert(CONTENT_LENGTH, http::HeaderValue::from(b.len()));
        }
        // Requests to S3 Express zonal endpoints sign with a session, all but
        // the few operations that take the IAM credentials.
        let session = match &target.s3express_session {
            Some(root)
                if signs_with_session(
                    &parts.method,
                    &target.path,
                    parts.uri.query(),
                    &parts.headers,
                    root,
                ) =>
            {
                Some(Box::new(SessionAuth::new(
                    self.sessions.clone(),
                    target,
                    credentials.clone(),
                )))
            }
            _ => None,
        };
        let signer = RequestSigner::new(
            credentials,
            self.signer.clone(),
            target,
            payload,
            &parts.headers,
            chain,
            exchange.attempts.clone(),
            session,
        );
        let request = OutboundRequest {
            parts,
            body: outbound,
            signer: Arc::new(signer),
            policy: policy.upstream.clone(),
            route: target.route.clone(),
            upstream: target.upstream.clone(),
        };
        Ok(self.upstream.send(request).await?)
    }
}

/// How a client's aws-chunked upload is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AwsChunked {
    /// `STREAMING-UNSIGNED-PAYLOAD-TRAILER`: passes through untouched.
    UnsignedTrailer,
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]`: chunks re-signed.
    Signed { trailer: bool },
}

impl AwsChunked {
    /// The framing the client declared for a request signed with
    /// `algorithm`, or why signet cannot forward it: chunk signatures are
    /// re-signed with SigV4 only, so ECDSA-signed chunks are refused
    /// everywhere and HMAC-signed ones on SigV4a targets.
    fn detect(
        headers: &http::HeaderMap,
        algorithm: Algorithm,
    ) -> Result<Option<AwsChunked>, &'static str> {
        const UNSUPPORTED: &str = "signet re-signs chunk signatures with SigV4 only; send the \
                                   body plain or as STREAMING-UNSIGNED-PAYLOAD-TRAILER";
        let Some(mode) = headers.get(CONTENT_SHA256).and_then(|v| v.to_str().ok()) else {
            return Ok(None);
        };
        let framing = match mode {
            crate::sigv4::STREAMING_UNSIGNED_PAYLOAD_TRAILER => AwsChunked::UnsignedTrailer,
            crate::sigv4::STREAMING_SIGNED_PAYLOAD => AwsChunked::Signed { trailer: false },
            crate::sigv4::STREAMING_SIGNED_PAYLOAD_TRAILER => AwsChunked::Signed { trailer: true },
            m if m.starts_with("STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD") => {
                return Err(UNSUPPORTED)
            }
            _ => return Ok(None),
        };
        let encoded = headers
            .get_all(CONTENT_ENCODING)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|v| v.trim().eq_ignore_ascii_case("aws-chunked"));
        if !encoded && !headers.contains_key("x-amz-decoded-content-length") {
            return Ok(None);
        }
        if matches!(framing, AwsChunked::Signed { .. }) && algorithm == Algorithm::V4a {
            return Err(UNSUPPORTED);
        }
        Ok(Some(framing))
    }
}

/// Counts a request in the in-flight gauges until dropped.
struct InFlight {
    _metrics: crate::telemetry::metrics::InFlightGuard,
    counter: Arc<AtomicU64>,
}

impl InFlight {
    fn new(proxy: &Proxy, metrics: &RouteMetrics) -> Self {
        proxy.in_flight.fetch_add(1, Ordering::Relaxed);
        Self {
            _metrics: metrics.started(),
            counter: proxy.in_flight.clone(),
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.counter.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What the access log and metrics need about one request.
struct Exchange {
    client: ClientAddr,
    metrics: Arc<RouteMetrics>,
    route: Arc<str>,
    service: Arc<str>,
    region: Arc<str>,
    method: http::Method,
    uri: http::Uri,
    started: Instant,
    bytes_in: Arc<AtomicU64>,
    attempts: Arc<AtomicU32>,
}

impl Exchange {
    fn unrouted(
        proxy: &Proxy,
        client: ClientAddr,
        method: &http::Method,
        uri: &http::Uri,
        started: Instant,
    ) -> Exchange {
        Exchange {
            client,
            metrics: proxy.metrics.route("-"),
            route: Arc::from("-"),
            service: Arc::from("-"),
            region: Arc::from("-"),
            method: method.clone(),
            uri: uri.clone(),
            started,
            bytes_in: Arc::default(),
            attempts: Arc::default(),
        }
    }

    fn record(&self, status: u16, bytes_out: u64, request_id: Option<&str>) {
        let elapsed = self.started.elapsed();
        let bytes_in = self.bytes_in.load(Ordering::Relaxed);
        self.metrics
            .finished(self.method.as_str(), status, elapsed, bytes_in, bytes_out);
        access_log(&AccessRecord {
            client: self.client.as_str(),
            route: &self.route,
            service: &self.service,
            region: &self.region,
            method: self.method.as_str(),
            path: self.uri.path_and_query().map_or("/", |p| p.as_str()),
            status,
            attempts: self.attempts.load(Ordering::Relaxed),
            latency: elapsed,
            bytes_in,
            bytes_out,
            upstream_request_id: request_id,
        });
    }

    fn finish_error(self, err: ProxyError) -> Response {
        let response = err.into_response();
        let bytes_out = response.body().size_hint().exact().unwrap_or(0);
        self.record(response.status().as_u16(), bytes_out, None);
        response
    }

    fn stream_back(
        self,
        response: http::Response<crate::upstream::ResponseBody>,
        guard: InFlight,
    ) -> Response {
        let (mut parts, body) = response.into_parts();
        strip_response_headers(&mut parts.headers);
        let status = parts.status.as_u16();
        let request_id = upstream_request_id(&parts.headers).map(str::to_owned);
        let tapped = Tapped::new(body, move |bytes_out, _end| {
            self.record(status, bytes_out, request_id.as_deref());
            drop(guard);
        });
        Response::from_parts(parts, Body::new(tapped))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigFormat;

    #[test]
    fn detects_aws_chunked_framing_and_what_cannot_be_resigned() {
        use Algorithm::{V4a, V4};
        let headers = |pairs: &[(&str, &str)]| {
            let mut h = http::HeaderMap::new();
            for (n, v) in pairs {
                h.append(
                    http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                    http::HeaderValue::from_str(v).unwrap(),
                );
            }
            h
        };
        let encoded = |mode: &str| {
            headers(&[
                ("content-encoding", "gzip, aws-chunked"),
                ("x-amz-content-sha256", mode),
            ])
        };
        let signed = Ok(Some(AwsChunked::Signed { trailer: true }));
        for (h, algorithm, want) in [
            (headers(&[]), V4, Ok(None)),
            (encoded("UNSIGNED-PAYLOAD"), V4, Ok(None)),
            (
                encoded("STREAMING-UNSIGNED-PAYLOAD-TRAILER"),
                V4a,
                Ok(Some(AwsChunked::UnsignedTrailer)),
            ),
            (
                encoded("STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"),
                V4,
                signed,
            ),
            (
                headers(&[
                    ("x-amz-decoded-content-length", "5"),
                    ("x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"),
                ]),
                V4,
                Ok(Some(AwsChunked::Signed { trailer: false })),
            ),
            // A streaming declaration without aws-chunked framing is not one.
            (
                headers(&[("x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD")]),
                V4a,
                Ok(None),
            ),
        ] {
            assert_eq!(
                AwsChunked::detect(&h, algorithm),
                want,
                "{h:?} {algorithm:?}"
            );
        }
        for (mode, algorithm) in [
            ("STREAMING-AWS4-HMAC-SHA256-PAYLOAD", V4a),
            ("STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", V4a),
            ("STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD", V4),
            ("STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD-TRAILER", V4a),
        ] {
            assert!(
                AwsChunked::detect(&encoded(mode), algorithm).is_err(),
                "{mode}"
            );
        }
    }

    fn settings(routes: &str) -> Settings {
        let text = format!(
            "[credentials.default]\nkind = \"static\"\naccess_key_id = \"AKIAIOSFODNN7EXAMPLE\"\n\
             secret_access_key = \"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\"\n{routes}"
        );
        Settings::from_str(&text, ConfigFormat::Toml).unwrap()
    }

    const PLAIN: &str =
        "[[routes]]\nname = \"q\"\nupstream = \"https://sqs.us-east-1.amazonaws.com\"\n";

    #[tokio::test]
    async fn reload_reuses_the_running_credentials_only_for_the_same_sources_and_roles() {
        let first = ProxyState::build(&settings(PLAIN), None).await.unwrap();
        let same = ProxyState::build(&settings(PLAIN), Some(&first))
            .await
            .unwrap();
        assert!(Arc::ptr_eq(&first.credentials, &same.credentials));
        // A role only the old configuration used: a new set, without it.
        let with_role = format!(
            "[[routes]]\nname = \"r\"\npath_prefix = \"/r\"\n\
             upstream = \"https://sns.us-east-1.amazonaws.com\"\n\
             role_arn = \"arn:aws:iam::111122223333:role/gone\"\n\n{PLAIN}"
        );
        let roled = ProxyState::build(&settings(&with_role), Some(&first))
            .await
            .unwrap();
        assert!(!Arc::ptr_eq(&first.credentials, &roled.credentials));
        let dropped = ProxyState::build(&settings(PLAIN), Some(&roled))
            .await
            .unwrap();
        assert!(!Arc::ptr_eq(&roled.credentials, &dropped.credentials));
        assert!(dropped
            .credentials
            .handle("default", Some("arn:aws:iam::111122223333:role/gone"))
            .is_none());
        roled.credentials.shutdown().await;
    }
}
