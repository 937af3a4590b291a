//! The DNS strategies' decisions, sans-IO: given what this poll's query returned and what
//! earlier polls found, which nodes to connect and which to prune. No sockets, no clock.

use std::{collections::BTreeSet, net::IpAddr};

use actor_core::NodeName;

/// What one DNS poll returned, as the strategies' decision logic sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A whole answer: every node the records name (empty for NXDOMAIN or no records of the
    /// type, which are answers too).
    Complete(Vec<NodeName>),
    /// An answer the server marked truncated (the TC bit), and no whole one came: the nodes
    /// in it exist, but a node missing from it may only have been cut off. (The built-in
    /// strategies never see one: hickory-resolver retries a truncated UDP answer over TCP,
    /// and one it cannot complete is a failure. It is here for a strategy that reads DNS
    /// answers itself.)
    Truncated(Vec<NodeName>),
    /// The query failed (no answer in time, SERVFAIL, REFUSED, a truncated answer the
    /// resolver could not complete over TCP, ...): says nothing about any node.
    Failed(String),
}

/// What a DNS strategy does after one poll.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    /// Nodes to connect (the cluster skips this node, connected ones and ones in backoff).
    pub connect: Vec<NodeName>,
    /// Nodes to disconnect: found by an earlier whole answer, missing from this whole one.
    pub prune: Vec<NodeName>,
    /// Nodes in this answer that the last one did not have (new records, or records back).
    pub appeared: Vec<NodeName>,
    /// Why nothing was pruned although `prune` is on and nodes are missing, if so.
    pub kept: Option<String>,
}

/// What a DNS strategy knows between polls: the nodes of the last answer, and whether
/// nodes missing from a new answer are pruned.
///
/// The rules (libcluster's DNSPoll prunes nodes missing from any answer, even a truncated
/// one or an error, #190):
/// - a whole answer replaces the known nodes; with `prune` on, known nodes missing from it
///   are pruned;
/// - a truncated answer only adds nodes: nothing is pruned;
/// - a failed query changes nothing and prunes nothing; the known nodes are still connected
///   (one that dropped is connected again).
///
/// ```
/// use actor_remote::cluster::dns::{Answer, Membership};
/// let n = |s: &str| s.parse::<actor_core::NodeName>().unwrap();
/// let mut m = Membership::new(n("app@10.0.0.1"), true);
/// let first = m.on_answer(Answer::Complete(vec![n("app@10.0.0.1"), n("app@10.0.0.2"), n("app@10.0.0.3")]));
/// assert_eq!(first.connect, [n("app@10.0.0.2"), n("app@10.0.0.3")]);
/// // A truncated answer without 10.0.0.3 prunes nothing.
/// let cut = m.on_answer(Answer::Truncated(vec![n("app@10.0.0.2")]));
/// assert!(cut.prune.is_empty() && cut.kept.is_some());
/// // A failed query neither.
/// assert!(m.on_answer(Answer::Failed("timed out".into())).prune.is_empty());
/// // A whole answer without it prunes it.
/// let whole = m.on_answer(Answer::Complete(vec![n("app@10.0.0.1"), n("app@10.0.0.2")]));
/// assert_eq!(whole.prune, [n("app@10.0.0.3")]);
/// ```
#[derive(Debug, Clone)]
pub struct Membership {
    me: NodeName,
    prune: bool,
    known: BTreeSet<NodeName>,
}

impl Membership {
    /// Nothing known yet; `me` (this node) is never connected nor pruned.
    pub fn new(me: NodeName, prune: bool) -> Self {
        Self {
            me,
            prune,
            known: BTreeSet::new(),
        }
    }

    /// The nodes known from the answers so far (without this node).
    pub fn known(&self) -> impl Iterator<Item = &NodeName> {
        self.known.iter()
    }

    /// Takes one poll's answer and says what to do.
    pub fn on_answer(&mut self, answer: Answer) -> Decision {
        match answer {
            Answer::Complete(nodes) => {
                let now = self.without_me(nodes);
                let appeared = now.difference(&self.known).cloned().collect();
                let missing: Vec<NodeName> = self.known.difference(&now).cloned().collect();
                let (prune, kept) = if self.prune || missing.is_empty() {
                    (missing, None)
                } else {
                    (Vec::new(), Some("prune is off".to_string()))
                };
                self.known = now;
                Decision {
                    connect: self.known.iter().cloned().collect(),
                    prune,
                    appeared,
                    kept,
                }
            }
            Answer::Truncated(nodes) => {
                let now = self.without_me(nodes);
                let appeared: Vec<NodeName> = now.difference(&self.known).cloned().collect();
                let missing = self.known.difference(&now).count();
                self.known.extend(now);
                Decision {
                    connect: self.known.iter().cloned().collect(),
                    prune: Vec::new(),
                    appeared,
                    kept: (missing > 0).then(|| {
                        format!("the answer was truncated: {missing} known node(s) missing from it may only have been cut off")
                    }),
                }
            }
            Answer::Failed(why) => Decision {
                connect: self.known.iter().cloned().collect(),
                prune: Vec::new(),
                appeared: Vec::new(),
                kept: Some(format!("the query failed: {why}")),
            },
        }
    }

    fn without_me(&self, nodes: Vec<NodeName>) -> BTreeSet<NodeName> {
        nodes.into_iter().filter(|n| *n != self.me).collect()
    }
}

/// The node `basename@ip` (DnsPoll, Kubernetes DNS: one node per address).
///
/// ```
/// use actor_remote::cluster::dns::node_at_ip;
/// assert_eq!(node_at_ip("app", "10.0.0.7".parse()?).unwrap().as_str(), "app@10.0.0.7");
/// assert!(node_at_ip("my app", "10.0.0.7".parse()?).is_err());
/// # Ok::<(), std::net::AddrParseError>(())
/// ```
///
/// # Errors
/// A message naming the name that is not valid (a basename with characters a node name
/// cannot have).
pub fn node_at_ip(basename: &str, ip: IpAddr) -> Result<NodeName, String> {
    let text = format!("{basename}@{ip}");
    NodeName::parse(&text).map_err(|e| format!("{text:?} is not a node name: {e}"))
}

/// The node `basename@host` for an SRV record's target (the trailing dot of the absolute
/// name is dropped: `app@app-0.app.default.svc.cluster.local`).
///
/// ```
/// use actor_remote::cluster::dns::node_at_host;
/// let node = node_at_host("app", "app-0.app.default.svc.cluster.local.").unwrap();
/// assert_eq!(node.as_str(), "app@app-0.app.default.svc.cluster.local");
/// ```
///
/// # Errors
/// A message naming the name that is not valid.
pub fn node_at_host(basename: &str, target: &str) -> Result<NodeName, String> {
    let host = target.strip_suffix('.').unwrap_or(target);
    let text = format!("{basename}@{host}");
    NodeName::parse(&text).map_err(|e| format!("{text:?} is not a node name: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> NodeName {
        s.parse().unwrap()
    }

    fn names(list: &[&str]) -> Vec<NodeName> {
        list.iter().map(|s| n(s)).collect()
    }

    #[test]
    fn a_whole_answer_connects_its_nodes_but_never_this_one() {
        let mut m = Membership::new(n("a@10.0.0.1"), true);
        let d = m.on_answer(Answer::Complete(names(&["a@10.0.0.1", "a@10.0.0.2"])));
        assert_eq!(d.connect, names(&["a@10.0.0.2"]));
        assert_eq!(d.appeared, names(&["a@10.0.0.2"]));
        assert!(d.prune.is_empty() && d.kept.is_none());
        // The same answer again: still connected (one that dropped comes back), nothing new.
        let d = m.on_answer(Answer::Complete(names(&["a@10.0.0.2", "a@10.0.0.1"])));
        assert_eq!(d.connect, names(&["a@10.0.0.2"]));
        assert!(d.appeared.is_empty());
    }

    #[test]
    fn a_node_missing_from_a_whole_answer_is_pruned_only_with_prune_on() {
        for prune in [true, false] {
            let mut m = Membership::new(n("a@10.0.0.1"), prune);
            m.on_answer(Answer::Complete(names(&["a@10.0.0.2", "a@10.0.0.3"])));
            let d = m.on_answer(Answer::Complete(names(&["a@10.0.0.2"])));
            if prune {
                assert_eq!(d.prune, names(&["a@10.0.0.3"]));
                assert!(d.kept.is_none());
            } else {
                assert!(d.prune.is_empty());
                assert_eq!(d.kept.as_deref(), Some("prune is off"));
            }
            assert_eq!(d.connect, names(&["a@10.0.0.2"]));
            // Pruned once: a later answer without it does not prune it again.
            assert!(m
                .on_answer(Answer::Complete(names(&["a@10.0.0.2"])))
                .prune
                .is_empty());
        }
    }

    #[test]
    fn an_empty_whole_answer_prunes_every_known_node() {
        let mut m = Membership::new(n("a@10.0.0.1"), true);
        m.on_answer(Answer::Complete(names(&["a@10.0.0.2", "a@10.0.0.3"])));
        let d = m.on_answer(Answer::Complete(Vec::new()));
        assert_eq!(d.prune, names(&["a@10.0.0.2", "a@10.0.0.3"]));
        assert!(d.connect.is_empty());
    }

    #[test]
    fn a_truncated_answer_never_prunes_and_adds_what_it_has() {
        let mut m = Membership::new(n("a@10.0.0.1"), true);
        m.on_answer(Answer::Complete(names(&["a@10.0.0.2", "a@10.0.0.3"])));
        let d = m.on_answer(Answer::Truncated(names(&["a@10.0.0.2", "a@10.0.0.4"])));
        assert!(d.prune.is_empty());
        assert!(d.kept.as_deref().unwrap().contains("truncated"), "{d:?}");
        assert_eq!(d.appeared, names(&["a@10.0.0.4"]));
        assert_eq!(
            d.connect,
            names(&["a@10.0.0.2", "a@10.0.0.3", "a@10.0.0.4"])
        );
        // The next whole answer decides: .3 and .4 are gone.
        let d = m.on_answer(Answer::Complete(names(&["a@10.0.0.2"])));
        assert_eq!(d.prune, names(&["a@10.0.0.3", "a@10.0.0.4"]));
    }

    #[test]
    fn a_failed_query_changes_nothing() {
        let mut m = Membership::new(n("a@10.0.0.1"), true);
        m.on_answer(Answer::Complete(names(&["a@10.0.0.2"])));
        let d = m.on_answer(Answer::Failed("SERVFAIL".into()));
        assert!(d.prune.is_empty() && d.appeared.is_empty());
        assert_eq!(d.connect, names(&["a@10.0.0.2"]));
        assert!(d.kept.as_deref().unwrap().contains("SERVFAIL"));
        assert_eq!(
            m.known().cloned().collect::<Vec<_>>(),
            names(&["a@10.0.0.2"])
        );
        // A node that went away and came back between two whole answers appears again.
        m.on_answer(Answer::Complete(Vec::new()));
        let d = m.on_answer(Answer::Complete(names(&["a@10.0.0.2"])));
        assert_eq!(d.appeared, names(&["a@10.0.0.2"]));
    }

    #[test]
    fn node_names_from_records() {
        assert_eq!(
            node_at_ip("app", "10.0.0.7".parse().unwrap()).unwrap(),
            n("app@10.0.0.7")
        );
        assert_eq!(
            node_at_ip("app", "fd00::7".parse().unwrap()).unwrap(),
            n("app@fd00::7")
        );
        assert_eq!(
            node_at_host("app", "app-0.app.default.svc.cluster.local.").unwrap(),
            n("app@app-0.app.default.svc.cluster.local")
        );
        assert!(node_at_ip("not valid", "10.0.0.7".parse().unwrap())
            .unwrap_err()
            .contains("not valid"));
    }
}
