//! The one integration test binary: a module per area. `cluster`, `kv`, `links` and `presence` run on a
//! `LocalCluster`, so they need the `testing` feature (`cargo test --all-features`).

#[cfg(feature = "testing")]
mod backpressure;
mod chat;
#[cfg(feature = "testing")]
mod cluster;
mod destinations;
mod genserver;
#[cfg(feature = "testing")]
mod kv;
#[cfg(feature = "testing")]
mod links;
#[cfg(feature = "testing")]
mod presence;
mod process;
mod registry;
mod strategies;
mod supervision;
mod tasks;
