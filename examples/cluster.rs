//! Seed 000 in Rust: nodes that find each other by themselves, as libcluster's
//! `Cluster.Supervisor` with a Gossip or an Epmd topology.
//!
//! Three copies on one host, started with only their names, find each other by gossip
//! (heartbeats multicast on the loopback interface unless `--lan` or `--multicast-if`):
//!
//! ```sh
//! cargo run --example cluster -- --sname a@localhost --cookie mycookie
//! cargo run --example cluster -- --sname b@localhost --cookie mycookie
//! cargo run --example cluster -- --sname c@localhost --cookie mycookie
//! ```
//!
//! With a static list instead (libcluster's `Epmd` with `hosts:`), each keeps connecting the
//! others, whichever starts first:
//!
//! ```sh
//! cargo run --example cluster -- --sname a@localhost --strategy static --hosts a@localhost,b@localhost
//! ```
//!
//! `--debug` logs every decision (libcluster's `debug: true`) and why an incoming connection
//! was refused (a wrong cookie); `--secret` seals the heartbeats. Each node prints its node
//! list whenever it changes; `--exit-with N` exits (status 0) once it lists N peers, for
//! scripts.
//!
//! Seed 001 (one node per host, long names with the host's address) is the same program with
//! `--name hoge@10.77.0.1 --multicast-if 10.77.0.1 --port-mapper 10.77.0.1:4369`: gossip on
//! that interface, and the port mapper where the other hosts look the node up.
//! `examples/netns_trio.sh` runs three such hosts in network namespaces. Once the node lists
//! `--wait-for N` peers it does what seed 001 does by hand: `--ping NODE` (`Node.ping/1`,
//! prints `pong` or `pang`), `--task NODE` (runs `Cluster.hello` under NODE's
//! `Cluster.TaskSupervisor` and prints the result), `--spawn NODE` (`Node.spawn/2` of
//! `Toukon.aisatsu`, which prints here, on the caller, its group leader).

use std::{
    net::{Ipv4Addr, SocketAddr},
    time::Duration,
};

use clap::{Parser, ValueEnum};
use nodus::{
    remote::{
        cluster::{Cluster, ClusterConfig, Gossip, GossipConfig, StaticHosts, Topology},
        Cookie, Node, NodeConfig, NodeEvent, Ping,
    },
    NodeName, TaskSupervisor, TaskSupervisorConfig,
};

/// The task supervisor every node starts, and where `--task` runs `Cluster.hello`.
const SUPERVISOR: &str = "Cluster.TaskSupervisor";
/// How long `--task` waits for the result.
const TASK_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Kind {
    /// UDP multicast heartbeats (libcluster's Gossip).
    Gossip,
    /// A fixed list of nodes, kept connected (libcluster's Epmd).
    Static,
    /// No clustering: nodes connect only when asked (`--ping`), as in seed 001.
    None,
}

#[derive(Parser, Debug)]
#[command(about = "A nodus node that joins its cluster by itself (seeds 000 and 001)")]
struct Args {
    /// A short node name, e.g. a@localhost.
    #[arg(long, conflicts_with = "name", required_unless_present = "name")]
    sname: Option<String>,
    /// A long node name (fully qualified host or IP address), e.g. hoge@10.77.0.1.
    #[arg(long)]
    name: Option<String>,
    /// The cookie; default: NODUS_COOKIE, else ~/.nodus.cookie.
    #[arg(long)]
    cookie: Option<String>,
    /// The port mapper to register with; default: 127.0.0.1 on ERL_EPMD_PORT or 4369
    /// (started if none answers). Other hosts look the node up at its host's address, so
    /// with one node per host give that address here (e.g. 10.77.0.1:4369).
    #[arg(long, value_name = "ADDR")]
    port_mapper: Option<SocketAddr>,
    /// How to find the other nodes.
    #[arg(long, value_enum, default_value = "gossip")]
    strategy: Kind,
    /// For `--strategy static`: the nodes, comma-separated.
    #[arg(long, value_delimiter = ',')]
    hosts: Vec<String>,
    /// Log every clustering decision, and why incoming connections were refused.
    #[arg(long)]
    debug: bool,
    /// Seal gossip heartbeats with this secret.
    #[arg(long)]
    secret: Option<String>,
    /// The gossip UDP port (default: libcluster's 45892).
    #[arg(long, default_value_t = 45892)]
    gossip_port: u16,
    /// Gossip on the network (libcluster's defaults: the system's interface, TTL 1) instead
    /// of on this host only (the loopback interface, TTL 0).
    #[arg(long)]
    lan: bool,
    /// Gossip on the network through the interface with this IPv4 address (TTL 1).
    #[arg(long, value_name = "IP", conflicts_with = "lan")]
    multicast_if: Option<Ipv4Addr>,
    /// Run the `--ping`, `--task` and `--spawn` requests once this many peers are listed.
    #[arg(long, value_name = "N", default_value_t = 0)]
    wait_for: usize,
    /// Ping this node and print `pong` or `pang` (repeatable).
    #[arg(long, value_name = "NODE")]
    ping: Vec<String>,
    /// Run `Cluster.hello` under this node's `Cluster.TaskSupervisor` and print the result
    /// (repeatable).
    #[arg(long, value_name = "NODE")]
    task: Vec<String>,
    /// Spawn `Toukon.aisatsu` on this node; it prints here, on the caller (repeatable).
    #[arg(long, value_name = "NODE")]
    spawn: Vec<String>,
    /// Exit once this many peers are listed (and the requests above are done).
    #[arg(long, value_name = "N")]
    exit_with: Option<usize>,
    /// Exit after this many seconds whatever happens (a bound for scripts and tests).
    #[arg(long, value_name = "SECS")]
    exit_after: Option<u64>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let default_filter = if args.debug {
        // The cluster's decisions, and the driver's: why an incoming handshake failed.
        "info,actor_remote::cluster=debug,actor_remote::node::driver=debug"
    } else {
        "info"
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default_filter.into()),
        )
        .with_writer(std::io::stderr)
        .init();

    let mut config = match (&args.sname, &args.name) {
        (Some(name), _) => NodeConfig::sname(name),
        (None, Some(name)) => NodeConfig::lname(name),
        (None, None) => return Err("give --sname or --name".into()),
    };
    if let Some(cookie) = &args.cookie {
        config = config.cookie(Cookie::new(cookie.as_str())?);
    }
    if let Some(addr) = args.port_mapper {
        config = config.port_mapper(addr);
    }
    let node = Node::start(config).await?;
    serve(&node).await?;

    let strategy = match args.strategy {
        Kind::None => None,
        Kind::Gossip => {
            let mut gossip = GossipConfig::default();
            gossip.port = args.gossip_port;
            gossip.secret = args.secret.clone();
            if let Some(interface) = args.multicast_if {
                gossip.multicast_if = Some(interface);
            } else if !args.lan {
                gossip.multicast_if = Some(Ipv4Addr::LOCALHOST);
                gossip.multicast_ttl = 0;
            }
            Some(Topology::new("example", Gossip::new(gossip)))
        }
        Kind::Static => {
            let hosts = args
                .hosts
                .iter()
                .map(|h| h.parse())
                .collect::<Result<Vec<_>, _>>()?;
            Some(Topology::new("example", StaticHosts::new(hosts)))
        }
    };
    let cluster = match strategy {
        Some(topology) => Some(
            Cluster::start(
                &node,
                ClusterConfig::new().topology(topology).debug(args.debug),
            )
            .await?,
        ),
        None => None,
    };

    println!(
        "node {} is up (listening on {})",
        node.name(),
        node.listen_addr()
    );
    let mut events = node.events();
    let mut shown = Vec::new();
    let mut done = false;
    let deadline = args
        .exit_after
        .map(|secs| tokio::time::Instant::now() + Duration::from_secs(secs));
    // One Ctrl-C listener for the whole run: one made anew in each round of the loop would
    // miss a Ctrl-C that comes while another branch wins the round.
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
            println!("exiting: --exit-after {}s", args.exit_after.unwrap_or(0));
            break;
        }
        let list = node.list();
        if list != shown {
            let names: Vec<String> = list.iter().map(ToString::to_string).collect();
            println!("Node.list() = [{}]", names.join(", "));
            shown = list;
        }
        if !done && shown.len() >= args.wait_for {
            requests(&node, &args).await;
            done = true;
            continue;
        }
        if done && args.exit_with.is_some_and(|n| shown.len() >= n) {
            break;
        }
        tokio::select! {
            _ = &mut ctrl_c => break,
            event = events.recv() => {
                if let Ok(NodeEvent::NodeUp { .. } | NodeEvent::NodeDown { .. }) = event {
                    continue;
                }
            }
            // A lagged or closed event stream: look again after a while.
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
    if let Some(cluster) = cluster {
        println!("metrics: {:?}", cluster.metrics());
        cluster.stop();
    }
    node.shutdown().await;
    Ok(())
}

/// What this node offers the others: `Cluster.hello` under `Cluster.TaskSupervisor`, and
/// `Toukon.aisatsu` (seed 001's module) for `Node.spawn`.
async fn serve(node: &Node) -> Result<(), Box<dyn std::error::Error>> {
    TaskSupervisor::start(node, TaskSupervisorConfig::new(SUPERVISOR)).await?;
    let me = node.name().to_string();
    node.functions()
        .register("Cluster", "hello", move |(from,): (String,)| {
            let me = me.clone();
            async move { format!("hello {from}, from {me}") }
        });
    let me = node.name().to_string();
    node.functions()
        .register("Toukon", "aisatsu", move |(): ()| {
            let me = me.clone();
            // Printed by the caller: a plain spawn's group leader is the caller's.
            async move { nodus::puts!("元氣ですかーーーーッ！ (from {me})") }
        });
    Ok(())
}

/// Seed 001 by hand: pings, a task on another node, a spawn that prints here.
async fn requests(node: &Node, args: &Args) {
    for peer in &args.ping {
        let answer = match node.ping(peer).await {
            Ping::Pong => "pong",
            Ping::Pang => "pang",
        };
        println!("Node.ping({peer}) = {answer}");
    }
    let me = node.name().to_string();
    for peer in &args.task {
        let started = TaskSupervisor::async_on::<_, String>(
            node,
            (SUPERVISOR, peer.as_str()),
            "Cluster",
            "hello",
            (me.clone(),),
        )
        .await;
        let result = match started {
            Ok(task) => task.await_timeout(TASK_TIMEOUT).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(reply) => println!("task on {peer}: Cluster.hello() = {reply:?}"),
            Err(e) => println!("task on {peer} failed: {e}"),
        }
    }
    for peer in &args.spawn {
        let spawned = match peer.parse::<NodeName>() {
            Ok(name) => node
                .spawn_on(&name, "Toukon", "aisatsu", ())
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match spawned {
            Ok(()) => println!("Node.spawn({peer}, Toukon.aisatsu) started"),
            Err(e) => println!("Node.spawn({peer}, Toukon.aisatsu) failed: {e}"),
        }
    }
}
