//! Fault injection for tests: freeze a node's traffic, or cut it off from given peers.
//!
//! Everything here but the two gates ([`hold_accept`], [`may_dial`]) exists only with the
//! `testing` feature. Without it there is no `Faults` type, no `faults` field in
//! [`SessionConfig`](super::SessionConfig) or [`NodeConfig`](crate::NodeConfig), and the
//! sessions' reader and writer contain no fault checks at all (they are compiled out, not
//! skipped at run time); the gates are then no-ops with the same signatures.
//!
//! With the feature, a `Faults` handle is carried in a node's configuration
//! (`NodeConfig::faults`) and in each of its sessions' `SessionConfig`. It is the shim Akka's
//! TestConductor plugs into its transport (`blackhole`, `passThrough`), reduced to what
//! failure detection needs:
//!
//! - `Faults::freeze`: every session of the node stops reading and writing (and the node
//!   dials nobody) until `Faults::thaw`, as if its process were stopped with `SIGSTOP`.
//!   Peers see nothing for `tick_time` and close their sessions with `tick_timeout`.
//! - `Faults::block`: frames to and from one peer are dropped (whole frames, so the stream
//!   stays decodable), and dialing it fails, until `Faults::unblock`. Block each side of a
//!   pair on its own node's handle for a partition that both sides see.
//!
//! - `Faults::set_chaos`: a policy (a [`Chaos`] function, from a seeded simulation) decides
//!   the [`Fate`] of each read and each write batch of the node's sessions: pass, pass after
//!   a delay, or drop. Deterministic as long as the policy is and the runtime is one seeded
//!   scheduler (`nodus::testing::sim`).
//!
//! A fresh handle injects nothing. The sessions check it with one relaxed atomic load per
//! read and per write, and look further only while a fault is set.

use std::time::Duration;

#[cfg(feature = "testing")]
use std::{
    collections::BTreeSet,
    fmt,
    sync::atomic::AtomicU64,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, MutexGuard, PoisonError,
    },
};

use actor_core::NodeName;
#[cfg(feature = "testing")]
use tokio::sync::Notify;

use super::SessionConfig;

/// A switchboard of injected network faults, shared by a node and its sessions. Cheap to clone;
/// clones share the faults. `Default` (and [`Faults::new`]) injects none.
///
/// Only with the `testing` feature; see [`NodeConfig::faults`](crate::NodeConfig::faults)
/// for where a node takes it.
///
/// - [`Faults::freeze`]: every session of the node stops reading and writing (and the node
///   dials nobody) until [`Faults::thaw`]; peers close their sessions with `tick_timeout`.
/// - [`Faults::block`]: frames to and from one peer are dropped, and dialing it fails, until
///   [`Faults::unblock`].
///
/// ```
/// use actor_remote::transport::Faults;
/// let faults = Faults::new();
/// let peer: actor_core::NodeName = "b@localhost".parse()?;
/// faults.block(peer.clone());
/// assert!(faults.is_blocked(&peer));
/// faults.unblock(&peer);
/// assert!(!faults.is_blocked(&peer) && !faults.is_frozen());
/// # Ok::<(), actor_core::NodeNameError>(())
/// ```
#[cfg(feature = "testing")]
#[derive(Clone, Default)]
pub struct Faults {
    inner: Arc<Inner>,
}

#[cfg(feature = "testing")]
#[derive(Default)]
struct Inner {
    /// Whether any fault is set: the only thing the hot path reads.
    active: AtomicBool,
    state: Mutex<State>,
    /// Woken on every change, for sessions waiting out a freeze.
    changed: Notify,
    /// How many frames (reads or write batches) the chaos policy dropped, and delayed.
    dropped: AtomicU64,
    delayed: AtomicU64,
}

#[cfg(feature = "testing")]
#[derive(Default)]
struct State {
    frozen: bool,
    blocked: BTreeSet<NodeName>,
    /// Kept by [`Faults::clear`]: a property of the (simulated) network, not a fault of the
    /// moment.
    chaos: Option<Chaos>,
}

/// What a [`Chaos`] policy decides for one read or one write batch of a session (only with
/// the `testing` feature).
#[cfg(feature = "testing")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Let it through now.
    Pass,
    /// Let it through after this long (the session waits: later frames wait behind it, as
    /// on a slow link, so order is kept).
    Delay(Duration),
    /// Drop it (whole frames, so the stream stays decodable).
    Drop,
}

/// A chaos policy for [`Faults::set_chaos`]: given the peer of a session, the [`Fate`] of
/// its next read or write batch. Called once per read and per write batch while set (and
/// before each read, where only a [`Fate::Delay`] counts, and before each dial, which a
/// [`Fate::Drop`] fails), so a policy drawing from a seeded
/// RNG on a single-threaded runtime decides the same way on every run.
#[cfg(feature = "testing")]
pub type Chaos = Arc<dyn Fn(&NodeName) -> Fate + Send + Sync>;

#[cfg(feature = "testing")]
impl fmt::Debug for Faults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("Faults")
            .field("frozen", &state.frozen)
            .field("blocked", &state.blocked)
            .field("chaos", &state.chaos.is_some())
            .finish()
    }
}

/// Two handles are equal when they are clones of one another (they share their faults).
#[cfg(feature = "testing")]
impl PartialEq for Faults {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

#[cfg(feature = "testing")]
impl Eq for Faults {}

#[cfg(feature = "testing")]
impl Faults {
    /// A handle that injects nothing until told to.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn update(&self, change: impl FnOnce(&mut State)) {
        {
            let mut state = self.lock();
            change(&mut state);
            let active = state.frozen || !state.blocked.is_empty() || state.chaos.is_some();
            self.inner.active.store(active, Ordering::Relaxed);
        }
        self.inner.changed.notify_waiters();
    }

    /// Stops all traffic of the node's sessions (and its dialing) until [`Faults::thaw`].
    pub fn freeze(&self) {
        self.update(|s| s.frozen = true);
    }

    /// Lets a frozen node's sessions read and write again.
    pub fn thaw(&self) {
        self.update(|s| s.frozen = false);
    }

    /// Whether the node is frozen.
    pub fn is_frozen(&self) -> bool {
        self.lock().frozen
    }

    /// Drops every frame to and from `peer`, and fails dialing it, until [`Faults::unblock`].
    pub fn block(&self, peer: NodeName) {
        self.update(|s| {
            s.blocked.insert(peer);
        });
    }

    /// Lets traffic with `peer` through again.
    pub fn unblock(&self, peer: &NodeName) {
        self.update(|s| {
            s.blocked.remove(peer);
        });
    }

    /// Whether traffic with `peer` is dropped.
    pub fn is_blocked(&self, peer: &NodeName) -> bool {
        self.lock().blocked.contains(peer)
    }

    /// Removes every fault set with [`Faults::freeze`] and [`Faults::block`]. A chaos policy
    /// ([`Faults::set_chaos`]) stays: it is the network's, so a node restarted on the same
    /// handle gets it too.
    pub fn clear(&self) {
        self.update(|s| {
            let chaos = s.chaos.take();
            *s = State::default();
            s.chaos = chaos;
        });
    }

    /// Sets (or with `None` removes) the chaos policy that decides the [`Fate`] of every
    /// read and write batch of the node's sessions, after freezes and blocks. See [`Chaos`].
    ///
    /// ```
    /// use std::sync::Arc;
    /// use actor_remote::transport::{Fate, Faults};
    /// let faults = Faults::new();
    /// faults.set_chaos(Some(Arc::new(|_peer: &actor_core::NodeName| Fate::Drop)));
    /// assert_eq!(faults.chaos_counts(), (0, 0));
    /// faults.set_chaos(None);
    /// ```
    pub fn set_chaos(&self, chaos: Option<Chaos>) {
        self.update(|s| s.chaos = chaos);
    }

    /// How many times the chaos policy answered [`Fate::Drop`], and [`Fate::Delay`] (a drop
    /// answered before a read, or before a dial, which then fails, is counted too).
    pub fn chaos_counts(&self) -> (u64, u64) {
        (
            self.inner.dropped.load(Ordering::Relaxed),
            self.inner.delayed.load(Ordering::Relaxed),
        )
    }

    /// Whether any fault is set: one relaxed load, for the hot path.
    #[inline]
    pub(crate) fn is_active(&self) -> bool {
        self.inner.active.load(Ordering::Relaxed)
    }

    /// Waits while the node is frozen.
    pub(crate) async fn thawed(&self) {
        loop {
            let changed = self.inner.changed.notified();
            let mut changed = std::pin::pin!(changed);
            changed.as_mut().enable();
            if !self.lock().frozen {
                return;
            }
            changed.await;
        }
    }

    /// Waits while traffic with `peer` is blocked or the node is frozen.
    pub(crate) async fn unblocked(&self, peer: &NodeName) {
        loop {
            let changed = self.inner.changed.notified();
            let mut changed = std::pin::pin!(changed);
            changed.as_mut().enable();
            {
                let state = self.lock();
                if !state.frozen && !state.blocked.contains(peer) {
                    return;
                }
            }
            changed.await;
        }
    }

    /// Waits while the node is frozen, then says whether traffic with `peer` may pass
    /// (`false`: it is blocked and must be dropped).
    pub(crate) async fn pass(&self, peer: &NodeName) -> bool {
        loop {
            let changed = self.inner.changed.notified();
            let mut changed = std::pin::pin!(changed);
            changed.as_mut().enable();
            let chaos = {
                let state = self.lock();
                if state.frozen {
                    None
                } else if state.blocked.contains(peer) {
                    return false;
                } else {
                    match &state.chaos {
                        None => return true,
                        Some(chaos) => Some(chaos.clone()),
                    }
                }
            };
            if let Some(chaos) = chaos {
                // Called without the lock: the policy may take its own.
                return match chaos(peer) {
                    Fate::Pass => true,
                    Fate::Delay(after) => {
                        self.inner.delayed.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(after).await;
                        true
                    }
                    Fate::Drop => {
                        self.inner.dropped.fetch_add(1, Ordering::Relaxed);
                        false
                    }
                };
            }
            changed.await;
        }
    }
}

/// Before an incoming handshake: a frozen node answers nobody (as a stopped process), so this
/// waits while the node is frozen, at most `timeout`, and the peer's setup times out.
/// Without the `testing` feature it returns at once.
pub(crate) async fn hold_accept(cfg: &SessionConfig, timeout: Duration) {
    #[cfg(feature = "testing")]
    if cfg.faults.is_active() {
        let _ = tokio::time::timeout(timeout, cfg.faults.thawed()).await;
    }
    #[cfg(not(feature = "testing"))]
    let _ = (cfg, timeout);
}

/// Before dialing `node`: whether the injected faults let it through (waiting out a freeze,
/// at most `timeout`). Without the `testing` feature it is `true` at once.
pub(crate) async fn may_dial(cfg: &SessionConfig, node: &NodeName, timeout: Duration) -> bool {
    #[cfg(feature = "testing")]
    {
        let faults = &cfg.faults;
        !faults.is_active()
            || matches!(
                tokio::time::timeout(timeout, faults.pass(node)).await,
                Ok(true)
            )
    }
    #[cfg(not(feature = "testing"))]
    {
        let _ = (cfg, node, timeout);
        true
    }
}
