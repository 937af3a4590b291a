//! Node-scoped names: register, unregister, whereis.
//!
//! # Contract
//!
//! A [`Registry`] belongs to one [`System`](crate::System), never to the process: two systems
//! in one process may both register `"Chat.TaskSupervisor"` and each resolves its own. A name
//! maps to at most one live actor; registering a name held by a live actor is
//! [`RegistryError::AlreadyRegistered`]. A name is freed when its actor stops: a watcher
//! removes it as soon as the actor exits, and every lookup also ignores (and drops) entries
//! whose actor is stopping or stopped, so no lookup ever returns a dead actor.
//!
//! Lookups are typed: [`Registry::whereis`] returns an `ActorRef<M>` only if the actor takes
//! `M`, so a wrong guess is `None` (or [`SendErrorKind::WrongType`](crate::SendErrorKind)
//! from the system's send functions) rather than a panic at delivery.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use actor_core::{System, SystemConfig, SupervisorMsg};
//! let system = System::start(SystemConfig::default()).await?;
//! let root = system.root().clone();
//! system.registry().register("root", &root)?;
//! assert!(system.registry().whereis::<SupervisorMsg>("root").is_some());
//! assert!(system.registry().register("root", &root).is_err());
//! system.registry().unregister("root");
//! assert!(system.registry().whereis::<SupervisorMsg>("root").is_none());
//! # system.shutdown().await; Ok(()) }
//! ```

use std::{
    collections::HashMap,
    sync::{Arc, PoisonError, RwLock, Weak},
};

use ractor::{ActorCell, ActorRef, ActorStatus, Message};

use crate::error::RegistryError;

/// Names and pids of the actors of one node. Cheap to clone: clones share the table.
#[derive(Clone, Default)]
pub struct Registry {
    inner: Arc<Tables>,
}

#[derive(Default)]
struct Tables {
    names: RwLock<HashMap<String, ActorCell>>,
    pids: RwLock<HashMap<u64, ActorCell>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("names", &self.registered())
            .finish()
    }
}

pub(crate) fn is_alive(cell: &ActorCell) -> bool {
    cell.get_status() < ActorStatus::Stopping
}

impl Registry {
    /// A new, empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `actor` under `name`.
    ///
    /// # Errors
    /// [`RegistryError::AlreadyRegistered`] if a live actor holds the name,
    /// [`RegistryError::NotAlive`] if `actor` has stopped.
    pub fn register<M: Message>(
        &self,
        name: &str,
        actor: &ActorRef<M>,
    ) -> Result<(), RegistryError> {
        self.register_cell(name, actor.get_cell())
    }

    /// Registers an untyped actor cell under `name`; see [`Registry::register`].
    ///
    /// # Errors
    /// As [`Registry::register`].
    pub fn register_cell(&self, name: &str, cell: ActorCell) -> Result<(), RegistryError> {
        if !is_alive(&cell) {
            return Err(RegistryError::NotAlive {
                name: name.to_string(),
            });
        }
        {
            let mut names = self
                .inner
                .names
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(existing) = names.get(name) {
                if is_alive(existing) {
                    return Err(RegistryError::AlreadyRegistered {
                        name: name.to_string(),
                    });
                }
            }
            names.insert(name.to_string(), cell.clone());
        }
        self.watch(cell, Some(name.to_string()));
        Ok(())
    }

    /// Removes `name`; returns whether it was registered to a live actor.
    pub fn unregister(&self, name: &str) -> bool {
        let mut names = self
            .inner
            .names
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        names.remove(name).is_some_and(|cell| is_alive(&cell))
    }

    /// The live actor registered under `name`, if it takes messages of type `M`.
    pub fn whereis<M: Message>(&self, name: &str) -> Option<ActorRef<M>> {
        let cell = self.whereis_cell(name)?;
        (cell.is_message_type_of::<M>() == Some(true)).then(|| cell.into())
    }

    /// The live actor registered under `name`, untyped.
    pub fn whereis_cell(&self, name: &str) -> Option<ActorCell> {
        let found = {
            let names = self
                .inner
                .names
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            names.get(name).cloned()
        }?;
        if is_alive(&found) {
            Some(found)
        } else {
            self.forget_name(name, &found);
            None
        }
    }

    /// The names registered to live actors, sorted.
    pub fn registered(&self) -> Vec<String> {
        let names = self
            .inner
            .names
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let mut out: Vec<String> = names
            .iter()
            .filter(|(_, cell)| is_alive(cell))
            .map(|(name, _)| name.clone())
            .collect();
        out.sort();
        out
    }

    /// The name `cell` is registered under, if any.
    pub fn name_of(&self, cell: &ActorCell) -> Option<String> {
        let id = cell.get_id();
        let names = self
            .inner
            .names
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        names
            .iter()
            .find(|(_, c)| c.get_id() == id)
            .map(|(n, _)| n.clone())
    }

    /// Runs `f` on the live actor registered as `name`, without cloning it (the hot path of
    /// sends by name: no reference-count traffic on the actor's cell).
    pub(crate) fn with_name<R>(&self, name: &str, f: impl FnOnce(&ActorCell) -> R) -> Option<R> {
        let names = self
            .inner
            .names
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        names.get(name).filter(|c| is_alive(c)).map(f)
    }

    /// Runs `f` on the live actor with local number `id`, without cloning it.
    pub(crate) fn with_pid<R>(&self, id: u64, f: impl FnOnce(&ActorCell) -> R) -> Option<R> {
        let pids = self
            .inner
            .pids
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        pids.get(&id).filter(|c| is_alive(c)).map(f)
    }

    /// Records a node-local actor so that it can be found by pid.
    pub(crate) fn add_pid(&self, cell: ActorCell) {
        let id = cell.get_id().pid();
        self.inner
            .pids
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, cell.clone());
        self.watch(cell, None);
    }

    fn forget_name(&self, name: &str, cell: &ActorCell) {
        let mut names = self
            .inner
            .names
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if names.get(name).is_some_and(|c| c.get_id() == cell.get_id()) {
            names.remove(name);
        }
    }

    /// Frees the name (or pid) as soon as the actor exits. Without a tokio runtime the
    /// lookups' own liveness check still hides the entry.
    fn watch(&self, cell: ActorCell, name: Option<String>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let weak: Weak<Tables> = Arc::downgrade(&self.inner);
        runtime.spawn(async move {
            cell.wait(None).await.ok();
            let Some(tables) = weak.upgrade() else { return };
            let registry = Registry { inner: tables };
            match name {
                Some(name) => registry.forget_name(&name, &cell),
                None => {
                    registry
                        .inner
                        .pids
                        .write()
                        .unwrap_or_else(PoisonError::into_inner)
                        .remove(&cell.get_id().pid());
                }
            }
        });
    }
}
