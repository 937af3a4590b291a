//! OTP supervisors on top of ractor.
//!
//! ractor gives each actor a parent that hears about its exit; it has no restart strategies,
//! no restart intensity and no ordered shutdown (an exiting ractor actor kills its children
//! without running their `post_stop`). [`Supervisor`] is an actor that adds all three, with
//! OTP's rules:
//!
//! - children start in order; if one fails to start, those already started are stopped and
//!   the supervisor fails to start;
//! - on an exit, the child's [`Restart`] type decides whether anything restarts, and the
//!   [`Strategy`] decides what: the child (`OneForOne`), every child (`OneForAll`), or the
//!   child and those started after it (`RestForOne`); the others are stopped first in reverse
//!   start order, then everything restarts in start order;
//! - more than `max_restarts` restarts within `max_seconds` (default 3 in 5 s) make the
//!   supervisor give up, as OTP's: it logs why
//!   ([`SupervisorError::RestartIntensity`](crate::SupervisorError::RestartIntensity)), stops
//!   its children and exits with reason `shutdown`, so its own supervisor restarts it only
//!   if it is [`Restart::Permanent`] there (a `Transient` or `Temporary` one stays stopped);
//! - when the supervisor stops, its children stop in reverse start order, each by its
//!   [`Shutdown`]: asked to stop (its `post_stop` runs) and killed after the timeout, or
//!   killed at once for [`Shutdown::BrutalKill`].
//!
//! Children can be added and stopped while it runs, as in OTP:
//! [`Supervisor::start_child`], [`Supervisor::terminate_child`] (which keeps the child's spec,
//! listed as not running), [`Supervisor::restart_child`] and [`Supervisor::delete_child`].
//!
//! A child with a [name](ChildSpec::name) is registered on the node each time it starts, so
//! `whereis` finds the new instance after a restart.
//!
//! This layer sits above the node's kernel and below `System`: a supervisor holds the
//! node's kernel (weakly), not the `System` that owns the root supervisor. The entry points
//! that take or hand out a whole `System` ([`Supervisor::start`], [`ChildSpec::from_fn`])
//! are defined with `System`, one floor up.
//!
//! ```
//! # use ractor::{Actor, ActorRef, ActorProcessingErr};
//! # #[derive(Clone)] struct Worker;
//! # impl Actor for Worker { type Msg = (); type State = (); type Arguments = ();
//! #   async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> { Ok(()) } }
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use actor_core::{ChildSpec, Strategy, Supervisor, SupervisorSpec, System, SystemConfig};
//! let system = System::start(SystemConfig::default()).await?;
//! let spec = SupervisorSpec::new(Strategy::RestForOne)
//!     .child(ChildSpec::new("db", Worker, ()).name("db"))
//!     .child(ChildSpec::new("cache", Worker, ()).name("cache"));
//! let sup = Supervisor::start(&system, Some("app"), spec).await?;
//! let children = Supervisor::which_children(&sup).await?;
//! assert_eq!(children.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), ["db", "cache"]);
//! # system.shutdown().await; Ok(()) }
//! ```

mod intensity;
mod spec;
#[cfg(test)]
mod tests;

use std::time::Duration;

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tokio::time::Instant;
use tracing::Instrument;

pub use intensity::Intensity;
pub(crate) use spec::spawn_linked;
pub use spec::{ChildSpec, Shutdown, Strategy, SupervisorSpec};

use crate::{
    error::{SpawnError, SupervisorError},
    kernel::{Kernel, WeakKernel},
    restart::Restart,
};

/// How long to wait for a killed actor to finish exiting before giving up on it.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// The exit reason of a supervisor that gave up (OTP's `shutdown`), and the stop reason it
/// gives its children.
pub(crate) const SHUTDOWN: &str = "shutdown";

/// The supervisor actor. Start one with [`Supervisor::start`] or nest one with
/// [`ChildSpec::supervisor`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Supervisor;

/// A message for a [`Supervisor`]. Opaque: use the functions on [`Supervisor`].
pub struct SupervisorMsg(Op);

impl std::fmt::Debug for SupervisorMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SupervisorMsg")
    }
}

enum Op {
    /// Add and start a child.
    StartChild(ChildSpec, RpcReplyPort<Result<ActorCell, SupervisorError>>),
    /// Stop a child, keeping its spec (a temporary child's is removed).
    TerminateChild(String, RpcReplyPort<Result<(), SupervisorError>>),
    /// Start a child that is not running again from its spec.
    RestartChild(String, RpcReplyPort<Result<ActorCell, SupervisorError>>),
    /// Remove the spec of a child that is not running.
    DeleteChild(String, RpcReplyPort<Result<(), SupervisorError>>),
    /// List the children.
    WhichChildren(RpcReplyPort<Vec<ChildInfo>>),
}

/// One child of a supervisor, as [`Supervisor::which_children`] reports it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ChildInfo {
    /// The child's id.
    pub id: String,
    /// The name it is registered under, if any.
    pub name: Option<String>,
    /// The running actor, or `None` if it is not running: stopped by
    /// [`Supervisor::terminate_child`], or a transient child that ended normally. Its spec is
    /// kept: [`Supervisor::restart_child`] starts it again, [`Supervisor::delete_child`]
    /// removes it.
    pub actor: Option<ActorCell>,
    /// Its restart type.
    pub restart: Restart,
}

impl ChildInfo {
    /// Whether the child is running (OTP lists a stopped child with pid `undefined`).
    pub fn is_running(&self) -> bool {
        self.actor.is_some()
    }
}

/// Arguments of the [`Supervisor`] actor: made by [`Supervisor::start`] and
/// [`ChildSpec::supervisor`], never by hand.
#[derive(Debug)]
pub struct SupervisorArgs {
    kernel: WeakKernel,
    label: String,
    spec: SupervisorSpec,
    span: tracing::Span,
}

struct Child {
    spec: ChildSpec,
    cell: Option<ActorCell>,
}

/// State of the [`Supervisor`] actor.
pub struct SupervisorState {
    kernel: WeakKernel,
    span: tracing::Span,
    label: String,
    spec: SupervisorSpec,
    intensity: Intensity,
    children: Vec<Child>,
}

impl std::fmt::Debug for SupervisorState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SupervisorState")
            .field("label", &self.label)
            .field(
                "children",
                &self.children.iter().map(|c| &c.spec.id).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// Whether an exit counts as normal for [`Restart::Transient`], as OTP's `normal`,
/// `shutdown` and `{shutdown, _}`.
pub(crate) fn is_normal_exit(reason: Option<&str>) -> bool {
    match reason {
        None => true,
        Some(r) => r == "normal" || r == "shutdown" || r.starts_with("shutdown:"),
    }
}

/// Stops `cell` as `shutdown` says and waits for it.
pub(crate) async fn stop_child(cell: &ActorCell, shutdown: Shutdown) {
    let stopped = match shutdown {
        Shutdown::BrutalKill => false,
        Shutdown::Infinity => cell
            .stop_and_wait(Some(SHUTDOWN.into()), None)
            .await
            .is_ok(),
        Shutdown::Timeout(d) => cell
            .stop_and_wait(Some(SHUTDOWN.into()), Some(d))
            .await
            .is_ok(),
    };
    if !stopped
        && registry_alive(cell)
        && cell.kill_and_wait(Some(KILL_WAIT)).await.is_err()
        && registry_alive(cell)
    {
        tracing::error!(actor = %cell.get_id(), "child did not exit within {KILL_WAIT:?} of being killed");
    }
}

/// The reply of a ractor call, if there was one.
pub(crate) fn success<T>(result: ractor::rpc::CallResult<T>) -> Option<T> {
    match result {
        ractor::rpc::CallResult::Success(t) => Some(t),
        _ => None,
    }
}

fn registry_alive(cell: &ActorCell) -> bool {
    crate::registry::is_alive(cell)
}

async fn start_one(
    kernel: &Kernel,
    supervisor: &ActorCell,
    spec: &ChildSpec,
) -> Result<ActorCell, SpawnError> {
    let cell = (spec.start)(kernel.clone(), supervisor.clone()).await?;
    if let Some(name) = &spec.name {
        if let Err(e) = kernel.registry.register_cell(name, cell.clone()) {
            cell.unlink(supervisor.clone());
            cell.kill();
            return Err(e.into());
        }
    }
    Ok(cell)
}

impl SupervisorState {
    async fn stop_all(&mut self) {
        for child in self.children.iter_mut().rev() {
            if let Some(cell) = child.cell.take() {
                stop_child(&cell, child.spec.shutdown).await;
            }
        }
    }

    /// Past the restart intensity: logs why, stops the children and exits with reason
    /// `shutdown`, as OTP's supervisor does (so a `Transient` parent leaves it stopped).
    async fn give_up(&mut self, myself: &ActorCell) {
        let err = SupervisorError::RestartIntensity {
            name: self.label.clone(),
            max_restarts: self.spec.max_restarts,
            max_seconds: self.spec.max_seconds,
        };
        tracing::error!(supervisor = %self.label, "{err}");
        self.stop_all().await;
        myself.stop(Some(SHUTDOWN.into()));
    }

    async fn on_exit(
        &mut self,
        myself: &ActorCell,
        cell: &ActorCell,
        abnormal: bool,
        reason: &str,
    ) -> Result<(), ActorProcessingErr> {
        let id = cell.get_id();
        let Some(idx) = self
            .children
            .iter()
            .position(|c| c.cell.as_ref().is_some_and(|c| c.get_id() == id))
        else {
            return Ok(()); // not ours any more (we stopped it ourselves)
        };
        self.children[idx].cell = None;
        let restart = self.children[idx].spec.restart;
        let child_id = self.children[idx].spec.id.clone();
        let wanted = match restart {
            Restart::Permanent => true,
            Restart::Transient => abnormal,
            Restart::Temporary => false,
        };
        if !wanted {
            tracing::debug!(supervisor = %self.label, child = %child_id, reason, "child exited; not restarted ({restart:?})");
            if restart == Restart::Temporary {
                self.children.remove(idx);
            }
            return Ok(());
        }
        if abnormal {
            tracing::warn!(supervisor = %self.label, child = %child_id, reason, "child exited abnormally; restarting");
        }
        if !self.intensity.record(Instant::now()) {
            self.give_up(myself).await;
            return Ok(());
        }
        let affected = match self.spec.strategy {
            Strategy::OneForOne => idx..idx + 1,
            Strategy::OneForAll => 0..self.children.len(),
            Strategy::RestForOne => idx..self.children.len(),
        };
        for child in self.children[affected.clone()].iter_mut().rev() {
            if let Some(cell) = child.cell.take() {
                stop_child(&cell, child.spec.shutdown).await;
            }
        }
        let ids: Vec<String> = self.children[affected]
            .iter()
            .filter(|c| c.spec.restart != Restart::Temporary || c.spec.id == child_id)
            .map(|c| c.spec.id.clone())
            .collect();
        self.children.retain(|c| {
            c.cell.is_some() || c.spec.restart != Restart::Temporary || ids.contains(&c.spec.id)
        });
        self.children
            .retain(|c| !(c.spec.restart == Restart::Temporary && c.cell.is_none()));
        self.restart(myself, ids).await
    }

    async fn restart(
        &mut self,
        myself: &ActorCell,
        ids: Vec<String>,
    ) -> Result<(), ActorProcessingErr> {
        let kernel = self.kernel.upgrade().ok_or(SpawnError::SystemStopped)?;
        for id in ids {
            while let Some(child) = self.children.iter_mut().find(|c| c.spec.id == id) {
                match start_one(&kernel, myself, &child.spec).await {
                    Ok(cell) => {
                        child.cell = Some(cell);
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(supervisor = %self.label, child = %id, "restart failed: {e}");
                        if !self.intensity.record(Instant::now()) {
                            self.give_up(myself).await;
                            return Ok(());
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: SupervisorArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let mut state = SupervisorState {
            kernel: args.kernel,
            span: args.span,
            label: args.label,
            intensity: Intensity::new(args.spec.max_restarts, args.spec.max_seconds),
            children: Vec::with_capacity(args.spec.children.len()),
            spec: args.spec,
        };
        let Some(kernel) = state.kernel.upgrade() else {
            return Err(Box::new(SpawnError::SystemStopped));
        };
        for spec in state.spec.children.clone() {
            match start_one(&kernel, &myself.get_cell(), &spec).await {
                Ok(cell) => state.children.push(Child {
                    spec,
                    cell: Some(cell),
                }),
                Err(e) => {
                    state.stop_all().await;
                    return Err(Box::new(e));
                }
            }
        }
        Ok(state)
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.stop_all().await;
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let SupervisorMsg(op) = msg;
        match op {
            Op::StartChild(spec, reply) => {
                let result = match state.children.iter().find(|c| c.spec.id == spec.id) {
                    Some(c) if c.cell.is_some() => {
                        Err(SupervisorError::AlreadyStarted { id: spec.id })
                    }
                    Some(_) => Err(SupervisorError::AlreadyPresent { id: spec.id }),
                    None => match state.kernel.upgrade() {
                        None => Err(SpawnError::SystemStopped.into()),
                        Some(kernel) => match start_one(&kernel, &myself.get_cell(), &spec).await {
                            Ok(cell) => {
                                state.children.push(Child {
                                    spec,
                                    cell: Some(cell.clone()),
                                });
                                Ok(cell)
                            }
                            Err(e) => Err(e.into()),
                        },
                    },
                };
                let _ = reply.send(result);
            }
            Op::TerminateChild(id, reply) => {
                let result = match state.children.iter().position(|c| c.spec.id == id) {
                    None => Err(SupervisorError::NotFound { id }),
                    Some(idx) => {
                        // Taken first: its exit is then not ours to restart.
                        let cell = state.children[idx].cell.take();
                        let shutdown = state.children[idx].spec.shutdown;
                        // OTP keeps the spec, except a temporary child's.
                        if state.children[idx].spec.restart == Restart::Temporary {
                            state.children.remove(idx);
                        }
                        if let Some(cell) = cell {
                            stop_child(&cell, shutdown).await;
                        }
                        Ok(())
                    }
                };
                let _ = reply.send(result);
            }
            Op::RestartChild(id, reply) => {
                let result = match state.children.iter().position(|c| c.spec.id == id) {
                    None => Err(SupervisorError::NotFound { id }),
                    Some(idx) if state.children[idx].cell.is_some() => {
                        Err(SupervisorError::Running { id })
                    }
                    Some(idx) => match state.kernel.upgrade() {
                        None => Err(SpawnError::SystemStopped.into()),
                        Some(kernel) => {
                            let spec = &state.children[idx].spec;
                            match start_one(&kernel, &myself.get_cell(), spec).await {
                                Ok(cell) => {
                                    state.children[idx].cell = Some(cell.clone());
                                    Ok(cell)
                                }
                                Err(e) => Err(e.into()),
                            }
                        }
                    },
                };
                let _ = reply.send(result);
            }
            Op::DeleteChild(id, reply) => {
                let result = match state.children.iter().position(|c| c.spec.id == id) {
                    None => Err(SupervisorError::NotFound { id }),
                    Some(idx) if state.children[idx].cell.is_some() => {
                        Err(SupervisorError::Running { id })
                    }
                    Some(idx) => {
                        state.children.remove(idx);
                        Ok(())
                    }
                };
                let _ = reply.send(result);
            }
            Op::WhichChildren(reply) => {
                let infos = state
                    .children
                    .iter()
                    .map(|c| ChildInfo {
                        id: c.spec.id.clone(),
                        name: c.spec.name.clone(),
                        actor: c.cell.clone(),
                        restart: c.spec.restart,
                    })
                    .collect();
                let _ = reply.send(infos);
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, abnormal, reason) = match event {
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                let abnormal = !is_normal_exit(reason.as_deref());
                (cell, abnormal, reason.unwrap_or_else(|| "normal".into()))
            }
            SupervisionEvent::ActorFailed(cell, err) => (cell, true, err.to_string()),
            _ => return Ok(()),
        };
        let span = state.span.clone();
        state
            .on_exit(&myself.get_cell(), &cell, abnormal, &reason)
            .instrument(span)
            .await
    }
}

impl Supervisor {
    /// Spawns a supervisor actor on the node of `kernel`, linked to `parent` if given, and
    /// adds it to the node's pids. `Supervisor::start` and `System::start` (the root) use
    /// it unlinked, [`ChildSpec::supervisor`] linked.
    pub(crate) async fn spawn(
        kernel: &Kernel,
        label: String,
        spec: SupervisorSpec,
        parent: Option<ActorCell>,
    ) -> Result<ActorRef<SupervisorMsg>, SpawnError> {
        let args = SupervisorArgs {
            kernel: kernel.downgrade(),
            label: label.clone(),
            spec,
            span: kernel.span.clone(),
        };
        let spawned = match parent {
            None => Actor::spawn(None, Supervisor, args).await,
            Some(parent) => Actor::spawn_linked(None, Supervisor, args, parent).await,
        };
        let (actor, _) = spawned.map_err(|e| SpawnError::StartFailed {
            what: label,
            reason: e.to_string(),
        })?;
        kernel.adopt(&actor.get_cell());
        Ok(actor)
    }

    /// Adds `spec` to the running supervisor and starts it, as OTP's `start_child`.
    ///
    /// # Errors
    /// [`SupervisorError::AlreadyStarted`] if a child with that id runs,
    /// [`SupervisorError::AlreadyPresent`] if one is kept but not running (start that one
    /// with [`Supervisor::restart_child`], or remove it with [`Supervisor::delete_child`]),
    /// a [`SpawnError`], or [`SupervisorError::NotRunning`].
    pub async fn start_child(
        supervisor: &ActorRef<SupervisorMsg>,
        spec: ChildSpec,
    ) -> Result<ActorCell, SupervisorError> {
        Self::ask(supervisor, |reply| Op::StartChild(spec, reply)).await
    }

    /// Stops the child `id` (by its [`Shutdown`]) and keeps its spec, as OTP's
    /// `terminate_child`: [`Supervisor::which_children`] lists it as not running,
    /// [`Supervisor::restart_child`] starts it again and [`Supervisor::delete_child`] removes
    /// it. A [`Restart::Temporary`] child's spec is removed. Stopping a child that is not
    /// running is `Ok`.
    ///
    /// ```
    /// # use ractor::{Actor, ActorRef, ActorProcessingErr};
    /// # #[derive(Clone)] struct Worker;
    /// # impl Actor for Worker { type Msg = (); type State = (); type Arguments = ();
    /// #   async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> { Ok(()) } }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use actor_core::{ChildSpec, Supervisor, SupervisorError, SupervisorSpec, System, SystemConfig};
    /// let system = System::start(SystemConfig::default()).await?;
    /// let spec = SupervisorSpec::default().child(ChildSpec::new("worker", Worker, ()));
    /// let sup = Supervisor::start(&system, None, spec).await?;
    ///
    /// Supervisor::terminate_child(&sup, "worker").await?;
    /// let children = Supervisor::which_children(&sup).await?;
    /// assert!(children[0].id == "worker" && !children[0].is_running());
    /// let again = Supervisor::start_child(&sup, ChildSpec::new("worker", Worker, ())).await;
    /// assert!(matches!(again, Err(SupervisorError::AlreadyPresent { .. })));
    ///
    /// Supervisor::restart_child(&sup, "worker").await?; // running again
    /// Supervisor::terminate_child(&sup, "worker").await?;
    /// Supervisor::delete_child(&sup, "worker").await?; // gone
    /// assert!(Supervisor::which_children(&sup).await?.is_empty());
    /// # system.shutdown().await; Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`SupervisorError::NotFound`] or [`SupervisorError::NotRunning`].
    pub async fn terminate_child(
        supervisor: &ActorRef<SupervisorMsg>,
        id: &str,
    ) -> Result<(), SupervisorError> {
        let id = id.to_string();
        Self::ask(supervisor, |reply| Op::TerminateChild(id, reply)).await
    }

    /// Starts again, from its spec, the child `id` that is kept but not running (after
    /// [`Supervisor::terminate_child`], or a transient child that ended), as OTP's
    /// `restart_child`. This does not count against the restart intensity.
    ///
    /// # Errors
    /// [`SupervisorError::NotFound`], [`SupervisorError::Running`] if it runs, a
    /// [`SpawnError`] if it fails to start (it stays kept, not running), or
    /// [`SupervisorError::NotRunning`].
    pub async fn restart_child(
        supervisor: &ActorRef<SupervisorMsg>,
        id: &str,
    ) -> Result<ActorCell, SupervisorError> {
        let id = id.to_string();
        Self::ask(supervisor, |reply| Op::RestartChild(id, reply)).await
    }

    /// Removes the spec of the child `id`, which must not be running, as OTP's
    /// `delete_child`; its id is then free for [`Supervisor::start_child`].
    ///
    /// # Errors
    /// [`SupervisorError::NotFound`], [`SupervisorError::Running`] if it runs (stop it with
    /// [`Supervisor::terminate_child`] first), or [`SupervisorError::NotRunning`].
    pub async fn delete_child(
        supervisor: &ActorRef<SupervisorMsg>,
        id: &str,
    ) -> Result<(), SupervisorError> {
        let id = id.to_string();
        Self::ask(supervisor, |reply| Op::DeleteChild(id, reply)).await
    }

    /// Calls the supervisor with the request `op` makes.
    async fn ask<T: Send + 'static>(
        supervisor: &ActorRef<SupervisorMsg>,
        op: impl FnOnce(RpcReplyPort<Result<T, SupervisorError>>) -> Op,
    ) -> Result<T, SupervisorError> {
        supervisor
            .call(|reply| SupervisorMsg(op(reply)), None)
            .await
            .ok()
            .and_then(success)
            .ok_or(SupervisorError::NotRunning)?
    }

    /// The children in start order.
    ///
    /// # Errors
    /// [`SupervisorError::NotRunning`].
    pub async fn which_children(
        supervisor: &ActorRef<SupervisorMsg>,
    ) -> Result<Vec<ChildInfo>, SupervisorError> {
        supervisor
            .call(|reply| SupervisorMsg(Op::WhichChildren(reply)), None)
            .await
            .ok()
            .and_then(success)
            .ok_or(SupervisorError::NotRunning)
    }
}
