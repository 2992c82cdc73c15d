//! Prometheus metrics for one running signet.
//!
//! [`Metrics`] owns its own [`Registry`] (no process-wide global), so several
//! signet instances can live in one test process without sharing counters.
//! The proxy and the upstream stack call the recording methods; the admin
//! listener calls [`Metrics::encode`] on each scrape.
//!
//! Label values are route names, HTTP methods, status codes, retry reasons,
//! timeout kinds and credential source names only: never anything taken from
//! a request's headers, query or body, so no secret can reach a label.
//!
//! ```
//! use std::time::Duration;
//! use signet::telemetry::metrics::{self, Metrics};
//!
//! let m = Metrics::new();
//! {
//!     let route = m.route("s3");
//!     let _in_flight = route.started();
//!     route.finished("GET", 200, Duration::from_millis(12), 0, 512);
//! }
//! let text = m.encode();
//! let value = metrics::sample(
//!     &text,
//!     metrics::names::REQUESTS_TOTAL,
//!     &[("route", "s3"), ("method", "GET"), ("status", "200")],
//! );
//! assert_eq!(value, Some(1.0));
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// Content type of the text [`Metrics::encode`] produces (OpenMetrics text,
/// which Prometheus scrapes natively).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Exposed metric family names, as they appear in the scrape output
/// (counters carry their `_total` suffix).
pub mod names {
    /// Counter: requests answered, by `route`, `method` and `status`.
    pub const REQUESTS_TOTAL: &str = "signet_requests_total";
    /// Histogram: request duration in seconds, by `route`.
    pub const REQUEST_DURATION_SECONDS: &str = "signet_request_duration_seconds";
    /// Gauge: requests in flight, by `route`.
    pub const REQUESTS_IN_FLIGHT: &str = "signet_requests_in_flight";
    /// Counter: request body bytes read from clients, by `route`.
    pub const BODY_BYTES_IN_TOTAL: &str = "signet_body_bytes_in_total";
    /// Counter: response body bytes written to clients, by `route`.
    pub const BODY_BYTES_OUT_TOTAL: &str = "signet_body_bytes_out_total";
    /// Counter: requests that could not be signed, by `route`.
    pub const SIGNING_ERRORS_TOTAL: &str = "signet_signing_errors_total";
    /// Counter: upstream attempts (first tries and retries), by `route`.
    pub const UPSTREAM_ATTEMPTS_TOTAL: &str = "signet_upstream_attempts_total";
    /// Counter: upstream retries, by `route` and `reason`.
    pub const UPSTREAM_RETRIES_TOTAL: &str = "signet_upstream_retries_total";
    /// Counter: retries refused because the retry budget was spent, by `route`.
    pub const RETRY_BUDGET_EXHAUSTED_TOTAL: &str = "signet_upstream_retry_budget_exhausted_total";
    /// Histogram: backoff delay before each retry, in seconds, by `route`.
    pub const UPSTREAM_BACKOFF_SECONDS: &str = "signet_upstream_backoff_seconds";
    /// Counter: timeouts, by `route` and `kind`.
    pub const TIMEOUTS_TOTAL: &str = "signet_timeouts_total";
    /// Counter: requests shed (rejected for overload), by `route`.
    pub const SHED_REQUESTS_TOTAL: &str = "signet_shed_requests_total";
    /// Counter: S3 Express CreateSession outcomes, by `route` and `outcome`
    /// (`created` or `failed`).
    pub const S3EXPRESS_SESSIONS_TOTAL: &str = "signet_s3express_sessions_total";
    /// Gauge: seconds until the current credentials expire, by `source`.
    pub const CREDENTIALS_EXPIRY_SECONDS: &str = "signet_credentials_expiry_seconds";
    /// Counter: failed credential refreshes, by `source`.
    pub const CREDENTIALS_REFRESH_FAILURES_TOTAL: &str =
        "signet_credentials_refresh_failures_total";
    /// Gauge: open client connections.
    pub const CLIENT_CONNECTIONS: &str = "signet_client_connections";
    /// Counter: client connections closed for staying idle.
    pub const CLIENT_CONNECTIONS_CLOSED_IDLE_TOTAL: &str =
        "signet_client_connections_closed_idle_total";
    /// Info: the running signet version.
    pub const BUILD_INFO: &str = "signet_build_info";
}

/// Upper bounds (seconds) of the request duration histogram buckets:
/// 1 ms to about 33 s, doubling.
fn duration_buckets() -> impl Iterator<Item = f64> {
    prometheus_client::metrics::histogram::exponential_buckets(0.001, 2.0, 16)
}

fn new_duration_histogram() -> Histogram {
    Histogram::new(duration_buckets())
}

/// Backoff delays: 5 ms to about 20 s, doubling.
fn new_backoff_histogram() -> Histogram {
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.005, 2.0, 13,
    ))
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RetryLabels {
    route: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TimeoutLabels {
    route: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SessionLabels {
    route: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    source: String,
}

/// The `method` label: standard methods as themselves, anything else `OTHER`.
fn method_label(method: &str) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE",
    ];
    KNOWN
        .iter()
        .find(|m| **m == method)
        .copied()
        .unwrap_or("OTHER")
}

fn route(route: &str) -> RouteLabels {
    RouteLabels {
        route: route.to_owned(),
    }
}

/// The state of one credential source at scrape time, as the admin listener
/// feeds it to [`Metrics::set_credentials`].
#[derive(Clone, Debug, PartialEq)]
pub struct CredentialGauge {
    /// The credential source's name (from configuration), used as the
    /// `source` label.
    pub source: String,
    /// Seconds until the current credentials expire; negative once expired;
    /// `None` for credentials without an expiry (no sample is exported).
    pub seconds_until_expiry: Option<f64>,
    /// Refresh failures since start (monotonic).
    pub refresh_failures: u64,
}

/// Exports the latest [`CredentialGauge`]s at scrape time, so sources that
/// disappear on reload disappear from the output too.
#[derive(Debug, Default)]
struct CredentialsCollector {
    sources: Arc<RwLock<Vec<CredentialGauge>>>,
}

impl Collector for CredentialsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let sources = match self.sources.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        {
            let mut family = encoder.encode_descriptor(
                "signet_credentials_expiry_seconds",
                "Seconds until the current credentials of each source expire (negative once expired).",
                None,
                prometheus_client::metrics::MetricType::Gauge,
            )?;
            for s in &sources {
                if let Some(secs) = s.seconds_until_expiry {
                    let labels = SourceLabels {
                        source: s.source.clone(),
                    };
                    ConstGauge::new(secs).encode(family.encode_family(&labels)?)?;
                }
            }
        }
        let mut family = encoder.encode_descriptor(
            "signet_credentials_refresh_failures",
            "Failed credential refreshes of each source since start.",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for s in &sources {
            let labels = SourceLabels {
                source: s.source.clone(),
            };
            ConstCounter::new(s.refresh_failures).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// All of signet's metrics, over one private Prometheus registry.
///
/// Cheap to share: wrap it in an `Arc` and hand it to the proxy, the upstream
/// stack and the admin listener.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
    in_flight: Family<RouteLabels, Gauge>,
    bytes_in: Family<RouteLabels, Counter>,
    bytes_out: Family<RouteLabels, Counter>,
    signing_errors: Family<RouteLabels, Counter>,
    attempts: Family<RouteLabels, Counter>,
    retries: Family<RetryLabels, Counter>,
    budget_exhausted: Family<RouteLabels, Counter>,
    backoff: Family<RouteLabels, Histogram, fn() -> Histogram>,
    timeouts: Family<TimeoutLabels, Counter>,
    shed: Family<RouteLabels, Counter>,
    s3express_sessions: Family<SessionLabels, Counter>,
    client_connections: Gauge,
    closed_idle: Counter,
    credentials: Arc<RwLock<Vec<CredentialGauge>>>,
    /// Tells this instance's handles from another's in the per-thread caches.
    id: u64,
}

/// One route's series, looked up once: recording through these handles takes
/// no label allocation and no family lookup (except the request counter,
/// whose method and status vary).
#[derive(Debug)]
pub struct RouteMetrics {
    route: String,
    requests: Family<RequestLabels, Counter>,
    /// This route's request counters by (method, status), found without hashing.
    by_status: RwLock<Vec<(&'static str, u16, Counter)>>,
    duration: Histogram,
    in_flight: Gauge,
    bytes_in: Counter,
    bytes_out: Counter,
    attempts: Counter,
}

impl RouteMetrics {
    /// Marks a request as started; the in-flight gauge drops again when the
    /// returned guard is dropped.
    pub fn started(&self) -> InFlightGuard {
        self.in_flight.inc();
        InFlightGuard {
            gauge: self.in_flight.clone(),
        }
    }

    /// Records a finished request: status, duration and body bytes both ways.
    ///
    /// Methods outside the standard set are counted as `OTHER`, so a client
    /// inventing methods cannot grow the number of series without bound.
    pub fn finished(
        &self,
        method: &str,
        status: u16,
        elapsed: Duration,
        bytes_in: u64,
        bytes_out: u64,
    ) {
        let method = method_label(method);
        let known = |(m, s, _): &&(&str, u16, Counter)| *m == method && *s == status;
        let counted = match self.by_status.read() {
            Ok(counters) => counters.iter().find(known).map(|(_, _, c)| c.inc()),
            Err(_) => None,
        };
        if counted.is_none() {
            let counter = self
                .requests
                .get_or_create(&RequestLabels {
                    route: self.route.clone(),
                    method,
                    status,
                })
                .clone();
            counter.inc();
            if let Ok(mut counters) = self.by_status.write() {
                if !counters.iter().any(|c| known(&c)) {
                    counters.push((method, status, counter));
                }
            }
        }
        self.duration.observe(elapsed.as_secs_f64());
        self.bytes_in.inc_by(bytes_in);
        self.bytes_out.inc_by(bytes_out);
    }
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates a fresh set of metrics with every family registered (families
    /// without samples still show their `# HELP`/`# TYPE` lines).
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "signet_requests",
            "Requests answered, by route, method and response status.",
            requests.clone(),
        );
        let duration: Family<RouteLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(new_duration_histogram);
        registry.register(
            "signet_request_duration_seconds",
            "Time from receiving a request until its response ended (body included), by route.",
            duration.clone(),
        );
        let in_flight = Family::<RouteLabels, Gauge>::default();
        registry.register(
            "signet_requests_in_flight",
            "Requests currently being handled, by route.",
            in_flight.clone(),
        );
        let bytes_in = Family::<RouteLabels, Counter>::default();
        registry.register(
            "signet_body_bytes_in",
            "Request body bytes read from clients, by route.",
            bytes_in.clone(),
        );
        let bytes_out = Family::<RouteLabels, Counter>::default();
        registry.register(
            "signet_body_bytes_out",
            "Response body bytes written to clients, by route.",
            bytes_out.clone(),
        );
        let signing_errors = Family::<RouteLabels, Counter>::default();
        registry.register(
            "signet_signing_errors",
            "Requests that could not be signed, by route.",
            signing_errors.clone(),
        );
        let attempts = Family::<RouteLabels, Counter>::default();
        registry.register(
            "signet_upstream_attempts",
            "Upstream attempts, first tries and retries, by route.",
            attempts.clone(),
        );
        let retries = Family::<RetryLabels, Counter>::default();
        registry.register(
            "signet_upstream_retries",
            "Upstream retries, by route and reason.",
            retries.clone(),
        );
        let budget_exhausted = Family::<RouteLabels, Counter>::default();
        registry.register(
            "signet_upstream_retry_budget_exhausted",
            "Retries not made because the route's retry budget was spent, by route.",
            budget_exhausted.clone(),
        );
        let backoff: Family<RouteLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(new_backoff_histogram);
        registry.register(
            "signet_upstream_backoff_seconds",
            "Delay chosen before each upstream retry, by route.",
            backoff.clone(),
        );
        let timeouts = Family::<TimeoutLabels, Counter>::default();
        registry.register(
            "signet_timeouts",
            "Timeouts, by route and kind.",
            timeouts.clone(),
        );
        let shed = Family::<RouteLabels, Counter>::default();
        registry.register(
            "signet_shed_requests",
            "Requests rejected because the route or process was overloaded, by route.",
            shed.clone(),
        );
        let s3express_sessions = Family::<SessionLabels, Counter>::default();
        registry.register(
            "signet_s3express_sessions",
            "S3 Express sessions signet asked for with CreateSession, by route and outcome (created, failed).",
            s3express_sessions.clone(),
        );
        let client_connections = Gauge::default();
        registry.register(
            "signet_client_connections",
            "Open client connections.",
            client_connections.clone(),
        );
        let closed_idle = Counter::default();
        registry.register(
            "signet_client_connections_closed_idle",
            "Client connections closed for staying idle (connections.idle_timeout).",
            closed_idle.clone(),
        );
        let collector = CredentialsCollector::default();
        let credentials = Arc::clone(&collector.sources);
        registry.register_collector(Box::new(collector));
        registry.register(
            "signet_build",
            "The running signet version.",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        Self {
            registry,
            requests,
            duration,
            in_flight,
            bytes_in,
            bytes_out,
            signing_errors,
            attempts,
            retries,
            budget_exhausted,
            backoff,
            timeouts,
            shed,
            s3express_sessions,
            client_connections,
            closed_idle,
            credentials,
            id: {
                static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
                NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            },
        }
    }

    /// The handles of `route`'s series.
    ///
    /// Each thread keeps its own handles (made on its first call for a route):
    /// the series are shared, but a request's clones and drops of its handle
    /// stay on the thread serving it.
    pub fn route(&self, route: &str) -> Arc<RouteMetrics> {
        type ByRoute = HashMap<Box<str>, Arc<RouteMetrics>, foldhash::fast::RandomState>;
        thread_local! {
            static HANDLES: std::cell::RefCell<HashMap<u64, ByRoute, foldhash::fast::RandomState>> =
                std::cell::RefCell::default();
        }
        HANDLES.with_borrow_mut(|handles| {
            let handles = handles.entry(self.id).or_default();
            if let Some(found) = handles.get(route) {
                return found.clone();
            }
            let labels = self::route(route);
            let made = Arc::new(RouteMetrics {
                route: route.to_owned(),
                requests: self.requests.clone(),
                by_status: RwLock::default(),
                duration: self.duration.get_or_create(&labels).clone(),
                in_flight: self.in_flight.get_or_create(&labels).clone(),
                bytes_in: self.bytes_in.get_or_create(&labels).clone(),
                bytes_out: self.bytes_out.get_or_create(&labels).clone(),
                attempts: self.attempts.get_or_create(&labels).clone(),
            });
            handles.insert(route.into(), made.clone());
            made
        })
    }

    /// Renders every metric in the text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; an error here would only come
        // from an encoder bug, and a partial scrape is still better than none.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Counts an open client connection until the returned guard is dropped.
    pub fn client_connection(&self) -> InFlightGuard {
        self.client_connections.inc();
        InFlightGuard {
            gauge: self.client_connections.clone(),
        }
    }

    /// Counts `closed` client connections closed for staying idle.
    pub fn client_connections_closed_idle(&self, closed: u64) {
        self.closed_idle.inc_by(closed);
    }

    /// Counts a request on `route` that could not be signed.
    pub fn signing_error(&self, route: &str) {
        self.signing_errors.get_or_create(&self::route(route)).inc();
    }

    /// Counts one upstream attempt (first try or retry) on `route`.
    pub fn upstream_attempt(&self, route: &str) {
        self.route(route).attempts.inc();
    }

    /// Counts one upstream retry on `route` for `reason` (e.g. `throttled`,
    /// `5xx`, `connect`).
    pub fn upstream_retry(&self, route: &str, reason: &str) {
        self.retries
            .get_or_create(&RetryLabels {
                route: route.to_owned(),
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Counts a retry on `route` not made because its retry budget was spent.
    pub fn retry_budget_exhausted(&self, route: &str) {
        self.budget_exhausted
            .get_or_create(&self::route(route))
            .inc();
    }

    /// Records the backoff delay chosen before a retry on `route`.
    pub fn upstream_backoff(&self, route: &str, delay: Duration) {
        self.backoff
            .get_or_create(&self::route(route))
            .observe(delay.as_secs_f64());
    }

    /// Counts a timeout of `kind` (e.g. `connect`, `attempt`, `request`) on `route`.
    pub fn timeout(&self, route: &str, kind: &str) {
        self.timeouts
            .get_or_create(&TimeoutLabels {
                route: route.to_owned(),
                kind: kind.to_owned(),
            })
            .inc();
    }

    /// Counts a request on `route` rejected because of overload.
    pub fn request_shed(&self, route: &str) {
        self.shed.get_or_create(&self::route(route)).inc();
    }

    /// Counts an S3 Express CreateSession on `route` that `created` a session
    /// or failed.
    pub fn s3express_session(&self, route: &str, created: bool) {
        self.s3express_sessions
            .get_or_create(&SessionLabels {
                route: route.to_owned(),
                outcome: if created { "created" } else { "failed" },
            })
            .inc();
    }

    /// Replaces the per-source credential state exported on the next scrape.
    pub fn set_credentials(&self, sources: &[CredentialGauge]) {
        match self.credentials.write() {
            Ok(mut guard) => *guard = sources.to_vec(),
            Err(poisoned) => *poisoned.into_inner() = sources.to_vec(),
        }
    }
}

/// The upstream stack reports attempts, retries, budget exhaustion, timeouts
/// and shedding here.
impl crate::upstream::UpstreamObserver for Metrics {
    fn attempt(&self, route: &str) {
        self.upstream_attempt(route);
    }

    fn retry(&self, route: &str, reason: &str) {
        self.upstream_retry(route, reason);
    }

    fn budget_exhausted(&self, route: &str) {
        self.retry_budget_exhausted(route);
    }

    fn timeout(&self, route: &str, kind: &str) {
        Metrics::timeout(self, route, kind);
    }

    fn shed(&self, route: &str) {
        self.request_shed(route);
    }

    fn backoff(&self, route: &str, delay: Duration) {
        self.upstream_backoff(route, delay);
    }
}

/// Keeps a request counted in `signet_requests_in_flight` until dropped.
#[must_use = "the request stops counting as in flight as soon as the guard is dropped"]
pub struct InFlightGuard {
    gauge: Gauge<i64, std::sync::atomic::AtomicI64>,
}

impl fmt::Debug for InFlightGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InFlightGuard").finish_non_exhaustive()
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

/// Reads one sample's value from text exposition output: the line for metric
/// `name` (full sample name, e.g. `signet_requests_total` or
/// `signet_request_duration_seconds_count`) whose labels include every pair in
/// `labels` (extra labels on the line are allowed). Returns `None` if no line
/// matches. Meant for tests and tools that check a scrape.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (sample_name, label_text) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.strip_suffix('}')?),
                None => (series, ""),
            };
            if sample_name != name {
                return None;
            }
            let present = parse_labels(label_text);
            let all = labels
                .iter()
                .all(|(k, v)| present.iter().any(|(pk, pv)| pk == k && pv == v));
            if !all {
                return None;
            }
            value.parse::<f64>().ok()
        })
}

/// Splits `a="x",b="y"` into pairs, undoing the exposition format's escapes.
fn parse_labels(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some((key, after)) = rest.split_once("=\"") {
        let key = key.trim_start_matches(',').trim().to_owned();
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, other)) => value.push(other),
                    None => {}
                },
                '"' => {
                    end = i + 1;
                    break;
                }
                other => value.push(other),
            }
        }
        out.push((key, value));
        rest = &after[end..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(m: &Metrics, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        sample(&m.encode(), name, labels)
    }

    #[test]
    fn request_counter_increases_per_route_method_and_status() {
        let m = Metrics::new();
        let labels = [("route", "s3"), ("method", "GET"), ("status", "200")];
        assert_eq!(value(&m, names::REQUESTS_TOTAL, &labels), None);
        m.route("s3")
            .finished("GET", 200, Duration::from_millis(5), 0, 0);
        assert_eq!(value(&m, names::REQUESTS_TOTAL, &labels), Some(1.0));
        m.route("s3")
            .finished("GET", 200, Duration::from_millis(5), 0, 0);
        m.route("s3")
            .finished("GET", 503, Duration::from_millis(5), 0, 0);
        assert_eq!(value(&m, names::REQUESTS_TOTAL, &labels), Some(2.0));
        assert_eq!(
            value(
                &m,
                names::REQUESTS_TOTAL,
                &[("route", "s3"), ("method", "GET"), ("status", "503")]
            ),
            Some(1.0)
        );
    }

    #[test]
    fn unknown_methods_share_one_other_series() {
        let m = Metrics::new();
        for method in ["FOO", "BAR", "get"] {
            m.route("r").finished(method, 405, Duration::ZERO, 0, 0);
        }
        m.route("r").finished("PATCH", 200, Duration::ZERO, 0, 0);
        let text = m.encode();
        let other = [("route", "r"), ("method", "OTHER"), ("status", "405")];
        assert_eq!(sample(&text, names::REQUESTS_TOTAL, &other), Some(3.0));
        assert!(!text.contains("FOO") && !text.contains("BAR"));
        assert_eq!(
            sample(
                &text,
                names::REQUESTS_TOTAL,
                &[("route", "r"), ("method", "PATCH")]
            ),
            Some(1.0)
        );
    }

    #[test]
    fn duration_histogram_counts_and_sums_observations() {
        let m = Metrics::new();
        m.route("es")
            .finished("POST", 200, Duration::from_millis(250), 0, 0);
        m.route("es")
            .finished("POST", 200, Duration::from_millis(750), 0, 0);
        let text = m.encode();
        let count = sample(
            &text,
            "signet_request_duration_seconds_count",
            &[("route", "es")],
        );
        let sum = sample(
            &text,
            "signet_request_duration_seconds_sum",
            &[("route", "es")],
        );
        assert_eq!(count, Some(2.0));
        assert!((sum.unwrap_or_default() - 1.0).abs() < 1e-9, "sum {sum:?}");
        // 0.25 s is above the 0.128 bucket and within the 0.256 one.
        let le = |b: &str| {
            sample(
                &text,
                "signet_request_duration_seconds_bucket",
                &[("route", "es"), ("le", b)],
            )
        };
        assert_eq!(le("0.128"), Some(0.0));
        assert_eq!(le("0.256"), Some(1.0));
        assert_eq!(le("+Inf"), Some(2.0));
    }

    #[test]
    fn in_flight_gauge_drops_when_guard_is_dropped() {
        let m = Metrics::new();
        let a = m.route("r").started();
        let b = m.route("r").started();
        assert_eq!(
            value(&m, names::REQUESTS_IN_FLIGHT, &[("route", "r")]),
            Some(2.0)
        );
        drop(a);
        assert_eq!(
            value(&m, names::REQUESTS_IN_FLIGHT, &[("route", "r")]),
            Some(1.0)
        );
        drop(b);
        assert_eq!(
            value(&m, names::REQUESTS_IN_FLIGHT, &[("route", "r")]),
            Some(0.0)
        );
    }

    #[test]
    fn client_connections_are_counted_open_and_closed_idle() {
        let m = Metrics::new();
        let a = m.client_connection();
        let b = m.client_connection();
        assert_eq!(value(&m, names::CLIENT_CONNECTIONS, &[]), Some(2.0));
        drop(a);
        m.client_connections_closed_idle(1);
        assert_eq!(value(&m, names::CLIENT_CONNECTIONS, &[]), Some(1.0));
        drop(b);
        m.client_connections_closed_idle(2);
        assert_eq!(value(&m, names::CLIENT_CONNECTIONS, &[]), Some(0.0));
        assert_eq!(
            value(&m, names::CLIENT_CONNECTIONS_CLOSED_IDLE_TOTAL, &[]),
            Some(3.0)
        );
    }

    #[test]
    fn body_bytes_and_signing_errors_accumulate_by_route() {
        let m = Metrics::new();
        m.route("r").finished("PUT", 200, Duration::ZERO, 100, 7);
        m.route("r").finished("PUT", 200, Duration::ZERO, 23, 0);
        m.signing_error("r");
        m.signing_error("other");
        assert_eq!(
            value(&m, names::BODY_BYTES_IN_TOTAL, &[("route", "r")]),
            Some(123.0)
        );
        assert_eq!(
            value(&m, names::BODY_BYTES_OUT_TOTAL, &[("route", "r")]),
            Some(7.0)
        );
        assert_eq!(
            value(&m, names::SIGNING_ERRORS_TOTAL, &[("route", "r")]),
            Some(1.0)
        );
        assert_eq!(
            value(&m, names::SIGNING_ERRORS_TOTAL, &[("route", "other")]),
            Some(1.0)
        );
    }

    #[test]
    fn s3express_sessions_are_counted_by_route_and_outcome() {
        let m = Metrics::new();
        m.s3express_session("zonal", true);
        m.s3express_session("zonal", true);
        m.s3express_session("zonal", false);
        let count = |outcome| {
            value(
                &m,
                names::S3EXPRESS_SESSIONS_TOTAL,
                &[("route", "zonal"), ("outcome", outcome)],
            )
        };
        assert_eq!(count("created"), Some(2.0));
        assert_eq!(count("failed"), Some(1.0));
    }

    #[test]
    fn upstream_attempts_retries_timeouts_and_shedding_are_labelled() {
        let m = Metrics::new();
        m.upstream_attempt("r");
        m.upstream_attempt("r");
        m.upstream_retry("r", "throttled");
        m.retry_budget_exhausted("r");
        m.timeout("r", "attempt");
        m.request_shed("r");
        let text = m.encode();
        assert_eq!(
            sample(&text, names::UPSTREAM_ATTEMPTS_TOTAL, &[("route", "r")]),
            Some(2.0)
        );
        assert_eq!(
            sample(
                &text,
                names::UPSTREAM_RETRIES_TOTAL,
                &[("route", "r"), ("reason", "throttled")]
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                names::RETRY_BUDGET_EXHAUSTED_TOTAL,
                &[("route", "r")]
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                names::TIMEOUTS_TOTAL,
                &[("route", "r"), ("kind", "attempt")]
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(&text, names::SHED_REQUESTS_TOTAL, &[("route", "r")]),
            Some(1.0)
        );
    }

    #[test]
    fn credential_gauges_reflect_the_latest_snapshot_only() {
        let m = Metrics::new();
        m.set_credentials(&[
            CredentialGauge {
                source: "irsa".into(),
                seconds_until_expiry: Some(1800.5),
                refresh_failures: 2,
            },
            CredentialGauge {
                source: "static".into(),
                seconds_until_expiry: None,
                refresh_failures: 0,
            },
        ]);
        let text = m.encode();
        assert_eq!(
            sample(
                &text,
                names::CREDENTIALS_EXPIRY_SECONDS,
                &[("source", "irsa")]
            ),
            Some(1800.5)
        );
        assert_eq!(
            sample(
                &text,
                names::CREDENTIALS_EXPIRY_SECONDS,
                &[("source", "static")]
            ),
            None,
            "credentials without expiry export no expiry sample"
        );
        assert_eq!(
            sample(
                &text,
                names::CREDENTIALS_REFRESH_FAILURES_TOTAL,
                &[("source", "irsa")]
            ),
            Some(2.0)
        );
        m.set_credentials(&[CredentialGauge {
            source: "static".into(),
            seconds_until_expiry: None,
            refresh_failures: 0,
        }]);
        let text = m.encode();
        assert_eq!(
            sample(
                &text,
                names::CREDENTIALS_REFRESH_FAILURES_TOTAL,
                &[("source", "irsa")]
            ),
            None,
            "a source that went away is no longer exported"
        );
    }

    #[test]
    fn upstream_observer_calls_move_the_upstream_families() {
        use crate::upstream::UpstreamObserver;
        let m = Metrics::new();
        let observer: &dyn UpstreamObserver = &m;
        observer.attempt("r");
        observer.retry("r", "SlowDown");
        observer.budget_exhausted("r");
        observer.timeout("r", "first_byte");
        observer.shed("r");
        observer.backoff("r", Duration::from_millis(300));
        let text = m.encode();
        assert_eq!(
            sample(
                &text,
                "signet_upstream_backoff_seconds_count",
                &[("route", "r")]
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                "signet_upstream_backoff_seconds_sum",
                &[("route", "r")]
            ),
            Some(0.3)
        );
        assert_eq!(
            sample(&text, names::UPSTREAM_ATTEMPTS_TOTAL, &[("route", "r")]),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                names::UPSTREAM_RETRIES_TOTAL,
                &[("route", "r"), ("reason", "SlowDown")]
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                names::RETRY_BUDGET_EXHAUSTED_TOTAL,
                &[("route", "r")]
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                names::TIMEOUTS_TOTAL,
                &[("route", "r"), ("kind", "first_byte")]
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(&text, names::SHED_REQUESTS_TOTAL, &[("route", "r")]),
            Some(1.0)
        );
    }

    #[test]
    fn instances_do_not_share_counters() {
        let a = Metrics::new();
        let b = Metrics::new();
        a.signing_error("r");
        assert_eq!(
            value(&a, names::SIGNING_ERRORS_TOTAL, &[("route", "r")]),
            Some(1.0)
        );
        assert_eq!(
            value(&b, names::SIGNING_ERRORS_TOTAL, &[("route", "r")]),
            None
        );
    }

    #[test]
    fn every_family_is_described_even_before_traffic() {
        let text = Metrics::new().encode();
        for name in [
            "signet_requests",
            names::REQUEST_DURATION_SECONDS,
            names::REQUESTS_IN_FLIGHT,
            "signet_body_bytes_in",
            "signet_body_bytes_out",
            "signet_signing_errors",
            "signet_upstream_attempts",
            "signet_upstream_retries",
            "signet_upstream_retry_budget_exhausted",
            names::UPSTREAM_BACKOFF_SECONDS,
            "signet_timeouts",
            "signet_shed_requests",
            "signet_s3express_sessions",
            names::CLIENT_CONNECTIONS,
            "signet_client_connections_closed_idle",
            names::CREDENTIALS_EXPIRY_SECONDS,
            "signet_credentials_refresh_failures",
        ] {
            assert!(
                text.contains(&format!("# TYPE {name} ")),
                "missing family {name} in\n{text}"
            );
        }
        assert_eq!(
            sample(
                &text,
                names::BUILD_INFO,
                &[("version", env!("CARGO_PKG_VERSION"))]
            ),
            Some(1.0)
        );
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn sample_parser_handles_escaped_label_values() {
        let text = "x_total{a=\"q\\\"uote\",b=\"2\"} 5\n";
        assert_eq!(
            sample(text, "x_total", &[("a", "q\"uote"), ("b", "2")]),
            Some(5.0)
        );
        assert_eq!(sample(text, "x_total", &[("b", "3")]), None);
    }
}
