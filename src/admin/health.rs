//! `signet health`: probe the admin listener and exit 0 (2xx) or 1, for
//! container `HEALTHCHECK`s and Kubernetes exec probes (images without a shell
//! or curl).
//!
//! Without `--url` it probes [`HEALTH_PATH`] (liveness) on
//! the admin address `signet serve` would use: from `--config FILE` (or
//! `SIGNET_CONFIG`) and `SIGNET_ADMIN__LISTEN`, layered as the server layers
//! them, else the default `127.0.0.1:9090`; a wildcard bind address (`0.0.0.0`,
//! `[::]`) is probed on loopback. Probe readiness with
//! `--url http://127.0.0.1:9090/readyz`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::HEALTH_PATH;

/// The admin address probed when neither `--url` nor `SIGNET_ADMIN__LISTEN`
/// is given (the admin listener's default).
pub const DEFAULT_ADMIN_ADDR: &str = crate::config::defaults::ADMIN_LISTEN;

/// Environment variable naming the admin listen address (shared with the
/// server's configuration).
pub const ADMIN_LISTEN_ENV: &str = "SIGNET_ADMIN__LISTEN";

/// Arguments of `signet health`.
#[derive(Clone, Debug, clap::Args)]
pub struct HealthArgs {
    /// URL to probe (plain http). Defaults to /healthz on the admin address
    /// of the configuration (--config, SIGNET_ADMIN__LISTEN), else
    /// http://127.0.0.1:9090/healthz.
    #[arg(long)]
    pub url: Option<String>,

    /// Configuration file whose admin.listen to probe when --url is not given.
    #[arg(long, short = 'c', value_name = "FILE", env = "SIGNET_CONFIG")]
    pub config: Option<std::path::PathBuf>,

    /// Give up after this long (e.g. 2s, 500ms; a bare number is seconds).
    #[arg(long, default_value = "2s", value_parser = parse_timeout)]
    pub timeout: Duration,
}

impl Default for HealthArgs {
    fn default() -> Self {
        Self {
            url: None,
            config: None,
            timeout: Duration::from_secs(2),
        }
    }
}

/// Why a probe failed; printed as the one stderr line.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    /// The URL does not parse or is not plain `http://host[:port]/path`.
    #[error("'{url}' is not a usable probe URL: {reason}")]
    BadUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The configuration file (for the admin address) does not load.
    #[error("cannot find the admin address: {0}")]
    Config(String),
    /// `SIGNET_ADMIN__LISTEN` is not a socket address.
    #[error("{ADMIN_LISTEN_ENV}='{0}' is not an address like 127.0.0.1:9090; pass --url instead")]
    BadListenAddr(String),
    /// The probe's runtime could not start.
    #[error("could not start the probe runtime: {0}")]
    Runtime(std::io::Error),
    /// Connecting or talking to the admin listener failed.
    #[error("{url}: request failed: {reason}")]
    Request {
        /// The URL probed.
        url: String,
        /// The transport error.
        reason: String,
    },
    /// No answer within the timeout.
    #[error("{url}: no answer within {timeout:?}")]
    Timeout {
        /// The URL probed.
        url: String,
        /// The timeout that passed.
        timeout: Duration,
    },
    /// The admin listener answered with a non-2xx status.
    #[error("{url}: {status}{detail}")]
    Unhealthy {
        /// The URL probed.
        url: String,
        /// The status received.
        status: http::StatusCode,
        /// `: reason; reason` from the body, or empty.
        detail: String,
    },
}

/// Parses a duration as the configuration writes them (`2s`, `500ms`, `1m`,
/// `1m30s`) or a bare number of seconds; more than 0 and at most an hour.
pub fn parse_timeout(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let timeout = if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        text.parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| format!("'{text}' is too large"))?
    } else {
        crate::upstream::duration_serde::parse(text)?
    };
    if timeout.is_zero() || timeout > Duration::from_secs(3600) {
        return Err(format!("'{text}' must be more than 0 and at most 1 hour"));
    }
    Ok(timeout)
}

/// The URL to probe: `--url`, else [`HEALTH_PATH`] on `admin_listen` (the
/// value of `SIGNET_ADMIN__LISTEN`, if set) or [`DEFAULT_ADMIN_ADDR`].
pub fn probe_url(url: Option<&str>, admin_listen: Option<&str>) -> Result<String, HealthError> {
    if let Some(url) = url {
        return Ok(url.to_owned());
    }
    let listen = admin_listen
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or(DEFAULT_ADMIN_ADDR);
    let mut addr: SocketAddr = listen
        .parse()
        .map_err(|_| HealthError::BadListenAddr(listen.to_owned()))?;
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => addr.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        IpAddr::V6(ip) if ip.is_unspecified() => addr.set_ip(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        _ => {}
    }
    Ok(format!("http://{addr}{HEALTH_PATH}"))
}

/// Probes once; `Ok(status line)` on a 2xx answer.
pub fn probe(url: &str, timeout: Duration) -> Result<String, HealthError> {
    let uri: http::Uri = url.parse().map_err(|_| HealthError::BadUrl {
        url: url.to_owned(),
        reason: "it does not parse as a URL",
    })?;
    if uri.scheme_str() != Some("http") {
        return Err(HealthError::BadUrl {
            url: url.to_owned(),
            reason: "the admin listener speaks plain http://",
        });
    }
    if uri.host().is_none() {
        return Err(HealthError::BadUrl {
            url: url.to_owned(),
            reason: "it has no host",
        });
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(HealthError::Runtime)?;
    runtime.block_on(async {
        match tokio::time::timeout(timeout, fetch(uri, url)).await {
            Ok(result) => result,
            Err(_) => Err(HealthError::Timeout {
                url: url.to_owned(),
                timeout,
            }),
        }
    })
}

/// Largest body read from the probed endpoint (readiness reasons).
const BODY_LIMIT: usize = 4096;

async fn fetch(uri: http::Uri, url: &str) -> Result<String, HealthError> {
    let client = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build_http::<Empty<Bytes>>();
    let response = client.get(uri).await.map_err(|e| HealthError::Request {
        url: url.to_owned(),
        reason: crate::error_chain::error_chain(&e),
    })?;
    let status = response.status();
    // The body only adds detail (readiness reasons); a failure reading it does
    // not change the verdict.
    let body = Limited::new(response.into_body(), BODY_LIMIT)
        .collect()
        .await
        .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
        .unwrap_or_default();
    let detail: Vec<&str> = body
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if status.is_success() {
        Ok(format!("{url}: {status}"))
    } else {
        Err(HealthError::Unhealthy {
            url: url.to_owned(),
            status,
            detail: if detail.is_empty() {
                String::new()
            } else {
                format!(": {}", detail.join("; "))
            },
        })
    }
}

/// The URL probed without `--url`: [`HEALTH_PATH`] on the admin address the
/// configuration names. With a `config` file, the file and the `SIGNET_*`
/// entries of `env` are layered exactly as `signet serve` layers them;
/// without one, `SIGNET_ADMIN__LISTEN` from `env` or the default is used.
pub fn default_url<I>(config: Option<&std::path::Path>, env: I) -> Result<String, HealthError>
where
    I: IntoIterator<Item = (String, String)>,
{
    match config {
        Some(path) => {
            let args = crate::config::ServeArgs {
                config: Some(path.to_path_buf()),
                ..crate::config::ServeArgs::default()
            };
            let settings = crate::config::Settings::load_from(&args, env)
                .map_err(|e| HealthError::Config(e.to_string().replace('\n', " ")))?;
            probe_url(None, Some(&settings.admin.listen.to_string()))
        }
        None => {
            let listen = env
                .into_iter()
                .find(|(k, _)| k == ADMIN_LISTEN_ENV)
                .map(|(_, v)| v);
            probe_url(None, listen.as_deref())
        }
    }
}

/// Runs `signet health`: exit 0 on a 2xx answer (one line on stdout), 1
/// otherwise (one line on stderr). Must not be called from inside a tokio
/// runtime (it starts its own).
pub fn run(args: &HealthArgs) -> ExitCode {
    let url = match &args.url {
        Some(url) => Ok(url.clone()),
        None => default_url(args.config.as_deref(), std::env::vars()),
    };
    match url.and_then(|url| probe(&url, args.timeout)) {
        Ok(line) => {
            println!("healthy: {line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("unhealthy: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::{AdminState, Readiness, READY_PATH};
    use crate::telemetry::Metrics;
    use std::sync::Arc;

    /// Runs the admin listener on its own runtime thread (the probe starts a
    /// runtime of its own, which cannot nest) and returns its address.
    fn admin_on_thread(readiness: Readiness) -> SocketAddr {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                let state = AdminState::new(Arc::new(Metrics::new()), readiness);
                crate::admin::serve(listener, state, std::future::pending())
                    .await
                    .unwrap();
            });
        });
        rx.recv().unwrap()
    }

    #[test]
    fn healthy_admin_listener_probes_ok() {
        let addr = admin_on_thread(Readiness::new());
        let line = probe(
            &format!("http://{addr}{HEALTH_PATH}"),
            Duration::from_secs(5),
        )
        .unwrap();
        assert!(line.ends_with("200 OK"), "{line}");
    }

    #[test]
    fn not_ready_probe_fails_with_the_reasons_on_one_line() {
        let readiness = Readiness::new();
        readiness.set_config_loaded(true);
        readiness.set_draining(true);
        let addr = admin_on_thread(readiness);
        let err = probe(
            &format!("http://{addr}{READY_PATH}"),
            Duration::from_secs(5),
        )
        .unwrap_err();
        let line = err.to_string();
        assert!(matches!(err, HealthError::Unhealthy { status, .. } if status == 503));
        assert!(
            line.ends_with("503 Service Unavailable: proxy listener not up; draining"),
            "{line}"
        );
        assert!(!line.contains('\n'));
    }

    #[test]
    fn refused_connection_fails() {
        // Bind then drop to get a port nothing listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let err = probe(
            &format!("http://127.0.0.1:{port}/healthz"),
            Duration::from_secs(5),
        )
        .unwrap_err();
        assert!(matches!(err, HealthError::Request { .. }), "{err}");
    }

    #[test]
    fn silent_listener_times_out() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let err = probe(
            &format!("http://{addr}/healthz"),
            Duration::from_millis(200),
        )
        .unwrap_err();
        assert!(matches!(err, HealthError::Timeout { .. }), "{err}");
        drop(listener);
    }

    #[test]
    fn rejects_https_and_garbage_urls() {
        for url in ["https://127.0.0.1:9090/healthz", "not a url", "/healthz"] {
            assert!(
                matches!(
                    probe(url, Duration::from_secs(1)),
                    Err(HealthError::BadUrl { .. })
                ),
                "{url}"
            );
        }
    }

    #[test]
    fn default_url_follows_the_admin_listen_variable_on_loopback() {
        assert_eq!(
            probe_url(None, None).unwrap(),
            "http://127.0.0.1:9090/healthz"
        );
        assert_eq!(
            probe_url(None, Some("0.0.0.0:9191")).unwrap(),
            "http://127.0.0.1:9191/healthz"
        );
        assert_eq!(
            probe_url(None, Some("[::]:9090")).unwrap(),
            "http://[::1]:9090/healthz"
        );
        assert_eq!(
            probe_url(None, Some("10.0.0.5:9090")).unwrap(),
            "http://10.0.0.5:9090/healthz"
        );
        assert_eq!(
            probe_url(Some("http://x/readyz"), Some("0.0.0.0:1")).unwrap(),
            "http://x/readyz"
        );
        assert!(matches!(
            probe_url(None, Some("localhost")),
            Err(HealthError::BadListenAddr(_))
        ));
    }

    #[test]
    fn default_url_comes_from_the_config_file_layered_with_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("signet.toml");
        std::fs::write(&file, "[admin]\nlisten = \"0.0.0.0:9191\"\n").unwrap();
        let env = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            default_url(Some(&file), env(&[])).unwrap(),
            "http://127.0.0.1:9191/healthz"
        );
        assert_eq!(
            default_url(Some(&file), env(&[(ADMIN_LISTEN_ENV, "127.0.0.1:9393")])).unwrap(),
            "http://127.0.0.1:9393/healthz",
            "the environment wins over the file, as for signet serve"
        );
        assert_eq!(
            default_url(None, env(&[(ADMIN_LISTEN_ENV, "0.0.0.0:9292")])).unwrap(),
            "http://127.0.0.1:9292/healthz"
        );
        assert_eq!(
            default_url(None, env(&[])).unwrap(),
            "http://127.0.0.1:9090/healthz"
        );
        let missing = dir.path().join("missing.toml");
        let err = default_url(Some(&missing), env(&[])).unwrap_err();
        assert!(matches!(err, HealthError::Config(_)), "{err}");
        assert!(!err.to_string().contains('\n'));
    }

    #[test]
    fn parses_timeouts_with_units() {
        assert_eq!(parse_timeout("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_timeout("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_timeout("3").unwrap(), Duration::from_secs(3));
        assert_eq!(parse_timeout("1m").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_timeout("1m30s").unwrap(), Duration::from_secs(90));
        assert!(parse_timeout("99999999999999999999").is_err());
        assert!(parse_timeout("0s").is_err());
        assert!(parse_timeout("2h").is_err());
        assert!(parse_timeout("soon").is_err());
    }
}
