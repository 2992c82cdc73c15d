//! The pooled hyper-util client: rustls (ring provider), webpki roots plus an optional
//! CA bundle, HTTP/1.1 and h2 by ALPN, plain http for local upstreams, and a connector
//! that enforces the route's connect timeout (TCP connect plus TLS handshake).

use std::error::Error as StdError;
use std::future::Future;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::BoxFuture;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use tower::Service;

use super::body::AttemptBody;
use super::error::{ForwardError, TimeoutKind, UpstreamError};
use super::settings::{TimeoutSettings, TlsSettings};
use super::{ResponseBody, UpstreamObserver};
use crate::error_chain::error_chain;

type BoxError = Box<dyn StdError + Send + Sync>;
type HyperClient = Client<ConnectTimeout<HttpsConnector<HttpConnector>>, AttemptBody>;

/// Pooled clients, one per distinct connect timeout (connectors cannot see the
/// request, so the timeout is a property of the client) and per thread.
///
/// Per thread because the proxy serves on single-threaded runtimes: a connection's
/// task runs on the runtime that opened it, so a request that checked out a
/// connection opened by another thread would wake that thread for every exchange.
/// Routes rarely differ in connect timeout, so this is usually one pool per proxy
/// worker.
pub(crate) struct Pool {
    tls: rustls::ClientConfig,
    clients: RwLock<Vec<(Duration, usize, HyperClient)>>,
}

/// A small number naming the current thread, for [`Pool`].
fn thread_slot() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SLOT: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    SLOT.with(|slot| *slot)
}

impl Pool {
    pub(crate) fn new(settings: &TlsSettings) -> Result<Self, UpstreamError> {
        Ok(Self {
            tls: tls_config(settings)?,
            clients: RwLock::new(Vec::new()),
        })
    }

    fn build(&self, connect_timeout: Duration) -> HyperClient {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        let https = HttpsConnectorBuilder::new()
            .with_tls_config(self.tls.clone())
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(ConnectTimeout {
                inner: https,
                after: connect_timeout,
            })
    }

    /// Starts sending one signed attempt on the pooled client for its connect
    /// timeout. The future resolves with the response head, its body streaming
    /// with the idle timeout. Fails at once if the URI is not absolute.
    pub(crate) fn send(
        &self,
        mut parts: http::request::Parts,
        body: AttemptBody,
        timeouts: &TimeoutSettings,
        observer: &Arc<dyn UpstreamObserver>,
        route: &Arc<str>,
    ) -> Result<
        impl Future<Output = Result<http::Response<ResponseBody>, ForwardError>>,
        ForwardError,
    > {
        if parts.uri.scheme().is_none() || parts.uri.authority().is_none() {
            return Err(ForwardError::InvalidRequest(format!(
                "upstream URI {} is not absolute",
                parts.uri
            )));
        }
        // The pooled connection decides h1 or h2 (ALPN); the request must not pin one.
        parts.version = http::Version::HTTP_11;
        let request = http::Request::from_parts(parts, body);
        let connect = timeouts.connect;
        let slot = thread_slot();
        let matches = |(timeout, thread, _): &&(Duration, usize, HyperClient)| {
            *timeout == connect && *thread == slot
        };
        let pending = {
            let read = self
                .clients
                .read()
                .map(|clients| clients.iter().find(matches).map(|(_, _, c)| c.clone()));
            match read {
                Ok(Some(client)) => client,
                _ => {
                    let mut clients = self
                        .clients
                        .write()
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                    match clients.iter().find(matches) {
                        Some((_, _, client)) => client.clone(),
                        None => {
                            let client = self.build(connect);
                            clients.push((connect, slot, client.clone()));
                            client
                        }
                    }
                }
            }
        }
        .request(request);
        let (idle, observer, route) = (timeouts.idle, observer.clone(), route.clone());
        Ok(async move {
            match pending.await {
                Ok(response) => Ok(response
                    .map(|incoming| ResponseBody::streaming(incoming, idle, observer, route))),
                Err(e) => {
                    let error = classify_client_error(&e, connect);
                    if let ForwardError::Timeout { kind, .. } = &error {
                        observer.timeout(&route, kind.as_str());
                    }
                    Err(error)
                }
            }
        })
    }
}

/// The rustls client configuration for `settings`: the `ring` provider, the
/// webpki roots plus any extra CA bundle, or no verification when asked.
pub(crate) fn tls_config(settings: &TlsSettings) -> Result<rustls::ClientConfig, UpstreamError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| UpstreamError::Tls(e.to_string()))?;
    if settings.insecure_skip_verify {
        tracing::warn!(
            "TLS certificate verification of upstreams is OFF (insecure_skip_verify); \
             use this only for local test endpoints"
        );
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
            .with_no_client_auth());
    }
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = &settings.ca_bundle {
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
    }
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

/// Accepts any server certificate but still checks handshake signatures.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
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
            &self.0.signature_verification_algorithms,
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
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
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

fn classify_client_error(
    error: &hyper_util::client::legacy::Error,
    connect_timeout: Duration,
) -> ForwardError {
    let mut source: Option<&(dyn StdError + 'static)> = error.source();
    while let Some(cause) = source {
        if cause.downcast_ref::<ConnectTimedOut>().is_some() {
            return ForwardError::Timeout {
                kind: TimeoutKind::Connect,
                after: connect_timeout,
            };
        }
        if let Some(ForwardError::RequestBody(reason)) = cause.downcast_ref::<ForwardError>() {
            return ForwardError::RequestBody(reason.clone());
        }
        source = cause.source();
    }
    let reason = error_chain(error);
    if error.is_connect() {
        ForwardError::Unreachable(reason)
    } else {
        ForwardError::Connection(reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

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
