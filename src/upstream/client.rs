//! The upstream client: hyper connections kept in a per-thread pool, opened by a
//! connector with rustls (ring provider, webpki roots plus an optional CA bundle),
//! HTTP/1.1 and h2 by ALPN, plain http for local upstreams, and the route's connect
//! timeout (TCP connect plus TLS handshake).

use std::cell::RefCell;
use std::collections::HashMap;
use std::error::Error as StdError;
use std::future::Future;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use futures_util::future::BoxFuture;
use hyper::client::conn::{http1, http2};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use tower::Service;

use super::body::AttemptBody;
use super::error::{ForwardError, TimeoutKind, UpstreamError};
use super::settings::{TimeoutSettings, TlsSettings};
use super::{ResponseBody, UpstreamObserver};
use crate::error_chain::error_chain;
use crate::routing::endpoint::is_aws_domain;

type BoxError = Box<dyn StdError + Send + Sync>;

/// How long an unused upstream connection is kept for reuse.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

type Connector = ConnectTimeout<HttpsConnector<HttpConnector>>;
type Io = hyper_rustls::MaybeHttpsStream<hyper_util::rt::TokioIo<tokio::net::TcpStream>>;

/// The upstream connection pool: connectors (one per distinct connect timeout,
/// since a connector cannot see the request) and, per thread, the open
/// connections by upstream.
///
/// Per thread because the proxy serves on single-threaded runtimes: a
/// connection's task runs on the runtime that opened it, so a request using a
/// connection another thread opened would wake that thread for every exchange.
/// HTTP/1.1 connections carry one exchange at a time; an h2 connection (chosen by
/// ALPN) is shared by every request to its upstream on the thread.
pub(crate) struct Pool {
    /// Tells this pool's connections from another's (their TLS settings differ).
    id: usize,
    tls: rustls::ClientConfig,
    connectors: RwLock<Vec<(Duration, Connector)>>,
}

/// An open upstream connection's request side.
enum Sender {
    H1(http1::SendRequest<AttemptBody>),
    H2(http2::SendRequest<AttemptBody>),
}

impl Sender {
    fn is_closed(&self) -> bool {
        match self {
            Sender::H1(s) => s.is_closed(),
            Sender::H2(s) => s.is_closed(),
        }
    }
}

/// A pooled connection and when it was last handed a request.
struct Pooled {
    sender: Sender,
    used: Instant,
}

impl Pooled {
    /// Whether this connection is still worth keeping at `now`: open, and
    /// handed a request within the idle timeout.
    fn keep(&self, now: Instant) -> bool {
        !self.sender.is_closed() && now.duration_since(self.used) < IDLE_TIMEOUT
    }
}

/// Open connections of this thread, by (pool, upstream key).
type ThreadConnections = HashMap<(usize, Arc<str>), Vec<Pooled>, foldhash::fast::RandomState>;

thread_local! {
    static CONNECTIONS: RefCell<ThreadConnections> = RefCell::default();
}

/// Takes a connection for `key` that can carry a request now: an idle HTTP/1.1
/// connection, or a copy of an h2 one. Drops closed and long-unused ones.
fn checkout(key: &(usize, Arc<str>)) -> Option<Sender> {
    CONNECTIONS.with(|connections| {
        let mut connections = connections.borrow_mut();
        let open = connections.get_mut(key)?;
        let now = Instant::now();
        open.retain(|c| c.keep(now));
        let found = open.iter().position(|c| match &c.sender {
            Sender::H1(s) => s.is_ready(),
            Sender::H2(_) => true,
        })?;
        let taken = &mut open[found];
        taken.used = now;
        match &taken.sender {
            Sender::H2(s) => Some(Sender::H2(s.clone())),
            Sender::H1(_) => Some(open.swap_remove(found).sender),
        }
    })
}

/// Puts an HTTP/1.1 connection back once its exchange is under way; it is
/// taken again when it is ready for the next request. A new h2 connection is
/// added the same way; copies of a pooled one are not.
///
/// Every [`SWEEP_EVERY`] check-ins the whole map is swept of closed and
/// long-unused connections, so upstreams no longer asked for (host-routed
/// requests name many) do not keep theirs.
fn checkin(key: &(usize, Arc<str>), sender: Sender) {
    thread_local! {
        static CHECKINS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    }
    let now = Instant::now();
    CONNECTIONS.with(|connections| {
        let mut connections = connections.borrow_mut();
        let sweep = CHECKINS.with(|n| {
            n.set(n.get().wrapping_add(1));
            n.get() % SWEEP_EVERY == 0
        });
        if sweep {
            connections.retain(|_, open| {
                open.retain(|c| c.keep(now));
                !open.is_empty()
            });
        }
        let pooled = Pooled { sender, used: now };
        match connections.get_mut(key) {
            Some(open) => open.push(pooled),
            None => connections.entry(key.clone()).or_default().push(pooled),
        }
    });
}

/// How many check-ins pass between sweeps of a thread's connections.
const SWEEP_EVERY: u32 = 1024;

impl Pool {
    pub(crate) fn new(settings: &TlsSettings) -> Result<Self, UpstreamError> {
        static NEXT_ID: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        Ok(Self {
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            tls: tls_config(settings)?,
            connectors: RwLock::new(Vec::new()),
        })
    }

    fn connector(&self, connect_timeout: Duration) -> Connector {
        let found = self.connectors.read().ok().and_then(|connectors| {
            connectors
                .iter()
                .find(|(timeout, _)| *timeout == connect_timeout)
                .map(|(_, c)| c.clone())
        });
        if let Some(connector) = found {
            return connector;
        }
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        let https = HttpsConnectorBuilder::new()
            .with_tls_config(self.tls.clone())
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let connector = ConnectTimeout {
            inner: https,
            after: connect_timeout,
        };
        if let Ok(mut connectors) = self.connectors.write() {
            if !connectors.iter().any(|(t, _)| *t == connect_timeout) {
                connectors.push((connect_timeout, connector.clone()));
            }
        }
        connector
    }

    /// Starts sending one signed attempt to `upstream` (its `scheme://authority`
    /// key) on a pooled connection, or a new one opened within the connect
    /// timeout. The future resolves with the response head, its body streaming
    /// with the idle timeout. Fails at once if the URI is not absolute.
    ///
    /// A request a reused connection never sent (the upstream closed it while
    /// idle) goes out again on another connection.
    pub(crate) fn send(
        &self,
        mut parts: http::request::Parts,
        body: AttemptBody,
        timeouts: &TimeoutSettings,
        observer: &Arc<dyn UpstreamObserver>,
        route: &Arc<str>,
        upstream: &Arc<str>,
    ) -> Result<
        impl Future<Output = Result<http::Response<ResponseBody>, ForwardError>> + '_,
        ForwardError,
    > {
        let (Some(authority), Some(_)) = (parts.uri.authority().cloned(), parts.uri.scheme())
        else {
            // The path alone: the query may carry a client's presign credentials.
            return Err(ForwardError::InvalidRequest(format!(
                "upstream URI with path {} is not absolute",
                parts.uri.path()
            )));
        };
        if !parts.headers.contains_key(http::header::HOST) {
            if let Ok(host) = http::HeaderValue::from_str(authority.as_str()) {
                parts.headers.insert(http::header::HOST, host);
            }
        }
        // The connection decides h1 or h2 (ALPN); the request must not pin one.
        parts.version = http::Version::HTTP_11;
        let key = (self.id, upstream.clone());
        let (idle, connect, observer, route) = (
            timeouts.idle,
            timeouts.connect,
            observer.clone(),
            route.clone(),
        );
        let mut request = http::Request::from_parts(parts, body);
        Ok(async move {
            // After a pooled connection failed to send, the next try opens a
            // new one: at most one resend.
            let mut reuse = true;
            let outcome = loop {
                let pooled = if reuse { checkout(&key) } else { None };
                let (sender, reused) = match pooled {
                    Some(sender) => (sender, true),
                    // Boxed: opening a connection is rare, and its future (TLS and
                    // h2 handshakes) is large to carry in every request's state.
                    None => {
                        match Box::pin(open(self.connector(connect), request.uri().clone())).await {
                            Ok(sender) => (sender, false),
                            Err(error) => break Err(error),
                        }
                    }
                };
                match exchange(sender, request, &key, !reused).await {
                    Ok(response) => break Ok(response),
                    Err((Some(unsent), _)) if reused => {
                        reuse = false;
                        request = unsent;
                    }
                    Err((_, error)) => break Err(error),
                }
            };
            match outcome {
                Ok(response) => Ok(response
                    .map(|incoming| ResponseBody::streaming(incoming, idle, observer, route))),
                Err(error) => {
                    let error = classify(error, connect);
                    if let ForwardError::Timeout { kind, .. } = &error {
                        observer.timeout(&route, kind.as_str());
                    }
                    Err(error)
                }
            }
        })
    }
}

/// Why an exchange failed, before it is named for the client.
enum Failure {
    /// Opening the connection failed (TCP, TLS, the connect timeout).
    Connect(BoxError),
    /// The connection failed while the request was sent or answered.
    Exchange(hyper::Error),
}

/// Opens a connection to `uri`'s upstream and starts its task on this thread.
async fn open(mut connector: Connector, uri: http::Uri) -> Result<Sender, Failure> {
    use hyper_util::client::legacy::connect::Connection;
    let io: Io = tower::ServiceExt::ready(&mut connector)
        .await
        .map_err(Failure::Connect)?
        .call(uri)
        .await
        .map_err(Failure::Connect)?;
    if io.connected().is_negotiated_h2() {
        let (sender, connection) = http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(Failure::Exchange)?;
        tokio::spawn(drive(connection));
        Ok(Sender::H2(sender))
    } else {
        let (sender, connection) = http1::handshake(io).await.map_err(Failure::Exchange)?;
        tokio::spawn(drive(connection));
        Ok(Sender::H1(sender))
    }
}

/// Runs an upstream connection until it closes.
async fn drive(connection: impl Future<Output = Result<(), hyper::Error>>) {
    if let Err(e) = connection.await {
        tracing::debug!(error = %e, "upstream connection ended with an error");
    }
}

/// Sends `request` on `sender` and waits for the response head. An HTTP/1.1
/// connection goes back to the pool as soon as the exchange is under way, an
/// h2 one when it was just `opened` (the pool keeps one copy). On failure, the
/// request comes back if it was never sent.
async fn exchange(
    sender: Sender,
    mut request: http::Request<AttemptBody>,
    key: &(usize, Arc<str>),
    opened: bool,
) -> Result<http::Response<hyper::body::Incoming>, (Option<http::Request<AttemptBody>>, Failure)> {
    match sender {
        Sender::H1(mut s) => {
            // HTTP/1.1 sends the origin form: path and query only.
            let origin = request
                .uri()
                .path_and_query()
                .cloned()
                .map(http::Uri::from)
                .unwrap_or_else(|| http::Uri::from_static("/"));
            let absolute = std::mem::replace(request.uri_mut(), origin);
            frame_unknown_length(&mut request);
            let pending = s.try_send_request(request);
            checkin(key, Sender::H1(s));
            pending.await.map_err(|mut e| {
                let unsent = e.take_message().map(|mut r| {
                    *r.uri_mut() = absolute;
                    r
                });
                (unsent, Failure::Exchange(e.into_error()))
            })
        }
        Sender::H2(mut s) => {
            if let Err(e) = s.ready().await {
                return Err((Some(request), Failure::Exchange(e)));
            }
            // h2 sends the URI's authority as `:authority`, which servers
            // read instead of Host: it must be the Host that was signed (a
            // route's `sign_host`), not the address connected to.
            let connected = signed_authority(&mut request);
            let pending = s.try_send_request(request);
            if opened {
                checkin(key, Sender::H2(s));
            }
            pending.await.map_err(|mut e| {
                let unsent = e.take_message().map(|mut r| {
                    if let Some(uri) = connected {
                        *r.uri_mut() = uri;
                    }
                    r
                });
                (unsent, Failure::Exchange(e.into_error()))
            })
        }
    }
}

/// Marks an HTTP/1.1 request whose body has no known length as chunked.
///
/// hyper frames such a body itself for most methods, but sends a GET, HEAD or
/// CONNECT as bodiless unless the request names its framing: a client's
/// streamed body on those methods (a search query on a GET) would be dropped.
/// `Transfer-Encoding` is hop-by-hop and never signed.
fn frame_unknown_length(request: &mut http::Request<AttemptBody>) {
    use hyper::body::Body;
    if request.body().is_end_stream()
        || request.body().size_hint().exact().is_some()
        || !matches!(
            *request.method(),
            http::Method::GET | http::Method::HEAD | http::Method::CONNECT
        )
    {
        return;
    }
    request.headers_mut().insert(
        http::header::TRANSFER_ENCODING,
        http::HeaderValue::from_static("chunked"),
    );
}

/// Makes `request`'s URI authority its Host header's value when the two
/// differ, returning the URI it had (the one to connect with).
fn signed_authority(request: &mut http::Request<AttemptBody>) -> Option<http::Uri> {
    let host = request.headers().get(http::header::HOST)?.to_str().ok()?;
    if request.uri().authority().map(|a| a.as_str()) == Some(host) {
        return None;
    }
    let mut parts = request.uri().clone().into_parts();
    parts.authority = Some(host.parse().ok()?);
    let signed = http::Uri::from_parts(parts).ok()?;
    Some(std::mem::replace(request.uri_mut(), signed))
}

/// Names a failure for the client.
fn classify(failure: Failure, connect_timeout: Duration) -> ForwardError {
    match failure {
        Failure::Connect(error) => {
            if caused_by::<ConnectTimedOut>(error.as_ref()).is_some() {
                return ForwardError::Timeout {
                    kind: TimeoutKind::Connect,
                    after: connect_timeout,
                };
            }
            ForwardError::Unreachable(error_chain(error.as_ref()))
        }
        Failure::Exchange(error) => match caused_by::<ForwardError>(&error) {
            Some(ForwardError::RequestBody(reason)) => ForwardError::RequestBody(reason.clone()),
            _ => ForwardError::Connection(error_chain(&error)),
        },
    }
}

/// The first error of type `T` in `error`'s chain, `error` itself included.
fn caused_by<'e, T: StdError + 'static>(error: &'e (dyn StdError + 'static)) -> Option<&'e T> {
    let mut next = Some(error);
    while let Some(cause) = next {
        if let Some(found) = cause.downcast_ref::<T>() {
            return Some(found);
        }
        next = cause.source();
    }
    None
}

/// The rustls client configuration for `settings`: the `ring` provider, the
/// webpki roots plus any extra CA bundle. With `insecure_skip_verify` the
/// certificates of upstreams outside the AWS endpoint domains are accepted
/// unchecked; AWS endpoints are always verified.
pub fn tls_config(settings: &TlsSettings) -> Result<rustls::ClientConfig, UpstreamError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| UpstreamError::Tls(e.to_string()))?;
    let roots = root_store(settings)?;
    if !settings.insecure_skip_verify {
        return Ok(builder.with_root_certificates(roots).with_no_client_auth());
    }
    tracing::warn!(
        "TLS certificate verification is OFF for upstreams outside the AWS endpoint \
         domains (insecure_skip_verify); use this only for local test endpoints"
    );
    let strict = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| UpstreamError::Tls(e.to_string()))?;
    Ok(builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(SkipOutsideAws { strict, provider }))
        .with_no_client_auth())
}

/// The webpki roots plus the certificates of `settings.ca_bundle`, if set.
fn root_store(settings: &TlsSettings) -> Result<RootCertStore, UpstreamError> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let Some(path) = &settings.ca_bundle else {
        return Ok(roots);
    };
    let shown = path.display().to_string();
    let pem = std::fs::read(path).map_err(|source| UpstreamError::CaBundleRead {
        path: shown.clone(),
        source,
    })?;
    let mut added = 0;
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        let cert = cert.map_err(|e| UpstreamError::CaBundleInvalid {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
        roots
            .add(cert)
            .map_err(|e| UpstreamError::CaBundleInvalid {
                path: shown.clone(),
                reason: e.to_string(),
            })?;
        added += 1;
    }
    if added == 0 {
        return Err(UpstreamError::CaBundleInvalid {
            path: shown,
            reason: "no PEM certificates found".into(),
        });
    }
    Ok(roots)
}

/// The verifier `insecure_skip_verify` installs. A server whose name lies under
/// an AWS endpoint domain is verified in full: signed requests and session
/// tokens go there, so a forged certificate must not get them. Any other
/// server's certificate is accepted unchecked. Handshake signatures are checked
/// for all.
#[derive(Debug)]
struct SkipOutsideAws {
    strict: Arc<WebPkiServerVerifier>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for SkipOutsideAws {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match server_name {
            ServerName::DnsName(name) if is_aws_domain(name.as_ref()) => self
                .strict
                .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now),
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The connect timeout fired (found in the error chain to name the timeout).
#[derive(Debug, thiserror::Error)]
#[error("connect timeout after {0:?}")]
struct ConnectTimedOut(Duration);

/// Connector wrapper bounding TCP connect plus TLS handshake.
#[derive(Clone)]
pub(crate) struct ConnectTimeout<C> {
    inner: C,
    after: Duration,
}

impl<C> Service<http::Uri> for ConnectTimeout<C>
where
    C: Service<http::Uri> + Send + 'static,
    C::Future: Send + 'static,
    C::Error: Into<BoxError>,
{
    type Response = C::Response;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<C::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let after = self.after;
        let connecting = self.inner.call(uri);
        Box::pin(async move {
            match tokio::time::timeout(after, connecting).await {
                Ok(result) => result.map_err(Into::into),
                Err(_) => Err(Box::new(ConnectTimedOut(after)) as BoxError),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn request(
        method: http::Method,
        body: super::super::OutboundBody,
    ) -> http::Request<AttemptBody> {
        let source = super::super::body::BodySource::new(body);
        let (body, _) = source.attempt_body();
        let mut request = http::Request::new(body);
        *request.method_mut() = method;
        request
    }

    fn framing(request: &http::Request<AttemptBody>) -> Option<&str> {
        request
            .headers()
            .get(http::header::TRANSFER_ENCODING)
            .and_then(|v| v.to_str().ok())
    }

    #[test]
    fn streamed_bodies_on_bodiless_methods_are_sent_chunked() {
        use super::super::OutboundBody;
        let streamed = || {
            let frames = [Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"{}"))];
            OutboundBody::Streaming(axum::body::Body::from_stream(futures_util::stream::iter(
                frames,
            )))
        };
        for method in [http::Method::GET, http::Method::HEAD, http::Method::CONNECT] {
            let mut req = request(method.clone(), streamed());
            frame_unknown_length(&mut req);
            assert_eq!(framing(&req), Some("chunked"), "{method}");
        }
        // hyper frames other methods itself; known lengths and no body stay as they are.
        let cases = [
            (http::Method::PUT, streamed()),
            (
                http::Method::GET,
                OutboundBody::Buffered(bytes::Bytes::from_static(b"{}")),
            ),
            (http::Method::GET, OutboundBody::Empty),
        ];
        for (method, body) in cases {
            let mut req = request(method.clone(), body);
            frame_unknown_length(&mut req);
            assert_eq!(framing(&req), None, "{method}");
        }
    }

    #[test]
    fn refuses_ca_bundle_without_certificates() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        writeln!(file, "not a certificate").unwrap();
        let settings = TlsSettings {
            ca_bundle: Some(file.path().to_path_buf()),
            insecure_skip_verify: false,
        };
        let err = tls_config(&settings).unwrap_err();
        assert!(
            err.to_string().contains("no PEM certificates found"),
            "{err}"
        );
    }

    #[test]
    fn refuses_missing_ca_bundle_naming_the_path() {
        let settings = TlsSettings {
            ca_bundle: Some("/nonexistent/signet-ca.pem".into()),
            insecure_skip_verify: false,
        };
        let err = tls_config(&settings).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/signet-ca.pem"),
            "{err}"
        );
    }

    #[test]
    fn builds_default_and_insecure_configs() {
        assert!(tls_config(&TlsSettings::default()).is_ok());
        let insecure = TlsSettings {
            ca_bundle: None,
            insecure_skip_verify: true,
        };
        assert!(tls_config(&insecure).is_ok());
    }
}
