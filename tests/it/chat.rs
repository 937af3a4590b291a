//! Seed 004: the Chat app and moebi.

use std::time::Duration;

use nodus::remote::{port_mapper::PortMapperServer, Cookie, Node, NodeConfig};

#[path = "../../examples/chat/app.rs"]
mod app;

const DEADLINE: Duration = Duration::from_secs(10);

async fn recv(inbox: &mut app::Inbox) -> String {
    tokio::time::timeout(DEADLINE, inbox.recv())
        .await
        .expect("a message in time")
        .expect("inbox open")
}

#[tokio::test]
async fn moebi_answers_chicken_to_whoever_writes_to_it() {
    let epmd = PortMapperServer::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
        .spawn();
    let start = |name: &'static str| {
        Node::start(
            NodeConfig::sname(name)
                .cookie(Cookie::new("chat").unwrap())
                .port_mapper(epmd.local_addr()),
        )
    };
    let alex = start("alex@localhost").await.unwrap();
    let moebi = start(app::MOEBI).await.unwrap();
    let kate = start("kate@localhost").await.unwrap();
    let (alex_chat, mut alex_inbox) = app::Chat::start(&alex, app::remote_supervisor())
        .await
        .unwrap();
    let (_moebi_chat, mut moebi_inbox) = app::Chat::start(&moebi, app::remote_supervisor())
        .await
        .unwrap();
    let (_kate_chat, mut kate_inbox) = app::Chat::start(&kate, app::remote_supervisor())
        .await
        .unwrap();
    let capture = |node: &Node| {
        let (output, captured) = nodus::io::Output::capture();
        node.set_output(output);
        captured
    };
    let (alex_out, moebi_out, kate_out) = (capture(&alex), capture(&moebi), capture(&kate));

    // send_message(:moebi@localhost, "hi") == :ok; moebi prints "hi", alex prints "chicken?".
    assert_eq!(alex_chat.send_message(app::MOEBI, "hi").await, Ok(()));
    assert_eq!(recv(&mut moebi_inbox).await, "hi");
    assert_eq!(recv(&mut alex_inbox).await, "chicken?");

    // An ordinary node just prints what it receives.
    assert_eq!(
        alex_chat.send_message("kate@localhost", "hello kate").await,
        Ok(())
    );
    assert_eq!(recv(&mut kate_inbox).await, "hello kate");
    // Each message was printed by the node that received it (its group leader).
    assert_eq!(moebi_out.lines(), ["hi"]);
    assert_eq!(alex_out.lines(), ["chicken?"]);
    assert_eq!(kate_out.lines(), ["hello kate"]);

    // A node that is not there: the call fails cleanly, as `no connection to ghost@localhost`.
    let err = alex_chat
        .send_message("ghost@localhost", "anyone?")
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string().split(';').next(),
        Some("no connection to ghost@localhost")
    );
    for node in [alex, moebi, kate] {
        node.shutdown().await;
    }
}

#[tokio::test]
async fn with_the_test_setting_messages_run_on_the_local_supervisor() {
    let system = nodus::System::start(nodus::SystemConfig::named("alex@localhost").unwrap())
        .await
        .unwrap();
    let (chat, mut inbox) = app::Chat::start(&system, app::local_supervisor())
        .await
        .unwrap();
    assert_eq!(chat.send_message("kate@localhost", "hi").await, Ok(()));
    assert_eq!(
        recv(&mut inbox).await,
        "hi",
        "ran here, without any node up"
    );
    system.shutdown().await;
}
