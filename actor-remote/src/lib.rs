//! Everything in nodus that crosses a node boundary.
//!
//! Named nodes (`name@host`), a cookie checked by challenge/response, an epmd-compatible port
//! mapper, one TCP session per node pair, the full mesh, ping / list / monitor, failure
//! detection by ticks, and the [`Transport`](actor_core::transport::Transport) through which a
//! node's `System` reaches actors and task supervisors on its peers.
//!
//! The layers, bottom up: [`wire`] (frames and the versioned messages), [`proto`] (sans-IO
//! handshake and ticks), [`port_mapper`] (the epmd protocol, client and server),
//! [`transport`] (the tokio drivers: handshake over TCP, sessions), and [`node`] ([`Node`]:
//! the node's protocol state as one sans-IO machine and the thin driver around it).
//!
//! # Should I use this crate?
//!
//! Not if all your actors live in one process: `actor-core` (re-exported by `nodus`) is the
//! whole local runtime and needs no sockets; a destination on another node answers
//! `NoConnection` there. Start a [`Node`] instead of a bare `System` as soon as a peer is
//! involved: the same calls then reach it.

pub mod cluster;
pub mod cookie;
#[cfg(feature = "erlang")]
pub mod erl;
pub mod names;
pub mod node;
pub mod port_mapper;
pub mod proto;
#[cfg(feature = "status")]
#[cfg_attr(docsrs, doc(cfg(feature = "status")))]
pub mod status;
pub mod transport;
pub mod wire;

pub use cluster::{Cluster, ClusterConfig, ClusterEvent, Topology};
pub use cookie::{Cookie, CookieError};
pub use names::{
    Global, GlobalError, GroupCast, GroupChange, GroupEvent, GroupEvents, NameConflict, Pg,
    PgError, Resolve,
};
pub use node::{
    ConfigError, ConnectError, ListKind, Node, NodeConfig, NodeDown, NodeDownReason, NodeError,
    NodeEvent, NodeMonitor, Ping,
};
