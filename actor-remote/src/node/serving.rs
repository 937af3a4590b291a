//! What a node does for its peers: delivers their messages to its actors, starts the tasks
//! they ask for, runs their plain spawns, watches its actors for them, and prints what its
//! own plain spawns on them print. Each piece of work reports back to the machine, which
//! answers the peer.

use std::sync::Arc;

use actor_core::{
    io::Output,
    trace::maybe_instrument,
    transport::{self, spawn_plain, PeerTarget, TaskKind},
    Args, NodeName, ReplySink, TraceContext,
};
use futures::FutureExt;
use tracing::Instrument;

use super::{
    addressing::{destination, peer_target, wire_pid},
    inner::Inner,
    outcomes::{from_wire_kind, wire_send_error},
    state::Serve,
};
use crate::{
    transport::{Responder, SendError, Work},
    wire::{
        message::{ActorMsg, LinkMsg, NodeMsg, TaskMsg, WireSendError, WireTaskError, WireTrace},
        FrameError,
    },
};

/// An actor message from `peer`, in the session's reader task: a message for a local actor
/// (delivered on the spot; a call's reply goes back through `responder`), or the reply to one
/// of this node's calls.
pub(super) fn on_actor(
    inner: &Arc<Inner>,
    peer: &NodeName,
    responder: &Responder<NodeMsg>,
    msg: ActorMsg,
) {
    match msg {
        ActorMsg::Send {
            target,
            name,
            payload,
            call,
            trace,
        } => on_send(
            inner,
            peer,
            responder,
            peer_target(&target),
            &name,
            &payload,
            call,
            trace,
        ),
        ActorMsg::Reply { call, result } => {
            inner.with_state(|s| s.handle_reply(peer, call, result))
        }
    }
}

/// A peer's [`ActorMsg::Send`], its parts borrowed from the frame (the reader's fast path,
/// `SendRef`) or from the decoded message: delivered to the local actor on the spot; a
/// call's reply goes back through `responder`.
#[allow(clippy::too_many_arguments)] // the parts of one wire message
pub(super) fn on_send(
    inner: &Arc<Inner>,
    peer: &NodeName,
    responder: &Responder<NodeMsg>,
    target: PeerTarget<'_>,
    name: &str,
    payload: &[u8],
    call: Option<u64>,
    trace: Option<WireTrace>,
) {
    let sink = call.map(|call| {
            let responder = responder.clone();
            ReplySink::new(move |bytes| {
                let result = bytes.ok_or(WireSendError::NoReply);
                let sent = responder.send(&NodeMsg::Actor(ActorMsg::Reply { call, result }));
                if let Err(SendError::Frame(FrameError::TooLarge { len, max })) = sent {
                    // The caller hears why rather than waiting for its timeout.
                    let reason = format!("the reply is {len} bytes framed, over the largest frame of {max} bytes (max_frame_len); reply with less, or raise max_frame_len on both nodes");
                    let result = Err(WireSendError::Refused { reason });
                    let _ = responder.send(&NodeMsg::Actor(ActorMsg::Reply { call, result }));
                }
            })
        });
    // In the sender's trace: a generated actor's message then carries it to its
    // handler (a child span of the sender's).
    let deliver = || transport::deliver(&inner.system, target, name, payload, sink);
    let delivered = match trace {
        Some(trace) => {
            let trace = TraceContext::from(trace).child();
            let _node = inner.span().entered();
            trace.in_scope(deliver)
        }
        None => deliver(),
    };
    if let Err(kind) = delivered {
        tracing::debug!(%peer, ?target, "message not delivered: {kind}");
        if let Some(call) = call {
            let result = Err(wire_send_error(kind));
            let _ = responder.send(&NodeMsg::Actor(ActorMsg::Reply { call, result }));
        }
    }
}

/// How many peers' task starts a node runs at once beside their sessions' readers: past it, a
/// session's reader waits for the start it read (as [`Work`]), so a peer that floods a node
/// with starts is held back instead of piling up starts without bound.
pub(super) const MAX_TASK_STARTS: usize = 256;

/// Does the local work `peer` asked for on the session `conn` (`responder`), and reports
/// back: at once, or for a task's start (which waits for its task supervisor) beside the
/// session's reader, which reads on: the machine remembers a `Kill` that comes before the
/// start is served. Past [`MAX_TASK_STARTS`], the start is [`Work`] the reader waits for.
pub(super) fn serve(
    inner: &Arc<Inner>,
    peer: &NodeName,
    conn: u64,
    responder: &Responder<NodeMsg>,
    work: Serve,
) -> Option<Work> {
    match work {
        Serve::Task {
            req,
            supervisor,
            module,
            function,
            args,
            kind,
            trace,
        } => {
            let starts = inner.task_starts.clone();
            let (inner, peer) = (inner.clone(), peer.clone());
            let start = async move {
                let dest = destination(&inner.name, &supervisor);
                let kind = from_wire_kind(kind);
                // The task runs in a child of the caller's trace (`launch_here` takes it).
                let started = maybe_instrument(
                    trace.map(TraceContext::from),
                    transport::start_task_for_peer(
                        &inner.system,
                        &dest,
                        &module,
                        &function,
                        args,
                        kind,
                    ),
                )
                .await;
                task_started(&inner, &peer, conn, req, kind, started);
            };
            let mut start: Work = Box::pin(start.instrument(tracing::Span::current()));
            // Polled once here: its request reaches the task supervisor in the order the
            // peer sent it. (Whoever polls it next registers its own waker.)
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            if start.as_mut().poll(&mut cx).is_ready() {
                return None;
            }
            match starts.try_acquire_owned() {
                Ok(permit) => {
                    tokio::spawn(async move {
                        start.await;
                        drop(permit);
                    });
                    None
                }
                Err(_) => Some(Box::pin(Finish(Some(start)))),
            }
        }
        Serve::Plain {
            req,
            module,
            function,
            args,
            trace,
        } => {
            // The group leader is the caller's node: what the process prints goes back.
            let forward = responder.clone();
            let leader = Output::new(move |text| {
                let text = text.to_string();
                let _ = forward.send(&NodeMsg::Task(TaskMsg::Output { text }));
            });
            let spawn =
                || spawn_plain(&inner.system, &module, &function, Args::Bytes(args), leader);
            let spawned = match trace {
                Some(trace) => TraceContext::from(trace).in_scope(spawn),
                None => spawn(),
            };
            let result = spawned.map(|()| 0).map_err(WireTaskError::from);
            inner.with_state(|s| s.handle_plain_served(peer, req, result));
            None
        }
        Serve::Watch { id, target } => {
            let dest = destination(&inner.name, &target);
            // The process table's monitor: it resolves with the actor's real exit reason.
            let mut monitor = inner.system.monitor(dest);
            // Down at once: nothing lives there (`noproc`).
            let alive = (&mut monitor).now_or_never().is_none();
            inner.with_state(|s| {
                // Spawned under the machine's lock: its report cannot overtake the watch.
                let watcher = alive.then(|| {
                    let (weak, peer) = (Arc::downgrade(inner), peer.clone());
                    tokio::spawn(async move {
                        let down = monitor.await;
                        if let Some(inner) = weak.upgrade() {
                            inner.with_state(|s| s.handle_watched_exit(&peer, id, &down.reason));
                        }
                    })
                    .abort_handle()
                });
                s.handle_watch_served(peer, conn, id, watcher);
            });
            None
        }
        Serve::Print(text) => {
            inner.system.output().write(&text);
            None
        }
        link @ (Serve::Link { .. } | Serve::Unlink { .. } | Serve::Exit { .. }) => {
            serve_link(inner, responder, link);
            None
        }
    }
}

/// A task `peer` asked for on the session `conn` started (or did not): the machine answers
/// the peer, and a task with a result reports it when it ends.
fn task_started(
    inner: &Arc<Inner>,
    peer: &NodeName,
    conn: u64,
    req: u64,
    kind: TaskKind,
    started: Result<transport::PeerTask, actor_core::TaskError>,
) {
    inner.with_state(|s| match started {
        Err(e) => s.handle_task_served(peer, conn, req, Err(e.into())),
        Ok(task) => {
            let Some(rx) = task.result else {
                return s.handle_task_served(peer, conn, req, Ok((task.id, None)));
            };
            let linked = matches!(kind, TaskKind::Async { linked: true });
            s.handle_task_served(peer, conn, req, Ok((task.id, Some((task.abort, linked)))));
            // Spawned under the machine's lock: its report cannot overtake the above.
            let (weak, peer) = (Arc::downgrade(inner), peer.clone());
            tokio::spawn(
                async move {
                    let result = match rx.await {
                        Ok(Ok(value)) => value.encode().map_err(|e| WireTaskError::BadReturn {
                            reason: e.to_string(),
                        }),
                        Ok(Err(e)) => Err(e.into()),
                        Err(_) => Err(WireTaskError::Exited {
                            reason: "the task supervisor stopped".into(),
                        }),
                    };
                    if let Some(inner) = weak.upgrade() {
                        inner.with_state(|s| s.handle_task_finished(&peer, req, result));
                    }
                }
                .instrument(tracing::Span::current()),
            );
        }
    });
}

/// Work that finishes even if whoever waits for it stops waiting: dropped unfinished (its
/// session ended while the reader waited for it), the rest runs as a task of its own. A
/// task's start then still reaches the machine, which stops a linked task whose session is
/// gone, instead of leaving a started task nobody knows of.
struct Finish(Option<Work>);

impl std::future::Future for Finish {
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        let Some(work) = self.0.as_mut() else {
            return std::task::Poll::Ready(());
        };
        let done = work.as_mut().poll(cx);
        if done.is_ready() {
            self.0 = None;
        }
        done
    }
}

impl Drop for Finish {
    fn drop(&mut self) {
        if let (Some(work), Ok(runtime)) = (self.0.take(), tokio::runtime::Handle::try_current()) {
            runtime.spawn(work);
        }
    }
}

/// A link frame from `peer`, in the session's reader task: handed to the process table on
/// the spot, so that a peer's casts and exit signals reach its actors' partners in order. A
/// link to an actor that is not alive is answered through `responder`, on the session it came
/// on (which the machine may not know as up yet: a peer's first frame may be a link).
pub(super) fn on_link(
    inner: &Arc<Inner>,
    peer: &NodeName,
    responder: &Responder<NodeMsg>,
    msg: LinkMsg,
) {
    let work = inner.with_state(|s| s.handle_link(peer, msg));
    serve_link(inner, responder, work);
}

/// A link, an unlink or an exit signal of a peer's actor for a local one.
fn serve_link(inner: &Arc<Inner>, responder: &Responder<NodeMsg>, work: Serve) {
    match work {
        Serve::Link { from, to } => {
            // A link to an actor that is not alive is answered with its exit (`noproc`).
            if let Some(reason) = transport::link_from_peer(&inner.system, from.clone(), &to) {
                let exit = LinkMsg::Exit {
                    from: wire_pid(&to),
                    to: wire_pid(&from),
                    reason: (&reason).into(),
                };
                let _ = responder.send(&NodeMsg::Link(exit));
            }
        }
        Serve::Unlink { from, to } => transport::unlink_from_peer(&inner.system, &from, &to),
        Serve::Exit { from, to, reason } => {
            transport::exit_from_peer(&inner.system, from, &to, reason);
        }
        other => tracing::error!("internal: {other:?} is not link work"),
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::{
            atomic::{AtomicUsize, Ordering},
            Arc, Mutex,
        },
        task::{Context, Poll},
        time::Duration,
    };

    use tokio::{sync::oneshot, time::timeout};

    use super::*;

    const LIMIT: Duration = Duration::from_secs(5);

    fn alive_tasks() -> usize {
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks()
    }

    /// The reader stopped waiting for a task's start (its session ended): the rest of the
    /// start runs as a task of its own, from where it was, not again from the start.
    #[tokio::test]
    async fn a_finish_dropped_unfinished_runs_the_rest_of_its_work_as_a_task() {
        let steps = Arc::new(Mutex::new(Vec::new()));
        let (gate_tx, gate_rx) = oneshot::channel::<()>();
        let (done_tx, done_rx) = oneshot::channel();
        let work: Work = {
            let steps = steps.clone();
            Box::pin(async move {
                steps.lock().unwrap().push("before");
                gate_rx.await.unwrap();
                steps.lock().unwrap().push("after");
                done_tx.send(()).unwrap();
            })
        };
        let mut finish = Finish(Some(work));
        assert!(futures::poll!(&mut finish).is_pending());
        assert_eq!(*steps.lock().unwrap(), ["before"]);
        assert_eq!(alive_tasks(), 0);
        drop(finish);
        assert_eq!(alive_tasks(), 1, "the rest was not spawned");
        // The work (and its gate) is alive in that task: the gate can be opened.
        gate_tx.send(()).unwrap();
        timeout(LIMIT, done_rx)
            .await
            .expect("the rest of the work did not finish")
            .unwrap();
        assert_eq!(*steps.lock().unwrap(), ["before", "after"]);
    }

    /// Finished where it was awaited, a `Finish` leaves nothing to spawn: its work ran once.
    #[tokio::test]
    async fn a_finish_awaited_to_the_end_spawns_nothing_when_dropped() {
        let runs = Arc::new(AtomicUsize::new(0));
        let (gate_tx, gate_rx) = oneshot::channel::<()>();
        let work: Work = {
            let runs = runs.clone();
            Box::pin(async move {
                gate_rx.await.unwrap();
                runs.fetch_add(1, Ordering::SeqCst);
            })
        };
        let mut finish = Finish(Some(work));
        assert!(futures::poll!(&mut finish).is_pending());
        gate_tx.send(()).unwrap();
        timeout(LIMIT, &mut finish)
            .await
            .expect("the work did not finish");
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        // Polled again after its end, it is ready at once (it does not poll the work again).
        assert!(futures::poll!(&mut finish).is_ready());
        drop(finish);
        assert_eq!(alive_tasks(), 0, "a finished Finish spawned a task");
        tokio::task::yield_now().await;
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    /// Outside a runtime there is nothing to finish the work on: it is dropped, not run
    /// (and dropping does not panic).
    #[test]
    fn a_finish_dropped_outside_a_runtime_drops_its_work() {
        struct Dropped(Arc<AtomicUsize>);
        impl Drop for Dropped {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let dropped = Arc::new(AtomicUsize::new(0));
        let guard = Dropped(dropped.clone());
        let mut finish = Finish(Some(Box::pin(async move {
            let _guard = guard;
            std::future::pending::<()>().await;
        })));
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        assert_eq!(finish.poll_unpin(&mut cx), Poll::Pending);
        assert_eq!(dropped.load(Ordering::SeqCst), 0);
        drop(finish);
        assert_eq!(dropped.load(Ordering::SeqCst), 1);
    }
}
