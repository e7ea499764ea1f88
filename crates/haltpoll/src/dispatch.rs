//! Which governor, chosen at run time: [`GovernorKind`] (its name), [`GovernorParams`] (it
//! with its parameters) and [`AnyGovernor`] (either, behind the [`IdleGovernor`] seam). The one
//! module that knows every governor, as Linux's governor list: the seam and the governors know
//! nothing of it.

use crate::governor::Governor;
use crate::params::ValidParams;
use crate::predictive::{Predictive, ValidPredictiveParams};
use crate::select::{Adjustment, Decision, IdleGovernor, LatencyReq, Outcome};

/// Which governor, with its parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize), serde(tag = "governor", rename_all = "kebab-case"))]
pub enum GovernorParams {
    /// Linux's haltpoll governor.
    Linux(ValidParams),
    /// The predictive governor.
    Predictive(ValidPredictiveParams),
}

impl From<ValidParams> for GovernorParams {
    fn from(params: ValidParams) -> GovernorParams {
        GovernorParams::Linux(params)
    }
}

impl From<ValidPredictiveParams> for GovernorParams {
    fn from(params: ValidPredictiveParams) -> GovernorParams {
        GovernorParams::Predictive(params)
    }
}

/// The governor's name, as `--governor` spells it.
///
/// `#[repr(u32)]` with fixed values, so that a VMM can hand the choice to its guest as a number.
///
/// ```
/// use haltpoll::GovernorKind;
/// assert_eq!(GovernorKind::from_raw(GovernorKind::Predictive as u32), Some(GovernorKind::Predictive));
/// assert_eq!(GovernorKind::from_raw(2), None);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize), serde(rename_all = "kebab-case"))]
#[repr(u32)]
pub enum GovernorKind {
    /// Linux's haltpoll governor: grow the window after a short halt, shrink it after a long one.
    #[default]
    Linux = 0,
    /// Ours: predicts the next idle period from recent ones and polls within a CPU budget.
    Predictive = 1,
}

crate::repr_u32_enum!(GovernorKind { Linux, Predictive });

impl GovernorKind {
    /// The name reports use: `linux` or `predictive`.
    pub const fn name(self) -> &'static str {
        match self {
            GovernorKind::Linux => "linux",
            GovernorKind::Predictive => "predictive",
        }
    }
}

impl GovernorParams {
    /// Which governor these parameters are for.
    pub const fn kind(&self) -> GovernorKind {
        match self {
            GovernorParams::Linux(_) => GovernorKind::Linux,
            GovernorParams::Predictive(_) => GovernorKind::Predictive,
        }
    }
}

/// Either governor, chosen at run time.
///
/// ```
/// use haltpoll::{AnyGovernor, Decision, IdleGovernor, Outcome};
/// use haltpoll::{ValidParams, LATENCY_ANY};
/// let mut gov = AnyGovernor::new(ValidParams::DEFAULT.into());
/// assert_eq!(gov.select(LATENCY_ANY, 0), Decision::Halt); // Linux's window starts at 0
/// gov.reflect(&Outcome { idle_ns: 30_000, ..Outcome::default() });
/// assert_eq!(gov.select(LATENCY_ANY, 0), Decision::Poll { window_ns: 50_000 });
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnyGovernor {
    /// Linux's.
    Linux(Governor),
    /// The predictive governor.
    Predictive(Predictive),
}

impl AnyGovernor {
    /// A governor as every CPU starts.
    pub const fn new(params: GovernorParams) -> AnyGovernor {
        match params {
            GovernorParams::Linux(p) => AnyGovernor::Linux(Governor::new(p)),
            GovernorParams::Predictive(p) => AnyGovernor::Predictive(Predictive::new(p)),
        }
    }
}

impl IdleGovernor for AnyGovernor {
    fn select(&mut self, latency_req: LatencyReq, busy_ns: u64) -> Decision {
        match self {
            AnyGovernor::Linux(gov) => IdleGovernor::select(gov, latency_req, busy_ns),
            AnyGovernor::Predictive(gov) => IdleGovernor::select(gov, latency_req, busy_ns),
        }
    }

    fn reflect(&mut self, outcome: &Outcome) -> Adjustment {
        match self {
            AnyGovernor::Linux(gov) => IdleGovernor::reflect(gov, outcome),
            AnyGovernor::Predictive(gov) => IdleGovernor::reflect(gov, outcome),
        }
    }

    fn window_ns(&self) -> u64 {
        match self {
            AnyGovernor::Linux(gov) => gov.window_ns(),
            AnyGovernor::Predictive(gov) => gov.window_ns(),
        }
    }

    fn set_halt_cost_ns(&mut self, ns: u64) {
        if let AnyGovernor::Predictive(gov) = self {
            gov.set_halt_cost_ns(ns);
        }
    }

    fn set_timer_wake_ns(&mut self, ns: u64) {
        if let AnyGovernor::Predictive(gov) = self {
            gov.set_timer_wake_ns(ns);
        }
    }
}
