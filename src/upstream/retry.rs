//! Retries: which outcomes are retried, backoff, the retry budget, Retry-After,
//! and the adaptive client-side rate limiter.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use http_body::Body;
use http_body_util::BodyExt;
use rand::Rng;
use tokio::time::Instant;

use super::attempt::{send_attempt, Attempt};
use super::body::BodySource;
use super::client::Pool;
use super::error::{ForwardError, TimeoutKind};
use super::settings::{RetryMode, RetrySettings};
use super::sweep::SweepAt;
use super::{OutboundRequest, ResponseBody, UpstreamObserver};

/// Largest error body read to find its error code (only with a known length).
pub(crate) const MAX_CLASSIFIED_BODY: u64 = 64 * 1024;

/// AWS error codes that mean "slow down".
const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
];

/// AWS error codes of transient failures worth retrying.
const TRANSIENT_CODES: &[&str] = &[
    "RequestTimeout",
    "RequestTimeoutException",
    "IDPCommunicationError",
];

/// How an AWS error code is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// A throttling error: retried, and it slows the adaptive rate limiter.
    Throttling,
    /// A transient error: retried.
    Transient,
    /// Anything else: not retried because of its code (its status may still be).
    Other,
}

/// Classifies an AWS error code (`"SlowDown"`, `"ThrottlingException"`, ...).
///
/// ```
/// use signet::upstream::{classify_error_code, ErrorClass};
/// assert_eq!(classify_error_code("SlowDown"), ErrorClass::Throttling);
/// assert_eq!(classify_error_code("RequestTimeout"), ErrorClass::Transient);
/// assert_eq!(classify_error_code("AccessDenied"), ErrorClass::Other);
/// ```
pub fn classify_error_code(code: &str) -> ErrorClass {
    if THROTTLING_CODES.contains(&code) {
        ErrorClass::Throttling
    } else if TRANSIENT_CODES.contains(&code) {
        ErrorClass::Transient
    } else {
        ErrorClass::Other
    }
}

/// The upper bound of the full-jitter delay before retry `retry` (1 = first retry):
/// `min(max_backoff, base_backoff * 2^(retry-1))`. The delay itself is uniform in
/// `[0, bound]`.
///
/// ```
/// use std::time::Duration;
/// use signet::upstream::{backoff_bound, RetrySettings};
/// let s = RetrySettings::default();
/// assert_eq!(backoff_bound(&s, 1), Duration::from_millis(100));
/// assert_eq!(backoff_bound(&s, 3), Duration::from_millis(400));
/// assert_eq!(backoff_bound(&s, 30), Duration::from_secs(20));
/// ```
pub fn backoff_bound(settings: &RetrySettings, retry: u32) -> Duration {
    let exponent = retry.saturating_sub(1).min(31);
    settings
        .base_backoff
        .checked_mul(1u32 << exponent)
        .map_or(settings.max_backoff, |d| d.min(settings.max_backoff))
}

fn jittered(bound: Duration) -> Duration {
    let nanos = u64::try_from(bound.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rand::rng().random_range(0..=nanos))
}

/// The error code of an AWS error response: `x-amzn-ErrorType` first, then the body
/// (JSON `__type` / `code`, XML `<Code>`).
pub(crate) fn error_code(headers: &http::HeaderMap, body: Option<&[u8]>) -> Option<String> {
    if let Some(value) = headers
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
    {
        let code = value.split(':').next().unwrap_or(value).trim();
        if !code.is_empty() {
            return Some(code.to_owned());
        }
    }
    let body = body?;
    let trimmed = body.trim_ascii_start();
    if trimmed.starts_with(b"{") {
        let value: serde_json::Value = serde_json::from_slice(trimmed).ok()?;
        let code = ["__type", "code", "Code"]
            .iter()
            .find_map(|k| value.get(k).and_then(|v| v.as_str()))?;
        // "com.amazon.coral.service#ThrottlingException" → "ThrottlingException"
        let code = code.rsplit('#').next().unwrap_or(code);
        let code = code.split(':').next().unwrap_or(code).trim();
        return (!code.is_empty()).then(|| code.to_owned());
    }
    if trimmed.starts_with(b"<") {
        let text = std::str::from_utf8(trimmed).ok()?;
        let code = xml_element(text, "Code")?;
        return (!code.is_empty()).then(|| code.to_owned());
    }
    None
}

/// The text of the first `<tag>...</tag>` element in `xml`.
pub(crate) fn xml_element<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&close)?;
    Some(xml[start..end].trim())
}

/// Parses Retry-After: delay seconds or an HTTP date.
pub(crate) fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    let value = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// What one attempt's outcome means for the retry loop.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Verdict {
    /// Why to retry (metrics label), or `None` when the outcome is final.
    reason: Option<String>,
    /// The upstream throttled us (for the adaptive limiter).
    throttled: bool,
    /// A timeout: retrying costs more budget.
    timeout: bool,
    /// Upstream's Retry-After.
    retry_after: Option<Duration>,
    /// The AWS error code of an error answer, when one was read.
    code: Option<String>,
}

impl Verdict {
    fn final_() -> Self {
        Self {
            reason: None,
            throttled: false,
            timeout: false,
            retry_after: None,
            code: None,
        }
    }
}

fn judge_error(error: &ForwardError) -> Verdict {
    let (reason, timeout) = match error {
        ForwardError::Unreachable(_) | ForwardError::Connection(_) => ("connection", false),
        // The total deadline is final; every other timeout is worth a retry.
        ForwardError::Timeout { kind, .. } if *kind != TimeoutKind::Total => (kind.as_str(), true),
        _ => return Verdict::final_(),
    };
    Verdict {
        reason: Some(reason.to_owned()),
        throttled: false,
        timeout,
        retry_after: None,
        code: None,
    }
}

fn judge_response(
    status: http::StatusCode,
    headers: &http::HeaderMap,
    code: Option<&str>,
) -> Verdict {
    let class = code.map_or(ErrorClass::Other, classify_error_code);
    let retry_status = matches!(status.as_u16(), 429 | 500 | 502 | 503 | 504);
    if !retry_status && class == ErrorClass::Other {
        return Verdict::final_();
    }
    let reason = match code {
        Some(code) if class != ErrorClass::Other => code.to_owned(),
        _ => format!("http_{}", status.as_u16()),
    };
    Verdict {
        reason: Some(reason),
        throttled: class == ErrorClass::Throttling || status.as_u16() == 429,
        timeout: false,
        retry_after: retry_after(headers),
        code: None,
    }
}

/// Reads up to [`MAX_CLASSIFIED_BODY`] of an error body to find its error code, and
/// puts the same frames back in front of the rest. Bodies known to be larger are not
/// read at all; a body of unknown length that turns out larger is handed back as
/// read-so-far plus the remaining stream, unclassified.
async fn classify_response(
    response: http::Response<ResponseBody>,
) -> Result<(http::Response<ResponseBody>, Verdict), ForwardError> {
    if response.status().as_u16() < 400 {
        return Ok((response, Verdict::final_()));
    }
    let too_large = response
        .body()
        .size_hint()
        .exact()
        .is_some_and(|n| n > MAX_CLASSIFIED_BODY);
    let header_code = error_code(response.headers(), None);
    if header_code.is_some() || too_large {
        let mut verdict = judge_response(
            response.status(),
            response.headers(),
            header_code.as_deref(),
        );
        verdict.code = header_code;
        return Ok((response, verdict));
    }
    let (parts, mut body) = response.into_parts();
    let mut frames = VecDeque::new();
    let mut read = 0u64;
    let complete = loop {
        if read > MAX_CLASSIFIED_BODY {
            break false;
        }
        match body.frame().await {
            None => break true,
            Some(frame) => {
                let frame = frame?;
                read += frame.data_ref().map_or(0, |d| d.len() as u64);
                frames.push_back(frame);
            }
        }
    };
    if !complete {
        let verdict = judge_response(parts.status, &parts.headers, None);
        return Ok((
            http::Response::from_parts(parts, ResponseBody::prefixed(frames, body)),
            verdict,
        ));
    }
    let mut bytes = BytesMut::with_capacity(usize::try_from(read).unwrap_or(0));
    let mut only_data = true;
    for frame in &frames {
        match frame.data_ref() {
            Some(data) => bytes.extend_from_slice(data),
            None => only_data = false,
        }
    }
    let bytes = bytes.freeze();
    let code = error_code(&parts.headers, Some(&bytes));
    let mut verdict = judge_response(parts.status, &parts.headers, code.as_deref());
    verdict.code = code;
    let body = if only_data {
        let mut replacement = ResponseBody::from_bytes(bytes);
        if let Some(permit) = body.take_permit() {
            replacement = replacement.with_permit(permit);
        }
        replacement
    } else {
        ResponseBody::prefixed(frames, body)
    };
    Ok((http::Response::from_parts(parts, body), verdict))
}

/// The SDKs' retry quota: retries take tokens, successes give some back; an empty
/// bucket stops retrying so an outage is not multiplied.
///
/// Lock-free: every successful request gives tokens back, and while the bucket
/// is full (the usual case) that is one read and no write.
#[derive(Debug)]
struct RetryBudget {
    tokens: AtomicU32,
    capacity: u32,
}

impl RetryBudget {
    fn new(capacity: u32) -> Self {
        Self {
            tokens: AtomicU32::new(capacity),
            capacity,
        }
    }

    fn try_take(&self, cost: u32) -> bool {
        self.tokens
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| t.checked_sub(cost))
            .is_ok()
    }

    fn give_back(&self, amount: u32) {
        if self.tokens.load(Ordering::Acquire) >= self.capacity {
            return;
        }
        let capacity = self.capacity;
        let _ = self
            .tokens
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                Some(t.saturating_add(amount).min(capacity))
            });
    }
}

/// The SDKs' adaptive-mode client rate limiter: a token bucket whose fill rate drops
/// by `BETA` on each throttle and recovers along a CUBIC curve afterwards.
#[derive(Debug)]
struct AdaptiveLimiter {
    enabled: bool,
    fill_rate: f64,
    max_capacity: f64,
    current_capacity: f64,
    last_refill: Option<Instant>,
    measured_rate: f64,
    last_tx_bucket: f64,
    request_count: u64,
    last_max_rate: f64,
    last_throttle: f64,
    time_window: f64,
    epoch: Instant,
}

const MIN_FILL_RATE: f64 = 0.5;
const MIN_CAPACITY: f64 = 1.0;
const SMOOTH: f64 = 0.8;
const BETA: f64 = 0.7;
const SCALE_CONSTANT: f64 = 0.4;

impl AdaptiveLimiter {
    fn new() -> Self {
        Self {
            enabled: false,
            fill_rate: 0.0,
            max_capacity: 0.0,
            current_capacity: 0.0,
            last_refill: None,
            measured_rate: 0.0,
            last_tx_bucket: 0.0,
            request_count: 0,
            last_max_rate: 0.0,
            last_throttle: 0.0,
            time_window: 0.0,
            epoch: Instant::now(),
        }
    }

    fn seconds(&self, now: Instant) -> f64 {
        now.saturating_duration_since(self.epoch).as_secs_f64()
    }

    fn refill(&mut self, now: Instant) {
        if let Some(last) = self.last_refill {
            let fill = now.saturating_duration_since(last).as_secs_f64() * self.fill_rate;
            self.current_capacity = (self.current_capacity + fill).min(self.max_capacity);
        }
        self.last_refill = Some(now);
    }

    /// Takes a send token, or says how long to wait before asking again.
    fn try_acquire(&mut self, now: Instant) -> Result<(), Duration> {
        if !self.enabled {
            return Ok(());
        }
        self.refill(now);
        if self.current_capacity >= 1.0 {
            self.current_capacity -= 1.0;
            Ok(())
        } else {
            let missing = 1.0 - self.current_capacity;
            Err(Duration::from_secs_f64(
                missing / self.fill_rate.max(MIN_FILL_RATE),
            ))
        }
    }

    fn update_measured_rate(&mut self, now: Instant) {
        let t = self.seconds(now);
        let bucket = (t * 2.0).floor() / 2.0;
        self.request_count += 1;
        if bucket > self.last_tx_bucket {
            let current = self.request_count as f64 / (bucket - self.last_tx_bucket);
            self.measured_rate = current * SMOOTH + self.measured_rate * (1.0 - SMOOTH);
            self.request_count = 0;
            self.last_tx_bucket = bucket;
        }
    }

    fn on_response(&mut self, throttled: bool, now: Instant) {
        self.update_measured_rate(now);
        let t = self.seconds(now);
        let calculated = if throttled {
            let rate = if self.enabled {
                self.measured_rate.min(self.fill_rate)
            } else {
                self.measured_rate
            };
            self.last_max_rate = rate;
            self.time_window = (self.last_max_rate * (1.0 - BETA) / SCALE_CONSTANT).cbrt();
            self.last_throttle = t;
            self.enabled = true;
            rate * BETA
        } else {
            self.time_window = (self.last_max_rate * (1.0 - BETA) / SCALE_CONSTANT).cbrt();
            SCALE_CONSTANT * (t - self.last_throttle - self.time_window).powi(3)
                + self.last_max_rate
        };
        let new_rate = calculated.min(2.0 * self.measured_rate);
        self.refill(now);
        self.fill_rate = new_rate.max(MIN_FILL_RATE);
        self.max_capacity = new_rate.max(MIN_CAPACITY);
        self.current_capacity = self.current_capacity.min(self.max_capacity);
    }
}

/// Retry state shared by all requests of one route to one upstream.
#[derive(Debug)]
struct RetryState {
    budget: RetryBudget,
    limiter: Mutex<AdaptiveLimiter>,
}

type Hasher = foldhash::fast::RandomState;

impl RetryState {
    /// Whether dropping this state loses nothing at `now`: no request holds
    /// it, its budget is full, and its rate limiter was never used or not for
    /// [`FORGET_LIMITER_AFTER`].
    fn forgettable(self: &Arc<Self>, now: Instant) -> bool {
        Arc::strong_count(self) == 1
            && self.budget.tokens.load(Ordering::Acquire) >= self.budget.capacity
            && self.limiter.lock().is_ok_and(|limiter| {
                limiter
                    .last_refill
                    .is_none_or(|used| now.duration_since(used) >= FORGET_LIMITER_AFTER)
            })
    }
}

/// How long an adaptive rate limiter must have been unused before its
/// upstream's retry state may be dropped (its measured rate is stale by then).
const FORGET_LIMITER_AFTER: Duration = Duration::from_secs(600);

/// One route's retry states by upstream, swept as it grows ([`SweepAt`]).
#[derive(Debug, Default)]
struct ByUpstream {
    states: HashMap<Arc<str>, Arc<RetryState>, Hasher>,
    sweep: SweepAt,
}

/// Retry states by route, then upstream (`scheme://authority`), made on first use.
#[derive(Debug, Default)]
pub(crate) struct RetryStates {
    states: Mutex<HashMap<Arc<str>, ByUpstream, Hasher>>,
}

impl RetryStates {
    fn state(
        &self,
        route: &Arc<str>,
        upstream: &Arc<str>,
        settings: &RetrySettings,
    ) -> Arc<RetryState> {
        let make = || {
            Arc::new(RetryState {
                budget: RetryBudget::new(settings.budget_capacity),
                limiter: Mutex::new(AdaptiveLimiter::new()),
            })
        };
        let Ok(mut states) = self.states.lock() else {
            return make();
        };
        if let Some(state) = states
            .get(&**route)
            .and_then(|by| by.states.get(&**upstream))
        {
            return state.clone();
        }
        let by = states.entry(route.clone()).or_default();
        let now = Instant::now();
        by.sweep
            .before_insert(&mut by.states, |_, state| !state.forgettable(now));
        by.states
            .entry(upstream.clone())
            .or_insert_with(make)
            .clone()
    }
}

fn copy_head(parts: &http::request::Parts) -> http::request::Parts {
    let (mut copy, ()) = http::Request::new(()).into_parts();
    copy.method = parts.method.clone();
    copy.uri = parts.uri.clone();
    copy.version = parts.version;
    copy.headers = parts.headers.clone();
    copy
}

/// Sends `request` as one or more attempts (see the module docs of `upstream`):
/// retries what is worth retrying while the body can be replayed, the attempts
/// allow, the retry budget has tokens and the total deadline leaves time.
pub(crate) async fn send_with_retries(
    pool: &Pool,
    observer: &Arc<dyn UpstreamObserver>,
    states: &RetryStates,
    request: OutboundRequest,
) -> Result<http::Response<ResponseBody>, ForwardError> {
    let OutboundRequest {
        parts,
        body,
        signer,
        policy,
        route,
        upstream,
    } = request;
    let state = states.state(&route, &upstream, &policy.retry);
    let settings = &policy.retry;
    let deadline = Instant::now() + policy.timeouts.total;
    let source = BodySource::new(body);
    let adaptive = settings.mode == RetryMode::Adaptive;
    let mut taken: Option<u32> = None;
    let mut number = 1;
    loop {
        if adaptive {
            wait_for_send_token(&state, deadline, &policy, &route, observer.as_ref()).await?;
        }
        if let Some(ready) = signer.prepare() {
            match tokio::time::timeout_at(deadline, ready).await {
                Ok(Ok(())) => {}
                Ok(Err(failure)) => {
                    tracing::warn!(route = %route, error = %failure, "attempt not sent: nothing to sign it with");
                    return Err(ForwardError::Sign(failure));
                }
                Err(_) => {
                    return Err(ForwardError::timed_out(
                        &**observer,
                        &route,
                        TimeoutKind::Total,
                        policy.timeouts.total,
                    ))
                }
            }
        }
        observer.attempt(&route);
        let (attempt_body, upload) = source.attempt_body();
        let attempt = Attempt {
            parts: copy_head(&parts),
            body: attempt_body,
            upload,
            signer: signer.as_ref(),
            policy: &policy,
            route: &route,
            upstream: &upstream,
            deadline,
        };
        let outcome = match send_attempt(pool, observer, attempt).await {
            Ok(response) if response.status().as_u16() < 400 => Ok((response, Verdict::final_())),
            // Reading a small error body counts against the total deadline too
            // (which does not count the time a streamed body took to send).
            Ok(response) => tokio::time::timeout_at(
                deadline + source.upload_took(),
                classify_response(response),
            )
            .await
            .unwrap_or_else(|_| {
                Err(ForwardError::timed_out(
                    &**observer,
                    &route,
                    TimeoutKind::Total,
                    policy.timeouts.total,
                ))
            }),
            Err(error) => Err(error),
        };
        let mut verdict = match &outcome {
            Ok((_, verdict)) => verdict.clone(),
            Err(error) => judge_error(error),
        };
        // Refused credentials the signer has dropped: another attempt signs
        // with new ones, so the answer is worth retrying.
        if let (Ok((response, _)), Some(code)) = (&outcome, &verdict.code) {
            if signer.rejected(response.status(), code) && verdict.reason.is_none() {
                verdict.reason = Some(code.clone());
            }
        }
        if adaptive {
            if let Ok(mut limiter) = state.limiter.lock() {
                limiter.on_response(verdict.throttled, Instant::now());
            }
        }
        let Some(reason) = verdict.reason.clone() else {
            if let Ok((response, _)) = &outcome {
                if response.status().is_success() && settings.budget_enabled {
                    state
                        .budget
                        .give_back(taken.unwrap_or(settings.success_refund));
                }
            }
            return answer(outcome);
        };
        if number >= settings.max_attempts || !source.replayable() {
            return answer(outcome);
        }
        let mut delay = jittered(backoff_bound(settings, number));
        if let Some(wanted) = verdict.retry_after {
            if wanted > settings.max_backoff {
                return answer(outcome);
            }
            delay = delay.max(wanted);
        }
        if Instant::now() + delay >= deadline {
            return answer(outcome);
        }
        if settings.budget_enabled {
            let cost = if verdict.timeout {
                settings.timeout_retry_cost
            } else {
                settings.retry_cost
            };
            if !state.budget.try_take(cost) {
                observer.budget_exhausted(&route);
                tracing::debug!(route = %route, reason = %reason, "retry budget exhausted; returning the upstream's answer");
                return answer(outcome);
            }
            taken = Some(cost);
        }
        observer.retry(&route, &reason);
        observer.backoff(&route, delay);
        tracing::debug!(route = %route, attempt = number, reason = %reason, delay_ms = delay.as_millis() as u64, "retrying");
        // Release the failed attempt (and its connection) before sleeping.
        drop(outcome);
        tokio::time::sleep(delay).await;
        number += 1;
    }
}

/// The outcome of the last attempt, as the client gets it.
fn answer(
    outcome: Result<(http::Response<ResponseBody>, Verdict), ForwardError>,
) -> Result<http::Response<ResponseBody>, ForwardError> {
    outcome.map(|(response, _)| response)
}

async fn wait_for_send_token(
    state: &RetryState,
    deadline: Instant,
    policy: &super::RoutePolicy,
    route: &str,
    observer: &dyn UpstreamObserver,
) -> Result<(), ForwardError> {
    loop {
        let wait = match state.limiter.lock() {
            Ok(mut limiter) => limiter.try_acquire(Instant::now()),
            Err(_) => Ok(()),
        };
        let Err(wait) = wait else { return Ok(()) };
        if Instant::now() + wait >= deadline {
            return Err(ForwardError::timed_out(
                observer,
                route,
                TimeoutKind::Total,
                policy.timeouts.total,
            ));
        }
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn forgets_retry_states_that_hold_nothing_as_a_route_names_new_upstreams() {
        let (states, settings) = (RetryStates::default(), RetrySettings::default());
        let route: Arc<str> = "buckets".into();
        let key = |name: &str| -> Arc<str> { format!("https://{name}").into() };
        let state = |name: &str| states.state(&route, &key(name), &settings);
        let many = |from: usize| {
            for i in from..from + 10_000 {
                drop(state(&format!("bucket-{i}")));
            }
        };
        let kept = |name: &str| {
            let states = states.states.lock().unwrap();
            states[&route].states.contains_key(&*key(name))
        };
        assert!(state("drained").budget.try_take(5));
        state("throttled")
            .limiter
            .lock()
            .unwrap()
            .on_response(true, Instant::now());
        let held = state("held");

        many(0);
        assert!(kept("drained") && kept("throttled") && kept("held"));
        let len = states.states.lock().unwrap()[&route].states.len();
        assert!(len < 200, "{len} states kept");

        // Once the limiter has been unused long enough, the refunded budget
        // is full again and no request holds the state, nothing is kept.
        tokio::time::advance(FORGET_LIMITER_AFTER).await;
        state("drained").budget.give_back(5);
        drop(held);
        many(10_000);
        assert!(!kept("drained") && !kept("throttled") && !kept("held"));
    }

    fn headers(pairs: &[(&str, &str)]) -> http::HeaderMap {
        let mut map = http::HeaderMap::new();
        for (k, v) in pairs {
            map.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                http::HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    #[test]
    fn reads_error_code_from_header_json_and_xml() {
        let h = headers(&[(
            "x-amzn-ErrorType",
            "ThrottlingException:http://internal.amazon.com/coral/",
        )]);
        assert_eq!(error_code(&h, None).as_deref(), Some("ThrottlingException"));
        let none = http::HeaderMap::new();
        let json = br#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"x"}"#;
        assert_eq!(
            error_code(&none, Some(json)).as_deref(),
            Some("ProvisionedThroughputExceededException")
        );
        assert_eq!(
            error_code(&none, Some(br#"{"code":"TooManyRequestsException"}"#)).as_deref(),
            Some("TooManyRequestsException")
        );
        let xml =
            b"<?xml version=\"1.0\"?><Error><Code>SlowDown</Code><Message>Reduce</Message></Error>";
        assert_eq!(error_code(&none, Some(xml)).as_deref(), Some("SlowDown"));
        let query = b"<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code></Error></ErrorResponse>";
        assert_eq!(
            error_code(&none, Some(query)).as_deref(),
            Some("Throttling")
        );
        assert_eq!(error_code(&none, Some(b"plain text")), None);
        assert_eq!(error_code(&none, Some(b"{not json")), None);
    }

    #[test]
    fn classifies_every_listed_code() {
        for code in THROTTLING_CODES {
            assert_eq!(classify_error_code(code), ErrorClass::Throttling, "{code}");
        }
        for code in TRANSIENT_CODES {
            assert_eq!(classify_error_code(code), ErrorClass::Transient, "{code}");
        }
        assert_eq!(
            classify_error_code("ValidationException"),
            ErrorClass::Other
        );
        assert_eq!(classify_error_code("throttling"), ErrorClass::Other);
    }

    #[test]
    fn retries_listed_statuses_and_codes_only() {
        let none = http::HeaderMap::new();
        for status in [429u16, 500, 502, 503, 504] {
            let v = judge_response(http::StatusCode::from_u16(status).unwrap(), &none, None);
            assert_eq!(v.reason, Some(format!("http_{status}")));
        }
        for status in [400u16, 403, 404, 501] {
            let v = judge_response(http::StatusCode::from_u16(status).unwrap(), &none, None);
            assert_eq!(v.reason, None, "{status}");
        }
        let v = judge_response(
            http::StatusCode::BAD_REQUEST,
            &none,
            Some("ThrottlingException"),
        );
        assert_eq!(v.reason.as_deref(), Some("ThrottlingException"));
        assert!(v.throttled);
        let v = judge_response(http::StatusCode::BAD_REQUEST, &none, Some("RequestTimeout"));
        assert_eq!(v.reason.as_deref(), Some("RequestTimeout"));
        assert!(!v.throttled);
        let v = judge_response(
            http::StatusCode::BAD_REQUEST,
            &none,
            Some("ValidationException"),
        );
        assert_eq!(v.reason, None);
    }

    #[test]
    fn never_retries_signing_or_deadline_failures() {
        let sign = ForwardError::Sign(super::super::SignFailure::CredentialsUnavailable(
            "x".into(),
        ));
        assert_eq!(judge_error(&sign).reason, None);
        let total = ForwardError::Timeout {
            kind: TimeoutKind::Total,
            after: Duration::from_secs(1),
        };
        assert_eq!(judge_error(&total).reason, None);
        let body = ForwardError::RequestBody("client went away".into());
        assert_eq!(judge_error(&body).reason, None);
        let refused = ForwardError::Unreachable("connection refused".into());
        assert_eq!(judge_error(&refused).reason.as_deref(), Some("connection"));
        let fb = ForwardError::Timeout {
            kind: TimeoutKind::FirstByte,
            after: Duration::from_secs(1),
        };
        assert!(judge_error(&fb).timeout);
    }

    #[test]
    fn parses_retry_after_seconds_and_dates() {
        assert_eq!(
            retry_after(&headers(&[("retry-after", "3")])),
            Some(Duration::from_secs(3))
        );
        let later = std::time::SystemTime::now() + Duration::from_secs(120);
        let date = httpdate::fmt_http_date(later);
        let parsed = retry_after(&headers(&[("retry-after", &date)])).unwrap();
        assert!(
            parsed <= Duration::from_secs(120) && parsed >= Duration::from_secs(118),
            "{parsed:?}"
        );
        assert_eq!(retry_after(&headers(&[("retry-after", "soon")])), None);
    }

    #[test]
    fn backoff_is_full_jitter_within_capped_exponential_bound() {
        let s = RetrySettings {
            base_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
            ..Default::default()
        };
        let bounds: Vec<_> = (1..=5).map(|n| backoff_bound(&s, n)).collect();
        assert_eq!(bounds, [10, 20, 40, 50, 50].map(Duration::from_millis));
        let mut saw_low_half = false;
        for _ in 0..500 {
            let d = jittered(backoff_bound(&s, 3));
            assert!(d <= Duration::from_millis(40));
            saw_low_half |= d < Duration::from_millis(20);
        }
        assert!(
            saw_low_half,
            "full jitter must reach the lower half of the range"
        );
        assert_eq!(backoff_bound(&s, u32::MAX), Duration::from_millis(50));
    }

    #[test]
    fn budget_refuses_when_empty_and_refills_to_capacity() {
        let b = RetryBudget::new(12);
        assert!(b.try_take(5));
        assert!(b.try_take(5));
        assert!(!b.try_take(5));
        b.give_back(1);
        assert_eq!(b.tokens.load(Ordering::Relaxed), 3);
        b.give_back(100);
        assert_eq!(b.tokens.load(Ordering::Relaxed), 12);
    }

    #[test]
    fn adaptive_limiter_slows_after_throttle_and_recovers() {
        let mut l = AdaptiveLimiter::new();
        let mut now = l.epoch;
        assert!(
            l.try_acquire(now).is_ok(),
            "disabled until the first throttle"
        );
        for _ in 0..20 {
            now += Duration::from_millis(50);
            l.on_response(false, now);
        }
        assert!(!l.enabled);
        l.on_response(true, now);
        assert!(l.enabled);
        let throttled_rate = l.fill_rate;
        assert!(throttled_rate >= MIN_FILL_RATE);
        // Drain the bucket: sending must now wait.
        let mut waited = None;
        for _ in 0..100 {
            if let Err(wait) = l.try_acquire(now) {
                waited = Some(wait);
                break;
            }
        }
        assert!(waited.is_some_and(|w| w > Duration::ZERO));
        // Successes over time raise the rate again (CUBIC recovery).
        // Same pace as before the throttle (the rate may not exceed twice the measured one).
        for _ in 0..60 {
            now += Duration::from_millis(50);
            l.on_response(false, now);
        }
        assert!(
            l.fill_rate > throttled_rate,
            "{} <= {}",
            l.fill_rate,
            throttled_rate
        );
    }
}
