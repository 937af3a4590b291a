//! Seed 004's tagged test: `send_message(:moebi@localhost, "hi")`, as ExUnit's
//! `@tag :distributed`.
//!
//! It runs when a `moebi@localhost` node is alive (registered with the port mapper) and is
//! reported as ignored, with the reason, when it is not:
//!
//! ```sh
//! cargo run --example chat -- --sname moebi@localhost --cookie chat &
//! cargo test --features testing --test distributed
//! ```
//!
//! `.ci/run` starts moebi, so it runs in CI. `NODUS_TEST_INCLUDE=distributed` forces it
//! (and it fails with `no connection to moebi@localhost` without its peer, as in ExUnit).

use std::time::Duration;

use nodus::remote::{Cookie, Node, NodeConfig};

#[path = "../examples/chat/app.rs"]
mod app;

#[nodus::test(tags = ["distributed"], needs = ["moebi@localhost"])]
async fn send_message_to_moebi() -> Result<(), Box<dyn std::error::Error>> {
    let name = format!("chat-test-{}@localhost", std::process::id());
    let cookie = std::env::var("NODUS_COOKIE").unwrap_or_else(|_| "chat".into());
    let node = Node::start(NodeConfig::sname(&name).cookie(Cookie::new(cookie)?)).await?;
    let (chat, mut inbox) = app::Chat::start(&node, app::remote_supervisor()).await?;
    // assert Chat.send_message(:moebi@localhost, "hi") == :ok
    chat.send_message(app::MOEBI, "hi").await?;
    let reply = tokio::time::timeout(Duration::from_secs(5), inbox.recv()).await?;
    assert_eq!(reply.as_deref(), Some("chicken?"), "moebi answers chicken?");
    node.shutdown().await;
    Ok(())
}

fn main() {
    nodus::testing::main()
}
