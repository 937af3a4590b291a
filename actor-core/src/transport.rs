//! For implementers of a node's distribution; applications never need it.
//!
//! `actor-core` has no sockets. A distributed node (`actor-remote`'s `Node`) implements
//! [`Transport`] and installs it with [`install`]; from then on, operations whose destination
//! is on another node go through it. Without one they answer `NoConnection`.
//!
//! The serving side hands what peers send to the node: [`deliver`] a message to a local
//! actor, [`start_task_for_peer`] to run what a peer asked for under a local task
//! supervisor, and [`spawn_plain`] for a plain spawn (`Node.spawn/4`), which runs under no
//! supervisor with the group leader the caller gives.
//!
//! Everything a transport needs is here, and nothing here is re-exported at the crate root.

use std::sync::Arc;

pub use crate::cancel::Cancel;
pub use crate::kernel::GlobalResolver;
pub use crate::seam::{
    NodeSink, NodeStatus, PeerTarget, RemoteSend, RemoteTask, RemoteTaskRequest, TaskKind,
    Transport,
};
pub use crate::task_supervisor::peer::{spawn_plain, start_task_for_peer, PeerTask};
use crate::{
    error::SendErrorKind, monitor::ExitReason, node_name::NodeName, pid::Pid,
    remote_message::ReplySink, system::System,
};

/// Installs `transport` as `system`'s distribution; destinations on other nodes go through
/// it from now on. A system has at most one transport: a second call hands it back.
///
/// # Errors
/// The transport given, if one is installed already.
pub fn install(system: &System, transport: Arc<dyn Transport>) -> Result<(), Arc<dyn Transport>> {
    system.kernel().set_transport(transport)
}

/// Installs `resolver` as `system`'s table of global names: from then on a
/// [`Destination::Global`](crate::Destination::Global) is sent, called, monitored or asked
/// for a task as the pid `resolver` returns (and is `NoProc` when it returns `None`). At most
/// one per system: a second call hands it back.
///
/// # Errors
/// The resolver given, if one is installed already.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use std::sync::Arc;
/// use actor_core::{Destination, System, SystemConfig};
/// let system = System::start(SystemConfig::default()).await.unwrap();
/// assert!(actor_core::transport::install_global_resolver(&system, Arc::new(|_| None)).is_ok());
/// let monitor = system.monitor(Destination::global("nobody"));
/// assert_eq!(monitor.await.reason, actor_core::DownReason::NoProc);
/// # }
/// ```
pub fn install_global_resolver(
    system: &System,
    resolver: GlobalResolver,
) -> Result<(), GlobalResolver> {
    system.kernel().set_global_resolver(resolver)
}

/// Delivers a message that came from another node to the local actor `target` of `system`,
/// decoding it as the registered type whose stable name is `name`. For a call, `reply` is where the answer
/// goes.
///
/// # Errors
/// `NoProc` for no such actor (or a pid of an earlier incarnation of this node),
/// [`SendErrorKind::Refused`] for an unregistered type, a type the actor does not take, or
/// bytes that do not decode.
pub fn deliver(
    system: &System,
    target: PeerTarget<'_>,
    name: &str,
    payload: &[u8],
    reply: Option<ReplySink>,
) -> Result<(), SendErrorKind> {
    system.deliver_from_peer(target, name, payload, reply)
}

/// A peer's actor `from` links to our actor `to`. Returns `Some(reason)` (`NoProc`) when `to`
/// is not alive here (or is a pid of an earlier incarnation of this node): send that back as
/// an exit signal from `to` to `from`.
pub fn link_from_peer(system: &System, from: Pid, to: &Pid) -> Option<ExitReason> {
    if !system.is_current(to) {
        return Some(ExitReason::NoProc);
    }
    system.kernel().processes.link_from_peer(to.id(), from)
}

/// A peer's actor `from` removed its link to our actor `to`.
pub fn unlink_from_peer(system: &System, from: &Pid, to: &Pid) {
    if system.is_current(to) {
        system.kernel().processes.unlink_from_peer(to.id(), from);
    }
}

/// The exit signal of a peer's actor `from`, which stopped with `reason`, for our actor `to`
/// it was linked to: `to` gets it as a trapped exit or stops with `reason` (see
/// [`Info::Exit`](crate::Info::Exit)).
pub fn exit_from_peer(system: &System, from: Pid, to: &Pid, reason: ExitReason) {
    if system.is_current(to) {
        let kernel = system.kernel();
        kernel.processes.signal(kernel, to.id(), from, reason);
    }
}

/// `node` went down: every local actor linked to one of its actors gets an exit
/// `noconnection`.
pub fn node_down(system: &System, node: &NodeName) {
    let kernel = system.kernel();
    kernel.processes.node_down(kernel, node);
}
