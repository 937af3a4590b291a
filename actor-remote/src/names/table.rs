//! The global name table, sans-IO: what one node knows of the cluster's names, and the
//! merge of what its peers tell it, with the conflict rule.
//!
//! Each node is the *owner* of the registrations of its own actors: it alone adds them and
//! tells its peers (a register, an unregister, a sync of all it owns when a peer connects).
//! A peer's word about one of its own actors is taken as it is, unless the name is held by
//! another pid: then [`Resolve`] decides, the same way on every node, so every node ends with
//! the same table whatever order the messages came in (the unit tests drive that with random
//! orders).

use std::collections::BTreeMap;
use std::sync::Arc;

use actor_core::{NodeName, Pid};

/// What to do when two nodes' tables name the same name for different actors (after a
/// partition heals, or two nodes registered it at the same time), as `:global`'s resolve
/// functions. Every node must use the same one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Resolve {
    /// `:global.random_exit_name/3`, the default: the actor on the node whose name sorts
    /// lower keeps the name (for two actors of one node, the lower pid); the other is killed
    /// (untrappable) with an info log `global: Name conflict terminating {name, pid}`.
    #[default]
    KillLoser,
    /// `:global.random_notify_name/3`: the same winner; the loser keeps running, unregistered,
    /// and a [`NameConflict`] is published on its node.
    NotifyLoser,
    /// `:global.notify_all_name/3`: neither keeps the name; both keep running, and a
    /// [`NameConflict`] is published on each one's node.
    UnregisterBoth,
}

/// A conflict this node resolved about one of its own actors, as `{:global_name_conflict,
/// name}` (or `{…, name, other_pid}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameConflict {
    /// The name.
    pub name: Arc<str>,
    /// This node's actor that lost the name.
    pub loser: Pid,
    /// The other actor: the one that keeps the name, unless the resolution was
    /// [`Resolve::UnregisterBoth`].
    pub other: Pid,
    /// How it was resolved.
    pub resolve: Resolve,
}

/// What the table asks its driver to do after a merge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameEffect {
    /// A local actor lost a conflict under [`Resolve::KillLoser`]: kill it and log.
    Kill(NameConflict),
    /// A local actor lost a conflict under another resolution: publish it.
    Notify(NameConflict),
    /// An entry this node owns was dropped: tell the peers (`Unregister`).
    Dropped {
        /// The name.
        name: Arc<str>,
        /// The local actor that held it.
        pid: Pid,
    },
}

/// Why [`NameTable::register`] refused, as `:global.register_name/2`'s `:no`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taken {
    /// The actor that holds the name.
    pub holder: Pid,
}

/// One node's table of global names.
#[derive(Debug, Clone)]
pub struct NameTable {
    me: NodeName,
    resolve: Resolve,
    names: BTreeMap<Arc<str>, Pid>,
}

impl NameTable {
    /// An empty table of node `me`.
    pub fn new(me: NodeName, resolve: Resolve) -> Self {
        Self {
            me,
            resolve,
            names: BTreeMap::new(),
        }
    }

    /// The resolution in force.
    pub fn resolve(&self) -> Resolve {
        self.resolve
    }

    /// Changes the resolution for later conflicts.
    pub fn set_resolve(&mut self, resolve: Resolve) {
        self.resolve = resolve;
    }

    /// The actor holding `name`.
    pub fn whereis(&self, name: &str) -> Option<&Pid> {
        self.names.get(name)
    }

    /// Every name, sorted.
    pub fn names(&self) -> Vec<Arc<str>> {
        self.names.keys().cloned().collect()
    }

    /// Every entry, sorted by name.
    pub fn entries(&self) -> impl Iterator<Item = (&Arc<str>, &Pid)> {
        self.names.iter()
    }

    /// The entries whose actor lives on this node: what it tells a peer that connects.
    pub fn owned(&self) -> Vec<(Arc<str>, Pid)> {
        self.names
            .iter()
            .filter(|(_, pid)| *pid.node() == self.me)
            .map(|(n, p)| (n.clone(), p.clone()))
            .collect()
    }

    /// Registers `name` for the local actor `pid`. Registering a name again for its holder
    /// succeeds.
    ///
    /// # Errors
    /// [`Taken`] with the holder, when another actor holds the name.
    pub fn register(&mut self, name: Arc<str>, pid: Pid) -> Result<(), Taken> {
        match self.names.get(&name) {
            Some(holder) if *holder != pid => Err(Taken {
                holder: holder.clone(),
            }),
            _ => {
                self.names.insert(name, pid);
                Ok(())
            }
        }
    }

    /// Removes `name`; returns who held it.
    pub fn unregister(&mut self, name: &str) -> Option<Pid> {
        self.names.remove(name)
    }

    /// Removes `name` if `pid` holds it (a peer's unregister); returns whether it did.
    pub fn unregister_if(&mut self, name: &str, pid: &Pid) -> bool {
        if self.names.get(name) == Some(pid) {
            self.names.remove(name);
            true
        } else {
            false
        }
    }

    /// Peer `from` says it registered `name` for its actor `pid`. A pid not of `from` is
    /// ignored (each node speaks for its own actors only).
    pub fn merge(&mut self, from: &NodeName, name: Arc<str>, pid: Pid) -> Vec<NameEffect> {
        if pid.node() != from || *from == self.me {
            return Vec::new();
        }
        let Some(current) = self.names.get(&name).cloned() else {
            self.names.insert(name, pid);
            return Vec::new();
        };
        if current == pid {
            return Vec::new();
        }
        let mut effects = Vec::new();
        let conflict = |loser: &Pid, other: &Pid| NameConflict {
            name: name.clone(),
            loser: loser.clone(),
            other: other.clone(),
            resolve: self.resolve,
        };
        match self.resolve {
            Resolve::KillLoser | Resolve::NotifyLoser => {
                let (winner, loser) = if pid < current {
                    (pid, current)
                } else {
                    (current, pid)
                };
                if *loser.node() == self.me {
                    let c = conflict(&loser, &winner);
                    effects.push(if self.resolve == Resolve::KillLoser {
                        NameEffect::Kill(c)
                    } else {
                        NameEffect::Notify(c)
                    });
                    effects.push(NameEffect::Dropped {
                        name: name.clone(),
                        pid: loser,
                    });
                }
                self.names.insert(name, winner);
            }
            Resolve::UnregisterBoth => {
                self.names.remove(&name);
                for (mine, other) in [(&current, &pid), (&pid, &current)] {
                    if *mine.node() == self.me {
                        effects.push(NameEffect::Notify(conflict(mine, other)));
                        effects.push(NameEffect::Dropped {
                            name: name.clone(),
                            pid: mine.clone(),
                        });
                    }
                }
            }
        }
        effects
    }

    /// Peer `from` tells every name it owns (when it connects): its entries not in `names`
    /// are stale and go, then each one is merged.
    pub fn sync_from(&mut self, from: &NodeName, names: Vec<(Arc<str>, Pid)>) -> Vec<NameEffect> {
        self.names
            .retain(|n, p| p.node() != from || names.iter().any(|(m, q)| m == n && q == p));
        let mut effects = Vec::new();
        for (name, pid) in names {
            effects.extend(self.merge(from, name, pid));
        }
        effects
    }

    /// Drops every name of an actor that exited; returns them.
    pub fn exited(&mut self, pid: &Pid) -> Vec<Arc<str>> {
        let gone: Vec<_> = self
            .names
            .iter()
            .filter(|(_, p)| *p == pid)
            .map(|(n, _)| n.clone())
            .collect();
        for name in &gone {
            self.names.remove(name);
        }
        gone
    }

    /// Drops every name of the actors of `node`, which went down; returns how many.
    pub fn node_down(&mut self, node: &NodeName) -> usize {
        let before = self.names.len();
        self.names.retain(|_, pid| pid.node() != node);
        before - self.names.len()
    }

    /// A digest of the whole table, equal on two nodes when their tables are (FNV-1a over the
    /// sorted entries, stable across processes and builds).
    pub fn digest(&self) -> u64 {
        let mut h = Fnv::default();
        for (name, pid) in &self.names {
            h.write(name.as_bytes());
            h.write(&[0]);
            h.write(pid.node().as_str().as_bytes());
            h.write(&pid.creation().to_be_bytes());
            h.write(&pid.id().to_be_bytes());
        }
        h.0
    }
}

/// FNV-1a, 64 bits.
#[derive(Debug)]
pub(crate) struct Fnv(pub(crate) u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    pub(crate) fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use proptest::prelude::*;

    use super::*;

    fn node(i: usize) -> NodeName {
        NodeName::unchecked(&format!("n{i}@localhost"))
    }

    fn pid(i: usize, id: u64) -> Pid {
        Pid::new(node(i), 1, id)
    }

    #[test]
    fn register_refuses_a_taken_name_and_accepts_its_holder_again() {
        let mut t = NameTable::new(node(0), Resolve::default());
        assert_eq!(t.register("a".into(), pid(0, 1)), Ok(()));
        assert_eq!(t.register("a".into(), pid(0, 1)), Ok(()));
        assert_eq!(
            t.register("a".into(), pid(0, 2)),
            Err(Taken { holder: pid(0, 1) })
        );
        assert_eq!(t.whereis("a"), Some(&pid(0, 1)));
        assert_eq!(t.unregister("a"), Some(pid(0, 1)));
        assert_eq!(t.whereis("a"), None);
    }

    #[test]
    fn a_conflict_keeps_the_pid_of_the_lower_node_and_kills_the_other() {
        // This node (n1) holds "leader"; n0, which sorts lower, says it holds it too.
        let mut t = NameTable::new(node(1), Resolve::KillLoser);
        t.register("leader".into(), pid(1, 7)).unwrap();
        let effects = t.merge(&node(0), "leader".into(), pid(0, 9));
        assert_eq!(t.whereis("leader"), Some(&pid(0, 9)));
        assert_eq!(
            effects,
            vec![
                NameEffect::Kill(NameConflict {
                    name: "leader".into(),
                    loser: pid(1, 7),
                    other: pid(0, 9),
                    resolve: Resolve::KillLoser,
                }),
                NameEffect::Dropped {
                    name: "leader".into(),
                    pid: pid(1, 7)
                },
            ]
        );
        // The winner's node keeps its actor and kills nothing.
        let mut w = NameTable::new(node(0), Resolve::KillLoser);
        w.register("leader".into(), pid(0, 9)).unwrap();
        assert_eq!(w.merge(&node(1), "leader".into(), pid(1, 7)), vec![]);
        assert_eq!(w.whereis("leader"), Some(&pid(0, 9)));
    }

    #[test]
    fn notify_loser_notifies_and_unregister_both_drops_the_name() {
        let mut t = NameTable::new(node(1), Resolve::NotifyLoser);
        t.register("x".into(), pid(1, 1)).unwrap();
        let effects = t.merge(&node(0), "x".into(), pid(0, 1));
        assert!(matches!(&effects[0], NameEffect::Notify(c) if c.loser == pid(1, 1)));
        assert_eq!(t.whereis("x"), Some(&pid(0, 1)));

        let mut t = NameTable::new(node(0), Resolve::UnregisterBoth);
        t.register("x".into(), pid(0, 1)).unwrap();
        let effects = t.merge(&node(1), "x".into(), pid(1, 1));
        assert_eq!(t.whereis("x"), None);
        assert!(
            matches!(&effects[0], NameEffect::Notify(c) if c.loser == pid(0, 1) && c.other == pid(1, 1))
        );
        assert!(matches!(&effects[1], NameEffect::Dropped { pid: p, .. } if *p == pid(0, 1)));
    }

    #[test]
    fn a_peer_speaks_only_for_its_own_actors() {
        let mut t = NameTable::new(node(0), Resolve::default());
        assert_eq!(t.merge(&node(1), "x".into(), pid(2, 1)), vec![]);
        assert_eq!(t.merge(&node(1), "y".into(), pid(0, 1)), vec![]);
        assert_eq!(t.whereis("x"), None);
        assert_eq!(t.whereis("y"), None);
    }

    #[test]
    fn a_sync_replaces_what_the_peer_owned_and_node_down_purges_it() {
        let mut t = NameTable::new(node(0), Resolve::default());
        t.merge(&node(1), "old".into(), pid(1, 1));
        t.merge(&node(1), "kept".into(), pid(1, 2));
        t.merge(&node(2), "other".into(), pid(2, 1));
        t.sync_from(
            &node(1),
            vec![("kept".into(), pid(1, 2)), ("new".into(), pid(1, 3))],
        );
        assert_eq!(t.names(), vec!["kept".into(), "new".into(), "other".into()]);
        assert_eq!(t.node_down(&node(1)), 2);
        assert_eq!(t.names(), vec![Arc::<str>::from("other")]);
        assert_eq!(t.exited(&pid(2, 1)), vec![Arc::<str>::from("other")]);
        assert!(t.names().is_empty());
    }

    #[test]
    fn the_digest_follows_the_entries() {
        let mut a = NameTable::new(node(0), Resolve::default());
        let mut b = NameTable::new(node(1), Resolve::default());
        assert_eq!(a.digest(), b.digest());
        a.register("x".into(), pid(0, 1)).unwrap();
        assert_ne!(a.digest(), b.digest());
        b.merge(&node(0), "x".into(), pid(0, 1));
        assert_eq!(a.digest(), b.digest());
    }

    /// The messages of the names protocol that the simulation carries.
    #[derive(Debug, Clone)]
    enum Msg {
        Sync(Vec<(Arc<str>, Pid)>),
        Unregister(Arc<str>, Pid),
    }

    /// `n` nodes, each having registered `regs` (name index per actor) while cut off, then
    /// connected all at once: every node syncs its owned entries to every other, and each
    /// message is delivered in the order `picks` chooses among the links (FIFO per link, as a
    /// session is). Returns every node's final table.
    fn simulate(n: usize, regs: &[Vec<u8>], picks: &[usize], resolve: Resolve) -> Vec<NameTable> {
        let mut tables: Vec<_> = (0..n).map(|i| NameTable::new(node(i), resolve)).collect();
        for (i, names) in regs.iter().enumerate().take(n) {
            for (id, name) in names.iter().enumerate() {
                // A node refuses a name it holds already, as register does.
                let _ = tables[i].register(format!("name{name}").into(), pid(i, id as u64));
            }
        }
        // links[from][to]
        let mut links: Vec<Vec<VecDeque<Msg>>> = vec![vec![VecDeque::new(); n]; n];
        for (from, table) in tables.iter().enumerate() {
            for (to, link) in links[from].iter_mut().enumerate() {
                if to != from {
                    link.push_back(Msg::Sync(table.owned()));
                }
            }
        }
        let mut pick = picks.iter().cycle();
        loop {
            let busy: Vec<(usize, usize)> = (0..n)
                .flat_map(|f| (0..n).map(move |t| (f, t)))
                .filter(|&(f, t)| !links[f][t].is_empty())
                .collect();
            if busy.is_empty() {
                break;
            }
            let (from, to) = busy[pick.next().copied().unwrap_or(0) % busy.len()];
            let Some(msg) = links[from][to].pop_front() else {
                continue;
            };
            let effects = match msg {
                Msg::Sync(names) => tables[to].sync_from(&node(from), names),
                Msg::Unregister(name, pid) => {
                    tables[to].unregister_if(&name, &pid);
                    Vec::new()
                }
            };
            for effect in effects {
                match effect {
                    NameEffect::Kill(c) => {
                        // The loser dies: its node drops every name of it and tells the peers.
                        for name in tables[to].exited(&c.loser) {
                            for (peer, link) in links[to].iter_mut().enumerate() {
                                if peer != to {
                                    link.push_back(Msg::Unregister(name.clone(), c.loser.clone()));
                                }
                            }
                        }
                    }
                    NameEffect::Dropped { name, pid } => {
                        for (peer, link) in links[to].iter_mut().enumerate() {
                            if peer != to {
                                link.push_back(Msg::Unregister(name.clone(), pid.clone()));
                            }
                        }
                    }
                    NameEffect::Notify(_) => {}
                }
            }
        }
        tables
    }

    fn entries(t: &NameTable) -> Vec<(Arc<str>, Pid)> {
        t.entries().map(|(n, p)| (n.clone(), p.clone())).collect()
    }

    proptest! {
        /// Merging in any order converges: every node ends with the same table, and it is the
        /// one the resolution says (the lowest pid of each name, or no entry for a name two
        /// nodes held under `UnregisterBoth`).
        #[test]
        fn merging_in_any_order_converges(
            n in 2usize..5,
            regs in proptest::collection::vec(proptest::collection::vec(0u8..4, 0..4), 5),
            picks in proptest::collection::vec(0usize..64, 1..200),
            resolve in prop_oneof![
                Just(Resolve::KillLoser),
                Just(Resolve::NotifyLoser),
                Just(Resolve::UnregisterBoth),
            ],
        ) {
            let tables = simulate(n, &regs, &picks, resolve);
            let first = entries(&tables[0]);
            for t in &tables[1..] {
                prop_assert_eq!(&entries(t), &first);
            }
            // What the resolution says, from the registrations alone.
            let mut holders: BTreeMap<Arc<str>, Vec<Pid>> = BTreeMap::new();
            for (i, names) in regs.iter().enumerate().take(n) {
                let mut seen = std::collections::BTreeSet::new();
                for (id, name) in names.iter().enumerate() {
                    if seen.insert(*name) {
                        holders.entry(format!("name{name}").into()).or_default().push(pid(i, id as u64));
                    }
                }
            }
            let expected: Vec<(Arc<str>, Pid)> = holders
                .into_iter()
                .filter_map(|(name, pids)| match resolve {
                    Resolve::UnregisterBoth if pids.len() > 1 => None,
                    _ => pids.into_iter().min().map(|p| (name, p)),
                })
                .collect();
            prop_assert_eq!(first, expected);
        }
    }
}
