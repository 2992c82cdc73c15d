//! Shared end-to-end harness: a verifying upstream and the real `signet` binary.
//!
//! The upstream re-verifies every request's SigV4 signature independently, by
//! recomputing it with the `aws-sigv4` crate (not signet's signer), and rejects
//! mismatches with 403 `SignatureDoesNotMatch`, as AWS would.

#![allow(dead_code)]

// Test crates that use both this module and `tests/standins` load two copies; each
// is self-contained.
#[allow(clippy::duplicate_mod)]
#[path = "../verify/mod.rs"]
mod verify;

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use sha2::{Digest, Sha256};

use verify::verify;

/// Test credentials known to the verifying upstream.
pub const AKID: &str = "AKIDSIGNETTEST000001";
/// Secret of [`AKID`].
pub const SECRET: &str = "signet/Test/Secret/Key/00000000000000000001";
/// Session token sent with [`AKID`].
pub const TOKEN: &str = "signet-session-token-FQoGZXIvYXdzEXAMPLE0001";

/// The body type the upstream answers with.
pub type UpBody = BoxBody<Bytes, Infallible>;

/// A full body.
pub fn full(b: impl Into<Bytes>) -> UpBody {
    Full::new(b.into()).map_err(|e| match e {}).boxed()
}

/// What the upstream saw of one request that passed verification.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path_and_query: String,
    pub headers: http::HeaderMap,
    pub body: Bytes,
    pub signed_headers: Vec<String>,
    pub access_key_id: String,
    pub service: String,
    pub region: String,
    pub received_at: SystemTime,
}

/// A signature check that failed, kept for assertions.
#[derive(Clone, Debug)]
pub struct Rejection {
    pub path_and_query: String,
    pub reason: String,
}

/// Answers a verified request.
pub type Handler = Arc<dyn Fn(&Seen) -> Response<UpBody> + Send + Sync>;

/// A secret access key and its session token, if any.
type KeyEntry = (String, Option<String>);

/// Key id → (secret, session token) the upstream accepts.
#[derive(Clone, Default)]
pub struct Keyring(Arc<Mutex<HashMap<String, KeyEntry>>>);

impl Keyring {
    pub fn with_test_key() -> Self {
        let k = Keyring::default();
        k.add(AKID, SECRET, Some(TOKEN));
        k
    }
    pub fn add(&self, akid: &str, secret: &str, token: Option<&str>) {
        self.0.lock().unwrap().insert(
            akid.to_string(),
            (secret.to_string(), token.map(str::to_string)),
        );
    }
    fn get(&self, akid: &str) -> Option<KeyEntry> {
        self.0.lock().unwrap().get(akid).cloned()
    }
}

/// A verifying upstream on 127.0.0.1.
pub struct Upstream {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    pub rejected: Arc<Mutex<Vec<Rejection>>>,
    pub keys: Keyring,
    _task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    /// Starts an upstream that echoes a JSON summary of each verified request.
    pub async fn start() -> Upstream {
        Self::start_with(Keyring::with_test_key(), Arc::new(echo)).await
    }

    /// Starts an upstream with a custom answer.
    pub async fn start_with(keys: Keyring, handler: Handler) -> Upstream {
        Self::start_delayed(keys, handler, Duration::ZERO).await
    }

    /// Starts an upstream that waits `delay` (without blocking) before answering.
    pub async fn start_delayed(keys: Keyring, handler: Handler, delay: Duration) -> Upstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let rejected = Arc::new(Mutex::new(Vec::new()));
        let (s, r, k) = (seen.clone(), rejected.clone(), keys.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (s, r, k, h) = (s.clone(), r.clone(), k.clone(), handler.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let (s, r, k, h) = (s.clone(), r.clone(), k.clone(), h.clone());
                        async move {
                            let response = verify_and_answer(req, &k, &s, &r, &h).await;
                            tokio::time::sleep(delay).await;
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Upstream {
            addr,
            seen,
            rejected,
            keys,
            _task: task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
    pub fn rejected(&self) -> Vec<Rejection> {
        self.rejected.lock().unwrap().clone()
    }
}

/// The default answer: a JSON summary of what arrived.
pub fn echo(seen: &Seen) -> Response<UpBody> {
    let headers: Vec<(String, String)> = seen
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = serde_json::json!({
        "method": seen.method,
        "path": seen.path_and_query,
        "headers": headers,
        "body_len": seen.body.len(),
        "body_sha256": hex::encode(Sha256::digest(&seen.body)),
    });
    Response::builder()
        .header("content-type", "application/json")
        .header("x-amzn-requestid", "req-0001")
        .body(full(body.to_string()))
        .unwrap()
}

async fn verify_and_answer(
    req: Request<Incoming>,
    keys: &Keyring,
    seen: &Mutex<Vec<Seen>>,
    rejected: &Mutex<Vec<Rejection>>,
    handler: &Handler,
) -> Response<UpBody> {
    let (parts, body) = req.into_parts();
    let pq = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return reject(rejected, &pq, format!("body read failed: {e}"));
        }
    };
    match verify(&parts, &body, |akid| keys.get(akid)) {
        Ok(v) => {
            let s = Seen {
                method: parts.method.to_string(),
                path_and_query: pq,
                headers: parts.headers.clone(),
                body,
                signed_headers: v.signed_headers,
                access_key_id: v.akid,
                service: v.service,
                region: v.region,
                received_at: SystemTime::now(),
            };
            seen.lock().unwrap().push(s.clone());
            handler(&s)
        }
        Err(refusal) => reject(rejected, &pq, refusal.to_string()),
    }
}

fn reject(rejected: &Mutex<Vec<Rejection>>, pq: &str, reason: String) -> Response<UpBody> {
    rejected.lock().unwrap().push(Rejection {
        path_and_query: pq.to_string(),
        reason: reason.clone(),
    });
    Response::builder()
        .status(StatusCode::FORBIDDEN)
        .header("x-amzn-errortype", "SignatureDoesNotMatch")
        .body(full(format!(
            "<Error><Code>SignatureDoesNotMatch</Code><Message>{reason}</Message></Error>"
        )))
        .unwrap()
}

/// Recomputes the signature of a request head whose payload is not signed
/// (`UNSIGNED-PAYLOAD`), for upstreams that read the head themselves.
pub fn verify_unsigned_payload_head(
    parts: &http::request::Parts,
    keys: &Keyring,
) -> Result<(), String> {
    verify(parts, b"", |akid| keys.get(akid))
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// How long a poll for something that should happen within milliseconds may
/// take on a loaded machine before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// Polls `check` every 20 ms until it holds; fails naming `what` after
/// [`PATIENCE`].
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Fails unless `up` verified every request it received.
pub fn assert_no_rejections(up: &Upstream) {
    assert!(
        up.rejected().is_empty(),
        "upstream rejected: {:#?}",
        up.rejected()
    );
}

/// The real `signet` binary, running on 127.0.0.1 with ports chosen by the OS.
pub struct Signet {
    child: Child,
    /// The proxy listener.
    pub addr: SocketAddr,
    /// The admin listener.
    pub admin: SocketAddr,
    /// Every line the process wrote to stdout and stderr so far.
    pub logs: Arc<Mutex<Vec<String>>>,
    dir: tempfile::TempDir,
}

impl Signet {
    /// Starts signet with `config` (TOML) and the test credentials in its environment.
    pub fn start(config: &str) -> Signet {
        Self::start_with_env(
            config,
            &[
                ("AWS_ACCESS_KEY_ID", AKID),
                ("AWS_SECRET_ACCESS_KEY", SECRET),
                ("AWS_SESSION_TOKEN", TOKEN),
            ],
            &[],
        )
    }

    /// Starts signet with a config file, environment and extra arguments.
    pub fn start_with_env(config: &str, env: &[(&str, &str)], args: &[&str]) -> Signet {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signet.toml");
        std::fs::write(&path, config).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_signet"));
        cmd.arg("--config").arg(&path).args(args);
        Self::spawn(cmd, env, dir)
    }

    /// Starts signet with command-line arguments only (no config file).
    pub fn start_args(args: &[&str], env: &[(&str, &str)]) -> Signet {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_signet"));
        cmd.args(args);
        Self::spawn(cmd, env, dir)
    }

    fn spawn(mut cmd: Command, env: &[(&str, &str)], dir: tempfile::TempDir) -> Signet {
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", dir.path())
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", dir.path().join("no-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                dir.path().join("no-credentials"),
            )
            .env("SIGNET_LISTEN", "127.0.0.1:0")
            .env("SIGNET_ADMIN__LISTEN", "127.0.0.1:0")
            .env(
                "RUST_LOG",
                std::env::var("SIGNET_TEST_LOG").unwrap_or_else(|_| "info".into()),
            );
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn signet");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let logs = logs.clone();
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if let Some(addrs) = listening_addrs(&line) {
                        let _ = tx.send(addrs);
                    }
                    logs.lock().unwrap().push(line);
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok((addr, admin)) = rx.recv_timeout(Duration::from_millis(100)) {
                return Signet {
                    child,
                    addr,
                    admin,
                    logs,
                    dir,
                };
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "signet exited early with {status}: {:#?}",
                    logs.lock().unwrap()
                );
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("signet did not start: {:#?}", logs.lock().unwrap());
            }
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
    pub fn admin_url(&self) -> String {
        format!("http://{}", self.admin)
    }
    /// The config file signet was started with (rewrite it, then SIGHUP).
    pub fn config_path(&self) -> std::path::PathBuf {
        self.dir.path().join("signet.toml")
    }
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// Waits until a line containing `needle` has been logged (lines are
    /// written when a response ends and collected by reader threads).
    pub async fn wait_for_log(&self, needle: &str) {
        let what = format!("a log line with {needle}");
        eventually(&what, || self.logs().iter().any(|l| l.contains(needle))).await;
    }

    /// Waits until `n` access lines have been logged (each is written when its
    /// response ends).
    pub async fn wait_for_access_lines(&self, n: usize) {
        let what = format!("{n} access lines");
        eventually(&what, || {
            self.logs()
                .iter()
                .filter(|l| l.contains("\"target\":\"signet::access\""))
                .count()
                == n
        })
        .await;
    }

    /// Sends a signal (e.g. `libc::SIGTERM`) to the process.
    pub fn signal(&self, sig: i32) {
        assert!(send_signal(self.child.id(), sig), "kill -{sig} failed");
    }

    /// Waits for the process to exit, up to `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

/// Sends `sig` to `pid` with kill(1), keeping the test crate free of `unsafe`.
fn send_signal(pid: u32, sig: i32) -> bool {
    Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

impl Drop for Signet {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Finds the startup line (`"message":"listening"` with `proxy` and `admin` fields).
fn listening_addrs(line: &str) -> Option<(SocketAddr, SocketAddr)> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let fields = v.get("fields").unwrap_or(&v);
    if fields.get("message")?.as_str()? != "listening" {
        return None;
    }
    let proxy = fields.get("proxy")?.as_str()?.parse().ok()?;
    let admin = fields.get("admin")?.as_str()?.parse().ok()?;
    Some((proxy, admin))
}

/// A plain HTTP/1.1 client for talking to signet.
pub fn client(
) -> hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, UpBody>
{
    hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http()
}

/// Sends a request and collects the answer.
pub async fn send(req: Request<UpBody>) -> (StatusCode, http::HeaderMap, Bytes) {
    let resp = client().request(req).await.expect("request to signet");
    let (parts, body) = resp.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    (parts.status, parts.headers, body)
}

/// GET a URL.
pub async fn get(url: &str) -> (StatusCode, http::HeaderMap, Bytes) {
    send(Request::get(url).body(full(Bytes::new())).unwrap()).await
}

/// A config with one route to `upstream` for `service`/`region`.
pub fn one_route_config(upstream: &str, service: &str, region: &str, extra: &str) -> String {
    format!(
        r#"
[[routes]]
name = "test"
path_prefix = "/"
upstream = "{upstream}"
service = "{service}"
region = "{region}"
{extra}
"#
    )
}

/// The base64 CRC32 checksum S3 expects in an `x-amz-checksum-crc32` trailer.
pub fn crc32_b64(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(crc32fast::hash(data).to_be_bytes())
}

/// A PUT of `data` to `url` as an aws-chunked upload in 64 KiB chunks with a
/// CRC32 trailer, as current AWS SDKs send it, and the body's bytes on the
/// wire. With `signed_chunks`, every chunk and the trailer carry a (made-up)
/// signature of the client's, as with `STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER`;
/// without, the upload is `STREAMING-UNSIGNED-PAYLOAD-TRAILER`.
pub fn aws_chunked_put(url: &str, data: &[u8], signed_chunks: bool) -> (Request<UpBody>, Vec<u8>) {
    let fake = "f".repeat(64);
    let extension = if signed_chunks {
        format!(";chunk-signature={fake}")
    } else {
        String::new()
    };
    let mut wire = Vec::new();
    for chunk in data.chunks(65536) {
        wire.extend_from_slice(format!("{:x}{extension}\r\n", chunk.len()).as_bytes());
        wire.extend_from_slice(chunk);
        wire.extend_from_slice(b"\r\n");
    }
    let crc = crc32_b64(data);
    wire.extend_from_slice(format!("0{extension}\r\nx-amz-checksum-crc32:{crc}\r\n").as_bytes());
    if signed_chunks {
        wire.extend_from_slice(format!("x-amz-trailer-signature:{fake}\r\n").as_bytes());
    }
    wire.extend_from_slice(b"\r\n");
    let mode = if signed_chunks {
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
    } else {
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    };
    let req = Request::put(url)
        .header("content-encoding", "aws-chunked")
        .header("x-amz-content-sha256", mode)
        .header("x-amz-decoded-content-length", data.len().to_string())
        .header("x-amz-trailer", "x-amz-checksum-crc32")
        .header("content-length", wire.len().to_string())
        .body(full(wire.clone()))
        .unwrap();
    (req, wire)
}

/// Checks every chunk signature of a signed aws-chunked body with an
/// independent implementation (hmac + sha2 here, not signet's signer).
pub fn verify_chunk_chain(seen: &Seen, secret: &str) -> (Vec<u8>, Vec<(String, String)>) {
    use hmac::{Hmac, Mac};
    type H = Hmac<Sha256>;
    fn mac(key: &[u8], data: &[u8]) -> Vec<u8> {
        let mut m = H::new_from_slice(key).unwrap();
        m.update(data);
        m.finalize().into_bytes().to_vec()
    }
    let auth = seen.headers.get("authorization").unwrap().to_str().unwrap();
    let mut previous = auth.rsplit("Signature=").next().unwrap().to_string();
    let date = seen
        .headers
        .get("x-amz-date")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let scope = format!(
        "{}/{}/{}/aws4_request",
        &date[..8],
        seen.region,
        seen.service
    );
    let mut key = mac(format!("AWS4{secret}").as_bytes(), &date.as_bytes()[..8]);
    for part in [seen.region.as_str(), seen.service.as_str(), "aws4_request"] {
        key = mac(&key, part.as_bytes());
    }
    let empty = hex::encode(Sha256::digest(b""));
    let body = &seen.body[..];
    let mut pos = 0;
    let mut data = Vec::new();
    loop {
        let end = pos + body[pos..].windows(2).position(|w| w == b"\r\n").unwrap();
        let header = std::str::from_utf8(&body[pos..end]).unwrap();
        let (size, sig) = header.split_once(";chunk-signature=").unwrap();
        let size = usize::from_str_radix(size, 16).unwrap();
        let chunk = &body[end + 2..end + 2 + size];
        let sts = format!(
            "AWS4-HMAC-SHA256-PAYLOAD\n{date}\n{scope}\n{previous}\n{empty}\n{}",
            hex::encode(Sha256::digest(chunk))
        );
        let expected = hex::encode(mac(&key, sts.as_bytes()));
        assert_eq!(sig, expected, "chunk signature");
        previous = expected;
        data.extend_from_slice(chunk);
        pos = end + 2 + size;
        if size == 0 {
            break;
        }
        assert_eq!(&body[pos..pos + 2], b"\r\n");
        pos += 2;
    }
    let mut trailers = Vec::new();
    let mut canonical = String::new();
    for line in std::str::from_utf8(&body[pos..])
        .unwrap()
        .split("\r\n")
        .filter(|l| !l.is_empty())
    {
        let (k, v) = line.split_once(':').unwrap();
        if k == "x-amz-trailer-signature" {
            let sts = format!(
                "AWS4-HMAC-SHA256-TRAILER\n{date}\n{scope}\n{previous}\n{}",
                hex::encode(Sha256::digest(canonical.as_bytes()))
            );
            assert_eq!(
                v,
                hex::encode(mac(&key, sts.as_bytes())),
                "trailer signature"
            );
        } else {
            canonical.push_str(&format!("{k}:{v}\n"));
        }
        trailers.push((k.to_string(), v.to_string()));
    }
    (data, trailers)
}
