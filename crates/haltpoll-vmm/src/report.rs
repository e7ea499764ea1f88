//! What a run measured: per vCPU, the guest's counters and samples, KVM's counters and the host
//! CPU time; and the figures derived from them (round trip, wake latencies and their quantiles,
//! figures per message and per round trip, shares, idle periods), derived here once for every
//! report that shows them.

use std::time::Duration;

use haltpoll_abi::{Counters, DriverLoad, DriverReport, PollControl, Sample};

use crate::stats::KvmStats;
use haltpoll::share;
use haltpoll_bench::quantile::quantile;

/// One run of a VM.
#[derive(Clone, Debug)]
pub struct RunReport {
    /// Per vCPU, by index.
    pub vcpus: Vec<VcpuRun>,
    /// The guest TSC's frequency, kHz.
    pub tsc_khz: u64,
    /// Whether the guest's CPUID showed KVM_HINTS_REALTIME.
    pub realtime_hint: bool,
    /// Whether the host offers MSR_KVM_POLL_CONTROL (the guest can switch host polling off).
    pub poll_control_offered: bool,
    /// The VM's host halt-polling window, ns: as set by the run, else the host default (if the
    /// VMM could read it).
    pub host_halt_poll_ns: Option<u64>,
    /// Whether `host_halt_poll_ns` was set for this VM (otherwise it is the host's default).
    pub host_halt_poll_set: bool,
    /// Wall-clock time from starting the vCPUs to the last one ending.
    pub wall: Duration,
}

/// One vCPU's share of a run.
#[derive(Clone, Debug)]
pub struct VcpuRun {
    /// The vCPU.
    pub index: usize,
    /// The host CPU its thread was pinned to.
    pub host_cpu: Option<usize>,
    /// The guest's counters (of the measured round trips).
    pub counters: Counters,
    /// What the haltpoll driver found and did.
    pub driver: DriverReport,
    /// The change in KVM's counters over the measured part of the run (from the vCPU's mark at
    /// the end of the warm-up, or from its start).
    pub kvm: KvmStats,
    /// The vCPU thread's CPU time (host and guest mode) over the same part.
    pub cpu_time: Duration,
    /// Times the host scheduler preempted the vCPU thread (another task was runnable on its
    /// host CPU and got it), over the same part.
    pub preempted: u64,
    /// Times the vCPU thread went to sleep by itself (a halt the host did not poll through).
    pub slept: u64,
    /// One per message received, up to the sample capacity.
    pub samples: Vec<Sample>,
}

impl RunReport {
    /// Converts TSC ticks to ns.
    pub fn tsc_to_ns(&self, ticks: u64) -> f64 {
        ticks as f64 * 1e6 / self.tsc_khz as f64
    }

    /// Round trips completed, over all pairs.
    pub fn round_trips(&self) -> u64 {
        self.sum(|v| v.counters.round_trips)
    }

    /// Messages received, over all vCPUs.
    pub fn messages(&self) -> u64 {
        self.sum(|v| v.counters.messages_received)
    }

    /// Mean round-trip time, ns, as the vCPUs that start the round trips timed them (TSC);
    /// `None` if no round trip ran.
    pub fn round_trip_ns(&self) -> Option<f64> {
        let trips = self.round_trips();
        (trips > 0).then(|| self.tsc_to_ns(self.sum(|v| v.counters.workload_tsc)) / trips as f64)
    }

    /// Adds up `f` over the vCPUs.
    pub fn sum(&self, f: impl Fn(&VcpuRun) -> u64) -> u64 {
        self.vcpus.iter().map(f).sum()
    }

    /// Total host CPU time of the vCPU threads.
    pub fn cpu_time(&self) -> Duration {
        self.vcpus.iter().map(|v| v.cpu_time).sum()
    }

    /// One-way wake latencies, ns, of every sampled message (all vCPUs).
    pub fn wake_latencies_ns(&self) -> Vec<u64> {
        self.vcpus.iter().flat_map(|v| v.samples.iter().map(|s| self.tsc_to_ns(s.latency_tsc()) as u64)).collect()
    }

    /// The `q`-quantile of the wake latencies, ns ([`quantile`]); `None` if no message was
    /// sampled.
    pub fn wake_latency_ns(&self, q: f64) -> Option<f64> {
        let latencies: Vec<f64> = self.wake_latencies_ns().into_iter().map(|ns| ns as f64).collect();
        quantile(&latencies, q)
    }

    /// `total` per message received, all vCPUs (a run without messages counts one, so its
    /// figures read 0 rather than NaN).
    pub fn per_message(&self, total: f64) -> f64 {
        total / self.messages().max(1) as f64
    }

    /// `total` per round trip, all pairs (a run without round trips counts one).
    pub fn per_round_trip(&self, total: f64) -> f64 {
        total / self.round_trips().max(1) as f64
    }

    /// Wakeups that needed no IPI (the target was polling), of all wakeups its wakers asked
    /// about; `None` if they never asked (their idle policy has no wake flags).
    pub fn no_ipi_share(&self) -> Option<f64> {
        let sent = self.sum(|v| v.counters.ipis_sent);
        let skipped = self.sum(|v| v.counters.ipis_skipped);
        (sent + skipped > 0).then(|| skipped as f64 / (sent + skipped) as f64)
    }

    /// Time the vCPUs spent polling, ns, all vCPUs.
    pub fn poll_ns(&self) -> f64 {
        self.tsc_to_ns(self.sum(|v| v.counters.poll_tsc))
    }

    /// Time the waiting vCPUs spent polling over the time they spent waiting (0 if they never
    /// waited).
    pub fn poll_share_of_idle(&self) -> f64 {
        share(self.sum(|v| v.counters.poll_tsc), self.sum(|v| v.counters.idle_tsc))
    }

    /// Time the vCPUs spent polling over the time they ran the workload (each vCPU of a pair
    /// lives through its pair's round trips): the share of the CPUs' time a poll budget caps.
    pub fn poll_share_of_time(&self) -> f64 {
        // Per pair, both vCPUs live through the starter's workload time.
        let workload = 2 * self.sum(|v| v.counters.workload_tsc);
        share(self.sum(|v| v.counters.poll_tsc), workload)
    }

    /// The haltpoll driver's load decision, where the guest ran the driver.
    pub fn driver_load(&self) -> Option<DriverLoad> {
        self.vcpus.first().and_then(|v| v.driver.load()).filter(|&l| l != DriverLoad::NotUsed)
    }

    /// vCPUs on which the haltpoll driver switched host polling off by MSR.
    pub fn host_polling_off(&self) -> usize {
        self.vcpus.iter().filter(|v| v.driver.poll_control() == Some(PollControl::HostPollOff)).count()
    }

    /// vCPU `vcpu`'s idle periods, ns: for each sampled message, from starting to wait until the
    /// sender sent it (the trace format `haltpoll replay` reads).
    pub fn idle_periods_ns(&self, vcpu: usize) -> Vec<u64> {
        self.vcpus[vcpu].samples.iter().map(|s| self.tsc_to_ns(s.idle_tsc()) as u64).collect()
    }
}

/// Repeated runs of the same options, pooled: each figure over all of them at once, as
/// `haltpoll vm pingpong` sums up its repetitions.
#[derive(Clone, Copy, Debug)]
pub struct Pooled<'a>(pub &'a [RunReport]);

impl Pooled<'_> {
    /// The `q`-quantile of the runs' mean round trips, ns ([`quantile`]); `None` if no run
    /// completed a round trip.
    pub fn round_trip_ns(&self, q: f64) -> Option<f64> {
        let round_trips: Vec<f64> = self.0.iter().filter_map(RunReport::round_trip_ns).collect();
        quantile(&round_trips, q)
    }

    /// Messages whose wake latency was sampled, all runs.
    pub fn wake_samples(&self) -> usize {
        self.0.iter().map(|r| r.sum(|v| v.samples.len() as u64) as usize).sum()
    }

    /// The `q`-quantile of every run's wake latencies, ns; `None` if no message was sampled.
    pub fn wake_latency_ns(&self, q: f64) -> Option<f64> {
        let latencies: Vec<f64> = self.0.iter().flat_map(RunReport::wake_latencies_ns).map(|ns| ns as f64).collect();
        quantile(&latencies, q)
    }

    /// `f` of every run, added up, per round trip of all of them (no round trip counts one, so
    /// the figure reads 0 rather than NaN).
    pub fn per_round_trip(&self, f: impl Fn(&RunReport) -> u64) -> f64 {
        let trips = self.0.iter().map(RunReport::round_trips).sum::<u64>().max(1);
        self.0.iter().map(f).sum::<u64>() as f64 / trips as f64
    }

    /// Time the waiting vCPUs of every run spent polling over the time they spent waiting (0 if
    /// they never waited).
    pub fn poll_share_of_idle(&self) -> f64 {
        let total = |f: fn(&VcpuRun) -> u64| self.0.iter().map(|r| r.sum(f)).sum();
        share(total(|v| v.counters.poll_tsc), total(|v| v.counters.idle_tsc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vcpu(index: usize, counters: Counters, samples: Vec<Sample>) -> VcpuRun {
        VcpuRun {
            index,
            host_cpu: None,
            counters,
            driver: DriverReport::default(),
            kvm: KvmStats::default(),
            cpu_time: Duration::ZERO,
            preempted: 0,
            slept: 0,
            samples,
        }
    }

    #[test]
    fn derived_figures() {
        let starter = Counters { round_trips: 10, workload_tsc: 20_000, messages_received: 10, ..Default::default() };
        let responder = Counters { messages_received: 10, ..Default::default() };
        let sample = Sample { enter_tsc: 1_000, stamp_tsc: 3_000, seen_tsc: 3_500, think_tsc: 0 };
        let report = RunReport {
            vcpus: vec![vcpu(0, starter, vec![]), vcpu(1, responder, vec![sample])],
            tsc_khz: 2_000_000, // 2 GHz: 2 ticks per ns
            realtime_hint: true,
            poll_control_offered: true,
            host_halt_poll_ns: Some(0),
            host_halt_poll_set: true,
            wall: Duration::ZERO,
        };
        assert_eq!(report.round_trips(), 10);
        assert_eq!(report.messages(), 20);
        assert_eq!(report.round_trip_ns(), Some(1_000.0));
        assert_eq!(report.wake_latencies_ns(), vec![250]);
        assert_eq!(report.wake_latency_ns(0.99), Some(250.0));
        assert_eq!(report.per_message(40.0), 2.0);
        assert_eq!(report.per_round_trip(40.0), 4.0);
        assert_eq!(report.no_ipi_share(), None, "no waker asked");
        assert_eq!(report.poll_share_of_idle(), 0.0, "no vCPU waited");
        assert_eq!(report.driver_load(), None);
        assert_eq!(report.idle_periods_ns(1), vec![1_000]);
        assert!(report.idle_periods_ns(0).is_empty());
    }

    #[test]
    fn shares_and_an_empty_run() {
        let waker = Counters {
            ipis_sent: 1,
            ipis_skipped: 3,
            idle_tsc: 1_000,
            poll_tsc: 250,
            workload_tsc: 5_000,
            ..Default::default()
        };
        let report = RunReport {
            vcpus: vec![vcpu(0, waker, vec![])],
            tsc_khz: 1_000_000,
            realtime_hint: true,
            poll_control_offered: true,
            host_halt_poll_ns: None,
            host_halt_poll_set: false,
            wall: Duration::ZERO,
        };
        assert_eq!(report.no_ipi_share(), Some(0.75));
        assert_eq!(report.poll_share_of_idle(), 0.25);
        assert_eq!(report.poll_share_of_time(), 0.025, "250 of the pair's 2 x 5000 ticks");
        assert_eq!(report.poll_ns(), 250.0);
        assert_eq!(report.per_message(5.0), 5.0, "no messages: per one");
        assert_eq!(report.wake_latency_ns(0.5), None);
    }

    fn run(counters: Counters, samples: Vec<Sample>) -> RunReport {
        RunReport {
            vcpus: vec![vcpu(0, counters, samples)],
            tsc_khz: 1_000_000, // 1 tick per ns
            realtime_hint: true,
            poll_control_offered: true,
            host_halt_poll_ns: None,
            host_halt_poll_set: false,
            wall: Duration::ZERO,
        }
    }

    #[test]
    fn repetitions_pool_their_counts_before_dividing() {
        let sample = |latency: u64| Sample { enter_tsc: 0, stamp_tsc: 100, seen_tsc: 100 + latency, think_tsc: 0 };
        let one = Counters {
            round_trips: 1,
            workload_tsc: 300,
            ipis_sent: 3,
            poll_tsc: 1,
            idle_tsc: 4,
            ..Default::default()
        };
        let three = Counters {
            round_trips: 3,
            workload_tsc: 300,
            ipis_sent: 1,
            poll_tsc: 3,
            idle_tsc: 4,
            ..Default::default()
        };
        let reports = [run(one, vec![sample(10), sample(30)]), run(three, vec![sample(20)])];
        let pooled = Pooled(&reports);
        assert_eq!(pooled.round_trip_ns(0.0), Some(100.0), "300 ticks over 3 round trips");
        assert_eq!(pooled.round_trip_ns(1.0), Some(300.0));
        assert_eq!(
            pooled.per_round_trip(|r| r.sum(|v| v.counters.ipis_sent)),
            1.0,
            "4 IPIs over 4 round trips, not the mean of 3 and 1/3"
        );
        assert_eq!(pooled.poll_share_of_idle(), 0.5, "4 of 8 ticks waiting");
        assert_eq!((pooled.wake_samples(), pooled.wake_latency_ns(0.5)), (3, Some(20.0)));
        let none = Pooled(&[]);
        assert_eq!((none.round_trip_ns(0.5), none.wake_latency_ns(0.5), none.wake_samples()), (None, None, 0));
        assert_eq!((none.per_round_trip(|_| 7), none.poll_share_of_idle()), (0.0, 0.0));
    }
}
