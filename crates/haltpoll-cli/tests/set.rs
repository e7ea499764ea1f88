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

/// Regression: `set` wrote the first parameter, truncated the second before a write that failed
/// (EINVAL), left it empty, and did not say what had changed. Now the file whose write fails is
/// left as it was, the ones written before it are written back, and the message says what every
/// parameter is.
///
/// The kernel's EINVAL comes from a kernel file that refuses the value as sysfs does: the
/// fixture's `guest_halt_poll_grow_start` is a link to `/proc/self/oom_score_adj`, which reads
/// 0 and takes only -1000 to 1000 (and concerns only the process that writes it).
#[test]
fn a_refused_write_undoes_the_writes_before_it() {
    let dir = tempfile::tempdir().unwrap();
    common::haltpoll_guest(dir.path());
    let file = dir.path().join("module/haltpoll/parameters/guest_halt_poll_grow_start");
    fs::remove_file(&file).unwrap();
    std::os::unix::fs::symlink("/proc/self/oom_score_adj", &file).unwrap();
    let out = set(dir.path()).args(["ns=400us", "grow_start=100us", "shrink=4"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("guest_halt_poll_grow_start: Invalid argument (os error 22)"), "{stderr}");
    assert!(stderr.contains("wrote back the old value of guest_halt_poll_ns"), "{stderr}");
    assert!(
        stderr.contains(
            "the parameters now read guest_halt_poll_ns=0 guest_halt_poll_grow=2 guest_halt_poll_grow_start=0 \
             guest_halt_poll_shrink=2 guest_halt_poll_allow_shrink=Y (guest_halt_poll_grow_start was not written: \
             nothing changed)"
        ),
        "{stderr}"
    );
    assert_eq!(param(dir.path(), "guest_halt_poll_ns"), "0\n", "written back");
    assert_eq!(param(dir.path(), "guest_halt_poll_shrink"), "2\n", "never written");
}

/// A parameter file that is a directory or a FIFO is refused before anything is written (a
/// FIFO would block the open), with its cause said once.
#[test]
fn a_parameter_that_is_not_a_file_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    common::haltpoll_guest(dir.path());
    let file = dir.path().join("module/haltpoll/parameters/guest_halt_poll_grow_start");
    fs::remove_file(&file).unwrap();
    fs::create_dir(&file).unwrap();
    set(dir.path())
        .args(["ns=400us", "grow_start=100us"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("guest_halt_poll_grow_start is a directory, not a sysfs attribute file"))
        .stderr(predicate::str::contains("os error").not());
    assert_eq!(param(dir.path(), "guest_halt_poll_ns"), "0\n");
    fs::remove_dir(&file).unwrap();
    assert!(std::process::Command::new("mkfifo").arg(&file).status().unwrap().success());
    set(dir.path())
        .args(["ns=400us", "grow_start=100us"])
        .timeout(std::time::Duration::from_secs(20))
        .assert()
        .failure()
        .stderr(predicate::str::contains("guest_halt_poll_grow_start is a FIFO, not a sysfs attribute file"));
    assert_eq!(param(dir.path(), "guest_halt_poll_ns"), "0\n");
}

/// After a write cut short (an empty parameter file), `set` names the file and repairs it when
/// given a value for it; `status` shows the tree meanwhile.
#[test]
fn a_tree_left_broken_can_be_repaired() {
    let dir = tempfile::tempdir().unwrap();
    common::haltpoll_guest(dir.path());
    fs::write(dir.path().join("module/haltpoll/parameters/guest_halt_poll_grow_start"), "").unwrap();
    set(dir.path()).args(["ns=400us"]).assert().failure().stderr(predicate::str::contains(
        "guest_halt_poll_grow_start: expected a whole number below 2^32 (a kernel uint), found nothing (the file is \
         empty); give guest_halt_poll_grow_start a value as well to repair it, e.g. grow_start=50000",
    ));
    let mut status = Command::cargo_bin("haltpoll").unwrap();
    status.arg("status").arg("--sysfs-root").arg(dir.path()).assert().success();
    set(dir.path())
        .args(["ns=400us", "grow_start=50us"])
        .assert()
        .success()
        .stdout("guest_halt_poll_ns: 0 -> 400000\nguest_halt_poll_grow_start: unreadable -> 50000\n");
    assert_eq!(param(dir.path(), "guest_halt_poll_grow_start"), "50000\n");
}

/// Regression: settings under which the kernel's 32-bit window wraps are legal, and said.
#[test]
fn a_setting_that_wraps_the_kernels_window_is_noted() {
    let dir = tempfile::tempdir().unwrap();
    common::haltpoll_guest(dir.path());
    set(dir.path())
        .args(["--dry-run", "ns=200us", "grow=65536", "grow_start=65536"])
        .assert()
        .success()
        .stderr(predicate::str::contains("note: the kernel's window wraps under guest_halt_poll_ns=200000"))
        .stderr(predicate::str::contains("the window becomes 65536 instead of 200000"));
}

/// Regression: three `set`s of whole settings started together sometimes ended in a mix of
/// them, or back at the first values although two had succeeded. With the lock they run one
/// after the other: each reads (and prints as the old values) the whole setting the one before
/// it wrote, and the end is the setting of the last to succeed. 100 rounds, or
/// `HALTPOLL_CONCURRENT_SET_ROUNDS` (`.ci/reliability` runs 300).
#[test]
fn concurrent_sets_end_in_one_whole_setting() {
    let settings = [
        ["ns=100000", "grow=2", "grow_start=10000", "shrink=2", "allow_shrink=Y"],
        ["ns=200000", "grow=3", "grow_start=20000", "shrink=3", "allow_shrink=N"],
        ["ns=300000", "grow=4", "grow_start=30000", "shrink=4", "allow_shrink=Y"],
    ];
    let wanted: Vec<Vec<String>> =
        settings.iter().map(|s| s.iter().map(|a| a.split_once('=').unwrap().1.to_owned()).collect()).collect();
    let rounds: usize = std::env::var("HALTPOLL_CONCURRENT_SET_ROUNDS").map_or(100, |n| n.parse().expect("a count"));
    let binary = assert_cmd::cargo::cargo_bin("haltpoll");
    for round in 0..rounds {
        let dir = tempfile::tempdir().unwrap();
        common::haltpoll_guest(dir.path());
        let start = params_now(dir.path());
        let children: Vec<_> = settings
            .iter()
            .map(|s| {
                std::process::Command::new(&binary)
                    .arg("set")
                    .arg("--sysfs-root")
                    .arg(dir.path())
                    .args(["--wait", "60s"])
                    .args(s)
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let mut olds = Vec::new();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "round {round}: {}", String::from_utf8_lossy(&out.stderr));
            olds.push(old_values(&String::from_utf8_lossy(&out.stdout)));
        }
        // The order they ran in: the first read the start, each next one what the one before
        // it wrote; the last one's setting is the end.
        let mut order = vec![];
        let mut seen = start;
        while let Some(next) = (0..3).find(|i| !order.contains(i) && olds[*i] == seen) {
            order.push(next);
            seen = wanted[next].clone();
        }
        assert_eq!(
            order.len(),
            3,
            "round {round}: no order of the three reads {olds:?} from {:?}",
            params_now(dir.path())
        );
        let end = params_now(dir.path());
        assert_eq!(end, wanted[order[2]], "round {round}: the end is not the setting of the last to succeed");
    }
}

const PARAMS: [&str; 5] = ["ns", "grow", "grow_start", "shrink", "allow_shrink"];

/// The five parameters, as a fixture holds them now.
fn params_now(root: &Path) -> Vec<String> {
    PARAMS.iter().map(|n| param(root, &format!("guest_halt_poll_{n}")).trim().to_owned()).collect()
}

/// The old values a `set` of all five parameters printed (`guest_halt_poll_NAME: OLD -> NEW`
/// or `guest_halt_poll_NAME: already V`), in the order of [`PARAMS`].
fn old_values(stdout: &str) -> Vec<String> {
    let olds: Vec<(&str, &str)> = stdout
        .lines()
        .map(|line| {
            let (name, change) = line.split_once(": ").unwrap();
            let old = change.strip_prefix("already ").or_else(|| change.split_once(" -> ").map(|(old, _)| old));
            (name, old.unwrap())
        })
        .collect();
    PARAMS
        .iter()
        .map(|p| {
            let name = format!("guest_halt_poll_{p}");
            olds.iter().find(|(n, _)| *n == name).unwrap_or_else(|| panic!("{name} in {stdout}")).1.to_owned()
        })
        .collect()
}

#[cfg(target_os = "linux")]
#[test]
fn a_second_writer_that_cannot_wait_says_who_holds_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    common::haltpoll_guest(dir.path());
    let lock = fs::File::create(dir.path().join(".haltpoll.lock")).unwrap();
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).unwrap();
    set(dir.path())
        .args(["--wait", "0s", "ns=100000"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("another haltpoll is writing the parameters"));
    assert_eq!(param(dir.path(), "guest_halt_poll_ns"), "0\n", "nothing written");
    drop(lock);
    set(dir.path()).args(["--wait", "0s", "ns=100000"]).assert().success();
}
