//! A replicated key-value service on three nodes: `#[nodus::actor]` for the store,
//! `#[nodus::remote_module]` for the operations other nodes run, a supervision tree on each
//! node, a crash, a restart, and a repair from a replica.
//!
//! ```sh
//! cargo run --features testing --example kv_service
//! ```
//!
//! The three nodes live in this process ([`LocalCluster`], with its own port mapper on a port
//! the OS picks). Each runs the same tree:
//!
//! ```text
//! Kv.Supervisor (one_for_one)
//! ├── kv                  the Store actor (named, re-registered on restart)
//! └── Kv.TaskSupervisor   runs the Kv module's functions for any node
//! ```
//!
//! A write goes to every node: the writer runs `Kv.put` on each replica through its
//! `Kv.TaskSupervisor` (a remote task, as `Task.Supervisor.async({sup, node}, Kv, :put, ..)`).

mod service;

use std::time::Duration;

use nodus::testing::LocalCluster;
use service::{replicated_put, start_service, Kv, Store, TASKS};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The crash is deliberate: its supervisor reports it; skip the default panic message.
    std::panic::set_hook(Box::new(|_| {}));
    let deadline = Duration::from_secs(10);

    // 1. Three nodes, meshed, each running the service.
    let mut cluster = LocalCluster::builder()
        .nodes(3)
        .prefix("kv")
        .start()
        .await?;
    cluster.await_mesh(deadline).await?;
    for i in 0..cluster.len() {
        start_service(cluster.node(i)).await?;
    }
    let (a, b, c) = (cluster.node(0), cluster.node(1), cluster.node(2));
    println!("nodes: {}, {}, {}", a.name(), b.name(), c.name());

    // 2. Replicated writes from a; a remote read on c.
    for (key, value) in [("color", "blue"), ("shape", "circle")] {
        let acks = replicated_put(a, key, value).await;
        println!("{} put {key}={value}: {acks} of 3 replicas", a.name());
    }
    let on_c = Kv::on(a, (TASKS, c.name().as_str()))
        .get("color".into())
        .await?;
    println!("{} reads color on {}: {on_c:?}", a.name(), c.name());

    // 3. b's store crashes; its supervisor restarts it, empty.
    let store_b = Store::client(b, "kv");
    let before = b.registry().whereis_cell("kv").map(|cell| b.pid_of(&cell));
    store_b.crash().await?;
    let after = loop {
        // The restart is asynchronous: look until the name points at a new actor.
        if let Some(pid) = b.registry().whereis_cell("kv").map(|cell| b.pid_of(&cell)) {
            if before.as_ref() != Some(&pid) {
                break pid;
            }
        }
        tokio::task::yield_now().await;
    };
    let empty = store_b.dump().await?;
    println!(
        "{}'s store crashed and was restarted as {after}: {} keys",
        b.name(),
        empty.len()
    );

    // 4. b repairs from a replica on another node (`Kv.repair` on b runs `Kv.dump` on a).
    let restored = Kv::on(b, (TASKS, b.name().as_str()))
        .repair(a.name().to_string())
        .await?
        .ok_or("a's replica could not be read")?;
    println!(
        "{} restored {restored} keys from {}: {:?}",
        b.name(),
        a.name(),
        store_b.dump().await?
    );

    // 5. c dies; writes go on with the two replicas left.
    let c_name = c.name().clone();
    let watch = a.monitor_node(&c_name).await;
    cluster.kill(2).await?;
    let down = tokio::time::timeout(deadline, watch).await?;
    println!(
        "{} saw {} go down ({})",
        cluster.name(0),
        down.node,
        down.reason
    );
    let acks = replicated_put(cluster.node(0), "size", "large").await;
    println!("put size=large: {acks} of 2 replicas");

    cluster.shutdown().await;
    println!("shut down cleanly");
    Ok(())
}
