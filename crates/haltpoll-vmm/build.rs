//! Builds the guest image as part of the normal build, so that `cargo run` or `cargo test` is
//! all a newcomer types: a nested `cargo build` of haltpoll-guest for `x86_64-unknown-none`
//! (release, in its own target directory under OUT_DIR so it never waits on the outer build's
//! lock), copied to `OUT_DIR/haltpoll-guest.elf`, which `src/loader.rs` embeds.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const GUEST_TARGET: &str = "x86_64-unknown-none";

fn main() {
    let linux_x86 = env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("x86_64");
    if !linux_x86 {
        // The VMM only exists on x86_64 Linux (KVM); nothing to embed elsewhere.
        return;
    }
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let workspace = manifest_dir.join("../..");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let target_dir = out_dir.join("guest-target");
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());

    let mut build = Command::new(cargo);
    build
        .current_dir(&workspace)
        .args(["build", "--locked", "--release", "--package", "haltpoll-guest", "--bin", "haltpoll-guest"])
        .args(["--features", "bare-metal", "--target", GUEST_TARGET, "--target-dir"])
        .arg(&target_dir);
    // The outer build's settings are for the host: its flags, its profile and target directory,
    // clippy's compiler wrapper. Keep only where the registry is (CARGO_HOME), the network
    // settings, and the jobserver (CARGO_MAKEFLAGS) so the two builds share the machine's cores.
    for (key, _) in env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let keep = matches!(key, "CARGO_HOME" | "CARGO_MAKEFLAGS") || key.starts_with("CARGO_NET_");
        let outer = key.starts_with("CARGO_") || key.starts_with("__CARGO") || key.starts_with("CLIPPY");
        if (outer && !keep) || matches!(key, "RUSTFLAGS" | "RUSTDOCFLAGS" | "RUSTC_WRAPPER" | "RUSTC_WORKSPACE_WRAPPER")
        {
            build.env_remove(key);
        }
    }
    let status = build.status().expect("cannot run cargo to build the guest image");
    assert!(status.success(), "building the guest image (haltpoll-guest for {GUEST_TARGET}) failed: see above");

    let built = target_dir.join(GUEST_TARGET).join("release");
    fs::copy(built.join("haltpoll-guest"), out_dir.join("haltpoll-guest.elf")).expect("copy the guest image");

    // Rebuild the image whenever one of its sources changes: cargo's dep-info for the guest
    // lists every local source file it was built from (the guest crate and the core crate).
    let guest_dir = workspace.join("crates/haltpoll-guest");
    for path in [guest_dir.join("Cargo.toml"), guest_dir.join("link.ld"), guest_dir.join("build.rs")] {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    println!("cargo:rerun-if-changed={}", workspace.join("Cargo.lock").display());
    for source in dep_info_sources(&built.join("haltpoll-guest.d")) {
        println!("cargo:rerun-if-changed={}", source.display());
    }
}

/// The prerequisites listed in a Makefile-style dep-info file (`target: a b c`, spaces in
/// names escaped with a backslash).
fn dep_info_sources(path: &Path) -> Vec<PathBuf> {
    let text = fs::read_to_string(path).expect("the guest build writes a dep-info file");
    let Some((_, deps)) = text.lines().next().and_then(|line| line.split_once(": ")) else {
        return Vec::new();
    };
    let mut sources = Vec::new();
    let mut current = String::new();
    let mut chars = deps.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => current.extend(chars.next()),
            ' ' => {
                if !current.is_empty() {
                    sources.push(PathBuf::from(std::mem::take(&mut current)));
                }
            }
            _ => current.push(c),
        }
    }
    if !current.is_empty() {
        sources.push(PathBuf::from(current));
    }
    sources
}
