//! The failure detector: ticks, as the BEAM's `net_ticktime`, as a sans-IO machine.
//!
//! With tick time T (default 60 s) and intensity I (default 4):
//!
//! - a session that has **sent** nothing for T/I sends a tick, so an idle peer still hears
//!   from us;
//! - a session that has **received** nothing for T declares the peer down with reason
//!   `tick_timeout`.
//!
//! Any inbound bytes count as a sign of life, not just ticks, so bulk traffic (even one huge
//! frame still arriving) never causes a false timeout; a stalled or paused peer does. Since a
//! live but idle peer sends a tick every T/I, a dead peer is detected between T − T/I and T
//! after its last sign of life.
//!
//! ```
//! use actor_remote::proto::{TickAction, Ticker};
//! use std::time::Duration;
//! use tokio::time::Instant;
//!
//! let start = Instant::now();
//! let mut t = Ticker::new(start, Duration::from_secs(60), 4);
//! assert_eq!(t.poll_timeout(), start + Duration::from_secs(15));
//! assert_eq!(t.handle_timeout(t.poll_timeout()), Some(TickAction::SendTick));
//! ```

use std::time::Duration;

use tokio::time::Instant;

/// The BEAM's default `net_ticktime`: 60 s.
pub const DEFAULT_TICK_TIME: Duration = Duration::from_secs(60);

/// The BEAM's default `net_tickintensity`: 4.
pub const DEFAULT_TICK_INTENSITY: u32 = 4;

/// What the driver must do when the ticker's timer fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TickAction {
    /// Nothing was sent for `tick_time / intensity`: send a tick.
    SendTick,
    /// Nothing was received for `tick_time`: the peer is down (`tick_timeout`).
    PeerDown,
}

/// The failure detector of one session.
#[derive(Debug, Clone)]
pub struct Ticker {
    tick_time: Duration,
    /// Ticks per `tick_time` (at least 1): the interval is computed, not held, so that each
    /// session's writer, which holds a ticker for the session's life, is 16 bytes smaller.
    intensity: u32,
    last_sent: Instant,
    last_received: Instant,
    down: bool,
}

impl Ticker {
    /// A detector started at `now`. An intensity of 0 is taken as 1.
    pub fn new(now: Instant, tick_time: Duration, intensity: u32) -> Self {
        Self {
            tick_time,
            intensity: intensity.max(1),
            last_sent: now,
            last_received: now,
            down: false,
        }
    }

    /// The interval after which an idle session sends a tick (`tick_time / intensity`).
    pub fn interval(&self) -> Duration {
        self.tick_time / self.intensity
    }

    /// The silence after which the peer is down (`tick_time`).
    pub fn tick_time(&self) -> Duration {
        self.tick_time
    }

    /// Something (a frame or a tick) was sent at `now`.
    pub fn handle_sent(&mut self, now: Instant) {
        self.last_sent = self.last_sent.max(now);
    }

    /// Bytes were received at `now`. Times older than one already seen are ignored.
    pub fn handle_received(&mut self, now: Instant) {
        self.last_received = self.last_received.max(now);
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called.
    pub fn poll_timeout(&self) -> Instant {
        (self.last_sent + self.interval()).min(self.last_received + self.tick_time)
    }

    /// Checks the timers at `now`. [`TickAction::SendTick`] counts as sending at `now` (the
    /// driver need not call [`handle_sent`](Self::handle_sent) for it). Once
    /// [`TickAction::PeerDown`] has been returned, it is returned on every later call.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<TickAction> {
        if self.down || now >= self.last_received + self.tick_time {
            self.down = true;
            return Some(TickAction::PeerDown);
        }
        if now >= self.last_sent + self.interval() {
            self.last_sent = now;
            return Some(TickAction::SendTick);
        }
        None
    }
}

#[cfg(test)]
mod tests;
