//! `haltpoll tune TRACE`: replays a trace over a grid of parameters and recommends a setting
//! for a CPU budget, with the commands that apply it.

use std::io::{self, Write};
use std::path::PathBuf;

use std::num::NonZeroU32;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use haltpoll::{GovernorKind, Params, ShrinkRule, ValidParams};
use haltpoll_linux::module_params::{self, ModuleParams};
use haltpoll_linux::trace::{self, Format, Trace};
use haltpoll_linux::tune::{
    self, Advice, Axis, Basis, CpuTime, CpusFrom, EdgeWhy, Grid, IdleGuest, Judged, Outcome, Policy, Verdict,
};
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
  # a budget of 1% on a guest whose tick is 250 Hz (CONFIG_HZ=250), every setting listed
  haltpoll tune examples/traces/perf-idle.txt --max-poll-share 1% --tick-hz 250 --all
  # your own grid, as JSON
  haltpoll tune examples/traces/perf-idle.txt --ceilings 50us,100us,200us --json
  # record this machine's idle periods for a minute and tune on them (root, Linux)
  sudo haltpoll tune --record 60s")]
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
    /// The idle guest's tick rates (its CONFIG_HZ) each setting is checked against: a
    /// recommendation never polls more than --max-poll-share of an idle guest's time.
    #[arg(long, value_name = "LIST", value_delimiter = ',', default_value = "250,1000")]
    pub tick_hz: Vec<NonZeroU32>,
    /// Only `linux`: tune advises on the kernel's parameters. `haltpoll compare` replays the
    /// predictive governor, which no kernel ships, next to Linux's best setting.
    #[arg(long, value_enum, default_value_t = GovernorKind::Linux)]
    pub governor: GovernorKind,
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
    cpu: CpuTime,
    advice: Advice,
    /// Linux's defaults: an index into the advice's outcomes.
    defaults: usize,
}

/// Runs `haltpoll tune`.
pub fn run(args: &TuneArgs) -> Result<()> {
    if args.governor == GovernorKind::Predictive {
        return Err(crate::Usage(
            "tune advises on Linux's parameters, and no kernel ships the predictive governor: \
             `haltpoll compare TRACE --budgets 5%` replays it next to Linux's best setting"
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
    let policy = Policy { budget: args.max_poll_share, ticks_hz: args.tick_hz.clone() };
    let advice = tune::advise(&trace, cpu, grid, &policy, |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })
    .context("invalid grid")?;
    bar.finish_and_clear();
    let defaults = advice.grid.linux_defaults();
    let defaults = advice.outcomes.iter().position(|o| o.params == defaults).expect("always evaluated");
    let tuned = Tuned { args, trace: &trace, cpu, advice, defaults };
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
    idle_guest: String,
    /// After the last column: how many settings tie with it, and why it is not advised.
    note: String,
}

/// The settings tables' columns.
const COLUMNS: [Column<Line>; 9] = [
    Column::left("", 2, 14, |_, l| l.label.to_owned()),
    Column::right("ceiling_ns", 0, 12, |_, l| l.ceiling.clone()),
    Column::right("start_ns", 1, 11, |_, l| l.start.clone()),
    Column::right("shrink", 1, 7, |_, l| l.shrink.to_owned()),
    Column::right("no exit", 1, 9, |_, l| l.no_exit.clone()),
    Column::right("poll CPU", 1, 10, |_, l| l.poll.clone()),
    Column::right("wasted CPU", 1, 11, |_, l| l.wasted.clone()),
    Column::right("idle guest", 1, 11, |_, l| l.idle_guest.clone()),
    Column::left("", 0, 0, |_, l| l.note.clone()),
];

/// `p` as `haltpoll set` arguments, short: the three the grid varies.
fn short_setting(p: &Params) -> String {
    if p.guest_halt_poll_ns == 0 {
        return "ns=0 (polling off)".to_owned();
    }
    let shrink = if p.allow_shrink { "Y" } else { "N" };
    format!("ns={} grow_start={} allow_shrink={shrink}", p.guest_halt_poll_ns, p.grow_start)
}

/// The worst idle guest, in words: "80.00% of its time (on a 250 Hz tick)".
fn idle_guest_text(g: &IdleGuest) -> String {
    format!("{} of its time (on a {} Hz tick)", percent2(g.poll_share), g.tick_hz)
}

impl Tuned<'_> {
    /// The line of setting `i`.
    fn line(&self, label: &'static str, i: usize) -> Line {
        let (o, j) = (&self.advice.outcomes[i], &self.advice.judged[i]);
        let alike = self.advice.outcomes.iter().filter(|x| x.ties(o)).count() - 1;
        let p = &o.params;
        let (start, shrink) = if p.guest_halt_poll_ns == 0 {
            ("-".to_owned(), "-")
        } else {
            (p.grow_start.to_string(), if p.allow_shrink { "Y" } else { "N" })
        };
        let mut notes = Vec::new();
        if alike > 0 {
            notes.push(format!("+{alike} alike"));
        }
        // Why a setting within the budget is not advised; beyond the budget it goes without saying.
        if j.fits_budget && p.guest_halt_poll_ns != 0 {
            if !j.idle_guest_ok {
                notes.push("polls an idle guest beyond the budget".to_owned());
            }
            if !j.worth_it {
                notes.push("not worth it".to_owned());
            }
        }
        Line {
            label,
            ceiling: p.guest_halt_poll_ns.to_string(),
            start,
            shrink,
            no_exit: percent(o.no_exit_share()),
            poll: percent2(o.poll_share(self.cpu)),
            wasted: percent2(o.wasted_share(self.cpu)),
            idle_guest: j.idle_guest.map_or_else(|| "-".to_owned(), |g| percent2(g.poll_share)),
            note: if notes.is_empty() { String::new() } else { format!("  ({})", notes.join("; ")) },
        }
    }

    fn write_human(&self, out: &mut dyn Write) -> io::Result<()> {
        self.write_inputs(out)?;
        self.write_tables(out)?;
        self.write_recommendation(out)
    }

    /// The grid, in words, with what it was extended by.
    fn describe_grid(&self) -> String {
        let g = &self.advice.grid;
        let shrink = match g.allow_shrink.as_slice() {
            [true] => "on",
            [false] => "off",
            _ => "on/off",
        };
        let legacy = if g.base.shrink_rule == ShrinkRule::Legacy { ", shrink rule before Linux 6.9" } else { "" };
        let mut grid = format!(
            "{} settings: {} ceilings x {} starts x shrink {shrink}, grow {}, shrink {}{legacy}",
            self.advice.outcomes.len(),
            g.ceilings_ns.len(),
            g.grow_starts_ns.len(),
            g.base.grow,
            g.base.shrink,
        );
        if !self.advice.extended.is_empty() {
            let added: Vec<String> =
                self.advice.extended.iter().map(|&(axis, v)| format!("{} {}", axis_name(axis), v)).collect();
            grid += &format!("; extended where the advice sat at its edge: {}", added.join(", "));
        }
        grid
    }

    /// What was tuned on: the trace, its CPU time, its idle share and the grid.
    fn write_inputs(&self, out: &mut dyn Write) -> io::Result<()> {
        let t = self.trace;
        let (periods, cpus) = (count(t.periods.len(), "idle period"), count(t.cpus.len(), "CPU"));
        let trace = format!("{}: {}, {periods} on {cpus}", self.args.trace_name(), t.format.name());
        let idle = match self.cpu.basis {
            Basis::Wall { .. } => format!("{} of the CPU time", percent2(tune::idle_share(t, self.cpu))),
            Basis::IdleTime => "all of the CPU time (a text trace has only idle periods)".to_owned(),
        };
        let ticks: Vec<String> = self.args.tick_hz.iter().map(|hz| format!("{hz} Hz")).collect();
        let rules = format!(
            "within the budget on the trace and on the guest gone idle (its tick: {}, --tick-hz); worth it \
             (polls that catch take at least as long as polls wasted); the cheapest within {} point of the best",
            ticks.join(" or "),
            tune::KNEE_POINTS
        );
        let fields = [
            ("trace", trace),
            ("CPU time", describe_cpu_time(self.cpu, t)),
            ("idle", idle),
            ("grid", self.describe_grid()),
            ("rules", rules),
        ];
        output::write_fields(out, "", 10, &fields)?;
        writeln!(out)?;
        writeln!(
            out,
            "no exit: wakeups a poll caught; poll CPU: CPU time polling; wasted CPU: polls that halted anyway;\n\
             idle guest: its time polling once idle (the worst tick)"
        )?;
        writeln!(out)
    }

    /// Every setting (with --all), the Pareto front, and the settings for reference.
    fn write_tables(&self, out: &mut dyn Write) -> io::Result<()> {
        let a = &self.advice;
        if self.args.all {
            writeln!(out, "every setting")?;
            table::write_header(out, &COLUMNS)?;
            for i in 0..a.outcomes.len() {
                let label = if i == a.pick {
                    "recommended"
                } else if a.front.contains(&i) {
                    "front"
                } else {
                    ""
                };
                table::write_row(out, &COLUMNS, &self.line(label, i))?;
            }
            writeln!(out)?;
        }
        writeln!(out, "Pareto front: no other setting catches more wakeups for as little polling")?;
        table::write_header(out, &COLUMNS)?;
        for &i in &a.front {
            table::write_row(out, &COLUMNS, &self.line(if i == a.pick { "recommended" } else { "" }, i))?;
        }
        writeln!(out)?;
        writeln!(out, "for reference")?;
        if !a.front.contains(&a.pick) {
            table::write_row(out, &COLUMNS, &self.line("recommended", a.pick))?;
        }
        table::write_row(out, &COLUMNS, &self.line("Linux default", self.defaults))?;
        writeln!(out)
    }

    /// The recommendation for the budget, why, and how to apply it.
    fn write_recommendation(&self, out: &mut dyn Write) -> io::Result<()> {
        let a = &self.advice;
        let (o, d) = (&a.outcomes[a.pick], &a.outcomes[self.defaults]);
        writeln!(
            out,
            "recommendation for a budget of {} of CPU time (--max-poll-share)",
            percent2(self.args.max_poll_share)
        )?;
        match a.verdict {
            Verdict::Poll => {
                writeln!(
                    out,
                    "  {} of wakeups need no exit (Linux defaults: {}); polling takes {} of CPU time ({} wasted)",
                    percent(o.no_exit_share()),
                    percent(d.no_exit_share()),
                    percent2(o.poll_share(self.cpu)),
                    percent2(o.wasted_share(self.cpu)),
                )?;
                match a.judged[a.pick].idle_guest {
                    Some(g) if g.poll_share > 0.0 => {
                        writeln!(out, "  once the guest is idle it polls {}", idle_guest_text(&g))?
                    }
                    Some(_) => writeln!(out, "  once the guest is idle it does not poll: its window shrinks to 0")?,
                    None => {}
                }
            }
            Verdict::NothingFits | Verdict::NotWorthIt | Verdict::IdleGuest => {
                writeln!(out, "  keep guest polling off (guest_halt_poll_ns=0): {}", off_reason(a.verdict))?
            }
        }
        self.write_passed_over(out)?;
        self.write_edge(out)?;
        self.write_apply(out, o)
    }

    /// Why the setting that catches most within the budget is not the advice.
    fn write_passed_over(&self, out: &mut dyn Write) -> io::Result<()> {
        let a = &self.advice;
        let Some(p) = a.passed_over else { return Ok(()) };
        let (o, pick) = (&a.outcomes[p.setting], &a.outcomes[a.pick]);
        let mut fails = Vec::new();
        if let Some(g) = p.idle_guest {
            fails.push(format!("once the guest is idle it polls {}", idle_guest_text(&g)));
        }
        if !p.worth_it {
            fails.push("more of its polling ends in a halt than catches a wakeup".to_owned());
        }
        let why = match fails.is_empty() {
            false => format!("but {}", fails.join(", and ")),
            true => format!(
                "only {} points more than the advice, for {} more polling (the knee: within {} point of the best)",
                points(o.no_exit_share() - pick.no_exit_share()),
                percent2(o.poll_share(self.cpu) - pick.poll_share(self.cpu)),
                tune::KNEE_POINTS
            ),
        };
        writeln!(
            out,
            "  passed over: {} catches {} of wakeups for {} of CPU time ({} wasted), {why}",
            short_setting(&o.params),
            percent(o.no_exit_share()),
            percent2(o.poll_share(self.cpu)),
            percent2(o.wasted_share(self.cpu)),
        )
    }

    /// The advice at an edge of the grid that did not extend, if it is.
    fn write_edge(&self, out: &mut dyn Write) -> io::Result<()> {
        let Some(e) = self.advice.edge else { return Ok(()) };
        let why = match e.why {
            EdgeWhy::KernelLimit => "the kernel's largest value (a 32-bit unsigned int)".to_owned(),
            EdgeWhy::Extensions => format!(
                "where the grid stopped after extending {} times: larger --ceilings or --grow-starts look further",
                tune::MAX_EXTENSIONS
            ),
        };
        writeln!(out, "  at the grid's edge: its largest {} ({}) is {why}", axis_name(e.axis), fmt_ns(e.value_ns))
    }

    /// How to apply the advice, and what `haltpoll set` warns about it.
    fn write_apply(&self, out: &mut dyn Write, o: &Outcome) -> io::Result<()> {
        let k = ModuleParams::from_params(&o.params).expect("grid settings fit the kernel's types");
        writeln!(out)?;
        writeln!(out, "apply it now, on the guest:")?;
        writeln!(out, "  sudo haltpoll set {}", k.set_args())?;
        writeln!(out, "apply it at boot, on the kernel command line:")?;
        writeln!(out, "  {}", k.cmdline())?;
        writeln!(out, "  (add cpuidle_haltpoll.force=1 if the host gives no REALTIME hint: `haltpoll status` tells)")?;
        if self.advice.grid.base.shrink_rule == ShrinkRule::Legacy {
            writeln!(
                out,
                "  (modelled with the shrink rule before Linux 6.9; newer kernels floor the window at grow_start)"
            )?;
        }
        let warnings = set_warnings(&k);
        if !warnings.is_empty() {
            writeln!(out, "`haltpoll set` warns:")?;
            warnings.iter().try_for_each(|w| writeln!(out, "  - {w}"))?;
        }
        Ok(())
    }

    fn front_plot(&self) -> FrontPlot {
        let a = &self.advice;
        let point = |i: usize| {
            let o = &a.outcomes[i];
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
            all: (0..a.outcomes.len()).map(point).collect(),
            front: a.front.iter().map(|&i| point(i)).collect(),
            defaults: Some(point(self.defaults)),
            recommended: Some(point(a.pick)),
            budget: Some(self.args.max_poll_share * 100.0),
            x_label: match self.cpu.basis {
                Basis::Wall { .. } => "CPU time polling (% of all CPUs' time)".to_owned(),
                Basis::IdleTime => "CPU time polling (% of the trace's idle time)".to_owned(),
            },
        }
    }

    fn write_json(&self, out: &mut dyn Write) -> io::Result<()> {
        let a = &self.advice;
        let setting = |i: usize| SettingJson::new(&a.outcomes[i], &a.judged[i], self.cpu, a.front.contains(&i));
        let k = ModuleParams::from_params(&a.outcomes[a.pick].params).expect("grid settings fit the kernel's types");
        let recommendation = RecommendationJson {
            setting: setting(a.pick),
            verdict: a.verdict.name(),
            set_command: format!("haltpoll set {}", k.set_args()),
            kernel_cmdline: k.cmdline(),
            warnings: set_warnings(&k),
            passed_over: a.passed_over.map(|p| setting(p.setting)),
        };
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
                idle_ns: self.trace.periods.iter().fold(0u64, |sum, p| sum.saturating_add(p.idle_ns)),
                idle_share: tune::idle_share(self.trace, self.cpu),
            },
            max_poll_share: self.args.max_poll_share,
            tick_hz: self.args.tick_hz.iter().map(|hz| hz.get()).collect(),
            extended: a
                .extended
                .iter()
                .map(|&(axis, value_ns)| ExtensionJson { parameter: axis_param(axis), value_ns })
                .collect(),
            edge: a.edge.map(|e| EdgeJson {
                parameter: axis_param(e.axis),
                value_ns: e.value_ns,
                why: match e.why {
                    EdgeWhy::KernelLimit => "kernel-limit",
                    EdgeWhy::Extensions => "extensions",
                },
            }),
            settings: (0..a.outcomes.len()).map(setting).collect(),
            front: a.front.iter().map(|&i| setting(i)).collect(),
            linux_defaults: setting(self.defaults),
            recommendation,
        };
        output::write_json(out, &json)
    }
}

/// What `haltpoll set` warns about the kernel's values `k`, the same sentences; none for polling
/// off, which the advice itself explains.
fn set_warnings(k: &ModuleParams) -> Vec<String> {
    if k.guest_halt_poll_ns == 0 { Vec::new() } else { k.warnings() }
}

/// Why the advice is to leave polling off (or, for [`Verdict::Poll`], that it is not).
fn off_reason(verdict: Verdict) -> String {
    match verdict {
        Verdict::Poll => "a setting that polls keeps every rule".to_owned(),
        Verdict::NothingFits => "every setting of the grid that polls takes more than the budget".to_owned(),
        Verdict::NotWorthIt => format!(
            "not worth it: no setting within the budget catches more than {} point of wakeups with at least as \
             much of its polling catching as wasted",
            tune::KNEE_POINTS
        ),
        Verdict::IdleGuest => {
            "the settings within the budget that are worth it poll an idle guest beyond the budget".to_owned()
        }
    }
}

/// A difference of shares, in points: "0.4".
fn points(share: f64) -> String {
    format!("{:.1}", share * 100.0)
}

/// The grid's axis, as the report names it.
fn axis_name(axis: Axis) -> &'static str {
    match axis {
        Axis::Ceiling => "ceiling",
        Axis::GrowStart => "grow_start",
    }
}

/// The grid's axis, as the kernel names the parameter.
fn axis_param(axis: Axis) -> &'static str {
    match axis {
        Axis::Ceiling => "guest_halt_poll_ns",
        Axis::GrowStart => "guest_halt_poll_grow_start",
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
    tick_hz: Vec<u32>,
    extended: Vec<ExtensionJson>,
    edge: Option<EdgeJson>,
    settings: Vec<SettingJson>,
    front: Vec<SettingJson>,
    linux_defaults: SettingJson,
    recommendation: RecommendationJson,
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
    idle_ns: u64,
    idle_share: f64,
}

#[derive(Serialize)]
struct ExtensionJson {
    parameter: &'static str,
    value_ns: u64,
}

#[derive(Serialize)]
struct EdgeJson {
    parameter: &'static str,
    value_ns: u64,
    why: &'static str,
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
    idle_guest: Option<IdleGuest>,
    worth_it: bool,
    eligible: bool,
}

impl SettingJson {
    fn new(o: &Outcome, j: &Judged, cpu: CpuTime, on_front: bool) -> SettingJson {
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
            idle_guest: j.idle_guest,
            worth_it: j.worth_it,
            eligible: j.eligible(),
        }
    }
}

#[derive(Serialize)]
struct RecommendationJson {
    #[serde(flatten)]
    setting: SettingJson,
    verdict: &'static str,
    set_command: String,
    kernel_cmdline: String,
    warnings: Vec<String>,
    passed_over: Option<SettingJson>,
}
