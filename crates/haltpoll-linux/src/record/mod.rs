//! Recording the kernel's `power:cpu_idle` tracepoint on every CPU without the perf tool, into
//! the `perf script` text that [`crate::trace`] reads (`haltpoll record`, `tune --record`).
//!
//! # Through tracefs, in an instance of our own
//!
//! The kernel offers two ways to a tracepoint: `perf_event_open(2)` (what perf uses: a ring
//! buffer per CPU mapped into memory, binary samples laid out by the event's format file) and
//! tracefs (files: enable the event, read its text). haltpoll uses tracefs: the kernel formats
//! the events itself, the reading is plain file I/O (no `unsafe`, no ring buffer protocol), and
//! an *instance* (`instances/haltpoll-PID`) is a trace buffer of its own, so the global buffer,
//! its settings and every other tracer's are left exactly as they were. The price is
//! resolution: tracefs prints µs, as `perf script` does by default. The instance's clock is set
//! to `perf` (the kernel's `local_clock`, as perf's samples have), so both tools' timestamps
//! agree; the tests compare the two on the same machine.
//!
//! What a recording changes, and undoes on every way out (the end, an error, Ctrl-C/SIGTERM):
//! it mounts tracefs if it is not mounted (and unmounts it), creates its instance (and removes
//! it), and enables `power:cpu_idle` in that instance only (and disables it).

pub mod events;
pub mod tracefs;

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use events::{Header, Line};
use tracefs::{Instance, Tracefs, TracefsError};

/// How often the trace pipe is read while recording: often enough that a CPU's buffer of the
/// instance (over a MB) never fills at the rates idle entries come, rarely enough to add no
/// measurable idle periods of our own.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// The longest recording: a day (the trace of a busy guest grows by MBs a second).
pub const MAX_DURATION: Duration = Duration::from_secs(86_400);

/// What to record.
#[derive(Clone, Debug)]
pub struct Options {
    /// How long.
    pub duration: Duration,
    /// Where tracefs is mounted, or an empty directory to mount it on.
    pub tracefs: PathBuf,
    /// Where sysfs is, for the number of CPUs online.
    pub sysfs: PathBuf,
}

/// What a recording did.
#[derive(Clone, Debug, PartialEq)]
pub struct Recorded {
    /// `power:cpu_idle` events written.
    pub events: u64,
    /// Events the kernel lost (a CPU's buffer overflowed), by its count.
    pub lost: u64,
    /// Lines that were not a `power:cpu_idle` event, skipped.
    pub other_lines: u64,
    /// How long it recorded.
    pub elapsed: Duration,
    /// Whether a signal ended it early.
    pub interrupted: bool,
    /// The trace clock of the timestamps.
    pub clock: String,
    /// Instances of killed recordings removed before this one began (or why one could not be).
    pub stale_instances: Vec<Result<String, String>>,
}

/// A recording's length as a person types it: a duration with a unit, more than 0 and at most
/// [`MAX_DURATION`] (a clap value parser of `haltpoll record --duration` and `tune --record`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let d = crate::units::parse_duration(text)?;
    if d.is_zero() || d > MAX_DURATION {
        return Err(format!("{text:?}: a recording lasts more than 0 s and at most 86400 s (e.g. 10s)"));
    }
    Ok(d)
}

/// Why a recording failed.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// tracefs or the event cannot be used.
    #[error(transparent)]
    Tracefs(#[from] TracefsError),
    /// The trace could not be written (a full disk, a closed stdout). The cause is part of the
    /// message, not a `source`, so that a report of the chain says it once.
    #[error("cannot write the trace: {0}")]
    Write(io::Error),
    /// The trace pipe could not be read.
    #[error("cannot read {path}: {error}")]
    Read {
        /// The pipe.
        path: PathBuf,
        /// What the system said.
        error: io::Error,
    },
    /// Cleaning up failed: the machine may keep a change.
    #[error("the recording ended, but cleaning up failed: {0}")]
    Cleanup(String),
}

/// Records `power:cpu_idle` for `opts.duration` (or until `stop` is set), writing `perf
/// script` text to `out`.
pub fn record(opts: &Options, stop: &AtomicBool, out: &mut dyn Write) -> Result<Recorded, RecordError> {
    let tracefs = Tracefs::open(&opts.tracefs)?;
    tracefs.check_event()?;
    let stale = tracefs.remove_stale_instances();
    let instance = Instance::create(&tracefs, &format!("{}{}", tracefs::INSTANCE_PREFIX, std::process::id()))?;
    let clock = instance.use_clock(tracefs::PERF_CLOCK)?;
    let header = Header {
        os_release: fs::read_to_string("/proc/sys/kernel/osrelease").ok().map(|s| s.trim().to_owned()),
        cpus_online: fs::read_to_string(opts.sysfs.join("devices/system/cpu/online"))
            .ok()
            .and_then(|s| events::count_cpu_list(&s)),
        clock: clock.clone(),
        duration_s: opts.duration.as_secs_f64(),
    };
    events::write_header(out, &header).map_err(RecordError::Write)?;
    let pipe_path = instance.dir().join("trace_pipe");
    let mut pipe = open_nonblocking(&pipe_path)?;
    instance.set_enabled(true)?;
    let start = Instant::now();
    let mut reader = PipeReader::new(out);
    let mut buf = vec![0u8; 64 * 1024];
    let interrupted = loop {
        if stop.load(Ordering::Relaxed) {
            break true;
        }
        let left = opts.duration.saturating_sub(start.elapsed());
        if left.is_zero() {
            break false;
        }
        if reader.drain(&mut pipe, &pipe_path, &mut buf)? == 0 {
            std::thread::sleep(left.min(POLL_INTERVAL));
        }
    };
    let elapsed = start.elapsed();
    instance.set_enabled(false)?;
    // What the buffer still holds, then the pipe is closed: the kernel removes an instance
    // only when none of its files is open.
    reader.drain(&mut pipe, &pipe_path, &mut buf)?;
    drop(pipe);
    instance.close().map_err(RecordError::Cleanup)?;
    let mut recorded = reader.finish().map_err(RecordError::Write)?;
    recorded.elapsed = elapsed;
    recorded.interrupted = interrupted;
    recorded.clock = clock;
    recorded.stale_instances = stale;
    Ok(recorded)
}

fn open_nonblocking(path: &std::path::Path) -> Result<File, RecordError> {
    use rustix::fs::{Mode, OFlags};
    let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| RecordError::Read { path: path.to_owned(), error: e.into() })?;
    Ok(File::from(fd))
}

/// Turns the bytes of the trace pipe into `perf script` lines, across reads that end
/// mid-line.
struct PipeReader<'a> {
    out: &'a mut dyn Write,
    partial: Vec<u8>,
    recorded: Recorded,
}

impl<'a> PipeReader<'a> {
    fn new(out: &'a mut dyn Write) -> PipeReader<'a> {
        let recorded = Recorded {
            events: 0,
            lost: 0,
            other_lines: 0,
            elapsed: Duration::ZERO,
            interrupted: false,
            clock: String::new(),
            stale_instances: Vec::new(),
        };
        PipeReader { out, partial: Vec::new(), recorded }
    }

    /// Reads what the pipe (at `path`) holds now; returns the bytes read (0: it was empty). A
    /// failure says which side failed: reading the pipe, or writing the trace.
    fn drain(&mut self, pipe: &mut File, path: &std::path::Path, buf: &mut [u8]) -> Result<usize, RecordError> {
        let mut total = 0;
        loop {
            match pipe.read(buf) {
                Ok(0) => return Ok(total),
                Ok(n) => {
                    total += n;
                    self.feed(&buf[..n]).map_err(RecordError::Write)?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(total),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(RecordError::Read { path: path.to_owned(), error }),
            }
        }
    }

    fn feed(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while let Some(end) = bytes.iter().position(|&b| b == b'\n') {
            self.partial.extend_from_slice(&bytes[..end]);
            bytes = &bytes[end + 1..];
            let line = std::mem::take(&mut self.partial);
            self.line(&String::from_utf8_lossy(&line))?;
        }
        self.partial.extend_from_slice(bytes);
        Ok(())
    }

    fn line(&mut self, line: &str) -> io::Result<()> {
        match events::parse(line) {
            Line::CpuIdle(event) => {
                self.recorded.events += 1;
                events::write_perf_line(self.out, &event)
            }
            Line::Lost { cpu, events } => {
                self.recorded.lost += events;
                writeln!(self.out, "# cpu {cpu} lost {events} events (its trace buffer was full)")
            }
            Line::Other => {
                self.recorded.other_lines += 1;
                Ok(())
            }
        }
    }

    fn finish(mut self) -> io::Result<Recorded> {
        if !self.partial.is_empty() {
            // The kernel ends every event with a newline; a rest is cut, and skipped.
            self.recorded.other_lines += 1;
        }
        self.out.flush()?;
        Ok(self.recorded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("0").unwrap_err().contains("more than 0 s"));
        assert!(parse_duration("86401s").unwrap_err().contains("at most 86400 s"));
        assert!(parse_duration("10").unwrap_err().contains("no unit"));
    }

    #[test]
    fn lines_split_across_reads_are_joined() {
        let mut out = Vec::new();
        let mut r = PipeReader::new(&mut out);
        r.feed(b"<idle>-0 [000] d..1. 1.000001: cpu_idle: sta").unwrap();
        r.feed(b"te=1 cpu_id=0\nCPU:0 [LOST 3 EVENTS]\ngarbage\n<idle>-0 [000] d..1. 1.000009: cpu_idle: state=4294967295 cpu_id=0\n<idle>-0 [0")
            .unwrap();
        let recorded = r.finish().unwrap();
        assert_eq!((recorded.events, recorded.lost, recorded.other_lines), (2, 3, 2));
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(text.contains("[000]         1.000001: power:cpu_idle: state=1 cpu_id=0"), "{text}");
        assert!(text.contains("# cpu 0 lost 3 events"), "{text}");
    }

    /// A writer as a full disk is.
    struct Full;
    impl Write for Full {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from_raw_os_error(28))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_failed_write_is_named_as_the_write_and_its_cause_said_once() {
        let dir = tempfile::tempdir().unwrap();
        let pipe_path = dir.path().join("trace_pipe");
        fs::write(&pipe_path, "<idle>-0 [000] d..1. 1.000001: cpu_idle: state=1 cpu_id=0\n").unwrap();
        let mut pipe = File::open(&pipe_path).unwrap();
        let mut full = Full;
        let err = PipeReader::new(&mut full).drain(&mut pipe, &pipe_path, &mut [0; 64]).unwrap_err();
        assert!(matches!(err, RecordError::Write(_)), "{err:?}");
        let chain = format!("{:#}", anyhow_like(&err));
        assert!(chain.starts_with("cannot write the trace: "), "{chain}");
        assert_eq!(chain.matches("os error 28").count(), 1, "{chain}");
    }

    /// The message with every source appended, as the command prints an error chain.
    fn anyhow_like(err: &dyn std::error::Error) -> String {
        let mut text = err.to_string();
        let mut cause = err.source();
        while let Some(c) = cause {
            text = format!("{text}: {c}");
            cause = c.source();
        }
        text
    }
}
