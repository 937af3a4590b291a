//! Casts and calls to actors on other nodes: the caller's side and the receiver's side.

use std::{collections::HashMap, sync::Arc, time::Duration};

use actor_core::{
    transport::{self, PeerTarget, RemoteSend},
    CallError, Destination, NodeName, ReplySink, SendErrorKind,
};
use tokio::sync::oneshot;

use super::{connect, Inner};
use crate::{
    transport::{Responder, SessionHandle},
    wire::message::{NodeMsg, Target, WireSendError},
};

struct PendingCall {
    node: NodeName,
    dest: Destination,
    tx: oneshot::Sender<Result<Vec<u8>, CallError>>,
}

/// Calls waiting for replies, and casts waiting for a connection.
#[derive(Default)]
pub(super) struct Actors {
    calls: HashMap<u64, PendingCall>,
    /// Casts to a node being connected to, in send order; flushed when its session comes up.
    queued: HashMap<NodeName, Vec<NodeMsg>>,
}

impl Actors {
    #[cfg(test)]
    pub(super) fn is_idle(&self) -> bool {
        self.calls.is_empty()
    }

    /// The session with `peer` went down: its pending calls fail with `NoConnection` at once.
    pub(super) fn node_down(&mut self, peer: &NodeName) {
        let lost: Vec<u64> = self
            .calls
            .iter()
            .filter(|(_, c)| c.node == *peer)
            .map(|(id, _)| *id)
            .collect();
        for id in lost {
            if let Some(c) = self.calls.remove(&id) {
                let _ = c.tx.send(Err(CallError::Send(SendErrorKind::NoConnection {
                    node: c.node,
                })));
            }
        }
    }

    /// A session with `peer` came up: the casts queued for it go first, in order.
    pub(super) fn flush(&mut self, peer: &NodeName, handle: &SessionHandle<NodeMsg>) {
        for msg in self.queued.remove(peer).unwrap_or_default() {
            let _ = handle.send(&msg);
        }
    }

    /// Connecting to `peer` failed: its queued casts are dropped, as the BEAM drops sends to
    /// an unreachable node.
    pub(super) fn drop_queued(&mut self, peer: &NodeName) -> usize {
        self.queued.remove(peer).map_or(0, |q| q.len())
    }
}

pub(super) fn target_of(dest: &Destination) -> Target {
    match dest {
        Destination::Pid(pid) => Target::Pid {
            creation: pid.creation(),
            id: pid.id(),
        },
        other => Target::Name(other.name().unwrap_or_default().to_string()),
    }
}

/// A peer's `Target`, as this node's system takes it (borrowing the name).
pub(super) fn peer_target(target: &Target) -> PeerTarget<'_> {
    match target {
        Target::Name(name) => PeerTarget::Name(name),
        Target::Pid { creation, id } => PeerTarget::Pid {
            creation: *creation,
            id: *id,
        },
    }
}

/// The local destination a peer's `Target` names on this node.
pub(super) fn destination(inner: &Inner, target: Target) -> Destination {
    peer_target(&target).to_destination(&inner.name)
}

/// `Transport::cast`: send now if a session exists, else queue and connect.
pub(super) fn cast(inner: &Arc<Inner>, node: NodeName, message: RemoteSend) {
    let msg = NodeMsg::Send {
        target: target_of(&message.target),
        type_name: message.type_name.to_string(),
        payload: message.payload,
        call: None,
    };
    let mut state = inner.lock();
    if let Some(peer) = state.peers.get(&node) {
        if let Err(e) = peer.handle.send(&msg) {
            tracing::debug!(peer = %node, "cast dropped: {e}");
        }
        return;
    }
    if state.stopped {
        return;
    }
    state
        .actors
        .queued
        .entry(node.clone())
        .or_default()
        .push(msg);
    drop(state);
    let inner2 = inner.clone();
    tokio::spawn(async move {
        if let Err(e) = connect(&inner2, &node).await {
            let dropped = inner2.lock().actors.drop_queued(&node);
            tracing::debug!(parent: &inner2.span(), peer = %node, dropped, "casts dropped: {e}");
        }
    });
}

/// `Transport::call`: connect if needed, send, and wait for the reply.
pub(super) async fn call(
    inner: &Arc<Inner>,
    node: NodeName,
    message: RemoteSend,
    timeout: Duration,
) -> Result<Vec<u8>, CallError> {
    let no_connection = || CallError::Send(SendErrorKind::NoConnection { node: node.clone() });
    let dest = message.target.clone();
    let deadline = tokio::time::Instant::now() + timeout;
    match tokio::time::timeout_at(deadline, connect(inner, &node)).await {
        Ok(Ok(())) => {}
        Ok(Err(_)) => return Err(no_connection()),
        Err(_) => return Err(CallError::Timeout { dest, timeout }),
    }
    let id = inner
        .next_id
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (tx, rx) = oneshot::channel();
    let handle = {
        let mut state = inner.lock();
        let handle = state.handle_of(&node).ok_or_else(no_connection)?;
        state.actors.calls.insert(
            id,
            PendingCall {
                node: node.clone(),
                dest: dest.clone(),
                tx,
            },
        );
        handle
    };
    let msg = NodeMsg::Send {
        target: target_of(&message.target),
        type_name: message.type_name.to_string(),
        payload: message.payload,
        call: Some(id),
    };
    if let Err(e) = handle.send(&msg) {
        inner.lock().actors.calls.remove(&id);
        return Err(match e {
            crate::transport::SendError::Frame(f) => CallError::Send(SendErrorKind::Refused {
                node: inner.name.clone(),
                reason: f.to_string(),
            }),
            _ => no_connection(),
        });
    }
    match tokio::time::timeout_at(deadline, rx).await {
        Ok(Ok(result)) => result,
        Ok(Err(_)) => Err(no_connection()),
        Err(_) => {
            inner.lock().actors.calls.remove(&id); // a late reply is dropped
            Err(CallError::Timeout { dest, timeout })
        }
    }
}

/// Handles an actor message from a peer, in the session's reader task (see `install`):
/// `responder` answers on the session it came on.
pub(super) fn on_message(
    inner: &Arc<Inner>,
    peer: &NodeName,
    responder: &Responder<NodeMsg>,
    msg: NodeMsg,
) {
    match msg {
        NodeMsg::Send {
            target,
            type_name,
            payload,
            call,
        } => {
            let target = peer_target(&target);
            let sink = call.map(|call| {
                let responder = responder.clone();
                ReplySink::new(move |bytes| {
                    let result = bytes.ok_or(WireSendError::NoReply);
                    let _ = responder.send(&NodeMsg::Reply { call, result });
                })
            });
            if let Err(kind) = transport::deliver(&inner.system, target, &type_name, &payload, sink)
            {
                tracing::debug!(%peer, ?target, "message not delivered: {kind}");
                if let Some(call) = call {
                    let result = Err(match kind {
                        SendErrorKind::NoProc { .. } => WireSendError::NoProc,
                        other => WireSendError::Refused {
                            reason: other.to_string(),
                        },
                    });
                    let _ = responder.send(&NodeMsg::Reply { call, result });
                }
            }
        }
        NodeMsg::Reply { call, result } => {
            let Some(PendingCall { node, dest, tx }) = inner.lock().actors.calls.remove(&call)
            else {
                return; // timed out already
            };
            let result = result.map_err(|e| match e {
                WireSendError::NoProc => CallError::Send(SendErrorKind::NoProc { dest, node }),
                WireSendError::Refused { reason } => {
                    CallError::Send(SendErrorKind::Refused { node, reason })
                }
                WireSendError::NoReply => CallError::NoReply { dest },
            });
            let _ = tx.send(result);
        }
        _ => {}
    }
}
