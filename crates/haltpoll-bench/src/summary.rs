//! From repetitions to the tables, the same way for every benchmark: runs of variants at think
//! times, repeated; per-repetition ratios against a baseline variant; medians over the
//! repetitions; targets checked on those medians, each with the unit of what it compares.
//!
//! A ratio between two variants is taken within each repetition, where their runs went one
//! after the other, and the table shows the median of those: another build that starts on the
//! machine between two repetitions then moves both sides of a ratio, not one.

use serde::Serialize;

pub use crate::quantile::quantile;

/// One run of a benchmark: one variant at one think time in one repetition.
pub trait Repetition {
    /// What the benchmark compares.
    type Variant: Copy + PartialEq;
    /// The variant it ran.
    fn variant(&self) -> Self::Variant;
    /// The think time it ran at, ns.
    fn think_ns(&self) -> u64;
    /// Which repetition it belongs to.
    fn repetition(&self) -> u32;
}

/// The median (the lower middle for an even count: the nearest rank); `None` for no values.
pub fn median(values: &[f64]) -> Option<f64> {
    quantile(values, 0.5)
}

/// Every (think time, variant) that ran, in the order the runs first show them.
pub fn cells<R: Repetition>(runs: &[R]) -> Vec<(u64, R::Variant)> {
    let mut cells = Vec::new();
    for r in runs {
        let cell = (r.think_ns(), r.variant());
        if !cells.contains(&cell) {
            cells.push(cell);
        }
    }
    cells
}

/// The runs of `variant` at `think_ns`, in run order: its repetitions.
pub fn repetitions<R: Repetition>(runs: &[R], think_ns: u64, variant: R::Variant) -> impl Iterator<Item = &R> {
    runs.iter().filter(move |r| r.think_ns() == think_ns && r.variant() == variant)
}

/// `metric(run of variant) / metric(run of baseline)` in every repetition that ran both at
/// `think_ns`, in run order. A ratio that is not a number (a baseline of 0, a metric that is
/// NaN because its run measured nothing) says nothing about the variant and is left out.
pub fn ratios<R: Repetition>(
    runs: &[R],
    think_ns: u64,
    variant: R::Variant,
    baseline: R::Variant,
    metric: impl Fn(&R) -> f64,
) -> Vec<f64> {
    repetitions(runs, think_ns, variant)
        .filter_map(|r| {
            let base = repetitions(runs, think_ns, baseline).find(|b| b.repetition() == r.repetition())?;
            Some(metric(r) / metric(base))
        })
        .filter(|ratio| ratio.is_finite())
        .collect()
}

/// What a target's value is, for showing it and its limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Unit {
    /// One variant's figure over another's.
    Ratio,
    /// A part of a whole, 0 to 1.
    Share,
    /// A time, ns.
    Ns,
}

/// Which side of its limit a target's value must stay.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Bound {
    /// The value may not exceed the limit.
    AtMost(f64),
    /// The value may not fall below the limit.
    AtLeast(f64),
}

/// A target of a benchmark at one think time, checked on the median over the repetitions.
#[derive(Clone, Debug, Serialize)]
pub struct Target<V> {
    /// Think time, ns.
    pub think_ns: u64,
    /// The variant it is about.
    pub variant: V,
    /// What is measured, in words.
    pub what: &'static str,
    /// The unit of `value`, `by_repetition` and `limit`.
    pub unit: Unit,
    /// The value: the median over repetitions.
    pub value: f64,
    /// The value in each repetition.
    pub by_repetition: Vec<f64>,
    /// The bound.
    pub limit: f64,
    /// Whether the value must stay at most (`true`) or at least (`false`) the bound.
    pub at_most: bool,
    /// Whether the value is within the bound.
    pub met: bool,
}

impl<V> Target<V> {
    /// Checks `bound` on the median of `by_repetition`; `None` if no repetition measured it
    /// (a variant it compares with did not run).
    pub fn check(
        think_ns: u64,
        variant: V,
        what: &'static str,
        unit: Unit,
        by_repetition: Vec<f64>,
        bound: Bound,
    ) -> Option<Target<V>> {
        let value = median(&by_repetition)?;
        let (limit, at_most, met) = match bound {
            Bound::AtMost(limit) => (limit, true, value <= limit),
            Bound::AtLeast(limit) => (limit, false, value >= limit),
        };
        Some(Target { think_ns, variant, what, unit, value, by_repetition, limit, at_most, met })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy, Debug, PartialEq)]
    enum V {
        Base,
        A,
        B,
    }

    struct R(V, u64, u32, f64);

    impl Repetition for R {
        type Variant = V;
        fn variant(&self) -> V {
            self.0
        }
        fn think_ns(&self) -> u64 {
            self.1
        }
        fn repetition(&self) -> u32 {
            self.2
        }
    }

    #[test]
    fn medians_take_the_lower_middle_and_need_a_value() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[7.0]), Some(7.0));
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.0), "even: the lower middle");
        assert_eq!(median(&[f64::NAN, 1.0, 2.0]), Some(2.0), "NaN sorts last");
    }

    #[test]
    fn cells_keep_the_order_the_runs_came_in() {
        let runs = [R(V::A, 10, 1, 0.0), R(V::Base, 0, 1, 0.0), R(V::A, 10, 2, 0.0), R(V::B, 0, 1, 0.0)];
        assert_eq!(cells(&runs), [(10, V::A), (0, V::Base), (0, V::B)]);
        assert_eq!(repetitions(&runs, 10, V::A).map(|r| r.2).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(cells::<R>(&[]), []);
    }

    #[test]
    fn ratios_pair_runs_of_the_same_repetition_and_think_time() {
        let runs = [
            R(V::Base, 0, 1, 50.0),
            R(V::A, 0, 1, 75.0),
            R(V::Base, 0, 2, 100.0),
            R(V::A, 0, 2, 110.0),
            R(V::A, 0, 3, 120.0), // no baseline in repetition 3
            R(V::Base, 5, 3, 1.0),
        ];
        assert_eq!(ratios(&runs, 0, V::A, V::Base, |r| r.3), [1.5, 1.1]);
        assert_eq!(ratios(&runs, 0, V::Base, V::A, |r| r.3), [50.0 / 75.0, 100.0 / 110.0], "either way round");
        assert_eq!(ratios(&runs, 0, V::B, V::Base, |r| r.3), [] as [f64; 0], "B never ran");
        assert_eq!(ratios(&runs, 5, V::Base, V::Base, |r| r.3), [1.0]);
    }

    #[test]
    fn ratios_that_are_not_numbers_are_left_out() {
        let runs = [R(V::Base, 0, 1, 0.0), R(V::A, 0, 1, 3.0), R(V::Base, 0, 2, 2.0), R(V::A, 0, 2, f64::NAN)];
        assert_eq!(ratios(&runs, 0, V::A, V::Base, |r| r.3), [] as [f64; 0]);
        let runs = [R(V::Base, 0, 1, 0.0), R(V::A, 0, 1, 0.0), R(V::Base, 0, 2, 4.0), R(V::A, 0, 2, 2.0)];
        assert_eq!(ratios(&runs, 0, V::A, V::Base, |r| r.3), [0.5], "0/0 is left out, 2/4 kept");
    }

    #[test]
    fn targets_check_the_median_on_either_side() {
        let t = Target::check(0, V::A, "x / base", Unit::Ratio, vec![2.5, 1.5, 1.9], Bound::AtMost(2.0)).unwrap();
        assert_eq!((t.value, t.limit, t.at_most, t.met), (1.9, 2.0, true, true));
        assert_eq!(t.by_repetition, [2.5, 1.5, 1.9], "in run order");
        let t = Target::check(0, V::A, "share", Unit::Share, vec![0.9, 0.96], Bound::AtLeast(0.95)).unwrap();
        assert_eq!((t.value, t.at_most, t.met), (0.9, false, false), "lower middle of two: 0.9 misses");
        let t = Target::check(0, V::A, "ns", Unit::Ns, vec![1_000.0], Bound::AtMost(1_000.0)).unwrap();
        assert!(t.met, "the limit itself is within");
        assert!(Target::check(0, V::A, "none", Unit::Ratio, vec![], Bound::AtMost(1.0)).is_none());
    }
}
