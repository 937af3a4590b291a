//! The in-memory connection itself: a pair of [`MemoryPipe`] ends, bytes written at one end
//! read at the other, bounded per direction.
//!
//! What it does that [`tokio::io::duplex`] does not, for a mesh of a thousand nodes (half a
//! million connections, all in one process):
//! - a direction's buffer is freed once read to its end, so an idle connection holds no
//!   buffer (a duplex keeps the largest it ever grew to, up to its bound, per direction:
//!   ~0.4 KiB per connection on average in such a mesh, a peer list's worth at worst);
//! - both directions share one allocation, and an end splits into a reading and a writing
//!   half without a lock or another allocation ([`MemoryPipe::split`]), where a boxed
//!   duplex split by [`tokio::io::split`] added a box, a lock and an `Arc`.
//!
//! The rest is a duplex's behaviour: a writer waits while its direction holds `max_buffered`
//! bytes (as a full socket buffer makes it), a reader waits for bytes, reads what was
//! written and then the end of the stream once the other end's writing half is shut down
//! or dropped, and a write to an end whose reader is gone fails with `BrokenPipe`. Reads and
//! writes take from tokio's cooperative budget, as a socket's do.

use std::{
    io,
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    task::{ready, Context, Poll, Waker},
};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// One end of an in-memory connection ([`MemoryPipe::pair`]): what is written to it is read
/// at the other end. Each direction holds at most `max_buffered` bytes before its writer
/// waits, as a socket buffer does, and its buffer is freed once read to its end, so an idle
/// connection holds none. A reader gets the end of the stream after what was written once the
/// other end's writing half is shut down or dropped; a write to an end whose reader is gone
/// fails with `BrokenPipe`. An end splits into halves without a lock ([`MemoryPipe::split`]).
///
/// # Examples
///
/// ```
/// use actor_remote::transport::MemoryPipe;
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let (mut a, b) = MemoryPipe::pair(1024);
/// a.write_all(b"ping").await?;
/// let (mut read, _write) = b.split();
/// let mut buf = [0; 4];
/// read.read_exact(&mut buf).await?;
/// assert_eq!(&buf, b"ping");
/// drop(a); // the other end reads the end of the stream
/// assert_eq!(read.read(&mut buf).await?, 0);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct MemoryPipe {
    read: MemoryPipeReader,
    write: MemoryPipeWriter,
}

/// The reading half of a [`MemoryPipe`] end.
#[derive(Debug)]
pub struct MemoryPipeReader {
    shared: Arc<Shared>,
    /// The direction this half reads.
    dir: usize,
}

/// The writing half of a [`MemoryPipe`] end.
#[derive(Debug)]
pub struct MemoryPipeWriter {
    shared: Arc<Shared>,
    /// The direction this half writes.
    dir: usize,
}

/// Both directions of one connection: direction `i` is read by end `i`, written by the other.
#[derive(Debug)]
struct Shared {
    dirs: [Mutex<Direction>; 2],
    max_buffered: usize,
}

/// The bytes written one way and not read yet.
#[derive(Debug, Default)]
struct Direction {
    /// `buf[read_at..]` is unread; freed (not just cleared) once all of it is read.
    buf: Vec<u8>,
    read_at: usize,
    /// The reader waiting for bytes.
    reader: Option<Waker>,
    /// The writer waiting for room.
    writer: Option<Waker>,
    /// The writing half was shut down or dropped: the reader gets the end of the stream
    /// once it read what is buffered.
    write_closed: bool,
    /// The reading half was dropped: writes fail.
    read_closed: bool,
}

impl Direction {
    fn unread(&self) -> usize {
        self.buf.len() - self.read_at
    }

    /// Frees the buffer (every byte in it read, or never to be).
    fn free(&mut self) {
        self.buf = Vec::new();
        self.read_at = 0;
    }
}

impl Shared {
    fn lock(&self, dir: usize) -> MutexGuard<'_, Direction> {
        self.dirs[dir]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl MemoryPipe {
    /// A new connection's two ends, each direction holding at most `max_buffered` bytes
    /// (at least 1) before its writer waits.
    pub fn pair(max_buffered: usize) -> (MemoryPipe, MemoryPipe) {
        let shared = Arc::new(Shared {
            dirs: [
                Mutex::new(Direction::default()),
                Mutex::new(Direction::default()),
            ],
            max_buffered: max_buffered.max(1),
        });
        let end = |dir: usize| MemoryPipe {
            read: MemoryPipeReader {
                shared: shared.clone(),
                dir,
            },
            write: MemoryPipeWriter {
                shared: shared.clone(),
                dir: 1 - dir,
            },
        };
        (end(0), end(1))
    }

    /// Splits this end into its reading and writing halves (no lock between them).
    pub fn split(self) -> (MemoryPipeReader, MemoryPipeWriter) {
        (self.read, self.write)
    }
}

impl AsyncRead for MemoryPipeReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let coop = ready!(tokio::task::coop::poll_proceed(cx));
        let mut d = self.shared.lock(self.dir);
        if d.unread() > 0 {
            let n = d.unread().min(buf.remaining());
            let at = d.read_at;
            buf.put_slice(&d.buf[at..at + n]);
            d.read_at += n;
            if d.read_at == d.buf.len() {
                d.free();
            }
            let writer = d.writer.take();
            drop(d);
            coop.made_progress();
            wake(writer);
            Poll::Ready(Ok(()))
        } else if d.write_closed {
            coop.made_progress();
            Poll::Ready(Ok(()))
        } else {
            store(&mut d.reader, cx);
            Poll::Pending
        }
    }
}

impl AsyncWrite for MemoryPipeWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        let coop = ready!(tokio::task::coop::poll_proceed(cx));
        let mut d = self.shared.lock(self.dir);
        if d.read_closed || d.write_closed {
            coop.made_progress();
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        if bytes.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let room = self.shared.max_buffered.saturating_sub(d.unread());
        if room == 0 {
            store(&mut d.writer, cx);
            return Poll::Pending;
        }
        if d.read_at > 0 && d.read_at >= d.buf.len() / 2 {
            // Most of the buffer was read: move the rest to the front rather than grow.
            let at = d.read_at;
            d.buf.drain(..at);
            d.read_at = 0;
        }
        let n = bytes.len().min(room);
        d.buf.extend_from_slice(&bytes[..n]);
        let reader = d.reader.take();
        drop(d);
        coop.made_progress();
        wake(reader);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.close();
        Poll::Ready(Ok(()))
    }
}

impl MemoryPipeWriter {
    /// No more bytes this way: the reader gets the end of the stream after what is buffered.
    fn close(&self) {
        let mut d = self.shared.lock(self.dir);
        d.write_closed = true;
        let reader = d.reader.take();
        drop(d);
        wake(reader);
    }
}

impl Drop for MemoryPipeWriter {
    fn drop(&mut self) {
        self.close();
    }
}

impl Drop for MemoryPipeReader {
    fn drop(&mut self) {
        let mut d = self.shared.lock(self.dir);
        d.read_closed = true;
        // Nobody will read these bytes: free them now.
        d.free();
        let writer = d.writer.take();
        drop(d);
        wake(writer);
    }
}

/// Wakes the task that waited, if one did (called after the lock is let go).
fn wake(waiting: Option<Waker>) {
    if let Some(waker) = waiting {
        waker.wake();
    }
}

/// Keeps `cx`'s waker in `slot` (not cloned again if it would wake the same task).
fn store(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(waker) if waker.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

impl AsyncRead for MemoryPipe {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().read).poll_read(cx, buf)
    }
}

impl AsyncWrite for MemoryPipe {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().write).poll_write(cx, bytes)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().write).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().write).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    const BOUND: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn bytes_go_both_ways_in_order() {
        let (mut a, mut b) = MemoryPipe::pair(64);
        a.write_all(b"ping").await.unwrap();
        b.write_all(b"pong").await.unwrap();
        let mut buf = [0; 4];
        b.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        a.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"pong");
    }

    #[tokio::test]
    async fn a_direction_read_to_its_end_holds_no_buffer() {
        let (mut a, mut b) = MemoryPipe::pair(1024);
        a.write_all(&[7; 600]).await.unwrap();
        assert!(b.read.shared.lock(b.read.dir).buf.capacity() >= 600);
        let mut buf = [0; 600];
        b.read_exact(&mut buf[..100]).await.unwrap();
        assert!(
            b.read.shared.lock(b.read.dir).buf.capacity() >= 600,
            "bytes are left"
        );
        b.read_exact(&mut buf[100..]).await.unwrap();
        assert_eq!(buf, [7; 600]);
        assert_eq!(b.read.shared.lock(b.read.dir).buf.capacity(), 0);
    }

    #[tokio::test]
    async fn a_writer_waits_for_room_and_goes_on_once_the_reader_reads() {
        let (mut a, b) = MemoryPipe::pair(16);
        let (mut read, _write) = b.split();
        let data: Vec<u8> = (0..200u8).collect();
        let sent = data.clone();
        let writer = tokio::spawn(async move {
            a.write_all(&sent).await.unwrap();
            a // keep the end open
        });
        // The writer can buffer 16 bytes at most: the rest goes as the reader reads.
        let mut got = vec![0; 200];
        tokio::time::timeout(BOUND, read.read_exact(&mut got))
            .await
            .expect("the whole message arrives")
            .unwrap();
        assert_eq!(got, data);
        tokio::time::timeout(BOUND, writer)
            .await
            .expect("the writer finishes")
            .unwrap();
    }

    #[tokio::test]
    async fn a_full_direction_never_holds_more_than_its_bound() {
        let (mut a, b) = MemoryPipe::pair(16);
        let written = a.write(&[1; 100]).await.unwrap();
        assert_eq!(written, 16, "one write takes only the room there is");
        let mut cx = Context::from_waker(Waker::noop());
        let blocked = Pin::new(&mut a).poll_write(&mut cx, &[1]);
        assert!(
            blocked.is_pending(),
            "a full direction makes the writer wait"
        );
        drop(b);
        let broken = Pin::new(&mut a).poll_write(&mut cx, &[1]);
        assert!(
            matches!(broken, Poll::Ready(Err(ref e)) if e.kind() == io::ErrorKind::BrokenPipe),
            "{broken:?}"
        );
    }

    #[tokio::test]
    async fn the_reader_gets_what_was_written_then_the_end_of_the_stream() {
        let (mut a, mut b) = MemoryPipe::pair(64);
        a.write_all(b"last words").await.unwrap();
        drop(a);
        let mut got = Vec::new();
        tokio::time::timeout(BOUND, b.read_to_end(&mut got))
            .await
            .expect("the read ends")
            .unwrap();
        assert_eq!(got, b"last words");
        let broken = b.write_all(b"anyone?").await.unwrap_err();
        assert_eq!(broken.kind(), io::ErrorKind::BrokenPipe);
    }

    #[tokio::test]
    async fn a_shut_down_writer_ends_the_stream_while_the_other_way_still_works() {
        let (a, mut b) = MemoryPipe::pair(64);
        let (mut a_read, mut a_write) = a.split();
        a_write.shutdown().await.unwrap();
        let mut buf = [0; 8];
        assert_eq!(b.read(&mut buf).await.unwrap(), 0, "end of stream");
        b.write_all(b"reply").await.unwrap();
        a_read.read_exact(&mut buf[..5]).await.unwrap();
        assert_eq!(&buf[..5], b"reply");
        assert!(
            a_write.write_all(b"more").await.is_err(),
            "shut down for good"
        );
    }

    #[tokio::test]
    async fn a_waiting_reader_is_woken_by_a_write_and_by_the_close() {
        let (mut a, b) = MemoryPipe::pair(64);
        let (mut read, _write) = b.split();
        let reader = tokio::spawn(async move {
            let mut buf = [0; 4];
            read.read_exact(&mut buf).await.unwrap();
            let rest = read.read(&mut buf).await.unwrap();
            (buf, rest)
        });
        tokio::task::yield_now().await;
        a.write_all(b"wake").await.unwrap();
        drop(a);
        let (buf, rest) = tokio::time::timeout(BOUND, reader)
            .await
            .expect("the reader is woken")
            .unwrap();
        assert_eq!((&buf, rest), (b"wake", 0));
    }
}
