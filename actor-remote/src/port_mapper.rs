//! The port mapper: an epmd-compatible client and an embedded epmd server.
//!
//! A node listens for distribution connections on a port the OS picks, and registers that
//! port under its name (the part before `@`) with the *port mapper* of its host, which listens
//! on a well-known port (4369, or `ERL_EPMD_PORT`). A peer that wants to reach `hoge@vm` asks
//! the port mapper on `vm` for `hoge`'s port, then connects to it. nodus speaks the epmd
//! protocol, so nodus and BEAM nodes share one port mapper and `epmd -names` lists both.
//!
//! # Contract
//!
//! - **A registration lives as long as its connection.** [`PortMapperClient::register`]
//!   returns a [`Registration`] that owns the TCP connection to the port mapper; dropping it
//!   closes the connection and the name is gone at once, as with epmd. A crashed node
//!   therefore never leaves a stale name behind.
//! - **One name, one node.** Registering a name that is already registered fails with
//!   [`PortMapperError::NameInUse`].
//! - **Creation numbers tell incarnations apart.** Each successful registration gets a
//!   non-zero creation number, which a node puts in its pids so that pids of a previous
//!   incarnation of the same name are recognisable.
//! - **Every operation is bounded** by the client's timeout (default
//!   [`DEFAULT_TIMEOUT`]).
//!
//! # What nodus registers
//!
//! nodus nodes register with node type 77 (normal) or 72 (hidden), protocol 0 (TCP/IPv4),
//! highest/lowest distribution version 6/5 (what an OTP 25 node sends), and an `extra`
//! field of `b"nodus"` ([`proto::NODUS_EXTRA`]), so nodus tools can tell nodus nodes apart in
//! a shared epmd ([`NodeInfo::is_nodus`]). BEAM nodes send an empty `extra`.
//!
//! # The embedded server
//!
//! When nothing answers on the port mapper's address, a node starts the embedded
//! [`PortMapperServer`] there, as `erl -sname` starts epmd; see [`ensure_port_mapper`]. It
//! serves `ALIVE2`, `PORT_PLEASE2` and `NAMES` with epmd's semantics, so BEAM nodes and the
//! `epmd -names` command can use it. Unlike epmd it is not a daemon: it lives as long as the
//! [`PortMapperHandle`] (in practice, the node) that started it.
//!
//! ```no_run
//! use actor_core::NodeName;
//! use actor_remote::port_mapper::{ensure_port_mapper, PortMapperClient};
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let handle = ensure_port_mapper("127.0.0.1:4369".parse()?).await?;
//! let me = NodeName::parse("hoge@localhost")?;
//! let registration = handle.client().register(&me, 45_000, false).await?;
//! assert_eq!(handle.client().port_please("hoge").await?.map(|n| n.port), Some(45_000));
//! drop(registration); // unregisters
//! # Ok(()) }
//! ```

mod client;
mod launch;
pub mod proto;
mod server;

#[cfg(test)]
pub(crate) mod tests;

pub use client::{PortMapperClient, PortMapperError, Registration, DEFAULT_TIMEOUT, EPMD_PORT};
pub use launch::{ensure_port_mapper_mode, PortMapperMode, DAEMON_START_TIMEOUT};
pub use proto::{NodeInfo, NodeType};
pub use server::{
    ensure_port_mapper, ensure_port_mapper_on, PortMapperHandle, PortMapperServer,
    PortMapperServerHandle,
};
