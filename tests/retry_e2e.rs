//! Retries, error bodies, timeouts and shedding through the real binary, with
//! every attempt verified by the independent upstream.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use http::{Request, Response, StatusCode};

/// Answers `failures` times with `fail`, then echoes.
fn failing(failures: usize, fail: fn() -> Response<UpBody>) -> (Handler, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let handler: Handler = Arc::new(move |seen: &Seen| {
        if c.fetch_add(1, Ordering::SeqCst) < failures {
            fail()
        } else {
            echo(seen)
        }
    });
    (handler, calls)
}

fn slow_down() -> Response<UpBody> {
    Response::builder()
        .status(503)
        .header("content-type", "application/xml")
        .body(full("<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"))
        .unwrap()
}

fn throttling() -> Response<UpBody> {
    Response::builder()
        .status(400)
        .header("content-type", "application/x-amz-json-1.0")
        .body(full(r#"{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"Rate exceeded"}"#))
        .unwrap()
}

const FAST_RETRY: &str = "[routes.retry]\nbase_backoff = \"5ms\"\nmax_backoff = \"50ms\"";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_throttling_with_a_fresh_verified_signature_per_attempt() {
    let (handler, calls) = failing(2, throttling);
    let up = Upstream::start_with(Keyring::with_test_key(), handler).await;
    let signet = Signet::start(&one_route_config(
        &up.url(),
        "dynamodb",
        "us-east-1",
        FAST_RETRY,
    ));
    let req = Request::post(format!("{}/", signet.url()))
        .header("x-amz-target", "DynamoDB_20120810.ListTables")
        .body(full("{}"))
        .unwrap();
    let (status, _, _) = send(req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "two throttled attempts, then success"
    );
    let seen = up.seen();
    assert_eq!(
        seen.len(),
        3,
        "every attempt passed independent verification"
    );
    assert!(
        seen.iter().all(|s| &s.body[..] == b"{}"),
        "the buffered body is replayed"
    );
    assert!(up.rejected().is_empty());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(signet.logs().iter().any(|l| l.contains("\"attempts\":3")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn returns_the_upstreams_error_body_when_retries_run_out() {
    let (handler, calls) = failing(usize::MAX, slow_down);
    let up = Upstream::start_with(Keyring::with_test_key(), handler).await;
    let signet = Signet::start(&one_route_config(&up.url(), "s3", "us-east-1", FAST_RETRY));
    let (status, _, body) = get(&format!("{}/bucket/key", signet.url())).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        String::from_utf8_lossy(&body).contains("<Code>SlowDown</Code>"),
        "the upstream's body reaches the client"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 3, "default max_attempts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_byte_timeout_answers_504_naming_it() {
    let up = Upstream::start_delayed(
        Keyring::with_test_key(),
        Arc::new(echo),
        Duration::from_secs(5),
    )
    .await;
    let cfg = one_route_config(
        &up.url(),
        "sqs",
        "us-east-1",
        "[routes.retry]\nmax_attempts = 1\n[routes.timeouts]\nfirst_byte = \"300ms\"",
    );
    let signet = Signet::start(&cfg);
    let started = Instant::now();
    let (status, headers, body) = get(&format!("{}/q", signet.url())).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(headers.get("x-signet-error").unwrap(), "first_byte_timeout");
    assert!(
        String::from_utf8_lossy(&body).contains("first-byte"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sheds_a_burst_past_the_in_flight_limit_with_retry_after() {
    let up = Upstream::start_delayed(
        Keyring::with_test_key(),
        Arc::new(echo),
        Duration::from_millis(800),
    )
    .await;
    let cfg = one_route_config(
        &up.url(),
        "sqs",
        "us-east-1",
        "[routes.limits]\nmax_in_flight = 2",
    );
    let signet = Signet::start(&cfg);
    let mut tasks = Vec::new();
    for i in 0..6 {
        let url = format!("{}/q{i}", signet.url());
        tasks.push(tokio::spawn(async move { get(&url).await }));
    }
    let mut ok = 0;
    let mut shed = 0;
    for t in tasks {
        let (status, headers, _) = t.await.unwrap();
        match status {
            StatusCode::OK => ok += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(headers.get("x-signet-error").unwrap(), "overloaded");
                assert!(headers.get("retry-after").is_some());
                shed += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(ok, 2, "only the limit is served");
    assert_eq!(shed, 4, "the rest is shed at once");
}
