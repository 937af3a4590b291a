//! Property tests of the decoders of message bodies: `SessionFrame<NodeMsg>` (every frame
//! after the handshake) and `HandshakeMessage`. Generators start from valid encodings (a
//! correct length prefix, valid enum tags) and mutate what follows, so most cases reach the
//! decoder of a variant's fields; each property prints and asserts that reach.

use actor_core::codec;
use proptest::prelude::*;

use super::*;
use crate::wire::{
    decode_body, encode_frame,
    props::{
        arb_actor, arb_handshake_message, arb_node_msg, arb_session_frame, mutate, mutations,
        run_reaching, session_envelope_is_valid, CLAIMED, HANDSHAKE_VARIANTS, SESSION_ENVELOPE,
    },
    FrameDecoder, FrameError, DEFAULT_MAX_FRAME_LEN, HANDSHAKE_MAX_FRAME_LEN, LEN_PREFIX,
};

/// Frames `body` with its correct length and decodes it the way the session reader does:
/// through a [`FrameDecoder`] fed in `chunk`-byte pieces, then the body decoder.
fn through_a_session<T: serde::de::DeserializeOwned>(
    body: &[u8],
    chunk: usize,
    max: usize,
) -> Result<T, FrameError> {
    let mut bytes = u32::try_from(body.len())
        .expect("small body")
        .to_be_bytes()
        .to_vec();
    bytes.extend_from_slice(body);
    let mut dec = FrameDecoder::new(max);
    let mut fed = 0;
    for piece in bytes.chunks(chunk.max(1)) {
        dec.extend(piece);
        fed += piece.len();
        // The decoder holds no more than it was given (a claimed length allocates nothing).
        assert!(dec.buffered() <= fed);
        if let Some(got) = dec.decode()? {
            assert_eq!(got, body, "the body comes out as it went in");
            return decode_body(got);
        }
    }
    panic!("a complete frame of {} bytes did not come out", body.len());
}

proptest! {
    /// encode → frame → decode in pieces is the identity, for every `NodeMsg` variant.
    #[test]
    fn session_frames_round_trip(frame in arb_session_frame(), chunk in 1usize..32) {
        let mut bytes = Vec::new();
        encode_frame(&frame, &mut bytes, DEFAULT_MAX_FRAME_LEN).expect("encodable");
        let back: SessionFrame<NodeMsg> =
            through_a_session(&bytes[LEN_PREFIX..], chunk, DEFAULT_MAX_FRAME_LEN).expect("decodes");
        prop_assert_eq!(back, frame);
    }

    /// encode → decode is the identity for every handshake message.
    #[test]
    fn handshake_messages_round_trip_through_frames(m in arb_handshake_message(), chunk in 1usize..16) {
        let body = codec::encode(&m).expect("encodable");
        let back: HandshakeMessage =
            through_a_session(&body, chunk, HANDSHAKE_MAX_FRAME_LEN).expect("decodes");
        prop_assert_eq!(back, m);
    }
}

/// Valid session frames with their bodies mutated after the envelope (frame tag, concern,
/// variant): no panic, and an unmutated body decodes to what was encoded.
#[test]
fn mutated_session_frames_reach_the_body_decoder() {
    run_reaching(
        "session frame (SessionFrame<NodeMsg>)",
        "the body decoder",
        512,
        75,
        (arb_node_msg(), mutations(4), 1usize..64),
        |(msg, muts, chunk)| {
            let frame = SessionFrame::Msg(msg);
            let valid = codec::encode(&frame).expect("encodable");
            let body = mutate(valid.clone(), SESSION_ENVELOPE, &muts);
            let reached = session_envelope_is_valid(&body);
            let got =
                through_a_session::<SessionFrame<NodeMsg>>(&body, chunk, DEFAULT_MAX_FRAME_LEN);
            if body == valid {
                prop_assert_eq!(got, Ok(frame));
            } else if let Ok(back) = got {
                // A mutation that still decodes gives a value that round-trips (bincode takes
                // non-minimal varints, so its encoding need not be the mutated bytes).
                let again = codec::encode(&back).expect("encodable");
                prop_assert_eq!(codec::decode::<SessionFrame<NodeMsg>>(&again), Ok(back));
            }
            Ok(reached)
        },
    );
}

/// The reader's in-place read of a cast or call ([`SendRef`]) agrees with the full decode on
/// every body: actor messages with their fields mutated after the envelope are read in place
/// exactly when they decode as an `ActorMsg::Send`, with the same fields; nothing panics.
#[test]
fn a_send_read_in_place_agrees_with_the_full_decode() {
    run_reaching(
        "SendRef",
        "the in-place read of a send's fields",
        512,
        30,
        (arb_actor(), mutations(3)),
        |(msg, muts)| {
            let valid = codec::encode(&SessionFrame::Msg(NodeMsg::Actor(msg))).expect("encodable");
            let body = mutate(valid, SESSION_ENVELOPE, &muts);
            let reached = body.starts_with(&SEND_PREFIX);
            let fast = SendRef::from_body(&body);
            match codec::decode::<SessionFrame<NodeMsg>>(&body) {
                Ok(SessionFrame::Msg(NodeMsg::Actor(ActorMsg::Send {
                    target,
                    name,
                    payload,
                    call,
                    trace,
                }))) => {
                    let fast = fast.expect("a send that decodes is read in place");
                    let same_target = match (&target, fast.target) {
                        (Target::Name(a), TargetRef::Name(b)) => **a == *b,
                        (Target::Pid { creation, id }, TargetRef::Pid { creation: c, id: i }) => {
                            (*creation, *id) == (c, i)
                        }
                        _ => false,
                    };
                    prop_assert!(same_target, "{target:?} vs {:?}", fast.target);
                    prop_assert_eq!(
                        (&*name, &payload[..], call, trace),
                        (fast.name, fast.payload, fast.call, fast.trace)
                    );
                }
                _ => prop_assert_eq!(fast, None),
            }
            Ok(reached)
        },
    );
}

/// Handshake messages (what an unauthenticated peer sends first) with a valid tag and
/// mutated fields.
#[test]
fn mutated_handshake_messages_reach_the_body_decoder() {
    run_reaching(
        "handshake message",
        "the body decoder",
        512,
        75,
        (arb_handshake_message(), mutations(4), 1usize..16),
        |(m, muts, chunk)| {
            let valid = codec::encode(&m).expect("encodable");
            let body = mutate(valid.clone(), 1, &muts);
            let reached = body.len() > 1 && body[0] < HANDSHAKE_VARIANTS;
            let got = through_a_session::<HandshakeMessage>(&body, chunk, HANDSHAKE_MAX_FRAME_LEN);
            if body == valid {
                prop_assert_eq!(got, Ok(m));
            } else if let Ok(back) = got {
                let again = codec::encode(&back).expect("encodable");
                prop_assert_eq!(codec::decode::<HandshakeMessage>(&again), Ok(back));
            }
            Ok(reached)
        },
    );
}

/// The last field of these messages is a length-prefixed byte string or text; the property
/// replaces its length with a claim of 60 MiB (under the codec's 64 MiB limit), `u32::MAX` or
/// `u64::MAX` in a frame that holds a few bytes: the decoder must refuse the claim itself,
/// before allocating it. (A text claiming 60 MiB was allocated before the fix in
/// `codec::decode`, and failed only then.)
#[test]
fn a_claimed_length_larger_than_the_frame_is_refused() {
    let bytes = proptest::collection::vec(any::<u8>(), 0..200);
    let with_tail = (any::<u64>(), bytes).prop_flat_map(|(n, tail)| {
        let text = String::from_utf8_lossy(&tail).into_owned();
        prop_oneof![
            Just(NodeMsg::Actor(ActorMsg::Reply {
                call: n,
                result: Ok(tail.clone())
            })),
            Just(NodeMsg::Task(TaskMsg::Result {
                req: n,
                result: Ok(tail.clone())
            })),
            Just(NodeMsg::Task(TaskMsg::Output { text })),
            Just(NodeMsg::Task(TaskMsg::SpawnPlain {
                req: n,
                module: "M".into(),
                function: "f".into(),
                args: tail.clone(),
                trace: None,
            })),
        ]
    });
    run_reaching(
        "session frame with a claimed 60 MiB field",
        "the field's length check",
        256,
        100,
        (with_tail, 0u8..3),
        |(msg, kind)| {
            let tail_len = match &msg {
                NodeMsg::Actor(ActorMsg::Reply { result: Ok(b), .. })
                | NodeMsg::Task(TaskMsg::Result { result: Ok(b), .. })
                | NodeMsg::Task(TaskMsg::SpawnPlain { args: b, .. }) => b.len(),
                NodeMsg::Task(TaskMsg::Output { text }) => text.len(),
                _ => unreachable!(),
            };
            // A plain spawn's args are followed by its `trace: None` (one byte).
            let after = usize::from(matches!(msg, NodeMsg::Task(TaskMsg::SpawnPlain { .. })));
            let mut body = codec::encode(&SessionFrame::Msg(msg)).expect("encodable");
            let varint = if tail_len < 251 { 1 } else { 3 };
            let at = body.len() - after - tail_len - varint;
            let claim: Vec<u8> = match kind {
                0 => [252].into_iter().chain(CLAIMED.to_le_bytes()).collect(),
                1 => [252].into_iter().chain(u32::MAX.to_le_bytes()).collect(),
                _ => [253].into_iter().chain(u64::MAX.to_le_bytes()).collect(),
            };
            body.splice(at..at + varint, claim);
            let reached = session_envelope_is_valid(&body);
            let got = through_a_session::<SessionFrame<NodeMsg>>(&body, 7, DEFAULT_MAX_FRAME_LEN);
            // Refused at the claim (bincode's limit, which `codec::decode` leaves at 16 bytes
            // per input byte), before anything is allocated for it; "UnexpectedEnd" would
            // mean the claim was allocated and the input only then found short.
            let refused_at_claim = matches!(
                &got,
                Err(FrameError::Body { source: codec::CodecError::Decode { reason, .. } })
                    if reason.contains("LimitExceeded")
            );
            prop_assert!(refused_at_claim, "not refused at the claim: {:?}", got);
            Ok(reached)
        },
    );
}
