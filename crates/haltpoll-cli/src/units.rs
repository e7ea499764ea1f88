//! Reading durations a person writes: "0", "500ns", "10us", "2.5ms", "1s".

use std::time::Duration;

/// Parses a duration with a unit (ns, us, ms, s); a bare "0" is zero.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let scale = match unit.trim() {
        "ns" => 1e-9,
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "" => return Err(format!("{text:?} has no unit: write it like 10us, 1ms or 0")),
        other => return Err(format!("unknown unit {other:?} in {text:?}: use ns, us, ms or s")),
    };
    let value: f64 = number.parse().map_err(|_| format!("{text:?} is not a number with a unit (like 10us)"))?;
    Duration::try_from_secs_f64(value * scale).map_err(|_| format!("{text:?} is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("500ns"), Ok(Duration::from_nanos(500)));
        assert_eq!(parse_duration("10us"), Ok(Duration::from_micros(10)));
        assert_eq!(parse_duration(" 2.5ms"), Ok(Duration::from_micros(2500)));
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert!(parse_duration("10").unwrap_err().contains("no unit"));
        assert!(parse_duration("10h").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("x1ms").is_err());
        assert!(parse_duration("-1ms").is_err());
    }
}
