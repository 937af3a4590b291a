//! This node's pids as BEAM processes see them: a task run for a BEAM caller
//! (`Task.Supervisor.async` into this node), or a caller of a BEAM process (a
//! `gen_server:call` or a task this node starts there).
//!
//! Each is a tokio task with a bounded mailbox of [`Signal`]s; the connection's reader hands
//! it what BEAM processes send to its pid (messages, links, monitors, exit signals, monitor
//! `DOWN`s), and a connection that goes tells it [`Signal::NodeDown`]. An entry is removed
//! when its [`Proc`] is dropped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use eetf::Term;
use tokio::sync::mpsc;

use super::lock;

/// How many signals may wait for one of these processes.
const MAILBOX: usize = 64;

/// What reaches one of this node's BEAM-visible pids.
#[derive(Debug)]
pub(crate) enum Signal {
    /// A message (`SEND`, `SEND_SENDER`, `ALIAS_SEND`).
    Message(Term),
    /// `LINK` from a BEAM process.
    Link(eetf::Pid),
    /// `UNLINK` / `UNLINK_ID` from a BEAM process.
    Unlink(eetf::Pid),
    /// An exit signal from a linked BEAM process (`EXIT`).
    Exit(eetf::Pid, Term),
    /// `MONITOR_P`: a BEAM process monitors this pid.
    Monitor(eetf::Pid, eetf::Reference),
    /// `DEMONITOR_P`.
    Demonitor(eetf::Reference),
    /// `MONITOR_P_EXIT`: a monitor this pid holds fired, with the reason.
    Down(eetf::Reference, Term),
    /// The connection with the peer went: every link and monitor with it is `noconnection`.
    NodeDown,
}

/// The table of this node's BEAM-visible pids.
#[derive(Debug, Default)]
pub(crate) struct Procs {
    next: AtomicU32,
    table: Mutex<HashMap<(u32, u32), Entry>>,
}

#[derive(Debug)]
struct Entry {
    peer: String,
    tx: mpsc::Sender<Signal>,
}

impl Procs {
    /// Hands `signal` to the pid `(id, serial)`: false if there is no such pid (it ended).
    pub(crate) fn signal(&self, pid: &eetf::Pid, signal: Signal) -> bool {
        let table = lock(&self.table);
        let Some(entry) = table.get(&(pid.id, pid.serial)) else {
            return false;
        };
        if entry.tx.try_send(signal).is_err() {
            tracing::warn!(
                peer = entry.peer,
                "a signal to a busy Erlang-facing process was dropped (its mailbox is full)"
            );
        }
        true
    }

    /// Tells every pid that talks with `peer` that its connection went.
    pub(crate) fn peer_down(&self, peer: &str) {
        for entry in lock(&self.table).values().filter(|e| e.peer == peer) {
            let _ = entry.tx.try_send(Signal::NodeDown);
        }
    }
}

/// A pid of this node no other has had (until 2^28 of them were made): for a [`Proc`], or
/// for a process that takes no signals (an erpc call's).
pub(crate) fn fresh_pid(shared: &super::Shared) -> eetf::Pid {
    let n = shared.procs.next.fetch_add(1, Ordering::Relaxed);
    // A pid's id has 15 bits and its serial 13 in the BEAM's classic layout.
    let (id, serial) = (n & 0x7fff, (n >> 15) & 0x1fff);
    eetf::Pid::new(shared.name.as_str(), id, serial, shared.creation)
}

/// One of this node's BEAM-visible pids, talking with one peer; dropped, it is gone.
#[derive(Debug)]
pub(crate) struct Proc {
    pub(crate) pid: eetf::Pid,
    pub(crate) rx: mpsc::Receiver<Signal>,
    shared: Arc<super::Shared>,
}

impl Proc {
    /// A new pid of this node for talking with `peer`.
    pub(crate) fn new(shared: &Arc<super::Shared>, peer: &str) -> Proc {
        let pid = fresh_pid(shared);
        let (tx, rx) = mpsc::channel(MAILBOX);
        lock(&shared.procs.table).insert(
            (pid.id, pid.serial),
            Entry {
                peer: peer.to_string(),
                tx,
            },
        );
        Proc {
            pid,
            rx,
            shared: Arc::clone(shared),
        }
    }

    /// A new reference of this node (for a monitor or a call's tag).
    pub(crate) fn make_ref(&self) -> eetf::Reference {
        let n = self.shared.procs.next.fetch_add(1, Ordering::Relaxed);
        let rnd = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        eetf::Reference {
            node: eetf::Atom::from(self.shared.name.as_str()),
            id: vec![n & 0x3ffff, self.pid.id, rnd],
            creation: self.shared.creation,
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        lock(&self.shared.procs.table).remove(&(self.pid.id, self.pid.serial));
    }
}
