//! The partial mesh (`cluster::PartialMesh`, HyParView) on 40 in-memory nodes: sessions
//! bounded by the active view (plus at most `EXTRA` on-demand ones), the overlay connected, a cast to a
//! non-neighbour delivered through an on-demand session that then closes when idle, and a
//! halted node taken out of every view.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use nodus::{
    ractor::{Actor, ActorProcessingErr, ActorRef},
    remote::{
        cluster::{hyparview, Cluster, ClusterConfig, MeshView, PartialMesh, Topology},
        transport::MemoryNetwork,
        Cookie, Node, NodeConfig,
    },
    Destination, NodeName,
};
use tokio::{sync::mpsc, time::Instant};

const NODES: usize = 40;
const ACTIVE: usize = 5;
const DEADLINE: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(50);
const IDLE: Duration = Duration::from_millis(500);
/// On-demand sessions a node may hold besides its neighbours: a node whose active view has
/// room asks a passive node every `retry_interval`, and answers shuffles; each such session
/// closes `IDLE` after its last use.
const EXTRA: usize = 2;

#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct Note(u32);
nodus::core::serde_message!(Note = "it.partial_mesh.Note");

struct Sink;

impl Actor for Sink {
    type Msg = Note;
    type State = mpsc::UnboundedSender<u32>;
    type Arguments = mpsc::UnboundedSender<u32>;

    async fn pre_start(
        &self,
        _: ActorRef<Note>,
        out: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(out)
    }

    async fn handle(
        &self,
        _: ActorRef<Note>,
        Note(n): Note,
        out: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let _ = out.send(n);
        Ok(())
    }
}

struct Member {
    node: Node,
    view: MeshView,
    cluster: Cluster,
}

fn overlay() -> hyparview::Config {
    let mut c = hyparview::Config::default();
    c.active_size = ACTIVE;
    c.shuffle_interval = Duration::from_secs(2);
    c.neighbor_timeout = Duration::from_secs(2);
    c.retry_interval = Duration::from_secs(1);
    c
}

async fn start(network: &MemoryNetwork, i: usize, contact: &NodeName) -> Member {
    let config = NodeConfig::sname(&format!("pm{i}@mem"))
        .cookie(Cookie::new("partial").expect("a cookie"))
        .memory(network.clone())
        .connect_all(false)
        .tick_time(Duration::from_secs(2));
    let node = Node::start(config).await.expect("a memory node starts");
    let mesh = PartialMesh::new([contact.clone()])
        .overlay(overlay())
        .idle_timeout(IDLE)
        .overlay_idle_timeout(IDLE)
        .tick(Duration::from_millis(20))
        .seed(i as u64);
    let view = mesh.view();
    let cluster = Cluster::start(
        &node,
        ClusterConfig::new().topology(Topology::new("pm", mesh)),
    )
    .await
    .expect("the partial mesh starts");
    Member {
        node,
        view,
        cluster,
    }
}

/// Whether the neighbour graph is mutual and connected over `members`.
fn overlay_ok(members: &[&Member]) -> Result<(), String> {
    let views: BTreeMap<NodeName, Vec<NodeName>> = members
        .iter()
        .map(|m| (m.node.name().clone(), m.view.neighbors()))
        .collect();
    for (me, ns) in &views {
        if ns.is_empty() || ns.len() > ACTIVE {
            return Err(format!("{me} has {} neighbours", ns.len()));
        }
        for n in ns {
            match views.get(n) {
                Some(back) if back.contains(me) => {}
                Some(_) => return Err(format!("{me} holds {n}, not back")),
                None => return Err(format!("{me} holds {n}, which is not running")),
            }
        }
    }
    let first = views.keys().next().cloned().ok_or("no node")?;
    let mut seen = BTreeSet::from([first.clone()]);
    let mut todo = vec![first];
    while let Some(n) = todo.pop() {
        for m in &views[&n] {
            if seen.insert(m.clone()) {
                todo.push(m.clone());
            }
        }
    }
    if seen.len() != views.len() {
        return Err(format!(
            "split: {} of {} reachable",
            seen.len(),
            views.len()
        ));
    }
    Ok(())
}

/// Sessions: each node's open sessions are its neighbours plus at most `extra` others.
fn sessions_ok(members: &[&Member], extra: usize) -> Result<(), String> {
    for m in members {
        let list = m.node.list();
        let neighbours = m.view.neighbors();
        let missing: Vec<_> = neighbours.iter().filter(|n| !list.contains(n)).collect();
        if !missing.is_empty() {
            return Err(format!(
                "{} has no session with neighbours {missing:?}",
                m.node.name()
            ));
        }
        if list.len() > neighbours.len() + extra {
            return Err(format!(
                "{} has {} sessions for {} neighbours",
                m.node.name(),
                list.len(),
                neighbours.len()
            ));
        }
    }
    Ok(())
}

async fn until(what: &str, mut check: impl FnMut() -> Result<(), String>) {
    let end = Instant::now() + DEADLINE;
    loop {
        match check() {
            Ok(()) => return,
            Err(e) if Instant::now() + POLL > end => {
                panic!("{what} not reached in {DEADLINE:?}: {e}")
            }
            Err(_) => tokio::time::sleep(POLL).await, // the poll interval
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_nodes_keep_bounded_sessions_route_on_demand_and_drop_a_dead_node() {
    let network = MemoryNetwork::new();
    let seed: NodeName = "pm0@mem".parse().expect("a name");
    let mut members = Vec::new();
    for i in 0..NODES {
        members.push(start(&network, i, &seed).await);
    }
    let all: Vec<&Member> = members.iter().collect();
    until("a connected, mutual overlay with bounded sessions", || {
        overlay_ok(&all)?;
        sessions_ok(&all, EXTRA)
    })
    .await;
    let max = all.iter().map(|m| m.node.list().len()).max().unwrap_or(0);
    assert!(
        max <= ACTIVE + EXTRA,
        "at most {ACTIVE} + {EXTRA} sessions per node, saw {max}"
    );
    until(
        "every node knowing passive nodes too (join walks, shuffles)",
        || match all
            .iter()
            .find(|m| m.view.members().len() <= m.view.neighbors().len())
        {
            Some(m) => Err(format!("{} knows only its neighbours", m.node.name())),
            None => Ok(()),
        },
    )
    .await;

    // A cast to a node that is neither a neighbour nor connected dials it on demand.
    let from = &members[1];
    let to = members
        .iter()
        .find(|m| m.node.name() != from.node.name() && !from.node.list().contains(m.node.name()))
        .expect("40 nodes, at most 5 sessions: some node is not connected");
    let (tx, mut rx) = mpsc::unbounded_channel();
    to.node
        .spawn(Some("sink"), Sink, tx)
        .await
        .expect("the sink starts");
    from.node
        .cast(Destination::from(("sink", to.node.name())), Note(7))
        .expect("the cast is accepted");
    let got = tokio::time::timeout(DEADLINE, rx.recv())
        .await
        .expect("the cast arrives in time");
    assert_eq!(got, Some(7));
    assert!(
        from.node.list().contains(to.node.name()),
        "an on-demand session"
    );
    // Not a neighbour: the session closes once idle.
    let (f, t) = (from.node.clone(), to.node.name().clone());
    let view = from.view.clone();
    until("the on-demand session closed when idle", || {
        if f.list().contains(&t) && !view.neighbors().contains(&t) {
            Err(format!("{} still connected to {t}", f.name()))
        } else {
            Ok(())
        }
    })
    .await;

    // Halt a node: every node drops it from its neighbours; the overlay heals.
    let victim = members.remove(7);
    let dead = victim.node.name().clone();
    let held_by: Vec<NodeName> = members
        .iter()
        .filter(|m| m.view.neighbors().contains(&dead))
        .map(|m| m.node.name().clone())
        .collect();
    assert!(!held_by.is_empty(), "the victim had neighbours");
    victim.cluster.stop();
    victim.node.halt().await;
    let rest: Vec<&Member> = members.iter().collect();
    until(
        "the dead node out of every active view, and the overlay healed",
        || {
            for m in &rest {
                if m.view.neighbors().contains(&dead) {
                    return Err(format!("{} still holds {dead}", m.node.name()));
                }
                if held_by.contains(m.node.name()) && m.view.members().contains(&dead) {
                    return Err(format!("{} still knows {dead}", m.node.name()));
                }
            }
            overlay_ok(&rest)
        },
    )
    .await;

    for m in members {
        m.cluster.stop();
        m.node.halt().await;
    }
}
