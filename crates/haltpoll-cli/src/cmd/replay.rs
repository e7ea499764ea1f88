//! `haltpoll replay TRACE`: the governor and the poll loop model over a trace of idle periods.

use std::io::{self, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use haltpoll::replay::{Period, Setup};
use haltpoll::share;
use haltpoll::{Adjustment, Decision, GovernorKind, GovernorParams, Params, PredictiveParams};
use haltpoll_linux::trace::{self, Format, IdlePeriod, Replayed, Replayer, Stream, TraceError};
use haltpoll_linux::units;
use serde::Serialize;

use crate::options::TraceFormat;
use crate::output::{self, fmt_ns, percent};
use crate::table::{self, Column};

/// Arguments of `haltpoll replay`.
#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  # the example trace with Linux's defaults: a line per idle period, then the summary
  haltpoll replay examples/traces/mixed.txt
  # a perf trace of a guest with a 400 us ceiling, the summary only
  haltpoll replay examples/traces/perf-idle.txt --guest-halt-poll-ns 400000 --summary-only
  # the summary as JSON: the last of the JSON Lines
  haltpoll replay examples/traces/mixed.txt --json | tail -n 1
  # the predictive governor with a 2% budget
  haltpoll replay examples/traces/mixed.txt --governor predictive --poll-budget 2%")]
pub struct ReplayArgs {
    /// Trace file ('-' for stdin): one idle period per line in ns, or `perf script` output of
    /// power:cpu_idle.
    #[arg(value_name = "TRACE")]
    pub trace: PathBuf,
    #[command(flatten)]
    pub format: TraceFormat,
    /// The governor to replay.
    #[arg(long, value_enum, default_value_t = GovernorKind::Linux)]
    pub governor: GovernorKind,
    #[command(flatten)]
    pub linux: Params,
    #[command(flatten)]
    pub predictive: PredictiveParams,
    /// How long after its wakeup a halt ends (the exit, the IPI, the return to the guest), ns
    /// (units allowed). Linux's rule counts it as idle time; `--block-time poll-and-halt` and
    /// the predictive governor are told it and take it off.
    #[arg(long, value_name = "NS", default_value = "0", value_parser = units::parse_ns)]
    pub halt_wake_ns: u64,
    /// One JSON object per period (JSON Lines), then one with the summary.
    #[arg(long)]
    pub json: bool,
    /// Print only the summary.
    #[arg(long, conflicts_with = "json")]
    pub summary_only: bool,
}

/// One period as JSON.
#[derive(Serialize)]
struct PeriodJson {
    cpu: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    start_ns: Option<u64>,
    idle_ns: u64,
    decision: &'static str,
    timer_ns: Option<u64>,
    poll_limit_ns_before: u64,
    poll_ns: u64,
    halt_ns: u64,
    poll_limit_ns_after: u64,
    hit: bool,
    adjustment: &'static str,
}

impl PeriodJson {
    fn new(idle: &IdlePeriod, p: &Period) -> Self {
        PeriodJson {
            cpu: idle.cpu,
            start_ns: idle.start_ns,
            idle_ns: p.idle_ns,
            decision: decision_name(p.decision),
            timer_ns: match p.decision {
                Decision::TimerThenPoll { timer_ns, .. } => Some(timer_ns),
                Decision::Halt | Decision::Poll { .. } => None,
            },
            poll_limit_ns_before: p.poll_limit_ns_before,
            poll_ns: p.poll_ns,
            halt_ns: p.halt_ns,
            poll_limit_ns_after: p.poll_limit_ns_after,
            hit: p.hit(),
            adjustment: adjustment_name(p.adjustment),
        }
    }
}

#[derive(Serialize)]
struct SummaryJson {
    periods: u64,
    poll_hits: u64,
    halts: u64,
    idle_ns: u64,
    poll_ns: u64,
    wasted_poll_ns: u64,
    halt_ns: u64,
    grows: u64,
    shrinks: u64,
    timer_wakes: u64,
    no_exit_share: f64,
    poll_share_of_idle: f64,
    /// The window at the end, for a trace of one CPU.
    #[serde(skip_serializing_if = "Option::is_none")]
    final_poll_limit_ns: Option<u64>,
    cpus: Vec<CpuJson>,
    governor: &'static str,
    halt_wake_ns: u64,
    params: serde_json::Value,
}

#[derive(Serialize)]
struct CpuJson {
    cpu: u32,
    final_poll_limit_ns: u64,
}

fn decision_name(d: Decision) -> &'static str {
    match d {
        Decision::Halt => "halt",
        Decision::Poll { .. } => "poll",
        Decision::TimerThenPoll { .. } => "timer-then-poll",
    }
}

fn adjustment_name(a: Adjustment) -> &'static str {
    match a {
        Adjustment::Unchanged => "unchanged",
        Adjustment::Grew { .. } => "grew",
        Adjustment::Shrank { .. } => "shrank",
    }
}

impl ReplayArgs {
    /// The governor the options choose, checked.
    pub fn setup(&self) -> Result<Setup> {
        let governor = governor_params(self.governor, &self.linux, &self.predictive)?;
        Ok(Setup { governor, halt_wake_ns: self.halt_wake_ns })
    }
}

/// The parameters of the governor `kind` from its options, checked.
fn governor_params(kind: GovernorKind, linux: &Params, predictive: &PredictiveParams) -> Result<GovernorParams> {
    Ok(match kind {
        GovernorKind::Linux => linux.validate().context("invalid governor parameters")?.into(),
        GovernorKind::Predictive => predictive.validate().context("invalid predictive governor parameters")?.into(),
    })
}

/// The parameters as JSON: Linux's with the kernel's names, or the predictive governor's.
fn params_json(params: &GovernorParams) -> serde_json::Value {
    let json = match params {
        GovernorParams::Linux(p) => serde_json::to_value(p),
        GovernorParams::Predictive(p) => serde_json::to_value(p),
    };
    json.expect("parameters serialize")
}

/// Runs `haltpoll replay`: the trace is streamed, each period replayed and printed as it is
/// read, so a trace of any length runs in the memory of its CPUs.
pub fn run(args: &ReplayArgs) -> Result<()> {
    let setup = args.setup()?;
    let mut stream = trace::Stream::open(&args.trace, args.format.format)?;
    let mut failure = None;
    let printed = output::write_stdout(|out| match write_report(out, &mut stream, &setup, args) {
        Err(Failure::Trace(e)) => {
            failure = Some(e);
            out.flush()
        }
        Err(Failure::Io(e)) => Err(e),
        Ok(()) => Ok(()),
    });
    if let Some(ending) = stream.ending() {
        output::print_notes(&ending.notes);
    }
    match failure {
        Some(e) => Err(e.into()),
        None => printed,
    }
}

/// Why a report stopped: the trace went bad, or the output did.
enum Failure {
    Trace(TraceError),
    Io(io::Error),
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Failure {
        Failure::Io(e)
    }
}

fn write_report(out: &mut dyn Write, stream: &mut Stream, setup: &Setup, args: &ReplayArgs) -> Result<(), Failure> {
    let replayed = write_periods(out, stream, setup, args)?;
    if args.json {
        let summary = SummaryJson::new(&replayed, setup);
        output::write_json_line(out, &serde_json::json!({ "summary": summary }))?;
        return Ok(());
    }
    if !args.summary_only {
        writeln!(out)?;
    }
    writeln!(out, "summary")?;
    output::write_fields(out, "  ", 19, &summary_fields(stream, setup, &replayed))?;
    Ok(())
}

/// A period's line: where it ran, and what the governor made of it.
type PeriodRow = (IdlePeriod, Period);

/// The columns of the period lines; the first, the CPU, only for traces that name CPUs.
const PERIOD_COLUMNS: [Column<PeriodRow>; 7] = [
    Column::right("cpu ", 0, 5, |_, (idle, _)| format!("{} ", idle.cpu)),
    Column::right("idle_ns", 0, 14, |_, (_, p)| p.idle_ns.to_string()),
    Column::right("window_ns", 1, 14, |_, (_, p)| p.poll_limit_ns_before.to_string()),
    Column::right("poll_ns", 1, 14, |_, (_, p)| p.poll_ns.to_string()),
    Column::right("halt_ns", 1, 14, |_, (_, p)| p.halt_ns.to_string()),
    Column::right("window_after", 1, 14, |_, (_, p)| p.poll_limit_ns_after.to_string()),
    Column::left("outcome", 2, 0, |_, (_, p)| outcome(p).to_owned()),
];

/// Replays the stream's periods, writing each as it goes (unless only the summary is asked
/// for).
fn write_periods(
    out: &mut dyn Write,
    stream: &mut Stream,
    setup: &Setup,
    args: &ReplayArgs,
) -> Result<Replayed, Failure> {
    let columns = if stream.names_cpus() { &PERIOD_COLUMNS[..] } else { &PERIOD_COLUMNS[1..] };
    if !args.json && !args.summary_only {
        table::write_header(out, columns)?;
    }
    let mut replayer = Replayer::new(*setup);
    while let Some(idle) = stream.next_period().map_err(Failure::Trace)? {
        let p = replayer.period(&idle);
        if args.json {
            output::write_json_line(out, &PeriodJson::new(&idle, &p))?;
        } else if !args.summary_only {
            table::write_row(out, columns, &(idle, p))?;
        }
    }
    Ok(replayer.finish())
}

impl SummaryJson {
    fn new(replayed: &Replayed, setup: &Setup) -> SummaryJson {
        let (s, windows) = (&replayed.summary, &replayed.final_windows);
        SummaryJson {
            periods: s.periods,
            poll_hits: s.poll_hits,
            halts: s.halts,
            idle_ns: s.idle_ns,
            poll_ns: s.poll_ns,
            wasted_poll_ns: s.wasted_poll_ns,
            halt_ns: s.halt_ns,
            grows: s.grows,
            shrinks: s.shrinks,
            timer_wakes: s.timer_wakes,
            no_exit_share: s.no_exit_share(),
            poll_share_of_idle: s.poll_share_of_idle(),
            final_poll_limit_ns: if windows.len() > 1 { None } else { windows.first().map(|w| w.1) },
            cpus: windows.iter().map(|&(cpu, final_poll_limit_ns)| CpuJson { cpu, final_poll_limit_ns }).collect(),
            governor: setup.governor.kind().name(),
            halt_wake_ns: setup.halt_wake_ns,
            params: params_json(&setup.governor),
        }
    }
}

/// The summary's lines, as (label, value).
fn summary_fields(stream: &Stream, setup: &Setup, replayed: &Replayed) -> Vec<(&'static str, String)> {
    let s = &replayed.summary;
    let mut fields = vec![("governor", setup.governor.kind().name().to_owned())];
    if stream.format() == Format::Perf {
        let wall = stream.ending().and_then(|e| e.span).map_or(0, |s| s.wall_ns);
        let cpus = output::count(replayed.final_windows.len(), "CPU");
        let trace =
            format!("{}, {cpus} with idle periods, {} from first to last event", stream.format().name(), fmt_ns(wall));
        fields.push(("trace", trace));
    }
    let wasted = percent(share(s.wasted_poll_ns, s.poll_ns));
    fields.extend([
        ("periods", s.periods.to_string()),
        ("poll hits", format!("{} ({} of wakeups needed no exit)", s.poll_hits, percent(s.no_exit_share()))),
        ("halts", s.halts.to_string()),
        ("idle time", fmt_ns(s.idle_ns)),
        ("poll time", format!("{} ({} of idle time)", fmt_ns(s.poll_ns), percent(s.poll_share_of_idle()))),
        ("wasted poll time", format!("{} ({wasted} of poll time ended in a halt anyway)", fmt_ns(s.wasted_poll_ns))),
    ]);
    let ends = window_ends(&replayed.final_windows);
    match setup.governor {
        GovernorParams::Linux(_) => {
            fields.push(("window", format!("grew {} times, shrank {} times, {ends}", s.grows, s.shrinks)));
        }
        GovernorParams::Predictive(_) => {
            let wakes = format!("{} (halts a timer ended to poll before a predicted wakeup)", s.timer_wakes);
            fields.extend([("timer wakes", wakes), ("planned window", ends)]);
        }
    }
    fields
}

/// Where the CPUs' windows ended.
fn window_ends(windows: &[(u32, u64)]) -> String {
    match (windows.iter().map(|w| w.1).min(), windows.iter().map(|w| w.1).max()) {
        (Some(lo), Some(hi)) if windows.len() > 1 => {
            format!("ends between {} and {} across {} CPUs", fmt_ns(lo), fmt_ns(hi), windows.len())
        }
        (Some(w), _) => format!("ends at {}", fmt_ns(w)),
        (None, _) => "never used".to_owned(),
    }
}

/// What happened in a period, in words.
fn outcome(p: &Period) -> &'static str {
    match (p.hit(), p.adjustment) {
        (true, _) if p.timer_fired => "timer, poll hit",
        (true, _) => "poll hit",
        (false, _) if p.timer_fired => "timer, halt",
        (false, Adjustment::Unchanged) => "halt",
        (false, Adjustment::Grew { .. }) => "halt, window grew",
        (false, Adjustment::Shrank { .. }) => "halt, window shrank",
    }
}
