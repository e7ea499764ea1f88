//! `haltpoll tune` as a user runs it.

#[cfg(feature = "plot")]
mod full_disk;

use std::io::Write;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
#[cfg(feature = "plot")]
use full_disk::{haltpoll_on_a_full_disk, partial_beside};
use predicates::prelude::*;
use serde_json::Value;

fn haltpoll() -> Command {
    Command::cargo_bin("haltpoll").unwrap()
}

/// A guest whose wakeups come 300 us after it goes idle, with a 10 ms sleep every tenth time:
/// the default 200 us ceiling catches none of them, a ceiling of 400 us catches most.
fn trace() -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    for i in 0..400 {
        writeln!(f, "{}", if i % 10 == 9 { 10_000_000 } else { 300_000 }).unwrap();
    }
    f
}

fn tune_json(trace: &Path, args: &[&str]) -> Value {
    let out = haltpoll().arg("tune").arg(trace).arg("--json").args(args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn metrics(s: &Value) -> (u64, u64, f64) {
    (s["poll_hits"].as_u64().unwrap(), s["poll_ns"].as_u64().unwrap(), s["poll_share"].as_f64().unwrap())
}

#[test]
fn the_front_is_non_dominated_and_the_recommendation_keeps_the_rules() {
    let t = trace();
    for budget in ["1%", "5%", "20%", "60%"] {
        let json = tune_json(t.path(), &["--max-poll-share", budget]);
        let settings = json["settings"].as_array().unwrap();
        let front = json["front"].as_array().unwrap();
        for f in front {
            let (fh, fp, _) = metrics(f);
            assert!(f["on_front"].as_bool().unwrap());
            for s in settings {
                let (h, p, _) = metrics(s);
                assert!(!(h >= fh && p <= fp && (h > fh || p < fp)), "{s} dominates front point {f}");
            }
        }
        let budget = json["max_poll_share"].as_f64().unwrap();
        let r = &json["recommendation"];
        let (rh, rp, rs) = metrics(r);
        assert!(rs <= budget, "recommended {rs} exceeds budget {budget}");
        assert!(r["eligible"].as_bool().unwrap(), "{r}");
        assert!(r["idle_guest"]["poll_share"].as_f64().unwrap() <= budget, "{r}");
        // The knee: within a point of the best that keeps the rules, and none of those that
        // are as near polls less.
        let eligible: Vec<_> = settings.iter().filter(|s| s["eligible"].as_bool().unwrap()).map(metrics).collect();
        let best = eligible.iter().map(|m| m.0).max().unwrap();
        let periods = r["periods"].as_u64().unwrap();
        assert!((best - rh) * 100 <= periods, "budget {budget}: {best} caught by another, {rh} by the advice");
        assert!(!eligible.iter().any(|m| (best - m.0) * 100 <= periods && m.1 < rp), "budget {budget}: a cheaper knee");
        assert!(r["set_command"].as_str().unwrap().starts_with("haltpoll set guest_halt_poll_ns="));
        assert!(r["kernel_cmdline"].as_str().unwrap().starts_with("haltpoll.guest_halt_poll_ns="));
    }
}

#[test]
fn a_generous_budget_finds_the_ceiling_that_catches_the_wakeups() {
    let t = trace();
    let json = tune_json(t.path(), &["--max-poll-share", "50%"]);
    let r = &json["recommendation"];
    // 360 of the 400 periods are 300 us: a window of at least 300 us catches all but the
    // first few of them; the defaults catch none.
    assert!(r["guest_halt_poll_ns"].as_u64().unwrap() >= 300_000, "{r}");
    assert!(r["poll_hits"].as_u64().unwrap() >= 300, "{r}");
    assert_eq!(json["linux_defaults"]["poll_hits"], 0);
    assert_eq!(json["trace"]["cpu_time_basis"], "idle time");
}

#[test]
fn human_output_gives_the_commands() {
    let t = trace();
    haltpoll()
        .arg("tune")
        .arg(t.path())
        .args([
            "--max-poll-share",
            "50",
            "--ceilings",
            "0,200us,400us",
            "--grow-starts",
            "50us,400us",
            "--allow-shrink",
            "on",
        ])
        .assert()
        .success()
        // The advice sits at the largest ceiling given: the grid extends past it.
        .stdout(predicate::str::contains(
            "grid      7 settings: 4 ceilings x 2 starts x shrink on, grow 2, shrink 2; \
             extended where the advice sat at its edge: ceiling 800000",
        ))
        .stdout(predicate::str::contains("idle      all of the CPU time"))
        .stdout(predicate::str::contains("recommendation for a budget of 50.00% of CPU time"))
        // A start of 50 us leaves 300 us periods in the blind spot (the window settles at
        // 200 us, and a 100 us halt after it is too short to grow it); 400 us catches them.
        .stdout(predicate::str::is_match(r"  recommended +400000 +400000 +Y +80\.0% ").unwrap())
        .stdout(predicate::str::contains(
            "  sudo haltpoll set guest_halt_poll_ns=400000 guest_halt_poll_grow=2 guest_halt_poll_grow_start=400000 ",
        ))
        .stdout(predicate::str::contains("  haltpoll.guest_halt_poll_ns=400000 haltpoll.guest_halt_poll_grow=2"))
        .stdout(predicate::str::contains("cpuidle_haltpoll.force=1 if the host gives no REALTIME hint"));
}

#[test]
fn a_tight_budget_keeps_polling_off() {
    let t = trace();
    haltpoll()
        .arg("tune")
        .arg(t.path())
        .args(["--max-poll-share", "0.1%"])
        .assert()
        .success()
        .stdout(predicate::str::contains("keep guest polling off"))
        .stdout(predicate::str::contains("sudo haltpoll set guest_halt_poll_ns=0 "));
}

#[test]
fn polling_on_the_example_trace_is_not_worth_two_percent() {
    let trace = "../../examples/traces/perf-idle.txt";
    haltpoll()
        .args(["tune", trace, "--max-poll-share", "2%"])
        .assert()
        .success()
        .stdout(predicate::str::contains("idle      35.62% of the CPU time"))
        .stdout(predicate::str::contains("keep guest polling off (guest_halt_poll_ns=0): not worth it"))
        .stdout(predicate::str::contains("passed over: ns=100000 grow_start=100000 allow_shrink=N catches 3.1%"));
    let json = tune_json(trace.as_ref(), &["--max-poll-share", "2%"]);
    assert_eq!(json["recommendation"]["verdict"], "not-worth-it");
    assert_eq!(json["recommendation"]["guest_halt_poll_ns"], 0);
    assert_eq!(json["recommendation"]["passed_over"]["worth_it"], false);
}

/// The busy guest of the corpus: the setting that catches most within the budget polls all of
/// an idle guest's time on a 1000 Hz tick; the advice does not.
#[test]
fn a_busy_guests_advice_is_checked_on_the_guest_gone_idle() {
    let trace = "../../traces/corpus/redis-8-clients.perf.txt.gz";
    let json = tune_json(trace.as_ref(), &[]);
    let r = &json["recommendation"];
    assert_eq!(r["verdict"], "poll");
    assert!(r["idle_guest"]["poll_share"].as_f64().unwrap() <= 0.05, "{r}");
    let passed = &r["passed_over"];
    assert!(passed["idle_guest"]["poll_share"].as_f64().unwrap() > 0.05, "{passed}");
    assert!(passed["poll_hits"].as_u64() > r["poll_hits"].as_u64());
    assert_eq!(json["tick_hz"], serde_json::json!([250, 1000]));
    let json = tune_json(trace.as_ref(), &["--tick-hz", "250"]);
    assert_eq!(json["tick_hz"], serde_json::json!([250]));
    assert_eq!(json["recommendation"]["idle_guest"]["tick_hz"], 250);
}

#[test]
fn the_advice_carries_the_warnings_of_set() {
    let t = trace();
    let args = ["--max-poll-share", "50%", "--allow-shrink", "off", "--tick-hz", "250"];
    haltpoll()
        .arg("tune")
        .arg(t.path())
        .args(args)
        .assert()
        .success()
        .stdout(predicate::str::contains("  once the guest is idle it polls 10.00% of its time (on a 250 Hz tick)"))
        .stdout(predicate::str::contains("`haltpoll set` warns:\n  - the window never shrinks"));
    let json = tune_json(t.path(), &args);
    let warnings = json["recommendation"]["warnings"].as_array().unwrap();
    assert!(warnings[0].as_str().unwrap().starts_with("the window never shrinks"), "{warnings:?}");
}

#[test]
fn the_predictive_governor_is_left_to_compare() {
    let t = trace();
    haltpoll()
        .arg("tune")
        .arg(t.path())
        .args(["--governor", "predictive"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no kernel ships the predictive governor"))
        .stderr(predicate::str::contains("haltpoll compare"));
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

#[test]
fn perf_traces_count_wall_time_times_cpus() {
    let json = tune_json(&fixture("perf/two-cpus.txt"), &[]);
    assert_eq!(json["trace"]["wall_ns"], 1_160_000);
    assert_eq!(json["trace"]["cpus"], 2, "from the header");
    assert_eq!(json["trace"]["cpu_time_ns"], 2_320_000);
    let json = tune_json(&fixture("perf/two-cpus.txt"), &["--cpus", "8"]);
    assert_eq!(json["trace"]["cpu_time_ns"], 8 * 1_160_000);
    let d = &json["linux_defaults"];
    assert_eq!(d["poll_ns"], 130_000, "as `haltpoll replay` reports for the same trace");
    assert_eq!(d["poll_share"].as_f64().unwrap(), 130_000.0 / (8.0 * 1_160_000.0));
}

#[cfg(feature = "plot")]
#[test]
fn plots_in_either_format() {
    let t = trace();
    let dir = tempfile::tempdir().unwrap();
    for name in ["front.svg", "front.png"] {
        let path = dir.path().join(name);
        haltpoll().arg("tune").arg(t.path()).arg("--plot").arg(&path).assert().success();
        let bytes = std::fs::read(&path).unwrap();
        assert!(bytes.len() > 5_000, "{name}: {} bytes", bytes.len());
        if name.ends_with(".png") {
            assert_eq!(&bytes[..4], b"\x89PNG");
        } else {
            assert!(String::from_utf8(bytes).unwrap().contains("Pareto front"));
        }
    }
    haltpoll()
        .arg("tune")
        .arg(t.path())
        .args(["--plot", "front.jpg"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("front.jpg: a plot file must end in .svg or .png"));
}

#[test]
fn bad_input_is_refused_clearly() {
    let t = trace();
    let fails = |args: &[&str], message: &str| {
        haltpoll()
            .arg("tune")
            .arg(t.path())
            .args(args)
            .assert()
            .failure()
            .stderr(predicate::str::contains(message.to_owned()));
    };
    fails(&["--grow-starts", "0,50us"], "invalid grid: grow_start must be at least 1 ns");
    fails(&["--ceilings", "5s"], "guest_halt_poll_ns=5000000000 is beyond what the kernel can hold");
    fails(&["--ceilings", "50 parsecs"], "unknown unit");
    fails(&["--max-poll-share", "150%"], "not a percentage between 0 and 100");
    fails(&["--cpus", "0"], "--cpus");
    let empty = tempfile::NamedTempFile::new().unwrap();
    haltpoll().arg("tune").arg(empty.path()).assert().failure().stderr(predicate::str::contains("no idle periods"));
}

/// Regression: a perf header with 0 CPUs online was reported as "all idle periods are 0 ns long".
#[test]
fn a_header_with_0_cpus_is_reported_as_such() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(
        b"# ========\n# nrcpus online : 0\n# ========\n\
          swapper 0 [000] 1.000000: power:cpu_idle: state=1 cpu_id=0\n\
          swapper 0 [000] 1.000040: power:cpu_idle: state=4294967295 cpu_id=0\n",
    )
    .unwrap();
    haltpoll()
        .arg("tune")
        .arg(f.path())
        .assert()
        .failure()
        .stderr(predicate::str::contains(":2: the header says \"0\" CPUs are online"));
}

/// A grid whose settings make the kernel's window wrap says so (the replay follows the kernel).
#[test]
fn a_grid_that_wraps_the_kernels_window_is_noted() {
    let t = trace();
    haltpoll()
        .args(["tune", "--grow", "65536", "--ceilings", "200us", "--grow-starts", "65536"])
        .arg(t.path())
        .assert()
        .success()
        .stderr(predicate::str::contains("note: the kernel's window wraps under guest_halt_poll_ns=200000"));
}

#[cfg(feature = "plot")]
#[test]
fn a_plot_path_is_checked_before_the_work_and_drawn_after_the_report() {
    let t = trace();
    haltpoll()
        .arg("tune")
        .arg(t.path())
        .args(["--plot", "/nonexistent/front.svg"])
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicate::str::contains("cannot write the plot to /nonexistent/front.svg: No such file or directory"));
    // A full disk: the report is out before the picture fails, in one sentence.
    let dir = tempfile::tempdir().unwrap();
    let plot = dir.path().join("front.png");
    let out = haltpoll_on_a_full_disk(&["tune".as_ref(), t.path().as_ref(), "--plot".as_ref(), plot.as_ref()]);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stdout.contains("recommendation"), "the report is printed: {stdout}");
    let error = format!(
        "haltpoll: error: cannot write the plot to {}: File too large (os error 27); {} is left as it was, and \
         what was written is kept in {}\n",
        plot.display(),
        plot.display(),
        partial_beside(&plot).display()
    );
    assert!(stderr.ends_with(&error), "{stderr}");
    assert!(!plot.exists(), "nothing is renamed onto the target");
}
