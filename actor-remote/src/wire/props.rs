//! Test support for the property tests of every decoder of network bytes (compiled for tests
//! only): generators of valid wire values, byte-level mutations that keep a valid prefix, and
//! a runner that counts how many cases reached the body decoder and asserts a floor.

use std::{
    cell::Cell,
    sync::atomic::{AtomicUsize, Ordering},
};

use actor_core::NodeName;
use proptest::{
    prelude::*,
    test_runner::{Config, TestCaseError, TestRunner},
};

use super::message::*;

/// Runs `test` on `cases` values of `strategy`. `test` returns whether the case reached
/// `what` (for a decoder: past the length prefix and the enum tags, into the fields). Prints
/// the reach and fails unless at least `floor_pct` % of the cases reached it.
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
            if r.is_err() {
                // Cases run while shrinking are not counted.
                shrinking.set(true);
            }
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

/// One change to a valid encoding.
#[derive(Debug, Clone)]
pub(crate) enum Mutation {
    /// Flip one bit of the byte at (index mod len).
    Flip(usize, u8),
    /// Overwrite the byte at (index mod len).
    Set(usize, u8),
    /// Cut the bytes from (index mod len) on.
    Truncate(usize),
    /// Insert bytes at (index mod (len + 1)).
    Insert(usize, Vec<u8>),
    /// Replace the byte at (index mod len) with a bincode varint claiming a huge number
    /// (a length of 60 MiB, `u32::MAX` or `u64::MAX`): lengths must be checked before
    /// allocating.
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

/// The claimed length of a [`Mutation::HugeLength`]: 60 MiB, under the codec's 64 MiB limit,
/// is the interesting one (refused only because the bytes are not there).
pub(crate) const CLAIMED: u32 = 60 << 20;

/// Applies `muts` to `bytes`, never touching the first `keep` bytes (the valid prefix).
pub(crate) fn mutate(mut bytes: Vec<u8>, keep: usize, muts: &[Mutation]) -> Vec<u8> {
    for m in muts {
        let tail = bytes.len().saturating_sub(keep);
        let at = |i: usize, span: usize| keep + i % span.max(1);
        match m {
            Mutation::Flip(i, bit) if tail > 0 => bytes[at(*i, tail)] ^= 1 << bit,
            Mutation::Set(i, v) if tail > 0 => bytes[at(*i, tail)] = *v,
            Mutation::Truncate(i) if tail > 0 => bytes.truncate(at(*i, tail)),
            Mutation::Insert(i, b) => {
                let at = keep.min(bytes.len()) + i % (tail + 1);
                bytes.splice(at..at, b.iter().copied());
            }
            Mutation::HugeLength(i, kind) if tail > 0 => {
                let at = at(*i, tail);
                let claim: Vec<u8> = match kind {
                    0 => [252].into_iter().chain(CLAIMED.to_le_bytes()).collect(),
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

/// A few valid node names.
pub(crate) fn arb_node_name() -> BoxedStrategy<NodeName> {
    prop_oneof![
        Just("x@localhost"),
        Just("y@localhost"),
        Just("node_1@h.example.com"),
        Just("z@10.0.0.1"),
    ]
    .prop_map(|s| NodeName::parse(s).expect("valid node name"))
    .boxed()
}

fn arb_string() -> BoxedStrategy<String> {
    prop_oneof![".{0,12}", Just(String::new()), "[a-z]{1,40}"].boxed()
}

fn arb_bytes() -> BoxedStrategy<Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..80).boxed()
}

/// Any [`Target`].
pub(crate) fn arb_target() -> BoxedStrategy<Target> {
    prop_oneof![
        arb_string().prop_map(|name| Target::Name(name.into())),
        (any::<u32>(), any::<u64>()).prop_map(|(creation, id)| Target::Pid { creation, id }),
    ]
    .boxed()
}

fn arb_task_kind() -> BoxedStrategy<WireTaskKind> {
    prop_oneof![
        any::<bool>().prop_map(|linked| WireTaskKind::Async { linked }),
        prop_oneof![
            Just(WireRestart::Permanent),
            Just(WireRestart::Transient),
            Just(WireRestart::Temporary),
        ]
        .prop_map(WireTaskKind::Child),
    ]
    .boxed()
}

fn arb_task_error() -> BoxedStrategy<WireTaskError> {
    prop_oneof![
        any::<u64>().prop_map(|millis| WireTaskError::Timeout { millis }),
        arb_string().prop_map(|message| WireTaskError::Panicked { message }),
        arb_string().prop_map(|reason| WireTaskError::Exited { reason }),
        arb_node_name().prop_map(|node| WireTaskError::NoConnection { node }),
        (arb_string(), arb_node_name())
            .prop_map(|(name, node)| WireTaskError::NoProc { name, node }),
        (arb_string(), arb_string())
            .prop_map(|(module, function)| WireTaskError::Undefined { module, function }),
        arb_string().prop_map(|reason| WireTaskError::BadArgs { reason }),
        arb_string().prop_map(|reason| WireTaskError::BadReturn { reason }),
        (arb_string(), any::<u64>())
            .prop_map(|(name, max)| WireTaskError::MaxChildren { name, max }),
    ]
    .boxed()
}

fn arb_control() -> BoxedStrategy<ControlMsg> {
    prop_oneof![
        any::<u64>().prop_map(ControlMsg::Ping),
        any::<u64>().prop_map(ControlMsg::Pong),
        proptest::collection::vec(arb_node_name(), 0..5).prop_map(ControlMsg::Peers),
        Just(ControlMsg::Leaving),
        (any::<u64>(), any::<[u64; 2]>())
            .prop_map(|(nodes, sums)| ControlMsg::View(ViewDigest { nodes, sums })),
        // Any number of parts decodes: a wrong number is the machine's to answer.
        proptest::collection::vec(any::<u64>(), 0..70)
            .prop_map(|sums| ControlMsg::ViewParts(ViewParts { sums })),
    ]
    .boxed()
}

fn arb_task() -> BoxedStrategy<TaskMsg> {
    prop_oneof![
        (
            any::<u64>(),
            arb_target(),
            arb_string(),
            arb_string(),
            arb_bytes(),
            arb_task_kind(),
            arb_trace()
        )
            .prop_map(|(req, supervisor, module, function, args, kind, trace)| {
                TaskMsg::Spawn {
                    req,
                    supervisor,
                    module,
                    function,
                    args,
                    kind,
                    trace,
                }
            }),
        (
            any::<u64>(),
            prop_oneof![any::<u64>().prop_map(Ok), arb_task_error().prop_map(Err)]
        )
            .prop_map(|(req, result)| TaskMsg::Started { req, result }),
        (
            any::<u64>(),
            prop_oneof![arb_bytes().prop_map(Ok), arb_task_error().prop_map(Err)]
        )
            .prop_map(|(req, result)| TaskMsg::Result { req, result }),
        any::<u64>().prop_map(|req| TaskMsg::Kill { req }),
        (
            any::<u64>(),
            arb_string(),
            arb_string(),
            arb_bytes(),
            arb_trace()
        )
            .prop_map(|(req, module, function, args, trace)| TaskMsg::SpawnPlain {
                req,
                module,
                function,
                args,
                trace,
            }),
        arb_string().prop_map(|text| TaskMsg::Output { text }),
    ]
    .boxed()
}

fn arb_trace() -> BoxedStrategy<Option<WireTrace>> {
    proptest::option::of((any::<[u8; 16]>(), any::<[u8; 8]>(), any::<u8>()).prop_map(
        |(trace_id, span_id, flags)| WireTrace {
            trace_id,
            span_id,
            flags,
        },
    ))
    .boxed()
}

fn arb_send_error() -> BoxedStrategy<WireSendError> {
    prop_oneof![
        Just(WireSendError::NoProc),
        arb_string().prop_map(|reason| WireSendError::Refused { reason }),
        Just(WireSendError::NoReply),
    ]
    .boxed()
}

pub(crate) fn arb_actor() -> BoxedStrategy<ActorMsg> {
    prop_oneof![
        (
            arb_target(),
            arb_string(),
            arb_bytes(),
            proptest::option::of(any::<u64>()),
            arb_trace()
        )
            .prop_map(|(target, name, payload, call, trace)| ActorMsg::Send {
                target,
                name: name.into(),
                payload,
                call,
                trace,
            }),
        (
            any::<u64>(),
            prop_oneof![arb_bytes().prop_map(Ok), arb_send_error().prop_map(Err)]
        )
            .prop_map(|(call, result)| ActorMsg::Reply { call, result }),
    ]
    .boxed()
}

fn arb_watch() -> BoxedStrategy<WatchMsg> {
    prop_oneof![
        (any::<u64>(), arb_target()).prop_map(|(id, target)| WatchMsg::Watch { id, target }),
        any::<u64>().prop_map(|id| WatchMsg::Unwatch { id }),
        (
            any::<u64>(),
            prop_oneof![
                Just(WireDownReason::Exited),
                Just(WireDownReason::NoProc),
                arb_exit_reason().prop_map(WireDownReason::Exit),
            ]
        )
            .prop_map(|(id, reason)| WatchMsg::Down { id, reason }),
    ]
    .boxed()
}

fn arb_exit_reason() -> BoxedStrategy<WireExitReason> {
    prop_oneof![
        Just(WireExitReason::Normal),
        Just(WireExitReason::Shutdown),
        Just(WireExitReason::Killed),
        arb_string().prop_map(|why| WireExitReason::Failed { why }),
        arb_string().prop_map(|reason| WireExitReason::Stopped { reason }),
        Just(WireExitReason::NoProc),
        Just(WireExitReason::NoConnection),
    ]
    .boxed()
}

fn arb_pid() -> BoxedStrategy<WirePid> {
    (any::<u32>(), any::<u64>())
        .prop_map(|(creation, id)| WirePid { creation, id })
        .boxed()
}

fn arb_link() -> BoxedStrategy<LinkMsg> {
    prop_oneof![
        (arb_pid(), arb_pid()).prop_map(|(from, to)| LinkMsg::Link { from, to }),
        (arb_pid(), arb_pid()).prop_map(|(from, to)| LinkMsg::Unlink { from, to }),
        (arb_pid(), arb_pid(), arb_exit_reason()).prop_map(|(from, to, reason)| LinkMsg::Exit {
            from,
            to,
            reason
        }),
    ]
    .boxed()
}

/// Any [`NodeMsg`], every concern and every variant.
pub(crate) fn arb_node_msg() -> BoxedStrategy<NodeMsg> {
    prop_oneof![
        arb_control().prop_map(NodeMsg::Control),
        arb_task().prop_map(NodeMsg::Task),
        arb_actor().prop_map(NodeMsg::Actor),
        arb_watch().prop_map(NodeMsg::Watch),
        arb_link().prop_map(NodeMsg::Link),
    ]
    .boxed()
}

/// Any [`SessionFrame<NodeMsg>`], mostly messages.
pub(crate) fn arb_session_frame() -> BoxedStrategy<SessionFrame<NodeMsg>> {
    prop_oneof![
        1 => Just(SessionFrame::Tick),
        9 => arb_node_msg().prop_map(SessionFrame::Msg),
    ]
    .boxed()
}

/// How many variants each enum of the session envelope has, in the order the decoder reads
/// their tags: `SessionFrame` (Tick, Msg), `NodeMsg`, then the concern.
pub(crate) fn concern_variants(node_msg_tag: u8) -> Option<u8> {
    match node_msg_tag {
        0 => Some(4), // ControlMsg
        1 => Some(6), // TaskMsg
        2 => Some(2), // ActorMsg
        3 => Some(3), // WatchMsg
        4 => Some(3), // LinkMsg
        _ => None,
    }
}

/// Whether `body` starts with a valid envelope of a session frame carrying a message
/// (`SessionFrame::Msg`, a `NodeMsg` tag, a tag of that concern) and has bytes after it: the
/// decoder then reads a variant's fields. Tags under 251 are one byte in bincode's varint.
pub(crate) fn session_envelope_is_valid(body: &[u8]) -> bool {
    matches!(body, [1, n, c, _, ..] if concern_variants(*n).is_some_and(|k| *c < k))
}

/// The envelope's length for a `SessionFrame::Msg` (its tag, the concern's, the variant's).
pub(crate) const SESSION_ENVELOPE: usize = 3;

/// Any [`HandshakeMessage`].
pub(crate) fn arb_handshake_message() -> BoxedStrategy<HandshakeMessage> {
    prop_oneof![
        (
            any::<u16>(),
            any::<u16>(),
            any::<u64>(),
            arb_node_name(),
            any::<u32>(),
            any::<bool>()
        )
            .prop_map(
                |(min_version, max_version, capabilities, name, creation, hidden)| {
                    HandshakeMessage::Hello(Hello {
                        min_version,
                        max_version,
                        capabilities,
                        name,
                        creation,
                        hidden,
                    })
                }
            ),
        prop_oneof![
            Just(Status::Ok),
            Just(Status::OkSimultaneous),
            Just(Status::Nok),
            Just(Status::NotAllowed),
            Just(Status::Alive),
        ]
        .prop_map(HandshakeMessage::Status),
        any::<[u8; 32]>().prop_map(|challenge| HandshakeMessage::Challenge { challenge }),
        (any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(|(digest, challenge)| {
            HandshakeMessage::ChallengeReply { digest, challenge }
        }),
        any::<[u8; 32]>().prop_map(|digest| HandshakeMessage::ChallengeAck { digest }),
        any::<u64>().prop_map(|max_frame_len| HandshakeMessage::Limits { max_frame_len }),
        any::<bool>().prop_map(|go_on| HandshakeMessage::AliveReply { go_on }),
    ]
    .boxed()
}

/// How many variants [`HandshakeMessage`] has.
pub(crate) const HANDSHAKE_VARIANTS: u8 = 7;
