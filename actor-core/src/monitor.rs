//! Monitors: one `Down` when a local or remote actor stops, or its node goes down.
//!
//! [`System::monitor`](crate::System::monitor) watches any [`Destination`]: a name, a
//! `(name, node)` pair or a pid. The returned [`Monitor`] resolves exactly once, with the
//! [`DownReason`] (an [`ExitReason`]):
//!
//! - [`DownReason::NoProc`] at once when nothing lives there;
//! - the actor's [`ExitReason`] when it stops (`Normal`, `Shutdown`, `Killed`, the panic
//!   message as `Failed`, a reason of its own as `Stopped`);
//! - [`DownReason::NoConnection`] when its node cannot be reached or goes down.
//!
//! Dropping the monitor removes it (`demonitor`).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use actor_core::{DownReason, System, SystemConfig, SupervisorSpec, Supervisor};
//! let system = System::start(SystemConfig::default()).await?;
//! let sup = Supervisor::start(&system, Some("sup"), SupervisorSpec::default()).await?;
//! let monitor = system.monitor("sup");
//! sup.stop(None);
//! assert_eq!(monitor.await.reason, DownReason::Normal);
//! assert_eq!(system.monitor("sup").await.reason, DownReason::NoProc);
//! # system.shutdown().await; Ok(()) }
//! ```

use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use tokio::sync::oneshot;

use crate::{cancel::Cancel, destination::Destination};

/// Why an actor stopped, or why a monitor of it fired: the BEAM's exit reasons.
///
/// The same value reaches a monitor's [`Down`], an actor's `Info::Down`, a trapped exit
/// signal of a link, and a supervisor's view of a child, on this node and across nodes.
/// Only [`ExitReason::Normal`] leaves linked actors alone; every other reason takes them down
/// unless they trap exits, as on the BEAM.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum ExitReason {
    /// It stopped by itself with nothing wrong (`normal`): ractor's `stop(None)` or a stop
    /// with the reason `"normal"`.
    Normal,
    /// It was stopped by its supervisor or its node shutting down (`shutdown`).
    Shutdown,
    /// It was killed (`killed`): aborted without running its `post_stop`.
    Killed,
    /// It panicked or a handler returned an error; the message says which.
    Failed(String),
    /// It stopped with a reason of its own (`{:shutdown, term}` or any other term on the
    /// BEAM).
    Stopped(String),
    /// Nothing lived at the destination when it was monitored or linked (`noproc`).
    NoProc,
    /// Its node cannot be reached or went down (`noconnection`).
    NoConnection,
}

/// The reason of a monitor's [`Down`]: an [`ExitReason`].
pub type DownReason = ExitReason;

impl ExitReason {
    /// The reason for a ractor stop reason: `None` and `"normal"` are `Normal`,
    /// `"shutdown"`, `"killed"`, `"noproc"` and `"noconnection"` their own variants, anything
    /// else `Stopped`.
    pub fn from_stop(reason: Option<&str>) -> Self {
        match reason {
            None | Some("normal") => ExitReason::Normal,
            Some("shutdown") => ExitReason::Shutdown,
            Some("killed") => ExitReason::Killed,
            Some("noproc") => ExitReason::NoProc,
            Some("noconnection") => ExitReason::NoConnection,
            Some(other) => ExitReason::Stopped(other.to_string()),
        }
    }

    /// Whether this reason takes down a linked actor that does not trap exits: every reason
    /// but `Normal`.
    pub fn propagates(&self) -> bool {
        !matches!(self, ExitReason::Normal)
    }

    /// Whether a `Transient` child stopped with this reason is left stopped: `Normal` and
    /// `Shutdown` (OTP's rule, where `{:shutdown, _}` also counts).
    pub fn is_clean(&self) -> bool {
        matches!(self, ExitReason::Normal | ExitReason::Shutdown)
    }
}

impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitReason::Normal => f.write_str("normal"),
            ExitReason::Shutdown => f.write_str("shutdown"),
            ExitReason::Killed => f.write_str("killed"),
            ExitReason::Failed(why) | ExitReason::Stopped(why) => f.write_str(why),
            ExitReason::NoProc => f.write_str("noproc"),
            ExitReason::NoConnection => f.write_str("noconnection"),
        }
    }
}

/// A monitored actor went down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Down {
    /// What was monitored.
    pub dest: Destination,
    /// Why it is down.
    pub reason: DownReason,
}

/// Resolves once with the [`Down`] of what it monitors; dropping it demonitors.
#[must_use = "a monitor does nothing unless awaited"]
pub struct Monitor {
    dest: Destination,
    rx: oneshot::Receiver<DownReason>,
    cancel: Option<Cancel>,
}

impl fmt::Debug for Monitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Monitor")
            .field("dest", &self.dest)
            .finish_non_exhaustive()
    }
}

impl Monitor {
    /// A monitor resolved by `rx`; `cancel` runs if it is dropped first.
    pub fn new(
        dest: Destination,
        rx: oneshot::Receiver<DownReason>,
        cancel: Option<Cancel>,
    ) -> Self {
        Self { dest, rx, cancel }
    }

    /// A monitor that is already down.
    pub fn down(dest: Destination, reason: DownReason) -> Self {
        let (tx, rx) = oneshot::channel();
        let _ = tx.send(reason);
        Self::new(dest, rx, None)
    }

    /// What it monitors.
    pub fn destination(&self) -> &Destination {
        &self.dest
    }
}

impl Future for Monitor {
    type Output = Down;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Down> {
        let this = &mut *self;
        Pin::new(&mut this.rx).poll(cx).map(|reason| {
            this.cancel = None; // resolved: nothing to demonitor
            Down {
                dest: this.dest.clone(),
                // The watcher went away without a verdict: its node shut down.
                reason: reason.unwrap_or(DownReason::NoConnection),
            }
        })
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        if let Some(cancel) = self.cancel.take() {
            cancel.cancel();
        }
    }
}
