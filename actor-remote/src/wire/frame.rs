//! Length-prefixed framing: `u32` big-endian length, then the body.

use actor_core::codec::{self, CodecError};
use serde::{de::DeserializeOwned, Serialize};

/// The default largest frame body, in bytes (64 MiB), the same as the codec's own decode
/// limit.
pub const DEFAULT_MAX_FRAME_LEN: usize = 64 << 20;

/// The largest frame accepted while the handshake runs (64 KiB): handshake messages are a few
/// hundred bytes, and an unauthenticated peer must not make us buffer megabytes.
pub const HANDSHAKE_MAX_FRAME_LEN: usize = 64 << 10;

/// How many bytes the length prefix takes.
pub const LEN_PREFIX: usize = 4;

/// A frame could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// A frame's length is over the configured largest frame.
    #[error("frame of {len} bytes exceeds max_frame_len ({max}); raise max_frame_len on both nodes if this is legitimate")]
    TooLarge {
        /// The length claimed (reading) or produced (writing).
        len: usize,
        /// The configured largest frame.
        max: usize,
    },
    /// A complete frame's body is not an encoding of the expected message type.
    #[error("a frame body is not a valid message; both nodes must run compatible nodus versions")]
    Body {
        /// What the codec reported.
        #[source]
        source: CodecError,
    },
    /// A message could not be encoded.
    #[error("a message could not be encoded into a frame")]
    Encode {
        /// What the codec reported.
        #[source]
        source: CodecError,
    },
}

/// Incremental frame decoder, in the style of tokio-util's `Decoder` but without IO or
/// dependencies: [`extend`](Self::extend) it with bytes as they arrive, then call
/// [`decode`](Self::decode) until it returns `Ok(None)`.
///
/// ```
/// use actor_remote::wire::{encode_frame, decode_body, FrameDecoder, DEFAULT_MAX_FRAME_LEN};
/// let mut bytes = Vec::new();
/// encode_frame(&("hi", 7u8), &mut bytes, DEFAULT_MAX_FRAME_LEN)?;
/// let mut dec = FrameDecoder::new(DEFAULT_MAX_FRAME_LEN);
/// dec.extend(&bytes[..3]);
/// assert!(dec.decode()?.is_none()); // not complete yet
/// dec.extend(&bytes[3..]);
/// let body = dec.decode()?.ok_or("a frame was expected")?;
/// let (text, n): (String, u8) = decode_body(body)?;
/// assert_eq!((text.as_str(), n), ("hi", 7));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    /// Bytes of `buf` before this index were already handed out.
    start: usize,
    max: usize,
}

impl FrameDecoder {
    /// A decoder that refuses frames longer than `max_frame_len` bytes.
    pub fn new(max_frame_len: usize) -> Self {
        Self {
            buf: Vec::new(),
            start: 0,
            max: max_frame_len,
        }
    }

    /// Changes the largest frame accepted from now on (the handshake uses a small limit, the
    /// session the configured one).
    pub fn set_max_frame_len(&mut self, max_frame_len: usize) {
        self.max = max_frame_len;
    }

    /// The largest frame accepted.
    pub fn max_frame_len(&self) -> usize {
        self.max
    }

    /// How many bytes are buffered and not yet handed out as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Frees the buffer once every byte in it was handed out as frames, so that a decoder
    /// waiting for its peer holds no memory (a million session ends wait so in a mesh of a
    /// thousand nodes). The next [`FrameDecoder::extend`] allocates again.
    ///
    /// ```
    /// use actor_remote::wire::FrameDecoder;
    /// let mut decoder = FrameDecoder::new(1024);
    /// decoder.extend(&[0, 0, 0, 1, 7]);
    /// assert_eq!(decoder.decode().unwrap(), Some(&[7u8][..]));
    /// decoder.release_drained();
    /// assert_eq!(decoder.capacity(), 0);
    /// ```
    pub fn release_drained(&mut self) {
        if self.start == self.buf.len() {
            self.buf = Vec::new();
            self.start = 0;
        }
    }

    /// The bytes the buffer can hold without growing (0 once released).
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Appends bytes received from the peer.
    pub fn extend(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > 0 && self.start >= self.buf.len() / 2 {
            // Compact once the consumed prefix dominates, so the buffer does not grow forever.
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame's body, `Ok(None)` if more bytes are needed.
    ///
    /// # Errors
    /// [`FrameError::TooLarge`] as soon as a length prefix over the largest frame is seen; the
    /// decoder keeps returning it, since the stream cannot be resynchronised.
    pub fn decode(&mut self) -> Result<Option<&[u8]>, FrameError> {
        let pending = &self.buf[self.start..];
        let Some(prefix) = pending.first_chunk::<LEN_PREFIX>() else {
            return Ok(None);
        };
        let len = u32::from_be_bytes(*prefix) as usize;
        if len > self.max {
            return Err(FrameError::TooLarge { len, max: self.max });
        }
        if pending.len() - LEN_PREFIX < len {
            return Ok(None);
        }
        let body_start = self.start + LEN_PREFIX;
        self.start = body_start + len;
        Ok(Some(&self.buf[body_start..body_start + len]))
    }
}

/// Decodes a frame body into `T`.
///
/// # Errors
/// [`FrameError::Body`] if the bytes are not exactly one `T`.
pub fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, FrameError> {
    codec::decode(body).map_err(|source| FrameError::Body { source })
}

/// Appends one frame holding `msg` to `out` and returns the body's length.
///
/// The body is encoded in place after a placeholder length, which is patched afterwards, so
/// there is no second buffer. On error `out` is left as it was.
///
/// # Errors
/// [`FrameError::TooLarge`] if the body exceeds `max_frame_len` (or `u32::MAX`),
/// [`FrameError::Encode`] if the codec refuses the value.
pub fn encode_frame<T: Serialize + ?Sized>(
    msg: &T,
    out: &mut Vec<u8>,
    max_frame_len: usize,
) -> Result<usize, FrameError> {
    let at = out.len();
    out.extend_from_slice(&[0; LEN_PREFIX]);
    let len = match codec::encode_into(msg, out) {
        Ok(len) => len,
        Err(source) => {
            out.truncate(at);
            return Err(FrameError::Encode { source });
        }
    };
    let max = max_frame_len.min(u32::MAX as usize);
    let Ok(len32) = u32::try_from(len) else {
        out.truncate(at);
        return Err(FrameError::TooLarge { len, max });
    };
    if len > max {
        out.truncate(at);
        return Err(FrameError::TooLarge { len, max });
    }
    out[at..at + LEN_PREFIX].copy_from_slice(&len32.to_be_bytes());
    Ok(len)
}

#[cfg(test)]
mod tests;
