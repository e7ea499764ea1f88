//! The seam every governor implements, as Linux's `struct cpuidle_governor`: what a caller
//! gets at idle entry ([`Decision`]), what it reports when the idle period ends ([`Outcome`]),
//! and the trait [`IdleGovernor`] with those two calls. A caller written against them (the
//! guest's driver, the thread parker, [`replay`](crate::replay)) runs any governor.
//!
//! This module imports no governor: [`Governor`](crate::Governor) and
//! [`Predictive`](crate::Predictive) implement the trait in their own modules, and
//! [`dispatch`](crate::dispatch) picks one at run time.

/// A latency requirement in ns: the longest exit latency the CPU may tolerate right now.
///
/// `0` means nobody tolerates any exit latency (poll only); [`LATENCY_ANY`] means no constraint.
pub type LatencyReq = u64;

/// No latency constraint.
pub const LATENCY_ANY: LatencyReq = u64::MAX;

/// What [`Governor::reflect`](crate::Governor::reflect) did to the window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Adjustment {
    /// The window stayed as it was.
    Unchanged,
    /// A longer poll would have caught the last halt: the window grew.
    Grew {
        /// Window before, ns.
        from: u64,
        /// Window after, ns.
        to: u64,
    },
    /// The last halt was longer than the ceiling: the window shrank (possibly to 0).
    Shrank {
        /// Window before, ns.
        from: u64,
        /// Window after, ns.
        to: u64,
    },
}

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

/// How an idle period went, as the caller measured it, for [`IdleGovernor::reflect`].
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
    /// is not idle time a poll could have caught: the predictive governor and Linux's governor
    /// under [`BlockTime::PollAndHalt`](crate::BlockTime::PollAndHalt) subtract it, so a halt's
    /// own wake-up never makes the next periods look longer. Ignored when `caught`; Linux's
    /// rule ([`BlockTime::HaltOnly`](crate::BlockTime::HaltOnly)) ignores it, as the kernel has
    /// no such input.
    pub halt_wake_ns: u64,
    /// What ended the period: the wakeup (as every period of a CPU's idle loop ends), or a
    /// deadline of the caller's (a timed park) before any wakeup came.
    pub end: End,
}

/// What ended a wait: one poll or halt of an idle period, or the period itself
/// ([`Outcome::end`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum End {
    /// The wakeup the CPU waited for (NEED_RESCHED, a token, a message).
    #[default]
    Wakeup,
    /// The governor's timer ([`Decision::TimerThenPoll`]): it ends a halt, never a period.
    Timer,
    /// The caller's deadline, before any wakeup: whatever the CPU waited for comes later, if
    /// at all.
    Deadline {
        /// Whether the deadline ended a poll (true), which was then the period's last state,
        /// or a halt (false).
        polling: bool,
    },
}

impl Outcome {
    /// The idle period's length as a poll would have seen it: `idle_ns`, less the halt's wake
    /// cost when it ended in a halt.
    pub const fn wakeup_ns(&self) -> u64 {
        if self.caught { self.idle_ns } else { self.idle_ns.saturating_sub(self.halt_wake_ns) }
    }
}

/// A governor behind the seam: [`IdleGovernor::select`] once at idle entry,
/// [`IdleGovernor::reflect`] once when the idle period ends. [`Governor`], [`Predictive`] and
/// [`AnyGovernor`] (either, chosen at run time) implement it, and
/// [`Replay`](crate::replay::Replay) runs any of them.
///
/// Linux's [`Governor`] keeps its own inherent `select` / `reflect`, one state at a time as the
/// kernel's; through this trait (call it as `IdleGovernor::select(&mut gov, ..)`) it is driven
/// exactly as they would be: a poll (if it polled), then a halt (if the period ended in one).
///
/// [`Governor`]: crate::Governor
/// [`Predictive`]: crate::Predictive
/// [`AnyGovernor`]: crate::AnyGovernor
pub trait IdleGovernor {
    /// Whether [`reflect`](Self::reflect) needs the period timed from idle entry to exit (the
    /// busy time before it, the whole period, how long a caught poll took). False for a
    /// governor that learns from each state's own residency, as Linux's does: the
    /// [`idle`](crate::idle) loop then reads no clock at entry and none after a poll that caught
    /// its wakeup, and `idle_ns` is the sum of the states' residencies, as the kernel measures.
    const TIMES_PERIODS: bool = true;

    /// Picks what to do at idle entry. `busy_ns`: how long the CPU ran since its last idle period
    /// ended (Linux's governor ignores it).
    fn select(&mut self, latency_req: LatencyReq, busy_ns: u64) -> Decision;

    /// Learns from the idle period the last select began; returns what that did to Linux's
    /// window ([`Adjustment::Unchanged`] for the predictive governor, which has none).
    fn reflect(&mut self, outcome: &Outcome) -> Adjustment;

    /// The poll window a select would now pick without a latency requirement, ns (Linux's
    /// `poll_limit_ns`; the predictive governor's planned window).
    fn window_ns(&self) -> u64;

    /// What one halt costs, ns, as the machine measures it (the [`idle`](crate::idle) loop's
    /// mechanism, before each reflect). A governor that budgets polling net of the halts it
    /// saves takes it; Linux's ignores it.
    fn set_halt_cost_ns(&mut self, ns: u64) {
        let _ = ns;
    }

    /// How long after it is due a timer gets the CPU running, ns, as the machine measures it
    /// (before each reflect): a governor that halts with a timer aims it that much early.
    fn set_timer_wake_ns(&mut self, ns: u64) {
        let _ = ns;
    }
}
