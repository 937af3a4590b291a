//! Fuzz target `handshake_script`: the body is `nodus_fuzz::handshake_script` (see its docs), shared with the
//! `cargo test` replay of the corpus.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| nodus_fuzz::handshake_script(data));
