//! A local stand-in for an actor on another node: an ordinary `ActorRef<M>`.
//!
//! [`RemoteProxy::spawn`] (or [`RemoteProxy::child_spec`] under a supervisor) starts a local
//! actor that takes `M` and forwards every message to `dest` on another node, calls
//! included: their replies come back to the caller's port. Users hold an ordinary
//! `ActorRef<M>`, so `cast!`/`call!` and everything else of ractor work on it.
//!
//! The proxy monitors its target. When the target stops, or its node goes down or cannot be
//! reached, the proxy stops with the same reason (`normal`, the panic message, `noproc`, `noconnection`, ...);
//! these are abnormal exits, so a supervisor of the proxy sees an ordinary supervision event
//! and applies its strategy (a permanent or transient proxy is restarted and monitors again).
//!
//! `M` must implement [`RemoteMessage`](crate::RemoteMessage) and be known to both nodes:
//! at link time for `#[nodus::actor(remote)]` and `serde_message!` types, else with
//! [`System::register_remote_message`] on each.

use std::{marker::PhantomData, time::Duration};

use futures::FutureExt;
use ractor::{Actor, ActorProcessingErr, ActorRef, Message};
use tokio::task::AbortHandle;

use crate::{
    destination::Destination,
    error::SpawnError,
    supervisor::ChildSpec,
    system::{System, WeakSystem},
};

/// How long a call forwarded by a proxy may wait for its reply; the caller's own timeout is
/// usually shorter.
const FORWARDED_CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// The proxy actor. See the [module documentation](self).
pub struct RemoteProxy<M>(PhantomData<fn() -> M>);

impl<M> Clone for RemoteProxy<M> {
    fn clone(&self) -> Self {
        Self(PhantomData)
    }
}

impl<M> std::fmt::Debug for RemoteProxy<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RemoteProxy")
    }
}

/// The proxy's state: its target and the task that watches it.
#[derive(Debug)]
pub struct ProxyState {
    system: WeakSystem,
    dest: Destination,
    watcher: AbortHandle,
}

impl<M: Message> Actor for RemoteProxy<M> {
    type Msg = M;
    type State = ProxyState;
    type Arguments = (WeakSystem, Destination);

    async fn pre_start(
        &self,
        myself: ActorRef<M>,
        (system, dest): Self::Arguments,
    ) -> Result<ProxyState, ActorProcessingErr> {
        let Some(strong) = system.upgrade() else {
            return Err(Box::new(SpawnError::SystemStopped));
        };
        let monitor = strong.monitor(dest.clone());
        let processes = system.clone();
        let watcher = tokio::spawn(async move {
            let down = monitor.await;
            // The proxy ends as its target did, so that its supervisor sees the real reason.
            if let Some(system) = processes.upgrade() {
                system
                    .kernel()
                    .processes
                    .set_reason(myself.get_id().pid(), down.reason.clone());
            }
            myself.stop(Some(down.reason.to_string()));
        });
        Ok(ProxyState {
            system,
            dest,
            watcher: watcher.abort_handle(),
        })
    }

    async fn handle(
        &self,
        _: ActorRef<M>,
        msg: M,
        state: &mut ProxyState,
    ) -> Result<(), ActorProcessingErr> {
        let Some(system) = state.system.upgrade() else {
            return Err(Box::new(SpawnError::SystemStopped));
        };
        if let Err(e) = system.forward(&state.dest, msg, FORWARDED_CALL_TIMEOUT) {
            tracing::debug!(dest = %state.dest, "proxy could not forward: {e}");
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _: ActorRef<M>,
        state: &mut ProxyState,
    ) -> Result<(), ActorProcessingErr> {
        state.watcher.abort();
        Ok(())
    }
}

impl<M: Message> RemoteProxy<M> {
    /// Starts an unsupervised proxy for `dest`.
    ///
    /// # Errors
    /// [`SpawnError`] if the node has shut down.
    pub async fn spawn(
        system: &System,
        dest: impl Into<Destination>,
    ) -> Result<ActorRef<M>, SpawnError> {
        let (proxy, _) = system
            .spawn(
                None,
                RemoteProxy::<M>(PhantomData),
                (system.downgrade(), dest.into()),
            )
            .await?;
        Ok(proxy)
    }

    /// A child spec that starts a proxy for `dest` under a supervisor.
    pub fn child_spec(id: impl Into<String>, dest: impl Into<Destination>) -> ChildSpec {
        let dest = dest.into();
        let id = id.into();
        let what = id.clone();
        ChildSpec::from_fn(id, move |system: System, supervisor| {
            let (dest, what) = (dest.clone(), what.clone());
            async move {
                let (proxy, _) = Actor::spawn_linked(
                    None,
                    RemoteProxy::<M>(PhantomData),
                    (system.downgrade(), dest),
                    supervisor,
                )
                .await
                .map_err(|e| SpawnError::StartFailed {
                    what,
                    reason: e.to_string(),
                })?;
                system.kernel().adopt(&proxy.get_cell());
                Ok(proxy.get_cell())
            }
            .boxed()
        })
    }
}
