//! The numbers a person types and reads: durations with a unit ("50us", "2.4ms"), shares
//! ("5%"), and durations and counts written for a person ("12.5 us", "2 CPUs").

/// Parses a duration into ns: a whole number of ns ("50000"), or a number with a unit
/// (`ns`, `us`, `µs`, `ms`, `s`: "50us", "2.4ms"). The core crate declares it, because the
/// governor's own options (`--guest-halt-poll-ns`, `--grow-start`) parse with it; every other
/// time option of the command parses with it too, so all of them accept the same spellings.
pub use haltpoll::params::parse_ns;

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

/// A duration in ns with a unit a person reads at a glance: "850 ns", "12.5 us", "3.20 ms", "1.50 s".
pub fn fmt_ns(ns: u64) -> String {
    let f = ns as f64;
    match ns {
        0..1_000 => format!("{ns} ns"),
        1_000..1_000_000 => format!("{:.1} us", f / 1e3),
        1_000_000..1_000_000_000 => format!("{:.2} ms", f / 1e6),
        _ => format!("{:.2} s", f / 1e9),
    }
}

/// A share as a percentage with one decimal: "25.0%".
pub fn percent(share: f64) -> String {
    format!("{:.1}%", share * 100.0)
}

/// A share as a percentage with two decimals, for CPU shares, which are often below 1%: "1.25%".
pub fn percent2(share: f64) -> String {
    format!("{:.2}%", share * 100.0)
}

/// "1 CPU", "2 CPUs".
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 { format!("1 {noun}") } else { format!("{n} {noun}s") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_duration() {
        assert_eq!(parse_duration("10us"), Ok(std::time::Duration::from_micros(10)));
        assert_eq!(parse_duration("0"), Ok(std::time::Duration::ZERO));
        assert!(parse_duration("10h").is_err());
        assert!(parse_duration("5").unwrap_err().contains("no unit"));
        assert!(parse_duration("-5us").unwrap_err().contains("negative"), "not an unknown unit");
    }

    #[test]
    fn written_for_a_person() {
        assert_eq!(fmt_ns(0), "0 ns");
        assert_eq!(fmt_ns(999), "999 ns");
        assert_eq!(fmt_ns(12_500), "12.5 us");
        assert_eq!(fmt_ns(3_200_000), "3.20 ms");
        assert_eq!(fmt_ns(1_500_000_000), "1.50 s");
        assert_eq!(count(1, "CPU"), "1 CPU");
        assert_eq!(count(0, "CPU"), "0 CPUs");
        assert_eq!(percent(0.25), "25.0%");
        assert_eq!(percent2(0.0125), "1.25%");
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
