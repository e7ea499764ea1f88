//! `haltpoll bench threads` as a user runs it, kept tiny: a few round trips per cell. Only the
//! shape of the output is checked, never a time.

#![cfg(target_os = "linux")]

mod full_disk;
mod signals;

use std::ffi::OsStr;
use std::path::Path;
use std::time::Duration;

use assert_cmd::Command;
use full_disk::{LIMIT_BYTES, haltpoll_on_a_full_disk, partial_beside};
use predicates::prelude::*;
use rustix::process::Signal;

/// `bench threads` kept tiny: 12 cells of 20 round trips.
const QUICK: &[&str] = &[
    "bench",
    "threads",
    "--repetitions",
    "2",
    "--min-round-trips",
    "20",
    "--max-round-trips",
    "20",
    "--warmup",
    "5",
    "--think",
    "0,20us",
    "--variants",
    "spin,haltpoll,std",
];

fn quick() -> Command {
    let mut cmd = Command::cargo_bin("haltpoll").unwrap();
    cmd.args(QUICK);
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
    assert!(reps.iter().any(|r| r["parker_stats"]["parks"].as_u64() == Some(25)));
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
        .stderr(predicate::str::contains("choose from spin, spin-flag, haltpoll"));
    let mut cmd = Command::cargo_bin("haltpoll").unwrap();
    cmd.args(["bench", "threads", "--think", "5"]).assert().failure().stderr(predicate::str::contains("no unit"));
    let mut cmd = Command::cargo_bin("haltpoll").unwrap();
    cmd.args(["bench", "threads", "--repetitions", "0"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("0 is not in 1..=10000"));
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

/// A guard on tests of things that must fail at once: on a regression they would run for
/// minutes (or hang), and the test fails at this limit instead of waiting it out.
const AT_ONCE: Duration = Duration::from_secs(30);

#[test]
fn a_think_time_past_the_limit_is_refused_at_once_with_the_limit() {
    // 100 round trips of 1000 s each would run for days without a word.
    let mut cmd = Command::cargo_bin("haltpoll").unwrap();
    cmd.args(["bench", "threads", "--think", "0,1000s"])
        .timeout(AT_ONCE)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("think time 1000s is too long: at most 1s per message"));
}

#[test]
fn a_plot_path_that_cannot_be_written_fails_before_any_thread_runs() {
    // The run would take minutes (100 round trips of two 1 s think times per cell).
    let mut cmd = Command::cargo_bin("haltpoll").unwrap();
    cmd.args(["bench", "threads", "--variants", "spin", "--think", "1s", "--plot", "/nonexistent/x.svg"])
        .timeout(AT_ONCE)
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicate::str::contains(
            "haltpoll: error: cannot write the plot to /nonexistent/x.svg: No such file or directory (os error 2); \
             give a path in a directory that exists",
        ));
}

#[test]
fn a_plot_that_cannot_be_written_after_the_run_loses_no_result() {
    // An older picture at the path, and a disk that fills while the new one is written.
    let dir = tempfile::tempdir().unwrap();
    let plot = dir.path().join("sweep.svg");
    std::fs::write(&plot, "an older picture").unwrap();
    let mut args: Vec<&OsStr> = QUICK.iter().map(OsStr::new).collect();
    args.extend([OsStr::new("--plot"), plot.as_os_str()]);
    let out = haltpoll_on_a_full_disk(&args);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stdout.contains("targets: ratios within each repetition"), "the table is printed: {stdout}");
    assert_eq!(std::fs::read_to_string(&plot).unwrap(), "an older picture", "the older picture is left as it was");
    let partial = partial_beside(&plot);
    assert!(std::fs::metadata(&partial).unwrap().len() <= LIMIT_BYTES);
    let error = format!(
        "haltpoll: error: cannot write the plot to {}: File too large (os error 27); {} is left as it was, and \
         what was written is kept in {}\n",
        plot.display(),
        plot.display(),
        partial.display()
    );
    assert!(stderr.ends_with(&error), "one sentence, no debug text: {stderr}");
}

#[test]
fn a_device_or_the_report_s_own_file_is_refused_as_the_plot_before_any_thread_runs() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("full.svg");
    std::os::unix::fs::symlink("/dev/full", &link).unwrap();
    // (`--plot -` and `--plot /dev/full` are refused for their name: a plot ends in .svg or .png.)
    Command::cargo_bin("haltpoll")
        .unwrap()
        .args(["bench", "threads", "--variants", "spin", "--think", "1s", "--plot"])
        .arg(&link)
        .timeout(AT_ONCE)
        .assert()
        .code(2)
        .stdout("")
        .stderr(
            predicate::str::starts_with("haltpoll: error: cannot write the plot: ")
                .and(predicate::str::contains("full.svg is not a regular file (a device, a FIFO or a directory)")),
        );
    assert!(Path::new("/dev/full").exists());
    // The file the report goes to (`--plot r.svg > r.svg`): replacing it would lose the report.
    let report = dir.path().join("report.svg");
    let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("haltpoll"))
        .args(["bench", "threads", "--variants", "spin", "--think", "1s", "--plot"])
        .arg(&report)
        .stdout(std::fs::File::create(&report).unwrap())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("is where this command's standard output goes: give another file"), "{stderr}");
}

#[test]
fn repeated_variants_and_think_times_run_once() {
    let mut cmd = Command::cargo_bin("haltpoll").unwrap();
    let out = cmd
        .args(["bench", "threads", "--repetitions", "2", "--min-round-trips", "20", "--max-round-trips", "20"])
        .args(["--warmup", "5", "--think", "0,0", "--variants", "spin,haltpoll,spin", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("note: --variants: spin given more than once, runs once"), "{stderr}");
    assert!(stderr.contains("note: --think: 0 ns given more than once, runs once"), "{stderr}");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["repetitions"].as_array().unwrap().len(), 2 * 2, "2 variants x 1 think time x 2 repetitions");
    let spin = doc["rows"].as_array().unwrap().iter().find(|r| r["variant"] == "spin").unwrap().clone();
    assert_eq!(spin["wake_vs_spin"], 1.0, "spin against itself: {spin}");
}

/// `quick()` (12 cells) with cell `n` made to fail.
fn failing_at(n: usize, extra: &[&str]) -> std::process::Output {
    quick().env("HALTPOLL_TEST_FAIL_RUN", n.to_string()).args(extra).output().unwrap()
}

const FAILURE: &str = "run 4 failed on purpose (HALTPOLL_TEST_FAIL_RUN=4)";

#[test]
fn a_failing_cell_prints_the_cells_before_it_marked_partial_and_exits_1() {
    let out = failing_at(4, &[]);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().last(), Some(format!("haltpoll: error: {FAILURE}").as_str()), "{stderr}");
    let marker = format!(
        "PARTIAL RESULTS: stopped by an error after 3 of 12 cells; only those that finished are shown: {FAILURE}\n"
    );
    assert!(stdout.starts_with(&marker), "{stdout}");
    // The first repetition's three cells at think 0, and nothing of think 20 us.
    for variant in ["spin", "haltpoll", "std"] {
        assert!(
            predicate::str::is_match(format!(r"(?m)^\s+0 ns\s+{variant}\s+20 ")).unwrap().eval(&stdout),
            "{variant}: {stdout}"
        );
    }
    // (A row, not the text: a measured value can print as "20.0 us" too.)
    let think_20us_row = predicate::str::is_match(r"(?m)^\s+20\.0 us\s+(spin|haltpoll|std)\s").unwrap();
    assert!(!think_20us_row.eval(&stdout), "no cell of think 20 us finished: {stdout}");

    let out = failing_at(4, &["--json"]);
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((&doc["partial"], &doc["stopped_by"], &doc["error"]), (&true.into(), &"error".into(), &FAILURE.into()));
    assert_eq!(doc["rows"].as_array().unwrap().len(), 3, "{doc}");
    assert_eq!(doc["repetitions"].as_array().unwrap().len(), 3, "{doc}");

    let out = failing_at(4, &["--csv"]);
    assert_eq!(out.status.code(), Some(1));
    let csv = String::from_utf8(out.stdout).unwrap();
    assert_eq!(csv.lines().count(), 1 + 3, "a header and the 3 cells that finished: {csv}");
    assert!(String::from_utf8_lossy(&out.stderr).ends_with(&format!("haltpoll: error: {FAILURE}\n")));
}

#[test]
fn a_failing_first_cell_prints_only_the_error() {
    let out = failing_at(1, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "haltpoll: error: run 1 failed on purpose (HALTPOLL_TEST_FAIL_RUN=1)\n"
    );
}

/// One spinning cell without think time (done in moments), then one of 5 round trips of two
/// 1 s think times (10 s).
fn interruptible(extra: &[&str]) -> std::process::Child {
    let args = ["bench", "threads", "--variants", "spin", "--think", "0,1s", "--repetitions", "1"];
    let rounds = ["--min-round-trips", "5", "--max-round-trips", "5", "--warmup", "0"];
    signals::start(&[&args[..], &rounds, extra].concat())
}

#[test]
fn ctrl_c_prints_the_cells_that_finished_marked_partial_and_exits_130() {
    for (signal, format) in [(Signal::INT, "table"), (Signal::TERM, "table"), (Signal::INT, "json")] {
        let extra: &[&str] = if format == "json" { &["--json"] } else { &[] };
        let out = signals::interrupt(interruptible(extra), &[(Duration::from_secs(3), signal)]);
        let (stdout, stderr) = signals::texts(&out);
        assert_eq!(out.status.code(), Some(130), "{signal:?}: {stderr}");
        assert_eq!(
            stderr.lines().last(),
            Some("haltpoll: interrupted after 1 of 2 cells: the results printed are partial")
        );
        if format == "json" {
            let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
            assert_eq!(doc["partial"], true);
            assert_eq!(doc["stopped_by"], "interrupt");
            assert!(doc["error"].is_null());
            assert_eq!(doc["rows"].as_array().unwrap().len(), 1, "{stdout}");
            assert_eq!(doc["rows"][0]["think_ns"], 0);
        } else {
            assert!(stdout.starts_with("PARTIAL RESULTS: interrupted after 1 of 2 cells"), "{signal:?}: {stdout}");
            assert!(stdout.contains("\n    0 ns  spin "), "the finished cell's row: {stdout}");
            assert!(!stdout.contains("1.00 s  spin"), "the cut cell is not shown: {stdout}");
        }
    }
}

#[test]
fn a_second_ctrl_c_ends_at_once() {
    // A sleeping sender finishes its 1 s sleep before it looks at the flag: the second Ctrl-C,
    // a moment after the first, comes while the first is still being honoured.
    let child = interruptible(&["--sleep"]);
    let out = signals::interrupt(
        child,
        &[(Duration::from_millis(3_500), Signal::INT), (Duration::from_millis(50), Signal::INT)],
    );
    assert_eq!(out.status.code(), Some(130));
    assert_eq!(signals::texts(&out).0, "", "nothing printed: it ended at once");
}
