//! Operating signet through the real binary: secrets never reach logs or
//! metrics (full scenario at trace level), metrics move as traffic flows,
//! the admin endpoints answer, `signet health` probes them, and a bad
//! configuration refuses to start with the key and the reason.

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::{Request, Response, StatusCode};

/// Secrets the client sends that signet must drop or redact.
const CLIENT_TOKEN: &str = "client-session-token-MUSTNOTLEAK-7f3a";
const CLIENT_SIGNATURE: &str = "deadbeefcafebabe0123456789abcdef0123456789abcdef0123456789abcdef";
const CLIENT_CREDENTIAL: &str = "AKIACLIENTLEAK000001%2F20250101%2Fus-east-1%2Fs3%2Faws4_request";

/// One series' value in a scrape, 0 when the series does not exist yet.
fn sample(metrics: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    signet::telemetry::metrics::sample(metrics, name, labels).unwrap_or(0.0)
}

/// Polls the scrape until `name{labels}` reads `want`, failing after [`PATIENCE`].
async fn metric_reaches(signet: &Signet, name: &str, labels: &[(&str, &str)], want: f64) -> String {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let text = metrics_text(signet).await;
        if sample(&text, name, labels) == want {
            return text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{name}{labels:?} never reached {want}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn metrics_text(signet: &Signet) -> String {
    let (status, _, body) = get(&format!("{}/metrics", signet.admin_url())).await;
    assert_eq!(status, StatusCode::OK);
    String::from_utf8(body.to_vec()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_appear_in_logs_or_metrics_at_trace_level() {
    // The upstream fails the first attempt of each request, so retries are logged too.
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let handler: Handler = Arc::new(move |seen: &Seen| {
        if c.fetch_add(1, Ordering::SeqCst) % 2 == 0 {
            return Response::builder()
                .status(503)
                .body(full("<Error><Code>SlowDown</Code></Error>"))
                .unwrap();
        }
        echo(seen)
    });
    let up = Upstream::start_with(Keyring::with_test_key(), handler).await;
    let static_secret = "StaticSecretInConfig/MUSTNOTLEAK/0000000000";
    up.keys.add("AKIASTATICCONFIG0001", static_secret, None);
    let cfg = format!(
        r#"
[credentials.static]
kind = "static"
access_key_id = "AKIASTATICCONFIG0001"
secret_access_key = "{static_secret}"

[[routes]]
name = "env"
path_prefix = "/env"
upstream = "{u}"
service = "s3"
region = "us-east-1"
[routes.retry]
base_backoff = "1ms"

[[routes]]
name = "static"
path_prefix = "/static"
upstream = "{u}"
service = "dynamodb"
region = "us-east-1"
credentials = "static"
[routes.retry]
base_backoff = "1ms"
"#,
        u = up.url()
    );
    let signet = Signet::start_with_env(
        &cfg,
        &[
            ("AWS_ACCESS_KEY_ID", AKID),
            ("AWS_SECRET_ACCESS_KEY", SECRET),
            ("AWS_SESSION_TOKEN", TOKEN),
            ("RUST_LOG", "trace"),
        ],
        &["--log-level", "trace"],
    );
    let presigned = format!(
        "/env/bucket/key?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={CLIENT_CREDENTIAL}&X-Amz-Signature={CLIENT_SIGNATURE}&X-Amz-Security-Token={CLIENT_TOKEN}"
    );
    let requests = vec![
        Request::get(format!("{}{presigned}", signet.url()))
            .header(
                "authorization",
                format!("AWS4-HMAC-SHA256 Credential=x, Signature={CLIENT_SIGNATURE}"),
            )
            .header("x-amz-security-token", CLIENT_TOKEN)
            .body(full(Bytes::new()))
            .unwrap(),
        Request::put(format!("{}/env/bucket/upload", signet.url()))
            .body(full(vec![1u8; 4096]))
            .unwrap(),
        Request::post(format!("{}/static/", signet.url()))
            .header("x-amz-target", "DynamoDB_20120810.ListTables")
            .body(full("{}"))
            .unwrap(),
        Request::get(format!("{}/nowhere", signet.url()))
            .header("host", "unknown.example.com")
            .header("cookie", format!("session={CLIENT_TOKEN}"))
            .body(full(Bytes::new()))
            .unwrap(),
    ];
    let mut statuses = Vec::new();
    for req in requests {
        statuses.push(send(req).await.0);
    }
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::FORBIDDEN
        ]
    );
    assert_eq!(
        get(&format!("{}/readyz", signet.admin_url())).await.0,
        StatusCode::OK
    );
    // Each request's access line is written when its response ends.
    signet.wait_for_access_lines(4).await;
    let metrics = metrics_text(&signet).await;

    // Three requests reached the upstream, each failed once and was retried.
    let seen = up.seen();
    assert_eq!(seen.len(), 6, "attempts that reached the upstream");
    assert_no_rejections(&up);
    let mut secrets: Vec<String> = vec![
        SECRET.into(),
        TOKEN.into(),
        static_secret.into(),
        CLIENT_TOKEN.into(),
        CLIENT_SIGNATURE.into(),
        "AKIACLIENTLEAK000001".into(),
    ];
    // Every Authorization value and signature signet produced.
    for s in &seen {
        let auth = s
            .headers
            .get("authorization")
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        secrets.push(auth.rsplit("Signature=").next().unwrap().to_string());
        secrets.push(auth);
    }
    let logs = signet.logs();
    assert!(
        logs.iter().any(|l| l.contains("\"level\":\"TRACE\"")),
        "trace logging is on: {} lines, none at TRACE",
        logs.len()
    );
    assert!(
        logs.iter().any(|l| l.contains("\"attempts\":2")),
        "retries happened and were logged"
    );
    for secret in &secrets {
        for line in &logs {
            assert!(
                !line.contains(secret.as_str()),
                "secret {secret:.12}… leaked in log line: {line}"
            );
        }
        assert!(
            !metrics.contains(secret.as_str()),
            "secret leaked into /metrics"
        );
    }
    assert!(
        logs.iter().any(|l| l.contains("X-Amz-Signature=REDACTED")),
        "the presigned query is logged redacted"
    );

    // `signet check` prints the effective configuration without secrets.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, &cfg).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_signet"))
        .args(["check", "--config-only", "--config"])
        .arg(&path)
        .env_clear()
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(printed.contains("AKIASTATICCONFIG0001"), "{printed}");
    assert!(printed.contains("<redacted>"), "{printed}");
    assert!(!printed.contains(static_secret), "check printed the secret");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_as_traffic_flows() {
    let up = Upstream::start().await;
    let signet = Signet::start(&one_route_config(
        &up.url(),
        "sqs",
        "us-east-1",
        "body_cap = \"16KiB\"\n[routes.retry]\nmax_attempts = 1",
    ));
    let before = metrics_text(&signet).await;
    let labels = [("route", "test"), ("method", "POST"), ("status", "200")];
    let base = sample(&before, "signet_requests_total", &labels);
    for _ in 0..3 {
        let req = Request::post(format!("{}/q", signet.url()))
            .body(full(vec![0u8; 100]))
            .unwrap();
        assert_eq!(send(req).await.0, StatusCode::OK);
    }
    // The access log and metrics are recorded when the response body ends.
    let after = metric_reaches(&signet, "signet_requests_total", &labels, base + 3.0).await;
    assert!(
        sample(
            &after,
            "signet_upstream_attempts_total",
            &[("route", "test")]
        ) >= 3.0
    );
    assert!(sample(&after, "signet_body_bytes_in_total", &[("route", "test")]) >= 300.0);
    assert!(sample(&after, "signet_body_bytes_out_total", &[("route", "test")]) > 0.0);
    assert!(
        sample(
            &after,
            "signet_request_duration_seconds_count",
            &[("route", "test")]
        ) >= 3.0
    );
    assert_eq!(
        sample(&after, "signet_requests_in_flight", &[("route", "test")]),
        0.0
    );
    // The environment's keys do not expire: the source is reported with no
    // refresh failures and no expiry.
    assert_eq!(
        signet::telemetry::metrics::sample(
            &after,
            "signet_credentials_refresh_failures_total",
            &[("source", "default")]
        ),
        Some(0.0),
        "{after}"
    );
    assert!(
        !after.contains("signet_credentials_expiry_seconds{"),
        "{after}"
    );

    // An error answer counts too, its JSON body among the bytes written.
    let out_before = sample(&after, "signet_body_bytes_out_total", &[("route", "test")]);
    let req = Request::post(format!("{}/q", signet.url()))
        .body(full(vec![0u8; 20_000]))
        .unwrap();
    let (status, _, body) = send(req).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(!body.is_empty());
    let last = metric_reaches(
        &signet,
        "signet_requests_total",
        &[("route", "test"), ("status", "413")],
        1.0,
    )
    .await;
    assert_eq!(
        sample(&last, "signet_body_bytes_out_total", &[("route", "test")]) - out_before,
        body.len() as f64
    );

    // /healthz and /readyz, and `signet health` against them.
    assert_eq!(
        get(&format!("{}/healthz", signet.admin_url())).await.0,
        StatusCode::OK
    );
    assert_eq!(
        get(&format!("{}/readyz", signet.admin_url())).await.0,
        StatusCode::OK
    );
    let probe = Command::new(env!("CARGO_BIN_EXE_signet"))
        .args(["health", "--url", &format!("{}/readyz", signet.admin_url())])
        .output()
        .unwrap();
    assert!(
        probe.status.success(),
        "{}",
        String::from_utf8_lossy(&probe.stderr)
    );
    drop(signet);
    let down = Command::new(env!("CARGO_BIN_EXE_signet"))
        .args(["health", "--url", "http://127.0.0.1:1/healthz"])
        .output()
        .unwrap();
    assert_eq!(down.status.code(), Some(1));
}

#[test]
fn bad_configuration_refuses_to_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    let cases = [
        (
            "[[routes]]\nname = \"a\"\nupstream = \"http://127.0.0.1:9\"\nservice = \"sqs\"\nregion = \"us-est-1\"\n",
            "routes[0].region",
        ),
        ("listen = \"127.0.0.1:8080\"\nlisten_typo = 1\n", "listen_typo"),
        (
            "[[routes]]\nname = \"a\"\nupstream = \"ftp://x\"\nservice = \"sqs\"\nregion = \"us-east-1\"\n",
            "routes[0].upstream",
        ),
        (
            "[connections]\nidle_timeout = \"10ms\"\n",
            "connections.idle_timeout: must be between 100ms and 1h",
        ),
    ];
    for (config, key) in cases {
        std::fs::write(&path, config).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_signet"))
            .arg("--config")
            .arg(&path)
            .env_clear()
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{config}: {stderr}");
        assert!(stderr.contains(key), "error names {key}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    }
}
