use super::*;
use crate::wire::{
    message::{NodeMsg, SessionFrame},
    props::{arb_session_frame, mutate, mutations, run_reaching},
};
use proptest::prelude::*;

fn frame_of<T: Serialize>(msg: &T) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(msg, &mut out, DEFAULT_MAX_FRAME_LEN).unwrap();
    out
}

#[test]
fn one_frame_in_pieces() {
    let bytes = frame_of(&("hello".to_string(), 42u32));
    let mut dec = FrameDecoder::new(DEFAULT_MAX_FRAME_LEN);
    for b in &bytes[..bytes.len() - 1] {
        dec.extend(std::slice::from_ref(b));
        assert_eq!(dec.decode().unwrap(), None);
    }
    dec.extend(&bytes[bytes.len() - 1..]);
    let body = dec.decode().unwrap().unwrap().to_vec();
    let back: (String, u32) = decode_body(&body).unwrap();
    assert_eq!(back, ("hello".to_string(), 42));
    assert_eq!(dec.decode().unwrap(), None);
    assert_eq!(dec.buffered(), 0);
}

#[test]
fn many_frames_in_one_read() {
    let mut bytes = Vec::new();
    for i in 0..100u32 {
        encode_frame(&i, &mut bytes, DEFAULT_MAX_FRAME_LEN).unwrap();
    }
    let mut dec = FrameDecoder::new(DEFAULT_MAX_FRAME_LEN);
    dec.extend(&bytes);
    for i in 0..100u32 {
        let body = dec.decode().unwrap().unwrap();
        assert_eq!(decode_body::<u32>(body).unwrap(), i);
    }
    assert_eq!(dec.decode().unwrap(), None);
}

#[test]
fn empty_body_is_a_frame() {
    let mut dec = FrameDecoder::new(16);
    dec.extend(&[0, 0, 0, 0]);
    assert_eq!(dec.decode().unwrap(), Some(&[][..]));
}

#[test]
fn too_large_is_refused_from_the_prefix_alone() {
    let mut dec = FrameDecoder::new(DEFAULT_MAX_FRAME_LEN);
    dec.extend(&u32::MAX.to_be_bytes());
    let err = dec.decode().unwrap_err();
    assert_eq!(
        err,
        FrameError::TooLarge {
            len: u32::MAX as usize,
            max: DEFAULT_MAX_FRAME_LEN
        }
    );
    assert!(err
        .to_string()
        .ends_with("raise max_frame_len on both nodes if this is legitimate"));
    // Nothing was reserved for the claimed length.
    assert!(dec.buf.capacity() < 1024);
    // The error sticks: the stream cannot be resynchronised.
    assert!(dec.decode().is_err());
}

#[test]
fn encode_refuses_oversized_bodies_and_leaves_out_untouched() {
    let mut out = vec![1, 2, 3];
    let err = encode_frame(&vec![0u8; 100], &mut out, 10).unwrap_err();
    assert!(matches!(err, FrameError::TooLarge { max: 10, .. }));
    assert_eq!(out, [1, 2, 3]);
}

#[test]
fn undecodable_body_is_a_body_error() {
    let err = decode_body::<String>(&[0xFF, 0xFF]).unwrap_err();
    assert!(matches!(err, FrameError::Body { .. }));
    assert!(std::error::Error::source(&err).is_some());
}

#[test]
fn lowering_the_limit_applies_to_later_frames() {
    let bytes = frame_of(&vec![7u8; 100]);
    let mut dec = FrameDecoder::new(1000);
    dec.extend(&bytes);
    dec.set_max_frame_len(50);
    assert!(matches!(dec.decode(), Err(FrameError::TooLarge { .. })));
}

proptest! {
    #[test]
    fn arbitrary_bytes_in_arbitrary_chunks_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
        cuts in proptest::collection::vec(0usize..512, 0..8),
        max in 0usize..300,
    ) {
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(bytes.len())).collect();
        cuts.push(0);
        cuts.push(bytes.len());
        cuts.sort_unstable();
        let mut dec = FrameDecoder::new(max);
        'feed: for w in cuts.windows(2) {
            dec.extend(&bytes[w[0]..w[1]]);
            loop {
                match dec.decode() {
                    Ok(Some(body)) => {
                        prop_assert!(body.len() <= max);
                        let _ = decode_body::<(String, Vec<u32>)>(body);
                    }
                    Ok(None) => break,
                    Err(FrameError::TooLarge { len, max: m }) => {
                        prop_assert!(len > m);
                        break 'feed;
                    }
                    Err(e) => return Err(TestCaseError::fail(format!("unexpected {e}"))),
                }
            }
        }
    }

    #[test]
    fn encode_then_decode_round_trips(
        msgs in proptest::collection::vec((any::<String>(), any::<u64>(), proptest::collection::vec(any::<u8>(), 0..64)), 0..16),
        chunk in 1usize..64,
    ) {
        let mut bytes = Vec::new();
        for m in &msgs {
            encode_frame(m, &mut bytes, DEFAULT_MAX_FRAME_LEN).unwrap();
        }
        let mut dec = FrameDecoder::new(DEFAULT_MAX_FRAME_LEN);
        let mut back = Vec::new();
        for piece in bytes.chunks(chunk) {
            dec.extend(piece);
            while let Some(body) = dec.decode().unwrap() {
                back.push(decode_body::<(String, u64, Vec<u8>)>(body).unwrap());
            }
        }
        prop_assert_eq!(back, msgs);
        prop_assert_eq!(dec.buffered(), 0);
    }
}

/// A frame body: a valid session frame's encoding, mutated or not, or random bytes.
fn arb_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => (arb_session_frame(), mutations(3)).prop_map(|(f, muts)| {
            mutate(codec::encode(&f).expect("encodable"), 0, &muts)
        }),
        1 => proptest::collection::vec(any::<u8>(), 0..64),
    ]
}

/// Streams of frames with correct length prefixes (so the decoder hands out bodies) and
/// mutated or random bodies, fed in arbitrary pieces: every body comes out exactly as it went
/// in, in order, and reaches the body decoder, which never panics. Before this, random
/// prefixes were too large in 256 of 256 cases and no body was ever decoded.
#[test]
fn valid_prefixes_with_random_bodies_reach_the_body_decoder() {
    run_reaching(
        "frame",
        "the body decoder",
        256,
        90,
        (
            proptest::collection::vec(arb_body(), 1..6),
            proptest::collection::vec(0usize..512, 0..8),
        ),
        |(bodies, cuts)| {
            let mut bytes = Vec::new();
            for b in &bodies {
                bytes.extend_from_slice(&u32::try_from(b.len()).expect("small").to_be_bytes());
                bytes.extend_from_slice(b);
            }
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(bytes.len())).collect();
            cuts.push(0);
            cuts.push(bytes.len());
            cuts.sort_unstable();
            let mut dec = FrameDecoder::new(DEFAULT_MAX_FRAME_LEN);
            let mut out = Vec::new();
            let mut fed = 0;
            for w in cuts.windows(2) {
                dec.extend(&bytes[w[0]..w[1]]);
                fed += w[1] - w[0];
                prop_assert!(dec.buffered() <= fed);
                while let Some(body) = dec.decode().expect("lengths are valid") {
                    let _ = decode_body::<SessionFrame<NodeMsg>>(body);
                    out.push(body.to_vec());
                }
            }
            prop_assert_eq!(&out, &bodies);
            prop_assert_eq!(dec.buffered(), 0);
            Ok(!out.is_empty())
        },
    );
}

/// A length prefix under the limit that claims far more than arrives (60 MiB in a frame of a
/// few bytes) waits for more bytes and reserves nothing for the claim; one over the limit is
/// refused from the prefix alone.
#[test]
fn a_claimed_length_allocates_nothing_before_the_bytes_arrive() {
    run_reaching(
        "frame with a claimed length",
        "the length check",
        256,
        100,
        (
            (1u32..=u32::MAX),
            proptest::collection::vec(any::<u8>(), 0..16),
        ),
        |(claim, tail)| {
            let claim = (claim % (DEFAULT_MAX_FRAME_LEN as u32 * 2)).max(tail.len() as u32 + 1);
            let mut dec = FrameDecoder::new(DEFAULT_MAX_FRAME_LEN);
            dec.extend(&claim.to_be_bytes());
            dec.extend(&tail);
            let got = dec.decode();
            if claim as usize > DEFAULT_MAX_FRAME_LEN {
                prop_assert!(matches!(got, Err(FrameError::TooLarge { .. })), "{:?}", got);
            } else {
                prop_assert_eq!(got, Ok(None));
            }
            prop_assert!(dec.buf.capacity() < 4096, "reserved {}", dec.buf.capacity());
            Ok(true)
        },
    );
}

#[test]
fn the_decoder_reports_its_limit_and_what_it_holds() {
    let mut dec = FrameDecoder::new(100);
    assert_eq!(dec.max_frame_len(), 100);
    dec.set_max_frame_len(10);
    assert_eq!(dec.max_frame_len(), 10);
    let bytes = frame_of(&7u8);
    dec.extend(&bytes[..3]);
    assert_eq!(dec.buffered(), 3, "a partial frame is held");
    dec.extend(&bytes[3..]);
    assert_eq!(dec.buffered(), bytes.len());
    assert!(dec.decode().unwrap().is_some());
    assert_eq!(dec.buffered(), 0);
}

/// A stream that never drains completely (a partial frame is always pending) keeps the
/// buffer bounded: the consumed prefix is dropped once it dominates. Guards against a
/// compaction that never happens (the buffer would grow with every byte ever received).
#[test]
fn a_stream_that_never_drains_keeps_its_buffer_bounded() {
    let frame = frame_of(&vec![5u8; 100]);
    let mut dec = FrameDecoder::new(DEFAULT_MAX_FRAME_LEN);
    let mut decoded = 0;
    dec.extend(&frame[..50]); // half a frame, always pending from here on
    for _ in 0..10_000 {
        // The rest of the pending frame, and half of the next one.
        let mut chunk = frame[50..].to_vec();
        chunk.extend_from_slice(&frame[..50]);
        dec.extend(&chunk);
        while let Some(body) = dec.decode().unwrap() {
            assert_eq!(body.len(), frame.len() - LEN_PREFIX);
            decoded += 1;
        }
        assert!(
            dec.buf.len() <= 4 * frame.len(),
            "buffer grew to {}",
            dec.buf.len()
        );
    }
    assert_eq!(decoded, 10_000);
    assert_eq!(dec.buffered(), 50);
}

#[test]
fn a_frame_of_exactly_the_limit_is_accepted_and_one_byte_more_is_not() {
    let mut dec = FrameDecoder::new(4);
    dec.extend(&[0, 0, 0, 4, 1, 2, 3, 4]);
    assert_eq!(dec.decode().unwrap(), Some(&[1, 2, 3, 4][..]));
    dec.extend(&[0, 0, 0, 5]);
    assert!(matches!(
        dec.decode(),
        Err(FrameError::TooLarge { len: 5, max: 4 })
    ));
}

#[test]
fn a_body_of_exactly_the_limit_is_framed_and_one_byte_more_is_not() {
    // A `[u8; 4]` encodes as its 4 bytes.
    let mut out = Vec::new();
    assert_eq!(encode_frame(&[1u8, 2, 3, 4], &mut out, 4).unwrap(), 4);
    assert_eq!(out, [0, 0, 0, 4, 1, 2, 3, 4]);
    let mut out = Vec::new();
    assert!(matches!(
        encode_frame(&[1u8, 2, 3, 4, 5], &mut out, 4),
        Err(FrameError::TooLarge { len: 5, max: 4 })
    ));
    assert!(out.is_empty(), "nothing is left behind");
}
