//! Route table and AWS endpoint knowledge.
//!
//! [`RouteTable`] is built once from validated [`Settings`] (and rebuilt on
//! reload); [`RouteTable::resolve`] maps a request's Host and path to a
//! [`Target`]. Configured routes are tried in order, first match wins; when
//! none matches and `defaults.aws_host_routing` is on, a Host under an AWS
//! endpoint domain is routed to itself with the service and region its shape
//! implies ([`endpoint::parse_host`]). Any other Host is refused
//! ([`RouteError::UnknownHost`]) because signing for it would hand the
//! credentials' session token to that host.
//!
//! How the proxy uses a [`Target`]:
//! - forward to `{target.scheme}://{target.authority}{target.path}` plus the
//!   request's query as the client sent it, with `Host: {target.authority}`;
//! - sign with `target.algorithm` for `target.service` / `target.region` (for
//!   SigV4a the region set; the `host` header signed is
//!   `target.sign_host` when set), leaving out headers that
//!   `target.policy.sign_headers_exclude` matches, after removing those
//!   `target.policy.strip_headers` matches and adding `target.policy.custom_headers`;
//! - pick the body mode from `target.policy.payload` (for [`PayloadMode::Auto`],
//!   S3 is `target.service == "s3"`) with cap `target.policy.body_cap`;
//! - sign with the credentials of `target.policy.credentials`, assuming
//!   `target.policy.role_arn` when set;
//! - hand `target.policy.upstream` (retries, timeouts, limits) and
//!   `target.route` (the name for logs and metrics) to the upstream client.
//!
//! ```
//! use signet::config::{ConfigFormat, Settings};
//! use signet::routing::RouteTable;
//!
//! let settings = Settings::from_str(r#"
//!     [[routes]]
//!     name = "local-s3"
//!     path_prefix = "/s3"
//!     strip_prefix = true
//!     upstream = "http://127.0.0.1:9000"
//!     service = "s3"
//!     region = "us-east-1"
//! "#, ConfigFormat::Toml).unwrap();
//! let table = RouteTable::new(&settings);
//!
//! let t = table.resolve(Some("127.0.0.1:8080"), "/s3/bucket/key").unwrap();
//! assert_eq!((&*t.route, t.authority.as_str(), t.path.as_str()), ("local-s3", "127.0.0.1:9000", "/bucket/key"));
//!
//! let t = table.resolve(Some("sqs.eu-west-1.amazonaws.com"), "/").unwrap();
//! assert_eq!((&*t.route, &*t.service, &*t.region), ("aws:sqs", "sqs", "eu-west-1"));
//!
//! // S3 Multi-Region Access Points take SigV4a, for every region.
//! let t = table.resolve(Some("mfzwi23gnjvgw.mrap.accesspoint.s3-global.amazonaws.com"), "/k").unwrap();
//! assert_eq!((&*t.service, &*t.region, t.algorithm), ("s3", "*", signet::sigv4::Algorithm::V4a));
//!
//! assert!(table.resolve(Some("attacker.example"), "/").is_err());
//! ```

pub mod endpoint;
pub mod names;

use std::sync::Arc;

use http::uri::Authority;

use crate::config::{CustomHeaders, HeaderPatterns, PayloadMode, RouteSettings, Settings};
use crate::sigv4::Algorithm;
use endpoint::EndpointError;

/// Everything about a route that is the same for all its requests; shared by `Arc`.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetPolicy {
    /// Payload mode.
    pub payload: PayloadMode,
    /// Largest body a signed payload buffers, in bytes (413 past it).
    pub body_cap: u64,
    /// Headers forwarded but left out of the signature.
    pub sign_headers_exclude: HeaderPatterns,
    /// Headers removed from the request before signing.
    pub strip_headers: HeaderPatterns,
    /// Headers added to the request (signed like the rest).
    pub custom_headers: CustomHeaders,
    /// The credential source to sign with.
    pub credentials: Arc<str>,
    /// A role to assume with that source's credentials.
    pub role_arn: Option<Arc<str>>,
    /// Retries, timeouts and load-shedding limits for the upstream client.
    pub upstream: Arc<crate::upstream::RoutePolicy>,
}

/// Where and how one request goes.
#[derive(Debug, Clone)]
pub struct Target {
    /// The route's name for logs and metrics; host-routed requests read `aws:<service>`
    /// (`aws:other` past [`names::MAX_HOST_ROUTE_NAMES`] services).
    pub route: Arc<str>,
    /// Whether this came from host-based AWS routing rather than a configured route.
    pub host_routed: bool,
    /// `http` or `https`.
    pub scheme: http::uri::Scheme,
    /// `host[:port]` to connect to and to send as Host.
    pub authority: Authority,
    /// `scheme://authority`: the key the upstream client keeps in-flight limits and
    /// retry budgets by ([`crate::upstream::OutboundRequest::upstream`]).
    pub upstream: Arc<str>,
    /// The host to sign instead of `authority` (aws-sigv4-proxy's `--sign-host`).
    pub sign_host: Option<Authority>,
    /// The `Host` header sent and signed: `sign_host` when set, else `authority`.
    pub host: http::HeaderValue,
    /// The path to send: the upstream's base path plus the request path after
    /// `strip_prefix`; always starts with `/`. The query is not part of it.
    pub path: String,
    /// Signing name.
    pub service: Arc<str>,
    /// Signing region; for [`Algorithm::V4a`] the region set: `*`, or region
    /// names separated by commas (`us-east-1,us-west-2`).
    pub region: Arc<str>,
    /// The signature algorithm: SigV4, or SigV4a (whose `region` holds the
    /// region set), as the route's `signature` or the host's shape says.
    pub algorithm: Algorithm,
    /// Set when requests authenticate with S3 Express One Zone sessions
    /// (CreateSession) rather than with the IAM credentials directly: the path
    /// of the directory bucket's root on the upstream, where CreateSession goes
    /// (`/`, or the upstream's base path). Configured routes take it from
    /// `s3express_session`; host-routed requests to a zonal endpoint
    /// ([`endpoint::is_s3express_zonal_host`]) signed as `s3express` have it.
    pub s3express_session: Option<Arc<str>>,
    /// The route's shared policy.
    pub policy: Arc<TargetPolicy>,
}

/// Why a request has no target. The proxy answers with [`RouteError::status`]
/// (404 for [`RouteError::NoRoute`], 403 for [`RouteError::UnknownHost`]) and
/// the message as the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// Nothing matches; the reason is one line.
    #[error("no route: {reason}")]
    NoRoute {
        /// Why, in one line.
        reason: String,
    },
    /// The Host is neither a configured route nor an AWS endpoint domain.
    #[error("host {host} is neither a configured route nor an AWS endpoint; signet does not sign requests for it")]
    UnknownHost {
        /// The Host as received.
        host: String,
    },
}

impl RouteError {
    /// The HTTP status the proxy answers with: 404 or 403.
    pub fn status(&self) -> http::StatusCode {
        match self {
            RouteError::NoRoute { .. } => http::StatusCode::NOT_FOUND,
            RouteError::UnknownHost { .. } => http::StatusCode::FORBIDDEN,
        }
    }
}

#[derive(Debug)]
struct CompiledRoute {
    name: Arc<str>,
    /// Host name, lowercase, without port.
    host: Option<String>,
    /// Port the host matcher requires, when it named one.
    host_port: Option<String>,
    path_prefix: Option<String>,
    strip_prefix: Option<String>,
    scheme: http::uri::Scheme,
    authority: Authority,
    upstream: Arc<str>,
    base_path: String,
    sign_host: Option<Authority>,
    host_header: http::HeaderValue,
    service: Arc<str>,
    region: Arc<str>,
    algorithm: Algorithm,
    s3express_session: Option<Arc<str>>,
    policy: Arc<TargetPolicy>,
}

/// The routes of one configuration generation; immutable, cheap to share by `Arc`.
#[derive(Debug)]
pub struct RouteTable {
    routes: Vec<CompiledRoute>,
    /// The policy host-routed requests use; `None` when host routing is off.
    host_policy: Option<Arc<TargetPolicy>>,
    /// Signing name host-routed requests use instead of the Host's.
    host_service: Option<Arc<str>>,
    /// Signing region host-routed requests use instead of the Host's (SigV4
    /// hosts only: SigV4a hosts keep their region set).
    host_region: Option<Arc<str>>,
    /// The `aws:<service>` names host-routed requests have been given.
    host_names: names::HostRouteNames,
    /// The bucket root of host-routed zonal endpoints (`/`), made once.
    zonal_root: Arc<str>,
}

impl RouteTable {
    /// Builds the table from validated settings.
    pub fn new(settings: &Settings) -> RouteTable {
        let routes = settings.routes.iter().map(compile).collect();
        let d = &settings.defaults;
        let host_policy = d.aws_host_routing.then(|| {
            Arc::new(TargetPolicy {
                payload: d.payload,
                body_cap: d.body_cap,
                sign_headers_exclude: d.sign_headers_exclude.clone(),
                strip_headers: d.strip_headers.clone(),
                custom_headers: d.custom_headers.clone(),
                credentials: d.credentials.as_str().into(),
                role_arn: d.role_arn.as_deref().map(Arc::from),
                upstream: Arc::new(d.policy.clone()),
            })
        });
        RouteTable {
            routes,
            host_policy,
            host_service: d.service.as_deref().map(Arc::from),
            host_region: d.region.as_deref().map(Arc::from),
            host_names: names::HostRouteNames::default(),
            zonal_root: Arc::from("/"),
        }
    }

    /// The number of configured routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether there are no configured routes.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Every `(credentials source, role_arn)` the table can sign with, for
    /// readiness: each must hold valid credentials.
    pub fn credential_sources(&self) -> Vec<(Arc<str>, Option<Arc<str>>)> {
        let mut out: Vec<(Arc<str>, Option<Arc<str>>)> = self
            .routes
            .iter()
            .map(|r| &r.policy)
            .chain(self.host_policy.iter())
            .map(|p| (p.credentials.clone(), p.role_arn.clone()))
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Resolves a request. `host` is the Host header (or `:authority`), with or
    /// without port; `path` is the request path without the query.
    pub fn resolve(&self, host: Option<&str>, path: &str) -> Result<Target, RouteError> {
        let host = host.map(str::trim).filter(|h| !h.is_empty());
        let (host_name, host_port) = match host {
            Some(h) => split_port(h),
            None => (None, None),
        };
        let host_name = host_name.map(|h| h.strip_suffix('.').unwrap_or(h));
        for route in &self.routes {
            if let Some(want) = &route.host {
                match host_name {
                    Some(name) if name.eq_ignore_ascii_case(want) => {}
                    _ => continue,
                }
                if let Some(port) = &route.host_port {
                    if host_port != Some(port.as_str()) {
                        continue;
                    }
                }
            }
            if let Some(prefix) = &route.path_prefix {
                if !segment_prefix(prefix, path) {
                    continue;
                }
            }
            if !route.base_path.is_empty() && has_dot_dot_segment(path) {
                return Err(RouteError::NoRoute {
                    reason: format!(
                        "route {} forwards under a base path, and paths with '..' segments could leave it",
                        route.name
                    ),
                });
            }
            return Ok(route.target(path));
        }

        let Some(host) = host else {
            return Err(RouteError::NoRoute {
                reason: format!(
                    "no route matches path {} and the request has no Host header",
                    printable(path)
                ),
            });
        };
        let Some(policy) = &self.host_policy else {
            return Err(RouteError::NoRoute {
                reason: format!(
                    "no route matches host {} and path {} (host-based AWS routing is off)",
                    printable(host),
                    printable(path)
                ),
            });
        };
        match endpoint::parse_host(host) {
            Ok(ep) => {
                let authority: Authority = host_name
                    .unwrap_or(host)
                    .to_ascii_lowercase()
                    .parse()
                    .map_err(|_| RouteError::UnknownHost {
                    host: printable(host).into_owned(),
                })?;
                let service: Arc<str> = match &self.host_service {
                    Some(s) => s.clone(),
                    None => ep.service.into(),
                };
                // `defaults.region` names one region for SigV4; a host that
                // takes SigV4a keeps the region set its shape implies.
                let region: Arc<str> = match (&self.host_region, ep.algorithm) {
                    (Some(r), Algorithm::V4) => r.clone(),
                    _ => ep.region.into(),
                };
                let s3express_session = (&*service == "s3express"
                    && ep.algorithm == Algorithm::V4
                    && endpoint::is_s3express_zonal_host(authority.host()))
                .then(|| self.zonal_root.clone());
                Ok(Target {
                    route: self.host_names.name(&service),
                    host_routed: true,
                    scheme: http::uri::Scheme::HTTPS,
                    upstream: format!("https://{authority}").into(),
                    host: host_header(&authority),
                    authority,
                    sign_host: None,
                    path: if path.is_empty() {
                        "/".into()
                    } else {
                        path.to_string()
                    },
                    service,
                    region,
                    algorithm: ep.algorithm,
                    s3express_session,
                    policy: policy.clone(),
                })
            }
            Err(EndpointError::NotAws(_)) => Err(RouteError::UnknownHost {
                host: printable(host).into_owned(),
            }),
            Err(e @ EndpointError::Unrecognized { .. }) => Err(RouteError::NoRoute {
                reason: e.to_string(),
            }),
        }
    }
}

impl CompiledRoute {
    fn target(&self, path: &str) -> Target {
        let rest = match &self.strip_prefix {
            Some(prefix) if segment_prefix(prefix, path) => &path[prefix.len()..],
            _ => path,
        };
        let mut forward = String::with_capacity(self.base_path.len() + rest.len() + 1);
        forward.push_str(&self.base_path);
        if !rest.is_empty() && !rest.starts_with('/') {
            forward.push('/');
        }
        forward.push_str(rest);
        if forward.is_empty() {
            forward.push('/');
        }
        Target {
            route: self.name.clone(),
            host_routed: false,
            scheme: self.scheme.clone(),
            authority: self.authority.clone(),
            upstream: self.upstream.clone(),
            sign_host: self.sign_host.clone(),
            host: self.host_header.clone(),
            path: forward,
            service: self.service.clone(),
            region: self.region.clone(),
            algorithm: self.algorithm,
            s3express_session: self.s3express_session.clone(),
            policy: self.policy.clone(),
        }
    }
}

/// The `Host` header value for `authority`.
fn host_header(authority: &Authority) -> http::HeaderValue {
    // An authority holds only characters a header value may hold, so the
    // fallback is never taken.
    http::HeaderValue::from_str(authority.as_str())
        .unwrap_or_else(|_| http::HeaderValue::from_static("invalid-host"))
}

fn compile(route: &RouteSettings) -> CompiledRoute {
    let (host, host_port) = match route.host.as_deref() {
        Some(h) => {
            let (name, port) = split_port(h);
            (name.map(str::to_ascii_lowercase), port.map(str::to_string))
        }
        None => (None, None),
    };
    CompiledRoute {
        name: route.name.as_str().into(),
        host,
        host_port,
        path_prefix: route.path_prefix.clone(),
        strip_prefix: route.strip_prefix.clone(),
        scheme: route.upstream.scheme.clone(),
        authority: route.upstream.authority.clone(),
        upstream: format!("{}://{}", route.upstream.scheme, route.upstream.authority).into(),
        base_path: route.upstream.base_path.clone(),
        sign_host: route.sign_host.clone(),
        host_header: host_header(
            route
                .sign_host
                .as_ref()
                .unwrap_or(&route.upstream.authority),
        ),
        service: route.service.as_str().into(),
        region: route.region.as_str().into(),
        algorithm: route.algorithm,
        s3express_session: route.s3express_session.then(|| {
            let base = route.upstream.base_path.as_str();
            Arc::from(if base.is_empty() { "/" } else { base })
        }),
        policy: Arc::new(TargetPolicy {
            payload: route.payload,
            body_cap: route.body_cap,
            sign_headers_exclude: route.sign_headers_exclude.clone(),
            strip_headers: route.strip_headers.clone(),
            custom_headers: route.custom_headers.clone(),
            credentials: route.credentials.as_str().into(),
            role_arn: route.role_arn.as_deref().map(Arc::from),
            upstream: Arc::new(route.policy.clone()),
        }),
    }
}

/// Splits `host[:port]` (IPv6 literals in brackets kept whole).
fn split_port(host: &str) -> (Option<&str>, Option<&str>) {
    if host.starts_with('[') {
        return match host.find(']') {
            Some(end) => {
                let port = host[end + 1..].strip_prefix(':');
                (Some(&host[..=end]), port)
            }
            None => (Some(host), None),
        };
    }
    match host.rsplit_once(':') {
        Some((name, port)) => (Some(name), Some(port)),
        None => (Some(host), None),
    }
}

/// Whether `prefix` is `path` or a whole-segment prefix of it.
pub(crate) fn segment_prefix(prefix: &str, path: &str) -> bool {
    path == prefix
        || (path.starts_with(prefix)
            && (prefix.ends_with('/') || path.as_bytes().get(prefix.len()) == Some(&b'/')))
}

/// Whether the path has a `..` segment, literal or percent-encoded.
fn has_dot_dot_segment(path: &str) -> bool {
    path.split('/').any(|segment| {
        let lower = segment.to_ascii_lowercase();
        matches!(lower.as_str(), ".." | "%2e." | ".%2e" | "%2e%2e")
    })
}

/// A client-supplied value shortened and stripped of control characters for messages.
fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    const MAX: usize = 200;
    if text.len() <= MAX && !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out: String = text.chars().filter(|c| !c.is_control()).take(MAX).collect();
    if text.len() > MAX {
        out.push('…');
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigFormat;

    fn table(toml: &str) -> RouteTable {
        RouteTable::new(&Settings::from_str(toml, ConfigFormat::Toml).unwrap())
    }

    #[test]
    fn lists_credential_sources_and_route_roles_for_the_refreshers() {
        let t = table(
            "[defaults]\nrole_arn = \"arn:aws:iam::111122223333:role/base\"\n\
             [[routes]]\nname = \"a\"\nupstream = \"https://sqs.us-east-1.amazonaws.com\"\nrole_arn = \"arn:aws:iam::111122223333:role/a\"\n",
        );
        let pairs: Vec<(String, Option<String>)> = t
            .credential_sources()
            .into_iter()
            .map(|(s, r)| (s.to_string(), r.map(|r| r.to_string())))
            .collect();
        assert_eq!(
            pairs,
            vec![
                (
                    "default".to_string(),
                    Some("arn:aws:iam::111122223333:role/a".to_string())
                ),
                (
                    "default".to_string(),
                    Some("arn:aws:iam::111122223333:role/base".to_string())
                ),
            ]
        );
    }

    const ROUTES: &str = r#"
        [credentials.search]
        kind = "environment"

        [[routes]]
        name = "search"
        path_prefix = "/search"
        strip_prefix = true
        upstream = "https://search-logs-abc.us-west-2.es.amazonaws.com"
        credentials = "search"
        body_cap = "1MiB"
        custom_headers = { "x-tenant" = "blue" }

        [[routes]]
        name = "by-host"
        host = "metrics.internal"
        upstream = "https://aps-workspaces.us-east-1.amazonaws.com/workspaces/ws-1"
        role_arn = "arn:aws:iam::111122223333:role/writer"
        retry = { max_attempts = 5 }

        [[routes]]
        name = "local"
        path_prefix = "/local/"
        upstream = "http://127.0.0.1:9000"
        service = "s3"
        region = "us-east-1"
        payload = "unsigned"
    "#;

    #[test]
    fn first_matching_route_wins_and_strips_its_prefix() {
        let t = table(ROUTES);
        let target = t
            .resolve(Some("metrics.internal"), "/search/_search")
            .unwrap();
        assert_eq!(&*target.route, "search");
        assert_eq!(target.scheme, http::uri::Scheme::HTTPS);
        assert_eq!(
            target.authority.as_str(),
            "search-logs-abc.us-west-2.es.amazonaws.com"
        );
        assert_eq!(target.path, "/_search");
        assert_eq!((&*target.service, &*target.region), ("es", "us-west-2"));
        assert_eq!(&*target.policy.credentials, "search");
        assert_eq!(target.policy.body_cap, 1 << 20);
        assert!(!target.host_routed);
        let headers: Vec<_> = target.policy.custom_headers.iter().collect();
        assert_eq!(headers.len(), 1);
        assert_eq!(headers[0].0.as_str(), "x-tenant");

        let root = t.resolve(None, "/search").unwrap();
        assert_eq!(root.path, "/");
    }

    #[test]
    fn path_prefix_matches_whole_segments_only() {
        let t = table(ROUTES);
        assert_eq!(&*t.resolve(None, "/local").unwrap().route, "local");
        assert_eq!(&*t.resolve(None, "/local/b/k").unwrap().route, "local");
        assert_eq!(t.resolve(None, "/local/b/k").unwrap().path, "/local/b/k");
        assert!(matches!(
            t.resolve(None, "/localx"),
            Err(RouteError::NoRoute { .. })
        ));
        assert!(matches!(
            t.resolve(None, "/searching"),
            Err(RouteError::NoRoute { .. })
        ));
    }

    #[test]
    fn host_route_matches_case_insensitively_with_any_port_and_keeps_base_path() {
        let t = table(ROUTES);
        let target = t
            .resolve(Some("Metrics.Internal:8080"), "/api/v1/remote_write")
            .unwrap();
        assert_eq!(&*target.route, "by-host");
        assert_eq!(target.path, "/workspaces/ws-1/api/v1/remote_write");
        assert_eq!((&*target.service, &*target.region), ("aps", "us-east-1"));
        assert_eq!(
            target.policy.role_arn.as_deref(),
            Some("arn:aws:iam::111122223333:role/writer")
        );
        assert_eq!(target.policy.upstream.retry.max_attempts, 5);
        // Unset fields of a partial override keep the defaults.
        assert_eq!(
            target.policy.upstream.retry.max_backoff,
            crate::upstream::RetrySettings::default().max_backoff
        );
    }

    #[test]
    fn a_client_cannot_make_host_route_names_without_bound() {
        let t = table(ROUTES);
        let route = |host: &str| t.resolve(Some(host), "/").unwrap().route;
        let sqs = route("sqs.us-east-1.amazonaws.com");
        assert_eq!(&*route("b0.s3.us-east-1.amazonaws.com"), "aws:s3");
        let names: std::collections::HashSet<Arc<str>> = (0..500)
            .map(|i| route(&format!("svc{i}.us-east-1.amazonaws.com")))
            .collect();
        assert_eq!(names.len(), names::MAX_HOST_ROUTE_NAMES - 1);
        assert!(names.iter().any(|n| &**n == names::OTHER_HOST_ROUTE));
        // Services named before the bound keep their names; every bucket of
        // a service shares its one name, made once.
        assert!(Arc::ptr_eq(&sqs, &route("sqs.us-east-1.amazonaws.com")));
        assert_eq!(&*route("b1.s3.us-east-1.amazonaws.com"), "aws:s3");
        assert_eq!(&*route("sqs.eu-west-1.amazonaws.com"), "aws:sqs");
    }

    #[test]
    fn routes_unmatched_aws_hosts_to_themselves() {
        let t = table(ROUTES);
        let target = t
            .resolve(Some("bucket.s3.eu-west-1.amazonaws.com:443"), "/key")
            .unwrap();
        assert!(target.host_routed);
        assert_eq!(&*target.route, "aws:s3");
        assert_eq!(
            target.authority.as_str(),
            "bucket.s3.eu-west-1.amazonaws.com"
        );
        assert_eq!(target.scheme, http::uri::Scheme::HTTPS);
        assert_eq!((&*target.service, &*target.region), ("s3", "eu-west-1"));
        assert_eq!(target.path, "/key");
        assert_eq!(&*target.policy.credentials, "default");
    }

    #[test]
    fn refuses_unknown_hosts_with_403_and_unparsable_aws_hosts_with_404() {
        let t = table(ROUTES);
        let e = t.resolve(Some("attacker.example:80"), "/").unwrap_err();
        assert_eq!(
            e,
            RouteError::UnknownHost {
                host: "attacker.example:80".into()
            }
        );
        assert_eq!(e.status(), http::StatusCode::FORBIDDEN);
        let e = t
            .resolve(Some("my-lb.us-east-1.elb.amazonaws.com"), "/")
            .unwrap_err();
        assert!(matches!(e, RouteError::NoRoute { .. }), "{e:?}");
        assert_eq!(e.status(), http::StatusCode::NOT_FOUND);
        let e = t.resolve(None, "/nothing").unwrap_err();
        assert!(e.to_string().contains("no Host header"), "{e}");
    }

    #[test]
    fn default_service_and_region_override_what_the_host_implies() {
        let t = table("[defaults]\nservice = \"es\"\nregion = \"eu-west-3\"\n");
        let target = t
            .resolve(Some("search-d.us-west-2.es.amazonaws.com"), "/")
            .unwrap();
        assert_eq!(
            (&*target.route, &*target.service, &*target.region),
            ("aws:es", "es", "eu-west-3")
        );
        // Customer resources under AWS domains stay refused.
        assert!(t
            .resolve(Some("my-lb.us-east-1.elb.amazonaws.com"), "/")
            .is_err());
        assert!(t.resolve(Some("example.com"), "/").is_err());
    }

    #[test]
    fn config_routes_give_their_signature_algorithm_to_the_target() {
        let t = table(
            r#"
            [[routes]]
            name = "mrap"
            path_prefix = "/mrap"
            strip_prefix = true
            upstream = "https://mfzwi23gnjvgw.mrap.accesspoint.s3-global.amazonaws.com"

            [[routes]]
            name = "events-two-regions"
            path_prefix = "/events"
            upstream = "https://abcde.veo.endpoint.events.amazonaws.com"
            region = "us-east-1,us-west-2"

            [[routes]]
            name = "tunnel"
            path_prefix = "/tunnel"
            upstream = "http://127.0.0.1:9000"
            service = "s3"
            signature = "sigv4a"

            [[routes]]
            name = "sqs"
            path_prefix = "/sqs"
            upstream = "https://sqs.us-east-1.amazonaws.com"
            "#,
        );
        let got = |path: &str| {
            let t = t.resolve(Some("localhost"), path).unwrap();
            (
                t.route.to_string(),
                t.service.to_string(),
                t.region.to_string(),
                t.algorithm,
            )
        };
        let row = |route: &str, service: &str, region: &str, algorithm| {
            (route.into(), service.into(), region.into(), algorithm)
        };
        assert_eq!(got("/mrap/k"), row("mrap", "s3", "*", Algorithm::V4a));
        assert_eq!(
            got("/events"),
            row(
                "events-two-regions",
                "events",
                "us-east-1,us-west-2",
                Algorithm::V4a
            )
        );
        assert_eq!(got("/tunnel/b/k"), row("tunnel", "s3", "*", Algorithm::V4a));
        assert_eq!(got("/sqs"), row("sqs", "sqs", "us-east-1", Algorithm::V4));
    }

    #[test]
    fn host_routing_signs_sigv4a_hosts_for_every_region() {
        let t = table(ROUTES);
        for (host, service) in [
            (
                "mfzwi23gnjvgw.mrap.accesspoint.s3-global.amazonaws.com",
                "s3",
            ),
            ("abcde.veo.endpoint.events.amazonaws.com:443", "events"),
        ] {
            let target = t.resolve(Some(host), "/").unwrap();
            assert!(target.host_routed, "{host}");
            assert_eq!(
                (&*target.service, &*target.region, target.algorithm),
                (service, "*", Algorithm::V4a),
                "{host}"
            );
            assert_eq!(target.route.as_ref(), format!("aws:{service}"));
        }
        let target = t.resolve(Some("sqs.us-east-1.amazonaws.com"), "/").unwrap();
        assert_eq!(target.algorithm, Algorithm::V4);
        // Near misses stay refused.
        for host in [
            "x.mrap.accesspoint.s3-global.amazonaws.com.cn",
            "mrap.accesspoint.s3-global.amazonaws.com",
        ] {
            let e = t.resolve(Some(host), "/").unwrap_err();
            assert!(matches!(e, RouteError::NoRoute { .. }), "{host}: {e:?}");
        }
    }

    #[test]
    fn default_region_does_not_replace_the_region_set_of_a_sigv4a_host() {
        let t = table("[defaults]\nservice = \"s3\"\nregion = \"eu-west-3\"\n");
        let target = t
            .resolve(Some("abcde.veo.endpoint.events.amazonaws.com"), "/")
            .unwrap();
        // The service override applies as for any host; the region does not.
        assert_eq!(
            (&*target.service, &*target.region, target.algorithm),
            ("s3", "*", Algorithm::V4a)
        );
        let target = t.resolve(Some("sqs.us-east-1.amazonaws.com"), "/").unwrap();
        assert_eq!(
            (&*target.region, target.algorithm),
            ("eu-west-3", Algorithm::V4)
        );
    }

    #[test]
    fn zonal_s3express_targets_sign_with_sessions_at_their_bucket_root() {
        const ZONAL: &str = "b--usw2-az1--x-s3.s3express-usw2-az1.us-west-2.amazonaws.com";
        let t = table(&format!(
            r#"
            [[routes]]
            name = "tunnel"
            path_prefix = "/tunnel"
            strip_prefix = true
            upstream = "http://127.0.0.1:9000/zonal"
            sign_host = "{ZONAL}"

            [[routes]]
            name = "iam-only"
            path_prefix = "/iam"
            upstream = "https://{ZONAL}"
            s3express_session = false
            "#
        ));
        let session = |host: &str, path: &str| {
            let target = t.resolve(Some(host), path).unwrap();
            target.s3express_session.as_deref().map(str::to_owned)
        };
        assert_eq!(session(ZONAL, "/k").as_deref(), Some("/"));
        assert_eq!(
            session(&format!("{}:443", ZONAL.to_uppercase()), "/k").as_deref(),
            Some("/")
        );
        assert_eq!(session("localhost", "/tunnel/k").as_deref(), Some("/zonal"));
        assert_eq!(session("localhost", "/iam/k"), None);
        assert_eq!(
            session("s3express-control.us-west-2.amazonaws.com", "/"),
            None
        );
        assert_eq!(session("b.s3.us-west-2.amazonaws.com", "/k"), None);
        // Signed as another service by defaults.service: no session.
        let t = table("[defaults]\nservice = \"s3\"\n");
        assert!(t
            .resolve(Some(ZONAL), "/k")
            .unwrap()
            .s3express_session
            .is_none());
    }

    #[test]
    fn host_routing_off_answers_no_route() {
        let t = table("[defaults]\naws_host_routing = false\n");
        let e = t
            .resolve(Some("sqs.us-east-1.amazonaws.com"), "/")
            .unwrap_err();
        assert!(
            e.to_string().contains("host-based AWS routing is off"),
            "{e}"
        );
        assert_eq!(e.status(), http::StatusCode::NOT_FOUND);
    }

    #[test]
    fn reason_strings_are_one_line_and_bounded() {
        let t = table("[defaults]\naws_host_routing = false\n");
        let long = format!("/{}\n{}", "a".repeat(500), "b");
        let e = t.resolve(Some("x\r\ny"), &long).unwrap_err().to_string();
        assert!(!e.contains('\n') && !e.contains('\r'), "{e}");
        assert!(e.len() < 600, "{}", e.len());
    }

    #[test]
    fn lists_every_credentials_source_and_role_in_use() {
        let t = table(ROUTES);
        let sources: Vec<(String, Option<String>)> = t
            .credential_sources()
            .into_iter()
            .map(|(s, r)| (s.to_string(), r.map(|r| r.to_string())))
            .collect();
        assert_eq!(
            sources,
            vec![
                ("default".into(), None),
                (
                    "default".into(),
                    Some("arn:aws:iam::111122223333:role/writer".into())
                ),
                ("search".into(), None),
            ]
        );
    }

    #[test]
    fn refuses_dot_dot_segments_under_a_base_path() {
        let t = table(ROUTES);
        for path in ["/x/../../other", "/x/%2E%2E/y", "/.%2e/y"] {
            let e = t.resolve(Some("metrics.internal"), path).unwrap_err();
            assert!(e.to_string().contains("'..' segments"), "{path}: {e}");
            assert_eq!(e.status(), http::StatusCode::NOT_FOUND, "{path}");
        }
        // Without a base path the upstream sees exactly what the client sent.
        let target = t.resolve(None, "/local/a/../b").unwrap();
        assert_eq!(target.path, "/local/a/../b");
        // A dotted name is not a dot segment.
        assert!(t.resolve(Some("metrics.internal"), "/a/..b/c").is_ok());
    }

    #[test]
    fn host_route_ignores_a_trailing_dot() {
        let t = table(ROUTES);
        assert_eq!(
            &*t.resolve(Some("metrics.internal."), "/").unwrap().route,
            "by-host"
        );
    }

    #[test]
    fn strip_prefix_string_removes_only_that_prefix() {
        let t = table(
            r#"
            [[routes]]
            name = "api"
            path_prefix = "/api/v1"
            strip_prefix = "/api"
            upstream = "http://127.0.0.1:9000/base/"
            service = "execute-api"
            region = "eu-west-1"
            "#,
        );
        let target = t.resolve(Some("localhost"), "/api/v1/items").unwrap();
        assert_eq!(target.path, "/base/v1/items");
        assert_eq!(target.authority.as_str(), "127.0.0.1:9000");
        assert_eq!(target.scheme, http::uri::Scheme::HTTP);
    }
}
