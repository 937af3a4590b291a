//! The node's shared state: its configuration, its system and the protocol machine, and
//! [`Inner::with_state`], the one way an input reaches the machine.
//!
//! `with_state` runs one `handle_*`/`request_*` call on the machine under its lock, sends the
//! frames the machine queued before releasing it (so frames leave in the machine's order),
//! then, outside the lock, completes waiters, fans events out and carries out actions (dial,
//! close, abort).

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use crate::wire::message::WireTrace;
use actor_core::{Destination, DownReason, NodeName, System, TaskError, Value};
use tokio::{
    sync::{broadcast, oneshot},
    task::AbortHandle,
};

use super::{
    config::NodeConfig,
    error::ConnectError,
    events::{NodeDown, NodeEvent},
    state::{send_refusal, Action, CastRefused, Effects, NodeState, Outcome},
};
use crate::{
    proto::HandshakeConfig,
    transport::{SendError, SessionConfig, SessionHandle},
    wire::message::{ActorMsg, NodeMsg},
};

/// The driver's side of [`Effects`]: real sessions, oneshot waiters, tokio abort handles.
#[derive(Debug)]
pub(super) struct Io;

impl Effects for Io {
    type Session = SessionHandle<NodeMsg>;
    type Waiter = Waiter;
    type Abort = AbortHandle;
}

/// Who waits for an [`Outcome`], in the form its API hands out.
#[derive(Debug)]
pub(super) enum Waiter {
    /// Any outcome, matched by the caller.
    Outcome(oneshot::Sender<Outcome>),
    /// A [`NodeMonitor`](super::NodeMonitor).
    NodeDown(oneshot::Sender<NodeDown>),
    /// An actor [`Monitor`](actor_core::Monitor).
    Down(oneshot::Sender<DownReason>),
    /// An async task's result, as `actor_core`'s `Task` handle takes it.
    TaskResult(oneshot::Sender<Result<Value, TaskError>>),
}

impl Waiter {
    fn complete(self, outcome: Outcome) {
        match (self, outcome) {
            (Waiter::Outcome(tx), outcome) => {
                let _ = tx.send(outcome);
            }
            (Waiter::NodeDown(tx), Outcome::NodeDown(down)) => {
                let _ = tx.send(down);
            }
            (Waiter::Down(tx), Outcome::Down(reason)) => {
                let _ = tx.send(reason);
            }
            (Waiter::TaskResult(tx), Outcome::TaskDone(result)) => {
                let _ = tx.send(result.map(Value::encoded));
            }
            (waiter, outcome) => {
                tracing::error!("internal: {outcome:?} for {waiter:?}");
            }
        }
    }
}

/// A new oneshot waiter and its receiver.
pub(super) fn waiter() -> (Waiter, oneshot::Receiver<Outcome>) {
    let (tx, rx) = oneshot::channel();
    (Waiter::Outcome(tx), rx)
}

/// The node's shared state: its configuration, its system, and the machine.
pub(super) struct Inner {
    pub(super) name: NodeName,
    pub(super) system: System,
    pub(super) config: NodeConfig,
    pub(super) handshake: HandshakeConfig,
    pub(super) session: SessionConfig,
    pub(super) listen_addr: SocketAddr,
    pub(super) port_mapper_port: u16,
    pub(super) state: Mutex<NodeState<Io>>,
    pub(super) events: broadcast::Sender<NodeEvent>,
    /// The accept loop and the registration keeper, stopped with the node.
    pub(super) tasks: Mutex<Vec<AbortHandle>>,
    /// Starts a dial of a node in the background, a mesh dial with its wait (the driver's
    /// `spawn_dial`, which reports back to the machine).
    pub(super) dial: fn(&Arc<Inner>, NodeName, Option<Duration>),
    /// Bounds the mesh's dials under way at once (`driver::MAX_MESH_DIALS`).
    pub(super) mesh_dials: Arc<tokio::sync::Semaphore>,
    /// Bounds the peers' task starts run beside their sessions' readers
    /// (`serving::MAX_TASK_STARTS`).
    pub(super) task_starts: Arc<tokio::sync::Semaphore>,
    /// The mesh's dials not made yet (`driver::MeshQueue`), and what wakes the task that
    /// makes them when one is queued.
    pub(super) mesh_queue: Mutex<super::driver::MeshQueue>,
    pub(super) mesh_queued: Arc<tokio::sync::Notify>,
    /// The peers up, sorted by name, as last listed ([`Node::list`](super::Node::list)).
    pub(super) listed: Mutex<Listed>,
    /// Global names and process groups (`crate::names`), shared with their server.
    pub(crate) names: Arc<crate::names::Shared>,
    /// The Erlang side of the node, when `NodeConfig::erlang` is on (`crate::erl`).
    #[cfg(feature = "erlang")]
    pub(super) erlang: Option<Arc<crate::erl::Shared>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for task in self.lock_tasks().drain(..) {
            task.abort();
        }
    }
}

/// The node's peers up, each with whether it is hidden, sorted by name at one
/// `NodeState::up_generation`: what [`Node::list`](super::Node::list) copies from until a
/// peer comes up or goes down. Kept from the second list at one count on.
#[derive(Debug, Default)]
pub(super) struct Listed {
    /// The count `up` is right at; `None` before the first list.
    pub(super) generation: Option<u64>,
    pub(super) up: Vec<(NodeName, bool)>,
    /// The count the last list was made at, kept or not: a second list at it keeps `up`.
    pub(super) seen: Option<u64>,
}

/// The clock the machine is driven by: tokio's, so that paused test clocks agree.
pub(super) fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

impl Inner {
    /// The node's Erlang side, if `node` is a BEAM node connected to it: operations to
    /// `node` then go through `crate::erl`.
    #[cfg(feature = "erlang")]
    pub(super) fn beam_peer(&self, node: &NodeName) -> Option<Arc<crate::erl::Shared>> {
        self.erlang
            .as_ref()
            .filter(|erlang| erlang.is_peer(node.as_str()))
            .cloned()
    }

    /// The machine, for queries (no outputs are produced under this lock).
    pub(super) fn lock(&self) -> MutexGuard<'_, NodeState<Io>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn lock_listed(&self) -> MutexGuard<'_, Listed> {
        self.listed.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn lock_tasks(&self) -> MutexGuard<'_, Vec<AbortHandle>> {
        self.tasks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn span(&self) -> tracing::Span {
        self.system.span().clone()
    }

    /// Runs one input on the machine and carries out its outputs (see the module docs).
    pub(super) fn with_state<R>(
        self: &Arc<Self>,
        input: impl FnOnce(&mut NodeState<Io>) -> R,
    ) -> R {
        self.run(input).0
    }

    /// A cast to `peer`: the machine queues it (or refuses it during a connect), then its
    /// session takes it or refuses it (too large, queue full, closed). A refused cast's
    /// sender hears why, with its payload handed back.
    pub(super) fn cast(
        self: &Arc<Self>,
        peer: &NodeName,
        dest: &Destination,
        name: &'static str,
        payload: Vec<u8>,
        trace: Option<WireTrace>,
    ) -> Result<(), CastRefused> {
        let (queued, refused) = self.run(|s| s.traced(trace).cast(peer, dest, name, payload));
        queued?;
        match refused {
            None => Ok(()),
            Some((error, msg)) => {
                let payload = match msg {
                    NodeMsg::Actor(ActorMsg::Send { payload, .. }) => payload,
                    _ => Vec::new(),
                };
                Err(CastRefused {
                    kind: send_refusal(&self.name, peer, &error),
                    payload,
                })
            }
        }
    }

    /// As [`Inner::with_state`], plus the first frame that carried no request and that its
    /// session refused (a cast), with why.
    fn run<R>(
        self: &Arc<Self>,
        input: impl FnOnce(&mut NodeState<Io>) -> R,
    ) -> (R, Option<(SendError, NodeMsg)>) {
        let mut state = self.lock();
        let r = input(&mut state);
        let mut refused = None;
        while let Some(t) = state.poll_transmit() {
            let sent = if t.bounded {
                t.session.send(&t.msg)
            } else {
                t.session.send_forced(&t.msg)
            };
            if let Err(e) = sent {
                tracing::debug!(parent: &self.span(), peer = %t.session.established().peer, "frame not sent: {e}");
                state.handle_send_failed(t.request, &e);
                if t.request.is_none() && t.bounded && refused.is_none() {
                    refused = Some((e, t.msg));
                }
            }
        }
        if !state.has_effects() {
            return (r, refused);
        }
        let mut completions = Vec::new();
        while let Some(c) = state.poll_completion() {
            completions.push(c);
        }
        let mut events = Vec::new();
        while let Some(e) = state.poll_event() {
            events.push(e);
        }
        let mut actions = Vec::new();
        while let Some(a) = state.poll_action() {
            actions.push(a);
        }
        drop(state);
        for (waiter, outcome) in completions {
            waiter.complete(outcome);
        }
        for event in events {
            match &event {
                NodeEvent::NodeUp { node, hidden } => {
                    tracing::info!(parent: &self.span(), peer = %node, hidden, "nodeup");
                }
                NodeEvent::NodeDown { node, reason, .. } => {
                    tracing::info!(parent: &self.span(), peer = %node, %reason, "nodedown");
                }
            }
            let _ = self.events.send(event);
        }
        for action in actions {
            match action {
                Action::Dial(peer) => (self.dial)(self, peer, None),
                Action::MeshDial { peer, wait } => (self.dial)(self, peer, Some(wait)),
                Action::Close(session) => session.close(),
                Action::Abort(abort) => abort.abort(),
                Action::Signal { from, to, reason } => {
                    actor_core::transport::exit_from_peer(&self.system, from, &to, reason);
                }
                Action::LinksDown(node) => actor_core::transport::node_down(&self.system, &node),
            }
        }
        (r, refused)
    }
}

/// Connects to `node` unless a session exists; concurrent connects share one dial.
pub(super) async fn connect(inner: &Arc<Inner>, node: &NodeName) -> Result<(), ConnectError> {
    if inner.lock().is_connected(node) {
        return Ok(()); // the common case, without a waiter
    }
    let (waiter, rx) = waiter();
    inner.with_state(|s| s.request_connect(node, waiter));
    match rx.await {
        Ok(Outcome::Connected(result)) => result,
        Ok(other) => {
            tracing::error!(parent: &inner.span(), "internal: {other:?} for a connect");
            Err(ConnectError::NotAlive)
        }
        Err(_) => Err(ConnectError::NotAlive),
    }
}

/// Waits for `rx` until `deadline`; then lets the machine expire what is due and takes the
/// outcome it gave (a timeout, or the answer that won the race).
pub(super) async fn wait_until(
    inner: &Arc<Inner>,
    deadline: tokio::time::Instant,
    mut rx: oneshot::Receiver<Outcome>,
) -> Option<Outcome> {
    match tokio::time::timeout_at(deadline, &mut rx).await {
        Ok(outcome) => outcome.ok(),
        Err(_) => {
            inner.with_state(|s| s.handle_timeout(now()));
            rx.try_recv().ok()
        }
    }
}
