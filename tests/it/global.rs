//! Global names (`:global`) and process groups (`:pg`) on a `LocalCluster`: names seen on
//! every node and usable as destinations, names and members gone when their node is killed,
//! a partition where both sides take one name healed to the documented winner (the loser
//! killed), and groups across three nodes with a group cast reaching every member.

use crate::cluster::{builder, on_both_transports};

use std::{
    future::Future,
    time::{Duration, Instant},
};

use nodus::{
    core::ExitReason,
    ractor::{Actor, ActorProcessingErr, ActorRef},
    remote::{GroupChange, NameConflict, Node, Resolve},
    testing::LocalCluster,
    Destination, DownReason, Pid, TaskSupervisor, TaskSupervisorConfig,
};
use tokio::sync::mpsc;

const DEADLINE: Duration = Duration::from_secs(10);
const TICK: Duration = Duration::from_millis(600);

/// What a probe gets: a number, cast to it by name, pid or group.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct Hello(u32);
nodus::core::serde_message!(Hello = "it.global.Hello");

/// Makes a probe stop with the reason `"done"`.
const STOP: u32 = u32::MAX;

/// A plain actor reporting each `Hello` with its own pid (and stopping on [`STOP`]).
struct Probe;

impl Actor for Probe {
    type Msg = Hello;
    type State = (Pid, mpsc::UnboundedSender<(Pid, u32)>);
    type Arguments = (Node, mpsc::UnboundedSender<(Pid, u32)>);

    async fn pre_start(
        &self,
        myself: ActorRef<Hello>,
        (node, out): Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok((node.pid_of(&myself.get_cell()), out))
    }

    async fn handle(
        &self,
        myself: ActorRef<Hello>,
        Hello(n): Hello,
        (pid, out): &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if n == STOP {
            myself.stop(Some("done".into()));
            return Ok(());
        }
        let _ = out.send((pid.clone(), n));
        Ok(())
    }
}

async fn probe(node: &Node, out: &mpsc::UnboundedSender<(Pid, u32)>) -> (ActorRef<Hello>, Pid) {
    let (actor, _) = node
        .spawn(None, Probe, (node.clone(), out.clone()))
        .await
        .expect("a probe");
    let pid = node.pid_of(&actor.get_cell());
    (actor, pid)
}

/// Polls `f` until it gives a value, within `deadline`.
async fn until<T, F, Fut>(what: &str, deadline: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await; // the poll interval
    }
}

async fn recv(rx: &mut mpsc::UnboundedReceiver<(Pid, u32)>) -> (Pid, u32) {
    tokio::time::timeout(DEADLINE, rx.recv())
        .await
        .expect("a message within the deadline")
        .expect("the channel is open")
}

on_both_transports!(a_global_name_is_seen_on_every_node_and_is_a_destination);
async fn a_global_name_is_seen_on_every_node_and_is_a_destination(memory: bool) {
    let cluster = builder(memory)
        .nodes(3)
        .prefix("glob")
        .start()
        .await
        .unwrap();
    cluster.await_mesh(DEADLINE).await.unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (_actor, pid) = probe(cluster.node(1), &tx).await;

    cluster.node(1).global().register("leader", &pid).unwrap();
    cluster
        .node(1)
        .global()
        .sync(DEADLINE)
        .await
        .expect("the tables agree");
    for i in 0..3 {
        assert_eq!(
            cluster.node(i).global().whereis("leader"),
            Some(pid.clone()),
            "node {i}"
        );
    }
    // Taken: another actor cannot have it, on any node.
    let (_, other) = probe(cluster.node(2), &tx).await;
    let taken = cluster.node(2).global().register("leader", &other);
    assert!(
        matches!(&taken, Err(nodus::remote::GlobalError::Taken { holder, .. }) if *holder == pid),
        "{taken:?}"
    );
    // Only a node's own actors.
    assert!(matches!(
        cluster.node(0).global().register("x", &pid),
        Err(nodus::remote::GlobalError::NotLocal { .. })
    ));

    // A cast by global name from another node reaches it.
    cluster
        .node(0)
        .cast(Destination::global("leader"), Hello(7))
        .unwrap();
    assert_eq!(recv(&mut rx).await, (pid.clone(), 7));
    // A task supervisor by global name: `async_on` runs the function on its node.
    cluster
        .node(2)
        .functions()
        .register("Where", "am_i", |(): ()| async { "here".to_string() });
    let sup = TaskSupervisor::start(cluster.node(2), TaskSupervisorConfig::new("Sup"))
        .await
        .unwrap();
    let sup_pid = cluster.node(2).pid_of(&sup.actor().get_cell());
    cluster
        .node(2)
        .global()
        .register("tasks", &sup_pid)
        .unwrap();
    cluster.node(2).global().sync(DEADLINE).await.unwrap();
    let task = TaskSupervisor::async_on::<_, String>(
        cluster.node(0),
        Destination::global("tasks"),
        "Where",
        "am_i",
        (),
    )
    .await
    .expect("started on node 2");
    let answer = tokio::time::timeout(DEADLINE, task).await.unwrap();
    assert_eq!(answer, Ok("here".to_string()));

    // Unknown: `NoProc`, as `:global.send/2`'s badarg.
    assert!(cluster
        .node(0)
        .cast(Destination::global("nobody"), Hello(0))
        .is_err());

    // A monitor by global name sees it die with its reason, and the name goes everywhere.
    // The stop goes over the same session after the monitor, so it cannot overtake it.
    let monitor = cluster.node(2).monitor(Destination::global("leader"));
    cluster
        .node(2)
        .cast(Destination::global("leader"), Hello(STOP))
        .unwrap();
    let down = tokio::time::timeout(DEADLINE, monitor).await.unwrap();
    assert!(
        matches!(&down.reason, DownReason::Stopped(r) if r == "done"),
        "{:?}",
        down.reason
    );
    for i in 0..3 {
        until("the name gone", DEADLINE, || async {
            cluster
                .node(i)
                .global()
                .whereis("leader")
                .is_none()
                .then_some(())
        })
        .await;
    }
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_killed_nodes_names_and_members_go_everywhere_within_the_tick_time() {
    let mut cluster = LocalCluster::builder()
        .nodes(3)
        .prefix("globkill")
        .tick_time(TICK)
        .start()
        .await
        .unwrap();
    cluster.await_mesh(DEADLINE).await.unwrap();
    let (tx, _rx) = mpsc::unbounded_channel();
    let (_a, on_0) = probe(cluster.node(0), &tx).await;
    let (_b, on_2) = probe(cluster.node(2), &tx).await;
    cluster.node(0).global().register("stays", &on_0).unwrap();
    cluster.node(2).global().register("goes", &on_2).unwrap();
    cluster.node(0).pg().join("g", &on_0).unwrap();
    cluster.node(2).pg().join("g", &on_2).unwrap();
    cluster.node(0).global().sync(DEADLINE).await.unwrap();
    assert_eq!(cluster.node(1).pg().members("g").len(), 2);
    assert_eq!(
        cluster.node(1).global().registered_names(),
        ["goes", "stays"]
    );

    cluster.kill(2).await.unwrap();
    let killed = Instant::now();
    for i in 0..2 {
        until("node 2's names and members gone", TICK, || async {
            let node = cluster.node(i);
            (node.global().whereis("goes").is_none() && node.pg().members("g") == [on_0.clone()])
                .then_some(())
        })
        .await;
        assert_eq!(
            cluster.node(i).global().whereis("stays"),
            Some(on_0.clone())
        );
    }
    assert!(killed.elapsed() <= TICK, "{:?}", killed.elapsed());
    cluster.shutdown().await;
}

on_both_transports!(
    after_a_partition_heals_the_lower_nodes_actor_keeps_the_name_and_the_other_is_killed
);
async fn after_a_partition_heals_the_lower_nodes_actor_keeps_the_name_and_the_other_is_killed(
    memory: bool,
) {
    let cluster = builder(memory)
        .nodes(2)
        .prefix("globsplit")
        .tick_time(TICK)
        .start()
        .await
        .unwrap();
    cluster.await_mesh(DEADLINE).await.unwrap();
    let (a, b) = (cluster.name(0).clone(), cluster.name(1).clone());
    cluster.partition(0, 1).unwrap();
    until("both sides apart", DEADLINE, || async {
        (cluster.node(0).list().is_empty() && cluster.node(1).list().is_empty()).then_some(())
    })
    .await;

    // Each side registers "leader" for its own actor: both succeed, unaware of the other.
    let (tx, _rx) = mpsc::unbounded_channel();
    let (_, pa) = probe(cluster.node(0), &tx).await;
    let (_, pb) = probe(cluster.node(1), &tx).await;
    cluster.node(0).global().register("leader", &pa).unwrap();
    cluster.node(1).global().register("leader", &pb).unwrap();
    let (winner, loser, loser_node) = if a < b { (pa, pb, 1) } else { (pb, pa, 0) };
    let down = cluster.node(loser_node).monitor(&loser);
    let mut conflicts = cluster.node(loser_node).global().conflicts();

    cluster.heal(0, 1).unwrap();
    cluster.await_mesh(DEADLINE).await.unwrap();
    cluster.node(0).global().sync(DEADLINE).await.unwrap();
    for i in 0..2 {
        assert_eq!(
            cluster.node(i).global().whereis("leader"),
            Some(winner.clone()),
            "node {i} has the winner (on the node whose name sorts lower)"
        );
    }
    let down = tokio::time::timeout(DEADLINE, down).await.unwrap();
    assert_eq!(down.reason, ExitReason::Killed);
    let conflict = tokio::time::timeout(DEADLINE, conflicts.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (conflict.name.as_ref(), &conflict.loser, &conflict.other),
        ("leader", &loser, &winner)
    );
    // Logged on the loser's node, as the BEAM's info report.
    assert!(cluster.logs_captured());
    assert!(
        cluster
            .logs(loser_node)
            .iter()
            .any(|l| l.contains("global: Name conflict terminating")),
        "{:?}",
        cluster.logs(loser_node)
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_group_spans_three_nodes_a_group_cast_reaches_every_member_and_the_dead_leave() {
    let cluster = LocalCluster::builder()
        .nodes(3)
        .prefix("pg")
        .start()
        .await
        .unwrap();
    cluster.await_mesh(DEADLINE).await.unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (_, mut events) = cluster.node(0).pg().monitor("workers");
    let mut members = Vec::new();
    let mut actors = Vec::new();
    for i in 0..3 {
        let (actor, pid) = probe(cluster.node(i), &tx).await;
        cluster.node(i).pg().join("workers", &pid).unwrap();
        members.push(pid);
        actors.push(actor);
    }
    // Remote actors cannot be joined (`{:nolocal, pid}`); another scope is independent.
    assert!(matches!(
        cluster.node(0).pg().join("workers", &members[1]),
        Err(nodus::remote::PgError::NotLocal { .. })
    ));
    assert!(cluster
        .node(0)
        .pg_scope("other")
        .members("workers")
        .is_empty());
    cluster.node(0).global().sync(DEADLINE).await.unwrap();
    for i in 0..3 {
        let mut seen = cluster.node(i).pg().members("workers");
        seen.sort();
        let mut all = members.clone();
        all.sort();
        assert_eq!(seen, all, "node {i}");
        assert_eq!(
            cluster.node(i).pg().local_members("workers"),
            [members[i].clone()]
        );
        assert_eq!(cluster.node(i).pg().which_groups(), ["workers"]);
    }
    // Node 0's monitor saw the three joins.
    let mut joined = Vec::new();
    while joined.len() < 3 {
        let event = tokio::time::timeout(DEADLINE, events.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(event.change, GroupChange::Join);
        joined.extend(event.pids);
    }

    // One call, every member.
    let cast = cluster.node(1).pg().cast("workers", Hello(42));
    assert_eq!(cast.sent, 3, "{:?}", cast.failed);
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(recv(&mut rx).await);
    }
    got.sort();
    let mut want: Vec<_> = members.iter().map(|p| (p.clone(), 42)).collect();
    want.sort();
    assert_eq!(got, want);

    // A member that dies leaves the group everywhere, and the monitor sees it leave.
    actors[2].stop(None);
    for i in 0..2 {
        until("the dead member gone", DEADLINE, || async {
            (!cluster
                .node(i)
                .pg()
                .members("workers")
                .contains(&members[2]))
            .then_some(())
        })
        .await;
    }
    let event = tokio::time::timeout(DEADLINE, events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (event.change, event.pids),
        (GroupChange::Leave, vec![members[2].clone()])
    );
    // leave: one instance, then `not_joined`.
    assert_eq!(cluster.node(1).pg().leave("workers", &members[1]), Ok(true));
    assert_eq!(
        cluster.node(1).pg().leave("workers", &members[1]),
        Ok(false)
    );
    cluster.shutdown().await;
}

/// The alternatives to killing: with `NotifyLoser` the same actor keeps the name and the
/// other runs on, told; with `UnregisterBoth` neither keeps it and both are told.
#[tokio::test]
async fn the_other_resolutions_notify_instead_of_killing() {
    for resolve in [Resolve::NotifyLoser, Resolve::UnregisterBoth] {
        let cluster = LocalCluster::builder()
            .nodes(2)
            .prefix("globres")
            .tick_time(TICK)
            .start()
            .await
            .unwrap();
        cluster.await_mesh(DEADLINE).await.unwrap();
        for i in 0..2 {
            cluster.node(i).global().set_resolve(resolve);
        }
        cluster.partition(0, 1).unwrap();
        until("both sides apart", DEADLINE, || async {
            (cluster.node(0).list().is_empty() && cluster.node(1).list().is_empty()).then_some(())
        })
        .await;
        let (tx, _rx) = mpsc::unbounded_channel();
        let (_, pa) = probe(cluster.node(0), &tx).await;
        let (_, pb) = probe(cluster.node(1), &tx).await;
        cluster.node(0).global().register("leader", &pa).unwrap();
        cluster.node(1).global().register("leader", &pb).unwrap();
        let (mut ca, mut cb) = (
            cluster.node(0).global().conflicts(),
            cluster.node(1).global().conflicts(),
        );

        cluster.heal(0, 1).unwrap();
        cluster.await_mesh(DEADLINE).await.unwrap();
        cluster.node(0).global().sync(DEADLINE).await.unwrap();
        let (a, b) = (cluster.name(0), cluster.name(1));
        let (winner, loser) = if a < b { (&pa, &pb) } else { (&pb, &pa) };
        let expected = match resolve {
            Resolve::NotifyLoser => Some(winner.clone()),
            _ => None,
        };
        for i in 0..2 {
            assert_eq!(
                cluster.node(i).global().whereis("leader"),
                expected,
                "{resolve:?} node {i}"
            );
        }
        // Who is told: the loser's node under NotifyLoser, both nodes under UnregisterBoth.
        let told = |rx: &mut tokio::sync::broadcast::Receiver<_>| rx.try_recv().ok();
        let (na, nb): (Option<NameConflict>, Option<NameConflict>) = (told(&mut ca), told(&mut cb));
        match resolve {
            Resolve::NotifyLoser => {
                let conflict = na.or(nb).expect("the loser's node was told");
                assert_eq!((&conflict.loser, &conflict.other), (loser, winner));
            }
            _ => {
                assert_eq!(na.map(|c| c.loser), Some(pa.clone()));
                assert_eq!(nb.map(|c| c.loser), Some(pb.clone()));
            }
        }
        // Nobody was killed: both actors still answer.
        for (i, pid) in [(0, &pa), (1, &pb)] {
            assert!(cluster.node(i).cast(pid, Hello(1)).is_ok(), "{resolve:?}");
            assert!(cluster
                .node(i)
                .resolve(&Destination::Pid(pid.clone()))
                .is_ok());
        }
        cluster.shutdown().await;
    }
}

/// A paused node is only noticed by ticks: its names and members go on the others once
/// they see `tick_timeout`, within the tick time (and 2 s of slack for a loaded machine).
#[tokio::test]
async fn a_paused_nodes_names_and_members_go_when_ticks_notice() {
    let mut cluster = LocalCluster::builder()
        .nodes(3)
        .prefix("globpause")
        .tick_time(TICK)
        .start()
        .await
        .unwrap();
    cluster.await_mesh(DEADLINE).await.unwrap();
    let (tx, _rx) = mpsc::unbounded_channel();
    let (_p, on_2) = probe(cluster.node(2), &tx).await;
    cluster.node(2).global().register("frozen", &on_2).unwrap();
    cluster.node(2).pg().join("g", &on_2).unwrap();
    cluster.node(2).global().sync(DEADLINE).await.unwrap();
    assert_eq!(
        cluster.node(0).global().whereis("frozen"),
        Some(on_2.clone())
    );

    cluster.pause(2).await.unwrap();
    let paused = Instant::now();
    for i in 0..2 {
        until(
            "the paused node's names gone",
            TICK + Duration::from_secs(2),
            || async {
                let node = cluster.node(i);
                (node.global().whereis("frozen").is_none() && node.pg().members("g").is_empty())
                    .then_some(())
            },
        )
        .await;
    }
    assert!(
        paused.elapsed() >= TICK / 2,
        "noticed by ticks, not at once: {:?}",
        paused.elapsed()
    );
    cluster.resume(2).await.unwrap();
    cluster.shutdown().await;
}

/// Issue 14: the names service synced on every session, one message each way, even between
/// nodes that own nothing (a tenth of a 1,000-node mesh's CPU). Now a node that owns nothing
/// sends no sync on a first session with a peer; what the others own still reaches every
/// node, at the mesh's start and after a restart (a reconnect, where the sync is still asked
/// for).
#[tokio::test]
async fn names_owned_before_a_node_joins_reach_it_and_nodes_owning_nothing_send_no_sync() {
    let mut cluster = builder(true)
        .nodes(3)
        .prefix("owns")
        .on_start(|node, i| async move {
            if i == 1 {
                let (tx, _) = mpsc::unbounded_channel();
                let (_, pid) = probe(&node, &tx).await;
                node.global().register("held", &pid).unwrap();
                node.pg().join("g", &pid).unwrap();
            }
        })
        .start()
        .await
        .unwrap();
    cluster.await_mesh(DEADLINE).await.unwrap();
    let holder = cluster
        .node(1)
        .global()
        .whereis("held")
        .expect("registered");
    let everywhere = |cluster: &nodus::testing::LocalCluster| {
        (0..3).all(|i| {
            cluster.node(i).global().whereis("held") == Some(holder.clone())
                && cluster.node(i).pg().members("g") == [holder.clone()]
        })
    };
    until("the name and group everywhere", DEADLINE, || async {
        everywhere(&cluster).then_some(())
    })
    .await;
    let syncs_from = |cluster: &nodus::testing::LocalCluster, at: usize, from: usize| {
        let from = cluster.name(from).to_string();
        cluster
            .logs(at)
            .iter()
            .filter(|l| l.contains("names: sync from a peer") && l.contains(&from))
            .count()
    };
    if cluster.logs_captured() {
        assert!(syncs_from(&cluster, 0, 1) >= 1, "node 1 owns: it syncs");
        assert_eq!(syncs_from(&cluster, 1, 0), 0, "node 0 owns nothing");
        assert_eq!(syncs_from(&cluster, 1, 2), 0, "node 2 owns nothing");
    }

    // A fresh node 2: for nodes 0 and 1 a reconnect, so they sync (and ask) as before.
    cluster.restart(2).await.unwrap();
    cluster.await_mesh(DEADLINE).await.unwrap();
    until(
        "the name and group on the restarted node",
        DEADLINE,
        || async { everywhere(&cluster).then_some(()) },
    )
    .await;
    cluster.shutdown().await;
}
