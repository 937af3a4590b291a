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
