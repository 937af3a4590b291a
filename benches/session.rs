//! Node-to-node sessions against plain TCP, between two OS processes on loopback.
//!
//! `cargo bench --bench session` re-executes its own binary as the peer (the child listens on
//! `127.0.0.1:0` and prints its port), then measures, with baseline and nodus rounds
//! interleaved so that machine noise hits both alike:
//!
//! - **round trip**: sequential ping-pong of 64-byte payloads, in µs per round trip;
//! - **one-way frames/s**: the client sends N 64-byte payloads back to back, the peer counts
//!   them and confirms the count at the end.
//!
//! The baseline is plain TCP with blocking sockets: frames of a u32 big-endian length and a
//! 64-byte body, `TCP_NODELAY`, buffered reads, and a buffered writer for the one-way run.
//! The nodus side is [`handshake_over`] and [`Session`] with a small serde message type, so
//! each message goes through the codec, the session writer and the reader task.
//!
//! Round trips are measured in chunks, alternating between the variants within each round,
//! and the order of baseline and subject alternates from one chunk and one round to the
//! next (so neither always runs first, on a warmer or a colder machine); each ratio is the
//! median of the per-round ratios, against baselines measured in the same round, so that a
//! burst of load from other processes skews a ratio less than it skews the absolute figures.
//!
//! It prints one `key=value` line per figure (each the median of several rounds):
//! `tcp_roundtrip_us`, `session_roundtrip_us`, `tcp_frames_per_s`, `session_frames_per_s`,
//! `ratio_roundtrip` (session / tcp, target ≤ 1.15) and `ratio_frames` (session / tcp).
//! Two reference lines follow: `tokio_roundtrip_us`, the same ping-pong as one plain tokio
//! task per side reading and writing the socket (the floor for any tokio-based session), and
//! `ratio_roundtrip_vs_tokio` (session / tokio, the part nodus itself adds).
//!
//! `NODUS_BENCH_RUNTIME=current` runs the tokio sides of both processes on a current-thread
//! runtime instead of the default multi-thread one, to separate the cost of cross-thread
//! wake-ups from the rest.

#[path = "support/two_process.rs"]
mod two_process;

use std::time::Instant;

use nodus::remote::{
    proto::{Existing, HandshakeConfig},
    transport::{handshake_over, Direction, Incoming, Session, SessionConfig, SessionHandle},
    wire::{Lane, Laned},
};
use nodus::NodeName;
use serde::{Deserialize, Serialize};
use two_process::{
    baseline_first, exit_with_parent, frame, median, median_ratio, on_runtime, runtime, say_ready,
    serve_baseline, start_peer, TcpClient, PAYLOAD,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// The argument that makes the binary the peer.
const PEER_ARG: &str = "--nodus-session-peer";
/// Round trips per round and variant, measured in `CHUNKS` alternating chunks.
const ROUND_TRIPS: usize = 3_000;
const CHUNKS: usize = 10;
const FRAMES: u64 = 300_000;
const ROUNDS: usize = 9;

/// The first byte on each connection says what the peer serves on it.
const KIND_SESSION: u8 = b'S';
const KIND_TOKIO_ECHO: u8 = b'T';

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Msg {
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Data(Vec<u8>),
    Count(u64),
}

/// One lane: the session keeps these in strict order.
impl Laned for Msg {
    fn lane(&self) -> Lane {
        Lane::Session
    }
}

fn main() {
    let peer = std::env::args().any(|a| a == PEER_ARG);
    if peer {
        serve();
    } else {
        measure();
    }
}

fn name(text: &str) -> NodeName {
    NodeName::parse(text).expect("bench setup: invalid node name")
}

fn no_session(_: NodeName) -> std::future::Ready<Existing> {
    std::future::ready(Existing::None)
}

// ---------------------------------------------------------------------------------------------
// The peer process.

fn serve() {
    // The parent kills us at the end; if it dies first, our stdin closes and we exit too.
    exit_with_parent();
    runtime().block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("peer: cannot listen on 127.0.0.1:0");
        let port = listener
            .local_addr()
            .expect("peer: no local address")
            .port();
        say_ready(port);
        loop {
            let (stream, _) = listener.accept().await.expect("peer: accept failed");
            tokio::spawn(serve_connection(stream));
        }
    });
}

async fn serve_connection(mut stream: TcpStream) {
    let mut kind = [0u8];
    stream
        .read_exact(&mut kind)
        .await
        .expect("peer: no connection kind");
    match kind[0] {
        KIND_SESSION => serve_session(stream).await,
        KIND_TOKIO_ECHO => {
            // The client closing its end ends the task with an EOF or an error.
            let _ = tokio_echo(stream).await;
        }
        kind => {
            // The baseline uses blocking sockets on a thread of its own.
            serve_baseline(stream.into_std().expect("peer: into_std failed"), kind);
        }
    }
}

/// Echoes whatever arrives: frames come back as they went.
async fn tokio_echo(mut stream: TcpStream) -> std::io::Result<()> {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        stream.write_all(&buf[..n]).await?;
    }
}

async fn serve_session(stream: TcpStream) {
    let cfg = HandshakeConfig::new(name("peer@localhost"), "bench");
    let conn = handshake_over(stream, Direction::Incoming, &cfg, no_session)
        .await
        .expect("peer: handshake failed");
    let mut session = Session::<Msg>::start(conn, SessionConfig::default());
    let mut count = 0u64;
    while let Some(msg) = session.incoming.recv().await {
        let sent = match msg {
            Msg::Ping(p) => session.handle.send(&Msg::Pong(p)),
            Msg::Data(_) => {
                count += 1;
                Ok(())
            }
            Msg::Count(_) => session.handle.send(&Msg::Count(std::mem::take(&mut count))),
            Msg::Pong(_) => Ok(()),
        };
        if sent.is_err() {
            break;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The measuring process.

struct SessionClient {
    handle: SessionHandle<Msg>,
    incoming: Incoming<Msg>,
}

impl SessionClient {
    async fn connect(port: u16) -> Self {
        let mut stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("bench setup: connect failed");
        stream
            .write_all(&[KIND_SESSION])
            .await
            .expect("bench setup: write failed");
        let cfg = HandshakeConfig::new(name("bench@localhost"), "bench");
        let direction = Direction::Outgoing {
            peer: name("peer@localhost"),
        };
        let conn = handshake_over(stream, direction, &cfg, no_session)
            .await
            .expect("bench setup: handshake failed");
        let session = Session::<Msg>::start(conn, SessionConfig::default());
        Self {
            handle: session.handle,
            incoming: session.incoming,
        }
    }

    /// Seconds for `n` round trips.
    async fn round_trips(&mut self, n: usize) -> f64 {
        let ping = Msg::Ping(vec![7; PAYLOAD]);
        let start = Instant::now();
        for _ in 0..n {
            self.handle.send(&ping).expect("session send");
            match self.incoming.recv().await {
                Some(Msg::Pong(p)) if p.len() == PAYLOAD => {}
                other => panic!("session: expected a pong, got {other:?}"),
            }
        }
        start.elapsed().as_secs_f64()
    }

    async fn frames(&mut self) -> f64 {
        let data = Msg::Data(vec![7; PAYLOAD]);
        let start = Instant::now();
        for _ in 0..FRAMES {
            self.handle.send(&data).expect("session send");
        }
        self.handle.send(&Msg::Count(0)).expect("session send");
        let seen = self.incoming.recv().await;
        let elapsed = start.elapsed().as_secs_f64();
        assert_eq!(seen, Some(Msg::Count(FRAMES)), "session count: frames lost");
        FRAMES as f64 / elapsed
    }
}

/// The tokio reference: one task writes a frame and reads the echo.
struct TokioClient {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl TokioClient {
    async fn connect(port: u16) -> Self {
        let mut stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("bench setup: connect failed");
        stream.set_nodelay(true).expect("bench setup: set_nodelay");
        stream
            .write_all(&[KIND_TOKIO_ECHO])
            .await
            .expect("bench setup: write failed");
        Self {
            stream,
            buf: vec![0; 64 << 10],
        }
    }

    /// Seconds for `n` round trips.
    async fn round_trips(&mut self, n: usize) -> f64 {
        let ping = frame(&[7u8; PAYLOAD]);
        let start = Instant::now();
        for _ in 0..n {
            self.stream
                .write_all(&ping)
                .await
                .expect("tokio echo write");
            let mut got = 0;
            while got < ping.len() {
                match self.stream.read(&mut self.buf).await {
                    Ok(0) | Err(_) => panic!("tokio echo: the peer closed the connection"),
                    Ok(k) => got += k,
                }
            }
        }
        start.elapsed().as_secs_f64()
    }
}

#[derive(Default)]
struct Figures {
    tokio_rtt: Vec<f64>,
    tcp_rtt: Vec<f64>,
    session_rtt: Vec<f64>,
    tcp_frames: Vec<f64>,
    session_frames: Vec<f64>,
}

fn measure() {
    let (peer, port) = start_peer(&[PEER_ARG]);
    let rt = runtime();
    let mut tcp = TcpClient::connect(port);
    let mut session = rt
        .block_on(rt.spawn(SessionClient::connect(port)))
        .expect("bench setup: session connect panicked");
    let mut tokio_ref = rt
        .block_on(rt.spawn(TokioClient::connect(port)))
        .expect("bench setup: tokio connect panicked");

    // One untimed round to warm up, then the measured rounds.
    let mut figures = Figures::default();
    let chunk = ROUND_TRIPS / CHUNKS;
    for round in 0..=ROUNDS {
        let (mut tcp_s, mut session_s, mut tokio_s) = (0.0, 0.0, 0.0);
        for k in 0..CHUNKS {
            // The baselines and the subject swap places from one chunk (and round) to the
            // next: tcp, session, tokio; then tokio, session, tcp.
            let tcp_first = baseline_first(round, k);
            if tcp_first {
                tcp_s += tcp.round_trips(chunk);
            } else {
                let t;
                (tokio_ref, t) = on_runtime(&rt, async move {
                    let t = tokio_ref.round_trips(chunk).await;
                    (tokio_ref, t)
                });
                tokio_s += t;
            }
            let t;
            (session, t) = on_runtime(&rt, async move {
                let t = session.round_trips(chunk).await;
                (session, t)
            });
            session_s += t;
            if tcp_first {
                let t;
                (tokio_ref, t) = on_runtime(&rt, async move {
                    let t = tokio_ref.round_trips(chunk).await;
                    (tokio_ref, t)
                });
                tokio_s += t;
            } else {
                tcp_s += tcp.round_trips(chunk);
            }
        }
        let per_rtt = 1e6 / (chunk * CHUNKS) as f64;
        let mut tcp_frames = 0.0;
        if baseline_first(round, 0) {
            tcp_frames = tcp.frames(FRAMES);
        }
        let session_frames;
        (session, session_frames) = on_runtime(&rt, async move {
            let f = session.frames().await;
            (session, f)
        });
        if !baseline_first(round, 0) {
            tcp_frames = tcp.frames(FRAMES);
        }
        if round > 0 {
            figures.tcp_rtt.push(tcp_s * per_rtt);
            figures.session_rtt.push(session_s * per_rtt);
            figures.tokio_rtt.push(tokio_s * per_rtt);
            figures.tcp_frames.push(tcp_frames);
            figures.session_frames.push(session_frames);
        }
    }
    drop(tokio_ref);
    drop(session);
    drop(tcp);
    drop(peer);

    let ratio_rtt = median_ratio(&figures.session_rtt, &figures.tcp_rtt);
    let ratio_frames = median_ratio(&figures.session_frames, &figures.tcp_frames);
    let ratio_vs_tokio = median_ratio(&figures.session_rtt, &figures.tokio_rtt);
    let tcp_rtt = median(figures.tcp_rtt);
    let session_rtt = median(figures.session_rtt);
    let tcp_frames = median(figures.tcp_frames);
    let session_frames = median(figures.session_frames);
    let tokio_rtt = median(figures.tokio_rtt);
    println!("tcp_roundtrip_us={tcp_rtt:.2}");
    println!("session_roundtrip_us={session_rtt:.2}");
    println!("tcp_frames_per_s={tcp_frames:.0}");
    println!("session_frames_per_s={session_frames:.0}");
    println!("ratio_roundtrip={ratio_rtt:.3} (target <= 1.15)");
    println!("ratio_frames={ratio_frames:.3}");
    println!("tokio_roundtrip_us={tokio_rtt:.2}");
    println!("ratio_roundtrip_vs_tokio={ratio_vs_tokio:.3}");
}
