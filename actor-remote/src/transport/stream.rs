//! The byte stream a connection runs over.
//!
//! Handshakes and sessions run over a [`Stream`]: a TCP socket (the common case, split into
//! owned halves without a lock), an in-memory pipe between two nodes of one process (split
//! without a lock too), or any other byte stream boxed behind [`Io`] (a TLS stream wrapping
//! either). Everything above
//! the stream (framing, the handshake, ticks, backpressure) is the same for all of them.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{
        tcp::{OwnedReadHalf, OwnedWriteHalf},
        TcpStream,
    },
};

use super::memory::{MemoryPipe, MemoryPipeReader, MemoryPipeWriter};

/// A byte stream other than a plain TCP socket that a connection can run over.
///
/// Implemented for every `AsyncRead + AsyncWrite + Send + Unpin + 'static` type.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// The stream under one connection between nodes.
///
/// # Examples
///
/// ```
/// use actor_remote::transport::Stream;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// // Any async byte stream can carry a session, here an in-memory pipe.
/// let (a, _b) = tokio::io::duplex(64 * 1024);
/// let stream = Stream::boxed(a);
/// assert!(!stream.is_tcp());
/// # }
/// ```
pub enum Stream {
    /// A TCP socket.
    Tcp(TcpStream),
    /// An in-memory pipe ([`MemoryNetwork`](super::MemoryNetwork)).
    Memory(MemoryPipe),
    /// Any other stream (TLS).
    Boxed(Box<dyn Io>),
}

impl From<MemoryPipe> for Stream {
    fn from(pipe: MemoryPipe) -> Self {
        Self::Memory(pipe)
    }
}

impl From<TcpStream> for Stream {
    fn from(stream: TcpStream) -> Self {
        Self::Tcp(stream)
    }
}

impl Stream {
    /// Boxes any other byte stream.
    pub fn boxed(io: impl Io) -> Self {
        Self::Boxed(Box::new(io))
    }

    /// Whether this is a plain TCP socket.
    pub fn is_tcp(&self) -> bool {
        matches!(self, Self::Tcp(_))
    }

    /// Sets `TCP_NODELAY` on a TCP socket; other streams have nothing to set.
    ///
    /// # Errors
    /// The socket's error.
    pub fn set_nodelay(&self) -> io::Result<()> {
        match self {
            Self::Tcp(s) => s.set_nodelay(true),
            Self::Memory(_) | Self::Boxed(_) => Ok(()),
        }
    }

    /// Splits the stream into a reading and a writing half, each for a task of its own.
    pub fn split(self) -> (ReadHalf, WriteHalf) {
        match self {
            Self::Tcp(s) => {
                let (r, w) = s.into_split();
                (ReadHalf::Tcp(r), WriteHalf::Tcp(w))
            }
            Self::Memory(s) => {
                let (r, w) = s.split();
                (ReadHalf::Memory(r), WriteHalf::Memory(w))
            }
            Self::Boxed(s) => {
                let (r, w) = tokio::io::split(s);
                (ReadHalf::Boxed(r), WriteHalf::Boxed(w))
            }
        }
    }
}

/// The reading half of a [`Stream`].
pub enum ReadHalf {
    /// Of a TCP socket.
    Tcp(OwnedReadHalf),
    /// Of an in-memory pipe.
    Memory(MemoryPipeReader),
    /// Of any other stream.
    Boxed(tokio::io::ReadHalf<Box<dyn Io>>),
}

/// The writing half of a [`Stream`].
pub enum WriteHalf {
    /// Of a TCP socket.
    Tcp(OwnedWriteHalf),
    /// Of an in-memory pipe.
    Memory(MemoryPipeWriter),
    /// Of any other stream.
    Boxed(tokio::io::WriteHalf<Box<dyn Io>>),
}

/// Each of the three types is a TCP socket, an in-memory pipe or a boxed stream (or half of
/// one): `Debug`, `AsyncRead` and `AsyncWrite` forward to whichever it holds.
macro_rules! forward {
    (debug: $($ty:ty),+) => {$(
        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                match self {
                    Self::Tcp(s) => f.debug_tuple("Tcp").field(s).finish(),
                    Self::Memory(_) => f.write_str("Memory(..)"),
                    Self::Boxed(_) => f.write_str("Boxed(..)"),
                }
            }
        }
    )+};
    (read: $($ty:ty),+) => {$(
        impl AsyncRead for $ty {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    Self::Tcp(s) => Pin::new(s).poll_read(cx, buf),
                    Self::Memory(s) => Pin::new(s).poll_read(cx, buf),
                    Self::Boxed(s) => Pin::new(s).poll_read(cx, buf),
                }
            }
        }
    )+};
    (write: $($ty:ty),+) => {$(
        impl AsyncWrite for $ty {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                match self.get_mut() {
                    Self::Tcp(s) => Pin::new(s).poll_write(cx, buf),
                    Self::Memory(s) => Pin::new(s).poll_write(cx, buf),
                    Self::Boxed(s) => Pin::new(s).poll_write(cx, buf),
                }
            }

            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    Self::Tcp(s) => Pin::new(s).poll_flush(cx),
                    Self::Memory(s) => Pin::new(s).poll_flush(cx),
                    Self::Boxed(s) => Pin::new(s).poll_flush(cx),
                }
            }

            fn poll_shutdown(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
            ) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    Self::Tcp(s) => Pin::new(s).poll_shutdown(cx),
                    Self::Memory(s) => Pin::new(s).poll_shutdown(cx),
                    Self::Boxed(s) => Pin::new(s).poll_shutdown(cx),
                }
            }
        }
    )+};
}

forward!(debug: Stream, ReadHalf, WriteHalf);
forward!(read: Stream, ReadHalf);
forward!(write: Stream, WriteHalf);

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn a_boxed_stream_splits_and_carries_bytes_both_ways() {
        let (a, b) = tokio::io::duplex(1024);
        let (mut ar, mut aw) = Stream::boxed(a).split();
        let (mut br, mut bw) = Stream::boxed(b).split();
        aw.write_all(b"ping").await.unwrap();
        bw.write_all(b"pong").await.unwrap();
        let mut buf = [0; 4];
        br.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        ar.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"pong");
        // A session ends by dropping both halves (its reader and writer tasks end).
        drop((ar, aw));
        let eof = tokio::time::timeout(std::time::Duration::from_secs(5), br.read(&mut buf));
        let eof = eof.await.expect("the read ends").unwrap();
        assert_eq!(eof, 0, "dropping both halves closes the stream");
    }
}
