//! `haltpoll vm pingpong`: haltpoll's own guest on KVM, pairs of vCPUs passing a message back
//! and forth, measured: round trip, wake latency, VM exits, IPIs, host polls, CPU time.

use std::io::{self, Write};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use haltpoll::{GovernorKind, LATENCY_ANY};
use haltpoll_abi::{Counters, DriverLoad, DriverReport};
use haltpoll_vmm::stats::KvmStat;
use haltpoll_vmm::{IdlePolicy, PollControl, Pooled, RealtimeHint, RunOptions, RunReport, VmmError};
use serde::Serialize;

use crate::interrupt::Interrupt;
use crate::options::GuestGovernors;
use crate::output::{self, OutputFile, fmt_ns, percent};
use crate::progress::{end_progress, partial, progress_bar};
use crate::table::{self, Column};
use crate::think_trace::read_think_trace;
use haltpoll_linux::trace::text::{self, Section};
use haltpoll_linux::units::parse_ns;

/// Arguments of `haltpoll vm`.
#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  # the haltpoll driver in our guest: what it did, and exits, IPIs and CPU per round trip
  haltpoll vm pingpong --idle haltpoll --round-trips 2000 --repeat 1
  # what a halt costs when the host does not poll either
  haltpoll vm pingpong --idle halt --host-halt-poll-ns 0 --round-trips 2000 --repeat 1")]
pub struct VmArgs {
    #[command(subcommand)]
    pub command: VmCommand,
}

/// What to run in the VM.
#[derive(Subcommand, Debug)]
pub enum VmCommand {
    /// Pairs of vCPUs pass a message back and forth; report round trip, exits, IPIs, CPU time.
    Pingpong(PingpongArgs),
}

/// Arguments of `haltpoll vm pingpong`.
#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  # the haltpoll driver in our guest: what it did, and exits, IPIs and CPU per round trip
  haltpoll vm pingpong --idle haltpoll --round-trips 2000 --repeat 1
  # halting, 30 us apart; every vCPU's idle periods saved as a trace to replay
  haltpoll vm pingpong --idle halt --think-ns 30000 -n 2000 -r 1 --trace idle.txt
  # every counter of every repetition as JSON
  haltpoll vm pingpong --idle haltpoll -n 1000 -r 2 --json")]
pub struct PingpongArgs {
    /// Round trips per pair of vCPUs, per repetition.
    #[arg(short = 'n', long, value_name = "N", default_value_t = 10_000)]
    pub round_trips: u64,
    /// Spin this long before sending each message, ns (the receiver idles about as long).
    #[arg(long, value_name = "NS", default_value_t = 0)]
    pub think_ns: u64,
    /// Take the think time before each measured message from FILE's idle periods, in order
    /// (repeated if the run is longer), instead of --think-ns: a trace in any format `replay`
    /// reads. Periods above 10 ms are cut to 10 ms.
    #[arg(long, value_name = "FILE", conflicts_with = "think_ns")]
    pub think_trace: Option<PathBuf>,
    /// How a vCPU waits for the next message.
    #[arg(long, value_enum, default_value_t = IdlePolicy::Halt)]
    pub idle: IdlePolicy,
    /// The VM's host halt-polling window, ns (KVM_CAP_HALT_POLL). Default: the host's own
    /// (KVM's halt_poll_ns, 200000 unless changed).
    #[arg(long, value_name = "NS")]
    pub host_halt_poll_ns: Option<u64>,
    /// vCPUs; pairs ping-pong (0 with 1, 2 with 3...), so an even number.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub vcpus: usize,
    /// Repetitions, each in a new VM; the round trip reported is their median. 1 to 10000.
    #[arg(short = 'r', long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub repeat: u32,
    /// Show the guest KVM_HINTS_REALTIME (dedicated host CPUs).
    #[arg(long, value_enum, default_value_t = RealtimeHint::Auto)]
    pub realtime_hint: RealtimeHint,
    /// What the guest writes to MSR_KVM_POLL_CONTROL on each vCPU at start (the haltpoll
    /// driver then writes its own value: 0 where the guest polls).
    #[arg(long, value_enum, default_value_t = PollControl::Leave)]
    pub poll_control: PollControl,
    /// Round trips per pair before the measured ones (not counted; lets the governor settle).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub warmup: u64,
    /// Think time of the warm-up round trips, ns.
    #[arg(long, value_name = "NS", default_value_t = 0)]
    pub warmup_think_ns: u64,
    /// Latency requirement of each vCPU, comma-separated in vCPU order (ns, or with a unit;
    /// `any` for none); one value applies to every vCPU. 0 means poll only (--idle haltpoll).
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = parse_latency_req)]
    pub latency_req: Vec<u64>,
    /// Load the haltpoll driver even without the REALTIME hint (cpuidle_haltpoll.force=1).
    #[arg(long)]
    pub force: bool,
    /// Leave the vCPU threads unpinned.
    #[arg(long)]
    pub no_pin: bool,
    /// Time limit of one repetition: seconds, or a duration with its unit (30s, 500ms), from
    /// 1 ms to 1000000 s (default: 10 s plus 500 ms and two think times per round trip).
    #[arg(long, value_name = "SECS", value_parser = parse_time_limit)]
    pub time_limit: Option<Duration>,
    /// Write every vCPU's idle periods (ns, one per message received) to FILE, in the trace
    /// format `haltpoll replay` reads.
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
    /// One JSON object: the options, every repetition, the summary.
    #[arg(long)]
    pub json: bool,
    /// The governor of the haltpoll driver (--idle haltpoll): Linux's or the predictive one.
    #[arg(long = "governor", value_enum, default_value_t = GovernorKind::Linux)]
    pub governor_kind: GovernorKind,
    #[command(flatten)]
    pub governors: GuestGovernors,
}

/// A latency requirement: a duration, or `any` for none.
fn parse_latency_req(text: &str) -> Result<u64, String> {
    if text.trim() == "any" { Ok(LATENCY_ANY) } else { parse_ns(text) }
}

/// The per-vCPU latency requirements for `vcpus` vCPUs: one value applies to all.
pub fn latency_reqs(list: &[u64], vcpus: usize) -> Vec<u64> {
    match list {
        [one] => vec![*one; vcpus],
        many => many.to_vec(),
    }
}

/// The time limits `--time-limit` takes: below a millisecond the watchdog cannot tell (it
/// looks every 20 ms), above 1e6 s (11.6 days) is a typing error.
const TIME_LIMITS: RangeInclusive<Duration> = Duration::from_millis(1)..=Duration::from_secs(1_000_000);

/// Parses `--time-limit`: a number of seconds ("30", "2.5", "1e3"), or a duration with its
/// unit ([`parse_ns`]: "500ms"), within [`TIME_LIMITS`].
fn parse_time_limit(text: &str) -> Result<Duration, String> {
    let limit = match text.trim().parse::<f64>() {
        // NaN, negative and huge counts of seconds have no Duration: out of range as well.
        Ok(secs) => Duration::try_from_secs_f64(secs).ok(),
        Err(_) => Some(Duration::from_nanos(parse_ns(text)?)),
    };
    limit.filter(|limit| TIME_LIMITS.contains(limit)).ok_or_else(|| {
        format!("{text:?} is out of range: give 0.001 to 1000000 seconds (e.g. 30, or with a unit: 500ms, 30s)")
    })
}

impl PingpongArgs {
    fn options(&self) -> Result<RunOptions> {
        let think_trace_ns = match &self.think_trace {
            Some(path) => read_think_trace(path, haltpoll_abi::layout::THINKS_MAX as usize)?,
            None => Vec::new(),
        };
        Ok(RunOptions {
            vcpus: self.vcpus,
            idle: self.idle,
            round_trips: self.round_trips,
            think_ns: self.think_ns,
            think_trace_ns,
            warmup_round_trips: self.warmup,
            warmup_think_ns: self.warmup_think_ns,
            governor: self.governors.select(self.governor_kind)?,
            latency_req_ns: latency_reqs(&self.latency_req, self.vcpus),
            force: self.force,
            host_halt_poll_ns: self.host_halt_poll_ns,
            realtime_hint: self.realtime_hint,
            poll_control: self.poll_control,
            pin: !self.no_pin,
            time_limit: self.time_limit,
            ..RunOptions::default()
        })
    }
}

/// An option value as the user types it.
fn value_name(value: impl ValueEnum) -> String {
    value.to_possible_value().map_or_else(String::new, |v| v.get_name().to_owned())
}

/// Runs `haltpoll vm ...`.
pub fn run(args: &VmArgs) -> Result<()> {
    match &args.command {
        VmCommand::Pingpong(args) => pingpong(args),
    }
}

fn pingpong(args: &PingpongArgs) -> Result<()> {
    let options = args.options()?;
    options.validate()?;
    // The trace file before the first VM: a path that cannot be written fails now.
    let trace = args.trace.as_deref().map(|path| OutputFile::create(path, "trace")).transpose()?;
    let interrupt = Interrupt::watch()?;
    let bar = progress_bar(u64::from(args.repeat));
    let mut reports = Vec::with_capacity(args.repeat as usize);
    for repetition in 1..=args.repeat {
        bar.set_message(format!("repetition {repetition} of {}", args.repeat));
        match haltpoll_vmm::run_until(&options, interrupt.flag()) {
            Ok(report) => reports.push(report),
            Err(VmmError::Interrupted) => break,
            Err(e) => {
                bar.finish_and_clear();
                return Err(e).with_context(|| format!("repetition {repetition} of {}", args.repeat));
            }
        }
        bar.inc(1);
        if interrupt.requested() {
            break;
        }
    }
    let partial = partial(reports.len(), args.repeat as usize, "repetitions", None);
    end_progress(&bar, partial.as_ref());
    let partial = match partial {
        Some(nothing) if reports.is_empty() => return Err(nothing.into()),
        partial => partial,
    };
    let summary = Summary::new(&reports);
    output::write_stdout(|out| {
        if args.json {
            let json = Json {
                options: OptionsJson::new(args, &reports[0]),
                partial: partial.is_some(),
                repetitions: reports.iter().map(RepetitionJson::new).collect(),
                summary,
            };
            output::write_json(out, &json)
        } else {
            if let Some(interrupted) = &partial {
                writeln!(out, "{}", interrupted.marker())?;
            }
            write_human(out, args, &reports, &summary)
        }
    })?;
    // Printed first, saved second: a trace that cannot be written loses no printed result.
    if let Some(trace) = trace {
        trace.write(|out| write_trace(out, args, &reports))?;
    }
    partial.map_or(Ok(()), |interrupted| Err(interrupted.into()))
}

/// Figures per round trip, over all repetitions.
#[derive(Clone, Debug, Default, Serialize)]
struct PerRoundTrip {
    exits: f64,
    halt_exits: f64,
    halt_successful_poll: f64,
    halt_attempted_poll: f64,
    guest_halts: f64,
    ipis_sent: f64,
    ipis_skipped: f64,
    irqs: f64,
    cpu_ns: f64,
    poll_hits: f64,
    poll_timeouts: f64,
    poll_ns: f64,
    timers_armed: f64,
    timer_fires: f64,
}

#[derive(Clone, Debug, Serialize)]
struct Spread {
    median: f64,
    min: f64,
    max: f64,
}

#[derive(Clone, Debug, Serialize)]
struct Latency {
    median: f64,
    p99: f64,
    samples: usize,
}

#[derive(Clone, Debug, Serialize)]
struct Summary {
    round_trip_ns: Spread,
    wake_latency_ns: Option<Latency>,
    per_round_trip: PerRoundTrip,
    /// Time spent polling over time spent waiting, all vCPUs.
    poll_share_of_idle: f64,
}

impl Summary {
    /// The VMM's figures of the repetitions pooled.
    fn new(reports: &[RunReport]) -> Summary {
        let pooled = Pooled(reports);
        let spread = |q| pooled.round_trip_ns(q).unwrap_or(f64::NAN);
        let total = |f: &dyn Fn(&RunReport) -> u64| pooled.per_round_trip(f);
        Summary {
            round_trip_ns: Spread { median: spread(0.5), min: spread(0.0), max: spread(1.0) },
            wake_latency_ns: (pooled.wake_samples() > 0).then(|| Latency {
                median: pooled.wake_latency_ns(0.5).unwrap_or_default(),
                p99: pooled.wake_latency_ns(0.99).unwrap_or_default(),
                samples: pooled.wake_samples(),
            }),
            per_round_trip: PerRoundTrip {
                exits: total(&|r| r.sum(|v| v.kvm.exits())),
                halt_exits: total(&|r| r.sum(|v| v.kvm.halt_exits())),
                halt_successful_poll: total(&|r| r.sum(|v| v.kvm.halt_successful_poll())),
                halt_attempted_poll: total(&|r| r.sum(|v| v.kvm.halt_attempted_poll())),
                guest_halts: total(&|r| r.sum(|v| v.counters.halts)),
                ipis_sent: total(&|r| r.sum(|v| v.counters.ipis_sent)),
                ipis_skipped: total(&|r| r.sum(|v| v.counters.ipis_skipped)),
                irqs: total(&|r| r.sum(|v| v.counters.irqs)),
                cpu_ns: total(&|r| r.cpu_time().as_nanos() as u64),
                poll_hits: total(&|r| r.sum(|v| v.counters.poll_hits)),
                poll_timeouts: total(&|r| r.sum(|v| v.counters.poll_timeouts)),
                poll_ns: total(&|r| r.poll_ns() as u64),
                timers_armed: total(&|r| r.sum(|v| v.counters.timers_armed)),
                timer_fires: total(&|r| r.sum(|v| v.counters.timer_fires)),
            },
            poll_share_of_idle: pooled.poll_share_of_idle(),
        }
    }
}

fn write_human(out: &mut dyn Write, args: &PingpongArgs, reports: &[RunReport], s: &Summary) -> io::Result<()> {
    write_heading(out, args, &reports[0])?;
    writeln!(out)?;
    let rows: Vec<(usize, &RunReport)> = reports.iter().enumerate().map(|(i, r)| (i + 1, r)).collect();
    table::write_grouped(out, &repetition_columns(), &(), &rows, |_| ())?;
    writeln!(out)?;
    write_summary(out, args, reports, s)
}

/// What ran: the vCPUs and where, the idle policy, the think time, the host's window.
fn write_heading(out: &mut dyn Write, args: &PingpongArgs, first: &RunReport) -> io::Result<()> {
    let cpus: Vec<String> =
        first.vcpus.iter().map(|v| v.host_cpu.map_or("unpinned".to_owned(), |c| c.to_string())).collect();
    writeln!(
        out,
        "vm pingpong: {} vCPUs on host CPUs {} (REALTIME hint {}), idle {}, think {}",
        args.vcpus,
        cpus.join(", "),
        if first.realtime_hint { "shown" } else { "not shown" },
        value_name(args.idle),
        args.think_trace
            .as_ref()
            .map_or_else(|| fmt_ns(args.think_ns), |path| format!("from the trace {}", path.display())),
    )?;
    let window = match (first.host_halt_poll_ns, first.host_halt_poll_set) {
        (Some(ns), true) => format!("{ns} ns"),
        (Some(ns), false) => format!("{ns} ns (the host's default)"),
        (None, _) => "the host's default".to_owned(),
    };
    writeln!(out, "host halt-poll window {window}, {} round trips x {} repetitions", args.round_trips, args.repeat)
}

/// A count per round trip of one repetition, two decimals.
fn per_trip(r: &RunReport, total: u64) -> String {
    format!("{:.2}", r.per_round_trip(total as f64))
}

/// The columns of the table of repetitions, one row per repetition (numbered from 1).
fn repetition_columns<'a>() -> [Column<(usize, &'a RunReport)>; 7] {
    [
        Column::right("rep", 0, 4, |_, (i, _)| i.to_string()),
        Column::right("round trip", 1, 12, |_, (_, r)| fmt_ns(r.round_trip_ns().unwrap_or_default().round() as u64)),
        Column::right("exits/rt", 1, 10, |_, (_, r)| per_trip(r, r.sum(|v| v.kvm.exits()))),
        Column::right("halt exits/rt", 1, 14, |_, (_, r)| per_trip(r, r.sum(|v| v.kvm.halt_exits()))),
        Column::right("IPIs/rt", 1, 10, |_, (_, r)| per_trip(r, r.sum(|v| v.counters.ipis_sent))),
        Column::right("CPU/rt", 1, 10, |_, (_, r)| {
            fmt_ns(r.per_round_trip(r.cpu_time().as_nanos() as f64).round() as u64)
        }),
        Column::right("wall", 1, 12, |_, (_, r)| fmt_ns(r.wall.as_nanos() as u64)),
    ]
}

/// The summary over the repetitions, line by line.
fn write_summary(out: &mut dyn Write, args: &PingpongArgs, reports: &[RunReport], s: &Summary) -> io::Result<()> {
    let ns = |f: f64| fmt_ns(f.round() as u64);
    let rt = &s.round_trip_ns;
    writeln!(
        out,
        "round trip       {} (median of {}; min {}, max {})",
        ns(rt.median),
        reports.len(),
        ns(rt.min),
        ns(rt.max)
    )?;
    if let Some(l) = &s.wake_latency_ns {
        writeln!(out, "wake latency     {} median, {} p99 (one way, {} messages)", ns(l.median), ns(l.p99), l.samples)?;
    }
    let p = &s.per_round_trip;
    writeln!(
        out,
        "per round trip   {:.2} exits ({:.2} halt exits), {:.2} IPIs sent, {:.2} skipped, host CPU {} (all vCPUs)",
        p.exits,
        p.halt_exits,
        p.ipis_sent,
        p.ipis_skipped,
        ns(p.cpu_ns)
    )?;
    writeln!(
        out,
        "host polls       {:.2} successful of {:.2} attempted per round trip",
        p.halt_successful_poll, p.halt_attempted_poll
    )?;
    if args.idle == IdlePolicy::Haltpoll {
        write_guest_polls(out, args, &reports[0], s)?;
    }
    Ok(())
}

/// What the haltpoll driver did (`--idle haltpoll`).
fn write_guest_polls(out: &mut dyn Write, args: &PingpongArgs, first: &RunReport, s: &Summary) -> io::Result<()> {
    let p = &s.per_round_trip;
    writeln!(out, "haltpoll driver  {}; {} governor", describe_driver(first), args.governor_kind.name())?;
    writeln!(
        out,
        "guest polls      {:.2} hits, {:.2} timeouts, {} polling per round trip ({} of the time waiting)",
        p.poll_hits,
        p.poll_timeouts,
        fmt_ns(p.poll_ns.round() as u64),
        percent(s.poll_share_of_idle)
    )?;
    if p.timers_armed > 0.0 {
        writeln!(
            out,
            "timer halts      {:.2} armed, {:.2} fired (then polled) per round trip",
            p.timers_armed, p.timer_fires
        )?;
    }
    Ok(())
}

/// What the haltpoll driver did, in a line: loaded or why not, host polling, final windows.
pub fn describe_driver(report: &RunReport) -> String {
    let drivers: Vec<&DriverReport> = report.vcpus.iter().map(|v| &v.driver).collect();
    let Some(first) = drivers.first() else { return "no vCPUs".to_owned() };
    let load = format!("{:#}", first.load().unwrap_or(DriverLoad::NotUsed));
    if !first.load().is_some_and(DriverLoad::loaded) {
        return load;
    }
    let host = if drivers.iter().any(|d| d.poll_control_missing != 0) {
        "the host has no POLL_CONTROL: host polling stays on".to_owned()
    } else {
        format!("host polling switched off by MSR on {} of {} vCPUs", report.host_polling_off(), drivers.len())
    };
    let windows: Vec<String> = drivers.iter().map(|d| fmt_ns(d.poll_limit_ns)).collect();
    format!("{load}; {host}; window at the end {}", windows.join(", "))
}

#[derive(Serialize)]
struct Json {
    options: OptionsJson,
    /// Whether an interrupt cut the repetitions short.
    partial: bool,
    repetitions: Vec<RepetitionJson>,
    summary: Summary,
}

#[derive(Serialize)]
struct OptionsJson {
    vcpus: usize,
    idle: String,
    governor: GovernorKind,
    round_trips: u64,
    think_ns: u64,
    repeat: u32,
    host_halt_poll_ns: Option<u64>,
    host_halt_poll_set: bool,
    realtime_hint: bool,
    poll_control: String,
    poll_control_offered: bool,
    tsc_khz: u64,
}

impl OptionsJson {
    fn new(args: &PingpongArgs, first: &RunReport) -> OptionsJson {
        OptionsJson {
            vcpus: args.vcpus,
            idle: value_name(args.idle),
            governor: args.governor_kind,
            round_trips: args.round_trips,
            think_ns: args.think_ns,
            repeat: args.repeat,
            host_halt_poll_ns: first.host_halt_poll_ns,
            host_halt_poll_set: first.host_halt_poll_set,
            realtime_hint: first.realtime_hint,
            poll_control: value_name(args.poll_control),
            poll_control_offered: first.poll_control_offered,
            tsc_khz: first.tsc_khz,
        }
    }
}

#[derive(Serialize)]
struct RepetitionJson {
    round_trip_ns: Option<f64>,
    round_trips: u64,
    wall_ns: u64,
    vcpus: Vec<VcpuJson>,
}

#[derive(Serialize)]
struct VcpuJson {
    index: usize,
    host_cpu: Option<usize>,
    cpu_time_ns: u64,
    counters: Counters,
    driver: DriverReport,
    kvm: std::collections::BTreeMap<&'static str, u64>,
}

impl RepetitionJson {
    fn new(r: &RunReport) -> RepetitionJson {
        RepetitionJson {
            round_trip_ns: r.round_trip_ns(),
            round_trips: r.round_trips(),
            wall_ns: r.wall.as_nanos() as u64,
            vcpus: r
                .vcpus
                .iter()
                .map(|v| VcpuJson {
                    index: v.index,
                    host_cpu: v.host_cpu,
                    cpu_time_ns: v.cpu_time.as_nanos() as u64,
                    counters: v.counters,
                    driver: v.driver,
                    kvm: KvmStat::ALL.iter().map(|&stat| (stat.name(), v.kvm.get(stat))).collect(),
                })
                .collect(),
        }
    }
}

fn write_trace(out: &mut dyn Write, args: &PingpongArgs, reports: &[RunReport]) -> io::Result<()> {
    let header = [
        "haltpoll vm pingpong: idle periods in ns, from a vCPU starting to wait until its peer sent the message"
            .to_owned(),
        format!(
            "idle {}, think {} ns, {} round trips x {} repetitions, {} vCPUs",
            value_name(args.idle),
            args.think_ns,
            args.round_trips,
            args.repeat,
            args.vcpus
        ),
    ];
    let sections: Vec<Section> = reports
        .iter()
        .enumerate()
        .flat_map(|(i, r)| {
            r.vcpus.iter().map(move |v| Section {
                label: format!("repetition {}", i + 1),
                cpu: v.index as u32,
                periods: r.idle_periods_ns(v.index),
            })
        })
        .collect();
    text::write(out, &header, &sections)
}
