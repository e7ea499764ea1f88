//! `haltpoll vm pingpong` as a user runs it (on KVM; skipped without it unless
//! HALTPOLL_REQUIRE_KVM=1).

#![cfg(all(target_os = "linux", target_arch = "x86_64"))]

mod full_disk;
mod signals;

use std::ffi::OsStr;
use std::time::Duration;

use assert_cmd::Command;
use full_disk::{haltpoll_on_a_full_disk, partial_beside};
use haltpoll_vmm::testing::kvm_or_skip;
use predicates::prelude::*;
use rustix::process::Signal;

fn haltpoll() -> Command {
    Command::cargo_bin("haltpoll").unwrap()
}

#[test]
fn human_report_gives_the_median_round_trip_and_costs_per_round_trip() {
    let Some(_vm) = kvm_or_skip("human_report_gives_the_median_round_trip_and_costs_per_round_trip") else { return };
    haltpoll()
        .args(["vm", "pingpong", "--round-trips", "100", "--repeat", "3", "--host-halt-poll-ns", "0"])
        .assert()
        .success()
        .stdout(predicate::str::contains("host halt-poll window 0 ns, 100 round trips x 3 repetitions"))
        .stdout(predicate::str::contains("(median of 3; min"))
        .stdout(predicate::str::contains("2.00 IPIs sent, 0.00 skipped"))
        .stdout(predicate::str::contains("host polls       0.00 successful of 0.00 attempted"));
}

#[test]
fn json_has_every_repetition_and_vcpu() {
    let Some(_vm) = kvm_or_skip("json_has_every_repetition_and_vcpu") else { return };
    let out = haltpoll()
        .args(["vm", "pingpong", "-n", "50", "-r", "2", "--idle", "halt", "--host-halt-poll-ns", "0", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["options"]["idle"], "halt");
    assert_eq!(json["options"]["host_halt_poll_ns"], 0);
    let repetitions = json["repetitions"].as_array().unwrap();
    assert_eq!(repetitions.len(), 2);
    for rep in repetitions {
        assert_eq!(rep["round_trips"], 50);
        for vcpu in rep["vcpus"].as_array().unwrap() {
            assert_eq!(vcpu["counters"]["messages_received"], 50);
            assert_eq!(vcpu["counters"]["ipis_sent"], 50);
            assert_eq!(vcpu["kvm"]["halt_exits"], vcpu["counters"]["halts"]);
            assert_eq!(vcpu["kvm"]["halt_attempted_poll"], 0);
        }
    }
    assert_eq!(json["summary"]["per_round_trip"]["ipis_sent"], 2.0);
    assert_eq!(json["summary"]["wake_latency_ns"]["samples"], 200);
    assert!(json["summary"]["round_trip_ns"]["median"].as_f64().unwrap() > 0.0);
}

#[test]
fn the_idle_trace_replays_through_the_governor() {
    let Some(_vm) = kvm_or_skip("the_idle_trace_replays_through_the_governor") else { return };
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("idle.txt");
    haltpoll()
        .args(["vm", "pingpong", "-n", "40", "-r", "2", "--idle", "busy", "--think-ns", "30000", "--trace"])
        .arg(&trace)
        .assert()
        .success();
    let text = std::fs::read_to_string(&trace).unwrap();
    assert!(text.contains("# repetition 2\n# cpu 1\n"), "{text}");
    let out = haltpoll().arg("replay").arg(&trace).arg("--json").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let summary: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["summary"]["periods"], 2 * 2 * 40, "every message of every vCPU and repetition");
    let cpus: Vec<u64> =
        summary["summary"]["cpus"].as_array().unwrap().iter().map(|c| c["cpu"].as_u64().unwrap()).collect();
    assert_eq!(cpus, vec![0, 1], "one governor per vCPU");
}

#[test]
fn impossible_options_are_refused_before_any_vm_starts() {
    haltpoll()
        .args(["vm", "pingpong", "--vcpus", "3"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("3 vCPUs: the ping-pong runs in pairs, so the count must be even"));
    // The range the message names is the range the check lets through.
    for vcpus in ["0", "1", "3", "10"] {
        haltpoll().args(["vm", "pingpong", "--vcpus", vcpus]).assert().code(1).stderr(predicate::str::contains(
            format!("{vcpus} vCPUs: the ping-pong runs in pairs, so the count must be even, from 2 to 8"),
        ));
    }
    for limit in ["0", "1e20", "2e19", "1e-12", "-1", "inf", "NaN", "2000000s"] {
        haltpoll()
            .args(["vm", "pingpong", &format!("--time-limit={limit}")])
            .assert()
            .code(2)
            .stderr(predicate::str::contains(format!(
                "invalid value '{limit}' for '--time-limit <SECS>': \"{limit}\" is out of range: give 0.001 to 1000000 seconds"
            )));
    }
    haltpoll()
        .args(["vm", "pingpong", "--host-halt-poll-ns", "18446744073709551615"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "host halt-poll window 18446744073709551615 ns is out of range: KVM holds it in 32 bits, so give 0 to 4294967295 ns",
        ));
    haltpoll()
        .args(["vm", "pingpong", "--think-ns", "5000000000"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("think time 5s is too long: at most 1s per message"));
    haltpoll().args(["vm", "pingpong", "--repeat", "0"]).assert().code(2);
    // A trace that cannot be written is refused before the first VM (which would take minutes).
    haltpoll()
        .args(["vm", "pingpong", "-n", "1000", "--think-ns", "1000000000", "--trace", "/nonexistent/t.txt"])
        .timeout(Duration::from_secs(30))
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicate::str::contains(
            "haltpoll: error: cannot write the trace to /nonexistent/t.txt: No such file",
        ));
}

#[test]
fn time_limits_take_seconds_or_a_unit() {
    let Some(_vm) = kvm_or_skip("time_limits_take_seconds_or_a_unit") else { return };
    for limit in ["30", "2.5", "1e3", "30s", "1500ms"] {
        haltpoll().args(["vm", "pingpong", "-n", "20", "-r", "1", "--time-limit", limit]).assert().success();
    }
}

#[test]
fn a_trace_that_cannot_be_written_loses_no_result() {
    let Some(_vm) = kvm_or_skip("a_trace_that_cannot_be_written_loses_no_result") else { return };
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.txt");
    let args = ["vm", "pingpong", "-n", "2000", "-r", "2", "--trace"].map(OsStr::new);
    let out = haltpoll_on_a_full_disk(&[&args[..], &[trace.as_os_str()]].concat());
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stdout.contains("round trip ") && stdout.contains("(median of 2;"), "the results are printed: {stdout}");
    let partial = partial_beside(&trace);
    assert_eq!(
        stderr,
        format!(
            "haltpoll: error: cannot write the trace to {}: File too large (os error 27); {} is left as it was, and \
             what was written is kept in {}\n",
            trace.display(),
            trace.display(),
            partial.display()
        )
    );
    // A device is refused before the first VM.
    haltpoll()
        .args(["vm", "pingpong", "-n", "50", "-r", "2", "--trace", "/dev/full"])
        .assert()
        .code(2)
        .stdout("")
        .stderr(predicate::str::contains("/dev/full is not a regular file"));
}

#[test]
fn ctrl_c_prints_the_repetitions_that_finished_marked_partial_and_exits_130() {
    let Some(_vm) = kvm_or_skip("ctrl_c_prints_the_repetitions_that_finished_marked_partial_and_exits_130") else {
        return;
    };
    // Repetitions of 4 round trips of two 500 ms think times (4 s each, a VM each): Ctrl-C once
    // the second is there.
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("idle.txt");
    let trace_arg = trace.to_str().unwrap();
    let args = ["vm", "pingpong", "-n", "4", "-r", "3", "--think-ns", "500000000", "--trace", trace_arg];
    let out = signals::interrupt_in_vm(signals::start(&args), 2, Signal::INT);
    let (stdout, stderr) = signals::texts(&out);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stdout.starts_with("PARTIAL RESULTS: interrupted after 1 of 3 repetitions"), "{stdout}");
    assert!(stdout.contains("(median of 1;"), "the finished repetition: {stdout}");
    assert!(
        stderr.ends_with("haltpoll: interrupted after 1 of 3 repetitions: the results printed are partial\n"),
        "{stderr}"
    );
    let text = std::fs::read_to_string(&trace).unwrap();
    assert!(text.contains("# repetition 1\n") && !text.contains("# repetition 2\n"), "saved too: {text}");
}
