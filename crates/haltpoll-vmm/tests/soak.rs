//! Soak: 200 VMs created, run and torn down in one process leave no file descriptor behind and
//! no memory that grows with the count. (Alone in its test binary: other tests' threads would
//! open and close files while this one counts them.)

use haltpoll_vmm::testing::kvm_or_skip;
use haltpoll_vmm::{IdlePolicy, RunOptions, run};

/// The process's open file descriptors.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").expect("/proc/self/fd").count()
}

/// The process's resident set, KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("a VmRSS line");
    line.split_whitespace().nth(1).and_then(|kib| kib.parse().ok()).expect("VmRSS in kB")
}

#[test]
fn two_hundred_vms_leave_no_files_and_no_memory_behind() {
    let Some(_vm) = kvm_or_skip("two_hundred_vms_leave_no_files_and_no_memory_behind") else { return };
    let options = |i: usize| RunOptions {
        // Both ways of waiting: the halting runs use the in-kernel LAPIC and IPIs too.
        idle: if i.is_multiple_of(2) { IdlePolicy::Busy } else { IdlePolicy::Halt },
        round_trips: 20,
        host_halt_poll_ns: Some(0),
        ..Default::default()
    };
    // The first runs set up what lives as long as the process (the kick handler, allocator
    // arenas of the vCPU threads): measure from after them.
    for i in 0..10 {
        run(&options(i)).unwrap_or_else(|e| panic!("warm-up run {i}: {e}"));
    }
    let (fds, rss) = (open_fds(), rss_kib());
    for i in 0..200 {
        let report = run(&options(i)).unwrap_or_else(|e| panic!("run {i}: {e}"));
        assert_eq!(report.round_trips(), 20, "run {i}");
    }
    let (fds_after, rss_after) = (open_fds(), rss_kib());
    assert_eq!(fds_after, fds, "open files before and after 200 VMs");
    // Each VM maps its guest memory and the vCPUs' kvm_run pages; 200 leaked VMs would hold
    // hundreds of MiB. 32 MiB of slack covers the allocator's own growth.
    assert!(rss_after < rss + 32 * 1024, "RSS grew from {rss} KiB to {rss_after} KiB over 200 VMs");
    eprintln!("200 VMs: {fds} open files before and {fds_after} after; RSS {rss} KiB before, {rss_after} KiB after");
}
