//! Where a task's output goes: each node's [`Output`], and the *group leader* of a task.
//!
//! On the BEAM every process has a group leader, the process its `IO.puts` goes to. nodus
//! does the same for tasks:
//!
//! - every [`System`](crate::System) has an [`Output`]: the process's stdout by default, or
//!   any sink given to [`System::set_output`](crate::System::set_output) (tests use
//!   [`Output::capture`]);
//! - the current task's group leader is an [`Output`] held in a tokio task-local; the
//!   output macros [`puts!`](crate::puts) and [`print!`](crate::print) write to it, and
//!   outside any task that has one (plain `main`, a bare `tokio::spawn`) to stdout;
//! - a task started by a [`TaskSupervisor`](crate::TaskSupervisor) (a local future, a
//!   function by name, or one started for a peer) has the **supervisor's node's** output as
//!   its group leader, so a task a peer started here prints here (Elixir's
//!   `Task.Supervisor.async({sup, node}, ...)`);
//! - a plain remote spawn (`actor-remote`'s `Node::spawn_on`, `Node.spawn/4`) has a
//!   forwarder as its group leader: what it prints is sent back and written to the
//!   **caller's node's** output.
//!
//! The group leader is read when a task is started: a later
//! [`System::set_output`](crate::System::set_output) applies to tasks started after it. A
//! future given to `tokio::spawn` does not inherit its spawner's group leader; wrap it in
//! [`inherit`] to pass it on.
//!
//! # Naming
//!
//! `nodus::puts!` has no std namesake. `nodus::print!` shares its name with `std::print!` on
//! purpose: call it by path (`nodus::print!(..)`), or `use nodus::print;` to make every
//! `print!` of a module go to the group leader. Neither macro is in the `nodus` prelude, so
//! `use nodus::prelude::*` never changes what `print!` means.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use actor_core::{io::Output, puts, System, SystemConfig, TaskSupervisor, TaskSupervisorConfig};
//! let system = System::start(SystemConfig::named("alex@localhost")?).await?;
//! let (output, captured) = Output::capture();
//! system.set_output(output);
//! system.functions().register("Chat", "receive_message", |(msg,): (String,)| async move {
//!     puts!("got {msg}"); // to the group leader: the node's output
//! });
//! TaskSupervisor::start(&system, TaskSupervisorConfig::new("Chat.TaskSupervisor")).await?;
//! TaskSupervisor::async_on::<_, ()>(&system, "Chat.TaskSupervisor", "Chat", "receive_message", ("hi",))
//!     .await?
//!     .await?;
//! assert_eq!(captured.lines(), ["got hi"]);
//!
//! puts!("not in a task: this goes to stdout");
//! assert_eq!(captured.lines(), ["got hi"]);
//! # system.shutdown().await; Ok(()) }
//! ```

use std::{
    fmt,
    future::Future,
    io::Write as _,
    sync::{Arc, Mutex, PoisonError},
};

tokio::task_local! {
    static GROUP_LEADER: Output;
}

/// A sink for text: a node's output or a task's group leader. Cheap to clone.
#[derive(Clone)]
pub struct Output {
    write: Arc<dyn Fn(&str) + Send + Sync>,
    kind: &'static str,
}

impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Output").field(&self.kind).finish()
    }
}

impl Default for Output {
    fn default() -> Self {
        Self::stdout()
    }
}

impl Output {
    /// The process's stdout (errors, such as a closed pipe, are ignored).
    pub fn stdout() -> Self {
        Self {
            write: Arc::new(|text| {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(text.as_bytes());
                let _ = out.flush();
            }),
            kind: "stdout",
        }
    }

    /// A sink that calls `f` with each piece of text: a whole line for
    /// [`puts!`](crate::puts), the formatted text for [`print!`](crate::print). Transports
    /// use it to forward a task's output to another node.
    pub fn new(f: impl Fn(&str) + Send + Sync + 'static) -> Self {
        Self {
            write: Arc::new(f),
            kind: "custom",
        }
    }

    /// A sink that keeps what is written, and the handle to read it back (for tests).
    pub fn capture() -> (Output, Captured) {
        let captured = Captured::default();
        let buffer = captured.clone();
        let output = Self {
            write: Arc::new(move |text| buffer.lock().push_str(text)),
            kind: "capture",
        };
        (output, captured)
    }

    /// Writes `text` as it is.
    pub fn write(&self, text: &str) {
        (self.write)(text);
    }
}

/// What an [`Output::capture`] sink has been given so far. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Captured(Arc<Mutex<String>>);

impl Captured {
    fn lock(&self) -> std::sync::MutexGuard<'_, String> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Everything written so far.
    pub fn text(&self) -> String {
        self.lock().clone()
    }

    /// The lines written so far, without their line ends (a last line without one too).
    pub fn lines(&self) -> Vec<String> {
        self.lock().lines().map(str::to_string).collect()
    }
}

/// The current task's group leader, if it has one.
pub fn group_leader() -> Option<Output> {
    GROUP_LEADER.try_with(Output::clone).ok()
}

/// Runs `future` with `leader` as its group leader.
pub fn with_group_leader<F: Future>(leader: Output, future: F) -> impl Future<Output = F::Output> {
    GROUP_LEADER.scope(leader, future)
}

/// Wraps `future` so that it runs with the current task's group leader (stdout if there is
/// none), as a process spawned on the BEAM inherits its spawner's. For `tokio::spawn`.
pub fn inherit<F: Future>(future: F) -> impl Future<Output = F::Output> {
    with_group_leader(group_leader().unwrap_or_default(), future)
}

/// Writes `text` to the current group leader, or to stdout outside any task that has one.
pub fn write(text: &str) {
    if GROUP_LEADER.try_with(|leader| leader.write(text)).is_err() {
        Output::stdout().write(text);
    }
}

#[doc(hidden)]
pub fn __print(args: fmt::Arguments<'_>) {
    match args.as_str() {
        Some(text) => write(text),
        None => write(&args.to_string()),
    }
}

#[doc(hidden)]
pub fn __puts(args: fmt::Arguments<'_>) {
    let mut line = args.to_string();
    line.push('\n');
    write(&line);
}

/// Writes a line to the current task's group leader, as Elixir's `IO.puts`.
///
/// Takes `format!`'s arguments. Outside any task that has a group leader it writes to
/// stdout. See the [`io`](crate::io) module for where a task's group leader is.
#[macro_export]
macro_rules! puts {
    () => {
        $crate::io::write("\n")
    };
    ($($arg:tt)*) => {
        $crate::io::__puts(::std::format_args!($($arg)*))
    };
}

/// Writes to the current task's group leader without a line end, as Elixir's `IO.write`.
///
/// Takes `format!`'s arguments. Named as `std::print!` on purpose; call it by path, see
/// the [`io`](crate::io) module's "Naming".
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => {
        $crate::io::__print(::std::format_args!($($arg)*))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn macros_write_to_the_group_leader_and_inherit_passes_it_on() {
        let (output, captured) = Output::capture();
        with_group_leader(output, async {
            crate::puts!("a {}", 1);
            crate::print!("b");
            crate::print!("{}", 2);
            crate::puts!();
            tokio::spawn(inherit(async { crate::puts!("spawned") }))
                .await
                .unwrap();
        })
        .await;
        assert_eq!(captured.lines(), ["a 1", "b2", "spawned"]);
        assert!(group_leader().is_none());
        crate::puts!("to stdout, no panic");
    }
}
