//! nodus inside one node: registry, OTP supervisors, `TaskSupervisor`, functions by name.
//!
//! Everything here works without sockets. The pieces:
//!
//! - [`System`]: one node's value. It owns the [`Registry`] of names, the
//!   [`FunctionRegistry`], and the root [`Supervisor`]. Several can live in one process.
//! - [`Supervisor`]: OTP supervisors on ractor actors: [`Strategy`], [`Restart`] types,
//!   restart intensity, ordered shutdown with [`Shutdown`] per child.
//! - [`TaskSupervisor`] and [`Task`]: Elixir's `Task.Supervisor` and `Task`.
//! - [`Destination`]: a name, `(name, node)` or [`Pid`], taken by [`System::cast`],
//!   [`System::call`] and the task functions.
//! - [`codec`]: the one place values are serialized.
//! - [`io`]: each node's [`io::Output`] and the group leader of a task, where [`puts!`] and
//!   [`print!`] write.
//! - [`transport`]: the seam a distributed node (`actor-remote`) fills; applications never
//!   need it. Without a transport, a destination on another node answers `NoConnection`.
//!
//! Inside, the layers import only downward: a kernel at the bottom (names and the
//! registry, functions, output, the transport seam, pids and destinations, errors, the
//! codec, monitors, remote message types), the behaviours above it (supervisors), then
//! [`System`] (the kernel plus the root supervisor), and on top what takes a `System`:
//! [`TaskSupervisor`], [`RemoteProxy`] and [`transport`].
//!
//! Actors are plain [`ractor::Actor`]s; nodus spawns them unnamed and keeps their names in
//! the node's registry, never in ractor's process-global one.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use actor_core::{System, SystemConfig, TaskSupervisor, TaskSupervisorConfig};
//! let system = System::start(SystemConfig::named("alex@localhost")?).await?;
//! system.functions().register("Math", "add", |(a, b): (i64, i64)| async move { a + b });
//! TaskSupervisor::start(&system, TaskSupervisorConfig::new("Math.TaskSupervisor")).await?;
//! let sum: i64 = TaskSupervisor::async_on(&system, "Math.TaskSupervisor", "Math", "add", (2, 3))
//!     .await?
//!     .await?;
//! assert_eq!(sum, 5);
//! # system.shutdown().await; Ok(()) }
//! ```

mod cancel;
pub mod codec;
mod context;
mod destination;
mod error;
mod function;
pub mod io;
mod kernel;
mod monitor;
mod node_name;
mod pid;
mod process;
pub mod proxy;
mod registry;
mod remote_message;
mod restart;
mod seam;
mod supervisor;
mod system;
mod task_supervisor;
pub mod trace;
pub mod transport;

#[doc(hidden)]
pub use context::{run_as, run_in, Hosted, Scope};
pub use context::{Caller, Context};
pub use destination::Destination;
pub use error::{
    CallError, RegistryError, SendError, SendErrorKind, SpawnError, SupervisorError, TaskError,
};
#[cfg(feature = "json")]
pub use function::JsonCallError;
pub use function::{Args, Value};
/// Not a public API: the link-time registry that `serde_message!` and
/// `#[nodus::actor(remote)]` submit remote message types to.
#[doc(hidden)]
pub use inventory as __inventory;
pub use kernel::{CallContext, FunctionRegistry};
pub use monitor::{Down, DownReason, ExitReason, Monitor};
pub use node_name::{NameMode, NodeName, NodeNameError};
pub use pid::Pid;
pub use process::{Info, Ref};
pub use proxy::RemoteProxy;
pub use registry::Registry;
pub use remote_message::{
    bridge_reply, reply_port, DeliverError, RemoteMessage, ReplyBridge, ReplySink, Wire,
};
#[doc(hidden)]
pub use remote_message::{
    Entry as RemoteEntry, LinkedRemoteMessage, Probe, ProbeOther, ProbeRemote,
};
pub use restart::Restart;
pub use seam::TaskId;
pub use supervisor::{
    ChildInfo, ChildSpec, Intensity as RestartIntensity, Shutdown, Strategy, Supervisor,
    SupervisorMsg, SupervisorSpec,
};
pub use system::{System, SystemConfig, WeakSystem, DEFAULT_TIMEOUT};
pub use task_supervisor::{
    OnTimeout, StreamOptions, Task, TaskSupervisor, TaskSupervisorConfig, TaskSupervisorMsg,
};
pub use trace::{TraceContext, TraceParentError};

/// The actor runtime nodus builds on, re-exported so users name the same version.
pub use ractor;
