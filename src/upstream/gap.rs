//! How long a body has been waiting for its next frame.
//!
//! A body is only *waiting* while it is being polled and its source has
//! nothing to give. Time between two polls does not count: when the reader is
//! the slow side (a client reading a download slowly, an upstream accepting an
//! upload slowly), the body is not polled and the gap does not grow. The timer
//! is made on the first wait and re-armed once per wait, never per frame.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// The gap timer of one body.
#[derive(Debug)]
pub(crate) struct GapTimer {
    after: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
    waiting: bool,
}

impl GapTimer {
    /// A timer firing once the body has waited `after` for one frame.
    pub(crate) fn new(after: Duration) -> Self {
        Self {
            after,
            sleep: None,
            waiting: false,
        }
    }

    /// The longest wait allowed.
    pub(crate) fn after(&self) -> Duration {
        self.after
    }

    /// Notes that the body produced a frame (or ended): the next wait starts
    /// afresh.
    pub(crate) fn frame(&mut self) {
        self.waiting = false;
    }

    /// Notes that the body's source is pending; ready once it has been
    /// pending for `after` since the last frame's wait began.
    pub(crate) fn poll_wait(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let starts = !std::mem::replace(&mut self.waiting, true);
        let after = self.after;
        let sleep = match &mut self.sleep {
            Some(sleep) => {
                if starts {
                    sleep.as_mut().reset(Instant::now() + after);
                }
                sleep
            }
            None => self.sleep.insert(Box::pin(tokio::time::sleep(after))),
        };
        sleep.as_mut().poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;

    /// Polls the timer once as a pending body would.
    async fn wait_once(timer: &mut GapTimer) -> bool {
        poll_fn(|cx| Poll::Ready(timer.poll_wait(cx).is_ready())).await
    }

    #[tokio::test(start_paused = true)]
    async fn fires_after_an_unbroken_wait() {
        let mut timer = GapTimer::new(Duration::from_secs(5));
        assert!(!wait_once(&mut timer).await);
        tokio::time::advance(Duration::from_secs(4)).await;
        assert!(!wait_once(&mut timer).await);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(wait_once(&mut timer).await);
    }

    #[tokio::test(start_paused = true)]
    async fn a_frame_starts_the_next_wait_afresh() {
        let mut timer = GapTimer::new(Duration::from_secs(5));
        assert!(!wait_once(&mut timer).await);
        tokio::time::advance(Duration::from_secs(4)).await;
        timer.frame();
        assert!(!wait_once(&mut timer).await);
        tokio::time::advance(Duration::from_secs(4)).await;
        assert!(
            !wait_once(&mut timer).await,
            "8 s in all, 4 s since the frame"
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(wait_once(&mut timer).await);
    }

    #[tokio::test(start_paused = true)]
    async fn time_between_polls_is_not_waiting() {
        let mut timer = GapTimer::new(Duration::from_secs(5));
        assert!(!wait_once(&mut timer).await);
        timer.frame();
        // The reader is slow: a minute passes before the body is polled again.
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(!wait_once(&mut timer).await, "the wait starts now");
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(wait_once(&mut timer).await);
    }
}
