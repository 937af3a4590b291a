//! The one integration test binary: a module per area. `cluster`, `kv` and `links` run on a
//! `LocalCluster`, so they need the `testing` feature (`cargo test --all-features`).

mod chat;
#[cfg(feature = "testing")]
mod cluster;
mod destinations;
#[cfg(feature = "testing")]
mod kv;
#[cfg(feature = "testing")]
mod links;
mod process;
mod registry;
mod supervision;
mod tasks;
