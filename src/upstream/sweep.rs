//! When to sweep a map of per-upstream state that grows on first use.
//!
//! Host routing can name a new upstream on any request (each S3 bucket is its
//! own host), so the in-flight counters and retry states keyed by upstream
//! would otherwise grow for the process's life. A map is swept of entries
//! that hold nothing worth keeping each time it has doubled since its last
//! sweep: the cost stays constant per new entry, and a map of the upstreams
//! actually in use is never swept at all.

/// The size below which a map is never swept.
const MIN_SWEEP_LEN: usize = 64;

/// The size at which a map is next swept.
#[derive(Debug)]
pub(crate) struct SweepAt(usize);

impl Default for SweepAt {
    fn default() -> Self {
        Self(MIN_SWEEP_LEN)
    }
}

impl SweepAt {
    /// Whether a map of `len` entries, about to get one more, is due a sweep.
    pub(crate) fn due(&self, len: usize) -> bool {
        len >= self.0
    }

    /// Records a sweep that left `len` entries: the next one is due when the
    /// map has doubled.
    pub(crate) fn swept(&mut self, len: usize) {
        self.0 = (2 * len).max(MIN_SWEEP_LEN);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweeps_when_the_map_has_doubled_since_the_last_sweep() {
        let mut at = SweepAt::default();
        assert!(!at.due(MIN_SWEEP_LEN - 1));
        assert!(at.due(MIN_SWEEP_LEN));
        // A sweep that kept 100 entries waits for 200.
        at.swept(100);
        assert!(!at.due(199));
        assert!(at.due(200));
        // A sweep that kept almost nothing waits for the minimum again.
        at.swept(3);
        assert!(!at.due(MIN_SWEEP_LEN - 1));
        assert!(at.due(MIN_SWEEP_LEN));
    }
}
