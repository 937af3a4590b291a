//! Attribute macros for nodus, used through the facade: `#[nodus::actor]`,
//! `#[nodus::remote_module]` and `#[nodus::test]`.
//!
//! - [`macro@actor`]: a struct (the state) and an `impl` whose methods are the handlers become a
//!   ractor actor, its message enum and a typed client that works for any
//!   [`Destination`](../nodus/enum.Destination.html).
//! - [`macro@remote_module`]: associated functions registered by name in a node's function
//!   registry, with a typed stub to call them through a `TaskSupervisor` on any node.
//! - [`macro@test`]: an async test, optionally tagged (`tags = ["distributed"]`) or needing
//!   nodes (`needs = ["moebi@localhost"]`), decided at run time as ExUnit's `@tag`.
//!
//! Generated code names everything through `::nodus`, so depend on `nodus`, not on this
//! crate. Mistakes are compile errors at the offending span that say what to write instead.

use proc_macro::TokenStream;

mod actor;
mod remote_module;
mod test_attr;
mod util;

fn emit(result: syn::Result<proc_macro2::TokenStream>) -> TokenStream {
    result.unwrap_or_else(syn::Error::into_compile_error).into()
}

/// Makes an actor of a state type and an `impl` block of handlers.
///
/// # Handlers: cast or call
///
/// A *handler* is a method of the `impl` that takes `&self` or `&mut self` and is either
/// `pub` (any `pub(..)` too) or marked `#[call]` / `#[cast]`. Other methods and associated
/// functions (constructors, private helpers) are left alone.
///
/// - **A handler that returns a value is a call**: the client waits for the reply, as
///   `GenServer.call`.
/// - **A handler that returns nothing is a cast**: the client sends and returns, as
///   `GenServer.cast`.
/// - `#[call]` makes the choice explicit (on a handler without a return type it is a bare
///   acknowledgement: the client waits until the handler has run), and `#[call(timeout_ms = 500)]` changes that call's default timeout
///   (otherwise 5 s, as `GenServer.call`). `#[cast]` on a handler that returns a value is an
///   error.
///
/// Handlers may be sync or `async`. An `async fn (&self)` handler holds `&State` across its
/// awaits, so the state must be `Sync` for it; `&mut self` handlers need only `Send`.
/// Handlers run one at a time, in the order their messages arrive.
///
/// # Generated items
///
/// For `impl Counter` (generic parameters and `where` clauses are carried over; every type
/// parameter gets `Send + 'static`):
///
/// - `enum CounterMsg`: one variant per handler (a call's last field is its reply port);
/// - `struct CounterActor`: the [`ractor::Actor`](https://docs.rs/ractor) whose state and
///   arguments are the `Counter` value;
/// - `struct CounterClient`: one async method per handler, sent through `System::cast` /
///   `System::call` to a `Destination`, with `with_timeout` to change the call timeout;
/// - on `Counter`: `spawn(&system, name, state)` (returns a client addressed to the new pid),
///   `client(&system, dest)` and `child_spec(id, state)` for a supervisor;
/// - with `remote` (see below): `impl RemoteMessage for CounterMsg`, registered at link time
///   (for a generic actor, `Counter::register_remote(&system)` instead).
///
/// The generated types and functions are private to the module, as any item without `pub`
/// (the macro cannot see the state type's visibility, and a public item may not expose a
/// private type); `#[nodus::actor(vis = pub)]` (or `pub(crate)`) makes them public. Client
/// methods keep their handler's visibility. Arguments also rename the generated types:
/// `#[nodus::actor(msg = M, client = C, actor = A)]`, and combine: `#[nodus::actor(remote,
/// vis = pub)]`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use nodus::{System, SystemConfig};
///
/// #[derive(Clone)]
/// struct Counter {
///     n: u64,
/// }
///
/// #[nodus::actor]
/// impl Counter {
///     /// Adds `k`: a cast, since it returns nothing.
///     pub fn add(&mut self, k: u64) {
///         self.n += k;
///     }
///
///     /// The count: a call, since it returns a value.
///     pub async fn get(&self) -> u64 {
///         self.n
///     }
/// }
///
/// let system = System::start(SystemConfig::named("alex@localhost")?).await?;
/// let counter = Counter::spawn(&system, Some("counter"), Counter { n: 0 }).await?;
/// counter.add(5).await?;
/// assert_eq!(counter.get().await?, 5);
///
/// // The same actor by name, or by (name, node).
/// let same = Counter::client(&system, ("counter", "alex@localhost"));
/// assert_eq!(same.get().await?, 5);
/// # system.shutdown().await; Ok(()) }
/// ```
///
/// # Remote actors: `#[nodus::actor(remote)]`
///
/// With `remote`, the message enum also implements `RemoteMessage`, so the client reaches an
/// actor on another node, `("counter", "kate@localhost")`, with the same methods. It is opt-in
/// because every handler argument and every call's reply must then be `serde::Serialize` and
/// `serde::de::DeserializeOwned`; one that is not is a compile error at its type. On the wire,
/// a message is the handler's index (in source order) and the tuple of its arguments, encoded
/// with `nodus::codec`; a call's reply port stays on the caller's node and the reply comes back
/// encoded. Both nodes must run the same `impl`: a payload that does not decode (an unknown
/// index, a call without a reply port) is refused, never a panic.
///
/// On the wire the message type is a stable name, `RemoteMessage::NAME`: the actor's name
/// (`"Counter"` for `impl Counter`), or the one given with `#[nodus::actor(remote, name =
/// "billing.Counter")]`. It does not change when the type moves to another module or the
/// program is built by another compiler, so nodes built from different layouts interoperate;
/// changing it is a wire-protocol change between your nodes. Two remote types of one name in
/// one program are an error: the second is refused on every node, with an error logged naming
/// both; give one of them a `name`.
///
/// `CounterMsg` is registered **at link time**: every node of a program that links the `impl`
/// knows it, with nothing to call. A node that does not know a name refuses the message with
/// `SendErrorKind::Refused` ("the message type \"Counter\" is not registered there; …"), which
/// says what to do.
///
/// Generic actors may be `remote`: the `RemoteMessage` impl requires each argument and reply
/// type to be serde, so `Store::<String, u32>` is remotable when `String` and `u32` are. A
/// generic message type has no single instance to register at link time, so `remote` adds
/// `Store::register_remote(&system)` for generic actors only: `spawn` calls it on the node it
/// spawns on, and every node that *sends* to a remote `Store` must call it for the same
/// instance (a `child_spec` does not register). Every instance shares the wire name, so one
/// instance per program can be remote.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use nodus::remote::{Node, NodeConfig};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Clone, Serialize, Deserialize)]
/// struct Counter {
///     n: u64,
/// }
///
/// #[nodus::actor(remote)]
/// impl Counter {
///     pub fn add(&mut self, k: u64) {
///         self.n += k;
///     }
///
///     pub async fn get(&self) -> u64 {
///         self.n
///     }
/// }
///
/// // Two nodes (in two processes, or here in one).
/// let kate = Node::start(NodeConfig::sname("kate@localhost")).await?;
/// let alex = Node::start(NodeConfig::sname("alex@localhost")).await?;
///
/// // `CounterMsg` was registered at link time: both nodes know it.
/// Counter::spawn(&kate, Some("counter"), Counter { n: 0 }).await?;
///
/// let counter = Counter::client(&alex, ("counter", "kate@localhost"));
/// counter.add(5).await?;
/// assert_eq!(counter.get().await?, 5);
/// # alex.shutdown().await; kate.shutdown().await; Ok(()) }
/// ```
///
/// # The handler context: a GenServer's powers
///
/// A handler (or `#[init]` / `#[info]` method) whose first parameter after the receiver is
/// `ctx: &mut Context` (or `&Context`) is given the actor's [`Context`](../nodus/struct.Context.html);
/// write `Context` bare, the macro fills in the message type. It is not part of the message:
/// the client method does not take it. Through it the handler knows its own `pid()` and
/// `node()`, a call's `caller()` (the calling actor's pid, across nodes too), and can
/// `monitor` / `demonitor` any destination, `monitor_node` / `monitor_nodes`, `link` /
/// `unlink` to a pid on any node and `trap_exit`, `send_after` one of its own messages and
/// `cancel_timer`, `continue_with` a message handled before any other (GenServer's
/// `{:continue, ..}`), and `stop` with an [`ExitReason`](../nodus/enum.ExitReason.html)
/// (after a call's reply is sent).
///
/// - `#[init] fn init(&mut self, ctx: &mut Context)` runs once the actor has started, before
///   its first message (GenServer's `init`, or `handle_continue` right after it).
/// - `#[info] fn info(&mut self, ctx: &mut Context, info: Info)` receives what the runtime
///   sends (GenServer's `handle_info`): a monitor's `Info::Down` with the real exit reason,
///   a trapped `Info::Exit`, `Info::NodeUp` / `Info::NodeDown`. Without one, infos are
///   dropped with a debug log.
///
/// Handlers run with the actor's node output as their group leader: `nodus::puts!` in an
/// actor writes to its node's output.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use nodus::{Context, ExitReason, Info, Pid, System, SystemConfig};
///
/// #[derive(Clone, Default)]
/// struct Room {
///     members: Vec<Pid>,
///     left: Vec<(Pid, ExitReason)>,
/// }
///
/// #[nodus::actor]
/// impl Room {
///     /// A member joins: the room monitors it, and knows it from the call.
///     pub fn join(&mut self, ctx: &mut Context) -> usize {
///         if let Some(pid) = ctx.caller().and_then(|c| c.pid()).cloned() {
///             ctx.monitor(pid.clone());
///             self.members.push(pid);
///         }
///         self.members.len()
///     }
///
///     pub fn left(&self) -> Vec<(Pid, ExitReason)> {
///         self.left.clone()
///     }
///
///     #[info]
///     fn info(&mut self, info: Info) {
///         if let Info::Down { dest: nodus::Destination::Pid(pid), reason, .. } = info {
///             self.members.retain(|m| *m != pid);
///             self.left.push((pid, reason));
///         }
///     }
/// }
///
/// #[derive(Clone)]
/// struct Member;
///
/// #[nodus::actor]
/// impl Member {
///     pub async fn enter(&self, ctx: &mut Context) -> usize {
///         let Some(system) = ctx.system() else { return 0 };
///         Room::client(&system, "room").join().await.unwrap_or(0)
///     }
///
///     #[call]
///     pub fn leave(&self, ctx: &mut Context) {
///         ctx.stop(ExitReason::Stopped("bye".into()));
///     }
/// }
///
/// let system = System::start(SystemConfig::named("alex@localhost")?).await?;
/// let room = Room::spawn(&system, Some("room"), Room::default()).await?;
/// let member = Member::spawn(&system, None, Member).await?;
/// assert_eq!(member.enter().await?, 1);
/// member.leave().await?;
/// # let start = std::time::Instant::now();
/// while room.left().await?.is_empty() {
/// #   assert!(start.elapsed() < std::time::Duration::from_secs(5));
///     tokio::task::yield_now().await;
/// }
/// assert_eq!(room.left().await?[0].1, ExitReason::Stopped("bye".into()));
/// # system.shutdown().await; Ok(()) }
/// ```
///
/// Mistakes are compile errors with the fix, e.g. for a handler taking `self` by value:
///
/// ```compile_fail
/// struct Counter { n: u64 }
/// #[nodus::actor]
/// impl Counter {
///     pub fn take(self) -> u64 { self.n } // error: write `&self` or `&mut self`
/// }
/// ```
#[proc_macro_attribute]
pub fn actor(attr: TokenStream, item: TokenStream) -> TokenStream {
    emit(actor::expand(attr.into(), item.into()))
}

/// Registers the public associated functions of an `impl` as a module of functions callable
/// by name, as an Elixir module called through `Task.Supervisor.async({name, node}, M, F, A)`.
///
/// `#[nodus::remote_module("Chat")]` on `impl Chat` generates:
///
/// - `Chat::MODULE`, the module name (`"Chat"`; it defaults to the type's name);
/// - `Chat::register(&system)`: registers every `pub fn` in `system.functions()` under the
///   module name, with a tuple of its parameters as the argument. A function whose first
///   parameter is a `CallContext` is registered with `register_with_context` and is given the
///   context of the node it runs on;
/// - `Chat::on(&system, dest)`, a `ChatStub` with one async method per function: the typed
///   twin of `TaskSupervisor::async_on(&system, dest, "Chat", "f", (args,))` followed by
///   awaiting the task (5 s, or `with_timeout`), returning `Result<R, TaskError>`.
///
/// Functions are associated functions (no `self`), may be sync or `async`, and take and
/// return owned serializable types. Private functions are helpers and are not registered.
/// `stub = Name` renames the stub type.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use nodus::{System, SystemConfig, TaskSupervisor, TaskSupervisorConfig};
///
/// struct Chat;
///
/// #[nodus::remote_module("Chat")]
/// impl Chat {
///     /// Answers a message.
///     pub async fn receive_message(message: String) -> String {
///         format!("got {message}")
///     }
/// }
///
/// let system = System::start(SystemConfig::named("alex@localhost")?).await?;
/// Chat::register(&system);
/// TaskSupervisor::start(&system, TaskSupervisorConfig::new("Chat.TaskSupervisor")).await?;
///
/// // On a distributed node (`nodus::remote::Node`), ("Chat.TaskSupervisor", "kate@localhost")
/// // reaches a peer the same way; this bare `System` answers `NoConnection` for it.
/// let reply = Chat::on(&system, "Chat.TaskSupervisor")
///     .receive_message("hi".to_string())
///     .await?;
/// assert_eq!(reply, "got hi");
/// # system.shutdown().await; Ok(()) }
/// ```
#[proc_macro_attribute]
pub fn remote_module(attr: TokenStream, item: TokenStream) -> TokenStream {
    emit(remote_module::expand(attr.into(), item.into()))
}

/// An async test on a tokio runtime, optionally gated by tags and needed nodes, as ExUnit's
/// `@tag :distributed`.
///
/// ```text
/// #[nodus::test]                                        // always runs
/// #[nodus::test(tags = ["distributed"])]                // runs when the tag is included
/// #[nodus::test(tags = ["distributed"], needs = ["moebi@localhost"])]
///                                                       // ...or when moebi@localhost is up
/// ```
///
/// The decision is made at run time by `nodus::testing::main`, the runner of a test target
/// with `harness = false`; an excluded test is reported as *ignored* with its reason, never
/// passed silently. `NODUS_TEST_INCLUDE=distributed` includes a tag (`mix test --include`),
/// `NODUS_TEST_ONLY=distributed` runs only tests with that tag (`mix test --only`), and a test
/// whose needed nodes all answer the runner's node probe runs. See `nodus::testing` for the
/// rules and the runner.
///
/// Under the ordinary libtest harness (a unit test or a `harness = true` target), which cannot
/// ignore a test at run time, an untagged test runs and a tagged one is `#[ignore]`d with its
/// reason (run it with `--ignored`).
///
/// A test may return `()` or a `Result<(), E: Debug>`.
///
/// # The `testing` feature
///
/// The test this generates runs on `nodus::testing`, which exists only with nodus's `testing`
/// feature. Enable it where the tests are built, not for the library itself:
///
/// ```toml
/// [dev-dependencies]
/// nodus = { version = "...", features = ["testing"] }
/// ```
///
/// Without it, `#[nodus::test]` fails to compile with an error that says so.
#[proc_macro_attribute]
pub fn test(attr: TokenStream, item: TokenStream) -> TokenStream {
    emit(test_attr::expand(attr.into(), item.into()))
}
