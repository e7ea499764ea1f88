//! `haltpoll bench vm`: the comparison of the patch series that brought cpuidle-haltpoll into
//! Linux 5.4 (docs/measurements.md), on a real KVM. Our guest ping-pongs a message between two vCPUs while each waits in one of four ways (busy, guest haltpoll, host halt-poll,
//! no polling), at several think times, every variant in every repetition, on the same VM
//! set-up; then an overcommitted run (two pairs on two host CPUs) with guest polling gated by
//! the REALTIME hint and forced.

mod cells;

use std::io::{self, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use haltpoll::{BlockTime, ValidParams, ValidPredictiveParams};
use haltpoll_abi::WakeCosts;
use haltpoll_vmm::{DriverLoad, IdlePolicy, RunOptions, VmmError};
use indicatif::ProgressBar;
use serde::Serialize;

use self::cells::{Ceilings, Measurement, Row, Target, check_targets, summarize};
use super::{BenchOutput, SweepPoint, finish, load_average, open_plot, parse_think, without_repeats};
use crate::interrupt::{Interrupt, Partial};
use crate::options::GuestGovernors;
use crate::output::{self, fmt_ns, percent};
use crate::progress::{end_progress, partial, progress_bar};
use crate::table::{self, Column};
use crate::think_trace::read_think_trace;
use haltpoll_bench::summary::Unit;
use haltpoll_linux::units::parse_duration;

/// How the waiting vCPUs idle, and on what host set-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Variant {
    /// Spin on the mailbox: no exit, no IPI (the limit).
    Busy,
    /// The haltpoll driver (guest_halt_poll_ns and the other governor options), host window as
    /// set but host polling switched off by the driver's MSR write.
    GuestHaltpoll,
    /// The same with `--block-time poll-and-halt` (ours: no blind spot).
    GuestHaltpollPollAndHalt,
    /// The haltpoll driver with the predictive governor (--poll-budget and the other predictive
    /// options), host polling switched off by the driver.
    GuestPredictive,
    /// Halt at once; the host polls (its window as set).
    HostHaltPoll,
    /// Halt at once; host window 0.
    NoPolling,
    /// Two pairs on two host CPUs, the haltpoll driver without --force: no REALTIME hint, so it
    /// refuses and the vCPUs halt at once (host polling on).
    OvercommitGated,
    /// Two pairs on two host CPUs, the haltpoll driver forced to load.
    OvercommitForced,
}

impl Variant {
    /// The name in the table.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Busy => "busy",
            Variant::GuestHaltpoll => "guest haltpoll",
            Variant::GuestHaltpollPollAndHalt => "guest haltpoll (poll+halt)",
            Variant::GuestPredictive => "guest predictive",
            Variant::HostHaltPoll => "host halt-poll",
            Variant::NoPolling => "no polling",
            Variant::OvercommitGated => "haltpoll gated (no hint)",
            Variant::OvercommitForced => "haltpoll forced",
        }
    }

    /// Whether it runs two pairs on two host CPUs.
    pub fn is_overcommit(self) -> bool {
        matches!(self, Variant::OvercommitGated | Variant::OvercommitForced)
    }

    /// Whether the guest runs the haltpoll driver with Linux's governor (and guest polling is
    /// on) by design.
    pub fn is_guest_haltpoll(self) -> bool {
        matches!(self, Variant::GuestHaltpoll | Variant::GuestHaltpollPollAndHalt | Variant::OvercommitForced)
    }

    /// Its round trip without think time, for sizing its runs: the variants that poll in the
    /// guest see a message in well under a microsecond (when they halt instead, at think times
    /// past their windows, the think time dominates the round trip anyway); the others take an
    /// exit and an IPI.
    fn sizing_round_trip_ns(self) -> u64 {
        if self.polls_at_think_0() { POLLING_ROUND_TRIP_NS } else { SLOWEST_ROUND_TRIP_NS }
    }

    /// Whether a message at think 0 finds it awake (spinning or polling in the guest), not
    /// halted.
    fn polls_at_think_0(self) -> bool {
        matches!(
            self,
            Variant::Busy | Variant::GuestHaltpoll | Variant::GuestHaltpollPollAndHalt | Variant::GuestPredictive
        )
    }

    /// Whether its wakers use the wake flags (and can skip IPIs).
    pub fn uses_wake_flags(self) -> bool {
        self.is_guest_haltpoll() || matches!(self, Variant::OvercommitGated | Variant::GuestPredictive)
    }

    fn options(self, setup: &Setup, think_ns: u64) -> RunOptions {
        let base = RunOptions {
            vcpus: 2,
            round_trips: setup.round_trips(think_ns, self),
            think_ns,
            think_trace_ns: setup.think_trace.as_ref().map_or_else(Vec::new, |t| t.think_ns.clone()),
            warmup_round_trips: setup.warmup,
            warmup_think_ns: 0,
            governor: setup.params.into(),
            host_halt_poll_ns: Some(setup.host_halt_poll_ns),
            ..RunOptions::default()
        };
        let overcommit = RunOptions { vcpus: 4, host_cpus: Some(2), idle: IdlePolicy::Haltpoll, ..base.clone() };
        match self {
            Variant::Busy => RunOptions { idle: IdlePolicy::Busy, ..base },
            Variant::GuestHaltpoll => RunOptions { idle: IdlePolicy::Haltpoll, ..base },
            Variant::GuestHaltpollPollAndHalt => RunOptions {
                idle: IdlePolicy::Haltpoll,
                governor: setup.params.with_block_time(BlockTime::PollAndHalt).into(),
                ..base
            },
            Variant::GuestPredictive => {
                RunOptions { idle: IdlePolicy::Haltpoll, governor: setup.predictive.into(), ..base }
            }
            Variant::HostHaltPoll => RunOptions { idle: IdlePolicy::Halt, ..base },
            Variant::NoPolling => RunOptions { idle: IdlePolicy::Halt, host_halt_poll_ns: Some(0), ..base },
            Variant::OvercommitGated => overcommit,
            Variant::OvercommitForced => RunOptions { force: true, ..overcommit },
        }
    }
}

/// Arguments of `haltpoll bench vm`.
#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  # guest haltpoll against busy polling and no polling, one repetition (the full run,
  # without options, takes about 40 s)
  haltpoll bench vm --repetitions 1 --think 0,100us --variants busy,guest-haltpoll,no-polling
  # above the ceiling, 1 ms apart: guest haltpoll against no polling, as JSON
  haltpoll bench vm --repetitions 1 --think 1ms --variants guest-haltpoll,no-polling --json")]
#[command(
    mut_arg("json", |a| a.help("Print JSON: the configuration, the rows, the targets and every run")),
    mut_arg("csv", |a| a.help("Print CSV for plotting: one line per run")),
    mut_arg("plot", |a| a.help(
        "Draw round trip and host CPU per round trip against think time into FILE (.svg or .png). Needs \
         the `plot` feature (on by default)"
    )),
)]
pub struct VmArgs {
    /// Think times before each message, comma-separated (ns, us, ms, s).
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = parse_think,
          default_value = "0,10us,100us,150us,1ms")]
    pub think: Vec<Duration>,
    /// Take the think time before each message from FILE's idle periods, in order, instead of
    /// --think, so that the waiting vCPU idles as a real one did: a trace in any format `replay`
    /// reads (the periods of its busiest CPU; periods above 10 ms are cut to 10 ms). The table
    /// then has one think "time", the trace.
    #[arg(long, value_name = "FILE", conflicts_with = "think")]
    pub think_trace: Option<PathBuf>,
    /// Variants, comma-separated: busy, guest-haltpoll, guest-predictive,
    /// guest-haltpoll-poll-and-halt, host-halt-poll, no-polling, overcommit-gated,
    /// overcommit-forced.
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        default_value = "busy,guest-haltpoll,guest-predictive,guest-haltpoll-poll-and-halt,host-halt-poll,no-polling,overcommit-gated,overcommit-forced"
    )]
    pub variants: Vec<Variant>,
    /// Repetitions of every cell (variant x think time), each a new VM; the table shows
    /// medians. At think 0 the variants that poll (busy and the guest's) run ten times as many,
    /// in rounds, since their runs are short and vary most; the others run in every tenth.
    /// 1 to 10000.
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub repetitions: u32,
    /// Round trips per pair in every run (default: enough for about --cell-time of each
    /// variant, between 200 and 200000; from a think trace, of the slowest variant, at most
    /// 20000).
    #[arg(long, value_name = "N")]
    pub round_trips: Option<u64>,
    /// How long a run should take when --round-trips is not given.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "300ms")]
    pub cell_time: Duration,
    /// Round trips without think time before the measured ones, in every run (the guest's
    /// windows open; at long think times the table then shows them shrink).
    #[arg(long, value_name = "N", default_value_t = 200)]
    pub warmup: u64,
    /// The host's halt-polling window of every variant but `no polling`, ns.
    #[arg(long, value_name = "NS", default_value_t = 200_000)]
    pub host_halt_poll_ns: u64,
    #[command(flatten)]
    pub output: BenchOutput,
    #[command(flatten)]
    pub governors: GuestGovernors,
}

/// The think trace of a run (`--think-trace`).
#[derive(Clone, Debug, Serialize)]
struct ThinkTrace {
    path: PathBuf,
    /// The think times, ns, in order (all the guest holds, at most).
    #[serde(skip)]
    think_ns: Vec<u64>,
    periods: usize,
    mean_ns: u64,
}

/// What every run shares.
#[derive(Clone, Debug, Serialize)]
struct Setup {
    think_ns: Vec<u64>,
    variants: Vec<Variant>,
    repetitions: u32,
    round_trips: Option<u64>,
    cell_time_ns: u64,
    warmup: u64,
    host_halt_poll_ns: u64,
    /// The governor's parameters, with the kernel's names, beside the other settings.
    #[serde(flatten)]
    params: ValidParams,
    /// The predictive governor's parameters (`guest predictive`).
    predictive: ValidPredictiveParams,
    think_trace: Option<ThinkTrace>,
    load_average: Option<f64>,
}

/// The slowest variant's round trip without think time on this kind of machine (no polling:
/// about 105 us), for sizing runs.
const SLOWEST_ROUND_TRIP_NS: u64 = 120_000;

/// The round trip without think time of a variant that polls in the guest, for sizing its
/// runs: 0.25-0.75 us on this kind of machine, so 2 us leaves room for a loaded host. Sized by
/// the slowest variant instead, a think-0 run of such a variant lasted under a millisecond, and
/// a host interrupt or a preemption in it moved its host CPU per message by up to 25%
/// (docs/predictive-live.md, "Eighth round").
const POLLING_ROUND_TRIP_NS: u64 = 2_000;

/// Runs of a variant that polls, at think 0, in each repetition: each its own repetition in the
/// results, the k-th of repetition r numbered `(r - 1) x rounds + k`, with the variants that run
/// once a repetition in its first round. Such a run lasts about 0.1 s,
/// and its host CPU per message moves by about 7% (standard deviation) from one run to the
/// next on this shared kind of machine, however long the run (its round trip is all code, with
/// no think time to dilute a slow spell of the host), against the 1-2% by which the predictive
/// governor's differs from Linux's: from 5 pairs, the median ratio crossed its 1.05 about one
/// run of the main job in ten; from 50, its spread is about a fifth of the margin
/// (docs/predictive-live.md, "Fifteenth round"). Ten rounds cost the main job about 15 s.
const THINK_0_RUNS: u32 = 10;

impl Setup {
    fn new(args: &VmArgs) -> Result<Setup> {
        let params = args.governors.valid_linux()?;
        let predictive = args.governors.valid_predictive()?;
        let think_trace = match &args.think_trace {
            Some(path) => {
                let think_ns = read_think_trace(path, haltpoll_abi::layout::THINKS_MAX as usize)?;
                let mean_ns = think_ns.iter().sum::<u64>() / think_ns.len() as u64;
                Some(ThinkTrace { path: path.clone(), periods: think_ns.len(), mean_ns, think_ns })
            }
            None => None,
        };
        if args.repetitions == 0 {
            anyhow::bail!("--repetitions 0: no repetitions to run; give at least 1");
        }
        if args.think.is_empty() || args.variants.is_empty() {
            anyhow::bail!("nothing to run: give at least one think time and one variant");
        }
        if args.round_trips == Some(0) {
            anyhow::bail!("--round-trips 0: give at least 1");
        }
        let think = without_repeats("--think", &args.think, |t| fmt_ns(t.as_nanos() as u64));
        let variants = without_repeats("--variants", &args.variants, |v| v.name().to_owned());
        Ok(Setup {
            // A trace run has one cell per variant, keyed by think time 0.
            think_ns: if think_trace.is_some() { vec![0] } else { think.iter().map(|t| t.as_nanos() as u64).collect() },
            variants,
            repetitions: args.repetitions,
            round_trips: args.round_trips,
            cell_time_ns: args.cell_time.as_nanos() as u64,
            warmup: args.warmup,
            host_halt_poll_ns: args.host_halt_poll_ns,
            params,
            predictive,
            think_trace,
            load_average: load_average(),
        })
    }

    fn round_trips(&self, think_ns: u64, variant: Variant) -> u64 {
        self.round_trips.unwrap_or_else(|| match &self.think_trace {
            // The trace's periods from its start, until they fill the cell time.
            Some(trace) => {
                let mut spent = 0;
                let fill = trace.think_ns.iter().cycle().take_while(|&&ns| {
                    spent += SLOWEST_ROUND_TRIP_NS + 2 * ns;
                    spent <= self.cell_time_ns
                });
                (fill.count() as u64).clamp(200, 20_000)
            }
            None => {
                let per = variant.sizing_round_trip_ns() + 2 * think_ns;
                (self.cell_time_ns / per).clamp(200, 200_000)
            }
        })
    }

    /// The variant's name in the table: the predictive one says its budget.
    fn label(&self, variant: Variant) -> String {
        match variant {
            Variant::GuestPredictive => format!("{} ({})", variant.name(), percent(self.predictive.poll_budget())),
            _ => variant.name().to_owned(),
        }
    }

    /// The think time as the table shows it.
    fn think_label(&self, think_ns: u64) -> String {
        if self.think_trace.is_some() { "trace".to_owned() } else { fmt_ns(think_ns) }
    }

    /// The ceilings the targets distinguish think times by.
    fn ceilings(&self) -> Ceilings {
        Ceilings { linux_ns: self.params.guest_halt_poll_ns, trace: self.think_trace.is_some() }
    }

    /// Runs of `variant` at `think_ns` in each repetition ([`THINK_0_RUNS`]).
    fn runs_per_repetition(&self, think_ns: u64, variant: Variant) -> u32 {
        if think_ns == 0 && self.think_trace.is_none() && variant.polls_at_think_0() { THINK_0_RUNS } else { 1 }
    }

    /// The variants in the order round `round` of a think time runs them: as given, and every
    /// other round reversed.
    fn round_order(&self, round: u32) -> impl Iterator<Item = Variant> + '_ {
        let reversed = round % 2 == 1;
        let n = self.variants.len();
        (0..n).map(move |i| self.variants[if reversed { n - 1 - i } else { i }])
    }

    /// The most runs of any variant at `think_ns` in each repetition.
    fn rounds(&self, think_ns: u64) -> u32 {
        self.variants.iter().map(|&v| self.runs_per_repetition(think_ns, v)).max().unwrap_or(1)
    }

    fn runs(&self) -> u64 {
        let per_repetition: u32 = self
            .think_ns
            .iter()
            .flat_map(|&t| self.variants.iter().map(move |&v| (t, v)))
            .map(|(t, v)| self.runs_per_repetition(t, v))
            .sum();
        u64::from(self.repetitions) * u64::from(per_repetition)
    }
}

/// Runs `haltpoll bench vm`.
pub fn run(args: &VmArgs) -> Result<()> {
    let setup = Setup::new(args).context("cannot run the benchmark")?;
    for variant in &setup.variants {
        for &think_ns in &setup.think_ns {
            variant.options(&setup, think_ns).validate().context("cannot run the benchmark")?;
        }
    }
    // Outputs before the first VM: a path that cannot be written fails now, not after the run.
    let plot = open_plot(args.output.plot.as_deref())?;
    let interrupt = Interrupt::watch()?;
    let bar = progress_bar(setup.runs());
    let (runs, failure) = run_all(&setup, &bar, &interrupt);
    let partial = partial(runs.len(), setup.runs() as usize, "runs", failure);
    end_progress(&bar, partial.as_ref());
    let partial = match partial {
        Some(nothing) if runs.is_empty() => return Err(nothing.into()),
        partial => partial,
    };
    let rows = summarize(&runs);
    let targets = check_targets(&runs, &setup.ceilings());
    // The results first, then the picture: a picture that fails loses nothing.
    output::write_stdout(|out| write_results(out, &args.output, &setup, partial.as_ref(), &runs, &rows, &targets))?;
    // Round trip and the host CPU time of all vCPUs per round trip, one line per variant.
    let points = rows.iter().map(|r| SweepPoint {
        label: setup.label(r.variant),
        think_ns: r.think_ns as f64,
        round_trip_ns: r.round_trip_ns,
        cpu_ns: r.cpu_ns_per_round_trip,
    });
    finish(plot, "bench vm", points, partial)
}

/// Runs every cell of every repetition until all ran, one failed or an interrupt came: the
/// runs that finished, and the failure, if one stopped them.
fn run_all(setup: &Setup, bar: &ProgressBar, interrupt: &Interrupt) -> (Vec<Measurement>, Option<anyhow::Error>) {
    let mut runs = Vec::new();
    // Repetitions outermost: a slow spell of the machine then hits every variant alike. A think
    // time whose variants run more than once a repetition runs them in rounds, so that the runs
    // a ratio pairs (the same number) follow each other, every other round in reverse order (so
    // that neither of two variants always runs first); a variant that runs once a repetition
    // runs in its first round.
    for repetition in 1..=setup.repetitions {
        for &think_ns in &setup.think_ns {
            let rounds = setup.rounds(think_ns);
            for (round, variant) in (0..rounds).flat_map(|r| setup.round_order(r).map(move |v| (r, v))) {
                if round >= setup.runs_per_repetition(think_ns, variant) {
                    continue;
                }
                let number = (repetition - 1) * rounds + round + 1;
                let cell = format!("{} at think {}", setup.label(variant), setup.think_label(think_ns));
                bar.set_message(format!("{cell} (repetition {number})"));
                let ran = match haltpoll_bench::injected_failure(runs.len() + 1) {
                    Some(why) => Err(anyhow::anyhow!(why)),
                    None => match haltpoll_vmm::run_until(&variant.options(setup, think_ns), interrupt.flag()) {
                        Err(VmmError::Interrupted) => return (runs, None),
                        ran => ran.map_err(anyhow::Error::from),
                    },
                };
                match ran {
                    Ok(report) => runs.push(Measurement::new(variant, think_ns, number, &report)),
                    // The runs before it stand: they are printed, marked partial.
                    Err(e) => return (runs, Some(e.context(format!("{cell}, repetition {number}")))),
                }
                bar.inc(1);
                if interrupt.requested() {
                    return (runs, None);
                }
            }
        }
    }
    (runs, None)
}

/// Prints the results as `format` asks: JSON, CSV or the table.
fn write_results(
    out: &mut dyn Write,
    format: &BenchOutput,
    setup: &Setup,
    partial: Option<&Partial>,
    runs: &[Measurement],
    rows: &[Row],
    targets: &[Target],
) -> io::Result<()> {
    if format.json {
        let doc = serde_json::json!({
            "config": setup,
            "partial": partial.is_some(),
            "stopped_by": partial.map(Partial::stopped_by),
            "error": partial.and_then(Partial::error),
            "rows": rows,
            "targets": targets,
            "runs": runs
        });
        output::write_json(out, &doc)
    } else if format.csv {
        write_csv(out, runs)
    } else {
        if let Some(partial) = partial {
            writeln!(out, "{}", partial.marker())?;
        }
        write_table(out, setup, runs, rows, targets)
    }
}

fn ns(value: f64) -> String {
    if value.is_finite() { fmt_ns(value.round() as u64) } else { "-".to_owned() }
}

/// A ratio to busy: two decimals near 1, none once it is in the hundreds.
fn times(value: Option<f64>) -> String {
    match value {
        Some(v) if v < 100.0 => format!("{v:.2}x"),
        Some(v) => format!("{v:.0}x"),
        None => "-".to_owned(),
    }
}

/// The table's columns, one row per variant and think time.
const COLUMNS: [Column<Row, Setup>; 14] = [
    Column::right("think", 0, 8, |s, r| s.think_label(r.think_ns)),
    Column::left("variant", 2, 27, |s, r| s.label(r.variant)),
    Column::right("round trip", 1, 10, |_, r| ns(r.round_trip_ns)),
    Column::right("speed", 1, 6, |_, r| {
        r.speed_vs_busy.map_or_else(|| "-".to_owned(), |s| format!("{:.1}%", s * 100.0))
    }),
    Column::right("wake p50", 1, 9, |_, r| ns(r.wake_p50_ns)),
    Column::right("wake p99", 1, 9, |_, r| ns(r.wake_p99_ns)),
    Column::right("x busy", 1, 7, |_, r| times(r.wake_vs_busy)),
    Column::right("IPIs/msg", 1, 9, |_, r| format!("{:.2}", r.ipis_per_message)),
    Column::right("halts/msg", 1, 10, |_, r| format!("{:.2}", r.halt_exits_per_message)),
    Column::right("hpolls/msg", 1, 10, |_, r| format!("{:.2}", r.host_polls_per_message)),
    Column::right("poll/msg", 1, 10, |_, r| ns(r.poll_ns_per_message)),
    Column::right("polling", 1, 7, |_, r| percent(r.poll_share_of_idle)),
    Column::right("CPU/msg", 1, 10, |_, r| ns(r.cpu_ns_per_message)),
    Column::right("preempt", 1, 9, |_, r| format!("{:.3}", r.preempted_per_message)),
];

/// What the haltpoll driver did in the last repetition of a cell, in a line.
fn driver_note(m: &Measurement) -> String {
    let windows: Vec<String> = m.windows_end_ns.iter().map(|&w| fmt_ns(w)).collect();
    format!(
        "driver {}, host polling off by MSR on {} of {} vCPUs, windows at the end {}, {} grows and {} shrinks",
        m.driver.clone().unwrap_or_else(|| DriverLoad::NotUsed.to_string()),
        m.host_polling_off,
        m.windows_end_ns.len(),
        windows.join(", "),
        m.grows,
        m.shrinks
    ) + &if m.timers_armed > 0 {
        format!(", {} timer halts of which {} fired and polled", m.timers_armed, m.timer_fires)
    } else {
        String::new()
    } + &wake_costs_note(&m.wake_costs)
}

/// What the drivers learnt their halts cost, each vCPU's: the halt's cost (the IPI's wake-up in
/// it) and, where a timer woke them, its wake-up and spread; "-" for a vCPU that never measured
/// one.
fn wake_costs_note(costs: &[WakeCosts]) -> String {
    let learnt: Vec<&WakeCosts> = costs.iter().filter(|c| c.ipi_wakes > 0 || c.timer_wakes > 0).collect();
    if learnt.is_empty() {
        return String::new();
    }
    let each = |f: fn(&WakeCosts) -> String| learnt.iter().map(|c| f(c)).collect::<Vec<_>>().join(", ");
    let mut note = format!(
        "; halt cost {} (IPI wake-up {})",
        each(|c| if c.ipi_wakes == 0 { "-".to_owned() } else { fmt_ns(c.halt_cost_ns) }),
        each(|c| if c.ipi_wakes == 0 { "-".to_owned() } else { fmt_ns(c.ipi_wake_ns) })
    );
    if learnt.iter().any(|c| c.timer_wakes > 0) {
        note += &format!(
            "; timer wake-up {}",
            each(|c| {
                if c.timer_wakes == 0 {
                    "-".to_owned()
                } else {
                    format!("{} +- {}", fmt_ns(c.timer_wake_ns), fmt_ns(c.timer_spread_ns))
                }
            })
        );
    }
    note
}

/// What the columns mean.
const LEGEND: &str = "round trip: mean per repetition, median over repetitions. speed: busy's round trip over the variant's. \
     wake: one way, from the sender's stamp to the receiver seeing the message. x busy: wake p50 over busy's, \
     per repetition. IPIs, halts (KVM halt exits), hpolls (host polls that caught the wakeup), guest polling \
     time and host CPU time (think included) per message; polling: share of the waiting time; preempt: \
     host preemptions of the vCPU threads per message.";

fn write_table(
    out: &mut dyn Write,
    setup: &Setup,
    runs: &[Measurement],
    rows: &[Row],
    targets: &[Target],
) -> io::Result<()> {
    write_setup(out, setup)?;
    let (main, overcommit): (Vec<&Row>, Vec<&Row>) = rows.iter().partition(|r| !r.variant.is_overcommit());
    for (rows, title) in [
        (main, "2 vCPUs, each on a host CPU of its own (REALTIME hint shown)"),
        (overcommit, "overcommitted: 4 vCPUs (two pairs) on 2 host CPUs, so no REALTIME hint"),
    ] {
        if !rows.is_empty() {
            writeln!(out)?;
            writeln!(out, "{title}")?;
            table::write_grouped(out, &COLUMNS, setup, rows, |r| r.think_ns)?;
        }
    }
    writeln!(out)?;
    writeln!(out, "{LEGEND}")?;
    write_driver_notes(out, setup, runs, rows)?;
    write_targets(out, setup, targets)?;
    write_host_note(out, runs, targets)
}

/// The lines above the table: what ran, and with which settings.
fn write_setup(out: &mut dyn Write, setup: &Setup) -> io::Result<()> {
    writeln!(
        out,
        "ping-pong between vCPUs of our guest on KVM; the sender spins the think time, stamps and wakes; \
         {} repetition(s){}, every run a new VM after {} warm-up round trips; load average {} at the start",
        setup.repetitions,
        if setup.think_ns.contains(&0) && setup.rounds(0) > 1 {
            format!(" ({} at think 0 for the variants that poll)", setup.repetitions * THINK_0_RUNS)
        } else {
            String::new()
        },
        setup.warmup,
        setup.load_average.map_or_else(|| "unknown".to_owned(), |l| format!("{l:.2}")),
    )?;
    writeln!(
        out,
        "guest haltpoll: guest_halt_poll_ns {}, block time {}; host halt-poll window {} (no polling: 0)",
        setup.params.guest_halt_poll_ns, setup.params.block_time, setup.host_halt_poll_ns
    )?;
    if setup.variants.contains(&Variant::GuestPredictive) {
        let p = &setup.predictive;
        writeln!(
            out,
            "guest predictive: poll budget {} of each vCPU's time, ceiling {}, budget horizon {}, timer first {}",
            percent(p.poll_budget()),
            fmt_ns(p.poll_ceiling_ns),
            fmt_ns(p.budget_horizon_ns),
            if p.timer_first { "on" } else { "off" }
        )?;
    }
    if let Some(trace) = &setup.think_trace {
        writeln!(
            out,
            "think times from the trace {}: {} periods, mean {}, taken in order from its start",
            trace.path.display(),
            trace.periods,
            fmt_ns(trace.mean_ns)
        )?;
    }
    Ok(())
}

/// What the haltpoll driver did, for every row whose variant ran it (its last repetition).
fn write_driver_notes(out: &mut dyn Write, setup: &Setup, runs: &[Measurement], rows: &[Row]) -> io::Result<()> {
    let notes: Vec<&Measurement> = rows
        .iter()
        .filter_map(|r| {
            runs.iter().rev().find(|m| m.variant == r.variant && m.think_ns == r.think_ns && m.driver.is_some())
        })
        .collect();
    if notes.is_empty() {
        return Ok(());
    }
    writeln!(out)?;
    writeln!(out, "haltpoll driver (last repetition)")?;
    for m in notes {
        let (think, label) = (setup.think_label(m.think_ns), setup.label(m.variant));
        writeln!(out, "  think {think:>8}  {label:<27} {}", driver_note(m))?;
    }
    Ok(())
}

fn write_targets(out: &mut dyn Write, setup: &Setup, targets: &[Target]) -> io::Result<()> {
    if targets.is_empty() {
        return Ok(());
    }
    writeln!(out)?;
    writeln!(out, "targets: medians over repetitions")?;
    for t in targets {
        let show = |v: f64| match t.unit {
            Unit::Ns => ns(v),
            Unit::Ratio | Unit::Share => format!("{v:.3}"),
        };
        let reps: Vec<String> = t.by_repetition.iter().map(|&v| show(v)).collect();
        writeln!(
            out,
            "  think {:>8}  {:<27} {:<38} {:>9} ({} {})  {:<6}  per repetition: {}",
            setup.think_label(t.think_ns),
            setup.label(t.variant),
            t.what,
            show(t.value),
            if t.at_most { "at most" } else { "at least" },
            show(t.limit),
            if t.met { "met" } else { "MISSED" },
            reps.join(" ")
        )?;
    }
    Ok(())
}

/// The IPI wake-up the seed's table (Linux's governor's targets) was measured with: a halted
/// vCPU's wake-up on the project's first machines (docs/kvm-quirks.md).
const SEED_IPI_WAKE_NS: u64 = 55_000;

/// Where Linux's governor missed a target on a host whose halts wake much more slowly than the
/// seed's did, says so (see [`host_note`]).
fn write_host_note(out: &mut dyn Write, runs: &[Measurement], targets: &[Target]) -> io::Result<()> {
    let linux_missed = targets.iter().filter(|t| !t.met && t.variant != Variant::GuestPredictive).count();
    // The pinned pairs' wake-ups only: an overcommitted vCPU's wake-up waits for its host CPU too.
    let wakes: Vec<u64> = runs
        .iter()
        .filter(|m| !m.variant.is_overcommit())
        .flat_map(|m| &m.wake_costs)
        .filter(|c| c.ipi_wakes > 0)
        .map(|c| c.ipi_wake_ns)
        .collect();
    match host_note(linux_missed, &wakes) {
        Some(note) => writeln!(out, "\n{note}"),
        None => Ok(()),
    }
}

/// The note for `linux_missed` missed targets of Linux's governor, given every vCPU's learnt IPI
/// wake-up: those targets are the seed's table, and a wake-up well above the seed's can
/// trap Linux's rule at 100 us (think + 2 wake-ups past its ceiling). Only where a Linux target missed
/// and the median wake-up is at least 1.25x the seed's, so that a reader compares hosts before
/// reading a regression into the miss; on a host like the seed's a miss stands alone.
fn host_note(linux_missed: usize, ipi_wakes_ns: &[u64]) -> Option<String> {
    let wakes: Vec<f64> = ipi_wakes_ns.iter().map(|&ns| ns as f64).collect();
    let wake = haltpoll_bench::summary::median(&wakes)?;
    if linux_missed == 0 || wake < 1.25 * SEED_IPI_WAKE_NS as f64 {
        return None;
    }
    Some(format!(
        "Linux's governor missed {linux_missed} target(s). They are the seed's table, measured where a halted vCPU's \
         IPI wake-up took about {}; the drivers here measured {} (the median of {} learnt, one per vCPU and run): a slower \
         host, which can trap Linux's rule at 100 us. See docs/kvm-quirks.md, \"The wake-up's cost differs from one \
         host to the next\", before reading these misses as a regression.",
        fmt_ns(SEED_IPI_WAKE_NS),
        fmt_ns(wake as u64),
        wakes.len()
    ))
}

/// One line of `--csv`: a run.
#[derive(Serialize)]
struct CsvLine<'a> {
    think_ns: u64,
    variant: Variant,
    repetition: u32,
    round_trips: u64,
    messages: u64,
    round_trip_ns: f64,
    wake_p50_ns: f64,
    wake_p99_ns: f64,
    wake_max_ns: f64,
    ipis_per_message: f64,
    no_ipi_share: Option<f64>,
    halt_exits_per_message: f64,
    exits_per_message: f64,
    host_polls_per_message: f64,
    poll_share_of_idle: f64,
    poll_ns_per_message: f64,
    cpu_ns_per_message: f64,
    preempted_per_message: f64,
    driver: Option<&'a str>,
}

fn write_csv(out: &mut dyn Write, runs: &[Measurement]) -> io::Result<()> {
    let lines = runs.iter().map(|m| CsvLine {
        think_ns: m.think_ns,
        variant: m.variant,
        repetition: m.repetition,
        round_trips: m.round_trips,
        messages: m.messages,
        round_trip_ns: m.round_trip_ns,
        wake_p50_ns: m.wake_p50_ns,
        wake_p99_ns: m.wake_p99_ns,
        wake_max_ns: m.wake_max_ns,
        ipis_per_message: m.ipis_per_message,
        no_ipi_share: m.no_ipi_share,
        halt_exits_per_message: m.halt_exits_per_message,
        exits_per_message: m.exits_per_message,
        host_polls_per_message: m.host_polls_per_message,
        poll_share_of_idle: m.poll_share_of_idle,
        poll_ns_per_message: m.poll_ns_per_message,
        cpu_ns_per_message: m.cpu_ns_per_message,
        preempted_per_message: m.preempted_per_message,
        driver: m.driver.as_deref(),
    });
    output::write_csv(out, lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(args: &[&str]) -> Setup {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            vm: VmArgs,
        }
        let cli = <Cli as clap::Parser>::try_parse_from(std::iter::once("bench-vm").chain(args.iter().copied()))
            .expect("the arguments parse");
        Setup::new(&cli.vm).expect("a valid setup")
    }

    #[test]
    fn variants_that_poll_run_more_often_at_think_0_only() {
        let s = setup(&[]);
        assert_eq!(s.runs_per_repetition(0, Variant::GuestPredictive), THINK_0_RUNS);
        assert_eq!(s.runs_per_repetition(0, Variant::Busy), THINK_0_RUNS);
        assert_eq!(s.runs_per_repetition(0, Variant::NoPolling), 1, "a halting run is long already");
        assert_eq!(s.runs_per_repetition(10_000, Variant::GuestPredictive), 1);
        // 5 repetitions of 5 think times x 8 variants, and 9 more runs of 4 variants at think 0.
        assert_eq!(s.runs(), 5 * (5 * 8 + 9 * 4));
        let order = |r| s.round_order(r).map(Variant::name).collect::<Vec<_>>();
        assert_eq!(order(0)[..2], ["busy", "guest haltpoll"]);
        assert_eq!(order(1)[6..], ["guest haltpoll", "busy"], "every other round reversed");
        assert_eq!(order(2), order(0));
        let later = setup(&["--think", "10us,1ms", "--repetitions", "3"]);
        assert_eq!((later.rounds(10_000), later.runs()), (1, 3 * 2 * 8));
        let mut traced = setup(&["--repetitions", "2"]);
        traced.think_trace = Some(ThinkTrace { path: "t".into(), think_ns: vec![1_000], periods: 1, mean_ns: 1_000 });
        traced.think_ns = vec![0];
        assert_eq!((traced.rounds(0), traced.runs()), (1, 2 * 8), "a trace's cells are keyed by think 0 but are long");
    }

    #[test]
    fn runs_are_sized_by_each_variants_own_round_trip() {
        let s = setup(&[]);
        // At think 0 the polling variants fill the cell time at a 2 us round trip, up to the
        // upper bound; no polling at its exit-and-IPI round trip.
        assert_eq!(s.round_trips(0, Variant::GuestPredictive), 150_000);
        assert_eq!(s.round_trips(0, Variant::GuestHaltpoll), 150_000);
        assert_eq!(s.round_trips(0, Variant::NoPolling), 2_500);
        assert_eq!(s.round_trips(0, Variant::OvercommitForced), 2_500);
        assert_eq!(setup(&["--cell-time", "1s"]).round_trips(0, Variant::Busy), 200_000);
        // Past a few hundred us the think time sizes every variant alike.
        assert_eq!(s.round_trips(1_000_000, Variant::GuestPredictive), 200);
        assert_eq!(s.round_trips(1_000_000, Variant::NoPolling), 200);
        // --round-trips is every variant's.
        let fixed = setup(&["--round-trips", "900"]);
        assert_eq!(fixed.round_trips(0, Variant::GuestPredictive), 900);
        assert_eq!(fixed.round_trips(0, Variant::NoPolling), 900);
    }

    #[test]
    fn the_wake_costs_note_names_what_each_vcpu_measured() {
        assert_eq!(wake_costs_note(&[WakeCosts::default(), WakeCosts::default()]), "", "nothing measured");
        let halted = WakeCosts { halt_cost_ns: 75_000, ipi_wake_ns: 60_000, ipi_wakes: 9, ..WakeCosts::default() };
        let timed = WakeCosts { timer_wake_ns: 80_000, timer_spread_ns: 5_000, timer_wakes: 3, ..WakeCosts::default() };
        assert_eq!(
            wake_costs_note(&[halted, timed]),
            "; halt cost 75.0 us, - (IPI wake-up 60.0 us, -); timer wake-up -, 80.0 us +- 5.0 us"
        );
    }

    #[test]
    fn the_host_note_comes_only_with_a_linux_miss_on_a_slow_host() {
        let slow = [90_000, 100_000, 120_000];
        let note = host_note(2, &slow).expect("a miss on a slow host is explained");
        assert!(
            note.contains("missed 2 target(s)") && note.contains("100.0 us") && note.contains("median of 3 learnt"),
            "{note}"
        );
        assert_eq!(host_note(0, &slow), None, "nothing missed");
        assert_eq!(host_note(2, &[50_000, 55_000, 60_000]), None, "a host like the seed's: the miss stands alone");
        assert_eq!(host_note(2, &[]), None, "no wake-up measured");
    }
}
