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
    assert_no_rejections(&up);
    // The access log line is written as the response ends.
    signet.wait_for_log("\"attempts\":3").await;
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
    // The timeout fired on a correctly signed request the upstream was
    // holding, not on a rejected one.
    assert_no_rejections(&up);
    let seen = up.seen();
    assert_eq!(seen.len(), 1, "one attempt reached the upstream");
    assert_eq!(seen[0].path_and_query, "/q");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sheds_a_burst_past_the_in_flight_limit_with_retry_after() {
    // The upstream holds each request long enough for the burst below to be
    // answered while the limit is taken.
    let up = Upstream::start_delayed(
        Keyring::with_test_key(),
        Arc::new(echo),
        Duration::from_secs(3),
    )
    .await;
    let cfg = one_route_config(
        &up.url(),
        "sqs",
        "us-east-1",
        "[routes.limits]\nmax_in_flight = 2\nshed_retry_after = \"2500ms\"",
    );
    let signet = Signet::start(&cfg);
    // Two requests take the route's two places...
    let mut held = Vec::new();
    for i in 0..2 {
        let url = format!("{}/held{i}", signet.url());
        held.push(tokio::spawn(async move { get(&url).await }));
    }
    let deadline = Instant::now() + PATIENCE;
    while up.seen().len() < 2 {
        assert_no_rejections(&up);
        assert!(
            Instant::now() < deadline,
            "the limit's requests did not reach the upstream: {:?}",
            up.seen()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // ...so a burst past the limit is shed at once.
    let mut burst = Vec::new();
    for i in 0..4 {
        let url = format!("{}/shed{i}", signet.url());
        burst.push(tokio::spawn(async move { get(&url).await }));
    }
    let mut shed = 0;
    for t in burst {
        let (status, headers, _) = t.await.unwrap();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{headers:?}");
        assert_eq!(headers.get("x-signet-error").unwrap(), "overloaded");
        // shed_retry_after = 2.5 s, in whole seconds rounded up.
        assert_eq!(
            headers.get("retry-after").and_then(|v| v.to_str().ok()),
            Some("3"),
            "{headers:?}"
        );
        shed += 1;
    }
    let mut ok = 0;
    for t in held {
        let (status, _, _) = t.await.unwrap();
        assert_eq!(status, StatusCode::OK);
        ok += 1;
    }
    assert_eq!(ok, 2, "only the limit is served");
    assert_eq!(shed, 4, "the rest is shed at once");
    let mut paths: Vec<String> = up.seen().into_iter().map(|s| s.path_and_query).collect();
    paths.sort();
    assert_eq!(
        paths,
        ["/held0", "/held1"],
        "shed requests never reach the upstream"
    );
    assert_no_rejections(&up);
}
