//! What the tests that drive `signet::upstream` directly share: a GET whose
//! signer only stamps a header, since those tests are about transport, not
//! signatures.

use std::sync::Arc;

use signet::upstream::{
    upstream_key, AttemptSigner, OutboundBody, OutboundRequest, RoutePolicy, SignFailure,
};

/// Stamps `x-amz-date` and nothing else.
struct Stamp;

impl AttemptSigner for Stamp {
    fn sign(&self, parts: &mut http::request::Parts) -> Result<(), SignFailure> {
        parts.headers.insert(
            "x-amz-date",
            http::HeaderValue::from_static("20260101T000000Z"),
        );
        Ok(())
    }
}

/// `request` (no body) as an outbound request of `route` under `policy`,
/// signed by [`Stamp`].
pub fn stamped(request: http::Request<()>, policy: RoutePolicy, route: &str) -> OutboundRequest {
    let (parts, ()) = request.into_parts();
    OutboundRequest {
        upstream: upstream_key(&parts.uri).into(),
        parts,
        body: OutboundBody::Empty,
        signer: Arc::new(Stamp),
        policy: Arc::new(policy),
        route: Arc::from(route),
    }
}
