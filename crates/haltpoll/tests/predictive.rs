//! The predictive governor over random inputs: no overflow or panic for any input, decisions
//! that depend on the past only, and polling within the budget of the time elapsed.

use haltpoll::predictive::{PPM, Predictive, PredictiveParams, ValidPredictiveParams};
use haltpoll::replay::Replay;
use haltpoll::{Decision, LATENCY_ANY, Outcome};
use proptest::prelude::*;

fn any_params() -> impl Strategy<Value = ValidPredictiveParams> {
    (0..=PPM, 0..=haltpoll::predictive::MAX_CEILING_NS, 1..=haltpoll::predictive::MAX_HORIZON_NS, any::<bool>())
        .prop_map(|(poll_budget_ppm, poll_ceiling_ns, budget_horizon_ns, timer_first)| {
            PredictiveParams { poll_budget_ppm, poll_ceiling_ns, budget_horizon_ns, halt_cost_ns: 0, timer_first }
                .validate()
                .unwrap()
        })
}

/// Parameters on a realistic scale, so that the budget binds and decisions vary.
fn small_params() -> impl Strategy<Value = ValidPredictiveParams> {
    (0..200_000u32, 0..2_000_000u64, 1_000_000..2_000_000_000u64, any::<bool>()).prop_map(
        |(poll_budget_ppm, poll_ceiling_ns, budget_horizon_ns, timer_first)| {
            PredictiveParams { poll_budget_ppm, poll_ceiling_ns, budget_horizon_ns, halt_cost_ns: 0, timer_first }
                .validate()
                .unwrap()
        },
    )
}

/// (busy, idle) pairs: mostly realistic, some extreme.
fn trace() -> impl Strategy<Value = Vec<(u64, u64)>> {
    let ns = || prop_oneof![4 => 0u64..3_000_000, 1 => any::<u64>()];
    prop::collection::vec((ns(), ns()), 0..400)
}

/// A trace with structure worth predicting: a few period lengths, repeated with jitter.
fn patterned_trace() -> impl Strategy<Value = Vec<(u64, u64)>> {
    (
        prop::collection::vec(1_000u64..2_000_000, 1..4),
        prop::collection::vec((0u64..200_000, 0usize..4, 0u64..5_000), 0..600),
    )
        .prop_map(|(lengths, steps)| {
            steps.into_iter().map(|(busy, k, jitter)| (busy, lengths[k % lengths.len()] + jitter)).collect()
        })
}

proptest! {
    /// Nothing overflows or panics for any parameters and any inputs (debug builds check
    /// arithmetic), and the state stays what the const assertion allows.
    #[test]
    fn never_panics(params in any_params(), steps in prop::collection::vec((any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>(), any::<bool>(), any::<u64>()), 0..200)) {
        let mut gov = Predictive::new(params);
        for (latency, busy, idle_ns, poll_ns, caught, halt_wake_ns) in steps {
            let _ = gov.select(latency, busy);
            gov.reflect(&Outcome { idle_ns, poll_ns, caught, halt_wake_ns, ..Outcome::default() });
            let _ = (gov.planned(), gov.credit_ns(), gov.price_ns());
        }
        prop_assert!(core::mem::size_of::<Predictive>() <= 256);
    }

    /// The replay model runs any trace with any halt wake cost without overflow.
    #[test]
    fn replays_any_trace(params in any_params(), trace in trace(), wake in prop_oneof![Just(0u64), 0u64..100_000, any::<u64>()]) {
        let mut replay = Replay::of(Predictive::new(params)).with_halt_wake_ns(wake);
        for (busy, d) in trace {
            let p = replay.period_after(busy, d);
            prop_assert!(p.poll_ns <= p.poll_limit_ns_before || p.decision == Decision::Halt);
            prop_assert_eq!(p.hit(), !p.halted);
        }
    }

    /// Online: a decision depends only on the periods before it, so appending periods never
    /// changes the decisions already taken.
    #[test]
    fn appending_periods_never_changes_earlier_decisions(params in small_params(), trace in patterned_trace(), more in patterned_trace()) {
        let decisions = |periods: &[(u64, u64)]| {
            let mut replay = Replay::of(Predictive::new(params));
            periods.iter().map(|&(busy, d)| replay.period_after(busy, d).decision).collect::<Vec<_>>()
        };
        let before = decisions(&trace);
        let longer: Vec<(u64, u64)> = trace.iter().chain(&more).copied().collect();
        let after = decisions(&longer);
        prop_assert_eq!(&after[..before.len()], &before[..]);
    }

    /// From the start, polling never takes more than the budget's share of the time elapsed
    /// (busy and idle) plus the credit a CPU starts with (a horizon's worth), whatever the
    /// trace: the credit is a hard limit.
    #[test]
    fn polling_stays_within_the_budget(params in small_params(), trace in patterned_trace()) {
        let mut replay = Replay::of(Predictive::new(params));
        let start = u128::from(replay.governor().credit_ns()) * u128::from(PPM);
        let (mut polled, mut elapsed) = (0u128, 0u128);
        for (busy, d) in trace {
            let p = replay.period_after(busy, d);
            polled += u128::from(p.poll_ns);
            elapsed += u128::from(busy) + u128::from(d);
            prop_assert!(polled * u128::from(PPM) <= elapsed * u128::from(params.poll_budget_ppm) + start,
                "{polled} ns polled in {elapsed} ns at {} ppm", params.poll_budget_ppm);
        }
    }

    /// With the halt's wake cost reported, a steady period below the ceiling is caught nearly
    /// always once learnt, whatever that cost: no window-0 trap.
    #[test]
    fn no_window_zero_trap(period in 20_000u64..200_000, wake in 0u64..100_000, busy in 1_000u64..20_000) {
        let params = PredictiveParams { poll_budget_ppm: PPM, poll_ceiling_ns: 200_000, ..PredictiveParams::DEFAULT };
        let mut replay = Replay::of(Predictive::new(params.validate().unwrap())).with_halt_wake_ns(wake);
        let hits = (0..1_000).map(|_| replay.period_after(busy, period)).skip(200).filter(|p| p.hit()).count();
        prop_assert!(hits >= 790, "{hits} of 800 caught");
    }
}

/// A latency requirement of 0 forces a poll until woken, whatever the budget.
#[test]
fn a_zero_latency_requirement_polls() {
    let mut gov =
        Predictive::new(PredictiveParams { poll_budget_ppm: 0, ..PredictiveParams::DEFAULT }.validate().unwrap());
    assert_eq!(gov.select(0, 0), Decision::Poll { window_ns: u64::MAX });
    assert_eq!(gov.select(LATENCY_ANY, 0), Decision::Halt);
}

/// Parameters with a halt cost and no timer: the setting of the worst-case guarantee.
fn costed_params() -> impl Strategy<Value = ValidPredictiveParams> {
    (0..=PPM, 0..2_000_000u64, 1_000_000..2_000_000_000u64, 1u64..200_000).prop_map(
        |(poll_budget_ppm, poll_ceiling_ns, budget_horizon_ns, halt_cost_ns)| {
            let p = PredictiveParams {
                poll_budget_ppm,
                poll_ceiling_ns,
                budget_horizon_ns,
                halt_cost_ns,
                timer_first: false,
            };
            p.validate().unwrap()
        },
    )
}

/// How the adversary picks each period against what the governor planned: just past its
/// window (every poll times out, the most polling wasted), a period of 1 ns when it halts (the
/// halt costs `H` where the clairvoyant polls 1 ns), or a period from a fixed list.
#[derive(Clone, Copy, Debug)]
enum Adversary {
    PastTheWindow,
    ShortWhenHalting,
    Fixed(u64),
}

fn adversaries() -> impl Strategy<Value = Vec<(u64, Adversary)>> {
    let step = prop_oneof![
        3 => Just(Adversary::PastTheWindow),
        2 => Just(Adversary::ShortWhenHalting),
        2 => (0u64..3_000_000).prop_map(Adversary::Fixed),
    ];
    prop::collection::vec((0u64..200_000, step), 0..600)
}

/// The costs of a replay with halt cost `H`, in ns: the governor's (polling + `H` per halt), the
/// clairvoyant's (`min(d, H)` a period: it polls a period shorter than a halt's cost and halts at
/// once otherwise), the polling beyond `H` in a period (what the budget pays for), the short
/// misses (halts of periods below `H / 2` that a window below `H / 2` did not reach: what the
/// budget rationed), and what catches shorter than `H` saved against halting.
#[derive(Debug, Default)]
struct Costs {
    governor: u128,
    clairvoyant: u128,
    beyond_halt: u128,
    short_misses: u128,
    saved: u128,
    elapsed: u128,
}

/// Replays the adversary's periods, each chosen against the plan, and totals the costs; also
/// returns the credit the governor started with.
fn costs(params: ValidPredictiveParams, steps: &[(u64, Adversary)]) -> (Costs, u64) {
    let h = params.halt_cost_ns;
    let mut replay = Replay::of(Predictive::new(params));
    let start_credit = replay.governor().credit_ns();
    let mut c = Costs::default();
    for &(busy, adversary) in steps {
        let w = replay.governor().planned().window_ns();
        let d = match adversary {
            Adversary::ShortWhenHalting if w == 0 => 1,
            Adversary::PastTheWindow | Adversary::ShortWhenHalting => w.saturating_add(1),
            Adversary::Fixed(d) => d,
        };
        let p = replay.period_after(busy, d);
        let (poll, halted) = (u128::from(p.poll_ns), p.halted);
        c.governor += poll + if halted { u128::from(h) } else { 0 };
        c.clairvoyant += u128::from(d.min(h));
        c.beyond_halt += poll.saturating_sub(u128::from(h));
        c.short_misses += u128::from(halted && 2 * d < h && 2 * w < h);
        c.saved += if halted || d >= h { 0 } else { u128::from(h - d) };
        c.elapsed += u128::from(busy) + u128::from(d);
    }
    (c, start_credit)
}

proptest! {
    /// The worst-case guarantee (docs/predictive.md): with a halt cost `H`, on any trace, even
    /// one built period by period against the governor's plan, its cost is at most 3x the
    /// clairvoyant's, plus the polling beyond a halt's cost in a period, plus 1.5 `H` for each
    /// short miss; and the polling beyond a halt's cost is what the budget allows (its share of
    /// the time elapsed, the credit it started with, one halt cost of debt) plus what catches
    /// shorter than a halt saved.
    #[test]
    fn cost_is_within_3x_the_clairvoyant_plus_what_the_budget_pays(params in costed_params(), steps in adversaries()) {
        let (c, start_credit) = costs(params, &steps);
        let h = u128::from(params.halt_cost_ns);
        prop_assert!(2 * c.governor <= 6 * c.clairvoyant + 2 * c.beyond_halt + 3 * h * c.short_misses, "{c:?}");
        let budget = c.elapsed * u128::from(params.poll_budget_ppm) / u128::from(PPM);
        prop_assert!(c.beyond_halt <= budget + u128::from(start_credit) + h + c.saved + 1, "{c:?}");
    }

    /// While the budget does not bind (100%), no period is a short miss: the ski-rental floor
    /// polls at least half a halt's cost, so the cost is within 3x the clairvoyant's plus the
    /// polling beyond a halt's cost.
    #[test]
    fn with_budget_to_spare_every_period_is_within_3x(params in costed_params(), steps in adversaries()) {
        let ceiling = params.poll_ceiling_ns.max(params.halt_cost_ns);
        let p = PredictiveParams { poll_budget_ppm: PPM, poll_ceiling_ns: ceiling, budget_horizon_ns: 1_000_000_000, ..*params };
        let (c, _) = costs(p.validate().unwrap(), &steps);
        prop_assert_eq!(c.short_misses, 0, "{:?}", c);
        prop_assert!(c.governor <= 3 * c.clairvoyant + c.beyond_halt, "{c:?}");
    }
}
