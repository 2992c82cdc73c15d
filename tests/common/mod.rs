//! Shared end-to-end harness: a verifying upstream and the real `signet` binary.
//!
//! The upstream re-verifies every request's SigV4 signature independently, by
//! recomputing it with the `aws-sigv4` crate (not signet's signer), and rejects
//! mismatches with 403 `SignatureDoesNotMatch`, as AWS would.

#![allow(dead_code)]

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
    match verify(&parts, &body, keys) {
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
        Err(reason) => reject(rejected, &pq, reason),
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

struct Verified {
    akid: String,
    service: String,
    region: String,
    signed_headers: Vec<String>,
}

/// Services signed with S3's rules (single encoding, no path normalisation).
fn is_s3_family(service: &str) -> bool {
    matches!(
        service,
        "s3" | "s3express" | "s3-object-lambda" | "s3-outposts"
    )
}

/// Recomputes the signature of a request head whose payload is not signed
/// (`UNSIGNED-PAYLOAD`), for upstreams that read the head themselves.
pub fn verify_unsigned_payload_head(
    parts: &http::request::Parts,
    keys: &Keyring,
) -> Result<(), String> {
    verify(parts, b"", keys).map(|_| ())
}

/// Recomputes the request's signature with the `aws-sigv4` crate.
fn verify(parts: &http::request::Parts, body: &[u8], keys: &Keyring) -> Result<Verified, String> {
    use aws_sigv4::http_request::{
        sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest,
        SigningSettings, UriPathNormalizationMode,
    };
    let auth = parts
        .headers
        .get("authorization")
        .ok_or("missing Authorization header")?
        .to_str()
        .map_err(|_| "non-ASCII Authorization")?;
    let rest = auth
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or("Authorization is not AWS4-HMAC-SHA256")?;
    let mut credential = None;
    let mut signed = None;
    let mut signature = None;
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        }
    }
    let (credential, signed, signature) = (
        credential.ok_or("no Credential")?,
        signed.ok_or("no SignedHeaders")?,
        signature.ok_or("no Signature")?,
    );
    let scope: Vec<&str> = credential.split('/').collect();
    if scope.len() != 5 || scope[4] != "aws4_request" {
        return Err(format!("bad credential scope {credential}"));
    }
    let (akid, region, service) = (scope[0], scope[2], scope[3]);
    let (secret, token) = keys
        .get(akid)
        .ok_or_else(|| format!("unknown access key {akid}"))?;
    let amz_date = parts
        .headers
        .get("x-amz-date")
        .ok_or("missing X-Amz-Date")?
        .to_str()
        .map_err(|_| "bad X-Amz-Date")?;
    let time = parse_amz_date(amz_date).ok_or("unparsable X-Amz-Date")?;
    let skew = match SystemTime::now().duration_since(time) {
        Ok(d) => d,
        Err(e) => e.duration(),
    };
    if skew > Duration::from_secs(15 * 60) {
        return Err("request time too skewed".into());
    }
    if scope[1] != amz_date.get(..8).unwrap_or("") {
        return Err("scope date differs from X-Amz-Date".into());
    }
    let sent_token = parts
        .headers
        .get("x-amz-security-token")
        .and_then(|v| v.to_str().ok());
    if sent_token != token.as_deref() {
        return Err("session token mismatch".into());
    }
    let signed_headers: Vec<String> = signed.split(';').map(str::to_string).collect();
    for required in ["host", "x-amz-date"] {
        if !signed_headers.iter().any(|h| h == required) {
            return Err(format!("{required} is not signed"));
        }
    }
    // Every x-amz-* header that was sent must be signed.
    for name in parts.headers.keys() {
        if name.as_str().starts_with("x-amz-") && !signed_headers.iter().any(|h| h == name.as_str())
        {
            return Err(format!("{name} travels unsigned"));
        }
    }
    let content_sha = parts
        .headers
        .get("x-amz-content-sha256")
        .and_then(|v| v.to_str().ok());
    if let Some(h) = content_sha {
        if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) {
            let actual = hex::encode(Sha256::digest(body));
            if actual != h {
                return Err("XAmzContentSHA256Mismatch".into());
            }
        }
    }
    let mut header_pairs: Vec<(&str, String)> = Vec::new();
    for name in &signed_headers {
        let values: Vec<&str> = parts
            .headers
            .get_all(name.as_str())
            .iter()
            .map(|v| std::str::from_utf8(v.as_bytes()).unwrap_or(""))
            .collect();
        if values.is_empty() && name != "host" {
            return Err(format!("signed header {name} is missing"));
        }
        for v in values {
            header_pairs.push((name.as_str(), v.to_string()));
        }
    }
    let host_sent = parts.headers.contains_key("host");
    let authority = parts.uri.authority().map(|a| a.to_string());
    if !host_sent {
        if let Some(a) = &authority {
            header_pairs.push(("host", a.clone()));
        }
    }
    let pq = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let host = parts
        .headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or(authority)
        .unwrap_or_default();
    let uri = format!("http://{host}{pq}");
    let mut settings = SigningSettings::default();
    settings.excluded_headers = Some(Vec::new());
    if is_s3_family(service) {
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    }
    let body_for_sig = match content_sha {
        Some(h) if signed_headers.iter().any(|s| s == "x-amz-content-sha256") => {
            settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
            SignableBody::Precomputed(h.to_string())
        }
        _ => SignableBody::Bytes(body),
    };
    let identity =
        aws_credential_types::Credentials::new(akid, secret, token, None, "verifier").into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(settings)
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let signable = SignableRequest::new(
        parts.method.as_str(),
        uri,
        header_pairs.iter().map(|(k, v)| (*k, v.as_str())),
        body_for_sig,
    )
    .map_err(|e| e.to_string())?;
    let (_, expected) = sign(signable, &params)
        .map_err(|e| e.to_string())?
        .into_parts();
    if expected != signature {
        return Err(format!("SignatureDoesNotMatch (signed headers {signed})"));
    }
    Ok(Verified {
        akid: akid.to_string(),
        service: service.to_string(),
        region: region.to_string(),
        signed_headers,
    })
}

/// Parses `20150830T123600Z`.
pub fn parse_amz_date(s: &str) -> Option<SystemTime> {
    if s.len() != 16 || &s[8..9] != "T" || &s[15..] != "Z" {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<u64>().ok();
    let (y, mo, d) = (n(0..4)?, n(4..6)?, n(6..8)?);
    let (h, mi, se) = (n(9..11)?, n(11..13)?, n(13..15)?);
    // days from civil (Howard Hinnant)
    let (y, mo) = if mo <= 2 {
        (y - 1, mo + 9)
    } else {
        (y, mo - 3)
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * mo + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(days * 86400 + h * 3600 + mi * 60 + se))
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
