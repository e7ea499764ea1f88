//! The governor's parameters: the five numbers Linux exposes as
//! `/sys/module/haltpoll/parameters/guest_halt_poll_*`, plus the choice of shrink rule.

use core::fmt;

/// How a window is shrunk after a long halt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum ShrinkRule {
    /// Linux 6.9 and later: divide by `shrink`, and a result below `grow_start` becomes 0.
    ///
    /// Without the floor a window decays through ever smaller values (25 us, 12 us, 6 us, ...)
    /// that are too short to catch anything yet still cost a poll before every halt.
    #[default]
    Floor,
    /// Before Linux 6.9: divide by `shrink` and keep whatever is left. Kept for comparison.
    Legacy,
}

/// What the governor counts as `block_ns` after a HALT that followed a timed-out POLL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum BlockTime {
    /// Linux: only the halt. A steady idle period `d` with window `W < d <= 2W` halts for
    /// `d - W <= W`, which neither grows nor shrinks the window, so every such period polls `W`
    /// in vain and then halts anyway (the blind spot; `replay` shows it).
    #[default]
    HaltOnly,
    /// The poll and the halt: the whole idle period, as KVM's host-side halt polling measures
    /// it. A steady period up to the ceiling then grows the window until a poll catches it.
    /// Not a Linux parameter: ours, for the guest and for threads.
    PollAndHalt,
}

/// Governor parameters, with the Linux defaults from [`Params::DEFAULT`].
///
/// Build one with struct-update syntax and check it with [`Params::validate`]:
///
/// ```
/// use haltpoll::Params;
/// let params = Params { guest_halt_poll_ns: 400_000, ..Params::DEFAULT }.validate()?;
/// assert_eq!(params.grow_start, 50_000);
/// # Ok::<(), haltpoll::ParamError>(())
/// ```
///
/// Two settings look odd but are allowed on purpose:
/// - `guest_halt_poll_ns == 0` switches guest polling off: the window can never grow.
/// - `grow_start > guest_halt_poll_ns` makes the controller on/off: a grow jumps straight to the
///   ceiling and any shrink falls below `grow_start`, so to 0. A published tuning guide for
///   SAP HANA uses this on purpose (2.4 ms ceiling, 24 ms start).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Params {
    /// The ceiling of the poll window, in ns (`guest_halt_poll_ns`). A halt longer than this
    /// means polling was waste and the window shrinks.
    pub guest_halt_poll_ns: u64,
    /// Factor by which the window grows after a halt a longer poll would have caught.
    pub grow: u32,
    /// The first non-zero window, in ns; since Linux 6.9 also the floor below which a shrunk
    /// window becomes 0.
    pub grow_start: u64,
    /// Divisor by which the window shrinks after a halt longer than the ceiling; 0 resets it to 0.
    pub shrink: u32,
    /// Whether a long halt may shrink the window at all (`guest_halt_poll_allow_shrink`).
    pub allow_shrink: bool,
    /// Which shrink rule to follow; see [`ShrinkRule`].
    pub shrink_rule: ShrinkRule,
    /// What counts as the block time of a halt; see [`BlockTime`].
    pub block_time: BlockTime,
}

impl Params {
    /// The Linux defaults: 200 us ceiling, grow x2 from 50 us, shrink /2, shrinking allowed,
    /// the current (6.9+) shrink rule, only the halt counted as block time.
    pub const DEFAULT: Params = Params {
        guest_halt_poll_ns: 200_000,
        grow: 2,
        grow_start: 50_000,
        shrink: 2,
        allow_shrink: true,
        shrink_rule: ShrinkRule::Floor,
        block_time: BlockTime::HaltOnly,
    };

    /// Returns the parameters if they make a working controller, or says what is wrong.
    pub fn validate(self) -> Result<Params, ParamError> {
        if self.grow_start == 0 {
            return Err(ParamError::ZeroGrowStart);
        }
        Ok(self)
    }

    /// Whether the controller is on/off rather than adaptive (`grow_start > guest_halt_poll_ns`).
    pub fn is_on_off(&self) -> bool {
        self.grow_start > self.guest_halt_poll_ns
    }
}

impl Default for Params {
    fn default() -> Self {
        Params::DEFAULT
    }
}

/// A parameter set that cannot work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParamError {
    /// `grow_start == 0`: a window at 0 would grow to `0 * grow = 0` and never poll again.
    ZeroGrowStart,
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamError::ZeroGrowStart => f.write_str(
                "grow_start must be at least 1 ns: a window of 0 grows to 0 * grow = 0, so \
                 polling could never start again (the Linux default is 50000)",
            ),
        }
    }
}

impl core::error::Error for ParamError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_linux_defaults() {
        let p = Params::default();
        assert_eq!(p.guest_halt_poll_ns, 200_000);
        assert_eq!(p.grow, 2);
        assert_eq!(p.grow_start, 50_000);
        assert_eq!(p.shrink, 2);
        assert!(p.allow_shrink);
        assert_eq!(p.shrink_rule, ShrinkRule::Floor);
        assert_eq!(p.block_time, BlockTime::HaltOnly);
        assert_eq!(p.validate(), Ok(p));
        assert!(!p.is_on_off());
    }

    #[test]
    fn zero_grow_start_is_rejected_with_a_reason() {
        let err = Params { grow_start: 0, ..Params::DEFAULT }.validate().unwrap_err();
        assert_eq!(err, ParamError::ZeroGrowStart);
        assert!(err.to_string().contains("grow_start"));
    }

    #[test]
    fn on_off_and_polling_off_are_allowed() {
        let on_off = Params { guest_halt_poll_ns: 2_400_000, grow_start: 24_000_000, ..Params::DEFAULT };
        assert!(on_off.validate().unwrap().is_on_off());
        let off = Params { guest_halt_poll_ns: 0, ..Params::DEFAULT };
        assert!(off.validate().is_ok());
    }
}
