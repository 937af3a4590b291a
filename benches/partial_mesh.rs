//! The full mesh against the partial mesh (`cluster::PartialMesh`, HyParView), on the
//! in-memory transport.
//!
//! `cargo bench --bench partial_mesh` starts `PM_NODES` nodes (default 200) in each mode of
//! `PM_MODES` (default `full,partial`) on a fresh memory network, and prints `key=value`
//! lines prefixed with the mode (`full_`, `partial_`):
//!
//! - `nodes`, `rss_mb` (the process's resident set once converged);
//! - `converge_s`: full: from the first dials (node `i` dials node `i - 1`, the mesh does the
//!   rest) until every node lists every other; partial: from starting the strategy on every
//!   node (each joins through node 0) until the neighbour graph is mutual and connected,
//!   every node has a neighbour and a session with each of its neighbours; `last_wait`
//!   (partial): what the last poll before that still waited on, and since when;
//! - `conns_max_at_converge`; `conns_mean`, `conns_max`: sessions per node (`Node::list`)
//!   once converged (partial: 6 s later, when the joins' on-demand sessions have closed:
//!   what is counted is the 5 neighbours plus the short-lived sessions of shuffle answers
//!   and neighbour requests open at that moment);
//! - `latency_first_ms_p50`/`_max`: a cast to a random node that is not connected to the
//!   sender (partial: a non-neighbour, so it includes the on-demand connect; full: every
//!   node is connected, so a random node), until the receiver's actor has it, over
//!   `PM_SAMPLES` (default 20) pairs; `latency_next_ms_p50`: a second cast on the same pair;
//! - `detect_s`: from halting one node (a neighbour of others) until no node lists it
//!   (partial: and no node holds it as a neighbour).
//!
//! A full mesh larger than `PM_FULL_MAX` (default 200) is not run (`full_skipped=…`): at
//! 1,000 nodes it needs about 20 GiB and does not converge in reasonable time on a
//! 2-core machine. `PM_DEADLINE_S` (default 180) bounds each wait (`…=timeout`).

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use nodus::{
    ractor::{Actor, ActorProcessingErr, ActorRef},
    remote::{
        cluster::{hyparview, Cluster, ClusterConfig, MeshView, PartialMesh, Topology},
        transport::MemoryNetwork,
        Cookie, Node, NodeConfig,
    },
    Destination, NodeName,
};
use tokio::sync::mpsc;

/// The partial mesh's idle timeout for sessions that are not to a neighbour.
const IDLE_S: u64 = 5;

fn env_usize(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_mb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
        / 1024
}

#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct Stamp(u32);
nodus::core::serde_message!(Stamp = "bench.partial_mesh.Stamp");

/// Reports each stamp's arrival.
struct Sink;

impl Actor for Sink {
    type Msg = Stamp;
    type State = mpsc::UnboundedSender<(u32, Instant)>;
    type Arguments = mpsc::UnboundedSender<(u32, Instant)>;

    async fn pre_start(
        &self,
        _: ActorRef<Stamp>,
        out: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(out)
    }

    async fn handle(
        &self,
        _: ActorRef<Stamp>,
        Stamp(n): Stamp,
        out: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let _ = out.send((n, Instant::now()));
        Ok(())
    }
}

struct Member {
    node: Node,
    view: Option<MeshView>,
    cluster: Option<Cluster>,
}

fn config(name: &str, network: &MemoryNetwork, connect_all: bool) -> NodeConfig {
    NodeConfig::sname(name)
        .cookie(Cookie::new("pm").expect("a cookie"))
        .memory(network.clone())
        .connect_all(connect_all)
        .handshake_timeout(Duration::from_secs(60))
        .tick_time(Duration::from_secs(20))
}

fn poll(n: usize) -> Duration {
    Duration::from_millis((n as u64 / 4).clamp(20, 250))
}

/// Waits until `done` or the deadline: the seconds it took from `started`.
async fn until(
    started: Instant,
    deadline: Duration,
    n: usize,
    mut done: impl FnMut() -> bool,
) -> Option<f64> {
    loop {
        if done() {
            return Some(started.elapsed().as_secs_f64());
        }
        if started.elapsed() > deadline {
            return None;
        }
        tokio::time::sleep(poll(n)).await; // the poll interval
    }
}

fn secs(v: Option<f64>) -> String {
    v.map_or_else(|| "timeout".into(), |s| format!("{s:.3}"))
}

/// Whether the overlay has converged: `Err` says what it still waits on (the first node
/// found wanting), which the bench prints for the last poll before it converged.
fn partial_converged(members: &[Member]) -> Result<(), String> {
    let views: std::collections::BTreeMap<NodeName, Vec<NodeName>> = members
        .iter()
        .filter_map(|m| Some((m.node.name().clone(), m.view.as_ref()?.neighbors())))
        .collect();
    for m in members {
        let me = m.node.name();
        let Some(ns) = views.get(me) else {
            return Err(format!("{me} has no view yet"));
        };
        if ns.is_empty() {
            return Err(format!("{me} has no neighbour"));
        }
        let list = m.node.list();
        for n in ns {
            if !list.contains(n) {
                return Err(format!("{me} has no session with its neighbour {n}"));
            }
            if !views.get(n).is_some_and(|b| b.contains(me)) {
                return Err(format!(
                    "{me} holds {n} as a neighbour, {n} does not hold {me}"
                ));
            }
        }
    }
    let Some(first) = views.keys().next().cloned() else {
        return Err("no node".into());
    };
    let mut seen = BTreeSet::from([first.clone()]);
    let mut todo = vec![first];
    while let Some(n) = todo.pop() {
        for m in &views[&n] {
            if seen.insert(m.clone()) {
                todo.push(m.clone());
            }
        }
    }
    if seen.len() == views.len() {
        Ok(())
    } else {
        let apart: Vec<String> = views
            .iter()
            .filter(|(name, _)| !seen.contains(*name))
            .take(4)
            .map(|(name, ns)| format!("{name} with {ns:?}"))
            .collect();
        Err(format!(
            "the neighbour graph is not connected ({} of {} nodes reached; apart: {})",
            seen.len(),
            views.len(),
            apart.join(", ")
        ))
    }
}

fn pct(mut v: Vec<f64>, p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

async fn run(mode: &str, n: usize, deadline: Duration, samples: usize) {
    let partial = mode == "partial";
    let network = MemoryNetwork::new();
    let mut members = Vec::with_capacity(n);
    for i in 0..n {
        let node = Node::start(config(&format!("{mode}{i}@mem"), &network, !partial))
            .await
            .expect("a memory node starts");
        members.push(Member {
            node,
            view: None,
            cluster: None,
        });
    }
    println!("{mode}_nodes={n}");
    let started = Instant::now();
    let converged = if partial {
        let contact = members[0].node.name().clone();
        for (i, m) in members.iter_mut().enumerate() {
            let mesh = PartialMesh::new([contact.clone()])
                .overlay(hyparview::Config::default())
                .idle_timeout(Duration::from_secs(IDLE_S))
                .seed(i as u64);
            m.view = Some(mesh.view());
            let topology = Topology::new("pm", mesh);
            m.cluster = Some(
                Cluster::start(&m.node, ClusterConfig::new().topology(topology))
                    .await
                    .expect("the partial mesh starts"),
            );
        }
        let mut waited = Vec::new();
        let converged = until(started, deadline, n, || match partial_converged(&members) {
            Ok(()) => true,
            Err(why) => {
                waited.push((started.elapsed().as_secs_f64(), why));
                false
            }
        })
        .await;
        // What the overlay waited on: the last reason, and the first poll that gave it, so a
        // slow run says what held it up.
        if let Some((last_at, last)) = waited.last().cloned() {
            let since = waited
                .iter()
                .rev()
                .take_while(|(_, why)| *why == last)
                .last()
                .map_or(last_at, |(at, _)| *at);
            println!("{mode}_last_wait={last} (from {since:.2} s to {last_at:.2} s)");
        }
        converged
    } else {
        for pair in members.windows(2) {
            let (from, to) = (pair[1].node.clone(), pair[0].node.name().clone());
            tokio::spawn(async move { from.connect(&to).await });
        }
        let expected = n * (n - 1);
        until(started, deadline, n, || {
            members.iter().map(|m| m.node.list().len()).sum::<usize>() == expected
        })
        .await
    };
    println!("{mode}_converge_s={}", secs(converged));
    let at_converge = members
        .iter()
        .map(|m| m.node.list().len())
        .max()
        .unwrap_or(0);
    println!("{mode}_conns_max_at_converge={at_converge}");
    if partial {
        // The joins' sessions (every joiner cast its Join to node 0) close once idle: wait
        // the application's idle timeout and a second before counting (a settling wait,
        // not synchronisation: what is counted is whatever is open then).
        tokio::time::sleep(Duration::from_secs(IDLE_S + 1)).await;
    }
    println!("{mode}_rss_mb={}", rss_mb());
    let conns: Vec<usize> = members.iter().map(|m| m.node.list().len()).collect();
    println!(
        "{mode}_conns_mean={:.2}",
        conns.iter().sum::<usize>() as f64 / n as f64
    );
    println!(
        "{mode}_conns_max={}",
        conns.iter().max().copied().unwrap_or(0)
    );

    // Latency to a random node the sender has no session with (full mesh: any node).
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut first = Vec::new();
    let mut next = Vec::new();
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut rand = |k: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % k as u64) as usize
    };
    for s in 0..samples {
        let from = rand(n);
        let list = members[from].node.list();
        let candidates: Vec<usize> = (0..n)
            .filter(|j| *j != from && (!partial || !list.contains(members[*j].node.name())))
            .collect();
        if candidates.is_empty() {
            continue;
        }
        let to = candidates[rand(candidates.len())];
        let sink = format!("sink{s}");
        let (actor, _) = members[to]
            .node
            .spawn(Some(&sink), Sink, tx.clone())
            .await
            .expect("a sink starts");
        for (round, out) in [(0u32, &mut first), (1, &mut next)] {
            let sent = Instant::now();
            let dest = Destination::from((sink.as_str(), members[to].node.name()));
            if members[from].node.cast(dest, Stamp(round)).is_err() {
                continue;
            }
            match tokio::time::timeout(deadline, rx.recv()).await {
                Ok(Some((_, at))) => out.push(at.duration_since(sent).as_secs_f64() * 1e3),
                _ => break,
            }
        }
        actor.stop(None);
    }
    println!("{mode}_latency_first_ms_p50={:.2}", pct(first.clone(), 0.5));
    println!("{mode}_latency_first_ms_max={:.2}", pct(first, 1.0));
    println!("{mode}_latency_next_ms_p50={:.2}", pct(next, 0.5));

    // Failure detection: halt a node that others hold as a neighbour.
    let victim_at = (1..n)
        .find(|i| !members[*i].node.list().is_empty())
        .unwrap_or(1);
    let victim = members.remove(victim_at);
    let dead = victim.node.name().clone();
    if let Some(c) = victim.cluster {
        c.stop();
    }
    let started = Instant::now();
    victim.node.halt().await;
    let detected = until(started, deadline, n, || {
        members.iter().all(|m| {
            !m.node.list().contains(&dead)
                && !m
                    .view
                    .as_ref()
                    .is_some_and(|v| v.neighbors().contains(&dead))
        })
    })
    .await;
    println!("{mode}_detect_s={}", secs(detected));
    for m in members {
        if let Some(c) = m.cluster {
            c.stop();
        }
        m.node.halt().await;
    }
}

fn main() {
    let n = env_usize("PM_NODES", 200).max(3);
    let full_max = env_usize("PM_FULL_MAX", 200);
    let deadline = Duration::from_secs(env_usize("PM_DEADLINE_S", 180) as u64);
    let samples = env_usize("PM_SAMPLES", 20);
    let modes = std::env::var("PM_MODES").unwrap_or_else(|_| "full,partial".into());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        for mode in modes.split(',').map(str::trim) {
            match mode {
                "full" if n > full_max => println!(
                    "full_skipped=nodes {n} over PM_FULL_MAX {full_max} (a 1,000-node full mesh needs ~20 GiB)"
                ),
                "full" | "partial" => run(mode, n, deadline, samples).await,
                other => eprintln!("unknown mode {other:?}: use full, partial"),
            }
        }
    });
}
