//! Typed errors, one per kind of operation.
//!
//! Every message says what happened and, where there is one, what to do about it. The BEAM's
//! exit reasons for remote work map onto [`TaskError`] variants: `noconnection` is
//! [`TaskError::NoConnection`], `noproc` is [`TaskError::NoProc`], `undef` is
//! [`TaskError::Undefined`].

use std::{fmt, time::Duration};

use crate::{destination::Destination, node_name::NodeName};

/// A name could not be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// Another live actor holds the name.
    #[error("the name {name:?} is already registered on this node; unregister it first or pick another name")]
    AlreadyRegistered {
        /// The name asked for.
        name: String,
    },
    /// The actor to register has already stopped.
    #[error("cannot register {name:?}: the actor has already stopped")]
    NotAlive {
        /// The name asked for.
        name: String,
    },
}

/// An actor could not be started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpawnError {
    /// The actor's `pre_start` returned an error or panicked.
    #[error("actor {what} failed to start: {reason}")]
    StartFailed {
        /// The child id or actor name.
        what: String,
        /// What `pre_start` reported.
        reason: String,
    },
    /// The actor started but its name was taken.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The node this should run on has shut down.
    #[error("the node has shut down; start a new System")]
    SystemStopped,
}

/// Why a message could not be delivered. See [`SendError`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendErrorKind {
    /// Nothing is registered under that name, or the pid's actor has stopped.
    #[error("no process {dest}; check that it is started and registered on {node}")]
    NoProc {
        /// Where the message was going.
        dest: Destination,
        /// The node that was asked.
        node: NodeName,
    },
    /// The destination is on another node that cannot be reached.
    #[error(
        "no connection to {node}; check that the node is up, reachable and uses the same cookie"
    )]
    NoConnection {
        /// The unreachable node.
        node: NodeName,
    },
    /// The message type is not registered for other nodes on this node.
    #[error("{type_name} cannot go to another node: this node knows no RemoteMessage impl for it; derive one with #[nodus::actor(remote)] or serde_message!, or, for a generic type or a hand-written impl, call System::register_remote_message for it on every node that sends or receives it")]
    NotRemotable {
        /// The Rust type's name (local: a type without a stable name never reaches the wire).
        type_name: &'static str,
    },
    /// The receiving node refused the message (unknown type there, wrong type for the actor,
    /// or it did not decode). `reason` says which, and what to do.
    #[error("{node} refused the message: {reason}")]
    Refused {
        /// The receiving node.
        node: NodeName,
        /// Why.
        reason: String,
    },
    /// The registered actor takes a different message type.
    #[error("{dest} does not take messages of type {expected}; look it up with the actor's own message type")]
    WrongType {
        /// Where the message was going.
        dest: Destination,
        /// The message type the caller used.
        expected: &'static str,
    },
    /// The message, framed for `node`, is larger than the largest frame (`max_frame_len`);
    /// it was not sent, and the session with `node` is unaffected.
    #[error("a message of {size} bytes for {node} is over the largest frame of {limit} bytes and was not sent; send it in smaller pieces, or raise max_frame_len on both nodes")]
    TooLarge {
        /// The node the message was for.
        node: NodeName,
        /// The framed message's size, in bytes.
        size: usize,
        /// The largest frame (`max_frame_len`), in bytes.
        limit: usize,
    },
    /// The queue of messages for `node` is full (`node` reads slower than this node sends,
    /// or is paused): the message was not sent. The BEAM's `busy_dist_port`, per
    /// destination.
    #[error("the queue for {node} is full ({limit} bytes waiting to be written); the message was not sent: send more slowly, wait for room with cast_wait, or raise send_queue_limit")]
    Busy {
        /// The node whose queue is full.
        node: NodeName,
        /// The queue's bound (`send_queue_limit`), in bytes.
        limit: usize,
    },
}

/// A message could not be sent; the message is handed back.
///
/// A return value of `Ok` from a send does not mean the message will be processed: the actor
/// may stop before it reaches it.
pub struct SendError<M> {
    /// Why it failed.
    pub kind: SendErrorKind,
    /// The message that was not sent (`None` only if the runtime consumed it).
    pub message: Option<M>,
}

impl<M> SendError<M> {
    /// The message that was not sent, if the runtime handed it back.
    pub fn into_inner(self) -> Option<M> {
        self.message
    }
}

impl<M> fmt::Debug for SendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendError")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl<M> fmt::Display for SendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.kind, f)
    }
}

impl<M> std::error::Error for SendError<M> {}

/// A call did not return a reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The request could not be delivered.
    #[error(transparent)]
    Send(SendErrorKind),
    /// No reply came within the timeout. The late reply, if any, is dropped.
    #[error("no reply from {dest} within {timeout:?}; the actor may be busy or stuck, raise the timeout if it is just slow")]
    Timeout {
        /// Where the call went.
        dest: Destination,
        /// The timeout that expired.
        timeout: Duration,
    },
    /// The actor stopped, or dropped the reply port, without replying.
    #[error("{dest} stopped or dropped the reply port without replying")]
    NoReply {
        /// Where the call went.
        dest: Destination,
    },
    /// The call was sent to `node`, which went down before replying: the actor may have
    /// handled it. (A call that was never sent is `Send(NoConnection)`.)
    #[error("the call to {dest} was sent, but {node} went down before replying: it may have been handled there; retry only if handling it twice is harmless")]
    Unconfirmed {
        /// Where the call went.
        dest: Destination,
        /// The node that went down.
        node: NodeName,
    },
}

/// How a task, local or remote, failed to give its result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TaskError {
    /// The result did not arrive within the timeout. A linked task is stopped when its
    /// handle is dropped; a nolink task goes on.
    #[error("the task did not finish within {timeout:?}; raise the timeout or poll it with yield_timeout")]
    Timeout {
        /// The timeout that expired.
        timeout: Duration,
    },
    /// The task's code panicked.
    #[error("the task panicked: {message}")]
    Panicked {
        /// The panic message.
        message: String,
    },
    /// The task was stopped before it finished (shut down, killed, or its supervisor stopped).
    /// `"shutdown"`: it was asked to stop and did; `"killed"`: [`Task::shutdown`] gave it
    /// its timeout, it had not stopped by then, and it was killed after it (Elixir's
    /// `{:exit, :killed}`).
    ///
    /// [`Task::shutdown`]: crate::Task::shutdown
    #[error("the task exited before finishing: {reason}")]
    Exited {
        /// Why it stopped.
        reason: String,
    },
    /// [`Task::shutdown`] told the task to stop, and it had still not stopped when the
    /// shutdown gave up waiting. A task is stopped at an `.await`; this one is busy without
    /// reaching one (a loop or a blocking call without `.await`) and **is still running**.
    /// It stops at its next `.await`, if it ever reaches one.
    ///
    /// [`Task::shutdown`]: crate::Task::shutdown
    #[error("the task was told to stop {waited:?} ago and is still running: it is busy without reaching an .await, where a task can be stopped; it stops at its next .await. Give long computations .await points (tokio::task::yield_now) or run blocking code with tokio::task::spawn_blocking")]
    StillRunning {
        /// How long the shutdown waited for it to stop.
        waited: Duration,
    },
    /// The request to start the task was sent to `node`, but no answer came (`timeout`
    /// passed, or `node` went down first): the task may have started there. (A request that
    /// was never sent is [`TaskError::NoConnection`].) A linked task is told to stop.
    #[error("the request to start the task was sent to {node}, but {why}: the task may be running there; retry only if running it twice is harmless")]
    Unconfirmed {
        /// The node asked.
        node: NodeName,
        /// What happened instead of an answer.
        why: String,
    },
    /// The node is unknown, down, or went down while the task ran.
    #[error(
        "no connection to {node}; check that the node is up, reachable and uses the same cookie"
    )]
    NoConnection {
        /// The node that could not be reached.
        node: NodeName,
    },
    /// No task supervisor is registered under that name on that node.
    #[error("no process {name:?} on {node}; start a TaskSupervisor with that name there first")]
    NoProc {
        /// The supervisor name asked for.
        name: String,
        /// The node that was asked.
        node: NodeName,
    },
    /// The function is not registered on the node that runs the task.
    #[error("function {module}.{function} is not registered on that node; register it with FunctionRegistry::register before calling it")]
    Undefined {
        /// The module name asked for.
        module: String,
        /// The function name asked for.
        function: String,
    },
    /// The arguments do not decode as the function's argument type.
    #[error("bad arguments: {reason}; pass the argument type the function was registered with")]
    BadArgs {
        /// What the decoder reported.
        reason: String,
    },
    /// The result does not decode as the type the caller asked for.
    #[error("bad return value: {reason}; await the task with the function's result type")]
    BadReturn {
        /// What the decoder reported.
        reason: String,
    },
    /// An option passed to the call is out of range (as Elixir's `ArgumentError`); nothing
    /// was started.
    #[error("invalid option {option}: {reason}")]
    InvalidOption {
        /// The option's name, e.g. `max_concurrency`.
        option: String,
        /// What is wrong with its value and what to pass instead.
        reason: String,
    },
    /// The task supervisor already runs `max_children` tasks.
    #[error("task supervisor {name:?} already runs its maximum of {max} tasks; raise max_children or wait for tasks to finish")]
    MaxChildren {
        /// The supervisor's name.
        name: String,
        /// Its `max_children`.
        max: usize,
    },
    /// The request to start the task, framed for `node`, is larger than the largest frame
    /// (`max_frame_len`): nothing was sent, and the session with `node` is unaffected.
    #[error("the request to start the task on {node} is {size} bytes, over the largest frame of {limit} bytes; nothing was sent: pass smaller arguments, or raise max_frame_len on both nodes")]
    TooLarge {
        /// The node asked.
        node: NodeName,
        /// The framed request's size, in bytes.
        size: usize,
        /// The largest frame (`max_frame_len`), in bytes.
        limit: usize,
    },
    /// The queue of messages for `node` is full: nothing was sent (see
    /// [`SendErrorKind::Busy`]).
    #[error("the queue for {node} is full ({limit} bytes waiting to be written); nothing was sent: retry later, or raise send_queue_limit")]
    Busy {
        /// The node whose queue is full.
        node: NodeName,
        /// The queue's bound (`send_queue_limit`), in bytes.
        limit: usize,
    },
}

/// A supervisor operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SupervisorError {
    /// Children restarted more often than the supervisor allows; it shut down. This is what
    /// a supervisor (or task supervisor) logs when it gives up; it then exits with reason
    /// `shutdown`, as in OTP.
    #[error("supervisor {name} shut down: reached maximum restart intensity ({max_restarts} restarts in {max_seconds:?}); fix the crashing child or raise max_restarts")]
    RestartIntensity {
        /// The supervisor's id or name.
        name: String,
        /// Its `max_restarts`.
        max_restarts: u32,
        /// Its window.
        max_seconds: Duration,
    },
    /// A child with that id is in the supervisor and running (OTP's
    /// `{:error, {:already_started, pid}}`).
    #[error(
        "a child with id {id:?} is already running in this supervisor; child ids must be unique"
    )]
    AlreadyStarted {
        /// The child id.
        id: String,
    },
    /// A child with that id is in the supervisor but not running (it was terminated, or it
    /// ended and was not restarted); OTP's `{:error, :already_present}`.
    #[error("a child with id {id:?} is already present in this supervisor, not running; start it with restart_child, or remove it with delete_child first")]
    AlreadyPresent {
        /// The child id.
        id: String,
    },
    /// No child with that id (OTP's `{:error, :not_found}`).
    #[error("no child with id {id:?} in this supervisor; which_children lists its children")]
    NotFound {
        /// The child id.
        id: String,
    },
    /// The child is running, so it cannot be restarted or deleted (OTP's
    /// `{:error, :running}`).
    #[error("the child {id:?} is running; stop it with terminate_child first")]
    Running {
        /// The child id.
        id: String,
    },
    /// A child failed to start.
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    /// The supervisor itself is not running.
    #[error("the supervisor is not running")]
    NotRunning,
}

/// The message of a panic, from its payload: the `&str` or `String` given to `panic!`.
pub(crate) fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(s) => *s,
        Err(payload) => match payload.downcast::<&'static str>() {
            Ok(s) => (*s).to_string(),
            Err(_) => "a panic with a non-string payload".to_string(),
        },
    }
}
