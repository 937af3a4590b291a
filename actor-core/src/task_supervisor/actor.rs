//! The task supervisor actor (Elixir's `Task.Supervised` and the server half of
//! `Task.Supervisor`): it takes one kind of request, [`StartRequest`], and starts every task
//! through one spawn path, which catches panics, sets the group leader, and reports the
//! outcome to the caller and to itself (for restarts and `max_children`).
//!
//! It holds the node's kernel, weakly, never a `System`.

use std::{collections::HashMap, fmt, time::Duration};

use futures::{future::BoxFuture, FutureExt};
use ractor::{rpc::CallResult, Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::{sync::oneshot, task::AbortHandle, time::Instant};
use tracing::Instrument;

use super::task::Outcome;
use crate::{
    error::{panic_message, SupervisorError, TaskError},
    function::{Args, Value},
    io::{self, Output},
    kernel::WeakKernel,
    restart::Restart,
    seam::TaskId,
    supervisor::{Intensity, SHUTDOWN},
};

/// How to start a [`TaskSupervisor`](crate::TaskSupervisor).
#[derive(Debug, Clone)]
pub struct TaskSupervisorConfig {
    /// The name it is registered under on its node, e.g. `"Chat.TaskSupervisor"`.
    pub name: String,
    /// The most tasks it runs at once (`None`: no limit).
    pub max_children: Option<usize>,
    /// Restarts allowed within `max_seconds` before it gives up (default 3).
    pub max_restarts: u32,
    /// The restart-intensity window (default 5 s).
    pub max_seconds: Duration,
}

impl TaskSupervisorConfig {
    /// A config with Elixir's defaults: no child limit, 3 restarts in 5 s.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            max_children: None,
            max_restarts: 3,
            max_seconds: Duration::from_secs(5),
        }
    }

    /// Limits how many tasks run at once.
    pub fn max_children(mut self, max: usize) -> Self {
        self.max_children = Some(max);
        self
    }

    /// Sets the restart intensity of restarted children.
    pub fn intensity(mut self, max_restarts: u32, max_seconds: Duration) -> Self {
        self.max_restarts = max_restarts;
        self.max_seconds = max_seconds;
        self
    }
}

/// A message for the task supervisor actor. Opaque: use the functions of
/// [`TaskSupervisor`](crate::TaskSupervisor).
pub struct TaskSupervisorMsg(pub(crate) Op);

impl fmt::Debug for TaskSupervisorMsg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TaskSupervisorMsg")
    }
}

/// Makes the future of a local task; called again for each restart.
pub(crate) type Factory = Box<dyn FnMut() -> BoxFuture<'static, Value> + Send>;

/// What a task runs.
pub(crate) enum Job {
    /// A function by name. Restartable jobs keep their arguments encoded.
    Call {
        module: String,
        function: String,
        args: Option<Args>,
        encoded: Option<Vec<u8>>,
    },
    /// A future made on this node (a closure: never from a peer).
    Future(Factory),
}

/// How a task relates to whoever started it.
pub(crate) enum Kind {
    /// `async`/`async_nolink`: the outcome goes to `reply` (the [`Task`](super::Task)
    /// handle's receiver, or a transport forwarding it to a peer). A `linked` task is stopped
    /// if its caller goes away before it claims the start reply.
    Async {
        reply: oneshot::Sender<Outcome>,
        linked: bool,
    },
    /// `start_child`: nobody waits; restarted as the [`Restart`] says.
    Child(Restart),
}

/// The one request every way of starting work under a task supervisor becomes: a local
/// future or a function by name, for a local caller, a stream or a peer. The actor answers
/// it with [`TaskSupervisorState::start`], its one spawn path.
pub(crate) struct StartRequest {
    pub(crate) job: Job,
    pub(crate) kind: Kind,
    /// The trace the task runs in (a child of its starter's), if any.
    pub(crate) trace: Option<crate::trace::TraceContext>,
}

/// A task the supervisor started, claimed by its caller.
pub(crate) struct Started {
    pub(crate) id: TaskId,
    pub(crate) abort: AbortHandle,
}

/// The supervisor's answer to a start, on its way to the caller. A linked task is stopped if
/// this is dropped before [`Unclaimed::claim`]: its caller went away (a dropped future, a
/// timeout, a `select!`, a dropped stream) after sending the request and before reading the
/// answer, as Elixir's `Task.Supervised` exits when its owner is gone before the hand-off.
/// Dropped unread with the reply channel, or returned by a send to a caller that is gone, it
/// stops the task either way.
pub(crate) struct Unclaimed {
    started: Started,
    /// The linked task's abort handle while nobody has claimed it; `None` for a task that is
    /// not linked, and once claimed.
    stop: Option<AbortHandle>,
    /// The supervisor's span (in its node's), to log the stop in.
    span: tracing::Span,
}

impl Unclaimed {
    /// The caller has the task: from here on its [`Task`](super::Task) handle (or, for a
    /// peer, the transport) keeps the link.
    pub(crate) fn claim(mut self) -> Started {
        self.stop = None;
        Started {
            id: self.started.id,
            abort: self.started.abort.clone(),
        }
    }
}

impl Drop for Unclaimed {
    fn drop(&mut self) {
        if let Some(abort) = self.stop.take() {
            tracing::debug!(
                parent: &self.span,
                task = self.started.id,
                "caller gone before the task's start was claimed: stopping it"
            );
            abort.abort();
        }
    }
}

pub(crate) enum Exit {
    Normal,
    Panicked(String),
    Stopped,
}

pub(crate) enum Op {
    Start(StartRequest, RpcReplyPort<Result<Unclaimed, TaskError>>),
    Exited(TaskId, Exit),
    Terminate(TaskId, RpcReplyPort<bool>),
    Count(RpcReplyPort<usize>),
    Children(RpcReplyPort<Vec<TaskId>>),
}

/// Reports how a task ended, to its caller and its supervisor, even when the task is
/// cancelled (dropped) before it finishes.
struct ExitGuard {
    supervisor: ActorRef<TaskSupervisorMsg>,
    id: TaskId,
    reply: Option<oneshot::Sender<Outcome>>,
    done: bool,
}

impl ExitGuard {
    fn finish(mut self, outcome: Outcome, exit: Exit) {
        self.done = true;
        if let Some(reply) = self.reply.take() {
            let _ = reply.send(outcome);
        }
        let _ = self
            .supervisor
            .cast(TaskSupervisorMsg(Op::Exited(self.id, exit)));
    }
}

impl Drop for ExitGuard {
    fn drop(&mut self) {
        if !self.done {
            if let Some(reply) = self.reply.take() {
                let _ = reply.send(Err(TaskError::Exited {
                    reason: "shutdown".into(),
                }));
            }
            let _ = self
                .supervisor
                .cast(TaskSupervisorMsg(Op::Exited(self.id, Exit::Stopped)));
        }
    }
}

/// A running task as its supervisor keeps it. Dropping it (the supervisor stopped, even by
/// kill) cancels the task.
struct Running {
    abort: AbortHandle,
    restart: Restart,
    job: Option<Job>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.abort.abort();
    }
}

/// The task supervisor actor.
pub(crate) struct TaskSupervisorActor;

/// The actor's state: its running tasks and how to start and restart them.
pub(crate) struct TaskSupervisorState {
    kernel: WeakKernel,
    span: tracing::Span,
    name: String,
    max_children: Option<usize>,
    intensity: Intensity,
    max_restarts: u32,
    max_seconds: Duration,
    next_id: TaskId,
    running: HashMap<TaskId, Running>,
}

impl TaskSupervisorState {
    fn make_future(&self, job: &mut Job) -> Result<BoxFuture<'static, Value>, TaskError> {
        match job {
            Job::Future(factory) => Ok(factory()),
            Job::Call {
                module,
                function,
                args,
                encoded,
            } => {
                let args = match (args.take(), encoded) {
                    (Some(args), _) => args,
                    (None, Some(bytes)) => Args::Bytes(bytes.clone()),
                    (None, None) => {
                        return Err(TaskError::BadArgs {
                            reason: "internal: arguments already used".into(),
                        })
                    }
                };
                let kernel = self.kernel.upgrade().ok_or_else(|| TaskError::Exited {
                    reason: "the node has shut down".into(),
                })?;
                kernel
                    .functions
                    .prepare(self.kernel.clone(), module, function, args)
            }
        }
    }

    fn spawn(
        &mut self,
        myself: &ActorRef<TaskSupervisorMsg>,
        future: BoxFuture<'static, Value>,
        reply: Option<oneshot::Sender<Outcome>>,
        trace: Option<crate::trace::TraceContext>,
    ) -> (TaskId, AbortHandle) {
        self.next_id += 1;
        let id = self.next_id;
        let guard = ExitGuard {
            supervisor: myself.clone(),
            id,
            reply,
            done: false,
        };
        let span =
            tracing::debug_span!(parent: &self.span, "task", supervisor = %self.name, task = id);
        // The group leader of every task is its supervisor's node output (as in Erlang, a process's group leader).
        let leader = self
            .kernel
            .upgrade()
            .map_or_else(Output::stdout, |kernel| kernel.output());
        let future = io::with_group_leader(leader, crate::trace::maybe_instrument(trace, future));
        let handle = tokio::spawn(
            async move {
                match std::panic::AssertUnwindSafe(future).catch_unwind().await {
                    Ok(value) => guard.finish(Ok(value), Exit::Normal),
                    Err(payload) => {
                        let message = panic_message(payload);
                        guard.finish(
                            Err(TaskError::Panicked {
                                message: message.clone(),
                            }),
                            Exit::Panicked(message),
                        );
                    }
                }
            }
            .instrument(span),
        );
        (id, handle.abort_handle())
    }

    /// Starts what `req` asks for: the one spawn path of every task.
    fn start(
        &mut self,
        myself: &ActorRef<TaskSupervisorMsg>,
        req: StartRequest,
    ) -> Result<Unclaimed, TaskError> {
        if let Some(max) = self.max_children {
            if self.running.len() >= max {
                return Err(TaskError::MaxChildren {
                    name: self.name.clone(),
                    max,
                });
            }
        }
        let StartRequest {
            mut job,
            kind,
            trace,
        } = req;
        let future = self.make_future(&mut job)?;
        let (reply, restart, linked) = match kind {
            Kind::Async { reply, linked } => (Some(reply), Restart::Temporary, linked),
            Kind::Child(restart) => (None, restart, false),
        };
        let (id, abort) = self.spawn(myself, future, reply, trace);
        let job = (restart != Restart::Temporary).then_some(job);
        self.running.insert(
            id,
            Running {
                abort: abort.clone(),
                restart,
                job,
            },
        );
        let (stop, span) = if linked {
            (Some(abort.clone()), self.span.clone())
        } else {
            (None, tracing::Span::none())
        };
        Ok(Unclaimed {
            stop,
            span,
            started: Started { id, abort },
        })
    }

    fn on_exit(
        &mut self,
        myself: &ActorRef<TaskSupervisorMsg>,
        id: TaskId,
        exit: Exit,
    ) -> Result<(), ActorProcessingErr> {
        let Some(mut running) = self.running.remove(&id) else {
            return Ok(()); // terminated on request
        };
        if let Exit::Panicked(message) = &exit {
            tracing::error!(supervisor = %self.name, task = id, "task terminating: panicked: {message}");
        }
        let wanted = match running.restart {
            Restart::Permanent => true,
            Restart::Transient => !matches!(exit, Exit::Normal),
            Restart::Temporary => false,
        };
        let Some(mut job) = running.job.take().filter(|_| wanted) else {
            return Ok(());
        };
        if !self.intensity.record(Instant::now()) {
            let err = SupervisorError::RestartIntensity {
                name: self.name.clone(),
                max_restarts: self.max_restarts,
                max_seconds: self.max_seconds,
            };
            // As a supervisor: log why, stop the tasks, exit `shutdown` (OTP).
            tracing::error!(supervisor = %self.name, "{err}");
            self.running.clear();
            myself.stop(Some(SHUTDOWN.into()));
            return Ok(());
        }
        match self.make_future(&mut job) {
            Ok(future) => {
                let (new_id, abort) = self.spawn(myself, future, None, None);
                self.running.insert(
                    new_id,
                    Running {
                        abort,
                        restart: running.restart,
                        job: Some(job),
                    },
                );
            }
            Err(e) => tracing::warn!(supervisor = %self.name, task = id, "task not restarted: {e}"),
        }
        Ok(())
    }
}

impl Actor for TaskSupervisorActor {
    type Msg = TaskSupervisorMsg;
    type State = TaskSupervisorState;
    type Arguments = (WeakKernel, TaskSupervisorConfig);

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        (kernel, config): Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let span = kernel
            .upgrade()
            .map_or_else(tracing::Span::none, |k| k.span.clone());
        Ok(TaskSupervisorState {
            kernel,
            span,
            intensity: Intensity::new(config.max_restarts, config.max_seconds),
            name: config.name,
            max_children: config.max_children,
            max_restarts: config.max_restarts,
            max_seconds: config.max_seconds,
            next_id: 0,
            running: HashMap::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        TaskSupervisorMsg(op): Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match op {
            Op::Start(req, reply) => {
                // A caller gone already gets no answer: the answer, dropped, stops a linked
                // task (see `Unclaimed`).
                let _ = reply.send(state.start(&myself, req));
            }
            Op::Exited(id, exit) => {
                let _entered = state.span.clone().entered();
                state.on_exit(&myself, id, exit)?
            }
            Op::Terminate(id, reply) => {
                let _ = reply.send(state.running.remove(&id).is_some());
            }
            Op::Count(reply) => {
                let _ = reply.send(state.running.len());
            }
            Op::Children(reply) => {
                let mut ids: Vec<TaskId> = state.running.keys().copied().collect();
                ids.sort_unstable();
                let _ = reply.send(ids);
            }
        }
        Ok(())
    }
}

/// Hands `req` to the supervisor `actor` and waits for it to start the task; `None` if the
/// actor is not running. Every way of starting work ends here. The answer is claimed as soon
/// as it is read: dropping this future before that stops a linked task (see [`Unclaimed`]).
pub(crate) async fn submit(
    actor: &ActorRef<TaskSupervisorMsg>,
    req: StartRequest,
) -> Option<Result<Started, TaskError>> {
    match actor
        .call(|reply| TaskSupervisorMsg(Op::Start(req, reply)), None)
        .await
    {
        Ok(CallResult::Success(r)) => Some(r.map(Unclaimed::claim)),
        _ => None,
    }
}
