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

use core::sync::atomic::AtomicU32;
use core::sync::atomic::Ordering::Relaxed;

use haltpoll::driver::{LoadOptions, decide_load, detect_kvm};
use haltpoll::platform::Counter;
use haltpoll::poll::{PollPlatform, poll};
use haltpoll::wake::{Kick, WakeFlags};
use haltpoll::{Adjustment, Governor, IdleState, LatencyReq, Params};

use crate::cpu::Cpu;
use haltpoll_abi::{Counters, DriverLoad, DriverReport, Phase, PollControl};

/// How long a poll forced by a latency requirement of 0 lasts before the loop goes round again
/// (Linux polls for a tick; this guest has none, so it takes a 1 ms tick, HZ=1000).
pub const TICK_NS: u64 = 1_000_000;

/// What wakers of one vCPU touch: its wake flags and, for the report, where it is. Each on a
/// cache line of its own, so that neither the phase stores nor another vCPU's flags slow down
/// a poll.
#[derive(Debug, Default)]
#[repr(C, align(64))]
pub struct VcpuFlags {
    flags: Line<WakeFlags>,
    phase: Line<AtomicU32>,
}

#[derive(Debug, Default)]
#[repr(C, align(64))]
struct Line<T>(T);

impl VcpuFlags {
    /// Not polling, nothing pending, running.
    pub const fn new() -> VcpuFlags {
        VcpuFlags { flags: Line(WakeFlags::new()), phase: Line(AtomicU32::new(Phase::Running as u32)) }
    }

    /// The wake flags (POLLING, NEED_RESCHED).
    pub const fn flags(&self) -> &WakeFlags {
        &self.flags.0
    }

    /// Where the vCPU was last (a snapshot; for the report only, never for a decision).
    pub fn phase(&self) -> Phase {
        Phase::from_raw(self.phase.0.load(Relaxed)).unwrap_or(Phase::Running)
    }

    fn set_phase(&self, phase: Phase) {
        self.phase.0.store(phase as u32, Relaxed);
    }
}

/// The driver's options for one vCPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DriverOptions {
    /// The governor's parameters.
    pub params: Params,
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
    governor: Governor,
    latency_req: LatencyReq,
    clock: Counter,
}

impl Haltpoll {
    /// Loads the driver on this vCPU, as Linux's cpuidle-haltpoll does at boot and each CPU
    /// does as it comes online: detect KVM from CPUID, refuse without the REALTIME hint unless
    /// forced, then write `MSR_KVM_POLL_CONTROL`: 0 (host polling off) if the guest polls on
    /// this vCPU, 1 if it does not (a ceiling of 0 and a latency requirement above 0). Without
    /// the poll-control feature it notes that in `report` and carries on.
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
        let Ok(params) = options.params.validate() else {
            report.load = DriverLoad::RefusedBadParams as u32;
            return None;
        };
        let decision = decide_load(kvm, LoadOptions { force: options.force });
        report.load = DriverLoad::of(decision) as u32;
        let Ok(loaded) = decision else { return None };
        let guest_polls = params.guest_halt_poll_ns > 0 || options.latency_req == 0;
        match loaded.poll_control_msr(guest_polls) {
            Some(value) => {
                cpu.write_poll_control(value != 0);
                report.poll_control =
                    if value == 0 { PollControl::HostPollOff } else { PollControl::HostPollOn } as u32;
            }
            None => report.poll_control_missing = 1,
        }
        Some(Haltpoll {
            governor: Governor::new(params),
            latency_req: options.latency_req,
            clock: Counter::new(options.tsc_khz.saturating_mul(1_000)),
        })
    }

    /// The governor (its window, its parameters).
    pub const fn governor(&self) -> &Governor {
        &self.governor
    }

    /// Returns once `ready()` is true, idling meanwhile: the cpuidle loop. Each round consumes
    /// NEED_RESCHED, looks at `ready()`, asks the governor for a state, enters it and reflects
    /// what happened.
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
            let adjustment = match self.governor.select(self.latency_req) {
                IdleState::Poll => self.poll(cpu, counters, me, &mut ready),
                IdleState::Halt => self.halt(cpu, counters, me),
            };
            match adjustment {
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

    /// The POLL state: spin at ring 3 with POLLING set until `ready()`, NEED_RESCHED or the
    /// window's end. POLLING stays set afterwards (see the module's documentation).
    fn poll<C: Cpu>(
        &mut self,
        cpu: &mut C,
        counters: &mut Counters,
        me: &VcpuFlags,
        ready: &mut impl FnMut() -> bool,
    ) -> Adjustment {
        me.set_phase(Phase::Polling);
        let limit_ns = self.governor.poll_time_ns(TICK_NS);
        let (timed_out, polled_ns, polled_tsc) = if me.flags().set_polling_and_test() {
            (false, 0, 0)
        } else {
            let mut platform = Platform { cpu, clock: self.clock, flags: me.flags(), ready, first: None, last: 0 };
            let outcome = poll(&mut platform, limit_ns);
            let polled_tsc = platform.last.saturating_sub(platform.first.unwrap_or(platform.last));
            (outcome.timed_out, outcome.polled_ns, polled_tsc)
        };
        me.set_phase(Phase::Idle);
        counters.poll_tsc += polled_tsc;
        if timed_out {
            counters.poll_timeouts += 1;
        } else {
            counters.poll_hits += 1;
        }
        self.governor.reflect(IdleState::Poll, polled_ns, timed_out)
    }

    /// The HALT state: clear POLLING and re-check NEED_RESCHED in one step, then halt through
    /// the lost-IPI-safe ring-0 service. The interrupt count is read first: an IPI that arrives
    /// after the re-check moves it, and the service then returns at once.
    fn halt<C: Cpu>(&mut self, cpu: &mut C, counters: &mut Counters, me: &VcpuFlags) -> Adjustment {
        me.set_phase(Phase::Halting);
        let irqs = cpu.irq_count();
        let start = cpu.rdtsc();
        let halted = !me.flags().clear_polling_and_test() && cpu.halt_unless_irq_since(irqs);
        let end = cpu.rdtsc();
        me.set_phase(Phase::Idle);
        let ticks = end.saturating_sub(start);
        if halted {
            counters.halts += 1;
            counters.halt_tsc += ticks;
        } else {
            counters.halts_aborted += 1;
        }
        self.governor.reflect(IdleState::Halt, self.clock.ns(ticks), false)
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
            cpu.send_ipi(index);
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
    use haltpoll::wake::POLLING;
    use std::cell::Cell;
    use std::rc::Rc;

    /// A vCPU with a scripted CPUID, a clock that moves 10 ns per relax, halts that last 300 us
    /// and end with an IPI, and a log of MSR writes.
    struct Fake {
        features: u32,
        hints: u32,
        kvm: bool,
        now: Rc<Cell<u64>>,
        msrs: Vec<(u32, u64)>,
        irqs: u64,
    }

    impl Fake {
        fn new(features: u32, hints: u32) -> Fake {
            Fake { features, hints, kvm: true, now: Rc::default(), msrs: Vec::new(), irqs: 0 }
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
            assert_eq!(irq_count, self.irqs, "no IPI can be pending in this script");
            self.now.set(self.now.get() + 300_000);
            self.irqs += 1;
            true
        }
        fn send_ipi(&mut self, _: usize) {}
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
    const OPTIONS: DriverOptions =
        DriverOptions { params: Params::DEFAULT, latency_req: u64::MAX, force: false, tsc_khz: 1_000_000 };

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
        let off = DriverOptions { params: Params { guest_halt_poll_ns: 0, ..Params::DEFAULT }, ..OPTIONS };
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
        let bad = DriverOptions { params: Params { grow_start: 0, ..Params::DEFAULT }, ..OPTIONS };
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
        assert_eq!(driver.governor().poll_limit_ns(), 0);
        assert_eq!(me.phase(), Phase::Running);
    }

    #[test]
    fn a_poll_that_sees_the_message_leaves_polling_set() {
        let (mut cpu, mut driver, me, mut counters) = loaded(OPTIONS);
        driver.governor.reflect(IdleState::Halt, 30_000, false); // window 50 us
        let ready = cpu.ready_after(5_000);
        driver.wait(&mut cpu, &mut counters, &me, ready);
        assert_eq!((counters.poll_hits, counters.poll_timeouts, counters.halts), (1, 0, 0));
        assert!((5_000..8_000).contains(&counters.poll_tsc), "{}", counters.poll_tsc);
        assert_eq!(driver.governor().poll_limit_ns(), 50_000, "a hit never moves the window");
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
        driver.governor.reflect(IdleState::Halt, 30_000, false); // window 50 us
        let ready = cpu.ready_after(100_000);
        driver.wait(&mut cpu, &mut counters, &me, ready);
        assert_eq!((counters.poll_hits, counters.poll_timeouts, counters.halts), (0, 1, 1));
        assert_eq!(me.flags().load() & POLLING, 0, "cleared on the way into HLT");
        // The 300 us halt is above the ceiling: 50 us / 2 is below grow_start, so 0.
        assert_eq!(counters.shrinks, 1);
        assert_eq!(driver.governor().poll_limit_ns(), 0);
        let waker = wake_now(&me);
        assert_eq!((waker.ipis_sent, waker.ipis_to_running), (1, 1), "the target has left wait");
    }

    #[test]
    fn a_halt_that_a_longer_poll_would_have_caught_grows_the_window() {
        let (mut cpu, mut driver, me, mut counters) = loaded(OPTIONS);
        driver.governor.reflect(IdleState::Halt, 30_000, false); // window 50 us
        // A 120 us halt: a 100 us window would have caught it.
        let grew = driver.governor.reflect(IdleState::Halt, 120_000, false);
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
        assert_eq!(driver.governor().poll_limit_ns(), 0, "polls never grow the window");
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
}
