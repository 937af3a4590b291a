//! What a node tells about its peers: pings, lists, node monitors and node events.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use actor_core::{transport::Cancel, NodeName};
use tokio::sync::oneshot;

use crate::transport::CloseReason;

/// The answer to [`Node::ping`](crate::Node::ping), as `Node.ping/1`'s `:pong` and `:pang`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ping {
    /// The node answered.
    Pong,
    /// It could not be reached (down, unknown, wrong cookie, ...); [`Node::connect`](crate::Node::connect) says why.
    Pang,
}

/// Which nodes [`Node::list_kind`](crate::Node::list_kind) lists, as `Node.list/1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListKind {
    /// Connected visible nodes (what [`Node::list`](crate::Node::list) returns).
    Visible,
    /// Connected hidden nodes.
    Hidden,
    /// All connected nodes, visible and hidden.
    Connected,
    /// Every node this node has been connected to, and itself.
    Known,
    /// This node only.
    This,
}

/// Why a connection to a node went down, as the BEAM's `nodedown_reason`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NodeDownReason {
    /// The connection closed (the peer stopped or was killed): `connection_closed`.
    ConnectionClosed,
    /// This node disconnected, or the peer did: `disconnect`.
    Disconnect,
    /// Nothing came from the peer for `tick_time`: `net_tick_timeout`.
    TickTimeout,
    /// The peer broke the protocol (garbage or an oversized frame); the text says how.
    ProtocolError(String),
    /// The node could not be reached at all (a monitor of an unreachable node).
    NoConnection,
    /// This node shut down.
    NodeShutdown,
    /// The peer shut down gracefully: it said it was leaving before it closed the
    /// connection (`ControlMsg::Leaving`, sent by [`Node::shutdown`](crate::Node::shutdown)),
    /// as the BEAM's `shutdown`. Cluster strategies do not connect it again until it is seen
    /// again (see [`cluster`](crate::cluster#graceful-leave)).
    Shutdown,
}

impl fmt::Display for NodeDownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ConnectionClosed => f.write_str("connection_closed"),
            Self::Disconnect => f.write_str("disconnect"),
            Self::TickTimeout => f.write_str("net_tick_timeout"),
            Self::ProtocolError(why) => write!(f, "protocol_error: {why}"),
            Self::NoConnection => f.write_str("noconnection"),
            Self::NodeShutdown => f.write_str("net_kernel_terminated"),
            Self::Shutdown => f.write_str("shutdown"),
        }
    }
}

impl From<CloseReason> for NodeDownReason {
    fn from(reason: CloseReason) -> Self {
        match reason {
            CloseReason::ConnectionClosed | CloseReason::Io { .. } => Self::ConnectionClosed,
            CloseReason::Disconnect => Self::Disconnect,
            CloseReason::TickTimeout => Self::TickTimeout,
            other => Self::ProtocolError(other.to_string()),
        }
    }
}

/// A node went down, as `{:nodedown, node, %{nodedown_reason: reason}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeDown {
    /// The node.
    pub node: NodeName,
    /// Why.
    pub reason: NodeDownReason,
}

/// A change in this node's connections, as `:net_kernel.monitor_nodes(true, node_type: :all)`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeEvent {
    /// A session with `node` came up.
    NodeUp {
        /// The node.
        node: NodeName,
        /// Whether the connection is hidden.
        hidden: bool,
    },
    /// The session with `node` went down.
    NodeDown {
        /// The node.
        node: NodeName,
        /// Whether the connection was hidden.
        hidden: bool,
        /// Why.
        reason: NodeDownReason,
    },
}

/// One [`NodeDown`] for one [`Node::monitor_node`](crate::Node::monitor_node) call: await it.
/// Dropping it before it resolves removes the monitor.
#[derive(Debug)]
pub struct NodeMonitor {
    pub(super) node: NodeName,
    pub(super) rx: Option<oneshot::Receiver<NodeDown>>,
    /// Removes the monitor from the node's machine; run if dropped before it resolved.
    pub(super) forget: Option<Cancel>,
}

impl Drop for NodeMonitor {
    fn drop(&mut self) {
        if let Some(forget) = self.forget.take() {
            forget.cancel();
        }
    }
}

impl Future for NodeMonitor {
    type Output = NodeDown;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<NodeDown> {
        let node = self.node.clone();
        match self.rx.as_mut() {
            None => Poll::Pending, // a monitor of this node itself never fires
            Some(rx) => Pin::new(rx).poll(cx).map(|r| {
                self.forget = None; // resolved: nothing left to remove
                r.unwrap_or(NodeDown {
                    node,
                    reason: NodeDownReason::NodeShutdown,
                })
            }),
        }
    }
}
