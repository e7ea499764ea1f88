//! The cost of the predictive governor's decision on the idle path: one `select` + `reflect`
//! pair (its target: at most 20 ns, in docs/predictive-speed.md), against Linux's governor through the same seam.
//!
//! Times here move with whatever else the machine runs; the instructions a period takes do not.
//! docs/predictive-speed.md ("Counting instructions") counts them by running this binary under
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

/// `gov` through `periods` (after `busy` ns of work each), cycled, one period per iteration,
/// after 10 000 periods of warm-up on them.
/// (`N` is a constant, so the loop's remainder is no division.)
fn bench_periods<const N: usize>(bencher: Bencher, mut gov: impl IdleGovernor, periods: &[u64; N], busy: u64) {
    for i in 0..10_000 {
        period(&mut gov, busy, periods[i % N]);
    }
    let mut i = 0;
    bencher.bench_local(|| {
        i = (i + 1) % N;
        period(&mut gov, busy, black_box(periods[i]))
    });
}

/// The predictive governor on the mix.
#[divan::bench]
fn predictive_select_reflect(bencher: Bencher) {
    bench_periods(bencher, Predictive::new(ValidPredictiveParams::DEFAULT), &PERIODS, MIX_BUSY_NS);
}

/// Linux's governor through the same seam and the same periods, for scale.
#[divan::bench]
fn linux_select_reflect(bencher: Bencher) {
    bench_periods(bencher, Governor::new(ValidParams::DEFAULT), &PERIODS, MIX_BUSY_NS);
}

/// Think 0 live (`bench vm`, a message every ~0.3 us): periods of 200-600 ns, with one of
/// 0.2-5 ms every couple of thousand, as the guest driver sees them.
fn think0_periods() -> Box<[u64; THINK0_PERIODS]> {
    const LONG: [u64; 5] = [200_000, 700_000, 1_500_000, 3_000_000, 5_000_000];
    Box::new(core::array::from_fn(|i| {
        let i = i as u64;
        if i % 2_000 == 1_999 { LONG[(i / 2_000) as usize % LONG.len()] } else { 200 + (i * 7_919) % 401 }
    }))
}

/// How many think-0 periods there are before they repeat.
const THINK0_PERIODS: usize = 10_000;

/// The work between two think-0 periods, ns.
const THINK0_BUSY_NS: u64 = 300;

/// The predictive governor at think 0, as the guest driver sets it: a measured halt cost of
/// 120 us, and a ceiling of two halt costs.
#[divan::bench]
fn predictive_think0(bencher: Bencher) {
    let mut gov = Predictive::new(ValidPredictiveParams::DEFAULT);
    gov.set_halt_cost_ns(120_000);
    gov.set_ceiling_ns(240_000);
    bench_periods(bencher, gov, &think0_periods(), THINK0_BUSY_NS);
}

/// Linux's governor through the same seam and the same periods.
#[divan::bench]
fn linux_think0(bencher: Bencher) {
    bench_periods(bencher, Governor::new(ValidParams::DEFAULT), &think0_periods(), THINK0_BUSY_NS);
}
