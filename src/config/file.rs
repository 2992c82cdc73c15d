//! The configuration as written (file, environment, flags), before validation.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use super::units::bytes_serde;
use super::{defaults, ConfigError, ConfigFormat, LogFormat, PayloadMode, Problem, ServeArgs};
use crate::credentials::SourceSettings;
use crate::sigv4::Algorithm;
use crate::upstream::{duration_serde, LimitSettings, RetrySettings, TimeoutSettings, TlsSettings};

/// Environment keys that hold lists, split on commas.
const ENV_LIST_KEYS: &[&str] = &["defaults.sign_headers.exclude", "defaults.strip_headers"];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct FileSettings {
    pub listen: String,
    pub workers: usize,
    pub admin: AdminFile,
    pub log: LogFile,
    pub shutdown: ShutdownFile,
    pub connections: ConnectionsFile,
    pub tls: TlsSettings,
    pub credentials: BTreeMap<String, SourceSettings>,
    pub defaults: DefaultsFile,
    pub routes: Vec<RouteFile>,
}

impl Default for FileSettings {
    fn default() -> Self {
        Self {
            listen: defaults::LISTEN.into(),
            workers: 0,
            admin: AdminFile::default(),
            log: LogFile::default(),
            shutdown: ShutdownFile::default(),
            connections: ConnectionsFile::default(),
            tls: TlsSettings::default(),
            credentials: BTreeMap::new(),
            defaults: DefaultsFile::default(),
            routes: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct AdminFile {
    pub listen: String,
}

impl Default for AdminFile {
    fn default() -> Self {
        Self {
            listen: defaults::ADMIN_LISTEN.into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct LogFile {
    pub level: String,
    pub format: LogFormat,
}

impl Default for LogFile {
    fn default() -> Self {
        Self {
            level: defaults::LOG_LEVEL.into(),
            format: LogFormat::Auto,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct ShutdownFile {
    #[serde(with = "duration_serde")]
    pub drain_timeout: Duration,
}

impl Default for ShutdownFile {
    fn default() -> Self {
        Self {
            drain_timeout: defaults::DRAIN_TIMEOUT,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct ConnectionsFile {
    #[serde(with = "duration_serde")]
    pub idle_timeout: Duration,
}

impl Default for ConnectionsFile {
    fn default() -> Self {
        Self {
            idle_timeout: defaults::CLIENT_IDLE_TIMEOUT,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct SignHeadersFile {
    pub exclude: Vec<String>,
}

impl Default for SignHeadersFile {
    fn default() -> Self {
        Self {
            exclude: defaults::SIGN_HEADERS_EXCLUDE
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct DefaultsFile {
    pub payload: PayloadMode,
    #[serde(with = "bytes_serde")]
    pub body_cap: u64,
    pub sign_headers: SignHeadersFile,
    pub strip_headers: Vec<String>,
    pub custom_headers: BTreeMap<String, String>,
    pub credentials: String,
    pub role_arn: Option<String>,
    pub service: Option<String>,
    pub region: Option<String>,
    pub aws_host_routing: bool,
    pub retry: RetrySettings,
    pub timeouts: TimeoutSettings,
    pub limits: LimitSettings,
}

impl Default for DefaultsFile {
    fn default() -> Self {
        Self {
            payload: PayloadMode::Auto,
            body_cap: defaults::BODY_CAP,
            sign_headers: SignHeadersFile::default(),
            strip_headers: Vec::new(),
            custom_headers: BTreeMap::new(),
            credentials: defaults::CREDENTIALS_SOURCE.into(),
            role_arn: None,
            service: None,
            region: None,
            aws_host_routing: true,
            retry: RetrySettings::default(),
            timeouts: TimeoutSettings::default(),
            limits: LimitSettings::default(),
        }
    }
}

/// `strip_prefix = true` (strip the route's `path_prefix`) or `strip_prefix = "/x"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum StripPrefix {
    Enabled(bool),
    Prefix(String),
}

impl<'de> Deserialize<'de> for StripPrefix {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StripVisitor;
        impl Visitor<'_> for StripVisitor {
            type Value = StripPrefix;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("true, false or a path prefix such as \"/api\"")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<StripPrefix, E> {
                Ok(StripPrefix::Enabled(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StripPrefix, E> {
                match v {
                    "true" => Ok(StripPrefix::Enabled(true)),
                    "false" => Ok(StripPrefix::Enabled(false)),
                    prefix => Ok(StripPrefix::Prefix(prefix.to_string())),
                }
            }
        }
        deserializer.deserialize_any(StripVisitor)
    }
}

/// Which layer a route came from; errors of the flag route name flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum RouteOrigin {
    #[default]
    File,
    Flags,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RouteFile {
    pub name: String,
    #[serde(default)]
    pub path_prefix: Option<String>,
    #[serde(default)]
    pub host: Option<String>,
    pub upstream: String,
    #[serde(default)]
    pub service: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    /// `sigv4` or `sigv4a`; `None`: what the upstream host implies.
    #[serde(
        default,
        deserialize_with = "super::signature_serde::deserialize_option"
    )]
    pub signature: Option<Algorithm>,
    #[serde(default)]
    pub sign_host: Option<String>,
    /// S3 Express One Zone session authentication; `None`: on for
    /// `s3express` routes whose signed host is a zonal endpoint.
    #[serde(default)]
    pub s3express_session: Option<bool>,
    #[serde(default)]
    pub strip_prefix: Option<StripPrefix>,
    #[serde(default)]
    pub payload: Option<PayloadMode>,
    #[serde(default, with = "bytes_serde::option")]
    pub body_cap: Option<u64>,
    #[serde(default)]
    pub sign_headers: Option<SignHeadersFile>,
    #[serde(default)]
    pub strip_headers: Option<Vec<String>>,
    #[serde(default)]
    pub custom_headers: BTreeMap<String, String>,
    #[serde(default)]
    pub credentials: Option<String>,
    #[serde(default)]
    pub role_arn: Option<String>,
    /// Overrides merged field by field over `defaults.retry`.
    #[serde(default)]
    pub retry: Option<serde_json::Map<String, serde_json::Value>>,
    /// Overrides merged field by field over `defaults.timeouts`.
    #[serde(default)]
    pub timeouts: Option<serde_json::Map<String, serde_json::Value>>,
    /// Overrides merged field by field over `defaults.limits`.
    #[serde(default)]
    pub limits: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(skip)]
    pub origin: RouteOrigin,
}

impl RouteFile {
    fn from_flags(name: &str, upstream: String) -> Self {
        Self {
            name: name.to_string(),
            path_prefix: None,
            host: None,
            upstream,
            service: None,
            region: None,
            signature: None,
            sign_host: None,
            s3express_session: None,
            strip_prefix: None,
            payload: None,
            body_cap: None,
            sign_headers: None,
            strip_headers: None,
            custom_headers: BTreeMap::new(),
            credentials: None,
            role_arn: None,
            retry: None,
            timeouts: None,
            limits: None,
            origin: RouteOrigin::Flags,
        }
    }
}

/// Shortens a parser message: drops the excerpt lines TOML/YAML errors quote
/// from the file (they could hold secrets) and config's own key suffix.
fn tidy_message(message: &str) -> String {
    let kept: Vec<&str> = message
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty() && !l.contains('|'))
        .collect();
    let joined = kept.join(": ");
    match joined.find(" for key `") {
        Some(at) => joined[..at].to_string(),
        None => joined,
    }
}

/// Merges the document and the environment and deserializes, with errors
/// naming the key path.
pub(super) fn parse_layers<I>(
    text: &str,
    format: ConfigFormat,
    origin: &str,
    env: I,
) -> Result<FileSettings, ConfigError>
where
    I: IntoIterator<Item = (String, String)>,
{
    let env: config::Map<String, String> = env
        .into_iter()
        .filter(|(k, _)| {
            let upper = k.to_ascii_uppercase();
            upper.starts_with("SIGNET_") && upper != "SIGNET_CONFIG"
        })
        .collect();
    let mut environment = config::Environment::with_prefix("SIGNET")
        .prefix_separator("_")
        .separator("__")
        .try_parsing(true)
        .list_separator(",")
        .source(Some(env));
    for key in ENV_LIST_KEYS {
        environment = environment.with_list_parse_key(key);
    }
    let built = config::Config::builder()
        .add_source(config::File::from_str(text, format.to_config()))
        .add_source(environment)
        .build()
        .map_err(|e| ConfigError::Syntax {
            origin: origin.to_string(),
            message: tidy_message(&e.to_string()),
        })?;
    serde_path_to_error::deserialize::<_, FileSettings>(built).map_err(|e| {
        let key = e.path().to_string();
        let key = if key == "." {
            "(top level)".to_string()
        } else {
            key
        };
        ConfigError::Invalid {
            problems: vec![Problem {
                key,
                reason: tidy_message(&e.inner().to_string()),
            }],
        }
    })
}

/// Applies the command-line flags over the merged file and environment.
pub(super) fn apply_flags(
    mut raw: FileSettings,
    args: &ServeArgs,
) -> Result<FileSettings, ConfigError> {
    let mut problems = Vec::new();
    let mut flag = |key: &str, reason: String| {
        problems.push(Problem {
            key: key.to_string(),
            reason,
        })
    };

    if let Some(listen) = &args.listen {
        raw.listen = listen.clone();
    }
    if let Some(port) = &args.port {
        if args.listen.is_some() {
            flag("--port", "give either --listen or --port, not both".into());
        } else {
            let port = port.trim();
            raw.listen = match port.strip_prefix(':') {
                Some(p) => format!("0.0.0.0:{p}"),
                None if port.bytes().all(|b| b.is_ascii_digit()) => format!("0.0.0.0:{port}"),
                None => port.to_string(),
            };
        }
    }
    if let Some(workers) = args.workers {
        raw.workers = workers;
    }
    if let Some(admin) = &args.admin_listen {
        raw.admin.listen = admin.clone();
    }
    if let Some(level) = &args.log_level {
        raw.log.level = level.clone();
    } else if args.verbose {
        raw.log.level = "debug".into();
    }
    if let Some(format) = &args.log_format {
        match format.as_str() {
            "json" => raw.log.format = LogFormat::Json,
            "pretty" => raw.log.format = LogFormat::Pretty,
            "auto" => raw.log.format = LogFormat::Auto,
            other => flag(
                "--log-format",
                format!("'{other}' is not one of json, pretty, auto"),
            ),
        }
    }
    if args.no_verify_ssl {
        raw.tls.insecure_skip_verify = true;
    }
    if args.unsigned_payload {
        raw.defaults.payload = PayloadMode::Unsigned;
    }
    if !args.strip.is_empty() {
        raw.defaults
            .strip_headers
            .extend(args.strip.iter().cloned());
    }
    if let Some(pairs) = &args.custom_headers {
        for pair in pairs.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some((name, value)) if !name.trim().is_empty() => {
                    raw.defaults
                        .custom_headers
                        .insert(name.trim().to_string(), value.trim().to_string());
                }
                _ => flag(
                    "--custom-headers",
                    format!("'{pair}' is not name=value (give comma separated pairs)"),
                ),
            }
        }
    }
    if let Some(arn) = &args.role_arn {
        raw.defaults.role_arn = Some(arn.clone());
    }

    let upstream = match (&args.upstream, &args.host) {
        (Some(_), Some(_)) => {
            flag(
                "--host",
                "give either --upstream or --host, not both".into(),
            );
            None
        }
        (Some(url), None) => {
            if args.upstream_url_scheme.is_some() {
                flag(
                    "--upstream-url-scheme",
                    "only applies to --host; put the scheme in --upstream".into(),
                );
            }
            Some(url.clone())
        }
        (None, Some(host)) => {
            let scheme = args.upstream_url_scheme.as_deref().unwrap_or("https");
            if scheme != "http" && scheme != "https" {
                flag(
                    "--upstream-url-scheme",
                    format!("'{scheme}' is not http or https"),
                );
            }
            Some(format!("{scheme}://{}", host.trim_end_matches('/')))
        }
        (None, None) => None,
    };
    match upstream {
        Some(url) => {
            let mut route = RouteFile::from_flags("cli", url);
            route.service = args.service.clone();
            route.region = args.region.clone();
            route.sign_host = args.sign_host.clone();
            raw.routes = vec![route];
        }
        None => {
            // As aws-sigv4-proxy without --host: requests go to their own Host,
            // signed as --name/--region when given.
            if let Some(service) = &args.service {
                raw.defaults.service = Some(service.clone());
            }
            if let Some(region) = &args.region {
                raw.defaults.region = Some(region.clone());
            }
            if args.sign_host.is_some() {
                flag(
                    "--sign-host",
                    "needs --upstream URL (or --host HOST); without them signet signs the request's own Host".into(),
                );
            }
            if args
                .upstream_url_scheme
                .as_deref()
                .is_some_and(|s| s != "https")
            {
                flag(
                    "--upstream-url-scheme",
                    "only https without --host: requests routed by their Host always go to AWS over https".into(),
                );
            }
        }
    }
    if problems.is_empty() {
        Ok(raw)
    } else {
        Err(ConfigError::Invalid { problems })
    }
}
