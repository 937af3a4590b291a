//! The cluster-wide supervisor (`ClusterSupervisor`, Horde's `DynamicSupervisor` and Akka's
//! singleton) on a `LocalCluster`: a child on a killed node is started again on a survivor
//! and reached by the same global name; a singleton runs twice during a partition and once
//! after the heal (the instance on the lower node wins); `lookup_or_spawn` answers the
//! existing one; a child that keeps crashing is given up after the restart intensity.

use std::{
    future::Future,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use nodus::{
    core::Restart,
    ractor::{Actor, ActorProcessingErr, ActorRef},
    remote::{
        names::{ClusterSupervisor, ClusterSupervisorConfig, ClusterSupervisorError},
        Node,
    },
    testing::{example_binary, LocalCluster},
    Destination, Pid,
};
use tokio::sync::mpsc;

const DEADLINE: Duration = Duration::from_secs(10);
const TICK: Duration = Duration::from_millis(600);

#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct Hello(u32);
nodus::core::serde_message!(Hello = "it.horde.Hello");

/// Makes a worker fail.
const CRASH: u32 = u32::MAX;

type Out = mpsc::UnboundedSender<(Pid, u32)>;

/// Every instance ever started, and where `Hello`s go.
#[derive(Clone)]
struct Shared {
    started: Arc<Mutex<Vec<Pid>>>,
    out: Out,
}

/// A child: records its start, reports each `Hello` with its pid, fails on [`CRASH`].
struct Worker;

impl Actor for Worker {
    type Msg = Hello;
    type State = (Pid, Out);
    type Arguments = (Node, Shared);

    async fn pre_start(
        &self,
        myself: ActorRef<Hello>,
        (node, shared): Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let pid = node.pid_of(&myself.get_cell());
        shared
            .started
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(pid.clone());
        Ok((pid, shared.out))
    }

    async fn handle(
        &self,
        _: ActorRef<Hello>,
        Hello(n): Hello,
        (pid, out): &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if n == CRASH {
            return Err("crashed on purpose".into());
        }
        let _ = out.send((pid.clone(), n));
        Ok(())
    }
}

/// A cluster of `n` nodes, each running the cluster supervisor `"workers"` with the start
/// function `"worker"`; the supervisors by node index.
async fn cluster(
    n: usize,
    prefix: &str,
    shared: &Shared,
) -> (LocalCluster, Arc<Mutex<Vec<Option<ClusterSupervisor>>>>) {
    cluster_with(n, prefix, shared, 3).await
}

/// As [`cluster`], with at most `max_restarts` restarts in 30 s.
async fn cluster_with(
    n: usize,
    prefix: &str,
    shared: &Shared,
    max_restarts: u32,
) -> (LocalCluster, Arc<Mutex<Vec<Option<ClusterSupervisor>>>>) {
    let sups = Arc::new(Mutex::new(vec![None; n]));
    let (hook_sups, hook_shared) = (sups.clone(), shared.clone());
    let cluster = LocalCluster::builder()
        .nodes(n)
        .prefix(prefix)
        .tick_time(TICK)
        .on_start(move |node, i| {
            let (sups, shared) = (hook_sups.clone(), hook_shared.clone());
            async move {
                let config = ClusterSupervisorConfig::new("workers")
                    .intensity(max_restarts, Duration::from_secs(30))
                    .spec("worker", move |node: Node, _name| {
                        let shared = shared.clone();
                        async move {
                            let (actor, _) =
                                node.spawn(None, Worker, (node.clone(), shared)).await?;
                            Ok(actor.get_cell())
                        }
                    });
                let sup = ClusterSupervisor::start(&node, config)
                    .await
                    .expect("the cluster supervisor starts");
                sups.lock().unwrap_or_else(PoisonError::into_inner)[i] = Some(sup);
            }
        })
        .start()
        .await
        .unwrap();
    cluster.await_mesh(DEADLINE).await.unwrap();
    (cluster, sups)
}

fn sup(sups: &Mutex<Vec<Option<ClusterSupervisor>>>, i: usize) -> ClusterSupervisor {
    sups.lock().unwrap_or_else(PoisonError::into_inner)[i]
        .clone()
        .expect("a supervisor on that node")
}

fn shared() -> (Shared, mpsc::UnboundedReceiver<(Pid, u32)>) {
    let (out, rx) = mpsc::unbounded_channel();
    (
        Shared {
            started: Arc::default(),
            out,
        },
        rx,
    )
}

fn index_of(cluster: &LocalCluster, pid: &Pid) -> usize {
    (0..cluster.len())
        .find(|i| cluster.name(*i) == pid.node())
        .expect("a pid of the cluster")
}

/// The instances alive now, among all ever started.
fn alive(cluster: &LocalCluster, shared: &Shared) -> Vec<Pid> {
    let started = shared
        .started
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    started
        .into_iter()
        .filter(|pid| {
            cluster
                .try_node(index_of(cluster, pid))
                .is_some_and(|n| n.resolve(&Destination::Pid(pid.clone())).is_ok())
        })
        .collect()
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

#[tokio::test]
async fn a_child_on_a_killed_node_is_restarted_on_a_survivor_under_the_same_name() {
    let (shared, mut rx) = shared();
    let (mut cluster, sups) = cluster(3, "horde", &shared).await;
    let pid = sup(&sups, 0)
        .start_child("job", "worker", Restart::Permanent, DEADLINE)
        .await
        .expect("the child starts");
    let host = index_of(&cluster, &pid);
    let observer = (host + 1) % 3;
    cluster
        .node(observer)
        .global()
        .sync(DEADLINE)
        .await
        .unwrap();
    assert_eq!(
        cluster.node(observer).global().whereis("job"),
        Some(pid.clone())
    );

    cluster.kill(host).await.unwrap();
    let killed = Instant::now();
    let moved = until("the child restarted on a survivor", DEADLINE, || async {
        cluster
            .node(observer)
            .global()
            .whereis("job")
            .filter(|p| p.node() != cluster.name(host))
    })
    .await;
    // Connection closed at once: well within the tick time plus a few checks.
    assert!(killed.elapsed() < 2 * TICK, "{:?}", killed.elapsed());
    assert_ne!(moved, pid);
    cluster
        .node(observer)
        .cast(Destination::global("job"), Hello(7))
        .unwrap();
    let got = tokio::time::timeout(DEADLINE, rx.recv()).await.unwrap();
    assert_eq!(got, Some((moved.clone(), 7)));
    assert_eq!(alive(&cluster, &shared), [moved]);
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_singleton_runs_once_after_a_partition_heals_on_the_lower_node() {
    let (shared, _rx) = shared();
    let (cluster, sups) = cluster(3, "singleton", &shared).await;
    let first = sup(&sups, 0)
        .singleton("leader", "worker", DEADLINE)
        .await
        .expect("the singleton starts");
    let host = index_of(&cluster, &first);
    let others: Vec<usize> = (0..3).filter(|i| *i != host).collect();
    for &i in &others {
        cluster.partition(host, i).unwrap();
    }
    until("the host cut off", DEADLINE, || async {
        cluster.node(host).list().is_empty().then_some(())
    })
    .await;
    // The other side starts its own: two instances while the partition lasts.
    let second = until("a second instance on the other side", DEADLINE, || async {
        cluster
            .node(others[0])
            .global()
            .whereis("leader")
            .filter(|p| *p != first)
    })
    .await;
    assert_eq!(alive(&cluster, &shared).len(), 2);

    for &i in &others {
        cluster.heal(host, i).unwrap();
    }
    cluster.await_mesh(DEADLINE).await.unwrap();
    let winner = if first.node() < second.node() {
        first.clone()
    } else {
        second.clone()
    };
    until(
        "one instance, the lower node's, everywhere",
        DEADLINE,
        || async {
            let one = alive(&cluster, &shared) == [winner.clone()];
            let agreed =
                (0..3).all(|i| cluster.node(i).global().whereis("leader") == Some(winner.clone()));
            (one && agreed).then_some(())
        },
    )
    .await;
    // And it stays one: nobody starts another over several checks.
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(50)).await; // observing, not synchronising
        assert_eq!(alive(&cluster, &shared), std::slice::from_ref(&winner));
    }
    assert_eq!(
        shared
            .started
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len(),
        2,
        "never a third"
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn lookup_or_spawn_answers_the_existing_one() {
    let (shared, _rx) = shared();
    let (cluster, sups) = cluster(3, "lookup", &shared).await;
    let pid = sup(&sups, 0)
        .lookup_or_spawn("cache", "worker", DEADLINE)
        .await
        .unwrap();
    cluster.node(0).global().sync(DEADLINE).await.unwrap();
    for i in 0..3 {
        assert_eq!(
            sup(&sups, i)
                .lookup_or_spawn("cache", "worker", DEADLINE)
                .await
                .unwrap(),
            pid,
            "node {i}"
        );
    }
    assert_eq!(shared.started.lock().unwrap().len(), 1, "started once");
    let again = sup(&sups, 2)
        .start_child("cache", "worker", Restart::Permanent, DEADLINE)
        .await;
    assert!(
        matches!(&again, Err(ClusterSupervisorError::AlreadyStarted { pid: p, .. }) if *p == pid),
        "{again:?}"
    );
    let unknown = sup(&sups, 1)
        .lookup_or_spawn("other", "no_such_spec", DEADLINE)
        .await;
    assert!(
        matches!(unknown, Err(ClusterSupervisorError::UnknownSpec { .. })),
        "{unknown:?}"
    );
    for i in 0..3 {
        until("every node knows the child", DEADLINE, || async {
            (sup(&sups, i).which_children() == [("cache".to_string(), Some(pid.clone()))])
                .then_some(())
        })
        .await;
    }
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_child_that_keeps_crashing_is_restarted_then_given_up_after_the_intensity() {
    let (shared, _rx) = shared();
    let (cluster, sups) = cluster(2, "intensity", &shared).await;
    let mut pid = sup(&sups, 0)
        .start_child("flaky", "worker", Restart::Permanent, DEADLINE)
        .await
        .unwrap();
    // Three restarts are allowed (3 in 30 s), wherever they happen.
    for round in 0..3 {
        cluster.node(0).cast(&pid, Hello(CRASH)).unwrap();
        let old = pid.clone();
        pid = until("restarted", DEADLINE, || async {
            cluster
                .node(0)
                .global()
                .whereis("flaky")
                .filter(|p| *p != old)
        })
        .await;
        assert_eq!(shared.started.lock().unwrap().len(), round + 2);
    }
    // The fourth crash is one too many: given up everywhere.
    cluster.node(0).cast(&pid, Hello(CRASH)).unwrap();
    for i in 0..2 {
        until("given up", DEADLINE, || async {
            sup(&sups, i).which_children().is_empty().then_some(())
        })
        .await;
    }
    assert!(cluster.node(1).global().whereis("flaky").is_none());
    assert_eq!(shared.started.lock().unwrap().len(), 4);
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_graceful_leave_hands_the_singleton_over_without_counting_a_restart() {
    let (shared, _rx) = shared();
    // No restart allowed: only a handover keeps the child.
    let (cluster, sups) = cluster_with(3, "handover", &shared, 0).await;
    let first = sup(&sups, 0)
        .singleton("leader", "worker", DEADLINE)
        .await
        .unwrap();
    let host = index_of(&cluster, &first);
    let observer = (host + 1) % 3;
    cluster
        .node(observer)
        .global()
        .sync(DEADLINE)
        .await
        .unwrap();
    cluster.node(host).clone().shutdown().await; // tells its peers it is leaving
    let moved = until("the singleton handed over", DEADLINE, || async {
        cluster
            .node(observer)
            .global()
            .whereis("leader")
            .filter(|p| p.node() != cluster.name(host))
    })
    .await;
    assert_ne!(moved, first);
    assert_eq!(
        sup(&sups, observer).which_children(),
        [("leader".to_string(), Some(moved))]
    );
    cluster.shutdown().await;
}

/// The rooms example's code, run as the example runs it.
#[path = "../../examples/rooms/rooms.rs"]
#[allow(dead_code)]
mod rooms;

#[tokio::test]
async fn a_rooms_history_survives_the_loss_of_any_one_node() {
    for victim in 0..3 {
        let sups = Arc::new(Mutex::new(vec![None; 3]));
        let hook = sups.clone();
        let mut cluster = LocalCluster::builder()
            .nodes(3)
            .prefix(&format!("rooms{victim}_"))
            .tick_time(TICK)
            .on_start(move |node, i| {
                let sups = hook.clone();
                async move {
                    let sup = rooms::start(&node).await.expect("the rooms supervisor");
                    sups.lock().unwrap_or_else(PoisonError::into_inner)[i] = Some(sup);
                }
            })
            .start()
            .await
            .unwrap();
        cluster.await_mesh(DEADLINE).await.unwrap();
        let who = ["alice", "bob", "carol"];
        for i in 0..3 {
            rooms::join(cluster.node(i), &sup(&sups, i), "lobby", DEADLINE)
                .await
                .expect("joined");
        }
        cluster.node(0).global().sync(DEADLINE).await.unwrap();
        for (i, who) in who.into_iter().enumerate() {
            let sent = rooms::say(cluster.node(i), "lobby", who, "hello")
                .await
                .unwrap();
            assert_eq!(sent, 3, "every member hears it");
        }
        let sorted = |mut lines: Vec<String>| {
            lines.sort();
            lines
        };
        let want = vec![
            "alice: hello".to_string(),
            "bob: hello".to_string(),
            "carol: hello".to_string(),
        ];
        until("the history has every line", DEADLINE, || async {
            let lines = rooms::history(cluster.node(0), "lobby")
                .lines()
                .await
                .ok()?;
            (sorted(lines) == want).then_some(())
        })
        .await;

        cluster.kill(victim).await.unwrap();
        let survivor = (victim + 1) % 3;
        until("the history reachable with its lines", DEADLINE, || async {
            let lines = rooms::history(cluster.node(survivor), "lobby")
                .lines()
                .await
                .ok()?;
            (sorted(lines) == want).then_some(())
        })
        .await;
        rooms::say(cluster.node(survivor), "lobby", "dave", "still here")
            .await
            .unwrap();
        let other = (victim + 2) % 3;
        until("the new line recorded", DEADLINE, || async {
            let lines = rooms::history(cluster.node(other), "lobby")
                .lines()
                .await
                .ok()?;
            (lines.len() == 4 && lines.last().map(String::as_str) == Some("dave: still here"))
                .then_some(())
        })
        .await;
        cluster.shutdown().await;
    }
}

/// The rooms example as issue 12 runs it: three process nodes of the example binary (the
/// rooms service) and an in-process client node; a room whose history starts on each
/// process node; each process is killed in turn (and restarted), and every history stays
/// reachable with all its lines.
#[tokio::test]
async fn a_rooms_history_survives_killing_any_one_process() {
    let Some(binary) = example_binary("rooms") else {
        panic!(
            "the rooms example is missing: run `cargo build --all-features --examples` \
             (cargo test builds it)"
        );
    };
    let sups = Arc::new(Mutex::new(vec![None; 1]));
    let hook = sups.clone();
    let mut cluster = LocalCluster::builder()
        .nodes(1)
        .processes(3, binary)
        .prefix("roomsp")
        .tick_time(TICK)
        .on_start(move |node, i| {
            let sups = hook.clone();
            async move {
                let sup = rooms::start(&node).await.expect("the rooms supervisor");
                sups.lock().unwrap_or_else(PoisonError::into_inner)[i] = Some(sup);
            }
        })
        .start()
        .await
        .unwrap();
    cluster.await_mesh(DEADLINE).await.unwrap();
    let client = sup(&sups, 0);
    let names = cluster.names();
    let rooms: Vec<String> = (1..4)
        .map(|i| rooms::room_hosted_by(&names, &names[i]).expect("a room for each node"))
        .collect();
    let who = ["alice", "bob", "carol"];
    for room in &rooms {
        for _ in who {
            rooms::join(cluster.node(0), &client, room, DEADLINE)
                .await
                .expect("joined");
        }
    }
    cluster.node(0).global().sync(DEADLINE).await.unwrap();
    for (i, room) in rooms.iter().enumerate() {
        let at = cluster
            .node(0)
            .global()
            .whereis(&rooms::history_name(room))
            .expect("a history");
        assert_eq!(at.node(), &names[i + 1], "{room}'s history on its owner");
        for who in who {
            let sent = rooms::say(cluster.node(0), room, who, "hello")
                .await
                .unwrap();
            assert_eq!(sent, 3, "every member hears it");
        }
    }
    let mut want: Vec<String> = who.iter().map(|w| format!("{w}: hello")).collect();
    let node0 = cluster.node(0).clone();
    let has = |room: String, want: Vec<String>| {
        let node = node0.clone();
        async move {
            let lines = rooms::history(&node, &room).lines().await.ok()?;
            (lines == want).then_some(())
        }
    };
    for room in &rooms {
        until("every hello in the history", DEADLINE, || {
            has(room.clone(), want.clone())
        })
        .await;
    }

    for (victim, gone) in names.iter().enumerate().skip(1) {
        cluster.kill(victim).await.unwrap();
        let line = format!("{gone} is gone");
        want.push(format!("dave: {line}"));
        for room in &rooms {
            // The history answers from a live node (not by the dead pid's name).
            until("the history back on a live node", DEADLINE, || async {
                let at = cluster
                    .node(0)
                    .global()
                    .whereis(&rooms::history_name(room))?;
                let answers = rooms::history(cluster.node(0), room).lines().await;
                (at.node() != gone && answers.is_ok()).then_some(())
            })
            .await;
            rooms::say(cluster.node(0), room, "dave", &line)
                .await
                .unwrap();
            until("the history with every line", DEADLINE, || {
                has(room.clone(), want.clone())
            })
            .await;
        }
        cluster.restart(victim).await.unwrap();
        cluster.await_mesh(DEADLINE).await.unwrap();
    }
    cluster.shutdown().await;
}
