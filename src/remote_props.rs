//! Property tests of the payload format of `#[nodus::actor(remote)]` messages: a variant's
//! index and the encoding of its arguments (`__private::remote`), which the generated
//! `from_wire` takes apart with `split` and `args`.

use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::{
    prelude::*,
    test_runner::{Config, TestCaseError, TestRunner},
};

use crate::__private::remote;

/// The arguments of four handlers, by index, as a generated message enum has them.
#[derive(Debug, Clone, PartialEq)]
enum Handler {
    Text(String),
    Pair(u64, bool),
    Bytes(Vec<u8>),
    Nothing,
}

fn arb_handler() -> impl Strategy<Value = Handler> {
    prop_oneof![
        ".{0,24}".prop_map(Handler::Text),
        (any::<u64>(), any::<bool>()).prop_map(|(n, b)| Handler::Pair(n, b)),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(Handler::Bytes),
        Just(Handler::Nothing),
    ]
}

fn encode(h: &Handler) -> Vec<u8> {
    match h {
        Handler::Text(s) => remote::encode(0, &(s,)),
        Handler::Pair(n, b) => remote::encode(1, &(n, b)),
        Handler::Bytes(v) => remote::encode(2, &(v,)),
        Handler::Nothing => remote::encode(3, &()),
    }
    .expect("encodable")
}

/// What the generated `from_wire` does: split, then decode the arguments of that index.
fn decode(payload: &[u8]) -> Result<Handler, String> {
    let (index, args) = remote::split(payload).map_err(|e| e.to_string())?;
    let e = |e: actor_core::codec::CodecError| e.to_string();
    match index {
        0 => remote::args::<(String,)>(&args)
            .map(|(s,)| Handler::Text(s))
            .map_err(e),
        1 => remote::args::<(u64, bool)>(&args)
            .map(|(n, b)| Handler::Pair(n, b))
            .map_err(e),
        2 => remote::args::<(Vec<u8>,)>(&args)
            .map(|(v,)| Handler::Bytes(v))
            .map_err(e),
        3 => remote::args::<()>(&args)
            .map(|()| Handler::Nothing)
            .map_err(e),
        i => Err(format!("no handler has index {i}")),
    }
}

/// One change to valid bytes, after their first byte.
#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Set(usize, u8),
    Truncate(usize),
    /// A varint claiming 60 MiB, `u32::MAX` or `u64::MAX` in place of a byte.
    Huge(usize, u8),
}

fn mutate(mut bytes: Vec<u8>, muts: &[Mutation]) -> Vec<u8> {
    for m in muts {
        let tail = bytes.len().saturating_sub(1);
        if tail == 0 {
            break;
        }
        let at = |i: usize| 1 + i % tail;
        match m {
            Mutation::Flip(i, b) => bytes[at(*i)] ^= 1 << (b % 8),
            Mutation::Set(i, v) => bytes[at(*i)] = *v,
            Mutation::Truncate(i) => bytes.truncate(at(*i)),
            Mutation::Huge(i, k) => {
                let at = at(*i);
                let claim: Vec<u8> = match k % 3 {
                    0 => [252]
                        .into_iter()
                        .chain((60u32 << 20).to_le_bytes())
                        .collect(),
                    1 => [252].into_iter().chain(u32::MAX.to_le_bytes()).collect(),
                    _ => [253].into_iter().chain(u64::MAX.to_le_bytes()).collect(),
                };
                bytes.splice(at..=at, claim);
            }
        }
    }
    bytes
}

fn arb_mutations() -> impl Strategy<Value = Vec<Mutation>> {
    proptest::collection::vec(
        prop_oneof![
            (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
            (any::<usize>(), any::<u8>()).prop_map(|(i, v)| Mutation::Set(i, v)),
            any::<usize>().prop_map(Mutation::Truncate),
            (any::<usize>(), any::<u8>()).prop_map(|(i, k)| Mutation::Huge(i, k)),
        ],
        0..3,
    )
}

proptest! {
    /// encode → split → args is the identity for every handler.
    #[test]
    fn remote_actor_payloads_round_trip(h in arb_handler()) {
        prop_assert_eq!(decode(&encode(&h)), Ok(h));
    }
}

/// Valid payloads (a handler's index, the arguments' correct length) with mutated arguments,
/// and in a quarter of the cases the whole payload mutated after the index: most cases get
/// through `split` to the arguments' decoder; none panics, and an unmutated payload decodes
/// to itself.
#[test]
fn remote_actor_payloads_reach_the_argument_decoder() {
    let mut runner = TestRunner::new(Config {
        cases: 512,
        failure_persistence: None,
        ..Config::default()
    });
    let (total, reached) = (AtomicUsize::new(0), AtomicUsize::new(0));
    runner
        .run(
            &(
                arb_handler(),
                arb_mutations(),
                proptest::bool::weighted(0.25),
            ),
            |(h, muts, outer)| {
                let valid = encode(&h);
                let payload = if outer {
                    mutate(valid.clone(), &muts)
                } else {
                    let (index, args) = remote::split(&valid).expect("valid");
                    // The index and the arguments' length stay valid; the arguments change.
                    let args = mutate([vec![0], args].concat(), &muts)[1..].to_vec();
                    actor_core::codec::encode(&(index, args)).expect("encodable")
                };
                let got = decode(&payload);
                if payload == valid {
                    prop_assert_eq!(&got, &Ok(h));
                }
                total.fetch_add(1, Ordering::Relaxed);
                if matches!(remote::split(&payload), Ok((i, _)) if i < 4) {
                    reached.fetch_add(1, Ordering::Relaxed);
                }
                Ok::<(), TestCaseError>(())
            },
        )
        .unwrap_or_else(|e| panic!("remote actor payload: {e}"));
    let (total, reached) = (total.into_inner(), reached.into_inner());
    eprintln!(
        "remote actor payload (#[nodus::actor(remote)]): {reached}/{total} cases reached the \
         argument decoder ({}%, floor 70%)",
        reached * 100 / total
    );
    assert!(
        reached * 2 >= total,
        "only {reached}/{total} reached the argument decoder"
    );
}

/// The arguments travel as one byte string, and those bytes are exactly what the earlier
/// format (a `Vec<u8>` through serde) put on the wire: nodes of either build agree.
#[test]
fn the_payload_is_byte_for_byte_the_nested_vec_format() {
    use actor_core::codec;
    let mut runner = TestRunner::new(Config::with_cases(256));
    runner
        .run(&(any::<u32>(), arb_handler()), |(index, handler)| {
            let args = match &handler {
                Handler::Text(s) => codec::encode(&(s,)),
                Handler::Pair(n, b) => codec::encode(&(n, b)),
                Handler::Bytes(v) => codec::encode(&(v,)),
                Handler::Nothing => codec::encode(&()),
            }
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let nested = codec::encode(&(index, args.clone()))
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let ours = match &handler {
                Handler::Text(s) => remote::encode(index, &(s,)),
                Handler::Pair(n, b) => remote::encode(index, &(n, b)),
                Handler::Bytes(v) => remote::encode(index, &(v,)),
                Handler::Nothing => remote::encode(index, &()),
            }
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&ours, &nested);
            let (i, back) =
                remote::split(&nested).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(i, index);
            prop_assert_eq!(back, args);
            Ok(())
        })
        .map_err(|e| e.to_string())
        .unwrap_or_else(|e| panic!("{e}"));
}
