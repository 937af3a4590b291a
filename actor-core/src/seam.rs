//! The seam between a node and its distribution: the [`Transport`] trait a distributed node
//! implements, and what crosses it.
//!
//! This is the bottom half of [`transport`](crate::transport): the kernel holds the node's
//! transport slot, so the trait and its request types sit down here with it. Implementers
//! name them through [`transport`](crate::transport); nothing here is re-exported at the
//! crate root.

use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::oneshot;

use crate::{
    cancel::Cancel,
    destination::Destination,
    error::{CallError, SendErrorKind, TaskError},
    function::Value,
    monitor::{ExitReason, Monitor},
    node_name::NodeName,
    pid::Pid,
    restart::Restart,
};

/// The number of a task within its task supervisor.
pub type TaskId = u64;

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
    /// How long the caller waits for the start answer: past it the start fails with
    /// [`TaskError::Unconfirmed`](crate::TaskError::Unconfirmed) (and a linked task is told
    /// to stop).
    pub timeout: std::time::Duration,
    /// The arguments as JSON, when the caller had them as a serde value: for a peer that
    /// takes terms rather than the codec's bytes (a BEAM node, through `actor-remote`'s
    /// Erlang bridge).
    #[cfg(feature = "json")]
    pub json_args: Option<serde_json::Value>,
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

/// A local actor as a peer names it: a registered name, or a pid of this node (with the
/// creation it was made in). Borrowed from the frame, so delivery allocates nothing for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerTarget<'a> {
    /// A registered name.
    Name(&'a str),
    /// A pid of this node.
    Pid {
        /// The creation the pid was made in.
        creation: u32,
        /// The actor's number.
        id: u64,
    },
}

impl PeerTarget<'_> {
    /// The destination this names on `node`.
    pub fn to_destination(&self, node: &NodeName) -> Destination {
        match *self {
            PeerTarget::Name(name) => Destination::Name(name.into()),
            PeerTarget::Pid { creation, id } => {
                Destination::Pid(Pid::new(node.clone(), creation, id))
            }
        }
    }
}

/// A change of a node's membership, for [`Transport::subscribe_nodes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeStatus {
    /// A node connected.
    Up(NodeName),
    /// A node went down, with why (`connection_closed`, `net_tick_timeout`, ...).
    Down(NodeName, String),
}

/// Where [`Transport::subscribe_nodes`] reports.
pub type NodeSink = std::sync::Arc<dyn Fn(NodeStatus) + Send + Sync>;

/// A node's distribution, as seen by its `System`.
pub trait Transport: Send + Sync + 'static {
    /// Sends a cast to `node`, as Erlang's `send`: connects first if needed (queueing the
    /// message in order meanwhile), and drops it if `node` cannot be reached. Does not wait.
    ///
    /// # Errors
    /// Nothing was sent: `TooLarge` (over the largest frame), `Busy` (the queue for `node`
    /// is full).
    fn cast(&self, node: NodeName, message: RemoteSend) -> Result<(), SendErrorKind>;

    /// As [`Transport::cast`], but waits while the queue for `node` is full (the BEAM's
    /// `busy_dist_port` suspends the sender), for that node only. The default waits for
    /// nothing.
    ///
    /// # Errors
    /// As [`Transport::cast`], but `Busy` only when the wait ends without room (the session
    /// went down, or the transport does not wait).
    fn cast_wait(
        &self,
        node: NodeName,
        message: RemoteSend,
    ) -> BoxFuture<'static, Result<(), SendErrorKind>> {
        let sent = self.cast(node, message);
        Box::pin(async move { sent })
    }

    /// Monitors the actor `target` on `node` (connecting first if needed); the monitor
    /// resolves with `NoConnection` when `node` cannot be reached or goes down.
    fn monitor(&self, node: NodeName, target: Destination) -> Monitor;

    /// Sends a call to `node` and waits up to `timeout` for the encoded reply.
    ///
    /// # Errors
    /// `NoConnection` if `node` cannot be reached or goes down first, `NoProc`, a refusal of
    /// the message type, `Timeout`, `NoReply`.
    fn call(
        &self,
        node: NodeName,
        message: RemoteSend,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Vec<u8>, CallError>>;

    /// Links our actor `from` to the actor `to` of `node` (connecting first if needed): the
    /// peer records the link, or answers with an exit `noproc` ([`crate::transport::exit_from_peer`]);
    /// when `node` cannot be reached, `from` gets an exit `noconnection`
    /// ([`crate::transport::node_down`] does that for every link to a node that goes down).
    fn link(&self, node: NodeName, from: Pid, to: Pid);

    /// Removes the link from our actor `from` to the actor `to` of `node` on the peer's side.
    fn unlink(&self, node: NodeName, from: Pid, to: Pid);

    /// Sends the exit signal of our actor `from`, which stopped with `reason`, to its linked
    /// actor `to` on `node`. Dropped if `node` cannot be reached (that side sees the node
    /// down, an exit `noconnection`).
    fn exit(&self, node: NodeName, from: Pid, to: Pid, reason: ExitReason);

    /// Resolves once, with the reason, when `node` goes down or cannot be reached
    /// (`Node.monitor/2`); connects first if needed. Dropping it removes the monitor.
    fn monitor_node(&self, node: NodeName) -> BoxFuture<'static, String>;

    /// Calls `sink` with every visible node that comes up or goes down from now on
    /// (`:net_kernel.monitor_nodes/1`), until the returned handle is cancelled.
    fn subscribe_nodes(&self, sink: NodeSink) -> Cancel;

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
