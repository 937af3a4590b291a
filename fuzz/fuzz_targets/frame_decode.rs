//! Any bytes, cut in two anywhere, give frames or an error from the decoder, never a panic.
#![no_main]

use actor_remote::wire::{decode_body, message::HandshakeMessage, FrameDecoder};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let cut = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let mut dec = FrameDecoder::new(1 << 16);
    for piece in [&data[..cut], &data[cut..]] {
        dec.extend(piece);
        while let Ok(Some(body)) = dec.decode() {
            let _ = decode_body::<HandshakeMessage>(body);
        }
    }
});
