//! Per-node exponential backoff between connect attempts: sans-IO (times are given).

use std::{collections::HashMap, time::Duration};

use actor_core::NodeName;
use tokio::time::Instant;

/// The default first pause after a failed connect.
pub const DEFAULT_BACKOFF_INITIAL: Duration = Duration::from_millis(500);
/// The default longest pause between connect attempts.
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How many nodes a backoff remembers at most.
const CAPACITY: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    next: Instant,
}

/// When each node may be tried again: after the n-th failure in a row, `initial * 2^(n-1)`,
/// at most `max`. A success forgets the node. Bounded: beyond 4096 nodes, the one due
/// soonest is forgotten (it may be tried now anyway).
///
/// ```
/// use std::time::Duration;
/// use actor_remote::cluster::Backoff;
/// use tokio::time::Instant;
/// let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
/// let (node, now) = ("a@localhost".parse()?, Instant::now());
/// assert!(backoff.ready(&node, now));
/// assert_eq!(backoff.failed(&node, now), Duration::from_millis(100));
/// assert!(!backoff.ready(&node, now));
/// assert_eq!(backoff.failed(&node, now), Duration::from_millis(200));
/// assert_eq!(backoff.failed(&node, now), Duration::from_millis(350)); // capped
/// backoff.succeeded(&node);
/// assert!(backoff.ready(&node, now));
/// # Ok::<(), actor_core::NodeNameError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    entries: HashMap<NodeName, Entry>,
}

impl Backoff {
    /// A backoff from `initial` doubling up to `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max: max.max(initial),
            entries: HashMap::new(),
        }
    }

    /// Whether `node` may be tried at `now`.
    pub fn ready(&self, node: &NodeName, now: Instant) -> bool {
        self.entries.get(node).is_none_or(|e| e.next <= now)
    }

    /// Records a failed attempt at `now`; returns the pause before the next one.
    pub fn failed(&mut self, node: &NodeName, now: Instant) -> Duration {
        if !self.entries.contains_key(node) && self.entries.len() >= CAPACITY {
            if let Some(soonest) = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.next)
                .map(|(n, _)| n.clone())
            {
                self.entries.remove(&soonest);
            }
        }
        let entry = self.entries.entry(node.clone()).or_insert(Entry {
            failures: 0,
            next: now,
        });
        entry.failures = entry.failures.saturating_add(1);
        let factor = 2u32.saturating_pow(entry.failures.saturating_sub(1).min(31));
        let pause = self.initial.saturating_mul(factor).min(self.max);
        entry.next = now + pause;
        pause
    }

    /// Records a success: `node` may be tried at once next time.
    pub fn succeeded(&mut self, node: &NodeName) {
        self.entries.remove(node);
    }

    /// Failures in a row for `node`.
    pub fn failures(&self, node: &NodeName) -> u32 {
        self.entries.get(node).map_or(0, |e| e.failures)
    }

    /// The earliest time a node in backoff may be tried again, if any.
    pub fn next_due(&self) -> Option<Instant> {
        self.entries.values().map(|e| e.next).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_caps_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(10), Duration::from_millis(50));
        let n: NodeName = "a@h".parse().unwrap();
        let t = Instant::now();
        let pauses: Vec<_> = (0..5).map(|_| b.failed(&n, t).as_millis()).collect();
        assert_eq!(pauses, [10, 20, 40, 50, 50]);
        assert_eq!(b.failures(&n), 5);
        assert!(!b.ready(&n, t + Duration::from_millis(49)));
        assert!(b.ready(&n, t + Duration::from_millis(50)));
        assert_eq!(b.next_due(), Some(t + Duration::from_millis(50)));
        b.succeeded(&n);
        assert!(b.ready(&n, t) && b.next_due().is_none());
    }

    #[test]
    fn many_failures_never_overflow() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        let n: NodeName = "a@h".parse().unwrap();
        let t = Instant::now();
        for _ in 0..100 {
            assert!(b.failed(&n, t) <= Duration::from_secs(30));
        }
    }

    #[test]
    fn the_table_is_bounded() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        let t = Instant::now();
        for i in 0..CAPACITY + 10 {
            b.failed(&format!("n{i}@h").parse().unwrap(), t);
        }
        assert_eq!(b.entries.len(), CAPACITY);
    }
}
