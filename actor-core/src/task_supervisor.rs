//! `TaskSupervisor`: Elixir's `Task.Supervisor`, addressable by name on any node.
//!
//! A task supervisor is a named, supervised actor that runs tasks: futures on this node, or
//! functions called by `module`/`function` name from the node's
//! [`FunctionRegistry`](crate::FunctionRegistry). Start one under the node's root supervisor
//! with [`TaskSupervisor::start`] (or put [`TaskSupervisor::child_spec`] in your own tree),
//! then:
//!
//! - [`TaskSupervisor::async_on`]: run a function by name and get a linked [`Task`] to
//!   await;
//! - [`TaskSupervisor::async_nolink_on`]: the same, but the task outlives its caller;
//! - [`TaskSupervisor::start_child_on`]: fire and forget, with a [`Restart`] type.
//!
//! The destination is a supervisor name, a `(name, node)` pair or a pid: the same call runs
//! the function here or, through `actor-remote`, on another node. Errors follow Elixir's
//! outcomes (reference/beam.md §3): an unknown node is [`TaskError::NoConnection`] at once
//! and no task is made; no supervisor of that name is [`TaskError::NoProc`]; an unknown
//! function is [`TaskError::Undefined`]; undecodable arguments are [`TaskError::BadArgs`];
//! a panic reaches the caller as [`TaskError::Panicked`] and is logged by the supervisor's
//! node; an await past its timeout is [`TaskError::Timeout`].
//!
//! Every task runs with its supervisor's node output as its group leader: what it prints
//! with [`puts!`](crate::puts) appears on the supervisor's node, wherever the caller is
//! (see [`io`](crate::io)).
//!
//! Past `max_children` running tasks, starting another is [`TaskError::MaxChildren`].
//! Restarted children (`start_child` with a [`Restart`] other than `Temporary`) count
//! against the supervisor's restart intensity (default 3 in 5 s); past it the supervisor
//! stops its tasks and fails, and its own supervisor sees that.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use actor_core::{System, SystemConfig, TaskError, TaskSupervisor, TaskSupervisorConfig};
//! let system = System::start(SystemConfig::default()).await?;
//! let tasks = TaskSupervisor::start(&system, TaskSupervisorConfig::new("Tasks")).await?;
//!
//! // A future on this node:
//! let task = tasks.async_fn(|| async { 6 * 7 }).await?;
//! assert_eq!(task.await?, 42);
//!
//! // A panic is carried to the caller:
//! let task = tasks.async_nolink_fn(|| async { if true { panic!("boom") }; 0 }).await?;
//! assert!(matches!(task.await, Err(TaskError::Panicked { message }) if message == "boom"));
//!
//! // A supervisor that does not exist:
//! let err = TaskSupervisor::async_on::<_, ()>(&system, "Nope", "M", "f", ()).await.unwrap_err();
//! assert!(matches!(err, TaskError::NoProc { .. }));
//! # system.shutdown().await; Ok(()) }
//! ```

mod task;
#[cfg(test)]
mod tests;

use std::{collections::HashMap, fmt, future::Future, marker::PhantomData, time::Duration};

use futures::{future::BoxFuture, FutureExt};
use ractor::{rpc::CallResult, Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::{de::DeserializeOwned, Serialize};
use tokio::{sync::oneshot, task::AbortHandle, time::Instant};
use tracing::Instrument;

use task::Canceller;
pub use task::{Task, TaskId};

use crate::{
    codec,
    function::{Args, Value},
    supervisor::{success, Intensity},
    system::WeakSystem,
    transport::{RemoteTask, RemoteTaskRequest, TaskKind},
    ChildSpec, Destination, NodeName, Restart, SendErrorKind, SpawnError, SupervisorError, System,
    TaskError,
};
use task::Outcome;

/// How to start a [`TaskSupervisor`].
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

/// A message for the task supervisor actor. Opaque: use the functions of [`TaskSupervisor`].
pub struct TaskSupervisorMsg(Op);

impl fmt::Debug for TaskSupervisorMsg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TaskSupervisorMsg")
    }
}

type Factory = Box<dyn FnMut() -> BoxFuture<'static, Value> + Send>;

enum Job {
    /// A function by name. Restartable jobs keep their arguments encoded.
    Call {
        module: String,
        function: String,
        args: Option<Args>,
        encoded: Option<Vec<u8>>,
    },
    Future(Factory),
}

enum Kind {
    Async(oneshot::Sender<Outcome>),
    Child(Restart),
}

struct StartRequest {
    job: Job,
    kind: Kind,
}

struct Started {
    id: TaskId,
    abort: AbortHandle,
}

enum Exit {
    Normal,
    Panicked(String),
    Stopped,
}

enum Op {
    Start(StartRequest, RpcReplyPort<Result<Started, TaskError>>),
    Exited(TaskId, Exit),
    Terminate(TaskId, RpcReplyPort<bool>),
    Count(RpcReplyPort<usize>),
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

pub(crate) fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(s) => *s,
        Err(payload) => match payload.downcast::<&'static str>() {
            Ok(s) => (*s).to_string(),
            Err(_) => "a panic with a non-string payload".to_string(),
        },
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

struct TaskSupervisorActor;

#[doc(hidden)]
pub struct TaskSupervisorState {
    system: WeakSystem,
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
                let system = self.system.upgrade().ok_or_else(|| TaskError::Exited {
                    reason: "the node has shut down".into(),
                })?;
                system
                    .functions()
                    .prepare(self.system.clone(), module, function, args)
            }
        }
    }

    fn spawn(
        &mut self,
        myself: &ActorRef<TaskSupervisorMsg>,
        future: BoxFuture<'static, Value>,
        reply: Option<oneshot::Sender<Outcome>>,
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
        // The group leader of every task is its supervisor's node output (reference/beam.md §2).
        let leader = self
            .system
            .upgrade()
            .map_or_else(crate::io::Output::stdout, |system| system.output());
        let future = crate::io::with_group_leader(leader, future);
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

    fn start(
        &mut self,
        myself: &ActorRef<TaskSupervisorMsg>,
        req: StartRequest,
    ) -> Result<Started, TaskError> {
        if let Some(max) = self.max_children {
            if self.running.len() >= max {
                return Err(TaskError::MaxChildren {
                    name: self.name.clone(),
                    max,
                });
            }
        }
        let StartRequest { mut job, kind } = req;
        let future = self.make_future(&mut job)?;
        let (reply, restart) = match kind {
            Kind::Async(reply) => (Some(reply), Restart::Temporary),
            Kind::Child(restart) => (None, restart),
        };
        let (id, abort) = self.spawn(myself, future, reply);
        let job = (restart != Restart::Temporary).then_some(job);
        self.running.insert(
            id,
            Running {
                abort: abort.clone(),
                restart,
                job,
            },
        );
        Ok(Started { id, abort })
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
            tracing::warn!(supervisor = %self.name, "{err}");
            self.running.clear();
            return Err(Box::new(err));
        }
        match self.make_future(&mut job) {
            Ok(future) => {
                let (new_id, abort) = self.spawn(myself, future, None);
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
    type Arguments = (WeakSystem, TaskSupervisorConfig);

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        (system, config): Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let span = system
            .upgrade()
            .map_or_else(tracing::Span::none, |s| s.span().clone());
        Ok(TaskSupervisorState {
            system,
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
        }
        Ok(())
    }
}

/// A handle to a running task supervisor on this node.
#[derive(Clone)]
pub struct TaskSupervisor {
    system: System,
    actor: ActorRef<TaskSupervisorMsg>,
    name: String,
}

impl fmt::Debug for TaskSupervisor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskSupervisor")
            .field("name", &self.name)
            .field("node", self.system.node())
            .finish()
    }
}

fn task_error(kind: SendErrorKind, dest: &Destination, system: &System) -> TaskError {
    match kind {
        SendErrorKind::NoConnection { node } => TaskError::NoConnection { node },
        _ => TaskError::NoProc {
            name: dest.name().map_or_else(|| dest.to_string(), str::to_string),
            node: dest
                .node()
                .cloned()
                .unwrap_or_else(|| system.node().clone()),
        },
    }
}

async fn request(
    system: &System,
    dest: Destination,
    job: Job,
    kind: Kind,
) -> Result<Started, TaskError> {
    let actor = system
        .lookup::<TaskSupervisorMsg>(&dest)
        .map_err(|kind| task_error(kind, &dest, system))?;
    start_on(&actor, StartRequest { job, kind })
        .await
        .ok_or_else(|| {
            task_error(
                SendErrorKind::NoProc {
                    dest: dest.clone(),
                    node: system.node().clone(),
                },
                &dest,
                system,
            )
        })?
}

async fn start_on(
    actor: &ActorRef<TaskSupervisorMsg>,
    req: StartRequest,
) -> Option<Result<Started, TaskError>> {
    match actor
        .call(|reply| TaskSupervisorMsg(Op::Start(req, reply)), None)
        .await
    {
        Ok(CallResult::Success(r)) => Some(r),
        _ => None,
    }
}

fn typed<R: DeserializeOwned + 'static>(value: Value) -> Result<R, TaskError> {
    value.into_typed::<R>().map_err(|e| TaskError::BadReturn {
        reason: e.to_string(),
    })
}

fn exact<R: 'static>(value: Value) -> Result<R, TaskError> {
    value.downcast::<R>().map_err(|_| TaskError::BadReturn {
        reason: format!(
            "internal: the task did not return a {}",
            std::any::type_name::<R>()
        ),
    })
}

fn call_job<A: Serialize + Send + 'static>(
    module: &str,
    function: &str,
    args: A,
    restartable: bool,
) -> Result<Job, TaskError> {
    let (args, encoded) = if restartable {
        let bytes = codec::encode(&args).map_err(|e| TaskError::BadArgs {
            reason: e.to_string(),
        })?;
        (None, Some(bytes))
    } else {
        (Some(Args::value(args)), None)
    };
    Ok(Job::Call {
        module: module.to_string(),
        function: function.to_string(),
        args,
        encoded,
    })
}

fn encode_args<A: Serialize>(args: &A) -> Result<Vec<u8>, TaskError> {
    codec::encode(args).map_err(|e| TaskError::BadArgs {
        reason: e.to_string(),
    })
}

async fn start_remote(
    system: &System,
    node: NodeName,
    supervisor: Destination,
    module: &str,
    function: &str,
    args: Vec<u8>,
    kind: TaskKind,
) -> Result<RemoteTask, TaskError> {
    let transport = system
        .transport()
        .ok_or_else(|| TaskError::NoConnection { node: node.clone() })?;
    let request = RemoteTaskRequest {
        supervisor,
        module: module.to_string(),
        function: function.to_string(),
        args,
        kind,
    };
    transport.start_task(node, request).await
}

/// What [`TaskSupervisor::async_stream_on`] does when a task runs past its timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnTimeout {
    /// Yield [`TaskError::Timeout`] and end the stream (Elixir's `:exit`); the other tasks
    /// in flight are stopped.
    #[default]
    Exit,
    /// Stop that task, yield [`TaskError::Timeout`] for it, and go on (`:kill_task`).
    KillTask,
}

/// Options of [`TaskSupervisor::async_stream_on`], with Elixir's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamOptions {
    /// Tasks in flight at once (default: this machine's parallelism, as
    /// `System.schedulers_online()`).
    pub max_concurrency: usize,
    /// Results in input order (default) or as they finish.
    pub ordered: bool,
    /// Each task's timeout (default 5 s).
    pub timeout: Duration,
    /// What a timeout does (default [`OnTimeout::Exit`]).
    pub on_timeout: OnTimeout,
}

impl Default for StreamOptions {
    fn default() -> Self {
        Self {
            max_concurrency: std::thread::available_parallelism().map_or(1, usize::from),
            ordered: true,
            timeout: crate::DEFAULT_TIMEOUT,
            on_timeout: OnTimeout::Exit,
        }
    }
}

/// A task started for a peer by [`TaskSupervisor::start_for_peer`].
#[derive(Debug)]
pub struct PeerTask {
    /// Its number in the supervisor.
    pub id: TaskId,
    /// Its result, for [`TaskKind::Async`].
    pub result: Option<oneshot::Receiver<Result<Value, TaskError>>>,
    /// Stops it.
    pub abort: AbortHandle,
}

impl TaskSupervisor {
    /// Starts a task supervisor under the node's root supervisor, registered as
    /// `config.name`.
    ///
    /// # Errors
    /// [`SupervisorError`] if the name is taken or the root supervisor is not running.
    pub async fn start(
        system: &System,
        config: TaskSupervisorConfig,
    ) -> Result<TaskSupervisor, SupervisorError> {
        let name = config.name.clone();
        let cell = system.start_child(Self::child_spec(config)).await?;
        Ok(TaskSupervisor {
            system: system.clone(),
            actor: cell.into(),
            name,
        })
    }

    /// A child spec (id and registered name `config.name`, permanent) to put a task
    /// supervisor in your own supervision tree.
    pub fn child_spec(config: TaskSupervisorConfig) -> ChildSpec {
        let name = config.name.clone();
        ChildSpec::from_fn(name.clone(), move |system: System, parent: ActorCell| {
            let config = config.clone();
            async move {
                let what = config.name.clone();
                let (actor, _) = Actor::spawn_linked(
                    None,
                    TaskSupervisorActor,
                    (system.downgrade(), config),
                    parent,
                )
                .await
                .map_err(|e| SpawnError::StartFailed {
                    what,
                    reason: e.to_string(),
                })?;
                system.registry().add_pid(actor.get_cell());
                Ok(actor.get_cell())
            }
        })
        .name(name)
    }

    /// The handle of the task supervisor registered as `name` on `system`'s node.
    pub fn whereis(system: &System, name: &str) -> Option<TaskSupervisor> {
        let actor = system.whereis::<TaskSupervisorMsg>(name)?;
        Some(TaskSupervisor {
            system: system.clone(),
            actor,
            name: name.to_string(),
        })
    }

    /// The name it is registered under.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The supervisor actor.
    pub fn actor(&self) -> &ActorRef<TaskSupervisorMsg> {
        &self.actor
    }

    async fn start_local(&self, job: Job, kind: Kind) -> Result<Started, TaskError> {
        start_on(&self.actor, StartRequest { job, kind })
            .await
            .ok_or_else(|| TaskError::NoProc {
                name: self.name.clone(),
                node: self.system.node().clone(),
            })?
    }

    async fn async_local<F, Fut, R>(&self, f: F, linked: bool) -> Result<Task<R>, TaskError>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: Send + 'static,
    {
        let mut f = Some(f);
        let factory: Factory = Box::new(move || match f.take() {
            Some(f) => f().map(Value::local).boxed(),
            None => futures::future::pending().boxed(),
        });
        let (tx, rx) = oneshot::channel();
        let started = self
            .start_local(Job::Future(factory), Kind::Async(tx))
            .await?;
        Ok(Task {
            id: started.id,
            supervisor: self.name.clone(),
            rx: Some(rx),
            cancel: Some(Canceller::Local(started.abort)),
            linked,
            convert: exact::<R>,
            _result: PhantomData,
        })
    }

    /// Runs the future `f` makes as a task linked to the returned handle, as
    /// `Task.Supervisor.async(sup, fun)`.
    ///
    /// # Errors
    /// [`TaskError::MaxChildren`], or [`TaskError::NoProc`] if the supervisor has stopped.
    pub async fn async_fn<F, Fut, R>(&self, f: F) -> Result<Task<R>, TaskError>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: Send + 'static,
    {
        self.async_local(f, true).await
    }

    /// As [`TaskSupervisor::async_fn`], but the task goes on if the handle is dropped.
    ///
    /// # Errors
    /// As [`TaskSupervisor::async_fn`].
    pub async fn async_nolink_fn<F, Fut, R>(&self, f: F) -> Result<Task<R>, TaskError>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: Send + 'static,
    {
        self.async_local(f, false).await
    }

    /// Starts a fire-and-forget task from the futures `f` makes, restarted as `restart`
    /// says (`f` is called again for each restart).
    ///
    /// # Errors
    /// As [`TaskSupervisor::async_fn`].
    pub async fn start_child_fn<F, Fut>(
        &self,
        mut f: F,
        restart: Restart,
    ) -> Result<TaskId, TaskError>
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let factory: Factory = Box::new(move || f().map(Value::local).boxed());
        Ok(self
            .start_local(Job::Future(factory), Kind::Child(restart))
            .await?
            .id)
    }

    /// Runs `module.function(item)` for every item of `inputs` under the task supervisor
    /// `dest` (here or on another node), at most `options.max_concurrency` at a time, as
    /// `Task.Supervisor.async_stream/6`. The stream yields each task's result, in input order
    /// unless `options.ordered` is false.
    ///
    /// The tasks are linked to the stream: dropping it stops those in flight. A task that
    /// fails yields its error and the stream goes on; one past `options.timeout` yields
    /// [`TaskError::Timeout`] and then ends the stream, or only stops that task with
    /// [`OnTimeout::KillTask`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use futures::StreamExt;
    /// use actor_core::{StreamOptions, System, SystemConfig, TaskSupervisor, TaskSupervisorConfig};
    /// let system = System::start(SystemConfig::default()).await?;
    /// system.functions().register("String", "upcase", |s: String| async move { s.to_uppercase() });
    /// TaskSupervisor::start(&system, TaskSupervisorConfig::new("Sup")).await?;
    /// let results: Vec<_> = TaskSupervisor::async_stream_on::<_, String, _>(
    ///     &system, "Sup", "String", "upcase", ["a", "b"], StreamOptions::default(),
    /// )
    /// .collect()
    /// .await;
    /// assert_eq!(results, [Ok("A".to_string()), Ok("B".to_string())]);
    /// # system.shutdown().await; Ok(()) }
    /// ```
    pub fn async_stream_on<A, R, I>(
        system: &System,
        dest: impl Into<Destination>,
        module: &str,
        function: &str,
        inputs: I,
        options: StreamOptions,
    ) -> futures::stream::BoxStream<'static, Result<R, TaskError>>
    where
        A: Serialize + Send + 'static,
        R: DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'static,
    {
        use futures::StreamExt;
        let (system, dest) = (system.clone(), dest.into());
        let (module, function) = (module.to_string(), function.to_string());
        let timeout = options.timeout;
        let tasks = futures::stream::iter(inputs).map(move |args| {
            let (system, dest, module, function) = (
                system.clone(),
                dest.clone(),
                module.clone(),
                function.clone(),
            );
            async move {
                let task =
                    Self::async_call::<A, R>(&system, dest, &module, &function, args, true).await?;
                task.await_timeout(timeout).await
            }
        });
        let max = options.max_concurrency.max(1);
        let results = if options.ordered {
            tasks.buffered(max).boxed()
        } else {
            tasks.buffer_unordered(max).boxed()
        };
        match options.on_timeout {
            OnTimeout::KillTask => results,
            OnTimeout::Exit => {
                let mut ended = false;
                results
                    .take_while(move |r| {
                        let go = !ended;
                        ended |= matches!(r, Err(TaskError::Timeout { .. }));
                        futures::future::ready(go)
                    })
                    .boxed()
            }
        }
    }

    /// For transports: runs `module.function(args)` (encoded arguments from a peer) under
    /// the local task supervisor `dest`, as the serving half of
    /// [`TaskSupervisor::async_on`] and [`TaskSupervisor::start_child_on`].
    ///
    /// A linked task's link is the transport's to keep: it aborts the task (with
    /// [`PeerTask::abort`]) when the caller's handle is dropped or the caller's node goes down.
    ///
    /// # Errors
    /// `NoProc` (no such supervisor here, or a stale pid), `Undefined`, `BadArgs`,
    /// `MaxChildren`.
    pub async fn start_for_peer(
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
        let (kind, result) = match kind {
            TaskKind::Async { .. } => {
                let (tx, rx) = oneshot::channel();
                (Kind::Async(tx), Some(rx))
            }
            TaskKind::Child(restart) => (Kind::Child(restart), None),
        };
        let started = request(system, dest.clone(), job, kind).await?;
        Ok(PeerTask {
            id: started.id,
            result,
            abort: started.abort,
        })
    }

    /// How many tasks are running.
    ///
    /// # Errors
    /// [`TaskError::NoProc`] if the supervisor has stopped.
    pub async fn count_children(&self) -> Result<usize, TaskError> {
        self.actor
            .call(|reply| TaskSupervisorMsg(Op::Count(reply)), None)
            .await
            .ok()
            .and_then(success)
            .ok_or_else(|| TaskError::NoProc {
                name: self.name.clone(),
                node: self.system.node().clone(),
            })
    }

    /// Stops task `id` (it is not restarted); returns whether it was running.
    pub async fn terminate_child(&self, id: TaskId) -> bool {
        self.actor
            .call(|reply| TaskSupervisorMsg(Op::Terminate(id, reply)), None)
            .await
            .ok()
            .and_then(success)
            .unwrap_or(false)
    }

    async fn async_call<A, R>(
        system: &System,
        dest: Destination,
        module: &str,
        function: &str,
        args: A,
        linked: bool,
    ) -> Result<Task<R>, TaskError>
    where
        A: Serialize + Send + 'static,
        R: DeserializeOwned + Send + 'static,
    {
        let supervisor = dest.name().unwrap_or_default().to_string();
        if let Some(node) = system.remote_node(&dest) {
            let kind = TaskKind::Async { linked };
            let remote = start_remote(
                system,
                node,
                dest,
                module,
                function,
                encode_args(&args)?,
                kind,
            )
            .await?;
            return Ok(Task {
                id: remote.id,
                supervisor,
                rx: remote.result,
                cancel: Some(Canceller::Remote(remote.cancel)),
                linked,
                convert: typed::<R>,
                _result: PhantomData,
            });
        }
        let job = call_job(module, function, args, false)?;
        let (tx, rx) = oneshot::channel();
        let started = request(system, dest, job, Kind::Async(tx)).await?;
        Ok(Task {
            id: started.id,
            supervisor,
            rx: Some(rx),
            cancel: Some(Canceller::Local(started.abort)),
            linked,
            convert: typed::<R>,
            _result: PhantomData,
        })
    }

    /// Runs `module.function(args)` under the task supervisor `dest` and returns a task
    /// linked to the handle, as `Task.Supervisor.async(dest, module, function, args)`.
    ///
    /// `dest` is a supervisor name on this node, a `(name, node)` pair or a pid. `args` is
    /// one value (a tuple for several); the result is decoded as `R` when awaited.
    ///
    /// # Errors
    /// Before any task exists: [`TaskError::NoConnection`] (another node that cannot be
    /// reached), [`TaskError::NoProc`], [`TaskError::Undefined`], [`TaskError::BadArgs`],
    /// [`TaskError::MaxChildren`].
    pub async fn async_on<A, R>(
        system: &System,
        dest: impl Into<Destination>,
        module: &str,
        function: &str,
        args: A,
    ) -> Result<Task<R>, TaskError>
    where
        A: Serialize + Send + 'static,
        R: DeserializeOwned + Send + 'static,
    {
        Self::async_call(system, dest.into(), module, function, args, true).await
    }

    /// As [`TaskSupervisor::async_on`], but the task goes on if the handle is dropped.
    ///
    /// # Errors
    /// As [`TaskSupervisor::async_on`].
    pub async fn async_nolink_on<A, R>(
        system: &System,
        dest: impl Into<Destination>,
        module: &str,
        function: &str,
        args: A,
    ) -> Result<Task<R>, TaskError>
    where
        A: Serialize + Send + 'static,
        R: DeserializeOwned + Send + 'static,
    {
        Self::async_call(system, dest.into(), module, function, args, false).await
    }

    /// Starts `module.function(args)` as a fire-and-forget child of the task supervisor
    /// `dest`, restarted as `restart` says (with the same arguments).
    ///
    /// # Errors
    /// As [`TaskSupervisor::async_on`].
    pub async fn start_child_on<A>(
        system: &System,
        dest: impl Into<Destination>,
        module: &str,
        function: &str,
        args: A,
        restart: Restart,
    ) -> Result<TaskId, TaskError>
    where
        A: Serialize + Send + 'static,
    {
        let dest = dest.into();
        if let Some(node) = system.remote_node(&dest) {
            let kind = TaskKind::Child(restart);
            return Ok(start_remote(
                system,
                node,
                dest,
                module,
                function,
                encode_args(&args)?,
                kind,
            )
            .await?
            .id);
        }
        let job = call_job(module, function, args, restart != Restart::Temporary)?;
        Ok(request(system, dest, job, Kind::Child(restart)).await?.id)
    }
}
