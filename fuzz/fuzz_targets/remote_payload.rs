//! Fuzz target `remote_payload`: the body is `nodus_fuzz::remote_payload` (see its docs), shared with the
//! `cargo test` replay of the corpus.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| nodus_fuzz::remote_payload(data));
