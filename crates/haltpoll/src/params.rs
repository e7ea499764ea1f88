//! The governor's parameters: the five numbers Linux exposes as
//! `/sys/module/haltpoll/parameters/guest_halt_poll_*`, plus the choice of shrink rule and of
//! what counts as block time.
//!
//! [`Params`] is the one declaration of them. Everything that carries them elsewhere derives
//! from it: the command-line options (feature `clap`), the JSON form (feature `serde`, with the
//! kernel's names), and the fixed layout a VMM writes into guest memory ([`RawParams`], with
//! zerocopy's traits under feature `zerocopy`). [`Params::validate`] is the one check; its
//! result, [`ValidParams`], is what [`Governor::new`](crate::Governor::new) takes.

use core::fmt;
use core::ops::Deref;

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
        arg(long, value_name = "NS", default_value_t = Params::DEFAULT.guest_halt_poll_ns,
            help = "Ceiling of the poll window, ns (guest_halt_poll_ns)")
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
            default_value_t = Params::DEFAULT.grow_start,
            help = "First non-zero window and shrink floor, ns (guest_halt_poll_grow_start); at least 1")
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
}

/// `--legacy-shrink` is a flag, but the field it sets is a [`ShrinkRule`]: clap parses the
/// flag's `true`/`false` and this maps it.
#[cfg(feature = "clap")]
fn legacy_shrink_flag() -> impl clap::builder::TypedValueParser<Value = ShrinkRule> {
    use clap::builder::TypedValueParser;
    clap::builder::BoolishValueParser::new().map(|legacy| if legacy { ShrinkRule::Legacy } else { ShrinkRule::Floor })
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

    /// Returns the parameters as [`ValidParams`] if they make a working controller, or says
    /// what is wrong. This is the only check: everything that runs a governor takes
    /// [`ValidParams`].
    pub const fn validate(self) -> Result<ValidParams, ParamError> {
        if self.grow_start == 0 {
            return Err(ParamError::ZeroGrowStart);
        }
        Ok(ValidParams(self))
    }

    /// Whether the controller is on/off rather than adaptive (`grow_start > guest_halt_poll_ns`).
    pub fn is_on_off(&self) -> bool {
        self.grow_start > self.guest_halt_poll_ns
    }

    /// `cmd` with the defaults of the options [`Params`] adds to it replaced by `defaults`'s
    /// values, for a command whose governor starts from other parameters than Linux's. Call
    /// it on the command `Params` was flattened into (or from a hand-written
    /// [`clap::Args::augment_args`]).
    ///
    /// ```
    /// # #[cfg(feature = "clap")] {
    /// use clap::{Args, Command, FromArgMatches};
    /// use haltpoll::Params;
    /// let mine = Params { grow_start: 25_000, ..Params::DEFAULT };
    /// let cmd = Params::with_defaults(Params::augment_args(Command::new("bench")), &mine);
    /// let matches = cmd.try_get_matches_from(["bench", "--grow", "4"])?;
    /// let params = Params::from_arg_matches(&matches)?;
    /// assert_eq!(params, Params { grow: 4, ..mine });
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "clap")]
    pub fn with_defaults(cmd: clap::Command, defaults: &Params) -> clap::Command {
        cmd.mut_arg("guest_halt_poll_ns", |a| a.default_value(defaults.guest_halt_poll_ns.to_string()))
            .mut_arg("grow", |a| a.default_value(defaults.grow.to_string()))
            .mut_arg("grow_start", |a| a.default_value(defaults.grow_start.to_string()))
            .mut_arg("shrink", |a| a.default_value(defaults.shrink.to_string()))
            .mut_arg("allow_shrink", |a| a.default_value(defaults.allow_shrink.to_string()))
            .mut_arg("shrink_rule", |a| a.default_value((defaults.shrink_rule == ShrinkRule::Legacy).to_string()))
            .mut_arg("block_time", |a| a.default_value(defaults.block_time.name()))
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

impl Default for ValidParams {
    fn default() -> Self {
        ValidParams::DEFAULT
    }
}

impl Deref for ValidParams {
    type Target = Params;

    fn deref(&self) -> &Params {
        &self.0
    }
}

impl TryFrom<Params> for ValidParams {
    type Error = ParamError;

    fn try_from(params: Params) -> Result<ValidParams, ParamError> {
        params.validate()
    }
}

impl From<ValidParams> for Params {
    fn from(valid: ValidParams) -> Params {
        valid.0
    }
}

/// [`Params`] in a fixed C layout of integers without padding, for a VMM to write into guest
/// memory and the guest to read (the `haltpoll-abi` crate embeds it in its run configuration).
///
/// [`Params`] itself cannot be that layout: its `bool` is one byte, so any `#[repr(C)]` order of
/// its fields leaves padding, which zerocopy (rightly) refuses to turn into bytes, and a `bool`
/// or an enum read from memory another program wrote is undefined behaviour unless checked. So
/// the wire form is this struct, next to [`Params`] so that adding a parameter touches this
/// file only; [`RawParams::new`] and [`RawParams::params`] destructure [`Params`] completely, so
/// a new field does not compile until it is carried here too. The enums travel as their
/// `repr(u32)` values. With feature `zerocopy` it derives zerocopy's byte traits.
///
/// ```
/// use haltpoll::{params::RawParams, Params};
/// let params = Params { guest_halt_poll_ns: 400_000, ..Params::DEFAULT };
/// assert_eq!(RawParams::new(&params).params(), Some(params));
/// let garbage = RawParams { allow_shrink: 2, ..RawParams::new(&params) };
/// assert_eq!(garbage.params(), None);
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(
    feature = "zerocopy",
    derive(zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable, zerocopy::KnownLayout)
)]
pub struct RawParams {
    /// [`Params::guest_halt_poll_ns`].
    pub guest_halt_poll_ns: u64,
    /// [`Params::grow_start`].
    pub grow_start: u64,
    /// [`Params::grow`].
    pub grow: u32,
    /// [`Params::shrink`].
    pub shrink: u32,
    /// [`Params::allow_shrink`]: 1 or 0.
    pub allow_shrink: u32,
    /// [`Params::shrink_rule`], as its `repr(u32)` value.
    pub shrink_rule: u32,
    /// [`Params::block_time`], as its `repr(u32)` value.
    pub block_time: u32,
    /// Reserved, 0 (keeps the size a multiple of 8 without hidden padding).
    pub reserved: u32,
}

impl RawParams {
    /// `params` in the fixed layout.
    pub const fn new(params: &Params) -> RawParams {
        let Params { guest_halt_poll_ns, grow, grow_start, shrink, allow_shrink, shrink_rule, block_time } = *params;
        RawParams {
            guest_halt_poll_ns,
            grow_start,
            grow,
            shrink,
            allow_shrink: allow_shrink as u32,
            shrink_rule: shrink_rule as u32,
            block_time: block_time as u32,
            reserved: 0,
        }
    }

    /// The parameters, if every field holds a value its type has (not yet
    /// [validated](Params::validate): the guest reports invalid ones as a refusal to load).
    pub const fn params(&self) -> Option<Params> {
        let allow_shrink = match self.allow_shrink {
            0 => false,
            1 => true,
            _ => return None,
        };
        let (Some(shrink_rule), Some(block_time)) =
            (ShrinkRule::from_raw(self.shrink_rule), BlockTime::from_raw(self.block_time))
        else {
            return None;
        };
        let RawParams { guest_halt_poll_ns, grow_start, grow, shrink, .. } = *self;
        Some(Params { guest_halt_poll_ns, grow, grow_start, shrink, allow_shrink, shrink_rule, block_time })
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
    fn raw_parameters_round_trip_and_garbage_is_refused() {
        for params in [
            Params::DEFAULT,
            Params { allow_shrink: false, shrink_rule: ShrinkRule::Legacy, grow: 7, ..Params::DEFAULT },
            Params { block_time: BlockTime::PollAndHalt, ..Params::DEFAULT },
        ] {
            assert_eq!(RawParams::new(&params).params(), Some(params));
        }
        let bad = RawParams { shrink_rule: 9, ..RawParams::new(&Params::DEFAULT) };
        assert_eq!(bad.params(), None);
        let bad = RawParams { allow_shrink: 2, ..RawParams::new(&Params::DEFAULT) };
        assert_eq!(bad.params(), None);
        let bad = RawParams { block_time: 2, ..RawParams::new(&Params::DEFAULT) };
        assert_eq!(bad.params(), None);
    }

    #[test]
    fn on_off_and_polling_off_are_allowed() {
        let on_off = Params { guest_halt_poll_ns: 2_400_000, grow_start: 24_000_000, ..Params::DEFAULT };
        assert!(on_off.validate().unwrap().is_on_off());
        let off = Params { guest_halt_poll_ns: 0, ..Params::DEFAULT };
        assert!(off.validate().is_ok());
    }

    /// The option spellings the command line has always had, and the kernel's long names.
    #[cfg(feature = "clap")]
    #[test]
    fn options_keep_their_spellings() {
        use clap::{Args, Command, FromArgMatches};
        let parse = |args: &[&str]| {
            let cmd = Params::augment_args(Command::new("t"));
            let matches = cmd.try_get_matches_from(core::iter::once("t").chain(args.iter().copied())).unwrap();
            Params::from_arg_matches(&matches).unwrap()
        };
        assert_eq!(parse(&[]), Params::DEFAULT);
        let all = [
            "--guest-halt-poll-ns",
            "400000",
            "--grow",
            "3",
            "--grow-start",
            "1000",
            "--shrink",
            "4",
            "--no-shrink",
            "--legacy-shrink",
            "--block-time",
            "poll-and-halt",
        ];
        let expected = Params {
            guest_halt_poll_ns: 400_000,
            grow: 3,
            grow_start: 1_000,
            shrink: 4,
            allow_shrink: false,
            shrink_rule: ShrinkRule::Legacy,
            block_time: BlockTime::PollAndHalt,
        };
        assert_eq!(parse(&all), expected);
        let kernel =
            ["--guest-halt-poll-grow", "3", "--guest-halt-poll-grow-start", "1000", "--guest-halt-poll-shrink", "4"];
        assert_eq!(parse(&kernel), Params { grow: 3, grow_start: 1_000, shrink: 4, ..Params::DEFAULT });
    }
}
