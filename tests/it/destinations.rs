//! `cast` and `call` to every destination form.

use std::time::Duration;

use nodus::core::{CallError, SendErrorKind};
use nodus::prelude::*;

use crate::registry::{echo, EchoMsg};

const T: Duration = Duration::from_secs(5);

async fn heard(system: &System, dest: impl Into<Destination>) -> Vec<String> {
    system.call(dest, EchoMsg::Get, T).await.unwrap()
}

#[tokio::test]
async fn name_name_on_this_node_and_pid_reach_the_same_actor() {
    let system = System::start(SystemConfig::named("alex@localhost").unwrap())
        .await
        .unwrap();
    let (actor, _) = echo(&system, "echo").await;
    let pid = system.pid_of(&actor.get_cell());
    system.cast("echo", EchoMsg::Say("by name".into())).unwrap();
    system
        .cast(
            ("echo", "alex@localhost"),
            EchoMsg::Say("by name on this node".into()),
        )
        .unwrap();
    system.cast(&pid, EchoMsg::Say("by pid".into())).unwrap();
    assert_eq!(
        heard(&system, pid).await,
        ["by name", "by name on this node", "by pid"]
    );
    system.shutdown().await;
}

#[tokio::test]
async fn failures_are_typed_and_hand_the_message_back() {
    let system = System::start(SystemConfig::named("alex@localhost").unwrap())
        .await
        .unwrap();
    let (actor, handle) = echo(&system, "echo").await;

    let err = system.cast("nobody", EchoMsg::Say("x".into())).unwrap_err();
    assert!(matches!(err.kind, SendErrorKind::NoProc { .. }));
    assert!(
        matches!(err.into_inner(), Some(EchoMsg::Say(s)) if s == "x"),
        "the message comes back"
    );

    let err = system
        .cast(("echo", "kate@localhost"), EchoMsg::Say("x".into()))
        .unwrap_err();
    assert_eq!(
        err.kind,
        SendErrorKind::NoConnection {
            node: "kate@localhost".parse().unwrap()
        }
    );

    let err = system.cast("echo", 5u32).unwrap_err();
    assert!(matches!(err.kind, SendErrorKind::WrongType { .. }), "{err}");

    let err = system
        .call(("echo", "kate@localhost"), EchoMsg::Get, T)
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        CallError::Send(SendErrorKind::NoConnection { .. })
    ));

    // A pid of a stopped actor, and one from an earlier incarnation of this node.
    let pid = system.pid_of(&actor.get_cell());
    let stale = Pid::new(pid.node().clone(), pid.creation() ^ 1, pid.id());
    assert!(matches!(
        system.call(stale, EchoMsg::Get, T).await,
        Err(CallError::Send(SendErrorKind::NoProc { .. }))
    ));
    actor.stop(None);
    handle.await.unwrap();
    assert!(matches!(
        system.call(pid, EchoMsg::Get, T).await,
        Err(CallError::Send(SendErrorKind::NoProc { .. }))
    ));
    system.shutdown().await;
}

struct Silent;
impl Actor for Silent {
    type Msg = RpcReplyPort<()>;
    type State = Vec<RpcReplyPort<()>>;
    type Arguments = ();
    async fn pre_start(
        &self,
        _: ActorRef<Self::Msg>,
        _: (),
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(Vec::new())
    }
    async fn handle(
        &self,
        _: ActorRef<Self::Msg>,
        port: Self::Msg,
        kept: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        kept.push(port); // never replies
        Ok(())
    }
}

#[tokio::test]
async fn a_call_without_a_reply_times_out() {
    let system = System::start(SystemConfig::default()).await.unwrap();
    system.spawn(Some("silent"), Silent, ()).await.unwrap();
    let err = system
        .call(
            "silent",
            |port: RpcReplyPort<()>| port,
            Duration::from_millis(20),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, CallError::Timeout { timeout, .. } if timeout == Duration::from_millis(20)),
        "{err}"
    );
    system.shutdown().await;
}
