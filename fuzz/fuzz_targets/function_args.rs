//! Fuzz target `function_args`: the body is `nodus_fuzz::function_args` (see its docs), shared with the
//! `cargo test` replay of the corpus.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| nodus_fuzz::function_args(data));
