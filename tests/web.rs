//! The status page (`nodus::remote::status`) and seed 003's `examples/web_cluster`.
//!
//! - `api_nodes_json_in_process`: three nodes in this process, a cluster on the first and its
//!   status page on loopback: `GET /api/nodes` lists the three with their supervision trees
//!   and task supervisors and the cluster's topology; `GET /api/events` streams a
//!   `nodedown` when one halts (then the JSON shows it `down`) and when one shuts down (then
//!   `left`, reason `shutdown`).
//! - `web_cluster_processes_and_sigterm`: three `web_cluster` processes configured from env
//!   only (long names on 127.0.0.1, a static-hosts topology, a port mapper this test runs):
//!   the homepage lists `node()` and `Node.list()`, `/status/api/nodes` the three; SIGTERM
//!   makes one leave (its peers see `shutdown`) and exit 0, ending its open event stream
//!   rather than waiting for it.
//! - `browser_shows_three_then_two_without_reload`: headless chromium (through
//!   chromedriver) loads one process's status page: three nodes up; another process is
//!   killed (SIGKILL); the same page, not reloaded, shows two.
//!
//! The browser test needs Debian's `chromium` and `chromium-driver`; without them it is
//! reported *ignored* with the reason (this binary has its own `main` on libtest-mimic).
//! Every wait is bounded by [`DEADLINE`]; the processes are killed when the test ends.
//! `cargo test` builds the example first; alone: `cargo build --features status --example
//! web_cluster`.

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::Stdio,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use libtest_mimic::{Arguments, Completion, Failed, Trial};
use nodus::remote::{
    cluster::{ClusterConfig, StaticHosts, Topology},
    port_mapper::PortMapperServer,
    status::Status,
    Cluster, Cookie, Node, NodeConfig,
};
use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
    process::{Child, Command},
    time::{timeout, Instant},
};

/// The bound on every wait: a node up, a mesh, an HTTP answer, the page changing.
const DEADLINE: Duration = Duration::from_secs(30);
/// The bound on the page showing a node gone: well under the page's 30 s fallback poll, so
/// only the event stream can make it (the page is not reloaded).
const UPDATE_DEADLINE: Duration = Duration::from_secs(10);

type TestResult = Result<(), String>;

fn main() {
    let args = Arguments::from_args();
    let trials = vec![
        Trial::test("api_nodes_json_in_process", || {
            run(api_nodes_json_in_process()).map_err(Failed::from)
        }),
        Trial::test("web_cluster_processes_and_sigterm", || {
            run(web_cluster_processes_and_sigterm()).map_err(Failed::from)
        }),
        Trial::ignorable_test("browser_shows_three_then_two_without_reload", || {
            if let Err(reason) = browser_available() {
                return Ok(Completion::ignored_with(reason));
            }
            run(browser_shows_three_then_two_without_reload())
                .map(|()| Completion::Completed)
                .map_err(Failed::from)
        }),
    ];
    libtest_mimic::run(&args, trials).exit()
}

/// Runs a test on its own runtime, bounded by a few deadlines.
fn run(test: impl std::future::Future<Output = TestResult>) -> TestResult {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .map_err(|e| format!("no runtime: {e}"))?;
    rt.block_on(async { timeout(4 * DEADLINE, test).await })
        .map_err(|_| format!("the test did not finish within {:?}", 4 * DEADLINE))?
}

// ---------------------------------------------------------------------------------------
// The tests

async fn api_nodes_json_in_process() -> TestResult {
    let epmd = PortMapperServer::bind(loopback(0))
        .await
        .map_err(|e| format!("port mapper: {e}"))?
        .spawn();
    let cookie = Cookie::new("web").map_err(|e| e.to_string())?;
    let config = |name: &str| {
        NodeConfig::sname(name)
            .cookie(cookie.clone())
            .port_mapper(epmd.local_addr())
    };
    let mut nodes = Vec::new();
    for name in ["hoge@localhost", "fuga@localhost", "piyo@localhost"] {
        nodes.push(
            Node::start(config(name))
                .await
                .map_err(|e| format!("{name}: {e}"))?,
        );
    }
    let a = nodes[0].clone();
    let mut a_events = a.events();
    let hosts = StaticHosts::new(nodes.iter().map(|n| n.name().clone()))
        .poll_interval(Duration::from_millis(100));
    let cluster = Cluster::start(
        &a,
        ClusterConfig::new().topology(Topology::new("web", hosts)),
    )
    .await
    .map_err(|e| e.to_string())?;
    // The mesh, as a's node events say.
    timeout(DEADLINE, async {
        while a.list().len() < 2 {
            if a_events.recv().await.is_err() {
                return;
            }
        }
    })
    .await
    .map_err(|_| format!("no mesh within {DEADLINE:?}: {:?}", a.list()))?;
    let status = Status::builder(&a).cluster(&cluster).start();
    let server = status.serve(loopback(0)).await.map_err(|e| e.to_string())?;
    let addr = server.local_addr();

    let (code, page) = get(addr, "/").await?;
    check(code == 200 && page.contains("id=\"nodes\""), || {
        format!("GET / answered {code}: {page}")
    })?;
    let snap = nodes_json(addr, "/api/nodes").await?;
    check(snap["node"] == "hoge@localhost", || format!("node: {snap}"))?;
    check(
        up_nodes(&snap) == ["hoge@localhost", "fuga@localhost", "piyo@localhost"],
        || format!("up nodes: {:?}", up_nodes(&snap)),
    )?;
    check(snap["nodes"][0]["this"] == true, || {
        "this node first".into()
    })?;
    for entry in array(&snap["nodes"]) {
        let d = &entry["details"];
        let rpc_in_tree = array(&d["tree"])
            .iter()
            .any(|e| e["id"] == "nodus.Rpc" && e["kind"] == "task_supervisor");
        let rpc_listed = array(&d["task_supervisors"])
            .iter()
            .any(|t| t["name"] == "nodus.Rpc" && t["children"].is_array());
        check(
            rpc_in_tree && rpc_listed && d["version"].is_string(),
            || format!("details of {}: {d}", entry["name"]),
        )?;
        check(entry["since_ms"].as_u64().is_some_and(|ms| ms > 0), || {
            format!("since: {entry}")
        })?;
    }
    check(
        snap["nodes"][0]["details"]["nodes"]
            == serde_json::json!(["fuga@localhost", "piyo@localhost"]),
        || format!("hoge's Node.list: {}", snap["nodes"][0]["details"]["nodes"]),
    )?;
    check(
        snap["cluster"]["topologies"]
            == serde_json::json!([{"name": "web", "strategy": "static_hosts"}]),
        || format!("cluster: {}", snap["cluster"]),
    )?;

    // A crash: the event stream says so, then the JSON.
    let mut sse = EventStream::open(addr, "/api/events").await?;
    let piyo = nodes.pop().ok_or("three nodes")?;
    piyo.halt().await;
    sse.wait_for("event: nodedown", "piyo@localhost").await?;
    let snap = nodes_json(addr, "/api/nodes").await?;
    check(
        up_nodes(&snap) == ["hoge@localhost", "fuga@localhost"],
        || format!("after the halt: {snap}"),
    )?;
    let piyo_entry = entry(&snap, "piyo@localhost")?;
    check(
        piyo_entry["state"] == "down" && piyo_entry["reason"] == "connection_closed",
        || format!("piyo after its halt: {piyo_entry}"),
    )?;
    // A graceful leave.
    let fuga = nodes.pop().ok_or("two nodes")?;
    fuga.shutdown().await;
    sse.wait_for("event: nodedown", "\"detail\":\"shutdown\"")
        .await?;
    let snap = nodes_json(addr, "/api/nodes").await?;
    let fuga_entry = entry(&snap, "fuga@localhost")?;
    check(
        fuga_entry["state"] == "left" && fuga_entry["reason"] == "shutdown",
        || format!("fuga after its shutdown: {fuga_entry}"),
    )?;
    check(up_nodes(&snap) == ["hoge@localhost"], || {
        format!("after the leave: {snap}")
    })?;

    // The shutdown ends the event stream rather than waiting for it.
    server.shutdown(DEADLINE).await.map_err(|e| e.to_string())?;
    sse.wait_end().await?;
    drop(cluster);
    a.shutdown().await;
    Ok(())
}

async fn web_cluster_processes_and_sigterm() -> TestResult {
    let mut trio = Trio::start().await?;
    let web1 = trio.http[0];
    let (code, home) = get(web1, "/").await?;
    check(code == 200, || format!("GET / answered {code}: {home}"))?;
    check(
        home.contains("node(): <span id=\"node\">web1@127.0.0.1</span>")
            && home.contains("<li class=\"peer\">web2@127.0.0.1</li>")
            && home.contains("<li class=\"peer\">web3@127.0.0.1</li>")
            && home.contains("href=\"status\""),
        || format!("the homepage: {home}"),
    )?;
    let (code, _) = get(web1, "/healthz").await?;
    check(code == 200, || format!("/healthz answered {code}"))?;
    let (code, page) = get(web1, "/status").await?;
    check(code == 200 && page.contains("EventSource"), || {
        format!("GET /status/ answered {code}")
    })?;
    let (code, _) = get(web1, "/status/").await?;
    check(code == 308, || {
        format!("GET /status/ answered {code}, not a redirect")
    })?;
    let snap = nodes_json(web1, "/status/api/nodes").await?;
    check(
        up_nodes(&snap) == ["web1@127.0.0.1", "web2@127.0.0.1", "web3@127.0.0.1"],
        || format!("up nodes: {snap}"),
    )?;
    check(
        snap["cluster"]["topologies"][0]["strategy"] == "static_hosts",
        || format!("cluster: {}", snap["cluster"]),
    )?;

    // SIGTERM: web3 leaves, drains, exits 0; a request that never ends by itself (its own
    // event stream, open across the SIGTERM) does not hold the exit up: it is ended.
    let mut sse = EventStream::open(web1, "/status/api/events").await?;
    let mut web3_sse = EventStream::open(trio.http[2], "/status/api/events").await?;
    let web3 = &mut trio.procs[2];
    signal(web3, "TERM").await?;
    let status = timeout(DEADLINE, web3.child.wait())
        .await
        .map_err(|_| format!("web3 did not exit within {DEADLINE:?} of SIGTERM"))?
        .map_err(|e| e.to_string())?;
    check(status.success(), || {
        format!("web3 exited with {status}; stderr: {}", web3.stderr())
    })?;
    web3.wait_line("web3@127.0.0.1 left the cluster").await?;
    web3_sse.wait_end().await?;
    sse.wait_for("event: nodedown", "\"detail\":\"shutdown\"")
        .await?;
    let snap = nodes_json(web1, "/status/api/nodes").await?;
    let entry = entry(&snap, "web3@127.0.0.1")?;
    check(entry["state"] == "left", || format!("web3: {entry}"))?;
    check(
        up_nodes(&snap) == ["web1@127.0.0.1", "web2@127.0.0.1"],
        || format!("up nodes: {snap}"),
    )?;
    Ok(())
}

async fn browser_shows_three_then_two_without_reload() -> TestResult {
    let mut trio = Trio::start().await?;
    let browser = Browser::start().await?;
    let result = async {
        let client = &browser.client;
        let url = format!("http://{}/status", trio.http[0]);
        timeout(DEADLINE, client.goto(&url))
            .await
            .map_err(|_| "the page did not load in time".to_string())?
            .map_err(|e| format!("goto {url}: {e}"))?;
        let all = ["web1@127.0.0.1", "web2@127.0.0.1", "web3@127.0.0.1"];
        browser
            .wait_up_nodes(&all, "three nodes up", DEADLINE)
            .await?;
        // A mark only this page load has: gone if the page reloads.
        browser
            .script("window.__nodusMark = 'same page'; return true")
            .await?;
        browser
            .wait_for(
                "the event stream open",
                "return document.getElementById('live').dataset.live",
                DEADLINE,
                |v| v == "true",
            )
            .await?;
        signal(&mut trio.procs[2], "KILL").await?;
        browser
            .wait_up_nodes(&all[..2], "two nodes up after the kill", UPDATE_DEADLINE)
            .await?;
        let mark = browser.script("return window.__nodusMark || null").await?;
        check(mark == "same page", || format!("the page was reloaded (mark {mark})"))?;
        let state = browser
            .script("return document.querySelector('#nodes tr[data-node=\"web3@127.0.0.1\"]').dataset.state")
            .await?;
        check(state == "down", || format!("web3's row: {state}"))?;
        Ok(())
    }
    .await;
    browser.close().await;
    result
}

// ---------------------------------------------------------------------------------------
// Three web_cluster processes

/// One `web_cluster` process, its stdout lines and its stderr.
struct Proc {
    name: String,
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    err: Arc<Mutex<Vec<String>>>,
    notify: Arc<tokio::sync::Notify>,
}

impl Proc {
    fn stderr(&self) -> String {
        self.err
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .join("\n")
    }

    /// Waits for a stdout line containing `text`; returns it.
    async fn wait_line(&self, text: &str) -> Result<String, String> {
        let until = Instant::now() + DEADLINE;
        loop {
            let notified = self.notify.notified();
            if let Some(line) = self
                .lines
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .find(|l| l.contains(text))
            {
                return Ok(line.clone());
            }
            if timeout(until.saturating_duration_since(Instant::now()), notified)
                .await
                .is_err()
            {
                return Err(format!(
                    "{} printed no {text:?} within {DEADLINE:?}; stderr:\n{}",
                    self.name,
                    self.stderr()
                ));
            }
        }
    }
}

struct Trio {
    procs: Vec<Proc>,
    http: Vec<SocketAddr>,
    _epmd: nodus::remote::port_mapper::PortMapperServerHandle,
}

impl Trio {
    /// Three processes found by a static-hosts topology; returns once web1 has both peers.
    async fn start() -> Result<Trio, String> {
        let binary = example()?;
        let epmd = PortMapperServer::bind(loopback(0))
            .await
            .map_err(|e| format!("port mapper: {e}"))?
            .spawn();
        let names = ["web1@127.0.0.1", "web2@127.0.0.1", "web3@127.0.0.1"];
        let mut procs = Vec::new();
        let mut http = Vec::new();
        let mut sse = None;
        for name in names {
            let proc = spawn(&binary, name, &names, epmd.local_addr())?;
            let line = proc.wait_line("listening on http://").await?;
            let addr: SocketAddr = line
                .rsplit("http://")
                .next()
                .and_then(|a| a.trim().parse().ok())
                .ok_or_else(|| format!("no address in {line:?}"))?;
            if sse.is_none() {
                sse = Some(EventStream::open(addr, "/status/api/events").await?);
            }
            procs.push(proc);
            http.push(addr);
        }
        // web1 hears both come up (the mesh), or already had them.
        let mut sse = sse.ok_or("no event stream")?;
        let until = Instant::now() + DEADLINE;
        loop {
            let snap = nodes_json(http[0], "/status/api/nodes").await?;
            if up_nodes(&snap) == names {
                break;
            }
            if Instant::now() >= until {
                return Err(format!(
                    "web1 does not see the three within {DEADLINE:?}: {snap}"
                ));
            }
            // The next change (a nodeup) or a bounded wait, then look again.
            let _ = timeout(Duration::from_millis(500), sse.next_chunk()).await;
        }
        Ok(Trio {
            procs,
            http,
            _epmd: epmd,
        })
    }
}

fn example() -> Result<PathBuf, String> {
    nodus::testing::example_binary("web_cluster").ok_or_else(|| {
        "examples/web_cluster is not built: run `cargo build --features status --example web_cluster`".to_string()
    })
}

fn spawn(binary: &PathBuf, name: &str, all: &[&str], epmd: SocketAddr) -> Result<Proc, String> {
    let mut child = Command::new(binary)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("NODUS_NODE", name)
        .env("NODUS_COOKIE", "webcookie")
        .env("NODUS_PORT_MAPPER", epmd.to_string())
        .env("NODUS_TICK_TIME", "10")
        .env("NODUS_CLUSTER_STRATEGY", "static_hosts")
        .env("NODUS_CLUSTER_HOSTS", all.join(","))
        .env("NODUS_CLUSTER_POLL_INTERVAL_MS", "200")
        .env("PORT", "0")
        .env("HTTP_IP", "127.0.0.1")
        // Above DEADLINE: a request that held the drain up would fail the SIGTERM test.
        .env("DRAIN_TIMEOUT_MS", "60000")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
    let lines = Arc::new(Mutex::new(Vec::new()));
    let err = Arc::new(Mutex::new(Vec::new()));
    let notify = Arc::new(tokio::sync::Notify::new());
    if let Some(out) = child.stdout.take() {
        let (lines, notify) = (lines.clone(), notify.clone());
        tokio::spawn(async move {
            let mut out = BufReader::new(out).lines();
            while let Ok(Some(line)) = out.next_line().await {
                lines
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(line);
                notify.notify_waiters();
            }
        });
    }
    if let Some(stderr) = child.stderr.take() {
        let err = err.clone();
        tokio::spawn(async move {
            let mut stderr = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = stderr.next_line().await {
                err.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(line);
            }
        });
    }
    Ok(Proc {
        name: name.to_string(),
        child,
        lines,
        err,
        notify,
    })
}

async fn signal(proc: &mut Proc, signal: &str) -> TestResult {
    let pid = proc.child.id().ok_or("the process has already exited")?;
    let status = timeout(
        DEADLINE,
        Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status(),
    )
    .await
    .map_err(|_| "kill did not return".to_string())?
    .map_err(|e| format!("kill: {e}"))?;
    check(status.success(), || {
        format!("kill -{signal} {pid}: {status}")
    })
}

// ---------------------------------------------------------------------------------------
// HTTP on loopback, by hand (the requests are one line; nothing to pull a client in for)

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// `GET path` as HTTP/1.0 (so the body ends with the connection): status and body.
async fn get(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
            .await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(raw)
    };
    let raw = timeout(DEADLINE, exchange)
        .await
        .map_err(|_| format!("GET {path} on {addr}: no answer within {DEADLINE:?}"))?
        .map_err(|e| format!("GET {path} on {addr}: {e}"))?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("GET {path}: not HTTP: {text}"))?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("GET {path}: no status in {head}"))?;
    Ok((code, body.to_string()))
}

async fn nodes_json(addr: SocketAddr, path: &str) -> Result<Value, String> {
    let (code, body) = get(addr, path).await?;
    check(code == 200, || {
        format!("GET {path} answered {code}: {body}")
    })?;
    serde_json::from_str(&body).map_err(|e| format!("GET {path}: not JSON ({e}): {body}"))
}

/// A `GET /api/events` stream, read as raw text.
struct EventStream {
    stream: TcpStream,
    seen: String,
}

impl EventStream {
    async fn open(addr: SocketAddr, path: &str) -> Result<EventStream, String> {
        let mut stream = timeout(DEADLINE, TcpStream::connect(addr))
            .await
            .map_err(|_| "connect: no answer".to_string())?
            .map_err(|e| format!("connect {addr}: {e}"))?;
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n")
                    .as_bytes(),
            )
            .await
            .map_err(|e| e.to_string())?;
        let mut events = EventStream {
            stream,
            seen: String::new(),
        };
        // The response head: the stream is open (and subscribed) once it is here.
        let until = Instant::now() + DEADLINE;
        while !events.seen.contains("\r\n\r\n") {
            timeout(
                until.saturating_duration_since(Instant::now()),
                events.next_chunk(),
            )
            .await
            .map_err(|_| format!("GET {path}: no answer within {DEADLINE:?}"))??;
        }
        check(events.seen.contains("text/event-stream"), || {
            format!("GET {path}: {}", events.seen)
        })?;
        Ok(events)
    }

    /// Reads what is there (at least one byte); an error at the end of the stream.
    async fn next_chunk(&mut self) -> Result<(), String> {
        let mut buf = [0u8; 4096];
        let n = self
            .stream
            .read(&mut buf)
            .await
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err(format!("the event stream ended; it had: {}", self.seen));
        }
        self.seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        Ok(())
    }

    /// Waits for an event line `event` whose data line contains `data`; consumes up to it.
    async fn wait_for(&mut self, event: &str, data: &str) -> TestResult {
        let until = Instant::now() + DEADLINE;
        loop {
            if let Some(at) = self.seen.find(event) {
                let rest = &self.seen[at..];
                if let Some(end) = rest.find("\n\n") {
                    let block = rest[..end].to_string();
                    self.seen = rest[end..].to_string();
                    if block.contains(data) {
                        return Ok(());
                    }
                    continue;
                }
            }
            timeout(
                until.saturating_duration_since(Instant::now()),
                self.next_chunk(),
            )
            .await
            .map_err(|_| {
                format!(
                    "no {event} with {data} within {DEADLINE:?}; seen: {}",
                    self.seen
                )
            })??;
        }
    }

    /// Waits for the server to end the stream.
    async fn wait_end(&mut self) -> TestResult {
        let until = Instant::now() + DEADLINE;
        loop {
            match timeout(
                until.saturating_duration_since(Instant::now()),
                self.next_chunk(),
            )
            .await
            {
                Err(_) => return Err(format!("the event stream is still open after {DEADLINE:?}")),
                Ok(Err(_)) => return Ok(()),
                Ok(Ok(())) => {}
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The JSON

fn array(v: &Value) -> Vec<Value> {
    v.as_array().cloned().unwrap_or_default()
}

fn up_nodes(snap: &Value) -> Vec<String> {
    array(&snap["nodes"])
        .iter()
        .filter(|n| n["state"] == "up")
        .filter_map(|n| n["name"].as_str().map(String::from))
        .collect()
}

fn entry(snap: &Value, name: &str) -> Result<Value, String> {
    array(&snap["nodes"])
        .into_iter()
        .find(|n| n["name"] == name)
        .ok_or_else(|| format!("{name} is not listed: {snap}"))
}

fn check(ok: bool, what: impl FnOnce() -> String) -> TestResult {
    if ok {
        Ok(())
    } else {
        Err(what())
    }
}

// ---------------------------------------------------------------------------------------
// Headless chromium through chromedriver

fn browser_available() -> Result<(), String> {
    for (binary, package) in [
        ("chromium", "chromium"),
        ("chromedriver", "chromium-driver"),
    ] {
        let found = std::process::Command::new(binary)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            return Err(format!(
                "{binary} is not installed (Debian: apt-get install -y chromium chromium-driver; {package} provides it)"
            ));
        }
    }
    Ok(())
}

struct Browser {
    driver: Child,
    client: fantoccini::Client,
    profile: PathBuf,
}

impl Browser {
    async fn start() -> Result<Browser, String> {
        let mut driver = Command::new("chromedriver")
            .arg("--port=0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start chromedriver: {e}"))?;
        let mut out = driver.stdout.take().ok_or("no stdout")?;
        // "ChromeDriver was started successfully on port 36763."
        let port = timeout(DEADLINE, async {
            let mut seen = String::new();
            let mut buf = [0u8; 1024];
            loop {
                let n = out.read(&mut buf).await.map_err(|e| e.to_string())?;
                if n == 0 {
                    return Err(format!("chromedriver exited: {seen}"));
                }
                seen.push_str(&String::from_utf8_lossy(&buf[..n]));
                if let Some(rest) = seen.split("successfully on port ").nth(1) {
                    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                    if rest.len() > digits.len() && !digits.is_empty() {
                        return digits.parse::<u16>().map_err(|e| e.to_string());
                    }
                }
            }
        })
        .await
        .map_err(|_| "chromedriver did not say its port".to_string())??;
        // Keep draining its stdout so it never blocks on a full pipe.
        tokio::spawn(async move {
            let mut sink = tokio::io::sink();
            let _ = tokio::io::copy(&mut out, &mut sink).await;
        });
        static PROFILES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let profile = std::env::temp_dir().join(format!(
            "nodus-web-test-{}-{}",
            std::process::id(),
            PROFILES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    format!("--user-data-dir={}", profile.display()),
                ],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = timeout(
            DEADLINE,
            fantoccini::ClientBuilder::new(connector)
                .capabilities(caps)
                .connect(&format!("http://127.0.0.1:{port}")),
        )
        .await
        .map_err(|_| "chromium did not start in time".to_string())?
        .map_err(|e| format!("cannot start chromium through chromedriver: {e}"))?;
        Ok(Browser {
            driver,
            client,
            profile,
        })
    }

    async fn script(&self, js: &str) -> Result<Value, String> {
        timeout(DEADLINE, self.client.execute(js, vec![]))
            .await
            .map_err(|_| format!("the script did not return: {js}"))?
            .map_err(|e| format!("script {js}: {e}"))
    }

    /// Polls the page (not reloading it) until `check` holds for what `js` returns.
    async fn wait_for(
        &self,
        what: &str,
        js: &str,
        deadline: Duration,
        check: impl Fn(&Value) -> bool,
    ) -> Result<Value, String> {
        let until = Instant::now() + deadline;
        loop {
            let value = self.script(js).await?;
            if check(&value) {
                return Ok(value);
            }
            if Instant::now() >= until {
                return Err(format!("{what}: not within {deadline:?}; last {value}"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await; // a DOM poll's period
        }
    }

    async fn wait_up_nodes(&self, nodes: &[&str], what: &str, deadline: Duration) -> TestResult {
        let js = "return Array.from(document.querySelectorAll('#nodes tr[data-state=\"up\"]')).map(r => r.dataset.node)";
        let want = serde_json::json!(nodes);
        self.wait_for(what, js, deadline, |v| *v == want)
            .await
            .map(drop)
    }

    async fn close(mut self) {
        let _ = timeout(DEADLINE, self.client.clone().close()).await;
        let _ = self.driver.kill().await;
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
