//! Turns the configuration as written into [`Settings`], collecting every problem.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::file::{FileSettings, RouteFile, RouteOrigin, StripPrefix};
use super::{
    AdminSettings, ConfigError, ConnectionSettings, CustomHeaders, HeaderPatterns, LogSettings,
    Problem, RouteDefaults, RouteSettings, Settings, ShutdownSettings, UpstreamUrl,
};
use crate::credentials::settings::validate_role_arn;
use crate::credentials::SourceSettings;
use crate::routing::endpoint::{
    check_region_set, is_aws_domain, is_region_name, is_s3express_zonal_host, parse_host,
    EndpointError, ALL_REGIONS,
};
use crate::routing::segment_prefix;
use crate::sigv4::Algorithm;
use crate::upstream::RoutePolicy;

/// Largest accepted body cap: signed payloads are held in memory.
const MAX_BODY_CAP: u64 = 1 << 30;

/// Longest accepted drain timeout.
const MAX_DRAIN: Duration = Duration::from_secs(3600);
/// Shortest accepted `connections.idle_timeout`.
const MIN_CLIENT_IDLE: Duration = Duration::from_millis(100);
/// Longest accepted `connections.idle_timeout`.
const MAX_CLIENT_IDLE: Duration = Duration::from_secs(3600);
/// The most proxy worker threads a configuration may ask for.
const MAX_WORKERS: usize = 1024;

/// Headers signing or the connection owns; custom headers may not set them.
const RESERVED_CUSTOM: &[&str] = &[
    "host",
    crate::sigv4::AUTHORIZATION,
    crate::sigv4::X_AMZ_DATE,
    crate::sigv4::X_AMZ_SECURITY_TOKEN,
    crate::sigv4::X_AMZ_CONTENT_SHA256,
    crate::sigv4::X_AMZ_REGION_SET,
    crate::proxy::s3express::X_AMZ_S3SESSION_TOKEN,
    "content-length",
    "transfer-encoding",
    "connection",
];

struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, key: impl Into<String>, reason: impl Into<String>) {
        self.0.push(Problem {
            key: key.into(),
            reason: reason.into(),
        });
    }

    /// Adds a problem from a `"field: reason"` message under `prefix`.
    fn add_field(&mut self, prefix: &str, message: &str) {
        match message.split_once(": ") {
            Some((field, reason)) if !field.contains(' ') => {
                self.add(format!("{prefix}.{field}"), reason)
            }
            _ => self.add(prefix, message),
        }
    }
}

/// Whether binding both addresses would take the same port: equal ports
/// (not 0) and equal addresses, or one is a wildcard covering the other
/// (`0.0.0.0` covers IPv4 addresses; `[::]`, dual-stack, covers all).
fn same_socket(a: SocketAddr, b: SocketAddr) -> bool {
    let covers = |wild: std::net::IpAddr, other: std::net::IpAddr| {
        wild.is_unspecified() && (wild.is_ipv6() || other.is_ipv4())
    };
    a.port() == b.port()
        && a.port() != 0
        && (a.ip() == b.ip() || covers(a.ip(), b.ip()) || covers(b.ip(), a.ip()))
}

pub(super) fn validate(raw: FileSettings) -> Result<Settings, ConfigError> {
    let mut problems = Problems(Vec::new());

    let listen = parse_addr(&mut problems, "listen", &raw.listen);
    let admin_listen = parse_addr(&mut problems, "admin.listen", &raw.admin.listen);
    if let (Some(a), Some(b)) = (listen, admin_listen) {
        if same_socket(a, b) {
            let reason = if a == b {
                format!("'{b}' is also the proxy's listen address")
            } else {
                format!("'{b}' takes the port the proxy listens on ('{a}')")
            };
            problems.add("admin.listen", reason);
        }
    }
    if let Err(e) = tracing_subscriber::EnvFilter::try_new(&raw.log.level) {
        problems.add(
            "log.level",
            format!("'{}' is not a log level or filter: {e}", raw.log.level),
        );
    }
    if raw.workers > MAX_WORKERS {
        problems.add(
            "workers",
            format!("must be at most {MAX_WORKERS} (0: one per CPU)"),
        );
    }
    if raw.shutdown.drain_timeout > MAX_DRAIN {
        problems.add("shutdown.drain_timeout", "must be at most 1h");
    }
    let idle = raw.connections.idle_timeout;
    if !(MIN_CLIENT_IDLE..=MAX_CLIENT_IDLE).contains(&idle) {
        problems.add("connections.idle_timeout", "must be between 100ms and 1h");
    }
    if let Err(e) = raw.tls.validate() {
        problems.add_field("tls", &e);
    }

    let mut credentials = raw.credentials;
    credentials
        .entry(super::defaults::CREDENTIALS_SOURCE.to_string())
        .or_default();
    for (name, source) in &credentials {
        if let Err(e) = source.validate() {
            problems.add(format!("credentials.{name}"), e);
        }
    }

    // Defaults.
    let d = &raw.defaults;
    check_body_cap(&mut problems, "defaults.body_cap", d.body_cap);
    let sign_headers_exclude = header_patterns(
        &mut problems,
        "defaults.sign_headers.exclude",
        &d.sign_headers.exclude,
        true,
    );
    let strip_headers = header_patterns(
        &mut problems,
        "defaults.strip_headers",
        &d.strip_headers,
        false,
    );
    let custom_headers =
        custom_headers(&mut problems, "defaults.custom_headers", &d.custom_headers);
    if !credentials.contains_key(&d.credentials) {
        problems.add(
            "defaults.credentials",
            unknown_source(&d.credentials, &credentials),
        );
    }
    if let Some(arn) = &d.role_arn {
        if let Err(e) = validate_role_arn(arn) {
            problems.add("defaults.role_arn", e);
        }
    }
    let default_service = d.service.as_deref().map(str::trim).and_then(|s| {
        if is_signing_name(s) {
            Some(s.to_string())
        } else {
            problems.add(
                "defaults.service",
                format!("'{s}' is not a signing name (lowercase letters, digits, '-')"),
            );
            None
        }
    });
    let default_region = d.region.as_deref().map(str::trim).and_then(|r| {
        if is_region_name(r) {
            Some(r.to_string())
        } else {
            problems.add("defaults.region", format!("'{r}' is not a region name"));
            None
        }
    });
    let policy = RoutePolicy {
        retry: d.retry.clone(),
        timeouts: d.timeouts.clone(),
        limits: d.limits.clone(),
    };
    if let Err(e) = policy.validate() {
        problems.add_field("defaults", &e);
    }
    let defaults = RouteDefaults {
        payload: d.payload,
        body_cap: d.body_cap,
        sign_headers_exclude,
        strip_headers,
        custom_headers,
        credentials: d.credentials.clone(),
        role_arn: d.role_arn.clone(),
        service: default_service,
        region: default_region,
        aws_host_routing: d.aws_host_routing,
        policy,
    };

    // Routes.
    let mut routes: Vec<RouteSettings> = Vec::new();
    let mut placed: Vec<(usize, Matcher)> = Vec::new();
    for (index, route) in raw.routes.iter().enumerate() {
        let mut ctx = RouteContext {
            problems: &mut problems,
            index,
            name: route.name.clone(),
            origin: route.origin,
        };
        if let Some(settings) = validate_route(
            &mut ctx,
            route,
            &raw.defaults.custom_headers,
            &defaults,
            &credentials,
        ) {
            let matcher = Matcher::of(&settings);
            for (earlier, other) in &placed {
                let other_name = &raw.routes[*earlier].name;
                if other.same_as(&matcher) {
                    ctx.add(
                        "",
                        format!(
                            "matches exactly what routes[{earlier}] (\"{other_name}\") matches"
                        ),
                    );
                    break;
                } else if other.covers(&matcher) {
                    ctx.add(
                        "",
                        format!("can never match: routes[{earlier}] (\"{other_name}\") comes first and matches every request it would"),
                    );
                    break;
                }
            }
            if let Some(first) = routes.iter().position(|r| r.name == settings.name) {
                ctx.add(
                    "name",
                    format!("'{}' is also the name of routes[{first}]", settings.name),
                );
            }
            placed.push((index, matcher));
            routes.push(settings);
        }
    }

    if !problems.0.is_empty() {
        return Err(ConfigError::Invalid {
            problems: problems.0,
        });
    }
    let (Some(listen), Some(admin_listen)) = (listen, admin_listen) else {
        return Err(ConfigError::Invalid {
            problems: vec![Problem {
                key: "listen".into(),
                reason: "missing".into(),
            }],
        });
    };
    Ok(Settings {
        listen,
        workers: raw.workers,
        admin: AdminSettings {
            listen: admin_listen,
        },
        log: LogSettings {
            level: raw.log.level,
            format: raw.log.format,
        },
        shutdown: ShutdownSettings {
            drain_timeout: raw.shutdown.drain_timeout,
        },
        connections: ConnectionSettings {
            idle_timeout: raw.connections.idle_timeout,
        },
        tls: raw.tls,
        credentials,
        defaults,
        routes,
        config_file: None,
    })
}

fn parse_addr(problems: &mut Problems, key: &str, text: &str) -> Option<SocketAddr> {
    match text.trim().parse::<SocketAddr>() {
        Ok(addr) => Some(addr),
        Err(_) => {
            problems.add(
                key,
                format!("'{text}' is not an address such as 127.0.0.1:8080"),
            );
            None
        }
    }
}

fn check_body_cap(problems: &mut Problems, key: &str, cap: u64) {
    if cap == 0 {
        problems.add(key, "must be at least 1 byte");
    } else if cap > MAX_BODY_CAP {
        problems.add(key, "must be at most 1GiB (signed bodies are held in memory; use payload = \"unsigned\" for larger ones)");
    }
}

fn header_patterns(
    problems: &mut Problems,
    key: &str,
    patterns: &[String],
    for_signing: bool,
) -> HeaderPatterns {
    match HeaderPatterns::new(patterns) {
        Ok(p) => {
            // Stripping runs before signet sets Host and signs, so a strip
            // list may name any header; an exclude list must leave those signed.
            if let Some(bad) = p.covers_signing_header().filter(|_| for_signing) {
                problems.add(key, format!("'{bad}' would leave a header signing owns (host, authorization, x-amz-*) unsigned"));
            }
            p
        }
        Err(e) => {
            problems.add(key, e);
            HeaderPatterns::default()
        }
    }
}

fn custom_headers(
    problems: &mut Problems,
    key: &str,
    map: &BTreeMap<String, String>,
) -> CustomHeaders {
    let mut out = Vec::new();
    for (name, value) in map {
        let Ok(header) = http::HeaderName::from_bytes(name.trim().as_bytes()) else {
            problems.add(key, format!("'{name}' is not a header name"));
            continue;
        };
        if RESERVED_CUSTOM.contains(&header.as_str()) {
            problems.add(
                format!("{key}.{header}"),
                "is set by signet itself and cannot be added",
            );
            continue;
        }
        match http::HeaderValue::from_str(value) {
            Ok(v) => out.push((header, v)),
            Err(_) => problems.add(
                format!("{key}.{header}"),
                "the value has characters a header cannot hold",
            ),
        }
    }
    out.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
    CustomHeaders(out)
}

fn unknown_source(name: &str, credentials: &BTreeMap<String, SourceSettings>) -> String {
    let known: Vec<&str> = credentials.keys().map(String::as_str).collect();
    format!(
        "no credentials source named '{name}' (configured: {})",
        known.join(", ")
    )
}

struct RouteContext<'a> {
    problems: &'a mut Problems,
    index: usize,
    name: String,
    origin: RouteOrigin,
}

impl RouteContext<'_> {
    /// Adds a problem about `field` of this route (`""` for the route itself).
    fn add(&mut self, field: &str, reason: impl Into<String>) {
        let reason = reason.into();
        if self.origin == RouteOrigin::Flags {
            let flag = match field {
                "service" => "--service",
                "region" => "--region",
                "upstream" => "--upstream",
                "sign_host" => "--sign-host",
                "role_arn" => "--role-arn",
                _ => "flags",
            };
            self.problems.add(flag, reason);
            return;
        }
        let key = if field.is_empty() {
            format!("routes[{}]", self.index)
        } else {
            format!("routes[{}].{field}", self.index)
        };
        self.problems
            .add(key, format!("{reason} (route \"{}\")", self.name));
    }
}

fn validate_route(
    ctx: &mut RouteContext<'_>,
    route: &RouteFile,
    default_custom: &BTreeMap<String, String>,
    defaults: &RouteDefaults,
    credentials: &BTreeMap<String, SourceSettings>,
) -> Option<RouteSettings> {
    let before = ctx.problems.0.len();
    let name = route.name.trim().to_string();
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
    {
        ctx.add(
            "name",
            format!("'{name}' must be non-empty letters, digits, '-', '_', '.' or ':'"),
        );
    }

    let upstream = match parse_upstream(&route.upstream) {
        Ok(u) if u.scheme == http::uri::Scheme::HTTP && is_aws_domain(u.host()) => {
            ctx.add(
                "upstream",
                format!(
                    "'{u}' is an AWS endpoint over plain http, which would send the session token in clear; use https"
                ),
            );
            None
        }
        Ok(u) => Some(u),
        Err(reason) => {
            ctx.add("upstream", reason);
            None
        }
    };

    let path_prefix = match route.path_prefix.as_deref().map(str::trim) {
        None => None,
        Some(p) if !p.starts_with('/') => {
            ctx.add("path_prefix", format!("'{p}' must start with '/'"));
            None
        }
        Some(p) if p.contains(['?', '#', ' ']) => {
            ctx.add(
                "path_prefix",
                format!("'{p}' must be a path without query, fragment or spaces"),
            );
            None
        }
        Some(p) => {
            let trimmed = p.trim_end_matches('/');
            (!trimmed.is_empty()).then(|| trimmed.to_string())
        }
    };

    let host = match route.host.as_deref().map(|h| h.trim().to_ascii_lowercase()) {
        None => None,
        Some(h)
            if h.parse::<http::uri::Authority>().is_err()
                || h.contains(['/', '@'])
                || h.is_empty() =>
        {
            ctx.add(
                "host",
                format!("'{h}' is not a host name (host or host:port, no scheme)"),
            );
            None
        }
        Some(h) => Some(h),
    };

    let sign_host = match route
        .sign_host
        .as_deref()
        .map(|h| h.trim().to_ascii_lowercase())
    {
        None => None,
        Some(h) => match h.parse::<http::uri::Authority>() {
            Ok(a) if !h.is_empty() && !h.contains(['/', '@']) => Some(a),
            _ => {
                ctx.add("sign_host", format!("'{h}' is not a host name"));
                None
            }
        },
    };

    // Service, region and algorithm: explicit, else derived from the host
    // that is signed: `sign_host` when it is an AWS endpoint (an upstream
    // reached through an interface endpoint or a tunnel), else the upstream's.
    let (derived, derived_from) = match sign_host.as_ref().map(|a| parse_host(a.host())) {
        Some(Ok(ep)) => (
            Some(Ok(ep)),
            sign_host.as_ref().map(|a| a.host().to_string()),
        ),
        _ => (
            upstream.as_ref().map(|u| parse_host(u.host())),
            upstream.as_ref().map(|u| u.host().to_string()),
        ),
    };
    let service = match route.service.as_deref().map(str::trim) {
        Some(s) if is_signing_name(s) => Some(s.to_string()),
        Some(s) => {
            ctx.add(
                "service",
                format!("'{s}' is not a signing name (lowercase letters, digits, '-')"),
            );
            None
        }
        None => match &derived {
            Some(Ok(ep)) => Some(ep.service.clone()),
            Some(Err(_)) if defaults.service.is_some() => defaults.service.clone(),
            Some(Err(e)) => {
                ctx.add("service", format!("missing, and {}", derive_failure(e)));
                None
            }
            None => None,
        },
    };
    // Signature algorithm: explicit, else what that host implies.
    let implied = match &derived {
        Some(Ok(ep)) => ep.algorithm,
        _ => Algorithm::V4,
    };
    let algorithm = route.signature.unwrap_or(implied);
    let region = match algorithm {
        // For SigV4a, `region` is the region set, every region by default.
        Algorithm::V4a => match route.region.as_deref() {
            Some(set) => match check_region_set(set) {
                Ok(()) => Some(set.to_string()),
                Err(reason) => {
                    ctx.add("region", reason);
                    None
                }
            },
            None => Some(ALL_REGIONS.to_string()),
        },
        Algorithm::V4 => match route.region.as_deref().map(str::trim) {
            Some(r) if is_region_name(r) => Some(r.to_string()),
            Some(r) => {
                let hint = if r == ALL_REGIONS || r.contains(',') {
                    " (a region set needs signature = \"sigv4a\")"
                } else {
                    ""
                };
                ctx.add("region", format!("'{r}' is not a region name{hint}"));
                None
            }
            None => match &derived {
                Some(Ok(ep)) if ep.algorithm == Algorithm::V4a => {
                    ctx.add(
                        "region",
                        format!(
                            "missing, and the signed host {} implies the sigv4a region set '{}', not a region for sigv4; set it",
                            derived_from.as_deref().unwrap_or_default(),
                            ep.region
                        ),
                    );
                    None
                }
                Some(Ok(ep)) => Some(ep.region.clone()),
                Some(Err(_)) if defaults.region.is_some() => defaults.region.clone(),
                Some(Err(e)) => {
                    ctx.add("region", format!("missing, and {}", derive_failure(e)));
                    None
                }
                None => None,
            },
        },
    };

    // S3 Express One Zone sessions: on by default for s3express routes whose
    // signed host (`sign_host`, else the upstream's) is a zonal endpoint.
    let is_s3express = service.as_deref() == Some("s3express");
    let s3express_session = match route.s3express_session {
        Some(true) if service.is_some() && !is_s3express => {
            ctx.add(
                "s3express_session",
                format!(
                    "true needs service = \"s3express\" (the route signs for '{}')",
                    service.as_deref().unwrap_or_default()
                ),
            );
            false
        }
        Some(true) if algorithm == Algorithm::V4a => {
            ctx.add(
                "s3express_session",
                "true needs signature = \"sigv4\": S3 Express sessions sign with SigV4",
            );
            false
        }
        Some(on) => on,
        None => {
            let signed_host = sign_host
                .as_ref()
                .map(|a| a.host())
                .or_else(|| upstream.as_ref().map(UpstreamUrl::host));
            is_s3express
                && algorithm == Algorithm::V4
                && signed_host.is_some_and(is_s3express_zonal_host)
        }
    };

    let strip_prefix = match &route.strip_prefix {
        None | Some(StripPrefix::Enabled(false)) => None,
        Some(StripPrefix::Enabled(true)) => {
            if path_prefix.is_none() {
                ctx.add("strip_prefix", "true needs a path_prefix to strip");
            }
            path_prefix.clone()
        }
        Some(StripPrefix::Prefix(p)) => {
            let p = p.trim().trim_end_matches('/').to_string();
            if p.is_empty() {
                ctx.add(
                    "strip_prefix",
                    "'/' strips nothing; give a prefix such as \"/api\", or true/false",
                );
                None
            } else if !p.starts_with('/') {
                ctx.add(
                    "strip_prefix",
                    format!("'{p}' must start with '/' (or be true/false)"),
                );
                None
            } else if path_prefix
                .as_deref()
                .is_some_and(|pp| !segment_prefix(&p, pp))
            {
                ctx.add(
                    "strip_prefix",
                    format!(
                        "'{p}' is not a prefix of path_prefix '{}'",
                        path_prefix.as_deref().unwrap_or_default()
                    ),
                );
                None
            } else {
                Some(p)
            }
        }
    };

    let body_cap = route.body_cap.unwrap_or(defaults.body_cap);
    if route.body_cap.is_some() {
        let mut scratch = Problems(Vec::new());
        check_body_cap(&mut scratch, "body_cap", body_cap);
        for p in scratch.0 {
            ctx.add("body_cap", p.reason);
        }
    }

    let sign_headers_exclude = match &route.sign_headers {
        Some(sh) => route_patterns(ctx, "sign_headers.exclude", &sh.exclude, true),
        None => defaults.sign_headers_exclude.clone(),
    };
    let strip_headers = match &route.strip_headers {
        Some(list) => route_patterns(ctx, "strip_headers", list, false),
        None => defaults.strip_headers.clone(),
    };
    let mut merged = default_custom.clone();
    merged.extend(
        route
            .custom_headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    let custom = {
        let mut scratch = Problems(Vec::new());
        let h = custom_headers(&mut scratch, "custom_headers", &merged);
        for p in scratch.0 {
            let field = p.key.clone();
            ctx.add(&field, p.reason);
        }
        h
    };

    let credentials_name = route
        .credentials
        .clone()
        .unwrap_or_else(|| defaults.credentials.clone());
    if !credentials.contains_key(&credentials_name) {
        ctx.add(
            "credentials",
            unknown_source(&credentials_name, credentials),
        );
    }
    let role_arn = route.role_arn.clone().or_else(|| defaults.role_arn.clone());
    if let Some(arn) = &route.role_arn {
        if let Err(e) = validate_role_arn(arn) {
            ctx.add("role_arn", e);
        }
    }

    let policy = RoutePolicy {
        retry: merge_override(ctx, "retry", &defaults.policy.retry, route.retry.as_ref()),
        timeouts: merge_override(
            ctx,
            "timeouts",
            &defaults.policy.timeouts,
            route.timeouts.as_ref(),
        ),
        limits: merge_override(
            ctx,
            "limits",
            &defaults.policy.limits,
            route.limits.as_ref(),
        ),
    };
    if let Err(e) = policy.validate() {
        match e.split_once(": ") {
            Some((field, reason)) => ctx.add(field, reason),
            None => ctx.add("", e),
        }
    }

    if ctx.problems.0.len() != before {
        return None;
    }
    Some(RouteSettings {
        name,
        path_prefix,
        host,
        upstream: upstream?,
        service: service?,
        region: region?,
        algorithm,
        signature_shown: (algorithm == Algorithm::V4a || algorithm != implied).then_some(algorithm),
        sign_host,
        s3express_session,
        s3express_session_shown: is_s3express.then_some(s3express_session),
        strip_prefix,
        payload: route.payload.unwrap_or(defaults.payload),
        body_cap,
        sign_headers_exclude,
        strip_headers,
        custom_headers: custom,
        credentials: credentials_name,
        role_arn,
        policy,
    })
}

fn is_signing_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn derive_failure(e: &EndpointError) -> String {
    match e {
        EndpointError::NotAws(host) => {
            format!("the upstream host {host} is not an AWS endpoint to derive it from; set it")
        }
        EndpointError::Unrecognized { host, .. } => {
            format!("it cannot be derived from the upstream host {host}; set it")
        }
    }
}

fn route_patterns(
    ctx: &mut RouteContext<'_>,
    field: &str,
    list: &[String],
    for_signing: bool,
) -> HeaderPatterns {
    let mut scratch = Problems(Vec::new());
    let p = header_patterns(&mut scratch, field, list, for_signing);
    for problem in scratch.0 {
        ctx.add(field, problem.reason);
    }
    p
}

/// Overlays a route's partial table over the default's, then deserializes.
fn merge_override<T>(
    ctx: &mut RouteContext<'_>,
    field: &str,
    base: &T,
    over: Option<&serde_json::Map<String, serde_json::Value>>,
) -> T
where
    T: Serialize + DeserializeOwned + Clone,
{
    let Some(over) = over else {
        return base.clone();
    };
    let mut merged = match serde_json::to_value(base) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    for (k, v) in over {
        merged.insert(k.clone(), v.clone());
    }
    match serde_path_to_error::deserialize::<_, T>(serde_json::Value::Object(merged)) {
        Ok(v) => v,
        Err(e) => {
            let path = e.path().to_string();
            let key = if path == "." {
                field.to_string()
            } else {
                format!("{field}.{path}")
            };
            ctx.add(&key, e.into_inner().to_string());
            base.clone()
        }
    }
}

/// Parses `http(s)://host[:port][/base]`.
pub(crate) fn parse_upstream(text: &str) -> Result<UpstreamUrl, String> {
    let text = text.trim();
    let uri: http::Uri = text
        .parse()
        .map_err(|_| format!("'{text}' is not a URL (write e.g. https://sqs.us-east-1.amazonaws.com or http://127.0.0.1:9000)"))?;
    let scheme = match uri.scheme_str() {
        Some("http") => http::uri::Scheme::HTTP,
        Some("https") => http::uri::Scheme::HTTPS,
        Some(other) => return Err(format!("'{text}': scheme '{other}' is not http or https")),
        None => return Err(format!("'{text}' needs a scheme: http:// or https://")),
    };
    let authority = uri
        .authority()
        .ok_or_else(|| format!("'{text}' has no host"))?;
    if authority.as_str().contains('@') {
        return Err(format!("'{text}': user info in the URL is not supported"));
    }
    if authority.host().is_empty() {
        return Err(format!("'{text}' has no host"));
    }
    if uri.query().is_some() {
        return Err(format!("'{text}': an upstream URL cannot carry a query"));
    }
    let authority: http::uri::Authority = authority
        .as_str()
        .to_ascii_lowercase()
        .parse()
        .map_err(|_| format!("'{text}' has an invalid host"))?;
    let base_path = uri.path().trim_end_matches('/').to_string();
    Ok(UpstreamUrl {
        scheme,
        authority,
        base_path,
    })
}

/// A route's matcher, for duplicate and shadow detection.
struct Matcher {
    host: Option<String>,
    path: Option<String>,
}

impl Matcher {
    fn of(route: &RouteSettings) -> Self {
        Self {
            host: route.host.clone(),
            path: route.path_prefix.clone(),
        }
    }

    fn same_as(&self, other: &Matcher) -> bool {
        self.host == other.host && self.path == other.path
    }

    /// Whether every request `other` matches is matched by `self`.
    fn covers(&self, other: &Matcher) -> bool {
        let host_covers = match (&self.host, &other.host) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(a), Some(b)) => {
                a == b || (!a.contains(':') && b.split(':').next() == Some(a.as_str()))
            }
        };
        let path_covers = match (&self.path, &other.path) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(a), Some(b)) => segment_prefix(a, b),
        };
        host_covers && path_covers
    }
}
