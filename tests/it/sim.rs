//! Deterministic simulation (`nodus::testing::sim`): each scenario runs twice with one seed
//! and must give the identical trace (every node event, fault decision and recorded outcome,
//! with its virtual time), and with another seed a different one. `NODUS_SIM_SEED=N` runs a
//! scenario with seed N instead of its own.

use std::{error::Error, future::Future, time::Duration};

use nodus::{
    remote::Node,
    testing::{
        sim::{Chaos, Sim, SimError, Simulation, Trace},
        LocalCluster,
    },
    TaskError, TaskSupervisor, TaskSupervisorConfig,
};

type Outcome = Result<(), Box<dyn Error>>;

/// The command the replay line names.
const COMMAND: &str = "cargo test --features testing --test it";

/// A bound on every wait, in virtual time.
const DEADLINE: Duration = Duration::from_secs(60);

fn simulation(default_seed: u64) -> Simulation {
    Simulation::from_env(default_seed)
        .expect("NODUS_SIM_SEED is a number")
        .command(COMMAND)
}

/// Runs `scenario` twice with the test's seed and once with the next one: the first two
/// traces must be identical, the third different. Returns the first trace.
fn replays<F, Fut>(default_seed: u64, scenario: F) -> Trace
where
    F: Fn(Sim) -> Fut,
    Fut: Future<Output = Outcome>,
{
    let sim = simulation(default_seed);
    let seed = sim.seed();
    let first = sim.clone().run(&scenario).unwrap_or_else(|e| panic!("{e}"));
    let again = sim.run(&scenario).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        first.len() > 5,
        "seed {seed}: the trace records what happened:\n{first}"
    );
    if let Some(difference) = first.first_difference(&again) {
        panic!(
            "seed {seed} did not replay: the traces differ first at event {}:\n  first: {:?}\n  again: {:?}\nfirst trace:\n{first}",
            difference.at, difference.ours, difference.theirs
        );
    }
    let other = Simulation::seeded(seed.wrapping_add(1))
        .run(&scenario)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(first, other, "seeds {seed} and {} gave one trace", seed + 1);
    first
}

/// Polls `done` every 10 ms of virtual time until it holds, at most [`DEADLINE`].
async fn until(what: &str, done: impl Fn() -> bool) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !done() {
        if tokio::time::Instant::now() >= deadline {
            return Err(format!("{what}: not within {DEADLINE:?}"));
        }
        tokio::time::sleep(Duration::from_millis(10)).await; // the poll interval
    }
    Ok(())
}

/// Registers `Work.sleep_ms` and starts the task supervisor `Sup` on a node.
async fn work(node: Node, _: usize) {
    node.functions()
        .register("Work", "sleep_ms", |ms: u64| async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            ms
        });
    TaskSupervisor::start(&node, TaskSupervisorConfig::new("Sup"))
        .await
        .expect("the task supervisor starts");
}

/// Mesh convergence: five nodes, each told of node 0 only, in a seeded order and at seeded
/// times, with delayed reads and writes; the mesh must form by itself (the peers' lists).
async fn mesh(sim: Sim) -> Outcome {
    let n = 5;
    let cluster = sim.cluster("simmesh").nodes(n).start().await?;
    sim.watch(&cluster);
    sim.chaos(&cluster, Chaos::new().delay(0.3, Duration::from_millis(40)))?;
    let mut joining: Vec<usize> = (1..n).collect();
    while !joining.is_empty() {
        let i = joining.remove(sim.below(joining.len() as u64) as usize);
        sim.sleep_between(Duration::ZERO, Duration::from_millis(300))
            .await;
        sim.record(format_args!(
            "{} connects to {}",
            cluster.name(i),
            cluster.name(0)
        ));
        cluster.node(i).connect(cluster.name(0)).await?;
    }
    until("a full mesh", || {
        (0..n).all(|i| cluster.node(i).list().len() == n - 1)
    })
    .await?;
    sim.record("full mesh");
    cluster.shutdown().await;
    Ok(())
}

#[test]
fn mesh_convergence_replays_from_its_seed() {
    let trace = replays(11, mesh);
    assert!(
        trace.events().iter().any(|e| e.ends_with("full mesh")),
        "{trace}"
    );
}

/// A partition and heal with global names: a seeded node is cut off from the other two; the
/// name `leader` is registered on each side; after the heal the conflict is resolved the same
/// way on every node.
async fn partition(sim: Sim) -> Outcome {
    let cluster = sim
        .cluster("simpart")
        .nodes(3)
        .on_start(work)
        .start()
        .await?;
    sim.watch(&cluster);
    sim.chaos(&cluster, Chaos::new().delay(0.2, Duration::from_millis(25)))?;
    cluster.await_mesh(DEADLINE).await?;
    let alone = sim.below(3) as usize;
    let others: Vec<usize> = (0..3).filter(|&i| i != alone).collect();
    sim.sleep_between(Duration::ZERO, Duration::from_secs(2))
        .await;
    sim.record(format_args!(
        "partition {} from the rest",
        cluster.name(alone)
    ));
    for &i in &others {
        cluster.partition(alone, i)?;
    }
    until("the partition seen", || {
        cluster.node(alone).list().is_empty()
    })
    .await?;
    // Each side names its own task supervisor `leader`.
    for i in [alone, others[sim.below(2) as usize]] {
        let node = cluster.node(i);
        let sup = TaskSupervisor::start(node, TaskSupervisorConfig::new("Leader")).await?;
        let pid = node.pid_of(&sup.actor().get_cell());
        node.global().register("leader", &pid)?;
        sim.record(format_args!("{} registers leader", cluster.name(i)));
    }
    sim.sleep_between(Duration::ZERO, Duration::from_secs(2))
        .await;
    sim.record("heal");
    for &i in &others {
        cluster.heal(alone, i)?;
    }
    cluster.await_mesh(DEADLINE).await?;
    for i in 0..3 {
        cluster.node(i).global().sync(DEADLINE).await?;
    }
    let holders: Vec<Option<String>> = (0..3)
        .map(|i| {
            let pid = cluster.node(i).global().whereis("leader");
            pid.map(|p| p.node().to_string())
        })
        .collect();
    sim.record(format_args!("leader is on {holders:?}"));
    if holders.iter().any(|h| *h != holders[0]) {
        return Err(format!("the nodes disagree on leader: {holders:?}").into());
    }
    cluster.shutdown().await;
    Ok(())
}

#[test]
fn partition_and_heal_with_global_names_replays_from_its_seed() {
    let trace = replays(23, partition);
    assert!(
        trace.events().iter().any(|e| e.contains("leader is on")),
        "{trace}"
    );
}

/// A node killed mid-task: node 0 and node 1 start long tasks on node 2, which is killed at a
/// seeded time while they run, under light message loss; both see their task fail, and a
/// restarted node 2 serves again.
async fn killed(sim: Sim) -> Outcome {
    let mut cluster = sim
        .cluster("simkill")
        .nodes(3)
        .on_start(work)
        .start()
        .await?;
    sim.watch(&cluster);
    sim.chaos(
        &cluster,
        Chaos::new()
            .loss(0.01)
            .delay(0.2, Duration::from_millis(25)),
    )?;
    cluster.await_mesh(DEADLINE).await?;
    let target = ("Sup", cluster.name(2));
    let mut tasks = Vec::new();
    for i in [0, 1] {
        let ms = sim.between(Duration::from_secs(2), Duration::from_secs(6));
        let ms = u64::try_from(ms.as_millis())?;
        let started =
            TaskSupervisor::async_on::<_, u64>(cluster.node(i), target, "Work", "sleep_ms", ms)
                .await;
        sim.record(format_args!(
            "{} starts a {ms} ms task on node 2: {}",
            cluster.name(i),
            if started.is_ok() {
                "started"
            } else {
                "not started"
            }
        ));
        tasks.push((i, started));
    }
    sim.sleep_between(Duration::from_millis(100), Duration::from_millis(1500))
        .await;
    sim.record("kill node 2");
    cluster.kill(2).await?;
    for (i, started) in tasks {
        let outcome = match started {
            Ok(task) => match tokio::time::timeout(DEADLINE, task).await {
                Ok(Ok(ms)) => format!("finished after {ms} ms"),
                Ok(Err(e)) => format!("failed: {e}"),
                Err(_) => "no answer".into(),
            },
            Err(e) => format!("never started: {e}"),
        };
        sim.record(format_args!("{}'s task: {outcome}", cluster.name(i)));
    }
    cluster.restart(2).await?;
    sim.watch_node(&cluster, 2);
    cluster.await_mesh(DEADLINE).await?;
    // Under message loss the first task on the restarted node may fail, but only as a lost
    // frame explains: its start request or start answer lost (`Unconfirmed`), or its result
    // (`Timeout`); never `NoConnection` while node 2 is up. (Seeds 10 and 21 lost the start
    // answer: the result came alone, and the start used to fail `NoConnection`.)
    let target = ("Sup", cluster.name(2));
    // `10u64`, the function's own type: a bare `10` is an `i32`, whose encoding the `u64`
    // function decodes as 20 (arguments by name are checked by their bytes only).
    let answer = match TaskSupervisor::async_on::<_, u64>(
        cluster.node(0),
        target,
        "Work",
        "sleep_ms",
        10u64,
    )
    .await
    {
        // The task's own await is bounded (5 s, then `Timeout`); DEADLINE bounds it again.
        Ok(task) => tokio::time::timeout(DEADLINE, task)
            .await
            .map_err(|_| "no answer within DEADLINE".to_string())?,
        Err(e) => Err(e),
    };
    let up = cluster.node(0).list().contains(cluster.name(2));
    sim.record(format_args!(
        "after the restart: {:?}",
        answer.as_ref().map_err(ToString::to_string)
    ));
    let explained = match &answer {
        Ok(ms) => *ms == 10,
        Err(TaskError::Unconfirmed { .. } | TaskError::Timeout { .. }) => true,
        // Lost ticks could take node 2 down again: then, and only then, no connection.
        Err(TaskError::NoConnection { .. }) => !up,
        Err(_) => false,
    };
    if !explained {
        return Err(format!(
            "after the restart, node 2 {} and its first task gave {answer:?}: no lost frame explains it",
            if up { "is up" } else { "is not listed" }
        )
        .into());
    }
    cluster.shutdown().await;
    Ok(())
}

#[test]
fn a_node_killed_mid_task_replays_from_its_seed() {
    let trace = replays(37, killed);
    assert!(
        trace.events().iter().any(|e| e.contains("kill node 2")),
        "{trace}"
    );
}

/// The seeds whose first task on the restarted node lost its start answer (the result came
/// alone) and failed `NoConnection` to a node that was up, before the node's machine made it
/// `Unconfirmed`: the scenario's checks hold for them.
#[test]
fn the_kill_scenario_seeds_that_lost_a_start_answer_pass() {
    for seed in [10, 21] {
        let run = Simulation::seeded(seed).command(COMMAND).run(killed);
        if let Err(e) = run {
            panic!("{e}");
        }
    }
}

/// Twenty remote tasks under 20 % message loss, asserting (wrongly) that all of them
/// answer: fails, with its seed and the command that replays it.
async fn lossy(sim: Sim) -> Outcome {
    let cluster: LocalCluster = sim
        .cluster("simloss")
        .nodes(2)
        .on_start(work)
        .start()
        .await?;
    sim.watch(&cluster);
    cluster.await_mesh(DEADLINE).await?;
    sim.chaos(&cluster, Chaos::new().loss(0.2))?;
    let mut answered = 0;
    for k in 0..20u64 {
        let target = ("Sup", cluster.name(1));
        let started = tokio::time::timeout(
            Duration::from_secs(5),
            TaskSupervisor::async_on::<_, u64>(cluster.node(0), target, "Work", "sleep_ms", k),
        )
        .await;
        let answer = match started {
            Ok(Ok(task)) => tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .ok(),
            _ => None,
        };
        sim.record(format_args!("task {k}: {answer:?}"));
        answered += usize::from(matches!(answer, Some(Ok(_))));
    }
    cluster.shutdown().await;
    if answered < 20 {
        return Err(format!("only {answered} of 20 tasks answered").into());
    }
    Ok(())
}

#[test]
#[ignore = "fails on purpose, to show a failing simulation's seed and replay command: run with --ignored"]
fn a_lossy_simulation_fails_with_its_seed() {
    if let Err(e) = simulation(5).run(lossy) {
        panic!("{e}");
    }
}

/// The failure above, as a test that passes: it fails, names its seed and the replay command,
/// and fails the same way (to the last trace event and virtual microsecond) when replayed.
#[test]
fn a_failing_simulation_replays_its_failure() {
    let sim = simulation(5);
    let seed = sim.seed();
    let first = sim.clone().run(lossy).expect_err("20 % loss loses a task");
    let again = sim.run(lossy).expect_err("and again");
    assert!(matches!(first, SimError::Failed { .. }), "{first}");
    assert_eq!(first.seed(), Some(seed));
    let replay = format!(
        "NODUS_SIM_SEED={seed} {COMMAND} sim::a_failing_simulation_replays_its_failure -- --exact"
    );
    assert_eq!(first.replay(), Some(replay.as_str()));
    let (ours, theirs) = (first.trace().unwrap(), again.trace().unwrap());
    if let Some(d) = ours.first_difference(theirs) {
        let window = |t: &Trace| {
            t.events()[d.at.saturating_sub(20)..]
                .iter()
                .take(24)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        };
        panic!(
            "seed {seed}: the failure did not replay; first difference at {}:\n{}\n---- again:\n{}",
            d.at,
            window(ours),
            window(theirs)
        );
    }
    assert_eq!(first.to_string(), again.to_string());
}
