//! The one integration test binary: a module per area.

mod chat;
mod cluster;
mod destinations;
mod kv;
mod process;
mod registry;
