//! The thin tokio driver: runs the sans-IO [`proto`](crate::proto) machines over a
//! [`Stream`] (a TCP socket, or any other byte stream such as TLS or an in-memory pipe).
//!
//! [`handshake_over`] takes a connected socket through the handshake; [`Session::start`]
//! then spawns one reader and one writer task for the connection:
//!
//! - the reader reads into a 64 KiB buffer and decodes every complete frame of each read, so
//!   a burst of small frames costs one syscall;
//! - the writer coalesces: frames queued while a write is in flight go out together in the
//!   next single `write_all`;
//! - the writer keeps order per lane ([`Lane`](crate::wire::Lane), which the message
//!   type gives each frame: [`Laned`](crate::wire::Laned)): a message whose encoding is over
//!   [`FRAGMENT_SIZE`] (64 KiB) is sent as fragments
//!   ([`SessionFrame::Fragment`](crate::wire::message::SessionFrame)), and each write takes
//!   every small frame queued meanwhile that is not ordered behind the large message, then
//!   one fragment of it; so a tick, a ping or a small call to another actor waits behind at
//!   most one fragment, not behind a 55 MiB message. The reader reassembles fragments,
//!   bounded by `max_frame_len` (more closes the session with
//!   [`CloseReason::MessageTooLarge`]), and decodes a message over 1 MiB on the blocking
//!   pool while it reads on (the sender encodes one with `block_in_place`);
//! - the writer also runs the [`Ticker`](crate::proto::Ticker): an idle session sends a tick
//!   every `tick_time / tick_intensity`, and a peer silent for `tick_time` closes the session
//!   with [`CloseReason::TickTimeout`];
//! - with the `testing` feature, both consult the session's `Faults` (freeze the node, drop
//!   a peer's frames) with one relaxed atomic load per read and per write; without it they
//!   contain no fault checks at all.
//!
//! Frames of a session are [`SessionFrame<T>`](crate::wire::message::SessionFrame): a tick or
//! one message of the node layer's type `T`, so ticks need nothing from `T`.
//!
//! # Order
//!
//! Every frame has a lane, given by its message type ([`Laned`](crate::wire::Laned)); for a
//! node's messages the lane is the target actor's (the rule, and what it does not keep, is
//! on `Laned`'s implementation for `NodeMsg`, in `wire/lane.rs`). Frames of one lane arrive
//! in the order they were sent, whatever their size, and a [`Lane::Session`] frame (a
//! barrier) in order with every frame; so the BEAM's guarantee (order per sender and
//! receiver pair) holds per target actor. Small frames keep the order they were queued in;
//! only a large message is overtaken: one large message at a time is sent as fragments,
//! small frames of other lanes go out between its fragments, and frames ordered with it
//! (its lane, or a barrier) wait in the writer until its last fragment is written, counted
//! in the queue's bytes (so bounded by `send_queue_limit`). The receiver decodes a large
//! message off its reader task and meanwhile delivers the frames of other lanes; frames of
//! its lane wait until it is delivered (at most 4 MiB of them: past that the reader waits
//! for the decode). `benches/hol.rs` measures a ping and a small call while a 55 MiB
//! message is in flight.
//!
//! [`Lane::Session`]: crate::wire::Lane::Session
//!
//! # Closing
//!
//! A session ends at the first of: the peer closing, a local [`SessionHandle::close`] (or the
//! last handle dropped), a tick timeout, a frame over `max_frame_len`, an undecodable frame,
//! or a socket error. Both tasks stop at once, the socket is closed, the incoming channel
//! ends, and the reason is sent on [`Session::closed`]. Messages still queued are dropped:
//! delivery is at most once. What is lost is at most what was queued (bounded by
//! `send_queue_limit`), plus what the sockets' buffers held; the queued part is counted in
//! [`SendStats::lost_messages`] and logged once, with the count.
//!
//! # Backpressure
//!
//! The writer's queue is bounded in bytes (`send_queue_limit`, per peer): past it
//! [`SessionHandle::send`] refuses with [`SendError::Full`], and
//! [`SessionHandle::wait_for_room`] waits until it would take a message. Frames leave the
//! count once written, so a peer that stops reading (paused, overloaded) fills the queue to
//! its bound and no further. A message over `max_frame_len` is refused before it is queued
//! ([`SendError::Frame`]), and the session stays up. On the receiving side, messages the
//! reader does not handle inline wait in [`Session::incoming`], bounded by
//! [`INCOMING_CAPACITY`]: past it the reader stops reading, and TCP slows the peer.

pub(crate) mod faults;
mod handshake;
mod lanes;
pub mod memory;
mod session;
mod stream;
mod tick_clock;
#[cfg(feature = "tls")]
pub mod tls;
#[cfg(not(feature = "tls"))]
pub(crate) mod tls;

#[cfg(feature = "testing")]
pub use faults::{Chaos, Fate, Faults};
pub use handshake::{handshake_over, Connected, Direction};
pub use memory::{
    MemoryConnectError, MemoryNetwork, MemoryPipe, MemoryPipeReader, MemoryPipeWriter,
};
pub use session::{
    CloseReason, Handler, Incoming, Inline, InlineRaw, OnClose, Prepared, Responder, SendError,
    SendStats, Session, SessionConfig, SessionHandle, Work, DEFAULT_SEND_QUEUE_LIMIT,
    FRAGMENT_SIZE, INCOMING_CAPACITY,
};
pub use stream::{Io, ReadHalf, Stream, WriteHalf};
pub use tick_clock::TickClock;
#[cfg(feature = "tls")]
pub use tls::{TlsConfig, TlsError};

#[cfg(test)]
mod tests;
