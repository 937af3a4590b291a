//! [`TaskSupervisor::async_stream_on`]: Elixir's `Task.Supervisor.async_stream`, a stream of
//! linked tasks, each started as [`TaskSupervisor::async_on`] starts one.

use std::{task::Poll, time::Duration};

use futures::StreamExt;
use serde::{de::DeserializeOwned, Serialize};
use tokio::sync::mpsc;

use super::api::TaskSupervisor;
use crate::{destination::Destination, error::TaskError, system::System};

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
    /// `System.schedulers_online()`). Must be at least 1: with 0 the stream yields only
    /// [`TaskError::InvalidOption`] and starts nothing.
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
            timeout: crate::system::DEFAULT_TIMEOUT,
            on_timeout: OnTimeout::Exit,
        }
    }
}

impl TaskSupervisor {
    /// Runs `module.function(item)` for every item of `inputs` under the task supervisor
    /// `dest` (here or on another node), at most `options.max_concurrency` at a time, as
    /// `Task.Supervisor.async_stream/6`. The stream yields each task's result, in input order
    /// unless `options.ordered` is false.
    ///
    /// The tasks are linked to the stream: dropping it stops those in flight. A task that
    /// fails yields its error and the stream goes on; one past `options.timeout` yields
    /// [`TaskError::Timeout`] and then ends the stream (stopping the tasks in flight), or only
    /// stops that task with [`OnTimeout::KillTask`].
    ///
    /// A start the supervisor refuses because it already runs its `max_children` tasks yields
    /// [`TaskError::MaxChildren`] at once, ahead of the results of earlier items still
    /// running, and ends the stream, stopping the tasks in flight (Elixir closes the stream
    /// and raises). Keep `max_concurrency` at or below the supervisor's `max_children`, minus
    /// what else runs under it.
    ///
    /// `options.max_concurrency` of 0 yields [`TaskError::InvalidOption`] and nothing else
    /// (Elixir raises `ArgumentError`); no task starts.
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
        if options.max_concurrency == 0 {
            let err = TaskError::InvalidOption {
                option: "max_concurrency".into(),
                reason: "must be greater than zero; pass 1 to run one task at a time".into(),
            };
            return futures::stream::once(futures::future::ready(Err(err))).boxed();
        }
        let (system, dest) = (system.clone(), dest.into());
        let (module, function) = (module.to_string(), function.to_string());
        let timeout = options.timeout;
        // A start refused for `max_children` is reported here at once, ahead of the results
        // of earlier items, which may still be running.
        let (refused_tx, mut refused) = mpsc::unbounded_channel();
        let tasks = futures::stream::iter(inputs).map(move |args| {
            let (system, dest, module, function, refused_tx) = (
                system.clone(),
                dest.clone(),
                module.clone(),
                function.clone(),
                refused_tx.clone(),
            );
            async move {
                // Each task's timeout bounds its start too.
                let started = Self::async_call::<A, R>(
                    &system, dest, &module, &function, args, true, timeout,
                )
                .await;
                let task = match started {
                    Ok(task) => task,
                    Err(e) => {
                        if matches!(e, TaskError::MaxChildren { .. }) {
                            let _ = refused_tx.send(e.clone());
                        }
                        return Err(e);
                    }
                };
                task.await_timeout(timeout).await
            }
        });
        let max = options.max_concurrency;
        let results = if options.ordered {
            tasks.buffered(max).boxed()
        } else {
            tasks.buffer_unordered(max).boxed()
        };
        let exit_on_timeout = options.on_timeout == OnTimeout::Exit;
        // `None` once the stream has ended: dropping the inner stream stops the tasks in flight.
        let mut results = Some(results);
        futures::stream::poll_fn(move |cx| {
            let Some(inner) = results.as_mut() else {
                return Poll::Ready(None);
            };
            let item = match refused.poll_recv(cx) {
                Poll::Ready(Some(e)) => Some(Err(e)),
                _ => match inner.poll_next_unpin(cx) {
                    Poll::Ready(item) => item,
                    // Polling the inner stream may just have been refused a start.
                    Poll::Pending => match refused.poll_recv(cx) {
                        Poll::Ready(Some(e)) => Some(Err(e)),
                        _ => return Poll::Pending,
                    },
                },
            };
            let last = match &item {
                None | Some(Err(TaskError::MaxChildren { .. })) => true,
                Some(Err(TaskError::Timeout { .. })) => exit_on_timeout,
                Some(_) => false,
            };
            if last {
                results = None;
            }
            Poll::Ready(item)
        })
        .boxed()
    }
}
