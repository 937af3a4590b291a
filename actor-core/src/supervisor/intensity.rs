//! Restart intensity: at most `max_restarts` restarts in a sliding window.

use std::{collections::VecDeque, time::Duration};

use tokio::time::Instant;

/// Restart intensity, as an OTP supervisor's: at most `max_restarts` restarts within a
/// sliding window. Used by [`Supervisor`](crate::Supervisor) and by supervisors built
/// elsewhere (the cluster-wide one in `actor-remote`).
///
/// ```
/// use std::time::Duration;
/// use actor_core::RestartIntensity;
/// let t0 = tokio::time::Instant::now();
/// let mut intensity = RestartIntensity::new(1, Duration::from_secs(5));
/// assert!(intensity.record(t0));
/// assert!(!intensity.record(t0 + Duration::from_secs(1)), "a second restart within 5 s");
/// ```
#[derive(Debug, Clone)]
pub struct Intensity {
    max_restarts: u32,
    window: Duration,
    restarts: VecDeque<Instant>,
}

impl Intensity {
    /// At most `max_restarts` within `window`.
    pub fn new(max_restarts: u32, window: Duration) -> Self {
        Self {
            max_restarts,
            window,
            restarts: VecDeque::new(),
        }
    }

    /// Records a restart at `now`; returns `false` when it is one too many (OTP: more than
    /// `max_restarts` within the window).
    pub fn record(&mut self, now: Instant) -> bool {
        while let Some(&first) = self.restarts.front() {
            if now.saturating_duration_since(first) >= self.window {
                self.restarts.pop_front();
            } else {
                break;
            }
        }
        self.restarts.push_back(now);
        self.restarts.len() <= self.max_restarts as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_in_five_seconds() {
        let t0 = Instant::now();
        let mut i = Intensity::new(3, Duration::from_secs(5));
        assert!(i.record(t0));
        assert!(i.record(t0 + Duration::from_secs(1)));
        assert!(i.record(t0 + Duration::from_secs(2)));
        assert!(!i.record(t0 + Duration::from_secs(3)), "4th within 5 s");
        let mut j = Intensity::new(3, Duration::from_secs(5));
        for k in 0..10 {
            assert!(
                j.record(t0 + Duration::from_secs(2 * k)),
                "spread restarts never trip"
            );
        }
        let mut zero = Intensity::new(0, Duration::from_secs(5));
        assert!(!zero.record(t0), "max_restarts 0 never restarts");
    }
}
