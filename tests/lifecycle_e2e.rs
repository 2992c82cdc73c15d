//! The daemon's lifecycle through the real binary: graceful drain on SIGTERM
//! (slow requests and open streams finish, readiness turns false, exit 0),
//! the drain timeout, and SIGHUP reloads (good file swaps routes while
//! in-flight requests finish on the old ones; a bad file is refused).

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;

const SIGTERM: i32 = 15;
const SIGHUP: i32 = 1;

/// An upstream that answers after `delay`.
async fn slow_upstream(delay: Duration) -> Upstream {
    Upstream::start_delayed(Keyring::with_test_key(), Arc::new(echo), delay).await
}

/// An upstream streaming `n` events, one every `every`.
async fn streaming_upstream(n: usize, every: Duration) -> Upstream {
    let handler: Handler = Arc::new(move |_seen: &Seen| {
        let stream = futures_util::stream::unfold(0usize, move |i| async move {
            if i == n {
                return None;
            }
            tokio::time::sleep(every).await;
            let frame = http_body::Frame::data(Bytes::from(format!("data: {i}\n\n")));
            Some((Ok::<_, std::convert::Infallible>(frame), i + 1))
        });
        Response::builder()
            .header("content-type", "text/event-stream")
            .body(http_body_util::StreamBody::new(stream).boxed())
            .unwrap()
    });
    Upstream::start_with(Keyring::with_test_key(), handler).await
}

/// POSTs to `/stream` through signet and returns the response as its head arrives.
async fn open_stream(signet: &Signet) -> Response<hyper::body::Incoming> {
    client()
        .request(
            Request::post(format!("{}/stream", signet.url()))
                .body(full("{}"))
                .unwrap(),
        )
        .await
        .unwrap()
}

/// Waits until `up` has verified a request for `path`, so that it is known to
/// be in flight (the delayed upstream records a request before it waits to
/// answer). Fails at once if the upstream rejected a signature.
async fn wait_until_seen(up: &Upstream, path: &str) {
    let deadline = Instant::now() + PATIENCE;
    while !up.seen().iter().any(|s| s.path_and_query == path) {
        assert!(
            up.rejected().is_empty(),
            "the upstream rejected a signature: {:?}",
            up.rejected()
        );
        assert!(
            Instant::now() < deadline,
            "{path} did not reach the upstream within {PATIENCE:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// GETs `url`; `None` when the request fails (e.g. nothing listens).
async fn try_get(url: &str) -> Option<(StatusCode, Bytes)> {
    let resp = client()
        .request(Request::get(url).body(full(Bytes::new())).unwrap())
        .await
        .ok()?;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.ok()?.to_bytes();
    Some((parts.status, body))
}

async fn wait_exit(signet: &mut Signet, timeout: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = signet.wait_exit(Duration::from_millis(20)) {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "signet did not exit within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_a_slow_request_finish_and_turns_readiness_false() {
    // Long enough that the drain is still waiting for the request while the
    // checks below poll for its effects.
    let up = slow_upstream(Duration::from_secs(3)).await;
    let mut signet = Signet::start(&one_route_config(&up.url(), "sqs", "us-east-1", ""));
    let readyz = format!("{}/readyz", signet.admin_url());
    let (status, _, _) = get(&readyz).await;
    assert_eq!(status, StatusCode::OK, "ready before the drain");

    let url = format!("{}/slow", signet.url());
    let in_flight = tokio::spawn(async move { get(&url).await });
    wait_until_seen(&up, "/slow").await;
    let sent = Instant::now();
    signet.signal(SIGTERM);

    // Readiness turns false while the drain waits for the request. The admin
    // listener stays up meanwhile: an unanswered probe is a failure.
    let deadline = Instant::now() + PATIENCE;
    let body = loop {
        match try_get(&readyz).await {
            Some((StatusCode::SERVICE_UNAVAILABLE, body)) => break body,
            Some((StatusCode::OK, _)) => {}
            other => panic!("unexpected /readyz answer while draining: {other:?}"),
        }
        assert!(
            Instant::now() < deadline,
            "readiness still true {:?} after SIGTERM",
            sent.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        String::from_utf8_lossy(&body).contains("drain"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    let deadline = Instant::now() + PATIENCE;
    while tokio::net::TcpStream::connect(signet.addr).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "the proxy listener still accepts {:?} after SIGTERM",
            sent.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let (status, _, _) = in_flight.await.unwrap();
    assert_eq!(status, StatusCode::OK, "the in-flight request completes");
    assert_eq!(up.seen().len(), 1);
    assert!(up.rejected().is_empty(), "{:?}", up.rejected());
    let exit = wait_exit(&mut signet, Duration::from_secs(10)).await;
    assert!(exit.success(), "exit 0 after the drain, got {exit}");
    assert!(sent.elapsed() < Duration::from_secs(10));
    // Buffered log lines are written out before the process ends.
    signet.wait_for_log("drained; exiting").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_an_open_stream_finish() {
    let up = streaming_upstream(8, Duration::from_millis(150)).await;
    let mut signet = Signet::start(&one_route_config(&up.url(), "bedrock", "us-east-1", ""));
    let resp = open_stream(&signet).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(&first[..], b"data: 0\n\n");
    signet.signal(SIGTERM);
    let rest = body
        .collect()
        .await
        .expect("stream completes during drain")
        .to_bytes();
    let expected: String = (1..8).map(|i| format!("data: {i}\n\n")).collect();
    assert_eq!(String::from_utf8_lossy(&rest), expected);
    let exit = wait_exit(&mut signet, Duration::from_secs(10)).await;
    assert!(exit.success(), "exit 0, got {exit}");
}

/// signet with `drain_timeout`, and one request stuck at an upstream that
/// answers after 8 s: verified (so correctly signed) and waiting there.
async fn with_a_stuck_request(drain_timeout: &str) -> (Upstream, Signet) {
    let up = slow_upstream(Duration::from_secs(8)).await;
    let cfg = format!(
        "[shutdown]\ndrain_timeout = \"{drain_timeout}\"\n{}",
        one_route_config(&up.url(), "sqs", "us-east-1", "")
    );
    let signet = Signet::start(&cfg);
    let url = format!("{}/stuck", signet.url());
    tokio::spawn(async move { get(&url).await });
    wait_until_seen(&up, "/stuck").await;
    (up, signet)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_timeout_bounds_the_wait_for_stuck_requests() {
    let (up, mut signet) = with_a_stuck_request("1s").await;
    let sent = Instant::now();
    signet.signal(SIGTERM);
    let exit = wait_exit(&mut signet, Duration::from_secs(6)).await;
    assert!(exit.success(), "exit 0 after the drain timeout, got {exit}");
    let took = sent.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "took {took:?}: {:#?}",
        signet.logs()
    );
    assert_eq!(up.seen().len(), 1, "the upstream saw the stuck request");
    assert!(up.rejected().is_empty(), "{:?}", up.rejected());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigterm_ends_the_drain_at_once() {
    let (up, mut signet) = with_a_stuck_request("60s").await;
    signet.signal(SIGTERM);
    signet.wait_for_log("draining").await;
    let sent = Instant::now();
    signet.signal(SIGTERM);
    let exit = wait_exit(&mut signet, Duration::from_secs(10)).await;
    assert!(exit.success(), "exit 0, got {exit}");
    assert!(
        sent.elapsed() < Duration::from_secs(5),
        "took {:?}",
        sent.elapsed()
    );
    signet.wait_for_log("second signal").await;
    assert!(up.rejected().is_empty(), "{:?}", up.rejected());
}

fn two_route_config(first: &str, second: Option<&str>) -> String {
    let mut cfg = format!(
        "[[routes]]\nname = \"first\"\npath_prefix = \"/first\"\nupstream = \"{first}\"\nservice = \"sqs\"\nregion = \"us-east-1\"\n"
    );
    if let Some(second) = second {
        cfg.push_str(&format!(
            "\n[[routes]]\nname = \"second\"\npath_prefix = \"/second\"\nupstream = \"{second}\"\nservice = \"sns\"\nregion = \"eu-west-1\"\n"
        ));
    }
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_swaps_routes_while_in_flight_requests_finish_on_the_old_ones() {
    let slow = slow_upstream(Duration::from_millis(1500)).await;
    let other = Upstream::start().await;
    let signet = Signet::start(&two_route_config(&slow.url(), None));
    let (status, headers, _) = get(&format!("{}/second/x", signet.url())).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "no second route yet (and 127.0.0.1 is no AWS host)"
    );
    // signet's own refusal, not an upstream's 403 for a bad signature.
    assert_eq!(
        headers.get("x-signet-error").and_then(|v| v.to_str().ok()),
        Some("unknown_host"),
        "{headers:?}"
    );
    assert!(slow.seen().is_empty() && other.seen().is_empty());

    let url = format!("{}/first/slow", signet.url());
    let in_flight = tokio::spawn(async move { get(&url).await });
    // Reload only once the request is at the old route's upstream.
    wait_until_seen(&slow, "/first/slow").await;

    // The new file moves /first to the other upstream and adds /second; its
    // drain timeout only applies after a restart, and signet says so.
    std::fs::write(
        signet.config_path(),
        format!(
            "[shutdown]\ndrain_timeout = \"30s\"\n\n{}",
            two_route_config(&other.url(), Some(&other.url()))
        ),
    )
    .unwrap();
    signet.signal(SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _, _) = get(&format!("{}/second/x", signet.url())).await;
        if status == StatusCode::OK {
            break;
        }
        assert!(Instant::now() < deadline, "reload did not take effect");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, _, _) = get(&format!("{}/first/after", signet.url())).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        other
            .seen()
            .iter()
            .any(|s| s.path_and_query == "/first/after"),
        "new routes serve new requests"
    );
    assert_eq!(
        other
            .seen()
            .iter()
            .find(|s| s.path_and_query == "/second/x")
            .unwrap()
            .service,
        "sns"
    );

    let (status, _, _) = in_flight.await.unwrap();
    assert_eq!(
        status,
        StatusCode::OK,
        "the in-flight request finishes on the old route"
    );
    assert!(slow
        .seen()
        .iter()
        .any(|s| s.path_and_query == "/first/slow"));
    assert!(slow.rejected().is_empty() && other.rejected().is_empty());
    assert!(signet
        .logs()
        .iter()
        .any(|l| l.contains("configuration reloaded")));
    signet
        .wait_for_log("takes effect at the next restart")
        .await;
    let warning = signet
        .logs()
        .into_iter()
        .find(|l| l.contains("takes effect at the next restart"))
        .unwrap();
    assert!(warning.contains("shutdown"), "{warning}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_with_a_bad_file_keeps_the_running_configuration() {
    let up = Upstream::start().await;
    let signet = Signet::start(&two_route_config(&up.url(), None));
    std::fs::write(
        signet.config_path(),
        "[[routes]]\nname = \"broken\"\nupstream = \"not a url\"\nservice = \"sqs\"\nregion = \"us-est-1\"\n",
    )
    .unwrap();
    signet.signal(SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(10);
    let logs = Arc::new(Mutex::new(Vec::new()));
    while !logs
        .lock()
        .unwrap()
        .iter()
        .any(|l: &String| l.contains("reload rejected"))
    {
        assert!(
            Instant::now() < deadline,
            "no rejection logged: {:#?}",
            signet.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        *logs.lock().unwrap() = signet.logs();
    }
    let rejection = logs
        .lock()
        .unwrap()
        .iter()
        .find(|l| l.contains("reload rejected"))
        .cloned()
        .unwrap();
    assert!(
        rejection.contains("routes[0]"),
        "the error names the key: {rejection}"
    );
    let (status, _, _) = get(&format!("{}/first/still", signet.url())).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the old configuration keeps serving"
    );
    assert!(up.rejected().is_empty());
}

/// A valid file whose default source names a profile that does not exist:
/// the credentials signing now would not resolve (a reload waits 5 s for
/// them, then refuses it).
fn unresolvable(dir: &tempfile::TempDir, up: &Upstream) -> String {
    let profiles = dir.path().join("credentials");
    std::fs::write(
        &profiles,
        "[other]\naws_access_key_id = AKIDOTHER\naws_secret_access_key = other-secret\n",
    )
    .unwrap();
    format!(
        "[credentials.default]\nkind = \"profile\"\nname = \"missing\"\ncredentials_file = \"{}\"\n\n{}",
        profiles.display(),
        two_route_config(&up.url(), Some(&up.url()))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_reload_drains_without_waiting_for_it() {
    let up = Upstream::start().await;
    let mut signet = Signet::start(&two_route_config(&up.url(), None));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(signet.config_path(), unresolvable(&dir, &up)).unwrap();
    signet.signal(SIGHUP);
    signet.wait_for_log("SIGHUP: reloading configuration").await;
    let sent = Instant::now();
    signet.signal(SIGTERM);
    let exit = wait_exit(&mut signet, Duration::from_secs(10)).await;
    assert!(exit.success(), "exit 0, got {exit}");
    // The reload would have waited 5 s for the new credentials.
    assert!(
        sent.elapsed() < Duration::from_secs(3),
        "took {:?}",
        sent.elapsed()
    );
    signet.wait_for_log("reload abandoned").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_keeps_the_running_configuration_when_its_credentials_would_stop_resolving() {
    let up = Upstream::start().await;
    let signet = Signet::start(&two_route_config(&up.url(), None));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(signet.config_path(), unresolvable(&dir, &up)).unwrap();
    signet.signal(SIGHUP);
    signet.wait_for_log("reload rejected").await;
    let rejection = signet
        .logs()
        .into_iter()
        .find(|l| l.contains("reload rejected"))
        .unwrap();
    assert!(
        rejection.contains("credentials that sign now would stop resolving: default"),
        "{rejection}"
    );
    // The running routes and credentials serve on; the new route never came.
    let (status, _, _) = get(&format!("{}/first/still", signet.url())).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = get(&format!("{}/second/x", signet.url())).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(up.seen().len(), 1);
    assert_no_rejections(&up);
    assert_eq!(
        get(&format!("{}/readyz", signet.admin_url())).await.0,
        StatusCode::OK
    );
}

/// A config with one route to `upstream` and the given client idle timeout.
fn idle_config(upstream: &str, idle_timeout: &str) -> String {
    format!(
        "[connections]\nidle_timeout = \"{idle_timeout}\"\n{}",
        one_route_config(upstream, "sqs", "us-east-1", "")
    )
}

/// Reads one HTTP/1.1 response with a `content-length` body off `stream`;
/// returns its head.
async fn read_response(stream: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed before a whole response");
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map(|v| v.trim().parse().unwrap())
            .expect("content-length");
        if buf.len() >= end + 4 + length {
            return head;
        }
    }
}

/// Waits until the peer closes `stream` (read returns 0 or the connection
/// resets) and returns how long that took; fails after `limit`.
async fn closed_within(stream: &mut tokio::net::TcpStream, limit: Duration) -> Duration {
    use tokio::io::AsyncReadExt;
    let start = Instant::now();
    let mut chunk = [0u8; 1024];
    match tokio::time::timeout_at((start + limit).into(), stream.read(&mut chunk)).await {
        Err(_) => panic!("still open after {limit:?}"),
        Ok(Ok(0)) | Ok(Err(_)) => start.elapsed(),
        Ok(Ok(n)) => panic!(
            "unexpected bytes: {:?}",
            String::from_utf8_lossy(&chunk[..n])
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    use tokio::io::AsyncWriteExt;
    let up = Upstream::start().await;
    let signet = Signet::start(&idle_config(&up.url(), "400ms"));
    let mut stream = tokio::net::TcpStream::connect(signet.addr).await.unwrap();
    let mut idle_since = Instant::now();
    for (i, path) in ["/one", "/two"].into_iter().enumerate() {
        if i > 0 {
            // Shorter pauses than the timeout keep the connection open.
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        let request = format!("GET {path} HTTP/1.1\r\nhost: {}\r\n\r\n", signet.addr);
        stream.write_all(request.as_bytes()).await.unwrap();
        let head = read_response(&mut stream).await;
        // The connection is idle from the end of its last response.
        idle_since = Instant::now();
        assert!(head.starts_with("http/1.1 200"), "{head}");
    }
    let metric = |name: &'static str| {
        let url = format!("{}/metrics", signet.admin_url());
        async move {
            let (_, _, text) = get(&url).await;
            signet::telemetry::metrics::sample(&String::from_utf8_lossy(&text), name, &[])
        }
    };
    assert_eq!(metric("signet_client_connections").await, Some(1.0));
    closed_within(&mut stream, Duration::from_secs(5)).await;
    let idle = idle_since.elapsed();
    assert!(
        idle >= Duration::from_millis(350),
        "closed after {idle:?} idle, before the 400 ms timeout"
    );
    assert_eq!(up.seen().len(), 2);
    assert!(up.rejected().is_empty());
    // The gauge drops when the connection's task ends, just after the close.
    let deadline = Instant::now() + Duration::from_secs(2);
    while metric("signet_client_connections").await != Some(0.0) {
        assert!(
            Instant::now() < deadline,
            "the open-connections gauge stays up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        metric("signet_client_connections_closed_idle_total").await,
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sending_its_request_head_slowly_is_closed() {
    use tokio::io::AsyncWriteExt;
    let up = Upstream::start().await;
    let signet = Signet::start(&idle_config(&up.url(), "400ms"));
    let mut stream = tokio::net::TcpStream::connect(signet.addr).await.unwrap();
    let start = Instant::now();
    stream
        .write_all(format!("GET /slowloris HTTP/1.1\r\nhost: {}\r\n", signet.addr).as_bytes())
        .await
        .unwrap();
    // One header line every 100 ms: bytes keep arriving, the head never ends.
    let mut closed = false;
    for i in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if stream
            .write_all(format!("x-drip-{i}: 1\r\n").as_bytes())
            .await
            .is_err()
        {
            closed = true;
            break;
        }
    }
    if !closed {
        closed_within(&mut stream, Duration::from_secs(1)).await;
    }
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(350) && took < Duration::from_secs(4),
        "closed after {took:?}"
    );
    assert!(up.seen().is_empty(), "nothing was forwarded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_answers_and_streams_with_long_pauses_are_not_idle() {
    let slow = slow_upstream(Duration::from_millis(1200)).await;
    let signet = Signet::start(&idle_config(&slow.url(), "300ms"));
    let (status, _, _) = get(&format!("{}/slow", signet.url())).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "waiting for the upstream is not idle"
    );

    let stream_up = streaming_upstream(3, Duration::from_millis(700)).await;
    let signet = Signet::start(&idle_config(&stream_up.url(), "300ms"));
    let resp = open_stream(&signet).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body = resp
        .into_body()
        .collect()
        .await
        .expect("the stream is not cut between events")
        .to_bytes();
    assert_eq!(
        String::from_utf8_lossy(&body),
        "data: 0\n\ndata: 1\n\ndata: 2\n\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_h2c_connection_is_told_goodbye_and_closed() {
    let up = Upstream::start().await;
    let signet = Signet::start(&idle_config(&up.url(), "400ms"));
    let stream = tokio::net::TcpStream::connect(signet.addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    let connection = tokio::spawn(connection);
    let request = Request::get(format!("http://{}/over-h2c", signet.addr))
        .body(full(""))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "served over h2c");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("/over-h2c"));
    assert_eq!(up.seen().len(), 1);
    assert!(
        up.rejected().is_empty(),
        "signed correctly: {:?}",
        up.rejected()
    );

    let idle = Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(5), connection)
        .await
        .expect("signet closes the idle h2c connection")
        .unwrap();
    assert!(ended.is_ok(), "a clean close, not a broken one: {ended:?}");
    assert!(
        idle.elapsed() >= Duration::from_millis(350),
        "{:?}",
        idle.elapsed()
    );
}
