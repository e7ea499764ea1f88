//! `haltpoll record` and `tune --record`: the errors on fixture tracefs trees and without root,
//! the cleanup on signals, and the recording itself against `perf record` on this machine.
//!
//! The tests that record need root, tracefs with the `power:cpu_idle` tracepoint and (for the
//! comparison) perf, and idle time on the CPUs. Where one is missing they print why and pass;
//! with `HALTPOLL_REQUIRE_TRACING=1` (CI, where all are there) they fail instead.
#![cfg(target_os = "linux")]

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use predicates::prelude::*;

const TRACEFS: &str = "/sys/kernel/tracing";

fn haltpoll() -> Command {
    Command::cargo_bin("haltpoll").unwrap()
}

fn binary() -> PathBuf {
    assert_cmd::cargo::cargo_bin("haltpoll")
}

/// Why this machine cannot record, if it cannot.
fn cannot_record() -> Option<String> {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let uid = status.lines().find_map(|l| l.strip_prefix("Uid:")).and_then(|l| l.split_whitespace().nth(1));
    if uid != Some("0") {
        return Some("not root".into());
    }
    if !Path::new(TRACEFS).join("events/power/cpu_idle").is_dir() {
        return Some(format!("{TRACEFS}/events/power/cpu_idle missing (tracefs not mounted, or no tracepoint)"));
    }
    None
}

/// Skips (passes with a reason) or, under HALTPOLL_REQUIRE_TRACING=1, fails.
fn skip(test: &str, why: &str) {
    if std::env::var_os("HALTPOLL_REQUIRE_TRACING").is_some_and(|v| v == "1") {
        panic!("{test}: {why}, and HALTPOLL_REQUIRE_TRACING=1");
    }
    eprintln!("skipped {test}: {why}");
}

/// Skips, whatever HALTPOLL_REQUIRE_TRACING says: the machine has what recording needs, but its
/// CPUs were too busy to idle often enough for a comparison. How often a CPU idles is the host's
/// to decide (a check that reports, as the VM tests' rates are), not a property of the recorder.
fn skip_busy(test: &str, why: &str) {
    eprintln!("skipped {test} (reported, not failed): {why}");
}

/// Runs `haltpoll ARGS` to its end; returns its output and whether its trace instance is left.
fn run_recording(args: &[&str]) -> (std::process::Output, bool) {
    let child = Process::new(binary()).args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let instance = Path::new(TRACEFS).join(format!("instances/haltpoll-{}", child.id()));
    let out = child.wait_with_output().unwrap();
    (out, instance.exists())
}

#[test]
fn no_tracefs_is_an_error_that_says_so() {
    let dir = tempfile::tempdir().unwrap();
    haltpoll()
        .args(["record", "--duration", "1s", "--tracefs"])
        .arg(dir.path().join("nowhere"))
        .assert()
        .failure()
        .code(1)
        .stderr(predicate::str::contains("does not exist: this kernel has no tracefs (CONFIG_TRACING)"));
}

/// Runs `record` on a fixture tracefs made of `dirs`; returns the failure's stderr and whether
/// a trace was left behind.
fn record_on_fixture(dirs: &[&str]) -> (String, bool, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    for d in dirs {
        fs::create_dir_all(dir.path().join(d)).unwrap();
    }
    let out = dir.path().join("idle.txt");
    let assert = haltpoll()
        .args(["record", "--duration", "1s", "-o"])
        .arg(&out)
        .arg("--tracefs")
        .arg(dir.path())
        .assert()
        .failure()
        .code(1);
    (String::from_utf8_lossy(&assert.get_output().stderr).into_owned(), out.exists(), dir)
}

#[test]
fn a_kernel_without_the_tracepoint_is_an_error_that_says_so() {
    let (stderr, left, _dir) = record_on_fixture(&["events/sched/sched_switch", "instances"]);
    assert!(
        stderr.contains("events/power/cpu_idle does not exist: this kernel has no power:cpu_idle tracepoint"),
        "{stderr}"
    );
    assert!(!left, "no trace is left behind");
}

#[test]
fn a_failure_after_the_instance_is_made_removes_it() {
    // A fixture's instance directory has none of the kernel's files, so setting its clock
    // fails: the instance must go, and the half-made trace with it.
    let (stderr, left, dir) = record_on_fixture(&["events/power/cpu_idle", "instances"]);
    assert!(stderr.contains("cannot read") && stderr.contains("trace_clock"), "{stderr}");
    assert_eq!(fs::read_dir(dir.path().join("instances")).unwrap().count(), 0, "the instance is removed");
    assert!(!left);
}

#[test]
fn a_failure_leaves_an_existing_output_as_it_was() {
    // Not tracefs (no events/): the recording fails before anything is recorded.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("precious.txt");
    fs::write(&out, "34 KB of an earlier recording\n").unwrap();
    haltpoll()
        .args(["record", "--duration", "1s", "-o"])
        .arg(&out)
        .arg("--tracefs")
        .arg(dir.path())
        .assert()
        .code(1)
        .stderr(predicate::str::contains("is not tracefs"));
    assert_eq!(fs::read_to_string(&out).unwrap(), "34 KB of an earlier recording\n");
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "nothing is left beside it");
}

/// Regression: forgetting sudo (`runuser -u nobody -- haltpoll record -o idle.txt`) deleted the
/// user's existing idle.txt. Run as a user that cannot record (nobody, when the tests run as
/// root; the user itself otherwise), the recording fails and the file is as it was.
#[test]
fn a_recording_without_root_leaves_an_existing_output_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("idle.txt");
    fs::write(&out, "34 KB of an earlier recording\n").unwrap();
    let mut cmd = if cannot_record().as_deref() == Some("not root") {
        Process::new(binary())
    } else {
        // nobody may write in the directory (as the user could in their own), and nothing else.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
        let mut cmd = Process::new("runuser");
        cmd.args(["-u", "nobody", "--"]).arg(binary());
        cmd
    };
    let result = cmd.args(["record", "--duration", "1s", "-o"]).arg(&out).output().unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr);
    if result.status.code() == Some(126) || result.status.code() == Some(127) || stderr.contains("runuser:") {
        return skip(
            "a_recording_without_root_leaves_an_existing_output_as_it_was",
            &format!("cannot run as nobody: {stderr}"),
        );
    }
    assert_eq!(result.status.code(), Some(1), "{stderr}");
    assert_eq!(fs::read_to_string(&out).unwrap(), "34 KB of an earlier recording\n", "{stderr}");
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "nothing is left beside it: {stderr}");
}

#[test]
fn a_device_or_directory_is_refused_as_the_output() {
    let dir = tempfile::tempdir().unwrap();
    for out in [Path::new("/dev/null"), Path::new("/dev/full"), dir.path()] {
        haltpoll()
            .args(["record", "--duration", "1s", "-o"])
            .arg(out)
            .arg("--tracefs")
            .arg(dir.path().join("nowhere"))
            .assert()
            .code(2)
            .stderr(predicate::str::contains("is not a regular file"));
    }
    assert!(Path::new("/dev/full").exists() && Path::new("/dev/null").exists());
}

#[test]
fn durations_are_checked() {
    haltpoll().args(["record", "--duration", "0"]).assert().code(2).stderr(predicate::str::contains("more than 0 s"));
    haltpoll().args(["record", "--duration", "10"]).assert().code(2).stderr(predicate::str::contains("no unit"));
    haltpoll()
        .args(["tune", "--record", "1s", "trace.txt"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cannot be used with"));
    haltpoll().arg("tune").assert().code(2).stderr(predicate::str::contains("<TRACE>"));
}

#[test]
fn without_root_it_says_root_is_needed() {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root = status.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
    if root && Process::new("setpriv").arg("--version").output().is_err() {
        return skip("without_root_it_says_root_is_needed", "running as root and setpriv is missing");
    }
    // As root, the command runs as nobody: setpriv (util-linux) drops the ids for it alone.
    let unprivileged = || {
        if root {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"]).arg(binary());
            c
        } else {
            Command::new(binary())
        }
    };
    let empty = tempfile::tempdir().unwrap();
    fs::set_permissions(empty.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    // Reading tracefs (mode 0700) and mounting it on an empty directory both need root.
    for tracefs in [Path::new(TRACEFS), empty.path()] {
        if !tracefs.exists() {
            continue;
        }
        unprivileged()
            .args(["record", "--duration", "1s", "--tracefs"])
            .arg(tracefs)
            .assert()
            .failure()
            .code(1)
            .stderr(predicate::str::contains("needs root (run it with sudo)"));
    }
}

/// Waits until `pred` holds, for up to `limit`.
fn wait_for(limit: Duration, mut pred: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if pred() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    pred()
}

#[test]
fn a_signal_mid_recording_stops_it_and_leaves_nothing_enabled() {
    if let Some(why) = cannot_record() {
        return skip("a_signal_mid_recording_stops_it_and_leaves_nothing_enabled", &why);
    }
    let global_enable = Path::new(TRACEFS).join("events/power/cpu_idle/enable");
    let before = fs::read_to_string(&global_enable).unwrap();
    for signal in ["INT", "TERM"] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("idle.txt");
        let child = Process::new(binary())
            .args(["record", "--duration", "60s", "-o"])
            .arg(&out)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let instance = Path::new(TRACEFS).join(format!("instances/haltpoll-{}", child.id()));
        let enable = instance.join("events/power/cpu_idle/enable");
        assert!(
            wait_for(Duration::from_secs(10), || fs::read_to_string(&enable).is_ok_and(|s| s.trim() == "1")),
            "the recording never enabled the event in its instance"
        );
        let kill = Process::new("kill").arg(format!("-{signal}")).arg(child.id().to_string()).status().unwrap();
        assert!(kill.success());
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(130), "SIG{signal}: {stderr}");
        assert!(stderr.contains("interrupted: the recording stopped after"), "{stderr}");
        assert!(!instance.exists(), "SIG{signal}: the instance {} is left", instance.display());
        let trace = fs::read_to_string(&out).unwrap();
        assert!(trace.starts_with("# ========\n"), "what was recorded is written: {trace:.200}");
    }
    assert_eq!(fs::read_to_string(&global_enable).unwrap(), before, "the global event is untouched");
}

#[test]
fn an_empty_directory_gets_tracefs_mounted_for_the_recording_only() {
    if let Some(why) = cannot_record() {
        return skip("an_empty_directory_gets_tracefs_mounted_for_the_recording_only", &why);
    }
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("tracing");
    fs::create_dir(&mnt).unwrap();
    haltpoll()
        .args(["record", "--duration", "300ms", "--tracefs"])
        .arg(&mnt)
        .assert()
        .success()
        .stdout(predicate::str::starts_with("# ========\n"))
        .stdout(predicate::str::contains("# nrcpus online : "));
    let mounts = fs::read_to_string("/proc/mounts").unwrap();
    assert!(!mounts.contains(mnt.to_str().unwrap()), "unmounted again: {mounts}");
    assert_eq!(fs::read_dir(&mnt).unwrap().count(), 0);
}

/// Regression: of two recordings on one empty mount point, the first warned it could not
/// unmount (EBUSY) and the second never unmounted; a mount a SIGKILL left stayed for good. Now
/// the last recording on a mount a recording made unmounts it, and a killed one's is adopted.
#[test]
fn the_last_recording_on_a_mount_it_made_unmounts_it() {
    if let Some(why) = cannot_record() {
        return skip("the_last_recording_on_a_mount_it_made_unmounts_it", &why);
    }
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("tracing");
    fs::create_dir(&mnt).unwrap();
    let mounted = || fs::read_to_string("/proc/mounts").unwrap().contains(mnt.to_str().unwrap());
    let record = |duration: &str| {
        Process::new(binary())
            .args(["record", "--duration", duration, "--tracefs"])
            .arg(&mnt)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let first = record("2s");
    assert!(wait_for(Duration::from_secs(10), mounted), "the first recording mounted tracefs");
    let second = record("3s");
    for child in [first, second] {
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(!stderr.contains("could not unmount"), "{stderr}");
    }
    assert!(!mounted(), "the last one unmounted it");
    // A killed recording leaves its mount; the next one adopts it and unmounts it.
    let mut killed = record("60s");
    assert!(wait_for(Duration::from_secs(10), mounted));
    killed.kill().unwrap();
    killed.wait().unwrap();
    assert!(mounted(), "SIGKILL leaves the mount");
    let out = record("300ms").wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!mounted(), "the next recording cleaned it up");
    assert_eq!(fs::read_dir(&mnt).unwrap().count(), 0);
}

/// Idle periods on every CPU: threads that sleep a few hundred µs to a few ms, then work a
/// little, until stopped.
fn idle_load(stop: &Arc<AtomicBool>) -> Vec<std::thread::JoinHandle<()>> {
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    (0..cpus)
        .map(|i| {
            let stop = Arc::clone(stop);
            std::thread::spawn(move || {
                let mut n = i as u64;
                while !stop.load(Ordering::Relaxed) {
                    n = n.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    std::thread::sleep(Duration::from_micros(200 + (n >> 33) % 3000));
                    let spin = Instant::now();
                    while spin.elapsed() < Duration::from_micros(50) {
                        std::hint::spin_loop();
                    }
                }
            })
        })
        .collect()
}

/// One idle period of a `perf script` text: (cpu, start µs, length µs).
type Period = (u32, i64, i64);

/// The idle periods of `perf script` text, entry to exit per CPU, with their start times (the
/// crate's reader drops those; this test needs them to pair periods up).
fn periods(text: &str) -> Vec<Period> {
    let mut open: HashMap<u32, i64> = HashMap::new();
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((before, fields)) = line.split_once(": power:cpu_idle: ") else { continue };
        let time = before.split_whitespace().last().unwrap();
        let (s, us) = time.split_once('.').unwrap();
        assert_eq!(us.len(), 6, "µs timestamps: {line}");
        let t = s.parse::<i64>().unwrap() * 1_000_000 + us.parse::<i64>().unwrap();
        let field =
            |name: &str| fields.split_whitespace().find_map(|f| f.strip_prefix(name)).unwrap().parse::<u64>().unwrap();
        let (state, cpu) = (field("state="), field("cpu_id=") as u32);
        if state == u64::from(u32::MAX) {
            if let Some(start) = open.remove(&cpu) {
                out.push((cpu, start, t - start));
            }
        } else {
            open.insert(cpu, t);
        }
    }
    out
}

#[test]
fn records_the_same_periods_as_perf() {
    let test = "records_the_same_periods_as_perf";
    if let Some(why) = cannot_record() {
        return skip(test, &why);
    }
    if Process::new("perf").arg("--version").output().is_err() {
        return skip(test, "perf is not installed (Debian: linux-perf)");
    }
    let dir = tempfile::tempdir().unwrap();
    let (ours, data) = (dir.path().join("haltpoll.txt"), dir.path().join("perf.data"));
    let stop = Arc::new(AtomicBool::new(false));
    let load = idle_load(&stop);
    // Both attach to the same tracepoint at once: perf through perf_event_open, haltpoll
    // through its tracefs instance. perf records a little longer, so that it covers all of
    // haltpoll's recording.
    let perf = Process::new("perf")
        .args(["record", "-q", "-e", "power:cpu_idle", "-a", "-o"])
        .arg(&data)
        .args(["--", "sleep", "4"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let (recorded, left) = run_recording(&["record", "--duration", "3s", "-o", ours.to_str().unwrap()]);
    assert!(!left, "the trace instance is left");
    let perf = perf.wait_with_output().unwrap();
    stop.store(true, Ordering::Relaxed);
    load.into_iter().for_each(|t| t.join().unwrap());
    assert!(recorded.status.success(), "{}", String::from_utf8_lossy(&recorded.stderr));
    assert!(perf.status.success(), "perf record: {}", String::from_utf8_lossy(&perf.stderr));
    let script = Process::new("perf").args(["script", "-i"]).arg(&data).output().unwrap();
    assert!(script.status.success(), "perf script: {}", String::from_utf8_lossy(&script.stderr));

    let ours_text = fs::read_to_string(&ours).unwrap();
    let (a, b) = (periods(&ours_text), periods(&String::from_utf8_lossy(&script.stdout)));
    // Compare where both were recording, away from the edges.
    let span = |ps: &[Period]| Some((ps.iter().map(|p| p.1).min()?, ps.iter().map(|p| p.1 + p.2).max()?));
    let (Some((a_first, a_last)), Some((b_first, b_last))) = (span(&a), span(&b)) else {
        return skip_busy(test, "no idle periods recorded (are the CPUs busy with other work?)");
    };
    let (from, to) = (a_first.max(b_first) + 100_000, a_last.min(b_last) - 100_000);
    let window = |p: &&Period| p.1 > from && p.1 + p.2 < to;
    let (a, b): (Vec<Period>, Vec<Period>) =
        (a.iter().filter(window).copied().collect(), b.iter().filter(window).copied().collect());
    if b.len() < 100 {
        return skip_busy(
            test,
            &format!("only {} idle periods while both recorded (are the CPUs busy with other work?)", b.len()),
        );
    }
    let mut by_cpu: HashMap<u32, Vec<(i64, i64)>> = HashMap::new();
    for &(cpu, start, len) in &a {
        by_cpu.entry(cpu).or_default().push((start, len));
    }
    by_cpu.values_mut().for_each(|v| v.sort_unstable());
    // Both read the same clock (local_clock) for the same event, one probe after the other,
    // each rounded to µs. An interrupt that lands between the two probes (on a nested guest,
    // with its VM exits, 100 µs and more) separates them further, now and then.
    const START_TOLERANCE_US: i64 = 3;
    const LENGTH_TOLERANCE_US: i64 = 5;
    let mut len_diffs = Vec::new();
    for &(cpu, start, len) in &b {
        let Some(ours) = by_cpu.get(&cpu) else { continue };
        let i = ours.partition_point(|&(s, _)| s < start - START_TOLERANCE_US);
        if let Some(&(_, l)) = ours.get(i).filter(|(s, _)| (s - start).abs() <= START_TOLERANCE_US) {
            len_diffs.push((l - len).abs());
        }
    }
    len_diffs.sort_unstable();
    let matched = len_diffs.len();
    let share = matched as f64 / b.len() as f64;
    let within = len_diffs.iter().filter(|&&d| d <= LENGTH_TOLERANCE_US).count() as f64 / matched.max(1) as f64;
    let at =
        |q: f64| len_diffs.get(((matched as f64 * q) as usize).min(matched.saturating_sub(1))).copied().unwrap_or(0);
    eprintln!(
        "{test}: perf {} periods, haltpoll {} periods in the common window; {matched} matched by CPU and start \
         within {START_TOLERANCE_US} us ({:.2}%); length differences: median {} us, p99 {} us, max {} us, \
         {:.2}% within {LENGTH_TOLERANCE_US} us",
        b.len(),
        a.len(),
        share * 100.0,
        at(0.5),
        at(0.99),
        len_diffs.last().copied().unwrap_or(0),
        within * 100.0
    );
    assert!(share >= 0.95, "only {:.2}% of perf's periods found in haltpoll's trace", share * 100.0);
    assert!(
        a.len() as f64 >= b.len() as f64 * 0.95 && a.len() as f64 <= b.len() as f64 * 1.05,
        "{} vs {}",
        a.len(),
        b.len()
    );
    assert!(
        within >= 0.95,
        "only {:.2}% of matched periods agree in length within {LENGTH_TOLERANCE_US} us",
        within * 100.0
    );
    // And the trace is one `replay` reads, with the header's CPUs.
    haltpoll().arg("replay").arg(&ours).arg("--json").assert().success();
}

#[test]
fn tune_records_and_recommends() {
    let test = "tune_records_and_recommends";
    if let Some(why) = cannot_record() {
        return skip(test, &why);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let load = idle_load(&stop);
    let (out, left) = run_recording(&["tune", "--record", "2s", "--json"]);
    assert!(!left, "the trace instance is left");
    stop.store(true, Ordering::Relaxed);
    load.into_iter().for_each(|t| t.join().unwrap());
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("no power:cpu_idle idle periods") || stderr.contains("no complete power:cpu_idle") {
        return skip_busy(test, "no idle periods in 2 s (are the CPUs busy with other work?)");
    }
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("haltpoll: recorded "), "{stderr}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["trace"]["path"], "the recording");
    assert_eq!(json["trace"]["format"], "perf script");
    assert!(json["trace"]["periods"].as_u64().unwrap() > 0);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    assert!(json["trace"]["cpus"].as_u64().unwrap() >= cpus, "from the header: {}", json["trace"]);
}
