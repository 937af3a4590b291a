//! Derive and attribute macros for nodus.
//!
//! Nothing is exported yet: the actor derive, `#[remote_module]` and the tag-gated test
//! attribute are planned (see the project's issues). This crate exists now so that the
//! workspace layout and the `nodus` facade do not change when they land.
