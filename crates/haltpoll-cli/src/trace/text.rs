//! The text trace format: the lengths of idle periods of one CPU, in ns.
//!
//! The text format is one idle period per line, the time in nanoseconds from entering idle
//! until the wakeup arrives. Blank lines and `#` comments (whole-line or trailing) are allowed.

use std::path::Path;

use super::TraceError;

/// What a line of the text format looks like, for error messages.
pub const EXPECTED: &str = "one idle period per line, in ns, e.g. 42000, '#' starting a comment; \
     or `perf script` output of power:cpu_idle";

/// Parses the text format; `path` names the source in errors.
pub fn parse(text: &str, path: &Path) -> Result<Vec<u64>, TraceError> {
    let mut periods = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let content = raw.split_once('#').map_or(raw, |(before, _)| before).trim();
        if content.is_empty() {
            continue;
        }
        let malformed = |reason: &str| TraceError::Malformed {
            path: path.to_owned(),
            line: i + 1,
            text: raw.trim().to_owned(),
            reason: reason.to_owned(),
            expected: EXPECTED,
        };
        if content.starts_with('-') {
            return Err(malformed("an idle period cannot be negative"));
        }
        if !content.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed("not a whole number of nanoseconds"));
        }
        periods.push(content.parse().map_err(|_| malformed("too large for 64 bits"))?);
    }
    Ok(periods)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<Vec<u64>, TraceError> {
        parse(text, Path::new("t.txt"))
    }

    #[test]
    fn numbers_comments_blanks() {
        assert_eq!(p("# header\n100\n\n  200  \n300 # trailing\n0\n").unwrap(), vec![100, 200, 300, 0]);
        assert_eq!(p("").unwrap(), Vec::<u64>::new());
        assert_eq!(p("18446744073709551615\n").unwrap(), vec![u64::MAX]);
    }

    #[test]
    fn errors_name_the_line() {
        let err = p("100\nabc\n").unwrap_err().to_string();
        assert!(err.starts_with("t.txt:2: not a whole number"), "{err}");
        assert!(err.contains("\"abc\""), "{err}");
        let err = p("-5").unwrap_err().to_string();
        assert!(err.contains("t.txt:1: an idle period cannot be negative"), "{err}");
        let err = p("1.5").unwrap_err().to_string();
        assert!(err.contains("whole number"), "{err}");
        let err = p("1 2").unwrap_err().to_string();
        assert!(err.contains("t.txt:1"), "{err}");
        let err = p("99999999999999999999999").unwrap_err().to_string();
        assert!(err.contains("too large"), "{err}");
    }
}
