//! The kernel: one node's shared state, below every behaviour.
//!
//! A [`Kernel`] holds what everything on a node shares: its name and creation, the
//! [`Registry`] of names, the [`FunctionRegistry`], the output its tasks print to, its
//! tracing span, the slot for its distribution ([`Transport`]) and its table of remote
//! message types. Supervisor actors and task supervisor actors hold a kernel (a
//! [`WeakKernel`], so they do not keep their node alive), never a `System`: a `System` is a
//! kernel plus the root supervisor, and sits above them.
//!
//! The kernel keeps the root supervisor's cell only to stop it when the node's last handle
//! goes away, and so that a `System` can be made again from a kernel (for
//! [`CallContext::system`] and child specs); it does not know what kind of actor that is.
//!
//! Functions registered with [`FunctionRegistry::register_with_context`] are given a
//! [`CallContext`]: a weak handle to the kernel of the node they run on.

use std::{
    fmt,
    future::Future,
    sync::{Arc, OnceLock, PoisonError, RwLock, Weak},
};

use futures::future::BoxFuture;
use ractor::ActorCell;
use serde::{de::DeserializeOwned, Serialize};

use crate::{
    error::TaskError,
    function::{Args, FunctionTable, Value},
    io::Output,
    node_name::NodeName,
    pid::Pid,
    process::Processes,
    registry::Registry,
    remote_message::RemoteTypes,
    seam::Transport,
};

#[cfg(feature = "json")]
use crate::function::JsonCallError;

/// What a [`Kernel`] shares, reached through it.
pub(crate) struct KernelState {
    /// The node's name (`nonode@nohost` when it is not distributed).
    pub(crate) node: NodeName,
    /// The node's creation: different every time a node of the same name starts.
    pub(crate) creation: u32,
    /// The node's name registry.
    pub(crate) registry: Registry,
    /// The node's functions, callable by module and function name.
    pub(crate) functions: FunctionRegistry,
    /// The node's table of remote message types.
    pub(crate) remote_types: RemoteTypes,
    /// How its actors end, their monitors and links.
    pub(crate) processes: Processes,
    /// The `node{node=…}` span; what the node spawns runs inside it.
    pub(crate) span: tracing::Span,
    root: OnceLock<ActorCell>,
    transport: OnceLock<Arc<dyn Transport>>,
    /// Resolves a [`Destination::Global`](crate::Destination::Global) name to its pid; the
    /// node's global name table, once installed.
    global: OnceLock<GlobalResolver>,
    output: RwLock<Output>,
}

impl Drop for KernelState {
    fn drop(&mut self) {
        if let Some(root) = self.root.get() {
            root.stop(Some("shutdown".into()));
        }
        self.processes.stop_reaper();
    }
}

/// What a node installs to resolve global names (`actor-remote`'s global name table).
pub type GlobalResolver = Arc<dyn Fn(&str) -> Option<Pid> + Send + Sync>;

/// One node's shared state; cheap to clone (clones share it).
#[derive(Clone)]
pub(crate) struct Kernel {
    inner: Arc<KernelState>,
}

impl fmt::Debug for Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kernel")
            .field("node", &self.inner.node)
            .field("creation", &self.inner.creation)
            .finish_non_exhaustive()
    }
}

/// A handle to a [`Kernel`] that does not keep it alive; held by long-lived actors.
#[derive(Clone, Default)]
pub(crate) struct WeakKernel(Weak<KernelState>);

impl fmt::Debug for WeakKernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WeakKernel")
    }
}

impl std::ops::Deref for Kernel {
    type Target = KernelState;

    fn deref(&self) -> &KernelState {
        &self.inner
    }
}

impl WeakKernel {
    /// The kernel, if its node is still up.
    pub(crate) fn upgrade(&self) -> Option<Kernel> {
        self.0.upgrade().map(|inner| Kernel { inner })
    }
}

impl Kernel {
    /// A kernel for the node `node` of creation `creation`, with an empty registry and
    /// function registry, stdout as its output and no transport.
    pub(crate) fn new(node: NodeName, creation: u32, span: tracing::Span) -> Self {
        Self {
            inner: Arc::new(KernelState {
                node,
                creation,
                registry: Registry::new(),
                functions: FunctionRegistry::new(),
                root: OnceLock::new(),
                transport: OnceLock::new(),
                global: OnceLock::new(),
                remote_types: RemoteTypes::default(),
                processes: Processes::default(),
                span,
                output: RwLock::new(Output::stdout()),
            }),
        }
    }

    /// The node's output, where its tasks print.
    pub(crate) fn output(&self) -> Output {
        self.inner
            .output
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Sends the node's output to `output`.
    pub(crate) fn set_output(&self, output: Output) {
        *self
            .inner
            .output
            .write()
            .unwrap_or_else(PoisonError::into_inner) = output;
    }

    /// The node's distribution, if it has one.
    pub(crate) fn transport(&self) -> Option<&Arc<dyn Transport>> {
        self.inner.transport.get()
    }

    /// Installs the node's distribution; a second one is handed back.
    pub(crate) fn set_transport(
        &self,
        transport: Arc<dyn Transport>,
    ) -> Result<(), Arc<dyn Transport>> {
        self.inner.transport.set(transport)
    }

    /// Installs the resolver of global names; a second one is handed back.
    pub(crate) fn set_global_resolver(
        &self,
        resolver: GlobalResolver,
    ) -> Result<(), GlobalResolver> {
        self.inner.global.set(resolver)
    }

    /// The pid a global name stands for, if a resolver is installed and knows it.
    pub(crate) fn resolve_global(&self, name: &str) -> Option<Pid> {
        self.inner.global.get().and_then(|resolve| resolve(name))
    }

    /// The root supervisor's cell, once the node has one.
    pub(crate) fn root(&self) -> Option<&ActorCell> {
        self.inner.root.get()
    }

    /// Records the root supervisor, which is stopped when the last handle goes away. Set
    /// once; a second call is ignored.
    pub(crate) fn set_root(&self, root: ActorCell) {
        let _ = self.inner.root.set(root);
    }

    /// The pid of a local actor.
    pub(crate) fn pid_of(&self, cell: &ActorCell) -> Pid {
        Pid::new(
            self.inner.node.clone(),
            self.inner.creation,
            cell.get_id().pid(),
        )
    }

    /// Takes a freshly started local actor in: findable by pid, and watched for its exit
    /// (monitors, links).
    pub(crate) fn adopt(&self, cell: &ActorCell) {
        self.inner.registry.add_pid(cell.clone());
        self.inner.processes.watch(cell);
    }

    /// A handle that does not keep the kernel alive.
    pub(crate) fn downgrade(&self) -> WeakKernel {
        WeakKernel(Arc::downgrade(&self.inner))
    }
}

/// What a function registered with [`FunctionRegistry::register_with_context`] is given: the
/// node it runs on, for functions that call other actors or nodes (see
/// [`CallContext::system`]).
#[derive(Clone, Debug)]
pub struct CallContext {
    kernel: WeakKernel,
}

impl CallContext {
    /// The kernel of the node the function runs on, if it is still up.
    pub(crate) fn kernel(&self) -> Option<Kernel> {
        self.kernel.upgrade()
    }
}

/// The functions of one node, by module and function name. Cheap to clone.
///
/// Only registered functions run by name; no closure ever crosses a node boundary. A
/// function takes one argument value (use a tuple for several) that implements
/// `serde::Deserialize`, and returns a value that implements `serde::Serialize`. On the
/// node that runs a call, an unknown `module`/`function` is [`TaskError::Undefined`] and
/// arguments that do not decode as the registered argument type are
/// [`TaskError::BadArgs`].
///
/// A local call passes the argument value without serializing it when its type is exactly
/// the registered one; otherwise the value is encoded and decoded, exactly as it would be on
/// its way to another node. So `("hi",)` (a `&str`) works for a function registered with
/// `(String,)`, locally and remotely alike.
///
/// ```
/// use actor_core::FunctionRegistry;
/// let functions = FunctionRegistry::new();
/// functions.register("Math", "add", |(a, b): (i64, i64)| async move { a + b });
/// assert!(functions.contains("Math", "add"));
/// assert_eq!(functions.list(), [("Math".to_string(), "add".to_string())]);
/// ```
#[derive(Clone, Default)]
pub struct FunctionRegistry {
    table: FunctionTable<CallContext>,
}

impl fmt::Debug for FunctionRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FunctionRegistry")
            .field("functions", &self.list())
            .finish()
    }
}

impl FunctionRegistry {
    /// A new, empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `f` as `module.function`, replacing any function of that name (as loading a
    /// new version of a module does). Returns whether one was replaced.
    pub fn register<F, Fut, A, R>(&self, module: &str, function: &str, f: F) -> bool
    where
        F: Fn(A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        A: DeserializeOwned + Send + 'static,
        R: Serialize + Send + 'static,
    {
        self.register_with_context(module, function, move |_ctx, args| f(args))
    }

    /// Registers a function that is also given a [`CallContext`], for functions that call
    /// other actors or nodes.
    pub fn register_with_context<F, Fut, A, R>(&self, module: &str, function: &str, f: F) -> bool
    where
        F: Fn(CallContext, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        A: DeserializeOwned + Send + 'static,
        R: Serialize + Send + 'static,
    {
        self.table.register(module, function, f)
    }

    /// Removes `module.function`; returns whether it was registered.
    pub fn unregister(&self, module: &str, function: &str) -> bool {
        self.table.unregister(module, function)
    }

    /// Whether `module.function` is registered.
    pub fn contains(&self, module: &str, function: &str) -> bool {
        self.table.contains(module, function)
    }

    /// Every registered `(module, function)`, sorted.
    pub fn list(&self) -> Vec<(String, String)> {
        self.table.list()
    }

    /// Calls `module.function` with JSON arguments, as `nodus rpc` does: the function's own
    /// argument type decodes `args` and its result comes back as JSON text. `args` is the
    /// arguments as a JSON array, one element per argument (`["hi"]` for `(String,)`, `[]`
    /// for `()`); the JSON of the argument value itself is accepted too. The function runs
    /// in the calling task, with `ctx` (the [`CallContext`] of the calling function), so
    /// call it from a function registered with
    /// [`register_with_context`](Self::register_with_context). Only with the `json` feature.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use actor_core::{CallContext, System, SystemConfig, TaskSupervisor, TaskSupervisorConfig};
    /// let system = System::start(SystemConfig::default()).await?;
    /// system.functions().register("Math", "add", |(a, b): (i64, i64)| async move { a + b });
    /// // A function that calls another one by name with JSON arguments.
    /// system.functions().register_with_context(
    ///     "Json",
    ///     "call",
    ///     |ctx: CallContext, (module, function, args): (String, String, String)| async move {
    ///         let system = ctx.system().ok_or("the node is down")?;
    ///         let json = system.functions().call_json(ctx, &module, &function, &args).await;
    ///         json.map_err(|e| e.to_string())
    ///     },
    /// );
    /// TaskSupervisor::start(&system, TaskSupervisorConfig::new("Tasks")).await?;
    /// let call = |args: &str| {
    ///     TaskSupervisor::async_on(&system, "Tasks", "Json", "call", ("Math", "add", args.to_string()))
    /// };
    /// let sum: Result<String, String> = call("[2, 3]").await?.await?;
    /// assert_eq!(sum.as_deref(), Ok("5"));
    /// let bad: Result<String, String> = call(r#"["two", 3]"#).await?.await?;
    /// assert!(bad.is_err_and(|e| e.starts_with("bad JSON arguments for Math.add")));
    /// # system.shutdown().await; Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`JsonCallError::Undefined`], [`JsonCallError::BadArgs`] (not JSON, or not the
    /// function's argument type), [`JsonCallError::BadResult`] (the function ran but its
    /// result has no JSON form).
    #[cfg(feature = "json")]
    pub async fn call_json(
        &self,
        ctx: CallContext,
        module: &str,
        function: &str,
        args: &str,
    ) -> Result<String, JsonCallError> {
        self.table.prepare_json(ctx, module, function, args)?.await
    }

    /// Prepares a call on the node of `kernel`: looks the function up and decodes the
    /// arguments, returning the future that runs it.
    ///
    /// # Errors
    /// [`TaskError::Undefined`] or [`TaskError::BadArgs`].
    pub(crate) fn prepare(
        &self,
        kernel: WeakKernel,
        module: &str,
        function: &str,
        args: Args,
    ) -> Result<BoxFuture<'static, Value>, TaskError> {
        self.table
            .prepare(CallContext { kernel }, module, function, args)
    }
}
