//! The seam both governors share: what a caller gets at idle entry ([`Decision`]), what it
//! reports when the idle period ends ([`Outcome`]), the trait [`IdleGovernor`] with those two
//! calls, and [`AnyGovernor`], either governor chosen at run time. A caller (the guest's driver,
//! the thread parker, [`replay`](crate::replay)) written against them runs either governor.

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

/// A governor behind the seam both share: [`IdleGovernor::select`] once at idle entry,
/// [`IdleGovernor::reflect`] once when the idle period ends. [`Governor`], [`Predictive`] and
/// [`AnyGovernor`] (either, chosen at run time) implement it, and
/// [`Replay`](crate::replay::Replay) runs any of them.
///
/// Linux's [`Governor`] keeps its own inherent `select` / `reflect`, one state at a time as the
/// kernel's; through this trait (call it as `IdleGovernor::select(&mut gov, ..)`) it is driven
/// exactly as they would be: a poll (if it polled), then a halt (if the period ended in one).
pub trait IdleGovernor {
    /// Picks what to do at idle entry. `busy_ns`: how long the CPU ran since its last idle period
    /// ended (Linux's governor ignores it).
    fn select(&mut self, latency_req: LatencyReq, busy_ns: u64) -> Decision;

    /// Learns from the idle period the last select began; returns what that did to Linux's
    /// window ([`Adjustment::Unchanged`] for the predictive governor, which has none).
    fn reflect(&mut self, outcome: &Outcome) -> Adjustment;

    /// The poll window a select would now pick without a latency requirement, ns (Linux's
    /// `poll_limit_ns`; the predictive governor's planned window).
    fn window_ns(&self) -> u64;
}

impl IdleGovernor for Governor {
    fn select(&mut self, latency_req: LatencyReq, _busy_ns: u64) -> Decision {
        match Governor::select(self, latency_req) {
            IdleState::Halt => Decision::Halt,
            IdleState::Poll => Decision::Poll { window_ns: self.poll_time_ns(u64::MAX) },
        }
    }

    fn reflect(&mut self, outcome: &Outcome) -> Adjustment {
        // Linux polls only with a window above 0 (or forced, until woken): it polled exactly
        // when it caught the wakeup or spent time polling.
        if outcome.caught || outcome.poll_ns > 0 {
            Governor::reflect(self, IdleState::Poll, outcome.poll_ns, !outcome.caught);
        }
        if outcome.caught {
            Adjustment::Unchanged
        } else {
            Governor::reflect(self, IdleState::Halt, outcome.idle_ns.saturating_sub(outcome.poll_ns), false)
        }
    }

    fn window_ns(&self) -> u64 {
        self.poll_limit_ns()
    }
}

impl IdleGovernor for Predictive {
    fn select(&mut self, latency_req: LatencyReq, busy_ns: u64) -> Decision {
        Predictive::select(self, latency_req, busy_ns)
    }

    fn reflect(&mut self, outcome: &Outcome) -> Adjustment {
        Predictive::reflect(self, outcome);
        Adjustment::Unchanged
    }

    fn window_ns(&self) -> u64 {
        self.planned().window_ns()
    }
}

/// Either governor, chosen at run time.
///
/// ```
/// use haltpoll::select::{AnyGovernor, Decision, IdleGovernor, Outcome};
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
}
