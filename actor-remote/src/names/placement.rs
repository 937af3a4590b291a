//! Where a cluster-supervised child runs, and when a node starts one: sans-IO, for
//! [`ClusterSupervisor`](super::ClusterSupervisor).
//!
//! **Placement** is rendezvous hashing (highest random weight, a hash ring without virtual
//! nodes): each member scores `hash(member, child)` and the highest score owns the child
//! (ties, which need a 64-bit collision, go to the name that sorts lower). Every node computes
//! the same owner from the same members, and losing a member moves only the children it
//! owned. The hash is FNV-1a followed by a SplitMix64 finaliser: fixed, so nodes built by
//! different compilers agree.

use actor_core::NodeName;

/// The score of `member` for `child` (higher wins).
pub fn score(member: &NodeName, child: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in member
        .as_str()
        .bytes()
        .chain(std::iter::once(0xff))
        .chain(child.bytes())
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // SplitMix64's finaliser spreads FNV's weak low bits.
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The member that owns `child`: the highest [`score`], ties to the lower name; `None`
/// without members.
///
/// ```
/// use actor_core::NodeName;
/// use actor_remote::names::placement::owner;
/// let members: Vec<NodeName> = ["a@h", "b@h", "c@h"].iter().map(|n| n.parse().unwrap()).collect();
/// let first = owner("history:lobby", &members).cloned().unwrap();
/// // Any order of the same members gives the same owner; without its owner, another.
/// let mut reversed = members.clone();
/// reversed.reverse();
/// assert_eq!(owner("history:lobby", &reversed), Some(&first));
/// let rest: Vec<NodeName> = members.into_iter().filter(|m| *m != first).collect();
/// assert_ne!(owner("history:lobby", &rest), Some(&first));
/// ```
pub fn owner<'a>(
    child: &str,
    members: impl IntoIterator<Item = &'a NodeName>,
) -> Option<&'a NodeName> {
    members
        .into_iter()
        .max_by(|a, b| score(a, child).cmp(&score(b, child)).then(b.cmp(a)))
}

/// Whether node `me` starts `child` now: nobody holds its name, this node is not starting it
/// already, and `me` owns it among `members` (which include `me`).
pub fn should_start(
    child: &str,
    me: &NodeName,
    members: &[NodeName],
    held: bool,
    starting: bool,
) -> bool {
    !held && !starting && owner(child, members) == Some(me)
}

/// Restart intensity, as an OTP supervisor's: actor-core's, so both kinds of supervisor
/// count restarts the same way.
pub use actor_core::RestartIntensity as Intensity;

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<NodeName> {
        (0..n)
            .map(|i| NodeName::parse(&format!("n{i}@localhost")).unwrap())
            .collect()
    }

    #[test]
    fn every_order_of_members_gives_the_same_owner() {
        let members = names(5);
        for child in ["a", "room:lobby", "history", ""] {
            let want = owner(child, &members).cloned();
            let mut reversed = members.clone();
            reversed.reverse();
            assert_eq!(owner(child, &reversed).cloned(), want, "{child}");
        }
        assert_eq!(owner("a", &[]), None);
    }

    #[test]
    fn losing_a_member_moves_only_its_children() {
        let members = names(4);
        let children: Vec<String> = (0..200).map(|i| format!("child{i}")).collect();
        let before: Vec<NodeName> = children
            .iter()
            .map(|c| owner(c, &members).unwrap().clone())
            .collect();
        let survivors = &members[..3];
        let mut moved = 0;
        for (c, was) in children.iter().zip(&before) {
            let now = owner(c, survivors).unwrap();
            if was == &members[3] {
                moved += 1;
            } else {
                assert_eq!(now, was, "{c} moved though its node stayed");
            }
        }
        // Spread: each of 4 members owns some (a fixed hash, so this is deterministic).
        assert!((20..=80).contains(&moved), "{moved}");
    }

    #[test]
    fn only_the_owner_starts_and_only_when_nobody_holds_it() {
        let members = names(3);
        let own = owner("x", &members).unwrap().clone();
        let other = members.iter().find(|m| **m != own).unwrap();
        assert!(should_start("x", &own, &members, false, false));
        assert!(!should_start("x", other, &members, false, false));
        assert!(!should_start("x", &own, &members, true, false), "held");
        assert!(!should_start("x", &own, &members, false, true), "starting");
    }

    #[test]
    fn intensity_three_in_five_seconds() {
        use std::time::Duration;
        let t0 = tokio::time::Instant::now();
        let mut i = Intensity::new(3, Duration::from_secs(5));
        assert!(i.record(t0));
        assert!(i.record(t0 + Duration::from_secs(1)));
        assert!(i.record(t0 + Duration::from_secs(2)));
        assert!(!i.record(t0 + Duration::from_secs(3)), "4th within 5 s");
        let mut spread = Intensity::new(1, Duration::from_secs(5));
        for k in 0..5 {
            assert!(spread.record(t0 + Duration::from_secs(5 * k)));
        }
        assert!(!Intensity::new(0, Duration::from_secs(1)).record(t0));
    }
}
