//! The one integration test binary: a module per area.

mod destinations;
mod process;
mod registry;
