//! One run: build the VM, write the run configuration, start a thread per vCPU, watch them, and
//! turn what they report into a [`RunReport`] or an error naming the vCPUs that failed.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use haltpoll::{GovernorParams, LATENCY_ANY, LatencyReq, ValidParams};
use haltpoll_abi::{
    ExitRecord, ExitStatus, IdlePolicy, MAX_VCPUS, PollControl, RunConfig, Sample, VcpuReport, Workload, layout,
};

use crate::cpuid::View;
use crate::error::{Failure, GuestError, GuestFailures};
use crate::report::{RunReport, VcpuRun};
use crate::stats::StatsFd;
use crate::vcpu::{End, VcpuOutcome, VcpuThread};
use crate::vm::Vm;
use crate::watchdog::{self, Limits, Verdict, Watchdog};
use crate::{VmmError, system};
use haltpoll_bench::host::host_cpus;
use haltpoll_bench::limits;

/// Whether the guest's CPUID shows KVM_HINTS_REALTIME ("each vCPU has a host CPU of its own").
/// With feature `clap`, an option value: `auto`, `on`, `off`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum RealtimeHint {
    /// Shown when every vCPU is pinned to a host CPU of its own.
    #[default]
    Auto,
    /// Always shown (even when vCPUs share host CPUs).
    On,
    /// Never shown.
    Off,
}

/// How to run the guest.
///
/// ```no_run
/// use haltpoll_vmm::{IdlePolicy, RunOptions};
/// let options = RunOptions { idle: IdlePolicy::Halt, round_trips: 1_000, host_halt_poll_ns: Some(0), ..RunOptions::default() };
/// let report = haltpoll_vmm::run(&options)?;
/// println!("round trip {:.0} ns", report.round_trip_ns().unwrap());
/// # Ok::<(), haltpoll_vmm::VmmError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunOptions {
    /// vCPUs, each on its own host thread (2 by default; even for the ping-pong).
    pub vcpus: usize,
    /// What the guest runs.
    pub workload: Workload,
    /// How waiting vCPUs idle.
    pub idle: IdlePolicy,
    /// Measured round trips per ping-pong pair.
    pub round_trips: u64,
    /// Spin before each message, ns.
    pub think_ns: u64,
    /// When not empty, the think times of the measured messages instead of `think_ns`, ns, in
    /// order (repeated if the run has more messages): each waiting vCPU idles through them.
    pub think_trace_ns: Vec<u64>,
    /// Round trips per pair before the measured ones: not counted, not sampled, and outside
    /// the VMM's readings of KVM counters and CPU time (each vCPU marks where they end).
    pub warmup_round_trips: u64,
    /// Spin before each warm-up message, ns.
    pub warmup_think_ns: u64,
    /// The haltpoll driver's governor and its parameters ([`IdlePolicy::Haltpoll`]), already
    /// checked ([`haltpoll::Params::validate`], [`haltpoll::PredictiveParams::validate`]).
    pub governor: GovernorParams,
    /// Each vCPU's latency requirement, ns, by index (0: poll only); vCPUs past the end of the
    /// list have none ([`LATENCY_ANY`]).
    pub latency_req_ns: Vec<LatencyReq>,
    /// Load the haltpoll driver even without the REALTIME hint (`cpuidle_haltpoll.force=1`).
    pub force: bool,
    /// Hide the KVM signature from the guest's CPUID (the driver must refuse to load).
    pub hide_kvm: bool,
    /// Hide KVM_FEATURE_POLL_CONTROL from the guest's CPUID (the driver cannot switch host
    /// polling off and must say so).
    pub hide_poll_control: bool,
    /// The VM's host halt-polling window (KVM_CAP_HALT_POLL), ns; `None` keeps the host's default.
    pub host_halt_poll_ns: Option<u64>,
    /// Whether to show the REALTIME hint.
    pub realtime_hint: RealtimeHint,
    /// What each vCPU writes to MSR_KVM_POLL_CONTROL at start.
    pub poll_control: PollControl,
    /// Pin each vCPU thread to a host CPU (round-robin over the CPUs this process may use).
    pub pin: bool,
    /// Use only the first N host CPUs this process may use (to overcommit on purpose: 4 vCPUs
    /// on 2 host CPUs); `None`: all of them.
    pub host_cpus: Option<usize>,
    /// The whole run's time limit; `None`: 10 s plus 500 ms and twice the think time per round trip.
    pub time_limit: Option<Duration>,
    /// How long a vCPU may go without receiving a message; `None`: 10 s or 20 think times.
    pub stall_limit: Option<Duration>,
}

impl Default for RunOptions {
    fn default() -> RunOptions {
        RunOptions {
            vcpus: 2,
            workload: Workload::PingPong,
            idle: IdlePolicy::Halt,
            round_trips: 1_000,
            think_ns: 0,
            think_trace_ns: Vec::new(),
            warmup_round_trips: 0,
            warmup_think_ns: 0,
            governor: GovernorParams::Linux(ValidParams::DEFAULT),
            latency_req_ns: Vec::new(),
            force: false,
            hide_kvm: false,
            hide_poll_control: false,
            host_halt_poll_ns: None,
            realtime_hint: RealtimeHint::Auto,
            poll_control: PollControl::Leave,
            pin: true,
            host_cpus: None,
            time_limit: None,
            stall_limit: None,
        }
    }
}

impl RunOptions {
    /// Checks the options make a run that can work.
    pub fn validate(&self) -> Result<(), VmmError> {
        let bad = |what: String| Err(VmmError::Options(what));
        // Every workload runs on at least two vCPUs (one wakes the other); the ping-pong in pairs.
        if self.workload == Workload::PingPong {
            if !(2..=MAX_VCPUS).contains(&self.vcpus) || !self.vcpus.is_multiple_of(2) {
                return bad(format!(
                    "{} vCPUs: the ping-pong runs in pairs, so the count must be even, from 2 to {MAX_VCPUS}",
                    self.vcpus
                ));
            }
            if self.round_trips == 0 {
                return bad("0 round trips: ask for at least 1".into());
            }
        } else if !(2..=MAX_VCPUS).contains(&self.vcpus) {
            return bad(format!(
                "{} vCPUs: the {:?} test workload runs on 2 to {MAX_VCPUS}",
                self.vcpus, self.workload
            ));
        }
        for (what, ns) in [("think time", self.think_ns), ("warm-up think time", self.warmup_think_ns)] {
            limits::check_think(what, Duration::from_nanos(ns)).map_err(VmmError::Options)?;
        }
        if let Some(ns) = self.host_halt_poll_ns {
            limits::check_host_halt_poll_ns(ns).map_err(VmmError::Options)?;
        }
        if self.think_trace_ns.len() as u64 > layout::THINKS_MAX {
            return bad(format!(
                "{} think times: the guest holds at most {}; give a shorter trace",
                self.think_trace_ns.len(),
                layout::THINKS_MAX
            ));
        }
        if let Some((i, ns)) = self.think_trace_ns.iter().enumerate().find(|&(_, &ns)| ns > 1_000_000_000) {
            return bad(format!("think time {} of the trace, {ns} ns: at most 1 s per message", i + 1));
        }
        if self.host_cpus == Some(0) {
            return bad("0 host CPUs: give at least 1, or leave the limit out".into());
        }
        if self.latency_req_ns.len() > self.vcpus {
            return bad(format!(
                "{} latency requirements for {} vCPUs: give at most one per vCPU",
                self.latency_req_ns.len(),
                self.vcpus
            ));
        }
        Ok(())
    }

    /// The watchdog's limits for these options.
    pub fn limits(&self) -> Limits {
        // The limits stop a guest that is broken, not one the host is slow to run: a busy
        // ping-pong takes microseconds a round trip on a quiet host, and 8-150 ms where other
        // processes keep every CPU busy (`stress-ng --cpu 2` and builds: each message waits for
        // the scheduler to run its receiver's thread), with gaps of over 2 s without a message.
        // Hence 500 ms a round trip beyond its think times, and 10 s without a message.
        let budget = |trips: u64, think_ns: u64| {
            let per_round_trip = Duration::from_millis(500) + Duration::from_nanos(think_ns) * 2;
            per_round_trip.saturating_mul(u32::try_from(trips).unwrap_or(u32::MAX))
        };
        // A think trace: twice its mean for the run's length (the run may take its longer part),
        // its longest for a stall.
        let trace = &self.think_trace_ns;
        let (think_ns, max_think_ns) = match trace.iter().max() {
            Some(&max) => (trace.iter().sum::<u64>() / trace.len() as u64 * 2, max),
            None => (self.think_ns, self.think_ns),
        };
        let work =
            budget(self.round_trips, think_ns).saturating_add(budget(self.warmup_round_trips, self.warmup_think_ns));
        Limits {
            time_limit: self.time_limit.unwrap_or_else(|| Duration::from_secs(10).saturating_add(work)),
            stall_limit: self
                .stall_limit
                .unwrap_or_else(|| Duration::from_secs(10).max(Duration::from_nanos(max_think_ns).saturating_mul(20))),
        }
    }
}

/// Runs the guest once in a new VM and reports what it measured.
///
/// A guest that faults, panics, triple-faults, hangs or overruns its time limit ends the run
/// with [`VmmError::Guest`], naming each failed vCPU with the reason and its RIP.
pub fn run(options: &RunOptions) -> Result<RunReport, VmmError> {
    run_until(options, &AtomicBool::new(false))
}

/// [`run`], stopping early once `interrupted` is set (by a Ctrl-C handler, say): the VMM sees
/// it within a tick (20 ms), kicks the vCPUs out of `KVM_RUN`, tears the VM down and returns
/// [`VmmError::Interrupted`]. A run whose vCPUs all finished first returns its report.
///
/// ```no_run
/// use std::sync::atomic::AtomicBool;
/// use haltpoll_vmm::{RunOptions, VmmError};
/// static STOP: AtomicBool = AtomicBool::new(false); // set from a signal handler
/// match haltpoll_vmm::run_until(&RunOptions::default(), &STOP) {
///     Ok(report) => println!("{} round trips", report.round_trips()),
///     Err(VmmError::Interrupted) => println!("stopped early"),
///     Err(e) => return Err(e),
/// }
/// # Ok::<(), VmmError>(())
/// ```
pub fn run_until(options: &RunOptions, interrupted: &AtomicBool) -> Result<RunReport, VmmError> {
    options.validate()?;
    watchdog::install()?;
    let kvm = system::open()?;
    let mut cpus = host_cpus().map_err(|error| VmmError::Host { operation: "sched_getaffinity", error })?;
    cpus.truncate(options.host_cpus.unwrap_or(usize::MAX));
    let dedicated = options.pin && cpus.len() >= options.vcpus;
    let realtime_hint = match options.realtime_hint {
        RealtimeHint::Auto => dedicated,
        RealtimeHint::On => true,
        RealtimeHint::Off => false,
    };
    let vm = Vm::new(&kvm, options.vcpus, options.host_halt_poll_ns)?;
    let view = View { realtime_hint, kvm_signature: !options.hide_kvm, poll_control: !options.hide_poll_control };
    let vcpus = (0..options.vcpus).map(|index| vm.create_vcpu(index, view)).collect::<Result<Vec<_>, _>>()?;
    let tsc_khz = u64::from(vcpus[0].fd().get_tsc_khz().map_err(VmmError::kvm("KVM_GET_TSC_KHZ"))?);
    write_config(&vm, options, tsc_khz)?;
    let stop = Arc::new(AtomicBool::new(false));
    // Everything that can fail comes before the first vCPU thread starts: a failure after it
    // would return with a vCPU running and the others never started (their early exits and
    // messages unaccounted for).
    let vcpus: Vec<VcpuThread> = vcpus
        .into_iter()
        .enumerate()
        .map(|(index, vcpu)| {
            Ok(VcpuThread {
                index,
                stats: StatsFd::open(vcpu.fd())?,
                vcpu,
                host_cpu: options.pin.then(|| cpus[index % cpus.len()]),
                stop: stop.clone(),
            })
        })
        .collect::<Result<_, VmmError>>()?;
    let started = Instant::now();
    let (threads, done) = start(vcpus, &stop)?;
    let mut supervised = supervise(&vm, options, &threads, &stop, interrupted, done);
    let wall = started.elapsed();
    join(threads, &mut supervised);
    let vcpus = collect(&vm, options, supervised)?;
    Ok(RunReport {
        vcpus,
        tsc_khz,
        realtime_hint,
        poll_control_offered: vm.cpuid().poll_control() && !options.hide_poll_control && !options.hide_kvm,
        host_halt_poll_ns: options.host_halt_poll_ns.or_else(system::default_halt_poll_ns),
        host_halt_poll_set: options.host_halt_poll_ns.is_some(),
        wall,
    })
}

/// Writes the run's configuration and think trace into the guest's memory, times in TSC ticks
/// of `tsc_khz`.
fn write_config(vm: &Vm, options: &RunOptions, tsc_khz: u64) -> Result<(), VmmError> {
    let ticks = |ns: u64| (u128::from(ns) * u128::from(tsc_khz) / 1_000_000) as u64;
    let mut latency_req_ns = [LATENCY_ANY; MAX_VCPUS];
    latency_req_ns[..options.latency_req_ns.len()].copy_from_slice(&options.latency_req_ns);
    let config = RunConfig {
        round_trips: options.round_trips,
        think_tsc: ticks(options.think_ns),
        warmup_round_trips: options.warmup_round_trips,
        warmup_think_tsc: ticks(options.warmup_think_ns),
        tsc_khz,
        sample_capacity: options.round_trips.min(layout::SAMPLES_PER_VCPU),
        poll_control: options.poll_control as u32,
        force: u32::from(options.force),
        latency_req_ns,
        think_trace_len: options.think_trace_ns.len() as u64,
        ..RunConfig::new(options.vcpus as u32, options.workload, options.idle).with_governor(&options.governor)
    };
    let think_trace: Vec<u64> = options.think_trace_ns.iter().map(|&ns| ticks(ns)).collect();
    vm.ram().write(layout::THINKS, think_trace.as_slice())?;
    vm.ram().write(layout::CONFIG, &config)
}

/// The vCPU threads, started; each sends its outcome on the channel returned when it ends.
fn start(
    vcpus: Vec<VcpuThread>,
    stop: &AtomicBool,
) -> Result<(Vec<thread::JoinHandle<()>>, mpsc::Receiver<VcpuOutcome>), VmmError> {
    let (done_tx, done_rx) = mpsc::channel();
    let mut threads = Vec::with_capacity(vcpus.len());
    for vcpu in vcpus {
        let index = vcpu.index;
        let done = done_tx.clone();
        let thread = thread::Builder::new()
            .name(format!("vcpu{index}"))
            .spawn(move || {
                let _ = done.send(vcpu.run());
            })
            .map_err(|error| VmmError::Host { operation: "starting a vCPU thread", error });
        match thread {
            Ok(thread) => threads.push(thread),
            Err(e) => {
                // The threads already started run a guest that waits for its peers: stop them
                // before leaving (their Vcpus keep the memory mapped until they end).
                stop_all(stop, &threads);
                return Err(e);
            }
        }
    }
    Ok((threads, done_rx))
}

/// Joins the threads that ended. A thread still in KVM_RUN is left behind (it holds the memory
/// it may touch); one that ended without an outcome panicked, which is the VMM's bug, not the
/// guest's.
fn join(threads: Vec<thread::JoinHandle<()>>, supervised: &mut Supervised) {
    for (index, thread) in threads.into_iter().enumerate() {
        let ended = supervised.outcomes[index].is_some() || thread.is_finished();
        if let Some(Err(panic)) = ended.then(|| thread.join()) {
            let message =
                panic.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| panic.downcast_ref::<String>().cloned());
            supervised.panicked[index] = Some(message.unwrap_or_default());
        }
    }
}

/// Sets the stop flag and kicks every thread out of `KVM_RUN`, waiting up to [`KICK_GRACE`]
/// for them to end.
fn stop_all(stop: &AtomicBool, threads: &[thread::JoinHandle<()>]) {
    stop.store(true, Ordering::SeqCst);
    let since = Instant::now();
    while threads.iter().any(|t| !t.is_finished()) && since.elapsed() < KICK_GRACE {
        threads.iter().filter(|t| !t.is_finished()).for_each(watchdog::kick);
        thread::sleep(TICK);
    }
}

/// Why the VMM stopped the vCPUs.
#[derive(Clone, Debug, PartialEq, Eq)]
enum StopReason {
    /// A vCPU failed; the others were stopped.
    Failed,
    /// The watchdog's verdict.
    Watchdog(Verdict),
    /// The caller asked the run to stop.
    Interrupted,
}

struct Supervised {
    outcomes: Vec<Option<VcpuOutcome>>,
    /// The order the vCPUs reported in.
    arrival: Vec<usize>,
    stopped: Option<StopReason>,
    watchdog: Watchdog,
    /// Threads that panicked, with the message.
    panicked: Vec<Option<String>>,
}

/// How often the VMM looks at the guest's progress and re-kicks vCPUs it is stopping.
const TICK: Duration = Duration::from_millis(20);
/// How long vCPUs get to leave KVM_RUN after the first kick.
const KICK_GRACE: Duration = Duration::from_secs(2);

fn supervise(
    vm: &Vm,
    options: &RunOptions,
    threads: &[thread::JoinHandle<()>],
    stop: &AtomicBool,
    interrupted: &AtomicBool,
    done: mpsc::Receiver<VcpuOutcome>,
) -> Supervised {
    let mut watchdog = Watchdog::new(options.vcpus, options.limits(), Instant::now());
    let mut outcomes: Vec<Option<VcpuOutcome>> = (0..options.vcpus).map(|_| None).collect();
    let mut arrival = Vec::new();
    let mut running: BTreeSet<usize> = (0..options.vcpus).collect();
    let mut stopping: Option<(Instant, StopReason)> = None;
    while !running.is_empty() {
        match done.recv_timeout(TICK) {
            Ok(outcome) => {
                let index = outcome.index;
                let failed = outcome.end != End::Exited(ExitStatus::Done as u32);
                running.remove(&index);
                arrival.push(index);
                outcomes[index] = Some(outcome);
                if failed && stopping.is_none() {
                    stopping = Some((Instant::now(), StopReason::Failed));
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        let now = Instant::now();
        if stopping.is_none() {
            for &index in &running {
                if let Ok(progress) = vm.ram().load_u64(layout::report(index)) {
                    watchdog.observe(index, progress, now);
                }
            }
            let verdict = watchdog.verdict(running.iter().copied(), now);
            if verdict != Verdict::Running {
                stopping = Some((now, StopReason::Watchdog(verdict)));
            } else if interrupted.load(Ordering::Relaxed) {
                stopping = Some((now, StopReason::Interrupted));
            }
        }
        if let Some((since, _)) = &stopping {
            stop.store(true, Ordering::SeqCst);
            for &index in &running {
                watchdog::kick(&threads[index]);
            }
            if now.duration_since(*since) > KICK_GRACE {
                break;
            }
        }
    }
    let panicked = vec![None; options.vcpus];
    Supervised { outcomes, arrival, stopped: stopping.map(|(_, reason)| reason), watchdog, panicked }
}

/// Reads the reports, or names the vCPUs that failed.
fn collect(vm: &Vm, options: &RunOptions, supervised: Supervised) -> Result<Vec<VcpuRun>, VmmError> {
    check_endings(vm, options, &supervised)?;
    read_runs(vm, options, supervised.outcomes)
}

/// How one vCPU's run ended, for the error that reports a run's failure.
enum Ending {
    /// As planned.
    Done,
    /// A failure of its own.
    Cause(GuestError),
    /// Stopped because another vCPU failed.
    Victim(GuestError),
    /// Stopped by the caller's interrupt.
    Interrupted,
}

/// The error of a run where a vCPU failed (every cause, the victims after them), or of an
/// interrupted one; `Ok` if every vCPU ended as planned.
fn check_endings(vm: &Vm, options: &RunOptions, supervised: &Supervised) -> Result<(), VmmError> {
    let (mut causes, mut victims, mut interrupted) = (Vec::new(), Vec::new(), false);
    // The vCPU that failed first leads; the watchdog's verdicts come in vCPU order.
    let arrival = &supervised.arrival;
    let order: Vec<usize> = match supervised.stopped {
        Some(StopReason::Watchdog(_)) => (0..options.vcpus).collect(),
        _ => arrival.iter().copied().chain((0..options.vcpus).filter(|i| !arrival.contains(i))).collect(),
    };
    for index in order {
        match ending(vm, index, supervised)? {
            Ending::Done => {}
            Ending::Cause(error) => causes.push(error),
            Ending::Victim(error) => victims.push(error),
            Ending::Interrupted => interrupted = true,
        }
    }
    if !causes.is_empty() {
        causes.extend(victims);
        return Err(VmmError::Guest(GuestFailures(causes)));
    }
    if interrupted {
        return Err(VmmError::Interrupted);
    }
    Ok(())
}

/// A failure of vCPU `index`, where its outcome says the guest was.
fn at(index: usize, outcome: &VcpuOutcome, failure: Failure) -> GuestError {
    GuestError { vcpu: index, failure, rip: outcome.rip, ring: outcome.ring }
}

/// How vCPU `index` ended.
fn ending(vm: &Vm, index: usize, supervised: &Supervised) -> Result<Ending, VmmError> {
    let Some(outcome) = &supervised.outcomes[index] else {
        let failure = match &supervised.panicked[index] {
            Some(message) => Failure::Exit(format!("lost its VMM thread, which panicked: {message}")),
            None => Failure::Unresponsive,
        };
        return Ok(Ending::Cause(GuestError { vcpu: index, failure, rip: 0, ring: 0 }));
    };
    Ok(match &outcome.end {
        End::Exited(status) => exited(vm, index, outcome, *status)?,
        End::TripleFault => Ending::Cause(at(index, outcome, Failure::TripleFault)),
        End::Unexpected(what) => Ending::Cause(at(index, outcome, Failure::Exit(what.clone()))),
        End::Stopped => stopped(index, outcome, supervised),
    })
}

/// How a vCPU that wrote `status` to the exit port ended: the guest's fault and panic records
/// say where and why.
fn exited(vm: &Vm, index: usize, outcome: &VcpuOutcome, status: u32) -> Result<Ending, VmmError> {
    let failure = match ExitStatus::from_raw(status) {
        Some(ExitStatus::Done) => return Ok(Ending::Done),
        Some(ExitStatus::Fault) => {
            let record: ExitRecord = vm.ram().read(layout::exit_record(index))?;
            return Ok(Ending::Cause(GuestError {
                vcpu: index,
                failure: Failure::Exception {
                    vector: record.vector as u8,
                    error_code: record.error_code,
                    cr2: record.cr2,
                },
                rip: record.rip,
                ring: (record.cs & 3) as u8,
            }));
        }
        Some(ExitStatus::Panic) => {
            let record: ExitRecord = vm.ram().read(layout::exit_record(index))?;
            Failure::Panic(record.message().to_owned())
        }
        Some(ExitStatus::BadConfig) => Failure::BadConfig,
        None => Failure::Exit(format!("wrote {status:#x} to the exit port, which means nothing")),
    };
    Ok(Ending::Cause(at(index, outcome, failure)))
}

/// How a vCPU the VMM stopped ended: the watchdog's verdict on it, the caller's interrupt, or
/// another vCPU's failure.
fn stopped(index: usize, outcome: &VcpuOutcome, supervised: &Supervised) -> Ending {
    let (watchdog, limits) = (&supervised.watchdog, supervised.watchdog.limits());
    let progress = watchdog.progress(index);
    match &supervised.stopped {
        Some(StopReason::Watchdog(Verdict::Hung(hung))) if hung.contains(&index) => Ending::Cause(at(
            index,
            outcome,
            Failure::Hung {
                limit: limits.stall_limit,
                progress,
                halted: outcome.halted,
                interrupts_enabled: outcome.interrupts_enabled,
            },
        )),
        Some(StopReason::Watchdog(_)) => {
            Ending::Cause(at(index, outcome, Failure::Overran { limit: limits.time_limit, progress }))
        }
        Some(StopReason::Interrupted) => Ending::Interrupted,
        _ => Ending::Victim(at(index, outcome, Failure::Stopped)),
    }
}

/// Every vCPU's run as the guest reported it, beside the host's view of its thread.
fn read_runs(vm: &Vm, options: &RunOptions, outcomes: Vec<Option<VcpuOutcome>>) -> Result<Vec<VcpuRun>, VmmError> {
    let mut vcpus = Vec::with_capacity(options.vcpus);
    for outcome in outcomes.into_iter().flatten() {
        let index = outcome.index;
        let report: VcpuReport = vm.ram().read(layout::report(index))?;
        let recorded = report.samples.min(layout::SAMPLES_PER_VCPU) as usize;
        let samples: Vec<Sample> = vm.ram().read_vec(layout::samples(index), recorded)?;
        vcpus.push(VcpuRun {
            index,
            host_cpu: outcome.host_cpu,
            counters: report.counters,
            driver: report.driver,
            kvm: outcome.kvm?,
            cpu_time: outcome.cpu_time,
            preempted: outcome.preempted,
            slept: outcome.slept,
            samples,
        });
    }
    Ok(vcpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_that_cannot_work_are_refused_with_the_reason() {
        let refused = |o: RunOptions| o.validate().unwrap_err().to_string();
        // The range a refusal names is the range the check lets through.
        for vcpus in 0..=10 {
            let ok = RunOptions { vcpus, ..Default::default() }.validate().is_ok();
            assert_eq!(ok, [2, 4, 6, 8].contains(&vcpus), "{vcpus} vCPUs");
            if !ok {
                assert!(refused(RunOptions { vcpus, ..Default::default() }).contains("even, from 2 to 8"));
            }
        }
        let workload = |vcpus| RunOptions { vcpus, workload: Workload::Fault, ..Default::default() };
        assert!(refused(workload(1)).contains("Fault test workload runs on 2 to 8"));
        assert!(workload(3).validate().is_ok());
        assert!(refused(RunOptions { round_trips: 0, ..Default::default() }).contains("at least 1"));
        assert!(
            refused(RunOptions { think_ns: 2_000_000_000, ..Default::default() })
                .ends_with("think time 2s is too long: at most 1s per message")
        );
        assert!(RunOptions { think_ns: 1_000_000_000, ..Default::default() }.validate().is_ok());
        let window = |ns| RunOptions { host_halt_poll_ns: Some(ns), ..Default::default() };
        assert!(refused(window(u64::MAX)).contains("give 0 to 4294967295 ns"));
        assert!(refused(window(1 << 32)).contains("give 0 to 4294967295 ns"));
        assert!(window(u64::from(u32::MAX)).validate().is_ok());
        assert!(refused(RunOptions { host_cpus: Some(0), ..Default::default() }).contains("at least 1"));
        assert!(refused(RunOptions { warmup_think_ns: 2_000_000_000, ..Default::default() }).contains("warm-up"));
        assert!(
            refused(RunOptions { latency_req_ns: vec![0; 3], ..Default::default() }).contains("at most one per vCPU")
        );
        let long = RunOptions { think_trace_ns: vec![5, 2_000_000_000], ..Default::default() };
        assert!(refused(long).contains("think time 2 of the trace"));
        let many = RunOptions { think_trace_ns: vec![1; layout::THINKS_MAX as usize + 1], ..Default::default() };
        assert!(refused(many).contains("shorter trace"));
        // Invalid governor parameters cannot reach the options: `governor` takes only what
        // `Params::validate` let through, and that refuses them with the reason.
        let bad = haltpoll::Params { grow_start: 0, ..haltpoll::Params::DEFAULT };
        assert!(bad.validate().unwrap_err().to_string().contains("grow_start"));
        assert!(RunOptions::default().validate().is_ok());
    }

    #[test]
    fn default_limits_grow_with_the_work() {
        let small = RunOptions::default().limits();
        let big = RunOptions { round_trips: 1_000_000, think_ns: 500_000_000, ..Default::default() }.limits();
        assert!(big.time_limit > small.time_limit);
        let warm = RunOptions { warmup_round_trips: 10_000, ..Default::default() }.limits();
        assert!(warm.time_limit > small.time_limit, "the warm-up needs time too");
        assert_eq!(small.stall_limit, Duration::from_secs(10));
        assert_eq!(big.stall_limit, Duration::from_secs(10), "20 think times");
        let traced = RunOptions { think_trace_ns: vec![1_000, 700_000_000], ..Default::default() }.limits();
        assert_eq!(traced.stall_limit, Duration::from_secs(14), "20 of the trace's longest think time");
        let set = RunOptions { time_limit: Some(Duration::from_secs(1)), ..Default::default() }.limits();
        assert_eq!(set.time_limit, Duration::from_secs(1));
    }
}
