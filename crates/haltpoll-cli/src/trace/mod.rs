//! Idle traces: the idle periods of one or more CPUs, read from a file.
//!
//! Two formats, detected from the first line that is not blank or a `#` comment:
//! - [`text`]: one idle period per line, in ns, on CPU 0 or in `# cpu N` sections (what
//!   `haltpoll` writes and a person types);
//! - [`perf`]: `perf script` output of the `power:cpu_idle` tracepoint, from a real Linux
//!   system, with the periods of every CPU.
//!
//! [`Trace::replay`] runs one governor per CPU over the periods, as the kernel does.

pub mod perf;
pub mod text;

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use haltpoll::IdleGovernor;
use haltpoll::replay::{Period, Setup, Summary};

/// The highest CPU number a trace may name; real systems stay far below it, and it bounds the
/// per-CPU tables.
pub const MAX_CPU: u32 = 65_535;

/// A trace format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One idle period per line, in ns.
    Text,
    /// `perf script` output of the `power:cpu_idle` tracepoint.
    Perf,
}

impl Format {
    /// A name for reports.
    pub const fn name(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Perf => "perf script",
        }
    }
}

/// One idle period: from entering idle until the wakeup ended it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdlePeriod {
    /// The CPU that was idle.
    pub cpu: u32,
    /// Its length, ns.
    pub idle_ns: u64,
    /// When it began, ns, in formats with timestamps (perf).
    pub start_ns: Option<u64>,
}

/// The wall-clock extent of a trace recorded on a whole system.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// From the first event to the last, ns.
    pub wall_ns: u64,
    /// CPUs online when it was recorded, if the trace says (`perf script --header`).
    pub cpus_online: Option<u32>,
}

/// A trace: idle periods in the order they ended (each CPU's in time order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trace {
    /// The format it was read in.
    pub format: Format,
    /// The idle periods.
    pub periods: Vec<IdlePeriod>,
    /// The CPUs that have periods, ascending.
    pub cpus: Vec<u32>,
    /// The wall-clock extent, for formats that carry timestamps.
    pub span: Option<Span>,
    /// What the reader skipped or guessed, for the user (one sentence each).
    pub notes: Vec<String>,
}

/// What a replay of a whole trace gives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replayed {
    /// Totals over all CPUs.
    pub summary: Summary,
    /// Each CPU's window at the end, `(cpu, ns)`, ascending by CPU: Linux's `poll_limit_ns`, or
    /// the predictive governor's planned window.
    pub final_windows: Vec<(u32, u64)>,
}

impl Trace {
    /// A single-CPU trace (CPU 0) of the given periods.
    #[cfg(test)]
    pub fn single_cpu(format: Format, idle_ns: impl IntoIterator<Item = u64>) -> Trace {
        Trace::of_periods(
            format,
            idle_ns.into_iter().map(|idle_ns| IdlePeriod { cpu: 0, idle_ns, start_ns: None }).collect(),
        )
    }

    /// A trace without timestamps of the given periods.
    pub fn of_periods(format: Format, periods: Vec<IdlePeriod>) -> Trace {
        let mut cpus: Vec<u32> = periods.iter().map(|p| p.cpu).collect();
        cpus.sort_unstable();
        cpus.dedup();
        Trace { format, periods, cpus, span: None, notes: Vec::new() }
    }

    /// Runs a governor (Linux's parameters, or a [`Setup`]) over the trace with one governor
    /// per CPU, each as a CPU starts, and calls `each` for every period in trace order. Where
    /// the trace has timestamps, each governor is told how long its CPU ran between periods.
    pub fn replay(&self, setup: impl Into<Setup>, mut each: impl FnMut(&IdlePeriod, &Period)) -> Replayed {
        let setup = setup.into();
        // Indexed by CPU number: the parsers keep numbers at or below MAX_CPU. Each CPU's
        // replay, and when its last period ended.
        let slots = self.cpus.last().map_or(0, |&c| c as usize + 1);
        let mut cpus = vec![None; slots];
        let mut summary = Summary::default();
        for idle in &self.periods {
            let (replay, last_end) = cpus[idle.cpu as usize].get_or_insert_with(|| (setup.replay(), None));
            let busy_ns = match (idle.start_ns, *last_end) {
                (Some(start), Some(end)) => start.saturating_sub(end),
                _ => 0,
            };
            *last_end = idle.start_ns.map(|s| s.saturating_add(idle.idle_ns));
            let period = replay.period_after(busy_ns, idle.idle_ns);
            summary.add(&period);
            each(idle, &period);
        }
        let final_windows = cpus
            .iter()
            .enumerate()
            .filter_map(|(cpu, r)| r.as_ref().map(|(r, _)| (cpu as u32, r.governor().window_ns())))
            .collect();
        Replayed { summary, final_windows }
    }
}

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
    /// A line is not what the format allows.
    #[error("{path}:{line}: {reason}: {text:?} (expected {expected})")]
    Malformed {
        /// The path given.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The offending text, trimmed.
        text: String,
        /// What is wrong with it.
        reason: String,
        /// What the format wants, with an example.
        expected: &'static str,
    },
    /// The trace as a whole cannot be used.
    #[error("{path}: {reason}")]
    Unusable {
        /// The path given.
        path: PathBuf,
        /// Why, and what to do.
        reason: String,
    },
}

/// Reads a trace from `path` (`-` reads standard input), in `format` or, if `None`, in the
/// format its first line shows.
pub fn read(path: &Path, format: Option<Format>) -> Result<Trace, TraceError> {
    let io_err = |source| TraceError::Io { path: path.to_owned(), source };
    let text = if path == Path::new("-") {
        let mut s = String::new();
        io::stdin().read_to_string(&mut s).map_err(io_err)?;
        s
    } else {
        fs::read_to_string(path).map_err(io_err)?
    };
    parse(&text, path, format)
}

/// Parses a trace held in memory; `path` names it in errors.
pub fn parse(text: &str, path: &Path, format: Option<Format>) -> Result<Trace, TraceError> {
    match format.unwrap_or_else(|| detect(text)) {
        Format::Text => Ok(Trace::of_periods(Format::Text, text::parse(text, path)?)),
        Format::Perf => perf::parse(text, path),
    }
}

/// The format of a trace, from its first line that is not blank or a comment: a bare number
/// means text, anything else is taken for `perf script` output (whose parser then says what
/// is wrong with it, if anything).
pub fn detect(text: &str) -> Format {
    let first = text.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with('#'));
    match first {
        Some(line) if perf::looks_like_event(line) => Format::Perf,
        _ => Format::Text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use haltpoll::ValidParams;

    #[test]
    fn detects_each_format() {
        assert_eq!(detect("# c\n\n42000\n"), Format::Text);
        assert_eq!(detect(""), Format::Text);
        assert_eq!(detect("abc\n"), Format::Text, "garbage gets the text format's error");
        let perf =
            "# ========\n# nrcpus online : 2\n   swapper  0 [000]  869.640748: power:cpu_idle: state=1 cpu_id=0\n";
        assert_eq!(detect(perf), Format::Perf);
        assert_eq!(detect("kworker/0:1  12 [001] 1.5: sched:sched_switch: a=b\n"), Format::Perf);
    }

    #[test]
    fn replay_keeps_one_governor_per_cpu() {
        // cpu 0 learns a 50 us window from a 30 us halt; cpu 1 has seen nothing yet, so its
        // first 30 us period halts too.
        let trace = Trace {
            format: Format::Perf,
            periods: vec![
                IdlePeriod { cpu: 0, idle_ns: 30_000, start_ns: None },
                IdlePeriod { cpu: 1, idle_ns: 30_000, start_ns: None },
                IdlePeriod { cpu: 0, idle_ns: 30_000, start_ns: None },
            ],
            cpus: vec![0, 1],
            span: None,
            notes: vec![],
        };
        let mut hits = Vec::new();
        let r = trace.replay(ValidParams::DEFAULT, |idle, p| hits.push((idle.cpu, p.hit())));
        assert_eq!(hits, vec![(0, false), (1, false), (0, true)]);
        assert_eq!(r.summary.periods, 3);
        assert_eq!(r.final_windows, vec![(0, 50_000), (1, 50_000)]);
    }

    #[test]
    fn sparse_cpu_numbers() {
        let trace = Trace {
            format: Format::Perf,
            periods: vec![IdlePeriod { cpu: 7, idle_ns: 1, start_ns: None }],
            cpus: vec![7],
            span: None,
            notes: vec![],
        };
        assert_eq!(trace.replay(ValidParams::DEFAULT, |_, _| {}).final_windows, vec![(7, 50_000)]);
    }
}
