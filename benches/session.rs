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
//! and each ratio is the median of the per-round ratios, so that a burst of load from other
//! processes skews a ratio less than it skews the absolute figures.
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

use std::{
    io::{BufRead, BufReader, BufWriter, Read, Write},
    net::TcpStream as StdTcpStream,
    process::{Child, Command, Stdio},
    time::Instant,
};

use nodus::remote::{
    proto::{Existing, HandshakeConfig},
    transport::{handshake_over, Direction, Session, SessionConfig, SessionHandle},
};
use nodus::NodeName;
use serde::{Deserialize, Serialize};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::mpsc::UnboundedReceiver,
};

/// The argument that makes the binary the peer.
const PEER_ARG: &str = "--nodus-session-peer";
/// Selects the runtime flavour of the sessions (`multi`, the default, or `current`).
const RUNTIME_ENV: &str = "NODUS_BENCH_RUNTIME";

const PAYLOAD: usize = 64;
/// Round trips per round and variant, measured in `CHUNKS` alternating chunks.
const ROUND_TRIPS: usize = 3_000;
const CHUNKS: usize = 10;
const FRAMES: u64 = 300_000;
const ROUNDS: usize = 9;

/// The first byte on each connection says what the peer serves on it.
const KIND_ECHO: u8 = b'E';
const KIND_COUNT: u8 = b'C';
const KIND_SESSION: u8 = b'S';
const KIND_TOKIO_ECHO: u8 = b'T';

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Msg {
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Data(Vec<u8>),
    Count(u64),
}

fn main() {
    let peer = std::env::args().any(|a| a == PEER_ARG);
    if peer {
        serve();
    } else {
        measure();
    }
}

fn runtime() -> tokio::runtime::Runtime {
    let current = std::env::var(RUNTIME_ENV).is_ok_and(|v| v == "current");
    let mut builder = if current {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    builder
        .enable_all()
        .build()
        .expect("bench setup: cannot build a tokio runtime")
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
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        std::process::exit(0);
    });
    runtime().block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("peer: cannot listen on 127.0.0.1:0");
        let port = listener
            .local_addr()
            .expect("peer: no local address")
            .port();
        println!("ready {port}");
        std::io::stdout()
            .flush()
            .expect("peer: cannot write stdout");
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
            let std = stream.into_std().expect("peer: into_std failed");
            std.set_nonblocking(false).expect("peer: set_nonblocking");
            std.set_nodelay(true).expect("peer: set_nodelay");
            std::thread::spawn(move || {
                // The client closing its end ends the thread with an EOF error.
                let _ = if kind == KIND_ECHO {
                    tcp_echo(std)
                } else {
                    tcp_count(std)
                };
            });
        }
    }
}

/// Reads one frame into `body`.
fn read_frame(r: &mut impl Read, body: &mut Vec<u8>) -> std::io::Result<()> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    body.resize(u32::from_be_bytes(len) as usize, 0);
    r.read_exact(body)
}

fn frame(body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(body.len()).expect("a small frame");
    let mut out = len.to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
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

fn tcp_echo(stream: StdTcpStream) -> std::io::Result<()> {
    let mut reader = BufReader::with_capacity(64 << 10, stream.try_clone()?);
    let mut writer = stream;
    let mut body = Vec::new();
    let mut out = Vec::new();
    loop {
        read_frame(&mut reader, &mut body)?;
        out.clear();
        out.extend_from_slice(&frame(&body));
        writer.write_all(&out)?;
    }
}

/// Reads a u64 count `n`, then `n` frames, and answers with the number of frames read.
fn tcp_count(stream: StdTcpStream) -> std::io::Result<()> {
    let mut reader = BufReader::with_capacity(64 << 10, stream.try_clone()?);
    let mut writer = stream;
    let mut body = Vec::new();
    loop {
        let mut n = [0u8; 8];
        reader.read_exact(&mut n)?;
        let n = u64::from_be_bytes(n);
        let mut seen = 0u64;
        for _ in 0..n {
            read_frame(&mut reader, &mut body)?;
            seen += 1;
        }
        writer.write_all(&seen.to_be_bytes())?;
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

/// The peer process; killed when dropped, so also on panics.
struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_peer() -> (Peer, u16) {
    let exe = std::env::current_exe().expect("bench setup: current_exe unavailable");
    let child = Command::new(exe)
        .arg(PEER_ARG)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("bench setup: cannot start the peer process");
    let mut peer = Peer(child);
    let stdout = peer.0.stdout.take().expect("bench setup: no peer stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("bench setup: cannot read the peer's ready line");
    let port = line
        .trim()
        .strip_prefix("ready ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("bench setup: the peer did not say `ready <port>`: {line:?}"));
    (peer, port)
}

/// The median of the per-round ratios `num[i] / den[i]`.
fn median_ratio(num: &[f64], den: &[f64]) -> f64 {
    median(num.iter().zip(den).map(|(n, d)| n / d).collect())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn tcp_connect(port: u16, kind: u8) -> StdTcpStream {
    let mut s = StdTcpStream::connect(("127.0.0.1", port)).expect("bench setup: connect failed");
    s.set_nodelay(true).expect("bench setup: set_nodelay");
    s.write_all(&[kind]).expect("bench setup: write failed");
    s
}

struct TcpClient {
    echo: StdTcpStream,
    echo_reader: BufReader<StdTcpStream>,
    count: BufWriter<StdTcpStream>,
    count_reader: StdTcpStream,
}

impl TcpClient {
    fn connect(port: u16) -> Self {
        let echo = tcp_connect(port, KIND_ECHO);
        let count = tcp_connect(port, KIND_COUNT);
        Self {
            echo_reader: BufReader::with_capacity(64 << 10, echo.try_clone().expect("clone")),
            echo,
            count_reader: count.try_clone().expect("clone"),
            count: BufWriter::with_capacity(64 << 10, count),
        }
    }

    /// Seconds for `n` round trips.
    fn round_trips(&mut self, n: usize) -> f64 {
        let ping = frame(&[7u8; PAYLOAD]);
        let mut body = Vec::new();
        let start = Instant::now();
        for _ in 0..n {
            self.echo.write_all(&ping).expect("tcp echo write");
            read_frame(&mut self.echo_reader, &mut body).expect("tcp echo read");
            assert_eq!(body.len(), PAYLOAD, "tcp echo: wrong frame");
        }
        start.elapsed().as_secs_f64()
    }

    /// Frames per second, one way.
    fn frames(&mut self) -> f64 {
        let data = frame(&[7u8; PAYLOAD]);
        let start = Instant::now();
        self.count
            .write_all(&FRAMES.to_be_bytes())
            .expect("tcp count write");
        for _ in 0..FRAMES {
            self.count.write_all(&data).expect("tcp count write");
        }
        self.count.flush().expect("tcp count flush");
        let mut seen = [0u8; 8];
        self.count_reader
            .read_exact(&mut seen)
            .expect("tcp count read");
        let elapsed = start.elapsed().as_secs_f64();
        assert_eq!(u64::from_be_bytes(seen), FRAMES, "tcp count: frames lost");
        FRAMES as f64 / elapsed
    }
}

struct SessionClient {
    handle: SessionHandle<Msg>,
    incoming: UnboundedReceiver<Msg>,
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

/// Runs `measured` as a task of `rt` (as an actor would run, not on the blocked main thread);
/// it gives its client back with the figure.
fn on_runtime<C: Send + 'static>(
    rt: &tokio::runtime::Runtime,
    measured: impl std::future::Future<Output = (C, f64)> + Send + 'static,
) -> (C, f64) {
    rt.block_on(rt.spawn(measured))
        .expect("bench: a measuring task panicked")
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
    let (peer, port) = start_peer();
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
        for _ in 0..CHUNKS {
            tcp_s += tcp.round_trips(chunk);
            let t;
            (session, t) = on_runtime(&rt, async move {
                let t = session.round_trips(chunk).await;
                (session, t)
            });
            session_s += t;
            let t;
            (tokio_ref, t) = on_runtime(&rt, async move {
                let t = tokio_ref.round_trips(chunk).await;
                (tokio_ref, t)
            });
            tokio_s += t;
        }
        let per_rtt = 1e6 / (chunk * CHUNKS) as f64;
        let tcp_frames = tcp.frames();
        let session_frames;
        (session, session_frames) = on_runtime(&rt, async move {
            let f = session.frames().await;
            (session, f)
        });
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
