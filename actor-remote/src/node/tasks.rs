//! Remote tasks: the node's [`Transport`] for callers, and the serving half for peers.

use std::{
    collections::HashMap,
    sync::{atomic::Ordering, Arc, Weak},
    time::Duration,
};

use actor_core::{
    codec,
    io::{self, Output},
    transport::{
        spawn_plain, start_task_for_peer, Cancel, RemoteTask, RemoteTaskRequest, TaskKind,
        Transport,
    },
    Args, Destination, NodeName, Restart, TaskError, Value,
};
use futures::{future::BoxFuture, FutureExt};
use tokio::{sync::oneshot, task::AbortHandle};
use tracing::Instrument;

use super::{connect, Inner, Node};
use crate::{
    transport::SessionHandle,
    wire::message::{NodeMsg, WireRestart, WireTaskError, WireTaskKind},
};

/// A task this node asked a peer for, waiting for its answers.
pub(super) struct Outgoing {
    node: NodeName,
    started: Option<oneshot::Sender<Result<u64, TaskError>>>,
    result: Option<oneshot::Sender<Result<Value, TaskError>>>,
}

/// A task this node runs for a peer.
pub(super) struct Served {
    abort: AbortHandle,
    linked: bool,
}

/// Remote-task bookkeeping of one node.
#[derive(Default)]
pub(super) struct Tasks {
    outgoing: HashMap<u64, Outgoing>,
    served: HashMap<(NodeName, u64), Served>,
}

impl Tasks {
    /// The session with `peer` went down: callers waiting on it get `NoConnection` at once,
    /// and tasks it started linked are stopped (their caller's node is gone).
    pub(super) fn node_down(&mut self, peer: &NodeName) {
        let lost: Vec<u64> = self
            .outgoing
            .iter()
            .filter(|(_, o)| o.node == *peer)
            .map(|(req, _)| *req)
            .collect();
        for req in lost {
            if let Some(o) = self.outgoing.remove(&req) {
                let err = || TaskError::NoConnection { node: peer.clone() };
                if let Some(tx) = o.started {
                    let _ = tx.send(Err(err()));
                }
                if let Some(tx) = o.result {
                    let _ = tx.send(Err(err()));
                }
            }
        }
        self.served.retain(|(node, _), served| {
            if node != peer {
                return true;
            }
            if served.linked {
                served.abort.abort();
            }
            false
        });
    }
}

impl From<TaskError> for WireTaskError {
    fn from(e: TaskError) -> Self {
        match e {
            TaskError::Timeout { timeout } => Self::Timeout {
                millis: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            },
            TaskError::Panicked { message } => Self::Panicked { message },
            TaskError::Exited { reason } => Self::Exited { reason },
            TaskError::NoConnection { node } => Self::NoConnection { node },
            TaskError::NoProc { name, node } => Self::NoProc { name, node },
            TaskError::Undefined { module, function } => Self::Undefined { module, function },
            TaskError::BadArgs { reason } => Self::BadArgs { reason },
            TaskError::BadReturn { reason } => Self::BadReturn { reason },
            TaskError::MaxChildren { name, max } => Self::MaxChildren {
                name,
                max: max as u64,
            },
            other => Self::Exited {
                reason: other.to_string(),
            },
        }
    }
}

impl From<WireTaskError> for TaskError {
    fn from(e: WireTaskError) -> Self {
        match e {
            WireTaskError::Timeout { millis } => Self::Timeout {
                timeout: Duration::from_millis(millis),
            },
            WireTaskError::Panicked { message } => Self::Panicked { message },
            WireTaskError::Exited { reason } => Self::Exited { reason },
            WireTaskError::NoConnection { node } => Self::NoConnection { node },
            WireTaskError::NoProc { name, node } => Self::NoProc { name, node },
            WireTaskError::Undefined { module, function } => Self::Undefined { module, function },
            WireTaskError::BadArgs { reason } => Self::BadArgs { reason },
            WireTaskError::BadReturn { reason } => Self::BadReturn { reason },
            WireTaskError::MaxChildren { name, max } => Self::MaxChildren {
                name,
                max: usize::try_from(max).unwrap_or(usize::MAX),
            },
        }
    }
}

fn to_wire_kind(kind: TaskKind) -> WireTaskKind {
    match kind {
        TaskKind::Async { linked } => WireTaskKind::Async { linked },
        TaskKind::Child(Restart::Permanent) => WireTaskKind::Child(WireRestart::Permanent),
        TaskKind::Child(Restart::Transient) => WireTaskKind::Child(WireRestart::Transient),
        TaskKind::Child(Restart::Temporary) => WireTaskKind::Child(WireRestart::Temporary),
    }
}

fn from_wire_kind(kind: WireTaskKind) -> TaskKind {
    match kind {
        WireTaskKind::Async { linked } => TaskKind::Async { linked },
        WireTaskKind::Child(WireRestart::Permanent) => TaskKind::Child(Restart::Permanent),
        WireTaskKind::Child(WireRestart::Transient) => TaskKind::Child(Restart::Transient),
        WireTaskKind::Child(WireRestart::Temporary) => TaskKind::Child(Restart::Temporary),
    }
}

/// The node's distribution as its [`System`](actor_core::System) sees it.
pub(super) struct NodeTransport(pub(super) Weak<Inner>);

impl Transport for NodeTransport {
    fn cast(&self, node: NodeName, message: actor_core::transport::RemoteSend) {
        if let Some(inner) = self.0.upgrade() {
            super::actors::cast(&inner, node, message);
        }
    }

    fn monitor(&self, node: NodeName, target: Destination) -> actor_core::Monitor {
        match self.0.upgrade() {
            Some(inner) => super::monitors::monitor(&inner, node, target),
            None => actor_core::Monitor::down(target, actor_core::DownReason::NoConnection),
        }
    }

    fn call(
        &self,
        node: NodeName,
        message: actor_core::transport::RemoteSend,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Vec<u8>, actor_core::CallError>> {
        let weak = self.0.clone();
        async move {
            let Some(inner) = weak.upgrade() else {
                return Err(actor_core::CallError::Send(
                    actor_core::SendErrorKind::NoConnection { node },
                ));
            };
            super::actors::call(&inner, node, message, timeout).await
        }
        .boxed()
    }

    fn start_task(
        &self,
        node: NodeName,
        request: RemoteTaskRequest,
    ) -> BoxFuture<'static, Result<RemoteTask, TaskError>> {
        let weak = self.0.clone();
        async move {
            let no_connection = || TaskError::NoConnection { node: node.clone() };
            let inner = weak.upgrade().ok_or_else(no_connection)?;
            connect(&inner, &node).await.map_err(|e| {
                tracing::debug!(parent: &inner.span(), peer = %node, "task not started: {e}");
                no_connection()
            })?;
            let target = super::actors::target_of(&request.supervisor);
            let req = inner.next_id.fetch_add(1, Ordering::Relaxed);
            let (started_tx, started_rx) = oneshot::channel();
            let (result_tx, result_rx) = match request.kind {
                TaskKind::Async { .. } => {
                    let (tx, rx) = oneshot::channel();
                    (Some(tx), Some(rx))
                }
                TaskKind::Child(_) => (None, None),
            };
            let handle = {
                let mut state = inner.lock();
                let handle = state.handle_of(&node).ok_or_else(no_connection)?;
                state.tasks.outgoing.insert(
                    req,
                    Outgoing {
                        node: node.clone(),
                        started: Some(started_tx),
                        result: result_tx,
                    },
                );
                handle
            };
            let spawn = NodeMsg::SpawnTask {
                req,
                supervisor: target,
                module: request.module,
                function: request.function,
                args: request.args,
                kind: to_wire_kind(request.kind),
            };
            if let Err(e) = handle.send(&spawn) {
                inner.lock().tasks.outgoing.remove(&req);
                return Err(match e {
                    crate::transport::SendError::Frame(f) => TaskError::BadArgs {
                        reason: f.to_string(),
                    },
                    _ => no_connection(),
                });
            }
            let id = started_rx.await.unwrap_or_else(|_| Err(no_connection()))?;
            let cancel = {
                let (weak, node) = (weak.clone(), node.clone());
                Cancel::new(move || {
                    let Some(inner) = weak.upgrade() else { return };
                    let handle = {
                        let mut state = inner.lock();
                        state.tasks.outgoing.remove(&req);
                        state.handle_of(&node)
                    };
                    if let Some(handle) = handle {
                        let _ = handle.send(&NodeMsg::KillTask { req });
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

/// Handles a task message from `peer`; `handle` is the session it came on.
pub(super) async fn on_message(
    inner: &Arc<Inner>,
    peer: &NodeName,
    handle: &SessionHandle<NodeMsg>,
    msg: NodeMsg,
) {
    match msg {
        NodeMsg::SpawnTask {
            req,
            supervisor,
            module,
            function,
            args,
            kind,
        } => {
            let dest = super::actors::destination(inner, supervisor);
            let kind = from_wire_kind(kind);
            match start_task_for_peer(&inner.system, &dest, &module, &function, args, kind).await {
                Err(e) => {
                    let _ = handle.send(&NodeMsg::TaskStarted {
                        req,
                        result: Err(e.into()),
                    });
                }
                Ok(task) => {
                    let _ = handle.send(&NodeMsg::TaskStarted {
                        req,
                        result: Ok(task.id),
                    });
                    if let Some(rx) = task.result {
                        let linked = matches!(kind, TaskKind::Async { linked: true });
                        inner.lock().tasks.served.insert(
                            (peer.clone(), req),
                            Served {
                                abort: task.abort,
                                linked,
                            },
                        );
                        let (weak, peer, handle) =
                            (Arc::downgrade(inner), peer.clone(), handle.clone());
                        tokio::spawn(
                            async move {
                                let result = match rx.await {
                                    Ok(Ok(value)) => {
                                        value.encode().map_err(|e| WireTaskError::BadReturn {
                                            reason: e.to_string(),
                                        })
                                    }
                                    Ok(Err(e)) => Err(e.into()),
                                    Err(_) => Err(WireTaskError::Exited {
                                        reason: "the task supervisor stopped".into(),
                                    }),
                                };
                                if let Some(inner) = weak.upgrade() {
                                    inner.lock().tasks.served.remove(&(peer, req));
                                }
                                let _ = handle.send(&NodeMsg::TaskResult { req, result });
                            }
                            .instrument(tracing::Span::current()),
                        );
                    }
                }
            }
        }
        NodeMsg::TaskStarted { req, result } => {
            let mut state = inner.lock();
            let Some(outgoing) = state.tasks.outgoing.get_mut(&req) else {
                return;
            };
            let done = result.is_err() || outgoing.result.is_none();
            if let Some(tx) = outgoing.started.take() {
                let _ = tx.send(result.map_err(TaskError::from));
            }
            if done {
                state.tasks.outgoing.remove(&req);
            }
        }
        NodeMsg::TaskResult { req, result } => {
            let outgoing = inner.lock().tasks.outgoing.remove(&req);
            if let Some(tx) = outgoing.and_then(|o| o.result) {
                let _ = tx.send(result.map(Value::encoded).map_err(TaskError::from));
            }
        }
        NodeMsg::KillTask { req } => {
            if let Some(served) = inner.lock().tasks.served.remove(&(peer.clone(), req)) {
                served.abort.abort();
            }
        }
        NodeMsg::SpawnPlain {
            req,
            module,
            function,
            args,
        } => {
            // The group leader is the caller's node: what the process prints goes back.
            let forward = handle.clone();
            let leader = Output::new(move |text| {
                let _ = forward.send(&NodeMsg::Output {
                    text: text.to_string(),
                });
            });
            let result = spawn_plain(&inner.system, &module, &function, Args::Bytes(args), leader)
                .map(|()| 0)
                .map_err(WireTaskError::from);
            let _ = handle.send(&NodeMsg::TaskStarted { req, result });
        }
        NodeMsg::Output { text } => inner.system.output().write(&text),
        _ => {}
    }
}

impl Node {
    /// Runs `module.function(args)` on `node` as a plain process, as `Node.spawn/4`: under
    /// no supervisor, fire and forget (its result is dropped, a panic is logged on `node`).
    ///
    /// Its group leader is the caller's: what it prints with `nodus::puts!` is sent back
    /// over the session and written to this node's [output](actor_core::System::output),
    /// not `node`'s (reference/beam.md §2). A task under a remote `TaskSupervisor` prints on
    /// the remote node instead. On this node itself, the process inherits the calling task's
    /// group leader (this node's output if it has none).
    ///
    /// It connects to `node` if needed, and returns once `node` has started the process (one
    /// round trip), so that an unknown function is an error here rather than a crash there.
    ///
    /// # Errors
    /// [`TaskError::NoConnection`] at once when `node` cannot be reached (the BEAM returns a
    /// pid and logs `Can not start M:f on node`; nothing runs either way),
    /// [`TaskError::Undefined`] when `node` has no such function, [`TaskError::BadArgs`]
    /// when the arguments do not encode or decode.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use actor_core::{io::Output, puts};
    /// use actor_remote::{port_mapper::PortMapperServer, Cookie, Node, NodeConfig};
    /// let epmd = PortMapperServer::bind("127.0.0.1:0".parse()?).await?.spawn();
    /// let config = |name| NodeConfig::sname(name)
    ///     .cookie(Cookie::new("mycookie").unwrap())
    ///     .port_mapper(epmd.local_addr());
    /// let hoge = Node::start(config("hoge@localhost")).await?;
    /// let fuga = Node::start(config("fuga@localhost")).await?;
    /// let (output, captured) = Output::capture();
    /// hoge.set_output(output);
    /// fuga.functions().register("IO", "puts", |(text,): (String,)| async move { puts!("{text}") });
    ///
    /// hoge.spawn_on(fuga.name(), "IO", "puts", ("hello from fuga",)).await?;
    /// // It ran on fuga and printed on hoge, the caller.
    /// # tokio::time::timeout(std::time::Duration::from_secs(10), async {
    /// #     while captured.lines().is_empty() {
    /// #         tokio::time::sleep(std::time::Duration::from_millis(5)).await; // polling interval
    /// #     }
    /// # }).await?;
    /// assert_eq!(captured.lines(), ["hello from fuga"]);
    /// # hoge.shutdown().await; fuga.shutdown().await; Ok(()) }
    /// ```
    pub async fn spawn_on<A>(
        &self,
        node: &NodeName,
        module: &str,
        function: &str,
        args: A,
    ) -> Result<(), TaskError>
    where
        A: serde::Serialize + Send + 'static,
    {
        let inner = &self.inner;
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
        let req = inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (started_tx, started_rx) = oneshot::channel();
        let handle = {
            let mut state = inner.lock();
            let handle = state
                .peers
                .get(node)
                .map(|p| p.handle.clone())
                .ok_or_else(no_connection)?;
            state.tasks.outgoing.insert(
                req,
                Outgoing {
                    node: node.clone(),
                    started: Some(started_tx),
                    result: None,
                },
            );
            handle
        };
        let spawn = NodeMsg::SpawnPlain {
            req,
            module: module.to_string(),
            function: function.to_string(),
            args,
        };
        if let Err(e) = handle.send(&spawn) {
            inner.lock().tasks.outgoing.remove(&req);
            return Err(match e {
                crate::transport::SendError::Frame(f) => TaskError::BadArgs {
                    reason: f.to_string(),
                },
                _ => no_connection(),
            });
        }
        started_rx
            .await
            .unwrap_or_else(|_| Err(no_connection()))
            .map(|_| ())
    }
}
