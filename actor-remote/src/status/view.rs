//! What `GET /api/nodes` answers: a [`Snapshot`], plain JSON with strings for names and
//! pids (not the wire forms of [`Info`](crate::node::admin::Info)).

use serde::{Deserialize, Serialize};

use crate::node::admin::{ChildKind, Info};

/// Everything the status page shows, as `GET /api/nodes` serves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Snapshot {
    /// The node serving the page.
    pub node: String,
    /// When the snapshot was taken, in milliseconds since the Unix epoch.
    pub generated_at_ms: u64,
    /// This node first, then its peers: connected ones (sorted by name), then those that
    /// went down or left (most recent first).
    pub nodes: Vec<NodeEntry>,
    /// The cluster's topologies and recent events, if the page was given a
    /// [`Cluster`](crate::Cluster).
    pub cluster: Option<ClusterView>,
}

/// The state of a node as the serving node sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum PeerState {
    /// Connected (or the serving node itself).
    Up,
    /// The connection went down without a graceful leave (a crash, a kill, a tick timeout).
    Down,
    /// It left gracefully (`NodeDownReason::Shutdown`).
    Left,
}

/// One node of a [`Snapshot`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NodeEntry {
    /// Its name.
    pub name: String,
    /// Whether it is the node serving the page.
    pub this: bool,
    /// Up, down or left.
    pub state: PeerState,
    /// Whether the connection is hidden (a `nodus` command asking, say).
    pub hidden: bool,
    /// Since when it is in this state, in milliseconds since the Unix epoch. For a node
    /// already connected when the page started, that start.
    pub since_ms: u64,
    /// Why it went down (`connection_closed`, `shutdown`, ...), for a node not up.
    pub reason: Option<String>,
    /// What it says about itself (`nodus.info`), for a node that is up and answered.
    pub details: Option<NodeDetails>,
    /// Why there are no details for a node that is up (no answer in time, say).
    pub error: Option<String>,
}

/// What a node says about itself: [`Info`] with names and pids as strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NodeDetails {
    /// The version of nodus it runs.
    pub version: String,
    /// The distribution protocol version it speaks.
    pub protocol: u16,
    /// How long it has been running, in milliseconds.
    pub uptime_ms: u64,
    /// Its visible peers (its `Node.list`).
    pub nodes: Vec<String>,
    /// Its hidden peers.
    pub hidden_nodes: Vec<String>,
    /// The names registered on it.
    pub registered: Vec<String>,
    /// Its supervision tree, depth first from the root supervisor.
    pub tree: Vec<TreeNode>,
    /// Its task supervisors and their running tasks.
    pub task_supervisors: Vec<TaskSupervisorView>,
}

/// One process of a supervision tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TreeNode {
    /// How far below the root supervisor (0 for the root).
    pub depth: u32,
    /// Its child id.
    pub id: String,
    /// The name it is registered under, if any.
    pub name: Option<String>,
    /// Its pid, or `None` if it is not running.
    pub pid: Option<String>,
    /// `supervisor`, `task_supervisor` or `worker`.
    pub kind: String,
    /// A supervisor that did not list its children in time.
    pub children_unknown: bool,
}

/// A task supervisor and its running tasks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TaskSupervisorView {
    /// Its registered name.
    pub name: String,
    /// Its pid.
    pub pid: String,
    /// The ids of its running tasks; `None` if it did not answer in time.
    pub children: Option<Vec<u64>>,
}

/// The cluster's part of a [`Snapshot`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ClusterView {
    /// Each topology and its strategy.
    pub topologies: Vec<TopologyView>,
    /// The most recent cluster events (not `seen`), newest first.
    pub events: Vec<ClusterEventView>,
    /// Connects made since the page started.
    pub connects: u64,
    /// Failed connects since the page started.
    pub failures: u64,
    /// Nodes pruned since the page started.
    pub prunes: u64,
}

/// A topology of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TopologyView {
    /// Its name.
    pub name: String,
    /// Its strategy (`static_hosts`, `kubernetes_dns`, ...).
    pub strategy: String,
}

/// A cluster event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ClusterEventView {
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// `connected`, `connect_failed`, `pruned` or `dropped`.
    pub kind: String,
    /// The topology.
    pub topology: String,
    /// The node concerned, if any.
    pub node: Option<String>,
    /// More: why a connect failed or an input was dropped.
    pub detail: Option<String>,
}

impl From<Info> for NodeDetails {
    fn from(info: Info) -> Self {
        let names = |v: Vec<actor_core::NodeName>| v.into_iter().map(|n| n.to_string()).collect();
        NodeDetails {
            version: info.version,
            protocol: info.protocol,
            uptime_ms: u64::try_from(info.uptime.as_millis()).unwrap_or(u64::MAX),
            nodes: names(info.nodes),
            hidden_nodes: names(info.hidden_nodes),
            registered: info.registered,
            tree: info
                .tree
                .into_iter()
                .map(|e| TreeNode {
                    depth: e.depth,
                    id: e.id,
                    name: e.name,
                    pid: e.pid.map(|p| p.to_string()),
                    kind: match e.kind {
                        ChildKind::Supervisor => "supervisor",
                        ChildKind::TaskSupervisor => "task_supervisor",
                        _ => "worker",
                    }
                    .to_string(),
                    children_unknown: e.children_unknown,
                })
                .collect(),
            task_supervisors: info
                .task_supervisors
                .into_iter()
                .map(|t| TaskSupervisorView {
                    name: t.name,
                    pid: t.pid.to_string(),
                    children: t.children,
                })
                .collect(),
        }
    }
}
