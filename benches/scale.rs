//! Many nodes in one process on the in-memory transport
//! ([`MemoryNetwork`](nodus::remote::transport::MemoryNetwork)).
//!
//! `cargo bench --bench scale` starts `SCALE_NODES` nodes (default 1000) on one memory
//! network, tells each node of one other (node `i` connects to node `i - 1`; the mesh does the
//! rest through `ControlMsg::Peers`), and prints one `key=value` line per figure:
//!
//! - `nodes`, `start_s`: how many nodes, and how long starting them took; `allocator`: the
//!   global allocator (mimalloc, see [`ALLOC`]);
//! - `mesh_s`: until every node lists every other (or `mesh_s=timeout` after
//!   `SCALE_DEADLINE_S`, default 120, with `mesh_sessions` and `mesh_expected`);
//! - `rss_per_node_kb`: the resident set added by starting the nodes, per node
//!   (`/proc/self/status`, `VmRSS`);
//! - `rss_per_session_kb`: the resident set added by meshing, per session (a session is one
//!   connection between two nodes, so both of its ends);
//! - `list_us`: one [`Node::list`] on a meshed node (every other node, sorted), the mean of
//!   `LIST_CALLS`;
//! - `down_detect_s`: from halting one node until every other node has told its
//!   [`Node::events`] subscribers `NodeDown` for it; `down_listed_s`: until every other node
//!   stopped listing it, checked with a [`Node::list`] of each (so it includes a thousand
//!   lists, ~`list_us` each).
//!
//! Then, unless `SCALE_TCP_NODES=0`, the same mesh over loopback TCP with `SCALE_TCP_NODES`
//! nodes (default 100) and its own port mapper: `tcp_nodes`, `tcp_mesh_s`. More TCP nodes
//! than one process has file descriptors for: `benches/scale_tcp.rs`.

use std::time::{Duration, Instant};

/// mimalloc, not the system's malloc: at a thousand nodes glibc's malloc spends the run
/// consolidating and unlinking free chunks of a 12 GB heap (about a fifth of the CPU in
/// `_int_malloc`, `unlink_chunk`, `malloc_consolidate`), and the mesh takes twice as long
/// (500 nodes: 18-30 s with glibc, 9.7 s with mimalloc, same code). A process that runs
/// this many nodes should choose its allocator too; `allocator=` says which one ran.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use nodus::remote::{port_mapper::PortMapperServer, transport::MemoryNetwork, Node, NodeEvent};

/// How many [`Node::list`] calls `list_us` is the mean of.
const LIST_CALLS: usize = 200;

#[path = "support/scale_common.rs"]
mod scale_common;
use scale_common::{config, env_usize, rss_kb};

/// Sessions up now: each node's peers, halved.
fn sessions(nodes: &[Node]) -> usize {
    nodes.iter().map(|n| n.list().len()).sum::<usize>() / 2
}

/// How often to look at the mesh: every 20 ms for a few nodes, less often for many.
fn poll_interval(nodes: usize) -> Duration {
    Duration::from_millis((nodes as u64 / 10).clamp(20, 100))
}

/// Tells node `i` of node `i - 1` and waits (at most `deadline`) for the full mesh: the
/// seconds it took, or `None`.
///
/// Counting every node's peers lists them all (a million names at 1000 nodes), which would
/// take the CPU the mesh needs; so each poll checks nodes in order from the first not yet seen
/// complete, stopping at the first that is not, and only once all were seen complete counts
/// every session (a node that lost a peer meanwhile sends the scan back to the start).
async fn mesh(nodes: &[Node], deadline: Duration) -> Option<f64> {
    let started = Instant::now();
    let mut dials = Vec::new();
    for pair in nodes.windows(2) {
        let (from, to) = (pair[1].clone(), pair[0].name().clone());
        dials.push(tokio::spawn(async move { from.connect(&to).await }));
    }
    let expected = nodes.len() * (nodes.len() - 1) / 2;
    let mut report = Duration::from_secs(5);
    let mut complete = 0; // nodes[..complete] were seen with every peer
    loop {
        while complete < nodes.len() && nodes[complete].list().len() == nodes.len() - 1 {
            complete += 1;
        }
        if complete == nodes.len() {
            if sessions(nodes) == expected {
                break;
            }
            complete = 0;
        }
        if started.elapsed() > deadline {
            return None;
        }
        if started.elapsed() > report {
            // Progress on stderr, so a slow mesh shows its rate (stdout is key=value only).
            eprintln!(
                "meshing: the first {complete} of {} nodes have every peer after {report:?}",
                nodes.len()
            );
            report += Duration::from_secs(5);
        }
        tokio::time::sleep(poll_interval(nodes.len())).await; // polling interval
    }
    let secs = started.elapsed().as_secs_f64();
    for dial in dials {
        if let Ok(Err(e)) = dial.await {
            eprintln!("a first dial failed (the mesh came anyway): {e}");
        }
    }
    Some(secs)
}

async fn memory_run(n: usize, deadline: Duration) {
    let network = MemoryNetwork::new();
    let rss_before = rss_kb();
    let started = Instant::now();
    let mut nodes = Vec::with_capacity(n);
    for i in 0..n {
        let node = Node::start(config(&format!("n{i}@localhost")).memory(network.clone()))
            .await
            .expect("a memory node starts");
        nodes.push(node);
    }
    let start_s = started.elapsed().as_secs_f64();
    let rss_started = rss_kb();
    println!("nodes={n}");
    println!("allocator=mimalloc");
    println!("start_s={start_s:.2}");
    println!(
        "rss_per_node_kb={}",
        rss_started.saturating_sub(rss_before) / n as u64
    );
    let expected = n * (n - 1) / 2;
    match mesh(&nodes, deadline).await {
        Some(secs) => println!("mesh_s={secs:.2}"),
        None => {
            println!("mesh_s=timeout");
            println!("mesh_sessions={}", sessions(&nodes));
            println!("mesh_expected={expected}");
        }
    }
    // Let the handshakes' transient buffers go before measuring idle sessions.
    tokio::time::sleep(Duration::from_secs(1)).await; // settling, not synchronisation
    let up = sessions(&nodes).max(1);
    let rss_meshed = rss_kb();
    println!(
        "rss_per_session_kb={:.1}",
        rss_meshed.saturating_sub(rss_started) as f64 / up as f64
    );
    println!("sessions={up}");

    if let Some(node) = nodes.last() {
        let timing = Instant::now();
        let listed: usize = (0..LIST_CALLS).map(|_| node.list().len()).sum();
        let mean = timing.elapsed().as_secs_f64() / LIST_CALLS as f64;
        assert_eq!(
            listed,
            LIST_CALLS * (n - 1),
            "a meshed node lists every other"
        );
        println!("list_us={:.1}", mean * 1e6);
    }

    let victim = nodes.remove(0);
    let name = victim.name().clone();
    // Subscribed before the halt: each receiver sees the NodeDown that follows.
    let mut events: Vec<_> = nodes.iter().map(Node::events).collect();
    let started = Instant::now();
    victim.halt().await;
    let mut told = 0;
    for rx in &mut events {
        let left = deadline.saturating_sub(started.elapsed());
        let down = tokio::time::timeout(left, async {
            loop {
                match rx.recv().await {
                    Ok(NodeEvent::NodeDown { node, .. }) if node == name => return true,
                    Ok(_) => {}
                    // Missed events (not expected with one down) or a stopped node: the
                    // list says.
                    Err(_) => return false,
                }
            }
        });
        if !matches!(down.await, Ok(true)) {
            break;
        }
        told += 1;
    }
    drop(events);
    if told == nodes.len() {
        println!("down_detect_s={:.3}", started.elapsed().as_secs_f64());
    } else {
        println!("down_detect_s=timeout");
    }
    let mut seen = false;
    let mut gone = 0; // nodes[..gone] no longer list the victim (as in `mesh`)
    while started.elapsed() < deadline {
        while gone < nodes.len() && !nodes[gone].list().contains(&name) {
            gone += 1;
        }
        if gone == nodes.len() {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await; // polling interval
    }
    if seen {
        println!("down_listed_s={:.3}", started.elapsed().as_secs_f64());
    } else {
        println!("down_listed_s=timeout");
    }
    let stopping = Instant::now();
    for node in nodes {
        node.halt().await;
    }
    println!("halt_all_s={:.2}", stopping.elapsed().as_secs_f64());
}

async fn tcp_run(n: usize, deadline: Duration) {
    let epmd = PortMapperServer::bind("127.0.0.1:0".parse().expect("an address"))
        .await
        .expect("a port mapper")
        .spawn();
    let mut nodes = Vec::with_capacity(n);
    for i in 0..n {
        let config = config(&format!("t{i}@localhost")).port_mapper(epmd.local_addr());
        nodes.push(Node::start(config).await.expect("a TCP node starts"));
    }
    println!("tcp_nodes={n}");
    match mesh(&nodes, deadline).await {
        Some(secs) => println!("tcp_mesh_s={secs:.2}"),
        None => println!("tcp_mesh_s=timeout"),
    }
    for node in nodes {
        node.halt().await;
    }
}

fn main() {
    let n = env_usize("SCALE_NODES", 1000).max(2);
    let tcp = env_usize("SCALE_TCP_NODES", 100);
    let deadline = Duration::from_secs(env_usize("SCALE_DEADLINE_S", 120) as u64);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        memory_run(n, deadline).await;
        if tcp >= 2 {
            tcp_run(tcp, deadline).await;
        }
    });
}
