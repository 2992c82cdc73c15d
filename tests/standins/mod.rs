//! Local stand-ins for the AWS credential endpoints, on 127.0.0.1:
//! IMDSv2, the ECS/EKS container credentials endpoint, and STS.
//!
//! Each runs on its own thread and runtime, so it keeps answering whether the
//! test is async, blocking on a child process, or running signet's binary.
//! Every stand-in hands out fresh, unique keys and remembers them, so a test
//! can tell exactly which issued key signed a request and whether it was
//! still valid at that moment.

#![allow(dead_code)]

// Test crates that use both this module and `tests/common` load two copies; each
// is self-contained.
#[allow(clippy::duplicate_mod)]
#[path = "../verify/mod.rs"]
mod verify;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use verify::Refusal;

/// One set of credentials a stand-in issued.
#[derive(Clone, Debug)]
pub struct Issued {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    pub issued_at: SystemTime,
    pub expires_at: SystemTime,
}

type IssueHook = Box<dyn Fn(&Issued) + Send + Sync>;

/// A secret access key and its session token, if any.
type KeyEntry = (String, Option<String>);

/// The knobs and records every stand-in shares.
#[derive(Clone)]
pub struct Control {
    inner: Arc<ControlInner>,
}

struct ControlInner {
    prefix: String,
    counter: AtomicU64,
    lifetime_ms: AtomicU64,
    delay_ms: AtomicU64,
    available: AtomicBool,
    issued: Mutex<Vec<Issued>>,
    requests: Mutex<Vec<(String, String)>>,
    on_issue: Mutex<Option<IssueHook>>,
    /// Keys this stand-in accepts signatures from besides its own issued keys
    /// (only STS checks signatures).
    trusted: Mutex<HashMap<String, KeyEntry>>,
    /// Other stand-ins whose issued keys this one accepts signatures from.
    issuers: Mutex<Vec<Control>>,
}

impl Control {
    fn new(prefix: &str, lifetime: Duration) -> Self {
        Control {
            inner: Arc::new(ControlInner {
                prefix: prefix.to_owned(),
                counter: AtomicU64::new(0),
                lifetime_ms: AtomicU64::new(lifetime.as_millis() as u64),
                delay_ms: AtomicU64::new(0),
                available: AtomicBool::new(true),
                issued: Mutex::new(Vec::new()),
                requests: Mutex::new(Vec::new()),
                on_issue: Mutex::new(None),
                trusted: Mutex::new(HashMap::new()),
                issuers: Mutex::new(Vec::new()),
            }),
        }
    }

    /// How long newly issued credentials stay valid.
    pub fn set_lifetime(&self, lifetime: Duration) {
        self.inner
            .lifetime_ms
            .store(lifetime.as_millis() as u64, Ordering::SeqCst);
    }

    /// Delay every answer by this much (a slow metadata server).
    pub fn set_delay(&self, delay: Duration) {
        self.inner
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// When unavailable, every request gets 503.
    pub fn set_available(&self, available: bool) {
        self.inner.available.store(available, Ordering::SeqCst);
    }

    /// Called with every newly issued key (e.g. to teach a verifying upstream).
    pub fn on_issue(&self, f: impl Fn(&Issued) + Send + Sync + 'static) {
        *self.inner.on_issue.lock().unwrap() = Some(Box::new(f));
    }

    /// Every key issued so far, oldest first.
    pub fn issued(&self) -> Vec<Issued> {
        self.inner.issued.lock().unwrap().clone()
    }

    /// The issued key with this id.
    pub fn find(&self, access_key_id: &str) -> Option<Issued> {
        self.issued()
            .into_iter()
            .find(|i| i.access_key_id == access_key_id)
    }

    /// Accept signatures by `access_key_id` made with `secret` (and, if it is
    /// temporary, sent with `session_token`).
    pub fn trust_key(&self, access_key_id: &str, secret: &str, session_token: Option<&str>) {
        self.inner.trusted.lock().unwrap().insert(
            access_key_id.to_owned(),
            (secret.to_owned(), session_token.map(str::to_owned)),
        );
    }

    /// Accept signatures by any key `issuer` (another stand-in) hands out.
    pub fn trust_issued_by(&self, issuer: &Control) {
        self.inner.issuers.lock().unwrap().push(issuer.clone());
    }

    /// The secret and session token of a key this stand-in accepts signatures
    /// from: one it issued, one it was told to trust, or one a trusted issuer
    /// handed out.
    fn known_key(&self, access_key_id: &str) -> Option<KeyEntry> {
        let issued = |c: &Control| {
            c.find(access_key_id)
                .map(|i| (i.secret_access_key, Some(i.session_token)))
        };
        issued(self)
            .or_else(|| {
                let trusted = self.inner.trusted.lock().unwrap();
                trusted.get(access_key_id).cloned()
            })
            .or_else(|| {
                let issuers = self.inner.issuers.lock().unwrap().clone();
                issuers.iter().find_map(issued)
            })
    }

    /// Every request seen, as (method, path).
    pub fn requests(&self) -> Vec<(String, String)> {
        self.inner.requests.lock().unwrap().clone()
    }

    fn issue(&self) -> Issued {
        let n = self.inner.counter.fetch_add(1, Ordering::SeqCst) + 1;
        let now = SystemTime::now();
        let issued = Issued {
            access_key_id: format!("{}{:0>12}", self.inner.prefix, n),
            secret_access_key: format!(
                "{}/secret/{n:0>8}/abcdefghijklmnopqrstu",
                self.inner.prefix
            ),
            session_token: format!("{}-session-token-{n}", self.inner.prefix),
            issued_at: now,
            // Expirations travel as whole seconds; record what the client reads.
            expires_at: whole_seconds(
                now + Duration::from_millis(self.inner.lifetime_ms.load(Ordering::SeqCst)),
            ),
        };
        if let Some(f) = &*self.inner.on_issue.lock().unwrap() {
            f(&issued);
        }
        self.inner.issued.lock().unwrap().push(issued.clone());
        issued
    }
}

fn whole_seconds(t: SystemTime) -> SystemTime {
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

/// `2026-11-23T05:00:00Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // civil from days (Howard Hinnant)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A parsed request handed to a stand-in's logic.
pub struct StandInRequest {
    pub method: String,
    pub path: String,
    pub headers: http::HeaderMap,
    pub body: String,
}

type Logic = Arc<dyn Fn(&Control, &StandInRequest) -> (StatusCode, String) + Send + Sync>;

/// A running stand-in; stops when dropped.
pub struct StandIn {
    pub addr: SocketAddr,
    pub control: Control,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StandIn {
    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(control: Control, logic: Logic) -> StandIn {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let c = control.clone();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let stream = tokio::select! {
                    _ = &mut stop_rx => return,
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => stream,
                        Err(_) => continue,
                    },
                };
                let (c, logic) = (c.clone(), logic.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let (c, logic) = (c.clone(), logic.clone());
                        async move { Ok::<_, Infallible>(answer(req, &c, &logic).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
    });
    StandIn {
        addr,
        control,
        stop: Some(stop_tx),
        thread: Some(thread),
    }
}

async fn answer(req: Request<Incoming>, control: &Control, logic: &Logic) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let incoming = StandInRequest {
        method: parts.method.to_string(),
        path: parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default(),
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    control
        .inner
        .requests
        .lock()
        .unwrap()
        .push((incoming.method.clone(), incoming.path.clone()));
    let delay = control.inner.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let (status, text) = if control.inner.available.load(Ordering::SeqCst) {
        logic(control, &incoming)
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "stand-in is down".to_owned(),
        )
    };
    let mut response = Response::builder().status(status);
    // IMDSv2 answers a token request with the granted TTL.
    if let Some(ttl) = incoming.headers.get("x-aws-ec2-metadata-token-ttl-seconds") {
        response = response.header("x-aws-ec2-metadata-token-ttl-seconds", ttl);
    }
    response.body(Full::new(Bytes::from(text))).unwrap()
}

/// IMDSv2: `PUT /latest/api/token`, then the role listing and the role's
/// credentials JSON, each requiring the token. Keys start with `ASIAIMDS`.
pub fn imds(lifetime: Duration) -> StandIn {
    let control = Control::new("ASIAIMDS", lifetime);
    let tokens: Arc<Mutex<Vec<String>>> = Arc::default();
    let logic: Logic = Arc::new(move |control, req| {
        const ROLE: &str = "signet-instance-role";
        if req.method == "PUT" && req.path == "/latest/api/token" {
            if req
                .headers
                .get("x-aws-ec2-metadata-token-ttl-seconds")
                .is_none()
            {
                return (StatusCode::BAD_REQUEST, "missing ttl".into());
            }
            let mut tokens = tokens.lock().unwrap();
            let token = format!("imds-token-{}", tokens.len() + 1);
            tokens.push(token.clone());
            return (StatusCode::OK, token);
        }
        let token_ok = req
            .headers
            .get("x-aws-ec2-metadata-token")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| tokens.lock().unwrap().iter().any(|known| known == t));
        if !token_ok {
            return (StatusCode::UNAUTHORIZED, String::new());
        }
        match req.path.as_str() {
            "/latest/meta-data/iam/security-credentials/" => (StatusCode::OK, ROLE.into()),
            p if p == format!("/latest/meta-data/iam/security-credentials/{ROLE}") => {
                let issued = control.issue();
                (StatusCode::OK, credentials_json(&issued, true))
            }
            _ => (StatusCode::NOT_FOUND, String::new()),
        }
    });
    serve(control, logic)
}

fn credentials_json(issued: &Issued, imds_shape: bool) -> String {
    let mut v = serde_json::json!({
        "AccessKeyId": issued.access_key_id,
        "SecretAccessKey": issued.secret_access_key,
        "Token": issued.session_token,
        "Expiration": rfc3339(issued.expires_at),
    });
    if imds_shape {
        v["Code"] = "Success".into();
        v["Type"] = "AWS-HMAC".into();
        v["LastUpdated"] = rfc3339(issued.issued_at).into();
    }
    v.to_string()
}

/// The ECS / EKS Pod Identity container endpoint. Every request must carry
/// `Authorization: <token>` equal to `expected_token()`; keys start with `ASIACONT`.
pub fn container(lifetime: Duration, token: Arc<Mutex<String>>) -> StandIn {
    let control = Control::new("ASIACONT", lifetime);
    let logic: Logic = Arc::new(move |control, req| {
        let sent = req
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if sent != token.lock().unwrap().trim() {
            return (
                StatusCode::FORBIDDEN,
                r#"{"Code":"AccessDenied","Message":"bad token"}"#.into(),
            );
        }
        if req.method != "GET" {
            return (StatusCode::METHOD_NOT_ALLOWED, String::new());
        }
        let issued = control.issue();
        (StatusCode::OK, credentials_json(&issued, false))
    });
    serve(control, logic)
}

/// The IAM Identity Center (SSO) portal's GetRoleCredentials, which `aws sso
/// login`'s cached token unlocks. Requests must carry `bearer` in
/// `x-amz-sso_bearer_token`; keys start with `ASIASSO0`.
pub fn sso(lifetime: Duration, bearer: &str) -> StandIn {
    let control = Control::new("ASIASSO0", lifetime);
    let bearer = bearer.to_owned();
    let logic: Logic = Arc::new(move |control, req| {
        let sent = req
            .headers
            .get("x-amz-sso_bearer_token")
            .and_then(|v| v.to_str().ok());
        if sent != Some(bearer.as_str()) {
            return (
                StatusCode::UNAUTHORIZED,
                r#"{"message":"Session token not found or invalid"}"#.into(),
            );
        }
        if !req.path.starts_with("/federation/credentials?") {
            return (StatusCode::NOT_FOUND, String::new());
        }
        let issued = control.issue();
        let millis = issued
            .expires_at
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let body = serde_json::json!({
            "roleCredentials": {
                "accessKeyId": issued.access_key_id,
                "secretAccessKey": issued.secret_access_key,
                "sessionToken": issued.session_token,
                "expiration": millis,
            }
        });
        (StatusCode::OK, body.to_string())
    });
    serve(control, logic)
}

/// A call STS received.
#[derive(Clone, Debug)]
pub struct StsCall {
    pub action: String,
    pub params: HashMap<String, String>,
    /// Access key id whose SigV4 signature STS verified (signed calls only).
    pub signed_by: Option<String>,
    /// Why STS rejected the call's signature, if it did.
    pub rejected: Option<String>,
    /// The key issued in answer, if any.
    pub issued: Option<String>,
}

/// STS: AssumeRole (signed), AssumeRoleWithWebIdentity (unsigned, needs a
/// `WebIdentityToken`), GetCallerIdentity (signed). Keys start with `ASIASTS0`.
/// Returns the stand-in and the log of calls.
///
/// Every signed call's SigV4 signature is recomputed with the `aws-sigv4`
/// crate against the secret of the key it names: a key STS issued itself, one
/// given to [`Control::trust_key`], or one a stand-in given to
/// [`Control::trust_issued_by`] issued. A call that does not verify gets 403
/// `SignatureDoesNotMatch` (`InvalidClientTokenId` for an unknown key or a
/// wrong session token), as STS answers, and is logged with `rejected` set.
pub fn sts(lifetime: Duration) -> (StandIn, Arc<Mutex<Vec<StsCall>>>) {
    let control = Control::new("ASIASTS0", lifetime);
    let calls: Arc<Mutex<Vec<StsCall>>> = Arc::default();
    let log = calls.clone();
    let logic: Logic = Arc::new(move |control, req| {
        let params = parse_form(&req.body);
        let action = params.get("Action").cloned().unwrap_or_default();
        let mut call = StsCall {
            action: action.clone(),
            params: params.clone(),
            signed_by: None,
            rejected: None,
            issued: None,
        };
        // Unsigned calls (AssumeRoleWithWebIdentity) carry no Authorization.
        if req.headers.contains_key("authorization") {
            match verify_sts_signature(control, req) {
                Ok(key) => call.signed_by = Some(key),
                Err((code, message)) => {
                    call.rejected = Some(format!("{code}: {message}"));
                    log.lock().unwrap().push(call);
                    return (StatusCode::FORBIDDEN, sts_error_with(code, &message));
                }
            }
        }
        let signed_by = call.signed_by.clone();
        let answer = match action.as_str() {
            "AssumeRole" | "AssumeRoleWithWebIdentity" => {
                if action == "AssumeRole" && signed_by.is_none() {
                    (StatusCode::FORBIDDEN, sts_error("MissingAuthenticationToken"))
                } else if action == "AssumeRoleWithWebIdentity"
                    && params.get("WebIdentityToken").is_none_or(|t| t.is_empty())
                {
                    (StatusCode::BAD_REQUEST, sts_error("InvalidIdentityToken"))
                } else {
                    let role = params.get("RoleArn").cloned().unwrap_or_default();
                    let session = params.get("RoleSessionName").cloned().unwrap_or_default();
                    let issued = control.issue();
                    call.issued = Some(issued.access_key_id.clone());
                    (StatusCode::OK, assume_role_xml(&action, &issued, &role, &session))
                }
            }
            "GetCallerIdentity" => match &signed_by {
                Some(key) => (
                    StatusCode::OK,
                    format!(
                        "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
<GetCallerIdentityResult><Arn>arn:aws:sts::123456789012:assumed-role/signet-test/{key}</Arn>\
<UserId>AROASTANDIN:{key}</UserId><Account>123456789012</Account></GetCallerIdentityResult>\
<ResponseMetadata><RequestId>standin</RequestId></ResponseMetadata></GetCallerIdentityResponse>"
                    ),
                ),
                None => (StatusCode::FORBIDDEN, sts_error("MissingAuthenticationToken")),
            },
            _ => (StatusCode::BAD_REQUEST, sts_error("InvalidAction")),
        };
        log.lock().unwrap().push(call);
        answer
    });
    (serve(control, logic), calls)
}

/// Checks an STS call's SigV4 signature (`tests/verify`, recomputed with the
/// `aws-sigv4` crate) against the secret of the key it names. Returns that key,
/// or the STS error code and message to reject the call with.
fn verify_sts_signature(
    control: &Control,
    req: &StandInRequest,
) -> Result<String, (&'static str, String)> {
    let invalid_token = "The security token included in the request is invalid";
    let (mut head, ()) = http::Request::builder()
        .method(req.method.as_str())
        .uri(req.path.as_str())
        .body(())
        .map_err(|e| ("SignatureDoesNotMatch", e.to_string()))?
        .into_parts();
    head.headers = req.headers.clone();
    let verified = verify::verify(&head, req.body.as_bytes(), |akid| control.known_key(akid))
        .map_err(|refusal| match refusal {
            Refusal::UnknownKey(akid) => {
                ("InvalidClientTokenId", format!("{invalid_token}: unknown key {akid}"))
            }
            Refusal::WrongToken => ("InvalidClientTokenId", invalid_token.to_string()),
            Refusal::Bad(reason) => (
                "SignatureDoesNotMatch",
                format!(
                    "The request signature we calculated does not match the signature you provided: {reason}"
                ),
            ),
        })?;
    if verified.service != "sts" {
        return Err((
            "SignatureDoesNotMatch",
            format!("credential scoped to {}, not sts", verified.service),
        ));
    }
    Ok(verified.akid)
}

fn sts_error(code: &str) -> String {
    sts_error_with(code, code)
}

fn sts_error_with(code: &str, message: &str) -> String {
    let message = message
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    format!(
        "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type>\
<Code>{code}</Code><Message>{message}</Message></Error><RequestId>standin</RequestId></ErrorResponse>"
    )
}

fn assume_role_xml(action: &str, issued: &Issued, role_arn: &str, session: &str) -> String {
    let role_name = role_arn.rsplit('/').next().unwrap_or("role");
    format!(
        "<{action}Response xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><{action}Result>\
<Credentials><AccessKeyId>{}</AccessKeyId><SecretAccessKey>{}</SecretAccessKey>\
<SessionToken>{}</SessionToken><Expiration>{}</Expiration></Credentials>\
<AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/{role_name}/{session}</Arn>\
<AssumedRoleId>AROASTANDIN:{session}</AssumedRoleId></AssumedRoleUser>\
</{action}Result><ResponseMetadata><RequestId>standin</RequestId></ResponseMetadata></{action}Response>",
        issued.access_key_id,
        issued.secret_access_key,
        issued.session_token,
        rfc3339(issued.expires_at)
    )
}

/// Decodes an `application/x-www-form-urlencoded` body.
pub fn parse_form(body: &str) -> HashMap<String, String> {
    body.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let dec = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (dec(k), dec(v))
        })
        .collect()
}

#[test]
fn parse_amz_date_inverts_rfc3339() {
    for secs in [0, 951_782_400, 1_709_251_199, 1_790_000_000] {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        let amz = rfc3339(t).replace(['-', ':'], "");
        assert_eq!(verify::parse_amz_date(&amz), Some(t), "{amz}");
    }
    assert_eq!(verify::parse_amz_date("20240229T235959"), None);
}

#[test]
fn rfc3339_formats_known_instants() {
    assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00Z");
    assert_eq!(
        rfc3339(SystemTime::UNIX_EPOCH + Duration::from_secs(1_709_251_199)),
        "2024-02-29T23:59:59Z"
    );
}

/// Signs a form POST to `url` with signet's signer, as of `time`, then lets
/// `tamper` change it before it is sent; returns STS's status and body.
async fn post_signed(
    url: &str,
    body: &str,
    (key, secret, token): (&str, &str, Option<&str>),
    time: SystemTime,
    tamper: impl FnOnce(&mut Request<Full<Bytes>>),
) -> (StatusCode, String) {
    use signet::sigv4;
    let credentials = sigv4::Credentials {
        access_key_id: key.to_owned(),
        secret_access_key: secret.to_owned(),
        session_token: token.map(str::to_owned),
    };
    let settings = sigv4::SigningSettings::for_service("sts");
    let params = sigv4::SigningParams {
        credentials: &credentials,
        region: "us-east-1",
        service: "sts",
        time: sigv4::AmzDate::from_system_time(time).unwrap(),
        settings: &settings,
    };
    let mut request = Request::post(format!("{url}/"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("host", url.trim_start_matches("http://"))
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    sigv4::Signer::new()
        .sign_http_request(
            &mut request,
            sigv4::PayloadHash::Bytes(body.as_bytes()),
            &params,
        )
        .unwrap();
    tamper(&mut request);
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http();
    let response = client.request(request).await.unwrap();
    let status = response.status();
    let text = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&text).into_owned())
}

#[tokio::test]
async fn sts_standin_verifies_every_signed_call() {
    const ASSUME: &str = "Action=AssumeRole&Version=2011-06-15\
&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fself-test&RoleSessionName=s";
    let (sts, calls) = sts(Duration::from_secs(3600));
    let imds = imds(Duration::from_secs(3600));
    sts.control
        .trust_key("AKIASTANDINTEST00001", "the-right-secret", None);
    sts.control.trust_issued_by(&imds.control);
    let now = SystemTime::now();
    let good = ("AKIASTANDINTEST00001", "the-right-secret", None);
    let url = sts.url();
    let rejected = |(status, body): (StatusCode, String), code: &str| {
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert!(body.contains(&format!("<Code>{code}</Code>")), "{body}");
    };

    let (status, body) = post_signed(&url, ASSUME, good, now, |_| ()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The key STS just issued signs the next call (a role chain).
    let issued = sts.control.issued()[0].clone();
    let chained = (
        issued.access_key_id.as_str(),
        issued.secret_access_key.as_str(),
        Some(issued.session_token.as_str()),
    );
    let (status, body) = post_signed(&url, ASSUME, chained, now, |_| ()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let wrong_token = (chained.0, chained.1, Some("another-session-token"));
    rejected(
        post_signed(&url, ASSUME, wrong_token, now, |_| ()).await,
        "InvalidClientTokenId",
    );
    // A key another stand-in issued, once trusted.
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let token_request = Request::put(format!("{}/latest/api/token", imds.url()))
        .header("x-aws-ec2-metadata-token-ttl-seconds", "60")
        .body(Full::default())
        .unwrap();
    let token = client.request(token_request).await.unwrap();
    let token = token.into_body().collect().await.unwrap().to_bytes();
    let role_request = Request::get(format!(
        "{}/latest/meta-data/iam/security-credentials/signet-instance-role",
        imds.url()
    ))
    .header(
        "x-aws-ec2-metadata-token",
        String::from_utf8_lossy(&token).as_ref(),
    )
    .body(Full::default())
    .unwrap();
    assert!(client
        .request(role_request)
        .await
        .unwrap()
        .status()
        .is_success());
    let instance = imds.control.issued()[0].clone();
    let from_imds = (
        instance.access_key_id.as_str(),
        instance.secret_access_key.as_str(),
        Some(instance.session_token.as_str()),
    );
    let identity = "Action=GetCallerIdentity&Version=2011-06-15";
    let (status, body) = post_signed(&url, identity, from_imds, now, |_| ()).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let wrong_secret = ("AKIASTANDINTEST00001", "a-wrong-secret", None);
    rejected(
        post_signed(&url, ASSUME, wrong_secret, now, |_| ()).await,
        "SignatureDoesNotMatch",
    );
    rejected(
        post_signed(&url, identity, wrong_secret, now, |_| ()).await,
        "SignatureDoesNotMatch",
    );
    let unknown = ("AKIASTANDINUNKNOWN01", "the-right-secret", None);
    rejected(
        post_signed(&url, ASSUME, unknown, now, |_| ()).await,
        "InvalidClientTokenId",
    );
    rejected(
        post_signed(&url, ASSUME, good, now, |r| {
            *r.body_mut() = Full::new(Bytes::from(ASSUME.replace("self-test", "admin")));
        })
        .await,
        "SignatureDoesNotMatch",
    );
    let stale = now - Duration::from_secs(16 * 60);
    rejected(
        post_signed(&url, ASSUME, good, stale, |_| ()).await,
        "SignatureDoesNotMatch",
    );
    // Unsigned calls: AssumeRole needs a signature, the web identity exchange does not.
    rejected(
        post_signed(&url, ASSUME, good, now, |r| {
            r.headers_mut().remove("authorization");
        })
        .await,
        "MissingAuthenticationToken",
    );
    let web = "Action=AssumeRoleWithWebIdentity&Version=2011-06-15\
&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fweb&WebIdentityToken=eyJ.x.y";
    let (status, body) = post_signed(&url, web, good, now, |r| {
        r.headers_mut().remove("authorization");
    })
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let calls = calls.lock().unwrap().clone();
    let verdicts: Vec<_> = calls
        .iter()
        .map(|c| {
            (
                c.signed_by.is_some(),
                c.rejected.is_some(),
                c.issued.is_some(),
            )
        })
        .collect();
    assert_eq!(
        verdicts,
        [
            (true, false, true),
            (true, false, true),
            (false, true, false),
            (true, false, false),
            (false, true, false),
            (false, true, false),
            (false, true, false),
            (false, true, false),
            (false, true, false),
            (false, false, false),
            (false, false, true),
        ],
        "{calls:#?}"
    );
    assert_eq!(calls[1].signed_by.as_deref(), Some(chained.0));
    assert_eq!(calls[3].signed_by.as_deref(), Some(from_imds.0));
}
