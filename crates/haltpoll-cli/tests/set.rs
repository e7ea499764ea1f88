//! `haltpoll set` on fixture sysfs trees. Never the real /sys: every command here has
//! `--sysfs-root` pointing at a temporary directory.

mod common;

use std::fs;
use std::path::Path;

use assert_cmd::Command;
use predicates::prelude::*;

fn set(root: &Path) -> Command {
    let mut cmd = Command::cargo_bin("haltpoll").unwrap();
    cmd.arg("set").arg("--sysfs-root").arg(root);
    cmd
}

fn param(root: &Path, name: &str) -> String {
    fs::read_to_string(root.join("module/haltpoll/parameters").join(name)).unwrap()
}

#[test]
fn writes_the_parameters() {
    let dir = tempfile::tempdir().unwrap();
    common::haltpoll_guest(dir.path());
    set(dir.path())
        .args(["guest_halt_poll_ns=400us", "grow-start=100000", "allow_shrink=Y"])
        .assert()
        .success()
        .stdout("guest_halt_poll_ns: 0 -> 400000\nguest_halt_poll_grow_start: 50000 -> 100000\nguest_halt_poll_allow_shrink: already Y\n");
    assert_eq!(param(dir.path(), "guest_halt_poll_ns"), "400000\n");
    assert_eq!(param(dir.path(), "guest_halt_poll_grow_start"), "100000\n");
    assert_eq!(param(dir.path(), "guest_halt_poll_grow"), "2\n");
    set(dir.path()).args(["allow_shrink=off"]).assert().success();
    assert_eq!(param(dir.path(), "guest_halt_poll_allow_shrink"), "N\n");
}

#[test]
fn a_dry_run_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    common::haltpoll_guest(dir.path());
    set(dir.path())
        .args(["--dry-run", "ns=200000", "shrink=2"])
        .assert()
        .success()
        .stdout(predicate::str::is_match(r"^would write 200000 to \S+/module/haltpoll/parameters/guest_halt_poll_ns \(now 0\)\nguest_halt_poll_shrink is already 2\n$").unwrap());
    assert_eq!(param(dir.path(), "guest_halt_poll_ns"), "0\n");
}

#[test]
fn an_invalid_set_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    common::haltpoll_guest(dir.path());
    // The first assignment is fine, the second makes the set unusable: neither is written.
    set(dir.path())
        .args(["ns=100000", "grow_start=0"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("refusing to write guest_halt_poll_ns=100000"))
        .stderr(predicate::str::contains("grow_start must be at least 1 ns"));
    assert_eq!(param(dir.path(), "guest_halt_poll_ns"), "0\n");
    set(dir.path()).args(["ns=4294967296"]).assert().failure().stderr(predicate::str::contains("32-bit unsigned int"));
    set(dir.path())
        .args(["window=5"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("unknown parameter \"window\""));
}

#[test]
fn notes_say_what_is_odd() {
    let dir = tempfile::tempdir().unwrap();
    common::haltpoll_guest(dir.path());
    set(dir.path()).args(["ns=2.4ms", "grow_start=24ms"]).assert().success().stderr(predicate::str::contains(
        "note: grow_start (24000000) exceeds guest_halt_poll_ns (2400000): the window is on/off",
    ));
}

#[test]
fn without_the_module_it_says_so() {
    let dir = tempfile::tempdir().unwrap();
    common::bare_metal(dir.path());
    set(dir.path()).args(["ns=100000"]).assert().failure().stderr(predicate::str::contains(
        "module/haltpoll/parameters does not exist: this kernel has no haltpoll governor",
    ));
}

#[test]
fn without_permission_it_asks_for_root() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    // root may write any file, so the check needs an ordinary user; the message for
    // EACCES/EPERM is unit-tested in sysfs.rs as well.
    if fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(0) == 0 {
        eprintln!("running as root: permission cannot be denied, skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    common::haltpoll_guest(dir.path());
    let file = dir.path().join("module/haltpoll/parameters/guest_halt_poll_grow_start");
    fs::set_permissions(&file, fs::Permissions::from_mode(0o444)).unwrap();
    set(dir.path())
        .args(["ns=100000", "grow_start=20000"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("permission denied; writing kernel parameters needs root"));
    assert_eq!(param(dir.path(), "guest_halt_poll_ns"), "0\n", "nothing written when one file is not writable");
}
