//! [`PartialMesh`]: a HyParView overlay ([`hyparview`]) instead of the
//! full mesh, for large clusters.
//!
//! Each node keeps sessions only with its active view (5 neighbours by default); the nodes
//! it knows without a session are its passive view. The overlay's messages travel as casts
//! to a service actor every node of the overlay runs, registered locally as
//! [`SERVICE`] (`"nodus.hyparview"`): a cast to a node without a session dials it on
//! demand, as any cast does. A session that is not to a neighbour (opened for a shuffle's
//! answer, a join, or the application's own casts to a non-neighbour) is closed once no
//! cast from this node has used it for [`PartialMesh::idle_timeout`]. A neighbour whose
//! session goes down (ticks, a closed connection) is a failure: it leaves the views and the
//! node asks passive nodes until its active view is full again.
//!
//! The node must run with `connect_all` off ([`NodeConfig::connect_all`]), or every session
//! would pull in the full mesh: [`Strategy::start`] refuses otherwise.
//!
//! What a node gives up: [`Node::list`] is its neighbours and its open on-demand sessions,
//! not the cluster (the overlay's knowledge is [`MeshView::members`], which is partial too);
//! a first message to a non-neighbour waits for a connect; global names and process groups
//! are exchanged only between connected nodes.
//!
//! [`NodeConfig::connect_all`]: crate::NodeConfig::connect_all
//! [`Node::list`]: crate::Node::list

use std::{
    collections::{BTreeSet, HashMap},
    hash::{Hash, Hasher},
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use actor_core::{
    ractor::{Actor, ActorProcessingErr, ActorRef},
    Destination, NodeName,
};
use serde::{Deserialize, Serialize};
use tokio::{
    sync::{broadcast::error::RecvError, mpsc},
    time::{Instant, MissedTickBehavior},
};

use super::{
    hyparview::{self, Message, Output, Overlay},
    Context, Running, Strategy, StrategyError,
};
use crate::NodeEvent;

/// The name of the overlay's service actor on each node.
pub const SERVICE: &str = "nodus.hyparview";

/// How many overlay messages may wait for the overlay's task (more are dropped, as lost
/// messages: the protocol's timeouts cover them).
pub const INBOX_CAPACITY: usize = 4096;

/// One overlay message between two nodes' service actors.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MeshMsg {
    /// The sending node.
    pub from: NodeName,
    /// The message.
    pub msg: Message<NodeName>,
}

actor_core::serde_message!(MeshMsg = "nodus.hyparview");

/// A HyParView partial mesh (see the [module docs](self)): `contacts` are the nodes a new
/// node joins through, tried in turn (the first node of a cluster has none, or only itself).
///
/// ```
/// use std::time::Duration;
/// use actor_remote::cluster::{PartialMesh, Topology};
/// let mesh = PartialMesh::new(["seed@10.0.0.1".parse()?]).idle_timeout(Duration::from_secs(10));
/// let view = mesh.view(); // neighbours and members, while it runs
/// let topology = Topology::new("overlay", mesh);
/// assert_eq!(topology.kind(), "partial_mesh");
/// assert!(view.neighbors().is_empty());
/// # Ok::<(), actor_core::NodeNameError>(())
/// ```
#[derive(Debug)]
pub struct PartialMesh {
    contacts: Vec<NodeName>,
    overlay: hyparview::Config,
    tick: Duration,
    idle_timeout: Duration,
    overlay_idle_timeout: Duration,
    seed: Option<u64>,
    view: MeshView,
}

/// The default [`PartialMesh::idle_timeout`].
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// The default [`PartialMesh::overlay_idle_timeout`].
pub const DEFAULT_OVERLAY_IDLE_TIMEOUT: Duration = Duration::from_secs(1);
/// The default [`PartialMesh::tick`].
pub const DEFAULT_TICK: Duration = Duration::from_millis(100);

impl PartialMesh {
    /// A partial mesh joined through `contacts`, with the paper's sizes (see
    /// [`hyparview::Config`]).
    pub fn new(contacts: impl IntoIterator<Item = NodeName>) -> Self {
        Self {
            contacts: contacts.into_iter().collect(),
            overlay: hyparview::Config::default(),
            tick: DEFAULT_TICK,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            overlay_idle_timeout: DEFAULT_OVERLAY_IDLE_TIMEOUT,
            seed: None,
            view: MeshView::default(),
        }
    }

    /// Sets the overlay's sizes and periods.
    pub fn overlay(mut self, config: hyparview::Config) -> Self {
        self.overlay = config;
        self
    }

    /// Sets how long a session that is not to a neighbour stays open after this node last
    /// cast over it (default 30 s).
    pub fn idle_timeout(mut self, idle: Duration) -> Self {
        self.idle_timeout = idle;
        self
    }

    /// Sets how long a session that is not to a neighbour, and that only the overlay used
    /// (a join, a shuffle's answer, a refused neighbour request), stays open after its last
    /// overlay message (default 1 s).
    pub fn overlay_idle_timeout(mut self, idle: Duration) -> Self {
        self.overlay_idle_timeout = idle;
        self
    }

    /// Sets how often the strategy looks at its sessions and the overlay's timers (default
    /// 100 ms).
    pub fn tick(mut self, every: Duration) -> Self {
        self.tick = every.max(Duration::from_millis(1));
        self
    }

    /// Seeds the overlay's random choices (default: a hash of the node's name).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// A handle on the overlay's views, updated while the strategy runs.
    pub fn view(&self) -> MeshView {
        self.view.clone()
    }
}

/// What a running [`PartialMesh`] knows: its neighbours (active view) and every node it
/// knows of (active and passive views). Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct MeshView(Arc<Mutex<Views>>);

#[derive(Debug, Default)]
struct Views {
    active: BTreeSet<NodeName>,
    passive: BTreeSet<NodeName>,
}

impl MeshView {
    fn lock(&self) -> std::sync::MutexGuard<'_, Views> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The neighbours (the nodes this node keeps a session with), sorted.
    pub fn neighbors(&self) -> Vec<NodeName> {
        self.lock().active.iter().cloned().collect()
    }

    /// Every node the overlay knows of, neighbours and passive, sorted: a sample of the
    /// cluster, not all of it once it is larger than the views.
    pub fn members(&self) -> Vec<NodeName> {
        let views = self.lock();
        views.active.union(&views.passive).cloned().collect()
    }

    fn update(&self, overlay: &Overlay<NodeName>) {
        let mut views = self.lock();
        views.active = overlay.active().cloned().collect();
        views.passive = overlay.passive().cloned().collect();
    }
}

/// The service actor: hands each message to the strategy's task.
struct Service;

impl Actor for Service {
    type Msg = MeshMsg;
    type State = mpsc::Sender<MeshMsg>;
    type Arguments = mpsc::Sender<MeshMsg>;

    async fn pre_start(
        &self,
        _: ActorRef<MeshMsg>,
        tx: mpsc::Sender<MeshMsg>,
    ) -> Result<mpsc::Sender<MeshMsg>, ActorProcessingErr> {
        Ok(tx)
    }

    async fn handle(
        &self,
        _: ActorRef<MeshMsg>,
        msg: MeshMsg,
        tx: &mut mpsc::Sender<MeshMsg>,
    ) -> Result<(), ActorProcessingErr> {
        if tx.try_send(msg).is_err() {
            tracing::debug!("partial mesh: inbox full or closed; an overlay message dropped");
        }
        Ok(())
    }
}

/// Stops the service actor when the strategy's future is dropped.
struct StopOnDrop(ActorRef<MeshMsg>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop(None);
    }
}

fn now() -> std::time::Instant {
    Instant::now().into_std()
}

/// The sessions a partial mesh keeps or closes (sans-IO: driven by the strategy's tick).
#[derive(Debug)]
struct Sessions {
    /// How long a session the application cast over stays open after that cast.
    idle: Duration,
    /// How long a session only the overlay used stays open after its last overlay message.
    overlay_idle: Duration,
    /// How long a neighbour may be without a session before it counts as failed.
    neighbor_timeout: Duration,
    /// When each open session that is not to a neighbour closes, unless used again.
    expires: HashMap<NodeName, std::time::Instant>,
    /// Since when each neighbour has had no session.
    unconnected: HashMap<NodeName, std::time::Instant>,
}

/// The peers casts went to since the last look: the application's and the overlay's.
#[derive(Debug, Default)]
struct Used {
    app: BTreeSet<NodeName>,
    overlay: BTreeSet<NodeName>,
}

/// What one look at the sessions decided.
#[derive(Debug, Default, PartialEq, Eq)]
struct Decisions {
    /// Sessions idle past their expiry: close them.
    close: Vec<NodeName>,
    /// Neighbours without a session for the neighbour timeout: failed.
    failed: Vec<NodeName>,
}

impl Sessions {
    fn new(idle: Duration, overlay_idle: Duration, neighbor_timeout: Duration) -> Self {
        Self {
            idle,
            overlay_idle,
            neighbor_timeout,
            expires: HashMap::new(),
            unconnected: HashMap::new(),
        }
    }

    /// One look: `connected` are the open sessions, `used` what was cast over since the
    /// last look, `active` the neighbours. A session this node never cast over (the peer
    /// opened it) gets the application's idle timeout; one only the overlay used, the
    /// overlay's.
    fn look(
        &mut self,
        connected: &[NodeName],
        used: &Used,
        active: &BTreeSet<NodeName>,
        now: std::time::Instant,
    ) -> Decisions {
        let mut out = Decisions::default();
        // Uses count from the cast on, whether the session is up yet or not (a cast to a
        // node without a session dials it: the session shows up at a later look).
        for node in &used.app {
            let at = self.expires.entry(node.clone()).or_insert(now);
            *at = (*at).max(now + self.idle);
        }
        for node in &used.overlay {
            let at = self.expires.entry(node.clone()).or_insert(now);
            *at = (*at).max(now + self.overlay_idle);
        }
        for node in connected {
            if active.contains(node) {
                self.expires.remove(node);
                continue;
            }
            let at = *self.expires.entry(node.clone()).or_insert(now + self.idle); // opened by the peer
            if at <= now {
                out.close.push(node.clone());
                self.expires.remove(node);
            }
        }
        // Bounded: what is left is the nodes used within the idle timeout.
        self.expires
            .retain(|n, at| *at > now || connected.contains(n));
        self.unconnected.retain(|n, _| active.contains(n));
        for node in active {
            if connected.contains(node) {
                self.unconnected.remove(node);
            } else {
                let since = self.unconnected.entry(node.clone()).or_insert(now);
                if now.saturating_duration_since(*since) >= self.neighbor_timeout {
                    out.failed.push(node.clone());
                }
            }
        }
        for node in &out.failed {
            self.unconnected.remove(node);
        }
        out
    }
}

impl Strategy for PartialMesh {
    fn kind(&self) -> &'static str {
        "partial_mesh"
    }

    fn start(self: Box<Self>, ctx: Context) -> Result<Running, StrategyError> {
        if ctx.node().config().connect_all {
            return Err(StrategyError::Config(
                "partial_mesh needs the node to run with connect_all off (NodeConfig::connect_all(false), NODUS_CONNECT_ALL=false), or every session pulls in the full mesh".into(),
            ));
        }
        if self.overlay.active_size == 0 {
            return Err(StrategyError::Config(
                "partial_mesh: active_size must be at least 1".into(),
            ));
        }
        let me = ctx.node().name().clone();
        let seed = self.seed.unwrap_or_else(|| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            me.hash(&mut h);
            h.finish()
        });
        Ok(Box::pin(async move {
            let node = ctx.node().clone();
            node.track_casts();
            // Subscribed before the first message goes, so no NodeDown is missed.
            let mut events = node.events();
            let (tx, mut inbox) = mpsc::channel(INBOX_CAPACITY);
            let _service = match node.system().spawn(Some(SERVICE), Service, tx).await {
                Ok((service, _)) => StopOnDrop(service),
                Err(e) => {
                    tracing::warn!(parent: node.span(), "partial mesh not started: its service actor {SERVICE:?} could not start: {e}; run one partial_mesh topology per node");
                    return;
                }
            };
            let mut overlay = Overlay::new(me.clone(), self.overlay.clone(), seed);
            let neighbor_timeout = self.overlay.neighbor_timeout;
            overlay.join(&self.contacts, now());
            let mut sessions = Sessions::new(
                self.idle_timeout,
                self.overlay_idle_timeout,
                neighbor_timeout,
            );
            let mut used = Used::default();
            let mut tick = tokio::time::interval(self.tick);
            tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                flush(&ctx, &mut overlay, &self.view, &mut used);
                tokio::select! {
                    msg = inbox.recv() => match msg {
                        Some(MeshMsg { from, msg }) => overlay.handle_message(from, msg, now()),
                        None => return,
                    },
                    event = events.recv() => match event {
                        Ok(NodeEvent::NodeDown { node: down, reason, .. }) => {
                            if overlay.is_active(&down) {
                                ctx.decide(Some(&down), "neighbour down", &reason.to_string());
                            }
                            overlay.connection_down(&down, now());
                        }
                        Ok(_) => {}
                        Err(RecvError::Lagged(missed)) => {
                            tracing::debug!(parent: node.span(), missed, "partial mesh: node events missed; the tick finds neighbours without a session");
                        }
                        Err(RecvError::Closed) => return,
                    },
                    _ = tick.tick() => {
                        let at = now();
                        if overlay.poll_timeout().is_some_and(|t| t <= at) {
                            overlay.handle_timeout(at);
                        }
                        let active: BTreeSet<NodeName> = overlay.active().cloned().collect();
                        used.app.extend(node.take_cast_peers());
                        let decisions = sessions.look(&node.list(), &used, &active, at);
                        used = Used::default();
                        for idle in decisions.close {
                            ctx.decide(Some(&idle), "closing", "not a neighbour, and idle");
                            node.disconnect(&idle);
                        }
                        for failed in decisions.failed {
                            ctx.decide(Some(&failed), "neighbour failed", "no session within the neighbour timeout");
                            overlay.connection_down(&failed, at);
                        }
                        // The passive view changes without events (shuffles).
                        self.view.update(&overlay);
                    }
                }
            }
        }))
    }
}

/// Carries out the overlay's outputs: casts to the peers' service actors, view updates.
/// The casts before are the application's, the casts it makes the overlay's (an application
/// cast from another thread in between counts as the overlay's: its session closes sooner).
fn flush(ctx: &Context, overlay: &mut Overlay<NodeName>, view: &MeshView, used: &mut Used) {
    let node = ctx.node();
    used.app.extend(node.take_cast_peers());
    let mut changed = false;
    while let Some(out) = overlay.poll_output() {
        match out {
            Output::Send { to, msg } => {
                let from = node.name().clone();
                if let Err(e) = node
                    .system()
                    .cast(Destination::from((SERVICE, &to)), MeshMsg { from, msg })
                {
                    ctx.decide(Some(&to), "overlay message not sent", &e.kind.to_string());
                }
            }
            Output::NeighborUp(n) => {
                ctx.decide(Some(&n), "neighbour", "joined the active view");
                changed = true;
            }
            Output::NeighborDown(n) => {
                ctx.decide(Some(&n), "no longer a neighbour", "left the active view");
                changed = true;
            }
        }
    }
    used.overlay.extend(node.take_cast_peers());
    if changed {
        view.update(overlay);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> NodeName {
        s.parse().expect("a node name")
    }

    #[test]
    fn idle_sessions_close_and_neighbours_without_a_session_fail() {
        let t0 = std::time::Instant::now();
        let secs = Duration::from_secs;
        let mut s = Sessions::new(secs(10), secs(1), secs(3));
        let active = BTreeSet::from([n("a@h")]);
        let connected = [n("a@h"), n("x@h"), n("y@h"), n("o@h")];
        let used = Used {
            app: BTreeSet::from([n("x@h")]),
            overlay: BTreeSet::from([n("o@h")]),
        };
        // x used by the application, o by the overlay (before its session is up), y opened
        // by its peer.
        assert_eq!(
            s.look(&connected[..3], &used, &active, t0),
            Decisions::default()
        );
        let none = Used::default();
        let d = s.look(&connected, &none, &active, t0 + secs(1));
        assert_eq!(
            d.close,
            [n("o@h")],
            "the overlay's session closes after 1 s"
        );
        let connected = [n("a@h"), n("x@h"), n("y@h")];
        let app = Used {
            app: BTreeSet::from([n("x@h")]),
            overlay: BTreeSet::new(),
        };
        assert_eq!(
            s.look(&connected, &app, &active, t0 + secs(5)),
            Decisions::default()
        );
        let d = s.look(&connected, &none, &active, t0 + secs(10));
        assert_eq!(
            d.close,
            [n("y@h")],
            "y idle since t0; x used at t0 + 5; a a neighbour"
        );
        let d = s.look(&[n("a@h"), n("x@h")], &none, &active, t0 + secs(15));
        assert_eq!(d.close, [n("x@h")]);
        // The neighbour's session goes; it fails after the neighbour timeout.
        let d = s.look(&[], &none, &active, t0 + secs(15));
        assert!(d.failed.is_empty());
        let d = s.look(&[], &none, &active, t0 + secs(18));
        assert_eq!(d.failed, [n("a@h")]);
    }
}
