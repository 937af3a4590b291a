//! What the scale benches share: their environment knobs, the resident set and open file
//! descriptors of this process, and the configuration of their nodes.
//!
//! Included with `#[path = "support/scale_common.rs"] mod scale_common;` by
//! `benches/scale.rs` and `benches/scale_tcp.rs`; not every bench uses every item.
#![allow(dead_code)]

use std::time::Duration;

use nodus::remote::{Cookie, NodeConfig};

/// The environment variable `key` as a number, or `default`.
pub fn env_usize(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The resident set size of this process, in KiB (`/proc/self/status`, `VmRSS`; 0 where
/// there is no `/proc`).
pub fn rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The file descriptors this process has open (`/proc/self/fd`; 0 where there is no
/// `/proc`).
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|dir| dir.count())
        .unwrap_or(0)
}

/// A bench node called `name`: the bench's cookie and a generous handshake timeout.
pub fn config(name: &str) -> NodeConfig {
    NodeConfig::sname(name)
        .cookie(Cookie::new("scale").expect("a valid cookie"))
        // Generous: a thousand handshakes at once on two cores queue behind each other.
        .handshake_timeout(Duration::from_secs(60))
}
