//! [`Cancel`]: stops something wherever it runs (a task on this node or a peer, a monitor's
//! watcher), as a cloneable handle.

use std::{fmt, sync::Arc};

/// Stops a task wherever it runs.
#[derive(Clone)]
pub struct Cancel(Arc<dyn Fn() + Send + Sync>);

impl Cancel {
    /// A canceller that runs `f`.
    pub fn new(f: impl Fn() + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    /// Stops the task (idempotent).
    pub fn cancel(&self) {
        (self.0)();
    }
}

impl fmt::Debug for Cancel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Cancel")
    }
}
