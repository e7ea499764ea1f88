//! `haltpoll bench threads`: two threads hand a token back and forth, every way of waiting
//! in one run (the harness is [`haltpoll_bench::threads`]).

use std::io::{self, Write};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use haltpoll::{Params, PredictiveParams};
use haltpoll_park::{Builder, DEFAULT_PARAMS};
use serde::Serialize;

use super::{BenchOutput, SweepPoint, finish, load_average, open_plot, parse_think, without_repeats};
use crate::interrupt::{Interrupt, Partial};
use crate::output::{self, fmt_ns, percent};
use crate::progress::{end_progress, partial, progress_bar};
use crate::table::{self, Column};
use haltpoll_bench::threads::{self as harness, Config, Row, Run, Target, Think, Variant};
use haltpoll_linux::units::parse_duration;

/// Arguments of `haltpoll bench threads`.
#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  # every way of waiting, a quick look (the full run, without options, takes about 50 s)
  haltpoll bench threads --repetitions 1 --cell-time 50ms --think 0,100us
  # the parker against spinning and std::thread::park, a line per repetition as CSV
  haltpoll bench threads --variants spin,haltpoll,std --repetitions 2 --cell-time 50ms --csv")]
#[command(
    mut_arg("json", |a| a.help("Print JSON: the configuration, the rows, the targets and each repetition's row")),
    mut_arg("csv", |a| a.help("Print CSV for plotting: one line per variant, think time and repetition")),
    mut_arg("plot", |a| a.help(
        "Draw round trip and CPU per wake against think time into FILE (.svg or .png). Needs the `plot` \
         feature (on by default)"
    )),
)]
pub struct ThreadsArgs {
    /// Think times before each message, comma-separated (ns, us, ms, s).
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = parse_think,
          default_value = "0,10us,100us,1ms,10ms")]
    pub think: Vec<Duration>,
    /// The sender sleeps for the think time instead of spinning (its CPU then idles too).
    #[arg(long)]
    pub sleep: bool,
    /// Variants, comma-separated: spin, spin-flag (spin on a flag the waker sets: the floor of a
    /// wake through a token), haltpoll, haltpoll-wait-until (the parker's poll watches
    /// the message too), haltpoll-guest-rule, haltpoll-predictive (the
    /// parker with the predictive governor: --poll-budget and its other options), std, crossbeam,
    /// parking-lot, spin-then-park, and futures woken through their wakers: block-on-haltpoll,
    /// block-on-futures, block-on-pollster.
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        default_value = "spin,haltpoll,haltpoll-wait-until,haltpoll-guest-rule,std,crossbeam,parking-lot,spin-then-park"
    )]
    pub variants: Vec<Variant>,
    /// Repetitions of every cell (variant x think time), 1 to 10000.
    #[arg(long, value_name = "N", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(haltpoll_bench::threads::MAX_REPETITIONS)))]
    pub repetitions: u32,
    /// Measured round trips per cell, at least.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub min_round_trips: u64,
    /// Measured round trips per cell, at most.
    #[arg(long, value_name = "N", default_value_t = 20_000)]
    pub max_round_trips: u64,
    /// Stop a cell between the two bounds once it has run this long.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "300ms")]
    pub cell_time: Duration,
    /// Round trips at the start of each cell that are not measured.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub warmup: u64,
    /// Do not pin the two threads to two CPUs.
    #[arg(long)]
    pub no_pin: bool,
    #[command(flatten)]
    pub output: BenchOutput,
    #[command(flatten)]
    pub parker: ParkerParams,
    #[command(flatten)]
    pub predictive: PredictiveParams,
}

/// The haltpoll parker's governor parameters: [`Params`]'s options, defaulting to the
/// parker's own parameters ([`DEFAULT_PARAMS`]) rather than Linux's.
#[derive(Clone, Copy, Debug)]
pub struct ParkerParams(pub Params);

impl clap::FromArgMatches for ParkerParams {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        Params::from_arg_matches(matches).map(ParkerParams)
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        self.0.update_from_arg_matches(matches)
    }
}

impl Args for ParkerParams {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        Params::with_defaults(Params::augment_args(cmd), &DEFAULT_PARAMS)
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Params::with_defaults(Params::augment_args_for_update(cmd), &DEFAULT_PARAMS)
    }
}

impl ThreadsArgs {
    fn config(&self) -> Result<Config> {
        Ok(Config {
            variants: without_repeats("--variants", &self.variants, |v| v.name().to_owned()),
            think_times: without_repeats("--think", &self.think, |t| fmt_ns(t.as_nanos() as u64)),
            think: if self.sleep { Think::Sleep } else { Think::Spin },
            repetitions: self.repetitions,
            min_round_trips: self.min_round_trips,
            max_round_trips: self.max_round_trips,
            cell_time: self.cell_time,
            warmup: self.warmup,
            pin: !self.no_pin,
            haltpoll: Builder::new().params(self.parker.0),
            predictive: self.predictive.validate().context("invalid predictive governor parameters")?,
        })
    }
}

/// Runs `haltpoll bench threads`.
pub fn run(args: &ThreadsArgs) -> Result<()> {
    let config = args.config()?;
    config.validate().context("cannot run the benchmark")?;
    // Outputs before the first thread: a path that cannot be written fails now, not after.
    let plot = open_plot(args.output.plot.as_deref())?;
    let interrupt = Interrupt::watch()?;
    let load = load_average();
    let bar = progress_bar(config.cells() as u64);
    let harness::Ran { runs, error } = harness::run(
        &config,
        &mut |_, _, run| {
            bar.set_message(format!("{} at think {}", run.variant, fmt_ns(run.think_ns)));
            bar.inc(1);
        },
        interrupt.flag(),
    );
    let partial = partial(runs.len(), config.cells(), "cells", error.map(anyhow::Error::from));
    end_progress(&bar, partial.as_ref());
    let partial = match partial {
        Some(nothing) if runs.is_empty() => return Err(nothing.into()),
        partial => partial,
    };
    let rows = harness::summarize(&runs);
    let targets = harness::check_targets(&runs);
    let results =
        Results { config: &config, load, partial: partial.as_ref(), runs: &runs, rows: &rows, targets: &targets };
    // The results first, then the picture: a picture that fails loses nothing.
    output::write_stdout(|out| {
        if args.output.json {
            results.write_json(out, &args.parker.0)
        } else if args.output.csv {
            write_csv(out, &runs)
        } else {
            if let Some(partial) = &partial {
                writeln!(out, "{}", partial.marker())?;
            }
            results.write_table(out)
        }
    })?;
    // Round trip and the waiting thread's CPU per wake, one line per variant.
    let points = rows.iter().map(|r| SweepPoint {
        label: variant_label(&config, r.variant),
        think_ns: r.think_ns as f64,
        round_trip_ns: r.round_trip_p50_ns as f64,
        cpu_ns: r.cpu_per_wake_ns as f64,
    });
    finish(plot, "bench threads", points, partial)
}

/// The variant's name in the table: the predictive one says its budget.
fn variant_label(config: &Config, variant: Variant) -> String {
    match variant {
        Variant::HaltpollPredictive => format!("{} ({})", variant.name(), percent(config.predictive.poll_budget())),
        _ => variant.name().to_owned(),
    }
}

fn opt_percent(share: Option<f64>) -> String {
    share.map_or_else(|| "-".to_owned(), percent)
}

fn opt_fixed2(x: Option<f64>) -> String {
    x.map_or_else(|| "-".to_owned(), |x| format!("{x:.2}"))
}

/// The table's columns, one row per variant and think time.
const COLUMNS: [Column<Row, Config>; 11] = [
    Column::right("think", 0, 8, |_, r| fmt_ns(r.think_ns)),
    Column::left("variant", 2, 26, |c, r| variant_label(c, r.variant)),
    Column::right("wakes", 1, 7, |_, r| r.wakes.to_string()),
    Column::right("round trip", 1, 10, |_, r| fmt_ns(r.round_trip_p50_ns)),
    Column::right("wake p50", 1, 10, |_, r| fmt_ns(r.wake_p50_ns)),
    Column::right("wake p99", 1, 10, |_, r| fmt_ns(r.wake_p99_ns)),
    Column::right("x spin", 1, 8, |_, r| opt_fixed2(r.wake_vs_spin)),
    Column::right("CPU/wake", 1, 10, |_, r| fmt_ns(r.cpu_per_wake_ns)),
    Column::right("no syscall", 1, 10, |_, r| opt_percent(r.no_syscall_share)),
    Column::right("sleeps", 1, 8, |_, r| opt_fixed2(r.sleeps_per_wake)),
    Column::left("wake p50 per repetition", 2, 0, |_, r| {
        r.wake_p50_by_repetition_ns.iter().map(|&n| fmt_ns(n)).collect::<Vec<_>>().join(" ")
    }),
];

/// What the columns mean.
const LEGEND: &str = "wake: sender's stamp before its wake to the receiver's clock read after its wait returned. \
     x spin: wake p50 over spin's in the same repetition, median over repetitions. \
     CPU/wake and sleeps: the receiver's CPU time and voluntary context switches per wake \
     (its own wake of the sender included). no syscall: wakes with no futex call on either \
     side, where the variant can tell.";

/// What a run of the benchmark found, for the table and the JSON document.
struct Results<'a> {
    config: &'a Config,
    /// The 1-minute load average when the benchmark started.
    load: Option<f64>,
    partial: Option<&'a Partial>,
    runs: &'a [Run],
    rows: &'a [Row],
    targets: &'a [Target],
}

impl Results<'_> {
    fn write_table(&self, out: &mut dyn Write) -> io::Result<()> {
        let (config, load) = (self.config, self.load);
        let pinned = self.runs.iter().all(|r| r.pinned);
        writeln!(
            out,
            "two threads, {}; the sender {} the think time, then stamps and wakes; {} repetition(s); \
             load average {} at the start",
            if pinned { "pinned to two CPUs" } else { "not pinned" },
            match config.think {
                Think::Spin => "spins",
                Think::Sleep => "sleeps",
            },
            config.repetitions,
            load.map_or_else(|| "unknown".to_owned(), |l| format!("{l:.2}")),
        )?;
        writeln!(out)?;
        table::write_grouped(out, &COLUMNS, config, self.rows, |r| r.think_ns)?;
        writeln!(out)?;
        writeln!(out, "{LEGEND}")?;
        write_targets(out, self.targets)
    }

    /// The JSON document: the configuration (`parker`: the haltpoll variants' parameters), the
    /// rows, the targets and each repetition's row.
    fn write_json(&self, out: &mut dyn Write, parker: &Params) -> io::Result<()> {
        let (config, partial) = (self.config, self.partial);
        let doc = serde_json::json!({
            "config": {
                "variants": config.variants,
                "think_ns": config.think_times.iter().map(|t| t.as_nanos() as u64).collect::<Vec<_>>(),
                "think": config.think,
                "repetitions": config.repetitions,
                "min_round_trips": config.min_round_trips,
                "max_round_trips": config.max_round_trips,
                "cell_time_ns": config.cell_time.as_nanos() as u64,
                "warmup": config.warmup,
                "pin": config.pin,
                "haltpoll": parker,
                "load_average": self.load,
            },
            "partial": partial.is_some(),
            "stopped_by": partial.map(Partial::stopped_by),
            "error": partial.and_then(Partial::error),
            "rows": self.rows,
            "targets": self.targets,
            "repetitions": repetition_rows(self.runs),
        });
        output::write_json(out, &doc)
    }
}

fn write_targets(out: &mut dyn Write, targets: &[Target]) -> io::Result<()> {
    if targets.is_empty() {
        return Ok(());
    }
    writeln!(out)?;
    writeln!(out, "targets: ratios within each repetition, median over repetitions")?;
    for t in targets {
        let reps: Vec<String> = t.by_repetition.iter().map(|r| format!("{r:.3}")).collect();
        writeln!(
            out,
            "  think {:>8}  {:<42} {:>7.3} (at most {:.3})  {:<6}  per repetition: {}",
            fmt_ns(t.think_ns),
            t.what,
            t.value,
            t.limit,
            if t.met { "met" } else { "MISSED" },
            reps.join(" ")
        )?;
    }
    Ok(())
}

/// One repetition's row, for JSON and CSV.
#[derive(Serialize)]
struct RepetitionRow {
    repetition: u32,
    pinned: bool,
    #[serde(flatten)]
    row: Row,
    #[serde(skip_serializing_if = "Option::is_none")]
    parker_stats: Option<haltpoll_park::Stats>,
}

fn repetition_rows(runs: &[Run]) -> Vec<RepetitionRow> {
    runs.iter()
        .map(|run| {
            // The run with its repetition's spin run beside it, for the ratio (a spin run is
            // its own: pooled with itself, its wakes would count twice).
            let spin = runs.iter().filter(|s| {
                s.variant == Variant::Spin
                    && run.variant != Variant::Spin
                    && s.think_ns == run.think_ns
                    && s.repetition == run.repetition
            });
            let pair: Vec<Run> = spin.chain([run]).cloned().collect();
            let row = harness::summarize(&pair).into_iter().find(|r| r.variant == run.variant).expect("its own row");
            RepetitionRow { repetition: run.repetition, pinned: run.pinned, row, parker_stats: run.parker_stats }
        })
        .collect()
}

/// One line of `--csv`: a repetition's row.
#[derive(Serialize)]
struct CsvLine {
    think_ns: u64,
    variant: Variant,
    repetition: u32,
    wakes: u64,
    round_trip_p50_ns: u64,
    wake_p50_ns: u64,
    wake_p99_ns: u64,
    wake_vs_spin: Option<f64>,
    cpu_per_wake_ns: u64,
    no_syscall_share: Option<f64>,
    sleeps_per_wake: Option<f64>,
    pinned: bool,
}

fn write_csv(out: &mut dyn Write, runs: &[Run]) -> io::Result<()> {
    let lines = repetition_rows(runs).into_iter().map(|RepetitionRow { repetition, pinned, row, .. }| CsvLine {
        think_ns: row.think_ns,
        variant: row.variant,
        repetition,
        wakes: row.wakes,
        round_trip_p50_ns: row.round_trip_p50_ns,
        wake_p50_ns: row.wake_p50_ns,
        wake_p99_ns: row.wake_p99_ns,
        wake_vs_spin: row.wake_vs_spin,
        cpu_per_wake_ns: row.cpu_per_wake_ns,
        no_syscall_share: row.no_syscall_share,
        sleeps_per_wake: row.sleeps_per_wake,
        pinned,
    });
    output::write_csv(out, lines)
}
