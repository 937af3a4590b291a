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

use actor_core::{
    codec, io,
    transport::{
        spawn_plain, Cancel, RemoteSend, RemoteTask, RemoteTaskRequest, TaskKind, Transport,
    },
    Args, CallError, Destination, DownReason, Monitor, NodeName, SendErrorKind, TaskError,
};
use futures::{future::BoxFuture, FutureExt};
use tokio::sync::oneshot;

use super::{
    driver::{connect, wait_until, waiter, Inner, Waiter},
    outcomes::to_wire_kind,
    state::Outcome,
    Node,
};

/// The node's distribution as its [`System`](actor_core::System) sees it.
pub(super) struct NodeTransport(pub(super) Weak<Inner>);

impl Transport for NodeTransport {
    fn cast(&self, node: NodeName, message: RemoteSend) {
        if let Some(inner) = self.0.upgrade() {
            inner
                .with_state(|s| s.cast(&node, &message.target, message.type_name, message.payload));
        }
    }

    fn monitor(&self, node: NodeName, target: Destination) -> Monitor {
        let Some(inner) = self.0.upgrade() else {
            return Monitor::down(target, DownReason::NoConnection);
        };
        let (tx, rx) = oneshot::channel();
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
        async move {
            let no_connection = |node: &NodeName| {
                CallError::Send(SendErrorKind::NoConnection { node: node.clone() })
            };
            let Some(inner) = weak.upgrade() else {
                return Err(no_connection(&node));
            };
            let dest = message.target;
            let deadline = tokio::time::Instant::now() + timeout;
            match tokio::time::timeout_at(deadline, connect(&inner, &node)).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(no_connection(&node)),
                Err(_) => return Err(CallError::Timeout { dest, timeout }),
            }
            let (waiter, rx) = waiter();
            inner.with_state(|s| {
                let deadline = deadline.into_std();
                let payload = message.payload;
                s.request_call(
                    deadline,
                    &node,
                    &dest,
                    message.type_name,
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
        async move {
            let no_connection = || TaskError::NoConnection { node: node.clone() };
            let inner = weak.upgrade().ok_or_else(no_connection)?;
            connect(&inner, &node).await.map_err(|e| {
                tracing::debug!(parent: &inner.span(), peer = %node, "task not started: {e}");
                no_connection()
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
                s.request_task(
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
            let id = match started_rx.await {
                Ok(Outcome::Started(result)) => result?,
                Ok(other) => {
                    tracing::error!(parent: &inner.span(), "internal: {other:?} for a task start");
                    return Err(no_connection());
                }
                Err(_) => return Err(no_connection()),
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
        let (started, rx) = waiter();
        inner.with_state(|s| s.request_plain(node, module, function, args, started));
        match rx.await {
            Ok(Outcome::Started(result)) => result.map(|_| ()),
            Ok(_) | Err(_) => Err(no_connection()),
        }
    }
}
