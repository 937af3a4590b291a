//! Seed 001 for real: three hosts, each a Linux network namespace, joined by a bridge.
//!
//! Each test makes its own namespaces (four: a "switch" holding the bridge, and three hosts
//! `10.77.N.1`..`10.77.N.3` on it), named after this process's id so that concurrent runs
//! never meet, and removes them at the end, also when the test fails (`Lab`'s `Drop`). The
//! addresses exist only inside those namespaces: nothing is added to the machine's own
//! network. Each host runs one `examples/cluster` process through `ip netns exec`, with a
//! long name (`hoge@10.77.N.1`), one cookie, and nothing else: each starts the embedded
//! port mapper on its host, listening on every interface as epmd does, where the other hosts
//! look it up.
//!
//! - `gossip_trio_meshes_pings_and_runs_tasks`: the hosts find each other by multicast
//!   heartbeats across the bridge, then ping each other, run a task on another node and a
//!   `Node.spawn` that prints on the caller.
//! - `static_trio_meshes_pings_and_runs_tasks`: the same with a static list of the others.
//! - `seed_000_names_only_on_one_host`: three nodes given only a short name, in one namespace
//!   (its own loopback), find each other by gossip; their debug logs show each decision.
//! - `wrong_cookie_keeps_a_host_out` and `wrong_secret_keeps_a_host_out`: the odd host stays
//!   out, and the others' debug logs say why.
//! - `netns_trio_script_prints_seed_001`: `examples/netns_trio.sh` (which makes its own
//!   namespaces) prints what seed 001's terminals print, with each of its strategies, and
//!   leaves no namespace behind.
//!
//! Making namespaces needs root (`CAP_SYS_ADMIN`) and the `ip` command (iproute2). Without
//! them each test is reported *ignored* with the reason, never passed: this binary has its
//! own `main` (`harness = false`) on libtest-mimic, which can ignore a test at run time.
//!
//! `cargo test` builds the examples before it runs tests; run `cargo build --all-features
//! --example cluster` first when running this binary alone (`--test netns`).

use std::{
    io::{BufRead, BufReader, Read},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Arc, Condvar, Mutex, OnceLock, PoisonError},
    thread,
    time::{Duration, Instant},
};

use libtest_mimic::{Arguments, Completion, Failed, Trial};

/// The bound on every wait of a test: a node up, a mesh, a log line.
const DEADLINE: Duration = Duration::from_secs(20);
/// Every node exits by itself after this long, should the test process die without
/// cleaning up (`--exit-after`).
const NODE_LIFETIME_SECS: &str = "90";
/// The cookie the hosts share.
const COOKIE: &str = "mycookie";
/// The three hosts' node names, as in seed 001.
const NAMES: [&str; 3] = ["hoge", "fuga", "piyo"];

type TestResult = Result<(), String>;
/// A test: its name and its body.
type Test = (&'static str, fn() -> TestResult);

fn main() {
    let args = Arguments::from_args();
    let tests: [Test; 6] = [
        (
            "gossip_trio_meshes_pings_and_runs_tasks",
            gossip_trio_meshes_pings_and_runs_tasks,
        ),
        (
            "static_trio_meshes_pings_and_runs_tasks",
            static_trio_meshes_pings_and_runs_tasks,
        ),
        (
            "wrong_cookie_keeps_a_host_out",
            wrong_cookie_keeps_a_host_out,
        ),
        (
            "wrong_secret_keeps_a_host_out",
            wrong_secret_keeps_a_host_out,
        ),
        (
            "seed_000_names_only_on_one_host",
            seed_000_names_only_on_one_host,
        ),
        (
            "netns_trio_script_prints_seed_001",
            netns_trio_script_prints_seed_001,
        ),
    ];
    let trials = tests
        .into_iter()
        .map(|(name, test)| {
            Trial::ignorable_test(name, move || {
                if let Err(reason) = namespaces_available() {
                    return Ok(Completion::ignored_with(reason));
                }
                test().map(|()| Completion::Completed).map_err(Failed::from)
            })
        })
        .collect();
    libtest_mimic::run(&args, trials).exit()
}

// ---------------------------------------------------------------------------------------
// The tests

/// Seed 000's Gossip across hosts: the three find each other with no list at all, then do
/// what seed 001 does by hand.
fn gossip_trio_meshes_pings_and_runs_tasks() -> TestResult {
    let mut lab = Lab::new("g", 1)?;
    let gossip = |i: usize| vec!["--multicast-if".to_string(), lab.ip(i)];
    let strategy = [gossip(1), gossip(2), gossip(3)];
    trio_meshes_pings_and_runs_tasks(&mut lab, strategy)?;
    // The mesh came from heartbeats: each node heard the others'.
    for i in 1..=3 {
        for j in (1..=3).filter(|&j| j != i) {
            let heard = format!("seen: heartbeat topology=example node=\"{}\"", lab.name(j));
            lab.node(i).stderr.wait_for(
                &format!("{} hearing {}", lab.name(i), lab.name(j)),
                |lines| lines.iter().any(|l| l.contains(&heard)),
            )?;
        }
    }
    Ok(())
}

/// Seed 000 on one host, as the README tells it: three nodes given nothing but a short name
/// find each other by gossip on the loopback interface and share the cookie of
/// `~/.nodus.cookie`; `--debug` logs each decision. The host is a namespace of its own, so
/// its loopback, port 4369 and the gossip port are this test's alone.
fn seed_000_names_only_on_one_host() -> TestResult {
    let mut lab = Lab::one_host("o")?;
    let names = ["a@localhost", "b@localhost", "c@localhost"];
    for (i, name) in names.iter().enumerate() {
        lab.spawn_in(
            i + 1,
            0,
            name,
            &["--sname".to_string(), (*name).to_string()],
        )?;
    }
    for (i, name) in names.iter().enumerate() {
        let others: Vec<String> = names
            .iter()
            .filter(|n| *n != name)
            .map(|n| (*n).to_string())
            .collect();
        let node = lab.node(i + 1);
        node.wait_list(|list| others.iter().all(|o| list.contains(o)))?;
        for other in &others {
            // Each node heard the others' heartbeats (the mesh may also come from a peer's
            // list: `connect_all`).
            node.stderr
                .wait_for(&format!("{name} hearing {other}"), |lines| {
                    let heard = format!("seen: heartbeat topology=example node=\"{other}\"");
                    lines.iter().any(|l| l.contains(&heard))
                })?;
        }
    }
    let cookie = lab.home.as_ref().map(|h| h.join(".nodus.cookie"));
    if !cookie.as_ref().is_some_and(|c| c.exists()) {
        return Err(format!("the nodes made no cookie file: {cookie:?}"));
    }
    Ok(())
}

/// Seed 000's Epmd strategy across hosts: each node is given the other two names.
fn static_trio_meshes_pings_and_runs_tasks() -> TestResult {
    let mut lab = Lab::new("s", 2)?;
    let others = |i: usize| {
        let hosts: Vec<String> = (1..=3).filter(|&j| j != i).map(|j| lab.name(j)).collect();
        vec![
            "--strategy".to_string(),
            "static".to_string(),
            "--hosts".to_string(),
            hosts.join(","),
        ]
    };
    let strategy = [others(1), others(2), others(3)];
    trio_meshes_pings_and_runs_tasks(&mut lab, strategy)
}

/// Starts the three nodes with `strategy[i]`; once each lists the two others (before any
/// ping: the requests wait for `--wait-for 2`), hoge pings fuga and piyo, fuga runs a task
/// on hoge, piyo runs one on fuga and spawns `Toukon.aisatsu` there, which prints on piyo.
fn trio_meshes_pings_and_runs_tasks(lab: &mut Lab, strategy: [Vec<String>; 3]) -> TestResult {
    let [s1, s2, s3] = strategy;
    let (hoge, fuga, piyo) = (lab.name(1), lab.name(2), lab.name(3));
    let with = |mut args: Vec<String>, requests: &[(&str, &str)]| {
        args.extend(["--wait-for".into(), "2".into()]);
        for (flag, node) in requests {
            args.extend([(*flag).to_string(), (*node).to_string()]);
        }
        args
    };
    lab.start(
        1,
        COOKIE,
        &with(s1, &[("--ping", &fuga), ("--ping", &piyo)]),
    )?;
    lab.start(2, COOKIE, &with(s2, &[("--task", &hoge)]))?;
    lab.start(
        3,
        COOKIE,
        &with(s3, &[("--task", &fuga), ("--spawn", &fuga)]),
    )?;

    for i in 1..=3 {
        let others: Vec<String> = (1..=3).filter(|&j| j != i).map(|j| lab.name(j)).collect();
        lab.node(i)
            .wait_list(|list| others.iter().all(|o| list.contains(o)))?;
        // The list of two came before any request: the strategy made the mesh, not a ping.
        let lines = lab.node(i).stdout.lines();
        let first_request = lines.iter().position(|l| {
            l.starts_with("Node.ping(") || l.starts_with("task on") || l.starts_with("Node.spawn(")
        });
        let first_full = lines.iter().position(|l| {
            parse_list(l).is_some_and(|list| others.iter().all(|o| list.contains(o)))
        });
        if let (Some(request), Some(full)) = (first_request, first_full) {
            if request < full {
                return Err(format!(
                    "{} made a request before it listed both peers: {lines:#?}",
                    lab.name(i)
                ));
            }
        }
    }
    let hoge_out = &lab.node(1).stdout;
    hoge_out.wait_line(&format!("Node.ping({fuga}) = pong"))?;
    hoge_out.wait_line(&format!("Node.ping({piyo}) = pong"))?;
    lab.node(2).stdout.wait_line(&format!(
        "task on {hoge}: Cluster.hello() = \"hello {fuga}, from {hoge}\""
    ))?;
    let piyo_out = &lab.node(3).stdout;
    piyo_out.wait_line(&format!(
        "task on {fuga}: Cluster.hello() = \"hello {piyo}, from {fuga}\""
    ))?;
    piyo_out.wait_line(&format!("Node.spawn({fuga}, Toukon.aisatsu) started"))?;
    // It ran on fuga and printed on piyo, the caller (its group leader), not on fuga.
    piyo_out.wait_line(&format!("元氣ですかーーーーッ！ (from {fuga})"))?;
    if lab
        .node(2)
        .stdout
        .lines()
        .iter()
        .any(|l| l.starts_with("元氣"))
    {
        return Err(format!(
            "fuga printed the spawned greeting itself: {:#?}",
            lab.node(2).stdout.lines()
        ));
    }
    Ok(())
}

/// piyo has another cookie: hoge and fuga mesh without it, and their logs say why.
fn wrong_cookie_keeps_a_host_out() -> TestResult {
    let mut lab = Lab::new("c", 3)?;
    for i in 1..=3 {
        let cookie = if i == 3 { "another-cookie" } else { COOKIE };
        let args = ["--multicast-if".to_string(), lab.ip(i)];
        lab.start(i, cookie, &args)?;
    }
    let piyo = lab.name(3);
    for i in 1..=2 {
        let other = lab.name(3 - i);
        lab.node(i).wait_list(|list| list.contains(&other))?;
        // Why: it dialled piyo and piyo refused its cookie, or piyo dialled it and failed
        // the challenge; either line names piyo and the cookie.
        lab.node(i).stderr.wait_for(
            &format!("{}'s log saying why {piyo} is out", lab.name(i)),
            |lines| {
                lines.iter().any(|l| {
                    l.contains(&piyo)
                        && (l.contains("rejected our cookie")
                            || l.contains("invalid challenge reply"))
                        && l.contains("same cookie")
                })
            },
        )?;
    }
    // piyo's side: the others refused its cookie too.
    lab.node(3)
        .stderr
        .wait_for("piyo's log saying its cookie is refused", |lines| {
            lines
                .iter()
                .any(|l| l.contains("rejected our cookie") || l.contains("invalid challenge reply"))
        })?;
    lab.assert_out(3)
}

/// piyo seals its heartbeats with another secret: hoge and fuga drop them (their debug logs
/// say so) and mesh without it, though the cookie is the same.
fn wrong_secret_keeps_a_host_out() -> TestResult {
    let mut lab = Lab::new("x", 4)?;
    for i in 1..=3 {
        let secret = if i == 3 {
            "another secret"
        } else {
            "the secret"
        };
        let args = [
            "--multicast-if".to_string(),
            lab.ip(i),
            "--secret".to_string(),
            secret.to_string(),
        ];
        lab.start(i, COOKIE, &args)?;
    }
    let dropped = format!(
        "dropped: heartbeat from {}:45892: authentication failed: sealed under another secret",
        lab.ip(3)
    );
    for i in 1..=2 {
        let other = lab.name(3 - i);
        lab.node(i).wait_list(|list| list.contains(&other))?;
        lab.node(i).stderr.wait_for(
            &format!("{}'s log saying it dropped piyo's heartbeat", lab.name(i)),
            |lines| lines.iter().any(|l| l.contains(&dropped)),
        )?;
    }
    lab.assert_out(3)
}

/// `examples/netns_trio.sh`, seed 001 re-made: the pongs, the full mesh, a task's result and
/// the spawned greeting printed on the caller, for each strategy; then nothing left.
fn netns_trio_script_prints_seed_001() -> TestResult {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/netns_trio.sh");
    let binary = cluster_example()?;
    for strategy in ["none", "gossip", "static"] {
        let mut command = Command::new("bash");
        command
            .arg(&script)
            .arg(strategy)
            .env("NODUS_CLUSTER_BIN", &binary)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut run = NodeProcess::spawn(&format!("netns_trio.sh {strategy}"), command)?;
        let finished = run.stdout.wait_closed();
        if !finished {
            // SIGTERM: the script's trap removes its namespaces.
            let _ = Command::new("kill")
                .arg(run.child.id().to_string())
                .status();
        }
        let status = run.wait(Duration::from_secs(10));
        let out = run.stdout.lines();
        let transcript = || {
            format!(
                "stdout:\n{}\nstderr:\n{}",
                out.join("\n"),
                run.stderr.lines().join("\n")
            )
        };
        if !finished || status != Some(true) {
            return Err(format!(
                "netns_trio.sh {strategy}: finished {finished}, success {status:?}; {}",
                transcript()
            ));
        }
        let (hoge, fuga, piyo) = ("hoge@10.77.0.1", "fuga@10.77.0.2", "piyo@10.77.0.3");
        for line in [
            format!("node {hoge} is up"),
            format!("Node.ping({fuga}) = pong"),
            format!("Node.ping({piyo}) = pong"),
            format!("Node.list() = [{fuga}, {piyo}]"),
            format!("Node.list() = [{hoge}, {piyo}]"),
            format!("Node.list() = [{fuga}, {hoge}]"),
            format!("task on {fuga}: Cluster.hello() = \"hello {piyo}, from {fuga}\""),
            format!("元氣ですかーーーーッ！ (from {fuga})"),
        ] {
            if !out.iter().any(|l| l.starts_with(&line)) {
                return Err(format!(
                    "netns_trio.sh {strategy} never printed {line:?}; {}",
                    transcript()
                ));
            }
        }
        let left = Command::new("ip")
            .args(["netns", "list"])
            .output()
            .map_err(|e| format!("ip netns list: {e}"))?;
        let prefix = format!("trio{}-", run.child.id());
        if String::from_utf8_lossy(&left.stdout).contains(&prefix) {
            return Err(format!(
                "netns_trio.sh {strategy} left namespaces {prefix}*"
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Namespaces

/// Whether this process can make network namespaces, asked once: by making one.
fn namespaces_available() -> Result<(), String> {
    static AVAILABLE: OnceLock<Result<(), String>> = OnceLock::new();
    AVAILABLE
        .get_or_init(|| {
            let probe = format!("ndt{}-probe", std::process::id());
            ip(&["netns", "add", &probe]).map_err(|e| {
                format!("cannot make network namespaces here (needs root and iproute2's `ip`): {e}")
            })?;
            ip(&["netns", "del", &probe])
                .map_err(|e| format!("made namespace {probe} but cannot delete it: {e}"))
        })
        .clone()
}

/// Runs `ip args`, its stderr in the error.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("`ip {}`: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The `cluster` example, next to this test's executable.
fn cluster_example() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current exe: {e}"))?;
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .ok_or("no target directory above the test executable")?;
    let path = dir
        .join("examples")
        .join(format!("cluster{}", std::env::consts::EXE_SUFFIX));
    if path.exists() {
        Ok(path)
    } else {
        Err(format!(
            "{} is missing: run `cargo build --all-features --example cluster` (cargo test builds it)",
            path.display()
        ))
    }
}

/// Three hosts on a bridge, and the node each runs. Dropping it kills the nodes and removes
/// the namespaces.
struct Lab {
    /// The subnet's third byte: the hosts are `10.77.<subnet>.1..=3`.
    subnet: u8,
    /// The switch (holds the bridge), then the three hosts.
    namespaces: Vec<String>,
    nodes: Vec<Option<NodeProcess>>,
    binary: PathBuf,
    /// The nodes' home directory, when the test gives them one (their `~/.nodus.cookie`).
    home: Option<PathBuf>,
}

impl Lab {
    /// Makes the namespaces for test `tag`, hosts on `10.77.<subnet>.0/24`.
    fn new(tag: &str, subnet: u8) -> Result<Lab, String> {
        let binary = cluster_example()?;
        let prefix = format!("ndt{}{tag}", std::process::id());
        let mut lab = Lab {
            subnet,
            namespaces: Vec::new(),
            nodes: Vec::new(),
            binary,
            home: None,
        };
        let switch = format!("{prefix}-sw");
        ip(&["netns", "add", &switch])?;
        lab.namespaces.push(switch.clone());
        // No multicast snooping: the bridge floods heartbeats to every port, without waiting
        // for IGMP reports (there is no querier on this network).
        ip(&[
            "-n",
            &switch,
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ])?;
        ip(&["-n", &switch, "link", "set", "br0", "up"])?;
        for i in 1..=3 {
            let host = format!("{prefix}-{i}");
            ip(&["netns", "add", &host])?;
            lab.namespaces.push(host.clone());
            let port = format!("p{i}");
            ip(&[
                "-n", &switch, "link", "add", &port, "type", "veth", "peer", "name", "eth0",
                "netns", &host,
            ])?;
            ip(&["-n", &switch, "link", "set", &port, "master", "br0", "up"])?;
            ip(&[
                "-n",
                &host,
                "addr",
                "add",
                &format!("{}/24", lab.ip(i)),
                "dev",
                "eth0",
            ])?;
            ip(&["-n", &host, "link", "set", "eth0", "up"])?;
            ip(&["-n", &host, "link", "set", "lo", "up"])?;
            lab.nodes.push(None);
        }
        Ok(lab)
    }

    /// One host with only its loopback up, for three nodes with short names (seed 000), and
    /// an empty home directory for them.
    fn one_host(tag: &str) -> Result<Lab, String> {
        let binary = cluster_example()?;
        let prefix = format!("ndt{}{tag}", std::process::id());
        let home = std::env::temp_dir().join(format!("{prefix}-home"));
        std::fs::create_dir_all(&home).map_err(|e| format!("{}: {e}", home.display()))?;
        let mut lab = Lab {
            subnet: 0,
            namespaces: Vec::new(),
            nodes: vec![None, None, None],
            binary,
            home: Some(home),
        };
        let host = format!("{prefix}-1");
        ip(&["netns", "add", &host])?;
        lab.namespaces.push(host.clone());
        ip(&["-n", &host, "link", "set", "lo", "up"])?;
        Ok(lab)
    }

    /// Host `i`'s address (1..=3).
    fn ip(&self, i: usize) -> String {
        format!("10.77.{}.{i}", self.subnet)
    }

    /// Host `i`'s node name.
    fn name(&self, i: usize) -> String {
        format!("{}@{}", NAMES[i - 1], self.ip(i))
    }

    /// The node running on host `i`.
    fn node(&self, i: usize) -> &NodeProcess {
        match &self.nodes[i - 1] {
            Some(node) => node,
            None => panic!("no node started on host {i}"),
        }
    }

    /// Starts host `i`'s node with `cookie` and `args`, and waits until it is up.
    fn start(&mut self, i: usize, cookie: &str, args: &[String]) -> Result<(), String> {
        let name = self.name(i);
        // No `--port-mapper`: as `erl -name` with epmd, each node starts the embedded port
        // mapper on its host (every interface, for long names), where the others look it up.
        let mut all: Vec<String> = ["--name", &name, "--cookie", cookie]
            .map(String::from)
            .into();
        all.extend_from_slice(args);
        self.spawn_in(i, i, &name, &all)
    }

    /// Runs the example with `args` in namespace `ns` as node `slot` (1..=3), named `name`,
    /// and waits until it is up.
    fn spawn_in(&mut self, slot: usize, ns: usize, name: &str, args: &[String]) -> TestResult {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.namespaces[ns]])
            .arg(&self.binary)
            .args(args)
            .args(["--debug", "--exit-after", NODE_LIFETIME_SECS])
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(home) = &self.home {
            // The cookie the nodes share: `~/.nodus.cookie`, made by the first one.
            command.env("HOME", home).env_remove("NODUS_COOKIE");
        }
        let node = NodeProcess::spawn(name, command)?;
        self.nodes[slot - 1] = Some(node);
        let node = self.node(slot);
        let up = format!("node {name} is up");
        node.stdout
            .wait_for(&format!("{name} up"), |lines| {
                lines.iter().any(|l| l.starts_with(&up))
            })
            .map_err(|e| format!("{e}\n{name}'s stderr:\n{}", node.stderr.lines().join("\n")))
    }

    /// Host `i`'s node is out: no other lists it, it lists no one.
    fn assert_out(&self, i: usize) -> TestResult {
        let odd = self.name(i);
        for j in (1..=3).filter(|&j| j != i) {
            let list = self.node(j).list();
            if list.contains(&odd) {
                return Err(format!("{} lists {odd}: {list:?}", self.name(j)));
            }
        }
        let lines = self.node(i).stdout.lines();
        if lines
            .iter()
            .filter_map(|l| parse_list(l))
            .any(|l| !l.is_empty())
        {
            return Err(format!("{odd} listed a peer: {lines:#?}"));
        }
        Ok(())
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // The nodes first: a namespace with a process in it outlives its name.
        for node in self.nodes.iter_mut().flatten() {
            node.kill();
        }
        for ns in self.namespaces.iter().rev() {
            if let Err(e) = ip(&["netns", "del", ns]) {
                eprintln!("netns test cleanup: {e}");
            }
        }
        if let Some(home) = &self.home {
            let _ = std::fs::remove_dir_all(home);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Node processes and their output

/// The lines read so far, and whether the pipe closed.
#[derive(Default)]
struct Seen {
    lines: Vec<String>,
    closed: bool,
}

/// Lines read from a pipe, and a way to wait for one.
#[derive(Clone, Default)]
struct Lines {
    inner: Arc<(Mutex<Seen>, Condvar)>,
    what: String,
}

impl Lines {
    /// Reads `pipe` line by line on a thread until it closes.
    fn read(what: String, pipe: impl Read + Send + 'static) -> Lines {
        let lines = Lines {
            what,
            ..Lines::default()
        };
        let writer = lines.clone();
        thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let (lock, changed) = &*writer.inner;
                lock.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .lines
                    .push(line);
                changed.notify_all();
            }
            let (lock, changed) = &*writer.inner;
            lock.lock().unwrap_or_else(PoisonError::into_inner).closed = true;
            changed.notify_all();
        });
        lines
    }

    /// The lines so far.
    fn lines(&self) -> Vec<String> {
        let (lock, _) = &*self.inner;
        lock.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .lines
            .clone()
    }

    /// Waits, up to [`DEADLINE`], until `done` holds for the lines so far.
    fn wait_for(&self, what: &str, done: impl Fn(&[String]) -> bool) -> TestResult {
        let deadline = Instant::now() + DEADLINE;
        let (lock, changed) = &*self.inner;
        let mut guard = lock.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if done(&guard.lines) {
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline || guard.closed {
                let why = if guard.closed {
                    "the pipe closed"
                } else {
                    "timed out"
                };
                return Err(format!(
                    "waiting for {what} in {}: {why} after {:?}; it printed:\n{}",
                    self.what,
                    DEADLINE - deadline.saturating_duration_since(now),
                    guard.lines.join("\n")
                ));
            }
            guard = changed
                .wait_timeout(guard, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Waits, up to [`DEADLINE`], until the pipe closes; whether it did.
    fn wait_closed(&self) -> bool {
        let deadline = Instant::now() + DEADLINE;
        let (lock, changed) = &*self.inner;
        let mut guard = lock.lock().unwrap_or_else(PoisonError::into_inner);
        while !guard.closed {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            guard = changed
                .wait_timeout(guard, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }

    /// Waits for a line equal to `line`.
    fn wait_line(&self, line: &str) -> TestResult {
        self.wait_for(&format!("{line:?}"), |lines| {
            lines.iter().any(|l| l == line)
        })
    }
}

/// One `examples/cluster` process in a namespace.
struct NodeProcess {
    child: Child,
    stdout: Lines,
    stderr: Lines,
}

impl NodeProcess {
    fn spawn(name: &str, mut command: Command) -> Result<NodeProcess, String> {
        let mut child = command
            .spawn()
            .map_err(|e| format!("starting {name}: {e}"))?;
        let (Some(out), Some(err)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(format!("{name}: no pipes"));
        };
        Ok(NodeProcess {
            child,
            stdout: Lines::read(format!("{name}'s stdout"), out),
            stderr: Lines::read(format!("{name}'s stderr"), err),
        })
    }

    /// Its latest `Node.list() = [..]`.
    fn list(&self) -> Vec<String> {
        self.stdout
            .lines()
            .iter()
            .rev()
            .find_map(|l| parse_list(l))
            .unwrap_or_default()
    }

    /// Waits until its latest list satisfies `done`.
    fn wait_list(&self, done: impl Fn(&[String]) -> bool) -> TestResult {
        self.stdout.wait_for("a Node.list", |lines| {
            lines
                .iter()
                .rev()
                .find_map(|l| parse_list(l))
                .is_some_and(|list| done(&list))
        })
    }

    /// Waits up to `bound` for it to exit: `Some(success)`, or `None` if it is still running
    /// (it is then killed).
    fn wait(&mut self, bound: Duration) -> Option<bool> {
        let deadline = Instant::now() + bound;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status.success()),
                Ok(None) if Instant::now() < deadline => {
                    // Polling interval of a bounded wait for a process to exit.
                    thread::sleep(Duration::from_millis(20));
                }
                _ => {
                    self.kill();
                    return None;
                }
            }
        }
    }

    fn kill(&mut self) {
        // `ip netns exec` execs the node: this is the node's own pid.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The nodes of a `Node.list() = [a, b]` line.
fn parse_list(line: &str) -> Option<Vec<String>> {
    let inner = line.strip_prefix("Node.list() = [")?.strip_suffix(']')?;
    Some(
        inner
            .split(", ")
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
    )
}
