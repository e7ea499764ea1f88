//! `haltpoll autotune` end to end: against a fixture sysfs tree (never this machine's
//! parameters) and the real tracefs, mounted by the recorder on an empty directory of the
//! test's own. `--dry-run` leaves the tree as it was; a run writes, and at `--duration`'s end
//! and on Ctrl-C or SIGTERM, writes back what it found.
//!
//! They need root and tracefs with the `power:cpu_idle` tracepoint. Where either is missing they
//! print why and pass; with `HALTPOLL_REQUIRE_TRACING=1` (CI) they fail instead.
#![cfg(target_os = "linux")]

mod exposition;
mod signals;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use predicates::prelude::*;
use rustix::process::Signal;

/// Why this machine cannot record, if it cannot.
fn cannot_record() -> Option<String> {
    if !rustix::process::geteuid().is_root() {
        return Some("not root".into());
    }
    let filesystems = fs::read_to_string("/proc/filesystems").unwrap_or_default();
    if !filesystems.lines().any(|l| l.split_whitespace().last() == Some("tracefs")) {
        return Some("this kernel has no tracefs".into());
    }
    None
}

/// Whether to skip: passes with a reason, or under HALTPOLL_REQUIRE_TRACING=1 fails.
fn skipped(test: &str) -> bool {
    let Some(why) = cannot_record() else { return false };
    if std::env::var_os("HALTPOLL_REQUIRE_TRACING").is_some_and(|v| v == "1") {
        panic!("{test}: {why}, and HALTPOLL_REQUIRE_TRACING=1");
    }
    eprintln!("skipped {test}: {why}");
    true
}

/// A fixture guest whose setting fails the idle-guest check at any budget below 80%: a 3.2 ms
/// ceiling that never shrinks.
struct Fixture {
    dir: tempfile::TempDir,
}

const PARAMS: [(&str, &str); 5] = [
    ("guest_halt_poll_ns", "3200000"),
    ("guest_halt_poll_grow", "2"),
    ("guest_halt_poll_grow_start", "400000"),
    ("guest_halt_poll_shrink", "2"),
    ("guest_halt_poll_allow_shrink", "N"),
];

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let params = dir.path().join("sys/module/haltpoll/parameters");
        fs::create_dir_all(&params).unwrap();
        for (name, value) in PARAMS {
            fs::write(params.join(name), format!("{value}\n")).unwrap();
        }
        fs::create_dir_all(dir.path().join("sys/devices/system/cpu")).unwrap();
        fs::write(dir.path().join("sys/devices/system/cpu/online"), "0-1\n").unwrap();
        fs::create_dir(dir.path().join("tracefs")).unwrap();
        Fixture { dir }
    }

    fn sys(&self) -> PathBuf {
        self.dir.path().join("sys")
    }

    fn tracefs(&self) -> PathBuf {
        self.dir.path().join("tracefs")
    }

    /// Every parameter as its file holds it.
    fn params(&self) -> Vec<(String, String)> {
        let dir = self.sys().join("module/haltpoll/parameters");
        PARAMS
            .iter()
            .map(|(n, _)| (n.to_string(), fs::read_to_string(dir.join(n)).unwrap().trim().to_owned()))
            .collect()
    }

    fn unchanged(&self) -> bool {
        self.params().iter().zip(PARAMS).all(|((_, now), (_, then))| now == then)
    }

    fn args<'a>(&'a self, sys: &'a str, tracefs: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec!["autotune", "--poll-budget", "0%", "--interval", "2s", "--record", "1s"];
        args.extend(["--sysfs-root", sys, "--tracefs", tracefs]);
        args.extend(extra);
        args
    }
}

/// Whether the log says the fixture's setting is replaced (`verb`) for a rule it breaks: the
/// budget over the window (with idle periods) or on the idle guest (without).
fn replaced(stderr: &str, verb: &str) -> bool {
    ["over-budget", "idle-guest"].iter().any(|why| stderr.contains(&format!("{verb} ({why}")))
}

fn path(p: &Path) -> String {
    p.to_str().unwrap().to_owned()
}

#[test]
fn a_dry_run_leaves_the_tree_as_it_was() {
    if skipped("a_dry_run_leaves_the_tree_as_it_was") {
        return;
    }
    let f = Fixture::new();
    let (sys, tracefs) = (path(&f.sys()), path(&f.tracefs()));
    let metrics = f.dir.path().join("autotune.prom");
    let metrics_arg = path(&metrics);
    let args = f.args(&sys, &tracefs, &["--duration", "3s", "--dry-run", "--metrics", &metrics_arg]);
    let out = Command::cargo_bin("haltpoll").unwrap().args(&args).assert().success();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(stderr.contains("haltpoll autotune: "), "{stderr}");
    assert!(replaced(&stderr, "would write it"), "{stderr}");
    assert!(!stderr.contains("wrote back"), "nothing was written, nothing to write back: {stderr}");
    assert!(f.unchanged(), "{:?}", f.params());
    let scrape = exposition::parse(&fs::read_to_string(&metrics).unwrap());
    assert_eq!(exposition::value(&scrape, "haltpoll_autotune_changes_total", &[]), Some(0.0));
    assert_eq!(exposition::value(&scrape, "haltpoll_autotune_poll_budget_ratio", &[]), Some(0.0));
    let ceiling =
        |setting| exposition::value(&scrape, "haltpoll_autotune_poll_ceiling_seconds", &[("setting", setting)]);
    assert_eq!((ceiling("in_force"), ceiling("best")), (Some(0.0032), Some(0.0)));
    assert_eq!(fs::read_dir(f.tracefs()).unwrap().count(), 0, "tracefs is unmounted again");
}

#[test]
fn a_run_writes_back_what_it_found_when_its_duration_ends() {
    if skipped("a_run_writes_back_what_it_found_when_its_duration_ends") {
        return;
    }
    let f = Fixture::new();
    let (sys, tracefs) = (path(&f.sys()), path(&f.tracefs()));
    let out = Command::cargo_bin("haltpoll").unwrap().args(f.args(&sys, &tracefs, &["--duration", "3s"])).assert();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    out.success();
    // The setting found fails the idle-guest check, idle periods or not: it is replaced at the
    // first decision, and written back at the end.
    assert!(replaced(&stderr, "writes it"), "{stderr}");
    assert!(stderr.contains("wrote back guest_halt_poll_ns=3200000 "), "{stderr}");
    assert!(f.unchanged(), "{:?}", f.params());
    assert_eq!(fs::read_dir(f.tracefs()).unwrap().count(), 0, "tracefs is unmounted again");
}

#[test]
fn a_writer_that_keeps_the_lock_costs_an_interval_not_the_run() {
    if skipped("a_writer_that_keeps_the_lock_costs_an_interval_not_the_run") {
        return;
    }
    let f = Fixture::new();
    let (sys, tracefs) = (path(&f.sys()), path(&f.tracefs()));
    // As `haltpoll set` holds it, for longer than the tuner waits.
    let lock = fs::File::create(f.sys().join(".haltpoll.lock")).unwrap();
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).unwrap();
    let args = f.args(&sys, &tracefs, &["--duration", "3s", "--wait", "100ms"]);
    let out = Command::cargo_bin("haltpoll").unwrap().args(&args).assert();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    out.success();
    assert!(stderr.contains("another haltpoll is writing the parameters"), "{stderr}");
    assert!(stderr.contains("nothing written this interval") && !stderr.contains("wrote back"), "{stderr}");
    assert!(f.unchanged(), "{:?}", f.params());
}

#[test]
fn ctrl_c_and_sigterm_write_back_what_it_found() {
    if skipped("ctrl_c_and_sigterm_write_back_what_it_found") {
        return;
    }
    for signal in [Signal::INT, Signal::TERM] {
        interrupted_by(signal);
    }
}

fn interrupted_by(signal: Signal) {
    let f = Fixture::new();
    let (sys, tracefs) = (path(&f.sys()), path(&f.tracefs()));
    // The signal comes once its first decision is written (the fixture's ceiling changes),
    // however long the loaded machine took to get there.
    let child = signals::start(&f.args(&sys, &tracefs, &[]));
    let ceiling = f.sys().join("module/haltpoll/parameters/guest_halt_poll_ns");
    let since = Instant::now();
    while fs::read_to_string(&ceiling).unwrap().trim() == "3200000" && since.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = signals::interrupt(child, &[(Duration::ZERO, signal)]);
    let (_, stderr) = signals::texts(&output);
    assert_eq!(output.status.code(), Some(130), "{signal:?}: {stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(replaced(&stderr, "writes it"), "{stderr}");
    assert!(stderr.contains("wrote back guest_halt_poll_ns=3200000 "), "{stderr}");
    assert!(f.unchanged(), "{signal:?}: {:?}", f.params());
    assert_eq!(fs::read_dir(f.tracefs()).unwrap().count(), 0, "tracefs is unmounted again");
}

#[test]
fn bad_options_are_usage_errors() {
    let run = |args: &[&str]| Command::cargo_bin("haltpoll").unwrap().args(args).assert().code(2);
    run(&["autotune", "--poll-budget", "2%", "--interval", "1s"]).stderr(predicate::str::contains("at least 2 s"));
    run(&["autotune", "--poll-budget", "200%"]).stderr(predicate::str::contains("between 0 and 100"));
    run(&["autotune"]).stderr(predicate::str::contains("--poll-budget"));
    // Refused before anything is recorded or written (the fixture has no tracefs at all).
    let f = Fixture::new();
    let sys = path(&f.sys());
    run(&[
        "autotune",
        "--poll-budget",
        "2%",
        "--sysfs-root",
        &sys,
        "--tracefs",
        "/nowhere",
        "--metrics",
        "/nowhere/a.prom",
    ])
    .stderr(predicate::str::contains("/nowhere is not a directory"));
    assert!(f.unchanged());
}
