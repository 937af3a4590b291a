//! Named nodes: start, connect, ping, list, monitor, and the full mesh.
//!
//! # Contract
//!
//! A [`Node`] is a value: several can live in one process (fast tests, simulations), or one
//! per OS process. Each has a name (`name@host`, short or long as the BEAM's rules say), a
//! cookie, a listening socket on an OS-chosen port, and a registration with the host's port
//! mapper (epmd-compatible; the node starts an embedded one when none answers, as
//! `erl -sname` starts epmd). It derefs to its [`System`], so everything in `actor-core`
//! works on it.
//!
//! Between two nodes there is at most one session. A connection is made on demand (by
//! [`Node::ping`], [`Node::connect`], [`Node::monitor_node`]) and is authenticated by the
//! cookie's challenge/response; a wrong cookie is `Pang` for the initiator and a logged
//! rejection on the acceptor. With `connect_all` (the default) a node connects to the
//! visible nodes its new peers know, so nodes that meet through a third form a full mesh.
//! Hidden nodes stay out of [`Node::list`] and of the mesh.
//!
//! Failure detection: a session closes when its TCP connection closes (a killed node is seen
//! at once) or when the peer has been silent for `tick_time` (a paused or partitioned node,
//! reason [`NodeDownReason::TickTimeout`]). Each [`Node::monitor_node`] delivers exactly one
//! [`NodeDown`]; [`Node::events`] streams every `NodeUp` / `NodeDown`.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use actor_remote::{port_mapper::PortMapperServer, Cookie, Node, NodeConfig, Ping};
//! // Tests and this example use their own port mapper on an OS-chosen port.
//! let epmd = PortMapperServer::bind("127.0.0.1:0".parse()?).await?.spawn();
//! let config = |name| NodeConfig::sname(name)
//!     .cookie(Cookie::new("mycookie").unwrap())
//!     .port_mapper(epmd.local_addr());
//! let hoge = Node::start(config("hoge@localhost")).await?;
//! let fuga = Node::start(config("fuga@localhost")).await?;
//! assert_eq!(hoge.ping("fuga@localhost").await, Ping::Pong);
//! assert_eq!(hoge.list(), [fuga.name().clone()]);
//! assert_eq!(hoge.ping("piyo@localhost").await, Ping::Pang);
//! # hoge.shutdown().await; fuga.shutdown().await; Ok(()) }
//! ```

mod addressing;
pub mod admin;
mod config;
mod driver;
mod env;
mod error;
mod events;
mod inner;
mod node_transport;
mod outcomes;
mod serving;
mod state;
#[cfg(test)]
mod tests;

use std::{
    fmt,
    net::SocketAddr,
    ops::Deref,
    sync::{Arc, Mutex},
};

use actor_core::{NodeName, System, SystemConfig, TaskError};
use tokio::{
    net::TcpListener,
    sync::{broadcast, oneshot},
};
use tracing::Instrument;

/// How long [`Node::shutdown`] waits for its peers to close their sessions after it told
/// them it is leaving, before it closes the rest itself.
pub const LEAVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// How long a stopping node waits for its BEAM connections to end before it stops its
/// system (each ends as soon as it is told: the bound only matters if one is stuck).
#[cfg(feature = "erlang")]
const ERLANG_CLOSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

pub use config::NodeConfig;
pub use env::ConfigError;
pub use error::{ConnectError, NodeError};
pub use events::{ListKind, NodeDown, NodeDownReason, NodeEvent, NodeMonitor, Ping};

use self::{
    driver::{accept_loop, keep_registered, memory_accept_loop, spawn_dial},
    inner::{connect, wait_until, waiter, Inner, Waiter},
    node_transport::NodeTransport,
    state::{NodeState, Outcome},
};
use crate::{
    port_mapper::{
        ensure_port_mapper_mode, PortMapperClient, PortMapperError, PortMapperHandle, Registration,
    },
    proto::HandshakeConfig,
    transport::{memory::MemoryListener, SendStats, SessionConfig},
    Cookie,
};

/// A running node: a [`System`] plus its distribution. Cheap to clone; clones share the node.
///
/// See the [module documentation](self) for the contract.
///
/// `Node` derefs to its [`System`], so `node.functions()`, `node.cast(..)`,
/// `TaskSupervisor::start(&node, ..)` work as they do on a bare system, and reach peers. This
/// is a deliberate exception to the rule that `Deref` is for smart pointers: a node *is* its
/// system with distribution installed (the system's operations go through the node's
/// transport), in the way a `String` is its `str`; there is no method of `System` that means
/// something else on a `Node`, and [`Node::system`] names it explicitly where that reads
/// better.
#[derive(Clone)]
pub struct Node {
    inner: Arc<Inner>,
}

/// A [`Node`] that does not keep it alive (for the node's own background work).
#[derive(Clone)]
pub(crate) struct WeakNode(std::sync::Weak<Inner>);

impl WeakNode {
    /// The node, if it is still there.
    pub(crate) fn upgrade(&self) -> Option<Node> {
        self.0.upgrade().map(|inner| Node { inner })
    }
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node")
            .field("name", &self.inner.name)
            .field("listen", &self.inner.listen_addr)
            .finish_non_exhaustive()
    }
}

impl Deref for Node {
    type Target = System;
    fn deref(&self) -> &System {
        &self.inner.system
    }
}

impl Node {
    /// Starts a node: validates its name, resolves its cookie, listens, registers with the
    /// port mapper (starting an embedded one if none answers) and starts its [`System`].
    ///
    /// # Errors
    /// [`NodeError`]: an invalid name or one that does not fit the name mode, no cookie, a
    /// socket that cannot be opened, a name already registered on the host, or no port mapper.
    pub async fn start(config: NodeConfig) -> Result<Node, NodeError> {
        let name = NodeName::parse(&config.name)?;
        name.check_mode(config.name_mode)?;
        let cookie = Cookie::resolve(config.cookie.clone())?;
        let (listener, listen_addr, port_mapper_addr, creation) = match &config.memory {
            Some(network) => {
                let (listener, creation) = network
                    .register(&name)
                    .ok_or_else(|| NodeError::NameInUse { name: name.clone() })?;
                let none = SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, 0));
                (Listening::Memory(listener), none, none, creation)
            }
            None => {
                let (tcp, listen_addr, port_mapper_addr, creation) =
                    listen_tcp(&name, &config).await?;
                (
                    Listening::Tcp(Box::new(tcp)),
                    listen_addr,
                    port_mapper_addr,
                    creation,
                )
            }
        };
        let system = System::start(SystemConfig {
            node: name.clone(),
            creation: Some(creation),
            ..SystemConfig::default()
        })
        .await?;

        let mut handshake = HandshakeConfig::new(name.clone(), cookie.as_bytes());
        handshake.name_mode = config.name_mode;
        handshake.creation = creation;
        handshake.hidden = config.hidden;
        handshake.setup_time = config.handshake_timeout;
        handshake.capabilities = crate::proto::handshake::CAPABILITIES;
        handshake.max_frame_len = config.max_frame_len;
        let session = SessionConfig {
            max_frame_len: config.max_frame_len,
            send_queue_limit: config.send_queue_limit,
            stats: SendStats::default(),
            tick_time: config.tick_time,
            tick_intensity: config.tick_intensity.max(1),
            // One clock for every session of the node, as the BEAM's net_kernel ticker.
            clock: crate::transport::TickClock::default(),
            #[cfg(feature = "testing")]
            faults: config.faults.clone(),
        };
        let (events, _) = broadcast::channel(1024);
        let mut state = NodeState::new(
            name.clone(),
            config.hidden,
            config.connect_all,
            config.handshake_timeout,
        );
        state.set_limits(config.max_frame_len, config.send_queue_limit);
        state.set_max_known(config.max_known_nodes);
        let names = crate::names::Shared::new(&system);
        #[cfg(feature = "erlang")]
        let erlang = config.erlang.then(|| {
            let cookie = String::from_utf8_lossy(cookie.as_bytes()).into_owned();
            crate::erl::Shared::new(
                system.clone(),
                name.to_string(),
                cookie,
                creation,
                port_mapper_addr.port(),
                &config,
                events.clone(),
            )
        });
        let inner = Arc::new(Inner {
            name: name.clone(),
            system,
            handshake,
            session,
            listen_addr,
            port_mapper_port: port_mapper_addr.port(),
            state: Mutex::new(state),
            events,
            tasks: Mutex::new(Vec::new()),
            dial: spawn_dial,
            mesh_dials: Arc::new(tokio::sync::Semaphore::new(driver::MAX_MESH_DIALS)),
            task_starts: Arc::new(tokio::sync::Semaphore::new(serving::MAX_TASK_STARTS)),
            mesh_queue: Mutex::default(),
            mesh_queued: Arc::default(),
            listed: Mutex::default(),
            #[cfg(feature = "erlang")]
            erlang,
            config,
            names,
        });
        let transport = Arc::new(NodeTransport(Arc::downgrade(&inner)));
        if actor_core::transport::install(&inner.system, transport).is_err() {
            tracing::error!(parent: &inner.span(), "internal: the new system already had a transport");
        }
        if let Err(e) = admin::install(&inner).await {
            inner.system.clone().shutdown().await;
            return Err(NodeError::Admin(e));
        }
        let tasks = match listener {
            Listening::Memory(listener) => {
                let accept = memory_accept_loop(Arc::downgrade(&inner), listener);
                vec![tokio::spawn(accept.instrument(inner.span())).abort_handle()]
            }
            Listening::Tcp(tcp) => {
                let Tcp {
                    listener,
                    registration,
                    port_mapper,
                    embedded_bind,
                } = *tcp;
                let accept = tokio::spawn(
                    accept_loop(Arc::downgrade(&inner), listener).instrument(inner.span()),
                );
                let keeper = tokio::spawn(
                    keep_registered(
                        Arc::downgrade(&inner),
                        registration,
                        port_mapper,
                        (port_mapper_addr, embedded_bind),
                    )
                    .instrument(inner.span()),
                );
                vec![accept.abort_handle(), keeper.abort_handle()]
            }
        };
        inner.lock_tasks().extend(tasks);
        let node = Node { inner };
        crate::names::start(&node).await?;
        tracing::info!(parent: &node.inner.span(), listen = %listen_addr, creation, "node started");
        Ok(node)
    }

    /// The node's global names and process groups (`crate::names`).
    pub(crate) fn names(&self) -> &Arc<crate::names::Shared> {
        &self.inner.names
    }

    /// A handle that does not keep the node alive.
    pub(crate) fn downgrade(&self) -> WeakNode {
        WeakNode(Arc::downgrade(&self.inner))
    }

    /// Stops `task` with the node.
    pub(crate) fn keep_task(&self, task: tokio::task::AbortHandle) {
        self.inner.lock_tasks().push(task);
    }

    /// The node's Erlang side (which names BEAM nodes reach, the BEAM nodes connected), if
    /// it was started with [`NodeConfig::erlang`].
    #[cfg(feature = "erlang")]
    pub fn erlang(&self) -> Option<crate::erl::Erlang> {
        let shared = self.inner.erlang.clone()?;
        Some(crate::erl::Erlang { shared })
    }

    /// This node's name.
    pub fn name(&self) -> &NodeName {
        &self.inner.name
    }

    /// This node's send counters, shared by all its sessions: the most bytes ever queued
    /// for one peer, the messages refused because a peer's queue was full, and the messages
    /// that were accepted and lost unsent (still queued when their session dropped, or
    /// queued during a connect that failed).
    pub fn send_stats(&self) -> SendStats {
        self.inner.session.stats.clone()
    }

    /// The address other nodes connect to: the TCP listener's (TLS or not). A node on a
    /// [`MemoryNetwork`](crate::transport::MemoryNetwork) has no socket, and its peers reach
    /// it by name: its address is `0.0.0.0:0`.
    pub fn listen_addr(&self) -> SocketAddr {
        self.inner.listen_addr
    }

    /// The node's local system (also reachable through `Deref`).
    pub fn system(&self) -> &System {
        &self.inner.system
    }

    /// The node's configuration (with the cookie as given, if it was).
    pub fn config(&self) -> &NodeConfig {
        &self.inner.config
    }

    /// Connected visible nodes, sorted, as `Node.list/0`.
    pub fn list(&self) -> Vec<NodeName> {
        self.list_kind(ListKind::Visible)
    }

    /// Whether this node's session with `node` is up and its first with it (see
    /// `NodeState::is_first_session`); false for a BEAM peer, which the machine does not
    /// hold.
    pub(crate) fn is_first_session(&self, node: &NodeName) -> bool {
        self.inner.lock().is_first_session(node)
    }

    /// Whether `node` is among [`Node::list`]'s nodes, without listing them.
    pub(crate) fn is_visible(&self, node: &NodeName) -> bool {
        if self.inner.lock().is_visible(node) {
            return true;
        }
        #[cfg(feature = "erlang")]
        if let Some(erlang) = &self.inner.erlang {
            return erlang.peer_names().contains(node);
        }
        false
    }

    /// Nodes of one kind, sorted, as `Node.list/1`. With `NodeConfig::erlang` (feature
    /// `erlang`), the BEAM nodes connected count as visible nodes (they are kept by
    /// `crate::erl`, apart from the nodus sessions, and merged in here).
    pub fn list_kind(&self, kind: ListKind) -> Vec<NodeName> {
        #[allow(unused_mut)]
        let mut nodes = match kind {
            ListKind::Visible | ListKind::Hidden | ListKind::Connected => self.up_sorted(kind),
            ListKind::This | ListKind::Known => {
                // Sorted once the lock is released: the machine need not wait for it.
                let mut nodes = self.inner.lock().list_unsorted(kind);
                state::sort_names(&mut nodes);
                nodes
            }
        };
        #[cfg(feature = "erlang")]
        if let (Some(erlang), ListKind::Visible | ListKind::Connected | ListKind::Known) =
            (&self.inner.erlang, kind)
        {
            let beam = erlang.peer_names();
            if !beam.is_empty() {
                nodes.extend(beam);
                state::sort_names(&mut nodes);
            }
        }
        nodes
    }

    /// The peers up of `kind` (visible, hidden or both), sorted. A node listed
    /// twice while no peer came up or went down (`NodeState::up_generation`) keeps its
    /// sorted peers and copies from them until one does (a thousand peers take about half as
    /// long to copy as to sort); the first list after a change sorts as if there were no
    /// copy kept, so a node listed once per change pays nothing for it.
    fn up_sorted(&self, kind: ListKind) -> Vec<NodeName> {
        let keep = |hidden: bool| match kind {
            ListKind::Visible => !hidden,
            ListKind::Hidden => hidden,
            _ => true,
        };
        let pick = |up: &[(NodeName, bool)]| {
            up.iter()
                .filter(|(_, hidden)| keep(*hidden))
                .map(|(name, _)| name.clone())
                .collect()
        };
        let generation = self.inner.lock().up_generation();
        let first = {
            let mut listed = self.inner.lock_listed();
            if listed.generation == Some(generation) {
                return pick(&listed.up);
            }
            // The peers kept at an older count stay until a list replaces them: dropping
            // them here would cost this list a thousand reference counts.
            listed.seen.replace(generation) != Some(generation)
        };
        if first {
            let mut nodes = self.inner.lock().list_unsorted(kind);
            state::sort_names(&mut nodes);
            return nodes;
        }
        let (generation, mut up) = self.inner.lock().up_unsorted();
        state::sort_by_name(&mut up, |(name, _)| name);
        let nodes = pick(&up);
        let mut listed = self.inner.lock_listed();
        // Kept unless a list of a later count was kept meanwhile.
        if listed.generation.is_none_or(|kept| kept < generation) {
            listed.generation = Some(generation);
            listed.up = up;
        }
        nodes
    }

    /// The nodes that left gracefully (they said so before shutting down, see
    /// [`Node::shutdown`]) and have not connected since, sorted. Cluster strategies do not
    /// connect these until they are seen again.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use actor_remote::{port_mapper::PortMapperServer, Cookie, Node, NodeConfig, NodeDownReason, Ping};
    /// let epmd = PortMapperServer::bind("127.0.0.1:0".parse()?).await?.spawn();
    /// let cookie = Cookie::new("c")?;
    /// let config = |name| NodeConfig::sname(name).cookie(cookie.clone()).port_mapper(epmd.local_addr());
    /// let a = Node::start(config("a@localhost")).await?;
    /// let b = Node::start(config("b@localhost")).await?;
    /// assert_eq!(a.ping("b@localhost").await, Ping::Pong);
    /// let monitor = a.monitor_node(b.name()).await;
    /// let b_name = b.name().clone();
    /// b.shutdown().await; // tells a first
    /// assert_eq!(monitor.await.reason, NodeDownReason::Shutdown);
    /// assert_eq!(a.left(), [b_name]);
    /// # a.shutdown().await; Ok(()) }
    /// ```
    pub fn left(&self) -> Vec<NodeName> {
        self.inner.lock().left()
    }

    /// Whether `node` left gracefully and has not connected since (see [`Node::left`]).
    pub fn has_left(&self, node: &NodeName) -> bool {
        self.inner.lock().has_left(node)
    }

    /// Forgets that `node` left, so strategies connect it again: whether it had. (A
    /// strategy that sees it again calls this through
    /// [`cluster::Context::seen_again`](crate::cluster::Context::seen_again).)
    pub fn forget_left(&self, node: &NodeName) -> bool {
        self.inner.lock().forget_left(node)
    }

    /// Records from now on the peers casts go to (a partial mesh's idle close).
    pub(crate) fn track_casts(&self) {
        self.inner.lock().track_casts();
    }

    /// The peers casts went to since the last call (see [`Node::track_casts`]).
    pub(crate) fn take_cast_peers(&self) -> std::collections::BTreeSet<NodeName> {
        self.inner.lock().take_cast_peers()
    }

    /// The port peers' port mappers listen on (this node's port mapper's port).
    pub(crate) fn port_mapper_port(&self) -> u16 {
        self.inner.port_mapper_port
    }

    /// Every `NodeUp` / `NodeDown` from now on. A receiver that falls more than 1024 events
    /// behind gets `RecvError::Lagged`.
    pub fn events(&self) -> broadcast::Receiver<NodeEvent> {
        self.inner.events.subscribe()
    }

    /// Pings `node`, connecting to it if needed, as `Node.ping/1`. Pinging this node is
    /// `Pong`; an invalid name, an unknown or unreachable node, a wrong cookie, or no answer
    /// within the handshake timeout is `Pang` ([`Node::connect`] tells why).
    pub async fn ping(&self, node: &str) -> Ping {
        let Ok(node) = NodeName::parse(node) else {
            return Ping::Pang;
        };
        if node == self.inner.name {
            return Ping::Pong;
        }
        let answer = match self.connect(&node).await {
            Ok(()) => self.round_trip(&node).await,
            Err(e) => Err(e),
        };
        match answer {
            Ok(()) => Ping::Pong,
            Err(e) => {
                tracing::debug!(parent: &self.inner.span(), peer = %node, "pang: {e}");
                Ping::Pang
            }
        }
    }

    async fn round_trip(&self, node: &NodeName) -> Result<(), ConnectError> {
        let timeout = self.inner.config.handshake_timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        let (waiter, rx) = waiter();
        self.inner
            .with_state(|s| s.request_ping(deadline.into_std(), node, timeout, waiter));
        match wait_until(&self.inner, deadline, rx).await {
            Some(Outcome::Pong(result)) => result,
            _ => Err(ConnectError::Timeout {
                node: node.clone(),
                timeout,
            }),
        }
    }

    /// Connects to `node` unless a session exists, as `Node.connect/1` (which answers only
    /// `true`/`false`; this says why). Concurrent calls for one node share one attempt.
    ///
    /// # Errors
    /// [`ConnectError`] saying which step failed.
    pub async fn connect(&self, node: &NodeName) -> Result<(), ConnectError> {
        connect(&self.inner, node).await
    }

    /// Closes the session with `node`, as `Node.disconnect/1`: `true` if there was one.
    /// Monitors and event subscribers see `NodeDown` with reason `disconnect`; the next
    /// ping or connect opens a new session.
    pub fn disconnect(&self, node: &NodeName) -> bool {
        self.inner.with_state(|s| s.disconnect(node))
    }

    /// Monitors `node`, as `Node.monitor/2`: the returned future resolves with exactly one
    /// [`NodeDown`], when the session with `node` goes down. If `node` cannot be reached it
    /// resolves at once, with reason [`NodeDownReason::NoConnection`]. A monitor of this node
    /// itself never resolves.
    pub async fn monitor_node(&self, node: &NodeName) -> NodeMonitor {
        let (tx, rx) = oneshot::channel();
        if *node == self.inner.name {
            return NodeMonitor {
                node: node.clone(),
                rx: None,
                forget: None,
            };
        }
        #[cfg(feature = "erlang")]
        if let Some(erlang) = &self.inner.erlang {
            // A connected BEAM node: its monitor is kept by the Erlang side.
            if let Some(rx) = erlang.monitor_peer(node.as_str()) {
                return NodeMonitor {
                    node: node.clone(),
                    rx: Some(rx),
                    forget: None,
                };
            }
        }
        let mut id = None;
        if self.connect(node).await.is_err() {
            let _ = tx.send(NodeDown {
                node: node.clone(),
                reason: NodeDownReason::NoConnection,
            });
        } else {
            id = self
                .inner
                .with_state(|s| s.monitor_node(node, Waiter::NodeDown(tx)));
        }
        let forget = id.map(|id| {
            let weak = Arc::downgrade(&self.inner);
            actor_core::transport::Cancel::new(move || {
                if let Some(inner) = weak.upgrade() {
                    inner.with_state(|s| s.cancel_node_monitor(id));
                }
            })
        });
        NodeMonitor {
            node: node.clone(),
            rx: Some(rx),
            forget,
        }
    }

    /// Runs `module.function(args)` on `node` as a plain process, as `Node.spawn/4`: under
    /// no supervisor, fire and forget (its result is dropped, a panic is logged on `node`).
    ///
    /// Its group leader is the caller's: what it prints with `nodus::puts!` is sent back
    /// over the session and written to this node's [output](actor_core::System::output),
    /// not `node`'s, as Erlang's `Node.spawn/4` does. A task under a remote `TaskSupervisor` prints on
    /// the remote node instead. On this node itself, the process inherits the calling task's
    /// group leader (this node's output if it has none).
    ///
    /// It connects to `node` if needed, and returns once `node` has started the process (one
    /// round trip), so that an unknown function is an error here rather than a crash there.
    ///
    /// # Errors
    /// [`TaskError::NoConnection`] at once when `node` cannot be reached (the BEAM returns a
    /// pid and logs `Can not start M:f on node`; nothing runs either way),
    /// [`TaskError::Undefined`] when `node` has no such function, [`TaskError::BadArgs`]
    /// when the arguments do not encode or decode.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use actor_core::{io::Output, puts};
    /// use actor_remote::{port_mapper::PortMapperServer, Cookie, Node, NodeConfig};
    /// let epmd = PortMapperServer::bind("127.0.0.1:0".parse()?).await?.spawn();
    /// let config = |name| NodeConfig::sname(name)
    ///     .cookie(Cookie::new("mycookie").unwrap())
    ///     .port_mapper(epmd.local_addr());
    /// let hoge = Node::start(config("hoge@localhost")).await?;
    /// let fuga = Node::start(config("fuga@localhost")).await?;
    /// let (output, captured) = Output::capture();
    /// hoge.set_output(output);
    /// fuga.functions().register("IO", "puts", |(text,): (String,)| async move { puts!("{text}") });
    ///
    /// hoge.spawn_on(fuga.name(), "IO", "puts", ("hello from fuga",)).await?;
    /// // It ran on fuga and printed on hoge, the caller.
    /// # tokio::time::timeout(std::time::Duration::from_secs(10), async {
    /// #     while captured.lines().is_empty() {
    /// #         tokio::time::sleep(std::time::Duration::from_millis(5)).await; // polling interval
    /// #     }
    /// # }).await?;
    /// assert_eq!(captured.lines(), ["hello from fuga"]);
    /// # hoge.shutdown().await; fuga.shutdown().await; Ok(()) }
    /// ```
    pub async fn spawn_on<A>(
        &self,
        node: &NodeName,
        module: &str,
        function: &str,
        args: A,
    ) -> Result<(), TaskError>
    where
        A: serde::Serialize + Send + 'static,
    {
        node_transport::spawn_plain_on(&self.inner, node, module, function, args).await
    }

    /// Stops at once, without the graceful leave of [`Node::shutdown`], as `erlang:halt/0`
    /// (or a crash): every session closes (peers see `connection_closed` and their
    /// strategies reconnect it as soon as it is back), the name is unregistered, the
    /// listener and the system stop.
    pub async fn halt(self) {
        self.stop().await;
    }

    /// Leaves gracefully, then stops: refuses new sessions, tells every peer it is leaving
    /// (`ControlMsg::Leaving`: peers close the session and see the node down with
    /// [`NodeDownReason::Shutdown`], and their cluster strategies do not connect it again
    /// until it is seen again, libcluster #202), waits until they have closed (at most
    /// [`LEAVE_TIMEOUT`]), closes any session left (those peers see `disconnect`),
    /// unregisters from the port mapper, stops listening, and shuts the system down.
    pub async fn shutdown(self) {
        let mut events = self.inner.events.subscribe();
        if self.inner.with_state(|s| s.leave()) > 0 {
            let closed = async {
                // Asked after each event, so not by listing: a thousand peers leaving would
                // otherwise list a thousand names a thousand times.
                while self.inner.lock().has_sessions() {
                    if let Err(broadcast::error::RecvError::Closed) = events.recv().await {
                        return;
                    }
                }
            };
            if tokio::time::timeout(LEAVE_TIMEOUT, closed).await.is_err() {
                tracing::debug!(parent: &self.inner.span(), "some peers did not close within {LEAVE_TIMEOUT:?} of the leave; closing");
            }
        }
        self.stop().await;
    }

    async fn stop(self) {
        self.inner.with_state(|s| s.shutdown());
        #[cfg(feature = "erlang")]
        if let Some(erlang) = &self.inner.erlang {
            // BEAM peers see the node go, as when a BEAM node halts: every connection has
            // ended before the system stops, so no task stopped with it answers them.
            if !erlang.close_and_wait(ERLANG_CLOSE_TIMEOUT).await {
                tracing::debug!(parent: &self.inner.span(), "some Erlang connections had not ended within {ERLANG_CLOSE_TIMEOUT:?}; stopping anyway");
            }
        }
        self.inner.names.stop();
        // Stops listening and drops the registration (which unregisters the name).
        for task in self.inner.lock_tasks().drain(..) {
            task.abort();
        }
        self.inner.system.clone().shutdown().await;
        tracing::info!(parent: &self.inner.span(), "node stopped");
    }
}

/// What a starting node listens with.
enum Listening {
    Tcp(Box<Tcp>),
    Memory(MemoryListener),
}

/// A TCP node's listener and port-mapper registration.
struct Tcp {
    listener: TcpListener,
    registration: Registration,
    port_mapper: PortMapperHandle,
    embedded_bind: SocketAddr,
}

/// Binds a TCP node's listener and registers it with the port mapper (starting an embedded
/// one if none answers): the listener, its address, the port mapper's address, and the
/// creation the registration gave.
async fn listen_tcp(
    name: &NodeName,
    config: &NodeConfig,
) -> Result<(Tcp, SocketAddr, SocketAddr, u32), NodeError> {
    let listen_ip = config
        .listen_ip
        .unwrap_or_else(|| NodeConfig::default_listen_ip(name.host()));
    let addr = SocketAddr::new(listen_ip, config.listen_port);
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| NodeError::Listen { addr, source })?;
    let listen_addr = listener
        .local_addr()
        .map_err(|source| NodeError::Listen { addr, source })?;

    let port_mapper_addr = match config.port_mapper {
        Some(addr) => addr,
        None => PortMapperClient::from_env(std::net::Ipv4Addr::LOCALHOST.into())
            .map_err(NodeError::PortMapper)?
            .addr(),
    };
    // An embedded port mapper of a node with long names serves other hosts too: it
    // listens on every interface, as epmd does (short names are one host's).
    let embedded_bind = match (config.port_mapper, config.name_mode) {
        (None, actor_core::NameMode::Long) => SocketAddr::new(
            std::net::Ipv4Addr::UNSPECIFIED.into(),
            port_mapper_addr.port(),
        ),
        _ => port_mapper_addr,
    };
    let port_mapper = ensure_port_mapper_mode(
        port_mapper_addr,
        embedded_bind,
        &config.port_mapper_mode,
        config.handshake_timeout,
    )
    .await
    .map_err(NodeError::PortMapper)?;
    let registration = port_mapper
        .client()
        .clone()
        .with_timeout(config.handshake_timeout)
        .register(name, listen_addr.port(), config.hidden)
        .await
        .map_err(|e| match e {
            PortMapperError::NameInUse { name } => NodeError::NameInUse { name },
            other => NodeError::PortMapper(other),
        })?;
    let creation = registration.creation();

    let tcp = Tcp {
        listener,
        registration,
        port_mapper,
        embedded_bind,
    };
    Ok((tcp, listen_addr, port_mapper_addr, creation))
}
