//! `haltpoll status` on fixture sysfs trees.

mod common;

use assert_cmd::Command;
use predicates::prelude::*;

/// `haltpoll status` on the fixture at `root`, its /proc and /dev at `root/proc` and
/// `root/dev` (absent unless a test makes them with `common::system`), so that no test reads
/// this machine's.
fn status(root: &std::path::Path) -> Command {
    let mut cmd = Command::cargo_bin("haltpoll").unwrap();
    cmd.arg("status").arg("--sysfs-root").arg(root);
    cmd.arg("--proc-root").arg(root.join("proc")).arg("--dev-root").arg(root.join("dev"));
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

    // A parameter that cannot be read is reported, and the rest of the state still shown.
    let dir = tempfile::tempdir().unwrap();
    common::haltpoll_guest(dir.path());
    common::put(dir.path(), "module/haltpoll/parameters/guest_halt_poll_allow_shrink", "maybe");
    status(dir.path())
        .assert()
        .success()
        .stdout(predicate::str::contains("guest_halt_poll_allow_shrink  (unreadable)"))
        .stdout(predicate::str::contains("guest_halt_poll_allow_shrink: expected Y or N, found \"maybe\""))
        .stdout(predicate::str::contains("`haltpoll set allow_shrink=VALUE` writes it anew"));

    let dir = tempfile::tempdir().unwrap();
    common::haltpoll_guest(dir.path());
    std::fs::remove_file(dir.path().join("devices/system/cpu/cpu0/cpuidle/state0/name")).unwrap();
    status(dir.path()).assert().failure().stderr(predicate::str::contains(
        "cpu0/cpuidle/state0/name is missing: every cpuidle state has one (is this tree a copy cut short?)",
    ));
}

/// Regression: a parameter file that is a directory printed its cause twice
/// (`Is a directory (os error 21): Is a directory (os error 21)`) and refused the whole tree.
#[test]
fn a_parameter_that_is_a_directory_is_said_once_and_the_rest_shown() {
    let dir = tempfile::tempdir().unwrap();
    common::haltpoll_guest(dir.path());
    let file = dir.path().join("module/haltpoll/parameters/guest_halt_poll_grow_start");
    std::fs::remove_file(&file).unwrap();
    std::fs::create_dir(&file).unwrap();
    let out = status(dir.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("guest_halt_poll_grow_start is a directory, not a sysfs attribute file"), "{stdout}");
    assert!(stdout.contains("guest_halt_poll_ns            0"), "the others are read: {stdout}");
    assert!(!stdout.contains("os error"), "{stdout}");
}

/// Regression: a parameter file that is a link to /dev/zero, or a 50 MB file, was read whole
/// (RSS past 8 GB); now each ends at once with the limit named.
#[test]
fn endless_and_huge_files_end_at_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    common::haltpoll_guest(dir.path());
    let file = dir.path().join("module/haltpoll/parameters/guest_halt_poll_ns");
    std::fs::remove_file(&file).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &file).unwrap();
    status(dir.path())
        .assert()
        .success()
        .stdout(predicate::str::contains("guest_halt_poll_ns is a character device, not a sysfs attribute file"));
    let usage = dir.path().join("devices/system/cpu/cpu0/cpuidle/state1/usage");
    std::fs::write(&usage, "1".repeat(50 << 20)).unwrap();
    let out = status(dir.path()).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("state1/usage holds more than 65536 bytes, more than any sysfs attribute"), "{stderr}");
    assert!(stderr.len() < 1000, "the file is not echoed: {} bytes", stderr.len());
}

/// Regression: a `usage` of 2^64-1 wrapped the sums: "1844674407370955161600.0% of idle entries
/// were polls".
#[test]
fn a_counter_at_the_top_of_64_bits_gives_sane_shares() {
    let dir = tempfile::tempdir().unwrap();
    common::polling_guest(dir.path());
    for cpu in 0..2 {
        common::put(dir.path(), &format!("devices/system/cpu/cpu{cpu}/cpuidle/state0/usage"), &u64::MAX.to_string());
        common::put(dir.path(), &format!("devices/system/cpu/cpu{cpu}/cpuidle/state0/time"), &u64::MAX.to_string());
    }
    let out = status(dir.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let re = regex_lite(&stdout);
    assert_eq!(re, Some((100.0, 100.0)), "{stdout}");
}

/// The two shares of "since boot X% of idle entries were polls and Y% of idle time was spent polling".
fn regex_lite(text: &str) -> Option<(f64, f64)> {
    let rest = text.split("since boot ").nth(1)?;
    let (entries, rest) = rest.split_once("% of idle entries were polls and ")?;
    let (time, _) = rest.split_once("% of idle time")?;
    Some((entries.parse().ok()?, time.parse().ok()?))
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
        .stderr(predicate::str::contains("is not an interval above 0"));
}

#[test]
fn where_values_came_from_steal_latency_and_host_polling() {
    let dir = tempfile::tempdir().unwrap();
    common::haltpoll_guest(dir.path());
    common::system(dir.path(), 0, &[0, 1]);
    status(dir.path())
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "  guest_halt_poll_ns            0  (Linux default 200000; from the kernel command line)\n",
        ))
        .stdout(predicate::str::contains("  guest_halt_poll_grow          2  (the default)\n"))
        .stdout(predicate::str::contains("  cpuidle_haltpoll.force        Y  (from the kernel command line)\n"))
        .stdout(predicate::str::contains("  host polling    mixed: MSR_KVM_POLL_CONTROL read on each CPU"))
        .stdout(predicate::str::contains("  steal           5.0% of the CPUs' time since boot (/proc/stat)\n"))
        .stdout(predicate::str::contains("  PM QoS latency  0 us (/dev/cpu_dma_latency)\n"))
        .stdout(predicate::str::contains("  - HP014 a PM QoS request holds every CPU's wakeup latency at 0 µs"))
        .stdout(predicate::str::contains("  - HP015 the vCPUs waited 5.0% of their time since boot"))
        .stdout(predicate::str::contains("  - HP017 guest_halt_poll_ns=0 comes from the kernel command line"));

    let out = status(dir.path()).arg("--json").output().unwrap();
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["param_origins"][0]["param"], "guest_halt_poll_ns");
    assert_eq!(json["param_origins"][0]["source"], "command_line");
    assert_eq!(json["param_origins"][5]["param"], "cpuidle_haltpoll.force");
    assert_eq!(json["host_polling"]["state"], "mixed");
    assert_eq!(json["host_polling"]["cpus_polled_by_host"], serde_json::json!([1]));
    assert_eq!(json["steal"]["steal_ticks"], 50);
    assert_eq!(json["pm_qos"]["cpu_latency_limit_us"], 0);
    let codes: Vec<&str> =
        json["coded_findings"].as_array().unwrap().iter().map(|f| f["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["HP014", "HP005", "HP013", "HP015", "HP017"]);
    assert_eq!(json["coded_findings"][1]["text"], json["findings"][1]);
}

#[test]
fn what_cannot_be_read_is_unknown_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    common::haltpoll_guest(dir.path());
    status(dir.path())
        .assert()
        .success()
        .stdout(predicate::str::contains("  steal           unknown: no steal column in /proc/stat (or no /proc)\n"))
        .stdout(predicate::str::contains("  PM QoS latency  unknown: "))
        .stdout(predicate::str::contains("cpu_dma_latency does not exist (not Linux, or no /dev)\n"))
        .stdout(predicate::str::contains("  guest_halt_poll_grow          2\n"))
        .stdout(predicate::str::contains("; the MSR was not read: "))
        .stdout(predicate::str::contains("cpu does not exist: not Linux, or no /dev"));
}
