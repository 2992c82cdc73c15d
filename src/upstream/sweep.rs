//! When to sweep a map of per-upstream state that grows on first use.
//!
//! Host routing can name a new upstream on any request (each S3 bucket is its
//! own host), so the in-flight counters and retry states keyed by upstream
//! would otherwise grow for the process's life. A map is swept of entries
//! that hold nothing worth keeping each time it has doubled since its last
//! sweep: the cost stays constant per new entry, and a map of the upstreams
//! actually in use is never swept at all.

use std::collections::HashMap;

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
    /// Before `map` gets one more entry: if it has doubled since its last
    /// sweep, drops the entries `keep` says hold nothing.
    pub(crate) fn before_insert<K, V, S>(
        &mut self,
        map: &mut HashMap<K, V, S>,
        keep: impl FnMut(&K, &mut V) -> bool,
    ) {
        if self.due(map.len()) {
            map.retain(keep);
            self.swept(map.len());
        }
    }

    /// Whether a map of `len` entries, about to get one more, is due a sweep.
    fn due(&self, len: usize) -> bool {
        len >= self.0
    }

    /// Records a sweep that left `len` entries: the next one is due when the
    /// map has doubled.
    fn swept(&mut self, len: usize) {
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

    #[test]
    fn drops_what_keep_refuses_only_when_due() {
        let mut at = SweepAt::default();
        let mut map: HashMap<usize, bool> = (0..MIN_SWEEP_LEN - 1).map(|i| (i, i < 10)).collect();
        at.before_insert(&mut map, |_, kept| *kept);
        assert_eq!(map.len(), MIN_SWEEP_LEN - 1, "not due yet");
        map.insert(MIN_SWEEP_LEN - 1, false);
        at.before_insert(&mut map, |_, kept| *kept);
        assert_eq!(map.len(), 10);
        assert!(!at.due(MIN_SWEEP_LEN - 1));
    }
}
