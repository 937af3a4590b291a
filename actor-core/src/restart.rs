//! [`Restart`]: when a stopped child or task is started again. It sits below the supervisors
//! because the transport seam carries it too (a `start_child` on another node).

/// When a child that stopped is started again, as OTP's `restart` child-spec key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Restart {
    /// Always restarted.
    #[default]
    Permanent,
    /// Restarted only after an abnormal exit: a panic, an error, a kill, or a stop reason
    /// other than none, `"normal"`, `"shutdown"` or `"shutdown: …"`.
    Transient,
    /// Never restarted; removed from the supervisor when it stops.
    Temporary,
}
