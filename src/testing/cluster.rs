//! [`LocalCluster`]: N nodes on loopback for tests, with faults on demand.
//!
//! A cluster starts its own port mapper on a port the OS picks, then N nodes with unique
//! names (`node1_7@localhost`, …), one cookie and a short tick time (1 s unless set). Nodes
//! run in this process by default, or as child processes of a node binary (the `ping`
//! example, or any binary that takes the same flags). Then:
//!
//! - [`LocalCluster::await_mesh`] connects every pair that is not connected (as a clustering
//!   strategy would; nodes do not reconnect on their own, as on the BEAM) and polls, every
//!   20 ms, until each live node lists all the others, or the deadline passes;
//! - [`LocalCluster::kill`] stops a node at once (`SIGKILL` for a process; an in-process
//!   node shuts down, so its peers see `connection_closed` as they would for a killed one);
//! - [`LocalCluster::pause`] / [`LocalCluster::resume`]: `SIGSTOP`/`SIGCONT` for a process;
//!   an in-process node's transport freezes (its sessions neither read nor write, it answers
//!   no handshake), so its peers see `tick_timeout`;
//! - [`LocalCluster::partition`] / [`LocalCluster::heal`]: frames between two nodes are
//!   dropped both ways (the [`Faults`] shim in their transports), so both see `tick_timeout`;
//!   after healing, [`LocalCluster::await_mesh`] reconnects them;
//! - [`LocalCluster::restart`]: brings a node back under the same name, on a fresh node (a
//!   new creation), in-process or as a process; with [`ClusterBuilder::on_start`], the
//!   services a test sets up on each in-process node come back with it;
//! - [`LocalCluster::logs`]: a node's log (its `tracing` events, debug and above; the
//!   standard error of a process node), and [`LocalCluster::output`]: a process node's
//!   standard output.
//!
//! Dropping the cluster kills its child processes, stops its in-process nodes' tasks, and
//! stops its port mapper; [`LocalCluster::shutdown`] does the same and waits for it.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use nodus::{remote::{NodeDownReason, NodeEvent}, testing::LocalCluster};
//!
//! let mut cluster = LocalCluster::builder().nodes(3).tick_time(Duration::from_millis(600)).start().await?;
//! cluster.await_mesh(Duration::from_secs(5)).await?;
//! assert_eq!(cluster.node(0).list().len(), 2);
//!
//! // Cut node 0 off from node 1: both sides time out; node 2 still sees both.
//! let mut events = cluster.node(0).events();
//! cluster.partition(0, 1)?;
//! let down = loop {
//!     if let NodeEvent::NodeDown { node, reason, .. } = events.recv().await? {
//!         break (node, reason);
//!     }
//! };
//! assert_eq!(down, (cluster.name(1).clone(), NodeDownReason::TickTimeout));
//! cluster.heal(0, 1)?;
//! cluster.await_mesh(Duration::from_secs(5)).await?;
//! assert!(cluster.logs(0).iter().any(|line| line.contains("nodedown")));
//! cluster.shutdown().await;
//! # Ok(()) }
//! ```

use std::{
    fmt,
    future::Future,
    path::{Path, PathBuf},
    pin::Pin,
    process::Stdio,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, PoisonError,
    },
    time::Duration,
};

use actor_core::NodeName;
use actor_remote::{
    port_mapper::{PortMapperClient, PortMapperError, PortMapperServer, PortMapperServerHandle},
    transport::{Faults, MemoryNetwork},
    Cookie, Node, NodeConfig, NodeError,
};
use tokio::{
    io::{AsyncBufRead, AsyncBufReadExt, BufReader},
    process::{Child, Command},
    time::Instant,
};

use super::logs::{self, LogBuffer};

/// How often [`LocalCluster::await_mesh`] looks again.
const POLL: Duration = Duration::from_millis(20);

/// How long a process node has to print that it is up.
const PROCESS_START: Duration = Duration::from_secs(20);

/// How long [`LocalCluster::restart`] waits for the port mapper to let go of the name of the
/// node it replaces (a killed node's registration ends when the port mapper sees its
/// connection close).
const NAME_RELEASE: Duration = Duration::from_secs(10);

/// Clusters started by this process, for unique node names.
static CLUSTERS: AtomicU64 = AtomicU64::new(0);

/// Setting up or driving a [`LocalCluster`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// The cluster's port mapper could not start.
    #[error("the cluster's port mapper could not start: {0}")]
    PortMapper(#[source] PortMapperError),
    /// An in-process node could not start.
    #[error("node {name} could not start: {source}")]
    Node {
        /// The node.
        name: String,
        /// Why.
        #[source]
        source: NodeError,
    },
    /// A process node could not be spawned, or did not say it was up in time.
    #[error("process node {name} did not start ({reason}); its output: {output:?}")]
    Process {
        /// The node.
        name: String,
        /// What failed.
        reason: String,
        /// What it printed (standard output, then standard error).
        output: Vec<String>,
    },
    /// The deadline passed before every live node listed every other.
    #[error("no full mesh within {deadline:?}; each live node's list: {views:?}")]
    NoMesh {
        /// The deadline given.
        deadline: Duration,
        /// Each live node and the nodes it listed last.
        views: Vec<(NodeName, Vec<NodeName>)>,
    },
    /// There is no member with this index.
    #[error("the cluster has {size} nodes; there is no node {index}")]
    NoMember {
        /// The index given.
        index: usize,
        /// The number of nodes.
        size: usize,
    },
    /// The node was killed.
    #[error("node {name} was killed")]
    Killed {
        /// The node.
        name: NodeName,
    },
    /// The operation needs an in-process node.
    #[error("{what} needs at least one in-process node (its transport carries the fault)")]
    Unsupported {
        /// The operation.
        what: &'static str,
    },
    /// A signal could not be sent to a process node.
    #[error("could not signal {name}: {reason}")]
    Signal {
        /// The node.
        name: NodeName,
        /// What failed.
        reason: String,
    },
}

/// What [`ClusterBuilder::on_start`] runs on an in-process node.
type Hook = Arc<dyn Fn(Node, usize) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// The hooks of [`ClusterBuilder::on_start`], in the order they were added.
#[derive(Clone, Default)]
struct OnStart(Vec<Hook>);

impl fmt::Debug for OnStart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} on_start hooks", self.0.len())
    }
}

/// How to start a [`LocalCluster`]; from [`LocalCluster::builder`].
#[derive(Debug, Clone)]
pub struct ClusterBuilder {
    nodes: usize,
    processes: usize,
    binary: Option<PathBuf>,
    prefix: String,
    cookie: String,
    tick_time: Duration,
    handshake_timeout: Duration,
    on_start: OnStart,
    memory: bool,
    /// The number in the node names; `None`: the next of this process's clusters.
    id: Option<u64>,
}

impl Default for ClusterBuilder {
    fn default() -> Self {
        Self {
            nodes: 3,
            processes: 0,
            binary: None,
            prefix: "node".into(),
            cookie: "localcluster".into(),
            tick_time: Duration::from_secs(1),
            handshake_timeout: Duration::from_secs(3),
            on_start: OnStart::default(),
            memory: false,
            id: None,
        }
    }
}

impl ClusterBuilder {
    /// The number of in-process nodes (default 3). They come first: indexes `0..n`.
    pub fn nodes(mut self, n: usize) -> Self {
        self.nodes = n;
        self
    }

    /// Adds `n` nodes as child processes of `binary`, after the in-process ones. The binary
    /// takes the `ping` example's flags (`--sname`, `--cookie`, `--port-mapper`,
    /// `--tick-time-ms`, `--ping`) and prints `node NAME is up` and `Node.list: [..]` lines
    /// as it does; [`example_binary`] finds the example.
    pub fn processes(mut self, n: usize, binary: impl Into<PathBuf>) -> Self {
        self.processes = n;
        self.binary = Some(binary.into());
        self
    }

    /// The first part of the node names (default `node`: `node1_0@localhost`, …).
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The cookie all nodes share (default `localcluster`).
    pub fn cookie(mut self, cookie: &str) -> Self {
        self.cookie = cookie.into();
        self
    }

    /// The nodes' tick time (default 1 s): a paused or cut-off peer is down after about this
    /// long.
    pub fn tick_time(mut self, tick_time: Duration) -> Self {
        self.tick_time = tick_time;
        self
    }

    /// The in-process nodes' handshake (connect) timeout (default 3 s).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Runs the in-process nodes on one in-memory network
    /// ([`MemoryNetwork`]) instead of loopback TCP:
    /// no sockets, no port mapper, the same handshake, ticks and [`Faults`]. Process nodes
    /// cannot join such a cluster (starting one is [`ClusterError::Process`]).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use nodus::testing::LocalCluster;
    /// let cluster = LocalCluster::builder().nodes(3).memory().start().await?;
    /// cluster.await_mesh(std::time::Duration::from_secs(10)).await?;
    /// assert!(cluster.is_memory());
    /// cluster.shutdown().await;
    /// # Ok(()) }
    /// ```
    pub fn memory(mut self) -> Self {
        self.memory = true;
        self
    }

    /// Fixes the number in the node names (`node1_ID@localhost`, …); by default each cluster
    /// of the process takes the next number, so clusters of tests running in parallel never
    /// share a name. A simulation pins it, so that every run of a seed names its nodes alike
    /// (names order the simultaneous-connect rule and placement). Two live clusters with the
    /// same prefix and number mix their captured logs.
    pub fn cluster_id(mut self, id: u64) -> Self {
        self.id = Some(id);
        self
    }

    /// Runs `hook(node, i)` on each in-process node `i` (a clone of its [`Node`]) right
    /// after it starts, before the next node starts (so before the cluster is meshed), and
    /// again each time [`LocalCluster::restart`] brings it back: the place to register the
    /// functions, start the task supervisors and actors a test needs on every node, so that
    /// they come back with a restarted node. The cluster waits for the future it returns.
    /// Hooks added by several calls run in that order. Process nodes run their own binary;
    /// no hook runs for them.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use nodus::{testing::LocalCluster, TaskSupervisor, TaskSupervisorConfig};
    ///
    /// let mut cluster = LocalCluster::builder()
    ///     .nodes(2)
    ///     .on_start(|node, i| async move {
    ///         node.functions()
    ///             .register("Hello", "index", move |(): ()| async move { i });
    ///         TaskSupervisor::start(&node, TaskSupervisorConfig::new("Hello.Sup"))
    ///             .await
    ///             .expect("the task supervisor starts");
    ///     })
    ///     .start()
    ///     .await?;
    /// let before = cluster.node(1).creation();
    /// cluster.restart(1).await?; // a fresh node 1: the hook ran on it again
    /// assert_ne!(cluster.node(1).creation(), before);
    /// let sup = ("Hello.Sup", cluster.name(1));
    /// let index: usize = TaskSupervisor::async_on(cluster.node(0), sup, "Hello", "index", ())
    ///     .await?
    ///     .await?;
    /// assert_eq!(index, 1);
    /// cluster.shutdown().await;
    /// # Ok(()) }
    /// ```
    pub fn on_start<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn(Node, usize) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.on_start
            .0
            .push(Arc::new(move |node, i| Box::pin(hook(node, i))));
        self
    }

    /// Starts the port mapper and the nodes. In-process nodes start first (each followed by
    /// the [`ClusterBuilder::on_start`] hooks); each process node pings the first node at
    /// start.
    ///
    /// # Errors
    /// [`ClusterError`] if the port mapper or a node does not start.
    pub async fn start(self) -> Result<LocalCluster, ClusterError> {
        let captured = logs::install();
        let cookie = Cookie::new(self.cookie.as_str()).map_err(|e| ClusterError::Node {
            name: String::new(),
            source: NodeError::Cookie(e),
        })?;
        let (port_mapper, network) = if self.memory {
            (None, Some(MemoryNetwork::new()))
        } else {
            let port_mapper = PortMapperServer::bind(([127, 0, 0, 1], 0).into())
                .await
                .map_err(ClusterError::PortMapper)?
                .spawn();
            (Some(port_mapper), None)
        };
        let id = match self.id {
            Some(id) => id,
            None => CLUSTERS.fetch_add(1, Ordering::Relaxed),
        };
        let total = self.nodes + self.processes;
        let mut cluster = LocalCluster {
            members: Vec::new(),
            port_mapper,
            network,
            captured,
            config: self,
            cookie,
        };
        for i in 0..total {
            let name = format!("{}{}_{id}@localhost", cluster.config.prefix, i + 1);
            let parsed: NodeName = name.parse().map_err(|e| ClusterError::Node {
                name: name.clone(),
                source: NodeError::from(e),
            })?;
            let logs = logs::register(&name);
            let output = LogBuffer::default();
            let faults = Faults::new();
            match cluster.launch(i, &parsed, &faults, &logs, &output).await {
                Ok(kind) => cluster.members.push(Member {
                    name: parsed,
                    kind,
                    faults,
                    logs,
                    output,
                    paused: false,
                }),
                Err(e) => {
                    logs::unregister(&name);
                    return Err(e);
                }
            }
        }
        Ok(cluster)
    }
}

/// Spawns a process node and waits for its `node NAME is up` line.
async fn spawn_process(
    binary: &Path,
    name: &str,
    cfg: &ClusterBuilder,
    port_mapper: std::net::SocketAddr,
    ping: Option<String>,
    logs: &LogBuffer,
    output: &LogBuffer,
) -> Result<Child, ClusterError> {
    let failed = |reason: String| ClusterError::Process {
        name: name.to_string(),
        reason,
        output: snapshot(output).into_iter().chain(snapshot(logs)).collect(),
    };
    let mut command = Command::new(binary);
    command
        .args(["--sname", name, "--cookie", &cfg.cookie])
        .args(["--port-mapper", &port_mapper.to_string()])
        .args(["--tick-time-ms", &cfg.tick_time.as_millis().to_string()])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(first) = &ping {
        command.args(["--ping", first]);
    }
    let mut child = command
        .spawn()
        .map_err(|e| failed(format!("cannot run {}: {e}", binary.display())))?;
    let (up_tx, up_rx) = tokio::sync::oneshot::channel();
    if let Some(stdout) = child.stdout.take() {
        let up = format!("node {name} is up");
        tokio::spawn(collect(
            BufReader::new(stdout),
            output.clone(),
            Some((up, up_tx)),
        ));
    }
    if let Some(stderr) = child.stderr.take() {
        tokio::spawn(collect(BufReader::new(stderr), logs.clone(), None));
    }
    match tokio::time::timeout(PROCESS_START, up_rx).await {
        Ok(Ok(())) => Ok(child),
        Ok(Err(_)) => Err(failed("it exited before it was up".into())),
        Err(_) => Err(failed(format!("not up within {PROCESS_START:?}"))),
    }
}

/// Appends each line of `reader` to `buffer`; says when a line starts with `up`.
async fn collect(
    reader: impl AsyncBufRead + Unpin,
    buffer: LogBuffer,
    mut up: Option<(String, tokio::sync::oneshot::Sender<()>)>,
) {
    let mut lines = reader.lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if up
            .as_ref()
            .is_some_and(|(prefix, _)| line.starts_with(prefix))
        {
            if let Some((_, tx)) = up.take() {
                let _ = tx.send(());
            }
        }
        logs::push(&buffer, line);
    }
}

fn snapshot(buffer: &LogBuffer) -> Vec<String> {
    buffer
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .cloned()
        .collect()
}

/// Where `cargo` put the example `name` of the package under test (`target/<profile>/examples`),
/// found from the test binary's own path. `cargo test` builds the examples first; run `cargo
/// build --example NAME` before running one test binary alone. `None` if it is not there.
pub fn example_binary(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let profile_dir = exe.parent()?.parent()?;
    let path = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    path.exists().then_some(path)
}

enum Kind {
    InProcess(Node),
    Process(Child),
    Killed,
}

struct Member {
    name: NodeName,
    kind: Kind,
    faults: Faults,
    logs: LogBuffer,
    output: LogBuffer,
    paused: bool,
}

impl Member {
    /// The nodes this member lists, as far as the cluster can tell.
    fn view(&self) -> Vec<NodeName> {
        match &self.kind {
            Kind::InProcess(node) => node.list(),
            Kind::Process(_) => {
                let output = self.output.lock().unwrap_or_else(PoisonError::into_inner);
                process_view(&self.name, output.iter().map(String::as_str))
            }
            Kind::Killed => Vec::new(),
        }
    }
}

/// The nodes the process node `name` lists: its last `Node.list: [..]` line printed since its
/// latest `node NAME is up` line, so not a list of the process it replaced (a restart).
fn process_view<'a>(
    name: &NodeName,
    output: impl DoubleEndedIterator<Item = &'a str>,
) -> Vec<NodeName> {
    let up = format!("node {name} is up");
    output
        .rev()
        .take_while(|line| !line.starts_with(&up))
        .find_map(|line| line.strip_prefix("Node.list: "))
        .map(parse_list)
        .unwrap_or_default()
}

/// Parses `[a@h, b@h]`.
fn parse_list(list: &str) -> Vec<NodeName> {
    list.trim_matches(|c| c == '[' || c == ']')
        .split(", ")
        .filter_map(|name| name.parse().ok())
        .collect()
}

/// N nodes on loopback with their own port mapper; see the [module documentation](self).
pub struct LocalCluster {
    members: Vec<Member>,
    port_mapper: Option<PortMapperServerHandle>,
    /// The in-memory network of a [`ClusterBuilder::memory`] cluster.
    network: Option<MemoryNetwork>,
    captured: bool,
    /// How it was built: how to start (and restart) each node.
    config: ClusterBuilder,
    cookie: Cookie,
}

impl fmt::Debug for LocalCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.members.iter().map(|m| m.name.as_str()).collect();
        f.debug_struct("LocalCluster")
            .field("nodes", &names)
            .field("port_mapper", &self.port_mapper_addr())
            .finish_non_exhaustive()
    }
}

impl LocalCluster {
    /// A builder: 3 in-process nodes, a 1 s tick time, no process nodes.
    pub fn builder() -> ClusterBuilder {
        ClusterBuilder::default()
    }

    /// Starts `n` in-process nodes with the defaults.
    ///
    /// # Errors
    /// As [`ClusterBuilder::start`].
    pub async fn start(n: usize) -> Result<LocalCluster, ClusterError> {
        Self::builder().nodes(n).start().await
    }

    /// Whether the nodes run on an in-memory network ([`ClusterBuilder::memory`]).
    pub fn is_memory(&self) -> bool {
        self.network.is_some()
    }

    /// The cluster's port mapper (`127.0.0.1:0` on a memory cluster, which has none).
    pub fn port_mapper_addr(&self) -> std::net::SocketAddr {
        self.port_mapper
            .as_ref()
            .map_or(([127, 0, 0, 1], 0).into(), |p| p.local_addr())
    }

    /// The number of nodes, killed ones included.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the cluster has no nodes.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Every node's name, in index order.
    pub fn names(&self) -> Vec<NodeName> {
        self.members.iter().map(|m| m.name.clone()).collect()
    }

    /// Node `i`'s name.
    ///
    /// # Panics
    /// If there is no node `i`.
    pub fn name(&self, i: usize) -> &NodeName {
        &self.members[i].name
    }

    /// In-process node `i`, or `None` for a process node, a killed node or no node `i`.
    pub fn try_node(&self, i: usize) -> Option<&Node> {
        match &self.members.get(i)?.kind {
            Kind::InProcess(node) => Some(node),
            _ => None,
        }
    }

    /// In-process node `i`.
    ///
    /// # Panics
    /// If node `i` is a process node, was killed, or does not exist.
    pub fn node(&self, i: usize) -> &Node {
        match self.try_node(i) {
            Some(node) => node,
            None => panic!(
                "LocalCluster::node({i}): not a live in-process node (cluster of {})",
                self.len()
            ),
        }
    }

    /// Node `i`'s captured log: its `tracing` events (debug and above) for an in-process
    /// node, standard error (at `RUST_LOG=info`) for a process node. Empty for an in-process
    /// node if another global `tracing` subscriber without [`log_layer`](super::log_layer)
    /// was installed first (see [`LocalCluster::logs_captured`]).
    pub fn logs(&self, i: usize) -> Vec<String> {
        self.members
            .get(i)
            .map_or_else(Vec::new, |m| snapshot(&m.logs))
    }

    /// Whether in-process nodes' logs are captured (the cluster's log layer is installed).
    pub fn logs_captured(&self) -> bool {
        self.captured
    }

    /// Node `i`'s output, line by line: what its tasks print with `nodus::puts!` for an
    /// in-process node (its `System` output), standard output for a process node.
    pub fn output(&self, i: usize) -> Vec<String> {
        self.members
            .get(i)
            .map_or_else(Vec::new, |m| snapshot(&m.output))
    }

    fn member(&self, i: usize) -> Result<&Member, ClusterError> {
        self.members.get(i).ok_or(ClusterError::NoMember {
            index: i,
            size: self.members.len(),
        })
    }

    fn member_mut(&mut self, i: usize) -> Result<&mut Member, ClusterError> {
        let size = self.members.len();
        self.members
            .get_mut(i)
            .ok_or(ClusterError::NoMember { index: i, size })
    }

    /// Connects every live in-process node to each live node it does not list, and polls
    /// until every live node lists every other live node.
    ///
    /// # Errors
    /// [`ClusterError::NoMesh`], with each node's last list, when `deadline` passes first.
    pub async fn await_mesh(&self, deadline: Duration) -> Result<(), ClusterError> {
        let until = Instant::now() + deadline;
        loop {
            let live: Vec<&Member> = self
                .members
                .iter()
                .filter(|m| !matches!(m.kind, Kind::Killed))
                .collect();
            let mut whole = true;
            for member in &live {
                let view = member.view();
                let missing: Vec<&NodeName> = live
                    .iter()
                    .map(|m| &m.name)
                    .filter(|n| **n != member.name && !view.contains(n))
                    .collect();
                if missing.is_empty() {
                    continue;
                }
                whole = false;
                if let Kind::InProcess(node) = &member.kind {
                    for peer in missing {
                        let left = until.saturating_duration_since(Instant::now());
                        // A failed attempt is retried on the next round, until the deadline.
                        let _ = tokio::time::timeout(left, node.connect(peer)).await;
                    }
                }
            }
            if whole {
                return Ok(());
            }
            if Instant::now() + POLL > until {
                return Err(ClusterError::NoMesh {
                    deadline,
                    views: live.iter().map(|m| (m.name.clone(), m.view())).collect(),
                });
            }
            tokio::time::sleep(POLL).await; // the poll interval
        }
    }

    /// Starts node `i` of the cluster, called `name`: an in-process node (then its
    /// [`ClusterBuilder::on_start`] hooks), or a process of the cluster's binary, pinging node
    /// 0 unless it is node 0 (the same arguments each time).
    async fn launch(
        &self,
        i: usize,
        name: &NodeName,
        faults: &Faults,
        logs: &LogBuffer,
        output: &LogBuffer,
    ) -> Result<Kind, ClusterError> {
        let config = &self.config;
        if i < config.nodes {
            let node_config = NodeConfig::sname(name.as_str())
                .cookie(self.cookie.clone())
                .tick_time(config.tick_time)
                .handshake_timeout(config.handshake_timeout)
                .faults(faults.clone());
            let node_config = match &self.network {
                Some(network) => node_config.memory(network.clone()),
                None => node_config.port_mapper(self.port_mapper_addr()),
            };
            let node = Node::start(node_config)
                .await
                .map_err(|source| ClusterError::Node {
                    name: name.to_string(),
                    source,
                })?;
            // What the node's tasks print (nodus::puts!) is its output.
            let lines = output.clone();
            node.set_output(actor_core::io::Output::new(move |text| {
                let mut lines = lines.lock().unwrap_or_else(PoisonError::into_inner);
                lines.extend(text.lines().map(str::to_string));
            }));
            for hook in &config.on_start.0 {
                hook(node.clone(), i).await;
            }
            Ok(Kind::InProcess(node))
        } else if self.network.is_some() {
            Err(ClusterError::Process {
                name: name.to_string(),
                reason: "a process node cannot join an in-memory cluster; leave out \
                         ClusterBuilder::memory or the process nodes"
                    .into(),
                output: Vec::new(),
            })
        } else {
            let binary = config.binary.clone().unwrap_or_default();
            let first = self
                .members
                .first()
                .filter(|_| i > 0)
                .map(|m| m.name.to_string());
            let child = spawn_process(
                &binary,
                name.as_str(),
                config,
                self.port_mapper_addr(),
                first,
                logs,
                output,
            )
            .await?;
            Ok(Kind::Process(child))
        }
    }

    /// The fault switchboard of node `i`'s transport (kept across [`LocalCluster::restart`]),
    /// for faults beyond partitions and pauses: a chaos policy
    /// ([`Faults::set_chaos`]), say. A process node has one too, but its transport does not
    /// read it.
    ///
    /// # Errors
    /// [`ClusterError::NoMember`].
    pub fn faults(&self, i: usize) -> Result<&Faults, ClusterError> {
        Ok(&self.member(i)?.faults)
    }

    /// Waits (polling, bounded by [`NAME_RELEASE`]) until the cluster's port mapper no longer
    /// lists `name`.
    async fn await_name_released(&self, name: &NodeName) -> Result<(), ClusterError> {
        if let Some(network) = &self.network {
            let until = Instant::now() + NAME_RELEASE;
            while network.nodes().contains(name) {
                if Instant::now() + POLL > until {
                    return Err(ClusterError::Node {
                        name: name.to_string(),
                        source: NodeError::NameInUse { name: name.clone() },
                    });
                }
                tokio::time::sleep(POLL).await; // the poll interval
            }
            return Ok(());
        }
        let client = PortMapperClient::new(self.port_mapper_addr());
        let until = Instant::now() + NAME_RELEASE;
        loop {
            match client.port_please(name.name()).await {
                Ok(None) => return Ok(()),
                Ok(Some(_)) | Err(_) if Instant::now() + POLL <= until => {}
                Ok(Some(_)) => {
                    return Err(ClusterError::Node {
                        name: name.to_string(),
                        source: NodeError::NameInUse { name: name.clone() },
                    })
                }
                Err(e) => return Err(ClusterError::PortMapper(e)),
            }
            tokio::time::sleep(POLL).await; // the poll interval
        }
    }

    /// Brings node `i` back under the same name, on a fresh node (a new creation, as a
    /// restarted BEAM node): an in-process node starts again and its
    /// [`ClusterBuilder::on_start`] hooks run again; a process node is spawned again from the
    /// same binary with the same arguments. A live node is killed first (as
    /// [`LocalCluster::kill`]).
    ///
    /// It is still node `i` of the cluster: same port mapper, cookie and tick time;
    /// [`LocalCluster::kill`], [`LocalCluster::pause`], [`LocalCluster::partition`] and
    /// [`LocalCluster::await_mesh`] work on it as before. It starts neither paused nor
    /// frozen, and connected to no one but the node it pings (a process node pings node 0):
    /// peers connect on their next message to it, or at [`LocalCluster::await_mesh`]. A
    /// partition held on another in-process node's side stays until [`LocalCluster::heal`].
    /// Its [`LocalCluster::logs`] and [`LocalCluster::output`] go on after those of the node it
    /// replaces. Pids of the old node do not reach the new one (their creation differs).
    ///
    /// See [`ClusterBuilder::on_start`] for an example.
    ///
    /// # Errors
    /// [`ClusterError::NoMember`]; [`ClusterError::Node`] with [`NodeError::NameInUse`] if the
    /// port mapper still lists the old node after 10 s; [`ClusterError::Node`] or
    /// [`ClusterError::Process`] if the new node does not start (then it stays killed).
    pub async fn restart(&mut self, i: usize) -> Result<(), ClusterError> {
        if !matches!(self.member(i)?.kind, Kind::Killed) {
            self.kill(i).await?;
        }
        let member = self.member(i)?;
        let (name, faults) = (member.name.clone(), member.faults.clone());
        let (logs, output) = (member.logs.clone(), member.output.clone());
        self.await_name_released(&name).await?;
        faults.clear();
        let kind = self.launch(i, &name, &faults, &logs, &output).await?;
        let member = self.member_mut(i)?;
        member.kind = kind;
        member.paused = false;
        Ok(())
    }

    /// Kills node `i`: `SIGKILL` for a process node; an in-process node halts
    /// ([`Node::halt`](crate::remote::Node::halt): no graceful leave; its sockets close, so
    /// peers see `connection_closed` at once, as for a killed process).
    ///
    /// # Errors
    /// [`ClusterError::NoMember`] or [`ClusterError::Killed`].
    pub async fn kill(&mut self, i: usize) -> Result<(), ClusterError> {
        let member = self.member_mut(i)?;
        member.faults.clear();
        match std::mem::replace(&mut member.kind, Kind::Killed) {
            // Abruptly, as a crash: no graceful leave.
            Kind::InProcess(node) => node.halt().await,
            Kind::Process(mut child) => {
                let _ = child.kill().await;
            }
            Kind::Killed => {
                return Err(ClusterError::Killed {
                    name: member.name.clone(),
                })
            }
        }
        member.paused = false;
        Ok(())
    }

    /// Pauses node `i`: `SIGSTOP` for a process node; an in-process node's transport freezes
    /// (its sessions neither read nor write, and it answers no handshake). Peers see
    /// `tick_timeout` after about the tick time.
    ///
    /// # Errors
    /// [`ClusterError::NoMember`], [`ClusterError::Killed`], or [`ClusterError::Signal`].
    pub async fn pause(&mut self, i: usize) -> Result<(), ClusterError> {
        self.stop_or_continue(i, true).await
    }

    /// Resumes a paused node: `SIGCONT`, or thaws the in-process node's transport.
    ///
    /// # Errors
    /// As [`LocalCluster::pause`].
    pub async fn resume(&mut self, i: usize) -> Result<(), ClusterError> {
        self.stop_or_continue(i, false).await
    }

    async fn stop_or_continue(&mut self, i: usize, pause: bool) -> Result<(), ClusterError> {
        let member = self.member_mut(i)?;
        match &member.kind {
            Kind::InProcess(_) if pause => member.faults.freeze(),
            Kind::InProcess(_) => member.faults.thaw(),
            Kind::Process(child) => {
                let signal = if pause { "-STOP" } else { "-CONT" };
                signal_process(&member.name, child, signal).await?;
            }
            Kind::Killed => {
                return Err(ClusterError::Killed {
                    name: member.name.clone(),
                })
            }
        }
        member.paused = pause;
        Ok(())
    }

    /// Cuts nodes `a` and `b` off from each other: frames between them are dropped both ways
    /// and they cannot connect, so both see `tick_timeout` after about the tick time (unless
    /// one of them is paused or killed first). Other nodes are unaffected.
    ///
    /// # Errors
    /// [`ClusterError::NoMember`], or [`ClusterError::Unsupported`] if both are process nodes.
    pub fn partition(&self, a: usize, b: usize) -> Result<(), ClusterError> {
        self.cut(a, b, true)
    }

    /// Lets frames between `a` and `b` through again. They stay disconnected if they timed
    /// out meanwhile; [`LocalCluster::await_mesh`] connects them again.
    ///
    /// # Errors
    /// As [`LocalCluster::partition`].
    pub fn heal(&self, a: usize, b: usize) -> Result<(), ClusterError> {
        self.cut(a, b, false)
    }

    fn cut(&self, a: usize, b: usize, cut: bool) -> Result<(), ClusterError> {
        let (ma, mb) = (self.member(a)?, self.member(b)?);
        let in_process = |m: &Member| !matches!(m.kind, Kind::Process(_));
        if !in_process(ma) && !in_process(mb) {
            return Err(ClusterError::Unsupported {
                what: "partition between two process nodes",
            });
        }
        // Each in-process side drops the other's frames; one side is enough for both to see
        // silence, and a process side cannot be told.
        for (m, peer) in [(ma, &mb.name), (mb, &ma.name)] {
            if in_process(m) {
                if cut {
                    m.faults.block(peer.clone());
                } else {
                    m.faults.unblock(peer);
                }
            }
        }
        Ok(())
    }

    /// Shuts every node down (killing process nodes) and stops the port mapper.
    pub async fn shutdown(mut self) {
        for i in 0..self.members.len() {
            let _ = self.kill(i).await;
        }
        if let Some(port_mapper) = self.port_mapper.take() {
            port_mapper.shutdown().await;
        }
    }
}

async fn signal_process(name: &NodeName, child: &Child, signal: &str) -> Result<(), ClusterError> {
    let failed = |reason: String| ClusterError::Signal {
        name: name.clone(),
        reason,
    };
    let pid = child.id().ok_or_else(|| failed("it has exited".into()))?;
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .await
        .map_err(|e| failed(format!("cannot run kill: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(failed(format!("kill {signal} {pid}: {status}")))
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for member in &mut self.members {
            member.faults.clear();
            logs::unregister(member.name.as_str());
            match std::mem::replace(&mut member.kind, Kind::Killed) {
                Kind::InProcess(node) => {
                    // Shut down in the background if a runtime is still there; otherwise
                    // dropping the node stops its listener, and the runtime's end its sessions.
                    if let Ok(rt) = tokio::runtime::Handle::try_current() {
                        rt.spawn(node.shutdown());
                    }
                }
                Kind::Process(mut child) => {
                    let _ = child.start_kill();
                }
                Kind::Killed => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_node_list() {
        assert_eq!(
            parse_list("[a@localhost, b@localhost]"),
            vec![
                "a@localhost".parse::<NodeName>().unwrap(),
                "b@localhost".parse().unwrap()
            ]
        );
        assert!(parse_list("[]").is_empty());
    }

    #[test]
    fn a_process_view_is_that_of_its_latest_start() {
        let name: NodeName = "b@localhost".parse().unwrap();
        let a: NodeName = "a@localhost".parse().unwrap();
        let first = [
            "node b@localhost is up (listening on 127.0.0.1:1)",
            "Node.list: [a@localhost]",
        ];
        assert_eq!(
            process_view(&name, first.into_iter()),
            std::slice::from_ref(&a)
        );
        // Restarted: until the new process prints a list, it lists no one.
        let restarted = [
            &first[..],
            &["node b@localhost is up (listening on 127.0.0.1:2)"],
        ];
        let lines = restarted.concat();
        assert!(process_view(&name, lines.iter().copied()).is_empty());
        let lines = [&lines[..], &["Node.list: [a@localhost]"]].concat();
        assert_eq!(process_view(&name, lines.iter().copied()), [a]);
    }
}
