//! From tracefs's text to `perf script`'s: the lines `trace_pipe` prints for `power:cpu_idle`,
//! rewritten in the format [`crate::trace::perf`] reads, and the header that tells it the
//! number of CPUs online.
//!
//! tracefs prints an event as
//!
//! ```text
//!           <idle>-0       [001] d..1.   869.640748: cpu_idle: state=1 cpu_id=1
//! ```
//!
//! (task and pid, CPU, on most kernels the irq/preempt flags, the timestamp in seconds with µs,
//! the event without its system, the fields), and `perf script` the same event as
//!
//! ```text
//!           <idle>     0 [001]   869.640748: power:cpu_idle: state=1 cpu_id=1
//! ```
//!
//! The timestamp and the fields are carried over as the kernel printed them, so nothing is
//! rounded twice. When a CPU's buffer overflowed, tracefs prints `CPU:1 [LOST 12 EVENTS]`
//! instead of the events: those are counted, and the reader then finds exits without entries
//! and skips them with a note of its own.

use std::io::{self, Write};

use crate::trace::perf::EVENT;

/// The event as tracefs names it: without the `power:` system.
const TRACEFS_EVENT: &str = "cpu_idle";

/// One line of `trace_pipe`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// A `power:cpu_idle` event.
    CpuIdle(CpuIdle<'a>),
    /// `CPU:N [LOST M EVENTS]`: the CPU's buffer overflowed.
    Lost {
        /// The CPU.
        cpu: u32,
        /// How many events it lost.
        events: u64,
    },
    /// Anything else (another event, a line the kernel added): skipped and counted.
    Other,
}

/// A `power:cpu_idle` event as tracefs printed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuIdle<'a> {
    /// The task that was running (`<idle>` for the idle task).
    pub task: &'a str,
    /// Its pid.
    pub pid: u32,
    /// The CPU that recorded it.
    pub cpu: u32,
    /// `SECONDS.FRACTION`, as printed.
    pub time: &'a str,
    /// `state=N cpu_id=N`, as printed.
    pub fields: &'a str,
}

/// Parses one line of `trace_pipe` (without its end of line).
pub fn parse(line: &str) -> Line<'_> {
    if let Some(lost) = parse_lost(line) {
        return lost;
    }
    let marker = format!(": {TRACEFS_EVENT}: ");
    let Some(at) = line.find(&marker) else { return Line::Other };
    let (prefix, fields) = (&line[..at], line[at + marker.len()..].trim());
    let Some((rest, time)) = prefix.trim_end().rsplit_once(char::is_whitespace) else { return Line::Other };
    if !is_time(time) {
        return Line::Other;
    }
    // `TASK-PID [CPU]`, then the flags on most kernels. The task's name may hold spaces, dashes
    // and brackets of its own, so the CPU is the last `[digits]` token and the pid follows the
    // last dash before it.
    let tokens: Vec<(usize, &str)> = tokens_with_offsets(rest);
    let Some(&(cpu_at, cpu_token)) = tokens.iter().rev().find(|(_, t)| bracketed_number(t).is_some()) else {
        return Line::Other;
    };
    let Some(cpu) = bracketed_number(cpu_token) else { return Line::Other };
    let Some((task, pid)) = rest[..cpu_at].trim().rsplit_once('-') else { return Line::Other };
    let Ok(pid) = pid.parse::<u32>() else { return Line::Other };
    Line::CpuIdle(CpuIdle { task: task.trim(), pid, cpu, time, fields })
}

/// `CPU:N [LOST M EVENTS]`.
fn parse_lost(line: &str) -> Option<Line<'static>> {
    let rest = line.trim().strip_prefix("CPU:")?;
    let (cpu, rest) = rest.split_once(' ')?;
    let events = rest.trim().strip_prefix("[LOST ")?.strip_suffix(" EVENTS]")?;
    Some(Line::Lost { cpu: cpu.parse().ok()?, events: events.parse().ok()? })
}

fn tokens_with_offsets(s: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in s.char_indices() {
        match (c.is_whitespace(), start) {
            (true, Some(st)) => {
                out.push((st, &s[st..i]));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(st) = start {
        out.push((st, &s[st..]));
    }
    out
}

fn bracketed_number(token: &str) -> Option<u32> {
    let digits = token.strip_prefix('[')?.strip_suffix(']')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// `SECONDS.FRACTION`, as both tracefs and `perf script` print a time.
fn is_time(token: &str) -> bool {
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    token.split_once('.').is_some_and(|(s, f)| all_digits(s) && all_digits(f))
}

/// Writes `event` as `perf script` prints it.
pub fn write_perf_line(out: &mut dyn Write, event: &CpuIdle) -> io::Result<()> {
    writeln!(
        out,
        "{:>16} {:>5} [{:03}] {:>16}: {EVENT}: {}",
        event.task, event.pid, event.cpu, event.time, event.fields
    )
}

/// What the header says: the facts `perf script --header` gives that the readers use, and how
/// the trace was made.
#[derive(Clone, Debug, PartialEq)]
pub struct Header {
    /// `uname -r`.
    pub os_release: Option<String>,
    /// CPUs online while recording: the base of the "share of CPU time" `tune` reports.
    pub cpus_online: Option<u32>,
    /// The trace clock the timestamps come from.
    pub clock: String,
    /// The requested duration, s.
    pub duration_s: f64,
}

/// Writes `header` as `perf script --header` does (`# key : value` between `# ====` lines).
pub fn write_header(out: &mut dyn Write, header: &Header) -> io::Result<()> {
    writeln!(out, "# ========")?;
    if let Some(release) = &header.os_release {
        writeln!(out, "# os release : {release}")?;
    }
    if let Some(cpus) = header.cpus_online {
        writeln!(out, "# nrcpus online : {cpus}")?;
    }
    writeln!(out, "# event : name = {EVENT}")?;
    writeln!(
        out,
        "# recorded by : haltpoll record, through tracefs (trace clock {}), for {} s",
        header.clock, header.duration_s
    )?;
    writeln!(out, "# ========")?;
    writeln!(out, "#")
}

/// The number of CPUs in a kernel CPU list (`0-3,5`, as `devices/system/cpu/online` holds).
pub fn count_cpu_list(list: &str) -> Option<u32> {
    let list = list.trim();
    if list.is_empty() {
        return Some(0);
    }
    list.split(',').try_fold(0u32, |n, range| {
        let (a, b) = range.split_once('-').unwrap_or((range, range));
        let (a, b) = (a.trim().parse::<u32>().ok()?, b.trim().parse::<u32>().ok()?);
        n.checked_add(b.checked_sub(a)?.checked_add(1)?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace;
    use std::path::Path;

    #[test]
    fn events_with_and_without_flags() {
        let with = "          <idle>-0       [001] d..1.   869.640748: cpu_idle: state=1 cpu_id=1";
        assert_eq!(
            parse(with),
            Line::CpuIdle(CpuIdle { task: "<idle>", pid: 0, cpu: 1, time: "869.640748", fields: "state=1 cpu_id=1" })
        );
        let without = "bash-4711 [000] 12.000001: cpu_idle: state=4294967295 cpu_id=0";
        assert_eq!(
            parse(without),
            Line::CpuIdle(CpuIdle {
                task: "bash",
                pid: 4711,
                cpu: 0,
                time: "12.000001",
                fields: "state=4294967295 cpu_id=0"
            })
        );
    }

    #[test]
    fn task_names_with_spaces_dashes_and_brackets() {
        let line = "  Web Content-[x]-77-123   [003] ..s2.  5.5: cpu_idle: state=2 cpu_id=3";
        let Line::CpuIdle(e) = parse(line) else { panic!("{line}") };
        assert_eq!((e.task, e.pid, e.cpu), ("Web Content-[x]-77", 123, 3));
    }

    #[test]
    fn lost_events_and_other_lines() {
        assert_eq!(parse("CPU:1 [LOST 12 EVENTS]"), Line::Lost { cpu: 1, events: 12 });
        assert_eq!(parse("<idle>-0 [000] d..1. 1.5: cpu_idle_miss: cpu_id=0 state=1 type=below"), Line::Other);
        assert_eq!(parse("<idle>-0 [000] d..1. soon: cpu_idle: state=1 cpu_id=0"), Line::Other);
        assert_eq!(parse("<idle>-0 d..1. 1.5: cpu_idle: state=1 cpu_id=0"), Line::Other, "no CPU");
        assert_eq!(parse("<idle> [000] 1.5: cpu_idle: state=1 cpu_id=0"), Line::Other, "no pid");
        assert_eq!(parse(""), Line::Other);
    }

    /// What the recorder writes is what the perf reader reads, header included.
    #[test]
    fn the_perf_reader_reads_what_is_written() {
        let mut out = Vec::new();
        let header =
            Header { os_release: Some("6.1.0".into()), cpus_online: Some(2), clock: "perf".into(), duration_s: 1.0 };
        write_header(&mut out, &header).unwrap();
        for line in [
            "<idle>-0 [000] d..1. 10.000000: cpu_idle: state=1 cpu_id=0",
            "<idle>-0 [001] d..1. 10.000005: cpu_idle: state=0 cpu_id=1",
            "<idle>-0 [000] d..1. 10.000040: cpu_idle: state=4294967295 cpu_id=0",
            "<idle>-0 [001] d..1. 10.000015: cpu_idle: state=4294967295 cpu_id=1",
        ] {
            let Line::CpuIdle(e) = parse(line) else { panic!("{line}") };
            write_perf_line(&mut out, &e).unwrap();
        }
        let text = String::from_utf8(out).unwrap();
        let t = trace::parse(text.as_bytes(), Path::new("rec"), None).unwrap();
        assert_eq!(t.format, trace::Format::Perf, "{text}");
        let periods: Vec<(u32, u64)> = t.periods.iter().map(|p| (p.cpu, p.idle_ns)).collect();
        assert_eq!(periods, vec![(0, 40_000), (1, 10_000)]);
        assert_eq!(t.span.unwrap().cpus_online, Some(2));
        assert!(t.notes.is_empty(), "{:?}", t.notes);
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(count_cpu_list("0-1\n"), Some(2));
        assert_eq!(count_cpu_list("0"), Some(1));
        assert_eq!(count_cpu_list("0-3,5,7-8"), Some(7));
        assert_eq!(count_cpu_list(""), Some(0));
        assert_eq!(count_cpu_list("3-1"), None);
        assert_eq!(count_cpu_list("a"), None);
    }
}
