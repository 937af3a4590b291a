//! A live session: reader task, coalescing writer task, ticks.

use std::{
    fmt,
    marker::PhantomData,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use serde::{de::DeserializeOwned, Serialize};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    sync::{mpsc, oneshot, Notify},
    time::Instant,
};
use tracing::Instrument;

#[cfg(feature = "testing")]
use super::Faults;
use super::{Connected, ReadHalf, WriteHalf};
use crate::{
    proto::{Established, TickAction, Ticker, DEFAULT_TICK_INTENSITY, DEFAULT_TICK_TIME},
    wire::{
        decode_body, encode_frame, message::SessionFrame, FrameDecoder, FrameError,
        DEFAULT_MAX_FRAME_LEN, LEN_PREFIX,
    },
};
#[cfg(feature = "testing")]
use actor_core::NodeName;

/// The reader's buffer: one read takes up to this many bytes, however many frames they hold.
const READ_BUF: usize = 64 << 10;

/// The reader's buffer starts this small and doubles while reads fill it, up to [`READ_BUF`];
/// a read that uses less than a quarter of a grown buffer shrinks it back, so an idle
/// session holds little (see [`next_read_len`]). The frame decoder and the writer's batch
/// are released the same way after a burst.
const READ_BUF_MIN: usize = 2 << 10;

/// The reader's buffer size after a read of `n` bytes into a buffer of `len`.
fn next_read_len(len: usize, n: usize) -> usize {
    if n == len {
        (len * 2).min(READ_BUF)
    } else if n < len / 4 {
        READ_BUF_MIN
    } else {
        len
    }
}

/// How many received messages may wait in [`Session::incoming`]: past it the reader stops
/// reading the socket until the node takes one, so a peer sending faster than the node
/// handles its messages is slowed by TCP (its own queue for this node fills) rather than
/// costing this node memory.
pub const INCOMING_CAPACITY: usize = 1024;

/// The capacity a frame's buffer starts with.
const SMALL_FRAME: usize = 128;

/// The writer stops adding queued frames to one write past this many bytes.
const COALESCE_LIMIT: usize = 1 << 20;

/// A message whose encoding is longer than this goes out as fragments of this many bytes
/// ([`SessionFrame::Fragment`]), so the receiver's reassembly is bounded and a writer never
/// holds a whole large frame in one write. Frames queued after it wait for it (order).
pub const FRAGMENT_SIZE: usize = 64 << 10;

/// The first byte of an encoded [`SessionFrame::Fragment`] (its variant's index).
#[cfg(feature = "testing")]
const FRAGMENT_TAG: u8 = 2;

/// What the senders queue for the writer: a whole frame, or a large message's encoded frame
/// (length prefix included) to be sent as fragments.
enum Out {
    Small(Vec<u8>),
    Large(Vec<u8>),
}

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
    /// An idle session ticks every `tick_time / tick_intensity` (default 4).
    pub tick_intensity: u32,
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

/// The bookkeeping of a session's write queue: bytes and frames queued, not yet written.
struct Queue {
    bytes: AtomicUsize,
    frames: AtomicUsize,
    limit: usize,
    /// Woken when the queue drops under its limit, and when the session closes.
    room: Notify,
    stats: SendStats,
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

impl Queue {
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
}

/// Frames `msg` and queues it: refused when the queue is full for frames of `room`.
fn queue_msg<T: Serialize>(
    frames: &mpsc::UnboundedSender<Out>,
    queue: &Queue,
    max_frame_len: usize,
    msg: &T,
    room: Room,
) -> Result<(), SendError> {
    if frames.is_closed() {
        return Err(SendError::Closed);
    }
    if !queue.has_room_for(room) {
        // Refused before encoding: a flat-out sender to a full peer costs no encoding.
        queue.stats.0.busy.fetch_add(1, Ordering::Relaxed);
        let limit = queue.bound(room).unwrap_or(usize::MAX);
        return Err(SendError::Full { limit });
    }
    // Room for a small message, so that encoding it does not grow the buffer step by step.
    let mut frame = Vec::with_capacity(SMALL_FRAME);
    encode_frame(&SessionFrame::Msg(msg), &mut frame, max_frame_len).map_err(SendError::Frame)?;
    let len = frame.len();
    queue.reserve(len, room)?;
    let out = if len - LEN_PREFIX > FRAGMENT_SIZE {
        Out::Large(frame)
    } else {
        Out::Small(frame)
    };
    frames.send(out).map_err(|_| {
        queue.release(1, len);
        SendError::Closed
    })
}

/// A started session: the handle to send with, the incoming messages, and the close reason.
pub struct Session<T> {
    /// Sends messages to the peer and closes the session; clone it freely.
    pub handle: SessionHandle<T>,
    /// Messages from the peer, in the order sent (those an [`Inline`] handler did not take).
    /// Ends when the session closes. Bounded: [`INCOMING_CAPACITY`].
    pub incoming: mpsc::Receiver<T>,
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

/// Sends messages on a session; cheap to clone. The session closes when the last handle is
/// dropped.
pub struct SessionHandle<T> {
    established: Arc<Established>,
    frames: mpsc::UnboundedSender<Out>,
    queue: Arc<Queue>,
    close: mpsc::UnboundedSender<CloseReason>,
    max_frame_len: usize,
    _msg: PhantomData<fn(&T)>,
}

impl<T> Clone for SessionHandle<T> {
    fn clone(&self) -> Self {
        Self {
            established: self.established.clone(),
            frames: self.frames.clone(),
            queue: self.queue.clone(),
            close: self.close.clone(),
            max_frame_len: self.max_frame_len,
            _msg: PhantomData,
        }
    }
}

impl<T> fmt::Debug for SessionHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionHandle")
            .field("peer", &self.established.peer)
            .field("closed", &self.frames.is_closed())
            .finish_non_exhaustive()
    }
}

impl<T: Serialize> SessionHandle<T> {
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
            &self.frames,
            &self.queue,
            self.max_frame_len,
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
            &self.frames,
            &self.queue,
            self.max_frame_len,
            msg,
            Room::Forced,
        )
    }
}

impl<T> SessionHandle<T> {
    /// Who the peer is and what the session speaks.
    pub fn established(&self) -> &Established {
        &self.established
    }

    /// Closes the session with [`CloseReason::Disconnect`]. Queued messages may be dropped.
    pub fn close(&self) {
        let _ = self.close.send(CloseReason::Disconnect);
    }

    /// Whether the session has closed.
    pub fn is_closed(&self) -> bool {
        self.frames.is_closed()
    }

    /// The largest frame this session sends (`max_frame_len`).
    pub fn max_frame_len(&self) -> usize {
        self.max_frame_len
    }

    /// The bound on the bytes queued for the peer (`send_queue_limit`).
    pub fn send_queue_limit(&self) -> usize {
        self.queue.limit
    }

    /// Whether the queue would take a message now.
    pub fn has_room(&self) -> bool {
        self.queue.has_room()
    }

    /// How many bytes of frames are queued for the peer and not yet written.
    pub fn queued_bytes(&self) -> usize {
        self.queue.bytes.load(Ordering::Acquire)
    }

    /// Resolves once the queue has room for a message ([`SessionHandle::send`] would take
    /// one), or the session has closed. Another sender may take the room first.
    pub async fn wait_for_room(&self) {
        loop {
            let room = self.queue.room.notified();
            let mut room = std::pin::pin!(room);
            room.as_mut().enable();
            if self.queue.has_room() || self.frames.is_closed() {
                return;
            }
            room.await;
        }
    }
}

/// Sends on a session without keeping it open: what an [`Inline`] handler answers with.
pub struct Responder<T> {
    frames: mpsc::WeakUnboundedSender<Out>,
    queue: Arc<Queue>,
    max_frame_len: usize,
    _msg: PhantomData<fn(&T)>,
}

impl<T> Clone for Responder<T> {
    fn clone(&self) -> Self {
        Self {
            frames: self.frames.clone(),
            queue: self.queue.clone(),
            max_frame_len: self.max_frame_len,
            _msg: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Responder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Responder").finish_non_exhaustive()
    }
}

impl<T: Serialize> Responder<T> {
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
        let frames = self.frames.upgrade().ok_or(SendError::Closed)?;
        queue_msg(&frames, &self.queue, self.max_frame_len, msg, Room::Answer)
    }
}

impl<T> SessionHandle<T> {
    /// A sender that does not keep the session open.
    pub fn responder(&self) -> Responder<T> {
        Responder {
            frames: self.frames.downgrade(),
            queue: self.queue.clone(),
            max_frame_len: self.max_frame_len,
            _msg: PhantomData,
        }
    }
}

/// Handles incoming messages in the session's reader task, before they reach
/// [`Session::incoming`]: return `None` for a message it handled, `Some(msg)` to pass it on.
/// It runs on the reader's task, so it must not block; it saves the hop through the
/// channel for messages that need no await (nodus uses it for actor messages).
pub type Inline<T> = Box<dyn FnMut(T, &Responder<T>) -> Option<T> + Send>;

impl<T> Session<T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
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
        let Connected {
            established,
            stream,
            mut decoder,
        } = conn;
        let max_frame_len = cfg.max_frame_len;
        decoder.set_max_frame_len(max_frame_len);
        let established = Arc::new(established);
        let span = tracing::debug_span!(
            "session",
            peer = %established.peer,
            dir = ?established.role,
        );
        let (read, write) = stream.split();
        // Unbounded as a channel, bounded in bytes by `queue` (a frame-count bound would let
        // 64 MiB frames pile up to gigabytes).
        let (frames_tx, frames_rx) = mpsc::unbounded_channel();
        let queue = Arc::new(Queue {
            bytes: AtomicUsize::new(0),
            frames: AtomicUsize::new(0),
            limit: cfg.send_queue_limit,
            room: Notify::new(),
            stats: cfg.stats.clone(),
        });
        let (close_tx, mut close_rx) = mpsc::unbounded_channel();
        let (incoming_tx, incoming) = mpsc::channel(INCOMING_CAPACITY);
        let (closed_tx, closed) = oneshot::channel();
        let base = Instant::now();
        let last_received = Arc::new(AtomicU64::new(0));
        #[cfg(feature = "testing")]
        let peer = established.peer.clone();

        let responder = Responder {
            frames: frames_tx.downgrade(),
            queue: queue.clone(),
            max_frame_len,
            _msg: PhantomData,
        };
        let reader = tokio::spawn(
            read_loop::<T>(
                read,
                decoder,
                (incoming_tx, inline, responder, max_frame_len),
                close_tx.clone(),
                base,
                last_received.clone(),
                #[cfg(feature = "testing")]
                (cfg.faults.clone(), peer.clone()),
            )
            .instrument(span.clone()),
        );
        let writer = tokio::spawn(
            write_loop::<T>(
                write,
                (frames_rx, queue.clone()),
                close_tx.clone(),
                cfg,
                base,
                last_received,
                #[cfg(feature = "testing")]
                peer,
            )
            .instrument(span.clone()),
        );
        let closing = queue.clone();
        tokio::spawn(
            async move {
                tracing::debug!("session up");
                let reason = close_rx.recv().await.unwrap_or(CloseReason::Disconnect);
                reader.abort();
                writer.abort();
                // Wait for the writer to be gone, so its queue is dropped and nothing more
                // is written: what is still counted as queued is lost.
                let _ = writer.await;
                let lost = closing.frames.load(Ordering::Acquire);
                let lost_bytes = closing.bytes.load(Ordering::Acquire);
                if lost > 0 {
                    closing.stats.record_lost(lost as u64, lost_bytes as u64);
                    tracing::info!(
                        lost_messages = lost,
                        lost_bytes,
                        "session closed ({reason}) with {lost} queued messages unsent: they are lost"
                    );
                } else {
                    tracing::debug!("session closed: {reason}");
                }
                closing.room.notify_waiters();
                let _ = closed_tx.send(reason);
            }
            .instrument(span),
        );
        Self {
            handle: SessionHandle {
                established,
                frames: frames_tx,
                queue,
                close: close_tx,
                max_frame_len,
                _msg: PhantomData,
            },
            incoming,
            closed,
        }
    }
}

/// Records "bytes arrived now" for the writer's ticker, as nanoseconds since `base`.
fn mark_received(base: Instant, last_received: &AtomicU64) {
    let nanos = u64::try_from(base.elapsed().as_nanos()).unwrap_or(u64::MAX);
    last_received.fetch_max(nanos, Ordering::Relaxed);
}

async fn read_loop<T: DeserializeOwned>(
    mut read: ReadHalf,
    mut decoder: FrameDecoder,
    (incoming, mut inline, responder, max_frame_len): (
        mpsc::Sender<T>,
        Option<Inline<T>>,
        Responder<T>,
        usize,
    ),
    close: mpsc::UnboundedSender<CloseReason>,
    base: Instant,
    last_received: Arc<AtomicU64>,
    #[cfg(feature = "testing")] (faults, peer): (Faults, NodeName),
) {
    let mut buf = vec![0u8; READ_BUF_MIN];
    // The most bytes the decoder held since it was last replaced: past `READ_BUF_MIN`, an
    // empty decoder is replaced by a new one, releasing its grown buffer.
    let mut decoder_peak = 0;
    // The large message being reassembled from fragments (bounded by `max_frame_len`).
    let mut assembling: Vec<u8> = Vec::new();
    // Whether the frames of the last read are dropped (an injected fault blocks the peer).
    #[cfg(feature = "testing")]
    let mut dropping = false;
    // Whether the fragments up to the next last one are dropped: an earlier fragment of
    // their message was (an injected fault).
    #[cfg(feature = "testing")]
    let mut skipping = false;
    let reason = 'session: loop {
        loop {
            match decoder.decode() {
                #[cfg(feature = "testing")]
                Ok(Some(body)) if dropping => {
                    tracing::trace!("frame dropped (injected fault)");
                    // A fragment's body starts with the variant's index (2) and `last`.
                    if body.first() == Some(&FRAGMENT_TAG) {
                        assembling.clear();
                        skipping = body.get(1) != Some(&1);
                    }
                }
                #[cfg(feature = "testing")]
                Ok(Some(body)) if skipping && body.first() == Some(&FRAGMENT_TAG) => {
                    skipping = body.get(1) != Some(&1);
                }
                Ok(Some(body)) => match decode_body::<SessionFrame<T>>(body) {
                    Ok(SessionFrame::Tick) => tracing::trace!("tick received"),
                    Ok(SessionFrame::Msg(msg)) => {
                        deliver(msg, &mut inline, &responder, &incoming).await;
                    }
                    Ok(SessionFrame::Fragment { last, bytes }) => {
                        let len = assembling.len().saturating_add(bytes.len());
                        if len > max_frame_len {
                            break 'session CloseReason::MessageTooLarge {
                                len,
                                max: max_frame_len,
                            };
                        }
                        if assembling.is_empty() {
                            assembling = bytes;
                        } else {
                            assembling.extend_from_slice(&bytes);
                        }
                        if last {
                            let whole = std::mem::take(&mut assembling);
                            match decode_body::<SessionFrame<T>>(&whole) {
                                Ok(SessionFrame::Msg(msg)) => {
                                    drop(whole);
                                    deliver(msg, &mut inline, &responder, &incoming).await;
                                }
                                Ok(_) => {
                                    break 'session CloseReason::Garbage {
                                        reason: "a fragmented message held a tick or a fragment, not a message".into(),
                                    };
                                }
                                Err(e) => break 'session garbage(&e),
                            }
                        }
                    }
                    Err(e) => break 'session garbage(&e),
                },
                Ok(None) => {
                    if decoder_peak > READ_BUF_MIN && decoder.buffered() == 0 {
                        decoder = FrameDecoder::new(max_frame_len);
                        decoder_peak = 0;
                    }
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
            }
        }
        #[cfg(feature = "testing")]
        if faults.is_active() {
            // A frozen node reads nothing, so its peers' bytes pile up in the socket.
            faults.pass(&peer).await;
        }
        match read.read(&mut buf).await {
            Ok(0) => {
                #[cfg(feature = "testing")]
                if faults.is_active() {
                    // A partition or a frozen node would not let the peer's close through
                    // either: until it is lifted, only the tick timeout ends the session.
                    faults.unblocked(&peer).await;
                }
                break CloseReason::ConnectionClosed;
            }
            Ok(n) => {
                #[cfg(feature = "testing")]
                {
                    dropping = faults.is_active() && !faults.pass(&peer).await;
                    if !dropping {
                        mark_received(base, &last_received);
                    }
                }
                #[cfg(not(feature = "testing"))]
                mark_received(base, &last_received);
                decoder.extend(&buf[..n]);
                decoder_peak = decoder_peak.max(decoder.buffered());
                let len = next_read_len(buf.len(), n);
                if len != buf.len() {
                    buf.resize(len, 0);
                    buf.shrink_to_fit();
                }
            }
            Err(e) => break CloseReason::io(&e),
        }
    };
    match &reason {
        CloseReason::ConnectionClosed => tracing::debug!("{reason}"),
        _ => tracing::warn!("closing the session: {reason}"),
    }
    let _ = close.send(reason);
}

/// An undecodable frame from the peer, with the decoder's cause.
fn garbage(e: &FrameError) -> CloseReason {
    let reason = match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    };
    CloseReason::Garbage { reason }
}

/// Hands a received message to the inline handler, then (if it passes it on) to the node.
async fn deliver<T>(
    msg: T,
    inline: &mut Option<Inline<T>>,
    responder: &Responder<T>,
    incoming: &mpsc::Sender<T>,
) {
    let msg = match inline.as_mut() {
        Some(handle) => handle(msg, responder),
        None => Some(msg),
    };
    if let Some(msg) = msg {
        // Waits while the node is behind (the socket is not read meanwhile). Nobody
        // listening any more is not the peer's fault: drop it.
        let _ = incoming.send(msg).await;
    }
}

/// A frame waiting in the writer behind a large message.
enum Pending {
    /// A whole frame.
    Small(Vec<u8>),
    /// A large message, sent as fragments.
    Large(Sending),
}

/// A large message being sent as fragments: its encoded frame, and how far it is sent.
struct Sending {
    frame: Vec<u8>,
    /// The next byte of `frame` to send (the length prefix is not sent).
    at: usize,
}

async fn write_loop<T: Serialize>(
    mut write: WriteHalf,
    (mut frames, queue): (mpsc::UnboundedReceiver<Out>, Arc<Queue>),
    close: mpsc::UnboundedSender<CloseReason>,
    cfg: SessionConfig,
    base: Instant,
    last_received: Arc<AtomicU64>,
    #[cfg(feature = "testing")] peer: NodeName,
) {
    #[cfg(feature = "testing")]
    let faults = cfg.faults.clone();
    let mut ticker = Ticker::new(base, cfg.tick_time, cfg.tick_intensity);
    let mut tick = Vec::new();
    if let Err(e) = encode_frame(&SessionFrame::<T>::Tick, &mut tick, usize::MAX) {
        // Unreachable: a unit variant always encodes. Close rather than panic.
        let _ = close.send(CloseReason::Garbage {
            reason: e.to_string(),
        });
        return;
    }
    let mut batch: Vec<u8> = Vec::new();
    // Frames waiting behind a large message being sent as fragments, in the order they were
    // queued: nothing overtakes a large message (order per session, so per sender and
    // receiver as the BEAM guarantees); only the front one is sent from.
    let mut pending: std::collections::VecDeque<Pending> = std::collections::VecDeque::new();
    let reason = loop {
        let mut first = None;
        if pending.is_empty() {
            // Nothing in progress: wait for a frame or for the ticker.
            let deadline = ticker.poll_timeout();
            tokio::select! {
                biased;
                frame = frames.recv() => {
                    let Some(frame) = frame else {
                        break CloseReason::Disconnect;
                    };
                    first = Some(frame);
                }
                () = tokio::time::sleep_until(deadline) => {
                    // A frozen node's ticker stands still; a blocked peer gets no ticks.
                    #[cfg(feature = "testing")]
                    let open = !faults.is_active() || faults.pass(&peer).await;
                    sync_received(&mut ticker, base, &last_received);
                    match ticker.handle_timeout(Instant::now()) {
                        #[cfg(feature = "testing")]
                        Some(TickAction::SendTick) if !open => tracing::trace!("tick dropped (injected fault)"),
                        Some(TickAction::SendTick) => {
                            tracing::trace!("tick sent");
                            if let Err(reason) = watched_write(&mut write, &tick, &mut ticker, base, &last_received).await {
                                break reason;
                            }
                        }
                        Some(TickAction::PeerDown) => break CloseReason::TickTimeout,
                        None => {}
                    }
                    continue;
                }
            }
        }
        // Small frames first: everything queued meanwhile, coalesced into one write; large
        // messages are set aside.
        batch.clear();
        let mut taken = 0;
        let mut released = 0;
        let mut next = first;
        loop {
            match next.take() {
                Some(Out::Small(frame)) if pending.is_empty() => {
                    batch.extend_from_slice(&frame);
                    taken += 1;
                    released += frame.len();
                }
                Some(Out::Small(frame)) => pending.push_back(Pending::Small(frame)),
                Some(Out::Large(frame)) => pending.push_back(Pending::Large(Sending {
                    frame,
                    at: LEN_PREFIX,
                })),
                None => {}
            }
            if batch.len() >= COALESCE_LIMIT {
                break;
            }
            match frames.try_recv() {
                Ok(frame) => next = Some(frame),
                Err(_) => break,
            }
        }
        // Then the frames that waited behind a large message that is now sent, and one
        // fragment of the next large message.
        while let Some(Pending::Small(_)) = pending.front() {
            if let Some(Pending::Small(frame)) = pending.pop_front() {
                batch.extend_from_slice(&frame);
                taken += 1;
                released += frame.len();
            }
        }
        if let Some(Pending::Large(sending)) = pending.front_mut() {
            let end = sending
                .at
                .saturating_add(FRAGMENT_SIZE)
                .min(sending.frame.len());
            let last = end == sending.frame.len();
            let fragment = SessionFrame::<T>::Fragment {
                last,
                bytes: sending.frame[sending.at..end].to_vec(),
            };
            if let Err(e) = encode_frame(&fragment, &mut batch, usize::MAX) {
                // Unreachable: bytes always encode. Close rather than panic.
                break CloseReason::Garbage {
                    reason: e.to_string(),
                };
            }
            released += end - sending.at;
            sending.at = end;
            if last {
                // The length prefix was counted in the queue too.
                released += LEN_PREFIX;
                taken += 1;
                pending.pop_front();
            }
        }
        // The frames leave the queue's count once written (or dropped), so a peer that stops
        // reading fills the queue up to its bound.
        #[cfg(feature = "testing")]
        if faults.is_active() && !faults.pass(&peer).await {
            tracing::trace!(frame.len = batch.len(), "frames dropped (injected fault)");
            // A large message that lost a fragment is dropped whole, rather than sent with a
            // hole in it.
            if let Some(Pending::Large(sending)) = pending.front() {
                released += sending.frame.len() - sending.at + LEN_PREFIX;
                taken += 1;
                pending.pop_front();
            }
            queue.release(taken, released);
            continue;
        }
        tracing::trace!(frame.len = batch.len(), "write");
        if let Err(reason) =
            watched_write(&mut write, &batch, &mut ticker, base, &last_received).await
        {
            break reason;
        }
        queue.release(taken, released);
        ticker.handle_sent(Instant::now());
        if batch.capacity() > COALESCE_LIMIT * 2
            || (batch.capacity() > READ_BUF_MIN && batch.len() < batch.capacity() / 4)
        {
            // A huge small frame passed, or a burst is over: do not keep its buffer.
            batch = Vec::new();
        }
    };
    match &reason {
        CloseReason::Disconnect => tracing::debug!("{reason}"),
        _ => tracing::warn!("closing the session: {reason}"),
    }
    let _ = close.send(reason);
}

fn sync_received(ticker: &mut Ticker, base: Instant, last_received: &AtomicU64) {
    let nanos = last_received.load(Ordering::Relaxed);
    ticker.handle_received(base + Duration::from_nanos(nanos));
}

/// Writes `bytes`, still watching for a tick timeout: a peer that stopped reading blocks the
/// write once the socket buffers are full, and must still be detected.
async fn watched_write(
    write: &mut WriteHalf,
    bytes: &[u8],
    ticker: &mut Ticker,
    base: Instant,
    last_received: &AtomicU64,
) -> Result<(), CloseReason> {
    let mut pending = std::pin::pin!(write.write_all(bytes));
    loop {
        let deadline = ticker.poll_timeout();
        tokio::select! {
            done = &mut pending => return done.map_err(|e| CloseReason::io(&e)),
            () = tokio::time::sleep_until(deadline) => {
                sync_received(ticker, base, last_received);
                // A tick due now is not needed: this write is a sign of life once it lands.
                if ticker.handle_timeout(Instant::now()) == Some(TickAction::PeerDown) {
                    return Err(CloseReason::TickTimeout);
                }
            }
        }
    }
}

#[cfg(test)]
mod buffer_tests {
    use super::*;

    #[test]
    fn the_read_buffer_grows_while_reads_fill_it_and_shrinks_when_they_do_not() {
        assert_eq!(next_read_len(READ_BUF_MIN, READ_BUF_MIN), READ_BUF_MIN * 2);
        assert_eq!(
            next_read_len(READ_BUF, READ_BUF),
            READ_BUF,
            "never past READ_BUF"
        );
        assert_eq!(
            next_read_len(READ_BUF, READ_BUF / 2),
            READ_BUF,
            "still busy"
        );
        assert_eq!(next_read_len(READ_BUF, 10), READ_BUF_MIN, "a burst is over");
        assert_eq!(next_read_len(READ_BUF_MIN, 10), READ_BUF_MIN);
    }
}
