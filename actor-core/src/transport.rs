//! The seam between a node's [`System`](crate::System) and its distribution.
//!
//! `actor-core` has no sockets. A distributed node (`actor-remote`'s `Node`) installs a
//! [`Transport`] with [`System::set_transport`](crate::System::set_transport); from then on,
//! operations whose destination is on another node go through it. Without one they answer
//! `NoConnection`.
//!
//! The serving side uses [`TaskSupervisor::start_for_peer`](crate::TaskSupervisor::start_for_peer)
//! to run what a peer asked for under a local task supervisor.

use std::{fmt, sync::Arc};

use futures::future::BoxFuture;
use tokio::sync::oneshot;

use crate::{function::Value, Destination, NodeName, Restart, TaskError, TaskId};

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
    /// The message type's name (`std::any::type_name`), which the receiver decodes by.
    pub type_name: &'static str,
    /// The encoded message.
    pub payload: Vec<u8>,
}

/// A node's distribution, as seen by its [`System`](crate::System).
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
