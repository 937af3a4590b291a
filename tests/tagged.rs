//! Tag-gated tests (`#[nodus::test]`), run by `nodus::testing::main` (`harness = false`).
//!
//! Without moebi@localhost, `cargo test --test tagged` reports `needs_moebi` as ignored with
//! its reason; `NODUS_TEST_INCLUDE=distributed` runs it (and it fails with NoConnection until
//! the node layer lands, as the ExUnit test fails without its peer).

use nodus::{
    testing::{Decision, Filter, Runner},
    System, SystemConfig, TaskError, TaskSupervisor, TaskSupervisorConfig,
};

struct Chat;

#[nodus::remote_module("Chat")]
impl Chat {
    /// Answers a message.
    pub async fn receive_message(message: String) -> String {
        format!("got {message}")
    }
}

/// Untagged: always runs, on its own tokio runtime.
#[nodus::test]
async fn untagged_runs() -> Result<(), TaskError> {
    let system = System::start(SystemConfig::default())
        .await
        .map_err(|e| TaskError::Exited {
            reason: e.to_string(),
        })?;
    Chat::register(&system);
    TaskSupervisor::start(&system, TaskSupervisorConfig::new("Chat.TaskSupervisor"))
        .await
        .map_err(|e| TaskError::Exited {
            reason: e.to_string(),
        })?;
    let reply = Chat::on(&system, "Chat.TaskSupervisor")
        .receive_message("hi".into())
        .await?;
    assert_eq!(reply, "got hi");
    system.shutdown().await;
    Ok(())
}

/// The Moebi test of the Elixir guide: needs the peer node.
#[nodus::test(tags = ["distributed"], needs = ["moebi@localhost"])]
async fn needs_moebi() {
    let system = System::start(SystemConfig::named("alex@localhost").expect("a valid name"))
        .await
        .expect("the system starts");
    let reply = Chat::on(&system, ("Chat.TaskSupervisor", "moebi@localhost"))
        .receive_message("hi".into())
        .await;
    assert_eq!(reply.expect("moebi@localhost must be up"), "got hi");
}

/// Tagged, needs no node: runs only when its tag is included.
#[nodus::test(tags = ["slow"])]
async fn slow_only_when_included() {}

/// The runner's plan for the tests above, under filters and a fake node probe.
fn check_plan() {
    let plan = |runner: Runner| -> Vec<(&'static str, bool)> {
        runner
            .plan()
            .into_iter()
            .map(|(case, d)| (case.name(), d == Decision::Run))
            .collect()
    };
    let none = || Runner::from_env().filter(Filter::default());
    assert_eq!(
        plan(none()),
        [
            ("needs_moebi", false),
            ("slow_only_when_included", false),
            ("untagged_runs", true)
        ]
    );
    let moebi_up = |node: &str| node == "moebi@localhost";
    assert_eq!(
        plan(none().probe(moebi_up)),
        [
            ("needs_moebi", true),
            ("slow_only_when_included", false),
            ("untagged_runs", true)
        ]
    );
    assert_eq!(
        plan(none().filter(Filter::default().include("slow"))),
        [
            ("needs_moebi", false),
            ("slow_only_when_included", true),
            ("untagged_runs", true)
        ]
    );
    assert_eq!(
        plan(none().filter(Filter::default().only("distributed"))),
        [
            ("needs_moebi", true),
            ("slow_only_when_included", false),
            ("untagged_runs", false)
        ]
    );
    let (case, decision) = none().plan().remove(0);
    assert_eq!(case.tags(), ["distributed"]);
    assert_eq!(case.needs(), ["moebi@localhost"]);
    assert!(
        matches!(&decision, Decision::Exclude(why) if why.contains("needs moebi@localhost") && why.contains("NODUS_TEST_INCLUDE=distributed")),
        "{decision:?}"
    );
}

fn main() {
    check_plan();
    nodus::testing::main()
}
