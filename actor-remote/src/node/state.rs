//! The node's protocol state as one sans-IO machine.
//!
//! [`NodeState`] holds everything a node knows about its peers: which are connected (and on
//! which session) or being connected to, the casts waiting for a connection, every request
//! this node has outstanding with a peer, and the work this node does for peers. It takes
//! inputs (`handle_*` for what arrives from a peer or a session, `request_*`/`cast` for what
//! the API asks, `handle_timeout(now)` for the clock) and yields outputs: frames to send
//! ([`NodeState::poll_transmit`]), outcomes for waiters ([`NodeState::poll_completion`]),
//! [`NodeEvent`]s ([`NodeState::poll_event`]) and [`Action`]s (dial a node, close a session,
//! stop local work done for a peer). It does no IO, spawns nothing, and never reads the clock:
//! the driver (`driver.rs`) owns sockets, tasks and time, and the unit tests
//! (`state/tests.rs`) drive it with plain values and a virtual clock.
//!
//! Invariants:
//! - **One outstanding-request table.** Every request this node has made of a peer (a
//!   connect, a node monitor, a ping, a task start and its result, a plain spawn, a call, a
//!   watch of an actor) is one [`Request`] in `requests`, keyed by (peer, id): ids are unique
//!   on this node and an answer only counts when it comes from the peer the request went to.
//! - **One node-down path.** [`NodeState::handle_session_down`] is the only place a peer's
//!   requests are failed and the work done for it is stopped, and the only place the links
//!   across its session are broken ([`Action::LinksDown`]).
//! - **Links need no table here.** The node's process table (`actor_core`) records each
//!   link on both of its ends; the machine only carries `LinkMsg`s, and turns a link that
//!   cannot reach its peer into an exit `noconnection` ([`Action::Signal`]).
//! - Frames leave in the order the machine queued them: the driver sends every transmit
//!   before another input is taken (casts queued during a connect go first).

use std::{
    borrow::Cow,
    collections::{BTreeMap, BTreeSet, HashMap, VecDeque},
    time::{Duration, Instant},
};

use actor_core::{
    CallError, Destination, DownReason, ExitReason, NodeName, Pid, SendErrorKind, TaskError,
};

use super::{
    addressing::{pid_on, target_of, wire_pid},
    error::ConnectError,
    events::{ListKind, NodeDown, NodeDownReason, NodeEvent},
    outcomes::{call_error, wire_down_reason},
};
use crate::{
    proto::{
        handshake::{CAP_VIEW_DIGEST, CAP_VIEW_PARTS},
        Existing,
    },
    transport::{SendError, DEFAULT_SEND_QUEUE_LIMIT},
    wire::{
        message::{
            ActorMsg, ControlMsg, LinkMsg, NodeMsg, SessionFrame, Target, TaskMsg, ViewParts,
            WatchMsg, WireDownReason, WirePid, WireTaskError, WireTaskKind, WireTrace,
        },
        FrameError, DEFAULT_MAX_FRAME_LEN, LEN_PREFIX,
    },
};

#[cfg(test)]
mod tests;
mod view;

use view::MeshView;

/// The driver's types, which the machine stores and hands back without looking inside.
pub(crate) trait Effects {
    /// Where frames to one peer go (the driver's session handle).
    type Session: Clone;
    /// Who waits for one [`Outcome`] (the driver's oneshot sender).
    type Waiter;
    /// Stops local work done for a peer (a task's or a watcher's abort handle).
    type Abort;
}

/// The result of one request, handed to its waiter.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// A connect finished.
    Connected(Result<(), ConnectError>),
    /// A ping was answered, or not.
    Pong(Result<(), ConnectError>),
    /// A task (or a plain spawn) started on the peer, with its number, or did not.
    Started(Result<u64, TaskError>),
    /// An async task ended: its encoded result, or how it failed.
    TaskDone(Result<Vec<u8>, TaskError>),
    /// A call's encoded reply, or why there is none.
    Reply(Result<Vec<u8>, CallError>),
    /// A watched actor is down.
    Down(DownReason),
    /// A monitored node went down.
    NodeDown(NodeDown),
}

/// A frame to send on a session.
#[derive(Debug)]
pub(crate) struct Transmit<S> {
    /// The session.
    pub session: S,
    /// The frame.
    pub msg: NodeMsg,
    /// The request the frame carries, whose waiter hears about a frame that cannot be sent
    /// (see [`NodeState::handle_send_failed`]).
    pub request: Option<u64>,
    /// Whether the session may refuse the frame when its queue is full (a new cast, call or
    /// task start, whose sender hears why); other frames (answers, signals, casts accepted
    /// during a connect) are always queued.
    pub bounded: bool,
}

/// A cast the machine (or the session) did not take: why, and its payload, for a sender
/// that waits for room and tries again.
#[derive(Debug)]
pub(crate) struct CastRefused {
    /// Why.
    pub kind: SendErrorKind,
    /// The payload, handed back.
    pub payload: Vec<u8>,
}

/// What a refused frame's sender hears, for a frame to `peer`; `me` for a message this node
/// could not encode.
pub(crate) fn send_refusal(me: &NodeName, peer: &NodeName, error: &SendError) -> SendErrorKind {
    match error {
        SendError::Frame(FrameError::TooLarge { len, max }) => SendErrorKind::TooLarge {
            node: peer.clone(),
            size: *len,
            limit: *max,
        },
        SendError::Full { limit } => SendErrorKind::Busy {
            node: peer.clone(),
            limit: *limit,
        },
        SendError::Closed => SendErrorKind::NoConnection { node: peer.clone() },
        other => SendErrorKind::Refused {
            node: me.clone(),
            reason: other.to_string(),
        },
    }
}

/// Something the driver must do.
#[derive(Debug)]
pub(crate) enum Action<E: Effects> {
    /// Connect to this node (port mapper, TCP, handshake), then report with
    /// [`NodeState::handle_session_up`] or [`NodeState::handle_dial_failed`].
    Dial(NodeName),
    /// The mesh's dial of a node a peer list named ([`NodeState::ensure_dial_for`]): after
    /// `wait` (zero, or [`MESH_DIAL_DEFER`] when the peer's own dial of this node would win
    /// a simultaneous connect) and a turn among the dials under way, connect as
    /// [`Action::Dial`] does if [`NodeState::start_mesh_dial`] then says so. Until then
    /// the dial has not started: a connection from the peer is let in meanwhile, and the
    /// dial is not made.
    MeshDial {
        /// The node to dial.
        peer: NodeName,
        /// How long to wait first.
        wait: Duration,
    },
    /// Close this session (a disconnect, a shutdown, or a second session with one peer).
    Close(E::Session),
    /// Stop local work done for a peer that went away or asked for it.
    Abort(E::Abort),
    /// Deliver an exit signal from the remote actor `from` to the local actor `to`
    /// (`actor_core::transport::exit_from_peer`): a link whose peer cannot be reached.
    Signal {
        /// The remote actor.
        from: Pid,
        /// The local actor.
        to: Pid,
        /// Why.
        reason: ExitReason,
    },
    /// The session with this node went down: every local actor linked to one of its actors
    /// gets an exit `noconnection` (`actor_core::transport::node_down`).
    LinksDown(NodeName),
}

/// Local work a peer asked for, returned to the driver, which reports back with
/// `handle_*_served`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Serve {
    /// Start a task under a local task supervisor.
    Task {
        /// The peer's request number.
        req: u64,
        /// The task supervisor.
        supervisor: Target,
        /// The module name.
        module: String,
        /// The function name.
        function: String,
        /// The encoded arguments.
        args: Vec<u8>,
        /// What kind of task.
        kind: WireTaskKind,
        /// The peer's trace context.
        trace: Option<WireTrace>,
    },
    /// Run a plain process whose group leader is the peer.
    Plain {
        /// The peer's request number.
        req: u64,
        /// The module name.
        module: String,
        /// The function name.
        function: String,
        /// The encoded arguments.
        args: Vec<u8>,
        /// The peer's trace context.
        trace: Option<WireTrace>,
    },
    /// Watch a local actor for the peer.
    Watch {
        /// The peer's watch number.
        id: u64,
        /// The actor.
        target: Target,
    },
    /// Print text from a plain process this node started on the peer.
    Print(String),
    /// The peer's actor `from` links to the local actor `to`.
    Link {
        /// The peer's actor.
        from: Pid,
        /// The local actor.
        to: Pid,
    },
    /// The peer's actor `from` unlinks from the local actor `to`.
    Unlink {
        /// The peer's actor.
        from: Pid,
        /// The local actor.
        to: Pid,
    },
    /// The exit signal of the peer's actor `from` for the local actor `to`.
    Exit {
        /// The peer's actor.
        from: Pid,
        /// The local actor.
        to: Pid,
        /// Why.
        reason: ExitReason,
    },
}

/// How starting a task for a peer went: the task's number and, for an async task, what stops
/// it and whether it is linked to the peer; or why it did not start.
pub(crate) type TaskServed<A> = Result<(u64, Option<(A, bool)>), WireTaskError>;

/// What kind of request, and what its failure looks like.
#[derive(Debug)]
enum Pending {
    Connect,
    NodeMonitor,
    Ping {
        timeout: Duration,
    },
    /// A task start; its deadline is cleared once the start is answered.
    Task {
        timeout: Duration,
        linked: bool,
    },
    Plain,
    Call {
        dest: Destination,
        timeout: Duration,
    },
    Watch,
}

/// One outstanding request of this node to `peer`.
#[derive(Debug)]
struct Request<W> {
    peer: NodeName,
    kind: Pending,
    /// Who hears the (first) outcome: `None` once it has.
    waiter: Option<W>,
    /// An async task's second waiter, for its result.
    result: Option<W>,
    deadline: Option<Instant>,
}

/// Work this node does for a peer (forgotten when the peer's session goes down).
#[derive(Debug)]
struct Served<A> {
    abort: A,
    /// Stopped when the peer goes down (a linked task, or a watch).
    linked: bool,
}

#[derive(Debug)]
enum Peer<S> {
    /// Being dialled (or waiting for the peer's own connection to win a simultaneous
    /// connect, until its `race_deadline`); casts wait in its `queued`, in order.
    Connecting {
        /// What waits on the connect, if anything does (see [`Waiting`]).
        waiting: Option<Box<Waiting>>,
        /// Dialled because a peer list named it (the mesh), not for a caller of this node:
        /// such a name goes on in this node's own lists while the dial is under way.
        mesh: bool,
        /// The mesh's dial ([`Action::MeshDial`]) has not started: a connection from the
        /// peer is let in ([`NodeState::register_incoming`]), and a caller that connects
        /// meanwhile starts the dial at once ([`NodeState::request_connect`]).
        unstarted: bool,
    },
    Up {
        session: S,
        conn: u64,
        hidden: bool,
        /// This node had a session with the peer before, and it was down (or found stale)
        /// when this one came up: this node may have been out of touch (paused, cut off),
        /// so a sync of the mesh on this session may count sessions of its own that are
        /// stale too (see [`STALE_SYNC_WINDOW`]).
        rejoined: bool,
        /// How the two nodes compare views of the mesh that differ on this session.
        parts: PartsSync,
        /// The largest frame the peer takes, if it told one in the handshake
        /// ([`NodeState::set_peer_max_frame_len`]), else `usize::MAX`. Here, not in a map
        /// of its own: a node of a thousand peers would hold another thousand-entry table.
        max_frame_len: usize,
    },
}

/// What waits on a connect under way ([`Peer::Connecting`]): rarely anything, so boxed, and
/// a peer's entry is 32 bytes rather than 56 (a node of a large mesh holds one per peer,
/// in a table that is twice as many buckets as entries at worst).
#[derive(Debug, Default)]
struct Waiting {
    /// Casts and link signals sent meanwhile, in order.
    queued: Vec<NodeMsg>,
    /// The framed size of the casts in `queued`, bounded by `send_queue_limit`.
    queued_bytes: usize,
    /// Set when this node's dial lost a simultaneous connect: the peer's own connection
    /// is waited for until then.
    race_deadline: Option<Instant>,
}

/// Whether a session compares views of the mesh in parts ([`ControlMsg::ViewParts`], both
/// nodes set `CAP_VIEW_PARTS`), and whether this node sent its parts on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PartsSync {
    /// The peer lacks the capability: a different digest is answered with the whole list.
    No,
    /// In parts; this node has not sent its own yet.
    Ready,
    /// In parts; this node sent its own (at most once per session).
    Sent,
}

/// A node's protocol state (see the module docs).
#[derive(Debug)]
pub(crate) struct NodeState<E: Effects> {
    me: NodeName,
    /// This node is hidden: every session of it is.
    hidden: bool,
    connect_all: bool,
    /// How long a dial that lost a simultaneous connect waits for the peer's session.
    race_timeout: Duration,
    stopped: bool,
    /// The trace context of the next cast, call, task or plain spawn ([`NodeState::traced`]),
    /// taken by it.
    trace: Option<WireTrace>,
    /// The largest frame (`max_frame_len`): a cast queued during a connect is checked
    /// against it when it is queued.
    max_frame_len: usize,
    /// The bound on the bytes of casts queued for one peer during a connect, as the
    /// session's on its write queue (`send_queue_limit`).
    send_queue_limit: usize,
    // What the machine does for several peers or requests at once (a shutdown, a node down,
    // expired deadlines) goes in name and id order, the same on every run, so a seeded
    // simulation (`nodus::testing::sim`) replays exactly: maps it walks are ordered, or
    // `NameMap`s whose walks are sorted.
    /// Incoming handshakes under way, by peer, from the registration answer on
    /// ([`NodeState::begin_accepting`]): a session with that peer may come up any moment.
    accepting: NameMap<AcceptingPeer>,
    /// This node's own dials under way, by peer ([`NodeState::begin_dialing`]).
    dialing: NameMap<usize>,
    /// Every peer this node has a session with or dials. Looked up several times per frame
    /// and per name of a peer list, walked only to shut down, expire or list (sorted
    /// there): hashed, since a BTree search of string compares in a thousand names was 13 %
    /// of a 1,000-node mesh's CPU.
    peers: NameMap<Peer<E::Session>>,
    /// Every node a session was ever up with (`Node.list(:known)`), with when it was last
    /// seen (a sequence number): at most `max_known` of them, see [`NodeState::remember`].
    /// (Listed sorted: `list` sorts.)
    known: NameMap<u64>,
    /// The known nodes that are down, by when they were last seen: the first is forgotten
    /// first.
    known_down: BTreeMap<u64, NodeName>,
    /// The bound on `known` (`NodeConfig::max_known_nodes`).
    max_known: usize,
    /// The sequence of `known`'s "last seen" stamps.
    seen: u64,
    requests: BTreeMap<u64, Request<E::Waiter>>,
    served: BTreeMap<(NodeName, u64), Served<E::Abort>>,
    /// The task starts peers asked for that are under way (handed out as [`Serve::Task`],
    /// not yet [`NodeState::handle_task_served`]), by (peer, request), with whether the peer
    /// asked meanwhile to kill the task: the driver runs starts concurrently with what the
    /// peer sends next, so a `Kill` may come first. Emptied of a peer when it goes down.
    starting: BTreeMap<(NodeName, u64), bool>,
    next_id: u64,
    transmits: VecDeque<Transmit<E::Session>>,
    completions: VecDeque<(E::Waiter, Outcome)>,
    events: VecDeque<NodeEvent>,
    actions: VecDeque<Action<E>>,
    /// Peers that said they are leaving (`ControlMsg::Leaving`) on their current session.
    leaving: BTreeSet<NodeName>,
    /// Peers whose last session ended with a graceful leave, until a session with them comes
    /// up again (at most [`LEFT_CAPACITY`]).
    left: BTreeSet<NodeName>,
    /// This node's view of the mesh: itself and every peer in `peers` that is being dialled
    /// or is up and visible (kept by [`NodeState::set_peer`] and
    /// [`NodeState::remove_peer`]), sent as [`ControlMsg::View`] and
    /// [`ControlMsg::ViewParts`].
    view: MeshView,
    /// The names in [`NodeState::view`] that peer lists leave out: dials a caller asked for
    /// (`Peer::Connecting` with `mesh` false). Usually none; kept so that the names of the
    /// parts two views differ in are listed without a lookup in `peers` each (when `peers`
    /// was a BTree, those searches were ~5 % of a 1,000-node mesh's CPU).
    unlisted: BTreeSet<NodeName>,
    /// Counts the changes of which peers are up (and whether hidden): a list sorted at one
    /// count is still right at that count ([`NodeState::up_generation`]).
    up_generation: u64,
    /// The peers casts went to since the last [`NodeState::take_cast_peers`], while a
    /// partial mesh tracks them ([`NodeState::track_casts`]) to close idle sessions; `None`
    /// (nothing recorded) otherwise.
    cast_peers: Option<BTreeSet<NodeName>>,
    /// This node's last sync of its view of the mesh (a peer list, or a view digest: see
    /// [`ControlMsg::View`]) with a peer it rejoined: every session up then but that peer's
    /// was counted in it. See [`NodeState::handle_session_down`] and [`STALE_SYNC_WINDOW`].
    synced: Option<Synced>,
}

/// A sync of this node's view of the mesh on a rejoined session (`NodeState::synced`).
#[derive(Debug, Clone, Copy)]
struct Synced {
    at: Instant,
    /// `next_id` then: the sessions up at the sync have lower connection numbers.
    next: u64,
    /// The session it came on.
    with: u64,
}

/// A map by node name that is only looked up, never walked in order (or walked and then
/// sorted): hashed, with a fixed hasher so that it behaves the same on every run. The
/// machine looks several such maps up per session that comes up and per name of a peer
/// list; ordered by text, in maps of a thousand names, those lookups were some 15 % of a
/// growing mesh's CPU. foldhash's fixed state hashes a name in a few nanoseconds (SipHash,
/// std's, took several times that); like std's `DefaultHasher` it has fixed keys, so it is
/// no weaker against crafted names, which only a peer that passed the cookie handshake
/// can send.
type NameMap<V> = HashMap<NodeName, V, foldhash::fast::FixedState>;

/// The capacity past which an emptied queue or map of the machine frees its buffer. A node
/// of a growing mesh queues a dial of each peer it hears of at once, and handshakes with
/// hundreds at a time: a buffer grown for such a burst is freed once drained, not kept for
/// the node's life (a thousand nodes kept some 100 bytes a session so).
const IDLE_CAPACITY: usize = 64;

/// The front of `queue`; a queue found empty frees its buffer if a burst grew it past
/// [`IDLE_CAPACITY`].
fn pop_or_free<T>(queue: &mut VecDeque<T>) -> Option<T> {
    let front = queue.pop_front();
    if front.is_none() && queue.capacity() > IDLE_CAPACITY {
        *queue = VecDeque::new();
    }
    front
}

/// Frees `map`'s table if it is empty and a burst grew it past [`IDLE_CAPACITY`].
fn free_if_idle<V>(map: &mut NameMap<V>) {
    if map.is_empty() && map.capacity() > IDLE_CAPACITY {
        *map = NameMap::default();
    }
}

/// Incoming handshakes from one peer under way ([`NodeState::register_incoming`]).
#[derive(Debug, Default)]
struct AcceptingPeer {
    handshakes: usize,
    /// A dial of the peer was wanted meanwhile: it is deferred until the last handshake
    /// ends, and made only if no session came of it.
    dial_deferred: bool,
}

/// How many nodes that left [`NodeState`] remembers; beyond, one is forgotten (a strategy
/// may then dial it once more, and fail).
const LEFT_CAPACITY: usize = 4096;

/// The default bound on the known nodes a node remembers (`NodeConfig::max_known_nodes`).
pub(crate) const DEFAULT_MAX_KNOWN_NODES: usize = 4096;

/// How long a mesh dial waits ([`Action::MeshDial`]) when the peer's own dial of this node
/// would win a simultaneous connect: long enough for the peer, which usually learns of this
/// node from the same peer lists at about the same time, to dial first; short enough that a
/// peer that never heard of this node costs the mesh little.
///
/// Without it, two nodes that hear of each other at once both dial, and one handshake of
/// the two is wasted: measured on the in-memory transport, 36-44 % of all handshakes of a
/// growing mesh of 300 to 1,000 nodes lost a simultaneous connect, each costing both nodes a
/// handshake and a dial task that then waited for the winner. The wait alone is not enough:
/// the node that sorts greater may hold its dial back for a turn longer than this (see
/// [`NodeState::register_incoming`]).
pub(crate) const MESH_DIAL_DEFER: Duration = Duration::from_millis(500);

/// How long after a sync of its view ([`ControlMsg::View`] or a peer list) with a peer it
/// rejoined a node that loses a peer it counted in that sync dials it once more
/// ([`NodeState::handle_session_down`]).
///
/// The sync may count stale sessions: a node that was paused (SIGSTOP, a VM migration, a
/// long stall) comes back, a peer that had declared it down dials it (its old session with
/// that peer is found stale in the handshake), and the two agree on the mesh before this
/// node has read that its other peers closed their sessions with it meanwhile. Those peers
/// declared it down and will not dial it; the peer it synced with saw the same names in
/// its view and sent no list; without this, the pair stayed apart for good. Only a rejoin
/// counts: a sync on a first session, as every sync of a growing mesh is, does not, so a
/// node lost (or disconnected on purpose) is not dialled again, as on the BEAM, where only a
/// strategy dials a lost node. A peer that really is gone costs one failed dial. Long
/// enough to cover the stale sessions being read after a resume.
pub(crate) const STALE_SYNC_WINDOW: Duration = Duration::from_secs(5);

impl<E: Effects> NodeState<E>
where
    E::Session: std::fmt::Debug,
    E::Waiter: std::fmt::Debug,
    E::Abort: std::fmt::Debug,
{
    /// A node named `me` with no peers. `race_timeout` bounds the wait of a dial that lost a
    /// simultaneous connect.
    pub(crate) fn new(
        me: NodeName,
        hidden: bool,
        connect_all: bool,
        race_timeout: Duration,
    ) -> Self {
        Self {
            hidden,
            connect_all,
            race_timeout,
            stopped: false,
            trace: None,
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            send_queue_limit: DEFAULT_SEND_QUEUE_LIMIT,
            accepting: NameMap::default(),
            dialing: NameMap::default(),
            peers: NameMap::default(),
            known: NameMap::default(),
            known_down: BTreeMap::new(),
            max_known: DEFAULT_MAX_KNOWN_NODES,
            seen: 0,
            requests: BTreeMap::new(),
            served: BTreeMap::new(),
            starting: BTreeMap::new(),
            next_id: 1,
            transmits: VecDeque::new(),
            completions: VecDeque::new(),
            events: VecDeque::new(),
            actions: VecDeque::new(),
            leaving: BTreeSet::new(),
            left: BTreeSet::new(),
            view: MeshView::new(&me),
            unlisted: BTreeSet::new(),
            up_generation: 0,
            me,
            cast_peers: None,
            synced: None,
        }
    }

    /// From now on, records the peers casts go to (for
    /// [`crate::cluster::PartialMesh`]'s idle close).
    pub(crate) fn track_casts(&mut self) {
        self.cast_peers.get_or_insert_with(BTreeSet::new);
    }

    /// The peers casts went to since the last call (empty unless tracking is on): at most
    /// the peers of one period, so the set stays bounded.
    pub(crate) fn take_cast_peers(&mut self) -> BTreeSet<NodeName> {
        self.cast_peers
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Sets the largest frame and the bound on the casts queued for a peer during a connect
    /// (the node's `max_frame_len` and `send_queue_limit`; the defaults are the session's).
    pub(crate) fn set_limits(&mut self, max_frame_len: usize, send_queue_limit: usize) {
        self.max_frame_len = max_frame_len;
        self.send_queue_limit = send_queue_limit;
    }

    /// The session with `peer` that just came up sends frames of at most `max` bytes (the
    /// smaller of the two nodes' limits, the peer's told in the handshake): checked here too
    /// for what the machine sizes itself (a task's result), until the session goes down.
    pub(crate) fn set_peer_max_frame_len(&mut self, peer: &NodeName, max: usize) {
        if let Some(Peer::Up { max_frame_len, .. }) = self.peers.get_mut(peer) {
            *max_frame_len = max;
        }
    }

    /// The largest frame to `peer`: this node's, or the peer's if smaller.
    fn max_frame_len_to(&self, peer: &NodeName) -> usize {
        match self.peers.get(peer) {
            Some(Peer::Up { max_frame_len, .. }) => (*max_frame_len).min(self.max_frame_len),
            _ => self.max_frame_len,
        }
    }

    /// Sets the bound on the known nodes remembered (`NodeConfig::max_known_nodes`; at least
    /// 1). Beyond it the node down the longest is forgotten; a connected node never is.
    pub(crate) fn set_max_known(&mut self, max: usize) {
        self.max_known = max.max(1);
        self.forget_known();
    }

    /// Records that `peer` was seen now, up or going down.
    fn remember(&mut self, peer: &NodeName, up: bool) {
        self.seen += 1;
        if let Some(before) = self.known.insert(peer.clone(), self.seen) {
            self.known_down.remove(&before);
        }
        if !up {
            self.known_down.insert(self.seen, peer.clone());
        }
        self.forget_known();
    }

    /// Forgets known nodes down the longest while there are more than `max_known`.
    fn forget_known(&mut self) {
        while self.known.len() > self.max_known {
            let Some((_, oldest)) = self.known_down.pop_first() else {
                return; // all connected: the bound waits for one to go down
            };
            self.known.remove(&oldest);
        }
    }

    /// Whether `peer` counts in this node's view of the mesh ([`ControlMsg::View`]): a dial
    /// under way (the peer may turn out hidden, but the view only has to be the same set on
    /// two nodes that know the same nodes), or a visible session.
    fn in_view(peer: &Peer<E::Session>) -> bool {
        matches!(
            peer,
            Peer::Connecting { .. } | Peer::Up { hidden: false, .. }
        )
    }

    /// Sets `name`'s entry in `peers`, keeping the view's digest: the entry it replaces.
    fn set_peer(&mut self, name: &NodeName, peer: Peer<E::Session>) -> Option<Peer<E::Session>> {
        let now_in = Self::in_view(&peer);
        let now_unlisted = Self::unlisted(&peer);
        let now_up = matches!(peer, Peer::Up { .. });
        let before = self.peers.insert(name.clone(), peer);
        if now_up || matches!(before, Some(Peer::Up { .. })) {
            self.up_generation += 1;
        }
        let was_in = before.as_ref().is_some_and(Self::in_view);
        match (was_in, now_in) {
            (false, true) => self.view.add(name),
            (true, false) => self.view.remove(name),
            _ => {}
        }
        if now_unlisted {
            self.unlisted.insert(name.clone());
        } else if before.as_ref().is_some_and(Self::unlisted) {
            self.unlisted.remove(name);
        }
        before
    }

    /// Whether `peer` is in the view but left out of peer lists (see
    /// [`NodeState::listed`]): a dial a caller asked for.
    fn unlisted(peer: &Peer<E::Session>) -> bool {
        Self::in_view(peer) && !Self::listed(peer, true)
    }

    /// Every entry of `peers`, in name order: what the machine does for every peer at once
    /// goes in that order, the same on every run (see the note on `NodeState`'s maps).
    fn peers_by_name(&self) -> Vec<(&NodeName, &Peer<E::Session>)> {
        let mut all: Vec<_> = self.peers.iter().collect();
        all.sort_unstable_by(|a, b| a.0.cmp(b.0));
        all
    }

    /// Removes `name`'s entry from `peers`, keeping the view's digest.
    fn remove_peer(&mut self, name: &NodeName) -> Option<Peer<E::Session>> {
        let before = self.peers.remove(name);
        if matches!(before, Some(Peer::Up { .. })) {
            self.up_generation += 1;
        }
        if before.as_ref().is_some_and(Self::in_view) {
            self.view.remove(name);
        }
        if before.as_ref().is_some_and(Self::unlisted) {
            self.unlisted.remove(name);
        }
        before
    }

    /// The digest of this node's view of the mesh (for tests).
    #[cfg(test)]
    pub(crate) fn view(&self) -> crate::wire::message::ViewDigest {
        self.view.digest()
    }

    /// This node's view of the mesh in parts (for tests).
    #[cfg(test)]
    pub(crate) fn view_parts(&self) -> ViewParts {
        self.view.parts()
    }

    /// The mesh's peer list ([`ControlMsg::Peers`]) for `except`: the visible nodes this
    /// node has a session with and, when `dialled` (the peer sets `CAP_VIEW_DIGEST`), those
    /// it dials because a peer list named them, all but `except`. In `peers`' hashed order
    /// (fixed by its hasher and the map's history, so the same on every run of a seeded
    /// simulation), not sorted: the receiver dials each name it lacks, and a mesh of a
    /// thousand nodes would sort a million times.
    ///
    /// Passing on names still being dialled spreads what the nodes know ahead of their
    /// sessions, so views agree early and most sessions of a growing mesh carry no list
    /// (a name that turns out unreachable costs each node that heard it a few bounded
    /// dials). A node dialled for a caller of this node (`connect`, a cast) is passed on only
    /// once it is up: a mistyped name does not spread.
    fn visible_except(&self, except: &NodeName, dialled: bool) -> Vec<NodeName> {
        self.peers
            .iter()
            .filter(|(n, p)| *n != except && Self::listed(p, dialled))
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Whether `peer` goes in the mesh's peer list (see [`NodeState::visible_except`]).
    fn listed(peer: &Peer<E::Session>, dialled: bool) -> bool {
        match peer {
            Peer::Up { hidden, .. } => !hidden,
            Peer::Connecting { mesh, .. } => dialled && *mesh,
        }
    }

    /// [`NodeState::visible_except`] for a peer that sets `CAP_VIEW_DIGEST`, but only the
    /// names of the parts in which its view (`theirs`) differs from this node's: it has
    /// the others already. Found from the view's parts, not by walking every peer: the view
    /// is this node and its listed peers, save the few in [`NodeState::unlisted`].
    fn listed_in_parts(&self, except: &NodeName, theirs: &ViewParts) -> Vec<NodeName> {
        self.view
            .differing(theirs)
            .filter(|n| *n != except && **n != self.me && !self.unlisted.contains(*n))
            .cloned()
            .collect()
    }

    // ----- outputs -----

    /// The next frame to send.
    pub(crate) fn poll_transmit(&mut self) -> Option<Transmit<E::Session>> {
        pop_or_free(&mut self.transmits)
    }

    /// The next outcome for a waiter.
    pub(crate) fn poll_completion(&mut self) -> Option<(E::Waiter, Outcome)> {
        pop_or_free(&mut self.completions)
    }

    /// The next node event.
    pub(crate) fn poll_event(&mut self) -> Option<NodeEvent> {
        pop_or_free(&mut self.events)
    }

    /// The next action for the driver.
    pub(crate) fn poll_action(&mut self) -> Option<Action<E>> {
        pop_or_free(&mut self.actions)
    }

    /// Whether any output other than a frame is waiting.
    pub(crate) fn has_effects(&self) -> bool {
        !(self.completions.is_empty() && self.events.is_empty() && self.actions.is_empty())
    }

    /// The earliest deadline of a request, if any: call [`NodeState::handle_timeout`] then.
    /// (The driver needs no timer of its own: each deadline belongs to a waiter whose own
    /// timer calls `handle_timeout` when it fires.)
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        let requests = self.requests.values().filter_map(|r| r.deadline);
        let races = self.peers.values().filter_map(|p| match p {
            Peer::Connecting { waiting, .. } => waiting.as_ref().and_then(|w| w.race_deadline),
            Peer::Up { .. } => None,
        });
        requests.chain(races).min()
    }

    // ----- queries -----

    /// Whether the node has shut down.
    pub(crate) fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// Whether `peer` left gracefully (its last session ended after its
    /// `ControlMsg::Leaving`) and no session with it has come up since.
    pub(crate) fn has_left(&self, peer: &NodeName) -> bool {
        self.left.contains(peer)
    }

    /// The nodes that left gracefully and have not connected since, sorted.
    pub(crate) fn left(&self) -> Vec<NodeName> {
        self.left.iter().cloned().collect()
    }

    /// Forgets that `peer` left (a strategy saw it again): whether it had.
    pub(crate) fn forget_left(&mut self, peer: &NodeName) -> bool {
        self.left.remove(peer)
    }

    /// Whether a visible session with `peer` is up (`peer` is in [`ListKind::Visible`]).
    pub(crate) fn is_visible(&self, peer: &NodeName) -> bool {
        matches!(self.peers.get(peer), Some(Peer::Up { hidden: false, .. }))
    }

    /// Whether any session is up (hidden or not): [`ListKind::Connected`] is not empty,
    /// without listing it.
    pub(crate) fn has_sessions(&self) -> bool {
        self.peers.values().any(|p| matches!(p, Peer::Up { .. }))
    }

    /// Whether a session with `peer` is up and is a first one: this node had no session with
    /// it before that it remembers (`known`) going down (see `Peer::Up::rejoined`).
    pub(crate) fn is_first_session(&self, peer: &NodeName) -> bool {
        matches!(
            self.peers.get(peer),
            Some(Peer::Up {
                rejoined: false,
                ..
            })
        )
    }

    /// Whether a session with `peer` is up.
    pub(crate) fn is_connected(&self, peer: &NodeName) -> bool {
        matches!(self.peers.get(peer), Some(Peer::Up { .. }))
    }

    /// Whether a dial of `peer` is under way that no caller waits for: one the mesh started
    /// (`ControlMsg::Peers`), or one for casts only. The driver retries such a dial when it
    /// fails, since nothing else would ever connect the two nodes again.
    pub(crate) fn dialing_unwaited(&self, peer: &NodeName) -> bool {
        !self.stopped
            && matches!(self.peers.get(peer), Some(Peer::Connecting { .. }))
            && !self
                .requests
                .values()
                .any(|r| r.peer == *peer && matches!(r.kind, Pending::Connect))
    }

    /// What the handshake of an incoming connection from `peer` should know.
    pub(crate) fn existing(&self, peer: &NodeName) -> Existing {
        match self.peers.get(peer) {
            _ if self.stopped => Existing::Established,
            Some(Peer::Up { .. }) => Existing::Established,
            Some(Peer::Connecting { .. }) => Existing::PendingOutgoing,
            None => Existing::None,
        }
    }

    /// An incoming handshake from `peer` was let through the registration check: until
    /// [`NodeState::end_accepting`], this node may be about to have a session with it.
    pub(crate) fn begin_accepting(&mut self, peer: &NodeName) {
        self.accepting.entry(peer.clone()).or_default().handshakes += 1;
    }

    /// The acceptor's answer for an incoming handshake from `peer` (see
    /// [`NodeState::existing`]), counted by [`NodeState::begin_accepting`] unless it is
    /// `Established`. While a handshake this node let go on runs, this node does not dial
    /// `peer` (a dial would be a second connection the peer may accept too, and each side
    /// could then keep a different one and close the other's: both sessions lost; see
    /// `ensure_dial`), and a second incoming one from `peer` is refused as a duplicate.
    ///
    /// A mesh dial of `peer` that has not started (it waits, or waits for a turn) does not
    /// count: the peer's connection goes on as if there were none, and the dial, when its
    /// turn comes, finds the session or the handshake and is not made
    /// ([`NodeState::start_mesh_dial`]). Else the node that sorts greater, which holds back
    /// most dials for a turn in a growing mesh, refused every node that dialled it first
    /// and made each wait for a dial of its own: a lost simultaneous connect each.
    pub(crate) fn register_incoming(&mut self, peer: &NodeName) -> Existing {
        let existing = match self.existing(peer) {
            Existing::None if self.accepting.contains_key(peer) => Existing::Established,
            Existing::PendingOutgoing
                if matches!(
                    self.peers.get(peer),
                    Some(Peer::Connecting {
                        unstarted: true,
                        ..
                    })
                ) =>
            {
                Existing::None
            }
            other => other,
        };
        if existing != Existing::Established {
            self.begin_accepting(peer);
        }
        existing
    }

    /// The incoming handshake from `peer` ended (its session, if any, is installed): past the
    /// last one, a dial wanted meanwhile is made now if no session came of it.
    pub(crate) fn end_accepting(&mut self, peer: &NodeName) {
        let Some(accepting) = self.accepting.get_mut(peer) else {
            return;
        };
        accepting.handshakes = accepting.handshakes.saturating_sub(1);
        if accepting.handshakes > 0 {
            return;
        }
        let deferred = accepting.dial_deferred;
        self.accepting.remove(peer);
        free_if_idle(&mut self.accepting);
        if deferred
            && !self.stopped
            && matches!(self.peers.get(peer), Some(Peer::Connecting { .. }))
        {
            self.actions.push_back(Action::Dial(peer.clone()));
        }
    }

    /// A dial of `peer` (its handshake) starts: until [`NodeState::end_dialing`].
    pub(crate) fn begin_dialing(&mut self, peer: &NodeName) {
        *self.dialing.entry(peer.clone()).or_default() += 1;
    }

    /// A dial of `peer` ended (its session, if any, is installed).
    pub(crate) fn end_dialing(&mut self, peer: &NodeName) {
        if let Some(n) = self.dialing.get_mut(peer) {
            *n -= 1;
            if *n == 0 {
                self.dialing.remove(peer);
                free_if_idle(&mut self.dialing);
            }
        }
    }

    /// The answer to a peer that says it has a session with this node (`Alive`), for one
    /// dial of this node: [`Existing::Established`] (do not go on) if a session with it is
    /// up, or may be about to be (an incoming handshake from it, or another dial of it, is
    /// under way: the peer's session may be that one, not stale), else what
    /// [`NodeState::existing`] says.
    pub(crate) fn alive_check(&self, peer: &NodeName) -> Existing {
        let other_dials = self.dialing.get(peer).is_some_and(|&n| n > 1);
        if self.accepting.contains_key(peer) || other_dials {
            return Existing::Established;
        }
        self.existing(peer)
    }

    /// Nodes of one kind, sorted, as `Node.list/1`.
    pub(crate) fn list(&self, kind: ListKind) -> Vec<NodeName> {
        let mut out = self.list_unsorted(kind);
        sort_names(&mut out);
        out
    }

    /// A count that changes whenever a peer comes up or goes down (or a session replaces
    /// another): [`NodeState::up_unsorted`]'s peers, sorted, stay right while it does not,
    /// so a caller may keep them sorted instead of sorting again.
    pub(crate) fn up_generation(&self) -> u64 {
        self.up_generation
    }

    /// The peers up, in no order, each with whether it is hidden, and the
    /// [`up_generation`](Self::up_generation) they are right at.
    pub(crate) fn up_unsorted(&self) -> (u64, Vec<(NodeName, bool)>) {
        let up = self.up_peers().map(|(name, hidden)| (name.clone(), hidden));
        (self.up_generation, up.collect())
    }

    /// The peers up, in no order, each with whether it is hidden.
    fn up_peers(&self) -> impl Iterator<Item = (&NodeName, bool)> {
        self.peers.iter().filter_map(|(name, peer)| match peer {
            Peer::Up { hidden, .. } => Some((name, *hidden)),
            Peer::Connecting { .. } => None,
        })
    }

    /// [`list`](Self::list)'s nodes in no order, to be sorted with [`sort_names`] once the
    /// node's lock is released: sorting a thousand names is most of a list's cost, and the
    /// peers are hashed, not kept in order.
    pub(crate) fn list_unsorted(&self, kind: ListKind) -> Vec<NodeName> {
        let up = self.up_peers();
        match kind {
            ListKind::This => vec![self.me.clone()],
            ListKind::Known => self.known.keys().chain([&self.me]).cloned().collect(),
            ListKind::Visible => up.filter(|(_, h)| !h).map(|(n, _)| n.clone()).collect(),
            ListKind::Hidden => up.filter(|(_, h)| *h).map(|(n, _)| n.clone()).collect(),
            ListKind::Connected => up.map(|(n, _)| n.clone()).collect(),
        }
    }

    /// How many requests are outstanding, and how much work is done for peers (for tests).
    #[cfg(test)]
    pub(crate) fn load(&self) -> (usize, usize) {
        (self.requests.len(), self.served.len())
    }

    /// How many requests of one kind are outstanding: `"call"`, `"watch"`, ... (for tests).
    #[cfg(test)]
    pub(crate) fn outstanding(&self, kind: &str) -> usize {
        self.requests
            .values()
            .filter(|r| format!("{:?}", r.kind).to_lowercase().starts_with(kind))
            .count()
    }

    /// How many task starts peers asked for are under way (for tests).
    #[cfg(test)]
    pub(crate) fn starting(&self) -> usize {
        self.starting.len()
    }

    /// How many watches peers hold on this node's actors (for tests).
    #[cfg(test)]
    pub(crate) fn served_watches(&self) -> usize {
        self.served.values().filter(|s| s.linked).count()
    }

    // ----- requests from the API -----

    fn new_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// The session with `peer`, if one is up.
    pub(crate) fn session(&self, peer: &NodeName) -> Option<&E::Session> {
        self.session_of(peer)
    }

    fn session_of(&self, peer: &NodeName) -> Option<&E::Session> {
        match self.peers.get(peer) {
            Some(Peer::Up { session, .. }) => Some(session),
            _ => None,
        }
    }

    fn complete(&mut self, waiter: E::Waiter, outcome: Outcome) {
        self.completions.push_back((waiter, outcome));
    }

    /// Sends `msg` to `peer` if a session is up with it: answers for a peer that went away
    /// are dropped. (Work done for a peer is forgotten when its session goes down, so an
    /// answer about it never reaches a later session.)
    fn send_to(&mut self, peer: &NodeName, msg: NodeMsg) {
        if let Some(session) = self.session_of(peer).cloned() {
            self.send(session, msg, None);
        }
    }

    fn send(&mut self, session: E::Session, msg: NodeMsg, request: Option<u64>) {
        self.transmits.push_back(Transmit {
            session,
            msg,
            request,
            bounded: false,
        });
    }

    /// Sends a new cast, call or task start: the session may refuse it when its queue is
    /// full (see [`Transmit::bounded`]).
    fn send_bounded(&mut self, session: E::Session, msg: NodeMsg, request: Option<u64>) {
        self.transmits.push_back(Transmit {
            session,
            msg,
            request,
            bounded: true,
        });
    }

    /// Starts dialling `peer` unless a session exists or a dial is under way.
    fn ensure_dial(&mut self, peer: &NodeName) {
        self.ensure_dial_for(peer, false);
    }

    /// Starts dialling `peer` unless a session exists or a dial is under way; `mesh`: because
    /// a peer list named it.
    ///
    /// A mesh dial is an [`Action::MeshDial`], made only once it has a turn among the dials
    /// under way (see `driver::MAX_MESH_DIALS`); it waits [`MESH_DIAL_DEFER`] first if the
    /// peer's name sorts greater than this node's: if both nodes dial each other, the peer's
    /// connection is the one kept (see `proto::handshake`, simultaneous connects), and the
    /// peer has most likely heard of this node from the same lists. A dial a caller waits
    /// for never waits.
    fn ensure_dial_for(&mut self, peer: &NodeName, mesh: bool) {
        if self.stopped || *peer == self.me || self.peers.contains_key(peer) {
            return;
        }
        let accepting = self.accepting.contains_key(peer);
        self.set_peer(
            peer,
            Peer::Connecting {
                waiting: None,
                mesh,
                unstarted: mesh && !accepting,
            },
        );
        match self.accepting.get_mut(peer) {
            // The peer's own connection is being accepted: wait for it (see
            // `register_incoming`).
            Some(accepting) => accepting.dial_deferred = true,
            None if mesh => {
                let wait = if *peer > self.me {
                    MESH_DIAL_DEFER
                } else {
                    Duration::ZERO
                };
                self.actions.push_back(Action::MeshDial {
                    peer: peer.clone(),
                    wait,
                });
            }
            None => self.actions.push_back(Action::Dial(peer.clone())),
        }
    }

    /// The mesh's dial of `peer` ([`Action::MeshDial`]) has waited and has its turn: whether
    /// it goes now, and if so it has started ([`NodeState::begin_dialing`]; the driver ends
    /// it). Not if a caller's connect started a dial already, or a session came up meanwhile
    /// (the peer dialled, as expected), or it was given up; and not while the peer's own
    /// connection is being accepted (then the dial is made when that handshake ends, if no
    /// session came of it, see [`NodeState::end_accepting`]).
    pub(crate) fn start_mesh_dial(&mut self, peer: &NodeName) -> bool {
        if !self.take_unstarted(peer) || self.stopped {
            return false;
        }
        if let Some(accepting) = self.accepting.get_mut(peer) {
            accepting.dial_deferred = true;
            return false;
        }
        self.begin_dialing(peer);
        true
    }

    /// Whether the mesh's dial of `peer` had not started; from now on it counts as started
    /// (or given up).
    fn take_unstarted(&mut self, peer: &NodeName) -> bool {
        match self.peers.get_mut(peer) {
            Some(Peer::Connecting { unstarted, .. }) => std::mem::take(unstarted),
            _ => false,
        }
    }

    fn insert(&mut self, peer: &NodeName, kind: Pending, waiter: E::Waiter) -> u64 {
        let id = self.new_id();
        self.requests.insert(
            id,
            Request {
                peer: peer.clone(),
                kind,
                waiter: Some(waiter),
                result: None,
                deadline: None,
            },
        );
        id
    }

    /// Connects to `peer` unless a session exists, as `Node.connect/1`: `waiter` hears
    /// [`Outcome::Connected`] once the session is up or the attempt failed. Concurrent
    /// connects to one peer share one dial.
    pub(crate) fn request_connect(&mut self, peer: &NodeName, waiter: E::Waiter) {
        if self.stopped {
            return self.complete(waiter, Outcome::Connected(Err(ConnectError::NotAlive)));
        }
        if *peer == self.me || self.is_connected(peer) {
            return self.complete(waiter, Outcome::Connected(Ok(())));
        }
        self.ensure_dial(peer);
        if self.take_unstarted(peer) {
            // A caller waits now: the mesh's dial, not started, goes at once (and
            // `start_mesh_dial` then finds nothing to start).
            self.actions.push_back(Action::Dial(peer.clone()));
        }
        self.insert(peer, Pending::Connect, waiter);
    }

    /// Monitors `peer`, as `Node.monitor/2`: `waiter` hears one [`Outcome::NodeDown`]. A peer
    /// not connected is down at once (`connection_closed`). Returns the monitor's id for
    /// [`NodeState::cancel_node_monitor`], if it was set.
    pub(crate) fn monitor_node(&mut self, peer: &NodeName, waiter: E::Waiter) -> Option<u64> {
        if self.is_connected(peer) {
            Some(self.insert(peer, Pending::NodeMonitor, waiter))
        } else {
            let down = NodeDown {
                node: peer.clone(),
                reason: NodeDownReason::ConnectionClosed,
            };
            self.complete(waiter, Outcome::NodeDown(down));
            None
        }
    }

    /// Removes the node monitor `id` (it was dropped).
    pub(crate) fn cancel_node_monitor(&mut self, id: u64) {
        if self
            .requests
            .get(&id)
            .is_some_and(|r| matches!(r.kind, Pending::NodeMonitor))
        {
            self.requests.remove(&id);
        }
    }

    /// Pings a connected `peer`: `waiter` hears [`Outcome::Pong`], or a `Timeout` (naming
    /// `timeout`) at `deadline`.
    pub(crate) fn request_ping(
        &mut self,
        deadline: Instant,
        peer: &NodeName,
        timeout: Duration,
        waiter: E::Waiter,
    ) {
        let Some(session) = self.session_of(peer).cloned() else {
            let err = ConnectError::Timeout {
                node: peer.clone(),
                timeout,
            };
            return self.complete(waiter, Outcome::Pong(Err(err)));
        };
        let id = self.insert(peer, Pending::Ping { timeout }, waiter);
        self.set_deadline(id, deadline);
        self.send(session, NodeMsg::Control(ControlMsg::Ping(id)), None);
    }

    fn set_deadline(&mut self, id: u64, deadline: Instant) {
        if let Some(request) = self.requests.get_mut(&id) {
            request.deadline = Some(deadline);
        }
    }

    /// Sets the trace context the next cast, call, task or plain spawn carries (the caller's,
    /// captured where it made the request); that request takes it, so it never reaches a
    /// later one.
    pub(crate) fn traced(&mut self, trace: Option<WireTrace>) -> &mut Self {
        self.trace = trace;
        self
    }

    /// A cast to an actor on `peer`, as Erlang's `send`: sent now if a session is up (the
    /// session may still refuse it: over `max_frame_len`, or its queue full), else queued in
    /// order and a dial started; dropped when this node has stopped.
    ///
    /// # Errors
    /// During a connect, a cast over `max_frame_len` is `TooLarge`, and one past
    /// `send_queue_limit` bytes of queued casts is `Busy`; the payload is handed back.
    pub(crate) fn cast(
        &mut self,
        peer: &NodeName,
        dest: &Destination,
        name: &'static str,
        payload: Vec<u8>,
    ) -> Result<(), CastRefused> {
        let trace = self.trace.take();
        if self.stopped || *peer == self.me {
            return Ok(()); // (casts to this node itself are delivered by the system)
        }
        if let Some(used) = &mut self.cast_peers {
            if !used.contains(peer) {
                used.insert(peer.clone());
            }
        }
        let msg = NodeMsg::Actor(ActorMsg::Send {
            target: target_of(dest),
            name: Cow::Borrowed(name),
            payload,
            call: None,
            trace,
        });
        // The hot path (a session is up) looks the peer up once.
        if let Some(Peer::Up { session, .. }) = self.peers.get(peer) {
            let session = session.clone();
            self.send_bounded(session, msg, None);
            return Ok(());
        }
        let refuse = |kind: SendErrorKind, msg: NodeMsg| {
            let payload = match msg {
                NodeMsg::Actor(ActorMsg::Send { payload, .. }) => payload,
                _ => Vec::new(),
            };
            Err(CastRefused { kind, payload })
        };
        // Checked now, as the session would check it: a cast that returned `Ok` is not
        // refused when the connect completes.
        let size = match actor_core::codec::encoded_len(&SessionFrame::Msg(&msg)) {
            Ok(size) => size,
            Err(e) => {
                let kind = SendErrorKind::Refused {
                    node: self.me.clone(),
                    reason: e.to_string(),
                };
                return refuse(kind, msg);
            }
        };
        if size > self.max_frame_len {
            let kind = SendErrorKind::TooLarge {
                node: peer.clone(),
                size,
                limit: self.max_frame_len,
            };
            return refuse(kind, msg);
        }
        self.ensure_dial(peer);
        let limit = self.send_queue_limit;
        match self.peers.get_mut(peer) {
            Some(Peer::Connecting { waiting, .. }) => {
                let Waiting {
                    queued,
                    queued_bytes,
                    ..
                } = &mut **waiting.get_or_insert_with(Box::default);
                if *queued_bytes >= limit {
                    let kind = SendErrorKind::Busy {
                        node: peer.clone(),
                        limit,
                    };
                    return refuse(kind, msg);
                }
                *queued_bytes += size + LEN_PREFIX;
                queued.push(msg);
            }
            // A session came up under ensure_dial: not possible, it only inserts Connecting.
            Some(Peer::Up { .. }) | None => {}
        }
        Ok(())
    }

    /// A call to an actor on a connected `peer`: `waiter` hears [`Outcome::Reply`], a
    /// `Timeout` (naming `timeout`) at `deadline`, or `NoConnection` if the peer is not
    /// connected or goes down.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn request_call(
        &mut self,
        deadline: Instant,
        peer: &NodeName,
        dest: &Destination,
        name: &'static str,
        payload: Vec<u8>,
        timeout: Duration,
        waiter: E::Waiter,
    ) {
        let trace = self.trace.take();
        let Some(session) = self.session_of(peer).cloned() else {
            let err = CallError::Send(SendErrorKind::NoConnection { node: peer.clone() });
            return self.complete(waiter, Outcome::Reply(Err(err)));
        };
        let kind = Pending::Call {
            dest: dest.clone(),
            timeout,
        };
        let id = self.insert(peer, kind, waiter);
        self.set_deadline(id, deadline);
        let msg = NodeMsg::Actor(ActorMsg::Send {
            target: target_of(dest),
            name: Cow::Borrowed(name),
            payload,
            call: Some(id),
            trace,
        });
        self.send_bounded(session, msg, Some(id));
    }

    /// Starts a task under the task supervisor `supervisor` of a connected `peer`: `waiter`
    /// hears [`Outcome::Started`], and `result` (for an async task) [`Outcome::TaskDone`].
    /// A start not answered by `deadline` is `Unconfirmed` (naming `timeout`), and a linked
    /// task is then told to stop. Returns the request's id, which
    /// [`NodeState::cancel_task`] takes.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn request_task(
        &mut self,
        deadline: Instant,
        timeout: Duration,
        peer: &NodeName,
        supervisor: &Destination,
        module: &str,
        function: &str,
        args: Vec<u8>,
        kind: WireTaskKind,
        waiter: E::Waiter,
        result: Option<E::Waiter>,
    ) -> Option<u64> {
        let trace = self.trace.take();
        let Some(session) = self.session_of(peer).cloned() else {
            let err = TaskError::NoConnection { node: peer.clone() };
            self.complete(waiter, Outcome::Started(Err(err.clone())));
            if let Some(result) = result {
                self.complete(result, Outcome::TaskDone(Err(err)));
            }
            return None;
        };
        let linked = matches!(kind, WireTaskKind::Async { linked: true });
        let id = self.insert(peer, Pending::Task { timeout, linked }, waiter);
        if let Some(request) = self.requests.get_mut(&id) {
            request.result = result;
            request.deadline = Some(deadline);
        }
        let msg = NodeMsg::Task(TaskMsg::Spawn {
            req: id,
            supervisor: target_of(supervisor),
            module: module.to_string(),
            function: function.to_string(),
            args,
            kind,
            trace,
        });
        self.send_bounded(session, msg, Some(id));
        Some(id)
    }

    /// Stops the task of request `id` on `peer` (its linked caller went away): forgets the
    /// request and asks the peer to kill the task.
    pub(crate) fn cancel_task(&mut self, peer: &NodeName, id: u64) {
        if self.requests.get(&id).is_some_and(|r| r.peer == *peer) {
            self.requests.remove(&id);
        }
        self.send_to(peer, NodeMsg::Task(TaskMsg::Kill { req: id }));
    }

    /// Runs a plain process on a connected `peer` (`Node.spawn/4`): `waiter` hears
    /// [`Outcome::Started`].
    pub(crate) fn request_plain(
        &mut self,
        peer: &NodeName,
        module: &str,
        function: &str,
        args: Vec<u8>,
        waiter: E::Waiter,
    ) {
        let trace = self.trace.take();
        let Some(session) = self.session_of(peer).cloned() else {
            let err = TaskError::NoConnection { node: peer.clone() };
            return self.complete(waiter, Outcome::Started(Err(err)));
        };
        let id = self.insert(peer, Pending::Plain, waiter);
        let msg = NodeMsg::Task(TaskMsg::SpawnPlain {
            req: id,
            module: module.to_string(),
            function: function.to_string(),
            args,
            trace,
        });
        self.send_bounded(session, msg, Some(id));
    }

    /// Watches the actor `dest` on a connected `peer` (a remote `Process.monitor`): `waiter`
    /// hears one [`Outcome::Down`]. Returns the watch's id for [`NodeState::cancel_watch`].
    pub(crate) fn request_watch(
        &mut self,
        peer: &NodeName,
        dest: &Destination,
        waiter: E::Waiter,
    ) -> Option<u64> {
        let Some(session) = self.session_of(peer).cloned() else {
            self.complete(waiter, Outcome::Down(DownReason::NoConnection));
            return None;
        };
        let id = self.insert(peer, Pending::Watch, waiter);
        let msg = NodeMsg::Watch(WatchMsg::Watch {
            id,
            target: target_of(dest),
        });
        self.send(session, msg, None);
        Some(id)
    }

    /// Removes the watch `id` (its monitor was dropped), telling the peer.
    pub(crate) fn cancel_watch(&mut self, id: u64) {
        let Some(request) = self.requests.remove(&id) else {
            return;
        };
        self.send_to(&request.peer, NodeMsg::Watch(WatchMsg::Unwatch { id }));
    }

    /// Sends a link signal to the node of `to` as Erlang sends it: now if a session is up,
    /// else queued in order behind a connect under way. With `dial`, a dial is started if
    /// none is under way; without, a signal to a node not connected is dropped.
    fn signal_peer(&mut self, to: &Pid, msg: LinkMsg, dial: bool) {
        let peer = to.node();
        if self.stopped || *peer == self.me {
            return;
        }
        if let Some(session) = self.session_of(peer).cloned() {
            return self.send(session, NodeMsg::Link(msg), None);
        }
        if dial {
            self.ensure_dial(peer);
        }
        if let Some(Peer::Connecting { waiting, .. }) = self.peers.get_mut(peer) {
            let waiting = waiting.get_or_insert_with(Box::default);
            waiting.queued.push(NodeMsg::Link(msg));
        }
    }

    /// Links the local actor `from` to the actor `to` of another node (`Process.link/1`),
    /// connecting first if needed. If that node cannot be reached (or this node has
    /// stopped), `from` gets an exit `noconnection` from `to` ([`Action::Signal`]); a
    /// session that goes down later breaks the link the same way ([`Action::LinksDown`]).
    pub(crate) fn link(&mut self, from: &Pid, to: &Pid) {
        let refused = if *to.node() == self.me {
            // A pid of an earlier incarnation of this node (the system links to current
            // ones itself): nobody lives there.
            Some(ExitReason::NoProc)
        } else if self.stopped {
            Some(ExitReason::NoConnection)
        } else {
            None
        };
        if let Some(reason) = refused {
            return self.actions.push_back(Action::Signal {
                from: to.clone(),
                to: from.clone(),
                reason,
            });
        }
        let msg = LinkMsg::Link {
            from: wire_pid(from),
            to: wire_pid(to),
        };
        self.signal_peer(to, msg, true);
    }

    /// Removes the link from the local actor `from` to the actor `to` on its node: sent if a
    /// session is up or being made (a node not connected has no link to remove).
    pub(crate) fn unlink(&mut self, from: &Pid, to: &Pid) {
        let msg = LinkMsg::Unlink {
            from: wire_pid(from),
            to: wire_pid(to),
        };
        self.signal_peer(to, msg, false);
    }

    /// The exit signal of the local actor `from`, which stopped with `reason`, for the actor
    /// `to` it was linked to: sent if a session is up or being made; dropped otherwise (that
    /// side sees the node down, an exit `noconnection`).
    pub(crate) fn exit(&mut self, from: &Pid, to: &Pid, reason: &ExitReason) {
        let msg = LinkMsg::Exit {
            from: wire_pid(from),
            to: wire_pid(to),
            reason: reason.into(),
        };
        self.signal_peer(to, msg, false);
    }

    /// Closes the session with `peer`, as `Node.disconnect/1`: whether there was one. The
    /// node-down follows when the session has closed.
    pub(crate) fn disconnect(&mut self, peer: &NodeName) -> bool {
        match self.session_of(peer).cloned() {
            Some(session) => {
                self.actions.push_back(Action::Close(session));
                true
            }
            None => false,
        }
    }

    /// The node starts a graceful shutdown: no new session is made or accepted, connects
    /// under way fail with `NotAlive`, and every peer is told `ControlMsg::Leaving` (it then
    /// closes the session). Returns how many peers were told; [`NodeState::shutdown`]
    /// closes what is left.
    pub(crate) fn leave(&mut self) -> usize {
        self.stopped = true;
        let connecting: Vec<NodeName> = self
            .peers_by_name()
            .into_iter()
            .filter(|(_, p)| matches!(p, Peer::Connecting { .. }))
            .map(|(n, _)| n.clone())
            .collect();
        for peer in connecting {
            self.fail_dial(&peer, ConnectError::NotAlive);
        }
        let sessions: Vec<E::Session> = self
            .peers_by_name()
            .into_iter()
            .filter_map(|(_, p)| match p {
                Peer::Up { session, .. } => Some(session.clone()),
                Peer::Connecting { .. } => None,
            })
            .collect();
        let told = sessions.len();
        for session in sessions {
            self.send(session, NodeMsg::Control(ControlMsg::Leaving), None);
        }
        told
    }

    /// The node stops: every session closes, no new one is made or accepted, and connects
    /// under way fail with `NotAlive`.
    pub(crate) fn shutdown(&mut self) {
        self.stopped = true;
        let connecting: Vec<NodeName> = self
            .peers_by_name()
            .into_iter()
            .filter(|(_, p)| matches!(p, Peer::Connecting { .. }))
            .map(|(n, _)| n.clone())
            .collect();
        for peer in connecting {
            self.fail_dial(&peer, ConnectError::NotAlive);
        }
        let sessions: Vec<E::Session> = self
            .peers_by_name()
            .into_iter()
            .filter_map(|(_, p)| match p {
                Peer::Up { session, .. } => Some(session.clone()),
                Peer::Connecting { .. } => None,
            })
            .collect();
        self.actions.extend(sessions.into_iter().map(Action::Close));
    }

    // ----- the clock -----

    /// Expires every request whose deadline has passed: pings and calls fail with `Timeout`,
    /// a dial that lost a simultaneous connect and saw no session gives up.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        let expired: Vec<u64> = self
            .requests
            .iter()
            .filter(|(_, r)| r.deadline.is_some_and(|d| d <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            let Some(request) = self.requests.remove(&id) else {
                continue;
            };
            let Some(waiter) = request.waiter else {
                continue;
            };
            let outcome = match request.kind {
                Pending::Ping { timeout } => Outcome::Pong(Err(ConnectError::Timeout {
                    node: request.peer,
                    timeout,
                })),
                Pending::Call { dest, timeout } => {
                    Outcome::Reply(Err(CallError::Timeout { dest, timeout }))
                }
                Pending::Task { timeout, linked } => {
                    let err = TaskError::Unconfirmed {
                        node: request.peer.clone(),
                        why: format!("no answer came within {timeout:?}"),
                    };
                    if let Some(result) = request.result {
                        self.complete(result, Outcome::TaskDone(Err(err.clone())));
                    }
                    if linked {
                        // Its caller will never hold it: it must not run on unwatched.
                        self.send_to(&request.peer, NodeMsg::Task(TaskMsg::Kill { req: id }));
                    }
                    Outcome::Started(Err(err))
                }
                // Only pings, calls and task starts have deadlines.
                other => {
                    debug_assert!(false, "a deadline on {other:?}");
                    continue;
                }
            };
            self.complete(waiter, outcome);
        }
        let mut races: Vec<NodeName> = self
            .peers
            .iter()
            .filter(|(_, p)| match p {
                Peer::Connecting { waiting, .. } => waiting
                    .as_ref()
                    .and_then(|w| w.race_deadline)
                    .is_some_and(|d| d <= now),
                Peer::Up { .. } => false,
            })
            .map(|(n, _)| n.clone())
            .collect();
        races.sort_unstable();
        for peer in races {
            let err = ConnectError::Timeout {
                node: peer.clone(),
                timeout: self.race_timeout,
            };
            self.fail_dial(&peer, err);
        }
    }

    // ----- sessions -----

    /// A dial of `peer` failed: its connect waiters hear why and the casts queued for it are
    /// dropped, as the BEAM drops sends to an unreachable node. Returns how many were dropped.
    pub(crate) fn handle_dial_failed(&mut self, peer: &NodeName, error: ConnectError) -> usize {
        self.fail_dial(peer, error)
    }

    /// A dial of `peer` lost a simultaneous connect: the peer's own connection to this node
    /// goes on; wait for it until `now + race_timeout`.
    pub(crate) fn handle_dial_lost_race(&mut self, now: Instant, peer: &NodeName) {
        if let Some(Peer::Connecting { waiting, .. }) = self.peers.get_mut(peer) {
            waiting.get_or_insert_with(Box::default).race_deadline = Some(now + self.race_timeout);
        }
    }

    /// Takes the waiters of every connect to `peer` out of the table.
    fn take_connect_waiters(&mut self, peer: &NodeName) -> Vec<E::Waiter> {
        let ids: Vec<u64> = self
            .requests
            .iter()
            .filter(|(_, r)| r.peer == *peer && matches!(r.kind, Pending::Connect))
            .map(|(id, _)| *id)
            .collect();
        ids.into_iter()
            .filter_map(|id| self.requests.remove(&id).and_then(|r| r.waiter))
            .collect()
    }

    fn fail_dial(&mut self, peer: &NodeName, error: ConnectError) -> usize {
        let queued = match self.peers.get(peer) {
            Some(Peer::Connecting { .. }) => match self.remove_peer(peer) {
                Some(Peer::Connecting { waiting, .. }) => waiting.map(|w| w.queued),
                _ => None,
            }
            .unwrap_or_default(),
            _ => return 0, // connected after all (the peer's own connection came up)
        };
        let dropped = queued.len();
        // A link that never reached its peer: the linking actor hears `noconnection`.
        for msg in queued {
            if let NodeMsg::Link(LinkMsg::Link { from, to }) = msg {
                self.actions.push_back(Action::Signal {
                    from: pid_on(peer, to),
                    to: pid_on(&self.me, from),
                    reason: ExitReason::NoConnection,
                });
            }
        }
        for waiter in self.take_connect_waiters(peer) {
            self.complete(waiter, Outcome::Connected(Err(error.clone())));
        }
        dropped
    }

    /// A session with `peer` completed its handshake, with a peer that does not set
    /// `CAP_VIEW_DIGEST`: see [`NodeState::handle_session_up_with`] (for tests: the driver
    /// passes the capabilities).
    #[cfg(test)]
    pub(crate) fn handle_session_up(
        &mut self,
        peer: &NodeName,
        peer_hidden: bool,
        session: E::Session,
    ) -> Option<u64> {
        self.handle_session_up_with(peer, peer_hidden, session, 0)
    }

    /// A session with `peer` completed its handshake; `capabilities` are the bits both sides
    /// set. Returns its connection number, or `None` when it is refused (this node stopped,
    /// or a session with `peer` is up already): the driver then closes it.
    ///
    /// On a visible session of a `connect_all` node, the mesh: with `CAP_VIEW_DIGEST`, the
    /// digest of this node's view goes to the peer ([`ControlMsg::View`]), which answers with
    /// its peer list only if its own view differs; without it, this node's peer list
    /// ([`ControlMsg::Peers`]) goes at once.
    pub(crate) fn handle_session_up_with(
        &mut self,
        peer: &NodeName,
        peer_hidden: bool,
        session: E::Session,
        capabilities: u64,
    ) -> Option<u64> {
        if self.stopped || self.is_connected(peer) {
            return None;
        }
        let hidden = peer_hidden || self.hidden;
        let conn = self.new_id();
        let rejoined = self
            .known
            .get(peer)
            .is_some_and(|seen| self.known_down.contains_key(seen));
        let in_parts = CAP_VIEW_DIGEST | CAP_VIEW_PARTS;
        let queued = match self.set_peer(
            peer,
            Peer::Up {
                session: session.clone(),
                conn,
                hidden,
                rejoined,
                parts: if capabilities & in_parts == in_parts {
                    PartsSync::Ready
                } else {
                    PartsSync::No
                },
                max_frame_len: usize::MAX,
            },
        ) {
            Some(Peer::Connecting {
                waiting: Some(waiting),
                ..
            }) => waiting.queued,
            _ => Vec::new(),
        };
        self.remember(peer, true);
        // Seen again: a node that had left is back.
        self.leaving.remove(peer);
        self.left.remove(peer);
        // Casts queued while connecting go first, in order.
        for msg in queued {
            self.send(session.clone(), msg, None);
        }
        if !hidden && self.connect_all {
            let msg = if capabilities & CAP_VIEW_DIGEST != 0 {
                ControlMsg::View(self.view.digest())
            } else {
                ControlMsg::Peers(self.visible_except(peer, false))
            };
            self.send(session, NodeMsg::Control(msg), None);
        }
        for waiter in self.take_connect_waiters(peer) {
            self.complete(waiter, Outcome::Connected(Ok(())));
        }
        self.events.push_back(NodeEvent::NodeUp {
            node: peer.clone(),
            hidden,
        });
        Some(conn)
    }

    /// The peer of a new incoming session said it has no session with this node (it answered
    /// `Alive` with `go_on`, see `proto::handshake`): the session this node has with it is
    /// stale (the peer declared it down, say, while this node was paused). It goes down now
    /// (the one node-down path, `connection_closed`) and is closed, so that the new session
    /// comes up at once instead of being refused until ticks find the old one dead.
    pub(crate) fn replace_stale_session(&mut self, peer: &NodeName) {
        let Some(Peer::Up { session, conn, .. }) = self.peers.get(peer) else {
            return;
        };
        let (session, conn) = (session.clone(), *conn);
        // Not dialled again: the peer's new session is coming up.
        self.session_down(peer, conn, NodeDownReason::ConnectionClosed);
        self.actions.push_back(Action::Close(session));
    }

    /// The session `conn` with `peer` closed, at `now`: the one node-down path. Every request
    /// to `peer` fails (`NoConnection`; node monitors hear `reason`), linked tasks and watches
    /// it started here are stopped, other work done for it is forgotten, and a `NodeDown`
    /// event goes out. A session that was refused (`conn` is not the peer's) changes nothing.
    ///
    /// A visible peer of a `connect_all` node lost by a closed connection or a tick timeout
    /// is dialled once more (a mesh dial) if this node synced its view of the mesh with a
    /// peer it rejoined within [`STALE_SYNC_WINDOW`] and counted this session in it: the
    /// sync may have been made while this session was stale, and then nobody else would
    /// dial it.
    pub(crate) fn handle_session_down(
        &mut self,
        peer: &NodeName,
        conn: u64,
        reason: NodeDownReason,
        now: Instant,
    ) {
        if self.session_down(peer, conn, reason) != Some(true) || !self.connect_all {
            return;
        }
        let counted = self.synced.is_some_and(|sync| {
            conn < sync.next
                && conn != sync.with
                && now.saturating_duration_since(sync.at) <= STALE_SYNC_WINDOW
        });
        if counted {
            tracing::debug!(%peer, "lost just after a sync of the mesh that counted it: dialled once more");
            self.ensure_dial_for(peer, true);
        }
    }

    /// A visible peer's session `conn` sent this node its view of the mesh (a digest or a
    /// peer list) at `now`: recorded as a sync if the session is a rejoin (`rejoined`).
    fn synced_on(&mut self, conn: u64, rejoined: bool, now: Instant) {
        if rejoined {
            self.synced = Some(Synced {
                at: now,
                next: self.next_id,
                with: conn,
            });
        }
    }

    /// [`NodeState::handle_session_down`] but the dial: whether the peer may be dialled once
    /// more (it was visible and lost by a closed connection or a tick timeout, not by a
    /// disconnect of this node or its own leave), or `None` if `conn` was not its session.
    fn session_down(&mut self, peer: &NodeName, conn: u64, reason: NodeDownReason) -> Option<bool> {
        let hidden = match self.peers.get(peer) {
            Some(Peer::Up {
                conn: c, hidden, ..
            }) if *c == conn => *hidden,
            _ => return None,
        };
        self.remove_peer(peer);
        self.remember(peer, false);
        // It said it was leaving: whatever closed the session, the reason is its shutdown.
        let reason = if self.leaving.remove(peer) {
            if self.left.len() >= LEFT_CAPACITY {
                self.left.pop_first();
            }
            self.left.insert(peer.clone());
            NodeDownReason::Shutdown
        } else {
            reason
        };
        let lost: Vec<u64> = self
            .requests
            .iter()
            .filter(|(_, r)| r.peer == *peer)
            .map(|(id, _)| *id)
            .collect();
        for id in lost {
            let Some(request) = self.requests.remove(&id) else {
                continue;
            };
            let node = || peer.clone();
            let (first, second) = match request.kind {
                Pending::Connect => (Outcome::Connected(Ok(())), None), // none: up means done
                Pending::NodeMonitor => (
                    Outcome::NodeDown(NodeDown {
                        node: node(),
                        reason: reason.clone(),
                    }),
                    None,
                ),
                Pending::Ping { timeout } => (
                    Outcome::Pong(Err(ConnectError::Timeout {
                        node: node(),
                        timeout,
                    })),
                    None,
                ),
                // The start was sent and not answered: the task may be running there.
                Pending::Task { .. } if request.waiter.is_some() => {
                    let err = TaskError::Unconfirmed {
                        node: node(),
                        why: "it went down before answering".into(),
                    };
                    (
                        Outcome::Started(Err(err.clone())),
                        Some(Outcome::TaskDone(Err(err))),
                    )
                }
                // It started; its result will not come.
                Pending::Task { .. } => (
                    Outcome::Started(Err(TaskError::NoConnection { node: node() })),
                    Some(Outcome::TaskDone(Err(TaskError::NoConnection {
                        node: node(),
                    }))),
                ),
                Pending::Plain => (
                    Outcome::Started(Err(TaskError::Unconfirmed {
                        node: node(),
                        why: "it went down before answering".into(),
                    })),
                    None,
                ),
                Pending::Call { dest, .. } => (
                    Outcome::Reply(Err(CallError::Unconfirmed { dest, node: node() })),
                    None,
                ),
                Pending::Watch => (Outcome::Down(DownReason::NoConnection), None),
            };
            if let Some(waiter) = request.waiter {
                self.complete(waiter, first);
            }
            if let (Some(waiter), Some(outcome)) = (request.result, second) {
                self.complete(waiter, outcome);
            }
        }
        let served: Vec<(NodeName, u64)> = self
            .served
            .keys()
            .filter(|(n, _)| n == peer)
            .cloned()
            .collect();
        for key in served {
            if let Some(served) = self.served.remove(&key) {
                if served.linked {
                    self.actions.push_back(Action::Abort(served.abort));
                }
            }
        }
        // (A start under way reports to a session that is gone: a linked task is stopped.)
        self.starting.retain(|(n, _), _| n != peer);
        self.actions.push_back(Action::LinksDown(peer.clone()));
        self.events.push_back(NodeEvent::NodeDown {
            node: peer.clone(),
            hidden,
            reason: reason.clone(),
        });
        Some(
            !hidden
                && matches!(
                    reason,
                    NodeDownReason::ConnectionClosed | NodeDownReason::TickTimeout
                ),
        )
    }

    /// A frame could not be sent (too large, the peer's queue full, or the session closed
    /// under it): the request it carried fails at once, naming the peer (and the limit).
    pub(crate) fn handle_send_failed(&mut self, request: Option<u64>, error: &SendError) {
        let Some(request) = request.and_then(|id| self.requests.remove(&id)) else {
            return;
        };
        let peer = request.peer.clone();
        let refusal = send_refusal(&self.me, &peer, error);
        let (first, second) = match &request.kind {
            Pending::Task { .. } | Pending::Plain => {
                let err = match refusal {
                    SendErrorKind::TooLarge { node, size, limit } => {
                        TaskError::TooLarge { node, size, limit }
                    }
                    SendErrorKind::Busy { node, limit } => TaskError::Busy { node, limit },
                    SendErrorKind::NoConnection { node } => TaskError::NoConnection { node },
                    other => TaskError::BadArgs {
                        reason: other.to_string(),
                    },
                };
                (
                    Outcome::Started(Err(err.clone())),
                    Some(Outcome::TaskDone(Err(err))),
                )
            }
            Pending::Call { .. } => (Outcome::Reply(Err(CallError::Send(refusal))), None),
            // Other requests' frames carry no request id.
            other => {
                debug_assert!(false, "a send failure reported for {other:?}");
                return;
            }
        };
        if let Some(waiter) = request.waiter {
            self.complete(waiter, first);
        }
        if let (Some(waiter), Some(outcome)) = (request.result, second) {
            self.complete(waiter, outcome);
        }
    }

    // ----- frames from peers -----

    /// Takes the request `id` if it went to `peer` (an answer from another peer is ignored).
    fn answer(&mut self, peer: &NodeName, id: u64) -> Option<&mut Request<E::Waiter>> {
        self.requests.get_mut(&id).filter(|r| r.peer == *peer)
    }

    /// A control frame from `peer`, at `now`.
    pub(crate) fn handle_control(&mut self, peer: &NodeName, msg: ControlMsg, now: Instant) {
        match msg {
            ControlMsg::Ping(id) => {
                self.send_to(peer, NodeMsg::Control(ControlMsg::Pong(id)));
            }
            ControlMsg::Pong(id) => {
                if self
                    .answer(peer, id)
                    .is_some_and(|r| matches!(r.kind, Pending::Ping { .. }))
                {
                    if let Some(waiter) = self.requests.remove(&id).and_then(|r| r.waiter) {
                        self.complete(waiter, Outcome::Pong(Ok(())));
                    }
                }
            }
            ControlMsg::Peers(nodes) => {
                self.handle_peer_names(peer, nodes.iter().map(NodeName::as_str), now);
            }
            ControlMsg::View(theirs) => {
                // The peer's view when it sent this: if it is this node's now, the peer
                // knows every node this one does (and dials those it has no session with);
                // else it gets the list, or, in parts, this node's parts, which it answers
                // with the names of those that differ (and with its own parts, if it has not
                // sent them: then this node answers in turn). Each side decides for itself.
                let Some(&Peer::Up {
                    hidden: false,
                    conn,
                    rejoined,
                    parts,
                    ..
                }) = self.peers.get(peer)
                else {
                    return;
                };
                if !self.connect_all {
                    return;
                }
                // Either way this node's view counts as synced (its stale sessions too).
                self.synced_on(conn, rejoined, now);
                if theirs == self.view.digest() {
                    return;
                }
                let msg = if parts == PartsSync::No {
                    ControlMsg::Peers(self.visible_except(peer, true))
                } else {
                    self.set_parts_sent(peer);
                    ControlMsg::ViewParts(self.view.parts())
                };
                self.send_to(peer, NodeMsg::Control(msg));
            }
            ControlMsg::ViewParts(theirs) => {
                let Some(&Peer::Up {
                    hidden: false,
                    parts,
                    ..
                }) = self.peers.get(peer)
                else {
                    return;
                };
                if !self.connect_all || !self.view.differs(&theirs) {
                    return; // the same view now: nothing to tell
                }
                let list = self.listed_in_parts(peer, &theirs);
                if !list.is_empty() {
                    self.send_to(peer, NodeMsg::Control(ControlMsg::Peers(list)));
                }
                // This node found the digests equal (its view changed since, or the peer's):
                // the peer may have names it lacks too.
                if parts == PartsSync::Ready {
                    self.set_parts_sent(peer);
                    let mine = self.view.parts();
                    self.send_to(peer, NodeMsg::Control(ControlMsg::ViewParts(mine)));
                }
            }
            ControlMsg::Leaving => {
                // The peer shuts down: close the session (it waits for that, bounded), and
                // report it down as `Shutdown` (see `handle_session_down`).
                if let Some(session) = self.session_of(peer).cloned() {
                    self.leaving.insert(peer.clone());
                    self.actions.push_back(Action::Close(session));
                }
            }
        }
    }

    /// Notes that this node sent its view's parts on its session with `peer`.
    fn set_parts_sent(&mut self, peer: &NodeName) {
        if let Some(Peer::Up { parts, .. }) = self.peers.get_mut(peer) {
            *parts = PartsSync::Sent;
        }
    }

    /// A peer list ([`ControlMsg::Peers`]) from `peer`, as text (the session reads it in
    /// place, `PeerNames`): a visible peer's list is dialled, each name this node has no
    /// session or dial with yet. A name is looked up by its text and made a [`NodeName`]
    /// (checked) only if it is missing: most names of a growing mesh's lists are known. A
    /// name that breaks the naming rules is skipped.
    pub(crate) fn handle_peer_names<'a>(
        &mut self,
        peer: &NodeName,
        names: impl IntoIterator<Item = &'a str>,
        now: Instant,
    ) {
        let Some(&Peer::Up {
            hidden: false,
            conn,
            rejoined,
            ..
        }) = self.peers.get(peer)
        else {
            return;
        };
        if !self.connect_all {
            return;
        }
        // A name this node has a session with is skipped below, even if that session is
        // stale: see `handle_session_down`.
        self.synced_on(conn, rejoined, now);
        for name in names {
            if name == self.me.as_str() || self.peers.contains_key(name) {
                continue;
            }
            match NodeName::parse(name) {
                Ok(node) => self.ensure_dial_for(&node, true),
                Err(e) => tracing::debug!(%peer, "a peer list named no node: {e}"),
            }
        }
    }

    /// A task frame from `peer`: an answer to this node's request, or local work to do.
    pub(crate) fn handle_task(&mut self, peer: &NodeName, msg: TaskMsg) -> Option<Serve> {
        match msg {
            TaskMsg::Spawn {
                req,
                supervisor,
                module,
                function,
                args,
                kind,
                trace,
            } => {
                self.starting.insert((peer.clone(), req), false);
                return Some(Serve::Task {
                    req,
                    supervisor,
                    module,
                    function,
                    args,
                    kind,
                    trace,
                });
            }
            TaskMsg::SpawnPlain {
                req,
                module,
                function,
                args,
                trace,
            } => {
                return Some(Serve::Plain {
                    req,
                    module,
                    function,
                    args,
                    trace,
                })
            }
            TaskMsg::Output { text } => return Some(Serve::Print(text)),
            TaskMsg::Started { req, result } => {
                let request = self.answer(peer, req)?;
                let done = result.is_err() || request.result.is_none();
                let waiter = request.waiter.take();
                request.deadline = None; // answered: the result may take as long as it takes
                if done {
                    self.requests.remove(&req);
                }
                if let Some(waiter) = waiter {
                    self.complete(waiter, Outcome::Started(result.map_err(TaskError::from)));
                }
            }
            TaskMsg::Result { req, result } => {
                self.answer(peer, req)?;
                let request = self.requests.remove(&req)?;
                match request.waiter {
                    // Its `Started` was lost (a session keeps a request's frames in order, so
                    // only injected loss does that): the caller never learnt that it started.
                    // `Unconfirmed`, as at its deadline, but now; dropping the start waiter
                    // would read as `NoConnection` to a node that is up.
                    Some(started) => {
                        let err = TaskError::Unconfirmed {
                            node: peer.clone(),
                            why: "its start answer was lost (its result came alone)".into(),
                        };
                        if let Some(waiter) = request.result {
                            self.complete(waiter, Outcome::TaskDone(Err(err.clone())));
                        }
                        self.complete(started, Outcome::Started(Err(err)));
                    }
                    None => {
                        if let Some(waiter) = request.result {
                            let outcome = Outcome::TaskDone(result.map_err(TaskError::from));
                            self.complete(waiter, outcome);
                        }
                    }
                }
            }
            TaskMsg::Kill { req } => {
                let key = (peer.clone(), req);
                if let Some(abort) = self.served.remove(&key).map(|s| s.abort) {
                    self.actions.push_back(Action::Abort(abort));
                } else if let Some(killed) = self.starting.get_mut(&key) {
                    // Still starting: it is stopped once started (`handle_task_served`).
                    *killed = true;
                }
            }
        }
        None
    }

    /// The reply to a call of this node's, from `peer`.
    pub(crate) fn handle_reply(
        &mut self,
        peer: &NodeName,
        call: u64,
        result: Result<Vec<u8>, crate::wire::message::WireSendError>,
    ) {
        if !self
            .answer(peer, call)
            .is_some_and(|r| matches!(r.kind, Pending::Call { .. }))
        {
            return; // timed out already, or not this peer's to answer
        }
        let Some(request) = self.requests.remove(&call) else {
            return;
        };
        let (Pending::Call { dest, .. }, Some(waiter)) = (request.kind, request.waiter) else {
            return;
        };
        let result = result.map_err(|e| call_error(e, dest, request.peer));
        self.complete(waiter, Outcome::Reply(result));
    }

    /// A watch frame from `peer`: a watch of a local actor to set (returned as work), one to
    /// remove, or the end of one of this node's watches.
    pub(crate) fn handle_watch(&mut self, peer: &NodeName, msg: WatchMsg) -> Option<Serve> {
        match msg {
            WatchMsg::Watch { id, target } => return Some(Serve::Watch { id, target }),
            WatchMsg::Unwatch { id } => {
                if let Some(abort) = self.served.remove(&(peer.clone(), id)).map(|s| s.abort) {
                    self.actions.push_back(Action::Abort(abort));
                }
            }
            WatchMsg::Down { id, reason } => {
                if self
                    .answer(peer, id)
                    .is_some_and(|r| matches!(r.kind, Pending::Watch))
                {
                    if let Some(waiter) = self.requests.remove(&id).and_then(|r| r.waiter) {
                        self.complete(waiter, Outcome::Down(reason.into()));
                    }
                }
            }
        }
        None
    }

    /// A link frame from `peer`: a link, an unlink or an exit signal for a local actor,
    /// returned as work (the process table lives in the system). The pids are rebuilt from
    /// the session's two ends, so a peer can only speak for its own actors. (The reader of a
    /// session hands these over before the machine has heard of the session coming up: a
    /// peer's first frames may be link signals.)
    pub(crate) fn handle_link(&self, peer: &NodeName, msg: LinkMsg) -> Serve {
        let me = &self.me;
        let pids = |f: WirePid, t: WirePid| (pid_on(peer, f), pid_on(me, t));
        match msg {
            LinkMsg::Link { from: f, to: t } => {
                let (from, to) = pids(f, t);
                Serve::Link { from, to }
            }
            LinkMsg::Unlink { from: f, to: t } => {
                let (from, to) = pids(f, t);
                Serve::Unlink { from, to }
            }
            LinkMsg::Exit {
                from: f,
                to: t,
                reason,
            } => {
                let (from, to) = pids(f, t);
                Serve::Exit {
                    from,
                    to,
                    reason: reason.into(),
                }
            }
        }
    }

    // ----- local work done for peers -----

    fn conn_of(&self, peer: &NodeName) -> Option<u64> {
        match self.peers.get(peer) {
            Some(Peer::Up { conn, .. }) => Some(*conn),
            _ => None,
        }
    }

    /// The driver started (or failed to start) the task `req` that `peer` asked for on the
    /// session `conn`: the answer goes back, and a running async task is remembered until it
    /// ends (a linked one is stopped if `peer` goes down first). A peer gone meanwhile stops
    /// a linked task at once.
    pub(crate) fn handle_task_served(
        &mut self,
        peer: &NodeName,
        conn: u64,
        req: u64,
        started: TaskServed<E::Abort>,
    ) {
        let killed = self.starting.remove(&(peer.clone(), req)).unwrap_or(false);
        let session = match self.peers.get(peer) {
            Some(Peer::Up {
                session, conn: c, ..
            }) if *c == conn => session.clone(),
            _ => {
                if let Ok((_, Some((abort, true)))) = started {
                    self.actions.push_back(Action::Abort(abort));
                }
                return;
            }
        };
        let result = match started {
            Ok((task, running)) => {
                match running {
                    // The peer asked to kill it while it started: it has its answer, then
                    // stops, as if the `Kill` had come after the start.
                    Some((abort, _)) if killed => self.actions.push_back(Action::Abort(abort)),
                    Some((abort, linked)) => {
                        let served = Served { abort, linked };
                        self.served.insert((peer.clone(), req), served);
                    }
                    None => {}
                }
                Ok(task)
            }
            Err(e) => Err(e),
        };
        self.send(
            session,
            NodeMsg::Task(TaskMsg::Started { req, result }),
            None,
        );
    }

    /// A task `peer` asked for (request `req`) ended: its result goes back on the session it
    /// was asked on, if that is still up.
    pub(crate) fn handle_task_finished(
        &mut self,
        peer: &NodeName,
        req: u64,
        result: Result<Vec<u8>, WireTaskError>,
    ) {
        if self.served.remove(&(peer.clone(), req)).is_none() {
            return; // killed, or its peer went down
        }
        let result = NodeMsg::Task(TaskMsg::Result { req, result });
        // A result over the largest frame would be refused by the session, and the caller
        // would wait for nothing: it hears why instead.
        if let Ok(size) = actor_core::codec::encoded_len(&SessionFrame::Msg(&result)) {
            let max = self.max_frame_len_to(peer);
            if size > max {
                let reason = format!(
                    "the result is {size} bytes framed, over the largest frame of {max} bytes between the two nodes (max_frame_len); return less, or raise max_frame_len on both nodes"
                );
                let result = Err(WireTaskError::BadReturn { reason });
                let msg = NodeMsg::Task(TaskMsg::Result { req, result });
                self.send_to(peer, msg);
                return;
            }
        }
        self.send_to(peer, result);
    }

    /// The driver ran (or failed to run) the plain spawn `req` of `peer`.
    pub(crate) fn handle_plain_served(
        &mut self,
        peer: &NodeName,
        req: u64,
        result: Result<u64, WireTaskError>,
    ) {
        self.send_to(peer, NodeMsg::Task(TaskMsg::Started { req, result }));
    }

    /// The driver set the watch `id` that `peer` asked for on session `conn` (`Some`, with
    /// what stops it), or found no such actor (`None`: the peer hears `noproc`).
    pub(crate) fn handle_watch_served(
        &mut self,
        peer: &NodeName,
        conn: u64,
        id: u64,
        watcher: Option<E::Abort>,
    ) {
        let Some(session) = self
            .session_of(peer)
            .cloned()
            .filter(|_| self.conn_of(peer) == Some(conn))
        else {
            if let Some(abort) = watcher {
                self.actions.push_back(Action::Abort(abort));
            }
            return;
        };
        match watcher {
            None => {
                let down = WatchMsg::Down {
                    id,
                    reason: WireDownReason::NoProc,
                };
                self.send(session, NodeMsg::Watch(down), None);
            }
            Some(abort) => {
                let served = Served {
                    abort,
                    linked: true,
                };
                self.served.insert((peer.clone(), id), served);
            }
        }
    }

    /// An actor `peer` watches (watch `id`) stopped with `reason`: the peer hears `Down`.
    /// Not once this node has stopped: its actors stop because it does, and its peers see
    /// it down (`noconnection`), as they see a killed node.
    pub(crate) fn handle_watched_exit(&mut self, peer: &NodeName, id: u64, reason: &ExitReason) {
        if self.served.remove(&(peer.clone(), id)).is_none() || self.stopped {
            return; // unwatched, or its peer went down, or this node stopped
        }
        let down = WatchMsg::Down {
            id,
            reason: wire_down_reason(reason),
        };
        self.send_to(peer, NodeMsg::Watch(down));
    }
}

/// Sorts `names` by text and drops repeats, as [`NodeState::list`] returns them (see
/// [`sort_by_name`]).
pub(crate) fn sort_names(names: &mut Vec<NodeName>) {
    sort_by_name(names, |name| name);
}

/// Sorts `items` by the name `name` gives of each and drops items whose name repeats the
/// one before. Each name is keyed by its first 8 bytes as a big-endian integer, so most
/// comparisons are of two integers held in the vector, not two strings behind pointers (a
/// thousand names: about half the time of a plain sort); names whose first 8 bytes agree
/// compare by text.
pub(crate) fn sort_by_name<T>(items: &mut Vec<T>, name: fn(&T) -> &NodeName) {
    fn prefix(name: &NodeName) -> u64 {
        let mut bytes = [0u8; 8];
        let text = name.as_str().as_bytes();
        let n = text.len().min(8);
        bytes[..n].copy_from_slice(&text[..n]);
        u64::from_be_bytes(bytes)
    }
    let mut keyed: Vec<(u64, T)> = items.drain(..).map(|i| (prefix(name(&i)), i)).collect();
    keyed.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| name(&a.1).cmp(name(&b.1))));
    items.extend(keyed.into_iter().map(|(_, i)| i));
    items.dedup_by(|a, b| name(a) == name(b));
}
