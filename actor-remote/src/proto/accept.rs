//! How an accept loop reacts to failures, sans IO: a bounded exponential back-off and a
//! rate-limited log.
//!
//! An accept that fails for lack of file descriptors (`EMFILE`, `ENFILE`) or memory fails
//! again at once: a loop that retries without a pause spins a core and floods the log (one
//! line per try, a million lines in seconds), which also starves the connections that could
//! free descriptors. [`AcceptBackoff`] says how long to pause after each failure (5 ms,
//! doubling, at most 1 s; back to none after a success) and when to log: the first failure,
//! then at most one line per second with the number of failures folded into it.

use std::time::{Duration, Instant};

/// The first pause after a failed accept.
pub const FIRST_PAUSE: Duration = Duration::from_millis(5);
/// The longest pause between two failed accepts.
pub const MAX_PAUSE: Duration = Duration::from_secs(1);
/// At most one log line per this long while accepts keep failing.
pub const LOG_EVERY: Duration = Duration::from_secs(1);

/// What the loop does after a failed accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AfterFailure {
    /// How long to wait before the next accept.
    pub pause: Duration,
    /// `Some(n)`: log now, saying `n` failures happened since the last line (this one
    /// included); `None`: stay quiet.
    pub log: Option<u64>,
}

/// The state of one accept loop's back-off.
#[derive(Debug, Clone, Default)]
pub struct AcceptBackoff {
    pause: Option<Duration>,
    last_log: Option<Instant>,
    unlogged: u64,
}

impl AcceptBackoff {
    /// A loop that has not failed yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// An accept failed at `now`: how long to pause, and whether to log.
    pub fn failed(&mut self, now: Instant) -> AfterFailure {
        let pause = match self.pause {
            None => FIRST_PAUSE,
            Some(p) => (p * 2).min(MAX_PAUSE),
        };
        self.pause = Some(pause);
        self.unlogged += 1;
        let due = self
            .last_log
            .is_none_or(|at| now.saturating_duration_since(at) >= LOG_EVERY);
        let log = due.then(|| {
            self.last_log = Some(now);
            std::mem::take(&mut self.unlogged)
        });
        AfterFailure { pause, log }
    }

    /// An accept succeeded: the next failure starts from the first pause again.
    pub fn succeeded(&mut self) {
        self.pause = None;
    }

    /// Failures not logged yet (folded into the next line).
    pub fn unlogged(&self) -> u64 {
        self.unlogged
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_the_cap_and_reset_after_a_success() {
        let mut b = AcceptBackoff::new();
        let t = Instant::now();
        let pauses: Vec<Duration> = (0..12).map(|_| b.failed(t).pause).collect();
        assert_eq!(pauses[0], FIRST_PAUSE);
        assert_eq!(pauses[1], FIRST_PAUSE * 2);
        assert_eq!(pauses[2], FIRST_PAUSE * 4);
        assert!(pauses.windows(2).all(|w| w[1] >= w[0]), "{pauses:?}");
        assert_eq!(*pauses.last().unwrap_or(&Duration::ZERO), MAX_PAUSE);
        b.succeeded();
        assert_eq!(b.failed(t).pause, FIRST_PAUSE);
    }

    #[test]
    fn logs_the_first_failure_then_once_per_interval_with_the_count() {
        let mut b = AcceptBackoff::new();
        let t0 = Instant::now();
        assert_eq!(b.failed(t0).log, Some(1), "the first failure is logged");
        for i in 1..1000u32 {
            let now = t0 + LOG_EVERY * i / 1000; // all within the first interval
            assert_eq!(b.failed(now).log, None);
        }
        assert_eq!(b.unlogged(), 999);
        assert_eq!(
            b.failed(t0 + LOG_EVERY).log,
            Some(1000),
            "the next line says how many failures it stands for"
        );
        assert_eq!(b.unlogged(), 0);
    }

    #[test]
    fn a_million_failures_in_ten_seconds_make_at_most_eleven_lines() {
        let mut b = AcceptBackoff::new();
        let t0 = Instant::now();
        let mut lines = 0;
        let mut total = 0;
        for i in 0..1_000_000u32 {
            let now = t0 + Duration::from_micros(u64::from(i) * 10);
            if let Some(n) = b.failed(now).log {
                lines += 1;
                total += n;
            }
        }
        assert!(lines <= 11, "{lines} lines");
        assert_eq!(
            total + b.unlogged(),
            1_000_000,
            "every failure is counted once"
        );
    }
}
