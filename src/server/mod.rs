//! The running daemon: listeners, graceful drain on SIGTERM/SIGINT, and
//! configuration reload on SIGHUP.
//!
//! Lifecycle:
//! - start: load and validate settings once, start the credential refreshers,
//!   bind the proxy and admin listeners, log `listening` with both addresses.
//! - SIGHUP: load the file again; on success swap in the new route table (and
//!   new credential sources if they changed) atomically: requests already in
//!   flight finish on the state they started with. A bad file is logged and the
//!   old configuration keeps serving.
//! - SIGTERM/SIGINT: readiness turns false, the listener stops accepting, and
//!   in-flight requests (streams included) get up to `shutdown.drain_timeout`
//!   to finish; then signet exits 0.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tracing::{error, info, warn};

use crate::admin::{self, AdminState, Readiness};
use crate::config::{ServeArgs, Settings};
use crate::proxy::{Proxy, ProxyState};
use crate::telemetry::{self, metrics::Metrics};
use crate::upstream::Upstream;

mod connection;
mod workers;

/// Why the daemon could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Binding a listener failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The upstream client could not be built (TLS settings).
    #[error(transparent)]
    Upstream(#[from] crate::upstream::UpstreamError),
    /// The proxy state could not be built from the settings.
    #[error(transparent)]
    Proxy(#[from] crate::proxy::BuildError),
    /// Installing a signal handler failed.
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    /// A proxy worker thread could not start.
    #[error("cannot start a proxy worker thread: {0}")]
    Worker(std::io::Error),
}

/// Runs `signet serve`: exit 0 after a clean drain, 2 on a bad configuration,
/// 1 when the daemon cannot start.
pub fn main(args: ServeArgs) -> ExitCode {
    let settings = match Settings::load(&args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("signet: {e}");
            return ExitCode::from(2);
        }
    };
    // --log-level wins, then RUST_LOG, then the configured level.
    let _log_guard = match telemetry::logging::init_layered(
        args.log_level.as_deref(),
        Some(settings.log.level.as_str()),
        settings.log.format.into(),
    ) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("signet: {e}");
            return ExitCode::from(2);
        }
    };
    // The control plane (signals, reload, credential refreshers, the admin
    // listener) needs little: one worker thread. The proxy has its own
    // (`workers`).
    let mut control = tokio::runtime::Builder::new_multi_thread();
    control.worker_threads(1);
    let runtime = match crate::cli::build_runtime(control) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match runtime.block_on(run(settings, args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!(error = %e, "signet stopped");
            eprintln!("signet: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind {
            addr: addr.to_string(),
            source,
        })
}

/// Runs the daemon until SIGTERM/SIGINT and a drain.
pub async fn run(settings: Settings, args: ServeArgs) -> Result<(), ServerError> {
    let mut sigterm = signal(SignalKind::terminate()).map_err(ServerError::Signals)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(ServerError::Signals)?;
    let mut sighup = signal(SignalKind::hangup()).map_err(ServerError::Signals)?;

    let metrics = Arc::new(Metrics::new());
    let upstream = Upstream::new(&settings.tls, metrics.clone())?;
    let state = ProxyState::build(&settings, None).await?;
    let proxy = Arc::new(Proxy::new(state, upstream, metrics.clone()));

    let readiness = Readiness::new();
    readiness.set_check({
        let proxy = proxy.clone();
        Arc::new(move || proxy.credentials_ready())
    });
    let admin_state = AdminState::new(metrics.clone(), readiness.clone()).with_credentials({
        let proxy = proxy.clone();
        Arc::new(move || proxy.credential_gauges())
    });

    let listener = bind(settings.listen).await?;
    let admin_listener = bind(settings.admin.listen).await?;
    let proxy_addr = local(&listener);
    let admin_addr = local(&admin_listener);
    readiness.set_config_loaded(true);

    let (drain_tx, drain_rx) = tokio::sync::watch::channel(false);
    let proxy_server = tokio::spawn(
        workers::Workers::start(
            settings.worker_threads(),
            proxy.clone(),
            drain_rx.clone(),
            settings.connections.idle_timeout,
        )?
        .serve(listener, drain_rx),
    );
    // The admin listener outlives the proxy's drain, so /readyz can report it.
    let (admin_stop_tx, admin_stop_rx) = tokio::sync::watch::channel(false);
    let admin_server = {
        let mut rx = admin_stop_rx;
        let app = admin::router(admin_state);
        tokio::spawn(async move {
            axum::serve(admin_listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.wait_for(|d| *d).await;
                })
                .await
        })
    };
    readiness.set_listener_up(true);
    info!(proxy = %proxy_addr, admin = %admin_addr, "listening");

    loop {
        tokio::select! {
            _ = sigterm.recv() => { info!(signal = "SIGTERM", "draining"); break; }
            _ = sigint.recv() => { info!(signal = "SIGINT", "draining"); break; }
            _ = sighup.recv() => {
                // A reload may wait for new credentials; a stop signal meanwhile
                // abandons it (the running configuration was never replaced).
                tokio::select! {
                    () = reload(&proxy, &args, &settings) => {}
                    _ = sigterm.recv() => { info!(signal = "SIGTERM", "reload abandoned; draining"); break; }
                    _ = sigint.recv() => { info!(signal = "SIGINT", "reload abandoned; draining"); break; }
                }
            }
        }
    }

    // Readiness goes false first so load balancers stop sending.
    readiness.set_draining(true);
    let _ = drain_tx.send(true);
    let drain = settings.shutdown.drain_timeout;
    // A second SIGTERM or SIGINT ends the wait: the operator asked twice.
    tokio::select! {
        finished = tokio::time::timeout(drain, proxy_server) => match finished {
            Ok(_) => info!("drained; exiting"),
            Err(_) => warn!(
                drain_timeout = ?drain,
                in_flight = proxy.in_flight(),
                "drain timeout reached; exiting with requests still in flight"
            ),
        },
        _ = sigterm.recv() => warn!(
            signal = "SIGTERM",
            in_flight = proxy.in_flight(),
            "second signal; exiting without waiting for the drain"
        ),
        _ = sigint.recv() => warn!(
            signal = "SIGINT",
            in_flight = proxy.in_flight(),
            "second signal; exiting without waiting for the drain"
        ),
    }
    let _ = admin_stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(1), admin_server).await;
    Ok(())
}

/// Reloads the configuration file; on any error the old state keeps serving.
async fn reload(proxy: &Proxy, args: &ServeArgs, running: &Settings) {
    info!("SIGHUP: reloading configuration");
    let settings = match Settings::load(args) {
        Ok(s) => s,
        Err(e) => {
            error!(error = %e, "reload rejected; keeping the running configuration");
            return;
        }
    };
    let current = proxy.state();
    match ProxyState::build(&settings, Some(&current)).await {
        Ok(next) => {
            proxy.swap(next);
            info!(routes = settings.routes.len(), "configuration reloaded");
            for key in restart_only_changes(running, &settings) {
                warn!(key, "changed in the file; takes effect at the next restart");
            }
        }
        Err(e) => error!(error = %e, "reload rejected; keeping the running configuration"),
    }
}

/// The settings a reload does not apply (listeners, threads, TLS, logging,
/// timeouts of connections and of the drain) that differ between the ones
/// signet started with and `next`.
fn restart_only_changes(running: &Settings, next: &Settings) -> Vec<&'static str> {
    [
        ("listen", running.listen != next.listen),
        ("workers", running.workers != next.workers),
        ("admin", running.admin != next.admin),
        ("log", running.log != next.log),
        ("shutdown", running.shutdown != next.shutdown),
        ("connections", running.connections != next.connections),
        ("tls", running.tls != next.tls),
    ]
    .into_iter()
    .filter_map(|(key, changed)| changed.then_some(key))
    .collect()
}

fn local(listener: &TcpListener) -> SocketAddr {
    listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigFormat;

    #[test]
    fn names_the_settings_a_reload_leaves_for_a_restart() {
        let load = |text: &str| Settings::from_str(text, ConfigFormat::Toml).unwrap();
        let running = load("");
        assert!(restart_only_changes(&running, &load("")).is_empty());
        // Routes and credentials reload; these do not.
        let next = load(
            "listen = \"127.0.0.1:7000\"\nworkers = 3\n[log]\nlevel = \"debug\"\n\
             [tls]\ninsecure_skip_verify = true\n[connections]\nidle_timeout = \"5m\"\n\
             [[routes]]\nname = \"q\"\nupstream = \"https://sqs.us-east-1.amazonaws.com\"\n",
        );
        assert_eq!(
            restart_only_changes(&running, &next),
            ["listen", "workers", "log", "connections", "tls"]
        );
    }
}
