//! The tokio driver around [`NodeState`]: the listening socket, dials, sessions, the port
//! mapper registration, and carrying out what the machine decides.
//!
//! Every input goes through [`Inner::with_state`]: it runs one `handle_*`/`request_*` call on
//! the machine under its lock, sends the frames the machine queued before releasing it (so
//! frames leave in the machine's order), then, outside the lock, completes waiters, fans
//! events out and carries out actions (dial, close, abort).

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard, PoisonError, Weak},
    time::Duration,
};

use actor_core::{DownReason, NodeName, System, TaskError, Value};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{broadcast, oneshot},
    task::AbortHandle,
};
use tracing::Instrument;

use super::{
    events::{NodeDown, NodeDownReason, NodeEvent},
    serving,
    state::{Action, Effects, NodeState, Outcome},
    ConnectError, NodeConfig,
};
use crate::{
    port_mapper::{ensure_port_mapper, PortMapperClient, PortMapperHandle, Registration},
    proto::{HandshakeConfig, HandshakeError},
    transport::{
        faults, handshake_over, Connected, Direction, Inline, Session, SessionConfig, SessionHandle,
    },
    wire::message::NodeMsg,
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
}

impl Drop for Inner {
    fn drop(&mut self) {
        for task in self.lock_tasks().drain(..) {
            task.abort();
        }
    }
}

/// The clock the machine is driven by: tokio's, so that paused test clocks agree.
pub(super) fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

impl Inner {
    /// The machine, for queries (no outputs are produced under this lock).
    pub(super) fn lock(&self) -> MutexGuard<'_, NodeState<Io>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
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
        let mut state = self.lock();
        let r = input(&mut state);
        while let Some(t) = state.poll_transmit() {
            if let Err(e) = t.session.send(&t.msg) {
                tracing::debug!(parent: &self.span(), peer = %t.session.established().peer, "frame not sent: {e}");
                state.handle_send_failed(t.request, &e);
            }
        }
        if !state.has_effects() {
            return r;
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
                Action::Dial(peer) => spawn_dial(self, peer),
                Action::Close(session) => session.close(),
                Action::Abort(abort) => abort.abort(),
            }
        }
        r
    }
}

/// Connects to `node` unless a session exists; concurrent connects share one dial.
pub(super) async fn connect(inner: &Arc<Inner>, node: &NodeName) -> Result<(), ConnectError> {
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

fn spawn_dial(inner: &Arc<Inner>, peer: NodeName) {
    let span = inner.span();
    let inner = inner.clone();
    tokio::spawn(
        async move {
            match dial(&inner, &peer).await {
                Ok(Dialed::Up) => {}
                Ok(Dialed::LostRace) => {
                    // The peer's own connection to us won; wait for it to come up.
                    let timeout = inner.config.handshake_timeout;
                    inner.with_state(|s| s.handle_dial_lost_race(now(), &peer));
                    tokio::time::sleep(timeout).await;
                    inner.with_state(|s| s.handle_timeout(now()));
                }
                Err(e) => {
                    let dropped = inner.with_state(|s| s.handle_dial_failed(&peer, e.clone()));
                    tracing::debug!(%peer, dropped_casts = dropped, "could not connect: {e}");
                }
            }
        }
        .instrument(span),
    );
}

enum Dialed {
    /// The session is up.
    Up,
    /// The peer's simultaneous connection to this node won.
    LostRace,
}

async fn dial(inner: &Arc<Inner>, node: &NodeName) -> Result<Dialed, ConnectError> {
    let timeout = inner.config.handshake_timeout;
    let host = node.host().to_string();
    let addrs: Vec<SocketAddr> = tokio::time::timeout(
        timeout,
        tokio::net::lookup_host((host.as_str(), inner.port_mapper_port)),
    )
    .await
    .map_err(|_| ConnectError::Resolve {
        host: host.clone(),
        reason: "timed out".into(),
    })?
    .map_err(|e| ConnectError::Resolve {
        host: host.clone(),
        reason: e.to_string(),
    })?
    .collect();
    // Prefer IPv4: port mappers usually listen there.
    let mut addrs = addrs;
    addrs.sort_by_key(|a| !a.is_ipv4());
    let mut last = ConnectError::Resolve {
        host: host.clone(),
        reason: "no addresses".into(),
    };
    for epmd in addrs {
        let info = match PortMapperClient::new(epmd)
            .with_timeout(timeout)
            .port_please(node.name())
            .await
        {
            Ok(Some(info)) => info,
            Ok(None) => return Err(ConnectError::NotRegistered { node: node.clone() }),
            Err(e) => {
                last = ConnectError::PortMapper {
                    addr: epmd,
                    reason: e.to_string(),
                };
                continue;
            }
        };
        let addr = SocketAddr::new(epmd.ip(), info.port);
        if !faults::may_dial(&inner.session, node, timeout).await {
            return Err(ConnectError::Connect {
                node: node.clone(),
                addr,
                reason: "cut off by an injected fault (Faults)".into(),
            });
        }
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                return Err(ConnectError::Connect {
                    node: node.clone(),
                    addr,
                    reason: e.to_string(),
                })
            }
            Err(_) => {
                return Err(ConnectError::Connect {
                    node: node.clone(),
                    addr,
                    reason: format!("timed out after {timeout:?}"),
                })
            }
        };
        let direction = Direction::Outgoing { peer: node.clone() };
        let no_existing = |_| async { crate::proto::Existing::None };
        return match handshake_over(stream, direction, &inner.handshake, no_existing).await {
            Ok(conn) => {
                install(inner, conn);
                Ok(Dialed::Up)
            }
            Err(HandshakeError::Simultaneous { .. } | HandshakeError::AlreadyConnected { .. }) => {
                Ok(Dialed::LostRace)
            }
            Err(e) => Err(ConnectError::Handshake {
                node: node.clone(),
                reason: e.to_string(),
            }),
        };
    }
    Err(last)
}

/// Accepts connections and runs each one's handshake in a task of its own.
pub(super) async fn accept_loop(node: Weak<Inner>, listener: TcpListener) {
    loop {
        let (stream, from) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                continue;
            }
        };
        let Some(inner) = node.upgrade() else { return };
        let span = inner.span();
        tokio::spawn(
            async move {
                let weak = Arc::downgrade(&inner);
                let registered = move |peer: NodeName| {
                    let weak = weak.clone();
                    async move {
                        match weak.upgrade() {
                            Some(inner) => inner.lock().existing(&peer),
                            None => crate::proto::Existing::Established,
                        }
                    }
                };
                faults::hold_accept(&inner.session, inner.config.handshake_timeout).await;
                match handshake_over(stream, Direction::Incoming, &inner.handshake, registered)
                    .await
                {
                    Ok(conn) => install(&inner, conn),
                    Err(e) => tracing::debug!(%from, "incoming handshake failed: {e}"),
                }
            }
            .instrument(span),
        );
    }
}

/// Makes a session of a connection whose handshake succeeded, and tells the machine.
fn install(inner: &Arc<Inner>, conn: Connected) {
    let established = conn.established().clone();
    let peer = established.peer.clone();
    // Actor messages and replies are handled in the session's reader task: no hop through
    // the channel and the session task on the way to the actor (or back to the caller).
    let inline: Inline<NodeMsg> = {
        let (weak, peer) = (Arc::downgrade(inner), peer.clone());
        Box::new(move |msg, responder| match msg {
            NodeMsg::Actor(msg) => {
                if let Some(inner) = weak.upgrade() {
                    serving::on_actor(&inner, &peer, responder, msg);
                }
                None
            }
            other @ (NodeMsg::Control(_) | NodeMsg::Task(_) | NodeMsg::Watch(_)) => Some(other),
        })
    };
    let session: Session<NodeMsg> = Session::start_with(conn, inner.session.clone(), Some(inline));
    let up = inner
        .with_state(|s| s.handle_session_up(&peer, established.hidden, session.handle.clone()));
    let Some(conn) = up else {
        // A session exists already, or the node is stopping: keep the existing one.
        session.handle.close();
        return;
    };
    tokio::spawn(run_session(Arc::downgrade(inner), peer, conn, session).instrument(inner.span()));
}

/// Hands a session's frames to the machine (or to the serving side, for work a peer asks
/// for) until it closes, then reports the node-down.
async fn run_session(node: Weak<Inner>, peer: NodeName, conn: u64, session: Session<NodeMsg>) {
    let Session {
        handle,
        mut incoming,
        closed,
    } = session;
    while let Some(msg) = incoming.recv().await {
        let Some(inner) = node.upgrade() else { return };
        match msg {
            NodeMsg::Control(msg) => inner.with_state(|s| s.handle_control(&peer, msg)),
            NodeMsg::Task(msg) => {
                if let Some(work) = inner.with_state(|s| s.handle_task(&peer, msg)) {
                    serving::serve(&inner, &peer, conn, &handle, work).await;
                }
            }
            NodeMsg::Watch(msg) => {
                if let Some(work) = inner.with_state(|s| s.handle_watch(&peer, msg)) {
                    serving::serve(&inner, &peer, conn, &handle, work).await;
                }
            }
            // Normally handled inline by the reader (see `install`).
            NodeMsg::Actor(msg) => serving::on_actor(&inner, &peer, &handle.responder(), msg),
        }
    }
    drop(handle);
    let reason = closed
        .await
        .map_or(NodeDownReason::ConnectionClosed, NodeDownReason::from);
    let Some(inner) = node.upgrade() else { return };
    inner.with_state(|s| s.handle_session_down(&peer, conn, reason));
}

/// Keeps the node registered with its port mapper. If the registration is lost (the port
/// mapper died, for example the embedded one of a node that stopped), registers again,
/// starting an embedded port mapper if none answers, with a backoff of up to 5 s.
pub(super) async fn keep_registered(
    node: Weak<Inner>,
    mut registration: Registration,
    mut _port_mapper: PortMapperHandle,
    addr: SocketAddr,
) {
    loop {
        registration.closed().await;
        tracing::warn!(port_mapper = %addr, "lost the port-mapper registration; registering again");
        let mut delay = Duration::from_millis(50);
        loop {
            let Some(inner) = node.upgrade() else { return };
            if inner.lock().is_stopped() {
                return;
            }
            let (name, port, hidden) = (
                inner.name.clone(),
                inner.listen_addr.port(),
                inner.config.hidden,
            );
            let timeout = inner.config.handshake_timeout;
            drop(inner);
            let attempt = match ensure_port_mapper(addr).await {
                Ok(handle) => {
                    let client = handle.client().clone().with_timeout(timeout);
                    client
                        .register(&name, port, hidden)
                        .await
                        .map(|r| (r, handle))
                }
                Err(e) => Err(e),
            };
            match attempt {
                Ok((r, handle)) => {
                    tracing::info!(port_mapper = %addr, embedded = handle.is_embedded(), "registered again");
                    registration = r;
                    _port_mapper = handle;
                    break;
                }
                Err(e) => tracing::warn!(port_mapper = %addr, "could not register again: {e}"),
            }
            tokio::time::sleep(delay).await; // backoff between attempts
            delay = (delay * 2).min(Duration::from_secs(5));
        }
        // `_port_mapper` (an embedded server this node may host) lives as long as this task.
    }
}
