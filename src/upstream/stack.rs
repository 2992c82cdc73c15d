//! The upstream stack, composed in one place ([`build`]), and the attempt service.
//!
//! Outermost first: shed → retry → attempt. The retry layer turns one
//! [`OutboundRequest`](super::OutboundRequest) into one or more [`Attempt`]s; the
//! attempt service signs each afresh, sends it on the pooled client (whose connector
//! enforces the connect timeout) and bounds the wait for the response head by the
//! first-byte timeout and the request's total deadline, all in one future.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use tokio::sync::watch;
use tokio::time::Instant;
use tower::{Layer, Service};

use super::body::AttemptBody;
use super::client::Pool;
use super::error::{ForwardError, TimeoutKind};
use super::retry::{Retry, RetryLayer};
use super::shed::{Shed, ShedLayer};
use super::{AttemptSigner, ResponseBody, RoutePolicy, UpstreamObserver};

/// The whole upstream path as one cloneable service.
pub(crate) type UpstreamService = Shed<Retry<AttemptService>>;

/// Composes the upstream path. Read top to bottom: this is the order a request takes.
pub(crate) fn build(pool: Pool, observer: Arc<dyn UpstreamObserver>) -> UpstreamService {
    let attempts = AttemptService {
        pool: Arc::new(pool),
        observer: observer.clone(),
    };
    let retry = RetryLayer::new(observer.clone()).layer(attempts);
    ShedLayer::new(observer).layer(retry)
}

/// One attempt at sending a request, as the retry layer hands it down.
pub(crate) struct Attempt {
    /// A fresh copy of the unsigned request head; signed before it is sent.
    pub(crate) parts: http::request::Parts,
    /// This attempt's body.
    pub(crate) body: AttemptBody,
    /// For a streamed body: turns true once it has been handed to the connection
    /// completely. `None`: the body goes out with the head.
    pub(crate) body_sent: Option<watch::Receiver<bool>>,
    /// Signs the attempt.
    pub(crate) signer: Arc<dyn AttemptSigner>,
    /// The route's policy.
    pub(crate) policy: Arc<RoutePolicy>,
    /// The route's name.
    pub(crate) route: Arc<str>,
    /// The upstream's key (`scheme://authority`).
    pub(crate) upstream: Arc<str>,
    /// When the total deadline runs out.
    pub(crate) deadline: Instant,
}

/// Signs one attempt afresh (an attempt that cannot be signed is never sent), sends
/// it, and waits for the response head: at most the first-byte timeout after the
/// request body was handed over, and never past the total deadline.
#[derive(Clone)]
pub(crate) struct AttemptService {
    pool: Arc<Pool>,
    observer: Arc<dyn UpstreamObserver>,
}

impl Service<Attempt> for AttemptService {
    type Response = http::Response<ResponseBody>;
    type Error = ForwardError;
    type Future = BoxFuture<'static, Result<Self::Response, ForwardError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), ForwardError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut attempt: Attempt) -> Self::Future {
        if let Err(failure) = attempt.signer.sign(&mut attempt.parts) {
            tracing::warn!(route = %attempt.route, error = %failure, "attempt not sent: signing failed");
            return Box::pin(std::future::ready(Err(ForwardError::Sign(failure))));
        }
        let Attempt {
            parts,
            body,
            body_sent,
            policy,
            route,
            upstream,
            deadline,
            ..
        } = attempt;
        let response = self.pool.send(
            parts,
            body,
            &policy.timeouts,
            &self.observer,
            &route,
            &upstream,
        );
        let observer = self.observer.clone();
        Box::pin(async move {
            let timeouts = &policy.timeouts;
            let first_byte = timeouts.first_byte;
            let streamed = body_sent.is_some();
            let (timer, kind) = match body_sent {
                // The body went out with the head: whichever limit comes first is
                // the only one that can fire.
                None => {
                    let first_byte_at = Instant::now() + first_byte;
                    if first_byte_at < deadline {
                        (Timer::At(first_byte_at), TimeoutKind::FirstByte)
                    } else {
                        (Timer::At(deadline), TimeoutKind::Total)
                    }
                }
                Some(sent) => (Timer::AfterBody(sent, first_byte), TimeoutKind::FirstByte),
            };
            let response = response?;
            let outcome = tokio::select! {
                biased;
                result = response => Ok(result),
                () = timer.wait() => Err(kind),
                () = tokio::time::sleep_until(deadline), if streamed => Err(TimeoutKind::Total),
            };
            outcome.unwrap_or_else(|kind| {
                let after = match kind {
                    TimeoutKind::Total => timeouts.total,
                    _ => first_byte,
                };
                Err(ForwardError::timed_out(&*observer, &route, kind, after))
            })
        })
    }
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
