//! `haltpoll status` on fixture sysfs trees.

mod common;

use assert_cmd::Command;
use predicates::prelude::*;

fn status(root: &std::path::Path) -> Command {
    let mut cmd = Command::cargo_bin("haltpoll").unwrap();
    cmd.arg("status").arg("--sysfs-root").arg(root);
    cmd
}

#[test]
fn a_haltpoll_guest_with_polling_off() {
    let dir = tempfile::tempdir().unwrap();
    common::haltpoll_guest(dir.path());
    status(dir.path())
        .assert()
        .success()
        .stdout(predicate::str::contains("  driver      haltpoll\n"))
        .stdout(predicate::str::contains("  governor    haltpoll (available: ladder menu teo haltpoll)"))
        .stdout(predicate::str::contains("  guest_halt_poll_ns            0  (Linux default 200000)"))
        .stdout(predicate::str::contains("  guest_halt_poll_allow_shrink  Y\n"))
        .stdout(predicate::str::contains("  cpuidle_haltpoll.force        Y"))
        .stdout(predicate::str::contains("hypervisor (CPUID of the CPU this command runs on)"))
        // cpu 1's usage is one more than cpu 0's in the fixture
        .stdout(predicate::str::is_match(r"\n +0 +1  haltpoll idle +39520 +610\.88 s +3 +0 +1 us +1 us  no\n").unwrap())
        .stdout(predicate::str::is_match(r"\n +1 +1  haltpoll idle +39521 ").unwrap())
        .stdout(predicate::str::contains("guest polling is off: guest_halt_poll_ns=0"));
}

#[test]
fn json_has_the_same_facts() {
    let dir = tempfile::tempdir().unwrap();
    common::polling_guest(dir.path());
    let out = status(dir.path()).arg("--json").output().unwrap();
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["haltpoll_active"], true);
    assert_eq!(json["params"]["guest_halt_poll_ns"], 200000);
    assert_eq!(json["params"]["guest_halt_poll_allow_shrink"], true);
    assert_eq!(json["cpuidle"]["cpus"][1]["states"][0]["name"], "POLL");
    assert_eq!(json["cpuidle"]["cpus"][1]["states"][0]["usage"], 30001);
    assert_eq!(json["cpuidle"]["cpus"][0]["states"][0]["below"], 20000);
    assert_eq!(json["cpuidle_haltpoll_force"], serde_json::Value::Null, "the fixture has no driver parameters");
    assert!(json["hypervisor"]["cpuid_available"].is_boolean());
    let findings = json["findings"].as_array().unwrap();
    // 60000 of 80002 entries, 1.8 of 20 s of idle time.
    assert!(
        findings
            .iter()
            .any(|f| f.as_str().unwrap().starts_with("since boot 75.0% of idle entries were polls and 9.0%"))
    );
}

#[test]
fn a_system_without_haltpoll_gets_an_explanation() {
    let dir = tempfile::tempdir().unwrap();
    common::bare_metal(dir.path());
    status(dir.path())
        .assert()
        .success()
        .stdout(predicate::str::contains("  driver      intel_idle"))
        .stdout(predicate::str::contains("haltpoll parameters").not())
        .stdout(predicate::str::is_match(r"\n +3 +2  C6 +8003 ").unwrap())
        .stdout(predicate::str::contains("the cpuidle driver is intel_idle, not haltpoll: this system does not poll"));
}

#[test]
fn a_tree_without_cpuidle_gets_an_explanation() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("devices/system/cpu/cpu0")).unwrap();
    status(dir.path()).assert().success().stdout(predicate::str::contains(
        "has no devices/system/cpu/cpuidle: not a Linux sysfs (is sysfs mounted there?), or a kernel without CPU idle",
    ));
}

#[test]
fn a_missing_root_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    status(&dir.path().join("nope"))
        .assert()
        .failure()
        .stderr(predicate::str::contains("the sysfs root").and(predicate::str::contains("does not exist")));
}

#[test]
fn malformed_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    common::haltpoll_guest(dir.path());
    common::put(dir.path(), "devices/system/cpu/cpu1/cpuidle/state1/usage", "lots");
    status(dir.path()).assert().failure().stderr(predicate::str::contains(
        "devices/system/cpu/cpu1/cpuidle/state1/usage: expected a whole number, found \"lots\"",
    ));

    let dir = tempfile::tempdir().unwrap();
    common::haltpoll_guest(dir.path());
    common::put(dir.path(), "module/haltpoll/parameters/guest_halt_poll_allow_shrink", "maybe");
    status(dir.path())
        .assert()
        .failure()
        .stderr(predicate::str::contains("guest_halt_poll_allow_shrink: expected Y or N, found \"maybe\""));

    let dir = tempfile::tempdir().unwrap();
    common::haltpoll_guest(dir.path());
    std::fs::remove_file(dir.path().join("devices/system/cpu/cpu0/cpuidle/state0/name")).unwrap();
    status(dir.path())
        .assert()
        .failure()
        .stderr(predicate::str::contains("cannot read").and(predicate::str::contains("cpu0/cpuidle/state0/name")));
}

#[test]
fn watch_prints_rates() {
    let dir = tempfile::tempdir().unwrap();
    common::polling_guest(dir.path());
    // The fixture does not change, so every rate is 0; the rates themselves are unit-tested.
    status(dir.path())
        .args(["--watch", "0.05", "--count", "2"])
        .assert()
        .success()
        .stdout(predicate::str::contains("entries/s"))
        .stdout(predicate::str::is_match(r"s  all +0 +0 +0 +0\.0% +0\.0%  at most 0 of 0 \(0\.0%\)\n").unwrap())
        .stdout(predicate::function(|s: &str| s.lines().count() == 1 + 2 * 3));
    let out = status(dir.path()).args(["--watch", "0.05", "--count", "1", "--json"]).output().unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["total"]["entries_per_s"], 0.0);
    assert_eq!(json["cpus"].as_array().unwrap().len(), 2);
}

#[test]
fn watch_needs_something_to_watch() {
    let dir = tempfile::tempdir().unwrap();
    status(dir.path())
        .args(["--watch", "0.05", "--count", "1"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("nothing to watch"));
    status(dir.path())
        .args(["--watch", "0"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("not a number of seconds"));
}
