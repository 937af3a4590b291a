//! Presence, as a new user of nodus first built it: members on two nodes join a room actor
//! on a third; the room's node dies; callers get a typed error within their timeout; the
//! node restarts and the room is back, with every member in it. Everything is written with
//! the handler context of `#[nodus::actor]` (monitors, node monitors, timers); see
//! `presence.rs`.
//!
//! ```sh
//! cargo run --features testing --example presence
//! ```
//!
//! The three nodes live in this process (`LocalCluster`, with its own port mapper on a
//! port the OS picks).

mod presence;

use std::{
    sync::{Arc, OnceLock},
    time::{Duration, Instant},
};

use presence::{room, Member, Status, MEMBER};

/// How long anything below may take before the example gives up.
const DEADLINE: Duration = Duration::from_secs(10);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let hub = Arc::new(OnceLock::new());
    let mut cluster = presence::cluster(&hub).start().await?;
    cluster.await_mesh(DEADLINE).await?;
    let hub = hub.get().cloned().ok_or("the hub did not start")?;
    let alice = Member::client(cluster.node(1), MEMBER);
    println!(
        "hub {hub}; members on {} and {}",
        cluster.name(1),
        cluster.name(2)
    );

    // 1. Both members join.
    let names = until(|| async {
        room(cluster.node(1), &hub)
            .names()
            .await
            .ok()
            .filter(|n| n.len() == 2)
    })
    .await?;
    println!("in the room: {names:?}");

    // 2. The hub dies: a call to the room fails within its timeout, with a typed error.
    cluster.kill(0).await?;
    let start = Instant::now();
    let answer = alice.ask_room().await?;
    println!(
        "alice asks the room: {answer:?} after {:?}",
        start.elapsed()
    );
    let status: Status =
        until(|| async { alice.status().await.ok().filter(|s| s.room.is_none()) }).await?;
    println!(
        "alice knows: the room is gone ({})",
        status.lost.unwrap_or_default()
    );

    // 3. The hub restarts; the members find the room again by themselves.
    cluster.restart(0).await?;
    let names = until(|| async {
        alice
            .ask_room()
            .await
            .ok()
            .and_then(Result::ok)
            .filter(|n| n.len() == 2)
    })
    .await?;
    println!("the room is back: {names:?}");

    // 4. bob's node dies: the room sees him leave, with why.
    cluster.kill(2).await?;
    let left = until(|| async {
        room(cluster.node(1), &hub)
            .left()
            .await
            .ok()
            .filter(|l| !l.is_empty())
    })
    .await?;
    println!("left the room: {left:?}");

    // 5. alice leaves on her own.
    alice.leave().await?;
    let left = until(|| async {
        room(cluster.node(1), &hub)
            .left()
            .await
            .ok()
            .filter(|l| l.len() == 2)
    })
    .await?;
    println!("left the room: {left:?}");
    println!("the hub printed: {:?}", cluster.output(0));
    cluster.shutdown().await;
    Ok(())
}

/// Polls `f` until it gives `Some`, for at most [`DEADLINE`].
async fn until<T, F, Fut>(mut f: F) -> Result<T, String>
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
            return Err(format!("nothing within {DEADLINE:?}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await; // the poll interval
    }
}
