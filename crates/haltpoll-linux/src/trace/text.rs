//! The text trace format: the lengths of idle periods, in ns.
//!
//! The text format is one idle period per line, the time in nanoseconds from entering idle
//! until the wakeup arrives. Blank lines and `#` comments (whole-line or trailing) are allowed.
//! The periods belong to CPU 0 unless a whole-line comment `# cpu N` says that the lines after
//! it are CPU N's (what `haltpoll vm pingpong --trace` writes, one section per vCPU).

use std::io::{self, Write};

use super::{IdlePeriod, MAX_CPU};

/// What a line of the text format looks like, for error messages.
pub const EXPECTED: &str = "one idle period per line, in ns, e.g. 42000, '#' starting a comment; \
     or `perf script` output of power:cpu_idle";

/// The text reader, fed one line at a time: it keeps only the CPU of the current section.
#[derive(Debug, Default)]
pub struct Reader {
    cpu: u32,
    /// Whether a `# cpu N` line was seen.
    pub sections: bool,
}

impl Reader {
    /// Reads one line: the idle period it holds, if any, or what is wrong with it.
    pub fn line(&mut self, raw: &str) -> Result<Option<IdlePeriod>, String> {
        let (content, comment) = raw.split_once('#').unwrap_or((raw, ""));
        let content = content.trim();
        if content.is_empty() {
            if let Some(n) = section(comment) {
                self.cpu = match n.parse() {
                    Ok(n) if n <= MAX_CPU => n,
                    _ => return Err(format!("a `# cpu N` section needs a CPU number up to {MAX_CPU}")),
                };
                self.sections = true;
            }
            return Ok(None);
        }
        if content.starts_with('-') {
            return Err("an idle period cannot be negative".to_owned());
        }
        if !content.bytes().all(|b| b.is_ascii_digit()) {
            return Err("not a whole number of nanoseconds".to_owned());
        }
        let idle_ns = content.parse().map_err(|_| "too large for 64 bits".to_owned())?;
        Ok(Some(IdlePeriod { cpu: self.cpu, idle_ns, start_ns: None }))
    }
}

/// The CPU number of a whole-line comment `# cpu N` (given without its `#`), as text.
pub fn section(comment: &str) -> Option<&str> {
    comment.trim().strip_prefix("cpu ").map(str::trim)
}

/// One CPU's idle periods, to write: `label` becomes a comment line above the `# cpu N` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    /// What the periods are (e.g. "repetition 2").
    pub label: String,
    /// The CPU they belong to.
    pub cpu: u32,
    /// Idle periods, ns.
    pub periods: Vec<u64>,
}

/// Writes idle periods in the text format: `header` lines as `#` comments, then each section.
pub fn write(out: &mut dyn Write, header: &[String], sections: &[Section]) -> io::Result<()> {
    for line in header {
        writeln!(out, "# {line}")?;
    }
    for section in sections {
        writeln!(out, "# {}", section.label)?;
        writeln!(out, "# cpu {}", section.cpu)?;
        for period in &section.periods {
            writeln!(out, "{period}")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::TraceError;
    use std::path::Path;

    fn parse(text: &str, path: &Path) -> Result<Vec<IdlePeriod>, TraceError> {
        crate::trace::parse(text.as_bytes(), path, Some(crate::trace::Format::Text)).map(|t| t.periods)
    }

    fn p(text: &str) -> Result<Vec<u64>, TraceError> {
        parse(text, Path::new("t.txt")).map(|v| v.iter().map(|p| p.idle_ns).collect())
    }

    #[test]
    fn cpu_sections() {
        let periods =
            parse("5\n# cpu 3\n7\n# note\n8 # cpu 9 is only a trailing comment\n# cpu 1\n9\n", Path::new("t")).unwrap();
        let cpus: Vec<(u32, u64)> = periods.iter().map(|p| (p.cpu, p.idle_ns)).collect();
        assert_eq!(cpus, vec![(0, 5), (3, 7), (3, 8), (1, 9)]);
        let err = p("# cpu x\n").unwrap_err().to_string();
        assert!(err.contains("t.txt:1: a `# cpu N` section needs a CPU number"), "{err}");
        assert!(p("# cpu 70000\n").is_err());
    }

    #[test]
    fn write_reads_back() {
        let sections = [
            Section { label: "repetition 1".into(), cpu: 0, periods: vec![5, 7] },
            Section { label: "repetition 1".into(), cpu: 1, periods: vec![] },
            Section { label: "repetition 2".into(), cpu: 1, periods: vec![0] },
        ];
        let mut text = Vec::new();
        write(&mut text, &["made by a test".to_owned()], &sections).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert_eq!(
            text,
            "# made by a test\n# repetition 1\n# cpu 0\n5\n7\n# repetition 1\n# cpu 1\n# repetition 2\n# cpu 1\n0\n"
        );
        let back: Vec<(u32, u64)> = parse(&text, Path::new("t")).unwrap().iter().map(|p| (p.cpu, p.idle_ns)).collect();
        assert_eq!(back, vec![(0, 5), (0, 7), (1, 0)]);
    }

    #[test]
    fn numbers_comments_blanks() {
        assert_eq!(p("# header\n100\n\n  200  \n300 # trailing\n0\n").unwrap(), vec![100, 200, 300, 0]);
        let err = p("# only a comment\n").unwrap_err().to_string();
        assert!(err.starts_with("t.txt: no idle periods"), "an empty trace is not a trace: {err}");
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
