//! Every credential source through a real proxied request: the `signet`
//! binary resolves credentials from a local stand-in (IMDSv2, container
//! endpoint, STS, profile files, a credential_process script, the
//! environment or the config file) and a verifying upstream recomputes each
//! request's signature with the aws-sigv4 crate.

mod common;
mod standins;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use common::{Keyring, Signet, Upstream};
use http::StatusCode;

/// Fast refresh tuning for short-lived test credentials.
const QUICK_REFRESH: &str = "min_remaining_secs = 1\nlifetime_fraction = 0.2\n\
jitter_fraction = 0.1\nbackoff_base_secs = 0.2\nbackoff_cap_secs = 0.5\nfile_poll_secs = 0.1\n";

/// A config with one source (its TOML body given) and one route using it. The
/// source is named `default` so it replaces the SDK chain signet adds otherwise.
fn config(upstream: &Upstream, source_body: &str, route_extra: &str) -> String {
    config_with_refresh(upstream, source_body, route_extra, QUICK_REFRESH)
}

fn config_with_refresh(
    upstream: &Upstream,
    source_body: &str,
    route_extra: &str,
    refresh: &str,
) -> String {
    format!(
        "[credentials.default]\n{source_body}\n[credentials.default.refresh]\n{refresh}\n{}",
        common::one_route_config(
            &upstream.url(),
            "execute-api",
            "us-east-1",
            &format!("credentials = \"default\"\n{route_extra}"),
        )
    )
}

/// Teaches the upstream every key the stand-in issues.
fn trust_issued(control: &standins::Control, keys: &Keyring) {
    let keys = keys.clone();
    control.on_issue(move |i| {
        keys.add(
            &i.access_key_id,
            &i.secret_access_key,
            Some(&i.session_token),
        )
    });
}

async fn upstream_with(keys: Keyring) -> Upstream {
    Upstream::start_with(keys, Arc::new(common::echo)).await
}

/// GETs through signet until it answers 200 (credentials resolved) or 15 s pass.
async fn get_ok(signet: &Signet, path: &str) -> (StatusCode, bytes::Bytes) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, _, body) = common::get(&format!("{}{path}", signet.url())).await;
        if status == StatusCode::OK || Instant::now() > deadline {
            return (status, body);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Asserts the request reached the upstream signed by `key` and nothing was rejected.
fn assert_signed_by(upstream: &Upstream, signet: &Signet, key: &str) {
    assert!(
        upstream.rejected().is_empty(),
        "rejected: {:?}\nlogs: {:#?}",
        upstream.rejected(),
        signet.logs()
    );
    let seen = upstream.seen();
    assert!(!seen.is_empty(), "logs: {:#?}", signet.logs());
    assert!(
        seen.iter().all(|s| s.access_key_id == key),
        "{:?}",
        seen.iter().map(|s| &s.access_key_id).collect::<Vec<_>>()
    );
}

fn assert_no_secret_in_logs(signet: &Signet, secrets: &[&str]) {
    let logs = signet.logs().join("\n");
    for secret in secrets {
        assert!(!logs.contains(secret), "secret leaked into logs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imds_source_signs_proxied_requests() {
    let keys = Keyring::default();
    let imds = standins::imds(Duration::from_secs(3600));
    trust_issued(&imds.control, &keys);
    let upstream = upstream_with(keys).await;
    let cfg = config(
        &upstream,
        &format!("kind = \"imds\"\nendpoint = \"{}\"", imds.url()),
        "",
    );
    let signet = Signet::start_with_env(&cfg, &[("AWS_EC2_METADATA_DISABLED", "false")], &[]);
    let (status, _) = get_ok(&signet, "/ec2").await;
    assert_eq!(status, StatusCode::OK, "{:#?}", signet.logs());
    let issued = imds.control.issued();
    assert_eq!(issued.len(), 1);
    assert_signed_by(&upstream, &signet, &issued[0].access_key_id);
    let seen = &upstream.seen()[0];
    assert_eq!(
        seen.headers["x-amz-security-token"].to_str().unwrap(),
        issued[0].session_token
    );
    assert_no_secret_in_logs(
        &signet,
        &[&issued[0].secret_access_key, &issued[0].session_token],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_source_with_pod_identity_token_signs_proxied_requests() {
    let keys = Keyring::default();
    let token = Arc::new(Mutex::new("pod-identity-token-e2e".to_owned()));
    let endpoint = standins::container(Duration::from_secs(3600), token);
    trust_issued(&endpoint.control, &keys);
    let upstream = upstream_with(keys).await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "pod-identity-token-e2e").unwrap();
    let full_uri = format!("{}/v1/credentials", endpoint.url());
    let token_path = token_file.display().to_string();
    let signet = Signet::start_with_env(
        &config(&upstream, "kind = \"container\"", ""),
        &[
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", &full_uri),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", &token_path),
        ],
        &[],
    );
    let (status, _) = get_ok(&signet, "/pod").await;
    assert_eq!(status, StatusCode::OK, "{:#?}", signet.logs());
    assert_signed_by(
        &upstream,
        &signet,
        &endpoint.control.issued()[0].access_key_id,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_identity_source_signs_proxied_requests() {
    let keys = Keyring::default();
    let (sts, calls) = standins::sts(Duration::from_secs(3600));
    trust_issued(&sts.control, &keys);
    let upstream = upstream_with(keys).await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "eyJ.irsa.e2e").unwrap();
    let token_path = token_file.display().to_string();
    let sts_url = sts.url();
    let signet = Signet::start_with_env(
        &config(&upstream, "kind = \"web_identity\"", ""),
        &[
            ("AWS_WEB_IDENTITY_TOKEN_FILE", &token_path),
            ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/irsa"),
            ("AWS_ENDPOINT_URL_STS", &sts_url),
        ],
        &[],
    );
    let (status, _) = get_ok(&signet, "/irsa").await;
    assert_eq!(status, StatusCode::OK, "{:#?}", signet.logs());
    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls[0].action, "AssumeRoleWithWebIdentity");
    assert_eq!(calls[0].params["WebIdentityToken"], "eyJ.irsa.e2e");
    assert_signed_by(&upstream, &signet, calls[0].issued.as_deref().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profile_with_credential_process_signs_proxied_requests() {
    let keys = Keyring::default();
    keys.add(
        "ASIAPROCESSE2E00001",
        "process-secret-e2e",
        Some("process-token-e2e"),
    );
    let upstream = upstream_with(keys).await;
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("issue.sh");
    let expiry = standins::rfc3339(SystemTime::now() + Duration::from_secs(3600));
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho '{{\"Version\": 1, \"AccessKeyId\": \"ASIAPROCESSE2E00001\", \
\"SecretAccessKey\": \"process-secret-e2e\", \"SessionToken\": \"process-token-e2e\", \
\"Expiration\": \"{expiry}\"}}'\n"
        ),
    )
    .unwrap();
    assert!(std::process::Command::new("chmod")
        .arg("+x")
        .arg(&script)
        .status()
        .unwrap()
        .success());
    let cfg_file = dir.path().join("config");
    std::fs::write(
        &cfg_file,
        format!(
            "[profile tool]\ncredential_process = {}\n",
            script.display()
        ),
    )
    .unwrap();
    let creds_file = dir.path().join("credentials");
    std::fs::write(&creds_file, "").unwrap();
    let body = format!(
        "kind = \"profile\"\nname = \"tool\"\ncredentials_file = \"{}\"\nconfig_file = \"{}\"",
        creds_file.display(),
        cfg_file.display()
    );
    let signet = Signet::start_with_env(&config(&upstream, &body, ""), &[], &[]);
    let (status, _) = get_ok(&signet, "/tool").await;
    assert_eq!(status, StatusCode::OK, "{:#?}", signet.logs());
    assert_signed_by(&upstream, &signet, "ASIAPROCESSE2E00001");
    assert_no_secret_in_logs(&signet, &["process-secret-e2e", "process-token-e2e"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profile_file_rotated_in_place_is_used_without_restart() {
    let keys = Keyring::default();
    keys.add("AKIAPROFILEE2E00001", "profile-secret-1", None);
    keys.add("AKIAPROFILEE2E00002", "profile-secret-2", None);
    let upstream = upstream_with(keys).await;
    let dir = tempfile::tempdir().unwrap();
    let creds_file = dir.path().join("credentials");
    let write = |n: u32| {
        std::fs::write(
            &creds_file,
            format!(
                "[dev]\naws_access_key_id = AKIAPROFILEE2E0000{n}\n\
aws_secret_access_key = profile-secret-{n}\n"
            ),
        )
        .unwrap()
    };
    write(1);
    let body = format!(
        "kind = \"profile\"\nname = \"dev\"\ncredentials_file = \"{}\"",
        creds_file.display()
    );
    let signet = Signet::start_with_env(&config(&upstream, &body, ""), &[], &[]);
    let (status, _) = get_ok(&signet, "/dev").await;
    assert_eq!(status, StatusCode::OK, "{:#?}", signet.logs());
    assert_signed_by(&upstream, &signet, "AKIAPROFILEE2E00001");

    tokio::time::sleep(Duration::from_millis(20)).await;
    write(2);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _) = get_ok(&signet, "/dev").await;
        assert_eq!(status, StatusCode::OK);
        if upstream.seen().last().unwrap().access_key_id == "AKIAPROFILEE2E00002" {
            break;
        }
        assert!(Instant::now() < deadline, "rotated key never used");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(upstream.rejected().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_and_static_sources_sign_proxied_requests() {
    let upstream = Upstream::start().await;
    // environment: the harness puts common::AKID in signet's environment.
    let signet = Signet::start(&config(&upstream, "kind = \"environment\"", ""));
    let (status, _) = get_ok(&signet, "/env").await;
    assert_eq!(status, StatusCode::OK, "{:#?}", signet.logs());
    assert_signed_by(&upstream, &signet, common::AKID);
    drop(signet);

    let keys = Keyring::default();
    keys.add("AKIASTATICE2E000001", "static-secret-e2e", None);
    let upstream = upstream_with(keys).await;
    let body = "kind = \"static\"\naccess_key_id = \"AKIASTATICE2E000001\"\n\
secret_access_key = \"static-secret-e2e\"";
    let signet = Signet::start_with_env(&config(&upstream, body, ""), &[], &[]);
    let (status, _) = get_ok(&signet, "/static").await;
    assert_eq!(status, StatusCode::OK, "{:#?}", signet.logs());
    assert_signed_by(&upstream, &signet, "AKIASTATICE2E000001");
    let logs = signet.logs().join("\n");
    assert!(
        logs.contains("local development only"),
        "static keys must warn"
    );
    assert_no_secret_in_logs(&signet, &["static-secret-e2e"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assume_role_source_and_per_route_role_sign_proxied_requests() {
    let keys = Keyring::with_test_key();
    let (sts, calls) = standins::sts(Duration::from_secs(3600));
    trust_issued(&sts.control, &keys);
    // STS verifies the source's signature with the environment's key pair.
    sts.control
        .trust_key(common::AKID, common::SECRET, Some(common::TOKEN));
    let upstream = upstream_with(keys).await;
    let sts_url = sts.url();
    // The source assumes one role; the route assumes another with its keys.
    let body = "kind = \"environment\"\n\
assume_role = { role_arn = \"arn:aws:iam::123456789012:role/base\", session_name = \"signet-e2e\" }";
    let cfg = config(
        &upstream,
        body,
        "role_arn = \"arn:aws:iam::210987654321:role/routed\"",
    );
    let signet = Signet::start_with_env(
        &cfg,
        &[
            ("AWS_ACCESS_KEY_ID", common::AKID),
            ("AWS_SECRET_ACCESS_KEY", common::SECRET),
            ("AWS_SESSION_TOKEN", common::TOKEN),
            ("AWS_ENDPOINT_URL_STS", &sts_url),
        ],
        &[],
    );
    let (status, _) = get_ok(&signet, "/routed").await;
    assert_eq!(status, StatusCode::OK, "{:#?}", signet.logs());
    let calls = calls.lock().unwrap().clone();
    let base = calls
        .iter()
        .find(|c| c.params["RoleArn"].ends_with("role/base"))
        .expect("source role assumed");
    assert_eq!(base.signed_by.as_deref(), Some(common::AKID));
    let routed = calls
        .iter()
        .find(|c| c.params["RoleArn"].ends_with("role/routed"))
        .expect("route role assumed");
    // The route's role is assumed with the source's (already assumed) keys.
    assert_eq!(routed.signed_by, base.issued);
    assert_signed_by(&upstream, &signet, routed.issued.as_deref().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_imds_keys_sign_a_steady_request_loop_without_waiting() {
    let keys = Keyring::default();
    let imds = standins::imds(Duration::from_secs(6));
    trust_issued(&imds.control, &keys);
    let upstream = upstream_with(keys).await;
    // The margin before expiry must cover a slow fetch (3 answers × 400 ms).
    let cfg = config_with_refresh(
        &upstream,
        &format!("kind = \"imds\"\nendpoint = \"{}\"", imds.url()),
        "",
        "min_remaining_secs = 3\nbackoff_base_secs = 0.2\nbackoff_cap_secs = 0.5\n",
    );
    let signet = Signet::start_with_env(&cfg, &[("AWS_EC2_METADATA_DISABLED", "false")], &[]);
    let (status, _) = get_ok(&signet, "/warmup").await;
    assert_eq!(status, StatusCode::OK, "{:#?}", signet.logs());
    // From now on every metadata answer takes 400 ms: a request that waited
    // on the metadata server would take at least that long.
    let slow = Duration::from_millis(400);
    imds.control.set_delay(slow);

    let start = Instant::now();
    let mut latencies = Vec::new();
    let mut n = 0;
    while start.elapsed() < Duration::from_secs(10) {
        n += 1;
        let t0 = Instant::now();
        let (status, _, _) = common::get(&format!("{}/loop/{n}", signet.url())).await;
        latencies.push(t0.elapsed());
        assert_eq!(status, StatusCode::OK, "request {n}: {:#?}", signet.logs());
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    // A request that waited for a refresh takes at least `slow`, and so would
    // every request sent during each ~1.2 s fetch (dozens); one stalled by the
    // machine's scheduler is tolerated.
    let waited: Vec<_> = latencies.iter().filter(|l| **l >= slow).collect();
    assert!(
        waited.len() <= 1,
        "{} of {n} requests took {slow:?} or more: {waited:?}",
        waited.len()
    );

    assert!(upstream.rejected().is_empty(), "{:?}", upstream.rejected());
    let issued = imds.control.issued();
    // The first key plus at least two rotations during the loop.
    assert!(
        issued.len() >= 3,
        "expected rotations, got {}",
        issued.len()
    );
    let seen = upstream.seen();
    assert!(seen.len() >= n);
    let mut keys_used = std::collections::BTreeSet::new();
    for s in &seen {
        let issue = imds
            .control
            .find(&s.access_key_id)
            .expect("signed with an IMDS key");
        assert!(
            issue.issued_at <= s.received_at && s.received_at < issue.expires_at,
            "{} used outside its validity",
            s.access_key_id
        );
        keys_used.insert(s.access_key_id.clone());
    }
    assert!(keys_used.len() >= 3, "keys used: {keys_used:?}");
    for pair in issued.windows(2) {
        assert!(
            pair[1].issued_at < pair[0].expires_at,
            "a refresh came after expiry"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_serves_cached_keys_then_503_then_recovers() {
    let keys = Keyring::default();
    let imds = standins::imds(Duration::from_secs(6));
    trust_issued(&imds.control, &keys);
    let upstream = upstream_with(keys).await;
    let cfg = config(
        &upstream,
        &format!("kind = \"imds\"\nendpoint = \"{}\"", imds.url()),
        "",
    );
    let signet = Signet::start_with_env(&cfg, &[("AWS_EC2_METADATA_DISABLED", "false")], &[]);
    let (status, _) = get_ok(&signet, "/warmup").await;
    assert_eq!(status, StatusCode::OK, "{:#?}", signet.logs());
    imds.control.set_available(false);
    let first = imds.control.issued().last().unwrap().clone();

    // Before expiry: still signed with the cached key.
    let mut before = 0;
    while SystemTime::now() + Duration::from_millis(300) < first.expires_at {
        let (status, _, _) = common::get(&format!("{}/cached", signet.url())).await;
        assert_eq!(status, StatusCode::OK);
        before += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(before > 0);
    assert!(upstream
        .seen()
        .iter()
        .all(|s| s.access_key_id == first.access_key_id));

    // After expiry: 503 with the reason, and nothing reaches the upstream.
    let wait = first
        .expires_at
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    tokio::time::sleep(wait + Duration::from_millis(200)).await;
    let forwarded = upstream.seen().len();
    let (status, _, body) = common::get(&format!("{}/expired", signet.url())).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains("credentials unavailable"), "{body}");
    assert!(body.contains("expired"), "{body}");
    assert_eq!(
        upstream.seen().len(),
        forwarded,
        "nothing may go out unsigned"
    );

    // The source returns: signet recovers by itself.
    imds.control.set_available(true);
    let (status, _) = get_ok(&signet, "/recovered").await;
    assert_eq!(status, StatusCode::OK, "{:#?}", signet.logs());
    let last = upstream.seen().last().unwrap().access_key_id.clone();
    assert_ne!(last, first.access_key_id);
    assert!(imds.control.find(&last).is_some());
    assert!(upstream.rejected().is_empty(), "{:?}", upstream.rejected());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_chain_finds_ecs_credentials_and_signs_proxied_requests() {
    let keys = Keyring::default();
    let token = Arc::new(Mutex::new("ecs-task-token".to_owned()));
    let endpoint = standins::container(Duration::from_secs(3600), token);
    trust_issued(&endpoint.control, &keys);
    let upstream = upstream_with(keys).await;
    // No [credentials] section: signet uses the SDK chain, which finds the
    // container endpoint after the empty environment and profile files.
    let cfg = common::one_route_config(&upstream.url(), "execute-api", "us-east-1", "");
    let full_uri = format!("{}/v2/credentials/task", endpoint.url());
    let signet = Signet::start_with_env(
        &cfg,
        &[
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", &full_uri),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "ecs-task-token"),
        ],
        &[],
    );
    let (status, _) = get_ok(&signet, "/chain").await;
    assert_eq!(status, StatusCode::OK, "{:#?}", signet.logs());
    assert_signed_by(
        &upstream,
        &signet,
        &endpoint.control.issued()[0].access_key_id,
    );
}
