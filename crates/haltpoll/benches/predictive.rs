//! The cost of the predictive governor's decision on the idle path: one `select` + `reflect`
//! pair (its target: at most 20 ns, in docs/predictive.md), against Linux's governor through the same seam.
//!
//! Times here move with whatever else the machine runs; the instructions a period takes do not.
//! docs/predictive.md ("Counting instructions") counts them by running this binary under
//! cachegrind at two `--sample-size`s.

use divan::{Bencher, black_box};
use haltpoll::select::IdleGovernor;
use haltpoll::{Governor, LATENCY_ANY, Outcome, Predictive, ValidParams, ValidPredictiveParams};

fn main() {
    divan::main();
}

/// Idle periods from a mix of short and long ones, as a server sees them, cycled through.
const PERIODS: [u64; 8] = [18_000, 25_000, 2_400_000, 31_000, 60_000, 21_000, 900_000, 140_000];

/// One idle period through `gov`: select, then reflect what the replay model says happened.
fn period(gov: &mut impl IdleGovernor, d: u64) -> haltpoll::Adjustment {
    let decision = gov.select(black_box(LATENCY_ANY), black_box(40_000));
    let w = decision.window_ns();
    let caught = matches!(decision, haltpoll::Decision::Poll { .. }) && d <= w;
    gov.reflect(&Outcome { idle_ns: d, poll_ns: w.min(d), caught, halt_wake_ns: 2_000, ..Outcome::default() })
}

/// The predictive governor, warmed up on the mix, one period per iteration.
#[divan::bench]
fn predictive_select_reflect(bencher: Bencher) {
    let mut gov = Predictive::new(ValidPredictiveParams::DEFAULT);
    for i in 0..10_000 {
        period(&mut gov, PERIODS[i % PERIODS.len()]);
    }
    let mut i = 0;
    bencher.bench_local(|| {
        i = (i + 1) % PERIODS.len();
        period(&mut gov, black_box(PERIODS[i]))
    });
}

/// Linux's governor through the same seam and the same periods, for scale.
#[divan::bench]
fn linux_select_reflect(bencher: Bencher) {
    let mut gov = Governor::new(ValidParams::DEFAULT);
    let mut i = 0;
    bencher.bench_local(|| {
        i = (i + 1) % PERIODS.len();
        period(&mut gov, black_box(PERIODS[i]))
    });
}
