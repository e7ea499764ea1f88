//! The guest boots and ping-pongs under each idle policy, with every message delivered; the
//! KVM and guest counters show the mechanism at work (halts, IPIs, host polls), not times.

use haltpoll_vmm::testing::{kvm_or_skip, timing_check};
use haltpoll_vmm::{IdlePolicy, PollControl, RunOptions, RunReport, run};

fn pingpong(options: RunOptions) -> RunReport {
    let report = run(&options).unwrap_or_else(|e| panic!("{options:?}: {e}"));
    let pairs = options.vcpus as u64 / 2;
    assert_eq!(report.round_trips(), pairs * options.round_trips, "every round trip completes");
    for v in &report.vcpus {
        assert_eq!(v.counters.messages_sent, options.round_trips, "vCPU {}", v.index);
        assert_eq!(v.counters.messages_received, options.round_trips, "vCPU {}: every message arrives", v.index);
        assert_eq!(v.samples.len() as u64, options.round_trips, "vCPU {}: a sample per message", v.index);
        assert!(v.cpu_time > std::time::Duration::ZERO);
    }
    assert!(report.round_trip_ns().is_some_and(|ns| ns > 0.0));
    report
}

#[test]
fn busy_polling_needs_no_halt_and_no_ipi() {
    let Some(_vm) = kvm_or_skip("busy_polling_needs_no_halt_and_no_ipi") else { return };
    let report = pingpong(RunOptions { idle: IdlePolicy::Busy, round_trips: 2_000, ..Default::default() });
    for v in &report.vcpus {
        assert_eq!((v.counters.halts, v.counters.ipis_sent, v.counters.irqs), (0, 0, 0), "vCPU {}", v.index);
        assert_eq!(v.kvm.halt_exits(), 0, "vCPU {}: a spinning guest never halts", v.index);
    }
}

#[test]
fn halting_costs_a_halt_exit_and_an_ipi_per_wakeup() {
    let Some(_vm) = kvm_or_skip("halting_costs_a_halt_exit_and_an_ipi_per_wakeup") else { return };
    let report = pingpong(RunOptions {
        idle: IdlePolicy::Halt,
        round_trips: 300,
        host_halt_poll_ns: Some(0),
        ..Default::default()
    });
    assert!(report.host_halt_poll_set);
    for v in &report.vcpus {
        let c = &v.counters;
        assert_eq!(c.ipis_sent, c.messages_sent, "vCPU {}: the halt policy kicks every message", v.index);
        assert!(c.halts > 0 && c.halts <= c.messages_received, "vCPU {}: {} halts", v.index, c.halts);
        assert!(c.irqs >= c.halts, "vCPU {}: each halt ends with an interrupt", v.index);
        assert_eq!(v.kvm.halt_exits(), c.halts, "vCPU {}: every guest HLT is one KVM halt exit", v.index);
        assert_eq!(v.kvm.halt_attempted_poll(), 0, "vCPU {}: a 0 ns window never polls", v.index);
        assert!(v.kvm.halt_wakeup() > 0, "vCPU {}: halted vCPUs were woken", v.index);
    }
}

#[test]
fn host_polling_catches_wakeups_unless_the_guest_switches_it_off() {
    let Some(_vm) = kvm_or_skip("host_polling_catches_wakeups_unless_the_guest_switches_it_off") else {
        return;
    };
    let options =
        RunOptions { idle: IdlePolicy::Halt, round_trips: 500, host_halt_poll_ns: Some(200_000), ..Default::default() };
    // KVM stops a host poll as soon as another task is runnable on that CPU, so on a busy
    // machine (another build, or `stress-ng`, on every CPU) no run may catch a wakeup: a timing
    // check, over up to three runs of a tenth of a second (a quiet machine needs one).
    const RUNS: usize = 3;
    let caught = |r: &RunReport| r.vcpus.iter().all(|v| v.kvm.halt_successful_poll() > 0);
    let mut polled = false;
    for _ in 0..RUNS {
        let report = pingpong(options.clone());
        for v in &report.vcpus {
            assert!(v.kvm.halt_attempted_poll() >= v.kvm.halt_successful_poll(), "vCPU {}", v.index);
        }
        polled = caught(&report);
        if polled {
            break;
        }
    }
    timing_check(polled, || format!("in {RUNS} runs, some vCPU's host never caught a wakeup by polling"));
    // The guest writes 0 to MSR_KVM_POLL_CONTROL on each vCPU: the host stops polling for it.
    let off = pingpong(RunOptions { poll_control: PollControl::HostPollOff, ..options });
    assert!(off.poll_control_offered);
    for v in &off.vcpus {
        assert!(v.counters.halts > 0);
        assert_eq!(v.kvm.halt_attempted_poll(), 0, "vCPU {}: MSR_KVM_POLL_CONTROL = 0 stops host polling", v.index);
    }
}

#[test]
fn senders_think_before_each_message() {
    let Some(_vm) = kvm_or_skip("senders_think_before_each_message") else { return };
    let think_ns = 20_000;
    let report = pingpong(RunOptions { idle: IdlePolicy::Halt, round_trips: 100, think_ns, ..Default::default() });
    let (starter, responder) = (&report.vcpus[0].samples, &report.vcpus[1].samples);
    let at_least_think = |from: u64, to: u64| report.tsc_to_ns(to.saturating_sub(from)) >= think_ns as f64 * 0.999;
    // Causality on the one TSC both vCPUs share: a vCPU sends only after it has seen the
    // message it answers and thought for think_ns. The samples carry both ends.
    for k in 0..100 {
        let (request, reply) = (responder[k], starter[k]);
        assert!(request.seen_tsc >= request.stamp_tsc && reply.seen_tsc >= reply.stamp_tsc, "message {k}");
        assert!(at_least_think(request.seen_tsc, reply.stamp_tsc), "reply {k} came before the responder thought");
        if k + 1 < 100 {
            assert!(at_least_think(reply.seen_tsc, responder[k + 1].stamp_tsc), "request {} came too soon", k + 1);
        }
    }
    assert_eq!(report.wake_latencies_ns().len(), 200);
}

#[test]
fn two_pairs_share_the_host_and_lose_the_realtime_hint() {
    let Some(_vm) = kvm_or_skip("two_pairs_share_the_host_and_lose_the_realtime_hint") else { return };
    let report = pingpong(RunOptions { vcpus: 4, idle: IdlePolicy::Halt, round_trips: 100, ..Default::default() });
    let host_cpus = haltpoll_bench::host::host_cpus().unwrap().len();
    assert_eq!(report.realtime_hint, host_cpus >= 4, "the hint only when each vCPU has a host CPU");
    let forced = run(&RunOptions {
        vcpus: 4,
        round_trips: 10,
        realtime_hint: haltpoll_vmm::RealtimeHint::On,
        ..Default::default()
    })
    .unwrap();
    assert!(forced.realtime_hint);
}
