//! A full mesh of more loopback TCP nodes than one process has file descriptors for.
//!
//! A mesh of n nodes has n(n-1)/2 sessions, each a socket at both ends: 200 nodes need about
//! 40,000 descriptors, twice a process's limit here (`ulimit -n` 20,000). So
//! `cargo bench --bench scale_tcp` re-executes itself as `SCALE_TCP_PROCESSES` child
//! processes (default 5; the environment variable [`CHILD_ENV`] marks a child) that share
//! `SCALE_TCP_NODES` nodes (default 200) between them, all registered with one port mapper
//! this process starts on a port the OS picks. Node `i` is told of node `i - 1` (so the
//! chain crosses every process boundary); the mesh does the rest through
//! `ControlMsg::Peers`.
//!
//! A child takes one command a line on its standard input and answers each with one line on
//! its standard output (see [`Command`]); it exits when its standard input closes, so the
//! children die with this process, and this process kills them when it is done or panics.
//! Every wait on a child is bounded (`SCALE_DEADLINE_S`, default 120 s). The figures, one
//! `key=value` line each:
//!
//! - `tcp_processes`, `tcp_nodes`;
//! - `tcp_start_s`: until every child has started its nodes;
//! - `tcp_mesh_s`: from the first dials until every node lists every other (or
//!   `tcp_mesh_s=timeout` with `tcp_mesh_sessions` and `tcp_mesh_expected`);
//! - `tcp_rss_per_node_kb`: the resident set the children added by starting their nodes, per
//!   node; `tcp_rss_per_node_meshed_kb`: the same once meshed (so with the node's n - 1
//!   sessions);
//! - `tcp_fds_per_process`: the most descriptors one child held once meshed;
//! - `tcp_down_detect_s`: from halting one node (a graceless stop; its sockets close) until
//!   every other node stopped listing it;
//! - `tcp_kill_detect_s`: from `SIGKILL` of a whole child process until no node of the other
//!   children lists any of its nodes.

use std::{
    io::{BufRead, BufReader, Write},
    process::{Child, ChildStdin, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use nodus::{
    remote::{port_mapper::PortMapperServer, Node},
    NodeName,
};
use tokio::io::{AsyncBufReadExt, BufReader as AsyncBufReader};

#[path = "support/scale_common.rs"]
mod scale_common;
use scale_common::{config, env_usize, open_fds, rss_kb};

/// Set in a child: `<port mapper address> <first node> <node count>`.
const CHILD_ENV: &str = "NODUS_SCALE_TCP_CHILD";

/// The name of node `i`.
fn name(i: usize) -> String {
    format!("t{i}@localhost")
}

/// The commands a child takes, one a line, each answered with one line.
///
/// - `mesh`: each of its nodes but node 0 starts connecting to the node before it;
///   answer `ok`.
/// - `count`: answer `count <sum of Node::list lengths>`.
/// - `listing <first> <n>`: answer `listing <k>`, how many (node, peer) pairs of its live
///   nodes have a peer among nodes `first..first + n`.
/// - `halt <i>`: halts node `i` if it is one of its own; answer `ok`.
/// - `stats`: answer `stats <rss KiB> <open descriptors>`.
///
/// Once its nodes are up a child says `up <rss before KiB> <rss after KiB>`; a command it
/// does not know is answered `error <what>`.
enum Command {
    Mesh,
    Count,
    Listing(usize, usize),
    Halt(usize),
    Stats,
}

impl Command {
    fn parse(line: &str) -> Option<Self> {
        let mut words = line.split_whitespace();
        let command = match words.next()? {
            "mesh" => Self::Mesh,
            "count" => Self::Count,
            "listing" => Self::Listing(words.next()?.parse().ok()?, words.next()?.parse().ok()?),
            "halt" => Self::Halt(words.next()?.parse().ok()?),
            "stats" => Self::Stats,
            _ => return None,
        };
        Some(command)
    }
}

/// A child: starts its nodes, then serves commands until its standard input closes.
async fn child(spec: &str) {
    let mut words = spec.split_whitespace();
    let (Some(addr), Some(first), Some(count)) = (
        words.next().and_then(|a| a.parse().ok()),
        words.next().and_then(|a| a.parse::<usize>().ok()),
        words.next().and_then(|a| a.parse::<usize>().ok()),
    ) else {
        panic!("{CHILD_ENV}={spec:?}: expected `<port mapper> <first> <count>`");
    };
    let before = rss_kb();
    let mut nodes: Vec<(usize, Option<Node>)> = Vec::with_capacity(count);
    for i in first..first + count {
        let config = config(&name(i))
            .port_mapper(addr)
            .listen([127, 0, 0, 1].into(), 0);
        let node = Node::start(config).await.expect("a TCP node starts");
        nodes.push((i, Some(node)));
    }
    println!("up {before} {}", rss_kb());
    let mut lines = AsyncBufReader::new(tokio::io::stdin()).lines();
    // Ends when the parent closes our stdin, or exits.
    while let Ok(Some(line)) = lines.next_line().await {
        let answer = match Command::parse(&line) {
            None => format!("error unknown command {line:?}"),
            Some(Command::Mesh) => {
                for (i, node) in &nodes {
                    if let (Some(node), Some(prev)) = (node, i.checked_sub(1)) {
                        let (node, prev) = (node.clone(), name(prev));
                        tokio::spawn(async move {
                            let Ok(prev) = prev.parse::<NodeName>() else {
                                return;
                            };
                            if let Err(e) = node.connect(&prev).await {
                                eprintln!("a first dial failed (the mesh may come anyway): {e}");
                            }
                        });
                    }
                }
                "ok".into()
            }
            Some(Command::Count) => {
                let sum: usize = nodes
                    .iter()
                    .flat_map(|(_, n)| n)
                    .map(|n| n.list().len())
                    .sum();
                format!("count {sum}")
            }
            Some(Command::Listing(from, n)) => {
                let gone: Vec<String> = (from..from + n).map(name).collect();
                let k: usize = nodes
                    .iter()
                    .flat_map(|(_, n)| n)
                    .map(|node| {
                        let list = node.list();
                        list.iter()
                            .filter(|p| gone.iter().any(|g| g == p.as_str()))
                            .count()
                    })
                    .sum();
                format!("listing {k}")
            }
            Some(Command::Halt(victim)) => {
                for (i, node) in &mut nodes {
                    if *i == victim {
                        if let Some(node) = node.take() {
                            node.halt().await;
                        }
                    }
                }
                "ok".into()
            }
            Some(Command::Stats) => format!("stats {} {}", rss_kb(), open_fds()),
        };
        println!("{answer}");
    }
    std::process::exit(0);
}

/// One child process, seen from the parent; killed when dropped (so also on a panic).
struct Proc {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
    /// Its nodes: `first..first + count`.
    first: usize,
    count: usize,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    fn spawn(port_mapper: std::net::SocketAddr, first: usize, count: usize) -> Self {
        let exe = std::env::current_exe().expect("bench setup: current_exe unavailable");
        let mut child = std::process::Command::new(exe)
            .env(CHILD_ENV, format!("{port_mapper} {first} {count}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("bench setup: cannot start a child process");
        let stdin = child.stdin.take().expect("bench setup: no child stdin");
        let stdout = child.stdout.take().expect("bench setup: no child stdout");
        // Bounded: a child answers one line per command, and we ask one at a time.
        let (tx, lines) = mpsc::sync_channel(16);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            stdin,
            lines,
            first,
            count,
        }
    }

    fn send(&mut self, command: &str) {
        writeln!(self.stdin, "{command}")
            .and_then(|()| self.stdin.flush())
            .expect("a child's stdin closed: it died (see its stderr above)");
    }

    /// The child's next line, waiting at most until `until`.
    fn line(&self, until: Instant) -> String {
        let left = until.saturating_duration_since(Instant::now());
        self.lines
            .recv_timeout(left)
            .unwrap_or_else(|e| panic!("no line from the child of nodes {}..: {e}", self.first))
    }
}

/// Sends `command` to every child, then collects their answers' numbers (the words after the
/// first), in child order.
fn ask_all(procs: &mut [Proc], command: &str, until: Instant) -> Vec<Vec<u64>> {
    for p in procs.iter_mut() {
        p.send(command);
    }
    procs
        .iter()
        .map(|p| {
            let line = p.line(until);
            line.split_whitespace()
                .skip(1)
                .map(|w| {
                    w.parse()
                        .unwrap_or_else(|_| panic!("`{command}` answered {line:?}"))
                })
                .collect()
        })
        .collect()
}

/// The sum of the first numbers of every child's answer to `command`.
fn sum(procs: &mut [Proc], command: &str, until: Instant) -> u64 {
    ask_all(procs, command, until).iter().map(|v| v[0]).sum()
}

/// How often to ask the children again.
const POLL: Duration = Duration::from_millis(50);

/// Polls `listing <first> <n>` until no child lists those nodes: the seconds since
/// `started`, or `None` at `until`.
fn until_unlisted(
    procs: &mut [Proc],
    first: usize,
    n: usize,
    started: Instant,
    until: Instant,
) -> Option<f64> {
    loop {
        if sum(procs, &format!("listing {first} {n}"), until) == 0 {
            return Some(started.elapsed().as_secs_f64());
        }
        if Instant::now() + POLL > until {
            return None;
        }
        std::thread::sleep(POLL); // the poll interval
    }
}

fn parent() {
    let n = env_usize("SCALE_TCP_NODES", 200).max(2);
    let processes = env_usize("SCALE_TCP_PROCESSES", 5).clamp(2, n);
    let deadline = Duration::from_secs(env_usize("SCALE_DEADLINE_S", 120) as u64);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let epmd = runtime.block_on(async {
        PortMapperServer::bind("127.0.0.1:0".parse().expect("an address"))
            .await
            .expect("a port mapper")
            .spawn()
    });

    // Start the children, each with its share of the nodes.
    let started = Instant::now();
    let until = started + deadline;
    let mut procs: Vec<Proc> = (0..processes)
        .map(|k| {
            let first = k * n / processes;
            let count = (k + 1) * n / processes - first;
            Proc::spawn(epmd.local_addr(), first, count)
        })
        .collect();
    let ups: Vec<(u64, u64)> = procs
        .iter()
        .map(|p| {
            let line = p.line(until);
            let mut words = line.split_whitespace().skip(1).map(|w| w.parse().ok());
            match (line.starts_with("up "), words.next(), words.next()) {
                (true, Some(Some(before)), Some(Some(after))) => (before, after),
                _ => panic!("a child said {line:?} instead of `up <rss> <rss>`"),
            }
        })
        .collect();
    println!("tcp_processes={processes}");
    println!("tcp_nodes={n}");
    println!("tcp_start_s={:.2}", started.elapsed().as_secs_f64());
    let added: u64 = ups
        .iter()
        .map(|(before, after)| after.saturating_sub(*before))
        .sum();
    println!("tcp_rss_per_node_kb={}", added / n as u64);

    // Mesh: every child dials, then poll the sessions.
    let started = Instant::now();
    let until = started + deadline;
    ask_all(&mut procs, "mesh", until);
    let expected = (n * (n - 1) / 2) as u64;
    let mut report = Duration::from_secs(5);
    let meshed = loop {
        let up = sum(&mut procs, "count", until) / 2;
        if up == expected {
            break Some(started.elapsed().as_secs_f64());
        }
        if Instant::now() + POLL > until {
            println!("tcp_mesh_sessions={up}");
            println!("tcp_mesh_expected={expected}");
            break None;
        }
        if started.elapsed() > report {
            // Progress on stderr (stdout is key=value only).
            eprintln!("meshing: {up} of {expected} sessions after {report:?}");
            report += Duration::from_secs(5);
        }
        std::thread::sleep(POLL); // the poll interval
    };
    match meshed {
        Some(secs) => println!("tcp_mesh_s={secs:.2}"),
        None => println!("tcp_mesh_s=timeout"),
    }
    let stats = ask_all(&mut procs, "stats", until);
    let meshed_rss: u64 = stats
        .iter()
        .zip(&ups)
        .map(|(s, (before, _))| s[0].saturating_sub(*before))
        .sum();
    println!("tcp_rss_per_node_meshed_kb={}", meshed_rss / n as u64);
    let fds = stats.iter().map(|s| s[1]).max().unwrap_or(0);
    println!("tcp_fds_per_process={fds}");

    // Halt node 0 (in the first child).
    let started = Instant::now();
    ask_all(&mut procs[..1], "halt 0", started + deadline);
    match until_unlisted(&mut procs, 0, 1, started, started + deadline) {
        Some(secs) => println!("tcp_down_detect_s={secs:.3}"),
        None => println!("tcp_down_detect_s=timeout"),
    }

    // Kill the last child, and with it its nodes.
    let mut victim = procs.pop().expect("at least two children");
    let started = Instant::now();
    let _ = victim.child.kill();
    let (first, count) = (victim.first, victim.count);
    drop(victim);
    match until_unlisted(&mut procs, first, count, started, started + deadline) {
        Some(secs) => println!("tcp_kill_detect_s={secs:.3}"),
        None => println!("tcp_kill_detect_s=timeout"),
    }
    drop(procs);
    runtime.block_on(epmd.shutdown());
}

fn main() {
    match std::env::var(CHILD_ENV) {
        Ok(spec) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime")
            .block_on(child(&spec)),
        Err(_) => parent(),
    }
}
