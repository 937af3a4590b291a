//! What can go wrong starting a node or connecting to one.

use std::net::SocketAddr;

use actor_core::{NodeName, NodeNameError, SpawnError, SupervisorError};

use crate::{port_mapper::PortMapperError, CookieError};

/// A node could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The name breaks the BEAM's rules, or does not fit the name mode.
    #[error(transparent)]
    Name(#[from] NodeNameError),
    /// No cookie could be found or created.
    #[error(transparent)]
    Cookie(#[from] CookieError),
    /// The listening socket could not be opened.
    #[error("could not listen on {addr}: {source}; pick another address or port")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// The socket error.
        source: std::io::Error,
    },
    /// The name is already registered on this host.
    #[error(
        "the name {name} seems to be in use by another node; pick another name or stop that node"
    )]
    NameInUse {
        /// The full node name.
        name: NodeName,
    },
    /// The port mapper could not be reached or started.
    #[error("port mapper: {0}")]
    PortMapper(#[source] PortMapperError),
    /// The node's local system could not start.
    #[error(transparent)]
    System(#[from] SpawnError),
    /// The built-in service (`nodus.Rpc`, see [`admin`](crate::node::admin)) could not start.
    #[error("could not start the built-in nodus.Rpc task supervisor: {0}; this is a bug in nodus, please report it")]
    Admin(#[source] SupervisorError),
}

/// Why connecting to a node failed; [`Node::connect`](crate::Node::connect) returns it and
/// [`Node::ping`](crate::Node::ping) answers `Pang`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The node name is not `name@host`.
    #[error("{given:?} is not a node name (name@host)")]
    InvalidName {
        /// The text given.
        given: String,
    },
    /// This node has shut down.
    #[error("this node has shut down")]
    NotAlive,
    /// The peer's host name did not resolve.
    #[error("could not resolve host {host}: {reason}")]
    Resolve {
        /// The host part of the name.
        host: String,
        /// What the resolver said.
        reason: String,
    },
    /// No port mapper answered on the peer's host.
    #[error("no port mapper answered at {addr} ({reason}); is the node's host up and running a port mapper (epmd) on that port?")]
    PortMapper {
        /// Where it was asked.
        addr: SocketAddr,
        /// What failed.
        reason: String,
    },
    /// The port mapper on the peer's host does not know the node.
    #[error("no node named {node} is registered on its host; is it running?")]
    NotRegistered {
        /// The node asked for.
        node: NodeName,
    },
    /// The TCP connection failed.
    #[error("could not connect to {node} at {addr}: {reason}")]
    Connect {
        /// The node.
        node: NodeName,
        /// Its address.
        addr: SocketAddr,
        /// What failed.
        reason: String,
    },
    /// An in-memory connection could not be opened (the node's accept backlog stayed
    /// full; an unknown node is [`ConnectError::NotRegistered`]).
    #[error("could not connect to {node} in memory: {reason}")]
    Memory {
        /// The node.
        node: NodeName,
        /// What failed.
        reason: String,
    },
    /// The handshake failed (for example a wrong cookie, or short and long names mixed).
    #[error("handshake with {node} failed: {reason}")]
    Handshake {
        /// The node.
        node: NodeName,
        /// The handshake error's message.
        reason: String,
    },
    /// The session closed before a ping's answer came.
    #[error("{node} did not answer within {timeout:?}")]
    Timeout {
        /// The node.
        node: NodeName,
        /// The timeout.
        timeout: std::time::Duration,
    },
    /// TLS with the node failed: its certificate was refused, or it refused this node's.
    #[error("TLS with {node} failed: {reason}")]
    Tls {
        /// The node.
        node: NodeName,
        /// What failed, and what to do.
        reason: String,
    },
    /// One of the two nodes runs TLS and the other does not; they refuse each other.
    #[error("{}", crate::transport::tls::mismatch_message(.node, *.peer_requires_tls))]
    TlsMismatch {
        /// The node.
        node: NodeName,
        /// Whether the peer requires TLS (and this node speaks plain nodus), or the reverse.
        peer_requires_tls: bool,
    },
}

impl ConnectError {
    /// The error of a dial to `node` that failed at the TLS layer.
    pub(crate) fn from_tls(node: &NodeName, failure: crate::transport::tls::TlsFailure) -> Self {
        use crate::transport::tls::TlsFailure;
        match failure {
            TlsFailure::Mismatch { peer_requires_tls } => Self::TlsMismatch {
                node: node.clone(),
                peer_requires_tls,
            },
            TlsFailure::Tls(reason) => Self::Tls {
                node: node.clone(),
                reason,
            },
        }
    }

    /// The error of a failed cookie handshake with `node`: a TLS failure if it was one.
    pub(crate) fn from_handshake(node: &NodeName, e: crate::proto::HandshakeError) -> Self {
        match crate::transport::tls::handshake_failure(&e) {
            Some(failure) => Self::from_tls(node, failure),
            None => Self::Handshake {
                node: node.clone(),
                reason: e.to_string(),
            },
        }
    }
}
