//! A nodus node in an Erlang or Elixir cluster: the Erlang distribution protocol as a second
//! protocol on the node's own port (feature `erlang`).
//!
//! With [`NodeConfig::erlang`](crate::NodeConfig::erlang), a node answers BEAM nodes (`erl`,
//! `iex`) as one of theirs: `net_adm:ping('rust@localhost')` answers `pong` and the node is in
//! their `nodes()`.
//!
//! # One port, one epmd registration, two protocols
//!
//! epmd keeps one port per node name. A nodus node registers its one listening port, and with
//! `erlang` on, that port speaks both protocols: the first two bytes of a connection tell them
//! apart (a nodus handshake frame starts with a four-byte length whose two high bytes are zero,
//! an Erlang `send_name` with a two-byte length that is never zero). So nodus peers and BEAM
//! peers find the node the same way, by its name in the port mapper (`ERL_EPMD_PORT` is read
//! as the BEAM reads it), and nodus-to-nodus connections are unchanged.
//!
//! # What a BEAM peer can do
//!
//! - Connect (protocol version 6, the handshake with the cookie as the BEAM uses it: an MD5
//!   digest of the cookie and the challenge); ticks both ways keep the connection up, and a
//!   peer silent for the node's tick time is dropped.
//! - `net_adm:ping/1` (`Node.ping/1`): the node's `net_kernel` answers `yes`.
//! - Membership: a connected BEAM node is a visible node of [`Node::list`](crate::Node::list),
//!   [`Node::events`](crate::Node::events) tells `NodeUp` / `NodeDown` for it, and
//!   [`Node::monitor_node`](crate::Node::monitor_node) fires when its connection goes. BEAM
//!   peers are kept in a table of their own here (not in the nodus sessions' state machine),
//!   which those three merge in; [`Node::ping`](crate::Node::ping) and
//!   [`Node::connect`](crate::Node::connect) still speak only nodus (use [`Erlang::connect`]).
//! - `send({Name, Node}, Msg)`, `gen_server:cast` and `gen_server:call` to a name the node
//!   exposed with [`Erlang::expose_cast`] or [`Erlang::expose_call`]: the term is turned into
//!   the actor's message by the mapping given there (see [`term`] for [`FromTerm`] and
//!   [`IntoTerm`]), and a call's reply goes back as `{Tag, Reply}`, as gen_server expects. A
//!   term that does not map is a typed [`ErlError`] logged on this node; the caller of a
//!   `gen_server:call` exits with `{nodus_bad_request, Term}` (through its monitor), and the
//!   connection stays up. A call to a name that was not exposed exits with `noproc`.
//!
//! - `erpc:call/4,5` and `rpc:call/4,5` (`:erpc.call` from Elixir) run a function registered
//!   in this node's [`FunctionRegistry`](actor_core::FunctionRegistry), its arguments and
//!   result mapped through JSON ([`term::term_to_json`], [`term::json_to_term`]); a function
//!   not registered raises `undef` on the caller's side, as the BEAM's own (see the table in
//!   the `erpc` module's source, `erl/erpc.rs`).
//!
//! - `Task.Supervisor.async/async_nolink/start_child` with `{Chat.TaskSupervisor, Node}` run
//!   a registered function under this node's [`TaskSupervisor`](actor_core::TaskSupervisor)
//!   of that name, with Elixir's outcomes (the `task` module's source, `erl/task.rs`, has the
//!   tables).
//!
//! [`Erlang::connect`] connects to a BEAM node from this side. Once a BEAM node is
//! connected, [`TaskSupervisor::async_on`](actor_core::TaskSupervisor::async_on) runs a task
//! under its `Task.Supervisor`, and [`System::call`] / [`System::cast`] with a [`GenCall`] /
//! [`GenCast`] (or [`Erlang::call`]) reach its named GenServers (the [`remote`] module).
//! Links and monitors of nodus actors from the BEAM, and sends from here to BEAM pids, are
//! not supported yet.
//!
//! # Example
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use actor_remote::erl::{eetf::Term, IntoTerm};
//! use actor_remote::{Cookie, Node, NodeConfig};
//!
//! let node = Node::start(NodeConfig::sname("rust@localhost").cookie(Cookie::new("c")?).erlang(true)).await?;
//! let erlang = node.erlang().ok_or("erlang is on")?;
//! // gen_server:call({echo, 'rust@localhost'}, T) answers T, without an actor.
//! erlang.expose_call("echo", |_system, term: Term| async move { Ok(term) });
//! # Ok(()) }
//! ```

mod check;
pub(crate) mod conn;
mod erpc;
pub(crate) mod procs;
pub mod remote;
mod task;
pub mod term;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use actor_core::{NodeName, System};
use tokio::sync::{broadcast, oneshot};

use crate::{NodeDown, NodeDownReason, NodeEvent};

pub use eetf;
pub use remote::{ErlCallError, GenCall, GenCast, Reply};
pub use term::{Atom, FromTerm, IntoTerm, TermError};

/// An error of the Erlang side of a node.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ErlError {
    /// A term did not map to the message of the actor it was sent to.
    #[error("a message to {name} does not map to its actor's messages: {source}; send a term its mapping accepts")]
    BadTerm {
        /// The registered name the term was sent to.
        name: String,
        /// Why it did not map.
        #[source]
        source: TermError,
    },
    /// The actor could not be reached or did not answer.
    #[error("{name} did not take the message: {reason}; check the actor is running")]
    Actor {
        /// The registered name.
        name: String,
        /// What went wrong, as the actor's system said.
        reason: String,
    },
    /// The handshake with a BEAM node failed.
    #[error("Erlang handshake failed: {0}; check both nodes use the same cookie and name mode")]
    Handshake(String),
    /// The connection failed or carried something that is not the Erlang protocol.
    #[error("Erlang connection failed: {0}; the peer is told by the connection closing")]
    Connection(String),
}

/// How a connection's end reads as the BEAM's `nodedown_reason`.
fn down_reason(why: &ErlError) -> NodeDownReason {
    match why {
        ErlError::Connection(text) if text.starts_with("tick timeout") => {
            NodeDownReason::TickTimeout
        }
        ErlError::Connection(text) if text.starts_with("the node stopped") => {
            NodeDownReason::NodeShutdown
        }
        ErlError::Connection(text)
            if text.starts_with("a frame of") || text.starts_with("a message with") =>
        {
            NodeDownReason::ProtocolError(text.clone())
        }
        _ => NodeDownReason::ConnectionClosed,
    }
}

/// The name of the BEAM's distribution manager, which answers `net_adm:ping/1`.
pub(crate) const NET_KERNEL: &str = "net_kernel";

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
type CastFn = Arc<dyn Fn(&System, eetf::Term) -> Result<(), ErlError> + Send + Sync>;
type CallFn =
    Arc<dyn Fn(System, eetf::Term) -> BoxFuture<Result<eetf::Term, ErlError>> + Send + Sync>;

/// What the node's Erlang side knows: its names exposed to BEAM nodes and its BEAM peers.
pub(crate) struct Shared {
    pub(crate) system: System,
    pub(crate) name: String,
    pub(crate) cookie: String,
    pub(crate) creation: u32,
    pub(crate) tick_time: Duration,
    pub(crate) setup_time: Duration,
    pub(crate) max_frame_len: usize,
    /// The port the port mappers of other hosts listen on (`ERL_EPMD_PORT`, or the node's).
    pub(crate) port_mapper_port: u16,
    casts: Mutex<HashMap<String, CastFn>>,
    calls: Mutex<HashMap<String, CallFn>>,
    pub(crate) peers: Mutex<HashSet<String>>,
    /// The node's event channel ([`Node::events`](crate::Node::events)): BEAM peers' ups and
    /// downs go there too.
    events: broadcast::Sender<NodeEvent>,
    /// Node monitors of BEAM peers ([`Node::monitor_node`](crate::Node::monitor_node)), by
    /// peer name; each fires once, when the connection goes.
    monitors: Mutex<HashMap<String, Vec<oneshot::Sender<NodeDown>>>>,
    /// The writer queue of each connected BEAM peer, for messages this node starts
    /// ([`remote`]).
    conns: Mutex<HashMap<String, tokio::sync::mpsc::Sender<erl_dist::message::Message>>>,
    /// This node's pids that BEAM processes see ([`procs`]): tasks run for them, callers of
    /// theirs.
    pub(crate) procs: procs::Procs,
    /// Set once the node stops: every BEAM connection closes.
    closing: tokio::sync::watch::Sender<bool>,
    /// Notified each time a BEAM peer's connection has ended ([`Shared::peer_down`]).
    peer_gone: tokio::sync::Notify,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("name", &self.name)
            .field("creation", &self.creation)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    pub(crate) fn new(
        system: System,
        name: String,
        cookie: String,
        creation: u32,
        port_mapper_port: u16,
        config: &crate::NodeConfig,
        events: broadcast::Sender<NodeEvent>,
    ) -> Arc<Self> {
        Arc::new(Shared {
            system,
            name,
            cookie,
            creation,
            tick_time: config.tick_time,
            setup_time: config.handshake_timeout,
            max_frame_len: config.max_frame_len,
            port_mapper_port,
            casts: Mutex::default(),
            calls: Mutex::default(),
            peers: Mutex::default(),
            events,
            monitors: Mutex::default(),
            conns: Mutex::default(),
            procs: procs::Procs::default(),
            closing: tokio::sync::watch::Sender::new(false),
            peer_gone: tokio::sync::Notify::new(),
        })
    }

    /// Records a BEAM peer as connected and tells [`Node::events`](crate::Node::events)
    /// subscribers: false if it already was (a connection from both sides at once).
    pub(crate) fn peer_up(&self, peer: &str) -> bool {
        if !lock(&self.peers).insert(peer.to_string()) {
            return false;
        }
        if let Ok(node) = NodeName::parse(peer) {
            let _ = self.events.send(NodeEvent::NodeUp {
                node,
                hidden: false,
            });
        }
        true
    }

    /// Forgets a BEAM peer whose connection ended with `why`: fires its node monitors and
    /// tells [`Node::events`](crate::Node::events) subscribers.
    pub(crate) fn peer_down(&self, peer: &str, why: &ErlError) {
        lock(&self.peers).remove(peer);
        lock(&self.conns).remove(peer);
        self.peer_gone.notify_waiters();
        self.procs.peer_down(peer);
        let waiters = lock(&self.monitors).remove(peer).unwrap_or_default();
        let Ok(node) = NodeName::parse(peer) else {
            return;
        };
        let reason = down_reason(why);
        for waiter in waiters {
            let _ = waiter.send(NodeDown {
                node: node.clone(),
                reason: reason.clone(),
            });
        }
        let _ = self.events.send(NodeEvent::NodeDown {
            node,
            hidden: false,
            reason,
        });
    }

    /// Closes every BEAM connection (the node stops): the peers see it down (`noconnection`
    /// for their links and monitors of this node's pids), as when a BEAM node halts.
    pub(crate) fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Closes every BEAM connection ([`Shared::close`]) and waits, at most `bound`, until
    /// each has ended and its socket is closed, so that nothing the node does afterwards
    /// (its tasks stopped with its system, their outcomes) reaches a BEAM peer: the peers
    /// see `noconnection`, as when a BEAM node halts, not the node's own shutdown. False if
    /// some connection was still open at `bound`.
    pub(crate) async fn close_and_wait(&self, bound: Duration) -> bool {
        self.close();
        let all_gone = async {
            loop {
                let gone = self.peer_gone.notified();
                tokio::pin!(gone);
                gone.as_mut().enable(); // registered before the check: no end goes unseen
                if lock(&self.peers).is_empty() {
                    return;
                }
                gone.await;
            }
        };
        tokio::time::timeout(bound, all_gone).await.is_ok()
    }

    /// Resolves once [`Shared::close`] was called.
    pub(crate) async fn closed(&self) {
        let mut rx = self.closing.subscribe();
        let _ = rx.wait_for(|closing| *closing).await;
    }

    /// Keeps the writer queue of the connection with `peer`, for messages this node starts.
    pub(crate) fn attach(
        &self,
        peer: &str,
        tx: tokio::sync::mpsc::Sender<erl_dist::message::Message>,
    ) {
        lock(&self.conns).insert(peer.to_string(), tx);
    }

    /// The writer queue of the connection with `peer`, if it is connected.
    pub(crate) fn conn(
        &self,
        peer: &str,
    ) -> Option<tokio::sync::mpsc::Sender<erl_dist::message::Message>> {
        lock(&self.conns).get(peer).cloned()
    }

    /// Whether `peer` is a connected BEAM node.
    pub(crate) fn is_peer(&self, peer: &str) -> bool {
        lock(&self.peers).contains(peer)
    }

    /// The connected BEAM nodes, as node names.
    pub(crate) fn peer_names(&self) -> Vec<NodeName> {
        lock(&self.peers)
            .iter()
            .filter_map(|p| NodeName::parse(p).ok())
            .collect()
    }

    /// Monitors the BEAM peer `peer`: `None` if it is not connected (then the caller
    /// answers `NoConnection`, as for any unreachable node).
    pub(crate) fn monitor_peer(&self, peer: &str) -> Option<oneshot::Receiver<NodeDown>> {
        let peers = lock(&self.peers);
        if !peers.contains(peer) {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        let mut monitors = lock(&self.monitors);
        let list = monitors.entry(peer.to_string()).or_default();
        // Monitors dropped before they fired are forgotten here, so the list stays bounded
        // by the live ones.
        list.retain(|w| !w.is_closed());
        list.push(tx);
        drop(peers);
        Some(rx)
    }

    pub(crate) fn cast_fn(&self, name: &str) -> Option<CastFn> {
        lock(&self.casts).get(name).cloned()
    }

    pub(crate) fn call_fn(&self, name: &str) -> Option<CallFn> {
        lock(&self.calls).get(name).cloned()
    }

    /// Whether `name` answers BEAM nodes: an exposed actor, or the built-in `net_kernel`.
    pub(crate) fn is_exposed(&self, name: &str) -> bool {
        name == NET_KERNEL
            || lock(&self.casts).contains_key(name)
            || lock(&self.calls).contains_key(name)
            || task::supervisor(self, name).is_some()
    }
}

/// The Erlang side of a node ([`Node::erlang`](crate::Node::erlang)): which names BEAM nodes
/// reach and how their terms map to actor messages, and the BEAM nodes connected.
#[derive(Debug, Clone)]
pub struct Erlang {
    pub(crate) shared: Arc<Shared>,
}

impl Erlang {
    /// The BEAM nodes connected now, sorted.
    pub fn nodes(&self) -> Vec<String> {
        let mut nodes: Vec<String> = lock(&self.shared.peers).iter().cloned().collect();
        nodes.sort();
        nodes
    }

    /// Connects to the BEAM node `peer` (`name@host`), as `net_kernel:connect_node/1`: asks
    /// the port mapper on `host` for its port, runs the handshake and keeps the connection,
    /// with ticks, until either side goes. Returns once the connection is up; connecting to
    /// a node already connected is `Ok`.
    ///
    /// # Errors
    /// [`ErlError::Handshake`] (no such node, a wrong cookie, no answer within the
    /// handshake timeout) or [`ErlError::Connection`].
    pub async fn connect(&self, peer: &str) -> Result<(), ErlError> {
        if lock(&self.shared.peers).contains(peer) {
            return Ok(());
        }
        conn::connect(Arc::clone(&self.shared), peer).await
    }

    /// `gen_server:call({name, peer}, request)`: calls the process registered as `name` on
    /// the connected BEAM node `peer` and maps its reply to `R`, waiting at most `timeout`
    /// (then the monitor is removed and a late reply dropped). An Elixir alias
    /// (`Chat.Server`) is the atom `Elixir.Chat.Server`. [`System::call`] with a [`GenCall`]
    /// does the same through the node's usual call.
    ///
    /// # Errors
    /// [`ErlCallError`]: `peer` not connected, `noproc`, the process exited, the connection
    /// went, the timeout, a reply that does not map.
    pub async fn call<A: IntoTerm, R: FromTerm>(
        &self,
        name: &str,
        peer: &str,
        request: A,
        timeout: Duration,
    ) -> Result<R, ErlCallError> {
        let reply =
            remote::gen_call(&self.shared, peer, name, request.into_term(), timeout).await?;
        Ok(R::from_term(reply)?)
    }

    /// Lets BEAM nodes send to the actor registered as `name` here: `send({Name, Node}, T)`
    /// and `gen_server:cast({Name, Node}, T)` deliver `map(T)` to it (a cast's
    /// `{'$gen_cast', T}` is unwrapped first). A term `map` refuses is logged and dropped.
    pub fn expose_cast<M, F>(&self, name: &str, map: F)
    where
        M: ractor::Message,
        F: Fn(eetf::Term) -> Result<M, TermError> + Send + Sync + 'static,
    {
        let owned = name.to_string();
        let f: CastFn = Arc::new(move |system, term| {
            let msg = map(term).map_err(|source| ErlError::BadTerm {
                name: owned.clone(),
                source,
            })?;
            system
                .cast(owned.as_str(), msg)
                .map_err(|e| ErlError::Actor {
                    name: owned.clone(),
                    reason: e.to_string(),
                })
        });
        lock(&self.shared.casts).insert(name.to_string(), f);
    }

    /// Lets BEAM nodes `gen_server:call({Name, Node}, T)` here: `handle(system, T)` answers
    /// the reply term, typically by [`System::call`]ing the actor registered as `name` with
    /// a message made from `T` (see [`call_actor`] for that common case). An `Err` is logged
    /// and makes the caller exit with `{nodus_bad_request, T}`.
    pub fn expose_call<F, Fut>(&self, name: &str, handle: F)
    where
        F: Fn(System, eetf::Term) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<eetf::Term, ErlError>> + Send + 'static,
    {
        let f: CallFn = Arc::new(move |system, term| Box::pin(handle(system, term)));
        lock(&self.shared.calls).insert(name.to_string(), f);
    }
}

/// The common call mapping: turns the request term into `A` ([`FromTerm`]), builds the
/// actor's message with `build(A, port)`, calls the actor registered as `name` within
/// `timeout` and turns its reply into a term ([`IntoTerm`]).
///
/// # Errors
/// [`ErlError::BadTerm`] if the term is not an `A`, [`ErlError::Actor`] if the call failed.
pub async fn call_actor<A, M, R>(
    system: &System,
    name: &str,
    term: eetf::Term,
    timeout: Duration,
    build: impl FnOnce(A, ractor::RpcReplyPort<R>) -> M,
) -> Result<eetf::Term, ErlError>
where
    A: FromTerm,
    M: ractor::Message,
    R: IntoTerm + Send + 'static,
{
    let arg = A::from_term(term).map_err(|source| ErlError::BadTerm {
        name: name.to_string(),
        source,
    })?;
    let reply = system
        .call(name, |port| build(arg, port), timeout)
        .await
        .map_err(|e| ErlError::Actor {
            name: name.to_string(),
            reason: e.to_string(),
        })?;
    Ok(reply.into_term())
}
