use std::time::Duration;

use super::*;
use crate::port_mapper::{PortMapperServer, PortMapperServerHandle};

const DEADLINE: Duration = Duration::from_secs(10);

async fn port_mapper() -> PortMapperServerHandle {
    PortMapperServer::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
        .spawn()
}

fn config(name: &str, epmd: &PortMapperServerHandle, cookie: &str) -> NodeConfig {
    NodeConfig::sname(name)
        .cookie(Cookie::new(cookie).unwrap())
        .port_mapper(epmd.local_addr())
        .tick_time(Duration::from_secs(1))
        .handshake_timeout(Duration::from_secs(3))
}

async fn node(name: &str, epmd: &PortMapperServerHandle) -> Node {
    Node::start(config(name, epmd, "mycookie")).await.unwrap()
}

fn n(s: &str) -> NodeName {
    NodeName::parse(s).unwrap()
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await; // polling interval, bounded by the deadline
    }
}

#[tokio::test]
async fn pong_pang_and_self() {
    let epmd = port_mapper().await;
    let hoge = node("hoge@localhost", &epmd).await;
    let fuga = node("fuga@localhost", &epmd).await;
    assert_eq!(
        hoge.ping("hoge@localhost").await,
        Ping::Pong,
        "pinging itself"
    );
    assert_eq!(hoge.list(), Vec::<NodeName>::new());
    assert_eq!(hoge.ping("fuga@localhost").await, Ping::Pong);
    assert_eq!(hoge.list(), [n("fuga@localhost")]);
    eventually("fuga to list hoge", || fuga.list() == [n("hoge@localhost")]).await;
    assert_eq!(
        hoge.ping("piyo@localhost").await,
        Ping::Pang,
        "not registered"
    );
    assert_eq!(hoge.ping("not a node").await, Ping::Pang);
    let err = hoge.connect(&n("piyo@localhost")).await.unwrap_err();
    assert_eq!(
        err,
        ConnectError::NotRegistered {
            node: n("piyo@localhost")
        }
    );
    assert_eq!(hoge.list_kind(ListKind::This), [n("hoge@localhost")]);
    assert_eq!(
        hoge.list_kind(ListKind::Known),
        [n("fuga@localhost"), n("hoge@localhost")]
    );
    hoge.shutdown().await;
    fuga.shutdown().await;
}

/// Keep alive while a test captures logs with a scoped subscriber. With a single dispatcher
/// in the process, tracing computes the interest of a callsite first hit on another thread
/// (another test, with no subscriber) from that thread's default alone, caches `never`, and
/// the node's span or event is then lost for this test too (seen as a line without
/// `node=...`). A second live dispatcher makes tracing rebuild every callsite's interest and
/// ask every dispatcher from then on.
fn every_dispatcher_asked() -> tracing::Dispatch {
    tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default())
}

/// While alive, what the current thread logs (debug and above) goes to a [`Captured`].
struct LogGuard {
    _subscriber: tracing::subscriber::DefaultGuard,
    _second: tracing::Dispatch,
}

/// Captures what the current thread logs, at debug and above, until the guard is dropped.
fn capture() -> (Captured, LogGuard) {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    (
        logs,
        LogGuard {
            _subscriber: guard,
            _second: every_dispatcher_asked(),
        },
    )
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);
impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn wrong_cookie_is_pang_for_the_initiator_and_logged_by_the_acceptor() {
    let (logs, _guard) = capture();

    let epmd = port_mapper().await;
    let good = node("good@localhost", &epmd).await;
    let evil = Node::start(config("evil@localhost", &epmd, "not-the-cookie"))
        .await
        .unwrap();
    assert_eq!(evil.ping("good@localhost").await, Ping::Pang);
    let err = evil.connect(&n("good@localhost")).await.unwrap_err();
    assert!(
        err.to_string().contains("same cookie"),
        "the initiator is told what to do: {err}"
    );
    assert!(good.list().is_empty() && evil.list().is_empty());
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains(
            "connection attempt from node evil@localhost rejected: invalid challenge reply"
        ),
        "the acceptor logs the peer and the reason:\n{text}"
    );
    assert!(
        !text.contains("mycookie") && !text.contains("not-the-cookie"),
        "no cookie in logs"
    );
    // The acceptor is unharmed: a right cookie still connects.
    let friend = node("friend@localhost", &epmd).await;
    assert_eq!(friend.ping("good@localhost").await, Ping::Pong);
    for node in [good, evil, friend] {
        node.shutdown().await;
    }
}

#[tokio::test]
async fn three_nodes_reach_a_full_mesh_from_a_chain_of_pings() {
    let epmd = port_mapper().await;
    let hoge = node("hoge@localhost", &epmd).await;
    let fuga = node("fuga@localhost", &epmd).await;
    let piyo = node("piyo@localhost", &epmd).await;
    assert_eq!(fuga.ping("hoge@localhost").await, Ping::Pong);
    assert_eq!(piyo.ping("fuga@localhost").await, Ping::Pong);
    eventually("a full mesh", || {
        hoge.list() == [n("fuga@localhost"), n("piyo@localhost")]
            && fuga.list() == [n("hoge@localhost"), n("piyo@localhost")]
            && piyo.list() == [n("fuga@localhost"), n("hoge@localhost")]
    })
    .await;
    for node in [hoge, fuga, piyo] {
        node.shutdown().await;
    }
}

#[tokio::test]
async fn without_connect_all_nodes_stay_attached_to_whom_they_pinged() {
    let epmd = port_mapper().await;
    let solo = |name| config(name, &epmd, "mycookie").connect_all(false);
    let a = Node::start(solo("a@localhost")).await.unwrap();
    let b = Node::start(solo("b@localhost")).await.unwrap();
    let c = Node::start(solo("c@localhost")).await.unwrap();
    assert_eq!(a.ping("b@localhost").await, Ping::Pong);
    assert_eq!(c.ping("b@localhost").await, Ping::Pong);
    eventually("b to see both", || b.list().len() == 2).await;
    // With connect_all, b's Peers message reaches c before b's Pong, and c dials a at once
    // (see the full-mesh test); another round trip gives such a dial time to show.
    assert_eq!(c.ping("b@localhost").await, Ping::Pong);
    assert_eq!(a.list(), [n("b@localhost")]);
    assert_eq!(c.list(), [n("b@localhost")]);
    for node in [a, b, c] {
        node.shutdown().await;
    }
}

#[tokio::test]
async fn hidden_nodes_stay_out_of_list_and_of_the_mesh() {
    let epmd = port_mapper().await;
    let a = node("a@localhost", &epmd).await;
    let b = node("b@localhost", &epmd).await;
    let h = Node::start(config("h@localhost", &epmd, "mycookie").hidden(true))
        .await
        .unwrap();
    assert_eq!(a.ping("b@localhost").await, Ping::Pong);
    assert_eq!(h.ping("a@localhost").await, Ping::Pong);
    eventually("a to see h as hidden", || {
        a.list_kind(ListKind::Hidden) == [n("h@localhost")]
    })
    .await;
    // Twice: the second round reads the peers a keeps sorted after two lists.
    for _ in 0..2 {
        assert_eq!(
            a.list(),
            [n("b@localhost")],
            "hidden nodes are not in list()"
        );
        assert_eq!(
            a.list_kind(ListKind::Connected),
            [n("b@localhost"), n("h@localhost")]
        );
        assert_eq!(a.list_kind(ListKind::Hidden), [n("h@localhost")]);
    }
    assert!(
        h.list().is_empty(),
        "a hidden node sees its peers as hidden connections"
    );
    assert_eq!(h.list_kind(ListKind::Hidden), [n("a@localhost")]);
    // No mesh through a hidden node: b never hears of h, and h does not connect to b.
    assert!(!b.list_kind(ListKind::Connected).contains(&n("h@localhost")));
    assert!(!h.list_kind(ListKind::Connected).contains(&n("b@localhost")));
    for node in [a, b, h] {
        node.shutdown().await;
    }
}

#[tokio::test]
async fn disconnect_gives_nodedown_and_the_next_ping_reconnects() {
    let epmd = port_mapper().await;
    let a = node("a@localhost", &epmd).await;
    let b = node("b@localhost", &epmd).await;
    assert_eq!(a.ping("b@localhost").await, Ping::Pong);
    // Listed three times, so the node keeps its peers sorted (from the second list at one
    // count of changes): each list below must still see them change.
    for _ in 0..3 {
        assert_eq!(a.list(), [n("b@localhost")]);
        assert_eq!(a.list_kind(ListKind::Connected), [n("b@localhost")]);
        assert!(a.list_kind(ListKind::Hidden).is_empty());
    }
    assert!(a.inner.lock_listed().generation.is_some(), "kept sorted");
    let mut events = a.events();
    let monitor = a.monitor_node(&n("b@localhost")).await;
    let monitor2 = a.monitor_node(&n("b@localhost")).await;
    assert!(a.disconnect(&n("b@localhost")));
    let down = tokio::time::timeout(DEADLINE, monitor).await.unwrap();
    assert_eq!(
        down,
        NodeDown {
            node: n("b@localhost"),
            reason: NodeDownReason::Disconnect
        }
    );
    assert_eq!(
        tokio::time::timeout(DEADLINE, monitor2)
            .await
            .unwrap()
            .reason,
        NodeDownReason::Disconnect,
        "one NodeDown per monitor"
    );
    let event = tokio::time::timeout(DEADLINE, events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        event,
        NodeEvent::NodeDown {
            node: n("b@localhost"),
            hidden: false,
            reason: NodeDownReason::Disconnect
        }
    );
    for _ in 0..3 {
        assert!(a.list().is_empty());
        assert!(a.list_kind(ListKind::Connected).is_empty());
    }
    assert!(!a.disconnect(&n("b@localhost")), "false the second time");
    eventually("b to see the disconnect", || b.list().is_empty()).await;
    assert_eq!(
        a.ping("b@localhost").await,
        Ping::Pong,
        "reconnects on demand"
    );
    let event = tokio::time::timeout(DEADLINE, events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        event,
        NodeEvent::NodeUp {
            node: n("b@localhost"),
            hidden: false
        }
    );
    for _ in 0..3 {
        assert_eq!(a.list(), [n("b@localhost")], "listed again once back");
    }
    let kept = a.inner.lock_listed().generation;
    assert_eq!(
        kept,
        Some(a.inner.lock().up_generation()),
        "kept at the last change"
    );
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_stopped_peer_is_down_at_once_and_a_monitor_of_an_unreachable_node_fires_at_once() {
    let epmd = port_mapper().await;
    let a = node("a@localhost", &epmd).await;
    let b = node("b@localhost", &epmd).await;
    assert_eq!(a.ping("b@localhost").await, Ping::Pong);
    let monitor = a.monitor_node(&n("b@localhost")).await;
    b.shutdown().await;
    let down = tokio::time::timeout(Duration::from_millis(900), monitor)
        .await
        .expect("seen before any tick timeout");
    // b shut down gracefully: it said so before it closed.
    assert_eq!(down.reason, NodeDownReason::Shutdown);
    let ghost = a.monitor_node(&n("ghost@localhost")).await;
    assert_eq!(
        tokio::time::timeout(DEADLINE, ghost).await.unwrap().reason,
        NodeDownReason::NoConnection
    );
    a.shutdown().await;
}

#[tokio::test]
async fn a_dropped_node_monitor_is_removed_from_the_machine() {
    let epmd = port_mapper().await;
    let a = node("a@localhost", &epmd).await;
    let b = node("b@localhost", &epmd).await;
    assert_eq!(a.ping("b@localhost").await, Ping::Pong);
    let monitor = a.monitor_node(&n("b@localhost")).await;
    assert_eq!(a.inner.lock().outstanding("nodemonitor"), 1);
    drop(monitor);
    assert_eq!(a.inner.lock().outstanding("nodemonitor"), 0);
    // The transport's node monitor (an actor context's `monitor_node`) too.
    let transport = super::node_transport::NodeTransport(Arc::downgrade(&a.inner));
    let mut down = actor_core::transport::Transport::monitor_node(&transport, n("b@localhost"));
    let set = tokio::time::timeout(DEADLINE, async {
        loop {
            // Polled once more each round: it connects (at once) and sets the monitor.
            assert!(futures::FutureExt::now_or_never(&mut down).is_none());
            if a.inner.lock().outstanding("nodemonitor") == 1 {
                break;
            }
            tokio::task::yield_now().await;
        }
    });
    set.await.expect("the monitor is set");
    drop(down);
    assert_eq!(a.inner.lock().outstanding("nodemonitor"), 0);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_duplicate_name_on_the_host_is_refused() {
    let epmd = port_mapper().await;
    let first = node("dup@localhost", &epmd).await;
    let err = Node::start(config("dup@localhost", &epmd, "mycookie"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, NodeError::NameInUse { ref name } if *name == n("dup@localhost")),
        "{err}"
    );
    assert!(err
        .to_string()
        .contains("seems to be in use by another node"));
    first.shutdown().await;
    // Once the first node is gone, its name is free again.
    let mut again = Node::start(config("dup@localhost", &epmd, "mycookie")).await;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while again.is_err() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await; // the port mapper sees the close asynchronously
        again = Node::start(config("dup@localhost", &epmd, "mycookie")).await;
    }
    again.unwrap().shutdown().await;
}

#[tokio::test]
async fn names_are_checked_and_short_and_long_names_do_not_mix() {
    let epmd = port_mapper().await;
    let bad = Node::start(config("a.b@localhost", &epmd, "c"))
        .await
        .unwrap_err();
    assert!(matches!(bad, NodeError::Name(_)), "{bad}");
    let long_as_short = Node::start(config("x@vm.example.com", &epmd, "c"))
        .await
        .unwrap_err();
    assert!(
        long_as_short
            .to_string()
            .contains("can't set short node name"),
        "{long_as_short}"
    );
    let short = node("short@localhost", &epmd).await;
    let long = Node::start(
        NodeConfig::lname("long@127.0.0.1")
            .cookie(Cookie::new("mycookie").unwrap())
            .port_mapper(epmd.local_addr()),
    )
    .await
    .unwrap();
    assert_eq!(long.ping("short@localhost").await, Ping::Pang);
    let err = long.connect(&n("short@localhost")).await.unwrap_err();
    assert!(matches!(err, ConnectError::Handshake { .. }), "{err}");
    short.shutdown().await;
    long.shutdown().await;
}

#[tokio::test]
async fn concurrent_pings_share_one_connection() {
    let epmd = port_mapper().await;
    let a = node("a@localhost", &epmd).await;
    let b = node("b@localhost", &epmd).await;
    let mut events = b.events();
    let pings: Vec<_> = (0..8).map(|_| a.ping("b@localhost")).collect();
    assert!(futures::future::join_all(pings)
        .await
        .iter()
        .all(|p| *p == Ping::Pong));
    // Both sides pinging each other at once still end with one session.
    let (x, y) = tokio::join!(a.ping("b@localhost"), b.ping("a@localhost"));
    assert_eq!((x, y), (Ping::Pong, Ping::Pong));
    assert_eq!(
        tokio::time::timeout(DEADLINE, events.recv())
            .await
            .unwrap()
            .unwrap(),
        NodeEvent::NodeUp {
            node: n("a@localhost"),
            hidden: false
        }
    );
    quiet_for(&mut events, "exactly one session came up").await;
    a.shutdown().await;
    b.shutdown().await;
}

/// How long "nothing else happens" is watched for: longer than a second session would take
/// to come up (or a duplicate to be dropped, a `NodeDown`) on loopback, even on a loaded
/// machine; the positive cases above see their event in milliseconds.
const QUIET: Duration = Duration::from_millis(500);

/// Asserts no event arrives on `events` within [`QUIET`].
async fn quiet_for(events: &mut tokio::sync::broadcast::Receiver<NodeEvent>, what: &str) {
    if let Ok(event) = tokio::time::timeout(QUIET, events.recv()).await {
        panic!("{what}, but then: {event:?}");
    }
}

#[tokio::test]
async fn simultaneous_first_connects_end_with_one_session() {
    // One session is checked by events on both sides: each node hears exactly one NodeUp for
    // the other and no NodeDown (a second session that replaced or raced the first shows as a
    // second NodeUp, or a NodeDown when the loser is torn down). The map behind `list` holds
    // one entry per peer whatever happens, so it proves nothing by itself.
    let epmd = port_mapper().await;
    for round in 0..5 {
        let a = node(&format!("a{round}@localhost"), &epmd).await;
        let b = node(&format!("b{round}@localhost"), &epmd).await;
        let (mut events_a, mut events_b) = (a.events(), b.events());
        let (x, y) = tokio::join!(a.ping(b.name().as_str()), b.ping(a.name().as_str()));
        assert_eq!((x, y), (Ping::Pong, Ping::Pong), "round {round}");
        for (events, peer) in [(&mut events_a, b.name()), (&mut events_b, a.name())] {
            let up = tokio::time::timeout(DEADLINE, events.recv()).await;
            assert_eq!(
                up.expect("a NodeUp").unwrap(),
                NodeEvent::NodeUp {
                    node: peer.clone(),
                    hidden: false
                },
                "round {round}"
            );
        }
        // Both watched at once: the wait is QUIET, not twice that.
        let (what_a, what_b) = (
            format!("round {round}: a heard one NodeUp"),
            format!("round {round}: b heard one NodeUp"),
        );
        tokio::join!(
            quiet_for(&mut events_a, &what_a),
            quiet_for(&mut events_b, &what_b)
        );
        assert_eq!(a.list(), [b.name().clone()]);
        assert_eq!(b.list(), [a.name().clone()]);
        a.shutdown().await;
        b.shutdown().await;
    }
}

#[tokio::test]
#[cfg_attr(
    not(nodus_has_epmd),
    ignore = "needs the real epmd: apt-get install erlang-base"
)]
async fn nodes_register_with_the_real_epmd_and_find_each_other_through_it() {
    use crate::port_mapper::tests::{epmd_names_cli, RealEpmd};
    let epmd = RealEpmd::start().await;
    let with_real = |name| {
        NodeConfig::sname(name)
            .cookie(Cookie::new("mycookie").unwrap())
            .port_mapper(epmd.addr())
    };
    let hoge = Node::start(with_real("hoge@localhost")).await.unwrap();
    let fuga = Node::start(with_real("fuga@localhost")).await.unwrap();
    let names = epmd_names_cli(epmd.addr().port()).await;
    assert!(
        names.contains(&format!("name hoge at port {}", hoge.listen_addr().port())),
        "epmd -names:\n{names}"
    );
    assert!(
        names.contains(&format!("name fuga at port {}", fuga.listen_addr().port())),
        "epmd -names:\n{names}"
    );
    assert_eq!(
        hoge.ping("fuga@localhost").await,
        Ping::Pong,
        "found through the real epmd"
    );
    fuga.shutdown().await;
    hoge.shutdown().await;
    epmd.stop().await;
}

#[tokio::test]
async fn when_the_node_hosting_the_embedded_port_mapper_stops_the_others_register_again() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = free.local_addr().unwrap();
    drop(free);
    let cfg = |name| {
        NodeConfig::sname(name)
            .cookie(Cookie::new("mycookie").unwrap())
            .port_mapper(addr)
            .handshake_timeout(Duration::from_secs(2))
    };
    let host = Node::start(cfg("host@localhost")).await.unwrap(); // starts the embedded one
    let stays = Node::start(cfg("stays@localhost")).await.unwrap();
    host.shutdown().await;
    // `stays` registers again (starting its own embedded port mapper); a newcomer finds it.
    let newcomer = Node::start(cfg("newcomer@localhost")).await.unwrap();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while newcomer.ping("stays@localhost").await != Ping::Pong {
        assert!(
            tokio::time::Instant::now() < deadline,
            "stays@localhost never registered again"
        );
    }
    newcomer.shutdown().await;
    stays.shutdown().await;
}

// -------------------------------------------------------------------------------------------
// Remote tasks: the outcomes Elixir's Task.Supervisor gives for a task on another node.

mod remote_tasks {
    use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};

    use actor_core::{Pid, Restart, Shutdown, TaskError, TaskSupervisor, TaskSupervisorConfig};
    use tokio::sync::mpsc;

    use super::*;

    const SUP: &str = "Chat.TaskSupervisor";

    /// Sends on drop: tells a test that a task was stopped before it finished.
    struct DropFlag(Option<oneshot::Sender<()>>);
    impl Drop for DropFlag {
        fn drop(&mut self) {
            if let Some(tx) = self.0.take() {
                let _ = tx.send(());
            }
        }
    }

    async fn chat_node(name: &str, epmd: &PortMapperServerHandle) -> Node {
        let node = node(name, epmd).await;
        TaskSupervisor::start(&node, TaskSupervisorConfig::new(SUP))
            .await
            .unwrap();
        let me = name.to_string();
        node.functions()
            .register("Chat", "receive_message", move |(msg,): (String,)| {
                let me = me.clone();
                async move { format!("{me} got {msg}") }
            });
        node.functions().register("Chat", "boom", |(): ()| async {
            if true {
                panic!("boom on the remote node");
            }
        });
        node
    }

    #[tokio::test]
    async fn a_function_runs_on_the_peer_under_its_supervisor() {
        let epmd = port_mapper().await;
        let alex = chat_node("alex@localhost", &epmd).await;
        let kate = chat_node("kate@localhost", &epmd).await;
        // Not connected yet: the call connects implicitly, as on the BEAM.
        let task = TaskSupervisor::async_on(
            &alex,
            (SUP, "kate@localhost"),
            "Chat",
            "receive_message",
            ("hi",),
        )
        .await
        .unwrap();
        let reply: String = task.await.unwrap();
        assert_eq!(reply, "kate@localhost got hi", "it ran on kate");
        assert_eq!(alex.list(), [n("kate@localhost")]);
        // By pid too.
        let sup_pid = kate.pid_of(&kate.registry().whereis_cell(SUP).unwrap());
        let reply: String =
            TaskSupervisor::async_nolink_on(&alex, sup_pid, "Chat", "receive_message", ("yo",))
                .await
                .unwrap()
                .await
                .unwrap();
        assert_eq!(reply, "kate@localhost got yo");
        alex.shutdown().await;
        kate.shutdown().await;
    }

    #[tokio::test]
    async fn start_errors_come_back_typed_and_no_task_is_made() {
        let epmd = port_mapper().await;
        let alex = chat_node("alex@localhost", &epmd).await;
        let kate = chat_node("kate@localhost", &epmd).await;
        let ghost = TaskSupervisor::async_on::<_, String>(
            &alex,
            (SUP, "ghost@localhost"),
            "Chat",
            "receive_message",
            ("x",),
        )
        .await;
        assert_eq!(
            ghost.unwrap_err(),
            TaskError::NoConnection {
                node: n("ghost@localhost")
            }
        );
        let nosup = TaskSupervisor::async_on::<_, String>(
            &alex,
            ("Nope", "kate@localhost"),
            "Chat",
            "receive_message",
            ("x",),
        )
        .await;
        assert_eq!(
            nosup.unwrap_err(),
            TaskError::NoProc {
                name: "Nope".into(),
                node: n("kate@localhost")
            }
        );
        let undef = TaskSupervisor::async_on::<_, String>(
            &alex,
            (SUP, "kate@localhost"),
            "Chat",
            "nope",
            (),
        )
        .await;
        assert_eq!(
            undef.unwrap_err(),
            TaskError::Undefined {
                module: "Chat".into(),
                function: "nope".into()
            }
        );
        let badargs = TaskSupervisor::async_on::<_, String>(
            &alex,
            (SUP, "kate@localhost"),
            "Chat",
            "receive_message",
            42u64,
        )
        .await;
        assert!(
            matches!(badargs, Err(TaskError::BadArgs { .. })),
            "{badargs:?}"
        );
        let child = TaskSupervisor::start_child_on(
            &alex,
            (SUP, "ghost@localhost"),
            "Chat",
            "receive_message",
            ("x",),
            Restart::Temporary,
        )
        .await;
        assert!(matches!(child, Err(TaskError::NoConnection { .. })));
        assert_eq!(
            TaskSupervisor::whereis(&kate, SUP)
                .unwrap()
                .count_children()
                .await,
            Ok(0),
            "no task was made"
        );
        alex.shutdown().await;
        kate.shutdown().await;
    }

    #[tokio::test]
    async fn a_remote_panic_reaches_the_caller_and_is_logged_by_the_remote_node() {
        let (logs, _guard) = capture();
        let epmd = port_mapper().await;
        let alex = chat_node("alex@localhost", &epmd).await;
        let kate = chat_node("kate@localhost", &epmd).await;
        let task = TaskSupervisor::async_nolink_on::<_, ()>(
            &alex,
            (SUP, "kate@localhost"),
            "Chat",
            "boom",
            (),
        )
        .await
        .unwrap();
        assert_eq!(
            task.await,
            Err(TaskError::Panicked {
                message: "boom on the remote node".into()
            })
        );
        let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
        let line = text
            .lines()
            .find(|l| l.contains("task terminating: panicked: boom on the remote node"));
        assert!(
            line.is_some_and(|l| l.contains("node=kate@localhost")),
            "kate logs it:\n{text}"
        );
        alex.shutdown().await;
        kate.shutdown().await;
    }

    #[tokio::test]
    async fn when_the_node_dies_mid_task_await_and_yield_return_noconnection_at_once() {
        let epmd = port_mapper().await;
        let alex = chat_node("alex@localhost", &epmd).await;
        let kate = chat_node("kate@localhost", &epmd).await;
        let (started_tx, mut started) = mpsc::unbounded_channel();
        kate.functions().register("Slow", "forever", move |(): ()| {
            let started_tx = started_tx.clone();
            async move {
                let _ = started_tx.send(());
                futures::future::pending::<()>().await;
            }
        });
        let awaited = TaskSupervisor::async_nolink_on::<_, ()>(
            &alex,
            (SUP, "kate@localhost"),
            "Slow",
            "forever",
            (),
        )
        .await
        .unwrap();
        let mut yielded = TaskSupervisor::async_on::<_, ()>(
            &alex,
            (SUP, "kate@localhost"),
            "Slow",
            "forever",
            (),
        )
        .await
        .unwrap();
        for _ in 0..2 {
            tokio::time::timeout(DEADLINE, started.recv())
                .await
                .unwrap()
                .unwrap();
        }
        assert_eq!(
            yielded.yield_timeout(Duration::from_millis(10)).await,
            Ok(None)
        );
        kate.shutdown().await;
        let t0 = tokio::time::Instant::now();
        let noconn = Err(TaskError::NoConnection {
            node: n("kate@localhost"),
        });
        assert_eq!(awaited.await_timeout(Duration::from_secs(30)).await, noconn);
        assert_eq!(
            yielded.yield_timeout(Duration::from_secs(30)).await,
            noconn.map(Some)
        );
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "at once, not at the timeout"
        );
        alex.shutdown().await;
    }

    #[tokio::test]
    async fn await_timeout_stops_a_linked_task_and_a_nolink_task_goes_on() {
        let epmd = port_mapper().await;
        let alex = chat_node("alex@localhost", &epmd).await;
        let kate = chat_node("kate@localhost", &epmd).await;
        let (events_tx, mut events) = mpsc::unbounded_channel::<&'static str>();
        let (go_tx, go_rx) = tokio::sync::watch::channel(false);
        kate.functions()
            .register("Job", "wait", move |(label,): (String,)| {
                let (events_tx, mut go_rx) = (events_tx.clone(), go_rx.clone());
                async move {
                    let label: &'static str = if label == "linked" {
                        "linked"
                    } else {
                        "nolink"
                    };
                    let (flag_tx, flag_rx) = oneshot::channel();
                    let _flag = DropFlag(Some(flag_tx));
                    let watcher = events_tx.clone();
                    tokio::spawn(async move {
                        if flag_rx.await.is_ok() {
                            let _ = watcher.send(if label == "linked" {
                                "linked stopped"
                            } else {
                                "nolink stopped"
                            });
                        }
                    });
                    let _ = events_tx.send(label);
                    let _ = go_rx.wait_for(|go| *go).await;
                    let _ = events_tx.send(if label == "linked" {
                        "linked finished"
                    } else {
                        "nolink finished"
                    });
                }
            });
        let linked = TaskSupervisor::async_on::<_, ()>(
            &alex,
            (SUP, "kate@localhost"),
            "Job",
            "wait",
            ("linked",),
        )
        .await
        .unwrap();
        let nolink = TaskSupervisor::async_nolink_on::<_, ()>(
            &alex,
            (SUP, "kate@localhost"),
            "Job",
            "wait",
            ("nolink",),
        )
        .await
        .unwrap();
        let mut seen = vec![];
        for _ in 0..2 {
            seen.push(
                tokio::time::timeout(DEADLINE, events.recv())
                    .await
                    .unwrap()
                    .unwrap(),
            );
        }
        seen.sort_unstable();
        assert_eq!(seen, ["linked", "nolink"], "both tasks started on kate");
        let timeout = Duration::from_millis(20);
        assert_eq!(
            linked.await_timeout(timeout).await,
            Err(TaskError::Timeout { timeout })
        );
        assert_eq!(
            tokio::time::timeout(DEADLINE, events.recv()).await.unwrap(),
            Some("linked stopped")
        );
        assert_eq!(
            nolink.await_timeout(timeout).await,
            Err(TaskError::Timeout { timeout })
        );
        go_tx.send(true).unwrap();
        assert_eq!(
            tokio::time::timeout(DEADLINE, events.recv()).await.unwrap(),
            Some("nolink finished"),
            "the nolink task went on"
        );
        alex.shutdown().await;
        kate.shutdown().await;
    }

    #[tokio::test]
    async fn async_stream_on_a_peer() {
        use actor_core::StreamOptions;
        use futures::StreamExt;
        let epmd = port_mapper().await;
        let alex = chat_node("alex@localhost", &epmd).await;
        let kate = chat_node("kate@localhost", &epmd).await;
        let results: Vec<Result<String, TaskError>> = TaskSupervisor::async_stream_on(
            &alex,
            (SUP, "kate@localhost"),
            "Chat",
            "receive_message",
            [("a",), ("b",)],
            StreamOptions::default(),
        )
        .collect()
        .await;
        assert_eq!(
            results,
            [
                Ok("kate@localhost got a".to_string()),
                Ok("kate@localhost got b".to_string())
            ]
        );
        alex.shutdown().await;
        kate.shutdown().await;
    }

    #[tokio::test]
    async fn start_child_on_a_peer_and_shutdown_of_a_remote_task() {
        let epmd = port_mapper().await;
        let alex = chat_node("alex@localhost", &epmd).await;
        let kate = chat_node("kate@localhost", &epmd).await;
        let runs = Arc::new(AtomicUsize::new(0));
        let r = runs.clone();
        kate.functions()
            .register("Job", "count", move |(k,): (usize,)| {
                let r = r.clone();
                async move {
                    r.fetch_add(k, AtomicOrdering::SeqCst);
                }
            });
        TaskSupervisor::start_child_on(
            &alex,
            (SUP, "kate@localhost"),
            "Job",
            "count",
            (5usize,),
            Restart::Temporary,
        )
        .await
        .unwrap();
        eventually("the child to run on kate", || {
            runs.load(AtomicOrdering::SeqCst) == 5
        })
        .await;

        let (dropped_tx, dropped) = oneshot::channel();
        let dropped_tx = Arc::new(Mutex::new(Some(dropped_tx)));
        kate.functions().register("Job", "hang", move |(): ()| {
            let flag = DropFlag(dropped_tx.lock().unwrap().take());
            async move {
                let _flag = flag;
                futures::future::pending::<()>().await;
            }
        });
        let task = TaskSupervisor::async_nolink_on::<_, ()>(
            &alex,
            (SUP, "kate@localhost"),
            "Job",
            "hang",
            (),
        )
        .await
        .unwrap();
        assert_eq!(task.shutdown(Shutdown::Timeout(DEADLINE)).await, Ok(None));
        tokio::time::timeout(DEADLINE, dropped)
            .await
            .unwrap()
            .unwrap();
        alex.shutdown().await;
        kate.shutdown().await;
    }

    #[tokio::test]
    async fn a_pid_from_before_the_peer_restarted_answers_noproc() {
        let epmd = port_mapper().await;
        let alex = chat_node("alex@localhost", &epmd).await;
        let kate = chat_node("kate@localhost", &epmd).await;
        let old: Pid = kate.pid_of(&kate.registry().whereis_cell(SUP).unwrap());
        let ok: String =
            TaskSupervisor::async_on(&alex, old.clone(), "Chat", "receive_message", ("1",))
                .await
                .unwrap()
                .await
                .unwrap();
        assert_eq!(ok, "kate@localhost got 1");
        kate.shutdown().await;
        let mut kate2 = Node::start(config("kate@localhost", &epmd, "mycookie")).await;
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while kate2.is_err() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await; // the old registration closes asynchronously
            kate2 = Node::start(config("kate@localhost", &epmd, "mycookie")).await;
        }
        let kate2 = kate2.unwrap();
        TaskSupervisor::start(&kate2, TaskSupervisorConfig::new(SUP))
            .await
            .unwrap();
        assert_ne!(kate2.creation(), old.creation());
        let stale =
            TaskSupervisor::async_on::<_, String>(&alex, old, "Chat", "receive_message", ("2",))
                .await;
        assert!(matches!(stale, Err(TaskError::NoProc { .. })), "{stale:?}");
        alex.shutdown().await;
        kate2.shutdown().await;
    }
}

// -------------------------------------------------------------------------------------------
// Casts and calls to actors on other nodes.

mod remote_actors {
    use actor_core::{
        bridge_reply, codec,
        ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort},
        reply_port, CallError, RemoteMessage, ReplySink, SendErrorKind, Wire,
    };

    use super::*;

    struct Counter;

    enum CounterMsg {
        Add(u64),
        Get(RpcReplyPort<u64>),
        Ignore(RpcReplyPort<u64>),
        /// Every `Add` received so far, in the order it arrived.
        Log(RpcReplyPort<Vec<u64>>),
    }

    impl RemoteMessage for CounterMsg {
        const NAME: &'static str = "CounterMsg";

        fn to_wire(self) -> Result<Wire, codec::CodecError> {
            Ok(match self {
                CounterMsg::Add(n) => Wire::cast(codec::encode(&(0u8, n))?),
                CounterMsg::Get(port) => {
                    Wire::call(codec::encode(&(1u8, 0u64))?, bridge_reply(port))
                }
                CounterMsg::Ignore(port) => {
                    Wire::call(codec::encode(&(2u8, 0u64))?, bridge_reply(port))
                }
                CounterMsg::Log(port) => {
                    Wire::call(codec::encode(&(3u8, 0u64))?, bridge_reply(port))
                }
            })
        }
        fn from_wire(payload: &[u8], reply: Option<ReplySink>) -> Result<Self, codec::CodecError> {
            match (codec::decode::<(u8, u64)>(payload)?, reply) {
                ((0, n), None) => Ok(CounterMsg::Add(n)),
                ((1, _), Some(sink)) => Ok(CounterMsg::Get(reply_port(sink))),
                ((2, _), Some(sink)) => Ok(CounterMsg::Ignore(reply_port(sink))),
                ((3, _), Some(sink)) => Ok(CounterMsg::Log(reply_port(sink))),
                _ => Err(codec::CodecError::Decode {
                    expected: "CounterMsg",
                    reason: "unknown variant".into(),
                }),
            }
        }
    }

    impl Actor for Counter {
        type Msg = CounterMsg;
        /// The sum, the calls never answered, and every `Add` in arrival order.
        type State = (u64, Vec<RpcReplyPort<u64>>, Vec<u64>);
        type Arguments = ();
        async fn pre_start(
            &self,
            _: ActorRef<CounterMsg>,
            _: (),
        ) -> Result<Self::State, ActorProcessingErr> {
            Ok((0, Vec::new(), Vec::new()))
        }
        async fn handle(
            &self,
            _: ActorRef<CounterMsg>,
            msg: CounterMsg,
            state: &mut Self::State,
        ) -> Result<(), ActorProcessingErr> {
            match msg {
                CounterMsg::Add(k) => {
                    state.0 += k;
                    state.2.push(k);
                }
                CounterMsg::Get(reply) => {
                    let _ = reply.send(state.0);
                }
                CounterMsg::Ignore(reply) => state.1.push(reply), // never answered
                CounterMsg::Log(reply) => {
                    let _ = reply.send(state.2.clone());
                }
            }
            Ok(())
        }
    }

    const T: Duration = Duration::from_secs(5);

    async fn pair(epmd: &PortMapperServerHandle) -> (Node, Node, ActorRef<CounterMsg>) {
        let alex = node("alex@localhost", epmd).await;
        let kate = node("kate@localhost", epmd).await;
        alex.register_remote_message::<CounterMsg>();
        kate.register_remote_message::<CounterMsg>();
        let (counter, _) = kate.spawn(Some("counter"), Counter, ()).await.unwrap();
        (alex, kate, counter)
    }

    #[tokio::test]
    async fn casts_and_calls_reach_a_named_actor_and_a_pid_on_the_peer_in_order() {
        let epmd = port_mapper().await;
        let (alex, kate, counter) = pair(&epmd).await;
        let dest = ("counter", "kate@localhost");
        // Not connected yet: the casts are queued, the node connects, and they arrive in order
        // before the call. The order is checked as a sequence (a sum would not see the queue
        // flushed backwards, or a later cast overtaking the queued ones).
        assert!(alex.list().is_empty(), "no session before the first cast");
        for k in 1..=100u64 {
            alex.cast(dest, CounterMsg::Add(k)).unwrap();
        }
        assert!(
            alex.list().is_empty(),
            "the casts were sent before the connection was up (queued during the connect)"
        );
        assert_eq!(
            alex.call(dest, CounterMsg::Log, T).await,
            Ok((1..=100u64).collect::<Vec<_>>()),
            "the casts queued during the implicit connect arrive in the order they were sent"
        );
        assert_eq!(alex.call(dest, CounterMsg::Get, T).await, Ok(5050));
        let pid = kate.pid_of(&counter.get_cell());
        alex.cast(&pid, CounterMsg::Add(101)).unwrap();
        let log = alex.call(pid, CounterMsg::Log, T).await.unwrap();
        assert_eq!(
            log,
            (1..=101u64).collect::<Vec<_>>(),
            "a cast by pid comes after"
        );
        alex.shutdown().await;
        kate.shutdown().await;
    }

    #[tokio::test]
    async fn failures_are_typed() {
        let epmd = port_mapper().await;
        let (alex, kate, counter) = pair(&epmd).await;
        let kate_name = n("kate@localhost");

        // Unregistered on the sender: refused before anything is sent, the message handed back.
        let err = alex.cast(("counter", "kate@localhost"), 7u32).unwrap_err();
        assert!(
            matches!(err.kind, SendErrorKind::NotRemotable { type_name: "u32" }),
            "{err}"
        );
        assert_eq!(err.into_inner(), Some(7));

        // Unregistered on the receiver: the call says so.
        let carol = node("carol@localhost", &epmd).await;
        carol.spawn(Some("counter"), Counter, ()).await.unwrap();
        let err = alex
            .call(("counter", "carol@localhost"), CounterMsg::Get, T)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, CallError::Send(SendErrorKind::Refused { reason, .. }) if reason.contains("not registered")),
            "{err}"
        );

        // No such actor there.
        let err = alex
            .call(("nobody", "kate@localhost"), CounterMsg::Get, T)
            .await
            .unwrap_err();
        assert!(
            matches!(err, CallError::Send(SendErrorKind::NoProc { ref node, .. }) if *node == kate_name),
            "{err}"
        );

        // A call the actor never answers times out (the late reply, if any, is dropped).
        let short = Duration::from_millis(50);
        let err = alex
            .call(("counter", "kate@localhost"), CounterMsg::Ignore, short)
            .await
            .unwrap_err();
        assert!(
            matches!(err, CallError::Timeout { timeout, .. } if timeout == short),
            "{err}"
        );

        // A node that cannot be reached: a cast is dropped without error, a call fails.
        alex.cast(("counter", "ghost@localhost"), CounterMsg::Add(1))
            .unwrap();
        let err = alex
            .call(("counter", "ghost@localhost"), CounterMsg::Get, T)
            .await
            .unwrap_err();
        assert_eq!(
            err,
            CallError::Send(SendErrorKind::NoConnection {
                node: n("ghost@localhost")
            })
        );

        // A pid of a stopped actor.
        let pid = kate.pid_of(&counter.get_cell());
        counter.stop(None);
        eventually("the counter to stop", || {
            kate.registry().whereis_cell("counter").is_none()
        })
        .await;
        let err = alex.call(pid, CounterMsg::Get, T).await.unwrap_err();
        assert!(
            matches!(err, CallError::Send(SendErrorKind::NoProc { .. })),
            "{err}"
        );
        for node in [alex, kate, carol] {
            node.shutdown().await;
        }
    }

    #[tokio::test]
    async fn a_call_sent_before_the_node_went_down_fails_unconfirmed_at_once() {
        let epmd = port_mapper().await;
        let (alex, kate, _counter) = pair(&epmd).await;
        assert_eq!(
            alex.call(("counter", "kate@localhost"), CounterMsg::Get, T)
                .await,
            Ok(0)
        );
        let pending = {
            let alex = alex.clone();
            tokio::spawn(async move {
                alex.call(
                    ("counter", "kate@localhost"),
                    CounterMsg::Ignore,
                    Duration::from_secs(30),
                )
                .await
            })
        };
        // Wait until the call is on the wire, then take kate down.
        eventually("the call to be pending", || {
            alex.inner.lock().outstanding("call") != 0
        })
        .await;
        let t0 = tokio::time::Instant::now();
        kate.shutdown().await;
        let err = tokio::time::timeout(DEADLINE, pending)
            .await
            .unwrap()
            .unwrap()
            .unwrap_err();
        // Sent, then the node went down: it may have been handled, so a retry is not safe
        // (a call never sent would be `Send(NoConnection)`).
        assert_eq!(
            err,
            CallError::Unconfirmed {
                dest: ("counter", "kate@localhost").into(),
                node: n("kate@localhost")
            }
        );
        assert!(t0.elapsed() < Duration::from_secs(5));
        alex.shutdown().await;
    }

    #[tokio::test]
    async fn after_a_disconnect_the_next_send_reconnects() {
        let epmd = port_mapper().await;
        let (alex, kate, _counter) = pair(&epmd).await;
        let dest = ("counter", "kate@localhost");
        alex.cast(dest, CounterMsg::Add(1)).unwrap();
        assert_eq!(alex.call(dest, CounterMsg::Get, T).await, Ok(1));
        let mut events = alex.events();
        assert!(alex.disconnect(&n("kate@localhost")));
        let down = tokio::time::timeout(DEADLINE, events.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(
            matches!(
                down,
                NodeEvent::NodeDown {
                    reason: NodeDownReason::Disconnect,
                    ..
                }
            ),
            "{down:?}"
        );
        assert!(alex.list().is_empty());
        alex.cast(dest, CounterMsg::Add(1)).unwrap(); // reconnects, as the BEAM's send does
        let up = tokio::time::timeout(DEADLINE, events.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            up,
            NodeEvent::NodeUp {
                node: n("kate@localhost"),
                hidden: false
            }
        );
        assert_eq!(
            alex.call(dest, CounterMsg::Get, T).await,
            Ok(2),
            "the cast was delivered"
        );
        alex.shutdown().await;
        kate.shutdown().await;
    }

    #[tokio::test]
    async fn monitors_of_remote_actors_fire_once_with_the_reason() {
        use actor_core::DownReason;
        let epmd = port_mapper().await;
        let (alex, kate, counter) = pair(&epmd).await;
        let stopped = alex.monitor(("counter", "kate@localhost"));
        let noproc = alex.monitor(("nobody", "kate@localhost"));
        assert_eq!(
            tokio::time::timeout(DEADLINE, noproc).await.unwrap().reason,
            DownReason::NoProc
        );
        // Make sure the monitor is set on kate before the counter stops.
        assert_eq!(
            alex.call(("counter", "kate@localhost"), CounterMsg::Get, T)
                .await,
            Ok(0)
        );
        eventually("kate to watch the counter", || {
            kate.inner.lock().served_watches() != 0
        })
        .await;
        counter.stop(None);
        assert_eq!(
            tokio::time::timeout(DEADLINE, stopped)
                .await
                .unwrap()
                .reason,
            DownReason::Normal
        );

        let (again, _) = kate.spawn(Some("counter"), Counter, ()).await.unwrap();
        let by_name = alex.monitor(("counter", "kate@localhost"));
        let by_pid = alex.monitor(kate.pid_of(&again.get_cell()));
        eventually("kate to watch both", || {
            kate.inner.lock().served_watches() == 2
        })
        .await;
        kate.shutdown().await;
        for m in [by_name, by_pid] {
            assert_eq!(
                tokio::time::timeout(DEADLINE, m).await.unwrap().reason,
                DownReason::NoConnection,
                "every monitor of the node's actors"
            );
        }
        let ghost = alex.monitor(("counter", "ghost@localhost"));
        assert_eq!(
            tokio::time::timeout(DEADLINE, ghost).await.unwrap().reason,
            DownReason::NoConnection
        );
        alex.shutdown().await;
    }

    #[tokio::test]
    async fn a_proxy_is_an_ordinary_actor_ref_and_a_supervisor_restarts_it_when_the_remote_exits() {
        use actor_core::{RemoteProxy, Restart, Supervisor, SupervisorSpec};
        let epmd = port_mapper().await;
        let alex = node("alex@localhost", &epmd).await;
        let kate = node("kate@localhost", &epmd).await;
        alex.register_remote_message::<CounterMsg>();
        kate.register_remote_message::<CounterMsg>();
        // On kate, the counter is supervised: a crash restarts it under the same name.
        let kate_sup = SupervisorSpec::default().child(
            actor_core::ChildSpec::from_fn(
                "counter",
                |_system: actor_core::System, sup| async move {
                    let (counter, _) =
                        Actor::spawn_linked(None, Counter, (), sup)
                            .await
                            .map_err(|e| actor_core::SpawnError::StartFailed {
                                what: "counter".into(),
                                reason: e.to_string(),
                            })?;
                    Ok::<_, actor_core::SpawnError>(counter.get_cell())
                },
            )
            .name("counter"),
        );
        Supervisor::start(&kate, None, kate_sup).await.unwrap();

        // On alex, a supervised proxy for it, registered locally as "kate.counter".
        let spec = SupervisorSpec::default().child(
            RemoteProxy::<CounterMsg>::child_spec("proxy", ("counter", "kate@localhost"))
                .restart(Restart::Transient)
                .name("kate.counter"),
        );
        Supervisor::start(&alex, None, spec).await.unwrap();
        let proxy: ActorRef<CounterMsg> = alex.whereis("kate.counter").unwrap();
        proxy.cast(CounterMsg::Add(3)).unwrap();
        let got = proxy.call(CounterMsg::Get, Some(T)).await.unwrap();
        assert!(
            matches!(got, actor_core::ractor::rpc::CallResult::Success(3)),
            "{got:?}"
        );

        // The remote counter stops: the proxy exits with its reason ("crash"), the supervisor
        // restarts it.
        let old = proxy.get_id();
        kate.whereis::<CounterMsg>("counter")
            .unwrap()
            .stop(Some("crash".into()));
        eventually("the proxy to be restarted", || {
            alex.whereis::<CounterMsg>("kate.counter")
                .is_some_and(|p| p.get_id() != old)
        })
        .await;
        let fresh: ActorRef<CounterMsg> = alex.whereis("kate.counter").unwrap();
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            // The new proxy reaches kate's restarted counter (fresh state).
            if let Ok(actor_core::ractor::rpc::CallResult::Success(n)) =
                fresh.call(CounterMsg::Get, Some(T)).await
            {
                assert_eq!(n, 0);
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the restarted proxy never reached the counter"
            );
        }
        alex.shutdown().await;
        kate.shutdown().await;
    }
}

mod group_leader {
    use actor_core::{
        io::{Captured, Output},
        puts, TaskError, TaskSupervisor, TaskSupervisorConfig,
    };

    use super::*;

    const SUP: &str = "Chat.TaskSupervisor";

    /// A node with a captured output, a task supervisor, and `IO.say(text)` that prints it.
    async fn io_node(name: &str, epmd: &PortMapperServerHandle) -> (Node, Captured) {
        let node = node(name, epmd).await;
        let (output, captured) = Output::capture();
        node.set_output(output);
        TaskSupervisor::start(&node, TaskSupervisorConfig::new(SUP))
            .await
            .unwrap();
        node.functions()
            .register("IO", "say", |(text,): (String,)| async move {
                puts!("{text}");
            });
        node.functions()
            .register("IO", "write", |(a, b): (String, String)| async move {
                actor_core::print!("{a}");
                actor_core::print!("{b}\n");
            });
        (node, captured)
    }

    async fn line_arrives(captured: &Captured, line: &str) {
        eventually(line, || captured.lines().iter().any(|l| l == line)).await;
    }

    #[tokio::test]
    async fn a_task_under_the_remote_supervisor_prints_on_the_remote_node() {
        let epmd = port_mapper().await;
        let (alex, alex_out) = io_node("alex@localhost", &epmd).await;
        let (kate, kate_out) = io_node("kate@localhost", &epmd).await;
        TaskSupervisor::async_on::<_, ()>(&alex, (SUP, "kate@localhost"), "IO", "say", ("hi",))
            .await
            .unwrap()
            .await
            .unwrap();
        // `puts!` ran inside the task, before its result was sent.
        assert_eq!(kate_out.lines(), ["hi"], "printed on kate, the remote node");
        // A fire-and-forget child too.
        TaskSupervisor::start_child_on(
            &alex,
            (SUP, "kate@localhost"),
            "IO",
            "say",
            ("child",),
            actor_core::Restart::Temporary,
        )
        .await
        .unwrap();
        line_arrives(&kate_out, "child").await;
        // Nothing came back to alex: a marker printed later on kate for alex (a plain spawn)
        // comes over the same ordered session, and arrives alone.
        alex.spawn_on(kate.name(), "IO", "say", ("marker",))
            .await
            .unwrap();
        line_arrives(&alex_out, "marker").await;
        assert_eq!(
            alex_out.lines(),
            ["marker"],
            "nothing printed on alex, the caller"
        );
        assert_eq!(kate_out.lines(), ["hi", "child"]);
        alex.shutdown().await;
        kate.shutdown().await;
    }

    #[tokio::test]
    async fn a_plain_remote_spawn_prints_on_the_callers_node() {
        let epmd = port_mapper().await;
        let (alex, alex_out) = io_node("alex@localhost", &epmd).await;
        let (kate, kate_out) = io_node("kate@localhost", &epmd).await;
        // Not connected yet: the spawn connects implicitly.
        alex.spawn_on(kate.name(), "IO", "say", ("from kate",))
            .await
            .unwrap();
        alex.spawn_on(kate.name(), "IO", "write", ("a", "b"))
            .await
            .unwrap();
        line_arrives(&alex_out, "from kate").await;
        line_arrives(&alex_out, "ab").await;
        assert_eq!(alex_out.lines(), ["from kate", "ab"]);
        assert!(kate_out.text().is_empty(), "nothing printed on kate");

        // Spawned from a task under alex's supervisor: still alex's output.
        let me = alex.clone();
        TaskSupervisor::whereis(&alex, SUP)
            .unwrap()
            .async_fn(move || async move {
                me.spawn_on(&n("kate@localhost"), "IO", "say", ("nested",))
                    .await
            })
            .await
            .unwrap()
            .await
            .unwrap()
            .unwrap();
        line_arrives(&alex_out, "nested").await;
        assert!(kate_out.text().is_empty(), "nothing printed on kate");

        // Typed errors: an unknown function, undecodable arguments, an unreachable node.
        let err = alex
            .spawn_on(kate.name(), "IO", "nope", ())
            .await
            .unwrap_err();
        assert!(matches!(err, TaskError::Undefined { .. }), "{err:?}");
        let err = alex
            .spawn_on(kate.name(), "IO", "say", 42u64)
            .await
            .unwrap_err();
        assert!(matches!(err, TaskError::BadArgs { .. }), "{err:?}");
        let err = tokio::time::timeout(
            DEADLINE,
            alex.spawn_on(&n("ghost@localhost"), "IO", "say", ("boo",)),
        )
        .await
        .expect("at once")
        .unwrap_err();
        assert_eq!(
            err,
            TaskError::NoConnection {
                node: n("ghost@localhost")
            }
        );
        alex.shutdown().await;
        kate.shutdown().await;
    }

    #[tokio::test]
    async fn a_local_task_prints_on_its_node() {
        let epmd = port_mapper().await;
        let (alex, alex_out) = io_node("alex@localhost", &epmd).await;
        let tasks = TaskSupervisor::whereis(&alex, SUP).unwrap();
        tasks
            .async_fn(|| async { puts!("a local future") })
            .await
            .unwrap()
            .await
            .unwrap();
        TaskSupervisor::async_on::<_, ()>(&alex, SUP, "IO", "say", ("by name",))
            .await
            .unwrap()
            .await
            .unwrap();
        assert_eq!(alex_out.lines(), ["a local future", "by name"]);
        // A plain spawn on this node itself inherits the caller's group leader.
        let (other, other_out) = Output::capture();
        actor_core::io::with_group_leader(
            other,
            alex.spawn_on(alex.name(), "IO", "say", ("inherited",)),
        )
        .await
        .unwrap();
        line_arrives(&other_out, "inherited").await;
        assert_eq!(alex_out.lines(), ["a local future", "by name"]);
        alex.shutdown().await;
    }

    /// The environment variable that makes [`outside_a_task_puts_goes_to_stdout`] the child.
    const PUTS_CHILD: &str = "NODUS_TEST_PUTS_TO_STDOUT_CHILD";
    const PUTS_LINE: &str = "group_leader test: outside any task, to stdout";

    /// Outside any task with a group leader, `puts!` writes to the process's stdout. Stdout
    /// is the process's, so the test runs itself again as a child (this one test, with
    /// `PUTS_CHILD` set) and reads the child's stdout: the line must be there, once. A
    /// `puts!` that dropped the line, or wrote it to stderr or a node's capture, fails.
    #[tokio::test]
    async fn outside_a_task_puts_goes_to_stdout() {
        if std::env::var_os(PUTS_CHILD).is_some() {
            assert!(actor_core::io::group_leader().is_none());
            puts!("{PUTS_LINE}");
            return;
        }
        let test = format!(
            "{}::outside_a_task_puts_goes_to_stdout",
            module_path!().split_once("::").unwrap().1
        );
        let child = tokio::process::Command::new(std::env::current_exe().unwrap())
            .args([test.as_str(), "--exact", "--nocapture", "--test-threads=1"])
            .env(PUTS_CHILD, "1")
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(DEADLINE, child)
            .await
            .expect("the child test finishes within the deadline")
            .expect("the child test runs");
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(out.status.success(), "{stdout}\n{stderr}");
        assert!(
            stdout.contains("1 passed"),
            "the child ran the test: {stdout}"
        );
        assert_eq!(
            stdout.matches(&format!("{PUTS_LINE}\n")).count(),
            1,
            "the line on the child's stdout, once:\n{stdout}"
        );
        assert!(!stderr.contains(PUTS_LINE), "not on stderr:\n{stderr}");
    }
}

// -------------------------------------------------------------------------------------------
// What crosses the wire.

mod wire_capture {
    use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};

    use actor_core::{TaskSupervisor, TaskSupervisorConfig};
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::{TcpListener, TcpStream},
    };

    use super::*;
    use crate::port_mapper::PortMapperClient;

    /// Every byte that went one way through the relay.
    type Captured = Arc<Mutex<Vec<u8>>>;

    /// Copies `from` to `to`, recording every byte.
    async fn pump(
        mut from: tokio::net::tcp::OwnedReadHalf,
        mut to: tokio::net::tcp::OwnedWriteHalf,
        log: Captured,
    ) {
        let mut buf = vec![0; 64 << 10];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    log.lock().unwrap().extend_from_slice(&buf[..n]);
                    if to.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown().await;
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    /// README: "the cookie never on the wire". Every byte a and b exchange goes through a
    /// relay on loopback that records both directions: a's port mapper lists b at the relay,
    /// b's port mapper does not know a (so b cannot dial a around it). A handshake, a ping, and
    /// a remote task with its reply cross; the capture holds both names and both payloads
    /// (it sees the plaintext), and not the cookie, raw or in hex.
    #[tokio::test]
    async fn the_cookie_never_appears_in_the_bytes_two_nodes_exchange() {
        const COOKIE: &str = "c00kie-that-must-never-travel-7f3a9c1e";
        let (epmd_a, epmd_b) = (port_mapper().await, port_mapper().await);
        let b = Node::start(config("b@localhost", &epmd_b, COOKIE))
            .await
            .unwrap();
        TaskSupervisor::start(&b, TaskSupervisorConfig::new("Echo.TaskSupervisor"))
            .await
            .unwrap();
        b.functions()
            .register("Echo", "echo", |(text,): (String,)| async move {
                format!("reply-from-b:{text}")
            });
        let a = Node::start(config("a@localhost", &epmd_a, COOKIE))
            .await
            .unwrap();

        let relay = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let relay_port = relay.local_addr().unwrap().port();
        let _listed = PortMapperClient::new(epmd_a.local_addr())
            .register(&n("b@localhost"), relay_port, false)
            .await
            .unwrap();
        let (a_to_b, b_to_a): (Captured, Captured) = Default::default();
        let connections = Arc::new(AtomicUsize::new(0));
        let target = b.listen_addr();
        let relay_task = {
            let (a_to_b, b_to_a, connections) =
                (a_to_b.clone(), b_to_a.clone(), connections.clone());
            tokio::spawn(async move {
                while let Ok((inbound, _)) = relay.accept().await {
                    connections.fetch_add(1, AtomicOrdering::SeqCst);
                    let outbound = TcpStream::connect(target).await.unwrap();
                    let (in_read, in_write) = inbound.into_split();
                    let (out_read, out_write) = outbound.into_split();
                    tokio::spawn(pump(in_read, out_write, a_to_b.clone()));
                    tokio::spawn(pump(out_read, in_write, b_to_a.clone()));
                }
            })
        };

        assert_eq!(a.ping("b@localhost").await, Ping::Pong);
        let reply: String = TaskSupervisor::async_on(
            &a,
            ("Echo.TaskSupervisor", "b@localhost"),
            "Echo",
            "echo",
            ("payload-from-a".to_string(),),
        )
        .await
        .unwrap()
        .await
        .unwrap();
        assert_eq!(reply, "reply-from-b:payload-from-a");
        assert_eq!(a.list(), [n("b@localhost")]);
        assert_eq!(
            connections.load(AtomicOrdering::SeqCst),
            1,
            "one connection, through the relay"
        );

        let (up, down) = (
            a_to_b.lock().unwrap().clone(),
            b_to_a.lock().unwrap().clone(),
        );
        // The capture saw the handshake and the messages in the clear.
        assert!(contains(&up, b"a@localhost"), "a's name in the handshake");
        assert!(contains(&down, b"b@localhost"), "b's name in the handshake");
        assert!(contains(&up, b"payload-from-a"), "the task's argument");
        assert!(contains(&down, b"reply-from-b:payload-from-a"), "its reply");
        // And never the cookie, nor any 12 bytes of it (raw, or as hex text): a leak of part
        // of it fails too. 12 given bytes of this text occur by chance with odds ~2^-96.
        let hex: String = COOKIE.bytes().map(|b| format!("{b:02x}")).collect();
        let upper = hex.to_uppercase();
        for (direction, bytes) in [("a to b", &up), ("b to a", &down)] {
            for form in [COOKIE.as_bytes(), hex.as_bytes(), upper.as_bytes()] {
                for part in form.windows(12) {
                    assert!(
                        !contains(bytes, part),
                        "part of the cookie went {direction}: {:?}",
                        String::from_utf8_lossy(part)
                    );
                }
            }
        }
        a.shutdown().await;
        b.shutdown().await;
        relay_task.abort();
    }
}

// Elixir's Task.Supervised waits for its owner's hand-off and exits when the owner is gone:
// a linked task whose caller goes away before the start reply arrives is stopped.
#[cfg(feature = "testing")]
mod caller_gone {
    use actor_core::{TaskError, TaskSupervisor, TaskSupervisorConfig};

    use super::*;

    const SUP: &str = "Work.TaskSupervisor";

    struct DropFlag(Option<oneshot::Sender<()>>);
    impl Drop for DropFlag {
        fn drop(&mut self) {
            if let Some(tx) = self.0.take() {
                let _ = tx.send(());
            }
        }
    }

    // Kate is frozen while the caller goes away, so the start reply cannot have arrived.
    #[tokio::test]
    async fn a_linked_remote_task_whose_caller_left_before_the_start_reply_is_stopped() {
        let epmd = port_mapper().await;
        let alex = node("alex@localhost", &epmd).await;
        let faults = crate::transport::Faults::new();
        let kate = Node::start(config("kate@localhost", &epmd, "mycookie").faults(faults.clone()))
            .await
            .unwrap();
        let sup = TaskSupervisor::start(&kate, TaskSupervisorConfig::new(SUP))
            .await
            .unwrap();
        let (dropped_tx, dropped) = oneshot::channel();
        let dropped_tx = Arc::new(Mutex::new(Some(dropped_tx)));
        kate.functions().register("Job", "hang", move |(): ()| {
            let flag = DropFlag(dropped_tx.lock().unwrap().take());
            async move {
                let _flag = flag;
                futures::future::pending::<()>().await;
            }
        });
        assert_eq!(alex.ping("kate@localhost").await, Ping::Pong);

        // The caller goes away while its request is outstanding and kate answers nobody.
        faults.freeze();
        let call = {
            let alex = alex.clone();
            tokio::spawn(async move {
                TaskSupervisor::async_on::<_, ()>(&alex, (SUP, "kate@localhost"), "Job", "hang", ())
                    .await
            })
        };
        eventually("the start request to be outstanding", || {
            alex.inner.lock().outstanding("task") == 1
        })
        .await;
        call.abort();
        assert!(call.await.unwrap_err().is_cancelled());
        assert_eq!(
            alex.inner.lock().outstanding("task"),
            0,
            "forgotten by the caller"
        );
        faults.thaw();

        // Without the hand-off the task would run forever on kate, holding its slot.
        tokio::time::timeout(DEADLINE, dropped)
            .await
            .expect("the orphaned task to be stopped")
            .unwrap();
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while sup.count_children().await.unwrap() != 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "kate still counts the task"
            );
            tokio::time::sleep(Duration::from_millis(5)).await; // polling interval
        }
        alex.shutdown().await;
        kate.shutdown().await;
    }

    // The start of a remote task is bounded by the caller's timeout (the BEAM blocks here
    // until the tick timeout), and the error says the task may be running.
    #[tokio::test]
    async fn a_remote_start_unanswered_within_the_callers_timeout_is_unconfirmed() {
        let epmd = port_mapper().await;
        let alex = node("alex@localhost", &epmd).await;
        let faults = crate::transport::Faults::new();
        let kate = Node::start(config("kate@localhost", &epmd, "mycookie").faults(faults.clone()))
            .await
            .unwrap();
        TaskSupervisor::start(&kate, TaskSupervisorConfig::new(SUP))
            .await
            .unwrap();
        kate.functions()
            .register("Job", "echo", |(x,): (u32,)| async move { x });
        assert_eq!(alex.ping("kate@localhost").await, Ping::Pong);
        faults.freeze(); // kate answers nobody, as a SIGSTOPped node; ticks are 60 s

        let timeout = Duration::from_millis(300);
        let t0 = tokio::time::Instant::now();
        let started = tokio::time::timeout(
            DEADLINE,
            TaskSupervisor::async_on_timeout::<_, u32>(
                &alex,
                (SUP, "kate@localhost"),
                "Job",
                "echo",
                (1u32,),
                timeout,
            ),
        )
        .await
        .expect("the start to be bounded by the caller's timeout, not the tick time");
        let took = t0.elapsed();
        match started {
            Err(TaskError::Unconfirmed { node, .. }) => assert_eq!(node, n("kate@localhost")),
            other => panic!("expected Unconfirmed, got {other:?}"),
        }
        assert!(took >= timeout, "{took:?}");
        assert_eq!(alex.inner.lock().outstanding("task"), 0);
        faults.thaw();
        // Once kate answers again, the same call works.
        let task = TaskSupervisor::async_on_timeout::<_, u32>(
            &alex,
            (SUP, "kate@localhost"),
            "Job",
            "echo",
            (2u32,),
            DEADLINE,
        )
        .await
        .unwrap();
        assert_eq!(task.await, Ok(2));
        alex.shutdown().await;
        kate.shutdown().await;
    }
}

fn memory_config(
    name: &str,
    network: &crate::transport::MemoryNetwork,
    cookie: &str,
) -> NodeConfig {
    NodeConfig::sname(name)
        .cookie(Cookie::new(cookie).unwrap())
        .memory(network.clone())
        .tick_time(Duration::from_secs(1))
        .handshake_timeout(Duration::from_secs(3))
}

#[tokio::test]
async fn memory_nodes_ping_mesh_and_see_a_halted_node_down() {
    let network = crate::transport::MemoryNetwork::new();
    let start = |name: &str| Node::start(memory_config(name, &network, "mycookie"));
    let a = start("a@localhost").await.unwrap();
    let b = start("b@localhost").await.unwrap();
    let c = start("c@localhost").await.unwrap();
    let taken = start("a@localhost").await.unwrap_err();
    assert!(matches!(taken, NodeError::NameInUse { .. }), "{taken}");
    assert_eq!(a.ping("b@localhost").await, Ping::Pong);
    assert_eq!(b.ping("c@localhost").await, Ping::Pong);
    // The mesh: a hears of c from b and connects to it.
    eventually("a to list b and c", || {
        a.list() == [n("b@localhost"), n("c@localhost")]
    })
    .await;
    let err = a.connect(&n("piyo@localhost")).await.unwrap_err();
    assert_eq!(
        err,
        ConnectError::NotRegistered {
            node: n("piyo@localhost")
        }
    );
    assert_eq!(a.ping("piyo@localhost").await, Ping::Pang);
    let monitor = a.monitor_node(&n("c@localhost")).await;
    c.halt().await;
    let down = tokio::time::timeout(DEADLINE, monitor).await.unwrap();
    assert_eq!(down.reason, NodeDownReason::ConnectionClosed);
    eventually("c to leave the network", || {
        network.nodes() == [n("a@localhost"), n("b@localhost")]
    })
    .await;
    assert_eq!(a.ping("c@localhost").await, Ping::Pang);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn memory_node_with_a_wrong_cookie_is_refused() {
    let network = crate::transport::MemoryNetwork::new();
    let a = Node::start(memory_config("a@localhost", &network, "one"))
        .await
        .unwrap();
    let b = Node::start(memory_config("b@localhost", &network, "two"))
        .await
        .unwrap();
    assert_eq!(a.ping("b@localhost").await, Ping::Pang);
    let err = a.connect(&n("b@localhost")).await.unwrap_err();
    assert!(matches!(err, ConnectError::Handshake { .. }), "{err}");
    assert!(a.list().is_empty() && b.list().is_empty());
    a.shutdown().await;
    b.shutdown().await;
}

#[cfg(feature = "testing")]
#[tokio::test]
async fn memory_dials_pass_the_faults_gate() {
    let network = crate::transport::MemoryNetwork::new();
    let faults = crate::transport::Faults::new();
    let a = Node::start(memory_config("a@localhost", &network, "c").faults(faults.clone()))
        .await
        .unwrap();
    let b = Node::start(memory_config("b@localhost", &network, "c"))
        .await
        .unwrap();
    faults.block(n("b@localhost"));
    let err = a.connect(&n("b@localhost")).await.unwrap_err();
    assert!(matches!(err, ConnectError::Memory { .. }), "{err}");
    faults.unblock(&n("b@localhost"));
    assert_eq!(a.ping("b@localhost").await, Ping::Pong);
    a.shutdown().await;
    b.shutdown().await;
}

/// Issue 13 item 7 (hygiene) and item 3's frame limit between nodes of different limits.
mod hygiene {
    use actor_core::{TaskError, TaskSupervisor, TaskSupervisorConfig};

    use super::*;

    fn warnings(logs: &Captured) -> Vec<String> {
        let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .filter(|l| l.contains(" WARN "))
            .map(str::to_string)
            .collect()
    }

    /// Issue 13: every benign simultaneous-connect race ("nothing to do") was a WARN.
    #[tokio::test]
    async fn simultaneous_connects_are_not_warned_about() {
        let (logs, _guard) = capture();
        let epmd = port_mapper().await;
        let mut raced = 0;
        for round in 0..8 {
            let a = node(&format!("sa{round}@localhost"), &epmd).await;
            let b = node(&format!("sb{round}@localhost"), &epmd).await;
            let (x, y) = tokio::join!(a.ping(b.name().as_str()), b.ping(a.name().as_str()));
            assert_eq!((x, y), (Ping::Pong, Ping::Pong), "round {round}");
            a.shutdown().await;
            b.shutdown().await;
            let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
            raced = text.matches("at the same time").count();
        }
        assert!(
            raced > 0,
            "no simultaneous connect happened: the test proves nothing"
        );
        let warned = warnings(&logs);
        assert!(
            warned.is_empty(),
            "{raced} races, and warnings:\n{}",
            warned.join("\n")
        );
    }

    /// Issue 13: a peer retrying with a wrong cookie made one WARN per attempt. The first
    /// refusal is still warned about (naming the peer), the next ones of the interval not.
    #[tokio::test]
    async fn a_peer_retrying_with_a_wrong_cookie_is_warned_about_once() {
        let (logs, _guard) = capture();
        let epmd = port_mapper().await;
        let good = node("good@localhost", &epmd).await;
        let evil = Node::start(config("evil@localhost", &epmd, "not-the-cookie"))
            .await
            .unwrap();
        for _ in 0..6 {
            assert_eq!(evil.ping("good@localhost").await, Ping::Pang);
        }
        let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
        assert!(
            text.matches("invalid challenge reply").count() >= 6,
            "each refusal is still logged (at debug after the first):\n{text}"
        );
        let warned: Vec<String> = warnings(&logs)
            .into_iter()
            .filter(|l| l.contains("rejected"))
            .collect();
        assert_eq!(warned.len(), 1, "{}", warned.join("\n"));
        assert!(
            warned[0].contains("peer=evil@localhost")
                && warned[0].contains("from=127.0.0.1:")
                && warned[0].contains("invalid challenge reply"),
            "{}",
            warned[0]
        );
        good.shutdown().await;
        evil.shutdown().await;
    }

    #[test]
    fn the_mesh_dial_queue_gives_dials_in_order_as_they_come_due_and_ends_when_empty() {
        use super::driver::{MeshNext, MeshQueue};
        use tokio::time::Instant;
        let name = |n: &str| NodeName::parse(&format!("{n}@localhost")).unwrap();
        let (t0, defer) = (Instant::now(), Duration::from_millis(500));
        let mut q = MeshQueue::default();
        // The first dial queued starts the task; the others find it running.
        assert!(q.push(name("later1"), t0, defer));
        assert!(!q.push(name("now1"), t0, Duration::ZERO));
        assert!(!q.push(name("later2"), t0 + Duration::from_millis(10), defer));
        assert!(!q.push(name("now2"), t0, Duration::ZERO));
        assert_eq!(q.len(), 4);
        // Those that need not wait first, in order; then nothing before the first deferred.
        assert_eq!(q.next(t0), MeshNext::Dial(name("now1")));
        assert_eq!(q.next(t0), MeshNext::Dial(name("now2")));
        assert_eq!(q.next(t0), MeshNext::Wait(t0 + defer));
        assert_eq!(q.next(t0 + defer), MeshNext::Dial(name("later1")));
        let second = t0 + Duration::from_millis(510);
        assert_eq!(q.next(t0 + defer), MeshNext::Wait(second));
        // A dial queued meanwhile that need not wait goes before the deferred one.
        assert!(!q.push(name("now3"), t0 + defer, Duration::ZERO));
        assert_eq!(q.next(t0 + defer), MeshNext::Dial(name("now3")));
        assert_eq!(q.next(second), MeshNext::Dial(name("later2")));
        // Empty: the task ends, and the next dial queued starts a new one.
        assert_eq!(q.next(second), MeshNext::Done);
        assert_eq!(q.len(), 0);
        assert!(q.push(name("again"), second, defer));
        assert!(!q.push(name("again2"), second, defer));
    }

    #[test]
    fn refusals_are_logged_once_per_address_per_interval_with_a_count() {
        use super::driver::{RefusalLog, REFUSAL_LOG_EVERY};
        let mut log = RefusalLog::default();
        let t0 = std::time::Instant::now();
        assert_eq!(log.refused("10.0.0.1", t0), Some(1), "the first at once");
        assert_eq!(log.refused("10.0.0.2", t0), Some(1), "per address");
        for k in 1..100u32 {
            assert_eq!(
                log.refused("10.0.0.1", t0 + REFUSAL_LOG_EVERY * k / 100),
                None
            );
        }
        assert_eq!(
            log.refused("10.0.0.1", t0 + REFUSAL_LOG_EVERY),
            Some(100),
            "the next line counts the quiet ones"
        );
        assert_eq!(log.refused("10.0.0.1", t0 + REFUSAL_LOG_EVERY), None);
        // Bounded: a flood of addresses keeps at most 1024.
        for k in 0..5000u32 {
            log.refused(&format!("10.1.{}.{}", k / 256, k % 256), t0);
        }
        assert!(log.sources() <= 1024, "{}", log.sources());
    }

    /// Issue 13: the acceptor's warning about a peer of another protocol version said
    /// `peer=None`. It names the peer.
    #[tokio::test]
    async fn a_refused_version_is_warned_about_with_the_peers_name() {
        let (logs, _guard) = capture();
        let epmd = port_mapper().await;
        let good = node("good@localhost", &epmd).await;
        let mut old = crate::proto::HandshakeConfig::new(n("old@localhost"), "mycookie");
        (old.min_version, old.max_version) = (4, 4);
        let stream = tokio::net::TcpStream::connect(good.listen_addr())
            .await
            .unwrap();
        let direction = crate::transport::Direction::Outgoing {
            peer: good.name().clone(),
        };
        let dialled = tokio::time::timeout(
            DEADLINE,
            crate::transport::handshake_over(stream, direction, &old, |_| async {
                crate::proto::Existing::None
            }),
        )
        .await
        .unwrap();
        assert!(
            matches!(dialled, Err(crate::proto::HandshakeError::Version { .. })),
            "{dialled:?}"
        );
        eventually("the acceptor's warning", || {
            warnings(&logs)
                .iter()
                .any(|l| l.contains("speaks protocol v4"))
        })
        .await;
        let warned = warnings(&logs);
        assert!(
            warned
                .iter()
                .any(|l| l.contains("peer=old@localhost") && l.contains("speaks protocol v4")),
            "{}",
            warned.join("\n")
        );
        assert!(!warned.iter().any(|l| l.contains("None")), "{warned:?}");
        good.shutdown().await;
    }

    /// Issue 13 item 3: with different `max_frame_len` on two nodes, a message over the
    /// receiver's limit but under the sender's went out, and the receiver closed the
    /// session. Each node now tells its limit in the handshake: the sender refuses it with
    /// `TooLarge` naming the peer and the peer's limit, and the session stays up.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_message_over_the_peers_smaller_limit_is_too_large_at_the_sender() {
        const SUP: &str = "Big.TaskSupervisor";
        const A_LIMIT: usize = 80 << 20;
        const B_LIMIT: usize = 8 << 20;
        let epmd = port_mapper().await;
        // A tick time that a 20 MiB encoding in a debug build cannot outlast.
        let start = |name: &str, limit: usize| {
            let config = config(name, &epmd, "c").max_frame_len(limit);
            Node::start(config.tick_time(Duration::from_secs(30)))
        };
        let a = start("biga@localhost", A_LIMIT).await.unwrap();
        let b = start("bigb@localhost", B_LIMIT).await.unwrap();
        for node in [&a, &b] {
            TaskSupervisor::start(node, TaskSupervisorConfig::new(SUP))
                .await
                .unwrap();
        }
        b.functions()
            .register("Big", "len", |data: String| async move { data.len() });
        a.functions()
            .register("Big", "make", |n: usize| async move { "z".repeat(n) });
        assert_eq!(a.ping("bigb@localhost").await, Ping::Pong);
        let mut events = a.events();
        let big = "x".repeat(20 << 20); // a string: encoded in one copy, not byte by byte
        let dest = (SUP, b.name().clone());
        match TaskSupervisor::async_on::<_, usize>(&a, dest.clone(), "Big", "len", big).await {
            Err(TaskError::TooLarge { node, size, limit }) => {
                assert_eq!((&node, limit), (b.name(), B_LIMIT));
                assert!(size > 20 << 20, "{size}");
            }
            other => panic!("{:?}", other.map(|_| ())),
        }
        let small = "y".repeat(1000);
        let task = TaskSupervisor::async_on::<_, usize>(&a, dest, "Big", "len", small)
            .await
            .expect("a small task starts");
        assert_eq!(
            tokio::time::timeout(DEADLINE, task).await.unwrap(),
            Ok(1000)
        );
        // The other way: a's result over b's limit comes back as an error naming the limit
        // (a checked its own limit only, and the session dropped the result unsent).
        let dest = (SUP, a.name().clone());
        let task = TaskSupervisor::async_on::<_, String>(&b, dest, "Big", "make", 20usize << 20)
            .await
            .expect("the task starts");
        match tokio::time::timeout(DEADLINE, task)
            .await
            .expect("an answer in time")
        {
            Err(TaskError::BadReturn { reason }) => {
                assert!(reason.contains(&B_LIMIT.to_string()), "{reason}");
            }
            other => panic!("{:?}", other.map(|s| s.len())),
        }
        assert_eq!(a.list(), [b.name().clone()], "the session stayed up");
        while let Ok(event) = events.try_recv() {
            assert!(
                !matches!(event, NodeEvent::NodeDown { .. }),
                "the session went down: {event:?}"
            );
        }
        a.shutdown().await;
        b.shutdown().await;
    }

    /// Issue 13: a peer declared down while this node did not notice (paused, its close
    /// not read yet) kept its stale session, and the peer's reconnect was refused ("a
    /// session already exists") until it was found dead: ~3.4 s. Here b blocks a's frames
    /// (so it sees neither a's ticks nor a's close, as a stopped process), a's tick timeout
    /// takes a's side down, and a connects again at once: b drops its stale session for the
    /// new one (the BEAM's `alive` / `true`).
    #[cfg(feature = "testing")]
    #[tokio::test]
    async fn a_peer_that_missed_its_node_down_is_reconnected_to_at_once() {
        let epmd = port_mapper().await;
        let a = node("ra@localhost", &epmd).await;
        let faults = crate::transport::Faults::new();
        let b = Node::start(
            config("rb@localhost", &epmd, "mycookie")
                .tick_time(Duration::from_secs(60))
                .faults(faults.clone()),
        )
        .await
        .unwrap();
        assert_eq!(a.ping("rb@localhost").await, Ping::Pong);
        let mut a_events = a.events();
        let mut b_events = b.events();
        faults.block(a.name().clone());
        let down = tokio::time::timeout(DEADLINE, a_events.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(
            matches!(
                &down,
                NodeEvent::NodeDown {
                    reason: NodeDownReason::TickTimeout,
                    ..
                }
            ),
            "{down:?}"
        );
        assert_eq!(
            b.list(),
            [a.name().clone()],
            "b missed it: its session is stale"
        );
        // Well within the 3 s setup time a refused dial waits out, and b's 60 s tick time.
        let started = tokio::time::Instant::now();
        let connected = tokio::time::timeout(Duration::from_secs(2), a.connect(b.name())).await;
        assert!(
            matches!(connected, Ok(Ok(()))),
            "{connected:?} after {:?}",
            started.elapsed()
        );
        faults.unblock(a.name());
        assert_eq!(a.ping("rb@localhost").await, Ping::Pong);
        // b: its stale session went down, then the new one came up.
        let mut seen = Vec::new();
        while seen.len() < 2 {
            let event = tokio::time::timeout(DEADLINE, b_events.recv())
                .await
                .unwrap()
                .unwrap();
            seen.push(event);
        }
        assert!(
            matches!(
                &seen[..],
                [NodeEvent::NodeDown { .. }, NodeEvent::NodeUp { .. }]
            ),
            "{seen:?}"
        );
        assert_eq!(b.list(), [a.name().clone()]);
        a.shutdown().await;
        b.shutdown().await;
    }
}
