//! The nodus demo: a local cluster on loopback, a supervision tree that survives a crash,
//! tasks run by name, and a node going down.
//!
//! ```sh
//! cargo run --example demo
//! ```
//!
//! Everything runs in this one process on 127.0.0.1, with its own port mapper on a port the
//! OS picks: nothing else to install or start.

use std::time::Duration;

use nodus::prelude::*;
use nodus::remote::{port_mapper::PortMapperServer, Cookie, Node, NodeConfig};

/// A counter that can be told to crash.
#[derive(Clone)]
struct Counter;

enum CounterMsg {
    Add(u64),
    Get(RpcReplyPort<u64>),
    Crash,
}

impl Actor for Counter {
    type Msg = CounterMsg;
    type State = u64;
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<CounterMsg>, _: ()) -> Result<u64, ActorProcessingErr> {
        Ok(0)
    }

    async fn handle(
        &self,
        _: ActorRef<CounterMsg>,
        msg: CounterMsg,
        n: &mut u64,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            CounterMsg::Add(k) => *n += k,
            CounterMsg::Get(reply) => {
                let _ = reply.send(*n);
            }
            CounterMsg::Crash => return Err("asked to crash".into()),
        }
        Ok(())
    }
}

const T: Duration = Duration::from_secs(5);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // nodus reports a task's panic itself: to the caller as TaskError::Panicked and in the
    // node's log. The default hook would also print a backtrace for the deliberate panic.
    std::panic::set_hook(Box::new(|_| {}));
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_target(false)
        .init();
    // 0. Three nodes on loopback. alex and moebi each ping kate; connect_all meshes them.
    let epmd = PortMapperServer::bind("127.0.0.1:0".parse()?)
        .await?
        .spawn();
    let start = |name: &'static str| {
        let config = NodeConfig::sname(name)
            .cookie(Cookie::new("demo").expect("a non-empty cookie"))
            .port_mapper(epmd.local_addr());
        Node::start(config)
    };
    let (alex, kate, moebi) = (
        start("alex@localhost").await?,
        start("kate@localhost").await?,
        start("moebi@localhost").await?,
    );
    println!("alex pings kate: {:?}", alex.ping("kate@localhost").await);
    println!("moebi pings kate: {:?}", moebi.ping("kate@localhost").await);
    let mut events = alex.events();
    while alex.list().len() < 2 {
        // alex learns of moebi through kate; wait for that connection to come up.
        events.recv().await?;
    }
    println!(
        "alex's Node.list: {:?} (a full mesh from two pings)",
        alex.list()
    );
    let system: &System = &alex;

    // 1. A supervisor with a named counter. The counter crashes; the supervisor restarts it
    //    and the name finds the new one.
    let app = SupervisorSpec::new(Strategy::OneForOne)
        .child(ChildSpec::new("counter", Counter, ()).name("counter"))
        .child(TaskSupervisor::child_spec(TaskSupervisorConfig::new(
            "Demo.TaskSupervisor",
        )));
    let sup = Supervisor::start(system, Some("Demo.Supervisor"), app).await?;
    system.cast("counter", CounterMsg::Add(40))?;
    system.cast("counter", CounterMsg::Add(2))?;
    let n = system.call("counter", CounterMsg::Get, T).await?;
    let before = system.pid_of(
        &system
            .registry()
            .whereis_cell("counter")
            .ok_or("no counter")?,
    );
    println!("counter {before} holds {n}");

    system.cast("counter", CounterMsg::Crash)?;
    let after = loop {
        // The restart is asynchronous: ask until the name points at a new actor.
        if let Some(cell) = system.registry().whereis_cell("counter") {
            let pid = system.pid_of(&cell);
            if pid != before {
                break pid;
            }
        }
        tokio::task::yield_now().await;
    };
    let n = system.call("counter", CounterMsg::Get, T).await?;
    println!("counter crashed; supervisor restarted it as {after}, which holds {n}");

    // 2. Functions by name, run under a task supervisor: here, and on another node.
    system
        .functions()
        .register("Demo", "shout", |(text,): (String,)| async move {
            text.to_uppercase()
        });
    system
        .functions()
        .register("Demo", "fail", |(): ()| async move {
            if true {
                panic!("this task fails on purpose");
            }
        });
    let sup_name = "Demo.TaskSupervisor";
    let reply: String =
        TaskSupervisor::async_on(system, sup_name, "Demo", "shout", ("hello from a task",))
            .await?
            .await?;
    println!("Demo.shout(\"hello from a task\") = {reply:?}");

    let failed = TaskSupervisor::async_nolink_on::<_, ()>(system, sup_name, "Demo", "fail", ())
        .await?
        .await;
    println!("Demo.fail() -> {}", describe(failed));
    let undefined =
        TaskSupervisor::async_on::<_, ()>(system, sup_name, "Demo", "missing", ()).await;
    println!("Demo.missing() -> {}", describe(undefined.map(|_| ())));

    // The headline: the same call with (supervisor, node) runs on kate, under kate's own
    // supervisor, and the reply comes back here.
    TaskSupervisor::start(&kate, TaskSupervisorConfig::new(sup_name)).await?;
    let kate_name = kate.name().to_string();
    kate.functions()
        .register("Demo", "shout", move |(text,): (String,)| {
            let me = kate_name.clone();
            async move { format!("{} (shouted on {me})", text.to_uppercase()) }
        });
    let remote: String = TaskSupervisor::async_on(
        system,
        (sup_name, "kate@localhost"),
        "Demo",
        "shout",
        ("hi kate",),
    )
    .await?
    .await?;
    println!("on kate@localhost: Demo.shout(\"hi kate\") = {remote:?}");
    let ghost = TaskSupervisor::async_on::<_, String>(
        system,
        (sup_name, "ghost@localhost"),
        "Demo",
        "shout",
        ("hi",),
    )
    .await;
    println!("on ghost@localhost -> {}", describe(ghost.map(|_| ())));

    // 3. A node goes down: everyone monitoring it hears once, with the reason.
    let watch = kate.monitor_node(moebi.name()).await;
    moebi.shutdown().await;
    let down = tokio::time::timeout(T, watch).await?;
    println!("kate saw {} go down ({})", down.node, down.reason);

    // 4. Ordered shutdown: children stop in reverse start order.
    sup.stop_and_wait(None, Some(T)).await?;
    alex.shutdown().await;
    kate.shutdown().await;
    println!("shut down cleanly");
    Ok(())
}

fn describe(result: Result<(), TaskError>) -> String {
    match result {
        Ok(()) => "ok".into(),
        Err(e) => format!("error: {e}"),
    }
}
