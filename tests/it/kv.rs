//! The key-value service of `examples/kv_service` on a LocalCluster: replication, and a
//! replica cut off by a partition that repairs itself after the heal.

use std::time::Duration;

use nodus::{
    remote::{NodeDownReason, NodeEvent},
    testing::LocalCluster,
};

#[path = "../../examples/kv_service/service.rs"]
#[allow(dead_code)] // the example uses every item; each test binary only some
mod service;

use service::{replicated_put, start_service, Kv, Store, TASKS};

const DEADLINE: Duration = Duration::from_secs(10);
const TICK: Duration = Duration::from_millis(600);

async fn cluster(prefix: &str) -> LocalCluster {
    let cluster = LocalCluster::builder()
        .nodes(3)
        .prefix(prefix)
        .tick_time(TICK)
        .start()
        .await
        .expect("a cluster");
    cluster.await_mesh(DEADLINE).await.expect("a mesh");
    for i in 0..cluster.len() {
        start_service(cluster.node(i))
            .await
            .expect("the service starts");
    }
    cluster
}

#[tokio::test]
async fn writes_reach_every_replica_and_any_node_reads_any_replica() {
    let cluster = cluster("kvr").await;
    let (a, b, c) = (cluster.node(0), cluster.node(1), cluster.node(2));
    assert_eq!(replicated_put(a, "color", "blue").await, 3);
    for reader in [a, b, c] {
        for replica in [a, b, c] {
            let got = Kv::on(reader, (TASKS, replica.name().as_str()))
                .get("color".into())
                .await;
            assert_eq!(
                got,
                Ok(Some("blue".to_string())),
                "{} reading {}",
                reader.name(),
                replica.name()
            );
        }
    }
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_partitioned_replica_misses_writes_and_repairs_after_the_heal() {
    let cluster = cluster("kvp").await;
    let (a, c) = (cluster.node(0), cluster.node(2));
    assert_eq!(replicated_put(a, "color", "blue").await, 3);

    let mut events = a.events();
    cluster.partition(0, 2).expect("partition");
    let reason = tokio::time::timeout(DEADLINE, async {
        loop {
            if let Ok(NodeEvent::NodeDown { node, reason, .. }) = events.recv().await {
                if node == *c.name() {
                    return reason;
                }
            }
        }
    })
    .await
    .expect("a sees c go down");
    assert_eq!(reason, NodeDownReason::TickTimeout);

    // Cut off from a, c misses the write; the other two take it.
    assert_eq!(replicated_put(a, "shape", "circle").await, 2);
    assert_eq!(Store::client(c, "kv").get("shape".into()).await, Ok(None));

    cluster.heal(0, 2).expect("heal");
    cluster
        .await_mesh(DEADLINE)
        .await
        .expect("the mesh is whole again");
    // The repair is the service's own (`Kv.repair`), asked of c by a across the healed link;
    // c reads a's replica across it in turn. The test copies nothing: a repair that does
    // nothing, or a link that carries nothing, leaves c without the write.
    let repaired = Kv::on(a, (TASKS, c.name().as_str()))
        .repair(a.name().to_string())
        .await
        .expect("the repair runs on c");
    assert_eq!(repaired, Some(2), "c wrote a's two entries");
    for (key, value) in [("color", "blue"), ("shape", "circle")] {
        let got = Kv::on(a, (TASKS, c.name().as_str())).get(key.into()).await;
        assert_eq!(
            got,
            Ok(Some(value.to_string())),
            "c has {key}, read from a across the healed link"
        );
    }
    cluster.shutdown().await;
}
