//! End to end through the real `signet` binary: unsigned requests in, requests
//! out that an independent verifier (the `aws-sigv4` crate) accepts.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};

fn s3_config(up: &Upstream, extra: &str) -> String {
    one_route_config(&up.url(), "s3", "us-east-1", extra)
}

#[tokio::test]
async fn signs_non_s3_post_that_the_verifier_accepts() {
    let up = Upstream::start().await;
    let signet = Signet::start(&one_route_config(&up.url(), "dynamodb", "eu-west-1", ""));
    let body = r#"{"TableName":"t"}"#;
    let req = Request::post(format!("{}/", signet.url()))
        .header("content-type", "application/x-amz-json-1.0")
        .header("x-amz-target", "DynamoDB_20120810.DescribeTable")
        .body(full(body))
        .unwrap();
    let (status, headers, out) = send(req).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&out));
    assert_no_rejections(&up);
    let seen = up.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].service, "dynamodb");
    assert_eq!(seen[0].region, "eu-west-1");
    assert_eq!(seen[0].access_key_id, AKID);
    assert_eq!(&seen[0].body[..], body.as_bytes());
    for h in [
        "content-type",
        "x-amz-target",
        "host",
        "x-amz-date",
        "x-amz-security-token",
    ] {
        assert!(
            seen[0].signed_headers.iter().any(|s| s == h),
            "{h} unsigned"
        );
    }
    assert_eq!(headers.get("x-amzn-requestid").unwrap(), "req-0001");
}

#[tokio::test]
async fn signs_s3_requests_with_content_sha256() {
    let up = Upstream::start().await;
    let signet = Signet::start(&s3_config(&up, ""));
    let (status, _, _) = get(&format!("{}/bucket/key.txt?versionId=3", signet.url())).await;
    assert_eq!(status, StatusCode::OK);
    let req = Request::put(format!("{}/bucket/small.bin", signet.url()))
        .body(full(vec![7u8; 1024]))
        .unwrap();
    assert_eq!(send(req).await.0, StatusCode::OK);
    assert_no_rejections(&up);
    let seen = up.seen();
    assert_eq!(seen.len(), 2);
    let sha = seen[1].headers.get("x-amz-content-sha256").unwrap();
    assert_eq!(
        sha.to_str().unwrap(),
        hex::encode(Sha256::digest(vec![7u8; 1024]))
    );
    assert!(seen[0]
        .signed_headers
        .iter()
        .any(|h| h == "x-amz-content-sha256"));
}

#[tokio::test]
async fn forwards_tricky_paths_queries_and_headers_byte_for_byte() {
    let up = Upstream::start().await;
    let signet = Signet::start(&one_route_config(&up.url(), "execute-api", "us-west-2", ""));
    let s3up = Upstream::start().await;
    let s3 = Signet::start(&s3_config(&s3up, ""));
    let paths = [
        "/a/b/../c//d/./e",
        "/%E2%82%AC/caf%C3%A9/%20space",
        "/reserved/!$&'()*+,;=:@",
        "/percent/%2F%25%3F",
        "/q?b=2&a=1&a=0&empty=&novalue&%E2%82%AC=%E2%82%AC&plus=a+b&sl=a%2Fb",
        "/tilde~and-dash_dot.",
    ];
    for path in paths {
        for (sig, up) in [(&signet, &up), (&s3, &s3up)] {
            let req = Request::get(format!("{}{}", sig.url(), path))
                .header("x-custom", "  odd    inner   spaces  ")
                .header("x-repeat", "one")
                .header("x-repeat", "two")
                .header("x-amz-meta-name", "café")
                .header("user-agent", "legacy-app/1.0")
                .body(full(Bytes::new()))
                .unwrap();
            let (status, _, body) = send(req).await;
            assert_eq!(
                status,
                StatusCode::OK,
                "{path}: {}",
                String::from_utf8_lossy(&body)
            );
            let last = up.seen().pop().unwrap();
            assert_eq!(
                last.path_and_query, path,
                "path and query must travel as sent"
            );
            let repeats: Vec<_> = last.headers.get_all("x-repeat").iter().collect();
            assert_eq!(repeats, ["one", "two"]);
            assert!(!last.signed_headers.iter().any(|h| h == "user-agent"));
            assert!(last.signed_headers.iter().any(|h| h == "x-amz-meta-name"));
        }
    }
    assert_no_rejections(&up);
    assert_no_rejections(&s3up);
}

#[tokio::test]
async fn handles_empty_one_mib_and_over_cap_bodies() {
    let up = Upstream::start().await;
    let cfg = one_route_config(&up.url(), "es", "us-west-2", "body_cap = \"1MiB\"");
    let signet = Signet::start(&cfg);
    for size in [0usize, 1024 * 1024] {
        let body = vec![b'x'; size];
        let req = Request::post(format!("{}/_bulk", signet.url()))
            .body(full(body.clone()))
            .unwrap();
        let (status, _, _) = send(req).await;
        assert_eq!(status, StatusCode::OK, "size {size}");
        assert_eq!(up.seen().last().unwrap().body.len(), size);
    }
    let before = up.seen().len();
    let req = Request::post(format!("{}/_bulk", signet.url()))
        .body(full(vec![b'x'; 1024 * 1024 + 1]))
        .unwrap();
    let (status, headers, body) = send(req).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(headers.get("x-signet-error").unwrap(), "body_too_large");
    assert!(
        String::from_utf8_lossy(&body).contains("1048576"),
        "names the cap"
    );
    assert_eq!(up.seen().len(), before, "nothing forwarded");
    assert_no_rejections(&up);
}

/// A body of unknown length, sent frame by frame.
fn streamed(frames: usize, frame_size: usize) -> UpBody {
    let stream = futures_util::stream::iter((0..frames).map(move |i| {
        Ok::<_, std::convert::Infallible>(http_body::Frame::data(Bytes::from(vec![
            (i % 251) as u8;
            frame_size
        ])))
    }));
    http_body_util::StreamBody::new(stream).boxed()
}

#[tokio::test]
async fn streams_large_s3_uploads_with_unsigned_payload() {
    let up = Upstream::start().await;
    let signet = Signet::start(&s3_config(&up, ""));
    let req = Request::put(format!("{}/bucket/big.bin", signet.url()))
        .body(streamed(64, 64 * 1024))
        .unwrap();
    let (status, _, _) = send(req).await;
    assert_eq!(status, StatusCode::OK);
    let seen = up.seen().pop().unwrap();
    assert_eq!(seen.body.len(), 64 * 64 * 1024);
    assert_eq!(
        seen.headers.get("x-amz-content-sha256").unwrap(),
        "UNSIGNED-PAYLOAD"
    );
    assert_no_rejections(&up);
}

/// A GET may carry a body (OpenSearch and Elasticsearch searches do); one of
/// unknown length must reach the upstream whole, streamed on S3 and signed
/// elsewhere.
#[tokio::test]
async fn get_with_a_streamed_body_forwards_the_body() {
    let up = Upstream::start().await;
    for (service, region, hash) in [
        ("s3", "us-east-1", Some("UNSIGNED-PAYLOAD")),
        ("es", "us-west-2", None),
    ] {
        let signet = Signet::start(&one_route_config(&up.url(), service, region, ""));
        // The test client, like hyper everywhere, frames a GET body only when told to.
        let req = Request::get(format!("{}/index/_search", signet.url()))
            .header("transfer-encoding", "chunked")
            .body(streamed(3, 1000))
            .unwrap();
        let (status, _, _) = send(req).await;
        assert_eq!(status, StatusCode::OK, "{service}");
        let seen = up.seen().pop().unwrap();
        assert_eq!(seen.method, "GET", "{service}");
        assert_eq!(seen.body.len(), 3000, "{service}: the body arrives whole");
        let sent = seen
            .headers
            .get("x-amz-content-sha256")
            .map(|v| v.to_str().unwrap());
        match hash {
            Some(hash) => assert_eq!(sent, Some(hash), "{service}"),
            None => assert!(
                sent.is_none(),
                "{service}: signed payload, verified upstream"
            ),
        }
    }
    assert_no_rejections(&up);
}

#[tokio::test]
async fn passes_unsigned_aws_chunked_uploads_with_crc32_trailer_byte_identical() {
    let up = Upstream::start().await;
    let signet = Signet::start(&s3_config(&up, ""));
    let data = vec![42u8; 100_000];
    let url = format!("{}/bucket/chunked.bin", signet.url());
    let (req, wire) = aws_chunked_put(&url, &data, false);
    let (status, _, _) = send(req).await;
    assert_eq!(status, StatusCode::OK);
    assert_no_rejections(&up);
    let seen = up.seen().pop().unwrap();
    assert_eq!(
        &seen.body[..],
        &wire[..],
        "aws-chunked body must arrive byte-identical"
    );
    assert_eq!(
        seen.headers.get("x-amz-content-sha256").unwrap(),
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    );
    for h in [
        "x-amz-trailer",
        "x-amz-decoded-content-length",
        "content-encoding",
    ] {
        assert!(
            seen.signed_headers.iter().any(|s| s == h),
            "{h} must be signed"
        );
    }
}

#[tokio::test]
async fn resigns_client_signed_aws_chunked_uploads_chunk_by_chunk() {
    let up = Upstream::start().await;
    let signet = Signet::start(&s3_config(&up, ""));
    let data: Vec<u8> = (0..150_000u32).map(|i| (i % 253) as u8).collect();
    let url = format!("{}/bucket/signed-chunks.bin", signet.url());
    let (req, wire) = aws_chunked_put(&url, &data, true);
    let (status, _, body) = send(req).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_no_rejections(&up);
    let seen = up.seen().pop().unwrap();
    assert_eq!(seen.body.len(), wire.len(), "framing length is kept");
    let (decoded, trailers) = verify_chunk_chain(&seen, SECRET);
    assert_eq!(decoded, data);
    assert_eq!(
        trailers[0],
        ("x-amz-checksum-crc32".to_string(), crc32_b64(&data))
    );
}

#[tokio::test]
async fn streams_server_sent_events_before_the_stream_ends() {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    let rx = std::sync::Arc::new(std::sync::Mutex::new(Some(rx)));
    let handler: Handler = std::sync::Arc::new(move |_seen: &Seen| {
        let rx = rx.lock().unwrap().take().expect("one SSE request");
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|b| {
                (
                    Ok::<_, std::convert::Infallible>(http_body::Frame::data(b)),
                    rx,
                )
            })
        });
        Response::builder()
            .header("content-type", "text/event-stream")
            .body(http_body_util::StreamBody::new(stream).boxed())
            .unwrap()
    });
    let up = Upstream::start_with(Keyring::with_test_key(), handler).await;
    let signet = Signet::start(&one_route_config(&up.url(), "bedrock", "us-east-1", ""));
    tx.send(Bytes::from_static(b"data: first\n\n"))
        .await
        .unwrap();
    let resp = client()
        .request(
            Request::post(format!(
                "{}/model/x/invoke-with-response-stream",
                signet.url()
            ))
            .body(full("{}"))
            .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let first = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("first event arrives while the stream is open")
        .unwrap()
        .unwrap();
    assert_eq!(
        first.into_data().unwrap(),
        Bytes::from_static(b"data: first\n\n")
    );
    tx.send(Bytes::from_static(b"data: second\n\n"))
        .await
        .unwrap();
    drop(tx);
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(&rest[..], b"data: second\n\n");
    assert_no_rejections(&up);
}

#[tokio::test]
async fn strips_hop_by_hop_headers_both_ways() {
    let handler: Handler = std::sync::Arc::new(|_seen: &Seen| {
        Response::builder()
            .header("connection", "x-up-hop")
            .header("x-up-hop", "1")
            .header("keep-alive", "timeout=5")
            .header("x-up-end", "kept")
            .body(full("ok"))
            .unwrap()
    });
    let up = Upstream::start_with(Keyring::with_test_key(), handler).await;
    let signet = Signet::start(&one_route_config(&up.url(), "sqs", "us-east-1", ""));
    let req = Request::get(format!("{}/queue", signet.url()))
        .header("connection", "x-client-hop")
        .header("x-client-hop", "secret-hop")
        .header("proxy-authorization", "Basic Zm9vOmJhcg==")
        .header("te", "trailers")
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=client/should/be/dropped",
        )
        .header("x-amz-date", "20000101T000000Z")
        .body(full(Bytes::new()))
        .unwrap();
    let (status, headers, _) = send(req).await;
    assert_eq!(status, StatusCode::OK);
    let seen = up.seen().pop().unwrap();
    for h in ["x-client-hop", "proxy-authorization", "te"] {
        assert!(seen.headers.get(h).is_none(), "{h} forwarded");
    }
    assert!(headers.get("x-up-hop").is_none() && headers.get("keep-alive").is_none());
    assert_eq!(headers.get("x-up-end").unwrap(), "kept");
    assert_no_rejections(&up);
}

#[tokio::test]
async fn strips_the_configured_headers_before_signing() {
    let up = Upstream::start().await;
    let signet = Signet::start(&one_route_config(
        &up.url(),
        "s3",
        "us-east-1",
        "strip_headers = [\"x-client-secret\", \"x-amz-meta-*\", \"authorization\", \"host\"]",
    ));
    let req = Request::put(format!("{}/bucket/key", signet.url()))
        .header("x-client-secret", "hunter2")
        .header("x-amz-meta-owner", "someone")
        .header("x-amz-acl", "private")
        .header("authorization", "Bearer client-token")
        .body(full("data"))
        .unwrap();
    let (status, _, _) = send(req).await;
    assert_eq!(status, StatusCode::OK);
    let seen = up.seen().pop().unwrap();
    assert!(seen.headers.get("x-client-secret").is_none());
    assert!(seen.headers.get("x-amz-meta-owner").is_none());
    // Headers the list does not name still go, signed; Host and the
    // signature are signet's own.
    assert_eq!(seen.headers.get("x-amz-acl").unwrap(), "private");
    let auth = seen.headers.get("authorization").unwrap().to_str().unwrap();
    assert!(auth.starts_with("AWS4-HMAC-SHA256 "), "{auth}");
    assert!(auth.contains("x-amz-acl"), "{auth}");
    let upstream_host = up.url().trim_start_matches("http://").to_string();
    assert_eq!(seen.headers.get("host").unwrap(), upstream_host.as_str());
    assert_no_rejections(&up);
}

#[tokio::test]
async fn refuses_unknown_hosts_and_unrouted_paths() {
    let up = Upstream::start().await;
    let cfg = format!(
        "[defaults]\naws_host_routing = true\n\n[[routes]]\nname = \"only\"\npath_prefix = \"/only\"\nupstream = \"{}\"\nservice = \"sqs\"\nregion = \"us-east-1\"\n",
        up.url()
    );
    let signet = Signet::start(&cfg);
    let req = Request::get(format!("{}/elsewhere", signet.url()))
        .header("host", "evil.example.com")
        .body(full(Bytes::new()))
        .unwrap();
    let (status, headers, body) = send(req).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(headers.get("x-signet-error").unwrap(), "unknown_host");
    assert!(String::from_utf8_lossy(&body).contains("evil.example.com"));
    assert!(up.seen().is_empty());

    // Without host routing, a path no route matches gets 404 and a reason.
    let cfg = format!(
        "[defaults]\naws_host_routing = false\n\n[[routes]]\nname = \"only\"\npath_prefix = \"/only\"\nupstream = \"{}\"\nservice = \"sqs\"\nregion = \"us-east-1\"\n",
        up.url()
    );
    let signet = Signet::start(&cfg);
    let req = Request::get(format!("{}/elsewhere", signet.url()))
        .body(full(Bytes::new()))
        .unwrap();
    let (status, headers, body) = send(req).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(headers.get("x-signet-error").unwrap(), "no_route");
    assert!(
        String::from_utf8_lossy(&body).contains("/elsewhere"),
        "{body:?}"
    );
    assert!(up.seen().is_empty());
    // The route itself still forwards, signed.
    let req = Request::get(format!("{}/only/q", signet.url()))
        .body(full(Bytes::new()))
        .unwrap();
    assert_eq!(send(req).await.0, StatusCode::OK);
    assert_eq!(up.seen().len(), 1);
    assert_no_rejections(&up);
}

#[tokio::test]
async fn answers_502_when_the_upstream_is_down() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cfg = one_route_config(
        &format!("http://127.0.0.1:{port}"),
        "sqs",
        "us-east-1",
        "[routes.retry]\nmax_attempts = 1",
    );
    let signet = Signet::start(&cfg);
    let started = Instant::now();
    let (status, headers, body) = get(&format!("{}/q", signet.url())).await;
    assert_eq!(
        status,
        StatusCode::BAD_GATEWAY,
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(
        headers.get("x-signet-error").unwrap(),
        "upstream_unreachable"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn quick_flags_run_a_single_upstream() {
    let up = Upstream::start().await;
    let url = up.url();
    let signet = Signet::start_args(
        &[
            "--upstream",
            &url,
            "--service",
            "es",
            "--region",
            "us-west-2",
        ],
        &[
            ("AWS_ACCESS_KEY_ID", AKID),
            ("AWS_SECRET_ACCESS_KEY", SECRET),
            ("AWS_SESSION_TOKEN", TOKEN),
        ],
    );
    let (status, _, _) = get(&format!("{}/_cluster/health", signet.url())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(up.seen()[0].service, "es");
    assert_no_rejections(&up);
}

/// Sends `head` and `partial` body bytes on a raw connection, then sends
/// nothing more; returns what signet answered (or an empty string if it
/// closed without answering) and how long that took.
async fn stall_after(signet: &Signet, head: &str, partial: &[u8]) -> (String, Duration) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(signet.addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(partial).await.unwrap();
    let start = Instant::now();
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk))
            .await
            .expect("signet keeps waiting for a stalled body");
        match read {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
        }
        let text = String::from_utf8_lossy(&answer);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().to_string())
                })
                .and_then(|v| v.parse::<usize>().ok());
            if length.is_some_and(|n| body.len() >= n) {
                break;
            }
        }
    }
    (
        String::from_utf8_lossy(&answer).into_owned(),
        start.elapsed(),
    )
}

/// signet answered 400 naming the 300 ms gap, about that long after the stall.
fn assert_gave_up_after_the_gap(answer: &str, took: Duration) {
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(
        answer.contains("no body data for 300ms (timeouts.idle)"),
        "{answer}"
    );
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(5),
        "{took:?}"
    );
}

#[tokio::test]
async fn a_client_that_stops_sending_its_body_gets_400_and_nothing_is_forwarded() {
    let up = Upstream::start().await;
    let idle = "[defaults.timeouts]\nidle = \"300ms\"\n";
    let signet = Signet::start(&format!(
        "{idle}{}",
        one_route_config(&up.url(), "sqs", "us-east-1", "")
    ));
    // Signed payload: signet buffers the body to hash it.
    let head = format!(
        "POST /queue HTTP/1.1\r\nhost: {}\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: 100\r\n\r\n",
        signet.addr
    );
    let (answer, took) = stall_after(&signet, &head, b"Action=Send").await;
    assert_gave_up_after_the_gap(&answer, took);
    assert!(answer.contains("x-signet-error: client_body"), "{answer}");
    assert!(up.seen().is_empty(), "nothing was forwarded");

    // Streamed (S3, unknown length): the upload to the upstream is abandoned.
    let s3 = Upstream::start().await;
    let signet = Signet::start(&format!("{idle}{}", s3_config(&s3, "")));
    let head = format!(
        "PUT /bucket/key HTTP/1.1\r\nhost: {}\r\ntransfer-encoding: chunked\r\n\r\n",
        signet.addr
    );
    let (answer, took) = stall_after(&signet, &head, b"5\r\nhello\r\n").await;
    assert_gave_up_after_the_gap(&answer, took);
    assert!(
        s3.seen().is_empty(),
        "no complete request reached the upstream"
    );
}

/// `frames` frames of `size` bytes, one every `every`: a client uploading slowly.
fn paced(frames: usize, size: usize, every: Duration) -> UpBody {
    let stream = futures_util::stream::unfold(0, move |i| async move {
        if i == frames {
            return None;
        }
        tokio::time::sleep(every).await;
        let frame = http_body::Frame::data(Bytes::from(vec![(i % 251) as u8; size]));
        Some((Ok::<_, std::convert::Infallible>(frame), i + 1))
    });
    http_body_util::StreamBody::new(stream).boxed()
}

#[tokio::test]
async fn a_streamed_upload_may_take_longer_than_the_total_deadline_while_it_moves() {
    let up = Upstream::start().await;
    let timeouts = "[defaults.timeouts]\ntotal = \"1s\"\nidle = \"2s\"\n";
    let signet = Signet::start(&format!("{timeouts}{}", s3_config(&up, "")));
    let started = Instant::now();
    let req = Request::put(format!("{}/bucket/slow.bin", signet.url()))
        .body(paced(12, 64 * 1024, Duration::from_millis(200)))
        .unwrap();
    let (status, headers, body) = send(req).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{headers:?} {}",
        String::from_utf8_lossy(&body)
    );
    assert!(started.elapsed() > Duration::from_millis(2000));
    let seen = up.seen().pop().unwrap();
    assert_eq!(seen.body.len(), 12 * 64 * 1024, "the whole upload arrived");
    assert_eq!(
        seen.headers.get("x-amz-content-sha256").unwrap(),
        "UNSIGNED-PAYLOAD"
    );
    assert_no_rejections(&up);
}

/// An upstream that reads one request head, checks its signature, and then
/// never reads again, holding the connection open. Sends whether the head
/// verified.
async fn upstream_that_stops_reading(
) -> (String, tokio::sync::oneshot::Receiver<Result<(), String>>) {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if stream.read(&mut byte).await.unwrap_or(0) == 0 {
                return;
            }
            head.push(byte[0]);
        }
        let text = String::from_utf8_lossy(&head).into_owned();
        let mut lines = text.split("\r\n").filter(|l| !l.is_empty());
        let mut request_line = lines.next().unwrap().split(' ');
        let mut builder = Request::builder()
            .method(request_line.next().unwrap())
            .uri(request_line.next().unwrap());
        for line in lines {
            let (name, value) = line.split_once(':').unwrap();
            builder = builder.header(name.trim(), value.trim());
        }
        let (parts, ()) = builder.body(()).unwrap().into_parts();
        let _ = tx.send(common::verify_unsigned_payload_head(
            &parts,
            &common::Keyring::with_test_key(),
        ));
        // Keep the connection, never read from it again.
        tokio::time::sleep(Duration::from_secs(60)).await;
        drop(stream);
    });
    (url, rx)
}

#[tokio::test]
async fn an_upstream_that_stops_taking_an_upload_gets_504_naming_the_idle_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (url, verified) = upstream_that_stops_reading().await;
    let timeouts = "[defaults.timeouts]\ntotal = \"60s\"\nidle = \"500ms\"\nfirst_byte = \"60s\"\n";
    let signet = Signet::start(&format!(
        "{timeouts}{}",
        one_route_config(&url, "s3", "us-east-1", "[routes.retry]\nmax_attempts = 1")
    ));
    let stream = tokio::net::TcpStream::connect(signet.addr).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let head = format!(
        "PUT /bucket/key HTTP/1.1\r\nhost: {}\r\ntransfer-encoding: chunked\r\n\r\n",
        signet.addr
    );
    write.write_all(head.as_bytes()).await.unwrap();
    // The client keeps sending as fast as it can, until everything between it
    // and the upstream is full.
    let writer = tokio::spawn(async move {
        let chunk = format!("{:x}\r\n{}\r\n", 65536, "u".repeat(65536));
        for _ in 0..2048 {
            if write.write_all(chunk.as_bytes()).await.is_err() {
                break;
            }
        }
    });
    let started = Instant::now();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&answer).contains("\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(30), read.read(&mut buf))
            .await
            .expect("signet keeps waiting for an upstream that stopped reading")
            .unwrap();
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    writer.abort();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert!(answer.starts_with("HTTP/1.1 504"), "{answer}");
    assert!(answer.contains("x-signet-error: idle_timeout"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(verified.await.unwrap(), Ok(()), "the head was signed");
    let (_, _, metrics) = get(&format!("{}/metrics", signet.admin_url())).await;
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains("signet_timeouts_total{route=\"test\",kind=\"idle_timeout\"} 1"),
        "{metrics}"
    );
}
