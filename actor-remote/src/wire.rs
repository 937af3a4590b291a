//! The bytes on a node-to-node connection: length-prefixed frames and the message types they
//! carry.
//!
//! Every frame is a `u32` big-endian length followed by that many bytes of body; the body is
//! an [`actor_core::codec`] encoding of one message. Nothing here does IO: [`FrameDecoder`] is
//! fed whatever bytes a socket produced and hands back complete bodies, [`encode_frame`]
//! appends a frame to a buffer the caller writes.
//!
//! # Hostile input
//!
//! A frame's claimed length is checked against the configured largest frame
//! ([`DEFAULT_MAX_FRAME_LEN`] unless raised) as soon as its four length bytes have arrived and
//! before anything is allocated for it; a larger claim is [`FrameError::TooLarge`]. The
//! decoder never allocates more than the bytes it was actually given.
//!
//! # Versioning
//!
//! The types in [`message`] are the protocol's only `Serialize` types. They are versioned
//! wire types; that module's documentation gives the rules that keep nodes compatible.

mod frame;
mod lane;
pub mod message;
/// Generators and a counting runner for the property tests of every decoder (tests only).
#[cfg(test)]
pub(crate) mod props;

pub use frame::{
    decode_body, encode_frame, FrameDecoder, FrameError, DEFAULT_MAX_FRAME_LEN,
    HANDSHAKE_MAX_FRAME_LEN, LEN_PREFIX,
};
pub use lane::{Lane, Laned};
