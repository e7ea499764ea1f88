//! Tuning: the governor over a grid of parameter settings, the Pareto front of "wakeups that
//! needed no exit" against "CPU time spent polling", the best setting within a CPU budget
//! ([`recommend`], what `compare` reports), and the advice an operator can apply ([`advise`]):
//! the knee among the settings that fit the budget, are worth their polling and stay within it
//! on the guest gone idle ([`check_idle_guest`]), with a grid that extends past its edge.
//!
//! This lives in the command, not the core crate: it needs a heap (a list per setting) and
//! floating point, and a kernel never tunes itself; the core's [`Replay`](haltpoll::replay::Replay)
//! and [`Summary`] do the per-setting work.
//!
//! Both objectives are compared as whole numbers (poll hits, poll ns) over the same trace, so
//! dominance is exact. Settings with identical results are one point of the front, shown by
//! the simplest of them: polling off, Linux's defaults, or else the smallest ceiling,
//! shrinking on, the smallest `grow_start`.

use std::cmp::Reverse;

use serde::Serialize;

use haltpoll::predictive::PPM;
use haltpoll::replay::Summary;
use haltpoll::{ParamError, Params, PredictiveParams, ValidParams};

use crate::trace::{Format, Trace};
use haltpoll::share;

mod advice;
mod idle_guest;

pub use advice::{
    Advice, Axis, Edge, EdgeWhy, Judged, KNEE_POINTS, MAX_EXTENSIONS, PassedOver, Policy, Verdict, advise, is_worth_it,
};
pub use idle_guest::{IdleGuest, TICKS_HZ, check_idle_guest, idle_guest_poll_share};

/// The grid: every combination of ceiling, start and shrink on/off, with the other parameters
/// from `base`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grid {
    /// `guest_halt_poll_ns` values.
    pub ceilings_ns: Vec<u64>,
    /// `guest_halt_poll_grow_start` values.
    pub grow_starts_ns: Vec<u64>,
    /// `guest_halt_poll_allow_shrink` values.
    pub allow_shrink: Vec<bool>,
    /// `grow`, `shrink` and the shrink rule, shared by every setting.
    pub base: Params,
}

impl Grid {
    /// Default ceilings: 10 us to 3.2 ms, about doubling.
    pub const CEILINGS_NS: [u64; 9] =
        [10_000, 25_000, 50_000, 100_000, 200_000, 400_000, 800_000, 1_600_000, 3_200_000];
    /// Default starts: 5 us to 400 us.
    pub const GROW_STARTS_NS: [u64; 7] = [5_000, 10_000, 25_000, 50_000, 100_000, 200_000, 400_000];

    /// The settings to evaluate: the grid, plus polling off (a ceiling of 0, the baseline that
    /// fits any budget) and Linux's defaults (the reference), each once.
    pub fn settings(&self) -> Vec<Params> {
        let mut out = vec![self.polling_off(), self.linux_defaults()];
        for &guest_halt_poll_ns in &self.ceilings_ns {
            for &grow_start in &self.grow_starts_ns {
                for &allow_shrink in &self.allow_shrink {
                    let p = Params { guest_halt_poll_ns, grow_start, allow_shrink, ..self.base };
                    // A ceiling of 0 never polls, whatever the rest: one setting says it.
                    let p = if guest_halt_poll_ns == 0 { self.polling_off() } else { p };
                    if !out.contains(&p) {
                        out.push(p);
                    }
                }
            }
        }
        out
    }

    /// [`Grid::settings`], checked: what [`evaluate`] replays.
    pub fn valid_settings(&self) -> Result<Vec<ValidParams>, ParamError> {
        self.settings().into_iter().map(Params::validate).collect()
    }

    /// Guest polling off, as `guest_halt_poll_ns=0` with the other parameters at their defaults.
    pub fn polling_off(&self) -> Params {
        Params { guest_halt_poll_ns: 0, ..self.linux_defaults() }
    }

    /// Linux's defaults (with the grid's shrink rule, so that the comparison is fair).
    pub fn linux_defaults(&self) -> Params {
        Params { shrink_rule: self.base.shrink_rule, ..Params::DEFAULT }
    }
}

/// The share of `cpu` the trace's CPUs spent idle: 1 for a trace without timestamps, whose
/// CPU time is its idle time.
pub fn idle_share(trace: &Trace, cpu: CpuTime) -> f64 {
    share(trace.periods.iter().fold(0u64, |sum, p| sum.saturating_add(p.idle_ns)), cpu.ns)
}

/// The CPU time a trace covers: the base of "share of CPU time".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuTime {
    /// In ns.
    pub ns: u64,
    /// How it was reckoned.
    pub basis: Basis,
}

/// How [`CpuTime`] was reckoned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Basis {
    /// Wall time from the trace's first event to its last, times the CPUs.
    Wall {
        /// From first to last event, ns.
        wall_ns: u64,
        /// CPUs counted.
        cpus: u32,
        /// Where that number came from.
        cpus_from: CpusFrom,
    },
    /// The trace has no timestamps: its idle time, all of it, so that the poll share is of
    /// idle time, an upper bound on the share of wall time.
    IdleTime,
}

impl Basis {
    /// How it was reckoned, in the words of the JSON documents' `cpu_time_basis`.
    pub const fn name(self) -> &'static str {
        match self {
            Basis::Wall { .. } => "wall time x CPUs",
            Basis::IdleTime => "idle time",
        }
    }
}

/// Where the number of CPUs came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpusFrom {
    /// The user said.
    Option,
    /// `nrcpus online` in `perf script --header` output.
    Header,
    /// The CPUs with idle periods in the trace (a CPU busy all along has none).
    Seen,
}

/// The CPU time `trace` covers. A perf trace counts wall time x CPUs: polling on one CPU for
/// 5% of the wall time of a 4-CPU guest costs 1.25% of its CPU time. `cpus` overrides the
/// count the trace gives.
pub fn cpu_time(trace: &Trace, cpus: Option<u32>) -> CpuTime {
    match (trace.format, trace.span) {
        (Format::Perf, Some(span)) => {
            let (cpus, cpus_from) = match (cpus, span.cpus_online) {
                (Some(n), _) => (n, CpusFrom::Option),
                (None, Some(n)) => (n, CpusFrom::Header),
                (None, None) => (trace.cpus.len() as u32, CpusFrom::Seen),
            };
            let basis = Basis::Wall { wall_ns: span.wall_ns, cpus, cpus_from };
            CpuTime { ns: span.wall_ns.saturating_mul(cpus.into()), basis }
        }
        _ => {
            let idle = trace.periods.iter().fold(0u64, |sum, p| sum.saturating_add(p.idle_ns));
            CpuTime { ns: idle, basis: Basis::IdleTime }
        }
    }
}

/// One setting's result over the trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The setting.
    pub params: Params,
    /// What the governor did with it.
    pub summary: Summary,
}

impl Outcome {
    /// Share of wakeups that needed no exit.
    pub fn no_exit_share(&self) -> f64 {
        self.summary.no_exit_share()
    }

    /// CPU time spent polling, as a share of `cpu`.
    pub fn poll_share(&self, cpu: CpuTime) -> f64 {
        share(self.summary.poll_ns, cpu.ns)
    }

    /// CPU time spent polling in vain (the poll ended in a halt anyway), as a share of `cpu`.
    pub fn wasted_share(&self, cpu: CpuTime) -> f64 {
        share(self.summary.wasted_poll_ns, cpu.ns)
    }

    /// Whether `self` is at least as good as `other` on both counts and better on one.
    #[cfg(test)]
    pub fn dominates(&self, other: &Outcome) -> bool {
        let (a, b) = (&self.summary, &other.summary);
        a.poll_hits >= b.poll_hits && a.poll_ns <= b.poll_ns && (a.poll_hits > b.poll_hits || a.poll_ns < b.poll_ns)
    }

    /// Whether the two give the same result on both counts.
    pub fn ties(&self, other: &Outcome) -> bool {
        (self.summary.poll_hits, self.summary.poll_ns) == (other.summary.poll_hits, other.summary.poll_ns)
    }
}

/// One contender's result over a trace, with the shares of its CPU time: a setting of the grid,
/// the predictive governor, the clairvoyant bound (docs/json.md's "contender").
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Contender<P> {
    /// The parameters that made it, if any (the bound has none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub params: Option<P>,
    /// Wakeups that found the CPU polling.
    pub poll_hits: u64,
    /// Idle periods.
    pub periods: u64,
    /// Share of wakeups that needed no exit.
    pub no_exit_share: f64,
    /// Time spent polling, ns.
    pub poll_ns: u64,
    /// Time spent polling, as a share of the CPU time.
    pub poll_share: f64,
    /// Polling that ended in a halt anyway, ns.
    pub wasted_poll_ns: u64,
    /// That, as a share of the CPU time.
    pub wasted_share: f64,
    /// Wakeups by the predictive governor's timer.
    pub timer_wakes: u64,
}

impl<P> Contender<P> {
    /// `s` over a trace of `cpu`, with the parameters that made it, if any.
    pub fn new(params: Option<P>, s: &Summary, cpu: CpuTime) -> Self {
        Contender {
            params,
            poll_hits: s.poll_hits,
            periods: s.periods,
            no_exit_share: s.no_exit_share(),
            poll_ns: s.poll_ns,
            poll_share: share(s.poll_ns, cpu.ns),
            wasted_poll_ns: s.wasted_poll_ns,
            wasted_share: share(s.wasted_poll_ns, cpu.ns),
            timer_wakes: s.timer_wakes,
        }
    }
}

/// Replays `trace` under each setting; `done` is called after each (for a progress bar).
pub fn evaluate(trace: &Trace, settings: &[ValidParams], mut done: impl FnMut()) -> Vec<Outcome> {
    settings
        .iter()
        .map(|&params| {
            let summary = trace.replay(params, |_, _| {}).summary;
            done();
            Outcome { params: params.into_inner(), summary }
        })
        .collect()
}

/// How simple a setting is to explain, for choosing among ties (smaller is simpler): polling
/// off, then Linux's defaults, then the smallest ceiling, shrinking on, the smallest start.
fn simplicity(p: &Params) -> (bool, bool, u64, bool, u64) {
    let defaults = Params { shrink_rule: p.shrink_rule, ..Params::DEFAULT };
    (p.guest_halt_poll_ns != 0, *p != defaults, p.guest_halt_poll_ns, !p.allow_shrink, p.grow_start)
}

/// The Pareto front: indices into `outcomes` of the settings no other setting dominates, one
/// per distinct result, by increasing poll time (and so increasing poll hits).
pub fn front(outcomes: &[Outcome]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..outcomes.len()).collect();
    order.sort_by_key(|&i| {
        let o = &outcomes[i];
        (o.summary.poll_ns, Reverse(o.summary.poll_hits), simplicity(&o.params))
    });
    let mut front = Vec::new();
    let mut best_hits = None;
    for i in order {
        // Sorted by poll time, a setting is on the front exactly when it catches more wakeups
        // than every setting that polls no more than it does.
        if best_hits.is_none_or(|best| outcomes[i].summary.poll_hits > best) {
            best_hits = Some(outcomes[i].summary.poll_hits);
            front.push(i);
        }
    }
    front
}

/// The best setting whose poll share fits `budget`: the front's point with the most wakeups
/// without exit among those within the budget. `None` if none fits (only possible when the
/// settings leave out polling off).
pub fn recommend(outcomes: &[Outcome], front: &[usize], cpu: CpuTime, budget: f64) -> Option<usize> {
    front.iter().copied().rfind(|&i| outcomes[i].poll_share(cpu) <= budget)
}

/// The clairvoyant bound for a budget of `budget_ns` of polling: it knows every period's length
/// in advance and polls exactly the shortest ones, each until its wakeup, as many as fit. No
/// governor that polls from idle entry can catch more wakeups with as little polling.
pub fn clairvoyant(trace: &Trace, budget_ns: u64) -> Summary {
    let mut lengths: Vec<u64> = trace.periods.iter().map(|p| p.idle_ns).collect();
    lengths.sort_unstable();
    let mut s = Summary::default();
    for d in lengths {
        s.periods += 1;
        s.idle_ns = s.idle_ns.saturating_add(d);
        match s.poll_ns.checked_add(d).filter(|&polled| polled <= budget_ns) {
            Some(polled) => {
                s.poll_ns = polled;
                s.poll_hits += 1;
            }
            None => {
                s.halts += 1;
                s.halt_ns = s.halt_ns.saturating_add(d);
            }
        }
    }
    s
}

/// The time the governors of a trace see go by, summed over its CPUs, ns: from each CPU's first
/// idle entry to its last wakeup (perf traces), or its idle time (traces without timestamps).
/// What the predictive governor's budget is a share of.
pub fn governed_ns(trace: &Trace) -> u64 {
    /// One CPU's periods: the first start and the last end (if timestamped), and the idle sum.
    #[derive(Clone, Copy, Default)]
    struct Extent {
        first: Option<u64>,
        last: Option<u64>,
        idle: u64,
    }
    let slots = trace.cpus.last().map_or(0, |&c| c as usize + 1);
    let mut cpus = vec![Extent::default(); slots];
    for p in &trace.periods {
        let e = &mut cpus[p.cpu as usize];
        e.idle = e.idle.saturating_add(p.idle_ns);
        if let Some(start) = p.start_ns {
            e.first = Some(e.first.map_or(start, |f| f.min(start)));
            e.last = Some(e.last.unwrap_or(0).max(start.saturating_add(p.idle_ns)));
        }
    }
    cpus.iter().fold(0u64, |sum, e| {
        sum.saturating_add(match (e.first, e.last) {
            (Some(first), Some(last)) => last.saturating_sub(first).max(e.idle),
            _ => e.idle,
        })
    })
}

/// The predictive governor's parameters for a budget of `budget` (a share of `cpu`): its
/// per-CPU budget is set so that the CPUs with idle periods together may poll `budget x cpu`,
/// the same polling time Linux's best setting is allowed. A perf trace's CPU time counts every
/// CPU online, busy ones too, while each governor's budget is a share of its own CPU's time.
pub fn predictive_at(base: PredictiveParams, trace: &Trace, cpu: CpuTime, budget: f64) -> PredictiveParams {
    let governed = governed_ns(trace);
    let per_cpu = if governed == 0 { budget } else { budget * cpu.ns as f64 / governed as f64 };
    let ppm = (per_cpu * f64::from(PPM)).floor().clamp(0.0, f64::from(PPM)) as u32;
    PredictiveParams { poll_budget_ppm: ppm, ..base }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{IdlePeriod, Span};
    use proptest::prelude::*;

    fn grid(ceilings: &[u64], starts: &[u64]) -> Grid {
        Grid {
            ceilings_ns: ceilings.to_vec(),
            grow_starts_ns: starts.to_vec(),
            allow_shrink: vec![true, false],
            base: Params::DEFAULT,
        }
    }

    #[test]
    fn settings_include_the_baseline_and_the_defaults_once() {
        let s = grid(&[0, 200_000], &[50_000, 100_000]).settings();
        assert_eq!(s[0].guest_halt_poll_ns, 0);
        assert_eq!(s[1], Params::DEFAULT);
        // 0 collapses to the baseline; 200 us x {50, 100} us x {on, off}, the default among them.
        assert_eq!(s.len(), 1 + 4);
        assert_eq!(s.iter().filter(|p| **p == Params::DEFAULT).count(), 1);
    }

    #[test]
    fn cpu_time_of_each_kind_of_trace() {
        let mut t = Trace::single_cpu(Format::Text, [10, 20]);
        assert_eq!(cpu_time(&t, None), CpuTime { ns: 30, basis: Basis::IdleTime });
        t.format = Format::Perf;
        t.span = Some(Span { wall_ns: 1_000, cpus_online: Some(4) });
        assert_eq!(cpu_time(&t, None).ns, 4_000);
        assert_eq!(cpu_time(&t, Some(2)).ns, 2_000);
        t.span = Some(Span { wall_ns: 1_000, cpus_online: None });
        assert_eq!(
            cpu_time(&t, None),
            CpuTime { ns: 1_000, basis: Basis::Wall { wall_ns: 1_000, cpus: 1, cpus_from: CpusFrom::Seen } }
        );
    }

    #[test]
    fn a_steady_trace_has_a_short_front() {
        // 30 us periods: any window of at least 30 us catches all but the first; larger
        // ceilings poll no longer (a hit polls only until the wakeup), so they tie.
        let trace = Trace::single_cpu(Format::Text, vec![30_000; 100]);
        let g = grid(&[25_000, 50_000, 100_000], &[25_000, 50_000]);
        let outcomes = evaluate(&trace, &g.valid_settings().unwrap(), || {});
        let f = front(&outcomes);
        let points: Vec<_> = f.iter().map(|&i| (outcomes[i].summary.poll_hits, outcomes[i].summary.poll_ns)).collect();
        // polling off: 0 hits; a 25 us ceiling polls 25 us in vain each time; 50 us catches 99.
        assert_eq!(points, vec![(0, 0), (99, 99 * 30_000)]);
        assert_eq!(outcomes[f[1]].params, Params::DEFAULT, "the defaults stand for the settings they tie with");
        let cpu = cpu_time(&trace, None);
        assert_eq!(recommend(&outcomes, &f, cpu, 0.5), Some(f[0]));
        assert_eq!(recommend(&outcomes, &f, cpu, 1.0), Some(f[1]));
    }

    fn arb_trace() -> impl Strategy<Value = Trace> {
        let period = prop_oneof![1u64..60_000, 60_000u64..400_000, 400_000u64..5_000_000];
        proptest::collection::vec((0u32..3, period), 1..120).prop_map(|ps| {
            let periods: Vec<IdlePeriod> =
                ps.into_iter().map(|(cpu, idle_ns)| IdlePeriod { cpu, idle_ns, start_ns: None }).collect();
            let mut cpus: Vec<u32> = periods.iter().map(|p| p.cpu).collect();
            cpus.sort_unstable();
            cpus.dedup();
            let wall_ns = periods.iter().map(|p| p.idle_ns).sum::<u64>() * 2;
            Trace {
                format: Format::Perf,
                periods,
                cpus,
                span: Some(Span { wall_ns, cpus_online: Some(3) }),
                notes: vec![],
            }
        })
    }

    fn arb_grid() -> impl Strategy<Value = Grid> {
        let ns = || proptest::collection::vec(prop_oneof![Just(0u64), 1u64..1_000_000], 1..5);
        let starts = proptest::collection::vec(1u64..500_000, 1..4);
        (ns(), starts, any::<bool>(), 0u32..5, 0u32..5).prop_map(|(ceilings_ns, grow_starts_ns, both, grow, shrink)| {
            Grid {
                ceilings_ns,
                grow_starts_ns,
                allow_shrink: if both { vec![true, false] } else { vec![true] },
                base: Params { grow, shrink, ..Params::DEFAULT },
            }
        })
    }

    #[test]
    fn clairvoyant_polls_the_shortest_periods_that_fit() {
        let trace = Trace::single_cpu(Format::Text, [50, 10, 40, 20, 30]);
        let s = clairvoyant(&trace, 65);
        assert_eq!((s.poll_hits, s.poll_ns, s.halts, s.wasted_poll_ns), (3, 60, 2, 0));
        assert_eq!(clairvoyant(&trace, 0).poll_hits, 0);
        assert_eq!(clairvoyant(&trace, u64::MAX).poll_hits, 5);
    }

    #[test]
    fn the_predictive_budget_is_spread_over_the_cpus_that_idle() {
        // Two CPUs online for 1000 ns; only CPU 0 idles, from 100 to 600: its governor sees 500
        // ns go by, so 5% of 2000 ns is 20% of its time.
        let mut t = Trace::of_periods(
            Format::Perf,
            vec![
                IdlePeriod { cpu: 0, idle_ns: 100, start_ns: Some(100) },
                IdlePeriod { cpu: 0, idle_ns: 100, start_ns: Some(500) },
            ],
        );
        t.span = Some(Span { wall_ns: 1_000, cpus_online: Some(2) });
        assert_eq!(governed_ns(&t), 500);
        let p = predictive_at(PredictiveParams::DEFAULT, &t, cpu_time(&t, None), 0.05);
        assert_eq!(p.poll_budget_ppm, 200_000);
        // Without timestamps: the idle time, as the budget's base.
        let t = Trace::single_cpu(Format::Text, [10, 20]);
        assert_eq!(governed_ns(&t), 30);
        assert_eq!(predictive_at(PredictiveParams::DEFAULT, &t, cpu_time(&t, None), 0.05).poll_budget_ppm, 50_000);
    }

    proptest! {
        #[test]
        fn the_clairvoyant_bound_is_never_beaten_within_its_budget(trace in arb_trace(), grid in arb_grid(), budget in 0.0f64..0.6) {
            let cpu = cpu_time(&trace, None);
            let bound = clairvoyant(&trace, (budget * cpu.ns as f64) as u64);
            prop_assert!(bound.poll_share_of_idle() <= 1.0);
            for o in evaluate(&trace, &grid.valid_settings().unwrap(), || {}).iter().filter(|o| o.poll_share(cpu) <= budget) {
                prop_assert!(o.summary.poll_hits <= bound.poll_hits, "{o:?} beats {bound:?}");
            }
        }

        #[test]
        fn the_front_is_non_dominated_complete_and_sorted(trace in arb_trace(), grid in arb_grid()) {
            let outcomes = evaluate(&trace, &grid.valid_settings().unwrap(), || {});
            let f = front(&outcomes);
            for &i in &f {
                prop_assert!(!outcomes.iter().any(|o| o.dominates(&outcomes[i])), "{:?} is dominated", outcomes[i]);
            }
            for o in &outcomes {
                prop_assert!(
                    f.iter().any(|&i| outcomes[i].dominates(o) || outcomes[i].ties(o)),
                    "{o:?} is neither on the front nor beaten by it"
                );
            }
            for w in f.windows(2) {
                let (a, b) = (&outcomes[w[0]].summary, &outcomes[w[1]].summary);
                prop_assert!(a.poll_ns < b.poll_ns && a.poll_hits < b.poll_hits);
            }
        }

        #[test]
        fn the_recommendation_respects_the_budget_and_is_the_best_within_it(
            trace in arb_trace(), grid in arb_grid(), budget in 0.0f64..0.6,
        ) {
            let outcomes = evaluate(&trace, &grid.valid_settings().unwrap(), || {});
            let f = front(&outcomes);
            let cpu = cpu_time(&trace, None);
            let r = recommend(&outcomes, &f, cpu, budget).expect("polling off always fits");
            prop_assert!(outcomes[r].poll_share(cpu) <= budget);
            prop_assert!(f.contains(&r));
            for o in outcomes.iter().filter(|o| o.poll_share(cpu) <= budget) {
                prop_assert!(o.summary.poll_hits <= outcomes[r].summary.poll_hits, "{o:?} fits and catches more");
            }
        }
    }
}
