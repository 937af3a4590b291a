//! The one integration test binary: a module per area.

mod chat;
mod destinations;
mod process;
mod registry;
