//! Request and response bodies on the proxy path.
//!
//! - [`buffer_capped`] reads a body that must be hashed (signed payloads) into
//!   memory, refusing anything past the route's cap before it is forwarded.
//! - [`ClientBody`] gives up on a client that stops sending its request body
//!   while signet waits for more (the route's `timeouts.idle`).
//! - [`Tapped`] streams the upstream's response back frame by frame, counting
//!   bytes, and runs a completion callback exactly once, when the stream ends or
//!   the client goes away, so the access log and metrics see the whole exchange.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;

use super::error::ProxyError;
use crate::upstream::{duration_serde, GapTimer};

/// An error a request body reports upward (to signet's reader or to hyper).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A client's request body that fails once the client has sent nothing for
/// `idle` while signet is waiting for more of it. Time signet spends not
/// reading (an upstream accepting an upload slowly) does not count.
pub struct ClientBody<B> {
    body: B,
    gap: GapTimer,
    stalled: bool,
}

impl<B> ClientBody<B> {
    /// Wraps `body` with a gap limit of `idle`.
    pub fn new(body: B, idle: std::time::Duration) -> Self {
        Self {
            body,
            gap: GapTimer::new(idle),
            stalled: false,
        }
    }
}

impl<B> Body for ClientBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.stalled {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Pending => match this.gap.poll_wait(cx) {
                Poll::Ready(()) => {
                    this.stalled = true;
                    let reason = format!(
                        "the client sent no body data for {} (timeouts.idle)",
                        duration_serde::format(this.gap.after())
                    );
                    Poll::Ready(Some(Err(reason.into())))
                }
                Poll::Pending => Poll::Pending,
            },
            Poll::Ready(frame) => {
                this.gap.frame();
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.stalled || self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Reads `body` into memory, failing with [`ProxyError::BodyTooLarge`] as soon as
/// it is known to exceed `cap` bytes (from `declared_len` or while reading).
pub async fn buffer_capped<B>(
    body: B,
    declared_len: Option<u64>,
    cap: u64,
) -> Result<Bytes, ProxyError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    if declared_len.is_some_and(|n| n > cap) {
        return Err(ProxyError::BodyTooLarge { cap });
    }
    let mut body = body;
    let mut first: Option<Bytes> = None;
    let mut rest: Option<BytesMut> = None;
    let mut total: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ProxyError::ClientBody(e.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        total += data.len() as u64;
        if total > cap {
            return Err(ProxyError::BodyTooLarge { cap });
        }
        // The common case is a single frame: keep it without copying.
        match (&mut first, &mut rest) {
            (None, _) => first = Some(data),
            (Some(f), None) => {
                // The declared length sizes the buffer, but only up to what has
                // arrived times a few: a client cannot make signet set aside a
                // large buffer with a few bytes and a Content-Length.
                let arrived = f.len() + data.len();
                let mut joined = BytesMut::with_capacity(declared_len.map_or(arrived, |n| {
                    usize::try_from(n)
                        .unwrap_or(usize::MAX)
                        .min(arrived.saturating_mul(4))
                }));
                joined.extend_from_slice(f);
                joined.extend_from_slice(&data);
                rest = Some(joined);
            }
            (Some(_), Some(joined)) => joined.extend_from_slice(&data),
        }
    }
    Ok(match (first, rest) {
        (_, Some(joined)) => joined.freeze(),
        (Some(f), None) => f,
        (None, None) => Bytes::new(),
    })
}

/// How a tapped response stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEnd {
    /// Every frame reached the client.
    Complete,
    /// The upstream body failed mid-stream.
    Failed,
    /// The client went away before the end.
    Abandoned,
}

pin_project_lite::pin_project! {
    /// A response body that counts the bytes it passes on and calls `on_end` once.
    pub struct Tapped<B, F: FnOnce(u64, StreamEnd)> {
        #[pin]
        inner: B,
        bytes: u64,
        on_end: Option<F>,
    }

    impl<B, F: FnOnce(u64, StreamEnd)> PinnedDrop for Tapped<B, F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(f) = this.on_end.take() {
                f(*this.bytes, StreamEnd::Abandoned);
            }
        }
    }
}

impl<B, F: FnOnce(u64, StreamEnd)> Tapped<B, F> {
    /// Wraps `inner`; `on_end(bytes, how)` runs once at the end of the stream.
    pub fn new(inner: B, on_end: F) -> Self {
        Self {
            inner,
            bytes: 0,
            on_end: Some(on_end),
        }
    }
}

impl<B, F> Body for Tapped<B, F>
where
    B: Body<Data = Bytes>,
    F: FnOnce(u64, StreamEnd),
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    *this.bytes += data.len() as u64;
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(f) = this.on_end.take() {
                    f(*this.bytes, StreamEnd::Failed);
                }
            }
            Poll::Ready(None) => {
                if let Some(f) = this.on_end.take() {
                    f(*this.bytes, StreamEnd::Complete);
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{Full, StreamBody};
    use std::sync::{Arc, Mutex};

    fn chunks(parts: &[&'static [u8]]) -> impl Body<Data = Bytes, Error = std::io::Error> + Unpin {
        let frames: Vec<Result<Frame<Bytes>, std::io::Error>> = parts
            .iter()
            .map(|p| Ok(Frame::data(Bytes::from_static(p))))
            .collect();
        StreamBody::new(futures_util::stream::iter(frames))
    }

    /// `first`, then nothing more, ever (a client that stopped sending).
    fn stalls_after(
        first: &'static [u8],
    ) -> impl Body<Data = Bytes, Error = std::io::Error> + Unpin {
        let frame: Result<Frame<Bytes>, std::io::Error> =
            Ok(Frame::data(Bytes::from_static(first)));
        StreamBody::new(futures_util::StreamExt::chain(
            futures_util::stream::iter([frame]),
            futures_util::stream::pending(),
        ))
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_client_body_fails_after_the_idle_gap() {
        let started = tokio::time::Instant::now();
        let body = ClientBody::new(stalls_after(b"abc"), std::time::Duration::from_secs(30));
        let err = buffer_capped(body, Some(10), 100).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "reading the request body failed: the client sent no body data for 30s (timeouts.idle)"
        );
        assert_eq!(started.elapsed(), std::time::Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_body_that_keeps_coming_passes_untouched() {
        let body = ClientBody::new(chunks(&[b"ab", b"cd"]), std::time::Duration::from_secs(1));
        assert_eq!(body.size_hint().exact(), None);
        let bytes = buffer_capped(body, None, 100).await.unwrap();
        assert_eq!(&bytes[..], b"abcd");
    }

    #[tokio::test]
    async fn buffers_multi_frame_body_under_cap() {
        let b = buffer_capped(chunks(&[b"ab", b"cd", b"e"]), None, 5)
            .await
            .unwrap();
        assert_eq!(&b[..], b"abcde");
    }

    #[tokio::test]
    async fn rejects_body_over_cap_while_reading() {
        let e = buffer_capped(chunks(&[b"abc", b"def"]), None, 5)
            .await
            .unwrap_err();
        assert!(matches!(e, ProxyError::BodyTooLarge { cap: 5 }));
    }

    #[tokio::test]
    async fn rejects_declared_length_over_cap_without_reading() {
        let e = buffer_capped(Full::new(Bytes::from_static(b"x")), Some(10), 5)
            .await
            .unwrap_err();
        assert!(matches!(e, ProxyError::BodyTooLarge { cap: 5 }));
    }

    #[tokio::test]
    async fn tap_counts_bytes_and_reports_completion_once() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let tapped = Tapped::new(chunks(&[b"hello", b" world"]), move |n, end| {
            s.lock().unwrap().push((n, end));
        });
        let out = tapped.collect().await.unwrap().to_bytes();
        assert_eq!(&out[..], b"hello world");
        assert_eq!(*seen.lock().unwrap(), vec![(11, StreamEnd::Complete)]);
    }

    #[tokio::test]
    async fn tap_reports_abandoned_stream_on_drop() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let mut tapped = Tapped::new(chunks(&[b"hello", b" world"]), move |n, end| {
            s.lock().unwrap().push((n, end));
        });
        let _ = tapped.frame().await;
        drop(tapped);
        assert_eq!(*seen.lock().unwrap(), vec![(5, StreamEnd::Abandoned)]);
    }
}
