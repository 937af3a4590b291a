use super::*;

const T: Duration = Duration::from_secs(60);

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn idle_session_ticks_every_interval_and_peer_ticks_keep_it_up() {
    let start = Instant::now();
    let mut t = Ticker::new(start, T, 4);
    assert_eq!(t.interval(), secs(15));
    for k in 1..=20u32 {
        let now = start + secs(15) * k;
        assert_eq!(t.poll_timeout(), now);
        // The peer's tick arrives just before ours is due.
        t.handle_received(now - Duration::from_millis(1));
        assert_eq!(t.handle_timeout(now), Some(TickAction::SendTick));
    }
}

#[test]
fn silent_peer_is_down_after_tick_time() {
    let start = Instant::now();
    let mut t = Ticker::new(start, T, 4);
    let mut now;
    let mut ticks = 0;
    loop {
        now = t.poll_timeout();
        match t.handle_timeout(now) {
            Some(TickAction::SendTick) => ticks += 1,
            Some(TickAction::PeerDown) => break,
            None => panic!("a timer fired for nothing at {:?}", now - start),
        }
    }
    assert_eq!(now - start, T);
    assert_eq!(ticks, 3);
    assert_eq!(t.handle_timeout(now), Some(TickAction::PeerDown));
}

#[test]
fn bulk_inbound_traffic_prevents_a_false_timeout() {
    let start = Instant::now();
    let mut t = Ticker::new(start, T, 4);
    // We only receive (a long transfer): bytes arrive every second for ten minutes, while our
    // own side is idle and only ticks.
    let mut sent_ticks = 0;
    for s in 1..=600 {
        let now = start + secs(s);
        t.handle_received(now);
        while t.poll_timeout() <= now {
            match t.handle_timeout(t.poll_timeout()) {
                Some(TickAction::SendTick) => sent_ticks += 1,
                other => panic!("at {s}s: {other:?}"),
            }
        }
    }
    assert_eq!(sent_ticks, 40);
}

#[test]
fn outbound_traffic_replaces_ticks_but_not_liveness() {
    let start = Instant::now();
    let mut t = Ticker::new(start, T, 4);
    // We send all the time, the peer says nothing: no ticks needed, but the peer is down.
    for s in 1..60 {
        t.handle_sent(start + secs(s));
        assert_eq!(t.handle_timeout(start + secs(s)), None);
    }
    assert_eq!(t.poll_timeout(), start + T);
    assert_eq!(t.handle_timeout(start + T), Some(TickAction::PeerDown));
}

#[test]
fn early_or_stale_calls_do_nothing() {
    let start = Instant::now();
    let mut t = Ticker::new(start, T, 4);
    assert_eq!(t.handle_timeout(start + secs(14)), None);
    t.handle_received(start + secs(30));
    t.handle_received(start + secs(10)); // older than what was seen: ignored
    assert_eq!(
        t.handle_timeout(start + secs(89)),
        Some(TickAction::SendTick)
    );
    assert_eq!(
        t.handle_timeout(start + secs(90)),
        Some(TickAction::PeerDown)
    );
}

#[test]
fn zero_intensity_is_one() {
    let start = Instant::now();
    let t = Ticker::new(start, secs(4), 0);
    assert_eq!(t.interval(), secs(4));
    assert_eq!(t.tick_time(), secs(4));
}

#[test]
fn beats_tick_an_idle_session_at_every_beat_and_not_a_busy_one() {
    let mut t = TickBeats::new(4);
    for _ in 0..20 {
        assert_eq!(t.handle_beat(true), Some(TickAction::SendTick));
    }
    for _ in 0..20 {
        t.handle_sent();
        assert_eq!(t.handle_beat(true), None);
    }
}

#[test]
fn beats_declare_a_peer_down_after_intensity_silent_beats_in_a_row_and_stay_down() {
    let mut t = TickBeats::new(4);
    // Silence broken before the fourth beat keeps the peer up.
    for _ in 0..5 {
        for _ in 0..3 {
            assert_ne!(t.handle_beat(false), Some(TickAction::PeerDown));
        }
        assert_ne!(t.handle_beat(true), Some(TickAction::PeerDown));
    }
    for _ in 0..3 {
        assert_ne!(t.handle_beat(false), Some(TickAction::PeerDown));
    }
    assert_eq!(t.handle_beat(false), Some(TickAction::PeerDown));
    // Down is final, whatever arrives after.
    assert_eq!(t.handle_beat(true), Some(TickAction::PeerDown));
    t.handle_sent();
    assert_eq!(t.handle_beat(true), Some(TickAction::PeerDown));
}

#[test]
fn beats_with_intensity_zero_act_as_one() {
    let mut t = TickBeats::new(0);
    assert_eq!(t.handle_beat(true), Some(TickAction::SendTick));
    assert_eq!(t.handle_beat(false), Some(TickAction::PeerDown));
}
