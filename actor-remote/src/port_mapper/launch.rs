//! How a node gets a port mapper when none answers: the embedded server, a detached
//! port-mapper process (as `erl -sname` starts `epmd -daemon`), or none at all.

use std::{ffi::OsString, net::SocketAddr, path::PathBuf, process::Stdio, time::Duration};

use super::{
    client::{PortMapperClient, PortMapperError},
    server::{ensure_port_mapper_on, PortMapperHandle},
};

/// The bound on starting a port-mapper process: the program's exit (it exits once its
/// detached daemon answers) and then the daemon's first answer, each.
pub const DAEMON_START_TIMEOUT: Duration = Duration::from_secs(5);

/// What a node does when no port mapper answers at its port mapper's address.
///
/// The default is [`PortMapperMode::Embedded`], which keeps every node self-contained (and is
/// what in-process tests use: each test starts its own in-process mapper on an OS-chosen
/// port, or lets its first node host one). [`PortMapperMode::Process`] is what `erl -sname`
/// does with `epmd -daemon`: the port mapper outlives the node that started it, so other
/// nodes (and BEAM nodes) keep their registrations when that node exits, and a real epmd can
/// take the port over once the daemon is stopped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum PortMapperMode {
    /// Host an embedded [`PortMapperServer`](super::PortMapperServer) inside the node; it
    /// lives as long as the node.
    #[default]
    Embedded,
    /// Start `program epmd --address IP --port PORT --daemon ARGS...` (the `nodus` command's
    /// `epmd` subcommand, or anything that takes those arguments), detached: its own process
    /// group, stdin/stdout/stderr to `/dev/null`. The node waits (each step bounded by
    /// [`DAEMON_START_TIMEOUT`]) for the program to exit and the daemon to answer. If the
    /// program cannot be started, fails, or its daemon does not answer, the node logs a
    /// warning saying why and hosts the embedded server instead.
    Process {
        /// The program, found on `PATH` if it has no slash (e.g. `nodus`).
        program: PathBuf,
        /// Arguments appended after `--daemon` (e.g. `--pidfile PATH`).
        args: Vec<OsString>,
    },
    /// Never start a port mapper: starting a node fails with
    /// [`PortMapperError::Unreachable`] if none answers (start one with `nodus epmd --daemon`
    /// or `epmd -daemon`).
    None,
}

impl PortMapperMode {
    /// [`PortMapperMode::Process`] running `program` with no extra arguments.
    pub fn process(program: impl Into<PathBuf>) -> Self {
        Self::Process {
            program: program.into(),
            args: Vec::new(),
        }
    }
}

/// Finds a port mapper at `addr`; if none answers, does what `mode` says (an embedded or a
/// process one listening on `bind`, or nothing). `timeout` bounds each port-mapper request.
///
/// # Errors
///
/// As [`ensure_port_mapper_on`]; with [`PortMapperMode::None`],
/// [`PortMapperError::Unreachable`] when nothing answers.
pub async fn ensure_port_mapper_mode(
    addr: SocketAddr,
    bind: SocketAddr,
    mode: &PortMapperMode,
    timeout: Duration,
) -> Result<PortMapperHandle, PortMapperError> {
    let client = PortMapperClient::new(addr).with_timeout(timeout);
    let (program, args) = match mode {
        PortMapperMode::Embedded => return ensure_port_mapper_on(addr, bind).await,
        PortMapperMode::None => {
            client.names().await?;
            return Ok(PortMapperHandle {
                client,
                server: None,
            });
        }
        PortMapperMode::Process { program, args } => (program, args),
    };
    match client.names().await {
        Ok(_) => {
            return Ok(PortMapperHandle {
                client,
                server: None,
            })
        }
        Err(PortMapperError::Unreachable { .. }) => {}
        Err(e) => return Err(e),
    }
    match start_daemon(program, args, bind, &client).await {
        Ok(()) => {
            tracing::info!(%addr, program = %program.display(), "no port mapper answered; started a port-mapper process");
            Ok(PortMapperHandle {
                client,
                server: None,
            })
        }
        Err(reason) => {
            tracing::warn!(%addr, program = %program.display(), "could not start the port-mapper process ({reason}); hosting the embedded port mapper instead");
            ensure_port_mapper_on(addr, bind).await
        }
    }
}

/// Runs `program epmd --address IP --port PORT --daemon ARGS...` detached, waits for it to
/// exit and for a port mapper to answer at the client's address; each wait bounded.
async fn start_daemon(
    program: &PathBuf,
    args: &[OsString],
    bind: SocketAddr,
    client: &PortMapperClient,
) -> Result<(), String> {
    let mut command = tokio::process::Command::new(program);
    command
        .arg("epmd")
        .arg("--address")
        .arg(bind.ip().to_string())
        .arg("--port")
        .arg(bind.port().to_string())
        .arg("--daemon")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    #[cfg(unix)]
    command.process_group(0); // out of the node's process group: the node's Ctrl-C is not its
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    let status = match tokio::time::timeout(DAEMON_START_TIMEOUT, child.wait()).await {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => return Err(format!("cannot wait for {}: {e}", program.display())),
        Err(_) => {
            let _ = child.start_kill();
            return Err(format!(
                "{} did not exit within {DAEMON_START_TIMEOUT:?}",
                program.display()
            ));
        }
    };
    // It exits with an error also when another port mapper won the port: ask anyway.
    let deadline = tokio::time::Instant::now() + DAEMON_START_TIMEOUT;
    let mut last = loop {
        match client.names().await {
            Ok(_) => return Ok(()),
            Err(e) if tokio::time::Instant::now() >= deadline => break e,
            Err(PortMapperError::Unreachable { .. }) => {
                tokio::time::sleep(Duration::from_millis(20)).await; // poll until the deadline
            }
            Err(e) => break e,
        }
    }
    .to_string();
    if !status.success() {
        last = format!("{} exited with {status}; {last}", program.display());
    }
    Err(last)
}
