//! A node's view of the mesh, as [`NodeState`](super::NodeState) keeps it: itself and every
//! peer being dialled or up and visible, as one digest ([`ViewDigest`], sent when a session
//! comes up) and in parts ([`ViewParts`], sent when two digests differ), with the names in
//! each part, so that the names of the parts two views differ in are found without walking
//! every peer.

use actor_core::NodeName;

use crate::wire::message::{ViewDigest, ViewParts, VIEW_PARTS};

/// See the module docs.
#[derive(Debug)]
pub(super) struct MeshView {
    digest: ViewDigest,
    parts: ViewParts,
    /// The names in each part, in the order they were added (a removed name's place is
    /// taken by the part's last).
    members: Vec<Vec<NodeName>>,
}

impl MeshView {
    /// The view of a node named `me` with no peers: itself.
    pub(super) fn new(me: &NodeName) -> Self {
        let mut view = Self {
            digest: ViewDigest::default(),
            parts: ViewParts::default(),
            members: vec![Vec::new(); VIEW_PARTS],
        };
        view.add(me);
        view
    }

    /// Adds `name` (the caller adds each name once).
    pub(super) fn add(&mut self, name: &NodeName) {
        self.digest.add(name);
        let part = self.parts.add(name);
        if let Some(part) = self.members.get_mut(part) {
            part.push(name.clone());
        }
    }

    /// Removes `name`, added before.
    pub(super) fn remove(&mut self, name: &NodeName) {
        self.digest.remove(name);
        let part = self.parts.remove(name);
        if let Some(part) = self.members.get_mut(part) {
            if let Some(at) = part.iter().position(|n| n == name) {
                part.swap_remove(at);
            }
        }
    }

    /// The digest of the whole view.
    pub(super) fn digest(&self) -> ViewDigest {
        self.digest
    }

    /// The view's parts, to send.
    pub(super) fn parts(&self) -> ViewParts {
        self.parts.clone()
    }

    /// Whether `theirs` differs from this view in any part (every part, if it has another
    /// number of them).
    pub(super) fn differs(&self, theirs: &ViewParts) -> bool {
        self.differing_parts(theirs) != 0
    }

    /// A bit per part whose digests differ from `theirs` (`VIEW_PARTS <= 64`, checked below).
    fn differing_parts(&self, theirs: &ViewParts) -> u64 {
        (0..VIEW_PARTS)
            .filter(|&part| !self.parts.same_part(theirs, part))
            .fold(0, |bits, part| bits | 1 << part)
    }

    /// The names of this view in the parts whose digests differ from `theirs`.
    pub(super) fn differing(&self, theirs: &ViewParts) -> impl Iterator<Item = &NodeName> {
        let differ = self.differing_parts(theirs);
        self.members
            .iter()
            .enumerate()
            .filter(move |(part, _)| differ >> part & 1 == 1)
            .flat_map(|(_, names)| names.iter())
    }
}

const _: () = assert!(VIEW_PARTS <= 64, "MeshView::differing keeps a bit per part");

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<NodeName> {
        (0..n)
            .map(|i| NodeName::parse(&format!("n{i}@localhost")).unwrap())
            .collect()
    }

    fn view_of(all: &[NodeName]) -> MeshView {
        let mut view = MeshView::new(&all[0]);
        for name in &all[1..] {
            view.add(name);
        }
        view
    }

    #[test]
    fn views_of_the_same_set_agree_in_every_part_whatever_the_order() {
        let all = names(200);
        let a = view_of(&all);
        let reversed: Vec<NodeName> = all.iter().rev().cloned().collect();
        let b = view_of(&reversed);
        assert_eq!(a.digest(), b.digest());
        assert_eq!(a.parts(), b.parts());
        assert!(!a.differs(&b.parts()));
        assert_eq!(a.differing(&b.parts()).count(), 0);
    }

    #[test]
    fn only_the_parts_a_missing_name_falls_in_are_listed() {
        let all = names(500);
        let full = view_of(&all);
        let mut lacking = view_of(&all);
        let (x, y) = (&all[17], &all[301]);
        lacking.remove(x);
        lacking.remove(y);
        assert_ne!(full.digest(), lacking.digest());
        assert!(full.differs(&lacking.parts()));
        // The full view lists the names of x's and y's parts, x and y among them; far fewer
        // than all 500.
        let listed: Vec<&NodeName> = full.differing(&lacking.parts()).collect();
        assert!(listed.contains(&x) && listed.contains(&y), "{listed:?}");
        let parts = [ViewParts::part_of(x), ViewParts::part_of(y)];
        assert!(listed
            .iter()
            .all(|n| parts.contains(&ViewParts::part_of(n))));
        assert!(listed.len() < 60, "{} names listed", listed.len());
        // The view lacking them lists those parts' other names: the full one has them all.
        let back: Vec<&NodeName> = lacking.differing(&full.parts()).collect();
        assert!(!back.contains(&x) && !back.contains(&y));
        assert_eq!(back.len() + 2, listed.len());
        // Adding them back makes the views agree again.
        lacking.add(y);
        lacking.add(x);
        assert_eq!(full.parts(), lacking.parts());
        assert_eq!(full.digest(), lacking.digest());
    }

    #[test]
    fn parts_of_another_number_differ_everywhere() {
        let all = names(50);
        let view = view_of(&all);
        for sums in [Vec::new(), vec![0; VIEW_PARTS - 1], vec![0; VIEW_PARTS + 1]] {
            let theirs = ViewParts { sums };
            assert!(view.differs(&theirs));
            assert_eq!(view.differing(&theirs).count(), 50);
        }
    }
}
