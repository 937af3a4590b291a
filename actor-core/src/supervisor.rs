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
//!   supervisor stop its children and fail with
//!   [`SupervisorError::RestartIntensity`](crate::SupervisorError::RestartIntensity), which
//!   its parent sees as an ordinary failure;
//! - when the supervisor stops, its children stop in reverse start order, each by its
//!   [`Shutdown`]: asked to stop (its `post_stop` runs) and killed after the timeout, or
//!   killed at once for [`Shutdown::BrutalKill`].
//!
//! A child with a [name](ChildSpec::name) is registered on the node each time it starts, so
//! `whereis` finds the new instance after a restart.
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

pub(crate) use intensity::Intensity;
pub use spec::{ChildSpec, Restart, Shutdown, Strategy, SupervisorSpec};

use crate::{system::WeakSystem, SpawnError, SupervisorError, System};

/// How long to wait for a killed actor to finish exiting before giving up on it.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// The supervisor actor. Start one with [`Supervisor::start`] or nest one with
/// [`ChildSpec::supervisor`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Supervisor;

/// Messages a [`Supervisor`] takes; use the functions on [`Supervisor`] rather than these.
#[derive(Debug)]
#[non_exhaustive]
pub enum SupervisorMsg {
    /// Add and start a child.
    StartChild(ChildSpec, RpcReplyPort<Result<ActorCell, SupervisorError>>),
    /// Stop a child and remove it.
    TerminateChild(String, RpcReplyPort<Result<(), SupervisorError>>),
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
    /// The running actor, or `None` if it is not running (a transient child that ended).
    pub actor: Option<ActorCell>,
    /// Its restart type.
    pub restart: Restart,
}

/// Arguments of the [`Supervisor`] actor.
#[derive(Debug)]
pub struct SupervisorArgs {
    system: WeakSystem,
    label: String,
    spec: SupervisorSpec,
    span: tracing::Span,
}

impl SupervisorArgs {
    pub(crate) fn new(
        system: WeakSystem,
        label: String,
        spec: SupervisorSpec,
        span: tracing::Span,
    ) -> Self {
        Self {
            system,
            label,
            spec,
            span,
        }
    }
}

struct Child {
    spec: ChildSpec,
    cell: Option<ActorCell>,
}

/// State of the [`Supervisor`] actor.
pub struct SupervisorState {
    system: WeakSystem,
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
            .stop_and_wait(Some("shutdown".into()), None)
            .await
            .is_ok(),
        Shutdown::Timeout(d) => cell
            .stop_and_wait(Some("shutdown".into()), Some(d))
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
    system: &System,
    supervisor: &ActorCell,
    spec: &ChildSpec,
) -> Result<ActorCell, SpawnError> {
    let cell = (spec.start)(system.clone(), supervisor.clone()).await?;
    if let Some(name) = &spec.name {
        if let Err(e) = system.registry().register_cell(name, cell.clone()) {
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

    async fn give_up(&mut self) -> ActorProcessingErr {
        let err = SupervisorError::RestartIntensity {
            name: self.label.clone(),
            max_restarts: self.spec.max_restarts,
            max_seconds: self.spec.max_seconds,
        };
        tracing::warn!(supervisor = %self.label, "{err}");
        self.stop_all().await;
        Box::new(err)
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
            return Err(self.give_up().await);
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
        let system = self.system.upgrade().ok_or(SpawnError::SystemStopped)?;
        for id in ids {
            while let Some(child) = self.children.iter_mut().find(|c| c.spec.id == id) {
                match start_one(&system, myself, &child.spec).await {
                    Ok(cell) => {
                        child.cell = Some(cell);
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(supervisor = %self.label, child = %id, "restart failed: {e}");
                        if !self.intensity.record(Instant::now()) {
                            return Err(self.give_up().await);
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
            system: args.system,
            span: args.span,
            label: args.label,
            intensity: Intensity::new(args.spec.max_restarts, args.spec.max_seconds),
            children: Vec::with_capacity(args.spec.children.len()),
            spec: args.spec,
        };
        if state.spec.children.is_empty() {
            return Ok(state); // the root supervisor starts before its System is complete
        }
        let Some(system) = state.system.upgrade() else {
            return Err(Box::new(SpawnError::SystemStopped));
        };
        for spec in state.spec.children.clone() {
            match start_one(&system, &myself.get_cell(), &spec).await {
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
        match msg {
            SupervisorMsg::StartChild(spec, reply) => {
                let result = if state.children.iter().any(|c| c.spec.id == spec.id) {
                    Err(SupervisorError::DuplicateChild { id: spec.id })
                } else {
                    match state.system.upgrade() {
                        None => Err(SpawnError::SystemStopped.into()),
                        Some(system) => match start_one(&system, &myself.get_cell(), &spec).await {
                            Ok(cell) => {
                                state.children.push(Child {
                                    spec,
                                    cell: Some(cell.clone()),
                                });
                                Ok(cell)
                            }
                            Err(e) => Err(e.into()),
                        },
                    }
                };
                let _ = reply.send(result);
            }
            SupervisorMsg::TerminateChild(id, reply) => {
                let result = match state.children.iter().position(|c| c.spec.id == id) {
                    None => Err(SupervisorError::NoChild { id }),
                    Some(idx) => {
                        let child = state.children.remove(idx);
                        if let Some(cell) = child.cell {
                            stop_child(&cell, child.spec.shutdown).await;
                        }
                        Ok(())
                    }
                };
                let _ = reply.send(result);
            }
            SupervisorMsg::WhichChildren(reply) => {
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
    /// Starts a top-level supervisor (linked to nothing), registered under `name` if given.
    ///
    /// # Errors
    /// [`SpawnError`] if a child fails to start or the name is taken.
    pub async fn start(
        system: &System,
        name: Option<&str>,
        spec: SupervisorSpec,
    ) -> Result<ActorRef<SupervisorMsg>, SpawnError> {
        let label = name.unwrap_or("supervisor").to_string();
        let args = SupervisorArgs::new(
            system.downgrade(),
            label.clone(),
            spec,
            system.span().clone(),
        );
        let (actor, _) =
            Actor::spawn(None, Supervisor, args)
                .await
                .map_err(|e| SpawnError::StartFailed {
                    what: label,
                    reason: e.to_string(),
                })?;
        system.registry().add_pid(actor.get_cell());
        if let Some(name) = name {
            if let Err(e) = system.registry().register(name, &actor) {
                actor.stop(Some("shutdown".into()));
                return Err(e.into());
            }
        }
        Ok(actor)
    }

    pub(crate) async fn spawn_child_of(
        system: &System,
        label: String,
        spec: SupervisorSpec,
        parent: ActorCell,
    ) -> Result<ActorCell, SpawnError> {
        let args = SupervisorArgs::new(
            system.downgrade(),
            label.clone(),
            spec,
            system.span().clone(),
        );
        let (actor, _) = Actor::spawn_linked(None, Supervisor, args, parent)
            .await
            .map_err(|e| SpawnError::StartFailed {
                what: label,
                reason: e.to_string(),
            })?;
        let cell = actor.get_cell();
        system.registry().add_pid(cell.clone());
        Ok(cell)
    }

    /// Adds `spec` to the running supervisor and starts it.
    ///
    /// # Errors
    /// [`SupervisorError::DuplicateChild`], a [`SpawnError`], or
    /// [`SupervisorError::NotRunning`].
    pub async fn start_child(
        supervisor: &ActorRef<SupervisorMsg>,
        spec: ChildSpec,
    ) -> Result<ActorCell, SupervisorError> {
        supervisor
            .call(|reply| SupervisorMsg::StartChild(spec, reply), None)
            .await
            .ok()
            .and_then(success)
            .ok_or(SupervisorError::NotRunning)?
    }

    /// Stops the child `id` (by its [`Shutdown`]) and removes it.
    ///
    /// # Errors
    /// [`SupervisorError::NoChild`] or [`SupervisorError::NotRunning`].
    pub async fn terminate_child(
        supervisor: &ActorRef<SupervisorMsg>,
        id: &str,
    ) -> Result<(), SupervisorError> {
        let id = id.to_string();
        supervisor
            .call(|reply| SupervisorMsg::TerminateChild(id, reply), None)
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
            .call(SupervisorMsg::WhichChildren, None)
            .await
            .ok()
            .and_then(success)
            .ok_or(SupervisorError::NotRunning)
    }
}
