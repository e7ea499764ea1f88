//! `haltpoll tune TRACE`: replays a trace over a grid of parameters and recommends a setting
//! for a CPU budget, with the commands that apply it.

use std::io::{self, Write};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use haltpoll::replay::Summary;
use haltpoll::share;
use haltpoll::{GovernorKind, Params, PredictiveParams, ShrinkRule, ValidParams};
use haltpoll_linux::module_params::{self, ModuleParams};
use haltpoll_linux::trace::{self, Format, Trace};
use haltpoll_linux::tune::{self, Basis, Contender, CpuTime, CpusFrom, Grid, Outcome};
use haltpoll_linux::units;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::options::{TraceCpus, TraceFormat};
use crate::output::{self, count, fmt_ns, percent, percent2};
use crate::plot::{FrontPlot, PlotFile};
use crate::table::{self, Column};

/// Which shrink settings to try.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AllowShrink {
    /// Shrinking allowed (Linux's default).
    On,
    /// Never shrink.
    Off,
    /// Both.
    Both,
}

/// Arguments of `haltpoll tune`.
#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  # a setting for the example perf trace that polls within 5% of the CPUs' time
  haltpoll tune examples/traces/perf-idle.txt
  # a budget of 1%, every setting listed, not only the Pareto front
  haltpoll tune examples/traces/perf-idle.txt --max-poll-share 1% --all
  # your own grid, as JSON
  haltpoll tune examples/traces/perf-idle.txt --ceilings 50us,100us,200us --json
  # record this machine's idle periods for a minute and tune on them (root, Linux)
  sudo haltpoll tune --record 60s")]
#[command(mut_arg("poll_budget_ppm", |a| a
    .help("Not used by tune, which replays the predictive governor at --max-poll-share: refused with \
           --governor, or other than 5%")
    .conflicts_with("governor")))]
pub struct TuneArgs {
    /// Trace file ('-' for stdin): one idle period per line in ns, or `perf script` output of
    /// power:cpu_idle.
    #[arg(value_name = "TRACE")]
    #[cfg_attr(target_os = "linux", arg(required_unless_present = "record"))]
    #[cfg_attr(not(target_os = "linux"), arg(required = true))]
    pub trace: Option<PathBuf>,
    /// Record the trace first, for TIME (e.g. 10s), as `haltpoll record` does (needs root, Linux).
    #[cfg(target_os = "linux")]
    #[arg(long, value_name = "TIME", conflicts_with_all = ["trace", "format"],
          value_parser = haltpoll_linux::record::parse_duration)]
    pub record: Option<std::time::Duration>,
    #[command(flatten)]
    pub format: TraceFormat,
    /// The CPU time polling may take, as a share of the CPUs' time (e.g. 5% or 0.5%).
    #[arg(long, value_name = "PERCENT", default_value = "5%", value_parser = units::parse_percent)]
    pub max_poll_share: f64,
    /// Ceilings to try (guest_halt_poll_ns), comma-separated, units allowed
    /// [default: 10us,25us,50us,100us,200us,400us,800us,1.6ms,3.2ms].
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = units::parse_ns)]
    pub ceilings: Vec<u64>,
    /// Starts to try (guest_halt_poll_grow_start), comma-separated, units allowed
    /// [default: 5us,10us,25us,50us,100us,200us,400us].
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = units::parse_ns)]
    pub grow_starts: Vec<u64>,
    /// Shrink settings to try (guest_halt_poll_allow_shrink).
    #[arg(long, value_enum, default_value = "both")]
    pub allow_shrink: AllowShrink,
    /// Factor by which the window grows, in every setting (guest_halt_poll_grow).
    #[arg(long, value_name = "FACTOR", default_value_t = Params::DEFAULT.grow)]
    pub grow: u32,
    /// Divisor by which the window shrinks, in every setting; 0 resets it (guest_halt_poll_shrink).
    #[arg(long, value_name = "DIVISOR", default_value_t = Params::DEFAULT.shrink)]
    pub shrink: u32,
    /// Model Linux before 6.9: a shrunk window has no floor at grow_start.
    #[arg(long)]
    pub legacy_shrink: bool,
    #[command(flatten)]
    pub cpus: TraceCpus,
    /// List every setting, not only the Pareto front.
    #[arg(long)]
    pub all: bool,
    /// Draw the front into FILE (.svg or .png).
    /// Needs the `plot` feature (on by default).
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// With `predictive`: also replay the predictive governor at the budget (--max-poll-share,
    /// spread over the CPUs that idle), next to Linux's grid.
    #[arg(long, value_enum, default_value_t = GovernorKind::Linux)]
    pub governor: GovernorKind,
    #[command(flatten)]
    pub predictive: PredictiveParams,
}

impl TuneArgs {
    /// The trace as reports name it.
    fn trace_name(&self) -> String {
        self.trace.as_ref().map_or_else(|| "the recording".to_owned(), |p| p.display().to_string())
    }

    /// The trace: read from its file, or recorded now (`--record`).
    fn trace(&self) -> Result<Trace> {
        #[cfg(target_os = "linux")]
        if let Some(duration) = self.record {
            return crate::recording::record_trace(duration);
        }
        let path = self.trace.as_ref().context("a TRACE to read, or --record TIME")?;
        Ok(trace::read(path, self.format.format)?)
    }

    /// The grid and its settings, checked.
    fn grid(&self) -> Result<(Grid, Vec<ValidParams>)> {
        let or_default = |v: &Vec<u64>, d: &[u64]| if v.is_empty() { d.to_vec() } else { v.clone() };
        let grid = Grid {
            ceilings_ns: or_default(&self.ceilings, &Grid::CEILINGS_NS),
            grow_starts_ns: or_default(&self.grow_starts, &Grid::GROW_STARTS_NS),
            allow_shrink: match self.allow_shrink {
                AllowShrink::On => vec![true],
                AllowShrink::Off => vec![false],
                AllowShrink::Both => vec![true, false],
            },
            base: Params {
                grow: self.grow,
                shrink: self.shrink,
                shrink_rule: if self.legacy_shrink { ShrinkRule::Legacy } else { ShrinkRule::Floor },
                ..Params::DEFAULT
            },
        };
        // Every setting must work, and be one the kernel can be given.
        let settings = grid.valid_settings().context("invalid grid")?;
        for p in &settings {
            ModuleParams::from_params(p).map_err(anyhow::Error::msg).context("invalid grid")?;
        }
        Ok((grid, settings))
    }
}

/// Everything the report shows.
struct Tuned<'a> {
    args: &'a TuneArgs,
    trace: &'a Trace,
    grid: Grid,
    cpu: CpuTime,
    outcomes: Vec<Outcome>,
    front: Vec<usize>,
    defaults: usize,
    recommended: Option<usize>,
    /// The predictive governor at the budget, if asked for.
    predictive: Option<(PredictiveParams, Summary)>,
}

/// Runs `haltpoll tune`.
pub fn run(args: &TuneArgs) -> Result<()> {
    if args.predictive.poll_budget_ppm != PredictiveParams::DEFAULT.poll_budget_ppm {
        return Err(crate::Usage(
            "tune replays the predictive governor at --max-poll-share, spread over the CPUs that idle; \
             --poll-budget is not used: give the budget with --max-poll-share"
                .into(),
        )
        .into());
    }
    // The picture's file before the work, not after it.
    let plot = args.plot.as_deref().map(PlotFile::create).transpose()?;
    let (grid, settings) = args.grid()?;
    // The replay follows the kernel's 32-bit window; a setting where it wraps is worth a word.
    if let Some(note) = settings.iter().find_map(|p| module_params::wrap_warning(p)) {
        output::note(note);
    }
    let trace = args.trace()?;
    output::print_notes(&trace.notes);
    if args.cpus.cpus.is_some() && trace.format != Format::Perf {
        output::note("--cpus is for perf traces; a text trace is measured against its idle time");
    }
    let cpu = tune::cpu_time(&trace, args.cpus.cpus);
    if cpu.ns == 0 {
        bail!("{}: the trace covers no time (all its idle periods are 0 ns long)", args.trace_name());
    }
    let bar = ProgressBar::new(settings.len() as u64).with_message("settings replayed");
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed}] {wide_bar} {pos}/{len} {msg} (eta {eta})")
            .expect("a valid template"),
    );
    let outcomes = tune::evaluate(&trace, &settings, || bar.inc(1));
    bar.finish_and_clear();
    let front = tune::front(&outcomes);
    let defaults = outcomes.iter().position(|o| o.params == grid.linux_defaults()).expect("always evaluated");
    let recommended = tune::recommend(&outcomes, &front, cpu, args.max_poll_share);
    let predictive = match args.governor {
        GovernorKind::Linux => None,
        GovernorKind::Predictive => {
            let params = tune::predictive_at(args.predictive, &trace, cpu, args.max_poll_share);
            let valid = params.validate().context("invalid predictive governor parameters")?;
            Some((params, trace.replay(valid, |_, _| {}).summary))
        }
    };
    let tuned = Tuned { args, trace: &trace, grid, cpu, outcomes, front, defaults, recommended, predictive };
    output::write_stdout(|out| if args.json { tuned.write_json(out) } else { tuned.write_human(out) })?;
    // The recommendation first, then the picture: a picture that fails loses nothing.
    plot.map_or(Ok(()), |plot| Ok(plot.front(&tuned.front_plot())?))
}

/// A line of the settings tables, its cells written out.
struct Line {
    label: &'static str,
    ceiling: String,
    start: String,
    shrink: &'static str,
    no_exit: String,
    poll: String,
    wasted: String,
    /// After the last column: how many settings tie with it, or what it is.
    note: String,
}

/// The settings tables' columns.
const COLUMNS: [Column<Line>; 8] = [
    Column::left("", 2, 14, |_, l| l.label.to_owned()),
    Column::right("ceiling_ns", 0, 12, |_, l| l.ceiling.clone()),
    Column::right("start_ns", 1, 11, |_, l| l.start.clone()),
    Column::right("shrink", 1, 7, |_, l| l.shrink.to_owned()),
    Column::right("no exit", 1, 9, |_, l| l.no_exit.clone()),
    Column::right("poll CPU", 1, 10, |_, l| l.poll.clone()),
    Column::right("wasted CPU", 1, 11, |_, l| l.wasted.clone()),
    Column::left("", 0, 0, |_, l| l.note.clone()),
];

impl Tuned<'_> {
    /// The line of setting `i`.
    fn line(&self, label: &'static str, i: usize) -> Line {
        let o = &self.outcomes[i];
        let alike = self.outcomes.iter().filter(|x| x.ties(o)).count() - 1;
        let p = &o.params;
        let (start, shrink) = if p.guest_halt_poll_ns == 0 {
            ("-".to_owned(), "-")
        } else {
            (p.grow_start.to_string(), if p.allow_shrink { "Y" } else { "N" })
        };
        Line {
            label,
            ceiling: p.guest_halt_poll_ns.to_string(),
            start,
            shrink,
            no_exit: percent(o.no_exit_share()),
            poll: percent2(o.poll_share(self.cpu)),
            wasted: percent2(o.wasted_share(self.cpu)),
            note: if alike > 0 { format!("  (+{alike} alike)") } else { String::new() },
        }
    }

    /// The predictive governor's line, if it was replayed.
    fn predictive_line(&self) -> Option<Line> {
        let (p, s) = self.predictive.as_ref()?;
        Some(Line {
            label: "predictive",
            ceiling: p.poll_ceiling_ns.to_string(),
            start: "-".to_owned(),
            shrink: "-",
            no_exit: percent(s.no_exit_share()),
            poll: percent2(share(s.poll_ns, self.cpu.ns)),
            wasted: percent2(share(s.wasted_poll_ns, self.cpu.ns)),
            note: format!("  (its budget: {} of each idle CPU's time)", percent2(p.poll_budget())),
        })
    }

    fn write_human(&self, out: &mut dyn Write) -> io::Result<()> {
        self.write_inputs(out)?;
        self.write_tables(out)?;
        self.write_recommendation(out)
    }

    /// What was tuned on: the trace, its CPU time and the grid.
    fn write_inputs(&self, out: &mut dyn Write) -> io::Result<()> {
        let (t, g) = (self.trace, &self.grid);
        let (periods, cpus) = (count(t.periods.len(), "idle period"), count(t.cpus.len(), "CPU"));
        let shrink = match g.allow_shrink.as_slice() {
            [true] => "on",
            [false] => "off",
            _ => "on/off",
        };
        let legacy = if g.base.shrink_rule == ShrinkRule::Legacy { ", shrink rule before Linux 6.9" } else { "" };
        let grid = format!(
            "{} settings: {} ceilings x {} starts x shrink {shrink}, grow {}, shrink {}{legacy}",
            self.outcomes.len(),
            g.ceilings_ns.len(),
            g.grow_starts_ns.len(),
            g.base.grow,
            g.base.shrink,
        );
        let trace = format!("{}: {}, {periods} on {cpus}", self.args.trace_name(), t.format.name());
        let fields = [("trace", trace), ("CPU time", describe_cpu_time(self.cpu, t)), ("grid", grid)];
        output::write_fields(out, "", 10, &fields)?;
        writeln!(out)?;
        writeln!(
            out,
            "no exit: wakeups a poll caught; poll CPU: CPU time polling; wasted CPU: polls that halted anyway"
        )?;
        writeln!(out)
    }

    /// Every setting (with --all), the Pareto front, and the settings for reference.
    fn write_tables(&self, out: &mut dyn Write) -> io::Result<()> {
        if self.args.all {
            writeln!(out, "every setting")?;
            table::write_header(out, &COLUMNS)?;
            for i in 0..self.outcomes.len() {
                table::write_row(out, &COLUMNS, &self.line(if self.front.contains(&i) { "front" } else { "" }, i))?;
            }
            writeln!(out)?;
        }
        writeln!(out, "Pareto front: no other setting catches more wakeups for as little polling")?;
        table::write_header(out, &COLUMNS)?;
        for &i in &self.front {
            let label = if Some(i) == self.recommended { "recommended" } else { "" };
            table::write_row(out, &COLUMNS, &self.line(label, i))?;
        }
        writeln!(out)?;
        writeln!(out, "for reference")?;
        let reference = std::iter::once(self.line("Linux default", self.defaults)).chain(self.predictive_line());
        reference.into_iter().try_for_each(|line| table::write_row(out, &COLUMNS, &line))?;
        writeln!(out)
    }

    /// The recommendation for the budget, and how to apply it.
    fn write_recommendation(&self, out: &mut dyn Write) -> io::Result<()> {
        let budget = percent2(self.args.max_poll_share);
        let Some(r) = self.recommended else {
            return writeln!(
                out,
                "no setting of the grid keeps polling within {budget} of CPU time: add 0 to --ceilings for the baseline"
            );
        };
        let (o, d) = (&self.outcomes[r], &self.outcomes[self.defaults]);
        writeln!(out, "recommendation for a budget of {budget} of CPU time (--max-poll-share)")?;
        if o.params.guest_halt_poll_ns == 0 {
            writeln!(out, "  keep guest polling off: no setting of the grid catches wakeups within the budget")?;
        } else {
            writeln!(
                out,
                "  {} of wakeups need no exit (Linux defaults: {}); polling takes {} of CPU time ({} wasted)",
                percent(o.no_exit_share()),
                percent(d.no_exit_share()),
                percent2(o.poll_share(self.cpu)),
                percent2(o.wasted_share(self.cpu)),
            )?;
        }
        let k = ModuleParams::from_params(&o.params).expect("grid settings fit the kernel's types");
        writeln!(out)?;
        writeln!(out, "apply it now, on the guest:")?;
        writeln!(out, "  sudo haltpoll set {}", k.set_args())?;
        writeln!(out, "apply it at boot, on the kernel command line:")?;
        writeln!(out, "  {}", k.cmdline())?;
        writeln!(out, "  (add cpuidle_haltpoll.force=1 if the host gives no REALTIME hint: `haltpoll status` tells)")?;
        if self.grid.base.shrink_rule == ShrinkRule::Legacy {
            writeln!(
                out,
                "  (modelled with the shrink rule before Linux 6.9; newer kernels floor the window at grow_start)"
            )?;
        }
        Ok(())
    }

    fn front_plot(&self) -> FrontPlot {
        let point = |i: usize| {
            let o = &self.outcomes[i];
            (o.poll_share(self.cpu) * 100.0, o.no_exit_share() * 100.0)
        };
        FrontPlot {
            title: format!(
                "haltpoll tune: {} ({})",
                self.args
                    .trace
                    .as_ref()
                    .and_then(|p| p.file_name())
                    .map_or_else(|| "trace".into(), |n| n.to_string_lossy()),
                count(self.trace.periods.len(), "idle period")
            ),
            all: (0..self.outcomes.len()).map(point).collect(),
            front: self.front.iter().map(|&i| point(i)).collect(),
            defaults: Some(point(self.defaults)),
            recommended: self.recommended.map(point),
            budget: Some(self.args.max_poll_share * 100.0),
            x_label: match self.cpu.basis {
                Basis::Wall { .. } => "CPU time polling (% of all CPUs' time)".to_owned(),
                Basis::IdleTime => "CPU time polling (% of the trace's idle time)".to_owned(),
            },
        }
    }

    fn write_json(&self, out: &mut dyn Write) -> io::Result<()> {
        let setting = |i: usize| SettingJson::new(&self.outcomes[i], self.cpu, self.front.contains(&i));
        let recommendation = self.recommended.map(|r| {
            let k = ModuleParams::from_params(&self.outcomes[r].params).expect("grid settings fit the kernel's types");
            RecommendationJson {
                setting: setting(r),
                set_command: format!("haltpoll set {}", k.set_args()),
                kernel_cmdline: k.cmdline(),
            }
        });
        let (wall_ns, cpus) = match self.cpu.basis {
            Basis::Wall { wall_ns, cpus, .. } => (Some(wall_ns), Some(cpus)),
            Basis::IdleTime => (None, None),
        };
        let json = TuneJson {
            trace: TraceJson {
                path: self.args.trace_name(),
                format: self.trace.format.name(),
                periods: self.trace.periods.len(),
                cpus_with_periods: self.trace.cpus.len(),
                wall_ns,
                cpus,
                cpu_time_ns: self.cpu.ns,
                cpu_time_basis: self.cpu.basis.name(),
            },
            max_poll_share: self.args.max_poll_share,
            settings: (0..self.outcomes.len()).map(setting).collect(),
            front: self.front.iter().map(|&i| setting(i)).collect(),
            linux_defaults: setting(self.defaults),
            recommendation,
            predictive: self.predictive.as_ref().map(|(params, s)| Contender::new(Some(*params), s, self.cpu)),
        };
        output::write_json(out, &json)
    }
}

fn describe_cpu_time(cpu: CpuTime, trace: &Trace) -> String {
    match cpu.basis {
        Basis::Wall { wall_ns, cpus, cpus_from } => {
            let from = match cpus_from {
                CpusFrom::Option => "from --cpus",
                CpusFrom::Header => "online, from the trace's header",
                CpusFrom::Seen => "with idle periods; the trace has no header: pass --cpus for the rest",
            };
            let seen = match trace.cpus.len() {
                n if cpus_from == CpusFrom::Seen || n as u32 == cpus => String::new(),
                1 => "; 1 CPU has idle periods".to_owned(),
                n => format!("; {n} CPUs have idle periods"),
            };
            format!(
                "{} = {} from first to last event x {} ({from}{seen}): the base of \"poll CPU\"",
                fmt_ns(cpu.ns),
                fmt_ns(wall_ns),
                count(cpus as usize, "CPU")
            )
        }
        Basis::IdleTime => format!(
            "{} of idle time: the trace has no timestamps, so \"poll CPU\" is a share of idle time, \
             an upper bound on the share of all CPU time",
            fmt_ns(cpu.ns)
        ),
    }
}

#[derive(Serialize)]
struct TuneJson {
    trace: TraceJson,
    max_poll_share: f64,
    settings: Vec<SettingJson>,
    front: Vec<SettingJson>,
    linux_defaults: SettingJson,
    recommendation: Option<RecommendationJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    predictive: Option<Contender<PredictiveParams>>,
}

#[derive(Serialize)]
struct TraceJson {
    path: String,
    format: &'static str,
    periods: usize,
    cpus_with_periods: usize,
    wall_ns: Option<u64>,
    cpus: Option<u32>,
    cpu_time_ns: u64,
    cpu_time_basis: &'static str,
}

#[derive(Serialize)]
struct SettingJson {
    #[serde(flatten)]
    params: Params,
    periods: u64,
    poll_hits: u64,
    no_exit_share: f64,
    poll_ns: u64,
    poll_share: f64,
    wasted_poll_ns: u64,
    wasted_share: f64,
    on_front: bool,
}

impl SettingJson {
    fn new(o: &Outcome, cpu: CpuTime, on_front: bool) -> SettingJson {
        SettingJson {
            params: o.params,
            periods: o.summary.periods,
            poll_hits: o.summary.poll_hits,
            no_exit_share: o.no_exit_share(),
            poll_ns: o.summary.poll_ns,
            poll_share: o.poll_share(cpu),
            wasted_poll_ns: o.summary.wasted_poll_ns,
            wasted_share: o.wasted_share(cpu),
            on_front,
        }
    }
}

#[derive(Serialize)]
struct RecommendationJson {
    #[serde(flatten)]
    setting: SettingJson,
    set_command: String,
    kernel_cmdline: String,
}
