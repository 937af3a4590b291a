//! The embedded port mapper: an epmd that lives inside a node, and the rule that decides
//! whether a node uses it.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::oneshot,
    task::{JoinHandle, JoinSet},
};

use super::{
    client::{PortMapperClient, PortMapperError},
    proto::{
        self, Alive2Reply, DecodeError, NamesReply, NodeInfo, PortPleaseReply, Request,
        MAX_NAME_LEN,
    },
};

/// How long a connection may take to send its request before the server closes it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The most connections the server holds at once (each registration holds one for the
/// node's life); more wait in the listener's backlog.
const MAX_CONNECTIONS: usize = 4096;

/// The registered names, shared by the server's connection tasks.
#[derive(Debug, Default)]
struct Registry {
    nodes: BTreeMap<String, (u64, NodeInfo)>,
    next_creation: u32,
    next_conn: u64,
}

impl Registry {
    fn lock(this: &Mutex<Registry>) -> std::sync::MutexGuard<'_, Registry> {
        // The critical sections can't panic halfway through an update.
        this.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next creation number: increasing, never 0.
    fn creation(&mut self) -> u32 {
        self.next_creation = self.next_creation.checked_add(1).unwrap_or(1);
        self.next_creation
    }
}

/// An epmd-compatible port mapper running inside this process.
///
/// It serves `ALIVE2` (a name stays registered while its connection is open; a duplicate
/// name gets result 1), `PORT_PLEASE2` and `NAMES` (each answered, then the connection is
/// closed), with epmd's byte layouts, so BEAM nodes and `epmd -names` can use it. Anything
/// else (an unknown request, a malformed or oversized one, a silent connection) closes that
/// connection with a logged reason and never affects the others.
///
/// ```no_run
/// use actor_remote::port_mapper::{PortMapperClient, PortMapperServer};
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let server = PortMapperServer::bind("127.0.0.1:0".parse()?).await?.spawn();
/// let client = PortMapperClient::new(server.local_addr());
/// assert!(client.names().await?.is_empty());
/// server.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct PortMapperServer {
    listener: TcpListener,
    local_addr: SocketAddr,
    registry: Arc<Mutex<Registry>>,
}

impl PortMapperServer {
    /// Listens on `addr`; port 0 lets the OS choose (see [`local_addr`](Self::local_addr)).
    ///
    /// # Errors
    ///
    /// [`PortMapperError::Bind`] if the address can't be bound, for example because another
    /// port mapper listens there (`source.kind()` is then `AddrInUse`).
    pub async fn bind(addr: SocketAddr) -> Result<Self, PortMapperError> {
        let bind_error = |source| PortMapperError::Bind { addr, source };
        let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
        let local_addr = listener.local_addr().map_err(bind_error)?;
        // Start creations at a random point, as epmd does, so a restarted port mapper is
        // unlikely to hand a restarted node the creation of its previous incarnation. The
        // lower 30 bits leave room to count up without wrapping.
        let mut seed = [0u8; 4];
        let next_creation = match getrandom::fill(&mut seed) {
            Ok(()) => u32::from_be_bytes(seed) >> 2,
            Err(_) => 0,
        };
        let registry = Registry {
            next_creation,
            ..Registry::default()
        };
        tracing::debug!(%local_addr, "embedded port mapper listening");
        Ok(PortMapperServer {
            listener,
            local_addr,
            registry: Arc::new(Mutex::new(registry)),
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` completes. Returning (or dropping this future) closes every
    /// connection, so every name registered here is gone.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        let mut connections = JoinSet::new();
        let mut backoff = crate::proto::accept::AcceptBackoff::new();
        let mut pause: Option<std::time::Duration> = None;
        tokio::pin!(shutdown);
        loop {
            if let Some(p) = pause.take() {
                // The back-off after a failed accept, still answering a shutdown.
                tokio::select! {
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(p) => {}
                }
            }
            tokio::select! {
                () = &mut shutdown => break,
                accepted = self.listener.accept(), if connections.len() < MAX_CONNECTIONS => match accepted {
                    Ok((stream, peer)) => {
                        backoff.succeeded();
                        let registry = Arc::clone(&self.registry);
                        let epmd_port = self.local_addr.port();
                        connections.spawn(serve_connection(stream, peer, registry, epmd_port));
                    }
                    // Per-connection failures (the peer reset before accept, out of file
                    // descriptors for a moment) must not stop the server, nor spin it.
                    Err(e) => {
                        let after = backoff.failed(std::time::Instant::now());
                        if let Some(failures) = after.log {
                            tracing::warn!(
                                error = %e,
                                failures,
                                pause = ?after.pause,
                                "port mapper accept fails; pausing"
                            );
                        }
                        pause = Some(after.pause);
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        tracing::debug!(local_addr = %self.local_addr, "embedded port mapper stopped");
    }

    /// Runs the server on a tokio task until the returned handle is shut down or dropped.
    pub fn spawn(self) -> PortMapperServerHandle {
        let local_addr = self.local_addr;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(self.run(async move {
            let _ = stopped.await;
        }));
        PortMapperServerHandle {
            local_addr,
            stop: Some(stop),
            task,
        }
    }
}

/// A running [`PortMapperServer`]. Dropping it stops the server (without waiting).
#[derive(Debug)]
pub struct PortMapperServerHandle {
    local_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl PortMapperServerHandle {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops the server and waits until it has closed every connection.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for PortMapperServerHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Why a connection was closed before its request was served.
#[derive(Debug, thiserror::Error)]
enum ConnectionError {
    #[error("{0}")]
    Decode(#[from] DecodeError),
    #[error("closed before sending a whole request")]
    Truncated,
    #[error("sent no whole request within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("tried to register a name of {0} bytes (epmd takes 1 to {MAX_NAME_LEN})")]
    BadName(usize),
}

async fn serve_connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    registry: Arc<Mutex<Registry>>,
    epmd_port: u16,
) {
    let request = match tokio::time::timeout(REQUEST_TIMEOUT, read_request(&mut stream)).await {
        Ok(Ok(request)) => request,
        Ok(Err(reason)) => {
            tracing::warn!(%peer, %reason, "port mapper closed a connection");
            return;
        }
        Err(_) => {
            tracing::warn!(%peer, reason = %ConnectionError::Timeout(REQUEST_TIMEOUT), "port mapper closed a connection");
            return;
        }
    };
    let outcome = match request {
        Request::Alive2(info) => serve_alive2(stream, peer, &registry, info).await,
        Request::PortPlease2 { name } => {
            let found = Registry::lock(&registry)
                .nodes
                .get(&name)
                .map(|(_, info)| info.clone());
            tracing::trace!(%peer, %name, found = found.is_some(), "PORT_PLEASE2");
            let reply = match found {
                Some(info) => PortPleaseReply::Found(info),
                None => PortPleaseReply::NotFound { result: 1 },
            };
            let mut out = Vec::new();
            match proto::encode_port_please_reply(&reply, &mut out) {
                Ok(()) => write_and_close(stream, &out).await,
                // Registered names were checked on ALIVE2; this can't happen, but a bad
                // entry must not crash the server.
                Err(e) => Err(std::io::Error::other(e).into()),
            }
        }
        Request::Names => {
            let names = Registry::lock(&registry)
                .nodes
                .values()
                .map(|(_, info)| (info.name.clone(), info.port))
                .collect();
            tracing::trace!(%peer, "NAMES");
            let mut out = Vec::new();
            proto::encode_names_reply(
                &NamesReply {
                    epmd_port: u32::from(epmd_port),
                    names,
                },
                &mut out,
            );
            write_and_close(stream, &out).await
        }
    };
    if let Err(reason) = outcome {
        tracing::warn!(%peer, %reason, "port mapper closed a connection");
    }
}

async fn read_request(stream: &mut TcpStream) -> Result<Request, ConnectionError> {
    let mut buf = Vec::with_capacity(64);
    let mut chunk = [0u8; 256];
    loop {
        if let Some((request, _used)) = proto::decode_request(&buf, proto::MAX_REQUEST_LEN)? {
            return Ok(request);
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(ConnectionError::Truncated);
        }
        // decode_request bounds the request at MAX_REQUEST_LEN + 2 bytes, so buf stays small.
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn write_and_close(mut stream: TcpStream, bytes: &[u8]) -> Result<(), ConnectionError> {
    stream.write_all(bytes).await?;
    stream.shutdown().await?;
    Ok(())
}

async fn serve_alive2(
    mut stream: TcpStream,
    peer: SocketAddr,
    registry: &Mutex<Registry>,
    info: NodeInfo,
) -> Result<(), ConnectionError> {
    if info.name.is_empty() || info.name.len() > MAX_NAME_LEN {
        return Err(ConnectionError::BadName(info.name.len()));
    }
    let name = info.name.clone();
    let granted = {
        let mut reg = Registry::lock(registry);
        if reg.nodes.contains_key(&name) {
            None
        } else {
            let creation = reg.creation();
            reg.next_conn += 1;
            let conn = reg.next_conn;
            reg.nodes.insert(name.clone(), (conn, info.clone()));
            Some((conn, creation))
        }
    };
    let Some((conn, creation)) = granted else {
        tracing::info!(%peer, %name, "refused ALIVE2: the name is registered already");
        let mut out = Vec::new();
        proto::encode_alive2_reply(
            &Alive2Reply {
                result: 1,
                creation: 0,
                old_form: false,
            },
            &mut out,
        );
        return write_and_close(stream, &out).await;
    };
    tracing::debug!(%peer, %name, port = info.port, creation, "registered");
    let mut out = Vec::new();
    proto::encode_alive2_reply(
        &Alive2Reply {
            result: 0,
            creation,
            old_form: false,
        },
        &mut out,
    );
    // Whatever ends this connection (the peer closing it, an error, the server stopping and
    // dropping this task) unregisters the name, through the guard.
    let _guard = Unregister {
        registry,
        name: &name,
        conn,
    };
    stream.write_all(&out).await?;
    let mut sink = [0u8; 64];
    loop {
        match stream.read(&mut sink).await {
            Ok(0) => break,
            // epmd keeps the registration if a node sends more; so do we.
            Ok(n) => tracing::debug!(%peer, %name, bytes = n, "ignored bytes after ALIVE2"),
            Err(e) => {
                tracing::debug!(%peer, %name, error = %e, "registration connection failed");
                break;
            }
        }
    }
    tracing::debug!(%peer, %name, "unregistered: connection closed");
    Ok(())
}

/// Removes a registration when its connection task ends, however it ends.
struct Unregister<'a> {
    registry: &'a Mutex<Registry>,
    name: &'a str,
    conn: u64,
}

impl Drop for Unregister<'_> {
    fn drop(&mut self) {
        let mut reg = Registry::lock(self.registry);
        if reg
            .nodes
            .get(self.name)
            .is_some_and(|(conn, _)| *conn == self.conn)
        {
            reg.nodes.remove(self.name);
        }
    }
}

/// The port mapper a node uses: a client, and the embedded server if this node started it.
///
/// Returned by [`ensure_port_mapper`]. The embedded server, if any, lives as long as this
/// handle: drop it (or stop the node holding it) and the server stops, and every name
/// registered with it, including other nodes' names, is gone.
#[derive(Debug)]
pub struct PortMapperHandle {
    pub(super) client: PortMapperClient,
    pub(super) server: Option<PortMapperServerHandle>,
}

impl PortMapperHandle {
    /// A client for the port mapper in use.
    pub fn client(&self) -> &PortMapperClient {
        &self.client
    }

    /// Whether this handle started (and owns) the embedded server.
    pub fn is_embedded(&self) -> bool {
        self.server.is_some()
    }

    /// The port mapper's address.
    pub fn addr(&self) -> SocketAddr {
        self.client.addr()
    }

    /// Stops the embedded server if this handle owns one, and waits until it has stopped.
    pub async fn shutdown(self) {
        if let Some(server) = self.server {
            server.shutdown().await;
        }
    }
}

/// Finds a port mapper at `addr`, or starts the embedded one there.
///
/// This is what `erl -sname` does with epmd: if something answers a `NAMES` request at
/// `addr` (epmd, or another node's embedded server), use it; if the connection is refused,
/// bind a [`PortMapperServer`] on `addr`. If that bind loses a race with another process
/// starting its own port mapper (address in use), ask `addr` once more and use the winner.
/// The embedded server lives as long as the returned handle.
///
/// # Errors
///
/// Whatever the probe returns other than [`PortMapperError::Unreachable`] (a timeout, an
/// answer that is not epmd's), [`PortMapperError::Bind`] if the bind fails for another
/// reason, or the second probe's error.
pub async fn ensure_port_mapper(addr: SocketAddr) -> Result<PortMapperHandle, PortMapperError> {
    ensure_port_mapper_with(PortMapperClient::new(addr), addr).await
}

/// [`ensure_port_mapper`], but an embedded server it starts listens on `bind` (for example
/// `0.0.0.0:4369`, every interface, as epmd does, so that nodes on other hosts can look this
/// host's nodes up), while this node talks to it at `addr`.
///
/// # Errors
/// As [`ensure_port_mapper`].
pub async fn ensure_port_mapper_on(
    addr: SocketAddr,
    bind: SocketAddr,
) -> Result<PortMapperHandle, PortMapperError> {
    ensure_port_mapper_with(PortMapperClient::new(addr), bind).await
}

/// [`ensure_port_mapper`] with a configured client (its timeout bounds the probes), binding
/// an embedded server on `bind`.
pub(crate) async fn ensure_port_mapper_with(
    client: PortMapperClient,
    bind: SocketAddr,
) -> Result<PortMapperHandle, PortMapperError> {
    let addr = client.addr();
    match client.names().await {
        Ok(_) => {
            tracing::debug!(%addr, "using the running port mapper");
            return Ok(PortMapperHandle {
                client,
                server: None,
            });
        }
        Err(PortMapperError::Unreachable { .. }) => {}
        Err(e) => return Err(e),
    }
    match PortMapperServer::bind(bind).await {
        Ok(server) => {
            tracing::info!(%addr, %bind, "no port mapper answered; started the embedded one");
            let server = server.spawn();
            Ok(PortMapperHandle {
                client,
                server: Some(server),
            })
        }
        Err(PortMapperError::Bind { source, .. })
            if source.kind() == std::io::ErrorKind::AddrInUse =>
        {
            tracing::debug!(%addr, "another port mapper started first; using it");
            client.names().await?;
            Ok(PortMapperHandle {
                client,
                server: None,
            })
        }
        Err(e) => Err(e),
    }
}
