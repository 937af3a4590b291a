//! Monitors: one `Down` when a local or remote actor stops, or its node goes down.
//!
//! [`System::monitor`](crate::System::monitor) watches any [`Destination`]: a name, a
//! `(name, node)` pair or a pid. The returned [`Monitor`] resolves exactly once, with the
//! [`DownReason`]:
//!
//! - [`DownReason::NoProc`] at once when nothing lives there;
//! - [`DownReason::Exited`] when the actor stops;
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
//! assert_eq!(monitor.await.reason, DownReason::Exited);
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

/// Why a monitored actor is down, as the BEAM's `:DOWN` reasons.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DownReason {
    /// The actor stopped (ractor does not report why to monitors).
    Exited,
    /// Nothing lived at the destination when the monitor was set (`noproc`).
    NoProc,
    /// Its node cannot be reached or went down (`noconnection`).
    NoConnection,
}

impl fmt::Display for DownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DownReason::Exited => "exited",
            DownReason::NoProc => "noproc",
            DownReason::NoConnection => "noconnection",
        })
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
