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

/// The work between two periods of the mix, ns.
const MIX_BUSY_NS: u64 = 40_000;

/// One idle period of `d` ns after `busy` ns of work through `gov`: select, then reflect what
/// the replay model says happened.
fn period(gov: &mut impl IdleGovernor, busy: u64, d: u64) -> haltpoll::Adjustment {
    let decision = gov.select(black_box(LATENCY_ANY), black_box(busy));
    let w = decision.window_ns();
    let caught = matches!(decision, haltpoll::Decision::Poll { .. }) && d <= w;
    gov.reflect(&Outcome { idle_ns: d, poll_ns: w.min(d), caught, halt_wake_ns: 2_000, ..Outcome::default() })
}

/// The predictive governor, warmed up on the mix, one period per iteration.
#[divan::bench]
fn predictive_select_reflect(bencher: Bencher) {
    let mut gov = Predictive::new(ValidPredictiveParams::DEFAULT);
    for i in 0..10_000 {
        period(&mut gov, MIX_BUSY_NS, PERIODS[i % PERIODS.len()]);
    }
    let mut i = 0;
    bencher.bench_local(|| {
        i = (i + 1) % PERIODS.len();
        period(&mut gov, MIX_BUSY_NS, black_box(PERIODS[i]))
    });
}

/// Linux's governor through the same seam and the same periods, for scale.
#[divan::bench]
fn linux_select_reflect(bencher: Bencher) {
    let mut gov = Governor::new(ValidParams::DEFAULT);
    let mut i = 0;
    bencher.bench_local(|| {
        i = (i + 1) % PERIODS.len();
        period(&mut gov, MIX_BUSY_NS, black_box(PERIODS[i]))
    });
}

/// Think 0 live (`bench vm`, a message every ~0.3 us): periods of 200-600 ns, with one of
/// 0.2-5 ms every couple of thousand, as the guest driver sees them.
fn think0_periods() -> Vec<u64> {
    const LONG: [u64; 5] = [200_000, 700_000, 1_500_000, 3_000_000, 5_000_000];
    (0..10_000u64)
        .map(|i| if i % 2_000 == 1_999 { LONG[(i / 2_000) as usize % LONG.len()] } else { 200 + (i * 7_919) % 401 })
        .collect()
}

/// The work between two think-0 periods, ns.
const THINK0_BUSY_NS: u64 = 300;

/// `gov` through the think-0 periods, warmed up on them, one period per iteration.
fn bench_think0(bencher: Bencher, mut gov: impl IdleGovernor) {
    let periods = think0_periods();
    for &d in &periods {
        period(&mut gov, THINK0_BUSY_NS, d);
    }
    let mut i = 0;
    bencher.bench_local(|| {
        i = (i + 1) % periods.len();
        period(&mut gov, THINK0_BUSY_NS, black_box(periods[i]))
    });
}

/// The predictive governor at think 0, as the guest driver sets it: a measured halt cost of
/// 120 us, and a ceiling of two halt costs.
#[divan::bench]
fn predictive_think0(bencher: Bencher) {
    let mut gov = Predictive::new(ValidPredictiveParams::DEFAULT);
    gov.set_halt_cost_ns(120_000);
    gov.set_ceiling_ns(240_000);
    bench_think0(bencher, gov);
}

/// Linux's governor through the same seam and the same periods.
#[divan::bench]
fn linux_think0(bencher: Bencher) {
    bench_think0(bencher, Governor::new(ValidParams::DEFAULT));
}
