//! `TaskSupervisor`: Elixir's `Task.Supervisor`, addressable by name on any node.
//!
//! A task supervisor is a named, supervised actor that runs tasks: futures on this node, or
//! functions called by `module`/`function` name from the node's
//! [`FunctionRegistry`](crate::FunctionRegistry). Start one under the node's root supervisor
//! with [`TaskSupervisor::start`] (or put [`TaskSupervisor::child_spec`] in your own tree),
//! then:
//!
//! - [`TaskSupervisor::async_on`]: run a function by name and get a linked [`Task`] to
//!   await;
//! - [`TaskSupervisor::async_nolink_on`]: the same, but the task outlives its caller;
//! - [`TaskSupervisor::start_child_on`]: fire and forget, with a [`Restart`](crate::Restart)
//!   type;
//! - [`TaskSupervisor::async_stream_on`]: one linked task per input, as a stream of results.
//!
//! The destination is a supervisor name, a `(name, node)` pair or a pid. A name on this node
//! runs the function here; a supervisor on another node is reached only through a node with
//! distribution (`actor-remote`'s `Node`): a bare [`System`](crate::System) answers
//! [`TaskError::NoConnection`] for it. Errors follow Elixir's outcomes: an unknown node is
//! [`TaskError::NoConnection`] at once and no task is made; no supervisor of that name is
//! [`TaskError::NoProc`]; an unknown function is [`TaskError::Undefined`]; undecodable
//! arguments are [`TaskError::BadArgs`]; a panic reaches the caller as
//! [`TaskError::Panicked`] and is logged by the supervisor's node; an await past its timeout
//! is [`TaskError::Timeout`].
//!
//! Every task runs with its supervisor's node output as its group leader: what it prints
//! with [`puts!`](crate::puts) appears on the supervisor's node, wherever the caller is
//! (see [`io`](crate::io)).
//!
//! Past `max_children` running tasks, starting another is [`TaskError::MaxChildren`].
//! Restarted children (`start_child` with a [`Restart`](crate::Restart) other than
//! `Temporary`) count against the supervisor's restart intensity (default 3 in 5 s); past it
//! the supervisor logs why, stops its tasks and exits with reason `shutdown`, as OTP's
//! supervisors do: its own supervisor restarts it only if it holds it as
//! [`Restart::Permanent`](crate::Restart::Permanent) (the default of
//! [`TaskSupervisor::child_spec`]).
//!
//! # Which to use when
//!
//! | To run | Use |
//! |---|---|
//! | an actor, unsupervised | [`System::spawn`](crate::System::spawn) |
//! | a long-lived actor that restarts | a child of a [`Supervisor`](crate::Supervisor) ([`ChildSpec`](crate::ChildSpec), [`System::start_child`](crate::System::start_child)) |
//! | a future on this node, awaited (or not) | [`TaskSupervisor::async_fn`] / [`TaskSupervisor::async_nolink_fn`] |
//! | a future on this node, fire and forget, maybe restarted | [`TaskSupervisor::start_child_fn`] |
//! | a function by name under a named supervisor, here or on a peer | [`TaskSupervisor::async_on`] / [`TaskSupervisor::async_nolink_on`] / [`TaskSupervisor::start_child_on`] |
//! | a function by name over many inputs | [`TaskSupervisor::async_stream_on`] |
//!
//! All of them but the first two reach the supervisor actor as one kind of request and start
//! their task through one spawn path; a supervisor on another node gets the same request
//! from its node's transport.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use actor_core::{System, SystemConfig, TaskError, TaskSupervisor, TaskSupervisorConfig};
//! let system = System::start(SystemConfig::default()).await?;
//! let tasks = TaskSupervisor::start(&system, TaskSupervisorConfig::new("Tasks")).await?;
//!
//! // A future on this node:
//! let task = tasks.async_fn(|| async { 6 * 7 }).await?;
//! assert_eq!(task.await?, 42);
//!
//! // A panic is carried to the caller:
//! let task = tasks.async_nolink_fn(|| async { if true { panic!("boom") }; 0 }).await?;
//! assert!(matches!(task.await, Err(TaskError::Panicked { message }) if message == "boom"));
//!
//! // A supervisor that does not exist:
//! let err = TaskSupervisor::async_on::<_, ()>(&system, "Nope", "M", "f", ()).await.unwrap_err();
//! assert!(matches!(err, TaskError::NoProc { .. }));
//!
//! // Another node, with no distribution: a bare System cannot reach it.
//! let err = TaskSupervisor::async_on::<_, ()>(&system, ("Tasks", "kate@localhost"), "M", "f", ())
//!     .await
//!     .unwrap_err();
//! assert!(matches!(err, TaskError::NoConnection { .. }));
//! # system.shutdown().await; Ok(()) }
//! ```
//!
//! The files: `api.rs` (the [`TaskSupervisor`] functions), `actor.rs` (the supervisor actor
//! and its one spawn path), `peer.rs` (the serving half for peers), `stream.rs`
//! ([`TaskSupervisor::async_stream_on`]) and `task.rs` (the [`Task`] handle).

mod actor;
mod api;
pub(crate) mod peer;
mod stream;
mod task;
#[cfg(test)]
mod tests;

pub use actor::{TaskSupervisorConfig, TaskSupervisorMsg};
pub use api::TaskSupervisor;
pub use stream::{OnTimeout, StreamOptions};
pub use task::Task;
