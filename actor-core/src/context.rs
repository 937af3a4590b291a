//! An actor's handler context: what a GenServer callback can do besides changing its state.
//!
//! A [`Context`] is given to the handlers of a `#[nodus::actor]` that ask for one (a
//! parameter `ctx: &mut Context`), and can be made by hand for a plain ractor actor whose
//! message type takes [`Info`] (`M: From<Info>`). Through it an actor:
//!
//! - knows itself ([`Context::myself`], [`Context::pid`], [`Context::node`]) and, in a call,
//!   its caller ([`Context::caller`]: the calling actor's pid, or at least its node);
//! - monitors actors ([`Context::monitor`], [`Context::demonitor`]) and nodes
//!   ([`Context::monitor_node`], [`Context::monitor_nodes`]): what they report arrives as
//!   [`Info`] messages, to the actor's `#[info]` handler (GenServer's `handle_info`);
//! - links to actors on any node ([`Context::link`], [`Context::unlink`]) and traps exits
//!   ([`Context::trap_exit`]): an abnormal exit of a linked actor stops it too, unless it
//!   traps exits and so receives [`Info::Exit`];
//! - sets timers that send it one of its own messages ([`Context::send_after`],
//!   [`Context::cancel_timer`]), defers work to run before any other message
//!   ([`Context::continue_with`], GenServer's `{:continue, term}`), and stops with a reason
//!   ([`Context::stop`]).
//!
//! Monitors, timers and links set through a context belong to the actor: they are cancelled
//! when it stops.

use std::{collections::VecDeque, fmt, future::Future, time::Duration};

use ractor::{ActorRef, Message};

use crate::{
    cancel::Cancel,
    destination::Destination,
    kernel::Kernel,
    monitor::ExitReason,
    node_name::NodeName,
    pid::Pid,
    process::{Info, LinkOutcome, Ref},
    system::{System, WeakSystem},
};

tokio::task_local! {
    /// The actor whose handler runs on this task, for [`Caller::current`].
    static CURRENT: Pid;
}

/// Runs `f` as the actor `pid`: calls it makes carry `pid` as their [`Caller`]. Generated
/// actors run every handler this way.
pub async fn run_as<F: Future>(pid: Pid, f: F) -> F::Output {
    CURRENT.scope(pid, f).await
}

/// Where a handler runs: as its actor (for [`Caller`]) and with its node's output as its
/// group leader (so `puts!` in an actor writes to its node's output, as `IO.puts` in a
/// GenServer writes to its group leader). From [`Context::scope`].
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct Scope {
    pid: Pid,
    output: Option<crate::io::Output>,
}

/// Runs `f` in `scope`; generated actors run every handler this way.
#[doc(hidden)]
pub async fn run_in<F: Future>(scope: Scope, f: F) -> F::Output {
    match scope.output {
        Some(output) => crate::io::with_group_leader(output, CURRENT.scope(scope.pid, f)).await,
        None => CURRENT.scope(scope.pid, f).await,
    }
}

/// The state of a generated actor: the user's state and the actor's context.
#[doc(hidden)]
#[derive(Debug)]
pub struct Hosted<S, M: Message> {
    /// The user's state.
    pub state: S,
    /// The actor's context.
    pub ctx: Context<M>,
}

impl<S, M: Message + From<Info>> Hosted<S, M> {
    /// The state of the actor `myself` started with `state` on the node `system`.
    ///
    /// # Errors
    /// [`SpawnError::SystemStopped`](crate::error::SpawnError::SystemStopped) when the node is gone.
    pub fn start(
        myself: ActorRef<M>,
        (state, system): (S, WeakSystem),
    ) -> Result<Self, crate::error::SpawnError> {
        let system = system
            .upgrade()
            .ok_or(crate::error::SpawnError::SystemStopped)?;
        Ok(Self {
            state,
            ctx: Context::new(&system, myself),
        })
    }
}

/// Who made a call: the node it came from and, when an actor made it, that actor's pid
/// (GenServer's `from`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Caller {
    node: NodeName,
    pid: Option<Pid>,
}

impl Caller {
    /// The caller for a call made now through `system`: the actor running this code if
    /// there is one on that node, else just the node.
    pub fn current(system: &System) -> Self {
        let pid = CURRENT
            .try_with(Pid::clone)
            .ok()
            .filter(|pid| system.is_current(pid));
        Self {
            node: system.node().clone(),
            pid,
        }
    }

    /// The node the call came from.
    pub fn node(&self) -> &NodeName {
        &self.node
    }

    /// The calling actor, when an actor made the call.
    pub fn pid(&self) -> Option<&Pid> {
        self.pid.as_ref()
    }
}

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.pid {
            Some(pid) => write!(f, "{pid}"),
            None => write!(f, "{}", self.node),
        }
    }
}

/// What a handler can do besides changing its state: its pid and node, a call's caller, monitors, links, timers, `continue` and `stop`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use actor_core::{
///     ractor::{Actor, ActorProcessingErr, ActorRef},
///     Context, Info, System, SystemConfig,
/// };
///
/// /// A plain ractor actor that takes `Info`: it counts its ticks.
/// enum Msg { Tick, Info(Info) }
/// impl From<Info> for Msg {
///     fn from(info: Info) -> Self { Msg::Info(info) }
/// }
///
/// struct Ticker;
/// impl Actor for Ticker {
///     type Msg = Msg;
///     type State = (Context<Msg>, u32, tokio::sync::mpsc::Sender<u32>);
///     type Arguments = (System, tokio::sync::mpsc::Sender<u32>);
///     async fn pre_start(&self, myself: ActorRef<Msg>, (system, out): Self::Arguments)
///         -> Result<Self::State, ActorProcessingErr> {
///         let mut ctx = Context::new(&system, myself);
///         ctx.send_after(Duration::from_millis(1), Msg::Tick);
///         Ok((ctx, 0, out))
///     }
///     async fn handle(&self, _: ActorRef<Msg>, msg: Msg, (ctx, n, out): &mut Self::State)
///         -> Result<(), ActorProcessingErr> {
///         if let Msg::Tick = msg {
///             *n += 1;
///             out.send(*n).await?;
///             if *n < 3 { ctx.send_after(Duration::from_millis(1), Msg::Tick); }
///         }
///         Ok(())
///     }
/// }
///
/// let system = System::start(SystemConfig::default()).await?;
/// let (tx, mut rx) = tokio::sync::mpsc::channel(4);
/// system.spawn(None, Ticker, (system.clone(), tx)).await?;
/// for expected in 1..=3 {
///     assert_eq!(rx.recv().await, Some(expected));
/// }
/// # system.shutdown().await; Ok(()) }
/// ```
pub struct Context<M: Message> {
    system: WeakSystem,
    myself: ActorRef<M>,
    pid: Pid,
    caller: Option<Caller>,
    next: VecDeque<M>,
}

impl<M: Message> fmt::Debug for Context<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("pid", &self.pid)
            .field("caller", &self.caller)
            .finish_non_exhaustive()
    }
}

impl<M: Message + From<Info>> Context<M> {
    /// The context of the actor `myself` of `system`; its [`Info`] messages are sent to it
    /// as `M::from(info)` from now on. Make it once (in `pre_start` or `post_start`) and keep
    /// it in the actor's state.
    pub fn new(system: &System, myself: ActorRef<M>) -> Self {
        let pid = system.pid_of(&myself.get_cell());
        let sink = myself.clone();
        system.kernel().processes.set_info(
            pid.id(),
            std::sync::Arc::new(move |info| {
                let _ = sink.cast(M::from(info));
            }),
        );
        Self {
            system: system.downgrade(),
            myself,
            pid,
            caller: None,
            next: VecDeque::new(),
        }
    }
}

impl<M: Message> Context<M> {
    fn kernel(&self) -> Option<Kernel> {
        self.system.kernel()
    }

    /// The actor itself.
    pub fn myself(&self) -> &ActorRef<M> {
        &self.myself
    }

    /// The actor's pid (`self()`).
    pub fn pid(&self) -> &Pid {
        &self.pid
    }

    /// The actor's node (`node()`).
    pub fn node(&self) -> &NodeName {
        self.pid.node()
    }

    /// The actor's node as a [`System`], while it is up.
    pub fn system(&self) -> Option<System> {
        self.system.upgrade()
    }

    /// Who made the call being handled; `None` in a cast or an info.
    pub fn caller(&self) -> Option<&Caller> {
        self.caller.as_ref()
    }

    /// Monitors `dest` (any destination, on any node) as `Process.monitor/1`: one
    /// [`Info::Down`] with this reference arrives when it stops (with its reason), is not
    /// there (`NoProc`), or its node goes down (`NoConnection`).
    pub fn monitor(&mut self, dest: impl Into<Destination>) -> Ref {
        let dest = dest.into();
        let Some(system) = self.system.upgrade() else {
            return Ref(0);
        };
        let r = system.kernel().processes.make_ref();
        let monitor = system.monitor(dest.clone());
        let (kernel, id, sink) = (system.kernel().downgrade(), self.pid.id(), self.infos());
        let watcher = tokio::spawn(async move {
            let down = monitor.await;
            let Some(kernel) = kernel.upgrade() else {
                return;
            };
            if kernel.processes.forget(id, r) {
                sink(Info::Down {
                    monitor: r,
                    dest,
                    reason: down.reason,
                });
            }
        });
        self.keep(r, watcher.abort_handle());
        r
    }

    /// Removes the monitor or node monitor `r` (`Process.demonitor/1`): no info of it
    /// arrives after this. Returns whether it was still set.
    pub fn demonitor(&mut self, r: Ref) -> bool {
        self.kernel()
            .is_some_and(|k| k.processes.cancel(self.pid.id(), r))
    }

    /// Monitors the node `node` as `Node.monitor/2`: one [`Info::NodeDown`] with this
    /// reference arrives when it goes down, or at once if it cannot be reached (or this node
    /// is not distributed).
    pub fn monitor_node(&mut self, node: impl Into<NodeName>) -> Ref {
        let node = node.into();
        let Some(kernel) = self.kernel() else {
            return Ref(0);
        };
        let r = kernel.processes.make_ref();
        let down = kernel.transport().map(|t| t.monitor_node(node.clone()));
        let (weak, id, sink) = (kernel.downgrade(), self.pid.id(), self.infos());
        let watcher = tokio::spawn(async move {
            let reason = match down {
                Some(down) => down.await,
                None => "noconnection".to_string(),
            };
            if weak.upgrade().is_some_and(|k| k.processes.forget(id, r)) {
                sink(Info::NodeDown {
                    monitor: Some(r),
                    node,
                    reason,
                });
            }
        });
        self.keep(r, watcher.abort_handle());
        r
    }

    /// Follows every visible node as `:net_kernel.monitor_nodes(true)`: an
    /// [`Info::NodeUp`] or [`Info::NodeDown`] (without a monitor reference) for each node
    /// that connects or goes down from now on, until [`Context::demonitor`] of the returned
    /// reference. Nothing arrives on a node that is not distributed.
    pub fn monitor_nodes(&mut self) -> Ref {
        let Some(kernel) = self.kernel() else {
            return Ref(0);
        };
        let r = kernel.processes.make_ref();
        if let Some(transport) = kernel.transport() {
            let sink = self.infos();
            let cancel = transport.subscribe_nodes(std::sync::Arc::new(move |status| {
                sink(match status {
                    crate::seam::NodeStatus::Up(node) => Info::NodeUp { node },
                    crate::seam::NodeStatus::Down(node, reason) => Info::NodeDown {
                        monitor: None,
                        node,
                        reason,
                    },
                });
            }));
            kernel.processes.keep(self.pid.id(), r, cancel);
        }
        r
    }

    /// Links this actor to `other`, on this node or another (`Process.link/1`): when either
    /// stops with a reason other than `Normal`, the other stops with the same reason, or, if
    /// it traps exits, receives [`Info::Exit`]. Linking to an actor that is not alive is an
    /// exit `NoProc` at once; a link to a node that goes down, an exit `NoConnection`.
    pub fn link(&mut self, other: &Pid) {
        let Some(kernel) = self.kernel() else { return };
        if kernel.processes.link(&kernel, &self.pid, other) == LinkOutcome::Remote {
            match kernel.transport() {
                Some(t) => t.link(other.node().clone(), self.pid.clone(), other.clone()),
                None => kernel.processes.signal(
                    &kernel,
                    self.pid.id(),
                    other.clone(),
                    ExitReason::NoConnection,
                ),
            }
        }
    }

    /// Removes the link to `other` (`Process.unlink/1`), on both sides.
    pub fn unlink(&mut self, other: &Pid) {
        let Some(kernel) = self.kernel() else { return };
        if kernel.processes.unlink(&kernel, &self.pid, other) {
            if let Some(t) = kernel.transport() {
                t.unlink(other.node().clone(), self.pid.clone(), other.clone());
            }
        }
    }

    /// Makes exit signals of linked actors arrive as [`Info::Exit`] (`true`) instead of
    /// stopping this actor (`Process.flag(:trap_exit, on)`); returns the previous setting.
    pub fn trap_exit(&mut self, on: bool) -> bool {
        self.kernel()
            .is_some_and(|k| k.processes.set_trap(self.pid.id(), on))
    }

    /// Sends `msg` to this actor after `after` (`Process.send_after/3`); returns the timer's
    /// reference for [`Context::cancel_timer`].
    pub fn send_after(&mut self, after: Duration, msg: M) -> Ref {
        let Some(kernel) = self.kernel() else {
            return Ref(0);
        };
        let r = kernel.processes.make_ref();
        let (weak, id, myself) = (kernel.downgrade(), self.pid.id(), self.myself.clone());
        let timer = tokio::spawn(async move {
            tokio::time::sleep(after).await;
            if weak.upgrade().is_some_and(|k| k.processes.forget(id, r)) {
                let _ = myself.cast(msg);
            }
        });
        self.keep(r, timer.abort_handle());
        r
    }

    /// Cancels the timer `r` (`Process.cancel_timer/1`); returns whether it had not fired.
    pub fn cancel_timer(&mut self, r: Ref) -> bool {
        self.demonitor(r)
    }

    /// Handles `msg` right after the current handler, before any other message
    /// (GenServer's `{:continue, term}`). Generated actors do this by themselves; a plain
    /// actor takes them with [`Context::take_continue`].
    pub fn continue_with(&mut self, msg: M) {
        self.next.push_back(msg);
    }

    /// The next message given to [`Context::continue_with`], if any.
    pub fn take_continue(&mut self) -> Option<M> {
        self.next.pop_front()
    }

    /// Stops this actor with `reason` once the current handler returns (a call's reply is
    /// sent first, as GenServer's `{:stop, reason, reply, state}`). Its monitors see
    /// `reason`, and linked actors get it as an exit signal.
    pub fn stop(&mut self, reason: ExitReason) {
        if let Some(kernel) = self.kernel() {
            kernel.processes.set_reason(self.pid.id(), reason.clone());
        }
        self.next.clear();
        self.myself.stop(Some(reason.to_string()));
    }

    /// Where this actor's handlers run: see [`run_in`].
    #[doc(hidden)]
    pub fn scope(&self) -> Scope {
        Scope {
            pid: self.pid.clone(),
            output: self.kernel().map(|k| k.output()),
        }
    }

    /// The node's `node{node=…}` span, under which a traced handler's span goes.
    #[doc(hidden)]
    pub fn node_span(&self) -> tracing::Span {
        self.kernel()
            .map_or_else(tracing::Span::none, |k| k.span.clone())
    }

    /// Starts handling a message from `caller` (`None` for a cast or an info); generated
    /// actors call it before each handler.
    #[doc(hidden)]
    pub fn begin(&mut self, caller: Option<Caller>) {
        self.caller = caller;
    }

    fn infos(&self) -> impl Fn(Info) + Send + Sync + 'static {
        let (system, id) = (self.system.clone(), self.pid.id());
        move |info| {
            if let Some(kernel) = system.kernel() {
                kernel.processes.deliver_info(id, info);
            }
        }
    }

    fn keep(&self, r: Ref, abort: tokio::task::AbortHandle) {
        match self.kernel() {
            Some(kernel) => {
                kernel
                    .processes
                    .keep(self.pid.id(), r, Cancel::new(move || abort.abort()));
            }
            None => abort.abort(),
        }
    }
}
