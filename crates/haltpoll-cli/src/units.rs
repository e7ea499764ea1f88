//! Reading the numbers a person types: durations with a unit ("50us", "2.4ms") and shares
//! ("5%").

/// Parses a duration into ns: a whole number of ns ("50000"), or a number with a unit
/// (`ns`, `us`, `µs`, `ms`, `s`: "50us", "2.4ms"). The result must be a whole number of ns.
///
/// ```text
/// parse_ns("50000")  == Ok(50_000)
/// parse_ns("2.4ms")  == Ok(2_400_000)
/// parse_ns("1.5ns")  -> Err (not a whole number of ns)
/// ```
pub fn parse_ns(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let scale: u64 = match unit.trim() {
        "" | "ns" => 1,
        "us" | "µs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        other => return Err(format!("{text:?}: unknown unit {other:?} (use ns, us, ms or s)")),
    };
    let bad = || format!("{text:?} is not a duration (e.g. 50000, 50us, 2.4ms)");
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && frac.is_empty() || frac.contains('.') {
        return Err(bad());
    }
    let whole: u64 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| bad())? };
    // The fraction in ns, exactly: "4" of "2.4ms" is 4 * 10^6 / 10.
    let digits = frac.len() as u32;
    let frac_units: u64 = if frac.is_empty() { 0 } else { frac.parse().map_err(|_| bad())? };
    let too_large = || format!("{text:?} is too large");
    let denom = 10u64.checked_pow(digits).ok_or_else(bad)?;
    let frac_ns = u128::from(frac_units) * u128::from(scale);
    if frac_ns % u128::from(denom) != 0 {
        return Err(format!("{text:?} is not a whole number of ns"));
    }
    let frac_ns = u64::try_from(frac_ns / u128::from(denom)).map_err(|_| too_large())?;
    whole.checked_mul(scale).and_then(|w| w.checked_add(frac_ns)).ok_or_else(too_large)
}

/// Parses a duration for options where a bare number would be ambiguous (think times, cell
/// times): as [`parse_ns`], but anything other than "0" needs its unit.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let t = text.trim();
    if t != "0" && !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(format!("{text:?} has no unit: write it like 10us, 1ms or 0"));
    }
    parse_ns(t).map(std::time::Duration::from_nanos)
}

/// Parses a share given in percent, with or without the sign: "5%" and "5" are both 0.05.
pub fn parse_percent(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let number = t.strip_suffix('%').unwrap_or(t).trim();
    match number.parse::<f64>() {
        Ok(p) if (0.0..=100.0).contains(&p) => Ok(p / 100.0),
        _ => Err(format!("{text:?} is not a percentage between 0 and 100 (e.g. 5%)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(parse_ns("-5").is_err());
        assert!(parse_ns("99999999999999999999s").is_err());
        assert!(parse_ns("18446744073709551615s").unwrap_err().contains("too large"));
        assert!(parse_ns("0.000000000000000000001s").is_err());
    }

    #[test]
    fn durations_as_duration() {
        assert_eq!(parse_duration("10us"), Ok(std::time::Duration::from_micros(10)));
        assert_eq!(parse_duration("0"), Ok(std::time::Duration::ZERO));
        assert!(parse_duration("10h").is_err());
        assert!(parse_duration("5").unwrap_err().contains("no unit"));
    }

    #[test]
    fn percentages() {
        assert_eq!(parse_percent("5%"), Ok(0.05));
        assert_eq!(parse_percent("12.5"), Ok(0.125));
        assert!(parse_percent("150%").is_err());
        assert!(parse_percent("-1").is_err());
        assert!(parse_percent("five").is_err());
    }
}
