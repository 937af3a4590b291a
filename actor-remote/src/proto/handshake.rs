//! The connection handshake, as a sans-IO state machine.
//!
//! Two nodes that share a cookie prove it to each other without sending it: each draws a
//! random challenge and the other answers with HMAC-SHA256, keyed by the cookie, over that
//! challenge, both node names and a direction tag (so that a digest cannot be reflected back
//! to its author). Digests are compared in constant time. The message flow is documented on
//! [`HandshakeMessage`].
//!
//! # Deadline
//!
//! Every step is bounded by [`HandshakeConfig::setup_time`] (default 7 s, the BEAM's
//! `net_setuptime`); each message that moves the handshake forward re-arms the deadline, so
//! it bounds each step rather than the whole exchange. [`Handshake::poll_timeout`] says when
//! the driver must call [`Handshake::handle_timeout`].
//!
//! # Simultaneous connects
//!
//! When the acceptor has read the initiator's hello it asks its driver, through
//! [`HandshakeEvent::NeedsRegistration`], whether this node already has something with that
//! peer, and the driver answers with [`Handshake::handle_registration`]:
//!
//! - [`Existing::None`]: the handshake goes on ([`Status::Ok`]).
//! - [`Existing::PendingOutgoing`]: both nodes are connecting to each other. The connection
//!   started by the node whose name sorts greater (byte-wise comparison of the full
//!   `name@host`) is kept. If that is this node, the incoming attempt is refused with
//!   [`Status::Nok`] and both sides end with [`HandshakeError::Simultaneous`]; otherwise the
//!   incoming attempt goes on with [`Status::OkSimultaneous`] and the driver must abort its
//!   own outgoing attempt (`handle_registration` returns the status so that it knows).
//! - [`Existing::Established`]: a session already exists; the acceptor answers
//!   [`Status::Alive`]. If both sides set [`CAP_ALIVE_REPLY`], the initiator then asks its own
//!   driver (the same [`HandshakeEvent::NeedsRegistration`]) and answers
//!   [`HandshakeMessage::AliveReply`], as the BEAM's initiator answers `alive` with
//!   `true`/`false`: `go_on` when it has no session with the acceptor itself (its old session
//!   is gone, say it was declared down while the acceptor was paused), and the acceptor's
//!   session is stale. The handshake then goes on, and on success [`Established::replaces`]
//!   tells the acceptor's driver to drop the stale session for the new one. Otherwise (or
//!   without the capability) both sides end with [`HandshakeError::AlreadyConnected`].
//!
//! # Frame limits
//!
//! If both sides set [`CAP_FRAME_LIMIT`], each tells the other its largest frame
//! ([`HandshakeMessage::Limits`], just before its challenge or challenge reply), and
//! [`Established::peer_max_frame_len`] carries the peer's, so that a sender can refuse a
//! message over the peer's limit instead of sending a frame the peer would close the session
//! for. Capability bits gate both additions, so a node without them (a build of protocol
//! version 6 without them) never receives their messages and connects as before.
//!
//! # Name modes
//!
//! As on the BEAM, a node running with long names (`a@host.example.com`) and one running with
//! short names (`a@host`) cannot connect: each side refuses a peer whose name does not fit its
//! own [`NameMode`].
//!
//! [`HandshakeMessage`]: crate::wire::message::HandshakeMessage

use std::{collections::VecDeque, fmt, time::Duration};

use actor_core::{NameMode, NodeName};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tokio::time::Instant;

use crate::wire::{
    self,
    message::{Challenge, Digest, HandshakeMessage, Hello, Status},
    FrameError,
};

/// The protocol version this build speaks. Version 2: a remote message's type field is the
/// type's stable name (`RemoteMessage::NAME`), no longer its Rust path. Version 3: links and
/// exit signals (`NodeMsg::Link`) and real exit reasons in a watch's `Down`, which a version 2
/// node cannot decode. Version 4: a graceful leave (`ControlMsg::Leaving`). Version 5: large
/// messages sent as fragments (`SessionFrame::Fragment`), and a trace context (`WireTrace`)
/// appended to `ActorMsg::Send`, `TaskMsg::Spawn` and `TaskMsg::SpawnPlain`, which changes
/// their encoding. Version 6: each fragment carries its lane (`Lane`), so small frames of other
/// lanes go between the fragments of a large message. Nodes of different versions refuse each
/// other at the handshake.
pub const PROTOCOL_VERSION: u16 = 6;

/// Capability bit: the node sends and understands [`HandshakeMessage::Limits`] (see
/// [frame limits](self#frame-limits)).
pub const CAP_FRAME_LIMIT: u64 = 1 << 0;
/// Capability bit: the node answers [`Status::Alive`] with [`HandshakeMessage::AliveReply`]
/// (see [simultaneous connects](self#simultaneous-connects)).
pub const CAP_ALIVE_REPLY: u64 = 1 << 1;
/// Capability bit: the node sends and understands `ControlMsg::View` (a digest of its view
/// of the mesh, answered with the peer list only when the views differ) after a session
/// comes up; a peer without it gets the whole list (`ControlMsg::Peers`) on every session.
pub const CAP_VIEW_DIGEST: u64 = 1 << 2;
/// Capability bit: the node sends and understands `ControlMsg::ViewParts` (its view of the
/// mesh in parts, sent when the digests differ, answered with the names of the parts that
/// differ) instead of answering a different digest with its whole list. Only with
/// [`CAP_VIEW_DIGEST`].
pub const CAP_VIEW_PARTS: u64 = 1 << 3;
/// Every capability this build offers; a node sets them in [`HandshakeConfig::capabilities`].
pub const CAPABILITIES: u64 = CAP_FRAME_LIMIT | CAP_ALIVE_REPLY | CAP_VIEW_DIGEST | CAP_VIEW_PARTS;

/// The default bound on each handshake step (the BEAM's `net_setuptime`, 7 s).
pub const DEFAULT_SETUP_TIME: Duration = Duration::from_secs(7);

type HmacSha256 = Hmac<Sha256>;

/// The cookie, kept out of `Debug`, `Display` and logs.
#[derive(Clone)]
struct Secret(Box<[u8]>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// What a node brings to every handshake.
///
/// The cookie is private and its `Debug` is redacted: it never reaches logs and never goes on
/// the wire.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HandshakeConfig {
    /// This node's name.
    pub name: NodeName,
    /// Whether this node runs with short or long names; peers must use the same mode.
    pub name_mode: NameMode,
    /// This incarnation of the node (changes on each restart).
    pub creation: u32,
    /// Whether this node is hidden.
    pub hidden: bool,
    /// The lowest protocol version this node speaks.
    pub min_version: u16,
    /// The highest protocol version this node speaks.
    pub max_version: u16,
    /// Capability bits this node offers.
    pub capabilities: u64,
    /// The bound on each handshake step.
    pub setup_time: Duration,
    /// The largest frame this node accepts, told to a peer that sets [`CAP_FRAME_LIMIT`].
    pub max_frame_len: usize,
    cookie: Secret,
}

impl HandshakeConfig {
    /// A configuration with the defaults: the name mode that fits `name`, creation 0, visible,
    /// protocol [`PROTOCOL_VERSION`] only, no capabilities (a node sets [`CAPABILITIES`]),
    /// [`DEFAULT_SETUP_TIME`], the default largest frame.
    pub fn new(name: NodeName, cookie: impl AsRef<[u8]>) -> Self {
        Self {
            name_mode: name.mode(),
            name,
            creation: 0,
            hidden: false,
            min_version: PROTOCOL_VERSION,
            max_version: PROTOCOL_VERSION,
            capabilities: 0,
            setup_time: DEFAULT_SETUP_TIME,
            max_frame_len: wire::DEFAULT_MAX_FRAME_LEN,
            cookie: Secret(cookie.as_ref().into()),
        }
    }

    /// Replaces the cookie.
    pub fn set_cookie(&mut self, cookie: impl AsRef<[u8]>) {
        self.cookie = Secret(cookie.as_ref().into());
    }

    fn hello(&self) -> Hello {
        Hello {
            min_version: self.min_version,
            max_version: self.max_version,
            capabilities: self.capabilities,
            name: self.name.clone(),
            creation: self.creation,
            hidden: self.hidden,
        }
    }
}

/// Which end of the connection this node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// This node dialled.
    Initiator,
    /// This node accepted.
    Acceptor,
}

/// What this node already has with the peer of an incoming handshake; the driver's answer to
/// [`HandshakeEvent::NeedsRegistration`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Existing {
    /// Nothing: the handshake goes on.
    None,
    /// This node is itself connecting to the peer right now.
    PendingOutgoing,
    /// This node already has a session with the peer.
    Established,
}

/// Something the handshake needs the driver to do.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandshakeEvent {
    /// Look up what this node has with `peer`, then call [`Handshake::handle_registration`]:
    /// on the acceptor after the initiator's hello, on the initiator after a
    /// [`Status::Alive`] (with [`CAP_ALIVE_REPLY`]).
    NeedsRegistration {
        /// The initiator's name, from its hello.
        peer: NodeName,
    },
}

/// A completed handshake: who the peer is and what the session speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Established {
    /// The peer's name.
    pub peer: NodeName,
    /// The peer's incarnation.
    pub creation: u32,
    /// Whether the peer is hidden.
    pub hidden: bool,
    /// The protocol version both sides speak (the highest they share).
    pub version: u16,
    /// The capability bits both sides set.
    pub capabilities: u64,
    /// Which end of the connection this node is.
    pub role: Role,
    /// The largest frame the peer accepts, if it said ([`CAP_FRAME_LIMIT`]).
    pub peer_max_frame_len: Option<usize>,
    /// Acceptor: this node had a session with the peer that the peer no longer has (it
    /// answered [`Status::Alive`] with `go_on`); the driver must drop that one for this one.
    pub replaces: bool,
}

/// A handshake failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// Initiator: the acceptor refused our digest, or its own digest is wrong.
    #[error("node {peer} rejected our cookie; start both nodes with the same cookie")]
    CookieMismatch {
        /// The acceptor.
        peer: NodeName,
    },
    /// Acceptor: the initiator's digest is wrong.
    #[error("connection attempt from node {peer} rejected: invalid challenge reply; start both nodes with the same cookie")]
    InvalidChallengeReply {
        /// The initiator.
        peer: NodeName,
    },
    /// The two nodes share no protocol version.
    #[error("node {peer} speaks protocol v{theirs_min}..=v{theirs_max}, we support v{min}..=v{max}; upgrade the older node")]
    Version {
        /// The peer.
        peer: NodeName,
        /// The peer's lowest version.
        theirs_min: u16,
        /// The peer's highest version.
        theirs_max: u16,
        /// Our lowest version.
        min: u16,
        /// Our highest version.
        max: u16,
    },
    /// The peer's name does not fit this node's name mode.
    #[error("{}", name_mode_message(.peer, *.ours))]
    NameMode {
        /// The peer.
        peer: NodeName,
        /// This node's mode.
        ours: NameMode,
    },
    /// Initiator: the node that answered is not the one dialled.
    #[error("dialled node {expected} but {got} answered; check the address or the port mapper's entry for {expected}")]
    WrongPeer {
        /// The node we meant to reach.
        expected: NodeName,
        /// The node that answered.
        got: NodeName,
    },
    /// A message arrived that the current step does not expect.
    #[error("unexpected {got} message while {state}; the peer does not follow the nodus handshake (is it a nodus node of a compatible version?)")]
    Unexpected {
        /// The kind of message received.
        got: &'static str,
        /// The step the handshake was at.
        state: &'static str,
    },
    /// Initiator: the acceptor refused the connection.
    #[error("node {peer} refused the connection (status {status}); check that both nodes use compatible versions and name modes")]
    Rejected {
        /// The acceptor.
        peer: NodeName,
        /// Its status.
        status: Status,
    },
    /// Both nodes connected to each other at once and this attempt is the one dropped.
    #[error("node {peer} and this node connected to each other at the same time; the connection started by the node whose name sorts greater is kept and this one is dropped, nothing to do")]
    Simultaneous {
        /// The peer.
        peer: NodeName,
    },
    /// A session with the peer already exists.
    #[error("a session with node {peer} already exists; use it, or disconnect it before connecting again")]
    AlreadyConnected {
        /// The peer.
        peer: NodeName,
    },
    /// A step took longer than the handshake deadline.
    #[error("handshake timed out after {after:?} while {step}; check that the peer is a nodus node and reachable, or raise the handshake setup time on slow networks")]
    Timeout {
        /// The step the handshake was at.
        step: &'static str,
        /// The deadline of each step.
        after: Duration,
    },
    /// The peer closed the connection.
    #[error("the peer closed the connection while {step}; its log says why")]
    PeerClosed {
        /// The step the handshake was at.
        step: &'static str,
    },
    /// The peer sent bytes that are not a handshake message.
    #[error("received bytes that are not a handshake message; the peer is not a nodus node of a compatible version")]
    Undecodable {
        /// What the framing layer reported.
        #[source]
        source: FrameError,
    },
    /// The socket failed.
    #[error("the connection failed during the handshake")]
    Io {
        /// What the socket reported.
        #[source]
        source: std::io::Error,
    },
}

impl HandshakeError {
    /// The peer the error names, if it names one.
    pub fn peer(&self) -> Option<&NodeName> {
        match self {
            Self::CookieMismatch { peer }
            | Self::InvalidChallengeReply { peer }
            | Self::Version { peer, .. }
            | Self::NameMode { peer, .. }
            | Self::Rejected { peer, .. }
            | Self::Simultaneous { peer }
            | Self::AlreadyConnected { peer } => Some(peer),
            Self::WrongPeer { got, .. } => Some(got),
            Self::Unexpected { .. }
            | Self::Timeout { .. }
            | Self::PeerClosed { .. }
            | Self::Undecodable { .. }
            | Self::Io { .. } => None,
        }
    }

    /// Whether the error is the normal end of a connection that another one replaces (a
    /// simultaneous connect, or a session that exists): nothing to warn about.
    pub fn is_benign(&self) -> bool {
        matches!(
            self,
            Self::Simultaneous { .. } | Self::AlreadyConnected { .. }
        )
    }
}

fn name_mode_message(peer: &NodeName, ours: NameMode) -> String {
    match ours {
        NameMode::Long => format!(
            "** System running to use fully qualified hostnames ** ** Hostname {} is illegal **: \
             node {peer} has a short name but this node runs with long names; a long-name node \
             and a short-name node cannot connect: give every node a long name (--name) or \
             every node a short name (--sname)",
            peer.host()
        ),
        NameMode::Short => format!(
            "** System NOT running to use fully qualified hostnames ** ** Hostname {} is illegal \
             **: node {peer} has a long name but this node runs with short names; a long-name \
             node and a short-name node cannot connect: give every node a long name (--name) or \
             every node a short name (--sname)",
            peer.host()
        ),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Initiator: hello sent, waiting for the acceptor's.
    AwaitHello,
    /// Initiator: waiting for the status.
    AwaitStatus,
    /// Initiator: waiting for the challenge.
    AwaitChallenge,
    /// Initiator: reply sent, waiting for the ack.
    AwaitAck,
    /// Initiator: the acceptor answered `Alive`; waiting for the driver's registration
    /// answer.
    AwaitAliveCheck,
    /// Acceptor: waiting for the initiator's hello.
    AwaitInitiatorHello,
    /// Acceptor: waiting for the driver's registration answer.
    AwaitRegistration,
    /// Acceptor: `Alive` sent, waiting for the initiator's `AliveReply`.
    AwaitAliveReply,
    /// Acceptor: challenge sent, waiting for the reply.
    AwaitReply,
    /// Finished (success or failure).
    Done,
}

impl State {
    fn step(self) -> &'static str {
        match self {
            Self::AwaitHello => "waiting for the peer's hello",
            Self::AwaitStatus => "waiting for the status",
            Self::AwaitChallenge => "waiting for the challenge",
            Self::AwaitAck => "waiting for the challenge ack",
            Self::AwaitAliveCheck => {
                "checking this node's sessions after the peer said it has one with us"
            }
            Self::AwaitAliveReply => "waiting for the answer to `alive`",
            Self::AwaitInitiatorHello => "waiting for the initiator's hello",
            Self::AwaitRegistration => "waiting for the local node to check existing connections",
            Self::AwaitReply => "waiting for the challenge reply",
            Self::Done => "finished",
        }
    }
}

/// Direction tags keep a digest for one direction from being replayed in the other.
const TAG_INITIATOR: &[u8] = b"nodus handshake v1: initiator proves the cookie";
const TAG_ACCEPTOR: &[u8] = b"nodus handshake v1: acceptor proves the cookie";

/// The cookie's HMAC over `challenge`, both names (length-prefixed) and a direction tag.
fn keyed(
    cookie: &Secret,
    challenge: &Challenge,
    initiator: &NodeName,
    acceptor: &NodeName,
    tag: &[u8],
) -> HmacSha256 {
    // HMAC accepts keys of any length (RFC 2104), so this cannot fail; the cookie is local
    // configuration, never network input.
    #[allow(clippy::expect_used)]
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&cookie.0)
        .expect("HMAC accepts keys of any length");
    mac.update(challenge);
    for name in [initiator, acceptor] {
        let bytes = name.as_str().as_bytes();
        mac.update(&(bytes.len() as u64).to_be_bytes());
        mac.update(bytes);
    }
    mac.update(tag);
    mac
}

fn digest(
    cookie: &Secret,
    challenge: &Challenge,
    initiator: &NodeName,
    acceptor: &NodeName,
    tag: &[u8],
) -> Digest {
    keyed(cookie, challenge, initiator, acceptor, tag)
        .finalize()
        .into_bytes()
        .into()
}

fn verify(
    cookie: &Secret,
    challenge: &Challenge,
    initiator: &NodeName,
    acceptor: &NodeName,
    tag: &[u8],
    got: &Digest,
) -> bool {
    keyed(cookie, challenge, initiator, acceptor, tag)
        .verify_slice(got)
        .is_ok()
}

/// One handshake, from either end.
///
/// Feed it what the peer sent ([`handle_frame`](Self::handle_frame) or
/// [`handle_frame_body`](Self::handle_frame_body)), the passing of time
/// ([`handle_timeout`](Self::handle_timeout)), a closed connection
/// ([`handle_close`](Self::handle_close)) and, on the acceptor, the registration answer; after
/// each input, drain [`poll_transmit`](Self::poll_transmit) (send those messages, in order,
/// even when the outcome is an error), [`poll_event`](Self::poll_event), then
/// [`poll_outcome`](Self::poll_outcome). Once an outcome is out, further inputs are ignored.
///
/// ```
/// use actor_remote::proto::{Handshake, HandshakeConfig, Existing, HandshakeEvent};
/// use actor_core::NodeName;
/// use tokio::time::Instant;
///
/// let now = Instant::now();
/// let a = HandshakeConfig::new(NodeName::parse("a@localhost")?, "cookie");
/// let b = HandshakeConfig::new(NodeName::parse("b@localhost")?, "cookie");
/// let mut i = Handshake::initiate(&a, b.name.clone(), [1; 32], now);
/// let mut r = Handshake::accept(&b, [2; 32], now);
/// loop {
///     let mut moved = false;
///     while let Some(m) = i.poll_transmit() { r.handle_frame(now, m); moved = true; }
///     if let Some(HandshakeEvent::NeedsRegistration { .. }) = r.poll_event() {
///         r.handle_registration(now, Existing::None);
///     }
///     while let Some(m) = r.poll_transmit() { i.handle_frame(now, m); moved = true; }
///     if !moved { break; }
/// }
/// let ours = i.poll_outcome().ok_or("no outcome")??;
/// let theirs = r.poll_outcome().ok_or("no outcome")??;
/// assert_eq!((ours.peer.as_str(), theirs.peer.as_str()), ("b@localhost", "a@localhost"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Handshake {
    cfg: HandshakeConfig,
    role: Role,
    state: State,
    our_challenge: Challenge,
    /// Initiator: the node dialled.
    expected: Option<NodeName>,
    peer: Option<Hello>,
    version: u16,
    /// The peer's largest frame, once it said.
    peer_max_frame_len: Option<usize>,
    /// Acceptor: the peer answered `Alive` with `go_on`.
    replaces: bool,
    deadline: Instant,
    transmit: VecDeque<HandshakeMessage>,
    event: Option<HandshakeEvent>,
    outcome: Option<Result<Established, HandshakeError>>,
}

impl Handshake {
    fn new(
        cfg: &HandshakeConfig,
        role: Role,
        expected: Option<NodeName>,
        our_challenge: Challenge,
        now: Instant,
    ) -> Self {
        Self {
            cfg: cfg.clone(),
            role,
            state: match role {
                Role::Initiator => State::AwaitHello,
                Role::Acceptor => State::AwaitInitiatorHello,
            },
            our_challenge,
            expected,
            peer: None,
            version: 0,
            peer_max_frame_len: None,
            replaces: false,
            deadline: now + cfg.setup_time,
            transmit: VecDeque::new(),
            event: None,
            outcome: None,
        }
    }

    /// Starts a handshake towards `peer`, the node this side dialled. `our_challenge` must be
    /// fresh random bytes.
    pub fn initiate(
        cfg: &HandshakeConfig,
        peer: NodeName,
        our_challenge: Challenge,
        now: Instant,
    ) -> Self {
        let mut hs = Self::new(cfg, Role::Initiator, Some(peer), our_challenge, now);
        hs.transmit.push_back(HandshakeMessage::Hello(cfg.hello()));
        hs
    }

    /// Starts the accepting side of a handshake. `our_challenge` must be fresh random bytes.
    pub fn accept(cfg: &HandshakeConfig, our_challenge: Challenge, now: Instant) -> Self {
        Self::new(cfg, Role::Acceptor, None, our_challenge, now)
    }

    /// Which end this is.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The peer's name, once known.
    pub fn peer(&self) -> Option<&NodeName> {
        self.peer.as_ref().map(|h| &h.name)
    }

    /// Whether an outcome has been reached (it may already have been polled).
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes a frame body and handles it as [`handle_frame`](Self::handle_frame) does.
    /// Bytes that are not a handshake message end the handshake with
    /// [`HandshakeError::Undecodable`].
    pub fn handle_frame_body(&mut self, now: Instant, body: &[u8]) {
        if self.is_done() {
            return;
        }
        match wire::decode_body::<HandshakeMessage>(body) {
            Ok(msg) => self.handle_frame(now, msg),
            Err(source) => self.fail(HandshakeError::Undecodable { source }),
        }
    }

    /// Handles a message from the peer.
    pub fn handle_frame(&mut self, now: Instant, msg: HandshakeMessage) {
        use HandshakeMessage as M;
        match (self.state, msg) {
            (State::Done, _) => {}
            (State::AwaitHello, M::Hello(hello)) => {
                if let Err(e) = self.check_hello(&hello) {
                    return self.fail(e);
                }
                if let Some(expected) = &self.expected {
                    if *expected != hello.name {
                        let e = HandshakeError::WrongPeer {
                            expected: expected.clone(),
                            got: hello.name,
                        };
                        return self.fail(e);
                    }
                }
                self.peer = Some(hello);
                self.advance(now, State::AwaitStatus);
            }
            (State::AwaitStatus, M::Status(status)) => {
                let peer = self.peer_name();
                match status {
                    Status::Ok | Status::OkSimultaneous => self.advance(now, State::AwaitChallenge),
                    Status::Nok => self.fail(HandshakeError::Simultaneous { peer }),
                    Status::Alive if self.shares(CAP_ALIVE_REPLY) => {
                        // Does this node still have a session with the acceptor? Ask.
                        self.event = Some(HandshakeEvent::NeedsRegistration { peer });
                        self.advance(now, State::AwaitAliveCheck);
                    }
                    Status::Alive => self.fail(HandshakeError::AlreadyConnected { peer }),
                    Status::NotAllowed => self.fail(HandshakeError::Rejected { peer, status }),
                }
            }
            (State::AwaitChallenge | State::AwaitReply, M::Limits { max_frame_len })
                if self.shares(CAP_FRAME_LIMIT) && self.peer_max_frame_len.is_none() =>
            {
                let max = usize::try_from(max_frame_len).unwrap_or(usize::MAX);
                self.peer_max_frame_len = Some(max);
            }
            (State::AwaitAliveReply, M::AliveReply { go_on }) => {
                if go_on {
                    self.replaces = true;
                    self.send_challenge(now);
                } else {
                    let peer = self.peer_name();
                    self.fail(HandshakeError::AlreadyConnected { peer });
                }
            }
            (State::AwaitChallenge, M::Challenge { challenge }) => {
                let peer = self.peer_name();
                let d = digest(
                    &self.cfg.cookie,
                    &challenge,
                    &self.cfg.name,
                    &peer,
                    TAG_INITIATOR,
                );
                self.push_limits();
                self.transmit.push_back(M::ChallengeReply {
                    digest: d,
                    challenge: self.our_challenge,
                });
                self.advance(now, State::AwaitAck);
            }
            (State::AwaitAck, M::ChallengeAck { digest }) => {
                let peer = self.peer_name();
                let ok = verify(
                    &self.cfg.cookie,
                    &self.our_challenge,
                    &self.cfg.name,
                    &peer,
                    TAG_ACCEPTOR,
                    &digest,
                );
                if ok {
                    self.succeed();
                } else {
                    self.fail(HandshakeError::CookieMismatch { peer });
                }
            }
            (State::AwaitAck, M::Status(Status::NotAllowed)) => {
                let peer = self.peer_name();
                self.fail(HandshakeError::CookieMismatch { peer });
            }
            (State::AwaitInitiatorHello, M::Hello(hello)) => {
                self.transmit.push_back(M::Hello(self.cfg.hello()));
                if let Err(e) = self.check_hello(&hello) {
                    self.transmit.push_back(M::Status(Status::NotAllowed));
                    // Refused, but it said who it is: the log names it.
                    self.peer = Some(hello);
                    return self.fail(e);
                }
                self.event = Some(HandshakeEvent::NeedsRegistration {
                    peer: hello.name.clone(),
                });
                self.peer = Some(hello);
                self.advance(now, State::AwaitRegistration);
            }
            (
                State::AwaitReply,
                M::ChallengeReply {
                    digest: d,
                    challenge,
                },
            ) => {
                let peer = self.peer_name();
                // A reflected challenge is refused outright, whatever the digest.
                let ok = challenge != self.our_challenge
                    && verify(
                        &self.cfg.cookie,
                        &self.our_challenge,
                        &peer,
                        &self.cfg.name,
                        TAG_INITIATOR,
                        &d,
                    );
                if !ok {
                    self.transmit.push_back(M::Status(Status::NotAllowed));
                    return self.fail(HandshakeError::InvalidChallengeReply { peer });
                }
                let ack = digest(
                    &self.cfg.cookie,
                    &challenge,
                    &peer,
                    &self.cfg.name,
                    TAG_ACCEPTOR,
                );
                self.transmit.push_back(M::ChallengeAck { digest: ack });
                self.succeed();
            }
            (state, msg) => self.fail(HandshakeError::Unexpected {
                got: msg.kind(),
                state: state.step(),
            }),
        }
    }

    /// The driver's answer to [`HandshakeEvent::NeedsRegistration`].
    ///
    /// On the acceptor, returns the status sent to the initiator: on
    /// [`Status::OkSimultaneous`] the driver must abort its own outgoing attempt to the peer.
    /// On the initiator (after [`Status::Alive`]), `existing` says whether this node still
    /// has a session with the acceptor: if not, the handshake goes on and the acceptor drops
    /// its stale one. Returns `None` there, and (doing nothing) when no answer was expected.
    pub fn handle_registration(&mut self, now: Instant, existing: Existing) -> Option<Status> {
        if self.state == State::AwaitAliveCheck {
            self.event = None;
            let go_on = existing != Existing::Established;
            self.transmit
                .push_back(HandshakeMessage::AliveReply { go_on });
            if go_on {
                self.advance(now, State::AwaitChallenge);
            } else {
                let peer = self.peer_name();
                self.fail(HandshakeError::AlreadyConnected { peer });
            }
            return None;
        }
        if self.state != State::AwaitRegistration {
            return None;
        }
        self.event = None;
        let peer = self.peer_name();
        let status = match existing {
            Existing::None => Status::Ok,
            Existing::PendingOutgoing if self.cfg.name > peer => Status::Nok,
            Existing::PendingOutgoing => Status::OkSimultaneous,
            Existing::Established => Status::Alive,
        };
        self.transmit.push_back(HandshakeMessage::Status(status));
        match status {
            Status::Nok => self.fail(HandshakeError::Simultaneous { peer }),
            // The initiator says whether this node's session is stale.
            Status::Alive if self.shares(CAP_ALIVE_REPLY) => {
                self.advance(now, State::AwaitAliveReply);
            }
            Status::Alive => self.fail(HandshakeError::AlreadyConnected { peer }),
            _ => self.send_challenge(now),
        }
        Some(status)
    }

    /// Acceptor: sends this node's limits (if shared) and its challenge.
    fn send_challenge(&mut self, now: Instant) {
        self.push_limits();
        self.transmit.push_back(HandshakeMessage::Challenge {
            challenge: self.our_challenge,
        });
        self.advance(now, State::AwaitReply);
    }

    /// Tells the peer this node's largest frame, if both sides set [`CAP_FRAME_LIMIT`].
    fn push_limits(&mut self) {
        if self.shares(CAP_FRAME_LIMIT) {
            let max_frame_len = u64::try_from(self.cfg.max_frame_len).unwrap_or(u64::MAX);
            self.transmit
                .push_back(HandshakeMessage::Limits { max_frame_len });
        }
    }

    /// Whether both sides set the capability `bit` (once the peer's hello is in).
    fn shares(&self, bit: u64) -> bool {
        self.cfg.capabilities & bit != 0
            && self
                .peer
                .as_ref()
                .is_some_and(|hello| hello.capabilities & bit != 0)
    }

    /// The peer closed the connection. Closing right after our challenge reply is how an
    /// acceptor refuses a wrong cookie, so that case is [`HandshakeError::CookieMismatch`];
    /// elsewhere it is [`HandshakeError::PeerClosed`].
    pub fn handle_close(&mut self) {
        match self.state {
            State::Done => {}
            State::AwaitAck => {
                let peer = self.peer_name();
                self.fail(HandshakeError::CookieMismatch { peer });
            }
            state => self.fail(HandshakeError::PeerClosed { step: state.step() }),
        }
    }

    /// The socket failed.
    pub fn handle_io_error(&mut self, source: std::io::Error) {
        if !self.is_done() {
            self.fail(HandshakeError::Io { source });
        }
    }

    /// The framing layer refused the peer's bytes (for example a frame over the handshake's
    /// largest frame).
    pub fn handle_frame_error(&mut self, source: FrameError) {
        if !self.is_done() {
            self.fail(HandshakeError::Undecodable { source });
        }
    }

    /// Time has passed: fails the handshake if the current step's deadline is over.
    pub fn handle_timeout(&mut self, now: Instant) {
        if !self.is_done() && now >= self.deadline {
            let step = self.state.step();
            self.fail(HandshakeError::Timeout {
                step,
                after: self.cfg.setup_time,
            });
        }
    }

    /// The next message to send to the peer.
    pub fn poll_transmit(&mut self) -> Option<HandshakeMessage> {
        self.transmit.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called; `None` once finished.
    pub fn poll_timeout(&self) -> Option<Instant> {
        (!self.is_done()).then_some(self.deadline)
    }

    /// Something the driver must do.
    pub fn poll_event(&mut self) -> Option<HandshakeEvent> {
        self.event.take()
    }

    /// The result, once; `None` before the handshake ends and after it was taken.
    pub fn poll_outcome(&mut self) -> Option<Result<Established, HandshakeError>> {
        self.outcome.take()
    }

    fn peer_name(&self) -> NodeName {
        match (&self.peer, &self.expected) {
            (Some(h), _) => h.name.clone(),
            (None, Some(e)) => e.clone(),
            (None, None) => NodeName::nonode(),
        }
    }

    /// Checks the peer's versions and name mode, and settles the version.
    fn check_hello(&mut self, hello: &Hello) -> Result<(), HandshakeError> {
        let low = self.cfg.min_version.max(hello.min_version);
        let high = self.cfg.max_version.min(hello.max_version);
        if low > high {
            return Err(HandshakeError::Version {
                peer: hello.name.clone(),
                theirs_min: hello.min_version,
                theirs_max: hello.max_version,
                min: self.cfg.min_version,
                max: self.cfg.max_version,
            });
        }
        if hello.name.check_mode(self.cfg.name_mode).is_err() {
            return Err(HandshakeError::NameMode {
                peer: hello.name.clone(),
                ours: self.cfg.name_mode,
            });
        }
        self.version = high;
        Ok(())
    }

    fn advance(&mut self, now: Instant, state: State) {
        self.state = state;
        self.deadline = now + self.cfg.setup_time;
    }

    fn fail(&mut self, e: HandshakeError) {
        self.state = State::Done;
        self.event = None;
        self.outcome = Some(Err(e));
    }

    fn succeed(&mut self) {
        self.state = State::Done;
        let Some(peer) = self.peer.take() else {
            // Unreachable: success needs the peer's hello. Fail rather than panic.
            return self.fail(HandshakeError::Unexpected {
                got: "success",
                state: "no hello received",
            });
        };
        self.outcome = Some(Ok(Established {
            creation: peer.creation,
            hidden: peer.hidden,
            version: self.version,
            capabilities: self.cfg.capabilities & peer.capabilities,
            role: self.role,
            peer: peer.name,
            peer_max_frame_len: self.peer_max_frame_len,
            replaces: self.replaces,
        }));
    }
}

#[cfg(test)]
mod tests;
