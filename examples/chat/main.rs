//! Seed 004: the Chat app, with moebi, as processes.
//!
//! ```sh
//! cargo run --example chat -- --sname moebi@localhost --cookie chat
//! cargo run --example chat -- --sname alex@localhost --cookie chat
//! # then type lines "<node> <message>" in alex's terminal, e.g.
//! # moebi@localhost hi      -> moebi prints "hi", alex prints "chicken?"
//!
//! cargo run --example chat -- --sname alex@localhost --cookie chat --send moebi@localhost hi
//! # sends one message, prints the reply that comes back ("chicken?"), exits 0
//!
//! # mixed with Elixir (issue 15): moebi as an Elixir node, alex as a nodus node
//! elixir --sname moebi@localhost --cookie chat --no-halt tests/fixtures/chat.exs
//! cargo run --example chat -- --sname alex@localhost --cookie chat --erlang moebi@localhost --send moebi@localhost hi
//! ```

mod app;

use std::time::Duration;

use clap::Parser;
use nodus::remote::{Cookie, Node, NodeConfig};
use tokio::io::{AsyncBufReadExt, BufReader};

#[derive(Parser, Debug)]
#[command(about = "The Chat app of Elixir's distributed-tasks tutorial")]
struct Args {
    /// A short node name, e.g. alex@localhost.
    #[arg(long)]
    sname: String,
    /// The cookie shared by the chat nodes.
    #[arg(long)]
    cookie: Option<String>,
    /// Send one message to NODE, print the reply (if one comes within 5 s) and exit.
    #[arg(long, num_args = 2, value_names = ["NODE", "MESSAGE"])]
    send: Option<Vec<String>>,
    /// Speak the Erlang distribution protocol too, and connect to these BEAM (Elixir) chat
    /// nodes at start (tests/fixtures/chat.exs is the Chat app in Elixir).
    #[arg(long, value_name = "NODE", num_args = 0..)]
    erlang: Option<Vec<String>>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    std::panic::set_hook(Box::new(|_| {})); // task panics are reported by nodus itself
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let mut config = NodeConfig::sname(&args.sname);
    if let Some(cookie) = &args.cookie {
        config = config.cookie(Cookie::new(cookie.as_str())?);
    }
    if args.erlang.is_some() {
        config = config.erlang(true);
    }
    let node = Node::start(config).await?;
    for beam in args.erlang.iter().flatten() {
        if let Some(erlang) = node.erlang() {
            erlang.connect(beam).await?;
        }
    }
    let (chat, mut inbox) = app::Chat::start(&node, app::remote_supervisor()).await?;

    if let Some([recipient, message]) = args.send.as_deref() {
        chat.send_message(recipient, message).await?;
        if recipient == app::MOEBI {
            // receive_message prints the reply when moebi's answer runs here.
            tokio::time::timeout(Duration::from_secs(5), inbox.recv()).await?;
        }
        node.shutdown().await;
        return Ok(());
    }

    eprintln!(
        "{} is up; type \"<node> <message>\" lines (Ctrl-C to stop)",
        node.name()
    );
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut reading = true;
    // One listener for the whole loop: a Ctrl-C that arrives while an event is handled is
    // not lost (a listener made anew each round could miss it).
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            line = lines.next_line(), if reading => match line {
                // At the end of stdin (or without a terminal) the node keeps serving.
                Ok(None) | Err(_) => reading = false,
                Ok(Some(line)) => {
                    let Some((recipient, message)) = line.trim().split_once(' ') else {
                        eprintln!("expected \"<node> <message>\"");
                        continue;
                    };
                    if let Err(e) = chat.send_message(recipient, message.trim()).await {
                        eprintln!("could not send to {recipient}: {e}");
                    }
                }
            },
            _ = inbox.recv() => {} // already printed by receive_message
            _ = &mut ctrl_c => break,
        }
    }
    node.shutdown().await;
    Ok(())
}
