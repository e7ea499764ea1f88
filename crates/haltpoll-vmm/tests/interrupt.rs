//! A run the caller interrupts (`run_until`) stops within moments, its vCPUs kicked out of
//! `KVM_RUN` wherever they were (spinning at ring 3, halted), and says it was interrupted; a
//! run that ends first still reports.

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use haltpoll_vmm::testing::kvm_or_skip;
use haltpoll_vmm::{IdlePolicy, RunOptions, VmmError, run_until};

/// A run of about 20 s: 10 round trips of two 1 s think times.
fn long_run(idle: IdlePolicy) -> RunOptions {
    RunOptions { idle, round_trips: 10, think_ns: 1_000_000_000, ..Default::default() }
}

#[test]
fn an_interrupted_run_stops_at_once_and_says_so() {
    let Some(_vm) = kvm_or_skip("an_interrupted_run_stops_at_once_and_says_so") else { return };
    for idle in [IdlePolicy::Busy, IdlePolicy::Halt] {
        let stop = AtomicBool::new(false);
        let started = Instant::now();
        let result = thread::scope(|s| {
            s.spawn(|| {
                thread::sleep(Duration::from_millis(300));
                stop.store(true, Ordering::Relaxed);
            });
            run_until(&long_run(idle), &stop)
        });
        let took = started.elapsed();
        assert!(matches!(result, Err(VmmError::Interrupted)), "{idle:?}: {result:?}");
        // Not a timing assertion on the VMM's speed: the run would take 20 s; an interrupt that
        // went unheeded would run it to the end.
        assert!(took < Duration::from_secs(10), "{idle:?}: the run went on for {took:?} after the interrupt");
    }
}

#[test]
fn a_run_that_finishes_reports_even_if_interrupted_later() {
    let Some(_vm) = kvm_or_skip("a_run_that_finishes_reports_even_if_interrupted_later") else { return };
    let stop = AtomicBool::new(false);
    let report = run_until(&RunOptions { idle: IdlePolicy::Busy, round_trips: 50, ..Default::default() }, &stop)
        .expect("an uninterrupted run reports");
    assert_eq!(report.round_trips(), 50);
    stop.store(true, Ordering::Relaxed);
    let err = run_until(&long_run(IdlePolicy::Busy), &stop).unwrap_err();
    assert_eq!(err.to_string(), "the run was interrupted before it ended");
}
