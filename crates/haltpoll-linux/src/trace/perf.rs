//! `perf script` output of the `power:cpu_idle` tracepoint, turned into idle periods.
//!
//! Record on the guest with `perf record -e power:cpu_idle -a -- sleep 10` and convert with
//! `perf script > idle.txt` (`--header` adds the number of CPUs online, which the poll share
//! uses; `--ns` gives ns timestamps instead of us). Each event line reads
//!
//! ```text
//!          swapper     0 [001]   869.640748: power:cpu_idle: state=1 cpu_id=1
//!          swapper     0 [001]   869.641533: power:cpu_idle: state=4294967295 cpu_id=1
//! ```
//!
//! The kernel emits `state=N` as a CPU enters idle state `N` and `state=4294967295`
//! (`PWR_EVENT_EXIT`, -1 as an unsigned number) as it leaves. Per CPU, an entry and the next
//! exit make one idle period. State 0 is POLL (on drivers with a poll state, as haltpoll);
//! every other state counts as a halt.
//!
//! The haltpoll governor halts right after a poll only when the poll timed out, so a poll
//! followed directly by a halt on the same CPU is one wait for one wakeup: the two are merged
//! into one period, from the poll's entry to the halt's exit.
//!
//! What is skipped, and said in [`Trace::notes`](super::Trace::notes):
//! - events of other tracepoints (recorded alongside);
//! - an exit without an entry, or an entry without an exit (perf lost events under load);
//! - the last line when it has no end of line (perf script cut short), even if it parses,
//!   since a cut `cpu_id=12` reads as `cpu_id=1`.
//!
//! Each CPU's first exit (the trace began while it was idle) and last entry (it ended while it
//! was idle) are dropped without a note: every trace has them. Anything else that is not an
//! event line, or a `power:cpu_idle` line without `state=` and `cpu_id=`, is an error that
//! names the line; so are timestamps that go backwards on a CPU.

use std::path::Path;

use super::{IdlePeriod, MAX_CPU, Span, TraceError};
use crate::quote;

/// What an event line looks like, for error messages.
pub const EXPECTED: &str = "`perf script` output of power:cpu_idle, \
     e.g. `swapper 0 [001] 869.640748: power:cpu_idle: state=1 cpu_id=1`";

/// The tracepoint this reader understands.
pub const EVENT: &str = "power:cpu_idle";

/// `state` of an exit event: `PWR_EVENT_EXIT` (-1) as perf prints it.
pub const EXIT_STATE: u32 = u32::MAX;

/// One line of `perf script` output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Line<'a> {
    /// Blank.
    Blank,
    /// A `#` header or comment line, without the `#`.
    Header(&'a str),
    /// A `power:cpu_idle` event.
    CpuIdle { time_ns: u64, state: u32, cpu: u32 },
    /// An event of another tracepoint.
    Other,
}

/// Whether `line` has the shape of a `perf script` event line (`... TIME: EVENT: ...`).
pub fn looks_like_event(line: &str) -> bool {
    event_tokens(line).is_some()
}

/// Finds the timestamp and event name of an event line: the first token of the form
/// `SECONDS.FRACTION:` followed by a token ending in `:`. The command name before them may
/// hold spaces, so the line is searched rather than split at fixed positions.
fn event_tokens(line: &str) -> Option<(u64, &str, &str)> {
    let mut rest = line;
    while let Some(colon) = rest.find(": ") {
        let before = &rest[..colon];
        let token = before.rsplit(char::is_whitespace).next().unwrap_or(before);
        let after = &rest[colon + 2..];
        if let Some(time_ns) = parse_time(token) {
            let after = after.trim_start();
            let (event, fields) = after.split_once(char::is_whitespace).unwrap_or((after, ""));
            return event.strip_suffix(':').map(|event| (time_ns, event, fields));
        }
        rest = after;
    }
    None
}

/// `SECONDS.FRACTION` (us or ns resolution, as `perf script` and `perf script --ns` print)
/// in ns, without a trip through floating point.
fn parse_time(token: &str) -> Option<u64> {
    let (secs, frac) = token.split_once('.')?;
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(secs) || !all_digits(frac) || frac.len() > 9 {
        return None;
    }
    let frac_ns: u64 = frac.parse::<u64>().ok()? * 10u64.pow(9 - frac.len() as u32);
    secs.parse::<u64>().ok()?.checked_mul(1_000_000_000)?.checked_add(frac_ns)
}

fn parse_line(line: &str) -> Result<Line<'_>, String> {
    let trimmed = line.trim();
    if trimmed.is_empty() {
        return Ok(Line::Blank);
    }
    if let Some(header) = trimmed.strip_prefix('#') {
        return Ok(Line::Header(header));
    }
    let Some((time_ns, event, fields)) = event_tokens(trimmed) else {
        return Err("not a perf script event line (no `SECONDS.FRACTION: EVENT:`)".to_owned());
    };
    if event != EVENT {
        return Ok(Line::Other);
    }
    let (mut state, mut cpu) = (None, None);
    for field in fields.split_whitespace() {
        match field.split_once('=') {
            Some(("state", v)) => state = Some(parse_state(v).ok_or_else(|| format!("bad state {}", quote(v)))?),
            Some(("cpu_id", v)) => {
                let c = v.parse::<u32>().map_err(|_| format!("bad cpu_id {}", quote(v)))?;
                if c > MAX_CPU {
                    return Err(format!("cpu_id {c} is beyond the {MAX_CPU} this reader allows"));
                }
                cpu = Some(c);
            }
            _ => {}
        }
    }
    match (state, cpu) {
        (Some(state), Some(cpu)) => Ok(Line::CpuIdle { time_ns, state, cpu }),
        _ => Err(format!("{EVENT} event without both state= and cpu_id= (cut short?)")),
    }
}

/// A state number; `-1` is accepted for the exit as well, as a signed printer would show it.
fn parse_state(v: &str) -> Option<u32> {
    if v == "-1" { Some(EXIT_STATE) } else { v.parse().ok() }
}

/// One CPU's progress through the events.
#[derive(Clone, Copy, Debug, Default)]
struct CpuIdle {
    /// Time of its last event, ns.
    last_ns: Option<u64>,
    /// The idle period it is in: `(state, start_ns)`; for a halt merged with the poll before
    /// it, `start_ns` is the poll's entry.
    open: Option<(u32, u64)>,
    /// A poll that ended `(entry, exit)`: merged if a halt comes next, a period of its own if not.
    poll: Option<(u64, u64)>,
}

/// Skipped events, for the notes.
#[derive(Clone, Copy, Debug, Default)]
struct Skipped {
    other_events: usize,
    lost: usize,
    cut_last_line: Option<usize>,
}

/// The `perf script` reader, fed one line at a time: it keeps each CPU's progress, not the
/// lines, so a trace of any length is read in the memory of its CPUs.
#[derive(Debug, Default)]
pub struct Reader {
    cpus: Vec<CpuIdle>,
    skipped: Skipped,
    first_ns: Option<u64>,
    last_ns: u64,
    cpus_online: Option<u32>,
    periods: u64,
}

impl Reader {
    /// Reads line `number`; `complete` is false for a last line without an end of line,
    /// which is skipped with a note (perf script cut short). Returns the idle period the line
    /// ends, if any, or what is wrong with the line.
    pub fn line(&mut self, number: usize, raw: &str, complete: bool) -> Result<Option<IdlePeriod>, String> {
        if !complete {
            if !raw.trim().is_empty() {
                self.skipped.cut_last_line = Some(number);
            }
            return Ok(None);
        }
        let (time_ns, state, cpu) = match parse_line(raw)? {
            Line::Blank => return Ok(None),
            Line::Header(h) => {
                if self.cpus_online.is_none() {
                    self.cpus_online = header_cpus_online(h)?;
                }
                return Ok(None);
            }
            Line::Other => {
                self.skipped.other_events += 1;
                return Ok(None);
            }
            Line::CpuIdle { time_ns, state, cpu } => (time_ns, state, cpu),
        };
        let ended = self.event(time_ns, state, cpu)?;
        self.periods += u64::from(ended.is_some());
        Ok(ended)
    }

    /// A `power:cpu_idle` event of `cpu` at `time_ns`: entering `state`, or leaving idle
    /// ([`EXIT_STATE`]). Returns the idle period it ends, if any.
    fn event(&mut self, time_ns: u64, state: u32, cpu: u32) -> Result<Option<IdlePeriod>, String> {
        if self.cpus.len() <= cpu as usize {
            self.cpus.resize(cpu as usize + 1, CpuIdle::default());
        }
        let c = &mut self.cpus[cpu as usize];
        if let Some(last) = c.last_ns.filter(|&last| time_ns < last) {
            return Err(format!(
                "time goes backwards on cpu {cpu} ({} s after {} s; perf script sorts events by time: \
                 was the file edited or concatenated?)",
                seconds(time_ns),
                seconds(last)
            ));
        }
        let first_event = c.last_ns.is_none();
        c.last_ns = Some(time_ns);
        self.first_ns = Some(self.first_ns.map_or(time_ns, |f| f.min(time_ns)));
        self.last_ns = self.last_ns.max(time_ns);
        let period = |start: u64, end: u64| Some(IdlePeriod { cpu, idle_ns: end - start, start_ns: Some(start) });
        let mut ended = None;
        if state == EXIT_STATE {
            match c.open.take() {
                Some((0, start)) => c.poll = Some((start, time_ns)),
                Some((_, start)) => ended = period(start, time_ns),
                None if first_event => {} // the trace began while this CPU was idle
                None => self.skipped.lost += 1,
            }
        } else {
            if c.open.take().is_some() {
                self.skipped.lost += 1; // its exit was lost
            }
            c.open = Some(match c.poll.take() {
                Some((poll_start, _)) if state != 0 => (state, poll_start),
                Some((poll_start, poll_end)) => {
                    ended = period(poll_start, poll_end);
                    (state, time_ns)
                }
                None => (state, time_ns),
            });
        }
        Ok(ended)
    }

    /// After the last line: the polls still open at the very end (their wakeup came, or they
    /// timed out just as the trace ended), the trace's span and the notes; or why the trace
    /// has no idle periods.
    pub fn finish(&mut self, path: &Path) -> Result<(Vec<IdlePeriod>, Span, Vec<String>), TraceError> {
        let mut tail = Vec::new();
        for (cpu, c) in self.cpus.iter_mut().enumerate() {
            if let Some((start, end)) = c.poll.take() {
                tail.push(IdlePeriod { cpu: cpu as u32, idle_ns: end - start, start_ns: Some(start) });
            }
        }
        let Some(first_ns) = self.first_ns.filter(|_| self.periods > 0 || !tail.is_empty()) else {
            let what = if self.first_ns.is_none() { "no" } else { "no complete" };
            return Err(TraceError::Unusable {
                path: path.to_owned(),
                reason: format!(
                    "{what} {EVENT} idle periods (an entry and its exit on one CPU): record them on the guest \
                     with `perf record -e {EVENT} -a -- sleep 10; perf script > idle.txt`"
                ),
            });
        };
        let with_events = self.cpus.iter().filter(|c| c.last_ns.is_some()).count();
        if let Some(online) = self.cpus_online.filter(|&n| (n as usize) < with_events) {
            return Err(TraceError::Unusable {
                path: path.to_owned(),
                reason: format!(
                    "the header says {online} CPUs are online, but {with_events} CPUs have idle events: is the \
                     header damaged? (delete its `nrcpus online` line to go without it)"
                ),
            });
        }
        let span = Span { wall_ns: self.last_ns - first_ns, cpus_online: self.cpus_online };
        Ok((tail, span, notes(&self.skipped, path)))
    }
}

fn notes(skipped: &Skipped, path: &Path) -> Vec<String> {
    let mut notes = Vec::new();
    if skipped.other_events > 0 {
        notes.push(format!("skipped {} of other tracepoints", crate::units::count(skipped.other_events, "event")));
    }
    if skipped.lost > 0 {
        notes.push(format!(
            "skipped {} idle entries or exits without a partner (perf lost events? \
             record fewer events or with a larger buffer, -m)",
            skipped.lost
        ));
    }
    if let Some(line) = skipped.cut_last_line {
        notes.push(format!(
            "{}:{line}: the last line has no end of line: taken as cut short and skipped",
            path.display()
        ));
    }
    notes
}

/// `nrcpus online : 2` from `perf script --header`: the number, `None` for another header
/// line, an error for a count no recording can have. One rule: a whole number from 1 to
/// [`MAX_CPU`] (the most CPUs the readers allow); [`Reader::finish`] checks it is at least the
/// CPUs that have events.
fn header_cpus_online(header: &str) -> Result<Option<u32>, String> {
    let Some((key, value)) = header.split_once(':') else { return Ok(None) };
    if key.trim() != "nrcpus online" {
        return Ok(None);
    }
    match value.trim().parse::<u32>() {
        Ok(n @ 1..=MAX_CPU) => Ok(Some(n)),
        _ => Err(format!(
            "the header says {} CPUs are online, which no recording can have (1 to {MAX_CPU}): is the header \
             damaged? (delete the line to go without it)",
            crate::quote(value.trim())
        )),
    }
}

fn seconds(ns: u64) -> String {
    format!("{}.{:09}", ns / 1_000_000_000, ns % 1_000_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{Format, Trace};

    fn p(text: &str) -> Result<Trace, TraceError> {
        crate::trace::parse(text.as_bytes(), Path::new("idle.txt"), Some(Format::Perf))
    }

    /// A `perf script` line as perf prints it.
    fn ev(cpu: u32, time: &str, state: i64) -> String {
        let state = if state < 0 { u64::from(EXIT_STATE) } else { state as u64 };
        format!("         swapper     0 [{cpu:03}] {time:>12}: power:cpu_idle: state={state} cpu_id={cpu}\n")
    }

    fn lengths(t: &Trace) -> Vec<(u32, u64)> {
        t.periods.iter().map(|p| (p.cpu, p.idle_ns)).collect()
    }

    #[test]
    fn times() {
        assert_eq!(parse_time("869.640748"), Some(869_640_748_000));
        assert_eq!(parse_time("869.640748662"), Some(869_640_748_662));
        assert_eq!(parse_time("0.5"), Some(500_000_000));
        assert_eq!(parse_time("869.6407486621"), None);
        assert_eq!(parse_time("869"), None);
        assert_eq!(parse_time(".5"), None);
        assert_eq!(parse_time("1.x"), None);
    }

    #[test]
    fn halts_become_periods() {
        let t = p(&[ev(0, "1.000000", 1), ev(0, "1.000040", -1), ev(0, "1.000100", 1), ev(0, "1.001100", -1)].concat())
            .unwrap();
        assert_eq!(lengths(&t), vec![(0, 40_000), (0, 1_000_000)]);
        assert_eq!(t.span, Some(Span { wall_ns: 1_100_000, cpus_online: None }));
        assert_eq!(t.cpus, vec![0]);
        assert!(t.notes.is_empty(), "{:?}", t.notes);
    }

    #[test]
    fn poll_then_halt_is_one_period() {
        let t = p(&[
            // a poll the wakeup ended: a period of its own
            ev(0, "2.000000", 0),
            ev(0, "2.000030", -1),
            // a poll that timed out after 50 us, then a halt: one period of 50 + 2 + 148 us
            ev(0, "2.000100", 0),
            ev(0, "2.000150", -1),
            ev(0, "2.000152", 1),
            ev(0, "2.000300", -1),
            // a poll at the very end
            ev(0, "2.000400", 0),
            ev(0, "2.000410", -1),
        ]
        .concat())
        .unwrap();
        assert_eq!(lengths(&t), vec![(0, 30_000), (0, 200_000), (0, 10_000)]);
    }

    #[test]
    fn interleaved_cpus_are_kept_apart() {
        let t = p(&[
            ev(1, "5.000000", 0),
            ev(0, "5.000001", 1),
            ev(1, "5.000020", -1),
            ev(1, "5.000021", 1),  // cpu 1: poll timed out at 20 us, halts
            ev(0, "5.000050", -1), // cpu 0: a 49 us halt, during cpu 1's period
            ev(0, "5.000060", 0),
            ev(0, "5.000070", -1),
            ev(1, "5.000090", -1), // cpu 1: 90 us in all
            ev(0, "5.000080", 0),  // cpu 0: its poll at 60 us was a hit (10 us), a new poll begins
            ev(0, "5.000085", -1),
        ]
        .concat())
        .unwrap();
        assert_eq!(lengths(&t), vec![(0, 49_000), (1, 90_000), (0, 10_000), (0, 5_000)]);
        assert_eq!(t.cpus, vec![0, 1]);
    }

    #[test]
    fn the_edges_of_the_recording_are_dropped_quietly() {
        let t =
            p(&[ev(0, "1.0", -1), ev(0, "1.000010", 1), ev(0, "1.000020", -1), ev(0, "1.000030", 1)].concat()).unwrap();
        assert_eq!(lengths(&t), vec![(0, 10_000)]);
        assert!(t.notes.is_empty(), "{:?}", t.notes);
        assert_eq!(t.span.unwrap().wall_ns, 30_000);
    }

    #[test]
    fn lost_events_are_skipped_with_a_note() {
        let t = p(&[
            ev(0, "1.000000", 1),
            ev(0, "1.000010", 1), // the exit before this was lost
            ev(0, "1.000020", -1),
            ev(0, "1.000030", -1), // an exit twice
        ]
        .concat())
        .unwrap();
        assert_eq!(lengths(&t), vec![(0, 10_000)]);
        assert_eq!(t.notes.len(), 1);
        assert!(t.notes[0].contains("skipped 2 idle entries or exits"), "{:?}", t.notes);
    }

    #[test]
    fn header_other_events_and_ns_timestamps() {
        let text = "# ========\n# nrcpus online : 4\n# ========\n#\n\
            kworker/u4:1 H  81 [000]  3.000000000: sched:sched_switch: prev_comm=x prev_pid=1\n\
            swapper 0 [000] 3.000000100: power:cpu_idle_miss: cpu_id=0 state=1 type=below\n\
            swapper 0 [000] 3.000000500: power:cpu_idle: state=1 cpu_id=0\n\
            swapper 0 [000] 3.000001750: power:cpu_idle: state=4294967295 cpu_id=0\n";
        let t = p(text).unwrap();
        assert_eq!(lengths(&t), vec![(0, 1_250)]);
        assert_eq!(t.span, Some(Span { wall_ns: 1_250, cpus_online: Some(4) }));
        assert_eq!(t.notes, vec!["skipped 2 events of other tracepoints".to_owned()]);
    }

    #[test]
    fn a_cut_last_line_is_skipped_with_a_note() {
        let text = [ev(0, "1.000000", 1), ev(0, "1.000010", -1), ev(1, "1.000020", 1)].concat();
        let cut = &text[..text.len() - 12]; // "...: power:cpu_idle: state"
        let t = p(cut).unwrap();
        assert_eq!(lengths(&t), vec![(0, 10_000)]);
        assert_eq!(t.notes.len(), 1);
        assert!(t.notes[0].starts_with("idle.txt:3: the last line has no end of line"), "{:?}", t.notes);
        // Even a cut line that parses is not trusted: "cpu_id=12" may have been cut to "cpu_id=1".
        let t = p(&[ev(0, "1.000000", 1), ev(0, "1.000010", -1).trim_end().to_owned()].concat());
        let err = t.unwrap_err().to_string();
        assert!(err.contains("no complete power:cpu_idle idle periods"), "{err}");
    }

    #[test]
    fn garbled_lines_are_errors_that_name_the_line() {
        let err = p(&[ev(0, "1.000000", 1), "swapper 0 [000] 1.00002".into(), "\n".into(), ev(0, "1.1", -1)].concat())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("idle.txt:2: not a perf script event line"), "{err}");
        assert!(err.contains("expected `perf script` output of power:cpu_idle"), "{err}");
        let err = p("swapper 0 [000] 1.000020: power:cpu_idle: state=1\n").unwrap_err().to_string();
        assert!(err.starts_with("idle.txt:1: power:cpu_idle event without both state= and cpu_id="), "{err}");
        let err = p("swapper 0 [000] 1.000020: power:cpu_idle: state=x cpu_id=0\n").unwrap_err().to_string();
        assert!(err.contains("bad state \"x\""), "{err}");
        let err = p("swapper 0 [000] 1.000020: power:cpu_idle: state=1 cpu_id=99999999\n").unwrap_err().to_string();
        assert!(err.contains("cpu_id 99999999 is beyond"), "{err}");
    }

    #[test]
    fn a_header_with_fewer_cpus_than_have_events_is_an_error() {
        let events =
            [ev(0, "1.000000", 1), ev(0, "1.000010", -1), ev(3, "1.000000", 1), ev(3, "1.000020", -1)].concat();
        let err = p(&format!("# nrcpus online : 1\n{events}")).unwrap_err().to_string();
        assert!(err.contains("the header says 1 CPUs are online, but 2 CPUs have idle events"), "{err}");
        assert_eq!(p(&format!("# nrcpus online : 2\n{events}")).unwrap().span.unwrap().cpus_online, Some(2));
    }

    #[test]
    fn time_going_backwards_is_an_error() {
        let err = p(&[ev(0, "2.000000", 1), ev(0, "1.000000", -1)].concat()).unwrap_err().to_string();
        assert!(err.starts_with("idle.txt:2: time goes backwards on cpu 0"), "{err}");
    }

    #[test]
    fn no_events_is_an_error_that_says_how_to_record() {
        let err = p("# only a header\n").unwrap_err().to_string();
        assert!(err.contains("perf record -e power:cpu_idle -a"), "{err}");
        assert!(err.starts_with("idle.txt: no power:cpu_idle idle periods"), "{err}");
        let err = p("kworker 1 [000] 1.0: sched:sched_switch: x=y\n").unwrap_err().to_string();
        assert!(err.contains("no power:cpu_idle idle periods"), "{err}");
    }

    #[test]
    fn a_header_with_0_cpus_is_named() {
        let err = p("# ========\n# nrcpus online : 0\n").unwrap_err().to_string();
        assert!(err.starts_with("idle.txt:2: the header says \"0\" CPUs are online"), "{err}");
        for bad in ["-1", "18446744073709551615", "1000000", "65536", "two"] {
            let err = p(&format!("# nrcpus online : {bad}\n")).unwrap_err().to_string();
            assert!(err.contains("which no recording can have (1 to 65535)"), "{bad}: {err}");
        }
    }

    #[test]
    fn signed_exit_state() {
        let t =
            p("a 0 [000] 1.0: power:cpu_idle: state=1 cpu_id=0\na 0 [000] 1.5: power:cpu_idle: state=-1 cpu_id=0\n")
                .unwrap();
        assert_eq!(lengths(&t), vec![(0, 500_000_000)]);
    }
}
