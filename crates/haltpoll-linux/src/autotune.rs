//! The tuner that follows the load (`haltpoll autotune`), as a pure policy: the idle periods of
//! the last few intervals and the setting in force go in, a decision comes out. The command
//! records, applies and restores; everything here is numbers, so the same policy runs offline
//! over a recorded trace ([`simulate`]) exactly as it runs on a guest.
//!
//! Each interval the policy weighs the grid over the recent [`Window`] by `tune`'s rules
//! ([`tune::advise`]: Linux's governor replayed for every setting of the grid; within the
//! budget, safe on an idle guest, worth it), so that the tuner and `tune` never disagree on
//! what a setting does or which rule it breaks. Where `tune` recommends the knee (the
//! cheapest within a point of the best, for an operator who applies one setting for good), the
//! tuner takes the best itself: the eligible setting that catches most, since it revisits the
//! choice every interval and the budget is what the operator gave it to spend. It replaces the
//! setting in force only when that one breaks one of those rules, when the best catches more
//! than [`Policy::margin`] more of the window's wakeups, or when it catches about as many for
//! less than half the polling: a load that sits between two settings does not make it flip
//! every interval.
//!
//! ```
//! use haltpoll::Params;
//! use haltpoll_linux::autotune::{Policy, Why, decide};
//! use haltpoll_linux::trace::{Format, IdlePeriod, Span, Trace};
//!
//! // 20 us waits on one CPU: polling catches them, for less than the exits it spares.
//! let periods = (0..2000).map(|i| IdlePeriod { cpu: 0, idle_ns: 20_000, start_ns: Some(i * 100_000) });
//! let mut window = Trace::of_periods(Format::Perf, periods.collect());
//! window.span = Some(Span { wall_ns: 200_000_000, cpus_online: Some(1) });
//! let off = Params { guest_halt_poll_ns: 0, ..Params::DEFAULT };
//! let d = decide(&Policy::new(0.5, 0.01).unwrap(), &window, off);
//! assert_eq!(d.why, Why::Gains);
//! assert!(d.best.no_exit_share > 0.9 && d.best.poll_share <= 0.5);
//! ```

use std::collections::VecDeque;
use std::num::NonZeroU32;

use haltpoll::replay::{Replay, Summary};
use haltpoll::{Governor, Params, ValidParams, share};

use crate::trace::{Format, IdlePeriod, Span, Trace};
use crate::tune::{self, Grid};

/// What the tuner aims at.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    /// The most CPU time polling may take, as a share of the CPU time (0.02 = 2%), over the
    /// window and on the guest gone idle.
    pub budget: f64,
    /// How many more of the window's wakeups (a share: 0.01 = one point) the best setting must
    /// catch than the setting in force to replace it: the hysteresis.
    pub margin: f64,
    /// The ticks of the idle guest every setting is checked against ([`tune::TICKS_HZ`]).
    pub ticks_hz: Vec<NonZeroU32>,
    /// The settings it starts from: `tune`'s grid, which its advice extends at an edge.
    pub grid: Grid,
}

/// A policy that cannot work.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum PolicyError {
    /// A share outside 0..=1.
    #[error("the {what} is {value}: it is a share of {of}, from 0 to 100%")]
    Share {
        /// Which one.
        what: &'static str,
        /// Its value.
        value: f64,
        /// What it is a share of.
        of: &'static str,
    },
}

impl Policy {
    /// `tune`'s default grid, with Linux's other parameters and both ticks, for `budget` (of
    /// the CPU time) and `margin` (of the wakeups).
    pub fn new(budget: f64, margin: f64) -> Result<Policy, PolicyError> {
        if !(0.0..=1.0).contains(&budget) {
            return Err(PolicyError::Share { what: "poll budget", value: budget, of: "the CPU time" });
        }
        if !(0.0..=1.0).contains(&margin) {
            return Err(PolicyError::Share { what: "margin", value: margin, of: "the wakeups" });
        }
        let grid = Grid {
            ceilings_ns: Grid::CEILINGS_NS.to_vec(),
            grow_starts_ns: Grid::GROW_STARTS_NS.to_vec(),
            allow_shrink: vec![true, false],
            base: Params::DEFAULT,
        };
        Ok(Policy { budget, margin, ticks_hz: tune::TICKS_HZ.to_vec(), grid })
    }

    /// The rules of `tune`'s advice for this budget.
    fn rules(&self) -> tune::Policy {
        tune::Policy { budget: self.budget, ticks_hz: self.ticks_hz.clone() }
    }
}

/// What a setting did over the window, and would do on the guest gone idle, judged by `tune`'s
/// rules.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Expected {
    /// The setting.
    pub params: Params,
    /// Wakeups in the window that found the CPU polling.
    pub poll_hits: u64,
    /// Share of the window's wakeups that found the CPU polling.
    pub no_exit_share: f64,
    /// Time spent polling over the window, ns.
    pub poll_ns: u64,
    /// That, as a share of the window's CPU time.
    pub poll_share: f64,
    /// Time spent polling by the guest gone idle, as a share of its time: the worst over the
    /// policy's ticks and the windows a busy phase can leave ([`tune::check_idle_guest`]).
    pub idle_poll_share: f64,
    /// The setting against `tune`'s rules (budget, idle guest, worth it).
    pub judged: tune::Judged,
}

/// Why the tuner keeps or changes the setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why {
    /// The best eligible setting is the one in force.
    Best,
    /// The window has no idle periods: nothing to judge by, so nothing changes (unless the
    /// setting in force fails the budget or the idle-guest check, which need none).
    NoData,
    /// The best catches no more than the margin more, and polls at least half as much: keep
    /// the setting in force.
    WithinMargin,
    /// The setting in force polls more than the budget over the window.
    OverBudget,
    /// The setting in force would poll more than the budget of an idle guest's time.
    IdleGuest,
    /// Most of the polling of the setting in force ends in a halt anyway (`tune`'s rule 3).
    NotWorthIt,
    /// The best catches more than the margin more.
    Gains,
    /// The best catches about as many (no more than the margin more) for less than half the
    /// polling.
    Cheaper,
}

impl Why {
    /// Whether the tuner changes the setting for this reason.
    pub const fn changes(self) -> bool {
        !matches!(self, Why::Best | Why::NoData | Why::WithinMargin)
    }

    /// The reason as the log and the metrics say it.
    pub const fn name(self) -> &'static str {
        match self {
            Why::Best => "best",
            Why::NoData => "no-data",
            Why::WithinMargin => "within-margin",
            Why::OverBudget => "over-budget",
            Why::IdleGuest => "idle-guest",
            Why::NotWorthIt => "not-worth-it",
            Why::Gains => "gains",
            Why::Cheaper => "cheaper",
        }
    }
}

/// One interval's decision.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Decision {
    /// The setting in force, over the window.
    pub current: Expected,
    /// The eligible setting that catches most over the window ([`tune::Advice::best`]).
    pub best: Expected,
    /// Whether to apply `best`, and why.
    pub why: Why,
    /// Idle periods in the window.
    pub periods: u64,
}

impl Decision {
    /// The setting to be in force after this decision.
    pub fn next(&self) -> Params {
        if self.why.changes() { self.best.params } else { self.current.params }
    }
}

/// Decides, over the idle periods of `window`, whether to replace `current` and with what.
pub fn decide(policy: &Policy, window: &Trace, current: Params) -> Decision {
    let cpu = tune::cpu_time(window, None);
    let periods = window.periods.len() as u64;
    let rules = policy.rules();
    // The default grid is valid; one that is not leaves only polling off to advise.
    let advice = tune::advise(window, cpu, policy.grid.clone(), &rules, |_, _| {});
    let best = advice.map_or(policy.grid.polling_off(), |a| a.outcomes[a.best].params);
    let expect = |params: Params| expect(&rules, params, window, cpu);
    let (current, best) = (expect(current), expect(best));
    let slack = (policy.margin * periods as f64) as u64;
    let why = if current.params == best.params {
        Why::Best
    } else if !current.judged.fits_budget {
        Why::OverBudget
    } else if !current.judged.idle_guest_ok {
        Why::IdleGuest
    } else if periods == 0 {
        Why::NoData
    } else if !current.judged.worth_it {
        Why::NotWorthIt
    } else if best.poll_hits > current.poll_hits.saturating_add(slack) {
        Why::Gains
    } else if best.poll_ns.saturating_mul(2) < current.poll_ns {
        Why::Cheaper
    } else {
        Why::WithinMargin
    };
    Decision { current, best, why, periods }
}

/// Decides over the recent `window` ([`decide`]), except after a phase change the older
/// intervals hide: when the setting in force breaks the budget or `tune`'s worth-it rule over
/// the newest interval alone, the window forgets the older intervals and the decision is made
/// over the newest. So the tuner is over its budget, or polling mostly in vain, for one
/// interval, not until the window has forgotten the old phase by itself; and the next
/// decisions, over the new phase only, do not bring the old phase's setting back.
pub fn decide_recent(policy: &Policy, window: &mut Window, current: Params) -> Decision {
    if let (Some(newest), Ok(valid)) = (window.newest(), current.validate()) {
        let outcome = tune::evaluate(newest, &[valid], || {})[0];
        let over = outcome.poll_share(tune::cpu_time(newest, None)) > policy.budget;
        if over || !tune::is_worth_it(&outcome) {
            window.keep_newest();
        }
    }
    decide(policy, &window.trace(), current)
}

/// What `params` does over `window`, and on the guest gone idle, judged by `rules`.
fn expect(rules: &tune::Policy, params: Params, window: &Trace, cpu: tune::CpuTime) -> Expected {
    let Ok(valid) = params.validate() else {
        // A setting that cannot work (read from sysfs) fails every rule.
        let judged = tune::Judged { fits_budget: false, idle_guest: None, idle_guest_ok: false, worth_it: false };
        let (poll_hits, poll_ns) = (0, 0);
        return Expected {
            params,
            poll_hits,
            no_exit_share: 0.0,
            poll_ns,
            poll_share: 1.0,
            idle_poll_share: 1.0,
            judged,
        };
    };
    let outcome = tune::evaluate(window, &[valid], || {})[0];
    let idle_guest = tune::check_idle_guest(&valid, &rules.ticks_hz);
    let s = &outcome.summary;
    Expected {
        params,
        poll_hits: s.poll_hits,
        no_exit_share: s.no_exit_share(),
        poll_ns: s.poll_ns,
        poll_share: outcome.poll_share(cpu),
        idle_poll_share: idle_guest.map_or(0.0, |g| g.poll_share),
        judged: tune::Judged::new(&outcome, idle_guest, cpu, rules.budget),
    }
}

/// Linux's governor on every CPU, with a setting that can change between periods, as writing
/// the module parameters changes it: each CPU keeps its window.
#[derive(Clone, Debug)]
pub struct Timeline {
    params: ValidParams,
    cpus: Vec<Option<Replay<Governor>>>,
}

impl Timeline {
    /// No CPU seen yet; `params` in force.
    pub fn new(params: ValidParams) -> Timeline {
        Timeline { params, cpus: Vec::new() }
    }

    /// Puts `params` in force on every CPU, each keeping its window.
    pub fn set_params(&mut self, params: ValidParams) {
        self.params = params;
        for replay in self.cpus.iter_mut().flatten() {
            let mut governor = *replay.governor();
            governor.set_params(params);
            *replay = Replay::of(governor);
        }
    }

    /// Runs one idle period through its CPU's governor.
    pub fn period(&mut self, idle: &IdlePeriod) -> haltpoll::replay::Period {
        self.replay(idle.cpu).period(idle.idle_ns)
    }

    fn replay(&mut self, cpu: u32) -> &mut Replay<Governor> {
        let slot = cpu as usize;
        if self.cpus.len() <= slot {
            self.cpus.resize(slot + 1, None);
        }
        let params = self.params;
        self.cpus[slot].get_or_insert_with(|| Replay::new(params))
    }
}

/// The recordings of the last few intervals, newest last.
#[derive(Clone, Debug)]
pub struct Window {
    intervals: VecDeque<Trace>,
    capacity: usize,
}

impl Window {
    /// A window of the last `capacity` intervals (at least one).
    pub fn new(capacity: usize) -> Window {
        Window { intervals: VecDeque::new(), capacity: capacity.max(1) }
    }

    /// Adds the newest interval's recording, dropping the oldest beyond the capacity.
    pub fn push(&mut self, interval: Trace) {
        if self.intervals.len() == self.capacity {
            self.intervals.pop_front();
        }
        self.intervals.push_back(interval);
    }

    /// Forgets every interval's recording but the newest.
    pub fn keep_newest(&mut self) {
        let keep = self.intervals.len().saturating_sub(1);
        self.intervals.drain(..keep);
    }

    /// The newest interval's recording.
    pub fn newest(&self) -> Option<&Trace> {
        self.intervals.back()
    }

    /// The intervals as one trace: their periods in order, their wall times summed (the gaps
    /// between recordings are not part of it).
    pub fn trace(&self) -> Trace {
        let periods = self.intervals.iter().flat_map(|t| t.periods.iter().copied()).collect();
        let mut trace = Trace::of_periods(Format::Perf, periods);
        trace.span = self.intervals.iter().try_fold(Span { wall_ns: 0, cpus_online: None }, |sum, t| {
            let span = t.span?;
            Some(Span {
                wall_ns: sum.wall_ns.saturating_add(span.wall_ns),
                cpus_online: span.cpus_online.or(sum.cpus_online),
            })
        });
        trace
    }
}

/// What the tuner did over a trace, offline.
#[derive(Clone, Debug, PartialEq)]
pub struct Simulated {
    /// The governor's totals over the whole trace, each interval under the setting then in
    /// force.
    pub summary: Summary,
    /// Time spent polling, as a share of the trace's CPU time.
    pub poll_share: f64,
    /// Each interval's totals, under the setting then in force.
    pub intervals: Vec<Summary>,
    /// Each interval's decision, made at its end.
    pub decisions: Vec<Decision>,
}

/// Runs the tuner over a recorded `trace` (with timestamps) as it would have run live: the
/// trace is cut into intervals of `interval_ns` by when each period ended; each interval runs
/// under the setting in force (starting with `start`), then the policy decides over the last
/// `window` intervals ([`decide_recent`]), and its choice is in force for the next one.
pub fn simulate(policy: &Policy, trace: &Trace, start: ValidParams, interval_ns: u64, window: usize) -> Simulated {
    let mut timeline = Timeline::new(start);
    let mut current = start.into_inner();
    let mut recent = Window::new(window);
    let mut summary = Summary::default();
    let (mut totals, mut decisions) = (Vec::new(), Vec::new());
    for interval in intervals(trace, interval_ns.max(1)) {
        let mut total = Summary::default();
        for p in &interval.periods {
            let period = timeline.period(p);
            total.add(&period);
            summary.add(&period);
        }
        totals.push(total);
        recent.push(interval);
        let decision = decide_recent(policy, &mut recent, current);
        if decision.why.changes() {
            current = decision.next();
            if let Ok(valid) = current.validate() {
                timeline.set_params(valid);
            }
        }
        decisions.push(decision);
    }
    let poll_share = share(summary.poll_ns, tune::cpu_time(trace, None).ns);
    Simulated { summary, poll_share, intervals: totals, decisions }
}

/// `trace` cut into intervals of `interval_ns` by when each period ended (periods without a
/// timestamp fall in the first), each with the wall time it covers.
fn intervals(trace: &Trace, interval_ns: u64) -> Vec<Trace> {
    let end = |p: &IdlePeriod| p.start_ns.map(|s| s.saturating_add(p.idle_ns));
    let Some(first) = trace.periods.iter().filter_map(|p| p.start_ns).min() else {
        return vec![trace.clone()];
    };
    let cpus_online = trace.span.and_then(|s| s.cpus_online).or(Some(trace.cpus.len() as u32));
    let mut out: Vec<Trace> = Vec::new();
    let mut current: Vec<IdlePeriod> = Vec::new();
    let mut index = 0;
    for p in &trace.periods {
        let i = end(p).map_or(0, |e| e.saturating_sub(first) / interval_ns);
        // The trace is in order of ending, so the intervals come one after another.
        while i > index {
            out.push(interval_trace(std::mem::take(&mut current), interval_ns, cpus_online));
            index += 1;
        }
        current.push(*p);
    }
    out.push(interval_trace(current, interval_ns, cpus_online));
    out
}

fn interval_trace(periods: Vec<IdlePeriod>, wall_ns: u64, cpus_online: Option<u32>) -> Trace {
    let mut t = Trace::of_periods(Format::Perf, periods);
    t.span = Some(Span { wall_ns, cpus_online });
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn periods(cpu: u32, from_ns: u64, count: u64, every_ns: u64, idle_ns: u64) -> Vec<IdlePeriod> {
        (0..count).map(|i| IdlePeriod { cpu, idle_ns, start_ns: Some(from_ns + i * every_ns) }).collect()
    }

    fn trace(periods: Vec<IdlePeriod>, wall_ns: u64) -> Trace {
        let mut t = Trace::of_periods(Format::Perf, periods);
        t.span = Some(Span { wall_ns, cpus_online: Some(1) });
        t
    }

    /// A 250 Hz tick.
    const TICK_NS: u64 = 4_000_000;

    fn off() -> Params {
        Params { guest_halt_poll_ns: 0, ..Params::DEFAULT }
    }

    #[test]
    fn bad_shares_are_refused() {
        assert!(Policy::new(1.5, 0.01).unwrap_err().to_string().contains("from 0 to 100%"));
        assert!(Policy::new(0.02, -0.1).is_err());
        assert!(Policy::new(f64::NAN, 0.0).is_err());
    }

    #[test]
    fn an_empty_window_changes_nothing_but_a_setting_an_idle_guest_cannot_afford() {
        let d = decide(&Policy::new(0.1, 0.01).unwrap(), &trace(vec![], 1_000_000), Params::DEFAULT);
        assert_eq!((d.why, d.next()), (Why::NoData, Params::DEFAULT));
        let big = Params { guest_halt_poll_ns: 3_200_000, grow_start: 400_000, ..Params::DEFAULT };
        let d = decide(&Policy::new(0.1, 0.01).unwrap(), &trace(vec![], 1_000_000), big);
        assert_eq!((d.why, d.next()), (Why::IdleGuest, off()));
    }

    #[test]
    fn short_waits_turn_polling_on_and_long_ones_turn_it_off() {
        let policy = Policy::new(0.3, 0.01).unwrap();
        // 30 us waits every 100 us: polling them costs 30% of the time at most.
        let busy = trace(periods(0, 0, 10_000, 100_000, 30_000), 1_000_000_000);
        let d = decide(&policy, &busy, off());
        assert_eq!(d.why, Why::Gains);
        assert!(d.best.no_exit_share > 0.99 && d.best.poll_share <= 0.3, "{d:?}");
        // Then the guest idles on its tick: whatever polls, polls in vain.
        let idle = trace(periods(0, 0, 250, TICK_NS, TICK_NS), 1_000_000_000);
        let d = decide(&policy, &idle, d.next());
        assert_eq!(d.best.no_exit_share, 0.0);
        assert!(d.best.idle_poll_share <= 0.3);
    }

    #[test]
    fn a_gain_within_the_margin_keeps_the_setting() {
        let busy = trace(periods(0, 0, 10_000, 100_000, 30_000), 1_000_000_000);
        let best = decide(&Policy::new(0.3, 0.0).unwrap(), &busy, off()).best;
        // The defaults catch these as well, or almost: a margin of 5 points keeps them.
        let d = decide(&Policy::new(0.3, 0.05).unwrap(), &busy, Params::DEFAULT);
        assert!(matches!(d.why, Why::WithinMargin | Why::Best), "{d:?} (best {best:?})");
        assert_eq!(d.next(), Params::DEFAULT);
    }

    #[test]
    fn a_setting_over_the_budget_is_replaced_whatever_the_margin() {
        let busy = trace(periods(0, 0, 10_000, 100_000, 30_000), 1_000_000_000);
        // The defaults poll 30% here; a budget of 10% cannot keep them, even with a margin of
        // all the wakeups.
        let d = decide(&Policy::new(0.1, 1.0).unwrap(), &busy, Params::DEFAULT);
        assert_eq!(d.why, Why::OverBudget, "{d:?}");
        assert!(d.best.poll_share <= 0.1);
    }

    #[test]
    fn a_setting_an_idle_guest_cannot_afford_is_never_chosen() {
        // 1 ms waits: a 1.6 ms ceiling catches them all, and would go on polling on an idle
        // guest's tick; the budget there is the same.
        let busy = trace(periods(0, 0, 2_000, 1_500_000, 1_000_000), 3_000_000_000);
        let policy = Policy::new(0.7, 0.0).unwrap();
        let d = decide(&policy, &busy, off());
        assert!(d.best.idle_poll_share <= 0.7, "{d:?}");
        let big = Params { guest_halt_poll_ns: 1_600_000, grow_start: 400_000, ..Params::DEFAULT };
        let over = decide(&Policy::new(0.05, 1.0).unwrap(), &busy, big);
        assert!(over.current.idle_poll_share > 0.05, "{over:?}");
        assert_eq!(over.why, Why::OverBudget, "{over:?}");
    }

    #[test]
    fn a_phase_change_the_window_hides_is_judged_on_the_newest_interval() {
        // Two intervals of 20 us waits, then one of 1 ms waits: over the three, a 1.6 ms
        // ceiling polls within 40%; over the newest alone it polls most of the time.
        let big = Params { guest_halt_poll_ns: 1_600_000, grow_start: 400_000, ..Params::DEFAULT };
        let policy = Policy { ticks_hz: Vec::new(), ..Policy::new(0.4, 0.01).unwrap() };
        let mut w = Window::new(3);
        for i in 0..2 {
            w.push(trace(periods(0, i * 1_000_000_000, 10_000, 100_000, 20_000), 1_000_000_000));
        }
        w.push(trace(periods(0, 2_000_000_000, 600, 1_500_000, 1_000_000), 1_000_000_000));
        let over_all = decide(&policy, &w.trace(), big);
        assert!(over_all.current.poll_share <= 0.4, "{over_all:?}");
        let d = decide_recent(&policy, &mut w, big);
        assert_eq!(d.why, Why::OverBudget, "{d:?}");
        assert!(d.best.poll_share <= 0.4, "{d:?}");
        // The old phase is forgotten: the window is the newest interval alone.
        assert_eq!(w.trace().periods.len(), 600);
    }

    #[test]
    fn a_phase_change_that_wastes_the_polling_is_followed_without_flipping_back() {
        // Two intervals of 20 us waits, where a 100 us ceiling catches everything, then mostly
        // 1 ms waits: within any budget, but polling mostly in vain (the window never shrinks).
        let policy = Policy { ticks_hz: Vec::new(), ..Policy::new(1.0, 0.01).unwrap() };
        let short = Params { guest_halt_poll_ns: 100_000, grow_start: 100_000, allow_shrink: false, ..Params::DEFAULT };
        let mut w = Window::new(3);
        for i in 0..2 {
            w.push(trace(periods(0, i * 1_000_000_000, 10_000, 100_000, 20_000), 1_000_000_000));
        }
        // Every tenth wait of the new phase is short: the window grows to the ceiling and
        // stays there, polling the other nine for nothing.
        let long = |i: u64| {
            let mut p = periods(0, i * 1_000_000_000, 600, 1_500_000, 1_000_000);
            p.iter_mut().step_by(10).for_each(|p| p.idle_ns = 20_000);
            trace(p, 1_000_000_000)
        };
        w.push(long(2));
        assert!(decide(&policy, &w.trace(), short).current.judged.worth_it, "over the whole window it pays");
        let d = decide_recent(&policy, &mut w, short);
        assert_eq!(d.why, Why::NotWorthIt, "{d:?}");
        // The next interval of the new phase is judged on the new phase only: the short
        // phase's setting does not come back.
        w.push(long(3));
        let again = decide_recent(&policy, &mut w, d.next());
        assert!(!again.why.changes(), "{again:?}");
        assert_eq!(again.next(), d.next());
    }

    #[test]
    fn the_window_keeps_the_last_intervals() {
        let mut w = Window::new(2);
        for i in 0..3 {
            w.push(trace(periods(0, i * 1000, 1, 1, 10 + i), 1000));
        }
        let t = w.trace();
        assert_eq!(t.periods.iter().map(|p| p.idle_ns).collect::<Vec<_>>(), vec![11, 12]);
        assert_eq!(t.span, Some(Span { wall_ns: 2000, cpus_online: Some(1) }));
    }

    #[test]
    fn intervals_cut_by_the_end_of_each_period() {
        let t = trace(periods(0, 0, 10, 100, 10), 1000);
        let cut = intervals(&t, 300);
        // Ends at 10, 110, ..., 910: three in each of the first three intervals, one in the last.
        assert_eq!(cut.iter().map(|t| t.periods.len()).collect::<Vec<_>>(), vec![3, 3, 3, 1]);
        // A gap of intervals without periods gives empty ones, which change nothing.
        let gap = trace(vec![periods(0, 0, 1, 1, 10)[0], periods(0, 1000, 1, 1, 10)[0]], 1100);
        assert_eq!(intervals(&gap, 300).iter().map(|t| t.periods.len()).collect::<Vec<_>>(), vec![1, 0, 0, 1]);
    }

    #[test]
    fn the_simulation_follows_a_phase_change() {
        // Short waits for 1 s, then ticks for 1 s: polling comes on, then goes off again.
        let mut p = periods(0, 0, 10_000, 100_000, 30_000);
        p.extend(periods(0, 1_000_000_000, 250, TICK_NS, TICK_NS));
        let t = trace(p, 2_000_000_000);
        let policy = Policy::new(0.3, 0.01).unwrap();
        let off = off().validate().unwrap();
        let s = simulate(&policy, &t, off, 250_000_000, 1);
        assert!(s.decisions[0].why.changes(), "{:?}", s.decisions[0]);
        // The first interval runs with polling off: a quarter of the busy phase halts.
        assert!(s.summary.poll_hits > 7_000, "{:?}", s.summary);
        assert!(s.decisions.last().unwrap().next().guest_halt_poll_ns > 0 || s.summary.shrinks > 0);
        assert!(s.poll_share <= 0.3, "{}", s.poll_share);
    }
}
