//! From runs to the table: repetitions pooled per (think time, variant), ratios to `spin`, and
//! the targets, all through the benchmarks' [`summary`](crate::summary).

use serde::Serialize;

use super::{Run, Variant};
use crate::summary::{self, Bound, Repetition, Unit, median, quantile, ratios};

/// A target of `bench threads`.
pub type Target = summary::Target<Variant>;

impl Repetition for Run {
    type Variant = Variant;
    fn variant(&self) -> Variant {
        self.variant
    }
    fn think_ns(&self) -> u64 {
        self.think_ns
    }
    fn repetition(&self) -> u32 {
        self.repetition
    }
}

/// One line of the table: a variant at a think time, all repetitions pooled.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// The variant.
    pub variant: Variant,
    /// The think time, ns.
    pub think_ns: u64,
    /// Measured wakes (round trips), all repetitions.
    pub wakes: u64,
    /// Median round trip, ns.
    pub round_trip_p50_ns: u64,
    /// Median one-way wake latency, ns.
    pub wake_p50_ns: u64,
    /// 99th percentile of the one-way wake latency, ns.
    pub wake_p99_ns: u64,
    /// Median wake latency of each repetition, ns: the spread between repetitions.
    pub wake_p50_by_repetition_ns: Vec<u64>,
    /// Median wake latency over `spin`'s at the same think time and repetition, the median
    /// over repetitions (None without spin runs).
    pub wake_vs_spin: Option<f64>,
    /// That ratio in each repetition.
    pub wake_vs_spin_by_repetition: Vec<f64>,
    /// The receiving thread's CPU time per wake, ns.
    pub cpu_per_wake_ns: u64,
    /// Share of wakes that needed no system call, where the variant can tell.
    pub no_syscall_share: Option<f64>,
    /// Receiver sleeps (voluntary context switches) per wake.
    pub sleeps_per_wake: Option<f64>,
}

/// Pools the runs into rows, ordered by think time then variant as they first appear.
pub fn summarize(runs: &[Run]) -> Vec<Row> {
    let mut cells = summary::cells(runs);
    cells.sort_by_key(|&(think, _)| think); // stable: variants keep their order
    cells
        .into_iter()
        .map(|(think, variant)| {
            let mut row = row(runs, think, variant);
            row.wake_vs_spin_by_repetition = ratios(runs, think, variant, Variant::Spin, wake_p50);
            row.wake_vs_spin = median(&row.wake_vs_spin_by_repetition);
            row
        })
        .collect()
}

/// The `q`-quantile of samples in ns, 0 for none (a cell that measured nothing).
fn quantile_ns(samples: &[u64], q: f64) -> u64 {
    let values: Vec<f64> = samples.iter().map(|&ns| ns as f64).collect();
    quantile(&values, q).map_or(0, |ns| ns as u64)
}

/// The median wake latency of one run, ns.
fn wake_p50(run: &Run) -> f64 {
    quantile_ns(&run.wake_ns, 0.5) as f64
}

/// The receiver's CPU time per wake in one run.
fn cpu_per_wake(run: &Run) -> f64 {
    run.waiter_cpu_ns as f64 / run.wake_ns.len().max(1) as f64
}

fn row(runs: &[Run], think_ns: u64, variant: Variant) -> Row {
    let cell: Vec<&Run> = summary::repetitions(runs, think_ns, variant).collect();
    let wake: Vec<u64> = cell.iter().flat_map(|r| r.wake_ns.iter().copied()).collect();
    let rtt: Vec<u64> = cell.iter().flat_map(|r| r.round_trip_ns.iter().copied()).collect();
    let wakes = wake.len() as u64;
    let per_wake = |total: u64| haltpoll::share(total, wakes);
    let no_syscall_wakes = cell.iter().map(|r| r.no_syscall_wakes).sum::<Option<u64>>();
    Row {
        variant,
        think_ns,
        wakes,
        round_trip_p50_ns: quantile_ns(&rtt, 0.5),
        wake_p50_ns: quantile_ns(&wake, 0.5),
        wake_p99_ns: quantile_ns(&wake, 0.99),
        wake_p50_by_repetition_ns: cell.iter().map(|r| wake_p50(r) as u64).collect(),
        wake_vs_spin: None,
        wake_vs_spin_by_repetition: Vec::new(),
        cpu_per_wake_ns: per_wake(cell.iter().map(|r| r.waiter_cpu_ns).sum()).round() as u64,
        no_syscall_share: no_syscall_wakes.map(|n| per_wake(n).min(1.0)),
        sleeps_per_wake: Some(per_wake(cell.iter().map(|r| r.waiter_sleeps).sum())),
    }
}

/// The targets, wherever the runs have the variants they compare, for the parker both as a
/// drop-in (`haltpoll`: `park()` until the message is there) and with `wait_until`:
/// - think times up to 100 us: the median wake latency at most 1.2x spin's, and at most 1/100
///   of std's;
/// - think times of 10 ms and more: the receiver's CPU per wake at most std's.
pub fn check_targets(runs: &[Run]) -> Vec<Target> {
    let mut thinks: Vec<u64> = runs.iter().map(|r| r.think_ns).collect();
    thinks.sort_unstable();
    thinks.dedup();
    let mut targets = Vec::new();
    // The parker as a drop-in, and with `wait_until`; what each target says, per variant.
    const CHECKED: [(Variant, [&str; 3]); 2] = [
        (
            Variant::Haltpoll,
            [
                "haltpoll wake p50 / spin wake p50",
                "haltpoll wake p50 / std wake p50",
                "haltpoll CPU per wake / std CPU per wake",
            ],
        ),
        (
            Variant::HaltpollWaitUntil,
            [
                "haltpoll-wait-until wake p50 / spin wake p50",
                "haltpoll-wait-until wake p50 / std wake p50",
                "haltpoll-wait-until CPU per wake / std CPU per wake",
            ],
        ),
    ];
    for think in thinks {
        for (variant, [vs_spin, vs_std, cpu]) in CHECKED {
            let mut add = |what, reference, metric: fn(&Run) -> f64, limit: f64| {
                let by_repetition = ratios(runs, think, variant, reference, metric);
                targets.extend(Target::check(think, variant, what, Unit::Ratio, by_repetition, Bound::AtMost(limit)));
            };
            if think <= 100_000 {
                add(vs_spin, Variant::Spin, wake_p50, 1.2);
                add(vs_std, Variant::Std, wake_p50, 1.0 / 100.0);
            }
            if think >= 10_000_000 {
                add(cpu, Variant::Std, cpu_per_wake, 1.0);
            }
        }
    }
    targets
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(variant: Variant, think_ns: u64, wake_ns: Vec<u64>, cpu: u64) -> Run {
        Run {
            variant,
            think_ns,
            repetition: 0,
            round_trip_ns: wake_ns.iter().map(|w| 2 * w).collect(),
            waiter_cpu_ns: cpu,
            waiter_sleeps: wake_ns.len() as u64,
            no_syscall_wakes: None,
            pinned: true,
            parker_stats: None,
            wake_ns,
        }
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(quantile_ns(&v, 0.5), 50);
        assert_eq!(quantile_ns(&v, 0.99), 99);
        assert_eq!(quantile_ns(&v, 1.0), 100);
        assert_eq!(quantile_ns(&[7], 0.99), 7);
        assert_eq!(quantile_ns(&[], 0.5), 0);
    }

    #[test]
    fn rows_pool_repetitions_and_compare_with_spin() {
        let mut second = run(Variant::Haltpoll, 0, vec![300, 300], 400);
        second.repetition = 1;
        let runs = vec![
            run(Variant::Spin, 0, vec![100, 100, 100, 100], 1000),
            run(Variant::Haltpoll, 0, vec![200, 200], 200),
            second,
        ];
        let rows = summarize(&runs);
        assert_eq!(rows.len(), 2);
        let hp = &rows[1];
        assert_eq!((hp.variant, hp.wakes), (Variant::Haltpoll, 4));
        assert_eq!(hp.wake_p50_ns, 200);
        assert_eq!(hp.wake_p99_ns, 300);
        assert_eq!(hp.wake_p50_by_repetition_ns, vec![200, 300]);
        assert_eq!(hp.round_trip_p50_ns, 400);
        assert_eq!(hp.cpu_per_wake_ns, 150);
        assert_eq!(hp.wake_vs_spin_by_repetition, vec![2.0], "repetition 1 has no spin run");
        assert_eq!(hp.wake_vs_spin, Some(2.0));
        assert_eq!(hp.no_syscall_share, None);
        assert_eq!(hp.sleeps_per_wake, Some(1.0));
    }

    #[test]
    fn targets_are_checked_where_the_variants_ran() {
        let runs = vec![
            run(Variant::Spin, 0, vec![100], 0),
            run(Variant::Haltpoll, 0, vec![115], 0),
            run(Variant::Std, 0, vec![40_000], 0),
            run(Variant::Haltpoll, 10_000_000, vec![1], 12_000),
            run(Variant::Std, 10_000_000, vec![1], 10_000),
            run(Variant::Haltpoll, 1_000_000, vec![1], 1),
        ];
        let t = check_targets(&runs);
        assert_eq!(t.len(), 3, "{t:?}");
        assert!(t[0].met && (t[0].value - 1.15).abs() < 1e-9);
        assert!(t[1].met);
        assert!(!t[2].met && t[2].think_ns == 10_000_000, "1.2x std's CPU misses 1.0x");
    }

    #[test]
    fn the_wait_until_variant_has_targets_of_its_own() {
        let runs = vec![
            run(Variant::Spin, 0, vec![100], 0),
            run(Variant::Haltpoll, 0, vec![150], 0),
            run(Variant::HaltpollWaitUntil, 0, vec![110], 0),
        ];
        let t = check_targets(&runs);
        let by: Vec<_> = t.iter().map(|t| (t.variant, t.what, t.met)).collect();
        assert_eq!(
            by,
            [
                (Variant::Haltpoll, "haltpoll wake p50 / spin wake p50", false),
                (Variant::HaltpollWaitUntil, "haltpoll-wait-until wake p50 / spin wake p50", true),
            ]
        );
    }
}
