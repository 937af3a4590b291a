//! The seam between a node's [`System`] and its distribution.
//!
//! `actor-core` has no sockets. A distributed node (`actor-remote`'s `Node`) installs a
//! [`Transport`] with [`System::set_transport`](crate::System::set_transport); from then on,
//! operations whose destination is on another node go through it. Without one they answer
//! `NoConnection`.
//!
//! The serving side uses [`TaskSupervisor::start_for_peer`](crate::TaskSupervisor::start_for_peer)
//! to run what a peer asked for under a local task supervisor, and [`spawn_plain`] for a plain
//! spawn (`Node.spawn/4`), which runs under no supervisor with the group leader the caller
//! gives.

use std::{fmt, sync::Arc};

use futures::{future::BoxFuture, FutureExt};
use tokio::sync::oneshot;
use tracing::Instrument;

use crate::{
    function::{Args, Value},
    io::{self, Output},
    task_supervisor::panic_message,
    Destination, NodeName, Restart, System, TaskError, TaskId,
};

/// What kind of task a peer asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskKind {
    /// `async` / `async_nolink`: the result goes back to the caller. A linked task is
    /// stopped when its caller goes away (its handle is dropped, or its node goes down).
    Async {
        /// Whether the task is linked to its caller.
        linked: bool,
    },
    /// `start_child`: fire and forget, restarted as `Restart` says.
    Child(Restart),
}

/// A request to start `module.function(args)` under a task supervisor on another node.
#[derive(Debug, Clone)]
pub struct RemoteTaskRequest {
    /// The task supervisor: a `(name, node)` pair or a pid on that node.
    pub supervisor: Destination,
    /// The module name.
    pub module: String,
    /// The function name.
    pub function: String,
    /// The arguments, encoded by the [codec](crate::codec).
    pub args: Vec<u8>,
    /// What kind of task.
    pub kind: TaskKind,
}

/// Stops a task wherever it runs.
#[derive(Clone)]
pub struct Cancel(Arc<dyn Fn() + Send + Sync>);

impl Cancel {
    /// A canceller that runs `f`.
    pub fn new(f: impl Fn() + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    /// Stops the task (idempotent).
    pub fn cancel(&self) {
        (self.0)();
    }
}

impl fmt::Debug for Cancel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Cancel")
    }
}

/// A task a peer started for us.
#[derive(Debug)]
pub struct RemoteTask {
    /// Its number in the remote supervisor.
    pub id: TaskId,
    /// Its result, for [`TaskKind::Async`]. The transport sends
    /// [`TaskError::NoConnection`] if the node goes down first.
    pub result: Option<oneshot::Receiver<Result<Value, TaskError>>>,
    /// Stops it.
    pub cancel: Cancel,
}

/// A message for an actor on another node.
#[derive(Debug)]
pub struct RemoteSend {
    /// The target: a `(name, node)` pair or a pid on that node.
    pub target: Destination,
    /// The message type's stable name ([`RemoteMessage::NAME`](crate::RemoteMessage::NAME)),
    /// which the receiver decodes by.
    pub name: &'static str,
    /// The encoded message.
    pub payload: Vec<u8>,
}

/// A node's distribution, as seen by its [`System`].
pub trait Transport: Send + Sync + 'static {
    /// Sends a cast to `node`, as Erlang's `send`: connects first if needed (queueing the
    /// message in order meanwhile), and drops it if `node` cannot be reached.
    fn cast(&self, node: NodeName, message: RemoteSend);

    /// Monitors the actor `target` on `node` (connecting first if needed); the monitor
    /// resolves with `NoConnection` when `node` cannot be reached or goes down.
    fn monitor(&self, node: NodeName, target: Destination) -> crate::Monitor;

    /// Sends a call to `node` and waits up to `timeout` for the encoded reply.
    ///
    /// # Errors
    /// `NoConnection` if `node` cannot be reached or goes down first, `NoProc`, a refusal of
    /// the message type, `Timeout`, `NoReply`.
    fn call(
        &self,
        node: NodeName,
        message: RemoteSend,
        timeout: std::time::Duration,
    ) -> BoxFuture<'static, Result<Vec<u8>, crate::CallError>>;

    /// Starts a task on `node` (connecting to it first if needed).
    ///
    /// # Errors
    /// The start outcomes of [`TaskSupervisor::async_on`](crate::TaskSupervisor::async_on):
    /// `NoConnection` when `node` cannot be reached, `NoProc`, `Undefined`, `BadArgs`,
    /// `MaxChildren`.
    fn start_task(
        &self,
        node: NodeName,
        request: RemoteTaskRequest,
    ) -> BoxFuture<'static, Result<RemoteTask, TaskError>>;
}

/// Runs `module.function(args)` on `system`'s node as a plain tokio task: under no
/// supervisor, fire and forget, with `group_leader` as its group leader. The serving half of
/// a plain spawn (`Node.spawn/4`); a transport passes a forwarder to the caller's node as the
/// group leader. A panic is logged in the node's span; the result is dropped.
///
/// Call it inside a tokio runtime (it uses `tokio::spawn`).
///
/// # Errors
/// [`TaskError::Undefined`] for an unknown function, [`TaskError::BadArgs`] for arguments
/// that do not decode; nothing runs then.
pub fn spawn_plain(
    system: &System,
    module: &str,
    function: &str,
    args: Args,
    group_leader: Output,
) -> Result<(), TaskError> {
    let future = system
        .functions()
        .prepare(system.downgrade(), module, function, args)?;
    let span = tracing::debug_span!(parent: system.span(), "process", module, function);
    let what = format!("{module}.{function}");
    let run = std::panic::AssertUnwindSafe(future)
        .catch_unwind()
        .map(move |outcome| {
            if let Err(payload) = outcome {
                let message = panic_message(payload);
                tracing::error!("process {what} terminating: panicked: {message}");
            }
        });
    tokio::spawn(io::with_group_leader(group_leader, run).instrument(span));
    Ok(())
}
