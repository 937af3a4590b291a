//! Actors as capable as a GenServer, on one node: the handler context of `#[nodus::actor]`
//! (self, caller, monitors with real exit reasons, links and trapped exits, timers,
//! `continue`, stop with a reason, `init`, `info`) and `puts!` inside an actor.

use std::{future::Future, time::Duration};

use nodus::{
    core::io::Output, Caller, Context, Destination, ExitReason, Info, Pid, Ref, Supervisor,
    SupervisorSpec, System, SystemConfig,
};

type Res = Result<(), Box<dyn std::error::Error>>;

const DEADLINE: Duration = Duration::from_secs(5);

/// Polls `f` until it gives `Some`, for at most [`DEADLINE`].
async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = tokio::time::Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await; // the poll interval
    }
}

#[derive(Clone, Default)]
struct Probe {
    log: Vec<String>,
    infos: Vec<Info>,
}

#[nodus::actor]
impl Probe {
    #[init]
    fn init(&mut self, ctx: &mut Context) {
        self.log.push(format!("init on {}", ctx.node()));
    }

    #[info]
    fn info(&mut self, info: Info) {
        self.infos.push(info);
    }

    pub fn pid(&self, ctx: &mut Context) -> Pid {
        ctx.pid().clone()
    }

    pub fn watch(&mut self, ctx: &mut Context, dest: Destination) -> Ref {
        ctx.monitor(dest)
    }

    pub fn unwatch(&mut self, ctx: &mut Context, r: Ref) -> bool {
        ctx.demonitor(r)
    }

    #[call]
    pub fn link_to(&mut self, ctx: &mut Context, other: Pid) {
        ctx.link(&other);
    }

    #[call]
    pub fn unlink_from(&mut self, ctx: &mut Context, other: Pid) {
        ctx.unlink(&other);
    }

    pub fn trap(&mut self, ctx: &mut Context, on: bool) -> bool {
        ctx.trap_exit(on)
    }

    pub fn infos(&self) -> Vec<Info> {
        self.infos.clone()
    }

    pub fn log(&self) -> Vec<String> {
        self.log.clone()
    }

    pub fn note(&mut self, line: String) {
        self.log.push(line);
    }

    pub fn fail(&mut self) {
        panic!("the probe failed on purpose");
    }

    pub fn quit(&mut self, ctx: &mut Context, reason: ExitReason) -> String {
        ctx.stop(reason);
        "bye".to_string()
    }

    pub fn who(&self, ctx: &mut Context) -> Option<Caller> {
        ctx.caller().cloned()
    }

    pub async fn ask_who(&mut self, ctx: &mut Context, other: Pid) -> Option<Caller> {
        let system = ctx.system()?;
        Probe::client(&system, other).who().await.ok().flatten()
    }

    pub fn note_after(&mut self, ctx: &mut Context, ms: u64, line: String) -> Ref {
        ctx.send_after(Duration::from_millis(ms), ProbeMsg::Note(line))
    }

    pub fn cancel(&mut self, ctx: &mut Context, r: Ref) -> bool {
        ctx.cancel_timer(r)
    }

    #[call]
    pub fn chain(&mut self, ctx: &mut Context) {
        self.log.push("chain".into());
        ctx.continue_with(ProbeMsg::Note("continued".into()));
    }

    pub fn say(&self) {
        nodus::puts!("hello from an actor");
    }
}

async fn system() -> Result<System, Box<dyn std::error::Error>> {
    Ok(System::start(SystemConfig::named("gen@localhost")?).await?)
}

async fn probe(
    system: &System,
    name: Option<&str>,
) -> Result<(ProbeClient, Pid), Box<dyn std::error::Error>> {
    let client = Probe::spawn(system, name, Probe::default()).await?;
    let pid = client.pid().await?;
    Ok((client, pid))
}

/// The reason a monitor of `pid` reports.
async fn reason_of(system: &System, pid: &Pid) -> ExitReason {
    tokio::time::timeout(DEADLINE, system.monitor(pid.clone()))
        .await
        .map(|down| down.reason)
        .unwrap_or_else(|_| panic!("{pid} did not go down in time"))
}

#[tokio::test]
async fn init_runs_before_the_first_message_and_knows_its_node() -> Res {
    let system = system().await?;
    let (probe, _) = probe(&system, None).await?;
    assert_eq!(probe.log().await?, ["init on gen@localhost"]);
    system.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn monitors_see_the_real_exit_reason() -> Res {
    let system = system().await?;
    // A panic: the message.
    let (a, pid_a) = probe(&system, None).await?;
    let monitor = system.monitor(pid_a.clone());
    a.fail().await?;
    let reason = tokio::time::timeout(DEADLINE, monitor).await?.reason;
    assert!(
        matches!(&reason, ExitReason::Failed(m) if m.contains("the probe failed on purpose")),
        "{reason:?}"
    );
    // A stop with a reason of its own, and a normal stop, after the reply.
    let (b, pid_b) = probe(&system, None).await?;
    let monitor = system.monitor(pid_b.clone());
    assert_eq!(b.quit(ExitReason::Stopped("done".into())).await?, "bye");
    assert_eq!(
        tokio::time::timeout(DEADLINE, monitor).await?.reason,
        ExitReason::Stopped("done".into())
    );
    let (c, pid_c) = probe(&system, None).await?;
    let monitor = system.monitor(pid_c.clone());
    c.quit(ExitReason::Normal).await?;
    assert_eq!(
        tokio::time::timeout(DEADLINE, monitor).await?.reason,
        ExitReason::Normal
    );
    // Killed.
    let (_d, pid_d) = probe(&system, Some("d")).await?;
    let monitor = system.monitor(pid_d.clone());
    system.resolve(&Destination::from("d"))?.kill();
    assert_eq!(
        tokio::time::timeout(DEADLINE, monitor).await?.reason,
        ExitReason::Killed
    );
    // Shutdown: stopped by its supervisor.
    let sup = Supervisor::start(
        &system,
        None,
        SupervisorSpec::default().child(Probe::child_spec("p", Probe::default()).name("sup.p")),
    )
    .await?;
    let pid_e = Probe::client(&system, "sup.p").pid().await?;
    let monitor = system.monitor(pid_e.clone());
    sup.stop(Some("shutdown".into()));
    assert_eq!(
        tokio::time::timeout(DEADLINE, monitor).await?.reason,
        ExitReason::Shutdown
    );
    // A monitor set after the exit: noproc.
    assert_eq!(reason_of(&system, &pid_a).await, ExitReason::NoProc);
    system.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_monitor_set_by_an_actor_arrives_as_info_and_demonitor_stops_it() -> Res {
    let system = system().await?;
    let (watcher, _) = probe(&system, None).await?;
    let (target, pid_t) = probe(&system, None).await?;
    let (other, pid_o) = probe(&system, None).await?;
    let r = watcher.watch(Destination::Pid(pid_t.clone())).await?;
    let r_other = watcher.watch(Destination::Pid(pid_o.clone())).await?;
    assert!(watcher.unwatch(r_other).await?);
    assert!(
        !watcher.unwatch(r_other).await?,
        "a second demonitor finds nothing"
    );
    other.fail().await?;
    target.fail().await?;
    let infos = eventually("the Down info", || async {
        let infos = watcher.infos().await.ok()?;
        (!infos.is_empty()).then_some(infos)
    })
    .await;
    // The target's Down arrived; the demonitored one's never does (it failed first).
    match &infos[..] {
        [Info::Down {
            monitor,
            dest,
            reason,
        }] => {
            assert_eq!(*monitor, r);
            assert_eq!(*dest, Destination::Pid(pid_t));
            assert!(matches!(reason, ExitReason::Failed(_)), "{reason:?}");
        }
        other => panic!("expected one Down, got {other:?}"),
    }
    // A monitor of nothing: noproc at once.
    watcher.watch(Destination::from("nobody")).await?;
    eventually("the noproc Down", || async {
        let infos = watcher.infos().await.ok()?;
        infos
            .iter()
            .any(|i| {
                matches!(
                    i,
                    Info::Down {
                        reason: ExitReason::NoProc,
                        ..
                    }
                )
            })
            .then_some(())
    })
    .await;
    system.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn an_abnormal_exit_takes_linked_actors_down_with_the_same_reason() -> Res {
    let system = system().await?;
    let (a, pid_a) = probe(&system, None).await?;
    let (b, pid_b) = probe(&system, None).await?;
    a.link_to(pid_b.clone()).await?;
    let monitor_a = system.monitor(pid_a.clone());
    b.fail().await?;
    let reason = tokio::time::timeout(DEADLINE, monitor_a).await?.reason;
    assert!(
        matches!(&reason, ExitReason::Failed(m) if m.contains("on purpose")),
        "a linked actor dies with the same reason: {reason:?}"
    );
    drop(a);
    system.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_normal_exit_leaves_linked_actors_alone() -> Res {
    let system = system().await?;
    let (a, _) = probe(&system, None).await?;
    let (b, pid_b) = probe(&system, None).await?;
    a.link_to(pid_b.clone()).await?;
    let monitor_b = system.monitor(pid_b.clone());
    b.quit(ExitReason::Normal).await?;
    tokio::time::timeout(DEADLINE, monitor_b).await?;
    // `a` still answers, after `b`'s exit was handled.
    assert_eq!(a.log().await?.len(), 1);
    system.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_trapping_actor_receives_exits_as_info() -> Res {
    let system = system().await?;
    let (a, pid_a) = probe(&system, None).await?;
    assert!(!a.trap(true).await?);
    let (b, pid_b) = probe(&system, None).await?;
    a.link_to(pid_b.clone()).await?;
    b.quit(ExitReason::Stopped("gone".into())).await?;
    let infos = eventually("the Exit info", || async {
        let infos = a.infos().await.ok()?;
        (!infos.is_empty()).then_some(infos)
    })
    .await;
    assert_eq!(
        infos,
        [Info::Exit {
            from: pid_b,
            reason: ExitReason::Stopped("gone".into())
        }]
    );
    // Linking to an actor that is not alive: an exit noproc.
    let (c, pid_c) = probe(&system, None).await?;
    let monitor_c = system.monitor(pid_c.clone());
    c.quit(ExitReason::Normal).await?;
    tokio::time::timeout(DEADLINE, monitor_c).await?;
    a.link_to(pid_c.clone()).await?;
    eventually("the noproc Exit", || async {
        let infos = a.infos().await.ok()?;
        infos
            .contains(&Info::Exit {
                from: pid_c.clone(),
                reason: ExitReason::NoProc,
            })
            .then_some(())
    })
    .await;
    // And a non-trapping actor linking to a dead one stops with noproc.
    let (d, pid_d) = probe(&system, None).await?;
    let monitor_d = system.monitor(pid_d.clone());
    d.link_to(pid_c).await?;
    assert_eq!(
        tokio::time::timeout(DEADLINE, monitor_d).await?.reason,
        ExitReason::NoProc
    );
    assert!(
        system.resolve(&Destination::Pid(pid_a)).is_ok(),
        "the trapping actor lives"
    );
    system.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn unlink_removes_both_sides() -> Res {
    let system = system().await?;
    let (a, pid_a) = probe(&system, None).await?;
    let (b, pid_b) = probe(&system, None).await?;
    a.link_to(pid_b.clone()).await?;
    // Unlinked from b's side: a must survive a's... b's failure.
    let monitor_b = system.monitor(pid_b.clone());
    b.unlink_from(pid_a.clone()).await?;
    b.fail().await?;
    tokio::time::timeout(DEADLINE, monitor_b).await?;
    assert_eq!(a.log().await?.len(), 1, "a is alive and answers");
    system.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn the_caller_of_a_call_is_known() -> Res {
    let system = system().await?;
    let (a, pid_a) = probe(&system, None).await?;
    let (_b, pid_b) = probe(&system, None).await?;
    // From outside any actor: the node only.
    let from_outside = Probe::client(&system, pid_b.clone()).who().await?;
    let from_outside = from_outside.ok_or("a call has a caller")?;
    assert_eq!(from_outside.node(), system.node());
    assert_eq!(from_outside.pid(), None);
    // From inside actor a: a's pid.
    let from_a = a.ask_who(pid_b).await?.ok_or("a call has a caller")?;
    assert_eq!(from_a.pid(), Some(&pid_a));
    system.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn timers_fire_once_and_cancelled_ones_never() -> Res {
    let system = system().await?;
    let (a, _) = probe(&system, None).await?;
    let early = a.note_after(10, "early".into()).await?;
    assert!(a.cancel(early).await?, "cancelled before it fired");
    a.note_after(40, "late".into()).await?;
    let log = eventually("the late timer", || async {
        let log = a.log().await.ok()?;
        log.contains(&"late".to_string()).then_some(log)
    })
    .await;
    // The cancelled timer was due first: had it fired, it would be in the log already.
    assert_eq!(log, ["init on gen@localhost", "late"]);
    let fired = a.note_after(1, "once".into()).await?;
    eventually("the second timer", || async {
        a.log()
            .await
            .ok()?
            .contains(&"once".to_string())
            .then_some(())
    })
    .await;
    assert!(!a.cancel(fired).await?, "a fired timer cannot be cancelled");
    system.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn continue_runs_before_any_other_message() -> Res {
    let system = system().await?;
    let (a, _) = probe(&system, None).await?;
    // The note is queued behind the chain call; the continue still goes first.
    let (chain, note) = tokio::join!(a.chain(), a.note("after".into()));
    chain?;
    note?;
    assert_eq!(
        a.log().await?,
        ["init on gen@localhost", "chain", "continued", "after"]
    );
    system.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn puts_in_an_actor_writes_to_its_nodes_output() -> Res {
    let system = system().await?;
    let (output, captured) = Output::capture();
    system.set_output(output);
    let (a, _) = probe(&system, None).await?;
    a.say().await?;
    a.log().await?; // the cast was handled
    assert_eq!(captured.lines(), ["hello from an actor"]);
    system.shutdown().await;
    Ok(())
}
