//! A live session: reader task, coalescing writer task, ticks.

use std::{
    fmt,
    future::Future,
    marker::PhantomData,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex, MutexGuard, PoisonError, Weak,
    },
    task::{Context, Poll},
    time::Duration,
};

use serde::{de::DeserializeOwned, Serialize};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    sync::{mpsc, oneshot, Notify},
};

#[cfg(feature = "testing")]
use super::Faults;
use super::{
    lanes::{Batch, Queued, Reorder, Schedule},
    tick_clock::Beat,
    Connected, ReadHalf, TickClock, WriteHalf,
};
use crate::{
    proto::{Established, TickAction, TickBeats, DEFAULT_TICK_INTENSITY, DEFAULT_TICK_TIME},
    wire::{
        decode_body, encode_frame, message::SessionFrame, FrameDecoder, FrameError, Lane, Laned,
        DEFAULT_MAX_FRAME_LEN, LEN_PREFIX,
    },
};
#[cfg(feature = "testing")]
use actor_core::NodeName;

/// One read takes up to this many bytes, however many frames they hold ([`read_into`]).
const READ_BUF: usize = 64 << 10;

/// The writer's batch is released after a write that grew it past this, once the burst is
/// over (and whenever the writer goes idle): every idle session end would hold it, so a mesh
/// of a thousand nodes (a million session ends) would hold it a million times. 512 bytes: a
/// ping, a reply or a small cast fits. (The frame decoder's buffer is freed whenever it is
/// drained, see [`FrameDecoder::release_drained`].)
const READ_BUF_MIN: usize = 512;

/// Reads what the stream has, up to [`READ_BUF`] bytes, into `decoder`: how many bytes (0 at
/// the end of the stream). The bytes go through a buffer on the stack of the one poll that
/// returns them, so a reader waiting for its peer holds no buffer of its own (every session
/// end held 512 bytes or more before, half a gigabyte in a mesh of a thousand nodes), and it
/// is never zeroed.
///
/// The handshake reads this way too: its 4 KiB read buffer was allocated and zeroed for
/// each of the million handshakes of a 1,000-node mesh.
pub(super) async fn read_into<R: AsyncRead + Unpin>(
    read: &mut R,
    decoder: &mut FrameDecoder,
) -> std::io::Result<usize> {
    std::future::poll_fn(|cx| {
        let mut stack = [std::mem::MaybeUninit::<u8>::uninit(); READ_BUF];
        let mut buf = tokio::io::ReadBuf::uninit(&mut stack);
        match Pin::new(&mut *read).poll_read(cx, &mut buf) {
            std::task::Poll::Ready(Ok(())) => {
                decoder.extend(buf.filled());
                std::task::Poll::Ready(Ok(buf.filled().len()))
            }
            std::task::Poll::Ready(Err(e)) => std::task::Poll::Ready(Err(e)),
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    })
    .await
}

/// How many received messages may wait in [`Session::incoming`]: past it the reader stops
/// reading the socket until the node takes one, so a peer sending faster than the node
/// handles its messages is slowed by TCP (its own queue for this node fills) rather than
/// costing this node memory.
pub const INCOMING_CAPACITY: usize = 1024;

/// The writer keeps a buffer of at most this many bytes between writes; a larger one (grown
/// by a burst) is released.
const KEEP_BUF: usize = 2 << 20;

/// A message whose encoding is longer than this goes out as fragments of this many bytes
/// ([`SessionFrame::Fragment`]), so the receiver's reassembly is bounded and a writer never
/// holds a whole large frame in one write. Frames of other lanes go out between its
/// fragments; frames of its own lane wait for it ([`Lane`](crate::wire::Lane)).
pub const FRAGMENT_SIZE: usize = 64 << 10;

/// A message whose encoding is longer than this is encoded off the runtime's worker (with
/// `block_in_place`, on a multi-thread runtime) and, reassembled from fragments, decoded on
/// the blocking pool while the reader reads on: copying tens of megabytes must not stall
/// the tasks that share the worker, nor the other lanes of the session.
const OFF_WORKER: usize = 1 << 20;

/// The bound on the encoded bytes of the messages the reader holds back while a large
/// message of their lane is decoded: past it, the reader waits for the decode before it
/// reads on.
const MAX_HELD: usize = 4 << 20;

/// The first byte of an encoded [`SessionFrame::Fragment`] (its variant's index).
#[cfg(feature = "testing")]
const FRAGMENT_TAG: u8 = 2;

/// The default bound on the bytes queued for one peer (64 MiB): see
/// [`SessionConfig::send_queue_limit`].
pub const DEFAULT_SEND_QUEUE_LIMIT: usize = 64 << 20;

/// How a session behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// The largest frame body accepted or sent (default 64 MiB): the one limit on a message's
    /// size, for framing and decoding alike. A message over it is refused before it is
    /// queued, and the session stays up; a frame over it from the peer closes the session.
    /// Set the same value on both nodes.
    pub max_frame_len: usize,
    /// The bound on the bytes of frames queued for the peer and not yet written (default
    /// 64 MiB): [`SessionHandle::send`] refuses a message with [`SendError::Full`] while this
    /// many bytes wait, so at most `send_queue_limit + max_frame_len` bytes of them wait (the
    /// BEAM's `dist_buf_busy_limit`, per peer). Answers to the peer's calls
    /// ([`Responder::send`]) have as much room again, so casts filling the queue do not drop
    /// them; frames sent with [`SessionHandle::send_forced`] (which must follow others
    /// already accepted) are never refused. [`SessionHandle::wait_for_room`] waits until a
    /// message would be taken. What is still queued when the session closes is lost, and
    /// counted in [`SendStats`].
    pub send_queue_limit: usize,
    /// Counters shared by every session started with (a clone of) this configuration.
    pub stats: SendStats,
    /// A peer silent this long is down (default 60 s, the BEAM's `net_ticktime`).
    pub tick_time: Duration,
    /// An idle session ticks every `tick_time / tick_intensity` (default 4); a peer silent
    /// for `tick_intensity` such intervals in a row is down, so between `tick_time -
    /// tick_time / tick_intensity` and `tick_time` after its last sign of life, as on the BEAM.
    pub tick_intensity: u32,
    /// The clock that beats every `tick_time / tick_intensity` for the sessions started with
    /// (clones of) this configuration: one timer for all of them, as the BEAM's `net_kernel`
    /// ticker, rather than one per session. The default is a clock of its own.
    pub clock: TickClock,
    /// Injected faults (only with the `testing` feature): a frozen node's sessions neither
    /// read nor write, and frames with a blocked peer are dropped. The default injects none.
    #[cfg(feature = "testing")]
    pub faults: Faults,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            send_queue_limit: DEFAULT_SEND_QUEUE_LIMIT,
            stats: SendStats::default(),
            tick_time: DEFAULT_TICK_TIME,
            tick_intensity: DEFAULT_TICK_INTENSITY,
            clock: TickClock::default(),
            #[cfg(feature = "testing")]
            faults: Faults::default(),
        }
    }
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CloseReason {
    /// The peer closed the connection (the BEAM's `connection_closed`).
    #[error("the peer closed the connection; its log says why")]
    ConnectionClosed,
    /// This node closed the session, or dropped every handle to it (`disconnect`).
    #[error("the session was closed by this node (disconnect)")]
    Disconnect,
    /// Nothing came from the peer for `tick_time` (`net_tick_timeout`).
    #[error("no sign of life from the peer for tick_time; it is down, paused or overloaded (raise tick_time on both nodes for slow links)")]
    TickTimeout,
    /// The peer sent a frame over `max_frame_len`.
    #[error("the peer sent a frame of {len} bytes, over max_frame_len ({max}); raise max_frame_len on both nodes if this is legitimate")]
    FrameTooLarge {
        /// The length the peer claimed.
        len: usize,
        /// This node's largest frame.
        max: usize,
    },
    /// The peer sent fragments of one message adding up to more than `max_frame_len`
    /// (hostile, or a peer whose own limit is higher).
    #[error("the peer sent fragments of a message of at least {len} bytes, over max_frame_len ({max}); raise max_frame_len on both nodes if this is legitimate")]
    MessageTooLarge {
        /// The bytes of the message received so far.
        len: usize,
        /// This node's largest message.
        max: usize,
    },
    /// The peer sent a frame that is not a session frame.
    #[error("the peer sent an undecodable frame ({reason}); both nodes must run compatible nodus versions")]
    Garbage {
        /// What the decoder reported.
        reason: String,
    },
    /// The socket failed.
    #[error("the connection failed: {message}")]
    Io {
        /// The kind of IO error.
        kind: std::io::ErrorKind,
        /// The IO error's text.
        message: String,
    },
}

impl CloseReason {
    fn io(e: &std::io::Error) -> Self {
        Self::Io {
            kind: e.kind(),
            message: e.to_string(),
        }
    }
}

/// [`SessionHandle::send`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The session is closed; [`Session::closed`] says why.
    #[error("the session is closed; reconnect to send again")]
    Closed,
    /// The message could not be framed (too large, or refused by the codec).
    #[error("the message could not be framed")]
    Frame(#[source] FrameError),
    /// `limit` bytes or more wait to be written to the peer (`send_queue_limit`): the
    /// message was not queued. Wait with [`SessionHandle::wait_for_room`] and send again.
    #[error("{limit} bytes or more wait to be written to the peer; wait for room and send again, or raise send_queue_limit")]
    Full {
        /// The bound, `send_queue_limit`.
        limit: usize,
    },
}

/// Counters of what a node's sessions queued, refused and lost; clones share them. A node
/// hands its own out (`Node::send_stats`).
#[derive(Clone, Default)]
pub struct SendStats(Arc<StatsInner>);

#[derive(Default)]
struct StatsInner {
    high_water: AtomicUsize,
    busy: AtomicU64,
    lost_messages: AtomicU64,
    lost_bytes: AtomicU64,
}

impl SendStats {
    /// The most bytes ever queued for one peer at once (frames not yet written). Never more
    /// than `2 × send_queue_limit + max_frame_len`, plus forced frames
    /// ([`SessionHandle::send_forced`]).
    pub fn queued_high_water(&self) -> usize {
        self.0.high_water.load(Ordering::Relaxed)
    }

    /// How many messages were refused because their peer's queue was full.
    pub fn busy(&self) -> u64 {
        self.0.busy.load(Ordering::Relaxed)
    }

    /// How many messages were accepted (their send returned `Ok`) and then lost unsent:
    /// still queued when their session closed, or queued during a connect that failed. A
    /// closing session loses at most what was queued for it.
    pub fn lost_messages(&self) -> u64 {
        self.0.lost_messages.load(Ordering::Relaxed)
    }

    /// The bytes of the lost frames counted in [`SendStats::lost_messages`] (0 for messages
    /// lost before they were framed, during a failed connect).
    pub fn lost_bytes(&self) -> u64 {
        self.0.lost_bytes.load(Ordering::Relaxed)
    }

    /// Counts `messages` accepted and lost unsent (`bytes` of them framed).
    pub(crate) fn record_lost(&self, messages: u64, bytes: u64) {
        self.0.lost_messages.fetch_add(messages, Ordering::Relaxed);
        self.0.lost_bytes.fetch_add(bytes, Ordering::Relaxed);
    }
}

impl fmt::Debug for SendStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendStats")
            .field("queued_high_water", &self.queued_high_water())
            .field("busy", &self.busy())
            .field("lost_messages", &self.lost_messages())
            .field("lost_bytes", &self.lost_bytes())
            .finish()
    }
}

/// Equal when shared (clones of one another).
impl PartialEq for SendStats {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for SendStats {}

/// A session's write queue: the frames queued and not yet taken by the writer, and the
/// bookkeeping of the bytes and frames queued and not yet written.
struct Queue {
    bytes: AtomicUsize,
    frames: AtomicUsize,
    limit: usize,
    /// Woken when the queue drops under its limit, and when the session closes.
    room: Notify,
    stats: SendStats,
    /// What the writer has not taken yet. Senders encode into it under the lock; the writer
    /// swaps its buffers for empty ones, so neither side allocates per message.
    pending: Mutex<Pending>,
    /// Wakes the writer (see [`Queue::wake_writer`]): set by the sender that queues into an
    /// empty [`Pending`] (one wake-up per batch, not per message), and when the last handle
    /// is dropped; taken by the writer's wait ([`Queue::woken`]). A flag and the task's
    /// waker rather than a `Notify`, whose wait the idle writer would hold in its future
    /// and whose list the queue would hold.
    woken: AtomicBool,
    /// Set (under the lock too) once the session is closed: senders are refused.
    closed: AtomicBool,
    /// Why the session is to end: the first reason asked for (a handle's `close`, the
    /// reader's end), taken by the session end's task, which ends the session. A slot and
    /// a waker rather than a channel: an unbounded channel allocates a block of 32 reasons
    /// up front, over a KiB per session end, for the one reason that is ever sent.
    /// Boxed: a reason is 32 bytes and asked for once in a session's life.
    reason: Mutex<Option<Box<CloseReason>>>,
    /// Set once a reason is in [`Queue::reason`] (checked at each poll of the task without
    /// the lock).
    asked: AtomicBool,
    /// The session end's task, woken when a reason is asked for. In the queue (shared)
    /// rather than a `Notify` wait in the task's future, which every idle session end would
    /// hold (88 bytes of it, enough to push the task over 1 KiB).
    task: futures::task::AtomicWaker,
    /// The session's span (its peer and direction), entered at each poll of its task; here
    /// rather than around the task's future, for the same reason.
    span: tracing::Span,
    /// Set by the reader when bytes arrive, taken by the writer at each beat of its
    /// [`TickClock`] (the peer's sign of life): no clock is read per read.
    received: AtomicBool,
    /// Set at each beat of the session's [`TickClock`] (with a wake of the writer), taken by
    /// the writer, which then looks at its ticks.
    beaten: AtomicBool,
}

/// The frames queued for the writer and not yet taken, in the order queued: small frames
/// encoded back to back in one buffer, large ones (sent as fragments) each in its own.
#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    entries: Vec<Entry>,
    /// Refuses senders (set when the session closes).
    closed: bool,
    /// Every handle is gone: the writer writes what is queued, then ends the session.
    dropped: bool,
}

/// A queued frame.
enum Entry {
    /// The next `len` bytes of [`Pending::bytes`]: a whole frame of `lane`.
    Small { lane: Lane, len: usize },
    /// A frame over [`FRAGMENT_SIZE`], sent as fragments.
    Large(Queued),
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.entries.clear();
    }

    /// Empties the buffers and frees them.
    fn release(&mut self) {
        self.bytes = Vec::new();
        self.entries = Vec::new();
    }
}

/// How much of the queue a frame may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Room {
    /// Refused while `limit` bytes wait (new casts, calls, task starts).
    Bounded,
    /// Refused while twice `limit` bytes wait: answers to the peer's calls, so that a queue
    /// full of casts does not drop them, while a peer that calls and never reads its answers
    /// still costs bounded memory.
    Answer,
    /// Never refused for room (frames that must follow others already accepted).
    Forced,
}

impl Beat for Queue {
    fn beat(&self) {
        self.beaten.store(true, Ordering::Release);
        self.wake_writer();
    }
}

impl Queue {
    /// An empty, open queue bounded at `limit` bytes, counting into `stats`, of a session
    /// whose task runs in `span`.
    fn new(limit: usize, stats: SendStats, span: tracing::Span) -> Self {
        Self {
            bytes: AtomicUsize::new(0),
            frames: AtomicUsize::new(0),
            limit,
            room: Notify::new(),
            stats,
            pending: Mutex::new(Pending::default()),
            woken: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            reason: Mutex::new(None),
            asked: AtomicBool::new(false),
            task: futures::task::AtomicWaker::new(),
            span,
            received: AtomicBool::new(false),
            beaten: AtomicBool::new(false),
        }
    }

    /// Asks the writer to end the session for `reason`, unless a reason was asked for
    /// already (the first one wins) or the session is closed.
    fn request_close(&self, reason: CloseReason) {
        if self.is_closed() {
            return;
        }
        let mut slot = self.reason.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(Box::new(reason));
            drop(slot);
            self.asked.store(true, Ordering::Release);
            // Kept if the task is running: it sees the reason at its next poll.
            self.task.wake();
        }
    }

    /// The reason asked for, if any (taken: asked once, ended once).
    fn take_reason(&self) -> Option<CloseReason> {
        self.reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .map(|reason| *reason)
    }

    /// Wakes the writer, or has it go on at its next wait if it is not waiting
    /// ([`Queue::woken`]).
    fn wake_writer(&self) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }

    /// The writer's wait for [`Queue::wake_writer`]. Woken through [`Queue::task`]: only in
    /// the session end's task ([`SessionEnd`]), which registers its waker there before it
    /// polls the writer (so a wake-up after this finds nothing still wakes the task).
    fn woken(&self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(move |_| {
            if self.woken.swap(false, Ordering::AcqRel) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }

    /// The reason asked for, if any, taken (see [`Queue::take_reason`]); no lock unless one
    /// was.
    fn take_asked(&self) -> Option<CloseReason> {
        if self.asked.load(Ordering::Acquire) {
            self.take_reason()
        } else {
            None
        }
    }

    /// Records "bytes arrived" for the writer's ticks (written only if not set yet: the
    /// writer reads the same line).
    fn mark_received(&self) {
        if !self.received.load(Ordering::Relaxed) {
            self.received.store(true, Ordering::Relaxed);
        }
    }

    /// Whether the clock beat since the last call.
    fn take_beaten(&self) -> bool {
        self.beaten.load(Ordering::Relaxed) && self.beaten.swap(false, Ordering::AcqRel)
    }

    /// A beat for `beats`, with whether bytes arrived since the last one: what to do about
    /// ticks.
    fn on_beat(&self, beats: &mut TickBeats) -> Option<TickAction> {
        beats.handle_beat(self.received.swap(false, Ordering::Relaxed))
    }

    /// The bound for frames of `room`, `None` for forced frames.
    fn bound(&self, room: Room) -> Option<usize> {
        match room {
            Room::Bounded => Some(self.limit),
            Room::Answer => Some(self.limit.saturating_mul(2)),
            Room::Forced => None,
        }
    }

    /// Reserves room for a frame of `len` bytes: refused while its bound or more bytes wait.
    fn reserve(&self, len: usize, room: Room) -> Result<(), SendError> {
        let bound = self.bound(room);
        let queued = match bound {
            None => self.bytes.fetch_add(len, Ordering::AcqRel),
            Some(limit) => self
                .bytes
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                    (q < limit).then_some(q.saturating_add(len))
                })
                .map_err(|_| {
                    self.stats.0.busy.fetch_add(1, Ordering::Relaxed);
                    SendError::Full { limit }
                })?,
        };
        self.frames.fetch_add(1, Ordering::AcqRel);
        let now = queued.saturating_add(len);
        self.stats.0.high_water.fetch_max(now, Ordering::Relaxed);
        Ok(())
    }

    /// `frames` frames of `bytes` bytes left the queue (written, or never queued).
    fn release(&self, frames: usize, bytes: usize) {
        self.frames.fetch_sub(frames, Ordering::AcqRel);
        let before = self.bytes.fetch_sub(bytes, Ordering::AcqRel);
        if before >= self.limit && before - bytes < self.limit {
            self.room.notify_waiters();
        }
    }

    fn has_room(&self) -> bool {
        self.bytes.load(Ordering::Acquire) < self.limit
    }

    /// Whether a frame of `room` would be taken now.
    fn has_room_for(&self, room: Room) -> bool {
        self.bound(room)
            .is_none_or(|bound| self.bytes.load(Ordering::Acquire) < bound)
    }

    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Refuses senders from now on and drops what the writer had not taken (still counted
    /// in `frames` and `bytes`: lost).
    fn close(&self) {
        let mut pending = self.lock();
        pending.closed = true;
        self.closed.store(true, Ordering::Release);
        *pending = Pending {
            closed: true,
            dropped: pending.dropped,
            ..Pending::default()
        };
    }

    /// Ends the queue for good: refuses senders, counts what was still queued as lost (the
    /// frames and bytes, returned) and wakes those waiting for room.
    fn close_for_good(&self) -> (usize, usize) {
        self.close();
        let lost = self.frames.load(Ordering::Acquire);
        let lost_bytes = self.bytes.load(Ordering::Acquire);
        if lost > 0 {
            self.stats.record_lost(lost as u64, lost_bytes as u64);
        }
        self.room.notify_waiters();
        (lost, lost_bytes)
    }
}

/// Frames `msg` and queues it in its lane: refused when the queue is full for frames of
/// `room`. A small frame is encoded straight into the writer's pending buffer (no buffer of
/// its own); the writer is woken only if nothing was pending.
fn queue_msg<T: Serialize + Laned>(
    queue: &Queue,
    max_frame_len: usize,
    msg: &T,
    room: Room,
) -> Result<(), SendError> {
    if queue.is_closed() {
        return Err(SendError::Closed);
    }
    if !queue.has_room_for(room) {
        // Refused before encoding: a flat-out sender to a full peer costs no encoding.
        queue.stats.0.busy.fetch_add(1, Ordering::Relaxed);
        let limit = queue.bound(room).unwrap_or(usize::MAX);
        return Err(SendError::Full { limit });
    }
    let framed = SessionFrame::Msg(msg);
    // The size first (a byte buffer inside is counted, not copied): a message over the limit
    // is refused without being encoded.
    let body = actor_core::codec::encoded_len(&framed)
        .map_err(|source| SendError::Frame(FrameError::Encode { source }))?;
    let max = max_frame_len.min(u32::MAX as usize);
    if body > max {
        return Err(SendError::Frame(FrameError::TooLarge { len: body, max }));
    }
    let lane = msg.lane();
    if body > FRAGMENT_SIZE {
        // A large message: encoded in a buffer of its own, outside the lock (and off the
        // worker when huge), and sent as fragments.
        let mut frame = Vec::with_capacity(body.saturating_add(LEN_PREFIX));
        let encode = |frame: &mut Vec<u8>| encode_frame(&framed, frame, max_frame_len);
        if body > OFF_WORKER {
            off_worker(|| encode(&mut frame))
        } else {
            encode(&mut frame)
        }
        .map_err(SendError::Frame)?;
        let len = frame.len();
        queue.reserve(len, room)?;
        let mut pending = queue.lock();
        if pending.closed {
            drop(pending);
            queue.release(1, len);
            return Err(SendError::Closed);
        }
        let wake = pending.is_empty();
        pending.entries.push(Entry::Large(Queued {
            lane,
            large: true,
            frame,
        }));
        drop(pending);
        if wake {
            queue.wake_writer();
        }
        return Ok(());
    }
    let mut pending = queue.lock();
    if pending.closed {
        return Err(SendError::Closed);
    }
    let at = pending.bytes.len();
    let len = match encode_frame(&framed, &mut pending.bytes, max_frame_len) {
        Ok(body) => body + LEN_PREFIX,
        Err(e) => return Err(SendError::Frame(e)), // (`encode_frame` took its bytes back)
    };
    if let Err(e) = queue.reserve(len, room) {
        pending.bytes.truncate(at);
        return Err(e);
    }
    let wake = pending.is_empty();
    pending.entries.push(Entry::Small { lane, len });
    drop(pending);
    if wake {
        queue.wake_writer();
    }
    Ok(())
}

/// Runs `f`, a long computation, without stalling the tasks that share this worker: with
/// `block_in_place` on a multi-thread runtime (the worker's other tasks move to another
/// thread meanwhile), directly elsewhere.
fn off_worker<R>(f: impl FnOnce() -> R) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// The messages received on a session ([`Session::incoming`]), in the order sent; `recv`
/// ends with `None` when the session closes.
///
/// Each waits boxed: a channel of messages allocates room for 32 of them up front (tokio's
/// block), a few KiB per session for a large message enum, where 32 boxes' pointers take
/// 256 bytes and a message's box exists only while it waits.
///
/// # Examples
///
/// Two sessions over an in-memory pipe, after the handshake: what one sends, the other's
/// `incoming` yields, and `None` once the sender closed.
///
/// ```
/// use actor_core::NodeName;
/// use actor_remote::{
///     proto::{Existing, HandshakeConfig},
///     transport::{handshake_over, Direction, Session, SessionConfig, Stream},
///     wire::{Lane, Laned},
/// };
///
/// #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
/// struct Hello(String);
/// impl Laned for Hello {
///     fn lane(&self) -> Lane {
///         Lane::Session
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let a = HandshakeConfig::new(NodeName::parse("a@localhost")?, "cookie");
/// let b = HandshakeConfig::new(NodeName::parse("b@localhost")?, "cookie");
/// let (pipe_a, pipe_b) = tokio::io::duplex(64 * 1024);
/// let none = |_| std::future::ready(Existing::None);
/// let dial = Direction::Outgoing { peer: b.name.clone() };
/// let (ca, cb) = tokio::join!(
///     handshake_over(Stream::boxed(pipe_a), dial, &a, none),
///     handshake_over(Stream::boxed(pipe_b), Direction::Incoming, &b, none),
/// );
/// let sa = Session::<Hello>::start(ca?, SessionConfig::default());
/// let mut sb = Session::<Hello>::start(cb?, SessionConfig::default());
///
/// sa.handle.send(&Hello("hi".into()))?;
/// assert_eq!(sb.incoming.recv().await, Some(Hello("hi".into())));
/// sa.handle.close();
/// assert_eq!(sb.incoming.recv().await, None);
/// # Ok(())
/// # }
/// ```
pub struct Incoming<T> {
    rx: mpsc::Receiver<Box<T>>,
}

impl<T> Incoming<T> {
    /// The next message, or `None` once the session closed and every message was taken.
    pub async fn recv(&mut self) -> Option<T> {
        self.rx.recv().await.map(|msg| *msg)
    }
}

impl<T> fmt::Debug for Incoming<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Incoming").finish_non_exhaustive()
    }
}

/// A started session: the handle to send with, the incoming messages, and the close reason.
pub struct Session<T> {
    /// Sends messages to the peer and closes the session; clone it freely.
    pub handle: SessionHandle<T>,
    /// Messages from the peer, in the order sent (those an [`Inline`] handler did not take).
    /// Ends when the session closes. Bounded: [`INCOMING_CAPACITY`].
    pub incoming: Incoming<T>,
    /// Resolves once, with the reason the session ended.
    pub closed: oneshot::Receiver<CloseReason>,
}

impl<T> fmt::Debug for Session<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("handle", &self.handle)
            .finish_non_exhaustive()
    }
}

/// Sends messages on a session; cheap to clone (one reference count). The session closes
/// when the last handle is dropped, once what was queued is written.
pub struct SessionHandle<T> {
    inner: Arc<HandleInner>,
    _msg: PhantomData<fn(&T)>,
}

/// What the handles of one session share.
struct HandleInner {
    established: Established,
    queue: Arc<Queue>,
    max_frame_len: usize,
}

impl Drop for HandleInner {
    /// The last handle is gone: the writer writes what is queued, then closes the session.
    fn drop(&mut self) {
        self.queue.lock().dropped = true;
        self.queue.wake_writer();
    }
}

impl<T> Clone for SessionHandle<T> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            _msg: PhantomData,
        }
    }
}

impl<T> fmt::Debug for SessionHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionHandle")
            .field("peer", &self.inner.established.peer)
            .field("closed", &self.inner.queue.is_closed())
            .finish_non_exhaustive()
    }
}

impl<T: Serialize + Laned> SessionHandle<T> {
    /// Queues `msg` for the peer. Does not wait: the writer sends everything queued while a
    /// write is in flight in one write. The queue is bounded (`send_queue_limit`).
    ///
    /// A return value of `Ok` does not mean that the message will be received: the session
    /// may close before it is written, and delivery is at most once.
    ///
    /// # Errors
    /// [`SendError::Closed`] if the session is closed, [`SendError::Full`] if the queue is
    /// full, [`SendError::Frame`] if the message does not fit in `max_frame_len` or cannot be
    /// encoded (the session stays open).
    pub fn send(&self, msg: &T) -> Result<(), SendError> {
        queue_msg(
            &self.inner.queue,
            self.inner.max_frame_len,
            msg,
            Room::Bounded,
        )
    }

    /// As [`SessionHandle::send`], but never refused for room: for frames that must follow
    /// others already accepted (messages queued during a connect, link signals, answers).
    /// They count towards the queue's bytes.
    ///
    /// # Errors
    /// [`SendError::Closed`], [`SendError::Frame`].
    pub fn send_forced(&self, msg: &T) -> Result<(), SendError> {
        queue_msg(
            &self.inner.queue,
            self.inner.max_frame_len,
            msg,
            Room::Forced,
        )
    }
}

impl<T> SessionHandle<T> {
    /// Who the peer is and what the session speaks.
    pub fn established(&self) -> &Established {
        &self.inner.established
    }

    /// Closes the session with [`CloseReason::Disconnect`]. Queued messages may be dropped.
    pub fn close(&self) {
        self.inner.queue.request_close(CloseReason::Disconnect);
    }

    /// Whether the session has closed.
    pub fn is_closed(&self) -> bool {
        self.inner.queue.is_closed()
    }

    /// The largest frame this session sends (`max_frame_len`).
    pub fn max_frame_len(&self) -> usize {
        self.inner.max_frame_len
    }

    /// The bound on the bytes queued for the peer (`send_queue_limit`).
    pub fn send_queue_limit(&self) -> usize {
        self.inner.queue.limit
    }

    /// Whether the queue would take a message now.
    pub fn has_room(&self) -> bool {
        self.inner.queue.has_room()
    }

    /// How many bytes of frames are queued for the peer and not yet written.
    pub fn queued_bytes(&self) -> usize {
        self.inner.queue.bytes.load(Ordering::Acquire)
    }

    /// Resolves once the queue has room for a message ([`SessionHandle::send`] would take
    /// one), or the session has closed. Another sender may take the room first.
    pub async fn wait_for_room(&self) {
        loop {
            let queue = &self.inner.queue;
            let room = queue.room.notified();
            let mut room = std::pin::pin!(room);
            room.as_mut().enable();
            if queue.has_room() || queue.is_closed() {
                return;
            }
            room.await;
        }
    }
}

/// Sends on a session without keeping it open: what an [`Inline`] handler answers with.
pub struct Responder<T> {
    inner: Weak<HandleInner>,
    _msg: PhantomData<fn(&T)>,
}

impl<T> Clone for Responder<T> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            _msg: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Responder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Responder").finish_non_exhaustive()
    }
}

impl<T: Serialize + Laned> Responder<T> {
    /// Queues an answer `msg` for the peer (a call's reply). Answers have room of their
    /// own: they are refused only while twice `send_queue_limit` bytes wait, so a queue
    /// full of casts ([`SessionHandle::send`] refuses at `send_queue_limit`) does not drop
    /// them, while a peer that sends calls and does not read the replies still costs
    /// bounded memory (`2 × send_queue_limit + max_frame_len` per peer).
    ///
    /// # Errors
    /// [`SendError::Closed`] once the session is closed (or every handle was dropped),
    /// [`SendError::Full`] (with `limit` twice `send_queue_limit`) if even the answers'
    /// room is full, [`SendError::Frame`] if the message does not fit.
    pub fn send(&self, msg: &T) -> Result<(), SendError> {
        let inner = self.inner.upgrade().ok_or(SendError::Closed)?;
        queue_msg(&inner.queue, inner.max_frame_len, msg, Room::Answer)
    }
}

impl<T> SessionHandle<T> {
    /// A sender that does not keep the session open.
    pub fn responder(&self) -> Responder<T> {
        Responder {
            inner: Arc::downgrade(&self.inner),
            _msg: PhantomData,
        }
    }
}

/// Handles incoming messages in the session's reader task, before they reach
/// [`Session::incoming`]: return `None` for a message it handled, `Some(msg)` to pass it on.
/// It runs on the reader's task, so it must not block; it saves the hop through the
/// channel for messages that need no await (nodus uses it for actor messages).
pub type Inline<T> = Box<dyn FnMut(T, &Responder<T>) -> Option<T> + Send>;

/// Handles a received frame's body in the session's reader task before it is decoded:
/// returns whether it took the frame (a frame it leaves is decoded and handed on as usual).
/// It reads the frame in place, so what it takes is never copied out of the read buffer
/// (nodus takes its actors' messages this way, [`SendRef`](crate::wire::message::SendRef)).
/// It is offered only frames that may be delivered at once (none while a large message of
/// some lane is still being decoded), and like [`Inline`] it must not block.
pub type InlineRaw<T> = Box<dyn FnMut(&[u8], &Responder<T>) -> bool + Send>;

/// Work a [`Handler`] leaves for the reader to finish before it hands on the next message
/// (nodus: starting a task a peer asked for). The reader reads nothing meanwhile, so the
/// session's order holds across it, and neither the peer's messages nor its close are seen
/// until it is done (the tick timeout still ends a session whose peer went silent): keep it
/// short. If the session ends first, the work is dropped where it is.
pub type Work = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Handles every message of a session in its reader task, in the order received, for a
/// session started with [`Prepared::serve`]: `None` once handled, or [`Work`] the reader
/// awaits before the next message. Such a session has no [`Incoming`] channel and no task
/// of the receiver's own per session: a node with a million session ends saves a task and a
/// channel per end. Like [`Inline`], it must not block.
pub type Handler<T> = Box<dyn FnMut(T, &Responder<T>) -> Option<Work> + Send>;

/// Told once, in the session's writer task, why a session started with [`Prepared::serve`]
/// ended; its reader has stopped by then, so every message it handed on was handled first.
pub type OnClose = Box<dyn FnOnce(CloseReason) + Send>;

impl<T> Session<T>
where
    T: Serialize + DeserializeOwned + Laned + Send + 'static,
{
    /// Starts the session's reader and writer tasks on the current tokio runtime.
    ///
    /// # Panics
    /// Outside a tokio runtime, as `tokio::spawn` does.
    pub fn start(conn: Connected, cfg: SessionConfig) -> Self {
        Self::start_with(conn, cfg, None)
    }

    /// As [`Session::start`], with messages first offered to `inline` in the reader task.
    ///
    /// # Panics
    /// Outside a tokio runtime, as `tokio::spawn` does.
    pub fn start_with(conn: Connected, cfg: SessionConfig, inline: Option<Inline<T>>) -> Self {
        Self::start_with_raw(conn, cfg, inline, None)
    }

    /// As [`Session::start_with`], with frames first offered to `raw` in the reader task,
    /// before they are decoded.
    ///
    /// # Panics
    /// Outside a tokio runtime, as `tokio::spawn` does.
    pub fn start_with_raw(
        conn: Connected,
        cfg: SessionConfig,
        inline: Option<Inline<T>>,
        raw: Option<InlineRaw<T>>,
    ) -> Self {
        let prepared = Self::prepare(conn, cfg);
        let handle = prepared.handle.clone();
        let (incoming_tx, incoming) = mpsc::channel(INCOMING_CAPACITY);
        let (closed_tx, closed) = oneshot::channel();
        prepared.spawn(
            Deliver::Channel {
                incoming: incoming_tx,
                inline,
            },
            raw,
            closed_on(closed_tx),
        );
        Self {
            handle,
            incoming: Incoming { rx: incoming },
            closed,
        }
    }

    /// A session whose tasks are not started yet: its handle can be handed out (and sent
    /// on: what is sent waits in its queue) before the first message is read. Start it with
    /// [`Prepared::serve`]; dropping it closes the connection.
    pub fn prepare(conn: Connected, cfg: SessionConfig) -> Prepared<T> {
        let Connected {
            established,
            stream,
            mut decoder,
        } = conn;
        let max_frame_len = cfg.max_frame_len;
        decoder.set_max_frame_len(max_frame_len);
        // Bounded in bytes (a frame-count bound would let 64 MiB frames pile up to
        // gigabytes).
        let span = tracing::debug_span!(
            "session",
            peer = %established.peer,
            dir = ?established.role,
        );
        let queue = Arc::new(Queue::new(cfg.send_queue_limit, cfg.stats.clone(), span));
        let handle = SessionHandle {
            inner: Arc::new(HandleInner {
                established,
                queue,
                max_frame_len,
            }),
            _msg: PhantomData,
        };
        Prepared {
            handle,
            parts: Some(Parts {
                stream,
                decoder,
                cfg,
            }),
        }
    }
}

/// A session with its handle made and its tasks not started: from [`Session::prepare`].
/// Dropped unserved, it closes its connection, and its handles see the session closed
/// (what was sent on them is counted as lost).
pub struct Prepared<T> {
    handle: SessionHandle<T>,
    /// Taken when it is served.
    parts: Option<Parts>,
}

/// What a prepared session's tasks are made of.
struct Parts {
    stream: super::Stream,
    decoder: FrameDecoder,
    cfg: SessionConfig,
}

impl<T> Drop for Prepared<T> {
    fn drop(&mut self) {
        if self.parts.take().is_some() {
            // Never served: no writer will end it.
            let (lost, _) = self.handle.inner.queue.close_for_good();
            tracing::debug!(
                lost_messages = lost,
                "a prepared session was dropped unserved: closed"
            );
        }
    }
}

impl<T> fmt::Debug for Prepared<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prepared")
            .field("handle", &self.handle)
            .finish_non_exhaustive()
    }
}

impl<T> Prepared<T>
where
    T: Serialize + DeserializeOwned + Laned + Send + 'static,
{
    /// The session's handle.
    pub fn handle(&self) -> &SessionHandle<T> {
        &self.handle
    }

    /// Starts the session's reader and writer tasks: every frame is offered to `raw` first,
    /// then decoded and handed to `handler`, in order, in the reader task; `on_close` hears
    /// why the session ended.
    ///
    /// # Panics
    /// Outside a tokio runtime, as `tokio::spawn` does.
    ///
    /// # Examples
    ///
    /// `b`'s end of a session served by a handler that forwards what `a` sends into a
    /// channel; `on_close` hears that `a` closed. A clone of the handle is kept: the session
    /// closes when its last handle is dropped, and `serve` drops the prepared one.
    ///
    /// ```
    /// use actor_core::NodeName;
    /// use actor_remote::{
    ///     proto::{Existing, HandshakeConfig},
    ///     transport::{handshake_over, CloseReason, Direction, Session, SessionConfig, Stream},
    ///     wire::{Lane, Laned},
    /// };
    /// use tokio::sync::{mpsc, oneshot};
    ///
    /// #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    /// struct Hello(String);
    /// impl Laned for Hello {
    ///     fn lane(&self) -> Lane {
    ///         Lane::Session
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let a = HandshakeConfig::new(NodeName::parse("a@localhost")?, "cookie");
    /// let b = HandshakeConfig::new(NodeName::parse("b@localhost")?, "cookie");
    /// let (pipe_a, pipe_b) = tokio::io::duplex(64 * 1024);
    /// let none = |_| std::future::ready(Existing::None);
    /// let dial = Direction::Outgoing { peer: b.name.clone() };
    /// let (ca, cb) = tokio::join!(
    ///     handshake_over(Stream::boxed(pipe_a), dial, &a, none),
    ///     handshake_over(Stream::boxed(pipe_b), Direction::Incoming, &b, none),
    /// );
    /// let sa = Session::<Hello>::start(ca?, SessionConfig::default());
    /// let prepared = Session::<Hello>::prepare(cb?, SessionConfig::default());
    /// let hb = prepared.handle().clone();
    ///
    /// let (tx, mut received) = mpsc::unbounded_channel();
    /// let (closed_tx, closed) = oneshot::channel();
    /// prepared.serve(
    ///     Box::new(move |msg, _responder| {
    ///         let _ = tx.send(msg);
    ///         None // nothing for the reader to wait for
    ///     }),
    ///     None,
    ///     Box::new(move |reason| {
    ///         let _ = closed_tx.send(reason);
    ///     }),
    /// );
    ///
    /// sa.handle.send(&Hello("hi".into()))?;
    /// assert_eq!(received.recv().await, Some(Hello("hi".into())));
    /// sa.handle.close();
    /// assert_eq!(closed.await?, CloseReason::ConnectionClosed);
    /// assert!(hb.is_closed());
    /// # Ok(())
    /// # }
    /// ```
    pub fn serve(self, handler: Handler<T>, raw: Option<InlineRaw<T>>, on_close: OnClose) {
        self.spawn(Deliver::Handler(handler), raw, on_close);
    }

    fn spawn(mut self, to: Deliver<T>, raw: Option<InlineRaw<T>>, closed: Closed) {
        let Some(Parts {
            stream,
            decoder,
            cfg,
        }) = self.parts.take()
        else {
            return; // (taken only here)
        };
        let handle = self.handle.clone();
        drop(self);
        #[cfg(feature = "testing")]
        let peer = handle.inner.established.peer.clone();
        let (max_frame_len, queue) = (handle.inner.max_frame_len, handle.inner.queue.clone());
        let (read, write) = stream.split();
        let responder = handle.responder();
        drop(handle); // the caller's clones keep the session; the last one closes it
        let reading = read_loop::<T>(
            read,
            decoder,
            Sink { to, raw, responder },
            queue.clone(),
            max_frame_len,
            #[cfg(feature = "testing")]
            (cfg.faults.clone(), peer.clone()),
        );
        tokio::spawn(run_session_end::<T>(
            reading,
            write,
            queue,
            closed,
            (&cfg.clock, cfg.tick_time, cfg.tick_intensity),
            #[cfg(feature = "testing")]
            (cfg.faults, peer),
        ));
    }
}

/// How a session's end is reported: to an [`OnClose`], which for a [`Session`] sends it on
/// the [`Session::closed`] channel ([`closed_on`]). One boxed call rather than an enum of
/// the two: the session end's future holds it, 8 bytes smaller so.
type Closed = OnClose;

/// Reports a session's end on `tx`.
fn closed_on(tx: oneshot::Sender<CloseReason>) -> Closed {
    Box::new(move |reason| {
        let _ = tx.send(reason);
    })
}

/// A large message being decoded on the blocking pool.
type Decoding<T> = tokio::task::JoinHandle<Result<SessionFrame<T>, FrameError>>;

/// What a large message's decode on the blocking pool ends with.
type Decoded<T> = Result<Result<SessionFrame<T>, FrameError>, tokio::task::JoinError>;

/// A large message's fragments received so far.
#[derive(Default)]
struct Assembly {
    parts: Vec<Vec<u8>>,
    /// Their total length.
    len: usize,
}

impl Assembly {
    /// The message's encoding, whole.
    fn join(self) -> Vec<u8> {
        match <[Vec<u8>; 1]>::try_from(self.parts) {
            Ok([only]) => only,
            Err(parts) => {
                let mut whole = Vec::with_capacity(self.len);
                for part in parts {
                    whole.extend_from_slice(&part);
                }
                whole
            }
        }
    }
}

/// The reader's state for large messages, boxed in an `Option`: created with the first
/// fragment, dropped once it holds nothing again. Most sessions never receive a message
/// over [`FRAGMENT_SIZE`], and every idle reader task (a million of them in a mesh of a
/// thousand nodes) would otherwise carry this state in its future.
struct Large<T> {
    /// The large message being reassembled from fragments (bounded by `max_frame_len`).
    /// Its fragments are kept as they came and joined once, by the decode: no reallocation
    /// and copy of a growing buffer on the reader's task.
    assembling: Assembly,
    /// The large message being decoded on the blocking pool (one at a time).
    decoding: Option<Decoding<T>>,
    /// The messages of its lane received after it, held back until it is delivered.
    reorder: Reorder<T>,
}

/// A step of the reader that has to wait (for room in the node's channel, for a large
/// message's decode), boxed: the reader's own future then holds a pointer across its
/// awaits rather than the step's state, and the common idle reader stays small. The
/// allocation is made only when the reader waits, or per large message.
type Step<'a> = Pin<Box<dyn Future<Output = Result<(), CloseReason>> + Send + 'a>>;

impl<T: DeserializeOwned + Send + 'static> Large<T> {
    fn new() -> Self {
        Self {
            assembling: Assembly::default(),
            decoding: None,
            reorder: Reorder::new(MAX_HELD),
        }
    }

    /// Whether it holds nothing (no fragments, no decode, nothing held back).
    fn is_idle(&self) -> bool {
        self.assembling.parts.is_empty() && self.decoding.is_none() && self.reorder.is_idle()
    }

    /// The last fragment of a message of `lane` was received: decodes the message (on the
    /// blocking pool when huge, after the previous one's decode) and delivers it.
    async fn complete(&mut self, sink: &mut Sink<T>, lane: Lane) -> Result<(), CloseReason> {
        let whole = std::mem::take(&mut self.assembling);
        // One decode at a time: the previous large message first.
        self.finish_decoding(sink).await?;
        if whole.len > OFF_WORKER {
            self.reorder.start(lane);
            self.decoding = Some(tokio::task::spawn_blocking(move || {
                decode_body::<SessionFrame<T>>(&whole.join())
            }));
        } else {
            let joined = whole.join();
            let decoded = decode_body::<SessionFrame<T>>(&joined);
            drop(joined);
            sink.deliver(reassembled(decoded)?).await;
        }
        Ok(())
    }

    /// Waits for the large message being decoded, if any, then delivers it and the
    /// messages held back behind it.
    async fn finish_decoding(&mut self, sink: &mut Sink<T>) -> Result<(), CloseReason> {
        match self.decoding.take() {
            Some(decoding) => sink.finish(decoding.await, &mut self.reorder).await,
            None => Ok(()),
        }
    }
}

/// Drops the large-message state once it holds nothing.
fn drop_idle<T: DeserializeOwned + Send + 'static>(large: &mut Option<Box<Large<T>>>) {
    if large.as_ref().is_some_and(|large| large.is_idle()) {
        *large = None;
    }
}

/// What the reader woke up for.
enum Woke<T> {
    Read(std::io::Result<usize>),
    /// Boxed: it is rare, and the reader's future holds a `Woke` across awaits.
    Decoded(Box<Decoded<T>>),
}

/// What the reader hands received messages to.
struct Sink<T> {
    to: Deliver<T>,
    raw: Option<InlineRaw<T>>,
    responder: Responder<T>,
}

/// Where received messages go: the node's channel ([`Session::incoming`], after the
/// [`Inline`] handler), or a [`Handler`] that takes them all.
enum Deliver<T> {
    Channel {
        incoming: mpsc::Sender<Box<T>>,
        inline: Option<Inline<T>>,
    },
    Handler(Handler<T>),
}

/// What the reader waits for before the next message: room in the channel for this one, or
/// the handler's work.
enum Waiting<T> {
    Room(Box<T>),
    Work(Work),
}

impl<T: Send> Sink<T> {
    /// Offers a frame's body to the raw handler: whether it took it.
    fn take_raw(&mut self, body: &[u8]) -> bool {
        match self.raw.as_mut() {
            Some(raw) => raw(body, &self.responder),
            None => false,
        }
    }

    /// Hands a received message to the handler, or to the inline handler and then (if it
    /// passes it on) to the node's channel, without waiting: what the reader must wait for
    /// first, if anything (the channel is full: the node is behind; the handler left work),
    /// for [`Sink::wait`]. The common case needs no await, so the reader's future holds
    /// neither a message nor a send in progress.
    fn offer(&mut self, msg: T) -> Option<Waiting<T>> {
        match &mut self.to {
            Deliver::Handler(handle) => handle(msg, &self.responder).map(Waiting::Work),
            Deliver::Channel { incoming, inline } => {
                let msg = match inline.as_mut() {
                    Some(handle) => handle(msg, &self.responder)?,
                    None => msg,
                };
                match incoming.try_send(Box::new(msg)) {
                    Ok(()) => None,
                    Err(mpsc::error::TrySendError::Full(msg)) => Some(Waiting::Room(msg)),
                    // Nobody listening any more is not the peer's fault: drop it.
                    Err(mpsc::error::TrySendError::Closed(_)) => None,
                }
            }
        }
    }

    /// Waits for what [`Sink::offer`] returned (the socket is not read meanwhile).
    async fn wait(&mut self, waiting: Waiting<T>) {
        match waiting {
            Waiting::Work(work) => work.await,
            Waiting::Room(msg) => {
                if let Deliver::Channel { incoming, .. } = &mut self.to {
                    // Nobody listening any more is not the peer's fault: drop it.
                    let _ = incoming.send(msg).await;
                }
            }
        }
    }

    /// Hands a received message on (see [`Sink::offer`]), waiting while the node is behind
    /// or the handler's work runs.
    async fn deliver(&mut self, msg: T) {
        if let Some(waiting) = self.offer(msg) {
            self.wait(waiting).await;
        }
    }

    /// A large message was decoded: delivers it, then the messages held back behind it.
    async fn finish(
        &mut self,
        decoded: Decoded<T>,
        reorder: &mut Reorder<T>,
    ) -> Result<(), CloseReason> {
        let msg = match decoded {
            Ok(frame) => reassembled(frame)?,
            Err(e) => {
                return Err(CloseReason::Garbage {
                    reason: format!("decoding a large message failed: {e}"),
                })
            }
        };
        self.deliver(msg).await;
        for held in reorder.finish() {
            self.deliver(held).await;
        }
        Ok(())
    }
}

/// The message a reassembled frame holds.
fn reassembled<T>(frame: Result<SessionFrame<T>, FrameError>) -> Result<T, CloseReason> {
    match frame {
        Ok(SessionFrame::Msg(msg)) => Ok(msg),
        Ok(_) => Err(CloseReason::Garbage {
            reason: "a fragmented message held a tick or a fragment, not a message".into(),
        }),
        Err(e) => Err(garbage(&e)),
    }
}

/// Handles a received frame's body: what needs no await is done here; what has to wait
/// (the node's channel is full, a large message is complete) is returned as a [`Step`].
/// The decoded frame never lives in the reader's future.
fn on_frame<'a, T: DeserializeOwned + Laned + Send + 'static>(
    body: &[u8],
    sink: &'a mut Sink<T>,
    large: &'a mut Option<Box<Large<T>>>,
    max_frame_len: usize,
) -> Result<Option<Step<'a>>, CloseReason> {
    if large.as_ref().is_none_or(|large| large.reorder.is_idle()) && sink.take_raw(body) {
        return Ok(None);
    }
    let len = body.len();
    match decode_body::<SessionFrame<T>>(body) {
        Ok(SessionFrame::Tick) => {
            tracing::trace!("tick received");
            Ok(None)
        }
        Ok(SessionFrame::Msg(msg)) => {
            let msg = match large.as_mut() {
                Some(large) => large.reorder.admit(msg.lane(), msg, len),
                None => Some(msg),
            };
            let Some(waiting) = msg.and_then(|msg| sink.offer(msg)) else {
                return Ok(None);
            };
            Ok(Some(Box::pin(async move {
                sink.wait(waiting).await;
                Ok(())
            })))
        }
        Ok(SessionFrame::Fragment { last, lane, bytes }) => {
            let large = large.get_or_insert_with(|| Box::new(Large::new()));
            let len = large.assembling.len.saturating_add(bytes.len());
            if len > max_frame_len {
                return Err(CloseReason::MessageTooLarge {
                    len,
                    max: max_frame_len,
                });
            }
            large.assembling.len = len;
            large.assembling.parts.push(bytes);
            if !last {
                return Ok(None);
            }
            Ok(Some(Box::pin(large.complete(sink, lane))))
        }
        Err(e) => Err(garbage(&e)),
    }
}

/// The reader task: reads the socket, decodes frames and hands their messages on; when the
/// peer closes, sends garbage or the socket fails, it asks the writer to end the session.
#[allow(
    clippy::manual_async_fn,
    reason = "an async fn's future holds its arguments twice (see read_loop)"
)]
fn read_loop<T: DeserializeOwned + Laned + Send + 'static>(
    mut read: ReadHalf,
    mut decoder: FrameDecoder,
    mut sink: Sink<T>,
    queue: Arc<Queue>,
    max_frame_len: usize,
    #[cfg(feature = "testing")] (faults, peer): (Faults, NodeName),
) -> impl Future<Output = ()> + Send + 'static {
    // A function returning an `async move` block rather than an `async fn`: an async fn's
    // future holds its arguments twice (as passed, and moved into its body), this one once.
    async move {
        // Large messages being reassembled or decoded, and what waits behind them.
        let mut large: Option<Box<Large<T>>> = None;
        // Whether the frames of the last read are dropped (an injected fault blocks the peer).
        #[cfg(feature = "testing")]
        let mut dropping = false;
        // Whether the fragments up to the next last one are dropped: an earlier fragment of
        // their message was (an injected fault).
        #[cfg(feature = "testing")]
        let mut skipping = false;
        let reason = 'session: loop {
            loop {
                let step = match decoder.decode() {
                    #[cfg(feature = "testing")]
                    Ok(Some(body)) if dropping => {
                        tracing::trace!("frame dropped (injected fault)");
                        // A fragment's body starts with the variant's index (2) and `last`.
                        if body.first() == Some(&FRAGMENT_TAG) {
                            if let Some(large) = large.as_mut() {
                                large.assembling = Assembly::default();
                            }
                            skipping = body.get(1) != Some(&1);
                        }
                        continue;
                    }
                    #[cfg(feature = "testing")]
                    Ok(Some(body)) if skipping && body.first() == Some(&FRAGMENT_TAG) => {
                        skipping = body.get(1) != Some(&1);
                        continue;
                    }
                    Ok(Some(body)) => match on_frame(body, &mut sink, &mut large, max_frame_len) {
                        Ok(None) => continue,
                        Ok(Some(step)) => step,
                        Err(reason) => break 'session reason,
                    },
                    Ok(None) => {
                        // Every frame read is handled: a reader waiting for more holds no
                        // buffer (the next read allocates one of its size). Kept below 512
                        // bytes before, it was ~100 bytes per idle session (the handshake's
                        // and the last read's frames).
                        decoder.release_drained();
                        break;
                    }
                    Err(FrameError::TooLarge { len, max }) => {
                        break 'session CloseReason::FrameTooLarge { len, max };
                    }
                    Err(e) => {
                        break 'session CloseReason::Garbage {
                            reason: e.to_string(),
                        }
                    }
                };
                if let Err(reason) = step.await {
                    break 'session reason;
                }
                drop_idle(&mut large);
            }
            if let Some(held) = large.as_mut().filter(|large| large.reorder.is_full()) {
                // Hold no more: wait for the decode (TCP slows the peer meanwhile).
                if let Err(reason) = Box::pin(held.finish_decoding(&mut sink)).await {
                    break reason;
                }
                drop_idle(&mut large);
            }
            #[cfg(feature = "testing")]
            if faults.is_active() {
                // A frozen node reads nothing, so its peers' bytes pile up in the socket.
                Box::pin(faults.pass(&peer)).await;
            }
            let woke = match large.as_mut().and_then(|large| large.decoding.as_mut()) {
                None => Woke::Read(read_into(&mut read, &mut decoder).await),
                Some(decoding) => {
                    Box::pin(async {
                        tokio::select! {
                            done = decoding => Woke::Decoded(Box::new(done)),
                            read = read_into(&mut read, &mut decoder) => Woke::Read(read),
                        }
                    })
                    .await
                }
            };
            match woke {
                Woke::Decoded(done) => {
                    if let Some(held) = large.as_mut() {
                        held.decoding = None;
                        if let Err(reason) = Box::pin(sink.finish(*done, &mut held.reorder)).await {
                            break reason;
                        }
                    }
                    drop_idle(&mut large);
                }
                Woke::Read(Ok(0)) => {
                    #[cfg(feature = "testing")]
                    if faults.is_active() {
                        // A partition or a frozen node would not let the peer's close through
                        // either: until it is lifted, only the tick timeout ends the session.
                        Box::pin(faults.unblocked(&peer)).await;
                    }
                    break CloseReason::ConnectionClosed;
                }
                Woke::Read(Ok(_)) => {
                    #[cfg(feature = "testing")]
                    {
                        dropping = faults.is_active() && !Box::pin(faults.pass(&peer)).await;
                        if !dropping {
                            queue.mark_received();
                        }
                    }
                    #[cfg(not(feature = "testing"))]
                    queue.mark_received();
                    // (`read_into` put the bytes in the decoder.)
                }
                Woke::Read(Err(e)) => break CloseReason::io(&e),
            }
        };
        match &reason {
            CloseReason::ConnectionClosed => tracing::debug!("{reason}"),
            _ => tracing::warn!("closing the session: {reason}"),
        }
        queue.request_close(reason);
    }
}

/// An undecodable frame from the peer, with the decoder's cause.
fn garbage(e: &FrameError) -> CloseReason {
    let reason = match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    };
    CloseReason::Garbage { reason }
}

pin_project_lite::pin_project! {
    /// A session end's one task: its reader (the [`read_loop`]) and its writer
    /// ([`run_writer`]) polled together, in the session's span, until the session ends:
    /// for the first reason asked for (a handle's `close`, the reader's end), checked first
    /// at each poll and woken for through the queue, which stops the writer where it is (a
    /// write in progress included: nothing more is written once it is seen), or for the
    /// writer's own (a failed write, a tick timeout, every handle gone), which yields to a
    /// reason asked for before it (the peer's close that broke the write, say). Then the
    /// writer is dropped (the peer sees the end of the stream first), the reader is
    /// dropped where it waited, senders are refused, what is still queued is counted as
    /// lost and the reason is reported on `closed`.
    ///
    /// Two futures of one task, not two tasks: a task is a header and a trailer around its
    /// future, rounded up to 128 bytes, and a mesh of a thousand nodes has a million
    /// session ends (two tasks were ~0.5 KiB per session more, and a spawn more each). At
    /// each wake-up of either, both are polled; one waiting costs the other a poll that
    /// finds nothing to do. The reader is a field, not a local of an `async` block, which
    /// would hold it twice (as captured and as pinned).
    struct SessionEnd<R, W> {
        #[pin]
        reading: Option<R>,
        #[pin]
        writing: Option<W>,
        queue: Arc<Queue>,
        closed: Option<Closed>,
    }
}

impl<R: Future<Output = ()>, W: Future<Output = CloseReason>> Future for SessionEnd<R, W> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        let queue: &Queue = this.queue;
        let _entered = queue.span.enter();
        queue.task.register(cx.waker());
        let reason = 'ended: {
            if let Some(reason) = queue.take_asked() {
                break 'ended reason;
            }
            if let Some(reading) = this.reading.as_mut().as_pin_mut() {
                if reading.poll(cx).is_ready() {
                    this.reading.set(None);
                    // It asked for the close on its way out.
                    if let Some(reason) = queue.take_asked() {
                        break 'ended reason;
                    }
                }
            }
            match this.writing.as_mut().as_pin_mut().map(|w| w.poll(cx)) {
                Some(Poll::Ready(reason)) => break 'ended queue.take_reason().unwrap_or(reason),
                Some(Poll::Pending) => return Poll::Pending,
                None => return Poll::Ready(()), // (ended already)
            }
        };
        // The write half goes first: the peer sees the end of the stream before `closed`
        // resolves here. Then the reader stops: a message it was handing on is dropped
        // with it (a handler's work must finish on its own, see `Work`).
        this.writing.set(None);
        this.reading.set(None);
        if let Some(closed) = this.closed.take() {
            // Refuse senders: what is still counted as queued is lost.
            let (lost, lost_bytes) = queue.close_for_good();
            if lost > 0 {
                tracing::info!(
                    lost_messages = lost,
                    lost_bytes,
                    "session closed ({reason}) with {lost} queued messages unsent: they are lost"
                );
            } else {
                tracing::debug!("session closed: {reason}");
            }
            closed(reason);
        }
        Poll::Ready(())
    }
}

/// A session end's task (see [`SessionEnd`]): `reading` is its [`read_loop`].
fn run_session_end<T: Serialize + Send + 'static>(
    reading: impl Future<Output = ()> + Send + 'static,
    write: WriteHalf,
    queue: Arc<Queue>,
    closed: Closed,
    ticks: (&TickClock, Duration, u32),
    #[cfg(feature = "testing")] faults: (Faults, NodeName),
) -> impl Future<Output = ()> + Send + 'static {
    SessionEnd {
        reading: Some(reading),
        writing: Some(run_writer::<T>(
            write,
            queue.clone(),
            ticks,
            #[cfg(feature = "testing")]
            faults,
        )),
        queue,
        closed: Some(closed),
    }
}

/// The writer of a session end: writes what is queued (and ticks) until it must end the
/// session itself, and says why (a failed write, a tick timeout, every handle gone). A
/// reason asked for meanwhile stops it from outside ([`SessionEnd`]). It owns the write half
/// and the queue (no wrapper holding them a second time: every idle session end holds this
/// future).
#[allow(
    clippy::manual_async_fn,
    reason = "an async fn's future holds its arguments twice (see read_loop)"
)]
fn run_writer<T: Serialize + Send + 'static>(
    mut write: WriteHalf,
    queue: Arc<Queue>,
    (clock, tick_time, tick_intensity): (&TickClock, Duration, u32),
    #[cfg(feature = "testing")] (faults, peer): (Faults, NodeName),
) -> impl Future<Output = CloseReason> + Send + 'static {
    // Made here, not in the block: the block would hold the tick settings as well, for the
    // session's life. The session is on the clock until the writer's future is dropped.
    let mut beats = TickBeats::new(tick_intensity);
    let every = tick_time / tick_intensity.max(1);
    let registration = clock.register(every, queue.clone());
    // An `async move` block, not an `async fn`: see `read_loop`.
    async move {
        let _registration = registration;
        tracing::debug!("session up");
        // The write's batch and what was taken from the queue, boxed and made only while
        // there is something to write (see `Busy`).
        let mut busy: Option<Box<Busy>> = None;
        // Which queued frame may go now: one large message at a time goes out as fragments,
        // small frames of other lanes between them, frames of its lane after it. Boxed and made
        // only while a large message is being sent (most sessions never send one; every idle
        // writer would carry it).
        let mut schedule: Option<Box<Schedule>> = None;
        let reason = loop {
            // The clock beat: tick if nothing was sent since the last beat, end the session
            // if nothing came for `tick_intensity` beats.
            if queue.take_beaten() {
                // A frozen node's ticks stand still; a blocked peer gets no ticks.
                #[cfg(feature = "testing")]
                let open = !faults.is_active() || Box::pin(faults.pass(&peer)).await;
                match queue.on_beat(&mut beats) {
                    #[cfg(feature = "testing")]
                    Some(TickAction::SendTick) if !open => {
                        tracing::trace!("tick dropped (injected fault)")
                    }
                    Some(TickAction::SendTick) => {
                        tracing::trace!("tick sent");
                        // In the write batch's buffer (made for it, dropped at the next idle
                        // wait): a buffer of its own would be held in the future.
                        let tick = &mut busy.get_or_insert_with(Box::default).batch.bytes;
                        tick.clear();
                        if let Err(e) = encode_frame(&SessionFrame::<T>::Tick, tick, usize::MAX) {
                            // Unreachable: a unit variant always encodes. Close rather than
                            // panic.
                            break CloseReason::Garbage {
                                reason: e.to_string(),
                            };
                        }
                        let written = WatchedWrite::new(&mut write, tick, &mut beats, &queue).await;
                        if let Err(reason) = written {
                            break reason;
                        }
                    }
                    Some(TickAction::PeerDown) => break CloseReason::TickTimeout,
                    None => {}
                }
            }
            // Everything queued meanwhile, in one write (frames held up by a large message are
            // set aside), then one fragment of the large message being sent.
            let (dropped, queued) = {
                let mut pending = queue.lock();
                let queued = !pending.is_empty();
                if queued {
                    // Its buffers are swapped with the queue's, so a burst of frames is
                    // taken in one step, without a copy.
                    let taken = &mut busy.get_or_insert_with(Box::default).taken;
                    std::mem::swap(&mut pending.bytes, &mut taken.bytes);
                    std::mem::swap(&mut pending.entries, &mut taken.entries);
                } else {
                    // Nothing was queued: the queue's buffers (empty) are released, so an
                    // idle session end holds none (they were ~400 bytes per session in a
                    // mesh of a thousand nodes). The next sender allocates again.
                    pending.release();
                }
                (pending.dropped, queued)
            };
            if schedule.as_ref().is_some_and(|schedule| schedule.is_idle()) {
                schedule = None;
            }
            if !queued && schedule.is_none() {
                if dropped {
                    // Every handle is gone and everything queued is written.
                    break CloseReason::Disconnect;
                }
                // Nothing in progress: wait for a frame or a beat, holding no write buffer
                // either.
                busy = None;
                queue.woken().await;
                continue;
            }
            let Busy { batch, taken } = &mut **busy.get_or_insert_with(Box::default);
            batch.clear(KEEP_BUF);
            let all_small = taken
                .entries
                .iter()
                .all(|entry| matches!(entry, Entry::Small { .. }));
            if schedule.is_none() && all_small {
                // The common case: the frames go out as they were encoded, with no copy.
                std::mem::swap(&mut batch.bytes, &mut taken.bytes);
                batch.frames = taken.entries.len();
                batch.released = batch.bytes.len();
            } else {
                let schedule =
                    schedule.get_or_insert_with(|| Box::new(Schedule::new(FRAGMENT_SIZE)));
                let mut at = 0;
                for entry in taken.entries.drain(..) {
                    match entry {
                        Entry::Small { lane, len } => {
                            let end = at + len;
                            schedule.push_small(lane, &taken.bytes[at..end], batch);
                            at = end;
                        }
                        Entry::Large(queued) => schedule.push(queued, batch),
                    }
                }
            }
            taken.clear();
            if taken.bytes.capacity() > KEEP_BUF {
                taken.bytes = Vec::new();
            }
            if let Some(Err(e)) = schedule.as_mut().map(|schedule| schedule.fragment(batch)) {
                // Unreachable: bytes always encode. Close rather than panic.
                break CloseReason::Garbage {
                    reason: e.to_string(),
                };
            }
            // The frames leave the queue's count once written (or dropped), so a peer that stops
            // reading fills the queue up to its bound.
            #[cfg(feature = "testing")]
            if faults.is_active() && !Box::pin(faults.pass(&peer)).await {
                tracing::trace!(
                    frame.len = batch.bytes.len(),
                    "frames dropped (injected fault)"
                );
                // A large message that lost a fragment is dropped whole, rather than sent with a
                // hole in it.
                if let Some(schedule) = schedule.as_mut() {
                    schedule.drop_sending(batch);
                }
                queue.release(batch.frames, batch.released);
                continue;
            }
            if !batch.bytes.is_empty() {
                tracing::trace!(frame.len = batch.bytes.len(), "write");
                if let Err(reason) =
                    WatchedWrite::new(&mut write, &batch.bytes, &mut beats, &queue).await
                {
                    break reason;
                }
                beats.handle_sent();
            }
            // The batch is looked up again: a reference to it held across the write would be
            // kept in the future, for the session's life.
            if let Some(Busy { batch, .. }) = busy.as_deref_mut() {
                if batch.bytes.capacity() > READ_BUF_MIN
                    && (batch.bytes.len() < batch.bytes.capacity() / 4 || queue.lock().is_empty())
                {
                    // A burst is over, or the session goes idle (nothing more to write): do
                    // not keep its buffer. An idle session end kept the buffer of its last
                    // large write (a peer list, say), a kilobyte per session on average in a
                    // growing mesh.
                    batch.bytes = Vec::new();
                }
                queue.release(batch.frames, batch.released);
            }
        };
        match &reason {
            CloseReason::Disconnect => tracing::debug!("{reason}"),
            _ => tracing::warn!("closing the session: {reason}"),
        }
        reason
    }
}

/// What a writer holds while it has something to write: the batch being written and what it
/// took from the queue. Boxed, made when there is and dropped when the writer goes idle, so
/// that an idle session end's future does not carry it (96 bytes of a task that must stay
/// within mimalloc's 896-byte class for a 128-aligned task, 1 KiB past it).
#[derive(Default)]
struct Busy {
    batch: Batch,
    taken: Pending,
}

/// Writes `bytes`, still watching for a tick timeout: a peer that stopped reading blocks the
/// write once the socket buffers are full, and must still be detected (the clock's beats
/// wake the session end's task, which polls this). A future of its own rather than an
/// `async` block with `select!` and `write_all`: the writer holds it across its writes.
struct WatchedWrite<'a> {
    write: &'a mut WriteHalf,
    /// What is left to write.
    bytes: &'a [u8],
    beats: &'a mut TickBeats,
    queue: &'a Queue,
}

impl<'a> WatchedWrite<'a> {
    fn new(
        write: &'a mut WriteHalf,
        bytes: &'a [u8],
        beats: &'a mut TickBeats,
        queue: &'a Queue,
    ) -> Self {
        Self {
            write,
            bytes,
            beats,
            queue,
        }
    }
}

impl Future for WatchedWrite<'_> {
    type Output = Result<(), CloseReason>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        // The write first: were both ready, taking the beat first would make a seeded
        // simulation's ticks depend on the order of two wake-ups.
        while !this.bytes.is_empty() {
            match Pin::new(&mut *this.write).poll_write(cx, this.bytes) {
                Poll::Ready(Ok(0)) => {
                    let e = std::io::Error::from(std::io::ErrorKind::WriteZero);
                    return Poll::Ready(Err(CloseReason::io(&e)));
                }
                Poll::Ready(Ok(n)) => this.bytes = this.bytes.get(n..).unwrap_or_default(),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(CloseReason::io(&e))),
                Poll::Pending => break,
            }
        }
        if this.bytes.is_empty() {
            return Poll::Ready(Ok(()));
        }
        // A tick due now is not needed: this write is a sign of life once it lands.
        if this.queue.take_beaten() && this.queue.on_beat(this.beats) == Some(TickAction::PeerDown)
        {
            return Poll::Ready(Err(CloseReason::TickTimeout));
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod size_tests {
    use super::*;
    use crate::wire::message::NodeMsg;

    /// Every session end holds one task, the reader's and the writer's futures polled
    /// together (a million of them in a mesh of a thousand nodes), so its size is memory
    /// first touched per session: the reader was 1,896 bytes and the writer 880 (plus a
    /// third, closing task of 128) before the large-message state, the waits and the
    /// arguments were taken out of them, and they were two tasks (two headers and trailers,
    /// each task rounded up to 128 bytes) until session 29, which also moved the session's
    /// span and the wait for a close reason out of the future. The bounds leave a little
    /// room for compiler changes, not for a large value held across an await again.
    #[tokio::test]
    async fn an_idle_session_ends_futures_stay_small() {
        let (a, _b) = tokio::io::duplex(64);
        let (read, write) = super::super::Stream::boxed(a).split();
        let queue = Arc::new(Queue::new(1, SendStats::default(), tracing::Span::none()));
        let (incoming, _incoming) = mpsc::channel::<Box<NodeMsg>>(INCOMING_CAPACITY);
        let sink = Sink {
            to: Deliver::Channel {
                incoming,
                inline: None,
            },
            raw: None,
            responder: Responder {
                inner: Weak::new(),
                _msg: PhantomData,
            },
        };
        let reader = read_loop::<NodeMsg>(
            read,
            FrameDecoder::new(1024),
            sink,
            queue.clone(),
            1024,
            #[cfg(feature = "testing")]
            (Faults::default(), NodeName::parse("a@b").unwrap()),
        );
        let reader_size = size_of_val(&reader);
        let (closed, _closed) = oneshot::channel();
        let end = run_session_end::<NodeMsg>(
            reader,
            write,
            queue,
            closed_on(closed),
            (
                &TickClock::default(),
                DEFAULT_TICK_TIME,
                DEFAULT_TICK_INTENSITY,
            ),
            #[cfg(feature = "testing")]
            (Faults::default(), NodeName::parse("a@b").unwrap()),
        );
        let end = size_of_val(&end);
        println!("reader future {reader_size} bytes, session end's future {end} bytes");
        assert!(
            reader_size <= 400,
            "the reader's future is {reader_size} bytes"
        );
        // 376 bytes without the `testing` feature's fault gates. tokio's task cell is the
        // future plus 104 bytes (its header, trailer and the stage's scheduler and id),
        // rounded up to 128: at most 408 bytes make a 512-byte cell, which mimalloc, over-
        // allocating for the 128-byte alignment, puts in a 640-byte slot; 409 to 536 make a
        // 640-byte cell and a 768-byte slot, 537 to 664 an 896-byte one (770 to 1,024 bytes
        // take 1 KiB, as measured for README's "In-memory transport"). It was 1 KiB with the
        // session's span, a wait for a close reason, the write batch and the writer's
        // arguments held twice in it, and two tasks before that; 656 bytes (896) with a
        // `select!` around each write; 528 (768) with a timer of its own (112 bytes) and a
        // timed ticker (56) before the node's one tick clock. 128 bytes more cost a mesh of a
        // thousand nodes 128 MB.
        let bound = if cfg!(feature = "testing") { 440 } else { 408 };
        assert!(end <= bound, "the session end's future is {end} bytes");
    }

    /// Each session end holds its queue in an `Arc` (16 bytes of counts in front): at 240
    /// bytes it takes a 256-byte slot, at 241 to 304 a 320-byte one, 128 MB more in a mesh
    /// of a thousand nodes. It was 296 bytes with a `Notify` to wake the writer and the
    /// close reason unboxed.
    #[test]
    fn a_session_ends_queue_fits_256_bytes_with_its_counts() {
        let size = std::mem::size_of::<Queue>();
        assert!(size <= 240, "a session end's queue is {size} bytes");
    }
}
