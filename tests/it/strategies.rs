//! Clustering: the node's own mesh (every node learns every other through one ping), and
//! the `Cluster` strategies (`StaticHosts`, `LocalPortMapper`, `Gossip`) on loopback.

use std::time::Duration;

use nodus::remote::{port_mapper::PortMapperServer, Cookie, Node, NodeConfig, Ping};
use tokio::time::Instant;

/// How often a test polls for the state it waits for.
const POLL: Duration = Duration::from_millis(20);

fn config(name: &str, port_mapper: std::net::SocketAddr) -> NodeConfig {
    NodeConfig::sname(name)
        .cookie(Cookie::new("strategies").expect("a valid cookie literal"))
        .port_mapper(port_mapper)
}

/// Polls until every node lists every other one, or `deadline` passes: then the error
/// names, for each node short of the mesh, how many peers it lists and whom it misses.
/// It only looks: it never connects anything itself.
async fn await_full_mesh(nodes: &[Node], deadline: Duration) -> Result<(), String> {
    let until = Instant::now() + deadline;
    loop {
        let mut short = Vec::new();
        for node in nodes {
            let list = node.list();
            if list.len() + 1 < nodes.len() {
                let missing: Vec<String> = nodes
                    .iter()
                    .map(|n| n.name())
                    .filter(|n| *n != node.name() && !list.contains(n))
                    .map(ToString::to_string)
                    .collect();
                short.push(format!(
                    "{} lists {}, misses {missing:?}",
                    node.name(),
                    list.len()
                ));
            }
        }
        if short.is_empty() {
            return Ok(());
        }
        if Instant::now() + POLL > until {
            return Err(short.join("\n"));
        }
        tokio::time::sleep(POLL).await; // the poll interval
    }
}

/// Starts `n` nodes on one private port mapper, makes node i ping node i-1 (all at once),
/// and returns how long the full mesh took to form.
async fn one_mesh(run: usize, n: usize, deadline: Duration) -> Result<Duration, String> {
    let epmd = PortMapperServer::bind(([127, 0, 0, 1], 0).into())
        .await
        .map_err(|e| e.to_string())?
        .spawn();
    let mut nodes = Vec::with_capacity(n);
    for i in 0..n {
        let node = Node::start(config(&format!("m{run}_{i}@localhost"), epmd.local_addr()))
            .await
            .map_err(|e| e.to_string())?;
        nodes.push(node);
    }
    let start = Instant::now();
    let pings: Vec<_> = (1..n)
        .map(|i| {
            let (node, prev) = (nodes[i].clone(), nodes[i - 1].name().to_string());
            tokio::spawn(async move { node.ping(&prev).await })
        })
        .collect();
    for ping in pings {
        let answer = ping.await.map_err(|e| e.to_string())?;
        if answer != Ping::Pong {
            return Err(format!("a chain ping was {answer:?}"));
        }
    }
    let meshed = await_full_mesh(&nodes, deadline).await;
    let took = start.elapsed();
    for node in nodes {
        node.shutdown().await;
    }
    epmd.shutdown().await;
    meshed.map(|()| took)
}

/// The mesh always converges: 100 nodes that each know only one other form a full mesh,
/// every time. Bounded: each run must mesh within 20 s, and the whole test is cut at 100 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_of_100_nodes_always_becomes_a_full_mesh() {
    const NODES: usize = 100;
    const RUNS: usize = 6;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    let all = async {
        for run in 0..RUNS {
            match one_mesh(run, NODES, Duration::from_secs(20)).await {
                Ok(took) => eprintln!("run {run}: {NODES} nodes meshed in {took:?}"),
                Err(e) => panic!("run {run}: no full mesh of {NODES} nodes:\n{e}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(100), all)
        .await
        .expect("six meshes of 100 nodes within 100 s");
}
