//! Structured logs: subscriber set-up, the per-request access record, and
//! redaction of secrets in paths.
//!
//! Output is JSON (one object per line) when stdout is not a terminal and
//! human-readable otherwise; the configured [`LogFormat`] overrides the
//! choice. The level comes from `--log-level`, then `RUST_LOG`, then the
//! configuration's `log.level` ([`layered_filter`]), default `info`.
//!
//! Nothing secret is ever handed to `tracing`: paths are logged through
//! [`redact_query`] (which [`access_log`] does for every request), and no
//! header value is logged.

use std::borrow::Cow;
use std::io::IsTerminal;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use super::lines::{LineBuffers, THREAD_BUFFER_BYTES};

/// Target of the per-request access-log event.
pub const ACCESS_TARGET: &str = "signet::access";

/// What replaces a secret in logs.
pub const REDACTED: &str = "REDACTED";

/// Level used when neither `--log-level`, `RUST_LOG` nor the config file's
/// `log.level` is set.
pub const DEFAULT_LEVEL: &str = crate::config::defaults::LOG_LEVEL;

/// Errors setting up logging.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The `--log-level` flag or `RUST_LOG` is not a valid filter.
    #[error("{origin}: '{value}' is not a valid log filter ({reason}); use a level such as 'info' or directives such as 'info,signet=debug'")]
    InvalidLevel {
        /// Where the filter came from (`--log-level` or `RUST_LOG`).
        origin: &'static str,
        /// The rejected filter text.
        value: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A global subscriber was already installed in this process.
    #[error("logging is already initialised in this process")]
    AlreadyInitialised,
    /// The thread that writes log lines out could not start.
    #[error("cannot start the log writer thread: {0}")]
    Flusher(String),
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line (for log shippers).
    Json,
    /// Multi-line, human-readable output (for terminals).
    Pretty,
}

impl LogFormat {
    /// JSON unless stdout is a terminal.
    pub fn detect() -> Self {
        if std::io::stdout().is_terminal() {
            LogFormat::Pretty
        } else {
            LogFormat::Json
        }
    }
}

impl From<crate::config::LogFormat> for LogFormat {
    /// Resolves the configured format; `auto` becomes [`LogFormat::detect`].
    fn from(format: crate::config::LogFormat) -> Self {
        match format {
            crate::config::LogFormat::Json => LogFormat::Json,
            crate::config::LogFormat::Pretty => LogFormat::Pretty,
            crate::config::LogFormat::Auto => LogFormat::detect(),
        }
    }
}

/// The value of `RUST_LOG`, if set and not blank.
fn rust_log() -> Option<String> {
    std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty())
}

/// Builds the level filter from every place a level can come from, first
/// present wins: the `--log-level` flag, `RUST_LOG`, the config file's
/// `log.level`, then [`DEFAULT_LEVEL`]. The error names the origin of the
/// rejected filter.
///
/// ```
/// use signet::telemetry::logging::layered_filter;
/// let f = layered_filter(None, Some("debug"), Some("warn")).unwrap();
/// assert_eq!(f.to_string(), "debug");
/// ```
pub fn layered_filter(
    flag: Option<&str>,
    rust_log: Option<&str>,
    configured: Option<&str>,
) -> Result<EnvFilter, TelemetryError> {
    let (origin, value) = [
        ("--log-level", flag),
        ("RUST_LOG", rust_log),
        ("log.level", configured),
    ]
    .into_iter()
    .find_map(|(origin, v)| Some((origin, v?.trim())).filter(|(_, v)| !v.is_empty()))
    .unwrap_or(("default", DEFAULT_LEVEL));
    EnvFilter::try_new(value).map_err(|e| TelemetryError::InvalidLevel {
        origin,
        value: value.to_owned(),
        reason: e.to_string(),
    })
}

/// Builds a complete subscriber writing to `writer`, without installing it.
///
/// Tests use it with `tracing::subscriber::with_default` to capture what
/// signet logs; [`init_layered`] installs it globally over stdout.
pub fn subscriber<W>(
    filter: EnvFilter,
    format: LogFormat,
    writer: W,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let fmt_layer = match format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .event_format(super::json::JsonLines)
            .with_writer(writer)
            .boxed(),
        LogFormat::Pretty => tracing_subscriber::fmt::layer()
            .pretty()
            .with_writer(writer)
            .boxed(),
    };
    Box::new(tracing_subscriber::registry().with(fmt_layer).with(filter))
}

/// How often buffered log lines are written out.
pub const LOG_FLUSH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(50);

/// Keeps the log flusher running; dropping it writes out what is buffered.
/// Hold it until the process exits.
pub struct LogGuard {
    out: LineBuffers,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.out.flush();
    }
}

/// Installs the process-wide subscriber writing to stdout, with the level from
/// [`layered_filter`]: `flag` (`--log-level`), then `RUST_LOG`, then
/// `configured` (the config file's `log.level`), then [`DEFAULT_LEVEL`].
///
/// Lines go through per-thread [`LineBuffers`]; they appear within
/// [`LOG_FLUSH_INTERVAL`], and the returned guard flushes the rest on exit.
pub fn init_layered(
    flag: Option<&str>,
    configured: Option<&str>,
    format: LogFormat,
) -> Result<LogGuard, TelemetryError> {
    let filter = layered_filter(flag, rust_log().as_deref(), configured)?;
    let out = LineBuffers::new(std::io::stdout(), THREAD_BUFFER_BYTES);
    subscriber(filter, format, out.clone())
        .try_init()
        .map_err(|_| TelemetryError::AlreadyInitialised)?;
    if format == LogFormat::Json {
        // Set once: the subscriber above can only be installed once per process.
        let _ = ACCESS_LINES.set(out.clone());
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (flusher, stopped) = (out.clone(), stop.clone());
    std::thread::Builder::new()
        .name("signet-log-flush".into())
        .spawn(move || {
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(LOG_FLUSH_INTERVAL);
                flusher.flush();
            }
        })
        .map_err(|e| TelemetryError::Flusher(e.to_string()))?;
    Ok(LogGuard { out, stop })
}

/// Everything the access log says about one request.
#[derive(Clone, Debug, Default)]
pub struct AccessRecord<'a> {
    /// The client's address as [`ClientAddr`] shows it.
    pub client: &'a str,
    /// Route name from configuration (or `-` when no route matched).
    pub route: &'a str,
    /// AWS service the request was signed for (e.g. `s3`, `es`).
    pub service: &'a str,
    /// AWS region the request was signed for.
    pub region: &'a str,
    /// HTTP method.
    pub method: &'a str,
    /// Path and query as received; [`access_log`] redacts it before logging.
    pub path: &'a str,
    /// Status code sent to the client.
    pub status: u16,
    /// Upstream attempts made (0 if the request never left signet).
    pub attempts: u32,
    /// Time from receiving the request until the response ended (body included).
    pub latency: Duration,
    /// Request body bytes read from the client.
    pub bytes_in: u64,
    /// Response body bytes sent to the client.
    pub bytes_out: u64,
    /// AWS request id from the upstream response, if any (see
    /// [`upstream_request_id`]).
    pub upstream_request_id: Option<&'a str>,
}

/// Logs the one access line of a request (target [`ACCESS_TARGET`], level
/// INFO), with the path's presigning secrets redacted.
///
/// Under the process-wide JSON output the line is written straight into it;
/// otherwise (human-readable output, a subscriber a test installed) it is a
/// tracing event with the same fields, which the JSON formatter
/// renders identically.
pub fn access_log(rec: &AccessRecord<'_>) {
    if let Some(out) = ACCESS_LINES.get() {
        if tracing::enabled!(target: ACCESS_TARGET, tracing::Level::INFO) {
            write_access_line(out, rec);
        }
        return;
    }
    let path = redact_query(rec.path);
    tracing::info!(
        target: ACCESS_TARGET,
        client = rec.client,
        route = rec.route,
        service = rec.service,
        region = rec.region,
        method = rec.method,
        path = %path,
        status = rec.status,
        attempts = rec.attempts,
        latency_ms = rec.latency.as_secs_f64() * 1000.0,
        bytes_in = rec.bytes_in,
        bytes_out = rec.bytes_out,
        upstream_request_id = rec.upstream_request_id.unwrap_or("-"),
        "request"
    );
}

/// A client connection's address as access lines show it (`ip:port`, or `-`
/// when unknown), formatted once per connection and shared by its requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientAddr(std::sync::Arc<str>);

impl ClientAddr {
    /// The label of a connection from `addr`.
    pub fn new(addr: Option<std::net::SocketAddr>) -> Self {
        match addr {
            Some(addr) => Self(addr.to_string().into()),
            None => Self::default(),
        }
    }

    /// The label as written in the access line.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for ClientAddr {
    fn default() -> Self {
        Self("-".into())
    }
}

/// The process-wide JSON output [`init_layered`] installed, if any. Access
/// lines go into it directly: formatted by [`super::json::write_access_line`]
/// and appended to the thread's line buffer in one piece, without a tracing
/// event.
static ACCESS_LINES: std::sync::OnceLock<LineBuffers> = std::sync::OnceLock::new();

fn write_access_line(out: &LineBuffers, rec: &AccessRecord<'_>) {
    thread_local! {
        static LINE: std::cell::RefCell<String> = std::cell::RefCell::new(String::with_capacity(512));
    }
    let path = redact_query(rec.path);
    LINE.with_borrow_mut(|line| {
        line.clear();
        let now = std::time::SystemTime::now();
        if super::json::write_access_line(line, rec, &path, now).is_ok() {
            out.append(line.as_bytes());
        }
    });
}

/// The AWS request id of an upstream response: `x-amzn-RequestId` (most JSON
/// services), `x-amz-request-id` (S3) or `x-amzn-request-id`.
pub fn upstream_request_id(headers: &http::HeaderMap) -> Option<&str> {
    const NAMES: [http::HeaderName; 3] = [
        http::HeaderName::from_static("x-amzn-requestid"),
        http::HeaderName::from_static("x-amz-request-id"),
        http::HeaderName::from_static("x-amzn-request-id"),
    ];
    NAMES
        .iter()
        .find_map(|name| headers.get(name)?.to_str().ok())
}

/// Query parameters whose values are secret (compared case-insensitively):
/// the SigV4 presigning signature, credential scope (it names the access key)
/// and session token, the S3 Express session token of presigned URLs to zonal
/// endpoints, plus SigV2's signature.
const SECRET_QUERY_KEYS: [&str; 5] = [
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
    "x-amz-s3session-token",
    "signature",
];

fn is_secret_query_key(raw_key: &str) -> bool {
    let decoded = percent_encoding::percent_decode_str(raw_key).decode_utf8_lossy();
    SECRET_QUERY_KEYS
        .iter()
        .any(|k| decoded.eq_ignore_ascii_case(k))
}

/// Replaces the values of `X-Amz-Signature`, `X-Amz-Credential`,
/// `X-Amz-Security-Token`, `X-Amz-S3session-Token` (and SigV2 `Signature`)
/// query parameters with [`REDACTED`]. Keys match case-insensitively, also when percent-encoded.
/// Borrows when there is nothing to redact.
///
/// ```
/// use signet::telemetry::logging::redact_query;
/// assert_eq!(
///     redact_query("/b/k?x-id=GetObject&X-Amz-Signature=abc123"),
///     "/b/k?x-id=GetObject&X-Amz-Signature=REDACTED"
/// );
/// assert_eq!(redact_query("/plain?a=1"), "/plain?a=1");
/// ```
pub fn redact_query(path_and_query: &str) -> Cow<'_, str> {
    let Some((path, query)) = path_and_query.split_once('?') else {
        return Cow::Borrowed(path_and_query);
    };
    let needs = query.split('&').any(|pair| {
        let key = pair.split_once('=').map_or(pair, |(k, _)| k);
        is_secret_query_key(key) && pair.contains('=')
    });
    if !needs {
        return Cow::Borrowed(path_and_query);
    }
    let mut out = String::with_capacity(path_and_query.len());
    out.push_str(path);
    out.push('?');
    for (i, pair) in query.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        match pair.split_once('=') {
            Some((key, _)) if is_secret_query_key(key) => {
                out.push_str(key);
                out.push('=');
                out.push_str(REDACTED);
            }
            _ => out.push_str(pair),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    /// Collects everything written by a subscriber.
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl Capture {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    impl Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Capture {
        type Writer = Capture;
        fn make_writer(&'w self) -> Self::Writer {
            self.clone()
        }
    }

    fn capture(level: &str, format: LogFormat, f: impl FnOnce()) -> String {
        let cap = Capture::default();
        let sub = subscriber(EnvFilter::try_new(level).unwrap(), format, cap.clone());
        tracing::subscriber::with_default(sub, f);
        cap.text()
    }

    const SIGNATURE: &str = "fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024";
    const CREDENTIAL: &str = "AKIDEXAMPLE%2F20150830%2Fus-east-1%2Fservice%2Faws4_request";
    const TOKEN: &str = "IQoJb3JpZ2luX2VjEXAMPLETOKEN";
    const S3_SESSION_TOKEN: &str = "AgAAAExpressZonalSessionEXAMPLE";

    #[test]
    fn redacts_presigned_query_values_and_keeps_the_rest() {
        let input = format!(
            "/bucket/key?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={CREDENTIAL}\
             &X-Amz-Date=20150830T123600Z&X-Amz-Security-Token={TOKEN}&X-Amz-Signature={SIGNATURE}"
        );
        let out = redact_query(&input);
        assert_eq!(
            out,
            "/bucket/key?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=REDACTED\
             &X-Amz-Date=20150830T123600Z&X-Amz-Security-Token=REDACTED&X-Amz-Signature=REDACTED"
        );
    }

    #[test]
    fn redacts_the_session_token_of_presigned_s3_express_urls() {
        let input = format!(
            "/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={CREDENTIAL}\
             &X-Amz-Date=20150830T123600Z&X-Amz-S3session-Token={S3_SESSION_TOKEN}\
             &X-Amz-Signature={SIGNATURE}"
        );
        assert_eq!(
            redact_query(&input),
            "/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=REDACTED\
             &X-Amz-Date=20150830T123600Z&X-Amz-S3session-Token=REDACTED\
             &X-Amz-Signature=REDACTED"
        );
    }

    #[test]
    fn redacts_query_keys_in_any_case_and_percent_encoded() {
        let input = format!(
            "/p?x-amz-signature={SIGNATURE}&X%2DAmz%2DSecurity%2DToken={TOKEN}\
             &x-amz-s3session-token={S3_SESSION_TOKEN}&X%2Damz%2DS3SESSION%2Dtoken={S3_SESSION_TOKEN}&a=b"
        );
        let out = redact_query(&input);
        assert!(
            !out.contains(SIGNATURE) && !out.contains(TOKEN) && !out.contains(S3_SESSION_TOKEN),
            "{out}"
        );
        assert!(out.ends_with("&a=b"));
    }

    #[test]
    fn leaves_paths_without_secrets_borrowed() {
        for input in [
            "/",
            "/a/b",
            "/a?b=c&d",
            "/a?signed=1&x-amz-date=2015",
            "/a?X-Amz-Signature",
        ] {
            assert!(matches!(redact_query(input), Cow::Borrowed(s) if s == input));
        }
    }

    #[test]
    fn client_addresses_read_as_ip_and_port_or_a_dash() {
        let v4 = ClientAddr::new(Some("10.0.3.7:51234".parse().unwrap()));
        assert_eq!(v4.as_str(), "10.0.3.7:51234");
        let v6 = ClientAddr::new(Some("[2001:db8::7]:443".parse().unwrap()));
        assert_eq!(v6.as_str(), "[2001:db8::7]:443");
        assert_eq!(ClientAddr::new(None).as_str(), "-");
    }

    #[test]
    fn access_log_emits_one_json_event_with_every_field_and_no_secrets() {
        let out = capture("trace", LogFormat::Json, || {
            access_log(&AccessRecord {
                client: "10.1.2.3:5678",
                route: "s3",
                service: "s3",
                region: "eu-west-1",
                method: "GET",
                path: &format!(
                    "/b/k?X-Amz-Signature={SIGNATURE}&X-Amz-Security-Token={TOKEN}\
                     &X-Amz-S3session-Token={S3_SESSION_TOKEN}"
                ),
                status: 200,
                attempts: 2,
                latency: Duration::from_millis(15),
                bytes_in: 0,
                bytes_out: 42,
                upstream_request_id: Some("REQ123"),
            })
        });
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 1, "{out}");
        let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(v["target"], ACCESS_TARGET);
        assert_eq!(v["client"], "10.1.2.3:5678");
        assert_eq!(v["route"], "s3");
        assert_eq!(v["region"], "eu-west-1");
        assert_eq!(v["method"], "GET");
        assert_eq!(v["status"], 200);
        assert_eq!(v["attempts"], 2);
        assert_eq!(v["latency_ms"], 15.0);
        assert_eq!(v["bytes_out"], 42);
        assert_eq!(v["upstream_request_id"], "REQ123");
        assert_eq!(
            v["path"],
            "/b/k?X-Amz-Signature=REDACTED&X-Amz-Security-Token=REDACTED\
             &X-Amz-S3session-Token=REDACTED"
        );
        assert!(
            !out.contains(SIGNATURE) && !out.contains(TOKEN) && !out.contains(S3_SESSION_TOKEN)
        );
    }

    #[test]
    fn subscriber_writes_json_lines_to_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signet.log");
        let file = std::fs::File::create(&path).unwrap();
        let sub = subscriber(
            EnvFilter::try_new("trace").unwrap(),
            LogFormat::Json,
            Mutex::new(file),
        );
        tracing::subscriber::with_default(sub, || {
            access_log(&AccessRecord {
                route: "file",
                path: &format!("/k?X-Amz-Security-Token={TOKEN}"),
                ..AccessRecord::default()
            });
            tracing::debug!(target: "signet::test", detail = "second line");
        });
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(lines[0]["route"], "file");
        assert_eq!(lines[1]["detail"], "second line");
        assert!(!text.contains(TOKEN));
    }

    #[test]
    fn filter_drops_access_events_below_its_level() {
        let out = capture("warn", LogFormat::Json, || {
            access_log(&AccessRecord::default());
        });
        assert!(out.is_empty(), "{out}");
    }

    #[test]
    fn pretty_format_is_not_json() {
        let out = capture("info", LogFormat::Pretty, || {
            access_log(&AccessRecord {
                route: "dev",
                ..AccessRecord::default()
            })
        });
        assert!(out.contains("dev"));
        assert!(serde_json::from_str::<serde_json::Value>(out.trim()).is_err());
    }

    #[test]
    fn level_precedence_is_flag_then_rust_log_then_config_then_default() {
        let show = |f: EnvFilter| f.to_string();
        assert_eq!(
            show(layered_filter(Some("trace"), Some("debug"), Some("warn")).unwrap()),
            "trace"
        );
        assert_eq!(
            show(layered_filter(None, Some("debug"), Some("warn")).unwrap()),
            "debug"
        );
        assert_eq!(
            show(layered_filter(None, Some("  "), Some("warn")).unwrap()),
            "warn"
        );
        assert_eq!(
            show(layered_filter(None, None, None).unwrap()),
            DEFAULT_LEVEL
        );
        let err = layered_filter(None, None, Some("info,=[")).unwrap_err();
        assert!(err.to_string().starts_with("log.level:"), "{err}");
    }

    #[test]
    fn finds_upstream_request_id_in_s3_and_json_service_headers() {
        let mut h = http::HeaderMap::new();
        h.insert("x-amz-request-id", "S3ID".parse().unwrap());
        assert_eq!(upstream_request_id(&h), Some("S3ID"));
        h.insert("x-amzn-RequestId", "JSONID".parse().unwrap());
        assert_eq!(upstream_request_id(&h), Some("JSONID"));
        assert_eq!(upstream_request_id(&http::HeaderMap::new()), None);
    }
}
