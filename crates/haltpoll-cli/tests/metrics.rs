//! `haltpoll status --format prometheus` on fixture sysfs trees, read back by an independent
//! parser of the text exposition format (prometheus-parse).

mod common;
mod exposition;

use assert_cmd::Command;
use exposition::{conventions, parse, value};
use predicates::prelude::*;

fn status(root: &std::path::Path) -> Command {
    let mut cmd = Command::cargo_bin("haltpoll").unwrap();
    cmd.arg("status").arg("--sysfs-root").arg(root).args(["--format", "prometheus"]);
    cmd
}

#[test]
fn a_polling_guest_as_metrics() {
    let dir = tempfile::tempdir().unwrap();
    common::polling_guest(dir.path());
    let out = status(dir.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let scrape = parse(&text);
    let poll1 = [("cpu", "1"), ("state", "POLL"), ("index", "0")];
    assert_eq!(value(&scrape, "haltpoll_cpuidle_state_usage_total", &poll1), Some(30_001.0));
    // The fixture's 900000 µs, in seconds.
    assert_eq!(value(&scrape, "haltpoll_cpuidle_state_time_seconds_total", &poll1), Some(0.9));
    assert_eq!(value(&scrape, "haltpoll_cpuidle_state_below_total", &poll1), Some(20_000.0));
    let halt0 = [("cpu", "0"), ("state", "haltpoll idle")];
    assert_eq!(value(&scrape, "haltpoll_cpuidle_state_time_seconds_total", &halt0), Some(9.1));
    assert_eq!(value(&scrape, "haltpoll_cpuidle_state_exit_latency_seconds", &halt0), Some(0.000001));
    assert_eq!(value(&scrape, "haltpoll_cpuidle_state_disabled", &halt0), Some(0.0));
    assert_eq!(value(&scrape, "haltpoll_cpuidle_info", &[("driver", "haltpoll"), ("governor", "haltpoll")]), Some(1.0));
    assert_eq!(value(&scrape, "haltpoll_guest_halt_poll_ceiling_seconds", &[]), Some(0.0002));
    assert_eq!(value(&scrape, "haltpoll_guest_halt_poll_grow_start_seconds", &[]), Some(0.00005));
    assert_eq!(value(&scrape, "haltpoll_guest_halt_poll_grow", &[]), Some(2.0));
    assert_eq!(value(&scrape, "haltpoll_guest_halt_poll_allow_shrink", &[]), Some(1.0));
    for source in ["cpuidle", "params", "force"] {
        assert_eq!(value(&scrape, "haltpoll_read_success", &[("source", source)]), Some(1.0), "{source}");
    }
    assert_eq!(value(&scrape, "haltpoll_cpuidle_haltpoll_force", &[]), None, "the fixture has no driver parameter");
    let version = [("version", env!("CARGO_PKG_VERSION"))];
    assert_eq!(value(&scrape, "haltpoll_build_info", &version), Some(1.0), "the command's version");
    conventions(&text);
}

#[test]
fn a_file_that_cannot_be_read_costs_only_its_own_source() {
    let dir = tempfile::tempdir().unwrap();
    common::polling_guest(dir.path());
    common::put(dir.path(), "devices/system/cpu/cpu1/cpuidle/state1/usage", "lots");
    let out = status(dir.path()).output().unwrap();
    assert!(out.status.success(), "a textfile collector gets what could be read");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cpu1/cpuidle/state1/usage: expected a whole number"), "{stderr}");
    let scrape = parse(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(value(&scrape, "haltpoll_read_success", &[("source", "cpuidle")]), Some(0.0));
    assert_eq!(value(&scrape, "haltpoll_read_success", &[("source", "params")]), Some(1.0));
    assert_eq!(value(&scrape, "haltpoll_cpuidle_state_usage_total", &[("cpu", "0"), ("state", "POLL")]), None);
    assert_eq!(value(&scrape, "haltpoll_guest_halt_poll_ceiling_seconds", &[]), Some(0.0002));
}

#[test]
fn no_haltpoll_no_parameters() {
    let dir = tempfile::tempdir().unwrap();
    common::bare_metal(dir.path());
    let out = status(dir.path()).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let scrape = parse(&text);
    assert_eq!(value(&scrape, "haltpoll_cpuidle_info", &[("driver", "intel_idle"), ("governor", "menu")]), Some(1.0));
    assert_eq!(value(&scrape, "haltpoll_cpuidle_state_usage_total", &[("cpu", "3"), ("state", "C6")]), Some(8_003.0));
    assert_eq!(value(&scrape, "haltpoll_guest_halt_poll_ceiling_seconds", &[]), None);
    assert_eq!(value(&scrape, "haltpoll_read_success", &[("source", "params")]), Some(1.0), "absent is not a failure");
    conventions(&text);
}

#[test]
fn format_choices() {
    let dir = tempfile::tempdir().unwrap();
    common::polling_guest(dir.path());
    status(dir.path()).args(["--watch", "1"]).assert().failure().stderr(predicate::str::contains("single reading"));
    let mut json = Command::cargo_bin("haltpoll").unwrap();
    json.arg("status").arg("--sysfs-root").arg(dir.path()).args(["--format", "json"]);
    let out = json.output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["haltpoll_active"], true);
    let mut both = Command::cargo_bin("haltpoll").unwrap();
    both.arg("status").args(["--json", "--format", "prometheus"]).assert().code(2);
    status(&dir.path().join("nope")).assert().failure().stderr(predicate::str::contains("does not exist"));
}

#[test]
fn findings_by_code_and_the_latency_limit() {
    let dir = tempfile::tempdir().unwrap();
    common::haltpoll_guest(dir.path());
    let system = common::system(dir.path(), 0, &[0, 0]);
    let out = status(dir.path()).args(&system).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let scrape = parse(&text);
    let finding =
        |code: &str, severity: &str| value(&scrape, "haltpoll_finding", &[("code", code), ("severity", severity)]);
    assert_eq!(finding("HP014", "warning"), Some(1.0), "a latency limit of 0: every idle period polls");
    assert_eq!(finding("HP005", "warning"), Some(1.0), "guest_halt_poll_ns=0");
    assert_eq!(finding("HP017", "info"), Some(1.0), "set on the command line");
    assert_eq!(finding("HP016", "warning"), Some(0.0), "every MSR says the host does not poll");
    assert_eq!(value(&scrape, "haltpoll_cpu_latency_limit_seconds", &[]), Some(0.0));
    assert_eq!(value(&scrape, "haltpoll_host_polling_info", &[("state", "off"), ("source", "msr")]), Some(1.0));
    conventions(&text);
}
