//! Sets `cfg(nodus_has_epmd)` when an `epmd` executable is on `PATH`, so the tests that need
//! the real epmd run where it is installed and are reported as ignored elsewhere.

use std::{env, path::Path};

fn main() {
    println!("cargo::rustc-check-cfg=cfg(nodus_has_epmd)");
    println!("cargo:rerun-if-env-changed=PATH");
    println!("cargo:rerun-if-changed=build.rs");
    let found = env::var_os("PATH").and_then(|paths| {
        env::split_paths(&paths)
            .map(|dir| dir.join("epmd"))
            .find(|path| is_executable(path))
    });
    if let Some(epmd) = found {
        // Notice epmd being uninstalled too. Installing it after a build changes nothing
        // cargo watches; `touch actor-remote/build.rs` then makes the tagged tests run.
        println!("cargo:rerun-if-changed={}", epmd.display());
        println!("cargo:rustc-cfg=nodus_has_epmd");
    }
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file() || path.with_extension("exe").is_file()
}
