//! Head-of-line blocking on a node-to-node session (issue 13): the round trip of a small
//! ping between two sessions over loopback TCP while a 55 MiB message is in flight on the
//! same session, against the same round trip on an idle session.
//!
//! `cargo bench --bench hol` runs both sides in this process (a multi-thread tokio runtime):
//! the peer answers each `Ping` with a `Pong` and each large message with `Done`. Each round
//! first measures idle pings, then sends the large message and pings back to back until its
//! `Done` arrives. The session keeps order per session (large messages are fragmented but
//! not overtaken), so a ping sent after the large message waits behind it: this figure is the
//! head-of-line cost still to remove (issue 13), not a target met.
//!
//! It prints one `key=value` line per figure, each the median over the rounds:
//! `hol_ping_idle_ms` (the slowest idle round trip of a round), `hol_ping_max_ms` (the
//! slowest round trip while the large message is in flight), `hol_pings_during` (round trips
//! completed meanwhile) and `hol_large_ms` (from sending the large message to its `Done`).

use std::time::{Duration, Instant};

use nodus::remote::{
    proto::{Existing, HandshakeConfig},
    transport::{handshake_over, Direction, Session, SessionConfig},
};
use nodus::NodeName;
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};

const LARGE: usize = 55 << 20;
const IDLE_PINGS: u32 = 200;
const ROUNDS: usize = 5;
/// Every wait of the bench is bounded by this.
const LIMIT: Duration = Duration::from_secs(60);

#[derive(Debug, Serialize, Deserialize)]
enum Msg {
    Ping(u32),
    Pong(u32),
    Large(#[serde(with = "serde_bytes")] Vec<u8>),
    Done,
}

fn name(text: &str) -> NodeName {
    NodeName::parse(text).expect("bench setup: invalid node name")
}

fn no_session(_: NodeName) -> std::future::Ready<Existing> {
    std::future::ready(Existing::None)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn sessions() -> (Session<Msg>, Session<Msg>) {
    let a = HandshakeConfig::new(name("a@localhost"), "bench");
    let b = HandshakeConfig::new(name("b@localhost"), "bench");
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bench setup: bind");
    let addr = listener.local_addr().expect("bench setup: local_addr");
    let dial = async {
        let stream = TcpStream::connect(addr)
            .await
            .expect("bench setup: connect");
        let dir = Direction::Outgoing {
            peer: b.name.clone(),
        };
        handshake_over(stream, dir, &a, no_session).await
    };
    let accept = async {
        let (stream, _) = listener.accept().await.expect("bench setup: accept");
        handshake_over(stream, Direction::Incoming, &b, no_session).await
    };
    let (ca, cb) = tokio::join!(dial, accept);
    let sa = Session::start(
        ca.expect("bench setup: handshake"),
        SessionConfig::default(),
    );
    let sb = Session::start(
        cb.expect("bench setup: handshake"),
        SessionConfig::default(),
    );
    (sa, sb)
}

async fn next(s: &mut Session<Msg>) -> Msg {
    tokio::time::timeout(LIMIT, s.incoming.recv())
        .await
        .expect("bench: no answer within the limit")
        .expect("bench: the session closed")
}

async fn ping(s: &mut Session<Msg>, i: u32) -> (f64, bool) {
    let start = Instant::now();
    s.handle.send(&Msg::Ping(i)).expect("bench: send");
    let mut done = false;
    loop {
        match next(s).await {
            Msg::Pong(j) if j == i => return (start.elapsed().as_secs_f64() * 1e3, done),
            Msg::Done => done = true,
            other => panic!("bench: unexpected {other:?}"),
        }
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("bench setup: runtime");
    let (idle, max, during, large) = rt.block_on(async {
        let (mut sa, mut sb) = sessions().await;
        tokio::spawn(async move {
            while let Some(msg) = sb.incoming.recv().await {
                let answer = match msg {
                    Msg::Ping(i) => Msg::Pong(i),
                    Msg::Large(_) => Msg::Done,
                    _ => continue,
                };
                if sb.handle.send(&answer).is_err() {
                    break;
                }
            }
        });
        let payload = vec![7u8; LARGE];
        let (mut idle, mut max, mut during, mut large) = (vec![], vec![], vec![], vec![]);
        let mut i = 0;
        for _ in 0..ROUNDS {
            let mut worst: f64 = 0.0;
            for _ in 0..IDLE_PINGS {
                i += 1;
                worst = worst.max(ping(&mut sa, i).await.0);
            }
            idle.push(worst);
            let start = Instant::now();
            sa.handle
                .send(&Msg::Large(payload.clone()))
                .expect("bench: send the large message");
            let (mut worst, mut n) = (0.0f64, 0u32);
            loop {
                i += 1;
                let (ms, done) = ping(&mut sa, i).await;
                worst = worst.max(ms);
                n += 1;
                if done {
                    break;
                }
            }
            large.push(start.elapsed().as_secs_f64() * 1e3);
            max.push(worst);
            during.push(f64::from(n));
        }
        (median(idle), median(max), median(during), median(large))
    });
    println!("hol_ping_idle_ms={idle:.3}");
    println!("hol_ping_max_ms={max:.3}");
    println!("hol_pings_during={during:.0}");
    println!("hol_large_ms={large:.1}");
}
