//! The handle of one asynchronous task: await, yield, shutdown.

use std::{fmt, future::IntoFuture, marker::PhantomData, time::Duration};

use futures::future::BoxFuture;
use tokio::{sync::oneshot, task::AbortHandle};

use crate::{
    cancel::Cancel, error::TaskError, function::Value, seam::TaskId, supervisor::Shutdown,
    system::DEFAULT_TIMEOUT,
};

pub(crate) type Outcome = Result<Value, TaskError>;

/// Stops a task: a tokio task on this node, or one on another node through the transport.
pub(crate) enum Canceller {
    Local(AbortHandle),
    Remote(Cancel),
}

impl Canceller {
    fn cancel(&self) {
        match self {
            Canceller::Local(abort) => abort.abort(),
            Canceller::Remote(cancel) => cancel.cancel(),
        }
    }
}

/// How long [`Task::shutdown`] waits for a killed task to report before giving up on it.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// An asynchronous task started by [`TaskSupervisor`](crate::TaskSupervisor), as Elixir's
/// `%Task{}`.
///
/// Await it with `.await` (5 s timeout, as `Task.await/1`) or [`Task::await_timeout`], poll
/// it with [`Task::yield_timeout`], or stop it with [`Task::shutdown`].
///
/// # Linked and unlinked tasks
///
/// The handle stands for the caller. A task from `async` is *linked*: dropping its handle
/// before the result arrives (the caller gave up, timed out, or was itself cancelled) stops
/// the task, as a linked task dies with its caller. A task from `async_nolink` goes on when
/// its handle is dropped; its result is then discarded.
#[must_use = "a linked task is stopped when its handle is dropped"]
pub struct Task<R> {
    pub(crate) id: TaskId,
    pub(crate) supervisor: String,
    pub(crate) rx: Option<oneshot::Receiver<Outcome>>,
    pub(crate) cancel: Option<Canceller>,
    pub(crate) linked: bool,
    pub(crate) convert: fn(Value) -> Result<R, TaskError>,
    pub(crate) _result: PhantomData<fn() -> R>,
}

impl<R> fmt::Debug for Task<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task")
            .field("id", &self.id)
            .field("supervisor", &self.supervisor)
            .field("linked", &self.linked)
            .field("done", &self.rx.is_none())
            .finish()
    }
}

fn taken() -> TaskError {
    TaskError::Exited {
        reason: "the task's result was already taken by an earlier await or yield".into(),
    }
}

fn lost() -> TaskError {
    TaskError::Exited {
        reason: "the task ended without reporting (its supervisor stopped)".into(),
    }
}

impl<R> Task<R> {
    /// The task's number in its supervisor.
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// Whether the task stops when this handle is dropped.
    pub fn is_linked(&self) -> bool {
        self.linked
    }

    fn finish(&mut self, outcome: Outcome) -> Result<R, TaskError> {
        self.rx = None;
        outcome.and_then(self.convert)
    }

    /// Waits up to `timeout` for the result.
    ///
    /// # Errors
    /// [`TaskError::Timeout`] when it does not arrive in time (a linked task is then stopped,
    /// since this consumes the handle; a nolink task goes on), or how the task failed:
    /// [`TaskError::Panicked`], [`TaskError::Exited`], [`TaskError::NoConnection`],
    /// [`TaskError::BadReturn`].
    pub async fn await_timeout(mut self, timeout: Duration) -> Result<R, TaskError> {
        let Some(rx) = self.rx.as_mut() else {
            return Err(taken());
        };
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(outcome)) => self.finish(outcome),
            Ok(Err(_)) => self.finish(Err(lost())),
            Err(_) => Err(TaskError::Timeout { timeout }),
        }
    }

    /// Waits up to `timeout` for the result; `Ok(None)` while the task is still running, so
    /// it can be called again (as `Task.yield/2`).
    ///
    /// # Errors
    /// How the task failed, as [`Task::await_timeout`]; an error also once the result has
    /// been taken.
    pub async fn yield_timeout(&mut self, timeout: Duration) -> Result<Option<R>, TaskError> {
        let Some(rx) = self.rx.as_mut() else {
            return Err(taken());
        };
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(outcome)) => self.finish(outcome).map(Some),
            Ok(Err(_)) => self.finish(Err(lost())).map(Some),
            Err(_) => Ok(None),
        }
    }

    /// Stops the task unless it has finished, as `Task.shutdown/2`: `Ok(Some(r))` if its
    /// result arrived first, `Ok(None)` if it was stopped.
    ///
    /// Tasks are futures: stopping one cancels it at its next `.await`. With
    /// [`Shutdown::Timeout`] this waits that long for the cancellation to land (a task busy
    /// without awaiting cannot be cancelled sooner); [`Shutdown::BrutalKill`] waits a bounded
    /// moment only to pick up a result that raced the kill.
    ///
    /// # Errors
    /// How the task failed, if it failed before it could be stopped.
    pub async fn shutdown(mut self, how: Shutdown) -> Result<Option<R>, TaskError> {
        let Some(mut rx) = self.rx.take() else {
            return Err(taken());
        };
        if let Ok(outcome) = rx.try_recv() {
            return self.finish(outcome).map(Some);
        }
        if let Some(cancel) = &self.cancel {
            cancel.cancel();
        }
        let wait = match how {
            Shutdown::Timeout(d) => d,
            Shutdown::Infinity | Shutdown::BrutalKill => KILL_WAIT,
        };
        match tokio::time::timeout(wait, rx).await {
            Ok(Ok(Ok(value))) => (self.convert)(value).map(Some),
            Ok(Ok(Err(TaskError::Exited { .. }))) | Ok(Err(_)) | Err(_) => Ok(None),
            Ok(Ok(Err(e))) => Err(e),
        }
    }
}

impl<R: Send + 'static> IntoFuture for Task<R> {
    type Output = Result<R, TaskError>;
    type IntoFuture = BoxFuture<'static, Result<R, TaskError>>;

    /// Awaits the task with the default 5 s timeout, as `Task.await/1`.
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.await_timeout(DEFAULT_TIMEOUT))
    }
}

impl<R> Drop for Task<R> {
    fn drop(&mut self) {
        if self.linked && self.rx.is_some() {
            if let Some(cancel) = &self.cancel {
                cancel.cancel();
            }
        }
    }
}
