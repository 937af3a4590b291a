//! Exit reasons, links and node monitors across nodes, on a `LocalCluster` of in-process
//! nodes: remote monitors see the real exit reason, links carry exit signals both ways (and
//! break with `noconnection` when a node goes down), and an actor's context follows nodes.

use std::time::Duration;

use nodus::{
    core::{Context, ExitReason, Info, RemoteProxy},
    ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort},
    remote::Node,
    testing::LocalCluster,
    ChildSpec, Destination, NodeName, Pid, Restart, Supervisor, SupervisorSpec, System,
};
use tokio::sync::mpsc;

const DEADLINE: Duration = Duration::from_secs(10);

/// What a probe does; it reports every [`Info`] it gets on its channel.
enum Msg {
    Info(Info),
    Link(Pid),
    Unlink(Pid),
    Trap(bool),
    MonitorNode(NodeName),
    MonitorNodes,
    Panic(String),
    Stop(ExitReason),
    /// Answered once every message before it was handled.
    Sync(RpcReplyPort<()>),
}

impl From<Info> for Msg {
    fn from(info: Info) -> Self {
        Msg::Info(info)
    }
}

/// A plain ractor actor with a handler [`Context`].
#[derive(Clone)]
struct Probe;

impl Actor for Probe {
    type Msg = Msg;
    type State = (Context<Msg>, mpsc::UnboundedSender<Info>);
    type Arguments = (System, mpsc::UnboundedSender<Info>);

    async fn pre_start(
        &self,
        myself: ActorRef<Msg>,
        (system, out): Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok((Context::new(&system, myself), out))
    }

    async fn handle(
        &self,
        _: ActorRef<Msg>,
        msg: Msg,
        (ctx, out): &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            Msg::Info(info) => {
                let _ = out.send(info);
            }
            Msg::Link(pid) => ctx.link(&pid),
            Msg::Unlink(pid) => ctx.unlink(&pid),
            Msg::Trap(on) => {
                ctx.trap_exit(on);
            }
            Msg::MonitorNode(node) => {
                ctx.monitor_node(node);
            }
            Msg::MonitorNodes => {
                ctx.monitor_nodes();
            }
            Msg::Panic(why) => panic!("{why}"),
            Msg::Stop(reason) => ctx.stop(reason),
            Msg::Sync(reply) => {
                let _ = reply.send(());
            }
        }
        Ok(())
    }
}

/// A probe on `node`: its ref, its pid and the infos it gets.
async fn probe(node: &Node) -> (ActorRef<Msg>, Pid, mpsc::UnboundedReceiver<Info>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let system: System = (**node).clone();
    let (actor, _) = node.spawn(None, Probe, (system, tx)).await.unwrap();
    let pid = node.pid_of(&actor.get_cell());
    (actor, pid, rx)
}

/// Waits until `actor` has handled every message sent to it before.
async fn sync(actor: &ActorRef<Msg>) {
    tokio::time::timeout(DEADLINE, actor.call(Msg::Sync, None))
        .await
        .expect("the probe answers within the deadline")
        .expect("the probe is alive")
        .expect("the probe answered");
}

/// Waits until `to` has handled every frame `from` sent it before (a round trip on the
/// session, whose reader hands link signals over in order).
async fn flush(from: &Node, to: &NodeName) {
    let pong = tokio::time::timeout(DEADLINE, from.ping(to.as_str())).await;
    assert_eq!(pong.ok(), Some(nodus::remote::Ping::Pong), "{to} answers");
}

/// Waits until `node`'s process table has handled every exit before this call: it handles
/// exits in order, and this one's monitor fires after the earlier exits' links were signalled.
/// Then flushes the session to `peer`, which carries those signals.
async fn flush_exits(node: &Node, peer: &NodeName) {
    let (last, _, _) = probe(node).await;
    let down = node.monitor(node.pid_of(&last.get_cell()));
    last.stop(None);
    tokio::time::timeout(DEADLINE, down)
        .await
        .expect("the last probe stops");
    flush(node, peer).await;
}

/// The next info of a probe, within the deadline.
async fn next(infos: &mut mpsc::UnboundedReceiver<Info>) -> Info {
    tokio::time::timeout(DEADLINE, infos.recv())
        .await
        .expect("an info within the deadline")
        .expect("the probe is alive")
}

/// How `pid` ends, seen by a monitor on its own node.
async fn exit_of(node: &Node, pid: &Pid) -> ExitReason {
    let down = node.monitor(pid.clone());
    tokio::time::timeout(DEADLINE, down)
        .await
        .expect("it stops within the deadline")
        .reason
}

async fn cluster(n: usize) -> LocalCluster {
    let cluster = LocalCluster::start(n).await.unwrap();
    cluster.await_mesh(DEADLINE).await.unwrap();
    cluster
}

#[tokio::test]
async fn a_remote_monitor_sees_the_real_exit_reason() {
    let mut cluster = cluster(2).await;
    let (a, b) = (cluster.node(0), cluster.node(1));
    let b_name = cluster.name(1).clone();

    for what in ["panic", "normal", "reason", "context stop"] {
        let (target, pid, _infos) = probe(b).await;
        let monitor = a.monitor(pid.clone());
        flush(a, &b_name).await; // the watch is set on b
        match what {
            "panic" => {
                let _ = target.cast(Msg::Panic("the probe blew up".into()));
            }
            "normal" => target.stop(None),
            "reason" => target.stop(Some("going away".into())),
            _ => {
                let _ = target.cast(Msg::Stop(ExitReason::Stopped("done here".into())));
            }
        }
        let down = tokio::time::timeout(DEADLINE, monitor)
            .await
            .unwrap_or_else(|_| panic!("{what}: Down within the deadline"));
        assert_eq!(down.dest, Destination::Pid(pid));
        match what {
            "panic" => assert!(
                matches!(&down.reason, ExitReason::Failed(why) if why.contains("the probe blew up")),
                "{what}: {:?}",
                down.reason
            ),
            "normal" => assert_eq!(down.reason, ExitReason::Normal, "{what}"),
            "reason" => assert_eq!(
                down.reason,
                ExitReason::Stopped("going away".into()),
                "{what}"
            ),
            _ => assert_eq!(
                down.reason,
                ExitReason::Stopped("done here".into()),
                "{what}"
            ),
        }
    }

    // A pid that is not alive: `noproc`.
    let (gone, pid, _) = probe(b).await;
    gone.stop(None);
    exit_of(b, &pid).await;
    assert_eq!(a.monitor(pid).await.reason, ExitReason::NoProc);

    // Its node killed: `noconnection`.
    let (_alive, pid, _) = probe(b).await;
    let monitor = a.monitor(pid);
    flush(a, &b_name).await;
    cluster.kill(1).await.unwrap();
    let down = tokio::time::timeout(DEADLINE, monitor)
        .await
        .expect("Down within the deadline");
    assert_eq!(down.reason, ExitReason::NoConnection);
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_transient_proxy_stays_down_after_a_normal_exit_and_restarts_after_a_crash() {
    let cluster = cluster(2).await;
    let (a, b) = (cluster.node(0), cluster.node(1));
    let b_name = cluster.name(1).clone();
    // On b: "calm" stops normally, "crashy" crashes and its (permanent) supervisor restarts it.
    let (tx, _infos) = mpsc::unbounded_channel();
    let system_b: System = (**b).clone();
    let spec_b = SupervisorSpec::default()
        .child(ChildSpec::new("calm", Probe, (system_b.clone(), tx.clone())).name("calm"))
        .child(
            ChildSpec::new("crashy", Probe, (system_b, tx))
                .name("crashy")
                .restart(Restart::Permanent),
        );
    Supervisor::start(b, Some("services"), spec_b)
        .await
        .unwrap();

    let remote = |name: &str| Destination::Remote {
        name: name.into(),
        node: b_name.clone(),
    };
    let spec_a = SupervisorSpec::default()
        .intensity(20, Duration::from_secs(5))
        .child(RemoteProxy::<Msg>::child_spec("calm", remote("calm")).restart(Restart::Transient))
        .child(
            RemoteProxy::<Msg>::child_spec("crashy", remote("crashy")).restart(Restart::Transient),
        );
    let proxies = Supervisor::start(a, Some("proxies"), spec_a).await.unwrap();
    flush(a, &b_name).await; // both watches are set on b
    let proxy_of = |children: &[nodus::core::ChildInfo], id: &str| {
        children
            .iter()
            .find(|c| c.id == id)
            .and_then(|c| c.actor.clone())
    };
    let children = Supervisor::which_children(&proxies).await.unwrap();
    let first_crashy = proxy_of(&children, "crashy").expect("running").get_id();
    assert!(proxy_of(&children, "calm").is_some());

    // Normal exit of its target: a transient proxy stays stopped.
    let calm: ActorRef<Msg> = b.lookup(&Destination::Name("calm".into())).unwrap();
    let calm_pid = b.pid_of(&calm.get_cell());
    calm.stop(None);
    assert_eq!(exit_of(b, &calm_pid).await, ExitReason::Normal);
    // A crash of its target: the proxy stops with the panic message and is restarted (and
    // watches the restarted target).
    let crashy: ActorRef<Msg> = b.lookup(&Destination::Name("crashy".into())).unwrap();
    let _ = crashy.cast(Msg::Panic("crashy crashed".into()));

    let until = tokio::time::Instant::now() + DEADLINE;
    loop {
        let children = Supervisor::which_children(&proxies).await.unwrap();
        let calm_down = proxy_of(&children, "calm").is_none();
        let crashy_restarted =
            proxy_of(&children, "crashy").is_some_and(|c| c.get_id() != first_crashy);
        if calm_down && crashy_restarted {
            break;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "calm down: {calm_down}, crashy restarted: {crashy_restarted}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await; // poll interval
    }
    // The calm proxy is listed, not running, and stays so.
    let children = Supervisor::which_children(&proxies).await.unwrap();
    assert!(children.iter().any(|c| c.id == "calm" && !c.is_running()));
    cluster.shutdown().await;
}

#[tokio::test]
async fn an_abnormal_exit_crosses_a_link_and_a_normal_one_does_not() {
    let cluster = cluster(2).await;
    let (a, b) = (cluster.node(0), cluster.node(1));
    let (a_name, b_name) = (cluster.name(0).clone(), cluster.name(1).clone());

    // Not trapping: the linked actor stops with the same reason.
    let (plain, plain_pid, _) = probe(a).await;
    let (target, target_pid, _) = probe(b).await;
    let _ = plain.cast(Msg::Link(target_pid.clone()));
    sync(&plain).await;
    flush(a, &b_name).await; // b has the link
    let plain_exit = a.monitor(plain_pid.clone());
    let _ = target.cast(Msg::Panic("linked crash".into()));
    let reason = tokio::time::timeout(DEADLINE, plain_exit)
        .await
        .expect("the linked actor stops")
        .reason;
    assert!(
        matches!(&reason, ExitReason::Failed(why) if why.contains("linked crash")),
        "{reason:?}"
    );

    // Trapping: the exit arrives as an info, from the remote pid.
    let (trapper, _, mut infos) = probe(a).await;
    let (target, target_pid, _) = probe(b).await;
    let _ = trapper.cast(Msg::Trap(true));
    let _ = trapper.cast(Msg::Link(target_pid.clone()));
    sync(&trapper).await;
    flush(a, &b_name).await;
    let _ = target.cast(Msg::Panic("trapped crash".into()));
    match next(&mut infos).await {
        Info::Exit { from, reason } => {
            assert_eq!(from, target_pid);
            assert!(
                matches!(&reason, ExitReason::Failed(why) if why.contains("trapped crash")),
                "{reason:?}"
            );
        }
        other => panic!("not an exit: {other:?}"),
    }

    // The other way: an actor on b linked to one on a stops when it does.
    let (here, here_pid, _) = probe(a).await;
    let (there, there_pid, _) = probe(b).await;
    let _ = there.cast(Msg::Link(here_pid));
    sync(&there).await;
    flush(b, &a_name).await;
    let _ = here.cast(Msg::Stop(ExitReason::Stopped("bye".into())));
    assert_eq!(
        exit_of(b, &there_pid).await,
        ExitReason::Stopped("bye".into())
    );

    // A normal exit leaves a linked actor that does not trap alone.
    let (calm, calm_pid, _) = probe(a).await;
    let (target, target_pid, _) = probe(b).await;
    let _ = calm.cast(Msg::Link(target_pid.clone()));
    sync(&calm).await;
    flush(a, &b_name).await;
    target.stop(None);
    assert_eq!(exit_of(b, &target_pid).await, ExitReason::Normal);
    flush_exits(b, &a_name).await; // its exit signal reached a
    sync(&calm).await;
    assert!(
        a.resolve(&Destination::Pid(calm_pid)).is_ok(),
        "still alive"
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn an_unlinked_actor_is_left_alone() {
    let cluster = cluster(2).await;
    let (a, b) = (cluster.node(0), cluster.node(1));
    let (a_name, b_name) = (cluster.name(0).clone(), cluster.name(1).clone());
    let (calm, calm_pid, _) = probe(a).await;
    let (target, target_pid, _) = probe(b).await;
    let _ = calm.cast(Msg::Link(target_pid.clone()));
    let _ = calm.cast(Msg::Unlink(target_pid.clone()));
    sync(&calm).await;
    flush(a, &b_name).await; // b removed its side too
    let _ = target.cast(Msg::Panic("after the unlink".into()));
    assert!(matches!(
        exit_of(b, &target_pid).await,
        ExitReason::Failed(_)
    ));
    flush_exits(b, &a_name).await;
    sync(&calm).await;
    assert!(
        a.resolve(&Destination::Pid(calm_pid)).is_ok(),
        "still alive"
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_link_to_nothing_is_noproc_and_to_nowhere_noconnection() {
    let cluster = cluster(2).await;
    let (a, b) = (cluster.node(0), cluster.node(1));
    let (trapper, _, mut infos) = probe(a).await;
    let _ = trapper.cast(Msg::Trap(true));

    let nobody = Pid::new(cluster.name(1).clone(), b.creation(), u64::MAX / 2);
    let _ = trapper.cast(Msg::Link(nobody.clone()));
    assert_eq!(
        next(&mut infos).await,
        Info::Exit {
            from: nobody,
            reason: ExitReason::NoProc
        }
    );

    // A pid of an earlier incarnation of b is nobody either.
    let (_target, target_pid, _) = probe(b).await;
    let stale = Pid::new(
        cluster.name(1).clone(),
        b.creation().wrapping_add(1),
        target_pid.id(),
    );
    let _ = trapper.cast(Msg::Link(stale.clone()));
    assert_eq!(
        next(&mut infos).await,
        Info::Exit {
            from: stale,
            reason: ExitReason::NoProc
        }
    );

    // So is a pid of an earlier incarnation of the linking actor's own node.
    let stale_here = Pid::new(cluster.name(0).clone(), a.creation().wrapping_add(1), 1);
    let _ = trapper.cast(Msg::Link(stale_here.clone()));
    assert_eq!(
        next(&mut infos).await,
        Info::Exit {
            from: stale_here,
            reason: ExitReason::NoProc
        }
    );

    // A node that does not exist cannot be reached.
    let nowhere = Pid::new("nowhere@localhost".parse().unwrap(), 1, 1);
    let _ = trapper.cast(Msg::Link(nowhere.clone()));
    assert_eq!(
        next(&mut infos).await,
        Info::Exit {
            from: nowhere,
            reason: ExitReason::NoConnection
        }
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_killed_node_breaks_its_links_and_fires_node_monitors() {
    let mut cluster = cluster(3).await;
    let (a, b) = (cluster.node(0), cluster.node(1));
    let (b_name, c_name) = (cluster.name(1).clone(), cluster.name(2).clone());

    let (trapper, _, mut infos) = probe(a).await;
    let (_target, target_pid, _) = probe(b).await;
    let (plain, plain_pid, _) = probe(a).await;
    let _ = trapper.cast(Msg::Trap(true));
    let _ = trapper.cast(Msg::Link(target_pid.clone()));
    let _ = trapper.cast(Msg::MonitorNode(b_name.clone()));
    let _ = plain.cast(Msg::Link(target_pid.clone()));
    sync(&trapper).await;
    sync(&plain).await;
    flush(a, &b_name).await;
    let plain_exit = a.monitor(plain_pid);

    let (watcher, _, mut node_infos) = probe(a).await;
    let _ = watcher.cast(Msg::MonitorNodes);
    sync(&watcher).await;

    cluster.kill(1).await.unwrap();
    let a = cluster.node(0);
    // Both infos of the trapping actor arrive, in either order.
    let (mut exit, mut node_down) = (None, None);
    for _ in 0..2 {
        match next(&mut infos).await {
            Info::Exit { from, reason } => exit = Some((from, reason)),
            Info::NodeDown {
                monitor: Some(_),
                node,
                reason,
            } => node_down = Some((node, reason)),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(exit, Some((target_pid, ExitReason::NoConnection)));
    let (node, reason) = node_down.expect("a NodeDown");
    assert_eq!(node, b_name);
    assert!(!reason.is_empty());
    assert_eq!(
        tokio::time::timeout(DEADLINE, plain_exit)
            .await
            .expect("the linked actor stops")
            .reason,
        ExitReason::NoConnection
    );

    // The node follower hears b go down, then c leave and come back.
    match next(&mut node_infos).await {
        Info::NodeDown {
            monitor: None,
            node,
            reason,
        } => {
            assert_eq!(node, b_name);
            assert_eq!(reason, "connection_closed");
        }
        other => panic!("not a NodeDown: {other:?}"),
    }
    assert!(a.disconnect(&c_name));
    match next(&mut node_infos).await {
        Info::NodeDown { node, .. } => assert_eq!(node, c_name),
        other => panic!("not a NodeDown: {other:?}"),
    }
    a.connect(&c_name).await.unwrap();
    assert_eq!(
        next(&mut node_infos).await,
        Info::NodeUp {
            node: c_name.clone()
        }
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_node_monitor_of_an_unreachable_node_fires_at_once() {
    let cluster = cluster(2).await;
    let a = cluster.node(0);
    let (probe_a, _, mut infos) = probe(a).await;
    let _ = probe_a.cast(Msg::MonitorNode("nowhere@localhost".parse().unwrap()));
    match next(&mut infos).await {
        Info::NodeDown {
            monitor: Some(_),
            node,
            reason,
        } => {
            assert_eq!(node.as_str(), "nowhere@localhost");
            assert_eq!(reason, "noconnection");
        }
        other => panic!("not a NodeDown: {other:?}"),
    }
    cluster.shutdown().await;
}
