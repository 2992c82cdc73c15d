//! Built-in defaults that deploy manifests, the admin listener and the CLI check against.
//!
//! ```
//! use signet::config::defaults;
//! assert_eq!(defaults::LISTEN, "127.0.0.1:8080");
//! assert_eq!(defaults::BODY_CAP, 16 * 1024 * 1024);
//! ```

use std::time::Duration;

/// Where the proxy listens unless told otherwise.
pub const LISTEN: &str = "127.0.0.1:8080";

/// Where the admin listener (`/healthz`, `/readyz`, `/metrics`) listens unless told otherwise.
pub const ADMIN_LISTEN: &str = "127.0.0.1:9090";

/// How long in-flight requests may finish after SIGTERM/SIGINT.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

/// How long a client connection may stay idle (no request in progress, or a
/// request head still arriving) before signet closes it: longer than the 60 s
/// idle timeout of AWS load balancers, so one in front never reuses a
/// connection signet has just closed.
pub const CLIENT_IDLE_TIMEOUT: Duration = Duration::from_secs(75);

/// Largest request body a `signed` payload buffers (16 MiB).
pub const BODY_CAP: u64 = 16 * 1024 * 1024;

/// Headers forwarded but left out of the signature; a trailing `*` matches a prefix.
pub const SIGN_HEADERS_EXCLUDE: &[&str] =
    &["user-agent", "x-forwarded-*", "x-amzn-trace-id", "expect"];

/// The credential source every route uses unless it names another.
pub const CREDENTIALS_SOURCE: &str = "default";

/// Log level when neither `RUST_LOG`, `log.level` nor `--log-level` says otherwise.
pub const LOG_LEVEL: &str = "info";

/// The embedded default configuration file (`config/signet.toml`), used when
/// no `--config` file is given.
pub const EMBEDDED_CONFIG: &str = include_str!("../../config/signet.toml");
