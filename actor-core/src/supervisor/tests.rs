use std::time::Duration;

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tokio::sync::mpsc;

use super::*;
use crate::{System, SystemConfig};

/// What test workers report, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ev {
    Started(&'static str),
    Stopped(&'static str),
}

type Events = mpsc::UnboundedSender<Ev>;

#[derive(Clone)]
pub(crate) struct Worker;

pub(crate) enum WorkerMsg {
    Crash,
    Exit(Option<String>),
    Ping(RpcReplyPort<&'static str>),
}

#[derive(Clone)]
pub(crate) struct WorkerArgs {
    name: &'static str,
    events: Events,
    slow_stop: Option<Duration>,
}

impl Actor for Worker {
    type Msg = WorkerMsg;
    type State = WorkerArgs;
    type Arguments = WorkerArgs;

    async fn pre_start(
        &self,
        _: ActorRef<WorkerMsg>,
        args: WorkerArgs,
    ) -> Result<WorkerArgs, ActorProcessingErr> {
        let _ = args.events.send(Ev::Started(args.name));
        Ok(args)
    }

    async fn post_stop(
        &self,
        _: ActorRef<WorkerMsg>,
        state: &mut WorkerArgs,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(d) = state.slow_stop {
            tokio::time::sleep(d).await; // a child that is slow to stop, not synchronisation
        }
        let _ = state.events.send(Ev::Stopped(state.name));
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<WorkerMsg>,
        msg: WorkerMsg,
        state: &mut WorkerArgs,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            WorkerMsg::Crash => panic!("{} crashed on purpose", state.name),
            WorkerMsg::Exit(reason) => myself.stop(reason),
            WorkerMsg::Ping(reply) => {
                let _ = reply.send(state.name);
            }
        }
        Ok(())
    }
}

fn worker(name: &'static str, events: &Events) -> ChildSpec {
    ChildSpec::new(
        name,
        Worker,
        WorkerArgs {
            name,
            events: events.clone(),
            slow_stop: None,
        },
    )
    .name(name)
}

const DEADLINE: Duration = Duration::from_secs(5);

async fn next(rx: &mut mpsc::UnboundedReceiver<Ev>) -> Ev {
    match tokio::time::timeout(DEADLINE, rx.recv()).await {
        Ok(Some(ev)) => ev,
        other => panic!("no event within {DEADLINE:?}: {other:?}"),
    }
}

async fn take(rx: &mut mpsc::UnboundedReceiver<Ev>, n: usize) -> Vec<Ev> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(next(rx).await);
    }
    out
}

use Ev::{Started as S, Stopped as X};

async fn setup(
    strategy: Strategy,
    names: &[&'static str],
) -> (System, ActorRef<SupervisorMsg>, mpsc::UnboundedReceiver<Ev>) {
    let system = System::start(SystemConfig::default()).await.unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut spec = SupervisorSpec::new(strategy);
    for name in names {
        spec = spec.child(worker(name, &tx));
    }
    let sup = Supervisor::start(&system, Some("sup"), spec).await.unwrap();
    let started = take(&mut rx, names.len()).await;
    assert_eq!(
        started,
        names.iter().map(|n| S(n)).collect::<Vec<_>>(),
        "children start in order"
    );
    (system, sup, rx)
}

fn id_of(system: &System, name: &str) -> ractor::ActorId {
    system
        .registry()
        .whereis_cell(name)
        .map(|c| c.get_id())
        .unwrap()
}

async fn registered_again(system: &System, name: &str, old: ractor::ActorId) -> ActorCell {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(cell) = system.registry().whereis_cell(name) {
            if cell.get_id() != old {
                return cell;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} was not restarted in time"
        );
        tokio::task::yield_now().await;
    }
}

fn crash(system: &System, name: &str) {
    system.cast(name, WorkerMsg::Crash).unwrap();
}

#[tokio::test]
async fn one_for_one_restarts_only_the_crashed_child() {
    let (system, _sup, mut rx) = setup(Strategy::OneForOne, &["a", "b", "c"]).await;
    let (a, b, c) = (
        id_of(&system, "a"),
        id_of(&system, "b"),
        id_of(&system, "c"),
    );
    crash(&system, "b");
    assert_eq!(next(&mut rx).await, S("b"));
    registered_again(&system, "b", b).await;
    assert_eq!(
        (id_of(&system, "a"), id_of(&system, "c")),
        (a, c),
        "siblings untouched"
    );
    let pong = system.call("b", WorkerMsg::Ping, DEADLINE).await.unwrap();
    assert_eq!(pong, "b", "the name resolves to the restarted child");
    system.shutdown().await;
}

#[tokio::test]
async fn one_for_all_stops_the_others_in_reverse_then_restarts_all_in_order() {
    let (system, _sup, mut rx) = setup(Strategy::OneForAll, &["a", "b", "c"]).await;
    crash(&system, "b");
    // b panicked (no post_stop); c then a are stopped in reverse order, then all start.
    assert_eq!(
        take(&mut rx, 5).await,
        [X("c"), X("a"), S("a"), S("b"), S("c")]
    );
    system.shutdown().await;
}

#[tokio::test]
async fn rest_for_one_restarts_the_child_and_those_after_it() {
    let (system, _sup, mut rx) = setup(Strategy::RestForOne, &["a", "b", "c", "d"]).await;
    let a = id_of(&system, "a");
    crash(&system, "b");
    assert_eq!(
        take(&mut rx, 5).await,
        [X("d"), X("c"), S("b"), S("c"), S("d")]
    );
    assert_eq!(
        id_of(&system, "a"),
        a,
        "children before the crashed one are untouched"
    );
    system.shutdown().await;
}

#[tokio::test]
async fn restart_types() {
    let system = System::start(SystemConfig::default()).await.unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .child(worker("perm", &tx).restart(Restart::Permanent))
        .child(worker("trans", &tx).restart(Restart::Transient))
        .child(worker("temp", &tx).restart(Restart::Temporary));
    let sup = Supervisor::start(&system, None, spec).await.unwrap();
    take(&mut rx, 3).await;

    // Permanent: restarted even after a normal exit.
    system.cast("perm", WorkerMsg::Exit(None)).unwrap();
    assert_eq!(take(&mut rx, 2).await, [X("perm"), S("perm")]);

    // Transient: a crash restarts it, a normal ("shutdown") exit does not.
    crash(&system, "trans");
    assert_eq!(next(&mut rx).await, S("trans"));
    system
        .cast("trans", WorkerMsg::Exit(Some("shutdown".into())))
        .unwrap();
    assert_eq!(next(&mut rx).await, X("trans"));

    // Temporary: never restarted, and removed.
    crash(&system, "temp");
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let children = Supervisor::which_children(&sup).await.unwrap();
        let ids: Vec<_> = children
            .iter()
            .map(|c| (c.id.as_str(), c.actor.is_some()))
            .collect();
        if ids == [("perm", true), ("trans", false)] {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "children now: {ids:?}"
        );
        tokio::task::yield_now().await;
    }
    // Nothing else started in the meantime: the next event is the one we cause now.
    system
        .cast("perm", WorkerMsg::Exit(Some("killed".into())))
        .unwrap();
    assert_eq!(take(&mut rx, 2).await, [X("perm"), S("perm")]);
    system.shutdown().await;
}

/// Forwards its children's supervision events to a channel.
struct Parent;

impl Actor for Parent {
    type Msg = ();
    type State = mpsc::UnboundedSender<String>;
    type Arguments = mpsc::UnboundedSender<String>;

    async fn pre_start(
        &self,
        _: ActorRef<()>,
        tx: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(tx)
    }

    async fn handle_supervisor_evt(
        &self,
        _: ActorRef<()>,
        evt: SupervisionEvent,
        tx: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match evt {
            SupervisionEvent::ActorFailed(_, err) => {
                let _ = tx.send(format!("failed: {err}"));
            }
            SupervisionEvent::ActorTerminated(_, _, reason) => {
                let _ = tx.send(format!("terminated: {reason:?}"));
            }
            _ => {}
        }
        Ok(())
    }
}

/// Keeps the messages of the events logged on this thread (the test's runtime thread).
struct Log(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl tracing::Subscriber for Log {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        struct Message(String);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}");
                }
            }
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        self.0.lock().unwrap().push(message.0);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[tokio::test]
async fn past_the_intensity_the_supervisor_stops_its_children_and_exits_shutdown() {
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let _log = tracing::subscriber::set_default(Log(log.clone()));
    // With a single scoped subscriber in the process, tracing computes the interest of a
    // callsite first hit on another thread (another test) from that thread's default alone,
    // which wants nothing, and caches it. A second live dispatcher makes it ask every
    // dispatcher, so the events logged on this thread reach `Log` whoever hit them first.
    let _second = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());
    let system = System::start(SystemConfig::default()).await.unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (ptx, mut prx) = mpsc::unbounded_channel();
    let (parent, _) = Actor::spawn(None, Parent, ptx).await.unwrap();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(2, Duration::from_secs(60))
        .child(worker("steady", &tx))
        .child(worker("flaky", &tx));
    Supervisor::spawn(system.kernel(), "app".into(), spec, Some(parent.get_cell()))
        .await
        .unwrap();
    take(&mut rx, 2).await;
    for _ in 0..2 {
        let old = id_of(&system, "flaky");
        crash(&system, "flaky");
        assert_eq!(next(&mut rx).await, S("flaky"));
        registered_again(&system, "flaky", old).await;
    }
    crash(&system, "flaky"); // the third restart in the window is one too many
    assert_eq!(
        next(&mut rx).await,
        X("steady"),
        "remaining children are shut down"
    );
    // OTP: the supervisor exits with reason `shutdown`; why it gave up is in its log.
    let why = tokio::time::timeout(DEADLINE, prx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(why, r#"terminated: Some("shutdown")"#);
    let logged = log.lock().unwrap().clone();
    assert!(
        logged.iter().any(|m| m.starts_with(
            "supervisor app shut down: reached maximum restart intensity (2 restarts in 60s)"
        )),
        "the log says why it gave up: {logged:?}"
    );
    parent.stop(None);
    system.shutdown().await;
}

#[tokio::test]
async fn shutdown_stops_children_in_reverse_order_running_post_stop() {
    let (system, sup, mut rx) = setup(Strategy::OneForOne, &["a", "b", "c"]).await;
    sup.stop_and_wait(None, Some(DEADLINE)).await.unwrap();
    assert_eq!(take(&mut rx, 3).await, [X("c"), X("b"), X("a")]);
    system.shutdown().await;
}

#[tokio::test]
async fn shutdown_timeout_kills_a_slow_child_and_brutal_kill_skips_post_stop() {
    let system = System::start(SystemConfig::default()).await.unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let slow = WorkerArgs {
        name: "slow",
        events: tx.clone(),
        slow_stop: Some(Duration::from_secs(3600)),
    };
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .child(worker("first", &tx))
        .child(
            ChildSpec::new("slow", Worker, slow)
                .shutdown(Shutdown::Timeout(Duration::from_millis(50))),
        )
        .child(worker("brutal", &tx).shutdown(Shutdown::BrutalKill));
    let sup = Supervisor::start(&system, None, spec).await.unwrap();
    take(&mut rx, 3).await;
    sup.stop_and_wait(None, Some(DEADLINE))
        .await
        .expect("a slow child cannot hold its supervisor up");
    // brutal: killed, no post_stop; slow: killed after 50 ms, no post_stop; first: stopped.
    // The supervisor has waited for all three, so every event is already in the channel.
    assert_eq!(next(&mut rx).await, X("first"));
    assert!(
        rx.try_recv().is_err(),
        "neither the killed nor the brutally killed child ran post_stop"
    );
    system.shutdown().await;
}

#[tokio::test]
async fn dynamic_children() {
    let (system, sup, mut rx) = setup(Strategy::OneForOne, &["a"]).await;
    let (tx2, mut rx2) = mpsc::unbounded_channel();
    Supervisor::start_child(&sup, worker("dyn", &tx2))
        .await
        .unwrap();
    assert_eq!(next(&mut rx2).await, S("dyn"));
    let dup = Supervisor::start_child(&sup, worker("dyn", &tx2)).await;
    assert!(
        matches!(&dup, Err(SupervisorError::AlreadyStarted { id }) if id == "dyn"),
        "{dup:?}"
    );
    Supervisor::terminate_child(&sup, "dyn").await.unwrap();
    assert_eq!(
        next(&mut rx2).await,
        X("dyn"),
        "terminate_child runs post_stop"
    );
    Supervisor::terminate_child(&sup, "dyn")
        .await
        .expect("OTP: terminating a child that is not running is ok");
    assert!(matches!(
        Supervisor::terminate_child(&sup, "nope").await,
        Err(SupervisorError::NotFound { .. })
    ));
    children_become(&sup, &[("a", true), ("dyn", false)]).await;
    assert!(rx.try_recv().is_err(), "a untouched");
    system.shutdown().await;
}

#[tokio::test]
async fn a_taken_name_fails_the_start_cleanly() {
    let system = System::start(SystemConfig::default()).await.unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let sup = Supervisor::start(&system, Some("taken"), SupervisorSpec::default())
        .await
        .unwrap();
    let err = Supervisor::start_child(&sup, worker("x", &tx).name("taken"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("already registered"), "{err}");
    assert_eq!(next(&mut rx).await, S("x"));
    assert!(Supervisor::which_children(&sup).await.unwrap().is_empty());
    system.shutdown().await;
}

/// The children of `sup` as `(id, running)`, polled until they are `want` (bounded).
async fn children_become(sup: &ActorRef<SupervisorMsg>, want: &[(&str, bool)]) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let now: Vec<(String, bool)> = Supervisor::which_children(sup)
            .await
            .unwrap()
            .into_iter()
            .map(|c| (c.id, c.actor.is_some()))
            .collect();
        if now
            .iter()
            .map(|(id, r)| (id.as_str(), *r))
            .eq(want.iter().copied())
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "children now: {now:?}, want {want:?}"
        );
        tokio::task::yield_now().await;
    }
}

/// OTP (and Elixir's `Supervisor`): a supervisor that reaches its restart intensity stops its
/// children and exits with reason `shutdown` (logging `reached_max_restart_intensity`), so a
/// parent that holds it as `transient` does not restart it.
#[tokio::test]
async fn past_its_intensity_a_supervisor_exits_shutdown_and_a_transient_parent_leaves_it() {
    let system = System::start(SystemConfig::default()).await.unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let inner = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(0, Duration::from_secs(60))
        .child(worker("flaky", &tx));
    let top = Supervisor::start(
        &system,
        None,
        SupervisorSpec::new(Strategy::OneForOne)
            .child(ChildSpec::supervisor("inner", inner).restart(Restart::Transient)),
    )
    .await
    .unwrap();
    assert_eq!(next(&mut rx).await, S("flaky"));
    crash(&system, "flaky"); // intensity 0: the first restart is one too many
    children_become(&top, &[("inner", false)]).await;
    assert!(
        rx.try_recv().is_err(),
        "nothing was restarted: the parent saw a normal exit"
    );
    system.shutdown().await;
}

/// OTP: `terminate_child` stops the child but keeps its spec; `which_children` lists it as not
/// running, `restart_child` starts it again, `delete_child` removes it, and `start_child` with
/// its id answers `{:error, :already_present}` (`{:error, {:already_started, pid}}` while it
/// runs).
#[tokio::test]
async fn terminate_child_keeps_the_spec() {
    let (system, sup, mut rx) = setup(Strategy::OneForOne, &["a", "b"]).await;
    let (tx, mut rx2) = mpsc::unbounded_channel();
    Supervisor::terminate_child(&sup, "b").await.unwrap();
    assert_eq!(next(&mut rx).await, X("b"));
    children_become(&sup, &[("a", true), ("b", false)]).await;
    let again = Supervisor::start_child(&sup, worker("b", &tx)).await;
    assert!(
        matches!(&again, Err(SupervisorError::AlreadyPresent { id }) if id == "b"),
        "{again:?}"
    );
    assert!(rx2.try_recv().is_err(), "nothing started");
    let infos = Supervisor::which_children(&sup).await.unwrap();
    let b = &infos[1];
    assert_eq!(
        (b.id.as_str(), b.name.as_deref(), b.is_running(), b.restart),
        ("b", Some("b"), false, Restart::Permanent),
        "a stopped child keeps its id, name and restart type"
    );
    assert!(system.registry().whereis_cell("b").is_none());

    // delete_child and restart_child refuse a running child, and an unknown id.
    for result in [
        Supervisor::delete_child(&sup, "a").await,
        Supervisor::restart_child(&sup, "a").await.map(drop),
    ] {
        assert!(
            matches!(&result, Err(SupervisorError::Running { id }) if id == "a"),
            "{result:?}"
        );
    }
    for result in [
        Supervisor::delete_child(&sup, "nope").await,
        Supervisor::restart_child(&sup, "nope").await.map(drop),
    ] {
        assert!(
            matches!(result, Err(SupervisorError::NotFound { .. })),
            "{result:?}"
        );
    }

    // restart_child starts it again from its spec, under its name.
    let cell = Supervisor::restart_child(&sup, "b").await.unwrap();
    assert_eq!(next(&mut rx).await, S("b"));
    assert_eq!(id_of(&system, "b"), cell.get_id());
    children_become(&sup, &[("a", true), ("b", true)]).await;
    // And it is supervised again: a crash restarts it.
    crash(&system, "b");
    assert_eq!(next(&mut rx).await, S("b"));
    registered_again(&system, "b", cell.get_id()).await;

    // delete_child removes a stopped child; its id is free again.
    Supervisor::terminate_child(&sup, "b").await.unwrap();
    assert_eq!(next(&mut rx).await, X("b"));
    Supervisor::delete_child(&sup, "b").await.unwrap();
    children_become(&sup, &[("a", true)]).await;
    Supervisor::start_child(&sup, worker("b", &tx))
        .await
        .unwrap();
    assert_eq!(next(&mut rx2).await, S("b"));
    children_become(&sup, &[("a", true), ("b", true)]).await;
    system.shutdown().await;
}

/// OTP: a temporary child's spec is not kept when it is terminated.
#[tokio::test]
async fn terminate_child_removes_a_temporary_child() {
    let (system, sup, _rx) = setup(Strategy::OneForOne, &["a"]).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    Supervisor::start_child(&sup, worker("temp", &tx).restart(Restart::Temporary))
        .await
        .unwrap();
    assert_eq!(next(&mut rx).await, S("temp"));
    Supervisor::terminate_child(&sup, "temp").await.unwrap();
    assert_eq!(next(&mut rx).await, X("temp"));
    children_become(&sup, &[("a", true)]).await;
    system.shutdown().await;
}
