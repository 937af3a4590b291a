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
//! Two forms: [`Ticker`], timed from instants (a session holds its own timer), and
//! [`TickBeats`], driven by the beats of a clock shared by many sessions, as the BEAM's
//! `net_kernel` ticker. nodus's sessions use the second
//! ([`TickClock`](crate::transport::TickClock)): one timer per node, not one per session.
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

/// The failure detector of one session driven by beats, as the BEAM's: a clock shared by
/// many sessions beats every `tick_time / intensity` (the BEAM's `net_kernel` ticker; nodus's
/// is [`TickClock`](crate::transport::TickClock)), and at each beat a session that sent
/// nothing since the last beat sends a tick, and one that received nothing for `intensity`
/// beats in a row declares the peer down. So the peer is down between `tick_time −
/// tick_time / intensity` and `tick_time` after its last sign of life, as on the BEAM, and a
/// session holds no timer of its own (a node of a thousand peers has one, not a thousand)
/// and reads no clock: 12 bytes.
///
/// ```
/// use actor_remote::proto::{TickAction, TickBeats};
///
/// let mut t = TickBeats::new(4);
/// // Nothing sent since the last beat: tick. Something received: the peer is alive.
/// assert_eq!(t.handle_beat(true), Some(TickAction::SendTick));
/// t.handle_sent();
/// assert_eq!(t.handle_beat(true), None);
/// // Four beats without a sign of life: down.
/// for _ in 0..3 {
///     assert_eq!(t.handle_beat(false), Some(TickAction::SendTick));
/// }
/// assert_eq!(t.handle_beat(false), Some(TickAction::PeerDown));
/// ```
#[derive(Debug, Clone)]
pub struct TickBeats {
    intensity: u32,
    /// Beats in a row with nothing received.
    silent: u32,
    /// Something was sent since the last beat.
    sent: bool,
    down: bool,
}

impl TickBeats {
    /// A detector for beats every `tick_time / intensity`. An intensity of 0 is taken as 1.
    pub fn new(intensity: u32) -> Self {
        Self {
            intensity: intensity.max(1),
            silent: 0,
            sent: false,
            down: false,
        }
    }

    /// Something (a frame) was sent.
    pub fn handle_sent(&mut self) {
        self.sent = true;
    }

    /// A beat of the clock; `received`: whether any bytes arrived since the last beat.
    /// [`TickAction::SendTick`] counts as sending (the driver need not call
    /// [`handle_sent`](Self::handle_sent) for it). Once [`TickAction::PeerDown`] has been
    /// returned, it is returned at every later beat.
    pub fn handle_beat(&mut self, received: bool) -> Option<TickAction> {
        if received {
            self.silent = 0;
        } else {
            self.silent = self.silent.saturating_add(1);
        }
        if self.down || self.silent >= self.intensity {
            self.down = true;
            return Some(TickAction::PeerDown);
        }
        if std::mem::take(&mut self.sent) {
            return None;
        }
        Some(TickAction::SendTick)
    }
}

#[cfg(test)]
mod tests;
