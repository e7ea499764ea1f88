//! The seam both governors share: what a caller asks at idle entry ([`Decision`]), what it
//! reports when the idle period ends ([`Outcome`]), and [`AnyGovernor`], either governor behind
//! those two calls.
//!
//! Linux's [`Governor`] keeps its own `select` / `reflect` (the kernel's shape, one state at a
//! time); [`AnyGovernor`] drives it through one whole idle period per call pair, exactly as its
//! own seams would, so a caller (the guest's driver, the thread parker) can run either governor
//! with one idle loop.

use crate::driver::IdleState;
use crate::governor::{Adjustment, Governor, LatencyReq};
use crate::params::ValidParams;
use crate::predictive::{Predictive, ValidPredictiveParams};

/// What to do when the CPU runs out of work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Decision {
    /// Halt until woken.
    Halt,
    /// Poll (POLLING set) for up to `window_ns`, then halt until woken. `u64::MAX` means poll
    /// until woken (a latency requirement forbids halting; a kernel caps it at its tick).
    Poll {
        /// The longest the poll may last, ns.
        window_ns: u64,
    },
    /// Halt with a timer set to fire `timer_ns` after idle entry; when it fires and no wakeup
    /// has come, poll for up to `window_ns` from then, then halt until woken. A wakeup before
    /// the timer ends the halt as usual (cancel the timer). The governor has already allowed for
    /// the halt's wake cost: it fires the timer that much before it wants polling to begin.
    TimerThenPoll {
        /// When the timer fires, ns after idle entry.
        timer_ns: u64,
        /// The longest the poll after the timer may last, ns.
        window_ns: u64,
    },
}

impl Decision {
    /// The poll window, ns (0 for [`Decision::Halt`]).
    pub const fn window_ns(&self) -> u64 {
        match *self {
            Decision::Halt => 0,
            Decision::Poll { window_ns } | Decision::TimerThenPoll { window_ns, .. } => window_ns,
        }
    }
}

/// How an idle period went, as the caller measured it, for [`AnyGovernor::reflect`] and
/// [`Predictive::reflect`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Outcome {
    /// From idle entry until the CPU ran again, ns: polls, halts and a halt's wake-up included.
    pub idle_ns: u64,
    /// Of that, the time spent polling, ns.
    pub poll_ns: u64,
    /// Whether the wakeup found the CPU polling (no IPI needed, no exit after it).
    pub caught: bool,
    /// When the period ended in a halt (`!caught`): how much of `idle_ns` the halt's own wake-up
    /// took (the exit, the IPI, the re-entry), as the caller measured or estimated it. That time
    /// is not idle time a poll could have caught: the predictive governor subtracts it, so a
    /// halt's cost never makes the next periods look longer (no window-0 trap). Ignored when
    /// `caught`; Linux's governor ignores it (the kernel has no such input).
    pub halt_wake_ns: u64,
}

impl Outcome {
    /// The idle period's length as a poll would have seen it: `idle_ns`, less the halt's wake
    /// cost when it ended in a halt.
    pub const fn wakeup_ns(&self) -> u64 {
        if self.caught { self.idle_ns } else { self.idle_ns.saturating_sub(self.halt_wake_ns) }
    }
}

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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize), serde(rename_all = "kebab-case"))]
pub enum GovernorKind {
    /// Linux's haltpoll governor: grow the window after a short halt, shrink it after a long one.
    #[default]
    Linux,
    /// Ours: predicts the next idle period from recent ones and polls within a CPU budget.
    Predictive,
}

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

/// Either governor of one CPU, behind [`Decision`] and [`Outcome`].
///
/// ```
/// use haltpoll::select::{AnyGovernor, Decision, Outcome};
/// use haltpoll::{ValidParams, LATENCY_ANY};
/// let mut gov = AnyGovernor::new(ValidParams::DEFAULT.into());
/// assert_eq!(gov.select(LATENCY_ANY, 0), Decision::Halt); // Linux's window starts at 0
/// gov.reflect(&Outcome { idle_ns: 30_000, ..Outcome::default() });
/// assert_eq!(gov.select(LATENCY_ANY, 0), Decision::Poll { window_ns: 50_000 });
/// ```
#[derive(Clone, Copy, Debug)]
pub enum AnyGovernor {
    /// Linux's, with the decision it made last (its reflect needs to know whether it polled).
    Linux(Governor, Decision),
    /// The predictive governor.
    Predictive(Predictive),
}

impl AnyGovernor {
    /// A governor as every CPU starts.
    pub const fn new(params: GovernorParams) -> AnyGovernor {
        match params {
            GovernorParams::Linux(p) => AnyGovernor::Linux(Governor::new(p), Decision::Halt),
            GovernorParams::Predictive(p) => AnyGovernor::Predictive(Predictive::new(p)),
        }
    }

    /// Picks what to do at idle entry. `busy_ns` is how long the CPU ran since its last idle
    /// period ended (Linux's governor ignores it).
    pub fn select(&mut self, latency_req: LatencyReq, busy_ns: u64) -> Decision {
        match self {
            AnyGovernor::Linux(gov, last) => {
                *last = match gov.select(latency_req) {
                    IdleState::Halt => Decision::Halt,
                    IdleState::Poll => Decision::Poll { window_ns: gov.poll_time_ns(u64::MAX) },
                };
                *last
            }
            AnyGovernor::Predictive(gov) => gov.select(latency_req, busy_ns),
        }
    }

    /// Learns from the idle period [`AnyGovernor::select`] began. For Linux's governor: the poll
    /// (if any) and then the halt (if it ended in one), as its own reflect takes them; what that
    /// did to its window is returned.
    pub fn reflect(&mut self, outcome: &Outcome) -> Adjustment {
        match self {
            AnyGovernor::Linux(gov, last) => {
                if matches!(last, Decision::Poll { .. }) {
                    gov.reflect(IdleState::Poll, outcome.poll_ns, !outcome.caught);
                }
                if outcome.caught {
                    Adjustment::Unchanged
                } else {
                    gov.reflect(IdleState::Halt, outcome.idle_ns.saturating_sub(outcome.poll_ns), false)
                }
            }
            AnyGovernor::Predictive(gov) => {
                gov.reflect(outcome);
                Adjustment::Unchanged
            }
        }
    }
}
