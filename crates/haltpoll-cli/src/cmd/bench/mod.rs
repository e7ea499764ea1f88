//! `haltpoll bench ...`: the benchmarks, one subcommand each. Every benchmark measures its
//! contenders side by side in one run and reports ratios, since the machines they run on are
//! shared and absolute numbers drift.

use std::path::Path;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use crate::plot::{self, Series};

pub mod threads;
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
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
    /// The comparison of the cpuidle-haltpoll patch's cover letter, on a real KVM: our guest's vCPUs ping-pong while waiting busy, with
    /// guest haltpoll, with host halt polling, or with no polling; plus an overcommitted run.
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    Vm(vm::VmArgs),
}

/// Runs `haltpoll bench`.
pub fn run(args: &BenchArgs) -> Result<()> {
    match &args.command {
        BenchCommand::Threads(a) => threads::run(a),
        #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
        BenchCommand::Vm(a) => vm::run(a),
    }
}

/// The progress bar of a benchmark: elapsed time, `len` steps, and a message saying what runs.
pub fn progress_bar(len: u64) -> ProgressBar {
    ProgressBar::new(len).with_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} {msg}")
            .expect("a valid template"),
    )
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

/// Draws round trip and CPU time against think time into `path`, one line per label (in µs),
/// and says where it went.
pub fn plot_sweep(path: &Path, title: &str, points: impl IntoIterator<Item = SweepPoint>) -> Result<()> {
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
    plot::think_time_sweep(path, title, round_trip, cpu).with_context(|| format!("cannot draw {}", path.display()))?;
    eprintln!("plot written to {}", path.display());
    Ok(())
}
