//! A real client against a real AWS emulator, through signet.
//!
//! moto's server runs on 127.0.0.1 with IAM authentication on, so it
//! recomputes every SigV4 signature and refuses bad ones. aws-cli talks to
//! signet with `--no-sign-request`; signet signs with an access key created in
//! moto. S3 (bucket, 1 KiB and 64 MiB objects in and out, list, delete) and one
//! DynamoDB call go through it; objects read back byte-identical.
//!
//! moto and aws-cli come from PyPI: `.ci/run` installs them; when they are
//! missing this test installs them with pip first.
//!
//! Object listings use `s3api list-objects-v2`: moto 5 refuses `aws s3 ls
//! s3://bucket/` even when aws-cli signs it itself (it canonicalises the
//! decoded `delimiter=/` instead of the `%2F` that was signed), so that form
//! cannot tell a signing bug from the emulator's.

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::Signet;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether `cmd probe` runs and succeeds.
fn have(cmd: &str, probe: &str) -> bool {
    Command::new(cmd)
        .arg(probe)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn ensure_tools() {
    if have("moto_server", "--help") && have("aws", "--version") {
        return;
    }
    let status = Command::new("python3")
        .args(["-m", "pip", "install", "--quiet", "moto[server]", "awscli"])
        .status()
        .expect("python3 is needed to install moto and aws-cli");
    assert!(status.success(), "pip install moto[server] awscli failed");
    assert!(
        have("moto_server", "--help") && have("aws", "--version"),
        "moto_server and aws not on PATH after install"
    );
}

struct Moto(Child);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_moto(port: u16) -> Moto {
    let child = Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start moto_server");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "moto_server did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    Moto(child)
}

/// Runs aws-cli with a clean environment; `args` start after `aws`.
fn aws(endpoint: &str, home: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new("aws");
    cmd.arg("--endpoint-url").arg(endpoint).args(args);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", home.join("none"))
        .env("AWS_SHARED_CREDENTIALS_FILE", home.join("none"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_PAGER", "");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run aws")
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn aws_cli_through_signet_against_moto_with_iam_auth() {
    ensure_tools();
    let home = tempfile::tempdir().unwrap();
    let moto_port = free_port();
    let _moto = start_moto(moto_port);
    let moto = format!("http://127.0.0.1:{moto_port}");

    // Create a user with an access key and full rights while auth is still off.
    let boot = [
        ("AWS_ACCESS_KEY_ID", "bootstrap"),
        ("AWS_SECRET_ACCESS_KEY", "bootstrap"),
    ];
    ok(
        aws(
            &moto,
            home.path(),
            &boot,
            &["iam", "create-user", "--user-name", "signet"],
        ),
        "create-user",
    );
    let policy =
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
    ok(
        aws(
            &moto,
            home.path(),
            &boot,
            &[
                "iam",
                "put-user-policy",
                "--user-name",
                "signet",
                "--policy-name",
                "all",
                "--policy-document",
                policy,
            ],
        ),
        "put-user-policy",
    );
    let key: serde_json::Value = serde_json::from_str(&ok(
        aws(
            &moto,
            home.path(),
            &boot,
            &["iam", "create-access-key", "--user-name", "signet"],
        ),
        "create-access-key",
    ))
    .unwrap();
    let akid = key["AccessKey"]["AccessKeyId"]
        .as_str()
        .unwrap()
        .to_string();
    let secret = key["AccessKey"]["SecretAccessKey"]
        .as_str()
        .unwrap()
        .to_string();

    // From now on moto verifies every signature.
    let reset = Command::new("python3")
        .args([
            "-c",
            &format!(
                "import urllib.request; urllib.request.urlopen(urllib.request.Request('{moto}/moto-api/reset-auth', data=b'0', method='POST', headers={{'Content-Type': 'text/plain'}}))"
            ),
        ])
        .status()
        .unwrap();
    assert!(reset.success());
    let unsigned = aws(&moto, home.path(), &[], &["--no-sign-request", "s3", "ls"]);
    assert!(
        !unsigned.status.success(),
        "moto must refuse unsigned requests once auth is on"
    );

    // signet: S3 when the client says Host 127.0.0.1, DynamoDB when it says localhost.
    let config = format!(
        r#"
[credentials.moto]
kind = "environment"

[defaults]
credentials = "moto"
aws_host_routing = false

[[routes]]
name = "s3"
host = "127.0.0.1"
upstream = "{moto}"
service = "s3"
region = "us-east-1"

[[routes]]
name = "dynamodb"
host = "localhost"
upstream = "{moto}"
service = "dynamodb"
region = "us-east-1"
"#
    );
    let signet = Signet::start_with_env(
        &config,
        &[
            ("AWS_ACCESS_KEY_ID", &akid),
            ("AWS_SECRET_ACCESS_KEY", &secret),
        ],
        &[],
    );
    let port = signet.addr.port();
    let s3 = format!("http://127.0.0.1:{port}");
    let ddb = format!("http://localhost:{port}");
    let cli = |endpoint: &str, args: &[&str]| {
        let mut full = vec!["--no-sign-request"];
        full.extend_from_slice(args);
        aws(endpoint, home.path(), &[], &full)
    };

    ok(cli(&s3, &["s3", "mb", "s3://signet-bucket"]), "s3 mb");
    let small: Vec<u8> = (0..1024u32).map(|i| (i * 7 % 251) as u8).collect();
    let big: Vec<u8> = (0..64 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    let dir = home.path();
    std::fs::write(dir.join("small.bin"), &small).unwrap();
    std::fs::write(dir.join("big.bin"), &big).unwrap();
    for name in ["small.bin", "big.bin"] {
        let local = dir.join(name);
        ok(
            cli(
                &s3,
                &[
                    "s3",
                    "cp",
                    local.to_str().unwrap(),
                    &format!("s3://signet-bucket/{name}"),
                ],
            ),
            "s3 cp up",
        );
    }
    let buckets = ok(cli(&s3, &["s3", "ls"]), "s3 ls");
    assert!(buckets.contains("signet-bucket"), "{buckets}");
    let list = |cli: &dyn Fn(&str, &[&str]) -> Output| {
        ok(
            cli(
                &s3,
                &[
                    "s3api",
                    "list-objects-v2",
                    "--bucket",
                    "signet-bucket",
                    "--query",
                    "Contents[].Key",
                ],
            ),
            "s3api list-objects-v2",
        )
    };
    let listing = list(&cli);
    assert!(
        listing.contains("small.bin") && listing.contains("big.bin"),
        "{listing}"
    );
    for (name, want) in [("small.bin", &small), ("big.bin", &big)] {
        let back = dir.join(format!("back-{name}"));
        ok(
            cli(
                &s3,
                &[
                    "s3",
                    "cp",
                    &format!("s3://signet-bucket/{name}"),
                    back.to_str().unwrap(),
                ],
            ),
            "s3 cp down",
        );
        let got = std::fs::read(&back).unwrap();
        assert!(
            got == *want,
            "{name} did not read back byte-identical ({} bytes)",
            got.len()
        );
    }
    ok(
        cli(&s3, &["s3", "rm", "s3://signet-bucket/small.bin"]),
        "s3 rm",
    );
    let listing = list(&cli);
    assert!(
        !listing.contains("small.bin") && listing.contains("big.bin"),
        "{listing}"
    );

    ok(
        cli(
            &ddb,
            &[
                "dynamodb",
                "create-table",
                "--table-name",
                "signet",
                "--attribute-definitions",
                "AttributeName=id,AttributeType=S",
                "--key-schema",
                "AttributeName=id,KeyType=HASH",
                "--billing-mode",
                "PAY_PER_REQUEST",
            ],
        ),
        "dynamodb create-table",
    );
    let tables = ok(
        cli(&ddb, &["dynamodb", "list-tables"]),
        "dynamodb list-tables",
    );
    assert!(tables.contains("\"signet\""), "{tables}");
}
