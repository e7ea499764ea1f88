//! Builds the guest image as part of the normal build, so that `cargo run` or `cargo test` is
//! all a newcomer types: a nested `cargo build` of haltpoll-guest for `x86_64-unknown-none`
//! (release, in its own target directory under OUT_DIR so it never waits on the outer build's
//! lock), copied to `OUT_DIR/haltpoll-guest.elf`, which `src/loader.rs` embeds.
//!
//! - The guest target: when the toolchain lacks the standard library for `x86_64-unknown-none`,
//!   this script adds it with `rustup target add` for the toolchain that runs the build, and says
//!   so in one warning; without rustup it stops with one line that says what to install.
//! - The guest's sources: haltpoll-guest (a normal dependency, `links = "haltpoll-guest"`) tells
//!   where they are through `DEP_HALTPOLL_GUEST_ROOT`. Inside a workspace (this repository, a git
//!   dependency) the nested build runs in that workspace, with its `Cargo.lock` (`--locked`). A
//!   packaged guest (from a registry, a vendor directory or an extracted `.crate`) is copied to
//!   OUT_DIR and built there as a package of its own, with the `Cargo.lock` it was packaged with,
//!   so nothing is ever written into the source directory.
//!
//! Every failure ends the build with one line that says what went wrong, never a panic.

use std::env;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const GUEST_TARGET: &str = "x86_64-unknown-none";

/// For tests of this script only: the `rustup` to run (a path that does not exist plays a
/// machine without rustup).
const RUSTUP_OVERRIDE: &str = "HALTPOLL_RUSTUP";

fn main() {
    let linux_x86 = env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("x86_64");
    if !linux_x86 {
        // The VMM only exists on x86_64 Linux (KVM); nothing to embed elsewhere.
        return;
    }
    let out_dir = PathBuf::from(required_env("OUT_DIR"));
    let image = out_dir.join("haltpoll-guest.elf");
    println!("cargo::rerun-if-env-changed={RUSTUP_OVERRIDE}");
    println!("cargo::rerun-if-env-changed=DOCS_RS");
    if env::var_os("DOCS_RS").is_some() {
        // docs.rs documents the VMM without a guest target: an empty image keeps `include_bytes!`
        // happy, and nothing runs it.
        write(&image, b"");
        return;
    }

    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    ensure_guest_target(&rustc);

    let Some(guest) = env::var_os("DEP_HALTPOLL_GUEST_ROOT").map(PathBuf::from) else {
        fail(format_args!(
            "haltpoll-guest did not say where its sources are (DEP_HALTPOLL_GUEST_ROOT is unset): \
             haltpoll-vmm needs the haltpoll-guest of the same version"
        ))
    };
    let guest = Guest::locate(guest, &out_dir);
    let target_dir = out_dir.join("guest-target");
    build_guest(&guest, &target_dir);

    let built = target_dir.join(GUEST_TARGET).join("release");
    if let Err(e) = fs::copy(built.join("haltpoll-guest"), &image) {
        fail(format_args!("cannot copy the guest image from {} to {}: {e}", built.display(), image.display()))
    }

    // Rebuild the image whenever one of its sources changes: cargo's dep-info for the guest
    // lists every local source file it was built from (the guest crate and the core crate).
    for path in guest.watched() {
        println!("cargo::rerun-if-changed={}", path.display());
    }
    let sources: Vec<PathBuf> =
        dep_info_sources(&built.join("haltpoll-guest.d")).iter().map(|source| guest.original(source)).collect();
    for path in manifests_of(&sources).iter().chain(&sources) {
        println!("cargo::rerun-if-changed={}", path.display());
    }
}

/// Where the guest is built from.
struct Guest {
    /// The sources haltpoll-guest reported.
    root: PathBuf,
    /// The directory the nested build compiles: `root` in a workspace, a copy for a package.
    build_root: PathBuf,
    /// Files beyond the package's own that decide the image (the lock file, the workspace
    /// manifest).
    watched: Vec<PathBuf>,
    /// In a workspace: build with `--locked`.
    in_workspace: bool,
}

impl Guest {
    /// A packaged crate carries the manifest it was packaged from as `Cargo.toml.orig`; a guest
    /// without one is a member of a workspace (this repository, or a git checkout of it).
    fn locate(root: PathBuf, out_dir: &Path) -> Guest {
        if !root.join("Cargo.toml").is_file() {
            fail(format_args!("haltpoll-guest's sources are not at {} (no Cargo.toml there)", root.display()))
        }
        if !root.join("Cargo.toml.orig").is_file() {
            let workspace = workspace_root(&root);
            let lock = Some(workspace.join("Cargo.lock")).filter(|lock| lock.is_file());
            let mut watched = vec![workspace.join("Cargo.toml")];
            watched.extend(lock.clone());
            return Guest { build_root: root.clone(), root, in_workspace: lock.is_some(), watched };
        }
        let copy = out_dir.join("guest-src");
        if let Err(e) = copy_package(&root, &copy) {
            fail(format_args!("cannot copy the guest's sources from {} to {}: {e}", root.display(), copy.display()))
        }
        // Its own workspace: a copy under a target directory must not join the enclosing project's.
        let manifest = copy.join("Cargo.toml");
        let text = fs::read_to_string(&manifest).unwrap_or_default();
        if !text.lines().any(|line| line.trim() == "[workspace]") {
            write(&manifest, format!("{text}\n[workspace]\n").as_bytes());
        }
        let watched = Some(root.join("Cargo.lock")).filter(|lock| lock.is_file()).into_iter().collect();
        Guest { root, build_root: copy, watched, in_workspace: false }
    }

    /// The files outside cargo's dep-info that decide the image: the guest's manifest, linker
    /// script and build script, the lock file, and (in a workspace) the workspace manifest with
    /// the profile the image is built with. The manifests of the crates it compiles come from
    /// the dep-info ([`manifests_of`]).
    fn watched(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = ["Cargo.toml", "link.ld", "build.rs"].iter().map(|f| self.root.join(f)).collect();
        files.extend(self.watched.iter().cloned());
        files
    }

    /// A source the nested build read, as the file it was copied from.
    fn original(&self, source: &Path) -> PathBuf {
        match source.strip_prefix(&self.build_root) {
            Ok(rel) if self.build_root != self.root => self.root.join(rel),
            _ => source.to_path_buf(),
        }
    }
}

/// Runs the nested `cargo build` of the guest image.
fn build_guest(guest: &Guest, target_dir: &Path) {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(&cargo);
    // The guest's own directory: cargo finds its workspace (and the configuration that the
    // outer build saw, for a guest inside it) from there.
    build.current_dir(&guest.root).arg("build");
    if guest.in_workspace {
        build.arg("--locked");
    }
    build
        .arg("--manifest-path")
        .arg(guest.build_root.join("Cargo.toml"))
        .args(["--release", "--package", "haltpoll-guest", "--bin", "haltpoll-guest"])
        .args(["--features", "bare-metal", "--target", GUEST_TARGET])
        // Flags from the user's configuration are for the host too (`-C target-cpu=native`, say).
        .args(["--config", "build.rustflags=[]", "--target-dir"])
        .arg(target_dir);
    // The outer build's settings are for the host: its flags, its profile and target directory,
    // clippy's compiler wrapper. Keep only where the registry is (CARGO_HOME), the network
    // settings, and the jobserver (CARGO_MAKEFLAGS) so the two builds share the machine's cores.
    // RUSTC stays: the nested build uses the compiler whose sysroot was checked.
    for (key, _) in env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let keep = matches!(key, "CARGO_HOME" | "CARGO_MAKEFLAGS") || key.starts_with("CARGO_NET_");
        let outer = key.starts_with("CARGO_") || key.starts_with("__CARGO") || key.starts_with("CLIPPY");
        if (outer && !keep) || matches!(key, "RUSTFLAGS" | "RUSTDOCFLAGS" | "RUSTC_WRAPPER" | "RUSTC_WORKSPACE_WRAPPER")
        {
            build.env_remove(key);
        }
    }
    match build.status() {
        Ok(status) if status.success() => {}
        Ok(status) => {
            // cargo shows this script's stderr on failure: the nested build's errors, then this.
            eprintln!(
                "error: building the guest image (haltpoll-guest for {GUEST_TARGET}) failed ({status}): see above"
            );
            std::process::exit(1)
        }
        Err(e) => fail(format_args!("cannot run {} to build the guest image: {e}", Path::new(&cargo).display())),
    }
}

/// Makes sure `rustc` has the guest target's standard library (`core`), adding it through
/// rustup when it is missing.
fn ensure_guest_target(rustc: &OsString) {
    if has_core(rustc) {
        return;
    }
    let Some(toolchain) = rustup_toolchain(rustc) else {
        fail(format_args!(
            "the guest image needs the {GUEST_TARGET} target, which the Rust at {} lacks and which only rustup \
             can add: install the rust-std component for {GUEST_TARGET} of that Rust",
            sysroot(rustc).display()
        ))
    };
    let command = format!("rustup target add {GUEST_TARGET} --toolchain {toolchain}");
    let rustup = env::var_os(RUSTUP_OVERRIDE).unwrap_or_else(|| "rustup".into());
    let add = || {
        Command::new(&rustup)
            .args(["target", "add", GUEST_TARGET, "--toolchain", &toolchain])
            .stdin(Stdio::null())
            .output()
    };
    // A download can fail for a moment (seen once in CI: rustup's download panicked), so a
    // failed add is tried once more before the build gives up.
    let added = match add() {
        Ok(output) if !output.status.success() && !has_core(rustc) => add(),
        first => first,
    };
    match added {
        Ok(output) if output.status.success() => {}
        // Another build that found the target missing at the same moment may have added it.
        Ok(_) if has_core(rustc) => return,
        Ok(output) => {
            let stderr = String::from_utf8_lossy(&output.stderr);
            // rustup's own `error:` line says why; a panic's backtrace would end with a frame.
            let mut lines = stderr.lines().map(str::trim).filter(|line| !line.is_empty());
            let why = stderr
                .lines()
                .map(str::trim)
                .find(|line| line.starts_with("error") || line.contains("panicked"))
                .or_else(|| lines.next_back())
                .unwrap_or("no message");
            fail(format_args!(
                "the guest image needs the {GUEST_TARGET} target and `{command}` failed ({why}): run it yourself"
            ))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => fail(format_args!(
            "the guest image needs the {GUEST_TARGET} target, which toolchain {toolchain} lacks, and there is \
             no rustup to add it: run `{command}`"
        )),
        Err(e) => fail(format_args!("the guest image needs the {GUEST_TARGET} target; cannot run `{command}`: {e}")),
    }
    if !has_core(rustc) {
        fail(format_args!(
            "`{command}` succeeded but {} still has no `core` for {GUEST_TARGET}",
            Path::new(rustc).display()
        ))
    }
    println!(
        "cargo::warning=added the {GUEST_TARGET} target (the guest image's) to toolchain {toolchain}: `{command}`"
    );
}

/// Whether `rustc` finds `core` for the guest target.
fn has_core(rustc: &OsString) -> bool {
    let libdir = rustc_print(rustc, &["--print", "target-libdir", "--target", GUEST_TARGET]);
    let Ok(entries) = fs::read_dir(libdir.trim()) else { return false };
    entries.flatten().any(|entry| {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        name.starts_with("libcore-") && name.ends_with(".rlib")
    })
}

fn sysroot(rustc: &OsString) -> PathBuf {
    PathBuf::from(rustc_print(rustc, &["--print", "sysroot"]).trim())
}

/// The rustup toolchain `rustc` belongs to, if rustup manages it (its sysroot is a rustup
/// toolchain directory): the one rustup runs this build with, or else that directory's name.
fn rustup_toolchain(rustc: &OsString) -> Option<String> {
    let sysroot = sysroot(rustc);
    let in_rustup = sysroot.parent().and_then(Path::file_name).is_some_and(|dir| dir == "toolchains");
    if !in_rustup {
        return None;
    }
    env::var("RUSTUP_TOOLCHAIN")
        .ok()
        .filter(|t| !t.is_empty())
        .or_else(|| sysroot.file_name()?.to_str().map(str::to_owned))
}

/// The root of the workspace the guest at `root` belongs to (its own directory when it belongs
/// to none), as cargo decides it.
fn workspace_root(root: &Path) -> PathBuf {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let located = Command::new(&cargo)
        .current_dir(root)
        .args(["locate-project", "--workspace", "--message-format", "plain"])
        .stderr(Stdio::inherit())
        .output();
    match located {
        Ok(output) if output.status.success() => {
            let manifest = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
            manifest.parent().map_or_else(|| root.to_path_buf(), Path::to_path_buf)
        }
        Ok(output) => fail(format_args!("cannot find the workspace of {} ({})", root.display(), output.status)),
        Err(e) => fail(format_args!("cannot run {} to find the guest's workspace: {e}", Path::new(&cargo).display())),
    }
}

/// The manifest of each crate `sources` belong to (the nearest `Cargo.toml` above each): a
/// change of features, dependencies or edition there changes the image too.
fn manifests_of(sources: &[PathBuf]) -> Vec<PathBuf> {
    let mut manifests: Vec<PathBuf> = sources
        .iter()
        .filter_map(|source| source.ancestors().skip(1).map(|dir| dir.join("Cargo.toml")).find(|m| m.is_file()))
        .collect();
    manifests.sort();
    manifests.dedup();
    manifests
}

fn rustc_print(rustc: &OsString, args: &[&str]) -> String {
    match Command::new(rustc).args(args).stderr(Stdio::inherit()).output() {
        Ok(output) if output.status.success() => String::from_utf8_lossy(&output.stdout).into_owned(),
        Ok(output) => {
            fail(format_args!("`{} {}` failed ({})", Path::new(rustc).display(), args.join(" "), output.status))
        }
        Err(e) => fail(format_args!("cannot run {}: {e}", Path::new(rustc).display())),
    }
}

/// Copies the package at `from` to `to` (replacing it), without any build output in it.
fn copy_package(from: &Path, to: &Path) -> io::Result<()> {
    if to.exists() {
        fs::remove_dir_all(to)?;
    }
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let (source, dest) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type()?.is_dir() {
            if entry.file_name() != "target" {
                copy_package(&source, &dest)?;
            }
        } else {
            fs::copy(&source, &dest)?;
        }
    }
    Ok(())
}

fn write(path: &Path, contents: &[u8]) {
    if let Err(e) = fs::write(path, contents) {
        fail(format_args!("cannot write {}: {e}", path.display()))
    }
}

fn required_env(key: &str) -> OsString {
    env::var_os(key).unwrap_or_else(|| fail(format_args!("{key} is not set: run this build script through cargo")))
}

/// Ends the build with one line (cargo prints it as `error: haltpoll-vmm@…: <message>`).
fn fail(message: std::fmt::Arguments) -> ! {
    println!("cargo::error={message}");
    std::process::exit(0)
}

/// The prerequisites listed in a Makefile-style dep-info file (`target: a b c`, spaces in
/// names escaped with a backslash).
fn dep_info_sources(path: &Path) -> Vec<PathBuf> {
    let Ok(text) = fs::read_to_string(path) else {
        fail(format_args!("the guest build wrote no dep-info file at {}", path.display()))
    };
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
