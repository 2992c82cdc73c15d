//! The admin listener and `signet health`, through the real binary: `signet
//! serve` on 127.0.0.1 (ports chosen by the OS, read back from its
//! "listening" log line), probed over real sockets.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use signet::admin::{HEALTH_PATH, METRICS_PATH, READY_PATH};
use signet::telemetry::metrics::{self, names};

const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

/// A running `signet serve` and the JSON log lines it prints.
struct Signet {
    child: Child,
    proxy: SocketAddr,
    admin: SocketAddr,
    lines: Receiver<String>,
    seen: Vec<String>,
}

/// Environment that keeps the AWS credential chain local: static keys from
/// the environment, no profile files, no instance metadata.
fn aws_env(cmd: &mut Command) -> &mut Command {
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent/signet-test")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/signet-test")
}

impl Signet {
    /// `signet serve ARGS` with static keys in the environment plus `env`.
    fn start(args: &[&str], env: &[(&str, &str)]) -> Signet {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_signet"));
        aws_env(&mut cmd)
            .arg("serve")
            .args(args)
            .envs(env.iter().copied());
        Signet::spawn(cmd)
    }

    /// `signet serve --config FILE` with no AWS keys in the environment.
    fn start_without_keys(config: &Path) -> Signet {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_signet"));
        aws_env(&mut cmd)
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .arg("serve")
            .arg("--config")
            .arg(config);
        Signet::spawn(cmd)
    }

    /// Spawns on OS-chosen loopback ports and reads them back from the
    /// "listening" log line.
    fn spawn(mut cmd: Command) -> Signet {
        cmd.env("SIGNET_LISTEN", "127.0.0.1:0")
            .env("SIGNET_ADMIN__LISTEN", "127.0.0.1:0")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("spawn signet");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut signet = Signet {
            child,
            proxy: "127.0.0.1:0".parse().unwrap(),
            admin: "127.0.0.1:0".parse().unwrap(),
            lines,
            seen: Vec::new(),
        };
        let listening = signet.wait_for_line(|v| v["message"] == "listening");
        signet.proxy = listening["proxy"].as_str().unwrap().parse().unwrap();
        signet.admin = listening["admin"].as_str().unwrap().parse().unwrap();
        signet
    }

    /// Reads log lines until one matches; every line must be JSON.
    fn wait_for_line(&mut self, want: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no matching log line; saw:\n{}", self.seen.join("\n")));
            let value: serde_json::Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"));
            self.seen.push(line);
            if want(&value) {
                return value;
            }
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "signet did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Signet {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request over a fresh connection: (status, headers, body).
fn request(addr: SocketAddr, head: &str) -> (u16, Vec<(String, String)>, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, headers, body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap();
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        body = &rest[n + 2..];
    }
    out
}

fn get(addr: SocketAddr, path: &str) -> (u16, Vec<(String, String)>, String) {
    request(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
    )
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn health(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_signet"));
    aws_env(&mut cmd)
        .arg("health")
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

#[test]
fn serve_answers_healthz_readyz_and_metrics_on_the_admin_port() {
    let signet = Signet::start(&[], &[]);
    let (status, _, body) = get(signet.admin, HEALTH_PATH);
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let (status, _, body) = get(signet.admin, READY_PATH);
    assert_eq!((status, body.as_str()), (200, "ready\n"), "{body}");

    let (status, headers, text) = get(signet.admin, METRICS_PATH);
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "content-type"),
        Some(metrics::CONTENT_TYPE)
    );
    assert_eq!(
        metrics::sample(
            &text,
            names::BUILD_INFO,
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );
    assert_eq!(
        metrics::sample(
            &text,
            names::CREDENTIALS_REFRESH_FAILURES_TOTAL,
            &[("source", "default")]
        ),
        Some(0.0),
        "{text}"
    );
    assert!(!text.contains(SECRET_KEY));
}

#[test]
fn refused_request_moves_metrics_and_logs_one_redacted_access_line() {
    let mut signet = Signet::start(&[], &[]);
    let counted = |text: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with(names::REQUESTS_TOTAL))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum()
    };
    let before = counted(&get(signet.admin, METRICS_PATH).2);

    // A Host that is neither a configured upstream nor an AWS endpoint is
    // refused; the request still gets its access-log line and its count.
    let signature = "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7";
    let mut stream = TcpStream::connect(signet.proxy).unwrap();
    let client = stream.local_addr().unwrap();
    stream
        .write_all(
            format!(
                "GET /object?X-Amz-Credential=AKIDEXAMPLE%2F20260101%2Fus-east-1%2Fs3%2Faws4_request\
                 &X-Amz-Signature={signature} HTTP/1.1\r\nHost: example.com\r\n\
                 Authorization: Bearer {SECRET_KEY}\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status: u16 = answer.split(' ').nth(1).unwrap().parse().unwrap();
    assert_eq!(status, 403, "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("x-signet-error: unknown_host"),
        "{answer}"
    );

    let access = signet.wait_for_line(|v| v["target"] == "signet::access");
    assert_eq!(access["status"], u64::from(status));
    assert_eq!(access["client"], client.to_string(), "the client's address");
    assert_eq!(access["method"], "GET");
    let path = access["path"].as_str().unwrap();
    assert_eq!(
        path,
        "/object?X-Amz-Credential=REDACTED&X-Amz-Signature=REDACTED"
    );
    let after = counted(&get(signet.admin, METRICS_PATH).2);
    assert_eq!(after, before + 1.0);
    for line in &signet.seen {
        assert!(
            !line.contains(signature) && !line.contains(SECRET_KEY),
            "secret in log line: {line}"
        );
    }
}

#[test]
fn health_command_exits_zero_while_up_and_one_after_shutdown() {
    let mut signet = Signet::start(&[], &[]);
    let ready_url = signet.url(READY_PATH);
    let out = health(&["--url", &ready_url], &[]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1);
    assert!(stdout.starts_with("healthy: "), "{stdout}");

    // Without --url, the admin address comes from SIGNET_ADMIN__LISTEN.
    let admin = signet.admin.to_string();
    let out = health(&[], &[("SIGNET_ADMIN__LISTEN", &admin)]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains(HEALTH_PATH));

    let status = signet.terminate();
    assert!(status.success(), "signet exits 0 after a drain: {status:?}");

    let out = health(&["--url", &ready_url, "--timeout", "2s"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("unhealthy: "), "{stderr}");
}

#[test]
fn readyz_and_health_report_missing_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("signet.toml");
    // A source that reads only environment variables, with none set.
    std::fs::write(&config, "[credentials.default]\nkind = \"environment\"\n").unwrap();
    let signet = Signet::start_without_keys(&config);
    let (status, _, body) = get(signet.admin, READY_PATH);
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("credentials default"), "{body}");
    assert!(
        !body.contains("listener"),
        "only the credentials are missing: {body}"
    );
    assert_eq!(
        get(signet.admin, HEALTH_PATH).0,
        200,
        "alive even when not ready"
    );

    let out = health(&["--url", &signet.url(READY_PATH)], &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("503"), "{stderr}");
}
