//! `haltpoll replay` as a user runs it.

use assert_cmd::Command;
use predicates::prelude::*;
use std::io::Write;

fn haltpoll() -> Command {
    Command::cargo_bin("haltpoll").unwrap()
}

fn trace(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

#[test]
fn human_output_ends_with_summary() {
    let t = trace("# two short, one long\n30000\n30000\n\n5000000\n");
    haltpoll()
        .arg("replay")
        .arg(t.path())
        .assert()
        .success()
        .stdout(predicate::str::contains("poll hit"))
        .stdout(predicate::str::contains("periods            3"))
        .stdout(predicate::str::contains("poll hits          1 (33.3% of wakeups needed no exit)"))
        .stdout(predicate::str::contains("wasted poll time   50.0 us"));
}

#[test]
fn json_lines_then_summary() {
    let t = trace("30000\n120000\n1000000\n");
    let out = haltpoll().args(["replay", "--json"]).arg(t.path()).output().unwrap();
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 4);
    let second = &lines[1];
    assert_eq!(second["idle_ns"], 120000);
    assert_eq!(second["poll_limit_ns_before"], 50000);
    assert_eq!(second["poll_ns"], 50000);
    assert_eq!(second["halt_ns"], 70000);
    assert_eq!(second["poll_limit_ns_after"], 100000);
    let summary = &lines[3]["summary"];
    assert_eq!(summary["periods"], 3);
    assert_eq!(summary["halts"], 3);
    assert_eq!(summary["params"]["guest_halt_poll_ns"], 200000);
}

#[test]
fn parameters_change_the_outcome() {
    let t = trace("30000\n150000\n150000\n150000\n");
    // Default: 150 us periods fall in the blind spot (poll 50..100 us, halt the rest).
    haltpoll().arg("replay").arg(t.path()).assert().success().stdout(predicate::str::contains("poll hits          0"));
    // A larger start catches them at once.
    haltpoll()
        .args(["replay", "--grow-start", "150000"])
        .arg(t.path())
        .assert()
        .success()
        .stdout(predicate::str::contains("poll hits          3"));
}

#[test]
fn shrink_options() {
    let t = trace("30000\n120000\n1000000\n1000000\n1000000\n");
    let window_after = |args: &[&str]| {
        let out = haltpoll().args(["replay", "--json"]).args(args).arg(t.path()).output().unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        last["summary"]["final_poll_limit_ns"].as_u64().unwrap()
    };
    assert_eq!(window_after(&[]), 0, "floor: 100 -> 50 -> 0");
    assert_eq!(window_after(&["--legacy-shrink"]), 12500, "legacy: 100 -> 50 -> 25 -> 12.5");
    assert_eq!(window_after(&["--no-shrink"]), 100000);
}

#[test]
fn bad_line_is_named() {
    let t = trace("100\n\n  12x\n");
    haltpoll()
        .arg("replay")
        .arg(t.path())
        .assert()
        .failure()
        .stderr(predicate::str::contains(":3: not a whole number of nanoseconds: \"12x\""));
}

#[test]
fn bad_parameters_are_explained() {
    let t = trace("100\n");
    haltpoll()
        .args(["replay", "--grow-start", "0"])
        .arg(t.path())
        .assert()
        .failure()
        .stderr(predicate::str::contains("grow_start must be at least 1 ns"));
    haltpoll().args(["replay", "--grow", "-1"]).arg(t.path()).assert().failure().code(2);
}

#[test]
fn missing_file_is_explained() {
    haltpoll()
        .args(["replay", "/nonexistent/trace.txt"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("cannot read trace /nonexistent/trace.txt: No such file"));
}

#[test]
fn reads_stdin() {
    haltpoll()
        .args(["replay", "--summary-only", "-"])
        .write_stdin("30000\n30000\n")
        .assert()
        .success()
        .stdout(predicate::str::contains("periods            2"));
}
