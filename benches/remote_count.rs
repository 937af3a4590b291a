//! `benches/remote.rs` with a counting global allocator, for its counting mode
//! (`NODUS_BENCH_COUNT`; see that file's docs): allocations per cast and per call, which the
//! machine's load does not move. A bench of its own so that the timed figures of
//! `cargo bench --bench remote` do not pay for the counting.
//!
//! ```sh
//! NODUS_BENCH_COUNT=20000 cargo bench --bench remote_count
//! ```

use std::alloc::System;

use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

#[path = "remote.rs"]
mod remote;

fn main() {
    let _ = remote::ALLOCS.set(|| {
        let stats = GLOBAL.stats();
        (stats.allocations + stats.reallocations) as u64
    });
    remote::main();
}
