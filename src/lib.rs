//! nodus: Erlang/OTP-style distribution for Rust actors.
//!
//! Actors, supervisors and tasks are addressable as `<name, node>`, so the same call works on
//! this node or on a peer. nodus builds on [`ractor`] for the actors themselves and adds what
//! OTP has and ractor does not: restart strategies and intensity, ordered shutdown, a
//! node-scoped registry, `Task.Supervisor`, and functions callable by name.
//!
//! # How the pieces fit
//!
//! - [`core`] (`actor-core`): everything inside one node. A [`System`] owns the node's
//!   [`Registry`], [`FunctionRegistry`] and root [`Supervisor`].
//! - [`remote`] (`actor-remote`): everything that crosses a node boundary.
//! - [`macros`] (`actor-macros`): derive and attribute macros.
//! - [`io`] and [`puts!`]: what a task prints goes to its *group leader*: the node of its
//!   `TaskSupervisor`, or the caller's node for a plain remote spawn
//!   (`nodus::remote::Node::spawn_on`).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use nodus::prelude::*;
//!
//! let system = System::start(SystemConfig::named("alex@localhost")?).await?;
//! system.functions().register("Chat", "receive_message", |(msg,): (String,)| async move {
//!     format!("got {msg}")
//! });
//! TaskSupervisor::start(&system, TaskSupervisorConfig::new("Chat.TaskSupervisor")).await?;
//!
//! // On a distributed node (`nodus::remote::Node` instead of this bare `System`), the same
//! // call takes ("Chat.TaskSupervisor", "kate@localhost") to run on a peer; a bare `System`
//! // answers `NoConnection` for any other node.
//! let task = TaskSupervisor::async_on(&system, "Chat.TaskSupervisor", "Chat", "receive_message", ("hi",)).await?;
//! let reply: String = task.await?;
//! assert_eq!(reply, "got hi");
//! # system.shutdown().await; Ok(()) }
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]

pub use actor_core as core;
pub use actor_core::io;
/// Output macros that write to the current task's group leader (see [`io`]). `print!` is
/// named as std's on purpose: call it by path, `nodus::print!(..)`; neither is in the prelude.
pub use actor_core::{print, puts};
pub use actor_macros as macros;
pub use actor_remote as remote;
/// Automatic clustering (libcluster's topologies and strategies): `nodus::remote::cluster`.
pub use actor_remote::cluster;
/// Global names and process groups across nodes (`:global` and `:pg`): `nodus::names`, from
/// `Node::global` and `Node::pg`.
pub use actor_remote::names;
/// A node's status page and its JSON (feature `status`): `nodus::remote::status`.
#[cfg(feature = "status")]
#[cfg_attr(docsrs, doc(cfg(feature = "status")))]
pub use actor_remote::status;

pub use actor_macros::{actor, remote_module, test};

#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;

pub use actor_core::{
    codec, ractor, CallError, Caller, ChildSpec, Context, Destination, Down, DownReason,
    ExitReason, FunctionRegistry, Info, Monitor, NodeName, Pid, Ref, Registry, Restart, SendError,
    Shutdown, SpawnError, Strategy, Supervisor, SupervisorError, SupervisorSpec, System,
    SystemConfig, Task, TaskError, TaskSupervisor, TaskSupervisorConfig,
};

/// The names most programs need: `use nodus::prelude::*;`.
pub mod prelude {
    pub use actor_core::ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
    pub use actor_core::{
        ChildSpec, Context, Destination, ExitReason, Info, NodeName, Pid, Restart, Shutdown,
        Strategy, Supervisor, SupervisorSpec, System, SystemConfig, Task, TaskError,
        TaskSupervisor, TaskSupervisorConfig,
    };
}

/// What the code `#[nodus::actor]`, `#[nodus::remote_module]` and `#[nodus::test]` generate
/// refers to. Not a public API: it changes without notice.
#[doc(hidden)]
pub mod __private {
    pub use actor_core::TraceContext;
    pub use actor_core::{
        __inventory, bridge_reply, codec, reply_port, LinkedRemoteMessage, Probe, ProbeOther,
        ProbeRemote, RemoteEntry, RemoteMessage, ReplySink, Wire,
    };
    pub use actor_core::{
        ractor, run_in, CallContext, CallError, Caller, ChildSpec, Context, Destination, Hosted,
        Info, SendError, SpawnError, System, TaskError, TaskSupervisor, WeakSystem,
        DEFAULT_TIMEOUT,
    };
    #[cfg(feature = "testing")]
    pub use inventory;
    pub use serde;
    pub use tracing;

    /// Expanded first by `#[nodus::test]`: nothing with the `testing` feature, and without it
    /// the one error that says what to do (instead of unresolved `nodus::testing` paths only).
    pub use crate::__nodus_require_testing as require_testing;

    /// The wire format of `#[nodus::actor(remote)]` messages: the variant's index, then the
    /// encoded tuple of its arguments.
    pub mod remote {
        use actor_core::codec::{self, CodecError};
        use serde::{de::DeserializeOwned, Serialize};

        /// Encodes variant `index` with its arguments `args` (a tuple).
        ///
        /// # Errors
        /// The codec's error.
        pub fn encode<A: Serialize + ?Sized>(index: u32, args: &A) -> Result<Vec<u8>, CodecError> {
            codec::encode(&(index, Raw(&codec::encode(args)?)))
        }

        /// Splits a payload into the variant's index and its encoded arguments.
        ///
        /// # Errors
        /// The codec's error.
        pub fn split(payload: &[u8]) -> Result<(u32, Vec<u8>), CodecError> {
            let (index, RawBuf(args)) = codec::decode(payload)?;
            Ok((index, args))
        }

        /// Encoded arguments as one byte string: the same bytes on the wire as a `Vec<u8>`
        /// (a length, then the bytes), written at once instead of one serde call per byte.
        struct Raw<'a>(&'a [u8]);

        impl Serialize for Raw<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(self.0)
            }
        }

        /// [`Raw`]'s decoding.
        struct RawBuf(Vec<u8>);

        impl<'de> serde::Deserialize<'de> for RawBuf {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct Visit;
                impl<'de> serde::de::Visitor<'de> for Visit {
                    type Value = RawBuf;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str("encoded arguments (bytes)")
                    }
                    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<RawBuf, E> {
                        Ok(RawBuf(v.to_vec()))
                    }
                    fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<RawBuf, E> {
                        Ok(RawBuf(v))
                    }
                }
                d.deserialize_byte_buf(Visit)
            }
        }

        /// Decodes a variant's arguments.
        ///
        /// # Errors
        /// The codec's error.
        pub fn args<A: DeserializeOwned>(bytes: &[u8]) -> Result<A, CodecError> {
            codec::decode(bytes)
        }

        /// The error for a payload that is no variant of `expected`.
        pub fn bad(expected: &'static str, reason: String) -> CodecError {
            CodecError::Decode { expected, reason }
        }
    }
}

/// See `__private::require_testing`.
#[cfg(feature = "testing")]
#[doc(hidden)]
#[macro_export]
macro_rules! __nodus_require_testing {
    () => {};
}

/// See `__private::require_testing`.
#[cfg(not(feature = "testing"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __nodus_require_testing {
    () => {
        ::core::compile_error!(
            "#[nodus::test] needs nodus's `testing` feature: add `features = [\"testing\"]` to \
             the `nodus` entry in [dev-dependencies]"
        );
    };
}

/// Property tests of the `#[nodus::actor(remote)]` wire format (`__private::remote`).
#[cfg(test)]
mod remote_props;
