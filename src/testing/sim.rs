//! Deterministic simulation: a [`LocalCluster`] on the in-memory transport under one seeded
//! scheduler with virtual time, so that a test with partitions, kills, delays and message loss
//! replays exactly from its seed.
//!
//! A [`Simulation`] takes its seed from `NODUS_SIM_SEED` ([`SEED_VAR`]) when it is set, or
//! from the test. [`Simulation::run`] builds a fresh runtime for it and runs the test's body
//! there, handing it a [`Sim`]: the seeded RNG every random choice of the test and of the
//! injected faults comes from, and a [`Trace`] of what was observed (node up and down events
//! of every node, each fault the chaos policy decided, what the test records), each stamped
//! with its virtual time. A body that fails, panics or runs past its virtual time limit
//! becomes a [`SimError`] whose message names the seed and the command that replays it:
//!
//! ```text
//! simulation with seed 17 failed: the leader is on two nodes
//!   replay it with: NODUS_SIM_SEED=17 cargo test --features testing --test it sim::partition -- --exact
//! ```
//!
//! ```
//! use std::time::Duration;
//! use nodus::testing::sim::{Chaos, Simulation};
//!
//! let run = |seed| {
//!     Simulation::seeded(seed).run(|sim| async move {
//!         let cluster = sim.cluster("doc").nodes(3).start().await?;
//!         sim.watch(&cluster);
//!         sim.chaos(&cluster, Chaos::new().delay(0.5, Duration::from_millis(40)))?;
//!         cluster.await_mesh(Duration::from_secs(30)).await?;
//!         sim.record(format_args!("meshed, {} peers", cluster.node(0).list().len()));
//!         cluster.shutdown().await;
//!         Ok::<_, Box<dyn std::error::Error>>(())
//!     })
//! };
//! let (first, again) = (run(7)?, run(7)?);
//! assert_eq!(first, again, "{:?}", first.first_difference(&again));
//! # Ok::<(), nodus::testing::sim::SimError>(())
//! ```
//!
//! # Why tokio's paused clock, not turmoil or madsim
//!
//! The runtime is tokio's `current_thread` scheduler with its clock paused
//! (`start_paused`): one thread polls every task of every node in an order fixed by the
//! wake-ups, and when no task can run the clock jumps to the next timer (auto-advance), so a
//! minute of ticks and timeouts takes milliseconds and always lands on the same instants.
//! Everything nodus does runs on tokio already (ractor 0.16 spawns its actors with
//! `tokio::spawn`, and its `select!`s are all `biased`), and the in-memory transport gives the
//! network without sockets, so nothing has to be swapped out.
//!
//! - *madsim* replaces tokio itself (`madsim-tokio`, built with `--cfg madsim`): every crate
//!   that names tokio, ractor included, would have to be patched to it; ractor 0.16 is not.
//! - *turmoil* simulates hosts and a network of its own sockets, each host on its own runtime;
//!   nodus already has the network (the in-memory transport, the same handshake, framing and
//!   ticks as TCP, and the [`Faults`] shim), and its own
//!   scheduler order still rests on tokio's.
//!
//! Both would add a large dependency to what the paused clock gives with none.
//!
//! # What is deterministic, and what is not
//!
//! Given one seed, the order tasks run in, every virtual instant, every choice drawn from
//! [`Sim`], and so every fault the chaos policy ([`Chaos`]) injects are the same on every run:
//! the policy draws from the one RNG in the order the sessions ask, which the scheduler fixes.
//! A simulation's node names are fixed too ([`Sim::cluster`] pins the cluster's number to the
//! seed): names order the simultaneous-connect rule and placement.
//!
//! What stays random, and why it does not reach the trace:
//!
//! - tokio's `select!` picks a random first branch among those ready at once (its seed,
//!   `Builder::rng_seed`, needs `--cfg tokio_unstable`); where that choice could change what
//!   a node does the `select!`s of nodus are `biased` (the handshake's read against its
//!   deadline, a session's write against its tick, the cluster supervisor's events).
//! - `HashMap` iteration order differs on every map. The node's machine keeps its peers,
//!   requests and served work in ordered maps, so a shutdown, a node down or expired
//!   deadlines act in name and id order. Left in hash order, outside what the tests here
//!   cover: the exit signals of an actor with several links (actor-core's process table),
//!   the purge of several stale nodes by the name server, and the order in which ractor stops
//!   a supervisor's children; a scenario that depends on those may not replay.
//! - Handshake challenges and trace ids come from the OS RNG; they change bytes on the wire,
//!   never what happens.
//! - Actor ids are numbered by one counter for the whole process (ractor's), so a pid's
//!   number depends on what ran before in the process: record a pid by its node, as the
//!   tests do, not by its number.
//!
//! The tests (`tests/it/sim.rs`) prove it the honest way: two runs of each scenario with one
//! seed must give identical traces, and another seed a different one.
//!
//! Keep the body to the runtime it is given: a thread of its own, `spawn_blocking`, real
//! sockets or `std::time` would make the run depend on the machine again.

use std::{
    fmt,
    future::Future,
    panic::{self, AssertUnwindSafe},
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use actor_remote::{
    transport::{Fate, Faults},
    NodeEvent,
};
use tokio::{sync::broadcast::error::RecvError, time::Instant};

use super::{ClusterBuilder, ClusterError, LocalCluster};

/// The environment variable that, when set, gives every [`Simulation::from_env`] its seed:
/// how a failed simulation is replayed.
pub const SEED_VAR: &str = "NODUS_SIM_SEED";

/// The most events a [`Trace`] keeps; past it, one last line says the trace is full.
pub const MAX_TRACE: usize = 200_000;

/// How many of the last trace events a [`SimError`] shows.
const TAIL: usize = 30;

/// The default bound on a simulation's virtual time.
const DEFAULT_TIME_LIMIT: Duration = Duration::from_secs(600);

/// A simulation failed, or could not start.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// `NODUS_SIM_SEED` is set to something that is not a number.
    #[error("{SEED_VAR}={value:?} is not a seed; set it to a number (u64), or unset it")]
    BadSeed {
        /// What the variable held.
        value: String,
    },
    /// The runtime could not be built.
    #[error("the simulation's runtime could not start: {0}")]
    Runtime(#[source] std::io::Error),
    /// The body returned an error.
    #[error("simulation with seed {seed} failed: {reason}\n  replay it with: {replay}\n  the last trace events:\n{tail}")]
    Failed {
        /// The seed.
        seed: u64,
        /// The command that runs it again with the same seed.
        replay: String,
        /// The body's error.
        reason: String,
        /// The last events of its trace.
        tail: String,
        /// Its whole trace.
        trace: Trace,
    },
    /// The body panicked.
    #[error("simulation with seed {seed} panicked: {message}\n  replay it with: {replay}\n  the last trace events:\n{tail}")]
    Panicked {
        /// The seed.
        seed: u64,
        /// The command that runs it again with the same seed.
        replay: String,
        /// The panic's message.
        message: String,
        /// The last events of its trace.
        tail: String,
        /// Its whole trace.
        trace: Trace,
    },
    /// The body ran past the virtual time limit ([`Simulation::time_limit`]).
    #[error("simulation with seed {seed} ran past its virtual time limit of {limit:?} (a wait that never ends?)\n  replay it with: {replay}\n  the last trace events:\n{tail}")]
    TimeLimit {
        /// The seed.
        seed: u64,
        /// The command that runs it again with the same seed.
        replay: String,
        /// The limit.
        limit: Duration,
        /// The last events of its trace.
        tail: String,
        /// Its whole trace.
        trace: Trace,
    },
}

/// The message itself: a test that returns this error prints its `Debug`, and should show the
/// seed and the replay command readably.
impl fmt::Debug for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl SimError {
    /// The seed of the simulation that failed (`None` if it never ran).
    pub fn seed(&self) -> Option<u64> {
        match self {
            Self::Failed { seed, .. }
            | Self::Panicked { seed, .. }
            | Self::TimeLimit { seed, .. } => Some(*seed),
            Self::BadSeed { .. } | Self::Runtime(_) => None,
        }
    }

    /// The whole trace of the simulation that failed: a replay must give the same.
    pub fn trace(&self) -> Option<&Trace> {
        match self {
            Self::Failed { trace, .. }
            | Self::Panicked { trace, .. }
            | Self::TimeLimit { trace, .. } => Some(trace),
            Self::BadSeed { .. } | Self::Runtime(_) => None,
        }
    }

    /// The command that replays the simulation that failed.
    pub fn replay(&self) -> Option<&str> {
        match self {
            Self::Failed { replay, .. }
            | Self::Panicked { replay, .. }
            | Self::TimeLimit { replay, .. } => Some(replay),
            Self::BadSeed { .. } | Self::Runtime(_) => None,
        }
    }
}

/// One simulation to run: its seed, how to replay it, and its virtual time limit. See the
/// [module documentation](self).
#[derive(Debug, Clone)]
pub struct Simulation {
    seed: u64,
    command: String,
    test: Option<String>,
    time_limit: Duration,
}

impl Simulation {
    /// A simulation with this seed, whatever the environment says.
    pub fn seeded(seed: u64) -> Self {
        Self {
            seed,
            command: "cargo test".into(),
            test: None,
            time_limit: DEFAULT_TIME_LIMIT,
        }
    }

    /// A simulation with the seed in `NODUS_SIM_SEED` if it is set, `default` otherwise:
    /// tests run their own seeds, and a failure is replayed with the variable.
    ///
    /// # Errors
    /// [`SimError::BadSeed`] if the variable is set to something other than a `u64`.
    pub fn from_env(default: u64) -> Result<Self, SimError> {
        match std::env::var(SEED_VAR) {
            Ok(value) => value
                .trim()
                .parse()
                .map(Self::seeded)
                .map_err(|_| SimError::BadSeed { value }),
            Err(_) => Ok(Self::seeded(default)),
        }
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The command that runs this test (default `cargo test`), for the replay line of a
    /// failure: `NODUS_SIM_SEED=<seed> <command> <test> -- --exact`, the test being the
    /// current thread's name (libtest names each test's thread after the test) or
    /// [`Simulation::test`].
    pub fn command(mut self, command: &str) -> Self {
        self.command = command.into();
        self
    }

    /// The test's name for the replay line, when the thread's name is not it.
    pub fn test(mut self, name: &str) -> Self {
        self.test = Some(name.into());
        self
    }

    /// How much virtual time the body may take (default 10 minutes); past it, the run is
    /// [`SimError::TimeLimit`].
    pub fn time_limit(mut self, limit: Duration) -> Self {
        self.time_limit = limit;
        self
    }

    /// The command that replays this simulation.
    pub fn replay(&self) -> String {
        let test = self
            .test
            .clone()
            .or_else(|| {
                std::thread::current()
                    .name()
                    .filter(|n| *n != "main")
                    .map(str::to_string)
            })
            .map(|t| format!(" {t} -- --exact"))
            .unwrap_or_default();
        format!("{SEED_VAR}={} {}{test}", self.seed, self.command)
    }

    /// Runs `body` on a fresh single-threaded runtime with a paused clock, and returns its
    /// trace. Every node, task and timer the body starts must live on that runtime (the
    /// default for everything `tokio::spawn`s); when the body ends the runtime is dropped with
    /// whatever still runs on it.
    ///
    /// # Errors
    /// [`SimError::Failed`], [`SimError::Panicked`] or [`SimError::TimeLimit`], each naming the
    /// seed and the replay command; [`SimError::Runtime`] if no runtime could be built.
    pub fn run<F, Fut, E>(self, body: F) -> Result<Trace, SimError>
    where
        F: FnOnce(Sim) -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: fmt::Display,
    {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .map_err(SimError::Runtime)?;
        // Created inside the runtime, so its start is on the virtual clock.
        let sim = runtime.block_on(async { Sim::start(self.seed) });
        let limit = self.time_limit;
        let handle = sim.clone();
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
            // The body's future and the limit's timer are made inside the runtime.
            runtime.block_on(async move { tokio::time::timeout(limit, body(handle)).await })
        }));
        drop(runtime);
        let trace = sim.trace();
        let (seed, replay, tail) = (self.seed, self.replay(), trace.tail(TAIL));
        match outcome {
            Ok(Ok(Ok(()))) => Ok(trace),
            Ok(Ok(Err(e))) => Err(SimError::Failed {
                seed,
                replay,
                reason: e.to_string(),
                tail,
                trace,
            }),
            Ok(Err(_)) => Err(SimError::TimeLimit {
                seed,
                replay,
                limit,
                tail,
                trace,
            }),
            Err(payload) => {
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic without a message".into());
                Err(SimError::Panicked {
                    seed,
                    replay,
                    message,
                    tail,
                    trace,
                })
            }
        }
    }
}

/// SplitMix64: small, fast, and every seed (0 included) gives a full-period stream. Not for
/// secrets.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// A running simulation: its seeded RNG and its trace. Cheap to clone; clones share both.
#[derive(Clone)]
pub struct Sim {
    inner: Arc<Shared>,
}

struct Shared {
    seed: u64,
    rng: Mutex<SplitMix64>,
    trace: Mutex<Vec<String>>,
    start: Instant,
}

impl fmt::Debug for Sim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sim")
            .field("seed", &self.inner.seed)
            .field("now", &self.now())
            .finish_non_exhaustive()
    }
}

impl Sim {
    fn start(seed: u64) -> Self {
        Self {
            inner: Arc::new(Shared {
                seed,
                rng: Mutex::new(SplitMix64(seed)),
                trace: Mutex::new(Vec::new()),
                start: Instant::now(),
            }),
        }
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.inner.seed
    }

    fn next(&self) -> u64 {
        self.inner
            .rng
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .next()
    }

    /// A number in `0..n` (0 if `n` is 0), from the simulation's RNG.
    pub fn below(&self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }

    /// `true` with probability `p` (clamped to 0..=1).
    pub fn chance(&self, p: f64) -> bool {
        let unit = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        unit < p.clamp(0.0, 1.0)
    }

    /// A duration in `lo..=hi`, to the microsecond (`lo` if `hi` is not above it).
    pub fn between(&self, lo: Duration, hi: Duration) -> Duration {
        let span = hi.saturating_sub(lo).as_micros();
        let span = u64::try_from(span).unwrap_or(u64::MAX);
        lo + Duration::from_micros(self.below(span.saturating_add(1)))
    }

    /// The virtual time since the simulation started.
    pub fn now(&self) -> Duration {
        self.inner.start.elapsed()
    }

    /// Appends an event to the trace, stamped with the virtual time.
    pub fn record(&self, event: impl fmt::Display) {
        let now = self.now();
        let mut trace = self
            .inner
            .trace
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match trace.len() {
            n if n < MAX_TRACE => trace.push(format!(
                "{:>5}.{:06} {event}",
                now.as_secs(),
                now.subsec_micros()
            )),
            MAX_TRACE => trace.push(format!("the trace is full ({MAX_TRACE} events)")),
            _ => {}
        }
    }

    /// The trace so far.
    pub fn trace(&self) -> Trace {
        Trace {
            events: self
                .inner
                .trace
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        }
    }

    /// A cluster builder for this simulation: in-memory nodes (no sockets, no port mapper)
    /// named `PREFIX1_SEED@localhost`, … so every run of the seed names them alike. Give each
    /// test its own prefix: two live clusters of one name mix their captured logs.
    pub fn cluster(&self, prefix: &str) -> ClusterBuilder {
        LocalCluster::builder()
            .memory()
            .prefix(prefix)
            .cluster_id(self.seed())
    }

    /// Records every node event (up, down and why) of every in-process node of `cluster` in
    /// the trace, from now on. After [`LocalCluster::restart`], watch the new node with
    /// [`Sim::watch_node`].
    pub fn watch(&self, cluster: &LocalCluster) {
        for i in 0..cluster.len() {
            self.watch_node(cluster, i);
        }
    }

    /// Records the node events of node `i` of `cluster` (if it is a live in-process node).
    pub fn watch_node(&self, cluster: &LocalCluster, i: usize) {
        let Some(node) = cluster.try_node(i) else {
            return;
        };
        let mut events = node.events();
        let (sim, me) = (self.clone(), cluster.name(i).clone());
        tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(NodeEvent::NodeUp { node, .. }) => {
                        sim.record(format_args!("{me}: up {node}"))
                    }
                    Ok(NodeEvent::NodeDown { node, reason, .. }) => {
                        sim.record(format_args!("{me}: down {node} ({reason})"));
                    }
                    Ok(other) => sim.record(format_args!("{me}: {other:?}")),
                    Err(RecvError::Lagged(n)) => sim.record(format_args!("{me}: {n} events lost")),
                    Err(RecvError::Closed) => break,
                }
            }
        });
    }

    /// Installs `chaos` on every node of `cluster`: each read and write batch of their
    /// sessions (and each dial) is delayed or dropped as drawn from this simulation's RNG,
    /// and every such decision goes into the trace. It stays across
    /// [`LocalCluster::restart`].
    ///
    /// # Errors
    /// None today: [`ClusterError::NoMember`] cannot happen for the cluster's own indexes.
    pub fn chaos(&self, cluster: &LocalCluster, chaos: Chaos) -> Result<(), ClusterError> {
        for i in 0..cluster.len() {
            let faults: &Faults = cluster.faults(i)?;
            let (sim, me) = (self.clone(), cluster.name(i).clone());
            faults.set_chaos(Some(Arc::new(move |peer: &actor_core::NodeName| {
                let fate = chaos.decide(&sim);
                match fate {
                    Fate::Pass => {}
                    Fate::Delay(d) => sim.record(format_args!("chaos {me}~{peer}: delay {d:?}")),
                    Fate::Drop => sim.record(format_args!("chaos {me}~{peer}: drop")),
                }
                fate
            })));
        }
        Ok(())
    }

    /// Sleeps a duration drawn from `lo..=hi` (virtual time) and returns it.
    pub async fn sleep_between(&self, lo: Duration, hi: Duration) -> Duration {
        let d = self.between(lo, hi);
        tokio::time::sleep(d).await;
        d
    }
}

/// What [`Sim::chaos`] injects: each read and write batch of a session is dropped with
/// probability `loss`, else delayed with probability `delay` by up to `max_delay`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Chaos {
    loss: f64,
    delay: f64,
    max_delay: Duration,
}

impl Chaos {
    /// No loss, no delay.
    pub fn new() -> Self {
        Self::default()
    }

    /// Drops each read or write batch with probability `p` (message loss: the frames in it
    /// are gone, calls time out, a session missing its ticks goes down).
    pub fn loss(mut self, p: f64) -> Self {
        self.loss = p;
        self
    }

    /// Delays each read or write batch with probability `p`, by a duration up to `max`.
    pub fn delay(mut self, p: f64, max: Duration) -> Self {
        self.delay = p;
        self.max_delay = max;
        self
    }

    fn decide(&self, sim: &Sim) -> Fate {
        if self.loss > 0.0 && sim.chance(self.loss) {
            Fate::Drop
        } else if self.delay > 0.0 && sim.chance(self.delay) {
            Fate::Delay(sim.between(Duration::from_micros(1), self.max_delay))
        } else {
            Fate::Pass
        }
    }
}

/// What a simulation observed, in order, each event stamped with its virtual time.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Trace {
    events: Vec<String>,
}

/// Where two traces first differ: the index and each trace's event there (`None` past its
/// end).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// The index of the first event that differs.
    pub at: usize,
    /// This trace's event there.
    pub ours: Option<String>,
    /// The other trace's event there.
    pub theirs: Option<String>,
}

impl Trace {
    /// The events.
    pub fn events(&self) -> &[String] {
        &self.events
    }

    /// The number of events.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Where `other` first differs from this trace, or `None` if they are identical.
    pub fn first_difference(&self, other: &Trace) -> Option<Difference> {
        let longest = self.events.len().max(other.events.len());
        (0..longest)
            .find(|&i| self.events.get(i) != other.events.get(i))
            .map(|at| Difference {
                at,
                ours: self.events.get(at).cloned(),
                theirs: other.events.get(at).cloned(),
            })
    }

    /// The last `n` events, one per line, indented.
    fn tail(&self, n: usize) -> String {
        let skip = self.events.len().saturating_sub(n);
        let mut out = String::new();
        for event in &self.events[skip..] {
            out.push_str("    ");
            out.push_str(event);
            out.push('\n');
        }
        out
    }
}

impl fmt::Display for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for event in &self.events {
            writeln!(f, "{event}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_seed_one_stream_and_seeds_differ() {
        let draw = |seed| {
            let mut rng = SplitMix64(seed);
            (0..8).map(|_| rng.next()).collect::<Vec<_>>()
        };
        assert_eq!(draw(3), draw(3));
        assert_ne!(draw(3), draw(4));
        // The reference stream of SplitMix64 from seed 0.
        assert_eq!(draw(0)[0], 0xE220_A839_7B1D_CDAF);
    }

    #[test]
    fn draws_stay_in_range() {
        let sim = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap()
            .block_on(async { Sim::start(1) });
        for n in [1, 2, 7, 1000] {
            assert!((0..200).all(|_| sim.below(n) < n));
        }
        assert_eq!(sim.below(0), 0);
        let (lo, hi) = (Duration::from_millis(5), Duration::from_millis(9));
        assert!((0..200).all(|_| (lo..=hi).contains(&sim.between(lo, hi))));
        assert!(!(0..100).any(|_| sim.chance(0.0)));
        assert!((0..100).all(|_| sim.chance(1.0)));
    }

    #[test]
    fn the_first_difference_of_two_traces() {
        let a = Trace {
            events: vec!["x".into(), "y".into()],
        };
        let mut b = a.clone();
        assert_eq!(a.first_difference(&b), None);
        b.events.push("z".into());
        assert_eq!(
            a.first_difference(&b),
            Some(Difference {
                at: 2,
                ours: None,
                theirs: Some("z".into())
            })
        );
    }

    #[test]
    fn a_failure_names_its_seed_and_the_replay_command() {
        let err = Simulation::seeded(42)
            .command("cargo test --test it")
            .test("sim::x")
            .run(|sim| async move {
                sim.record("before");
                Err::<(), _>("it broke")
            })
            .unwrap_err();
        assert_eq!(err.seed(), Some(42));
        let text = err.to_string();
        assert!(text.contains("seed 42 failed: it broke"), "{text}");
        assert!(
            text.contains("NODUS_SIM_SEED=42 cargo test --test it sim::x -- --exact"),
            "{text}"
        );
        assert!(text.contains("before"), "{text}");

        let err = Simulation::seeded(5)
            .run(|sim| async move {
                assert_eq!(sim.seed(), 99, "boom");
                Ok::<(), String>(())
            })
            .unwrap_err();
        assert!(
            matches!(&err, SimError::Panicked { message, .. } if message.contains("boom")),
            "{err}"
        );

        let err = Simulation::seeded(6)
            .time_limit(Duration::from_secs(1))
            .run(|_| async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok::<(), String>(())
            })
            .unwrap_err();
        assert!(matches!(err, SimError::TimeLimit { .. }), "{err}");
    }
}
