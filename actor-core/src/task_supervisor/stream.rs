//! [`TaskSupervisor::async_stream_on`]: Elixir's `Task.Supervisor.async_stream`, a stream of
//! linked tasks, each started as [`TaskSupervisor::async_on`] starts one.

use std::time::Duration;

use futures::StreamExt;
use serde::{de::DeserializeOwned, Serialize};

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
}
