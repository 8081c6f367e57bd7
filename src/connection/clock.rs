//! A cheap monotonic clock for per-datagram bookkeeping.

use std::time::Duration;

/// A point of `CLOCK_MONOTONIC_COARSE`: read on every received datagram
/// (to tell a quiet connection), where the precise clock's reading and
/// arithmetic cost more than the rest of the bookkeeping. Its resolution
/// is the kernel tick (1–4 ms), which a gap of
/// [`super::engine::QUIET_GAP`] tolerates.
#[derive(Debug, Clone, Copy)]
pub struct CoarseInstant(Duration);

impl CoarseInstant {
    pub fn now() -> CoarseInstant {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is writable for the call. The clock exists on every
        // Linux since 2.6.32; on failure `ts` stays zero, which only makes
        // the connection look busy.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
        CoarseInstant(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
    }

    /// Time from `earlier` to `self` (zero if it is not earlier).
    pub fn since(self, earlier: CoarseInstant) -> Duration {
        self.0.saturating_sub(earlier.0)
    }
}
