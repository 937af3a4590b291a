//! Issue 13, on two in-process nodes: one frame limit (a message over it is a typed error to
//! its sender, naming the peer and the limit, and nothing else fails; raised on both nodes,
//! an 80 MiB message goes through) and backpressure per destination (a frozen peer fills its
//! queue to the bound and no further, casts past it are `Busy`, `cast_wait` waits, and
//! traffic resumes after the thaw with nothing that returned `Ok` lost).

use std::time::Duration;

use nodus::ractor::{Actor, ActorProcessingErr, ActorRef};
use nodus::{
    core::{CallError, SendErrorKind},
    remote::{
        port_mapper::{PortMapperServer, PortMapperServerHandle},
        transport::Faults,
        Cookie, Node, NodeConfig, NodeEvent,
    },
    NodeName, TaskError, TaskSupervisor, TaskSupervisorConfig,
};
use serde::{Deserialize, Serialize};
use tokio::{sync::mpsc, time::timeout};

const DEADLINE: Duration = Duration::from_secs(30);
const SUP: &str = "Big.TaskSupervisor";

/// Counts what it is sent.
#[derive(Clone, Default, Serialize, Deserialize)]
struct Sink {
    count: u64,
    bytes: u64,
}

#[nodus::actor(remote)]
impl Sink {
    pub fn put(&mut self, data: String) {
        self.count += 1;
        self.bytes += data.len() as u64;
    }

    pub async fn stats(&self) -> (u64, u64) {
        (self.count, self.bytes)
    }

    pub async fn echo_len(&self, data: String) -> usize {
        data.len()
    }
}

struct Pair {
    _epmd: PortMapperServerHandle,
    a: Node,
    b: Node,
    b_name: NodeName,
    b_faults: Faults,
}

/// Node `a` and node `b` (with a sink actor, a task supervisor and a `Big.len` function),
/// connected, each configured by `config`.
async fn pair(tag: &str, config: impl Fn(NodeConfig) -> NodeConfig) -> Pair {
    let epmd = PortMapperServer::bind(([127, 0, 0, 1], 0).into())
        .await
        .unwrap()
        .spawn();
    let start = |name: String, faults: Faults| {
        let cfg = NodeConfig::sname(&name)
            .cookie(Cookie::new("backpressure").unwrap())
            .port_mapper(epmd.local_addr())
            .faults(faults);
        Node::start(config(cfg))
    };
    let b_faults = Faults::new();
    let a = start(format!("a{tag}@localhost"), Faults::new())
        .await
        .unwrap();
    let b = start(format!("b{tag}@localhost"), b_faults.clone())
        .await
        .unwrap();
    Sink::spawn(&b, Some("sink"), Sink::default())
        .await
        .unwrap();
    TaskSupervisor::start(&b, TaskSupervisorConfig::new(SUP))
        .await
        .unwrap();
    b.functions()
        .register("Big", "len", |data: String| async move { data.len() });
    let b_name = b.name().clone();
    timeout(DEADLINE, a.connect(&b_name))
        .await
        .unwrap()
        .unwrap();
    Pair {
        _epmd: epmd,
        a,
        b,
        b_name,
        b_faults,
    }
}

fn sink(p: &Pair) -> (&'static str, NodeName) {
    ("sink", p.b_name.clone())
}

async fn sink_stats(p: &Pair) -> (u64, u64) {
    let client = Sink::client(&p.a, sink(p));
    timeout(DEADLINE, client.stats())
        .await
        .expect("an answer in time")
        .expect("the sink answers")
}

/// Issue 13: a cast over `max_frame_len` returned `Ok` and was dropped, an oversized call's
/// `Refused` named the caller's own node, and a task start was `BadArgs`. Now each is a typed
/// error naming the peer and the limit, checked before sending; tasks in flight on the
/// session finish, the session stays up (no node-down), and later messages go through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_the_limit_is_a_typed_error_and_nothing_else_fails() {
    const LIMIT: usize = 1 << 20;
    let p = pair("1", |c| c.max_frame_len(LIMIT)).await;
    let mut events = p.a.events();
    let big = "x".repeat(2 * LIMIT);

    // Tasks in flight on the session, held at a gate until the oversized messages are done.
    let (gate, gated) = tokio::sync::watch::channel(false);
    p.b.functions().register("Big", "gated", move |n: u64| {
        let mut gated = gated.clone();
        async move {
            let _ = gated.wait_for(|open| *open).await;
            n
        }
    });
    let mut in_flight = Vec::new();
    for n in 0..8u64 {
        let dest = (SUP, p.b_name.clone());
        let task = TaskSupervisor::async_on::<_, u64>(&p.a, dest, "Big", "gated", n)
            .await
            .expect("a small task starts");
        in_flight.push(task);
    }

    // And calls, sent concurrently with the oversized messages.
    let calls: Vec<_> = (0..16)
        .map(|_| {
            let client = Sink::client(&p.a, sink(&p));
            tokio::spawn(async move { client.stats().await })
        })
        .collect();

    let too_large = |kind: &SendErrorKind| {
        matches!(kind, SendErrorKind::TooLarge { node, size, limit }
            if *node == p.b_name && *size > 2 * LIMIT && *limit == LIMIT)
    };
    let err = p.a.cast(sink(&p), SinkMsg::Put(big.clone())).unwrap_err();
    assert!(too_large(&err.kind), "cast: {:?}", err.kind);
    let text = err.to_string();
    assert!(
        text.contains(p.b_name.as_str()) && text.contains(&LIMIT.to_string()),
        "{text}"
    );

    let err =
        p.a.cast_wait(sink(&p), SinkMsg::Put(big.clone()))
            .await
            .unwrap_err();
    assert!(too_large(&err.kind), "cast_wait: {:?}", err.kind);

    let client = Sink::client(&p.a, sink(&p));
    match timeout(DEADLINE, client.echo_len(big.clone()))
        .await
        .unwrap()
    {
        Err(CallError::Send(kind)) if too_large(&kind) => {}
        other => panic!("call: {other:?}"),
    }

    let dest = (SUP, p.b_name.clone());
    match TaskSupervisor::async_on::<_, usize>(&p.a, dest, "Big", "len", big.clone()).await {
        Err(TaskError::TooLarge { node, size, limit })
            if node == p.b_name && size > 2 * LIMIT && limit == LIMIT => {}
        other => panic!("task: {:?}", other.map(|_| ())),
    }

    // Nothing else failed: the tasks in flight finish, the session is up, no node-down.
    for call in calls {
        let answered = timeout(DEADLINE, call).await.unwrap().unwrap();
        assert_eq!(answered, Ok((0, 0)), "a call in flight was answered");
    }
    gate.send(true).unwrap();
    for (n, task) in in_flight.into_iter().enumerate() {
        assert_eq!(timeout(DEADLINE, task).await.unwrap(), Ok(n as u64));
    }
    assert_eq!(p.a.list(), std::slice::from_ref(&p.b_name));
    while let Ok(event) = events.try_recv() {
        assert!(
            !matches!(event, NodeEvent::NodeDown { .. }),
            "the session went down: {event:?}"
        );
    }
    p.a.cast(sink(&p), SinkMsg::Put("small".into())).unwrap();
    assert_eq!(sink_stats(&p).await, (1, 5), "only the small cast arrived");
    p.a.shutdown().await;
    p.b.shutdown().await;
}

/// A plain serde message, encoded as one string (the `#[nodus::actor(remote)]` payload
/// encodes its arguments byte by byte, too slow for 80 MiB in a debug build).
#[derive(Serialize, Deserialize)]
struct Blob(String);
nodus::core::serde_message!(Blob = "backpressure.Blob");

/// Reports the length of each blob it gets.
struct BlobSink;

impl Actor for BlobSink {
    type Msg = Blob;
    type State = mpsc::UnboundedSender<usize>;
    type Arguments = mpsc::UnboundedSender<usize>;

    async fn pre_start(
        &self,
        _: ActorRef<Blob>,
        out: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(out)
    }

    async fn handle(
        &self,
        _: ActorRef<Blob>,
        Blob(data): Blob,
        out: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let _ = out.send(data.len());
        Ok(())
    }
}

/// Issue 13: raising `max_frame_len` let an 80 MiB frame through framing, then the codec's
/// fixed 64 MiB limit failed it ("both nodes must run compatible nodus versions") and the
/// session closed. Raised on both nodes, the one limit now carries 80 MiB end to end: a cast
/// and a task's argument; a call queued behind the 80 MiB frame waits for room and answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raised_limit_on_both_nodes_carries_an_80_mib_message() {
    const MIB_80: usize = 80 << 20;
    let p = pair("2", |c| c.max_frame_len(96 << 20)).await;
    let (tx, mut lens) = mpsc::unbounded_channel();
    p.b.spawn(Some("blobs"), BlobSink, tx).await.unwrap();
    let big = "y".repeat(MIB_80);
    p.a.cast(("blobs", p.b_name.clone()), Blob(big.clone()))
        .unwrap();
    let got = timeout(DEADLINE, lens.recv()).await.unwrap();
    assert_eq!(got, Some(MIB_80), "the 80 MiB cast arrived");
    assert_eq!(sink_stats(&p).await, (0, 0), "a call after it is answered");
    let dest = (SUP, p.b_name.clone());
    let task = TaskSupervisor::async_on::<_, usize>(&p.a, dest, "Big", "len", big)
        .await
        .unwrap();
    assert_eq!(timeout(DEADLINE, task).await.unwrap(), Ok(MIB_80));
    assert_eq!(
        p.a.list(),
        std::slice::from_ref(&p.b_name),
        "the session stayed up"
    );
    p.a.shutdown().await;
    p.b.shutdown().await;
}

/// Issue 13: with the receiver stopped, a sender casting flat out grew without bound (3.4 GB
/// in 9 s), with no error. Now the queue for the frozen peer fills to `send_queue_limit` and
/// no further (the high-water counter says so), casts past it fail with `Busy` naming the
/// peer and the bound, a `cast_wait` waits, and after the thaw traffic resumes: the waiting
/// cast goes, and every cast that returned `Ok` arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_peer_costs_a_bounded_queue_and_traffic_resumes_after_the_thaw() {
    const QUEUE: usize = 256 << 10;
    const PAYLOAD: usize = 1024;
    let p = pair("3", |c| c.send_queue_limit(QUEUE)).await;
    assert_eq!(sink_stats(&p).await, (0, 0));
    let stats = p.a.send_stats();
    p.b_faults.freeze();

    let payload = "z".repeat(PAYLOAD);
    let (mut accepted, mut busy) = (0u64, 0u64);
    // Flat out until the queue has refused 1000 casts; bounded by 256 MiB of casts (a
    // queue without bound never refuses one).
    for i in 0..256 * 1024u64 {
        match p.a.cast(sink(&p), SinkMsg::Put(payload.clone())) {
            Ok(()) => accepted += 1,
            Err(e) => {
                assert_eq!(
                    e.kind,
                    SendErrorKind::Busy {
                        node: p.b_name.clone(),
                        limit: QUEUE
                    }
                );
                busy += 1;
                if busy == 1000 {
                    break;
                }
            }
        }
        if i % 64 == 0 {
            tokio::task::yield_now().await; // let the writer fill the socket
        }
    }
    assert_eq!(busy, 1000, "casts past the bound are refused");
    let high = stats.queued_high_water();
    assert!(
        (QUEUE..QUEUE + 2 * PAYLOAD).contains(&high),
        "the queue filled to its bound and no further: {high} bytes"
    );
    assert!(stats.busy() >= 1000);

    // The kernel's socket buffers may still take some of the queue after the loop above: top
    // it up until casts have been refused for 200 ms in a row, so that the writer is blocked
    // on a full socket, not merely behind.
    let mut refused_since = tokio::time::Instant::now();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while refused_since.elapsed() < Duration::from_millis(200) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the queue never stayed full"
        );
        match p.a.cast(sink(&p), SinkMsg::Put(payload.clone())) {
            Ok(()) => {
                accepted += 1;
                refused_since = tokio::time::Instant::now();
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }

    // A waiting cast waits while the peer is frozen...
    let waiting = {
        let (a, dest, payload) = (p.a.system().clone(), sink(&p), payload.clone());
        tokio::spawn(async move { a.cast_wait(dest, SinkMsg::Put(payload)).await })
    };
    tokio::task::yield_now().await;
    assert!(!waiting.is_finished(), "cast_wait waits for room");

    // ...and goes once it thaws; every cast that returned Ok arrives.
    p.b_faults.thaw();
    timeout(DEADLINE, waiting)
        .await
        .expect("the waiting cast went in time")
        .unwrap()
        .expect("the waiting cast was taken");
    let want = accepted + 1;
    let (count, bytes) = sink_stats(&p).await;
    assert_eq!(
        (count, bytes),
        (want, want * PAYLOAD as u64),
        "nothing that returned Ok was lost"
    );
    assert_eq!(stats.lost_messages(), 0);
    p.a.cast(sink(&p), SinkMsg::Put(payload)).unwrap();
    assert_eq!(sink_stats(&p).await.0, want + 1, "traffic resumed");
    p.a.shutdown().await;
    p.b.shutdown().await;
}

/// What a dropped session loses is at most what was queued for it (and what the socket's
/// buffers held), counted on the node and logged once with the count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_session_loses_at_most_its_queue_and_counts_it() {
    const QUEUE: usize = 64 << 10;
    let p = pair("4", |c| c.send_queue_limit(QUEUE)).await;
    let stats = p.a.send_stats();
    p.b_faults.freeze();
    let payload = "q".repeat(1024);
    let mut accepted = 0u64;
    // Until the socket's buffers are full and the queue stays full: 20 refusals in a row,
    // 2 ms apart, with no room made meanwhile (a queue that still drains into the socket
    // would take a cast again). Then the queue holds messages when the session drops.
    let start = tokio::time::Instant::now();
    let mut busy_in_a_row = 0;
    while busy_in_a_row < 20 {
        assert!(
            start.elapsed() < DEADLINE,
            "the queue never stayed full ({accepted} accepted)"
        );
        match p.a.cast(sink(&p), SinkMsg::Put(payload.clone())) {
            Ok(()) => {
                accepted += 1;
                busy_in_a_row = 0;
            }
            Err(_) => {
                busy_in_a_row += 1;
                tokio::time::sleep(Duration::from_millis(2)).await; // lets the writer drain
            }
        }
    }
    let mut events = p.a.events();
    assert!(p.a.disconnect(&p.b_name));
    let down = timeout(DEADLINE, async {
        loop {
            if let Ok(NodeEvent::NodeDown { node, .. }) = events.recv().await {
                return node;
            }
        }
    })
    .await
    .expect("the session went down in time");
    assert_eq!(down, p.b_name);
    let lost = stats.lost_messages();
    assert!(
        lost > 0 && lost <= accepted,
        "lost {lost} of {accepted} accepted"
    );
    assert!(stats.lost_bytes() <= (QUEUE + 2048) as u64);
    p.b_faults.thaw();
    p.a.shutdown().await;
    p.b.shutdown().await;
}
