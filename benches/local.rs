//! Local benchmark (filled in with actor-core).
fn main() {}
