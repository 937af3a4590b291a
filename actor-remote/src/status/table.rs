//! What the status page remembers between requests, sans-IO: each peer's state and since
//! when, and the cluster's recent events. The clock is an input (`now_ms`).

use std::collections::{BTreeMap, VecDeque};

use actor_core::NodeName;

use super::view::{ClusterEventView, PeerState};
use crate::{ClusterEvent, NodeDownReason, NodeEvent};

/// A peer as the table knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Peer {
    pub(super) state: PeerState,
    pub(super) hidden: bool,
    pub(super) since_ms: u64,
    pub(super) reason: Option<String>,
}

/// Each peer's state, the nodes that went away (at most `keep_gone`), and the cluster's
/// recent events (at most `keep_events`).
#[derive(Debug)]
pub(super) struct Table {
    peers: BTreeMap<NodeName, Peer>,
    /// The order nodes went away in, oldest first, to forget the oldest.
    gone: VecDeque<NodeName>,
    keep_gone: usize,
    events: VecDeque<ClusterEventView>,
    keep_events: usize,
    pub(super) connects: u64,
    pub(super) failures: u64,
    pub(super) prunes: u64,
}

impl Table {
    pub(super) fn new(keep_gone: usize, keep_events: usize) -> Self {
        Table {
            peers: BTreeMap::new(),
            gone: VecDeque::new(),
            keep_gone,
            events: VecDeque::new(),
            keep_events,
            connects: 0,
            failures: 0,
            prunes: 0,
        }
    }

    /// A node found connected when the page started.
    pub(super) fn connected(&mut self, node: NodeName, hidden: bool, now_ms: u64) {
        self.apply(&NodeEvent::NodeUp { node, hidden }, now_ms);
    }

    /// A node event: whether it changed what the page shows.
    pub(super) fn apply(&mut self, event: &NodeEvent, now_ms: u64) -> bool {
        let (node, peer) = match event {
            NodeEvent::NodeUp { node, hidden } => (
                node,
                Peer {
                    state: PeerState::Up,
                    hidden: *hidden,
                    since_ms: now_ms,
                    reason: None,
                },
            ),
            NodeEvent::NodeDown {
                node,
                hidden,
                reason,
            } => (
                node,
                Peer {
                    state: if *reason == NodeDownReason::Shutdown {
                        PeerState::Left
                    } else {
                        PeerState::Down
                    },
                    hidden: *hidden,
                    since_ms: now_ms,
                    reason: Some(reason.to_string()),
                },
            ),
        };
        self.gone.retain(|n| n != node);
        if peer.state != PeerState::Up {
            self.gone.push_back(node.clone());
        }
        self.peers.insert(node.clone(), peer);
        while self.gone.len() > self.keep_gone {
            if let Some(oldest) = self.gone.pop_front() {
                self.peers.remove(&oldest);
            }
        }
        true
    }

    /// A cluster event: whether the page lists it (`seen` is not listed).
    pub(super) fn cluster(&mut self, event: &ClusterEvent, now_ms: u64) -> bool {
        let (kind, topology, node, detail) = match event {
            ClusterEvent::Connected { topology, node } => {
                self.connects += 1;
                ("connected", topology, Some(node), None)
            }
            ClusterEvent::ConnectFailed {
                topology,
                node,
                reason,
                retry_in,
            } => {
                self.failures += 1;
                let detail = format!("{reason}; retry in {} ms", retry_in.as_millis());
                ("connect_failed", topology, Some(node), Some(detail))
            }
            ClusterEvent::Pruned { topology, node } => {
                self.prunes += 1;
                ("pruned", topology, Some(node), None)
            }
            ClusterEvent::Dropped { topology, why } => {
                ("dropped", topology, None, Some(why.clone()))
            }
            _ => return false,
        };
        self.events.push_front(ClusterEventView {
            at_ms: now_ms,
            kind: kind.to_string(),
            topology: topology.clone(),
            node: node.map(ToString::to_string),
            detail,
        });
        self.events.truncate(self.keep_events);
        true
    }

    /// The peers: connected ones by name, then the others, most recently gone first.
    pub(super) fn peers(&self) -> Vec<(NodeName, Peer)> {
        let mut up: Vec<_> = self
            .peers
            .iter()
            .filter(|(_, p)| p.state == PeerState::Up)
            .map(|(n, p)| (n.clone(), p.clone()))
            .collect();
        let gone = self.gone.iter().rev().filter_map(|n| {
            self.peers
                .get(n)
                .filter(|p| p.state != PeerState::Up)
                .map(|p| (n.clone(), p.clone()))
        });
        up.extend(gone);
        up
    }

    /// The cluster's events, newest first.
    pub(super) fn events(&self) -> Vec<ClusterEventView> {
        self.events.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> NodeName {
        NodeName::parse(s).expect("a valid test name")
    }

    fn up(n: &str) -> NodeEvent {
        NodeEvent::NodeUp {
            node: name(n),
            hidden: false,
        }
    }

    fn down(n: &str, reason: NodeDownReason) -> NodeEvent {
        NodeEvent::NodeDown {
            node: name(n),
            hidden: false,
            reason,
        }
    }

    fn states(t: &Table) -> Vec<(String, PeerState, u64)> {
        t.peers()
            .into_iter()
            .map(|(n, p)| (n.to_string(), p.state, p.since_ms))
            .collect()
    }

    #[test]
    fn tracks_up_down_and_left_with_since() {
        let mut t = Table::new(8, 8);
        t.connected(name("b@h"), false, 1);
        assert!(t.apply(&up("c@h"), 2));
        assert!(t.apply(&up("a@h"), 3));
        assert!(t.apply(&down("b@h", NodeDownReason::ConnectionClosed), 4));
        assert!(t.apply(&down("c@h", NodeDownReason::Shutdown), 5));
        assert_eq!(
            states(&t),
            [
                ("a@h".into(), PeerState::Up, 3),
                ("c@h".into(), PeerState::Left, 5),
                ("b@h".into(), PeerState::Down, 4),
            ]
        );
        let peers = t.peers();
        assert_eq!(peers[1].1.reason.as_deref(), Some("shutdown"));
        assert_eq!(peers[2].1.reason.as_deref(), Some("connection_closed"));
        // Back up: no longer among the gone.
        t.apply(&up("b@h"), 6);
        assert_eq!(
            states(&t),
            [
                ("a@h".into(), PeerState::Up, 3),
                ("b@h".into(), PeerState::Up, 6),
                ("c@h".into(), PeerState::Left, 5),
            ]
        );
    }

    #[test]
    fn forgets_the_oldest_gone_nodes() {
        let mut t = Table::new(2, 8);
        for (i, n) in ["a@h", "b@h", "c@h"].into_iter().enumerate() {
            t.apply(&up(n), 0);
            t.apply(&down(n, NodeDownReason::TickTimeout), i as u64 + 1);
        }
        let names: Vec<_> = t.peers().into_iter().map(|(n, _)| n.to_string()).collect();
        assert_eq!(names, ["c@h", "b@h"]);
    }

    #[test]
    fn lists_cluster_events_newest_first_without_seen() {
        let mut t = Table::new(8, 2);
        let topology = "t".to_string();
        assert!(!t.cluster(
            &ClusterEvent::Seen {
                topology: topology.clone(),
                node: name("a@h")
            },
            1
        ));
        for (i, n) in ["a@h", "b@h", "c@h"].into_iter().enumerate() {
            assert!(t.cluster(
                &ClusterEvent::Connected {
                    topology: topology.clone(),
                    node: name(n)
                },
                i as u64
            ));
        }
        let nodes: Vec<_> = t.events().into_iter().filter_map(|e| e.node).collect();
        assert_eq!(nodes, ["c@h", "b@h"]);
        assert_eq!(t.connects, 3);
    }
}
