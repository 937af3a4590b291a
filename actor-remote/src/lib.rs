//! Everything in nodus that crosses a node boundary.
//!
//! Named nodes (`name@host`), a cookie checked by challenge/response, an epmd-compatible port
//! mapper, one TCP session per node pair, full mesh, ping / list / monitor and failure
//! detection by ticks will live here.
//!
//! So far: [`wire`] (frames and the versioned messages), [`proto`] (sans-IO handshake and
//! ticks) and [`transport`] (the tokio driver: handshake over TCP, sessions).
//!
//! # Should I use this crate?
//!
//! Not if all your actors live in one process: `actor-core` (re-exported by `nodus`) is the
//! whole local runtime and needs no sockets. Until this crate gains its transport, a remote
//! destination given to `actor-core` answers `NoConnection`.

pub mod cookie;
pub mod node;
pub mod port_mapper;
pub mod proto;
pub mod transport;
pub mod wire;

pub use cookie::{Cookie, CookieError};
pub use node::{
    ConnectError, ListKind, Node, NodeConfig, NodeDown, NodeDownReason, NodeError, NodeEvent,
    NodeMonitor, Ping,
};
