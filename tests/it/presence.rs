//! The presence scenario of `examples/presence` on a LocalCluster: members on two nodes join
//! a room on a third; the room's node dies; a caller gets a typed error within its timeout;
//! the node restarts and the room is back; a member's node dies and the room sees it leave
//! with `noconnection`; a member that leaves is seen with its reason.

use std::{
    future::Future,
    sync::{Arc, OnceLock},
    time::{Duration, Instant},
};

use nodus::ExitReason;

#[path = "../../examples/presence/presence.rs"]
#[allow(dead_code)] // the example uses every item; each test binary only some
mod room;

use room::{room, Member, CALL_TIMEOUT, MEMBER};

const DEADLINE: Duration = Duration::from_secs(10);

async fn until<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await; // the poll interval
    }
}

#[tokio::test]
async fn the_room_survives_its_node_and_sees_members_leave_with_their_reason() {
    let hub = Arc::new(OnceLock::new());
    let mut cluster = room::cluster(&hub).start().await.expect("a cluster");
    cluster.await_mesh(DEADLINE).await.expect("a mesh");
    let hub = hub.get().cloned().expect("the hub recorded its name");
    let alice = Member::client(cluster.node(1), MEMBER);
    let bob = Member::client(cluster.node(2), MEMBER);

    // Both join, by themselves.
    until("both members in the room", || async {
        let names = room(cluster.node(1), &hub).names().await.ok()?;
        (names == ["alice", "bob"]).then_some(())
    })
    .await;

    // The hub dies: the room's callers get a typed error within their timeout.
    cluster.kill(0).await.expect("kill the hub");
    let start = Instant::now();
    let answer = alice.ask_room().await.expect("alice answers");
    let elapsed = start.elapsed();
    assert!(answer.is_err(), "the room cannot answer: {answer:?}");
    assert!(
        elapsed < CALL_TIMEOUT + Duration::from_millis(500),
        "the error came within the call's timeout: {elapsed:?}"
    );
    let direct = room(cluster.node(2), &hub).names().await;
    assert!(
        matches!(
            direct,
            Err(nodus::CallError::Send(_)
                | nodus::CallError::Timeout { .. }
                | nodus::CallError::Unconfirmed { .. })
        ),
        "a typed error: {direct:?}"
    );
    // Each member learned it from its node monitor, with the node layer's reason.
    for member in [&alice, &bob] {
        let status = until("a member out of the room", || async {
            member.status().await.ok().filter(|s| s.room.is_none())
        })
        .await;
        assert!(status.lost.is_some(), "{status:?}");
    }

    // The hub restarts (a fresh node of the same name): the members rejoin by themselves.
    cluster.restart(0).await.expect("restart the hub");
    until("the room back with both members", || async {
        let names = alice.ask_room().await.ok()?.ok()?;
        (names == ["alice", "bob"]).then_some(())
    })
    .await;
    assert!(room(cluster.node(1), &hub)
        .left()
        .await
        .expect("the room answers")
        .is_empty());

    // bob's node dies: the room sees him leave, with noconnection.
    cluster.kill(2).await.expect("kill bob's node");
    let left = until("bob gone from the room", || async {
        let left = room(cluster.node(1), &hub).left().await.ok()?;
        (!left.is_empty()).then_some(left)
    })
    .await;
    assert_eq!(left, [("bob".to_string(), ExitReason::NoConnection)]);

    // alice leaves: the room sees her reason.
    alice.leave().await.expect("alice leaves");
    let left = until("alice gone from the room", || async {
        let left = room(cluster.node(1), &hub).left().await.ok()?;
        (left.len() == 2).then_some(left)
    })
    .await;
    assert_eq!(
        left[1],
        (
            "alice".to_string(),
            ExitReason::Stopped("alice left".into())
        )
    );
    assert_eq!(
        room(cluster.node(1), &hub)
            .names()
            .await
            .expect("the room answers"),
        Vec::<String>::new()
    );
    let output = cluster.output(0);
    assert!(
        output.iter().any(|l| l.contains("alice joined")),
        "the room prints on the hub's output: {output:?}"
    );
    cluster.shutdown().await;
}
