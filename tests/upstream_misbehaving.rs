//! The upstream path against a misbehaving upstream on 127.0.0.1.
//!
//! Every test runs a small hyper server whose behaviour is chosen per request (fail N
//! times, answer throttling errors, close the connection, hang, trickle a body). The
//! server re-verifies every request's SigV4 signature with the `aws-sigv4` crate and
//! records what it saw, so tests can count attempts and check each was signed afresh.
//!
//! A request whose signature does not verify never gets its scripted behaviour: the
//! server answers 403 `SignatureDoesNotMatch`, as AWS would, and dropping the server
//! at the end of the test fails the test. So a bad signature fails every test that
//! reaches the server, whatever else the test asserts.

#[path = "verify/mod.rs"]
mod verify;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};
use signet::sigv4;
use signet::upstream::{
    backoff_bound, upstream_key, AttemptSigner, ForwardError, OutboundBody, OutboundRequest,
    ResponseBody, RetryMode, RoutePolicy, SignFailure, TimeoutKind, TlsSettings, Upstream,
    UpstreamObserver,
};
use tokio::net::TcpListener;
use tokio::time::Instant;

const REGION: &str = "us-east-1";
const SERVICE: &str = "execute-api";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

// ---------------------------------------------------------------------------
// The misbehaving upstream
// ---------------------------------------------------------------------------

/// What the upstream does with one request.
#[derive(Clone)]
enum Reply {
    /// Read the body, then answer.
    Answer {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: Bytes,
    },
    /// Read the body, then close the connection without answering.
    Close,
    /// Never answer.
    Hang,
    /// Answer `status` with these chunks (no content-length), pausing `gap` before
    /// each; `stall` stops after the chunks without ending the body.
    Trickle {
        status: u16,
        chunks: Vec<Bytes>,
        gap: Duration,
        stall: bool,
    },
    /// Answer after waiting for `release` (for in-flight tests).
    WaitFor(Arc<tokio::sync::Semaphore>),
}

fn answer(status: u16, body: &str) -> Reply {
    Reply::Answer {
        status,
        headers: Vec::new(),
        body: Bytes::copy_from_slice(body.as_bytes()),
    }
}

fn answer_with(status: u16, headers: &[(&'static str, &str)], body: &str) -> Reply {
    Reply::Answer {
        status,
        headers: headers.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        body: Bytes::copy_from_slice(body.as_bytes()),
    }
}

/// One request as the upstream received it.
#[derive(Clone, Debug)]
struct Seen {
    at: Instant,
    /// Wall-clock arrival, to compare with the next attempt's X-Amz-Date.
    received: SystemTime,
    headers: HeaderMap,
    body: Bytes,
    /// The upstream's independent verdict on the signature.
    signature: Result<(), String>,
}

type Behaviour = Arc<dyn Fn(usize) -> Reply + Send + Sync>;

struct FakeUpstream {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Secret per access key id (the signer may rotate keys).
    secrets: Arc<Mutex<Vec<(String, String)>>>,
}

impl FakeUpstream {
    /// Also accepts signatures by `AKIDSECOND` (secret `second-secret`), the
    /// credentials the tests rotate to.
    fn accept_second_key(&self) {
        self.secrets
            .lock()
            .unwrap()
            .push(("AKIDSECOND".into(), "second-secret".into()));
    }

    async fn start(behaviour: impl Fn(usize) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener, Arc::new(behaviour), 0)
    }

    /// Like `start`, but the first `resets` connections are reset (TCP RST) as soon as
    /// the request starts arriving.
    async fn start_resetting(
        resets: usize,
        behaviour: impl Fn(usize) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener, Arc::new(behaviour), resets)
    }

    fn serve(listener: TcpListener, behaviour: Behaviour, resets: usize) -> Self {
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let secrets = Arc::new(Mutex::new(vec![(
            "AKIDFIRST".to_string(),
            SECRET.to_string(),
        )]));
        let count = Arc::new(AtomicUsize::new(0));
        let (seen2, secrets2) = (seen.clone(), secrets.clone());
        tokio::spawn(async move {
            let mut connections = 0;
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                connections += 1;
                if connections <= resets {
                    use tokio::io::AsyncReadExt;
                    let mut buf = [0u8; 64];
                    let _ = stream.read(&mut buf).await;
                    let _ = stream.set_zero_linger();
                    drop(stream);
                    continue;
                }
                let (seen, secrets, behaviour, count) = (
                    seen2.clone(),
                    secrets2.clone(),
                    behaviour.clone(),
                    count.clone(),
                );
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let (seen, secrets, behaviour, count) = (
                            seen.clone(),
                            secrets.clone(),
                            behaviour.clone(),
                            count.clone(),
                        );
                        async move {
                            let index = count.fetch_add(1, Ordering::SeqCst);
                            let reply = behaviour(index);
                            handle(req, reply, seen, secrets).await
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            seen,
            secrets,
        }
    }

    fn uri(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// Fails the test if any request that reached the server was not validly signed
/// (the server already answered it 403, but a test need not look at the answer).
impl Drop for FakeUpstream {
    fn drop(&mut self) {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let bad: Vec<String> = seen
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let e = s.signature.as_ref().err()?;
                Some(format!("request {}: {e}", i + 1))
            })
            .collect();
        if bad.is_empty() {
            return;
        }
        if std::thread::panicking() {
            eprintln!("the fake upstream also rejected these signatures: {bad:#?}");
        } else {
            panic!(
                "the fake upstream rejected {} of {} requests as not validly signed: {bad:#?}",
                bad.len(),
                seen.len()
            );
        }
    }
}

type ReplyBody = BoxBody<Bytes, std::io::Error>;

async fn handle(
    req: Request<Incoming>,
    reply: Reply,
    seen: Arc<Mutex<Vec<Seen>>>,
    secrets: Arc<Mutex<Vec<(String, String)>>>,
) -> Result<Response<ReplyBody>, std::io::Error> {
    let at = Instant::now();
    let received = SystemTime::now();
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes();
    let signature = verify_signature(&parts, &body, &secrets.lock().unwrap());
    seen.lock().unwrap().push(Seen {
        at,
        received,
        headers: parts.headers.clone(),
        body,
        signature: signature.clone(),
    });
    if let Err(reason) = signature {
        // Like AWS: a request that does not verify gets no service behaviour at all.
        let xml = format!(
            "<Error><Code>SignatureDoesNotMatch</Code><Message>fake upstream: {reason}</Message></Error>"
        );
        let mut response =
            Response::new(Full::new(Bytes::from(xml)).map_err(|e| match e {}).boxed());
        *response.status_mut() = StatusCode::FORBIDDEN;
        response.headers_mut().insert(
            "x-amzn-errortype",
            HeaderValue::from_static("SignatureDoesNotMatch"),
        );
        return Ok(response);
    }
    match reply {
        Reply::Answer {
            status,
            headers,
            body,
        } => {
            let mut response = Response::new(Full::new(body).map_err(|e| match e {}).boxed());
            *response.status_mut() = StatusCode::from_u16(status).unwrap();
            for (name, value) in headers {
                response
                    .headers_mut()
                    .insert(name, HeaderValue::from_str(&value).unwrap());
            }
            Ok(response)
        }
        Reply::Close => Err(std::io::Error::other("closing without an answer")),
        Reply::Hang => std::future::pending().await,
        Reply::WaitFor(release) => {
            let _permit = release.acquire().await.unwrap();
            Ok(Response::new(
                Full::new(Bytes::from_static(b"released"))
                    .map_err(|e| match e {})
                    .boxed(),
            ))
        }
        Reply::Trickle {
            status,
            chunks,
            gap,
            stall,
        } => {
            let stream = futures_util::stream::unfold(
                (chunks.into_iter(), stall),
                move |(mut chunks, stall)| async move {
                    match chunks.next() {
                        Some(chunk) => {
                            tokio::time::sleep(gap).await;
                            Some((Ok::<_, std::io::Error>(Frame::data(chunk)), (chunks, stall)))
                        }
                        None if stall => std::future::pending().await,
                        None => None,
                    }
                },
            );
            let mut response = Response::new(BoxBody::new(StreamBody::new(stream)));
            *response.status_mut() = StatusCode::from_u16(status).unwrap();
            Ok(response)
        }
    }
}

/// Verifies the request's signature (`tests/verify`: recomputed with `aws-sigv4`
/// over exactly the headers it names as signed) and that it is scoped to this
/// upstream's region and service with the payload hash signed.
fn verify_signature(
    parts: &http::request::Parts,
    body: &[u8],
    secrets: &[(String, String)],
) -> Result<(), String> {
    let key_of = |akid: &str| {
        secrets
            .iter()
            .find(|(id, _)| id == akid)
            .map(|(_, secret)| (secret.clone(), None))
    };
    let verified = verify::verify(parts, body, key_of).map_err(|e| e.to_string())?;
    if (verified.region.as_str(), verified.service.as_str()) != (REGION, SERVICE) {
        return Err(format!(
            "scoped to {}/{}, not {REGION}/{SERVICE}",
            verified.region, verified.service
        ));
    }
    if !verified
        .signed_headers
        .iter()
        .any(|h| h == "x-amz-content-sha256")
    {
        return Err("x-amz-content-sha256 is not signed".into());
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The signer and observer the tests hand to the upstream path
// ---------------------------------------------------------------------------

/// Signs each attempt with signet's own signer and the credentials current at that
/// moment (the upstream verifies with `aws-sigv4`).
struct TestSigner {
    signer: sigv4::Signer,
    credentials: Mutex<(String, String)>,
    calls: AtomicUsize,
    /// The Authorization value of every signing, in order.
    produced: Mutex<Vec<String>>,
    /// The (status, error code) of every error answer it was told of.
    rejections: Mutex<Vec<(u16, String)>>,
    /// Rotates to these credentials when told of an `ExpiredToken` answer,
    /// and says so (as a signer whose session was refused does).
    renews_to: Mutex<Option<(String, String)>>,
}

impl TestSigner {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            signer: sigv4::Signer::new(),
            credentials: Mutex::new(("AKIDFIRST".into(), SECRET.into())),
            calls: AtomicUsize::new(0),
            produced: Mutex::new(Vec::new()),
            rejections: Mutex::new(Vec::new()),
            renews_to: Mutex::new(None),
        })
    }

    fn rotate(&self, access_key: &str, secret: &str) {
        *self.credentials.lock().unwrap() = (access_key.into(), secret.into());
    }
}

impl AttemptSigner for TestSigner {
    fn sign(&self, parts: &mut http::request::Parts) -> Result<(), SignFailure> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let (access_key_id, secret_access_key) = self.credentials.lock().unwrap().clone();
        let credentials = sigv4::Credentials {
            access_key_id,
            secret_access_key,
            session_token: None,
        };
        let settings = sigv4::SigningSettings::for_service(SERVICE);
        let params = sigv4::SigningParams {
            credentials: &credentials,
            region: REGION,
            service: SERVICE,
            time: sigv4::AmzDate::now().map_err(|e| SignFailure::Signing(e.to_string()))?,
            settings: &settings,
        };
        let payload = parts
            .headers
            .get("x-amz-content-sha256")
            .and_then(|v| v.to_str().ok())
            .unwrap_or(sigv4::UNSIGNED_PAYLOAD)
            .to_string();
        self.signer
            .sign_http(
                &parts.method,
                &mut parts.uri,
                &mut parts.headers,
                sigv4::PayloadHash::from_value(&payload),
                &params,
            )
            .map_err(|e| SignFailure::Signing(e.to_string()))?;
        let authorization = parts.headers["authorization"].to_str().unwrap().to_owned();
        self.produced.lock().unwrap().push(authorization);
        Ok(())
    }

    fn rejected(&self, status: StatusCode, code: &str) -> bool {
        self.rejections
            .lock()
            .unwrap()
            .push((status.as_u16(), code.to_owned()));
        if code != "ExpiredToken" {
            return false;
        }
        match self.renews_to.lock().unwrap().take() {
            Some((access_key, secret)) => {
                self.rotate(&access_key, &secret);
                true
            }
            None => false,
        }
    }
}

/// Records every counter the upstream path reports.
#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<String>>,
    backoffs: Mutex<Vec<Duration>>,
    on_retry: Mutex<Option<Box<dyn FnMut() + Send>>>,
}

impl Recorder {
    fn count(&self, prefix: &str) -> usize {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.starts_with(prefix))
            .count()
    }

    fn events(&self) -> Vec<String> {
        self.events.lock().unwrap().clone()
    }
}

impl UpstreamObserver for Recorder {
    fn attempt(&self, _route: &str) {
        self.events.lock().unwrap().push("attempt".into());
    }
    fn retry(&self, _route: &str, reason: &str) {
        self.events.lock().unwrap().push(format!("retry:{reason}"));
        if let Some(hook) = self.on_retry.lock().unwrap().as_mut() {
            hook();
        }
    }
    fn budget_exhausted(&self, _route: &str) {
        self.events.lock().unwrap().push("budget_exhausted".into());
    }
    fn timeout(&self, _route: &str, kind: &str) {
        self.events.lock().unwrap().push(format!("timeout:{kind}"));
    }
    fn shed(&self, _route: &str) {
        self.events.lock().unwrap().push("shed".into());
    }
    fn backoff(&self, _route: &str, delay: Duration) {
        self.backoffs.lock().unwrap().push(delay);
    }
}

/// A fast policy for tests: short backoff, short timeouts.
fn policy() -> RoutePolicy {
    let mut p = RoutePolicy::default();
    p.retry.base_backoff = Duration::from_millis(20);
    p.retry.max_backoff = Duration::from_secs(2);
    p.timeouts.connect = Duration::from_secs(2);
    p.timeouts.first_byte = Duration::from_secs(5);
    p.timeouts.total = Duration::from_secs(10);
    p.timeouts.idle = Duration::from_secs(5);
    p
}

fn request(
    uri: &str,
    body: OutboundBody,
    signer: Arc<TestSigner>,
    policy: &RoutePolicy,
) -> OutboundRequest {
    let uri: http::Uri = uri.parse().unwrap();
    let host = uri.authority().unwrap().to_string();
    let hash = match &body {
        OutboundBody::Empty => hex::encode(Sha256::digest(b"")),
        OutboundBody::Buffered(bytes) => hex::encode(Sha256::digest(bytes)),
        OutboundBody::Streaming(_) => "UNSIGNED-PAYLOAD".to_string(),
    };
    let (mut parts, ()) = Request::builder()
        .method(if matches!(body, OutboundBody::Empty) {
            "GET"
        } else {
            "POST"
        })
        .uri(uri)
        .header("host", host)
        .header("x-amz-content-sha256", hash)
        .header("content-type", "application/x-amz-json-1.0")
        .body(())
        .unwrap()
        .into_parts();
    if let OutboundBody::Buffered(bytes) = &body {
        parts.headers.insert("content-length", bytes.len().into());
    }
    OutboundRequest {
        upstream: upstream_key(&parts.uri).into(),
        parts,
        body,
        signer,
        policy: Arc::new(policy.clone()),
        route: Arc::from("test"),
    }
}

fn upstream(recorder: &Arc<Recorder>) -> Upstream {
    Upstream::new(&TlsSettings::default(), recorder.clone()).unwrap()
}

async fn body_text(response: Response<signet::upstream::ResponseBody>) -> String {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn assert_all_signed(seen: &[Seen]) {
    for (i, s) in seen.iter().enumerate() {
        assert_eq!(
            s.signature,
            Ok(()),
            "attempt {} was not validly signed",
            i + 1
        );
    }
}

/// Every attempt the upstream path made was signed afresh, and every one that
/// arrived verified: one signing per attempt; each arriving attempt carries a
/// signature `signer` produced for it (in order, none carried over from an
/// earlier attempt); and none was signed before the previous one arrived.
fn assert_signed_afresh(signer: &TestSigner, recorder: &Recorder, seen: &[Seen]) {
    assert_all_signed(seen);
    let produced = signer.produced.lock().unwrap().clone();
    assert_eq!(
        produced.len(),
        recorder.count("attempt"),
        "one signing per attempt: {:?}",
        recorder.events()
    );
    assert_eq!(signer.calls.load(Ordering::SeqCst), produced.len());
    let mut next = 0;
    for (i, s) in seen.iter().enumerate() {
        let sent = s.headers["authorization"].to_str().unwrap();
        match produced[next..].iter().position(|p| p == sent) {
            Some(offset) => next += offset + 1,
            None => panic!(
                "attempt {} arrived with a signature not produced for it: {sent}",
                i + 1
            ),
        }
    }
    for (i, pair) in seen.windows(2).enumerate() {
        let signed_at =
            verify::parse_amz_date(pair[1].headers["x-amz-date"].to_str().unwrap()).unwrap();
        let previous = pair[0]
            .received
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(
            signed_at >= SystemTime::UNIX_EPOCH + Duration::from_secs(previous),
            "attempt {} was signed before attempt {} arrived",
            i + 2,
            i + 1
        );
    }
}

// ---------------------------------------------------------------------------
// Retries
// ---------------------------------------------------------------------------

#[tokio::test]
async fn retries_503_twice_then_succeeds_with_each_attempt_freshly_signed() {
    let server = FakeUpstream::start(|n| {
        if n < 2 {
            answer(503, "busy")
        } else {
            answer(200, "ok")
        }
    })
    .await;
    let recorder = Arc::new(Recorder::default());
    let signer = TestSigner::new();
    let body = OutboundBody::Buffered(Bytes::from_static(b"{\"TableName\":\"t\"}"));
    let response = upstream(&recorder)
        .send(request(
            &server.uri("/items?x=1"),
            body,
            signer.clone(),
            &policy(),
        ))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body_text(response).await, "ok");
    let seen = server.seen();
    assert_eq!(seen.len(), 3);
    assert_signed_afresh(&signer, &recorder, &seen);
    for s in &seen {
        assert_eq!(
            &s.body[..],
            b"{\"TableName\":\"t\"}",
            "buffered body replayed whole"
        );
    }
    assert_eq!(recorder.count("attempt"), 3);
    assert_eq!(recorder.count("retry:http_503"), 2);
}

#[tokio::test]
async fn retry_carries_the_credentials_current_at_that_attempt() {
    let server = FakeUpstream::start(|n| {
        if n == 0 {
            answer(500, "oops")
        } else {
            answer(200, "ok")
        }
    })
    .await;
    server.accept_second_key();
    let recorder = Arc::new(Recorder::default());
    let signer = TestSigner::new();
    let rotating = signer.clone();
    *recorder.on_retry.lock().unwrap() = Some(Box::new(move || {
        rotating.rotate("AKIDSECOND", "second-secret")
    }));
    let response = upstream(&recorder)
        .send(request(
            &server.uri("/"),
            OutboundBody::Empty,
            signer.clone(),
            &policy(),
        ))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    assert_signed_afresh(&signer, &recorder, &seen);
    let key_of = |s: &Seen| {
        s.headers["authorization"]
            .to_str()
            .unwrap()
            .contains("AKIDSECOND")
    };
    assert!(!key_of(&seen[0]));
    assert!(
        key_of(&seen[1]),
        "the retry must be signed with the rotated credentials"
    );
}

#[tokio::test]
async fn returns_upstreams_own_slowdown_xml_when_retries_run_out() {
    let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><RequestId>R1</RequestId></Error>";
    let server = FakeUpstream::start(move |_| {
        answer_with(
            503,
            &[
                ("content-type", "application/xml"),
                ("x-amz-request-id", "R1"),
            ],
            xml,
        )
    })
    .await;
    let recorder = Arc::new(Recorder::default());
    let signer = TestSigner::new();
    let response = upstream(&recorder)
        .send(request(
            &server.uri("/bucket/key"),
            OutboundBody::Empty,
            signer.clone(),
            &policy(),
        ))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["x-amz-request-id"], "R1");
    assert_eq!(
        response.headers()["content-length"],
        xml.len().to_string().as_str()
    );
    assert_eq!(
        body_text(response).await,
        xml,
        "the client gets the upstream's body intact"
    );
    assert_eq!(server.seen().len(), 3, "default max_attempts is 3");
    assert_signed_afresh(&signer, &recorder, &server.seen());
    assert_eq!(
        recorder.count("retry:SlowDown"),
        2,
        "{:?}",
        recorder.events()
    );
}

#[tokio::test]
async fn retries_400_throttling_exception_json_then_succeeds() {
    let json = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"Rate exceeded"}"#;
    let server = FakeUpstream::start(move |n| {
        if n == 0 {
            answer_with(400, &[("content-type", "application/x-amz-json-1.0")], json)
        } else {
            answer(200, "{}")
        }
    })
    .await;
    let recorder = Arc::new(Recorder::default());
    let signer = TestSigner::new();
    let body = OutboundBody::Buffered(Bytes::from_static(b"{}"));
    let response = upstream(&recorder)
        .send(request(&server.uri("/"), body, signer.clone(), &policy()))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(server.seen().len(), 2);
    assert_signed_afresh(&signer, &recorder, &server.seen());
    assert_eq!(
        recorder.count("retry:ThrottlingException"),
        1,
        "{:?}",
        recorder.events()
    );
}

/// Sends a bodiless request for `/k` to `server` through `up`, signed by `signer`.
async fn get_k(
    up: &Upstream,
    server: &FakeUpstream,
    signer: &Arc<TestSigner>,
) -> http::Response<ResponseBody> {
    up.send(request(
        &server.uri("/k"),
        OutboundBody::Empty,
        signer.clone(),
        &policy(),
    ))
    .await
    .unwrap()
}

/// An answer refusing credentials the signer then drops is retried, signed
/// with the new ones, under the retry policy; the reason is the code.
#[tokio::test]
async fn retries_an_answer_whose_credentials_the_signer_renewed() {
    let expired = "<Error><Code>ExpiredToken</Code><Message>expired</Message></Error>";
    let server = FakeUpstream::start(move |n| match n {
        0 | 2 | 3 => answer(403, expired),
        _ => answer(200, "<Ok/>"),
    })
    .await;
    server.accept_second_key();
    let recorder = Arc::new(Recorder::default());
    let signer = TestSigner::new();
    *signer.renews_to.lock().unwrap() = Some(("AKIDSECOND".into(), "second-secret".into()));
    let up = upstream(&recorder);
    let response = get_k(&up, &server, &signer).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(recorder.count("retry:ExpiredToken"), 1);
    let produced = signer.produced.lock().unwrap().clone();
    assert_eq!(produced.len(), 2);
    assert!(
        produced[0].contains("Credential=AKIDFIRST/"),
        "{}",
        produced[0]
    );
    assert!(
        produced[1].contains("Credential=AKIDSECOND/"),
        "{}",
        produced[1]
    );
    // A signer that has nothing new to sign with gets the answer as it is.
    let response = get_k(&up, &server, &signer).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(body_text(response).await, expired);
    assert_eq!(recorder.count("retry:ExpiredToken"), 1, "not retried");
}

#[tokio::test]
async fn tells_the_signer_the_error_code_of_each_error_answer() {
    let slow_down = "<Error><Code>SlowDown</Code><Message>slow</Message></Error>";
    let expired = "<Error><Code>ExpiredToken</Code><Message>The provided token has expired.</Message></Error>";
    let server = FakeUpstream::start(move |n| match n {
        0 => answer(503, slow_down),
        1 => answer_with(
            500,
            &[("x-amzn-errortype", "InternalFailure:http://x/")],
            "",
        ),
        2 => answer(403, expired),
        3 => answer(404, ""),
        _ => answer(200, "<Ok/>"),
    })
    .await;
    let recorder = Arc::new(Recorder::default());
    let signer = TestSigner::new();
    let up = upstream(&recorder);
    let response = get_k(&up, &server, &signer).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        body_text(response).await,
        expired,
        "the client gets it intact"
    );
    // An error answer without a code, and a success, are not reported.
    for want in [StatusCode::NOT_FOUND, StatusCode::OK] {
        assert_eq!(get_k(&up, &server, &signer).await.status(), want);
    }
    assert_eq!(
        *signer.rejections.lock().unwrap(),
        [
            (503, "SlowDown".to_owned()),
            (500, "InternalFailure".to_owned()),
            (403, "ExpiredToken".to_owned()),
        ]
    );
}

#[tokio::test]
async fn does_not_retry_a_plain_client_error_and_keeps_its_body() {
    let json = r#"{"__type":"ValidationException","message":"bad"}"#;
    let server = FakeUpstream::start(move |_| answer(400, json)).await;
    let recorder = Arc::new(Recorder::default());
    let signer = TestSigner::new();
    let response = upstream(&recorder)
        .send(request(
            &server.uri("/"),
            OutboundBody::Empty,
            signer.clone(),
            &policy(),
        ))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(body_text(response).await, json);
    assert_eq!(server.seen().len(), 1);
    assert_signed_afresh(&signer, &recorder, &server.seen());
    assert_eq!(recorder.count("retry"), 0);
}

#[tokio::test]
async fn classifies_a_chunked_error_body_of_unknown_length() {
    let json = r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#;
    let server = FakeUpstream::start(move |n| {
        if n == 0 {
            Reply::Trickle {
                status: 400,
                chunks: vec![
                    Bytes::from_static(&json.as_bytes()[..20]),
                    Bytes::from_static(&json.as_bytes()[20..]),
                ],
                gap: Duration::from_millis(10),
                stall: false,
            }
        } else {
            answer(200, "ok")
        }
    })
    .await;
    let recorder = Arc::new(Recorder::default());
    let signer = TestSigner::new();
    let response = upstream(&recorder)
        .send(request(
            &server.uri("/"),
            OutboundBody::Empty,
            signer.clone(),
            &policy(),
        ))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        recorder.count("retry:ThrottlingException"),
        1,
        "{:?}",
        recorder.events()
    );
    assert_eq!(server.seen().len(), 2);
    assert_signed_afresh(&signer, &recorder, &server.seen());
}

#[tokio::test]
async fn hands_back_a_large_streamed_error_body_intact() {
    let chunks: Vec<Bytes> = (0..8u8)
        .map(|i| Bytes::from(vec![b'a' + i; 16 * 1024]))
        .collect();
    let expected: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
    let server = FakeUpstream::start(move |_| Reply::Trickle {
        status: 403,
        chunks: chunks.clone(),
        gap: Duration::ZERO,
        stall: false,
    })
    .await;
    let recorder = Arc::new(Recorder::default());
    let signer = TestSigner::new();
    let response = upstream(&recorder)
        .send(request(
            &server.uri("/"),
            OutboundBody::Empty,
            signer.clone(),
            &policy(),
        ))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body.len(), 128 * 1024);
    assert!(
        body[..] == expected[..],
        "read-ahead frames and the rest, in order"
    );
    assert_eq!(server.seen().len(), 1);
    assert_signed_afresh(&signer, &recorder, &server.seen());
}

#[tokio::test]
async fn reads_error_type_from_x_amzn_errortype_header() {
    let server = FakeUpstream::start(|n| {
        if n == 0 {
            answer_with(
                400,
                &[(
                    "x-amzn-ErrorType",
                    "TooManyRequestsException:http://internal.amazon.com/coral/",
                )],
                "",
            )
        } else {
            answer(200, "ok")
        }
    })
    .await;
    let recorder = Arc::new(Recorder::default());
    let signer = TestSigner::new();
    let response = upstream(&recorder)
        .send(request(
            &server.uri("/"),
            OutboundBody::Empty,
            signer.clone(),
            &policy(),
        ))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(recorder.count("retry:TooManyRequestsException"), 1);
    assert_eq!(server.seen().len(), 2);
    assert_signed_afresh(&signer, &recorder, &server.seen());
}

#[tokio::test]
async fn retries_after_the_upstream_closes_the_connection() {
    let server = FakeUpstream::start(|n| {
        if n == 0 {
            Reply::Close
        } else {
            answer(200, "ok")
        }
    })
    .await;
    let recorder = Arc::new(Recorder::default());
    let signer = TestSigner::new();
    let body = OutboundBody::Buffered(Bytes::from_static(b"payload"));
    let response = upstream(&recorder)
        .send(request(&server.uri("/"), body, signer.clone(), &policy()))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(server.seen().len(), 2);
    assert_signed_afresh(&signer, &recorder, &server.seen());
    assert_eq!(
        recorder.count("retry:connection"),
        1,
        "{:?}",
        recorder.events()
    );
}

#[tokio::test]
async fn retries_after_the_upstream_resets_the_connection() {
    let server = FakeUpstream::start_resetting(1, |_| answer(200, "ok")).await;
    let recorder = Arc::new(Recorder::default());
    let signer = TestSigner::new();
    let body = OutboundBody::Buffered(Bytes::from_static(b"payload"));
    let response = upstream(&recorder)
        .send(request(&server.uri("/"), body, signer.clone(), &policy()))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let seen = server.seen();
    assert_eq!(seen.len(), 1, "the reset attempt never reached the service");
    assert_eq!(&seen[0].body[..], b"payload");
    assert_eq!(recorder.count("attempt"), 2);
    assert_signed_afresh(&signer, &recorder, &seen);
    assert_eq!(
        recorder.count("retry:connection"),
        1,
        "{:?}",
        recorder.events()
    );
}

#[tokio::test]
async fn reset_on_every_attempt_answers_502_naming_the_failure() {
    let server = FakeUpstream::start_resetting(usize::MAX, |_| answer(200, "never")).await;
    let recorder = Arc::new(Recorder::default());
    let signer = TestSigner::new();
    let error = upstream(&recorder)
        .send(request(
            &server.uri("/"),
            OutboundBody::Empty,
            signer.clone(),
            &policy(),
        ))
        .await
        .unwrap_err();
    assert!(matches!(error, ForwardError::Connection(_)), "{error}");
    assert_eq!(error.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(error.kind(), "upstream_connection");
    assert_eq!(recorder.count("attempt"), 3);
    assert!(server.seen().is_empty(), "every attempt was reset");
    assert_signed_afresh(&signer, &recorder, &[]);
}

#[tokio::test]
async fn adaptive_mode_slows_sending_while_the_upstream_throttles() {
    let server = FakeUpstream::start(|_| {
        answer_with(400, &[("x-amzn-ErrorType", "ThrottlingException")], "")
    })
    .await;
    let recorder = Arc::new(Recorder::default());
    let signer = TestSigner::new();
    let mut p = policy();
    p.retry.max_attempts = 1;
    let standard = upstream(&recorder);
    for _ in 0..2 {
        standard
            .send(request(
                &server.uri("/"),
                OutboundBody::Empty,
                signer.clone(),
                &p,
            ))
            .await
            .unwrap();
    }
    p.retry.mode = RetryMode::Adaptive;
    let adaptive = upstream(&recorder);
    for _ in 0..2 {
        adaptive
            .send(request(
                &server.uri("/"),
                OutboundBody::Empty,
                signer.clone(),
                &p,
            ))
            .await
            .unwrap();
    }
    let seen = server.seen();
    assert_eq!(seen.len(), 4);
    assert_signed_afresh(&signer, &recorder, &seen);
    assert!(
        seen[1].at - seen[0].at < Duration::from_secs(1),
        "standard mode sends at once"
    );
    // After a throttle the client-side rate drops to its floor (0.5 requests/s), so
    // the next send waits for a token.
    let gap = seen[3].at - seen[2].at;
    assert!(
        gap >= Duration::from_millis(1500),
        "adaptive mode waited only {gap:?}"
    );
}

#[tokio::test]
async fn backoff_delays_stay_within_the_computed_bounds() {
    let server = FakeUpstream::start(|n| {
        if n < 4 {
            answer(502, "bad gateway")
        } else {
            answer(200, "ok")
        }
    })
    .await;
    let recorder = Arc::new(Recorder::default());
    let signer = TestSigner::new();
    let mut p = policy();
    p.retry.max_attempts = 5;
    p.retry.base_backoff = Duration::from_millis(40);
    p.retry.max_backoff = Duration::from_millis(100);
    let response = upstream(&recorder)
        .send(request(
            &server.uri("/"),
            OutboundBody::Empty,
            signer.clone(),
            &p,
        ))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let seen = server.seen();
    assert_eq!(seen.len(), 5);
    assert_signed_afresh(&signer, &recorder, &seen);
    let delays = recorder.backoffs.lock().unwrap().clone();
    assert_eq!(delays.len(), 4);
    for (i, delay) in delays.iter().enumerate() {
        let retry = i as u32 + 1;
        let bound = backoff_bound(&p.retry, retry);
        assert!(
            *delay <= bound,
            "retry {retry}: {delay:?} > bound {bound:?}"
        );
        // The next attempt arrived no sooner than the chosen delay.
        let gap = seen[i + 1].at - seen[i].at;
        assert!(
            gap >= *delay,
            "retry {retry}: gap {gap:?} < delay {delay:?}"
        );
        assert!(
            gap < bound + Duration::from_secs(2),
            "retry {retry}: gap {gap:?}"
        );
    }
    assert_eq!(
        [1, 2, 3, 4].map(|n| backoff_bound(&p.retry, n)),
        [40, 80, 100, 100].map(Duration::from_millis),
        "exponential, capped"
    );
}

#[tokio::test]
async fn honours_retry_after_before_retrying() {
    let server = FakeUpstream::start(|n| {
        if n == 0 {
            answer_with(429, &[("retry-after", "1")], "slow down")
        } else {
            answer(200, "ok")
        }
    })
    .await;
    let recorder = Arc::new(Recorder::default());
    let signer = TestSigner::new();
    let response = upstream(&recorder)
        .send(request(
            &server.uri("/"),
            OutboundBody::Empty,
            signer.clone(),
            &policy(),
        ))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    assert!(
        seen[1].at - seen[0].at >= Duration::from_secs(1),
        "waited {:?}",
        seen[1].at - seen[0].at
    );
    assert_signed_afresh(&signer, &recorder, &seen);
    assert_ne!(
        seen[0].headers["x-amz-date"], seen[1].headers["x-amz-date"],
        "an attempt signed a second later carries a new X-Amz-Date"
    );
}

#[tokio::test]
async fn returns_answer_when_retry_after_exceeds_the_backoff_cap() {
    let server =
        FakeUpstream::start(|_| answer_with(503, &[("retry-after", "120")], "maintenance")).await;
    let recorder = Arc::new(Recorder::default());
    let signer = TestSigner::new();
    let response = upstream(&recorder)
        .send(request(
            &server.uri("/"),
            OutboundBody::Empty,
            signer.clone(),
            &policy(),
        ))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        response.headers()["retry-after"],
        "120",
        "the client sees when to come back"
    );
    assert_eq!(server.seen().len(), 1);
    assert_signed_afresh(&signer, &recorder, &server.seen());
}

#[tokio::test]
async fn retry_budget_stops_a_retry_storm() {
    let server = FakeUpstream::start(|_| answer(503, "down")).await;
    let recorder = Arc::new(Recorder::default());
    let signer = TestSigner::new();
    let mut p = policy();
    p.retry.base_backoff = Duration::from_millis(1);
    p.retry.budget_capacity = 20;
    p.retry.retry_cost = 5;
    let upstream = upstream(&recorder);
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let response = upstream
            .send(request(
                &server.uri("/"),
                OutboundBody::Empty,
                signer.clone(),
                &p,
            ))
            .await
            .unwrap();
        statuses.push(response.status());
    }
    assert!(statuses
        .iter()
        .all(|s| *s == StatusCode::SERVICE_UNAVAILABLE));
    // 20 tokens pay for 4 retries: two requests retry twice, then every later request
    // gets the upstream's answer after one attempt.
    assert_eq!(recorder.count("retry"), 4, "{:?}", recorder.events());
    assert_eq!(server.seen().len(), 6 + 4);
    assert_signed_afresh(&signer, &recorder, &server.seen());
    assert_eq!(recorder.count("budget_exhausted"), 4);
}

#[tokio::test]
async fn success_refills_the_retry_budget() {
    let fail = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let flag = fail.clone();
    let server = FakeUpstream::start(move |_| {
        if flag.load(Ordering::SeqCst) {
            answer(503, "down")
        } else {
            answer(200, "ok")
        }
    })
    .await;
    let recorder = Arc::new(Recorder::default());
    let signer = TestSigner::new();
    let mut p = policy();
    p.retry.base_backoff = Duration::from_millis(1);
    p.retry.max_attempts = 2;
    p.retry.budget_capacity = 10;
    p.retry.retry_cost = 5;
    p.retry.success_refund = 5;
    let upstream = upstream(&recorder);
    let send = || {
        upstream.send(request(
            &server.uri("/"),
            OutboundBody::Empty,
            signer.clone(),
            &p,
        ))
    };
    send().await.unwrap();
    send().await.unwrap();
    assert_eq!(recorder.count("retry"), 2, "budget now empty");
    fail.store(false, Ordering::SeqCst);
    assert_eq!(send().await.unwrap().status(), StatusCode::OK);
    fail.store(true, Ordering::SeqCst);
    send().await.unwrap();
    assert_eq!(
        recorder.count("retry"),
        3,
        "the success put back one retry's worth: {:?}",
        recorder.events()
    );
    assert_eq!(server.seen().len(), 2 + 2 + 1 + 2);
    assert_signed_afresh(&signer, &recorder, &server.seen());
}

#[tokio::test]
async fn adaptive_mode_retries_throttling_and_still_succeeds() {
    let server = FakeUpstream::start(|n| {
        if n % 2 == 0 {
            answer_with(400, &[("x-amzn-ErrorType", "ThrottlingException")], "")
        } else {
            answer(200, "ok")
        }
    })
    .await;
    let recorder = Arc::new(Recorder::default());
    let signer = TestSigner::new();
    let mut p = policy();
    p.retry.mode = RetryMode::Adaptive;
    let upstream = upstream(&recorder);
    for _ in 0..3 {
        let response = upstream
            .send(request(
                &server.uri("/"),
                OutboundBody::Empty,
                signer.clone(),
                &p,
            ))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert_eq!(recorder.count("retry:ThrottlingException"), 3);
    assert_eq!(server.seen().len(), 6);
    assert_signed_afresh(&signer, &recorder, &server.seen());
}

// ---------------------------------------------------------------------------
// Streamed uploads
// ---------------------------------------------------------------------------

fn streamed_body(chunks: &[&'static str]) -> OutboundBody {
    let frames: Vec<Result<Bytes, std::io::Error>> = chunks
        .iter()
        .map(|c| Ok(Bytes::from_static(c.as_bytes())))
        .collect();
    OutboundBody::Streaming(axum::body::Body::from_stream(futures_util::stream::iter(
        frames,
    )))
}

#[tokio::test]
async fn never_replays_a_streamed_upload_after_its_bytes_went_out() {
    let server = FakeUpstream::start(|_| answer(503, "try later")).await;
    let recorder = Arc::new(Recorder::default());
    let signer = TestSigner::new();
    let response = upstream(&recorder)
        .send(request(
            &server.uri("/upload"),
            streamed_body(&["part-1,", "part-2"]),
            signer.clone(),
            &policy(),
        ))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body_text(response).await, "try later");
    let seen = server.seen();
    assert_eq!(
        seen.len(),
        1,
        "a streamed body that went out is not replayable"
    );
    assert_eq!(&seen[0].body[..], b"part-1,part-2");
    assert_signed_afresh(&signer, &recorder, &seen);
    assert_eq!(recorder.count("retry"), 0);
}

#[tokio::test]
async fn replays_a_streamed_upload_that_failed_before_sending() {
    // The first attempt finds nothing listening (refused); the server starts on that
    // port while signet decides to retry, so the second attempt sends the whole body.
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = probe.local_addr().unwrap();
    drop(probe);
    let recorder = Arc::new(Recorder::default());
    let signer = TestSigner::new();
    let started: Arc<Mutex<Option<FakeUpstream>>> = Arc::default();
    let slot = started.clone();
    let runtime = tokio::runtime::Handle::current();
    *recorder.on_retry.lock().unwrap() = Some(Box::new(move || {
        let mut slot = slot.lock().unwrap();
        if slot.is_none() {
            let listener = std::net::TcpListener::bind(addr).unwrap();
            listener.set_nonblocking(true).unwrap();
            let _guard = runtime.enter();
            let listener = TcpListener::from_std(listener).unwrap();
            *slot = Some(FakeUpstream::serve(
                listener,
                Arc::new(|_| answer(200, "stored")),
                0,
            ));
        }
    }));
    let uri = format!("http://{addr}/upload");
    let response = upstream(&recorder)
        .send(request(
            &uri,
            streamed_body(&["alpha,", "beta"]),
            signer.clone(),
            &policy(),
        ))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body_text(response).await, "stored");
    assert_eq!(
        recorder.count("retry:connection"),
        1,
        "{:?}",
        recorder.events()
    );
    let server = started.lock().unwrap().take().unwrap();
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        &seen[0].body[..],
        b"alpha,beta",
        "the whole stream reached the upstream"
    );
    assert_signed_afresh(&signer, &recorder, &seen);
}

// ---------------------------------------------------------------------------
// Timeouts and failures
// ---------------------------------------------------------------------------

fn expect_timeout(
    result: Result<Response<signet::upstream::ResponseBody>, ForwardError>,
    kind: TimeoutKind,
) -> ForwardError {
    match result {
        Err(e @ ForwardError::Timeout { kind: k, .. }) if k == kind => e,
        Err(other) => panic!("expected {kind:?} timeout, got {other}"),
        Ok(response) => panic!("expected {kind:?} timeout, got {}", response.status()),
    }
}

#[tokio::test]
async fn first_byte_timeout_fires_with_its_name_and_is_retried() {
    let server = FakeUpstream::start(|_| Reply::Hang).await;
    let recorder = Arc::new(Recorder::default());
    let signer = TestSigner::new();
    let mut p = policy();
    p.retry.max_attempts = 2;
    p.timeouts.first_byte = Duration::from_millis(200);
    let result = upstream(&recorder)
        .send(request(
            &server.uri("/"),
            OutboundBody::Empty,
            signer.clone(),
            &p,
        ))
        .await;
    let error = expect_timeout(result, TimeoutKind::FirstByte);
    assert_eq!(error.to_string(), "first-byte timeout after 200ms");
    assert_eq!(error.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(error.kind(), "first_byte_timeout");
    assert_eq!(server.seen().len(), 2);
    assert_signed_afresh(&signer, &recorder, &server.seen());
    assert_eq!(recorder.count("timeout:first_byte_timeout"), 2);
    assert_eq!(recorder.count("retry:first_byte_timeout"), 1);
}

#[tokio::test]
async fn total_deadline_cuts_across_attempts() {
    let server = FakeUpstream::start(|_| Reply::Hang).await;
    let recorder = Arc::new(Recorder::default());
    let signer = TestSigner::new();
    let mut p = policy();
    p.timeouts.first_byte = Duration::from_secs(5);
    p.timeouts.total = Duration::from_millis(300);
    let started = Instant::now();
    let result = upstream(&recorder)
        .send(request(
            &server.uri("/"),
            OutboundBody::Empty,
            signer.clone(),
            &p,
        ))
        .await;
    let error = expect_timeout(result, TimeoutKind::Total);
    assert_eq!(error.to_string(), "total deadline after 300ms");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(server.seen().len(), 1, "the deadline is not retried");
    assert_signed_afresh(&signer, &recorder, &server.seen());
    assert_eq!(recorder.count("timeout:total_deadline"), 1);
}

#[tokio::test]
async fn connect_timeout_fires_when_the_handshake_never_completes() {
    // Accepts TCP but never speaks TLS: the handshake, part of connecting, hangs.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let recorder = Arc::new(Recorder::default());
    let signer = TestSigner::new();
    let mut p = policy();
    p.retry.max_attempts = 1;
    p.timeouts.connect = Duration::from_millis(200);
    let result = upstream(&recorder)
        .send(request(
            &format!("https://{addr}/"),
            OutboundBody::Empty,
            signer.clone(),
            &p,
        ))
        .await;
    let error = expect_timeout(result, TimeoutKind::Connect);
    assert_eq!(error.to_string(), "connect timeout after 200ms");
    assert_eq!(recorder.count("timeout:connect_timeout"), 1);
    assert_signed_afresh(&signer, &recorder, &[]);
}

#[tokio::test]
async fn idle_timeout_fires_between_body_frames_with_its_name() {
    let server = FakeUpstream::start(|_| Reply::Trickle {
        status: 200,
        chunks: vec![Bytes::from_static(b"first")],
        gap: Duration::ZERO,
        stall: true,
    })
    .await;
    let recorder = Arc::new(Recorder::default());
    let signer = TestSigner::new();
    let mut p = policy();
    p.timeouts.idle = Duration::from_millis(200);
    let response = upstream(&recorder)
        .send(request(
            &server.uri("/"),
            OutboundBody::Empty,
            signer.clone(),
            &p,
        ))
        .await
        .unwrap();
    let mut body = response.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(&first[..], b"first");
    match body.frame().await {
        Some(Err(
            e @ ForwardError::Timeout {
                kind: TimeoutKind::Idle,
                ..
            },
        )) => {
            assert_eq!(e.to_string(), "idle timeout after 200ms");
        }
        other => panic!("expected idle timeout, got {other:?}"),
    }
    assert_eq!(recorder.count("timeout:idle_timeout"), 1);
    assert_eq!(server.seen().len(), 1);
    assert_signed_afresh(&signer, &recorder, &server.seen());
}

#[tokio::test]
async fn streams_a_trickling_body_frame_by_frame() {
    let chunks: Vec<Bytes> = (0..5)
        .map(|i| Bytes::from(format!("event-{i}\n")))
        .collect();
    let server = FakeUpstream::start(move |_| Reply::Trickle {
        status: 200,
        chunks: chunks.clone(),
        gap: Duration::from_millis(100),
        stall: false,
    })
    .await;
    let recorder = Arc::new(Recorder::default());
    let signer = TestSigner::new();
    let mut p = policy();
    p.timeouts.idle = Duration::from_secs(2);
    let response = upstream(&recorder)
        .send(request(
            &server.uri("/events"),
            OutboundBody::Empty,
            signer.clone(),
            &p,
        ))
        .await
        .unwrap();
    let mut body = response.into_body();
    let started = Instant::now();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    let first_at = started.elapsed();
    assert_eq!(&first[..], b"event-0\n");
    let mut rest = Vec::new();
    while let Some(frame) = body.frame().await {
        rest.extend_from_slice(&frame.unwrap().into_data().unwrap());
    }
    let all_at = started.elapsed();
    assert_eq!(
        String::from_utf8(rest).unwrap(),
        "event-1\nevent-2\nevent-3\nevent-4\n"
    );
    assert!(
        all_at >= first_at + Duration::from_millis(300),
        "first frame must arrive before the stream ends"
    );
    assert_eq!(server.seen().len(), 1);
    assert_signed_afresh(&signer, &recorder, &server.seen());
}

#[tokio::test]
async fn unreachable_upstream_answers_502_after_retries() {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = probe.local_addr().unwrap();
    drop(probe);
    let recorder = Arc::new(Recorder::default());
    let signer = TestSigner::new();
    let result = upstream(&recorder)
        .send(request(
            &format!("http://{addr}/"),
            OutboundBody::Empty,
            signer.clone(),
            &policy(),
        ))
        .await;
    let error = result.unwrap_err();
    assert!(matches!(error, ForwardError::Unreachable(_)), "{error}");
    assert_eq!(error.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(error.kind(), "upstream_unreachable");
    assert!(
        error.to_string().to_lowercase().contains("refused"),
        "{error}"
    );
    assert_eq!(recorder.count("attempt"), 3);
    assert_signed_afresh(&signer, &recorder, &[]);
}

#[tokio::test]
async fn signing_failure_is_never_sent_and_maps_to_503() {
    struct NoCredentials;
    impl AttemptSigner for NoCredentials {
        fn sign(&self, _: &mut http::request::Parts) -> Result<(), SignFailure> {
            Err(SignFailure::CredentialsUnavailable(
                "no valid credentials for source default".into(),
            ))
        }
    }
    let server = FakeUpstream::start(|_| answer(200, "ok")).await;
    let recorder = Arc::new(Recorder::default());
    let mut req = request(
        &server.uri("/"),
        OutboundBody::Empty,
        TestSigner::new(),
        &policy(),
    );
    req.signer = Arc::new(NoCredentials);
    let error = upstream(&recorder).send(req).await.unwrap_err();
    assert_eq!(error.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error.kind(), "credentials_unavailable");
    assert!(
        server.seen().is_empty(),
        "nothing unsigned reaches the upstream"
    );
}

// ---------------------------------------------------------------------------
// Load shedding
// ---------------------------------------------------------------------------

#[tokio::test]
async fn sheds_a_burst_past_the_in_flight_limit_with_retry_after() {
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let gate = release.clone();
    let server = FakeUpstream::start(move |_| Reply::WaitFor(gate.clone())).await;
    let recorder = Arc::new(Recorder::default());
    let mut p = policy();
    p.limits.max_in_flight = 3;
    p.limits.shed_retry_after = Duration::from_secs(2);
    let upstream = upstream(&recorder);
    let signer = TestSigner::new();
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let upstream = upstream.clone();
        let req = request(&server.uri("/"), OutboundBody::Empty, signer.clone(), &p);
        tasks.push(tokio::spawn(async move { upstream.send(req).await }));
    }
    // Wait until the admitted requests reach the upstream, then let them finish.
    for _ in 0..250 {
        if server.seen().len() == 3 && recorder.count("shed") == 7 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    release.add_permits(10);
    let mut ok = 0;
    let mut shed = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(response) => {
                assert_eq!(body_text(response).await, "released");
                ok += 1;
            }
            Err(e) => {
                assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
                assert_eq!(e.kind(), "overloaded");
                assert_eq!(e.retry_after(), Some(Duration::from_secs(2)));
                shed += 1;
            }
        }
    }
    assert_eq!((ok, shed), (3, 7));
    assert_eq!(
        server.seen().len(),
        3,
        "shed requests never reach the upstream"
    );
    assert_eq!(recorder.count("shed"), 7);
    // Concurrent, so arrival order need not be signing order: no ordering checks.
    assert_all_signed(&server.seen());
    assert_eq!(
        signer.calls.load(Ordering::SeqCst),
        3,
        "only admitted requests are signed"
    );
}

#[tokio::test]
async fn a_request_counts_in_flight_until_its_body_ends() {
    let server = FakeUpstream::start(|_| answer(200, "body")).await;
    let recorder = Arc::new(Recorder::default());
    let mut p = policy();
    p.limits.max_in_flight = 1;
    let upstream = upstream(&recorder);
    let signer = TestSigner::new();
    let send = || {
        upstream.send(request(
            &server.uri("/"),
            OutboundBody::Empty,
            signer.clone(),
            &p,
        ))
    };
    let first = send().await.unwrap();
    let second = send().await;
    assert!(
        matches!(second, Err(ForwardError::Shed { .. })),
        "head received, body unread: still in flight"
    );
    assert_eq!(body_text(first).await, "body");
    let third = send().await.unwrap();
    assert_eq!(third.status(), StatusCode::OK);
    assert_eq!(server.seen().len(), 2, "the shed request never reached it");
    assert_signed_afresh(&signer, &recorder, &server.seen());
}
