//! A node's status page and its JSON (feature `status`, on [axum]): a small live console of
//! the cluster, as Observer's nodes view across nodes.
//!
//! [`Status`] watches a [`Node`] (and, if given, its [`Cluster`]) and serves:
//!
//! | route | what |
//! |---|---|
//! | `GET /` | the page (HTML with its own script; no external assets) |
//! | `GET /api/nodes` | a [`Snapshot`] as JSON: this node, its peers with their state (`up`, `down`, `left`) and since when, why a node went down, each node's version, uptime, supervision tree and task supervisors (asked with [`admin::info`], bounded by [`StatusBuilder::info_timeout`]), and the cluster's topologies and recent events |
//! | `GET /api/events` | server-sent events: `nodeup`, `nodedown` and `cluster`, each with a JSON [`Change`] |
//!
//! The page opens `api/events` and fetches `api/nodes` again on each event (and every 30 s
//! should the event stream be down), so a node joining or leaving shows without a reload.
//! Its links are relative: the router may be served on its own ([`Status::serve`]) or
//! nested under a prefix of an application's router (`Router::nest("/status", ..)`, the page
//! at `/status`).
//!
//! The page has no authentication: it tells anyone who reaches it the cluster's node names,
//! registered names and supervision trees (nothing more; it changes nothing). Serve it on a
//! private address, or behind the application's own access control.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use actor_remote::{port_mapper::PortMapperServer, status::Status, Cookie, Node, NodeConfig};
//! let epmd = PortMapperServer::bind("127.0.0.1:0".parse()?).await?.spawn();
//! let node = Node::start(NodeConfig::sname("web@localhost")
//!     .cookie(Cookie::new("c")?)
//!     .port_mapper(epmd.local_addr())).await?;
//! let status = Status::new(&node);
//! let server = status.serve("127.0.0.1:0".parse()?).await?;
//! // GET http://{server.local_addr()}/ is the page; the same data as a value:
//! let snapshot = status.snapshot().await?;
//! assert_eq!(snapshot.nodes[0].name, "web@localhost");
//! assert!(snapshot.nodes[0].details.as_ref().is_some_and(|d| !d.tree.is_empty()));
//! server.shutdown(Duration::from_secs(5)).await?;
//! # node.shutdown().await; Ok(()) }
//! ```

mod table;
mod view;

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{
    extract::State,
    http::{header, StatusCode},
    response::{
        sse::{Event, KeepAlive, Sse},
        IntoResponse, Response,
    },
    routing::get,
    Json, Router,
};
use futures::{future::join_all, Stream};
use serde::{Deserialize, Serialize};
use tokio::{
    net::TcpListener,
    sync::{broadcast, oneshot, watch},
    task::{AbortHandle, JoinHandle},
};

use crate::{
    node::{admin, WeakNode},
    Cluster, ListKind, Node, NodeEvent,
};
/// The axum this page is built on, to nest [`Status::router`] in an application's router
/// with the same version.
pub use axum;
use table::Table;
pub use view::{
    ClusterEventView, ClusterView, NodeDetails, NodeEntry, PeerState, Snapshot, TaskSupervisorView,
    TopologyView, TreeNode,
};

/// The default bound on asking one node for its [`admin::info`].
pub const DEFAULT_INFO_TIMEOUT: Duration = Duration::from_secs(2);
/// How many nodes that went down or left the page keeps listing, by default.
pub const DEFAULT_KEEP_GONE: usize = 32;
/// How many cluster events the page lists.
const KEEP_EVENTS: usize = 20;
/// How often an idle event stream sends a comment, so proxies keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The page, with its script and style.
const PAGE: &str = include_str!("status/page.html");

/// The status page could not be served or stopped late.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StatusError {
    /// The address could not be bound.
    #[error("the status page cannot listen on {addr}: {source}; choose a free address")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The server failed while serving.
    #[error("the status page's server failed: {0}")]
    Serve(#[source] std::io::Error),
    /// Requests were still running at the shutdown's deadline; they were dropped.
    #[error("requests to the status page were still running after {0:?}; they were dropped")]
    DrainTimeout(Duration),
    /// The node has stopped.
    #[error("the node has stopped; start a status page on a running node")]
    NodeStopped,
}

/// A change the page hears about on `GET /api/events` (the event's data, as JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Change {
    /// `nodeup`, `nodedown` or `cluster` (also the event's name).
    pub kind: String,
    /// The node concerned, if any.
    pub node: Option<String>,
    /// Why a node went down, or what the cluster did.
    pub detail: Option<String>,
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: u64,
}

/// How a [`Status`] is set up: [`Status::builder`].
#[derive(Debug)]
pub struct StatusBuilder {
    node: Node,
    cluster: Option<(Vec<TopologyView>, broadcast::Receiver<crate::ClusterEvent>)>,
    info_timeout: Duration,
    keep_gone: usize,
}

impl StatusBuilder {
    /// Shows `cluster`'s topologies and strategies, and its events from now on.
    pub fn cluster(mut self, cluster: &Cluster) -> Self {
        let topologies = cluster
            .strategies()
            .map(|(name, strategy)| TopologyView {
                name: name.to_string(),
                strategy: strategy.to_string(),
            })
            .collect();
        self.cluster = Some((topologies, cluster.events()));
        self
    }

    /// The bound on asking each node for its details (default [`DEFAULT_INFO_TIMEOUT`]); a
    /// node that does not answer in time is listed with an error instead.
    pub fn info_timeout(mut self, timeout: Duration) -> Self {
        self.info_timeout = timeout;
        self
    }

    /// How many nodes that went down or left stay listed (default [`DEFAULT_KEEP_GONE`]).
    pub fn keep_gone(mut self, n: usize) -> Self {
        self.keep_gone = n;
        self
    }

    /// Starts watching the node (and the cluster). Must be called within a tokio runtime.
    pub fn start(self) -> Status {
        let now = now_ms();
        let mut table = Table::new(self.keep_gone, KEEP_EVENTS);
        // Subscribe before listing, so nothing falls between the two.
        let mut node_events = self.node.events();
        for peer in self.node.list_kind(ListKind::Visible) {
            table.connected(peer, false, now);
        }
        for peer in self.node.list_kind(ListKind::Hidden) {
            table.connected(peer, true, now);
        }
        let (changes, _) = broadcast::channel(256);
        let (closed, _) = watch::channel(false);
        let (topologies, cluster_events) = match self.cluster {
            Some((t, rx)) => (Some(t), Some(rx)),
            None => (None, None),
        };
        let shared = Arc::new(Shared {
            node: self.node.downgrade(),
            name: self.node.name().to_string(),
            table: Mutex::new(table),
            topologies,
            changes,
            closed,
            info_timeout: self.info_timeout,
            tasks: Mutex::new(Vec::new()),
        });
        let weak = Arc::downgrade(&shared);
        let watcher = tokio::spawn(async move {
            loop {
                match node_events.recv().await {
                    Ok(event) => {
                        let Some(shared) = weak.upgrade() else { return };
                        shared.node_event(&event);
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let Some(shared) = weak.upgrade() else { return };
                        shared.resync();
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        let mut tasks = vec![watcher.abort_handle()];
        if let Some(mut rx) = cluster_events {
            let weak = Arc::downgrade(&shared);
            let watcher = tokio::spawn(async move {
                loop {
                    match rx.recv().await {
                        Ok(event) => {
                            let Some(shared) = weak.upgrade() else { return };
                            shared.cluster_event(&event);
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(broadcast::error::RecvError::Closed) => return,
                    }
                }
            });
            tasks.push(watcher.abort_handle());
        }
        *shared.lock_tasks() = tasks;
        Status { shared }
    }
}

/// A node's status page: what it watches and serves. Cheap to clone; the watching stops
/// when the last clone (and every router made from it) is dropped.
#[derive(Debug, Clone)]
pub struct Status {
    shared: Arc<Shared>,
}

struct Shared {
    node: WeakNode,
    name: String,
    table: Mutex<Table>,
    topologies: Option<Vec<TopologyView>>,
    changes: broadcast::Sender<Change>,
    closed: watch::Sender<bool>,
    info_timeout: Duration,
    tasks: Mutex<Vec<AbortHandle>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Status")
            .field("node", &self.name)
            .finish_non_exhaustive()
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        for task in self.lock_tasks().drain(..) {
            task.abort();
        }
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_tasks(&self) -> std::sync::MutexGuard<'_, Vec<AbortHandle>> {
        self.tasks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn node_event(&self, event: &NodeEvent) {
        let at_ms = now_ms();
        if !self.lock().apply(event, at_ms) {
            return;
        }
        let change = match event {
            NodeEvent::NodeUp { node, .. } => Change {
                kind: "nodeup".into(),
                node: Some(node.to_string()),
                detail: None,
                at_ms,
            },
            NodeEvent::NodeDown { node, reason, .. } => Change {
                kind: "nodedown".into(),
                node: Some(node.to_string()),
                detail: Some(reason.to_string()),
                at_ms,
            },
        };
        let _ = self.changes.send(change);
    }

    /// Events were missed: mark what is connected now as up, tell the pages to look again.
    fn resync(&self) {
        let Some(node) = self.node.upgrade() else {
            return;
        };
        let at_ms = now_ms();
        {
            let mut table = self.lock();
            let known: Vec<_> = table
                .peers()
                .into_iter()
                .filter(|(_, p)| p.state == PeerState::Up)
                .map(|(n, _)| n)
                .collect();
            let visible = node.list_kind(ListKind::Visible);
            let hidden = node.list_kind(ListKind::Hidden);
            for peer in &known {
                if !visible.contains(peer) && !hidden.contains(peer) {
                    table.apply(
                        &NodeEvent::NodeDown {
                            node: peer.clone(),
                            hidden: false,
                            reason: crate::NodeDownReason::Disconnect,
                        },
                        at_ms,
                    );
                }
            }
            for (list, hidden) in [(visible, false), (hidden, true)] {
                for peer in list.into_iter().filter(|p| !known.contains(p)) {
                    table.connected(peer, hidden, at_ms);
                }
            }
        }
        let _ = self.changes.send(Change {
            kind: "cluster".into(),
            node: None,
            detail: Some("resync".into()),
            at_ms,
        });
    }

    fn cluster_event(&self, event: &crate::ClusterEvent) {
        let at_ms = now_ms();
        if !self.lock().cluster(event, at_ms) {
            return;
        }
        let node = match event {
            crate::ClusterEvent::Connected { node, .. }
            | crate::ClusterEvent::ConnectFailed { node, .. }
            | crate::ClusterEvent::Pruned { node, .. } => Some(node.to_string()),
            _ => None,
        };
        let kind = match event {
            crate::ClusterEvent::Connected { .. } => "connected",
            crate::ClusterEvent::ConnectFailed { .. } => "connect_failed",
            crate::ClusterEvent::Pruned { .. } => "pruned",
            _ => "dropped",
        };
        let _ = self.changes.send(Change {
            kind: "cluster".into(),
            node,
            detail: Some(kind.into()),
            at_ms,
        });
    }
}

impl Status {
    /// Watches `node` with the defaults: [`Status::builder`]`(node).start()`.
    pub fn new(node: &Node) -> Status {
        Status::builder(node).start()
    }

    /// A status page for `node`, to configure.
    pub fn builder(node: &Node) -> StatusBuilder {
        StatusBuilder {
            node: node.clone(),
            cluster: None,
            info_timeout: DEFAULT_INFO_TIMEOUT,
            keep_gone: DEFAULT_KEEP_GONE,
        }
    }

    /// What `GET /api/nodes` answers: this node and its peers, each up node's details asked
    /// at once (each bounded by the info timeout, all in parallel).
    ///
    /// # Errors
    /// [`StatusError::NodeStopped`] once the node has stopped.
    pub async fn snapshot(&self) -> Result<Snapshot, StatusError> {
        let shared = &self.shared;
        let node = shared.node.upgrade().ok_or(StatusError::NodeStopped)?;
        let (peers, cluster) = {
            let table = shared.lock();
            let cluster = shared.topologies.as_ref().map(|t| ClusterView {
                topologies: t.clone(),
                events: table.events(),
                connects: table.connects,
                failures: table.failures,
                prunes: table.prunes,
            });
            (table.peers(), cluster)
        };
        let timeout = shared.info_timeout;
        // Two steps (start, await) each bounded by `timeout` inside; this bounds the sum.
        let ask = |target: actor_core::NodeName| {
            let node = node.clone();
            async move {
                match tokio::time::timeout(2 * timeout, admin::info(&node, &target, timeout)).await
                {
                    Ok(Ok(info)) => Ok(NodeDetails::from(info)),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err(format!("no answer within {:?}", 2 * timeout)),
                }
            }
        };
        let mut targets = vec![node.name().clone()];
        targets.extend(
            peers
                .iter()
                .filter(|(_, p)| p.state == PeerState::Up)
                .map(|(n, _)| n.clone()),
        );
        let mut answers = join_all(targets.into_iter().map(ask)).await.into_iter();
        let split = |answer: Option<Result<NodeDetails, String>>| match answer {
            Some(Ok(d)) => (Some(d), None),
            Some(Err(e)) => (None, Some(e)),
            None => (None, None),
        };
        let (details, error) = split(answers.next());
        let mut nodes = vec![NodeEntry {
            name: node.name().to_string(),
            this: true,
            state: PeerState::Up,
            hidden: node.config().hidden,
            since_ms: now_ms().saturating_sub(
                details
                    .as_ref()
                    .map(|d: &NodeDetails| d.uptime_ms)
                    .unwrap_or(0),
            ),
            reason: None,
            details,
            error,
        }];
        for (name, peer) in peers {
            let (details, error) = if peer.state == PeerState::Up {
                split(answers.next())
            } else {
                (None, None)
            };
            nodes.push(NodeEntry {
                name: name.to_string(),
                this: false,
                state: peer.state,
                hidden: peer.hidden,
                since_ms: peer.since_ms,
                reason: peer.reason,
                details,
                error,
            });
        }
        Ok(Snapshot {
            node: shared.name.clone(),
            generated_at_ms: now_ms(),
            nodes,
            cluster,
        })
    }

    /// Every [`Change`] from now on (what `GET /api/events` streams).
    pub fn changes(&self) -> broadcast::Receiver<Change> {
        self.shared.changes.subscribe()
    }

    /// Ends every open `GET /api/events` stream (and any opened later), so that a graceful
    /// shutdown of the HTTP server is not held up by them. [`StatusServer::shutdown`] does
    /// this; call it before shutting down a server of your own that nests [`Status::router`].
    pub fn close(&self) {
        let _ = self.shared.closed.send(true);
    }

    /// The routes (`/`, `/api/nodes`, `/api/events`), to serve or to nest in an
    /// application's router.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/", get(page))
            .route("/api/nodes", get(nodes))
            .route("/api/events", get(events))
            .with_state(self.clone())
    }

    /// Serves [`Status::router`] on `addr` (port 0: one the OS chooses, see
    /// [`StatusServer::local_addr`]) on a tokio task, until [`StatusServer::shutdown`].
    ///
    /// # Errors
    /// [`StatusError::Bind`] if `addr` cannot be bound.
    pub async fn serve(&self, addr: SocketAddr) -> Result<StatusServer, StatusError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StatusError::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| StatusError::Bind { addr, source })?;
        let (stop, stopped) = oneshot::channel::<()>();
        let server = axum::serve(listener, self.router()).with_graceful_shutdown(async move {
            let _ = stopped.await;
        });
        let task = tokio::spawn(async move { server.await });
        tracing::info!(%local_addr, "status page listening");
        Ok(StatusServer {
            local_addr,
            status: self.clone(),
            stop: Some(stop),
            task,
        })
    }
}

/// A status page served by [`Status::serve`]. Dropping it stops the server at once;
/// [`StatusServer::shutdown`] lets requests finish.
#[derive(Debug)]
pub struct StatusServer {
    local_addr: SocketAddr,
    status: Status,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl StatusServer {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, ends the event streams, and waits for requests under way to finish,
    /// at most `deadline`.
    ///
    /// # Errors
    /// [`StatusError::DrainTimeout`] if requests were still running at the deadline (they
    /// are dropped), [`StatusError::Serve`] if the server had failed.
    pub async fn shutdown(mut self, deadline: Duration) -> Result<(), StatusError> {
        self.status.close();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match tokio::time::timeout(deadline, &mut self.task).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(e))) => Err(StatusError::Serve(e)),
            Ok(Err(join)) => Err(StatusError::Serve(std::io::Error::other(join.to_string()))),
            Err(_) => Err(StatusError::DrainTimeout(deadline)),
        }
    }
}

impl Drop for StatusServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        PAGE,
    )
}

async fn nodes(State(status): State<Status>) -> Response {
    match status.snapshot().await {
        Ok(snapshot) => ([(header::CACHE_CONTROL, "no-store")], Json(snapshot)).into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    }
}

async fn events(
    State(status): State<Status>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let rx = status.changes();
    let closed = status.shared.closed.subscribe();
    let stream = futures::stream::unfold((rx, closed), |(mut rx, mut closed)| async move {
        if *closed.borrow() {
            return None;
        }
        let event = tokio::select! {
            _ = closed.changed() => return None,
            got = rx.recv() => match got {
                Ok(change) => Event::default()
                    .event(change.kind.clone())
                    .json_data(&change)
                    .unwrap_or_else(|_| Event::default().event(change.kind.clone())),
                // Changes were missed: the page looks again.
                Err(broadcast::error::RecvError::Lagged(_)) => Event::default()
                    .event("cluster")
                    .data("{\"kind\":\"cluster\",\"detail\":\"lagged\"}"),
                Err(broadcast::error::RecvError::Closed) => return None,
            },
        };
        Some((Ok(event), (rx, closed)))
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
