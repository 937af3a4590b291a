//! Seed 003 as CI runs it: `examples/web_cluster` as three processes, each in its own Linux
//! network namespace, finding each other through a DNS server this test runs, and the
//! status page in headless chromium against one of them.
//!
//! The network: a "switch" namespace holding a bridge, three hosts `10.78.N.1..=3` on it
//! (one node each), and a fourth host, the "client" `10.78.N.4`, where the test itself runs
//! the DNS server, its HTTP requests and the browser. The test process re-executes itself
//! in the client namespace (`ip netns exec`) for that part: a process joins a namespace only
//! by being started in it, and nothing is added to the machine's own network. The
//! namespaces are named after this process's id and removed at the end, also when the test
//! fails (`Lab`'s `Drop`, which first kills whatever still runs in them).
//!
//! Each node is configured through its environment only, as on Kubernetes
//! (`examples/web_cluster/k8s.yaml`): `RELEASE_NODE=app@10.78.N.i`, `RELEASE_COOKIE`, the
//! `kubernetes_dns` strategy on the service `web-cluster-nodes.default.svc.cluster.local.`,
//! and `NODUS_CLUSTER_DNS_NAMESERVERS` pointing the resolver at the test's DNS server (the
//! client's address, a port from the OS), whose A records for the service are the three
//! hosts' addresses. No node is told of another in any other way.
//!
//! - `dns_trio_in_namespaces_meshes`: each node's `/status/api/nodes` lists the three up
//!   (so each found the two others by DNS: the server answered queries) with topology
//!   `kubernetes_dns`; one node is killed (SIGKILL) and the two others show it down.
//! - `browser_against_dns_trio_in_namespaces`: headless chromium (through chromedriver, in
//!   the client namespace) loads one node's status page over the bridge: three nodes up;
//!   another node is killed; the same page, not reloaded, shows two.
//!
//! Namespaces need root and iproute2's `ip`; the browser needs Debian's `chromium` and
//! `chromium-driver`. Without them a test is reported *ignored* with the reason (this binary
//! has its own `main` on libtest-mimic). Every wait is bounded. `cargo test` builds the
//! example first; alone: `cargo build --features status --example web_cluster`.

use std::{
    net::{Ipv4Addr, SocketAddr},
    path::PathBuf,
    process::Stdio,
    sync::{Arc, Mutex, OnceLock, PoisonError},
    time::Duration,
};

use libtest_mimic::{Arguments, Completion, Failed, Trial};
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
/// The bound on the whole part run in the client namespace.
const INNER_DEADLINE: Duration = Duration::from_secs(150);
/// Set (to the mode, the lab's prefix and subnet) when this binary runs as the test's part
/// in the client namespace.
const INNER_VAR: &str = "NODUS_WEB_NETNS_INNER";
/// The headless service the nodes poll, as in `examples/web_cluster/k8s.yaml`.
const SERVICE: &str = "web-cluster-nodes.default.svc.cluster.local.";
/// The nodes' basename: `app@<ip>`.
const APP: &str = "app";
/// Each node's HTTP port (on its own host's address).
const HTTP_PORT: u16 = 4000;

type TestResult = Result<(), String>;

/// What the part in the client namespace does.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    /// The mesh by DNS, and a node killed, over HTTP.
    Mesh,
    /// The same mesh, then the status page in chromium.
    Browser,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Mesh => "mesh",
            Mode::Browser => "browser",
        }
    }
}

fn main() {
    if let Ok(spec) = std::env::var(INNER_VAR) {
        // This process is the test's part in the client namespace.
        let code = match inner_main(&spec) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("web_netns (in the client namespace): {e}");
                1
            }
        };
        std::process::exit(code);
    }
    let args = Arguments::from_args();
    let trials = vec![
        Trial::ignorable_test("dns_trio_in_namespaces_meshes", || {
            if let Err(reason) = namespaces_available() {
                return Ok(Completion::ignored_with(reason));
            }
            outer(Mode::Mesh, "m", 1)
                .map(|()| Completion::Completed)
                .map_err(Failed::from)
        }),
        Trial::ignorable_test("browser_against_dns_trio_in_namespaces", || {
            if let Err(reason) = namespaces_available().and_then(|()| browser_available()) {
                return Ok(Completion::ignored_with(reason));
            }
            outer(Mode::Browser, "b", 2)
                .map(|()| Completion::Completed)
                .map_err(Failed::from)
        }),
    ];
    libtest_mimic::run(&args, trials).exit()
}

// ---------------------------------------------------------------------------------------
// In the machine's own namespace: the lab, and this binary re-run in its client namespace

/// Makes the lab, runs this binary in its client namespace with `mode`, reports its output.
fn outer(mode: Mode, tag: &str, subnet: u8) -> TestResult {
    let exe = std::env::current_exe().map_err(|e| format!("current exe: {e}"))?;
    example()?;
    let lab = Lab::new(tag, subnet)?;
    let spec = format!("{}:{}:{}", mode.as_str(), lab.prefix, subnet);
    let mut child = std::process::Command::new("ip")
        .args(["netns", "exec", &lab.namespace(CLIENT)])
        .arg(&exe)
        .env(INNER_VAR, spec)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {} in the client namespace: {e}", exe.display()))?;
    let (Some(mut out), Some(mut err)) = (child.stdout.take(), child.stderr.take()) else {
        return Err("no pipes to the client namespace's process".into());
    };
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut out, &mut text);
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut text);
        text
    });
    let until = std::time::Instant::now() + INNER_DEADLINE;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if std::time::Instant::now() < until => {
                // Polling interval of a bounded wait for a process to exit.
                std::thread::sleep(Duration::from_millis(50));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    // The lab's nodes die with the namespaces (Lab's Drop), which also closes the pipes.
    drop(lab);
    let out = out.join().unwrap_or_default();
    let err = err.join().unwrap_or_default();
    // The figures the part printed.
    print!("{out}");
    match status {
        Some(status) if status.success() => Ok(()),
        Some(status) => Err(format!(
            "the part in the client namespace failed ({status}):\n{err}"
        )),
        None => Err(format!(
            "the part in the client namespace did not finish within {INNER_DEADLINE:?}:\n{err}"
        )),
    }
}

/// Whether this process can make network namespaces, asked once: by making one.
fn namespaces_available() -> Result<(), String> {
    static AVAILABLE: OnceLock<Result<(), String>> = OnceLock::new();
    AVAILABLE
        .get_or_init(|| {
            let probe = format!("nwt{}-probe", std::process::id());
            ip(&["netns", "add", &probe]).map_err(|e| {
                format!("cannot make network namespaces here (needs root and iproute2's `ip`): {e}")
            })?;
            ip(&["netns", "del", &probe])
                .map(drop)
                .map_err(|e| format!("made namespace {probe} but cannot delete it: {e}"))
        })
        .clone()
}

/// Runs `ip args`; its stdout, or its stderr in the error.
fn ip(args: &[&str]) -> Result<String, String> {
    let out = std::process::Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("`ip {}`: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`ip {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The client host: the DNS server, the HTTP requests and the browser.
const CLIENT: usize = 4;

/// A switch namespace with a bridge, and hosts 1..=4 on it (`10.78.<subnet>.<i>/24`).
/// Dropping it kills what runs in its namespaces and removes them.
struct Lab {
    prefix: String,
    /// The namespaces made so far: the switch, then the hosts.
    namespaces: Vec<String>,
}

impl Lab {
    fn new(tag: &str, subnet: u8) -> Result<Lab, String> {
        let prefix = format!("nwt{}{tag}", std::process::id());
        let mut lab = Lab {
            prefix,
            namespaces: Vec::new(),
        };
        let switch = format!("{}-sw", lab.prefix);
        ip(&["netns", "add", &switch])?;
        lab.namespaces.push(switch.clone());
        ip(&["-n", &switch, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &switch, "link", "set", "br0", "up"])?;
        for i in 1..=CLIENT {
            let host = lab.namespace(i);
            ip(&["netns", "add", &host])?;
            lab.namespaces.push(host.clone());
            let port = format!("p{i}");
            ip(&[
                "-n", &switch, "link", "add", &port, "type", "veth", "peer", "name", "eth0",
                "netns", &host,
            ])?;
            ip(&["-n", &switch, "link", "set", &port, "master", "br0", "up"])?;
            let addr = format!("{}/24", host_ip(subnet, i));
            ip(&["-n", &host, "addr", "add", &addr, "dev", "eth0"])?;
            ip(&["-n", &host, "link", "set", "eth0", "up"])?;
            ip(&["-n", &host, "link", "set", "lo", "up"])?;
        }
        Ok(lab)
    }

    /// Host `i`'s namespace.
    fn namespace(&self, i: usize) -> String {
        namespace(&self.prefix, i)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in self.namespaces.iter().rev() {
            // What still runs there was started by this test (a namespace with a process in
            // it outlives its name): killed, by pid.
            if let Ok(pids) = ip(&["netns", "pids", ns]) {
                for pid in pids.split_whitespace() {
                    let _ = std::process::Command::new("kill")
                        .args(["-KILL", pid])
                        .stderr(Stdio::null())
                        .status();
                }
            }
            if let Err(e) = ip(&["netns", "del", ns]) {
                eprintln!("web_netns cleanup: {e}");
            }
        }
    }
}

fn namespace(prefix: &str, i: usize) -> String {
    format!("{prefix}-{i}")
}

fn host_ip(subnet: u8, i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 78, subnet, i as u8)
}

fn example() -> Result<PathBuf, String> {
    nodus::testing::example_binary("web_cluster").ok_or_else(|| {
        "examples/web_cluster is not built: run `cargo build --features status --example web_cluster`".to_string()
    })
}

// ---------------------------------------------------------------------------------------
// In the client namespace

fn inner_main(spec: &str) -> TestResult {
    let mut parts = spec.split(':');
    let (Some(mode), Some(prefix), Some(subnet), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(format!("{INNER_VAR}={spec:?}: expected mode:prefix:subnet"));
    };
    let mode = match mode {
        "mesh" => Mode::Mesh,
        "browser" => Mode::Browser,
        other => return Err(format!("{INNER_VAR}: unknown mode {other:?}")),
    };
    let subnet: u8 = subnet
        .parse()
        .map_err(|e| format!("{INNER_VAR}: subnet {subnet:?}: {e}"))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .map_err(|e| format!("no runtime: {e}"))?;
    rt.block_on(async {
        timeout(INNER_DEADLINE - DEADLINE, inner(mode, prefix, subnet))
            .await
            .map_err(|_| format!("not finished within {:?}", INNER_DEADLINE - DEADLINE))?
    })
}

async fn inner(mode: Mode, prefix: &str, subnet: u8) -> TestResult {
    let dns = dns_server::DnsServer::start(SocketAddr::from((host_ip(subnet, CLIENT), 0))).await?;
    let ips: Vec<Ipv4Addr> = (1..=3).map(|i| host_ip(subnet, i)).collect();
    dns.set_a(SERVICE, &ips)?;
    let mut trio = Trio::start(prefix, subnet, dns.addr()).await?;
    let result = mesh_then(mode, &mut trio, &dns, &ips).await;
    trio.stop().await;
    dns.shutdown().await;
    result
}

/// Waits for the mesh, checks it came from DNS, then runs `mode`'s part.
async fn mesh_then(
    mode: Mode,
    trio: &mut Trio,
    dns: &dns_server::DnsServer,
    ips: &[Ipv4Addr],
) -> TestResult {
    let started = Instant::now();
    trio.wait_mesh().await?;
    println!(
        "web_netns {}: the three nodes listed each other {} ms after they served, through {} DNS answers",
        mode.as_str(),
        started.elapsed().as_millis(),
        dns.answered()
    );
    // Each node asked the DNS server (from its own host), as nothing else names its peers.
    let askers = dns.askers();
    check(ips.iter().all(|ip| askers.contains(&(*ip).into())), || {
        format!("not every node asked the DNS server; queries came from {askers:?}")
    })?;
    for http in &trio.http {
        let snap = nodes_json(*http, "/status/api/nodes").await?;
        check(
            snap["cluster"]["topologies"][0]["strategy"] == "kubernetes_dns",
            || format!("{http}'s cluster: {}", snap["cluster"]),
        )?;
    }
    match mode {
        Mode::Mesh => kill_one_over_http(trio).await,
        Mode::Browser => browser(trio).await,
    }
}

/// Kills the third node; the two others' `/status/api/nodes` show it down.
async fn kill_one_over_http(trio: &mut Trio) -> TestResult {
    let gone = trio.names[2].clone();
    let killed = Instant::now();
    signal(&mut trio.procs[2], "KILL").await?;
    for http in &trio.http[..2] {
        let until = Instant::now() + DEADLINE;
        loop {
            let snap = nodes_json(*http, "/status/api/nodes").await?;
            let mut up = up_nodes(&snap);
            up.sort();
            let state = entry(&snap, &gone)
                .map(|e| e["state"].clone())
                .unwrap_or_default();
            if up == trio.names[..2] && state == "down" {
                break;
            }
            if Instant::now() >= until {
                return Err(format!(
                    "{http} still does not show {gone} down after {DEADLINE:?}: {snap}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await; // an HTTP poll's period
        }
    }
    println!(
        "web_netns mesh: both others showed {gone} down {} ms after its SIGKILL",
        killed.elapsed().as_millis()
    );
    Ok(())
}

async fn browser(trio: &mut Trio) -> TestResult {
    let browser = Browser::start().await?;
    let result = async {
        let client = &browser.client;
        let url = format!("http://{}/status", trio.http[0]);
        timeout(DEADLINE, client.goto(&url))
            .await
            .map_err(|_| "the page did not load in time".to_string())?
            .map_err(|e| format!("goto {url}: {e}"))?;
        let all: Vec<&str> = trio.names.iter().map(String::as_str).collect();
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
        let killed = Instant::now();
        signal(&mut trio.procs[2], "KILL").await?;
        browser
            .wait_up_nodes(&all[..2], "two nodes up after the kill", UPDATE_DEADLINE)
            .await?;
        println!(
            "web_netns browser: the page showed two nodes {} ms after the SIGKILL, not reloaded",
            killed.elapsed().as_millis()
        );
        let mark = browser.script("return window.__nodusMark || null").await?;
        check(mark == "same page", || {
            format!("the page was reloaded (mark {mark})")
        })?;
        let js = format!(
            "return document.querySelector('#nodes tr[data-node=\"{}\"]').dataset.state",
            all[2]
        );
        let state = browser.script(&js).await?;
        check(state == "down", || format!("{}'s row: {state}", all[2]))?;
        Ok(())
    }
    .await;
    browser.close().await;
    result
}

// ---------------------------------------------------------------------------------------
// Three web_cluster processes, one per host namespace

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
    /// The nodes' names, sorted (`app@10.78.N.1..=3`).
    names: Vec<String>,
    http: Vec<SocketAddr>,
}

impl Trio {
    /// One process per host, configured from env only; returns once each serves HTTP.
    async fn start(prefix: &str, subnet: u8, dns: SocketAddr) -> Result<Trio, String> {
        let binary = example()?;
        let mut trio = Trio {
            procs: Vec::new(),
            names: Vec::new(),
            http: Vec::new(),
        };
        for i in 1..=3 {
            let ip = host_ip(subnet, i);
            let name = format!("{APP}@{ip}");
            let proc = spawn(&binary, &namespace(prefix, i), &name, ip, dns)?;
            trio.procs.push(proc);
            trio.names.push(name);
            trio.http.push(SocketAddr::from((ip, HTTP_PORT)));
        }
        for proc in &trio.procs {
            if let Err(e) = proc.wait_line("listening on http://").await {
                trio.stop().await;
                return Err(e);
            }
        }
        Ok(trio)
    }

    /// Kills the nodes still running and reaps them (bounded), so that none is left over.
    async fn stop(&mut self) {
        for proc in &mut self.procs {
            let _ = proc.child.start_kill();
            let _ = timeout(DEADLINE, proc.child.wait()).await;
        }
    }

    /// Waits until each node's `/status/api/nodes` lists the three up.
    async fn wait_mesh(&self) -> TestResult {
        let until = Instant::now() + DEADLINE;
        for (http, proc) in self.http.iter().zip(&self.procs) {
            loop {
                let snap = nodes_json(*http, "/status/api/nodes").await?;
                let mut up = up_nodes(&snap);
                up.sort();
                if up == self.names {
                    break;
                }
                if Instant::now() >= until {
                    return Err(format!(
                        "{} does not list the three within {DEADLINE:?}: {snap}\nits stderr:\n{}",
                        proc.name,
                        proc.stderr()
                    ));
                }
                tokio::time::sleep(Duration::from_millis(100)).await; // an HTTP poll's period
            }
        }
        Ok(())
    }
}

fn spawn(
    binary: &PathBuf,
    namespace: &str,
    name: &str,
    ip: Ipv4Addr,
    dns: SocketAddr,
) -> Result<Proc, String> {
    // `ip netns exec` execs the node: the child's pid is the node's.
    let mut child = Command::new("ip")
        .args(["netns", "exec", namespace])
        .arg(binary)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RELEASE_NODE", name)
        .env("RELEASE_COOKIE", "webnetnscookie")
        .env("NODUS_TICK_TIME", "10")
        .env("NODUS_CLUSTER_STRATEGY", "kubernetes_dns")
        .env("NODUS_CLUSTER_DNS_SERVICE", SERVICE)
        .env("NODUS_CLUSTER_DNS_APPLICATION_NAME", APP)
        .env("NODUS_CLUSTER_DNS_NAMESERVERS", dns.to_string())
        .env("NODUS_CLUSTER_POLL_INTERVAL_MS", "200")
        .env("PORT", HTTP_PORT.to_string())
        .env("HTTP_IP", ip.to_string())
        .env("DRAIN_TIMEOUT_MS", "1000")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {} in {namespace}: {e}", binary.display()))?;
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
// The DNS server: UDP on the client's address, A records the test sets

mod dns_server {
    use std::{
        collections::{BTreeSet, HashMap},
        net::{IpAddr, Ipv4Addr, SocketAddr},
        sync::{
            atomic::{AtomicU64, Ordering},
            Arc, Mutex, PoisonError,
        },
    };

    use hickory_server::{
        authority::MessageResponseBuilder,
        proto::{
            op::{Header, ResponseCode},
            rr::{rdata::A, Name, RData, Record, RecordType},
        },
        server::{Request, RequestHandler, ResponseHandler, ResponseInfo},
        ServerFuture,
    };

    /// The records of each (lower-case owner name, type).
    type Records = HashMap<(String, RecordType), Vec<Record>>;

    #[derive(Clone, Default)]
    struct Zone {
        records: Arc<Mutex<Records>>,
        answered: Arc<AtomicU64>,
        askers: Arc<Mutex<BTreeSet<IpAddr>>>,
    }

    #[async_trait::async_trait]
    impl RequestHandler for Zone {
        async fn handle_request<R: ResponseHandler>(
            &self,
            request: &Request,
            mut response: R,
        ) -> ResponseInfo {
            let mut header = Header::response_from_request(request.header());
            header.set_authoritative(true);
            let Ok(info) = request.request_info() else {
                header.set_response_code(ResponseCode::FormErr);
                return header.into();
            };
            let key = (
                info.query.name().to_string().to_ascii_lowercase(),
                info.query.query_type(),
            );
            let answers = self
                .records
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&key)
                .cloned()
                .unwrap_or_default();
            let message = MessageResponseBuilder::from_message_request(request).build(
                header,
                answers.iter(),
                [],
                [],
                [],
            );
            let sent = response.send_response(message).await;
            self.answered.fetch_add(1, Ordering::SeqCst);
            self.askers
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(request.src().ip());
            sent.unwrap_or_else(|_| header.into())
        }
    }

    /// The running server and its records.
    pub struct DnsServer {
        zone: Zone,
        server: ServerFuture<Zone>,
        addr: SocketAddr,
    }

    impl DnsServer {
        /// Serves on `addr` (port 0: one from the OS).
        pub async fn start(addr: SocketAddr) -> Result<DnsServer, String> {
            let socket = tokio::net::UdpSocket::bind(addr)
                .await
                .map_err(|e| format!("the DNS server cannot bind {addr}: {e}"))?;
            let addr = socket.local_addr().map_err(|e| e.to_string())?;
            let zone = Zone::default();
            let mut server = ServerFuture::new(zone.clone());
            server.register_socket(socket);
            Ok(DnsServer { zone, server, addr })
        }

        /// Where the nodes' resolvers send their queries.
        pub fn addr(&self) -> SocketAddr {
            self.addr
        }

        /// Sets the A records of `owner` (TTL 0).
        pub fn set_a(&self, owner: &str, ips: &[Ipv4Addr]) -> Result<(), String> {
            let name = Name::from_ascii(owner).map_err(|e| format!("{owner}: {e}"))?;
            let records = ips
                .iter()
                .map(|ip| Record::from_rdata(name.clone(), 0, RData::A(A(*ip))))
                .collect();
            self.zone
                .records
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert((owner.to_ascii_lowercase(), RecordType::A), records);
            Ok(())
        }

        /// How many queries it has answered.
        pub fn answered(&self) -> u64 {
            self.zone.answered.load(Ordering::SeqCst)
        }

        /// The addresses queries came from.
        pub fn askers(&self) -> BTreeSet<IpAddr> {
            self.zone
                .askers
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
        }

        pub async fn shutdown(mut self) {
            let _ = tokio::time::timeout(
                std::time::Duration::from_secs(5),
                self.server.shutdown_gracefully(),
            )
            .await;
        }
    }
}

// ---------------------------------------------------------------------------------------
// HTTP over the bridge, by hand (the requests are one line; nothing to pull a client in for)

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
        format!("GET {path} on {addr} answered {code}: {body}")
    })?;
    serde_json::from_str(&body).map_err(|e| format!("GET {path}: not JSON ({e}): {body}"))
}

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
// Headless chromium through chromedriver, both in the client namespace

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
        let profile =
            std::env::temp_dir().join(format!("nodus-web-netns-test-{}", std::process::id()));
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

    /// Waits until the page's rows of nodes up are `nodes`, in any order.
    async fn wait_up_nodes(&self, nodes: &[&str], what: &str, deadline: Duration) -> TestResult {
        let js = "return Array.from(document.querySelectorAll('#nodes tr[data-state=\"up\"]')).map(r => r.dataset.node)";
        let mut want: Vec<&str> = nodes.to_vec();
        want.sort_unstable();
        self.wait_for(what, js, deadline, |v| {
            let rows = array(v);
            let mut got: Vec<&str> = rows.iter().filter_map(Value::as_str).collect();
            got.sort_unstable();
            got == want
        })
        .await
        .map(drop)
    }

    async fn close(mut self) {
        let _ = timeout(DEADLINE, self.client.clone().close()).await;
        let _ = self.driver.kill().await;
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
