//! The admin listener: liveness, readiness and Prometheus metrics, on a port
//! of their own (default `127.0.0.1:9090`) so that probes and scrapes never
//! compete with proxied traffic.
//!
//! - [`HEALTH_PATH`] `/healthz`: 200 `ok` while the process is up.
//! - [`READY_PATH`] `/readyz`: 200 `ready` when the configuration is loaded,
//!   the proxy listener is up, signet is not draining and the pluggable check
//!   (every route's credentials valid) passes; otherwise 503 with one reason
//!   per line.
//! - [`METRICS_PATH`] `/metrics`: the text exposition of [`Metrics`], with the
//!   credential gauges refreshed first.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use std::sync::Arc;
//! use signet::admin::{self, AdminState, Readiness};
//! use signet::telemetry::Metrics;
//!
//! let readiness = Readiness::new();
//! let state = AdminState::new(Arc::new(Metrics::new()), readiness.clone());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9090").await?;
//! readiness.set_config_loaded(true);
//! admin::serve(listener, state, std::future::pending()).await
//! # }
//! ```

pub mod health;

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::telemetry::metrics::{self, CredentialGauge, Metrics};

/// Liveness endpoint: 200 while the process is up.
pub const HEALTH_PATH: &str = "/healthz";
/// Readiness endpoint: 200 when signet should receive traffic, else 503.
pub const READY_PATH: &str = "/readyz";
/// Prometheus scrape endpoint.
pub const METRICS_PATH: &str = "/metrics";

/// An extra readiness condition: `Ok(())` when satisfied, else the reason
/// (several reasons may be separated by newlines).
pub type ReadinessCheck = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// Produces the per-source credential state at scrape time.
pub type CredentialsProbe = Arc<dyn Fn() -> Vec<CredentialGauge> + Send + Sync>;

/// Whether signet should receive traffic. Clones share one state: the server
/// flips the flags, the admin listener reads them.
///
/// Starts not ready: configuration not loaded, listener down, not draining,
/// no extra check.
#[derive(Clone, Default)]
pub struct Readiness {
    inner: Arc<ReadinessFlags>,
}

#[derive(Default)]
struct ReadinessFlags {
    config_loaded: AtomicBool,
    listener_up: AtomicBool,
    draining: AtomicBool,
    check: RwLock<Option<ReadinessCheck>>,
}

impl fmt::Debug for Readiness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Readiness")
            .field(
                "config_loaded",
                &self.inner.config_loaded.load(Ordering::Acquire),
            )
            .field(
                "listener_up",
                &self.inner.listener_up.load(Ordering::Acquire),
            )
            .field("draining", &self.is_draining())
            .finish_non_exhaustive()
    }
}

impl Readiness {
    /// A fresh, not-ready state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records whether a valid configuration is loaded.
    pub fn set_config_loaded(&self, loaded: bool) {
        self.inner.config_loaded.store(loaded, Ordering::Release);
    }

    /// Records whether the proxy listener is accepting connections.
    pub fn set_listener_up(&self, up: bool) {
        self.inner.listener_up.store(up, Ordering::Release);
    }

    /// Records that a graceful drain started (readiness turns false so load
    /// balancers stop sending) or, with `false`, that it was called off.
    pub fn set_draining(&self, draining: bool) {
        self.inner.draining.store(draining, Ordering::Release);
    }

    /// Whether a drain is in progress.
    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(Ordering::Acquire)
    }

    /// Installs (or replaces, e.g. after a reload) the extra readiness check,
    /// typically "every route's credentials are valid". It runs on every
    /// `/readyz` request, so it must be cheap and must not block.
    pub fn set_check(&self, check: ReadinessCheck) {
        match self.inner.check.write() {
            Ok(mut slot) => *slot = Some(check),
            Err(poisoned) => *poisoned.into_inner() = Some(check),
        }
    }

    /// `Ok(())` when ready, else every reason it is not (one entry per line
    /// of explanation).
    pub fn status(&self) -> Result<(), Vec<String>> {
        let mut reasons = Vec::new();
        if !self.inner.config_loaded.load(Ordering::Acquire) {
            reasons.push("configuration not loaded".to_owned());
        }
        if !self.inner.listener_up.load(Ordering::Acquire) {
            reasons.push("proxy listener not up".to_owned());
        }
        if self.is_draining() {
            reasons.push("draining".to_owned());
        }
        let check = match self.inner.check.read() {
            Ok(slot) => slot.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        if let Some(check) = check {
            if let Err(why) = check() {
                reasons.extend(
                    why.lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                        .map(str::to_owned),
                );
            }
        }
        if reasons.is_empty() {
            Ok(())
        } else {
            Err(reasons)
        }
    }

    /// Whether [`Readiness::status`] is `Ok`.
    pub fn is_ready(&self) -> bool {
        self.status().is_ok()
    }
}

/// What the admin endpoints read.
#[derive(Clone)]
pub struct AdminState {
    /// The metrics served on `/metrics`.
    pub metrics: Arc<Metrics>,
    /// The readiness served on `/readyz`.
    pub readiness: Readiness,
    /// Called on each scrape to refresh the credential gauges.
    pub credentials: CredentialsProbe,
}

impl fmt::Debug for AdminState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminState")
            .field("readiness", &self.readiness)
            .finish_non_exhaustive()
    }
}

impl AdminState {
    /// State with no credential sources to report (set
    /// [`AdminState::credentials`] or use [`AdminState::with_credentials`]).
    pub fn new(metrics: Arc<Metrics>, readiness: Readiness) -> Self {
        Self {
            metrics,
            readiness,
            credentials: Arc::new(Vec::new),
        }
    }

    /// Replaces the credentials probe called on each scrape.
    pub fn with_credentials(mut self, probe: CredentialsProbe) -> Self {
        self.credentials = probe;
        self
    }
}

/// The admin routes: [`HEALTH_PATH`], [`READY_PATH`], [`METRICS_PATH`]
/// (GET and HEAD). Anything else is 404.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route(HEALTH_PATH, get(healthz))
        .route(READY_PATH, get(readyz))
        .route(METRICS_PATH, get(metrics_text))
        .with_state(state)
}

/// Serves [`router`] on `listener` until `shutdown` completes, then finishes
/// the requests in progress.
pub async fn serve<F>(
    listener: tokio::net::TcpListener,
    state: AdminState,
    shutdown: F,
) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

const TEXT_PLAIN: &str = "text/plain; charset=utf-8";

async fn healthz() -> Response {
    ([(header::CONTENT_TYPE, TEXT_PLAIN)], "ok\n").into_response()
}

async fn readyz(State(state): State<AdminState>) -> Response {
    match state.readiness.status() {
        Ok(()) => ([(header::CONTENT_TYPE, TEXT_PLAIN)], "ready\n").into_response(),
        Err(reasons) => {
            let mut body = reasons.join("\n");
            body.push('\n');
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::CONTENT_TYPE, TEXT_PLAIN)],
                body,
            )
                .into_response()
        }
    }
}

async fn metrics_text(State(state): State<AdminState>) -> Response {
    state.metrics.set_credentials(&(state.credentials)());
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        state.metrics.encode(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Empty};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    use std::time::Duration;

    /// Serves the admin router on 127.0.0.1 (port 0) and returns its base URL.
    async fn start(state: AdminState) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, state, std::future::pending()));
        format!("http://{addr}")
    }

    async fn get(url: &str) -> (StatusCode, String, String) {
        let client = Client::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
        let resp = client.get(url.parse().unwrap()).await.unwrap();
        let status = resp.status();
        let ctype = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, ctype, String::from_utf8(body.to_vec()).unwrap())
    }

    fn ready_readiness() -> Readiness {
        let r = Readiness::new();
        r.set_config_loaded(true);
        r.set_listener_up(true);
        r
    }

    #[tokio::test]
    async fn healthz_answers_ok_even_when_not_ready() {
        let base = start(AdminState::new(Arc::new(Metrics::new()), Readiness::new())).await;
        let (status, _, body) = get(&format!("{base}{HEALTH_PATH}")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "ok\n");
    }

    #[tokio::test]
    async fn readyz_lists_every_missing_condition_with_503() {
        let readiness = Readiness::new();
        let base = start(AdminState::new(Arc::new(Metrics::new()), readiness.clone())).await;
        let (status, _, body) = get(&format!("{base}{READY_PATH}")).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body, "configuration not loaded\nproxy listener not up\n");

        readiness.set_config_loaded(true);
        readiness.set_listener_up(true);
        let (status, _, body) = get(&format!("{base}{READY_PATH}")).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "ready\n"));
    }

    #[tokio::test]
    async fn readyz_turns_503_when_draining_starts() {
        let readiness = ready_readiness();
        let base = start(AdminState::new(Arc::new(Metrics::new()), readiness.clone())).await;
        assert_eq!(get(&format!("{base}{READY_PATH}")).await.0, StatusCode::OK);
        readiness.set_draining(true);
        let (status, _, body) = get(&format!("{base}{READY_PATH}")).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body, "draining\n");
    }

    #[tokio::test]
    async fn readyz_reports_the_pluggable_check_reasons() {
        let readiness = ready_readiness();
        let valid = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&valid);
        readiness.set_check(Arc::new(move || {
            if flag.load(Ordering::Acquire) {
                Ok(())
            } else {
                Err("route s3: no valid credentials\nroute es: credentials expired".to_owned())
            }
        }));
        let base = start(AdminState::new(Arc::new(Metrics::new()), readiness)).await;
        let (status, _, body) = get(&format!("{base}{READY_PATH}")).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            body,
            "route s3: no valid credentials\nroute es: credentials expired\n"
        );
        valid.store(true, Ordering::Release);
        assert_eq!(get(&format!("{base}{READY_PATH}")).await.0, StatusCode::OK);
    }

    #[tokio::test]
    async fn metrics_serves_text_format_that_moves_with_traffic() {
        let m = Arc::new(Metrics::new());
        let base = start(AdminState::new(Arc::clone(&m), ready_readiness())).await;
        let labels = [("route", "s3"), ("method", "PUT"), ("status", "200")];
        let (status, ctype, text) = get(&format!("{base}{METRICS_PATH}")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(ctype, metrics::CONTENT_TYPE);
        assert_eq!(
            metrics::sample(&text, metrics::names::REQUESTS_TOTAL, &labels),
            None
        );

        m.route("s3")
            .finished("PUT", 200, Duration::from_millis(3), 0, 0);
        let (_, _, text) = get(&format!("{base}{METRICS_PATH}")).await;
        assert_eq!(
            metrics::sample(&text, metrics::names::REQUESTS_TOTAL, &labels),
            Some(1.0)
        );
    }

    #[tokio::test]
    async fn metrics_refreshes_credential_gauges_on_each_scrape() {
        let remaining = Arc::new(std::sync::Mutex::new(600.0));
        let shared = Arc::clone(&remaining);
        let state = AdminState::new(Arc::new(Metrics::new()), ready_readiness()).with_credentials(
            Arc::new(move || {
                vec![CredentialGauge {
                    source: "default".into(),
                    seconds_until_expiry: Some(*shared.lock().unwrap()),
                    refresh_failures: 1,
                }]
            }),
        );
        let base = start(state).await;
        let name = metrics::names::CREDENTIALS_EXPIRY_SECONDS;
        let (_, _, text) = get(&format!("{base}{METRICS_PATH}")).await;
        assert_eq!(
            metrics::sample(&text, name, &[("source", "default")]),
            Some(600.0)
        );
        *remaining.lock().unwrap() = 42.0;
        let (_, _, text) = get(&format!("{base}{METRICS_PATH}")).await;
        assert_eq!(
            metrics::sample(&text, name, &[("source", "default")]),
            Some(42.0)
        );
    }

    #[tokio::test]
    async fn unknown_admin_paths_are_404() {
        let base = start(AdminState::new(Arc::new(Metrics::new()), ready_readiness())).await;
        assert_eq!(get(&format!("{base}/admin")).await.0, StatusCode::NOT_FOUND);
    }
}
