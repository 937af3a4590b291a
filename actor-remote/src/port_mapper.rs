//! The port mapper: an epmd-compatible client and an embedded epmd server.
//!
//! So far only the wire protocol, [`proto`].

pub mod proto;

#[cfg(test)]
mod tests;
