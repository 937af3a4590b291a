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

mod actors;
mod config;
mod error;
mod monitors;
mod tasks;
#[cfg(test)]
mod tests;

use std::{
    collections::{BTreeSet, HashMap},
    fmt,
    future::Future,
    net::SocketAddr,
    ops::Deref,
    pin::Pin,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, PoisonError, Weak,
    },
    task::{Context, Poll},
};

use actor_core::{NodeName, System, SystemConfig};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{broadcast, oneshot},
    task::AbortHandle,
};
use tracing::Instrument;

pub use config::NodeConfig;
pub use error::{ConnectError, NodeError};

use crate::{
    port_mapper::{
        ensure_port_mapper, PortMapperClient, PortMapperError, PortMapperHandle, Registration,
    },
    proto::{Existing, HandshakeConfig, HandshakeError},
    transport::{
        handshake_over, CloseReason, Connected, Direction, Session, SessionConfig, SessionHandle,
    },
    wire::message::NodeMsg,
    Cookie,
};

/// The answer to [`Node::ping`], as `Node.ping/1`'s `:pong` and `:pang`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ping {
    /// The node answered.
    Pong,
    /// It could not be reached (down, unknown, wrong cookie, ...); [`Node::connect`] says why.
    Pang,
}

/// Which nodes [`Node::list_kind`] lists, as `Node.list/1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListKind {
    /// Connected visible nodes (what [`Node::list`] returns).
    Visible,
    /// Connected hidden nodes.
    Hidden,
    /// All connected nodes, visible and hidden.
    Connected,
    /// Every node this node has been connected to, and itself.
    Known,
    /// This node only.
    This,
}

/// Why a connection to a node went down, as the BEAM's `nodedown_reason`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NodeDownReason {
    /// The connection closed (the peer stopped or was killed): `connection_closed`.
    ConnectionClosed,
    /// This node disconnected, or the peer did: `disconnect`.
    Disconnect,
    /// Nothing came from the peer for `tick_time`: `net_tick_timeout`.
    TickTimeout,
    /// The peer broke the protocol (garbage or an oversized frame); the text says how.
    ProtocolError(String),
    /// The node could not be reached at all (a monitor of an unreachable node).
    NoConnection,
    /// This node shut down.
    NodeShutdown,
}

impl fmt::Display for NodeDownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ConnectionClosed => f.write_str("connection_closed"),
            Self::Disconnect => f.write_str("disconnect"),
            Self::TickTimeout => f.write_str("net_tick_timeout"),
            Self::ProtocolError(why) => write!(f, "protocol_error: {why}"),
            Self::NoConnection => f.write_str("noconnection"),
            Self::NodeShutdown => f.write_str("net_kernel_terminated"),
        }
    }
}

impl From<CloseReason> for NodeDownReason {
    fn from(reason: CloseReason) -> Self {
        match reason {
            CloseReason::ConnectionClosed | CloseReason::Io { .. } => Self::ConnectionClosed,
            CloseReason::Disconnect => Self::Disconnect,
            CloseReason::TickTimeout => Self::TickTimeout,
            other => Self::ProtocolError(other.to_string()),
        }
    }
}

/// A node went down, as `{:nodedown, node, %{nodedown_reason: reason}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeDown {
    /// The node.
    pub node: NodeName,
    /// Why.
    pub reason: NodeDownReason,
}

/// A change in this node's connections, as `:net_kernel.monitor_nodes(true, node_type: :all)`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeEvent {
    /// A session with `node` came up.
    NodeUp {
        /// The node.
        node: NodeName,
        /// Whether the connection is hidden.
        hidden: bool,
    },
    /// The session with `node` went down.
    NodeDown {
        /// The node.
        node: NodeName,
        /// Whether the connection was hidden.
        hidden: bool,
        /// Why.
        reason: NodeDownReason,
    },
}

/// One [`NodeDown`] for one [`Node::monitor_node`] call: await it.
#[derive(Debug)]
pub struct NodeMonitor {
    node: NodeName,
    rx: Option<oneshot::Receiver<NodeDown>>,
}

impl Future for NodeMonitor {
    type Output = NodeDown;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<NodeDown> {
        let node = self.node.clone();
        match self.rx.as_mut() {
            None => Poll::Pending, // a monitor of this node itself never fires
            Some(rx) => Pin::new(rx).poll(cx).map(|r| {
                r.unwrap_or(NodeDown {
                    node,
                    reason: NodeDownReason::NodeShutdown,
                })
            }),
        }
    }
}

struct Peer {
    handle: SessionHandle<NodeMsg>,
    hidden: bool,
    conn: u64,
}

type Waiters = Vec<oneshot::Sender<Result<(), ConnectError>>>;

#[derive(Default)]
struct State {
    peers: HashMap<NodeName, Peer>,
    pending: HashMap<NodeName, Waiters>,
    monitors: HashMap<NodeName, Vec<oneshot::Sender<NodeDown>>>,
    pings: HashMap<u64, oneshot::Sender<()>>,
    known: BTreeSet<NodeName>,
    tasks: tasks::Tasks,
    actors: actors::Actors,
    monitors_remote: monitors::Monitors,
    stopped: bool,
}

struct Inner {
    name: NodeName,
    system: System,
    config: NodeConfig,
    handshake: HandshakeConfig,
    session: SessionConfig,
    listen_addr: SocketAddr,
    port_mapper_port: u16,
    state: Mutex<State>,
    events: broadcast::Sender<NodeEvent>,
    /// The accept loop and the registration keeper, stopped with the node.
    tasks: Mutex<Vec<AbortHandle>>,
    next_id: AtomicU64,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for task in self.lock_tasks().drain(..) {
            task.abort();
        }
    }
}

impl State {
    /// The session handle of a connected peer.
    fn handle_of(&self, node: &NodeName) -> Option<SessionHandle<NodeMsg>> {
        self.peers.get(node).map(|p| p.handle.clone())
    }

    /// Whether no call to another node's actor is waiting for its reply (for tests).
    #[cfg(test)]
    fn actors_is_idle(&self) -> bool {
        self.actors.is_idle()
    }

    /// Whether no peer monitors any of this node's actors (for tests).
    #[cfg(test)]
    fn monitors_remote_is_idle(&self) -> bool {
        self.monitors_remote.served_len() == 0
    }

    /// How many monitors peers have on this node's actors (for tests).
    #[cfg(test)]
    fn monitors_remote_len(&self) -> usize {
        self.monitors_remote.served_len()
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_tasks(&self) -> std::sync::MutexGuard<'_, Vec<AbortHandle>> {
        self.tasks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn span(&self) -> tracing::Span {
        self.system.span().clone()
    }
}

/// A running node: a [`System`] plus its distribution. Cheap to clone; clones share the node.
///
/// See the [module documentation](self) for the contract.
#[derive(Clone)]
pub struct Node {
    inner: Arc<Inner>,
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
        let port_mapper = ensure_port_mapper(port_mapper_addr)
            .await
            .map_err(NodeError::PortMapper)?;
        let registration = port_mapper
            .client()
            .clone()
            .with_timeout(config.handshake_timeout)
            .register(&name, listen_addr.port(), config.hidden)
            .await
            .map_err(|e| match e {
                PortMapperError::NameInUse { name } => NodeError::NameInUse { name },
                other => NodeError::PortMapper(other),
            })?;
        let creation = registration.creation();

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
        let session = SessionConfig {
            max_frame_len: config.max_frame_len,
            tick_time: config.tick_time,
            tick_intensity: config.tick_intensity.max(1),
            faults: config.faults.clone(),
        };
        let (events, _) = broadcast::channel(1024);
        let inner = Arc::new(Inner {
            name: name.clone(),
            system,
            handshake,
            session,
            listen_addr,
            port_mapper_port: port_mapper_addr.port(),
            state: Mutex::new(State::default()),
            events,
            tasks: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
            config,
        });
        let transport = Arc::new(tasks::NodeTransport(Arc::downgrade(&inner)));
        if actor_core::transport::install(&inner.system, transport).is_err() {
            tracing::error!(parent: &inner.span(), "internal: the new system already had a transport");
        }
        let accept =
            tokio::spawn(accept_loop(Arc::downgrade(&inner), listener).instrument(inner.span()));
        let keeper = tokio::spawn(
            keep_registered(
                Arc::downgrade(&inner),
                registration,
                port_mapper,
                port_mapper_addr,
            )
            .instrument(inner.span()),
        );
        inner
            .lock_tasks()
            .extend([accept.abort_handle(), keeper.abort_handle()]);
        tracing::info!(parent: &inner.span(), listen = %listen_addr, creation, "node started");
        Ok(Node { inner })
    }

    /// This node's name.
    pub fn name(&self) -> &NodeName {
        &self.inner.name
    }

    /// The address other nodes connect to.
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

    /// Nodes of one kind, sorted, as `Node.list/1`.
    pub fn list_kind(&self, kind: ListKind) -> Vec<NodeName> {
        let state = self.inner.lock();
        let mut out: Vec<NodeName> = match kind {
            ListKind::This => vec![self.inner.name.clone()],
            ListKind::Known => state
                .known
                .iter()
                .cloned()
                .chain([self.inner.name.clone()])
                .collect(),
            _ => state
                .peers
                .iter()
                .filter(|(_, p)| match kind {
                    ListKind::Visible => !p.hidden,
                    ListKind::Hidden => p.hidden,
                    _ => true,
                })
                .map(|(n, _)| n.clone())
                .collect(),
        };
        out.sort();
        out.dedup();
        out
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
        if let Err(e) = self.connect(&node).await {
            tracing::debug!(parent: &self.inner.span(), peer = %node, "pang: {e}");
            return Ping::Pang;
        }
        match self.round_trip(&node).await {
            Ok(()) => Ping::Pong,
            Err(e) => {
                tracing::debug!(parent: &self.inner.span(), peer = %node, "pang: {e}");
                Ping::Pang
            }
        }
    }

    async fn round_trip(&self, node: &NodeName) -> Result<(), ConnectError> {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let handle = {
            let mut state = self.inner.lock();
            let handle = state.handle_of(node);
            if handle.is_some() {
                state.pings.insert(id, tx);
            }
            handle
        };
        let timeout = self.inner.config.handshake_timeout;
        let sent = handle.is_some_and(|h| h.send(&NodeMsg::Ping(id)).is_ok());
        let answered = sent && matches!(tokio::time::timeout(timeout, rx).await, Ok(Ok(())));
        self.inner.lock().pings.remove(&id);
        if answered {
            Ok(())
        } else {
            Err(ConnectError::Timeout {
                node: node.clone(),
                timeout,
            })
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
        let state = self.inner.lock();
        match state.peers.get(node) {
            Some(peer) => {
                peer.handle.close();
                true
            }
            None => false,
        }
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
            };
        }
        let down = |reason| NodeDown {
            node: node.clone(),
            reason,
        };
        if self.connect(node).await.is_err() {
            let _ = tx.send(down(NodeDownReason::NoConnection));
        } else {
            let mut state = self.inner.lock();
            if state.peers.contains_key(node) {
                state.monitors.entry(node.clone()).or_default().push(tx);
            } else {
                let _ = tx.send(down(NodeDownReason::ConnectionClosed));
            }
        }
        NodeMonitor {
            node: node.clone(),
            rx: Some(rx),
        }
    }

    /// Closes every session (peers see `disconnect`), unregisters from the port mapper, stops
    /// listening, and shuts the system down.
    pub async fn shutdown(self) {
        {
            let mut state = self.inner.lock();
            state.stopped = true;
            for peer in state.peers.values() {
                peer.handle.close();
            }
        }
        // Stops listening and drops the registration (which unregisters the name).
        for task in self.inner.lock_tasks().drain(..) {
            task.abort();
        }
        self.inner.system.clone().shutdown().await;
        tracing::info!(parent: &self.inner.span(), "node stopped");
    }
}

/// Keeps the node registered with its port mapper. If the registration is lost (the port
/// mapper died, for example the embedded one of a node that stopped), registers again,
/// starting an embedded port mapper if none answers, with a backoff of up to 5 s.
async fn keep_registered(
    node: Weak<Inner>,
    mut registration: Registration,
    mut _port_mapper: PortMapperHandle,
    addr: SocketAddr,
) {
    loop {
        registration.closed().await;
        tracing::warn!(port_mapper = %addr, "lost the port-mapper registration; registering again");
        let mut delay = std::time::Duration::from_millis(50);
        loop {
            let Some(inner) = node.upgrade() else { return };
            if inner.lock().stopped {
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
            delay = (delay * 2).min(std::time::Duration::from_secs(5));
        }
        // `_port_mapper` (an embedded server this node may host) lives as long as this task.
    }
}

async fn accept_loop(node: Weak<Inner>, listener: TcpListener) {
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
                        let Some(inner) = weak.upgrade() else {
                            return Existing::Established;
                        };
                        let state = inner.lock();
                        if state.stopped || state.peers.contains_key(&peer) {
                            Existing::Established
                        } else if state.pending.contains_key(&peer) {
                            Existing::PendingOutgoing
                        } else {
                            Existing::None
                        }
                    }
                };
                crate::transport::faults::hold_accept(
                    &inner.session,
                    inner.config.handshake_timeout,
                )
                .await;
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

/// Sends the outcome of an attempt to everyone waiting for it.
fn finish_attempt(inner: &Inner, node: &NodeName, result: &Result<(), ConnectError>) {
    let waiters = inner.lock().pending.remove(node).unwrap_or_default();
    for waiter in waiters {
        let _ = waiter.send(result.clone());
    }
}

async fn connect(inner: &Arc<Inner>, node: &NodeName) -> Result<(), ConnectError> {
    if *node == inner.name {
        return Ok(());
    }
    let rx = {
        let mut state = inner.lock();
        if state.stopped {
            return Err(ConnectError::NotAlive);
        }
        if state.peers.contains_key(node) {
            return Ok(());
        }
        let (tx, rx) = oneshot::channel();
        let first = !state.pending.contains_key(node);
        state.pending.entry(node.clone()).or_default().push(tx);
        if first {
            let span = inner.span();
            let (inner, node) = (inner.clone(), node.clone());
            tokio::spawn(
                async move {
                    let result = dial(&inner, &node).await;
                    finish_attempt(&inner, &node, &result);
                }
                .instrument(span),
            );
        }
        rx
    };
    rx.await.unwrap_or(Err(ConnectError::NotAlive))
}

async fn dial(inner: &Arc<Inner>, node: &NodeName) -> Result<(), ConnectError> {
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
        if !crate::transport::faults::may_dial(&inner.session, node, timeout).await {
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
        let mut up = inner.events.subscribe();
        let direction = Direction::Outgoing { peer: node.clone() };
        return match handshake_over(stream, direction, &inner.handshake, |_| async {
            Existing::None
        })
        .await
        {
            Ok(conn) => {
                install(inner, conn);
                Ok(())
            }
            Err(HandshakeError::Simultaneous { .. } | HandshakeError::AlreadyConnected { .. }) => {
                // The peer's own connection to us won; wait for it to come up.
                wait_for_session(inner, node, &mut up, timeout).await
            }
            Err(e) => Err(ConnectError::Handshake {
                node: node.clone(),
                reason: e.to_string(),
            }),
        };
    }
    Err(last)
}

async fn wait_for_session(
    inner: &Inner,
    node: &NodeName,
    up: &mut broadcast::Receiver<NodeEvent>,
    timeout: std::time::Duration,
) -> Result<(), ConnectError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if inner.lock().peers.contains_key(node) {
            return Ok(());
        }
        match tokio::time::timeout_at(deadline, up.recv()).await {
            Ok(Ok(NodeEvent::NodeUp { node: n, .. })) if n == *node => return Ok(()),
            Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(broadcast::error::RecvError::Closed)) | Err(_) => {
                return Err(ConnectError::Timeout {
                    node: node.clone(),
                    timeout,
                })
            }
        }
    }
}

/// Makes a session of a connection whose handshake succeeded.
fn install(inner: &Arc<Inner>, conn: Connected) {
    let established = conn.established().clone();
    let peer = established.peer.clone();
    let hidden = established.hidden || inner.config.hidden;
    // Actor messages and replies are handled in the session's reader task: no hop through
    // the channel and the session task on the way to the actor (or back to the caller).
    let inline: crate::transport::Inline<NodeMsg> = {
        let (weak, peer) = (Arc::downgrade(inner), peer.clone());
        Box::new(move |msg, responder| match msg {
            NodeMsg::Send { .. } | NodeMsg::Reply { .. } => {
                if let Some(inner) = weak.upgrade() {
                    actors::on_message(&inner, &peer, responder, msg);
                }
                None
            }
            other => Some(other),
        })
    };
    let session: Session<NodeMsg> = Session::start_with(conn, inner.session.clone(), Some(inline));
    let conn_id = inner.next_id.fetch_add(1, Ordering::Relaxed);
    let peers_to_share = {
        let mut state = inner.lock();
        if state.stopped || state.peers.contains_key(&peer) {
            // A session already exists (or we are stopping): keep the existing one.
            session.handle.close();
            return;
        }
        state.peers.insert(
            peer.clone(),
            Peer {
                handle: session.handle.clone(),
                hidden,
                conn: conn_id,
            },
        );
        state.known.insert(peer.clone());
        state.actors.flush(&peer, &session.handle);
        let visible: Vec<NodeName> = state
            .peers
            .iter()
            .filter(|(n, p)| !p.hidden && **n != peer)
            .map(|(n, _)| n.clone())
            .collect();
        visible
    };
    tracing::info!(%peer, hidden, "nodeup");
    let _ = inner.events.send(NodeEvent::NodeUp {
        node: peer.clone(),
        hidden,
    });
    if !hidden && inner.config.connect_all {
        let _ = session.handle.send(&NodeMsg::Peers(peers_to_share));
    }
    tokio::spawn(
        run_session(Arc::downgrade(inner), peer, hidden, conn_id, session).instrument(inner.span()),
    );
}

async fn run_session(
    node: Weak<Inner>,
    peer: NodeName,
    hidden: bool,
    conn: u64,
    session: Session<NodeMsg>,
) {
    let Session {
        handle,
        mut incoming,
        closed,
    } = session;
    while let Some(msg) = incoming.recv().await {
        let Some(inner) = node.upgrade() else { return };
        match msg {
            NodeMsg::Ping(id) => {
                let _ = handle.send(&NodeMsg::Pong(id));
            }
            NodeMsg::Pong(id) => {
                if let Some(tx) = inner.lock().pings.remove(&id) {
                    let _ = tx.send(());
                }
            }
            other @ (NodeMsg::SpawnTask { .. }
            | NodeMsg::TaskStarted { .. }
            | NodeMsg::TaskResult { .. }
            | NodeMsg::KillTask { .. }
            | NodeMsg::SpawnPlain { .. }
            | NodeMsg::Output { .. }) => tasks::on_message(&inner, &peer, &handle, other).await,
            other @ (NodeMsg::Send { .. } | NodeMsg::Reply { .. }) => {
                // Normally handled inline by the reader (see `install`).
                actors::on_message(&inner, &peer, &handle.responder(), other)
            }
            other
            @ (NodeMsg::Monitor { .. } | NodeMsg::Demonitor { .. } | NodeMsg::Down { .. }) => {
                monitors::on_message(&inner, &peer, &handle, other)
            }
            NodeMsg::Peers(nodes) => {
                if hidden || !inner.config.connect_all {
                    continue;
                }
                for other in nodes {
                    let connected = other == inner.name || inner.lock().peers.contains_key(&other);
                    if !connected {
                        let inner = inner.clone();
                        tokio::spawn(
                            async move {
                                if let Err(e) = connect(&inner, &other).await {
                                    tracing::debug!(peer = %other, "connect_all: {e}");
                                }
                            }
                            .instrument(tracing::Span::current()),
                        );
                    }
                }
            }
        }
    }
    drop(handle);
    let reason = closed
        .await
        .map_or(NodeDownReason::ConnectionClosed, NodeDownReason::from);
    let Some(inner) = node.upgrade() else { return };
    let monitors = {
        let mut state = inner.lock();
        if state.peers.get(&peer).is_some_and(|p| p.conn == conn) {
            state.peers.remove(&peer);
            state.tasks.node_down(&peer);
            state.actors.node_down(&peer);
            state.monitors_remote.node_down(&peer);
        }
        state.monitors.remove(&peer).unwrap_or_default()
    };
    tracing::info!(%peer, %reason, "nodedown");
    for monitor in monitors {
        let _ = monitor.send(NodeDown {
            node: peer.clone(),
            reason: reason.clone(),
        });
    }
    let _ = inner.events.send(NodeEvent::NodeDown {
        node: peer,
        hidden,
        reason,
    });
}
