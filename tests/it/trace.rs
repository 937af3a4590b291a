//! Traces across nodes: one request started under a root `TraceContext` on a calls an actor
//! on b, whose handler casts to an actor on c and starts a task on c; every log line of that
//! request, on a, b and c, carries the same `trace_id`, and a second request another one.

use std::time::Duration;

use nodus::{
    core::{Restart, TaskSupervisor, TaskSupervisorConfig, TraceContext},
    testing::LocalCluster,
    Context, NodeName,
};

const DEADLINE: Duration = Duration::from_secs(10);
const SUP: &str = "Trace.TaskSupervisor";

/// On b: relays a request to c.
struct TraceRelay {
    c: NodeName,
}

#[nodus::actor(remote)]
impl TraceRelay {
    pub async fn forward(&mut self, ctx: &mut Context, req: u32) -> String {
        tracing::info!("relay got request {req}");
        let system = ctx.system().unwrap();
        TraceSink::client(&system, ("sink", self.c.clone()))
            .note(req)
            .await
            .unwrap();
        TaskSupervisor::start_child_on(
            &system,
            (SUP, self.c.clone()),
            "Trace",
            "work",
            req,
            Restart::Temporary,
        )
        .await
        .unwrap();
        TraceContext::current()
            .map(|t| t.trace_id_hex())
            .unwrap_or_default()
    }
}

/// On c: notes what it is told.
#[derive(Default)]
struct TraceSink;

#[nodus::actor(remote)]
impl TraceSink {
    pub fn note(&mut self, req: u32) {
        tracing::info!("sink noted request {req}");
    }
}

/// The lines of `logs` that mention request `req` (`request {req}` at the end of a line).
fn lines_of(logs: &[String], req: u32) -> Vec<String> {
    let end = format!("request {req}");
    logs.iter()
        .filter(|l| l.contains(&format!("{end} ")) || l.ends_with(&end))
        .cloned()
        .collect()
}

/// The `trace_id` each line shows.
fn trace_ids(lines: &[String]) -> Vec<Option<String>> {
    lines
        .iter()
        .map(|l| {
            let at = l.find("trace_id=")? + "trace_id=".len();
            Some(
                l[at..]
                    .chars()
                    .take_while(char::is_ascii_hexdigit)
                    .collect(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_requests_logs_on_three_nodes_share_its_trace_id() {
    let cluster = LocalCluster::builder()
        .nodes(3)
        .on_start(|node, _| async move {
            node.functions()
                .register("Trace", "work", |req: u32| async move {
                    tracing::info!("task did request {req}");
                });
            TaskSupervisor::start(&node, TaskSupervisorConfig::new(SUP))
                .await
                .unwrap();
        })
        .start()
        .await
        .unwrap();
    cluster.await_mesh(DEADLINE).await.unwrap();
    assert!(cluster.logs_captured(), "logs cannot be checked");
    let (a, b, c) = (cluster.node(0), cluster.node(1), cluster.node(2));
    TraceRelay::spawn(
        b,
        Some("relay"),
        TraceRelay {
            c: c.name().clone(),
        },
    )
    .await
    .unwrap();
    TraceSink::spawn(c, Some("sink"), TraceSink).await.unwrap();

    let mut seen = Vec::new();
    for req in [1u32, 2] {
        let root = TraceContext::new_root();
        let id = root.trace_id_hex();
        let relay = TraceRelay::client(a, ("relay", b.name().clone()));
        let on_b = root
            .instrument_in(a.span(), async {
                tracing::info!("a starts request {req}");
                relay.forward(req).await
            })
            .await
            .unwrap();
        assert_eq!(on_b, id, "the handler on b runs in a's trace");

        // c logs the cast and the task asynchronously: poll its log, bounded.
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let on_c = lines_of(&cluster.logs(2), req);
            if on_c.len() >= 2 || tokio::time::Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let on_a = lines_of(&cluster.logs(0), req);
        let on_b = lines_of(&cluster.logs(1), req);
        let on_c = lines_of(&cluster.logs(2), req);
        println!("request {req}: trace {id}\n a: {on_a:?}\n b: {on_b:?}\n c: {on_c:?}");
        assert_eq!(on_a.len(), 1, "{on_a:?}");
        assert_eq!(on_b.len(), 1, "{on_b:?}");
        assert_eq!(on_c.len(), 2, "the cast and the task: {on_c:?}");
        for lines in [&on_a, &on_b, &on_c] {
            for got in trace_ids(lines) {
                assert_eq!(got.as_deref(), Some(id.as_str()), "{lines:?}");
            }
        }
        seen.push(id);
    }
    assert_ne!(seen[0], seen[1], "each request has its own trace");
}
