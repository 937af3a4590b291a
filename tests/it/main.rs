//! The one integration test binary: a module per area. `cluster`, `global`, `horde`, `kv`, `links`,
//! `presence` and `strategies` run on a `LocalCluster`, so they need the `testing` feature
//! (`cargo test --all-features`).

#[cfg(feature = "testing")]
mod backpressure;
mod chat;
#[cfg(feature = "testing")]
mod cluster;
mod destinations;
mod genserver;
#[cfg(feature = "testing")]
mod global;
#[cfg(feature = "testing")]
mod horde;
#[cfg(feature = "testing")]
mod kv;
mod lanes;
#[cfg(feature = "testing")]
mod links;
#[cfg(feature = "testing")]
mod partial_mesh;
#[cfg(feature = "testing")]
mod presence;
mod process;
mod registry;
#[cfg(feature = "testing")]
mod sim;
#[cfg(feature = "testing")]
mod strategies;
mod supervision;
mod tasks;
#[cfg(feature = "tls")]
mod tls;
#[cfg(feature = "testing")]
mod trace;
