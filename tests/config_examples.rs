//! Every shipped configuration (the embedded default and config/examples/) is
//! valid, and the reference documents every key.

use std::path::{Path, PathBuf};

use signet::config::{ConfigFormat, ServeArgs, Settings};
use signet::routing::RouteTable;

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("toml" | "yaml" | "yml")
            )
        })
        .collect();
    files.sort();
    files
}

fn load(path: &Path) -> Settings {
    let args = ServeArgs {
        config: Some(path.to_path_buf()),
        ..ServeArgs::default()
    };
    Settings::load_from(&args, std::iter::empty())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn embedded_default_is_valid_and_matches_the_file_on_disk() {
    let embedded = Settings::embedded_default().unwrap();
    let on_disk = load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("config/signet.toml"));
    assert_eq!(
        Settings {
            config_file: None,
            ..on_disk
        },
        embedded
    );
}

#[test]
fn every_example_is_valid() {
    let files = examples();
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for wanted in [
        "opensearch-sidecar",
        "prometheus-amp",
        "s3-gateway",
        "multi-service-gateway",
    ] {
        assert!(
            names.iter().any(|n| n.starts_with(wanted)),
            "missing example {wanted}: {names:?}"
        );
    }
    for path in &files {
        let settings = load(path);
        let table = RouteTable::new(&settings);
        assert_eq!(table.len(), settings.routes.len());
        // What `signet check` prints loads back to the same routes.
        let printed = settings.redacted_toml();
        let back = Settings::from_str(&printed, ConfigFormat::Toml).unwrap_or_else(|e| {
            panic!(
                "{}: printed config does not load: {e}\n{printed}",
                path.display()
            )
        });
        assert_eq!(back.routes, settings.routes, "{}", path.display());
    }
}

#[test]
fn examples_route_their_documented_requests() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/examples");
    let table = |name: &str| RouteTable::new(&load(&dir.join(name)));

    let t = table("opensearch-sidecar.toml")
        .resolve(Some("127.0.0.1:9200"), "/logs/_search")
        .unwrap();
    assert_eq!(
        (&*t.service, &*t.region, t.path.as_str()),
        ("es", "us-west-2", "/logs/_search")
    );

    let t = table("prometheus-amp.toml")
        .resolve(
            Some("127.0.0.1:8005"),
            "/workspaces/ws-1/api/v1/remote_write",
        )
        .unwrap();
    assert_eq!(
        (&*t.service, t.authority.as_str()),
        ("aps", "aps-workspaces.us-west-2.amazonaws.com")
    );
    assert_eq!(t.path, "/workspaces/ws-1/api/v1/remote_write");
    assert!(t.policy.role_arn.is_some());

    let t = table("s3-gateway.toml")
        .resolve(Some("127.0.0.1:8080"), "/bucket/key")
        .unwrap();
    assert_eq!((&*t.service, &*t.region), ("s3", "us-east-1"));

    let gw = table("multi-service-gateway.yaml");
    let t = gw.resolve(Some("127.0.0.1:8080"), "/sqs").unwrap();
    assert_eq!(
        (&*t.route, &*t.service, t.path.as_str()),
        ("sqs", "sqs", "/")
    );
    let t = gw.resolve(Some("127.0.0.1:8080"), "/hello/world").unwrap();
    assert_eq!((&*t.service, t.path.as_str()), ("lambda", "/world"));
    let t = gw
        .resolve(Some("kinesis.eu-west-1.amazonaws.com"), "/")
        .unwrap();
    assert!(t.host_routed);
    assert_eq!(&*t.policy.credentials, "dev");
    assert!(gw.resolve(Some("127.0.0.1:8080"), "/elsewhere").is_err());
}

#[test]
fn reference_documents_every_key() {
    let docs = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/configuration.md"),
    )
    .unwrap();
    let mut keys = Vec::new();
    for path in examples() {
        let value: toml::Value = toml::from_str(&load(&path).redacted_toml()).unwrap();
        collect_keys("", &value, &mut keys);
    }
    keys.sort();
    keys.dedup();
    let missing: Vec<&String> = keys
        .iter()
        .filter(|k| !docs.contains(&format!("`{k}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/configuration.md does not mention: {missing:?}"
    );
}

/// Dotted key paths, with `credentials.<name>` collapsed and route keys as `routes[].key`.
fn collect_keys(prefix: &str, value: &toml::Value, out: &mut Vec<String>) {
    match value {
        toml::Value::Table(table) => {
            for (k, v) in table {
                let key = match prefix {
                    "" => k.clone(),
                    "credentials" => continue,
                    "defaults.custom_headers" | "routes[].custom_headers" => continue,
                    p => format!("{p}.{k}"),
                };
                if key.is_empty() {
                    continue;
                }
                if !v.is_table() && key != "routes" {
                    out.push(key.clone());
                }
                // Route overrides take the same keys as the defaults' tables.
                if !matches!(
                    key.as_str(),
                    "routes[].retry" | "routes[].timeouts" | "routes[].limits"
                ) {
                    collect_keys(&key, v, out);
                }
            }
        }
        toml::Value::Array(items) if prefix == "routes" => {
            for item in items {
                collect_keys("routes[]", item, out);
            }
        }
        _ => {}
    }
}
