//! The command-line side of [`Params`] (feature `clap`): the one parser of durations a person
//! types, and the defaults of the options a command flattens in.

use crate::params::{Params, ShrinkRule};

/// Parses a duration a person types into ns: a whole number of ns ("50000"), or a number with
/// a unit (`ns`, `us`, `µs`, `ms`, `s`: "50us", "2.4ms") that makes a whole number of ns. The
/// one parser of durations: the governor's options use it, and so does every time option of
/// the `haltpoll` command.
///
/// ```
/// use haltpoll::params::parse_ns;
/// assert_eq!(parse_ns("2.4ms"), Ok(2_400_000));
/// assert!(parse_ns("-5us").unwrap_err().contains("negative"));
/// ```
pub fn parse_ns(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let quoted = quote(text);
    if t.starts_with('-') {
        return Err(format!("{quoted} is negative: a duration is 0 or more (e.g. 0, 50us)"));
    }
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let scale: u64 = match unit.trim() {
        "" | "ns" => 1,
        "us" | "µs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        other => return Err(format!("{quoted}: unknown unit {} (use ns, us, ms or s)", quote(other))),
    };
    let bad = || format!("{quoted} is not a duration (e.g. 50000, 50us, 2.4ms)");
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && frac.is_empty() || frac.contains('.') {
        return Err(bad());
    }
    let whole: u64 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| bad())? };
    // The fraction in ns, exactly: "4" of "2.4ms" is 4 * 10^6 / 10.
    let digits = u32::try_from(frac.len()).map_err(|_| bad())?;
    let frac_units: u64 = if frac.is_empty() { 0 } else { frac.parse().map_err(|_| bad())? };
    let too_large = || format!("{quoted} is too large (at most {} ns)", u64::MAX);
    let denom = 10u64.checked_pow(digits).ok_or_else(bad)?;
    let frac_ns = u128::from(frac_units) * u128::from(scale);
    if frac_ns % u128::from(denom) != 0 {
        return Err(format!("{quoted} is not a whole number of ns"));
    }
    let frac_ns = u64::try_from(frac_ns / u128::from(denom)).map_err(|_| too_large())?;
    whole.checked_mul(scale).and_then(|w| w.checked_add(frac_ns)).ok_or_else(too_large)
}

/// The most characters of a file's or a person's text an error message quotes.
pub const QUOTE_CHARS: usize = 80;

/// `text` quoted for a message, cut to its first [`QUOTE_CHARS`] characters (with its length)
/// when longer: what a person typed can be long, and a line of a trace or a file in sysfs can
/// be megabytes long.
///
/// ```
/// use haltpoll::params::cli::quote;
/// assert_eq!(quote("a\"b"), "\"a\\\"b\"");
/// assert!(quote(&"x".repeat(1000)).ends_with("... (1000 bytes in all)"));
/// ```
pub fn quote(text: &str) -> String {
    match text.char_indices().nth(QUOTE_CHARS) {
        None => format!("{text:?}"),
        Some((cut, _)) => format!("{:?}... ({} bytes in all)", &text[..cut], text.len()),
    }
}

/// `--legacy-shrink` is a flag, but the field it sets is a [`ShrinkRule`]: clap parses the
/// flag's `true`/`false` and this maps it.
pub(super) fn legacy_shrink_flag() -> impl clap::builder::TypedValueParser<Value = ShrinkRule> {
    use clap::builder::TypedValueParser;
    clap::builder::BoolishValueParser::new().map(|legacy| if legacy { ShrinkRule::Legacy } else { ShrinkRule::Floor })
}

impl Params {
    /// `cmd` with the defaults of the options [`Params`] adds to it replaced by `defaults`'s
    /// values, for a command whose governor starts from other parameters than Linux's. Call
    /// it on the command `Params` was flattened into (or from a hand-written
    /// [`clap::Args::augment_args`]).
    ///
    /// ```
    /// use clap::{Args, Command, FromArgMatches};
    /// use haltpoll::Params;
    /// let mine = Params { grow_start: 25_000, ..Params::DEFAULT };
    /// let cmd = Params::with_defaults(Params::augment_args(Command::new("bench")), &mine);
    /// let matches = cmd.try_get_matches_from(["bench", "--grow", "4"])?;
    /// let params = Params::from_arg_matches(&matches)?;
    /// assert_eq!(params, Params { grow: 4, ..mine });
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_defaults(cmd: clap::Command, defaults: &Params) -> clap::Command {
        cmd.mut_arg("guest_halt_poll_ns", |a| a.default_value(defaults.guest_halt_poll_ns.to_string()))
            .mut_arg("grow", |a| a.default_value(defaults.grow.to_string()))
            .mut_arg("grow_start", |a| a.default_value(defaults.grow_start.to_string()))
            .mut_arg("shrink", |a| a.default_value(defaults.shrink.to_string()))
            .mut_arg("allow_shrink", |a| a.default_value(defaults.allow_shrink.to_string()))
            .mut_arg("shrink_rule", |a| a.default_value((defaults.shrink_rule == ShrinkRule::Legacy).to_string()))
            .mut_arg("block_time", |a| a.default_value(defaults.block_time.name()))
            .mut_arg("arithmetic", |a| a.default_value(defaults.arithmetic.name()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::{BlockTime, ShrinkRule, WindowArithmetic};

    #[test]
    fn quotes_are_cut_by_characters() {
        let long = "é".repeat(100);
        assert_eq!(quote(&long), format!("{:?}... (200 bytes in all)", "é".repeat(80)));
        assert_eq!(quote(""), "\"\"");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_ns("50000"), Ok(50_000));
        assert_eq!(parse_ns("50us"), Ok(50_000));
        assert_eq!(parse_ns("50µs"), Ok(50_000));
        assert_eq!(parse_ns("2.4ms"), Ok(2_400_000));
        assert_eq!(parse_ns("1s"), Ok(1_000_000_000));
        assert_eq!(parse_ns(".5us"), Ok(500));
        assert_eq!(parse_ns(" 7 ns "), Ok(7));
        assert_eq!(parse_ns("0"), Ok(0));
        assert!(parse_ns("1.5ns").unwrap_err().contains("whole number"));
        assert!(parse_ns("5 minutes").unwrap_err().contains("unknown unit"));
        assert!(parse_ns("").is_err());
        assert!(parse_ns(".").is_err());
        assert!(parse_ns("1.2.3us").is_err());
        assert_eq!(parse_ns("-5").unwrap_err(), "\"-5\" is negative: a duration is 0 or more (e.g. 0, 50us)");
        assert!(parse_ns("-5us").unwrap_err().contains("negative"));
        assert!(parse_ns("99999999999999999999s").is_err());
        assert!(parse_ns("18446744073709551615s").unwrap_err().contains("too large"));
        assert!(parse_ns("0.000000000000000000001s").is_err());
        let long = format!("1{}", "x".repeat(10_000));
        let err = parse_ns(&long).unwrap_err();
        assert!(err.len() < 4 * QUOTE_CHARS, "a long input is not echoed whole: {err}");
        assert!(err.contains("... (10001 bytes in all)"), "{err}");
    }

    /// The option spellings the command line has always had, and the kernel's long names.
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
            "--window-arithmetic",
            "saturating",
        ];
        let expected = Params {
            guest_halt_poll_ns: 400_000,
            grow: 3,
            grow_start: 1_000,
            shrink: 4,
            allow_shrink: false,
            shrink_rule: ShrinkRule::Legacy,
            block_time: BlockTime::PollAndHalt,
            arithmetic: WindowArithmetic::Saturating,
        };
        assert_eq!(parse(&all), expected);
        let kernel =
            ["--guest-halt-poll-grow", "3", "--guest-halt-poll-grow-start", "1000", "--guest-halt-poll-shrink", "4"];
        assert_eq!(parse(&kernel), Params { grow: 3, grow_start: 1_000, shrink: 4, ..Params::DEFAULT });
        // The two times take units, as every time option of the command does.
        let units = parse(&["--guest-halt-poll-ns", "400us", "--grow-start", "0.1ms"]);
        assert_eq!((units.guest_halt_poll_ns, units.grow_start), (400_000, 100_000));
    }
}
