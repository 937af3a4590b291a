//! The built-in service every node runs to answer questions from outside: what the `nodus`
//! command (`nodus nodes`, `nodus info`, `nodus rpc`) asks, as the BEAM has `rpc` and
//! `erpc` built in.
//!
//! At [`Node::start`](crate::Node::start) every node starts a task supervisor named
//! [`RPC_SUPERVISOR`] (`nodus.Rpc`) and registers these functions in module [`MODULE`]
//! (`nodus`):
//!
//! | function | arguments | result |
//! |---|---|---|
//! | [`NODES`] (`nodus.nodes`) | `()` | `Vec<NodeName>`: its `Node.list` |
//! | [`INFO`] (`nodus.info`) | `()` | `Result<Info, String>`: version, uptime, names, supervision tree, task supervisors ([`Info`]) |
//! | [`RPC_JSON`] (`nodus.rpc_json`) | `(module, function, json_args): (String, String, String)` | `Result<String, String>`: the JSON result, or what went wrong |
//!
//! `nodus.rpc_json` exists only when actor-remote's `json` feature is on (the `nodus`
//! package turns it on by default); it calls the named function through its JSON entry point
//! (actor-core's `FunctionRegistry::call_json`), so the function's own serde types decode the
//! arguments.
//!
//! A peer calls them as any function, `TaskSupervisor::async_on(&node, ("nodus.Rpc", target),
//! "nodus", "info", ())`, or with the helpers here ([`nodes`], [`info`], `rpc_json`), which
//! bound every wait and say what went wrong. They give a connected node nothing it could not
//! already do: any node holding the cookie may call every registered function.
//!
//! [`Info`] and what it holds derive `Serialize`: with the wire types, they are what crosses
//! between nodes, so a change to them is a change of the protocol between nodus versions.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use actor_remote::{node::admin, port_mapper::PortMapperServer, Cookie, Node, NodeConfig};
//! let epmd = PortMapperServer::bind("127.0.0.1:0".parse()?).await?.spawn();
//! let config = |name| NodeConfig::sname(name)
//!     .cookie(Cookie::new("mycookie").unwrap())
//!     .port_mapper(epmd.local_addr());
//! let hoge = Node::start(config("hoge@localhost")).await?;
//! let fuga = Node::start(config("fuga@localhost")).await?;
//! let timeout = Duration::from_secs(10);
//!
//! assert_eq!(admin::nodes(&hoge, fuga.name(), timeout).await?, [hoge.name().clone()]);
//! let info = admin::info(&hoge, fuga.name(), timeout).await?;
//! assert_eq!(&info.node, fuga.name());
//! assert!(info.registered.iter().any(|name| name == admin::RPC_SUPERVISOR));
//! # hoge.shutdown().await; fuga.shutdown().await; Ok(()) }
//! ```

use std::{
    sync::{Arc, Weak},
    time::{Duration, Instant},
};

use actor_core::{
    ractor::ActorRef, NodeName, Pid, Supervisor, SupervisorError, SupervisorMsg, System, TaskError,
    TaskId, TaskSupervisor, TaskSupervisorConfig, TaskSupervisorMsg,
};
use futures::{future::BoxFuture, FutureExt};
use serde::{Deserialize, Serialize};

use super::{inner::Inner, ListKind, Node};
use crate::proto::PROTOCOL_VERSION;

/// The name of the task supervisor every node runs the built-in functions under, as the
/// BEAM's `rpc`: `("nodus.Rpc", node)`.
pub const RPC_SUPERVISOR: &str = "nodus.Rpc";

/// The module of the built-in functions.
pub const MODULE: &str = "nodus";

/// `nodus.nodes(())`: the node's `Node.list` (visible nodes), a `Vec<NodeName>`.
pub const NODES: &str = "nodes";

/// `nodus.info(())`: an [`Info`] about the node (`Result<Info, String>`, an error while it
/// shuts down).
pub const INFO: &str = "info";

/// `nodus.rpc_json((module, function, json_args))`: runs `module.function` with JSON
/// arguments (a JSON array, one element per argument) and answers `Ok(json_result)` or
/// `Err(what went wrong)`. Only with actor-remote's `json` feature.
pub const RPC_JSON: &str = "rpc_json";

/// How long [`info`] waits for each supervisor of the node to list its children. A
/// supervisor busy past it (stopping a slow child, say) is listed without its children.
pub const LIST_TIMEOUT: Duration = Duration::from_secs(2);

/// How deep [`Info::tree`] goes below the root supervisor.
const MAX_DEPTH: u32 = 64;

/// What `nodus.info` answers about a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Info {
    /// The node's name.
    pub node: NodeName,
    /// The version of nodus it runs.
    pub version: String,
    /// The distribution protocol version it speaks.
    pub protocol: u16,
    /// How long ago the node started.
    pub uptime: Duration,
    /// Its visible peers (`Node.list`), sorted.
    pub nodes: Vec<NodeName>,
    /// Its hidden peers (`Node.list(:hidden)`, such as a `nodus` command asking), sorted.
    pub hidden_nodes: Vec<NodeName>,
    /// The names registered on it, sorted.
    pub registered: Vec<String>,
    /// Its supervision tree, depth first from the root supervisor (depth 0), each child in
    /// its supervisor's start order.
    pub tree: Vec<TreeEntry>,
    /// Its task supervisors (by registered name, sorted) and their running tasks.
    pub task_supervisors: Vec<TaskSupervisorInfo>,
}

/// One process in a supervision tree ([`Info::tree`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TreeEntry {
    /// How far below the root supervisor (0 for the root itself).
    pub depth: u32,
    /// Its child id (`root` for the root).
    pub id: String,
    /// The name it is registered under, if any.
    pub name: Option<String>,
    /// Its pid, or `None` if it is not running (its spec is kept).
    pub pid: Option<Pid>,
    /// What it is.
    pub kind: ChildKind,
    /// A supervisor that did not list its children within [`LIST_TIMEOUT`]: they are missing.
    pub children_unknown: bool,
}

/// What a process of the supervision tree is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ChildKind {
    /// A [`Supervisor`]: its children follow it, one level deeper.
    Supervisor,
    /// A [`TaskSupervisor`]: its tasks are in [`Info::task_supervisors`].
    TaskSupervisor,
    /// Any other actor, or a child that is not running.
    Worker,
}

/// A task supervisor and its running tasks ([`Info::task_supervisors`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TaskSupervisorInfo {
    /// The name it is registered under.
    pub name: String,
    /// Its pid.
    pub pid: Pid,
    /// The ids of its running tasks, in start order; `None` if it did not answer within
    /// [`LIST_TIMEOUT`].
    pub children: Option<Vec<TaskId>>,
}

/// Asking a node's built-in service failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The node does not run the service: its `nodus.Rpc` or the function is missing.
    #[error("{node} does not answer nodus.{function}: {source}; is it a nodus node of the same version as this one?")]
    NoService {
        /// The node asked.
        node: NodeName,
        /// The built-in function.
        function: &'static str,
        /// What the task supervisor said.
        #[source]
        source: TaskError,
    },
    /// The node was built without the `json` feature, so it has no `nodus.rpc_json`.
    #[error("{node} cannot run functions with JSON arguments: it was built without nodus's `json` feature (on by default); build it with that feature")]
    NoJson {
        /// The node asked.
        node: NodeName,
    },
    /// The call did not start or did not finish (no connection, a timeout, a panic).
    #[error("nodus.{function} on {node} failed: {source}")]
    Task {
        /// The node asked.
        node: NodeName,
        /// The built-in function.
        function: &'static str,
        /// What happened.
        #[source]
        source: TaskError,
    },
    /// The built-in function ran and answered an error: for `nodus.rpc_json` an unknown
    /// function, arguments that do not decode as its argument type, a result with no JSON
    /// form; for any, a node shutting down.
    #[error("on {node}: {message}")]
    Rpc {
        /// The node asked.
        node: NodeName,
        /// Its answer, which says what to do.
        message: String,
    },
}

/// Calls `nodus.function(args)` on `target` under its `nodus.Rpc`, each step bounded by
/// `timeout`.
async fn call<A, R>(
    node: &Node,
    target: &NodeName,
    function: &'static str,
    args: A,
    timeout: Duration,
) -> Result<R, AdminError>
where
    A: Serialize + Send + 'static,
    R: serde::de::DeserializeOwned + Send + 'static,
{
    let dest = (RPC_SUPERVISOR, target.clone());
    let failed = |source: TaskError| match source {
        TaskError::NoProc { .. } | TaskError::Undefined { .. } => AdminError::NoService {
            node: target.clone(),
            function,
            source,
        },
        source => AdminError::Task {
            node: target.clone(),
            function,
            source,
        },
    };
    let task = TaskSupervisor::async_on_timeout(node, dest, MODULE, function, args, timeout)
        .await
        .map_err(failed)?;
    task.await_timeout(timeout).await.map_err(failed)
}

/// `target`'s `Node.list`, asked through its `nodus.nodes`.
///
/// # Errors
/// [`AdminError::Task`] if `target` cannot be reached or does not answer within `timeout`,
/// [`AdminError::NoService`] if it does not run the service.
pub async fn nodes(
    node: &Node,
    target: &NodeName,
    timeout: Duration,
) -> Result<Vec<NodeName>, AdminError> {
    call(node, target, NODES, (), timeout).await
}

/// What `target` says about itself, asked through its `nodus.info`.
///
/// # Errors
/// As [`nodes`].
pub async fn info(node: &Node, target: &NodeName, timeout: Duration) -> Result<Info, AdminError> {
    let answer: Result<Info, String> = call(node, target, INFO, (), timeout).await?;
    answer.map_err(|message| AdminError::Rpc {
        node: target.clone(),
        message,
    })
}

/// Runs `module.function` on `target` with JSON arguments (`args`: a JSON array, one element
/// per argument), decoded there by the function's own argument type, and returns its result
/// as JSON, through `target`'s `nodus.rpc_json`. Only with the `json` feature.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use actor_remote::{node::admin, port_mapper::PortMapperServer, Cookie, Node, NodeConfig};
/// let epmd = PortMapperServer::bind("127.0.0.1:0".parse()?).await?.spawn();
/// let config = |name| NodeConfig::sname(name)
///     .cookie(Cookie::new("mycookie").unwrap())
///     .port_mapper(epmd.local_addr());
/// let hoge = Node::start(config("hoge@localhost")).await?;
/// let fuga = Node::start(config("fuga@localhost")).await?;
/// fuga.functions().register("Math", "add", |(a, b): (i64, i64)| async move { a + b });
/// let timeout = Duration::from_secs(10);
///
/// let sum = admin::rpc_json(&hoge, fuga.name(), "Math", "add", "[2, 3]", timeout).await?;
/// assert_eq!(sum, "5");
/// let bad = admin::rpc_json(&hoge, fuga.name(), "Math", "add", r#"["two", 3]"#, timeout).await;
/// assert!(matches!(bad, Err(admin::AdminError::Rpc { .. })));
/// # hoge.shutdown().await; fuga.shutdown().await; Ok(()) }
/// ```
///
/// # Errors
/// [`AdminError::Rpc`] for what `target` refused (an unknown function, arguments that do not
/// decode, a result with no JSON form), [`AdminError::NoJson`] if `target` was built without
/// the `json` feature, otherwise as [`nodes`].
#[cfg(feature = "json")]
pub async fn rpc_json(
    node: &Node,
    target: &NodeName,
    module: &str,
    function: &str,
    args: &str,
    timeout: Duration,
) -> Result<String, AdminError> {
    let args = (module.to_string(), function.to_string(), args.to_string());
    let answer: Result<String, String> = call(node, target, RPC_JSON, args, timeout)
        .await
        .map_err(|e| match e {
            AdminError::NoService {
                source: TaskError::Undefined { .. },
                node,
                ..
            } => AdminError::NoJson { node },
            other => other,
        })?;
    answer.map_err(|message| AdminError::Rpc {
        node: target.clone(),
        message,
    })
}

/// Starts the service on a starting node: `nodus.Rpc` and the `nodus` functions.
pub(super) async fn install(inner: &Arc<Inner>) -> Result<(), SupervisorError> {
    let system = &inner.system;
    let started = Instant::now();
    let weak = Arc::downgrade(inner);
    system.functions().register(MODULE, NODES, move |(): ()| {
        let list = weak
            .upgrade()
            .map(|inner| inner.lock().list(ListKind::Visible))
            .unwrap_or_default();
        async move { list }
    });
    let weak = Arc::downgrade(inner);
    system
        .functions()
        .register(MODULE, INFO, move |(): ()| gather(weak.clone(), started));
    #[cfg(feature = "json")]
    system.functions().register_with_context(
        MODULE,
        RPC_JSON,
        |ctx: actor_core::CallContext, (module, function, args): (String, String, String)| async move {
            let system = ctx.system().ok_or("the node is shutting down")?;
            let functions = system.functions().clone();
            functions
                .call_json(ctx, &module, &function, &args)
                .await
                .map_err(|e| e.to_string())
        },
    );
    TaskSupervisor::start(system, TaskSupervisorConfig::new(RPC_SUPERVISOR)).await?;
    Ok(())
}

/// What `nodus.info` answers.
async fn gather(inner: Weak<Inner>, started: Instant) -> Result<Info, String> {
    let inner = inner.upgrade().ok_or("the node is shutting down")?;
    let (nodes, hidden_nodes) = {
        let state = inner.lock();
        (state.list(ListKind::Visible), state.list(ListKind::Hidden))
    };
    let system = inner.system.clone();
    drop(inner);
    let mut registered = system.registry().registered();
    registered.sort();
    let root = system.root().clone();
    let mut tree = vec![TreeEntry {
        depth: 0,
        id: "root".into(),
        name: None,
        pid: Some(system.pid_of(&root.get_cell())),
        kind: ChildKind::Supervisor,
        children_unknown: false,
    }];
    walk(&system, root, 1, &mut tree).await;
    let mut task_supervisors = Vec::new();
    for name in &registered {
        let Some(sup) = TaskSupervisor::whereis(&system, name) else {
            continue;
        };
        let children = tokio::time::timeout(LIST_TIMEOUT, sup.children())
            .await
            .ok()
            .and_then(Result::ok);
        task_supervisors.push(TaskSupervisorInfo {
            name: name.clone(),
            pid: system.pid_of(&sup.actor().get_cell()),
            children,
        });
    }
    Ok(Info {
        node: system.node().clone(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        protocol: PROTOCOL_VERSION,
        uptime: started.elapsed(),
        nodes,
        hidden_nodes,
        registered,
        tree,
        task_supervisors,
    })
}

/// Appends the children of `sup` (and theirs, depth first) to `out`, at `depth`.
fn walk<'a>(
    system: &'a System,
    sup: ActorRef<SupervisorMsg>,
    depth: u32,
    out: &'a mut Vec<TreeEntry>,
) -> BoxFuture<'a, ()> {
    async move {
        let listed = tokio::time::timeout(LIST_TIMEOUT, Supervisor::which_children(&sup)).await;
        let Ok(Ok(children)) = listed else {
            if let Some(parent) = out.last_mut() {
                parent.children_unknown = true;
            }
            return;
        };
        for child in children {
            let kind = match &child.actor {
                Some(cell) if cell.is_message_type_of::<SupervisorMsg>() == Some(true) => {
                    ChildKind::Supervisor
                }
                Some(cell) if cell.is_message_type_of::<TaskSupervisorMsg>() == Some(true) => {
                    ChildKind::TaskSupervisor
                }
                _ => ChildKind::Worker,
            };
            out.push(TreeEntry {
                depth,
                id: child.id.clone(),
                name: child.name.clone(),
                pid: child.actor.as_ref().map(|cell| system.pid_of(cell)),
                kind,
                children_unknown: false,
            });
            if let (ChildKind::Supervisor, Some(cell)) = (kind, child.actor) {
                if depth < MAX_DEPTH {
                    walk(system, ActorRef::from(cell), depth + 1, out).await;
                } else if let Some(entry) = out.last_mut() {
                    entry.children_unknown = true;
                }
            }
        }
    }
    .boxed()
}
