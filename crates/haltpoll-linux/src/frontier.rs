//! Linux's frontier against the predictive governor's budget sweep, per trace: every setting of
//! [`compare`]'s grid and the predictive governor at each budget (timer-first on and off),
//! placed in two planes, and where each predictive point falls short of the frontier.
//!
//! - A [`Plane`]'s x is the polling a contender did, net of a halt cost per catch: with a cost
//!   of 0 all polling, with `H` the polling that did not pay for the halts it saved
//!   (`poll_ns - H x catches`, negative when the catches saved more than the polling cost). Its
//!   y is the share of wakeups caught.
//! - Linux's frontier in a plane: for each x, the most wakeups caught by a setting whose x is
//!   within it (a staircase, [`linux_frontier`]).
//! - A predictive point at budget `b` is measured against the frontier at
//!   `max(b, its own x)`: a point that spends more than its budget is held to what Linux buys
//!   with as much, and one that spends less to what the budget would buy, since leaving budget
//!   unspent where it buys catches is a shortfall too ([`Verdict`]).
//!
//! The predictive governor runs in each plane with the plane's halt cost
//! ([`predictive_params`]); [`sweep_all`] runs the traces in parallel.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::num::NonZero;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use haltpoll::PredictiveParams;
use haltpoll::replay::Summary;

use crate::compare::{self, CompareError};
use crate::trace::Trace;
use crate::tune::{self, CpuTime, Outcome};

/// The budgets swept unless the caller gives others: 0.5% to 100% of the CPU time.
pub const BUDGETS: [f64; 8] = [0.005, 0.01, 0.02, 0.05, 0.10, 0.20, 0.50, 1.0];

/// The halt cost of the second plane unless the caller gives another: 50 us, about what an
/// exit, the waker's IPI and the wake cost together on a KVM guest without posted interrupts.
pub const HALT_COST_NS: u64 = 50_000;

/// A point is below the frontier when it catches more than this many per mille of the wakeups
/// fewer than the best Linux setting within its x (half a point).
pub const TOLERANCE_PER_MILLE: u64 = 5;

/// Where the bound catches at least this many per mille of the wakeups more than Linux's best
/// (10 points), the predictive governor should catch [`BIG_WIN_RATIO`] times as many as Linux
/// and close half the distance to the bound ([`BigWins`]).
pub const ROOM_PER_MILLE: u64 = 100;

/// A big win: at least 1.5 times Linux's catches.
pub const BIG_WIN_RATIO: f64 = 1.5;

/// Saturation: where Linux catches at least this many per mille of the wakeups (99.9%), the
/// predictive governor must too.
pub const SATURATED_PER_MILLE: u64 = 999;

/// What x counts: the polling, less `halt_cost_ns` for each wakeup a poll caught.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Plane {
    /// What one halt costs, ns: each catch saves one. 0 counts all polling.
    pub halt_cost_ns: u64,
}

impl Plane {
    /// The plane of all polling.
    pub const POLLING: Plane = Plane { halt_cost_ns: 0 };

    /// `s`'s x, ns: its polling less the halt cost of each catch.
    pub fn x_ns(self, s: &Summary) -> i128 {
        i128::from(s.poll_ns) - i128::from(self.halt_cost_ns) * i128::from(s.poll_hits)
    }

    /// `s`'s x as a share of `cpu` (negative when its catches saved more than it polled).
    pub fn x(self, s: &Summary, cpu: CpuTime) -> f64 {
        if cpu.ns == 0 { 0.0 } else { self.x_ns(s) as f64 / cpu.ns as f64 }
    }
}

/// What the sweep runs.
#[derive(Clone, Debug, PartialEq)]
pub struct Sweep {
    /// The budgets, shares of the trace's CPU time, in the order the points are given.
    pub budgets: Vec<f64>,
    /// The second plane's halt cost, ns; 0 leaves only the plane of all polling.
    pub halt_cost_ns: u64,
    /// Overrides the CPUs a perf trace covers (as `compare`).
    pub cpus: Option<u32>,
    /// The predictive governor's parameters but the budget and timer-first, which the sweep sets.
    pub predictive: PredictiveParams,
}

impl Sweep {
    /// The planes swept: all polling, then the net one if its halt cost is not 0.
    pub fn planes(&self) -> Vec<Plane> {
        let net = Plane { halt_cost_ns: self.halt_cost_ns };
        if net == Plane::POLLING { vec![Plane::POLLING] } else { vec![Plane::POLLING, net] }
    }
}

/// Where a predictive point falls against Linux's frontier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Within half a point of the best Linux setting within its x, or above it.
    OnOrAbove,
    /// More than half a point below it.
    Below,
    /// Within half a point, but Linux reaches 99.9% there and the predictive governor does not.
    Unsaturated,
}

impl Verdict {
    /// Whether the point falls short (`Below` or `Unsaturated`).
    pub fn is_shortfall(self) -> bool {
        self != Verdict::OnOrAbove
    }
}

/// One predictive point: a budget, timer-first on or off, in one plane.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    /// The budget, a share of the CPU time.
    pub budget: f64,
    /// Whether timer-first was on.
    pub timer_first: bool,
    /// The parameters it ran with (the budget spread over the CPUs that idle).
    pub params: PredictiveParams,
    /// What it did.
    pub summary: Summary,
    /// The best Linux setting whose x is within `max(budget, the point's x)`; `None` only if
    /// no setting's x is (a grid without polling off).
    pub linux: Option<Outcome>,
    /// The clairvoyant bound at the budget, in this plane.
    pub clairvoyant: Summary,
    /// How it compares with `linux`.
    pub verdict: Verdict,
}

impl Point {
    /// Linux's share of wakeups caught less the point's, in shares (0.16 is 16 points): positive
    /// when the point is below Linux's best within its x; 0 without such a setting.
    pub fn shortfall(&self) -> f64 {
        self.linux.map_or(0.0, |l| l.summary.no_exit_share() - self.summary.no_exit_share())
    }

    /// The point's catches over Linux's best's, `None` if Linux's best caught none (or there is
    /// none).
    pub fn ratio_to_linux(&self) -> Option<f64> {
        compare::ratio_to_linux(&self.linux?.summary, &self.summary)
    }

    /// The share of the distance from Linux's best to the bound the point covers, `None` when
    /// the bound catches no more than Linux's best.
    pub fn gap_closed(&self) -> Option<f64> {
        compare::gap_closed(&self.linux?.summary, &self.summary, &self.clairvoyant)
    }

    /// Whether the bound catches at least 10 points more than Linux's best: where the point
    /// should be a big win.
    pub fn has_room(&self) -> bool {
        self.linux.is_some_and(|l| {
            let more = self.clairvoyant.poll_hits.saturating_sub(l.summary.poll_hits);
            u128::from(more) * 1000 >= u128::from(ROOM_PER_MILLE) * u128::from(self.summary.periods.max(1))
        })
    }

    /// Whether it catches at least [`BIG_WIN_RATIO`] times Linux's best (any catch counts when
    /// Linux's best catches none).
    pub fn is_big_win(&self) -> bool {
        self.ratio_to_linux().map_or(self.summary.poll_hits > 0, |r| r >= BIG_WIN_RATIO)
    }
}

/// The big wins of a plane: over the points where the bound leaves room above Linux's best
/// ([`Point::has_room`]), how many catch 1.5 times Linux's best, and the median share of the
/// distance to the bound closed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BigWins {
    /// Points with room.
    pub points: usize,
    /// Of those, the big wins.
    pub at_ratio: usize,
    /// The median of their [`Point::gap_closed`] (the lower middle of an even count), `None`
    /// without points.
    pub median_gap_closed: Option<f64>,
}

/// One plane of a trace's sweep.
#[derive(Clone, Debug, PartialEq)]
pub struct PlaneSweep {
    /// The plane.
    pub plane: Plane,
    /// Linux's frontier in it, by increasing x and caught wakeups ([`linux_frontier`]).
    pub frontier: Vec<Outcome>,
    /// The predictive points: per budget, timer-first on then off.
    pub points: Vec<Point>,
}

impl PlaneSweep {
    /// The points on or above the frontier.
    pub fn on_or_above(&self) -> usize {
        self.points.iter().filter(|p| !p.verdict.is_shortfall()).count()
    }

    /// The big wins among the points with room.
    pub fn big_wins(&self) -> BigWins {
        let room: Vec<&Point> = self.points.iter().filter(|p| p.has_room()).collect();
        let mut closed: Vec<f64> = room.iter().filter_map(|p| p.gap_closed()).collect();
        closed.sort_by(f64::total_cmp);
        BigWins {
            points: room.len(),
            at_ratio: room.iter().filter(|p| p.is_big_win()).count(),
            median_gap_closed: closed.get(closed.len().saturating_sub(1) / 2).copied(),
        }
    }
}

/// One trace's sweep.
#[derive(Clone, Debug, PartialEq)]
pub struct TraceFrontier {
    /// The trace's path, as given.
    pub path: PathBuf,
    /// The trace.
    pub trace: Trace,
    /// The CPU time every share is of.
    pub cpu: CpuTime,
    /// How many Linux settings were replayed.
    pub settings: usize,
    /// Per plane of [`Sweep::planes`].
    pub planes: Vec<PlaneSweep>,
}

/// The predictive governor's parameters for one point of the sweep: `base` with the budget
/// spread over the CPUs that idle (as [`tune::predictive_at`]) and timer-first as given. Every
/// predictive replay of the sweep takes its parameters from here.
///
/// `halt_cost_ns` is the plane's: in the plane net of halts the governor budgets polling net of
/// that cost per catch, as the plane counts it.
pub fn predictive_params(
    base: PredictiveParams,
    trace: &Trace,
    cpu: CpuTime,
    budget: f64,
    timer_first: bool,
    halt_cost_ns: u64,
) -> PredictiveParams {
    PredictiveParams { timer_first, halt_cost_ns, ..tune::predictive_at(base, trace, cpu, budget) }
}

/// Linux's frontier in `plane`: the outcomes no other catches more wakeups than at an x as
/// small, one per step, by increasing x (and so increasing catches). Of settings with the same
/// result the first in `outcomes` stands for them.
pub fn linux_frontier(outcomes: &[Outcome], plane: Plane) -> Vec<Outcome> {
    let mut order: Vec<&Outcome> = outcomes.iter().collect();
    // Stable: ties keep the grid's order (polling off, Linux's defaults, then by ceiling).
    order.sort_by_key(|o| (plane.x_ns(&o.summary), Reverse(o.summary.poll_hits)));
    let mut frontier: Vec<Outcome> = Vec::new();
    for o in order {
        if frontier.last().is_none_or(|best| o.summary.poll_hits > best.summary.poll_hits) {
            frontier.push(*o);
        }
    }
    frontier
}

/// The frontier's value at `x_ns`: the step catching the most wakeups among those whose x is
/// within it, `None` if none is.
pub fn best_within(frontier: &[Outcome], plane: Plane, x_ns: i128) -> Option<&Outcome> {
    frontier.iter().rfind(|o| plane.x_ns(&o.summary) <= x_ns)
}

/// The clairvoyant bound in `plane` for a budget of `budget_ns`: it knows every period's length
/// and polls exactly the `k` shortest, each until its wakeup, with `k` the most whose polling
/// less `k` halt costs fits the budget. For any `k` the `k` shortest periods cost least, so no
/// governor polling from idle entry catches more within the budget. With a halt cost of 0 it
/// is [`tune::clairvoyant`].
pub fn clairvoyant(trace: &Trace, plane: Plane, budget_ns: u64) -> Summary {
    let mut lengths: Vec<u64> = trace.periods.iter().map(|p| p.idle_ns).collect();
    lengths.sort_unstable();
    let (mut polled, mut caught, mut polled_at_best) = (0i128, 0usize, 0i128);
    for (k, &d) in lengths.iter().enumerate() {
        polled += i128::from(d);
        // The net cost is convex in k (the periods grow), so the fitting k form a run from 0:
        // the last that fits is the most.
        if polled - i128::from(plane.halt_cost_ns) * (k as i128 + 1) <= i128::from(budget_ns) {
            (caught, polled_at_best) = (k + 1, polled);
        }
    }
    let total: u64 = lengths.iter().fold(0u64, |sum, &d| sum.saturating_add(d));
    let poll_ns = u64::try_from(polled_at_best).unwrap_or(u64::MAX);
    Summary {
        periods: lengths.len() as u64,
        poll_hits: caught as u64,
        halts: (lengths.len() - caught) as u64,
        idle_ns: total,
        poll_ns,
        halt_ns: total.saturating_sub(poll_ns),
        ..Summary::default()
    }
}

/// Where `point` falls against `linux`, the best Linux setting within its x.
pub fn verdict(point: &Summary, linux: Option<&Summary>) -> Verdict {
    let Some(linux) = linux else { return Verdict::OnOrAbove };
    let per_mille = |hits: u64| u128::from(hits) * 1000;
    let periods = u128::from(point.periods.max(linux.periods));
    let missing = per_mille(linux.poll_hits.saturating_sub(point.poll_hits));
    let saturated = |s: &Summary| per_mille(s.poll_hits) >= u128::from(SATURATED_PER_MILLE) * periods;
    if missing > u128::from(TOLERANCE_PER_MILLE) * periods {
        Verdict::Below
    } else if saturated(linux) && !saturated(point) {
        Verdict::Unsaturated
    } else {
        Verdict::OnOrAbove
    }
}

/// A budget as ns of `cpu`.
pub fn budget_ns(budget: f64, cpu: CpuTime) -> u64 {
    (budget * cpu.ns as f64) as u64
}

/// Sweeps `trace` (read from `path`): Linux's grid once, the predictive governor per budget and
/// timer-first, each plane of `sweep`. A replay two planes share (same parameters) runs once.
pub fn sweep(path: PathBuf, trace: Trace, sweep: &Sweep) -> Result<TraceFrontier, CompareError> {
    let cpu = compare::cpu_time(&path, &trace, sweep.cpus)?;
    let linux = tune::evaluate(&trace, &compare::linux_grid().valid_settings()?, || {});
    let mut replays: HashMap<PredictiveParams, Summary> = HashMap::new();
    let mut planes = Vec::new();
    for plane in sweep.planes() {
        let frontier = linux_frontier(&linux, plane);
        let mut points = Vec::new();
        for &budget in &sweep.budgets {
            let bound = clairvoyant(&trace, plane, budget_ns(budget, cpu));
            for timer_first in [true, false] {
                let params = predictive_params(sweep.predictive, &trace, cpu, budget, timer_first, plane.halt_cost_ns);
                let summary = match replays.get(&params) {
                    Some(s) => *s,
                    None => {
                        let s = trace.replay(params.validate()?, |_, _| {}).summary;
                        *replays.entry(params).or_insert(s)
                    }
                };
                let limit = plane.x_ns(&summary).max(i128::from(budget_ns(budget, cpu)));
                let best = best_within(&frontier, plane, limit).copied();
                let verdict = verdict(&summary, best.as_ref().map(|o| &o.summary));
                points.push(Point { budget, timer_first, params, summary, linux: best, clairvoyant: bound, verdict });
            }
        }
        planes.push(PlaneSweep { plane, frontier, points });
    }
    Ok(TraceFrontier { path, trace, cpu, settings: linux.len(), planes })
}

/// [`sweep`] over every trace, in parallel (one thread per CPU at most), the results in the
/// traces' order; the first trace's error, in that order, if any fails.
pub fn sweep_all(traces: Vec<(PathBuf, Trace)>, how: &Sweep) -> Result<Vec<TraceFrontier>, CompareError> {
    let workers = std::thread::available_parallelism().map_or(1, NonZero::get).min(traces.len());
    let queue = Mutex::new(traces.into_iter().enumerate());
    // A poisoned queue is still a valid iterator: the panic it records resurfaces at the join.
    let next = || queue.lock().unwrap_or_else(PoisonError::into_inner).next();
    let mut done: Vec<(usize, Result<TraceFrontier, CompareError>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut out = Vec::new();
                    while let Some((i, (path, trace))) = next() {
                        out.push((i, sweep(path, trace, how)));
                    }
                    out
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))).collect()
    });
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::Format;
    use haltpoll::Params;
    use proptest::prelude::*;

    /// A Linux outcome that polled `poll_ns` and caught `hits` of 1000 periods.
    fn outcome(ceiling: u64, poll_ns: u64, hits: u64) -> Outcome {
        let summary = Summary { periods: 1000, poll_hits: hits, halts: 1000 - hits, poll_ns, ..Summary::default() };
        Outcome { params: Params { guest_halt_poll_ns: ceiling, ..Params::DEFAULT }, summary }
    }

    fn caught(hits: u64) -> Summary {
        Summary { periods: 1000, poll_hits: hits, ..Summary::default() }
    }

    #[test]
    fn the_frontier_is_a_staircase_of_the_best_within_each_x() {
        let outcomes = [
            outcome(0, 0, 0),
            outcome(1, 100, 10),
            outcome(2, 50, 20),  // better than 1 for less: 1 is off the frontier
            outcome(3, 300, 20), // no more than 2 for more
            outcome(4, 400, 90),
        ];
        let f = linux_frontier(&outcomes, Plane::POLLING);
        let steps: Vec<_> = f.iter().map(|o| o.params.guest_halt_poll_ns).collect();
        assert_eq!(steps, vec![0, 2, 4]);
        let at = |x| best_within(&f, Plane::POLLING, x).map(|o| o.params.guest_halt_poll_ns);
        assert_eq!(
            (at(-1), at(0), at(49), at(50), at(399), at(400), at(10_000)),
            (None, Some(0), Some(0), Some(2), Some(2), Some(4), Some(4))
        );
        // Net of 5 ns per catch, setting 4 (400 - 450) is below 0 and setting 2 (50 - 100) too:
        // in that plane 4 alone catches the most for the least.
        let net = Plane { halt_cost_ns: 5 };
        let steps: Vec<_> = linux_frontier(&outcomes, net).iter().map(|o| o.params.guest_halt_poll_ns).collect();
        assert_eq!(steps, vec![4]);
        assert_eq!(best_within(&linux_frontier(&outcomes, net), net, 0).unwrap().params.guest_halt_poll_ns, 4);
    }

    #[test]
    fn half_a_point_below_is_on_the_frontier_and_more_is_not() {
        assert_eq!(verdict(&caught(495), Some(&caught(500))), Verdict::OnOrAbove);
        assert_eq!(verdict(&caught(494), Some(&caught(500))), Verdict::Below);
        assert_eq!(verdict(&caught(900), Some(&caught(500))), Verdict::OnOrAbove);
        assert_eq!(verdict(&caught(0), None), Verdict::OnOrAbove);
        // Within half a point, but Linux saturates and the point does not.
        assert_eq!(verdict(&caught(998), Some(&caught(999))), Verdict::Unsaturated);
        assert_eq!(verdict(&caught(999), Some(&caught(1000))), Verdict::OnOrAbove);
        assert_eq!(verdict(&caught(990), Some(&caught(1000))), Verdict::Below, "a miss of a point is below first");
        assert!(Verdict::Unsaturated.is_shortfall() && !Verdict::OnOrAbove.is_shortfall());
    }

    #[test]
    fn the_net_bound_is_the_polling_bound_without_a_halt_cost_and_catches_more_with_one() {
        let trace = Trace::single_cpu(Format::Text, [50, 10, 40, 20, 30]);
        for budget in [0, 9, 10, 30, 65, 150, 1_000] {
            assert_eq!(clairvoyant(&trace, Plane::POLLING, budget), tune::clairvoyant(&trace, budget), "{budget}");
        }
        // Net of 25 per catch: 10, 20 and 30 cost -15 together, with 40 they cost 0, with 50, 25.
        let net = Plane { halt_cost_ns: 25 };
        let hits = |budget| clairvoyant(&trace, net, budget).poll_hits;
        assert_eq!((hits(0), hits(24), hits(25)), (4, 4, 5));
        let s = clairvoyant(&trace, net, 0);
        assert_eq!((s.poll_ns, s.halts, s.halt_ns, s.idle_ns), (100, 1, 50, 150));
    }

    fn point(linux: u64, mine: u64, bound: u64) -> Point {
        Point {
            budget: 0.02,
            timer_first: true,
            params: PredictiveParams::DEFAULT,
            summary: caught(mine),
            linux: Some(outcome(1, 0, linux)),
            clairvoyant: caught(bound),
            verdict: verdict(&caught(mine), Some(&caught(linux))),
        }
    }

    #[test]
    fn big_wins_count_where_the_bound_leaves_ten_points() {
        let (a, b, c, d) = (point(0, 50, 200), point(100, 149, 200), point(100, 150, 300), point(500, 500, 599));
        assert!(a.has_room() && a.is_big_win() && a.ratio_to_linux().is_none(), "any catch beats none");
        assert_eq!((b.ratio_to_linux(), b.gap_closed()), (Some(1.49), Some(0.49)));
        assert!(b.has_room() && !b.is_big_win());
        assert!(c.is_big_win() && c.gap_closed() == Some(0.25));
        assert!(!d.has_room(), "9.9 points of room is not room");
        let plane = PlaneSweep { plane: Plane::POLLING, frontier: vec![], points: vec![a, b, c, d] };
        // Gaps closed: a 0.25, b 0.49, c 0.25; the median is 0.25.
        assert_eq!(plane.big_wins(), BigWins { points: 3, at_ratio: 2, median_gap_closed: Some(0.25) });
        let none = PlaneSweep { points: vec![d], ..plane };
        assert_eq!(none.big_wins(), BigWins { points: 0, at_ratio: 0, median_gap_closed: None });
    }

    fn tiny() -> Trace {
        Trace::single_cpu(Format::Text, [1_000, 2_000, 500_000, 3_000, 1_000_000, 4_000].repeat(30))
    }

    fn how(budgets: &[f64], halt_cost_ns: u64) -> Sweep {
        Sweep { budgets: budgets.to_vec(), halt_cost_ns, cpus: None, predictive: PredictiveParams::DEFAULT }
    }

    #[test]
    fn a_sweep_has_both_planes_and_both_timer_modes_at_every_budget() {
        let t = sweep("t".into(), tiny(), &how(&[0.0, 0.01, 1.0], 50_000)).unwrap();
        assert_eq!(t.settings, compare::linux_grid().settings().len());
        assert_eq!(t.planes.iter().map(|p| p.plane.halt_cost_ns).collect::<Vec<_>>(), vec![0, 50_000]);
        for plane in &t.planes {
            let modes: Vec<_> = plane.points.iter().map(|p| (p.budget, p.timer_first)).collect();
            assert_eq!(modes, vec![(0.0, true), (0.0, false), (0.01, true), (0.01, false), (1.0, true), (1.0, false)]);
            for p in &plane.points {
                assert_eq!(p.params.timer_first, p.timer_first);
                let linux = p.linux.expect("polling off fits every budget");
                // Linux's best is within the budget or the point's own x, and the frontier's best there.
                let limit = plane.plane.x_ns(&p.summary).max(budget_ns(p.budget, t.cpu) as i128);
                assert!(plane.plane.x_ns(&linux.summary) <= limit, "{p:?}");
                assert_eq!(verdict(&p.summary, Some(&linux.summary)), p.verdict);
                assert!(
                    p.clairvoyant.poll_hits >= linux.summary.poll_hits
                        || plane.plane.x_ns(&linux.summary) > budget_ns(p.budget, t.cpu) as i128
                );
            }
            let hits: Vec<_> = plane.frontier.iter().map(|o| o.summary.poll_hits).collect();
            assert!(hits.windows(2).all(|w| w[0] < w[1]), "{hits:?}");
        }
        // At a budget of the whole CPU time every setting fits: Linux's best is the frontier's top.
        let all = &t.planes[0].points[4];
        assert_eq!(all.linux.map(|o| o.summary), t.planes[0].frontier.last().map(|o| o.summary));
        assert_eq!(t.planes[0].points[0].summary.poll_hits, 0, "a budget of 0 polls nothing");
        let only = sweep("t".into(), tiny(), &how(&[0.02], 0)).unwrap();
        assert_eq!(only.planes.len(), 1, "a halt cost of 0 is the plane of all polling alone");
    }

    #[test]
    fn traces_are_swept_in_parallel_and_reported_in_order() {
        let traces = (1..=5u64)
            .map(|i| (PathBuf::from(format!("t{i}")), Trace::single_cpu(Format::Text, vec![i * 10_000; 50])))
            .collect();
        let all = sweep_all(traces, &how(&[0.05], 0)).unwrap();
        let paths: Vec<_> = all.iter().map(|t| t.path.display().to_string()).collect();
        assert_eq!(paths, ["t1", "t2", "t3", "t4", "t5"]);
        let bad = vec![
            ("ok".into(), tiny()),
            ("empty".into(), Trace::single_cpu(Format::Text, [])),
            ("zero".into(), Trace::single_cpu(Format::Text, [0])),
        ];
        let err = sweep_all(bad, &how(&[0.05], 0)).unwrap_err().to_string();
        assert_eq!(err, "empty: the trace has no idle periods to compare on", "the first failing trace, in order");
    }

    fn arb_outcomes() -> impl Strategy<Value = Vec<Outcome>> {
        proptest::collection::vec((0u64..10_000, 0u64..=1000), 1..40)
            .prop_map(|v| v.into_iter().enumerate().map(|(i, (poll, hits))| outcome(i as u64, poll, hits)).collect())
    }

    proptest! {
        #[test]
        fn the_frontier_rises_with_x_and_nothing_beats_it(outcomes in arb_outcomes(), halt_cost_ns in 0u64..20, x in -20_000i128..20_000) {
            let plane = Plane { halt_cost_ns };
            let f = linux_frontier(&outcomes, plane);
            for w in f.windows(2) {
                prop_assert!(plane.x_ns(&w[0].summary) < plane.x_ns(&w[1].summary));
                prop_assert!(w[0].summary.poll_hits < w[1].summary.poll_hits);
            }
            let best = best_within(&f, plane, x).map(|o| o.summary.poll_hits);
            let brute = outcomes.iter().filter(|o| plane.x_ns(&o.summary) <= x).map(|o| o.summary.poll_hits).max();
            prop_assert_eq!(best, brute);
            let further = best_within(&f, plane, x + 1_000).map(|o| o.summary.poll_hits);
            prop_assert!(further >= best, "a larger x never buys fewer catches");
        }
    }
}
