//! `haltpoll bench threads` as a user runs it, kept tiny: a few round trips per cell. Only the
//! shape of the output is checked, never a time.

#![cfg(target_os = "linux")]

use assert_cmd::Command;
use predicates::prelude::*;

fn quick() -> Command {
    let mut cmd = Command::cargo_bin("haltpoll").unwrap();
    cmd.args(["bench", "threads", "--repetitions", "2", "--min-round-trips", "20", "--max-round-trips", "20"]).args([
        "--warmup",
        "5",
        "--think",
        "0,20us",
        "--variants",
        "spin,haltpoll,std",
    ]);
    cmd
}

#[test]
fn table_has_every_cell_and_the_targets() {
    quick()
        .assert()
        .success()
        .stdout(predicate::str::contains("the sender spins the think time"))
        .stdout(predicate::str::is_match(r"(?m)^\s+0 ns\s+haltpoll\s+40 ").unwrap())
        .stdout(predicate::str::is_match(r"(?m)^\s+20\.0 us\s+std\s+40 ").unwrap())
        .stdout(predicate::str::contains("targets: ratios within each repetition, median over repetitions"))
        .stdout(predicate::str::contains("haltpoll wake p50 / std wake p50"));
}

#[test]
fn json_has_rows_targets_and_repetitions() {
    let out = quick().arg("--json").output().unwrap();
    assert!(out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["config"]["repetitions"], 2);
    let rows = doc["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 6, "3 variants x 2 think times");
    let hp = rows.iter().find(|r| r["variant"] == "haltpoll" && r["think_ns"] == 0).unwrap();
    assert_eq!(hp["wakes"], 40);
    assert!(hp["wake_p50_ns"].as_u64().unwrap() > 0);
    assert!(hp["no_syscall_share"].as_f64().is_some());
    let std = rows.iter().find(|r| r["variant"] == "std").unwrap();
    assert!(std["no_syscall_share"].is_null(), "std cannot tell");
    assert_eq!(doc["targets"].as_array().unwrap().len(), 4, "2 targets x 2 think times up to 100 us");
    let reps = doc["repetitions"].as_array().unwrap();
    assert_eq!(reps.len(), 12);
    assert!(reps.iter().any(|r| r["parker_stats"]["unparks"].as_u64() == Some(25)));
}

#[test]
fn csv_has_a_line_per_repetition() {
    let out = quick().arg("--csv").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("think_ns,variant,repetition,wakes,"));
    assert_eq!(lines.len(), 1 + 12);
    assert!(lines.iter().skip(1).all(|l| l.split(',').count() == 12));
}

#[test]
fn bad_options_say_what_to_do() {
    let mut cmd = Command::cargo_bin("haltpoll").unwrap();
    cmd.args(["bench", "threads", "--variants", "spin,futex"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("choose from spin, haltpoll"));
    let mut cmd = Command::cargo_bin("haltpoll").unwrap();
    cmd.args(["bench", "threads", "--think", "5"]).assert().failure().stderr(predicate::str::contains("no unit"));
    let mut cmd = Command::cargo_bin("haltpoll").unwrap();
    cmd.args(["bench", "threads", "--repetitions", "0"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("no repetitions to run"));
    let mut cmd = Command::cargo_bin("haltpoll").unwrap();
    cmd.args(["bench", "threads", "--grow-start", "0"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("invalid haltpoll parameters: grow_start must be at least 1 ns"));
}

#[test]
fn plot_draws_the_sweep() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sweep.svg");
    quick().arg("--plot").arg(&path).assert().success().stderr(predicate::str::contains("plot written to"));
    let svg = std::fs::read_to_string(&path).unwrap();
    assert!(svg.starts_with("<svg"), "an SVG file");
    for label in ["spin", "haltpoll", "std", "round trip against think time", "CPU per round trip"] {
        assert!(svg.contains(label), "{label} missing from the plot");
    }
    quick().args(["--plot", "sweep.gif"]).assert().failure().stderr(predicate::str::contains("sweep.gif"));
}
