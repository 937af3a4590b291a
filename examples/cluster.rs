//! Seed 000 in Rust: nodes that find each other by themselves, as libcluster's
//! `Cluster.Supervisor` with a Gossip or an Epmd topology.
//!
//! Three copies on one host, started with only their names, find each other by gossip
//! (heartbeats multicast on the loopback interface unless `--lan`):
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
//! `--debug` logs every decision (libcluster's `debug: true`); `--secret` seals the
//! heartbeats. Each node prints its node list whenever it changes; `--exit-with N` exits
//! (status 0) once it lists N peers, for scripts.

use std::{net::Ipv4Addr, time::Duration};

use clap::{Parser, ValueEnum};
use nodus::remote::{
    cluster::{Cluster, ClusterConfig, Gossip, GossipConfig, StaticHosts, Topology},
    Cookie, Node, NodeConfig, NodeEvent,
};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Kind {
    /// UDP multicast heartbeats (libcluster's Gossip).
    Gossip,
    /// A fixed list of nodes, kept connected (libcluster's Epmd).
    Static,
}

#[derive(Parser, Debug)]
#[command(about = "A nodus node that joins its cluster by itself (seed 000)")]
struct Args {
    /// A short node name, e.g. a@localhost.
    #[arg(long)]
    sname: String,
    /// The cookie; default: NODUS_COOKIE, else ~/.nodus.cookie.
    #[arg(long)]
    cookie: Option<String>,
    /// How to find the other nodes.
    #[arg(long, value_enum, default_value = "gossip")]
    strategy: Kind,
    /// For `--strategy static`: the nodes, comma-separated.
    #[arg(long, value_delimiter = ',')]
    hosts: Vec<String>,
    /// Log every clustering decision.
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
    /// Exit once this many peers are listed.
    #[arg(long, value_name = "N")]
    exit_with: Option<usize>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let default_filter = if args.debug {
        "info,actor_remote::cluster=debug"
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

    let mut config = NodeConfig::sname(&args.sname);
    if let Some(cookie) = &args.cookie {
        config = config.cookie(Cookie::new(cookie.as_str())?);
    }
    let node = Node::start(config).await?;

    let strategy = match args.strategy {
        Kind::Gossip => {
            let mut gossip = GossipConfig::default();
            gossip.port = args.gossip_port;
            gossip.secret = args.secret.clone();
            if !args.lan {
                gossip.multicast_if = Some(Ipv4Addr::LOCALHOST);
                gossip.multicast_ttl = 0;
            }
            Topology::new("example", Gossip::new(gossip))
        }
        Kind::Static => {
            let hosts = args
                .hosts
                .iter()
                .map(|h| h.parse())
                .collect::<Result<Vec<_>, _>>()?;
            Topology::new("example", StaticHosts::new(hosts))
        }
    };
    let cluster = Cluster::start(
        &node,
        ClusterConfig::new().topology(strategy).debug(args.debug),
    )
    .await?;

    println!("node {} is up", node.name());
    let mut events = node.events();
    let mut shown = Vec::new();
    loop {
        let list = node.list();
        if list != shown {
            let names: Vec<String> = list.iter().map(ToString::to_string).collect();
            println!("Node.list() = [{}]", names.join(", "));
            shown = list;
        }
        if args.exit_with.is_some_and(|n| shown.len() >= n) {
            break;
        }
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            event = events.recv() => {
                if let Ok(NodeEvent::NodeUp { .. } | NodeEvent::NodeDown { .. }) = event {
                    continue;
                }
            }
            // A lagged or closed event stream: look again after a while.
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
    println!("metrics: {:?}", cluster.metrics());
    cluster.stop();
    node.shutdown().await;
    Ok(())
}
