//! One clock beating for many sessions, as the BEAM's `net_kernel` ticker: every
//! `tick_time / tick_intensity` it tells each session registered with it to look at its
//! ticks ([`TickBeats`](crate::proto::TickBeats)). A node's sessions share one (through
//! their [`SessionConfig`](super::SessionConfig)), so a node of a thousand peers has one
//! timer rather than a thousand, its sessions hold no timer in their futures (a tokio timer
//! is over a hundred bytes), and their writers reset none each time they go idle.

use std::{
    sync::{Arc, Mutex, PoisonError, Weak},
    time::Duration,
};

use tokio::time::Instant;

/// What a clock beats: a session end, told to look at its ticks.
pub(crate) trait Beat: Send + Sync {
    /// Called at each beat, under the clock's lock: must not block or call back into it.
    fn beat(&self);
}

/// A clock shared by the sessions started with (clones of) one
/// [`SessionConfig`](super::SessionConfig): one beat per distinct interval
/// (`tick_time / tick_intensity`), each a tokio task that runs while a session of its
/// interval is registered. Cloning shares the clock.
///
/// ```
/// use actor_remote::transport::{SessionConfig, TickClock};
///
/// // Sessions started with clones of `cfg` share its clock; one started with `other` has its own.
/// let cfg = SessionConfig::default();
/// let other = SessionConfig { clock: TickClock::default(), ..cfg.clone() };
/// # let _ = other;
/// ```
#[derive(Clone, Default)]
pub struct TickClock(Arc<Mutex<Vec<Group>>>);

/// Two clocks are equal when they are one clock (clones of each other).
impl PartialEq for TickClock {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for TickClock {}

impl std::fmt::Debug for TickClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let groups = lock(&self.0);
        let mut list = f.debug_list();
        for group in groups.iter() {
            list.entry(&(group.every, group.live));
        }
        list.finish()
    }
}

/// The sessions of one interval.
struct Group {
    every: Duration,
    /// Registered sessions by key; `None` for a free slot.
    sessions: Vec<Option<Arc<dyn Beat>>>,
    /// Free slots of `sessions`.
    free: Vec<usize>,
    /// How many are registered.
    live: usize,
    /// Whether its task is running (it stops once no session is registered).
    running: bool,
}

fn lock(groups: &Mutex<Vec<Group>>) -> std::sync::MutexGuard<'_, Vec<Group>> {
    groups.lock().unwrap_or_else(PoisonError::into_inner)
}

impl TickClock {
    /// Registers `session` to be beaten every `every` (at least a millisecond) until the
    /// returned registration is dropped. Starts the interval's task if it is not running:
    /// called within a tokio runtime.
    pub(crate) fn register(&self, every: Duration, session: Arc<dyn Beat>) -> Registration {
        let every = every.max(Duration::from_millis(1));
        let mut groups = lock(&self.0);
        let group = match groups.iter().position(|g| g.every == every) {
            Some(at) => at,
            None => {
                groups.push(Group {
                    every,
                    sessions: Vec::new(),
                    free: Vec::new(),
                    live: 0,
                    running: false,
                });
                groups.len() - 1
            }
        };
        // (Found or pushed just above.)
        let g = &mut groups[group];
        let key = match g.free.pop() {
            Some(key) => {
                if let Some(slot) = g.sessions.get_mut(key) {
                    *slot = Some(session);
                }
                key
            }
            None => {
                g.sessions.push(Some(session));
                g.sessions.len() - 1
            }
        };
        g.live += 1;
        if !g.running {
            g.running = true;
            tokio::spawn(run(Arc::downgrade(&self.0), group, every));
        }
        Registration {
            clock: self.clone(),
            group: u32::try_from(group).unwrap_or(u32::MAX),
            key: u32::try_from(key).unwrap_or(u32::MAX),
        }
    }
}

/// A session's place on its clock: dropping it takes the session off.
#[derive(Debug)]
pub(crate) struct Registration {
    clock: TickClock,
    group: u32,
    key: u32,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut groups = lock(&self.clock.0);
        let Some(g) = groups.get_mut(self.group as usize) else {
            return;
        };
        if let Some(slot) = g.sessions.get_mut(self.key as usize) {
            if slot.take().is_some() {
                g.free.push(self.key as usize);
                g.live -= 1;
            }
        }
        if g.live == 0 {
            // Nothing is kept for an interval no session uses.
            g.sessions = Vec::new();
            g.free = Vec::new();
        }
    }
}

/// The task of one interval: beats every `every` after the last beat (a late beat is not
/// followed by others at once to catch up: a runtime that was busy must not count as beats
/// of silence), while any session is registered.
async fn run(clock: Weak<Mutex<Vec<Group>>>, group: usize, every: Duration) {
    loop {
        tokio::time::sleep_until(Instant::now() + every).await;
        let Some(clock) = clock.upgrade() else { return };
        let mut groups = lock(&clock);
        let Some(g) = groups.get_mut(group) else {
            return;
        };
        if g.live == 0 {
            g.running = false;
            return;
        }
        for session in g.sessions.iter().flatten() {
            session.beat();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    struct Count(AtomicUsize);

    impl Beat for Count {
        fn beat(&self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn count() -> Arc<Count> {
        Arc::new(Count(AtomicUsize::new(0)))
    }

    /// On tokio's paused clock: each registered session is beaten once per interval, a
    /// dropped registration is beaten no more, and the interval's task stops once its last
    /// session is gone (and starts again for the next).
    #[tokio::test(start_paused = true)]
    async fn a_clock_beats_its_sessions_each_interval_until_they_leave() {
        let clock = TickClock::default();
        let (a, b, c) = (count(), count(), count());
        let every = Duration::from_secs(15);
        let ra = clock.register(every, a.clone());
        let rb = clock.register(every, b.clone());
        let rc = clock.register(Duration::from_secs(1), c.clone());
        tokio::time::sleep(every * 3 + Duration::from_millis(1)).await;
        assert_eq!(a.0.load(Ordering::Relaxed), 3);
        assert_eq!(b.0.load(Ordering::Relaxed), 3);
        assert_eq!(c.0.load(Ordering::Relaxed), 45);
        drop(rb);
        tokio::time::sleep(every).await;
        assert_eq!(a.0.load(Ordering::Relaxed), 4);
        assert_eq!(b.0.load(Ordering::Relaxed), 3, "no beat after leaving");
        drop((ra, rc));
        tokio::time::sleep(every * 2).await;
        assert!(lock(&clock.0).iter().all(|g| !g.running && g.live == 0));
        let again = clock.register(every, a.clone());
        tokio::time::sleep(every + Duration::from_millis(1)).await;
        assert_eq!(
            a.0.load(Ordering::Relaxed),
            5,
            "beaten again once registered again"
        );
        drop(again);
    }

    /// A slot freed by one session is taken by the next, so a clock's table stays as large
    /// as the sessions registered at once.
    #[tokio::test(start_paused = true)]
    async fn freed_slots_are_reused() {
        let clock = TickClock::default();
        let every = Duration::from_secs(1);
        let kept = clock.register(every, count());
        for _ in 0..100 {
            drop(clock.register(every, count()));
        }
        assert_eq!(lock(&clock.0)[0].sessions.len(), 2);
        drop(kept);
    }
}
