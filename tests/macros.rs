//! `#[nodus::actor]` and `#[nodus::remote_module]` end to end on one node, and their compile
//! errors (trybuild, `tests/ui`).

use std::{collections::HashMap, hash::Hash, time::Duration};

use nodus::{
    core::{CallContext, SendErrorKind},
    CallError, System, SystemConfig, TaskError, TaskSupervisor, TaskSupervisorConfig,
};

type Res = Result<(), Box<dyn std::error::Error>>;

async fn system() -> Result<System, Box<dyn std::error::Error>> {
    Ok(System::start(SystemConfig::named("alex@localhost")?).await?)
}

#[derive(Clone, Debug, PartialEq)]
struct Counter {
    n: u64,
}

#[nodus::actor]
impl Counter {
    /// A sync cast.
    pub fn add(&mut self, k: u64) {
        self.n += k;
    }

    /// An async call.
    pub async fn get(&self) -> u64 {
        self.n
    }

    /// `Self` in a reply names the state type.
    pub fn snapshot(&self) -> Self {
        self.clone()
    }

    /// An explicit, acknowledged call with no value, and several arguments.
    #[call]
    pub async fn set(&mut self, high: u64, low: u64) -> () {
        self.n = high * 10 + low;
    }

    /// An explicit cast that is not `pub`: still a handler.
    #[cast]
    fn reset(&mut self) {
        self.n = 0;
    }

    /// A call that never replies, with its own default timeout.
    #[call(timeout_ms = 20)]
    pub async fn stall(&self) -> u64 {
        std::future::pending().await
    }

    /// Not a handler: an associated function.
    pub fn zero() -> Self {
        Counter { n: 0 }
    }

    /// Not a handler: a private helper.
    #[allow(dead_code)]
    fn double(&self) -> u64 {
        self.n * 2
    }
}

#[tokio::test]
async fn actor_casts_and_calls_by_pid_name_and_name_on_node() -> Res {
    let system = system().await?;
    let counter = Counter::spawn(&system, Some("counter"), Counter::zero()).await?;
    assert!(matches!(counter.destination(), nodus::Destination::Pid(_)));
    counter.add(5).await?;
    assert_eq!(counter.get().await?, 5);
    counter.set(4, 2).await?;
    assert_eq!(counter.snapshot().await?, Counter { n: 42 });

    for same in [
        Counter::client(&system, "counter"),
        Counter::client(&system, ("counter", "alex@localhost")),
        counter.clone(),
    ] {
        same.add(1).await?;
    }
    assert_eq!(Counter::client(&system, "counter").get().await?, 45);
    counter.reset().await?;
    assert_eq!(counter.get().await?, 0);
    system.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn actor_client_errors_are_typed() -> Res {
    let system = system().await?;
    Counter::spawn(&system, Some("counter"), Counter::zero()).await?;

    // Another node: no transport in this branch, so NoConnection.
    let remote = Counter::client(&system, ("counter", "kate@localhost"));
    let err = remote.get().await.err();
    assert!(
        matches!(&err, Some(CallError::Send(SendErrorKind::NoConnection { node })) if node.as_str() == "kate@localhost"),
        "{err:?}"
    );
    let err = remote.add(1).await.err();
    assert!(
        matches!(&err, Some(e) if matches!(e.kind, SendErrorKind::NoConnection { .. })),
        "{err:?}"
    );
    // The message comes back.
    assert!(matches!(
        err.and_then(|e| e.into_inner()),
        Some(CounterMsg::Add(1))
    ));

    let missing = Counter::client(&system, "nobody");
    let err = missing.get().await.err();
    assert!(
        matches!(err, Some(CallError::Send(SendErrorKind::NoProc { .. }))),
        "{err:?}"
    );

    // A name taken by another actor type.
    Store::<String, u32>::spawn(&system, Some("store"), Store::default()).await?;
    let err = Counter::client(&system, "store").get().await.err();
    assert!(
        matches!(err, Some(CallError::Send(SendErrorKind::WrongType { .. }))),
        "{err:?}"
    );
    system.shutdown().await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn calls_time_out_after_their_default_or_the_clients_timeout() -> Res {
    let system = system().await?;
    let counter = Counter::spawn(&system, None, Counter::zero()).await?;
    let err = counter.stall().await.err();
    assert!(
        matches!(err, Some(CallError::Timeout { timeout, .. }) if timeout == Duration::from_millis(20)),
        "{err:?}"
    );
    // The actor is stuck in `stall`; another one answers the client's own timeout.
    let other = Counter::spawn(&system, None, Counter::zero()).await?;
    let other = other.with_timeout(Duration::from_millis(7));
    let err = other.stall().await.err();
    assert!(
        matches!(err, Some(CallError::Timeout { timeout, .. }) if timeout == Duration::from_millis(7)),
        "{err:?}"
    );
    Ok(())
}

#[tokio::test]
async fn actor_child_spec_starts_under_a_supervisor() -> Res {
    let system = system().await?;
    let spec = Counter::child_spec("counter", Counter { n: 7 }).name("counter");
    assert_eq!(spec.id(), "counter");
    system.start_child(spec).await?;
    assert_eq!(Counter::client(&system, "counter").get().await?, 7);
    system.shutdown().await;
    Ok(())
}

/// A generic actor with a `where` clause on the struct and the impl.
#[derive(Clone, Debug)]
struct Store<K, V>
where
    K: Eq + Hash,
{
    map: HashMap<K, V>,
}

impl<K: Eq + Hash, V> Default for Store<K, V> {
    fn default() -> Self {
        Self {
            map: HashMap::new(),
        }
    }
}

#[nodus::actor]
impl<K, V> Store<K, V>
where
    K: Eq + Hash + Clone + Sync,
    V: Clone + Sync,
{
    /// Stores `v` under `k`.
    pub fn put(&mut self, k: K, v: V) {
        self.map.insert(k, v);
    }

    /// The value under `k`.
    pub async fn get(&self, k: K) -> Option<V> {
        self.map.get(&k).cloned()
    }

    /// How many keys.
    pub fn len(&self) -> usize {
        self.map.len()
    }
}

#[tokio::test]
async fn generic_actors_work() -> Res {
    let system = system().await?;
    let store = Store::<String, Vec<u8>>::spawn(&system, Some("store"), Store::default()).await?;
    store.put("a".to_string(), vec![1, 2]).await?;
    assert_eq!(store.get("a".to_string()).await?, Some(vec![1, 2]));
    assert_eq!(store.get("b".to_string()).await?, None);

    let by_name: StoreClient<String, Vec<u8>> = Store::client(&system, "store");
    assert_eq!(by_name.len().await?, 1);
    // Another instantiation is another message type.
    let err = Store::<u32, u32>::client(&system, "store")
        .len()
        .await
        .err();
    assert!(
        matches!(err, Some(CallError::Send(SendErrorKind::WrongType { .. }))),
        "{err:?}"
    );
    system
        .start_child(Store::<u32, u32>::child_spec("ints", Store::default()).name("ints"))
        .await?;
    Store::<u32, u32>::client(&system, "ints").put(1, 2).await?;
    assert_eq!(
        Store::<u32, u32>::client(&system, "ints").get(1).await?,
        Some(2)
    );
    system.shutdown().await;
    Ok(())
}

/// Renamed generated types.
struct Bell;

#[nodus::actor(msg = BellMessage, client = BellHandle, actor = BellBehaviour)]
impl Bell {
    /// Rings.
    pub fn ring(&self) -> &'static str {
        "ding"
    }
}

#[tokio::test]
async fn generated_names_can_be_chosen() -> Res {
    let system = system().await?;
    let bell: BellHandle = Bell::spawn(&system, None, Bell).await?;
    assert_eq!(bell.ring().await?, "ding");
    let _: Option<BellMessage> = None;
    let (_actor, _) = system
        .spawn(None, BellBehaviour::default(), (Bell, system.downgrade()))
        .await?;
    system.shutdown().await;
    Ok(())
}

struct Chat;

#[nodus::remote_module("Chat")]
impl Chat {
    /// Answers a message.
    pub async fn receive_message(message: String) -> String {
        format!("got {message}")
    }

    /// A sync function of several arguments.
    pub fn add(a: i64, b: i64) -> i64 {
        a + b
    }

    /// No argument, no result.
    pub fn ping() {}

    /// Given the context of the node it runs on.
    pub async fn node(ctx: CallContext, greeting: String) -> String {
        let node = ctx
            .system()
            .map(|s| s.node().to_string())
            .unwrap_or_default();
        format!("{greeting} from {node}")
    }

    /// Not registered: a helper.
    #[allow(dead_code)]
    fn helper() {}
}

#[tokio::test]
async fn remote_module_registers_and_calls_through_the_stub() -> Res {
    let system = system().await?;
    assert_eq!(Chat::MODULE, "Chat");
    Chat::register(&system);
    let mut listed = system.functions().list();
    listed.sort();
    let expect =
        ["add", "node", "ping", "receive_message"].map(|f| ("Chat".to_string(), f.to_string()));
    assert_eq!(listed, expect);
    TaskSupervisor::start(&system, TaskSupervisorConfig::new("Chat.TaskSupervisor")).await?;

    let chat = Chat::on(&system, "Chat.TaskSupervisor");
    assert_eq!(chat.receive_message("hi".to_string()).await?, "got hi");
    assert_eq!(chat.add(2, 3).await?, 5);
    chat.ping().await?;
    assert_eq!(
        chat.node("hello".to_string()).await?,
        "hello from alex@localhost"
    );

    // The typed twin of TaskSupervisor::async_on.
    let untyped: String = TaskSupervisor::async_on(
        &system,
        "Chat.TaskSupervisor",
        "Chat",
        "receive_message",
        ("hi",),
    )
    .await?
    .await?;
    assert_eq!(untyped, "got hi");

    // (name, this node) is the same supervisor.
    let same = Chat::on(&system, ("Chat.TaskSupervisor", "alex@localhost"))
        .with_timeout(Duration::from_secs(1));
    assert_eq!(same.add(1, 1).await?, 2);
    system.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn remote_module_errors_are_typed() -> Res {
    let system = system().await?;
    TaskSupervisor::start(&system, TaskSupervisorConfig::new("Chat.TaskSupervisor")).await?;
    // Not registered on this node.
    let err = Chat::on(&system, "Chat.TaskSupervisor")
        .receive_message("hi".into())
        .await
        .err();
    assert!(
        matches!(&err, Some(TaskError::Undefined { module, function }) if module == "Chat" && function == "receive_message"),
        "{err:?}"
    );
    Chat::register(&system);
    // Another node: no transport in this branch.
    let err = Chat::on(&system, ("Chat.TaskSupervisor", "moebi@localhost"))
        .add(1, 2)
        .await
        .err();
    assert!(
        matches!(&err, Some(TaskError::NoConnection { node }) if node.as_str() == "moebi@localhost"),
        "{err:?}"
    );
    // No such supervisor.
    let err = Chat::on(&system, "Nope.TaskSupervisor").ping().await.err();
    assert!(matches!(err, Some(TaskError::NoProc { .. })), "{err:?}");
    system.shutdown().await;
    Ok(())
}

/// The compile errors users see, with their spans and fixes. Slow (it builds a crate per
/// case), so the cases are few.
#[test]
fn compile_errors_point_at_the_mistake() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}

/// `#[nodus::test]` under the ordinary libtest harness: an untagged test simply runs. It needs
/// the `testing` feature, as every user of `#[nodus::test]` does.
#[cfg(feature = "testing")]
#[nodus::test]
async fn nodus_test_runs_under_libtest() -> Res {
    let system = system().await?;
    let bell = Bell::spawn(&system, None, Bell).await?;
    assert_eq!(bell.ring().await?, "ding");
    system.shutdown().await;
    Ok(())
}

/// Public generated items for a public state type.
pub mod public {
    /// A public actor.
    #[derive(Clone, Debug, Default)]
    pub struct Gauge(pub i64);

    #[nodus::actor(vis = pub)]
    impl Gauge {
        /// Sets the value.
        pub fn set(&mut self, v: i64) {
            self.0 = v;
        }

        /// The value.
        pub fn read(&self) -> i64 {
            self.0
        }
    }
}

#[tokio::test]
async fn public_generated_items() -> Res {
    let system = system().await?;
    let gauge: public::GaugeClient = public::Gauge::spawn(&system, None, public::Gauge(1)).await?;
    gauge.set(3).await?;
    assert_eq!(gauge.read().await?, 3);
    system.shutdown().await;
    Ok(())
}

/// `#[nodus::actor(remote)]`: the same client for an actor on another node.
mod remote_actor {
    use std::time::Duration;

    use nodus::{
        core::{codec, RemoteMessage, ReplySink, SendErrorKind},
        remote::{
            port_mapper::{PortMapperServer, PortMapperServerHandle},
            Cookie, Node, NodeConfig,
        },
        CallError,
    };
    use serde::{Deserialize, Serialize};

    type Res = Result<(), Box<dyn std::error::Error>>;

    /// Every call in these tests waits at most this long.
    const T: Duration = Duration::from_secs(5);

    async fn port_mapper() -> PortMapperServerHandle {
        PortMapperServer::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap()
            .spawn()
    }

    async fn node(name: &str, epmd: &PortMapperServerHandle) -> Node {
        Node::start(
            NodeConfig::sname(name)
                .cookie(Cookie::new("macros").unwrap())
                .port_mapper(epmd.local_addr())
                .handshake_timeout(Duration::from_secs(3)),
        )
        .await
        .unwrap()
    }

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    struct Counter {
        n: u64,
    }

    #[nodus::actor(remote)]
    impl Counter {
        /// A cast.
        pub fn add(&mut self, k: u64) {
            self.n += k;
        }

        /// A call of no argument.
        pub async fn get(&self) -> u64 {
            self.n
        }

        /// A call of several arguments, acknowledged.
        #[call]
        pub async fn set(&mut self, high: u64, low: u64) -> () {
            self.n = high * 10 + low;
        }

        /// A serde reply of the state type.
        pub fn snapshot(&self) -> Self {
            self.clone()
        }

        /// A cast of no argument.
        #[cast]
        pub fn reset(&mut self) {
            self.n = 0;
        }
    }

    /// A generic remote actor: the serde bounds are added by the macro.
    #[derive(Clone, Debug, Default)]
    struct Slot<T> {
        value: Option<T>,
    }

    #[nodus::actor(remote)]
    impl<T> Slot<T>
    where
        T: Clone + Sync,
    {
        /// Replaces the value, returning the old one.
        pub fn swap(&mut self, value: T) -> Option<T> {
            self.value.replace(value)
        }
    }

    #[tokio::test]
    async fn a_remote_actor_answers_the_same_client_on_another_node() -> Res {
        let epmd = port_mapper().await;
        let a = node("a@localhost", &epmd).await;
        let b = node("b@localhost", &epmd).await;
        // `CounterMsg` is registered at link time: neither node calls anything for it.
        Counter::spawn(&b, Some("counter"), Counter { n: 0 }).await?;

        let counter = Counter::client(&a, ("counter", "b@localhost")).with_timeout(T);
        counter.add(5).await?;
        assert_eq!(counter.get().await?, 5);
        counter.set(4, 2).await?;
        assert_eq!(counter.snapshot().await?, Counter { n: 42 });
        counter.reset().await?;
        counter.add(1).await?;
        assert_eq!(counter.get().await?, 1);
        // The same actor, locally on b.
        assert_eq!(Counter::client(&b, "counter").get().await?, 1);

        // A generic actor: `spawn` registers the instance on b, the sender registers it on a.
        Slot::<String>::spawn(&b, Some("slot"), Slot::default()).await?;
        Slot::<String>::register_remote(&a);
        let slot = Slot::<String>::client(&a, ("slot", "b@localhost")).with_timeout(T);
        assert_eq!(slot.swap("x".to_string()).await?, None);
        assert_eq!(slot.swap("y".to_string()).await?, Some("x".to_string()));

        a.shutdown().await;
        b.shutdown().await;
        Ok(())
    }

    #[tokio::test]
    async fn remote_actor_failures_are_typed() -> Res {
        let epmd = port_mapper().await;
        let a = node("a@localhost", &epmd).await;
        let c = node("c@localhost", &epmd).await;

        // A node that does not exist.
        let err = Counter::client(&a, ("counter", "ghost@localhost"))
            .with_timeout(T)
            .get()
            .await
            .err();
        assert!(
            matches!(&err, Some(CallError::Send(SendErrorKind::NoConnection { node })) if node.as_str() == "ghost@localhost"),
            "{err:?}"
        );

        // c runs the actor, spawned without `Counter::spawn` and with no registration call:
        // it knows `CounterMsg` from link time all the same.
        c.spawn(
            Some("counter"),
            CounterActor::default(),
            (Counter { n: 0 }, c.downgrade()),
        )
        .await?;
        let counter = Counter::client(&a, ("counter", "c@localhost")).with_timeout(T);
        counter.add(2).await?;
        assert_eq!(counter.get().await?, 2);

        // A generic instance registered on neither node: refused on c before anything is
        // sent, with the remedy.
        let err = Slot::<u64>::client(&c, ("slot", "a@localhost"))
            .with_timeout(T)
            .swap(1)
            .await
            .err();
        assert!(
            matches!(
                &err,
                Some(CallError::Send(SendErrorKind::NotRemotable { .. }))
            ),
            "{err:?}"
        );
        let text = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(text.contains("register_remote_message"), "{text}");

        a.shutdown().await;
        c.shutdown().await;
        Ok(())
    }

    #[tokio::test]
    async fn bad_payloads_are_decode_errors() -> Res {
        let sink = || ReplySink::new(|_| {});
        let decode_error = |r: Result<CounterMsg, codec::CodecError>| {
            matches!(
                r,
                Err(codec::CodecError::Decode {
                    expected: "CounterMsg",
                    ..
                })
            )
        };
        // Round trips.
        let add = CounterMsg::Add(3).to_wire()?;
        assert!(add.reply.is_none());
        assert!(matches!(
            CounterMsg::from_wire(&add.payload, None),
            Ok(CounterMsg::Add(3))
        ));
        let (port, _rx) = nodus::ractor::concurrency::oneshot::<u64>();
        let system = crate::system().await?;
        let get = CounterMsg::Get(port.into(), nodus::Caller::current(&system)).to_wire()?;
        assert!(get.reply.is_some());
        assert!(matches!(
            CounterMsg::from_wire(&get.payload, Some(sink())),
            Ok(CounterMsg::Get(..))
        ));
        // A cast with a reply port, a call without one.
        assert!(decode_error(CounterMsg::from_wire(
            &add.payload,
            Some(sink())
        )));
        assert!(decode_error(CounterMsg::from_wire(&get.payload, None)));
        // An index no handler has.
        let unknown = codec::encode(&(99u32, codec::encode(&())?))?;
        assert!(decode_error(CounterMsg::from_wire(&unknown, None)));
        // Arguments of the wrong type, and bytes that are no message at all.
        let wrong = codec::encode(&(0u32, codec::encode(&("three",))?))?;
        assert!(CounterMsg::from_wire(&wrong, None).is_err());
        assert!(CounterMsg::from_wire(&[0xff, 0xff, 0xff], None).is_err());
        Ok(())
    }

    /// A remote actor with a wire name of its own.
    #[derive(Clone, Debug, Default, Serialize, Deserialize)]
    struct Renamed;

    #[nodus::actor(remote, name = "macros.Gauge")]
    impl Renamed {
        pub fn read(&self) -> u8 {
            7
        }
    }

    #[test]
    fn the_wire_name_is_the_actors_name_or_the_one_given() {
        assert_eq!(CounterMsg::NAME, "Counter");
        assert_eq!(<SlotMsg<String> as RemoteMessage>::NAME, "Slot");
        assert_eq!(RenamedMsg::NAME, "macros.Gauge");
    }

    /// The same message, `Echo` on the wire, defined twice in two modules: what two programs
    /// with different module layouts see. A hand-written `RemoteMessage` is not registered at
    /// link time, so each node registers its own type, which lets the two live in one test.
    macro_rules! echo_module {
        ($module:ident, $state:ident) => {
            pub mod $module {
                use nodus::core::{
                    bridge_reply, codec, codec::CodecError, reply_port, RemoteMessage, ReplySink,
                    Wire,
                };

                #[derive(Clone, Debug)]
                pub struct $state;

                #[nodus::actor(vis = pub, msg = EchoMsg, client = EchoClient, actor = EchoActor)]
                impl $state {
                    pub fn double(&self, n: u64) -> u64 {
                        n * 2
                    }
                }

                impl RemoteMessage for EchoMsg {
                    const NAME: &'static str = "Echo";

                    fn to_wire(self) -> Result<Wire, CodecError> {
                        match self {
                            EchoMsg::Double(n, port, caller) => {
                                Ok(Wire::call(codec::encode(&(n, caller))?, bridge_reply(port)))
                            }
                            EchoMsg::__Info(_) => Err(CodecError::Decode {
                                expected: "Echo",
                                reason: "an info never crosses nodes".into(),
                            }),
                            // A message sent in a trace: the trace travels beside it.
                            EchoMsg::__Traced(_, inner) => inner.to_wire(),
                        }
                    }

                    fn from_wire(
                        payload: &[u8],
                        reply: Option<ReplySink>,
                    ) -> Result<Self, CodecError> {
                        match reply {
                            Some(sink) => {
                                let (n, caller) = codec::decode(payload)?;
                                Ok(EchoMsg::Double(n, reply_port(sink), caller))
                            }
                            None => Err(CodecError::Decode {
                                expected: "Echo",
                                reason: "a call without a reply port".into(),
                            }),
                        }
                    }
                }
            }
        };
    }

    echo_module!(sender, Sender);
    echo_module!(receiver, Receiver);

    #[tokio::test]
    async fn nodes_interoperate_when_the_type_lives_in_another_module() -> Res {
        let epmd = port_mapper().await;
        let a = node("a@localhost", &epmd).await;
        let b = node("b@localhost", &epmd).await;
        // Two Rust types, `..::sender::EchoMsg` on a and `..::receiver::EchoMsg` on b: only
        // their wire name is shared.
        assert_ne!(
            std::any::type_name::<sender::EchoMsg>(),
            std::any::type_name::<receiver::EchoMsg>()
        );
        a.register_remote_message::<sender::EchoMsg>();
        b.register_remote_message::<receiver::EchoMsg>();
        receiver::Receiver::spawn(&b, Some("echo"), receiver::Receiver).await?;

        let echo = sender::Sender::client(&a, ("echo", "b@localhost")).with_timeout(T);
        assert_eq!(echo.double(21).await?, 42);
        a.shutdown().await;
        b.shutdown().await;
        Ok(())
    }

    #[tokio::test]
    async fn an_unknown_type_is_named_once_with_the_remedy() -> Res {
        let epmd = port_mapper().await;
        let a = node("a@localhost", &epmd).await;
        let b = node("b@localhost", &epmd).await;
        // a knows `Echo`, b runs the actor but does not know the name.
        a.register_remote_message::<sender::EchoMsg>();
        receiver::Receiver::spawn(&b, Some("echo"), receiver::Receiver).await?;

        let echo = sender::Sender::client(&a, ("echo", "b@localhost")).with_timeout(T);
        let err = echo.double(1).await.err();
        assert!(
            matches!(&err, Some(CallError::Send(SendErrorKind::Refused { node, .. })) if node.as_str() == "b@localhost"),
            "{err:?}"
        );
        let text = err.map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(text.matches("\"Echo\"").count(), 1, "the name once: {text}");
        assert_eq!(text.matches("refused").count(), 1, "said once: {text}");
        assert_eq!(
            text.matches("b@localhost").count(),
            1,
            "the node once: {text}"
        );
        assert!(text.contains("is not registered there"), "{text}");
        assert!(
            text.contains("System::register_remote_message"),
            "the remedy: {text}"
        );

        // Doing what it says makes the same call go through.
        b.register_remote_message::<receiver::EchoMsg>();
        assert_eq!(echo.double(1).await?, 2);
        a.shutdown().await;
        b.shutdown().await;
        Ok(())
    }
}
