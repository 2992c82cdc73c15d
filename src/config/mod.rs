//! Typed, validated settings.
//!
//! Layers, later ones winning:
//! 1. the file given with `--config` (TOML; YAML for a `.yaml`/`.yml` name), or the
//!    embedded default `config/signet.toml` when none is given;
//! 2. `SIGNET_*` environment variables, nested keys joined with `__`
//!    (`SIGNET_LISTEN`, `SIGNET_ADMIN__LISTEN`, `SIGNET_DEFAULTS__BODY_CAP`);
//! 3. command-line flags ([`ServeArgs`]).
//!
//! The result is validated once into [`Settings`]; the request path never parses
//! configuration. Every error names the key and the reason:
//! `routes[2].region: 'us-est-1' is not a region name (route "search")`.
//!
//! ```
//! use signet::config::{ConfigFormat, Settings};
//! let settings = Settings::from_str(r#"
//!     [[routes]]
//!     name = "search"
//!     path_prefix = "/search"
//!     upstream = "https://search-logs-abc.us-west-2.es.amazonaws.com"
//! "#, ConfigFormat::Toml).unwrap();
//! assert_eq!(settings.routes[0].service, "es");
//! assert_eq!(settings.routes[0].region, "us-west-2");
//! ```

mod args;
pub mod defaults;
mod file;
pub mod units;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use args::ServeArgs;

use crate::credentials::SourceSettings;
use crate::sigv4::Algorithm;
use crate::upstream::{duration_serde, RoutePolicy, TlsSettings};
use units::bytes_serde;

/// The validated configuration signet runs on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Settings {
    /// Where the proxy listens.
    pub listen: SocketAddr,
    /// Proxy worker threads (each a single-threaded runtime); 0: one per CPU
    /// the process may use ([`Settings::worker_threads`]).
    pub workers: usize,
    /// The admin listener.
    pub admin: AdminSettings,
    /// Logging.
    pub log: LogSettings,
    /// Graceful shutdown.
    pub shutdown: ShutdownSettings,
    /// Client connections.
    pub connections: ConnectionSettings,
    /// TLS of the upstream client (process-wide).
    pub tls: TlsSettings,
    /// Named credential sources; always holds `default`.
    pub credentials: BTreeMap<String, SourceSettings>,
    /// What routes inherit, and how host-routed requests are treated.
    pub defaults: RouteDefaults,
    /// Configured routes, in match order.
    pub routes: Vec<RouteSettings>,
    /// The file the settings came from; `None` for the embedded default.
    #[serde(skip)]
    pub config_file: Option<PathBuf>,
}

/// The admin listener's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AdminSettings {
    /// Where `/healthz`, `/readyz` and `/metrics` are served.
    pub listen: SocketAddr,
}

/// Log output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogSettings {
    /// A tracing filter (`info`, `signet=debug`); `RUST_LOG` wins when set.
    pub level: String,
    /// Output format.
    pub format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable, for terminals.
    Pretty,
    /// JSON unless stdout is a terminal.
    #[default]
    Auto,
}

/// Graceful shutdown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShutdownSettings {
    /// How long in-flight requests may finish after SIGTERM/SIGINT.
    #[serde(with = "duration_serde")]
    pub drain_timeout: Duration,
}

/// Client connections.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConnectionSettings {
    /// How long a connection may stay idle (no request in progress, or a
    /// request head still arriving) before signet closes it.
    #[serde(with = "duration_serde")]
    pub idle_timeout: Duration,
}

/// How a request body is signed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PayloadMode {
    /// Buffer up to the body cap, hash, sign the hash (413 past the cap).
    Signed,
    /// Stream untouched with `UNSIGNED-PAYLOAD`.
    Unsigned,
    /// Signed for non-S3 services; for S3, signed when the body is small with a
    /// known length, otherwise unsigned (streaming), and aws-chunked uploads pass through.
    #[default]
    Auto,
}

/// Deserializes a unit-only enum from its lowercase name with a message listing the names.
macro_rules! deserialize_by_name {
    ($ty:ty, $($name:literal => $variant:expr),+ $(,)?) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                match text.trim().to_ascii_lowercase().as_str() {
                    $($name => Ok($variant),)+
                    _ => Err(serde::de::Error::custom(format!(
                        "'{text}' is not one of {}",
                        [$($name),+].join(", ")
                    ))),
                }
            }
        }
    };
}

deserialize_by_name!(LogFormat, "json" => LogFormat::Json, "pretty" => LogFormat::Pretty, "auto" => LogFormat::Auto);
deserialize_by_name!(PayloadMode, "signed" => PayloadMode::Signed, "unsigned" => PayloadMode::Unsigned, "auto" => PayloadMode::Auto);

/// Header-name patterns, lowercase; a trailing `*` matches any suffix.
///
/// ```
/// use signet::config::HeaderPatterns;
/// let p = HeaderPatterns::new(["user-agent", "x-forwarded-*"]).unwrap();
/// assert!(p.matches("x-forwarded-for") && p.matches("user-agent"));
/// assert!(!p.matches("x-amz-date"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderPatterns {
    /// `(name or prefix, is_prefix)` in the order written.
    entries: Vec<(String, bool)>,
}

impl HeaderPatterns {
    /// Builds from patterns; refuses ones that are not header names (apart from a trailing `*`).
    pub fn new<I, S>(patterns: I) -> Result<Self, String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut entries = Vec::new();
        for pattern in patterns {
            let pattern = pattern.as_ref().trim().to_ascii_lowercase();
            let (name, wildcard) = match pattern.strip_suffix('*') {
                Some(prefix) => (prefix.to_string(), true),
                None => (pattern.clone(), false),
            };
            if name.is_empty() {
                return Err(format!("'{pattern}' would match every header"));
            }
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(format!("'{pattern}' is not a header name"));
            }
            if !entries.contains(&(name.clone(), wildcard)) {
                entries.push((name, wildcard));
            }
        }
        Ok(Self { entries })
    }

    /// Whether `name` (lowercase, as `http::HeaderName::as_str` gives it) matches.
    pub fn matches(&self, name: &str) -> bool {
        self.entries.iter().any(|(p, prefix)| {
            if *prefix {
                name.starts_with(p.as_str())
            } else {
                name == p
            }
        })
    }

    /// Whether there are no patterns.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The patterns as written (prefixes with their `*`).
    pub fn patterns(&self) -> impl Iterator<Item = String> + '_ {
        self.entries
            .iter()
            .map(|(p, prefix)| if *prefix { format!("{p}*") } else { p.clone() })
    }

    /// The first pattern that could match a header signing owns (`host`,
    /// `authorization`, `x-amz-*`), if any.
    fn covers_signing_header(&self) -> Option<String> {
        const OWNED: &[&str] = &[
            "host",
            crate::sigv4::AUTHORIZATION,
            crate::sigv4::X_AMZ_DATE,
            crate::sigv4::X_AMZ_SECURITY_TOKEN,
            crate::sigv4::X_AMZ_CONTENT_SHA256,
        ];
        self.entries
            .iter()
            .find(|(p, prefix)| {
                if *prefix {
                    "x-amz-".starts_with(p.as_str())
                        || p.starts_with("x-amz-")
                        || OWNED.iter().any(|o| o.starts_with(p.as_str()))
                } else {
                    p.starts_with("x-amz-") || OWNED.contains(&p.as_str())
                }
            })
            .map(|(p, prefix)| if *prefix { format!("{p}*") } else { p.clone() })
    }
}

impl Serialize for HeaderPatterns {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.patterns())
    }
}

/// Headers added to every request of a route. Values of sensitive-looking
/// headers (authorization, cookies, tokens, keys, secrets) print as `<redacted>`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct CustomHeaders(Vec<(http::HeaderName, http::HeaderValue)>);

impl CustomHeaders {
    /// The headers, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&http::HeaderName, &http::HeaderValue)> {
        self.0.iter().map(|(n, v)| (n, v))
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn printable(&self) -> BTreeMap<&str, String> {
        self.0
            .iter()
            .map(|(name, value)| {
                let shown = if is_sensitive_header(name.as_str()) {
                    "<redacted>".to_string()
                } else {
                    String::from_utf8_lossy(value.as_bytes()).into_owned()
                };
                (name.as_str(), shown)
            })
            .collect()
    }
}

fn is_sensitive_header(name: &str) -> bool {
    [
        "authorization",
        "cookie",
        "token",
        "secret",
        "key",
        "password",
        "signature",
        "credential",
        "session",
    ]
    .iter()
    .any(|word| name.contains(word))
}

impl fmt::Debug for CustomHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.printable()).finish()
    }
}

impl Serialize for CustomHeaders {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.printable().serialize(serializer)
    }
}

/// What routes inherit unless they say otherwise, and how host-routed requests
/// (no configured route, Host an AWS endpoint) are treated.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RouteDefaults {
    /// Payload mode.
    pub payload: PayloadMode,
    /// Largest body a signed payload buffers, in bytes.
    #[serde(with = "bytes_serde")]
    pub body_cap: u64,
    /// Headers forwarded but not signed (`sign_headers.exclude` in the file).
    #[serde(rename = "sign_headers", serialize_with = "serialize_sign_headers")]
    pub sign_headers_exclude: HeaderPatterns,
    /// Headers removed from requests before signing.
    pub strip_headers: HeaderPatterns,
    /// Headers added to every request.
    pub custom_headers: CustomHeaders,
    /// Credential source name.
    pub credentials: String,
    /// Role assumed with the source's credentials.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// Signing name for host-routed requests instead of the one the Host implies,
    /// and for routes that give none and whose upstream implies none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Signing region, with the same rules as `service`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Whether a request whose Host is an AWS endpoint and that matches no route
    /// is forwarded to that host, signed for the service and region it implies.
    pub aws_host_routing: bool,
    /// Retries, timeouts and limits.
    #[serde(flatten)]
    pub policy: RoutePolicy,
}

/// An upstream base URL: scheme, authority and optional base path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamUrl {
    /// `http` or `https`.
    pub scheme: http::uri::Scheme,
    /// `host[:port]` as given (lowercased).
    pub authority: http::uri::Authority,
    /// Path prefixed to every forwarded path; empty or `/x` (no trailing slash).
    pub base_path: String,
}

impl UpstreamUrl {
    /// The host without port.
    pub fn host(&self) -> &str {
        self.authority.host()
    }
}

impl fmt::Display for UpstreamUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}{}", self.scheme, self.authority, self.base_path)
    }
}

impl Serialize for UpstreamUrl {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// One validated route (`[[routes]]`), with inherited defaults filled in.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RouteSettings {
    /// Unique name, used in logs and metrics.
    pub name: String,
    /// Path prefix matched on whole segments (`/es` matches `/es` and `/es/x`,
    /// not `/esx`); `None` matches every path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    /// Host matched case-insensitively (a port in it must match too); `None` matches every host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Where requests go.
    pub upstream: UpstreamUrl,
    /// Signing name.
    pub service: String,
    /// Signing region; for [`Algorithm::V4a`] the region set: `*`, or region
    /// names separated by commas (`us-east-1,us-west-2`).
    pub region: String,
    /// The signature algorithm (`signature` in the file: `sigv4` or `sigv4a`):
    /// as given, else what the upstream host implies when it is an AWS
    /// endpoint (SigV4a for S3 Multi-Region Access Points and EventBridge
    /// global endpoints), else SigV4.
    #[serde(skip)]
    pub algorithm: Algorithm,
    /// `signature` as the effective configuration prints it: set when the
    /// algorithm is SigV4a, or differs from what the upstream host implies, so
    /// the printed file loads back to the same algorithm.
    #[serde(
        rename = "signature",
        skip_serializing_if = "Option::is_none",
        serialize_with = "signature_serde::serialize_option"
    )]
    signature_shown: Option<Algorithm>,
    /// Host signed instead of the upstream's (aws-sigv4-proxy's `--sign-host`).
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_authority"
    )]
    pub sign_host: Option<http::uri::Authority>,
    /// Whether requests authenticate with S3 Express One Zone sessions (signed
    /// with the credentials CreateSession returns, the token in
    /// `x-amz-s3session-token`) instead of with the IAM credentials directly:
    /// `s3express_session` as given, else on for `s3express` routes whose
    /// signed host is a zonal endpoint. CopyObject, UploadPartCopy, HeadBucket
    /// and CreateSession itself sign with the IAM credentials all the same.
    #[serde(skip)]
    pub s3express_session: bool,
    /// `s3express_session` as the effective configuration prints it: on
    /// `s3express` routes only, so the printed file loads back the same.
    #[serde(rename = "s3express_session", skip_serializing_if = "Option::is_none")]
    s3express_session_shown: Option<bool>,
    /// Prefix removed from the path before forwarding.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strip_prefix: Option<String>,
    /// Payload mode.
    pub payload: PayloadMode,
    /// Body cap for signed payloads, bytes.
    #[serde(with = "bytes_serde")]
    pub body_cap: u64,
    /// Headers forwarded but not signed (`sign_headers.exclude` in the file).
    #[serde(rename = "sign_headers", serialize_with = "serialize_sign_headers")]
    pub sign_headers_exclude: HeaderPatterns,
    /// Headers removed before signing.
    pub strip_headers: HeaderPatterns,
    /// Headers added (defaults' merged with the route's).
    pub custom_headers: CustomHeaders,
    /// Credential source name.
    pub credentials: String,
    /// Role assumed with the source's credentials for this route.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// Retries, timeouts and limits.
    #[serde(flatten)]
    pub policy: RoutePolicy,
}

/// The format of a configuration file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigFormat {
    /// TOML (`.toml`, and any other extension).
    Toml,
    /// YAML (`.yaml`, `.yml`).
    Yaml,
}

impl ConfigFormat {
    /// The format a file name implies: YAML for `.yaml`/`.yml`, TOML otherwise.
    pub fn from_path(path: &Path) -> ConfigFormat {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("yaml" | "yml") => ConfigFormat::Yaml,
            _ => ConfigFormat::Toml,
        }
    }

    fn to_config(self) -> config::FileFormat {
        match self {
            ConfigFormat::Toml => config::FileFormat::Toml,
            ConfigFormat::Yaml => config::FileFormat::Yaml,
        }
    }
}

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The key path (`routes[2].region`, `admin.listen`) or flag (`--service`).
    pub key: String,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.reason)
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML/YAML.
    #[error("{origin}: {message}")]
    Syntax {
        /// The file, or "the embedded default".
        origin: String,
        /// The parser's message (file excerpts removed).
        message: String,
    },
    /// Keys or values are wrong; each problem names its key.
    #[error("{}", format_problems(problems))]
    Invalid {
        /// Every problem found.
        problems: Vec<Problem>,
    },
}

fn format_problems(problems: &[Problem]) -> String {
    match problems {
        [one] => one.to_string(),
        many => {
            let mut out = format!("{} problems in the configuration:", many.len());
            for p in many {
                out.push_str("\n  ");
                out.push_str(&p.to_string());
            }
            out
        }
    }
}

impl ConfigError {
    /// The problems of an [`ConfigError::Invalid`] error (empty otherwise).
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Invalid { problems } => problems,
            _ => &[],
        }
    }
}

impl Settings {
    /// The number of proxy worker threads to run: `workers`, or when it is 0,
    /// the CPUs this process may use (cgroup quotas included).
    pub fn worker_threads(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }

    /// Loads from the `--config` file (or the embedded default), the process's
    /// `SIGNET_*` environment variables and the flags, then validates.
    pub fn load(args: &ServeArgs) -> Result<Settings, ConfigError> {
        Self::load_from(args, std::env::vars())
    }

    /// Like [`Settings::load`] with the environment given explicitly, so tests
    /// need not mutate the process environment. Only `SIGNET_*` entries are read
    /// (`SIGNET_CONFIG` is the `--config` flag's and is skipped).
    pub fn load_from<I>(args: &ServeArgs, env: I) -> Result<Settings, ConfigError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let (text, format, origin) = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                (
                    text,
                    ConfigFormat::from_path(path),
                    path.display().to_string(),
                )
            }
            None => (
                defaults::EMBEDDED_CONFIG.to_string(),
                ConfigFormat::Toml,
                "the embedded default config".to_string(),
            ),
        };
        let raw = file::parse_layers(&text, format, &origin, env)?;
        let raw = file::apply_flags(raw, args)?;
        let mut settings = validate::validate(raw)?;
        settings.config_file = args.config.clone();
        Ok(settings)
    }

    /// Parses and validates one document, without environment or flags.
    #[allow(clippy::should_implement_trait)]
    pub fn from_str(text: &str, format: ConfigFormat) -> Result<Settings, ConfigError> {
        let raw = file::parse_layers(text, format, "the config", std::iter::empty())?;
        validate::validate(raw)
    }

    /// The embedded default configuration, validated.
    pub fn embedded_default() -> Result<Settings, ConfigError> {
        Self::from_str(defaults::EMBEDDED_CONFIG, ConfigFormat::Toml)
    }

    /// The effective configuration as TOML, with secrets (static keys, session
    /// tokens, sensitive custom header values) shown as `<redacted>`; for
    /// `signet check --config FILE`.
    pub fn redacted_toml(&self) -> String {
        let value = match serde_json::to_value(self) {
            Ok(v) => strip_nulls(v),
            Err(e) => return format!("# cannot print the configuration: {e}\n"),
        };
        match toml::to_string(&value) {
            Ok(text) => text,
            Err(e) => format!("# cannot print the configuration: {e}\n"),
        }
    }
}

/// The names of [`Algorithm`] in the file: `signature = "sigv4" | "sigv4a"`.
pub(crate) mod signature_serde {
    use serde::Deserialize;

    use crate::sigv4::Algorithm;

    /// Each algorithm and its name in the file, in the order error messages list them.
    const NAMES: &[(&str, Algorithm)] = &[("sigv4", Algorithm::V4), ("sigv4a", Algorithm::V4a)];

    /// The file's name for `algorithm`.
    pub(crate) fn name(algorithm: Algorithm) -> &'static str {
        match algorithm {
            Algorithm::V4 => "sigv4",
            Algorithm::V4a => "sigv4a",
        }
    }

    /// Writes the file's name for the algorithm (nothing for `None`).
    pub(crate) fn serialize_option<S: serde::Serializer>(
        algorithm: &Option<Algorithm>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match algorithm {
            Some(a) => serializer.serialize_str(name(*a)),
            None => serializer.serialize_none(),
        }
    }

    /// Reads an optional name, refusing unknown ones with the list of names.
    pub(crate) fn deserialize_option<'de, D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Algorithm>, D::Error> {
        let text = String::deserialize(deserializer)?;
        let wanted = text.trim().to_ascii_lowercase();
        match NAMES.iter().find(|(name, _)| *name == wanted) {
            Some((_, algorithm)) => Ok(Some(*algorithm)),
            None => {
                let names: Vec<&str> = NAMES.iter().map(|(name, _)| *name).collect();
                Err(serde::de::Error::custom(format!(
                    "'{text}' is not one of {}",
                    names.join(", ")
                )))
            }
        }
    }
}

fn serialize_authority<S: serde::Serializer>(
    authority: &Option<http::uri::Authority>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match authority {
        Some(a) => serializer.collect_str(a),
        None => serializer.serialize_none(),
    }
}

fn serialize_sign_headers<S: serde::Serializer>(
    patterns: &HeaderPatterns,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = serializer.serialize_map(Some(1))?;
    map.serialize_entry("exclude", patterns)?;
    map.end()
}

fn strip_nulls(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .filter(|v| !v.is_null())
                .map(strip_nulls)
                .collect(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Settings, ConfigError> {
        Settings::from_str(text, ConfigFormat::Toml)
    }

    fn error_text(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn embedded_default_is_a_valid_local_gateway() {
        let s = Settings::embedded_default().unwrap();
        assert_eq!(s.listen.to_string(), defaults::LISTEN);
        assert_eq!(s.admin.listen.to_string(), defaults::ADMIN_LISTEN);
        assert_eq!(s.shutdown.drain_timeout, defaults::DRAIN_TIMEOUT);
        assert_eq!(s.defaults.body_cap, defaults::BODY_CAP);
        assert!(s.defaults.aws_host_routing);
        assert!(s.routes.is_empty());
        assert!(s.credentials.contains_key("default"));
        let excluded: Vec<String> = s.defaults.sign_headers_exclude.patterns().collect();
        let expected: Vec<String> = defaults::SIGN_HEADERS_EXCLUDE
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(excluded, expected);
    }

    #[test]
    fn empty_document_takes_the_built_in_defaults() {
        let s = parse("").unwrap();
        assert_eq!(
            s,
            Settings {
                config_file: None,
                ..Settings::embedded_default().unwrap()
            }
        );
    }

    #[test]
    fn rejects_unknown_key_with_its_path() {
        let e = error_text("[admin]\nlisten = \"127.0.0.1:9999\"\nport = 3\n");
        assert!(e.starts_with("admin.port: unknown field `port`"), "{e}");
        let e = error_text(
            "[[routes]]\nname = \"a\"\nupstream = \"http://127.0.0.1:9000\"\nservice = \"s3\"\nregion = \"us-east-1\"\n\
             [[routes]]\nname = \"b\"\nupstream = \"http://127.0.0.1:9000\"\nservice = \"s3\"\nregion = \"us-east-1\"\npath_prefx = \"/b\"\n",
        );
        assert!(
            e.starts_with("routes[1].path_prefx: unknown field `path_prefx`"),
            "{e}"
        );
    }

    const ROUTE: &str = "[[routes]]\nname = \"r{i}\"\nupstream = \"http://127.0.0.1:9000\"\nservice = \"s3\"\nregion = \"us-east-1\"\npath_prefix = \"/r{i}\"\n";

    fn routes(n: usize) -> String {
        (0..n)
            .map(|i| ROUTE.replace("{i}", &i.to_string()))
            .collect()
    }

    #[test]
    fn rejects_bad_region_naming_route_and_key() {
        let text = routes(2) + "[[routes]]\nname = \"search\"\nupstream = \"https://example.internal\"\nservice = \"es\"\nregion = \"us-est-1\"\n";
        let e = error_text(&text);
        assert_eq!(
            e,
            "routes[2].region: 'us-est-1' is not a region name (route \"search\")"
        );
    }

    #[test]
    fn rejects_bad_upstream_urls() {
        for (url, needle) in [
            ("ftp://127.0.0.1", "scheme 'ftp' is not http or https"),
            ("127.0.0.1:9000", "needs a scheme"),
            ("/just/a/path", "needs a scheme"),
            ("http://", "is not a URL"),
            ("https://h.example/x?y=1", "cannot carry a query"),
            (
                "http://sqs.us-east-1.amazonaws.com",
                "session token in clear",
            ),
            ("http://user:pw@h.example", "user info"),
        ] {
            let text = format!("[[routes]]\nname = \"opensearch\"\nupstream = \"{url}\"\nservice = \"es\"\nregion = \"us-east-1\"\n");
            let e = error_text(&text);
            assert!(e.starts_with("routes[0].upstream: "), "{url}: {e}");
            assert!(e.contains(needle), "{url}: {e}");
            assert!(e.ends_with("(route \"opensearch\")"), "{url}: {e}");
        }
    }

    #[test]
    fn rejects_duplicate_and_shadowed_routes() {
        let dup = routes(2)
            + &ROUTE
                .replace("{i}", "1")
                .replace("name = \"r1\"", "name = \"again\"");
        let e = error_text(&dup);
        assert_eq!(
            e,
            "routes[2]: matches exactly what routes[1] (\"r1\") matches (route \"again\")"
        );

        let shadowed = "[[routes]]\nname = \"all-api\"\npath_prefix = \"/api\"\nupstream = \"http://127.0.0.1:9000\"\nservice = \"s3\"\nregion = \"us-east-1\"\n\
                        [[routes]]\nname = \"api-v2\"\npath_prefix = \"/api/v2\"\nupstream = \"http://127.0.0.1:9001\"\nservice = \"s3\"\nregion = \"us-east-1\"\n";
        let e = error_text(shadowed);
        assert!(
            e.starts_with("routes[1]: can never match: routes[0] (\"all-api\") comes first"),
            "{e}"
        );

        // The specific route first is fine, and /apix is not under /api.
        let fine = "[[routes]]\nname = \"api-v2\"\npath_prefix = \"/api/v2\"\nupstream = \"http://127.0.0.1:9001\"\nservice = \"s3\"\nregion = \"us-east-1\"\n\
                    [[routes]]\nname = \"all-api\"\npath_prefix = \"/api\"\nupstream = \"http://127.0.0.1:9000\"\nservice = \"s3\"\nregion = \"us-east-1\"\n\
                    [[routes]]\nname = \"apix\"\npath_prefix = \"/apix\"\nupstream = \"http://127.0.0.1:9000\"\nservice = \"s3\"\nregion = \"us-east-1\"\n";
        assert_eq!(parse(fine).unwrap().routes.len(), 3);

        // A host-less catch-all shadows a later host route.
        let catch_all = "[[routes]]\nname = \"all\"\nupstream = \"http://127.0.0.1:9000\"\nservice = \"s3\"\nregion = \"us-east-1\"\n\
                         [[routes]]\nname = \"h\"\nhost = \"a.example\"\nupstream = \"http://127.0.0.1:9000\"\nservice = \"s3\"\nregion = \"us-east-1\"\n";
        assert!(error_text(catch_all).starts_with("routes[1]: can never match"));
    }

    #[test]
    fn rejects_duplicate_route_names() {
        let text = routes(2).replace("name = \"r1\"", "name = \"r0\"");
        assert_eq!(
            error_text(&text),
            "routes[1].name: 'r0' is also the name of routes[0] (route \"r0\")"
        );
    }

    #[test]
    fn refuses_missing_service_for_non_aws_upstream() {
        let text = "[[routes]]\nname = \"minio\"\nupstream = \"http://127.0.0.1:9000\"\nregion = \"us-east-1\"\n";
        let e = error_text(text);
        assert_eq!(
            e,
            "routes[0].service: missing, and the upstream host 127.0.0.1 is not an AWS endpoint to derive it from; set it (route \"minio\")"
        );
        let text = "[[routes]]\nname = \"minio\"\nupstream = \"http://127.0.0.1:9000\"\n";
        let problems: Vec<String> = parse(text)
            .unwrap_err()
            .problems()
            .iter()
            .map(|p| p.key.clone())
            .collect();
        assert_eq!(problems, ["routes[0].service", "routes[0].region"]);
    }

    #[test]
    fn routes_fall_back_to_default_service_and_region_only_when_nothing_is_derived() {
        let text = "[defaults]\nservice = \"s3\"\nregion = \"eu-west-1\"\n\
                    [[routes]]\nname = \"minio\"\npath_prefix = \"/m\"\nupstream = \"http://127.0.0.1:9000\"\n\
                    [[routes]]\nname = \"sqs\"\nupstream = \"https://sqs.ap-south-2.amazonaws.com\"\n";
        let s = parse(text).unwrap();
        assert_eq!(
            (s.routes[0].service.as_str(), s.routes[0].region.as_str()),
            ("s3", "eu-west-1")
        );
        assert_eq!(
            (s.routes[1].service.as_str(), s.routes[1].region.as_str()),
            ("sqs", "ap-south-2")
        );
    }

    #[test]
    fn derives_service_and_region_from_an_aws_upstream() {
        let s = parse("[[routes]]\nname = \"amp\"\nupstream = \"https://aps-workspaces.eu-west-1.amazonaws.com\"\n").unwrap();
        assert_eq!(
            (s.routes[0].service.as_str(), s.routes[0].region.as_str()),
            ("aps", "eu-west-1")
        );
        let s = parse("[[routes]]\nname = \"amp\"\nupstream = \"https://aps-workspaces.eu-west-1.amazonaws.com\"\nregion = \"eu-west-2\"\n").unwrap();
        assert_eq!(s.routes[0].region, "eu-west-2");
    }

    #[test]
    fn rejects_unknown_credentials_source() {
        let text = "[credentials.analytics]\nkind = \"environment\"\n[[routes]]\nname = \"q\"\nupstream = \"https://sqs.us-east-1.amazonaws.com\"\ncredentials = \"analytcs\"\n";
        assert_eq!(
            error_text(text),
            "routes[0].credentials: no credentials source named 'analytcs' (configured: analytics, default) (route \"q\")"
        );
    }

    #[test]
    fn rejects_bad_values_with_key_and_reason() {
        for (text, want) in [
            (
                "listen = \"localhost\"\n",
                "listen: 'localhost' is not an address such as 127.0.0.1:8080",
            ),
            (
                "workers = 5000\n",
                "workers: must be at most 1024 (0: one per CPU)",
            ),
            (
                "[shutdown]\ndrain_timeout = \"20\"\n",
                "shutdown.drain_timeout: invalid duration \"20\": missing unit (ms, s, m or h)",
            ),
            (
                "[defaults]\nbody_cap = \"16XB\"\n",
                "defaults.body_cap: invalid size \"16XB\": unknown unit",
            ),
            (
                "[defaults]\npayload = \"chunked\"\n",
                "defaults.payload: 'chunked' is not one of signed, unsigned, auto",
            ),
            (
                "[defaults]\nbody_cap = 0\n",
                "defaults.body_cap: must be at least 1 byte",
            ),
            (
                "[defaults.retry]\nmax_attempts = 0\n",
                "defaults.retry.max_attempts: must be between 1 and 10",
            ),
            (
                "[defaults.sign_headers]\nexclude = [\"x-amz-*\"]\n",
                "defaults.sign_headers.exclude: 'x-amz-*' would leave a header signing owns",
            ),
            (
                "[defaults.sign_headers]\nexclude = [\"*\"]\n",
                "defaults.sign_headers.exclude: '*' would match every header",
            ),
            (
                "[defaults.custom_headers]\nauthorization = \"x\"\n",
                "defaults.custom_headers.authorization: is set by signet itself",
            ),
            (
                "[log]\nformat = \"xml\"\n",
                "log.format: 'xml' is not one of json, pretty, auto",
            ),
            (
                "[admin]\nlisten = \"127.0.0.1:8080\"\n",
                "admin.listen: '127.0.0.1:8080' is also the proxy's listen address",
            ),
            (
                "listen = \"0.0.0.0:8080\"\n[admin]\nlisten = \"127.0.0.1:8080\"\n",
                "admin.listen: '127.0.0.1:8080' takes the port the proxy listens on ('0.0.0.0:8080')",
            ),
            (
                "listen = \"127.0.0.1:9000\"\n[admin]\nlisten = \"[::]:9000\"\n",
                "admin.listen: '[::]:9000' takes the port the proxy listens on ('127.0.0.1:9000')",
            ),
            (
                "[credentials.x]\nkind = \"sso\"\n",
                "credentials.x.kind: unknown variant `sso`",
            ),
            (
                "[credentials.x]\nkind = \"imds\"\nendpont = \"http://x\"\n",
                "credentials.x: unknown field `endpont`, expected one of `endpoint`",
            ),
            (
                "[credentials.x]\nkind = \"profile\"\n[credentials.x.assume_role]\nrole_arn = \"arn:aws:iam::1:role/x\"\n",
                "credentials.x: role_arn \"arn:aws:iam::1:role/x\" is not an IAM role ARN",
            ),
            (
                "[defaults]\nrole_arn = \"arn:aws:iam::1:role/x\"\n",
                "defaults.role_arn: role_arn",
            ),
            ("listen = [\n", "the config: "),
        ] {
            let e = error_text(text);
            assert!(e.starts_with(want), "{text:?}\n got: {e}\nwant: {want}");
        }
    }

    #[test]
    fn rejects_route_field_errors_in_overrides() {
        let text = "[[routes]]\nname = \"q\"\nupstream = \"https://sqs.us-east-1.amazonaws.com\"\nstrip_prefix = true\ntimeouts = { connect = \"5\" }\nretry = { max_attemps = 2 }\n";
        let keys: Vec<String> = parse(text)
            .unwrap_err()
            .problems()
            .iter()
            .map(|p| p.to_string())
            .collect();
        assert_eq!(keys.len(), 3, "{keys:?}");
        assert!(
            keys[0].starts_with("routes[0].strip_prefix: true needs a path_prefix"),
            "{keys:?}"
        );
        assert!(
            keys[1].starts_with("routes[0].retry.max_attemps: unknown field"),
            "{keys:?}"
        );
        assert!(
            keys[2].starts_with("routes[0].timeouts.connect: invalid duration"),
            "{keys:?}"
        );
    }

    #[test]
    fn reports_every_problem_at_once() {
        let e = parse("listen = \"x\"\n[admin]\nlisten = \"y\"\n").unwrap_err();
        assert_eq!(e.problems().len(), 2);
        assert!(
            e.to_string()
                .starts_with("2 problems in the configuration:\n  listen: "),
            "{e}"
        );
    }

    #[test]
    fn admin_may_share_a_port_on_another_address() {
        for (proxy, admin) in [
            ("127.0.0.1:8080", "127.0.0.2:8080"),
            ("0.0.0.0:8080", "[::1]:8080"),
            ("127.0.0.1:0", "127.0.0.1:0"),
        ] {
            let text = format!("listen = \"{proxy}\"\n[admin]\nlisten = \"{admin}\"\n");
            assert!(parse(&text).is_ok(), "{proxy} and {admin}");
        }
    }

    #[test]
    fn a_strip_list_may_name_any_header() {
        let s =
            parse("[defaults]\nstrip_headers = [\"x-amz-meta-*\", \"authorization\", \"host\"]\n")
                .unwrap();
        assert!(s.defaults.strip_headers.matches("x-amz-meta-owner"));
        assert!(s.defaults.strip_headers.matches("authorization"));
    }

    #[test]
    fn accepts_yaml() {
        let yaml = "listen: 127.0.0.1:7000\nroutes:\n  - name: q\n    upstream: https://sqs.us-east-2.amazonaws.com\n    body_cap: 1024\n";
        let s = Settings::from_str(yaml, ConfigFormat::Yaml).unwrap();
        assert_eq!(s.listen.port(), 7000);
        assert_eq!(s.routes[0].body_cap, 1024);
        assert_eq!(s.routes[0].region, "us-east-2");
    }

    #[test]
    fn redacted_toml_hides_secrets_and_loads_back() {
        let text = r#"
            [credentials.local]
            kind = "static"
            access_key_id = "AKIAIOSFODNN7EXAMPLE"
            secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
            session_token = "FQoGZXIvYXdzEXAMPLETOKEN"

            [[routes]]
            name = "search"
            path_prefix = "/search"
            strip_prefix = true
            upstream = "https://search-x.us-west-2.es.amazonaws.com/base"
            credentials = "local"
            custom_headers = { "x-api-key" = "sup3rs3cret", "x-tenant" = "blue" }
            timeouts = { first_byte = "90s" }
        "#;
        let s = parse(text).unwrap();
        let printed = s.redacted_toml();
        for secret in ["wJalrXUtnFEMI", "FQoGZXIvYXdz", "sup3rs3cret"] {
            assert!(!printed.contains(secret), "{printed}");
            assert!(!format!("{s:?}").contains(secret));
        }
        assert!(
            printed.contains("AKIAIOSFODNN7EXAMPLE") && printed.contains("blue"),
            "{printed}"
        );
        let back = parse(&printed).unwrap_or_else(|e| panic!("{e}\n{printed}"));
        assert_eq!(back.routes[0].policy, s.routes[0].policy);
        assert_eq!(back.routes[0].upstream, s.routes[0].upstream);
        assert_eq!(back.routes[0].strip_prefix, s.routes[0].strip_prefix);
        assert_eq!(back.defaults, s.defaults);
        assert_eq!(back.listen, s.listen);
    }

    /// Each route's (service, region, algorithm).
    fn signing_of(s: &Settings) -> Vec<(&str, &str, Algorithm)> {
        s.routes
            .iter()
            .map(|r| (r.service.as_str(), r.region.as_str(), r.algorithm))
            .collect()
    }

    const MRAP: &str = "https://mfzwi23gnjvgw.mrap.accesspoint.s3-global.amazonaws.com";

    #[test]
    fn signature_defaults_to_what_the_upstream_host_implies() {
        let text = format!(
            "[defaults]\nregion = \"eu-west-1\"\n\
             [[routes]]\nname = \"mrap\"\npath_prefix = \"/mrap\"\nupstream = \"{MRAP}\"\n\
             [[routes]]\nname = \"events\"\npath_prefix = \"/events\"\nupstream = \"https://abcde.veo.endpoint.events.amazonaws.com\"\n\
             [[routes]]\nname = \"sqs\"\npath_prefix = \"/sqs\"\nupstream = \"https://sqs.us-east-1.amazonaws.com\"\n\
             [[routes]]\nname = \"minio\"\nupstream = \"http://127.0.0.1:9000\"\nservice = \"s3\"\n"
        );
        let s = parse(&text).unwrap();
        assert_eq!(
            signing_of(&s),
            [
                ("s3", "*", Algorithm::V4a),
                ("events", "*", Algorithm::V4a),
                ("sqs", "us-east-1", Algorithm::V4),
                ("s3", "eu-west-1", Algorithm::V4),
            ]
        );
    }

    #[test]
    fn signature_sigv4a_takes_a_region_set_that_defaults_to_every_region() {
        let text = format!(
            "[defaults]\nregion = \"eu-west-1\"\n\
             [[routes]]\nname = \"a\"\npath_prefix = \"/a\"\nupstream = \"https://sqs.us-east-1.amazonaws.com\"\nsignature = \"sigv4a\"\n\
             [[routes]]\nname = \"b\"\npath_prefix = \"/b\"\nupstream = \"{MRAP}\"\nsignature = \"SigV4a\"\nregion = \"us-east-1,us-west-2\"\n\
             [[routes]]\nname = \"c\"\npath_prefix = \"/c\"\nupstream = \"https://tunnel.internal:8443\"\nservice = \"s3\"\nsignature = \"sigv4a\"\n\
             [[routes]]\nname = \"d\"\npath_prefix = \"/d\"\nupstream = \"{MRAP}\"\nregion = \"us-east-1\"\n"
        );
        let s = parse(&text).unwrap();
        let got: Vec<(&str, Algorithm)> = s
            .routes
            .iter()
            .map(|r| (r.region.as_str(), r.algorithm))
            .collect();
        assert_eq!(
            got,
            [
                ("*", Algorithm::V4a),
                ("us-east-1,us-west-2", Algorithm::V4a),
                // defaults.region is one SigV4 region, not a region set.
                ("*", Algorithm::V4a),
                ("us-east-1", Algorithm::V4a),
            ]
        );
        assert_eq!(s.routes[0].service, "sqs");
    }

    #[test]
    fn derives_service_region_and_signature_from_an_aws_sign_host() {
        // An MRAP reached through an S3 interface endpoint, and an OpenSearch
        // domain through a tunnel: what is signed is `sign_host`.
        let text = format!(
            "[[routes]]\nname = \"mrap\"\npath_prefix = \"/mrap\"\n\
             upstream = \"https://bucket.vpce-0a1b2c3d-e4f5g6h7.s3.us-east-1.vpce.amazonaws.com\"\n\
             sign_host = \"{}\"\n\
             [[routes]]\nname = \"search\"\npath_prefix = \"/search\"\n\
             upstream = \"https://127.0.0.1:8443\"\n\
             sign_host = \"search-d.us-west-2.es.amazonaws.com\"\n\
             [[routes]]\nname = \"local\"\nupstream = \"https://sqs.eu-west-1.amazonaws.com\"\n\
             sign_host = \"queue.internal\"\n",
            MRAP.trim_start_matches("https://")
        );
        let s = parse(&text).unwrap();
        assert_eq!(
            signing_of(&s),
            [
                ("s3", "*", Algorithm::V4a),
                ("es", "us-west-2", Algorithm::V4),
                // A sign_host that is not an AWS endpoint: the upstream's.
                ("sqs", "eu-west-1", Algorithm::V4),
            ]
        );
    }

    #[test]
    fn signature_sigv4_keeps_one_region() {
        let text = format!(
            "[[routes]]\nname = \"m\"\nupstream = \"{MRAP}\"\nsignature = \"sigv4\"\nregion = \"us-east-1\"\n"
        );
        let s = parse(&text).unwrap();
        assert_eq!(
            (s.routes[0].region.as_str(), s.routes[0].algorithm),
            ("us-east-1", Algorithm::V4)
        );
        assert_eq!(
            error_text(&format!(
                "[[routes]]\nname = \"m\"\nupstream = \"{MRAP}\"\nsignature = \"sigv4\"\n"
            )),
            "routes[0].region: missing, and the signed host mfzwi23gnjvgw.mrap.accesspoint.s3-global.amazonaws.com implies the sigv4a region set '*', not a region for sigv4; set it (route \"m\")"
        );
        for set in ["*", "us-east-1,us-west-2"] {
            assert_eq!(
                error_text(&format!(
                    "[[routes]]\nname = \"q\"\nupstream = \"https://sqs.us-east-1.amazonaws.com\"\nregion = \"{set}\"\n"
                )),
                format!("routes[0].region: '{set}' is not a region name (a region set needs signature = \"sigv4a\") (route \"q\")")
            );
        }
    }

    #[test]
    fn rejects_bad_region_sets_naming_the_key_and_route() {
        for (set, why) in [
            (
                "",
                "give '*' (every region) or region names separated by commas",
            ),
            ("us-east-1, us-west-2", "it has spaces"),
            (" *", "it has spaces"),
            ("us-east-1,", "it has an empty element"),
            ("*,us-east-1", "'*' (every region) must stand alone"),
            (
                "eu-west-1,cn-north-1",
                "cn-north-1 is in the aws-cn partition and eu-west-1 in aws",
            ),
            (
                "us-east-1,us-est-1",
                "'us-est-1' is not a region name or '*'",
            ),
            ("us-east-1,us-east-1", "it names us-east-1 twice"),
        ] {
            let text = routes(2)
                + &format!(
                    "[[routes]]\nname = \"mrap\"\nupstream = \"{MRAP}\"\nregion = \"{set}\"\n"
                );
            let e = error_text(&text);
            assert!(
                e.starts_with(&format!("routes[2].region: '{set}' is not a region set: ")),
                "{set:?}: {e}"
            );
            assert!(e.contains(why), "{set:?}: {e}");
            assert!(e.ends_with("(route \"mrap\")"), "{set:?}: {e}");
        }
    }

    #[test]
    fn rejects_an_unknown_signature_listing_the_allowed_values() {
        let text =
            format!("[[routes]]\nname = \"m\"\nupstream = \"{MRAP}\"\nsignature = \"sigv4-a\"\n");
        assert_eq!(
            error_text(&text),
            "routes[0].signature: 'sigv4-a' is not one of sigv4, sigv4a"
        );
    }

    #[test]
    fn a_flag_route_to_a_sigv4a_upstream_names_the_region_flag() {
        let args = ServeArgs {
            upstream: Some(MRAP.into()),
            region: Some("us-east-1, us-west-2".into()),
            ..ServeArgs::default()
        };
        let e = Settings::load_from(&args, std::iter::empty())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("--region: 'us-east-1, us-west-2' is not a region set: it has spaces"),
            "{e}"
        );
        let args = ServeArgs {
            region: Some("us-east-1,us-west-2".into()),
            ..args
        };
        let s = Settings::load_from(&args, std::iter::empty()).unwrap();
        assert_eq!(
            (s.routes[0].region.as_str(), s.routes[0].algorithm),
            ("us-east-1,us-west-2", Algorithm::V4a)
        );
    }

    #[test]
    fn refuses_a_custom_region_set_header() {
        assert!(
            error_text("[defaults.custom_headers]\nx-amz-region-set = \"*\"\n")
                .starts_with("defaults.custom_headers.x-amz-region-set: is set by signet itself")
        );
    }

    #[test]
    fn prints_the_signature_when_sigv4a_and_loads_it_back() {
        let text = format!(
            "[[routes]]\nname = \"mrap\"\npath_prefix = \"/mrap\"\nupstream = \"{MRAP}\"\n\
             [[routes]]\nname = \"mrap-v4\"\npath_prefix = \"/mrap-v4\"\nupstream = \"{MRAP}\"\nsignature = \"sigv4\"\nregion = \"us-east-1\"\n\
             [[routes]]\nname = \"sqs\"\npath_prefix = \"/sqs\"\nupstream = \"https://sqs.us-east-1.amazonaws.com\"\nsignature = \"sigv4\"\n"
        );
        let s = parse(&text).unwrap();
        let printed = s.redacted_toml();
        assert_eq!(
            printed.matches("signature = \"sigv4a\"").count(),
            1,
            "{printed}"
        );
        // sigv4 is printed only where the upstream host would imply sigv4a.
        assert_eq!(
            printed.matches("signature = \"sigv4\"").count(),
            1,
            "{printed}"
        );
        let back = parse(&printed).unwrap_or_else(|e| panic!("{e}\n{printed}"));
        assert_eq!(back.routes, s.routes);
    }

    const ZONAL: &str = "b--usw2-az1--x-s3.s3express-usw2-az1.us-west-2.amazonaws.com";

    #[test]
    fn s3express_sessions_default_to_on_for_routes_signing_a_zonal_host() {
        let text = format!(
            "[[routes]]\nname = \"zonal\"\npath_prefix = \"/z\"\nupstream = \"https://{ZONAL}\"\n\
             [[routes]]\nname = \"tunnel\"\npath_prefix = \"/t\"\nupstream = \"http://127.0.0.1:9000\"\nsign_host = \"{ZONAL}\"\n\
             [[routes]]\nname = \"control\"\npath_prefix = \"/c\"\nupstream = \"https://s3express-control.us-west-2.amazonaws.com\"\n\
             [[routes]]\nname = \"local\"\npath_prefix = \"/l\"\nupstream = \"http://127.0.0.1:9000\"\nservice = \"s3express\"\nregion = \"us-west-2\"\n\
             [[routes]]\nname = \"forced\"\npath_prefix = \"/f\"\nupstream = \"http://127.0.0.1:9000\"\nservice = \"s3express\"\nregion = \"us-west-2\"\ns3express_session = true\n\
             [[routes]]\nname = \"off\"\npath_prefix = \"/o\"\nupstream = \"https://{ZONAL}\"\ns3express_session = false\n\
             [[routes]]\nname = \"s3\"\npath_prefix = \"/s3\"\nupstream = \"https://{ZONAL}\"\nservice = \"s3\"\n"
        );
        let s = parse(&text).unwrap();
        let sessions: Vec<(&str, &str, bool)> = s
            .routes
            .iter()
            .map(|r| (r.name.as_str(), r.service.as_str(), r.s3express_session))
            .collect();
        assert_eq!(
            sessions,
            [
                ("zonal", "s3express", true),
                ("tunnel", "s3express", true),
                ("control", "s3express", false),
                ("local", "s3express", false),
                ("forced", "s3express", true),
                ("off", "s3express", false),
                ("s3", "s3", false),
            ]
        );
        // Printed on s3express routes only, and loaded back the same.
        let printed = s.redacted_toml();
        assert_eq!(
            printed.matches("s3express_session = true").count(),
            3,
            "{printed}"
        );
        assert_eq!(
            printed.matches("s3express_session = false").count(),
            3,
            "{printed}"
        );
        let back = parse(&printed).unwrap_or_else(|e| panic!("{e}\n{printed}"));
        assert_eq!(back.routes, s.routes);
    }

    #[test]
    fn refuses_s3express_sessions_a_route_cannot_sign_with() {
        let e = error_text(
            "[[routes]]\nname = \"q\"\nupstream = \"https://sqs.us-east-1.amazonaws.com\"\ns3express_session = true\n",
        );
        assert_eq!(
            e,
            "routes[0].s3express_session: true needs service = \"s3express\" (the route signs for 'sqs') (route \"q\")"
        );
        let e = error_text(&format!(
            "[[routes]]\nname = \"z\"\nupstream = \"https://{ZONAL}\"\nsignature = \"sigv4a\"\ns3express_session = true\n"
        ));
        assert_eq!(
            e,
            "routes[0].s3express_session: true needs signature = \"sigv4\": S3 Express sessions sign with SigV4 (route \"z\")"
        );
        let e = error_text(&format!(
            "[[routes]]\nname = \"z\"\nupstream = \"https://{ZONAL}\"\ns3express_session = \"maybe\"\n"
        ));
        assert!(e.starts_with("routes[0].s3express_session: "), "{e}");
        // Nor may the configuration add a session token of its own.
        assert!(
            error_text("[defaults.custom_headers]\nx-amz-s3session-token = \"t\"\n").starts_with(
                "defaults.custom_headers.x-amz-s3session-token: is set by signet itself"
            )
        );
    }

    #[test]
    fn syntax_errors_do_not_quote_the_file() {
        let text = "[credentials.local]\nkind = \"static\"\naccess_key_id = \"AKIAIOSFODNN7EXAMPLE\"\nsecret_access_key = \"wJalrXUtnFEMI/K7MDENG\" oops\n";
        let e = parse(text).unwrap_err();
        assert!(matches!(e, ConfigError::Syntax { .. }), "{e:?}");
        let shown = e.to_string();
        assert!(!shown.contains("wJalrXUtnFEMI"), "{shown}");
        assert!(shown.contains("line 4"), "{shown}");
        let yaml = "listen: [\nsecret: wJalrXUtnFEMI\n";
        let shown = Settings::from_str(yaml, ConfigFormat::Yaml)
            .unwrap_err()
            .to_string();
        assert!(!shown.contains("wJalrXUtnFEMI"), "{shown}");
    }
}
