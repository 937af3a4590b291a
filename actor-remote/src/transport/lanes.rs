//! The order a session keeps, sans IO: which queued frame the writer may write now
//! ([`Schedule`]), and which received message the reader may deliver while a large message
//! is still being decoded ([`Reorder`]). The rule is [`Lane`]'s: frames of one lane keep
//! their order, a [`Lane::Session`] frame keeps its order with every frame, and small
//! frames of other lanes overtake a large message.

use std::collections::{HashMap, VecDeque};

use crate::wire::{encode_frame, message::SessionFrame, FrameError, Lane, LEN_PREFIX};

/// Counts of the frames of each lane that are not yet out (written, or delivered): a new
/// frame must wait when one it is ordered with is counted.
#[derive(Debug, Default)]
struct Blocked {
    keys: HashMap<u64, usize>,
    barriers: usize,
    total: usize,
}

impl Blocked {
    fn blocks(&self, lane: Lane) -> bool {
        if self.total == 0 {
            // The common case, nothing large in flight: no lookup.
            return false;
        }
        match lane {
            Lane::Session => self.total > 0,
            Lane::Key(k) => self.barriers > 0 || self.keys.get(&k).is_some_and(|n| *n > 0),
        }
    }

    fn add(&mut self, lane: Lane) {
        self.total += 1;
        match lane {
            Lane::Session => self.barriers += 1,
            Lane::Key(k) => *self.keys.entry(k).or_default() += 1,
        }
    }

    fn clear(&mut self) {
        self.keys.clear();
        self.barriers = 0;
        self.total = 0;
    }
}

/// A frame queued for the writer: a whole frame (length prefix included) and its lane; a
/// large one is sent as fragments.
#[derive(Debug)]
pub(super) struct Queued {
    pub(super) lane: Lane,
    pub(super) frame: Vec<u8>,
    pub(super) large: bool,
}

/// What one write carries: frame bytes, and how many queued frames and bytes it completes
/// (they leave the queue's count once written).
#[derive(Debug, Default)]
pub(super) struct Batch {
    pub(super) bytes: Vec<u8>,
    pub(super) frames: usize,
    pub(super) released: usize,
}

impl Batch {
    fn whole(&mut self, frame: &[u8]) {
        self.bytes.extend_from_slice(frame);
        self.frames += 1;
        self.released += frame.len();
    }

    /// Empties it for the next write, keeping its buffer unless a huge frame grew it.
    pub(super) fn clear(&mut self, keep: usize) {
        self.bytes.clear();
        if self.bytes.capacity() > keep {
            self.bytes = Vec::new();
        }
        self.frames = 0;
        self.released = 0;
    }
}

/// The large message being sent as fragments.
#[derive(Debug)]
struct Sending {
    lane: Lane,
    frame: Vec<u8>,
    /// The next byte of `frame` to send (the length prefix is not sent).
    at: usize,
}

/// The writer's order keeping: frames go out in the order queued, except that one large
/// message at a time is sent as fragments of `fragment_size` bytes, between which small
/// frames of other lanes go out; frames ordered with a large message queued before them
/// (same lane, or a barrier) wait until its last fragment is written. Everything waiting is
/// counted in the session's queue, so it is bounded by `send_queue_limit`.
#[derive(Debug)]
pub(super) struct Schedule {
    fragment_size: usize,
    sending: Option<Sending>,
    /// Frames that must wait for a frame queued before them, in the order queued. Not empty
    /// only while a large message is being sent.
    waiting: VecDeque<Queued>,
    /// The lanes of `sending` and `waiting`.
    blocked: Blocked,
}

impl Schedule {
    pub(super) fn new(fragment_size: usize) -> Self {
        Self {
            fragment_size: fragment_size.max(1),
            sending: None,
            waiting: VecDeque::new(),
            blocked: Blocked::default(),
        }
    }

    /// Whether nothing is being sent as fragments (nor waits): the writer may sleep until
    /// a frame is queued.
    pub(super) fn is_idle(&self) -> bool {
        self.sending.is_none()
    }

    /// How many frames wait behind a large message.
    #[cfg(test)]
    pub(super) fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Takes a newly queued frame: a small frame nothing before it holds up joins `batch`;
    /// a large one starts being sent if none is; anything else waits.
    pub(super) fn push(&mut self, queued: Queued, batch: &mut Batch) {
        if self.blocked.blocks(queued.lane) || (queued.large && self.sending.is_some()) {
            self.blocked.add(queued.lane);
            self.waiting.push_back(queued);
        } else if queued.large {
            self.blocked.add(queued.lane);
            self.sending = Some(Sending {
                lane: queued.lane,
                frame: queued.frame,
                at: LEN_PREFIX,
            });
        } else {
            batch.whole(&queued.frame);
        }
    }

    /// Takes a newly queued small frame (not over the fragment size), given as bytes: it
    /// joins `batch` unless a frame before it holds it up (it is then copied to wait).
    pub(super) fn push_small(&mut self, lane: Lane, frame: &[u8], batch: &mut Batch) {
        if self.blocked.blocks(lane) {
            self.blocked.add(lane);
            self.waiting.push_back(Queued {
                lane,
                frame: frame.to_vec(),
                large: false,
            });
        } else {
            batch.whole(frame);
        }
    }

    /// Appends the next fragment of the large message being sent, if any, to `batch`; after
    /// its last one, the frames that waited for it follow (and the next large message
    /// starts).
    ///
    /// # Errors
    /// A fragment that cannot be encoded (unreachable: bytes always encode).
    pub(super) fn fragment(&mut self, batch: &mut Batch) -> Result<(), FrameError> {
        let Some(sending) = self.sending.as_mut() else {
            return Ok(());
        };
        let end = sending
            .at
            .saturating_add(self.fragment_size)
            .min(sending.frame.len());
        let last = end == sending.frame.len();
        let fragment = SessionFrame::<()>::Fragment {
            last,
            lane: sending.lane,
            bytes: sending.frame[sending.at..end].to_vec(),
        };
        encode_frame(&fragment, &mut batch.bytes, usize::MAX)?;
        batch.released += end - sending.at;
        sending.at = end;
        if last {
            // The length prefix was counted in the queue too.
            batch.released += LEN_PREFIX;
            batch.frames += 1;
            self.sending = None;
            self.release(batch);
        }
        Ok(())
    }

    /// Drops the large message being sent (a fragment of it was lost to an injected fault:
    /// better dropped whole than sent with a hole), counting it in `batch`, and lets the
    /// frames that waited for it go.
    #[cfg(feature = "testing")]
    pub(super) fn drop_sending(&mut self, batch: &mut Batch) {
        if let Some(sending) = self.sending.take() {
            batch.released += sending.frame.len() - sending.at + LEN_PREFIX;
            batch.frames += 1;
            self.release(batch);
        }
    }

    /// Nothing is being sent: the waiting frames are taken again, in order.
    fn release(&mut self, batch: &mut Batch) {
        self.blocked.clear();
        for queued in std::mem::take(&mut self.waiting) {
            self.push(queued, batch);
        }
    }
}

/// The reader's order keeping while a large message is decoded off the reader's task:
/// messages received meanwhile that are ordered with it (same lane, or a barrier) are held
/// and delivered after it, in order; others are delivered at once. At most `max_held_bytes`
/// of held messages (their encoded size): past it the reader waits for the decode instead of
/// reading on.
#[derive(Debug)]
pub(super) struct Reorder<T> {
    decoding: Option<Lane>,
    held: VecDeque<T>,
    held_bytes: usize,
    max_held_bytes: usize,
    blocked: Blocked,
}

impl<T> Reorder<T> {
    pub(super) fn new(max_held_bytes: usize) -> Self {
        Self {
            decoding: None,
            held: VecDeque::new(),
            held_bytes: 0,
            max_held_bytes,
            blocked: Blocked::default(),
        }
    }

    /// A large message of `lane`, received before anything still to come, is being decoded.
    /// Only one at a time: [`Reorder::finish`] the previous one first.
    pub(super) fn start(&mut self, lane: Lane) {
        debug_assert!(self.decoding.is_none(), "one decode at a time");
        self.decoding = Some(lane);
        self.blocked.add(lane);
    }

    /// A message of `lane`, `len` bytes encoded, received after the large message being
    /// decoded: `Some` to deliver it now, `None` if it is held until [`Reorder::finish`].
    pub(super) fn admit(&mut self, lane: Lane, msg: T, len: usize) -> Option<T> {
        if self.decoding.is_none() || !self.blocked.blocks(lane) {
            return Some(msg);
        }
        self.blocked.add(lane);
        self.held.push_back(msg);
        self.held_bytes = self.held_bytes.saturating_add(len);
        None
    }

    /// Whether the held messages reached their bound: stop reading until the decode ends.
    /// Whether no large message is being decoded: a received message may be delivered at
    /// once, whatever its lane.
    pub(super) fn is_idle(&self) -> bool {
        self.decoding.is_none()
    }

    pub(super) fn is_full(&self) -> bool {
        self.held_bytes >= self.max_held_bytes
    }

    /// The large message was decoded (and delivered): the held messages, to deliver after
    /// it in this order.
    pub(super) fn finish(&mut self) -> VecDeque<T> {
        self.decoding = None;
        self.blocked.clear();
        self.held_bytes = 0;
        std::mem::take(&mut self.held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{decode_body, FrameDecoder};

    const A: Lane = Lane::Key(1);
    const B: Lane = Lane::Key(2);

    /// A frame whose bytes name it: `n` repeated `len` times, after a length prefix.
    fn frame(n: u8, len: usize) -> Vec<u8> {
        let mut f = u32::try_from(len).unwrap().to_be_bytes().to_vec();
        f.extend(std::iter::repeat_n(n, len));
        f
    }

    fn small(lane: Lane, n: u8) -> Queued {
        Queued {
            lane,
            frame: frame(n, 3),
            large: false,
        }
    }

    fn large(lane: Lane, n: u8, len: usize) -> Queued {
        Queued {
            lane,
            frame: frame(n, len),
            large: true,
        }
    }

    /// What a batch holds, as the receiver sees it: `Whole(n)` for a small frame,
    /// `Part(n, lane, last)` for a fragment of the message made of `n`s.
    #[derive(Debug, PartialEq, Eq)]
    enum Seen {
        Whole(u8),
        Part(u8, Lane, bool),
    }

    fn seen(batch: &Batch) -> Vec<Seen> {
        let mut dec = FrameDecoder::new(usize::MAX);
        dec.extend(&batch.bytes);
        let mut out = Vec::new();
        while let Some(body) = dec.decode().unwrap() {
            if body.len() == 3 {
                out.push(Seen::Whole(body[0]));
            } else {
                match decode_body::<SessionFrame<()>>(body).unwrap() {
                    SessionFrame::Fragment { last, lane, bytes } => {
                        out.push(Seen::Part(bytes[0], lane, last));
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
        out
    }

    fn write(s: &mut Schedule, push: Vec<Queued>) -> (Vec<Seen>, Batch) {
        let mut batch = Batch::default();
        for q in push {
            s.push(q, &mut batch);
        }
        s.fragment(&mut batch).unwrap();
        (seen(&batch), batch)
    }

    #[test]
    fn small_frames_of_other_lanes_go_between_the_fragments_of_a_large_one() {
        let mut s = Schedule::new(10);
        let (got, batch) = write(&mut s, vec![large(A, 9, 25), small(B, 1)]);
        assert_eq!(got, [Seen::Whole(1), Seen::Part(9, A, false)]);
        assert_eq!((batch.frames, batch.released), (1, 3 + LEN_PREFIX + 10));
        let (got, _) = write(&mut s, vec![small(B, 2), small(Lane::Key(3), 3)]);
        assert_eq!(
            got,
            [Seen::Whole(2), Seen::Whole(3), Seen::Part(9, A, false)]
        );
        assert!(!s.is_idle());
        let (got, batch) = write(&mut s, vec![]);
        assert_eq!(got, [Seen::Part(9, A, true)]);
        // The large frame leaves the count whole: its 25 bytes and its length prefix.
        assert_eq!((batch.frames, batch.released), (1, 5 + LEN_PREFIX));
        assert!(s.is_idle());
    }

    #[test]
    fn frames_of_the_large_ones_lane_wait_for_its_last_fragment() {
        let mut s = Schedule::new(10);
        let (got, _) = write(&mut s, vec![large(A, 9, 15), small(A, 1), small(B, 2)]);
        assert_eq!(got, [Seen::Whole(2), Seen::Part(9, A, false)]);
        assert_eq!(s.waiting(), 1);
        // A later frame of the same lane waits behind the waiting one too.
        let (got, batch) = write(&mut s, vec![small(A, 3), small(B, 4)]);
        assert_eq!(
            got,
            [
                Seen::Whole(4),
                Seen::Part(9, A, true),
                Seen::Whole(1),
                Seen::Whole(3)
            ]
        );
        assert_eq!(batch.frames, 4);
        assert_eq!(s.waiting(), 0);
        assert!(s.is_idle());
    }

    #[test]
    fn a_barrier_waits_for_everything_before_it_and_holds_up_everything_after() {
        let mut s = Schedule::new(10);
        let (got, _) = write(
            &mut s,
            vec![large(A, 9, 15), small(Lane::Session, 1), small(B, 2)],
        );
        assert_eq!(got, [Seen::Part(9, A, false)]);
        assert_eq!(s.waiting(), 2);
        let (got, _) = write(&mut s, vec![]);
        assert_eq!(
            got,
            [Seen::Part(9, A, true), Seen::Whole(1), Seen::Whole(2)]
        );
        // A large barrier holds up every lane.
        let (got, _) = write(&mut s, vec![large(Lane::Session, 8, 15), small(B, 3)]);
        assert_eq!(got, [Seen::Part(8, Lane::Session, false)]);
        let (got, _) = write(&mut s, vec![]);
        assert_eq!(got, [Seen::Part(8, Lane::Session, true), Seen::Whole(3)]);
    }

    #[test]
    fn one_large_message_at_a_time_and_each_keeps_its_lane_waiting() {
        let mut s = Schedule::new(10);
        let (got, _) = write(
            &mut s,
            vec![large(A, 9, 15), large(B, 8, 15), small(B, 1), small(A, 2)],
        );
        assert_eq!(got, [Seen::Part(9, A, false)]);
        assert_eq!(s.waiting(), 3);
        // A's last fragment lets its small frame go and B's large message start; B's small
        // frame still waits behind it.
        let (got, _) = write(&mut s, vec![small(Lane::Key(3), 3)]);
        assert_eq!(
            got,
            [Seen::Whole(3), Seen::Part(9, A, true), Seen::Whole(2)]
        );
        assert_eq!(s.waiting(), 1);
        assert!(!s.is_idle());
        let (got, _) = write(&mut s, vec![small(A, 4)]);
        assert_eq!(got, [Seen::Whole(4), Seen::Part(8, B, false)]);
        let (got, _) = write(&mut s, vec![]);
        assert_eq!(got, [Seen::Part(8, B, true), Seen::Whole(1)]);
        assert!(s.is_idle());
    }

    #[test]
    fn without_a_large_message_frames_go_in_the_order_queued() {
        let mut s = Schedule::new(10);
        let (got, batch) = write(
            &mut s,
            vec![
                small(A, 1),
                small(Lane::Session, 2),
                small(A, 3),
                small(B, 4),
            ],
        );
        assert_eq!(
            got,
            [
                Seen::Whole(1),
                Seen::Whole(2),
                Seen::Whole(3),
                Seen::Whole(4)
            ]
        );
        assert_eq!(batch.frames, 4);
        assert!(s.is_idle());
    }

    #[cfg(feature = "testing")]
    #[test]
    fn a_dropped_large_message_lets_its_lane_go() {
        let mut s = Schedule::new(10);
        let (_, _) = write(&mut s, vec![large(A, 9, 25), small(A, 1)]);
        let mut batch = Batch::default();
        s.drop_sending(&mut batch);
        assert_eq!(seen(&batch), [Seen::Whole(1)]);
        // The rest of the large frame (15 bytes and its prefix), and the small frame.
        assert_eq!((batch.frames, batch.released), (2, 15 + LEN_PREFIX + 3 + 4));
        assert!(s.is_idle());
    }

    #[test]
    fn the_reader_holds_what_follows_a_large_message_in_its_lane() {
        let mut r = Reorder::new(100);
        assert_eq!(r.admit(A, 0, 10), Some(0), "nothing is being decoded");
        r.start(A);
        assert_eq!(r.admit(B, 1, 10), Some(1));
        assert_eq!(r.admit(A, 2, 10), None);
        assert_eq!(r.admit(B, 3, 10), Some(3));
        assert_eq!(r.admit(Lane::Session, 4, 10), None);
        // After a held barrier, every lane is held.
        assert_eq!(r.admit(B, 5, 10), None);
        assert!(!r.is_full());
        assert_eq!(Vec::from(r.finish()), [2, 4, 5]);
        assert_eq!(r.admit(A, 6, 10), Some(6));
    }

    #[test]
    fn a_large_barrier_holds_every_lane_and_the_held_bytes_are_bounded() {
        let mut r = Reorder::new(25);
        r.start(Lane::Session);
        assert_eq!(r.admit(B, 1, 10), None);
        assert!(!r.is_full());
        assert_eq!(r.admit(A, 2, 20), None);
        assert!(r.is_full());
        assert_eq!(Vec::from(r.finish()), [1, 2]);
        assert!(!r.is_full());
    }
}
