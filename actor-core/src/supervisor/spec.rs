//! Child and supervisor specifications.

use std::{fmt, sync::Arc, time::Duration};

use futures::{future::BoxFuture, FutureExt};
use ractor::{Actor, ActorCell};

use super::Supervisor;
use crate::{error::SpawnError, kernel::Kernel, restart::Restart};

/// How a child is stopped, as OTP's `shutdown` child-spec key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shutdown {
    /// Ask it to stop (its `post_stop` runs) and kill it if it has not stopped after this long.
    Timeout(Duration),
    /// Ask it to stop and wait as long as it takes (the default for supervisors).
    Infinity,
    /// Kill it at once; its `post_stop` does not run.
    BrutalKill,
}

impl Default for Shutdown {
    /// 5 s, as OTP's default for workers.
    fn default() -> Self {
        Shutdown::Timeout(Duration::from_secs(5))
    }
}

/// Which children are restarted when one of them stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Strategy {
    /// Only the child that stopped.
    #[default]
    OneForOne,
    /// All children: the others are stopped in reverse start order, then all start in order.
    OneForAll,
    /// The child that stopped and every child started after it.
    RestForOne,
}

/// Starts one instance of a child on the node of the kernel given, linked to the supervisor
/// cell given.
pub(crate) type StartFn = Arc<
    dyn Fn(Kernel, ActorCell) -> BoxFuture<'static, Result<ActorCell, SpawnError>> + Send + Sync,
>;

/// Starts `actor` with `args`, linked to `supervisor`, and adopts it on `kernel`'s node (its
/// pid is known and its exit watched). `what` names it in the error.
pub(crate) async fn spawn_linked<A: Actor>(
    kernel: Kernel,
    actor: A,
    args: A::Arguments,
    supervisor: ActorCell,
    what: String,
) -> Result<ActorCell, SpawnError> {
    let (actor_ref, _) = Actor::spawn_linked(None, actor, args, supervisor)
        .await
        .map_err(|e| SpawnError::StartFailed {
            what,
            reason: e.to_string(),
        })?;
    let cell = actor_ref.get_cell();
    kernel.adopt(&cell);
    Ok(cell)
}

/// How to start, restart and stop one child of a [`Supervisor`].
///
/// ```
/// # use ractor::{Actor, ActorRef, ActorProcessingErr};
/// # #[derive(Clone)] struct Worker;
/// # impl Actor for Worker { type Msg = (); type State = (); type Arguments = ();
/// #   async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> { Ok(()) } }
/// use std::time::Duration;
/// use actor_core::{ChildSpec, Restart, Shutdown};
/// let spec = ChildSpec::new("worker", Worker, ())
///     .name("my.worker")
///     .restart(Restart::Transient)
///     .shutdown(Shutdown::Timeout(Duration::from_secs(1)));
/// assert_eq!(spec.id(), "worker");
/// ```
#[derive(Clone)]
pub struct ChildSpec {
    pub(crate) id: String,
    pub(crate) name: Option<String>,
    pub(crate) restart: Restart,
    pub(crate) shutdown: Shutdown,
    pub(crate) start: StartFn,
}

impl fmt::Debug for ChildSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildSpec")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("restart", &self.restart)
            .field("shutdown", &self.shutdown)
            .finish_non_exhaustive()
    }
}

impl ChildSpec {
    /// A worker: the actor `actor`, started with `args`. Both are cloned for every restart.
    pub fn new<A>(id: impl Into<String>, actor: A, args: A::Arguments) -> Self
    where
        A: Actor + Clone + Sync,
        A::Arguments: Clone + Sync,
    {
        let id = id.into();
        let what = id.clone();
        Self::with_start(id, move |kernel: Kernel, supervisor| {
            let (actor, args, what) = (actor.clone(), args.clone(), what.clone());
            spawn_linked(kernel, actor, args, supervisor, what).boxed()
        })
    }

    /// A child started by `start`, which is given the node's kernel and the supervisor to
    /// link the new actor to, and returns the started actor. The public form, which is
    /// given a `System`, is [`ChildSpec::from_fn`].
    pub(crate) fn with_start<F, Fut>(id: impl Into<String>, start: F) -> Self
    where
        F: Fn(Kernel, ActorCell) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<ActorCell, SpawnError>> + Send + 'static,
    {
        Self {
            id: id.into(),
            name: None,
            restart: Restart::default(),
            shutdown: Shutdown::default(),
            start: Arc::new(move |kernel, sup| start(kernel, sup).boxed()),
        }
    }

    /// A nested supervisor. Its shutdown defaults to [`Shutdown::Infinity`], as in OTP.
    pub fn supervisor(id: impl Into<String>, spec: SupervisorSpec) -> Self {
        let id = id.into();
        let label = id.clone();
        Self::with_start(id, move |kernel: Kernel, parent| {
            let (spec, label) = (spec.clone(), label.clone());
            async move {
                let actor = Supervisor::spawn(&kernel, label, spec, Some(parent)).await?;
                Ok(actor.get_cell())
            }
            .boxed()
        })
        .shutdown(Shutdown::Infinity)
    }

    /// Registers every started instance under `name` on the node (re-registered on restart).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets the restart type (default [`Restart::Permanent`]).
    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }

    /// Sets how the child is stopped (default 5 s, then killed).
    pub fn shutdown(mut self, shutdown: Shutdown) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// The child's id, unique within its supervisor.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// A supervisor's strategy, restart intensity and initial children.
///
/// The default intensity is OTP's: at most 3 restarts in 5 seconds. One more restart within
/// the window makes the supervisor log
/// [`SupervisorError::RestartIntensity`](crate::SupervisorError::RestartIntensity), stop all
/// its children and exit with reason `shutdown`, as OTP's does: its own supervisor restarts
/// it only if it is [`Restart::Permanent`] there.
#[derive(Debug, Clone)]
pub struct SupervisorSpec {
    pub(crate) strategy: Strategy,
    pub(crate) max_restarts: u32,
    pub(crate) max_seconds: Duration,
    pub(crate) children: Vec<ChildSpec>,
}

impl Default for SupervisorSpec {
    fn default() -> Self {
        Self::new(Strategy::OneForOne)
    }
}

impl SupervisorSpec {
    /// A spec with `strategy`, OTP's default intensity and no children.
    pub fn new(strategy: Strategy) -> Self {
        Self {
            strategy,
            max_restarts: 3,
            max_seconds: Duration::from_secs(5),
            children: Vec::new(),
        }
    }

    /// Allows at most `max_restarts` restarts within `max_seconds`.
    pub fn intensity(mut self, max_restarts: u32, max_seconds: Duration) -> Self {
        self.max_restarts = max_restarts;
        self.max_seconds = max_seconds;
        self
    }

    /// Adds a child; children start in the order they are added.
    pub fn child(mut self, child: ChildSpec) -> Self {
        self.children.push(child);
        self
    }
}
