//! Three contenders on one trace at several CPU budgets: Linux's best setting of
//! [`tune`]'s grid within the budget, the predictive governor given that budget,
//! and the clairvoyant bound.

use std::path::PathBuf;

use haltpoll::predictive::PredictiveParamError;
use haltpoll::replay::Summary;
use haltpoll::{ParamError, Params, PredictiveParams};

use crate::trace::Trace;
use crate::tune::{self, CpuTime, Grid, Outcome};

/// The three contenders at one budget.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AtBudget {
    /// The CPU budget, a share of the trace's CPU time.
    pub budget: f64,
    /// Linux's best grid setting within the budget and what it did.
    pub linux: Outcome,
    /// The predictive governor's parameters (its per-CPU budget).
    pub predictive_params: PredictiveParams,
    /// What the predictive governor did.
    pub predictive: Summary,
    /// The clairvoyant bound.
    pub clairvoyant: Summary,
}

impl AtBudget {
    /// How much of the distance from Linux's best to the bound the predictive governor covers
    /// (negative if it catches fewer than Linux's best), `None` when there is no distance.
    pub fn gap_closed(&self) -> Option<f64> {
        let (l, p, c) = (self.linux.summary.poll_hits, self.predictive.poll_hits, self.clairvoyant.poll_hits);
        (c > l).then(|| (p as f64 - l as f64) / (c - l) as f64)
    }

    /// The predictive governor's wakeups without an exit over Linux's best's, `None` if Linux's
    /// best caught none.
    pub fn ratio_to_linux(&self) -> Option<f64> {
        let l = self.linux.summary.poll_hits;
        (l > 0).then(|| self.predictive.poll_hits as f64 / l as f64)
    }
}

/// One trace's comparison.
#[derive(Clone, Debug, PartialEq)]
pub struct Compared {
    /// The trace's path, as given.
    pub path: PathBuf,
    /// The trace.
    pub trace: Trace,
    /// The CPU time the shares are of.
    pub cpu: CpuTime,
    /// Per budget, in the order given.
    pub budgets: Vec<AtBudget>,
}

/// Why a trace cannot be compared on.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    /// The trace holds no idle period.
    #[error("{}: the trace has no idle periods to compare on", path.display())]
    NoPeriods {
        /// The trace.
        path: PathBuf,
    },
    /// Every idle period is 0 ns long.
    #[error("{}: the trace covers no time (all its idle periods are 0 ns long)", path.display())]
    NoTime {
        /// The trace.
        path: PathBuf,
    },
    /// A setting of the grid is invalid.
    #[error(transparent)]
    Grid(#[from] ParamError),
    /// The predictive governor's parameters are invalid at a budget.
    #[error(transparent)]
    Predictive(#[from] PredictiveParamError),
}

/// Compares the three on `trace` (read from `path`) at each of `budgets`; `cpus` overrides the
/// CPUs a perf trace covers, and `predictive` gives the predictive governor's parameters but
/// its budget.
pub fn compare(
    path: PathBuf,
    trace: Trace,
    budgets: &[f64],
    cpus: Option<u32>,
    predictive: PredictiveParams,
) -> Result<Compared, CompareError> {
    if trace.periods.is_empty() {
        return Err(CompareError::NoPeriods { path });
    }
    let cpu = tune::cpu_time(&trace, cpus);
    if cpu.ns == 0 {
        return Err(CompareError::NoTime { path });
    }
    let grid = Grid {
        ceilings_ns: Grid::CEILINGS_NS.to_vec(),
        grow_starts_ns: Grid::GROW_STARTS_NS.to_vec(),
        allow_shrink: vec![true, false],
        base: Params::DEFAULT,
    };
    let outcomes = tune::evaluate(&trace, &grid.valid_settings()?, || {});
    let front = tune::front(&outcomes);
    let mut rows = Vec::new();
    for &budget in budgets {
        let best = tune::recommend(&outcomes, &front, cpu, budget).expect("polling off fits every budget");
        let predictive_params = tune::predictive_at(predictive, &trace, cpu, budget);
        let summary = trace.replay(predictive_params.validate()?, |_, _| {}).summary;
        let clairvoyant = tune::clairvoyant(&trace, (budget * cpu.ns as f64) as u64);
        rows.push(AtBudget { budget, linux: outcomes[best], predictive_params, predictive: summary, clairvoyant });
    }
    Ok(Compared { path, trace, cpu, budgets: rows })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::Format;

    #[test]
    fn the_bound_is_never_beaten_and_polling_off_fits_no_budget() {
        let trace = Trace::single_cpu(Format::Text, [1_000, 2_000, 500_000, 3_000, 1_000_000, 4_000].repeat(20));
        let c = compare("t".into(), trace, &[0.0, 0.01, 0.1], None, PredictiveParams::DEFAULT).unwrap();
        assert_eq!(c.budgets.len(), 3);
        for b in &c.budgets {
            assert!(b.clairvoyant.poll_hits >= b.linux.summary.poll_hits, "{b:?}");
            // The predictive governor starts with a horizon's worth of credit, more than its
            // budget of a trace this short: the bound for what it spent.
            let spent = b.predictive.poll_ns.max((b.budget * c.cpu.ns as f64) as u64);
            assert!(tune::clairvoyant(&c.trace, spent).poll_hits >= b.predictive.poll_hits, "{b:?}");
        }
        assert_eq!(c.budgets[0].linux.params.guest_halt_poll_ns, 0, "a budget of 0 keeps polling off");
        assert_eq!(c.budgets[0].ratio_to_linux(), None);
    }

    #[test]
    fn empty_and_timeless_traces_say_so() {
        let none = compare("e".into(), Trace::single_cpu(Format::Text, []), &[0.1], None, PredictiveParams::DEFAULT);
        assert_eq!(none.unwrap_err().to_string(), "e: the trace has no idle periods to compare on");
        let zero =
            compare("z".into(), Trace::single_cpu(Format::Text, [0, 0]), &[0.1], None, PredictiveParams::DEFAULT);
        assert_eq!(zero.unwrap_err().to_string(), "z: the trace covers no time (all its idle periods are 0 ns long)");
    }
}
