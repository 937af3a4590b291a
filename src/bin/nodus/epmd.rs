//! `nodus epmd`: the port mapper as a process of its own, as `epmd`.
//!
//! ```sh
//! nodus epmd                              # serve on 0.0.0.0:4369 (ERL_EPMD_PORT) until Ctrl-C
//! nodus epmd --port 4400 --address 127.0.0.1
//! nodus epmd --daemon [--pidfile PATH]    # as `epmd -daemon`: detach, exit once it answers
//! ```
//!
//! With `--daemon` the command starts itself again without `--daemon`, detached (its own
//! process group, stdin/stdout/stderr to `/dev/null`), waits (bounded by `--timeout`) until
//! the port mapper answers a `NAMES` request, prints the daemon's pid and exits 0. If a
//! port mapper already answers on the port (an epmd, another daemon), it says so and exits
//! 0 too, as `epmd -daemon` does. A node configured with `PortMapperMode::Process` runs
//! `nodus epmd --address IP --port PORT --daemon` when no port mapper answers. Stop the
//! daemon with `kill PID` (the pid it printed, or the one in `--pidfile`); the names
//! registered with it are gone then, and a real epmd can take the port.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::PathBuf,
    process::{ExitCode, Stdio},
    time::Duration,
};

use nodus::remote::port_mapper::{PortMapperClient, PortMapperError, PortMapperServer};

/// Why `nodus epmd` failed; each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum EpmdError {
    #[error("{0}; stop the port mapper already on that port, or pick another with --port")]
    Bind(#[source] PortMapperError),
    #[error("cannot write the pid file {path}: {source}; give a writable path")]
    Pidfile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start the daemon ({0}); run `nodus epmd` in the foreground to see why")]
    Spawn(String),
    #[error("the daemon exited with {status} before answering; run `nodus epmd` in the foreground to see why")]
    Exited { status: std::process::ExitStatus },
    #[error("the daemon (pid {pid}) did not answer within {timeout:?}: {last}; raise --timeout, or kill it")]
    NoAnswer {
        pid: u32,
        timeout: Duration,
        last: PortMapperError,
    },
}

/// The arguments of `nodus epmd`.
#[derive(clap::Args, Debug)]
pub struct EpmdArgs {
    /// The port to listen on [default: ERL_EPMD_PORT, else 4369].
    #[arg(long)]
    pub port: Option<u16>,
    /// The address to listen on (0.0.0.0, every interface, as epmd; 127.0.0.1 for this host
    /// only).
    #[arg(long, default_value = "0.0.0.0")]
    pub address: IpAddr,
    /// Detach and exit once the port mapper answers, as `epmd -daemon`.
    #[arg(long)]
    pub daemon: bool,
    /// Write the serving process's pid to this file once it listens.
    #[arg(long, value_name = "PATH")]
    pub pidfile: Option<PathBuf>,
}

/// Runs `nodus epmd`.
pub async fn run(args: EpmdArgs, timeout: Duration) -> Result<ExitCode, EpmdError> {
    let port = match args.port {
        Some(p) => p,
        None => PortMapperClient::from_env(Ipv4Addr::LOCALHOST.into())
            .map_err(EpmdError::Bind)?
            .addr()
            .port(),
    };
    let bind = SocketAddr::new(args.address, port);
    if args.daemon {
        daemon(bind, args.pidfile, timeout).await
    } else {
        serve(bind, args.pidfile).await
    }
}

/// Serves in the foreground until Ctrl-C or SIGTERM.
async fn serve(bind: SocketAddr, pidfile: Option<PathBuf>) -> Result<ExitCode, EpmdError> {
    let server = PortMapperServer::bind(bind)
        .await
        .map_err(EpmdError::Bind)?;
    if let Some(path) = &pidfile {
        std::fs::write(path, format!("{}\n", std::process::id())).map_err(|source| {
            EpmdError::Pidfile {
                path: path.clone(),
                source,
            }
        })?;
    }
    eprintln!(
        "nodus epmd: listening on {} (pid {})",
        server.local_addr(),
        std::process::id()
    );
    server.run(stopped()).await;
    if let Some(path) = &pidfile {
        let _ = std::fs::remove_file(path);
    }
    Ok(ExitCode::SUCCESS)
}

/// Completes on Ctrl-C or SIGTERM.
async fn stopped() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Starts this program again in the foreground mode, detached, and waits for it to answer.
async fn daemon(
    bind: SocketAddr,
    pidfile: Option<PathBuf>,
    timeout: Duration,
) -> Result<ExitCode, EpmdError> {
    let ask = match bind.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::from((Ipv4Addr::LOCALHOST, bind.port()))
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, bind.port()))
        }
        _ => bind,
    };
    let client = PortMapperClient::new(ask).with_timeout(timeout);
    if client.names().await.is_ok() {
        println!("nodus epmd: a port mapper already answers on {ask}");
        return Ok(ExitCode::SUCCESS);
    }
    let exe = std::env::current_exe().map_err(|e| EpmdError::Spawn(e.to_string()))?;
    let mut command = std::process::Command::new(exe);
    command
        .arg("epmd")
        .arg("--address")
        .arg(bind.ip().to_string())
        .arg("--port")
        .arg(bind.port().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(path) = &pidfile {
        command.arg("--pidfile").arg(path);
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        command.process_group(0); // a terminal's Ctrl-C to our group does not reach it
    }
    let mut child = command
        .spawn()
        .map_err(|e| EpmdError::Spawn(e.to_string()))?;
    let pid = child.id();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let last = match client.names().await {
            Ok(_) => break,
            Err(e) => e,
        };
        if let Ok(Some(status)) = child.try_wait() {
            // Lost the port to another port mapper that answers now? Then that one serves.
            if client.names().await.is_ok() {
                println!("nodus epmd: a port mapper already answers on {ask}");
                return Ok(ExitCode::SUCCESS);
            }
            return Err(EpmdError::Exited { status });
        }
        if tokio::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(EpmdError::NoAnswer { pid, timeout, last });
        }
        tokio::time::sleep(Duration::from_millis(20)).await; // poll until the deadline
    }
    // Not waited for: the daemon outlives this process and is reparented to init.
    drop(child);
    println!("nodus epmd: running as pid {pid} on {bind}");
    Ok(ExitCode::SUCCESS)
}
