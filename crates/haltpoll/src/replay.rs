//! Replay: the governor and an idealised poll loop run over a trace of idle periods.
//!
//! The model of one idle period of length `d` (from entering idle to the wakeup) with window `W`:
//! - `W == 0`: the governor picks HALT and the CPU halts for `d`;
//! - `d <= W`: the poll catches the wakeup (a hit: no halt, no exit, no IPI);
//! - `d > W`: the poll times out after `W`, the governor picks HALT, and the CPU halts for
//!   `d - W`; the governor reflects that halt, which may move the window.
//!
//! The model ignores the clock-check granularity of the real loop and the cost of the halt
//! itself: it answers "what would the governor have done", which is what tuning needs.

use crate::driver::IdleState;
use crate::governor::{Adjustment, Governor, LATENCY_ANY};
use crate::params::ValidParams;

/// What happened in one idle period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Period {
    /// Length of the idle period: entering idle to the wakeup, ns.
    pub idle_ns: u64,
    /// The window when the period began, ns.
    pub poll_limit_ns_before: u64,
    /// Time spent polling, ns.
    pub poll_ns: u64,
    /// Time spent halted, ns (0 for a poll hit).
    pub halt_ns: u64,
    /// The window when the period ended, ns.
    pub poll_limit_ns_after: u64,
    /// Whether the period ended in a halt (an exit, and a wakeup IPI); false for a poll hit.
    pub halted: bool,
    /// What the halt did to the window, if there was one.
    pub adjustment: Adjustment,
}

impl Period {
    /// Whether the poll caught the wakeup (no halt, so no exit and no IPI).
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
pub struct Replay {
    governor: Governor,
}

impl Replay {
    /// A replay starting from a window of 0, as a CPU does.
    pub const fn new(params: ValidParams) -> Replay {
        Replay { governor: Governor::new(params) }
    }

    /// The governor as it stands.
    pub const fn governor(&self) -> &Governor {
        &self.governor
    }

    /// Runs one idle period of `idle_ns` through the governor.
    pub fn period(&mut self, idle_ns: u64) -> Period {
        let gov = &mut self.governor;
        let before = gov.poll_limit_ns();
        let (poll_ns, halted, adjustment) = match gov.select(LATENCY_ANY) {
            IdleState::Halt => (0, true, gov.reflect(IdleState::Halt, idle_ns, false)),
            IdleState::Poll if idle_ns <= before => (idle_ns, false, gov.reflect(IdleState::Poll, idle_ns, false)),
            IdleState::Poll => {
                gov.reflect(IdleState::Poll, before, true);
                debug_assert_eq!(gov.select(LATENCY_ANY), IdleState::Halt);
                (before, true, gov.reflect(IdleState::Halt, idle_ns - before, false))
            }
        };
        Period {
            idle_ns,
            poll_limit_ns_before: before,
            poll_ns,
            halt_ns: idle_ns - poll_ns,
            poll_limit_ns_after: gov.poll_limit_ns(),
            halted,
            adjustment,
        }
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
}

impl Summary {
    /// Adds one period.
    pub fn add(&mut self, p: &Period) {
        self.periods += 1;
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
        ratio(self.poll_hits, self.periods)
    }

    /// Share of idle time spent polling (a CPU cost: the CPU is busy while it polls).
    pub fn poll_share_of_idle(&self) -> f64 {
        ratio(self.poll_ns, self.idle_ns)
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
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
