//! HyParView (Leitão, Pereira, Rodrigues, DSN 2007), sans-IO: a partial-mesh membership
//! in which each node keeps a small *active view* (the peers it keeps a session with) and a
//! larger *passive view* (known nodes, no session), refreshed by random walks and shuffles.
//!
//! [`Overlay`] is the state machine of one node. Its inputs are the messages other nodes
//! sent it ([`Overlay::handle_message`]), the clock ([`Overlay::handle_timeout`]) and the
//! loss of a neighbour's connection ([`Overlay::connection_down`]); its outputs are polled
//! with [`Overlay::poll_output`]: messages to send and changes of the active view. It does no
//! IO, never reads the clock, and draws its random choices from a seeded generator, so two
//! runs with one seed and one input sequence make the same choices (the simulated network
//! of 1,000 nodes in its tests relies on it).
//!
//! The protocol, as the paper's:
//! - **Join**: a new node sends `Join` to a contact, which takes it into its active view and
//!   sends a `ForwardJoin` random walk (`ttl` = [`Config::active_walk`]) through each of its
//!   other neighbours; the walk's node at `ttl == passive_walk` keeps the newcomer in its
//!   passive view, the last one (`ttl == 0`, or a node with one neighbour) takes it into its
//!   active view. Taking a node into the active view is a `Neighbor` request with high
//!   priority, which is never refused.
//! - **Neighbor**: a node with room in its active view asks a passive node to become a
//!   neighbour: with high priority when its active view is empty (never refused), with low
//!   priority otherwise (refused by a node whose active view is full). A request not answered
//!   within [`Config::neighbor_timeout`] is a dead node: it leaves the passive view.
//! - **Disconnect**: a node whose active view is full drops a random neighbour to make room,
//!   and tells it; the dropped node keeps the dropper in its passive view. Not in the
//!   paper: the `Disconnect` follows a `Sample` of the dropper's views, so the dropped node
//!   knows more of the overlay than the node that dropped it (when many nodes join through
//!   one contact at once, the contact drops joiners as fast as they come, and joiners left
//!   holding only each other knew little but the contact: an island).
//! - **Answers**: a node counts the `Neighbor` requests it sent each node whose answers are
//!   due; as answers come in the order of the requests, only the last is taken for the
//!   latest request (the paper's answers carry no request, and an acceptance of an earlier
//!   request the node had since dropped its peer after left it holding a neighbour that did
//!   not hold it).
//! - **Shuffle**: every [`Config::shuffle_interval`], a node sends a sample of itself, its
//!   active and its passive view on a random walk; the walk's last node answers with a sample
//!   of its passive view, and both merge what they received into their passive views.
//! - **Failure**: a neighbour's connection that goes down takes it out of both views; the
//!   node then asks passive nodes until its active view is full again.
//!
//! ```
//! use std::time::Instant;
//! use actor_remote::cluster::hyparview::{Config, Output, Overlay};
//!
//! let now = Instant::now();
//! let mut a = Overlay::new("a", Config::default(), 1);
//! let mut b = Overlay::new("b", Config::default(), 2);
//! a.join(&[], now); // the first node
//! b.join(&["a"], now);
//! // Deliver messages until both are quiet.
//! let mut quiet = false;
//! while !quiet {
//!     quiet = true;
//!     while let Some(Output::Send { to, msg }) = b.poll_output() {
//!         assert_eq!(to, "a");
//!         a.handle_message("b", msg, now);
//!         quiet = false;
//!     }
//!     while let Some(out) = a.poll_output() {
//!         if let Output::Send { to: "b", msg } = out {
//!             b.handle_message("a", msg, now);
//!             quiet = false;
//!         }
//!     }
//! }
//! assert_eq!(a.active().collect::<Vec<_>>(), [&"b"]);
//! assert_eq!(b.active().collect::<Vec<_>>(), [&"a"]);
//! ```

use std::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    fmt,
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};

/// The sizes and periods of the overlay. The defaults are the paper's for about 1,000 to
/// 10,000 nodes: an active view of 5 (≈ log₁₀ n + 1), a passive view of 30.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// The most neighbours (the active view; sessions kept open). At least 1.
    pub active_size: usize,
    /// The most passive nodes (known, not connected).
    pub passive_size: usize,
    /// The active random walk length (ARWL): a `ForwardJoin`'s and a `Shuffle`'s first ttl.
    pub active_walk: u8,
    /// The passive random walk length (PRWL): the hop of a `ForwardJoin` at which the
    /// newcomer is kept in the passive view.
    pub passive_walk: u8,
    /// How many active nodes a shuffle carries.
    pub shuffle_active: usize,
    /// How many passive nodes a shuffle carries.
    pub shuffle_passive: usize,
    /// The period of shuffles.
    pub shuffle_interval: Duration,
    /// How long a `Neighbor` request or a `Join` waits for its answer.
    pub neighbor_timeout: Duration,
    /// How long a node whose request was refused waits before it asks again (a node with
    /// room among full ones keeps asking, one request per interval: each is a short-lived
    /// session in a [`PartialMesh`](super::PartialMesh)).
    pub retry_interval: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            active_size: 5,
            passive_size: 30,
            active_walk: 6,
            passive_walk: 3,
            shuffle_active: 3,
            shuffle_passive: 4,
            shuffle_interval: Duration::from_secs(2),
            neighbor_timeout: Duration::from_secs(3),
            retry_interval: Duration::from_secs(1),
        }
    }
}

/// A message between two overlays (the sender is known from the connection it came on).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message<N> {
    /// A new node asks the receiver to let it into the overlay.
    Join,
    /// A random walk carrying a node that joined (`node`), with hops left (`ttl`).
    ForwardJoin {
        /// The node that joined.
        node: N,
        /// Hops left.
        ttl: u8,
    },
    /// A request to become neighbours; `high` (the sender has no neighbour) is never refused.
    Neighbor {
        /// High priority.
        high: bool,
    },
    /// The answer to a `Neighbor` request.
    NeighborReply {
        /// Whether the receiver is now a neighbour of the sender.
        accepted: bool,
    },
    /// The sender dropped the receiver from its active view (it is alive and kept passive).
    Disconnect,
    /// A shuffle's random walk: `nodes` are the origin's sample.
    Shuffle {
        /// The node that started the shuffle, which the answer goes to.
        origin: N,
        /// Hops left.
        ttl: u8,
        /// The origin, some of its active and some of its passive nodes.
        nodes: Vec<N>,
    },
    /// The answer to a shuffle: a sample of the answering node's passive view.
    ShuffleReply {
        /// The sample.
        nodes: Vec<N>,
    },
    /// A sample of the sender's active and passive views, for the receiver's passive view:
    /// sent just before a `Disconnect`, so a dropped node knows more of the overlay than the
    /// node that dropped it (not in the paper: when many nodes join through one contact at
    /// once, the contact drops joiners as fast as they come, and joiners whose walks ended
    /// at each other were left holding only each other, knowing little but the contact).
    Sample {
        /// The sample.
        nodes: Vec<N>,
    },
}

/// What the overlay asks its driver to do, or tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output<N> {
    /// Send `msg` to `to` (opening a connection if there is none).
    Send {
        /// The receiver.
        to: N,
        /// The message.
        msg: Message<N>,
    },
    /// `N` joined the active view: keep its connection open.
    NeighborUp(N),
    /// `N` left the active view: its connection is no longer needed.
    NeighborDown(N),
}

/// A small seeded generator (SplitMix64): deterministic, no dependency.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// A random element of `set`, other than those in `except`.
    fn pick<'a, N: Ord>(&mut self, set: &'a BTreeSet<N>, except: &[&N]) -> Option<&'a N> {
        let candidates: Vec<&N> = set.iter().filter(|n| !except.contains(n)).collect();
        if candidates.is_empty() {
            None
        } else {
            Some(candidates[self.below(candidates.len())])
        }
    }

    /// Up to `k` distinct random elements of `set`.
    fn sample<N: Ord + Clone>(&mut self, set: &BTreeSet<N>, k: usize) -> Vec<N> {
        let mut all: Vec<&N> = set.iter().collect();
        let mut out = Vec::new();
        while out.len() < k && !all.is_empty() {
            let i = self.below(all.len());
            out.push(all.swap_remove(i).clone());
        }
        out
    }
}

/// One node's HyParView state machine (see the module docs).
pub struct Overlay<N> {
    me: N,
    config: Config,
    active: BTreeSet<N>,
    passive: BTreeSet<N>,
    /// Neighbor requests sent and not answered, with their deadlines.
    pending: BTreeMap<N, Instant>,
    /// The contacts a join goes to, in turn, while the active view is empty.
    contacts: Vec<N>,
    /// The next contact to try, and when the current join attempt expires.
    join: Option<(usize, Instant)>,
    /// The nodes sent in the last shuffle (evicted first when its answer comes).
    sent_in_shuffle: Vec<N>,
    next_shuffle: Option<Instant>,
    /// No low-priority request before this (set when one is refused).
    next_fill: Option<Instant>,
    /// `Neighbor` requests sent whose answers have not come, per node, and until when they
    /// are waited for (see [`Message::NeighborReply`]'s handling).
    replies_due: BTreeMap<N, (u32, Instant)>,
    rng: Rng,
    outputs: VecDeque<Output<N>>,
}

impl<N: fmt::Debug> fmt::Debug for Overlay<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Overlay")
            .field("me", &self.me)
            .field("active", &self.active)
            .field("passive", &self.passive.len())
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl<N: Ord + Clone> Overlay<N> {
    /// A node `me` that is in no overlay yet; `seed` seeds its random choices (give each
    /// node its own).
    pub fn new(me: N, config: Config, seed: u64) -> Self {
        let mut config = config;
        config.active_size = config.active_size.max(1);
        Self {
            me,
            config,
            active: BTreeSet::new(),
            passive: BTreeSet::new(),
            pending: BTreeMap::new(),
            contacts: Vec::new(),
            join: None,
            sent_in_shuffle: Vec::new(),
            next_shuffle: None,
            next_fill: None,
            replies_due: BTreeMap::new(),
            rng: Rng(seed),
            outputs: VecDeque::new(),
        }
    }

    /// This node.
    pub fn me(&self) -> &N {
        &self.me
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The active view (neighbours), in order.
    pub fn active(&self) -> impl Iterator<Item = &N> {
        self.active.iter()
    }

    /// Whether `node` is a neighbour.
    pub fn is_active(&self, node: &N) -> bool {
        self.active.contains(node)
    }

    /// The passive view, in order.
    pub fn passive(&self) -> impl Iterator<Item = &N> {
        self.passive.iter()
    }

    /// Every node this overlay knows of (active and passive views), without itself.
    pub fn members(&self) -> BTreeSet<N> {
        self.active.union(&self.passive).cloned().collect()
    }

    /// The next output.
    pub fn poll_output(&mut self) -> Option<Output<N>> {
        self.outputs.pop_front()
    }

    /// Joins the overlay through `contacts` (tried in turn until one answers). With no
    /// contact this node is the first of its overlay and waits for others to join it.
    pub fn join(&mut self, contacts: &[N], now: Instant) {
        self.contacts = contacts
            .iter()
            .filter(|c| **c != self.me)
            .cloned()
            .collect();
        self.next_shuffle
            .get_or_insert(now + self.config.shuffle_interval);
        self.join = None;
        self.try_join(0, now);
    }

    fn try_join(&mut self, index: usize, now: Instant) {
        if self.contacts.is_empty() || !self.active.is_empty() {
            self.join = None;
            return;
        }
        let index = index % self.contacts.len();
        let contact = self.contacts[index].clone();
        self.join = Some((index + 1, now + self.config.neighbor_timeout));
        self.send(contact, Message::Join);
    }

    /// The earliest time [`Overlay::handle_timeout`] has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let pending = self.pending.values().min().copied();
        [
            pending,
            self.join.map(|(_, at)| at),
            self.next_shuffle,
            self.next_fill,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Acts on the clock: expired requests (their nodes are taken for dead), a join attempt
    /// that went unanswered (the next contact is tried), the periodic shuffle, and filling
    /// the active view from the passive one.
    pub fn handle_timeout(&mut self, now: Instant) {
        let expired: Vec<N> = self
            .pending
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(n, _)| n.clone())
            .collect();
        for node in expired {
            self.pending.remove(&node);
            self.passive.remove(&node);
        }
        self.replies_due.retain(|_, (_, until)| *until > now);
        if let Some((next, at)) = self.join {
            if at <= now {
                self.try_join(next, now);
            }
        }
        if self.next_shuffle.is_some_and(|at| at <= now) {
            self.next_shuffle = Some(now + self.config.shuffle_interval);
            self.shuffle(now);
        }
        self.fill(now);
    }

    /// The connection to neighbour `node` went down (a failure): it leaves both views, and
    /// the active view is filled again from the passive one. The loss of a connection to a
    /// node that is not a neighbour (one opened for a single message) changes nothing.
    pub fn connection_down(&mut self, node: &N, now: Instant) {
        if self.active.remove(node) {
            self.passive.remove(node);
            self.outputs.push_back(Output::NeighborDown(node.clone()));
            self.fill(now);
        }
    }

    /// A message from `from`.
    pub fn handle_message(&mut self, from: N, msg: Message<N>, now: Instant) {
        if from == self.me {
            return;
        }
        match msg {
            Message::Join => {
                self.add_active(from.clone(), now);
                let walk = self.config.active_walk;
                let others: Vec<N> = self
                    .active
                    .iter()
                    .filter(|n| **n != from)
                    .cloned()
                    .collect();
                for n in others {
                    self.send(
                        n,
                        Message::ForwardJoin {
                            node: from.clone(),
                            ttl: walk,
                        },
                    );
                }
            }
            Message::ForwardJoin { node, ttl } => {
                if node == self.me {
                    return;
                }
                if ttl == 0 || self.active.len() <= 1 {
                    if !self.active.contains(&node) {
                        self.add_active(node, now);
                    }
                    return;
                }
                if ttl == self.config.passive_walk {
                    self.add_passive(node.clone());
                }
                let next = self.rng.pick(&self.active, &[&from, &node]).cloned();
                match next {
                    Some(next) => self.send(next, Message::ForwardJoin { node, ttl: ttl - 1 }),
                    None => {
                        if !self.active.contains(&node) {
                            self.add_active(node, now);
                        }
                    }
                }
            }
            Message::Neighbor { high } => {
                let accepted = self.active.contains(&from)
                    || high
                    || self.active.len() < self.config.active_size;
                if accepted {
                    self.pending.remove(&from);
                    self.promote(from.clone());
                } else {
                    self.add_passive(from.clone());
                }
                self.send(from, Message::NeighborReply { accepted });
            }
            Message::NeighborReply { accepted } => {
                // Answers come in the order of the requests: one followed by another answer
                // still due is an earlier request's, and says nothing of the latest (taken for
                // it, an acceptance of a request the sender then dropped this node after
                // left this node holding a neighbour that did not hold it).
                if let Some((due, _)) = self.replies_due.get_mut(&from) {
                    *due = due.saturating_sub(1);
                    if *due > 0 {
                        return;
                    }
                    self.replies_due.remove(&from);
                }
                let asked = self.pending.remove(&from).is_some();
                if accepted && asked {
                    self.promote(from);
                } else if accepted && !self.active.contains(&from) {
                    // An answer after the request expired: the sender holds this node as a
                    // neighbour, this node does not; tell it.
                    self.send(from.clone(), Message::Disconnect);
                    self.add_passive(from);
                } else if !accepted && !self.active.contains(&from) {
                    // Refused: ask again (another node, maybe) after a while, not at once.
                    self.add_passive(from);
                    self.next_fill = Some(now + self.config.retry_interval);
                }
            }
            Message::Disconnect => {
                if self.active.remove(&from) {
                    self.outputs.push_back(Output::NeighborDown(from.clone()));
                }
                self.add_passive(from);
                self.fill(now);
            }
            Message::Shuffle { origin, ttl, nodes } => {
                if origin == self.me {
                    return;
                }
                if ttl > 0 && self.active.len() > 1 {
                    if let Some(next) = self.rng.pick(&self.active, &[&from, &origin]).cloned() {
                        self.send(
                            next,
                            Message::Shuffle {
                                origin,
                                ttl: ttl - 1,
                                nodes,
                            },
                        );
                        return;
                    }
                }
                let reply = self.rng.sample(&self.passive, nodes.len());
                self.send(
                    origin,
                    Message::ShuffleReply {
                        nodes: reply.clone(),
                    },
                );
                self.merge(nodes, &reply);
            }
            Message::ShuffleReply { nodes } => {
                let sent = std::mem::take(&mut self.sent_in_shuffle);
                self.merge(nodes, &sent);
            }
            Message::Sample { nodes } => self.merge(nodes, &[]),
        }
    }

    fn send(&mut self, to: N, msg: Message<N>) {
        self.outputs.push_back(Output::Send { to, msg });
    }

    /// Takes `node` into the active view and asks it to take this node (high priority).
    fn add_active(&mut self, node: N, now: Instant) {
        if node == self.me {
            return;
        }
        self.promote(node.clone());
        self.ask(node, true, now);
    }

    /// Sends a `Neighbor` request and counts the answer due.
    fn ask(&mut self, node: N, high: bool, now: Instant) {
        let until = now + self.config.neighbor_timeout;
        let due = self.replies_due.entry(node.clone()).or_insert((0, until));
        *due = (due.0.saturating_add(1), until);
        self.send(node, Message::Neighbor { high });
    }

    /// Puts `node` in the active view (dropping a random neighbour if it is full).
    fn promote(&mut self, node: N) {
        if node == self.me || self.active.contains(&node) {
            return;
        }
        while self.active.len() >= self.config.active_size {
            let Some(dropped) = self.rng.pick(&self.active, &[]).cloned() else {
                break;
            };
            self.active.remove(&dropped);
            self.outputs
                .push_back(Output::NeighborDown(dropped.clone()));
            // What the dropped node may ask instead of this one: joiners dropped by their
            // contact for newer joiners would otherwise know little more than the contact.
            let mut nodes = self.view_sample();
            nodes.retain(|n| *n != dropped);
            if !nodes.is_empty() {
                self.send(dropped.clone(), Message::Sample { nodes });
            }
            self.send(dropped.clone(), Message::Disconnect);
            self.add_passive(dropped);
        }
        self.passive.remove(&node);
        // A request still out to it is answered by now, for what it asked: an answer to it
        // finds the node active, or (dropped since) is a stale acceptance to refuse.
        self.pending.remove(&node);
        self.active.insert(node.clone());
        self.join = None;
        self.outputs.push_back(Output::NeighborUp(node));
    }

    fn add_passive(&mut self, node: N) {
        self.add_passive_evicting(node, &[]);
    }

    fn add_passive_evicting(&mut self, node: N, prefer: &[N]) {
        if node == self.me || self.active.contains(&node) || self.passive.contains(&node) {
            return;
        }
        if self.config.passive_size == 0 {
            return;
        }
        while self.passive.len() >= self.config.passive_size {
            let preferred = prefer
                .iter()
                .find(|n| self.passive.contains(n) && !self.pending.contains_key(n))
                .cloned();
            let evict = match preferred {
                Some(n) => n,
                None => match self.rng.pick(&self.passive, &[]) {
                    Some(n) => n.clone(),
                    None => break,
                },
            };
            self.passive.remove(&evict);
        }
        self.passive.insert(node);
    }

    fn merge(&mut self, nodes: Vec<N>, prefer_evict: &[N]) {
        for node in nodes {
            self.add_passive_evicting(node, prefer_evict);
        }
    }

    /// Asks passive nodes to become neighbours while the active view has room (one request
    /// per free slot).
    fn fill(&mut self, now: Instant) {
        if let Some(at) = self.next_fill {
            if at > now && !self.active.is_empty() {
                return;
            }
            self.next_fill = None;
        }
        if self.active.is_empty() && self.passive.is_empty() && self.pending.is_empty() {
            // Nobody known: join again through the contacts, if any.
            if self.join.is_none() {
                self.try_join(0, now);
            }
            return;
        }
        while self.active.len() + self.pending.len() < self.config.active_size {
            let asked: Vec<&N> = self.pending.keys().collect();
            let Some(node) = self.rng.pick(&self.passive, &asked).cloned() else {
                break;
            };
            let high = self.active.is_empty();
            self.pending
                .insert(node.clone(), now + self.config.neighbor_timeout);
            self.ask(node, high, now);
        }
    }

    /// Some of the active view and some of the passive one (`shuffle_active`,
    /// `shuffle_passive`): what a shuffle and a `Sample` carry.
    fn view_sample(&mut self) -> Vec<N> {
        let mut nodes = self.rng.sample(&self.active, self.config.shuffle_active);
        nodes.extend(self.rng.sample(&self.passive, self.config.shuffle_passive));
        nodes
    }

    fn shuffle(&mut self, now: Instant) {
        let _ = now;
        let Some(target) = self.rng.pick(&self.active, &[]).cloned() else {
            return;
        };
        let mut nodes = vec![self.me.clone()];
        nodes.extend(self.view_sample());
        self.sent_in_shuffle = nodes.clone();
        let ttl = self.config.active_walk;
        self.send(
            target,
            Message::Shuffle {
                origin: self.me.clone(),
                ttl,
                nodes,
            },
        );
    }
}

#[cfg(test)]
mod tests;
