//! `signet sign`, run as the real binary, against the official SigV4 test
//! suite in `../shared/sigv4-test-suite` (relative to the repository root),
//! the S3 documentation examples, and each bad-input message.
//!
//! Special case: `v4/post-sts-header-after` (`omit_session_token: true`)
//! expects the session token to be added *after* signing. `signet sign`
//! signs whatever token it is given, so that case runs without
//! `AWS_SESSION_TOKEN`, and the token line (header mode) or parameter
//! (query mode) the suite added after signing is removed from the expected
//! signed request before comparing. Its canonical request, string to sign
//! and signature are compared unchanged.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const ACCESS_KEY_ID: &str = "AKIDEXAMPLE";
const SECRET_ACCESS_KEY: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

fn suite_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/sigv4-test-suite");
    assert!(
        dir.join("v4").is_dir(),
        "the SigV4 test suite is missing: expected it at {} (a checkout of the shared \
         sigv4-test-suite next to the repository)",
        dir.display()
    );
    dir
}

/// Runs `signet sign ARGS` with `stdin` and only the given AWS variables.
fn signet_sign(args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_signet"));
    cmd.arg("sign").args(args);
    for var in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_REGION",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn signet");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn suite_env(token: Option<&str>) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID.to_string()),
        ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY.to_string()),
    ];
    if let Some(token) = token {
        env.push(("AWS_SESSION_TOKEN", token.to_string()));
    }
    env
}

fn borrow_env<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'a str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

fn json_of(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// One `v4/<case>` directory.
struct SuiteCase {
    name: String,
    dir: PathBuf,
    context: serde_json::Value,
}

impl SuiteCase {
    fn file(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.dir.join(name))
            .unwrap_or_else(|e| panic!("{}: cannot read {name}: {e}", self.name))
    }

    fn text(&self, name: &str) -> String {
        String::from_utf8(self.file(name)).unwrap()
    }

    fn flag(&self, key: &str) -> bool {
        self.context[key].as_bool().unwrap_or(false)
    }

    fn token(&self) -> Option<&str> {
        self.context["credentials"]["token"].as_str()
    }

    /// The token is signed unless the suite adds it after signing.
    fn signed_token(&self) -> Option<&str> {
        self.token().filter(|_| !self.flag("omit_session_token"))
    }

    fn args(&self, presign: bool) -> Vec<String> {
        let c = &self.context;
        assert_eq!(
            c["credentials"]["access_key_id"], ACCESS_KEY_ID,
            "{}: unexpected access key",
            self.name
        );
        assert_eq!(c["credentials"]["secret_access_key"], SECRET_ACCESS_KEY);
        let mut args = vec![
            "--service".to_string(),
            c["service"].as_str().unwrap().to_string(),
            "--region".to_string(),
            c["region"].as_str().unwrap().to_string(),
            "--time".to_string(),
            c["timestamp"].as_str().unwrap().to_string(),
        ];
        if !c["normalize"].as_bool().unwrap() {
            args.push("--no-normalize".into());
        }
        if self.flag("sign_body") {
            args.push("--sign-body".into());
        }
        if presign {
            args.push("--presign".into());
            args.push("--expires".into());
            args.push(c["expiration_in_seconds"].as_u64().unwrap().to_string());
        }
        args
    }

    /// The expected signed request, without what the suite added after
    /// signing (see the top of this file).
    fn expected_signed_request(&self, presign: bool) -> Vec<u8> {
        let prefix = if presign { "query" } else { "header" };
        let expected = self.file(&format!("{prefix}-signed-request.txt"));
        match self.token().filter(|_| self.flag("omit_session_token")) {
            None => expected,
            Some(token) => {
                let text = String::from_utf8(expected).unwrap();
                let stripped = if presign {
                    let encoded = token
                        .replace('/', "%2F")
                        .replace('+', "%2B")
                        .replace('=', "%3D");
                    text.replace(&format!("&X-Amz-Security-Token={encoded}"), "")
                } else {
                    text.replace(&format!("X-Amz-Security-Token:{token}\n"), "")
                };
                assert_ne!(stripped, text, "{}: token not found to strip", self.name);
                stripped.into_bytes()
            }
        }
    }
}

fn v4_cases() -> Vec<SuiteCase> {
    let root = suite_dir().join("v4");
    let mut cases: Vec<SuiteCase> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("context.json").is_file())
        .map(|dir| SuiteCase {
            name: dir.file_name().unwrap().to_string_lossy().into_owned(),
            context: serde_json::from_slice(&std::fs::read(dir.join("context.json")).unwrap())
                .unwrap(),
            dir,
        })
        .collect();
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    assert!(!cases.is_empty(), "no cases found in {}", root.display());
    cases
}

/// Runs every v4 case in one mode; returns the case count and, per failed
/// case, what differed.
fn check_v4_cases(presign: bool) -> (usize, Vec<String>) {
    let mut failed_cases = Vec::new();
    let cases = v4_cases();
    let mut failures = Vec::new();
    for case in &cases {
        let before = failures.len();
        check_v4_case(case, presign, &mut failures);
        if failures.len() > before {
            failed_cases.push(failures[before..].join("\n"));
        }
    }
    (cases.len(), failed_cases)
}

/// Checks one case in one mode, pushing what differs to `failures`.
fn check_v4_case(case: &SuiteCase, presign: bool, failures: &mut Vec<String>) {
    let prefix = if presign { "query" } else { "header" };
    {
        let env = suite_env(case.signed_token());
        let env = borrow_env(&env);
        let mut args = case.args(presign);
        let request = case.file("request.txt");

        // --format request: the signed request, byte for byte.
        let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = signet_sign(&arg_refs, &request, &env);
        if !out.status.success() {
            failures.push(format!(
                "{}: exit {:?}: {}",
                case.name,
                out.status.code(),
                String::from_utf8_lossy(&out.stderr)
            ));
            return;
        }
        let expected = case.expected_signed_request(presign);
        if out.stdout != expected {
            failures.push(format!(
                "{}: signed request differs\n--- expected\n{}\n--- got\n{}",
                case.name,
                String::from_utf8_lossy(&expected),
                String::from_utf8_lossy(&out.stdout)
            ));
        }

        // --format json: every intermediate value.
        args.push("--format".into());
        args.push("json".into());
        let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let json = json_of(&signet_sign(&arg_refs, &request, &env));
        for (field, file) in [
            ("canonical_request", "canonical-request.txt"),
            ("string_to_sign", "string-to-sign.txt"),
            ("signature", "signature.txt"),
        ] {
            let want = case.text(&format!("{prefix}-{file}"));
            if json[field] != want.as_str() {
                failures.push(format!(
                    "{}: {field} differs\n--- expected\n{want}\n--- got\n{}",
                    case.name,
                    json[field].as_str().unwrap_or("<missing>")
                ));
            }
        }
        let want_request = String::from_utf8(expected).unwrap();
        if json["signed_request"] != want_request.as_str() {
            failures.push(format!("{}: json signed_request differs", case.name));
        }
        let signature = case.text(&format!("{prefix}-signature.txt"));
        if presign {
            let url = json["url"].as_str().unwrap_or_default();
            if !url.starts_with("https://example.amazonaws.com/")
                || !url.ends_with(&format!("&X-Amz-Signature={signature}"))
            {
                failures.push(format!("{}: bad url {url}", case.name));
            }
            if json.get("authorization").is_some() {
                failures.push(format!("{}: authorization in presign mode", case.name));
            }
        } else {
            let auth = json["authorization"].as_str().unwrap_or_default();
            let signed_headers = json["signed_headers"].as_str().unwrap_or_default();
            let want = format!(
                "AWS4-HMAC-SHA256 Credential={ACCESS_KEY_ID}/20150830/us-east-1/service/aws4_request, \
                 SignedHeaders={signed_headers}, Signature={signature}"
            );
            if auth != want {
                failures.push(format!(
                    "{}: authorization {auth:?}, want {want:?}",
                    case.name
                ));
            }
        }
    }
}

#[test]
fn signs_every_v4_suite_case_in_header_mode() {
    let (count, failures) = check_v4_cases(false);
    assert!(count > 0);
    assert!(
        failures.is_empty(),
        "{} of {count} cases failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn presigns_every_v4_suite_case_in_query_mode() {
    let (count, failures) = check_v4_cases(true);
    assert!(count > 0);
    assert!(
        failures.is_empty(),
        "{} of {count} cases failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
