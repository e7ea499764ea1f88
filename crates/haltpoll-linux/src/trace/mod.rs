//! Idle traces: the idle periods of one or more CPUs, read from a file.
//!
//! Two formats, detected from the first line that is not blank or a `#` comment:
//! - [`text`]: one idle period per line, in ns, on CPU 0 or in `# cpu N` sections (what
//!   `haltpoll` writes and a person types);
//! - [`perf`]: `perf script` output of the `power:cpu_idle` tracepoint, from a real Linux
//!   system, with the periods of every CPU.
//!
//! Either may be gzip-compressed (`.gz`, found by its magic bytes, not its name).
//!
//! A [`Stream`] reads a trace one line at a time and hands out its periods as it goes, so a
//! replay of any length runs in the memory of its CPUs; [`read`] collects them into a
//! [`Trace`] for the commands that need them all (tune). Every input is bounded: a line
//! longer than [`MAX_LINE_BYTES`] (a binary file, /dev/zero) and a trace of more than
//! [`MAX_PERIODS`] held whole are errors that name the limit.
//!
//! [`Replayer`] runs one governor per CPU over the periods, as the kernel does.

pub mod perf;
pub mod text;

use std::collections::VecDeque;
use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use haltpoll::replay::{Period, Replay, Setup, Summary};
use haltpoll::{AnyGovernor, IdleGovernor};

use crate::quote;

/// The highest CPU number a trace may name; real systems stay far below it, and it bounds the
/// per-CPU tables.
pub const MAX_CPU: u32 = 65_535;

/// The longest line a trace may have, in bytes. `perf script` lines are about 100 bytes and a
/// text line is one number; a longer line means the input is not a trace (a binary file, a
/// device), and reading it to its end could take all memory.
pub const MAX_LINE_BYTES: usize = 4096;

/// The most idle periods a trace may have when it is held whole (`tune`): 32 bytes each (CPU,
/// length, start), so 1.6 GB. A replay streams, and has no such limit.
pub const MAX_PERIODS: usize = 50_000_000;

/// How many lines the format detection reads ahead for the first one that is not blank or a
/// comment (a perf header has about 30).
const DETECT_LINES: usize = 1000;

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
        let mut replayer = Replayer::new(setup);
        for idle in &self.periods {
            let period = replayer.period(idle);
            each(idle, &period);
        }
        replayer.finish()
    }
}

/// Something per CPU (a CPU's replay), made as the CPU's first period comes, and when its last
/// period ended: the busy time before each period, where the trace has timestamps.
#[derive(Clone, Debug)]
pub struct PerCpu<T> {
    /// Indexed by CPU number (the readers keep numbers at or below [`MAX_CPU`]).
    cpus: Vec<Option<(T, Option<u64>)>>,
}

impl<T> Default for PerCpu<T> {
    fn default() -> Self {
        PerCpu { cpus: Vec::new() }
    }
}

impl<T> PerCpu<T> {
    /// `idle`'s CPU's value (made by `make` if this is its first period) and how long the CPU
    /// ran since its last period ended (0 without timestamps or before its first).
    pub fn next(&mut self, idle: &IdlePeriod, make: impl FnOnce() -> T) -> (&mut T, u64) {
        let slot = idle.cpu as usize;
        if self.cpus.len() <= slot {
            self.cpus.resize_with(slot + 1, || None);
        }
        let (value, last_end) = self.cpus[slot].get_or_insert_with(|| (make(), None));
        let busy_ns = match (idle.start_ns, *last_end) {
            (Some(start), Some(end)) => start.saturating_sub(end),
            _ => 0,
        };
        *last_end = idle.start_ns.map(|s| s.saturating_add(idle.idle_ns));
        (value, busy_ns)
    }

    /// Each CPU's value, `(cpu, value)`, ascending by CPU.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &T)> {
        self.cpus.iter().enumerate().filter_map(|(cpu, v)| v.as_ref().map(|(v, _)| (cpu as u32, v)))
    }
}

/// One governor per CPU, each starting as a CPU starts, fed the periods in trace order.
#[derive(Clone, Debug)]
pub struct Replayer {
    setup: Setup,
    cpus: PerCpu<Replay<AnyGovernor>>,
    summary: Summary,
}

impl Replayer {
    /// No CPU seen yet.
    pub fn new(setup: impl Into<Setup>) -> Replayer {
        Replayer { setup: setup.into(), cpus: PerCpu::default(), summary: Summary::default() }
    }

    /// Runs one period through its CPU's governor.
    pub fn period(&mut self, idle: &IdlePeriod) -> Period {
        let setup = self.setup;
        let (replay, busy_ns) = self.cpus.next(idle, || setup.replay());
        let period = replay.period_after(busy_ns, idle.idle_ns);
        self.summary.add(&period);
        period
    }

    /// The totals and each CPU's last window.
    pub fn finish(self) -> Replayed {
        let final_windows = self.cpus.iter().map(|(cpu, r)| (cpu, r.governor().window_ns())).collect();
        Replayed { summary: self.summary, final_windows }
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
    #[error("{path}:{line}: {reason}: {} (expected {expected})", quote(text))]
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

/// What a reader keeps between lines.
#[derive(Debug)]
enum Reader {
    Text(text::Reader),
    Perf(perf::Reader),
}

/// What is known once the last period has been handed out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ending {
    /// The wall-clock extent, for formats that carry timestamps.
    pub span: Option<Span>,
    /// What the reader skipped or guessed, for the user (one sentence each).
    pub notes: Vec<String>,
}

/// A line as read: its number, its bytes without the end of line, and whether it had one.
type RawLine = (usize, Vec<u8>, bool);

/// A trace read one line at a time, its periods handed out as they end.
pub struct Stream {
    path: PathBuf,
    input: Box<dyn BufRead>,
    format: Format,
    reader: Reader,
    /// Lines read ahead to detect the format, not yet parsed.
    ahead: VecDeque<RawLine>,
    lines: usize,
    periods: u64,
    /// Once the input ended: the periods still to hand out.
    tail: Option<std::vec::IntoIter<IdlePeriod>>,
    ending: Option<Ending>,
}

impl Stream {
    /// Opens `path` (`-` for standard input) in `format` or, if `None`, in the format its
    /// first line that is not blank or a comment shows.
    pub fn open(path: &Path, format: Option<Format>) -> Result<Stream, TraceError> {
        let io_err = |source| TraceError::Io { path: path.to_owned(), source };
        let input: Box<dyn Read> = if path == Path::new("-") {
            Box::new(io::stdin())
        } else {
            Box::new(fs::File::open(path).map_err(io_err)?)
        };
        Stream::from_reader(input, path, format)
    }

    /// A trace from `input`, named `path` in messages.
    pub fn from_reader(input: Box<dyn Read>, path: &Path, format: Option<Format>) -> Result<Stream, TraceError> {
        let io_err = |source| TraceError::Io { path: path.to_owned(), source };
        let mut input = BufReader::with_capacity(64 * 1024, input);
        const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
        let input: Box<dyn BufRead> = if input.fill_buf().map_err(io_err)?.starts_with(&GZIP_MAGIC) {
            Box::new(BufReader::new(flate2::bufread::MultiGzDecoder::new(input)))
        } else {
            Box::new(input)
        };
        let mut stream = Stream {
            path: path.to_owned(),
            input,
            format: format.unwrap_or(Format::Text),
            reader: Reader::Text(text::Reader::default()),
            ahead: VecDeque::new(),
            lines: 0,
            periods: 0,
            tail: None,
            ending: None,
        };
        if format.is_none() {
            while stream.ahead.len() < DETECT_LINES {
                let Some(line) = stream.read_line()? else { break };
                let text = String::from_utf8_lossy(&line.1);
                let text = text.trim();
                let decides = !text.is_empty() && !text.starts_with('#');
                if decides && perf::looks_like_event(text) {
                    stream.format = Format::Perf;
                }
                stream.ahead.push_back(line);
                if decides {
                    break;
                }
            }
        }
        if stream.format == Format::Perf {
            stream.reader = Reader::Perf(perf::Reader::default());
        }
        Ok(stream)
    }

    /// The format it is read in.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Whether the trace names the CPUs of its periods: a perf trace always, a text trace
    /// when a `# cpu N` line came before its first period.
    pub fn names_cpus(&self) -> bool {
        match self.format {
            Format::Perf => true,
            Format::Text => self.ahead.iter().any(|(_, bytes, _)| {
                let line = String::from_utf8_lossy(bytes);
                line.trim().strip_prefix('#').and_then(text::section).is_some()
            }),
        }
    }

    /// What is known at the end (span, notes), once [`Stream::next_period`] returned `None`.
    pub fn ending(&self) -> Option<&Ending> {
        self.ending.as_ref()
    }

    /// The next idle period, or `None` after the last one.
    pub fn next_period(&mut self) -> Result<Option<IdlePeriod>, TraceError> {
        loop {
            if let Some(tail) = &mut self.tail {
                return Ok(tail.next());
            }
            let Some((number, bytes, complete)) = self.next_line()? else {
                self.end()?;
                continue;
            };
            let expected = match self.reader {
                Reader::Text(_) => text::EXPECTED,
                Reader::Perf(_) => perf::EXPECTED,
            };
            let malformed = |reason: String, bytes: &[u8]| TraceError::Malformed {
                path: self.path.clone(),
                line: number,
                text: String::from_utf8_lossy(bytes).trim().to_owned(),
                reason,
                expected,
            };
            let line = match std::str::from_utf8(&bytes) {
                Ok(line) => line,
                Err(e) => {
                    let at = e.valid_up_to();
                    let reason = format!("not UTF-8 text (byte {:#04x} at column {})", bytes[at], at + 1);
                    return Err(malformed(reason, &bytes));
                }
            };
            let period = match &mut self.reader {
                Reader::Text(r) => r.line(line),
                Reader::Perf(r) => r.line(number, line, complete),
            };
            if let Some(period) = period.map_err(|reason| malformed(reason, &bytes))? {
                self.periods += 1;
                return Ok(Some(period));
            }
        }
    }

    /// The input ended: the readers' last periods and the ending, or why there is no trace.
    fn end(&mut self) -> Result<(), TraceError> {
        let (tail, ending) = match &mut self.reader {
            Reader::Text(_) => (Vec::new(), Ending::default()),
            Reader::Perf(r) => {
                let (tail, span, notes) = r.finish(&self.path)?;
                (tail, Ending { span: Some(span), notes })
            }
        };
        if self.periods == 0 && tail.is_empty() {
            let reason = if self.path == Path::new("-") {
                "standard input held no idle periods (was it empty, or closed?): pipe a trace in, \
                 e.g. `perf script | haltpoll replay -`"
            } else {
                "no idle periods: the text format has one per line, in ns (e.g. 42000)"
            };
            return Err(TraceError::Unusable { path: self.path.clone(), reason: reason.to_owned() });
        }
        self.tail = Some(tail.into_iter());
        self.ending = Some(ending);
        Ok(())
    }

    fn next_line(&mut self) -> Result<Option<RawLine>, TraceError> {
        match self.ahead.pop_front() {
            Some(line) => Ok(Some(line)),
            None => self.read_line(),
        }
    }

    /// Reads one line of at most [`MAX_LINE_BYTES`], without its end of line.
    fn read_line(&mut self) -> Result<Option<RawLine>, TraceError> {
        let mut bytes = Vec::new();
        let limit = MAX_LINE_BYTES as u64 + 1;
        let read = self.input.by_ref().take(limit).read_until(b'\n', &mut bytes);
        if read.map_err(|source| TraceError::Io { path: self.path.clone(), source })? == 0 {
            return Ok(None);
        }
        self.lines += 1;
        let complete = bytes.last() == Some(&b'\n');
        if complete {
            bytes.pop();
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
        } else if bytes.len() > MAX_LINE_BYTES {
            return Err(TraceError::Unusable {
                path: self.path.clone(),
                reason: format!(
                    "line {} is longer than {MAX_LINE_BYTES} bytes, which no trace line is: is this a trace? \
                     (a text trace has one number per line, a perf trace `perf script` output)",
                    self.lines
                ),
            });
        }
        Ok(Some((self.lines, bytes, complete)))
    }
}

/// Reads a whole trace from `path` (`-` reads standard input), in `format` or, if `None`, in
/// the format its first line shows. At most [`MAX_PERIODS`] periods.
pub fn read(path: &Path, format: Option<Format>) -> Result<Trace, TraceError> {
    collect(Stream::open(path, format)?)
}

/// Parses a trace held in memory; `path` names it in errors.
pub fn parse(bytes: &[u8], path: &Path, format: Option<Format>) -> Result<Trace, TraceError> {
    collect(Stream::from_reader(Box::new(io::Cursor::new(bytes.to_vec())), path, format)?)
}

fn collect(mut stream: Stream) -> Result<Trace, TraceError> {
    let mut periods = Vec::new();
    while let Some(period) = stream.next_period()? {
        if periods.len() == MAX_PERIODS {
            return Err(TraceError::Unusable {
                path: stream.path.clone(),
                reason: format!(
                    "more than {MAX_PERIODS} idle periods, the most this command holds ({} MB): \
                     use a shorter recording (`haltpoll replay` streams a trace of any length)",
                    MAX_PERIODS * size_of::<IdlePeriod>() / 1_000_000
                ),
            });
        }
        periods.push(period);
    }
    let ending = stream.ending.take().unwrap_or_default();
    let mut trace = Trace::of_periods(stream.format, periods);
    trace.span = ending.span;
    trace.notes = ending.notes;
    Ok(trace)
}

#[cfg(test)]
mod tests {
    use super::*;
    use haltpoll::ValidParams;

    /// The format a trace is read in when none is given.
    fn detect(text: &str) -> Format {
        Stream::from_reader(Box::new(io::Cursor::new(text.as_bytes().to_vec())), Path::new("t"), None).unwrap().format()
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(bytes).unwrap();
        gz.finish().unwrap()
    }

    fn lengths(t: &Trace) -> Vec<(u32, u64)> {
        t.periods.iter().map(|p| (p.cpu, p.idle_ns)).collect()
    }

    #[test]
    fn gzip_is_read_by_its_magic_bytes() {
        let text = "# cpu 1\n30000\n40000\n";
        let t = parse(&gzip(text.as_bytes()), Path::new("t.txt.gz"), None).unwrap();
        assert_eq!(lengths(&t), vec![(1, 30_000), (1, 40_000)]);
        let perf = "swapper 0 [000] 1.000000: power:cpu_idle: state=1 cpu_id=0\n\
                    swapper 0 [000] 1.000040: power:cpu_idle: state=4294967295 cpu_id=0\n";
        // Two gzip members, as `cat a.gz b.gz` makes: both are read.
        let (a, b) = perf.split_at(perf.find('\n').unwrap() + 1);
        let t = parse(&[gzip(a.as_bytes()), gzip(b.as_bytes())].concat(), Path::new("p.gz"), None).unwrap();
        assert_eq!((t.format, lengths(&t)), (Format::Perf, vec![(0, 40_000)]));
        let err = parse(&gzip(b"1\n")[..12], Path::new("cut.gz"), None).unwrap_err().to_string();
        assert!(err.starts_with("cannot read trace cut.gz"), "{err}");
    }

    #[test]
    fn a_line_longer_than_any_trace_line_ends_the_reading() {
        let zeros = vec![0u8; 1 << 20];
        let err = parse(&zeros, Path::new("/dev/zero"), None).unwrap_err().to_string();
        assert_eq!(
            err,
            "/dev/zero: line 1 is longer than 4096 bytes, which no trace line is: is this a trace? \
             (a text trace has one number per line, a perf trace `perf script` output)"
        );
        let long_bad = format!("1\n{}\n", "x".repeat(4000));
        let err = parse(long_bad.as_bytes(), Path::new("t"), None).unwrap_err().to_string();
        assert!(err.starts_with("t:2: not a whole number of nanoseconds: \"xxxx"), "{err}");
        assert!(err.len() < 300, "the line is quoted in part: {err}");
        assert!(err.contains("... (4000 bytes in all)"), "{err}");
    }

    #[test]
    fn a_byte_that_is_not_utf8_is_named_by_its_line() {
        let err = parse(b"100\n200\n3\xe900\n", Path::new("t"), None).unwrap_err().to_string();
        assert!(err.starts_with("t:3: not UTF-8 text (byte 0xe9 at column 2): \"3\u{fffd}00\""), "{err}");
        let perf = b"# \xe9t\xe9\nswapper 0 [000] 1.0: power:cpu_idle: state=1 cpu_id=0\n";
        let err = parse(perf, Path::new("p"), None).unwrap_err().to_string();
        assert!(err.starts_with("p:1: not UTF-8 text (byte 0xe9 at column 3)"), "{err}");
    }

    #[test]
    fn an_empty_trace_is_an_error() {
        let err = parse(b"", Path::new("-"), None).unwrap_err().to_string();
        assert!(err.starts_with("-: standard input held no idle periods (was it empty, or closed?)"), "{err}");
        let err = parse(b"\n# nothing\n", Path::new("e.txt"), None).unwrap_err().to_string();
        assert!(err.starts_with("e.txt: no idle periods"), "{err}");
    }

    #[test]
    fn a_stream_hands_out_periods_as_they_come() {
        // An endless input of valid lines: the first periods come without reading to the end.
        let endless = io::repeat(b'7').take(3).chain(io::repeat(b'\n')).take(1 << 30);
        let mut s = Stream::from_reader(Box::new(endless), Path::new("-"), None).unwrap();
        assert_eq!(s.next_period().unwrap(), Some(IdlePeriod { cpu: 0, idle_ns: 777, start_ns: None }));
        let t = "# cpu 2\n5\n";
        let s = Stream::from_reader(Box::new(io::Cursor::new(t.as_bytes().to_vec())), Path::new("t"), None).unwrap();
        assert!(s.names_cpus());
    }

    #[test]
    fn detects_each_format() {
        assert_eq!(detect("# c\n\n42000\n"), Format::Text);
        assert_eq!(detect(""), Format::Text);
        assert_eq!(detect(&"#\n".repeat(5000)), Format::Text, "the look-ahead is bounded");
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
