//! The node-scoped registry, through the facade.

use std::time::Duration;

use nodus::prelude::*;
use nodus::{core::RegistryError, ractor::concurrency::JoinHandle, SpawnError};

pub(crate) struct Echo;

pub(crate) enum EchoMsg {
    Say(String),
    Get(RpcReplyPort<Vec<String>>),
}

impl Actor for Echo {
    type Msg = EchoMsg;
    type State = Vec<String>;
    type Arguments = ();

    async fn pre_start(
        &self,
        _: ActorRef<EchoMsg>,
        _: (),
    ) -> Result<Vec<String>, ActorProcessingErr> {
        Ok(Vec::new())
    }

    async fn handle(
        &self,
        _: ActorRef<EchoMsg>,
        msg: EchoMsg,
        heard: &mut Vec<String>,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            EchoMsg::Say(s) => heard.push(s),
            EchoMsg::Get(reply) => {
                let _ = reply.send(heard.clone());
            }
        }
        Ok(())
    }
}

pub(crate) async fn echo(system: &System, name: &str) -> (ActorRef<EchoMsg>, JoinHandle<()>) {
    system
        .spawn(Some(name), Echo, ())
        .await
        .expect("spawn echo")
}

#[tokio::test]
async fn two_systems_register_the_same_name_and_each_resolves_its_own() {
    let a = System::start(SystemConfig::named("a@localhost").unwrap())
        .await
        .unwrap();
    let b = System::start(SystemConfig::named("b@localhost").unwrap())
        .await
        .unwrap();
    let (ea, _) = echo(&a, "Chat.TaskSupervisor").await;
    let (eb, _) = echo(&b, "Chat.TaskSupervisor").await;
    assert_eq!(
        a.whereis::<EchoMsg>("Chat.TaskSupervisor")
            .map(|r| r.get_id()),
        Some(ea.get_id())
    );
    assert_eq!(
        b.whereis::<EchoMsg>("Chat.TaskSupervisor")
            .map(|r| r.get_id()),
        Some(eb.get_id())
    );
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_duplicate_name_is_a_typed_error_and_the_name_is_freed_when_the_actor_stops() {
    let system = System::start(SystemConfig::default()).await.unwrap();
    let (first, handle) = echo(&system, "svc").await;
    let err = system.spawn(Some("svc"), Echo, ()).await.unwrap_err();
    assert!(
        matches!(err, SpawnError::Registry(RegistryError::AlreadyRegistered { ref name }) if name == "svc"),
        "{err}"
    );
    assert!(
        err.to_string().contains("pick another name"),
        "the message says what to do: {err}"
    );
    assert_eq!(system.registry().registered(), ["svc"]);

    first.stop(None);
    tokio::time::timeout(Duration::from_secs(5), handle)
        .await
        .unwrap()
        .unwrap();
    assert!(
        system.whereis::<EchoMsg>("svc").is_none(),
        "freed when the actor stopped"
    );
    assert!(system.registry().registered().is_empty());
    let (second, _) = echo(&system, "svc").await;
    assert_eq!(
        system.whereis::<EchoMsg>("svc").map(|r| r.get_id()),
        Some(second.get_id())
    );
    system.shutdown().await;
}

#[tokio::test]
async fn whereis_is_typed() {
    let system = System::start(SystemConfig::default()).await.unwrap();
    echo(&system, "svc").await;
    assert!(system.whereis::<EchoMsg>("svc").is_some());
    assert!(
        system.whereis::<u32>("svc").is_none(),
        "a wrong guess is None, not a panic at delivery"
    );
    system.shutdown().await;
}
