//! The node-local system: the value that owns a node's kernel and its root supervisor.
//!
//! `System` is the top of `actor-core`'s layers: the kernel (names, functions, output, the
//! transport seam) at the bottom, the behaviours (supervisors) above it, and `System`, a
//! kernel plus the root supervisor, above them. Those lower layers hold the kernel, never a
//! `System`, so the few entry points of theirs that take or hand out a whole `System` are
//! defined here, with it: [`Supervisor::start`], [`ChildSpec::from_fn`] and
//! [`CallContext::system`].

use std::{
    fmt,
    future::Future,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use futures::FutureExt;
use ractor::{
    concurrency::JoinHandle, rpc::CallResult, Actor, ActorCell, ActorRef, Message, MessagingErr,
    RpcReplyPort,
};

use crate::{
    cancel::Cancel,
    destination::Destination,
    error::{CallError, SendError, SendErrorKind, SpawnError, SupervisorError},
    io::Output,
    kernel::{CallContext, FunctionRegistry, Kernel, WeakKernel},
    monitor::{DownReason, Monitor},
    node_name::{NodeName, NodeNameError},
    pid::Pid,
    process::Processes,
    registry::Registry,
    remote_message::{DeliverError, RemoteMessage, ReplySink},
    seam::{PeerTarget, RemoteSend, Transport},
    supervisor::{spawn_linked, ChildSpec, Supervisor, SupervisorMsg, SupervisorSpec},
};

/// The default timeout of calls and task awaits: 5 s, as `GenServer.call` and `Task.await`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// How to start a [`System`].
#[derive(Debug, Clone)]
pub struct SystemConfig {
    /// The node's name; `nonode@nohost` for a node that is not distributed.
    pub node: NodeName,
    /// The node's creation (its incarnation number); chosen at random when `None`.
    pub creation: Option<u32>,
    /// The root supervisor's spec (default: one-for-one, 3 restarts in 5 s, no children).
    pub root: SupervisorSpec,
}

impl Default for SystemConfig {
    fn default() -> Self {
        Self {
            node: NodeName::nonode(),
            creation: None,
            root: SupervisorSpec::default(),
        }
    }
}

impl SystemConfig {
    /// A config for a node named `name` (checked with [`NodeName::parse`]).
    ///
    /// # Errors
    /// [`NodeNameError`] for a name that breaks the BEAM's rules.
    pub fn named(name: &str) -> Result<Self, NodeNameError> {
        Ok(Self {
            node: NodeName::parse(name)?,
            ..Self::default()
        })
    }
}

/// One node's actors, names and functions: the value everything else hangs off.
///
/// A `System` is a value, not a process global: several can live in one process (tests start
/// two and register the same name in each), and each resolves names in its own
/// [`Registry`]. Clones share the same node. When the last clone is dropped, or on
/// [`System::shutdown`], the root supervisor stops its children in reverse order.
///
/// `actor-remote`'s `Node` wraps a `System` and adds the transport; without one, any
/// destination on another node answers `NoConnection`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use actor_core::{SendErrorKind, System, SystemConfig};
/// let a = System::start(SystemConfig::named("a@localhost")?).await?;
/// let b = System::start(SystemConfig::named("b@localhost")?).await?;
/// assert_ne!(a.node(), b.node());
///
/// // Two Systems in one process are still two nodes without distribution: `a` cannot
/// // reach `b` (a `Node` from `actor-remote` can reach its peers).
/// let err = a.cast(("counter", "b@localhost"), ()).unwrap_err();
/// assert!(matches!(err.kind, SendErrorKind::NoConnection { .. }));
/// # a.shutdown().await; b.shutdown().await; Ok(()) }
/// ```
#[derive(Clone)]
pub struct System {
    inner: Kernel,
    root: ActorRef<SupervisorMsg>,
}

impl fmt::Debug for System {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("System")
            .field("node", &self.inner.node)
            .field("creation", &self.inner.creation)
            .finish_non_exhaustive()
    }
}

/// A handle to a [`System`] that does not keep it alive; held by long-lived actors.
#[derive(Clone, Default)]
pub struct WeakSystem(WeakKernel);

impl fmt::Debug for WeakSystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WeakSystem")
    }
}

impl WeakSystem {
    /// The kernel, if the node is still up.
    pub(crate) fn kernel(&self) -> Option<Kernel> {
        self.0.upgrade()
    }

    /// The system, if it is still up.
    pub fn upgrade(&self) -> Option<System> {
        System::from_kernel(self.0.upgrade()?)
    }
}

fn random_creation() -> u32 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let mixed = (nanos ^ (nanos >> 32) ^ u128::from(std::process::id())) as u32;
    mixed.max(1)
}

impl System {
    /// Starts a node-local system: its registry, function registry and root supervisor.
    ///
    /// # Errors
    /// [`SpawnError`] if the root supervisor (or one of its configured children) fails to start.
    pub async fn start(config: SystemConfig) -> Result<System, SpawnError> {
        let span = tracing::error_span!("node", node = %config.node);
        let creation = config.creation.unwrap_or_else(random_creation);
        let inner = Kernel::new(config.node, creation, span);
        Processes::start_reaper(&inner)
            .await
            .map_err(|e| SpawnError::StartFailed {
                what: "reaper".into(),
                reason: e.to_string(),
            })?;
        // The root starts empty; its children start below, once the System is whole.
        let spec = SupervisorSpec {
            children: Vec::new(),
            ..config.root.clone()
        };
        let root = Supervisor::spawn(&inner, "root".into(), spec, None).await?;
        inner.set_root(root.get_cell());
        let system = System { inner, root };
        for child in config.root.children {
            system.start_child(child).await.map_err(|e| match e {
                SupervisorError::Spawn(e) => e,
                other => SpawnError::StartFailed {
                    what: "root child".into(),
                    reason: other.to_string(),
                },
            })?;
        }
        Ok(system)
    }

    /// This node's name (`nonode@nohost` when it is not distributed).
    pub fn node(&self) -> &NodeName {
        &self.inner.node
    }

    /// This node's creation: different every time a node of the same name starts.
    pub fn creation(&self) -> u32 {
        self.inner.creation
    }

    /// The node's name registry.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// The node's functions, callable by module and function name.
    pub fn functions(&self) -> &FunctionRegistry {
        &self.inner.functions
    }

    /// The root supervisor, under which [`System::start_child`] starts children.
    pub fn root(&self) -> &ActorRef<SupervisorMsg> {
        &self.root
    }

    /// The `node{node=…}` tracing span; tasks the node spawns run inside it.
    pub fn span(&self) -> &tracing::Span {
        &self.inner.span
    }

    /// A handle that does not keep the system alive.
    pub fn downgrade(&self) -> WeakSystem {
        WeakSystem(self.inner.downgrade())
    }

    /// The system of `kernel`: its root supervisor is known once `System::start` has made
    /// it, so this is `None` only while a node is starting or after it stopped.
    pub(crate) fn from_kernel(inner: Kernel) -> Option<System> {
        let root = inner.root()?.clone().into();
        Some(System { inner, root })
    }

    /// The node's kernel, for the layers above the kernel that take a `System` in their
    /// API and hand the kernel to what they start.
    pub(crate) fn kernel(&self) -> &Kernel {
        &self.inner
    }

    /// The node's distribution, if it has one (see [`transport`](crate::transport)).
    pub(crate) fn transport(&self) -> Option<&Arc<dyn Transport>> {
        self.inner.transport()
    }

    /// The node's output, where its tasks print (see [`io`](crate::io)): stdout unless
    /// [`System::set_output`] changed it.
    pub fn output(&self) -> Output {
        self.inner.output()
    }

    /// Sends the node's output to `output` (a capture in tests). Tasks started from now on
    /// print there; running ones keep the group leader they started with.
    pub fn set_output(&self, output: Output) {
        self.inner.set_output(output);
    }

    /// The node `dest` names, when that is another node.
    pub fn remote_node(&self, dest: &Destination) -> Option<NodeName> {
        dest.node().filter(|node| !self.is_local(node)).cloned()
    }

    /// The pid of a local actor.
    pub fn pid_of(&self, cell: &ActorCell) -> Pid {
        self.inner.pid_of(cell)
    }

    /// Starts `spec` under the root supervisor.
    ///
    /// # Errors
    /// As [`Supervisor::start_child`].
    pub async fn start_child(&self, spec: ChildSpec) -> Result<ActorCell, SupervisorError> {
        Supervisor::start_child(&self.root, spec).await
    }

    /// Spawns an unsupervised actor, registered under `name` if one is given.
    ///
    /// # Errors
    /// [`SpawnError::StartFailed`] if `pre_start` fails, [`SpawnError::Registry`] if the name
    /// is taken (the actor is then stopped).
    pub async fn spawn<A: Actor>(
        &self,
        name: Option<&str>,
        actor: A,
        args: A::Arguments,
    ) -> Result<(ActorRef<A::Msg>, JoinHandle<()>), SpawnError> {
        let (actor_ref, handle) =
            Actor::spawn(None, actor, args)
                .await
                .map_err(|e| SpawnError::StartFailed {
                    what: name.unwrap_or("actor").to_string(),
                    reason: e.to_string(),
                })?;
        self.inner.adopt(&actor_ref.get_cell());
        if let Some(name) = name {
            if let Err(e) = self.inner.registry.register(name, &actor_ref) {
                actor_ref.stop(Some("shutdown".into()));
                return Err(e.into());
            }
        }
        Ok((actor_ref, handle))
    }

    /// The live actor registered as `name` on this node, if it takes `M`.
    pub fn whereis<M: Message>(&self, name: &str) -> Option<ActorRef<M>> {
        self.inner.registry.whereis(name)
    }

    /// Whether `pid` names an actor of this incarnation of this node.
    pub(crate) fn is_current(&self, pid: &Pid) -> bool {
        self.is_local(pid.node()) && pid.creation() == self.inner.creation
    }

    /// `dest` with a [`Destination::Global`] name replaced by the pid it stands for (left as
    /// it is when no one holds it: it then answers `NoProc`).
    pub(crate) fn resolve_global(&self, dest: Destination) -> Destination {
        match &dest {
            Destination::Global(name) => self
                .inner
                .resolve_global(name)
                .map_or(dest, Destination::Pid),
            _ => dest,
        }
    }

    /// Whether `node` is this node.
    pub fn is_local(&self, node: &NodeName) -> bool {
        *node == self.inner.node
    }

    /// Finds the local actor `dest` names.
    ///
    /// # Errors
    /// [`SendErrorKind::NoProc`] when nothing lives there, [`SendErrorKind::NoConnection`]
    /// when `dest` is on another node (this finds local actors only).
    pub fn resolve(&self, dest: &Destination) -> Result<ActorCell, SendErrorKind> {
        self.with_local(dest, ActorCell::clone)
    }

    /// Resolves `dest` to a typed local actor reference.
    ///
    /// # Errors
    /// As [`System::resolve`], plus [`SendErrorKind::WrongType`] if the actor does not take `M`.
    pub fn lookup<M: Message>(&self, dest: &Destination) -> Result<ActorRef<M>, SendErrorKind> {
        let cell = self.resolve(dest)?;
        if cell.is_message_type_of::<M>() == Some(true) {
            Ok(cell.into())
        } else {
            Err(SendErrorKind::WrongType {
                dest: dest.clone(),
                expected: std::any::type_name::<M>(),
            })
        }
    }

    /// Runs `f` on the local actor `dest` names, borrowing it from the registry.
    fn with_local<R>(
        &self,
        dest: &Destination,
        f: impl FnOnce(&ActorCell) -> R,
    ) -> Result<R, SendErrorKind> {
        let noproc = || SendErrorKind::NoProc {
            dest: dest.clone(),
            node: self.inner.node.clone(),
        };
        match dest {
            Destination::Name(name) => self.inner.registry.with_name(name, f).ok_or_else(noproc),
            Destination::Remote { name, node } if self.is_local(node) => {
                self.inner.registry.with_name(name, f).ok_or_else(noproc)
            }
            Destination::Pid(pid) if self.is_local(pid.node()) => {
                if pid.creation() != self.inner.creation {
                    return Err(noproc());
                }
                self.inner.registry.with_pid(pid.id(), f).ok_or_else(noproc)
            }
            Destination::Remote { node, .. } => {
                Err(SendErrorKind::NoConnection { node: node.clone() })
            }
            Destination::Pid(pid) => Err(SendErrorKind::NoConnection {
                node: pid.node().clone(),
            }),
            Destination::Global(_) => Err(noproc()),
        }
    }

    /// Sends `msg` to `dest` without waiting, as Erlang's `send`.
    ///
    /// Local delivery does not serialize. A return value of `Ok` does not mean the message
    /// will be processed: the actor may stop first.
    ///
    /// To another node, the message is queued for that node (or for the connect to it):
    /// `Ok` means it was queued. It is lost only if the session with that node drops before
    /// it is written (at most what was queued for that node; the node counts it).
    ///
    /// # Errors
    /// [`SendError`] with the message handed back: no such actor, wrong message type, or the
    /// destination's node cannot be reached. Without the message (it was encoded):
    /// [`SendErrorKind::TooLarge`] for a message over the largest frame,
    /// [`SendErrorKind::Busy`] when the queue for its node is full (see
    /// [`System::cast_wait`]).
    pub fn cast<M: Message>(
        &self,
        dest: impl Into<Destination>,
        msg: M,
    ) -> Result<(), SendError<M>> {
        let dest = self.resolve_global(dest.into());
        if let Some(node) = self.remote_node(&dest) {
            return self.cast_remote(node, dest, msg);
        }
        let mut msg = Some(msg);
        let sent = self.with_local(&dest, |cell| {
            if cell.is_message_type_of::<M>() != Some(true) {
                return Err(SendErrorKind::WrongType {
                    dest: dest.clone(),
                    expected: std::any::type_name::<M>(),
                });
            }
            match msg.take().map(|m| cell.send_message(m)) {
                Some(Err(MessagingErr::SendErr(m))) => {
                    msg = Some(m);
                    Err(SendErrorKind::NoProc {
                        dest: dest.clone(),
                        node: self.inner.node.clone(),
                    })
                }
                Some(Err(_)) => Err(SendErrorKind::NoProc {
                    dest: dest.clone(),
                    node: self.inner.node.clone(),
                }),
                _ => Ok(()),
            }
        });
        match sent {
            Ok(Ok(())) => Ok(()),
            Ok(Err(kind)) | Err(kind) => Err(SendError { kind, message: msg }),
        }
    }

    fn cast_remote<M: Message>(
        &self,
        node: NodeName,
        dest: Destination,
        msg: M,
    ) -> Result<(), SendError<M>> {
        let Some(transport) = self.transport() else {
            return Err(SendError {
                kind: SendErrorKind::NoConnection { node },
                message: Some(msg),
            });
        };
        match self.inner.remote_types.encode(msg) {
            Err(msg) => Err(SendError {
                kind: SendErrorKind::NotRemotable {
                    type_name: std::any::type_name::<M>(), // local only
                },
                message: Some(msg),
            }),
            Ok((_, Err(e))) => Err(SendError {
                kind: SendErrorKind::Refused {
                    node: self.inner.node.clone(),
                    reason: e.to_string(),
                },
                message: None,
            }),
            Ok((name, Ok(wire))) => {
                let message = RemoteSend {
                    target: dest,
                    name,
                    payload: wire.payload,
                };
                transport.cast(node, message).map_err(|kind| SendError {
                    kind,
                    message: None,
                })
            }
        }
    }

    /// Sends `msg` to `dest` as [`System::cast`] does, but when `dest` is on another node
    /// whose queue is full, waits for room in that node's queue only (as the BEAM suspends a
    /// sender on `busy_dist_port`), instead of failing with [`SendErrorKind::Busy`]. The wait
    /// ends when the queue has room or the session with that node goes down (a paused node
    /// is down after its tick time); a local destination never waits.
    ///
    /// # Errors
    /// As [`System::cast`]; `Busy` only if the wait ended without room.
    pub async fn cast_wait<M: Message>(
        &self,
        dest: impl Into<Destination>,
        msg: M,
    ) -> Result<(), SendError<M>> {
        let dest = dest.into();
        let Some(node) = self.remote_node(&dest) else {
            return self.cast(dest, msg);
        };
        let Some(transport) = self.transport() else {
            return Err(SendError {
                kind: SendErrorKind::NoConnection { node },
                message: Some(msg),
            });
        };
        let message = match self.inner.remote_types.encode(msg) {
            Err(msg) => {
                return Err(SendError {
                    kind: SendErrorKind::NotRemotable {
                        type_name: std::any::type_name::<M>(), // local only
                    },
                    message: Some(msg),
                });
            }
            Ok((_, Err(e))) => {
                return Err(SendError {
                    kind: SendErrorKind::Refused {
                        node: self.inner.node.clone(),
                        reason: e.to_string(),
                    },
                    message: None,
                })
            }
            Ok((name, Ok(wire))) => RemoteSend {
                target: dest,
                name,
                payload: wire.payload,
            },
        };
        transport
            .cast_wait(node, message)
            .await
            .map_err(|kind| SendError {
                kind,
                message: None,
            })
    }

    /// Monitors `dest`, as `Process.monitor/1`: the returned [`Monitor`](Monitor)
    /// resolves once, with `NoProc` at once if nothing lives there, `Exited` when the actor
    /// stops, `NoConnection` when its node cannot be reached or goes down. Dropping it
    /// demonitors.
    pub fn monitor(&self, dest: impl Into<Destination>) -> Monitor {
        let dest = self.resolve_global(dest.into());
        if let Some(node) = self.remote_node(&dest) {
            return match self.transport() {
                Some(transport) => transport.monitor(node, dest),
                None => Monitor::down(dest, DownReason::NoConnection),
            };
        }
        let Ok(id) = self.with_local(&dest, |cell| cell.get_id().pid()) else {
            return Monitor::down(dest, DownReason::NoProc);
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        let down = Box::new(move |reason| {
            let _ = tx.send(reason);
        });
        match self.inner.processes.add_watcher(id, down) {
            Err(_) => Monitor::down(dest, DownReason::NoProc),
            Ok(n) => {
                let kernel = self.inner.downgrade();
                let cancel = Cancel::new(move || {
                    if let Some(kernel) = kernel.upgrade() {
                        kernel.processes.remove_watcher(id, n);
                    }
                });
                Monitor::new(dest, rx, Some(cancel))
            }
        }
    }

    /// Sends `msg` to `dest` whatever it is, for proxies: a cast as [`System::cast`]; for a
    /// call to another node, the reply goes back to the port inside `msg` (a reply not in
    /// within `timeout` is dropped, and the caller's own call times out).
    ///
    /// # Errors
    /// As [`System::cast`], without the message.
    pub fn forward<M: Message>(
        &self,
        dest: &Destination,
        msg: M,
        timeout: Duration,
    ) -> Result<(), SendErrorKind> {
        let resolved = self.resolve_global(dest.clone());
        let dest = &resolved;
        let Some(node) = self.remote_node(dest) else {
            return self.cast(dest, msg).map_err(|e| e.kind);
        };
        let transport = self
            .transport()
            .ok_or_else(|| SendErrorKind::NoConnection { node: node.clone() })?;
        let (name, wire) = match self.inner.remote_types.encode(msg) {
            Err(_) => {
                return Err(SendErrorKind::NotRemotable {
                    type_name: std::any::type_name::<M>(), // local only
                });
            }
            Ok((_, Err(e))) => {
                return Err(SendErrorKind::Refused {
                    node: self.inner.node.clone(),
                    reason: e.to_string(),
                })
            }
            Ok((name, Ok(wire))) => (name, wire),
        };
        let message = RemoteSend {
            target: dest.clone(),
            name,
            payload: wire.payload,
        };
        match wire.reply {
            None => transport.cast(node, message)?,
            Some(bridge) => {
                let call = transport.call(node, message, timeout);
                tokio::spawn(async move {
                    if let Ok(bytes) = call.await {
                        let _ = bridge.answer(&bytes);
                    } // else the caller's port is dropped: its call ends
                });
            }
        }
        Ok(())
    }

    /// Registers `M` as a message type that may cross nodes: this node encodes it for
    /// destinations on other nodes and decodes it for its own actors (by
    /// [`RemoteMessage::NAME`]). Only for types not registered at link time: generic types and
    /// hand-written impls (`#[nodus::actor(remote)]` and `serde_message!` types need no call);
    /// register those on every node that sends or receives them. A type whose name another
    /// type holds on this node is refused, with an error logged naming both.
    pub fn register_remote_message<M: RemoteMessage>(&self) {
        self.inner.remote_types.register::<M>();
    }

    /// Delivers a message that came from another node to the local actor `target`, decoding
    /// it as the type registered under the stable name `name`; public as
    /// [`transport::deliver`](crate::transport::deliver).
    pub(crate) fn deliver_from_peer(
        &self,
        target: PeerTarget<'_>,
        name: &str,
        payload: &[u8],
        reply: Option<ReplySink>,
    ) -> Result<(), SendErrorKind> {
        let refused = |reason: String| SendErrorKind::Refused {
            node: self.inner.node.clone(),
            reason,
        };
        // Built only for an error: the hot path borrows the name from the frame.
        let noproc = || SendErrorKind::NoProc {
            dest: target.to_destination(&self.inner.node),
            node: self.inner.node.clone(),
        };
        let decode = self
            .inner
            .remote_types
            .decoder(name)
            .ok_or_else(|| refused(crate::remote_message::not_registered(name)))?;
        let deliver = |cell: &ActorCell| decode(payload, reply, cell);
        let delivered = match target {
            PeerTarget::Name(name) => self.inner.registry.with_name(name, deliver),
            PeerTarget::Pid { creation, .. } if creation != self.inner.creation => None,
            PeerTarget::Pid { id, .. } => self.inner.registry.with_pid(id, deliver),
        };
        match delivered {
            None | Some(Err(DeliverError::Stopped)) => Err(noproc()),
            Some(Err(other)) => Err(refused(other.to_string())),
            Some(Ok(())) => Ok(()),
        }
    }

    /// Sends the message `build` makes from a reply port, and waits up to `timeout` for the
    /// reply, as `GenServer.call`. A late reply is dropped.
    ///
    /// # Errors
    /// [`CallError::Send`] if it could not be delivered, [`CallError::Timeout`], or
    /// [`CallError::NoReply`] if the actor stopped or dropped the port without replying.
    pub async fn call<M, R, F>(
        &self,
        dest: impl Into<Destination>,
        build: F,
        timeout: Duration,
    ) -> Result<R, CallError>
    where
        M: Message,
        R: Send + 'static,
        F: FnOnce(RpcReplyPort<R>) -> M,
    {
        let dest = self.resolve_global(dest.into());
        if let Some(node) = self.remote_node(&dest) {
            return self.call_remote(node, dest, build, timeout).await;
        }
        let actor = self.lookup::<M>(&dest).map_err(CallError::Send)?;
        match actor.call(build, Some(timeout)).await {
            Ok(CallResult::Success(r)) => Ok(r),
            Ok(CallResult::Timeout) => Err(CallError::Timeout { dest, timeout }),
            Ok(CallResult::SenderError) => Err(CallError::NoReply { dest }),
            Err(_) => Err(CallError::Send(SendErrorKind::NoProc {
                dest,
                node: self.inner.node.clone(),
            })),
        }
    }

    async fn call_remote<M, R, F>(
        &self,
        node: NodeName,
        dest: Destination,
        build: F,
        timeout: Duration,
    ) -> Result<R, CallError>
    where
        M: Message,
        R: Send + 'static,
        F: FnOnce(RpcReplyPort<R>) -> M,
    {
        let transport = self
            .transport()
            .ok_or_else(|| CallError::Send(SendErrorKind::NoConnection { node: node.clone() }))?;
        let (tx, rx) = ractor::concurrency::oneshot::<R>();
        let (name, wire) = match self.inner.remote_types.encode(build(tx.into())) {
            Err(_) => {
                return Err(CallError::Send(SendErrorKind::NotRemotable {
                    type_name: std::any::type_name::<M>(), // local only
                }));
            }
            Ok((_, Err(e))) => {
                return Err(CallError::Send(SendErrorKind::Refused {
                    node: self.inner.node.clone(),
                    reason: e.to_string(),
                }))
            }
            Ok((name, Ok(wire))) => (name, wire),
        };
        let Some(bridge) = wire.reply else {
            return Err(CallError::Send(SendErrorKind::Refused {
                node: self.inner.node.clone(),
                reason: format!("{name:?}'s to_wire dropped the reply port of a call"),
            }));
        };
        let message = RemoteSend {
            target: dest.clone(),
            name,
            payload: wire.payload,
        };
        let bytes = transport.call(node.clone(), message, timeout).await?;
        bridge.answer(&bytes).map_err(|e| {
            CallError::Send(SendErrorKind::Refused {
                node,
                reason: format!("the reply did not decode: {e}"),
            })
        })?;
        rx.await.map_err(|_| CallError::NoReply { dest })
    }

    /// Stops the root supervisor, which stops every supervised actor in reverse start order,
    /// and waits for it.
    pub async fn shutdown(self) {
        let _ = self.root.stop_and_wait(Some("shutdown".into()), None).await;
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
        let actor = Supervisor::spawn(system.kernel(), label, spec, None).await?;
        if let Some(name) = name {
            if let Err(e) = system.registry().register(name, &actor) {
                actor.stop(Some("shutdown".into()));
                return Err(e.into());
            }
        }
        Ok(actor)
    }
}

impl ChildSpec {
    /// A child started by `start`, which is given the node and the supervisor to link the
    /// new actor to, and returns the started actor.
    pub fn from_fn<F, Fut>(id: impl Into<String>, start: F) -> Self
    where
        F: Fn(System, ActorCell) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<ActorCell, SpawnError>> + Send + 'static,
    {
        let start = Arc::new(start);
        ChildSpec::with_start(id, move |kernel: Kernel, supervisor| {
            let start = Arc::clone(&start);
            async move {
                let system = System::from_kernel(kernel).ok_or(SpawnError::SystemStopped)?;
                start(system, supervisor).await
            }
            .boxed()
        })
    }
}

impl ChildSpec {
    /// A worker whose start arguments are made from its node each time it starts (generated
    /// actors take their node this way).
    #[doc(hidden)]
    pub fn with_node_args<A, F>(id: impl Into<String>, actor: A, args: F) -> Self
    where
        A: Actor + Clone + Sync,
        F: Fn(&System) -> A::Arguments + Send + Sync + 'static,
    {
        let id = id.into();
        let what = id.clone();
        let args = Arc::new(args);
        ChildSpec::with_start(id, move |kernel: Kernel, supervisor| {
            let (actor, args, what) = (actor.clone(), Arc::clone(&args), what.clone());
            async move {
                let system = System::from_kernel(kernel).ok_or(SpawnError::SystemStopped)?;
                let args = args(&system);
                spawn_linked(system.inner, actor, args, supervisor, what).await
            }
            .boxed()
        })
    }
}

impl CallContext {
    /// The node the function runs on, if it is still up.
    pub fn system(&self) -> Option<System> {
        System::from_kernel(self.kernel()?)
    }
}
