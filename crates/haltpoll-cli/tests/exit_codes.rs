//! The exit codes, as a script sees them: 0 success, 1 failure, 2 a usage error (nothing ran),
//! 130 interrupted (the benchmarks' and `vm pingpong`'s own tests send the signals). A stderr
//! that cannot be written changes none of them.

use std::fs::OpenOptions;
use std::process::Stdio;

mod common;

use assert_cmd::Command;
use predicates::prelude::*;

fn haltpoll() -> Command {
    Command::cargo_bin("haltpoll").unwrap()
}

#[test]
fn success_is_0_and_help_is_a_success() {
    haltpoll().args(["replay", "../../examples/traces/mixed.txt"]).assert().code(0);
    haltpoll().arg("--version").assert().code(0).stdout(predicate::str::starts_with("haltpoll "));
    haltpoll().args(["bench", "--help"]).assert().code(0);
}

#[test]
fn a_failure_is_1() {
    haltpoll()
        .args(["replay", "/nonexistent/trace.txt"])
        .assert()
        .code(1)
        .stderr(predicate::str::starts_with("haltpoll: error: "));
}

#[test]
fn a_usage_error_is_2() {
    haltpoll().arg("--no-such-option").assert().code(2).stderr(predicate::str::contains("unexpected argument"));
    haltpoll().assert().code(2).stderr(predicate::str::contains("Usage:"));
    haltpoll().args(["replay", "x", "--guest-halt-poll-ns", "many"]).assert().code(2);
}

/// Sizes are checked before anything is allocated for them: a range error, never an abort.
#[test]
fn counts_beyond_their_range_are_usage_errors() {
    for args in [
        &["bench", "threads", "--repetitions", "1000000000"][..],
        &["bench", "vm", "--repetitions", "1000000000"],
        &["vm", "pingpong", "--repeat", "4294967295"],
    ] {
        haltpoll().args(args).assert().code(2).stderr(predicate::str::contains("is not in 1..=10000"));
    }
}

/// Values clap takes but the command refuses are usage errors as well (exit 2), in our words.
#[test]
fn refused_values_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let trace = "../../examples/traces/perf-idle.txt";
    let cases: [(&[&str], &str); 10] = [
        (&["set", "--sysfs-root", root, "foo=1"], "foo"),
        (&["set", "--sysfs-root", root, "ns=-5"], "-5"),
        (&["set", "--sysfs-root", root, "ns"], "ns"),
        (&["status", "--watch", "1", "--format", "prometheus"], "a single reading"),
        (&["compare", trace, "--budgets", "-1%"], "is not a percentage between 0 and 100"),
        (&["compare", trace, "--budgets", "50%,50%"], "twice"),
        (&["tune", trace, "--governor", "predictive"], "`haltpoll compare TRACE --budgets 5%` replays it"),
        (&["tune", trace, "--tick-hz", "0"], "--tick-hz"),
        (&["man", "--out", "/dev/full"], "/dev/full is not a directory"),
        (&["exporter", "--listen", "localhost"], "is not an address and port"),
    ];
    common::haltpoll_guest(dir.path());
    for (args, says) in cases {
        haltpoll().args(args).assert().code(2).stderr(predicate::str::contains(says));
    }
    haltpoll()
        .args(["status", "--sysfs-root", "/dev/zero"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("/dev/zero is not a directory"));
}

#[test]
fn a_full_stderr_changes_no_exit_code() {
    // eprintln! would panic on the failed write (exit 101).
    let code = |args: &[&str]| {
        let full = OpenOptions::new().write(true).open("/dev/full").unwrap();
        let status = std::process::Command::new(env!("CARGO_BIN_EXE_haltpoll"))
            .args(args)
            .stdout(Stdio::null())
            .stderr(full)
            .status()
            .unwrap();
        status.code()
    };
    assert_eq!(code(&["replay", "/nonexistent/trace.txt"]), Some(1));
    assert_eq!(code(&["--no-such-option"]), Some(2));
    // A note that goes to the full stderr while the report goes to stdout.
    let mut trace = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut trace, b"1000\n2000\n").unwrap();
    assert_eq!(code(&["tune", trace.path().to_str().unwrap(), "--cpus", "1"]), Some(0));
}
