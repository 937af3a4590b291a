//! The node's process table: how each of its actors ended, who monitors it, what it is
//! linked to, and whether it traps exits.
//!
//! Every actor nodus starts (by [`System::spawn`](crate::System::spawn), as a supervisor's
//! child, a task supervisor, a proxy) is watched by the node's *reaper*, a ractor actor that
//! monitors it (ractor's `monitors` feature) and so learns the real reason it stopped:
//! normal, shutdown, killed, the panic message, or a reason of its own. On that exit the
//! table, in this order: fires the actor's monitors with the reason, cancels the timers and
//! watches it had set, and sends an exit signal to every actor linked to it (on this node
//! directly; on another node through the node's [`Transport`]).
//!
//! An exit signal is the BEAM's: an actor that traps exits receives it as
//! [`Info::Exit`]; one that does not is stopped with the same reason, unless the reason is
//! [`ExitReason::Normal`]. A node going down is an exit `NoConnection` from every pid of that
//! node an actor was linked to.

use std::{
    collections::{HashMap, HashSet},
    fmt,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, OnceLock, PoisonError,
    },
};

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SupervisionEvent};

use crate::{
    cancel::Cancel,
    destination::Destination,
    kernel::{Kernel, WeakKernel},
    monitor::ExitReason,
    node_name::NodeName,
    pid::Pid,
};

/// A reference to a monitor or a timer an actor set, to cancel it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ref(pub(crate) u64);

impl fmt::Display for Ref {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#Ref<{}>", self.0)
    }
}

/// A message the runtime sends an actor, as the BEAM's system messages that reach a
/// GenServer's `handle_info`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Info {
    /// Something it monitors is down (`{:DOWN, ref, :process, object, reason}`).
    Down {
        /// The monitor.
        monitor: Ref,
        /// What was monitored.
        dest: Destination,
        /// Why it is down.
        reason: ExitReason,
    },
    /// An actor it is linked to exited, and it traps exits (`{:EXIT, pid, reason}`).
    Exit {
        /// The actor that exited.
        from: Pid,
        /// Why.
        reason: ExitReason,
    },
    /// A node it monitors went down, or, when it follows every node, any node
    /// (`{:nodedown, node}`).
    NodeDown {
        /// The monitor (for a node monitor) or `None` (for node events).
        monitor: Option<Ref>,
        /// The node.
        node: NodeName,
        /// Why, as the node layer says it (`connection_closed`, `net_tick_timeout`, ...).
        reason: String,
    },
    /// A node connected, for an actor that follows every node (`{:nodeup, node}`).
    NodeUp {
        /// The node.
        node: NodeName,
    },
}

/// Where an actor's [`Info`] messages go.
pub(crate) type InfoSink = Arc<dyn Fn(Info) + Send + Sync>;

/// What a monitor of a local actor is told, once: its exit reason.
type DownFn = Box<dyn FnOnce(ExitReason) + Send>;

/// What the table keeps for one live actor.
#[derive(Default)]
struct Entry {
    /// The actors it is linked to, on this node and others.
    links: HashSet<Pid>,
    /// Whether exit signals reach it as [`Info::Exit`].
    trap: bool,
    /// Where its infos go, once it has a handler context.
    info: Option<InfoSink>,
    /// Its exit reason when it was decided before it stopped (an exit signal).
    reason: Option<ExitReason>,
    /// Monitors of it: each is told its exit reason.
    watchers: Vec<(u64, DownFn)>,
    /// The timers and monitors it set, cancelled when it exits.
    handles: HashMap<u64, Cancel>,
    /// Whether the reaper watches it (it may get an entry before, from its own context).
    watched: bool,
}

/// The process table of one node; lives in its kernel.
#[derive(Default)]
pub(crate) struct Processes {
    table: Mutex<HashMap<u64, Entry>>,
    reaper: OnceLock<ActorCell>,
    next_ref: AtomicU64,
}

impl fmt::Debug for Processes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Processes").finish_non_exhaustive()
    }
}

/// What a caller of [`Processes::link`] must send another node.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum LinkOutcome {
    /// Linked on this node, or the caller was told `noproc`.
    Done,
    /// Linked here; the peer must be told.
    Remote,
}

impl Processes {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Entry>> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A new reference, unique on this node.
    pub(crate) fn make_ref(&self) -> Ref {
        Ref(self.next_ref.fetch_add(1, Ordering::Relaxed) + 1)
    }

    /// Starts watching `cell`'s exits; called once an actor is started.
    pub(crate) fn watch(&self, cell: &ActorCell) {
        let Some(reaper) = self.reaper.get() else {
            return; // a kernel without a reaper (no runtime yet): nothing to tell anyone
        };
        self.lock().entry(cell.get_id().pid()).or_default().watched = true;
        reaper.monitor(cell.clone());
        if cell.get_status() == ractor::ActorStatus::Stopped {
            // It stopped before the reaper watched it: its exit event went to nobody.
            let _ = reaper.send_message(ReaperMsg::Stopped(cell.get_id().pid()));
        }
    }

    /// Sets where the infos of actor `id` go.
    pub(crate) fn set_info(&self, id: u64, sink: InfoSink) {
        self.lock().entry(id).or_default().info = Some(sink);
    }

    /// Decides actor `id`'s exit reason before it stops (the reaper reports this one rather
    /// than the string ractor carries).
    pub(crate) fn set_reason(&self, id: u64, reason: ExitReason) {
        if let Some(entry) = self.lock().get_mut(&id) {
            entry.reason.get_or_insert(reason);
        }
    }

    /// Sends `info` to actor `id`, if it has a context.
    pub(crate) fn deliver_info(&self, id: u64, info: Info) {
        let sink = self.lock().get(&id).and_then(|e| e.info.clone());
        if let Some(sink) = sink {
            sink(info);
        }
    }

    /// Makes actor `id` trap exits, or stop trapping them; returns the previous setting.
    pub(crate) fn set_trap(&self, id: u64, trap: bool) -> bool {
        std::mem::replace(&mut self.lock().entry(id).or_default().trap, trap)
    }

    /// Keeps `cancel` for actor `id` under `r` (a timer or a monitor it set): cancelled when
    /// it exits or by [`Processes::cancel`]. If the actor is already gone, cancels at once.
    pub(crate) fn keep(&self, id: u64, r: Ref, cancel: Cancel) {
        let mut table = self.lock();
        match table.get_mut(&id) {
            Some(entry) => {
                entry.handles.insert(r.0, cancel);
            }
            None => {
                drop(table);
                cancel.cancel();
            }
        }
    }

    /// Forgets `r` of actor `id` (it fired); returns whether it was still set.
    pub(crate) fn forget(&self, id: u64, r: Ref) -> bool {
        self.lock()
            .get_mut(&id)
            .is_some_and(|e| e.handles.remove(&r.0).is_some())
    }

    /// Cancels `r` of actor `id`; returns whether it was still set.
    pub(crate) fn cancel(&self, id: u64, r: Ref) -> bool {
        let cancel = self
            .lock()
            .get_mut(&id)
            .and_then(|e| e.handles.remove(&r.0));
        cancel.map(|c| c.cancel()).is_some()
    }

    /// Monitors the local actor `id`: `down` is called once with its exit reason. Returns
    /// the monitor's number, or hands `down` back when the actor is not alive (`noproc`).
    #[allow(clippy::type_complexity)]
    pub(crate) fn add_watcher(
        &self,
        id: u64,
        down: Box<dyn FnOnce(ExitReason) + Send>,
    ) -> Result<u64, Box<dyn FnOnce(ExitReason) + Send>> {
        let mut table = self.lock();
        match table.get_mut(&id) {
            Some(entry) if entry.watched => {
                let n = self.next_ref.fetch_add(1, Ordering::Relaxed) + 1;
                entry.watchers.push((n, down));
                Ok(n)
            }
            _ => Err(down),
        }
    }

    /// Removes monitor `n` of actor `id`.
    pub(crate) fn remove_watcher(&self, id: u64, n: u64) {
        if let Some(entry) = self.lock().get_mut(&id) {
            entry.watchers.retain(|(m, _)| *m != n);
        }
    }

    /// Links the local actor `me` to `other`.
    ///
    /// For a local `other` both sides are linked, or, when `other` is not alive, `me` gets an
    /// exit signal `noproc` at once (as the BEAM). For a pid of another node only `me`'s side
    /// is recorded: the caller tells the peer ([`LinkOutcome::Remote`]).
    pub(crate) fn link(&self, kernel: &Kernel, me: &Pid, other: &Pid) -> LinkOutcome {
        if me == other {
            return LinkOutcome::Done;
        }
        if !is_local(kernel, other) {
            self.lock()
                .entry(me.id())
                .or_default()
                .links
                .insert(other.clone());
            return LinkOutcome::Remote;
        }
        let mut table = self.lock();
        let alive = table.get(&other.id()).is_some_and(|e| e.watched);
        if alive {
            table
                .entry(me.id())
                .or_default()
                .links
                .insert(other.clone());
            if let Some(entry) = table.get_mut(&other.id()) {
                entry.links.insert(me.clone());
            }
            LinkOutcome::Done
        } else {
            drop(table);
            self.signal(kernel, me.id(), other.clone(), ExitReason::NoProc);
            LinkOutcome::Done
        }
    }

    /// A peer's actor `from` links to our actor `to`: recorded, or answered with an exit
    /// `noproc` that the caller sends back (returned).
    pub(crate) fn link_from_peer(&self, to: u64, from: Pid) -> Option<ExitReason> {
        let mut table = self.lock();
        match table.get_mut(&to) {
            Some(entry) if entry.watched => {
                entry.links.insert(from);
                None
            }
            _ => Some(ExitReason::NoProc),
        }
    }

    /// Removes the link between the local actor `me` and `other` on both sides that live
    /// here; returns whether `other` lives on another node (whose side the caller removes).
    pub(crate) fn unlink(&self, kernel: &Kernel, me: &Pid, other: &Pid) -> bool {
        let mut table = self.lock();
        if let Some(entry) = table.get_mut(&me.id()) {
            entry.links.remove(other);
        }
        if is_local(kernel, other) {
            if let Some(entry) = table.get_mut(&other.id()) {
                entry.links.remove(me);
            }
            false
        } else {
            true
        }
    }

    /// A peer's actor `from` unlinked from our actor `to`.
    pub(crate) fn unlink_from_peer(&self, to: u64, from: &Pid) {
        if let Some(entry) = self.lock().get_mut(&to) {
            entry.links.remove(from);
        }
    }

    /// An exit signal from `from` to the local actor `to`: the link between them is gone; a
    /// trapping actor gets [`Info::Exit`], another stops with `reason` unless it is normal.
    pub(crate) fn signal(&self, kernel: &Kernel, to: u64, from: Pid, reason: ExitReason) {
        let mut table = self.lock();
        let Some(entry) = table.get_mut(&to) else {
            return;
        };
        entry.links.remove(&from);
        if entry.trap {
            if let Some(sink) = entry.info.clone() {
                drop(table);
                tracing::debug!(parent: &kernel.span, %from, %reason, "exit signal trapped");
                sink(Info::Exit { from, reason });
                return;
            }
        }
        if !reason.propagates() {
            return;
        }
        if entry.reason.is_none() {
            entry.reason = Some(reason.clone());
        }
        drop(table);
        tracing::debug!(parent: &kernel.span, %from, %reason, "exit signal stops a linked actor");
        kernel.registry.with_pid(to, |cell| match reason {
            ExitReason::Killed => cell.kill(),
            _ => cell.stop(Some(reason.to_string())),
        });
    }

    /// The node `node` went down: every link to a pid of it is an exit `noconnection`.
    pub(crate) fn node_down(&self, kernel: &Kernel, node: &NodeName) {
        let signals: Vec<(u64, Pid)> = self
            .lock()
            .iter()
            .flat_map(|(id, entry)| {
                entry
                    .links
                    .iter()
                    .filter(|pid| pid.node() == node)
                    .map(|pid| (*id, pid.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        for (to, from) in signals {
            self.signal(kernel, to, from, ExitReason::NoConnection);
        }
    }

    /// Actor `id` stopped with `reason` (as ractor saw it): fires its monitors, cancels
    /// what it had set, and signals its links.
    fn exited(&self, kernel: &Kernel, id: u64, reason: ExitReason) {
        let Some(entry) = self.lock().remove(&id) else {
            return;
        };
        let reason = entry.reason.unwrap_or(reason);
        tracing::debug!(parent: &kernel.span, id, %reason, "actor exited");
        for cancel in entry.handles.into_values() {
            cancel.cancel();
        }
        for (_, down) in entry.watchers {
            down(reason.clone());
        }
        let me = Pid::new(kernel.node.clone(), kernel.creation, id);
        for other in entry.links {
            if is_local(kernel, &other) {
                self.signal(kernel, other.id(), me.clone(), reason.clone());
            } else if let Some(transport) = kernel.transport() {
                transport.exit(other.node().clone(), me.clone(), other, reason.clone());
            }
        }
    }

    /// Starts the node's reaper; once, when its `System` starts.
    pub(crate) async fn start_reaper(kernel: &Kernel) -> Result<(), ractor::SpawnErr> {
        let (reaper, _) = Actor::spawn(None, Reaper, kernel.downgrade()).await?;
        if let Err(extra) = kernel.processes.reaper.set(reaper.get_cell()) {
            extra.stop(None);
        }
        Ok(())
    }

    /// Stops the reaper (the node is going away).
    pub(crate) fn stop_reaper(&self) {
        if let Some(reaper) = self.reaper.get() {
            reaper.stop(Some("shutdown".into()));
        }
    }
}

fn is_local(kernel: &Kernel, pid: &Pid) -> bool {
    *pid.node() == kernel.node && pid.creation() == kernel.creation
}

/// The reaper's own messages.
pub(crate) enum ReaperMsg {
    /// This actor stopped before the reaper watched it.
    Stopped(u64),
}

/// Learns how every actor of its node ended (it monitors them) and tells the table.
struct Reaper;

impl Actor for Reaper {
    type Msg = ReaperMsg;
    type State = WeakKernel;
    type Arguments = WeakKernel;

    async fn pre_start(
        &self,
        _myself: ActorRef<ReaperMsg>,
        kernel: WeakKernel,
    ) -> Result<WeakKernel, ActorProcessingErr> {
        Ok(kernel)
    }

    async fn handle(
        &self,
        _myself: ActorRef<ReaperMsg>,
        message: ReaperMsg,
        kernel: &mut WeakKernel,
    ) -> Result<(), ActorProcessingErr> {
        let ReaperMsg::Stopped(id) = message;
        if let Some(kernel) = kernel.upgrade() {
            kernel.processes.exited(&kernel, id, ExitReason::Normal);
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<ReaperMsg>,
        event: SupervisionEvent,
        kernel: &mut WeakKernel,
    ) -> Result<(), ActorProcessingErr> {
        let Some(kernel) = kernel.upgrade() else {
            return Ok(());
        };
        let (id, reason) = match event {
            SupervisionEvent::ActorTerminated(cell, _, reason) => (
                cell.get_id().pid(),
                ExitReason::from_stop(reason.as_deref()),
            ),
            SupervisionEvent::ActorFailed(cell, error) => {
                (cell.get_id().pid(), ExitReason::Failed(error.to_string()))
            }
            _ => return Ok(()),
        };
        kernel.processes.exited(&kernel, id, reason);
        Ok(())
    }
}
