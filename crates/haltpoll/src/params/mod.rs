//! The governor's parameters: the five numbers Linux exposes as
//! `/sys/module/haltpoll/parameters/guest_halt_poll_*`, plus the choice of shrink rule and of
//! what counts as block time.
//!
//! [`Params`] is the one declaration of them. Everything that carries them elsewhere derives
//! from it: the command-line options (feature `clap`), the JSON form (feature `serde`, with the
//! kernel's names), and the fixed layout a VMM writes into guest memory ([`RawParams`], with
//! zerocopy's traits under feature `zerocopy`). [`Params::validate`] is the one check; its
//! result, [`ValidParams`], is what [`Governor::new`](crate::Governor::new) takes.
//!
//! This module holds the declaration and the check; `cli` (feature `clap`) the command-line
//! helpers (the one duration parser, `parse_ns`), and [`wire`] the layout a VMM hands its guest.

use core::fmt;

#[cfg(feature = "clap")]
pub mod cli;
pub mod wire;

#[cfg(feature = "clap")]
use cli::legacy_shrink_flag;
#[cfg(feature = "clap")]
pub use cli::parse_ns;
pub use wire::RawParams;

/// How a window is shrunk after a long halt.
///
/// `#[repr(u32)]` with fixed values, because [`RawParams`] carries it across the VMM-guest
/// boundary as a number.
///
/// ```
/// use haltpoll::ShrinkRule;
/// assert_eq!(ShrinkRule::from_raw(ShrinkRule::Legacy as u32), Some(ShrinkRule::Legacy));
/// assert_eq!(ShrinkRule::from_raw(7), None);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize), serde(rename_all = "kebab-case"))]
#[repr(u32)]
pub enum ShrinkRule {
    /// Linux 6.9 and later: divide by `shrink`, and a result below `grow_start` becomes 0.
    ///
    /// Without the floor a window decays through ever smaller values (25 us, 12 us, 6 us, ...)
    /// that are too short to catch anything yet still cost a poll before every halt.
    #[default]
    #[cfg_attr(feature = "clap", value(help = "Linux 6.9 and later: a window shrunk below grow_start becomes 0"))]
    Floor = 0,
    /// Before Linux 6.9: divide by `shrink` and keep whatever is left. Kept for comparison.
    #[cfg_attr(feature = "clap", value(help = "Before Linux 6.9: no floor"))]
    Legacy = 1,
}

crate::repr_u32_enum!(ShrinkRule { Floor, Legacy });

/// What the governor counts as `block_ns` after a HALT that followed a timed-out POLL.
///
/// `#[repr(u32)]` with fixed values, because [`RawParams`] carries it across the VMM-guest
/// boundary as a number. As an option value and in JSON it is `halt-only` or `poll-and-halt`.
///
/// ```
/// use haltpoll::BlockTime;
/// assert_eq!(BlockTime::from_raw(BlockTime::PollAndHalt as u32), Some(BlockTime::PollAndHalt));
/// assert_eq!(BlockTime::PollAndHalt.to_string(), "poll-and-halt");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize), serde(rename_all = "kebab-case"))]
#[repr(u32)]
pub enum BlockTime {
    /// Linux: only the halt. A steady idle period `d` with window `W < d <= 2W` halts for
    /// `d - W <= W`, which neither grows nor shrinks the window, so every such period polls `W`
    /// in vain and then halts anyway (the blind spot; `replay` shows it).
    #[default]
    #[cfg_attr(feature = "clap", value(help = "Only the halt, as Linux"))]
    HaltOnly = 0,
    /// The poll and the halt: the whole idle period, as KVM's host-side halt polling measures
    /// it. A steady period up to the ceiling then grows the window until a poll catches it.
    /// Through [`IdleGovernor::reflect`](crate::IdleGovernor::reflect), less the halt's own
    /// wake-up where the caller reports one ([`Outcome::halt_wake_ns`](crate::Outcome::halt_wake_ns)): the
    /// period until its wakeup, which is what a poll would have had to outlast. A slow wake-up
    /// counted in would push periods below the ceiling past it (the window-0 trap).
    /// Not a Linux parameter: ours, for the guest and for threads.
    #[cfg_attr(feature = "clap", value(help = "The timed-out poll and the halt"))]
    PollAndHalt = 1,
}

crate::repr_u32_enum!(BlockTime { HaltOnly, PollAndHalt });

impl BlockTime {
    /// The name reports and the command line use: `halt-only` or `poll-and-halt`.
    pub const fn name(self) -> &'static str {
        match self {
            BlockTime::HaltOnly => "halt-only",
            BlockTime::PollAndHalt => "poll-and-halt",
        }
    }
}

impl fmt::Display for BlockTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How wide the window's numbers are, and what a grow does when its product does not fit.
///
/// Linux keeps the parameters as `unsigned int` and computes a grow as
/// `poll_limit_ns * guest_halt_poll_grow` stored into an `unsigned int`: a product of 2^32 or
/// more wraps (6e9 becomes 1705032704), and a wrapped result below `grow_start` becomes
/// `grow_start`. [`WindowArithmetic::Kernel`] does exactly that, so a replay predicts such a
/// guest; [`WindowArithmetic::Saturating`] is ours, 64 bits wide, a product too large for
/// them stays at the largest value and then meets the ceiling.
///
/// `#[repr(u32)]` with fixed values, because [`RawParams`] carries it across the VMM-guest
/// boundary as a number. As an option value and in JSON it is `kernel` or `saturating`.
/// [`kernel_window_wrap`](crate::governor::kernel_window_wrap) finds where the kernel's wraps.
///
/// ```
/// use haltpoll::{governor::kernel_window_wrap, Params, WindowArithmetic};
/// // The kernel's window wraps back to grow_start; ours saturates.
/// let kernel = Params { guest_halt_poll_ns: 4_000_000_000, grow_start: 3_000_000_000, ..Params::DEFAULT };
/// let wrap = kernel_window_wrap(&kernel).unwrap();
/// assert_eq!((wrap.from, wrap.product, wrap.to), (3_000_000_000, 6_000_000_000, 3_000_000_000));
/// assert_eq!(WindowArithmetic::from_raw(1), Some(WindowArithmetic::Saturating));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize), serde(rename_all = "kebab-case"))]
#[repr(u32)]
pub enum WindowArithmetic {
    /// Linux: 32-bit parameters and window; a grow's product wraps modulo 2^32.
    #[default]
    #[cfg_attr(feature = "clap", value(help = "Linux: 32-bit parameters, a grow's product wraps modulo 2^32"))]
    Kernel = 0,
    /// Ours: 64-bit parameters and window; a grow's product saturates.
    #[cfg_attr(feature = "clap", value(help = "Ours: 64-bit parameters, a grow's product saturates"))]
    Saturating = 1,
}

crate::repr_u32_enum!(WindowArithmetic { Kernel, Saturating });

impl WindowArithmetic {
    /// The name reports and the command line use: `kernel` or `saturating`.
    pub const fn name(self) -> &'static str {
        match self {
            WindowArithmetic::Kernel => "kernel",
            WindowArithmetic::Saturating => "saturating",
        }
    }
}

impl fmt::Display for WindowArithmetic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
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
///
/// With feature `clap` it is a group of command-line options (`#[command(flatten)]`):
/// `--guest-halt-poll-ns`, `--grow` (or `--guest-halt-poll-grow`), `--grow-start`, `--shrink`,
/// `--no-shrink`, `--legacy-shrink` and `--block-time halt-only|poll-and-halt`, defaulting to
/// Linux's values (`Params::with_defaults` sets others). With feature `serde` it serializes
/// with the kernel's names (`guest_halt_poll_grow`, ...) plus `shrink_rule` and `block_time`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "clap", derive(clap::Args), command(next_help_heading = "Governor parameters"))]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Params {
    /// The ceiling of the poll window, in ns (`guest_halt_poll_ns`). A halt longer than this
    /// means polling was waste and the window shrinks.
    #[cfg_attr(
        feature = "clap",
        arg(long, value_name = "NS", default_value_t = Params::DEFAULT.guest_halt_poll_ns, value_parser = parse_ns,
            help = "Ceiling of the poll window, ns or with a unit: 400us (guest_halt_poll_ns)")
    )]
    pub guest_halt_poll_ns: u64,
    /// Factor by which the window grows after a halt a longer poll would have caught
    /// (`guest_halt_poll_grow`).
    #[cfg_attr(
        feature = "clap",
        arg(long, visible_alias = "guest-halt-poll-grow", value_name = "FACTOR",
            default_value_t = Params::DEFAULT.grow, help = "Factor by which the window grows (guest_halt_poll_grow)")
    )]
    #[cfg_attr(feature = "serde", serde(rename = "guest_halt_poll_grow"))]
    pub grow: u32,
    /// The first non-zero window, in ns; since Linux 6.9 also the floor below which a shrunk
    /// window becomes 0 (`guest_halt_poll_grow_start`).
    #[cfg_attr(
        feature = "clap",
        arg(long, visible_alias = "guest-halt-poll-grow-start", value_name = "NS",
            default_value_t = Params::DEFAULT.grow_start, value_parser = parse_ns,
            help = "First non-zero window and shrink floor, ns or with a unit (guest_halt_poll_grow_start); at least 1")
    )]
    #[cfg_attr(feature = "serde", serde(rename = "guest_halt_poll_grow_start"))]
    pub grow_start: u64,
    /// Divisor by which the window shrinks after a halt longer than the ceiling; 0 resets it to 0
    /// (`guest_halt_poll_shrink`).
    #[cfg_attr(
        feature = "clap",
        arg(long, visible_alias = "guest-halt-poll-shrink", value_name = "DIVISOR",
            default_value_t = Params::DEFAULT.shrink,
            help = "Divisor by which the window shrinks; 0 resets it to 0 (guest_halt_poll_shrink)")
    )]
    #[cfg_attr(feature = "serde", serde(rename = "guest_halt_poll_shrink"))]
    pub shrink: u32,
    /// Whether a long halt may shrink the window at all (`guest_halt_poll_allow_shrink`).
    #[cfg_attr(
        feature = "clap",
        arg(long = "no-shrink", action = clap::ArgAction::SetFalse,
            help = "Never shrink the window (guest_halt_poll_allow_shrink=N)")
    )]
    #[cfg_attr(feature = "serde", serde(rename = "guest_halt_poll_allow_shrink"))]
    pub allow_shrink: bool,
    /// Which shrink rule to follow; see [`ShrinkRule`].
    #[cfg_attr(
        feature = "clap",
        arg(long = "legacy-shrink", action = clap::ArgAction::SetTrue, value_parser = legacy_shrink_flag(),
            help = "Shrink as Linux did before 6.9: no floor at grow_start")
    )]
    pub shrink_rule: ShrinkRule,
    /// What counts as the block time of a halt; see [`BlockTime`].
    #[cfg_attr(
        feature = "clap",
        arg(long, value_name = "RULE", value_enum, default_value_t = Params::DEFAULT.block_time,
            help = "What counts as the block time of a halt after a timed-out poll: the halt alone \
                    (Linux), or the poll and the halt (ours: no blind spot for periods between W and 2W)")
    )]
    pub block_time: BlockTime,
    /// How wide the window's numbers are; see [`WindowArithmetic`].
    #[cfg_attr(
        feature = "clap",
        arg(long = "window-arithmetic", value_name = "RULE", value_enum,
            default_value_t = Params::DEFAULT.arithmetic,
            help = "The window's arithmetic: the kernel's 32 bits, where a grow's product wraps (Linux), \
                    or 64 bits that saturate (ours)")
    )]
    pub arithmetic: WindowArithmetic,
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
        arithmetic: WindowArithmetic::Kernel,
    };

    /// Returns the parameters as [`ValidParams`] if they make a working controller, or says
    /// what is wrong. This is the only check: everything that runs a governor takes
    /// [`ValidParams`].
    pub const fn validate(self) -> Result<ValidParams, ParamError> {
        if self.grow_start == 0 {
            return Err(ParamError::ZeroGrowStart);
        }
        if let WindowArithmetic::Kernel = self.arithmetic {
            let kernel_max = u32::MAX as u64;
            if self.guest_halt_poll_ns > kernel_max {
                return Err(ParamError::BeyondKernel { name: "guest_halt_poll_ns", value: self.guest_halt_poll_ns });
            }
            if self.grow_start > kernel_max {
                return Err(ParamError::BeyondKernel { name: "guest_halt_poll_grow_start", value: self.grow_start });
            }
        }
        Ok(ValidParams(self))
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

/// [`Params`] that passed [`Params::validate`]. Every way to get one goes through that check
/// (deserializing one too) or starts from valid parameters ([`ValidParams::DEFAULT`],
/// [`ValidParams::with_block_time`]), so a function that takes it (such as
/// [`Governor::new`](crate::Governor::new)) need not check again. It reads
/// like the parameters it holds (it dereferences to [`Params`]).
///
/// ```
/// use haltpoll::{Params, ValidParams};
/// let valid: ValidParams = Params { grow: 4, ..Params::DEFAULT }.validate()?;
/// assert_eq!(valid.grow, 4);
/// assert!(ValidParams::try_from(Params { grow_start: 0, ..Params::DEFAULT }).is_err());
/// # Ok::<(), haltpoll::ParamError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "Params", into = "Params")
)]
pub struct ValidParams(Params);

impl ValidParams {
    /// [`Params::DEFAULT`], valid.
    pub const DEFAULT: ValidParams = match Params::DEFAULT.validate() {
        Ok(valid) => valid,
        Err(_) => panic!("Linux's defaults are valid"),
    };

    /// The parameters.
    pub const fn params(&self) -> &Params {
        &self.0
    }

    /// The parameters, by value.
    pub const fn into_inner(self) -> Params {
        self.0
    }

    /// The parameters with the block time changed: which block time is counted never makes
    /// parameters invalid.
    ///
    /// ```
    /// use haltpoll::{BlockTime, ValidParams};
    /// let p = ValidParams::DEFAULT.with_block_time(BlockTime::PollAndHalt);
    /// assert_eq!(p.block_time, BlockTime::PollAndHalt);
    /// ```
    pub const fn with_block_time(self, block_time: BlockTime) -> ValidParams {
        ValidParams(Params { block_time, ..self.0 })
    }

    /// Wraps parameters without checking them, for this crate's own tests of what invalid
    /// ones would do.
    #[cfg(test)]
    pub(crate) const fn unchecked(params: Params) -> ValidParams {
        ValidParams(params)
    }
}

/// The conversions every checked-parameters wrapper has (`Valid(Params)`, made only by a
/// `validate` that returns it): the defaults, read access to the parameters, checking on
/// conversion, and unwrapping. One definition for Linux's parameters and the predictive
/// governor's.
macro_rules! checked_wrapper {
    ($valid:ident($params:ident), $error:ty) => {
        impl Default for $valid {
            fn default() -> Self {
                $valid::DEFAULT
            }
        }

        impl core::ops::Deref for $valid {
            type Target = $params;

            fn deref(&self) -> &$params {
                &self.0
            }
        }

        impl TryFrom<$params> for $valid {
            type Error = $error;

            fn try_from(params: $params) -> Result<$valid, $error> {
                params.validate()
            }
        }

        impl From<$valid> for $params {
            fn from(valid: $valid) -> $params {
                valid.0
            }
        }
    };
}
pub(crate) use checked_wrapper;

checked_wrapper!(ValidParams(Params), ParamError);

/// A parameter set that cannot work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParamError {
    /// `grow_start == 0`: a window at 0 would grow to `0 * grow = 0` and never poll again.
    ZeroGrowStart,
    /// Under [`WindowArithmetic::Kernel`], a parameter beyond the kernel's `unsigned int`.
    BeyondKernel {
        /// The kernel's name of the parameter.
        name: &'static str,
        /// The value given.
        value: u64,
    },
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamError::ZeroGrowStart => f.write_str(
                "grow_start must be at least 1 ns: a window of 0 grows to 0 * grow = 0, so \
                 polling could never start again (the Linux default is 50000)",
            ),
            ParamError::BeyondKernel { name, value } => write!(
                f,
                "{name}={value} is beyond what the kernel can hold, a 32-bit unsigned int: give 0 to {}",
                u32::MAX
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
        assert_eq!(p.validate().map(Params::from), Ok(p));
        assert!(!p.is_on_off());
    }

    #[test]
    fn zero_grow_start_is_rejected_with_a_reason() {
        let err = Params { grow_start: 0, ..Params::DEFAULT }.validate().unwrap_err();
        assert_eq!(err, ParamError::ZeroGrowStart);
        assert!(err.to_string().contains("grow_start"));
    }

    #[test]
    fn the_kernel_holds_32_bits() {
        let max = u64::from(u32::MAX);
        assert!(Params { guest_halt_poll_ns: max, grow_start: max, ..Params::DEFAULT }.validate().is_ok());
        let err = Params { guest_halt_poll_ns: max + 1, ..Params::DEFAULT }.validate().unwrap_err();
        assert_eq!(err, ParamError::BeyondKernel { name: "guest_halt_poll_ns", value: max + 1 });
        assert!(err.to_string().contains("give 0 to 4294967295"), "{err}");
        let err = Params { grow_start: 1 << 40, ..Params::DEFAULT }.validate().unwrap_err();
        assert!(err.to_string().starts_with("guest_halt_poll_grow_start=1099511627776 is beyond"), "{err}");
        let wide = Params { guest_halt_poll_ns: u64::MAX, arithmetic: WindowArithmetic::Saturating, ..Params::DEFAULT };
        assert!(wide.validate().is_ok(), "64 bits are ours to use");
    }

    #[test]
    fn on_off_and_polling_off_are_allowed() {
        let on_off = Params { guest_halt_poll_ns: 2_400_000, grow_start: 24_000_000, ..Params::DEFAULT };
        assert!(on_off.validate().unwrap().is_on_off());
        let off = Params { guest_halt_poll_ns: 0, ..Params::DEFAULT };
        assert!(off.validate().is_ok());
    }
}
