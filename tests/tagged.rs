//! Tag-gated tests (`#[nodus::test]`), run by `nodus::testing::main` (`harness = false`).
//!
//! `needs_nobody` needs a node that never runs, so `cargo test --features testing --test
//! tagged` reports it as ignored with its reason. The real seed-004 test against moebi is in
//! `tests/distributed.rs`.

use nodus::{
    testing::{Decision, Filter, NoNodes, Runner},
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

/// A test that needs a node that never runs: reported as ignored, with its reason. Forced
/// (`--include-ignored`), it checks that the node is indeed absent.
#[nodus::test(tags = ["distributed"], needs = ["nobody@localhost"])]
async fn needs_nobody() {
    let epmd = nodus::remote::port_mapper::PortMapperServer::bind(
        "127.0.0.1:0".parse().expect("an address"),
    )
    .await
    .expect("a port mapper")
    .spawn();
    let config =
        nodus::remote::NodeConfig::sname("tagged@localhost").port_mapper(epmd.local_addr());
    let config = config.cookie(nodus::remote::Cookie::new("tagged").expect("a cookie"));
    let node = nodus::remote::Node::start(config).await.expect("a node");
    assert_eq!(
        node.ping("nobody@localhost").await,
        nodus::remote::Ping::Pang
    );
    node.shutdown().await;
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
    let none = || Runner::from_env().filter(Filter::default()).probe(NoNodes);
    assert_eq!(
        plan(none()),
        [
            ("needs_nobody", false),
            ("slow_only_when_included", false),
            ("untagged_runs", true)
        ]
    );
    let moebi_up = |node: &str| node == "nobody@localhost";
    assert_eq!(
        plan(none().probe(moebi_up)),
        [
            ("needs_nobody", true),
            ("slow_only_when_included", false),
            ("untagged_runs", true)
        ]
    );
    assert_eq!(
        plan(none().filter(Filter::default().include("slow"))),
        [
            ("needs_nobody", false),
            ("slow_only_when_included", true),
            ("untagged_runs", true)
        ]
    );
    assert_eq!(
        plan(none().filter(Filter::default().only("distributed"))),
        [
            ("needs_nobody", true),
            ("slow_only_when_included", false),
            ("untagged_runs", false)
        ]
    );
    let (case, decision) = none().plan().remove(0);
    assert_eq!(case.tags(), ["distributed"]);
    assert_eq!(case.needs(), ["nobody@localhost"]);
    assert!(
        matches!(&decision, Decision::Exclude(why) if why.contains("needs nobody@localhost") && why.contains("NODUS_TEST_INCLUDE=distributed")),
        "{decision:?}"
    );
}

fn main() {
    check_plan();
    nodus::testing::main()
}
