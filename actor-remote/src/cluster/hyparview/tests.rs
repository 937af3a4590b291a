//! A simulated network of overlays: messages in FIFO order, a virtual clock, kills.

use std::collections::{BTreeSet, VecDeque};

use super::*;

struct Sim {
    nodes: Vec<Option<Overlay<u32>>>,
    queue: VecDeque<(u32, u32, Message<u32>)>,
    now: Instant,
    rng: Rng,
    delivered: u64,
}

impl Sim {
    fn new(n: u32, seed: u64) -> Self {
        let nodes = (0..n)
            .map(|i| {
                Some(Overlay::new(
                    i,
                    Config::default(),
                    seed ^ u64::from(i) << 20,
                ))
            })
            .collect();
        Self {
            nodes,
            queue: VecDeque::new(),
            now: Instant::now(),
            rng: Rng(seed),
            delivered: 0,
        }
    }

    fn collect(&mut self, i: u32) {
        let Some(node) = self.nodes[i as usize].as_mut() else {
            return;
        };
        while let Some(out) = node.poll_output() {
            if let Output::Send { to, msg } = out {
                self.queue.push_back((i, to, msg));
            }
        }
    }

    /// Delivers the oldest message in flight, if any (one to or from a dead node is lost:
    /// its connections died with it); false when none was in flight.
    fn deliver_one(&mut self) -> bool {
        let Some((from, to, msg)) = self.queue.pop_front() else {
            return false;
        };
        let now = self.now;
        if self.nodes[from as usize].is_none() {
            return true;
        }
        if let Some(node) = self.nodes[to as usize].as_mut() {
            node.handle_message(from, msg, now);
            self.delivered += 1;
            self.collect(to);
        }
        true
    }

    /// Delivers every message in flight (and those they cause).
    fn deliver(&mut self) {
        let mut budget = 10_000_000u64;
        while self.deliver_one() {
            budget -= 1;
            assert!(budget > 0, "the overlay never went quiet");
        }
    }

    /// Delivers at most `k` of the messages in flight, oldest first.
    fn deliver_some(&mut self, k: usize) {
        for _ in 0..k {
            if !self.deliver_one() {
                return;
            }
        }
    }

    /// Runs the clock for `span` in steps of 100 ms, delivering between steps.
    fn run(&mut self, span: Duration) {
        let end = self.now + span;
        while self.now < end {
            self.now += Duration::from_millis(100);
            for i in 0..self.nodes.len() as u32 {
                let now = self.now;
                if let Some(node) = self.nodes[i as usize].as_mut() {
                    if node.poll_timeout().is_some_and(|t| t <= now) {
                        node.handle_timeout(now);
                    }
                }
                self.collect(i);
            }
            self.deliver();
        }
    }

    fn join_all(&mut self) {
        let now = self.now;
        if let Some(first) = self.nodes[0].as_mut() {
            first.join(&[], now);
        }
        for i in 1..self.nodes.len() as u32 {
            let contact = self.rng.below(i as usize) as u32;
            if let Some(node) = self.nodes[i as usize].as_mut() {
                node.join(&[contact], now);
            }
            self.collect(i);
            self.deliver();
        }
    }

    fn kill(&mut self, victim: u32) {
        self.nodes[victim as usize] = None;
        let now = self.now;
        for i in 0..self.nodes.len() as u32 {
            if let Some(node) = self.nodes[i as usize].as_mut() {
                if node.is_active(&victim) {
                    node.connection_down(&victim, now); // its session drops
                }
            }
            self.collect(i);
        }
    }

    fn alive(&self) -> Vec<u32> {
        (0..self.nodes.len() as u32)
            .filter(|i| self.nodes[*i as usize].is_some())
            .collect()
    }

    fn node(&self, i: u32) -> &Overlay<u32> {
        self.nodes[i as usize].as_ref().expect("alive")
    }

    /// Checks the overlay: views bounded, neighbours alive and mutual, and the graph of
    /// active views connected. Returns the mean active view size.
    fn check(&self) -> f64 {
        let alive = self.alive();
        let config = Config::default();
        let mut total = 0;
        for &i in &alive {
            let node = self.node(i);
            let active: Vec<u32> = node.active().copied().collect();
            assert!(!active.is_empty(), "node {i} has no neighbour");
            assert!(active.len() <= config.active_size, "node {i}: {active:?}");
            assert!(node.passive().count() <= config.passive_size);
            for n in &active {
                assert!(self.nodes[*n as usize].is_some(), "node {i} holds dead {n}");
                assert!(self.node(*n).is_active(&i), "{i} holds {n}, not back");
            }
            total += active.len();
        }
        let mut seen = BTreeSet::from([alive[0]]);
        let mut todo = vec![alive[0]];
        while let Some(i) = todo.pop() {
            for n in self.node(i).active() {
                if seen.insert(*n) {
                    todo.push(*n);
                }
            }
        }
        assert_eq!(seen.len(), alive.len(), "the overlay is split");
        total as f64 / alive.len() as f64
    }
}

#[test]
fn a_thousand_nodes_converge_to_a_connected_bounded_overlay_and_heal_after_a_fifth_die() {
    let mut sim = Sim::new(1000, 7);
    sim.join_all();
    sim.run(Duration::from_secs(30));
    let mean = sim.check();
    println!(
        "after join: mean active view {mean:.2}, messages {}",
        sim.delivered
    );
    assert!(mean >= 3.0, "views barely filled: {mean}");
    // Passive views filled by the walks and shuffles.
    let passive: usize = sim
        .alive()
        .iter()
        .map(|i| sim.node(*i).passive().count())
        .sum();
    assert!(
        passive / 1000 >= 20,
        "passive views too small: {}",
        passive / 1000
    );

    let mut victims = BTreeSet::new();
    while victims.len() < 200 {
        victims.insert(sim.rng.below(1000) as u32);
    }
    for v in victims {
        sim.kill(v);
    }
    sim.deliver();
    sim.run(Duration::from_secs(60));
    let mean = sim.check();
    println!("after 200 deaths: mean active view {mean:.2}");
    assert!(mean >= 3.0, "views barely filled after the deaths: {mean}");
}

#[test]
fn runs_with_one_seed_are_identical() {
    let views = |seed| {
        let mut sim = Sim::new(100, seed);
        sim.join_all();
        sim.run(Duration::from_secs(10));
        (0..100)
            .map(|i| sim.node(i).active().copied().collect::<Vec<_>>())
            .collect::<Vec<_>>()
    };
    assert_eq!(views(3), views(3));
    assert_ne!(views(3), views(4));
}

#[test]
fn a_join_through_a_dead_contact_tries_the_next_one() {
    let now = Instant::now();
    let mut n = Overlay::new(9u32, Config::default(), 1);
    n.join(&[1, 2], now);
    assert_eq!(
        n.poll_output(),
        Some(Output::Send {
            to: 1,
            msg: Message::Join
        })
    );
    let later = now + Config::default().neighbor_timeout;
    n.handle_timeout(later);
    assert_eq!(
        n.poll_output(),
        Some(Output::Send {
            to: 2,
            msg: Message::Join
        })
    );
    n.handle_message(2, Message::Neighbor { high: true }, later);
    assert_eq!(n.poll_output(), Some(Output::NeighborUp(2)));
    assert_eq!(
        n.poll_output(),
        Some(Output::Send {
            to: 2,
            msg: Message::NeighborReply { accepted: true }
        })
    );
    assert!(n.is_active(&2));
}

/// Node 0, the first of its overlay, with an active view of `active_size`.
fn first_node(active_size: usize) -> (Overlay<u32>, Instant) {
    let now = Instant::now();
    let config = Config {
        active_size,
        ..Config::default()
    };
    let mut n = Overlay::new(0u32, config, 1);
    n.join(&[], now);
    (n, now)
}

#[test]
fn a_full_view_refuses_low_priority_and_makes_room_for_high() {
    let (mut n, now) = first_node(2);
    for peer in [1, 2] {
        n.handle_message(peer, Message::Neighbor { high: false }, now);
    }
    while n.poll_output().is_some() {}
    n.handle_message(3, Message::Neighbor { high: false }, now);
    assert_eq!(
        n.poll_output(),
        Some(Output::Send {
            to: 3,
            msg: Message::NeighborReply { accepted: false }
        })
    );
    assert!(n.passive().any(|p| *p == 3));
    n.handle_message(4, Message::Neighbor { high: true }, now);
    let outs: Vec<_> = std::iter::from_fn(|| n.poll_output()).collect();
    assert!(n.is_active(&4) && n.active().count() == 2, "{outs:?}");
    let dropped = outs
        .iter()
        .find_map(|o| match o {
            Output::Send {
                to,
                msg: Message::Disconnect,
            } => Some(*to),
            _ => None,
        })
        .expect("a neighbour dropped");
    assert!(outs.contains(&Output::NeighborDown(dropped)));
    assert!(
        n.passive().any(|p| *p == dropped),
        "the dropped one stays passive"
    );
}

#[test]
fn an_unanswered_neighbor_request_takes_the_node_out_of_the_passive_view() {
    let now = Instant::now();
    let mut n = Overlay::new(0u32, Config::default(), 1);
    n.join(&[], now);
    n.handle_message(1, Message::Neighbor { high: true }, now);
    n.handle_message(1, Message::ShuffleReply { nodes: vec![5] }, now);
    while n.poll_output().is_some() {}
    n.connection_down(&1, now);
    let outs: Vec<_> = std::iter::from_fn(|| n.poll_output()).collect();
    assert!(outs.contains(&Output::NeighborDown(1)));
    assert!(outs.contains(&Output::Send {
        to: 5,
        msg: Message::Neighbor { high: true }
    }));
    n.handle_timeout(now + Config::default().neighbor_timeout);
    assert_eq!(
        n.members(),
        BTreeSet::new(),
        "neither the failed nor the silent node is kept"
    );
}

/// Every node joins through node 0 at once (all the joins in flight together, as when a
/// cluster's nodes start with one seed node): node 0 takes each joiner and drops a random
/// neighbour for it, so joiners are dropped as fast as they come, and two joiners whose
/// walks ended at each other can be left holding only each other. Without a way out, such
/// a pair stays apart: every other node's view is full and refuses its low-priority
/// requests.
fn join_storm(n: u32, seed: u64) -> Sim {
    let mut sim = Sim::new(n, seed);
    let now = sim.now;
    if let Some(first) = sim.nodes[0].as_mut() {
        first.join(&[], now);
    }
    for i in 1..n {
        if let Some(node) = sim.nodes[i as usize].as_mut() {
            node.join(&[0], now);
        }
        sim.collect(i);
        // The joins overlap: a few of the messages in flight are delivered between two.
        let some = sim.rng.below(8);
        sim.deliver_some(some);
    }
    sim.deliver();
    sim
}

/// The nodes not reached from node 0 through active views.
fn apart(sim: &Sim) -> Vec<u32> {
    let mut seen = BTreeSet::from([0]);
    let mut todo = vec![0];
    while let Some(i) = todo.pop() {
        for n in sim.node(i).active() {
            if seen.insert(*n) {
                todo.push(*n);
            }
        }
    }
    sim.alive()
        .into_iter()
        .filter(|i| !seen.contains(i))
        .collect()
}

/// Seeds 0-39 of 300 nodes joining through node 0 at once: some leave nodes apart right
/// after the storm (18 of 40 before `Message::Sample` and answers matched to their
/// requests, 5 after); every seed's overlay is whole within 2 s of virtual time (seed 26
/// took 11 s before), with mutual, bounded views.
#[test]
fn a_join_storm_through_one_node_leaves_no_island() {
    let mut islands = 0;
    for seed in 0..40 {
        let mut sim = join_storm(300, seed);
        islands += usize::from(!apart(&sim).is_empty());
        let mut took = Duration::ZERO;
        while !apart(&sim).is_empty() {
            assert!(
                took < Duration::from_secs(2),
                "seed {seed}: {:?} still apart from node 0 after {took:?}",
                apart(&sim)
            );
            sim.run(Duration::from_millis(100));
            took += Duration::from_millis(100);
        }
        sim.run(Duration::from_secs(5));
        sim.check();
    }
    assert!(
        islands < 10,
        "{islands} of 40 seeds left nodes apart at first"
    );
}

/// An acceptance of a request the node has since dropped its peer after is not taken for the
/// answer to a later request: the peer, told `Disconnect` after it accepted, does not hold
/// the node, so the node must not hold it either.
#[test]
fn a_stale_acceptance_is_not_the_answer_to_a_later_request() {
    let (mut a, now) = first_node(1);
    // A walk ends at a: it takes 1 (a high-priority request goes), then 2, dropping 1.
    a.handle_message(9, Message::ForwardJoin { node: 1, ttl: 0 }, now);
    a.handle_message(9, Message::ForwardJoin { node: 2, ttl: 0 }, now);
    assert!(a.is_active(&2) && !a.is_active(&1));
    // 2 goes down; a asks a passive node with high priority: 1, whose first answer is due.
    a.connection_down(&2, now);
    let outs: Vec<_> = std::iter::from_fn(|| a.poll_output()).collect();
    assert!(
        outs.contains(&Output::Send {
            to: 1,
            msg: Message::Neighbor { high: true }
        }),
        "{outs:?}"
    );
    // 1 accepted the first request (then read the Disconnect); the answer comes first.
    a.handle_message(1, Message::NeighborReply { accepted: true }, now);
    assert!(
        !a.is_active(&1),
        "an earlier request's answer promotes nobody"
    );
    // The answer to the latest request decides.
    a.handle_message(1, Message::NeighborReply { accepted: true }, now);
    assert!(a.is_active(&1));
}
