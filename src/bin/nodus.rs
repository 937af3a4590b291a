//! `nodus`: look into a running cluster from the shell, as an Erlang operator has
//! `epmd -names`, `net_adm:ping/1` and `rpc:call/4`.
//!
//! ```sh
//! nodus names [HOST]                      # the port mapper's list, as epmd -names
//! nodus ping NODE                         # pong (exit 0) or pang (exit 1)
//! nodus nodes NODE [--json]               # NODE's Node.list
//! nodus info NODE [--json]                # version, uptime, names, supervision tree, task supervisors
//! nodus rpc NODE MODULE FUNCTION [ARGS]   # ARGS: a JSON array, e.g. '["hi"]'; prints the JSON result
//! nodus epmd [--port P] [--address IP] [--daemon] [--pidfile PATH]   # the port mapper, as epmd
//! ```
//!
//! `nodus epmd` runs the port mapper as a process of its own (see `src/bin/nodus/epmd.rs`);
//! nodes configured with `PortMapperMode::Process` start it detached, as `erl -sname` starts
//! `epmd -daemon`.
//!
//! Every command but `names` joins the cluster as a *hidden* node named
//! `nodus_cli_<pid>@<host>` (short or long names as NODE's), with the cookie from `--cookie`,
//! else `NODUS_COOKIE`, else `~/.nodus.cookie`. A hidden node stays out of every node's
//! `Node.list` and of the mesh: it connects to NODE only and leaves when done. `nodes`,
//! `info` and `rpc` call NODE's built-in service (`nodus.nodes`, `nodus.info`,
//! `nodus.rpc_json` under its `nodus.Rpc` task supervisor; see
//! `actor_remote::node::admin`).
//!
//! Exit status: 0 on success; 1 on pang, a wrong cookie, an unknown function, bad JSON or any
//! other failure, with the reason on stderr; 2 on a command line clap refuses. The node's
//! `tracing` events are not printed (no subscriber: a plain `nodus` dependency pulls no
//! `tracing-subscriber`); every failure is reported with its reason.

// A binary's root file looks for its modules beside it; these live in `src/bin/nodus/`.
#[path = "nodus/epmd.rs"]
mod epmd;
#[path = "nodus/hidden.rs"]
mod hidden;
#[path = "nodus/render.rs"]
mod render;

use std::{net::SocketAddr, process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};
use nodus::{
    remote::{
        node::admin::{self, AdminError},
        port_mapper::{PortMapperClient, PortMapperError},
        ConnectError, CookieError, Node, NodeError, Ping,
    },
    NodeName,
};

use self::hidden::CookieFrom;

#[derive(Parser, Debug)]
#[command(
    name = "nodus",
    version,
    about = "Look into a running nodus cluster: names, ping, nodes, info, rpc",
    after_help = "Every command but `names` joins as a hidden node (nodus_cli_<pid>@<host>), \
                  which never appears in Node.list nor joins the mesh.\n\
                  Exit status: 0 on success, 1 on pang or any failure (the reason on stderr), \
                  2 on a bad command line."
)]
struct Cli {
    /// The cluster's cookie [default: NODUS_COOKIE, else the file ~/.nodus.cookie].
    #[arg(long, global = true, value_parser = parse_cookie)]
    cookie: Option<String>,
    /// The local port mapper (epmd) [default: 127.0.0.1, port ERL_EPMD_PORT else 4369].
    /// Other hosts' port mappers are asked at its port.
    #[arg(long, global = true, value_name = "ADDR")]
    port_mapper: Option<SocketAddr>,
    /// How long each step (port mapper, connect, each handshake step, the call) may take,
    /// in seconds.
    #[arg(long, global = true, default_value = "10", value_name = "SECONDS", value_parser = parse_seconds)]
    timeout: Duration,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The nodes registered with HOST's port mapper, as `epmd -names`.
    Names {
        /// The host whose port mapper to ask [default: localhost, or --port-mapper].
        host: Option<String>,
    },
    /// Pings NODE: prints `pong` (exit 0) or `pang` (exit 1, the reason on stderr).
    Ping {
        /// A node name, name@host.
        #[arg(value_parser = parse_node)]
        node: NodeName,
    },
    /// NODE's Node.list: its visible peers, one per line.
    Nodes {
        /// A node name, name@host.
        #[arg(value_parser = parse_node)]
        node: NodeName,
        /// Print a JSON array instead.
        #[arg(long)]
        json: bool,
    },
    /// NODE's nodus version, uptime, peers, registered names, supervision tree and task
    /// supervisors with their running tasks.
    Info {
        /// A node name, name@host.
        #[arg(value_parser = parse_node)]
        node: NodeName,
        /// Print JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// Runs MODULE.FUNCTION on NODE with JSON arguments, decoded there by the function's own
    /// argument types, and prints its result as JSON.
    Rpc {
        /// A node name, name@host.
        #[arg(value_parser = parse_node)]
        node: NodeName,
        /// The module the function is registered in, e.g. Chat.
        module: String,
        /// The function, e.g. receive_message.
        function: String,
        /// The arguments as a JSON array, one element per argument, e.g. '["hi"]' or '[2, 3]'.
        #[arg(default_value = "[]")]
        args: String,
    },
    /// Runs the port mapper (an epmd) as a process of its own, as `epmd [-daemon]`.
    Epmd(epmd::EpmdArgs),
}

fn parse_node(text: &str) -> Result<NodeName, String> {
    NodeName::parse(text).map_err(|e| e.to_string())
}

fn parse_cookie(text: &str) -> Result<String, String> {
    if text.is_empty() {
        return Err("the cookie is empty; give the cluster's cookie".into());
    }
    Ok(text.to_string())
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    Duration::try_from_secs_f64(seconds)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{text:?}: give a positive number of seconds"))
}

/// Why a command failed; each message says what to do.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error("no cookie: {0} (or pass --cookie)")]
    Cookie(#[from] CookieError),
    #[error("could not start this command's hidden node: {0}")]
    Start(#[source] NodeError),
    #[error("cannot connect to {node}: {source}{hint}")]
    Connect {
        node: NodeName,
        source: ConnectError,
        /// Where this command's cookie came from, after a failed handshake.
        hint: String,
    },
    #[error(transparent)]
    Admin(#[from] AdminError),
    #[error("ARGS is not JSON ({reason}); give the function's arguments as a JSON array, one element per argument, e.g. '[\"hi\"]' or '[2, 3]' ([] for none)")]
    ArgsNotJson { reason: String },
    #[error(
        "could not resolve host {host}: {reason}; give a host name that resolves, or an address"
    )]
    Resolve { host: String, reason: String },
    #[error(
        "{source}; a node registers with the port mapper of its host, is one running on {host}?"
    )]
    PortMapper {
        host: String,
        source: PortMapperError,
    },
    #[error("could not write JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("epmd: {0}")]
    Epmd(#[from] epmd::EpmdError),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("nodus: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode, CliError> {
    let timeout = cli.timeout;
    let target = match cli.command {
        Command::Names { ref host } => {
            return names(cli.port_mapper, host.as_deref(), timeout).await
        }
        Command::Epmd(args) => return Ok(epmd::run(args, timeout).await?),
        Command::Ping { ref node }
        | Command::Nodes { ref node, .. }
        | Command::Info { ref node, .. }
        | Command::Rpc { ref node, .. } => node.clone(),
    };
    if let Command::Rpc { args, .. } = &cli.command {
        // Refused here, before connecting; whether it fits the function's types is for the
        // node to say.
        serde_json::from_str::<serde_json::Value>(args).map_err(|e| CliError::ArgsNotJson {
            reason: e.to_string(),
        })?;
    }
    let (cookie, from) = hidden::cookie(cli.cookie.as_deref())?;
    let node = hidden::start(&target, cookie, cli.port_mapper, timeout)
        .await
        .map_err(CliError::Start)?;
    let connected = node.connect(&target).await;
    let result = match connected {
        Err(source) => {
            if matches!(cli.command, Command::Ping { .. }) {
                println!("pang");
            }
            Err(connect_error(&target, source, &from))
        }
        Ok(()) => command(&node, &target, cli.command, timeout).await,
    };
    hidden::leave(node, timeout).await;
    result
}

fn connect_error(target: &NodeName, source: ConnectError, from: &CookieFrom) -> CliError {
    let hint = match source {
        ConnectError::Handshake { .. } => format!(" (this command's cookie came from {from})"),
        _ => String::new(),
    };
    CliError::Connect {
        node: target.clone(),
        source,
        hint,
    }
}

/// Runs a command that needs a connection to `target`.
async fn command(
    node: &Node,
    target: &NodeName,
    command: Command,
    timeout: Duration,
) -> Result<ExitCode, CliError> {
    match command {
        // handled before a node starts
        Command::Names { .. } | Command::Epmd(_) => Ok(ExitCode::SUCCESS),
        Command::Ping { .. } => Ok(match node.ping(target.as_str()).await {
            Ping::Pong => {
                println!("pong");
                ExitCode::SUCCESS
            }
            Ping::Pang => {
                println!("pang");
                eprintln!("nodus: {target} connected but did not answer the ping within {timeout:?}; raise --timeout");
                ExitCode::FAILURE
            }
        }),
        Command::Nodes { json, .. } => {
            let nodes = admin::nodes(node, target, timeout).await?;
            if json {
                println!("{}", serde_json::to_string(&nodes)?);
            } else {
                for peer in nodes {
                    println!("{peer}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Info { json, .. } => {
            let info = admin::info(node, target, timeout).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&info)?);
            } else {
                print!("{}", render::info(&info));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Rpc {
            module,
            function,
            args,
            ..
        } => {
            let result = admin::rpc_json(node, target, &module, &function, &args, timeout).await?;
            println!("{result}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `nodus names`: asks a port mapper for its list, as `epmd -names`, without starting a node.
async fn names(
    port_mapper: Option<SocketAddr>,
    host: Option<&str>,
    timeout: Duration,
) -> Result<ExitCode, CliError> {
    let (addr, host) = match (port_mapper, host) {
        (Some(addr), None) => (addr, addr.ip().to_string()),
        (port_mapper, host) => {
            let host = host.unwrap_or("localhost");
            let port = match port_mapper {
                Some(addr) => addr.port(),
                None => PortMapperClient::from_env(std::net::Ipv4Addr::LOCALHOST.into())
                    .map_err(|source| CliError::PortMapper {
                        host: host.to_string(),
                        source,
                    })?
                    .addr()
                    .port(),
            };
            (resolve(host, port, timeout).await?, host.to_string())
        }
    };
    let names = PortMapperClient::new(addr)
        .with_timeout(timeout)
        .names()
        .await
        .map_err(|source| CliError::PortMapper { host, source })?;
    println!("epmd: up and running on port {} with data:", addr.port());
    for (name, port) in names {
        println!("name {name} at port {port}");
    }
    Ok(ExitCode::SUCCESS)
}

/// The address of `host` (an IPv4 one if it has any), at `port`.
async fn resolve(host: &str, port: u16, timeout: Duration) -> Result<SocketAddr, CliError> {
    let failed = |reason: String| CliError::Resolve {
        host: host.to_string(),
        reason,
    };
    let addrs: Vec<SocketAddr> =
        tokio::time::timeout(timeout, tokio::net::lookup_host((host, port)))
            .await
            .map_err(|_| failed(format!("no answer within {timeout:?}")))?
            .map_err(|e| failed(e.to_string()))?
            .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| failed("it has no address".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_parses() {
        Cli::command().debug_assert();
        let cli = Cli::parse_from([
            "nodus",
            "rpc",
            "moebi@localhost",
            "Chat",
            "receive_message",
            r#"["hi"]"#,
            "--timeout",
            "2.5",
        ]);
        assert_eq!(cli.timeout, Duration::from_millis(2500));
        assert!(
            matches!(cli.command, Command::Rpc { ref args, .. } if args == r#"["hi"]"#),
            "{cli:?}"
        );
        let cli = Cli::parse_from(["nodus", "rpc", "a@h", "M", "f"]);
        assert!(matches!(cli.command, Command::Rpc { ref args, .. } if args == "[]"));
        assert!(Cli::try_parse_from(["nodus", "ping", "no-host"]).is_err());
        assert!(Cli::try_parse_from(["nodus", "--cookie", "", "ping", "a@h"]).is_err());
        assert!(Cli::try_parse_from(["nodus", "--timeout", "0", "ping", "a@h"]).is_err());
        assert!(Cli::try_parse_from(["nodus", "--timeout", "-1", "ping", "a@h"]).is_err());
        let cli = Cli::parse_from(["nodus", "epmd", "--port", "4400", "--daemon"]);
        assert!(
            matches!(cli.command, Command::Epmd(ref a) if a.port == Some(4400) && a.daemon),
            "{cli:?}"
        );
    }

    use clap::CommandFactory;
}
