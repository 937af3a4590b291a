//! A nodus node in an Erlang cluster, tested against real `erl` nodes (issue 15).
//!
//! Each test starts its own port mapper (nodus's embedded, epmd-compatible one) on a port the
//! OS picks, a nodus node `rust@localhost` with `NodeConfig::erlang(true)` registered in it,
//! and one `erl -sname` node with `ERL_EPMD_PORT` set to that port, so nothing meets the
//! machine's own epmd or another test. The `erl` node runs a script given with `-eval` that
//! prints one line per result (`key value`), which the test reads with a deadline; the script
//! then waits for a line on its standard input (or its own timeout) before it halts, so the
//! connection is still up while the test looks at the nodus side.
//!
//! One test runs an `elixir --sname` node the same way.
//!
//! Without `erl` on the PATH (Debian: `apt-get install erlang-base`), each test is reported
//! *ignored* with that reason, and the Elixir one without `elixir` (Debian: `elixir`): this
//! binary has its own `main` on libtest-mimic.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Completion, Failed, Trial};
use nodus::remote::erl::{Atom, ErlError, FromTerm, IntoTerm, TermError};
use nodus::remote::port_mapper::{PortMapperServer, PortMapperServerHandle};
use nodus::remote::{Cookie, Node, NodeConfig};

#[path = "../examples/chat/app.rs"]
mod app;

/// The bound on every wait: a line from `erl`, a node up.
const DEADLINE: Duration = Duration::from_secs(30);
const COOKIE: &str = "erlcookie";

type TestResult = Result<(), String>;
type Test = (&'static str, fn() -> TestResult);

fn main() {
    let args = Arguments::from_args();
    let tests: [Test; 16] = [
        ("net_adm_ping_answers_pong_and_lists_the_node", ping_pong),
        ("ticks_keep_an_idle_connection_up", ticks_keep_up),
        ("send_cast_and_call_reach_an_actor", send_cast_call),
        (
            "a_term_that_does_not_map_exits_the_caller_not_the_connection",
            bad_terms,
        ),
        ("a_wrong_cookie_is_pang", wrong_cookie),
        ("an_elixir_node_pings_and_calls", elixir_ping_call),
        ("nodus_connects_to_an_erl_node", nodus_connects),
        (
            "beam_peers_are_listed_monitored_and_in_node_events",
            beam_peers_in_list_and_events,
        ),
        ("erpc_and_rpc_call_run_a_registered_function", erpc_call),
        ("an_elixir_node_runs_a_function_with_erpc", elixir_erpc),
        (
            "elixir_task_supervisor_async_runs_a_rust_function",
            elixir_task_supervisor,
        ),
        (
            "elixir_task_await_sees_noconnection_when_the_nodus_node_goes",
            elixir_task_noconnection,
        ),
        (
            "nodus_runs_elixir_tasks_and_calls_an_elixir_genserver",
            nodus_calls_elixir,
        ),
        ("elixir_moebi_answers_a_nodus_alex_chicken", elixir_moebi),
        ("nodus_moebi_answers_an_elixir_alex_chicken", nodus_moebi),
        (
            "a_linked_elixir_owner_that_exits_stops_the_rust_task",
            elixir_owner_exit_stops_the_task,
        ),
    ];
    let trials = tests
        .into_iter()
        .map(|(name, test)| {
            Trial::ignorable_test(name, move || {
                if let Err(reason) = erl_available() {
                    return Ok(Completion::ignored_with(reason));
                }
                if name.contains("elixir") {
                    if let Err(reason) = elixir_available() {
                        return Ok(Completion::ignored_with(reason));
                    }
                }
                test().map(|()| Completion::Completed).map_err(Failed::from)
            })
        })
        .collect();
    libtest_mimic::run(&args, trials).exit()
}

fn erl_available() -> Result<(), String> {
    match Command::new("erl")
        .args(["-noshell", "-eval", "halt()."])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!(
            "`erl` does not run here ({s}); install erlang-base"
        )),
        Err(e) => Err(format!(
            "no `erl` here ({e}); install erlang-base (apt-get install -y erlang-base)"
        )),
    }
}

fn elixir_available() -> Result<(), String> {
    match Command::new("elixir")
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("`elixir` does not run here ({s}); install elixir")),
        Err(e) => Err(format!(
            "no `elixir` here ({e}); install elixir (apt-get install -y elixir)"
        )),
    }
}

/// A running `erl` node and its output lines.
struct Erl {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Erl {
    /// `erl -sname x -setcookie cookie -noshell -eval script`, on the port mapper at `epmd`.
    fn start(epmd: u16, cookie: &str, extra: &[&str], script: &str) -> Result<Erl, String> {
        // The script halts by itself after DEADLINE should the test die.
        let script = format!(
            "{script} spawn(fun() -> timer:sleep({}), halt(3) end), io:get_line(\"\"), halt().",
            DEADLINE.as_millis() * 2
        );
        let mut child = Command::new("erl")
            .args(["-sname", "x", "-setcookie", cookie, "-noshell"])
            .args(extra)
            .args(["-eval", &script])
            .env("ERL_EPMD_PORT", epmd.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("erl: {e}"))?;
        let stdout = child.stdout.take().ok_or("erl has no stdout")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Ok(Erl {
            child,
            lines,
            seen: Vec::new(),
        })
    }

    /// The value of the first line `key value`, waiting at most DEADLINE.
    fn value(&mut self, key: &str) -> Result<String, String> {
        let until = Instant::now() + DEADLINE;
        let prefix = format!("{key} ");
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if let Some(v) = line.strip_prefix(&prefix) {
                        return Ok(v.trim().to_string());
                    }
                }
                Err(_) => {
                    return Err(format!(
                        "no `{key}` line from erl within {DEADLINE:?}; it printed {:?}",
                        self.seen
                    ))
                }
            }
        }
    }

    /// Waits at most DEADLINE for the line `want`.
    fn line(&mut self, want: &str) -> Result<(), String> {
        let until = Instant::now() + DEADLINE;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.trim() == want => return Ok(()),
                Ok(line) => self.seen.push(line),
                Err(_) => {
                    return Err(format!(
                        "no line {want:?} within {DEADLINE:?}; it printed {:?}",
                        self.seen
                    ))
                }
            }
        }
    }

    /// Writes `line` to the script's standard input (its next `IO.gets`).
    fn send_line(&mut self, line: &str) -> Result<(), String> {
        let stdin = self.child.stdin.as_mut().ok_or("no stdin")?;
        writeln!(stdin, "{line}").map_err(|e| e.to_string())
    }

    /// Lets the script halt.
    fn finish(mut self) {
        if let Some(stdin) = self.child.stdin.as_mut() {
            let _ = stdin.write_all(b"\n");
        }
    }
}

impl Erl {
    /// `elixir --sname ex --cookie cookie -e script`, on the port mapper at `epmd`.
    fn start_elixir(epmd: u16, cookie: &str, script: &str) -> Result<Erl, String> {
        Erl::start_elixir_as(epmd, "ex", cookie, &[], script)
    }

    /// `elixir --sname sname --cookie cookie extra... -e script`.
    fn start_elixir_as(
        epmd: u16,
        sname: &str,
        cookie: &str,
        extra: &[&str],
        script: &str,
    ) -> Result<Erl, String> {
        let script = format!(
            "{script}; spawn(fn -> Process.sleep({}); System.halt(3) end); IO.gets(\"\")",
            DEADLINE.as_millis() * 2
        );
        let mut child = Command::new("elixir")
            .args(["--sname", sname, "--cookie", cookie])
            .args(extra)
            .args(["-e", &script])
            .env("ERL_EPMD_PORT", epmd.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("elixir: {e}"))?;
        let stdout = child.stdout.take().ok_or("elixir has no stdout")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Ok(Erl {
            child,
            lines,
            seen: Vec::new(),
        })
    }
}

impl Drop for Erl {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
}

/// A port mapper and a nodus node `rust@localhost` with Erlang on and `counter` exposed.
async fn start_node(tick: Option<Duration>) -> Result<(PortMapperServerHandle, Node), String> {
    let epmd = PortMapperServer::bind("127.0.0.1:0".parse().map_err(|e| format!("{e}"))?)
        .await
        .map_err(|e| e.to_string())?
        .spawn();
    let node = start_named(&epmd, "rust@localhost", COOKIE, tick).await?;
    expose_counter(&node).await?;
    Ok((epmd, node))
}

/// A nodus node `name` with Erlang on, on the port mapper `epmd`.
async fn start_named(
    epmd: &PortMapperServerHandle,
    name: &str,
    cookie: &str,
    tick: Option<Duration>,
) -> Result<Node, String> {
    let mut config = NodeConfig::sname(name)
        .cookie(Cookie::new(cookie).map_err(|e| e.to_string())?)
        .port_mapper(epmd.local_addr())
        .erlang(true);
    if let Some(tick) = tick {
        config = config.tick_time(tick);
    }
    tokio::time::timeout(DEADLINE, Node::start(config))
        .await
        .map_err(|_| "the node did not start in time".to_string())?
        .map_err(|e| e.to_string())
}

/// The `counter` actor: `{add, N}` as a message or cast; `{add, N}` as a call answers the
/// new total.
struct Counter;

enum CounterMsg {
    Add(i64),
    AddAndGet(i64, ractor::RpcReplyPort<i64>),
}

impl ractor::Actor for Counter {
    type Msg = CounterMsg;
    type State = i64;
    type Arguments = ();

    async fn pre_start(
        &self,
        _me: ractor::ActorRef<CounterMsg>,
        _args: (),
    ) -> Result<i64, ractor::ActorProcessingErr> {
        Ok(0)
    }

    async fn handle(
        &self,
        _me: ractor::ActorRef<CounterMsg>,
        msg: CounterMsg,
        total: &mut i64,
    ) -> Result<(), ractor::ActorProcessingErr> {
        match msg {
            CounterMsg::Add(n) => *total += n,
            CounterMsg::AddAndGet(n, reply) => {
                *total += n;
                let _ = reply.send(*total);
            }
        }
        Ok(())
    }
}

fn add(term: nodus::remote::erl::eetf::Term) -> Result<i64, TermError> {
    let shown = term.clone();
    match <(Atom, i64)>::from_term(term)? {
        (Atom(tag), n) if tag == "add" => Ok(n),
        _ => Err(TermError::new("{add, N}", &shown)),
    }
}

async fn expose_counter(node: &Node) -> Result<(), String> {
    let erlang = node.erlang().ok_or("the node has no Erlang side")?;
    node.spawn(Some("counter"), Counter, ())
        .await
        .map_err(|e| e.to_string())?;
    erlang.expose_cast("counter", |term| add(term).map(CounterMsg::Add));
    erlang.expose_call("counter", |system, term| async move {
        let n = add(term).map_err(|source| ErlError::BadTerm {
            name: "counter".into(),
            source,
        })?;
        let total = system
            .call("counter", |port| CounterMsg::AddAndGet(n, port), DEADLINE)
            .await
            .map_err(|e| ErlError::Actor {
                name: "counter".into(),
                reason: e.to_string(),
            })?;
        Ok(total.into_term())
    });
    Ok(())
}

fn check(what: &str, got: &str, want: &str) -> TestResult {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: erl printed {got:?}, expected {want:?}"))
    }
}

fn ping_pong() -> TestResult {
    runtime()?.block_on(async {
        let (epmd, node) = start_node(None).await?;
        let mut erl = Erl::start(
            epmd.local_addr().port(),
            COOKIE,
            &[],
            r#"io:format("ping ~p~n", [net_adm:ping(rust@localhost)]),
               io:format("nodes ~p~n", [nodes()]),"#,
        )?;
        check("net_adm:ping", &erl.value("ping")?, "pong")?;
        check("nodes()", &erl.value("nodes")?, "[rust@localhost]")?;
        let erlang = node.erlang().ok_or("no Erlang side")?;
        let peers = erlang.nodes();
        if !(peers.len() == 1 && peers[0].starts_with("x@")) {
            return Err(format!(
                "the nodus side lists {peers:?}, expected the erl node"
            ));
        }
        erl.finish();
        node.shutdown().await;
        Ok(())
    })
}

fn ticks_keep_up() -> TestResult {
    runtime()?.block_on(async {
        // Both sides tick at 2 s; the erl script stays idle for 3 tick times, so only ticks
        // keep the connection (the BEAM drops a peer silent for its net_ticktime).
        let (epmd, node) = start_node(Some(Duration::from_secs(2))).await?;
        let mut erl = Erl::start(
            epmd.local_addr().port(),
            COOKIE,
            &["-kernel", "net_ticktime", "2"],
            r#"io:format("ping ~p~n", [net_adm:ping(rust@localhost)]),
               timer:sleep(6000),
               io:format("nodes ~p~n", [nodes()]),"#,
        )?;
        check("net_adm:ping", &erl.value("ping")?, "pong")?;
        check(
            "nodes() after 3 idle tick times",
            &erl.value("nodes")?,
            "[rust@localhost]",
        )?;
        let peers = node.erlang().ok_or("no Erlang side")?.nodes();
        if peers.len() != 1 {
            return Err(format!(
                "the nodus side lists {peers:?} after the idle time"
            ));
        }
        erl.finish();
        node.shutdown().await;
        Ok(())
    })
}

fn send_cast_call() -> TestResult {
    runtime()?.block_on(async {
        let (epmd, node) = start_node(None).await?;
        let mut erl = Erl::start(
            epmd.local_addr().port(),
            COOKIE,
            &[],
            r#"{counter, rust@localhost} ! {add, 2},
               gen_server:cast({counter, rust@localhost}, {add, 3}),
               io:format("call ~p~n", [gen_server:call({counter, rust@localhost}, {add, 4}, 10000)]),
               io:format("big ~p~n", [gen_server:call({counter, rust@localhost}, {add, 1 bsl 40}, 10000)]),"#,
        )?;
        // Messages from one process arrive in order: the call sees the send and the cast.
        check("gen_server:call", &erl.value("call")?, "9")?;
        check("gen_server:call", &erl.value("big")?, &(9i64 + (1 << 40)).to_string())?;
        erl.finish();
        node.shutdown().await;
        Ok(())
    })
}

fn bad_terms() -> TestResult {
    runtime()?.block_on(async {
        let (epmd, node) = start_node(None).await?;
        let mut erl = Erl::start(
            epmd.local_addr().port(),
            COOKIE,
            &[],
            r#"{counter, rust@localhost} ! not_a_counter_message,
               io:format("bad ~p~n", [catch gen_server:call({counter, rust@localhost}, hello, 10000)]),
               io:format("noproc ~p~n", [catch gen_server:call({nobody, rust@localhost}, hello, 10000)]),
               io:format("after ~p~n", [gen_server:call({counter, rust@localhost}, {add, 1}, 10000)]),
               io:format("nodes ~p~n", [nodes()]),"#,
        )?;
        let bad = erl.value("bad")?;
        if !bad.starts_with("{'EXIT',{{nodus_bad_request,hello}") {
            return Err(format!("the bad call gave {bad}, expected an exit nodus_bad_request"));
        }
        let noproc = erl.value("noproc")?;
        if !noproc.starts_with("{'EXIT',{noproc,") {
            return Err(format!("a call to no name gave {noproc}, expected an exit noproc"));
        }
        // The dropped message and the failed call left the counter and the connection alone.
        check("a call after them", &erl.value("after")?, "1")?;
        check("nodes()", &erl.value("nodes")?, "[rust@localhost]")?;
        erl.finish();
        node.shutdown().await;
        Ok(())
    })
}

fn wrong_cookie() -> TestResult {
    runtime()?.block_on(async {
        let (epmd, node) = start_node(None).await?;
        let mut erl = Erl::start(
            epmd.local_addr().port(),
            "not-the-cookie",
            &[],
            r#"io:format("ping ~p~n", [net_adm:ping(rust@localhost)]),"#,
        )?;
        check(
            "net_adm:ping with a wrong cookie",
            &erl.value("ping")?,
            "pang",
        )?;
        let peers = node.erlang().ok_or("no Erlang side")?.nodes();
        if !peers.is_empty() {
            return Err(format!(
                "the nodus side lists {peers:?} after a wrong cookie"
            ));
        }
        erl.finish();
        node.shutdown().await;
        Ok(())
    })
}

fn elixir_ping_call() -> TestResult {
    runtime()?.block_on(async {
        let (epmd, node) = start_node(None).await?;
        let mut ex = Erl::start_elixir(
            epmd.local_addr().port(),
            COOKIE,
            r#"IO.puts("ping #{inspect(Node.ping(:"rust@localhost"))}");
               IO.puts("list #{inspect(Node.list())}");
               GenServer.cast({:counter, :"rust@localhost"}, {:add, 3});
               IO.puts("call #{inspect(GenServer.call({:counter, :"rust@localhost"}, {:add, 4}))}");
               bad = try do GenServer.call({:counter, :"rust@localhost"}, "hello") catch :exit, {r, _} -> r end;
               IO.puts("bad #{inspect(bad)}")"#,
        )?;
        check("Node.ping", &ex.value("ping")?, ":pong")?;
        check("Node.list", &ex.value("list")?, "[:rust@localhost]")?;
        check("GenServer.call", &ex.value("call")?, "7")?;
        check("a call that does not map", &ex.value("bad")?, r#"{:nodus_bad_request, "hello"}"#)?;
        ex.finish();
        node.shutdown().await;
        Ok(())
    })
}

fn nodus_connects() -> TestResult {
    runtime()?.block_on(async {
        let (epmd, node) = start_node(None).await?;
        let mut erl = Erl::start(
            epmd.local_addr().port(),
            COOKIE,
            &[],
            r#"ok = net_kernel:monitor_nodes(true),
               io:format("node ~s~n", [node()]),
               receive {nodeup, N} -> io:format("nodeup ~p~n", [N]) after 20000 -> io:format("nodeup none~n") end,
               io:format("call ~p~n", [gen_server:call({counter, rust@localhost}, {add, 5}, 10000)]),"#,
        )?;
        let peer = erl.value("node")?;
        let erlang = node.erlang().ok_or("no Erlang side")?;
        erlang
            .connect(&peer)
            .await
            .map_err(|e| format!("connect to {peer}: {e}"))?;
        check("nodeup on the erl side", &erl.value("nodeup")?, "rust@localhost")?;
        // The connection nodus made carries calls from the BEAM side too.
        check("a call over it", &erl.value("call")?, "5")?;
        if erlang.nodes() != vec![peer.clone()] {
            return Err(format!("the nodus side lists {:?}, expected [{peer}]", erlang.nodes()));
        }
        erl.finish();
        node.shutdown().await;
        Ok(())
    })
}

/// The next event from `events` that `want` picks, within DEADLINE.
async fn next_event<T>(
    events: &mut tokio::sync::broadcast::Receiver<nodus::remote::NodeEvent>,
    mut want: impl FnMut(&nodus::remote::NodeEvent) -> Option<T>,
) -> Result<T, String> {
    let until = tokio::time::Instant::now() + DEADLINE;
    loop {
        match tokio::time::timeout_at(until, events.recv()).await {
            Err(_) => return Err(format!("no such node event within {DEADLINE:?}")),
            Ok(Err(e)) => return Err(format!("node events: {e}")),
            Ok(Ok(event)) => {
                if let Some(found) = want(&event) {
                    return Ok(found);
                }
            }
        }
    }
}

fn beam_peers_in_list_and_events() -> TestResult {
    use nodus::remote::{NodeDownReason, NodeEvent};
    runtime()?.block_on(async {
        let (epmd, node) = start_node(None).await?;
        let mut events = node.events();
        let mut erl = Erl::start(
            epmd.local_addr().port(),
            COOKIE,
            &[],
            r#"io:format("node ~s~n", [node()]),
               io:format("ping ~p~n", [net_adm:ping(rust@localhost)]),"#,
        )?;
        let peer = erl.value("node")?;
        check("net_adm:ping", &erl.value("ping")?, "pong")?;
        let up = next_event(&mut events, |e| match e {
            NodeEvent::NodeUp { node, hidden } if node.as_str() == peer => Some(*hidden),
            _ => None,
        })
        .await
        .map_err(|e| format!("NodeUp for {peer}: {e}"))?;
        if up {
            return Err("the BEAM peer came up hidden".into());
        }
        let listed: Vec<String> = node.list().iter().map(|n| n.to_string()).collect();
        if listed != vec![peer.clone()] {
            return Err(format!("Node::list is {listed:?}, expected [{peer}]"));
        }
        let name = nodus::NodeName::parse(&peer).map_err(|e| e.to_string())?;
        let monitor = node.monitor_node(&name).await;
        erl.finish(); // the erl node halts: its connection closes
        let down = tokio::time::timeout(DEADLINE, monitor)
            .await
            .map_err(|_| format!("the node monitor of {peer} did not fire within {DEADLINE:?}"))?;
        if down.node != name || down.reason != NodeDownReason::ConnectionClosed {
            return Err(format!("the node monitor fired with {down:?}"));
        }
        let reason = next_event(&mut events, |e| match e {
            NodeEvent::NodeDown { node, reason, .. } if node.as_str() == peer => {
                Some(reason.clone())
            }
            _ => None,
        })
        .await
        .map_err(|e| format!("NodeDown for {peer}: {e}"))?;
        println!("{peer}: up, listed, monitored, down ({reason})");
        if !node.list().is_empty() {
            return Err(format!("Node::list after the peer left: {:?}", node.list()));
        }
        // A monitor of a BEAM node not connected resolves at once, as for any unreachable node.
        let gone = tokio::time::timeout(DEADLINE, node.monitor_node(&name).await)
            .await
            .map_err(|_| "a monitor of a gone node did not resolve".to_string())?;
        if gone.reason != NodeDownReason::NoConnection {
            return Err(format!("a monitor of a gone node gave {gone:?}"));
        }
        node.shutdown().await;
        Ok(())
    })
}

/// Registers `Chat.receive_message(message)`, answering `"got " <> message`.
fn register_chat(node: &Node) {
    node.functions().register(
        "Chat",
        "receive_message",
        |(message,): (String,)| async move { format!("got {message}") },
    );
}

fn erpc_call() -> TestResult {
    runtime()?.block_on(async {
        let (epmd, node) = start_node(None).await?;
        start_chat_supervisor(&node).await?;
        let mut erl = Erl::start(
            epmd.local_addr().port(),
            COOKIE,
            &[],
            r#"io:format("erpc ~p~n", [erpc:call(rust@localhost, 'Elixir.Chat', receive_message, [<<"hi">>], 10000)]),
               {'EXIT', {Undef, _}} = (catch erpc:call(rust@localhost, 'Elixir.Chat', nope, [<<"hi">>], 10000)),
               io:format("undef ~p~n", [Undef]),
               io:format("badarg ~w~n", [catch erpc:call(rust@localhost, 'Elixir.Chat', receive_message, [1, 2], 10000)]),
               io:format("rpc ~p~n", [rpc:call(rust@localhost, 'Elixir.Chat', receive_message, [<<"yo">>], 10000)]),
               io:format("panic ~s~n", [io_lib:print(catch erpc:call(rust@localhost, 'Elixir.Chat', boom, [], 10000), 1, 100000, -1)]),
               io:format("nodes ~p~n", [nodes()]),"#,
        )?;
        check("erpc:call", &erl.value("erpc")?, "<<\"got hi\">>")?;
        check(
            "erpc:call of a function not registered",
            &erl.value("undef")?,
            "{exception,undef,[{'Elixir.Chat',nope,[<<\"hi\">>],[]}]}",
        )?;
        let badarg = erl.value("badarg")?;
        if !badarg.starts_with("{'EXIT',{{exception,badarg,") {
            return Err(format!("erpc:call with bad arguments gave {badarg}, expected an exception badarg"));
        }
        check("rpc:call", &erl.value("rpc")?, "<<\"got yo\">>")?;
        let panic = erl.value("panic")?;
        if !panic.starts_with("{'EXIT',{exception,{nodus_task_failed,<<\"") || !panic.contains("boom from Rust") {
            return Err(format!("erpc:call of a function that panics gave {panic}, expected an exit {{exception, {{nodus_task_failed, Why}}}}"));
        }
        check("nodes() after them", &erl.value("nodes")?, "[rust@localhost]")?;
        erl.finish();
        node.shutdown().await;
        Ok(())
    })
}

fn elixir_erpc() -> TestResult {
    runtime()?.block_on(async {
        let (epmd, node) = start_node(None).await?;
        register_chat(&node);
        let mut ex = Erl::start_elixir(
            epmd.local_addr().port(),
            COOKIE,
            r#"IO.puts("erpc #{inspect(:erpc.call(:"rust@localhost", Chat, :receive_message, ["hi"]))}");
               undef = try do :erpc.call(:"rust@localhost", Chat, :nope, []) rescue e -> e end;
               IO.puts("undef #{inspect(undef.__struct__)}")"#,
        )?;
        check(":erpc.call", &ex.value("erpc")?, r#""got hi""#)?;
        check(":erpc.call of a function not registered", &ex.value("undef")?, "ErlangError")?;
        ex.finish();
        node.shutdown().await;
        Ok(())
    })
}

/// `Chat.TaskSupervisor` and the Chat functions: `receive_message` (answers `"got " <> m`),
/// `boom` (panics), `patient` (answers after 6 s), `slow` (does not answer within the test:
/// it waits 10 minutes).
async fn start_chat_supervisor(node: &Node) -> Result<(), String> {
    use nodus::core::{TaskSupervisor, TaskSupervisorConfig};
    register_chat(node);
    node.functions()
        .register("Chat", "boom", |(): ()| async move {
            if true {
                panic!("boom from Rust");
            }
        });
    node.functions()
        .register("Chat", "patient", |(): ()| async move {
            // Longer than a Task's default 5 s await: the BEAM caller's own timeout rules.
            tokio::time::sleep(Duration::from_secs(6)).await;
            "patient".to_string()
        });
    node.functions()
        .register("Chat", "slow", |(): ()| async move {
            tokio::time::sleep(Duration::from_secs(600)).await; // the work: longer than any test
            "late".to_string()
        });
    TaskSupervisor::start(node, TaskSupervisorConfig::new("Chat.TaskSupervisor"))
        .await
        .map(drop)
        .map_err(|e| format!("Chat.TaskSupervisor: {e}"))
}

fn elixir_task_supervisor() -> TestResult {
    runtime()?.block_on(async {
        let (epmd, node) = start_node(None).await?;
        start_chat_supervisor(&node).await?;
        let mut ex = Erl::start_elixir(
            epmd.local_addr().port(),
            COOKIE,
            r#"sup = {Chat.TaskSupervisor, :"rust@localhost"};
               t = Task.Supervisor.async(sup, Chat, :receive_message, ["hi"]);
               IO.puts("value #{inspect(Task.await(t))}");
               t = Task.Supervisor.async_nolink(sup, Chat, :receive_message, ["nolink"]);
               IO.puts("nolink #{inspect(Task.await(t))}");
               {_, mref} = spawn_monitor(fn -> Task.await(Task.Supervisor.async(sup, Chat, :boom, [])) end);
               receive do {:DOWN, ^mref, _, _, why} -> IO.puts("owner #{inspect(why)}") after 20000 -> IO.puts("owner none") end;
               Process.flag(:trap_exit, true);
               r = try do Task.await(Task.Supervisor.async(sup, Chat, :boom, [])) catch :exit, {reason, {Task, :await, _}} -> reason end;
               IO.puts("await #{inspect(r)}");
               r = try do Task.await(Task.Supervisor.async(sup, Chat, :nope, [])) catch :exit, {reason, {Task, :await, _}} -> reason end;
               IO.puts("undef #{inspect(r)}");
               r = try do Task.Supervisor.async({Nope.TaskSupervisor, :"rust@localhost"}, Chat, :receive_message, ["hi"]) catch :exit, {reason, _} -> reason end;
               IO.puts("noproc #{inspect(r)}");
               IO.puts("patient #{inspect(Task.await(Task.Supervisor.async(sup, Chat, :patient, []), 20000))}");
               IO.puts("list #{inspect(Node.list())}")"#,
        )?;
        check("Task.await", &ex.value("value")?, r#""got hi""#)?;
        check("async_nolink", &ex.value("nolink")?, r#""got nolink""#)?;
        let owner = ex.value("owner")?;
        if !owner.starts_with(r#"{:nodus_task_failed, ""#) || !owner.contains("boom from Rust") {
            return Err(format!(
                "a linked owner of a task that panicked ended with {owner}, expected the task's reason"
            ));
        }
        let awaited = ex.value("await")?;
        if !awaited.starts_with(r#"{:nodus_task_failed, ""#) || !awaited.contains("boom from Rust") {
            return Err(format!("Task.await of a task that panicked exited with {awaited}"));
        }
        check(
            "Task.await of a function not registered",
            &ex.value("undef")?,
            "{:undef, [{Chat, :nope, [], []}]}",
        )?;
        let noproc = ex.value("noproc")?;
        if !noproc.starts_with(":noproc") {
            return Err(format!("a start on no supervisor exited with {noproc}, expected noproc"));
        }
        check("a task of 6 s", &ex.value("patient")?, r#""patient""#)?;
        check("Node.list after them", &ex.value("list")?, "[:rust@localhost]")?;
        ex.finish();
        node.shutdown().await;
        Ok(())
    })
}

fn elixir_task_noconnection() -> TestResult {
    runtime()?.block_on(async {
        let (epmd, node) = start_node(None).await?;
        start_chat_supervisor(&node).await?;
        let mut ex = Erl::start_elixir(
            epmd.local_addr().port(),
            COOKIE,
            r#"Process.flag(:trap_exit, true);
               t = Task.Supervisor.async({Chat.TaskSupervisor, :"rust@localhost"}, Chat, :slow, []);
               IO.puts("started #{inspect(node(t.pid))}");
               r = try do Task.await(t, 20000) catch :exit, {reason, {Task, :await, _}} -> reason end;
               IO.puts("await #{inspect(r)}");
               receive do {:EXIT, _, why} -> IO.puts("link #{inspect(why)}") after 5000 -> IO.puts("link none") end"#,
        )?;
        check("the task's node", &ex.value("started")?, ":rust@localhost")?;
        node.shutdown().await; // the nodus node goes while the task runs
        // Task.await turns the monitor's noconnection into {:nodedown, node}, as for any node.
        check(
            "Task.await when the node went",
            &ex.value("await")?,
            "{:nodedown, :rust@localhost}",
        )?;
        check("the link when the node went", &ex.value("link")?, ":noconnection")?;
        ex.finish();
        Ok(())
    })
}

/// An Elixir node's `Chat` (`receive_message/1`, `boom/0` raising, `slow/0`), its
/// `Chat.TaskSupervisor` and a GenServer `Chat.Counter` (`{:add, n}` call and cast).
const ELIXIR_CHAT: &str = r#"defmodule Chat do
  def receive_message(m), do: "elixir got #{m}"
  def boom(), do: raise "boom from Elixir"
  def slow(), do: Process.sleep(600_000)
end;
defmodule Chat.Counter do
  use GenServer
  def init(n), do: {:ok, n}
  def handle_call({:add, k}, _from, n), do: {:reply, n + k, n + k}
  def handle_cast({:add, k}, n), do: {:noreply, n + k}
end;
{:ok, _} = Task.Supervisor.start_link(name: Chat.TaskSupervisor);
{:ok, _} = GenServer.start_link(Chat.Counter, 0, name: Chat.Counter);
IO.puts("node #{node()}")"#;

fn nodus_calls_elixir() -> TestResult {
    use nodus::core::{CallError, SendErrorKind, TaskError, TaskSupervisor};
    use nodus::remote::erl::{GenCall, GenCast};
    runtime()?.block_on(async {
        let (epmd, node) = start_node(None).await?;
        let mut ex = Erl::start_elixir(epmd.local_addr().port(), COOKIE, ELIXIR_CHAT)?;
        let peer = ex.value("node")?;
        let peer = peer.as_str();
        let sup = ("Chat.TaskSupervisor", peer);
        // Not connected yet: NoConnection at once, nothing sent.
        match TaskSupervisor::async_on::<_, String>(&node, sup, "Chat", "receive_message", ("hi",))
            .await
        {
            Err(TaskError::NoConnection { .. }) => {}
            other => return Err(format!("async_on before connecting gave {other:?}")),
        }
        let erlang = node.erlang().ok_or("no Erlang side")?;
        erlang
            .connect(peer)
            .await
            .map_err(|e| format!("connect to {peer}: {e}"))?;

        let got: String = TaskSupervisor::async_on(&node, sup, "Chat", "receive_message", ("hi",))
            .await
            .map_err(|e| format!("async_on: {e}"))?
            .await_timeout(DEADLINE)
            .await
            .map_err(|e| format!("the task: {e}"))?;
        if got != "elixir got hi" {
            return Err(format!("Chat.receive_message answered {got:?}"));
        }
        let boom = TaskSupervisor::async_on::<_, ()>(&node, sup, "Chat", "boom", ())
            .await
            .map_err(|e| format!("async_on boom: {e}"))?
            .await_timeout(DEADLINE)
            .await;
        match boom {
            Err(TaskError::Panicked { message }) if message == "RuntimeError: boom from Elixir" => {
            }
            other => return Err(format!("an Elixir exception gave {other:?}")),
        }
        let nope = TaskSupervisor::async_on::<_, ()>(&node, sup, "Chat", "nope", ())
            .await
            .map_err(|e| format!("async_on nope: {e}"))?
            .await_timeout(DEADLINE)
            .await;
        if !matches!(nope, Err(TaskError::Undefined { .. })) {
            return Err(format!("an undefined Elixir function gave {nope:?}"));
        }
        let noproc = TaskSupervisor::async_on::<_, ()>(
            &node,
            ("Nope.TaskSupervisor", peer),
            "Chat",
            "receive_message",
            ("hi",),
        )
        .await;
        if !matches!(noproc, Err(TaskError::NoProc { .. })) {
            return Err(format!("an unknown Elixir supervisor gave {noproc:?}"));
        }

        // System::call and System::cast reach the GenServer Chat.Counter.
        let counter = ("Chat.Counter", peer);
        node.cast(
            counter,
            GenCast::new((nodus::remote::erl::Atom("add".into()), 2i64)),
        )
        .map_err(|e| format!("cast: {e}"))?;
        let reply = node
            .call(
                counter,
                |port| GenCall::new((nodus::remote::erl::Atom("add".into()), 3i64), port),
                DEADLINE,
            )
            .await
            .map_err(|e| format!("call: {e}"))?;
        let total: i64 = reply.decode().map_err(|e| e.to_string())?;
        if total != 5 {
            return Err(format!(
                "Chat.Counter answered {total} after a cast of 2 and a call of 3"
            ));
        }
        let direct: i64 = erlang
            .call(
                "Chat.Counter",
                peer,
                (nodus::remote::erl::Atom("add".into()), 1i64),
                DEADLINE,
            )
            .await
            .map_err(|e| format!("Erlang::call: {e}"))?;
        if direct != 6 {
            return Err(format!("Erlang::call answered {direct}"));
        }
        let noproc = node
            .call(("Nobody", peer), |port| GenCall::new(1i64, port), DEADLINE)
            .await;
        if !matches!(noproc, Err(CallError::Send(SendErrorKind::NoProc { .. }))) {
            return Err(format!("a call to no process gave {noproc:?}"));
        }

        // The connection goes while a task runs: NoConnection.
        let slow = TaskSupervisor::async_on::<_, ()>(&node, sup, "Chat", "slow", ())
            .await
            .map_err(|e| format!("async_on slow: {e}"))?;
        ex.finish(); // the Elixir node halts
        match slow.await_timeout(DEADLINE).await {
            Err(TaskError::NoConnection { .. }) => {}
            other => return Err(format!("a task whose node went gave {other:?}")),
        }
        node.shutdown().await;
        Ok(())
    })
}

/// The Chat app of Elixir's tutorial in Elixir (moebi answers `chicken?`).
const CHAT_EXS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/chat.exs");

/// The next line of a chat node's inbox, within DEADLINE.
async fn received(inbox: &mut app::Inbox) -> Result<String, String> {
    tokio::time::timeout(DEADLINE, inbox.recv())
        .await
        .map_err(|_| format!("nothing received within {DEADLINE:?}"))?
        .ok_or_else(|| "the inbox closed".to_string())
}

fn elixir_moebi() -> TestResult {
    runtime()?.block_on(async {
        let epmd = PortMapperServer::bind("127.0.0.1:0".parse().map_err(|e| format!("{e}"))?)
            .await
            .map_err(|e| e.to_string())?
            .spawn();
        let mut moebi = Erl::start_elixir_as(
            epmd.local_addr().port(),
            "moebi@localhost",
            "chat",
            &["-r", CHAT_EXS],
            r#"IO.puts("up #{node()}")"#,
        )?;
        check("moebi", &moebi.value("up")?, "moebi@localhost")?;
        let alex = start_named(&epmd, "alex@localhost", "chat", None).await?;
        let (chat, mut inbox) = app::Chat::start(&alex, app::remote_supervisor())
            .await
            .map_err(|e| e.to_string())?;
        let erlang = alex.erlang().ok_or("no Erlang side")?;
        erlang
            .connect(app::MOEBI)
            .await
            .map_err(|e| format!("connect to moebi: {e}"))?;
        chat.send_message(app::MOEBI, "hi")
            .await
            .map_err(|e| format!("send_message(moebi, hi): {e}"))?;
        moebi.line("hi")?; // moebi (Elixir) printed it
        let answer = received(&mut inbox).await?;
        if answer != "chicken?" {
            return Err(format!(
                "alex received {answer:?} from moebi, expected chicken?"
            ));
        }
        moebi.finish();
        alex.shutdown().await;
        Ok(())
    })
}

fn nodus_moebi() -> TestResult {
    runtime()?.block_on(async {
        let epmd = PortMapperServer::bind("127.0.0.1:0".parse().map_err(|e| format!("{e}"))?)
            .await
            .map_err(|e| e.to_string())?
            .spawn();
        let moebi = start_named(&epmd, app::MOEBI, "chat", None).await?;
        let (_chat, mut inbox) = app::Chat::start(&moebi, app::remote_supervisor())
            .await
            .map_err(|e| e.to_string())?;
        let mut alex = Erl::start_elixir_as(
            epmd.local_addr().port(),
            "alex@localhost",
            "chat",
            &["-r", CHAT_EXS],
            r#"Chat.send_message(:moebi@localhost, "hi"); IO.puts("sent ok")"#,
        )?;
        let hi = received(&mut inbox).await?;
        if hi != "hi" {
            return Err(format!("moebi (nodus) received {hi:?}, expected hi"));
        }
        alex.line("chicken?")?; // moebi's answer, printed on alex (Elixir)
        check("send_message", &alex.value("sent")?, "ok")?;
        alex.finish();
        moebi.shutdown().await;
        Ok(())
    })
}

/// Polls, within DEADLINE, until `Chat.TaskSupervisor` has `want` tasks.
async fn children_become(node: &Node, want: usize) -> Result<(), String> {
    let sup = nodus::core::TaskSupervisor::whereis(node, "Chat.TaskSupervisor")
        .ok_or("no Chat.TaskSupervisor")?;
    let until = tokio::time::Instant::now() + DEADLINE;
    loop {
        let n = sup.count_children().await.map_err(|e| e.to_string())?;
        if n == want {
            return Ok(());
        }
        if tokio::time::Instant::now() > until {
            return Err(format!(
                "Chat.TaskSupervisor has {n} tasks after {DEADLINE:?}, expected {want}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await; // polling interval
    }
}

fn elixir_owner_exit_stops_the_task() -> TestResult {
    runtime()?.block_on(async {
        let (epmd, node) = start_node(None).await?;
        start_chat_supervisor(&node).await?;
        let mut ex = Erl::start_elixir(
            epmd.local_addr().port(),
            COOKIE,
            r#"me = self();
               owner = spawn(fn -> Task.Supervisor.async({Chat.TaskSupervisor, :"rust@localhost"}, Chat, :slow, []); send(me, :started); Process.sleep(:infinity) end);
               receive do :started -> IO.puts("started yes") after 20000 -> IO.puts("started no") end;
               IO.gets("");
               Process.exit(owner, :kill);
               IO.puts("killed yes")"#,
        )?;
        check("the task started", &ex.value("started")?, "yes")?;
        children_become(&node, 1).await?;
        ex.send_line("kill")?;
        check("the owner", &ex.value("killed")?, "yes")?;
        // The owner's exit reached the task through the link: it is stopped here.
        children_become(&node, 0).await?;
        ex.finish();
        node.shutdown().await;
        Ok(())
    })
}
