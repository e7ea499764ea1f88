//! Idle traces: the lengths of idle periods, in ns, from a file.
//!
//! The text format is one idle period per line, the time in nanoseconds from entering idle
//! until the wakeup arrives. Blank lines and `#` comments (whole-line or trailing) are allowed.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// Why a trace could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The file could not be opened or read.
    #[error("cannot read trace {path}")]
    Io {
        /// The path given.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// A line is not an idle period.
    #[error(
        "{path}:{line}: {reason}: {text:?} (expected one idle period per line, in ns, e.g. 42000; '#' starts a comment)"
    )]
    Malformed {
        /// The path given.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The offending text, trimmed.
        text: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// Reads a trace from `path` (`-` reads standard input).
pub fn read(path: &Path) -> Result<Vec<u64>, TraceError> {
    let io_err = |source| TraceError::Io { path: path.to_owned(), source };
    let text = if path == Path::new("-") {
        let mut s = String::new();
        io::stdin().read_to_string(&mut s).map_err(io_err)?;
        s
    } else {
        fs::read_to_string(path).map_err(io_err)?
    };
    parse(&text, path)
}

/// Parses the text format; `path` names the source in errors.
pub fn parse(text: &str, path: &Path) -> Result<Vec<u64>, TraceError> {
    let mut periods = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let content = raw.split_once('#').map_or(raw, |(before, _)| before).trim();
        if content.is_empty() {
            continue;
        }
        let malformed =
            |reason| TraceError::Malformed { path: path.to_owned(), line: i + 1, text: raw.trim().to_owned(), reason };
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

/// Writes idle periods in the text format: `header` lines as `#` comments, then each section
/// as a `#` comment line naming it followed by its periods, one per line.
pub fn write(out: &mut dyn Write, header: &[String], sections: &[(String, Vec<u64>)]) -> io::Result<()> {
    for line in header {
        writeln!(out, "# {line}")?;
    }
    for (name, periods) in sections {
        writeln!(out, "# {name}")?;
        for period in periods {
            writeln!(out, "{period}")?;
        }
    }
    Ok(())
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
    fn written_traces_read_back() {
        let mut text = Vec::new();
        let sections =
            [("vcpu 0".to_owned(), vec![5, 7]), ("vcpu 1".to_owned(), vec![]), ("vcpu 2".to_owned(), vec![0])];
        write(&mut text, &["made by a test".to_owned()], &sections).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert_eq!(text, "# made by a test\n# vcpu 0\n5\n7\n# vcpu 1\n# vcpu 2\n0\n");
        assert_eq!(p(&text).unwrap(), vec![5, 7, 0]);
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
