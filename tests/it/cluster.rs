//! `nodus::testing::LocalCluster`: partitions, pauses and kills, in-process and as processes.

use std::time::Duration;

use nodus::{
    remote::{NodeDownReason, NodeEvent},
    testing::{example_binary, ClusterError, LocalCluster},
    NodeName, TaskError, TaskSupervisor, TaskSupervisorConfig,
};
use tokio::sync::broadcast;

const DEADLINE: Duration = Duration::from_secs(10);
const TICK: Duration = Duration::from_millis(600);

/// Runs a cluster test, `async fn name(memory: bool)`, on both transports: as
/// `name::tcp` (loopback TCP) and `name::memory` (`ClusterBuilder::memory`).
macro_rules! on_both_transports {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn tcp() {
                super::$name(false).await
            }
            #[tokio::test]
            async fn memory() {
                super::$name(true).await
            }
        }
    };
}
pub(crate) use on_both_transports;

/// A cluster builder on TCP, or on one in-memory network.
pub(crate) fn builder(memory: bool) -> nodus::testing::ClusterBuilder {
    let builder = LocalCluster::builder();
    if memory {
        builder.memory()
    } else {
        builder
    }
}

/// The reason of the next `NodeDown` for `peer` on `events`, within the deadline.
async fn down(events: &mut broadcast::Receiver<NodeEvent>, peer: &NodeName) -> NodeDownReason {
    let wait = async {
        loop {
            match events.recv().await {
                Ok(NodeEvent::NodeDown { node, reason, .. }) if node == *peer => return reason,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("events ended: {e}"),
            }
        }
    };
    tokio::time::timeout(DEADLINE, wait)
        .await
        .unwrap_or_else(|_| panic!("no NodeDown for {peer} within {DEADLINE:?}"))
}

/// Waits (polling, bounded) until process node `i` has printed a line containing `text`.
async fn printed(cluster: &LocalCluster, i: usize, text: &str) {
    let until = tokio::time::Instant::now() + DEADLINE;
    while !cluster.output(i).iter().any(|l| l.contains(text)) {
        assert!(
            tokio::time::Instant::now() < until,
            "node {i} never printed {text:?}: {:?}",
            cluster.output(i)
        );
        tokio::time::sleep(Duration::from_millis(20)).await; // poll interval
    }
}

const ECHO: &str = "Echo.TaskSupervisor";

/// What `Echo.say` received on one node, in order.
#[derive(Clone, Default)]
struct Echo(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl Echo {
    fn calls(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

/// Starts `Echo.TaskSupervisor` on `node` with `Echo.say(text) -> text`, which records `text`.
async fn echo_service(node: &nodus::remote::Node) -> Echo {
    let echo = Echo::default();
    let seen = echo.clone();
    node.functions()
        .register("Echo", "say", move |(text,): (String,)| {
            let seen = seen.clone();
            async move {
                seen.0.lock().unwrap().push(text.clone());
                text
            }
        });
    TaskSupervisor::start(node, TaskSupervisorConfig::new(ECHO))
        .await
        .unwrap();
    echo
}

/// `Echo.say(text)` run on `peer` from `from`, awaited within the deadline.
async fn echo_from(
    from: &nodus::remote::Node,
    peer: &NodeName,
    text: &str,
) -> Result<String, TaskError> {
    let run = async {
        TaskSupervisor::async_on::<_, String>(
            from,
            (ECHO, peer),
            "Echo",
            "say",
            (text.to_string(),),
        )
        .await?
        .await
    };
    tokio::time::timeout(DEADLINE, run)
        .await
        .expect("the task finishes within the deadline")
}

on_both_transports!(a_partition_is_a_tick_timeout_on_both_sides_and_the_mesh_heals);
async fn a_partition_is_a_tick_timeout_on_both_sides_and_the_mesh_heals(memory: bool) {
    let cluster = builder(memory)
        .nodes(3)
        .tick_time(TICK)
        .start()
        .await
        .unwrap();
    cluster.await_mesh(DEADLINE).await.unwrap();
    let (a, b, c) = (cluster.name(0), cluster.name(1), cluster.name(2));
    // b runs a function for its peers: the traffic that shows whether the a–b link carries
    // frames (a list of peers could be stale, or refilled without a working session).
    let echo = echo_service(cluster.node(1)).await;
    assert_eq!(
        echo_from(cluster.node(0), b, "before").await,
        Ok("before".into())
    );
    let (mut events_a, mut events_b) = (cluster.node(0).events(), cluster.node(1).events());

    cluster.partition(0, 1).unwrap();
    let started = tokio::time::Instant::now();
    assert_eq!(down(&mut events_a, b).await, NodeDownReason::TickTimeout);
    assert_eq!(down(&mut events_b, a).await, NodeDownReason::TickTimeout);
    // Detected by ticks, not at once: the peer's last tick came at most T/I before the cut,
    // so detection takes T - T/I to T after it (half T leaves room for timer jitter below;
    // 2 s of slack above for a loaded machine, yet a detector that waits several tick times
    // fails). The exact timing is tested on a paused clock in `actor-remote`'s
    // `transport::tests::a_silent_peer_is_a_tick_timeout`.
    let took = started.elapsed();
    assert!(took >= TICK / 2, "detected too early: {took:?}");
    assert!(
        took <= TICK + Duration::from_secs(2),
        "detected too late: {took:?}"
    );
    // The third node still sees both sides, and the cut-off pair cannot reconnect.
    assert_eq!(cluster.node(2).list(), [a.clone(), b.clone()]);
    assert_eq!(cluster.node(0).list(), std::slice::from_ref(c));
    assert!(cluster.node(0).connect(b).await.is_err());
    assert!(matches!(
        cluster.await_mesh(Duration::from_millis(300)).await,
        Err(ClusterError::NoMesh { .. })
    ));

    // Cut off: a task from a to b cannot even start.
    assert!(matches!(
        echo_from(cluster.node(0), b, "cut").await,
        Err(TaskError::NoConnection { .. })
    ));

    cluster.heal(0, 1).unwrap();
    cluster.await_mesh(DEADLINE).await.unwrap();
    assert_eq!(cluster.node(0).list(), [b.clone(), c.clone()]);
    assert_eq!(cluster.node(1).list(), [a.clone(), c.clone()]);
    // The healed link carries traffic both ways: a task from a runs on b and its result comes
    // back (a heal that restored the lists but not the frames fails here).
    assert_eq!(
        echo_from(cluster.node(0), b, "healed").await,
        Ok("healed".into())
    );
    assert_eq!(
        echo.calls(),
        ["before", "healed"],
        "b ran exactly the tasks that got through"
    );
    // Each node's log was captured on its own. Nothing in this test binary installs another
    // global subscriber, so capture must be on: a silent skip would hide a lost log.
    assert!(
        cluster.logs_captured(),
        "the cluster's log layer is not installed: logs cannot be checked"
    );
    let logs = cluster.logs(0);
    assert!(
        logs.iter()
            .any(|l| l.contains("nodedown") && l.contains(b.as_str())),
        "{logs:?}"
    );
    assert!(!cluster.logs(2).iter().any(|l| l.contains("nodedown")));
    cluster.shutdown().await;
}

on_both_transports!(a_paused_node_times_out_and_rejoins_when_resumed);
async fn a_paused_node_times_out_and_rejoins_when_resumed(memory: bool) {
    let mut cluster = builder(memory)
        .nodes(3)
        .tick_time(TICK)
        .handshake_timeout(Duration::from_secs(1))
        .start()
        .await
        .unwrap();
    cluster.await_mesh(DEADLINE).await.unwrap();
    let paused = cluster.name(1).clone();
    let (mut events_a, mut events_c) = (cluster.node(0).events(), cluster.node(2).events());
    cluster.pause(1).await.unwrap();
    assert_eq!(
        down(&mut events_a, &paused).await,
        NodeDownReason::TickTimeout
    );
    assert_eq!(
        down(&mut events_c, &paused).await,
        NodeDownReason::TickTimeout
    );
    // Frozen: it answers no handshake either (the attempt times out after 1 s).
    assert!(cluster.node(0).connect(&paused).await.is_err());
    cluster.resume(1).await.unwrap();
    cluster.await_mesh(DEADLINE).await.unwrap();
    assert_eq!(cluster.node(1).list().len(), 2);
    cluster.shutdown().await;
}

on_both_transports!(a_killed_node_is_down_at_once_and_the_rest_stays_meshed);
async fn a_killed_node_is_down_at_once_and_the_rest_stays_meshed(memory: bool) {
    let mut cluster = builder(memory)
        .nodes(3)
        .tick_time(Duration::from_secs(60))
        .start()
        .await
        .unwrap();
    cluster.await_mesh(DEADLINE).await.unwrap();
    let killed = cluster.name(2).clone();
    let monitor = cluster.node(0).monitor_node(&killed).await;
    cluster.kill(2).await.unwrap();
    // The tick time is 60 s: only the closed connection explains a prompt NodeDown.
    let down = tokio::time::timeout(Duration::from_secs(5), monitor)
        .await
        .expect("NodeDown at once");
    assert_eq!(down.reason, NodeDownReason::ConnectionClosed);
    cluster.await_mesh(DEADLINE).await.unwrap();
    assert_eq!(cluster.node(0).list(), [cluster.name(1).clone()]);
    assert!(cluster.try_node(2).is_none());
    assert!(matches!(
        cluster.kill(2).await,
        Err(ClusterError::Killed { .. })
    ));
    assert!(matches!(
        cluster.kill(7).await,
        Err(ClusterError::NoMember { index: 7, size: 3 })
    ));
    cluster.shutdown().await;
}

#[tokio::test]
async fn process_nodes_mesh_pause_and_die() {
    let Some(ping) = example_binary("ping") else {
        panic!(
            "the ping example is missing: run `cargo build --example ping` (cargo test builds it)"
        );
    };
    let mut cluster = LocalCluster::builder()
        .nodes(1)
        .processes(2, ping)
        .tick_time(TICK)
        .start()
        .await
        .unwrap();
    cluster.await_mesh(DEADLINE).await.unwrap();
    let names = cluster.names();
    assert_eq!(cluster.node(0).list(), names[1..]);
    printed(&cluster, 1, &format!("{}: pong", names[0])).await;

    // SIGSTOP: both the in-process node and the other process see a tick timeout.
    let mut events = cluster.node(0).events();
    cluster.pause(1).await.unwrap();
    assert_eq!(
        down(&mut events, &names[1]).await,
        NodeDownReason::TickTimeout
    );
    printed(
        &cluster,
        2,
        &format!("nodedown {} (net_tick_timeout)", names[1]),
    )
    .await;
    cluster.resume(1).await.unwrap();
    cluster.await_mesh(DEADLINE).await.unwrap();

    // Two process nodes cannot be partitioned (neither transport is ours).
    assert!(matches!(
        cluster.partition(1, 2),
        Err(ClusterError::Unsupported { .. })
    ));

    // SIGKILL: the connection closes at once.
    cluster.kill(2).await.unwrap();
    assert_eq!(
        down(&mut events, &names[2]).await,
        NodeDownReason::ConnectionClosed
    );
    assert!(
        !cluster.logs(1).is_empty(),
        "stderr of a process node is captured"
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn the_kv_service_example_crashes_restarts_and_repairs() {
    let Some(example) = example_binary("kv_service") else {
        panic!("the kv_service example is missing: run `cargo build --features testing --example kv_service` (cargo test --all-features builds it)");
    };
    let run = tokio::process::Command::new(example)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the example finishes within 30 s")
        .expect("the example runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    for line in [
        "put color=blue: 3 of 3 replicas",
        "reads color on kv3_",
        "was restarted as",
        "restored 2 keys",
        "(connection_closed)",
        "put size=large: 2 of 2 replicas",
        "shut down cleanly",
    ] {
        assert!(stdout.contains(line), "{line:?} missing from:\n{stdout}");
    }
}

#[tokio::test]
async fn each_in_process_node_has_its_own_captured_output() {
    let cluster = LocalCluster::builder().nodes(2).start().await.unwrap();
    cluster.await_mesh(DEADLINE).await.unwrap();
    let (a, b) = (cluster.node(0), cluster.node(1));
    for node in [a, b] {
        TaskSupervisor::start(node, TaskSupervisorConfig::new("Out.TaskSupervisor"))
            .await
            .unwrap();
        node.functions()
            .register("Out", "say", |(text,): (String,)| async move {
                nodus::puts!("{text}");
            });
    }
    // A task under b's supervisor prints on b (its group leader), not on a.
    TaskSupervisor::async_on::<_, ()>(
        a,
        ("Out.TaskSupervisor", b.name()),
        "Out",
        "say",
        ("hello from b",),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    assert_eq!(cluster.output(1), ["hello from b"]);
    assert!(cluster.output(0).is_empty(), "{:?}", cluster.output(0));
    cluster.shutdown().await;
}

on_both_transports!(a_linked_task_stops_when_the_callers_node_goes_away);
/// README: "a linked task stops when its caller (or the caller's node) goes away". a starts
/// a linked and a nolink task on b, both waiting forever; then a's node stops. The linked task
/// is stopped on b (its future dropped), the nolink one goes on and can still finish. A node
/// that forgot the links of a peer that went down keeps both running: the linked one never
/// stops within the deadline.
async fn a_linked_task_stops_when_the_callers_node_goes_away(memory: bool) {
    use std::sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    };
    let mut cluster = builder(memory).nodes(2).start().await.unwrap();
    cluster.await_mesh(DEADLINE).await.unwrap();
    let b = cluster.name(1).clone();
    let (stopped, finished) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (go_tx, go_rx) = tokio::sync::watch::channel(false);
    let (running_tx, mut running) = tokio::sync::mpsc::unbounded_channel::<String>();
    {
        let (stopped, finished) = (stopped.clone(), finished.clone());
        cluster
            .node(1)
            .functions()
            .register("Job", "wait", move |(label,): (String,)| {
                let (stopped, finished) = (stopped.clone(), finished.clone());
                let (mut go, running) = (go_rx.clone(), running_tx.clone());
                async move {
                    /// Counts the task as stopped if its future is dropped before the end.
                    struct Guard(Option<Arc<AtomicUsize>>);
                    impl Drop for Guard {
                        fn drop(&mut self) {
                            if let Some(stopped) = self.0.take() {
                                stopped.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                    }
                    let mut guard = Guard(Some(stopped));
                    let _ = running.send(label);
                    let _ = go.wait_for(|go| *go).await;
                    guard.0 = None;
                    finished.fetch_add(1, Ordering::SeqCst);
                }
            });
    }
    TaskSupervisor::start(cluster.node(1), TaskSupervisorConfig::new(ECHO))
        .await
        .unwrap();
    let a = cluster.node(0);
    let linked = TaskSupervisor::async_on::<_, ()>(a, (ECHO, &b), "Job", "wait", ("linked",))
        .await
        .unwrap();
    let nolink =
        TaskSupervisor::async_nolink_on::<_, ()>(a, (ECHO, &b), "Job", "wait", ("nolink",))
            .await
            .unwrap();
    let mut started = Vec::new();
    for _ in 0..2 {
        let label = tokio::time::timeout(DEADLINE, running.recv()).await;
        started.push(label.expect("both tasks start on b").unwrap());
    }
    started.sort();
    assert_eq!(started, ["linked", "nolink"]);

    // The handles stay alive (dropping a linked one would stop it by itself): only the
    // caller's node goes away.
    let mut events = cluster.node(1).events();
    cluster.kill(0).await.unwrap();
    let a_name = cluster.name(0).clone();
    assert_eq!(
        down(&mut events, &a_name).await,
        NodeDownReason::ConnectionClosed
    );
    let until = tokio::time::Instant::now() + DEADLINE;
    while stopped.load(Ordering::SeqCst) == 0 {
        assert!(
            tokio::time::Instant::now() < until,
            "the linked task was not stopped within {DEADLINE:?} of its caller's node going"
        );
        tokio::time::sleep(Duration::from_millis(5)).await; // polling interval, bounded
    }
    // The nolink task went on: released, it finishes, and nothing else was stopped.
    go_tx.send(true).unwrap();
    let until = tokio::time::Instant::now() + DEADLINE;
    while finished.load(Ordering::SeqCst) == 0 {
        assert!(
            tokio::time::Instant::now() < until,
            "the nolink task finishes"
        );
        tokio::time::sleep(Duration::from_millis(5)).await; // polling interval, bounded
    }
    assert_eq!(
        stopped.load(Ordering::SeqCst),
        1,
        "only the linked task stopped"
    );
    assert_eq!(
        finished.load(Ordering::SeqCst),
        1,
        "only the nolink task finished"
    );
    drop((linked, nolink));
    cluster.shutdown().await;
}

on_both_transports!(a_restarted_in_process_node_comes_back_with_its_services);
/// `LocalCluster::restart` of in-process nodes: node 1 killed then restarted, node 2
/// restarted while live. Each comes back under its name with a new creation, the `on_start`
/// hook ran on it again (its echo service answers peers, printing on its output), its log and
/// output go on, `await_mesh` includes it, and pause works on the new node (its transport is
/// the cluster's to freeze). A restart that reused the old node, skipped the hook or lost the
/// node's faults fails here.
async fn a_restarted_in_process_node_comes_back_with_its_services(memory: bool) {
    use std::sync::{Arc, Mutex};

    use nodus::remote::Ping;

    let hooks = Arc::new(Mutex::new(Vec::new()));
    let ran = hooks.clone();
    let mut cluster = builder(memory)
        .nodes(3)
        .tick_time(TICK)
        .on_start(move |node, i| {
            ran.lock().unwrap().push(i);
            async move {
                node.functions()
                    .register("Echo", "say", |(text,): (String,)| async move {
                        nodus::puts!("{text}");
                        text
                    });
                TaskSupervisor::start(&node, TaskSupervisorConfig::new(ECHO))
                    .await
                    .unwrap();
            }
        })
        .start()
        .await
        .unwrap();
    assert_eq!(
        *hooks.lock().unwrap(),
        [0, 1, 2],
        "the hook ran on each node"
    );
    cluster.await_mesh(DEADLINE).await.unwrap();
    let (b, c) = (cluster.name(1).clone(), cluster.name(2).clone());
    assert_eq!(
        echo_from(cluster.node(0), &b, "before").await,
        Ok("before".into())
    );
    let creation = cluster.node(1).creation();
    let logged = cluster.logs(1).len();

    // Killed, then restarted.
    let mut events = cluster.node(0).events();
    cluster.kill(1).await.unwrap();
    assert_eq!(
        down(&mut events, &b).await,
        NodeDownReason::ConnectionClosed
    );
    cluster.restart(1).await.unwrap();
    assert_eq!(cluster.node(1).name(), &b, "the same name");
    assert_ne!(cluster.node(1).creation(), creation, "a fresh node");
    assert_eq!(*hooks.lock().unwrap(), [0, 1, 2, 1], "the hook ran again");
    assert_eq!(cluster.node(2).ping(b.as_str()).await, Ping::Pong);
    assert_eq!(
        echo_from(cluster.node(0), &b, "after").await,
        Ok("after".into()),
        "its service answers again"
    );
    assert_eq!(cluster.output(1), ["before", "after"], "its output goes on");
    assert!(cluster.logs_captured());
    assert!(
        cluster.logs(1).len() > logged,
        "the new node's log is captured: {:?}",
        cluster.logs(1)
    );
    cluster.await_mesh(DEADLINE).await.unwrap();
    assert_eq!(cluster.node(1).list().len(), 2, "meshed again");

    // Its faults are wired to the new node: paused, its peers time out; resumed, it rejoins.
    cluster.pause(1).await.unwrap();
    assert_eq!(down(&mut events, &b).await, NodeDownReason::TickTimeout);
    cluster.resume(1).await.unwrap();
    cluster.await_mesh(DEADLINE).await.unwrap();

    // Restarted while live: killed first, so its peers see it go.
    let creation = cluster.node(2).creation();
    cluster.restart(2).await.unwrap();
    assert_eq!(
        down(&mut events, &c).await,
        NodeDownReason::ConnectionClosed
    );
    assert_ne!(cluster.node(2).creation(), creation);
    assert_eq!(*hooks.lock().unwrap(), [0, 1, 2, 1, 2]);
    assert_eq!(
        echo_from(cluster.node(1), &c, "again").await,
        Ok("again".into())
    );
    cluster.await_mesh(DEADLINE).await.unwrap();
    assert!(matches!(
        cluster.restart(3).await,
        Err(ClusterError::NoMember { index: 3, size: 3 })
    ));
    cluster.shutdown().await;
}

/// `LocalCluster::restart` of a process node: the same binary with the same arguments comes
/// back under the same name (its second `is up` line), pings node 0 again and joins the mesh;
/// its output goes on after the first process's.
#[tokio::test]
async fn a_restarted_process_node_rejoins() {
    let Some(ping) = example_binary("ping") else {
        panic!(
            "the ping example is missing: run `cargo build --example ping` (cargo test builds it)"
        );
    };
    let mut cluster = LocalCluster::builder()
        .nodes(1)
        .processes(1, ping)
        .tick_time(TICK)
        .start()
        .await
        .unwrap();
    cluster.await_mesh(DEADLINE).await.unwrap();
    let b = cluster.name(1).clone();
    let up = format!("node {b} is up");
    let mut events = cluster.node(0).events();

    // Live: killed first.
    cluster.restart(1).await.unwrap();
    assert_eq!(
        down(&mut events, &b).await,
        NodeDownReason::ConnectionClosed
    );
    let ups = cluster
        .output(1)
        .iter()
        .filter(|l| l.starts_with(&up))
        .count();
    assert_eq!(ups, 2, "a second process: {:?}", cluster.output(1));
    cluster.await_mesh(DEADLINE).await.unwrap();
    assert_eq!(cluster.node(0).list(), std::slice::from_ref(&b));
    assert_eq!(
        cluster.node(0).ping(b.as_str()).await,
        nodus::remote::Ping::Pong
    );

    // Killed, then restarted.
    cluster.kill(1).await.unwrap();
    assert_eq!(
        down(&mut events, &b).await,
        NodeDownReason::ConnectionClosed
    );
    cluster.restart(1).await.unwrap();
    cluster.await_mesh(DEADLINE).await.unwrap();
    assert_eq!(cluster.node(0).list(), std::slice::from_ref(&b));
    assert!(!cluster.logs(1).is_empty(), "stderr is still captured");
    cluster.shutdown().await;
}
