//! Nodes as separate OS processes: the `ping` example is the other node.
//!
//! `cargo test` builds the examples before it runs tests; run `cargo build --example ping`
//! first when running this binary alone.

use std::{path::PathBuf, process::Stdio, time::Duration};

use nodus::remote::{
    port_mapper::{PortMapperServer, PortMapperServerHandle},
    Cookie, Node, NodeConfig, NodeDownReason, Ping,
};
use tokio::{
    io::{AsyncBufReadExt, BufReader, Lines},
    process::{Child, ChildStdout, Command},
};

const DEADLINE: Duration = Duration::from_secs(10);

fn ping_example() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir");
    let path = dir
        .join("examples")
        .join(format!("ping{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --example ping` (cargo test builds it)",
        path.display()
    );
    path
}

struct ChildNode {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl ChildNode {
    async fn start(
        name: &str,
        epmd: &PortMapperServerHandle,
        tick_ms: u64,
        extra: &[&str],
    ) -> ChildNode {
        let mut child = Command::new(ping_example())
            .args([
                "--sname",
                name,
                "--cookie",
                "mycookie",
                "--tick-time-ms",
                &tick_ms.to_string(),
            ])
            .args(["--port-mapper", &epmd.local_addr().to_string()])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn the ping example");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut node = ChildNode {
            child,
            lines: BufReader::new(stdout).lines(),
        };
        node.expect_line(&format!("node {name} is up")).await;
        node
    }

    async fn expect_line(&mut self, prefix: &str) -> String {
        let lines = &mut self.lines;
        let found = tokio::time::timeout(DEADLINE, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.starts_with(prefix) {
                    return Some(line);
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(line)) => line,
            other => panic!("the child never printed a line starting with {prefix:?}: {other:?}"),
        }
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("child pid").to_string();
        let status = std::process::Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} {pid}");
    }
}

async fn setup(tick: Duration) -> (PortMapperServerHandle, Node) {
    let epmd = PortMapperServer::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
        .spawn();
    let node = Node::start(
        NodeConfig::sname("parent@localhost")
            .cookie(Cookie::new("mycookie").unwrap())
            .port_mapper(epmd.local_addr())
            .tick_time(tick),
    )
    .await
    .unwrap();
    (epmd, node)
}

#[tokio::test]
async fn a_killed_node_is_down_at_once_and_its_peer_pinged_us() {
    let (epmd, node) = setup(Duration::from_secs(60)).await;
    let mut child = ChildNode::start(
        "child1@localhost",
        &epmd,
        60_000,
        &["--ping", "parent@localhost"],
    )
    .await;
    assert_eq!(
        child.expect_line("parent@localhost:").await,
        "parent@localhost: pong"
    );
    assert_eq!(
        child.expect_line("Node.list:").await,
        "Node.list: [parent@localhost]"
    );
    let monitor = node
        .monitor_node(&"child1@localhost".parse().unwrap())
        .await;
    child.child.kill().await.unwrap();
    // The tick time is 60 s: only the closed connection can explain a prompt NodeDown.
    let down = tokio::time::timeout(Duration::from_secs(5), monitor)
        .await
        .expect("NodeDown at once");
    assert_eq!(down.reason, NodeDownReason::ConnectionClosed);
    assert!(node.list().is_empty());
    node.shutdown().await;
}

#[tokio::test]
async fn a_paused_node_is_down_with_tick_timeout_within_the_tick_time() {
    let tick = Duration::from_secs(1);
    let (epmd, node) = setup(tick).await;
    let child = ChildNode::start("child2@localhost", &epmd, 1_000, &[]).await;
    assert_eq!(node.ping("child2@localhost").await, Ping::Pong);
    let monitor = node
        .monitor_node(&"child2@localhost".parse().unwrap())
        .await;
    child.signal("-STOP");
    let paused = tokio::time::Instant::now();
    let down = tokio::time::timeout(DEADLINE, monitor)
        .await
        .expect("NodeDown");
    let took = paused.elapsed();
    child.signal("-CONT");
    assert_eq!(down.reason, NodeDownReason::TickTimeout);
    // Detection takes T - T/I to T after the peer's last sign of life, which came at most
    // T/I before the SIGSTOP. Bounds a loaded 2-core machine passes (the upper one has 2 s of
    // slack for scheduling two processes) and a detector not driven by the tick time fails
    // (one that waits for TCP, or for several tick times; one that fires on the first missed
    // tick is under the lower bound). The exact timing is tested on a paused clock in
    // `actor-remote`'s `transport::tests::a_silent_peer_is_a_tick_timeout`.
    assert!(took >= tick / 2, "detected too early: {took:?}");
    assert!(
        took <= tick + Duration::from_secs(2),
        "detected too late: {took:?}"
    );
    node.shutdown().await;
}

/// The CPU time (user + system) a process used so far, from `/proc/<pid>/stat`.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc stat");
    // The fields after the command (in parentheses, which may hold spaces).
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the command.
    let ticks: u64 =
        fields[11].parse::<u64>().unwrap_or(0) + fields[12].parse::<u64>().unwrap_or(0);
    Duration::from_millis(ticks * 10) // USER_HZ is 100 on Linux
}

#[tokio::test]
async fn a_node_out_of_file_descriptors_backs_off_instead_of_spinning_and_recovers() {
    let (epmd, node) = setup(Duration::from_secs(60)).await;
    // The child node may hold 64 file descriptors: the runtime, its listener and a few
    // sessions take some, so 100 idle connections exhaust them.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 64 && exec \"$0\" \"$@\"")
        .arg(ping_example())
        .args(["--sname", "tight@localhost", "--cookie", "mycookie"])
        .args(["--port-mapper", &epmd.local_addr().to_string()])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the ping example under ulimit -n 64");
    let pid = child.id().expect("child pid");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut tight = ChildNode {
        child,
        lines: BufReader::new(stdout).lines(),
    };
    tight.expect_line("node tight@localhost is up").await;
    let stderr = tight.child.stderr.take().expect("piped stderr");
    let log_lines = tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        let mut seen = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            seen.push(line);
        }
        seen
    });
    let port = nodus::remote::port_mapper::PortMapperClient::new(epmd.local_addr())
        .port_please("tight")
        .await
        .expect("the port mapper answers")
        .expect("tight is registered")
        .port;

    // 100 idle connections: none sends a handshake.
    let cpu_before = cpu_time(pid);
    let held_from = tokio::time::Instant::now();
    let mut idle = Vec::new();
    for _ in 0..100 {
        if let Ok(Ok(s)) = tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(("127.0.0.1", port)),
        )
        .await
        {
            idle.push(s);
        }
    }
    assert_eq!(idle.len(), 100, "the backlog takes every connection");
    tokio::time::sleep(Duration::from_secs(2)).await; // the load under test: held for 2 s
    let cpu = cpu_time(pid).saturating_sub(cpu_before);
    let held = held_from.elapsed();
    // A loop that retries a failing accept at once uses a whole core (~2 s here); with the
    // back-off it sleeps between tries.
    assert!(
        cpu < held / 4,
        "the node used {cpu:?} of CPU in {held:?} while out of descriptors"
    );

    // The connections close: the node serves again.
    drop(idle);
    let pong = async {
        let start = tokio::time::Instant::now();
        loop {
            if node.ping("tight@localhost").await == Ping::Pong {
                return true;
            }
            if start.elapsed() > DEADLINE {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await; // the poll interval
        }
    };
    assert!(pong.await, "a ping after the idle connections closed");
    tight.child.kill().await.expect("kill the child");
    let lines = tokio::time::timeout(DEADLINE, log_lines)
        .await
        .expect("stderr closes")
        .expect("the reader");
    // At most one line a second, and a few for the rest (a spinning loop logs ~10^5).
    assert!(
        lines.len() < 30,
        "{} log lines, the first: {:?}",
        lines.len(),
        &lines[..lines.len().min(5)]
    );
    node.shutdown().await;
}
