//! Seed 002 as processes: named nodes, a cookie, `Node.ping/1` and `Node.list/0`.
//!
//! ```sh
//! cargo run --example ping -- --sname hoge@localhost --cookie mycookie
//! cargo run --example ping -- --sname fuga@localhost --cookie mycookie --ping hoge@localhost
//! cargo run --example ping -- --sname piyo@localhost --cookie mycookie --ping fuga@localhost
//! ```
//!
//! With `--erlang`, BEAM nodes connect too (`net_adm:ping('rust@localhost')` from
//! `erl -sname x -setcookie c` answers `pong`), and the node's actor `counter` answers
//! `gen_server:call({counter, 'rust@localhost'}, {add, N})` with the new total and takes
//! `{add, N}` as a plain message or a `gen_server:cast`:
//!
//! ```sh
//! cargo run --example ping -- --sname rust@localhost --cookie c --erlang
//! ```
//!
//! Each node stays up and prints its node list whenever it changes; with `--ping` it pings
//! each node given, in order, and prints `pong` or `pang` for each.

use std::{net::SocketAddr, time::Duration};

use clap::Parser;
use nodus::remote::{Cookie, Node, NodeConfig, NodeEvent};

#[derive(Parser, Debug)]
#[command(about = "A nodus node, started like `iex --sname hoge@localhost --cookie mycookie`")]
struct Args {
    /// A short node name (host without dots), e.g. hoge@localhost.
    #[arg(long, conflicts_with = "name", required_unless_present = "name")]
    sname: Option<String>,
    /// A long node name (fully qualified host or IP address), e.g. hoge@127.0.0.1.
    #[arg(long)]
    name: Option<String>,
    /// The cookie; default: NODUS_COOKIE, else ~/.nodus.cookie.
    #[arg(long)]
    cookie: Option<String>,
    /// Ping this node at start (repeatable).
    #[arg(long = "ping", value_name = "NODE")]
    ping: Vec<String>,
    /// The port mapper to use; default: 127.0.0.1 on ERL_EPMD_PORT or 4369 (started if none runs).
    #[arg(long, value_name = "ADDR")]
    port_mapper: Option<SocketAddr>,
    /// Tick time in milliseconds (a silent peer is down after this long); default 60000.
    #[arg(long, value_name = "MS")]
    tick_time_ms: Option<u64>,
    /// Start as a hidden node.
    #[arg(long)]
    hidden: bool,
    /// Let BEAM nodes (`erl`, `iex`) connect too, and expose the actor `counter` to them.
    #[arg(long)]
    erlang: bool,
}

/// The `counter` actor: `{add, N}` from Erlang, as a cast or a call answering the total.
struct Counter;

/// A message of [`Counter`].
enum CounterMsg {
    /// Adds to the total.
    Add(i64),
    /// Adds to the total and answers the new one.
    AddAndGet(i64, ractor::RpcReplyPort<i64>),
}

impl ractor::Actor for Counter {
    type Msg = CounterMsg;
    type State = i64;
    type Arguments = ();

    async fn pre_start(
        &self,
        _me: ractor::ActorRef<CounterMsg>,
        _args: (),
    ) -> Result<i64, ractor::ActorProcessingErr> {
        Ok(0)
    }

    async fn handle(
        &self,
        _me: ractor::ActorRef<CounterMsg>,
        msg: CounterMsg,
        total: &mut i64,
    ) -> Result<(), ractor::ActorProcessingErr> {
        match msg {
            CounterMsg::Add(n) => *total += n,
            CounterMsg::AddAndGet(n, reply) => {
                *total += n;
                let _ = reply.send(*total);
            }
        }
        Ok(())
    }
}

/// `counter` for BEAM nodes: `{add, N}` maps to the actor's messages; anything else is a
/// typed error (logged here; a caller of gen_server:call exits).
async fn expose_counter(node: &Node) -> Result<(), Box<dyn std::error::Error>> {
    use nodus::remote::erl::{Atom, ErlError, FromTerm, IntoTerm, TermError};
    fn add(term: nodus::remote::erl::eetf::Term) -> Result<i64, TermError> {
        let shown = term.clone();
        match <(Atom, i64)>::from_term(term)? {
            (Atom(tag), n) if tag == "add" => Ok(n),
            _ => Err(TermError::new("{add, N}", &shown)),
        }
    }
    let Some(erlang) = node.erlang() else {
        return Ok(());
    };
    node.spawn(Some("counter"), Counter, ()).await?;
    erlang.expose_cast("counter", |term| add(term).map(CounterMsg::Add));
    erlang.expose_call("counter", |system, term| async move {
        let bad = |source| ErlError::BadTerm {
            name: "counter".into(),
            source,
        };
        let n = add(term).map_err(bad)?;
        let total = system
            .call(
                "counter",
                |port| CounterMsg::AddAndGet(n, port),
                Duration::from_secs(5),
            )
            .await
            .map_err(|e| ErlError::Actor {
                name: "counter".into(),
                reason: e.to_string(),
            })?;
        Ok(total.into_term())
    });
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let mut config = match (&args.sname, &args.name) {
        (Some(name), _) => NodeConfig::sname(name),
        (None, Some(name)) => NodeConfig::lname(name),
        (None, None) => unreachable!("clap requires --sname or --name"),
    };
    if let Some(cookie) = &args.cookie {
        config = config.cookie(Cookie::new(cookie.as_str())?);
    }
    if let Some(addr) = args.port_mapper {
        config = config.port_mapper(addr);
    }
    if let Some(ms) = args.tick_time_ms {
        config = config.tick_time(Duration::from_millis(ms));
    }
    config = config.hidden(args.hidden).erlang(args.erlang);

    let node = Node::start(config).await?;
    expose_counter(&node).await?;
    let mut events = node.events();
    println!(
        "node {} is up (listening on {})",
        node.name(),
        node.listen_addr()
    );
    for peer in &args.ping {
        let answer = node.ping(peer).await;
        println!("{peer}: {}", format!("{answer:?}").to_lowercase());
    }
    let mut shown = node.list();
    println!("Node.list: {}", show(&shown));
    // One listener for the whole loop: a Ctrl-C that arrives while an event is handled is
    // not lost (a listener made anew each round could miss it).
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
