//! The deployment files (Dockerfile, Kubernetes manifests, Helm chart, systemd
//! unit) checked against signet itself: ports, probe paths, config files and
//! drain timing must agree with the binary's defaults and its config loader,
//! so they cannot drift apart.
//!
//! Helm templates are rendered by a small evaluator of the template subset the
//! chart uses (`if`/`else`/`with`/`define`/`include`, pipelines and a handful
//! of Sprig functions), then parsed as YAML like the plain manifests.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_yaml::{Mapping, Value};
use signet::admin::{HEALTH_PATH, METRICS_PATH, READY_PATH};
use signet::config::{defaults, ServeArgs, Settings};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn port_of(addr: &str) -> u16 {
    addr.parse::<SocketAddr>().unwrap().port()
}

/// Every YAML document in `text` (empty documents skipped).
fn parse_docs(text: &str, origin: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| {
            Value::deserialize(doc)
                .unwrap_or_else(|e| panic!("{origin} is not valid YAML: {e}\n{text}"))
        })
        .filter(|v| !v.is_null())
        .collect()
}

fn files_under(dir: &Path, ext: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| ext.contains(&e))
            {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

// ---------------------------------------------------------------------------
// YAML access helpers

/// The value at a dotted `path`; keys may themselves contain dots
/// (`metadata.annotations.eks.amazonaws.com/role-arn`), so every split is tried.
fn get<'a>(v: &'a Value, path: &str) -> &'a Value {
    static NULL: Value = Value::Null;
    if path.is_empty() {
        return v;
    }
    let ends = path.match_indices('.').map(|(i, _)| i).chain([path.len()]);
    for end in ends {
        let key = &path[..end];
        let rest = path.get(end + 1..).unwrap_or("");
        let child = match v {
            Value::Mapping(m) => m.get(key),
            Value::Sequence(s) => key.parse::<usize>().ok().and_then(|i| s.get(i)),
            _ => None,
        };
        if let Some(child) = child {
            let found = get(child, rest);
            if !found.is_null() {
                return found;
            }
        }
    }
    &NULL
}

fn str_at<'a>(v: &'a Value, path: &str) -> &'a str {
    get(v, path)
        .as_str()
        .unwrap_or_else(|| panic!("{path} is not a string in {v:?}"))
}

fn u64_at(v: &Value, path: &str) -> u64 {
    get(v, path)
        .as_u64()
        .unwrap_or_else(|| panic!("{path} is not a number in {v:?}"))
}

fn seq<'a>(v: &'a Value, path: &str) -> &'a [Value] {
    get(v, path).as_sequence().map(Vec::as_slice).unwrap_or(&[])
}

fn kind(doc: &Value) -> &str {
    get(doc, "kind").as_str().unwrap_or("")
}

fn name(doc: &Value) -> &str {
    get(doc, "metadata.name").as_str().unwrap_or("")
}

// ---------------------------------------------------------------------------
// Checks shared by the plain manifests and the rendered chart

/// How signet is meant to be reached in a pod.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    /// Listens on all interfaces behind a Service.
    Gateway,
    /// Listens on loopback for the application in the same pod.
    Sidecar,
}

/// Checks one Deployment's signet container against the config it mounts,
/// signet's defaults and admin paths, and its Service / PDB neighbours.
fn check_deployment(docs: &[Value], deploy: &Value, origin: &str) -> Mode {
    let spec = get(deploy, "spec.template.spec");
    let containers: Vec<&Value> = seq(spec, "containers").iter().collect();
    let inits: Vec<&Value> = seq(spec, "initContainers").iter().collect();
    let signet = containers
        .iter()
        .chain(inits.iter())
        .find(|c| str_at(c, "name") == "signet")
        .unwrap_or_else(|| panic!("{origin}: no container named signet"));
    let is_native_sidecar = inits.iter().any(|c| str_at(c, "name") == "signet");
    if is_native_sidecar {
        assert_eq!(
            str_at(signet, "restartPolicy"),
            "Always",
            "{origin}: a sidecar in initContainers needs restartPolicy: Always"
        );
    }

    // The config file: --config PATH, mounted from a ConfigMap in the same set.
    let args: Vec<&str> = seq(signet, "args")
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args.first(), Some(&"serve"), "{origin}: args {args:?}");
    let config_path = args
        .windows(2)
        .find(|w| w[0] == "--config")
        .map(|w| Path::new(w[1]))
        .unwrap_or_else(|| panic!("{origin}: no --config in {args:?}"));
    let mount = seq(signet, "volumeMounts")
        .iter()
        .find(|m| Path::new(str_at(m, "mountPath")) == config_path.parent().unwrap())
        .unwrap_or_else(|| panic!("{origin}: nothing mounted at {}", config_path.display()));
    let volume = seq(spec, "volumes")
        .iter()
        .find(|v| str_at(v, "name") == str_at(mount, "name"))
        .unwrap_or_else(|| panic!("{origin}: volume {:?} missing", get(mount, "name")));
    let cm_name = str_at(volume, "configMap.name");
    let cm = docs
        .iter()
        .find(|d| kind(d) == "ConfigMap" && name(d) == cm_name)
        .unwrap_or_else(|| panic!("{origin}: ConfigMap {cm_name} missing"));
    let key = config_path.file_name().unwrap().to_str().unwrap();
    let config_text = str_at(cm, &format!("data.{key}"));

    // Load it exactly as `signet serve --config PATH` would, with the
    // container's environment.
    let env: Vec<(String, String)> = seq(signet, "env")
        .iter()
        .filter_map(|e| {
            Some((
                str_at(e, "name").to_owned(),
                get(e, "value").as_str()?.to_owned(),
            ))
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(key);
    std::fs::write(&file, config_text).unwrap();
    let args = ServeArgs {
        config: Some(file),
        ..ServeArgs::default()
    };
    let settings = Settings::load_from(&args, env.clone()).unwrap_or_else(|e| {
        panic!("{origin}: ConfigMap {cm_name} does not load: {e}\n{config_text}")
    });

    // Ports: the container's declared ports are the ones signet listens on,
    // and those are signet's default ports.
    let ports: BTreeMap<String, u64> = seq(signet, "ports")
        .iter()
        .map(|p| (str_at(p, "name").to_owned(), u64_at(p, "containerPort")))
        .collect();
    let admin_port = u64::from(settings.admin.listen.port());
    assert_eq!(
        admin_port,
        u64::from(port_of(defaults::ADMIN_LISTEN)),
        "{origin}: admin port differs from signet's default"
    );
    assert_eq!(
        u64::from(settings.listen.port()),
        u64::from(port_of(defaults::LISTEN)),
        "{origin}: proxy port differs from signet's default"
    );
    assert!(
        ports.values().any(|p| *p == admin_port),
        "{origin}: admin port {admin_port} not declared in {ports:?}"
    );
    assert!(
        settings.admin.listen.ip().is_unspecified(),
        "{origin}: the kubelet probes the pod IP, so admin must listen on 0.0.0.0, not {}",
        settings.admin.listen
    );
    let mode = if settings.listen.ip().is_loopback() {
        Mode::Sidecar
    } else {
        assert!(
            settings.listen.ip().is_unspecified(),
            "{origin}: listen {}",
            settings.listen
        );
        assert_eq!(
            ports.get("http").copied(),
            Some(u64::from(settings.listen.port())),
            "{origin}: the gateway's http port must be the one signet listens on"
        );
        Mode::Gateway
    };
    assert_eq!(
        mode == Mode::Sidecar,
        is_native_sidecar,
        "{origin}: loopback only for sidecars"
    );

    // Probes: admin port, signet's paths.
    let resolve = |port: &Value| -> u64 {
        match port {
            Value::String(named) => *ports
                .get(named)
                .unwrap_or_else(|| panic!("{origin}: probe port {named} is not a container port")),
            other => other.as_u64().unwrap(),
        }
    };
    for (probe, path) in [
        ("livenessProbe", HEALTH_PATH),
        ("readinessProbe", READY_PATH),
        ("startupProbe", READY_PATH),
    ] {
        let p = get(signet, probe);
        if p.is_null() {
            assert_ne!(probe, "livenessProbe", "{origin}: no liveness probe");
            assert_ne!(probe, "readinessProbe", "{origin}: no readiness probe");
            continue;
        }
        assert_eq!(str_at(p, "httpGet.path"), path, "{origin}: {probe} path");
        assert_eq!(
            resolve(get(p, "httpGet.port")),
            admin_port,
            "{origin}: {probe} port"
        );
    }

    // Prometheus scrape annotations point at the admin listener.
    let annotations = get(deploy, "spec.template.metadata.annotations");
    if !get(annotations, "prometheus.io/scrape").is_null() {
        assert_eq!(
            str_at(annotations, "prometheus.io/port")
                .parse::<u64>()
                .unwrap(),
            admin_port,
            "{origin}: prometheus.io/port"
        );
        assert_eq!(str_at(annotations, "prometheus.io/path"), METRICS_PATH);
    }

    // Termination: the kubelet must not kill signet before its drain ends.
    let grace = Duration::from_secs(u64_at(spec, "terminationGracePeriodSeconds"));
    let pre_stop = Duration::from_secs(
        get(signet, "lifecycle.preStop.sleep.seconds")
            .as_u64()
            .unwrap_or(0),
    );
    assert!(
        grace > pre_stop + settings.shutdown.drain_timeout,
        "{origin}: terminationGracePeriodSeconds {grace:?} must exceed preStop {pre_stop:?} + drain {:?}",
        settings.shutdown.drain_timeout
    );
    if mode == Mode::Gateway {
        assert!(
            pre_stop > Duration::ZERO,
            "{origin}: a gateway needs a preStop delay"
        );
    }

    // Non-root, read-only: the image runs as distroless nonroot (65532).
    let run_as_non_root = get(spec, "securityContext.runAsNonRoot")
        .as_bool()
        .or_else(|| get(signet, "securityContext.runAsNonRoot").as_bool());
    assert_eq!(run_as_non_root, Some(true), "{origin}: runAsNonRoot");
    assert_eq!(
        get(signet, "securityContext.readOnlyRootFilesystem").as_bool(),
        Some(true)
    );
    assert_eq!(
        get(signet, "securityContext.allowPrivilegeEscalation").as_bool(),
        Some(false)
    );
    assert!(
        !get(signet, "resources.requests.cpu").is_null(),
        "{origin}: cpu request"
    );
    assert!(
        !get(signet, "resources.requests.memory").is_null(),
        "{origin}: memory request"
    );

    // A sidecar's application is pointed at signet on loopback.
    if mode == Mode::Sidecar {
        let app_urls: Vec<&str> = containers
            .iter()
            .filter(|c| str_at(c, "name") != "signet")
            .flat_map(|c| seq(c, "env"))
            .filter_map(|e| get(e, "value").as_str())
            .filter(|v| v.starts_with("http://127.0.0.1:"))
            .collect();
        assert!(
            !app_urls.is_empty(),
            "{origin}: the application is not pointed at signet"
        );
        for url in app_urls {
            let port: String = url
                .trim_start_matches("http://127.0.0.1:")
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            assert_eq!(
                port.parse::<u16>().ok(),
                Some(settings.listen.port()),
                "{origin}: application URL {url}"
            );
        }
    }

    // Services and PDBs select these pods, and Service target ports exist.
    let pod_labels = get(deploy, "spec.template.metadata.labels");
    let pod_ports: BTreeMap<String, u64> = containers
        .iter()
        .chain(inits.iter())
        .flat_map(|c| seq(c, "ports"))
        .map(|p| (str_at(p, "name").to_owned(), u64_at(p, "containerPort")))
        .collect();
    let selects = |selector: &Value| {
        selector.as_mapping().is_some_and(|m| {
            m.iter()
                .all(|(k, v)| get(pod_labels, k.as_str().unwrap()) == v)
        })
    };
    assert!(
        selects(get(deploy, "spec.selector.matchLabels")),
        "{origin}: selector"
    );
    for svc in docs
        .iter()
        .filter(|d| kind(d) == "Service" && selects(get(d, "spec.selector")))
    {
        for p in seq(svc, "spec.ports") {
            let target = get(p, "targetPort");
            let resolved = match target {
                Value::String(n) => pod_ports.get(n).copied(),
                other => other.as_u64(),
            };
            assert!(
                resolved.is_some(),
                "{origin}: Service {} targets missing port {target:?}",
                name(svc)
            );
            if str_at(p, "name") == "admin" {
                assert_eq!(resolved, Some(admin_port));
            }
        }
    }
    for pdb in docs.iter().filter(|d| kind(d) == "PodDisruptionBudget") {
        assert!(
            selects(get(pdb, "spec.selector.matchLabels")),
            "{origin}: PDB selector"
        );
    }
    mode
}

// ---------------------------------------------------------------------------
// Plain Kubernetes manifests

fn kustomize_dirs() -> Vec<PathBuf> {
    let root = repo().join("deploy/kubernetes");
    let mut dirs: Vec<PathBuf> = files_under(&root, &["yaml"])
        .into_iter()
        .filter(|p| p.file_name().unwrap() == "kustomization.yaml")
        .map(|p| p.parent().unwrap().to_path_buf())
        .collect();
    dirs.sort();
    dirs
}

/// The documents of a kustomization's resources, checked to be exactly the
/// YAML files beside it.
fn kustomized_docs(dir: &Path) -> Vec<Value> {
    let k = &parse_docs(&read(&dir.join("kustomization.yaml")), "kustomization.yaml")[0];
    let listed: Vec<&str> = seq(k, "resources")
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    let mut beside: Vec<String> = files_under(dir, &["yaml"])
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap().to_owned())
        .filter(|n| n != "kustomization.yaml")
        .collect();
    beside.sort();
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        beside,
        "{}: resources must list every manifest",
        dir.display()
    );
    listed
        .iter()
        .flat_map(|f| parse_docs(&read(&dir.join(f)), f))
        .collect()
}

#[test]
fn every_kubernetes_manifest_parses_as_yaml() {
    let files = files_under(&repo().join("deploy/kubernetes"), &["yaml", "yml"]);
    assert!(files.len() >= 8, "{files:?}");
    for f in files {
        let docs = parse_docs(&read(&f), &f.display().to_string());
        assert!(!docs.is_empty(), "{}", f.display());
        for d in docs {
            assert!(
                !kind(&d).is_empty(),
                "{}: a document without kind",
                f.display()
            );
        }
    }
}

#[test]
fn kubernetes_deployments_match_signet_ports_probes_config_and_drain() {
    let dirs = kustomize_dirs();
    let mut modes = Vec::new();
    for dir in &dirs {
        let docs = kustomized_docs(dir);
        for deploy in docs.iter().filter(|d| kind(d) == "Deployment") {
            let origin = format!("{}/{}", dir.display(), name(deploy));
            modes.push(check_deployment(&docs, deploy, &origin));
        }
    }
    assert!(
        modes.contains(&Mode::Gateway),
        "no gateway example in {dirs:?}"
    );
    assert!(
        modes.contains(&Mode::Sidecar),
        "no sidecar example in {dirs:?}"
    );
}

#[test]
fn gateway_has_service_pdb_and_sidecar_has_none() {
    let root = repo().join("deploy/kubernetes");
    let gateway = kustomized_docs(&root.join("gateway"));
    for k in [
        "Deployment",
        "Service",
        "ConfigMap",
        "PodDisruptionBudget",
        "ServiceAccount",
    ] {
        assert!(gateway.iter().any(|d| kind(d) == k), "gateway lacks a {k}");
    }
    let svc = gateway.iter().find(|d| kind(d) == "Service").unwrap();
    let http = seq(svc, "spec.ports")
        .iter()
        .find(|p| str_at(p, "name") == "http")
        .unwrap();
    assert_eq!(u64_at(http, "port"), u64::from(port_of(defaults::LISTEN)));
    let sidecar = kustomized_docs(&root.join("sidecar"));
    assert!(
        !sidecar.iter().any(|d| kind(d) == "Service"),
        "a sidecar must not be exposed"
    );
}

#[test]
fn service_account_examples_cover_irsa_and_pod_identity() {
    let docs: Vec<Value> = kustomize_dirs()
        .iter()
        .flat_map(|d| kustomized_docs(d))
        .collect();
    let accounts: Vec<&Value> = docs
        .iter()
        .filter(|d| kind(d) == "ServiceAccount")
        .collect();
    let irsa = accounts
        .iter()
        .find(|a| !get(a, "metadata.annotations.eks.amazonaws.com/role-arn").is_null());
    let irsa = irsa.expect("an IRSA ServiceAccount with eks.amazonaws.com/role-arn");
    assert!(
        str_at(irsa, "metadata.annotations.eks.amazonaws.com/role-arn")
            .starts_with("arn:aws:iam::")
    );
    assert!(
        accounts
            .iter()
            .any(|a| get(a, "metadata.annotations").is_null()),
        "a plain ServiceAccount for EKS Pod Identity"
    );
    let pod_identity =
        read(&repo().join("deploy/kubernetes/sidecar/serviceaccount-pod-identity.yaml"));
    assert!(pod_identity.contains("create-pod-identity-association"));
    // Each account is used by a Deployment whose config picks the matching source.
    for dir in kustomize_dirs() {
        let docs = kustomized_docs(&dir);
        let sa = docs.iter().find(|d| kind(d) == "ServiceAccount").unwrap();
        let deploy = docs.iter().find(|d| kind(d) == "Deployment").unwrap();
        assert_eq!(
            str_at(deploy, "spec.template.spec.serviceAccountName"),
            name(sa)
        );
        let cm = docs.iter().find(|d| kind(d) == "ConfigMap").unwrap();
        let config = Settings::from_str(
            str_at(cm, "data.signet.toml"),
            signet::config::ConfigFormat::Toml,
        )
        .unwrap();
        let source = config.credentials.get("default").unwrap().kind();
        let expected = if get(sa, "metadata.annotations.eks.amazonaws.com/role-arn").is_null() {
            ["container", "chain"]
        } else {
            ["web_identity", "chain"]
        };
        assert!(
            expected.contains(&source),
            "{}: source {source}",
            dir.display()
        );
    }
}

// ---------------------------------------------------------------------------
// Helm chart

mod tpl {
    //! A small evaluator for the Go-template subset the chart uses.

    use super::*;
    use sha2::Digest;

    #[derive(Debug, Clone)]
    pub enum Arg {
        Field { root: bool, path: Vec<String> },
        Str(String),
        Num(i64),
        Func(String),
        Sub(Vec<Vec<Arg>>),
    }

    pub type Pipeline = Vec<Vec<Arg>>;

    #[derive(Debug, Clone)]
    pub enum Node {
        Text(String),
        Action(Pipeline),
        If(Vec<(Pipeline, Vec<Node>)>, Vec<Node>),
        With(Pipeline, Vec<Node>, Vec<Node>),
    }

    #[derive(Debug)]
    enum Tok {
        Text(String),
        Act(String),
    }

    fn lex(src: &str) -> Vec<Tok> {
        let mut toks = Vec::new();
        let mut rest = src;
        let mut trim_next = false;
        while let Some(start) = rest.find("{{") {
            let mut text = rest[..start].to_owned();
            if trim_next {
                text = text.trim_start().to_owned();
            }
            let after = &rest[start + 2..];
            let end = after.find("}}").expect("unclosed {{");
            let mut inner = &after[..end];
            if let Some(s) = inner.strip_prefix('-') {
                if s.starts_with(char::is_whitespace) {
                    text = text.trim_end().to_owned();
                    inner = s;
                }
            }
            trim_next = false;
            if let Some(s) = inner.strip_suffix('-') {
                if s.ends_with(char::is_whitespace) {
                    trim_next = true;
                    inner = s;
                }
            }
            toks.push(Tok::Text(text));
            let inner = inner.trim();
            if !(inner.starts_with("/*") && inner.ends_with("*/")) {
                toks.push(Tok::Act(inner.to_owned()));
            }
            rest = &after[end + 2..];
        }
        let mut text = rest.to_owned();
        if trim_next {
            text = text.trim_start().to_owned();
        }
        toks.push(Tok::Text(text));
        toks
    }

    fn words(src: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut chars = src.chars().peekable();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() {
                chars.next();
            } else if c == '"' {
                chars.next();
                let mut s = String::from("\"");
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => s.push(chars.next().unwrap()),
                        '"' => break,
                        c => s.push(c),
                    }
                }
                out.push(s);
            } else if c == '|' || c == '(' || c == ')' {
                out.push(c.to_string());
                chars.next();
            } else {
                let mut w = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || c == '|' || c == '(' || c == ')' {
                        break;
                    }
                    w.push(c);
                    chars.next();
                }
                out.push(w);
            }
        }
        out
    }

    fn parse_pipeline(words: &[String], pos: &mut usize) -> Pipeline {
        let mut pipeline = vec![Vec::new()];
        while *pos < words.len() {
            let w = &words[*pos];
            *pos += 1;
            let arg = match w.as_str() {
                ")" => return pipeline,
                "|" => {
                    pipeline.push(Vec::new());
                    continue;
                }
                "(" => Arg::Sub(parse_pipeline(words, pos)),
                s if s.starts_with('"') => Arg::Str(s[1..].to_owned()),
                "." => Arg::Field {
                    root: false,
                    path: vec![],
                },
                "$" => Arg::Field {
                    root: true,
                    path: vec![],
                },
                s if s.starts_with('.') || s.starts_with("$.") => Arg::Field {
                    root: s.starts_with('$'),
                    path: s
                        .trim_start_matches('$')
                        .trim_start_matches('.')
                        .split('.')
                        .map(str::to_owned)
                        .collect(),
                },
                s if s.parse::<i64>().is_ok() => Arg::Num(s.parse().unwrap()),
                s => Arg::Func(s.to_owned()),
            };
            pipeline.last_mut().unwrap().push(arg);
        }
        pipeline
    }

    fn pipeline_of(src: &str) -> Pipeline {
        let w = words(src);
        let mut pos = 0;
        parse_pipeline(&w, &mut pos)
    }

    /// Parses nodes until `end`/`else`; returns the nodes and the stopping action.
    fn parse_nodes(
        toks: &mut std::iter::Peekable<std::vec::IntoIter<Tok>>,
        defines: &mut BTreeMap<String, Vec<Node>>,
    ) -> (Vec<Node>, Option<String>) {
        let mut nodes = Vec::new();
        while let Some(tok) = toks.next() {
            match tok {
                Tok::Text(t) => nodes.push(Node::Text(t)),
                Tok::Act(a) => {
                    let (head, rest) = a
                        .split_once(char::is_whitespace)
                        .unwrap_or((a.as_str(), ""));
                    match head {
                        "end" => return (nodes, Some("end".into())),
                        "else" => return (nodes, Some(a.clone())),
                        "if" => {
                            let mut branches = Vec::new();
                            let mut cond = pipeline_of(rest);
                            loop {
                                let (body, stop) = parse_nodes(toks, defines);
                                branches.push((cond, body));
                                let stop = stop.expect("unterminated if");
                                if stop == "end" {
                                    nodes.push(Node::If(branches, Vec::new()));
                                    break;
                                }
                                let else_rest = stop.trim_start_matches("else").trim();
                                if let Some(c) = else_rest.strip_prefix("if ") {
                                    cond = pipeline_of(c);
                                    continue;
                                }
                                let (otherwise, stop) = parse_nodes(toks, defines);
                                assert_eq!(stop.as_deref(), Some("end"));
                                nodes.push(Node::If(branches, otherwise));
                                break;
                            }
                        }
                        "with" => {
                            let (body, stop) = parse_nodes(toks, defines);
                            let otherwise = if stop.as_deref() == Some("end") {
                                Vec::new()
                            } else {
                                let (o, s) = parse_nodes(toks, defines);
                                assert_eq!(s.as_deref(), Some("end"));
                                o
                            };
                            nodes.push(Node::With(pipeline_of(rest), body, otherwise));
                        }
                        "define" => {
                            let name = rest.trim().trim_matches('"').to_owned();
                            let (body, stop) = parse_nodes(toks, defines);
                            assert_eq!(stop.as_deref(), Some("end"));
                            defines.insert(name, body);
                        }
                        "range" | "block" | "template" => panic!("unsupported action: {a}"),
                        _ => nodes.push(Node::Action(pipeline_of(&a))),
                    }
                }
            }
        }
        (nodes, None)
    }

    pub fn parse(src: &str, defines: &mut BTreeMap<String, Vec<Node>>) -> Vec<Node> {
        let mut toks = lex(src).into_iter().peekable();
        let (nodes, stop) = parse_nodes(&mut toks, defines);
        assert!(stop.is_none(), "stray {stop:?}");
        nodes
    }

    pub struct Engine {
        pub root: Value,
        pub defines: BTreeMap<String, Vec<Node>>,
    }

    fn truthy(v: &Value) -> bool {
        match v {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::Number(n) => n.as_f64() != Some(0.0),
            Value::String(s) => !s.is_empty(),
            Value::Sequence(s) => !s.is_empty(),
            Value::Mapping(m) => !m.is_empty(),
            Value::Tagged(_) => true,
        }
    }

    fn text(v: &Value) -> String {
        match v {
            Value::Null => String::new(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            Value::String(s) => s.clone(),
            other => panic!("cannot print {other:?}"),
        }
    }

    fn indent(n: i64, s: &str) -> String {
        let pad = " ".repeat(n as usize);
        format!("{pad}{}", s.replace('\n', &format!("\n{pad}")))
    }

    impl Engine {
        pub fn render(&self, nodes: &[Node], dot: &Value) -> String {
            let mut out = String::new();
            for node in nodes {
                match node {
                    Node::Text(t) => out.push_str(t),
                    Node::Action(p) => out.push_str(&text(&self.eval(p, dot))),
                    Node::If(branches, otherwise) => {
                        let body = branches
                            .iter()
                            .find(|(c, _)| truthy(&self.eval(c, dot)))
                            .map(|(_, b)| b)
                            .unwrap_or(otherwise);
                        out.push_str(&self.render(body, dot));
                    }
                    Node::With(p, body, otherwise) => {
                        let v = self.eval(p, dot);
                        if truthy(&v) {
                            out.push_str(&self.render(body, &v));
                        } else {
                            out.push_str(&self.render(otherwise, dot));
                        }
                    }
                }
            }
            out
        }

        fn eval(&self, pipeline: &Pipeline, dot: &Value) -> Value {
            let mut piped: Option<Value> = None;
            for cmd in pipeline {
                let (first, rest) = cmd.split_first().expect("empty command");
                let value = match first {
                    Arg::Func(f) => {
                        let mut args: Vec<Value> = rest.iter().map(|a| self.arg(a, dot)).collect();
                        args.extend(piped.take());
                        self.call(f, args)
                    }
                    other => {
                        assert!(rest.is_empty() && piped.is_none(), "bad command {cmd:?}");
                        self.arg(other, dot)
                    }
                };
                piped = Some(value);
            }
            piped.unwrap_or(Value::Null)
        }

        fn arg(&self, arg: &Arg, dot: &Value) -> Value {
            match arg {
                Arg::Field { root, path } => {
                    let start = if *root { &self.root } else { dot };
                    path.iter().fold(start.clone(), |cur, k| {
                        cur.get(k.as_str()).cloned().unwrap_or(Value::Null)
                    })
                }
                Arg::Str(s) => Value::String(s.clone()),
                Arg::Num(n) => Value::Number((*n).into()),
                Arg::Sub(p) => self.eval(p, dot),
                Arg::Func(f) => self.call(f, Vec::new()),
            }
        }

        fn call(&self, f: &str, a: Vec<Value>) -> Value {
            let s = |i: usize| text(&a[i]);
            let n = |i: usize| a[i].as_i64().unwrap();
            match f {
                "include" => {
                    let body = self
                        .defines
                        .get(&s(0))
                        .unwrap_or_else(|| panic!("no define {}", s(0)));
                    Value::String(self.render(body, &a[1]))
                }
                "default" => {
                    if truthy(&a[1]) {
                        a[1].clone()
                    } else {
                        a[0].clone()
                    }
                }
                "quote" => Value::String(format!("{:?}", s(0))),
                "toYaml" => {
                    let y = serde_yaml::to_string(&a[0]).unwrap();
                    Value::String(y.trim_end().to_owned())
                }
                "toToml" => Value::String(toml::to_string(&a[0]).unwrap()),
                "sha256sum" => Value::String(hex::encode(sha2::Sha256::digest(s(0).as_bytes()))),
                "nindent" => Value::String(format!("\n{}", indent(n(0), &s(1)))),
                "indent" => Value::String(indent(n(0), &s(1))),
                "trunc" => Value::String(s(1).chars().take(n(0) as usize).collect()),
                "trimSuffix" => {
                    Value::String(s(1).strip_suffix(&s(0)).map(str::to_owned).unwrap_or(s(1)))
                }
                "eq" => Value::Bool(a[0] == a[1]),
                "ne" => Value::Bool(a[0] != a[1]),
                "not" => Value::Bool(!truthy(&a[0])),
                "and" => a.iter().find(|v| !truthy(v)).or(a.last()).cloned().unwrap(),
                "or" => a.iter().find(|v| truthy(v)).or(a.last()).cloned().unwrap(),
                other => panic!("unsupported template function {other}"),
            }
        }
    }
}

struct Chart {
    dir: PathBuf,
    values: Value,
    meta: Value,
}

impl Chart {
    fn load() -> Chart {
        let dir = repo().join("deploy/helm/signet");
        let values = parse_docs(&read(&dir.join("values.yaml")), "values.yaml").remove(0);
        let meta = parse_docs(&read(&dir.join("Chart.yaml")), "Chart.yaml").remove(0);
        Chart { dir, values, meta }
    }

    /// Renders every template with `values` (chart defaults merged with
    /// `overrides`, one level deep); returns file name → rendered text.
    fn render(&self, overrides: &[(&str, Value)]) -> BTreeMap<String, String> {
        let mut values = self.values.clone();
        for (k, v) in overrides {
            values
                .as_mapping_mut()
                .unwrap()
                .insert(Value::from(*k), v.clone());
        }
        let mut chart = Mapping::new();
        for (k, key) in [
            ("Name", "name"),
            ("Version", "version"),
            ("AppVersion", "appVersion"),
        ] {
            chart.insert(Value::from(k), get(&self.meta, key).clone());
        }
        let mut release = Mapping::new();
        release.insert("Name".into(), "signet".into());
        release.insert("Namespace".into(), "platform".into());
        release.insert("Service".into(), "Helm".into());
        let mut root = Mapping::new();
        root.insert("Values".into(), values);
        root.insert("Chart".into(), Value::Mapping(chart));
        root.insert("Release".into(), Value::Mapping(release));
        let root = Value::Mapping(root);

        let templates = self.dir.join("templates");
        let mut defines = BTreeMap::new();
        let mut parsed = Vec::new();
        for f in files_under(&templates, &["tpl", "yaml", "txt"]) {
            let nodes = tpl::parse(&read(&f), &mut defines);
            parsed.push((f.file_name().unwrap().to_str().unwrap().to_owned(), nodes));
        }
        let engine = tpl::Engine {
            root: root.clone(),
            defines,
        };
        parsed
            .into_iter()
            .filter(|(n, _)| !n.ends_with(".tpl"))
            .map(|(n, nodes)| (n, engine.render(&nodes, &root)))
            .collect()
    }

    fn docs(&self, overrides: &[(&str, Value)]) -> Vec<Value> {
        self.render(overrides)
            .iter()
            .filter(|(n, _)| n.ends_with(".yaml"))
            .flat_map(|(n, text)| parse_docs(text, &format!("rendered {n}")))
            .collect()
    }
}

#[test]
fn chart_metadata_matches_the_crate() {
    let chart = Chart::load();
    assert_eq!(str_at(&chart.meta, "apiVersion"), "v2");
    assert_eq!(str_at(&chart.meta, "name"), "signet");
    assert_eq!(str_at(&chart.meta, "appVersion"), env!("CARGO_PKG_VERSION"));
    assert_eq!(
        u64_at(&chart.values, "ports.proxy"),
        u64::from(port_of(defaults::LISTEN))
    );
    assert_eq!(
        u64_at(&chart.values, "ports.admin"),
        u64::from(port_of(defaults::ADMIN_LISTEN))
    );
}

#[test]
fn chart_values_config_is_a_valid_signet_config() {
    let chart = Chart::load();
    let yaml_text = serde_yaml::to_string(get(&chart.values, "config")).unwrap();
    let settings = Settings::from_str(&yaml_text, signet::config::ConfigFormat::Yaml)
        .unwrap_or_else(|e| panic!("values.yaml config: {e}\n{yaml_text}"));
    assert_eq!(settings.shutdown.drain_timeout, defaults::DRAIN_TIMEOUT);
    assert!(!settings.routes.is_empty());
    // The rendered ConfigMap carries the same settings, integers included.
    let docs = chart.docs(&[]);
    let cm = docs.iter().find(|d| kind(d) == "ConfigMap").unwrap();
    let rendered = Settings::from_str(
        str_at(cm, "data.signet.yaml"),
        signet::config::ConfigFormat::Yaml,
    )
    .unwrap();
    assert_eq!(rendered, settings);
    assert_eq!(
        Some(u64::from(rendered.defaults.policy.retry.max_attempts)),
        get(&chart.values, "config.defaults.retry.max_attempts").as_u64()
    );
}

#[test]
fn chart_gateway_mode_renders_valid_manifests_tied_to_signet() {
    let chart = Chart::load();
    let docs = chart.docs(&[]);
    for k in [
        "Deployment",
        "Service",
        "ConfigMap",
        "PodDisruptionBudget",
        "ServiceAccount",
    ] {
        assert!(
            docs.iter().any(|d| kind(d) == k),
            "chart (gateway) lacks a {k}"
        );
    }
    let deploy = docs.iter().find(|d| kind(d) == "Deployment").unwrap();
    assert_eq!(
        check_deployment(&docs, deploy, "chart gateway"),
        Mode::Gateway
    );
    assert_eq!(
        str_at(deploy, "spec.template.spec.containers.0.image"),
        format!(
            "registry.example.com/platform/signet:{}",
            env!("CARGO_PKG_VERSION")
        )
    );
}

#[test]
fn chart_sidecar_mode_runs_signet_on_loopback_beside_the_app() {
    let chart = Chart::load();
    let docs = chart.docs(&[
        ("mode", Value::from("sidecar")),
        ("terminationGracePeriodSeconds", Value::from(45)),
    ]);
    let deploy = docs.iter().find(|d| kind(d) == "Deployment").unwrap();
    assert_eq!(
        check_deployment(&docs, deploy, "chart sidecar"),
        Mode::Sidecar
    );
    let containers = seq(deploy, "spec.template.spec.containers");
    assert_eq!(containers.len(), 1, "only the application in containers");
    assert_eq!(str_at(&containers[0], "name"), "app");
}

#[test]
fn chart_options_switch_objects_and_annotations() {
    let chart = Chart::load();
    let mut sa = chart.values.get("serviceAccount").unwrap().clone();
    sa["create"] = Value::from(false);
    sa["name"] = Value::from("existing");
    let mut pdb = chart.values.get("podDisruptionBudget").unwrap().clone();
    pdb["enabled"] = Value::from(false);
    let docs = chart.docs(&[("serviceAccount", sa), ("podDisruptionBudget", pdb)]);
    assert!(!docs.iter().any(|d| kind(d) == "ServiceAccount"));
    assert!(!docs.iter().any(|d| kind(d) == "PodDisruptionBudget"));
    let deploy = docs.iter().find(|d| kind(d) == "Deployment").unwrap();
    assert_eq!(
        str_at(deploy, "spec.template.spec.serviceAccountName"),
        "existing"
    );

    let irsa: Value = serde_yaml::from_str(
        "create: true\nname: \"\"\nannotations:\n  eks.amazonaws.com/role-arn: arn:aws:iam::111122223333:role/x\n",
    )
    .unwrap();
    let docs = chart.docs(&[("serviceAccount", irsa)]);
    let sa = docs.iter().find(|d| kind(d) == "ServiceAccount").unwrap();
    assert_eq!(
        str_at(sa, "metadata.annotations.eks.amazonaws.com/role-arn"),
        "arn:aws:iam::111122223333:role/x"
    );
}

#[test]
fn chart_service_monitor_scrapes_the_admin_port_when_enabled() {
    let chart = Chart::load();
    assert!(!chart.docs(&[]).iter().any(|d| kind(d) == "ServiceMonitor"));
    let monitor: Value =
        serde_yaml::from_str("enabled: true\ninterval: 15s\nlabels:\n  release: prom\n").unwrap();
    let docs = chart.docs(&[("serviceMonitor", monitor)]);
    let sm = docs.iter().find(|d| kind(d) == "ServiceMonitor").unwrap();
    assert_eq!(str_at(sm, "metadata.labels.release"), "prom");
    let endpoint = &seq(sm, "spec.endpoints")[0];
    assert_eq!(str_at(endpoint, "path"), METRICS_PATH);
    let svc = docs.iter().find(|d| kind(d) == "Service").unwrap();
    let selected = get(sm, "spec.selector.matchLabels").as_mapping().unwrap();
    assert!(selected
        .iter()
        .all(|(k, v)| get(svc, &format!("metadata.labels.{}", k.as_str().unwrap())) == v));
    let port = seq(svc, "spec.ports")
        .iter()
        .find(|p| get(p, "name") == get(endpoint, "port"))
        .expect("the ServiceMonitor names a Service port");
    assert_eq!(
        u64_at(port, "port"),
        u64::from(port_of(defaults::ADMIN_LISTEN))
    );
    assert_eq!(str_at(port, "targetPort"), "signet-admin");
}

#[test]
fn chart_notes_render() {
    let chart = Chart::load();
    for mode in ["gateway", "sidecar"] {
        let out = chart.render(&[("mode", Value::from(mode))]);
        let notes = out.get("NOTES.txt").expect("NOTES.txt");
        assert!(notes.contains(&format!("({mode} mode)")), "{notes}");
    }
}

// ---------------------------------------------------------------------------
// Dockerfile

/// Dockerfile instructions (continuation lines joined, comments dropped).
fn dockerfile() -> Vec<(String, String)> {
    let text = read(&repo().join("Dockerfile"));
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        if let Some(part) = trimmed.strip_suffix('\\') {
            current.push_str(part);
            current.push(' ');
            continue;
        }
        current.push_str(trimmed);
        let (op, rest) = current.split_once(' ').unwrap_or((current.as_str(), ""));
        out.push((op.to_ascii_uppercase(), rest.trim().to_owned()));
        current.clear();
    }
    out
}

fn json_list(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not an exec-form list: {text}: {e}"))
}

#[test]
fn dockerfile_builds_multi_stage_nonroot_image_that_listens_where_signet_does() {
    let ins = dockerfile();
    let of = |op: &str| {
        ins.iter()
            .filter(|(o, _)| o == op)
            .map(|(_, r)| r.as_str())
            .collect::<Vec<_>>()
    };

    let froms = of("FROM");
    assert!(froms.len() >= 2, "multi-stage: {froms:?}");
    let final_from = froms.last().unwrap();
    assert!(final_from.starts_with("gcr.io/distroless/"), "{final_from}");
    assert!(final_from.ends_with(":nonroot"), "{final_from}");
    // Numeric and non-zero, so Kubernetes' runAsNonRoot can verify it.
    let user = of("USER")
        .last()
        .unwrap()
        .split(':')
        .next()
        .unwrap()
        .parse::<u32>();
    assert_eq!(user, Ok(65532), "distroless nonroot user");

    // The binary copied in is the one the entrypoint and health check run.
    let copy = of("COPY")
        .into_iter()
        .find(|c| c.starts_with("--from="))
        .unwrap();
    let binary = copy.split_whitespace().last().unwrap().to_owned();
    let entrypoint = json_list(of("ENTRYPOINT").last().unwrap());
    assert_eq!(entrypoint, vec![binary.clone()]);
    assert_eq!(json_list(of("CMD").last().unwrap()), vec!["serve"]);
    let healthcheck = of("HEALTHCHECK").last().unwrap().to_string();
    let cmd = healthcheck.split_once("CMD ").unwrap().1;
    assert_eq!(json_list(cmd), vec![binary, "health".to_owned()]);

    // ENV makes signet listen on all interfaces on its default ports, and those
    // are the exposed ports.
    let env: Vec<(String, String)> = of("ENV")
        .iter()
        .flat_map(|e| e.split_whitespace())
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
        .collect();
    let settings = Settings::load_from(&ServeArgs::default(), env.clone()).unwrap();
    assert!(settings.listen.ip().is_unspecified() && settings.admin.listen.ip().is_unspecified());
    assert_eq!(settings.listen.port(), port_of(defaults::LISTEN));
    assert_eq!(
        settings.admin.listen.port(),
        port_of(defaults::ADMIN_LISTEN)
    );
    let mut exposed: Vec<u16> = of("EXPOSE")
        .iter()
        .flat_map(|e| e.split_whitespace())
        .map(|p| p.trim_end_matches("/tcp").parse().unwrap())
        .collect();
    exposed.sort();
    assert_eq!(
        exposed,
        vec![settings.listen.port(), settings.admin.listen.port()]
    );

    // `signet health` in the image probes the admin listener's /healthz.
    let admin_env = env
        .iter()
        .find(|(k, _)| k == signet::admin::health::ADMIN_LISTEN_ENV)
        .map(|(_, v)| v.as_str());
    assert_eq!(
        signet::admin::health::probe_url(None, admin_env).unwrap(),
        format!(
            "http://127.0.0.1:{}{HEALTH_PATH}",
            settings.admin.listen.port()
        )
    );
}

#[test]
fn dockerignore_keeps_build_inputs() {
    let ignore = read(&repo().join(".dockerignore"));
    let patterns: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert!(patterns.contains(&"target/"));
    for needed in ["src", "Cargo.toml", "Cargo.lock", "config", "benches"] {
        assert!(
            !patterns.iter().any(|p| p.trim_end_matches('/') == needed),
            "{needed} is needed to build"
        );
    }
}

// ---------------------------------------------------------------------------
// systemd

/// `[Section]` → key → values (keys may repeat).
fn systemd_unit() -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    let text = read(&repo().join("deploy/systemd/signet.service"));
    let mut out: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    let mut section = String::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s.to_owned();
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("not key=value: {line}"));
        out.entry(section.clone())
            .or_default()
            .entry(k.trim().to_owned())
            .or_default()
            .push(v.trim().to_owned());
    }
    out
}

#[test]
fn systemd_unit_is_hardened_and_reloads_on_sighup() {
    let unit = systemd_unit();
    let service = &unit["Service"];
    let one = |k: &str| -> &str {
        let v = service
            .get(k)
            .unwrap_or_else(|| panic!("[Service] lacks {k}"));
        v.last().unwrap()
    };
    for (k, v) in [
        ("DynamicUser", "yes"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("CapabilityBoundingSet", ""),
        ("Restart", "on-failure"),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        ("KillSignal", "SIGTERM"),
    ] {
        assert_eq!(one(k), v, "{k}");
    }
    let families: Vec<&str> = one("RestrictAddressFamilies").split_whitespace().collect();
    for f in ["AF_INET", "AF_INET6"] {
        assert!(families.contains(&f), "{families:?}");
    }
    assert!(one("ExecStart").ends_with("serve --config /etc/signet/signet.toml"));
    assert!(one("ReadOnlyPaths")
        .split_whitespace()
        .any(|p| p == "/etc/signet"));
    let stop: u64 = one("TimeoutStopSec").trim_end_matches('s').parse().unwrap();
    assert!(
        Duration::from_secs(stop) > defaults::DRAIN_TIMEOUT,
        "systemd must outwait the {:?} drain",
        defaults::DRAIN_TIMEOUT
    );
    assert_eq!(
        unit["Install"]["WantedBy"],
        vec!["multi-user.target".to_owned()]
    );

    // The unit's SIGNET_* environment is accepted by the config loader.
    let env: Vec<(String, String)> = service
        .get("Environment")
        .into_iter()
        .flatten()
        .filter_map(|e| e.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    assert!(!env.is_empty());
    let settings = Settings::load_from(&ServeArgs::default(), env).unwrap();
    assert_eq!(settings.log.format, signet::config::LogFormat::Json);
}
