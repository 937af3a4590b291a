//! The tokio driver: the listening socket, dials, sessions and the port mapper
//! registration. Each reports what happens to the machine through
//! [`Inner::with_state`](super::inner::Inner::with_state).

use std::{
    collections::{HashMap, VecDeque},
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex, PoisonError, Weak},
    time::{Duration, Instant},
};

use actor_core::NodeName;
use tokio::net::{TcpListener, TcpStream};
use tracing::Instrument;

use super::{
    addressing::peer_target_ref,
    error::ConnectError,
    events::NodeDownReason,
    inner::{now, Inner},
    serving,
};
use crate::{
    port_mapper::{ensure_port_mapper_mode, PortMapperClient, PortMapperHandle, Registration},
    proto::{Existing, HandshakeError},
    transport::{
        faults, handshake_over, memory::MemoryListener, tls, Connected, Direction, Handler,
        InlineRaw, MemoryConnectError, MemoryNetwork, OnClose, Responder, Session, Stream, Work,
    },
    wire::message::{NodeMsg, PeerNames, SendRef},
};

/// How many times a dial no caller waits for (a mesh dial) is tried before it fails.
const UNWAITED_DIAL_ATTEMPTS: u32 = 4;
/// The wait before the first retry of such a dial; it quadruples after each (100 ms, 400 ms,
/// 1.6 s).
const UNWAITED_DIAL_RETRY: Duration = Duration::from_millis(100);

/// The most dials no caller waits for (the mesh's) one node makes at once; the others wait
/// for one of them to end. Without a bound, a node that learns of a thousand nodes at once
/// opens a thousand handshakes at once, most of which queue at their peers' accept limits
/// ([`MAX_INCOMING_HANDSHAKES`]) holding a connection and buffers until they time out, and
/// pairs that dial each other at once lose to the simultaneous-connect rule more often. A dial a
/// caller waits for (`connect`, `ping`, a cast) is never held back.
pub(super) const MAX_MESH_DIALS: usize = 16;

/// Dials `peer` in the background and reports the outcome to the machine; `mesh`: the
/// mesh's dial ([`Action::MeshDial`](super::state::Action::MeshDial)), with its wait, which
/// goes into the node's [`MeshQueue`] rather than a task of its own: most such dials are
/// never made (the peer dials first), and a growing mesh of a thousand nodes asks for half
/// a million of them.
pub(super) fn spawn_dial(inner: &Arc<Inner>, peer: NodeName, mesh: Option<Duration>) {
    match mesh {
        Some(wait) => queue_mesh_dial(inner, peer, wait),
        None => spawn_dial_task(inner, peer, None),
    }
}

/// The mesh's dials a node has not made yet, in the order asked for: those to make as soon
/// as they have a turn, and those waiting [`MESH_DIAL_DEFER`](super::state::MESH_DIAL_DEFER)
/// first (all wait as long, so they come due in order). One task per node
/// ([`run_mesh_dials`]) takes them, while there are any. Sans IO: the caller passes the time.
#[derive(Debug, Default)]
pub(super) struct MeshQueue {
    now: VecDeque<NodeName>,
    /// On tokio's clock: a simulation's virtual time moves it.
    later: VecDeque<(tokio::time::Instant, NodeName)>,
    /// Whether the task that takes them runs.
    running: bool,
}

/// What a node's mesh-dial task does next.
#[derive(Debug, PartialEq)]
pub(super) enum MeshNext {
    /// Take a turn, then dial this peer if the machine still wants it.
    Dial(NodeName),
    /// Nothing is due before then (or before another dial is queued).
    Wait(tokio::time::Instant),
    /// The queue is empty: the task ends (the next dial queued starts another).
    Done,
}

impl MeshQueue {
    /// Queues a dial of `peer`, due `wait` after `now`; whether a task must be started to
    /// take it.
    pub(super) fn push(
        &mut self,
        peer: NodeName,
        now: tokio::time::Instant,
        wait: Duration,
    ) -> bool {
        if wait.is_zero() {
            self.now.push_back(peer);
        } else {
            self.later.push_back((now + wait, peer));
        }
        !std::mem::replace(&mut self.running, true)
    }

    /// The next thing to do at `now`; `Done` marks the task as ended.
    pub(super) fn next(&mut self, now: tokio::time::Instant) -> MeshNext {
        if let Some(peer) = self.now.pop_front() {
            return MeshNext::Dial(peer);
        }
        match self.later.front() {
            Some(&(at, _)) if at > now => MeshNext::Wait(at),
            _ => match self.later.pop_front() {
                Some((_, peer)) => MeshNext::Dial(peer),
                None => {
                    // Emptied: a burst's buffers (a node hears of a thousand peers at once
                    // in a growing mesh) are freed, not kept for the node's life.
                    self.running = false;
                    self.now = VecDeque::new();
                    self.later = VecDeque::new();
                    MeshNext::Done
                }
            },
        }
    }

    /// How many dials wait (for tests).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.now.len() + self.later.len()
    }
}

/// Queues a mesh dial, starting the node's mesh-dial task if it is not running.
fn queue_mesh_dial(inner: &Arc<Inner>, peer: NodeName, wait: Duration) {
    let start = inner
        .mesh_queue
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(peer, tokio::time::Instant::now(), wait);
    if start {
        let (node, queued) = (Arc::downgrade(inner), inner.mesh_queued.clone());
        tokio::spawn(run_mesh_dials(node, queued).instrument(inner.span()));
    } else {
        inner.mesh_queued.notify_one(); // a task waiting for a later one may take it now
    }
}

/// A node's mesh-dial task: takes the queued dials as they come due, each after a turn
/// among the mesh's dials under way ([`MAX_MESH_DIALS`]), and makes those the machine still
/// wants ([`NodeState::start_mesh_dial`](super::state::NodeState::start_mesh_dial)); ends
/// when none is left. `queued` wakes it when a dial is queued while it waits for a later one.
async fn run_mesh_dials(node: Weak<Inner>, queued: Arc<tokio::sync::Notify>) {
    loop {
        let Some(inner) = node.upgrade() else { return };
        let next = inner
            .mesh_queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .next(tokio::time::Instant::now());
        match next {
            MeshNext::Done => return,
            MeshNext::Wait(at) => {
                drop(inner); // a node dropped meanwhile ends this task
                tokio::select! {
                    () = tokio::time::sleep_until(at) => {}
                    () = queued.notified() => {}
                }
            }
            MeshNext::Dial(peer) => {
                let Ok(turn) = Arc::clone(&inner.mesh_dials).acquire_owned().await else {
                    return; // never closed
                };
                // Not if connected meanwhile (the peer dialled, as expected), dialled for a
                // caller, or given up.
                if let Some(dialing) = Dialing::start_mesh(&inner, &peer) {
                    spawn_dial_task(&inner, peer, Some((turn, dialing)));
                }
            }
        }
    }
}

/// Dials `peer` in a task of its own and reports the outcome to the machine; `started`: a
/// mesh dial the node's mesh-dial task has started, with its turn.
///
/// A dial that a caller waits for (`connect`, `ping`, ...) is tried once: the caller hears
/// why it failed, as on the BEAM. A dial that no caller waits for (the mesh's, after a
/// peer's `ControlMsg::Peers`) is retried a few times with a growing pause while the machine
/// still wants it: such a dial is the only attempt there will ever be to connect the two
/// nodes, so one transient failure (a port mapper that did not answer in time under a burst
/// of lookups, or a simultaneous connect whose winning side failed) would otherwise leave
/// the mesh short for good.
///
/// The handshake itself is boxed: a dial that lost a simultaneous connect then waits (up to
/// the handshake timeout) as a small task, not one the size of a handshake.
fn spawn_dial_task(
    inner: &Arc<Inner>,
    peer: NodeName,
    started: Option<(tokio::sync::OwnedSemaphorePermit, Dialing)>,
) {
    let span = inner.span();
    let inner = inner.clone();
    tokio::spawn(
        async move {
            let mut started = started;
            let mut retry = UNWAITED_DIAL_RETRY;
            for attempt in 1..=UNWAITED_DIAL_ATTEMPTS {
                let last = attempt == UNWAITED_DIAL_ATTEMPTS;
                // A retried mesh dial waits for a turn (bounded by the dials under way, each
                // bounded by the handshake timeout), then goes only if still wanted.
                let (turn, dialing) = match started.take() {
                    Some((turn, dialing)) => (Some(turn), dialing),
                    None if inner.lock().dialing_unwaited(&peer) => {
                        let Ok(turn) = Arc::clone(&inner.mesh_dials).acquire_owned().await
                        else {
                            return; // never closed
                        };
                        if inner.lock().existing(&peer) != Existing::PendingOutgoing {
                            return; // connected meanwhile (the peer dialled), or given up
                        }
                        (Some(turn), Dialing::new(&inner, &peer))
                    }
                    None => (None, Dialing::new(&inner, &peer)),
                };
                let dialed = Box::pin(dial(&inner, &peer, dialing)).await;
                drop(turn);
                match dialed {
                    Ok(Dialed::Up) => return,
                    Ok(Dialed::LostRace) => {
                        // The peer's own connection to us won; wait for it to come up.
                        let timeout = inner.config.handshake_timeout;
                        inner.with_state(|s| s.handle_dial_lost_race(now(), &peer));
                        tokio::time::sleep(timeout).await;
                        if last || !inner.lock().dialing_unwaited(&peer) {
                            inner.with_state(|s| s.handle_timeout(now()));
                            return;
                        }
                        tracing::debug!(%peer, attempt, "the winning connection never came; dialling again");
                    }
                    Err(e) => {
                        if last || !inner.lock().dialing_unwaited(&peer) {
                            let dropped =
                                inner.with_state(|s| s.handle_dial_failed(&peer, e.clone()));
                            inner.session.stats.record_lost(dropped as u64, 0);
                            tracing::debug!(%peer, dropped_casts = dropped, "could not connect: {e}");
                            return;
                        }
                        tracing::debug!(%peer, attempt, ?retry, "could not connect, retrying: {e}");
                        tokio::time::sleep(retry).await; // backoff between attempts
                        retry *= 4;
                    }
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

async fn dial(
    inner: &Arc<Inner>,
    node: &NodeName,
    _dialing: Dialing,
) -> Result<Dialed, ConnectError> {
    // `_dialing` counts this dial until the session is installed: another dial's answer to
    // `Alive` sees it.
    let stream = match &inner.config.memory {
        Some(network) => open_memory(inner, network, node).await?,
        None => open_tcp(inner, node).await?,
    };
    let direction = Direction::Outgoing { peer: node.clone() };
    // Asked only if the peer answers `Alive` (it has a session with us): the peer's session
    // is stale unless this node has one too, or is accepting one from it.
    let weak = Arc::downgrade(inner);
    let lookup = move |peer: NodeName| {
        let weak = weak.clone();
        async move {
            match weak.upgrade() {
                Some(inner) => inner.lock().alive_check(&peer),
                None => Existing::Established,
            }
        }
    };
    match handshake_over(stream, direction, &inner.handshake, lookup).await {
        Ok(conn) => {
            install(inner, conn);
            Ok(Dialed::Up)
        }
        Err(HandshakeError::Simultaneous { .. } | HandshakeError::AlreadyConnected { .. }) => {
            Ok(Dialed::LostRace)
        }
        Err(e) => Err(ConnectError::from_handshake(node, e)),
    }
}

/// One dial of `peer` under way, until it ends (and its session, if any, is installed): see
/// [`NodeState::alive_check`](super::state::NodeState::alive_check).
struct Dialing {
    node: Weak<Inner>,
    peer: NodeName,
}

impl Dialing {
    fn new(inner: &Arc<Inner>, peer: &NodeName) -> Self {
        inner.lock().begin_dialing(peer);
        Self {
            node: Arc::downgrade(inner),
            peer: peer.clone(),
        }
    }

    /// The mesh's dial of `peer` starts, if the machine still wants it
    /// ([`NodeState::start_mesh_dial`](super::state::NodeState::start_mesh_dial), which
    /// counts it under the same lock: no connection from the peer is let in as if there were
    /// no dial once it has started).
    fn start_mesh(inner: &Arc<Inner>, peer: &NodeName) -> Option<Self> {
        inner.lock().start_mesh_dial(peer).then(|| Self {
            node: Arc::downgrade(inner),
            peer: peer.clone(),
        })
    }
}

impl Drop for Dialing {
    fn drop(&mut self) {
        if let Some(inner) = self.node.upgrade() {
            inner.lock().end_dialing(&self.peer);
        }
    }
}

/// An incoming handshake let through the registration check, until it ends (and its
/// session, if any, is installed): see [`NodeState::alive_check`](super::state::NodeState::alive_check).
struct Accepting {
    node: Weak<Inner>,
    peer: Mutex<Option<NodeName>>,
}

impl Accepting {
    /// What this node has with `peer`, for the handshake; an answer that lets it go on
    /// counts it as accepting (a node that is gone has everything, so nothing goes on).
    fn register(&self, peer: NodeName) -> Existing {
        let Some(inner) = self.node.upgrade() else {
            return Existing::Established;
        };
        let mut state = inner.lock();
        let existing = state.register_incoming(&peer);
        if existing != Existing::Established {
            let mut slot = self.peer.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(before) = slot.replace(peer) {
                state.end_accepting(&before); // (one registration per handshake)
            }
        }
        existing
    }
}

impl Drop for Accepting {
    fn drop(&mut self) {
        let peer = self
            .peer
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let (Some(peer), Some(inner)) = (peer, self.node.upgrade()) {
            inner.lock().end_accepting(&peer);
        }
    }
}

/// How often a refused peer address is warned about: the first refusal at once, then at
/// most one line per this long, with the number of refusals it stands for.
pub(super) const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(60);
/// How many addresses [`RefusalLog`] keeps.
const REFUSAL_LOG_SOURCES: usize = 1024;

/// Rate-limits the warnings about refused incoming connections, per peer address, sans IO
/// (as [`AcceptBackoff`](crate::proto::accept::AcceptBackoff) does for failed accepts): a
/// node retrying with a wrong cookie every second costs one line a minute, not one per try.
#[derive(Debug, Default)]
pub(super) struct RefusalLog {
    /// Per address: when it was last logged, and the refusals since.
    sources: HashMap<String, (Instant, u64)>,
}

impl RefusalLog {
    /// A connection from `source` was refused at `now`. `Some(n)`: warn now, the line standing
    /// for `n` refusals (this one included); `None`: stay quiet, it is counted in the next.
    pub(super) fn refused(&mut self, source: &str, now: Instant) -> Option<u64> {
        if let Some((last, unlogged)) = self.sources.get_mut(source) {
            *unlogged += 1;
            if now.saturating_duration_since(*last) < REFUSAL_LOG_EVERY {
                return None;
            }
            *last = now;
            return Some(std::mem::take(unlogged));
        }
        if self.sources.len() >= REFUSAL_LOG_SOURCES {
            // Bounded: forget the addresses quiet for an interval, else any one.
            self.sources
                .retain(|_, (last, _)| now.saturating_duration_since(*last) < REFUSAL_LOG_EVERY);
            if self.sources.len() >= REFUSAL_LOG_SOURCES {
                let any = self.sources.keys().next().cloned();
                if let Some(any) = any {
                    self.sources.remove(&any);
                }
            }
        }
        self.sources.insert(source.to_string(), (now, 0));
        Some(1)
    }

    /// How many addresses it keeps (for tests).
    #[cfg(test)]
    pub(super) fn sources(&self) -> usize {
        self.sources.len()
    }
}

type Refusals = Arc<Mutex<RefusalLog>>;

/// Logs an incoming handshake that failed: a refused peer at `warn` (rate-limited per
/// address by `refusals`), a simultaneous connect that lost or a connection that never said
/// who it is (a port scan, a health check) at `debug`.
fn log_refusal(refusals: &Refusals, ip: Option<IpAddr>, from: &str, e: &HandshakeError) {
    let peer = match e.peer() {
        Some(peer) if !e.is_benign() => peer,
        _ => return tracing::debug!(%from, "incoming handshake failed: {e}"),
    };
    // Per address; on the in-memory transport, per node name.
    let source = ip.map_or_else(|| peer.to_string(), |ip| ip.to_string());
    let due = refusals
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .refused(&source, Instant::now());
    match due {
        Some(1) => tracing::warn!(%peer, %from, "incoming connection rejected: {e}"),
        Some(n) => tracing::warn!(
            %peer,
            %from,
            refusals = n,
            "incoming connection rejected ({n} refusals from {source} since the last report): {e}"
        ),
        None => tracing::debug!(%peer, %from, "incoming connection rejected again: {e}"),
    }
}

/// Opens an in-memory connection to `node` on `network` (the same `Faults` gate as TCP).
async fn open_memory(
    inner: &Arc<Inner>,
    network: &MemoryNetwork,
    node: &NodeName,
) -> Result<Stream, ConnectError> {
    let timeout = inner.config.handshake_timeout;
    if !faults::may_dial(&inner.session, node, timeout).await {
        return Err(ConnectError::Memory {
            node: node.clone(),
            reason: "cut off by an injected fault (Faults)".into(),
        });
    }
    match network.connect(node, timeout).await {
        Ok(pipe) => Ok(Stream::from(pipe)),
        Err(MemoryConnectError::NotRegistered { .. }) => {
            Err(ConnectError::NotRegistered { node: node.clone() })
        }
        Err(e) => Err(ConnectError::Memory {
            node: node.clone(),
            reason: e.to_string(),
        }),
    }
}

/// Looks `node` up with its host's port mapper and opens a TCP connection to it.
async fn open_tcp(inner: &Arc<Inner>, node: &NodeName) -> Result<Stream, ConnectError> {
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
        return tls::connect(inner.config.tls_settings(), node, stream, timeout)
            .await
            .map_err(|failure| ConnectError::from_tls(node, failure));
    }
    Err(last)
}

/// The most incoming handshakes one node runs at once; more connections wait in the
/// listener's backlog (so a flood of idle connections costs a bounded number of tasks and
/// descriptors).
pub(super) const MAX_INCOMING_HANDSHAKES: usize = 64;

/// Accepts connections and runs each one's handshake in a task of its own, at most
/// [`MAX_INCOMING_HANDSHAKES`] at a time. A failed accept (out of file descriptors, say)
/// pauses the loop with a bounded back-off and is logged at most once a second
/// ([`AcceptBackoff`](crate::proto::accept::AcceptBackoff)), never in a spin.
pub(super) async fn accept_loop(node: Weak<Inner>, listener: TcpListener) {
    let handshakes = Arc::new(tokio::sync::Semaphore::new(MAX_INCOMING_HANDSHAKES));
    let refusals = Refusals::default();
    let mut backoff = crate::proto::accept::AcceptBackoff::new();
    loop {
        let Ok(permit) = Arc::clone(&handshakes).acquire_owned().await else {
            return; // never closed
        };
        let (stream, from) = match listener.accept().await {
            Ok(accepted) => {
                backoff.succeeded();
                accepted
            }
            Err(e) => {
                let after = backoff.failed(std::time::Instant::now());
                if let Some(failures) = after.log {
                    let span = node.upgrade().map(|inner| inner.span());
                    let _entered = span.as_ref().map(tracing::Span::enter);
                    tracing::warn!(
                        failures,
                        pause = ?after.pause,
                        "accepting connections fails: {e}; pausing (raise the file-descriptor \
                         limit, `ulimit -n`, if this is EMFILE)"
                    );
                }
                drop(permit);
                tokio::time::sleep(after.pause).await; // the back-off itself
                continue;
            }
        };
        let Some(inner) = node.upgrade() else { return };
        let span = inner.span();
        let refusals = refusals.clone();
        tokio::spawn(
            async move {
                let _permit = permit; // held until the handshake is over
                let setup = inner.config.handshake_timeout;
                // TLS or plain, as this node: the first byte tells (a mismatch is refused).
                let stream =
                    match tls::accept(inner.config.tls_settings(), stream, from, setup).await {
                        None => return,
                        Some(tls::Accepted::Tls(stream)) => stream,
                        Some(tls::Accepted::Plain(stream)) => {
                            #[cfg(feature = "erlang")]
                            if let Some(erlang) = &inner.erlang {
                                // One port, two protocols: a BEAM node's connection goes to crate::erl.
                                if crate::erl::conn::is_erlang(&stream, setup).await {
                                    let erlang = Arc::clone(erlang);
                                    drop(inner);
                                    return crate::erl::conn::accept(erlang, stream, from, _permit)
                                        .await;
                                }
                            }
                            Stream::from(stream)
                        }
                    };
                incoming(inner, stream, (Some(from.ip()), from), &refusals).await;
            }
            .instrument(span),
        );
    }
}

/// Accepts in-memory connections (see [`crate::transport::memory`]) as [`accept_loop`]
/// accepts TCP ones: each one's handshake in a task of its own, at most
/// [`MAX_INCOMING_HANDSHAKES`] at a time. Ends when the node goes (dropping `listener`
/// takes the node off the network).
pub(super) async fn memory_accept_loop(node: Weak<Inner>, mut listener: MemoryListener) {
    let handshakes = Arc::new(tokio::sync::Semaphore::new(MAX_INCOMING_HANDSHAKES));
    let refusals = Refusals::default();
    loop {
        let Ok(permit) = Arc::clone(&handshakes).acquire_owned().await else {
            return; // never closed
        };
        let Some(pipe) = listener.accept().await else {
            return;
        };
        let Some(inner) = node.upgrade() else { return };
        let span = inner.span();
        let refusals = refusals.clone();
        tokio::spawn(
            async move {
                let _permit = permit; // held until the handshake is over
                incoming(inner, Stream::from(pipe), (None, "memory"), &refusals).await;
            }
            .instrument(span),
        );
    }
}

/// Takes an accepted connection through the handshake (after the `Faults` gate) and
/// installs its session: the same for every transport.
async fn incoming(
    inner: Arc<Inner>,
    stream: Stream,
    (ip, from): (Option<IpAddr>, impl std::fmt::Display),
    refusals: &Refusals,
) {
    let accepting = Arc::new(Accepting {
        node: Arc::downgrade(&inner),
        peer: Mutex::new(None),
    });
    let registering = accepting.clone();
    let registered = move |peer| {
        let existing = registering.register(peer);
        async move { existing }
    };
    faults::hold_accept(&inner.session, inner.config.handshake_timeout).await;
    match handshake_over(stream, Direction::Incoming, &inner.handshake, registered).await {
        Ok(conn) => install(&inner, conn),
        Err(e) => log_refusal(refusals, ip, &from.to_string(), &e),
    }
    drop(accepting); // after the install: no gap in which the peer's session looks stale
}

/// Makes a session of a connection whose handshake succeeded, and tells the machine.
///
/// The session's frames are all handled in its reader task, in order: actor messages and
/// replies, link signals and the machine's control frames on the spot, a peer's task start as
/// work the reader waits for (see [`serving::serve`]). Its writer task reports the end. So a
/// session end is two tasks and no channel: in a mesh of a thousand nodes, a million of them.
fn install(inner: &Arc<Inner>, conn: Connected) {
    let established = conn.established().clone();
    let peer = established.peer.clone();
    // Frames both ways stay under the smaller of the two nodes' limits: a message over the
    // peer's is refused here with `TooLarge`, instead of closing the session there.
    let mut cfg = inner.session.clone();
    if let Some(theirs) = established.peer_max_frame_len {
        cfg.max_frame_len = cfg.max_frame_len.min(theirs);
    }
    // Not started until the machine has it: the first frame the peer sends (its view of the
    // mesh, at once) is handled with the session known as up.
    let session = Session::<NodeMsg>::prepare(conn, cfg);
    let handle = session.handle().clone();
    let up = inner.with_state(|s| {
        if established.replaces {
            // The peer no longer has the session this node has with it (it said so after
            // `Alive`): that one is stale, this one takes its place at once.
            s.replace_stale_session(&peer);
        }
        let up = s.handle_session_up_with(
            &peer,
            established.hidden,
            handle.clone(),
            established.capabilities,
        );
        s.set_peer_max_frame_len(&peer, handle.max_frame_len());
        up
    });
    let raw = raw_hook(inner, &peer, up.is_some());
    let handler: Handler<NodeMsg> = {
        let (weak, peer) = (Arc::downgrade(inner), peer.clone());
        // Held while the session runs: it closes when the machine closes it, not when the
        // machine lets go of its handle.
        let held = up.map(|_| handle.clone());
        Box::new(move |msg, responder| {
            let _held = &held;
            let inner = weak.upgrade()?;
            handle_frame(&inner, &peer, up, responder, msg)
        })
    };
    let on_close: OnClose = match up {
        Some(conn) => {
            let (weak, peer) = (Arc::downgrade(inner), peer.clone());
            Box::new(move |reason| {
                if let Some(inner) = weak.upgrade() {
                    let reason = NodeDownReason::from(reason);
                    inner.with_state(|s| s.handle_session_down(&peer, conn, reason, now()));
                }
            })
        }
        // A session exists already, or the node is stopping: keep the existing one. This one
        // is closed at once; what the peer sent on it meanwhile (it may count it as up
        // already, and cast over it) still goes to the actors it was for: the first messages
        // of a session a node keeps replacing would otherwise be lost.
        None => {
            handle.close();
            Box::new(|_| {})
        }
    };
    drop(handle);
    // (Called in the node's span: the session's tasks log under it.)
    session.serve(handler, Some(raw), on_close);
}

/// The session's raw hook: a cast or call to a local actor is read in place from the frame
/// (`SendRef`), its name, target and payload not copied out of the read buffer; so is a peer
/// list (`PeerNames`), when `peer_lists` (the machine knows the session).
fn raw_hook(inner: &Arc<Inner>, peer: &NodeName, peer_lists: bool) -> InlineRaw<NodeMsg> {
    let (weak, peer) = (Arc::downgrade(inner), peer.clone());
    Box::new(move |body, responder| {
        let Some(send) = SendRef::from_body(body) else {
            // A peer list is read in place too: its names are looked up as text.
            let Some(list) = peer_lists.then(|| PeerNames::from_body(body)).flatten() else {
                return false;
            };
            if let Some(inner) = weak.upgrade() {
                inner.with_state(|s| s.handle_peer_names(&peer, list.names, now()));
            }
            return true;
        };
        if let Some(inner) = weak.upgrade() {
            serving::on_send(
                &inner,
                &peer,
                responder,
                peer_target_ref(&send.target),
                send.name,
                send.payload,
                send.call,
                send.trace,
            );
        }
        true
    })
}

/// Hands one of a session's frames to the machine, or to the serving side: the work the
/// reader must wait for, if any. `conn`: the session as the machine knows it; `None` for one
/// it refused (see `install`), whose actor messages and links are still delivered.
fn handle_frame(
    inner: &Arc<Inner>,
    peer: &NodeName,
    conn: Option<u64>,
    responder: &Responder<NodeMsg>,
    msg: NodeMsg,
) -> Option<Work> {
    let work = match (msg, conn) {
        (NodeMsg::Actor(msg), _) => {
            serving::on_actor(inner, peer, responder, msg);
            return None;
        }
        // Link signals in the reader too: a cast and then an exit signal of one actor arrive
        // in order.
        (NodeMsg::Link(msg), _) => {
            serving::on_link(inner, peer, responder, msg);
            return None;
        }
        // The machine does not know this session: nothing of its own to do.
        (_, None) => return None,
        (NodeMsg::Control(msg), Some(_)) => {
            inner.with_state(|s| s.handle_control(peer, msg, now()));
            return None;
        }
        (NodeMsg::Task(msg), Some(_)) => inner.with_state(|s| s.handle_task(peer, msg))?,
        (NodeMsg::Watch(msg), Some(_)) => inner.with_state(|s| s.handle_watch(peer, msg))?,
    };
    serving::serve(inner, peer, conn?, responder, work)
}

/// Keeps the node registered with its port mapper. If the registration is lost (the port
/// mapper died, for example the embedded one of a node that stopped), registers again,
/// starting a port mapper as the node's `port_mapper_mode` says if none answers, with a
/// backoff of up to 5 s.
pub(super) async fn keep_registered(
    node: Weak<Inner>,
    mut registration: Registration,
    mut _port_mapper: PortMapperHandle,
    (addr, bind): (SocketAddr, SocketAddr),
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
            let mode = inner.config.port_mapper_mode.clone();
            drop(inner);
            let attempt = match ensure_port_mapper_mode(addr, bind, &mode, timeout).await {
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
