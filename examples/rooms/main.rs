//! Chat rooms on a cluster: the room `lobby` is a process group; its history is a cluster
//! singleton that survives the loss of its node, under the same global name, with its
//! lines (rebuilt from the members left).
//!
//! Without arguments, the demo: one node in this process (the client: alice, bob and
//! carol join the lobby there) and three nodes as child processes of this same binary,
//! on a [`LocalCluster`] with its own port mapper on a port the OS picks. Each process
//! node is killed in turn (and restarted); the lobby's history stays reachable.
//!
//! ```sh
//! cargo run --features testing --example rooms
//! ```
//!
//! With `--sname`, one node of the rooms service (what the demo spawns), started with the
//! `ping` example's flags; it runs until killed or Ctrl-C:
//!
//! ```sh
//! cargo run --features testing --example rooms -- --sname a@localhost --cookie c
//! cargo run --features testing --example rooms -- --sname b@localhost --cookie c --ping a@localhost
//! ```

mod rooms;

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use clap::Parser;
use nodus::{
    remote::{names::ClusterSupervisor, Cookie, Node, NodeConfig, NodeEvent},
    testing::{example_binary, LocalCluster},
};

/// How long anything below may take before the example gives up.
const DEADLINE: Duration = Duration::from_secs(10);
/// The process nodes of the demo.
const PROCESSES: usize = 3;

type Error = Box<dyn std::error::Error + Send + Sync>;

#[derive(Parser, Debug)]
#[command(about = "Chat rooms: the demo without arguments, else one node of the service")]
struct Args {
    /// Run as one node of the rooms service, with this short name (e.g. a@localhost).
    #[arg(long)]
    sname: Option<String>,
    /// The cookie; default: NODUS_COOKIE, else ~/.nodus.cookie.
    #[arg(long, requires = "sname")]
    cookie: Option<String>,
    /// Ping this node at start (repeatable).
    #[arg(long = "ping", value_name = "NODE", requires = "sname")]
    ping: Vec<String>,
    /// The port mapper to use; default: 127.0.0.1 on ERL_EPMD_PORT or 4369.
    #[arg(long, value_name = "ADDR", requires = "sname")]
    port_mapper: Option<SocketAddr>,
    /// Tick time in milliseconds; default 60000.
    #[arg(long, value_name = "MS", requires = "sname")]
    tick_time_ms: Option<u64>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let result = match &args.sname {
        Some(name) => node(name, &args).await,
        None => demo().await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rooms: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// One node of the rooms service, until killed or Ctrl-C: prints `node NAME is up (..)`,
/// then its node list each time it changes (`Node.list: [..]`), as the `ping` example.
async fn node(name: &str, args: &Args) -> Result<(), Error> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut config = NodeConfig::sname(name);
    if let Some(cookie) = &args.cookie {
        config = config.cookie(Cookie::new(cookie.as_str())?);
    }
    if let Some(addr) = args.port_mapper {
        config = config.port_mapper(addr);
    }
    if let Some(ms) = args.tick_time_ms {
        config = config.tick_time(Duration::from_millis(ms));
    }
    let node = Node::start(config).await?;
    let mut answers = Vec::new();
    for peer in &args.ping {
        answers.push((peer, node.ping(peer).await));
    }
    // Names and groups as the cluster has them before this node's part of the service
    // starts: else a restarted node, not knowing yet who runs a history, starts one of its
    // own (empty: it sees no members), which the name conflict may keep over the real one.
    node.global().sync(DEADLINE).await?;
    // Kept for the node's life: the node's part of the rooms' cluster supervisor.
    let _rooms = rooms::start(&node).await?;
    let mut events = node.events();
    println!(
        "node {} is up (listening on {})",
        node.name(),
        node.listen_addr()
    );
    for (peer, answer) in answers {
        println!("{peer}: {}", format!("{answer:?}").to_lowercase());
    }
    let mut shown = node.list();
    println!("Node.list: {}", show(&shown));
    // One listener for the whole loop: a Ctrl-C that arrives while an event is handled is
    // not lost.
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            event = events.recv() => {
                if let Ok(NodeEvent::NodeDown { node: peer, reason, .. }) = &event {
                    println!("nodedown {peer} ({reason})");
                }
                let list = node.list();
                if list != shown {
                    println!("Node.list: {}", show(&list));
                    shown = list;
                }
            }
            _ = &mut ctrl_c => break,
        }
    }
    node.shutdown().await;
    Ok(())
}

fn show(nodes: &[nodus::NodeName]) -> String {
    let names: Vec<&str> = nodes.iter().map(|n| n.as_str()).collect();
    format!("[{}]", names.join(", "))
}

/// The demo: node 0 in this process is the client; nodes 1..=3 are processes of this
/// binary, each killed in turn and restarted.
async fn demo() -> Result<(), Error> {
    let binary = example_binary("rooms")
        .or_else(|| std::env::current_exe().ok())
        .ok_or("cannot find the rooms binary")?;
    let sup: Arc<Mutex<Option<ClusterSupervisor>>> = Arc::new(Mutex::new(None));
    let hook = sup.clone();
    let mut cluster = LocalCluster::builder()
        .nodes(1)
        .processes(PROCESSES, binary)
        .prefix("rooms")
        .on_start(move |node, _| {
            let sup = hook.clone();
            async move {
                match rooms::start(&node).await {
                    Ok(s) => *sup.lock().unwrap_or_else(PoisonError::into_inner) = Some(s),
                    Err(e) => eprintln!("the rooms supervisor did not start: {e}"),
                }
            }
        })
        .start()
        .await?;
    let result = scenario(&mut cluster, &sup).await;
    cluster.shutdown().await;
    result
}

async fn scenario(
    cluster: &mut LocalCluster,
    sup: &Mutex<Option<ClusterSupervisor>>,
) -> Result<(), Error> {
    cluster.await_mesh(DEADLINE).await?;
    let sup = sup
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
        .ok_or("node 0 without its rooms supervisor")?;

    // A room whose history starts on each process node.
    let names = cluster.names();
    let rooms: Vec<String> = (1..=PROCESSES)
        .map(|i| rooms::room_hosted_by(&names, &names[i]).ok_or("no room for a node"))
        .collect::<Result<_, _>>()?;

    // 1. alice, bob and carol join every room (on node 0, the client).
    let mut members = Vec::new();
    for room in &rooms {
        for who in ["alice", "bob", "carol"] {
            members.push(rooms::join(cluster.node(0), &sup, room, DEADLINE).await?);
            println!("{who} joined {room} on {}", cluster.name(0));
        }
    }
    cluster.node(0).global().sync(DEADLINE).await?;
    for room in &rooms {
        let history = cluster
            .node(0)
            .global()
            .whereis(&rooms::history_name(room))
            .ok_or("no history")?;
        println!("the history of {room} runs on {}", history.node());
    }

    // 2. Everyone says hello; the histories have it all.
    for room in &rooms {
        for who in ["alice", "bob", "carol"] {
            rooms::say(cluster.node(0), room, who, "hello").await?;
        }
    }
    let mut want = 3;
    for room in &rooms {
        let lines = lines(cluster, room, want).await?;
        println!("{room}: {lines:?}");
    }

    // 3. Each process node dies in turn; every history stays reachable, with its lines.
    for victim in 1..=PROCESSES {
        let gone = cluster.name(victim).clone();
        cluster.kill(victim).await?;
        println!("{gone} killed");
        let start = Instant::now();
        want += 1;
        for room in &rooms {
            // Until the history answers from a live node (not by the dead pid's name).
            let at = until(|| async {
                let at = cluster
                    .node(0)
                    .global()
                    .whereis(&rooms::history_name(room))?;
                let answers = rooms::history(cluster.node(0), room).lines().await;
                (at.node() != &gone && answers.is_ok()).then_some(at)
            })
            .await?;
            rooms::say(cluster.node(0), room, "dave", &format!("{gone} is gone")).await?;
            let lines = lines(cluster, room, want).await?;
            println!(
                "  {room}: on {} ({:?} after the kill): {lines:?}",
                at.node(),
                start.elapsed()
            );
        }
        cluster.restart(victim).await?;
        cluster.await_mesh(DEADLINE).await?;
        println!("{gone} restarted");
    }
    Ok(())
}

/// The history of `room`, once it has `want` lines (within [`DEADLINE`]).
async fn lines(cluster: &LocalCluster, room: &str, want: usize) -> Result<Vec<String>, Error> {
    until(|| async {
        rooms::history(cluster.node(0), room)
            .lines()
            .await
            .ok()
            .filter(|l| l.len() == want)
    })
    .await
}

/// Polls `f` until it gives a value, within [`DEADLINE`].
async fn until<T, F, Fut>(mut f: F) -> Result<T, Error>
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
            return Err("timed out".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await; // the poll interval
    }
}
