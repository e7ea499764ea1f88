//! A process that may run on one CPU does not poll (the analogue of the cpuidle-haltpoll
//! driver refusing to load where it cannot help), unless forced. A test binary of its own:
//! the decision is read once per process, by the first parker.

#![cfg(all(target_os = "linux", not(any(loom, miri))))]

use std::time::Duration;

use haltpoll_park::{Parker, Polling, polling_can_help};
use rustix::thread::{CpuSet, sched_getaffinity, sched_setaffinity};

#[test]
fn one_cpu_means_no_polling() {
    // Narrow this thread (the one that asks first) to the first CPU it may use.
    let allowed = sched_getaffinity(None).expect("sched_getaffinity");
    let first = (0..CpuSet::MAX_CPU).find(|&c| allowed.is_set(c)).expect("some CPU is allowed");
    let mut one = CpuSet::new();
    one.set(first);
    sched_setaffinity(None, &one).expect("sched_setaffinity to one allowed CPU");

    assert!(!polling_can_help());
    let auto = Parker::new();
    assert!(!auto.polls());
    // A latency limit of 0 asks to poll only, but on one CPU polling cannot help: still off.
    let zero = Parker::builder().latency_limit(Duration::ZERO).build().unwrap();
    assert!(!zero.polls());
    assert!(!zero.park_timeout_unparked(Duration::from_millis(2)));
    assert_eq!((zero.stats().poll_timeouts, zero.stats().poll_hits), (0, 0), "it never polled");
    // Forced, it polls.
    assert!(Parker::builder().polling(Polling::Force).build().unwrap().polls());
}
