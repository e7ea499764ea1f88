//! The predictive governor's parameters: declared once, with the command-line options (feature
//! `clap`) and the JSON form (feature `serde`) derived from the declaration, and checked once
//! into [`ValidPredictiveParams`], as [`Params`](crate::Params) does for Linux's.

use core::fmt;

/// Parts per million in a whole: a budget of 1% is 10 000 ppm.
pub const PPM: u32 = 1_000_000;

/// The longest ceiling: 1 s. Windows are kept in 32 bits internally, and no poll that long
/// pays.
pub const MAX_CEILING_NS: u64 = 1_000_000_000;

/// The longest budget horizon: 1000 s, which keeps the budget's arithmetic in 64 bits.
pub const MAX_HORIZON_NS: u64 = 1_000_000_000_000;

/// The largest halt cost: 10 ms. A halt that costs more than that is a machine to fix, not to
/// budget for; the bound keeps the budget's products in 64 bits.
pub const MAX_HALT_COST_NS: u64 = 10_000_000;

/// The predictive governor's parameters, with the defaults of [`PredictiveParams::DEFAULT`].
///
/// ```
/// use haltpoll::predictive::PredictiveParams;
/// let p = PredictiveParams { poll_budget_ppm: 20_000, ..PredictiveParams::DEFAULT }.validate()?;
/// assert_eq!(p.poll_ceiling_ns, 4_000_000);
/// # Ok::<(), haltpoll::predictive::PredictiveParamError>(())
/// ```
///
/// With feature `clap` it is a group of options (`#[command(flatten)]`): `--poll-budget 5%`,
/// `--poll-ceiling NS`, `--budget-horizon NS`, `--halt-cost NS`, `--no-timer-first`. With
/// feature `serde` it serializes with these field names (`halt_cost_ns` may be left out: 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "clap", derive(clap::Args), command(next_help_heading = "Predictive governor parameters"))]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct PredictiveParams {
    /// The share of the CPU's time polling may take, in parts per million (5% = 50 000), over
    /// any stretch of time: polling never spends more than this share of the time the CPU has
    /// run and idled so far (plus the horizon's worth it starts with), and never saves more than
    /// 4 horizons' worth for later (with a halt cost, the net of the halts its catches save, 64
    /// horizons' worth).
    #[cfg_attr(
        feature = "clap",
        arg(long = "poll-budget", value_name = "PERCENT", default_value = "5%", value_parser = parse_budget,
            help = "Share of each CPU's time polling may take (e.g. 5% or 0.5%), predictive governor")
    )]
    pub poll_budget_ppm: u32,
    /// The longest poll window, ns.
    #[cfg_attr(
        feature = "clap",
        arg(long = "poll-ceiling", value_name = "NS", default_value_t = PredictiveParams::DEFAULT.poll_ceiling_ns,
            help = "Longest poll window, ns, predictive governor")
    )]
    pub poll_ceiling_ns: u64,
    /// The budget's horizon, ns: a CPU starts with `poll_budget x horizon` of credit, and
    /// unspent budget is saved up to 4 times that, so polling may burst above the budget's rate
    /// for a while after a quiet stretch (with a halt cost, up to 64 horizons' worth, earned or
    /// given back by catches). The price of a catch is scaled to one horizon's worth.
    #[cfg_attr(
        feature = "clap",
        arg(long = "budget-horizon", value_name = "NS", default_value_t = PredictiveParams::DEFAULT.budget_horizon_ns,
            help = "Horizon of the budget, ns: a CPU starts with this long's worth of budget, and unspent \
                    budget is saved for at most 4 times that (64 with a halt cost)")
    )]
    pub budget_horizon_ns: u64,
    /// What one halt costs, ns: its exit, the waker's IPI and the wake-up. A caught wakeup saves
    /// one, so the budget counts polling net of it: `poll time - halt_cost x catches` may take
    /// at most the budget's share of the time. 0 budgets all polling (a share of the CPU's
    /// time); a guest that measures its halts updates it ([`Predictive::set_halt_cost_ns`]).
    ///
    /// [`Predictive::set_halt_cost_ns`]: super::Predictive::set_halt_cost_ns
    #[cfg_attr(
        feature = "clap",
        arg(long = "halt-cost", value_name = "NS", default_value_t = PredictiveParams::DEFAULT.halt_cost_ns,
            value_parser = crate::params::parse_ns,
            help = "What one halt costs (exit, IPI, wake), ns or with a unit: 50us; polling is budgeted net of \
                    the halts it saves (0: all polling counts), predictive governor")
    )]
    #[cfg_attr(feature = "serde", serde(default))]
    pub halt_cost_ns: u64,
    /// Whether periodic wakeups may be met by halting with a timer set just before the predicted
    /// wakeup and polling from there ([`Decision::TimerThenPoll`](crate::select::Decision)).
    #[cfg_attr(
        feature = "clap",
        arg(long = "no-timer-first", action = clap::ArgAction::SetFalse,
            help = "Never halt first with a timer and poll from just before a predicted wakeup")
    )]
    pub timer_first: bool,
}

impl PredictiveParams {
    /// 5% budget, 4 ms ceiling, 1 s horizon, no halt cost (all polling counts), timer-first on.
    pub const DEFAULT: PredictiveParams = PredictiveParams {
        poll_budget_ppm: 50_000,
        poll_ceiling_ns: 4_000_000,
        budget_horizon_ns: 1_000_000_000,
        halt_cost_ns: 0,
        timer_first: true,
    };

    /// Returns the parameters as [`ValidPredictiveParams`] if every one is in its range, or
    /// says which is not and what the range is.
    pub const fn validate(self) -> Result<ValidPredictiveParams, PredictiveParamError> {
        if self.poll_budget_ppm > PPM {
            return Err(PredictiveParamError::BudgetAboveWhole);
        }
        if self.poll_ceiling_ns > MAX_CEILING_NS {
            return Err(PredictiveParamError::CeilingTooLong);
        }
        if self.budget_horizon_ns == 0 || self.budget_horizon_ns > MAX_HORIZON_NS {
            return Err(PredictiveParamError::HorizonOutOfRange);
        }
        if self.halt_cost_ns > MAX_HALT_COST_NS {
            return Err(PredictiveParamError::HaltCostTooLarge);
        }
        Ok(ValidPredictiveParams(self))
    }

    /// The budget as a share (5% is 0.05), for reports.
    pub fn poll_budget(&self) -> f64 {
        f64::from(self.poll_budget_ppm) / f64::from(PPM)
    }
}

impl Default for PredictiveParams {
    fn default() -> Self {
        PredictiveParams::DEFAULT
    }
}

/// Parses a budget given in percent ("5%", "0.5%", or "5" for 5%) into ppm.
///
/// ```
/// use haltpoll::predictive::parse_budget;
/// assert_eq!(parse_budget("5%"), Ok(50_000));
/// assert_eq!(parse_budget("0.25"), Ok(2_500));
/// assert!(parse_budget("120%").is_err());
/// ```
pub fn parse_budget(text: &str) -> Result<u32, BudgetParseError> {
    let t = text.trim();
    let number = t.strip_suffix('%').unwrap_or(t).trim();
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() && frac.is_empty() || !digits(whole) || !digits(frac) || whole.len() > 3 {
        return Err(BudgetParseError);
    }
    // ppm = percent x 10 000: the whole percent, then up to four decimals.
    let mut ppm: u32 = 0;
    for b in whole.bytes() {
        ppm = ppm * 10 + u32::from(b - b'0');
    }
    ppm *= 10_000;
    let mut scale = 1_000;
    for b in frac.bytes() {
        if scale == 0 {
            if b != b'0' {
                return Err(BudgetParseError); // finer than 1 ppm
            }
            continue;
        }
        ppm += u32::from(b - b'0') * scale;
        scale /= 10;
    }
    if ppm > PPM { Err(BudgetParseError) } else { Ok(ppm) }
}

/// A budget that is not a percentage between 0 and 100.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BudgetParseError;

impl fmt::Display for BudgetParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a percentage between 0 and 100 with at most four decimals (e.g. 5% or 0.5%)")
    }
}

impl core::error::Error for BudgetParseError {}

/// [`PredictiveParams`] that passed [`PredictiveParams::validate`]; what
/// [`Predictive::new`](super::Predictive::new) takes. Reads like the parameters (it
/// dereferences to them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "PredictiveParams", into = "PredictiveParams")
)]
pub struct ValidPredictiveParams(PredictiveParams);

impl ValidPredictiveParams {
    /// [`PredictiveParams::DEFAULT`], valid.
    pub const DEFAULT: ValidPredictiveParams = match PredictiveParams::DEFAULT.validate() {
        Ok(valid) => valid,
        Err(_) => panic!("the defaults are valid"),
    };

    /// The parameters, by value.
    pub const fn into_inner(self) -> PredictiveParams {
        self.0
    }
}

crate::params::checked_wrapper!(ValidPredictiveParams(PredictiveParams), PredictiveParamError);

/// [`PredictiveParams`] in a fixed C layout of integers without padding, for a VMM to write into
/// guest memory and the guest to read, as [`RawParams`](crate::params::RawParams) does for
/// Linux's. [`RawPredictiveParams::new`] and [`RawPredictiveParams::params`] destructure
/// [`PredictiveParams`] completely, so a new field does not compile until it is carried here
/// too. With feature `zerocopy` it derives zerocopy's byte traits.
///
/// ```
/// use haltpoll::predictive::{PredictiveParams, RawPredictiveParams};
/// let params = PredictiveParams { poll_budget_ppm: 20_000, ..PredictiveParams::DEFAULT };
/// assert_eq!(RawPredictiveParams::new(&params).params(), Some(params));
/// let garbage = RawPredictiveParams { timer_first: 2, ..RawPredictiveParams::new(&params) };
/// assert_eq!(garbage.params(), None);
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(
    feature = "zerocopy",
    derive(zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable, zerocopy::KnownLayout)
)]
pub struct RawPredictiveParams {
    /// [`PredictiveParams::poll_ceiling_ns`].
    pub poll_ceiling_ns: u64,
    /// [`PredictiveParams::budget_horizon_ns`].
    pub budget_horizon_ns: u64,
    /// [`PredictiveParams::halt_cost_ns`].
    pub halt_cost_ns: u64,
    /// [`PredictiveParams::poll_budget_ppm`].
    pub poll_budget_ppm: u32,
    /// [`PredictiveParams::timer_first`]: 1 or 0.
    pub timer_first: u32,
}

impl RawPredictiveParams {
    /// `params` in the fixed layout.
    pub const fn new(params: &PredictiveParams) -> RawPredictiveParams {
        let PredictiveParams { poll_budget_ppm, poll_ceiling_ns, budget_horizon_ns, halt_cost_ns, timer_first } =
            *params;
        RawPredictiveParams {
            poll_ceiling_ns,
            budget_horizon_ns,
            halt_cost_ns,
            poll_budget_ppm,
            timer_first: timer_first as u32,
        }
    }

    /// The parameters, if every field holds a value its type has (not yet
    /// [validated](PredictiveParams::validate)).
    pub const fn params(&self) -> Option<PredictiveParams> {
        let timer_first = match self.timer_first {
            0 => false,
            1 => true,
            _ => return None,
        };
        let RawPredictiveParams { poll_ceiling_ns, budget_horizon_ns, halt_cost_ns, poll_budget_ppm, .. } = *self;
        Some(PredictiveParams { poll_budget_ppm, poll_ceiling_ns, budget_horizon_ns, halt_cost_ns, timer_first })
    }
}

/// A predictive parameter out of its range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PredictiveParamError {
    /// `poll_budget_ppm > 1 000 000`.
    BudgetAboveWhole,
    /// `poll_ceiling_ns > 1 s`.
    CeilingTooLong,
    /// `budget_horizon_ns` is 0 or above 1000 s.
    HorizonOutOfRange,
    /// `halt_cost_ns` is above 10 ms.
    HaltCostTooLarge,
}

impl fmt::Display for PredictiveParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PredictiveParamError::BudgetAboveWhole => f.write_str("the poll budget must be between 0% and 100%"),
            PredictiveParamError::CeilingTooLong => {
                f.write_str("the poll ceiling must be at most 1 s (1000000000 ns); the default is 4 ms")
            }
            PredictiveParamError::HorizonOutOfRange => {
                f.write_str("the budget horizon must be between 1 ns and 1000 s (1000000000000 ns); the default is 1 s")
            }
            PredictiveParamError::HaltCostTooLarge => f.write_str(
                "the halt cost must be at most 10 ms (10000000 ns); a few us on hardware KVM, 50-85 us nested",
            ),
        }
    }
}

impl core::error::Error for PredictiveParamError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_parse_to_ppm() {
        assert_eq!(parse_budget("5%"), Ok(50_000));
        assert_eq!(parse_budget(" 0.5 % "), Ok(5_000));
        assert_eq!(parse_budget("100"), Ok(PPM));
        assert_eq!(parse_budget("0"), Ok(0));
        assert_eq!(parse_budget(".25%"), Ok(2_500));
        assert_eq!(parse_budget("1.00010"), Ok(10_001));
        for bad in ["", "%", "abc", "-1%", "100.5", "1000", "1e2", "1.00001", "1..2"] {
            assert_eq!(parse_budget(bad), Err(BudgetParseError), "{bad:?}");
        }
    }

    #[test]
    fn ranges_are_checked_with_a_reason() {
        let bad = |p: PredictiveParams| p.validate().unwrap_err().to_string();
        assert!(bad(PredictiveParams { poll_budget_ppm: PPM + 1, ..PredictiveParams::DEFAULT }).contains("100%"));
        assert!(bad(PredictiveParams { poll_ceiling_ns: 2_000_000_000, ..PredictiveParams::DEFAULT }).contains("1 s"));
        assert!(bad(PredictiveParams { budget_horizon_ns: 0, ..PredictiveParams::DEFAULT }).contains("horizon"));
        assert!(bad(PredictiveParams { halt_cost_ns: 20_000_000, ..PredictiveParams::DEFAULT }).contains("10 ms"));
        assert!(PredictiveParams::DEFAULT.validate().is_ok());
    }

    #[cfg(feature = "clap")]
    #[test]
    fn options_parse() {
        use clap::{Args, Command, FromArgMatches};
        let parse = |args: &[&str]| {
            let cmd = PredictiveParams::augment_args(Command::new("t"));
            let m = cmd.try_get_matches_from(core::iter::once("t").chain(args.iter().copied())).unwrap();
            PredictiveParams::from_arg_matches(&m).unwrap()
        };
        assert_eq!(parse(&[]), PredictiveParams::DEFAULT);
        let all = [
            "--poll-budget",
            "2%",
            "--poll-ceiling",
            "300000",
            "--budget-horizon",
            "5000000",
            "--halt-cost",
            "50us",
            "--no-timer-first",
        ];
        assert_eq!(
            parse(&all),
            PredictiveParams {
                poll_budget_ppm: 20_000,
                poll_ceiling_ns: 300_000,
                budget_horizon_ns: 5_000_000,
                halt_cost_ns: 50_000,
                timer_first: false
            }
        );
    }
}
