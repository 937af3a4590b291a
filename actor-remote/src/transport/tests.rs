//! Integration tests over loopback sockets; every test is bounded in time.

use std::{
    future::Future,
    sync::{Arc, Mutex},
    time::Duration,
};

use actor_core::NodeName;
use serde::{Deserialize, Serialize};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::{mpsc, oneshot},
    time::timeout,
};

use super::*;
use crate::{
    proto::{Existing, HandshakeConfig, HandshakeError},
    wire::{encode_frame, message::SessionFrame, FrameError, Lane, Laned},
};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum TestMsg {
    Ping(u32),
    Blob(Vec<u8>),
    /// Encoded as one byte string, not a sequence of `u8`s (fast even in a debug build).
    Bytes(#[serde(with = "byte_string")] Vec<u8>),
    /// For actor `actor` (its own lane), numbered `n`, with `bytes`.
    To {
        actor: u64,
        n: u32,
        #[serde(with = "byte_string")]
        bytes: Vec<u8>,
    },
}

/// The other variants keep strict session order.
impl Laned for TestMsg {
    fn lane(&self) -> Lane {
        match self {
            TestMsg::To { actor, .. } => Lane::Key(*actor),
            _ => Lane::Session,
        }
    }
}

mod byte_string {
    use serde::{de, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
        }
        d.deserialize_bytes(Visitor)
    }
}

const LIMIT: Duration = Duration::from_secs(10);

async fn bounded<F: Future>(f: F) -> F::Output {
    match timeout(LIMIT, f).await {
        Ok(out) => out,
        Err(_) => panic!("test did not finish within {LIMIT:?}"),
    }
}

fn cfg(name: &str, cookie: &str) -> HandshakeConfig {
    HandshakeConfig::new(NodeName::parse(name).unwrap(), cookie)
}

fn no_session(_: NodeName) -> std::future::Ready<Existing> {
    std::future::ready(Existing::None)
}

/// Accepts one connection on `listener` and runs the acceptor's handshake on it.
async fn accept_one(
    listener: &TcpListener,
    cfg: &HandshakeConfig,
) -> Result<Connected, HandshakeError> {
    let (stream, _) = listener.accept().await.unwrap();
    handshake_over(stream, Direction::Incoming, cfg, no_session).await
}

async fn dial(
    addr: std::net::SocketAddr,
    ours: &HandshakeConfig,
    peer: &HandshakeConfig,
) -> Result<Connected, HandshakeError> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let direction = Direction::Outgoing {
        peer: peer.name.clone(),
    };
    handshake_over(stream, direction, ours, no_session).await
}

async fn listener() -> (TcpListener, std::net::SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    (l, addr)
}

/// Two nodes connected over loopback, handshake done.
async fn connected(a: &HandshakeConfig, b: &HandshakeConfig) -> (Connected, Connected) {
    let (l, addr) = listener().await;
    let (ca, cb) = tokio::join!(dial(addr, a, b), accept_one(&l, b));
    (ca.unwrap(), cb.unwrap())
}

fn quick_ticks() -> SessionConfig {
    SessionConfig {
        tick_time: Duration::from_secs(1),
        tick_intensity: 4,
        ..SessionConfig::default()
    }
}

#[tokio::test]
async fn handshake_and_session_over_real_sockets() {
    bounded(async {
        let (a, b) = (cfg("a@localhost", "c"), cfg("b@localhost", "c"));
        let (ca, cb) = connected(&a, &b).await;
        assert_eq!(ca.established().peer, b.name);
        assert_eq!(cb.established().peer, a.name);
        let nodelay = |s: &super::Stream| match s {
            super::Stream::Tcp(s) => s.nodelay().unwrap(),
            super::Stream::Memory(_) | super::Stream::Boxed(_) => false,
        };
        assert!(nodelay(&ca.stream) && nodelay(&cb.stream));

        let mut sa = Session::<TestMsg>::start(ca, SessionConfig::default());
        let mut sb = Session::<TestMsg>::start(cb, SessionConfig::default());
        // Many small messages in a burst: they are coalesced and arrive in order.
        for i in 0..10_000 {
            sa.handle.send(&TestMsg::Ping(i)).unwrap();
        }
        sb.handle.send(&TestMsg::Blob(vec![7; 300_000])).unwrap();
        for i in 0..10_000 {
            assert_eq!(sb.incoming.recv().await, Some(TestMsg::Ping(i)));
        }
        assert_eq!(
            sa.incoming.recv().await,
            Some(TestMsg::Blob(vec![7; 300_000]))
        );

        sa.handle.close();
        assert_eq!(sa.closed.await.unwrap(), CloseReason::Disconnect);
        assert_eq!(sb.closed.await.unwrap(), CloseReason::ConnectionClosed);
        assert_eq!(sb.incoming.recv().await, None);
        assert_eq!(sa.handle.send(&TestMsg::Ping(0)), Err(SendError::Closed));
    })
    .await;
}

#[tokio::test]
async fn dropping_every_handle_disconnects() {
    bounded(async {
        let (a, b) = (cfg("a@localhost", "c"), cfg("b@localhost", "c"));
        let (ca, cb) = connected(&a, &b).await;
        let sa = Session::<TestMsg>::start(ca, SessionConfig::default());
        let sb = Session::<TestMsg>::start(cb, SessionConfig::default());
        drop(sa.handle);
        assert_eq!(sa.closed.await.unwrap(), CloseReason::Disconnect);
        assert_eq!(sb.closed.await.unwrap(), CloseReason::ConnectionClosed);
    })
    .await;
}

#[tokio::test]
async fn what_was_queued_before_the_last_handle_was_dropped_is_written_then_the_session_ends() {
    bounded(async {
        let (a, b) = (cfg("a@localhost", "c"), cfg("b@localhost", "c"));
        let (ca, cb) = connected(&a, &b).await;
        let sa = Session::<TestMsg>::start(ca, SessionConfig::default());
        let mut sb = Session::<TestMsg>::start(cb, SessionConfig::default());
        // Small frames (one pending buffer) and a large one (fragments), then no handle.
        for n in 0..100 {
            sa.handle.send(&TestMsg::Ping(n)).unwrap();
        }
        sa.handle
            .send(&TestMsg::Bytes(vec![9; 3 * FRAGMENT_SIZE]))
            .unwrap();
        sa.handle.send(&TestMsg::Ping(100)).unwrap();
        drop(sa.handle);
        for n in 0..100 {
            assert_eq!(sb.incoming.recv().await, Some(TestMsg::Ping(n)));
        }
        assert_eq!(
            sb.incoming.recv().await,
            Some(TestMsg::Bytes(vec![9; 3 * FRAGMENT_SIZE]))
        );
        assert_eq!(sb.incoming.recv().await, Some(TestMsg::Ping(100)));
        assert_eq!(sa.closed.await.unwrap(), CloseReason::Disconnect);
        assert_eq!(sb.closed.await.unwrap(), CloseReason::ConnectionClosed);
    })
    .await;
}

#[tokio::test]
async fn a_closed_session_refuses_sends_and_counts_what_it_lost() {
    bounded(async {
        let (a, b) = (cfg("a@localhost", "c"), cfg("b@localhost", "c"));
        let (ca, cb) = connected(&a, &b).await;
        let sa = Session::<TestMsg>::start(ca, SessionConfig::default());
        let sb = Session::<TestMsg>::start(cb, SessionConfig::default());
        let responder = sa.handle.responder();
        sa.handle.close();
        assert_eq!(sa.closed.await.unwrap(), CloseReason::Disconnect);
        assert!(sa.handle.is_closed());
        assert_eq!(sa.handle.send(&TestMsg::Ping(1)), Err(SendError::Closed));
        assert_eq!(
            sa.handle.send_forced(&TestMsg::Ping(1)),
            Err(SendError::Closed)
        );
        assert_eq!(responder.send(&TestMsg::Ping(1)), Err(SendError::Closed));
        drop(sb);
    })
    .await;
}

/// Queues `frames` messages of 1 MiB for a peer that reads nothing: far more than the
/// socket buffers hold, so the writer blocks in a write with most of them still queued.
fn fill(session: &Session<TestMsg>, frames: usize) {
    for _ in 0..frames {
        session
            .handle
            .send_forced(&TestMsg::Bytes(vec![1; 1 << 20]))
            .unwrap();
    }
}

/// Reads what the peer wrote until it closes the connection: how many bytes.
async fn drain(mut stream: super::Stream) -> usize {
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest).await;
    rest.len()
}

#[tokio::test]
async fn a_close_stops_a_blocked_write_and_counts_what_was_queued_as_lost() {
    bounded(async {
        let (a, b) = (cfg("a@localhost", "c"), cfg("b@localhost", "c"));
        let (silent, cb) = connected(&a, &b).await;
        let config = SessionConfig {
            send_queue_limit: 1 << 20,
            ..SessionConfig::default()
        };
        let stats = config.stats.clone();
        let sb = Session::<TestMsg>::start(cb, config);
        fill(&sb, 32);
        assert!(matches!(
            sb.handle.send(&TestMsg::Ping(0)),
            Err(SendError::Full { .. })
        ));
        // A sender waiting for room is woken by the close.
        let handle = sb.handle.clone();
        let waiter = tokio::spawn(async move { handle.wait_for_room().await });
        sb.handle.close();
        assert_eq!(sb.closed.await.unwrap(), CloseReason::Disconnect);
        waiter.await.unwrap();
        assert!(sb.handle.is_closed());
        let (lost, lost_bytes) = (stats.lost_messages(), stats.lost_bytes());
        assert!((1..=32).contains(&lost), "{lost} messages lost");
        assert!(lost_bytes >= 1 << 20, "{lost_bytes} bytes lost");
        // Nothing more is written once the session is closed: the peer reads less than was
        // queued, then the end of the stream.
        assert!(drain(silent.stream).await < 32 << 20);
    })
    .await;
}

#[tokio::test]
async fn garbage_from_the_peer_ends_a_session_whose_writer_is_blocked() {
    bounded(async {
        let (a, b) = (cfg("a@localhost", "c"), cfg("b@localhost", "c"));
        let (mut silent, cb) = connected(&a, &b).await;
        let config = SessionConfig::default();
        let stats = config.stats.clone();
        let sb = Session::<TestMsg>::start(cb, config);
        fill(&sb, 32);
        let full = sb.handle.queued_bytes();
        // Wait (bounded by the test's limit) until the writer has written something: it is
        // then in a write the peer does not read.
        while sb.handle.queued_bytes() == full {
            tokio::task::yield_now().await;
        }
        // The reader's end (here an undecodable frame) ends the session, the blocked write
        // included.
        let mut bytes = Vec::new();
        encode_frame(
            &SessionFrame::Msg(("not", "a", "message")),
            &mut bytes,
            1 << 20,
        )
        .unwrap();
        silent.stream.write_all(&bytes).await.unwrap();
        let reason = sb.closed.await.unwrap();
        assert!(matches!(reason, CloseReason::Garbage { .. }), "{reason:?}");
        assert!(sb.handle.is_closed());
        assert!(stats.lost_messages() >= 1, "{:?}", stats);
        assert!(drain(silent.stream).await < 32 << 20);
    })
    .await;
}

#[tokio::test]
async fn a_peer_that_goes_away_ends_the_session_and_its_incoming_messages() {
    bounded(async {
        let (a, b) = (cfg("a@localhost", "c"), cfg("b@localhost", "c"));
        let (ca, cb) = connected(&a, &b).await;
        let config = SessionConfig::default();
        let stats = config.stats.clone();
        let mut sb = Session::<TestMsg>::start(cb, config);
        // The peer's socket closes with nothing sent: the reader's end, with the writer idle.
        drop(ca);
        assert_eq!(sb.closed.await.unwrap(), CloseReason::ConnectionClosed);
        assert_eq!(sb.incoming.recv().await, None);
        assert!(sb.handle.is_closed());
        assert_eq!(sb.handle.send(&TestMsg::Ping(1)), Err(SendError::Closed));
        assert_eq!(stats.lost_messages(), 0);
        // A close after the end changes nothing.
        sb.handle.close();
        assert!(sb.handle.is_closed());
    })
    .await;
}

#[tokio::test]
async fn wrong_cookie_over_real_sockets() {
    bounded(async {
        let (a, b) = (cfg("a@localhost", "one"), cfg("b@localhost", "two"));
        let (l, addr) = listener().await;
        let (ra, rb) = tokio::join!(dial(addr, &a, &b), accept_one(&l, &b));
        assert!(matches!(ra, Err(HandshakeError::CookieMismatch { .. })), "{ra:?}");
        let eb = rb.unwrap_err();
        assert_eq!(
            eb.to_string(),
            "connection attempt from node a@localhost rejected: invalid challenge reply; start both nodes with the same cookie"
        );
    })
    .await;
}

#[tokio::test]
async fn garbage_from_a_raw_client_is_refused_and_the_listener_keeps_working() {
    bounded(async {
        let (a, b) = (cfg("a@localhost", "c"), cfg("b@localhost", "c"));
        let (l, addr) = listener().await;

        // An HTTP client: "GET " read as a length is far over the handshake's limit.
        let mut raw = TcpStream::connect(addr).await.unwrap();
        raw.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let err = accept_one(&l, &b).await.unwrap_err();
        assert!(
            matches!(
                err,
                HandshakeError::Undecodable {
                    source: FrameError::TooLarge { .. }
                }
            ),
            "{err:?}"
        );
        // The acceptor closed the socket.
        let mut rest = Vec::new();
        assert_eq!(raw.read_to_end(&mut rest).await.unwrap(), 0);

        // A well-framed body that is not a handshake message.
        let mut raw = TcpStream::connect(addr).await.unwrap();
        raw.write_all(&[0, 0, 0, 3, 0xFF, 0xFF, 0xFF])
            .await
            .unwrap();
        let err = accept_one(&l, &b).await.unwrap_err();
        assert!(
            matches!(
                err,
                HandshakeError::Undecodable {
                    source: FrameError::Body { .. }
                }
            ),
            "{err:?}"
        );

        // A client that connects and closes at once.
        drop(TcpStream::connect(addr).await.unwrap());
        let err = accept_one(&l, &b).await.unwrap_err();
        assert!(matches!(err, HandshakeError::PeerClosed { .. }), "{err:?}");

        // The listener still serves real nodes.
        let (ra, rb) = tokio::join!(dial(addr, &a, &b), accept_one(&l, &b));
        assert!(ra.is_ok() && rb.is_ok());
    })
    .await;
}

#[tokio::test]
async fn silent_client_times_out_the_handshake() {
    bounded(async {
        let mut b = cfg("b@localhost", "c");
        b.setup_time = Duration::from_millis(200);
        let (l, addr) = listener().await;
        let _raw = TcpStream::connect(addr).await.unwrap();
        let err = accept_one(&l, &b).await.unwrap_err();
        assert!(
            matches!(
                err,
                HandshakeError::Timeout {
                    step: "waiting for the initiator's hello",
                    ..
                }
            ),
            "{err:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn garbage_after_the_handshake_closes_the_session() {
    bounded(async {
        let (a, b) = (cfg("a@localhost", "c"), cfg("b@localhost", "c"));
        let (mut ca, cb) = connected(&a, &b).await;
        let sb = Session::<TestMsg>::start(cb, SessionConfig::default());
        // A valid frame whose body is not a SessionFrame<TestMsg>.
        let mut bytes = Vec::new();
        encode_frame(
            &SessionFrame::Msg(("not", "a", "test message")),
            &mut bytes,
            1 << 20,
        )
        .unwrap();
        ca.stream.write_all(&bytes).await.unwrap();
        let reason = sb.closed.await.unwrap();
        assert!(matches!(reason, CloseReason::Garbage { .. }), "{reason:?}");
        let mut rest = Vec::new();
        let _ = ca.stream.read_to_end(&mut rest).await;
    })
    .await;
}

#[tokio::test]
async fn oversized_frame_closes_the_session() {
    bounded(async {
        let (a, b) = (cfg("a@localhost", "c"), cfg("b@localhost", "c"));
        let (ca, cb) = connected(&a, &b).await;
        let sa = Session::<TestMsg>::start(ca, SessionConfig::default());
        let small = SessionConfig {
            max_frame_len: 1024,
            ..SessionConfig::default()
        };
        let sb = Session::<TestMsg>::start(cb, small);
        // The sender's own limit refuses what it cannot send, and the session stays up.
        assert!(matches!(
            sb.handle.send(&TestMsg::Blob(vec![0; 2000])),
            Err(SendError::Frame(FrameError::TooLarge { max: 1024, .. }))
        ));
        sa.handle.send(&TestMsg::Blob(vec![0; 2000])).unwrap();
        let reason = sb.closed.await.unwrap();
        assert!(
            matches!(reason, CloseReason::FrameTooLarge { max: 1024, len } if len > 2000),
            "{reason:?}"
        );
        assert!(reason
            .to_string()
            .ends_with("raise max_frame_len on both nodes if this is legitimate"));
        assert_eq!(sa.closed.await.unwrap(), CloseReason::ConnectionClosed);
    })
    .await;
}

#[tokio::test]
async fn ticks_keep_an_idle_session_alive() {
    bounded(async {
        let (a, b) = (cfg("a@localhost", "c"), cfg("b@localhost", "c"));
        let (ca, cb) = connected(&a, &b).await;
        let mut sa = Session::<TestMsg>::start(ca, quick_ticks());
        let mut sb = Session::<TestMsg>::start(cb, quick_ticks());
        // Three tick times of silence from the node layer: no close on either side. (The
        // timeout asserts that nothing happens; it synchronises nothing.)
        let idle = Duration::from_secs(3);
        assert!(timeout(idle, &mut sa.closed).await.is_err());
        assert!(!sb.handle.is_closed());
        sa.handle.send(&TestMsg::Ping(1)).unwrap();
        assert_eq!(sb.incoming.recv().await, Some(TestMsg::Ping(1)));
        sb.handle.close();
        assert_eq!(sb.closed.await.unwrap(), CloseReason::Disconnect);
        assert_eq!(sa.closed.await.unwrap(), CloseReason::ConnectionClosed);
        assert_eq!(sa.incoming.recv().await, None);
    })
    .await;
}

#[tokio::test]
async fn a_silent_peer_is_a_tick_timeout() {
    bounded(async {
        let (a, b) = (cfg("a@localhost", "c"), cfg("b@localhost", "c"));
        // `silent` completes the handshake through the sans-IO machine, then neither reads
        // nor writes: its socket stays open, as a paused node's would.
        let (silent, cb) = connected(&a, &b).await;
        // From here on the clock is paused (it advances only when every task waits), so the
        // detection time is exact and load cannot stretch it: nothing is received after the
        // handshake, so the peer is down exactly one tick time T after the session starts,
        // not at the first missed tick (T/I) nor later. A detector off by one interval fails.
        tokio::time::pause();
        let ticks = quick_ticks();
        let (tick, interval) = (ticks.tick_time, ticks.tick_time / ticks.tick_intensity);
        let sb = Session::<TestMsg>::start(cb, ticks);
        let started = tokio::time::Instant::now();
        assert_eq!(sb.closed.await.unwrap(), CloseReason::TickTimeout);
        let took = started.elapsed();
        assert!(
            took >= tick - interval && took <= tick + interval / 2,
            "tick timeout after {took:?}, expected about {tick:?}"
        );
        assert!(sb.handle.is_closed() || sb.handle.send(&TestMsg::Ping(0)).is_err());
        drop(silent);
    })
    .await;
}

#[tokio::test]
async fn a_peer_that_stops_reading_is_a_tick_timeout_even_mid_write() {
    bounded(async {
        let (a, b) = (cfg("a@localhost", "c"), cfg("b@localhost", "c"));
        let (silent, cb) = connected(&a, &b).await;
        let sb = Session::<TestMsg>::start(cb, quick_ticks());
        // Far more than the socket buffers hold: the writer blocks in a write.
        for _ in 0..64 {
            sb.handle.send(&TestMsg::Bytes(vec![1; 1 << 20])).unwrap();
        }
        assert_eq!(sb.closed.await.unwrap(), CloseReason::TickTimeout);
        drop(silent);
    })
    .await;
}

#[cfg(feature = "testing")]
#[tokio::test]
async fn a_blocked_peer_is_a_tick_timeout_on_both_sides_and_a_thawed_session_goes_on() {
    bounded(async {
        let (a, b) = (cfg("a@localhost", "c"), cfg("b@localhost", "c"));
        // Blocked on a's side only: a drops what it sends and what it receives, so both
        // sides hear nothing.
        let (ca, cb) = connected(&a, &b).await;
        let faults = Faults::new();
        let with_faults = SessionConfig {
            faults: faults.clone(),
            ..quick_ticks()
        };
        let mut sa = Session::<TestMsg>::start(ca, with_faults.clone());
        let mut sb = Session::<TestMsg>::start(cb, quick_ticks());
        sa.handle.send(&TestMsg::Ping(1)).unwrap();
        assert_eq!(sb.incoming.recv().await, Some(TestMsg::Ping(1)));
        faults.block(b.name.clone());
        sa.handle.send(&TestMsg::Ping(2)).unwrap();
        sb.handle.send(&TestMsg::Ping(3)).unwrap();
        let (ra, rb) = tokio::join!(&mut sa.closed, &mut sb.closed);
        assert_eq!(ra.unwrap(), CloseReason::TickTimeout);
        // b may see a's close (the socket) before its own tick timeout: either is down.
        assert!(matches!(
            rb.unwrap(),
            CloseReason::TickTimeout | CloseReason::ConnectionClosed
        ));
        assert_eq!(sa.incoming.recv().await, None);
        assert_eq!(sb.incoming.recv().await, None);

        // Frozen briefly (well under the tick time), then thawed: the session carries on and
        // what was queued meanwhile arrives.
        faults.clear();
        let (ca, cb) = connected(&a, &b).await;
        let mut sa = Session::<TestMsg>::start(ca, with_faults);
        let mut sb = Session::<TestMsg>::start(cb, quick_ticks());
        faults.freeze();
        sa.handle.send(&TestMsg::Ping(4)).unwrap();
        // Asserts that nothing arrives while frozen; it synchronises nothing.
        assert!(timeout(Duration::from_millis(200), sb.incoming.recv())
            .await
            .is_err());
        faults.thaw();
        assert_eq!(sb.incoming.recv().await, Some(TestMsg::Ping(4)));
        sb.handle.send(&TestMsg::Ping(5)).unwrap();
        assert_eq!(sa.incoming.recv().await, Some(TestMsg::Ping(5)));
    })
    .await;
}

/// README: "64 MiB largest frame". With the default configuration (the session's and the
/// node's), a length prefix of 64 MiB + 1 closes the session with the typed reason at once,
/// from the prefix alone (only 4 bytes are sent, so nothing can have been allocated for the
/// body), and a prefix of exactly 64 MiB is accepted: the session is still up after a wait
/// far longer than the refusal took. A smaller limit refuses both; a larger one, neither.
#[tokio::test]
async fn the_default_largest_frame_is_64_mib_checked_from_the_prefix() {
    const MIB_64: usize = 64 << 20;
    assert_eq!(SessionConfig::default().max_frame_len, MIB_64);
    assert_eq!(
        crate::node::NodeConfig::sname("a@localhost").max_frame_len,
        MIB_64
    );
    bounded(async {
        let (a, b) = (cfg("a@localhost", "c"), cfg("b@localhost", "c"));

        // Just over: refused from the prefix, with the typed reason.
        let (mut ca, cb) = connected(&a, &b).await;
        let sb = Session::<TestMsg>::start(cb, SessionConfig::default());
        let over = u32::try_from(MIB_64 + 1).unwrap();
        ca.stream.write_all(&over.to_be_bytes()).await.unwrap();
        assert_eq!(
            sb.closed.await.unwrap(),
            CloseReason::FrameTooLarge {
                max: MIB_64,
                len: MIB_64 + 1
            }
        );

        // Exactly the limit: accepted (the session waits for the body, which never comes).
        let (mut ca, cb) = connected(&a, &b).await;
        let mut sb = Session::<TestMsg>::start(cb, SessionConfig::default());
        let max = u32::try_from(MIB_64).unwrap();
        ca.stream.write_all(&max.to_be_bytes()).await.unwrap();
        // Asserts an absence after a wait the refusal above would have satisfied many times.
        assert!(
            timeout(Duration::from_millis(500), &mut sb.closed)
                .await
                .is_err(),
            "a frame of exactly 64 MiB is refused"
        );
        assert!(!sb.handle.is_closed());
    })
    .await;
}

/// What a `tracing` subscriber wrote, shared with the test.
#[derive(Clone, Default)]
struct LogBuf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// README: "coalescing writer". A burst of frames queued at once reaches the socket in far
/// fewer writes than frames. The writer reports each socket write as a trace event (`write`,
/// with `frame.len`, the bytes of that write); the test counts them on this thread, where the
/// current-thread runtime runs both sessions, and checks they carry every byte of the burst.
/// A writer that writes each frame on its own makes one write per frame.
#[tokio::test]
async fn a_burst_of_frames_reaches_the_socket_in_fewer_writes_than_frames() {
    const FRAMES: u32 = 1000;
    let logs = LogBuf::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::TRACE)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    // A second live dispatcher: see `every_dispatcher_asked` in node/tests.rs.
    let _second = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());
    bounded(async {
        let (a, b) = (cfg("a@localhost", "c"), cfg("b@localhost", "c"));
        let (ca, cb) = connected(&a, &b).await;
        let sa = Session::<TestMsg>::start(ca, SessionConfig::default());
        let mut sb = Session::<TestMsg>::start(cb, SessionConfig::default());
        let mut expected_bytes = 0;
        for i in 0..FRAMES {
            let mut frame = Vec::new();
            encode_frame(&SessionFrame::Msg(TestMsg::Ping(i)), &mut frame, usize::MAX).unwrap();
            expected_bytes += frame.len();
            sa.handle.send(&TestMsg::Ping(i)).unwrap();
        }
        for i in 0..FRAMES {
            assert_eq!(sb.incoming.recv().await, Some(TestMsg::Ping(i)));
        }
        let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
        // Only a's session writes here (b sends nothing, and ticks are a minute apart).
        let writes: Vec<usize> = text
            .lines()
            .filter(|l| l.contains("actor_remote::transport::session") && l.contains(" write "))
            .map(|l| {
                let len = l.split("frame.len=").nth(1).expect("a frame.len field");
                len.trim().parse().expect("a length")
            })
            .collect();
        assert_eq!(
            writes.iter().sum::<usize>(),
            expected_bytes,
            "the writes carry the whole burst: {writes:?}"
        );
        assert!(
            !writes.is_empty() && writes.len() * 10 <= FRAMES as usize,
            "{FRAMES} frames took {} writes",
            writes.len()
        );
    })
    .await;
}

/// Issue 13: every queue between a sender and the socket is bounded. A receiver whose node
/// does not take its messages stops reading at `INCOMING_CAPACITY`, TCP slows the sender,
/// whose write queue fills to `send_queue_limit` and then refuses with `Full` (counted),
/// never past the bound; once the receiver takes its messages, the sender has room again
/// (`wait_for_room` resolves) and nothing sent with `Ok` was lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_does_not_keep_up_fills_the_senders_bounded_queue() {
    const LIMIT: usize = 64 << 10;
    bounded(async {
        let (a, b) = (cfg("a@localhost", "c"), cfg("b@localhost", "c"));
        let (ca, cb) = connected(&a, &b).await;
        let small = SessionConfig {
            send_queue_limit: LIMIT,
            ..SessionConfig::default()
        };
        let stats = small.stats.clone();
        let sa = Session::<TestMsg>::start(ca, small);
        let mut sb = Session::<TestMsg>::start(cb, SessionConfig::default());
        let blob = TestMsg::Blob(vec![7; 1024]);
        let mut sent = 0usize;
        let mut full = false;
        // Until the queue stays full (the receiver's buffers and the sockets' are full too);
        // 256 MiB at most: without bounds on the receiver it never stays full.
        for _ in 0..256 * 1024 {
            match sa.handle.send(&blob) {
                Ok(()) => sent += 1,
                Err(SendError::Full { limit: LIMIT }) => {
                    let room = timeout(Duration::from_millis(300), sa.handle.wait_for_room());
                    if room.await.is_err() {
                        full = true;
                        break;
                    }
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert!(full, "the sender's queue never stayed full ({sent} sent)");
        assert!(stats.busy() >= 1);
        assert!(
            stats.queued_high_water() < LIMIT + 2048,
            "{} bytes queued",
            stats.queued_high_water()
        );
        assert!(sa.handle.queued_bytes() >= LIMIT);
        // The receiver takes everything; the sender has room again.
        for _ in 0..sent {
            assert_eq!(sb.incoming.recv().await, Some(blob.clone()));
        }
        sa.handle.wait_for_room().await;
        sa.handle.send(&TestMsg::Ping(1)).unwrap();
        assert_eq!(sb.incoming.recv().await, Some(TestMsg::Ping(1)));
    })
    .await;
}

/// A large message is fragmented and reassembled intact, and a small message sent after it
/// arrives after it (order per session, as the BEAM orders messages per pair).
#[tokio::test]
async fn a_small_message_sent_after_a_large_one_arrives_after_it_intact() {
    bounded(async {
        let (a, b) = (cfg("a@localhost", "c"), cfg("b@localhost", "c"));
        let (ca, cb) = connected(&a, &b).await;
        let sa = Session::<TestMsg>::start(ca, SessionConfig::default());
        let mut sb = Session::<TestMsg>::start(cb, SessionConfig::default());
        let mut blob = vec![0u8; 55 << 20];
        for (i, b) in blob.chunks_mut(251).enumerate() {
            b.fill(i as u8);
        }
        sa.handle.send(&TestMsg::Bytes(blob.clone())).unwrap();
        sa.handle.send(&TestMsg::Ping(1)).unwrap();
        assert!(sb.incoming.recv().await == Some(TestMsg::Bytes(blob)));
        assert_eq!(sb.incoming.recv().await, Some(TestMsg::Ping(1)));
        assert_eq!(sa.handle.queued_bytes(), 0);
    })
    .await;
}

/// Large and small messages interleaved arrive in the order they were sent.
#[tokio::test]
async fn fragmented_and_small_messages_keep_their_order() {
    bounded(async {
        let (a, b) = (cfg("a@localhost", "c"), cfg("b@localhost", "c"));
        let (ca, cb) = connected(&a, &b).await;
        let sa = Session::<TestMsg>::start(ca, SessionConfig::default());
        let mut sb = Session::<TestMsg>::start(cb, SessionConfig::default());
        let big = |i: u8| TestMsg::Bytes(vec![i; FRAGMENT_SIZE * 3 + usize::from(i)]);
        let mut sent = Vec::new();
        for i in 0..5 {
            sent.push(big(i));
            sent.push(TestMsg::Ping(u32::from(i)));
            sent.push(TestMsg::Ping(100 + u32::from(i)));
        }
        for msg in &sent {
            sa.handle.send(msg).unwrap();
        }
        let mut got = Vec::new();
        for _ in 0..sent.len() {
            got.push(sb.incoming.recv().await.unwrap());
        }
        assert!(got == sent, "messages arrived out of order");
    })
    .await;
}

fn to(actor: u64, n: u32, len: usize) -> TestMsg {
    let mut bytes = vec![0u8; len];
    for (i, b) in bytes.chunks_mut(251).enumerate() {
        b.fill(i as u8 ^ n as u8);
    }
    TestMsg::To { actor, n, bytes }
}

/// Issue 13, head-of-line blocking: a small message to another actor, sent after a 55 MiB
/// one, arrives before the large one (which is still intact); the writer interleaves it
/// with the large message's fragments, and the reader delivers it while the large one is
/// decoded.
#[tokio::test]
async fn a_small_message_to_another_actor_overtakes_a_large_one() {
    bounded(async {
        let (a, b) = (cfg("a@localhost", "c"), cfg("b@localhost", "c"));
        let (ca, cb) = connected(&a, &b).await;
        let sa = Session::<TestMsg>::start(ca, SessionConfig::default());
        let mut sb = Session::<TestMsg>::start(cb, SessionConfig::default());
        let large = to(1, 0, 55 << 20);
        sa.handle.send(&large).unwrap();
        sa.handle.send(&to(2, 1, 10)).unwrap();
        assert_eq!(sb.incoming.recv().await, Some(to(2, 1, 10)));
        assert!(sb.incoming.recv().await == Some(large));
        assert_eq!(sa.handle.queued_bytes(), 0);
    })
    .await;
}

/// The order per actor holds across a large message: a small message to the same actor
/// arrives after it (the writer holds it back until the last fragment is written, the
/// reader until the large one is decoded and delivered), while one to another actor, sent
/// after both, arrives first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_message_to_the_same_actor_waits_for_the_large_one() {
    bounded(async {
        let (a, b) = (cfg("a@localhost", "c"), cfg("b@localhost", "c"));
        let (ca, cb) = connected(&a, &b).await;
        let sa = Session::<TestMsg>::start(ca, SessionConfig::default());
        let mut sb = Session::<TestMsg>::start(cb, SessionConfig::default());
        let large = to(1, 0, 20 << 20);
        sa.handle.send(&large).unwrap();
        sa.handle.send(&to(1, 1, 10)).unwrap();
        sa.handle.send(&to(1, 2, 10)).unwrap();
        sa.handle.send(&to(2, 3, 10)).unwrap();
        assert_eq!(sb.incoming.recv().await, Some(to(2, 3, 10)));
        assert!(sb.incoming.recv().await == Some(large));
        assert_eq!(sb.incoming.recv().await, Some(to(1, 1, 10)));
        assert_eq!(sb.incoming.recv().await, Some(to(1, 2, 10)));
    })
    .await;
}

/// Messages of every size to a few actors, interleaved: each actor's messages arrive in the
/// order sent, and every message arrives intact.
#[tokio::test]
async fn messages_of_all_sizes_keep_their_order_per_actor() {
    bounded(async {
        let (a, b) = (cfg("a@localhost", "c"), cfg("b@localhost", "c"));
        let (ca, cb) = connected(&a, &b).await;
        let sa = Session::<TestMsg>::start(ca, SessionConfig::default());
        let mut sb = Session::<TestMsg>::start(cb, SessionConfig::default());
        // Small, fragmented and decoded on the reader, fragmented and decoded off it.
        let sizes = [10, FRAGMENT_SIZE * 3, 2 << 20];
        let mut seed = 0x9e37_79b9_u32;
        let mut sent = Vec::new();
        // All queued before the writer runs (one thread): well under send_queue_limit.
        for n in 0..40 {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            let size = sizes[(seed % 3) as usize];
            let msg = to(u64::from(seed >> 8) % 3, n, size);
            sa.handle.send(&msg).unwrap();
            sent.push(msg);
        }
        let mut got = Vec::new();
        for _ in 0..sent.len() {
            got.push(sb.incoming.recv().await.unwrap());
        }
        let of = |list: &[TestMsg], actor: u64| -> Vec<u32> {
            list.iter()
                .filter_map(|m| match m {
                    TestMsg::To { actor: a, n, .. } if *a == actor => Some(*n),
                    _ => None,
                })
                .collect()
        };
        for actor in 0..3 {
            assert_eq!(of(&got, actor), of(&sent, actor), "actor {actor}");
        }
        for msg in &got {
            let TestMsg::To { n, bytes, .. } = msg else {
                panic!("unexpected {msg:?}");
            };
            assert!(
                sent.contains(msg),
                "message {n} ({} bytes) damaged",
                bytes.len()
            );
        }
        // Some small message overtook a large one (the point of lanes).
        assert_ne!(got, sent, "nothing overtook a large message");
    })
    .await;
}

/// A peer whose fragments add up to more than `max_frame_len` closes the session (hostile
/// input), with a reason that says so.
#[tokio::test]
async fn fragments_over_the_limit_close_the_session() {
    bounded(async {
        let (a, b) = (cfg("a@localhost", "c"), cfg("b@localhost", "c"));
        let (mut ca, cb) = connected(&a, &b).await;
        let small = SessionConfig {
            max_frame_len: 100_000,
            ..SessionConfig::default()
        };
        let sb = Session::<TestMsg>::start(cb, small);
        let mut bytes = Vec::new();
        for _ in 0..3 {
            let fragment = SessionFrame::<TestMsg>::Fragment {
                last: false,
                lane: Lane::Session,
                bytes: vec![0; 40_000],
            };
            encode_frame(&fragment, &mut bytes, 1 << 20).unwrap();
        }
        ca.stream.write_all(&bytes).await.unwrap();
        let reason = sb.closed.await.unwrap();
        assert_eq!(
            reason,
            CloseReason::MessageTooLarge {
                len: 120_000,
                max: 100_000
            }
        );
        let mut rest = Vec::new();
        let _ = ca.stream.read_to_end(&mut rest).await;
    })
    .await;
}

/// A fragment's encoding starts with its variant's index and `last`, which the reader reads
/// to drop a partly lost message whole (injected faults).
#[test]
fn a_fragment_starts_with_its_tag_and_last() {
    for last in [false, true] {
        let mut bytes = Vec::new();
        let fragment = SessionFrame::<TestMsg>::Fragment {
            last,
            lane: Lane::Key(3),
            bytes: vec![9; 3],
        };
        encode_frame(&fragment, &mut bytes, 1 << 20).unwrap();
        assert_eq!(bytes[4..6], [2, u8::from(last)]);
    }
}

/// Issue 13, "answers bypass the queue bound": a queue full of casts does not drop the answer
/// to a call (the `Responder`, as an inline handler answers with), yet answers are bounded
/// too, at twice `send_queue_limit`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_are_taken_when_casts_fill_the_queue_and_are_bounded_too() {
    const LIMIT: usize = 64 << 10;
    bounded(async {
        let (a, b) = (cfg("a@localhost", "c"), cfg("b@localhost", "c"));
        // The peer never reads: the queue fills.
        let (silent, cb) = connected(&a, &b).await;
        let small = SessionConfig {
            send_queue_limit: LIMIT,
            ..SessionConfig::default()
        };
        let sb = Session::<TestMsg>::start(cb, small);
        let cast = TestMsg::Bytes(vec![7; 1024]);
        let mut full = false;
        for _ in 0..256 * 1024 {
            match sb.handle.send(&cast) {
                Ok(()) => {}
                Err(SendError::Full { limit: LIMIT }) => {
                    let room = timeout(Duration::from_millis(300), sb.handle.wait_for_room());
                    if room.await.is_err() {
                        full = true;
                        break;
                    }
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert!(full, "the queue never stayed full");
        let responder = sb.handle.responder();
        responder.send(&TestMsg::Ping(1)).unwrap();
        let mut answers = 1;
        let refused = loop {
            match responder.send(&cast) {
                Ok(()) => answers += 1,
                Err(e) => break e,
            }
            assert!(answers < 10_000, "answers are not bounded");
        };
        assert_eq!(refused, SendError::Full { limit: 2 * LIMIT });
        assert!(sb.handle.queued_bytes() >= 2 * LIMIT);
        assert!(sb.handle.queued_bytes() < 2 * LIMIT + 2048);
        drop(silent);
    })
    .await;
}

// Sessions served by a `Handler` (`Session::prepare`, `Prepared::serve`): what the handler
// and `OnClose` see, and when.

/// What a served session's handler, its work and its `OnClose` saw, in the order they saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Msg(TestMsg),
    /// The work left for this message finished.
    WorkDone(u32),
    /// The work left for this message was dropped unfinished.
    WorkDropped(u32),
    /// `OnClose` was called with this reason.
    Closed(CloseReason),
}

/// A served session's record of what it saw, shared with the test.
type Log = Arc<Mutex<Vec<Seen>>>;

fn record(log: &Log, seen: Seen) {
    log.lock().unwrap().push(seen);
}

fn seen(log: &Log) -> Vec<Seen> {
    log.lock().unwrap().clone()
}

/// A handler that records every message in `log` and forwards it on `tx`; it holds `alive`
/// (to tell when the handler has been dropped).
fn recording(log: &Log, tx: mpsc::UnboundedSender<TestMsg>, alive: Arc<()>) -> Handler<TestMsg> {
    let log = log.clone();
    Box::new(move |msg, _| {
        let _alive = &alive;
        record(&log, Seen::Msg(msg.clone()));
        let _ = tx.send(msg);
        None
    })
}

/// An `OnClose` that records the reason in `log` (with whether the handler was dropped by
/// then: `alive` gone) and sends it on the receiver returned.
/// Serves `prepared` with [`recording`] and [`closing`]: its handle, the log, the messages
/// handled, and the end (with whether the handler was dropped by then).
#[allow(clippy::type_complexity)] // a test's tuple of what it looks at
fn serve_recorded(
    prepared: Prepared<TestMsg>,
) -> (
    SessionHandle<TestMsg>,
    Log,
    mpsc::UnboundedReceiver<TestMsg>,
    oneshot::Receiver<(CloseReason, bool)>,
) {
    let hb = prepared.handle().clone();
    let log = Log::default();
    let (tx, rx) = mpsc::unbounded_channel();
    let alive = Arc::new(());
    let (on_close, closed) = closing(&log, Arc::downgrade(&alive));
    prepared.serve(recording(&log, tx, alive), None, on_close);
    (hb, log, rx, closed)
}

fn closing(
    log: &Log,
    alive: std::sync::Weak<()>,
) -> (OnClose, oneshot::Receiver<(CloseReason, bool)>) {
    let (tx, rx) = oneshot::channel();
    let log = log.clone();
    let on_close: OnClose = Box::new(move |reason| {
        let handler_dropped = alive.upgrade().is_none();
        record(&log, Seen::Closed(reason.clone()));
        let _ = tx.send((reason, handler_dropped));
    });
    (on_close, rx)
}

fn pings(range: std::ops::Range<u32>) -> Vec<Seen> {
    range.map(|n| Seen::Msg(TestMsg::Ping(n))).collect()
}

/// How many `Closed` markers `log` holds.
fn closes(log: &[Seen]) -> usize {
    log.iter()
        .filter(|seen| matches!(seen, Seen::Closed(_)))
        .count()
}

/// Waits (bounded by the test's limit) until everything queued on `handle` was written.
async fn written<T>(handle: &SessionHandle<T>) {
    while handle.queued_bytes() > 0 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn a_served_session_hands_every_message_to_its_handler_in_order_and_waits_for_its_work() {
    bounded(async {
        let (a, b) = (cfg("a@localhost", "c"), cfg("b@localhost", "c"));
        let (ca, cb) = connected(&a, &b).await;
        let mut sa = Session::<TestMsg>::start(ca, SessionConfig::default());
        let prepared = Session::<TestMsg>::prepare(cb, SessionConfig::default());
        let hb = prepared.handle().clone();
        let log = Log::default();
        let (tx, mut rx) = mpsc::unbounded_channel();
        // Message 10 leaves work that waits for `gate`; message 99 is answered.
        let (gate_tx, gate_rx) = oneshot::channel::<()>();
        let (started_tx, started_rx) = oneshot::channel();
        let mut gate = Some((gate_rx, started_tx));
        let handler: Handler<TestMsg> = {
            let log = log.clone();
            Box::new(move |msg, responder| {
                record(&log, Seen::Msg(msg.clone()));
                let n = match msg {
                    TestMsg::Ping(n) => n,
                    other => panic!("unexpected {other:?}"),
                };
                let _ = tx.send(n);
                if n == 99 {
                    responder.send(&TestMsg::Ping(1000)).unwrap();
                }
                if n != 10 {
                    return None;
                }
                let (gate_rx, started_tx) = gate.take()?;
                let log = log.clone();
                Some(Box::pin(async move {
                    let _ = started_tx.send(());
                    gate_rx.await.unwrap();
                    record(&log, Seen::WorkDone(10));
                }) as Work)
            })
        };
        let (on_close, _closed) = closing(&log, std::sync::Weak::new());
        prepared.serve(handler, None, on_close);

        for n in 0..100 {
            sa.handle.send(&TestMsg::Ping(n)).unwrap();
        }
        for n in 0..=10 {
            assert_eq!(rx.recv().await, Some(n));
        }
        started_rx.await.unwrap();
        // Every message has left `a` (the rest wait at `b`), and none after 10 is handled
        // while its work waits.
        written(&sa.handle).await;
        let early = timeout(Duration::from_millis(200), rx.recv()).await;
        assert!(early.is_err(), "handled while the work waited: {early:?}");
        assert_eq!(seen(&log), pings(0..11));

        gate_tx.send(()).unwrap();
        for n in 11..100 {
            assert_eq!(rx.recv().await, Some(n));
        }
        let mut expected = pings(0..11);
        expected.push(Seen::WorkDone(10));
        expected.extend(pings(11..100));
        assert_eq!(seen(&log), expected);
        // The handler's responder answers on the session.
        assert_eq!(sa.incoming.recv().await, Some(TestMsg::Ping(1000)));
        assert!(!hb.is_closed());
    })
    .await;
}

#[tokio::test]
async fn on_close_hears_the_peers_close_once_after_every_message_was_handled() {
    bounded(async {
        let (a, b) = (cfg("a@localhost", "c"), cfg("b@localhost", "c"));
        let (ca, cb) = connected(&a, &b).await;
        let sa = Session::<TestMsg>::start(ca, SessionConfig::default());
        let prepared = Session::<TestMsg>::prepare(cb, SessionConfig::default());
        let (hb, log, mut rx, closed) = serve_recorded(prepared);

        for n in 0..100 {
            sa.handle.send(&TestMsg::Ping(n)).unwrap();
        }
        for n in 0..100 {
            assert_eq!(rx.recv().await, Some(TestMsg::Ping(n)));
        }
        sa.handle.close();
        assert_eq!(sa.closed.await.unwrap(), CloseReason::Disconnect);
        let (reason, handler_dropped) = closed.await.unwrap();
        assert_eq!(reason, CloseReason::ConnectionClosed);
        assert!(handler_dropped, "the handler outlived the session's end");
        // The handler is gone with the reader: its channel ends.
        assert_eq!(rx.recv().await, None);
        let mut expected = pings(0..100);
        expected.push(Seen::Closed(CloseReason::ConnectionClosed));
        assert_eq!(seen(&log), expected);
        assert!(hb.is_closed());
        assert_eq!(hb.send(&TestMsg::Ping(0)), Err(SendError::Closed));
    })
    .await;
}

/// The close races the reader: the handler itself closes the session at message 1,000
/// while `a` is still sending and more frames wait in the reader's buffer, and the writer
/// that ends the session runs on another worker. Whatever was handled, `OnClose` comes
/// once, last.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_close_hears_a_local_close_once_and_the_handler_is_never_called_after_it() {
    const SENT: u32 = 20_000;
    const CLOSE_AT: u32 = 1_000;
    bounded(async {
        let (a, b) = (cfg("a@localhost", "c"), cfg("b@localhost", "c"));
        let (ca, cb) = connected(&a, &b).await;
        let sa = Session::<TestMsg>::start(ca, SessionConfig::default());
        let prepared = Session::<TestMsg>::prepare(cb, SessionConfig::default());
        let hb = prepared.handle().clone();
        let log = Log::default();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let alive = Arc::new(());
        let (on_close, closed) = closing(&log, Arc::downgrade(&alive));
        let handler: Handler<TestMsg> = {
            let mut record = recording(&log, tx, alive);
            let closer = hb.clone();
            Box::new(move |msg, responder| {
                let close = msg == TestMsg::Ping(CLOSE_AT);
                let work = record(msg, responder);
                if close {
                    closer.close();
                }
                work
            })
        };
        prepared.serve(handler, None, on_close);

        // (`a`'s session may end before it has queued them all.)
        for n in 0..SENT {
            if sa.handle.send_forced(&TestMsg::Ping(n)).is_err() {
                assert!(n > CLOSE_AT, "refused at {n}");
                break;
            }
        }
        let (reason, handler_dropped) = closed.await.unwrap();
        assert_eq!(reason, CloseReason::Disconnect);
        assert!(handler_dropped, "the handler outlived the session's end");
        // Everything the handler forwarded was forwarded before the end: the channel ends.
        let mut forwarded = 0;
        while let Some(msg) = rx.recv().await {
            assert_eq!(msg, TestMsg::Ping(forwarded));
            forwarded += 1;
        }
        // `a` sees the end too (its close, or a reset if `b` left bytes unread).
        let theirs = sa.closed.await.unwrap();
        assert!(
            matches!(
                theirs,
                CloseReason::ConnectionClosed | CloseReason::Io { .. }
            ),
            "{theirs:?}"
        );
        let log = seen(&log);
        let handled = log.len() - 1;
        assert_eq!(handled, forwarded as usize);
        assert!(
            (CLOSE_AT as usize + 1..=SENT as usize).contains(&handled),
            "{handled} handled"
        );
        let mut expected = pings(0..handled as u32);
        expected.push(Seen::Closed(CloseReason::Disconnect));
        assert_eq!(log, expected);
        assert_eq!(closes(&log), 1);
        println!(
            "{} of {SENT} messages handled after the close at {CLOSE_AT}",
            handled - CLOSE_AT as usize - 1
        );
    })
    .await;
}

#[tokio::test]
async fn what_is_sent_on_a_prepared_handle_before_serve_is_delivered_once_served() {
    bounded(async {
        let (a, b) = (cfg("a@localhost", "c"), cfg("b@localhost", "c"));
        let (ca, cb) = connected(&a, &b).await;
        let prepared = Session::<TestMsg>::prepare(ca, SessionConfig::default());
        let mut sb = Session::<TestMsg>::start(cb, SessionConfig::default());
        // Both ways before `a` is served: `a`'s queue holds its messages, the socket `b`'s.
        for n in 0..10 {
            prepared.handle().send(&TestMsg::Ping(n)).unwrap();
            sb.handle.send(&TestMsg::Ping(100 + n)).unwrap();
        }
        assert!(prepared.handle().queued_bytes() > 0);
        assert!(!prepared.handle().is_closed());
        let early = timeout(Duration::from_millis(100), sb.incoming.recv()).await;
        assert!(early.is_err(), "delivered before serve: {early:?}");

        let ha = prepared.handle().clone();
        let log = Log::default();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let (on_close, _closed) = closing(&log, std::sync::Weak::new());
        prepared.serve(recording(&log, tx, Arc::new(())), None, on_close);
        for n in 0..10 {
            assert_eq!(sb.incoming.recv().await, Some(TestMsg::Ping(n)));
        }
        for n in 0..10 {
            assert_eq!(rx.recv().await, Some(TestMsg::Ping(100 + n)));
        }
        // Sent after serve: after them.
        ha.send(&TestMsg::Ping(10)).unwrap();
        assert_eq!(sb.incoming.recv().await, Some(TestMsg::Ping(10)));
        written(&ha).await;
        assert!(!ha.is_closed());
    })
    .await;
}

/// `serve` drops the prepared session's own handle: with no clone kept, the session is one
/// whose last handle is gone, so it writes what was queued and ends (`Disconnect`).
#[tokio::test]
async fn a_prepared_session_served_with_no_handle_kept_writes_its_queue_then_disconnects() {
    bounded(async {
        let (a, b) = (cfg("a@localhost", "c"), cfg("b@localhost", "c"));
        let (ca, cb) = connected(&a, &b).await;
        let prepared = Session::<TestMsg>::prepare(ca, SessionConfig::default());
        let mut sb = Session::<TestMsg>::start(cb, SessionConfig::default());
        for n in 0..10 {
            prepared.handle().send(&TestMsg::Ping(n)).unwrap();
        }
        let log = Log::default();
        let (tx, _rx) = mpsc::unbounded_channel();
        let (on_close, closed) = closing(&log, std::sync::Weak::new());
        prepared.serve(recording(&log, tx, Arc::new(())), None, on_close);
        for n in 0..10 {
            assert_eq!(sb.incoming.recv().await, Some(TestMsg::Ping(n)));
        }
        assert_eq!(sb.incoming.recv().await, None);
        assert_eq!(sb.closed.await.unwrap(), CloseReason::ConnectionClosed);
        assert_eq!(closed.await.unwrap().0, CloseReason::Disconnect);
        assert_eq!(seen(&log), vec![Seen::Closed(CloseReason::Disconnect)]);
    })
    .await;
}

#[tokio::test]
async fn dropping_a_prepared_session_unserved_ends_the_peers_session() {
    bounded(async {
        let (a, b) = (cfg("a@localhost", "c"), cfg("b@localhost", "c"));
        // The peer served: its `OnClose` hears the end.
        let (ca, cb) = connected(&a, &b).await;
        let prepared = Session::<TestMsg>::prepare(ca, SessionConfig::default());
        let peer = Session::<TestMsg>::prepare(cb, SessionConfig::default());
        let (hb, log, mut rx, closed) = serve_recorded(peer);
        drop(prepared);
        let (reason, handler_dropped) = closed.await.unwrap();
        assert_eq!(reason, CloseReason::ConnectionClosed);
        assert!(handler_dropped);
        assert_eq!(rx.recv().await, None);
        assert_eq!(
            seen(&log),
            vec![Seen::Closed(CloseReason::ConnectionClosed)]
        );
        assert!(hb.is_closed());

        // The peer started: its incoming ends. The unserved session's own handle sees the
        // session closed: sends are refused, what was queued is lost, nobody waits for room.
        let (ca, cb) = connected(&a, &b).await;
        let config = SessionConfig::default();
        let stats = config.stats.clone();
        let prepared = Session::<TestMsg>::prepare(ca, config);
        let ha = prepared.handle().clone();
        ha.send(&TestMsg::Ping(1)).unwrap();
        let mut sb = Session::<TestMsg>::start(cb, SessionConfig::default());
        drop(prepared);
        assert!(ha.is_closed());
        assert!(matches!(ha.send(&TestMsg::Ping(2)), Err(SendError::Closed)));
        assert_eq!(stats.lost_messages(), 1);
        ha.wait_for_room().await;
        assert_eq!(sb.incoming.recv().await, None);
        assert_eq!(sb.closed.await.unwrap(), CloseReason::ConnectionClosed);
    })
    .await;
}

/// A handler that records each message and, for the first, returns work that waits for a
/// gate that never opens (recording when it is dropped): the gate's sender, to see that the
/// work was dropped, and a receiver that resolves once the work has started.
fn gated(log: &Log) -> (Handler<TestMsg>, oneshot::Sender<()>, oneshot::Receiver<()>) {
    let (gate_tx, gate_rx) = oneshot::channel::<()>();
    let (started_tx, started_rx) = oneshot::channel();
    let mut gate = Some((gate_rx, started_tx));
    let log = log.clone();
    let handler: Handler<TestMsg> = Box::new(move |msg, _| {
        record(&log, Seen::Msg(msg));
        let (gate_rx, started_tx) = gate.take()?;
        let dropped = DropRecord(log.clone(), Seen::WorkDropped(0));
        Some(Box::pin(async move {
            let _dropped = dropped;
            let _ = started_tx.send(());
            let _ = gate_rx.await;
            unreachable!("the gate never opens");
        }) as Work)
    });
    (handler, gate_tx, started_rx)
}

/// A handler's work still waiting when the session ends is dropped with the reader (the
/// node wraps a task start in `Finish` for this), and the end is still reported.
#[tokio::test]
async fn work_pending_when_the_session_is_closed_is_dropped_and_on_close_still_fires() {
    bounded(async {
        let (a, b) = (cfg("a@localhost", "c"), cfg("b@localhost", "c"));
        let (ca, cb) = connected(&a, &b).await;
        let sa = Session::<TestMsg>::start(ca, SessionConfig::default());
        let prepared = Session::<TestMsg>::prepare(cb, SessionConfig::default());
        let hb = prepared.handle().clone();
        let log = Log::default();
        let (handler, gate_tx, started_rx) = gated(&log);
        let (on_close, closed) = closing(&log, std::sync::Weak::new());
        prepared.serve(handler, None, on_close);
        sa.handle.send(&TestMsg::Ping(0)).unwrap();
        sa.handle.send(&TestMsg::Ping(1)).unwrap();
        started_rx.await.unwrap();

        hb.close();
        let (reason, _) = closed.await.unwrap();
        assert_eq!(reason, CloseReason::Disconnect);
        assert!(gate_tx.is_closed(), "the pending work was not dropped");
        assert_eq!(
            seen(&log),
            vec![
                Seen::Msg(TestMsg::Ping(0)),
                Seen::WorkDropped(0),
                Seen::Closed(CloseReason::Disconnect),
            ]
        );
        assert_eq!(sa.closed.await.unwrap(), CloseReason::ConnectionClosed);
    })
    .await;
}

/// The peer's close is not read while the reader waits for work (it reads nothing
/// meanwhile): the session still ends, by its writer (a failed write or the tick timeout),
/// and the pending work is dropped.
#[tokio::test]
async fn work_pending_when_the_peer_goes_away_is_dropped_and_on_close_still_fires() {
    bounded(async {
        let (a, b) = (cfg("a@localhost", "c"), cfg("b@localhost", "c"));
        let (ca, cb) = connected(&a, &b).await;
        let sa = Session::<TestMsg>::start(ca, SessionConfig::default());
        let prepared = Session::<TestMsg>::prepare(cb, quick_ticks());
        let _hb = prepared.handle().clone();
        let log = Log::default();
        let (handler, gate_tx, started_rx) = gated(&log);
        let (on_close, closed) = closing(&log, std::sync::Weak::new());
        prepared.serve(handler, None, on_close);
        sa.handle.send(&TestMsg::Ping(0)).unwrap();
        started_rx.await.unwrap();

        sa.handle.close();
        assert_eq!(sa.closed.await.unwrap(), CloseReason::Disconnect);
        let (reason, _) = closed.await.unwrap();
        println!("ended with {reason:?}");
        assert!(
            matches!(
                reason,
                CloseReason::TickTimeout | CloseReason::Io { .. } | CloseReason::ConnectionClosed
            ),
            "{reason:?}"
        );
        assert!(gate_tx.is_closed(), "the pending work was not dropped");
        assert_eq!(
            seen(&log),
            vec![
                Seen::Msg(TestMsg::Ping(0)),
                Seen::WorkDropped(0),
                Seen::Closed(reason),
            ]
        );
    })
    .await;
}

/// Records `.1` in the log `.0` when dropped.
struct DropRecord(Log, Seen);

impl Drop for DropRecord {
    fn drop(&mut self) {
        record(&self.0, self.1.clone());
    }
}
