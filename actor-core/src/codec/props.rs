//! Test support: byte mutations that keep a valid prefix, and a runner that counts how many
//! cases reached the decoder under test (a copy of `actor_remote::wire::props`'s, which
//! actor-core cannot depend on).

use std::{
    cell::Cell,
    sync::atomic::{AtomicUsize, Ordering},
};

use proptest::{
    prelude::*,
    test_runner::{Config, TestCaseError, TestRunner},
};

/// Runs `test` on `cases` values of `strategy`; `test` returns whether the case reached
/// `what`. Prints the reach and fails unless at least `floor_pct` % of the cases reached it.
pub(crate) fn run_reaching<S: Strategy>(
    name: &str,
    what: &str,
    cases: u32,
    floor_pct: usize,
    strategy: S,
    test: impl Fn(S::Value) -> Result<bool, TestCaseError>,
) {
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let total = AtomicUsize::new(0);
    let reached = AtomicUsize::new(0);
    let shrinking = Cell::new(false);
    let result = runner.run(&strategy, |value| {
        let r = test(value);
        if !shrinking.get() {
            total.fetch_add(1, Ordering::Relaxed);
            if let Ok(true) = r {
                reached.fetch_add(1, Ordering::Relaxed);
            }
            // Cases run while shrinking are not counted.
            shrinking.set(r.is_err());
        }
        r.map(|_| ())
    });
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
    let (total, reached) = (total.into_inner(), reached.into_inner());
    eprintln!(
        "{name}: {reached}/{total} cases reached {what} ({}%, floor {floor_pct}%)",
        reached * 100 / total.max(1)
    );
    assert!(total > 0, "{name}: no case ran");
    assert!(
        reached * 100 >= floor_pct * total,
        "{name}: only {reached}/{total} cases reached {what} (floor {floor_pct}%)"
    );
}

/// One change to a valid encoding; indices are taken modulo the mutable span.
#[derive(Debug, Clone)]
pub(crate) enum Mutation {
    Flip(usize, u8),
    Set(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
    /// A bincode varint claiming 60 MiB (under the 64 MiB limit), `u32::MAX` or `u64::MAX`.
    HugeLength(usize, u8),
}

/// Up to `n` mutations.
pub(crate) fn mutations(n: usize) -> BoxedStrategy<Vec<Mutation>> {
    let one = prop_oneof![
        3 => (any::<usize>(), 0u8..8).prop_map(|(i, b)| Mutation::Flip(i, b)),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(i, v)| Mutation::Set(i, v)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        1 => (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        2 => (any::<usize>(), 0u8..3).prop_map(|(i, k)| Mutation::HugeLength(i, k)),
    ];
    proptest::collection::vec(one, 0..=n).boxed()
}

/// Applies `muts` to `bytes`, never touching the first `keep` bytes.
pub(crate) fn mutate(mut bytes: Vec<u8>, keep: usize, muts: &[Mutation]) -> Vec<u8> {
    for m in muts {
        let tail = bytes.len().saturating_sub(keep);
        let at = |i: usize| keep + i % tail.max(1);
        match m {
            Mutation::Flip(i, bit) if tail > 0 => bytes[at(*i)] ^= 1 << bit,
            Mutation::Set(i, v) if tail > 0 => bytes[at(*i)] = *v,
            Mutation::Truncate(i) if tail > 0 => bytes.truncate(at(*i)),
            Mutation::Insert(i, b) => {
                let at = keep.min(bytes.len()) + i % (tail + 1);
                bytes.splice(at..at, b.iter().copied());
            }
            Mutation::HugeLength(i, kind) if tail > 0 => {
                let at = at(*i);
                let claim: Vec<u8> = match kind {
                    0 => [252]
                        .into_iter()
                        .chain((60u32 << 20).to_le_bytes())
                        .collect(),
                    1 => [252].into_iter().chain(u32::MAX.to_le_bytes()).collect(),
                    _ => [253].into_iter().chain(u64::MAX.to_le_bytes()).collect(),
                };
                bytes.splice(at..=at, claim);
            }
            _ => {}
        }
    }
    bytes
}
