//! `Task` and `async_stream` through the facade: the README's `Task.await` default, and
//! streams checked so that a wrong implementation fails (bounds reached and not exceeded,
//! results as a multiset, timeouts on a paused clock rather than tens of milliseconds).

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use futures::StreamExt;
use nodus::core::{OnTimeout, StreamOptions};
use nodus::prelude::*;

const SUP: &str = "Work.TaskSupervisor";
const DEADLINE: Duration = Duration::from_secs(10);

async fn node() -> System {
    let system = System::start(SystemConfig::named("alex@localhost").unwrap())
        .await
        .unwrap();
    TaskSupervisor::start(&system, TaskSupervisorConfig::new(SUP))
        .await
        .unwrap();
    system
}

/// README: `task.await` times out after 5 s by default, as `Task.await/1`. On a paused clock:
/// a task that takes 4.9 s is awaited, one that never ends times out after exactly 5 s. A
/// default of 1 s fails the first, one of 60 s (or none) the second.
#[tokio::test(start_paused = true)]
async fn task_await_times_out_after_five_seconds_by_default() {
    let system = node().await;
    system
        .functions()
        .register("Work", "sleep_ms", |ms: u64| async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            ms
        });
    let task = TaskSupervisor::async_on::<_, u64>(&system, SUP, "Work", "sleep_ms", 4_900u64)
        .await
        .unwrap();
    assert_eq!(task.await, Ok(4_900), "4.9 s is within the default");

    let task = TaskSupervisor::async_on::<_, u64>(&system, SUP, "Work", "sleep_ms", 3_600_000u64)
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let timeout = Duration::from_secs(5);
    assert_eq!(task.await, Err(TaskError::Timeout { timeout }));
    let took = started.elapsed();
    assert!(
        took >= timeout && took < timeout + Duration::from_millis(100),
        "timed out after {took:?}"
    );
    system.shutdown().await;
}

/// `max_concurrency` is reached and never exceeded: every task waits at a gate until the test
/// has seen exactly `max` of them in flight and watched for a while that no more start. An
/// implementation that runs one at a time never reaches `max`; one without a bound exceeds
/// it at once.
#[tokio::test]
async fn async_stream_runs_exactly_max_concurrency_tasks_at_once() {
    const MAX: usize = 3;
    let system = node().await;
    let (in_flight, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (go_tx, go_rx) = tokio::sync::watch::channel(false);
    let (f, m) = (in_flight.clone(), most.clone());
    system.functions().register("Work", "gated", move |n: u64| {
        let (f, m, mut go) = (f.clone(), m.clone(), go_rx.clone());
        async move {
            let now = f.fetch_add(1, Ordering::SeqCst) + 1;
            m.fetch_max(now, Ordering::SeqCst);
            let _ = go.wait_for(|go| *go).await;
            f.fetch_sub(1, Ordering::SeqCst);
            n
        }
    });
    let stream = TaskSupervisor::async_stream_on::<_, u64, _>(
        &system,
        SUP,
        "Work",
        "gated",
        0..10u64,
        StreamOptions {
            max_concurrency: MAX,
            ..StreamOptions::default()
        },
    );
    let results = tokio::spawn(stream.collect::<Vec<_>>());

    let deadline = tokio::time::Instant::now() + DEADLINE;
    while in_flight.load(Ordering::SeqCst) < MAX {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never {MAX} in flight (most {})",
            most.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(5)).await; // polling interval, bounded
    }
    // The bound reached: watch that no fourth task starts while the three wait. Without a
    // bound the other seven would start within microseconds of the first three.
    tokio::time::sleep(Duration::from_millis(200)).await; // asserts an absence; syncs nothing
    assert_eq!(
        most.load(Ordering::SeqCst),
        MAX,
        "no more than {MAX} at once"
    );

    go_tx.send(true).unwrap();
    let results = tokio::time::timeout(DEADLINE, results)
        .await
        .expect("the stream ends")
        .unwrap();
    assert_eq!(
        results,
        (0..10).map(Ok).collect::<Vec<_>>(),
        "in input order"
    );
    assert_eq!(
        most.load(Ordering::SeqCst),
        MAX,
        "the bound held to the end"
    );
    system.shutdown().await;
}

/// `ordered: false` yields results as they finish, and every result once: the first item is
/// held back until the second has been yielded (an ordered stream would wait for it forever,
/// and the deadline fails it), and the results are compared as a multiset, with duplicate
/// inputs, not by their number.
#[tokio::test]
async fn an_unordered_async_stream_yields_as_tasks_finish_and_every_result_once() {
    let system = node().await;
    let (release_tx, release_rx) = tokio::sync::watch::channel(false);
    system.functions().register("Work", "held", move |n: u64| {
        let mut release = release_rx.clone();
        async move {
            if n == 0 {
                let _ = release.wait_for(|r| *r).await;
            }
            n
        }
    });
    let mut stream = TaskSupervisor::async_stream_on::<_, u64, _>(
        &system,
        SUP,
        "Work",
        "held",
        [0u64, 5, 1, 5, 3],
        StreamOptions {
            max_concurrency: 5,
            ordered: false,
            ..StreamOptions::default()
        },
    );
    let mut got = Vec::new();
    for _ in 0..4 {
        let next = tokio::time::timeout(DEADLINE, stream.next())
            .await
            .expect("a finished task is yielded without waiting for the held one");
        got.push(next.unwrap().unwrap());
    }
    release_tx.send(true).unwrap();
    let last = tokio::time::timeout(DEADLINE, stream.next()).await.unwrap();
    assert_eq!(last, Some(Ok(0)), "the held task comes last");
    assert_eq!(
        tokio::time::timeout(DEADLINE, stream.next()).await.unwrap(),
        None
    );
    got.sort_unstable();
    assert_eq!(got, [1, 3, 5, 5], "every other result once (a multiset)");
    system.shutdown().await;
}

/// A task past the stream's timeout, on a paused clock (so the timeout can be long enough
/// that a loaded machine never trips it by accident, and the test still takes no time):
/// `Exit` yields `Timeout` and ends the stream, `KillTask` yields `Timeout` for that task
/// and goes on; a task that finishes just inside the timeout is not timed out.
#[tokio::test(start_paused = true)]
async fn async_stream_timeouts_exit_or_kill_the_task() {
    let system = node().await;
    let stopped = Arc::new(AtomicUsize::new(0));
    let s = stopped.clone();
    // Item 3 never finishes (and counts when it is stopped); item 2 takes just under 1 s.
    system
        .functions()
        .register("Work", "hang_on_3", move |n: u64| {
            let s = s.clone();
            async move {
                struct Stopped(Arc<AtomicUsize>);
                impl Drop for Stopped {
                    fn drop(&mut self) {
                        self.0.fetch_add(1, Ordering::SeqCst);
                    }
                }
                match n {
                    2 => tokio::time::sleep(Duration::from_millis(990)).await,
                    3 => {
                        let _stopped = Stopped(s);
                        futures::future::pending::<()>().await;
                    }
                    _ => {}
                }
                n
            }
        });
    let timeout = Duration::from_secs(1);
    let opts = |on_timeout| StreamOptions {
        max_concurrency: 1,
        timeout,
        on_timeout,
        ordered: true,
    };
    let exit: Vec<Result<u64, TaskError>> = TaskSupervisor::async_stream_on(
        &system,
        SUP,
        "Work",
        "hang_on_3",
        0..6u64,
        opts(OnTimeout::Exit),
    )
    .collect()
    .await;
    assert_eq!(
        exit,
        [Ok(0), Ok(1), Ok(2), Err(TaskError::Timeout { timeout })],
        "a timeout ends the stream"
    );
    let kill: Vec<Result<u64, TaskError>> = TaskSupervisor::async_stream_on(
        &system,
        SUP,
        "Work",
        "hang_on_3",
        0..6u64,
        opts(OnTimeout::KillTask),
    )
    .collect()
    .await;
    assert_eq!(
        kill,
        [
            Ok(0),
            Ok(1),
            Ok(2),
            Err(TaskError::Timeout { timeout }),
            Ok(4),
            Ok(5)
        ],
        "kill_task goes on"
    );
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while stopped.load(Ordering::SeqCst) < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "both hanging tasks are stopped"
        );
        tokio::time::sleep(Duration::from_millis(5)).await; // polling interval, bounded
    }
    system.shutdown().await;
}

/// `async_stream_on` a supervisor on another node, cut short: by `take(n)`, and dropped while
/// the start of its next item is sent but not answered. Either way the serving node keeps no
/// running task (the tasks in flight are stopped, and a linked task whose start answer is
/// never claimed is stopped there too) and its supervisor is empty again.
#[tokio::test]
async fn an_async_stream_on_a_peer_cut_short_leaves_no_task_there() {
    use nodus::remote::{port_mapper::PortMapperServer, Cookie, Node, NodeConfig};

    struct Ended(Arc<AtomicUsize>);
    impl Drop for Ended {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let epmd = PortMapperServer::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
        .spawn();
    let start = |name: &'static str| {
        Node::start(
            NodeConfig::sname(name)
                .cookie(Cookie::new("tasks").unwrap())
                .port_mapper(epmd.local_addr()),
        )
    };
    let alex = start("alex@localhost").await.unwrap();
    let kate = start("kate@localhost").await.unwrap();
    let sup = TaskSupervisor::start(&kate, TaskSupervisorConfig::new(SUP))
        .await
        .unwrap();
    // Items 0 and 1 return at once; any other waits forever.
    let (started, ended) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (s, e) = (started.clone(), ended.clone());
    kate.functions()
        .register("Work", "two_fast", move |n: u64| {
            s.fetch_add(1, Ordering::SeqCst);
            let ended = Ended(e.clone());
            async move {
                let _ended = ended;
                if n > 1 {
                    futures::future::pending::<()>().await;
                }
                n
            }
        });
    let stream = |max_concurrency| {
        TaskSupervisor::async_stream_on::<_, u64, _>(
            &alex,
            (SUP, "kate@localhost"),
            "Work",
            "two_fast",
            0..8u64,
            StreamOptions {
                max_concurrency,
                ..StreamOptions::default()
            },
        )
    };
    let nothing_runs_on_kate = |what: &'static str| {
        let (sup, started, ended) = (sup.clone(), started.clone(), ended.clone());
        async move {
            let deadline = tokio::time::Instant::now() + DEADLINE;
            loop {
                let (s, e) = (started.load(Ordering::SeqCst), ended.load(Ordering::SeqCst));
                if sup.count_children().await == Ok(0) && s == e {
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{what}: {} tasks still under kate's supervisor, {s} started, {e} ended",
                    sup.count_children().await.unwrap_or(0)
                );
                tokio::time::sleep(Duration::from_millis(5)).await; // polling interval, bounded
            }
        }
    };

    let got: Vec<Result<u64, TaskError>> =
        tokio::time::timeout(DEADLINE, stream(4).take(2).collect())
            .await
            .unwrap();
    assert_eq!(got, [Ok(0), Ok(1)]);
    nothing_runs_on_kate("take(2)").await;
    assert!(
        started.load(Ordering::SeqCst) >= 2,
        "the stream ran on kate"
    );

    let mut cut = stream(1);
    for n in 0..2 {
        let next = tokio::time::timeout(DEADLINE, cut.next()).await.unwrap();
        assert_eq!(next, Some(Ok(n)));
    }
    // This poll sends the start of item 2 to kate; its answer has not been read.
    assert!(futures::poll!(cut.next()).is_pending());
    drop(cut);
    nothing_runs_on_kate("dropped with a start in flight").await;

    alex.shutdown().await;
    kate.shutdown().await;
}
