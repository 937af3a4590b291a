//! Fuzz target `port_mapper_request`: the body is `nodus_fuzz::port_mapper_request` (see its docs), shared with the
//! `cargo test` replay of the corpus.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| nodus_fuzz::port_mapper_request(data));
