//! Load shedding: a per-upstream limit on requests in flight.
//!
//! Past the limit a request fails at once with [`ForwardError::Shed`] (503 with
//! Retry-After); nothing waits in a queue. The permit travels with the response body,
//! so a request counts until its body has been streamed to the end (or dropped).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tower::{Layer, Service};

use super::error::ForwardError;
use super::{OutboundRequest, ResponseBody, UpstreamObserver};

/// In-flight counters, one per upstream (`scheme://authority`).
#[derive(Default)]
pub(crate) struct InFlight {
    counters: Mutex<HashMap<String, Arc<AtomicUsize>, foldhash::fast::RandomState>>,
}

/// One request's place in its upstream's in-flight count; released on drop.
pub(crate) struct InFlightPermit(Arc<AtomicUsize>);

impl Drop for InFlightPermit {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl InFlight {
    /// Takes a place for `upstream` if fewer than `limit` requests are in flight.
    pub(crate) fn try_acquire(&self, upstream: &str, limit: usize) -> Option<InFlightPermit> {
        let counter = {
            let mut counters = self.counters.lock().ok()?;
            match counters.get(upstream) {
                Some(counter) => counter.clone(),
                None => counters.entry(upstream.to_owned()).or_default().clone(),
            }
        };
        counter
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .ok()
            .map(|_| InFlightPermit(counter))
    }
}

/// The upstream key of a request (see [`OutboundRequest::upstream`]):
/// `scheme://authority` of its URI.
///
/// ```
/// let uri: http::Uri = "https://s3.us-east-1.amazonaws.com/bucket?list-type=2".parse().unwrap();
/// assert_eq!(signet::upstream::upstream_key(&uri), "https://s3.us-east-1.amazonaws.com");
/// ```
pub fn upstream_key(uri: &http::Uri) -> String {
    format!(
        "{}://{}",
        uri.scheme_str().unwrap_or("http"),
        uri.authority().map(|a| a.as_str()).unwrap_or("")
    )
}

/// Layer that sheds requests past the route's `limits.max_in_flight` per upstream.
#[derive(Clone)]
pub(crate) struct ShedLayer {
    in_flight: Arc<InFlight>,
    observer: Arc<dyn UpstreamObserver>,
}

impl ShedLayer {
    pub(crate) fn new(observer: Arc<dyn UpstreamObserver>) -> Self {
        Self {
            in_flight: Arc::default(),
            observer,
        }
    }
}

impl<S> Layer<S> for ShedLayer {
    type Service = Shed<S>;

    fn layer(&self, inner: S) -> Shed<S> {
        Shed {
            inner,
            in_flight: self.in_flight.clone(),
            observer: self.observer.clone(),
        }
    }
}

/// See [`ShedLayer`].
#[derive(Clone)]
pub(crate) struct Shed<S> {
    inner: S,
    in_flight: Arc<InFlight>,
    observer: Arc<dyn UpstreamObserver>,
}

impl<S> Service<OutboundRequest> for Shed<S>
where
    S: Service<OutboundRequest, Response = http::Response<ResponseBody>, Error = ForwardError>,
{
    type Response = http::Response<ResponseBody>;
    type Error = ForwardError;
    type Future = ShedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ForwardError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: OutboundRequest) -> Self::Future {
        let limits = &request.policy.limits;
        let Some(permit) = self
            .in_flight
            .try_acquire(&request.upstream, limits.max_in_flight)
        else {
            self.observer.shed(&request.route);
            tracing::debug!(route = %request.route, upstream = %request.upstream, limit = limits.max_in_flight, "shedding request: upstream at its in-flight limit");
            return ShedFuture::Shed {
                error: Some(ForwardError::Shed {
                    in_flight: limits.max_in_flight,
                    retry_after: limits.shed_retry_after,
                }),
            };
        };
        ShedFuture::Admitted {
            future: self.inner.call(request),
            permit: Some(permit),
        }
    }
}

pin_project_lite::pin_project! {
    /// The answer of [`Shed`]: the inner answer with the permit moved onto its body,
    /// or the shedding error at once.
    #[project = ShedProjection]
    pub(crate) enum ShedFuture<F> {
        /// Admitted: the permit travels with the response body.
        Admitted { #[pin] future: F, permit: Option<InFlightPermit> },
        /// Shed.
        Shed { error: Option<ForwardError> },
    }
}

impl<F> Future for ShedFuture<F>
where
    F: Future<Output = Result<http::Response<ResponseBody>, ForwardError>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            ShedProjection::Admitted { future, permit } => {
                let response = std::task::ready!(future.poll(cx))?;
                Poll::Ready(Ok(match permit.take() {
                    Some(permit) => response.map(|body| body.with_permit(permit)),
                    None => response,
                }))
            }
            ShedProjection::Shed { error } => Poll::Ready(Err(error.take().unwrap_or_else(|| {
                ForwardError::InvalidRequest("polled after completion".into())
            }))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_past_limit_and_frees_on_drop() {
        let in_flight = InFlight::default();
        let a = in_flight.try_acquire("https://a", 2).unwrap();
        let _b = in_flight.try_acquire("https://a", 2).unwrap();
        assert!(in_flight.try_acquire("https://a", 2).is_none());
        // Other upstreams have their own count.
        assert!(in_flight.try_acquire("https://b", 2).is_some());
        drop(a);
        assert!(in_flight.try_acquire("https://a", 2).is_some());
    }

    #[test]
    fn keys_upstreams_by_scheme_and_authority() {
        let uri: http::Uri = "https://s3.us-east-1.amazonaws.com:443/bucket?x"
            .parse()
            .unwrap();
        assert_eq!(upstream_key(&uri), "https://s3.us-east-1.amazonaws.com:443");
    }
}
