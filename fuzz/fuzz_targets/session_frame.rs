//! Fuzz target `session_frame`: the body is `nodus_fuzz::session_frame` (see its docs), shared with the
//! `cargo test` replay of the corpus.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| nodus_fuzz::session_frame(data));
