//! The one integration test binary: a module per area.

mod chat;
mod cluster;
mod destinations;
mod process;
mod registry;
