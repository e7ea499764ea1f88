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

/// `haltpoll replay --json ARGS TRACE`'s summary: the last line's.
fn summary(args: &[&str], t: &tempfile::NamedTempFile) -> serde_json::Value {
    let out = haltpoll().args(["replay", "--json"]).args(args).arg(t.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    last["summary"].clone()
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
fn block_time_closes_the_blind_spot() {
    let t = trace(&"150000\n".repeat(10));
    // Linux's rule: the window sticks at 100 us, every period polls it in vain.
    haltpoll().arg("replay").arg(t.path()).assert().success().stdout(predicate::str::contains("poll hits          0"));
    // Counting the poll: 0 -> 50 -> 100 -> 200 us, then every period is caught.
    haltpoll()
        .args(["replay", "--block-time", "poll-and-halt", "--json"])
        .arg(t.path())
        .assert()
        .success()
        .stdout(predicate::str::contains(r#""poll_hits":7"#))
        .stdout(predicate::str::contains(r#""block_time":"poll-and-halt""#));
    haltpoll().args(["replay", "--block-time", "both"]).arg(t.path()).assert().failure().code(2);
}

#[test]
fn poll_and_halt_escapes_a_slow_halts_window_0_trap() {
    // Steady 150 us periods on a host where a halt ends 60 us after its wakeup: every halt
    // lasts 210 us, past the 200 us ceiling.
    let t = trace(&"150000\n".repeat(20));
    let replay = |block_time: &str| {
        summary(&["--halt-wake-ns", "60us", "--block-time", block_time], &t)["poll_hits"].as_u64().unwrap()
    };
    // Linux's rule counts the wake-up as idle time: the window never opens.
    assert_eq!(replay("halt-only"), 0);
    // Ours learns the period until its wakeup (150 us): 0 -> 50 -> 100 -> 200 us, then caught.
    assert_eq!(replay("poll-and-halt"), 17);
}

#[test]
fn shrink_options() {
    let t = trace("30000\n120000\n1000000\n1000000\n1000000\n");
    let window_after = |args: &[&str]| summary(args, &t)["final_poll_limit_ns"].as_u64().unwrap();
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

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

#[test]
fn perf_script_traces_replay_one_governor_per_cpu() {
    let out = haltpoll().args(["replay", "--json"]).arg(fixture("perf/two-cpus.txt")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stderr).trim(), "haltpoll: note: skipped 1 event of other tracepoints");
    let lines: Vec<serde_json::Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let periods: Vec<(u64, u64, bool)> = lines[..lines.len() - 1]
        .iter()
        .map(|p| (p["cpu"].as_u64().unwrap(), p["idle_ns"].as_u64().unwrap(), p["hit"].as_bool().unwrap()))
        .collect();
    // cpu 0: a 30 us halt, a 30 us poll hit, a 50 us poll merged with the 1 ms halt after it;
    // cpu 1: a 50 us halt, a 50 us poll merged with its halt. Each CPU learns on its own.
    assert_eq!(
        periods,
        vec![(0, 30_000, false), (1, 50_000, false), (0, 30_000, true), (1, 200_000, false), (0, 1_050_000, false)]
    );
    let summary = &lines[lines.len() - 1]["summary"];
    assert_eq!(summary["poll_ns"], 130_000);
    assert_eq!(summary["wasted_poll_ns"], 100_000);
    assert_eq!(
        summary["cpus"],
        serde_json::json!([{"cpu": 0, "final_poll_limit_ns": 0}, {"cpu": 1, "final_poll_limit_ns": 100_000}])
    );
    assert!(summary.get("final_poll_limit_ns").is_none());
}

#[test]
fn perf_human_output_has_a_cpu_column() {
    haltpoll()
        .arg("replay")
        .arg(fixture("perf/two-cpus.txt"))
        .assert()
        .success()
        .stdout(predicate::str::starts_with(" cpu        idle_ns"))
        .stdout(predicate::str::contains("perf script, 2 CPUs with idle periods, 1.16 ms from first to last event"))
        .stdout(predicate::str::contains(
            "window             grew 3 times, shrank 1 times, ends between 0 ns and 100.0 us across 2 CPUs",
        ));
}

#[test]
fn a_truncated_perf_trace_is_used_up_to_the_cut() {
    haltpoll()
        .args(["replay", "--summary-only"])
        .arg(fixture("perf/truncated.txt"))
        .assert()
        .success()
        .stdout(predicate::str::contains("periods            2"))
        .stderr(predicate::str::contains(
            "truncated.txt:5: the last line has no end of line: taken as cut short and skipped",
        ));
}

#[test]
fn a_garbled_perf_line_is_an_error_naming_it() {
    haltpoll()
        .arg("replay")
        .arg(fixture("perf/garbled.txt"))
        .assert()
        .failure()
        .stderr(predicate::str::contains("garbled.txt:3: not a perf script event line"))
        .stderr(predicate::str::contains("\"swapper     0 [000]   100.00\""));
}

#[test]
fn the_format_can_be_forced() {
    haltpoll()
        .args(["replay", "--format", "text"])
        .arg(fixture("perf/two-cpus.txt"))
        .assert()
        .failure()
        .stderr(predicate::str::contains("two-cpus.txt:9: not a whole number of nanoseconds"));
    let t = trace("30000\n");
    haltpoll()
        .args(["replay", "--format", "perf"])
        .arg(t.path())
        .assert()
        .failure()
        .stderr(predicate::str::contains(":1: not a perf script event line"));
}

#[test]
fn the_recorded_example_replays() {
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/traces/perf-idle.txt");
    haltpoll()
        .args(["replay", "--summary-only"])
        .arg(example)
        .assert()
        .success()
        .stdout(predicate::str::contains("perf script, 1 CPU with idle periods"))
        .stdout(predicate::str::contains("periods            358"));
}

/// Regression: replay saturated where the kernel's 32-bit `poll_limit_ns * grow` wraps: 3e9 * 2
/// = 6e9 wraps to 1705032704, below grow_start, so the kernel goes to grow_start.
#[test]
fn the_kernels_window_wraps_as_the_kernels_does() {
    let window_after_second = |extra: &[&str]| {
        let out = haltpoll()
            .args(["replay", "-", "--json", "--guest-halt-poll-ns", "4000000000", "--grow-start", "3000000000"])
            .args(extra)
            .write_stdin("115536\n6999999999\n")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8(out.stdout).unwrap();
        let second: serde_json::Value = serde_json::from_str(text.lines().nth(1).unwrap()).unwrap();
        second["poll_limit_ns_after"].as_u64().unwrap()
    };
    assert_eq!(window_after_second(&[]), 3_000_000_000);
    assert_eq!(window_after_second(&["--window-arithmetic", "saturating"]), 4_000_000_000);
    // grow 65536 from 65536 is 2^32, which wraps to 0: the kernel's window stays at 65536.
    let out = haltpoll()
        .args(["replay", "-", "--json", "--grow", "65536", "--grow-start", "65536"])
        .write_stdin("100000\n150000\n")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let second: serde_json::Value = serde_json::from_str(text.lines().nth(1).unwrap()).unwrap();
    assert_eq!(
        (second["poll_limit_ns_before"].as_u64(), second["poll_limit_ns_after"].as_u64()),
        (Some(65_536), Some(65_536))
    );
}

/// Regression: ceilings above 2^32-1, which no kernel can hold, were accepted.
#[test]
fn ceilings_beyond_the_kernel_are_refused_with_the_range() {
    let t = trace("100\n");
    haltpoll()
        .args(["replay", "--guest-halt-poll-ns", "4294967296"])
        .arg(t.path())
        .assert()
        .failure()
        .stderr(predicate::str::contains("guest_halt_poll_ns=4294967296 is beyond what the kernel can hold"))
        .stderr(predicate::str::contains("give 0 to 4294967295"));
    haltpoll()
        .args(["replay", "--guest-halt-poll-ns", "5s", "--window-arithmetic", "saturating"])
        .arg(t.path())
        .assert()
        .success();
}

/// Regression: the governor options rejected the units `tune` and `set` accept; negative values
/// were an "unknown unit".
#[test]
fn governor_options_take_units() {
    let t = trace("30000\n150000\n150000\n150000\n");
    haltpoll()
        .args(["replay", "--grow-start", "150us", "--guest-halt-poll-ns", "0.2ms"])
        .arg(t.path())
        .assert()
        .success()
        .stdout(predicate::str::contains("poll hits          3"));
    haltpoll()
        .args(["replay", "--grow-start=-5us"])
        .arg(t.path())
        .assert()
        .failure()
        .stderr(predicate::str::contains("\"-5us\" is negative"));
}

/// Regression: `replay /dev/zero` grew past 8 GB; a 10 MB bad line was echoed whole.
#[test]
fn endless_input_and_huge_lines_end_with_the_limit_named() {
    haltpoll()
        .args(["replay", "/dev/zero"])
        .timeout(std::time::Duration::from_secs(20))
        .assert()
        .failure()
        .stderr(predicate::str::contains("/dev/zero: line 1 is longer than 4096 bytes"));
    let t = trace(&format!("100\n{}\n", "x".repeat(10 << 20)));
    let out = haltpoll().arg("replay").arg(t.path()).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains(":2 is longer than 4096 bytes") || stderr.contains("line 2 is longer"), "{stderr}");
    assert!(stderr.len() < 1000, "the line is not echoed: {} bytes", stderr.len());
    let t = trace(&format!("100\n{}\n", "x".repeat(4000)));
    let stderr = haltpoll().arg("replay").arg(t.path()).output().unwrap().stderr;
    assert!(stderr.len() < 400, "a bad line is quoted in part: {}", String::from_utf8_lossy(&stderr));
}

/// Regression: a Latin-1 byte anywhere failed the whole trace without a line number.
#[test]
fn a_latin1_byte_is_named_by_its_line() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(b"100\n# caf\xe9\n200\n").unwrap();
    haltpoll()
        .arg("replay")
        .arg(f.path())
        .assert()
        .failure()
        .stderr(predicate::str::contains(":2: not UTF-8 text (byte 0xe9 at column 6)"));
}

/// Regression: a closed stdin was accepted as an empty trace.
#[test]
fn a_closed_or_empty_stdin_is_an_error() {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("exec \"$0\" replay - <&-")
        .arg(env!("CARGO_BIN_EXE_haltpoll"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("standard input held no idle periods (was it empty, or closed?)"), "{stderr}");
    haltpoll().args(["replay", "-"]).write_stdin("").assert().failure();
}

/// Gzip-compressed traces are read by their magic bytes, as `traces/corpus/*.perf.txt.gz`.
#[test]
fn gzip_traces_replay_as_the_plain_ones() {
    let run = |name: &str| haltpoll().args(["replay", "--json"]).arg(fixture(name)).output().unwrap();
    let (plain, gz) = (run("perf/two-cpus.txt"), run("perf/two-cpus.txt.gz"));
    assert!(gz.status.success(), "{}", String::from_utf8_lossy(&gz.stderr));
    assert_eq!(String::from_utf8_lossy(&gz.stdout).lines().count(), 6, "five periods and the summary");
    assert_eq!((plain.stdout, plain.stderr), (gz.stdout, gz.stderr), "the same replay");
}
