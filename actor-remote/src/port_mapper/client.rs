//! The epmd client: one short connection per lookup, one long-lived connection per
//! registration.

use std::{
    future::Future,
    io,
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use actor_core::NodeName;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use super::proto::{self, DecodeError, EncodeError, NodeInfo, NodeType, PortPleaseReply, Request};

/// The port epmd listens on unless `ERL_EPMD_PORT` says otherwise.
pub const EPMD_PORT: u16 = 4369;

/// How long one port mapper operation (connect, request, reply) may take by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// The most bytes of a `NAMES` reply the client reads: about 16 000 names.
const MAX_NAMES_REPLY: usize = 1 << 20;

/// A port mapper operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PortMapperError {
    /// Nothing listens at the port mapper's address (connection refused).
    #[error("no port mapper answers at {addr}; start epmd (`epmd -daemon`) or let the node start its embedded port mapper")]
    Unreachable {
        /// The address tried.
        addr: SocketAddr,
    },
    /// The port mapper did not complete the operation in time.
    #[error("the port mapper at {addr} did not answer within {after:?}; check that it is an epmd and not overloaded, or raise the port mapper timeout")]
    Timeout {
        /// The port mapper's address.
        addr: SocketAddr,
        /// The timeout that expired.
        after: Duration,
    },
    /// The name is registered already.
    #[error(
        "the name {name} seems to be in use by another node; pick another name or stop that node"
    )]
    NameInUse {
        /// The node whose name is taken.
        name: NodeName,
    },
    /// The name can't be put in an epmd request.
    #[error("can't ask the port mapper about {name:?}: {source}")]
    InvalidName {
        /// The name given.
        name: String,
        /// Why.
        #[source]
        source: EncodeError,
    },
    /// The port mapper answered something that is not an epmd reply.
    #[error(
        "the port mapper at {addr} sent an invalid reply ({source}); check that {addr} is an epmd"
    )]
    Protocol {
        /// The port mapper's address.
        addr: SocketAddr,
        /// What was wrong with the reply.
        #[source]
        source: DecodeError,
    },
    /// The port mapper closed the connection before its reply was complete.
    #[error("the port mapper at {addr} closed the connection before replying; check that {addr} is an epmd")]
    ClosedEarly {
        /// The port mapper's address.
        addr: SocketAddr,
    },
    /// The `NAMES` reply was larger than the client accepts.
    #[error("the port mapper at {addr} sent a NAMES reply over {max} bytes; check that {addr} is an epmd")]
    ReplyTooLong {
        /// The port mapper's address.
        addr: SocketAddr,
        /// The limit.
        max: usize,
    },
    /// `ERL_EPMD_PORT` is set but is not a port number.
    #[error("ERL_EPMD_PORT={value:?} is not a port number; set it to a number from 1 to 65535 or unset it")]
    BadEnvPort {
        /// The variable's value.
        value: String,
    },
    /// Another IO error talking to the port mapper.
    #[error(
        "talking to the port mapper at {addr} failed: {source}; check the address and the network"
    )]
    Io {
        /// The port mapper's address.
        addr: SocketAddr,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The embedded port mapper could not listen on its address.
    #[error("the embedded port mapper can't listen on {addr}: {source}; free that address or set ERL_EPMD_PORT to another port")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        #[source]
        source: io::Error,
    },
}

/// Talks to one port mapper (epmd or nodus's embedded one) at a fixed address.
///
/// Cheap to clone; holds no connection. Each call opens its own connection, bounded by
/// [`timeout`](Self::timeout).
#[derive(Debug, Clone)]
pub struct PortMapperClient {
    addr: SocketAddr,
    timeout: Duration,
}

/// A node's registration with a port mapper.
///
/// Owns the connection the registration was made on: the name stays registered while this
/// value lives and is removed at once when it is dropped, because the port mapper sees the
/// connection close (this is epmd's own rule, so a crashed node leaves no stale name).
#[derive(Debug)]
pub struct Registration {
    stream: TcpStream,
    name: NodeName,
    port: u16,
    creation: u32,
    addr: SocketAddr,
}

impl Registration {
    /// The creation number the port mapper gave this incarnation of the node; never 0 with a
    /// current epmd or the embedded server.
    pub fn creation(&self) -> u32 {
        self.creation
    }

    /// The registered node.
    pub fn name(&self) -> &NodeName {
        &self.name
    }

    /// The registered distribution port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port mapper's address.
    pub fn port_mapper(&self) -> SocketAddr {
        self.addr
    }

    /// Waits until the port mapper closes the registration's connection (it stopped or
    /// died), after which the name is no longer registered.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future leaves the registration intact.
    pub async fn closed(&mut self) {
        let mut buf = [0u8; 64];
        loop {
            match self.stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                // epmd sends nothing after its reply; ignore anything that comes.
                Ok(_) => {}
            }
        }
    }
}

impl PortMapperClient {
    /// A client for the port mapper at `addr`, with the [`DEFAULT_TIMEOUT`].
    pub fn new(addr: SocketAddr) -> Self {
        PortMapperClient {
            addr,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// A client for the port mapper on `host_ip`, at port 4369 unless the environment
    /// variable `ERL_EPMD_PORT` names another, as the BEAM does.
    ///
    /// # Errors
    ///
    /// [`PortMapperError::BadEnvPort`] if `ERL_EPMD_PORT` is set but is not a port number
    /// from 1 to 65535.
    pub fn from_env(host_ip: IpAddr) -> Result<Self, PortMapperError> {
        let value = std::env::var_os("ERL_EPMD_PORT").map(|v| v.to_string_lossy().into_owned());
        Self::from_env_value(host_ip, value.as_deref())
    }

    /// [`from_env`](Self::from_env) with the variable's value given.
    pub(crate) fn from_env_value(
        host_ip: IpAddr,
        value: Option<&str>,
    ) -> Result<Self, PortMapperError> {
        let port = match value {
            None => EPMD_PORT,
            Some(v) => match v.trim().parse::<u16>() {
                Ok(p) if p != 0 => p,
                _ => {
                    return Err(PortMapperError::BadEnvPort {
                        value: v.to_owned(),
                    })
                }
            },
        };
        Ok(Self::new(SocketAddr::new(host_ip, port)))
    }

    /// Sets how long each operation may take.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The port mapper's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How long each operation may take.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Registers `node`'s name (the part before `@`) with distribution port `port`.
    ///
    /// The registration uses node type 77 (72 if `hidden`), protocol 0, versions 6/5 and the
    /// `extra` `b"nodus"` ([`NodeInfo::nodus`]). It lasts as long as the returned
    /// [`Registration`].
    ///
    /// # Errors
    ///
    /// [`PortMapperError::NameInUse`] if the name is registered already;
    /// [`PortMapperError::Unreachable`] if no port mapper listens (the node layer then starts
    /// the embedded one); [`PortMapperError::Timeout`], [`PortMapperError::Protocol`] and IO
    /// errors otherwise.
    ///
    /// # Cancel safety
    ///
    /// Cancelling it closes the connection, so a registration made meanwhile is undone.
    pub async fn register(
        &self,
        node: &NodeName,
        port: u16,
        hidden: bool,
    ) -> Result<Registration, PortMapperError> {
        let node_type = if hidden {
            NodeType::HIDDEN
        } else {
            NodeType::NORMAL
        };
        let request = Request::Alive2(NodeInfo::nodus(node.name(), port, node_type));
        let bytes = encode(&request, node.name())?;
        let addr = self.addr;
        let (stream, reply) = self
            .bounded(async {
                let mut stream = connect(addr).await?;
                stream
                    .write_all(&bytes)
                    .await
                    .map_err(|e| io_error(addr, e))?;
                let reply = read_reply(&mut stream, addr, proto::decode_alive2_reply).await?;
                Ok((stream, reply))
            })
            .await?;
        match reply {
            Some(reply) if reply.result == 0 => {
                tracing::debug!(node = %node, port, creation = reply.creation, port_mapper = %addr, "registered with the port mapper");
                Ok(Registration {
                    stream,
                    name: node.clone(),
                    port,
                    creation: reply.creation,
                    addr,
                })
            }
            _ => Err(PortMapperError::NameInUse { name: node.clone() }),
        }
    }

    /// Looks up where the node called `name` (the part before `@`) listens.
    ///
    /// Returns `Ok(None)` if no node of that name is registered.
    ///
    /// # Errors
    ///
    /// [`PortMapperError::Unreachable`], [`PortMapperError::Timeout`],
    /// [`PortMapperError::Protocol`], [`PortMapperError::InvalidName`] or IO errors.
    pub async fn port_please(&self, name: &str) -> Result<Option<NodeInfo>, PortMapperError> {
        let bytes = encode(
            &Request::PortPlease2 {
                name: name.to_owned(),
            },
            name,
        )?;
        let addr = self.addr;
        let reply = self
            .bounded(async {
                let mut stream = connect(addr).await?;
                stream
                    .write_all(&bytes)
                    .await
                    .map_err(|e| io_error(addr, e))?;
                read_reply(&mut stream, addr, proto::decode_port_please_reply).await
            })
            .await?;
        match reply {
            Some(PortPleaseReply::Found(info)) => Ok(Some(info)),
            Some(PortPleaseReply::NotFound { .. }) => Ok(None),
            None => Err(PortMapperError::ClosedEarly { addr }),
        }
    }

    /// Lists every registered name with its distribution port, as `epmd -names` does.
    ///
    /// # Errors
    ///
    /// [`PortMapperError::Unreachable`], [`PortMapperError::Timeout`],
    /// [`PortMapperError::Protocol`], [`PortMapperError::ReplyTooLong`] or IO errors.
    pub async fn names(&self) -> Result<Vec<(String, u16)>, PortMapperError> {
        let addr = self.addr;
        let mut bytes = Vec::new();
        proto::encode_request(&Request::Names, &mut bytes).map_err(|source| {
            PortMapperError::InvalidName {
                name: String::new(),
                source,
            }
        })?;
        let buf = self
            .bounded(async {
                let mut stream = connect(addr).await?;
                stream
                    .write_all(&bytes)
                    .await
                    .map_err(|e| io_error(addr, e))?;
                let mut buf = Vec::new();
                (&mut stream)
                    .take(MAX_NAMES_REPLY as u64 + 1)
                    .read_to_end(&mut buf)
                    .await
                    .map_err(|e| io_error(addr, e))?;
                if buf.len() > MAX_NAMES_REPLY {
                    return Err(PortMapperError::ReplyTooLong {
                        addr,
                        max: MAX_NAMES_REPLY,
                    });
                }
                Ok(buf)
            })
            .await?;
        match proto::decode_names_reply(&buf) {
            Ok(Some(reply)) => Ok(reply.names),
            Ok(None) => Err(PortMapperError::ClosedEarly { addr }),
            Err(source) => Err(PortMapperError::Protocol { addr, source }),
        }
    }

    async fn bounded<T>(
        &self,
        op: impl Future<Output = Result<T, PortMapperError>>,
    ) -> Result<T, PortMapperError> {
        tokio::time::timeout(self.timeout, op)
            .await
            .unwrap_or(Err(PortMapperError::Timeout {
                addr: self.addr,
                after: self.timeout,
            }))
    }
}

fn encode(request: &Request, name: &str) -> Result<Vec<u8>, PortMapperError> {
    let mut bytes = Vec::new();
    proto::encode_request(request, &mut bytes).map_err(|source| PortMapperError::InvalidName {
        name: name.to_owned(),
        source,
    })?;
    Ok(bytes)
}

fn io_error(addr: SocketAddr, source: io::Error) -> PortMapperError {
    PortMapperError::Io { addr, source }
}

async fn connect(addr: SocketAddr) -> Result<TcpStream, PortMapperError> {
    match TcpStream::connect(addr).await {
        Ok(stream) => {
            // Requests are single small writes; don't let Nagle delay them.
            let _ = stream.set_nodelay(true);
            Ok(stream)
        }
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            Err(PortMapperError::Unreachable { addr })
        }
        Err(e) => Err(io_error(addr, e)),
    }
}

/// Reads until `decode` accepts a whole reply. Returns `None` if the port mapper closed the
/// connection first, unless the bytes so far are a refused `ALIVE2` reply cut short (some
/// epmds close right after the result byte).
async fn read_reply<T>(
    stream: &mut TcpStream,
    addr: SocketAddr,
    decode: fn(&[u8]) -> proto::Decoded<T>,
) -> Result<Option<T>, PortMapperError> {
    // Replies are bounded by their 2-byte length fields: at most about 128 KiB.
    let mut buf = Vec::with_capacity(64);
    let mut chunk = [0u8; 512];
    loop {
        match decode(&buf) {
            Ok(Some((reply, _))) => return Ok(Some(reply)),
            Ok(None) => {}
            Err(source) => return Err(PortMapperError::Protocol { addr, source }),
        }
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| io_error(addr, e))?;
        if n == 0 {
            return if buf.len() >= 2 && buf[1] != 0 {
                // A refusal (non-zero result) whose creation was never sent.
                Ok(None)
            } else {
                Err(PortMapperError::ClosedEarly { addr })
            };
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}
