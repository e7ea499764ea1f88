//! `haltpoll bench vm` and `vm pingpong --idle haltpoll` as a user runs them, kept tiny: a few
//! round trips per run. The shape of the output and the mechanisms' counters are checked,
//! never a time. Skipped without KVM unless HALTPOLL_REQUIRE_KVM=1.

#![cfg(all(target_os = "linux", target_arch = "x86_64"))]

mod common;
mod signals;

use std::time::Duration;

use assert_cmd::Command;
use haltpoll_vmm::testing::{kvm_or_skip, timing_check};
use predicates::prelude::*;
use rustix::process::Signal;

fn haltpoll() -> Command {
    Command::cargo_bin("haltpoll").unwrap()
}

/// Two think times (below and above the 200 us ceiling), one repetition, 60 round trips.
fn quick() -> Command {
    let mut cmd = haltpoll();
    cmd.args(["bench", "vm", "--repetitions", "1", "--round-trips", "60", "--warmup", "20", "--think", "0,300us"]);
    cmd
}

#[test]
fn table_has_every_variant_the_driver_notes_and_the_targets() {
    let Some(_vm) = kvm_or_skip("table_has_every_variant_the_driver_notes_and_the_targets") else { return };
    quick()
        .assert()
        .success()
        .stdout(predicate::str::contains("2 vCPUs, each on a host CPU of its own (REALTIME hint shown)"))
        .stdout(predicate::str::contains("overcommitted: 4 vCPUs (two pairs) on 2 host CPUs"))
        .stdout(predicate::str::is_match(r"(?m)^\s+0 ns\s+busy\s+\S+ \S+\s+100\.0%").unwrap())
        .stdout(predicate::str::is_match(r"(?m)^\s*300\.0 us\s+no polling\s").unwrap())
        .stdout(predicate::str::is_match(r"(?m)^\s+0 ns\s+guest haltpoll \(poll\+halt\)\s").unwrap())
        .stdout(predicate::str::is_match(r"(?m)^\s+0 ns\s+haltpoll forced\s").unwrap())
        .stdout(predicate::str::contains(
            "guest haltpoll              driver loaded, host polling off by MSR on 2 of 2",
        ))
        .stdout(predicate::str::contains("haltpoll gated (no hint)    driver refused: no REALTIME hint"))
        .stdout(predicate::str::contains("targets: medians over repetitions"))
        .stdout(predicate::str::contains("wakeups without an IPI"))
        .stdout(predicate::str::contains("host CPU per message / no polling's"));
}

#[test]
fn json_has_rows_targets_and_runs_with_the_mechanisms_visible() {
    let Some(_vm) = kvm_or_skip("json_has_rows_targets_and_runs_with_the_mechanisms_visible") else { return };
    let out = quick().args(["--variants", "busy,guest-haltpoll,no-polling", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["config"]["repetitions"], 1);
    assert_eq!(doc["rows"].as_array().unwrap().len(), 6, "3 variants x 2 think times");
    let runs = doc["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 10 + 10 + 1 + 3, "at think 0 the variants that poll run 10 times");
    let busy_0 = doc["rows"].as_array().unwrap().iter().find(|r| r["variant"] == "busy" && r["think_ns"] == 0).unwrap();
    assert_eq!(busy_0["repetitions"], 10, "{busy_0}");
    let run = |variant: &str, think: u64| {
        runs.iter().find(|r| r["variant"] == variant && r["think_ns"] == think).unwrap().clone()
    };
    for r in runs {
        assert_eq!(r["messages"], 120, "{r}");
    }
    let hp = run("guest-haltpoll", 0);
    assert_eq!(hp["driver"], "loaded");
    assert_eq!(hp["host_polling_off"], 2);
    // The shares and the windows depend on how the host schedules the vCPUs: checks that report.
    let no_ipi = hp["no_ipi_share"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&no_ipi), "{hp}");
    timing_check(no_ipi > 0.5, || format!("most wakeups need no IPI: {hp}"));
    let hp_long = run("guest-haltpoll", 300_000);
    assert_eq!(hp_long["windows_end_ns"].as_array().map(Vec::len), Some(2), "a window per vCPU: {hp_long}");
    timing_check(hp_long["windows_end_ns"] == serde_json::json!([0, 0]), || {
        format!("above the ceiling the windows close: {hp_long}")
    });
    timing_check(hp_long["shrinks"].as_u64().unwrap() >= 2, || format!("the windows shrank: {hp_long}"));
    let none = run("no-polling", 0);
    assert_eq!(none["ipis_per_message"], 1.0);
    assert!(none["no_ipi_share"].is_null());
    let targets = doc["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 5, "3 below the ceiling, 2 above: {targets:?}");
}

#[test]
fn csv_has_a_line_per_run() {
    let Some(_vm) = kvm_or_skip("csv_has_a_line_per_run") else { return };
    let out = quick().args(["--variants", "busy,host-halt-poll", "--csv"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("think_ns,variant,repetition,round_trips,messages,"));
    assert_eq!(lines.len(), 1 + 10 + 1 + 2, "busy 10 times at think 0");
    let columns = lines[0].split(',').count();
    assert!(lines.iter().all(|l| l.split(',').count() == columns));
    assert!(lines[1].starts_with("0,busy,1,60,120,"));
}

#[test]
fn plot_draws_the_sweep() {
    let Some(_vm) = kvm_or_skip("plot_draws_the_sweep") else { return };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vm.svg");
    quick()
        .args(["--variants", "busy,no-polling", "--plot"])
        .arg(&path)
        .assert()
        .success()
        .stderr(predicate::str::contains("plot written to"));
    let svg = std::fs::read_to_string(&path).unwrap();
    for label in ["busy", "no polling", "bench vm: round trip against think time"] {
        assert!(svg.contains(label), "{label} missing from the plot");
    }
}

#[test]
fn a_think_trace_drives_the_guests_and_compares_the_governors() {
    let Some(_vm) = kvm_or_skip("a_think_trace_drives_the_guests_and_compares_the_governors") else { return };
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("idle.txt");
    std::fs::write(&trace, "20000\n300000\n5000\n80000\n1000\n").unwrap();
    let bench = || {
        let mut cmd = haltpoll();
        cmd.args(["bench", "vm", "--repetitions", "1", "--round-trips", "40", "--warmup", "10"])
            .args(["--variants", "busy,guest-haltpoll,guest-predictive", "--think-trace"])
            .arg(&trace);
        cmd
    };
    bench()
        .assert()
        .success()
        .stdout(predicate::str::contains("think times from the trace"))
        .stdout(predicate::str::contains("5 periods, mean 81.2 us"))
        .stdout(predicate::str::is_match(r"(?m)^\s+trace\s+guest predictive \(5\.0%\)\s").unwrap())
        .stdout(predicate::str::contains("wakeups without an IPI - Linux's"));
    let out = bench().arg("--json").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["config"]["think_trace"]["periods"], 5);
    assert_eq!(doc["config"]["predictive"]["poll_budget_ppm"], 50_000);
    assert_eq!(doc["rows"].as_array().unwrap().len(), 3, "one cell per variant");
    let runs = doc["runs"].as_array().unwrap();
    for r in runs {
        assert_eq!(r["messages"], 80, "{r}");
    }
    let no_ipi = |variant: &str| {
        let run = runs.iter().find(|r| r["variant"] == variant).unwrap();
        run["no_ipi_share"].as_f64().unwrap_or_else(|| panic!("{run}"))
    };
    let (linux, predictive) = (no_ipi("guest-haltpoll"), no_ipi("guest-predictive"));
    // The target against Linux's governor is a difference of shares (within a point), defined
    // whenever both ran, however few wakeups either caught on a loaded host.
    let target = doc["targets"].as_array().unwrap().iter().find(|t| t["what"] == "wakeups without an IPI - Linux's");
    let t = target.unwrap_or_else(|| panic!("no target against Linux's governor: {doc}"));
    let value = t["value"].as_f64().unwrap();
    assert!((value - (predictive - linux)).abs() <= 1e-9, "{t} from {predictive} - {linux}");
    assert_eq!(t["met"], value >= -0.01, "{t}");
}

#[test]
fn bad_options_are_refused_before_any_vm_starts() {
    let refused = |args: &[&str], says: &str| {
        haltpoll().args(["bench", "vm"]).args(args).assert().failure().stderr(predicate::str::contains(says));
    };
    refused(&["--variants", "busy,futex"], "possible values: busy, guest-haltpoll");
    refused(&["--repetitions", "0"], "0 is not in 1..=10000");
    refused(&["--round-trips", "0"], "--round-trips 0");
    refused(&["--think", "5"], "no unit");
    refused(&["--grow-start", "0"], "grow_start must be at least 1 ns");
    refused(&["--plot", "vm.gif"], "vm.gif");
    refused(&["--think", "0,2s"], "think time 2s is too long: at most 1s per message");
    refused(&["--host-halt-poll-ns", "18446744073709551615"], "give 0 to 4294967295 ns");
    refused(&["--think-trace", "/nonexistent/idle.txt"], "cannot read the think trace /nonexistent/idle.txt");
    refused(&["--think", "0", "--think-trace", "idle.txt"], "cannot be used with");
    refused(&["--poll-budget", "120%"], "not a percentage between 0 and 100");
}

#[test]
fn a_plot_path_that_cannot_be_written_fails_before_any_vm_starts() {
    // The run would take minutes: 1000 round trips of two 1 s think times. (Without KVM the
    // path is refused all the same: it comes first.)
    haltpoll()
        .args(["bench", "vm", "--variants", "busy", "--think", "1s", "--round-trips", "1000", "--repetitions", "1"])
        .args(["--plot", "/nonexistent/x.svg"])
        .timeout(Duration::from_secs(30))
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicate::str::contains(
            "haltpoll: error: cannot write the plot to /nonexistent/x.svg: No such file or directory (os error 2)",
        ));
}

#[test]
fn repeated_variants_run_once_and_busy_is_its_own_speed() {
    let Some(_vm) = kvm_or_skip("repeated_variants_run_once_and_busy_is_its_own_speed") else { return };
    let out = quick().args(["--variants", "busy,busy,no-polling,busy", "--json"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("note: --variants: busy, busy given more than once, runs once"), "{stderr}");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["config"]["variants"], serde_json::json!(["busy", "no-polling"]));
    assert_eq!(doc["runs"].as_array().unwrap().len(), 10 + 1 + 2, "busy 10 times at think 0, once otherwise");
    for row in doc["rows"].as_array().unwrap().iter().filter(|r| r["variant"] == "busy") {
        assert_eq!(row["speed_vs_busy"], 1.0, "{row}");
        assert_eq!(row["wake_vs_busy"], 1.0, "{row}");
    }
}

#[test]
fn ctrl_c_prints_the_runs_that_finished_marked_partial_and_exits_130() {
    let Some(_vm) = kvm_or_skip("ctrl_c_prints_the_runs_that_finished_marked_partial_and_exits_130") else { return };
    // Busy at 200 ms (3 round trips of two think times: 1.2 s), then busy at 1 s (6 s). Ctrl-C
    // comes once the second run's VM is there.
    let child = signals::start(&[
        "bench",
        "vm",
        "--variants",
        "busy",
        "--think",
        "200ms,1s",
        "--repetitions",
        "1",
        "--round-trips",
        "3",
        "--warmup",
        "0",
    ]);
    let out = signals::interrupt_in_vm(child, 2, Signal::INT);
    let (stdout, stderr) = signals::texts(&out);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stdout.starts_with("PARTIAL RESULTS: interrupted after 1 of 2 runs"), "{stdout}");
    assert!(stdout.contains("\n200.00 ms  busy "), "the finished run's row: {stdout}");
    assert!(!stdout.contains("1.00 s  busy"), "the interrupted run is not shown: {stdout}");
    assert!(stderr.ends_with("haltpoll: interrupted after 1 of 2 runs: the results printed are partial\n"), "{stderr}");
}

#[test]
fn a_failing_run_prints_the_runs_before_it_marked_partial_and_exits_1() {
    let Some(_vm) = kvm_or_skip("a_failing_run_prints_the_runs_before_it_marked_partial_and_exits_1") else { return };
    // Busy at think 0 (10 runs a repetition, numbered 1-10) and 20 us, then the second repetition's first run
    // (number 11) fails.
    let bench = |extra: &[&str]| {
        haltpoll()
            .args(["bench", "vm", "--variants", "busy", "--think", "0,20us", "--repetitions", "2"])
            .args(["--round-trips", "20", "--warmup", "0"])
            .args(extra)
            .env("HALTPOLL_TEST_FAIL_RUN", "12")
            .output()
            .unwrap()
    };
    let failure = "busy at think 0 ns, repetition 11: run 12 failed on purpose (HALTPOLL_TEST_FAIL_RUN=12)";
    let out = bench(&[]);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.ends_with(&format!("haltpoll: error: {failure}\n")), "{stderr}");
    let marker = format!(
        "PARTIAL RESULTS: stopped by an error after 11 of 22 runs; only those that finished are shown: {failure}\n"
    );
    assert!(stdout.starts_with(&marker), "{stdout}");
    assert!(stdout.contains("\n    0 ns  busy "), "the first run's row: {stdout}");
    assert!(stdout.contains("\n 20.0 us  busy "), "the second run's row: {stdout}");

    let out = bench(&["--json"]);
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((&doc["partial"], &doc["stopped_by"], &doc["error"]), (&true.into(), &"error".into(), &failure.into()));
    assert_eq!(doc["runs"].as_array().unwrap().len(), 11, "{doc}");
}

#[test]
fn vm_pingpong_runs_the_driver_and_says_what_it_did() {
    let Some(_vm) = kvm_or_skip("vm_pingpong_runs_the_driver_and_says_what_it_did") else { return };
    haltpoll()
        .args(["vm", "pingpong", "--idle", "haltpoll", "-n", "200", "-r", "1", "--warmup", "20"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "haltpoll driver  loaded (REALTIME hint); host polling switched off by MSR on 2 of 2 vCPUs",
        ))
        .stdout(predicate::str::contains("guest polls "));
    haltpoll()
        .args(["vm", "pingpong", "--idle", "haltpoll", "-n", "50", "-r", "1", "--realtime-hint", "off"])
        .assert()
        .success()
        .stdout(predicate::str::contains("refused: no REALTIME hint"))
        .stdout(predicate::str::contains("2.00 IPIs sent, 0.00 skipped"));
    haltpoll()
        .args(["vm", "pingpong", "--idle", "haltpoll", "--governor", "predictive", "-n", "200", "-r", "1"])
        .args(["--warmup", "20", "--poll-budget", "10%"])
        .assert()
        .success()
        .stdout(predicate::str::contains("host polling switched off by MSR on 2 of 2 vCPUs"))
        .stdout(predicate::str::contains("; predictive governor"));
    haltpoll()
        .args(["vm", "pingpong", "--idle", "haltpoll", "--latency-req", "0,1us,2us"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("3 latency requirements for 2 vCPUs"));
}
