//! `haltpoll compare TRACE... --budgets 1%,2%,5%,10%`: per trace and CPU budget, Linux's best
//! setting of `tune`'s grid within the budget, the predictive governor at that budget, and the
//! clairvoyant bound.

use std::io::{self, Write};
use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use haltpoll::replay::Summary;
use haltpoll::{Params, PredictiveParams};
use serde::Serialize;

use crate::cmd::tune::percent2;
use crate::output::{self, count, fmt_ns, percent};
use crate::plot::{Panel, PlotFile, Scale, Series};
use crate::trace::{self, Format, Trace};
use crate::tune::{self, Basis, CpuTime, Grid, Outcome, share};
use crate::units;

/// Arguments of `haltpoll compare`.
#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  # Linux's best setting, the predictive governor and the bound at 1%, 2%, 5% and 10%
  haltpoll compare examples/traces/perf-idle.txt
  # two budgets, as JSON
  haltpoll compare examples/traces/mixed.txt --budgets 2%,5% --json
  # the predictive governor without timers and with a 1 ms ceiling
  haltpoll compare examples/traces/mixed.txt --no-timer-first --poll-ceiling 1000000")]
pub struct CompareArgs {
    /// Trace files ('-' for stdin): one idle period per line in ns, or `perf script` output of
    /// power:cpu_idle.
    #[arg(value_name = "TRACE", required = true)]
    pub traces: Vec<PathBuf>,
    /// The traces' format (default: detected from each one's first line).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// CPU budgets to compare at, as shares of the CPUs' time, comma-separated. For the
    /// predictive governor each replaces --poll-budget (spread over the CPUs that idle).
    #[arg(long, value_name = "LIST", value_delimiter = ',', default_value = "1%,2%,5%,10%",
          value_parser = units::parse_percent)]
    pub budgets: Vec<f64>,
    /// CPUs the traces cover (perf traces; default: the header's `nrcpus online`, else the CPUs
    /// with idle periods).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub cpus: Option<u32>,
    #[command(flatten)]
    pub predictive: PredictiveParams,
    /// Draw no-exit share against budget, one panel per trace, into FILE (.svg or .png).
    /// Needs the `plot` feature (on by default).
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// One contender's result at one budget.
#[derive(Clone, Copy, Debug)]
pub struct Result3 {
    /// Linux's best grid setting within the budget and what it did.
    pub linux: Outcome,
    /// The predictive governor's parameters (its per-CPU budget) and what it did.
    pub predictive: (PredictiveParams, Summary),
    /// The clairvoyant bound.
    pub clairvoyant: Summary,
}

/// One trace's comparison.
pub struct Compared {
    /// The trace's path, as given.
    pub path: PathBuf,
    /// The trace.
    pub trace: Trace,
    /// The CPU time the shares are of.
    pub cpu: CpuTime,
    /// Per budget, in the order given.
    pub rows: Vec<(f64, Result3)>,
}

/// Runs `haltpoll compare`.
pub fn run(args: &CompareArgs) -> Result<()> {
    // The picture's file before the work, not after it.
    let plot = args.plot.as_deref().map(PlotFile::create).transpose()?;
    if args.traces.iter().filter(|p| p.as_os_str() == "-").count() > 1 {
        bail!("standard input ('-') can be read only once: give it as one TRACE at most");
    }
    args.predictive.validate()?;
    let mut all = Vec::new();
    for path in &args.traces {
        let trace = trace::read(path, args.format)?;
        output::print_notes(&trace.notes);
        all.push(compare(path.clone(), trace, &args.budgets, args.cpus, args.predictive)?);
    }
    output::write_stdout(|out| if args.json { write_json(out, &all) } else { write_human(out, &all) })?;
    if let Some(plot) = plot {
        plot.panels(&all.iter().map(panel).collect::<Vec<_>>())?;
    }
    Ok(())
}

/// Compares the three on one trace at each budget.
pub fn compare(
    path: PathBuf,
    trace: Trace,
    budgets: &[f64],
    cpus: Option<u32>,
    predictive: PredictiveParams,
) -> Result<Compared> {
    if trace.periods.is_empty() {
        bail!("{}: the trace has no idle periods to compare on", path.display());
    }
    let cpu = tune::cpu_time(&trace, cpus);
    if cpu.ns == 0 {
        bail!("{}: the trace covers no time (all its idle periods are 0 ns long)", path.display());
    }
    let grid = Grid {
        ceilings_ns: Grid::CEILINGS_NS.to_vec(),
        grow_starts_ns: Grid::GROW_STARTS_NS.to_vec(),
        allow_shrink: vec![true, false],
        base: Params::DEFAULT,
    };
    let outcomes = tune::evaluate(&trace, &grid.valid_settings()?, || {});
    let front = tune::front(&outcomes);
    let mut rows = Vec::new();
    for &budget in budgets {
        let best = tune::recommend(&outcomes, &front, cpu, budget).expect("polling off fits every budget");
        let params = tune::predictive_at(predictive, &trace, cpu, budget);
        let summary = trace.replay(params.validate()?, |_, _| {}).summary;
        let clairvoyant = tune::clairvoyant(&trace, (budget * cpu.ns as f64) as u64);
        rows.push((budget, Result3 { linux: outcomes[best], predictive: (params, summary), clairvoyant }));
    }
    Ok(Compared { path, trace, cpu, rows })
}

/// How much of the distance from Linux's best to the bound the predictive governor covers
/// (negative if it catches fewer than Linux's best), `None` when there is no distance.
pub fn gap_closed(r: &Result3) -> Option<f64> {
    let (l, p, c) = (r.linux.summary.poll_hits, r.predictive.1.poll_hits, r.clairvoyant.poll_hits);
    (c > l).then(|| (p as f64 - l as f64) / (c - l) as f64)
}

fn write_human(out: &mut dyn Write, all: &[Compared]) -> io::Result<()> {
    for c in all {
        let t = &c.trace;
        writeln!(
            out,
            "trace  {}: {}, {} on {}",
            c.path.display(),
            t.format.name(),
            count(t.periods.len(), "idle period"),
            count(t.cpus.len(), "CPU")
        )?;
        let basis = match c.cpu.basis {
            Basis::Wall { wall_ns, cpus, .. } => format!("{} x {}", fmt_ns(wall_ns), count(cpus as usize, "CPU")),
            Basis::IdleTime => "its idle time (no timestamps)".to_owned(),
        };
        writeln!(out, "CPU time {} = {basis}: the base of every share below", fmt_ns(c.cpu.ns))?;
        writeln!(
            out,
            "  {:>7}  {:>26}  {:>8} {:>8} {:>8}  {:>8} {:>8} {:>8}  {:>8} {:>8}  {:>6} {:>6}",
            "budget",
            "Linux's best: ceil/start/shr",
            "no exit",
            "poll",
            "wasted",
            "predict.",
            "poll",
            "wasted",
            "bound",
            "poll",
            "xLinux",
            "closed"
        )?;
        for (budget, r) in &c.rows {
            let l = &r.linux;
            let setting = if l.params.guest_halt_poll_ns == 0 {
                "polling off".to_owned()
            } else {
                format!(
                    "{}/{}/{}",
                    fmt_ns(l.params.guest_halt_poll_ns),
                    fmt_ns(l.params.grow_start),
                    if l.params.allow_shrink { "Y" } else { "N" }
                )
            };
            let p = &r.predictive.1;
            let b = &r.clairvoyant;
            let ratio = if l.summary.poll_hits == 0 {
                "-".to_owned()
            } else {
                format!("{:.2}", p.poll_hits as f64 / l.summary.poll_hits as f64)
            };
            let closed = gap_closed(r).map_or_else(|| "-".to_owned(), percent);
            writeln!(
                out,
                "  {:>7}  {setting:>26}  {:>8} {:>8} {:>8}  {:>8} {:>8} {:>8}  {:>8} {:>8}  {ratio:>6} {closed:>6}",
                percent2(*budget),
                percent(l.no_exit_share()),
                percent2(l.poll_share(c.cpu)),
                percent2(l.wasted_share(c.cpu)),
                percent(p.no_exit_share()),
                percent2(share(p.poll_ns, c.cpu.ns)),
                percent2(share(p.wasted_poll_ns, c.cpu.ns)),
                percent(b.no_exit_share()),
                percent2(share(b.poll_ns, c.cpu.ns)),
            )?;
        }
        writeln!(out)?;
    }
    writeln!(
        out,
        "no exit: wakeups that found the CPU polling; poll, wasted: CPU time polling, and polling that \
         ended in a halt anyway, as shares of the CPU time"
    )?;
    writeln!(
        out,
        "Linux's best: the setting of tune's grid catching the most within the budget; predict.: the \
         predictive governor, the budget spread over the CPUs that idle; bound: polls exactly the \
         shortest periods that fit"
    )?;
    writeln!(
        out,
        "xLinux: predictive's wakeups without an exit over Linux's best; closed: the share of the distance \
         from Linux's best to the bound it covers"
    )
}

#[derive(Serialize)]
struct CompareJson<'a> {
    traces: Vec<TraceJson<'a>>,
}

#[derive(Serialize)]
struct TraceJson<'a> {
    path: String,
    format: &'static str,
    periods: usize,
    cpus_with_periods: usize,
    cpu_time_ns: u64,
    cpu_time_basis: &'static str,
    budgets: Vec<BudgetJson<'a>>,
}

#[derive(Serialize)]
struct BudgetJson<'a> {
    budget: f64,
    linux_best: ContenderJson<&'a Params>,
    predictive: ContenderJson<&'a PredictiveParams>,
    clairvoyant: ContenderJson<()>,
    /// Predictive's wakeups without an exit over Linux's best (None if Linux's best caught none).
    ratio_to_linux: Option<f64>,
    /// The share of the distance from Linux's best to the bound predictive covers.
    gap_closed: Option<f64>,
}

/// One contender's result as JSON (docs/json.md's "contender").
#[derive(Serialize)]
pub struct ContenderJson<P> {
    #[serde(skip_serializing_if = "Option::is_none")]
    params: Option<P>,
    poll_hits: u64,
    periods: u64,
    no_exit_share: f64,
    poll_ns: u64,
    poll_share: f64,
    wasted_poll_ns: u64,
    wasted_share: f64,
    timer_wakes: u64,
}

impl<P> ContenderJson<P> {
    /// `s` over a trace of `cpu`, with the parameters that made it, if any.
    pub fn new(params: Option<P>, s: &Summary, cpu: CpuTime) -> Self {
        ContenderJson {
            params,
            poll_hits: s.poll_hits,
            periods: s.periods,
            no_exit_share: s.no_exit_share(),
            poll_ns: s.poll_ns,
            poll_share: share(s.poll_ns, cpu.ns),
            wasted_poll_ns: s.wasted_poll_ns,
            wasted_share: share(s.wasted_poll_ns, cpu.ns),
            timer_wakes: s.timer_wakes,
        }
    }
}

fn write_json(out: &mut dyn Write, all: &[Compared]) -> io::Result<()> {
    let traces = all
        .iter()
        .map(|c| TraceJson {
            path: c.path.display().to_string(),
            format: c.trace.format.name(),
            periods: c.trace.periods.len(),
            cpus_with_periods: c.trace.cpus.len(),
            cpu_time_ns: c.cpu.ns,
            cpu_time_basis: match c.cpu.basis {
                Basis::Wall { .. } => "wall time x CPUs",
                Basis::IdleTime => "idle time",
            },
            budgets: c
                .rows
                .iter()
                .map(|(budget, r)| BudgetJson {
                    budget: *budget,
                    linux_best: ContenderJson::new(Some(&r.linux.params), &r.linux.summary, c.cpu),
                    predictive: ContenderJson::new(Some(&r.predictive.0), &r.predictive.1, c.cpu),
                    clairvoyant: ContenderJson::new(None, &r.clairvoyant, c.cpu),
                    ratio_to_linux: (r.linux.summary.poll_hits > 0)
                        .then(|| r.predictive.1.poll_hits as f64 / r.linux.summary.poll_hits as f64),
                    gap_closed: gap_closed(r),
                })
                .collect(),
        })
        .collect();
    output::write_json(out, &CompareJson { traces })
}

fn panel(c: &Compared) -> Panel {
    let series = |label: &str, hits: &dyn Fn(&Result3) -> f64| Series {
        label: label.to_owned(),
        points: c.rows.iter().map(|(budget, r)| (budget * 100.0, hits(r) * 100.0)).collect(),
    };
    Panel {
        title: format!("{}: wakeups without an exit against CPU budget", c.path.display()),
        x_label: "CPU budget (% of the CPUs' time)".to_owned(),
        y_label: "wakeups without an exit (%)".to_owned(),
        x_scale: Scale::Auto,
        y_scale: Scale::Linear,
        series: vec![
            series("Linux's best setting", &|r| r.linux.no_exit_share()),
            series("predictive", &|r| r.predictive.1.no_exit_share()),
            series("clairvoyant bound", &|r| r.clairvoyant.no_exit_share()),
        ],
    }
}
