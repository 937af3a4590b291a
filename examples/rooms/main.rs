//! Chat rooms on three nodes: the room `lobby` is a process group with a member on each
//! node; its history is a cluster singleton. The node running the history is killed; the
//! history comes back on a survivor, under the same global name, with its lines (rebuilt
//! from the members left), and the room goes on.
//!
//! ```sh
//! cargo run --features testing --example rooms
//! ```
//!
//! The three nodes live in this process ([`LocalCluster`](nodus::testing::LocalCluster),
//! with its own port mapper on a port the OS picks).

mod rooms;

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use nodus::{remote::names::ClusterSupervisor, testing::LocalCluster};

/// How long anything below may take before the example gives up.
const DEADLINE: Duration = Duration::from_secs(10);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let sups: Arc<Mutex<Vec<Option<ClusterSupervisor>>>> = Arc::new(Mutex::new(vec![None; 3]));
    let hook = sups.clone();
    let mut cluster = LocalCluster::builder()
        .nodes(3)
        .prefix("rooms")
        .on_start(move |node, i| {
            let sups = hook.clone();
            async move {
                match rooms::start(&node).await {
                    Ok(sup) => sups.lock().unwrap_or_else(PoisonError::into_inner)[i] = Some(sup),
                    Err(e) => eprintln!("node {i}: the rooms supervisor did not start: {e}"),
                }
            }
        })
        .start()
        .await?;
    cluster.await_mesh(DEADLINE).await?;
    let sup = |i: usize| {
        sups.lock().unwrap_or_else(PoisonError::into_inner)[i]
            .clone()
            .ok_or("a node without its rooms supervisor")
    };

    // 1. alice, bob and carol join the lobby, one on each node.
    let mut members = Vec::new();
    for (i, who) in ["alice", "bob", "carol"].into_iter().enumerate() {
        members.push(rooms::join(cluster.node(i), &sup(i)?, "lobby", DEADLINE).await?);
        println!("{who} joined the lobby on {}", cluster.name(i));
    }
    // Group memberships travel asynchronously: wait until every node's tables agree.
    cluster.node(0).global().sync(DEADLINE).await?;
    let history = cluster
        .node(0)
        .global()
        .whereis(&rooms::history_name("lobby"))
        .ok_or("no history")?;
    println!("the lobby's history runs on {}", history.node());

    // 2. Everyone says hello; the history has it all.
    for (i, who) in ["alice", "bob", "carol"].into_iter().enumerate() {
        rooms::say(cluster.node(i), "lobby", who, "hello").await?;
    }
    let lines = until(|| async {
        rooms::history(cluster.node(0), "lobby")
            .lines()
            .await
            .ok()
            .filter(|l| l.len() == 3)
    })
    .await?;
    println!("history: {lines:?}");

    // 3. The history's node dies; the history comes back elsewhere, with its lines.
    let victim = (0..3)
        .find(|i| cluster.name(*i) == history.node())
        .ok_or("the history's node is not in the cluster")?;
    cluster.kill(victim).await?;
    let survivor = (victim + 1) % 3;
    let start = Instant::now();
    let lines = until(|| async {
        rooms::history(cluster.node(survivor), "lobby")
            .lines()
            .await
            .ok()
    })
    .await?;
    let moved = cluster
        .node(survivor)
        .global()
        .whereis(&rooms::history_name("lobby"))
        .ok_or("no history")?;
    println!(
        "{} killed; the history is back on {} after {:?}: {lines:?}",
        cluster.name(victim),
        moved.node(),
        start.elapsed()
    );
    rooms::say(cluster.node(survivor), "lobby", "dave", "still here").await?;
    let lines = until(|| async {
        rooms::history(cluster.node(survivor), "lobby")
            .lines()
            .await
            .ok()
            .filter(|l| l.len() == 4)
    })
    .await?;
    println!("history: {lines:?}");
    cluster.shutdown().await;
    Ok(())
}

/// Polls `f` until it gives a value, within [`DEADLINE`].
async fn until<T, F, Fut>(mut f: F) -> Result<T, &'static str>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        if start.elapsed() > DEADLINE {
            return Err("timed out");
        }
        tokio::time::sleep(Duration::from_millis(10)).await; // the poll interval
    }
}
