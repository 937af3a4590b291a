//! Clustering: the node's own mesh (every node learns every other through one ping), and
//! the `Cluster` strategies (`StaticHosts`, `LocalPortMapper`, `Gossip`) on loopback.

use std::time::Duration;

use futures::StreamExt;
use nodus::remote::{
    cluster::{
        Cluster, ClusterConfig, ClusterEvent, Gossip, GossipConfig, Hooks, LocalPortMapper,
        StaticHosts, Topology,
    },
    port_mapper::PortMapperServer,
    ConnectError, Cookie, Node, NodeConfig, Ping,
};
use nodus::{testing::LocalCluster, NodeName};
use tokio::{sync::broadcast, time::Instant};

/// How often a test polls for the state it waits for.
const POLL: Duration = Duration::from_millis(20);

fn config(name: &str, port_mapper: std::net::SocketAddr) -> NodeConfig {
    NodeConfig::sname(name)
        .cookie(Cookie::new("strategies").expect("a valid cookie literal"))
        .port_mapper(port_mapper)
}

/// Polls until every node lists every other one, or `deadline` passes: then the error
/// names, for each node short of the mesh, how many peers it lists and whom it misses.
/// It only looks: it never connects anything itself.
async fn await_full_mesh(nodes: &[Node], deadline: Duration) -> Result<(), String> {
    let until = Instant::now() + deadline;
    loop {
        let mut short = Vec::new();
        for node in nodes {
            let list = node.list();
            if list.len() + 1 < nodes.len() {
                let missing: Vec<String> = nodes
                    .iter()
                    .map(|n| n.name())
                    .filter(|n| *n != node.name() && !list.contains(n))
                    .map(ToString::to_string)
                    .collect();
                short.push(format!(
                    "{} lists {}, misses {missing:?}",
                    node.name(),
                    list.len()
                ));
            }
        }
        if short.is_empty() {
            return Ok(());
        }
        if Instant::now() + POLL > until {
            return Err(short.join("\n"));
        }
        tokio::time::sleep(POLL).await; // the poll interval
    }
}

/// Starts `n` nodes on one private port mapper, makes node i ping node i-1 (all at once),
/// and returns how long the full mesh took to form.
async fn one_mesh(run: usize, n: usize, deadline: Duration) -> Result<Duration, String> {
    let epmd = PortMapperServer::bind(([127, 0, 0, 1], 0).into())
        .await
        .map_err(|e| e.to_string())?
        .spawn();
    let mut nodes = Vec::with_capacity(n);
    for i in 0..n {
        let node = Node::start(config(&format!("m{run}_{i}@localhost"), epmd.local_addr()))
            .await
            .map_err(|e| e.to_string())?;
        nodes.push(node);
    }
    let start = Instant::now();
    let pings: Vec<_> = (1..n)
        .map(|i| {
            let (node, prev) = (nodes[i].clone(), nodes[i - 1].name().to_string());
            tokio::spawn(async move { node.ping(&prev).await })
        })
        .collect();
    for ping in pings {
        let answer = ping.await.map_err(|e| e.to_string())?;
        if answer != Ping::Pong {
            return Err(format!("a chain ping was {answer:?}"));
        }
    }
    let meshed = await_full_mesh(&nodes, deadline).await;
    let took = start.elapsed();
    for node in nodes {
        node.shutdown().await;
    }
    epmd.shutdown().await;
    meshed.map(|()| took)
}

/// The mesh always converges: 100 nodes that each know only one other form a full mesh,
/// every time. Bounded: each run must mesh within 30 s (a run took 3.5-10.5 s on 2 cores),
/// and the whole test is cut at 110 s (it takes about 40 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_of_100_nodes_always_becomes_a_full_mesh() {
    const NODES: usize = 100;
    const RUNS: usize = 6;
    let all = async {
        for run in 0..RUNS {
            match one_mesh(run, NODES, Duration::from_secs(30)).await {
                Ok(took) => eprintln!("run {run}: {NODES} nodes meshed in {took:?}"),
                Err(e) => panic!("run {run}: no full mesh of {NODES} nodes:\n{e}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(110), all)
        .await
        .expect("six meshes of 100 nodes within 110 s");
}

/// How long a clustering test waits for what it expects.
const DEADLINE: Duration = Duration::from_secs(15);

/// Polls `done` until it holds, or panics naming `what` at the deadline.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let until = Instant::now() + DEADLINE;
    while !done() {
        assert!(Instant::now() < until, "{what}: not within {DEADLINE:?}");
        tokio::time::sleep(POLL).await; // the poll interval
    }
}

/// The next event on `events` that `want` accepts, within the deadline.
async fn next_event(
    events: &mut broadcast::Receiver<ClusterEvent>,
    what: &str,
    want: impl Fn(&ClusterEvent) -> bool,
) -> ClusterEvent {
    let wait = async {
        loop {
            match events.recv().await {
                Ok(e) if want(&e) => return e,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("cluster events ended: {e}"),
            }
        }
    };
    tokio::time::timeout(DEADLINE, wait)
        .await
        .unwrap_or_else(|_| panic!("no {what} event within {DEADLINE:?}"))
}

fn name(s: &str) -> NodeName {
    s.parse().expect("a node name literal")
}

#[tokio::test]
async fn static_hosts_connects_a_late_node_and_a_restarted_one() {
    let epmd = PortMapperServer::bind(([127, 0, 0, 1], 0).into())
        .await
        .unwrap()
        .spawn();
    let a = Node::start(config("sa@localhost", epmd.local_addr()))
        .await
        .unwrap();
    let hosts = StaticHosts::new([name("sa@localhost"), name("sb@localhost")])
        .poll_interval(Duration::from_secs(60)); // only backoff and node-down wake it
    let topology = Topology::new("hosts", hosts)
        .backoff(Duration::from_millis(20), Duration::from_millis(200));
    let cluster = Cluster::start(&a, ClusterConfig::new().topology(topology).debug(true))
        .await
        .unwrap();
    let mut events = cluster.events();

    // b is not up yet: the attempt fails and is retried.
    let failed = next_event(&mut events, "ConnectFailed", |e| {
        matches!(e, ClusterEvent::ConnectFailed { .. })
    })
    .await;
    let ClusterEvent::ConnectFailed { node, .. } = failed else {
        unreachable!()
    };
    assert_eq!(node, name("sb@localhost"));

    // b starts late: it joins.
    let b = Node::start(config("sb@localhost", epmd.local_addr()))
        .await
        .unwrap();
    next_event(
        &mut events,
        "Connected",
        |e| matches!(e, ClusterEvent::Connected { node, .. } if *node == name("sb@localhost")),
    )
    .await;
    eventually("a lists b", || a.list() == [name("sb@localhost")]).await;

    // b is killed (it halts: no graceful leave) and restarted under the same name: it
    // rejoins. (A node that left gracefully waits to be seen again: see
    // static_hosts_does_not_redial_a_node_that_left_until_it_registers_anew.)
    b.halt().await;
    eventually("a sees b gone", || a.list().is_empty()).await;
    let b = Node::start(config("sb@localhost", epmd.local_addr()))
        .await
        .unwrap();
    eventually("a lists the restarted b", || {
        a.list() == [name("sb@localhost")]
    })
    .await;
    assert!(cluster.metrics().connects >= 2, "{:?}", cluster.metrics());
    assert!(cluster.metrics().failures >= 1, "{:?}", cluster.metrics());

    cluster.stop();
    b.shutdown().await;
    a.shutdown().await;
    epmd.shutdown().await;
}

#[tokio::test]
async fn local_port_mapper_connects_every_node_the_port_mapper_knows() {
    let epmd = PortMapperServer::bind(([127, 0, 0, 1], 0).into())
        .await
        .unwrap()
        .spawn();
    let mut nodes = Vec::new();
    for i in 0..3 {
        // Without the mesh, so that only the strategy can connect them.
        let cfg = config(&format!("lp{i}@localhost"), epmd.local_addr()).connect_all(false);
        nodes.push(Node::start(cfg).await.unwrap());
    }
    let strategy = LocalPortMapper::new().poll_interval(Duration::from_millis(50));
    let cluster = Cluster::start(
        &nodes[0],
        ClusterConfig::new().topology(Topology::new("local", strategy)),
    )
    .await
    .unwrap();
    eventually("node 0 lists the two others", || nodes[0].list().len() == 2).await;

    // A node registered later is found at a later poll.
    let late = Node::start(config("lp3@localhost", epmd.local_addr()).connect_all(false))
        .await
        .unwrap();
    eventually("node 0 lists the late node", || {
        nodes[0].list().contains(late.name())
    })
    .await;
    assert_eq!(cluster.metrics().connects, 3);

    cluster.stop();
    late.shutdown().await;
    for node in nodes {
        node.shutdown().await;
    }
    epmd.shutdown().await;
}

/// A UDP port for gossip, from the OS (free when asked; the gossip sockets share it).
fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free UDP port from the OS")
}

/// Gossip kept on this host: multicast from the loopback interface with TTL 0.
fn loopback_gossip(port: u16, secret: &str) -> Gossip {
    let mut cfg = GossipConfig::default();
    cfg.port = port;
    cfg.multicast_if = Some(std::net::Ipv4Addr::LOCALHOST);
    cfg.multicast_ttl = 0;
    cfg.secret = Some(secret.into());
    cfg.interval_ms = 200;
    Gossip::new(cfg)
}

#[tokio::test]
async fn gossip_with_one_secret_forms_a_mesh_and_another_secret_stays_out() {
    // A LocalCluster for its private port mapper and per-node log capture; its nodes are
    // not connected to each other until a strategy does it.
    let local = LocalCluster::builder()
        .nodes(4)
        .prefix("gossip")
        .start()
        .await
        .unwrap();
    let port = free_udp_port();
    let mut clusters = Vec::new();
    for i in 0..3 {
        let topology = Topology::new("gossip", loopback_gossip(port, "same secret"));
        clusters.push(
            Cluster::start(
                local.node(i),
                ClusterConfig::new().topology(topology).debug(true),
            )
            .await
            .unwrap(),
        );
    }
    let (outsider, outsider_name) = (local.node(3), local.name(3).clone());
    let other = Topology::new("gossip", loopback_gossip(port, "another secret"));
    let outsider_cluster =
        Cluster::start(outsider, ClusterConfig::new().topology(other).debug(true))
            .await
            .unwrap();
    let mut outsider_events = outsider_cluster.events();

    eventually("the three nodes form a full mesh by gossip alone", || {
        (0..3).all(|i| local.node(i).list().len() == 2)
    })
    .await;
    // The outsider hears their heartbeats and drops them, saying why.
    let dropped = next_event(&mut outsider_events, "Dropped", |e| {
        matches!(e, ClusterEvent::Dropped { .. })
    })
    .await;
    let ClusterEvent::Dropped { why, .. } = dropped else {
        unreachable!()
    };
    assert!(why.contains("another secret"), "{why}");
    assert!(outsider.list().is_empty(), "{:?}", outsider.list());
    for i in 0..3 {
        assert!(!local.node(i).list().contains(&outsider_name));
    }
    assert!(clusters.iter().all(|c| c.metrics().dropped > 0));
    assert_eq!(outsider_cluster.metrics().connects, 0);
    // ... and its log says why, at debug.
    assert!(
        local.logs_captured(),
        "the cluster's log layer is not installed: logs cannot be checked"
    );
    let logs = local.logs(3);
    assert!(
        logs.iter().any(|l| l.starts_with("DEBUG")
            && l.contains("dropped")
            && l.contains("authentication failed")),
        "{logs:?}"
    );

    drop(clusters);
    drop(outsider_cluster);
    local.shutdown().await;
}

#[tokio::test]
async fn hooks_decide_how_to_connect_and_what_counts_as_connected() {
    let epmd = PortMapperServer::bind(([127, 0, 0, 1], 0).into())
        .await
        .unwrap()
        .spawn();
    let a = Node::start(config("ha@localhost", epmd.local_addr()).connect_all(false))
        .await
        .unwrap();
    let mut others = Vec::new();
    for n in ["hb@localhost", "hc@localhost"] {
        others.push(Node::start(config(n, epmd.local_addr())).await.unwrap());
    }
    // A connect hook that refuses hc, as libcluster's `:ignored`.
    let hooks = Hooks::default().connect(|node, peer| {
        Box::pin(async move {
            if peer.name() == "hc" {
                Err(ConnectError::NotAlive)
            } else {
                node.connect(&peer).await
            }
        })
    });
    let hosts = StaticHosts::new([name("hb@localhost"), name("hc@localhost")]);
    let topology = Topology::new("hooked", hosts)
        .hooks(hooks)
        .backoff(Duration::from_millis(20), Duration::from_millis(100));
    let cluster = Cluster::start(&a, ClusterConfig::new().topology(topology))
        .await
        .unwrap();
    // A second cluster on the same node starts too (each has its own guard).
    let second = Cluster::start(&a, ClusterConfig::new()).await.unwrap();
    let mut events = cluster.event_stream();
    let refused = tokio::time::timeout(DEADLINE, async {
        while let Some(event) = events.next().await {
            if let ClusterEvent::ConnectFailed { node, reason, .. } = event {
                return (node, reason);
            }
        }
        panic!("the event stream ended");
    })
    .await
    .expect("a ConnectFailed event within the deadline");
    assert_eq!(refused.0, name("hc@localhost"));
    assert!(refused.1.contains("shut down"), "{}", refused.1);
    eventually("a lists hb only", || a.list() == [name("hb@localhost")]).await;

    cluster.stop();
    second.stop();
    for node in others {
        node.shutdown().await;
    }
    a.shutdown().await;
    epmd.shutdown().await;
}

#[tokio::test]
async fn a_gossip_socket_that_cannot_open_is_an_error_naming_what_to_change() {
    let epmd = PortMapperServer::bind(([127, 0, 0, 1], 0).into())
        .await
        .unwrap()
        .spawn();
    let node = Node::start(config("ge@localhost", epmd.local_addr()))
        .await
        .unwrap();
    let mut cfg = GossipConfig::default();
    cfg.port = free_udp_port();
    cfg.multicast_if = Some("192.0.2.123".parse().unwrap()); // TEST-NET-1: no such interface
    cfg.multicast_ttl = 0;
    let err = Cluster::start(
        &node,
        ClusterConfig::new().topology(Topology::new("g", Gossip::new(cfg))),
    )
    .await
    .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("multicast_if"), "{text}");
    node.shutdown().await;
    epmd.shutdown().await;
}

#[tokio::test]
async fn the_cluster_stops_with_its_node() {
    let epmd = PortMapperServer::bind(([127, 0, 0, 1], 0).into())
        .await
        .unwrap()
        .spawn();
    let node = Node::start(config("st@localhost", epmd.local_addr()))
        .await
        .unwrap();
    let hosts = StaticHosts::new([name("nobody@localhost")]);
    let topology =
        Topology::new("hosts", hosts).backoff(Duration::from_millis(10), Duration::from_millis(10));
    let cluster = Cluster::start(&node, ClusterConfig::new().topology(topology))
        .await
        .unwrap();
    let mut events = cluster.events();
    next_event(&mut events, "ConnectFailed", |e| {
        matches!(e, ClusterEvent::ConnectFailed { .. })
    })
    .await;
    node.clone().shutdown().await;
    // Once stopped, no more attempts: the failure count stops growing.
    let settle = Instant::now() + Duration::from_millis(200);
    let mut last = cluster.metrics().failures;
    let mut stable_since = Instant::now();
    while Instant::now() < settle + DEADLINE {
        tokio::time::sleep(POLL).await; // the poll interval
        let now = cluster.metrics().failures;
        if now != last {
            last = now;
            stable_since = Instant::now();
        } else if stable_since.elapsed() > Duration::from_millis(300) {
            break;
        }
    }
    assert!(
        stable_since.elapsed() > Duration::from_millis(300),
        "still attempting after the node stopped"
    );
    // A stopped node takes no new cluster.
    let again = Cluster::start(&node, ClusterConfig::new()).await;
    assert!(
        matches!(
            again,
            Err(nodus::remote::cluster::ClusterError::NodeStopped)
        ),
        "{again:?}"
    );
    drop(cluster);
    epmd.shutdown().await;
}

// ----- DNS strategies, against a DNS server the test runs on loopback -----

/// A DNS server on an OS-chosen UDP port of 127.0.0.1 whose records the test sets, and
/// which can be told to answer truncated (the TC bit, with only the first record). It
/// serves UDP only: the resolver's retry of a truncated answer over TCP fails, as when a
/// nameserver truncates and its TCP is blocked.
mod dns_server {
    use std::{
        collections::HashMap,
        net::{Ipv4Addr, SocketAddr},
        sync::{
            atomic::{AtomicBool, AtomicU64, Ordering},
            Arc, Mutex,
        },
    };

    use hickory_server::{
        authority::MessageResponseBuilder,
        proto::{
            op::{Header, ResponseCode},
            rr::{
                rdata::{A, SRV},
                Name, RData, Record, RecordType,
            },
        },
        server::{Request, RequestHandler, ResponseHandler, ResponseInfo},
        ServerFuture,
    };

    /// The records of each (lower-case owner name, type).
    type Records = HashMap<(String, RecordType), Vec<Record>>;

    #[derive(Clone, Default)]
    struct Zone {
        records: Arc<Mutex<Records>>,
        truncate: Arc<AtomicBool>,
        answered: Arc<AtomicU64>,
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
            let mut answers = self
                .records
                .lock()
                .expect("the zone's lock")
                .get(&key)
                .cloned()
                .unwrap_or_default();
            if self.truncate.load(Ordering::SeqCst) {
                header.set_truncated(true);
                answers.truncate(1);
            }
            let message = MessageResponseBuilder::from_message_request(request).build(
                header,
                answers.iter(),
                [],
                [],
                [],
            );
            let sent = response.send_response(message).await;
            self.answered.fetch_add(1, Ordering::SeqCst);
            sent.unwrap_or_else(|_| header.into())
        }
    }

    /// The running server and its records.
    pub struct DnsServer {
        zone: Zone,
        server: ServerFuture<Zone>,
        addr: SocketAddr,
    }

    fn name(s: &str) -> Name {
        Name::from_ascii(s).expect("a DNS name literal")
    }

    impl DnsServer {
        pub async fn start() -> DnsServer {
            let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
                .await
                .expect("a UDP port on 127.0.0.1 from the OS");
            let addr = socket.local_addr().expect("the socket's address");
            let zone = Zone::default();
            let mut server = ServerFuture::new(zone.clone());
            server.register_socket(socket);
            DnsServer { zone, server, addr }
        }

        /// Where the resolver should send its queries.
        pub fn addr(&self) -> SocketAddr {
            self.addr
        }

        fn set(&self, owner: &str, kind: RecordType, records: Vec<Record>) {
            self.zone
                .records
                .lock()
                .expect("the zone's lock")
                .insert((owner.to_ascii_lowercase(), kind), records);
        }

        /// Sets the A records of `owner` (TTL 0).
        pub fn set_a(&self, owner: &str, ips: &[Ipv4Addr]) {
            let records = ips
                .iter()
                .map(|ip| Record::from_rdata(name(owner), 0, RData::A(A(*ip))))
                .collect();
            self.set(owner, RecordType::A, records);
        }

        /// Sets the SRV records of `owner` (TTL 0), one per target, port 4369.
        pub fn set_srv(&self, owner: &str, targets: &[&str]) {
            let records = targets
                .iter()
                .map(|t| {
                    let srv = SRV::new(10, 100, 4369, name(t));
                    Record::from_rdata(name(owner), 0, RData::SRV(srv))
                })
                .collect();
            self.set(owner, RecordType::SRV, records);
        }

        /// Answers truncated (TC bit, the first record only) from now on, or not.
        pub fn truncate(&self, on: bool) {
            self.zone.truncate.store(on, Ordering::SeqCst);
        }

        /// How many queries it has answered.
        pub fn answered(&self) -> u64 {
            self.zone.answered.load(Ordering::SeqCst)
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

use dns_server::DnsServer;
use nodus::remote::{
    cluster::{DnsPoll, KubernetesDns, KubernetesDnsSrv},
    port_mapper::PortMapperServerHandle,
    NodeDownReason, NodeEvent,
};
use std::net::Ipv4Addr;

/// Port mappers on 127.0.0.`last` for each of `lasts`, all on one port (a peer's port mapper
/// is looked up on its host at this node's port mapper's port), the port from the OS for
/// the first and tried on the others (a few times, in case another process holds it there).
async fn port_mappers(lasts: &[u8]) -> (u16, Vec<PortMapperServerHandle>) {
    for _ in 0..10 {
        let first = PortMapperServer::bind((Ipv4Addr::new(127, 0, 0, lasts[0]), 0).into())
            .await
            .expect("a port mapper port from the OS")
            .spawn();
        let port = first.local_addr().port();
        let mut handles = vec![first];
        for last in &lasts[1..] {
            match PortMapperServer::bind((Ipv4Addr::new(127, 0, 0, *last), port).into()).await {
                Ok(server) => handles.push(server.spawn()),
                Err(_) => break,
            }
        }
        if handles.len() == lasts.len() {
            return (port, handles);
        }
        for h in handles {
            h.shutdown().await;
        }
    }
    panic!("no port free on every one of 127.0.0.{lasts:?}");
}

/// A node `name@127.0.0.last` (long names: each node has an address of its own on
/// loopback, as pods have), registered with the port mapper on its address, without the
/// mesh (only the strategy connects it).
async fn node_at(name: &str, last: u8, port_mapper_port: u16) -> Node {
    let ip = Ipv4Addr::new(127, 0, 0, last);
    let cfg = NodeConfig::lname(&format!("{name}@{ip}"))
        .cookie(Cookie::new("strategies").expect("a valid cookie literal"))
        .port_mapper((ip, port_mapper_port).into())
        .connect_all(false);
    Node::start(cfg)
        .await
        .expect("a node on its loopback address")
}

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, last)
}

/// Waits until the server has answered `more` queries beyond `from`: that many polls
/// happened (each poll asks A and AAAA).
async fn polls(dns: &DnsServer, from: u64, more: u64) {
    eventually(&format!("{more} more DNS answers"), || {
        dns.answered() >= from + more
    })
    .await;
}

#[tokio::test]
async fn dns_poll_forms_the_cluster_joins_a_new_record_and_prunes_a_removed_one() {
    let dns = DnsServer::start().await;
    let (pm_port, mappers) = port_mappers(&[2, 3, 4]).await;
    let a = node_at("n", 2, pm_port).await;
    let b = node_at("n", 3, pm_port).await;
    let c = node_at("n", 4, pm_port).await;
    dns.set_a("nodus.test.", &[ip(2), ip(3)]);
    let strategy = DnsPoll::new("nodus.test.", "n")
        .nameserver(dns.addr())
        .poll_interval(Duration::from_millis(50));
    let topology = Topology::new("dns", strategy)
        .backoff(Duration::from_millis(20), Duration::from_millis(100));
    let cluster = Cluster::start(&a, ClusterConfig::new().topology(topology).debug(true))
        .await
        .unwrap();
    let mut events = cluster.events();

    eventually("a lists b, from the records", || {
        a.list() == [b.name().clone()]
    })
    .await;
    // A record that appears later joins.
    dns.set_a("nodus.test.", &[ip(2), ip(3), ip(4)]);
    eventually("a lists b and c", || {
        a.list() == [b.name().clone(), c.name().clone()]
    })
    .await;
    // A record that goes away is pruned.
    dns.set_a("nodus.test.", &[ip(2), ip(4)]);
    let pruned = next_event(&mut events, "Pruned", |e| {
        matches!(e, ClusterEvent::Pruned { .. })
    })
    .await;
    assert_eq!(
        pruned,
        ClusterEvent::Pruned {
            topology: "dns".into(),
            node: b.name().clone()
        }
    );
    eventually("a lists c only", || a.list() == [c.name().clone()]).await;
    assert_eq!(cluster.metrics().prunes, 1);

    cluster.stop();
    for node in [a, b, c] {
        node.shutdown().await;
    }
    for m in mappers {
        m.shutdown().await;
    }
    dns.shutdown().await;
}

#[tokio::test]
async fn dns_poll_with_prune_off_keeps_a_node_whose_record_went_away() {
    let dns = DnsServer::start().await;
    let (pm_port, mappers) = port_mappers(&[5, 6]).await;
    let a = node_at("n", 5, pm_port).await;
    let b = node_at("n", 6, pm_port).await;
    dns.set_a("keep.test.", &[ip(5), ip(6)]);
    let strategy = DnsPoll::new("keep.test.", "n")
        .nameserver(dns.addr())
        .poll_interval(Duration::from_millis(50))
        .prune(false);
    let cluster = Cluster::start(
        &a,
        ClusterConfig::new().topology(Topology::new("dns", strategy)),
    )
    .await
    .unwrap();
    eventually("a lists b", || a.list() == [b.name().clone()]).await;
    dns.set_a("keep.test.", &[ip(5)]);
    // Several polls see the answer without b: b stays.
    polls(&dns, dns.answered(), 10).await;
    assert_eq!(a.list(), [b.name().clone()]);
    assert_eq!(cluster.metrics().prunes, 0);

    cluster.stop();
    a.shutdown().await;
    b.shutdown().await;
    for m in mappers {
        m.shutdown().await;
    }
    dns.shutdown().await;
}

#[tokio::test]
async fn a_truncated_dns_answer_never_prunes() {
    let dns = DnsServer::start().await;
    let (pm_port, mappers) = port_mappers(&[7, 8, 9]).await;
    let a = node_at("n", 7, pm_port).await;
    let b = node_at("n", 8, pm_port).await;
    let c = node_at("n", 9, pm_port).await;
    dns.set_a("cut.test.", &[ip(7), ip(8), ip(9)]);
    let strategy = DnsPoll::new("cut.test.", "n")
        .nameserver(dns.addr())
        .poll_interval(Duration::from_millis(50))
        .query_timeout(Duration::from_millis(500));
    let cluster = Cluster::start(
        &a,
        ClusterConfig::new()
            .topology(Topology::new("dns", strategy))
            .debug(true),
    )
    .await
    .unwrap();
    eventually("a lists b and c", || a.list().len() == 2).await;
    // Truncated answers carry only the first record (this node's): b and c are missing
    // from them, and must stay.
    dns.truncate(true);
    polls(&dns, dns.answered(), 10).await;
    assert_eq!(a.list(), [b.name().clone(), c.name().clone()]);
    assert_eq!(cluster.metrics().prunes, 0);
    // The same setup prunes once a whole answer lacks c (so the check above could fail).
    dns.set_a("cut.test.", &[ip(7), ip(8)]);
    dns.truncate(false);
    eventually("c pruned by a whole answer", || {
        a.list() == [b.name().clone()]
    })
    .await;

    cluster.stop();
    for node in [a, b, c] {
        node.shutdown().await;
    }
    for m in mappers {
        m.shutdown().await;
    }
    dns.shutdown().await;
}

#[tokio::test]
async fn kubernetes_dns_connects_application_name_at_each_pod_ip() {
    let dns = DnsServer::start().await;
    let (pm_port, mappers) = port_mappers(&[13, 14]).await;
    let a = node_at("myapp", 13, pm_port).await;
    let b = node_at("myapp", 14, pm_port).await;
    let service = "myapp-headless.default.svc.cluster.test.";
    dns.set_a(service, &[ip(13), ip(14)]);
    let strategy = KubernetesDns::new(service, "myapp")
        .nameserver(dns.addr())
        .poll_interval(Duration::from_millis(50));
    let cluster = Cluster::start(
        &a,
        ClusterConfig::new().topology(Topology::new("k8s", strategy)),
    )
    .await
    .unwrap();
    eventually("a lists myapp@127.0.0.14", || {
        a.list() == [name("myapp@127.0.0.14")]
    })
    .await;
    assert_eq!(b.list(), [name("myapp@127.0.0.13")]);

    cluster.stop();
    a.shutdown().await;
    b.shutdown().await;
    for m in mappers {
        m.shutdown().await;
    }
    dns.shutdown().await;
}

#[tokio::test]
async fn kubernetes_dns_srv_connects_the_targets_of_the_srv_records() {
    let dns = DnsServer::start().await;
    let (pm_port, mappers) = port_mappers(&[10, 11, 12]).await;
    let a = node_at("app", 10, pm_port).await;
    let b = node_at("app", 11, pm_port).await;
    let c = node_at("app", 12, pm_port).await;
    // The pods' hostnames (`app-0.app.default.svc...`) do not resolve on this machine, so
    // the SRV targets are names that read as the nodes' addresses; the strategy makes
    // `app@<target>` as for any target.
    let owner = "app.default.svc.cluster.test.";
    dns.set_srv(owner, &["127.0.0.10.", "127.0.0.11."]);
    let strategy = KubernetesDnsSrv::new("app", "default", "app")
        .cluster_domain("cluster.test.")
        .nameserver(dns.addr())
        .poll_interval(Duration::from_millis(50));
    assert_eq!(strategy.query(), owner);
    let cluster = Cluster::start(
        &a,
        ClusterConfig::new().topology(Topology::new("srv", strategy)),
    )
    .await
    .unwrap();
    eventually("a lists b", || a.list() == [b.name().clone()]).await;
    dns.set_srv(owner, &["127.0.0.10.", "127.0.0.12."]);
    eventually("c joins and b is pruned", || a.list() == [c.name().clone()]).await;

    cluster.stop();
    for node in [a, b, c] {
        node.shutdown().await;
    }
    for m in mappers {
        m.shutdown().await;
    }
    dns.shutdown().await;
}

// ----- graceful leave -----

#[tokio::test]
async fn a_node_that_shuts_down_tells_its_peers_and_they_see_shutdown() {
    let epmd = PortMapperServer::bind(([127, 0, 0, 1], 0).into())
        .await
        .unwrap()
        .spawn();
    let a = Node::start(config("la@localhost", epmd.local_addr()))
        .await
        .unwrap();
    let b = Node::start(config("lb@localhost", epmd.local_addr()))
        .await
        .unwrap();
    let c = Node::start(config("lc@localhost", epmd.local_addr()))
        .await
        .unwrap();
    assert_eq!(a.ping("lb@localhost").await, Ping::Pong);
    assert_eq!(a.ping("lc@localhost").await, Ping::Pong);
    let monitor = a.monitor_node(b.name()).await;
    let mut events = a.events();
    b.shutdown().await;
    let down = tokio::time::timeout(DEADLINE, monitor)
        .await
        .expect("a NodeDown for b");
    assert_eq!(down.reason, NodeDownReason::Shutdown);
    assert_eq!(down.reason.to_string(), "shutdown");
    let event = tokio::time::timeout(DEADLINE, async {
        loop {
            if let Ok(NodeEvent::NodeDown { node, reason, .. }) = events.recv().await {
                if node == name("lb@localhost") {
                    return reason;
                }
            }
        }
    })
    .await
    .expect("a NodeDown event for b");
    assert_eq!(event, NodeDownReason::Shutdown);
    assert_eq!(a.left(), [name("lb@localhost")]);
    // A node that halts (a crash) says nothing: connection_closed, not remembered as left.
    let monitor = a.monitor_node(c.name()).await;
    c.halt().await;
    let down = tokio::time::timeout(DEADLINE, monitor)
        .await
        .expect("a NodeDown for c");
    assert_eq!(down.reason, NodeDownReason::ConnectionClosed);
    assert!(!a.has_left(&name("lc@localhost")));
    a.shutdown().await;
    epmd.shutdown().await;
}

#[tokio::test]
async fn static_hosts_does_not_redial_a_node_that_left_until_it_registers_anew() {
    let epmd = PortMapperServer::bind(([127, 0, 0, 1], 0).into())
        .await
        .unwrap()
        .spawn();
    let a = Node::start(config("ga@localhost", epmd.local_addr()).connect_all(false))
        .await
        .unwrap();
    let b = Node::start(config("gb@localhost", epmd.local_addr()))
        .await
        .unwrap();
    // Count the strategy's connect attempts per node.
    let attempts: std::sync::Arc<std::sync::Mutex<Vec<NodeName>>> = Default::default();
    let seen = attempts.clone();
    let hooks = Hooks::default().connect(move |node, peer| {
        seen.lock().expect("the attempts' lock").push(peer.clone());
        Box::pin(async move { node.connect(&peer).await })
    });
    // `gx` never starts: each poll tries it, which shows polls go on.
    let hosts = StaticHosts::new([name("gb@localhost"), name("gx@localhost")])
        .poll_interval(Duration::from_millis(30));
    let topology = Topology::new("hosts", hosts)
        .hooks(hooks)
        .backoff(Duration::from_millis(10), Duration::from_millis(20));
    let cluster = Cluster::start(&a, ClusterConfig::new().topology(topology))
        .await
        .unwrap();
    eventually("a lists b", || a.list() == [name("gb@localhost")]).await;

    let count = |node: &str| {
        attempts
            .lock()
            .expect("the attempts' lock")
            .iter()
            .filter(|n| n.name() == node)
            .count()
    };
    b.shutdown().await;
    eventually("a knows b left", || a.has_left(&name("gb@localhost"))).await;
    let before_b = count("gb");
    let before_x = count("gx");
    eventually("ten more polls", || count("gx") >= before_x + 10).await;
    assert_eq!(count("gb"), before_b, "a node that left was dialled again");
    assert!(a.list().is_empty());

    // b comes back (a new registration with the port mapper; b runs no strategy, so it
    // does not dial a itself): a connects it again.
    let b = Node::start(config("gb@localhost", epmd.local_addr()))
        .await
        .unwrap();
    eventually("a lists the restarted b", || {
        a.list() == [name("gb@localhost")]
    })
    .await;
    assert!(!a.has_left(&name("gb@localhost")));

    cluster.stop();
    b.shutdown().await;
    a.shutdown().await;
    epmd.shutdown().await;
}
