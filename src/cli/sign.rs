//! `signet sign`: sign one raw HTTP request from stdin and show the work.
//!
//! The tool for the day AWS answers `SignatureDoesNotMatch`: feed it the
//! request your client sent, compare its `canonical_request` with the one AWS
//! returns in the error message, and the first differing line names the bug.

use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use serde::Serialize;

use crate::sigv4::raw_request::{RawRequest, RawRequestError};
use crate::sigv4::{
    Algorithm, AmzDate, Credentials, PayloadHash, SignableRequest, SignatureLocation, Signer,
    SigningError, SigningExplanation, SigningParams, SigningSettings, MAX_PRESIGN_EXPIRES,
};

/// Presigned URL lifetime when `--expires` is not given.
const DEFAULT_EXPIRES_SECS: u64 = 3600;

const MANUAL: &str = "\
Reads one raw HTTP/1.x request on stdin, signs it with AWS Signature Version 4
(or SigV4a with --sigv4a) and prints the signed request (or, with --format
json, every intermediate value). Nothing is sent anywhere.

INPUT
  The request line, header lines and, after the first blank line, the body,
  exactly as a client would send them. LF or CRLF line ends; `Name:value` with
  or without a space after the colon; folded (indented) continuation lines;
  raw UTF-8 or spaces in the request target; a binary body. A Host header is
  required.

  Every header in the input is signed, plus those signing adds (X-Amz-Date,
  X-Amz-Security-Token with temporary credentials, x-amz-content-sha256 for
  S3 or with --sign-body, X-Amz-Region-Set with --sigv4a). An already signed request can be fed back in: its
  Authorization header (and, in header mode, the X-Amz-Date and other
  headers signing sets) or, with --presign, its X-Amz-* query parameters are
  replaced.

PAYLOAD HASH
  --payload-hash VALUE, else UNSIGNED-PAYLOAD with --unsigned-payload, else
  the value of the request's own x-amz-content-sha256 header, else the
  SHA-256 of the body.

OUTPUT
  --format request (default): the signed request, in the input's own line
  ends and `Name:value` style, body unchanged.
  --format json: canonical_request, string_to_sign, signature,
  signed_headers, authorization (header mode) or url (--presign), and
  signed_request (a body that is not UTF-8 is left out, see body_omitted).

CREDENTIALS
  Taken from the environment only, never from the command line:
  AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and, for temporary credentials,
  AWS_SESSION_TOKEN. The secret never appears in the output; the signature
  and the signed request do, so treat them as you would a live request.

SERVICES
  s3, s3express, s3-object-lambda and s3-outposts use the S3 rules: the path
  is encoded once and not normalised, and x-amz-content-sha256 is always sent
  and signed. Every other service gets a normalised (dot segments and
  duplicate slashes removed), twice-encoded path; --no-normalize turns the
  normalisation off.

SIGV4A
  --sigv4a signs with AWS4-ECDSA-P256-SHA256, as S3 Multi-Region Access Points
  and EventBridge global endpoints require. --region is then the region set
  the signature is valid in (`*`, or names separated by commas such as
  us-east-1,us-west-2); it is sent and signed as X-Amz-Region-Set, and the
  credential scope has no region. The ECDSA key is derived from the access key
  pair; the signature is deterministic (RFC 6979), so the same input and time
  give the same output. Chunk signatures are not supported with SigV4a.

DEBUGGING SignatureDoesNotMatch
  1. Capture the exact request your client sent (method, target, headers,
     body) into a file, e.g. request.txt.
  2. Run, with the same credentials and the request's own time:
       signet sign --service SERVICE --region REGION \\
         --time 20150830T123600Z --format json < request.txt
  3. AWS's error body contains `The Canonical String for this request should
     have been ...` and the string to sign it expected. Compare them with
     `canonical_request` and `string_to_sign` in the JSON: the first line that
     differs is the culprit (path encoding, a query parameter, a header a
     proxy rewrote, the payload hash). If both match but the signature does
     not, the secret key, date, region or service differs.

EXAMPLES
  Header signing for DynamoDB, signing the body hash as well:
    signet sign --service dynamodb --region eu-west-1 --sign-body < req.txt
  A presigned S3 GET valid for 10 minutes:
    signet sign --service s3 --region us-east-1 --presign --expires 600 \\
      --unsigned-payload < get.txt

EXIT STATUS
  0 when the request was signed; 2 with a one-line reason on stderr when the
  input, a flag or the credentials are unusable.";

/// Arguments of `signet sign`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = MANUAL)]
pub struct SignArgs {
    /// Signing name of the AWS service (e.g. s3, dynamodb, es, execute-api).
    #[arg(long, value_name = "S")]
    pub service: String,

    /// AWS region to sign for (e.g. us-east-1); with --sigv4a, the region
    /// set (`*` or us-east-1,us-west-2).
    #[arg(long, value_name = "R")]
    pub region: String,

    /// Sign with SigV4a (AWS4-ECDSA-P256-SHA256) for the region set --region.
    #[arg(long)]
    pub sigv4a: bool,

    /// Signing time, as `20150830T123600Z` or `2015-08-30T12:36:00Z` (UTC).
    /// Defaults to now.
    #[arg(long, value_name = "TIME")]
    pub time: Option<String>,

    /// Keep dot segments and duplicate slashes in the path (non-S3 services).
    #[arg(long)]
    pub no_normalize: bool,

    /// Add and sign `x-amz-content-sha256` (always done for S3).
    #[arg(long)]
    pub sign_body: bool,

    /// Sign the payload as `UNSIGNED-PAYLOAD` instead of hashing the body.
    #[arg(long)]
    pub unsigned_payload: bool,

    /// Use VALUE as the payload hash instead of hashing the body (a SHA-256 hex
    /// digest, or e.g. `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`).
    #[arg(long, value_name = "VALUE")]
    pub payload_hash: Option<String>,

    /// Sign in the query string (a presigned URL) instead of the
    /// Authorization header.
    #[arg(long)]
    pub presign: bool,

    /// Validity of a presigned URL in seconds (1 to 604800; with --presign).
    /// Defaults to 3600.
    #[arg(long, value_name = "SECS")]
    pub expires: Option<u64>,

    /// Output: the signed request, or a JSON object with the canonical
    /// request, string to sign, signature and signed request.
    #[arg(long, value_enum, default_value_t = OutputFormat::Request)]
    pub format: OutputFormat,
}

/// What `signet sign` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// The signed request, ready to send.
    Request,
    /// A JSON object with every intermediate value.
    Json,
}

/// Why `signet sign` could not sign. Messages are one line and never
/// contain a secret.
#[derive(Debug, thiserror::Error)]
enum SignError {
    #[error("bad --time {0:?}: expected 20150830T123600Z or 2015-08-30T12:36:00Z (UTC)")]
    BadTime(String),
    #[error("no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment")]
    NoCredentials,
    #[error("--unsigned-payload and --payload-hash cannot be used together")]
    PayloadConflict,
    #[error("--expires needs --presign")]
    ExpiresWithoutPresign,
    #[error("--expires must be between 1 and {max} seconds, got {0}", max = MAX_PRESIGN_EXPIRES.as_secs())]
    ExpiresOutOfRange(u64),
    #[error("cannot read the request from stdin: {0}")]
    Stdin(std::io::Error),
    #[error("bad request on stdin: {0}")]
    Request(#[from] RawRequestError),
    #[error("request has no Host header: add a `Host: <endpoint>` line")]
    NoHost,
    #[error("cannot sign: {0}")]
    Signing(#[from] SigningError),
    #[error("cannot write the output: {0}")]
    Stdout(std::io::Error),
    #[error("--region with --sigv4a: {0}")]
    RegionSet(String),
}

/// Runs `signet sign`: reads one raw request on stdin, writes the signed request or JSON on stdout. Returns exit code 0, or 2 with a one-line reason on stderr.
pub fn run(
    args: &SignArgs,
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
    env: &dyn Fn(&str) -> Option<String>,
) -> ExitCode {
    match sign_to(args, stdin, stdout, env) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // Nothing useful is left to do if stderr itself is gone.
            let _ = writeln!(stderr, "signet sign: {}", one_line(&err.to_string()));
            ExitCode::from(2)
        }
    }
}

/// Keeps a message on one line whatever an underlying error put in it.
fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Credentials from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and the
/// optional `AWS_SESSION_TOKEN`; empty values count as unset.
fn credentials_from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<Credentials, SignError> {
    let var = |name: &str| env(name).filter(|v| !v.is_empty());
    match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
        (Some(access_key_id), Some(secret_access_key)) => Ok(Credentials {
            access_key_id,
            secret_access_key,
            session_token: var("AWS_SESSION_TOKEN"),
        }),
        _ => Err(SignError::NoCredentials),
    }
}

/// The signing time: `--time`, or now.
fn signing_time(args: &SignArgs) -> Result<AmzDate, SignError> {
    match &args.time {
        Some(text) => AmzDate::parse(text).map_err(|_| SignError::BadTime(text.clone())),
        None => Ok(AmzDate::now()?),
    }
}

/// Where the signature goes, from `--presign` / `--expires`.
fn signature_location(args: &SignArgs) -> Result<SignatureLocation, SignError> {
    match (args.presign, args.expires) {
        (false, None) => Ok(SignatureLocation::Headers),
        (false, Some(_)) => Err(SignError::ExpiresWithoutPresign),
        (true, expires) => {
            let secs = expires.unwrap_or(DEFAULT_EXPIRES_SECS);
            if secs == 0 || secs > MAX_PRESIGN_EXPIRES.as_secs() {
                return Err(SignError::ExpiresOutOfRange(secs));
            }
            Ok(SignatureLocation::Query {
                expires: Duration::from_secs(secs),
            })
        }
    }
}

/// The payload hash: `--payload-hash`, `--unsigned-payload`, the request's
/// own `x-amz-content-sha256`, or the SHA-256 of the body, in that order.
fn payload_hash<'a>(args: &'a SignArgs, request: &'a RawRequest) -> PayloadHash<'a> {
    let declared = args.payload_hash.as_deref().or_else(|| {
        request
            .header("x-amz-content-sha256")
            .and_then(|v| std::str::from_utf8(v).ok())
    });
    if args.unsigned_payload {
        PayloadHash::Unsigned
    } else if let Some(value) = declared {
        if value.len() == 64 && value.bytes().all(|c| c.is_ascii_hexdigit()) {
            PayloadHash::Precomputed(value)
        } else {
            PayloadHash::from_value(value)
        }
    } else {
        PayloadHash::Bytes(&request.body)
    }
}

/// Presign parameters a re-signed URL must not carry twice.
const PRESIGN_PARAMS: [&str; 8] = [
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Security-Token",
    "X-Amz-Region-Set",
    "X-Amz-Signature",
];

/// `query` without earlier presign parameters (re-signing a presigned URL).
fn query_without_presign_params(query: &str) -> String {
    query
        .split('&')
        .filter(|pair| {
            let key = pair.split_once('=').map_or(*pair, |(k, _)| k);
            !PRESIGN_PARAMS.contains(&key)
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// The JSON object of `--format json`.
#[derive(Serialize)]
struct JsonOutput<'a> {
    canonical_request: &'a str,
    string_to_sign: &'a str,
    signature: &'a str,
    signed_headers: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    authorization: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    /// The signed request as text; a body that is not UTF-8 is left out
    /// (see `body_omitted`).
    signed_request: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    body_omitted: Option<String>,
}

fn sign_to(
    args: &SignArgs,
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), SignError> {
    // Flags first: a bad flag is reported before anything is read.
    let time = signing_time(args)?;
    let location = signature_location(args)?;
    if args.sigv4a {
        crate::routing::endpoint::check_region_set(&args.region).map_err(SignError::RegionSet)?;
    }
    if args.unsigned_payload && args.payload_hash.is_some() {
        return Err(SignError::PayloadConflict);
    }
    let credentials = credentials_from_env(env)?;

    let mut input = Vec::new();
    stdin.read_to_end(&mut input).map_err(SignError::Stdin)?;
    let request = RawRequest::parse(&input)?;
    if request.header("host").is_none() {
        return Err(SignError::NoHost);
    }

    let mut settings = SigningSettings::for_service(&args.service);
    settings.location = location;
    if args.sigv4a {
        settings.algorithm = Algorithm::V4a;
    }
    if args.no_normalize {
        settings.normalize_path = false;
    }
    if args.sign_body {
        settings.content_sha256_header = true;
    }
    let header_mode = location == SignatureLocation::Headers;
    // Headers the signature replaces are left out of it and of the printed
    // request, as the signer itself does.
    let token_sent = credentials.session_token.is_some()
        && settings.session_token != crate::sigv4::SessionTokenMode::Omitted;
    let kept: Vec<&crate::sigv4::raw_request::RawHeader> = request
        .headers
        .iter()
        .filter(|h| !settings.replaces_header(&h.name, token_sent))
        .collect();
    let headers: Vec<(&str, &[u8])> = kept
        .iter()
        .map(|h| (h.name.as_str(), h.value.as_slice()))
        .collect();
    let query = if header_mode {
        request.query().to_owned()
    } else {
        query_without_presign_params(request.query())
    };
    let signable = SignableRequest {
        method: &request.method,
        path: request.path(),
        query: &query,
        headers: &headers,
        payload: payload_hash(args, &request),
    };
    let params = SigningParams {
        credentials: &credentials,
        region: &args.region,
        service: &args.service,
        time,
        settings: &settings,
    };
    let explanation = Signer::new().explain(&signable, &params)?;

    let layout = Layout::of(&input, &request);
    let target = signed_target(&request, &explanation);
    let head = signed_head(&request, &kept, &target, &explanation, &layout);
    match args.format {
        OutputFormat::Request => {
            let mut out = head.into_bytes();
            out.extend_from_slice(&request.body);
            stdout.write_all(&out).map_err(SignError::Stdout)?;
        }
        OutputFormat::Json => {
            let (signed_request, body_omitted) = match std::str::from_utf8(&request.body) {
                Ok(body) => (head + body, None),
                Err(_) => (
                    head,
                    Some(format!("{} bytes, not UTF-8", request.body.len())),
                ),
            };
            let url = (!header_mode).then(|| {
                let host = request
                    .header("host")
                    .map(|h| String::from_utf8_lossy(h).into_owned())
                    .unwrap_or_default();
                url_of(&host, &target)
            });
            let json = JsonOutput {
                canonical_request: &explanation.canonical_request,
                string_to_sign: &explanation.string_to_sign,
                signature: &explanation.signature,
                signed_headers: &explanation.signed_headers,
                authorization: explanation.authorization.as_deref(),
                url,
                signed_request,
                body_omitted,
            };
            let mut text = serde_json::to_string_pretty(&json)
                .map_err(|e| SignError::Stdout(std::io::Error::other(e)))?;
            text.push('\n');
            stdout
                .write_all(text.as_bytes())
                .map_err(SignError::Stdout)?;
        }
    }
    stdout.flush().map_err(SignError::Stdout)
}

/// How the input was written, so the output reads the same way.
struct Layout {
    /// `\r\n` when the request line ended with CRLF, else `\n`.
    eol: &'static str,
    /// `": "` when the first header had a space after its colon, else `":"`.
    colon: &'static str,
}

impl Layout {
    fn of(input: &[u8], request: &RawRequest) -> Self {
        let first_line_end = input.iter().position(|&b| b == b'\n');
        let crlf = first_line_end.is_some_and(|i| i > 0 && input[i - 1] == b'\r');
        let spaced = request.headers.first().is_some_and(|h| {
            h.raw
                .iter()
                .position(|&b| b == b':')
                .is_some_and(|i| h.raw.get(i + 1) == Some(&b' '))
        });
        Self {
            eol: if crlf { "\r\n" } else { "\n" },
            colon: if spaced { ": " } else { ":" },
        }
    }
}

/// The request target to send: unchanged in header mode; in presign mode
/// the path with the presigned query.
fn signed_target(request: &RawRequest, explanation: &SigningExplanation) -> String {
    let Some(presigned_query) = &explanation.query else {
        return request.target.clone();
    };
    // Keep an absolute-form prefix (`https://host`) if the input had one.
    let path = request.path();
    let original_suffix_len = path.len()
        + if request.target.contains('?') {
            1 + request.query().len()
        } else {
            0
        };
    let prefix = request
        .target
        .len()
        .checked_sub(original_suffix_len)
        .and_then(|end| request.target.get(..end))
        .unwrap_or("");
    format!("{prefix}{path}?{presigned_query}")
}

/// Display names of the headers signing adds.
fn display_name(lower: &str) -> &str {
    match lower {
        "x-amz-date" => "X-Amz-Date",
        "x-amz-security-token" => "X-Amz-Security-Token",
        "x-amz-region-set" => "X-Amz-Region-Set",
        "authorization" => "Authorization",
        other => other,
    }
}

/// The signed request's head (through the blank line): the request line,
/// the input's headers as written, then the headers signing adds.
fn signed_head(
    request: &RawRequest,
    kept: &[&crate::sigv4::raw_request::RawHeader],
    target: &str,
    explanation: &SigningExplanation,
    layout: &Layout,
) -> String {
    let mut head = String::new();
    head.push_str(&request.method);
    head.push(' ');
    head.push_str(target);
    if !request.version.is_empty() {
        head.push(' ');
        head.push_str(&request.version);
    }
    head.push_str(layout.eol);
    for header in kept {
        let raw = String::from_utf8_lossy(&header.raw);
        head.push_str(&raw.replace('\n', layout.eol));
        head.push_str(layout.eol);
    }
    // The token first, then the date: the order of the AWS test suite.
    let mut added: Vec<&(String, String)> = explanation.added_headers.iter().collect();
    added.sort_by_key(|(name, _)| match name.as_str() {
        "x-amz-security-token" => 0,
        "x-amz-date" => 1,
        "x-amz-region-set" => 2,
        "x-amz-content-sha256" => 3,
        _ => 4,
    });
    for (name, value) in added {
        head.push_str(display_name(name));
        head.push_str(layout.colon);
        head.push_str(value);
        head.push_str(layout.eol);
    }
    head.push_str(layout.eol);
    head
}

/// `https://host/target` with bytes a URL cannot carry (space, controls,
/// non-ASCII) percent-encoded.
fn url_of(host: &str, target: &str) -> String {
    let mut url = String::from("https://");
    let origin_form = target.starts_with('/') || target.starts_with('?');
    if origin_form {
        url.push_str(host);
    }
    let target = if origin_form {
        target
    } else {
        // Absolute form: drop the scheme the input used.
        target.split_once("://").map_or(target, |(_, rest)| rest)
    };
    for &b in target.as_bytes() {
        if b <= b' ' || b >= 0x7f || b == b'"' || b == b'<' || b == b'>' {
            url.push_str(&format!("%{b:02X}"));
        } else {
            url.push(b as char);
        }
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        sign: SignArgs,
    }

    fn args(list: &[&str]) -> SignArgs {
        Cli::try_parse_from(std::iter::once("sign").chain(list.iter().copied()))
            .unwrap()
            .sign
    }

    fn env_with_token(token: Option<&'static str>) -> impl Fn(&str) -> Option<String> {
        move |name| match name {
            "AWS_ACCESS_KEY_ID" => Some("AKIDEXAMPLE".into()),
            "AWS_SECRET_ACCESS_KEY" => Some(SECRET.into()),
            "AWS_SESSION_TOKEN" => token.map(str::to_string),
            _ => None,
        }
    }

    fn run_in_process(
        list: &[&str],
        input: &[u8],
        env: &dyn Fn(&str) -> Option<String>,
    ) -> (String, Vec<u8>, String) {
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let code = run(&args(list), &mut &input[..], &mut stdout, &mut stderr, env);
        (
            format!("{code:?}"),
            stdout,
            String::from_utf8(stderr).unwrap(),
        )
    }

    const SUITE: [&str; 6] = [
        "--service",
        "service",
        "--region",
        "us-east-1",
        "--time",
        "20150830T123600Z",
    ];

    #[test]
    fn signs_the_vanilla_suite_request_in_process() {
        let (code, stdout, stderr) = run_in_process(
            &SUITE,
            b"GET / HTTP/1.1\nHost:example.amazonaws.com\n",
            &env_with_token(None),
        );
        assert_eq!(code, format!("{:?}", ExitCode::SUCCESS), "{stderr}");
        assert_eq!(
            String::from_utf8(stdout).unwrap(),
            "GET / HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z\n\
             Authorization:AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31\n\n"
        );
    }

    #[test]
    fn session_token_from_env_is_sent_before_the_date() {
        let (_, stdout, _) = run_in_process(
            &SUITE,
            b"GET / HTTP/1.1\nHost:example.amazonaws.com\n",
            &env_with_token(Some("tok")),
        );
        let text = String::from_utf8(stdout).unwrap();
        let token = text.find("X-Amz-Security-Token:tok\n").unwrap();
        let date = text.find("X-Amz-Date:").unwrap();
        assert!(token < date, "{text}");
        assert!(text.contains("SignedHeaders=host;x-amz-date;x-amz-security-token,"));
    }

    #[test]
    fn errors_are_one_line_exit_2_and_never_show_the_secret() {
        let (code, stdout, stderr) =
            run_in_process(&SUITE, b"GET / HTTP/1.1\n\n", &env_with_token(Some("tok")));
        assert_eq!(code, format!("{:?}", ExitCode::from(2)));
        assert!(stdout.is_empty());
        assert_eq!(
            stderr,
            "signet sign: request has no Host header: add a `Host: <endpoint>` line\n"
        );
        assert!(!stderr.contains(SECRET));
    }

    #[test]
    fn empty_credential_variables_count_as_unset() {
        let env = |name: &str| match name {
            "AWS_ACCESS_KEY_ID" => Some("AKID".to_string()),
            "AWS_SECRET_ACCESS_KEY" => Some(String::new()),
            _ => None,
        };
        assert!(matches!(
            credentials_from_env(&env),
            Err(SignError::NoCredentials)
        ));
        let creds = credentials_from_env(&|name: &str| match name {
            "AWS_SESSION_TOKEN" => Some(String::new()),
            _ => Some("x".to_string()),
        })
        .unwrap();
        assert_eq!(creds.session_token, None);
    }

    #[test]
    fn removes_only_presign_parameters_from_the_query() {
        assert_eq!(
            query_without_presign_params(
                "a=1&X-Amz-Signature=abc&X-Amz-Date=x&x-amz-date=kept&b&X-Amz-Expires"
            ),
            "a=1&x-amz-date=kept&b"
        );
        assert_eq!(query_without_presign_params(""), "");
    }

    #[test]
    fn url_escapes_what_a_url_cannot_carry() {
        assert_eq!(
            url_of("h.example", "/a b/ሴ?x=\"1\""),
            "https://h.example/a%20b/%E1%88%B4?x=%221%22"
        );
        assert_eq!(
            url_of("ignored", "http://h.example:8080/p?q"),
            "https://h.example:8080/p?q"
        );
    }

    #[test]
    fn presign_keeps_an_absolute_form_target() {
        let (_, stdout, stderr) = run_in_process(
            &[&SUITE[..], &["--presign"]].concat(),
            b"GET http://example.amazonaws.com/p?a=1 HTTP/1.1\nHost:example.amazonaws.com\n",
            &env_with_token(None),
        );
        let text = String::from_utf8(stdout).unwrap();
        assert!(
            text.starts_with("GET http://example.amazonaws.com/p?a=1&X-Amz-Algorithm="),
            "{text}{stderr}"
        );
    }

    #[test]
    fn flags_are_checked_before_stdin_is_read() {
        struct Unreadable;
        impl Read for Unreadable {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                panic!("stdin read before the flags were checked")
            }
        }
        let mut stderr = Vec::new();
        let code = run(
            &args(&[&SUITE[..], &["--expires", "5"]].concat()),
            &mut Unreadable,
            &mut Vec::new(),
            &mut stderr,
            &env_with_token(None),
        );
        assert_eq!(format!("{code:?}"), format!("{:?}", ExitCode::from(2)));
        assert_eq!(
            String::from_utf8(stderr).unwrap(),
            "signet sign: --expires needs --presign\n"
        );
    }
}
