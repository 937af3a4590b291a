//! The one integration test binary: a module per area. `cluster` and `kv` run on a
//! `LocalCluster`, so they need the `testing` feature (`cargo test --all-features`).

mod chat;
#[cfg(feature = "testing")]
mod cluster;
mod destinations;
#[cfg(feature = "testing")]
mod kv;
mod process;
mod registry;
mod strategies;
mod supervision;
mod tasks;
