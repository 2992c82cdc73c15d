//! Layering: file (or embedded default) → SIGNET_* environment → flags, and the
//! aws-sigv4-proxy compatible flags.

use std::io::Write;

use clap::Parser;
use signet::config::{defaults, ConfigError, LogFormat, PayloadMode, ServeArgs, Settings};

#[derive(Parser, Debug)]
#[command(name = "signet")]
struct Cli {
    #[command(flatten)]
    serve: ServeArgs,
}

fn args(argv: &[&str]) -> ServeArgs {
    let mut full = vec!["signet"];
    full.extend_from_slice(argv);
    Cli::try_parse_from(full).unwrap().serve
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn file(text: &str, suffix: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(suffix).tempfile().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

fn load(argv: &[&str], vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    Settings::load_from(&args(argv), env(vars))
}

const FILE: &str = r#"
listen = "127.0.0.1:7000"
[admin]
listen = "127.0.0.1:7001"
[[routes]]
name = "file-route"
upstream = "https://sqs.us-east-1.amazonaws.com"
"#;

#[test]
fn no_arguments_start_on_the_embedded_default() {
    let s = load(&[], &[]).unwrap();
    assert_eq!(s.listen.to_string(), defaults::LISTEN);
    assert_eq!(s.admin.listen.to_string(), defaults::ADMIN_LISTEN);
    assert!(s.defaults.aws_host_routing);
    assert!(s.routes.is_empty());
    assert_eq!(s.config_file, None);
}

#[test]
fn environment_overrides_the_file() {
    let f = file(FILE, ".toml");
    let path = f.path().to_str().unwrap();
    let s = load(
        &["--config", path],
        &[
            ("SIGNET_LISTEN", "127.0.0.1:7100"),
            ("SIGNET_ADMIN__LISTEN", "127.0.0.1:7101"),
            ("SIGNET_LOG__FORMAT", "pretty"),
            ("SIGNET_SHUTDOWN__DRAIN_TIMEOUT", "5s"),
            ("SIGNET_DEFAULTS__BODY_CAP", "1MiB"),
            ("SIGNET_DEFAULTS__PAYLOAD", "unsigned"),
            ("SIGNET_DEFAULTS__AWS_HOST_ROUTING", "false"),
            ("SIGNET_DEFAULTS__RETRY__MAX_ATTEMPTS", "4"),
            (
                "SIGNET_DEFAULTS__SIGN_HEADERS__EXCLUDE",
                "user-agent,x-b3-*",
            ),
            ("SIGNET_CREDENTIALS__DEFAULT__KIND", "environment"),
            ("SIGNET_CONFIG", "/ignored/because/it/is/the/flag"),
            ("HOME", "/not/signet"),
        ],
    )
    .unwrap();
    assert_eq!(s.listen.port(), 7100);
    assert_eq!(s.admin.listen.port(), 7101);
    assert_eq!(s.log.format, LogFormat::Pretty);
    assert_eq!(s.shutdown.drain_timeout, std::time::Duration::from_secs(5));
    assert_eq!(s.defaults.body_cap, 1 << 20);
    assert_eq!(s.defaults.payload, PayloadMode::Unsigned);
    assert!(!s.defaults.aws_host_routing);
    assert_eq!(s.defaults.policy.retry.max_attempts, 4);
    assert_eq!(
        s.defaults
            .sign_headers_exclude
            .patterns()
            .collect::<Vec<_>>(),
        ["user-agent", "x-b3-*"]
    );
    assert_eq!(s.credentials["default"].kind(), "environment");
    // Routes inherit the environment's defaults.
    assert_eq!(s.routes[0].body_cap, 1 << 20);
    assert_eq!(s.routes[0].payload, PayloadMode::Unsigned);
    assert_eq!(s.config_file.as_deref(), Some(f.path()));
}

#[test]
fn flags_override_environment_and_file() {
    let f = file(FILE, ".toml");
    let s = load(
        &[
            "--config",
            f.path().to_str().unwrap(),
            "--listen",
            "127.0.0.1:7200",
            "--log-level",
            "debug",
        ],
        &[
            ("SIGNET_LISTEN", "127.0.0.1:7100"),
            ("SIGNET_LOG__LEVEL", "warn"),
        ],
    )
    .unwrap();
    assert_eq!(s.listen.port(), 7200);
    assert_eq!(s.admin.listen.port(), 7001);
    assert_eq!(s.log.level, "debug");
}

#[test]
fn worker_count_comes_from_file_environment_or_flag_and_zero_means_one_per_cpu() {
    let s = load(&[], &[]).unwrap();
    assert_eq!(s.workers, 0);
    let cpus = std::thread::available_parallelism().unwrap().get();
    assert_eq!(s.worker_threads(), cpus);
    let f = file("workers = 3\n", ".toml");
    let path = f.path().to_str().unwrap();
    assert_eq!(load(&["--config", path], &[]).unwrap().worker_threads(), 3);
    let s = load(&["--config", path], &[("SIGNET_WORKERS", "5")]).unwrap();
    assert_eq!(s.worker_threads(), 5);
    let s = load(
        &["--config", path, "--workers", "2"],
        &[("SIGNET_WORKERS", "5")],
    )
    .unwrap();
    assert_eq!(s.worker_threads(), 2);
    let e = load(&["--workers", "2000"], &[]).unwrap_err().to_string();
    assert_eq!(e, "workers: must be at most 1024 (0: one per CPU)");
}

#[test]
fn unknown_or_bad_environment_keys_name_the_key() {
    let e = load(&[], &[("SIGNET_LISTN", "127.0.0.1:1")])
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("listn: unknown field `listn`"), "{e}");
    let e = load(&[], &[("SIGNET_ADMIN__LISTEN", "nope")])
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "admin.listen: 'nope' is not an address such as 127.0.0.1:8080"
    );
    let e = load(&[], &[("SIGNET_DEFAULTS__PAYLOAD", "sometimes")])
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "defaults.payload: 'sometimes' is not one of signed, unsigned, auto"
    );
}

#[test]
fn yaml_files_are_chosen_by_extension() {
    let f = file("listen: 127.0.0.1:7300\nlog:\n  level: trace\n", ".yaml");
    let s = load(&["--config", f.path().to_str().unwrap()], &[]).unwrap();
    assert_eq!(s.listen.port(), 7300);
    assert_eq!(s.log.level, "trace");
}

#[test]
fn missing_file_is_reported_with_its_path() {
    let e = load(&["--config", "/nonexistent/signet.toml"], &[])
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("cannot read config file /nonexistent/signet.toml: "),
        "{e}"
    );
}

#[test]
fn quick_flags_make_one_route_replacing_the_files() {
    let f = file(FILE, ".toml");
    let s = load(
        &[
            "--config",
            f.path().to_str().unwrap(),
            "--upstream",
            "http://127.0.0.1:9000",
            "--service",
            "s3",
            "--region",
            "us-east-1",
        ],
        &[],
    )
    .unwrap();
    assert_eq!(s.routes.len(), 1);
    let r = &s.routes[0];
    assert_eq!(r.upstream.to_string(), "http://127.0.0.1:9000");
    assert_eq!((r.service.as_str(), r.region.as_str()), ("s3", "us-east-1"));
    assert_eq!((r.path_prefix.as_deref(), r.host.as_deref()), (None, None));
}

#[test]
fn quick_flags_derive_the_missing_half_from_an_aws_upstream() {
    let s = load(
        &[
            "--upstream",
            "https://search-x.us-west-2.es.amazonaws.com",
            "--service",
            "es",
        ],
        &[],
    )
    .unwrap();
    assert_eq!(s.routes[0].region, "us-west-2");
    let s = load(
        &[
            "--upstream",
            "https://search-x.us-west-2.es.amazonaws.com",
            "--region",
            "us-west-2",
        ],
        &[],
    )
    .unwrap();
    assert_eq!(s.routes[0].service, "es");
}

#[test]
fn quick_flags_refuse_naming_the_missing_flag() {
    let e = load(
        &[
            "--upstream",
            "http://127.0.0.1:9000",
            "--region",
            "us-east-1",
        ],
        &[],
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        e,
        "--service: missing, and the upstream host 127.0.0.1 is not an AWS endpoint to derive it from; set it"
    );
    let e = load(
        &["--upstream", "http://127.0.0.1:9000", "--service", "s3"],
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("--region: missing"), "{e}");
    let e = load(
        &[
            "--upstream",
            "http://127.0.0.1:9000",
            "--service",
            "s3",
            "--region",
            "us-est-1",
        ],
        &[],
    )
    .unwrap_err()
    .to_string();
    assert_eq!(e, "--region: 'us-est-1' is not a region name");
    let e = load(&["--sign-host", "x.example"], &[])
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("--sign-host: needs --upstream URL (or --host HOST)"),
        "{e}"
    );
    let e = load(&["--upstream-url-scheme", "http"], &[])
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("--upstream-url-scheme: only https without --host"),
        "{e}"
    );
    let e = load(&["--upstream", "nonsense"], &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("--upstream: 'nonsense' needs a scheme"), "{e}");
}

#[test]
fn aws_sigv4_proxy_flags_keep_their_meaning() {
    let s = load(
        &[
            "--name",
            "es",
            "--region",
            "us-west-2",
            "--host",
            "search-x.us-west-2.es.amazonaws.com",
            "--sign-host",
            "search-x.us-west-2.es.amazonaws.com",
            "--port",
            ":8081",
            "-s",
            "X-Client-Secret",
            "--strip",
            "cookie",
            "--custom-headers",
            "x-team=blue, x-env=dev",
            "--unsigned-payload",
            "--no-verify-ssl",
            "--role-arn",
            "arn:aws:iam::111122223333:role/search",
            "-v",
        ],
        &[],
    )
    .unwrap();
    assert_eq!(s.listen.to_string(), "0.0.0.0:8081");
    assert_eq!(s.log.level, "debug");
    assert!(s.tls.insecure_skip_verify);
    let r = &s.routes[0];
    assert_eq!(
        r.upstream.to_string(),
        "https://search-x.us-west-2.es.amazonaws.com"
    );
    assert_eq!((r.service.as_str(), r.region.as_str()), ("es", "us-west-2"));
    assert_eq!(
        r.sign_host.as_ref().map(|a| a.as_str()),
        Some("search-x.us-west-2.es.amazonaws.com")
    );
    assert_eq!(r.payload, PayloadMode::Unsigned);
    assert!(r.strip_headers.matches("x-client-secret") && r.strip_headers.matches("cookie"));
    let custom: Vec<(String, String)> = r
        .custom_headers
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
        .collect();
    assert_eq!(
        custom,
        [
            ("x-env".to_string(), "dev".to_string()),
            ("x-team".to_string(), "blue".to_string())
        ]
    );
    assert_eq!(
        r.role_arn.as_deref(),
        Some("arn:aws:iam::111122223333:role/search")
    );

    let s = load(
        &[
            "--host",
            "127.0.0.1:9000",
            "--upstream-url-scheme",
            "http",
            "--name",
            "s3",
            "--region",
            "us-east-1",
            "--port",
            "9999",
        ],
        &[],
    )
    .unwrap();
    assert_eq!(s.routes[0].upstream.to_string(), "http://127.0.0.1:9000");
    assert_eq!(s.listen.to_string(), "0.0.0.0:9999");
}

#[test]
fn name_and_region_without_host_sign_host_routed_requests_as_given() {
    let s = load(
        &[
            "--name",
            "es",
            "--region",
            "eu-west-3",
            "--upstream-url-scheme",
            "https",
        ],
        &[],
    )
    .unwrap();
    assert!(s.routes.is_empty());
    assert_eq!(s.defaults.service.as_deref(), Some("es"));
    assert_eq!(s.defaults.region.as_deref(), Some("eu-west-3"));
    let table = signet::routing::RouteTable::new(&s);
    let t = table
        .resolve(Some("search-d.us-west-2.es.amazonaws.com"), "/_search")
        .unwrap();
    assert_eq!((&*t.service, &*t.region), ("es", "eu-west-3"));
    let e = load(&["--region", "us-est-1"], &[])
        .unwrap_err()
        .to_string();
    assert_eq!(e, "defaults.region: 'us-est-1' is not a region name");
}

#[test]
fn conflicting_or_malformed_compat_flags_are_refused() {
    let e = load(
        &[
            "--upstream",
            "https://sqs.us-east-1.amazonaws.com",
            "--host",
            "x",
        ],
        &[],
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "--host: give either --upstream or --host, not both"
    );
    let e = load(&["--listen", "127.0.0.1:1", "--port", "2"], &[]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "--port: give either --listen or --port, not both"
    );
    let e = load(&["--custom-headers", "novalue"], &[]).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("--custom-headers: 'novalue' is not name=value"),
        "{e}"
    );
    let e = load(&["--role-arn", "not-an-arn"], &[]).unwrap_err();
    assert!(e.to_string().starts_with("defaults.role_arn: "), "{e}");
}
