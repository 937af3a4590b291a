//! The messages nodes exchange: the handshake, then session frames.
//!
//! These are the protocol's only `Serialize` types, and they are **versioned wire types**: the
//! [`Hello`] each side sends first carries the range of protocol versions it speaks, and the
//! handshake settles on the highest version both support. Within one protocol version the
//! encoding of every type here is frozen. A change that old nodes cannot decode (a new enum
//! variant, a new field, a changed type) needs a new protocol version, and the new node must
//! keep speaking the old one for as long as its range includes it. Enum variants are therefore
//! only ever appended, never reordered.

use std::{borrow::Cow, fmt, ops::Deref, sync::Arc};

use actor_core::NodeName;
use serde::{Deserialize, Serialize};

/// The length of a handshake challenge and of a digest, in bytes.
pub const CHALLENGE_LEN: usize = 32;

/// A random challenge, freshly drawn by each side for each handshake.
pub type Challenge = [u8; CHALLENGE_LEN];

/// An HMAC-SHA256 digest proving knowledge of the cookie.
pub type Digest = [u8; CHALLENGE_LEN];

/// One handshake message, exchanged before the session starts.
///
/// The exchange, with I the initiator and A the acceptor:
///
/// 1. I → A [`Hello`](Self::Hello) (I's versions, capabilities, name, creation, hidden flag).
/// 2. A → I [`Hello`](Self::Hello) (A's own), then [`Status`](Self::Status).
/// 3. If the status admits I: A → I [`Challenge`](Self::Challenge).
/// 4. I → A [`ChallengeReply`](Self::ChallengeReply): I's digest over A's challenge, and I's
///    own challenge.
/// 5. A checks the digest; on success A → I [`ChallengeAck`](Self::ChallengeAck), A's digest
///    over I's challenge. On failure A sends `Status(NotAllowed)` and closes.
/// 6. I checks A's digest, and the session is up.
///
/// Capability bits in both hellos add two messages: [`Limits`](Self::Limits) (each side's
/// largest frame, before step 3's challenge and step 4's reply) and
/// [`AliveReply`](Self::AliveReply) (I's answer to a `Status(Alive)`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HandshakeMessage {
    /// Who the sender is and what it speaks.
    Hello(Hello),
    /// The acceptor's answer to the initiator's hello.
    Status(Status),
    /// The acceptor's challenge.
    Challenge {
        /// Random bytes the initiator must answer.
        challenge: Challenge,
    },
    /// The initiator's answer, and its own challenge.
    ChallengeReply {
        /// HMAC over the acceptor's challenge, keyed by the cookie.
        digest: Digest,
        /// Random bytes the acceptor must answer.
        challenge: Challenge,
    },
    /// The acceptor's answer to the initiator's challenge.
    ChallengeAck {
        /// HMAC over the initiator's challenge, keyed by the cookie.
        digest: Digest,
    },
    /// The sender's largest frame, sent only to a peer whose hello sets the capability
    /// `CAP_FRAME_LIMIT` (so a node without it never receives one): by the acceptor just
    /// before its challenge, by the initiator just before its challenge reply.
    Limits {
        /// The largest frame the sender accepts, in bytes.
        max_frame_len: u64,
    },
    /// The initiator's answer to [`Status::Alive`], sent only when both hellos set the
    /// capability `CAP_ALIVE_REPLY` (the BEAM's `true`/`false` after `alive`): `go_on` when
    /// the initiator has no session with the acceptor, whose session is then stale and
    /// replaced by this connection; otherwise both sides end the handshake.
    AliveReply {
        /// Whether the handshake goes on.
        go_on: bool,
    },
}

impl HandshakeMessage {
    /// A short name of the message's kind, for errors and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Hello(_) => "hello",
            Self::Status(_) => "status",
            Self::Challenge { .. } => "challenge",
            Self::ChallengeReply { .. } => "challenge reply",
            Self::ChallengeAck { .. } => "challenge ack",
            Self::Limits { .. } => "limits",
            Self::AliveReply { .. } => "alive reply",
        }
    }
}

/// The first message of each side: identity and abilities.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The lowest protocol version the sender speaks.
    pub min_version: u16,
    /// The highest protocol version the sender speaks.
    pub max_version: u16,
    /// Capability bits; the session uses those both sides set.
    pub capabilities: u64,
    /// The sender's node name.
    pub name: NodeName,
    /// Which incarnation of that node this is (changes on each restart).
    pub creation: u32,
    /// A hidden node joins no mesh and is not listed among visible nodes.
    pub hidden: bool,
}

/// The acceptor's answer to a hello, as the BEAM's `send_status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    /// Go on with the challenge.
    Ok,
    /// Go on: the acceptor had its own attempt to connect to the initiator pending, and
    /// aborts it in favour of this one (the initiator's name sorts greater).
    OkSimultaneous,
    /// Stop: the acceptor has its own attempt pending and keeps it (the acceptor's name sorts
    /// greater); the initiator's attempt is dropped and the other connection will carry the
    /// session.
    Nok,
    /// Stop: the acceptor does not admit the initiator (incompatible versions or name mode,
    /// or a wrong cookie).
    NotAllowed,
    /// Stop: the acceptor already has a session with the initiator.
    Alive,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Ok => "ok",
            Self::OkSimultaneous => "ok_simultaneous",
            Self::Nok => "nok",
            Self::NotAllowed => "not_allowed",
            Self::Alive => "alive",
        })
    }
}

/// A frame of an established session: a tick or one message of the node layer's type `T`.
///
/// The session adds this envelope so that ticks need nothing from `T`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SessionFrame<T> {
    /// "I am alive": sent when the session has been idle for `tick_time / tick_intensity`.
    Tick,
    /// A message for the node layer.
    Msg(T),
    /// A piece of a large message (protocol version 5; its `lane` since version 6): the body of an encoded
    /// `SessionFrame::Msg` too large for one frame is sent as fragments of at most 64 KiB, so
    /// that ticks and small messages go out between them instead of waiting behind it. The
    /// receiver appends `bytes` to the message it is reassembling, and decodes it as a
    /// `SessionFrame` once `last` is set. One large message is sent at a time per session,
    /// so no stream id is needed; the reassembly is bounded by `max_frame_len`. Frames of
    /// other lanes go out between the fragments; frames of the message's own `lane` wait
    /// for it (see [`Lane`](super::Lane)).
    Fragment {
        /// Whether this is the message's last piece.
        last: bool,
        /// The lane of the message (the same in each of its fragments): the receiver
        /// delivers the frames of this lane that follow the message after it, while the
        /// message is still being decoded.
        lane: super::Lane,
        /// The next bytes of the message's encoding.
        #[serde(with = "bytes")]
        bytes: Vec<u8>,
    },
}

/// What nodes say to each other on a session, after the handshake (protocol version 2), by
/// concern: the connection itself, tasks, actor messages, watches of actors (remote
/// `Process.monitor`; monitors of whole nodes need no message), and links between actors.
///
/// Variants are only ever appended (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeMsg {
    /// About the connection: liveness and the mesh.
    Control(ControlMsg),
    /// Tasks under a task supervisor, and plain spawns.
    Task(TaskMsg),
    /// Casts and calls to actors, and call replies.
    Actor(ActorMsg),
    /// Watches of actors (a remote `Process.monitor`).
    Watch(WatchMsg),
    /// Links between actors of the two nodes, and their exit signals.
    Link(LinkMsg),
}

/// About the connection itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControlMsg {
    /// A liveness probe; answered with [`ControlMsg::Pong`] carrying the same number.
    Ping(u64),
    /// The answer to [`ControlMsg::Ping`].
    Pong(u64),
    /// The visible nodes the sender is connected to, sent when a visible session comes up,
    /// so that nodes which meet through a third reach a full mesh (`connect_all`).
    Peers(Vec<NodeName>),
    /// The sender is shutting down gracefully ([`Node::shutdown`](crate::Node::shutdown)):
    /// the receiver closes the session and reports the node down with
    /// [`NodeDownReason::Shutdown`](crate::NodeDownReason::Shutdown), and its cluster
    /// strategies do not connect it again until it is seen again (libcluster #202). Sent
    /// before the sender closes its sessions.
    Leaving,
    /// A digest of the sender's view of the mesh (itself and every visible node it has a
    /// session with or is dialling), sent instead of [`ControlMsg::Peers`] when a visible
    /// session comes up and both sides set the capability `CAP_VIEW_DIGEST`. A receiver whose
    /// own view has another digest answers with its [`ControlMsg::Peers`]: in a mesh whose
    /// nodes already know each other, most sessions carry no list at all.
    View(ViewDigest),
    /// The sender's view of the mesh in [`VIEW_PARTS`] parts, each a digest of the names that
    /// fall in it ([`ViewParts`]), sent instead of the whole list when a
    /// [`ControlMsg::View`] differed and both sides set the capability `CAP_VIEW_PARTS`. The
    /// receiver answers with its [`ControlMsg::Peers`] holding only the names of the parts
    /// whose digests differ (and, if it sent no parts of its own on this session, with its
    /// parts too, so that each side gets what the other lacks): views that differ by a few
    /// names cost lists of a few parts, not of every node.
    ViewParts(ViewParts),
}

/// An order-independent digest of a set of node names ([`ControlMsg::View`]): how many, and
/// two 64-bit sums of each name's hash. Equal sets have equal digests; different sets have
/// different ones but with a chance of about 2^-128. A name is added or removed in O(1).
///
/// ```
/// use actor_remote::wire::message::ViewDigest;
/// use actor_core::NodeName;
///
/// let (a, b) = (NodeName::parse("a@h").unwrap(), NodeName::parse("b@h").unwrap());
/// let mut ab = ViewDigest::default();
/// ab.add(&a);
/// ab.add(&b);
/// let mut ba = ViewDigest::default();
/// ba.add(&b);
/// ba.add(&a);
/// assert_eq!(ab, ba);
/// ab.remove(&b);
/// assert_ne!(ab, ba);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ViewDigest {
    /// How many names.
    pub nodes: u64,
    /// The wrapping sums of each name's two hashes.
    pub sums: [u64; 2],
}

impl ViewDigest {
    /// Adds `name` (once per name: the digest is of a set, the caller keeps it one).
    pub fn add(&mut self, name: &NodeName) {
        let [h0, h1] = name_hash(name);
        self.nodes = self.nodes.wrapping_add(1);
        self.sums[0] = self.sums[0].wrapping_add(h0);
        self.sums[1] = self.sums[1].wrapping_add(h1);
    }

    /// Removes `name`, added before.
    pub fn remove(&mut self, name: &NodeName) {
        let [h0, h1] = name_hash(name);
        self.nodes = self.nodes.wrapping_sub(1);
        self.sums[0] = self.sums[0].wrapping_sub(h0);
        self.sums[1] = self.sums[1].wrapping_sub(h1);
    }
}

/// How many parts a view is cut into ([`ViewParts`]).
pub const VIEW_PARTS: usize = 64;

/// A view of the mesh (as in [`ViewDigest`]) cut into [`VIEW_PARTS`] parts by the names'
/// hashes ([`ViewParts::part_of`], the same on every node), with a digest per part: the
/// wrapping sum of a 64-bit hash of each name in it. Two views that differ by a few names
/// differ in a few parts, so the nodes exchange only those parts' names
/// ([`ControlMsg::ViewParts`]). Sets that differ have a part whose digests differ, but with a
/// chance of about 2^-64 per part.
///
/// ```
/// use actor_remote::wire::message::{ViewParts, VIEW_PARTS};
/// use actor_core::NodeName;
///
/// let names: Vec<NodeName> = ["a@h", "b@h", "c@h"].iter().map(|n| NodeName::parse(n).unwrap()).collect();
/// let mut all = ViewParts::default();
/// let mut some = ViewParts::default();
/// for n in &names {
///     all.add(n);
/// }
/// some.add(&names[0]);
/// some.add(&names[2]);
/// // The views differ only in b@h's part.
/// let b = ViewParts::part_of(&names[1]);
/// let differing: Vec<usize> = (0..VIEW_PARTS).filter(|&p| !all.same_part(&some, p)).collect();
/// assert_eq!(differing, [b]);
/// some.add(&names[1]);
/// assert_eq!(all, some);
/// # assert!(ViewParts::default().sums.len() == VIEW_PARTS);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewParts {
    /// Each part's digest, [`VIEW_PARTS`] of them (a peer that sends another number is
    /// answered as if every part differed).
    pub sums: Vec<u64>,
}

impl Default for ViewParts {
    fn default() -> Self {
        Self {
            sums: vec![0; VIEW_PARTS],
        }
    }
}

impl ViewParts {
    /// The part `name` falls in: the top bits of its first hash.
    pub fn part_of(name: &NodeName) -> usize {
        Self::part_of_hash(name_hash(name))
    }

    fn part_of_hash([h0, _]: [u64; 2]) -> usize {
        // VIEW_PARTS is a power of two: the top log2(VIEW_PARTS) bits.
        (h0 >> (64 - VIEW_PARTS.trailing_zeros())) as usize
    }

    /// Adds `name` (once per name, as [`ViewDigest::add`]); returns its part
    /// ([`ViewParts::part_of`]).
    pub fn add(&mut self, name: &NodeName) -> usize {
        let hash = name_hash(name);
        let part = Self::part_of_hash(hash);
        if let Some(sum) = self.sums.get_mut(part) {
            *sum = sum.wrapping_add(hash[1]);
        }
        part
    }

    /// Removes `name`, added before; returns its part ([`ViewParts::part_of`]).
    pub fn remove(&mut self, name: &NodeName) -> usize {
        let hash = name_hash(name);
        let part = Self::part_of_hash(hash);
        if let Some(sum) = self.sums.get_mut(part) {
            *sum = sum.wrapping_sub(hash[1]);
        }
        part
    }

    /// Whether part `part` has the same digest in both views; `false` if either lacks it
    /// (a peer's parts of another number).
    pub fn same_part(&self, other: &ViewParts, part: usize) -> bool {
        self.sums.len() == VIEW_PARTS
            && other.sums.len() == VIEW_PARTS
            && self.sums.get(part) == other.sums.get(part)
    }
}

/// Two independent 64-bit hashes of a node name: FNV-1a from two offsets, each through the
/// SplitMix64 finalizer. Fixed functions, the same in every build and process (the standard
/// library's hasher is not promised to be).
fn name_hash(name: &NodeName) -> [u64; 2] {
    fn fnv_mix(seed: u64, bytes: &[u8]) -> u64 {
        let mut h = seed;
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h ^= h >> 30;
        h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h ^= h >> 27;
        h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
        h ^ (h >> 31)
    }
    let bytes = name.as_str().as_bytes();
    [
        fnv_mix(0xcbf2_9ce4_8422_2325, bytes),
        fnv_mix(0x6c62_272e_07bb_0142, bytes),
    ]
}

/// Tasks: started under a task supervisor of the receiver, or plain spawns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskMsg {
    /// Start `module.function(args)` under the receiver's task supervisor `supervisor`.
    Spawn {
        /// The caller's number for this request; answers carry it back.
        req: u64,
        /// Which task supervisor.
        supervisor: Target,
        /// The module name.
        module: String,
        /// The function name.
        function: String,
        /// The arguments, encoded by the codec.
        #[serde(with = "bytes")]
        args: Vec<u8>,
        /// What kind of task.
        kind: WireTaskKind,
        /// The sender's trace context (W3C `traceparent`), when the work it starts belongs to
        /// a trace; the receiver runs the work in a child of it (protocol version 5).
        trace: Option<WireTrace>,
    },
    /// Whether a [`TaskMsg::Spawn`] or [`TaskMsg::SpawnPlain`] started: the task's number,
    /// or why not.
    Started {
        /// The request it answers.
        req: u64,
        /// The task's number or the error.
        result: Result<u64, WireTaskError>,
    },
    /// How an async task ended: its encoded result, or how it failed.
    Result {
        /// The request that started it.
        req: u64,
        /// The encoded result or the error.
        #[serde(with = "result_bytes")]
        result: Result<Vec<u8>, WireTaskError>,
    },
    /// Stop the task started by `req`: its linked caller went away, or asked for a shutdown.
    Kill {
        /// The request that started it.
        req: u64,
    },
    /// Run `module.function(args)` on the receiver as a plain process (`Node.spawn/4`): under
    /// no supervisor, fire and forget, with the sender as its group leader (what it prints
    /// comes back as [`TaskMsg::Output`]). Answered with [`TaskMsg::Started`].
    SpawnPlain {
        /// The caller's number for this request; the answer carries it back.
        req: u64,
        /// The module name.
        module: String,
        /// The function name.
        function: String,
        /// The arguments, encoded by the codec.
        #[serde(with = "bytes")]
        args: Vec<u8>,
        /// The sender's trace context (W3C `traceparent`), when the work it starts belongs to
        /// a trace; the receiver runs the work in a child of it (protocol version 5).
        trace: Option<WireTrace>,
    },
    /// Text printed by a process whose group leader is on the receiver (a plain spawn the
    /// receiver asked for); the receiver writes it to its output.
    Output {
        /// The text, line ends included.
        text: String,
    },
}

/// Messages for actors, and the replies to calls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ActorMsg {
    /// A message for an actor of the receiver: a cast, or a call when `call` is set.
    Send {
        /// The actor.
        target: Target,
        /// The message type's stable name (`RemoteMessage::NAME`), which the receiver
        /// decodes by. Borrowed when sent (the name is `'static`), so a send does not copy
        /// it; owned when received.
        #[serde(deserialize_with = "owned_str")]
        name: Cow<'static, str>,
        /// The encoded message.
        #[serde(with = "bytes")]
        payload: Vec<u8>,
        /// The caller's number for a call; the answer is an [`ActorMsg::Reply`].
        call: Option<u64>,
        /// The sender's trace context (W3C `traceparent`), when the work it starts belongs to
        /// a trace; the receiver runs the work in a child of it (protocol version 5).
        trace: Option<WireTrace>,
    },
    /// The answer to a call.
    Reply {
        /// The call it answers.
        call: u64,
        /// The encoded reply, or why there is none.
        #[serde(with = "result_bytes")]
        result: Result<Vec<u8>, WireSendError>,
    },
}

/// A W3C trace context on the wire (what OpenTelemetry propagates as `traceparent`):
/// `actor_core::TraceContext`'s parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireTrace {
    /// The trace id.
    pub trace_id: [u8; 16],
    /// The sender's span id: the parent of the receiver's span.
    pub span_id: [u8; 8],
    /// The W3C trace flags.
    pub flags: u8,
}

impl From<actor_core::TraceContext> for WireTrace {
    fn from(t: actor_core::TraceContext) -> Self {
        Self {
            trace_id: t.trace_id(),
            span_id: t.span_id(),
            flags: t.flags(),
        }
    }
}

impl From<WireTrace> for actor_core::TraceContext {
    fn from(t: WireTrace) -> Self {
        Self::from_parts(t.trace_id, t.span_id, t.flags)
    }
}

/// Watches of the receiver's actors: a remote `Process.monitor`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WatchMsg {
    /// Watch an actor of the receiver; answered once with [`WatchMsg::Down`].
    Watch {
        /// The sender's number for this watch.
        id: u64,
        /// The actor.
        target: Target,
    },
    /// Remove a watch.
    Unwatch {
        /// The watch.
        id: u64,
    },
    /// A watched actor is down.
    Down {
        /// The watch.
        id: u64,
        /// Why.
        reason: WireDownReason,
    },
}

/// Why a monitored actor is down, on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireDownReason {
    /// It stopped, reason unknown (sent by older nodes; read as `normal`).
    Exited,
    /// Nothing lived there.
    NoProc,
    /// It stopped with this reason.
    Exit(WireExitReason),
}

/// Why an actor stopped, on the wire (mirrors `actor_core::ExitReason`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireExitReason {
    /// `normal`.
    Normal,
    /// `shutdown`.
    Shutdown,
    /// `killed`.
    Killed,
    /// It panicked, or a handler returned an error.
    Failed {
        /// The panic message or the error.
        why: String,
    },
    /// It stopped with a reason of its own.
    Stopped {
        /// The reason.
        reason: String,
    },
    /// `noproc`.
    NoProc,
    /// `noconnection`.
    NoConnection,
}

/// An actor of one of the two nodes of a session: the node is the session's sender or
/// receiver, as the field naming it says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WirePid {
    /// The creation of its node when the pid was made.
    pub creation: u32,
    /// The actor's number on its node.
    pub id: u64,
}

/// Links between an actor of the sender (`from`) and one of the receiver (`to`), as the
/// BEAM's `LINK`, `UNLINK` and `EXIT` signals. Each side records the link on its own node;
/// a session going down is an exit `noconnection` for every link across it, on both sides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LinkMsg {
    /// `from` linked itself to `to`. If `to` is not alive the receiver answers with an
    /// [`LinkMsg::Exit`] `noproc` from `to`.
    Link {
        /// The sender's actor.
        from: WirePid,
        /// The receiver's actor.
        to: WirePid,
    },
    /// `from` removed its link to `to`.
    Unlink {
        /// The sender's actor.
        from: WirePid,
        /// The receiver's actor.
        to: WirePid,
    },
    /// `from`, linked to `to`, exited with `reason` (or, answering a link, was not alive).
    Exit {
        /// The sender's actor.
        from: WirePid,
        /// The receiver's actor.
        to: WirePid,
        /// Why.
        reason: WireExitReason,
    },
}

/// Why a [`ActorMsg::Send`] call has no reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireSendError {
    /// No such actor.
    NoProc,
    /// The receiver refused the message (type not registered, wrong type, undecodable).
    Refused {
        /// Why.
        reason: String,
    },
    /// The actor dropped the reply port without replying.
    NoReply,
}

/// A registered actor's name in a [`Target`]: shared, so that addressing a message by name
/// does not copy the name ([`actor_core::Destination`] holds it as an `Arc<str>` too). On
/// the wire it is a string.
///
/// ```
/// use actor_remote::wire::message::ActorName;
///
/// let name = ActorName::from("counter");
/// assert_eq!(name, *"counter");
/// assert_eq!(name.len(), 7); // derefs to `str`
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ActorName(Arc<str>);

impl Deref for ActorName {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ActorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for ActorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for ActorName {
    fn eq(&self, other: &str) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<&str> for ActorName {
    fn eq(&self, other: &&str) -> bool {
        *self.0 == **other
    }
}

impl From<&str> for ActorName {
    fn from(name: &str) -> Self {
        Self(name.into())
    }
}

impl From<String> for ActorName {
    fn from(name: String) -> Self {
        Self(name.into())
    }
}

impl From<Arc<str>> for ActorName {
    fn from(name: Arc<str>) -> Self {
        Self(name)
    }
}

impl Serialize for ActorName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ActorName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = ActorName;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an actor's name")
            }
            // One allocation, straight from the frame's bytes (no `String` first).
            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<ActorName, E> {
                Ok(ActorName::from(name))
            }
            fn visit_string<E: serde::de::Error>(self, name: String) -> Result<ActorName, E> {
                Ok(ActorName::from(name))
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

/// Decodes a string into one allocation copied from the frame's bytes (serde's own
/// `String` makes bincode allocate a zeroed buffer first, then fill it).
fn owned_str<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Cow<'static, str>, D::Error> {
    struct Visitor;
    impl serde::de::Visitor<'_> for Visitor {
        type Value = Cow<'static, str>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Self::Value, E> {
            Ok(Cow::Owned(s.to_owned()))
        }
        fn visit_string<E: serde::de::Error>(self, s: String) -> Result<Self::Value, E> {
            Ok(Cow::Owned(s))
        }
    }
    d.deserialize_str(Visitor)
}

/// An [`ActorMsg::Send`] read in place from a frame's body: its name, target name and
/// payload borrow the frame's bytes, so a received cast or call is delivered without copying
/// them out (the reader's fast path; any other frame is decoded as a [`SessionFrame`]).
///
/// ```
/// use actor_core::codec;
/// use actor_remote::wire::message::{ActorMsg, NodeMsg, SendRef, SessionFrame, Target, TargetRef};
///
/// let msg = NodeMsg::Actor(ActorMsg::Send {
///     target: Target::Name("counter".into()),
///     name: "Inc".into(),
///     payload: vec![1, 2],
///     call: None,
///     trace: None,
/// });
/// let body = codec::encode(&SessionFrame::Msg(msg)).unwrap();
/// let send = SendRef::from_body(&body).unwrap();
/// assert_eq!((send.target, send.name, send.payload), (TargetRef::Name("counter"), "Inc", &[1u8, 2][..]));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct SendRef<'a> {
    /// The actor.
    #[serde(borrow)]
    pub target: TargetRef<'a>,
    /// The message type's stable name.
    pub name: &'a str,
    /// The encoded message.
    pub payload: &'a [u8],
    /// The caller's number for a call.
    pub call: Option<u64>,
    /// The sender's trace context.
    pub trace: Option<WireTrace>,
}

/// A [`Target`] borrowed from a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum TargetRef<'a> {
    /// A registered name.
    Name(&'a str),
    /// A pid of the receiver.
    Pid {
        /// The creation of the node when the pid was made.
        creation: u32,
        /// The actor's number.
        id: u64,
    },
}

/// The first bytes of an encoded `SessionFrame::Msg(NodeMsg::Actor(ActorMsg::Send { .. }))`:
/// the three variants' indices (one byte each; checked by a test).
const SEND_PREFIX: [u8; 3] = [1, 2, 0];

impl<'a> SendRef<'a> {
    /// The [`ActorMsg::Send`] a frame's `body` holds, borrowed; `None` if it holds anything
    /// else, or is not well formed (decode it as a [`SessionFrame`] then, which says why).
    pub fn from_body(body: &'a [u8]) -> Option<Self> {
        let rest = body.strip_prefix(&SEND_PREFIX[..])?;
        actor_core::codec::decode_borrowed(rest).ok()
    }
}

/// A peer list ([`ControlMsg::Peers`]) read in place from a received frame's body: the
/// names as text borrowed from the frame, not yet checked. A node already connected to most
/// of the nodes a list names (as in a growing mesh, where some twenty million names pass
/// through the lists of a thousand nodes) looks each up by its text and makes a
/// [`NodeName`] only of those it lacks.
///
/// ```
/// use actor_core::{codec, NodeName};
/// use actor_remote::wire::message::{ControlMsg, NodeMsg, PeerNames, SessionFrame};
///
/// let list = vec![NodeName::parse("a@h")?, NodeName::parse("b@h")?];
/// let body = codec::encode(&SessionFrame::Msg(NodeMsg::Control(ControlMsg::Peers(list))))?;
/// assert_eq!(PeerNames::from_body(&body).unwrap().names, ["a@h", "b@h"]);
/// assert!(PeerNames::from_body(&codec::encode(&SessionFrame::<NodeMsg>::Tick)?).is_none());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PeerNames<'a> {
    /// The names, in the order sent.
    #[serde(borrow)]
    pub names: Vec<&'a str>,
}

/// The first bytes of an encoded `SessionFrame::Msg(NodeMsg::Control(ControlMsg::Peers(..)))`:
/// the three variants' indices (checked by a test).
const PEERS_PREFIX: [u8; 3] = [1, 0, 2];

impl<'a> PeerNames<'a> {
    /// The [`ControlMsg::Peers`] a frame's `body` holds, its names borrowed; `None` if it
    /// holds anything else, or is not well formed (decode it as a [`SessionFrame`] then).
    pub fn from_body(body: &'a [u8]) -> Option<Self> {
        let rest = body.strip_prefix(&PEERS_PREFIX[..])?;
        actor_core::codec::decode_borrowed(rest).ok()
    }
}

/// A registered name or a pid on the receiving node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    /// A registered name.
    Name(ActorName),
    /// A pid: the receiver's creation it was made in, and its number.
    Pid {
        /// The creation of the node when the pid was made.
        creation: u32,
        /// The actor's number.
        id: u64,
    },
}

/// The kind of task a [`TaskMsg::Spawn`] asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireTaskKind {
    /// `async` (linked) or `async_nolink`.
    Async {
        /// Linked to the caller.
        linked: bool,
    },
    /// `start_child` with a restart type.
    Child(WireRestart),
}

/// A child's restart type on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireRestart {
    /// Always restarted.
    Permanent,
    /// Restarted after an abnormal exit.
    Transient,
    /// Never restarted.
    Temporary,
}

/// A task's failure on the wire (mirrors `actor_core::TaskError`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireTaskError {
    /// Did not finish in time.
    Timeout {
        /// The timeout in milliseconds.
        millis: u64,
    },
    /// Panicked.
    Panicked {
        /// The panic message.
        message: String,
    },
    /// Stopped before finishing.
    Exited {
        /// Why.
        reason: String,
    },
    /// A node could not be reached.
    NoConnection {
        /// The node.
        node: NodeName,
    },
    /// No such task supervisor.
    NoProc {
        /// The name asked for.
        name: String,
        /// The node asked.
        node: NodeName,
    },
    /// No such function.
    Undefined {
        /// The module.
        module: String,
        /// The function.
        function: String,
    },
    /// The arguments did not decode.
    BadArgs {
        /// The decoder's words.
        reason: String,
    },
    /// The result did not encode or decode.
    BadReturn {
        /// The codec's words.
        reason: String,
    },
    /// The supervisor was full.
    MaxChildren {
        /// Its name.
        name: String,
        /// Its limit.
        max: u64,
    },
}

/// Encoded payloads inside [`NodeMsg`] go through serde as one byte string instead of a
/// sequence of `u8`s, which bincode would encode and decode one element at a time. The bytes
/// on the wire are the same (a varint length, then the bytes), so this is no protocol change;
/// `tests::byte_strings_encode_as_sequences_did` holds it to that.
mod bytes {
    use std::fmt;

    use serde::{de, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        // `deserialize_bytes`: bincode then borrows the bytes from the frame, so nothing is
        // allocated for a length the frame does not actually hold.
        d.deserialize_bytes(Visitor)
    }

    struct Visitor;

    impl<'de> de::Visitor<'de> for Visitor {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a byte string")
        }

        fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }

        fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }

        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
            while let Some(b) = seq.next_element()? {
                out.push(b);
            }
            Ok(out)
        }
    }
}

/// `Result<Vec<u8>, E>` with the `Ok` bytes as one byte string (see [`bytes`]); encoded as
/// serde encodes a `Result`.
mod result_bytes {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize)]
    #[serde(rename = "Result")]
    enum Ref<'a, E> {
        Ok(#[serde(with = "super::bytes")] &'a [u8]),
        Err(&'a E),
    }

    #[derive(Deserialize)]
    #[serde(rename = "Result")]
    enum Owned<E> {
        Ok(#[serde(with = "super::bytes")] Vec<u8>),
        Err(E),
    }

    pub(super) fn serialize<S: Serializer, E: Serialize>(
        v: &Result<Vec<u8>, E>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match v {
            Ok(bytes) => Ref::Ok(bytes),
            Err(e) => Ref::Err(e),
        }
        .serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>, E: Deserialize<'de>>(
        d: D,
    ) -> Result<Result<Vec<u8>, E>, D::Error> {
        Ok(match Owned::deserialize(d)? {
            Owned::Ok(bytes) => Ok(bytes),
            Owned::Err(e) => Err(e),
        })
    }
}

#[cfg(test)]
mod tests {
    use actor_core::codec;

    use super::*;

    /// What the byte-string fields would be as plain `Vec<u8>`s.
    #[derive(Serialize, Deserialize)]
    enum PlainActorMsg {
        Send {
            target: Target,
            name: String,
            payload: Vec<u8>,
            call: Option<u64>,
            trace: Option<WireTrace>,
        },
        Reply {
            call: u64,
            result: Result<Vec<u8>, WireSendError>,
        },
    }

    #[test]
    fn byte_strings_encode_as_sequences_would() {
        for len in [0usize, 1, 64, 250, 251, 300, 70_000] {
            let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let pairs = [
                (
                    ActorMsg::Send {
                        target: Target::Name("bench".into()),
                        name: "Msg".into(),
                        payload: bytes.clone(),
                        call: Some(7),
                        trace: None,
                    },
                    PlainActorMsg::Send {
                        target: Target::Name("bench".into()),
                        name: "Msg".into(),
                        payload: bytes.clone(),
                        call: Some(7),
                        trace: None,
                    },
                ),
                (
                    ActorMsg::Reply {
                        call: 3,
                        result: Ok(bytes.clone()),
                    },
                    PlainActorMsg::Reply {
                        call: 3,
                        result: Ok(bytes.clone()),
                    },
                ),
                (
                    ActorMsg::Reply {
                        call: 3,
                        result: Err(WireSendError::NoProc),
                    },
                    PlainActorMsg::Reply {
                        call: 3,
                        result: Err(WireSendError::NoProc),
                    },
                ),
            ];
            for (new, plain) in pairs {
                let new_bytes = codec::encode(&new).unwrap();
                assert_eq!(new_bytes, codec::encode(&plain).unwrap(), "len {len}");
                assert_eq!(codec::decode::<ActorMsg>(&new_bytes).unwrap(), new);
            }
            let task = NodeMsg::Task(TaskMsg::Result {
                req: 9,
                result: Ok(bytes.clone()),
            });
            let encoded = codec::encode(&task).unwrap();
            assert_eq!(codec::decode::<NodeMsg>(&encoded).unwrap(), task);
        }
    }

    #[test]
    fn a_byte_string_longer_than_its_frame_is_refused() {
        let mut body = codec::encode(&NodeMsg::Actor(ActorMsg::Send {
            target: Target::Name("x".into()),
            name: "t".into(),
            payload: vec![1; 8],
            call: None,
            trace: None,
        }))
        .unwrap();
        // Claim 60 MiB of payload in a frame that holds 8 bytes of it.
        let len_at = body.len() - 1 - 8 - 1 - 1; // payload, its 1-byte length, `call: None`, `trace: None`
        assert_eq!(body[len_at], 8);
        body[len_at] = 252; // varint: a u32 follows
        body.splice(len_at + 1..len_at + 1, (60u32 << 20).to_le_bytes());
        assert!(codec::decode::<NodeMsg>(&body).is_err());
    }

    #[test]
    fn a_send_is_read_in_place_as_it_decodes_and_nothing_else_is() {
        let trace = WireTrace {
            trace_id: [0x4b; 16],
            span_id: [0xb7; 8],
            flags: 1,
        };
        let cases = [
            (Target::Name("counter".into()), None, None),
            (
                Target::Pid {
                    creation: 3,
                    id: 300,
                },
                Some(70_000),
                Some(trace),
            ),
        ];
        for (target, call, trace) in cases {
            let msg = ActorMsg::Send {
                target: target.clone(),
                name: "T".into(),
                payload: vec![7; 300],
                call,
                trace,
            };
            let body = codec::encode(&SessionFrame::Msg(NodeMsg::Actor(msg))).unwrap();
            let send = SendRef::from_body(&body).expect("a send");
            let expected = match &target {
                Target::Name(name) => TargetRef::Name(name),
                Target::Pid { creation, id } => TargetRef::Pid {
                    creation: *creation,
                    id: *id,
                },
            };
            assert_eq!(send.target, expected);
            assert_eq!(
                (send.name, send.payload, send.call, send.trace),
                ("T", &[7u8; 300][..], call, trace)
            );
            // A truncated one is not read (the full decode then says why).
            assert_eq!(SendRef::from_body(&body[..body.len() - 1]), None);
        }
        let others = [
            SessionFrame::Tick,
            SessionFrame::Msg(NodeMsg::Actor(ActorMsg::Reply {
                call: 1,
                result: Ok(vec![1]),
            })),
            SessionFrame::Msg(NodeMsg::Control(ControlMsg::Ping(1))),
        ];
        for frame in others {
            let body = codec::encode(&frame).unwrap();
            assert_eq!(SendRef::from_body(&body), None, "{frame:?}");
        }
    }

    #[test]
    fn a_peer_list_is_read_in_place_and_nothing_else_is() {
        let names: Vec<NodeName> = (0..300)
            .map(|i| NodeName::parse(&format!("n{i}@host-{i}")).unwrap())
            .collect();
        let frame = SessionFrame::Msg(NodeMsg::Control(ControlMsg::Peers(names.clone())));
        let body = codec::encode(&frame).unwrap();
        let read = PeerNames::from_body(&body).expect("a peer list");
        let texts: Vec<&str> = names.iter().map(NodeName::as_str).collect();
        assert_eq!(read.names, texts);
        // Borrowed: the text points into the frame.
        let range = body.as_ptr_range();
        assert!(read.names.iter().all(|n| range.contains(&n.as_ptr())));
        let empty = codec::encode(&SessionFrame::Msg(NodeMsg::Control(ControlMsg::Peers(
            Vec::new(),
        ))))
        .unwrap();
        assert_eq!(
            PeerNames::from_body(&empty).unwrap().names,
            Vec::<&str>::new()
        );
        // A truncated one is not read (the full decode then says why).
        assert_eq!(PeerNames::from_body(&body[..body.len() - 1]), None);
        let others = [
            SessionFrame::Tick,
            SessionFrame::Msg(NodeMsg::Control(ControlMsg::Ping(1))),
            SessionFrame::Msg(NodeMsg::Control(ControlMsg::Leaving)),
            SessionFrame::Msg(NodeMsg::Actor(ActorMsg::Reply {
                call: 1,
                result: Ok(vec![1]),
            })),
        ];
        for frame in others {
            let body = codec::encode(&frame).unwrap();
            assert_eq!(PeerNames::from_body(&body), None, "{frame:?}");
        }
    }
}

/// Property tests of the session and handshake message decoders.
#[cfg(test)]
mod props;
