//! Monitors of actors on other nodes: the watcher's side and the watched node's side.

use std::{collections::HashMap, sync::Arc};

use actor_core::{transport::Cancel, Destination, DownReason, Monitor, NodeName};
use tokio::{sync::oneshot, task::AbortHandle};

use super::{actors::target_of, connect, Inner};
use crate::{
    transport::SessionHandle,
    wire::message::{NodeMsg, WireDownReason},
};

/// Monitors this node set on peers' actors, and those peers set on ours.
#[derive(Default)]
pub(super) struct Monitors {
    watching: HashMap<u64, (NodeName, oneshot::Sender<DownReason>)>,
    served: HashMap<(NodeName, u64), AbortHandle>,
}

impl Monitors {
    #[cfg(test)]
    pub(super) fn served_len(&self) -> usize {
        self.served.len()
    }

    /// The session with `peer` went down: our monitors of its actors fire `NoConnection`, and
    /// its monitors of ours are dropped.
    pub(super) fn node_down(&mut self, peer: &NodeName) {
        let lost: Vec<u64> = self
            .watching
            .iter()
            .filter(|(_, (n, _))| n == peer)
            .map(|(id, _)| *id)
            .collect();
        for id in lost {
            if let Some((_, tx)) = self.watching.remove(&id) {
                let _ = tx.send(DownReason::NoConnection);
            }
        }
        self.served.retain(|(node, _), watcher| {
            if node == peer {
                watcher.abort();
                false
            } else {
                true
            }
        });
    }
}

/// `Transport::monitor`: connect if needed and ask the peer to watch `dest`.
pub(super) fn monitor(inner: &Arc<Inner>, node: NodeName, dest: Destination) -> Monitor {
    let id = inner
        .next_id
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (tx, rx) = oneshot::channel();
    let target = target_of(&dest);
    let setup = {
        let (inner, node) = (inner.clone(), node.clone());
        tokio::spawn(async move {
            if connect(&inner, &node).await.is_err() {
                let _ = tx.send(DownReason::NoConnection);
                return;
            }
            let mut state = inner.lock();
            match state.handle_of(&node) {
                None => {
                    let _ = tx.send(DownReason::NoConnection);
                }
                Some(handle) => {
                    state.monitors_remote.watching.insert(id, (node, tx));
                    let _ = handle.send(&NodeMsg::Monitor { id, target });
                }
            }
        })
    };
    let weak = Arc::downgrade(inner);
    let abort = setup.abort_handle();
    let cancel = Cancel::new(move || {
        abort.abort();
        let Some(inner) = weak.upgrade() else { return };
        let mut state = inner.lock();
        if state.monitors_remote.watching.remove(&id).is_some() {
            if let Some(peer) = state.peers.get(&node) {
                let _ = peer.handle.send(&NodeMsg::Demonitor { id });
            }
        }
    });
    Monitor::new(dest, rx, Some(cancel))
}

/// Handles a monitor message from `peer`; `handle` is the session it came on.
pub(super) fn on_message(
    inner: &Arc<Inner>,
    peer: &NodeName,
    handle: &SessionHandle<NodeMsg>,
    msg: NodeMsg,
) {
    match msg {
        NodeMsg::Monitor { id, target } => {
            let dest = super::actors::destination(inner, target);
            let Ok(cell) = inner.system.resolve(&dest) else {
                let _ = handle.send(&NodeMsg::Down {
                    id,
                    reason: WireDownReason::NoProc,
                });
                return;
            };
            let (weak, peer2, handle) = (Arc::downgrade(inner), peer.clone(), handle.clone());
            let watcher = tokio::spawn(async move {
                let _ = cell.wait(None).await;
                if let Some(inner) = weak.upgrade() {
                    inner.lock().monitors_remote.served.remove(&(peer2, id));
                }
                let _ = handle.send(&NodeMsg::Down {
                    id,
                    reason: WireDownReason::Exited,
                });
            });
            inner
                .lock()
                .monitors_remote
                .served
                .insert((peer.clone(), id), watcher.abort_handle());
        }
        NodeMsg::Demonitor { id } => {
            if let Some(watcher) = inner
                .lock()
                .monitors_remote
                .served
                .remove(&(peer.clone(), id))
            {
                watcher.abort();
            }
        }
        NodeMsg::Down { id, reason } => {
            if let Some((_, tx)) = inner.lock().monitors_remote.watching.remove(&id) {
                let _ = tx.send(match reason {
                    WireDownReason::Exited => DownReason::Exited,
                    WireDownReason::NoProc => DownReason::NoProc,
                });
            }
        }
        _ => {}
    }
}
