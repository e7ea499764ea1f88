//! The cpuidle-haltpoll driver of this guest, built from the core crate: the load decision
//! ([`Haltpoll::load`]), the idle loop a waiting vCPU runs ([`Haltpoll::wait`]) and the waker's
//! side ([`wake`]).
//!
//! Everything here runs at ring 3, natively even on a KVM backend that emulates ring 0 (about
//! 0.6 us an instruction there: docs/kvm-quirks.md): CPUID, the governor, the poll loop and the
//! flag protocol. Only the `MSR_KVM_POLL_CONTROL` write at load and the HLT itself enter ring 0.
//!
//! # The POLLING flag stays set until the next halt
//!
//! A vCPU sets POLLING when it starts to poll and clears it only on its way into HLT
//! ([`WakeFlags::clear_polling_and_test`]), not when a poll ends. The flag promises "this vCPU
//! looks at its wake condition before it halts", which stays true after the poll: the only way
//! to HLT goes through the clear-and-test. Clearing it on the way out of every poll, as Linux's
//! poll state does, opens a race in which the woken vCPU has seen its message and cleared the
//! flag before the waker, a few nanoseconds behind its own message, tests it: the waker then
//! sends an IPI to a vCPU that is already running. Linux keeps POLLING set across its whole idle
//! loop and clears it when the CPU leaves idle because a running CPU needs the IPI to preempt its
//! task; this guest has no preemption, so a wakeup that finds a running vCPU with POLLING set is
//! seen at its next `wait`, with no interrupt.
//!
//! The poll loop watches the workload's own wake condition (the message) as well as
//! NEED_RESCHED, so the woken vCPU sees its message as soon as it lands, not one cache-line
//! transfer later when the waker's flag update arrives. NEED_RESCHED is consumed when a `wait`
//! begins, before the first look at the wake condition.

use core::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use core::sync::atomic::{AtomicU32, AtomicU64};

use haltpoll::driver::{LoadOptions, decide_load, detect_kvm};
use haltpoll::idle::{self, Halted, Mechanism};
use haltpoll::platform::Counter;
use haltpoll::poll::{PollOutcome, PollPlatform, poll};
use haltpoll::select::IdleGovernor;
use haltpoll::wake::{Kick, WakeFlags};
use haltpoll::{Adjustment, AnyGovernor, Decision, End, GovernorParams, LatencyReq, Outcome};

use crate::cpu::Cpu;
use crate::wake_cost::WakeCostMeter;
use haltpoll_abi::{Counters, DriverLoad, DriverReport, Phase, PollControl, WakeCosts};

/// How long a poll forced by a latency requirement of 0 lasts before the loop goes round again
/// (Linux polls for a tick; this guest has none, so it takes a 1 ms tick, HZ=1000).
pub const TICK_NS: u64 = 1_000_000;

/// A timer due sooner than this after the halt would begin is not armed: the vCPU polls at
/// once instead (arming costs an exit, and the halt would end before it began).
const TIMER_MIN_NS: u64 = 1_000;

/// The predictive governor's ceiling in the driver, in halt costs (as learnt), where that is
/// below its parameters' ceiling: a poll that long has cost the host as much as that many halts,
/// so a wakeup it has not caught by then is not worth spinning for, whatever the governor's
/// credit says (with catches giving back a halt cost each, the credit stays full and the price
/// at its top, and the windows reach the ceiling). Linux's poll state bounds its polls too, by
/// the next state's target residency. Two: on this host 0.4-1 ms (a halt costs the host
/// 205-520 us as learnt), above the periods worth polling through (150 us and a wake-up) and
/// below a partner's preemption (1-9 ms), which the 4 ms default spins through. Four left the
/// ceiling above a 1 ms period, so after each timer that missed, the governor, its price at the
/// top, polled the next periods whole from idle entry: on a quiet host 1.19-1.26x no polling's
/// host CPU at 1 ms, and 1.08-1.11x Linux's on two think traces, against 1.06-1.11x and at most
/// 1.04x with two (docs/predictive-live.md, "Fourth round"). The governor is told it as its
/// ceiling, so it plans within it (a timer where no window reaches) rather than have its
/// windows cut short.
pub const POLL_HALT_COSTS: u64 = 2;

/// The predictive governor's ceiling in the driver, ns: [`POLL_HALT_COSTS`] halts of
/// `halt_cost_ns`, or its parameters' `params_ceiling_ns` if that is lower.
fn driver_ceiling_ns(halt_cost_ns: u64, params_ceiling_ns: u64) -> u64 {
    halt_cost_ns.saturating_mul(POLL_HALT_COSTS).min(params_ceiling_ns)
}

/// What wakers of one vCPU touch: its wake flags and, for the report and the wake cost, where
/// it is and when it was last sent an IPI. Each on a cache line of its own, so that neither the
/// phase stores nor another vCPU's flags slow down a poll.
#[derive(Debug, Default)]
#[repr(C, align(64))]
pub struct VcpuFlags {
    flags: Line<WakeFlags>,
    waker: Line<Waker>,
}

#[derive(Debug, Default)]
#[repr(C, align(64))]
struct Line<T>(T);

/// What a waker leaves besides the flags.
#[derive(Debug, Default)]
struct Waker {
    phase: AtomicU32,
    /// TSC when a waker last decided to send this vCPU an IPI: the start of a halt's wake-up,
    /// which the woken vCPU measures to its return (the predictive governor's `halt_wake_ns`).
    kick_tsc: AtomicU64,
    /// TSC ticks the last IPI's send took the waker (the ICR write): the waker's share of a
    /// halt's cost, which the woken vCPU adds to its own.
    send_tsc: AtomicU64,
}

impl VcpuFlags {
    /// Not polling, nothing pending, running.
    pub const fn new() -> VcpuFlags {
        VcpuFlags {
            flags: Line(WakeFlags::new()),
            waker: Line(Waker {
                phase: AtomicU32::new(Phase::Running as u32),
                kick_tsc: AtomicU64::new(0),
                send_tsc: AtomicU64::new(0),
            }),
        }
    }

    /// The wake flags (POLLING, NEED_RESCHED).
    pub const fn flags(&self) -> &WakeFlags {
        &self.flags.0
    }

    /// Where the vCPU was last (a snapshot; for the report only, never for a decision).
    pub fn phase(&self) -> Phase {
        Phase::from_raw(self.waker.0.phase.load(Relaxed)).unwrap_or(Phase::Running)
    }

    fn set_phase(&self, phase: Phase) {
        self.waker.0.phase.store(phase as u32, Relaxed);
    }

    /// TSC of the last IPI a waker decided to send (0: none yet).
    fn kick_tsc(&self) -> u64 {
        // Acquire pairs with the waker's Release: read after the halt the IPI ended, it shows
        // that IPI's stamp (the stamp is stored before the IPI is sent).
        self.waker.0.kick_tsc.load(Acquire)
    }

    /// TSC ticks a waker's IPI to this vCPU took to send: the last one stored, which may be the
    /// IPI before the one that woke it (the waker stores it after the send); an estimate either way.
    fn send_tsc(&self) -> u64 {
        self.waker.0.send_tsc.load(Relaxed)
    }
}

/// The driver's options for one vCPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DriverOptions {
    /// The governor and its parameters, validated (`None`: the run configuration's were out of
    /// range, and the driver refuses to load).
    pub governor: Option<GovernorParams>,
    /// This vCPU's latency requirement (0: poll only).
    pub latency_req: LatencyReq,
    /// Load without the REALTIME hint.
    pub force: bool,
    /// The TSC frequency, kHz.
    pub tsc_khz: u64,
}

/// The loaded driver on one vCPU: its governor and latency requirement.
#[derive(Debug)]
pub struct Haltpoll {
    governor: Learning,
    latency_req: LatencyReq,
    clock: Counter,
    /// TSC when this vCPU last left idle: the busy time the predictive governor's budget earns.
    last_exit_tsc: Option<u64>,
    /// What its halts cost, as learnt so far.
    costs: WakeCostMeter,
}

impl Haltpoll {
    /// Loads the driver on this vCPU, as Linux's cpuidle-haltpoll does at boot and each CPU
    /// does as it comes online: detect KVM from CPUID, refuse without the REALTIME hint unless
    /// forced, then write `MSR_KVM_POLL_CONTROL`: 0 (host polling off) if the guest polls on
    /// this vCPU, 1 if it does not (a ceiling or budget of 0 and a latency requirement above
    /// 0; the predictive governor's budget is net of the halts its catches save, so with a
    /// budget of 0 it may still poll briefly after a timer where a catch pays for the poll, and
    /// the host keeps polling for the rest). Without the poll-control feature it notes that in
    /// `report` and carries on.
    ///
    /// Returns `None` if the driver refused; `report.load` says why and the vCPU halts at once
    /// instead.
    pub fn load<C: Cpu>(cpu: &mut C, options: &DriverOptions, report: &mut DriverReport) -> Option<Haltpoll> {
        report.latency_req_ns = options.latency_req;
        let kvm = detect_kvm(|leaf| cpu.cpuid(leaf));
        if let Some(kvm) = kvm {
            report.kvm_features = kvm.features;
            report.kvm_hints = kvm.hints;
        }
        let Some(params) = options.governor else {
            report.load = DriverLoad::RefusedBadParams as u32;
            return None;
        };
        report.governor_kind = params.kind() as u32;
        let decision = decide_load(kvm, LoadOptions { force: options.force });
        report.load = DriverLoad::of(decision) as u32;
        let Ok(loaded) = decision else { return None };
        let may_poll = match params {
            GovernorParams::Linux(p) => p.guest_halt_poll_ns > 0,
            GovernorParams::Predictive(p) => p.poll_budget_ppm > 0 && p.poll_ceiling_ns > 0,
        };
        let guest_polls = may_poll || options.latency_req == 0;
        match loaded.poll_control_msr(guest_polls) {
            Some(value) => {
                cpu.write_poll_control(value != 0);
                report.poll_control =
                    if value == 0 { PollControl::HostPollOff } else { PollControl::HostPollOn } as u32;
            }
            None => report.poll_control_missing = 1,
        }
        let clock = Counter::new(options.tsc_khz.saturating_mul(1_000));
        let costs = WakeCostMeter::new(halt_entry_ns(cpu, clock));
        Some(Haltpoll {
            governor: Learning::new(params),
            latency_req: options.latency_req,
            clock,
            last_exit_tsc: None,
            costs,
        })
    }

    /// What the driver learnt its halts cost so far (for the report).
    pub fn costs(&self) -> WakeCosts {
        self.costs.report()
    }

    /// The governor (its window, its parameters), as it will select next: with what the last
    /// idle period taught it.
    pub fn governor(&self) -> AnyGovernor {
        self.governor.settled()
    }

    /// The window the governor would poll next, ns: Linux's `poll_limit_ns`, or the predictive
    /// governor's planned window.
    pub fn poll_limit_ns(&self) -> u64 {
        self.governor().window_ns()
    }

    /// Returns once `ready()` is true, idling meanwhile: the cpuidle loop. Each round consumes
    /// NEED_RESCHED, looks at `ready()`, and runs one idle period of the core's loop
    /// ([`haltpoll::idle::enter`]: the governor's decision carried out on this vCPU, poll,
    /// halt, poll then halt, or halt with a timer then poll, and reflected).
    ///
    /// `me` is this vCPU's flags; `ready` must become true only through memory a waker writes
    /// before it calls [`wake`] for this vCPU.
    pub fn wait<C: Cpu>(
        &mut self,
        cpu: &mut C,
        counters: &mut Counters,
        me: &VcpuFlags,
        mut ready: impl FnMut() -> bool,
    ) {
        me.set_phase(Phase::Idle);
        loop {
            // Consume, then look: a wakeup after the take sets the flag again, which the poll
            // or the halt's re-check sees.
            me.flags().take_need_resched();
            if ready() {
                break;
            }
            let mut vcpu =
                Vcpu::new(cpu, &mut *counters, me, &mut ready, self.clock, self.last_exit_tsc, &mut self.costs);
            let entered = idle::enter(&mut self.governor, &mut vcpu, self.latency_req);
            self.last_exit_tsc = Some(vcpu.last_tsc);
            match entered.adjustment {
                Adjustment::Grew { from, to } if from != to => counters.grows += 1,
                Adjustment::Shrank { from, to } if from != to => counters.shrinks += 1,
                _ => {}
            }
            // The usual way out: straight after a poll that saw the message.
            if ready() {
                break;
            }
        }
        me.set_phase(Phase::Running);
    }
}

/// The way into HLT and back without sleeping, ns: the fastest of a few halts that the ring-0
/// service returns from at once, because they name an interrupt count the vCPU has not reached.
fn halt_entry_ns<C: Cpu>(cpu: &mut C, clock: Counter) -> u64 {
    (0..4)
        .map(|_| {
            let start = cpu.rdtsc();
            // A count one past the current one: the service sees "an interrupt since" and
            // returns without halting.
            let slept = cpu.halt_unless_irq_since(cpu.irq_count().wrapping_add(1));
            if slept { u64::MAX } else { clock.ns(cpu.rdtsc().saturating_sub(start)) }
        })
        .min()
        .unwrap_or(0)
}

/// The driver's governor, whose learning runs off the wake path where it costs the woken vCPU
/// time: the predictive governor's reflect (its bookkeeping and the plan of its next decision,
/// tens of ns) waits for the next idle entry and runs there, before its select, as Linux's menu
/// and teo governors do their updates. A vCPU whose poll saw its message then returns to it at
/// once, and the planning overlaps the wait for the next one. Its decisions are the same: each
/// select still follows the reflect of the period before. Linux's governor reflects at once, as
/// in Linux (a few ns: it learns from halts only).
///
/// It also gives the predictive governor the driver's ceiling, [`POLL_HALT_COSTS`] halt costs,
/// where that is below its parameters' ceiling, each time it is told the halt's cost, and
/// turns its polls from idle entry after a quiet period into halts ([`after_a_quiet_period`]).
#[derive(Clone, Copy, Debug)]
struct Learning {
    governor: AnyGovernor,
    /// The predictive governor's last period, not yet reflected.
    pending: Option<Outcome>,
    /// The predictive governor's parameters' ceiling (`None`: Linux's governor).
    params_ceiling_ns: Option<u64>,
}

impl Learning {
    fn new(params: GovernorParams) -> Learning {
        let params_ceiling_ns = match params {
            GovernorParams::Predictive(p) => Some(p.poll_ceiling_ns),
            GovernorParams::Linux(_) => None,
        };
        Learning { governor: AnyGovernor::new(params), pending: None, params_ceiling_ns }
    }

    /// The governor as it will select next: the pending period learnt, on a copy.
    fn settled(&self) -> AnyGovernor {
        let mut governor = self.governor;
        if let Some(outcome) = &self.pending {
            governor.reflect(outcome);
        }
        governor
    }
}

impl IdleGovernor for Learning {
    fn select(&mut self, latency_req: LatencyReq, busy_ns: u64) -> Decision {
        let last = self.pending.take();
        if let Some(outcome) = &last {
            self.governor.reflect(outcome);
        }
        let decision = self.governor.select(latency_req, busy_ns);
        match (&self.governor, &last) {
            (AnyGovernor::Predictive(gov), Some(last)) => after_a_quiet_period(decision, last, gov.ceiling_ns()),
            _ => decision,
        }
    }

    fn reflect(&mut self, outcome: &Outcome) -> Adjustment {
        match self.governor {
            // The predictive governor's reflect never adjusts a window of Linux's kind.
            AnyGovernor::Predictive(_) => {
                self.pending = Some(*outcome);
                Adjustment::Unchanged
            }
            AnyGovernor::Linux(_) => self.governor.reflect(outcome),
        }
    }

    fn window_ns(&self) -> u64 {
        self.settled().window_ns()
    }

    fn set_halt_cost_ns(&mut self, ns: u64) {
        self.governor.set_halt_cost_ns(ns);
        if let (Some(ceiling), AnyGovernor::Predictive(gov)) = (self.params_ceiling_ns, &mut self.governor) {
            // Before the pending reflect, which plans with it.
            gov.set_ceiling_ns(driver_ceiling_ns(ns, ceiling));
        }
    }

    fn set_timer_wake_ns(&mut self, ns: u64) {
        self.governor.set_timer_wake_ns(ns);
    }
}

/// How many of the driver's ceilings a period must outlast to be quiet
/// ([`after_a_quiet_period`]). Two, not one: in a ping-pong a period is the partner's think time
/// plus, when the partner halted, its wake-up, which on a loaded host reaches a ceiling of two
/// halt costs; such a period says nothing about the workload going quiet.
const QUIET_CEILINGS: u64 = 2;

/// The predictive governor's decision after `last`, a period of which no window up to
/// [`QUIET_CEILINGS`] of the driver's ceilings (`ceiling_ns`) could have caught the wakeup: a
/// poll from idle entry becomes a halt; a timer, a halt and a poll a latency requirement forces
/// (`u64::MAX`) stay.
///
/// Idle periods come in stretches: on bursty traces a quiet period (milliseconds) is mostly
/// followed by another, while the governor's histogram, which has no order, still sees the
/// bursts' short periods and plans a window. Over the share of `traces/unseen/nginx-wrk-bursty`
/// a live run takes (817 periods; offline, a 400 us ceiling and a 200 us halt cost), its polls
/// after a period over 1 ms took 40.6 ms and caught 33 wakeups (36.9 ms ended in a halt anyway),
/// against 10 ms of timed-out polling in all for Linux's governor, whose window shrinks after a
/// long halt; a catch there saved less host CPU than the poll cost. A timer still aims at a
/// wakeup the governor expects after a long period (1 ms think times).
fn after_a_quiet_period(decision: Decision, last: &Outcome, ceiling_ns: u64) -> Decision {
    let period_ns = if last.caught { last.idle_ns } else { last.idle_ns.saturating_sub(last.halt_wake_ns) };
    match decision {
        Decision::Poll { window_ns }
            if window_ns != u64::MAX && period_ns > ceiling_ns.saturating_mul(QUIET_CEILINGS) =>
        {
            Decision::Halt
        }
        decision => decision,
    }
}

/// One idle period of a vCPU, the core's idle loop's mechanism: the TSC as its clock, the
/// ring-3 poll with POLLING set, the lost-IPI-safe ring-0 halt, the APIC timer, and the
/// counters of what each did.
struct Vcpu<'a, C, R> {
    cpu: &'a mut C,
    counters: &'a mut Counters,
    me: &'a VcpuFlags,
    ready: &'a mut R,
    clock: Counter,
    last_exit_tsc: Option<u64>,
    costs: &'a mut WakeCostMeter,
    /// The period's first TSC reading (the loop's entry): an IPI sent since is this period's.
    entry_tsc: Option<u64>,
    /// The last TSC reading through the clock: at the period's end, its exit.
    last_tsc: u64,
    /// The interrupt count read before the clear-then-test: an IPI (or the timer) that comes
    /// after the re-check moves it, and the halt then returns at once.
    irqs: u64,
    /// TSC when the current halt began.
    halt_start: u64,
    /// The halt's wake cost, where a timer's halt measured it; `None`: from the waker's stamp.
    halt_wake_ns: Option<u64>,
    /// When the wakeup came, ns after entry, where the period's length as measured would
    /// mislead the governor (see [`Vcpu::timer_halt`]); `None`: the period as measured.
    wakeup_ns: Option<u64>,
    /// Where the governor's window after its timer opens, ns on the clock (see
    /// [`Vcpu::timer_halt`]); `None`: no timer this period.
    window_opens_ns: Option<u64>,
}

impl<'a, C: Cpu, R: FnMut() -> bool> Vcpu<'a, C, R> {
    fn new(
        cpu: &'a mut C,
        counters: &'a mut Counters,
        me: &'a VcpuFlags,
        ready: &'a mut R,
        clock: Counter,
        last_exit_tsc: Option<u64>,
        costs: &'a mut WakeCostMeter,
    ) -> Self {
        Vcpu {
            cpu,
            counters,
            me,
            ready,
            clock,
            last_exit_tsc,
            costs,
            entry_tsc: None,
            last_tsc: 0,
            irqs: 0,
            halt_start: 0,
            halt_wake_ns: None,
            wakeup_ns: None,
            window_opens_ns: None,
        }
    }

    fn entry(&self) -> u64 {
        self.entry_tsc.unwrap_or(self.last_tsc)
    }

    /// Halts unless the clear-then-test found a wakeup `pending` or an interrupt came since
    /// the count was read; counts it.
    fn halt_step(&mut self, pending: bool) -> bool {
        let halted = !pending && self.cpu.halt_unless_irq_since(self.irqs);
        let end = self.cpu.rdtsc();
        self.me.set_phase(Phase::Idle);
        if halted {
            self.counters.halts += 1;
            self.counters.halt_tsc += end.saturating_sub(self.halt_start);
        } else {
            self.counters.halts_aborted += 1;
        }
        halted
    }

    /// A halt ended, by an IPI if one was sent since the period began: learns its wake-up
    /// (the waker's stamp to now) and the waker's send.
    fn learn_ipi_wake(&mut self) {
        let wake_ns = self.ipi_wake_ns();
        if wake_ns > 0 {
            self.costs.ipi_woke(wake_ns);
            self.costs.ipi_sent(self.clock.ns(self.me.send_tsc()));
        }
    }

    /// The wake cost of a halt an IPI ended: from the waker's stamp to now; 0 if no IPI was
    /// sent since the period began.
    fn ipi_wake_ns(&self) -> u64 {
        let kick = self.me.kick_tsc();
        if kick >= self.entry() { self.clock.ns(self.cpu.rdtsc().saturating_sub(kick)) } else { 0 }
    }

    /// A halt with the timer set to fire at `due_ns` on the clock: halts (again after an
    /// interrupt of no concern) until the wakeup or the timer. A timer due too soon to arm is
    /// not: the vCPU polls at once, as if it had fired.
    ///
    /// A wakeup that lands while the timer's own wake-up is under way (the timer fired, the
    /// vCPU is not running yet) is reported with the timer's whole wake cost and the wakeup's
    /// time from the waker's stamp: the IPI's apparent cost is only what was left of the
    /// timer's, and reporting that would teach the governor a wake cost about half the real one,
    /// so that its timers fire too late ever to catch (a fixed point at half the cost).
    ///
    /// The timer is armed early by its wake-up's spread ([`WakeCostMeter::timer_lead_ns`]), and
    /// the poll that follows it ends that lead after the governor's window does
    /// ([`Vcpu::poll`]): waking early widens the window instead of moving it, and a wakeup late
    /// by as much is caught too.
    fn timer_halt(&mut self, due_ns: u64) -> Halted {
        // The governor aims at the wakeup less the timer's median wake-up, as it was told it:
        // its window opens then.
        self.window_opens_ns = Some(due_ns.saturating_add(self.costs.timer_wake_ns().unwrap_or(0)));
        let due_ns = due_ns.saturating_sub(self.costs.timer_lead_ns());
        let start_ns = self.clock.ns(self.halt_start);
        let timers = self.cpu.timer_count();
        let left_ns = due_ns.saturating_sub(self.clock.ns(self.cpu.rdtsc()));
        if left_ns < TIMER_MIN_NS {
            self.me.set_phase(Phase::Idle);
            return Halted { end: End::Timer, ns: 0 };
        }
        // Armed after the interrupt count was read: a timer that fires before the halt moves
        // the count, and the halt returns at once.
        self.cpu.arm_timer(left_ns);
        self.counters.timers_armed += 1;
        let mut pending = false;
        let end = loop {
            self.halt_step(pending);
            // Read before the looks below, for the next halt.
            self.irqs = self.cpu.irq_count();
            if self.me.flags().need_resched() || (self.ready)() {
                break self.woken_in_timer_halt(timers, due_ns);
            }
            if self.cpu.timer_count() != timers {
                self.counters.timer_fires += 1;
                self.costs.timer_woke(self.clock.ns(self.cpu.rdtsc()).saturating_sub(due_ns));
                break End::Timer;
            }
            // Neither the wakeup nor the timer (an interrupt of no concern): halt on.
            self.me.set_phase(Phase::Halting);
            self.halt_start = self.cpu.rdtsc();
            pending = self.me.flags().clear_polling_and_test();
        };
        Halted { end, ns: self.clock.ns(self.cpu.rdtsc()).saturating_sub(start_ns) }
    }

    /// The wakeup came during a timer's halt: not caught. Cancels the timer if it has not
    /// fired; if it has, the wakeup landed during its wake-up (see [`Vcpu::timer_halt`]).
    fn woken_in_timer_halt(&mut self, timers: u64, due_ns: u64) -> End {
        if self.cpu.timer_count() == timers {
            self.cpu.cancel_timer();
            self.learn_ipi_wake();
            return End::Wakeup;
        }
        let now = self.cpu.rdtsc();
        let kick = self.me.kick_tsc().max(self.entry());
        let wake_ns = self.clock.ns(now).saturating_sub(due_ns);
        self.costs.timer_woke(wake_ns);
        self.halt_wake_ns = Some(wake_ns);
        self.wakeup_ns = Some(self.clock.ns(kick.min(now) - self.entry()));
        End::Wakeup
    }
}

impl<C: Cpu, R: FnMut() -> bool> Mechanism for Vcpu<'_, C, R> {
    fn now_ns(&mut self) -> u64 {
        let now = self.cpu.rdtsc();
        self.entry_tsc.get_or_insert(now);
        self.last_tsc = now;
        self.clock.ns(now)
    }

    /// The POLL state begins: a wakeup already pending is a hit without a poll.
    fn set_polling_and_test(&mut self) -> bool {
        self.me.set_phase(Phase::Polling);
        let pending = self.me.flags().set_polling_and_test();
        if pending {
            self.me.set_phase(Phase::Idle);
            self.counters.poll_hits += 1;
        }
        pending
    }

    /// The HALT state begins: the interrupt count first, then the clear-then-test.
    fn clear_polling_and_test(&mut self) -> bool {
        self.irqs = self.cpu.irq_count();
        self.me.set_phase(Phase::Halting);
        self.halt_start = self.cpu.rdtsc();
        self.me.flags().clear_polling_and_test()
    }

    /// Spins at ring 3 with POLLING set until `ready()`, NEED_RESCHED or the window's end.
    /// POLLING stays set afterwards (see the module's documentation). After a timer that woke
    /// the vCPU before the window opened, the poll lasts until the window's end, not a window
    /// from now: the lead and an early wake-up widen it. And one lead beyond the window's end:
    /// a wakeup that late (in a ping-pong, a partner that halted and replies a wake-up late) is
    /// caught for that much more polling, where a second halt and the waker's IPI would cost
    /// the host more (at 1 ms between messages, 58-64% of wakeups without an IPI against 43-55%,
    /// at the same 1.06-1.10x no polling's host CPU; docs/predictive-live.md, "Fourth round").
    fn poll(&mut self, limit_ns: u64, _times_hits: bool) -> PollOutcome {
        let limit_ns = match self.window_opens_ns.take() {
            Some(opens) => {
                let end = opens.saturating_add(limit_ns).saturating_add(self.costs.timer_lead_ns());
                limit_ns.max(end.saturating_sub(self.clock.ns(self.cpu.rdtsc())))
            }
            None => limit_ns,
        };
        let (clock, flags) = (self.clock, self.me.flags());
        let mut platform =
            Platform { cpu: &mut *self.cpu, clock, flags, ready: &mut *self.ready, first: None, last: 0 };
        let out = poll(&mut platform, limit_ns);
        let polled_tsc = platform.last.saturating_sub(platform.first.unwrap_or(platform.last));
        self.me.set_phase(Phase::Idle);
        self.counters.poll_tsc += polled_tsc;
        if out.timed_out {
            self.counters.poll_timeouts += 1;
        } else {
            self.counters.poll_hits += 1;
        }
        out
    }

    /// Halts through the lost-IPI-safe ring-0 service (one halt: any interrupt ends it).
    fn halt(&mut self, timer_ns: Option<u64>) -> Halted {
        if let Some(due_ns) = timer_ns {
            return self.timer_halt(due_ns);
        }
        let start_ns = self.clock.ns(self.halt_start);
        if self.halt_step(false) {
            self.learn_ipi_wake();
        }
        Halted { end: End::Wakeup, ns: self.clock.ns(self.cpu.rdtsc()).saturating_sub(start_ns) }
    }

    fn halt_called_off(&mut self) -> u64 {
        self.halt_step(true);
        0
    }

    fn halt_cost_ns(&mut self) -> Option<u64> {
        self.costs.halt_cost_ns()
    }

    fn timer_wake_ns(&mut self) -> Option<u64> {
        self.costs.timer_wake_ns()
    }

    fn busy_ns(&mut self, _entry_ns: u64) -> u64 {
        let entry = self.entry();
        self.last_exit_tsc.map_or(0, |exit| self.clock.ns(entry.saturating_sub(exit)))
    }

    /// From the entry's TSC reading to the exit's (the last), converted once.
    fn idle_ns(&mut self, _entry_ns: u64, _exit_ns: u64) -> u64 {
        match self.wakeup_ns {
            Some(wakeup) => wakeup.saturating_add(self.halt_wake_ns.unwrap_or(0)),
            None => self.clock.ns(self.last_tsc.saturating_sub(self.entry())),
        }
    }

    fn halt_wake_ns(&mut self, _entry_ns: u64) -> u64 {
        self.halt_wake_ns.unwrap_or_else(|| self.ipi_wake_ns())
    }

    /// A kernel without a tick polls a 1 ms tick at a time.
    fn forced_poll_ns(&self, _window_ns: u64) -> u64 {
        TICK_NS
    }
}

/// Wakes vCPU `target` (whose wake condition the caller has just made true) through its flags:
/// sets NEED_RESCHED and sends the IPI only if the target was not polling. Counts the IPIs sent
/// and skipped, and for each IPI where the target was.
pub fn wake<C: Cpu>(cpu: &mut C, counters: &mut Counters, target: &VcpuFlags, index: usize) {
    match target.flags().wake() {
        Kick::Skipped => counters.ipis_skipped += 1,
        Kick::Needed => {
            match target.phase() {
                Phase::Running => counters.ipis_to_running += 1,
                Phase::Idle => counters.ipis_to_idle += 1,
                Phase::Polling => counters.ipis_to_polling += 1,
                Phase::Halting => counters.ipis_to_halting += 1,
            }
            // Release: the stamp is visible to the target once the IPI it announces has woken it.
            let kick = cpu.rdtsc();
            target.waker.0.kick_tsc.store(kick, Release);
            cpu.send_ipi(index);
            // Relaxed: an estimate the target reads at its next wake-up, whichever it sees.
            target.waker.0.send_tsc.store(cpu.rdtsc().saturating_sub(kick), Relaxed);
            counters.ipis_sent += 1;
        }
    }
}

/// The poll loop's view of a vCPU: the TSC as a clock in ns, `pause`, and the wake condition.
struct Platform<'a, C, R> {
    cpu: &'a mut C,
    clock: Counter,
    flags: &'a WakeFlags,
    ready: &'a mut R,
    /// The first and the last TSC reading, for the poll time in ticks.
    first: Option<u64>,
    last: u64,
}

impl<C: Cpu, R: FnMut() -> bool> PollPlatform for Platform<'_, C, R> {
    fn now_ns(&mut self) -> u64 {
        let now = self.cpu.rdtsc();
        self.first.get_or_insert(now);
        self.last = now;
        self.clock.ns(now)
    }

    fn relax(&mut self) {
        self.cpu.relax();
    }

    fn wake_pending(&mut self) -> bool {
        (self.ready)() || self.flags.need_resched()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use haltpoll::driver::{CpuidRegs, KVM_FEATURE_POLL_CONTROL, KVM_HINTS_REALTIME, MSR_KVM_POLL_CONTROL};
    use haltpoll::predictive::PPM as PPM_WHOLE;
    use haltpoll::wake::POLLING;
    use haltpoll::{Decision, Governor, IdleState, Params, PredictiveParams, ValidParams};
    use std::cell::Cell;
    use std::rc::Rc;

    /// The fake's way into HLT and back, ns.
    const FAKE_HALT_ENTRY_NS: u64 = 1_500;

    /// A vCPU with a scripted CPUID, a clock that moves 10 ns per relax, halts that end with an
    /// IPI 300 us later (or at `wake_at`, if set) unless the timer is due first, a timer whose
    /// halt ends `wake_cost` after it is due (2 us unless set), and a log of MSR writes.
    struct Fake {
        features: u32,
        hints: u32,
        kvm: bool,
        now: Rc<Cell<u64>>,
        msrs: Vec<(u32, u64)>,
        irqs: u64,
        wake_at: Rc<Cell<Option<u64>>>,
        wake_cost: u64,
        timer_due: Option<u64>,
        /// When the last timer armed was due.
        armed_due: Option<u64>,
        timers: u64,
    }

    impl Fake {
        fn new(features: u32, hints: u32) -> Fake {
            Fake {
                features,
                hints,
                kvm: true,
                now: Rc::default(),
                msrs: Vec::new(),
                irqs: 0,
                wake_at: Rc::default(),
                wake_cost: 2_000,
                timer_due: None,
                armed_due: None,
                timers: 0,
            }
        }

        /// A wake condition that turns true `after` ns from now.
        fn ready_after(&self, after: u64) -> impl FnMut() -> bool + use<> {
            let (now, at) = (self.now.clone(), self.now.get() + after);
            move || now.get() >= at
        }
    }

    impl Cpu for Fake {
        fn index(&self) -> usize {
            0
        }
        fn rdtsc(&self) -> u64 {
            self.now.get()
        }
        fn relax(&self) {
            self.now.set(self.now.get() + 10);
        }
        fn irq_count(&self) -> u64 {
            self.irqs
        }
        fn halt_unless_irq_since(&mut self, irq_count: u64) -> bool {
            if irq_count == self.irqs + 1 {
                // The driver's probe at load: the service returns at once, after its round trip.
                self.now.set(self.now.get() + FAKE_HALT_ENTRY_NS);
                return false;
            }
            assert_eq!(irq_count, self.irqs, "no interrupt can be pending in this script");
            let ipi = self.wake_at.get().map_or(self.now.get() + 300_000, |at| at.max(self.now.get()));
            match self.timer_due {
                Some(due) if due.max(self.now.get()) + self.wake_cost < ipi => {
                    self.now.set(due.max(self.now.get()) + self.wake_cost);
                    self.timer_due = None;
                    self.timers += 1;
                }
                _ => self.now.set(ipi),
            }
            self.irqs += 1;
            true
        }
        fn send_ipi(&mut self, _: usize) {}
        fn arm_timer(&mut self, after_ns: u64) {
            self.timer_due = Some(self.now.get() + after_ns);
            self.armed_due = self.timer_due;
        }
        fn cancel_timer(&mut self) {
            self.timer_due = None;
        }
        fn timer_count(&self) -> u64 {
            self.timers
        }
        fn cpuid(&self, leaf: u32) -> CpuidRegs {
            match leaf {
                0x4000_0000 if self.kvm => {
                    CpuidRegs { eax: 0x4000_0001, ebx: 0x4b4d_564b, ecx: 0x564b_4d56, edx: 0x4d }
                }
                0x4000_0001 if self.kvm => CpuidRegs { eax: self.features, edx: self.hints, ..Default::default() },
                _ => CpuidRegs::default(),
            }
        }
        fn write_poll_control(&mut self, host_polling: bool) {
            self.msrs.push((MSR_KVM_POLL_CONTROL, u64::from(host_polling)));
        }
        fn begin_measurement(&mut self) {}
    }

    // A 1 GHz TSC: ticks are ns.
    const OPTIONS: DriverOptions = DriverOptions {
        governor: Some(GovernorParams::Linux(ValidParams::DEFAULT)),
        latency_req: u64::MAX,
        force: false,
        tsc_khz: 1_000_000,
    };

    /// Linux's governor inside a loaded driver.
    fn linux(driver: &mut Haltpoll) -> &mut Governor {
        match &mut driver.governor.governor {
            AnyGovernor::Linux(gov) => gov,
            AnyGovernor::Predictive(_) => panic!("not Linux's governor"),
        }
    }

    #[test]
    fn loads_with_the_hint_and_switches_host_polling_off() {
        let mut cpu = Fake::new(KVM_FEATURE_POLL_CONTROL, KVM_HINTS_REALTIME);
        let mut report = DriverReport::default();
        assert!(Haltpoll::load(&mut cpu, &OPTIONS, &mut report).is_some());
        assert_eq!(report.load(), Some(DriverLoad::Loaded));
        assert_eq!(cpu.msrs, [(MSR_KVM_POLL_CONTROL, 0)]);
        assert_eq!(report.poll_control(), Some(PollControl::HostPollOff));
        assert_eq!((report.poll_control_missing, report.kvm_hints), (0, KVM_HINTS_REALTIME));
    }

    #[test]
    fn refuses_without_the_hint_unless_forced() {
        let mut cpu = Fake::new(KVM_FEATURE_POLL_CONTROL, 0);
        let mut report = DriverReport::default();
        assert!(Haltpoll::load(&mut cpu, &OPTIONS, &mut report).is_none());
        assert_eq!(report.load(), Some(DriverLoad::RefusedNoRealtimeHint));
        assert!(cpu.msrs.is_empty(), "a driver that did not load leaves the MSR alone");
        let forced = DriverOptions { force: true, ..OPTIONS };
        assert!(Haltpoll::load(&mut cpu, &forced, &mut report).is_some());
        assert_eq!(report.load(), Some(DriverLoad::Forced));
        assert_eq!(cpu.msrs, [(MSR_KVM_POLL_CONTROL, 0)]);
    }

    #[test]
    fn refuses_off_kvm_even_forced() {
        let mut cpu = Fake::new(KVM_FEATURE_POLL_CONTROL, KVM_HINTS_REALTIME);
        cpu.kvm = false;
        let mut report = DriverReport::default();
        assert!(Haltpoll::load(&mut cpu, &DriverOptions { force: true, ..OPTIONS }, &mut report).is_none());
        assert_eq!(report.load(), Some(DriverLoad::RefusedNotKvm));
    }

    #[test]
    fn without_poll_control_says_so_and_carries_on() {
        let mut cpu = Fake::new(0, KVM_HINTS_REALTIME);
        let mut report = DriverReport::default();
        assert!(Haltpoll::load(&mut cpu, &OPTIONS, &mut report).is_some());
        assert_eq!(report.poll_control_missing, 1);
        assert_eq!(report.poll_control(), Some(PollControl::Leave));
        assert!(cpu.msrs.is_empty());
    }

    #[test]
    fn no_guest_polling_leaves_host_polling_on() {
        let mut cpu = Fake::new(KVM_FEATURE_POLL_CONTROL, KVM_HINTS_REALTIME);
        let mut report = DriverReport::default();
        let off_params = Params { guest_halt_poll_ns: 0, ..Params::DEFAULT }.validate().unwrap();
        let off = DriverOptions { governor: Some(off_params.into()), ..OPTIONS };
        assert!(Haltpoll::load(&mut cpu, &off, &mut report).is_some());
        assert_eq!(cpu.msrs, [(MSR_KVM_POLL_CONTROL, 1)]);
        // ... unless the latency requirement makes it poll anyway.
        let poll_only = DriverOptions { latency_req: 0, ..off };
        assert!(Haltpoll::load(&mut cpu, &poll_only, &mut report).is_some());
        assert_eq!(cpu.msrs[1], (MSR_KVM_POLL_CONTROL, 0));
    }

    #[test]
    fn invalid_parameters_are_refused() {
        let mut cpu = Fake::new(KVM_FEATURE_POLL_CONTROL, KVM_HINTS_REALTIME);
        let mut report = DriverReport::default();
        let bad = DriverOptions { governor: None, ..OPTIONS };
        assert!(Haltpoll::load(&mut cpu, &bad, &mut report).is_none());
        assert_eq!(report.load(), Some(DriverLoad::RefusedBadParams));
    }

    fn loaded(options: DriverOptions) -> (Fake, Haltpoll, VcpuFlags, Counters) {
        let mut cpu = Fake::new(KVM_FEATURE_POLL_CONTROL, KVM_HINTS_REALTIME);
        let driver = Haltpoll::load(&mut cpu, &options, &mut DriverReport::default()).unwrap();
        (cpu, driver, VcpuFlags::new(), Counters::default())
    }

    /// A waker's view: what waking `target` now costs.
    fn wake_now(target: &VcpuFlags) -> Counters {
        let mut counters = Counters::default();
        wake(&mut Fake::new(0, 0), &mut counters, target, 0);
        counters
    }

    #[test]
    fn the_window_starts_at_zero_so_the_first_wait_halts() {
        let (mut cpu, mut driver, me, mut counters) = loaded(OPTIONS);
        let ready = cpu.ready_after(1);
        driver.wait(&mut cpu, &mut counters, &me, ready);
        assert_eq!((counters.halts, counters.poll_hits, counters.poll_timeouts), (1, 0, 0));
        assert_eq!(counters.halt_tsc, 300_000);
        // 300 us is above the 200 us ceiling: nothing to grow; a 0 window that stays 0 is no shrink.
        assert_eq!((counters.grows, counters.shrinks), (0, 0));
        assert_eq!(driver.poll_limit_ns(), 0);
        assert_eq!(me.phase(), Phase::Running);
    }

    #[test]
    fn a_poll_that_sees_the_message_leaves_polling_set() {
        let (mut cpu, mut driver, me, mut counters) = loaded(OPTIONS);
        linux(&mut driver).reflect(IdleState::Halt, 30_000, false); // window 50 us
        let ready = cpu.ready_after(5_000);
        driver.wait(&mut cpu, &mut counters, &me, ready);
        assert_eq!((counters.poll_hits, counters.poll_timeouts, counters.halts), (1, 0, 0));
        assert!((5_000..8_000).contains(&counters.poll_tsc), "{}", counters.poll_tsc);
        assert_eq!(driver.poll_limit_ns(), 50_000, "a hit never moves the window");
        assert_eq!(me.flags().load() & POLLING, POLLING, "still promises to look before halting");
        // So a waker now skips the IPI ...
        let waker = wake_now(&me);
        assert_eq!((waker.ipis_skipped, waker.ipis_sent), (1, 0));
        // ... and the next wait takes the stale wakeup, looks, and polls again.
        let ready = cpu.ready_after(1_000);
        driver.wait(&mut cpu, &mut counters, &me, ready);
        assert_eq!((counters.poll_hits, counters.halts), (2, 0));
        assert!(!me.flags().need_resched(), "consumed");
    }

    #[test]
    fn a_timed_out_poll_halts_with_polling_cleared_and_the_long_halt_shrinks() {
        let (mut cpu, mut driver, me, mut counters) = loaded(OPTIONS);
        linux(&mut driver).reflect(IdleState::Halt, 30_000, false); // window 50 us
        let ready = cpu.ready_after(100_000);
        driver.wait(&mut cpu, &mut counters, &me, ready);
        assert_eq!((counters.poll_hits, counters.poll_timeouts, counters.halts), (0, 1, 1));
        assert_eq!(me.flags().load() & POLLING, 0, "cleared on the way into HLT");
        // The 300 us halt is above the ceiling: 50 us / 2 is below grow_start, so 0.
        assert_eq!(counters.shrinks, 1);
        assert_eq!(driver.poll_limit_ns(), 0);
        let waker = wake_now(&me);
        assert_eq!((waker.ipis_sent, waker.ipis_to_running), (1, 1), "the target has left wait");
    }

    #[test]
    fn a_halt_that_a_longer_poll_would_have_caught_grows_the_window() {
        let (mut cpu, mut driver, me, mut counters) = loaded(OPTIONS);
        linux(&mut driver).reflect(IdleState::Halt, 30_000, false); // window 50 us
        // A 120 us halt: a 100 us window would have caught it.
        let grew = linux(&mut driver).reflect(IdleState::Halt, 120_000, false);
        assert_eq!(grew, Adjustment::Grew { from: 50_000, to: 100_000 });
        let ready = cpu.ready_after(70_000);
        driver.wait(&mut cpu, &mut counters, &me, ready);
        assert_eq!((counters.poll_hits, counters.halts), (1, 0), "a 100 us window catches a 70 us wait");
    }

    #[test]
    fn a_pending_wakeup_aborts_the_halt() {
        let (mut cpu, mut driver, me, mut counters) = loaded(OPTIONS);
        let mut looks = 0;
        // Not ready at the first look; the wakeup lands before the halt's re-check.
        driver.wait(&mut cpu, &mut counters, &me, || {
            looks += 1;
            if looks == 1 {
                assert_eq!(me.flags().wake(), Kick::Needed);
            }
            looks > 2
        });
        assert_eq!((counters.halts, counters.halts_aborted), (0, 1));
    }

    #[test]
    fn zero_latency_requirement_polls_a_tick_at_a_time() {
        let (mut cpu, mut driver, me, mut counters) = loaded(DriverOptions { latency_req: 0, ..OPTIONS });
        let ready = cpu.ready_after(2 * TICK_NS + TICK_NS / 2);
        driver.wait(&mut cpu, &mut counters, &me, ready);
        assert_eq!((counters.poll_timeouts, counters.poll_hits, counters.halts), (2, 1, 0));
        assert_eq!(driver.poll_limit_ns(), 0, "polls never grow the window");
    }

    #[test]
    fn wakers_count_where_the_target_was() {
        let target = VcpuFlags::new();
        for (phase, field) in [
            (Phase::Running, (|c: &Counters| c.ipis_to_running) as fn(&Counters) -> u64),
            (Phase::Idle, |c| c.ipis_to_idle),
            (Phase::Polling, |c| c.ipis_to_polling),
            (Phase::Halting, |c| c.ipis_to_halting),
        ] {
            target.set_phase(phase);
            target.flags().take_need_resched();
            let waker = wake_now(&target);
            assert_eq!((waker.ipis_sent, field(&waker)), (1, 1), "{phase:?}");
        }
    }

    fn predictive(budget_ppm: u32, ceiling_ns: u64) -> DriverOptions {
        let params =
            PredictiveParams { poll_budget_ppm: budget_ppm, poll_ceiling_ns: ceiling_ns, ..PredictiveParams::DEFAULT };
        DriverOptions { governor: Some(params.validate().unwrap().into()), ..OPTIONS }
    }

    /// One message after `busy_ns` of work and `think_ns` of waiting, sent with an IPI if the
    /// vCPU is not polling: the waker's stamp at the send, and a halted vCPU running again
    /// `wake_cost_ns` later (after an IPI or its timer alike).
    fn message(
        cpu: &mut Fake,
        driver: &mut Haltpoll,
        me: &VcpuFlags,
        counters: &mut Counters,
        (busy_ns, think_ns, wake_cost_ns): (u64, u64, u64),
    ) {
        cpu.now.set(cpu.now.get() + busy_ns);
        let at = cpu.now.get() + think_ns;
        me.waker.0.kick_tsc.store(at, Release);
        cpu.wake_at.set(Some(at + wake_cost_ns));
        cpu.wake_cost = wake_cost_ns;
        let ready = cpu.ready_after(think_ns);
        driver.wait(cpu, counters, me, ready);
    }

    /// A driver loaded with `options` after `warm` messages of `shape` (see [`message`]), and
    /// its counters over the next `measured` ones.
    fn settled(
        options: DriverOptions,
        shape: (u64, u64, u64),
        warm: u32,
        measured: u32,
    ) -> (Fake, Haltpoll, VcpuFlags, Counters) {
        let (mut cpu, mut driver, me, mut counters) = loaded(options);
        for _ in 0..warm {
            message(&mut cpu, &mut driver, &me, &mut counters, shape);
        }
        counters = Counters::default();
        for _ in 0..measured {
            message(&mut cpu, &mut driver, &me, &mut counters, shape);
        }
        (cpu, driver, me, counters)
    }

    #[test]
    fn predictive_loads_and_switches_host_polling_off_unless_its_budget_is_zero() {
        let mut cpu = Fake::new(KVM_FEATURE_POLL_CONTROL, KVM_HINTS_REALTIME);
        let mut report = DriverReport::default();
        assert!(Haltpoll::load(&mut cpu, &predictive(50_000, 1_000_000), &mut report).is_some());
        assert_eq!(report.governor_kind, haltpoll::GovernorKind::Predictive as u32);
        assert!(Haltpoll::load(&mut cpu, &predictive(0, 1_000_000), &mut report).is_some());
        assert_eq!(cpu.msrs, [(MSR_KVM_POLL_CONTROL, 0), (MSR_KVM_POLL_CONTROL, 1)]);
    }

    #[test]
    fn predictive_escapes_the_window_zero_trap_with_the_measured_wake_cost() {
        // The window-0 trap (docs/design.md): 150 us between messages, a 200 us ceiling, and a halt's wake-up of
        // 60 us that makes every halted period look 210 us long. The driver measures the wake
        // cost from the waker's stamp, so the governor sees 150 us and polls for it.
        const SHAPE: (u64, u64, u64) = (5_000, 150_000, 60_000);
        let counters = settled(predictive(PPM_WHOLE, 200_000), SHAPE, 300, 200).3;
        assert!(counters.poll_hits >= 198, "{counters:?}");
        // Linux's governor, the same messages: the window falls to 0 and stays there.
        let counters = settled(OPTIONS, SHAPE, 300, 200).3;
        assert_eq!((counters.poll_hits, counters.halts), (0, 200), "{counters:?}");
    }

    #[test]
    fn the_driver_learns_what_a_halt_costs_and_tells_the_governor() {
        // Every message halts (think 1 ms, budget 0): 60 us from the waker's stamp to running.
        // A budget of 0 is net of the halts catches save, so once the halt's cost is known a
        // timer and a short poll after it, which pay for themselves, may catch some: those
        // halted for the timer, and the IPI woke the rest.
        let counters_and_driver = settled(predictive(0, 1_000_000), (5_000, 1_000_000, 60_000), 0, 50);
        let (driver, counters) = (&counters_and_driver.1, counters_and_driver.3);
        assert_eq!(counters.halts, 50, "{counters:?}");
        let costs = driver.costs();
        assert_eq!((costs.halt_entry_ns, costs.ipi_wake_ns), (FAKE_HALT_ENTRY_NS, 60_000));
        assert!(costs.ipi_wakes > 0, "{costs:?}");
        assert_eq!(costs.ipi_wakes, 50 - counters.timer_fires, "{counters:?} {costs:?}");
        assert_eq!(costs.halt_cost_ns, FAKE_HALT_ENTRY_NS + 60_000);
        let AnyGovernor::Predictive(gov) = driver.governor() else { panic!("not the predictive governor") };
        assert_eq!(gov.halt_cost_ns(), costs.halt_cost_ns);
        // Linux's governor is not told (it has no use for it), but the driver learns all the same.
        let linux = settled(OPTIONS, (5_000, 1_000_000, 60_000), 0, 5).1;
        assert_eq!(linux.costs().ipi_wake_ns, 60_000);
    }

    #[test]
    fn periodic_wakeups_beyond_the_budget_halt_with_a_timer_and_are_caught_polling() {
        // 600 us between messages and a 2% budget: no window from idle entry is affordable; a
        // timer just before the wakeup and a short poll are.
        let (mut cpu, mut driver, me, mut counters) =
            settled(predictive(20_000, 1_000_000), (2_000, 600_000, 20_000), 1_000, 500);
        assert!(counters.timers_armed >= 450, "{counters:?}");
        assert!(counters.timer_fires >= 450 && counters.poll_hits >= 450, "{counters:?}");
        assert!(counters.poll_tsc < 500 * 30_000, "short polls: {counters:?}");
        // A message that comes early, while the vCPU is halted with its timer set: woken by the
        // IPI, the timer cancelled, and not a poll hit.
        let before = counters;
        message(&mut cpu, &mut driver, &me, &mut counters, (2_000, 200_000, 20_000));
        assert_eq!(counters.timers_armed, before.timers_armed + 1);
        assert_eq!((counters.timer_fires, counters.poll_hits), (before.timer_fires, before.poll_hits));
        assert_eq!(cpu.timer_due, None, "cancelled");
    }

    #[test]
    fn the_timer_is_aimed_early_by_its_wake_ups_spread() {
        let (mut cpu, mut driver, me, mut counters) =
            settled(predictive(20_000, 1_000_000), (2_000, 600_000, 20_000), 1_000, 0);
        // Timer wake-ups of 10 and 30 us in turn: a spread of about 10 us.
        for i in 0..200 {
            let wake_ns = if i % 2 == 0 { 10_000 } else { 30_000 };
            message(&mut cpu, &mut driver, &me, &mut counters, (2_000, 600_000, wake_ns));
        }
        let costs = driver.costs();
        assert!(costs.timer_wakes >= 1_000 && (5_000..=15_000).contains(&costs.timer_spread_ns), "{costs:?}");
        let AnyGovernor::Predictive(gov) = driver.governor() else { panic!("not the predictive governor") };
        let Decision::TimerThenPoll { timer_ns, window_ns } = gov.planned() else { panic!("{:?}", gov.planned()) };
        // The next idle period begins after 2 us of work; its timer is due two spreads early.
        let entry = cpu.now.get() + 2_000;
        let lead = 2 * costs.timer_spread_ns;
        // A message long after the window: the timer wakes the vCPU `lead` early (its wake-up is
        // the median, 20 us), and the poll lasts until `lead` after the window's end, two leads
        // longer than the window.
        let polled = counters.poll_tsc;
        message(&mut cpu, &mut driver, &me, &mut counters, (2_000, 2_000_000, 20_000));
        assert_eq!(cpu.armed_due, Some(entry + timer_ns - lead));
        let told = costs.timer_wake_ns.abs_diff(20_000);
        let extra = (counters.poll_tsc - polled).saturating_sub(window_ns);
        assert!(extra.abs_diff(2 * lead) <= told + 2_000, "polled {window_ns} + {extra} ns, lead {lead}");
    }

    #[test]
    fn the_predictive_governor_learns_at_the_next_idle_entry_and_decides_the_same() {
        // A poll that catches its message returns with the period not yet learnt: the plan
        // runs when the next wait begins.
        let shape = (2_000, 600_000, 20_000);
        let (mut cpu, mut driver, me, mut counters) = settled(predictive(20_000, 1_000_000), shape, 1_000, 0);
        message(&mut cpu, &mut driver, &me, &mut counters, shape);
        assert!(driver.governor.pending.is_some());
        assert_ne!(driver.governor.governor, driver.governor(), "the last period is not learnt yet");
        // The same periods through a governor that reflects at once: the same decisions.
        let (mut cpu, mut now_or_later, me, mut counters) = loaded(predictive(20_000, 1_000_000));
        let mut at_once = now_or_later.governor.governor;
        for i in 0..300u64 {
            let think = 300_000 + (i % 7) * 50_000;
            message(&mut cpu, &mut now_or_later, &me, &mut counters, (2_000, think, 20_000));
            let outcome = now_or_later.governor.pending.expect("a period to learn");
            let busy = if i == 0 { 0 } else { 2_000 };
            at_once.select(haltpoll::LATENCY_ANY, busy);
            // What the driver's mechanism tells the governor before each reflect.
            if let Some(cost) = now_or_later.costs.halt_cost_ns() {
                at_once.set_halt_cost_ns(cost);
            }
            if let Some(wake) = now_or_later.costs.timer_wake_ns() {
                at_once.set_timer_wake_ns(wake);
            }
            // And the driver's ceiling in halt costs, below the parameters' 1 ms.
            if let (Some(cost), AnyGovernor::Predictive(gov)) = (now_or_later.costs.halt_cost_ns(), &mut at_once) {
                gov.set_ceiling_ns(driver_ceiling_ns(cost, 1_000_000));
            }
            at_once.reflect(&outcome);
            assert_eq!(at_once, now_or_later.governor(), "period {i}");
        }
    }

    #[test]
    fn the_predictive_governor_s_ceiling_is_a_few_halt_costs() {
        // Short periods the governor catches, then one of 3 ms (a partner preempted): with a
        // full credit the governor would poll to its 4 ms ceiling; the driver's ceiling, a few
        // halt costs, stops it there.
        let (mut cpu, mut driver, me, mut counters) =
            settled(predictive(PPM_WHOLE, 4_000_000), (5_000, 30_000, 60_000), 300, 0);
        let cap = POLL_HALT_COSTS * driver.costs().halt_cost_ns;
        let AnyGovernor::Predictive(gov) = driver.governor() else { panic!("not the predictive governor") };
        assert_eq!(gov.ceiling_ns(), cap);
        assert!(
            (cap / 2..=cap).contains(&driver.poll_limit_ns()),
            "window {} ns, cap {cap} ns",
            driver.poll_limit_ns()
        );
        let before = counters;
        message(&mut cpu, &mut driver, &me, &mut counters, (5_000, 3_000_000, 60_000));
        let polled = counters.poll_tsc - before.poll_tsc;
        assert!((cap..cap + 3_000).contains(&polled), "polled {polled} ns, cap {cap} ns");
        assert_eq!((counters.poll_timeouts, counters.halts), (before.poll_timeouts + 1, before.halts + 1));
    }

    #[test]
    fn after_a_period_no_window_could_catch_the_next_one_halts_then_polling_resumes() {
        // Short periods the governor polls for, then one of 3 ms, beyond two driver's ceilings:
        // the next period (short again) halts instead of polling from idle entry, and once that
        // short period is learnt, polling resumes and catches.
        let (mut cpu, mut driver, me, mut counters) =
            settled(predictive(PPM_WHOLE, 4_000_000), (5_000, 30_000, 60_000), 300, 0);
        message(&mut cpu, &mut driver, &me, &mut counters, (5_000, 3_000_000, 60_000));
        let before = counters;
        message(&mut cpu, &mut driver, &me, &mut counters, (5_000, 30_000, 60_000));
        assert_eq!(counters.poll_tsc, before.poll_tsc, "it polled after the long period");
        assert_eq!((counters.halts, counters.poll_hits), (before.halts + 1, before.poll_hits));
        let before = counters;
        message(&mut cpu, &mut driver, &me, &mut counters, (5_000, 30_000, 60_000));
        assert_eq!((counters.halts, counters.poll_hits), (before.halts, before.poll_hits + 1));
    }

    #[test]
    fn a_quiet_period_keeps_timers_forced_polls_and_halts() {
        let quiet = Outcome { idle_ns: 900_000, halt_wake_ns: 100_000, ..Outcome::default() };
        let poll = Decision::Poll { window_ns: 50_000 };
        assert_eq!(after_a_quiet_period(poll, &quiet, 350_000), Decision::Halt);
        // Its own wake-up is not idle time a window could have caught.
        assert_eq!(after_a_quiet_period(poll, &quiet, 400_000), poll);
        let caught = Outcome { caught: true, ..quiet };
        assert_eq!(after_a_quiet_period(poll, &caught, 400_000), Decision::Halt);
        for kept in [
            Decision::Poll { window_ns: u64::MAX },
            Decision::TimerThenPoll { timer_ns: 1, window_ns: 2 },
            Decision::Halt,
        ] {
            assert_eq!(after_a_quiet_period(kept, &quiet, 1_000), kept);
        }
    }

    #[test]
    fn predictive_never_sets_a_timer_without_timer_first() {
        let params = PredictiveParams { poll_budget_ppm: 20_000, timer_first: false, ..PredictiveParams::DEFAULT };
        let options = DriverOptions { governor: Some(params.validate().unwrap().into()), ..OPTIONS };
        let counters = settled(options, (2_000, 600_000, 20_000), 0, 1_000).3;
        assert_eq!(counters.timers_armed, 0);
    }

    #[test]
    fn predictive_zero_latency_requirement_never_halts() {
        let options = DriverOptions { latency_req: 0, ..predictive(50_000, 1_000_000) };
        let (mut cpu, mut driver, me, mut counters) = loaded(options);
        let ready = cpu.ready_after(2 * TICK_NS + TICK_NS / 2);
        driver.wait(&mut cpu, &mut counters, &me, ready);
        assert_eq!((counters.poll_timeouts, counters.poll_hits, counters.halts), (2, 1, 0));
    }
}
