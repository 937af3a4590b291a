//! The `nodus` command against nodes started in this process, each test on its own port
//! mapper (`--port-mapper`): the built binary runs as a child process, and its output and
//! exit status are checked.

use std::{net::SocketAddr, process::Output, time::Duration};

use nodus::{
    prelude::*,
    remote::{
        port_mapper::{PortMapperServer, PortMapperServerHandle},
        Cookie, Node, NodeConfig, Ping,
    },
};
use tokio::sync::mpsc;

const COOKIE: &str = "cli-test-cookie";
/// The bound on one run of the command (its own steps are bounded by `--timeout`).
const RUN_LIMIT: Duration = Duration::from_secs(60);

type Res = Result<(), Box<dyn std::error::Error>>;

async fn port_mapper() -> PortMapperServerHandle {
    PortMapperServer::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
        .spawn()
}

async fn node(epmd: &PortMapperServerHandle, name: &str) -> Node {
    let config = NodeConfig::sname(name)
        .cookie(Cookie::new(COOKIE).unwrap())
        .port_mapper(epmd.local_addr());
    Node::start(config).await.unwrap()
}

/// What one run of the command printed and how it exited.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `nodus --port-mapper EPMD --timeout 5 ARGS...` with the cookie only from `env`
/// (`NODUS_COOKIE`) or the arguments, and HOME pointing nowhere useful.
async fn nodus_env(epmd: SocketAddr, env: &[(&str, &str)], args: &[&str]) -> Run {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_nodus"));
    cmd.arg("--port-mapper")
        .arg(epmd.to_string())
        .args(["--timeout", "5"])
        .args(args)
        .env_remove("NODUS_COOKIE")
        .env_remove("ERL_EPMD_PORT")
        .env_remove("RUST_LOG")
        .env("HOME", "/nonexistent-home-of-the-nodus-cli-test")
        .envs(env.iter().copied())
        .kill_on_drop(true);
    let Output {
        status,
        stdout,
        stderr,
    } = tokio::time::timeout(RUN_LIMIT, cmd.output())
        .await
        .expect("the command finishes within its bound")
        .expect("the command runs");
    Run {
        code: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// Runs `nodus --cookie COOKIE ARGS...` on `epmd`.
async fn nodus(epmd: SocketAddr, args: &[&str]) -> Run {
    let mut all = vec!["--cookie", COOKIE];
    all.extend_from_slice(args);
    nodus_env(epmd, &[], &all).await
}

fn no_cli_node(node: &Node) {
    let list = node.list();
    assert!(
        list.iter().all(|n| !n.as_str().starts_with("nodus_cli_")),
        "{}'s Node.list has the command's node: {list:?}",
        node.name()
    );
}

#[tokio::test]
async fn names_lists_the_nodes_as_epmd_does() -> Res {
    let epmd = port_mapper().await;
    let a = node(&epmd, "a@localhost").await;
    let b = node(&epmd, "b@localhost").await;
    let addr = epmd.local_addr();

    for args in [&["names"][..], &["names", "localhost"]] {
        let run = nodus(addr, args).await;
        assert_eq!(run.code, Some(0), "{run:?}");
        let mut lines: Vec<&str> = run.stdout.lines().collect();
        assert_eq!(
            lines.first().copied(),
            Some(format!("epmd: up and running on port {} with data:", addr.port()).as_str()),
            "{run:?}"
        );
        lines.remove(0);
        lines.sort();
        let expect = [
            format!("name a at port {}", a.listen_addr().port()),
            format!("name b at port {}", b.listen_addr().port()),
        ];
        assert_eq!(lines, expect, "{run:?}");
    }

    // No port mapper there: a port just freed.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let run = nodus(dead, &["names"]).await;
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr.contains("no port mapper answers") && run.stdout.is_empty(),
        "{run:?}"
    );
    a.shutdown().await;
    b.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn ping_answers_pong_or_pang() -> Res {
    let epmd = port_mapper().await;
    let a = node(&epmd, "a@localhost").await;
    let addr = epmd.local_addr();

    let run = nodus(addr, &["ping", "a@localhost"]).await;
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (Some(0), "pong\n"),
        "{run:?}"
    );

    let run = nodus(addr, &["ping", "nobody@localhost"]).await;
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (Some(1), "pang\n"),
        "{run:?}"
    );
    assert!(
        run.stderr.contains("no node named nobody@localhost"),
        "says why: {run:?}"
    );
    no_cli_node(&a);
    a.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_wrong_cookie_exits_non_zero_saying_so() -> Res {
    let epmd = port_mapper().await;
    let a = node(&epmd, "a@localhost").await;
    let addr = epmd.local_addr();

    let run = nodus_env(addr, &[], &["--cookie", "wrong", "ping", "a@localhost"]).await;
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (Some(1), "pang\n"),
        "{run:?}"
    );
    assert!(
        run.stderr.contains("rejected our cookie") && run.stderr.contains("--cookie"),
        "{run:?}"
    );

    let run = nodus_env(addr, &[("NODUS_COOKIE", "wrong")], &["info", "a@localhost"]).await;
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stdout.is_empty()
            && run.stderr.contains("rejected our cookie")
            && run.stderr.contains("NODUS_COOKIE"),
        "{run:?}"
    );

    // The right cookie from the environment works.
    let run = nodus_env(addr, &[("NODUS_COOKIE", COOKIE)], &["ping", "a@localhost"]).await;
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (Some(0), "pong\n"),
        "{run:?}"
    );
    a.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn nodes_lists_peers_and_the_command_changes_no_mesh() -> Res {
    let epmd = port_mapper().await;
    let a = node(&epmd, "a@localhost").await;
    let b = node(&epmd, "b@localhost").await;
    let c = node(&epmd, "c@localhost").await;
    assert_eq!(a.ping("b@localhost").await, Ping::Pong);
    let addr = epmd.local_addr();

    let run = nodus(addr, &["nodes", "a@localhost"]).await;
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (Some(0), "b@localhost\n"),
        "{run:?}"
    );
    let run = nodus(addr, &["nodes", "--json", "b@localhost"]).await;
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (Some(0), "[\"a@localhost\"]\n"),
        "{run:?}"
    );
    // c knows no one, and the command talking to a and then c did not introduce them.
    let run = nodus(addr, &["nodes", "c@localhost"]).await;
    assert_eq!((run.code, run.stdout.as_str()), (Some(0), ""), "{run:?}");

    assert_eq!(a.list(), [b.name().clone()]);
    assert_eq!(b.list(), [a.name().clone()]);
    assert!(c.list().is_empty(), "{:?}", c.list());
    for n in [&a, &b, &c] {
        no_cli_node(n);
    }
    for n in [a, b, c] {
        n.shutdown().await;
    }
    Ok(())
}

/// A worker that does nothing.
#[derive(Clone)]
struct Idle;

impl Actor for Idle {
    type Msg = ();
    type State = ();
    type Arguments = ();
    async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
}

#[tokio::test]
async fn info_shows_names_the_tree_and_task_supervisors() -> Res {
    let epmd = port_mapper().await;
    let a = node(&epmd, "a@localhost").await;
    let b = node(&epmd, "b@localhost").await;
    assert_eq!(a.ping("b@localhost").await, Ping::Pong);
    let chat = TaskSupervisor::start(&a, TaskSupervisorConfig::new("Chat.TaskSupervisor")).await?;
    let task = chat
        .start_child_fn(std::future::pending, Restart::Temporary)
        .await?;
    let tree = SupervisorSpec::new(Strategy::OneForOne)
        .child(ChildSpec::new("worker", Idle, ()).name("greeter"));
    a.start_child(ChildSpec::supervisor("Greeter.Supervisor", tree))
        .await?;
    let addr = epmd.local_addr();

    let run = nodus(addr, &["info", "a@localhost"]).await;
    assert_eq!(run.code, Some(0), "{run:?}");
    let out = &run.stdout;
    let line = |key: &str| {
        out.lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("no {key} line in:\n{out}"))
            .to_string()
    };
    assert_eq!(line("node "), "node        a@localhost");
    assert!(line("version ").starts_with("version     nodus "), "{out}");
    assert_eq!(
        line("nodes "),
        "nodes       b@localhost",
        "the command is not listed"
    );
    assert!(
        line("hidden ").contains("nodus_cli_"),
        "it joined hidden:\n{out}"
    );
    assert_eq!(
        line("registered "),
        "registered  Chat.TaskSupervisor, greeter, nodus.Rpc"
    );
    // The tree: the root, its children indented, the nested supervisor's worker deeper.
    assert!(
        out.contains("\n  root  <")
            && out.contains("\n    Chat.TaskSupervisor  <")
            && out.contains("\n    Greeter.Supervisor  <")
            && out.contains("\n      worker (greeter)  <")
            && out.contains("\n    nodus.Rpc  <"),
        "{out}"
    );
    let chat_line = line("  Chat.TaskSupervisor  <");
    assert!(chat_line.ends_with(&format!("1 task: {task}")), "{out}");
    // nodus.Rpc runs the info task itself.
    assert!(line("  nodus.Rpc  <").contains("1 task: "), "{out}");

    let run = nodus(addr, &["info", "--json", "a@localhost"]).await;
    assert_eq!(run.code, Some(0), "{run:?}");
    let json: serde_json::Value = serde_json::from_str(&run.stdout)?;
    assert_eq!(json["node"], "a@localhost", "{json}");
    assert_eq!(json["task_supervisors"][0]["name"], "Chat.TaskSupervisor");
    assert_eq!(json["task_supervisors"][0]["children"][0], task);
    assert!(json["uptime"]["secs"].is_u64(), "{json}");

    no_cli_node(&a);
    no_cli_node(&b);
    a.shutdown().await;
    b.shutdown().await;
    Ok(())
}

/// A result with fields, as a JSON object.
#[derive(serde::Serialize)]
struct Sum {
    terms: Vec<i64>,
    total: i64,
}

#[tokio::test]
async fn rpc_runs_a_function_with_json_arguments() -> Res {
    let epmd = port_mapper().await;
    let a = node(&epmd, "moebi@localhost").await;
    let (tx, mut received) = mpsc::unbounded_channel();
    a.functions()
        .register("Chat", "receive_message", move |(message,): (String,)| {
            let _ = tx.send(message.clone());
            async move { format!("got {message}") }
        });
    a.functions()
        .register("Math", "sum", |(terms,): (Vec<i64>,)| async move {
            Sum {
                total: terms.iter().sum(),
                terms,
            }
        });
    a.functions()
        .register("Math", "zero", |(): ()| async move { 0 });
    let addr = epmd.local_addr();

    let run = nodus(
        addr,
        &[
            "rpc",
            "moebi@localhost",
            "Chat",
            "receive_message",
            r#"["hi"]"#,
        ],
    )
    .await;
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (Some(0), "\"got hi\"\n"),
        "{run:?}"
    );
    assert_eq!(
        received.try_recv().ok().as_deref(),
        Some("hi"),
        "it ran on moebi"
    );

    let run = nodus(
        addr,
        &["rpc", "moebi@localhost", "Math", "sum", "[[1, 2, 3]]"],
    )
    .await;
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (Some(0), "{\"terms\":[1,2,3],\"total\":6}\n"),
        "{run:?}"
    );
    // No ARGS: no arguments.
    let run = nodus(addr, &["rpc", "moebi@localhost", "Math", "zero"]).await;
    assert_eq!((run.code, run.stdout.as_str()), (Some(0), "0\n"), "{run:?}");
    no_cli_node(&a);
    a.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn rpc_refuses_unknown_functions_and_bad_json_clearly() -> Res {
    let epmd = port_mapper().await;
    let a = node(&epmd, "moebi@localhost").await;
    let (tx, mut received) = mpsc::unbounded_channel::<String>();
    a.functions()
        .register("Chat", "receive_message", move |(message,): (String,)| {
            let _ = tx.send(message);
            async {}
        });
    let addr = epmd.local_addr();
    let rpc = |function: &'static str, args: &'static str| async move {
        nodus(addr, &["rpc", "moebi@localhost", "Chat", function, args]).await
    };

    let run = rpc("nope", r#"["hi"]"#).await;
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stdout.is_empty() && run.stderr.contains("function Chat.nope is not registered"),
        "{run:?}"
    );

    let run = rpc("receive_message", r#"["hi""#).await;
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stdout.is_empty() && run.stderr.contains("ARGS is not JSON"),
        "{run:?}"
    );

    for wrong in ["[1]", r#"["hi", 2]"#, r#"{"message": "hi"}"#] {
        let run = rpc("receive_message", wrong).await;
        assert_eq!(run.code, Some(1), "{wrong}: {run:?}");
        assert!(
            run.stdout.is_empty()
                && run
                    .stderr
                    .contains("bad JSON arguments for Chat.receive_message")
                && run.stderr.contains("JSON array"),
            "{wrong}: {run:?}"
        );
    }
    assert!(received.try_recv().is_err(), "nothing ran");

    let run = rpc("receive_message", r#"["hi"]"#).await;
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (Some(0), "null\n"),
        "{run:?}"
    );
    assert_eq!(received.try_recv().ok().as_deref(), Some("hi"));
    a.shutdown().await;
    Ok(())
}

#[path = "../examples/chat/app.rs"]
mod app;

/// The next message of `inbox`, waiting at most 10 s.
async fn recv(inbox: &mut app::Inbox) -> Option<String> {
    tokio::time::timeout(Duration::from_secs(10), inbox.recv())
        .await
        .ok()
        .flatten()
}

/// Seed 004's Chat app (examples/chat): the command's rpc runs `Chat.receive_message` on moebi
/// (it prints there), and `Chat.receive_message_for_moebi` with a `NodeName` argument decoded
/// from a JSON string, so moebi answers `chicken?` to alex; nodes and info see the app.
#[tokio::test]
async fn the_command_works_against_the_chat_app() -> Res {
    let epmd = port_mapper().await;
    let moebi = node(&epmd, app::MOEBI).await;
    let alex = node(&epmd, "alex@localhost").await;
    let (_moebi_chat, mut moebi_inbox) = app::Chat::start(&moebi, app::remote_supervisor()).await?;
    let (_alex_chat, mut alex_inbox) = app::Chat::start(&alex, app::remote_supervisor()).await?;
    assert_eq!(alex.ping(app::MOEBI).await, Ping::Pong);
    let (moebi_out, moebi_printed) = nodus::io::Output::capture();
    moebi.set_output(moebi_out);
    let (alex_out, _) = nodus::io::Output::capture();
    alex.set_output(alex_out);
    let addr = epmd.local_addr();

    let run = nodus(
        addr,
        &["rpc", app::MOEBI, "Chat", "receive_message", r#"["hi"]"#],
    )
    .await;
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (Some(0), "null\n"),
        "{run:?}"
    );
    assert_eq!(recv(&mut moebi_inbox).await.as_deref(), Some("hi"));
    assert_eq!(moebi_printed.lines(), ["hi"], "printed on moebi");

    let args = r#"["hello", "alex@localhost"]"#;
    let run = nodus(
        addr,
        &["rpc", app::MOEBI, "Chat", "receive_message_for_moebi", args],
    )
    .await;
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (Some(0), "null\n"),
        "{run:?}"
    );
    assert_eq!(recv(&mut moebi_inbox).await.as_deref(), Some("hello"));
    assert_eq!(recv(&mut alex_inbox).await.as_deref(), Some("chicken?"));

    let args = r#"["hello", "not a node name"]"#;
    let run = nodus(
        addr,
        &["rpc", app::MOEBI, "Chat", "receive_message_for_moebi", args],
    )
    .await;
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stderr.contains("bad JSON arguments"), "{run:?}");

    let run = nodus(addr, &["nodes", app::MOEBI]).await;
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (Some(0), "alex@localhost\n"),
        "{run:?}"
    );
    let run = nodus(addr, &["info", app::MOEBI]).await;
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stdout.contains("\n  Chat.TaskSupervisor  <"),
        "{}",
        run.stdout
    );
    no_cli_node(&moebi);
    no_cli_node(&alex);
    moebi.shutdown().await;
    alex.shutdown().await;
    Ok(())
}
