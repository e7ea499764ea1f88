//! The idle loop, as Linux's `cpuidle_enter_state`: one function, [`enter`], runs one idle
//! period of any governor on any machine. It asks the governor ([`IdleGovernor::select`]),
//! carries out its [`Decision`] on a [`Mechanism`] (poll, halt, or halt with a timer then
//! poll), with the wake protocol around each state, and reports the [`Outcome`] back
//! ([`IdleGovernor::reflect`]).
//!
//! The protocol, whoever the mechanism is:
//! - before a poll, set-then-test: POLLING is set and NEED_RESCHED tested in one step, so a
//!   wakeup already pending ends the poll before it starts, and any later one is seen by it;
//! - before a halt, clear-then-test: POLLING is cleared and NEED_RESCHED tested in one step, so
//!   a wakeup already pending calls the halt off, and any later one finds POLLING clear and
//!   interrupts the halt (an IPI, a futex wake);
//! - after the period, the caller consumes the wakeup (takes the token) as its own protocol
//!   says: the loop only reports what ended the period ([`Outcome::end`]).
//!
//! The guest's driver (a vCPU: TSC, `pause`, HLT, the APIC timer), the thread parker (a
//! futex), the aarch64 demo (`WFE`, `WFI`) and [`replay`](crate::replay) (a simulated CPU on a
//! virtual clock) are its mechanisms. Everything is generic, so each caller's loop is
//! monomorphised for its governor and its mechanism: no dynamic dispatch on the way to a poll
//! or back from one.
//!
//! ```
//! use haltpoll::idle::{self, Halted, Mechanism};
//! use haltpoll::poll::PollOutcome;
//! use haltpoll::{Decision, End, Governor, IdleGovernor, ValidParams, LATENCY_ANY};
//!
//! /// A CPU whose wakeup comes 30 us into each idle period, on a clock of its own.
//! struct Cpu { now: u64, wakeup: u64 }
//! impl Mechanism for Cpu {
//!     fn now_ns(&mut self) -> u64 { self.now }
//!     fn set_polling_and_test(&mut self) -> bool { self.now >= self.wakeup }
//!     fn clear_polling_and_test(&mut self) -> bool { self.now >= self.wakeup }
//!     fn poll(&mut self, limit_ns: u64, _times_hits: bool) -> PollOutcome {
//!         let start = self.now;
//!         self.now = self.wakeup.min(start.saturating_add(limit_ns));
//!         PollOutcome { timed_out: self.now < self.wakeup, polled_ns: self.now - start }
//!     }
//!     fn halt(&mut self, _timer_ns: Option<u64>) -> Halted {
//!         let start = self.now;
//!         self.now = self.wakeup;
//!         Halted { end: End::Wakeup, ns: self.now - start }
//!     }
//! }
//!
//! let mut gov = Governor::new(ValidParams::DEFAULT);
//! let mut cpu = Cpu { now: 0, wakeup: 30_000 };
//! // The window starts at 0: the first period halts, and the 30 us halt grows the window.
//! let first = idle::enter(&mut gov, &mut cpu, LATENCY_ANY);
//! assert_eq!(first.decision, Decision::Halt);
//! assert!(!first.outcome.caught);
//! cpu = Cpu { now: 100_000, wakeup: 130_000 };
//! // Now the 50 us poll catches it.
//! let second = idle::enter(&mut gov, &mut cpu, LATENCY_ANY);
//! assert_eq!(second.decision, Decision::Poll { window_ns: 50_000 });
//! assert!(second.outcome.caught);
//! assert_eq!(second.outcome.poll_ns, 30_000);
//! ```

use crate::driver::HALT;
use crate::poll::PollOutcome;
use crate::select::{Adjustment, Decision, End, IdleGovernor, LatencyReq, Outcome};

/// What the idle loop needs from the machine it runs on: the two idle states (poll and halt,
/// the halt with an optional timer), a clock, and the two steps of the wake protocol on the
/// CPU's wake word ([`wake::WakeFlags`](crate::wake::WakeFlags), or what stands for it).
///
/// The required methods are the states and the protocol; the provided ones are hooks a
/// mechanism overrides when it has more to say (a deadline, a measured wake cost), and
/// otherwise cost nothing.
pub trait Mechanism {
    /// A monotonic clock, ns (any origin; a timer or a deadline is on it).
    fn now_ns(&mut self) -> u64;

    /// Set-then-test before a poll: sets POLLING and returns whether a wakeup was already
    /// pending, in one step ([`WakeFlags::set_polling_and_test`]). A mechanism that keeps
    /// POLLING set while it runs may return false and let the poll see the wakeup.
    ///
    /// [`WakeFlags::set_polling_and_test`]: crate::wake::WakeFlags::set_polling_and_test
    fn set_polling_and_test(&mut self) -> bool;

    /// Clear-then-test before a halt: clears POLLING and returns whether a wakeup was already
    /// pending, in one step ([`WakeFlags::clear_polling_and_test`]); true calls the halt off.
    ///
    /// [`WakeFlags::clear_polling_and_test`]: crate::wake::WakeFlags::clear_polling_and_test
    fn clear_polling_and_test(&mut self) -> bool;

    /// The POLL state, POLLING set: waits until the wakeup or until `limit_ns` has passed
    /// (the core's [`poll`](crate::poll::poll) over the mechanism's
    /// [`PollPlatform`](crate::poll::PollPlatform)). `times_hits`: whether the governor needs
    /// the time of a poll that caught its wakeup ([`PollPlatform::times_hits`]).
    ///
    /// [`PollPlatform::times_hits`]: crate::poll::PollPlatform::times_hits
    fn poll(&mut self, limit_ns: u64, times_hits: bool) -> PollOutcome;

    /// The HALT state, POLLING clear and no wakeup pending at the clear: sleeps until the
    /// wakeup, the timer at `timer_ns` on the clock (if any) or
    /// [`deadline_ns`](Self::deadline_ns). A wakeup pending when the halt returns ended it, whatever else
    /// fired too: the CPU did not catch it polling.
    fn halt(&mut self, timer_ns: Option<u64>) -> Halted;

    /// The caller's deadline on the clock, if its wait has one (a timed park): no poll runs
    /// past it, and the period ends there without a wakeup ([`End::Deadline`]).
    fn deadline_ns(&self) -> Option<u64> {
        None
    }

    /// A halt that [`clear_polling_and_test`](Self::clear_polling_and_test) called off: the
    /// wakeup was pending. Returns the halt's residency, ns (0: it never halted).
    fn halt_called_off(&mut self) -> u64 {
        0
    }

    /// The governor's timer, due at `due_ns`, ended a halt; a poll follows. A mechanism
    /// that estimates its halts' wake cost may learn it here (from `due_ns` until now).
    fn timer_fired(&mut self, due_ns: u64) {
        let _ = due_ns;
    }

    /// How long the CPU ran before the period that begins at `entry_ns`, ns (the busy time a
    /// governor may earn budget from). Asked only of a governor that
    /// [times its periods](IdleGovernor::TIMES_PERIODS).
    fn busy_ns(&mut self, entry_ns: u64) -> u64 {
        let _ = entry_ns;
        0
    }

    /// The period's length as the governor should learn it, ns, from `entry_ns` to `exit_ns`
    /// on the clock (asked only of a governor that
    /// [times its periods](IdleGovernor::TIMES_PERIODS)). A mechanism that knows better (a
    /// wakeup that landed while a timer's wake-up was under way) says so.
    fn idle_ns(&mut self, entry_ns: u64, exit_ns: u64) -> u64 {
        exit_ns.saturating_sub(entry_ns)
    }

    /// How much of a period that ended in a halt the halt's own wake-up took, ns
    /// ([`Outcome::halt_wake_ns`]): measured (a waker's stamp) or estimated.
    fn halt_wake_ns(&mut self, entry_ns: u64) -> u64 {
        let _ = entry_ns;
        0
    }

    /// What one halt costs this CPU, ns (its exit, the waker's IPI, the wake-up), where the
    /// mechanism measures it as it goes: the loop tells the governor
    /// ([`IdleGovernor::set_halt_cost_ns`]) before it reflects each period. `None`: the
    /// governor keeps its own figure.
    fn halt_cost_ns(&mut self) -> Option<u64> {
        None
    }

    /// How long after it is due the governor's timer gets the CPU running, ns, where the
    /// mechanism measures it: the loop tells the governor
    /// ([`IdleGovernor::set_timer_wake_ns`]) with the halt cost. `None`: not measured.
    fn timer_wake_ns(&mut self) -> Option<u64> {
        None
    }

    /// How long one poll lasts when the latency requirement forbids halting, ns: the poll
    /// repeats until the wakeup (or the deadline). `window_ns` is the governor's; a kernel
    /// with a tick polls a tick at a time.
    fn forced_poll_ns(&self, window_ns: u64) -> u64 {
        window_ns
    }
}

/// How a [`Mechanism::halt`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Halted {
    /// The wakeup, the timer, or the caller's deadline (`End::Deadline { polling: false }`).
    pub end: End,
    /// The halt's residency, ns (its wake-up included, as far as the mechanism sees it).
    pub ns: u64,
}

/// What one idle period did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Entered {
    /// What the governor decided at entry.
    pub decision: Decision,
    /// What it was told at the end.
    pub outcome: Outcome,
    /// What that did to Linux's window.
    pub adjustment: Adjustment,
    /// When the period ended on the mechanism's clock, if the loop read it (a governor that
    /// [times its periods](IdleGovernor::TIMES_PERIODS) has it read; others not after a hit).
    pub exit_ns: Option<u64>,
}

/// Runs one idle period: select, poll / halt / timer then poll, reflect. Returns when the
/// wakeup came (or the mechanism's deadline passed); the caller consumes the wakeup.
///
/// A latency requirement below HALT's exit latency forbids halting: the loop then polls,
/// [`Mechanism::forced_poll_ns`] at a time, until the wakeup or the deadline.
pub fn enter<G: IdleGovernor, M: Mechanism>(gov: &mut G, mechanism: &mut M, latency_req: LatencyReq) -> Entered {
    let mut period = Period::new(mechanism, G::TIMES_PERIODS);
    let busy_ns = if G::TIMES_PERIODS { period.m.busy_ns(period.entry) } else { 0 };
    let decision = gov.select(latency_req, busy_ns);
    match decision {
        Decision::Poll { window_ns } if latency_req < HALT.exit_latency_ns => period.poll_until_woken(window_ns),
        Decision::Halt => period.halt(None),
        Decision::Poll { window_ns } => period.poll_then_halt(window_ns),
        Decision::TimerThenPoll { timer_ns, window_ns } => period.timer_then_poll(timer_ns, window_ns),
    }
    if let Some(cost_ns) = period.m.halt_cost_ns() {
        gov.set_halt_cost_ns(cost_ns);
    }
    if let Some(wake_ns) = period.m.timer_wake_ns() {
        gov.set_timer_wake_ns(wake_ns);
    }
    let (outcome, exit_ns) = period.finish();
    let adjustment = gov.reflect(&outcome);
    Entered { decision, outcome, adjustment, exit_ns }
}

/// One idle period under way: the mechanism and what the states have done so far.
struct Period<'m, M> {
    m: &'m mut M,
    /// Whether the governor times periods ([`IdleGovernor::TIMES_PERIODS`]).
    timed: bool,
    deadline: Option<u64>,
    /// Idle entry on the clock (0 when not timed).
    entry: u64,
    poll_ns: u64,
    halt_ns: u64,
    caught: bool,
    end: End,
}

impl<'m, M: Mechanism> Period<'m, M> {
    fn new(m: &'m mut M, timed: bool) -> Period<'m, M> {
        let entry = if timed { m.now_ns() } else { 0 };
        let deadline = m.deadline_ns();
        Period { m, timed, deadline, entry, poll_ns: 0, halt_ns: 0, caught: false, end: End::Wakeup }
    }

    /// One poll of up to `window_ns` (not past the deadline). True if it ended the period: it
    /// caught the wakeup, or the deadline passed.
    fn poll(&mut self, window_ns: u64) -> bool {
        let mut limit = window_ns;
        if let Some(d) = self.deadline {
            limit = limit.min(d.saturating_sub(self.m.now_ns()));
        }
        if self.m.set_polling_and_test() {
            self.caught = true;
            return true;
        }
        let out = self.m.poll(limit, self.timed);
        self.poll_ns = self.poll_ns.saturating_add(out.polled_ns);
        if !out.timed_out {
            self.caught = true;
            return true;
        }
        if self.deadline.is_some_and(|d| self.m.now_ns() >= d) {
            self.end = End::Deadline { polling: true };
            return true;
        }
        false
    }

    /// One halt, with the governor's timer at `timer_ns` on the clock if any, unless the
    /// clear-then-test calls it off; `end` says what ended it.
    fn halt(&mut self, timer_ns: Option<u64>) {
        if self.m.clear_polling_and_test() {
            self.halt_ns = self.halt_ns.saturating_add(self.m.halt_called_off());
            self.end = End::Wakeup;
            return;
        }
        let halted = self.m.halt(timer_ns);
        self.halt_ns = self.halt_ns.saturating_add(halted.ns);
        self.end = halted.end;
    }

    fn poll_then_halt(&mut self, window_ns: u64) {
        if !self.poll(window_ns) {
            self.halt(None);
        }
    }

    /// Polls a forced poll at a time until the wakeup or the deadline, never halting.
    fn poll_until_woken(&mut self, window_ns: u64) {
        let slice_ns = self.m.forced_poll_ns(window_ns);
        while !self.poll(slice_ns) {}
    }

    /// [`Decision::TimerThenPoll`]: halt with the timer set `timer_ns` after entry; when the
    /// timer (not the wakeup, nor the deadline) ended the halt, poll then halt.
    fn timer_then_poll(&mut self, timer_ns: u64, window_ns: u64) {
        // A governor that does not time its periods gets its timer from now, its entry.
        let entry = if self.timed { self.entry } else { self.m.now_ns() };
        let due = entry.saturating_add(timer_ns);
        self.halt(Some(due));
        if self.end == End::Timer {
            self.m.timer_fired(due);
            self.end = End::Wakeup;
            self.poll_then_halt(window_ns);
        }
    }

    /// The outcome to reflect, and the exit time if the clock was read.
    fn finish(self) -> (Outcome, Option<u64>) {
        let exit = if self.timed { Some(self.m.now_ns()) } else { None };
        let idle_ns = match exit {
            Some(exit) => self.m.idle_ns(self.entry, exit),
            None => self.poll_ns.saturating_add(self.halt_ns),
        };
        let halt_wake_ns = if self.caught { 0 } else { self.m.halt_wake_ns(self.entry) };
        let end = if self.caught { End::Wakeup } else { self.end };
        (Outcome { idle_ns, poll_ns: self.poll_ns, caught: self.caught, halt_wake_ns, end }, exit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Governor, LATENCY_ANY, ValidParams};

    /// A CPU on a virtual clock whose wakeup comes at `wakeup`, with an optional deadline; it
    /// counts its clock reads and its halts.
    #[derive(Default)]
    struct Script {
        now: u64,
        wakeup: u64,
        deadline: Option<u64>,
        clock_reads: u32,
        halts: u32,
        called_off: u32,
        pending_at_halt: bool,
        halt_cost: Option<u64>,
    }

    impl Mechanism for Script {
        fn now_ns(&mut self) -> u64 {
            self.clock_reads += 1;
            self.now
        }
        fn set_polling_and_test(&mut self) -> bool {
            false
        }
        fn clear_polling_and_test(&mut self) -> bool {
            self.pending_at_halt
        }
        fn poll(&mut self, limit_ns: u64, _times_hits: bool) -> PollOutcome {
            let start = self.now;
            let timed_out = self.wakeup.saturating_sub(start) > limit_ns;
            self.now = if timed_out { start.saturating_add(limit_ns) } else { self.wakeup.max(start) };
            PollOutcome { timed_out, polled_ns: self.now - start }
        }
        fn halt(&mut self, timer_ns: Option<u64>) -> Halted {
            self.halts += 1;
            let start = self.now;
            let until = [Some(self.wakeup), timer_ns, self.deadline].into_iter().flatten().min().unwrap_or(u64::MAX);
            self.now = until.max(start);
            let end = if self.now >= self.wakeup {
                End::Wakeup
            } else if timer_ns == Some(self.now) {
                End::Timer
            } else {
                End::Deadline { polling: false }
            };
            Halted { end, ns: self.now - start }
        }
        fn deadline_ns(&self) -> Option<u64> {
            self.deadline
        }
        fn halt_called_off(&mut self) -> u64 {
            self.called_off += 1;
            0
        }
        fn halt_cost_ns(&mut self) -> Option<u64> {
            self.halt_cost
        }
    }

    /// Linux's governor with its window at 50 us.
    fn linux_at_50us() -> Governor {
        let mut gov = Governor::new(ValidParams::DEFAULT);
        IdleGovernor::reflect(&mut gov, &Outcome { idle_ns: 30_000, ..Outcome::default() });
        assert_eq!(gov.poll_limit_ns(), 50_000);
        gov
    }

    #[test]
    fn linux_reads_no_clock_for_a_hit() {
        let mut gov = linux_at_50us();
        let mut cpu = Script { wakeup: 20_000, ..Script::default() };
        let period = enter(&mut gov, &mut cpu, LATENCY_ANY);
        assert!(period.outcome.caught);
        assert_eq!((period.outcome.poll_ns, period.exit_ns, cpu.clock_reads), (20_000, None, 0));
    }

    #[test]
    fn a_deadline_while_polling_ends_the_period_without_a_halt() {
        let mut gov = linux_at_50us();
        let mut cpu = Script { wakeup: u64::MAX, deadline: Some(10_000), ..Script::default() };
        let period = enter(&mut gov, &mut cpu, LATENCY_ANY);
        assert_eq!(period.outcome.end, End::Deadline { polling: true });
        assert_eq!((period.outcome.poll_ns, cpu.halts), (10_000, 0));
        assert_eq!(period.adjustment, Adjustment::Unchanged);
        // The poll timed out, so Linux's governor halts next.
        assert_eq!(IdleGovernor::select(&mut gov, LATENCY_ANY, 0), Decision::Halt);
    }

    #[test]
    fn a_deadline_while_halted_never_grows_the_window() {
        let mut gov = Governor::new(ValidParams::DEFAULT);
        // A 30 us wakeup would grow the window from 0; a 30 us timeout must not.
        let mut cpu = Script { wakeup: u64::MAX, deadline: Some(30_000), ..Script::default() };
        let period = enter(&mut gov, &mut cpu, LATENCY_ANY);
        assert_eq!(period.outcome.end, End::Deadline { polling: false });
        assert_eq!((period.outcome.idle_ns, gov.poll_limit_ns()), (30_000, 0));
    }

    #[test]
    fn a_halt_the_wakeup_called_off_never_sleeps() {
        let mut gov = Governor::new(ValidParams::DEFAULT);
        let mut cpu = Script { wakeup: 0, pending_at_halt: true, ..Script::default() };
        let period = enter(&mut gov, &mut cpu, LATENCY_ANY);
        assert_eq!((cpu.halts, cpu.called_off), (0, 1));
        assert!(!period.outcome.caught);
        assert_eq!(gov.poll_limit_ns(), 0, "a residency of 0 grows nothing");
    }

    #[test]
    fn no_latency_tolerated_polls_until_woken_and_never_halts() {
        let mut gov = Governor::new(ValidParams::DEFAULT);
        let mut cpu = Script { wakeup: 3_000_000, ..Script::default() };
        let period = enter(&mut gov, &mut cpu, 0);
        assert_eq!(period.decision, Decision::Poll { window_ns: u64::MAX });
        assert!(period.outcome.caught);
        assert_eq!((period.outcome.poll_ns, cpu.halts), (3_000_000, 0));
    }

    /// A governor that always decides the same and keeps what it was told.
    struct Fixed(Decision, Option<Outcome>);

    impl IdleGovernor for Fixed {
        fn select(&mut self, _latency_req: LatencyReq, _busy_ns: u64) -> Decision {
            self.0
        }
        fn reflect(&mut self, outcome: &Outcome) -> Adjustment {
            self.1 = Some(*outcome);
            Adjustment::Unchanged
        }
        fn window_ns(&self) -> u64 {
            self.0.window_ns()
        }
    }

    #[test]
    fn the_mechanism_s_halt_cost_reaches_the_predictive_governor_before_it_reflects() {
        let mut gov = crate::Predictive::new(crate::ValidPredictiveParams::DEFAULT);
        assert_eq!(gov.halt_cost_ns(), 0);
        let mut cpu = Script { wakeup: 30_000, ..Script::default() };
        enter(&mut gov, &mut cpu, LATENCY_ANY);
        assert_eq!(gov.halt_cost_ns(), 0, "a mechanism that measures nothing leaves it");
        let mut cpu = Script { wakeup: 30_000, halt_cost: Some(75_000), ..Script::default() };
        enter(&mut gov, &mut cpu, LATENCY_ANY);
        assert_eq!(gov.halt_cost_ns(), 75_000);
    }

    #[test]
    fn a_timer_then_poll_catches_only_after_the_timer() {
        let decision = Decision::TimerThenPoll { timer_ns: 100_000, window_ns: 20_000 };
        // The wakeup 10 us after the timer: caught by the poll the timer began.
        let mut gov = Fixed(decision, None);
        let mut cpu = Script { wakeup: 110_000, ..Script::default() };
        let period = enter(&mut gov, &mut cpu, LATENCY_ANY);
        assert_eq!(gov.1, Some(period.outcome));
        assert!(period.outcome.caught);
        assert_eq!((period.outcome.idle_ns, period.outcome.poll_ns, cpu.halts), (110_000, 10_000, 1));
        // Before the timer: the halt ends on the wakeup, not caught, no poll.
        let mut cpu = Script { wakeup: 60_000, ..Script::default() };
        let period = enter(&mut gov, &mut cpu, LATENCY_ANY);
        assert!(!period.outcome.caught);
        assert_eq!((period.outcome.idle_ns, period.outcome.poll_ns, cpu.halts), (60_000, 0, 1));
        // Past the window: poll 20 us, then halt until the wakeup.
        let mut cpu = Script { wakeup: 500_000, ..Script::default() };
        let period = enter(&mut gov, &mut cpu, LATENCY_ANY);
        assert!(!period.outcome.caught);
        assert_eq!((period.outcome.idle_ns, period.outcome.poll_ns, cpu.halts), (500_000, 20_000, 2));
    }
}
