//! The serving half used for peers: what a node runs when another node asks, through its
//! transport. [`start_task_for_peer`] starts `module.function(args)` under a local task
//! supervisor (the peer's `async_on`, `async_nolink_on` or `start_child_on`) through the
//! local half of the same funnel as every local start; [`spawn_plain`] runs one under no
//! supervisor (`Node.spawn/4`).
//!
//! Both are for implementers of a node's distribution, re-exported by
//! [`transport`](crate::transport).

use futures::FutureExt;
use tokio::{sync::oneshot, task::AbortHandle};
use tracing::Instrument;

use super::{
    actor::Job,
    api::{launch_here, To},
};
use crate::{
    destination::Destination,
    error::{panic_message, TaskError},
    function::{Args, Value},
    io::{self, Output},
    seam::{TaskId, TaskKind},
    system::System,
};

/// A task started for a peer by [`start_task_for_peer`].
#[derive(Debug)]
pub struct PeerTask {
    /// Its number in the supervisor.
    pub id: TaskId,
    /// Its result, for [`TaskKind::Async`].
    pub result: Option<oneshot::Receiver<Result<Value, TaskError>>>,
    /// Stops it.
    pub abort: AbortHandle,
}

/// Runs `module.function(args)` (encoded arguments from a peer) under the local task
/// supervisor `dest`, as the serving half of
/// [`TaskSupervisor::async_on`](crate::TaskSupervisor::async_on) and
/// [`TaskSupervisor::start_child_on`](crate::TaskSupervisor::start_child_on).
///
/// A linked task's link is the transport's to keep: it aborts the task (with
/// [`PeerTask::abort`]) when the caller's handle is dropped or the caller's node goes down.
///
/// # Errors
/// `NoProc` (no such supervisor here, or a stale pid), `Undefined`, `BadArgs`,
/// `MaxChildren`.
pub async fn start_task_for_peer(
    system: &System,
    dest: &Destination,
    module: &str,
    function: &str,
    args: Vec<u8>,
    kind: TaskKind,
) -> Result<PeerTask, TaskError> {
    let job = Job::Call {
        module: module.to_string(),
        function: function.to_string(),
        args: None,
        encoded: Some(args),
    };
    let (started, result) = launch_here(system, To::Dest(dest), job, kind).await?;
    Ok(PeerTask {
        id: started.id,
        result,
        abort: started.abort,
    })
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
    let kernel = system.kernel();
    let future = kernel
        .functions
        .prepare(kernel.downgrade(), module, function, args)?;
    let span = tracing::debug_span!(parent: &kernel.span, "process", module, function);
    let what = format!("{module}.{function}");
    let run = std::panic::AssertUnwindSafe(future)
        .catch_unwind()
        .map(move |outcome| {
            if let Err(payload) = outcome {
                let message = panic_message(payload);
                tracing::error!("process {what} terminating: panicked: {message}");
            }
        });
    let trace = crate::trace::TraceContext::current().map(|t| t.child());
    let run = crate::trace::maybe_instrument(trace, run);
    tokio::spawn(io::with_group_leader(group_leader, run).instrument(span));
    Ok(())
}
