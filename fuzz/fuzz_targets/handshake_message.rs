//! Fuzz target `handshake_message`: the body is `nodus_fuzz::handshake_message` (see its docs), shared with the
//! `cargo test` replay of the corpus.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| nodus_fuzz::handshake_message(data));
