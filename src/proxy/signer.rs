//! Signing one upstream attempt: the proxy's [`AttemptSigner`].
//!
//! Every attempt reads the current credentials snapshot (never waiting for a
//! refresh), takes a new `X-Amz-Date`, and signs exactly the headers that will
//! be sent, less the route's exclude list. `x-amz-*` headers are always signed.
//! A request to an S3 Express zonal endpoint signs with the session its
//! `SessionAuth` made ready before the attempt instead, with the sessions'
//! own signer (whose key cache holds session keys only).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use http::header::HeaderMap;

use crate::credentials::CredentialsHandle;
use crate::routing::Target;
use crate::sigv4::{AmzDate, PayloadHash, SignedHeaders, Signer, SigningParams, SigningSettings};
use crate::upstream::{AttemptSigner, SignFailure};

use super::chunked::ChunkChain;
use super::s3express::SessionAuth;

/// The payload hash one request is signed with, owned across attempts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestPayload {
    /// SHA-256 hex of the buffered body, computed once.
    Sha256(String),
    /// `UNSIGNED-PAYLOAD` (streamed body).
    Unsigned,
    /// aws-chunked with unsigned chunks and a trailer.
    StreamingUnsignedTrailer,
    /// aws-chunked with signed chunks.
    StreamingSigned,
    /// aws-chunked with signed chunks and a signed trailer.
    StreamingSignedTrailer,
}

impl RequestPayload {
    /// The hash of an empty body.
    pub fn empty() -> Self {
        RequestPayload::Sha256(crate::sigv4::EMPTY_PAYLOAD_SHA256.to_string())
    }

    fn as_hash(&self) -> PayloadHash<'_> {
        match self {
            RequestPayload::Sha256(h) => PayloadHash::Precomputed(h),
            RequestPayload::Unsigned => PayloadHash::Unsigned,
            RequestPayload::StreamingUnsignedTrailer => PayloadHash::StreamingUnsignedTrailer,
            RequestPayload::StreamingSigned => PayloadHash::StreamingSigned,
            RequestPayload::StreamingSignedTrailer => PayloadHash::StreamingSignedTrailer,
        }
    }

    /// Whether the payload value must travel in `x-amz-content-sha256`
    /// (everything but a plain hash, which only S3 requires).
    fn needs_header(&self) -> bool {
        !matches!(self, RequestPayload::Sha256(_))
    }
}

/// Signs every attempt of one request.
pub struct RequestSigner {
    credentials: CredentialsHandle,
    signer: Arc<Signer>,
    service: Arc<str>,
    region: Arc<str>,
    settings: SigningSettings,
    payload: RequestPayload,
    chain: Option<ChunkChain>,
    attempts: Arc<AtomicU32>,
    /// Set when the request signs with an S3 Express session; boxed, so that
    /// every other request's signer stays as small as it was without one.
    session: Option<Box<SessionAuth>>,
}

impl RequestSigner {
    /// A signer for a request to `target` whose forwarded headers are
    /// `headers`; `attempts` counts the attempts signed. With `session`, each
    /// attempt signs with that S3 Express session instead of `credentials`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        credentials: CredentialsHandle,
        signer: Arc<Signer>,
        target: &Target,
        payload: RequestPayload,
        headers: &HeaderMap,
        chain: Option<ChunkChain>,
        attempts: Arc<AtomicU32>,
        session: Option<Box<SessionAuth>>,
    ) -> Self {
        let mut settings = SigningSettings::for_service(&target.service);
        settings.algorithm = target.algorithm;
        settings.content_sha256_header |= payload.needs_header();
        let exclude = &target.policy.sign_headers_exclude;
        let excluded: Vec<String> = headers
            .keys()
            .map(|n| n.as_str())
            .filter(|n| !n.starts_with("x-amz-") && *n != "host" && exclude.matches(n))
            .map(str::to_owned)
            .collect();
        if !excluded.is_empty() {
            settings.signed_headers = SignedHeaders::AllExcept(excluded);
        }
        Self {
            credentials,
            signer,
            service: target.service.clone(),
            region: target.region.clone(),
            settings,
            payload,
            chain,
            attempts,
            session,
        }
    }
}

impl AttemptSigner for RequestSigner {
    fn sign(&self, parts: &mut http::request::Parts) -> Result<(), SignFailure> {
        let (credentials, signer) = match &self.session {
            None => (
                self.credentials
                    .current()
                    .map_err(|e| SignFailure::CredentialsUnavailable(e.reason))?,
                &*self.signer,
            ),
            Some(session) => (session.for_attempt(&mut parts.headers)?, session.signer()),
        };
        self.attempts.fetch_add(1, Ordering::Relaxed);
        // Every attempt is a fresh copy of the unsigned head (the client's
        // signing headers were stripped in `prepare`); signing inserts its own.
        let time = AmzDate::now().map_err(|e| SignFailure::Signing(e.to_string()))?;
        let params = SigningParams {
            credentials: &credentials,
            region: &self.region,
            service: &self.service,
            time,
            settings: &self.settings,
        };
        let output = signer
            .sign_http(
                &parts.method,
                &mut parts.uri,
                &mut parts.headers,
                self.payload.as_hash(),
                &params,
            )
            .map_err(|e| SignFailure::Signing(e.to_string()))?;
        if let Some(chain) = &self.chain {
            let seeded = signer
                .chunk_signer(&output, &params)
                .map_err(|e| SignFailure::Signing(e.to_string()))?;
            if let Ok(mut slot) = chain.lock() {
                *slot = Some(seeded);
            }
        }
        Ok(())
    }

    fn prepare(&self) -> Option<futures_util::future::BoxFuture<'_, Result<(), SignFailure>>> {
        let session = self.session.as_ref()?;
        Some(Box::pin(session.prepare()))
    }

    fn rejected(&self, status: http::StatusCode, code: &str) -> bool {
        self.session
            .as_ref()
            .is_some_and(|session| session.rejected(status, code))
    }
}
