//! The node's [`Transport`]: how its `System` reaches actors and task supervisors on other
//! nodes (casts, calls, monitors, remote tasks), and `Node::spawn_on`. Each operation
//! connects if needed, hands one request to the machine, and waits for its outcome.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Weak,
    },
    time::Duration,
};

use crate::wire::message::WireTrace;
use actor_core::{
    codec, io,
    transport::{
        spawn_plain, Cancel, NodeSink, NodeStatus, RemoteSend, RemoteTask, RemoteTaskRequest,
        TaskKind, Transport,
    },
    Args, CallError, Destination, DownReason, ExitReason, Monitor, NodeName, Pid, SendErrorKind,
    TaskError,
};
use futures::{future::BoxFuture, FutureExt};
use tokio::sync::{broadcast, oneshot};
use tracing::Instrument;

use super::{
    error::ConnectError,
    events::{NodeDownReason, NodeEvent},
    inner::{connect, wait_until, waiter, Inner, Waiter},
    outcomes::to_wire_kind,
    state::{CastRefused, Outcome},
};

/// The node's distribution as its [`System`](actor_core::System) sees it.
pub(super) struct NodeTransport(pub(super) Weak<Inner>);

impl Transport for NodeTransport {
    fn link(&self, node: NodeName, from: Pid, to: Pid) {
        debug_assert_eq!(*to.node(), node);
        if let Some(inner) = self.0.upgrade() {
            inner.with_state(|s| s.link(&from, &to));
        }
    }

    fn unlink(&self, node: NodeName, from: Pid, to: Pid) {
        debug_assert_eq!(*to.node(), node);
        if let Some(inner) = self.0.upgrade() {
            inner.with_state(|s| s.unlink(&from, &to));
        }
    }

    fn exit(&self, node: NodeName, from: Pid, to: Pid, reason: ExitReason) {
        debug_assert_eq!(*to.node(), node);
        if let Some(inner) = self.0.upgrade() {
            inner.with_state(|s| s.exit(&from, &to, &reason));
        }
    }

    fn monitor_node(&self, node: NodeName) -> BoxFuture<'static, String> {
        let weak = self.0.clone();
        async move {
            let Some(inner) = weak.upgrade() else {
                return NodeDownReason::NoConnection.to_string();
            };
            if node == inner.name {
                drop(inner);
                // A monitor of this node itself never fires (as `Node::monitor_node`).
                return futures::future::pending().await;
            }
            if connect(&inner, &node).await.is_err() {
                return NodeDownReason::NoConnection.to_string();
            }
            let (tx, rx) = oneshot::channel();
            let id = inner.with_state(|s| s.monitor_node(&node, Waiter::NodeDown(tx)));
            // The node is not kept alive by its monitors; one dropped before it fired is
            // forgotten by the machine.
            drop(inner);
            let _forget = ForgetNodeMonitor { inner: weak, id };
            match rx.await {
                Ok(down) => down.reason.to_string(),
                Err(_) => NodeDownReason::NodeShutdown.to_string(),
            }
        }
        .boxed()
    }

    fn subscribe_nodes(&self, sink: NodeSink) -> Cancel {
        let Some(inner) = self.0.upgrade() else {
            return Cancel::new(|| {});
        };
        // Subscribed now: no event after this call is missed.
        let mut events = inner.events.subscribe();
        let forward = tokio::spawn(
            async move {
                loop {
                    let status = match events.recv().await {
                        Ok(NodeEvent::NodeUp {
                            node,
                            hidden: false,
                        }) => NodeStatus::Up(node),
                        Ok(NodeEvent::NodeDown {
                            node,
                            hidden: false,
                            reason,
                        }) => NodeStatus::Down(node, reason.to_string()),
                        Ok(_) => continue, // hidden nodes are not followed
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            tracing::warn!("a node subscriber missed {n} node events");
                            continue;
                        }
                        Err(broadcast::error::RecvError::Closed) => return,
                    };
                    sink(status);
                }
            }
            .instrument(inner.span()),
        );
        let abort = forward.abort_handle();
        Cancel::new(move || abort.abort())
    }

    fn cast(&self, node: NodeName, message: RemoteSend) -> Result<(), SendErrorKind> {
        #[cfg(feature = "erlang")]
        if let Some(erlang) = self.0.upgrade().and_then(|inner| inner.beam_peer(&node)) {
            return crate::erl::remote::cast_for_system(&erlang, node, message);
        }
        match self.0.upgrade() {
            Some(inner) => inner
                .cast(
                    &node,
                    &message.target,
                    message.name,
                    message.payload,
                    current_trace(),
                )
                .map_err(|refused| refused.kind),
            None => Err(SendErrorKind::NoConnection { node }),
        }
    }

    fn cast_wait(
        &self,
        node: NodeName,
        message: RemoteSend,
    ) -> BoxFuture<'static, Result<(), SendErrorKind>> {
        let weak = self.0.clone();
        let trace = current_trace();
        async move {
            let RemoteSend {
                target,
                name,
                mut payload,
            } = message;
            loop {
                let Some(inner) = weak.upgrade() else {
                    return Err(SendErrorKind::NoConnection { node });
                };
                match inner.cast(&node, &target, name, payload, trace) {
                    Ok(()) => return Ok(()),
                    Err(CastRefused {
                        kind: SendErrorKind::Busy { .. },
                        payload: back,
                    }) => payload = back,
                    Err(refused) => return Err(refused.kind),
                }
                // Busy: wait for room in this peer's queue only. A session's wait ends when
                // its queue has room or it closes (a stalled peer is down after tick_time);
                // a connect's queue empties when the connect ends, bounded by its timeouts.
                let session = inner.lock().session(&node).cloned();
                match session {
                    Some(session) => {
                        drop(inner); // the node is not kept alive by a waiting sender
                        session.wait_for_room().await;
                    }
                    None => {
                        connect(&inner, &node)
                            .await
                            .map_err(|_| SendErrorKind::NoConnection { node: node.clone() })?;
                    }
                }
            }
        }
        .boxed()
    }

    fn monitor(&self, node: NodeName, target: Destination) -> Monitor {
        let Some(inner) = self.0.upgrade() else {
            return Monitor::down(target, DownReason::NoConnection);
        };
        let (tx, rx) = oneshot::channel();
        if inner.lock().is_connected(&node) {
            // Connected: the watch goes out now, in order with this node's other frames to
            // that peer (a monitor set before a stop signal sees the stop).
            let watch = inner.with_state(|s| s.request_watch(&node, &target, Waiter::Down(tx)));
            let cancel = watch.map(|watch| {
                let weak = Arc::downgrade(&inner);
                Cancel::new(move || {
                    if let Some(inner) = weak.upgrade() {
                        inner.with_state(|s| s.cancel_watch(watch));
                    }
                })
            });
            return Monitor::new(target, rx, cancel);
        }
        // The watch's id once it is set (0 before).
        let id = Arc::new(AtomicU64::new(0));
        let setup = {
            let (inner, node, dest, id) = (inner.clone(), node.clone(), target.clone(), id.clone());
            tokio::spawn(async move {
                if connect(&inner, &node).await.is_err() {
                    let _ = tx.send(DownReason::NoConnection);
                    return;
                }
                let watch = inner.with_state(|s| s.request_watch(&node, &dest, Waiter::Down(tx)));
                id.store(watch.unwrap_or(0), Ordering::Release);
            })
        };
        let (weak, abort) = (Arc::downgrade(&inner), setup.abort_handle());
        let cancel = Cancel::new(move || {
            abort.abort();
            let watch = id.load(Ordering::Acquire);
            if let (Some(inner), true) = (weak.upgrade(), watch != 0) {
                inner.with_state(|s| s.cancel_watch(watch));
            }
        });
        Monitor::new(target, rx, Some(cancel))
    }

    fn call(
        &self,
        node: NodeName,
        message: RemoteSend,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Vec<u8>, CallError>> {
        let weak = self.0.clone();
        let trace = current_trace();
        async move {
            let no_connection = |node: &NodeName| {
                CallError::Send(SendErrorKind::NoConnection { node: node.clone() })
            };
            let Some(inner) = weak.upgrade() else {
                return Err(no_connection(&node));
            };
            #[cfg(feature = "erlang")]
            if let Some(erlang) = inner.beam_peer(&node) {
                return crate::erl::remote::call_for_system(&erlang, node, message, timeout).await;
            }
            let dest = message.target;
            let deadline = tokio::time::Instant::now() + timeout;
            match tokio::time::timeout_at(deadline, connect(&inner, &node)).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(no_connection(&node)),
                Err(_) => return Err(CallError::Timeout { dest, timeout }),
            }
            wait_for_room(&inner, &node, deadline)
                .await
                .map_err(CallError::Send)?;
            let (waiter, rx) = waiter();
            inner.with_state(|s| {
                let deadline = deadline.into_std();
                let payload = message.payload;
                s.traced(trace).request_call(
                    deadline,
                    &node,
                    &dest,
                    message.name,
                    payload,
                    timeout,
                    waiter,
                )
            });
            match wait_until(&inner, deadline, rx).await {
                Some(Outcome::Reply(result)) => result,
                Some(other) => {
                    tracing::error!(parent: &inner.span(), "internal: {other:?} for a call");
                    Err(no_connection(&node))
                }
                None => Err(no_connection(&node)),
            }
        }
        .boxed()
    }

    fn start_task(
        &self,
        node: NodeName,
        request: RemoteTaskRequest,
    ) -> BoxFuture<'static, Result<RemoteTask, TaskError>> {
        let weak = self.0.clone();
        let trace = current_trace();
        async move {
            let no_connection = || TaskError::NoConnection { node: node.clone() };
            let inner = weak.upgrade().ok_or_else(no_connection)?;
            #[cfg(feature = "erlang")]
            if let Some(erlang) = inner.beam_peer(&node) {
                return crate::erl::remote::start_task(&erlang, node, request).await;
            }
            // The caller's timeout bounds the whole start: connecting and the answer.
            let timeout = request.timeout;
            let deadline = tokio::time::Instant::now() + timeout;
            let connected = match tokio::time::timeout_at(deadline, connect(&inner, &node)).await {
                Ok(connected) => connected,
                Err(_) => Err(ConnectError::Timeout {
                    node: node.clone(),
                    timeout,
                }),
            };
            connected.map_err(|e| {
                tracing::debug!(parent: &inner.span(), peer = %node, "task not started: {e}");
                no_connection() // nothing was sent
            })?;
            wait_for_room(&inner, &node, deadline)
                .await
                .map_err(|e| match e {
                    SendErrorKind::Busy { node, limit } => TaskError::Busy { node, limit },
                    _ => no_connection(),
                })?;
            let (started, started_rx) = waiter();
            let (result, result_rx) = match request.kind {
                TaskKind::Async { .. } => {
                    let (tx, rx) = oneshot::channel();
                    (Some(Waiter::TaskResult(tx)), Some(rx))
                }
                TaskKind::Child(_) => (None, None),
            };
            let req = inner.with_state(|s| {
                s.traced(trace).request_task(
                    deadline.into_std(),
                    timeout,
                    &node,
                    &request.supervisor,
                    &request.module,
                    &request.function,
                    request.args,
                    to_wire_kind(request.kind),
                    started,
                    result,
                )
            });
            // A linked task whose caller goes away before the start reply is stopped, as
            // Elixir's `Task.Supervised` exits when its owner is gone before the hand-off.
            let linked = matches!(request.kind, TaskKind::Async { linked: true });
            let mut guard = StopUnclaimed {
                inner: weak.clone(),
                node: node.clone(),
                req: req.filter(|_| linked),
            };
            let started = wait_until(&inner, deadline, started_rx).await;
            guard.req = None; // claimed: from here on the `Task` handle stops it
            let id = match started {
                Some(Outcome::Started(result)) => result?,
                Some(other) => {
                    tracing::error!(parent: &inner.span(), "internal: {other:?} for a task start");
                    return Err(no_connection());
                }
                None => return Err(no_connection()),
            };
            let req = req.ok_or_else(no_connection)?;
            let cancel = {
                let (weak, node) = (weak.clone(), node.clone());
                Cancel::new(move || {
                    if let Some(inner) = weak.upgrade() {
                        inner.with_state(|s| s.cancel_task(&node, req));
                    }
                })
            };
            Ok(RemoteTask {
                id,
                result: result_rx,
                cancel,
            })
        }
        .boxed()
    }
}

/// Waits, until `deadline`, for room in the queue for `node` (a call or a task start waits
/// for room as `System::cast_wait` does, within its own timeout).
///
/// # Errors
/// `Busy` if there is still no room at `deadline` (nothing was sent).
async fn wait_for_room(
    inner: &Arc<Inner>,
    node: &NodeName,
    deadline: tokio::time::Instant,
) -> Result<(), SendErrorKind> {
    let Some(session) = inner.lock().session(node).cloned() else {
        return Ok(()); // the request itself hears that the session is gone
    };
    if session.has_room() {
        return Ok(());
    }
    match tokio::time::timeout_at(deadline, session.wait_for_room()).await {
        Ok(()) => Ok(()),
        Err(_) => Err(SendErrorKind::Busy {
            node: node.clone(),
            limit: session.send_queue_limit(),
        }),
    }
}

/// `Node::spawn_on`: runs `module.function(args)` on `node` as a plain process.
pub(super) async fn spawn_plain_on<A>(
    inner: &Arc<Inner>,
    node: &NodeName,
    module: &str,
    function: &str,
    args: A,
) -> Result<(), TaskError>
where
    A: serde::Serialize + Send + 'static,
{
    if *node == inner.name {
        let leader = io::group_leader().unwrap_or_else(|| inner.system.output());
        return spawn_plain(&inner.system, module, function, Args::value(args), leader);
    }
    let no_connection = || TaskError::NoConnection { node: node.clone() };
    let args = codec::encode(&args).map_err(|e| TaskError::BadArgs {
        reason: e.to_string(),
    })?;
    connect(inner, node).await.map_err(|e| {
        tracing::debug!(parent: &inner.span(), peer = %node, "can not start {module}.{function}: {e}");
        no_connection()
    })?;
    let (started, rx) = waiter();
    let trace = current_trace();
    inner.with_state(|s| {
        s.traced(trace)
            .request_plain(node, module, function, args, started)
    });
    match rx.await {
        Ok(Outcome::Started(result)) => result.map(|_| ()),
        Ok(_) | Err(_) => Err(no_connection()),
    }
}

/// Stops the task of request `req` on `node` when dropped while still armed: the caller of a
/// linked task went away before the task's start was answered.
struct StopUnclaimed {
    inner: Weak<Inner>,
    node: NodeName,
    req: Option<u64>,
}

impl Drop for StopUnclaimed {
    fn drop(&mut self) {
        if let (Some(req), Some(inner)) = (self.req, self.inner.upgrade()) {
            tracing::debug!(parent: &inner.span(), peer = %self.node, req, "caller gone before the task started: stopping it");
            inner.with_state(|s| s.cancel_task(&self.node, req));
        }
    }
}

/// Removes a node monitor from the machine when the future waiting for it is dropped (after
/// it fired, there is nothing left to remove).
struct ForgetNodeMonitor {
    inner: Weak<Inner>,
    id: Option<u64>,
}

impl Drop for ForgetNodeMonitor {
    fn drop(&mut self) {
        if let (Some(id), Some(inner)) = (self.id, self.inner.upgrade()) {
            inner.with_state(|s| s.cancel_node_monitor(id));
        }
    }
}

/// The caller's trace context, for the request it makes now (see `actor_core::trace`).
fn current_trace() -> Option<WireTrace> {
    actor_core::TraceContext::current().map(WireTrace::from)
}
