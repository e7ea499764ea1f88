//! Replay: a governor run over a trace of idle periods, through the [`idle`] loop
//! on a [`Simulated`] CPU (a virtual clock, an idealised poll).
//!
//! The model of one idle period whose wakeup comes `d` after idle entry, with a halt wake cost
//! `c` (0 unless the caller sets one: [`Replay::with_halt_wake_ns`]):
//! - [`Decision::Halt`]: the CPU halts; the wakeup ends the halt, `c` later.
//! - [`Decision::Poll`] with window `W`: if `d <= W` the poll catches the wakeup (a hit: no
//!   halt, no exit, no IPI); otherwise the poll times out after `W`, the CPU halts, and the halt
//!   ends `c` after the wakeup.
//! - [`Decision::TimerThenPoll`] with timer `T` and window `W`: the CPU halts; a wakeup before
//!   `T` ends the halt as above. Otherwise the timer wakes it, and it polls from `T + c` for up
//!   to `W`: a wakeup in `[T + c, T + c + W]` is a hit; one that came while the timer's wake-up
//!   was under way (`[T, T + c)`) is not (it found the CPU not polling) and ends the period at
//!   `T + c`; a later one finds the CPU halted again.
//!
//! A halt's residency is what the governor is told it lasted, wake cost included: with `c > 0`
//! Linux's governor sees every halt `c` longer than the wait, which is how the window-0 trap
//! forms; the predictive governor is told `c` and takes it off. With `c = 0` (the default) Linux's
//! replay is the one this model always had.
//!
//! The model ignores the clock-check granularity of the real loop: it answers "what would the
//! governor have done", which is what tuning needs.

use crate::dispatch::{AnyGovernor, GovernorParams};
use crate::governor::Governor;
use crate::idle::{self, Halted, Mechanism};
use crate::params::ValidParams;
use crate::poll::PollOutcome;
use crate::select::{Adjustment, Decision, End, IdleGovernor, LATENCY_ANY, Outcome};

/// What a replay runs: which governor with which parameters, and the halt wake cost to model.
/// Linux's parameters alone make one without wake cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Setup {
    /// The governor.
    pub governor: GovernorParams,
    /// How long after its wakeup a halt ends, ns ([`Replay::with_halt_wake_ns`]).
    pub halt_wake_ns: u64,
}

impl Setup {
    /// A fresh replay of this setup, for one CPU.
    pub fn replay(&self) -> Replay<AnyGovernor> {
        Replay::of(AnyGovernor::new(self.governor)).with_halt_wake_ns(self.halt_wake_ns)
    }
}

impl<T: Into<GovernorParams>> From<T> for Setup {
    fn from(governor: T) -> Setup {
        Setup { governor: governor.into(), halt_wake_ns: 0 }
    }
}

/// What happened in one idle period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Period {
    /// Length of the idle period: entering idle to the wakeup, ns.
    pub idle_ns: u64,
    /// What the governor decided at idle entry.
    pub decision: Decision,
    /// The window when the period began, ns (the decision's; Linux's `poll_limit_ns`).
    pub poll_limit_ns_before: u64,
    /// Time spent polling, ns.
    pub poll_ns: u64,
    /// Time spent halted, ns, wake costs included (0 for a poll hit from idle entry).
    pub halt_ns: u64,
    /// The window when the period ended, ns (Linux's `poll_limit_ns`; the predictive governor's
    /// planned window).
    pub poll_limit_ns_after: u64,
    /// Whether the period ended in a halt (an exit, and a wakeup IPI); false for a poll hit.
    pub halted: bool,
    /// Whether a timer the governor asked for woke the CPU ([`Decision::TimerThenPoll`]).
    pub timer_fired: bool,
    /// What the halt did to Linux's window, if there was one.
    pub adjustment: Adjustment,
}

impl Period {
    /// Whether the wakeup found the CPU polling (no IPI; no exit after it).
    pub const fn hit(&self) -> bool {
        !self.halted
    }
}

/// The replay of one CPU: a governor fed one idle period at a time.
///
/// ```
/// use haltpoll::{ValidParams, replay::{Replay, Summary}};
/// let mut replay = Replay::new(ValidParams::DEFAULT);
/// let mut summary = Summary::default();
/// for idle_ns in [30_000, 30_000, 30_000, 5_000_000] {
///     summary.add(&replay.period(idle_ns));
/// }
/// assert_eq!(summary.periods, 4);
/// assert_eq!(summary.poll_hits, 2); // the first halt grew the window to 50 us
/// ```
#[derive(Clone, Debug)]
pub struct Replay<G = Governor> {
    governor: G,
    halt_wake_ns: u64,
}

impl Replay<Governor> {
    /// Linux's governor, starting from a window of 0 as a CPU does.
    pub const fn new(params: ValidParams) -> Replay<Governor> {
        Replay { governor: Governor::new(params), halt_wake_ns: 0 }
    }
}

impl<G: IdleGovernor> Replay<G> {
    /// A replay of `governor` (as it stands: new, for a CPU's start), without halt wake cost.
    pub const fn of(governor: G) -> Replay<G> {
        Replay { governor, halt_wake_ns: 0 }
    }

    /// The same, with every halt ending `halt_wake_ns` after its wakeup (the exit, the IPI, the
    /// return to the guest), as a real halt does.
    pub fn with_halt_wake_ns(self, halt_wake_ns: u64) -> Replay<G> {
        Replay { halt_wake_ns, ..self }
    }

    /// The governor as it stands.
    pub const fn governor(&self) -> &G {
        &self.governor
    }

    /// Runs one idle period of `idle_ns` through the governor, with no busy time before it.
    pub fn period(&mut self, idle_ns: u64) -> Period {
        self.period_after(0, idle_ns)
    }

    /// Runs one idle period of `idle_ns` through the governor, after `busy_ns` of running since
    /// the last one ended: the [`idle`] loop on a [`Simulated`] CPU.
    pub fn period_after(&mut self, busy_ns: u64, idle_ns: u64) -> Period {
        let mut cpu = Simulated::new(busy_ns, idle_ns, self.halt_wake_ns);
        let entered = idle::enter(&mut self.governor, &mut cpu, LATENCY_ANY);
        let Outcome { poll_ns, caught, .. } = entered.outcome;
        Period {
            idle_ns,
            decision: entered.decision,
            poll_limit_ns_before: entered.decision.window_ns(),
            poll_ns,
            // The period ends at the simulated clock's time: polls, halts and wake costs.
            halt_ns: cpu.now.saturating_sub(poll_ns),
            poll_limit_ns_after: self.governor.window_ns(),
            halted: !caught,
            timer_fired: cpu.timer_fired,
            adjustment: entered.adjustment,
        }
    }
}

/// The model's CPU for one idle period, on a virtual clock that starts at idle entry: the
/// wakeup comes at `wakeup`, and a halt ends `wake_cost` after what ended it (the wakeup, or
/// the governor's timer). The wakeup always lands during a wait, which plays it out, so the
/// wake protocol's tests at the start of a state never find it pending.
#[derive(Clone, Copy, Debug)]
pub struct Simulated {
    now: u64,
    wakeup: u64,
    wake_cost: u64,
    busy_ns: u64,
    timer_fired: bool,
}

impl Simulated {
    /// A period whose wakeup comes `idle_ns` after entry, after `busy_ns` of running, with
    /// halts that end `wake_cost_ns` after their wakeup.
    pub const fn new(busy_ns: u64, idle_ns: u64, wake_cost_ns: u64) -> Simulated {
        Simulated { now: 0, wakeup: idle_ns, wake_cost: wake_cost_ns, busy_ns, timer_fired: false }
    }
}

impl Mechanism for Simulated {
    fn now_ns(&mut self) -> u64 {
        self.now
    }

    fn set_polling_and_test(&mut self) -> bool {
        false
    }

    fn clear_polling_and_test(&mut self) -> bool {
        false
    }

    /// Catches the wakeup if it comes within `limit_ns` (every poll starts at or before it).
    fn poll(&mut self, limit_ns: u64, _times_hits: bool) -> PollOutcome {
        let start = self.now;
        let timed_out = self.wakeup.saturating_sub(start) > limit_ns;
        self.now = if timed_out { start.saturating_add(limit_ns) } else { self.wakeup.max(start) };
        PollOutcome { timed_out, polled_ns: self.now - start }
    }

    /// A timer due before the wakeup ends the halt, `wake_cost` late; a wakeup that came
    /// meanwhile found the CPU not polling, and ends the period there.
    fn halt(&mut self, timer_ns: Option<u64>) -> Halted {
        let start = self.now;
        let end = match timer_ns {
            Some(due) if self.wakeup >= due => {
                self.timer_fired = true;
                self.now = due.saturating_add(self.wake_cost);
                if self.wakeup < self.now { End::Wakeup } else { End::Timer }
            }
            _ => {
                self.now = self.wakeup.max(start).saturating_add(self.wake_cost);
                End::Wakeup
            }
        };
        Halted { end, ns: self.now - start }
    }

    fn busy_ns(&mut self, _entry_ns: u64) -> u64 {
        self.busy_ns
    }

    fn halt_wake_ns(&mut self, _entry_ns: u64) -> u64 {
        self.wake_cost
    }
}

/// Totals over a replay.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Idle periods replayed.
    pub periods: u64,
    /// Periods whose wakeup a poll caught.
    pub poll_hits: u64,
    /// Periods that ended in a halt.
    pub halts: u64,
    /// Total idle time, ns.
    pub idle_ns: u64,
    /// Total time spent polling, ns.
    pub poll_ns: u64,
    /// Poll time in periods that ended in a halt anyway, ns.
    pub wasted_poll_ns: u64,
    /// Total time halted, ns.
    pub halt_ns: u64,
    /// Halts that grew the window.
    pub grows: u64,
    /// Halts that shrank the window (including shrinks of a window already at 0).
    pub shrinks: u64,
    /// Periods in which a timer the governor set woke the CPU to poll.
    pub timer_wakes: u64,
}

impl Summary {
    /// Adds one period.
    pub fn add(&mut self, p: &Period) {
        self.periods += 1;
        self.timer_wakes += u64::from(p.timer_fired);
        self.idle_ns = self.idle_ns.saturating_add(p.idle_ns);
        self.poll_ns = self.poll_ns.saturating_add(p.poll_ns);
        self.halt_ns = self.halt_ns.saturating_add(p.halt_ns);
        if p.halted {
            self.halts += 1;
            self.wasted_poll_ns = self.wasted_poll_ns.saturating_add(p.poll_ns);
        } else {
            self.poll_hits += 1;
        }
        match p.adjustment {
            Adjustment::Grew { .. } => self.grows += 1,
            Adjustment::Shrank { .. } => self.shrinks += 1,
            Adjustment::Unchanged => {}
        }
    }

    /// Share of wakeups that needed no exit (poll hits / periods), 0 for an empty trace.
    pub fn no_exit_share(&self) -> f64 {
        crate::share(self.poll_hits, self.periods)
    }

    /// Share of idle time spent polling (a CPU cost: the CPU is busy while it polls).
    pub fn poll_share_of_idle(&self) -> f64 {
        crate::share(self.poll_ns, self.idle_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_zero_halts_for_whole_period() {
        let mut r = Replay::new(ValidParams::DEFAULT);
        let p = r.period(30_000);
        assert_eq!((p.poll_ns, p.halt_ns, p.poll_limit_ns_before, p.poll_limit_ns_after), (0, 30_000, 0, 50_000));
        assert!(p.halted);
    }

    #[test]
    fn hit_polls_for_the_period_and_keeps_window() {
        let mut r = Replay::new(ValidParams::DEFAULT);
        r.period(30_000);
        let p = r.period(50_000); // d == W is a hit
        assert!(p.hit());
        assert_eq!((p.poll_ns, p.halt_ns, p.poll_limit_ns_after), (50_000, 0, 50_000));
        assert_eq!(p.adjustment, Adjustment::Unchanged);
    }

    #[test]
    fn miss_polls_the_window_then_halts_the_rest() {
        let mut r = Replay::new(ValidParams::DEFAULT);
        r.period(30_000); // W = 50 us
        let p = r.period(120_000);
        assert!(p.halted);
        assert_eq!((p.poll_ns, p.halt_ns), (50_000, 70_000));
        // block 70 us in (50 us, 200 us]: grow to 100 us.
        assert_eq!(p.adjustment, Adjustment::Grew { from: 50_000, to: 100_000 });
        let p = r.period(1_000_000);
        assert_eq!((p.poll_ns, p.halt_ns), (100_000, 900_000));
        assert_eq!(p.adjustment, Adjustment::Shrank { from: 100_000, to: 50_000 });
    }

    #[test]
    fn zero_length_period() {
        let mut r = Replay::new(ValidParams::DEFAULT);
        let p = r.period(0);
        assert!(p.halted, "window 0 halts even for a 0 ns period");
        assert_eq!(p.adjustment, Adjustment::Unchanged);
        r.period(10_000);
        let p = r.period(0);
        assert!(p.hit());
    }

    #[test]
    fn summary_counts() {
        let mut r = Replay::new(ValidParams::DEFAULT);
        let mut s = Summary::default();
        for d in [30_000, 30_000, 120_000, 1_000_000] {
            s.add(&r.period(d));
        }
        assert_eq!(s.periods, 4);
        assert_eq!(s.poll_hits, 1);
        assert_eq!(s.halts, 3);
        assert_eq!(s.poll_ns, 30_000 + 50_000 + 100_000);
        assert_eq!(s.wasted_poll_ns, 50_000 + 100_000);
        assert_eq!(s.halt_ns, 30_000 + 70_000 + 900_000);
        assert_eq!(s.idle_ns, s.poll_ns + s.halt_ns);
        assert_eq!((s.grows, s.shrinks), (2, 1));
        assert_eq!(s.no_exit_share(), 0.25);
        assert_eq!(Summary::default().no_exit_share(), 0.0);
    }
}
