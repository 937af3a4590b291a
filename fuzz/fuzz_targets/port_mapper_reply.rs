//! Fuzz target `port_mapper_reply`: the body is `nodus_fuzz::port_mapper_reply` (see its docs), shared with the
//! `cargo test` replay of the corpus.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| nodus_fuzz::port_mapper_reply(data));
