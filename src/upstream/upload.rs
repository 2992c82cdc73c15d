//! How a streamed request body is moving toward the upstream, and the guard
//! that ends an attempt whose upload stopped.
//!
//! A streamed upload may take longer than `timeouts.total` (a single multi-GiB
//! PUT): while its bytes move, the time it takes does not count against the
//! deadline. What bounds it instead is `timeouts.idle` on both sides: the
//! client's body reader answers 400 when the client stops sending, and
//! [`guard`] answers 504 (`idle_timeout`) when the upstream stops taking data,
//! that is when the connection has not come back for the next frame for that
//! long. The upload begins when the connection first asks for the body (the
//! head is out), even if the client's first bytes are still on their way: a
//! re-signed aws-chunked body has nothing to hand over until a whole chunk
//! has arrived. Before that the total deadline holds as for any request;
//! after the last frame it holds again, moved later by the time the upload
//! took.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::error::TimeoutKind;

/// The state of one request's streamed body, written by the attempt body as the
/// connection polls it and read by [`guard`] and the retry loop.
#[derive(Debug)]
pub(crate) struct UploadProgress {
    base: Instant,
    /// Nanoseconds after `base` (plus one; 0: not yet) when the connection
    /// first asked for the body.
    asked: AtomicU64,
    /// Nanoseconds after `base` (plus one; 0: not yet) when the first byte was
    /// handed to the connection.
    started: AtomicU64,
    /// Nanoseconds after `base` (plus one; 0: not yet) when the last frame was.
    finished: AtomicU64,
    /// The connection's latest poll, in one word so the two are read together:
    /// nanoseconds after `base`, shifted left by one, with the low bit set if
    /// that poll got a frame (the next move is then the connection's: the
    /// upstream side holds things up) and clear while signet waits for the
    /// client.
    polled: AtomicU64,
}

impl UploadProgress {
    pub(crate) fn new() -> Self {
        Self {
            base: Instant::now(),
            asked: AtomicU64::new(0),
            started: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            polled: AtomicU64::new(0),
        }
    }

    fn since_base(&self, at: Instant) -> u64 {
        // At most 2^62 ns (146 years): room for the poll word's flag bit.
        u64::try_from(at.saturating_duration_since(self.base).as_nanos())
            .unwrap_or(u64::MAX)
            .min(1 << 62)
    }

    fn at(&self, stamp: u64) -> Instant {
        self.base + Duration::from_nanos(stamp)
    }

    /// Notes a poll by the connection: `frame` tells whether it got one (with
    /// `data` bytes in it), `end` whether that was the last.
    pub(crate) fn polled(&self, frame: bool, data: bool, end: bool) {
        let now = self.since_base(Instant::now());
        self.polled
            .store(now << 1 | u64::from(frame), Ordering::Relaxed);
        if self.asked.load(Ordering::Relaxed) == 0 {
            self.asked.store(now + 1, Ordering::Release);
        }
        if data && self.started.load(Ordering::Relaxed) == 0 {
            self.started.store(now + 1, Ordering::Release);
        }
        if end && self.finished.load(Ordering::Relaxed) == 0 {
            self.finished.store(now + 1, Ordering::Release);
        }
    }

    /// Whether a byte of the body has gone out (until then it can be sent
    /// again, on another attempt).
    pub(crate) fn started(&self) -> bool {
        self.started.load(Ordering::Acquire) != 0
    }

    /// Whether the connection has asked for the body: the upload is under way.
    pub(crate) fn asked(&self) -> bool {
        self.asked.load(Ordering::Acquire) != 0
    }

    /// How long the upload took from the connection's first request for the
    /// body to its last byte (so far, if it is still going); zero before it
    /// begins.
    pub(crate) fn took(&self) -> Duration {
        let started = self.asked.load(Ordering::Acquire);
        if started == 0 {
            return Duration::ZERO;
        }
        let finished = match self.finished.load(Ordering::Acquire) {
            0 => self.since_base(Instant::now()) + 1,
            end => end,
        };
        Duration::from_nanos(finished.saturating_sub(started))
    }

    /// When the upload is overdue on the upstream's side: `idle` after the
    /// connection last got a frame, if it has not been back since. `None`
    /// while signet is waiting for the client.
    fn stalled_at(&self, idle: Duration) -> Option<Instant> {
        let polled = self.polled.load(Ordering::Relaxed);
        (polled & 1 == 1).then(|| self.at(polled >> 1) + idle)
    }
}

/// Fires when an attempt with a streamed body should end: [`TimeoutKind::Total`]
/// at `deadline` (moved later by the upload's duration once it began), or
/// [`TimeoutKind::Idle`] when the upstream stopped taking the body for `idle`.
/// `sent` turns true once the whole body was handed over.
pub(crate) async fn guard(
    progress: &UploadProgress,
    mut sent: watch::Receiver<bool>,
    idle: Duration,
    deadline: Instant,
) -> TimeoutKind {
    // Until the connection asks for the body: the deadline, checked at least
    // every `idle`.
    while !progress.asked() {
        let now = Instant::now();
        if now >= deadline {
            return TimeoutKind::Total;
        }
        tokio::time::sleep_until(deadline.min(now + idle)).await;
    }
    // While it moves: only a stalled upstream ends it.
    loop {
        if *sent.borrow() {
            break;
        }
        let check = match progress.stalled_at(idle) {
            Some(due) if due <= Instant::now() => return TimeoutKind::Idle,
            Some(due) => due,
            // Waiting for the client: its own gap timer answers a stall.
            None => Instant::now() + idle,
        };
        tokio::select! {
            () = tokio::time::sleep_until(check) => {}
            changed = sent.changed() => {
                if changed.is_err() {
                    // The body was dropped unfinished: the attempt fails on its own.
                    std::future::pending::<()>().await;
                }
            }
        }
    }
    // Sent: the deadline again, later by the time the upload took.
    tokio::time::sleep_until(deadline + progress.took()).await;
    TimeoutKind::Total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress_and_sent() -> (UploadProgress, watch::Sender<bool>, watch::Receiver<bool>) {
        let (tx, rx) = watch::channel(false);
        (UploadProgress::new(), tx, rx)
    }

    #[tokio::test(start_paused = true)]
    async fn an_unstarted_upload_meets_the_deadline() {
        let (progress, _tx, rx) = progress_and_sent();
        let start = Instant::now();
        let kind = guard(
            &progress,
            rx,
            Duration::from_secs(1),
            start + Duration::from_secs(5),
        )
        .await;
        assert_eq!(kind, TimeoutKind::Total);
        assert_eq!(start.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_moving_upload_outlasts_the_deadline_and_a_stalled_upstream_ends_it() {
        let (progress, _tx, rx) = progress_and_sent();
        let start = Instant::now();
        let idle = Duration::from_secs(2);
        let guarded = guard(&progress, rx, idle, start + Duration::from_secs(3));
        tokio::pin!(guarded);
        // A frame every second for ten seconds, each taken at once.
        for _ in 0..10 {
            progress.polled(true, true, false);
            tokio::select! {
                kind = &mut guarded => panic!("fired at {:?} with {kind:?}", start.elapsed()),
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
        // The upstream stops coming back for frames: `idle` after the last one.
        progress.polled(true, true, false);
        let stalled = Instant::now();
        assert_eq!(guarded.await, TimeoutKind::Idle);
        assert_eq!(stalled.elapsed(), idle);
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_for_the_client_is_left_to_the_client_timer() {
        let (progress, _tx, rx) = progress_and_sent();
        let start = Instant::now();
        progress.polled(true, true, false);
        progress.polled(false, false, false);
        let guarded = guard(&progress, rx, Duration::from_secs(1), start);
        let outcome = tokio::time::timeout(Duration::from_secs(30), guarded).await;
        assert!(outcome.is_err(), "fired while signet waited for the client");
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_slow_to_send_its_first_bytes_is_left_to_the_client_timer() {
        // A re-signed aws-chunked body hands nothing over until a whole chunk
        // has arrived; the upload began when the connection asked for it.
        let (progress, tx, rx) = progress_and_sent();
        let start = Instant::now();
        let deadline = start + Duration::from_secs(3);
        let guarded = guard(&progress, rx, Duration::from_secs(1), deadline);
        tokio::pin!(guarded);
        progress.polled(false, false, false);
        assert!(!progress.started(), "nothing went out: still replayable");
        tokio::select! {
            kind = &mut guarded => panic!("fired at {:?} with {kind:?}", start.elapsed()),
            () = tokio::time::sleep(Duration::from_secs(10)) => {}
        }
        // The chunk arrives and goes out in one frame, the last.
        progress.polled(true, true, true);
        tx.send(true).unwrap();
        assert_eq!(progress.took(), Duration::from_secs(10));
        assert_eq!(guarded.await, TimeoutKind::Total);
        assert_eq!(start.elapsed(), Duration::from_secs(13));
    }

    #[tokio::test(start_paused = true)]
    async fn after_the_upload_the_deadline_is_moved_by_its_duration() {
        let (progress, tx, rx) = progress_and_sent();
        let start = Instant::now();
        progress.polled(true, true, false);
        tokio::time::sleep(Duration::from_secs(4)).await;
        progress.polled(true, true, true);
        tx.send(true).unwrap();
        let took = progress.took();
        assert_eq!(took, Duration::from_secs(4));
        let kind = guard(
            &progress,
            rx,
            Duration::from_secs(10),
            start + Duration::from_secs(3),
        )
        .await;
        assert_eq!(kind, TimeoutKind::Total);
        assert_eq!(start.elapsed(), Duration::from_secs(7));
    }
}
