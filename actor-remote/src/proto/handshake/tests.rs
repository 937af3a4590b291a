use super::*;
use crate::wire::props::run_reaching;
use crate::wire::{encode_frame, FrameDecoder, HANDSHAKE_MAX_FRAME_LEN};
use proptest::{prelude::*, test_runner::TestCaseError};
use HandshakeMessage as M;

fn name(s: &str) -> NodeName {
    NodeName::parse(s).unwrap()
}

fn cfg(n: &str, cookie: &str) -> HandshakeConfig {
    HandshakeConfig::new(name(n), cookie)
}

fn pair(i: &HandshakeConfig, a: &HandshakeConfig, now: Instant) -> (Handshake, Handshake) {
    (
        Handshake::initiate(i, a.name.clone(), [1; 32], now),
        Handshake::accept(a, [2; 32], now),
    )
}

/// Moves messages both ways until neither side has anything to send, answering the
/// acceptor's registration question with `existing`. Returns the transcript.
fn pump(i: &mut Handshake, a: &mut Handshake, now: Instant, existing: Existing) -> Vec<String> {
    let mut log = Vec::new();
    loop {
        let mut moved = false;
        while let Some(m) = i.poll_transmit() {
            log.push(format!("I->A {}", m.kind()));
            a.handle_frame(now, m);
            moved = true;
        }
        if let Some(HandshakeEvent::NeedsRegistration { peer }) = a.poll_event() {
            assert_eq!(Some(&peer), a.peer());
            let status = a.handle_registration(now, existing);
            log.push(format!("A registration -> {status:?}"));
        }
        while let Some(m) = a.poll_transmit() {
            log.push(format!("A->I {}", m.kind()));
            i.handle_frame(now, m);
            moved = true;
        }
        if !moved {
            return log;
        }
    }
}

fn outcomes(
    i: &mut Handshake,
    a: &mut Handshake,
) -> (
    Result<Established, HandshakeError>,
    Result<Established, HandshakeError>,
) {
    (i.poll_outcome().unwrap(), a.poll_outcome().unwrap())
}

#[test]
fn success_both_ways() {
    let now = Instant::now();
    let mut x = cfg("x@localhost", "secret");
    x.creation = 7;
    x.capabilities = 0b1011;
    let mut y = cfg("y@localhost", "secret");
    y.hidden = true;
    y.capabilities = 0b0110;
    for (ci, ca) in [(&x, &y), (&y, &x)] {
        let (mut i, mut a) = pair(ci, ca, now);
        let log = pump(&mut i, &mut a, now, Existing::None);
        assert_eq!(
            log,
            [
                "I->A hello",
                "A registration -> Some(Ok)",
                "A->I hello",
                "A->I status",
                "A->I challenge",
                "I->A challenge reply",
                "A->I challenge ack",
            ]
        );
        let (oi, oa) = outcomes(&mut i, &mut a);
        let (oi, oa) = (oi.unwrap(), oa.unwrap());
        assert_eq!(oi.peer, ca.name);
        assert_eq!(oa.peer, ci.name);
        assert_eq!((oi.creation, oi.hidden), (ca.creation, ca.hidden));
        assert_eq!((oa.creation, oa.hidden), (ci.creation, ci.hidden));
        assert_eq!((oi.capabilities, oa.capabilities), (0b0010, 0b0010));
        assert_eq!(
            (oi.version, oa.version),
            (PROTOCOL_VERSION, PROTOCOL_VERSION)
        );
        assert_eq!((oi.role, oa.role), (Role::Initiator, Role::Acceptor));
        assert!(i.is_done() && a.is_done());
        assert_eq!((i.poll_timeout(), a.poll_timeout()), (None, None));
        assert!(i.poll_outcome().is_none());
    }
}

#[test]
fn highest_shared_version_is_chosen() {
    let now = Instant::now();
    let mut x = cfg("x@localhost", "c");
    (x.min_version, x.max_version) = (1, 3);
    let mut y = cfg("y@localhost", "c");
    (y.min_version, y.max_version) = (2, 5);
    let (mut i, mut a) = pair(&x, &y, now);
    pump(&mut i, &mut a, now, Existing::None);
    let (oi, oa) = outcomes(&mut i, &mut a);
    assert_eq!((oi.unwrap().version, oa.unwrap().version), (3, 3));
}

#[test]
fn wrong_cookie_both_sides() {
    let now = Instant::now();
    let x = cfg("x@localhost", "one");
    let y = cfg("y@localhost", "two");
    let (mut i, mut a) = pair(&x, &y, now);
    let log = pump(&mut i, &mut a, now, Existing::None);
    assert_eq!(log.last().unwrap(), "A->I status");
    let (oi, oa) = outcomes(&mut i, &mut a);
    let ei = oi.unwrap_err();
    assert!(matches!(&ei, HandshakeError::CookieMismatch { peer } if *peer == y.name));
    assert_eq!(
        oa.unwrap_err().to_string(),
        "connection attempt from node x@localhost rejected: invalid challenge reply; start both nodes with the same cookie"
    );
    assert!(ei
        .to_string()
        .ends_with("start both nodes with the same cookie"));
}

#[test]
fn initiator_sees_a_close_after_its_reply_as_a_cookie_mismatch() {
    let now = Instant::now();
    let (x, y) = (cfg("x@localhost", "one"), cfg("y@localhost", "two"));
    let (mut i, mut a) = pair(&x, &y, now);
    a.handle_frame(now, i.poll_transmit().unwrap());
    a.handle_registration(now, Existing::None);
    while let Some(m) = a.poll_transmit() {
        i.handle_frame(now, m);
    }
    assert!(matches!(i.poll_transmit(), Some(M::ChallengeReply { .. })));
    i.handle_close();
    assert!(matches!(
        i.poll_outcome(),
        Some(Err(HandshakeError::CookieMismatch { .. }))
    ));
}

#[test]
fn forged_ack_is_a_cookie_mismatch() {
    let now = Instant::now();
    let (x, y) = (cfg("x@localhost", "c"), cfg("y@localhost", "c"));
    let (mut i, mut a) = pair(&x, &y, now);
    a.handle_frame(now, i.poll_transmit().unwrap());
    a.handle_registration(now, Existing::None);
    while let Some(m) = a.poll_transmit() {
        i.handle_frame(now, m);
    }
    i.handle_frame(now, M::ChallengeAck { digest: [0; 32] });
    assert!(matches!(
        i.poll_outcome(),
        Some(Err(HandshakeError::CookieMismatch { .. }))
    ));
}

#[test]
fn reflected_challenge_is_refused() {
    // An attacker without the cookie replays the acceptor's own challenge as its own.
    let now = Instant::now();
    let y = cfg("y@localhost", "c");
    let mut a = Handshake::accept(&y, [2; 32], now);
    a.handle_frame(now, M::Hello(cfg("x@localhost", "?").hello()));
    a.handle_registration(now, Existing::None);
    a.handle_frame(
        now,
        M::ChallengeReply {
            digest: [0; 32],
            challenge: [2; 32],
        },
    );
    assert!(matches!(
        a.poll_outcome(),
        Some(Err(HandshakeError::InvalidChallengeReply { .. }))
    ));
}

#[test]
fn digests_depend_on_names_direction_and_cookie() {
    let (c1, c2) = (Secret(b"c".to_vec().into()), Secret(b"d".to_vec().into()));
    let (x, y) = (name("x@h"), name("y@h"));
    let base = digest(&c1, &[0; 32], &x, &y, TAG_INITIATOR);
    assert_ne!(base, digest(&c2, &[0; 32], &x, &y, TAG_INITIATOR));
    assert_ne!(base, digest(&c1, &[1; 32], &x, &y, TAG_INITIATOR));
    assert_ne!(base, digest(&c1, &[0; 32], &y, &x, TAG_INITIATOR));
    assert_ne!(base, digest(&c1, &[0; 32], &x, &y, TAG_ACCEPTOR));
    assert!(verify(&c1, &[0; 32], &x, &y, TAG_INITIATOR, &base));
}

#[test]
fn cookie_never_reaches_debug() {
    let c = cfg("x@localhost", "hunter2-very-secret");
    let hs = Handshake::accept(&c, [0; 32], Instant::now());
    for text in [format!("{c:?}"), format!("{hs:?}")] {
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("<redacted>"));
    }
}

#[test]
fn version_mismatch_both_sides() {
    let now = Instant::now();
    let mut x = cfg("x@localhost", "c");
    (x.min_version, x.max_version) = (PROTOCOL_VERSION + 1, PROTOCOL_VERSION + 2);
    let y = cfg("y@localhost", "c");
    let (mut i, mut a) = pair(&x, &y, now);
    let log = pump(&mut i, &mut a, now, Existing::None);
    assert_eq!(log, ["I->A hello", "A->I hello", "A->I status"]);
    let (oi, oa) = outcomes(&mut i, &mut a);
    let ei = oi.unwrap_err();
    assert!(matches!(
        &ei,
        HandshakeError::Version {
            theirs_min: PROTOCOL_VERSION,
            theirs_max: PROTOCOL_VERSION,
            min,
            max,
            ..
        } if *min == PROTOCOL_VERSION + 1 && *max == PROTOCOL_VERSION + 2
    ));
    assert!(ei.to_string().ends_with("upgrade the older node"));
    assert!(matches!(
        oa.unwrap_err(),
        HandshakeError::Version {
            theirs_min,
            theirs_max,
            min: PROTOCOL_VERSION,
            max: PROTOCOL_VERSION,
            ..
        } if theirs_min == PROTOCOL_VERSION + 1 && theirs_max == PROTOCOL_VERSION + 2
    ));
}

/// Issue 13: the acceptor's warning about a version mismatch said `peer=None`: the
/// acceptor knows who the peer said it is.
#[test]
fn an_acceptor_refusing_a_version_knows_the_peer() {
    let now = Instant::now();
    let mut x = cfg("x@localhost", "c");
    (x.min_version, x.max_version) = (1, 1);
    let y = cfg("y@localhost", "c");
    let (mut i, mut a) = pair(&x, &y, now);
    pump(&mut i, &mut a, now, Existing::None);
    let (_, oa) = outcomes(&mut i, &mut a);
    assert!(matches!(oa, Err(HandshakeError::Version { .. })), "{oa:?}");
    assert_eq!(a.peer(), Some(&x.name));
}

/// Version 6 gave each fragment its lane, which a version 5 node cannot decode: a node of
/// version 5 and one of this build refuse each other at the handshake.
#[test]
fn a_version_5_node_and_this_build_refuse_each_other() {
    assert_eq!(PROTOCOL_VERSION, 6);
    let now = Instant::now();
    let mut old = cfg("x@localhost", "c");
    (old.min_version, old.max_version) = (5, 5);
    let new = cfg("y@localhost", "c");
    let (mut i, mut a) = pair(&old, &new, now);
    pump(&mut i, &mut a, now, Existing::None);
    let (oi, oa) = outcomes(&mut i, &mut a);
    assert!(
        matches!(
            oi,
            Err(HandshakeError::Version {
                theirs_min: 6,
                theirs_max: 6,
                min: 5,
                max: 5,
                ..
            })
        ),
        "{oi:?}"
    );
    assert!(
        matches!(
            oa,
            Err(HandshakeError::Version {
                theirs_min: 5,
                theirs_max: 5,
                min: 6,
                max: 6,
                ..
            })
        ),
        "{oa:?}"
    );
}

#[test]
fn long_and_short_names_cannot_connect() {
    let now = Instant::now();
    let long = cfg("x@127.0.0.1", "c");
    let short = cfg("y@vm", "c");
    assert_eq!(
        (long.name_mode, short.name_mode),
        (NameMode::Long, NameMode::Short)
    );
    for (ci, ca) in [(&long, &short), (&short, &long)] {
        let (mut i, mut a) = pair(ci, ca, now);
        pump(&mut i, &mut a, now, Existing::None);
        let (oi, oa) = outcomes(&mut i, &mut a);
        for e in [oi.unwrap_err(), oa.unwrap_err()] {
            assert!(matches!(e, HandshakeError::NameMode { .. }), "{e}");
            assert!(e.to_string().contains("cannot connect"), "{e}");
        }
    }
    let (mut i, mut a) = pair(&short, &long, now);
    pump(&mut i, &mut a, now, Existing::None);
    let text = a.poll_outcome().unwrap().unwrap_err().to_string();
    assert!(
        text.starts_with(
            "** System running to use fully qualified hostnames ** ** Hostname vm is illegal **"
        ),
        "{text}"
    );
}

#[test]
fn initiator_refuses_a_different_node() {
    let now = Instant::now();
    let (x, y) = (cfg("x@localhost", "c"), cfg("y@localhost", "c"));
    let mut i = Handshake::initiate(&x, name("z@localhost"), [1; 32], now);
    let mut a = Handshake::accept(&y, [2; 32], now);
    pump(&mut i, &mut a, now, Existing::None);
    assert!(matches!(
        i.poll_outcome(),
        Some(Err(HandshakeError::WrongPeer { .. }))
    ));
}

#[test]
fn simultaneous_connect_greater_name_keeps_its_outgoing() {
    let now = Instant::now();
    let (small, big) = (cfg("a@localhost", "c"), cfg("b@localhost", "c"));
    // The incoming attempt from `a` reaches `b`, which has its own attempt to `a` pending: `b`
    // sorts greater, so it refuses the incoming one.
    let (mut i, mut a) = pair(&small, &big, now);
    let log = pump(&mut i, &mut a, now, Existing::PendingOutgoing);
    assert_eq!(
        log,
        [
            "I->A hello",
            "A registration -> Some(Nok)",
            "A->I hello",
            "A->I status"
        ]
    );
    let (oi, oa) = outcomes(&mut i, &mut a);
    assert!(matches!(oi, Err(HandshakeError::Simultaneous { .. })));
    assert!(matches!(oa, Err(HandshakeError::Simultaneous { .. })));
    // The other order: `b`'s attempt reaches `a`, which sorts lower and gives way.
    let (mut i, mut a) = pair(&big, &small, now);
    let log = pump(&mut i, &mut a, now, Existing::PendingOutgoing);
    assert_eq!(log[1], "A registration -> Some(OkSimultaneous)");
    let (oi, oa) = outcomes(&mut i, &mut a);
    assert_eq!(oi.unwrap().peer, small.name);
    assert_eq!(oa.unwrap().peer, big.name);
}

#[test]
fn existing_session_answers_alive() {
    let now = Instant::now();
    let (x, y) = (cfg("x@localhost", "c"), cfg("y@localhost", "c"));
    let (mut i, mut a) = pair(&x, &y, now);
    pump(&mut i, &mut a, now, Existing::Established);
    let (oi, oa) = outcomes(&mut i, &mut a);
    let ei = oi.unwrap_err();
    assert!(matches!(&ei, HandshakeError::AlreadyConnected { peer } if *peer == y.name));
    assert!(ei.to_string().contains("already exists"));
    assert!(matches!(oa, Err(HandshakeError::AlreadyConnected { .. })));
}

/// Moves messages both ways as [`pump`] does, answering the initiator's registration
/// question (after `Alive`) with `initiator_has`.
fn pump_alive(
    i: &mut Handshake,
    a: &mut Handshake,
    now: Instant,
    acceptor_has: Existing,
    initiator_has: Existing,
) -> Vec<String> {
    let mut log = Vec::new();
    loop {
        let mut moved = false;
        while let Some(m) = i.poll_transmit() {
            log.push(format!("I->A {}", m.kind()));
            a.handle_frame(now, m);
            moved = true;
        }
        if let Some(HandshakeEvent::NeedsRegistration { .. }) = a.poll_event() {
            a.handle_registration(now, acceptor_has);
        }
        while let Some(m) = a.poll_transmit() {
            log.push(format!("A->I {}", m.kind()));
            i.handle_frame(now, m);
            moved = true;
        }
        if let Some(HandshakeEvent::NeedsRegistration { peer }) = i.poll_event() {
            assert_eq!(Some(&peer), i.peer());
            assert_eq!(i.handle_registration(now, initiator_has), None);
            moved = true;
        }
        if !moved {
            return log;
        }
    }
}

fn capable(n: &str, max_frame_len: usize) -> HandshakeConfig {
    let mut c = cfg(n, "c");
    c.capabilities = CAPABILITIES;
    c.max_frame_len = max_frame_len;
    c
}

/// Issue 13: a peer resumed after being declared down was refused ("a session already
/// exists") until its stale session died. With `CAP_ALIVE_REPLY`, the initiator says it has
/// no session, and the acceptor's is replaced.
#[test]
fn alive_is_answered_and_a_stale_session_is_replaced() {
    let now = Instant::now();
    let (x, y) = (capable("x@localhost", 1000), capable("y@localhost", 2000));
    let (mut i, mut a) = pair(&x, &y, now);
    let log = pump_alive(
        &mut i,
        &mut a,
        now,
        Existing::Established,
        Existing::PendingOutgoing,
    );
    assert_eq!(
        log,
        [
            "I->A hello",
            "A->I hello",
            "A->I status",
            "I->A alive reply",
            "A->I limits",
            "A->I challenge",
            "I->A limits",
            "I->A challenge reply",
            "A->I challenge ack",
        ]
    );
    let (oi, oa) = outcomes(&mut i, &mut a);
    let (oi, oa) = (oi.unwrap(), oa.unwrap());
    assert!(oa.replaces && !oi.replaces);
    assert_eq!(
        (oi.peer_max_frame_len, oa.peer_max_frame_len),
        (Some(2000), Some(1000))
    );
}

#[test]
fn alive_answered_by_a_connected_initiator_ends_both_sides() {
    let now = Instant::now();
    let (x, y) = (capable("x@localhost", 1000), capable("y@localhost", 1000));
    let (mut i, mut a) = pair(&x, &y, now);
    pump_alive(
        &mut i,
        &mut a,
        now,
        Existing::Established,
        Existing::Established,
    );
    let (oi, oa) = outcomes(&mut i, &mut a);
    assert!(
        matches!(oi, Err(HandshakeError::AlreadyConnected { .. })),
        "{oi:?}"
    );
    assert!(
        matches!(oa, Err(HandshakeError::AlreadyConnected { .. })),
        "{oa:?}"
    );
    assert!(oi.unwrap_err().is_benign());
}

/// A node without the capabilities (a build of protocol version 6 without them) gets neither
/// new message: `Alive` ends the handshake as before, and no limits are told.
#[test]
fn without_the_capabilities_nothing_new_is_sent() {
    let now = Instant::now();
    let (old, new) = (cfg("x@localhost", "c"), capable("y@localhost", 1000));
    for (ci, ca) in [(&old, &new), (&new, &old)] {
        let (mut i, mut a) = pair(ci, ca, now);
        let log = pump_alive(&mut i, &mut a, now, Existing::Established, Existing::None);
        assert_eq!(log, ["I->A hello", "A->I hello", "A->I status"]);
        let (oi, _) = outcomes(&mut i, &mut a);
        assert!(
            matches!(oi, Err(HandshakeError::AlreadyConnected { .. })),
            "{oi:?}"
        );
        let (mut i, mut a) = pair(ci, ca, now);
        let log = pump_alive(&mut i, &mut a, now, Existing::None, Existing::None);
        assert!(!log.iter().any(|l| l.ends_with("limits")), "{log:?}");
        let (oi, oa) = outcomes(&mut i, &mut a);
        assert_eq!(oi.unwrap().peer_max_frame_len, None);
        assert_eq!(oa.unwrap().peer_max_frame_len, None);
    }
}

/// Limits from a peer that did not offer the capability, or twice, break the handshake.
#[test]
fn unasked_limits_are_unexpected() {
    let now = Instant::now();
    let (x, y) = (cfg("x@localhost", "c"), capable("y@localhost", 1000));
    let mut a = Handshake::accept(&y, [2; 32], now);
    a.handle_frame(now, M::Hello(x.hello()));
    a.handle_registration(now, Existing::None);
    a.handle_frame(now, M::Limits { max_frame_len: 5 });
    assert!(matches!(
        a.poll_outcome(),
        Some(Err(HandshakeError::Unexpected { got: "limits", .. }))
    ));
    let x = capable("x@localhost", 1000);
    let mut a = Handshake::accept(&y, [2; 32], now);
    a.handle_frame(now, M::Hello(x.hello()));
    a.handle_registration(now, Existing::None);
    a.handle_frame(now, M::Limits { max_frame_len: 5 });
    assert!(a.poll_outcome().is_none());
    a.handle_frame(now, M::Limits { max_frame_len: 6 });
    assert!(matches!(
        a.poll_outcome(),
        Some(Err(HandshakeError::Unexpected { got: "limits", .. }))
    ));
}

#[test]
fn errors_name_their_peer_and_say_whether_they_are_benign() {
    let p = name("p@localhost");
    let simultaneous = HandshakeError::Simultaneous { peer: p.clone() };
    let cookie = HandshakeError::InvalidChallengeReply { peer: p.clone() };
    let closed = HandshakeError::PeerClosed { step: "x" };
    assert_eq!(
        (simultaneous.peer(), simultaneous.is_benign()),
        (Some(&p), true)
    );
    assert_eq!((cookie.peer(), cookie.is_benign()), (Some(&p), false));
    assert_eq!((closed.peer(), closed.is_benign()), (None, false));
}

#[test]
fn not_allowed_status_is_rejected() {
    let now = Instant::now();
    let (x, y) = (cfg("x@localhost", "c"), cfg("y@localhost", "c"));
    let mut i = Handshake::initiate(&x, y.name.clone(), [1; 32], now);
    i.handle_frame(now, M::Hello(y.hello()));
    i.handle_frame(now, M::Status(Status::NotAllowed));
    assert!(matches!(
        i.poll_outcome(),
        Some(Err(HandshakeError::Rejected {
            status: Status::NotAllowed,
            ..
        }))
    ));
}

#[test]
fn registration_answer_is_ignored_when_not_asked() {
    let now = Instant::now();
    let mut a = Handshake::accept(&cfg("y@localhost", "c"), [2; 32], now);
    assert_eq!(a.handle_registration(now, Existing::None), None);
    assert!(a.poll_transmit().is_none());
}

/// Every message kind, for the unexpected-message tests.
fn all_messages() -> Vec<HandshakeMessage> {
    vec![
        M::Hello(cfg("z@localhost", "c").hello()),
        M::Status(Status::Ok),
        M::Challenge { challenge: [3; 32] },
        M::ChallengeReply {
            digest: [4; 32],
            challenge: [5; 32],
        },
        M::ChallengeAck { digest: [6; 32] },
    ]
}

/// Drives a fresh pair to each step and returns the side that waits there.
fn at_each_step(now: Instant) -> Vec<(&'static str, Handshake)> {
    let (x, y) = (cfg("x@localhost", "c"), cfg("y@localhost", "c"));
    let mut steps = Vec::new();
    // Initiator, waiting for the acceptor's hello.
    let (i, _) = pair(&x, &y, now);
    steps.push(("waiting for the peer's hello", i));
    // Initiator, waiting for the status.
    let (mut i, _) = pair(&x, &y, now);
    i.handle_frame(now, M::Hello(y.hello()));
    steps.push(("waiting for the status", i));
    // Initiator, waiting for the challenge.
    let (mut i, _) = pair(&x, &y, now);
    i.handle_frame(now, M::Hello(y.hello()));
    i.handle_frame(now, M::Status(Status::Ok));
    steps.push(("waiting for the challenge", i));
    // Initiator, waiting for the ack.
    let (mut i, _) = pair(&x, &y, now);
    i.handle_frame(now, M::Hello(y.hello()));
    i.handle_frame(now, M::Status(Status::Ok));
    i.handle_frame(now, M::Challenge { challenge: [9; 32] });
    steps.push(("waiting for the challenge ack", i));
    // Acceptor, waiting for the hello.
    let (_, a) = pair(&x, &y, now);
    steps.push(("waiting for the initiator's hello", a));
    // Acceptor, waiting for its driver.
    let (_, mut a) = pair(&x, &y, now);
    a.handle_frame(now, M::Hello(x.hello()));
    steps.push((
        "waiting for the local node to check existing connections",
        a,
    ));
    // Acceptor, waiting for the reply.
    let (_, mut a) = pair(&x, &y, now);
    a.handle_frame(now, M::Hello(x.hello()));
    a.handle_registration(now, Existing::None);
    steps.push(("waiting for the challenge reply", a));
    for (step, hs) in &steps {
        assert_eq!(hs.state.step(), *step);
        assert!(!hs.is_done());
    }
    steps
}

#[test]
fn each_unexpected_message_at_each_step() {
    let now = Instant::now();
    let mut checked = 0;
    for (step, _) in at_each_step(now) {
        for msg in all_messages() {
            let mut hs = at_each_step(now)
                .into_iter()
                .find(|(s, _)| *s == step)
                .unwrap()
                .1;
            let kind = msg.kind();
            hs.handle_frame(now, msg);
            match hs.poll_outcome() {
                Some(Err(HandshakeError::Unexpected { got, state })) => {
                    assert_eq!((got, state), (kind, step));
                    checked += 1;
                }
                // The expected message for this step (or a status the step accepts).
                None | Some(Ok(_)) => {}
                Some(Err(e)) => assert!(
                    !matches!(e, HandshakeError::Unexpected { .. }),
                    "{step}: {kind}: {e}"
                ),
            }
        }
    }
    // Seven steps, five kinds: six steps expect one kind each, the driver's step none.
    assert_eq!(checked, 7 * 5 - 6);
}

#[test]
fn timeout_at_each_step_and_deadline_rearms() {
    let start = Instant::now();
    for (step, mut hs) in at_each_step(start) {
        let deadline = hs.poll_timeout().unwrap();
        assert_eq!(deadline, start + DEFAULT_SETUP_TIME);
        hs.handle_timeout(deadline - Duration::from_millis(1));
        assert!(hs.poll_outcome().is_none(), "{step}");
        hs.handle_timeout(deadline);
        match hs.poll_outcome() {
            Some(Err(HandshakeError::Timeout { step: s, after })) => {
                assert_eq!((s, after), (step, DEFAULT_SETUP_TIME));
            }
            other => panic!("{step}: {other:?}"),
        }
        assert_eq!(hs.poll_timeout(), None);
    }
    // Each step re-arms the deadline.
    let (x, y) = (cfg("x@localhost", "c"), cfg("y@localhost", "c"));
    let (mut i, _) = pair(&x, &y, start);
    let later = start + Duration::from_secs(5);
    i.handle_frame(later, M::Hello(y.hello()));
    assert_eq!(i.poll_timeout(), Some(later + DEFAULT_SETUP_TIME));
}

#[test]
fn peer_closed_names_the_step() {
    let now = Instant::now();
    for (step, mut hs) in at_each_step(now) {
        hs.handle_close();
        match hs.poll_outcome() {
            Some(Err(HandshakeError::PeerClosed { step: s })) => assert_eq!(s, step),
            Some(Err(HandshakeError::CookieMismatch { .. })) => {
                assert_eq!(step, "waiting for the challenge ack")
            }
            other => panic!("{step}: {other:?}"),
        }
    }
}

#[test]
fn garbage_and_truncated_input() {
    let now = Instant::now();
    let y = cfg("y@localhost", "c");
    let mut good = Vec::new();
    encode_frame(
        &M::Hello(cfg("x@localhost", "c").hello()),
        &mut good,
        HANDSHAKE_MAX_FRAME_LEN,
    )
    .unwrap();
    let body = &good[4..];
    for bad in [
        &b"GET / HTTP/1.1\r\n"[..],
        &body[..body.len() - 1],
        &[],
        &[0xFF; 40],
    ] {
        let mut a = Handshake::accept(&y, [2; 32], now);
        a.handle_frame_body(now, bad);
        assert!(matches!(
            a.poll_outcome(),
            Some(Err(HandshakeError::Undecodable { .. }))
        ));
    }
    // A name that breaks the naming rules does not decode either.
    let mut evil = body.to_vec();
    if let Some(at) = evil.iter().position(|&b| b == b'@') {
        evil[at] = b'!';
    }
    let mut a = Handshake::accept(&y, [2; 32], now);
    a.handle_frame_body(now, &evil);
    assert!(matches!(
        a.poll_outcome(),
        Some(Err(HandshakeError::Undecodable { .. }))
    ));
    // A frame over the handshake limit, seen by the framing layer.
    let mut dec = FrameDecoder::new(HANDSHAKE_MAX_FRAME_LEN);
    dec.extend(&u32::MAX.to_be_bytes());
    let mut a = Handshake::accept(&y, [2; 32], now);
    if let Err(e) = dec.decode() {
        a.handle_frame_error(e);
    }
    assert!(matches!(
        a.poll_outcome(),
        Some(Err(HandshakeError::Undecodable {
            source: FrameError::TooLarge { .. }
        }))
    ));
}

#[test]
fn success_through_encoded_frames() {
    let now = Instant::now();
    let (x, y) = (cfg("x@localhost", "c"), cfg("y@localhost", "c"));
    let (mut i, mut a) = pair(&x, &y, now);
    let (mut to_a, mut to_i) = (
        FrameDecoder::new(HANDSHAKE_MAX_FRAME_LEN),
        FrameDecoder::new(HANDSHAKE_MAX_FRAME_LEN),
    );
    for _ in 0..10 {
        let mut bytes = Vec::new();
        while let Some(m) = i.poll_transmit() {
            encode_frame(&m, &mut bytes, HANDSHAKE_MAX_FRAME_LEN).unwrap();
        }
        to_a.extend(&bytes);
        while let Some(body) = to_a.decode().unwrap() {
            a.handle_frame_body(now, body);
        }
        if a.poll_event().is_some() {
            a.handle_registration(now, Existing::None);
        }
        let mut bytes = Vec::new();
        while let Some(m) = a.poll_transmit() {
            encode_frame(&m, &mut bytes, HANDSHAKE_MAX_FRAME_LEN).unwrap();
        }
        to_i.extend(&bytes);
        while let Some(body) = to_i.decode().unwrap() {
            i.handle_frame_body(now, body);
        }
    }
    assert!(i.poll_outcome().unwrap().is_ok());
    assert!(a.poll_outcome().unwrap().is_ok());
}

fn arb_name() -> impl Strategy<Value = NodeName> {
    prop_oneof![
        Just(name("x@localhost")),
        Just(name("y@localhost")),
        Just(name("z@h.example.com")),
    ]
}

fn arb_message() -> impl Strategy<Value = HandshakeMessage> {
    prop_oneof![
        (
            any::<u16>(),
            any::<u16>(),
            any::<u64>(),
            arb_name(),
            any::<u32>(),
            any::<bool>()
        )
            .prop_map(
                |(min_version, max_version, capabilities, name, creation, hidden)| {
                    M::Hello(Hello {
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
        .prop_map(M::Status),
        any::<[u8; 32]>().prop_map(|challenge| M::Challenge { challenge }),
        (any::<[u8; 32]>(), any::<[u8; 32]>())
            .prop_map(|(digest, challenge)| M::ChallengeReply { digest, challenge }),
        any::<[u8; 32]>().prop_map(|digest| M::ChallengeAck { digest }),
    ]
}

#[derive(Debug, Clone)]
enum Input {
    Msg(HandshakeMessage),
    Bytes(Vec<u8>),
    Register(u8),
    Timeout(u16),
    Close,
}

fn arb_input() -> impl Strategy<Value = Input> {
    prop_oneof![
        4 => arb_message().prop_map(Input::Msg),
        2 => proptest::collection::vec(any::<u8>(), 0..80).prop_map(Input::Bytes),
        2 => any::<u8>().prop_map(Input::Register),
        1 => any::<u16>().prop_map(Input::Timeout),
        1 => Just(Input::Close),
    ]
}

/// Runs `script` against a fresh handshake (`y@localhost`, cookie "c"; the initiator dials
/// `x@localhost`) and returns its outcome; a handshake still running at the end is ended by
/// its deadline.
fn run_script(
    initiator: bool,
    script: Vec<Input>,
) -> Result<Result<Established, HandshakeError>, TestCaseError> {
    let start = Instant::now();
    let c = cfg("y@localhost", "c");
    let mut hs = if initiator {
        Handshake::initiate(&c, name("x@localhost"), [1; 32], start)
    } else {
        Handshake::accept(&c, [2; 32], start)
    };
    let mut outcome = None;
    for input in script {
        let now = start + Duration::from_millis(100);
        match input {
            Input::Msg(m) => hs.handle_frame(now, m),
            Input::Bytes(b) => hs.handle_frame_body(now, &b),
            Input::Register(r) => {
                let existing = [
                    Existing::None,
                    Existing::PendingOutgoing,
                    Existing::Established,
                ];
                hs.handle_registration(now, existing[usize::from(r) % 3]);
            }
            Input::Timeout(ms) => {
                hs.handle_timeout(start + Duration::from_millis(u64::from(ms) * 200))
            }
            Input::Close => hs.handle_close(),
        }
        while hs.poll_transmit().is_some() {}
        let _ = hs.poll_event();
        if let Some(o) = hs.poll_outcome() {
            prop_assert!(outcome.is_none(), "two outcomes");
            prop_assert!(hs.is_done());
            outcome = Some(o);
        }
    }
    // Whatever remains, the deadline ends it.
    if outcome.is_none() {
        let deadline = hs.poll_timeout();
        prop_assert!(deadline.is_some());
        hs.handle_timeout(start + Duration::from_secs(3600));
        outcome = hs.poll_outcome();
    }
    outcome.ok_or_else(|| TestCaseError::fail("no outcome after the deadline"))
}

/// The digest that proves cookie "c" in [`run_script`]'s handshake: the initiator's (x's)
/// over y's challenge `[2; 32]` when y accepts, the acceptor's (x's) over y's challenge
/// `[1; 32]` when y initiates.
fn valid_digest(y_initiates: bool) -> Digest {
    let secret = cfg("x@localhost", "c").cookie;
    let (x, y) = (name("x@localhost"), name("y@localhost"));
    if y_initiates {
        digest(&secret, &[1; 32], &y, &x, TAG_ACCEPTOR)
    } else {
        digest(&secret, &[2; 32], &x, &y, TAG_INITIATOR)
    }
}

/// Which digest the last message of a valid-prefix script carries.
#[derive(Debug, Clone)]
enum DigestChoice {
    /// The right one: the script replays a valid exchange.
    Valid,
    /// The right one with one bit flipped.
    Flipped(usize, u8),
    /// Random bytes.
    Random([u8; 32]),
}

/// The peer's side of a valid exchange with [`run_script`]'s handshake, sent as encoded frame
/// bodies (so the decoder runs), with the final digest chosen by `choice`.
fn valid_prefix_script(
    y_initiates: bool,
    choice: &DigestChoice,
    challenge: [u8; 32],
) -> (Vec<Input>, bool) {
    let mut d = valid_digest(y_initiates);
    let valid = match choice {
        DigestChoice::Valid => true,
        DigestChoice::Flipped(at, bit) => {
            d[at % d.len()] ^= 1 << (bit % 8);
            false
        }
        DigestChoice::Random(r) => {
            d = *r;
            d == valid_digest(y_initiates)
        }
    };
    let body = |m: M| Input::Bytes(actor_core::codec::encode(&m).unwrap());
    let hello = body(M::Hello(cfg("x@localhost", "c").hello()));
    let script = if y_initiates {
        vec![
            hello,
            body(M::Status(Status::Ok)),
            body(M::Challenge { challenge }),
            body(M::ChallengeAck { digest: d }),
        ]
    } else {
        vec![
            hello,
            Input::Register(0), // Existing::None
            body(M::ChallengeReply {
                digest: d,
                challenge,
            }),
        ]
    };
    (script, valid)
}

/// Whether the outcome is the digest check's refusal.
fn refused_by_digest(outcome: &Result<Established, HandshakeError>) -> bool {
    matches!(
        outcome,
        Err(HandshakeError::CookieMismatch { .. } | HandshakeError::InvalidChallengeReply { .. })
    )
}

/// Scripts that follow a valid exchange (the peer's hello, status, challenge, registration, as
/// encoded frames) up to the digest, with a wrong digest (one bit flipped, or random), and
/// sometimes a random input inserted: the digest check is reached in most cases, and every
/// script ends in an error unless it is an exact replay of the valid exchange, which must
/// succeed.
///
/// Mutation guarded against: `verify` (the digest check, both ends) returning `true` whatever
/// the digest. Every case that reaches the check then ends `Ok` and this property fails on its
/// first such case (tried by hand: it fails at once, see the commit message). It also fails
/// if the check refuses the valid digest (the replay cases).
#[test]
fn scripts_with_valid_prefixes_reach_the_digest_check_and_fail_without_the_digest() {
    let choice = prop_oneof![
        1 => Just(DigestChoice::Valid),
        4 => (any::<usize>(), any::<u8>()).prop_map(|(a, b)| DigestChoice::Flipped(a, b)),
        3 => any::<[u8; 32]>().prop_map(DigestChoice::Random),
    ];
    let noise = proptest::option::weighted(0.2, (any::<usize>(), arb_input()));
    run_reaching(
        "handshake",
        "the digest check (and refused)",
        256,
        60,
        (any::<bool>(), choice, any::<[u8; 32]>(), noise),
        |(y_initiates, choice, challenge, noise)| {
            let (mut script, valid) = valid_prefix_script(y_initiates, &choice, challenge);
            let clean = noise.is_none();
            if let Some((at, input)) = noise {
                script.insert(at % (script.len() + 1), input);
            }
            let outcome = run_script(y_initiates, script)?;
            if valid && clean {
                prop_assert!(
                    outcome.is_ok(),
                    "the replay of a valid exchange failed: {:?}",
                    outcome
                );
            } else if !valid {
                prop_assert!(
                    outcome.is_err(),
                    "a script without the valid digest succeeded"
                );
            }
            Ok(!valid && refused_by_digest(&outcome))
        },
    );
}

/// The example behind the property above, one per end: the valid exchange with one bit of the
/// digest flipped. A `verify` that always succeeds makes both `Ok`.
#[test]
fn one_flipped_bit_of_the_digest_is_refused_at_both_ends() {
    for y_initiates in [true, false] {
        let (script, valid) =
            valid_prefix_script(y_initiates, &DigestChoice::Flipped(5, 3), [9; 32]);
        assert!(!valid);
        let outcome = run_script(y_initiates, script).unwrap();
        assert!(refused_by_digest(&outcome), "{outcome:?}");
        let (script, valid) = valid_prefix_script(y_initiates, &DigestChoice::Valid, [9; 32]);
        assert!(valid);
        assert!(run_script(y_initiates, script).unwrap().is_ok());
    }
}

proptest! {
    /// Random scripts (random messages, random bytes, registrations, timeouts, closes) end in
    /// an error, never in `Established`: a random script cannot hold a valid digest (its
    /// digests are random 32-byte strings). Accepting `Ok` here, as this property once did,
    /// let a digest check that always succeeds pass.
    #[test]
    fn any_random_script_ends_in_an_error(
        initiator in any::<bool>(),
        script in proptest::collection::vec(arb_input(), 0..24),
    ) {
        let outcome = run_script(initiator, script)?;
        prop_assert!(outcome.is_err(), "a random script established a session");
    }

    #[test]
    fn handshake_messages_round_trip(m in arb_message()) {
        let mut bytes = Vec::new();
        encode_frame(&m, &mut bytes, HANDSHAKE_MAX_FRAME_LEN).unwrap();
        let back: HandshakeMessage = wire::decode_body(&bytes[4..]).unwrap();
        prop_assert_eq!(back, m);
    }
}

#[test]
fn a_replaced_cookie_is_the_one_that_counts() {
    let now = Instant::now();
    let mut x = cfg("x@localhost", "old");
    let y = cfg("y@localhost", "new");
    let (mut i, mut a) = pair(&x, &y, now);
    pump(&mut i, &mut a, now, Existing::None);
    assert!(outcomes(&mut i, &mut a).0.is_err(), "different cookies");
    x.set_cookie("new");
    let (mut i, mut a) = pair(&x, &y, now);
    pump(&mut i, &mut a, now, Existing::None);
    let (oi, oa) = outcomes(&mut i, &mut a);
    assert!(oi.is_ok() && oa.is_ok(), "{oi:?} {oa:?}");
}

#[test]
fn a_socket_error_fails_a_handshake_under_way_and_not_one_that_is_done() {
    let now = Instant::now();
    let (x, y) = (cfg("x@localhost", "c"), cfg("y@localhost", "c"));
    let (mut i, _a) = pair(&x, &y, now);
    i.handle_io_error(std::io::Error::other("reset"));
    assert!(matches!(
        i.poll_outcome(),
        Some(Err(HandshakeError::Io { .. }))
    ));

    let (mut i, mut a) = pair(&x, &y, now);
    pump(&mut i, &mut a, now, Existing::None);
    assert!(i.is_done());
    i.handle_io_error(std::io::Error::other("reset after the end"));
    assert!(
        matches!(i.poll_outcome(), Some(Ok(_))),
        "the outcome stands"
    );
}
