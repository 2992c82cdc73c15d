//! The upstream stack, composed in one place ([`build`]), and the per-attempt layers.
//!
//! Outermost first: shed → retry → total deadline → sign → first-byte timeout →
//! pooled client (whose connector enforces the connect timeout). The retry layer turns
//! one [`OutboundRequest`](super::OutboundRequest) into one or more [`Attempt`]s.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use tokio::sync::watch;
use tokio::time::Instant;
use tower::util::BoxCloneSyncService;
use tower::{Layer, Service, ServiceBuilder};

use super::body::AttemptBody;
use super::client::{ClientService, Pool};
use super::error::{ForwardError, TimeoutKind};
use super::retry::RetryLayer;
use super::shed::ShedLayer;
use super::{AttemptSigner, OutboundRequest, ResponseBody, RoutePolicy, UpstreamObserver};

/// The whole upstream path as one cloneable service.
pub(crate) type UpstreamService =
    BoxCloneSyncService<OutboundRequest, http::Response<ResponseBody>, ForwardError>;

/// Composes the upstream path. Read top to bottom: this is the order a request takes.
pub(crate) fn build(pool: Pool, observer: Arc<dyn UpstreamObserver>) -> UpstreamService {
    let stack = ServiceBuilder::new()
        .layer(ShedLayer::new(observer.clone()))
        .layer(RetryLayer::new(observer.clone()))
        .layer(DeadlineLayer::new(observer.clone()))
        .layer(SignLayer)
        .layer(FirstByteLayer::new(observer.clone()))
        .service(ClientService::new(pool, observer));
    BoxCloneSyncService::new(stack)
}

/// One attempt at sending a request, as the layers below retry see it.
pub(crate) struct Attempt {
    /// A fresh copy of the unsigned request head; signed by the sign layer.
    pub(crate) parts: http::request::Parts,
    /// This attempt's body.
    pub(crate) body: AttemptBody,
    /// Turns true once the body has been handed to the connection completely.
    pub(crate) body_sent: watch::Receiver<bool>,
    /// Signs the attempt.
    pub(crate) signer: Arc<dyn AttemptSigner>,
    /// The route's policy.
    pub(crate) policy: Arc<RoutePolicy>,
    /// The route's name.
    pub(crate) route: Arc<str>,
    /// When the total deadline runs out.
    pub(crate) deadline: Instant,
}

/// Bounds each attempt by the request's total deadline.
#[derive(Clone)]
pub(crate) struct DeadlineLayer {
    observer: Arc<dyn UpstreamObserver>,
}

impl DeadlineLayer {
    pub(crate) fn new(observer: Arc<dyn UpstreamObserver>) -> Self {
        Self { observer }
    }
}

impl<S> Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;

    fn layer(&self, inner: S) -> Deadline<S> {
        Deadline {
            inner,
            observer: self.observer.clone(),
        }
    }
}

/// See [`DeadlineLayer`].
#[derive(Clone)]
pub(crate) struct Deadline<S> {
    inner: S,
    observer: Arc<dyn UpstreamObserver>,
}

impl<S> Service<Attempt> for Deadline<S>
where
    S: Service<Attempt, Response = http::Response<ResponseBody>, Error = ForwardError>,
    S::Future: Send + 'static,
{
    type Response = http::Response<ResponseBody>;
    type Error = ForwardError;
    type Future = BoxFuture<'static, Result<Self::Response, ForwardError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ForwardError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, attempt: Attempt) -> Self::Future {
        let deadline = attempt.deadline;
        let total = attempt.policy.timeouts.total;
        let route = attempt.route.clone();
        let observer = self.observer.clone();
        let future = self.inner.call(attempt);
        Box::pin(async move {
            match tokio::time::timeout_at(deadline, future).await {
                Ok(result) => result,
                Err(_) => Err(ForwardError::timed_out(
                    &*observer,
                    &route,
                    TimeoutKind::Total,
                    total,
                )),
            }
        })
    }
}

/// Signs every attempt afresh; an attempt that cannot be signed is never sent.
#[derive(Clone, Copy)]
pub(crate) struct SignLayer;

impl<S> Layer<S> for SignLayer {
    type Service = Sign<S>;

    fn layer(&self, inner: S) -> Sign<S> {
        Sign { inner }
    }
}

/// See [`SignLayer`].
#[derive(Clone)]
pub(crate) struct Sign<S> {
    inner: S,
}

impl<S> Service<Attempt> for Sign<S>
where
    S: Service<Attempt, Response = http::Response<ResponseBody>, Error = ForwardError>,
    S::Future: Send + 'static,
{
    type Response = http::Response<ResponseBody>;
    type Error = ForwardError;
    type Future = BoxFuture<'static, Result<Self::Response, ForwardError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ForwardError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut attempt: Attempt) -> Self::Future {
        if let Err(failure) = attempt.signer.sign(&mut attempt.parts) {
            tracing::warn!(route = %attempt.route, error = %failure, "attempt not sent: signing failed");
            return Box::pin(async move { Err(ForwardError::Sign(failure)) });
        }
        Box::pin(self.inner.call(attempt))
    }
}

/// Bounds the wait for the response head of one attempt, counted from the moment
/// its request body has been handed to the connection.
#[derive(Clone)]
pub(crate) struct FirstByteLayer {
    observer: Arc<dyn UpstreamObserver>,
}

impl FirstByteLayer {
    pub(crate) fn new(observer: Arc<dyn UpstreamObserver>) -> Self {
        Self { observer }
    }
}

impl<S> Layer<S> for FirstByteLayer {
    type Service = FirstByte<S>;

    fn layer(&self, inner: S) -> FirstByte<S> {
        FirstByte {
            inner,
            observer: self.observer.clone(),
        }
    }
}

/// See [`FirstByteLayer`].
#[derive(Clone)]
pub(crate) struct FirstByte<S> {
    inner: S,
    observer: Arc<dyn UpstreamObserver>,
}

impl<S> Service<Attempt> for FirstByte<S>
where
    S: Service<Attempt, Response = http::Response<ResponseBody>, Error = ForwardError>,
    S::Future: Send + 'static,
{
    type Response = http::Response<ResponseBody>;
    type Error = ForwardError;
    type Future = BoxFuture<'static, Result<Self::Response, ForwardError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ForwardError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, attempt: Attempt) -> Self::Future {
        let after = attempt.policy.timeouts.first_byte;
        let route = attempt.route.clone();
        let mut body_sent = attempt.body_sent.clone();
        let observer = self.observer.clone();
        let future = self.inner.call(attempt);
        Box::pin(async move {
            let timer = async move {
                if body_sent.wait_for(|sent| *sent).await.is_err() {
                    // The body was dropped unfinished: the response future will fail
                    // on its own, so this timer never fires.
                    std::future::pending::<()>().await;
                }
                tokio::time::sleep(after).await;
            };
            tokio::select! {
                biased;
                result = future => result,
                () = timer => Err(ForwardError::timed_out(
                    &*observer,
                    &route,
                    TimeoutKind::FirstByte,
                    after,
                )),
            }
        })
    }
}
