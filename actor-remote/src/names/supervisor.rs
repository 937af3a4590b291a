//! A cluster-wide supervisor (Horde's `DynamicSupervisor`, Akka's cluster singleton): its
//! children run on any member, are reached by their global name, and are started again on
//! another member when their node goes.
//!
//! Every node that takes part starts a [`ClusterSupervisor`] with the same name and the same
//! start functions ([`ClusterSupervisorConfig::spec`]). Its children are a table every
//! member keeps (a child is a global name, the name of a start function, and a [`Restart`]);
//! members tell each other of children added and removed and exchange the whole table when a
//! session comes up. A child runs where the [placement] says: the member
//! with the highest rendezvous hash of its name among the members this node sees. A node
//! starts a child when nobody holds its global name and it is the owner; it registers the
//! started actor under the child's name, so [`Destination::global`] reaches it on any node.
//! A running child stays where it is when members join (no migration).
//!
//! **When its node goes.** A node that goes down takes its global names with it (see
//! [`Global`](super::Global)); the members recompute the owner without it, and the new owner
//! starts the child. That is a restart, counted against the restart intensity
//! ([`ClusterSupervisorConfig::intensity`], OTP's `max_restarts` in `max_seconds`) of the
//! node that restarts it, unless the node left gracefully ([`Node::shutdown`]: peers see
//! `NodeDownReason::Shutdown`): then it is a handover, not counted. A child that exits is
//! started again as its [`Restart`] says (a `Permanent` one always, a `Transient` one after an
//! abnormal exit, a `Temporary` one never); a node whose restarts of one cluster supervisor
//! exceed the intensity gives the child up: it is removed everywhere and an error is logged.
//!
//! **Consistency.** This is an AP design, as Horde's: every member decides from its own view.
//! While the view is changing (a node just went down, or a partition), a child may be
//! missing for a moment, and *during a partition each side starts its own instance* (each
//! side sees the other's node down). When the partition heals, the global names merge and
//! their conflict rule ([`Resolve`](super::Resolve), by default `KillLoser`) decides: **the
//! instance on the node whose name sorts lower keeps the name; the other is killed**, and its
//! supervisor does not restart it (the name is held). Children added or removed on one side
//! of a partition are merged by union when it heals (a removal made during the partition may
//! come back). A child is therefore *at most one per connected component*, and exactly one
//! once the cluster is whole and the tables agree.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use actor_core::Destination;
//! use actor_remote::{
//!     names::{ClusterSupervisor, ClusterSupervisorConfig},
//!     port_mapper::PortMapperServer, Cookie, Node, NodeConfig,
//! };
//! let epmd = PortMapperServer::bind("127.0.0.1:0".parse()?).await?.spawn();
//! let config = |name| NodeConfig::sname(name)
//!     .cookie(Cookie::new("mycookie").unwrap())
//!     .port_mapper(epmd.local_addr());
//! // The same supervisor, with the same start functions, on each node.
//! let spec = || ClusterSupervisorConfig::new("jobs").spec("quiet", |node: Node, _name| async move {
//!     let (actor, _) = node.spawn(None, Quiet, ()).await?;
//!     Ok(actor.get_cell())
//! });
//! let a = Node::start(config("horde_a@localhost")).await?;
//! let b = Node::start(config("horde_b@localhost")).await?;
//! let sup_a = ClusterSupervisor::start(&a, spec()).await?;
//! let sup_b = ClusterSupervisor::start(&b, spec()).await?;
//! b.connect(a.name()).await?;
//!
//! let pid = sup_a.singleton("leader", "quiet", Duration::from_secs(5)).await?;
//! // Asked again, from any node: the same one.
//! assert_eq!(sup_b.lookup_or_spawn("leader", "quiet", Duration::from_secs(5)).await?, pid);
//! b.cast(Destination::global("leader"), Hi)?;
//! # a.shutdown().await; b.shutdown().await; Ok(()) }
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Hi;
//! actor_core::serde_message!(Hi = "doc.horde.Hi");
//! # struct Quiet;
//! # impl ractor::Actor for Quiet {
//! #     type Msg = Hi; type State = (); type Arguments = ();
//! #     async fn pre_start(&self, _: ractor::ActorRef<Hi>, _: ()) -> Result<(), ractor::ActorProcessingErr> { Ok(()) }
//! # }
//! ```

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet},
    future::Future,
    sync::{Arc, Mutex, MutexGuard, PoisonError, Weak},
    time::Duration,
};

use actor_core::{Destination, ExitReason, NodeName, Pid, Restart};
use futures::future::BoxFuture;
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};

use super::{placement, GlobalError};
use crate::node::{Node, NodeEvent, WeakNode};

/// The prefix of the local name of each node's cluster supervisor server: `"nodus.horde."`
/// and the supervisor's name.
pub const SERVER_PREFIX: &str = "nodus.horde.";

/// How often a member checks, besides on every change it hears of, that each child runs
/// (by default).
pub const CHECK_INTERVAL: Duration = Duration::from_millis(250);

/// The error a start function returns.
pub type StartError = Box<dyn std::error::Error + Send + Sync>;

type StartFn =
    Arc<dyn Fn(Node, String) -> BoxFuture<'static, Result<ActorCell, StartError>> + Send + Sync>;

/// What cluster supervisors tell each other. Part of the wire protocol (its stable name is
/// `"nodus.horde"`): variants are appended, never reordered.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[doc(hidden)]
pub enum HordeMsg {
    /// The sender's whole table of children (merged by union); with `reply`, the receiver
    /// answers with its own.
    Sync {
        /// The sender.
        from: NodeName,
        /// Whether to answer.
        reply: bool,
        /// Name, start function, restart (0 permanent, 1 transient, 2 temporary).
        children: Vec<(String, String, u8)>,
    },
    /// A child was added.
    Add {
        /// The child's global name.
        name: String,
        /// Its start function.
        spec: String,
        /// Its restart, as in `Sync`.
        restart: u8,
    },
    /// A child was removed: its node stops it.
    Remove {
        /// The child's global name.
        name: String,
    },
    /// The sender started the child `name` (so a later start elsewhere is a restart, or a
    /// handover if the sender left gracefully).
    Started {
        /// The sender.
        from: NodeName,
        /// The child's global name.
        name: String,
    },
}

actor_core::serde_message!(HordeMsg = "nodus.horde");

fn restart_code(r: Restart) -> u8 {
    match r {
        Restart::Permanent => 0,
        Restart::Transient => 1,
        Restart::Temporary => 2,
    }
}

fn restart_of(code: u8) -> Restart {
    match code {
        1 => Restart::Transient,
        2 => Restart::Temporary,
        _ => Restart::Permanent,
    }
}

/// Why a [`ClusterSupervisor`] operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterSupervisorError {
    /// No start function of that name was given to this supervisor.
    #[error("no start function {spec:?} in cluster supervisor {supervisor:?}; add it with ClusterSupervisorConfig::spec, on every node")]
    UnknownSpec {
        /// The supervisor.
        supervisor: String,
        /// The start function asked for.
        spec: String,
    },
    /// [`ClusterSupervisor::start_child`] of a name already held.
    #[error("the global name {name:?} is already held by {pid}; use lookup_or_spawn to get it, or pick another name")]
    AlreadyStarted {
        /// The child's name.
        name: String,
        /// Who holds it.
        pid: Pid,
    },
    /// The child was added but no member had registered it within the timeout.
    #[error("child {name:?} was not running within {timeout:?}: its owner may still be starting it, or its start function fails (see the logs); retry, or give it longer")]
    Timeout {
        /// The child's name.
        name: String,
        /// How long it waited.
        timeout: Duration,
    },
    /// The supervisor's server did not start.
    #[error("the cluster supervisor's server did not start: {0}; is one with this name running already?")]
    Spawn(#[from] actor_core::SpawnError),
    /// The node has shut down.
    #[error("the node has shut down; start a new one")]
    NodeStopped,
}

/// The configuration of a [`ClusterSupervisor`]: its name, its start functions and its
/// restart intensity. Give every node the same.
#[derive(Clone)]
pub struct ClusterSupervisorConfig {
    name: String,
    specs: HashMap<String, StartFn>,
    max_restarts: u32,
    max_seconds: Duration,
    check_interval: Duration,
}

impl std::fmt::Debug for ClusterSupervisorConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut specs: Vec<&String> = self.specs.keys().collect();
        specs.sort();
        f.debug_struct("ClusterSupervisorConfig")
            .field("name", &self.name)
            .field("specs", &specs)
            .field("max_restarts", &self.max_restarts)
            .field("max_seconds", &self.max_seconds)
            .finish_non_exhaustive()
    }
}

impl ClusterSupervisorConfig {
    /// A supervisor called `name`, without start functions, with OTP's default intensity
    /// (3 restarts in 5 seconds).
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            specs: HashMap::new(),
            max_restarts: 3,
            max_seconds: Duration::from_secs(5),
            check_interval: CHECK_INTERVAL,
        }
    }

    /// Adds the start function `spec`: given the node and the child's global name, it
    /// spawns the child on that node and returns its cell (the supervisor registers it under
    /// the name). Every node needs the same start functions.
    #[must_use]
    pub fn spec<F, Fut>(mut self, spec: &str, start: F) -> Self
    where
        F: Fn(Node, String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<ActorCell, StartError>> + Send + 'static,
    {
        self.specs.insert(
            spec.to_string(),
            Arc::new(move |node, name| Box::pin(start(node, name))),
        );
        self
    }

    /// At most `max_restarts` restarts by this node within `max_seconds` (OTP's intensity);
    /// one more and the child is given up.
    #[must_use]
    pub fn intensity(mut self, max_restarts: u32, max_seconds: Duration) -> Self {
        self.max_restarts = max_restarts;
        self.max_seconds = max_seconds;
        self
    }

    /// How often a member checks that each child runs, besides on every change it hears of
    /// (default [`CHECK_INTERVAL`]).
    #[must_use]
    pub fn check_interval(mut self, every: Duration) -> Self {
        self.check_interval = every;
        self
    }
}

#[derive(Debug, Clone)]
struct Child {
    spec: String,
    restart: Restart,
}

#[derive(Debug)]
struct State {
    children: BTreeMap<String, Child>,
    /// Peers that run this supervisor (they sent a sync).
    members: BTreeSet<NodeName>,
    starting: HashSet<String>,
    /// Children started here, by name.
    running: HashMap<String, Pid>,
    /// The node of the last holder seen of each child.
    last_seen: HashMap<String, NodeName>,
    intensity: placement::Intensity,
}

struct Shared {
    name: String,
    server: String,
    node: WeakNode,
    me: NodeName,
    specs: HashMap<String, StartFn>,
    state: Mutex<State>,
    kick: mpsc::Sender<()>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn kick(&self) {
        // Capacity one: a check already asked for covers this one.
        let _ = self.kick.try_send(());
    }

    fn send(&self, node: &Node, peer: &NodeName, msg: HordeMsg) {
        if let Err(e) = node.cast(Destination::from((self.server.as_str(), peer)), msg) {
            tracing::debug!(%peer, error = %e.kind, "horde: a message to a peer was not sent");
        }
    }

    fn broadcast(&self, node: &Node, msg: &HordeMsg) {
        for peer in node.list() {
            self.send(node, &peer, msg.clone());
        }
    }

    fn sync_msg(&self, state: &State, reply: bool) -> HordeMsg {
        HordeMsg::Sync {
            from: self.me.clone(),
            reply,
            children: state
                .children
                .iter()
                .map(|(n, c)| (n.clone(), c.spec.clone(), restart_code(c.restart)))
                .collect(),
        }
    }

    fn on_peer(&self, msg: HordeMsg) {
        let Some(node) = self.node.upgrade() else {
            return;
        };
        let mut state = self.lock();
        match msg {
            HordeMsg::Sync {
                from,
                reply,
                children,
            } => {
                state.members.insert(from.clone());
                for (name, spec, restart) in children {
                    state.children.entry(name).or_insert(Child {
                        spec,
                        restart: restart_of(restart),
                    });
                }
                if reply {
                    self.send(&node, &from, self.sync_msg(&state, false));
                }
            }
            HordeMsg::Add {
                name,
                spec,
                restart,
            } => {
                state.children.entry(name).or_insert(Child {
                    spec,
                    restart: restart_of(restart),
                });
            }
            HordeMsg::Started { from, name } => {
                state.last_seen.insert(name, from);
            }
            HordeMsg::Remove { name } => {
                state.children.remove(&name);
                if let Some(pid) = state.running.remove(&name) {
                    stop_local(&node, &pid);
                }
            }
        }
        drop(state);
        self.kick();
    }

    /// Removes `name` everywhere (its node stops it).
    fn remove(&self, node: &Node, state: &mut State, name: &str) {
        state.children.remove(name);
        self.broadcast(
            node,
            &HordeMsg::Remove {
                name: name.to_string(),
            },
        );
    }

    /// Starts what this node owns and nobody runs.
    async fn check(self: &Arc<Self>) {
        let Some(node) = self.node.upgrade() else {
            return;
        };
        let peers = node.list();
        let global = node.global();
        let to_start: Vec<(String, Child, bool)> = {
            let mut state = self.lock();
            state.members.retain(|m| peers.contains(m));
            let members: Vec<NodeName> = std::iter::once(self.me.clone())
                .chain(state.members.iter().cloned())
                .collect();
            let mut to_start = Vec::new();
            let names: Vec<(String, Child)> = state
                .children
                .iter()
                .map(|(n, c)| (n.clone(), c.clone()))
                .collect();
            for (name, child) in names {
                let holder = global.whereis(&name);
                if let Some(pid) = &holder {
                    state.last_seen.insert(name.clone(), pid.node().clone());
                }
                let starting = state.starting.contains(&name);
                if placement::should_start(&name, &self.me, &members, holder.is_some(), starting) {
                    // A child seen before is restarted, unless its node left gracefully
                    // (a handover).
                    let restart = state
                        .last_seen
                        .get(&name)
                        .is_some_and(|n| !node.has_left(n));
                    if restart && child.restart == Restart::Temporary {
                        self.remove(&node, &mut state, &name);
                        continue;
                    }
                    to_start.push((name, child, restart));
                }
            }
            for (name, _, _) in &to_start {
                state.starting.insert(name.clone());
            }
            to_start
        };
        for (name, child, restart) in to_start {
            if restart {
                let mut state = self.lock();
                if !state.intensity.record(tokio::time::Instant::now()) {
                    tracing::error!(
                        supervisor = %self.name,
                        child = %name,
                        "horde: restart intensity reached; child given up on every node"
                    );
                    state.starting.remove(&name);
                    self.remove(&node, &mut state, &name);
                    continue;
                }
            }
            self.start_one(&node, name, child, restart).await;
        }
    }

    async fn start_one(self: &Arc<Self>, node: &Node, name: String, child: Child, restart: bool) {
        let done = |s: &Self| {
            s.lock().starting.remove(&name);
        };
        let Some(start) = self.specs.get(&child.spec).cloned() else {
            tracing::error!(supervisor = %self.name, child = %name, spec = %child.spec,
                "horde: this node has no such start function; give every node the same");
            done(self);
            return;
        };
        let cell = match start(node.clone(), name.clone()).await {
            Ok(cell) => cell,
            Err(e) => {
                tracing::warn!(supervisor = %self.name, child = %name, error = %e,
                    "horde: the start function failed");
                // A failed start counts as a restart, so a child that cannot start is given
                // up rather than retried for ever.
                let mut state = self.lock();
                state.starting.remove(&name);
                if !state.intensity.record(tokio::time::Instant::now()) {
                    tracing::error!(supervisor = %self.name, child = %name,
                        "horde: restart intensity reached; child given up on every node");
                    self.remove(node, &mut state, &name);
                }
                drop(state);
                self.kick();
                return;
            }
        };
        let pid = node.pid_of(&cell);
        match node.global().register(&name, &pid) {
            Ok(()) => {
                tracing::info!(supervisor = %self.name, child = %name, %pid, restart,
                    "horde: started child");
                {
                    let mut state = self.lock();
                    state.starting.remove(&name);
                    state.running.insert(name.clone(), pid.clone());
                    state.last_seen.insert(name.clone(), self.me.clone());
                    self.broadcast(
                        node,
                        &HordeMsg::Started {
                            from: self.me.clone(),
                            name: name.clone(),
                        },
                    );
                }
                let monitor = node.monitor(pid.clone());
                let weak = Arc::downgrade(self);
                tokio::spawn(async move {
                    let down = monitor.await;
                    if let Some(shared) = weak.upgrade() {
                        shared.exited(&name, &pid, &down.reason);
                    }
                });
            }
            Err(e) => {
                // Someone else started it meanwhile (or it died at once): ours goes.
                tracing::debug!(supervisor = %self.name, child = %name, error = %e,
                    "horde: not registered; stopping this instance");
                cell.stop(Some("shutdown".into()));
                done(self);
                if matches!(e, GlobalError::NoProc { .. }) {
                    self.kick();
                }
            }
        }
    }

    fn exited(&self, name: &str, pid: &Pid, reason: &ExitReason) {
        let Some(node) = self.node.upgrade() else {
            return;
        };
        let mut state = self.lock();
        if state.running.get(name) == Some(pid) {
            state.running.remove(name);
        }
        let held_by_other = node.global().whereis(name).is_some_and(|p| p != *pid);
        if held_by_other {
            tracing::info!(supervisor = %self.name, child = %name, %pid,
                "horde: this instance lost its name to another; not restarted");
            return;
        }
        let Some(child) = state.children.get(name) else {
            return;
        };
        let keep = match child.restart {
            Restart::Permanent => true,
            Restart::Transient => !reason.is_clean(),
            Restart::Temporary => false,
        };
        if keep {
            tracing::info!(supervisor = %self.name, child = %name, %reason, "horde: child exited; restarting");
        } else {
            self.remove(&node, &mut state, name);
        }
        drop(state);
        self.kick();
    }
}

fn stop_local(node: &Node, pid: &Pid) {
    if let Ok(cell) = node.resolve(&Destination::Pid(pid.clone())) {
        cell.stop(Some("shutdown".into()));
    }
}

/// A supervisor whose children run anywhere in the cluster: see the
/// [module documentation](self). Cheap to clone.
#[derive(Clone)]
pub struct ClusterSupervisor {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ClusterSupervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterSupervisor")
            .field("name", &self.shared.name)
            .field("node", &self.shared.me)
            .finish_non_exhaustive()
    }
}

/// The server peers' supervisors talk to.
struct Server;

impl Actor for Server {
    type Msg = HordeMsg;
    type State = Weak<Shared>;
    type Arguments = Weak<Shared>;

    async fn pre_start(
        &self,
        _: ActorRef<HordeMsg>,
        shared: Weak<Shared>,
    ) -> Result<Weak<Shared>, ActorProcessingErr> {
        Ok(shared)
    }

    async fn handle(
        &self,
        _: ActorRef<HordeMsg>,
        msg: HordeMsg,
        shared: &mut Weak<Shared>,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(shared) = shared.upgrade() {
            shared.on_peer(msg);
        }
        Ok(())
    }
}

impl ClusterSupervisor {
    /// Starts this node's part of the cluster supervisor `config.name`: a server registered
    /// locally as [`SERVER_PREFIX`] + the name, and the task that follows the node's peers and
    /// starts what this node owns. It stops with the node.
    ///
    /// # Errors
    /// [`ClusterSupervisorError::Spawn`] if the server does not start (one of that name runs).
    pub async fn start(
        node: &Node,
        config: ClusterSupervisorConfig,
    ) -> Result<ClusterSupervisor, ClusterSupervisorError> {
        let (kick, mut kicked) = mpsc::channel(1);
        let shared = Arc::new(Shared {
            server: format!("{SERVER_PREFIX}{}", config.name),
            name: config.name,
            node: node.downgrade(),
            me: node.name().clone(),
            specs: config.specs,
            state: Mutex::new(State {
                children: BTreeMap::new(),
                members: BTreeSet::new(),
                starting: HashSet::new(),
                running: HashMap::new(),
                last_seen: HashMap::new(),
                intensity: placement::Intensity::new(config.max_restarts, config.max_seconds),
            }),
            kick,
        });
        let mut events = node.events();
        node.spawn(Some(&shared.server), Server, Arc::downgrade(&shared))
            .await?;
        let peers = node.list();
        {
            let state = shared.lock();
            for peer in &peers {
                shared.send(node, peer, shared.sync_msg(&state, true));
            }
        }
        let weak = Arc::downgrade(&shared);
        let every = config.check_interval;
        let follow = tokio::spawn(async move {
            let mut interval = tokio::time::interval(every);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let event = tokio::select! {
                    // In this order, not at random: a seeded simulation replays exactly.
                    biased;
                    e = events.recv() => Some(e),
                    _ = kicked.recv() => None,
                    _ = interval.tick() => None,
                };
                let Some(shared) = weak.upgrade() else { return };
                match event {
                    Some(Ok(NodeEvent::NodeUp {
                        node: peer,
                        hidden: false,
                    })) => {
                        if let Some(node) = shared.node.upgrade() {
                            let state = shared.lock();
                            shared.send(&node, &peer, shared.sync_msg(&state, true));
                        }
                    }
                    Some(Ok(NodeEvent::NodeDown { node: peer, .. })) => {
                        shared.lock().members.remove(&peer);
                    }
                    Some(Err(broadcast::error::RecvError::Closed)) => return,
                    _ => {}
                }
                shared.check().await;
            }
        });
        node.keep_task(follow.abort_handle());
        Ok(ClusterSupervisor { shared })
    }

    /// The supervisor's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    fn node(&self) -> Result<Node, ClusterSupervisorError> {
        self.shared
            .node
            .upgrade()
            .ok_or(ClusterSupervisorError::NodeStopped)
    }

    /// Adds the child `name` (its global name) started by the start function `spec`, as
    /// `DynamicSupervisor.start_child/2`: it is placed on its owner (see the
    /// [module documentation](self)) and the call waits, at most `timeout`, until it runs.
    ///
    /// # Errors
    /// [`ClusterSupervisorError::AlreadyStarted`] if the name is held;
    /// [`ClusterSupervisorError::UnknownSpec`]; [`ClusterSupervisorError::Timeout`] (the
    /// child stays in the table and may start later); [`ClusterSupervisorError::NodeStopped`].
    pub async fn start_child(
        &self,
        name: &str,
        spec: &str,
        restart: Restart,
        timeout: Duration,
    ) -> Result<Pid, ClusterSupervisorError> {
        let node = self.node()?;
        if let Some(pid) = node.global().whereis(name) {
            return Err(ClusterSupervisorError::AlreadyStarted {
                name: name.to_string(),
                pid,
            });
        }
        self.add_and_wait(&node, name, spec, restart, timeout).await
    }

    /// The actor holding `name`, or the child `name` started with `spec` (as
    /// [`ClusterSupervisor::start_child`] with [`Restart::Permanent`]) if nobody holds it:
    /// kameo's `lookup_or_spawn`.
    ///
    /// # Errors
    /// As [`ClusterSupervisor::start_child`], except `AlreadyStarted`.
    pub async fn lookup_or_spawn(
        &self,
        name: &str,
        spec: &str,
        timeout: Duration,
    ) -> Result<Pid, ClusterSupervisorError> {
        let node = self.node()?;
        if let Some(pid) = node.global().whereis(name) {
            return Ok(pid);
        }
        self.add_and_wait(&node, name, spec, Restart::Permanent, timeout)
            .await
    }

    /// A cluster singleton, as Akka's: one instance of `spec` in the cluster under the
    /// global name `name`, restarted on another member after a crash or the loss of its node,
    /// and handed over when its node leaves gracefully. Asked on any node, it answers the
    /// one instance (starting it if nobody runs it). The consistency model (one per connected
    /// component during a partition, one once it heals) is in the
    /// [module documentation](self).
    ///
    /// # Errors
    /// As [`ClusterSupervisor::lookup_or_spawn`].
    pub async fn singleton(
        &self,
        name: &str,
        spec: &str,
        timeout: Duration,
    ) -> Result<Pid, ClusterSupervisorError> {
        self.lookup_or_spawn(name, spec, timeout).await
    }

    /// Removes the child `name` on every node; its node stops it (reason `shutdown`).
    /// Whether this node knew it.
    pub fn terminate_child(&self, name: &str) -> bool {
        let Ok(node) = self.node() else { return false };
        let mut state = self.shared.lock();
        let known = state.children.contains_key(name);
        self.shared.remove(&node, &mut state, name);
        if let Some(pid) = state.running.remove(name) {
            stop_local(&node, &pid);
        }
        known
    }

    /// The children this node knows, sorted by name, with the actor holding each name now
    /// (`None` while it is being started, or its node just went).
    pub fn which_children(&self) -> Vec<(String, Option<Pid>)> {
        let Ok(node) = self.node() else {
            return Vec::new();
        };
        let names: Vec<String> = self.shared.lock().children.keys().cloned().collect();
        let global = node.global();
        names
            .into_iter()
            .map(|n| {
                let pid = global.whereis(&n);
                (n, pid)
            })
            .collect()
    }

    async fn add_and_wait(
        &self,
        node: &Node,
        name: &str,
        spec: &str,
        restart: Restart,
        timeout: Duration,
    ) -> Result<Pid, ClusterSupervisorError> {
        if !self.shared.specs.contains_key(spec) {
            return Err(ClusterSupervisorError::UnknownSpec {
                supervisor: self.shared.name.clone(),
                spec: spec.to_string(),
            });
        }
        {
            let mut state = self.shared.lock();
            state.children.entry(name.to_string()).or_insert(Child {
                spec: spec.to_string(),
                restart,
            });
            self.shared.broadcast(
                node,
                &HordeMsg::Add {
                    name: name.to_string(),
                    spec: spec.to_string(),
                    restart: restart_code(restart),
                },
            );
        }
        self.shared.kick();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(pid) = node.global().whereis(name) {
                return Ok(pid);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ClusterSupervisorError::Timeout {
                    name: name.to_string(),
                    timeout,
                });
            }
            // Polls the name table: the child may start on any node.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
