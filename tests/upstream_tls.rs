//! The pooled client's TLS: extra CA bundle, certificate verification, `insecure_skip_verify`,
//! and HTTP/2 or HTTP/1.1 chosen by ALPN, against a rustls server on 127.0.0.1.
//!
//! Transport only: a stand-in signer stamps each attempt and the server does not
//! verify signatures; signing is covered end to end against a verifying upstream.

use std::io::Write;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use signet::upstream::{
    ForwardError, NoopObserver, OutboundRequest, RoutePolicy, TlsSettings, Upstream,
};
use tokio::net::TcpListener;

mod transport;

/// A test CA (valid for a century) and a leaf for 127.0.0.1 / localhost that it signed.
const CA_PEM: &str = "\
-----BEGIN CERTIFICATE-----
MIIBmTCCAT+gAwIBAgIUXtPilXgUqtzJdQ55Af7Zcf+1mQEwCgYIKoZIzj0EAwIw
GTEXMBUGA1UEAwwOc2lnbmV0IHRlc3QgQ0EwIBcNMjYxMTIzMDQ1ODA4WhgPMjEy
NjEwMzAwNDU4MDhaMBkxFzAVBgNVBAMMDnNpZ25ldCB0ZXN0IENBMFkwEwYHKoZI
zj0CAQYIKoZIzj0DAQcDQgAEOlq5oKtN44gSbjpamBFsGZIF4E6Qi3sqIon18Vkf
m9ryEHV4L/LEh1h9i6T6isivastEsukoSkqYNArKzq9Re6NjMGEwHQYDVR0OBBYE
FM7st6GrOLRnMBFVQ2qhIBd296CXMB8GA1UdIwQYMBaAFM7st6GrOLRnMBFVQ2qh
IBd296CXMA8GA1UdEwEB/wQFMAMBAf8wDgYDVR0PAQH/BAQDAgEGMAoGCCqGSM49
BAMCA0gAMEUCIHvfxmy2Aze4OzNTnGCVDlhYzpI1KhQ7JQZHnXqWB/dPAiEA4CCF
3ffY7BkFtnDnQHuXco28HObV/eHoTlKLBtfM2n8=
-----END CERTIFICATE-----
";
const SERVER_PEM: &str = "\
-----BEGIN CERTIFICATE-----
MIIBxTCCAWqgAwIBAgIUIHExOk/ZdehadhUI9vdHsQWMgRowCgYIKoZIzj0EAwIw
GTEXMBUGA1UEAwwOc2lnbmV0IHRlc3QgQ0EwIBcNMjYxMTIzMDQ1ODA4WhgPMjEy
NjEwMzAwNDU4MDhaMBQxEjAQBgNVBAMMCTEyNy4wLjAuMTBZMBMGByqGSM49AgEG
CCqGSM49AwEHA0IABOCcashX4+rouN6T8aj1r5Yk56vEj7jBx+g1dpv7yPbThPpf
s764bDDtw1knRvvP8p5T25w7GQyFg+jD53jLku2jgZIwgY8wGgYDVR0RBBMwEYcE
fwAAAYIJbG9jYWxob3N0MAwGA1UdEwEB/wQCMAAwDgYDVR0PAQH/BAQDAgeAMBMG
A1UdJQQMMAoGCCsGAQUFBwMBMB0GA1UdDgQWBBT2WHjeCWIymw7EmRHqc8rjn+xh
2DAfBgNVHSMEGDAWgBTO7Lehqzi0ZzARVUNqoSAXdveglzAKBggqhkjOPQQDAgNJ
ADBGAiEA8dwwwJpnqgSXJ6l0PEP5y5Iw3ErKb1TBC9s61yucWHoCIQCZMxW13JaE
lLzvTZ4hAalC56OsdqAapJJ2yUq1kAX8LQ==
-----END CERTIFICATE-----
";
const SERVER_KEY_PEM: &str = "\
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgLr2a4FAtgMK4yF5u
rZokr6q4ayP9wdZzY9bH95ljKHehRANCAATgnGrIV+Pq6Ljek/Go9a+WJOerxI+4
wcfoNXab+8j204T6X7O+uGww7cNZJ0b7z/KeU9ucOxkMhYPow+d4y5Lt
-----END PRIVATE KEY-----
";

/// Starts a TLS server offering `alpn`; it answers with the HTTP version it served.
async fn tls_server(alpn: &[&[u8]]) -> std::net::SocketAddr {
    let certs = rustls_pemfile::certs(&mut SERVER_PEM.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = rustls_pemfile::private_key(&mut SERVER_KEY_PEM.as_bytes())
        .unwrap()
        .unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let service = hyper::service::service_fn(|req: Request<Incoming>| async move {
                    let version = format!("{:?}", req.version());
                    let shown = |v: Option<&str>| v.unwrap_or("-").to_owned();
                    let authority = shown(req.uri().authority().map(|a| a.as_str()));
                    let host = shown(req.headers().get("host").and_then(|h| h.to_str().ok()));
                    let mut response = Response::new(Full::new(Bytes::from(version)));
                    let headers = response.headers_mut();
                    headers.insert("x-seen-authority", authority.parse().unwrap());
                    headers.insert("x-seen-host", host.parse().unwrap());
                    Ok::<_, std::convert::Infallible>(response)
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    addr
}

fn get(uri: String) -> OutboundRequest {
    let mut policy = RoutePolicy::default();
    policy.retry.max_attempts = 1;
    transport::stamped(Request::get(uri).body(()).unwrap(), policy, "tls")
}

fn ca_bundle() -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(CA_PEM.as_bytes()).unwrap();
    file
}

async fn body_text(response: Response<signet::upstream::ResponseBody>) -> String {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn negotiates_h2_by_alpn_trusting_the_extra_ca_bundle() {
    let addr = tls_server(&[b"h2", b"http/1.1"]).await;
    let bundle = ca_bundle();
    let tls = TlsSettings {
        ca_bundle: Some(bundle.path().to_path_buf()),
        insecure_skip_verify: false,
    };
    let upstream = Upstream::new(&tls, Arc::new(NoopObserver)).unwrap();
    let response = upstream
        .send(get(format!("https://{addr}/")))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.version(), http::Version::HTTP_2);
    assert_eq!(body_text(response).await, "HTTP/2.0");
    // The DNS name in the certificate works too.
    let response = upstream
        .send(get(format!("https://localhost:{}/", addr.port())))
        .await
        .unwrap();
    assert_eq!(body_text(response).await, "HTTP/2.0");
}

#[tokio::test]
async fn uses_http1_when_the_server_offers_only_http1() {
    let addr = tls_server(&[b"http/1.1"]).await;
    let bundle = ca_bundle();
    let tls = TlsSettings {
        ca_bundle: Some(bundle.path().to_path_buf()),
        insecure_skip_verify: false,
    };
    let upstream = Upstream::new(&tls, Arc::new(NoopObserver)).unwrap();
    let response = upstream
        .send(get(format!("https://{addr}/")))
        .await
        .unwrap();
    assert_eq!(body_text(response).await, "HTTP/1.1");
}

#[tokio::test]
async fn refuses_a_certificate_from_an_unknown_issuer_with_502() {
    let addr = tls_server(&[b"h2", b"http/1.1"]).await;
    let upstream = Upstream::new(&TlsSettings::default(), Arc::new(NoopObserver)).unwrap();
    let error = upstream
        .send(get(format!("https://{addr}/")))
        .await
        .unwrap_err();
    assert!(matches!(error, ForwardError::Unreachable(_)), "{error}");
    assert_eq!(error.status(), StatusCode::BAD_GATEWAY);
    assert!(error.to_string().contains("certificate"), "{error}");
}

#[tokio::test]
async fn insecure_skip_verify_accepts_an_unknown_certificate() {
    let addr = tls_server(&[b"h2", b"http/1.1"]).await;
    let tls = TlsSettings {
        ca_bundle: None,
        insecure_skip_verify: true,
    };
    let upstream = Upstream::new(&tls, Arc::new(NoopObserver)).unwrap();
    let response = upstream
        .send(get(format!("https://{addr}/")))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

/// A TLS handshake with the server at `addr`, presenting `name` as the server
/// name (SNI and the name the certificate is checked against).
async fn handshake(
    config: &rustls::ClientConfig,
    addr: std::net::SocketAddr,
    name: &str,
) -> std::io::Result<()> {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config.clone()));
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::try_from(name.to_owned()).unwrap();
    connector.connect(name, tcp).await.map(|_| ())
}

#[tokio::test]
async fn insecure_skip_verify_still_verifies_aws_endpoints() {
    let addr = tls_server(&[b"http/1.1"]).await;
    let insecure = TlsSettings {
        ca_bundle: None,
        insecure_skip_verify: true,
    };
    let config = signet::upstream::tls_config(&insecure).unwrap();
    // A local name: the unknown issuer is accepted.
    handshake(&config, addr, "localhost").await.unwrap();
    handshake(&config, addr, "minio.test").await.unwrap();
    // AWS endpoint names are verified all the same.
    for name in [
        "sqs.us-east-1.amazonaws.com",
        "bucket.s3.cn-north-1.amazonaws.com.cn",
        "abc.lambda-url.us-west-2.on.aws",
        "sts.us-gov-west-1.amazonaws.com",
    ] {
        let error = handshake(&config, addr, name).await.unwrap_err();
        assert!(
            error.to_string().contains("UnknownIssuer"),
            "{name}: {error}"
        );
    }
    // Trusting the issuer does not make its localhost certificate good for an AWS name.
    let bundle = ca_bundle();
    let trusting = TlsSettings {
        ca_bundle: Some(bundle.path().to_path_buf()),
        insecure_skip_verify: true,
    };
    let config = signet::upstream::tls_config(&trusting).unwrap();
    let error = handshake(&config, addr, "sqs.us-east-1.amazonaws.com")
        .await
        .unwrap_err();
    assert!(error.to_string().contains("not valid for name"), "{error}");
    handshake(&config, addr, "localhost").await.unwrap();
}

#[tokio::test]
async fn sends_the_signed_host_as_the_h2_authority_and_the_h1_host() {
    let bundle = ca_bundle();
    let tls = TlsSettings {
        ca_bundle: Some(bundle.path().to_path_buf()),
        insecure_skip_verify: false,
    };
    for (alpn, version) in [
        (&[&b"h2"[..]][..], "HTTP/2.0"),
        (&[&b"http/1.1"[..]][..], "HTTP/1.1"),
    ] {
        let addr = tls_server(alpn).await;
        let upstream = Upstream::new(&tls, Arc::new(NoopObserver)).unwrap();
        // A route with `sign_host`: connect to 127.0.0.1, sign and send another Host.
        let mut request = get(format!("https://{addr}/"));
        request.parts.headers.insert(
            "host",
            "search-d.us-west-2.es.amazonaws.com".parse().unwrap(),
        );
        let response = upstream.send(request).await.unwrap();
        let seen = |name: &str| response.headers()[name].to_str().unwrap().to_owned();
        let (authority, host) = (seen("x-seen-authority"), seen("x-seen-host"));
        assert_eq!(body_text(response).await, version);
        if version == "HTTP/2.0" {
            assert_eq!(authority, "search-d.us-west-2.es.amazonaws.com");
            assert!(host == "-" || host == authority, "{host}");
        } else {
            assert_eq!(host, "search-d.us-west-2.es.amazonaws.com");
        }
    }
}
