//! The port mapper as its own process (issue 13, item 5): a node configured with
//! `PortMapperMode::Process` that finds no port mapper starts `nodus epmd --daemon`, which
//! outlives it; and a program that cannot be started falls back to the embedded mapper.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use nodus::remote::{
    port_mapper::{PortMapperClient, PortMapperError, PortMapperMode},
    Cookie, Node, NodeConfig,
};

type Res = Result<(), Box<dyn std::error::Error>>;

/// The bound on every poll below.
const LIMIT: Duration = Duration::from_secs(10);

/// A loopback address on a port the OS chose (closed again, so a port mapper can take it).
fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

fn config(name: &str, epmd: SocketAddr, mode: PortMapperMode) -> NodeConfig {
    NodeConfig::sname(name)
        .cookie(Cookie::new("epmd-test").unwrap())
        .port_mapper(epmd)
        .port_mapper_mode(mode)
}

async fn names(epmd: SocketAddr) -> Result<Vec<String>, PortMapperError> {
    let names = PortMapperClient::new(epmd)
        .with_timeout(Duration::from_secs(5))
        .names()
        .await?;
    Ok(names.into_iter().map(|(name, _)| name).collect())
}

/// Polls `check` until it holds, for at most [`LIMIT`].
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + LIMIT;
    while !check().await {
        assert!(Instant::now() < deadline, "not within {LIMIT:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await; // poll with a bounded deadline
    }
}

/// Kills the daemon whose pid is in the file, when dropped (also when the test fails).
struct Daemon(PathBuf);

impl Daemon {
    fn pid(&self) -> Option<i32> {
        std::fs::read_to_string(&self.0).ok()?.trim().parse().ok()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(pid) = self.pid() {
            let _ = terminate(pid);
        }
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Sends SIGTERM to `pid` with kill(1) (the workspace forbids `unsafe`); whether it was
/// delivered.
fn terminate(pid: i32) -> bool {
    std::process::Command::new("kill")
        .arg(pid.to_string())
        .status()
        .is_ok_and(|s| s.success())
}

fn pidfile(test: &str) -> PathBuf {
    std::env::temp_dir().join(format!("nodus-{test}-{}.pid", std::process::id()))
}

fn process_mode(program: &Path, pidfile: &Path) -> PortMapperMode {
    PortMapperMode::Process {
        program: program.to_path_buf(),
        args: vec!["--pidfile".into(), pidfile.into()],
    }
}

#[tokio::test]
async fn a_node_starts_a_detached_port_mapper_that_outlives_it() -> Res {
    let epmd = free_addr();
    let daemon = Daemon(pidfile("epmd-daemon"));
    let nodus = Path::new(env!("CARGO_BIN_EXE_nodus"));
    assert!(
        matches!(names(epmd).await, Err(PortMapperError::Unreachable { .. })),
        "nothing answers before the node starts"
    );

    let a = Node::start(config("a@localhost", epmd, process_mode(nodus, &daemon.0))).await?;
    assert_eq!(names(epmd).await?, vec!["a".to_string()]);
    let pid = daemon.pid().expect("the daemon wrote its pid file");
    assert_ne!(
        pid as u32,
        std::process::id(),
        "the port mapper is another process"
    );

    a.shutdown().await;
    // The port mapper still runs and answers; a's name is gone with its registration.
    eventually("a unregisters", async || {
        names(epmd).await.is_ok_and(|n| n.is_empty())
    })
    .await;

    // Another node registers with it, and must not start one of its own.
    let b = Node::start(config("b@localhost", epmd, PortMapperMode::None)).await?;
    assert_eq!(names(epmd).await?, vec!["b".to_string()]);
    b.shutdown().await;

    assert!(terminate(pid), "the daemon runs");
    eventually("the daemon stops on SIGTERM", async || {
        matches!(names(epmd).await, Err(PortMapperError::Unreachable { .. }))
    })
    .await;
    Ok(())
}

#[tokio::test]
async fn a_program_that_cannot_start_falls_back_to_the_embedded_port_mapper() -> Res {
    let epmd = free_addr();
    let missing = Path::new("/nonexistent/nodus-epmd");
    let daemon = Daemon(pidfile("epmd-missing"));
    let a = Node::start(config(
        "a@localhost",
        epmd,
        process_mode(missing, &daemon.0),
    ))
    .await?;
    assert_eq!(names(epmd).await?, vec!["a".to_string()]);
    assert!(daemon.pid().is_none(), "no daemon was started");
    a.shutdown().await;
    // The embedded mapper went with the node.
    eventually("the embedded port mapper stops with its node", async || {
        matches!(names(epmd).await, Err(PortMapperError::Unreachable { .. }))
    })
    .await;

    // With `None` and nothing answering, starting fails with a typed error.
    let Err(err) = Node::start(config("c@localhost", epmd, PortMapperMode::None)).await else {
        panic!("no port mapper and mode None: the node must not start");
    };
    assert!(err.to_string().contains("no port mapper answers"), "{err}");
    Ok(())
}
