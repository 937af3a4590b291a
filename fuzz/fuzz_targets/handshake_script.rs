//! Any bytes, read as a stream of frames sent to either end of a handshake, end it in
//! `Established` or an error, never a panic.
#![no_main]

use actor_core::NodeName;
use actor_remote::{
    proto::{Existing, Handshake, HandshakeConfig},
    wire::{FrameDecoder, HANDSHAKE_MAX_FRAME_LEN},
};
use std::time::Duration;
use tokio::time::Instant;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(name) = NodeName::parse("y@localhost") else {
        return;
    };
    let cfg = HandshakeConfig::new(name, "cookie");
    let now = Instant::now();
    for initiator in [false, true] {
        let mut hs = match (initiator, NodeName::parse("x@localhost")) {
            (true, Ok(peer)) => Handshake::initiate(&cfg, peer, [1; 32], now),
            _ => Handshake::accept(&cfg, [2; 32], now),
        };
        let mut dec = FrameDecoder::new(HANDSHAKE_MAX_FRAME_LEN);
        dec.extend(data);
        let mut outcome = None;
        while let Ok(Some(body)) = dec.decode() {
            hs.handle_frame_body(now, body);
            while hs.poll_transmit().is_some() {}
            if hs.poll_event().is_some() {
                hs.handle_registration(now, Existing::None);
            }
            outcome = outcome.or(hs.poll_outcome());
        }
        hs.handle_timeout(now + Duration::from_secs(3600));
        assert!(outcome.or(hs.poll_outcome()).is_some());
    }
});
