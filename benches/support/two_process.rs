//! What the two-process benches share: the peer process (this bench binary re-executed), the
//! plain-TCP baseline on both sides, the tokio runtime and the medians.
//!
//! Included with `#[path = "support/two_process.rs"] mod two_process;` by `benches/session.rs`
//! and `benches/remote.rs`; not every bench uses every item.
#![allow(dead_code)]

use std::{
    io::{BufRead, BufReader, BufWriter, Read, Write},
    net::TcpStream as StdTcpStream,
    process::{Child, Command, Stdio},
    time::Instant,
};

/// Selects the runtime flavour of the tokio sides (`multi`, the default, or `current`).
pub const RUNTIME_ENV: &str = "NODUS_BENCH_RUNTIME";

/// The payload of every message and frame, in bytes.
pub const PAYLOAD: usize = 64;

/// The first byte on a baseline connection says what the peer serves on it.
pub const KIND_ECHO: u8 = b'E';
/// See [`KIND_ECHO`].
pub const KIND_COUNT: u8 = b'C';

/// A tokio runtime of the flavour [`RUNTIME_ENV`] selects.
pub fn runtime() -> tokio::runtime::Runtime {
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

/// Runs `measured` as a task of `rt` (as an actor would run, not on the blocked main thread);
/// it gives its client back with the figure.
pub fn on_runtime<C: Send + 'static>(
    rt: &tokio::runtime::Runtime,
    measured: impl std::future::Future<Output = (C, f64)> + Send + 'static,
) -> (C, f64) {
    rt.block_on(rt.spawn(measured))
        .expect("bench: a measuring task panicked")
}

/// Whether the baseline runs before the subject in step `step` of round `round`: the order
/// alternates from one step and one round to the next, so neither side always runs first.
pub fn baseline_first(round: usize, step: usize) -> bool {
    (round + step) % 2 == 0
}

/// The median of the per-round ratios `num[i] / den[i]`.
pub fn median_ratio(num: &[f64], den: &[f64]) -> f64 {
    median(num.iter().zip(den).map(|(n, d)| n / d).collect())
}

/// The median (the upper one for an even count).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

// ---------------------------------------------------------------------------------------------
// The peer process.

/// In the peer: exits when the parent goes away (our stdin closes), so that a killed bench
/// leaves no process behind.
pub fn exit_with_parent() {
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        std::process::exit(0);
    });
}

/// In the peer: tells the parent it is ready, and on which port.
pub fn say_ready(port: u16) {
    println!("ready {port}");
    std::io::stdout()
        .flush()
        .expect("peer: cannot write stdout");
}

/// The peer process; killed when dropped, so also on panics.
pub struct Peer(Child);

impl Peer {
    /// Closes the peer's stdin, so that it exits on its own (and a profiler it runs under
    /// writes its figures), and waits at most `within` for it; then it is killed.
    #[allow(dead_code)] // used by the remote bench's counting mode only
    pub fn finish(mut self, within: std::time::Duration) {
        drop(self.0.stdin.take());
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            if !matches!(self.0.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20)); // polling a process exit
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Re-executes this binary with `args`, waits for its `ready <port>` line and returns the
/// port. Whatever the peer prints afterwards is read and discarded.
pub fn start_peer(args: &[&str]) -> (Peer, u16) {
    let exe = std::env::current_exe().expect("bench setup: current_exe unavailable");
    let child = Command::new(exe)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("bench setup: cannot start the peer process");
    let mut peer = Peer(child);
    let stdout = peer.0.stdout.take().expect("bench setup: no peer stdout");
    let mut stdout = BufReader::new(stdout);
    let mut line = String::new();
    stdout
        .read_line(&mut line)
        .expect("bench setup: cannot read the peer's ready line");
    let port = line
        .trim()
        .strip_prefix("ready ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("bench setup: the peer did not say `ready <port>`: {line:?}"));
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    (peer, port)
}

// ---------------------------------------------------------------------------------------------
// The plain-TCP baseline: blocking sockets, u32 big-endian length prefix, TCP_NODELAY.

/// Reads one frame into `body`.
pub fn read_frame(r: &mut impl Read, body: &mut Vec<u8>) -> std::io::Result<()> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    body.resize(u32::from_be_bytes(len) as usize, 0);
    r.read_exact(body)
}

/// `body` with its length prefix.
pub fn frame(body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(body.len()).expect("a small frame");
    let mut out = len.to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

/// In the peer: serves a baseline connection of `kind` (its first byte, already read) on a
/// thread of its own, until the client closes it.
pub fn serve_baseline(stream: StdTcpStream, kind: u8) {
    stream
        .set_nonblocking(false)
        .expect("peer: set_nonblocking");
    stream.set_nodelay(true).expect("peer: set_nodelay");
    std::thread::spawn(move || {
        // The client closing its end ends the thread with an EOF error.
        let _ = if kind == KIND_ECHO {
            tcp_echo(stream)
        } else {
            tcp_count(stream)
        };
    });
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

/// Connects to the peer's baseline listener for a connection of `kind`.
pub fn tcp_connect(port: u16, kind: u8) -> StdTcpStream {
    let mut s = StdTcpStream::connect(("127.0.0.1", port)).expect("bench setup: connect failed");
    s.set_nodelay(true).expect("bench setup: set_nodelay");
    s.write_all(&[kind]).expect("bench setup: write failed");
    s
}

/// The baseline's client side: an echo connection and a counting one.
pub struct TcpClient {
    echo: StdTcpStream,
    echo_reader: BufReader<StdTcpStream>,
    count: BufWriter<StdTcpStream>,
    count_reader: StdTcpStream,
}

impl TcpClient {
    /// Opens both connections.
    pub fn connect(port: u16) -> Self {
        let echo = tcp_connect(port, KIND_ECHO);
        let count = tcp_connect(port, KIND_COUNT);
        Self {
            echo_reader: BufReader::with_capacity(64 << 10, echo.try_clone().expect("clone")),
            echo,
            count_reader: count.try_clone().expect("clone"),
            count: BufWriter::with_capacity(64 << 10, count),
        }
    }

    /// Seconds for `n` sequential round trips of a [`PAYLOAD`]-byte frame.
    pub fn round_trips(&mut self, n: usize) -> f64 {
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

    /// Round trips per second of [`PAYLOAD`]-byte frames with `in_flight` outstanding at
    /// once, `n` in all (the baseline of work with that many requests in flight).
    pub fn pipelined(&mut self, n: usize, in_flight: usize) -> f64 {
        let ping = frame(&[7u8; PAYLOAD]);
        let mut body = Vec::new();
        let start = Instant::now();
        let mut sent = 0;
        while sent < n.min(in_flight) {
            self.echo.write_all(&ping).expect("tcp echo write");
            sent += 1;
        }
        for _ in 0..n {
            read_frame(&mut self.echo_reader, &mut body).expect("tcp echo read");
            assert_eq!(body.len(), PAYLOAD, "tcp echo: wrong frame");
            if sent < n {
                self.echo.write_all(&ping).expect("tcp echo write");
                sent += 1;
            }
        }
        n as f64 / start.elapsed().as_secs_f64()
    }

    /// One-way [`PAYLOAD`]-byte frames per second, `n` of them through a buffered writer
    /// until the peer confirms the count.
    pub fn frames(&mut self, n: u64) -> f64 {
        let data = frame(&[7u8; PAYLOAD]);
        let start = Instant::now();
        self.count
            .write_all(&n.to_be_bytes())
            .expect("tcp count write");
        for _ in 0..n {
            self.count.write_all(&data).expect("tcp count write");
        }
        self.count.flush().expect("tcp count flush");
        let mut seen = [0u8; 8];
        self.count_reader
            .read_exact(&mut seen)
            .expect("tcp count read");
        let elapsed = start.elapsed().as_secs_f64();
        assert_eq!(u64::from_be_bytes(seen), n, "tcp count: frames lost");
        n as f64 / elapsed
    }
}
