//! Process groups, sans-IO: one node's view of every scope's groups, as `:pg`.
//!
//! Each node owns the memberships of its own actors: it alone joins and leaves them, and
//! tells its peers (a join, a leave, and a sync of every membership it owns when a peer
//! connects, which *replaces* what the peer knew of that node, so a sync received twice
//! changes nothing). A pid joined twice is listed twice, as in `:pg`.

use std::collections::BTreeMap;
use std::sync::Arc;

use actor_core::{NodeName, Pid};

use super::table::Fnv;

/// Whether a [`GroupEvent`] is a join or a leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupChange {
    /// The pids joined.
    Join,
    /// The pids left (or exited, or their node went down).
    Leave,
}

/// A change in a group, as `:pg`'s `{ref, :join | :leave, group, [pid]}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEvent {
    /// The scope.
    pub scope: Arc<str>,
    /// The group.
    pub group: Arc<str>,
    /// Join or leave.
    pub change: GroupChange,
    /// The pids that joined or left (a pid joined twice appears twice).
    pub pids: Vec<Pid>,
}

/// A scope's groups: group → members.
pub type ScopeGroups = BTreeMap<Arc<str>, Vec<Pid>>;

/// One node's view of every scope's groups.
#[derive(Debug, Clone, Default)]
pub struct Groups {
    scopes: BTreeMap<Arc<str>, ScopeGroups>,
}

impl Groups {
    /// Adds `pids` to `group` of `scope`; returns the join event.
    pub fn join(&mut self, scope: &Arc<str>, group: &Arc<str>, pids: Vec<Pid>) -> GroupEvent {
        self.scopes
            .entry(scope.clone())
            .or_default()
            .entry(group.clone())
            .or_default()
            .extend(pids.iter().cloned());
        GroupEvent {
            scope: scope.clone(),
            group: group.clone(),
            change: GroupChange::Join,
            pids,
        }
    }

    /// Removes one instance of each of `pids` from the group; returns the leave event of
    /// those that were members, or `None` when none was (`:not_joined`).
    pub fn leave(&mut self, scope: &str, group: &str, pids: &[Pid]) -> Option<GroupEvent> {
        let (scope_key, groups) = self.scopes.get_key_value(scope)?;
        let scope_key = scope_key.clone();
        let group_key = groups.get_key_value(group)?.0.clone();
        let members = self.scopes.get_mut(scope)?.get_mut(group)?;
        let mut left = Vec::new();
        for pid in pids {
            if let Some(i) = members.iter().position(|p| p == pid) {
                left.push(members.remove(i));
            }
        }
        self.tidy(&scope_key, &group_key);
        (!left.is_empty()).then_some(GroupEvent {
            scope: scope_key,
            group: group_key,
            change: GroupChange::Leave,
            pids: left,
        })
    }

    /// Removes every membership `keep` refuses; returns the leave events.
    fn remove_where(&mut self, mut gone: impl FnMut(&Arc<str>, &Pid) -> bool) -> Vec<GroupEvent> {
        let mut events = Vec::new();
        for (scope, groups) in &mut self.scopes {
            for (group, members) in groups.iter_mut() {
                let mut left = Vec::new();
                members.retain(|p| {
                    let g = gone(scope, p);
                    if g {
                        left.push(p.clone());
                    }
                    !g
                });
                if !left.is_empty() {
                    events.push(GroupEvent {
                        scope: scope.clone(),
                        group: group.clone(),
                        change: GroupChange::Leave,
                        pids: left,
                    });
                }
            }
            groups.retain(|_, members| !members.is_empty());
        }
        self.scopes.retain(|_, groups| !groups.is_empty());
        events
    }

    /// Drops every membership of an actor that exited.
    pub fn exited(&mut self, pid: &Pid) -> Vec<GroupEvent> {
        self.remove_where(|_, p| p == pid)
    }

    /// Drops every membership of the actors of `node`, which went down.
    pub fn node_down(&mut self, node: &NodeName) -> Vec<GroupEvent> {
        self.remove_where(|_, p| p.node() == node)
    }

    /// Peer `from` tells every membership it owns: they replace what this node knew of
    /// `from`'s actors (pids not of `from` are ignored). Returns the events: leaves first.
    pub fn sync_from(
        &mut self,
        from: &NodeName,
        owned: Vec<(Arc<str>, Arc<str>, Vec<Pid>)>,
    ) -> Vec<GroupEvent> {
        let mut before: BTreeMap<(Arc<str>, Arc<str>), Vec<Pid>> = BTreeMap::new();
        for (scope, groups) in &self.scopes {
            for (group, members) in groups {
                let theirs: Vec<Pid> = members
                    .iter()
                    .filter(|p| p.node() == from)
                    .cloned()
                    .collect();
                if !theirs.is_empty() {
                    before.insert((scope.clone(), group.clone()), theirs);
                }
            }
        }
        let mut after: BTreeMap<(Arc<str>, Arc<str>), Vec<Pid>> = BTreeMap::new();
        for (scope, group, pids) in owned {
            after
                .entry((scope, group))
                .or_default()
                .extend(pids.into_iter().filter(|p| p.node() == from));
        }
        let mut events = Vec::new();
        for ((scope, group), mut old) in before {
            let new = after.get(&(scope.clone(), group.clone()));
            // What is in `old` beyond `new`, one instance per instance.
            for pid in new.into_iter().flatten() {
                if let Some(i) = old.iter().position(|p| p == pid) {
                    old.remove(i);
                }
            }
            if !old.is_empty() {
                events.extend(self.leave(&scope, &group, &old));
            }
        }
        for ((scope, group), mut new) in after {
            let have: Vec<Pid> = self
                .members(&scope, &group)
                .into_iter()
                .filter(|p| p.node() == from)
                .collect();
            for pid in &have {
                if let Some(i) = new.iter().position(|p| p == pid) {
                    new.remove(i);
                }
            }
            if !new.is_empty() {
                events.push(self.join(&scope, &group, new));
            }
        }
        events
    }

    fn tidy(&mut self, scope: &str, group: &str) {
        if let Some(groups) = self.scopes.get_mut(scope) {
            if groups.get(group).is_some_and(Vec::is_empty) {
                groups.remove(group);
            }
            if groups.is_empty() {
                self.scopes.remove(scope);
            }
        }
    }

    /// The members of a group, cluster-wide.
    pub fn members(&self, scope: &str, group: &str) -> Vec<Pid> {
        self.scopes
            .get(scope)
            .and_then(|g| g.get(group))
            .cloned()
            .unwrap_or_default()
    }

    /// The groups of a scope that have members, sorted.
    pub fn which_groups(&self, scope: &str) -> Vec<Arc<str>> {
        self.scopes
            .get(scope)
            .map(|g| g.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// A scope's groups and members.
    pub fn scope(&self, scope: &str) -> ScopeGroups {
        self.scopes.get(scope).cloned().unwrap_or_default()
    }

    /// The memberships of `node`'s actors: what it tells a peer that connects.
    pub fn owned(&self, node: &NodeName) -> Vec<(Arc<str>, Arc<str>, Vec<Pid>)> {
        let mut out = Vec::new();
        for (scope, groups) in &self.scopes {
            for (group, members) in groups {
                let mine: Vec<Pid> = members
                    .iter()
                    .filter(|p| p.node() == node)
                    .cloned()
                    .collect();
                if !mine.is_empty() {
                    out.push((scope.clone(), group.clone(), mine));
                }
            }
        }
        out
    }

    /// Every node that has members here.
    pub fn owned_nodes(&self) -> Vec<NodeName> {
        let mut nodes: Vec<NodeName> = self
            .scopes
            .values()
            .flat_map(|g| g.values().flatten().map(|p| p.node().clone()))
            .collect();
        nodes.sort();
        nodes.dedup();
        nodes
    }

    /// A digest of every scope, equal on two nodes that agree (members compared as sorted
    /// multisets, since `:pg` keeps no order across nodes).
    pub fn digest(&self) -> u64 {
        let mut h = Fnv::default();
        for (scope, groups) in &self.scopes {
            for (group, members) in groups {
                h.write(scope.as_bytes());
                h.write(&[0]);
                h.write(group.as_bytes());
                h.write(&[0]);
                let mut sorted = members.clone();
                sorted.sort();
                for pid in sorted {
                    h.write(pid.node().as_str().as_bytes());
                    h.write(&pid.creation().to_be_bytes());
                    h.write(&pid.id().to_be_bytes());
                }
            }
        }
        h.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(i: usize) -> NodeName {
        NodeName::unchecked(&format!("n{i}@localhost"))
    }

    fn pid(i: usize, id: u64) -> Pid {
        Pid::new(node(i), 1, id)
    }

    fn s(x: &str) -> Arc<str> {
        x.into()
    }

    #[test]
    fn join_twice_lists_twice_and_leave_removes_one() {
        let mut g = Groups::default();
        g.join(&s("pg"), &s("a"), vec![pid(0, 1)]);
        g.join(&s("pg"), &s("a"), vec![pid(0, 1)]);
        assert_eq!(g.members("pg", "a"), vec![pid(0, 1), pid(0, 1)]);
        let left = g.leave("pg", "a", &[pid(0, 1)]).unwrap();
        assert_eq!(left.pids, vec![pid(0, 1)]);
        assert_eq!(g.members("pg", "a"), vec![pid(0, 1)]);
        assert!(g.leave("pg", "a", &[pid(0, 2)]).is_none(), "not joined");
        assert!(
            g.leave("pg", "nope", &[pid(0, 1)]).is_none(),
            "unknown group"
        );
        g.leave("pg", "a", &[pid(0, 1)]).unwrap();
        assert!(g.which_groups("pg").is_empty(), "an empty group is gone");
    }

    #[test]
    fn exits_and_node_downs_purge_members_with_leave_events() {
        let mut g = Groups::default();
        g.join(&s("pg"), &s("a"), vec![pid(0, 1), pid(1, 1), pid(1, 2)]);
        g.join(&s("other"), &s("b"), vec![pid(1, 1)]);
        let events = g.exited(&pid(1, 1));
        assert_eq!(events.len(), 2);
        assert!(events.iter().all(|e| e.change == GroupChange::Leave));
        assert_eq!(g.members("pg", "a"), vec![pid(0, 1), pid(1, 2)]);
        assert!(g.which_groups("other").is_empty());
        let events = g.node_down(&node(1));
        assert_eq!(events[0].pids, vec![pid(1, 2)]);
        assert_eq!(g.members("pg", "a"), vec![pid(0, 1)]);
    }

    #[test]
    fn a_sync_replaces_the_peers_memberships_and_is_idempotent() {
        let mut g = Groups::default();
        g.join(&s("pg"), &s("a"), vec![pid(1, 1), pid(1, 9), pid(0, 1)]);
        let owned = vec![
            (s("pg"), s("a"), vec![pid(1, 1)]),
            (s("pg"), s("b"), vec![pid(1, 2)]),
        ];
        let events = g.sync_from(&node(1), owned.clone());
        assert_eq!(events[0].change, GroupChange::Leave);
        assert_eq!(events[0].pids, vec![pid(1, 9)]);
        assert_eq!(events[1].change, GroupChange::Join);
        assert_eq!(events[1].pids, vec![pid(1, 2)]);
        let mut a = g.members("pg", "a");
        a.sort();
        assert_eq!(a, vec![pid(0, 1), pid(1, 1)]);
        assert!(
            g.sync_from(&node(1), owned).is_empty(),
            "a second sync changes nothing"
        );
        // A pid not of the sender is ignored.
        assert!(g
            .sync_from(&node(1), vec![(s("pg"), s("a"), vec![pid(2, 1)])])
            .iter()
            .all(|e| e.change == GroupChange::Leave));
        assert_eq!(g.owned(&node(0)), vec![(s("pg"), s("a"), vec![pid(0, 1)])]);
    }

    #[test]
    fn the_digest_ignores_member_order() {
        let (mut a, mut b) = (Groups::default(), Groups::default());
        a.join(&s("pg"), &s("g"), vec![pid(0, 1), pid(1, 1)]);
        b.join(&s("pg"), &s("g"), vec![pid(1, 1)]);
        assert_ne!(a.digest(), b.digest());
        b.join(&s("pg"), &s("g"), vec![pid(0, 1)]);
        assert_eq!(a.digest(), b.digest());
    }
}
