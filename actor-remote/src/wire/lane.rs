//! Lanes: which frames of a session must keep their order with which.
//!
//! A session writes frames in the order they were queued, except that a large message (sent
//! as fragments, `SessionFrame::Fragment`) does not hold up the frames of other lanes: they
//! go out between its fragments. A frame of the *same* lane as a large message queued before
//! it waits until the large message is sent, on the sender, and until it is delivered, on
//! the receiver. Two frames are ordered with each other when they have the same
//! [`Lane::Key`], or when either is [`Lane::Session`] (a barrier, ordered with every frame).
//!
//! The rule for a node's messages, and what it does not keep, is on `Laned for NodeMsg`.

use serde::{Deserialize, Serialize};

use super::message::{ActorMsg, ControlMsg, LinkMsg, NodeMsg, Target, TaskMsg, WatchMsg};

/// The order class of a frame (protocol version 6: carried by every
/// `SessionFrame::Fragment`, so the receiver knows the lane of a large message before
/// decoding it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Lane {
    /// Ordered with every frame of the session (a barrier).
    Session,
    /// Ordered with the frames of the same key and with [`Lane::Session`] frames only.
    Key(u64),
}

impl Lane {
    /// Whether a frame of lane `self` and one of lane `other` must keep their order.
    pub fn orders_with(self, other: Lane) -> bool {
        match (self, other) {
            (Lane::Key(a), Lane::Key(b)) => a == b,
            _ => true,
        }
    }

    /// The lane of a key made of `tag` (what kind of key) and `bytes`, hashed with FNV-1a
    /// (stable across builds and platforms: both nodes must compute the same key).
    pub fn keyed(tag: u8, bytes: &[u8]) -> Lane {
        const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
        const PRIME: u64 = 0x0000_0100_0000_01b3;
        let mut hash = OFFSET;
        for byte in std::iter::once(&tag).chain(bytes) {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(PRIME);
        }
        Lane::Key(hash)
    }
}

/// A session message type whose frames have lanes: the session keeps order within a lane
/// and lets small frames of other lanes overtake a large message (see the module docs).
///
/// A type that must keep strict session order returns [`Lane::Session`] for everything:
///
/// ```
/// use actor_remote::wire::{Lane, Laned};
/// struct Msg;
/// impl Laned for Msg {
///     fn lane(&self) -> Lane {
///         Lane::Session
///     }
/// }
/// assert!(Msg.lane().orders_with(Lane::Key(7)));
/// ```
pub trait Laned {
    /// The lane of this message. Must be a function of the message alone (the receiver
    /// computes it again from the decoded message), the same on both nodes.
    fn lane(&self) -> Lane;
}

/// Kinds of keys, so that keys of different kinds never meet.
mod tag {
    pub const PID: u8 = 1;
    pub const NAME: u8 = 2;
    pub const CALL: u8 = 3;
    pub const TASK: u8 = 4;
    pub const OUTPUT: u8 = 5;
    pub const CONTROL: u8 = 6;
}

fn pid_lane(creation: u32, id: u64) -> Lane {
    let mut bytes = [0u8; 12];
    bytes[..4].copy_from_slice(&creation.to_le_bytes());
    bytes[4..].copy_from_slice(&id.to_le_bytes());
    Lane::keyed(tag::PID, &bytes)
}

fn target_lane(target: &Target) -> Lane {
    match target {
        Target::Pid { creation, id } => pid_lane(*creation, *id),
        Target::Name(name) => Lane::keyed(tag::NAME, name.as_bytes()),
    }
}

/// The rule for a node's messages.
///
/// The BEAM keeps the messages and signals from one process to another in send order; nodus
/// keeps them per *target actor*, which is stronger (everything to one actor, from any
/// sender, stays in order):
///
/// - a message to an actor ([`ActorMsg::Send`], a cast or a call) goes in the lane of its
///   target as addressed, a pid or a name;
/// - a link or an unlink ([`LinkMsg::Link`]/[`LinkMsg::Unlink`]) goes in the lane of the
///   receiver's pid it names, and a watch ([`WatchMsg::Watch`]) in the lane of its target,
///   so a signal stays behind the messages to the same actor sent before it, and messages
///   sent after it stay behind it;
/// - the signals about an actor's end, [`LinkMsg::Exit`] and [`WatchMsg::Down`], and
///   [`WatchMsg::Unwatch`], are barriers: the receiving actors are not all named on the wire
///   (a `Down` names only the watch), and an exit must not overtake any message its sender
///   sent before it, whether that message named the receiver by pid or by name;
/// - [`ControlMsg::Leaving`] is a barrier: the receiver closes the session on it, so every
///   frame sent before it must arrive first;
/// - a call's reply ([`ActorMsg::Reply`]) goes in the lane of its call, and a task's frames
///   ([`TaskMsg::Spawn`], `SpawnPlain`, `Started`, `Result`, `Kill`) in the lane of their
///   request: a caller waits for each answer, so answers to one caller stay in order, and a
///   task's `Result` stays behind its `Started`, a `Kill` behind its `Spawn`;
/// - a plain spawn's printed text ([`TaskMsg::Output`]) goes in one lane, so lines stay in
///   order; pings and pongs ([`ControlMsg::Ping`]/[`ControlMsg::Pong`]) and the mesh
///   ([`ControlMsg::Peers`]) in one lane of their own, so they never wait behind a large
///   message.
///
/// What this does not keep: a message to an actor by name and one to the same actor by pid
/// are in different lanes (the sender does not know which pid a name stands for), so when
/// one of them is large the other may overtake it; and a reply or a task's result may
/// overtake a large message the callee sent to the caller's actor before answering. The BEAM
/// orders both; send to one actor in one form to keep the order.
impl Laned for NodeMsg {
    fn lane(&self) -> Lane {
        match self {
            NodeMsg::Control(ControlMsg::Leaving) => Lane::Session,
            NodeMsg::Control(_) => Lane::keyed(tag::CONTROL, &[]),
            NodeMsg::Actor(ActorMsg::Send { target, .. }) => target_lane(target),
            NodeMsg::Actor(ActorMsg::Reply { call, .. }) => {
                Lane::keyed(tag::CALL, &call.to_le_bytes())
            }
            NodeMsg::Task(TaskMsg::Output { .. }) => Lane::keyed(tag::OUTPUT, &[]),
            NodeMsg::Task(
                TaskMsg::Spawn { req, .. }
                | TaskMsg::SpawnPlain { req, .. }
                | TaskMsg::Started { req, .. }
                | TaskMsg::Result { req, .. }
                | TaskMsg::Kill { req },
            ) => Lane::keyed(tag::TASK, &req.to_le_bytes()),
            NodeMsg::Link(LinkMsg::Link { to, .. } | LinkMsg::Unlink { to, .. }) => {
                pid_lane(to.creation, to.id)
            }
            NodeMsg::Link(LinkMsg::Exit { .. }) => Lane::Session,
            NodeMsg::Watch(WatchMsg::Watch { target, .. }) => target_lane(target),
            NodeMsg::Watch(WatchMsg::Unwatch { .. } | WatchMsg::Down { .. }) => Lane::Session,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::message::{WireExitReason, WirePid};

    fn send(target: Target) -> NodeMsg {
        NodeMsg::Actor(ActorMsg::Send {
            target,
            name: "m".into(),
            payload: vec![1, 2, 3],
            call: None,
            trace: None,
        })
    }

    fn pid(id: u64) -> Target {
        Target::Pid { creation: 1, id }
    }

    #[test]
    fn messages_to_one_actor_share_a_lane_and_others_do_not() {
        assert_eq!(send(pid(7)).lane(), send(pid(7)).lane());
        assert!(!send(pid(7)).lane().orders_with(send(pid(8)).lane()));
        let by_name = send(Target::Name("counter".into()));
        assert_eq!(by_name.lane(), send(Target::Name("counter".into())).lane());
        assert!(!by_name
            .lane()
            .orders_with(send(Target::Name("other".into())).lane()));
        // A call is a message to its target too.
        let call = NodeMsg::Actor(ActorMsg::Send {
            target: pid(7),
            name: "other type".into(),
            payload: vec![],
            call: Some(3),
            trace: None,
        });
        assert_eq!(call.lane(), send(pid(7)).lane());
    }

    #[test]
    fn links_and_watches_follow_the_messages_to_their_actor() {
        let to = WirePid { creation: 1, id: 7 };
        let from = WirePid { creation: 9, id: 1 };
        let link = NodeMsg::Link(LinkMsg::Link { from, to });
        let unlink = NodeMsg::Link(LinkMsg::Unlink { from, to });
        let watch = NodeMsg::Watch(WatchMsg::Watch {
            id: 4,
            target: pid(7),
        });
        for signal in [link, unlink, watch] {
            assert_eq!(signal.lane(), send(pid(7)).lane(), "{signal:?}");
        }
    }

    #[test]
    fn ends_of_actors_and_leaving_are_barriers() {
        let exit = NodeMsg::Link(LinkMsg::Exit {
            from: WirePid { creation: 9, id: 1 },
            to: WirePid { creation: 1, id: 7 },
            reason: WireExitReason::Normal,
        });
        let down = NodeMsg::Watch(WatchMsg::Down {
            id: 4,
            reason: crate::wire::message::WireDownReason::NoProc,
        });
        let unwatch = NodeMsg::Watch(WatchMsg::Unwatch { id: 4 });
        let leaving = NodeMsg::Control(ControlMsg::Leaving);
        for msg in [exit, down, unwatch, leaving] {
            assert_eq!(msg.lane(), Lane::Session, "{msg:?}");
            assert!(msg.lane().orders_with(send(pid(7)).lane()));
        }
    }

    #[test]
    fn answers_follow_their_request_and_pings_go_their_own_way() {
        let started = NodeMsg::Task(TaskMsg::Started {
            req: 5,
            result: Ok(1),
        });
        let result = NodeMsg::Task(TaskMsg::Result {
            req: 5,
            result: Ok(vec![]),
        });
        let kill = NodeMsg::Task(TaskMsg::Kill { req: 5 });
        assert_eq!(started.lane(), result.lane());
        assert_eq!(started.lane(), kill.lane());
        assert_ne!(
            started.lane(),
            NodeMsg::Task(TaskMsg::Kill { req: 6 }).lane()
        );
        let reply = |call| {
            NodeMsg::Actor(ActorMsg::Reply {
                call,
                result: Ok(vec![]),
            })
        };
        assert_eq!(reply(5).lane(), reply(5).lane());
        // Kinds of keys never meet: call 5 and request 5 are different lanes.
        assert_ne!(reply(5).lane(), started.lane());
        let ping = NodeMsg::Control(ControlMsg::Ping(1)).lane();
        assert_eq!(ping, NodeMsg::Control(ControlMsg::Pong(2)).lane());
        assert!(!ping.orders_with(send(pid(7)).lane()));
        assert!(!ping.orders_with(reply(5).lane()));
    }

    /// The hash is part of the protocol: both nodes must compute the same keys.
    #[test]
    fn keys_are_stable() {
        assert_eq!(Lane::keyed(0, b""), Lane::Key(0xaf63_bd4c_8601_b7df));
        assert_eq!(Lane::keyed(2, b"a"), Lane::keyed(2, b"a"));
        assert_ne!(Lane::keyed(2, b"a"), Lane::keyed(1, b"a"));
    }
}
