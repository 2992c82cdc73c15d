//! Each credential source resolved by `CredentialsSet` and `check`, against
//! local stand-ins for IMDSv2, the container endpoint and STS.
//!
//! Sources configured explicitly (IMDS endpoint, profile files, static keys)
//! run in this process. Sources that only read the process environment
//! (web identity, container, environment, the SDK chain, assume-role through
//! `AWS_ENDPOINT_URL_STS`) run in a child copy of this test binary with the
//! environment set on the child, so no test mutates this process's env.

mod common;
mod standins;

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use signet::credentials::{
    check, AssumeRoleSettings, CredentialsSet, RefreshSettings, Secret, SourceSettings,
};

fn quick_refresh() -> RefreshSettings {
    RefreshSettings {
        min_remaining_secs: 1.0,
        lifetime_fraction: 0.2,
        jitter_fraction: 0.1,
        backoff_base_secs: 0.2,
        backoff_cap_secs: 0.5,
        file_poll_secs: 0.1,
        fetch_timeout_secs: 10.0,
    }
}

fn imds_source(url: &str) -> SourceSettings {
    SourceSettings::Imds {
        endpoint: Some(url.to_owned()),
        assume_role: None,
        refresh: quick_refresh(),
    }
}

fn one(name: &str, settings: SourceSettings) -> BTreeMap<String, SourceSettings> {
    BTreeMap::from([(name.to_owned(), settings)])
}

async fn wait_for_key(set: &CredentialsSet, name: &str, role: Option<&str>) -> String {
    assert!(
        set.wait_ready(Duration::from_secs(20)).await,
        "not ready: {:?}",
        set.status()
    );
    set.handle(name, role)
        .unwrap()
        .current()
        .unwrap()
        .access_key_id
        .clone()
}

#[tokio::test]
async fn imds_source_uses_token_role_listing_and_credentials_json() {
    let imds = standins::imds(Duration::from_secs(3600));
    let set = CredentialsSet::start(&one("ec2", imds_source(&imds.url())), &[]).unwrap();
    let key = wait_for_key(&set, "ec2", None).await;

    let issued = imds.control.issued();
    assert_eq!(issued.len(), 1);
    assert_eq!(key, issued[0].access_key_id);
    let creds = set.handle("ec2", None).unwrap().current().unwrap();
    assert_eq!(creds.secret_access_key, issued[0].secret_access_key);
    assert_eq!(
        creds.session_token.as_deref(),
        Some(issued[0].session_token.as_str())
    );
    let requests = imds.control.requests();
    assert_eq!(requests[0], ("PUT".into(), "/latest/api/token".into()));
    assert!(requests
        .iter()
        .any(|r| r.1 == "/latest/meta-data/iam/security-credentials/"));

    let status = &set.status()[0];
    assert_eq!(status.kind, "imds");
    assert!(status.valid);
    let expires = status.expires_at.unwrap();
    let diff = expires
        .duration_since(issued[0].expires_at)
        .unwrap_or_else(|e| e.duration());
    assert!(
        diff < Duration::from_secs(1),
        "expiry must be the issued one"
    );
    assert_eq!(
        status.access_key_hint.as_deref(),
        Some(format!("ASIA…{}", &key[key.len() - 4..]).as_str())
    );
    set.shutdown().await;
}

#[tokio::test]
async fn static_source_serves_configured_keys_without_expiry() {
    let settings = SourceSettings::Static {
        access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
        secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
        session_token: None,
        assume_role: None,
        refresh: quick_refresh(),
    };
    let set = CredentialsSet::start(&one("dev", settings), &[]).unwrap();
    assert_eq!(
        wait_for_key(&set, "dev", None).await,
        "AKIAIOSFODNN7EXAMPLE"
    );
    let status = &set.status()[0];
    assert_eq!(status.expires_at, None);
    assert_eq!(status.kind, "static");
}

#[tokio::test]
async fn profile_source_rereads_the_credentials_file_when_it_changes() {
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("credentials");
    let config = dir.path().join("config");
    std::fs::write(&config, "").unwrap();
    let write = |key: &str| {
        std::fs::write(
            &creds,
            format!("[dev]\naws_access_key_id = {key}\naws_secret_access_key = secret-of-{key}\n"),
        )
        .unwrap()
    };
    write("AKIAPROFILE000000001");
    let settings = SourceSettings::Profile {
        name: Some("dev".into()),
        credentials_file: Some(creds.clone()),
        config_file: Some(config.clone()),
        assume_role: None,
        refresh: quick_refresh(),
    };
    let set = CredentialsSet::start(&one("local", settings), &[]).unwrap();
    assert_eq!(
        wait_for_key(&set, "local", None).await,
        "AKIAPROFILE000000001"
    );

    // Rotation by an agent: the file is rewritten in place, no restart.
    std::thread::sleep(Duration::from_millis(20));
    write("AKIAPROFILE000000002");
    let handle = set.handle("local", None).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let current = handle.current().unwrap();
        if current.access_key_id == "AKIAPROFILE000000002" {
            assert_eq!(current.secret_access_key, "secret-of-AKIAPROFILE000000002");
            break;
        }
        assert!(Instant::now() < deadline, "rotated file was not picked up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn profile_source_runs_credential_process() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("issue-creds.sh");
    let expiry = standins::rfc3339(SystemTime::now() + Duration::from_secs(3600));
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho '{{\"Version\": 1, \"AccessKeyId\": \"ASIAPROCESS000000001\", \
\"SecretAccessKey\": \"process-secret\", \"SessionToken\": \"process-token\", \
\"Expiration\": \"{expiry}\"}}'\n"
        ),
    )
    .unwrap();
    let status = Command::new("chmod")
        .arg("+x")
        .arg(&script)
        .status()
        .unwrap();
    assert!(status.success());
    let empty_credentials = dir.path().join("credentials");
    std::fs::write(&empty_credentials, "").unwrap();
    let config = dir.path().join("config");
    std::fs::write(
        &config,
        format!(
            "[profile tool]\ncredential_process = {}\n",
            script.display()
        ),
    )
    .unwrap();
    let settings = SourceSettings::Profile {
        name: Some("tool".into()),
        credentials_file: Some(empty_credentials),
        config_file: Some(config),
        assume_role: None,
        refresh: quick_refresh(),
    };
    let set = CredentialsSet::start(&one("tool", settings), &[]).unwrap();
    assert_eq!(
        wait_for_key(&set, "tool", None).await,
        "ASIAPROCESS000000001"
    );
    let creds = set.handle("tool", None).unwrap().current().unwrap();
    assert_eq!(creds.session_token.as_deref(), Some("process-token"));
    let expires = set.status()[0].expires_at.unwrap();
    let expected = SystemTime::now() + Duration::from_secs(3600);
    let diff = expected
        .duration_since(expires)
        .unwrap_or_else(|e| e.duration());
    assert!(
        diff < Duration::from_secs(30),
        "expiry from the process output"
    );
}

#[tokio::test]
async fn profile_role_chain_assumes_the_role_with_the_source_profile() {
    let (sts, calls) = standins::sts(Duration::from_secs(3600));
    sts.control
        .trust_key("AKIABASEPROFILE00001", "base-secret", None);
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("credentials");
    std::fs::write(
        &creds,
        "[base]\naws_access_key_id = AKIABASEPROFILE00001\naws_secret_access_key = base-secret\n",
    )
    .unwrap();
    let config = dir.path().join("config");
    std::fs::write(
        &config,
        format!(
            "[profile app]\nrole_arn = arn:aws:iam::123456789012:role/app\nsource_profile = base\n\
role_session_name = signet-chain\nendpoint_url = {}\nregion = us-east-1\n\
[profile base]\nendpoint_url = {}\n",
            sts.url(),
            sts.url()
        ),
    )
    .unwrap();
    let settings = SourceSettings::Profile {
        name: Some("app".into()),
        credentials_file: Some(creds),
        config_file: Some(config),
        assume_role: None,
        refresh: quick_refresh(),
    };
    let set = CredentialsSet::start(&one("app", settings), &[]).unwrap();
    let key = wait_for_key(&set, "app", None).await;
    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].action, "AssumeRole");
    assert_eq!(calls[0].signed_by.as_deref(), Some("AKIABASEPROFILE00001"));
    assert_eq!(
        calls[0].params.get("RoleArn").map(String::as_str),
        Some("arn:aws:iam::123456789012:role/app")
    );
    assert_eq!(calls[0].issued.as_deref(), Some(key.as_str()));
}

#[tokio::test]
async fn check_reports_each_source_with_a_shortened_key_and_expiry() {
    let imds = standins::imds(Duration::from_secs(3600));
    let mut sources = one("ec2", imds_source(&imds.url()));
    sources.insert(
        "dev".into(),
        SourceSettings::Static {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
            session_token: None,
            assume_role: None,
            refresh: quick_refresh(),
        },
    );
    let mut out = Vec::new();
    assert!(check(&sources, false, &Default::default(), &mut out)
        .await
        .unwrap());
    let text = String::from_utf8(out).unwrap();
    let issued = &imds.control.issued()[0];
    let key = &issued.access_key_id;
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(lines[0], "dev: static key=AKIA…MPLE expires=never");
    assert!(
        lines[1].starts_with(&format!(
            "ec2: imds key=ASIA…{} expires=",
            &key[key.len() - 4..]
        )),
        "{text}"
    );
    assert!(
        lines[1].contains("(in 59m") || lines[1].contains("(in 60m"),
        "{text}"
    );
    assert!(!text.contains(&issued.secret_access_key));
    assert!(
        !text.contains(key.as_str()),
        "full key id must not be printed"
    );
}

// ---------------------------------------------------------------------------
// Sources that read the process environment run in a child process.
// ---------------------------------------------------------------------------

/// Runs `child_resolve` in a copy of this binary with `env` (plus an isolated
/// HOME and no AWS variables from the parent). Returns its stdout.
fn run_child(test: &str, env: &[(&str, String)]) -> String {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        test,
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env_clear()
    .env("PATH", std::env::var("PATH").unwrap_or_default())
    .env("HOME", home.path())
    .env("SIGNET_CHILD", "1")
    .env("AWS_CONFIG_FILE", home.path().join("no-config"))
    .env(
        "AWS_SHARED_CREDENTIALS_FILE",
        home.path().join("no-credentials"),
    );
    if !env
        .iter()
        .any(|(k, _)| *k == "AWS_EC2_METADATA_SERVICE_ENDPOINT")
    {
        cmd.env("AWS_EC2_METADATA_DISABLED", "true");
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child {test} failed:\n{stdout}\n{stderr}"
    );
    stdout
}

/// `KEY <source> <role or -> <access key id>` lines printed by the child.
fn child_keys(stdout: &str) -> BTreeMap<(String, String), String> {
    stdout
        .lines()
        .filter_map(|l| l.find("KEY ").map(|at| &l[at + 4..]))
        .filter_map(|l| {
            let mut p = l.split(' ');
            Some(((p.next()?.into(), p.next()?.into()), p.next()?.into()))
        })
        .collect()
}

fn sources_env(
    sources: &BTreeMap<String, SourceSettings>,
    roles: &[(&str, &str)],
) -> Vec<(&'static str, String)> {
    let roles: Vec<(String, String)> = roles
        .iter()
        .map(|(s, r)| (s.to_string(), r.to_string()))
        .collect();
    vec![
        (
            "SIGNET_CHILD_SOURCES",
            serde_json::to_string(sources).unwrap(),
        ),
        ("SIGNET_CHILD_ROLES", serde_json::to_string(&roles).unwrap()),
    ]
}

/// In the child: start a `CredentialsSet` from `SIGNET_CHILD_SOURCES`, wait
/// until every source is valid, and print each handle's key.
#[tokio::test]
#[ignore = "runs only inside a child process started by another test"]
async fn child_resolve() {
    if std::env::var("SIGNET_CHILD").is_err() {
        return;
    }
    let sources: BTreeMap<String, SourceSettings> =
        serde_json::from_str(&std::env::var("SIGNET_CHILD_SOURCES").unwrap()).unwrap();
    let roles: Vec<(String, String)> =
        serde_json::from_str(&std::env::var("SIGNET_CHILD_ROLES").unwrap()).unwrap();
    let set = CredentialsSet::start(&sources, &roles).unwrap();
    let ready = set.wait_ready(Duration::from_secs(30)).await;
    assert!(ready, "not ready: {:#?}", set.status());
    for name in sources.keys() {
        let creds = set.handle(name, None).unwrap().current().unwrap();
        println!("KEY {name} - {}", creds.access_key_id);
    }
    for (name, role) in &roles {
        let creds = set.handle(name, Some(role)).unwrap().current().unwrap();
        println!("KEY {name} {role} {}", creds.access_key_id);
    }
    set.shutdown().await;
}

/// In the child: run `check` with `--identity` and print its report.
#[tokio::test]
#[ignore = "runs only inside a child process started by another test"]
async fn child_check_identity() {
    if std::env::var("SIGNET_CHILD").is_err() {
        return;
    }
    let sources: BTreeMap<String, SourceSettings> =
        serde_json::from_str(&std::env::var("SIGNET_CHILD_SOURCES").unwrap()).unwrap();
    let mut out = Vec::new();
    let ok = check(&sources, true, &Default::default(), &mut out)
        .await
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    for line in text.lines() {
        println!("CHECK {line}");
    }
    assert!(ok, "{text}");
}

fn write_token(dir: &std::path::Path, name: &str, token: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, token).unwrap();
    path.display().to_string()
}

#[test]
fn web_identity_source_exchanges_the_token_file_with_sts() {
    let (sts, calls) = standins::sts(Duration::from_secs(3600));
    let dir = tempfile::tempdir().unwrap();
    let token_file = write_token(dir.path(), "token", "eyJ.irsa-token.sig");
    let sources = one(
        "irsa",
        SourceSettings::WebIdentity {
            token_file: None,
            role_arn: None,
            session_name: None,
            assume_role: None,
            refresh: quick_refresh(),
        },
    );
    let mut env = sources_env(&sources, &[]);
    env.push(("AWS_WEB_IDENTITY_TOKEN_FILE", token_file));
    env.push(("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/irsa".into()));
    env.push(("AWS_ENDPOINT_URL_STS", sts.url()));
    let keys = child_keys(&run_child("child_resolve", &env));

    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].action, "AssumeRoleWithWebIdentity");
    assert_eq!(calls[0].params["WebIdentityToken"], "eyJ.irsa-token.sig");
    assert_eq!(
        calls[0].params["RoleArn"],
        "arn:aws:iam::123456789012:role/irsa"
    );
    assert_eq!(calls[0].signed_by, None, "web identity calls are unsigned");
    assert_eq!(
        keys[&("irsa".into(), "-".into())],
        calls[0].issued.clone().unwrap()
    );
}

#[test]
fn container_source_sends_the_pod_identity_token_from_its_file() {
    let token = Arc::new(Mutex::new("pod-identity-token-1".to_owned()));
    let endpoint = standins::container(Duration::from_secs(3600), token.clone());
    let dir = tempfile::tempdir().unwrap();
    let token_file = write_token(dir.path(), "eks-pod-identity-token", "pod-identity-token-1");
    let sources = one(
        "pod",
        SourceSettings::Container {
            assume_role: None,
            refresh: quick_refresh(),
        },
    );
    let mut env = sources_env(&sources, &[]);
    env.push((
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        format!("{}/v1/credentials", endpoint.url()),
    ));
    env.push(("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", token_file));
    let keys = child_keys(&run_child("child_resolve", &env));
    let issued = endpoint.control.issued();
    assert_eq!(issued.len(), 1);
    assert_eq!(keys[&("pod".into(), "-".into())], issued[0].access_key_id);
    assert_eq!(
        endpoint.control.requests()[0],
        ("GET".into(), "/v1/credentials".into())
    );
}

#[test]
fn environment_source_and_chain_read_the_standard_variables() {
    let sources = BTreeMap::from([
        (
            "env".to_owned(),
            SourceSettings::Environment {
                assume_role: None,
                refresh: quick_refresh(),
            },
        ),
        ("default".to_owned(), SourceSettings::default()),
    ]);
    let mut env = sources_env(&sources, &[]);
    env.push(("AWS_ACCESS_KEY_ID", "AKIAENVIRONMENT00001".into()));
    env.push(("AWS_SECRET_ACCESS_KEY", "env-secret".into()));
    let keys = child_keys(&run_child("child_resolve", &env));
    assert_eq!(keys[&("env".into(), "-".into())], "AKIAENVIRONMENT00001");
    assert_eq!(
        keys[&("default".into(), "-".into())],
        "AKIAENVIRONMENT00001"
    );
}

#[test]
fn chain_falls_through_to_the_container_endpoint() {
    let token = Arc::new(Mutex::new("ecs-token".to_owned()));
    let endpoint = standins::container(Duration::from_secs(3600), token);
    let sources = one("default", SourceSettings::default());
    let mut env = sources_env(&sources, &[]);
    env.push((
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        format!("{}/creds", endpoint.url()),
    ));
    env.push(("AWS_CONTAINER_AUTHORIZATION_TOKEN", "ecs-token".into()));
    let keys = child_keys(&run_child("child_resolve", &env));
    assert_eq!(
        keys[&("default".into(), "-".into())],
        endpoint.control.issued()[0].access_key_id
    );
}

#[test]
fn imds_endpoint_override_from_the_environment_works() {
    let imds = standins::imds(Duration::from_secs(3600));
    let sources = one(
        "ec2",
        SourceSettings::Imds {
            endpoint: None,
            assume_role: None,
            refresh: quick_refresh(),
        },
    );
    let mut env = sources_env(&sources, &[]);
    env.push(("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.url()));
    let keys = child_keys(&run_child("child_resolve", &env));
    assert_eq!(
        keys[&("ec2".into(), "-".into())],
        imds.control.issued()[0].access_key_id
    );
}

#[test]
fn assume_role_wrapper_and_per_route_roles_sign_sts_with_the_source_keys() {
    let (sts, calls) = standins::sts(Duration::from_secs(3600));
    sts.control
        .trust_key("AKIAENVIRONMENT00001", "env-secret", None);
    let mut role = AssumeRoleSettings::new("arn:aws:iam::123456789012:role/wrapped");
    role.external_id = Some("ext-1234".into());
    role.session_name = Some("signet-wrapped".into());
    role.duration_secs = Some(1800);
    let sources = BTreeMap::from([
        (
            "env".to_owned(),
            SourceSettings::Environment {
                assume_role: None,
                refresh: quick_refresh(),
            },
        ),
        (
            "wrapped".to_owned(),
            SourceSettings::Environment {
                assume_role: Some(role),
                refresh: quick_refresh(),
            },
        ),
    ]);
    let route_role = "arn:aws:iam::210987654321:role/other-account";
    let mut env = sources_env(&sources, &[("env", route_role)]);
    env.push(("AWS_ACCESS_KEY_ID", "AKIAENVIRONMENT00001".into()));
    env.push(("AWS_SECRET_ACCESS_KEY", "env-secret".into()));
    env.push(("AWS_ENDPOINT_URL_STS", sts.url()));
    let keys = child_keys(&run_child("child_resolve", &env));

    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 2, "{calls:?}");
    for call in &calls {
        assert_eq!(call.action, "AssumeRole");
        assert_eq!(call.signed_by.as_deref(), Some("AKIAENVIRONMENT00001"));
    }
    let wrapped = calls
        .iter()
        .find(|c| c.params["RoleArn"].ends_with("role/wrapped"))
        .unwrap();
    assert_eq!(wrapped.params["ExternalId"], "ext-1234");
    assert_eq!(wrapped.params["RoleSessionName"], "signet-wrapped");
    assert_eq!(wrapped.params["DurationSeconds"], "1800");
    assert_eq!(
        keys[&("wrapped".into(), "-".into())],
        wrapped.issued.clone().unwrap()
    );
    let routed = calls
        .iter()
        .find(|c| c.params["RoleArn"] == route_role)
        .unwrap();
    assert_eq!(
        keys[&("env".into(), route_role.into())],
        routed.issued.clone().unwrap()
    );
    assert_eq!(keys[&("env".into(), "-".into())], "AKIAENVIRONMENT00001");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_identity_calls_get_caller_identity_signed_by_signets_signer() {
    // The verifying upstream recomputes the signature with the aws-sigv4
    // crate and answers like STS.
    let handler: common::Handler = Arc::new(|seen: &common::Seen| {
        let body = String::from_utf8_lossy(&seen.body);
        let (status, xml) = if body == "Action=GetCallerIdentity&Version=2011-06-15" {
            (
                200,
                format!(
                    "<GetCallerIdentityResponse><GetCallerIdentityResult>\
<Arn>arn:aws:sts::123456789012:assumed-role/checker/{}</Arn><UserId>AROA:x</UserId>\
<Account>123456789012</Account></GetCallerIdentityResult></GetCallerIdentityResponse>",
                    seen.access_key_id
                ),
            )
        } else {
            (
                400,
                "<ErrorResponse><Error><Code>InvalidAction</Code></Error></ErrorResponse>"
                    .to_owned(),
            )
        };
        http::Response::builder()
            .status(status)
            .body(common::full(xml))
            .unwrap()
    });
    let upstream = common::Upstream::start_with(common::Keyring::with_test_key(), handler).await;
    let sources = one(
        "env",
        SourceSettings::Environment {
            assume_role: None,
            refresh: quick_refresh(),
        },
    );
    let mut env = sources_env(&sources, &[]);
    env.push(("AWS_ACCESS_KEY_ID", common::AKID.into()));
    env.push(("AWS_SECRET_ACCESS_KEY", common::SECRET.into()));
    env.push(("AWS_SESSION_TOKEN", common::TOKEN.into()));
    env.push(("AWS_REGION", "eu-west-1".into()));
    env.push(("AWS_ENDPOINT_URL_STS", upstream.url()));
    let stdout = tokio::task::spawn_blocking(move || run_child("child_check_identity", &env))
        .await
        .unwrap();

    assert!(upstream.rejected().is_empty(), "{:?}", upstream.rejected());
    let seen = upstream.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].service, "sts");
    assert_eq!(seen[0].region, "eu-west-1");
    let expected = format!(
        "CHECK env: identity arn=arn:aws:sts::123456789012:assumed-role/checker/{} account=123456789012",
        common::AKID
    );
    assert!(stdout.contains(&expected), "{stdout}");
    assert!(!stdout.contains(common::SECRET));
    assert!(!stdout.contains(common::TOKEN));
}

#[test]
fn profile_source_uses_the_sso_token_cached_by_aws_sso_login() {
    let sso = standins::sso(Duration::from_secs(3600), "cached-sso-access-token");
    let home = tempfile::tempdir().unwrap();
    let start_url = "https://signet-test.awsapps.com/start";
    // `aws sso login` caches the token under ~/.aws/sso/cache/<sha1(start_url)>.json.
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("printf %s '{start_url}' | sha1sum"))
        .output()
        .unwrap();
    let digest = String::from_utf8(out.stdout).unwrap();
    let digest = digest.split_whitespace().next().unwrap().to_owned();
    let cache = home.path().join(".aws/sso/cache");
    std::fs::create_dir_all(&cache).unwrap();
    let expires = standins::rfc3339(SystemTime::now() + Duration::from_secs(8 * 3600));
    std::fs::write(
        cache.join(format!("{digest}.json")),
        format!(
            r#"{{"accessToken": "cached-sso-access-token", "expiresAt": "{expires}", "region": "us-east-1", "startUrl": "{start_url}"}}"#
        ),
    )
    .unwrap();
    let config = home.path().join("config");
    std::fs::write(
        &config,
        format!(
            "[profile sso-dev]\nsso_start_url = {start_url}\nsso_region = us-east-1\n\
sso_account_id = 123456789012\nsso_role_name = Reader\nendpoint_url = {}\n",
            sso.url()
        ),
    )
    .unwrap();
    let sources = one(
        "sso",
        SourceSettings::Profile {
            name: Some("sso-dev".into()),
            credentials_file: None,
            config_file: Some(config),
            assume_role: None,
            refresh: quick_refresh(),
        },
    );
    let mut env = sources_env(&sources, &[]);
    env.push(("HOME", home.path().display().to_string()));
    let keys = child_keys(&run_child("child_resolve", &env));
    let issued = sso.control.issued();
    assert_eq!(issued.len(), 1);
    assert_eq!(keys[&("sso".into(), "-".into())], issued[0].access_key_id);
    let (method, path) = &sso.control.requests()[0];
    assert_eq!(method, "GET");
    assert!(path.contains("account_id=123456789012"), "{path}");
    assert!(path.contains("role_name=Reader"), "{path}");
}

#[test]
fn profile_credential_source_assumes_a_role_with_instance_credentials() {
    let imds = standins::imds(Duration::from_secs(3600));
    let (sts, calls) = standins::sts(Duration::from_secs(3600));
    sts.control.trust_issued_by(&imds.control);
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("config");
    std::fs::write(
        &config,
        format!(
            "[profile from-ec2]\nrole_arn = arn:aws:iam::123456789012:role/from-ec2\n\
credential_source = Ec2InstanceMetadata\nendpoint_url = {}\n",
            sts.url()
        ),
    )
    .unwrap();
    let sources = one(
        "ec2role",
        SourceSettings::Profile {
            name: Some("from-ec2".into()),
            credentials_file: None,
            config_file: Some(config),
            assume_role: None,
            refresh: quick_refresh(),
        },
    );
    let mut env = sources_env(&sources, &[]);
    env.push(("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.url()));
    let keys = child_keys(&run_child("child_resolve", &env));
    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].action, "AssumeRole");
    assert_eq!(
        calls[0].signed_by.as_deref(),
        Some(imds.control.issued()[0].access_key_id.as_str())
    );
    assert_eq!(
        keys[&("ec2role".into(), "-".into())],
        calls[0].issued.clone().unwrap()
    );
}
