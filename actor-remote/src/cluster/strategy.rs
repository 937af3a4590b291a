//! The [`Strategy`] trait and the [`Context`] a strategy works through.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, PoisonError,
    },
    time::Duration,
};

use actor_core::NodeName;
use tokio::{sync::broadcast, time::Instant};

use super::{Backoff, ClusterEvent, Hooks};
use crate::Node;

/// What a started strategy runs until the cluster stops (it is then dropped).
pub type Running = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A way to find nodes, as a libcluster strategy. Implement it to add your own.
///
/// [`start`](Strategy::start) checks the configuration and opens what the strategy needs (a
/// socket, ...): an error there makes [`Cluster::start`](super::Cluster::start) fail. It
/// returns the future that does the work: it finds nodes and hands them to
/// [`Context::connect_nodes`] (which skips this node and the nodes already connected, calls
/// the topology's connect hook, keeps a per-node backoff, logs, counts and emits events),
/// and [`Context::disconnect_nodes`] for nodes that should leave. The future is dropped when
/// the cluster stops, so it needs no shutdown logic of its own.
///
/// A custom strategy that connects to a fixed list from a closure, every second:
///
/// ```
/// use std::time::Duration;
/// use actor_remote::cluster::{Context, Running, Strategy, StrategyError};
/// use actor_core::NodeName;
///
/// struct FromFn<F>(F);
///
/// impl<F: Fn() -> Vec<NodeName> + Send + 'static> Strategy for FromFn<F> {
///     fn kind(&self) -> &'static str {
///         "from_fn"
///     }
///     fn start(self: Box<Self>, ctx: Context) -> Result<Running, StrategyError> {
///         Ok(Box::pin(async move {
///             loop {
///                 ctx.connect_nodes((self.0)()).await;
///                 tokio::time::sleep(Duration::from_secs(1)).await; // the strategy's period
///             }
///         }))
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use actor_remote::{cluster::{Cluster, ClusterConfig, Topology}, port_mapper::PortMapperServer, Cookie, Node, NodeConfig};
/// let epmd = PortMapperServer::bind("127.0.0.1:0".parse()?).await?.spawn();
/// let cookie = Cookie::new("c")?;
/// let config = |name| NodeConfig::sname(name).cookie(cookie.clone()).port_mapper(epmd.local_addr());
/// let a = Node::start(config("a@localhost")).await?;
/// let b = Node::start(config("b@localhost")).await?;
/// let peers = || vec!["b@localhost".parse().expect("a node name")];
/// let cluster = Cluster::start(&a, ClusterConfig::new().topology(Topology::new("mine", FromFn(peers)))).await?;
/// let until = tokio::time::Instant::now() + Duration::from_secs(10);
/// while a.list().is_empty() && tokio::time::Instant::now() < until {
///     tokio::time::sleep(Duration::from_millis(10)).await; // poll interval
/// }
/// assert_eq!(a.list(), [b.name().clone()]);
/// assert_eq!(cluster.metrics().connects, 1);
/// # cluster.stop(); a.shutdown().await; b.shutdown().await; Ok(()) }
/// ```
pub trait Strategy: Send + 'static {
    /// The strategy's kind, for logs and errors (`"gossip"`, `"static_hosts"`, ...).
    fn kind(&self) -> &'static str;

    /// Checks the configuration, opens what is needed, and returns the work to run.
    ///
    /// # Errors
    /// [`StrategyError`] saying what could not be set up and what to change.
    fn start(self: Box<Self>, ctx: Context) -> Result<Running, StrategyError>;
}

/// Why a strategy could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StrategyError {
    /// A socket could not be opened or set up.
    #[error("{what} on {addr} failed: {source}; {hint}")]
    Socket {
        /// The step (`"binding the gossip socket"`, ...).
        what: &'static str,
        /// The address involved.
        addr: std::net::SocketAddr,
        /// The OS error.
        source: std::io::Error,
        /// What to change.
        hint: String,
    },
    /// The configuration cannot work.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A custom strategy's own error.
    #[error(transparent)]
    Other(Box<dyn std::error::Error + Send + Sync>),
}

/// The cluster's counters (totals over every topology).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Metrics {
    /// Successful connects made by the cluster.
    pub connects: u64,
    /// Failed connect attempts.
    pub failures: u64,
    /// Nodes disconnected because their strategy no longer lists them.
    pub prunes: u64,
    /// Inputs a strategy refused (for example gossip packets under another secret).
    pub dropped: u64,
}

#[derive(Debug, Default)]
pub(super) struct Counters {
    connects: AtomicU64,
    failures: AtomicU64,
    prunes: AtomicU64,
    dropped: AtomicU64,
}

impl Counters {
    pub(super) fn snapshot(&self) -> Metrics {
        Metrics {
            connects: self.connects.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            prunes: self.prunes.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }
}

/// What a strategy works through: the node, its topology's hooks, backoff, logs, events
/// and counters. Cheap to clone.
#[derive(Clone)]
pub struct Context {
    inner: Arc<ContextInner>,
}

struct ContextInner {
    node: Node,
    topology: String,
    hooks: Hooks,
    debug: bool,
    connect_timeout: Duration,
    backoff: Mutex<Backoff>,
    events: broadcast::Sender<ClusterEvent>,
    counters: Arc<Counters>,
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("node", self.inner.node.name())
            .field("topology", &self.inner.topology)
            .field("debug", &self.inner.debug)
            .finish_non_exhaustive()
    }
}

/// The outcome of one connect through the hook.
enum Attempt {
    Connected,
    Failed(String),
}

impl Context {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        node: Node,
        topology: String,
        hooks: Hooks,
        debug: bool,
        backoff: Backoff,
        connect_timeout: Duration,
        events: broadcast::Sender<ClusterEvent>,
        counters: Arc<Counters>,
    ) -> Self {
        Self {
            inner: Arc::new(ContextInner {
                node,
                topology,
                hooks,
                debug,
                connect_timeout,
                backoff: Mutex::new(backoff),
                events,
                counters,
            }),
        }
    }

    /// The node the cluster runs on.
    pub fn node(&self) -> &Node {
        &self.inner.node
    }

    /// The topology's name.
    pub fn topology(&self) -> &str {
        &self.inner.topology
    }

    /// Whether every decision is logged (`debug: true`).
    pub fn debug(&self) -> bool {
        self.inner.debug
    }

    /// The connected nodes, through the topology's `list_nodes` hook.
    pub fn list_nodes(&self) -> Vec<NodeName> {
        (self.inner.hooks.list_nodes)(&self.inner.node)
    }

    /// Logs a decision at debug level when the topology has `debug: true`.
    pub fn decide(&self, node: Option<&NodeName>, what: &str, why: &str) {
        if self.inner.debug {
            let node = node.map(ToString::to_string).unwrap_or_default();
            tracing::debug!(
                parent: self.inner.node.span(),
                topology = %self.inner.topology,
                node,
                "[cluster:{}] {what}: {why}",
                self.inner.topology
            );
        }
    }

    fn emit(&self, event: ClusterEvent) {
        let _ = self.inner.events.send(event);
    }

    /// Reports that a strategy saw `node` (`how`: `"heartbeat"`, `"listed"`, ...).
    pub fn seen(&self, node: &NodeName, how: &str) {
        self.decide(Some(node), "seen", how);
        self.emit(ClusterEvent::Seen {
            topology: self.inner.topology.clone(),
            node: node.clone(),
        });
    }

    /// Reports an input the strategy refused, and why (logged at debug, counted, and an
    /// event): it never stops the strategy.
    pub fn dropped(&self, why: impl fmt::Display) {
        let why = why.to_string();
        tracing::debug!(parent: self.inner.node.span(), topology = %self.inner.topology, "[cluster:{}] dropped: {why}", self.inner.topology);
        self.inner.counters.dropped.fetch_add(1, Ordering::Relaxed);
        self.emit(ClusterEvent::Dropped {
            topology: self.inner.topology.clone(),
            why,
        });
    }

    fn backoff(&self) -> std::sync::MutexGuard<'_, Backoff> {
        self.inner
            .backoff
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The earliest time a node in backoff may be tried again: a strategy that retries
    /// should wake then.
    pub fn next_retry(&self) -> Option<Instant> {
        self.backoff().next_due()
    }

    /// Reports that `node` was seen again after a graceful leave (a new port-mapper
    /// registration, a DNS record back in the answer, ...): strategies connect it again
    /// ([`Node::forget_left`]). Nothing happens for a node that did not leave.
    pub fn seen_again(&self, node: &NodeName, how: &str) {
        if self.inner.node.forget_left(node) {
            self.decide(Some(node), "seen again after it left", how);
        }
    }

    /// Connects to each of `nodes` that is not this node, not already connected (the
    /// `list_nodes` hook), not a node that left gracefully and was not seen again (see
    /// [`Node::left`]) and not in backoff, concurrently, through the `connect` hook, each
    /// bounded by the topology's connect timeout. Returns the nodes it connected.
    ///
    /// Each success resets the node's backoff, is logged at info (`connected to`), counted
    /// and emitted; each failure is counted, emitted with its reason, logged (at warn for
    /// the first failure in a row, then at debug) and starts or extends its backoff.
    pub async fn connect_nodes(&self, nodes: impl IntoIterator<Item = NodeName>) -> Vec<NodeName> {
        let me = self.inner.node.name().clone();
        let listed = self.list_nodes();
        let now = Instant::now();
        let mut todo = Vec::new();
        for node in nodes {
            if node == me {
                continue;
            }
            if listed.contains(&node) {
                self.decide(Some(&node), "skipped", "already connected");
                continue;
            }
            if self.inner.node.has_left(&node) {
                self.decide(
                    Some(&node),
                    "skipped",
                    "it left (shut down gracefully); not connected until it is seen again",
                );
                continue;
            }
            if !self.backoff().ready(&node, now) {
                self.decide(Some(&node), "not yet", "in backoff after a failed connect");
                continue;
            }
            if !todo.contains(&node) {
                todo.push(node);
            }
        }
        let attempts = todo.into_iter().map(|node| async move {
            let outcome = self.attempt(&node).await;
            (node, outcome)
        });
        let mut connected = Vec::new();
        for (node, outcome) in futures::future::join_all(attempts).await {
            match outcome {
                Attempt::Connected => {
                    self.backoff().succeeded(&node);
                    self.inner.counters.connects.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(parent: self.inner.node.span(), topology = %self.inner.topology, "[cluster:{}] connected to {node}", self.inner.topology);
                    self.emit(ClusterEvent::Connected {
                        topology: self.inner.topology.clone(),
                        node: node.clone(),
                    });
                    connected.push(node);
                }
                Attempt::Failed(reason) => {
                    let (retry_in, first) = {
                        let mut backoff = self.backoff();
                        let pause = backoff.failed(&node, Instant::now());
                        (pause, backoff.failures(&node) == 1)
                    };
                    self.inner.counters.failures.fetch_add(1, Ordering::Relaxed);
                    if first {
                        tracing::warn!(parent: self.inner.node.span(), topology = %self.inner.topology, "[cluster:{}] unable to connect to {node}: {reason}; retrying in {retry_in:?}", self.inner.topology);
                    } else {
                        tracing::debug!(parent: self.inner.node.span(), topology = %self.inner.topology, "[cluster:{}] unable to connect to {node}: {reason}; retrying in {retry_in:?}", self.inner.topology);
                    }
                    self.emit(ClusterEvent::ConnectFailed {
                        topology: self.inner.topology.clone(),
                        node,
                        reason,
                        retry_in,
                    });
                }
            }
        }
        connected
    }

    async fn attempt(&self, node: &NodeName) -> Attempt {
        self.decide(Some(node), "connecting", "not connected yet");
        let call = (self.inner.hooks.connect)(self.inner.node.clone(), node.clone());
        match tokio::time::timeout(self.inner.connect_timeout, call).await {
            Ok(Ok(())) => Attempt::Connected,
            Ok(Err(e)) => Attempt::Failed(e.to_string()),
            Err(_) => Attempt::Failed(format!(
                "the connect hook did not answer within {:?}",
                self.inner.connect_timeout
            )),
        }
    }

    /// Disconnects each of `nodes` that is connected, through the `disconnect` hook
    /// (pruning: for strategies that track membership). Each is counted, logged and emitted.
    pub fn disconnect_nodes(&self, nodes: impl IntoIterator<Item = NodeName>, why: &str) {
        let listed = self.list_nodes();
        for node in nodes {
            if !listed.contains(&node) {
                continue;
            }
            if (self.inner.hooks.disconnect)(&self.inner.node, &node) {
                self.inner.counters.prunes.fetch_add(1, Ordering::Relaxed);
                tracing::info!(parent: self.inner.node.span(), topology = %self.inner.topology, "[cluster:{}] disconnected from {node}: {why}", self.inner.topology);
                self.emit(ClusterEvent::Pruned {
                    topology: self.inner.topology.clone(),
                    node,
                });
            } else {
                self.decide(Some(&node), "not pruned", "already disconnected");
            }
        }
    }
}
