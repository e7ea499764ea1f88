//! The advice: the setting of the grid to apply for a CPU budget, judged by rules an operator
//! can check. A setting is eligible when
//! 1. it fits the budget: it polls at most `budget` of the trace's CPU time;
//! 2. it is safe on an idle guest: once the load stops, it polls at most `budget` of the idle
//!    guest's time on its tick ([`check_idle_guest`]);
//! 3. it is worth it: the polls that catch their wakeup take at least as much CPU time as the
//!    polls that end in a halt anyway (`wasted <= poll - wasted`).
//!
//! Polling off is eligible by every rule. The advice is the knee among the eligible: the
//! cheapest (least polling) whose catches are within [`KNEE_POINTS`] points of the wakeups of
//! the best eligible one. So polling off is the advice when no setting that polls is eligible,
//! or when none catches more than a point more wakeups than polling off does.
//!
//! A grid stops somewhere; when the advice (or the best eligible setting) sits at its largest
//! ceiling or `grow_start`, the grid grows there (doubling) and every rule is applied again, at
//! most [`MAX_EXTENSIONS`] times.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::num::NonZeroU32;

use haltpoll::{ParamError, Params, ValidParams};

use super::{CpuTime, Grid, IdleGuest, Outcome, check_idle_guest, evaluate, front, simplicity};
use crate::trace::Trace;

/// How close to the best, in points of wakeups caught, the knee may be.
pub const KNEE_POINTS: u64 = 1;

/// How many times the grid may extend.
pub const MAX_EXTENSIONS: usize = 8;

/// The largest value a kernel parameter holds (a 32-bit unsigned int).
const KERNEL_MAX: u64 = u32::MAX as u64;

/// What the advice is for.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    /// The share of CPU time polling may take, on the trace and on an idle guest.
    pub budget: f64,
    /// The idle guest's ticks to check ([`super::TICKS_HZ`] unless the guest's tick is known);
    /// none skips the check.
    pub ticks_hz: Vec<NonZeroU32>,
}

/// One setting against the rules.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Judged {
    /// Rule 1: it polls within the budget of the trace's CPU time.
    pub fits_budget: bool,
    /// Rule 2's measure: the worst idle guest of the ticks checked (none when no tick is).
    pub idle_guest: Option<IdleGuest>,
    /// Rule 2: safe on an idle guest.
    pub idle_guest_ok: bool,
    /// Rule 3: its catching polls take at least as long as its wasted ones.
    pub worth_it: bool,
}

impl Judged {
    /// `outcome` over a trace of `cpu`, and its idle guest, against `budget`.
    pub fn new(outcome: &Outcome, idle_guest: Option<IdleGuest>, cpu: CpuTime, budget: f64) -> Judged {
        Judged {
            fits_budget: outcome.poll_share(cpu) <= budget,
            idle_guest,
            idle_guest_ok: idle_guest.is_none_or(|g| g.fits(budget)),
            worth_it: is_worth_it(outcome),
        }
    }

    /// Whether every rule holds.
    pub fn eligible(&self) -> bool {
        self.fits_budget && self.idle_guest_ok && self.worth_it
    }
}

/// Rule 3: the polls that caught their wakeup took at least as much CPU time as those that
/// ended in a halt anyway. Polling off (no polls) passes.
pub fn is_worth_it(outcome: &Outcome) -> bool {
    let s = &outcome.summary;
    s.wasted_poll_ns <= s.poll_ns.saturating_sub(s.wasted_poll_ns)
}

/// The setting that catches most wakeups within the budget, when the advice is another, and
/// what it fails.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PassedOver {
    /// An index into [`Advice::outcomes`].
    pub setting: usize,
    /// Its idle guest, when it polls more than the budget of an idle guest's time.
    pub idle_guest: Option<IdleGuest>,
    /// Whether it passes rule 3; when it passes every rule, the advice is the knee below it.
    pub worth_it: bool,
}

/// What the advice comes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Poll, with the advice.
    Poll,
    /// Leave polling off: every setting that polls takes more than the budget.
    NothingFits,
    /// Leave polling off: no setting within the budget is worth it (rule 3), or those that are
    /// catch no more than [`KNEE_POINTS`] points of wakeups.
    NotWorthIt,
    /// Leave polling off: the settings within the budget that are worth it poll more than the
    /// budget of an idle guest's time.
    IdleGuest,
}

impl Verdict {
    /// Its name in JSON documents.
    pub const fn name(self) -> &'static str {
        match self {
            Verdict::Poll => "poll",
            Verdict::NothingFits => "nothing-fits",
            Verdict::NotWorthIt => "not-worth-it",
            Verdict::IdleGuest => "idle-guest",
        }
    }
}

/// A parameter the grid extends along.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Axis {
    /// `guest_halt_poll_ns`.
    Ceiling,
    /// `guest_halt_poll_grow_start`.
    GrowStart,
}

/// Why the advice sits at an edge of the grid that did not extend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EdgeWhy {
    /// The value is the kernel's largest.
    KernelLimit,
    /// The grid extended [`MAX_EXTENSIONS`] times already.
    Extensions,
}

/// The advice at an edge of the grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edge {
    /// Which parameter.
    pub axis: Axis,
    /// Its value there, the grid's largest, ns.
    pub value_ns: u64,
    /// Why the grid stops there.
    pub why: EdgeWhy,
}

/// What `tune` advises, and everything it weighed.
#[derive(Clone, Debug)]
pub struct Advice {
    /// The grid, as extended.
    pub grid: Grid,
    /// Every setting's result, in the order of [`Grid::settings`].
    pub outcomes: Vec<Outcome>,
    /// Every setting against the rules, in the same order.
    pub judged: Vec<Judged>,
    /// The Pareto front of `outcomes` ([`front`]).
    pub front: Vec<usize>,
    /// The advice: an index into `outcomes`.
    pub pick: usize,
    /// The eligible setting that catches most (for the least polling): the one the knee is
    /// measured from, and the one `autotune` applies.
    pub best: usize,
    /// What the advice comes to.
    pub verdict: Verdict,
    /// The setting that catches most within the budget, when it is not the advice, and why.
    pub passed_over: Option<PassedOver>,
    /// The values the grid was extended by, in order.
    pub extended: Vec<(Axis, u64)>,
    /// The advice (or the best eligible setting) at an edge the grid did not extend past.
    pub edge: Option<Edge>,
}

impl Advice {
    /// Whether the advice is to leave polling off.
    pub fn polling_off(&self) -> bool {
        self.outcomes[self.pick].params.guest_halt_poll_ns == 0
    }
}

/// Judges `grid`'s settings over `trace` (of `cpu`) by `policy`, extending the grid where the
/// advice sits at its edge. `progress(done, total)` follows the replays.
pub fn advise(
    trace: &Trace,
    cpu: CpuTime,
    mut grid: Grid,
    policy: &Policy,
    mut progress: impl FnMut(usize, usize),
) -> Result<Advice, ParamError> {
    let mut seen: HashMap<Params, (Outcome, Judged)> = HashMap::new();
    let mut extended = Vec::new();
    loop {
        let settings = grid.valid_settings()?;
        let new: Vec<ValidParams> = settings.iter().copied().filter(|p| !seen.contains_key(p.params())).collect();
        for (done, valid) in new.iter().enumerate() {
            let o = evaluate(trace, std::slice::from_ref(valid), || {})[0];
            let judged = Judged::new(&o, check_idle_guest(valid, &policy.ticks_hz), cpu, policy.budget);
            seen.insert(o.params, (o, judged));
            progress(done + 1, new.len());
        }
        let (outcomes, judged): (Vec<Outcome>, Vec<Judged>) = settings.iter().map(|p| seen[p.params()]).unzip();
        let (pick, best) = choose(&outcomes, &judged);
        let edges = edges(&grid, &[&outcomes[pick].params, &outcomes[best].params]);
        let before = extended.len();
        for &(axis, _) in &edges {
            if extended.len() < MAX_EXTENSIONS {
                extended.extend(grid.extend(axis).map(|v| (axis, v)));
            }
        }
        if extended.len() == before {
            // Nothing added: no edge, or only edges the grid cannot pass. While it may extend,
            // that is a ceiling at the kernel's limit (a start at an edge is below a ceiling of
            // the grid, so it can always double toward it).
            let edge = edges.first().map(|&(axis, value_ns)| {
                let at_limit = axis == Axis::Ceiling && value_ns >= KERNEL_MAX;
                Edge { axis, value_ns, why: if at_limit { EdgeWhy::KernelLimit } else { EdgeWhy::Extensions } }
            });
            let front = front(&outcomes);
            let (verdict, passed_over) = verdict(&outcomes, &judged, pick, cpu, policy.budget);
            return Ok(Advice { grid, outcomes, judged, front, pick, best, verdict, passed_over, extended, edge });
        }
    }
}

/// What the advice `pick` comes to, and the setting that catches most within the budget if the
/// advice is not it (nor ties with it).
fn verdict(
    outcomes: &[Outcome],
    judged: &[Judged],
    pick: usize,
    cpu: CpuTime,
    budget: f64,
) -> (Verdict, Option<PassedOver>) {
    let fits = || (0..outcomes.len()).filter(|&i| outcomes[i].poll_share(cpu) <= budget);
    let passed_over = most(outcomes, fits()).filter(|&t| !outcomes[t].ties(&outcomes[pick])).map(|t| {
        let j = &judged[t];
        PassedOver { setting: t, idle_guest: j.idle_guest.filter(|_| !j.idle_guest_ok), worth_it: j.worth_it }
    });
    let polls = |i: &usize| outcomes[*i].params.guest_halt_poll_ns != 0;
    if polls(&pick) {
        return (Verdict::Poll, passed_over);
    }
    let off = &outcomes[pick].summary;
    // Worth it by rule 3, and more than a knee above polling off.
    let worth_more = |i: &usize| {
        let s = &outcomes[*i].summary;
        judged[*i].worth_it
            && u128::from(s.poll_hits - off.poll_hits.min(s.poll_hits)) * 100
                > u128::from(KNEE_POINTS) * u128::from(s.periods)
    };
    let verdict = if !fits().any(|i| polls(&i)) {
        Verdict::NothingFits
    } else if !fits().filter(polls).any(|i| worth_more(&i)) {
        Verdict::NotWorthIt
    } else {
        Verdict::IdleGuest
    };
    (verdict, passed_over)
}

/// The one of `candidates` that catches most wakeups (for the least polling, the simplest).
fn most(outcomes: &[Outcome], candidates: impl Iterator<Item = usize>) -> Option<usize> {
    candidates.max_by_key(|&i| {
        let o = &outcomes[i];
        (o.summary.poll_hits, Reverse(o.summary.poll_ns), Reverse(simplicity(&o.params)))
    })
}

/// The knee and the best among the eligible settings (polling off is one, whatever the rules).
fn choose(outcomes: &[Outcome], judged: &[Judged]) -> (usize, usize) {
    let eligible =
        || (0..outcomes.len()).filter(|&i| judged[i].eligible() || outcomes[i].params.guest_halt_poll_ns == 0);
    let best = most(outcomes, eligible()).expect("polling off is always a setting");
    let b = &outcomes[best].summary;
    // Within KNEE_POINTS of the best's share of wakeups, in whole numbers: no rounding decides.
    let near = |i: usize| {
        let missed = u128::from(b.poll_hits.saturating_sub(outcomes[i].summary.poll_hits));
        missed * 100 <= u128::from(KNEE_POINTS) * u128::from(b.periods)
    };
    let knee = eligible()
        .filter(|&i| near(i))
        .min_by_key(|&i| (outcomes[i].summary.poll_ns, simplicity(&outcomes[i].params)))
        .expect("the best is near itself");
    (knee, best)
}

/// The edges of `grid` that any of `settings` sits at: the largest ceiling, or the largest
/// `grow_start` where it is below the setting's ceiling (above it, every start acts the same:
/// the first grow goes straight to the ceiling and every shrink to 0).
fn edges(grid: &Grid, settings: &[&Params]) -> Vec<(Axis, u64)> {
    let mut out = Vec::new();
    for p in settings.iter().filter(|p| p.guest_halt_poll_ns != 0) {
        let ceiling = (Axis::Ceiling, p.guest_halt_poll_ns);
        if p.guest_halt_poll_ns == grid.largest(Axis::Ceiling) && !out.contains(&ceiling) {
            out.push(ceiling);
        }
        let start = (Axis::GrowStart, p.grow_start);
        if p.grow_start == grid.largest(Axis::GrowStart) && p.grow_start < p.guest_halt_poll_ns && !out.contains(&start)
        {
            out.push(start);
        }
    }
    out
}

impl Grid {
    /// The largest value the grid tries along `axis` (0 if none).
    pub fn largest(&self, axis: Axis) -> u64 {
        let values = match axis {
            Axis::Ceiling => &self.ceilings_ns,
            Axis::GrowStart => &self.grow_starts_ns,
        };
        values.iter().copied().max().unwrap_or(0)
    }

    /// Adds the next value along `axis`: twice the largest, up to the kernel's limit for a
    /// ceiling and up to the largest ceiling for a start. The value added, if any.
    pub fn extend(&mut self, axis: Axis) -> Option<u64> {
        let top = self.largest(axis);
        let next = match axis {
            Axis::Ceiling => top.saturating_mul(2).min(KERNEL_MAX),
            Axis::GrowStart => top.saturating_mul(2).min(self.largest(Axis::Ceiling)),
        };
        (next > top).then(|| {
            match axis {
                Axis::Ceiling => self.ceilings_ns.push(next),
                Axis::GrowStart => self.grow_starts_ns.push(next),
            }
            next
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{self, Format, IdlePeriod, Span};
    use crate::tune::{TICKS_HZ, cpu_time, recommend};
    use proptest::prelude::*;

    fn grid(ceilings: &[u64], starts: &[u64], allow_shrink: &[bool]) -> Grid {
        Grid {
            ceilings_ns: ceilings.to_vec(),
            grow_starts_ns: starts.to_vec(),
            allow_shrink: allow_shrink.to_vec(),
            base: Params::DEFAULT,
        }
    }

    fn default_grid() -> Grid {
        grid(&Grid::CEILINGS_NS, &Grid::GROW_STARTS_NS, &[true, false])
    }

    fn policy(budget: f64, ticks_hz: &[NonZeroU32]) -> Policy {
        Policy { budget, ticks_hz: ticks_hz.to_vec() }
    }

    fn advise_on(trace: &Trace, grid: Grid, policy: &Policy) -> Advice {
        advise(trace, cpu_time(trace, None), grid, policy, |_, _| {}).unwrap()
    }

    /// A busy guest like the one measured under redis-benchmark: one CPU, waits of 0.3-2 ms
    /// (a fixed pseudo-random sequence) between runs of 50 ms, so idle about 2% of the time.
    fn busy(periods: usize) -> Trace {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut at = 0;
        let periods = (0..periods)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let p = IdlePeriod { cpu: 0, idle_ns: 300_000 + x % 1_700_000, start_ns: Some(at) };
                at += p.idle_ns + 50_000_000;
                p
            })
            .collect();
        let mut t = Trace::of_periods(Format::Perf, periods);
        t.span = Some(Span { wall_ns: at, cpus_online: Some(1) });
        t
    }

    /// `trace` followed by the guest idle on its tick of `tick_ns` for 10 s.
    fn then_idle(trace: &Trace, tick_ns: u64) -> Trace {
        let mut t = trace.clone();
        let mut at = t.periods.iter().filter_map(|p| p.start_ns.map(|s| s + p.idle_ns)).max().unwrap_or(0);
        for _ in 0..10_000_000_000 / tick_ns {
            t.periods.push(IdlePeriod { cpu: 0, idle_ns: tick_ns, start_ns: Some(at) });
            at += tick_ns;
        }
        t
    }

    /// The share of the idle phase's time a setting polls, replayed over `busy` then idle.
    fn idle_phase_share(busy: &Trace, tick_ns: u64, params: Params) -> f64 {
        let whole = then_idle(busy, tick_ns);
        let mut i = 0;
        let mut polled = 0u64;
        whole.replay(params.validate().unwrap(), |_, p| {
            if i >= busy.periods.len() {
                polled += p.poll_ns;
            }
            i += 1;
        });
        polled as f64 / (10_000_000_000 / tick_ns * tick_ns) as f64
    }

    #[test]
    fn advice_for_a_busy_guest_stays_within_the_budget_once_it_goes_idle() {
        let busy = busy(2_000);
        let cpu = cpu_time(&busy, None);
        let budget = 0.05;
        // Without the idle-guest check, the most catches within the budget: the trap.
        let outcomes = evaluate(&busy, &default_grid().valid_settings().unwrap(), || {});
        let old = outcomes[recommend(&outcomes, &front(&outcomes), cpu, budget).unwrap()].params;
        assert!(idle_phase_share(&busy, 4_000_000, old) > 0.5, "{old:?} was safe after all");
        // A guest known to tick at 250 Hz, as the one measured; then one that may tick at either.
        let hz250 = [NonZeroU32::new(250).unwrap()];
        for (ticks, tick_ns) in [(&hz250[..], &[4_000_000][..]), (&TICKS_HZ[..], &[4_000_000, 1_000_000][..])] {
            let a = advise_on(&busy, default_grid(), &policy(budget, ticks));
            let pick = a.outcomes[a.pick].params;
            for &tick_ns in tick_ns {
                let share = idle_phase_share(&busy, tick_ns, pick);
                assert!(share <= budget, "{pick:?} polls {share} of the idle phase at a tick of {tick_ns} ns");
            }
            assert!(a.passed_over.unwrap().idle_guest.is_some(), "{:?}", a.passed_over);
            if ticks == hz250 {
                assert_eq!(a.verdict, Verdict::Poll, "polling catches many of these waits: {pick:?}");
                assert!(a.outcomes[a.pick].no_exit_share() > 0.3, "{:?}", a.outcomes[a.pick]);
            }
        }
    }

    #[test]
    fn advice_for_the_corpus_redis_server_stays_within_the_budget_once_it_goes_idle() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../traces/corpus/redis-8-clients.perf.txt.gz");
        let busy = trace::read(&path, None).unwrap();
        let (cpu, budget) = (cpu_time(&busy, None), 0.05);
        let a = advise_on(&busy, default_grid(), &policy(budget, &TICKS_HZ));
        assert_eq!(a.verdict, Verdict::Poll);
        let outcomes = evaluate(&busy, &default_grid().valid_settings().unwrap(), || {});
        let old = outcomes[recommend(&outcomes, &front(&outcomes), cpu, budget).unwrap()].params;
        for tick_ns in [4_000_000, 1_000_000] {
            let share = idle_phase_share(&busy, tick_ns, a.outcomes[a.pick].params);
            assert!(share <= budget, "the advice polls {share} of the idle phase at a tick of {tick_ns} ns");
        }
        assert!(idle_phase_share(&busy, 1_000_000, old) > 0.5, "{old:?} was safe after all");
    }

    #[test]
    fn polling_on_the_example_trace_is_not_worth_two_percent() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/traces/perf-idle.txt");
        let trace = trace::read(&path, None).unwrap();
        let a = advise_on(&trace, default_grid(), &policy(0.02, &TICKS_HZ));
        assert!(a.polling_off(), "{:?}", a.outcomes[a.pick]);
        assert_eq!(a.verdict, Verdict::NotWorthIt);
        let top = a.passed_over.unwrap();
        assert!(!top.worth_it && !is_worth_it(&a.outcomes[top.setting]));
        assert_eq!(a.edge, None);
    }

    #[test]
    fn the_knee_is_the_cheapest_within_a_point_of_the_best() {
        // 200 waits of 20 us, then one of 150 us, 100 times: a 25 us ceiling catches the short
        // ones; a 200 us ceiling adds the 150 us ones (0.5 points) for much more polling.
        let periods = (0..100).flat_map(|_| std::iter::repeat_n(20_000, 200).chain([150_000]));
        let trace = Trace::single_cpu(Format::Text, periods);
        let a = advise_on(&trace, grid(&[25_000, 200_000], &[25_000], &[true]), &policy(1.0, &[]));
        assert_eq!(a.outcomes[a.pick].params.guest_halt_poll_ns, 25_000);
        let top = a.passed_over.unwrap();
        assert_eq!(
            (a.outcomes[top.setting].params.guest_halt_poll_ns, top.idle_guest, top.worth_it),
            (200_000, None, true)
        );
        assert!(a.outcomes[top.setting].summary.poll_hits > a.outcomes[a.pick].summary.poll_hits);
    }

    /// Linux's window grows only while the halt after a poll is longer than the window, so a
    /// run of equal waits longer than `grow_start` is never caught: these tests use on/off
    /// windows (`grow_start` above every ceiling), which jump to the ceiling at the first grow.
    const ON_OFF: u64 = 4_000_000_000;

    #[test]
    fn the_grid_extends_past_its_largest_ceiling() {
        // Waits of 1.5 ms, 3 ms, then 10 ms: a 2 ms ceiling catches the first, 4 ms the first
        // two, 16 ms all three.
        let waits = [(1_500_000, 300), (3_000_000, 30), (10_000_000, 30)]
            .into_iter()
            .flat_map(|(d, n)| std::iter::repeat_n(d, n));
        let trace = Trace::single_cpu(Format::Text, waits.cycle().take(3_600));
        let a = advise_on(&trace, grid(&[2_000_000], &[ON_OFF], &[true]), &policy(1.0, &[]));
        assert_eq!(a.outcomes[a.pick].params.guest_halt_poll_ns, 16_000_000);
        // 32 ms catches no more for more polling: the knee stays below it, off the edge.
        let extended: Vec<_> = [4, 8, 16, 32].map(|ms| (Axis::Ceiling, ms * 1_000_000)).into();
        assert_eq!(a.extended, extended);
        assert_eq!(a.edge, None);
        // On a guest that may go idle on its tick, a 4 ms window would trap it.
        let a = advise_on(&trace, grid(&[2_000_000], &[ON_OFF], &[true]), &policy(0.5, &TICKS_HZ));
        assert!(a.judged[a.pick].idle_guest.unwrap().fits(0.5));
        assert!(a.outcomes[a.pick].params.guest_halt_poll_ns < 4_000_000);
    }

    #[test]
    fn an_edge_that_cannot_extend_is_said() {
        // Many short waits, then groups from 1.5 ms to 1.5 s, each twice the one before: every
        // doubling of the ceiling catches one more group.
        let groups = (0..11u32).flat_map(|k| std::iter::repeat_n(1_500_000u64 << k, 20));
        let trace = Trace::single_cpu(Format::Text, std::iter::repeat_n(100_000, 1_000).chain(groups));
        let a = advise_on(&trace, grid(&[2_000_000], &[ON_OFF], &[true]), &policy(1.0, &[]));
        assert_eq!(a.extended.len(), MAX_EXTENSIONS, "{:?}", a.extended);
        let top = 2_000_000 << MAX_EXTENSIONS;
        assert_eq!(a.outcomes[a.pick].params.guest_halt_poll_ns, top);
        assert_eq!(a.edge, Some(Edge { axis: Axis::Ceiling, value_ns: top, why: EdgeWhy::Extensions }));
        // At the kernel's limit the grid cannot extend at all.
        let trace = Trace::single_cpu(Format::Text, vec![4_200_000_000; 20]);
        let a = advise_on(&trace, grid(&[KERNEL_MAX], &[KERNEL_MAX], &[true]), &policy(1.0, &[]));
        assert_eq!(a.outcomes[a.pick].params.guest_halt_poll_ns, KERNEL_MAX);
        assert!(a.extended.is_empty());
        assert_eq!(a.edge, Some(Edge { axis: Axis::Ceiling, value_ns: KERNEL_MAX, why: EdgeWhy::KernelLimit }));
    }

    fn arb_trace() -> impl Strategy<Value = Trace> {
        let period = prop_oneof![1u64..60_000, 60_000u64..400_000, 400_000u64..5_000_000];
        proptest::collection::vec(period, 1..150).prop_map(|ps| Trace::single_cpu(Format::Text, ps))
    }

    proptest! {
        #[test]
        fn the_advice_keeps_every_rule(trace in arb_trace(), budget in 0.0f64..0.6, check in any::<bool>()) {
            let ticks: &[NonZeroU32] = if check { &TICKS_HZ } else { &[] };
            let g = grid(&[25_000, 100_000, 400_000, 1_600_000], &[10_000, 50_000], &[true, false]);
            let a = advise_on(&trace, g, &policy(budget, ticks));
            let cpu = cpu_time(&trace, None);
            let (pick, j) = (&a.outcomes[a.pick], &a.judged[a.pick]);
            prop_assert!(a.polling_off() || j.eligible());
            prop_assert!(pick.poll_share(cpu) <= budget);
            if let Some(g) = j.idle_guest {
                prop_assert!(g.poll_share <= budget || a.polling_off());
            }
            let eligible = |i: usize| a.judged[i].eligible() || a.outcomes[i].params.guest_halt_poll_ns == 0;
            let best = (0..a.outcomes.len()).filter(|&i| eligible(i)).map(|i| a.outcomes[i].summary.poll_hits).max().unwrap();
            let periods = pick.summary.periods;
            prop_assert!((best - pick.summary.poll_hits) * 100 <= periods, "the knee is more than a point from the best");
            for (o, _) in a.outcomes.iter().zip(0..).filter(|&(_, i)| eligible(i)) {
                let near = (best - o.summary.poll_hits.min(best)) * 100 <= periods;
                prop_assert!(!near || o.summary.poll_ns >= pick.summary.poll_ns, "{o:?} is near and cheaper");
            }
        }
    }
}
