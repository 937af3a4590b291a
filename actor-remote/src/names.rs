//! Names and groups across nodes: Erlang's `:global` ([`Global`]) and `:pg` ([`Pg`]).
//!
//! Every [`Node`] runs a name server (registered locally as `"nodus.names"`, as the BEAM's
//! `global_name_server`), which keeps this node's view of the cluster's global names and
//! process groups and talks to the name servers of its peers with plain actor messages
//! (`NamesMsg`, stable wire name `"nodus.names"`), in order over the node's sessions.
//!
//! **Who speaks for what.** A node *owns* the registrations and memberships of its own actors:
//! only it adds them, and it tells its connected peers (register, unregister, join, leave).
//! When a session comes up (at first, or after a partition heals) each side sends the other
//! everything it owns and asks for the same back, and the receiver replaces what it knew of
//! that node. A node that goes down takes its names and members with it on every node; an
//! actor that exits takes its own (the name server monitors it).
//!
//! **Conflicts.** Two actors holding one name after a merge are resolved by [`Resolve`], on
//! every node the same way: by default the actor on the node whose name sorts lower keeps
//! it and the other is killed, as `:global`'s default `random_exit_name/3` (not random). The
//! merge logic is sans-IO in [`table`] and [`groups`], with unit tests (and a property test
//! that merging in any order converges).
//!
//! **Supervision across nodes.** [`ClusterSupervisor`] (in [`supervisor`]) builds on both:
//! its children run on any member, under a global name, and are started again on a survivor
//! when their node goes; [`placement`] is its sans-IO decision logic.
//!
//! **A global name as a destination.** [`Destination::global`] (`{:global, name}`) works
//! wherever a destination does: `cast`, `call`, `monitor`, `Context::monitor` and the
//! `TaskSupervisor` functions resolve it to its pid when they run.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use actor_core::Destination;
//! use actor_remote::{port_mapper::PortMapperServer, Cookie, Node, NodeConfig};
//! let epmd = PortMapperServer::bind("127.0.0.1:0".parse()?).await?.spawn();
//! let config = |name| NodeConfig::sname(name)
//!     .cookie(Cookie::new("mycookie").unwrap())
//!     .port_mapper(epmd.local_addr());
//! let a = Node::start(config("names_a@localhost")).await?;
//! let b = Node::start(config("names_b@localhost")).await?;
//! b.connect(a.name()).await?;
//!
//! let (actor, _) = a.spawn(None, Quiet, ()).await?;
//! let pid = a.pid_of(&actor.get_cell());
//! a.global().register("leader", &pid)?;
//! a.pg().join("workers", &pid)?;
//! a.global().sync(Duration::from_secs(5)).await?; // b's tables agree with a's
//!
//! assert_eq!(b.global().whereis("leader"), Some(pid.clone()));
//! assert_eq!(b.pg().members("workers"), [pid.clone()]);
//! assert!(b.pg().local_members("workers").is_empty());
//! b.cast(Destination::global("leader"), Hi)?; // `{:global, "leader"}`, from b to a
//! # a.shutdown().await; b.shutdown().await; Ok(()) }
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Hi;
//! actor_core::serde_message!(Hi = "doc.names.Hi");
//! # struct Quiet;
//! # impl ractor::Actor for Quiet {
//! #     type Msg = Hi; type State = (); type Arguments = ();
//! #     async fn pre_start(&self, _: ractor::ActorRef<Hi>, _: ()) -> Result<(), ractor::ActorProcessingErr> { Ok(()) }
//! # }
//! ```

pub mod groups;
pub mod placement;
pub mod supervisor;
pub mod table;

use std::{
    collections::{HashMap, HashSet},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak,
    },
    time::Duration,
};

use actor_core::{Destination, NodeName, Pid, SendErrorKind, System, WeakSystem};
use ractor::{Actor, ActorProcessingErr, ActorRef, Message};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, Notify};

pub use self::groups::{GroupChange, GroupEvent, ScopeGroups};
pub use self::supervisor::{
    ClusterSupervisor, ClusterSupervisorConfig, ClusterSupervisorError, StartError,
};
pub use self::table::{NameConflict, Resolve};
use self::{
    groups::Groups,
    table::{NameEffect, NameTable, Taken},
};
use crate::node::{Node, NodeEvent, WeakNode};

/// The name the name server is registered under on each node.
pub const SERVER: &str = "nodus.names";

/// The default `:pg` scope.
pub const DEFAULT_SCOPE: &str = "pg";

/// How many events a [`GroupEvents`] or a [`Global::conflicts`] receiver may fall behind
/// before it misses some (and is told so).
pub const EVENT_CAPACITY: usize = 1024;

/// What name servers tell each other. Part of the wire protocol (its stable name is
/// `"nodus.names"`): variants are appended, never reordered.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[doc(hidden)]
pub enum NamesMsg {
    /// Everything `from` owns; it replaces what the receiver knew of `from`. With `reply`,
    /// the receiver answers with its own (`reply: false`).
    Sync {
        /// The sender.
        from: NodeName,
        /// Whether the receiver answers with its own.
        reply: bool,
        /// Its global names.
        names: Vec<(String, Pid)>,
        /// Its memberships: scope, group, pids.
        groups: Vec<(String, String, Vec<Pid>)>,
    },
    /// `from` registered `name` for its actor `pid`.
    Register {
        /// The sender.
        from: NodeName,
        /// The name.
        name: String,
        /// The actor.
        pid: Pid,
    },
    /// `name` no longer names `pid`.
    Unregister {
        /// The sender.
        from: NodeName,
        /// The name.
        name: String,
        /// The actor that held it.
        pid: Pid,
    },
    /// `from`'s actors `pids` joined a group.
    Join {
        /// The sender.
        from: NodeName,
        /// The scope.
        scope: String,
        /// The group.
        group: String,
        /// The actors.
        pids: Vec<Pid>,
    },
    /// `from`'s actors `pids` left a group (one instance each).
    Leave {
        /// The sender.
        from: NodeName,
        /// The scope.
        scope: String,
        /// The group.
        group: String,
        /// The actors.
        pids: Vec<Pid>,
    },
    /// Asks for the digest of the receiver's tables ([`Global::sync`]).
    DigestRequest {
        /// The sender.
        from: NodeName,
        /// Matches the answer to the question.
        nonce: u64,
    },
    /// The answer to a `DigestRequest`.
    Digest {
        /// The sender.
        from: NodeName,
        /// The question's nonce.
        nonce: u64,
        /// The digest of its names and groups.
        digest: u64,
    },
}

actor_core::serde_message!(NamesMsg = "nodus.names");

/// Why a [`Global`] operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GlobalError {
    /// The name is held by another actor (`:global.register_name/2`'s `:no`).
    #[error(
        "the global name {name:?} is held by {holder}; unregister it first, or pick another name"
    )]
    Taken {
        /// The name.
        name: String,
        /// Who holds it.
        holder: Pid,
    },
    /// Only a node's own actors can be registered or joined there.
    #[error("{pid} is not an actor of this node; register it on its own node ({})", pid.node())]
    NotLocal {
        /// The actor.
        pid: Pid,
    },
    /// The actor is not alive.
    #[error("no process {pid}; register a running actor")]
    NoProc {
        /// The actor.
        pid: Pid,
    },
    /// [`Global::sync`] ran out of time before every connected node agreed.
    #[error("the name tables of {behind:?} did not agree with this node's within {timeout:?}; they may still be merging (retry), or be unreachable")]
    SyncTimeout {
        /// How long it waited.
        timeout: Duration,
        /// The nodes that had not agreed.
        behind: Vec<NodeName>,
    },
    /// The node has shut down.
    #[error("the node has shut down; start a new one")]
    NodeStopped,
}

/// Why a [`Pg`] operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PgError {
    /// Only a node's own actors join or leave there, as `:pg`'s `{:nolocal, pid}`.
    #[error("{pid} is not an actor of this node; join or leave it on its own node ({})", pid.node())]
    NotLocal {
        /// The actor.
        pid: Pid,
    },
    /// The actor is not alive.
    #[error("no process {pid}; only running actors join groups")]
    NoProc {
        /// The actor.
        pid: Pid,
    },
    /// A monitor fell more than [`EVENT_CAPACITY`] events behind and missed some.
    #[error("the group monitor missed {missed} events; read the members again and carry on")]
    Lagged {
        /// How many.
        missed: u64,
    },
    /// The node has shut down.
    #[error("the node has shut down; start a new one")]
    NodeStopped,
}

/// What the name server keeps: the tables and the actors it watches.
#[derive(Debug)]
struct State {
    names: NameTable,
    groups: Groups,
    watched: HashSet<Pid>,
}

/// One node's names and groups, shared by the API handles, the name server actor and the
/// node-event task.
pub(crate) struct Shared {
    me: NodeName,
    system: WeakSystem,
    node: OnceLock<WeakNode>,
    state: Mutex<State>,
    conflicts: Lazy<NameConflict>,
    group_events: Lazy<GroupEvent>,
    digests: Mutex<HashMap<NodeName, (u64, u64)>>,
    digest_arrived: Notify,
    nonce: AtomicU64,
    server: Mutex<Option<ActorRef<NamesMsg>>>,
}

/// A broadcast channel of [`EVENT_CAPACITY`] made at its first subscriber: its buffer is the
/// capacity's slots, allocated at once (~100 KiB each for the two of every node), and most
/// nodes never subscribe. A receiver sees only what is sent after it subscribed anyway, so
/// events sent before any subscriber are dropped as they would be.
struct Lazy<T>(OnceLock<broadcast::Sender<T>>);

impl<T> Default for Lazy<T> {
    fn default() -> Self {
        Self(OnceLock::new())
    }
}

impl<T: Clone> Lazy<T> {
    fn send(&self, event: T) {
        if let Some(tx) = self.0.get() {
            let _ = tx.send(event);
        }
    }

    fn subscribe(&self) -> broadcast::Receiver<T> {
        self.0
            .get_or_init(|| broadcast::channel(EVENT_CAPACITY).0)
            .subscribe()
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Names")
            .field("node", &self.me)
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// The names of `system`'s node; the server starts with [`start`].
    pub(crate) fn new(system: &System) -> Arc<Self> {
        let shared = Arc::new(Shared {
            me: system.node().clone(),
            system: system.downgrade(),
            node: OnceLock::new(),
            state: Mutex::new(State {
                names: NameTable::new(system.node().clone(), Resolve::default()),
                groups: Groups::default(),
                watched: HashSet::new(),
            }),
            conflicts: Lazy::default(),
            group_events: Lazy::default(),
            digests: Mutex::new(HashMap::new()),
            digest_arrived: Notify::new(),
            nonce: AtomicU64::new(0),
            server: Mutex::new(None),
        });
        let weak = Arc::downgrade(&shared);
        let resolver: actor_core::transport::GlobalResolver = Arc::new(move |name: &str| {
            weak.upgrade()
                .and_then(|s| s.lock().names.whereis(name).cloned())
        });
        if actor_core::transport::install_global_resolver(system, resolver).is_err() {
            tracing::error!("internal: the new system already had a global name resolver");
        }
        shared
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn system(&self) -> Option<System> {
        self.system.upgrade()
    }

    /// Whether `node` is a visible peer now: without listing them all (a name server gets a
    /// sync from each peer that comes up, so a list per sync would cost a mesh of n nodes
    /// n³ names).
    fn is_peer(&self, node: &NodeName) -> bool {
        self.node
            .get()
            .and_then(WeakNode::upgrade)
            .is_some_and(|n| n.is_visible(node))
    }

    /// Whether the session with `peer` is this node's first (`Node::is_first_session`).
    fn is_first_session(&self, peer: &NodeName) -> bool {
        self.node
            .get()
            .and_then(WeakNode::upgrade)
            .is_some_and(|n| n.is_first_session(peer))
    }

    fn peers(&self) -> Vec<NodeName> {
        self.node
            .get()
            .and_then(WeakNode::upgrade)
            .map(|n| n.list())
            .unwrap_or_default()
    }

    /// Stops the server with the node.
    pub(crate) fn stop(&self) {
        if let Some(server) = self
            .server
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            server.stop(None);
        }
    }

    /// Sends `msg` to the name server of `peer`. Called with the state locked, so messages
    /// leave in the order of the changes they describe.
    fn send(&self, system: &System, peer: &NodeName, msg: NamesMsg) {
        if let Err(e) = system.cast(Destination::from((SERVER, peer)), msg) {
            tracing::debug!(%peer, error = %e.kind, "names: a message to a peer was not sent");
        }
    }

    fn broadcast(&self, system: &System, msg: &NamesMsg) {
        for peer in self.peers() {
            self.send(system, &peer, msg.clone());
        }
    }

    fn sync_msg(&self, state: &State, reply: bool) -> NamesMsg {
        NamesMsg::Sync {
            from: self.me.clone(),
            reply,
            names: state
                .names
                .owned()
                .into_iter()
                .map(|(n, p)| (n.to_string(), p))
                .collect(),
            groups: state
                .groups
                .owned(&self.me)
                .into_iter()
                .map(|(s, g, p)| (s.to_string(), g.to_string(), p))
                .collect(),
        }
    }

    fn owns_any(me: &NodeName, state: &State) -> bool {
        state.names.entries().any(|(_, p)| p.node() == me)
            || state.groups.owned_nodes().contains(me)
    }

    fn digest(state: &State) -> u64 {
        state.names.digest() ^ state.groups.digest().rotate_left(1)
    }

    /// Watches a local actor, once: when it exits, its names and memberships go.
    fn watch(self: &Arc<Self>, state: &mut State, system: &System, pid: &Pid) {
        if !state.watched.insert(pid.clone()) {
            return;
        }
        let monitor = system.monitor(pid.clone());
        let (weak, pid) = (Arc::downgrade(self), pid.clone());
        tokio::spawn(async move {
            let _ = monitor.await;
            if let Some(shared) = weak.upgrade() {
                shared.local_exit(&pid);
            }
        });
    }

    fn local_exit(&self, pid: &Pid) {
        let Some(system) = self.system() else { return };
        let mut state = self.lock();
        state.watched.remove(pid);
        for name in state.names.exited(pid) {
            self.broadcast(
                &system,
                &NamesMsg::Unregister {
                    from: self.me.clone(),
                    name: name.to_string(),
                    pid: pid.clone(),
                },
            );
        }
        for event in state.groups.exited(pid) {
            self.broadcast(
                &system,
                &NamesMsg::Leave {
                    from: self.me.clone(),
                    scope: event.scope.to_string(),
                    group: event.group.to_string(),
                    pids: event.pids.clone(),
                },
            );
            self.group_events.send(event);
        }
    }

    /// A peer came up: it gets what this node owns, and is asked for what it owns (`reply`).
    ///
    /// Not sent on a first session with the peer when this node owns nothing: the peer then
    /// learns nothing from it, and sends its own sync if it owns something. The ask is for a
    /// reconnect, where the peer's sync may have come before this node purged the peer's
    /// previous session (the peer's answer restores what the purge removed); on a first
    /// session there is nothing to purge. A mesh of a thousand nodes without names makes half
    /// a million sessions: this spares a million messages, about a tenth of its CPU.
    fn node_up(&self, peer: &NodeName) {
        let Some(system) = self.system() else { return };
        let first = self.is_first_session(peer);
        let state = self.lock();
        if first && !Self::owns_any(&self.me, &state) {
            return;
        }
        self.send(&system, peer, self.sync_msg(&state, true));
    }

    fn node_down(&self, peer: &NodeName) {
        let mut state = self.lock();
        let names = state.names.node_down(peer);
        let events = state.groups.node_down(peer);
        tracing::debug!(%peer, names, groups = events.len(), "names: purged a node that went down");
        for event in events {
            self.group_events.send(event);
        }
    }

    /// After missing node events: drop what nodes no longer connected owned, and ask every
    /// connected one for all it owns.
    fn resync(&self) {
        let Some(system) = self.system() else { return };
        let peers = self.peers();
        // (Asked before the names' lock is taken: the node's is never taken inside it.)
        let first: Vec<bool> = peers.iter().map(|p| self.is_first_session(p)).collect();
        let mut state = self.lock();
        let stale: HashSet<NodeName> = state
            .names
            .entries()
            .map(|(_, p)| p.node().clone())
            .chain(state.groups.owned_nodes())
            .filter(|n| *n != self.me && !peers.contains(n))
            .collect();
        for node in stale {
            state.names.node_down(&node);
            for event in state.groups.node_down(&node) {
                self.group_events.send(event);
            }
        }
        // As on a node-up: a first session needs no sync from a node that owns nothing.
        let owns = Self::owns_any(&self.me, &state);
        for (peer, first) in peers.iter().zip(&first) {
            if !owns && *first {
                continue;
            }
            self.send(&system, peer, self.sync_msg(&state, true));
        }
    }

    fn apply(&self, system: &System, effects: Vec<NameEffect>) {
        for effect in effects {
            match effect {
                NameEffect::Kill(conflict) => {
                    tracing::info!(
                        name = %conflict.name,
                        pid = %conflict.loser,
                        "global: Name conflict terminating {{{:?}, {}}}",
                        conflict.name,
                        conflict.loser
                    );
                    if let Ok(cell) = system.resolve(&Destination::Pid(conflict.loser.clone())) {
                        cell.kill();
                    }
                    self.conflicts.send(conflict);
                }
                NameEffect::Notify(conflict) => {
                    tracing::info!(
                        name = %conflict.name,
                        pid = %conflict.loser,
                        "global: name conflict, {} unregistered",
                        conflict.loser
                    );
                    self.conflicts.send(conflict);
                }
                NameEffect::Dropped { name, pid } => self.broadcast(
                    system,
                    &NamesMsg::Unregister {
                        from: self.me.clone(),
                        name: name.to_string(),
                        pid,
                    },
                ),
            }
        }
    }

    /// A message from a peer's name server.
    fn on_peer(&self, msg: NamesMsg) {
        let Some(system) = self.system() else { return };
        // A message that was on its way when its session went down may be handled after
        // the node-down purge: what it adds would stay until the node came back. Additions
        // from nodes not connected are dropped (the sync on reconnecting brings them).
        if let NamesMsg::Sync { from, .. }
        | NamesMsg::Register { from, .. }
        | NamesMsg::Join { from, .. } = &msg
        {
            if !self.is_peer(from) {
                tracing::debug!(peer = %from, "names: dropped an addition from a node not connected");
                return;
            }
        }
        let mut state = self.lock();
        match msg {
            NamesMsg::Sync {
                from,
                reply,
                names,
                groups,
            } => {
                tracing::debug!(peer = %from, reply, names = names.len(), groups = groups.len(), "names: sync from a peer");
                let names = names.into_iter().map(|(n, p)| (n.into(), p)).collect();
                let effects = state.names.sync_from(&from, names);
                let groups = groups
                    .into_iter()
                    .map(|(s, g, p)| (s.into(), g.into(), p))
                    .collect();
                for event in state.groups.sync_from(&from, groups) {
                    self.group_events.send(event);
                }
                self.apply(&system, effects);
                // The answer is what `from` may have lost to a node-down it had not handled
                // yet when our own sync came; owning nothing, there is nothing to lose (and
                // a mesh of nodes without names sends half the messages).
                if reply && Self::owns_any(&self.me, &state) {
                    self.send(&system, &from, self.sync_msg(&state, false));
                }
            }
            NamesMsg::Register { from, name, pid } => {
                let effects = state.names.merge(&from, name.into(), pid);
                self.apply(&system, effects);
            }
            NamesMsg::Unregister { name, pid, .. } => {
                state.names.unregister_if(&name, &pid);
            }
            NamesMsg::Join {
                from,
                scope,
                group,
                pids,
            } => {
                let pids: Vec<Pid> = pids.into_iter().filter(|p| *p.node() == from).collect();
                if !pids.is_empty() && from != self.me {
                    let event = state.groups.join(&scope.into(), &group.into(), pids);
                    self.group_events.send(event);
                }
            }
            NamesMsg::Leave {
                from,
                scope,
                group,
                pids,
            } => {
                let pids: Vec<Pid> = pids.into_iter().filter(|p| *p.node() == from).collect();
                if from != self.me {
                    if let Some(event) = state.groups.leave(&scope, &group, &pids) {
                        self.group_events.send(event);
                    }
                }
            }
            NamesMsg::DigestRequest { from, nonce } => {
                let digest = Self::digest(&state);
                self.send(
                    &system,
                    &from,
                    NamesMsg::Digest {
                        from: self.me.clone(),
                        nonce,
                        digest,
                    },
                );
            }
            NamesMsg::Digest {
                from,
                nonce,
                digest,
            } => {
                drop(state);
                self.digests
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(from, (nonce, digest));
                self.digest_arrived.notify_waiters();
            }
        }
    }
}

/// The name server: the actor peers' name servers talk to.
struct Server;

impl Actor for Server {
    type Msg = NamesMsg;
    type State = Weak<Shared>;
    type Arguments = Weak<Shared>;

    async fn pre_start(
        &self,
        _: ActorRef<NamesMsg>,
        shared: Weak<Shared>,
    ) -> Result<Weak<Shared>, ActorProcessingErr> {
        Ok(shared)
    }

    async fn handle(
        &self,
        _: ActorRef<NamesMsg>,
        msg: NamesMsg,
        shared: &mut Weak<Shared>,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(shared) = shared.upgrade() {
            shared.on_peer(msg);
        }
        Ok(())
    }
}

/// Starts `node`'s name server and the task that follows its peers.
pub(crate) async fn start(node: &Node) -> Result<(), actor_core::SpawnError> {
    let shared = node.names().clone();
    let _ = shared.node.set(node.downgrade());
    // Subscribed before anything can connect, so no NodeUp is missed.
    let mut events = node.events();
    let (server, _) = node
        .system()
        .spawn(Some(SERVER), Server, Arc::downgrade(&shared))
        .await?;
    *shared.server.lock().unwrap_or_else(PoisonError::into_inner) = Some(server);
    let weak = Arc::downgrade(&shared);
    let follow = tokio::spawn(async move {
        loop {
            let event = events.recv().await;
            let Some(shared) = weak.upgrade() else { return };
            match event {
                Ok(NodeEvent::NodeUp {
                    node,
                    hidden: false,
                }) => shared.node_up(&node),
                Ok(NodeEvent::NodeDown { node, .. }) => shared.node_down(&node),
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(
                        missed,
                        "names: missed node events; resyncing with every peer"
                    );
                    shared.resync();
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    node.keep_task(follow.abort_handle());
    Ok(())
}

/// This node's view of the cluster's global names, as Erlang's `:global`: from
/// [`Node::global`].
#[derive(Debug, Clone)]
pub struct Global {
    shared: Arc<Shared>,
}

impl Global {
    fn system(&self) -> Result<System, GlobalError> {
        self.shared.system().ok_or(GlobalError::NodeStopped)
    }

    /// Registers `name` for the local actor `pid` on every connected node (and every node
    /// that connects later), as `:global.register_name/2`. Registering a name again for its
    /// holder succeeds. The name goes when the actor exits or this node goes down.
    ///
    /// # Errors
    /// [`GlobalError::Taken`] (`:no`) when another actor holds it, as far as this node knows
    /// (two nodes registering one name at the same moment are resolved as a merge conflict);
    /// [`GlobalError::NotLocal`] for an actor of another node; [`GlobalError::NoProc`] for
    /// one not alive.
    pub fn register(&self, name: &str, pid: &Pid) -> Result<(), GlobalError> {
        let system = self.system()?;
        local_alive(&system, pid).map_err(|e| match e {
            Liveness::NotLocal => GlobalError::NotLocal { pid: pid.clone() },
            Liveness::Dead => GlobalError::NoProc { pid: pid.clone() },
        })?;
        let mut state = self.shared.lock();
        state
            .names
            .register(name.into(), pid.clone())
            .map_err(|Taken { holder }| GlobalError::Taken {
                name: name.to_string(),
                holder,
            })?;
        self.shared.watch(&mut state, &system, pid);
        self.shared.broadcast(
            &system,
            &NamesMsg::Register {
                from: self.shared.me.clone(),
                name: name.to_string(),
                pid: pid.clone(),
            },
        );
        Ok(())
    }

    /// Removes `name` everywhere, as `:global.unregister_name/1`; returns who held it.
    pub fn unregister(&self, name: &str) -> Option<Pid> {
        let system = self.shared.system()?;
        let mut state = self.shared.lock();
        let pid = state.names.unregister(name)?;
        self.shared.broadcast(
            &system,
            &NamesMsg::Unregister {
                from: self.shared.me.clone(),
                name: name.to_string(),
                pid: pid.clone(),
            },
        );
        Some(pid)
    }

    /// The actor holding `name`, as `:global.whereis_name/1` (`None` for `:undefined`).
    pub fn whereis(&self, name: &str) -> Option<Pid> {
        self.shared.lock().names.whereis(name).cloned()
    }

    /// Every global name this node knows, sorted, as `:global.registered_names/0`.
    pub fn registered_names(&self) -> Vec<String> {
        self.shared
            .lock()
            .names
            .names()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    /// How this node resolves name conflicts; every node of a cluster must use the same.
    pub fn resolve(&self) -> Resolve {
        self.shared.lock().names.resolve()
    }

    /// Sets how this node resolves later name conflicts (default [`Resolve::KillLoser`]);
    /// set the same on every node.
    pub fn set_resolve(&self, resolve: Resolve) {
        self.shared.lock().names.set_resolve(resolve);
    }

    /// The conflicts this node resolves about its own actors from now on (the loser is
    /// killed, or told, as [`Resolve`] says). A receiver more than [`EVENT_CAPACITY`] behind
    /// misses some and is told so by `recv`.
    pub fn conflicts(&self) -> broadcast::Receiver<NameConflict> {
        self.shared.conflicts.subscribe()
    }

    /// Waits until every connected node's names and groups agree with this node's, as
    /// `:global.sync/0`: asks each for a digest of its tables and compares, again until they
    /// agree or `timeout` passes.
    ///
    /// # Errors
    /// [`GlobalError::SyncTimeout`] naming the nodes that did not agree in time;
    /// [`GlobalError::NodeStopped`].
    pub async fn sync(&self, timeout: Duration) -> Result<(), GlobalError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let shared = &self.shared;
        loop {
            let system = self.system()?;
            let peers = shared.peers();
            let nonce = shared.nonce.fetch_add(1, Ordering::Relaxed);
            for peer in &peers {
                shared.send(
                    &system,
                    peer,
                    NamesMsg::DigestRequest {
                        from: shared.me.clone(),
                        nonce,
                    },
                );
            }
            // One round: until every peer answered this nonce, or 200 ms.
            let round = (tokio::time::Instant::now() + Duration::from_millis(200)).min(deadline);
            let behind = loop {
                let notified = shared.digest_arrived.notified();
                let mine = Shared::digest(&shared.lock());
                let behind: Vec<NodeName> = {
                    let digests = shared
                        .digests
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner);
                    peers
                        .iter()
                        .filter(|p| digests.get(*p) != Some(&(nonce, mine)))
                        .cloned()
                        .collect()
                };
                if behind.is_empty() || tokio::time::Instant::now() >= round {
                    break behind;
                }
                let _ = tokio::time::timeout_at(round, notified).await;
            };
            if behind.is_empty() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(GlobalError::SyncTimeout { timeout, behind });
            }
        }
    }
}

/// One scope of process groups, as `:pg` with a scope: from [`Node::pg`] (scope `"pg"`) or
/// [`Node::pg_scope`]. A scope needs no start: every node keeps every scope its actors use.
#[derive(Debug, Clone)]
pub struct Pg {
    shared: Arc<Shared>,
    scope: Arc<str>,
}

/// The result of [`Pg::cast`]: how many members the message went to, and which refused.
#[derive(Debug)]
pub struct GroupCast {
    /// Members the message was handed to (a remote one may still be gone on arrival).
    pub sent: usize,
    /// Members it could not be sent to, and why.
    pub failed: Vec<(Pid, SendErrorKind)>,
}

/// Join and leave events of a scope or a group, from [`Pg::monitor_scope`] or
/// [`Pg::monitor`]; dropping it is the demonitor.
#[derive(Debug)]
pub struct GroupEvents {
    rx: broadcast::Receiver<GroupEvent>,
    scope: Arc<str>,
    group: Option<Arc<str>>,
}

impl GroupEvents {
    /// The next event, as `{ref, :join | :leave, group, pids}`.
    ///
    /// # Errors
    /// [`PgError::Lagged`] when more than [`EVENT_CAPACITY`] events went unread (read the
    /// members again; the next `recv` goes on); [`PgError::NodeStopped`].
    pub async fn recv(&mut self) -> Result<GroupEvent, PgError> {
        loop {
            match self.rx.recv().await {
                Ok(event) => {
                    if event.scope == self.scope
                        && self.group.as_ref().is_none_or(|g| *g == event.group)
                    {
                        return Ok(event);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    return Err(PgError::Lagged { missed })
                }
                Err(broadcast::error::RecvError::Closed) => return Err(PgError::NodeStopped),
            }
        }
    }
}

impl Pg {
    fn system(&self) -> Result<System, PgError> {
        self.shared.system().ok_or(PgError::NodeStopped)
    }

    fn check(&self, system: &System, pid: &Pid) -> Result<(), PgError> {
        local_alive(system, pid).map_err(|e| match e {
            Liveness::NotLocal => PgError::NotLocal { pid: pid.clone() },
            Liveness::Dead => PgError::NoProc { pid: pid.clone() },
        })
    }

    /// The scope's name.
    pub fn scope(&self) -> &str {
        &self.scope
    }

    /// Adds the local actor `pid` to `group`, as `:pg.join/3`; joining twice lists it twice.
    /// It leaves when it exits.
    ///
    /// # Errors
    /// [`PgError::NotLocal`] for an actor of another node (`{:nolocal, pid}`),
    /// [`PgError::NoProc`] for one not alive.
    pub fn join(&self, group: &str, pid: &Pid) -> Result<(), PgError> {
        let system = self.system()?;
        self.check(&system, pid)?;
        let mut state = self.shared.lock();
        let event = state
            .groups
            .join(&self.scope, &group.into(), vec![pid.clone()]);
        self.shared.watch(&mut state, &system, pid);
        self.shared.broadcast(
            &system,
            &NamesMsg::Join {
                from: self.shared.me.clone(),
                scope: self.scope.to_string(),
                group: group.to_string(),
                pids: vec![pid.clone()],
            },
        );
        self.shared.group_events.send(event);
        Ok(())
    }

    /// Removes one instance of the local actor `pid` from `group`, as `:pg.leave/3`: `false`
    /// for `:not_joined`.
    ///
    /// # Errors
    /// [`PgError::NotLocal`] for an actor of another node.
    pub fn leave(&self, group: &str, pid: &Pid) -> Result<bool, PgError> {
        let system = self.system()?;
        if !system.is_local(pid.node()) {
            return Err(PgError::NotLocal { pid: pid.clone() });
        }
        let mut state = self.shared.lock();
        let Some(event) = state
            .groups
            .leave(&self.scope, group, std::slice::from_ref(pid))
        else {
            return Ok(false);
        };
        self.shared.broadcast(
            &system,
            &NamesMsg::Leave {
                from: self.shared.me.clone(),
                scope: self.scope.to_string(),
                group: group.to_string(),
                pids: vec![pid.clone()],
            },
        );
        self.shared.group_events.send(event);
        Ok(true)
    }

    /// The members of `group` on every connected node, as `:pg.get_members/2` (order
    /// unspecified).
    pub fn members(&self, group: &str) -> Vec<Pid> {
        self.shared.lock().groups.members(&self.scope, group)
    }

    /// The members of `group` on this node, as `:pg.get_local_members/2`.
    pub fn local_members(&self, group: &str) -> Vec<Pid> {
        let mut members = self.members(group);
        members.retain(|p| *p.node() == self.shared.me);
        members
    }

    /// The groups of this scope that have members, sorted, as `:pg.which_groups/1`.
    pub fn which_groups(&self) -> Vec<String> {
        self.shared
            .lock()
            .groups
            .which_groups(&self.scope)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    /// Every group of the scope with its members, and the events from then on, as
    /// `:pg.monitor_scope/1`.
    pub fn monitor_scope(&self) -> (ScopeGroups, GroupEvents) {
        let state = self.shared.lock(); // no event between the snapshot and the subscription
        let events = GroupEvents {
            rx: self.shared.group_events.subscribe(),
            scope: self.scope.clone(),
            group: None,
        };
        (state.groups.scope(&self.scope), events)
    }

    /// The members of `group`, and its events from then on, as `:pg.monitor/2`.
    pub fn monitor(&self, group: &str) -> (Vec<Pid>, GroupEvents) {
        let state = self.shared.lock();
        let events = GroupEvents {
            rx: self.shared.group_events.subscribe(),
            scope: self.scope.clone(),
            group: Some(group.into()),
        };
        (state.groups.members(&self.scope, group), events)
    }

    /// Casts `msg` to every member of `group` (each instance once per join), as one call:
    /// local members get it without serialization, remote ones over their node's session.
    pub fn cast<M: Message + Clone>(&self, group: &str, msg: M) -> GroupCast {
        let mut result = GroupCast {
            sent: 0,
            failed: Vec::new(),
        };
        let Some(system) = self.shared.system() else {
            return result;
        };
        for pid in self.members(group) {
            match system.cast(&pid, msg.clone()) {
                Ok(()) => result.sent += 1,
                Err(e) => result.failed.push((pid, e.kind)),
            }
        }
        result
    }
}

enum Liveness {
    NotLocal,
    Dead,
}

fn local_alive(system: &System, pid: &Pid) -> Result<(), Liveness> {
    if !system.is_local(pid.node()) {
        return Err(Liveness::NotLocal);
    }
    system
        .resolve(&Destination::Pid(pid.clone()))
        .map(|_| ())
        .map_err(|_| Liveness::Dead)
}

impl Node {
    /// The cluster's global names as this node sees them, as Erlang's `:global`.
    pub fn global(&self) -> Global {
        Global {
            shared: self.names().clone(),
        }
    }

    /// The default process-group scope (`"pg"`), as Erlang's `:pg`.
    pub fn pg(&self) -> Pg {
        self.pg_scope(DEFAULT_SCOPE)
    }

    /// A process-group scope, as `:pg` with a scope name. Scopes are independent.
    pub fn pg_scope(&self, scope: &str) -> Pg {
        Pg {
            shared: self.names().clone(),
            scope: scope.into(),
        }
    }
}
