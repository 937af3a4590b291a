//! Fuzz target `frame_decode`: the body is `nodus_fuzz::frame_decode` (see its docs), shared with the
//! `cargo test` replay of the corpus.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| nodus_fuzz::frame_decode(data));
