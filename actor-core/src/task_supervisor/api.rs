//! [`TaskSupervisor`]: the public API (Elixir's `Task.Supervisor` functions). Every function
//! here turns into one [`StartRequest`] for the supervisor actor, or, for a supervisor on
//! another node, one request to the node's transport.

use std::{fmt, future::Future, marker::PhantomData, time::Duration};

use futures::FutureExt;
use ractor::{Actor, ActorCell, ActorRef};
use serde::{de::DeserializeOwned, Serialize};
use tokio::sync::oneshot;

use super::{
    actor::{
        submit, Factory, Job, Kind, Op, StartRequest, Started, TaskSupervisorActor,
        TaskSupervisorConfig, TaskSupervisorMsg,
    },
    task::{Canceller, Outcome, Task},
};
use crate::{
    codec,
    destination::Destination,
    error::{SendErrorKind, SpawnError, SupervisorError, TaskError},
    function::{Args, Value},
    kernel::Kernel,
    node_name::NodeName,
    restart::Restart,
    seam::{RemoteTaskRequest, TaskId, TaskKind},
    supervisor::{success, ChildSpec},
    system::{System, DEFAULT_TIMEOUT},
};

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

/// Where a start goes: the supervisor behind a handle, or one a destination names.
pub(crate) enum To<'a> {
    /// The supervisor actor behind a handle (on this node).
    Handle(&'a TaskSupervisor),
    /// A supervisor by name, `(name, node)` or pid: here, or on a peer through the transport.
    Dest(&'a Destination),
}

/// A task just started, here or on a peer.
pub(crate) struct Launched {
    pub(crate) id: TaskId,
    /// Its outcome, for [`TaskKind::Async`].
    pub(crate) result: Option<oneshot::Receiver<Outcome>>,
    pub(crate) cancel: Canceller,
}

/// The funnel: every way of starting work under a task supervisor ends here (the handle's
/// `async_fn`/`async_nolink_fn`/`start_child_fn`, the by-name `async_on`/`async_nolink_on`/
/// `start_child_on`, and `async_stream_on`). A supervisor on another node gets the job
/// through the node's transport; one here gets it as a [`StartRequest`] from [`launch_here`].
pub(crate) async fn launch(
    system: &System,
    to: To<'_>,
    job: Job,
    kind: TaskKind,
    timeout: Duration,
) -> Result<Launched, TaskError> {
    let resolved;
    let to = match to {
        To::Dest(dest) => {
            resolved = system.resolve_global(dest.clone());
            if let Some(node) = system.remote_node(&resolved) {
                return launch_remote(system, node, resolved, job, kind, timeout).await;
            }
            To::Dest(&resolved)
        }
        other => other,
    };
    let (started, result) = launch_here(system, to, job, kind).await?;
    Ok(Launched {
        id: started.id,
        result,
        cancel: Canceller::Local(started.abort),
    })
}

/// The local half of [`launch`], also the serving half's way in: one [`StartRequest`] to a
/// supervisor on this node (a destination on another node is `NoConnection` here).
pub(crate) async fn launch_here(
    system: &System,
    to: To<'_>,
    job: Job,
    kind: TaskKind,
) -> Result<(Started, Option<oneshot::Receiver<Outcome>>), TaskError> {
    let looked_up;
    let actor = match to {
        To::Handle(handle) => &handle.actor,
        To::Dest(dest) => {
            looked_up = system
                .lookup::<TaskSupervisorMsg>(dest)
                .map_err(|kind| task_error(kind, dest, system))?;
            &looked_up
        }
    };
    let (kind, result) = match kind {
        TaskKind::Async { linked } => {
            let (reply, rx) = oneshot::channel();
            (Kind::Async { reply, linked }, Some(rx))
        }
        TaskKind::Child(restart) => (Kind::Child(restart), None),
    };
    // The task runs in a child of the starter's trace (a peer's, when serving one).
    let trace = crate::trace::TraceContext::current().map(|t| t.child());
    let started = submit(actor, StartRequest { job, kind, trace })
        .await
        .ok_or_else(|| match to {
            To::Handle(handle) => TaskError::NoProc {
                name: handle.name.clone(),
                node: system.node().clone(),
            },
            To::Dest(dest) => task_error(
                SendErrorKind::NoProc {
                    dest: dest.clone(),
                    node: system.node().clone(),
                },
                dest,
                system,
            ),
        })??;
    Ok((started, result))
}

/// The remote half of [`launch`]: a function by name, its arguments encoded, handed to the
/// node's transport.
async fn launch_remote(
    system: &System,
    node: NodeName,
    supervisor: Destination,
    job: Job,
    kind: TaskKind,
    timeout: Duration,
) -> Result<Launched, TaskError> {
    let bad_args = |reason: String| TaskError::BadArgs { reason };
    let Job::Call {
        module,
        function,
        args,
        encoded,
    } = job
    else {
        return Err(bad_args(
            "internal: only a function by name runs on another node".into(),
        ));
    };
    #[cfg(feature = "json")]
    let json_args = match &args {
        Some(Args::Value(value)) => value.to_json().and_then(Result::ok),
        _ => None,
    };
    let args = match (encoded, args) {
        (Some(bytes), _) | (None, Some(Args::Bytes(bytes))) => bytes,
        (None, Some(Args::Value(value))) => value.encode().map_err(|e| bad_args(e.to_string()))?,
        (None, None) => return Err(bad_args("internal: no arguments".into())),
    };
    let transport = system
        .transport()
        .ok_or_else(|| TaskError::NoConnection { node: node.clone() })?;
    let request = RemoteTaskRequest {
        supervisor,
        module,
        function,
        args,
        kind,
        timeout,
        #[cfg(feature = "json")]
        json_args,
    };
    let remote = transport.start_task(node, request).await?;
    Ok(Launched {
        id: remote.id,
        result: remote.result,
        cancel: Canceller::Remote(remote.cancel),
    })
}

/// The [`Task`] handle of a task just started.
fn task<R>(
    launched: Launched,
    supervisor: String,
    linked: bool,
    convert: fn(Value) -> Result<R, TaskError>,
) -> Task<R> {
    Task {
        id: launched.id,
        supervisor,
        rx: launched.result,
        cancel: Some(launched.cancel),
        linked,
        convert,
        _result: PhantomData,
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
        ChildSpec::with_start(name.clone(), move |kernel: Kernel, parent: ActorCell| {
            let config = config.clone();
            async move {
                let what = config.name.clone();
                let (actor, _) = Actor::spawn_linked(
                    None,
                    TaskSupervisorActor,
                    (kernel.downgrade(), config),
                    parent,
                )
                .await
                .map_err(|e| SpawnError::StartFailed {
                    what,
                    reason: e.to_string(),
                })?;
                kernel.adopt(&actor.get_cell());
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
        let job = Job::Future(factory);
        let kind = TaskKind::Async { linked };
        let launched = launch(&self.system, To::Handle(self), job, kind, DEFAULT_TIMEOUT).await?;
        Ok(task(launched, self.name.clone(), linked, exact::<R>))
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
        let job = Job::Future(factory);
        let kind = TaskKind::Child(restart);
        Ok(
            launch(&self.system, To::Handle(self), job, kind, DEFAULT_TIMEOUT)
                .await?
                .id,
        )
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

    /// The ids of the running tasks, in start order, as `Task.Supervisor.children/1`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use actor_core::{Restart, System, SystemConfig, TaskSupervisor, TaskSupervisorConfig};
    /// let system = System::start(SystemConfig::default()).await?;
    /// let sup = TaskSupervisor::start(&system, TaskSupervisorConfig::new("Tasks")).await?;
    /// let id = sup.start_child_fn(|| std::future::pending(), Restart::Temporary).await?;
    /// assert_eq!(sup.children().await?, [id]);
    /// sup.terminate_child(id).await;
    /// assert!(sup.children().await?.is_empty());
    /// # system.shutdown().await; Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`TaskError::NoProc`] if the supervisor has stopped.
    pub async fn children(&self) -> Result<Vec<TaskId>, TaskError> {
        self.actor
            .call(|reply| TaskSupervisorMsg(Op::Children(reply)), None)
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

    pub(crate) async fn async_call<A, R>(
        system: &System,
        dest: Destination,
        module: &str,
        function: &str,
        args: A,
        linked: bool,
        timeout: Duration,
    ) -> Result<Task<R>, TaskError>
    where
        A: Serialize + Send + 'static,
        R: DeserializeOwned + Send + 'static,
    {
        let supervisor = dest.name().unwrap_or_default().to_string();
        let job = call_job(module, function, args, false)?;
        let kind = TaskKind::Async { linked };
        let launched = launch(system, To::Dest(&dest), job, kind, timeout).await?;
        Ok(task(launched, supervisor, linked, typed::<R>))
    }

    /// Runs `module.function(args)` under the task supervisor `dest` and returns a task
    /// linked to the handle, as `Task.Supervisor.async(dest, module, function, args)`.
    ///
    /// `dest` is a supervisor name on this node, a `(name, node)` pair or a pid. A supervisor
    /// on another node is reached through the node's distribution (`actor-remote`'s `Node`);
    /// a bare [`System`] answers [`TaskError::NoConnection`] for it. `args` is one value (a
    /// tuple for several); the result is decoded as `R` when awaited.
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
        Self::async_call(
            system,
            dest.into(),
            module,
            function,
            args,
            true,
            DEFAULT_TIMEOUT,
        )
        .await
    }

    /// As [`TaskSupervisor::async_on`], waiting up to `timeout` (instead of 5 s) for a
    /// supervisor on another node to answer that the task started. Past it the call fails
    /// with [`TaskError::Unconfirmed`]: the request was sent and the task may be running
    /// there (a linked one is told to stop). `#[nodus::remote_module]` stubs use it with
    /// their `with_timeout`.
    ///
    /// # Errors
    /// As [`TaskSupervisor::async_on`], and [`TaskError::Unconfirmed`].
    pub async fn async_on_timeout<A, R>(
        system: &System,
        dest: impl Into<Destination>,
        module: &str,
        function: &str,
        args: A,
        timeout: Duration,
    ) -> Result<Task<R>, TaskError>
    where
        A: Serialize + Send + 'static,
        R: DeserializeOwned + Send + 'static,
    {
        Self::async_call(system, dest.into(), module, function, args, true, timeout).await
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
        Self::async_call(
            system,
            dest.into(),
            module,
            function,
            args,
            false,
            DEFAULT_TIMEOUT,
        )
        .await
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
        // A remote job travels encoded anyway; a local one keeps its arguments encoded only
        // if it may be restarted.
        let encode = restart != Restart::Temporary || system.remote_node(&dest).is_some();
        let job = call_job(module, function, args, encode)?;
        let kind = TaskKind::Child(restart);
        Ok(launch(system, To::Dest(&dest), job, kind, DEFAULT_TIMEOUT)
            .await?
            .id)
    }
}
