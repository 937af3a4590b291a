//! How outcomes cross the wire: `actor_core`'s task kinds and errors and their wire forms.

use std::time::Duration;

use actor_core::{
    transport::TaskKind, CallError, Destination, ExitReason, NodeName, Restart, SendErrorKind,
    TaskError,
};

use crate::wire::message::{
    WireDownReason, WireExitReason, WireRestart, WireSendError, WireTaskError, WireTaskKind,
};

impl From<&ExitReason> for WireExitReason {
    fn from(reason: &ExitReason) -> Self {
        match reason {
            ExitReason::Normal => Self::Normal,
            ExitReason::Shutdown => Self::Shutdown,
            ExitReason::Killed => Self::Killed,
            ExitReason::Failed(why) => Self::Failed { why: why.clone() },
            ExitReason::Stopped(reason) => Self::Stopped {
                reason: reason.clone(),
            },
            ExitReason::NoProc => Self::NoProc,
            ExitReason::NoConnection => Self::NoConnection,
            // A reason this build has no wire form for goes as its words.
            other => Self::Stopped {
                reason: other.to_string(),
            },
        }
    }
}

impl From<WireExitReason> for ExitReason {
    fn from(reason: WireExitReason) -> Self {
        match reason {
            WireExitReason::Normal => Self::Normal,
            WireExitReason::Shutdown => Self::Shutdown,
            WireExitReason::Killed => Self::Killed,
            WireExitReason::Failed { why } => Self::Failed(why),
            WireExitReason::Stopped { reason } => Self::Stopped(reason),
            WireExitReason::NoProc => Self::NoProc,
            WireExitReason::NoConnection => Self::NoConnection,
        }
    }
}

/// The wire form of a watched actor's exit: `noproc` as the old `NoProc`, anything else
/// with its reason.
pub(crate) fn wire_down_reason(reason: &ExitReason) -> WireDownReason {
    match reason {
        ExitReason::NoProc => WireDownReason::NoProc,
        other => WireDownReason::Exit(other.into()),
    }
}

impl From<WireDownReason> for ExitReason {
    fn from(reason: WireDownReason) -> Self {
        match reason {
            // Older nodes did not say why: the BEAM's default.
            WireDownReason::Exited => Self::Normal,
            WireDownReason::NoProc => Self::NoProc,
            WireDownReason::Exit(reason) => reason.into(),
        }
    }
}

impl From<TaskError> for WireTaskError {
    fn from(e: TaskError) -> Self {
        match e {
            TaskError::Timeout { timeout } => Self::Timeout {
                millis: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            },
            TaskError::Panicked { message } => Self::Panicked { message },
            TaskError::Exited { reason } => Self::Exited { reason },
            TaskError::NoConnection { node } => Self::NoConnection { node },
            TaskError::NoProc { name, node } => Self::NoProc { name, node },
            TaskError::Undefined { module, function } => Self::Undefined { module, function },
            TaskError::BadArgs { reason } => Self::BadArgs { reason },
            TaskError::BadReturn { reason } => Self::BadReturn { reason },
            TaskError::MaxChildren { name, max } => Self::MaxChildren {
                name,
                max: max as u64,
            },
            other => Self::Exited {
                reason: other.to_string(),
            },
        }
    }
}

impl From<WireTaskError> for TaskError {
    fn from(e: WireTaskError) -> Self {
        match e {
            WireTaskError::Timeout { millis } => Self::Timeout {
                timeout: Duration::from_millis(millis),
            },
            WireTaskError::Panicked { message } => Self::Panicked { message },
            WireTaskError::Exited { reason } => Self::Exited { reason },
            WireTaskError::NoConnection { node } => Self::NoConnection { node },
            WireTaskError::NoProc { name, node } => Self::NoProc { name, node },
            WireTaskError::Undefined { module, function } => Self::Undefined { module, function },
            WireTaskError::BadArgs { reason } => Self::BadArgs { reason },
            WireTaskError::BadReturn { reason } => Self::BadReturn { reason },
            WireTaskError::MaxChildren { name, max } => Self::MaxChildren {
                name,
                max: usize::try_from(max).unwrap_or(usize::MAX),
            },
        }
    }
}

pub(crate) fn to_wire_kind(kind: TaskKind) -> WireTaskKind {
    match kind {
        TaskKind::Async { linked } => WireTaskKind::Async { linked },
        TaskKind::Child(Restart::Permanent) => WireTaskKind::Child(WireRestart::Permanent),
        TaskKind::Child(Restart::Transient) => WireTaskKind::Child(WireRestart::Transient),
        TaskKind::Child(Restart::Temporary) => WireTaskKind::Child(WireRestart::Temporary),
    }
}

pub(crate) fn from_wire_kind(kind: WireTaskKind) -> TaskKind {
    match kind {
        WireTaskKind::Async { linked } => TaskKind::Async { linked },
        WireTaskKind::Child(WireRestart::Permanent) => TaskKind::Child(Restart::Permanent),
        WireTaskKind::Child(WireRestart::Transient) => TaskKind::Child(Restart::Transient),
        WireTaskKind::Child(WireRestart::Temporary) => TaskKind::Child(Restart::Temporary),
    }
}

/// A call's failure as the peer reported it, for the caller of `dest` on `node`.
pub(crate) fn call_error(e: WireSendError, dest: Destination, node: NodeName) -> CallError {
    match e {
        WireSendError::NoProc => CallError::Send(SendErrorKind::NoProc { dest, node }),
        WireSendError::Refused { reason } => {
            CallError::Send(SendErrorKind::Refused { node, reason })
        }
        WireSendError::NoReply => CallError::NoReply { dest },
    }
}

/// A delivery's failure on the receiving node, as the caller hears it.
pub(crate) fn wire_send_error(kind: SendErrorKind) -> WireSendError {
    match kind {
        SendErrorKind::NoProc { .. } => WireSendError::NoProc,
        // The reason alone: the caller's `Refused` names the node again.
        SendErrorKind::Refused { reason, .. } => WireSendError::Refused { reason },
        other => WireSendError::Refused {
            reason: other.to_string(),
        },
    }
}
