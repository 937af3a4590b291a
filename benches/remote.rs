//! Remote actors, remote tasks and the Moebi round trip between two nodus nodes in two OS
//! processes on loopback, against plain TCP in the same run (issue 4, item 7).
//!
//! ```sh
//! cargo bench --bench remote        # release mode; about 30 s
//! NODUS_BENCH_RUNTIME=current cargo bench --bench remote   # current-thread runtimes
//! NODUS_BENCH_SCALE=0.2 cargo bench --bench remote         # a fifth of the iterations
//! ```
//!
//! **Placement.** Every figure is measured twice in one run: once with both processes pinned
//! to CPU 0 (the bench starts the measuring process under `taskset -c 0`, as the workspace
//! forbids the `unsafe` of calling `sched_setaffinity`; its threads and the peer it starts
//! inherit the affinity), so that a wake-up never crosses CPUs,
//! and once unpinned (the affinity the bench was started with). The keys are prefixed
//! `pinned_` and `unpinned_`, and `pinned_cpus=`/`unpinned_cpus=` say where the processes
//! ran; the ratios come last. Plain TCP is measured in the same placement as nodus.
//!
//! The bench binary runs as three processes per placement: the one cargo starts only forwards the figures
//! (the Chat app prints each message it receives, `chicken?` included, on stdout, so the
//! measuring process's stdout is filtered down to its `key=value` lines); the measuring
//! process starts a port mapper on `127.0.0.1:0` and re-executes the binary as the peer,
//! passing the port mapper's address. The peer is the node `moebi@localhost`, with
//!
//! - an actor registered as `bench` that takes the registered remote message type
//!   `BenchMsg`: a cast of a 64-byte payload (counted), a call that echoes 64 bytes, and a
//!   call that answers how many casts it has counted so far;
//! - the Chat app (`examples/chat/app.rs`: `Chat.TaskSupervisor` and the `Chat` functions,
//!   moebi's included) and a registered function `Bench.echo` that returns its argument;
//! - a plain-TCP echo listener for the baseline.
//!
//! The measuring process is the node `bench@localhost`, running the Chat app too. Each round
//! measures each workload and, beside it, a plain-TCP baseline of the same shape, with the
//! order of baseline and subject alternating from one chunk and one round to the next so
//! that machine noise (and a warmer or colder machine) hits both alike:
//!
//! - `tcp_roundtrip_us`: ping-pong of 64-byte frames (u32 big-endian length, `TCP_NODELAY`,
//!   blocking sockets), µs per round trip, in chunks alternating with W1;
//! - W1 `call_roundtrip_us`: sequential `System::call` of the echo to `(bench, moebi)`;
//! - `tcp_frames_per_s`: 1,000,000 one-way 64-byte frames through a buffered writer until
//!   the peer confirms the count (W2's baseline);
//! - W2 `cast_msgs_per_s`: 1,000,000 `System::cast`s of 64 bytes back to back, until a call
//!   to the actor confirms it has counted them all;
//! - W3 `task_async_seq_us`: sequential `TaskSupervisor::async_on` of `Bench.echo` (64
//!   bytes) under moebi's `Chat.TaskSupervisor`, each awaited, µs per task;
//! - `tcp_c64_roundtrips_per_s`: 64-byte round trips with 64 in flight (W4's baseline);
//! - W4 `task_async_c64_tasks_per_s`: W3 with 64 tasks in flight;
//! - W5 `moebi_roundtrip_us`: `Chat::send_message("moebi@localhost", "hi")`, until this
//!   node's inbox receives moebi's `chicken?` (its task ran here, under this node's
//!   supervisor).
//!
//! Every figure is the median of the measured rounds (one untimed warm-up round first); then
//! come the ratios, each the median of the per-round ratios against the baseline measured in
//! the same round: `call_vs_tcp` (target ≤ 1.15), `cast_vs_tcp_frames`,
//! `task_c64_vs_tcp_c64` and `moebi_vs_task` (W5 over W3, target ≤ 2), each with the
//! placement's prefix. The absolute targets of W2 (3,000,000 casts/s) and W4
//! (30,000 tasks/s) are printed beside their figures, not used as denominators. No sleeps:
//! every step waits for the answer it needs, and every wait is bounded by a timeout.
//!
//! `NODUS_BENCH_RUNTIME=current` runs both nodes on current-thread tokio runtimes instead of
//! the default multi-thread ones.
//!
//! **Counting mode** (issue 13, item 6): wall-clock figures move with the machine's load;
//! allocations and instructions per message do not. `benches/remote_count.rs` is this bench
//! with a counting global allocator; with `NODUS_BENCH_COUNT=N` (or `cast:N`, `call:N` for
//! one workload only) it runs one pinned measuring process that, after a warm-up, sends `N`
//! casts (confirmed by a count call) and `N` sequential echo calls, and prints
//! `allocs_per_cast=`, `peer_allocs_per_cast=`, `allocs_per_call=`, `peer_allocs_per_call=`
//! (allocations and reallocations, this process and the peer's). Instructions per message
//! are the difference of two runs under `perf stat -e instructions:u` (which counts the peer
//! too, a child) with different `N`:
//!
//! ```sh
//! cargo bench --bench remote_count --no-run
//! NODUS_BENCH_COUNT=cast:20000 perf stat -x, -e instructions:u target/release/deps/remote_count-*
//! NODUS_BENCH_COUNT=cast:120000 perf stat -x, -e instructions:u target/release/deps/remote_count-*
//! ```

#[path = "support/two_process.rs"]
mod two_process;

#[path = "../examples/chat/app.rs"]
#[allow(dead_code)] // the bench uses part of the app
mod app;

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use futures::stream::{FuturesUnordered, StreamExt};
use nodus::core::{bridge_reply, codec, reply_port, RemoteMessage, ReplySink, SendErrorKind, Wire};
use nodus::prelude::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use nodus::remote::{port_mapper::PortMapperServer, Cookie, Node, NodeConfig};
use nodus::{Destination, TaskSupervisor};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use tokio::{io::AsyncReadExt, net::TcpListener};
use two_process::{
    baseline_first, exit_with_parent, median, median_ratio, on_runtime, runtime, say_ready,
    serve_baseline, start_peer, TcpClient, PAYLOAD,
};

/// The argument that makes the binary the peer node; the port mapper's address follows.
const PEER_ARG: &str = "--nodus-remote-peer";
/// The argument that makes the binary the measuring process; `pinned` or `unpinned` follows.
const MEASURE_ARG: &str = "--nodus-remote-measure";
/// Scales the iteration counts (a positive number; 1 by default).
const SCALE_ENV: &str = "NODUS_BENCH_SCALE";
/// The placements, in the order they are measured.
const PLACEMENTS: [&str; 2] = ["pinned", "unpinned"];
/// Counting mode: `N`, `cast:N` or `call:N` (see the module docs).
const COUNT_ENV: &str = "NODUS_BENCH_COUNT";
/// The placement argument of the counting mode's measuring process (pinned).
const COUNT_PLACEMENT: &str = "count";

/// How many allocations (and reallocations) this process has made so far: set by
/// `benches/remote_count.rs`, whose global allocator counts them; unset in this bench.
pub static ALLOCS: std::sync::OnceLock<fn() -> u64> = std::sync::OnceLock::new();

/// This process's allocations so far, 0 without a counting allocator.
fn allocs() -> u64 {
    ALLOCS.get().map_or(0, |count| count())
}

const COOKIE: &str = "nodus-bench";
const BENCH_NODE: &str = "bench@localhost";
/// The name of the peer's actor.
const ACTOR: &str = "bench";

/// Measured rounds (after one warm-up round).
const ROUNDS: usize = 5;
/// Round trips per round and variant (TCP, W1), in `CHUNKS` alternating chunks.
const ROUND_TRIPS: usize = 2_000;
const CHUNKS: usize = 10;
const CASTS: u64 = 1_000_000;
const TASKS_SEQ: usize = 1_000;
const TASKS_C64: usize = 20_000;
const IN_FLIGHT: usize = 64;
const MOEBI_TRIPS: usize = 300;

/// The bound on each call, task and inbox wait.
const TIMEOUT: Duration = Duration::from_secs(5);
/// The bound on W2's confirmation, which waits for every cast to be handled.
const CAST_CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);

const CAST_TARGET: f64 = 3_000_000.0;
const TASK_C64_TARGET: f64 = 30_000.0;

/// Runs the process the arguments say (the forwarder, the measuring process or the peer).
pub fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == PEER_ARG) {
        let epmd = args
            .get(i + 1)
            .and_then(|a| a.parse().ok())
            .expect("peer: the port mapper's address must follow --nodus-remote-peer");
        serve(epmd);
    } else if let Some(i) = args.iter().position(|a| a == MEASURE_ARG) {
        let placement = args
            .get(i + 1)
            .expect("measure: `pinned` or `unpinned` must follow --nodus-remote-measure");
        measure(placement);
    } else {
        forward_figures();
    }
}

// ---------------------------------------------------------------------------------------------
// The message type of the peer's actor.

/// What the peer's `bench` actor takes.
enum BenchMsg {
    /// A cast: counted.
    Data(Vec<u8>),
    /// A call: the payload comes back.
    Echo(Vec<u8>, RpcReplyPort<ByteBuf>),
    /// A call: how many `Data` casts so far.
    Count(RpcReplyPort<u64>),
    /// A call: how many allocations the peer has made so far (counting mode).
    Allocs(RpcReplyPort<u64>),
}

/// `BenchMsg` on the wire, its payloads as byte strings.
#[derive(Serialize, Deserialize)]
enum WireMsg {
    Data(#[serde(with = "serde_bytes")] Vec<u8>),
    Echo(#[serde(with = "serde_bytes")] Vec<u8>),
    Count,
    Allocs,
}

impl RemoteMessage for BenchMsg {
    const NAME: &'static str = "BenchMsg";

    fn to_wire(self) -> Result<Wire, codec::CodecError> {
        Ok(match self {
            BenchMsg::Data(p) => Wire::cast(codec::encode(&WireMsg::Data(p))?),
            BenchMsg::Echo(p, port) => {
                Wire::call(codec::encode(&WireMsg::Echo(p))?, bridge_reply(port))
            }
            BenchMsg::Count(port) => {
                Wire::call(codec::encode(&WireMsg::Count)?, bridge_reply(port))
            }
            BenchMsg::Allocs(port) => {
                Wire::call(codec::encode(&WireMsg::Allocs)?, bridge_reply(port))
            }
        })
    }

    fn from_wire(payload: &[u8], reply: Option<ReplySink>) -> Result<Self, codec::CodecError> {
        match (codec::decode::<WireMsg>(payload)?, reply) {
            (WireMsg::Data(p), None) => Ok(BenchMsg::Data(p)),
            (WireMsg::Echo(p), Some(sink)) => Ok(BenchMsg::Echo(p, reply_port(sink))),
            (WireMsg::Count, Some(sink)) => Ok(BenchMsg::Count(reply_port(sink))),
            (WireMsg::Allocs, Some(sink)) => Ok(BenchMsg::Allocs(reply_port(sink))),
            _ => Err(codec::CodecError::Decode {
                expected: "BenchMsg",
                reason: "a cast with a reply port, or a call without one".into(),
            }),
        }
    }
}

/// The peer's actor: counts casts, echoes calls.
struct Bench;

impl Actor for Bench {
    type Msg = BenchMsg;
    type State = u64;
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<BenchMsg>, _: ()) -> Result<u64, ActorProcessingErr> {
        Ok(0)
    }

    async fn handle(
        &self,
        _: ActorRef<BenchMsg>,
        msg: BenchMsg,
        count: &mut u64,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            BenchMsg::Data(p) => *count += u64::from(p.len() == PAYLOAD),
            BenchMsg::Echo(p, reply) => {
                let _ = reply.send(ByteBuf::from(p));
            }
            BenchMsg::Count(reply) => {
                let _ = reply.send(*count);
            }
            BenchMsg::Allocs(reply) => {
                let _ = reply.send(allocs());
            }
        }
        Ok(())
    }
}

fn config(name: &str, epmd: SocketAddr) -> NodeConfig {
    NodeConfig::sname(name)
        .cookie(Cookie::new(COOKIE).expect("bench setup: invalid cookie"))
        .port_mapper(epmd)
}

// ---------------------------------------------------------------------------------------------
// The peer process: the node moebi@localhost, and the plain-TCP echo.

fn serve(epmd: SocketAddr) {
    // The parent kills us at the end; if it dies first, our stdin closes and we exit too.
    exit_with_parent();
    runtime().block_on(async move {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("peer: cannot listen on 127.0.0.1:0");
        let port = listener
            .local_addr()
            .expect("peer: no local address")
            .port();
        let node = Node::start(config(app::MOEBI, epmd))
            .await
            .expect("peer: cannot start the node");
        node.register_remote_message::<BenchMsg>();
        node.spawn(Some(ACTOR), Bench, ())
            .await
            .expect("peer: cannot spawn the bench actor");
        let (_chat, inbox) = app::Chat::start(&node, app::remote_supervisor())
            .await
            .expect("peer: cannot start the Chat app");
        drop(inbox); // what moebi receives is printed (and discarded by the parent)
        node.functions()
            .register("Bench", "echo", |(p,): (ByteBuf,)| async move { p });
        say_ready(port);
        loop {
            let (mut stream, _) = listener.accept().await.expect("peer: accept failed");
            let mut kind = [0u8];
            stream
                .read_exact(&mut kind)
                .await
                .expect("peer: no connection kind");
            serve_baseline(stream.into_std().expect("peer: into_std failed"), kind[0]);
        }
    });
}

// ---------------------------------------------------------------------------------------------
// The process cargo starts: runs the measuring process and passes its figures on.

fn forward_figures() {
    let exe = std::env::current_exe().expect("bench setup: current_exe unavailable");
    // The figures as they come; the ratios (keys with `_vs_`) of both placements at the end.
    let mut ratios = Vec::new();
    let placements: &[&str] = if std::env::var_os(COUNT_ENV).is_some() {
        &[COUNT_PLACEMENT]
    } else {
        &PLACEMENTS
    };
    for &placement in placements {
        // Pinned: the measuring process starts under `taskset -c 0` (the workspace forbids the
        // `unsafe` a sched_setaffinity call needs); its threads and the peer inherit it.
        let mut command = if placement != "unpinned" {
            if Command::new("taskset").arg("-V").output().is_err() {
                println!("pinned_skipped=1 (taskset not found; install util-linux)");
                continue;
            }
            let mut c = Command::new("taskset");
            c.args(["-c", "0"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let mut child = command
            .args([MEASURE_ARG, placement])
            .stdin(Stdio::piped()) // closes when we die, which stops the child (exit_with_parent)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("bench setup: cannot start the measuring process");
        let stdout = child.stdout.take().expect("bench setup: no stdout");
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("bench: cannot read the measuring process's output");
            let key = line.split_once('=').map(|(key, _)| key).filter(|key| {
                !key.is_empty()
                    && key
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            });
            match key {
                Some(key) if key.contains("_vs_") => ratios.push(line),
                Some(_) => println!("{line}"),
                None => {}
            }
        }
        let status = child
            .wait()
            .expect("bench: cannot wait for the measuring process");
        if !status.success() {
            std::process::exit(status.code().unwrap_or(1));
        }
    }
    for line in ratios {
        println!("{line}");
    }
}

/// The CPUs this process may run on, as Linux lists them (`0-1`), from `/proc/self/status`.
fn allowed_cpus() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
                .map(|l| l.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// `n` scaled by [`SCALE_ENV`], at least 1.
fn scaled(n: usize) -> usize {
    let scale: f64 = std::env::var(SCALE_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|s: &f64| *s > 0.0)
        .unwrap_or(1.0);
    ((n as f64 * scale) as usize).max(1)
}

// ---------------------------------------------------------------------------------------------
// The measuring process: the node bench@localhost.

struct Client {
    node: Node,
    chat: app::Chat,
    inbox: app::Inbox,
    /// `(bench, moebi@localhost)`.
    actor: Destination,
    /// `(Chat.TaskSupervisor, moebi@localhost)`.
    supervisor: Destination,
    payload: Vec<u8>,
    /// Casts sent so far, over all rounds.
    casts: u64,
}

impl Client {
    /// W1: seconds for `n` sequential echo calls.
    async fn calls(&mut self, n: usize) -> f64 {
        let start = Instant::now();
        for _ in 0..n {
            let echo: ByteBuf = self
                .node
                .call(
                    self.actor.clone(),
                    |port| BenchMsg::Echo(self.payload.clone(), port),
                    TIMEOUT,
                )
                .await
                .unwrap_or_else(|e| panic!("W1: the echo call failed: {e}"));
            assert_eq!(echo.len(), PAYLOAD, "W1: wrong echo");
        }
        start.elapsed().as_secs_f64()
    }

    /// W2: casts per second, until the peer's actor confirms it has them all.
    async fn casts(&mut self, n: u64) -> f64 {
        let start = Instant::now();
        for _ in 0..n {
            let data = || BenchMsg::Data(self.payload.clone());
            let sent = match self.node.cast(self.actor.clone(), data()) {
                // The peer's queue is full (send_queue_limit): nothing was sent; wait for
                // room, as the BEAM suspends a sender on busy_dist_port.
                Err(e) if matches!(e.kind, SendErrorKind::Busy { .. }) => {
                    self.node.cast_wait(self.actor.clone(), data()).await
                }
                sent => sent,
            };
            if let Err(e) = sent {
                panic!("W2: cast refused: {e}");
            }
        }
        let seen = self
            .node
            .call(self.actor.clone(), BenchMsg::Count, CAST_CONFIRM_TIMEOUT)
            .await
            .unwrap_or_else(|e| panic!("W2: the count call failed: {e}"));
        let elapsed = start.elapsed().as_secs_f64();
        self.casts += n;
        assert_eq!(seen, self.casts, "W2: casts lost");
        n as f64 / elapsed
    }

    /// One `Bench.echo` task under moebi's supervisor, awaited.
    fn echo_task(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let node = self.node.clone();
        let supervisor = self.supervisor.clone();
        let payload = ByteBuf::from(self.payload.clone());
        async move {
            let task = TaskSupervisor::async_on(&node, supervisor, "Bench", "echo", (payload,))
                .await
                .unwrap_or_else(|e| panic!("W3/W4: async_on failed: {e}"));
            let echo: ByteBuf = task
                .await
                .unwrap_or_else(|e| panic!("W3/W4: the task failed: {e}"));
            assert_eq!(echo.len(), PAYLOAD, "W3/W4: wrong echo");
        }
    }

    /// W3: seconds for `n` sequential tasks.
    async fn tasks_seq(&mut self, n: usize) -> f64 {
        let start = Instant::now();
        for _ in 0..n {
            self.echo_task().await;
        }
        start.elapsed().as_secs_f64()
    }

    /// W4: tasks per second, `IN_FLIGHT` at a time.
    async fn tasks_concurrent(&mut self, n: usize) -> f64 {
        let start = Instant::now();
        let mut in_flight = FuturesUnordered::new();
        let mut started = 0;
        while started < n.min(IN_FLIGHT) {
            in_flight.push(self.echo_task());
            started += 1;
        }
        while in_flight.next().await.is_some() {
            if started < n {
                in_flight.push(self.echo_task());
                started += 1;
            }
        }
        n as f64 / start.elapsed().as_secs_f64()
    }

    /// W5: seconds for `n` Moebi round trips.
    async fn moebi(&mut self, n: usize) -> f64 {
        let start = Instant::now();
        for _ in 0..n {
            self.chat
                .send_message(app::MOEBI, "hi")
                .await
                .unwrap_or_else(|e| panic!("W5: send_message failed: {e}"));
            let answer = tokio::time::timeout(TIMEOUT, self.inbox.recv())
                .await
                .expect("W5: no answer from moebi in time");
            assert_eq!(answer.as_deref(), Some("chicken?"), "W5: wrong answer");
        }
        start.elapsed().as_secs_f64()
    }
}

/// Runs `f` on `client` as a task of `rt`, and gives the client back with the figure.
macro_rules! run {
    ($rt:expr, $client:ident, |$c:ident| $body:expr) => {{
        let figure;
        ($client, figure) = on_runtime($rt, async move {
            let mut $c = $client;
            let figure = $body;
            ($c, figure)
        });
        figure
    }};
}

#[derive(Default)]
struct Figures {
    tcp_rtt: Vec<f64>,
    call_rtt: Vec<f64>,
    tcp_frames: Vec<f64>,
    casts: Vec<f64>,
    task_seq: Vec<f64>,
    tcp_c64: Vec<f64>,
    task_c64: Vec<f64>,
    moebi: Vec<f64>,
}

/// The measuring process's node, its peer and the baseline's connection.
struct Setup {
    rt: tokio::runtime::Runtime,
    client: Client,
    tcp: TcpClient,
    peer: two_process::Peer,
    /// Kept running for the nodes.
    _epmd: nodus::remote::port_mapper::PortMapperServerHandle,
}

/// Starts the port mapper, the peer and this node.
fn setup() -> Setup {
    let rt = runtime();
    let epmd = rt.block_on(async {
        PortMapperServer::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bench setup: cannot start the port mapper")
            .spawn()
    });
    let epmd_addr = epmd.local_addr();
    // Wait for the peer inside the runtime: on a current-thread runtime the port mapper the
    // peer registers with only runs while the runtime is driven.
    let (peer, port) = rt
        .block_on(async move {
            tokio::task::spawn_blocking(move || start_peer(&[PEER_ARG, &epmd_addr.to_string()]))
                .await
        })
        .expect("bench setup: starting the peer panicked");
    let tcp = TcpClient::connect(port);
    let client = rt.block_on(async {
        let node = Node::start(config(BENCH_NODE, epmd_addr))
            .await
            .expect("bench setup: cannot start the node");
        node.register_remote_message::<BenchMsg>();
        let (chat, inbox) = app::Chat::start(&node, app::remote_supervisor())
            .await
            .expect("bench setup: cannot start the Chat app");
        Client {
            node,
            chat,
            inbox,
            actor: Destination::from((ACTOR, app::MOEBI)),
            supervisor: Destination::from((app::SUPERVISOR, app::MOEBI)),
            payload: vec![7; PAYLOAD],
            casts: 0,
        }
    });
    Setup {
        rt,
        client,
        tcp,
        peer,
        _epmd: epmd,
    }
}

/// Counting mode: allocations per cast and per call, in this process and the peer.
fn count(spec: &str) {
    if ALLOCS.get().is_none() {
        println!("count_skipped=1 (run benches/remote_count.rs, whose allocator counts)");
        return;
    }
    let (kind, n) = match spec.split_once(':') {
        Some((kind, n)) => (kind, n),
        None => ("both", spec),
    };
    let n: usize = n
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .unwrap_or_else(|| panic!("{COUNT_ENV}: want N, cast:N or call:N, got {spec:?}"));
    let Setup {
        rt,
        mut client,
        tcp,
        peer,
        _epmd,
    } = setup();
    let peer_allocs = |rt: &tokio::runtime::Runtime, client: &Client| {
        rt.block_on(
            client
                .node
                .call(client.actor.clone(), BenchMsg::Allocs, TIMEOUT),
        )
        .unwrap_or_else(|e| panic!("count: the allocs call failed: {e}"))
    };
    // Warm-up: connect, grow the buffers, fill the caches.
    run!(&rt, client, |c| c.casts(1_000).await);
    run!(&rt, client, |c| c.calls(100).await);
    println!("count_n={n}");
    if kind != "call" {
        let (mine, theirs) = (allocs(), peer_allocs(&rt, &client));
        run!(&rt, client, |c| c.casts(n as u64).await);
        let (mine, theirs) = (allocs() - mine, peer_allocs(&rt, &client) - theirs);
        println!("allocs_per_cast={:.2}", mine as f64 / n as f64);
        println!("peer_allocs_per_cast={:.2}", theirs as f64 / n as f64);
    }
    if kind != "cast" {
        let (mine, theirs) = (allocs(), peer_allocs(&rt, &client));
        run!(&rt, client, |c| c.calls(n).await);
        let (mine, theirs) = (allocs() - mine, peer_allocs(&rt, &client) - theirs);
        println!("allocs_per_call={:.2}", mine as f64 / n as f64);
        println!("peer_allocs_per_call={:.2}", theirs as f64 / n as f64);
    }
    drop(client);
    drop(tcp);
    // The peer exits on its own, so that a profiler it runs under writes its figures.
    peer.finish(Duration::from_secs(30));
}

fn measure(placement: &str) {
    exit_with_parent();
    if placement == COUNT_PLACEMENT {
        let spec = std::env::var(COUNT_ENV).unwrap_or_default();
        println!("count_cpus={}", allowed_cpus());
        return count(&spec);
    }
    // The affinity was set by whoever started us (taskset for `pinned`); the peer inherits it.
    assert!(
        PLACEMENTS.contains(&placement),
        "measure: unknown placement {placement:?} (pinned or unpinned)"
    );
    let p = placement;
    println!("{p}_cpus={}", allowed_cpus());
    let (round_trips, casts_n, tasks_seq, tasks_c64, moebi_trips) = (
        scaled(ROUND_TRIPS).max(CHUNKS),
        scaled(CASTS as usize) as u64,
        scaled(TASKS_SEQ),
        scaled(TASKS_C64),
        scaled(MOEBI_TRIPS),
    );
    let Setup {
        rt,
        mut client,
        mut tcp,
        peer,
        _epmd,
    } = setup();

    // One untimed round to warm up (and connect), then the measured rounds.
    let mut figures = Figures::default();
    let chunk = round_trips / CHUNKS;
    let per_rtt = 1e6 / (chunk * CHUNKS) as f64;
    for round in 0..=ROUNDS {
        let (mut tcp_s, mut call_s) = (0.0, 0.0);
        for k in 0..CHUNKS {
            // Baseline and subject swap places from one chunk (and round) to the next.
            if baseline_first(round, k) {
                tcp_s += tcp.round_trips(chunk);
                call_s += run!(&rt, client, |c| c.calls(chunk).await);
            } else {
                call_s += run!(&rt, client, |c| c.calls(chunk).await);
                tcp_s += tcp.round_trips(chunk);
            }
        }
        // W2 against plain TCP one-way frames of the same size, W4 against plain TCP round
        // trips with as many in flight; the order alternates between rounds.
        let (tcp_frames, casts, tcp_c64, task_c64);
        if baseline_first(round, 0) {
            tcp_frames = tcp.frames(casts_n);
            casts = run!(&rt, client, |c| c.casts(casts_n).await);
            tcp_c64 = tcp.pipelined(tasks_c64, IN_FLIGHT);
            task_c64 = run!(&rt, client, |c| c.tasks_concurrent(tasks_c64).await);
        } else {
            casts = run!(&rt, client, |c| c.casts(casts_n).await);
            tcp_frames = tcp.frames(casts_n);
            task_c64 = run!(&rt, client, |c| c.tasks_concurrent(tasks_c64).await);
            tcp_c64 = tcp.pipelined(tasks_c64, IN_FLIGHT);
        }
        let task_seq = run!(&rt, client, |c| c.tasks_seq(tasks_seq).await);
        let moebi = run!(&rt, client, |c| c.moebi(moebi_trips).await);
        if round > 0 {
            figures.tcp_rtt.push(tcp_s * per_rtt);
            figures.call_rtt.push(call_s * per_rtt);
            figures.tcp_frames.push(tcp_frames);
            figures.casts.push(casts);
            figures.task_seq.push(task_seq * 1e6 / tasks_seq as f64);
            figures.tcp_c64.push(tcp_c64);
            figures.task_c64.push(task_c64);
            figures.moebi.push(moebi * 1e6 / moebi_trips as f64);
        }
    }
    drop(client);
    drop(tcp);
    drop(peer);

    let ratio_call = median_ratio(&figures.call_rtt, &figures.tcp_rtt);
    let ratio_cast = median_ratio(&figures.casts, &figures.tcp_frames);
    let ratio_c64 = median_ratio(&figures.task_c64, &figures.tcp_c64);
    let ratio_moebi = median_ratio(&figures.moebi, &figures.task_seq);
    let tcp_rtt = median(figures.tcp_rtt);
    let call_rtt = median(figures.call_rtt);
    let tcp_frames = median(figures.tcp_frames);
    let casts = median(figures.casts);
    let task_seq = median(figures.task_seq);
    let tcp_c64 = median(figures.tcp_c64);
    let task_c64 = median(figures.task_c64);
    let moebi = median(figures.moebi);
    println!("{p}_tcp_roundtrip_us={tcp_rtt:.2}");
    println!("{p}_call_roundtrip_us={call_rtt:.2}");
    println!("{p}_tcp_frames_per_s={tcp_frames:.0}");
    println!("{p}_cast_msgs_per_s={casts:.0} (target >= {CAST_TARGET:.0})");
    println!("{p}_task_async_seq_us={task_seq:.2}");
    println!("{p}_tcp_c64_roundtrips_per_s={tcp_c64:.0}");
    println!("{p}_task_async_c64_tasks_per_s={task_c64:.0} (target >= {TASK_C64_TARGET:.0})");
    println!("{p}_moebi_roundtrip_us={moebi:.2}");
    println!("{p}_call_vs_tcp={ratio_call:.3} (target <= 1.15)");
    println!("{p}_cast_vs_tcp_frames={ratio_cast:.3} (cast_msgs_per_s / tcp_frames_per_s)");
    println!(
        "{p}_task_c64_vs_tcp_c64={ratio_c64:.3} (task_async_c64_tasks_per_s / tcp_c64_roundtrips_per_s)"
    );
    println!(
        "{p}_moebi_vs_task={ratio_moebi:.3} (moebi_roundtrip_us / task_async_seq_us; target <= 2)"
    );
}
