//! Invariants of the governor over random traces and parameters.

use haltpoll::replay::{Replay, Summary};
use haltpoll::{
    Adjustment, BlockTime, Governor, IdleState, LATENCY_ANY, Params, ShrinkRule, ValidParams, WindowArithmetic,
};
use proptest::prelude::*;

/// Parameters from the numbers and the three choices (shrink allowed, legacy rule, poll and halt).
fn params(ceiling: u64, grow: u32, grow_start: u64, shrink: u32, flags: (bool, bool, bool)) -> Params {
    let (allow_shrink, legacy, whole) = flags;
    Params {
        guest_halt_poll_ns: ceiling,
        grow,
        grow_start,
        shrink,
        allow_shrink,
        shrink_rule: if legacy { ShrinkRule::Legacy } else { ShrinkRule::Floor },
        block_time: if whole { BlockTime::PollAndHalt } else { BlockTime::HaltOnly },
        arithmetic: WindowArithmetic::Kernel,
    }
}

fn any_params() -> impl Strategy<Value = Params> {
    (any::<u64>(), any::<u32>(), 1..=u64::MAX, any::<u32>(), any::<(bool, bool, bool)>(), any::<bool>()).prop_map(
        |(ceiling, grow, grow_start, shrink, flags, wide)| {
            // The kernel's arithmetic holds 32-bit parameters; ours any.
            if wide {
                Params { arithmetic: WindowArithmetic::Saturating, ..params(ceiling, grow, grow_start, shrink, flags) }
            } else {
                params(ceiling >> 32, grow, (grow_start >> 32).max(1), shrink, flags)
            }
        },
    )
}

/// Parameters on a realistic scale, so windows actually move.
fn small_params() -> impl Strategy<Value = Params> {
    (0u64..1_000_000, 0u32..8, 1u64..400_000, 0u32..8, any::<(bool, bool, bool)>())
        .prop_map(|(ceiling, grow, grow_start, shrink, flags)| params(ceiling, grow, grow_start, shrink, flags))
}

/// What the governor counted as the block time of a period that halted.
fn block_ns(params: &Params, p: &haltpoll::replay::Period) -> u64 {
    match params.block_time {
        BlockTime::HaltOnly => p.halt_ns,
        BlockTime::PollAndHalt => p.idle_ns,
    }
}

fn trace() -> impl Strategy<Value = Vec<u64>> {
    prop::collection::vec(prop_oneof![0u64..2_000_000, any::<u64>()], 0..300)
}

proptest! {
    /// Nothing overflows or panics for any input (debug builds check arithmetic).
    #[test]
    fn never_panics(params in any_params(), steps in prop::collection::vec((any::<bool>(), any::<u64>(), any::<bool>(), any::<u64>()), 0..200)) {
        let mut gov = Governor::new(params.validate().unwrap());
        for (halt, ns, timed_out, latency) in steps {
            let _ = gov.select(latency);
            let state = if halt { IdleState::Halt } else { IdleState::Poll };
            let _ = gov.reflect(state, ns, timed_out);
            let _ = gov.poll_time_ns(ns);
        }
    }

    /// With grow_start <= ceiling (and the 6.9 floor), the window is 0 or in [grow_start, ceiling].
    #[test]
    fn window_stays_in_band(params in small_params(), trace in trace()) {
        prop_assume!(params.grow_start <= params.guest_halt_poll_ns);
        let params = Params { shrink_rule: ShrinkRule::Floor, ..params };
        let mut replay = Replay::new(params.validate().unwrap());
        for d in trace {
            let w = replay.period(d).poll_limit_ns_after;
            prop_assert!(w == 0 || (params.grow_start..=params.guest_halt_poll_ns).contains(&w), "window {w} out of band");
        }
    }

    /// Even the legacy rule and on/off settings never exceed the ceiling... except a window
    /// grown under a larger ceiling: with fixed parameters, never.
    #[test]
    fn window_never_exceeds_ceiling(params in small_params(), trace in trace()) {
        let mut replay = Replay::new(params.validate().unwrap());
        for d in trace {
            prop_assert!(replay.period(d).poll_limit_ns_after <= params.guest_halt_poll_ns);
        }
    }

    /// A poll hit never changes the window; a poll (hit or timeout) never changes it.
    #[test]
    fn polls_never_move_window(params in small_params(), trace in trace()) {
        let mut replay = Replay::new(params.validate().unwrap());
        for d in trace {
            let p = replay.period(d);
            if p.hit() {
                prop_assert_eq!(p.poll_limit_ns_before, p.poll_limit_ns_after);
                prop_assert_eq!(p.adjustment, Adjustment::Unchanged);
                prop_assert_eq!(p.halt_ns, 0);
                prop_assert!(p.idle_ns <= p.poll_limit_ns_before);
            }
        }
    }

    /// Time adds up, and a period polls at most its window.
    #[test]
    fn accounting_adds_up(params in small_params(), trace in prop::collection::vec(0u64..2_000_000, 0..300)) {
        let mut replay = Replay::new(params.validate().unwrap());
        let mut s = Summary::default();
        for d in &trace {
            let p = replay.period(*d);
            prop_assert_eq!(p.poll_ns + p.halt_ns, p.idle_ns);
            prop_assert!(p.poll_ns <= p.poll_limit_ns_before);
            s.add(&p);
        }
        prop_assert_eq!(s.periods, trace.len() as u64);
        prop_assert_eq!(s.poll_hits + s.halts, s.periods);
        prop_assert_eq!(s.poll_ns + s.halt_ns, s.idle_ns);
        prop_assert!(s.wasted_poll_ns <= s.poll_ns);
        prop_assert!((0.0..=1.0).contains(&s.no_exit_share()));
    }

    /// Grows only go up and shrinks only go down; the direction matches the block time.
    #[test]
    fn adjustments_have_the_right_direction(params in small_params(), trace in trace()) {
        let mut replay = Replay::new(params.validate().unwrap());
        for d in trace {
            let p = replay.period(d);
            match p.adjustment {
                Adjustment::Grew { from, to } => {
                    prop_assert!(to >= from || to == params.guest_halt_poll_ns);
                    let block = block_ns(&params, &p);
                    prop_assert!(block > from && block <= params.guest_halt_poll_ns);
                }
                Adjustment::Shrank { from, to } => {
                    prop_assert!(to <= from);
                    prop_assert!(params.allow_shrink && block_ns(&params, &p) > params.guest_halt_poll_ns);
                }
                Adjustment::Unchanged => prop_assert_eq!(p.poll_limit_ns_before, p.poll_limit_ns_after),
            }
        }
    }

    /// Without shrinking the window never decreases.
    #[test]
    fn no_shrink_is_monotone(params in small_params(), trace in trace()) {
        let mut replay = Replay::new(Params { allow_shrink: false, ..params }.validate().unwrap());
        let mut last = 0;
        for d in trace {
            let w = replay.period(d).poll_limit_ns_after;
            prop_assert!(w >= last);
            last = w;
        }
    }

    /// Steady idle periods within the ceiling settle: after warm-up each period is a poll hit,
    /// or it falls in the governor's blind spot. Only the halt after a timed-out poll counts as
    /// `block_ns`, so a period `d` with `W < d <= 2W` halts for `d - W <= W`, which neither grows
    /// the window nor shrinks it: every period polls `W` in vain. Linux behaves the same.
    #[test]
    fn steady_periods_settle_into_hits_or_the_blind_spot(d in 1u64..=200_000) {
        let mut replay = Replay::new(ValidParams::DEFAULT);
        for _ in 0..5 { replay.period(d); }
        for _ in 0..5 {
            let p = replay.period(d);
            let w = p.poll_limit_ns_before;
            prop_assert!(p.hit() || (w < d && d - w <= w), "period {d} with window {w}");
            prop_assert_eq!(p.poll_limit_ns_after, w, "settled");
        }
        if d <= Params::DEFAULT.grow_start {
            prop_assert!(replay.period(d).hit());
        }
    }

    /// Counting the poll as block time closes the blind spot: every steady period up to the
    /// ceiling ends up caught by a poll.
    #[test]
    fn poll_and_halt_catches_every_steady_period_up_to_the_ceiling(d in 1u64..=200_000) {
        let mut replay = Replay::new(Params { block_time: BlockTime::PollAndHalt, ..Params::DEFAULT }.validate().unwrap());
        for _ in 0..6 { replay.period(d); } // 0 -> 50 -> 100 -> 200 us at most
        for _ in 0..5 {
            prop_assert!(replay.period(d).hit(), "period {d} missed with window {}", replay.governor().poll_limit_ns());
        }
    }

    /// Counting the poll, every steady period past the ceiling shrinks the window to 0: no
    /// blind spot above the ceiling either.
    #[test]
    fn poll_and_halt_shrinks_for_every_period_past_the_ceiling(warm in 1u64..=200_000, long in 200_001u64..100_000_000) {
        let mut replay = Replay::new(Params { block_time: BlockTime::PollAndHalt, ..Params::DEFAULT }.validate().unwrap());
        for _ in 0..5 { replay.period(warm); }
        for _ in 0..10 { replay.period(long); }
        prop_assert_eq!(replay.governor().poll_limit_ns(), 0);
    }

    /// Periods longer than twice the ceiling drive the window to 0 under the floor rule.
    /// (Between one and two ceilings the blind spot returns: with the window at the ceiling
    /// `W`, a period `d <= 2W` halts for `d - W <= W`, not past the ceiling, so the window
    /// stays at the ceiling; `blind_spot_above_the_ceiling` pins it.)
    #[test]
    fn long_periods_shrink_to_zero(warm in 1u64..=200_000, long in 400_001u64..100_000_000) {
        let mut replay = Replay::new(ValidParams::DEFAULT);
        for _ in 0..5 { replay.period(warm); }
        for _ in 0..10 { replay.period(long); }
        prop_assert_eq!(replay.governor().poll_limit_ns(), 0);
        prop_assert_eq!(replay.governor().select(LATENCY_ANY), IdleState::Halt);
    }
}

/// A steady period just past the ceiling grows the window to the ceiling and keeps it there:
/// every period polls the whole ceiling in vain, then halts briefly (the guest rule counts only
/// the halt). Found by `long_periods_shrink_to_zero` with `warm = 1, long = 200001`.
#[test]
fn blind_spot_above_the_ceiling() {
    let mut replay = Replay::new(ValidParams::DEFAULT);
    replay.period(1);
    for _ in 0..10 {
        replay.period(200_001);
    }
    assert_eq!(replay.governor().poll_limit_ns(), 200_000);
    assert!(!replay.period(200_001).hit());
}
