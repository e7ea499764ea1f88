//! A full disk for one command: under `ulimit -f` (RLIMIT_FSIZE) a write past the limit fails
//! (EFBIG, "File too large") as a write to a full disk fails (ENOSPC), for that process alone
//! and without root. SIGXFSZ, which would end the process at that write, is ignored in the
//! shell first: an ignored signal stays ignored across `exec`.

#![allow(dead_code)] // each test binary uses its own part

use std::path::Path;
use std::process::{Command, Output};

/// The most a file written under [`haltpoll_on_a_full_disk`] can hold, in bytes (`ulimit -f 1`:
/// one block of 512 bytes, or of 1024 in a shell that counts in KiB).
pub const LIMIT_BYTES: u64 = 1024;

/// Runs `haltpoll args...` with files limited to [`LIMIT_BYTES`]; pipes (stdout, stderr) are
/// not files and take any amount.
pub fn haltpoll_on_a_full_disk(args: &[&std::ffi::OsStr]) -> Output {
    let bin = assert_cmd::cargo::cargo_bin("haltpoll");
    Command::new("sh")
        .arg("-c")
        .arg(r#"trap '' XFSZ && ulimit -f 1 && exec "$0" "$@""#)
        .arg(&bin)
        .args(args)
        .output()
        .unwrap()
}

/// The one file named like `target` plus `.haltpoll-PID.partial` beside it: what was written
/// before the failure.
pub fn partial_beside(target: &Path) -> std::path::PathBuf {
    let name = target.file_name().unwrap().to_string_lossy().into_owned();
    let mut found = std::fs::read_dir(target.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with(&format!("{name}.haltpoll-")) && n.ends_with(".partial")
        })
        .collect::<Vec<_>>();
    assert_eq!(found.len(), 1, "one partial file beside {}: {found:?}", target.display());
    found.pop().unwrap()
}
