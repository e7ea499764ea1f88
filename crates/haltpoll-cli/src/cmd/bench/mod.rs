//! `haltpoll bench ...`: the benchmarks, one subcommand each. Every benchmark measures its
//! contenders side by side in one run and reports ratios, since the machines they run on are
//! shared and absolute numbers drift.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use clap::{Args, Subcommand};

use crate::interrupt::Partial;
use crate::output;
use crate::plot::{PlotFile, Series};
use haltpoll_linux::units::parse_duration;

pub mod threads;
#[cfg(all(feature = "vm", target_os = "linux", target_arch = "x86_64"))]
pub mod vm;

/// Arguments of `haltpoll bench`.
#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  # threads: the haltpoll parker against its peers, a quick look
  haltpoll bench threads --repetitions 1 --cell-time 50ms --think 0,100us
  # KVM: guest haltpoll against busy polling and no polling (needs /dev/kvm)
  haltpoll bench vm --repetitions 1 --think 0,100us --variants busy,guest-haltpoll,no-polling")]
pub struct BenchArgs {
    #[command(subcommand)]
    pub command: BenchCommand,
}

/// The benchmarks.
#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Two threads hand a token back and forth: the haltpoll parker against spinning,
    /// std::thread::park, crossbeam, parking_lot and a fixed spin-then-park.
    Threads(threads::ThreadsArgs),
    /// The comparison of the patch series that brought cpuidle-haltpoll into Linux 5.4, on a real KVM: our guest's vCPUs ping-pong while waiting busy, with
    /// guest haltpoll, with host halt polling, or with no polling; plus an overcommitted run.
    #[cfg(all(feature = "vm", target_os = "linux", target_arch = "x86_64"))]
    Vm(vm::VmArgs),
}

/// How a benchmark reports, the same three options on each. Each benchmark says what its JSON,
/// CSV and plot hold in its own words (`mut_arg` on its arguments).
#[derive(Args, Debug)]
pub struct BenchOutput {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Print CSV for plotting.
    #[arg(long, conflicts_with = "json")]
    pub csv: bool,
    /// Draw round trip and CPU time against think time into FILE (.svg or .png).
    /// Needs the `plot` feature (on by default).
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
}

/// Runs `haltpoll bench`.
pub fn run(args: &BenchArgs) -> Result<()> {
    match &args.command {
        BenchCommand::Threads(a) => threads::run(a),
        #[cfg(all(feature = "vm", target_os = "linux", target_arch = "x86_64"))]
        BenchCommand::Vm(a) => vm::run(a),
    }
}

/// Parses a benchmark's think time: a duration with its unit ([`parse_duration`]) within the
/// benchmarks' limit ([`haltpoll_bench::limits::MAX_THINK`]), so a think time that would take
/// hours is refused with the command line, before anything runs.
pub fn parse_think(text: &str) -> Result<Duration, String> {
    let think = parse_duration(text)?;
    haltpoll_bench::limits::check_think("think time", think)?;
    Ok(think)
}

/// `list` without its repeats (the first of each stays, in order); a note names what was left
/// out. A variant or think time given twice would run twice in each repetition, and the
/// summary's ratios pair the runs of one repetition.
pub fn without_repeats<T: PartialEq + Clone>(option: &str, list: &[T], name: impl Fn(&T) -> String) -> Vec<T> {
    let mut kept: Vec<T> = Vec::with_capacity(list.len());
    let mut repeated = Vec::new();
    for item in list {
        if kept.contains(item) {
            repeated.push(name(item));
        } else {
            kept.push(item.clone());
        }
    }
    if !repeated.is_empty() {
        output::note(format_args!("{option}: {} given more than once, runs once", repeated.join(", ")));
    }
    kept
}

/// The 1-minute load average, to say how busy the machine was.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?.parse().ok()
}

/// One point of a think-time sweep: the variant's name, the think time, the round trip and the
/// CPU time per round trip (or per wake), all in ns.
pub struct SweepPoint {
    /// The line it belongs to.
    pub label: String,
    /// Think time, ns.
    pub think_ns: f64,
    /// Round trip, ns.
    pub round_trip_ns: f64,
    /// CPU time, ns.
    pub cpu_ns: f64,
}

/// Draws round trip and CPU time against think time into `plot`, one line per label (in µs),
/// and says where it went.
pub fn plot_sweep(plot: PlotFile, title: &str, points: impl IntoIterator<Item = SweepPoint>) -> Result<()> {
    let (mut round_trip, mut cpu): (Vec<Series>, Vec<Series>) = (Vec::new(), Vec::new());
    for p in points {
        for (lines, y) in [(&mut round_trip, p.round_trip_ns), (&mut cpu, p.cpu_ns)] {
            let point = (p.think_ns / 1e3, y / 1e3);
            match lines.iter_mut().find(|s| s.label == p.label) {
                Some(s) => s.points.push(point),
                None => lines.push(Series { label: p.label.clone(), points: vec![point] }),
            }
        }
    }
    let path = plot.path().to_owned();
    plot.think_time_sweep(title, round_trip, cpu)?;
    output::stderr_line(format_args!("plot written to {}", path.display()));
    Ok(())
}

/// Ends a benchmark after its results are printed: draws the plot, if any, of what finished,
/// then reports the interrupt or error, if one cut the benchmark short (the plot's failure,
/// then, is a note: the exit code says what stopped the benchmark).
pub fn finish(
    plot: Option<PlotFile>,
    title: &str,
    points: impl IntoIterator<Item = SweepPoint>,
    partial: Option<Partial>,
) -> Result<()> {
    let drawn = plot.map_or(Ok(()), |plot| plot_sweep(plot, title, points));
    match (partial, drawn) {
        (None, drawn) => drawn,
        (Some(partial), drawn) => {
            if let Err(e) = drawn {
                output::stderr_line(format_args!("haltpoll: error: {e:#}"));
            }
            Err(partial.into())
        }
    }
}

/// Opens the `--plot` file, if one is asked for, before the benchmark runs.
pub fn open_plot(path: Option<&Path>) -> Result<Option<PlotFile>> {
    Ok(path.map(PlotFile::create).transpose()?)
}
