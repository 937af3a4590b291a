//! The Chat app of Elixir's "Distributed tasks" tutorial (seed 004), on nodus.
//!
//! Every node runs a `Chat.TaskSupervisor` and registers the `Chat` functions. Sending a
//! message runs `Chat.receive_message` on the recipient, under the recipient's supervisor,
//! so it prints there (`nodus::puts!` writes to the task's group leader, the recipient's
//! node output). Messages to moebi run `Chat.receive_message_for_moebi` instead, which
//! prints the message on moebi and answers `chicken?` back to the sender.
//!
//! Shared by `examples/chat/main.rs` and the tests (`tests/it/chat.rs`).

use std::sync::Arc;

use nodus::{
    core::CallContext, Destination, NodeName, System, TaskError, TaskSupervisor,
    TaskSupervisorConfig,
};
use tokio::sync::mpsc;

/// The task supervisor every chat node runs.
pub const SUPERVISOR: &str = "Chat.TaskSupervisor";

/// The node that answers every message with `chicken?`.
pub const MOEBI: &str = "moebi@localhost";

/// Which supervisor runs a message for a recipient: `{Chat.TaskSupervisor, recipient}`
/// normally, the local one in tests (the tutorial's `:remote_supervisor` setting).
pub type RemoteSupervisor = Arc<dyn Fn(&str) -> Destination + Send + Sync>;

/// The tutorial's dev setting: the recipient's own supervisor.
pub fn remote_supervisor() -> RemoteSupervisor {
    Arc::new(|recipient: &str| Destination::from((SUPERVISOR, recipient)))
}

/// The tutorial's test setting: this node's supervisor, whatever the recipient.
#[allow(dead_code)] // used by tests/it/chat.rs, which includes this file
pub fn local_supervisor() -> RemoteSupervisor {
    Arc::new(|_: &str| Destination::from(SUPERVISOR))
}

/// The chat app on one node.
#[derive(Clone)]
pub struct Chat {
    system: System,
    route: RemoteSupervisor,
}

/// What a node received, in order (besides printing it).
pub type Inbox = mpsc::UnboundedReceiver<String>;

impl Chat {
    /// Starts `Chat.TaskSupervisor` on `system` and registers the `Chat` functions. Received
    /// messages are printed and also sent to the returned inbox.
    pub async fn start(
        system: &System,
        route: RemoteSupervisor,
    ) -> Result<(Chat, Inbox), Box<dyn std::error::Error>> {
        TaskSupervisor::start(system, TaskSupervisorConfig::new(SUPERVISOR)).await?;
        let (tx, inbox) = mpsc::unbounded_channel();
        let chat = Chat {
            system: system.clone(),
            route,
        };

        let received = tx.clone();
        system
            .functions()
            .register("Chat", "receive_message", move |(message,): (String,)| {
                let received = received.clone();
                async move { receive_message(&received, message) }
            });

        let (received, route) = (tx, chat.route.clone());
        system.functions().register_with_context(
            "Chat",
            "receive_message_for_moebi",
            move |ctx: CallContext, (message, from): (String, NodeName)| {
                let (received, route) = (received.clone(), route.clone());
                async move {
                    receive_message(&received, message);
                    let Some(system) = ctx.system() else { return };
                    let moebi = Chat { system, route };
                    if let Err(e) = moebi.send_message(from.as_str(), "chicken?").await {
                        eprintln!("moebi could not answer {from}: {e}");
                    }
                }
            },
        );
        Ok((chat, inbox))
    }

    /// Sends `message` to `recipient` and waits until it has been received there, as
    /// `Chat.send_message/2`.
    pub async fn send_message(&self, recipient: &str, message: &str) -> Result<(), TaskError> {
        if recipient == MOEBI {
            let args = (message.to_string(), self.system.node().clone());
            self.spawn_task("receive_message_for_moebi", recipient, args)
                .await
        } else {
            self.spawn_task("receive_message", recipient, (message.to_string(),))
                .await
        }
    }

    async fn spawn_task<A: serde::Serialize + Send + 'static>(
        &self,
        function: &str,
        recipient: &str,
        args: A,
    ) -> Result<(), TaskError> {
        let supervisor = (self.route)(recipient);
        TaskSupervisor::async_on(&self.system, supervisor, "Chat", function, args)
            .await?
            .await
    }
}

fn receive_message(received: &mpsc::UnboundedSender<String>, message: String) {
    // To the task's group leader: the output of the node whose supervisor runs it, the
    // recipient's (stdout unless `System::set_output` changed it).
    nodus::puts!("{message}");
    let _ = received.send(message);
}
