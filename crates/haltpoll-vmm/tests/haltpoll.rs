//! The cpuidle-haltpoll driver in our guest on KVM, asserted by its counters and KVM's, never by
//! time: the driver's MSR write stops host polling, the load gate refuses without the REALTIME
//! hint and loads with force, the latency requirement is per vCPU, every wake is one IPI or
//! one skipped IPI. How many IPIs a polling vCPU saves, and where the window ends, depend on
//! how the host schedules the vCPU threads (a descheduled vCPU makes its peer's poll time out):
//! those are checks that report (`testing::timing_check`), and `bench vm`'s targets.

use haltpoll::{LATENCY_ANY, Params};
use haltpoll_vmm::testing::{kvm_or_skip, timing_check};
use haltpoll_vmm::{DriverLoad, IdlePolicy, PollControl, RealtimeHint, RunOptions, RunReport, run};

/// A haltpoll ping-pong with a warm-up, host window 200 us (the bench's set-up).
fn haltpoll(options: RunOptions) -> RunReport {
    let options =
        RunOptions { idle: IdlePolicy::Haltpoll, host_halt_poll_ns: Some(200_000), warmup_round_trips: 50, ..options };
    let report = run(&options).unwrap_or_else(|e| panic!("{options:?}: {e}"));
    for v in &report.vcpus {
        let c = &v.counters;
        assert_eq!(c.messages_received, options.round_trips, "vCPU {}: every message arrives", v.index);
        assert_eq!(c.ipis_sent + c.ipis_skipped, c.messages_sent, "vCPU {}: one wake per message", v.index);
        assert_eq!(v.kvm.halt_exits(), c.halts, "vCPU {}: every guest HLT is one KVM halt exit", v.index);
    }
    report
}

fn loads(report: &RunReport) -> Vec<Option<DriverLoad>> {
    report.vcpus.iter().map(|v| v.driver.load()).collect()
}

#[test]
fn guest_polling_skips_most_ipis_and_switches_host_polling_off() {
    let Some(_vm) = kvm_or_skip("guest_polling_skips_most_ipis_and_switches_host_polling_off") else { return };
    let report = haltpoll(RunOptions { round_trips: 2_000, realtime_hint: RealtimeHint::On, ..Default::default() });
    for v in &report.vcpus {
        let c = &v.counters;
        assert_eq!(v.driver.load(), Some(DriverLoad::Loaded), "vCPU {}", v.index);
        assert_eq!(v.driver.poll_control(), Some(PollControl::HostPollOff), "vCPU {}: wrote 0 to the MSR", v.index);
        assert_eq!(v.kvm.halt_attempted_poll(), 0, "vCPU {}: the host does not poll once the MSR says 0", v.index);
        timing_check(c.ipis_skipped > c.messages_sent / 2 && c.poll_hits > c.messages_received / 2, || {
            format!("vCPU {}: most IPIs skipped, most waits caught polling: {c:?}", v.index)
        });
        timing_check(v.driver.poll_limit_ns > 0 && c.halts < c.messages_received / 2, || {
            format!("vCPU {}: the window open at the end ({} ns), few halts: {c:?}", v.index, v.driver.poll_limit_ns)
        });
        let to = c.ipis_to_running + c.ipis_to_idle + c.ipis_to_polling + c.ipis_to_halting;
        assert_eq!(to, c.ipis_sent, "vCPU {}: each IPI says where its target was", v.index);
    }
}

#[test]
fn above_the_ceiling_the_window_shrinks_to_zero() {
    let Some(_vm) = kvm_or_skip("above_the_ceiling_the_window_shrinks_to_zero") else { return };
    // The warm-up (no think time) opens the windows; 300 us between messages is above the
    // 200 us ceiling, so the first halt shrinks them: 50 us / 2 is below grow_start, so 0.
    // (A reply the host delays makes a warm-up halt long, or a thread preempted between its
    // send and its wait makes a period short: the window's path is a timing check.)
    let report = haltpoll(RunOptions {
        round_trips: 100,
        think_ns: 300_000,
        realtime_hint: RealtimeHint::On,
        ..Default::default()
    });
    for v in &report.vcpus {
        let c = &v.counters;
        assert!(c.halts > 0, "vCPU {}: a window that never opens past 200 us halts: {c:?}", v.index);
        timing_check(c.shrinks >= 1 && v.driver.poll_limit_ns == 0, || {
            format!("vCPU {}: the window shrank and ends at 0 ({} ns): {c:?}", v.index, v.driver.poll_limit_ns)
        });
        timing_check(c.halts > c.messages_received / 2 && c.poll_tsc < c.idle_tsc / 20, || {
            format!("vCPU {}: most waits halt at once, polling under 5% of the wait: {c:?}", v.index)
        });
    }
}

#[test]
fn the_gate_refuses_without_the_realtime_hint_and_loads_with_force() {
    let Some(_vm) = kvm_or_skip("the_gate_refuses_without_the_realtime_hint_and_loads_with_force") else { return };
    let options = RunOptions { round_trips: 300, realtime_hint: RealtimeHint::Off, ..Default::default() };
    let refused = haltpoll(options.clone());
    assert_eq!(loads(&refused), [Some(DriverLoad::RefusedNoRealtimeHint); 2]);
    for v in &refused.vcpus {
        let c = &v.counters;
        assert_eq!(
            v.driver.poll_control(),
            Some(PollControl::Leave),
            "vCPU {}: a refused driver leaves the MSR",
            v.index
        );
        assert_eq!((c.poll_hits, c.poll_timeouts, c.ipis_skipped), (0, 0, 0), "vCPU {}: plain halt", v.index);
        assert!(c.halts > 0);
    }
    let forced = haltpoll(RunOptions { force: true, ..options });
    assert_eq!(loads(&forced), [Some(DriverLoad::Forced); 2]);
    for v in &forced.vcpus {
        assert_eq!(v.driver.poll_control(), Some(PollControl::HostPollOff), "vCPU {}", v.index);
        let c = &v.counters;
        timing_check(c.ipis_skipped > 0 && c.poll_hits > 0, || format!("vCPU {}: polls: {c:?}", v.index));
        assert_eq!(v.kvm.halt_attempted_poll(), 0, "vCPU {}", v.index);
    }
    // Two pairs on two host CPUs: no vCPU has a host CPU of its own, so the hint is not shown.
    let overcommitted = haltpoll(RunOptions { vcpus: 4, host_cpus: Some(2), round_trips: 100, ..Default::default() });
    assert!(!overcommitted.realtime_hint);
    assert_eq!(loads(&overcommitted), [Some(DriverLoad::RefusedNoRealtimeHint); 4]);
}

#[test]
fn off_kvm_the_driver_refuses_even_when_forced() {
    let Some(_vm) = kvm_or_skip("off_kvm_the_driver_refuses_even_when_forced") else { return };
    let report = haltpoll(RunOptions { round_trips: 50, force: true, hide_kvm: true, ..Default::default() });
    assert_eq!(loads(&report), [Some(DriverLoad::RefusedNotKvm); 2]);
    assert!(!report.poll_control_offered);
}

#[test]
fn the_msr_stops_host_polling_and_without_poll_control_the_host_keeps_polling() {
    let Some(_vm) = kvm_or_skip("the_msr_stops_host_polling_and_without_poll_control_the_host_keeps_polling") else {
        return;
    };
    // A 10 us ceiling and 30 us between messages: the guest's polls time out and most waits
    // end in a short halt, which KVM's host polling (200 us window) would poll through.
    let options = RunOptions {
        round_trips: 300,
        think_ns: 30_000,
        realtime_hint: RealtimeHint::On,
        governor: Params { guest_halt_poll_ns: 10_000, grow_start: 10_000, ..Params::DEFAULT }
            .validate()
            .unwrap()
            .into(),
        ..Default::default()
    };
    let switched_off = haltpoll(options.clone());
    for v in &switched_off.vcpus {
        assert_eq!(v.driver.poll_control(), Some(PollControl::HostPollOff), "vCPU {}", v.index);
        assert!(v.counters.halts > 0, "vCPU {}: {:?}", v.index, v.counters);
        assert_eq!(v.kvm.halt_attempted_poll(), 0, "vCPU {}: MSR_KVM_POLL_CONTROL = 0, no host polls", v.index);
    }
    let report = haltpoll(RunOptions { hide_poll_control: true, ..options });
    assert!(!report.poll_control_offered);
    for v in &report.vcpus {
        assert_eq!(v.driver.load(), Some(DriverLoad::Loaded), "vCPU {}: loads anyway", v.index);
        assert_eq!(v.driver.poll_control_missing, 1, "vCPU {}: says so", v.index);
        assert_eq!(v.driver.poll_control(), Some(PollControl::Leave), "vCPU {}: writes nothing", v.index);
        assert!(v.counters.halts > 0, "vCPU {}: {:?}", v.index, v.counters);
        // KVM polls only after halts shorter than its window, and gives up at once when another
        // task is runnable on that CPU: whether it tried is a timing check.
        timing_check(v.kvm.halt_attempted_poll() > 0, || format!("vCPU {}: host polling stays on", v.index));
    }
}

#[test]
fn a_zero_latency_requirement_polls_only_on_that_vcpu() {
    let Some(_vm) = kvm_or_skip("a_zero_latency_requirement_polls_only_on_that_vcpu") else { return };
    // Above the ceiling vCPU 1's window shrinks to 0 and it halts; vCPU 0 may not halt at all.
    let report = haltpoll(RunOptions {
        round_trips: 100,
        think_ns: 300_000,
        realtime_hint: RealtimeHint::On,
        latency_req_ns: vec![0, LATENCY_ANY],
        ..Default::default()
    });
    let (poller, halter) = (&report.vcpus[0], &report.vcpus[1]);
    assert_eq!(poller.driver.latency_req_ns, 0);
    assert_eq!(poller.counters.halts + poller.counters.halts_aborted, 0, "latency requirement 0: never halts");
    assert_eq!(halter.counters.ipis_sent, 0, "vCPU 1 never needs to kick a vCPU that only polls");
    timing_check(poller.counters.poll_hits > 50 && halter.counters.halts > 50, || {
        format!("vCPU 0 polls for most messages, vCPU 1 halts: {:?} {:?}", poller.counters, halter.counters)
    });
    assert!(poller.counters.ipis_sent >= halter.counters.halts, "every halt of vCPU 1 needs vCPU 0's IPI");
}
