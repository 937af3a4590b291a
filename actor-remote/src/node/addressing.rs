//! Addressing across the wire: an `actor_core::Destination` on another node becomes a wire
//! [`Target`] (a name or a pid of the receiver), and a [`Target`] from a peer becomes a
//! `PeerTarget` borrowing from the frame (delivery) or a `Destination` on this node.

use actor_core::{transport::PeerTarget, Destination, NodeName, Pid};

use crate::wire::message::{ActorName, Target, TargetRef, WirePid};

/// The wire form of `pid`, an actor of the sending or the receiving node of a session.
pub(crate) fn wire_pid(pid: &Pid) -> WirePid {
    WirePid {
        creation: pid.creation(),
        id: pid.id(),
    }
}

/// The pid a [`WirePid`] names on `node` (the session's sender or receiver).
pub(crate) fn pid_on(node: &NodeName, pid: WirePid) -> Pid {
    Pid::new(node.clone(), pid.creation, pid.id)
}

/// The wire target for `dest`, an actor on the receiving node.
pub(crate) fn target_of(dest: &Destination) -> Target {
    match dest {
        Destination::Pid(pid) => Target::Pid {
            creation: pid.creation(),
            id: pid.id(),
        },
        // The name is shared, not copied.
        Destination::Name(name) | Destination::Remote { name, .. } | Destination::Global(name) => {
            Target::Name(ActorName::from(name.clone()))
        }
    }
}

/// A peer's target read in place from a frame, as this node's system takes it.
pub(crate) fn peer_target_ref<'a>(target: &TargetRef<'a>) -> PeerTarget<'a> {
    match *target {
        TargetRef::Name(name) => PeerTarget::Name(name),
        TargetRef::Pid { creation, id } => PeerTarget::Pid { creation, id },
    }
}

/// A peer's `Target`, as this node's system takes it (borrowing the name).
pub(crate) fn peer_target(target: &Target) -> PeerTarget<'_> {
    match target {
        Target::Name(name) => PeerTarget::Name(name),
        Target::Pid { creation, id } => PeerTarget::Pid {
            creation: *creation,
            id: *id,
        },
    }
}

/// The destination a peer's `Target` names on this node, `me`.
pub(crate) fn destination(me: &NodeName, target: &Target) -> Destination {
    peer_target(target).to_destination(me)
}

#[cfg(test)]
mod tests {
    use actor_core::Pid;

    use super::*;

    #[test]
    fn a_target_names_the_same_actor_on_both_sides() {
        let me: NodeName = "b@localhost".parse().unwrap();
        let by_name = Destination::Remote {
            name: "counter".into(),
            node: me.clone(),
        };
        assert_eq!(target_of(&by_name), Target::Name("counter".into()));
        assert_eq!(
            destination(&me, &target_of(&by_name)),
            Destination::Name("counter".into())
        );
        let pid = Destination::Pid(Pid::new(me.clone(), 7, 42));
        assert_eq!(
            target_of(&pid),
            Target::Pid {
                creation: 7,
                id: 42
            }
        );
        assert_eq!(destination(&me, &target_of(&pid)), pid);
    }
}
