//! The in-memory transport: nodes of one process connected through memory pipes instead of
//! sockets.
//!
//! A [`MemoryNetwork`] is a hub shared by the nodes started on it
//! ([`NodeConfig::memory`](crate::NodeConfig::memory)): a map from each node's name to its
//! accept channel. A node on it opens no listening socket and registers with no port
//! mapper; a dial asks the hub for a [`MemoryPipe`] pair, keeps one end and hands the
//! other to the named node's accept channel, where it takes the same path as an incoming
//! TCP connection (the same handshake, frame limits, ticks and `Faults` gates). No file
//! descriptor is used, so thousands of nodes fit in one process.
//!
//! ```
//! use actor_remote::transport::MemoryNetwork;
//! let network = MemoryNetwork::new();
//! let same = network.clone(); // clones share the hub
//! assert!(same.nodes().is_empty());
//! ```

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc, Mutex, MutexGuard, PoisonError,
    },
    time::Duration,
};

use actor_core::NodeName;
use tokio::sync::mpsc;

mod pipe;
pub use pipe::{MemoryPipe, MemoryPipeReader, MemoryPipeWriter};

/// The bytes buffered in each direction of an in-memory connection before a writer waits
/// for its reader (as a socket's buffer does). Allocated as it fills, not up front, and freed
/// once read to its end ([`MemoryPipe`]): an idle connection holds none.
pub const MEMORY_PIPE_BUFFER: usize = 16 * 1024;

/// The connections waiting to be accepted by one node (its listen backlog).
pub const MEMORY_ACCEPT_BACKLOG: usize = 128;

/// A hub connecting the nodes of one process through memory. Cheap to clone; clones share
/// the hub. See the [module documentation](self).
#[derive(Clone, Default)]
pub struct MemoryNetwork {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    nodes: Mutex<HashMap<NodeName, Registered>>,
    /// The last creation handed out (what a port mapper's registration would give).
    creation: AtomicU32,
}

struct Registered {
    accept: mpsc::Sender<MemoryPipe>,
    id: u64,
}

impl std::fmt::Debug for MemoryNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryNetwork")
            .field("nodes", &self.lock().len())
            .finish()
    }
}

/// Why an in-memory connection could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MemoryConnectError {
    /// No node of that name is on the network.
    #[error("no node named {node} is on this memory network; is it running?")]
    NotRegistered {
        /// The node asked for.
        node: NodeName,
    },
    /// The node's accept backlog stayed full for the whole timeout.
    #[error("{node} accepted no connection within {timeout:?} (its backlog of {MEMORY_ACCEPT_BACKLOG} is full)")]
    Backlog {
        /// The node asked for.
        node: NodeName,
        /// How long the dial waited.
        timeout: Duration,
    },
}

/// A node's registration on a [`MemoryNetwork`]: its incoming connections. Dropping it takes
/// the node off the network.
pub(crate) struct MemoryListener {
    incoming: mpsc::Receiver<MemoryPipe>,
    network: MemoryNetwork,
    name: NodeName,
    id: u64,
}

impl MemoryListener {
    /// The next incoming connection; `None` once the network is gone (never, while this
    /// listener holds it).
    pub(crate) async fn accept(&mut self) -> Option<MemoryPipe> {
        self.incoming.recv().await
    }
}

impl Drop for MemoryListener {
    fn drop(&mut self) {
        let mut nodes = self.network.lock();
        if nodes.get(&self.name).is_some_and(|r| r.id == self.id) {
            nodes.remove(&self.name);
        }
    }
}

impl MemoryNetwork {
    /// An empty network.
    pub fn new() -> Self {
        Self::default()
    }

    /// The nodes on the network now, sorted.
    pub fn nodes(&self) -> Vec<NodeName> {
        let mut nodes: Vec<NodeName> = self.lock().keys().cloned().collect();
        nodes.sort();
        nodes
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<NodeName, Registered>> {
        self.shared
            .nodes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Puts `name` on the network, with a new creation (nonzero); `None` if the name is
    /// taken.
    pub(crate) fn register(&self, name: &NodeName) -> Option<(MemoryListener, u32)> {
        let mut nodes = self.lock();
        if nodes.get(name).is_some_and(|r| !r.accept.is_closed()) {
            return None;
        }
        let creation = self
            .shared
            .creation
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_add(1)
            .max(1);
        let id = u64::from(creation);
        let (accept, incoming) = mpsc::channel(MEMORY_ACCEPT_BACKLOG);
        nodes.insert(name.clone(), Registered { accept, id });
        drop(nodes);
        let listener = MemoryListener {
            incoming,
            network: self.clone(),
            name: name.clone(),
            id,
        };
        Some((listener, creation))
    }

    /// Opens a connection to `node`: this side's end of a new pipe, whose other end waits in
    /// `node`'s accept channel (at most `timeout` for room in it).
    pub(crate) async fn connect(
        &self,
        node: &NodeName,
        timeout: Duration,
    ) -> Result<MemoryPipe, MemoryConnectError> {
        let not_registered = || MemoryConnectError::NotRegistered { node: node.clone() };
        let accept = self
            .lock()
            .get(node)
            .map(|r| r.accept.clone())
            .ok_or_else(not_registered)?;
        let (ours, theirs) = MemoryPipe::pair(MEMORY_PIPE_BUFFER);
        match tokio::time::timeout(timeout, accept.send(theirs)).await {
            Ok(Ok(())) => Ok(ours),
            Ok(Err(_)) => Err(not_registered()),
            Err(_) => Err(MemoryConnectError::Backlog {
                node: node.clone(),
                timeout,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> NodeName {
        NodeName::parse(s).unwrap()
    }

    #[tokio::test]
    async fn a_name_is_registered_once_and_freed_when_its_listener_drops() {
        let network = MemoryNetwork::new();
        let (listener, creation) = network.register(&name("a@localhost")).unwrap();
        assert_ne!(creation, 0);
        assert!(network.register(&name("a@localhost")).is_none());
        assert_eq!(network.nodes(), [name("a@localhost")]);
        drop(listener);
        assert!(network.nodes().is_empty());
        assert!(network.register(&name("a@localhost")).is_some());
    }

    #[tokio::test]
    async fn connect_hands_the_other_end_to_the_listener() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let network = MemoryNetwork::new();
        let (mut listener, _) = network.register(&name("a@localhost")).unwrap();
        let timeout = Duration::from_secs(5);
        let mut ours = network
            .connect(&name("a@localhost"), timeout)
            .await
            .unwrap();
        let mut theirs = tokio::time::timeout(timeout, listener.accept())
            .await
            .unwrap()
            .unwrap();
        ours.write_all(b"hi").await.unwrap();
        let mut buf = [0; 2];
        theirs.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hi");
        assert_eq!(
            network.connect(&name("b@localhost"), timeout).await.err(),
            Some(MemoryConnectError::NotRegistered {
                node: name("b@localhost")
            })
        );
    }

    /// Nodes each told of one other (node `i` connects to node `i - 1`) reach the full mesh
    /// through the peers they share (`ControlMsg::Peers`), and each pair connects once: no
    /// session goes down on the way. (Before `NodeState::register_incoming`, a node dialled a
    /// peer whose own connection it was accepting; both connections came up, each side kept a
    /// different one and closed the other, and the pair fell apart: thousands of node-downs
    /// in a mesh of a hundred, and a mesh of a thousand that never completed.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nodes_told_of_one_other_mesh_fully_with_no_session_lost() {
        use crate::{Cookie, Node, NodeConfig, NodeEvent};
        const NODES: usize = 60;
        let network = MemoryNetwork::new();
        let mut nodes = Vec::with_capacity(NODES);
        let mut events = Vec::with_capacity(NODES);
        for i in 0..NODES {
            let config = NodeConfig::sname(&format!("m{i}@localhost"))
                .cookie(Cookie::new("mesh").unwrap())
                .handshake_timeout(Duration::from_secs(20))
                .memory(network.clone());
            let node = Node::start(config).await.unwrap();
            events.push(node.events());
            nodes.push(node);
        }
        for pair in nodes.windows(2) {
            let (from, to) = (pair[1].clone(), pair[0].name().clone());
            tokio::spawn(async move { from.connect(&to).await });
        }
        let expected = NODES * (NODES - 1);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let entries: usize = nodes.iter().map(|n| n.list().len()).sum();
            if entries == expected {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{entries} of {expected} peer entries after 60 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await; // polling, bounded above
        }
        let mut downs = Vec::new();
        for (node, events) in nodes.iter().zip(&mut events) {
            loop {
                match events.try_recv() {
                    Ok(NodeEvent::NodeDown {
                        node: peer, reason, ..
                    }) => {
                        downs.push(format!("{} lost {peer} ({reason})", node.name()));
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::TryRecvError::Lagged(n)) => {
                        downs.push(format!("{} missed {n} events", node.name()));
                    }
                    Err(_) => break,
                }
            }
        }
        assert!(downs.is_empty(), "{} sessions lost: {downs:?}", downs.len());
        for node in nodes {
            node.halt().await;
        }
    }
}
