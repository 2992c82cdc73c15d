//! What a worker knows about each client connection it serves, and how it
//! tells one to drain or close.
//!
//! A connection is *busy* while a request is being handled or its response is
//! still streaming back, and *idle* otherwise: between keep-alive requests, and
//! while a request head is still arriving. The worker looks at its connections
//! about once a second and closes any that has been idle for
//! `connections.idle_timeout`; on a drain it asks every connection to finish
//! what it is doing and close. Serving a request costs a counter update and,
//! when the connection turns idle, one clock read: no timer is armed per
//! request and nothing is polled per wake but a flag.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use http_body::{Body, Frame, SizeHint};

/// What the worker asks of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Signal {
    /// Keep serving.
    Run = 0,
    /// Finish the requests in flight, then close.
    Drain = 1,
    /// Close now (the connection has been idle too long): an h2 connection
    /// is sent a GOAWAY first.
    Close = 2,
}

impl Signal {
    fn from_u8(value: u8) -> Self {
        match value {
            1 => Signal::Drain,
            2 => Signal::Close,
            _ => Signal::Run,
        }
    }
}

/// One client connection's state, shared by its task, the requests it serves
/// and its worker.
#[derive(Debug)]
pub(super) struct Control {
    /// When the connection was accepted; times below count from here.
    opened: Instant,
    /// Requests handled or still streaming their response.
    busy: AtomicU32,
    /// Milliseconds after `opened` at which the connection last turned idle.
    idle_since_ms: AtomicU64,
    /// A [`Signal`] as its number.
    signal: AtomicU8,
    /// The connection's task, woken when the signal changes.
    waker: AtomicWaker,
}

impl Control {
    /// State for a connection accepted now (idle: no request has arrived yet).
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Self {
            opened: Instant::now(),
            busy: AtomicU32::new(0),
            idle_since_ms: AtomicU64::new(0),
            signal: AtomicU8::new(Signal::Run as u8),
            waker: AtomicWaker::new(),
        })
    }

    /// Registers the calling task to be woken on a new signal and returns the
    /// current one. Called by the connection's task every time it is polled.
    pub(super) fn poll_signal(&self, cx: &mut Context<'_>) -> Signal {
        self.waker.register(cx.waker());
        Signal::from_u8(self.signal.load(Ordering::Acquire))
    }

    /// Asks the connection to drain or close and wakes its task. A request to
    /// drain never undoes a request to close.
    pub(super) fn send(&self, signal: Signal) {
        self.signal.fetch_max(signal as u8, Ordering::AcqRel);
        self.waker.wake();
    }

    /// Marks a request as started; the connection stays busy until the
    /// returned guard is dropped (the response has been handed back in full,
    /// or the request was abandoned).
    pub(super) fn begin(self: &Arc<Self>) -> Busy {
        self.busy.fetch_add(1, Ordering::Relaxed);
        Busy(self.clone())
    }

    /// How long the connection has been idle at `now`; `None` while busy.
    pub(super) fn idle_for(&self, now: Instant) -> Option<Duration> {
        if self.busy.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let since = Duration::from_millis(self.idle_since_ms.load(Ordering::Relaxed));
        Some(now.saturating_duration_since(self.opened + since))
    }
}

/// Keeps its connection busy while it lives.
#[derive(Debug)]
pub(super) struct Busy(Arc<Control>);

impl Drop for Busy {
    fn drop(&mut self) {
        let control = &self.0;
        if control.busy.fetch_sub(1, Ordering::Relaxed) == 1 {
            let ms = u64::try_from(control.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
            control.idle_since_ms.store(ms, Ordering::Relaxed);
        }
    }
}

/// A response body that keeps its connection busy until hyper has taken all
/// of it (or dropped it).
pub(super) struct Tracked<B> {
    body: B,
    _busy: Busy,
}

impl<B> Tracked<B> {
    /// Wraps `body`, holding `busy` until the body is dropped.
    pub(super) fn new(body: B, busy: Busy) -> Self {
        Self { body, _busy: busy }
    }
}

impl<B> Body for Tracked<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A worker's open connections, for its periodic idle check and its drain.
pub(super) struct Registry {
    connections: Vec<Weak<Control>>,
    idle_timeout: Duration,
    draining: bool,
}

impl Registry {
    /// An empty registry closing connections idle for `idle_timeout`.
    pub(super) fn new(idle_timeout: Duration) -> Self {
        Self {
            connections: Vec::new(),
            idle_timeout,
            draining: false,
        }
    }

    /// How often [`Registry::close_idle`] should run: a tenth of the idle
    /// timeout, between 10 ms and 1 s, so a connection closes at most that
    /// late.
    pub(super) fn check_every(&self) -> Duration {
        (self.idle_timeout / 10).clamp(Duration::from_millis(10), Duration::from_secs(1))
    }

    /// Adds a new connection (told to drain at once if the worker is draining).
    pub(super) fn add(&mut self, control: &Arc<Control>) {
        if self.draining {
            control.send(Signal::Drain);
        }
        self.connections.push(Arc::downgrade(control));
    }

    /// Tells every open connection to drain, and every later one too.
    pub(super) fn drain(&mut self) {
        self.draining = true;
        self.connections.retain(|weak| match weak.upgrade() {
            Some(control) => {
                control.send(Signal::Drain);
                true
            }
            None => false,
        });
    }

    /// Closes the connections idle for at least the idle timeout at `now`,
    /// forgets the ones that have closed, and returns how many it closed.
    pub(super) fn close_idle(&mut self, now: Instant) -> usize {
        let timeout = self.idle_timeout;
        let mut closed = 0;
        self.connections.retain(|weak| {
            let Some(control) = weak.upgrade() else {
                return false;
            };
            match control.idle_for(now) {
                Some(idle) if idle >= timeout => {
                    control.send(Signal::Close);
                    closed += 1;
                    false
                }
                _ => true,
            }
        });
        closed
    }

    /// Connections still open.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.connections
            .iter()
            .filter(|w| w.strong_count() > 0)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

    struct CountingWaker(AtomicUsize);
    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counting_waker() -> (Arc<CountingWaker>, std::task::Waker) {
        let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
        (counter.clone(), counter.into())
    }

    #[test]
    fn a_new_connection_is_idle_from_the_start() {
        let control = Control::new();
        let idle = control.idle_for(control.opened + Duration::from_millis(250));
        assert_eq!(idle, Some(Duration::from_millis(250)));
    }

    #[test]
    fn busy_while_any_request_lives_and_idle_from_when_the_last_ends() {
        let control = Control::new();
        let first = control.begin();
        let second = control.begin();
        assert_eq!(control.idle_for(Instant::now()), None);
        drop(first);
        assert_eq!(control.idle_for(Instant::now()), None, "one still busy");
        std::thread::sleep(Duration::from_millis(30));
        let before = Instant::now();
        drop(second);
        let now = Instant::now();
        let idle = control.idle_for(now).expect("idle");
        // Counted from the last end (kept in whole milliseconds), not from
        // the first 30 ms earlier.
        assert!(
            idle <= now - before + Duration::from_millis(1),
            "idle counts from the end: {idle:?}"
        );
    }

    #[tokio::test]
    async fn a_tracked_body_keeps_the_connection_busy_until_dropped() {
        let control = Control::new();
        let body = Tracked::new(Full::new(Bytes::from_static(b"abc")), control.begin());
        assert_eq!(body.size_hint().exact(), Some(3));
        assert_eq!(control.idle_for(Instant::now()), None);
        let mut body = body;
        let frame = body.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), Bytes::from_static(b"abc"));
        assert!(body.is_end_stream());
        assert_eq!(control.idle_for(Instant::now()), None, "not dropped yet");
        drop(body);
        assert!(control.idle_for(Instant::now()).is_some());
    }

    #[test]
    fn signals_wake_the_task_and_close_wins_over_drain() {
        let control = Control::new();
        let (count, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        assert_eq!(control.poll_signal(&mut cx), Signal::Run);
        control.send(Signal::Close);
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        control.send(Signal::Drain);
        assert_eq!(control.poll_signal(&mut cx), Signal::Close);
    }

    #[test]
    fn closes_only_connections_idle_past_the_timeout() {
        let mut registry = Registry::new(Duration::from_secs(60));
        let (idle, busy, fresh) = (Control::new(), Control::new(), Control::new());
        for c in [&idle, &busy, &fresh] {
            registry.add(c);
        }
        let _request = busy.begin();
        let now = idle.opened + Duration::from_secs(61);
        // `fresh` was opened after `idle`; pretend it turned idle a second ago.
        let fresh_ms = now.duration_since(fresh.opened).as_millis() as u64 - 1000;
        fresh.idle_since_ms.store(fresh_ms, Ordering::Relaxed);

        assert_eq!(registry.close_idle(now), 1);
        assert_eq!(registry.len(), 2, "the closed one is forgotten");
        assert_eq!(
            Signal::from_u8(idle.signal.load(Ordering::SeqCst)),
            Signal::Close
        );
        assert_eq!(
            Signal::from_u8(busy.signal.load(Ordering::SeqCst)),
            Signal::Run
        );
        assert_eq!(
            Signal::from_u8(fresh.signal.load(Ordering::SeqCst)),
            Signal::Run
        );
    }

    #[test]
    fn drain_reaches_open_and_later_connections_and_forgets_closed_ones() {
        let mut registry = Registry::new(Duration::from_secs(60));
        let open = Control::new();
        registry.add(&open);
        registry.add(&Control::new()); // closed at once: only a weak reference remains
        registry.drain();
        assert_eq!(registry.len(), 1);
        assert_eq!(
            Signal::from_u8(open.signal.load(Ordering::SeqCst)),
            Signal::Drain
        );
        let later = Control::new();
        registry.add(&later);
        assert_eq!(
            Signal::from_u8(later.signal.load(Ordering::SeqCst)),
            Signal::Drain
        );
    }

    #[test]
    fn checks_often_enough_for_the_timeout() {
        let every = |t| Registry::new(t).check_every();
        assert_eq!(every(Duration::from_secs(60)), Duration::from_secs(1));
        assert_eq!(every(Duration::from_millis(500)), Duration::from_millis(50));
        assert_eq!(every(Duration::from_millis(50)), Duration::from_millis(10));
    }
}
