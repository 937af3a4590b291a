//! Supervisors through the facade: the README's default restart intensity.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use nodus::prelude::*;
use nodus::ractor::ActorStatus;

/// A child that counts its starts and fails when told to.
#[derive(Clone)]
struct Flaky;

struct Crash;

impl Actor for Flaky {
    type Msg = Crash;
    type State = ();
    type Arguments = Arc<AtomicUsize>;

    async fn pre_start(
        &self,
        _: ActorRef<Crash>,
        starts: Arc<AtomicUsize>,
    ) -> Result<(), ActorProcessingErr> {
        starts.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<Crash>,
        _: Crash,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        Err("crashed on purpose".into())
    }
}

/// Polls `check` every millisecond of the (paused) clock, for at most one second of it: far
/// under the 5 s window, so the polling itself cannot slide restarts out of the window.
async fn until(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await; // polling interval, bounded
    }
    panic!("timed out waiting for {what}");
}

/// Crashes the child registered as `flaky` and waits until it has started `starts` times.
async fn crash_and_restart(system: &System, counter: &AtomicUsize, starts: usize) {
    system.cast("flaky", Crash).unwrap();
    until(&format!("start number {starts}"), || {
        counter.load(Ordering::SeqCst) == starts
            && system.registry().whereis_cell("flaky").is_some()
    })
    .await;
}

/// README: "restart intensity (default 3 in 5 s)". The clock is paused, so "within 5 s" does
/// not depend on the machine's load: three restarts within the window are made, a fourth
/// within it is one too many and the supervisor gives up (it stops; its exit reason is not
/// checked here). Mutations this catches: a default of 4 restarts (the fourth is made), of 2
/// (the third gives up), a window longer than 5 s (the restarts after the window has slid
/// count against the earlier ones) or a count that never slides.
#[tokio::test(start_paused = true)]
async fn the_default_restart_intensity_is_three_restarts_in_five_seconds() {
    let system = System::start(SystemConfig::default()).await.unwrap();
    let starts = Arc::new(AtomicUsize::new(0));
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .child(ChildSpec::new("flaky", Flaky, starts.clone()).name("flaky"));
    let sup = Supervisor::start(&system, Some("app"), spec).await.unwrap();
    until("the first start", || starts.load(Ordering::SeqCst) == 1).await;

    // Three restarts in a burst: all made.
    for n in 2..=4 {
        crash_and_restart(&system, &starts, n).await;
    }
    assert_eq!(sup.get_status(), ActorStatus::Running);

    // The window slides: 5 s later those three no longer count, and three more are made.
    tokio::time::advance(Duration::from_secs(5)).await;
    for n in 5..=7 {
        crash_and_restart(&system, &starts, n).await;
    }
    assert_eq!(sup.get_status(), ActorStatus::Running);

    // A fourth within 5 s of those: the supervisor gives up and stops, with no restart.
    system.cast("flaky", Crash).unwrap();
    until("the supervisor to stop", || {
        sup.get_status() == ActorStatus::Stopped
    })
    .await;
    assert_eq!(starts.load(Ordering::SeqCst), 7, "no fourth restart");
    assert!(system.registry().whereis_cell("app").is_none());
    system.shutdown().await;
}
