//! Load shedding: a per-upstream limit on requests in flight.
//!
//! Past the limit a request fails at once with [`ForwardError::Shed`] (503 with
//! Retry-After); nothing waits in a queue. The permit travels with the response body,
//! so a request counts until its body has been streamed to the end (or dropped).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::error::ForwardError;
use super::sweep::SweepAt;
use super::{OutboundRequest, UpstreamObserver};

/// In-flight counters, one per upstream (`scheme://authority`).
///
/// A counter no request holds is zero, the same as a new one, so the map is
/// swept of those as it grows ([`SweepAt`]).
#[derive(Default)]
pub(crate) struct InFlight {
    counters: Mutex<Counters>,
}

#[derive(Default)]
struct Counters {
    by_upstream: HashMap<String, Arc<AtomicUsize>, foldhash::fast::RandomState>,
    sweep: SweepAt,
}

impl Counters {
    /// `upstream`'s counter, made on first use.
    fn counter(&mut self, upstream: &str) -> Arc<AtomicUsize> {
        if let Some(counter) = self.by_upstream.get(upstream) {
            return counter.clone();
        }
        // Permits hold a clone; counters are cloned only under this lock.
        self.sweep
            .before_insert(&mut self.by_upstream, |_, counter| {
                Arc::strong_count(counter) > 1
            });
        self.by_upstream
            .entry(upstream.to_owned())
            .or_default()
            .clone()
    }
}

/// One request's place in its upstream's in-flight count; released on drop.
pub(crate) struct InFlightPermit(Arc<AtomicUsize>);

impl Drop for InFlightPermit {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl InFlight {
    /// Admits `request` if its upstream is below the route's
    /// `limits.max_in_flight`; otherwise counts the shedding and answers with
    /// [`ForwardError::Shed`] at once.
    pub(crate) fn admit(
        &self,
        request: &OutboundRequest,
        observer: &dyn UpstreamObserver,
    ) -> Result<InFlightPermit, ForwardError> {
        let limits = &request.policy.limits;
        self.try_acquire(&request.upstream, limits.max_in_flight)
            .ok_or_else(|| {
                observer.shed(&request.route);
                tracing::debug!(route = %request.route, upstream = %request.upstream, limit = limits.max_in_flight, "shedding request: upstream at its in-flight limit");
                ForwardError::Shed {
                    in_flight: limits.max_in_flight,
                    retry_after: limits.shed_retry_after,
                }
            })
    }

    /// Takes a place for `upstream` if fewer than `limit` requests are in flight.
    pub(crate) fn try_acquire(&self, upstream: &str, limit: usize) -> Option<InFlightPermit> {
        let counter = self.counters.lock().ok()?.counter(upstream);
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
    fn forgets_idle_upstreams_as_the_map_grows_and_keeps_busy_ones() {
        let in_flight = InFlight::default();
        let busy = in_flight.try_acquire("https://busy", 1).unwrap();
        for i in 0..10_000 {
            // One request each to many hosts, as host routing to buckets makes.
            drop(
                in_flight
                    .try_acquire(&format!("https://bucket-{i}"), 1)
                    .unwrap(),
            );
        }
        let len = in_flight.counters.lock().unwrap().by_upstream.len();
        assert!(len < 200, "{len} counters kept");
        // The busy upstream's count survived every sweep.
        assert!(in_flight.try_acquire("https://busy", 1).is_none());
        drop(busy);
        assert!(in_flight.try_acquire("https://busy", 1).is_some());
    }

    #[test]
    fn keys_upstreams_by_scheme_and_authority() {
        let uri: http::Uri = "https://s3.us-east-1.amazonaws.com:443/bucket?x"
            .parse()
            .unwrap();
        assert_eq!(upstream_key(&uri), "https://s3.us-east-1.amazonaws.com:443");
    }
}
