//! The upstream connection pool against a raw HTTP/1.1 server on 127.0.0.1 that
//! counts its connections: keep-alive connections are reused, several requests in
//! flight get a connection each, and a connection the server closed while idle is
//! never used again (the request goes out on a new one, without a retry).
//!
//! Transport only: a stand-in signer stamps each attempt and the server does not
//! verify signatures; signing is covered end to end against a verifying upstream.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::Request;
use http_body_util::BodyExt;
use signet::upstream::{OutboundRequest, RoutePolicy, TlsSettings, Upstream, UpstreamObserver};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

mod transport;

/// Counts attempts and retries, to show a resend is not a retry.
#[derive(Default)]
struct Counts {
    attempts: AtomicUsize,
    retries: AtomicUsize,
}

impl UpstreamObserver for Counts {
    fn attempt(&self, _route: &str) {
        self.attempts.fetch_add(1, Ordering::Relaxed);
    }
    fn retry(&self, _route: &str, _reason: &str) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }
}

/// How the test server treats a connection after answering.
#[derive(Clone, Copy)]
enum AfterAnswer {
    /// Keep it open for the next request.
    KeepAlive,
    /// Close it (without saying so in the response).
    Close,
}

/// A minimal HTTP/1.1 server: answers every request with `ok <n>`, where n
/// counts requests on that connection. Returns its address and a count of
/// accepted connections; `delay` holds each answer back.
async fn server(after: AfterAnswer, delay: Duration) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            count.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(serve(stream, after, delay));
        }
    });
    (addr, accepted)
}

async fn serve(mut stream: TcpStream, after: AfterAnswer, delay: Duration) {
    let mut buf = Vec::new();
    let mut served = 0;
    loop {
        let mut chunk = [0u8; 4096];
        let n = match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            buf.drain(..end + 4);
            served += 1;
            tokio::time::sleep(delay).await;
            let body = format!("ok {served}");
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            if stream.write_all(answer.as_bytes()).await.is_err() {
                return;
            }
            if let AfterAnswer::Close = after {
                let _ = stream.shutdown().await;
                return;
            }
        }
    }
}

fn get(addr: std::net::SocketAddr) -> OutboundRequest {
    let request = Request::get(format!("http://{addr}/x"))
        .header("host", addr.to_string())
        .body(())
        .unwrap();
    transport::stamped(request, RoutePolicy::default(), "pool")
}

async fn text(upstream: &Upstream, addr: std::net::SocketAddr) -> String {
    let response = upstream.send(get(addr)).await.unwrap();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test(flavor = "current_thread")]
async fn reuses_a_keep_alive_connection_for_sequential_requests() {
    let (addr, accepted) = server(AfterAnswer::KeepAlive, Duration::ZERO).await;
    let upstream = Upstream::new(&TlsSettings::default(), Arc::new(Counts::default())).unwrap();
    for n in 1..=5 {
        assert_eq!(text(&upstream, addr).await, format!("ok {n}"));
    }
    assert_eq!(accepted.load(Ordering::Relaxed), 1);
}

#[tokio::test(flavor = "current_thread")]
async fn concurrent_requests_get_a_connection_each_and_keep_them_after() {
    let (addr, accepted) = server(AfterAnswer::KeepAlive, Duration::from_millis(100)).await;
    let upstream =
        Arc::new(Upstream::new(&TlsSettings::default(), Arc::new(Counts::default())).unwrap());
    let answers = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let (upstream, answers) = (upstream.clone(), answers.clone());
        tasks.push(tokio::spawn(async move {
            let got = text(&upstream, addr).await;
            answers.lock().unwrap().push(got);
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(*answers.lock().unwrap(), vec!["ok 1"; 3]);
    assert_eq!(accepted.load(Ordering::Relaxed), 3);
    // All three are pooled now: three more requests open nothing new.
    for _ in 0..3 {
        assert!(text(&upstream, addr).await.starts_with("ok "));
    }
    assert_eq!(accepted.load(Ordering::Relaxed), 3);
}

#[tokio::test(flavor = "current_thread")]
async fn a_connection_the_server_closed_is_not_reused_and_costs_no_retry() {
    let (addr, accepted) = server(AfterAnswer::Close, Duration::ZERO).await;
    let counts = Arc::new(Counts::default());
    let upstream = Upstream::new(&TlsSettings::default(), counts.clone()).unwrap();
    for _ in 0..4 {
        assert_eq!(text(&upstream, addr).await, "ok 1");
        // Give the closed connection's task a moment to notice.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(accepted.load(Ordering::Relaxed), 4);
    assert_eq!(counts.attempts.load(Ordering::Relaxed), 4);
    assert_eq!(counts.retries.load(Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "current_thread")]
async fn separate_upstream_clients_never_share_connections() {
    let (addr, accepted) = server(AfterAnswer::KeepAlive, Duration::ZERO).await;
    let first = Upstream::new(&TlsSettings::default(), Arc::new(Counts::default())).unwrap();
    let second = Upstream::new(&TlsSettings::default(), Arc::new(Counts::default())).unwrap();
    assert_eq!(text(&first, addr).await, "ok 1");
    assert_eq!(text(&second, addr).await, "ok 1");
    assert_eq!(text(&first, addr).await, "ok 2");
    assert_eq!(accepted.load(Ordering::Relaxed), 2);
}

#[tokio::test(flavor = "current_thread")]
async fn back_to_back_requests_survive_a_server_that_closes_every_connection() {
    let (addr, accepted) = server(AfterAnswer::Close, Duration::ZERO).await;
    let upstream = Upstream::new(&TlsSettings::default(), Arc::new(Counts::default())).unwrap();
    // No pause: a request may meet a connection whose close is still in flight;
    // it goes out again on a new connection instead of failing.
    for _ in 0..20 {
        assert_eq!(text(&upstream, addr).await, "ok 1");
    }
    assert!(accepted.load(Ordering::Relaxed) >= 20);
}

#[tokio::test]
async fn refuses_a_relative_uri_without_repeating_its_query() {
    let upstream = Upstream::new(&TlsSettings::default(), Arc::new(Counts::default())).unwrap();
    let mut policy = RoutePolicy::default();
    policy.retry.max_attempts = 1;
    let request = Request::get("/object?X-Amz-Security-Token=client-token-secret")
        .body(())
        .unwrap();
    let mut request: OutboundRequest = transport::stamped(request, policy, "pool");
    request.upstream = "http://127.0.0.1:1".into();
    let error = upstream.send(request).await.unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("/object") && text.contains("not absolute"),
        "{text}"
    );
    assert!(!text.contains("client-token-secret"), "{text}");
}
