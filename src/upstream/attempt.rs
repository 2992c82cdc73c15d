//! One attempt at sending a request: sign it afresh, send it on a pooled
//! connection, and wait for the response head within the first-byte timeout and
//! the request's total deadline, all in one future ([`send_attempt`]).

use std::sync::Arc;

use tokio::sync::watch;
use tokio::time::Instant;

use super::body::{AttemptBody, UploadWatch};
use super::client::Pool;
use super::error::{ForwardError, TimeoutKind};
use super::{AttemptSigner, ResponseBody, RoutePolicy, UpstreamObserver};

/// One attempt at sending a request, as the retry loop hands it down.
pub(crate) struct Attempt<'r> {
    /// A fresh copy of the unsigned request head; signed before it is sent.
    pub(crate) parts: http::request::Parts,
    /// This attempt's body.
    pub(crate) body: AttemptBody,
    /// For a streamed body: when it has been handed to the connection completely
    /// and how it moves. `None`: the body goes out with the head.
    pub(crate) upload: Option<UploadWatch>,
    /// Signs the attempt.
    pub(crate) signer: &'r dyn AttemptSigner,
    /// The route's policy.
    pub(crate) policy: &'r RoutePolicy,
    /// The route's name.
    pub(crate) route: &'r Arc<str>,
    /// The upstream's key (`scheme://authority`).
    pub(crate) upstream: &'r Arc<str>,
    /// When the total deadline runs out.
    pub(crate) deadline: Instant,
}

/// Signs `attempt` afresh (an attempt that cannot be signed is never sent), sends
/// it, and waits for the response head: at most the first-byte timeout after the
/// request body was handed over, and never past the total deadline (which does
/// not count the time a streamed body took to send; see `upload`).
pub(crate) async fn send_attempt(
    pool: &Pool,
    observer: &Arc<dyn UpstreamObserver>,
    attempt: Attempt<'_>,
) -> Result<http::Response<ResponseBody>, ForwardError> {
    let Attempt {
        mut parts,
        body,
        upload,
        signer,
        policy,
        route,
        upstream,
        deadline,
    } = attempt;
    if let Err(failure) = signer.sign(&mut parts) {
        tracing::warn!(route = %route, error = %failure, "attempt not sent: signing failed");
        return Err(ForwardError::Sign(failure));
    }
    let timeouts = &policy.timeouts;
    let first_byte = timeouts.first_byte;
    let streamed = upload.is_some();
    let (timer, kind) = match &upload {
        // The body goes out with the head: whichever limit comes first is the
        // only one that can fire.
        None => {
            let first_byte_at = Instant::now() + first_byte;
            if first_byte_at < deadline {
                (Timer::At(first_byte_at), TimeoutKind::FirstByte)
            } else {
                (Timer::At(deadline), TimeoutKind::Total)
            }
        }
        Some(upload) => (
            Timer::AfterBody(upload.sent.clone(), first_byte),
            TimeoutKind::FirstByte,
        ),
    };
    // A streamed body: the deadline, not counting the upload while it moves, and
    // an upstream that stops taking it.
    let guarded = async move {
        match upload {
            Some(upload) => {
                super::upload::guard(&upload.progress, upload.sent, timeouts.idle, deadline).await
            }
            None => std::future::pending().await,
        }
    };
    let response = pool.send(parts, body, timeouts, observer, route, upstream)?;
    let outcome = tokio::select! {
        biased;
        result = response => Ok(result),
        () = timer.wait() => Err(kind),
        kind = guarded, if streamed => Err(kind),
    };
    outcome.unwrap_or_else(|kind| {
        let after = match kind {
            TimeoutKind::Total => timeouts.total,
            TimeoutKind::Idle => timeouts.idle,
            _ => first_byte,
        };
        Err(ForwardError::timed_out(&**observer, route, kind, after))
    })
}

/// When an attempt's response head is overdue.
enum Timer {
    /// At this instant.
    At(Instant),
    /// This long after the streamed body was handed over completely.
    AfterBody(watch::Receiver<bool>, std::time::Duration),
}

impl Timer {
    async fn wait(self) {
        match self {
            Timer::At(at) => tokio::time::sleep_until(at).await,
            Timer::AfterBody(mut sent, after) => {
                if sent.wait_for(|sent| *sent).await.is_err() {
                    // The body was dropped unfinished: the response future fails on
                    // its own, so this timer never fires.
                    std::future::pending::<()>().await;
                }
                tokio::time::sleep(after).await;
            }
        }
    }
}
