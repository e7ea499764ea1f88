//! `haltpoll vm pingpong` as a user runs it (on KVM; skipped without it unless
//! HALTPOLL_REQUIRE_KVM=1).

#![cfg(all(target_os = "linux", target_arch = "x86_64"))]

use assert_cmd::Command;
use haltpoll_vmm::testing::kvm_or_skip;
use predicates::prelude::*;

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
    haltpoll()
        .args(["vm", "pingpong", "--time-limit", "0"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("--time-limit 0: give a positive number of seconds"));
    haltpoll().args(["vm", "pingpong", "--repeat", "0"]).assert().failure();
}
