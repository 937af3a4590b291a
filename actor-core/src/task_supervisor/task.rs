//! The handle of one asynchronous task: await, yield, shutdown.

use std::{fmt, future::IntoFuture, marker::PhantomData, time::Duration};

use futures::future::BoxFuture;
use tokio::{sync::oneshot, task::AbortHandle, time::Instant};

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

/// The exit reason of a task that was told to stop and did (OTP's `shutdown`).
const SHUTDOWN: &str = "shutdown";

/// The exit reason of a task killed after its shutdown timeout (OTP's `killed`).
const KILLED: &str = "killed";

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
/// the task, as a linked task dies with its caller. So does a caller that goes away while
/// the start itself is under way (its `async` future dropped by a timeout, a `select!` or a
/// dropped stream, after the request was sent): the task is stopped and frees its
/// `max_children` slot, here or on another node. A task from `async_nolink` goes on when its
/// handle is dropped; its result is then discarded.
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

    /// Stops the task unless it has finished, as `Task.shutdown/2`.
    ///
    /// Returns `Ok(Some(r))` if its result arrived first, `Ok(None)` once it has stopped
    /// (Elixir's `nil`), or how it ended otherwise. Stopping a task cancels its future: the
    /// cancellation lands at the task's next `.await`, where its destructors run (a task
    /// cannot trap the stop as an Erlang process can). So `how` decides how long to wait
    /// for that to happen and what the caller learns:
    ///
    /// - [`Shutdown::Timeout`]`(t)`: the task is told to stop; if it has not stopped within
    ///   `t`, it is killed, and once it is gone the result is
    ///   `Err(`[`TaskError::Exited`]` { reason: "killed" })`, Elixir's `{:exit, :killed}`. A
    ///   task stops only at an `.await`: if it reaches none for 5 s more (a loop or a blocking
    ///   call without `.await`), the result is [`TaskError::StillRunning`], and the task runs
    ///   on until its next `.await`. A task is never reported stopped while it runs.
    /// - [`Shutdown::BrutalKill`]: killed at once; `Ok(None)` once it is gone, or
    ///   [`TaskError::StillRunning`] if it has not reached an `.await` within 5 s.
    /// - [`Shutdown::Infinity`]: told to stop, and waited for as long as it takes (as in
    ///   OTP: a task that never reaches an `.await` makes this wait forever).
    ///
    /// A task that had already ended when this is called gives what Elixir's `Task.shutdown`
    /// gives with the `:DOWN` already in the mailbox: its result; `Ok(None)` if it had been
    /// shut down (`Err(Exited { reason: "shutdown" })` with [`Shutdown::BrutalKill`], which
    /// expects `killed`); how it failed otherwise.
    ///
    /// A task on another node is told to stop through the node; the peer does not confirm
    /// the stop, so `Ok(None)` there means the stop was sent.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use actor_core::{Shutdown, System, SystemConfig, TaskSupervisor, TaskSupervisorConfig};
    /// let system = System::start(SystemConfig::default()).await?;
    /// let tasks = TaskSupervisor::start(&system, TaskSupervisorConfig::new("Tasks")).await?;
    /// let task = tasks.async_fn(|| std::future::pending::<u8>()).await?;
    /// // Waiting at an `.await`: it stops at once.
    /// assert_eq!(task.shutdown(Shutdown::Timeout(Duration::from_secs(5))).await?, None);
    /// # system.shutdown().await; Ok(()) }
    /// ```
    ///
    /// # Errors
    /// How the task failed, if it failed before it could be stopped;
    /// [`TaskError::Exited`] with reason `"killed"` after a [`Shutdown::Timeout`] ran out;
    /// [`TaskError::StillRunning`] for a task that could not be stopped.
    pub async fn shutdown(mut self, how: Shutdown) -> Result<Option<R>, TaskError> {
        let Some(mut rx) = self.rx.take() else {
            return Err(taken());
        };
        if let Ok(outcome) = rx.try_recv() {
            return self.ended_before(outcome, how);
        }
        if let Some(cancel) = &self.cancel {
            cancel.cancel();
        }
        match how {
            Shutdown::BrutalKill => match tokio::time::timeout(KILL_WAIT, rx).await {
                Ok(report) => self.stopped(report, false),
                Err(_) => Err(TaskError::StillRunning { waited: KILL_WAIT }),
            },
            Shutdown::Infinity => {
                let report = rx.await;
                self.stopped(report, false)
            }
            Shutdown::Timeout(timeout) => {
                let deadline = Instant::now() + timeout;
                match tokio::time::timeout_at(deadline, &mut rx).await {
                    // A stop that is seen only after the timeout ran out is the kill's.
                    Ok(report) => {
                        let killed = Instant::now() >= deadline;
                        self.stopped(report, killed)
                    }
                    Err(_) => match tokio::time::timeout(KILL_WAIT, rx).await {
                        Ok(report) => self.stopped(report, true),
                        Err(_) => Err(TaskError::StillRunning {
                            waited: timeout + KILL_WAIT,
                        }),
                    },
                }
            }
        }
    }

    /// [`Task::shutdown`] of a task that had already ended, as Elixir's with the `:DOWN`
    /// already in the mailbox: a stop of the kind `how` expects is `None`.
    fn ended_before(&mut self, outcome: Outcome, how: Shutdown) -> Result<Option<R>, TaskError> {
        let expected = match how {
            Shutdown::BrutalKill => KILLED,
            Shutdown::Timeout(_) | Shutdown::Infinity => SHUTDOWN,
        };
        match outcome {
            Err(TaskError::Exited { reason }) if reason == expected => Ok(None),
            outcome => self.finish(outcome).map(Some),
        }
    }

    /// What [`Task::shutdown`] reports once the task answered its stop: `killed` when the
    /// stop was seen only after the timeout ran out.
    fn stopped(
        &mut self,
        report: Result<Outcome, oneshot::error::RecvError>,
        killed: bool,
    ) -> Result<Option<R>, TaskError> {
        match report {
            Ok(Err(TaskError::Exited { reason })) if reason == SHUTDOWN || reason == KILLED => {
                if killed {
                    Err(TaskError::Exited {
                        reason: KILLED.into(),
                    })
                } else {
                    Ok(None)
                }
            }
            Ok(outcome) => self.finish(outcome).map(Some),
            // A task on another node: the request is dropped when the stop is sent.
            Err(_) if matches!(self.cancel, Some(Canceller::Remote(_))) => Ok(None),
            Err(_) => Err(lost()),
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
