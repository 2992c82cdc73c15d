//! The flags of `signet` / `signet serve`.

use std::path::PathBuf;

/// Flags of `signet` and `signet serve`. They override the file and the
/// `SIGNET_*` environment variables.
///
/// Besides signet's own flags, the flags of awslabs' aws-sigv4-proxy are
/// accepted with the same meaning (`--name`, `--host`, `--sign-host`,
/// `--port`, `--upstream-url-scheme`, `--unsigned-payload`, `-s/--strip`,
/// `--custom-headers`, `--no-verify-ssl`, `--role-arn`), so its users can
/// swap binaries. docs/configuration.md has the mapping.
#[derive(clap::Args, Debug, Clone, Default, PartialEq, Eq)]
pub struct ServeArgs {
    /// Configuration file (TOML, or YAML by a .yaml/.yml extension). Without it
    /// the embedded default is used: a local gateway with host-based AWS routing.
    #[arg(long, short = 'c', value_name = "FILE", env = "SIGNET_CONFIG")]
    pub config: Option<PathBuf>,

    /// Address the proxy listens on (default 127.0.0.1:8080).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,

    /// Proxy worker threads (default 0: one per CPU the process may use).
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,

    /// Address of the admin listener: /healthz, /readyz, /metrics (default 127.0.0.1:9090).
    #[arg(long, value_name = "ADDR")]
    pub admin_listen: Option<String>,

    /// Log level or filter (e.g. `debug`, `signet=trace`); wins over RUST_LOG and `log.level`.
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,

    /// Log format: json, pretty, or auto (json unless stdout is a terminal).
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<String>,

    /// Forward every request to this upstream URL (one route; replaces the file's routes).
    #[arg(long, value_name = "URL")]
    pub upstream: Option<String>,

    /// Signing name of the upstream service (e.g. es, aps, s3). Alias: --name.
    #[arg(long, visible_alias = "name", value_name = "SERVICE")]
    pub service: Option<String>,

    /// Signing region (e.g. us-west-2).
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,

    /// aws-sigv4-proxy: host to proxy to; the upstream is `<scheme>://<host>`.
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,

    /// aws-sigv4-proxy: host used for signing instead of the upstream's.
    #[arg(long, value_name = "HOST")]
    pub sign_host: Option<String>,

    /// aws-sigv4-proxy: listen port, `:8080` or `8080` (all interfaces) or `ADDR:PORT`.
    #[arg(long, value_name = "PORT")]
    pub port: Option<String>,

    /// aws-sigv4-proxy: scheme of --host (https unless told otherwise).
    #[arg(long, value_name = "SCHEME")]
    pub upstream_url_scheme: Option<String>,

    /// aws-sigv4-proxy: send bodies unsigned (UNSIGNED-PAYLOAD), streaming.
    #[arg(long)]
    pub unsigned_payload: bool,

    /// aws-sigv4-proxy: header to remove from requests before signing (repeatable).
    #[arg(long = "strip", short = 's', value_name = "HEADER")]
    pub strip: Vec<String>,

    /// aws-sigv4-proxy: headers to add, comma separated `name=value` pairs.
    #[arg(long, value_name = "K=V,...")]
    pub custom_headers: Option<String>,

    /// aws-sigv4-proxy: skip upstream TLS certificate verification (local endpoints only).
    #[arg(long)]
    pub no_verify_ssl: bool,

    /// aws-sigv4-proxy: verbose logging (`--log-level debug` unless a level is given).
    #[arg(long, short = 'v')]
    pub verbose: bool,

    /// aws-sigv4-proxy: IAM role to assume for signing.
    #[arg(long, value_name = "ARN")]
    pub role_arn: Option<String>,
}
