//! S3 Express One Zone session authentication end to end through the real
//! `signet` binary, against a stand-in zonal endpoint that checks every
//! signature with the `aws-sigv4` crate:
//! - it answers CreateSession (`GET /?session`) only when signed with the IAM
//!   credentials for the service `s3express`, issuing session credentials
//!   that expire soon;
//! - it accepts data requests only when signed with a session's secret for
//!   `s3express`, carrying that session's token in `x-amz-s3session-token`
//!   and no `x-amz-security-token`;
//! - it accepts CopyObject, UploadPartCopy and HeadBucket only when signed
//!   with the IAM credentials;
//! - it keeps time by a clock of its own (which a test sets minutes off), and
//!   sends its `Date` with CreateSession's answer.

mod common;
mod standins;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use common::*;
use http::{Request, Response, StatusCode};

/// The directory bucket's zonal endpoint signet signs for.
const ZONAL: &str = "photos--usw2-az1--x-s3.s3express-usw2-az1.us-west-2.amazonaws.com";

/// A session the stand-in issued.
#[derive(Clone, Debug)]
struct Issued {
    access_key_id: String,
    secret: String,
    token: String,
    /// By the stand-in's clock.
    expires_at: SystemTime,
    /// The `x-amz-create-session-mode` CreateSession asked for, if any.
    mode: Option<String>,
}

/// How the stand-in classified a request it accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    CreateSession,
    /// Signed with the session of this access key id.
    Session(String),
    /// Signed with the IAM credentials.
    Iam,
}

#[derive(Clone, Debug)]
struct Call {
    kind: Kind,
    method: String,
    path: String,
    headers: http::HeaderMap,
}

/// The stand-in zonal endpoint's state.
struct Zonal {
    keys: Keyring,
    /// How long the sessions it issues last.
    lifetime: Mutex<Duration>,
    /// Answer CreateSession with 403 AccessDenied.
    refuse_sessions: AtomicBool,
    /// How far the stand-in's clock is behind the real one.
    behind: Mutex<Duration>,
    /// The access key id of a session it answers 403 ExpiredToken to.
    rejected_session: Mutex<Option<String>>,
    issued: Mutex<Vec<Issued>>,
    objects: Mutex<HashMap<String, Bytes>>,
    calls: Mutex<Vec<Call>>,
    /// Requests whose signature verified but that the endpoint refused.
    refused: Mutex<Vec<String>>,
}

impl Zonal {
    fn new(lifetime: Duration) -> Arc<Zonal> {
        Arc::new(Zonal {
            keys: Keyring::with_test_key(),
            lifetime: Mutex::new(lifetime),
            refuse_sessions: AtomicBool::new(false),
            behind: Mutex::new(Duration::ZERO),
            rejected_session: Mutex::new(None),
            issued: Mutex::new(Vec::new()),
            objects: Mutex::new(HashMap::new()),
            calls: Mutex::new(Vec::new()),
            refused: Mutex::new(Vec::new()),
        })
    }

    /// The time by the stand-in's clock.
    fn now(&self) -> SystemTime {
        SystemTime::now() - *self.behind.lock().unwrap()
    }

    fn issued(&self) -> Vec<Issued> {
        self.issued.lock().unwrap().clone()
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    fn creates(&self) -> usize {
        self.calls()
            .iter()
            .filter(|c| c.kind == Kind::CreateSession)
            .count()
    }

    fn assert_nothing_refused(&self) {
        let refused = self.refused.lock().unwrap();
        assert!(
            refused.is_empty(),
            "the zonal endpoint refused: {refused:#?}"
        );
    }

    fn refuse(&self, seen: &Seen, why: &str) -> Response<UpBody> {
        self.refused
            .lock()
            .unwrap()
            .push(format!("{} {}: {why}", seen.method, seen.path_and_query));
        error(StatusCode::FORBIDDEN, "AccessDenied", why)
    }

    fn record(&self, kind: Kind, seen: &Seen) {
        self.calls.lock().unwrap().push(Call {
            kind,
            method: seen.method.clone(),
            path: seen.path_and_query.clone(),
            headers: seen.headers.clone(),
        });
    }

    /// Answers a request whose signature verified.
    fn answer(&self, seen: &Seen) -> Response<UpBody> {
        if seen.service != "s3express" || seen.region != "us-west-2" {
            return self.refuse(seen, "not signed for s3express in us-west-2");
        }
        if seen.headers.get("host").and_then(|h| h.to_str().ok()) != Some(ZONAL) {
            return self.refuse(seen, "not signed for the bucket's host");
        }
        let path = seen.path_and_query.as_str();
        let copy = seen.method == "PUT" && seen.headers.contains_key("x-amz-copy-source");
        let head_bucket = seen.method == "HEAD" && path == "/";
        if seen.method == "GET" && path == "/?session" {
            self.create_session(seen)
        } else if copy || head_bucket {
            self.iam_operation(seen, copy)
        } else {
            self.data(seen)
        }
    }

    fn create_session(&self, seen: &Seen) -> Response<UpBody> {
        if seen.access_key_id != AKID {
            return self.refuse(seen, "CreateSession not signed with the IAM credentials");
        }
        if seen.headers.contains_key("x-amz-s3session-token") {
            return self.refuse(seen, "CreateSession carries a session token");
        }
        self.record(Kind::CreateSession, seen);
        if self.refuse_sessions.load(Ordering::SeqCst) {
            return error(
                StatusCode::FORBIDDEN,
                "AccessDenied",
                "s3express:CreateSession is not allowed",
            );
        }
        let mut issued = self.issued.lock().unwrap();
        let n = issued.len() + 1;
        let now = self.now();
        let session = Issued {
            access_key_id: format!("ASIAZONALSESSION{n:04}"),
            // Characters XML escapes, to be decoded on the way.
            secret: format!("zonal/Session+Secret&{n:04}<key>"),
            token: format!("zonal-session-token-{n:04}&AQoDYXdzEJr\"1\""),
            expires_at: now + *self.lifetime.lock().unwrap(),
            mode: seen
                .headers
                .get("x-amz-create-session-mode")
                .map(|v| v.to_str().unwrap().to_owned()),
        };
        self.keys.add(&session.access_key_id, &session.secret, None);
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <CreateSessionResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
             <Credentials>\
             <SessionToken>{}</SessionToken>\
             <SecretAccessKey>{}</SecretAccessKey>\
             <AccessKeyId>{}</AccessKeyId>\
             <Expiration>{}</Expiration>\
             </Credentials></CreateSessionResult>",
            xml_escape(&session.token),
            xml_escape(&session.secret),
            session.access_key_id,
            standins::rfc3339(session.expires_at)
        );
        issued.push(session);
        Response::builder()
            .header("content-type", "application/xml")
            .header("date", httpdate::fmt_http_date(now))
            .body(full(body))
            .unwrap()
    }

    fn iam_operation(&self, seen: &Seen, copy: bool) -> Response<UpBody> {
        if seen.access_key_id != AKID {
            return self.refuse(seen, "CopyObject and HeadBucket take the IAM credentials");
        }
        if seen.headers.contains_key("x-amz-s3session-token") {
            return self.refuse(seen, "an IAM-signed request carries a session token");
        }
        self.record(Kind::Iam, seen);
        if !copy {
            return Response::builder()
                .header("x-amz-bucket-region", "us-west-2")
                .body(full(Bytes::new()))
                .unwrap();
        }
        let source = seen.headers["x-amz-copy-source"].to_str().unwrap();
        let key = source.split_once('/').map_or(source, |(_, k)| k);
        let data = self
            .objects
            .lock()
            .unwrap()
            .get(&format!("/{key}"))
            .cloned();
        let Some(data) = data else {
            return error(StatusCode::NOT_FOUND, "NoSuchKey", "no such source");
        };
        let target = seen.path_and_query.split('?').next().unwrap().to_string();
        self.objects.lock().unwrap().insert(target, data);
        Response::builder()
            .body(full(
                "<CopyObjectResult><ETag>\"e\"</ETag></CopyObjectResult>",
            ))
            .unwrap()
    }

    fn data(&self, seen: &Seen) -> Response<UpBody> {
        let session = self
            .issued()
            .into_iter()
            .find(|s| s.access_key_id == seen.access_key_id);
        let Some(session) = session else {
            return self.refuse(seen, "a data request not signed with a session key");
        };
        let tokens: Vec<&[u8]> = seen
            .headers
            .get_all("x-amz-s3session-token")
            .iter()
            .map(|v| v.as_bytes())
            .collect();
        if tokens != [session.token.as_bytes()] {
            return self.refuse(seen, "x-amz-s3session-token is not the session's token");
        }
        if seen.headers.contains_key("x-amz-security-token") {
            return self.refuse(
                seen,
                "a session-signed request carries x-amz-security-token",
            );
        }
        if self.now() >= session.expires_at {
            return self.refuse(seen, "the session has expired");
        }
        if self.rejected_session.lock().unwrap().as_deref() == Some(&session.access_key_id) {
            return error(
                StatusCode::FORBIDDEN,
                "ExpiredToken",
                "The provided token has expired.",
            );
        }
        if session.mode.as_deref() == Some("ReadOnly") && seen.method != "GET" {
            return error(
                StatusCode::FORBIDDEN,
                "AccessDenied",
                "a ReadOnly session cannot write",
            );
        }
        self.record(Kind::Session(session.access_key_id), seen);
        let path = seen.path_and_query.split('?').next().unwrap().to_string();
        match seen.method.as_str() {
            "PUT" => {
                self.objects.lock().unwrap().insert(path, seen.body.clone());
                Response::builder()
                    .header("etag", "\"e\"")
                    .body(full(Bytes::new()))
                    .unwrap()
            }
            "GET" if path == "/" => Response::builder()
                .body(full("<ListBucketResult></ListBucketResult>"))
                .unwrap(),
            "GET" => match self.objects.lock().unwrap().get(&path) {
                Some(data) => Response::builder().body(full(data.clone())).unwrap(),
                None => error(StatusCode::NOT_FOUND, "NoSuchKey", "no such key"),
            },
            _ => Response::builder().body(full(Bytes::new())).unwrap(),
        }
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> Response<UpBody> {
    Response::builder()
        .status(status)
        .header("content-type", "application/xml")
        .body(full(format!(
            "<Error><Code>{code}</Code><Message>{message}</Message></Error>"
        )))
        .unwrap()
}

fn xml_escape(value: &str) -> String {
    value
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A stand-in zonal endpoint answering after `delay`.
async fn start_zonal(zonal: &Arc<Zonal>, delay: Duration) -> Upstream {
    let z = zonal.clone();
    Upstream::start_delayed(
        zonal.keys.clone(),
        Arc::new(move |seen: &Seen| z.answer(seen)),
        delay,
    )
    .await
}

/// One route to `upstream`, signed as the zonal host (service and region
/// derived from it; sessions on by default).
fn zonal_config(upstream: &str) -> String {
    format!(
        r#"
[[routes]]
name = "zonal"
path_prefix = "/"
upstream = "{upstream}"
sign_host = "{ZONAL}"
retry = {{ base_backoff = "1ms" }}
"#
    )
}

fn put(signet: &Signet, path: &str, body: impl Into<Bytes>) -> Request<UpBody> {
    Request::put(format!("{}{path}", signet.url()))
        .body(full(body.into()))
        .unwrap()
}

async fn metrics_text(signet: &Signet) -> String {
    let (status, _, body) = get(&format!("{}/metrics", signet.admin_url())).await;
    assert_eq!(status, StatusCode::OK);
    String::from_utf8(body.to_vec()).unwrap()
}

fn sessions_counted(metrics: &str, outcome: &str) -> f64 {
    signet::telemetry::metrics::sample(
        metrics,
        "signet_s3express_sessions_total",
        &[("route", "zonal"), ("outcome", outcome)],
    )
    .unwrap_or(0.0)
}

const LONG: Duration = Duration::from_secs(300);

#[tokio::test]
async fn puts_and_gets_objects_signed_with_one_session() {
    let zonal = Zonal::new(LONG);
    let up = start_zonal(&zonal, Duration::ZERO).await;
    let signet = Signet::start(&zonal_config(&up.url()));

    // A small body (signed payload) and a large one (streamed unsigned).
    let small: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
    let large: Vec<u8> = (0..3_000_000u32).map(|i| (i % 241) as u8).collect();
    for (path, data) in [("/small.bin", &small), ("/dir/large.bin", &large)] {
        let (status, _, body) = send(put(&signet, path, data.clone())).await;
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        let (status, _, body) = get(&format!("{}{path}", signet.url())).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body == data.as_slice(), "{path}: bytes differ");
    }
    let (status, _, _) = get(&format!("{}/?list-type=2&prefix=dir/", signet.url())).await;
    assert_eq!(status, StatusCode::OK);

    assert_no_rejections(&up);
    zonal.assert_nothing_refused();
    let issued = zonal.issued();
    assert_eq!(issued.len(), 1, "one session serves them all");
    let calls = zonal.calls();
    assert_eq!(calls[0].kind, Kind::CreateSession);
    assert_eq!(calls[0].path, "/?session");
    assert_eq!(
        calls[0].headers["x-amz-security-token"].as_bytes(),
        TOKEN.as_bytes(),
        "CreateSession carries the IAM session token"
    );
    let data: Vec<&Call> = calls[1..].iter().collect();
    assert_eq!(data.len(), 5);
    for call in data {
        assert_eq!(
            call.kind,
            Kind::Session(issued[0].access_key_id.clone()),
            "{} {}",
            call.method,
            call.path
        );
        assert!(!call.headers.contains_key("x-amz-security-token"));
    }
    let seen = up.seen();
    assert!(seen[1..].iter().all(|s| s
        .signed_headers
        .iter()
        .any(|h| h == "x-amz-s3session-token")));
    let metrics = metrics_text(&signet).await;
    assert_eq!(sessions_counted(&metrics, "created"), 1.0);
    assert_eq!(sessions_counted(&metrics, "failed"), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_share_one_create_session() {
    let zonal = Zonal::new(LONG);
    // Every answer takes a while, so the requests overlap the CreateSession.
    let up = start_zonal(&zonal, Duration::from_millis(300)).await;
    let signet = Signet::start(&zonal_config(&up.url()));
    let mut tasks = Vec::new();
    for i in 0..24 {
        let request = put(&signet, &format!("/k{i}"), format!("object {i}"));
        tasks.push(tokio::spawn(send(request)));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap().0, StatusCode::OK);
    }
    assert_no_rejections(&up);
    zonal.assert_nothing_refused();
    assert_eq!(zonal.creates(), 1, "one CreateSession for 24 requests");
    assert_eq!(zonal.objects.lock().unwrap().len(), 24);
}

#[tokio::test]
async fn replaces_a_session_shortly_before_it_expires() {
    // Sessions that last 63 s: fresh for about 3 s, then due for replacement
    // (signet replaces a session with less than a minute left).
    let zonal = Zonal::new(Duration::from_secs(63));
    let up = start_zonal(&zonal, Duration::ZERO).await;
    let signet = Signet::start(&zonal_config(&up.url()));
    assert_eq!(send(put(&signet, "/a", "a")).await.0, StatusCode::OK);
    assert_eq!(send(put(&signet, "/b", "b")).await.0, StatusCode::OK);
    assert_eq!(zonal.creates(), 1, "reused while fresh");
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(send(put(&signet, "/c", "c")).await.0, StatusCode::OK);
    assert_eq!(send(put(&signet, "/d", "d")).await.0, StatusCode::OK);

    assert_no_rejections(&up);
    zonal.assert_nothing_refused();
    let issued = zonal.issued();
    assert_eq!(issued.len(), 2, "replaced once");
    let used: Vec<Kind> = zonal
        .calls()
        .into_iter()
        .filter(|c| c.kind != Kind::CreateSession)
        .map(|c| c.kind)
        .collect();
    let first = Kind::Session(issued[0].access_key_id.clone());
    let second = Kind::Session(issued[1].access_key_id.clone());
    assert_eq!(used, [first.clone(), first, second.clone(), second]);
    let metrics = metrics_text(&signet).await;
    assert_eq!(sessions_counted(&metrics, "created"), 2.0);
}

#[tokio::test]
async fn copies_head_bucket_and_create_session_sign_with_iam_credentials() {
    let zonal = Zonal::new(LONG);
    let up = start_zonal(&zonal, Duration::ZERO).await;
    let signet = Signet::start(&zonal_config(&up.url()));
    assert_eq!(
        send(put(&signet, "/src.txt", "source")).await.0,
        StatusCode::OK
    );
    let copy = Request::put(format!("{}/dst.txt", signet.url()))
        .header("x-amz-copy-source", format!("{ZONAL}/src.txt"))
        .body(full(Bytes::new()))
        .unwrap();
    let (status, _, body) = send(copy).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let part_copy = Request::put(format!("{}/big.bin?partNumber=1&uploadId=u1", signet.url()))
        .header("x-amz-copy-source", format!("{ZONAL}/src.txt"))
        .body(full(Bytes::new()))
        .unwrap();
    assert_eq!(send(part_copy).await.0, StatusCode::OK);
    let head = Request::head(format!("{}/", signet.url()))
        .body(full(Bytes::new()))
        .unwrap();
    let (status, headers, _) = send(head).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-amz-bucket-region"], "us-west-2");
    // A client's own CreateSession goes through, signed with the IAM credentials.
    let (status, _, body) = get(&format!("{}/?session", signet.url())).await;
    assert_eq!(status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&body).contains("<CreateSessionResult"));
    let (status, _, body) = get(&format!("{}/dst.txt", signet.url())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&body[..], b"source");

    assert_no_rejections(&up);
    zonal.assert_nothing_refused();
    let kinds: Vec<(String, Kind)> = zonal
        .calls()
        .into_iter()
        .map(|c| (format!("{} {}", c.method, c.path), c.kind))
        .collect();
    let session = Kind::Session("ASIAZONALSESSION0001".into());
    assert_eq!(
        kinds,
        [
            ("GET /?session".to_string(), Kind::CreateSession),
            ("PUT /src.txt".to_string(), session.clone()),
            ("PUT /dst.txt".to_string(), Kind::Iam),
            (
                "PUT /big.bin?partNumber=1&uploadId=u1".to_string(),
                Kind::Iam
            ),
            ("HEAD /".to_string(), Kind::Iam),
            ("GET /?session".to_string(), Kind::CreateSession),
            ("GET /dst.txt".to_string(), session),
        ]
    );
}

#[tokio::test]
async fn replaces_a_client_supplied_session_token() {
    let zonal = Zonal::new(LONG);
    let up = start_zonal(&zonal, Duration::ZERO).await;
    let signet = Signet::start(&zonal_config(&up.url()));
    let request = Request::put(format!("{}/k", signet.url()))
        .header("x-amz-s3session-token", "client-session-token")
        .header("x-amz-security-token", "client-security-token")
        .body(full("v"))
        .unwrap();
    let (status, _, body) = send(request).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_no_rejections(&up);
    zonal.assert_nothing_refused();
    let call = zonal.calls().pop().unwrap();
    let tokens: Vec<_> = call
        .headers
        .get_all("x-amz-s3session-token")
        .iter()
        .collect();
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0].as_bytes(), zonal.issued()[0].token.as_bytes());
    assert!(!call.headers.contains_key("x-amz-security-token"));
}

#[tokio::test]
async fn a_refused_create_session_answers_502_and_forwards_nothing() {
    let zonal = Zonal::new(LONG);
    zonal.refuse_sessions.store(true, Ordering::SeqCst);
    let up = start_zonal(&zonal, Duration::ZERO).await;
    let signet = Signet::start(&zonal_config(&up.url()));
    for _ in 0..2 {
        let (status, headers, body) = send(put(&signet, "/k", "v")).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY);
        assert_eq!(headers["x-signet-error"], "s3express_session");
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"], "s3express_session");
        assert_eq!(
            body["message"],
            "no S3 Express session: CreateSession answered 403 AccessDenied"
        );
    }
    assert_no_rejections(&up);
    zonal.assert_nothing_refused();
    // A failure is not cached: each request asked again; no data request went.
    let calls = zonal.calls();
    assert_eq!(calls.len(), 2);
    assert!(calls.iter().all(|c| c.kind == Kind::CreateSession));
    assert!(zonal.objects.lock().unwrap().is_empty());
    let metrics = metrics_text(&signet).await;
    assert_eq!(sessions_counted(&metrics, "failed"), 2.0);
    assert_eq!(sessions_counted(&metrics, "created"), 0.0);

    // Once CreateSession is allowed, the next request gets a session.
    zonal.refuse_sessions.store(false, Ordering::SeqCst);
    assert_eq!(send(put(&signet, "/k", "v")).await.0, StatusCode::OK);
    zonal.assert_nothing_refused();
}

#[tokio::test]
async fn an_unreachable_zonal_endpoint_answers_502_s3express_session() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let signet = Signet::start(&zonal_config(&url));
    let (status, headers, body) = send(put(&signet, "/k", "v")).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(headers["x-signet-error"], "s3express_session");
    let message = String::from_utf8_lossy(&body);
    assert!(
        message.contains("no S3 Express session: CreateSession failed: upstream unreachable"),
        "{message}"
    );
}

#[tokio::test]
async fn without_iam_credentials_answers_503_and_sends_nothing() {
    let zonal = Zonal::new(LONG);
    let up = start_zonal(&zonal, Duration::ZERO).await;
    let config = format!(
        "[credentials.default]\nkind = \"environment\"\n{}",
        zonal_config(&up.url())
    );
    let signet = Signet::start_with_env(&config, &[], &[]);
    let (status, headers, _) = send(put(&signet, "/k", "v")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers["x-signet-error"], "credentials_unavailable");
    assert!(up.seen().is_empty() && up.rejected().is_empty());
    assert!(zonal.calls().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_logs_or_metrics_at_trace_level() {
    // Short sessions, so that one is replaced during the run too.
    let zonal = Zonal::new(Duration::from_secs(62));
    let up = start_zonal(&zonal, Duration::ZERO).await;
    let signet = Signet::start_with_env(
        &zonal_config(&up.url()),
        &[
            ("AWS_ACCESS_KEY_ID", AKID),
            ("AWS_SECRET_ACCESS_KEY", SECRET),
            ("AWS_SESSION_TOKEN", TOKEN),
            ("RUST_LOG", "trace"),
        ],
        &["--log-level", "trace"],
    );
    assert_eq!(send(put(&signet, "/a", "a")).await.0, StatusCode::OK);
    let copy = Request::put(format!("{}/b", signet.url()))
        .header("x-amz-copy-source", format!("{ZONAL}/a"))
        .body(full(Bytes::new()))
        .unwrap();
    assert_eq!(send(copy).await.0, StatusCode::OK);
    // The session is now due for replacement; the refresh is refused, and
    // the session, still valid for most of a minute, serves on.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    zonal.refuse_sessions.store(true, Ordering::SeqCst);
    let (status, _, body) = get(&format!("{}/b", signet.url())).await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"a"[..]));
    // The next request replaces it.
    zonal.refuse_sessions.store(false, Ordering::SeqCst);
    let (status, _, _) = get(&format!("{}/a", signet.url())).await;
    assert_eq!(status, StatusCode::OK);
    assert_no_rejections(&up);
    zonal.assert_nothing_refused();
    assert_eq!(zonal.issued().len(), 2, "a session was replaced");
    assert_eq!(zonal.creates(), 3, "created, refused, created");
    signet.wait_for_access_lines(4).await;

    let mut secrets: Vec<String> = vec![SECRET.into(), TOKEN.into()];
    for session in zonal.issued() {
        secrets.push(xml_escape(&session.secret));
        secrets.push(xml_escape(&session.token));
        secrets.push(session.secret);
        secrets.push(session.token);
    }
    for seen in up.seen() {
        let auth = seen.headers["authorization"].to_str().unwrap().to_string();
        secrets.push(auth.rsplit("Signature=").next().unwrap().to_string());
    }
    let logs = signet.logs();
    assert!(logs.iter().any(|l| l.contains("\"level\":\"TRACE\"")));
    assert!(
        logs.iter()
            .any(|l| l.contains("S3 Express session created")),
        "session creation is logged"
    );
    assert!(
        logs.iter()
            .any(|l| l.contains("S3 Express CreateSession failed") && l.contains("AccessDenied")),
        "the refused refresh is logged"
    );
    let metrics = metrics_text(&signet).await;
    for secret in &secrets {
        for line in &logs {
            assert!(
                !line.contains(secret.as_str()),
                "secret {secret:.12}… leaked in log line: {line}"
            );
        }
        assert!(!metrics.contains(secret.as_str()), "secret in metrics");
    }
}

#[tokio::test]
async fn sessions_work_with_a_zonal_clock_ten_minutes_off() {
    // By signet's clock, the endpoint's sessions expired five minutes before
    // they were created; by the endpoint's Date, they last five minutes.
    let zonal = Zonal::new(LONG);
    *zonal.behind.lock().unwrap() = Duration::from_secs(600);
    let up = start_zonal(&zonal, Duration::ZERO).await;
    let signet = Signet::start(&zonal_config(&up.url()));
    for path in ["/a", "/b"] {
        let (status, _, body) = send(put(&signet, path, "v")).await;
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    }
    let (status, _, body) = get(&format!("{}/a", signet.url())).await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"v"[..]));
    assert_no_rejections(&up);
    zonal.assert_nothing_refused();
    assert_eq!(zonal.creates(), 1, "one session, reused");
    let metrics = metrics_text(&signet).await;
    assert_eq!(sessions_counted(&metrics, "created"), 1.0);
    assert_eq!(sessions_counted(&metrics, "failed"), 0.0);
}

#[tokio::test]
async fn a_session_the_endpoint_rejects_is_replaced_and_the_request_retried() {
    let zonal = Zonal::new(LONG);
    let up = start_zonal(&zonal, Duration::ZERO).await;
    let signet = Signet::start(&zonal_config(&up.url()));
    assert_eq!(send(put(&signet, "/a", "a")).await.0, StatusCode::OK);
    let first = zonal.issued()[0].access_key_id.clone();
    *zonal.rejected_session.lock().unwrap() = Some(first.clone());
    // The refused attempt is retried with a new session, and succeeds.
    let (status, _, body) = get(&format!("{}/a", signet.url())).await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"a"[..]));
    assert_eq!(send(put(&signet, "/b", "b")).await.0, StatusCode::OK);
    assert_no_rejections(&up);
    zonal.assert_nothing_refused();
    let issued = zonal.issued();
    assert_eq!(issued.len(), 2, "replaced once");
    let second = Kind::Session(issued[1].access_key_id.clone());
    let kinds: Vec<Kind> = zonal.calls().into_iter().map(|c| c.kind).collect();
    assert_eq!(
        kinds,
        [
            Kind::CreateSession,
            Kind::Session(first),
            Kind::CreateSession,
            second.clone(),
            second,
        ]
    );
    signet
        .wait_for_log("S3 Express session rejected; signing with a new one")
        .await;
}

#[tokio::test]
async fn routes_to_the_same_bucket_get_sessions_of_their_own() {
    let zonal = Zonal::new(LONG);
    let up = start_zonal(&zonal, Duration::ZERO).await;
    // A read-only route under /ro, and the read-write route for the rest.
    let config = format!(
        r#"
[[routes]]
name = "zonal-ro"
path_prefix = "/ro"
strip_prefix = true
upstream = "{}"
sign_host = "{ZONAL}"
custom_headers = {{ "x-amz-create-session-mode" = "ReadOnly" }}
{}"#,
        up.url(),
        zonal_config(&up.url())
    );
    let signet = Signet::start(&config);
    assert_eq!(send(put(&signet, "/k", "v")).await.0, StatusCode::OK);
    let (status, _, body) = get(&format!("{}/ro/k", signet.url())).await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"v"[..]));
    // The read-only route's session cannot write; the other route's still can.
    let (status, _, body) = send(put(&signet, "/ro/k", "w")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(String::from_utf8_lossy(&body).contains("ReadOnly"));
    assert_eq!(send(put(&signet, "/k2", "w")).await.0, StatusCode::OK);
    assert_no_rejections(&up);
    zonal.assert_nothing_refused();
    let issued = zonal.issued();
    assert_eq!(issued.len(), 2, "one session per route");
    assert_eq!(issued[0].mode, None);
    assert_eq!(issued[1].mode.as_deref(), Some("ReadOnly"));
    let kinds: Vec<Kind> = zonal.calls().into_iter().map(|c| c.kind).collect();
    let (rw, ro) = (
        Kind::Session(issued[0].access_key_id.clone()),
        Kind::Session(issued[1].access_key_id.clone()),
    );
    assert_eq!(
        kinds,
        [Kind::CreateSession, rw.clone(), Kind::CreateSession, ro, rw]
    );
}

#[tokio::test]
async fn aws_chunked_uploads_are_signed_with_the_session() {
    let zonal = Zonal::new(LONG);
    let up = start_zonal(&zonal, Duration::ZERO).await;
    let signet = Signet::start(&zonal_config(&up.url()));
    let data: Vec<u8> = (0..150_000u32).map(|i| (i % 253) as u8).collect();
    let mut wires = Vec::new();
    for (key, signed_chunks) in [("unsigned.bin", false), ("signed.bin", true)] {
        let url = format!("{}/{key}", signet.url());
        let (req, wire) = aws_chunked_put(&url, &data, signed_chunks);
        let (status, _, body) = send(req).await;
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        wires.push(wire);
    }
    assert_no_rejections(&up);
    zonal.assert_nothing_refused();
    let issued = zonal.issued();
    assert_eq!(issued.len(), 1, "one session signs both uploads");
    let session = Kind::Session(issued[0].access_key_id.clone());
    let kinds: Vec<Kind> = zonal.calls().into_iter().map(|c| c.kind).collect();
    assert_eq!(kinds, [Kind::CreateSession, session.clone(), session]);

    let seen = up.seen();
    let (unsigned, signed) = (&seen[1], &seen[2]);
    assert_eq!(
        &unsigned.body[..],
        &wires[0][..],
        "the unsigned upload arrives byte-identical"
    );
    assert_eq!(
        unsigned.headers["x-amz-content-sha256"],
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    );
    assert_eq!(
        signed.headers["x-amz-content-sha256"],
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
    );
    assert_eq!(signed.body.len(), wires[1].len(), "framing length is kept");
    // The chunk signatures chain from the seed signature under the session's key.
    let (decoded, trailers) = verify_chunk_chain(signed, &issued[0].secret);
    assert_eq!(decoded, data);
    assert_eq!(
        trailers[0],
        ("x-amz-checksum-crc32".to_string(), crc32_b64(&data))
    );
}
