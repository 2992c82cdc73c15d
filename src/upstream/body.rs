//! Bodies on both sides of an attempt.
//!
//! - [`ResponseBody`]: the upstream's response body, streamed frame by frame with an
//!   idle timeout between frames; it also holds the in-flight permit from load shedding
//!   so a request counts until its body ends.
//! - `AttemptBody`: one attempt's request body. A streamed body lives in a shared
//!   `StreamSlot`; an attempt takes it on first poll and, if it never yielded a byte,
//!   puts it back when dropped, so a later attempt can still send it. Once a byte went
//!   out the slot stays empty and the request is no longer replayable. Each poll
//!   of a streamed body is noted in the request's [`UploadProgress`].

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::watch;

use super::error::{ForwardError, TimeoutKind};
use super::gap::GapTimer;
use super::shed::InFlightPermit;
use super::upload::UploadProgress;
use super::UpstreamObserver;

/// The body of an upstream response as signet streams it back.
///
/// Frames pass through as they arrive; only small error bodies that were read for
/// retry classification are held in memory (and handed back byte for byte). Errors:
/// [`ForwardError::Timeout`] with [`TimeoutKind::Idle`] when no frame arrives within
/// the route's idle timeout, [`ForwardError::ResponseBody`] when the upstream breaks off.
pub struct ResponseBody {
    inner: Inner,
    idle: Option<IdleTimer>,
    permit: Option<InFlightPermit>,
}

enum Inner {
    Empty,
    Full(Option<Bytes>),
    Incoming(hyper::body::Incoming),
    /// Frames already read (for classification) followed by the rest of the body.
    Prefixed(VecDeque<Frame<Bytes>>, Box<ResponseBody>),
}

struct IdleTimer {
    gap: GapTimer,
    observer: Arc<dyn UpstreamObserver>,
    route: Arc<str>,
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.inner {
            Inner::Empty => "empty",
            Inner::Full(_) => "buffered",
            Inner::Incoming(_) | Inner::Prefixed(..) => "streaming",
        };
        f.debug_struct("ResponseBody").field("kind", &kind).finish()
    }
}

impl ResponseBody {
    /// A body of bytes already in memory.
    pub fn from_bytes(bytes: Bytes) -> Self {
        Self {
            inner: Inner::Full(Some(bytes)),
            idle: None,
            permit: None,
        }
    }

    pub(crate) fn streaming(
        incoming: hyper::body::Incoming,
        idle: Duration,
        observer: Arc<dyn UpstreamObserver>,
        route: Arc<str>,
    ) -> Self {
        Self {
            inner: Inner::Incoming(incoming),
            idle: Some(IdleTimer {
                gap: GapTimer::new(idle),
                observer,
                route,
            }),
            permit: None,
        }
    }

    /// `prefix` (frames already read from `rest`) followed by what remains of `rest`.
    pub(crate) fn prefixed(prefix: VecDeque<Frame<Bytes>>, mut rest: ResponseBody) -> Self {
        let permit = rest.take_permit();
        Self {
            inner: Inner::Prefixed(prefix, Box::new(rest)),
            idle: None,
            permit,
        }
    }

    pub(crate) fn with_permit(mut self, permit: InFlightPermit) -> Self {
        self.permit = Some(permit);
        self
    }

    /// Moves the in-flight permit (if any) onto `other`, e.g. when this body was read
    /// into memory and replaced.
    pub(crate) fn take_permit(&mut self) -> Option<InFlightPermit> {
        self.permit.take()
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = ForwardError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ForwardError>>> {
        let this = self.get_mut();
        let polled = match &mut this.inner {
            Inner::Empty => Poll::Ready(None),
            Inner::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Inner::Prefixed(prefix, rest) => match prefix.pop_front() {
                Some(frame) => Poll::Ready(Some(Ok(frame))),
                None => Pin::new(&mut **rest).poll_frame(cx),
            },
            Inner::Incoming(incoming) => match Pin::new(&mut *incoming).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if incoming.is_end_stream() {
                        this.permit = None;
                    }
                    if let Some(idle) = &mut this.idle {
                        idle.gap.frame();
                    }
                    Poll::Ready(Some(Ok(frame)))
                }
                Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(ForwardError::ResponseBody(
                    crate::error_chain::error_chain(&e),
                )))),
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => match &mut this.idle {
                    None => Poll::Pending,
                    Some(idle) => match idle.gap.poll_wait(cx) {
                        Poll::Ready(()) => {
                            let error = ForwardError::timed_out(
                                &*idle.observer,
                                &idle.route,
                                TimeoutKind::Idle,
                                idle.gap.after(),
                            );
                            this.inner = Inner::Empty;
                            Poll::Ready(Some(Err(error)))
                        }
                        Poll::Pending => Poll::Pending,
                    },
                },
            },
        };
        if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            // The request is no longer in flight once its body ended or failed.
            this.permit = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Empty => true,
            Inner::Full(bytes) => bytes.is_none(),
            Inner::Incoming(incoming) => incoming.is_end_stream(),
            Inner::Prefixed(prefix, rest) => prefix.is_empty() && rest.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Empty => SizeHint::with_exact(0),
            Inner::Full(Some(bytes)) => SizeHint::with_exact(bytes.len() as u64),
            Inner::Full(None) => SizeHint::with_exact(0),
            Inner::Incoming(incoming) => incoming.size_hint(),
            Inner::Prefixed(prefix, rest) => {
                let buffered: u64 = prefix
                    .iter()
                    .filter_map(|f| f.data_ref().map(|d| d.len() as u64))
                    .sum();
                let rest = rest.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(rest.lower().saturating_add(buffered));
                if let Some(upper) = rest.upper() {
                    hint.set_upper(upper.saturating_add(buffered));
                }
                hint
            }
        }
    }
}

/// Where the request body of all attempts of one request comes from.
pub(crate) enum BodySource {
    Empty,
    Full(Bytes),
    Stream(Arc<StreamSlot>),
}

/// A streamed request body shared by the attempts of one request.
pub(crate) struct StreamSlot {
    body: Mutex<Option<axum::body::Body>>,
    progress: Arc<UploadProgress>,
}

/// What an attempt with a streamed body learns about its upload.
pub(crate) struct UploadWatch {
    /// Turns true once the body has been handed to the connection completely.
    pub(crate) sent: watch::Receiver<bool>,
    /// How the body is moving.
    pub(crate) progress: Arc<UploadProgress>,
}

impl BodySource {
    pub(crate) fn new(body: super::OutboundBody) -> Self {
        match body {
            super::OutboundBody::Empty => BodySource::Empty,
            super::OutboundBody::Buffered(bytes) if bytes.is_empty() => BodySource::Empty,
            super::OutboundBody::Buffered(bytes) => BodySource::Full(bytes),
            super::OutboundBody::Streaming(body) => BodySource::Stream(Arc::new(StreamSlot {
                body: Mutex::new(Some(body)),
                progress: Arc::new(UploadProgress::new()),
            })),
        }
    }

    /// Whether another attempt can still send the whole body.
    pub(crate) fn replayable(&self) -> bool {
        match self {
            BodySource::Empty | BodySource::Full(_) => true,
            BodySource::Stream(slot) => {
                !slot.progress.started() && slot.body.lock().map(|b| b.is_some()).unwrap_or(false)
            }
        }
    }

    /// How long the streamed body took to send, from its first byte to its last
    /// (so far); zero for other bodies. The total deadline does not count it.
    pub(crate) fn upload_took(&self) -> Duration {
        match self {
            BodySource::Stream(slot) => slot.progress.took(),
            _ => Duration::ZERO,
        }
    }

    /// The body for the next attempt and, for a streamed body, what the attempt
    /// learns of the upload (when it has been handed to the connection completely,
    /// which starts the first-byte timer, and how it moves). Empty and buffered
    /// bodies go out with the head: `None`.
    pub(crate) fn attempt_body(&self) -> (AttemptBody, Option<UploadWatch>) {
        match self {
            BodySource::Empty => (
                AttemptBody {
                    kind: AttemptKind::Empty,
                    finished: None,
                },
                None,
            ),
            BodySource::Full(bytes) => (
                AttemptBody {
                    kind: AttemptKind::Full(Some(bytes.clone())),
                    finished: None,
                },
                None,
            ),
            BodySource::Stream(slot) => {
                let (tx, rx) = watch::channel(false);
                let kind = AttemptKind::Stream {
                    slot: slot.clone(),
                    body: None,
                    yielded: false,
                };
                (
                    AttemptBody {
                        kind,
                        finished: Some(tx),
                    },
                    Some(UploadWatch {
                        sent: rx,
                        progress: slot.progress.clone(),
                    }),
                )
            }
        }
    }
}

/// One attempt's request body (see the module docs).
pub(crate) struct AttemptBody {
    kind: AttemptKind,
    finished: Option<watch::Sender<bool>>,
}

enum AttemptKind {
    Empty,
    Full(Option<Bytes>),
    Stream {
        slot: Arc<StreamSlot>,
        body: Option<axum::body::Body>,
        yielded: bool,
    },
}

impl AttemptBody {
    fn mark_finished(&mut self) {
        if let Some(tx) = self.finished.take() {
            let _ = tx.send(true);
        }
    }
}

impl Body for AttemptBody {
    type Data = Bytes;
    type Error = ForwardError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ForwardError>>> {
        let this = self.get_mut();
        let polled = match &mut this.kind {
            AttemptKind::Empty => Poll::Ready(None),
            AttemptKind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            AttemptKind::Stream {
                slot,
                body,
                yielded,
            } => {
                if body.is_none() {
                    *body = slot.body.lock().ok().and_then(|mut b| b.take());
                }
                match body {
                    None => Poll::Ready(Some(Err(ForwardError::RequestBody(
                        "streamed body already consumed by an earlier attempt".into(),
                    )))),
                    Some(inner) => match Pin::new(&mut *inner).poll_frame(cx) {
                        Poll::Ready(Some(Ok(frame))) => {
                            let data = frame.data_ref().is_some_and(|d| !d.is_empty());
                            *yielded |= data;
                            let done = inner.is_end_stream();
                            slot.progress.polled(true, data, done);
                            if done {
                                this.finished.take().map(|tx| tx.send(true));
                            }
                            Poll::Ready(Some(Ok(frame)))
                        }
                        Poll::Ready(Some(Err(e))) => {
                            Poll::Ready(Some(Err(ForwardError::RequestBody(e.to_string()))))
                        }
                        Poll::Ready(None) => {
                            slot.progress.polled(true, false, true);
                            Poll::Ready(None)
                        }
                        Poll::Pending => {
                            slot.progress.polled(false, false, false);
                            Poll::Pending
                        }
                    },
                }
            }
        };
        if matches!(polled, Poll::Ready(None)) {
            this.mark_finished();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            AttemptKind::Empty => true,
            AttemptKind::Full(bytes) => bytes.is_none(),
            AttemptKind::Stream { body: Some(b), .. } => b.is_end_stream(),
            AttemptKind::Stream { .. } => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            AttemptKind::Empty => SizeHint::with_exact(0),
            AttemptKind::Full(Some(bytes)) => SizeHint::with_exact(bytes.len() as u64),
            AttemptKind::Full(None) => SizeHint::with_exact(0),
            AttemptKind::Stream { body: Some(b), .. } => b.size_hint(),
            AttemptKind::Stream { slot, .. } => slot
                .body
                .lock()
                .ok()
                .and_then(|b| b.as_ref().map(Body::size_hint))
                .unwrap_or_default(),
        }
    }
}

impl Drop for AttemptBody {
    fn drop(&mut self) {
        // An attempt that never sent a byte gives the body back for the next attempt.
        if let AttemptKind::Stream {
            slot,
            body,
            yielded,
        } = &mut self.kind
        {
            if !*yielded {
                if let Some(b) = body.take() {
                    if let Ok(mut guard) = slot.body.lock() {
                        *guard = Some(b);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn streamed(chunks: &[&'static str]) -> axum::body::Body {
        let frames: Vec<Result<Bytes, std::io::Error>> = chunks
            .iter()
            .map(|c| Ok(Bytes::from_static(c.as_bytes())))
            .collect();
        axum::body::Body::from_stream(futures_util::stream::iter(frames))
    }

    #[tokio::test]
    async fn unpolled_stream_attempt_hands_body_to_next_attempt() {
        let source = BodySource::new(super::super::OutboundBody::Streaming(streamed(&[
            "ab", "cd",
        ])));
        let (first, _) = source.attempt_body();
        drop(first);
        assert!(source.replayable());
        let (second, _) = source.attempt_body();
        let bytes = second.collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"abcd");
        assert!(!source.replayable());
    }

    #[tokio::test]
    async fn stream_attempt_that_sent_a_byte_is_not_replayable() {
        let source = BodySource::new(super::super::OutboundBody::Streaming(streamed(&[
            "ab", "cd",
        ])));
        let (mut first, _) = source.attempt_body();
        let frame = first.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), "ab");
        drop(first);
        assert!(!source.replayable());
        let (mut second, _) = source.attempt_body();
        assert!(matches!(
            second.frame().await,
            Some(Err(ForwardError::RequestBody(_)))
        ));
    }

    #[tokio::test]
    async fn stream_attempt_signals_when_fully_handed_over() {
        let source = BodySource::new(super::super::OutboundBody::Streaming(streamed(&["ab"])));
        let (body, rx) = source.attempt_body();
        let upload = rx.expect("a streamed body reports when it is handed over");
        assert!(!*upload.sent.borrow());
        assert!(!upload.progress.started());
        let _ = body.collect().await.unwrap();
        assert!(*upload.sent.borrow());
        assert!(upload.progress.started());
    }

    #[tokio::test]
    async fn buffered_source_replays_same_bytes_every_attempt() {
        let source = BodySource::new(super::super::OutboundBody::Buffered(Bytes::from_static(
            b"xyz",
        )));
        for _ in 0..3 {
            let (body, rx) = source.attempt_body();
            assert!(rx.is_none(), "a buffered body goes out with the head");
            assert_eq!(&body.collect().await.unwrap().to_bytes()[..], b"xyz");
            assert!(source.replayable());
        }
    }
}
