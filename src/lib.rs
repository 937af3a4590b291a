//! nodus: Erlang/OTP-style distribution for Rust actors.
//!
//! This facade re-exports the three crates of the workspace.

pub use actor_core as core;
pub use actor_macros as macros;
pub use actor_remote as remote;
