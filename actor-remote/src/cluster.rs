//! Automatic clustering, as libcluster: a [`Cluster`] runs named topologies on a [`Node`],
//! each a [`Strategy`] that finds nodes and connects them.
//!
//! # Strategies
//!
//! | strategy | libcluster's | finds | keys (TOML `config` table) and defaults |
//! |---|---|---|---|
//! | [`StaticHosts`] | `Epmd` | a fixed list | `hosts` (required), `poll_interval_ms` 5000 |
//! | [`LocalPortMapper`] | `LocalEpmd` | every name the host's port mapper knows | `poll_interval_ms` 5000 |
//! | [`Gossip`] | `Gossip` | nodes heard in UDP multicast heartbeats | see [`GossipConfig`] |
//! | [`DnsPoll`] | `DNSPoll` | `basename@ip` for the A and AAAA records of a name | `query`, `node_basename` (required), `poll_interval_ms` 5000, `prune` true, `nameservers` (default: the system's), `query_timeout_ms` 2000 |
//! | [`KubernetesDns`] | `Kubernetes.DNS` | `app@pod-ip` for a headless service's A and AAAA records | `service`, `application_name` (required), and DnsPoll's optional keys |
//! | [`KubernetesDnsSrv`] | `Kubernetes.DNSSRV` | `app@pod-hostname` for a StatefulSet's SRV records | `service`, `namespace`, `application_name` (required), `cluster_domain` (`CLUSTER_DOMAIN`, else `cluster.local.`), and DnsPoll's optional keys |
//! | [`PartialMesh`] | (none: HyParView) | a bounded overlay joined through contacts; see [`partial_mesh`] | `hosts` (the contacts, default none), `active_size` 5, `passive_size` 30, `idle_timeout_ms` 30000, `overlay_idle_timeout_ms` 1000 |
//! | your own | | anything | implement [`Strategy`] |
//!
//! Where this differs from libcluster, on purpose (its users' complaints):
//! - Every strategy keeps connecting: a node that starts late, or that drops and comes back,
//!   is connected again (libcluster #148, #168), with a per-node exponential backoff (from
//!   `backoff_initial_ms` 500 to `backoff_max_ms` 30000) so an absent node costs little.
//! - Gossip with a `secret` is authenticated encryption (XChaCha20-Poly1305, key by
//!   HKDF-SHA256) with replay protection; libcluster's is AES-CBC without a MAC. Garbage,
//!   packets under another secret and replays are dropped with a debug log and never stop
//!   the strategy (libcluster's crashes on a malformed term).
//! - A socket that cannot be opened is a typed error naming the address and what to change
//!   (libcluster #189, #94 crash with a `MatchError`).
//! - Unknown keys in a configuration are errors, not silently ignored (libcluster #120).
//! - The DNS strategies never prune on a truncated answer or a failed query (libcluster
//!   #190 prunes the nodes a truncated answer left out), and `prune` can be turned off
//!   (libcluster PR #196); the decisions are [`dns::Membership`]'s, sans-IO.
//! - A node that shuts down tells its peers (see [Graceful leave](#graceful-leave)), so no
//!   strategy connects it again while it goes (libcluster #202).
//!
//! # Configuration
//!
//! In code ([`ClusterConfig::topology`]), from TOML ([`ClusterConfig::from_toml`],
//! [`ClusterConfig::from_toml_file`]):
//!
//! ```toml
//! debug = true                      # log every decision at debug level
//!
//! [topologies.example]
//! strategy = "gossip"               # static_hosts (alias epmd) | local_port_mapper (alias local_epmd) | gossip | dns_poll | kubernetes_dns | kubernetes_dns_srv | partial_mesh
//! backoff_initial_ms = 500          # optional, per topology
//! backoff_max_ms = 30000
//! connect_timeout_ms = 10000        # bound on one connect through the hook
//! [topologies.example.config]
//! secret = "a shared secret"
//! ```
//!
//! or from environment variables ([`ClusterConfig::from_env`]), for one topology:
//!
//! | variable | meaning |
//! |---|---|
//! | `NODUS_CLUSTER_STRATEGY` | the strategy (without it: no topology) |
//! | `NODUS_CLUSTER_TOPOLOGY` | its name (default `default`) |
//! | `NODUS_CLUSTER_DEBUG` | `true`/`1` logs every decision |
//! | `NODUS_CLUSTER_HOSTS` | `static_hosts`: comma-separated node names |
//! | `NODUS_CLUSTER_POLL_INTERVAL_MS` | `static_hosts`, `local_port_mapper` |
//! | `NODUS_CLUSTER_BACKOFF_INITIAL_MS`, `NODUS_CLUSTER_BACKOFF_MAX_MS`, `NODUS_CLUSTER_CONNECT_TIMEOUT_MS` | per topology |
//! | `NODUS_CLUSTER_GOSSIP_PORT`, `_IF_ADDR`, `_MULTICAST_IF`, `_MULTICAST_ADDR`, `_MULTICAST_TTL`, `_BROADCAST_ONLY`, `_SECRET`, `_INTERVAL_MS`, `_MAX_SKEW_MS` | `gossip` (`NODUS_CLUSTER_GOSSIP_` + the [`GossipConfig`] key in upper case) |
//! | `NODUS_CLUSTER_PARTIAL_ACTIVE_SIZE`, `_PASSIVE_SIZE`, `_IDLE_TIMEOUT_MS`, `_OVERLAY_IDLE_TIMEOUT_MS` | `partial_mesh` (its contacts are `NODUS_CLUSTER_HOSTS`) |
//! | `NODUS_CLUSTER_DNS_QUERY`, `_NODE_BASENAME`, `_SERVICE`, `_APPLICATION_NAME`, `_NAMESPACE`, `_CLUSTER_DOMAIN`, `_PRUNE`, `_NAMESERVERS` (comma-separated `ip:port`), `_QUERY_TIMEOUT_MS` | `dns_poll`, `kubernetes_dns`, `kubernetes_dns_srv` (`NODUS_CLUSTER_DNS_` + the key in upper case; the poll interval is `NODUS_CLUSTER_POLL_INTERVAL_MS`) |
//!
//! For example a StatefulSet `myapp` whose pods are named `myapp@$(hostname -f)`:
//!
//! ```toml
//! [topologies.k8s]
//! strategy = "kubernetes_dns_srv"
//! [topologies.k8s.config]
//! service = "myapp"
//! namespace = "default"
//! application_name = "myapp"
//! poll_interval_ms = 5000
//! prune = true
//! ```
//!
//! # Graceful leave
//!
//! [`Node::shutdown`] tells every peer that the node is leaving before it closes its
//! sessions (libcluster #202: a terminating pod was connected again during its shutdown).
//! Peers close the session and report the node down with
//! [`NodeDownReason::Shutdown`](crate::NodeDownReason::Shutdown) (the BEAM's `shutdown`),
//! and remember it ([`Node::left`]). No strategy connects a node that left
//! ([`Context::connect_nodes`] skips it) until it is *seen again*:
//! - it connects to this node (a restarted node whose strategy dials this one; a session
//!   that comes up with it for any reason), which every strategy relies on; or
//! - [`StaticHosts`]: the port mapper on its host has a new registration for it (one after
//!   a check found none, or on another port than at the first check after it left);
//! - the DNS strategies: its record drops out of a whole answer and comes back.
//!
//! A user's own [`Node::connect`] or [`Node::ping`] still connects it (and so clears it).
//!
//! # Hooks, events, metrics, logs
//!
//! Each topology connects, disconnects and lists nodes through its [`Hooks`] (libcluster's
//! `connect`/`disconnect`/`list_nodes` MFAs), by default [`Node::connect`],
//! [`Node::disconnect`] and [`Node::list`]. [`Cluster::events`] (a broadcast receiver) and
//! [`Cluster::event_stream`] (a `Stream`) tell what happens ([`ClusterEvent`]), [`Cluster::metrics`] counts it. A connect is logged at info, the first
//! failure in a row at warn; with `debug: true` every decision (seen, connecting, in
//! backoff, dropped, pruned, and why) is logged at debug, in the node's span.
//!
//! # Lifetime
//!
//! The cluster runs on tokio tasks owned by the [`Cluster`] handle, and stops when the
//! handle is dropped or [`Cluster::stop`]ped, or when the node shuts down (a child of the
//! node's root supervisor tells it).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use actor_remote::{cluster::{Cluster, ClusterConfig, StaticHosts, Topology}, port_mapper::PortMapperServer, Cookie, Node, NodeConfig};
//! let epmd = PortMapperServer::bind("127.0.0.1:0".parse()?).await?.spawn();
//! let cookie = Cookie::new("c")?;
//! let config = |name| NodeConfig::sname(name).cookie(cookie.clone()).port_mapper(epmd.local_addr());
//! let a = Node::start(config("a@localhost")).await?;
//! let b = Node::start(config("b@localhost")).await?;
//!
//! let hosts = StaticHosts::new(["a@localhost".parse()?, "b@localhost".parse()?]);
//! let cluster = Cluster::start(&a, ClusterConfig::new().topology(Topology::new("example", hosts))).await?;
//! let until = tokio::time::Instant::now() + Duration::from_secs(10);
//! while a.list().is_empty() && tokio::time::Instant::now() < until {
//!     tokio::time::sleep(Duration::from_millis(10)).await; // poll interval
//! }
//! assert_eq!(a.list(), [b.name().clone()]);
//! # cluster.stop(); a.shutdown().await; b.shutdown().await; Ok(()) }
//! ```

mod backoff;
mod config;
pub mod dns;
pub mod gossip;
pub mod hyparview;
mod local_port_mapper;
pub mod partial_mesh;
mod static_hosts;
mod strategy;
#[cfg(test)]
mod tests;

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use actor_core::{
    ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef},
    ChildSpec, NodeName, Restart, SpawnError, SupervisorError,
};
use tokio::{
    sync::{broadcast, watch},
    task::AbortHandle,
};
use tracing::Instrument;

pub use backoff::{Backoff, DEFAULT_BACKOFF_INITIAL, DEFAULT_BACKOFF_MAX};
pub use config::ConfigError;
pub use dns::{DnsPoll, KubernetesDns, KubernetesDnsSrv};
pub use gossip::{
    packet::{Codec, Heartbeat, PacketError, Replay, ReplayWindow},
    Gossip, GossipConfig,
};
pub use local_port_mapper::LocalPortMapper;
pub use partial_mesh::{MeshView, PartialMesh};
pub use static_hosts::StaticHosts;
pub use strategy::{Context, Metrics, Running, Strategy, StrategyError};

use crate::{ConnectError, Node};
use strategy::Counters;

/// The default bound on one connect through a topology's hook (DNSCluster's 10 s).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How many events a slow [`Cluster::events`] receiver may fall behind before it lags.
pub const EVENTS_CAPACITY: usize = 1024;

/// A boxed connect future, as the `connect` hook returns.
pub type ConnectFuture = Pin<Box<dyn Future<Output = Result<(), ConnectError>> + Send>>;
type ConnectHook = Arc<dyn Fn(Node, NodeName) -> ConnectFuture + Send + Sync>;
type DisconnectHook = Arc<dyn Fn(&Node, &NodeName) -> bool + Send + Sync>;
type ListHook = Arc<dyn Fn(&Node) -> Vec<NodeName> + Send + Sync>;

/// How a topology connects, disconnects and lists nodes (libcluster's `connect`,
/// `disconnect` and `list_nodes` MFAs). The defaults are [`Node::connect`],
/// [`Node::disconnect`] and [`Node::list`].
///
/// ```
/// use actor_remote::{cluster::Hooks, ConnectError};
/// // Connect only to nodes whose name starts with "app".
/// let hooks = Hooks::default().connect(|node, peer| Box::pin(async move {
///     if peer.name().starts_with("app") { node.connect(&peer).await } else { Err(ConnectError::NotAlive) }
/// }));
/// # let _ = hooks;
/// ```
#[derive(Clone)]
pub struct Hooks {
    connect: ConnectHook,
    disconnect: DisconnectHook,
    list_nodes: ListHook,
}

impl fmt::Debug for Hooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hooks").finish_non_exhaustive()
    }
}

impl Default for Hooks {
    fn default() -> Self {
        Self {
            connect: Arc::new(|node: Node, peer: NodeName| {
                Box::pin(async move { node.connect(&peer).await }) as ConnectFuture
            }),
            disconnect: Arc::new(|node: &Node, peer: &NodeName| node.disconnect(peer)),
            list_nodes: Arc::new(|node: &Node| node.list()),
        }
    }
}

impl Hooks {
    /// Replaces the connect hook.
    pub fn connect(
        mut self,
        f: impl Fn(Node, NodeName) -> ConnectFuture + Send + Sync + 'static,
    ) -> Self {
        self.connect = Arc::new(f);
        self
    }

    /// Replaces the disconnect hook (`true` if there was a connection).
    pub fn disconnect(
        mut self,
        f: impl Fn(&Node, &NodeName) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.disconnect = Arc::new(f);
        self
    }

    /// Replaces the list hook (the nodes already connected, which are not connected again).
    pub fn list_nodes(
        mut self,
        f: impl Fn(&Node) -> Vec<NodeName> + Send + Sync + 'static,
    ) -> Self {
        self.list_nodes = Arc::new(f);
        self
    }
}

/// One named topology: a strategy, its hooks and its backoff.
pub struct Topology {
    name: String,
    strategy: Box<dyn Strategy>,
    hooks: Hooks,
    backoff_initial: Duration,
    backoff_max: Duration,
    connect_timeout: Duration,
}

impl fmt::Debug for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Topology")
            .field("name", &self.name)
            .field("strategy", &self.strategy.kind())
            .field("backoff_initial", &self.backoff_initial)
            .field("backoff_max", &self.backoff_max)
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

impl Topology {
    /// A topology named `name` run by `strategy`, with the default hooks and backoff.
    pub fn new(name: impl Into<String>, strategy: impl Strategy) -> Self {
        Self::boxed(name, Box::new(strategy))
    }

    /// [`Topology::new`] with a strategy already boxed.
    pub fn boxed(name: impl Into<String>, strategy: Box<dyn Strategy>) -> Self {
        Self {
            name: name.into(),
            strategy,
            hooks: Hooks::default(),
            backoff_initial: DEFAULT_BACKOFF_INITIAL,
            backoff_max: DEFAULT_BACKOFF_MAX,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }

    /// The topology's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The strategy's kind.
    pub fn kind(&self) -> &'static str {
        self.strategy.kind()
    }

    /// Sets the hooks.
    pub fn hooks(mut self, hooks: Hooks) -> Self {
        self.hooks = hooks;
        self
    }

    /// Sets the backoff between connect attempts to one node: `initial`, doubling up to `max`.
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.backoff_initial = initial;
        self.backoff_max = max;
        self
    }

    /// Sets the bound on one connect through the hook.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }
}

/// The topologies of a [`Cluster`], and `debug`.
///
/// ```
/// use actor_remote::cluster::ClusterConfig;
/// let config = ClusterConfig::from_toml(r#"
///     debug = true
///     [topologies.local]
///     strategy = "static_hosts"
///     config = { hosts = ["a@localhost", "b@localhost"] }
/// "#)?;
/// assert!(config.is_debug());
/// assert_eq!(config.topologies().map(|t| (t.name(), t.kind())).collect::<Vec<_>>(), [("local", "static_hosts")]);
/// # Ok::<(), actor_remote::cluster::ConfigError>(())
/// ```
#[derive(Debug, Default)]
pub struct ClusterConfig {
    topologies: Vec<Topology>,
    debug: bool,
}

impl ClusterConfig {
    /// No topologies, `debug` off.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a topology.
    pub fn topology(mut self, topology: Topology) -> Self {
        self.topologies.push(topology);
        self
    }

    /// Logs every decision at debug level (libcluster's `debug: true`).
    pub fn debug(mut self, debug: bool) -> Self {
        self.debug = debug;
        self
    }

    /// Whether every decision is logged.
    pub fn is_debug(&self) -> bool {
        self.debug
    }

    /// The topologies.
    pub fn topologies(&self) -> impl Iterator<Item = &Topology> {
        self.topologies.iter()
    }
}

/// What a cluster did, as [`Cluster::events`] streams it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClusterEvent {
    /// A strategy saw a node (a heartbeat, a listing).
    Seen {
        /// The topology.
        topology: String,
        /// The node.
        node: NodeName,
    },
    /// The cluster connected a node.
    Connected {
        /// The topology.
        topology: String,
        /// The node.
        node: NodeName,
    },
    /// A connect failed; the node is tried again after `retry_in`.
    ConnectFailed {
        /// The topology.
        topology: String,
        /// The node.
        node: NodeName,
        /// Why.
        reason: String,
        /// The backoff before the next attempt.
        retry_in: Duration,
    },
    /// The cluster disconnected a node its strategy no longer lists.
    Pruned {
        /// The topology.
        topology: String,
        /// The node.
        node: NodeName,
    },
    /// A strategy refused an input (a gossip packet under another secret, malformed, or
    /// replayed).
    Dropped {
        /// The topology.
        topology: String,
        /// Why.
        why: String,
    },
}

/// Why a cluster could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// A topology's strategy could not start.
    #[error("topology {topology:?} ({kind}) could not start: {source}")]
    Strategy {
        /// The topology.
        topology: String,
        /// The strategy's kind.
        kind: &'static str,
        /// Why.
        source: StrategyError,
    },
    /// Two topologies have one name.
    #[error("two topologies are named {name:?}; give each its own name")]
    DuplicateTopology {
        /// The name.
        name: String,
    },
    /// The node has shut down.
    #[error("the node has shut down; start the cluster on a running node")]
    NodeStopped,
    /// The child of the node's root supervisor that stops the cluster with the node could
    /// not start.
    #[error("could not start the cluster's guard under the node's root supervisor: {reason}; is the node shutting down?")]
    Guard {
        /// Why.
        reason: String,
    },
}

/// A running cluster: its topologies' strategies on tokio tasks, owned by this handle.
/// Dropping it (or [`Cluster::stop`]) stops them; so does the node's shutdown.
pub struct Cluster {
    tasks: Vec<AbortHandle>,
    guard: Option<ActorCell>,
    events: broadcast::Sender<ClusterEvent>,
    counters: Arc<Counters>,
    topologies: Vec<String>,
    strategies: Vec<&'static str>,
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster")
            .field("topologies", &self.topologies)
            .finish_non_exhaustive()
    }
}

/// A child of the node's root supervisor whose stop (the node's shutdown) stops the cluster.
#[derive(Clone)]
struct Guard;

impl Actor for Guard {
    type Msg = ();
    type State = Arc<watch::Sender<bool>>;
    type Arguments = Arc<watch::Sender<bool>>;

    async fn pre_start(
        &self,
        _me: ActorRef<()>,
        stop: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(stop)
    }

    async fn post_stop(
        &self,
        _me: ActorRef<()>,
        stop: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let _ = stop.send(true);
        Ok(())
    }
}

impl Cluster {
    /// Starts every topology of `config` on `node`.
    ///
    /// # Errors
    /// [`ClusterError`]: a strategy that could not start (its socket, its configuration),
    /// two topologies with one name, or a node that has shut down. Nothing keeps running
    /// after an error.
    pub async fn start(node: &Node, config: ClusterConfig) -> Result<Cluster, ClusterError> {
        let mut names: Vec<String> = Vec::new();
        let strategies = config.topologies.iter().map(|t| t.kind()).collect();
        for t in &config.topologies {
            if names.contains(&t.name) {
                return Err(ClusterError::DuplicateTopology {
                    name: t.name.clone(),
                });
            }
            names.push(t.name.clone());
        }
        let (stop_tx, mut stop_rx) = watch::channel(false);
        // Each cluster's guard has its own id: a supervisor's children have unique ids.
        static GUARDS: AtomicU64 = AtomicU64::new(1);
        let id = format!("nodus.cluster.{}", GUARDS.fetch_add(1, Ordering::Relaxed));
        let spec = ChildSpec::new(id, Guard, Arc::new(stop_tx)).restart(Restart::Temporary);
        let guard = node.start_child(spec).await.map_err(|e| match e {
            SupervisorError::Spawn(SpawnError::SystemStopped) | SupervisorError::NotRunning => {
                ClusterError::NodeStopped
            }
            other => ClusterError::Guard {
                reason: other.to_string(),
            },
        })?;
        let (events, _) = broadcast::channel(EVENTS_CAPACITY);
        let counters = Arc::new(Counters::default());
        let mut cluster = Cluster {
            tasks: Vec::new(),
            guard: Some(guard),
            events: events.clone(),
            counters: counters.clone(),
            topologies: names,
            strategies,
        };
        for t in config.topologies {
            let ctx = Context::new(
                node.clone(),
                t.name.clone(),
                t.hooks,
                config.debug,
                Backoff::new(t.backoff_initial, t.backoff_max),
                t.connect_timeout,
                events.clone(),
                counters.clone(),
            );
            let kind = t.strategy.kind();
            let running = t
                .strategy
                .start(ctx)
                .map_err(|source| ClusterError::Strategy {
                    topology: t.name.clone(),
                    kind,
                    source,
                })?; // `cluster` drops here: what started is stopped
            let span = tracing::debug_span!(parent: node.span(), "cluster", topology = %t.name, strategy = kind);
            let task = tokio::spawn(running.instrument(span));
            cluster.tasks.push(task.abort_handle());
            tracing::debug!(parent: node.span(), topology = %t.name, strategy = kind, "cluster topology started");
        }
        // The node's shutdown stops the guard, which stops the strategies.
        let handles = cluster.tasks.clone();
        let watcher = tokio::spawn(async move {
            let _ = stop_rx.wait_for(|stopped| *stopped).await;
            for task in handles {
                task.abort();
            }
        });
        cluster.tasks.push(watcher.abort_handle());
        Ok(cluster)
    }

    /// Every [`ClusterEvent`] from now on. A receiver more than [`EVENTS_CAPACITY`] events
    /// behind gets `RecvError::Lagged`. (For a `Stream`, wrap it in
    /// `tokio_stream::wrappers::BroadcastStream`.)
    pub fn events(&self) -> broadcast::Receiver<ClusterEvent> {
        self.events.subscribe()
    }

    /// Every [`ClusterEvent`] from now on, as a `Stream`; events missed by falling more
    /// than [`EVENTS_CAPACITY`] behind are skipped (use [`Cluster::events`] to see how many).
    /// The stream ends when the cluster is dropped.
    pub fn event_stream(&self) -> futures::stream::BoxStream<'static, ClusterEvent> {
        let rx = self.events.subscribe();
        Box::pin(futures::stream::unfold(rx, |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(event) => return Some((event, rx)),
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        }))
    }

    /// The counters so far, over every topology.
    pub fn metrics(&self) -> Metrics {
        self.counters.snapshot()
    }

    /// The topologies' names.
    pub fn topologies(&self) -> &[String] {
        &self.topologies
    }

    /// Each topology's name and its strategy's kind (`static_hosts`, `dns_poll`, ...), in
    /// start order.
    pub fn strategies(&self) -> impl Iterator<Item = (&str, &'static str)> {
        self.topologies
            .iter()
            .map(String::as_str)
            .zip(self.strategies.iter().copied())
    }

    /// Stops every strategy (connections made stay up).
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
        }
        if let Some(guard) = self.guard.take() {
            guard.stop(None);
        }
    }
}
