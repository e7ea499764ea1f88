//! `haltpoll compare TRACE... --budgets 1%,2%,5%,10%`: per trace and CPU budget, Linux's best
//! setting of `tune`'s grid within the budget, the predictive governor at that budget, and the
//! clairvoyant bound. With `--frontier` ([`frontier`]), Linux's frontier against the predictive
//! governor's budget sweep.

mod frontier;

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;
use haltpoll::share;
use haltpoll::{Params, PredictiveParams};
use haltpoll_linux::compare::{AtBudget, Compared, compare};
use haltpoll_linux::trace::{self, Trace};
use haltpoll_linux::tune::{Basis, Contender, CpuTime};
use haltpoll_linux::units;
use serde::Serialize;

use crate::Usage;
use crate::options::{TraceCpus, TraceFormat};
use crate::output::{self, count, fmt_ns, percent, percent2};
use crate::plot::{Panel, PlotFile, Scale, Series};
use crate::table::{self, Column};

/// Arguments of `haltpoll compare`.
#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  # Linux's best setting, the predictive governor and the bound at 1%, 2%, 5% and 10%
  haltpoll compare examples/traces/perf-idle.txt
  # two budgets, as JSON
  haltpoll compare examples/traces/mixed.txt --budgets 2%,5% --json
  # the predictive governor without timers and with a 1 ms ceiling
  haltpoll compare examples/traces/mixed.txt --no-timer-first --poll-ceiling 1000000
  # Linux's frontier against the predictive governor at 0.5-100%, timer-first on and off, drawn
  haltpoll compare examples/traces/perf-idle.txt --frontier --plot frontier.svg")]
#[command(
    mut_arg("format", |a| a.help("The traces' format (default: detected from each one's first line)")),
    mut_arg("cpus", |a| a.help(
        "CPUs the traces cover (perf traces; default: the header's `nrcpus online`, else the CPUs with idle periods)"
    ))
)]
pub struct CompareArgs {
    /// Trace files ('-' for stdin): one idle period per line in ns, or `perf script` output of
    /// power:cpu_idle.
    #[arg(value_name = "TRACE", required = true)]
    pub traces: Vec<PathBuf>,
    #[command(flatten)]
    pub format: TraceFormat,
    /// CPU budgets to compare at, as shares of the CPUs' time, comma-separated (default:
    /// 1%,2%,5%,10%; with --frontier 0.5%,1%,2%,5%,10%,20%,50%,100%). For the predictive
    /// governor each replaces --poll-budget (spread over the CPUs that idle).
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = units::parse_percent,
          allow_hyphen_values = true)]
    pub budgets: Option<Vec<f64>>,
    #[command(flatten)]
    pub cpus: TraceCpus,
    #[command(flatten)]
    pub predictive: PredictiveParams,
    /// Draw no-exit share against budget, one panel per trace, into FILE (.svg or .png); with
    /// --frontier, Linux's frontier and the predictive governor, a panel per trace and plane.
    /// Needs the `plot` feature (on by default).
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Sweep the predictive governor over the budgets, timer-first on and off, against Linux's
    /// frontier (its best setting at each CPU share), in the planes of all polling and of
    /// polling less --halt-cost per catch.
    #[arg(long)]
    pub frontier: bool,
    /// With --frontier: exit with status 1, naming each trace, budget and plane, if a point
    /// falls short of Linux's frontier.
    #[arg(long, requires = "frontier")]
    pub check: bool,
}

/// Runs `haltpoll compare`.
pub fn run(args: &CompareArgs) -> Result<()> {
    // The picture's file before the work, not after it.
    let plot = args.plot.as_deref().map(PlotFile::create).transpose()?;
    if args.traces.iter().filter(|p| p.as_os_str() == "-").count() > 1 {
        return Err(Usage("standard input ('-') can be read only once: give it as one TRACE at most".into()).into());
    }
    let budgets = match &args.budgets {
        Some(budgets) => budgets.clone(),
        None if args.frontier => haltpoll_linux::frontier::BUDGETS.to_vec(),
        None => DEFAULT_BUDGETS.to_vec(),
    };
    if let Some(twice) = budgets.iter().enumerate().find_map(|(i, b)| budgets[..i].contains(b).then_some(b)) {
        return Err(Usage(format!("--budgets lists {} twice: give each budget once", percent(*twice))).into());
    }
    args.predictive.validate()?;
    let mut traces = Vec::new();
    for path in &args.traces {
        let trace = trace::read(path, args.format.format)?;
        output::print_notes(&trace.notes);
        traces.push((path.clone(), trace));
    }
    if args.frontier {
        return frontier::run(args, budgets, traces, plot);
    }
    let all = traces
        .into_iter()
        .map(|(path, trace)| compare(path, trace, &budgets, args.cpus.cpus, args.predictive))
        .collect::<Result<Vec<_>, _>>()?;
    output::write_stdout(|out| if args.json { write_json(out, &all) } else { write_human(out, &all) })?;
    if let Some(plot) = plot {
        plot.panels(&all.iter().map(panel).collect::<Vec<_>>())?;
    }
    Ok(())
}

/// The budgets compared at without `--budgets` (or `--frontier`).
const DEFAULT_BUDGETS: [f64; 4] = [0.01, 0.02, 0.05, 0.10];

/// A row of the table: one budget of one trace.
struct Row {
    cpu: CpuTime,
    at: AtBudget,
}

impl Row {
    fn share(&self, ns: u64) -> String {
        percent2(share(ns, self.cpu.ns))
    }
}

/// Linux's best setting as `ceiling/start/shrink`.
fn setting(p: &Params) -> String {
    if p.guest_halt_poll_ns == 0 {
        return "polling off".to_owned();
    }
    let shrink = if p.allow_shrink { "Y" } else { "N" };
    format!("{}/{}/{shrink}", fmt_ns(p.guest_halt_poll_ns), fmt_ns(p.grow_start))
}

/// The table's columns.
const COLUMNS: [Column<Row>; 12] = [
    Column::right("budget", 2, 7, |_, r| percent2(r.at.budget)),
    Column::right("Linux's best: ceil/start/shr", 2, 26, |_, r| setting(&r.at.linux.params)),
    Column::right("no exit", 2, 8, |_, r| percent(r.at.linux.no_exit_share())),
    Column::right("poll", 1, 8, |_, r| r.share(r.at.linux.summary.poll_ns)),
    Column::right("wasted", 1, 8, |_, r| r.share(r.at.linux.summary.wasted_poll_ns)),
    Column::right("predict.", 2, 8, |_, r| percent(r.at.predictive.no_exit_share())),
    Column::right("poll", 1, 8, |_, r| r.share(r.at.predictive.poll_ns)),
    Column::right("wasted", 1, 8, |_, r| r.share(r.at.predictive.wasted_poll_ns)),
    Column::right("bound", 2, 8, |_, r| percent(r.at.clairvoyant.no_exit_share())),
    Column::right("poll", 1, 8, |_, r| r.share(r.at.clairvoyant.poll_ns)),
    Column::right("xLinux", 2, 6, |_, r| r.at.ratio_to_linux().map_or_else(|| "-".to_owned(), |x| format!("{x:.2}"))),
    Column::right("closed", 1, 6, |_, r| r.at.gap_closed().map_or_else(|| "-".to_owned(), percent)),
];

/// What the columns mean, under the tables.
const LEGEND: [&str; 3] = [
    "no exit: wakeups that found the CPU polling; poll, wasted: CPU time polling, and polling that ended in a \
     halt anyway, as shares of the CPU time",
    "Linux's best: the setting of tune's grid catching the most within the budget; predict.: our predictive \
     governor (no kernel ships it), the budget spread over the CPUs that idle; bound: polls exactly the shortest periods that fit",
    "xLinux: predictive's wakeups without an exit over Linux's best; closed: the share of the distance from \
     Linux's best to the bound it covers",
];

fn write_human(out: &mut dyn Write, all: &[Compared]) -> io::Result<()> {
    for c in all {
        write_trace_header(out, &c.path, &c.trace, c.cpu)?;
        table::write_header(out, &COLUMNS)?;
        for at in &c.budgets {
            table::write_row(out, &COLUMNS, &Row { cpu: c.cpu, at: *at })?;
        }
        writeln!(out)?;
    }
    LEGEND.iter().try_for_each(|line| writeln!(out, "{line}"))
}

/// The two lines that introduce a trace: what it holds and the CPU time its shares are of.
fn write_trace_header(out: &mut dyn Write, path: &Path, t: &Trace, cpu: CpuTime) -> io::Result<()> {
    let (periods, cpus) = (count(t.periods.len(), "idle period"), count(t.cpus.len(), "CPU"));
    writeln!(out, "trace  {}: {}, {periods} on {cpus}", path.display(), t.format.name())?;
    let basis = match cpu.basis {
        Basis::Wall { wall_ns, cpus, .. } => format!("{} x {}", fmt_ns(wall_ns), count(cpus as usize, "CPU")),
        Basis::IdleTime => "its idle time (no timestamps)".to_owned(),
    };
    writeln!(out, "CPU time {} = {basis}: the base of every share below", fmt_ns(cpu.ns))
}

/// A trace as the JSON documents introduce it.
#[derive(Serialize)]
struct TraceInfo {
    path: String,
    format: &'static str,
    periods: usize,
    cpus_with_periods: usize,
    cpu_time_ns: u64,
    cpu_time_basis: &'static str,
}

impl TraceInfo {
    fn new(path: &Path, t: &Trace, cpu: CpuTime) -> Self {
        TraceInfo {
            path: path.display().to_string(),
            format: t.format.name(),
            periods: t.periods.len(),
            cpus_with_periods: t.cpus.len(),
            cpu_time_ns: cpu.ns,
            cpu_time_basis: cpu.basis.name(),
        }
    }
}

#[derive(Serialize)]
struct CompareJson<'a> {
    traces: Vec<TraceJson<'a>>,
}

#[derive(Serialize)]
struct TraceJson<'a> {
    #[serde(flatten)]
    trace: TraceInfo,
    budgets: Vec<BudgetJson<'a>>,
}

#[derive(Serialize)]
struct BudgetJson<'a> {
    budget: f64,
    linux_best: Contender<&'a Params>,
    predictive: Contender<&'a PredictiveParams>,
    clairvoyant: Contender<()>,
    /// Predictive's wakeups without an exit over Linux's best (None if Linux's best caught none).
    ratio_to_linux: Option<f64>,
    /// The share of the distance from Linux's best to the bound predictive covers.
    gap_closed: Option<f64>,
}

impl<'a> BudgetJson<'a> {
    fn new(at: &'a AtBudget, cpu: CpuTime) -> Self {
        BudgetJson {
            budget: at.budget,
            linux_best: Contender::new(Some(&at.linux.params), &at.linux.summary, cpu),
            predictive: Contender::new(Some(&at.predictive_params), &at.predictive, cpu),
            clairvoyant: Contender::new(None, &at.clairvoyant, cpu),
            ratio_to_linux: at.ratio_to_linux(),
            gap_closed: at.gap_closed(),
        }
    }
}

fn write_json(out: &mut dyn Write, all: &[Compared]) -> io::Result<()> {
    let traces = all
        .iter()
        .map(|c| TraceJson {
            trace: TraceInfo::new(&c.path, &c.trace, c.cpu),
            budgets: c.budgets.iter().map(|at| BudgetJson::new(at, c.cpu)).collect(),
        })
        .collect();
    output::write_json(out, &CompareJson { traces })
}

fn panel(c: &Compared) -> Panel {
    let series = |label: &str, hits: &dyn Fn(&AtBudget) -> f64| Series {
        label: label.to_owned(),
        points: c.budgets.iter().map(|at| (at.budget * 100.0, hits(at) * 100.0)).collect(),
    };
    Panel {
        title: format!("{}: wakeups without an exit against CPU budget", c.path.display()),
        x_label: "CPU budget (% of the CPUs' time)".to_owned(),
        y_label: "wakeups without an exit (%)".to_owned(),
        x_scale: Scale::Auto,
        y_scale: Scale::Linear,
        series: vec![
            series("Linux's best setting", &|at| at.linux.no_exit_share()),
            series("predictive", &|at| at.predictive.no_exit_share()),
            series("clairvoyant bound", &|at| at.clairvoyant.no_exit_share()),
        ],
    }
}
