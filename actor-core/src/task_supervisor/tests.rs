use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use tokio::sync::{mpsc, oneshot};

use super::*;
use crate::{Pid, Restart, Shutdown, System, SystemConfig, TaskError};

const DEADLINE: Duration = Duration::from_secs(5);

async fn node(name: &str) -> (System, TaskSupervisor) {
    let system = System::start(SystemConfig::named(name).unwrap())
        .await
        .unwrap();
    system
        .functions()
        .register("Chat", "receive_message", |(msg,): (String,)| async move {
            format!("received {msg}")
        });
    system
        .functions()
        .register("Chat", "boom", |(): ()| async move {
            if true {
                panic!("boom on the node");
            }
        });
    let sup = TaskSupervisor::start(&system, TaskSupervisorConfig::new("Chat.TaskSupervisor"))
        .await
        .unwrap();
    (system, sup)
}

/// Sends on drop: tells a test that a task was cancelled before it finished.
struct DropFlag(Option<oneshot::Sender<()>>);
impl Drop for DropFlag {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

async fn poll_until<F: FnMut() -> Fut, Fut: std::future::Future<Output = bool>>(
    what: &str,
    mut check: F,
) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn runs_a_registered_function_by_name_through_every_destination_form() {
    let (system, sup) = node("alex@localhost").await;
    let by_name: String = TaskSupervisor::async_on(
        &system,
        "Chat.TaskSupervisor",
        "Chat",
        "receive_message",
        ("hi",),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    assert_eq!(by_name, "received hi");
    let self_node = ("Chat.TaskSupervisor", "alex@localhost");
    let on_self: String = TaskSupervisor::async_on(
        &system,
        self_node,
        "Chat",
        "receive_message",
        ("yo".to_string(),),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    assert_eq!(on_self, "received yo");
    let pid = system.pid_of(&sup.actor().get_cell());
    let by_pid: String =
        TaskSupervisor::async_nolink_on(&system, pid, "Chat", "receive_message", ("p",))
            .await
            .unwrap()
            .await
            .unwrap();
    assert_eq!(by_pid, "received p");
    system.shutdown().await;
}

#[tokio::test]
async fn start_errors_undefined_badargs_noproc_noconnection() {
    let (system, _sup) = node("alex@localhost").await;
    let sup = "Chat.TaskSupervisor";
    let err = TaskSupervisor::async_on::<_, String>(&system, sup, "Chat", "nope", ())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        TaskError::Undefined {
            module: "Chat".into(),
            function: "nope".into()
        }
    );
    let err = TaskSupervisor::async_on::<_, String>(&system, sup, "Chat", "receive_message", 42u64)
        .await
        .unwrap_err();
    assert!(matches!(err, TaskError::BadArgs { .. }), "{err:?}");
    let err = TaskSupervisor::async_on::<_, String>(
        &system,
        "Nope.TaskSupervisor",
        "Chat",
        "receive_message",
        ("x",),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err,
        TaskError::NoProc {
            name: "Nope.TaskSupervisor".into(),
            node: system.node().clone()
        }
    );
    let err = TaskSupervisor::async_on::<_, String>(
        &system,
        (sup, "kate@localhost"),
        "Chat",
        "receive_message",
        ("x",),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err,
        TaskError::NoConnection {
            node: "kate@localhost".parse().unwrap()
        }
    );
    let err = TaskSupervisor::start_child_on(
        &system,
        (sup, "kate@localhost"),
        "Chat",
        "receive_message",
        ("x",),
        Restart::Temporary,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, TaskError::NoConnection { .. }));
    // A pid from an earlier incarnation of this node never reaches a new actor.
    let stale = Pid::new(system.node().clone(), system.creation().wrapping_add(1), 1);
    let err =
        TaskSupervisor::async_on::<_, String>(&system, stale, "Chat", "receive_message", ("x",))
            .await
            .unwrap_err();
    assert!(matches!(err, TaskError::NoProc { .. }), "{err:?}");
    // A result awaited as the wrong type.
    let task = TaskSupervisor::async_on::<_, bool>(&system, sup, "Chat", "receive_message", ("x",))
        .await
        .unwrap();
    assert!(matches!(task.await, Err(TaskError::BadReturn { .. })));
    system.shutdown().await;
}

#[tokio::test]
async fn a_panic_reaches_the_caller_with_its_message() {
    let (system, _sup) = node("alex@localhost").await;
    let task = TaskSupervisor::async_nolink_on::<_, ()>(
        &system,
        "Chat.TaskSupervisor",
        "Chat",
        "boom",
        (),
    )
    .await
    .unwrap();
    assert_eq!(
        task.await,
        Err(TaskError::Panicked {
            message: "boom on the node".into()
        })
    );
    system.shutdown().await;
}

#[tokio::test]
async fn await_timeout_then_a_nolink_task_goes_on() {
    let (system, sup) = node("alex@localhost").await;
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let (done_tx, done_rx) = oneshot::channel::<u32>();
    let task = sup
        .async_nolink_fn(move || async move {
            let _ = go_rx.await;
            let _ = done_tx.send(7);
            7u32
        })
        .await
        .unwrap();
    assert_eq!(
        task.await_timeout(Duration::from_millis(20)).await,
        Err(TaskError::Timeout {
            timeout: Duration::from_millis(20)
        })
    );
    go_tx.send(()).unwrap();
    assert_eq!(
        tokio::time::timeout(DEADLINE, done_rx).await.unwrap(),
        Ok(7),
        "the nolink task finished after the timeout"
    );
    system.shutdown().await;
}

#[tokio::test]
async fn yield_returns_none_while_running_then_await_gets_the_result() {
    let (system, sup) = node("alex@localhost").await;
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let mut task = sup
        .async_fn(move || async move {
            let _ = go_rx.await;
            "done"
        })
        .await
        .unwrap();
    assert_eq!(
        task.yield_timeout(Duration::from_millis(10)).await,
        Ok(None)
    );
    assert_eq!(
        task.yield_timeout(Duration::from_millis(10)).await,
        Ok(None),
        "yield can be repeated"
    );
    go_tx.send(()).unwrap();
    assert_eq!(task.yield_timeout(DEADLINE).await, Ok(Some("done")));
    assert!(
        task.yield_timeout(Duration::ZERO).await.is_err(),
        "the result is taken once"
    );
    system.shutdown().await;
}

#[tokio::test]
async fn when_the_caller_dies_a_linked_task_stops_and_a_nolink_task_goes_on() {
    let (system, sup) = node("alex@localhost").await;
    let (linked_dropped_tx, linked_dropped) = oneshot::channel();
    let (nolink_go_tx, nolink_go) = oneshot::channel::<()>();
    let (nolink_done_tx, nolink_done) = oneshot::channel();
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let caller = {
        let sup = sup.clone();
        tokio::spawn(async move {
            let flag = DropFlag(Some(linked_dropped_tx));
            let _linked = sup
                .async_fn(move || async move {
                    let _flag = flag;
                    futures::future::pending::<()>().await;
                })
                .await
                .unwrap();
            let _nolink = sup
                .async_nolink_fn(move || async move {
                    let _ = nolink_go.await;
                    let _ = nolink_done_tx.send("still ran");
                })
                .await
                .unwrap();
            started_tx.send(()).unwrap();
            futures::future::pending::<()>().await;
        })
    };
    tokio::time::timeout(DEADLINE, started.recv())
        .await
        .unwrap()
        .unwrap();
    caller.abort(); // the caller dies
    tokio::time::timeout(DEADLINE, linked_dropped)
        .await
        .unwrap()
        .unwrap();
    nolink_go_tx.send(()).unwrap();
    assert_eq!(
        tokio::time::timeout(DEADLINE, nolink_done).await.unwrap(),
        Ok("still ran")
    );
    system.shutdown().await;
}

#[tokio::test]
async fn max_children_is_a_typed_error() {
    let system = System::start(SystemConfig::default()).await.unwrap();
    let sup = TaskSupervisor::start(&system, TaskSupervisorConfig::new("Small").max_children(1))
        .await
        .unwrap();
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let first = sup
        .async_fn(move || async move { go_rx.await.is_ok() })
        .await
        .unwrap();
    let err = sup.async_fn(|| async {}).await.unwrap_err();
    assert_eq!(
        err,
        TaskError::MaxChildren {
            name: "Small".into(),
            max: 1
        }
    );
    go_tx.send(()).unwrap();
    assert_eq!(first.await, Ok(true));
    poll_until("the finished task to leave", || async {
        sup.count_children().await == Ok(0)
    })
    .await;
    assert!(sup.async_fn(|| async {}).await.is_ok(), "room again");
    system.shutdown().await;
}

#[tokio::test]
async fn shutdown_of_a_task() {
    let (system, sup) = node("alex@localhost").await;
    let (dropped_tx, dropped) = oneshot::channel();
    let running = sup
        .async_nolink_fn(move || async move {
            let _flag = DropFlag(Some(dropped_tx));
            futures::future::pending::<u8>().await
        })
        .await
        .unwrap();
    assert_eq!(running.shutdown(Shutdown::BrutalKill).await, Ok(None));
    tokio::time::timeout(DEADLINE, dropped)
        .await
        .unwrap()
        .unwrap();
    // A task that finished before the shutdown: its result is returned.
    let again = sup.async_fn(|| async { 6u8 }).await.unwrap();
    poll_until("the task to finish", || async {
        sup.count_children().await == Ok(0)
    })
    .await;
    assert_eq!(
        again.shutdown(Shutdown::Timeout(DEADLINE)).await,
        Ok(Some(6))
    );
    system.shutdown().await;
}

#[tokio::test]
async fn start_child_restarts_by_restart_type() {
    let (system, sup) = node("alex@localhost").await;
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    sup.start_child_fn(
        move || {
            let n = r.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    panic!("first run fails");
                }
            }
        },
        Restart::Transient,
    )
    .await
    .unwrap();
    poll_until("one transient restart", || async {
        runs.load(Ordering::SeqCst) == 2 && sup.count_children().await == Ok(0)
    })
    .await;

    // A function by name, restarted with the same arguments.
    let seen = Arc::new(AtomicUsize::new(0));
    let s = seen.clone();
    system
        .functions()
        .register("Job", "count", move |(k,): (usize,)| {
            let s = s.clone();
            async move {
                if s.fetch_add(k, Ordering::SeqCst) == 0 {
                    panic!("once");
                }
            }
        });
    TaskSupervisor::start_child_on(
        &system,
        "Chat.TaskSupervisor",
        "Job",
        "count",
        (10usize,),
        Restart::Transient,
    )
    .await
    .unwrap();
    poll_until("the by-name child restarted with its arguments", || async {
        seen.load(Ordering::SeqCst) == 20
    })
    .await;
    system.shutdown().await;
}

#[tokio::test]
async fn too_many_restarts_stop_the_task_supervisor_and_a_permanent_parent_restarts_it() {
    let system = System::start(SystemConfig::default()).await.unwrap();
    let sup = TaskSupervisor::start(
        &system,
        TaskSupervisorConfig::new("Loop").intensity(2, Duration::from_secs(60)),
    )
    .await
    .unwrap();
    let old = sup.actor().get_id();
    sup.start_child_fn(|| async {}, Restart::Permanent)
        .await
        .unwrap();
    poll_until("the root supervisor to restart it", || async {
        TaskSupervisor::whereis(&system, "Loop").is_some_and(|s| s.actor().get_id() != old)
    })
    .await;
    system.shutdown().await;
}

#[tokio::test]
async fn two_systems_in_one_process_resolve_their_own_names() {
    let (a, _) = node("a@localhost").await;
    let (b, _) = node("b@localhost").await;
    a.functions()
        .register("Who", "am_i", |(): ()| async { "a" });
    b.functions()
        .register("Who", "am_i", |(): ()| async { "b" });
    for (system, want) in [(&a, "a"), (&b, "b")] {
        let got: String =
            TaskSupervisor::async_on(system, "Chat.TaskSupervisor", "Who", "am_i", ())
                .await
                .unwrap()
                .await
                .unwrap();
        assert_eq!(got, want);
    }
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
// The concurrency bound (reached and never exceeded), unordered results as a multiset and
// timeouts on a paused clock are tested in `tests/it/tasks.rs`.
async fn async_stream_yields_in_input_order_and_a_failure_does_not_end_it() {
    use futures::StreamExt;

    use crate::StreamOptions;

    let (system, _sup) = node("alex@localhost").await;
    // Item n waits (10 - n) yields, so later items finish first.
    system
        .functions()
        .register("Work", "slow_echo", move |n: u64| async move {
            for _ in 0..(10 - n) {
                tokio::task::yield_now().await;
            }
            if n == 7 {
                panic!("seven fails");
            }
            n
        });
    let sup = "Chat.TaskSupervisor";
    let opts = StreamOptions {
        max_concurrency: 3,
        ..StreamOptions::default()
    };
    let results: Vec<Result<u64, TaskError>> =
        TaskSupervisor::async_stream_on(&system, sup, "Work", "slow_echo", 0..10u64, opts)
            .collect()
            .await;
    let expected: Vec<Result<u64, TaskError>> = (0..10)
        .map(|n| {
            if n == 7 {
                Err(TaskError::Panicked {
                    message: "seven fails".into(),
                })
            } else {
                Ok(n)
            }
        })
        .collect();
    assert_eq!(
        results, expected,
        "in input order; a failure does not end the stream"
    );
    system.shutdown().await;
}

/// Elixir: `Task.Supervisor.async_stream` at `:max_children` closes the stream (its tasks are
/// stopped) and raises at once, whatever the earlier items are doing. Here the stream yields
/// `MaxChildren` at once and ends.
#[tokio::test]
async fn async_stream_reports_max_children_at_once_and_ends() {
    use futures::StreamExt;

    use crate::StreamOptions;

    let system = System::start(SystemConfig::default()).await.unwrap();
    let (dropped_tx, dropped) = oneshot::channel();
    let dropped_tx = std::sync::Mutex::new(Some(dropped_tx));
    system.functions().register("Work", "hang", move |n: u64| {
        let flag = DropFlag(dropped_tx.lock().unwrap().take());
        async move {
            let _flag = flag;
            futures::future::pending::<()>().await;
            n
        }
    });
    let sup = TaskSupervisor::start(&system, TaskSupervisorConfig::new("One").max_children(1))
        .await
        .unwrap();
    let mut stream = TaskSupervisor::async_stream_on::<_, u64, _>(
        &system,
        "One",
        "Work",
        "hang",
        [0u64, 1, 2],
        StreamOptions {
            max_concurrency: 2,
            timeout: Duration::from_secs(3600),
            ..StreamOptions::default()
        },
    );
    let first = tokio::time::timeout(DEADLINE, stream.next()).await;
    assert_eq!(
        first,
        Ok(Some(Err(TaskError::MaxChildren {
            name: "One".into(),
            max: 1
        })))
    );
    assert_eq!(
        tokio::time::timeout(DEADLINE, stream.next()).await,
        Ok(None),
        "the stream ends"
    );
    tokio::time::timeout(DEADLINE, dropped)
        .await
        .expect("the task in flight was stopped")
        .unwrap();
    poll_until("the slot to be free", || async {
        sup.count_children().await == Ok(0)
    })
    .await;
    system.shutdown().await;
}

/// Elixir raises `ArgumentError` (":max_concurrency must be an integer greater than zero").
#[tokio::test]
async fn async_stream_with_max_concurrency_zero_is_an_error() {
    use futures::StreamExt;

    use crate::StreamOptions;

    let (system, _sup) = node("alex@localhost").await;
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    system.functions().register("Work", "count", move |n: u64| {
        r.fetch_add(1, Ordering::SeqCst);
        async move { n }
    });
    let results: Vec<Result<u64, TaskError>> = TaskSupervisor::async_stream_on(
        &system,
        "Chat.TaskSupervisor",
        "Work",
        "count",
        [1u64, 2],
        StreamOptions {
            max_concurrency: 0,
            ..StreamOptions::default()
        },
    )
    .collect()
    .await;
    assert!(
        matches!(&results[..], [Err(TaskError::InvalidOption { option, .. })] if option == "max_concurrency"),
        "{results:?}"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 0, "no task ran");
    system.shutdown().await;
}

/// Elixir: `Task.shutdown(task)` when the task's `:DOWN` with reason `:shutdown` is already in
/// the mailbox returns `nil` (with `:brutal_kill` it returns `{:exit, :shutdown}`).
#[tokio::test]
async fn shutdown_of_a_task_already_shut_down_is_none() {
    let (system, sup) = node("alex@localhost").await;
    let task = sup
        .async_nolink_fn(futures::future::pending::<u8>)
        .await
        .unwrap();
    assert!(sup.terminate_child(task.id()).await);
    poll_until("the task to report its stop", || {
        let reported = !task.rx.as_ref().unwrap().is_empty();
        async move { reported }
    })
    .await;
    assert_eq!(task.shutdown(Shutdown::Timeout(DEADLINE)).await, Ok(None));
    // With :brutal_kill, Elixir expects :killed and returns {:exit, :shutdown}.
    let task = sup
        .async_nolink_fn(futures::future::pending::<u8>)
        .await
        .unwrap();
    assert!(sup.terminate_child(task.id()).await);
    poll_until("the task to report its stop", || {
        let reported = !task.rx.as_ref().unwrap().is_empty();
        async move { reported }
    })
    .await;
    assert_eq!(
        task.shutdown(Shutdown::BrutalKill).await,
        Err(TaskError::Exited {
            reason: "shutdown".into()
        })
    );
    system.shutdown().await;
}

/// Blocks its thread (no `.await`) until told to go on: a task busy without yielding.
async fn busy_task(
    started: oneshot::Sender<()>,
    release: std::sync::mpsc::Receiver<()>,
    dropped: oneshot::Sender<()>,
) -> u8 {
    let _flag = DropFlag(Some(dropped));
    let _ = started.send(());
    let _ = release.recv(); // busy: no .await until released
    futures::future::pending::<u8>().await // the next .await, where a stop lands
}

/// Elixir: `Task.shutdown(task, timeout)` on a task that does not stop within the timeout kills
/// it and returns `{:exit, :killed}`. Here a task stops only at an `.await`: this one is busy
/// past the timeout, then reaches one and is killed there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_past_its_timeout_kills_the_task() {
    let (system, sup) = node("alex@localhost").await;
    let (started_tx, started) = oneshot::channel();
    let (release_tx, release) = std::sync::mpsc::channel();
    let (dropped_tx, dropped) = oneshot::channel();
    let task = sup
        .async_nolink_fn(move || busy_task(started_tx, release, dropped_tx))
        .await
        .unwrap();
    tokio::time::timeout(DEADLINE, started)
        .await
        .unwrap()
        .unwrap();
    let timeout = Duration::from_millis(10);
    let shutdown = task.shutdown(Shutdown::Timeout(timeout));
    tokio::pin!(shutdown);
    assert!(
        tokio::time::timeout(timeout * 5, &mut shutdown)
            .await
            .is_err(),
        "a task that has not stopped is never reported stopped"
    );
    release_tx.send(()).unwrap();
    assert_eq!(
        tokio::time::timeout(DEADLINE, shutdown).await,
        Ok(Err(TaskError::Exited {
            reason: "killed".into()
        }))
    );
    tokio::time::timeout(DEADLINE, dropped)
        .await
        .unwrap()
        .unwrap();
    system.shutdown().await;
}

/// A task that never reaches an `.await` cannot be stopped: `shutdown` says it still runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_of_a_task_that_never_yields_says_it_still_runs() {
    let (system, sup) = node("alex@localhost").await;
    let (started_tx, started) = oneshot::channel();
    let (release_tx, release) = std::sync::mpsc::channel();
    let (dropped_tx, dropped) = oneshot::channel();
    let task = sup
        .async_nolink_fn(move || busy_task(started_tx, release, dropped_tx))
        .await
        .unwrap();
    tokio::time::timeout(DEADLINE, started)
        .await
        .unwrap()
        .unwrap();
    let result = task
        .shutdown(Shutdown::Timeout(Duration::from_millis(10)))
        .await;
    assert_eq!(
        result,
        Err(TaskError::StillRunning {
            waited: Duration::from_millis(10) + Duration::from_secs(5)
        }),
        "never reported stopped while it runs"
    );
    release_tx.send(()).unwrap();
    tokio::time::timeout(DEADLINE, dropped)
        .await
        .unwrap()
        .unwrap();
    poll_until("the task to leave once it reached an .await", || async {
        sup.count_children().await == Ok(0)
    })
    .await;
    system.shutdown().await;
}

/// As a `Supervisor`, a task supervisor past its restart intensity exits with reason
/// `shutdown` (Elixir's `Task.Supervisor` is a `DynamicSupervisor`, which does so), so a
/// `transient` parent does not restart it.
#[tokio::test]
async fn past_its_intensity_a_task_supervisor_exits_shutdown_and_a_transient_parent_leaves_it() {
    use crate::{Strategy, Supervisor, SupervisorSpec};

    let system = System::start(SystemConfig::default()).await.unwrap();
    let config = TaskSupervisorConfig::new("Loop").intensity(0, Duration::from_secs(60));
    let top = Supervisor::start(
        &system,
        None,
        SupervisorSpec::new(Strategy::OneForOne)
            .child(TaskSupervisor::child_spec(config).restart(Restart::Transient)),
    )
    .await
    .unwrap();
    let sup = TaskSupervisor::whereis(&system, "Loop").unwrap();
    sup.start_child_fn(|| async {}, Restart::Permanent)
        .await
        .unwrap();
    poll_until("the task supervisor to stop and stay stopped", || async {
        let children = Supervisor::which_children(&top).await.unwrap();
        children.len() == 1 && children[0].actor.is_none()
    })
    .await;
    assert!(TaskSupervisor::whereis(&system, "Loop").is_none());
    system.shutdown().await;
}

/// Counts on drop: a task that ended, whether it finished or was stopped.
struct Ended(Arc<AtomicUsize>);
impl Drop for Ended {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Elixir's `Task.Supervised` waits for its owner's hand-off and exits if the owner is gone: a
/// linked task whose caller is dropped after the start request is sent, before the reply is
/// read, is stopped and frees its `max_children` slot. Without that it runs forever and the
/// supervisor stays full.
#[tokio::test]
async fn a_linked_task_whose_caller_goes_before_the_start_reply_is_stopped() {
    let system = System::start(SystemConfig::default()).await.unwrap();
    let sup = TaskSupervisor::start(&system, TaskSupervisorConfig::new("One").max_children(1))
        .await
        .unwrap();
    let (started, ended) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (s, e) = (started.clone(), ended.clone());
    let mut start = Box::pin(sup.async_fn(move || async move {
        s.fetch_add(1, Ordering::SeqCst);
        let _ended = Ended(e);
        futures::future::pending::<()>().await;
    }));
    // One poll sends the start request; on this single-threaded runtime the supervisor has not
    // run yet, so the reply is not read.
    assert!(futures::poll!(&mut start).is_pending());
    drop(start); // the caller goes away (a timeout, a `select!`)
    poll_until("the orphaned task to stop and leave", || async {
        sup.count_children().await == Ok(0)
    })
    .await;
    assert_eq!(
        started.load(Ordering::SeqCst),
        ended.load(Ordering::SeqCst),
        "no task runs"
    );
    let next = sup.async_fn(|| async { 7u8 }).await;
    assert_eq!(next.unwrap().await, Ok(7), "the slot is free again");
    system.shutdown().await;
}

/// The same early drop of the caller leaves an `async_nolink` task and a `start_child` task
/// running: they are not linked to the caller.
#[tokio::test]
async fn a_nolink_or_child_task_whose_caller_goes_before_the_start_reply_goes_on() {
    let (system, sup) = node("alex@localhost").await;
    let (go_tx, go_rx) = tokio::sync::watch::channel(false);
    let (done_tx, mut done) = mpsc::unbounded_channel();
    let wait = |what: &'static str| {
        let (go, done_tx) = (go_rx.clone(), done_tx.clone());
        move || {
            let (mut go, done_tx) = (go.clone(), done_tx.clone());
            async move {
                let _ = go.wait_for(|go| *go).await;
                let _ = done_tx.send(what);
            }
        }
    };
    let mut nolink = Box::pin(sup.async_nolink_fn(wait("nolink")));
    assert!(futures::poll!(&mut nolink).is_pending());
    drop(nolink);
    let mut child = Box::pin(sup.start_child_fn(wait("child"), Restart::Temporary));
    assert!(futures::poll!(&mut child).is_pending());
    drop(child);
    assert_eq!(sup.count_children().await, Ok(2), "both started");
    go_tx.send(true).unwrap();
    let mut seen = Vec::new();
    for _ in 0..2 {
        let what = tokio::time::timeout(DEADLINE, done.recv()).await.unwrap();
        seen.push(what.unwrap());
    }
    seen.sort_unstable();
    assert_eq!(seen, ["child", "nolink"], "both ran to the end");
    system.shutdown().await;
}

/// Registers `Work.first_fast`: item 0 returns at once, any other item waits forever. Returns
/// how many started and how many ended (finished or stopped).
fn first_fast(system: &System) -> (Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let (started, ended) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (s, e) = (started.clone(), ended.clone());
    system
        .functions()
        .register("Work", "first_fast", move |n: u64| {
            s.fetch_add(1, Ordering::SeqCst);
            let ended = Ended(e.clone());
            async move {
                let _ended = ended;
                if n > 0 {
                    futures::future::pending::<()>().await;
                }
                n
            }
        });
    (started, ended)
}

/// A local `async_stream` dropped after its first item, while the start of the next one is
/// sent but not answered, leaves no task running.
#[tokio::test]
async fn an_async_stream_dropped_while_a_start_is_in_flight_leaves_no_task() {
    use futures::StreamExt;

    use crate::StreamOptions;

    let (system, sup) = node("alex@localhost").await;
    let (started, ended) = first_fast(&system);
    let mut stream = TaskSupervisor::async_stream_on::<_, u64, _>(
        &system,
        "Chat.TaskSupervisor",
        "Work",
        "first_fast",
        0..4u64,
        StreamOptions {
            max_concurrency: 1,
            ..StreamOptions::default()
        },
    );
    let first = tokio::time::timeout(DEADLINE, stream.next()).await;
    assert_eq!(first, Ok(Some(Ok(0))));
    // This poll sends the start of item 1; the supervisor has not answered it yet.
    assert!(futures::poll!(stream.next()).is_pending());
    drop(stream);
    poll_until("every task to end and leave", || async {
        sup.count_children().await == Ok(0)
    })
    .await;
    assert_eq!(
        started.load(Ordering::SeqCst),
        ended.load(Ordering::SeqCst),
        "no task runs"
    );
    system.shutdown().await;
}

/// A local `async_stream` cut short by `take(1)` leaves no task running: the tasks in flight
/// when it is dropped are stopped.
#[tokio::test]
async fn an_async_stream_taken_early_leaves_no_task() {
    use futures::StreamExt;

    use crate::StreamOptions;

    let (system, sup) = node("alex@localhost").await;
    let (started, ended) = first_fast(&system);
    let got: Vec<Result<u64, TaskError>> = TaskSupervisor::async_stream_on(
        &system,
        "Chat.TaskSupervisor",
        "Work",
        "first_fast",
        0..8u64,
        StreamOptions {
            max_concurrency: 4,
            ..StreamOptions::default()
        },
    )
    .take(1)
    .collect()
    .await;
    assert_eq!(got, [Ok(0)]);
    poll_until("every task to end and leave", || async {
        sup.count_children().await == Ok(0)
            && started.load(Ordering::SeqCst) == ended.load(Ordering::SeqCst)
    })
    .await;
    assert!(started.load(Ordering::SeqCst) >= 1);
    system.shutdown().await;
}
