//! Issue 13, no head-of-line blocking, on two in-process nodes: a small cast to one actor,
//! sent after a 32 MiB cast to another, is handled before the large one arrives; a small
//! cast to the large one's own actor is handled after it (order per target actor).

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use nodus::remote::{
    port_mapper::{PortMapperServer, PortMapperServerHandle},
    Cookie, Node, NodeConfig,
};
use nodus::NodeName;
use serde::{Deserialize, Serialize};
use tokio::time::timeout;

const DEADLINE: Duration = Duration::from_secs(60);

/// One clock for the actors of this test: the order in which they handled their casts.
static CLOCK: AtomicU64 = AtomicU64::new(0);

/// Records when (on [`CLOCK`]) it handled each cast, and how long the cast was.
#[derive(Clone, Default, Serialize, Deserialize)]
struct Recorder {
    seen: Vec<(u64, usize)>,
}

#[nodus::actor(remote)]
impl Recorder {
    pub fn put(&mut self, data: String) {
        self.seen
            .push((CLOCK.fetch_add(1, Ordering::SeqCst), data.len()));
    }

    pub async fn seen(&self) -> Vec<(u64, usize)> {
        self.seen.clone()
    }
}

async fn start(name: &str, epmd: &PortMapperServerHandle) -> Node {
    let cfg = NodeConfig::sname(name)
        .cookie(Cookie::new("lanes").unwrap())
        .port_mapper(epmd.local_addr());
    Node::start(cfg).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_cast_to_another_actor_overtakes_a_large_one_and_not_to_the_same() {
    const LARGE: usize = 32 << 20;
    let epmd = PortMapperServer::bind(([127, 0, 0, 1], 0).into())
        .await
        .unwrap()
        .spawn();
    let a = start("lanes_a@localhost", &epmd).await;
    let b = start("lanes_b@localhost", &epmd).await;
    for name in ["big", "other"] {
        Recorder::spawn(&b, Some(name), Recorder::default())
            .await
            .unwrap();
    }
    let b_name: NodeName = b.name().clone();
    timeout(DEADLINE, a.connect(&b_name))
        .await
        .unwrap()
        .unwrap();
    let big = ("big", b_name.clone());
    let other = ("other", b_name.clone());

    a.cast(big.clone(), RecorderMsg::Put("x".repeat(LARGE)))
        .unwrap();
    a.cast(big.clone(), RecorderMsg::Put("after".into()))
        .unwrap();
    a.cast(other.clone(), RecorderMsg::Put("other".into()))
        .unwrap();

    // A call to an actor is in its lane: answered once its casts were handled.
    let seen = |dest: (&'static str, NodeName)| {
        let client = Recorder::client(&a, dest);
        async move {
            timeout(DEADLINE, client.seen())
                .await
                .expect("an answer in time")
                .expect("the recorder answers")
        }
    };
    let at_big = seen(big).await;
    let at_other = seen(other).await;
    assert_eq!(
        at_big.iter().map(|(_, len)| *len).collect::<Vec<_>>(),
        [LARGE, 5],
        "the cast after the large one arrived after it, both intact"
    );
    assert_eq!(at_other.len(), 1);
    let (large_at, after_at, other_at) = (at_big[0].0, at_big[1].0, at_other[0].0);
    assert!(
        other_at < large_at && large_at < after_at,
        "handled in the order other ({other_at}), large ({large_at}), after ({after_at})"
    );
    a.shutdown().await;
    b.shutdown().await;
}
