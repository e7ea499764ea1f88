//! `haltpoll autotune`: the haltpoll governor's parameters following the load, within a CPU
//! budget. The policy is `haltpoll_linux::autotune`; this is its edge: each interval it records
//! the idle periods, asks the policy, writes the parameters under the writers' lock, writes the
//! metrics, and at the end writes back what it found.

use std::fmt::Write as _;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use haltpoll::Params;
use haltpoll_linux::autotune::{Decision, Expected, Policy, Window, decide_recent};
use haltpoll_linux::change::{self, Change};
use haltpoll_linux::lock::{self, LockError};
use haltpoll_linux::module_params::{ModuleParams, Param};
use haltpoll_linux::record::{self, tracefs};
use haltpoll_linux::sysfs::Sysfs;
use haltpoll_linux::trace::{self, Format, Span, Trace, TraceError};
use haltpoll_linux::units;

use crate::interrupt::Interrupt;
use crate::options::SysfsRoot;
use crate::recording::Interrupted;
use crate::staged_file::StagedFile;
use crate::{Usage, output};

/// The shortest interval: a recording of a second or two, and the replay of the window.
const MIN_INTERVAL: Duration = Duration::from_secs(2);

/// How often a wait between intervals looks for Ctrl-C.
const TICK: Duration = Duration::from_millis(100);

/// Arguments of `haltpoll autotune`.
#[derive(Args, Debug)]
#[command(
    long_about = "Follow the load: each interval, record every CPU's idle periods for a few seconds \
(through a trace instance of its own, as `haltpoll record` does), weigh `haltpoll tune`'s grid \
over the last few intervals by its rules (within the budget, safe on an idle guest, worth it), \
and write the setting that catches most of those that keep them if the setting in force breaks \
one of the rules, or if it catches more than the margin more wakeups, or as many for less than \
half the polling.

It needs root (tracefs, and the module parameters). It writes back the parameters it found when \
it ends: at --duration's end, on an error, and on Ctrl-C or SIGTERM (exit status 130); a second \
Ctrl-C ends it at once, without writing them back.",
    after_help = "\
Examples:
  # what it would do, changing nothing: a minute, a decision every 10 s
  sudo haltpoll autotune --poll-budget 2% --interval 10s --duration 60s --dry-run
  # as a service: until stopped, its decisions for node_exporter's textfile collector
  sudo haltpoll autotune --poll-budget 2% --metrics /var/lib/node_exporter/autotune.prom"
)]
#[command(mut_arg("sysfs_root", |a| a.help("Where sysfs is mounted (a fixture tree in tests)")))]
pub struct AutotuneArgs {
    /// The most CPU time polling may take, as a share of all CPUs' time (e.g. 2%).
    #[arg(long, value_name = "PCT", value_parser = units::parse_percent)]
    pub poll_budget: f64,
    /// How often it decides (at least 2s).
    #[arg(long, value_name = "TIME", default_value = "60s", value_parser = parse_interval)]
    pub interval: Duration,
    /// How long it records at the start of each interval (at most the interval).
    #[arg(long, value_name = "TIME", default_value = "5s", value_parser = record::parse_duration)]
    pub record: Duration,
    /// How many intervals' recordings it replays: the last N.
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub window: u32,
    /// How many more of the window's wakeups the best setting must catch to replace the setting in
    /// force (points).
    #[arg(long, value_name = "PCT", default_value = "1%", value_parser = units::parse_percent)]
    pub margin: f64,
    /// The guest's tick(s), in Hz (CONFIG_HZ), for the idle-guest check: no setting that polls
    /// more than the budget of an idle guest's time on one of them is written.
    #[arg(long, value_name = "LIST", value_delimiter = ',', default_value = "250,1000")]
    pub tick_hz: Vec<NonZeroU32>,
    /// Run this long, then write back the parameters it found and end (default: until stopped).
    #[arg(long, value_name = "TIME", value_parser = units::parse_duration)]
    pub duration: Option<Duration>,
    /// Log what it would write, and write nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// After each interval, write its decision and what it expects in Prometheus's text format
    /// to FILE (replaced whole, for node_exporter's textfile collector).
    #[arg(long, value_name = "FILE")]
    pub metrics: Option<PathBuf>,
    #[command(flatten)]
    pub sysfs: SysfsRoot,
    /// Where tracefs is mounted, or an empty directory to mount it on.
    #[arg(long, value_name = "DIR", default_value = tracefs::DEFAULT_ROOT)]
    pub tracefs: PathBuf,
    /// How long to wait for another writer of the parameters (`haltpoll set`).
    #[arg(long, value_name = "TIME", default_value = "5s", value_parser = units::parse_duration)]
    pub wait: Duration,
}

fn parse_interval(text: &str) -> Result<Duration, String> {
    let d = record::parse_duration(text)?;
    if d < MIN_INTERVAL {
        return Err(format!("{text:?}: the interval is at least 2 s (a recording, then the replay)"));
    }
    Ok(d)
}

/// Runs `haltpoll autotune`.
pub fn run(args: &AutotuneArgs) -> Result<()> {
    let sys = Sysfs::open(&args.sysfs.sysfs_root)?;
    let found = ModuleParams::read_each(&sys)?;
    if let Some((p, e)) = found.unreadable.first() {
        bail!("{e}; `haltpoll set` repairs {p} (there would be nothing whole to write back)");
    }
    let original = found.known;
    if let Some(path) = &args.metrics {
        check_metrics_path(path)?;
    }
    let policy = Policy { ticks_hz: args.tick_hz.clone(), ..Policy::new(args.poll_budget, args.margin)? };
    let interrupt = Interrupt::watch()?;
    let start = Instant::now();
    let mut tuner = Tuner { args, sys: &sys, policy, window: Window::new(args.window as usize), changes: 0 };
    let result = tuner.run_until_stopped(&interrupt, start);
    let restored = if args.dry_run || tuner.changes == 0 { Ok(()) } else { tuner.apply(&original).map(|_| ()) };
    match &restored {
        Ok(()) if tuner.changes > 0 => log(format_args!("wrote back {}", original.set_args())),
        Ok(()) => {}
        Err(e) => log(format_args!("error: could not write back {}: {e:#}", original.set_args())),
    }
    result?;
    restored?;
    if interrupt.requested() {
        return Err(Interrupted(start.elapsed().as_secs_f64()).into());
    }
    Ok(())
}

/// The loop's state.
struct Tuner<'a> {
    args: &'a AutotuneArgs,
    sys: &'a Sysfs,
    policy: Policy,
    window: Window,
    /// Settings written so far.
    changes: u64,
}

impl Tuner<'_> {
    /// Intervals until `--duration` ends, Ctrl-C, or an error.
    fn run_until_stopped(&mut self, interrupt: &Interrupt, start: Instant) -> Result<()> {
        let end = self.args.duration.map(|d| start + d);
        while !interrupt.requested() && end.is_none_or(|end| Instant::now() < end) {
            let began = Instant::now();
            let left = end.map_or(self.args.interval, |end| end.saturating_duration_since(began));
            let Some(trace) = self.record(self.args.record.min(self.args.interval).min(left), interrupt)? else {
                break;
            };
            self.window.push(trace);
            let current = ModuleParams::read_each(self.sys)?.known;
            let decision = decide_recent(&self.policy, &mut self.window, current.params());
            let applied = self.act(&decision)?;
            if let Some(path) = &self.args.metrics {
                // A full disk must not stop the tuning, nor leave the parameters unrestored.
                if let Err(e) = write_metrics(path, &self.policy, &decision, applied, self.changes) {
                    log(format_args!("warning: {e:#}"));
                }
            }
            let next = (began + self.args.interval).min(end.unwrap_or(began + self.args.interval));
            wait_until(next, interrupt);
        }
        Ok(())
    }

    /// Records for `duration`; `None` if Ctrl-C stopped it (the recording is cut, not used).
    fn record(&self, duration: Duration, interrupt: &Interrupt) -> Result<Option<Trace>> {
        let opts = record::Options {
            duration: duration.max(Duration::from_millis(1)),
            tracefs: self.args.tracefs.clone(),
            sysfs: self.args.sysfs.sysfs_root.clone(),
        };
        let mut text = Vec::new();
        let recorded = record::record(&opts, interrupt.flag(), &mut text)?;
        if recorded.interrupted {
            return Ok(None);
        }
        match trace::parse(&text, Path::new("the recording"), Some(Format::Perf)) {
            Ok(trace) => Ok(Some(trace)),
            // CPUs busy all along leave no idle period: an interval with nothing to judge by.
            Err(TraceError::Unusable { .. }) => {
                let mut empty = Trace::of_periods(Format::Perf, Vec::new());
                empty.span = Some(Span { wall_ns: recorded.elapsed.as_nanos() as u64, cpus_online: None });
                Ok(Some(empty))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Logs the decision and writes its setting if it changes one; returns whether it wrote.
    fn act(&mut self, d: &Decision) -> Result<bool> {
        let verdict = match (d.why.changes(), self.args.dry_run) {
            (false, _) => format!("keeps it ({})", d.why.name()),
            (true, true) => format!("would write it ({}; dry run)", d.why.name()),
            (true, false) => format!("writes it ({})", d.why.name()),
        };
        log(format_args!(
            "{} idle periods in the window; in force {}; best {}; {verdict}",
            d.periods,
            describe(&d.current),
            describe(&d.best)
        ));
        if !d.why.changes() || self.args.dry_run {
            return Ok(false);
        }
        let target = ModuleParams::from_params(&d.next()).map_err(anyhow::Error::msg)?;
        let written = match self.apply(&target) {
            Ok(written) => written,
            // Another writer (`haltpoll set`) kept the lock: this interval writes nothing, the
            // next decides again on what that writer left.
            Err(e) if matches!(e.downcast_ref::<LockError>(), Some(LockError::Busy { .. })) => {
                log(format_args!("warning: {e:#}; nothing written this interval"));
                return Ok(false);
            }
            Err(e) => return Err(e),
        };
        self.changes += u64::from(!written.is_empty());
        Ok(!written.is_empty())
    }

    /// Writes `target` under the writers' lock, all or none; returns what changed.
    fn apply(&self, target: &ModuleParams) -> Result<Vec<Change>> {
        let _lock = lock::acquire(self.sys, self.args.wait)?;
        let current = ModuleParams::read_each(self.sys)?;
        let assignments: Vec<String> = Param::ALL.iter().map(|&p| format!("{p}={}", target.value(p))).collect();
        let (_, changes) = change::plan(&current, &assignments)?;
        let to_write: Vec<&Change> = changes.iter().filter(|c| !c.is_noop()).collect();
        change::write(self.sys, &to_write)?;
        Ok(to_write.into_iter().cloned().collect())
    }
}

/// A setting and what it does over the window, in a few words.
fn describe(e: &Expected) -> String {
    let Params { guest_halt_poll_ns, grow_start, allow_shrink, .. } = e.params;
    format!(
        "ns={guest_halt_poll_ns} grow_start={grow_start} allow_shrink={} ({} without exit, polls {}, idle guest {})",
        if allow_shrink { "Y" } else { "N" },
        units::percent(e.no_exit_share),
        units::percent2(e.poll_share),
        units::percent2(e.idle_poll_share)
    )
}

fn log(line: std::fmt::Arguments<'_>) {
    output::stderr_line(format_args!("haltpoll autotune: {line}"));
}

/// Sleeps until `deadline`, or until Ctrl-C.
fn wait_until(deadline: Instant, interrupt: &Interrupt) {
    while !interrupt.requested() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(TICK));
    }
}

/// Refuses a metrics file that could never be written, before anything else is done.
fn check_metrics_path(path: &Path) -> Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !dir.is_dir() {
        let hint = "create it, or give node_exporter's textfile directory (--collector.textfile.directory)";
        return Err(Usage(format!("--metrics {}: {} is not a directory: {hint}", path.display(), dir.display())).into());
    }
    if path.exists() && !path.is_file() {
        return Err(Usage(format!("--metrics {}: not a regular file", path.display())).into());
    }
    Ok(())
}

/// The decision in Prometheus's text format, written beside `path` and renamed onto it.
fn write_metrics(path: &Path, policy: &Policy, d: &Decision, applied: bool, changes: u64) -> Result<()> {
    let text = render_metrics(policy, d, applied, changes);
    let mut file = StagedFile::create(path)?;
    file.writer().write_all(text.as_bytes()).with_context(|| format!("cannot write {}", path.display()))?;
    file.commit()?;
    Ok(())
}

/// The metrics of one decision.
fn render_metrics(policy: &Policy, d: &Decision, applied: bool, changes: u64) -> String {
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, samples: &[(String, f64)]| {
        let _ = writeln!(out, "# HELP haltpoll_autotune_{name} {help}\n# TYPE haltpoll_autotune_{name} gauge");
        for (labels, value) in samples {
            let _ = writeln!(out, "haltpoll_autotune_{name}{labels} {value}");
        }
    };
    let both = |f: fn(&Expected) -> f64| {
        vec![("{setting=\"in_force\"}".to_owned(), f(&d.current)), ("{setting=\"best\"}".to_owned(), f(&d.best))]
    };
    gauge(
        "poll_budget_ratio",
        "The CPU budget for polling, as a share of the CPU time.",
        &[(String::new(), policy.budget)],
    );
    gauge(
        "poll_ceiling_seconds",
        "guest_halt_poll_ns of the setting in force and of the best one: the most a CPU polls, not time spent.",
        &both(|e| e.params.guest_halt_poll_ns as f64 / 1e9),
    );
    gauge(
        "expected_no_exit_ratio",
        "Share of the window's wakeups the setting catches polling, replayed.",
        &both(|e| e.no_exit_share),
    );
    gauge(
        "expected_poll_ratio",
        "Share of the window's CPU time the setting polls, replayed.",
        &both(|e| e.poll_share),
    );
    gauge(
        "expected_idle_poll_ratio",
        "Share of an idle guest's time the setting would poll after the window.",
        &both(|e| e.idle_poll_share),
    );
    gauge("window_periods", "Idle periods in the window of the last decision.", &[(String::new(), d.periods as f64)]);
    let why = format!("{{why=\"{}\",applied=\"{applied}\"}}", d.why.name());
    gauge(
        "decision_info",
        "The last decision: why it keeps or changes the setting, and whether it wrote.",
        &[(why, 1.0)],
    );
    let _ = writeln!(
        out,
        "# HELP haltpoll_autotune_changes_total Settings written since it started.\n\
         # TYPE haltpoll_autotune_changes_total counter\nhaltpoll_autotune_changes_total {changes}"
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use haltpoll_linux::autotune::decide;
    use haltpoll_linux::trace::{IdlePeriod, Span};

    #[test]
    fn intervals_below_two_seconds_are_refused() {
        assert!(parse_interval("1s").unwrap_err().contains("at least 2 s"));
        assert_eq!(parse_interval("2s"), Ok(Duration::from_secs(2)));
    }

    #[test]
    fn the_metrics_say_the_decision_and_what_it_expects() {
        let periods = (0..1000).map(|i| IdlePeriod { cpu: 0, idle_ns: 20_000, start_ns: Some(i * 100_000) });
        let mut window = Trace::of_periods(Format::Perf, periods.collect());
        window.span = Some(Span { wall_ns: 100_000_000, cpus_online: Some(1) });
        let policy = Policy::new(0.5, 0.002).unwrap();
        let d = decide(&policy, &window, Params { guest_halt_poll_ns: 0, ..Params::DEFAULT });
        let text = render_metrics(&policy, &d, true, 1);
        assert!(text.contains("haltpoll_autotune_poll_budget_ratio 0.5\n"), "{text}");
        assert!(text.contains("haltpoll_autotune_poll_ceiling_seconds{setting=\"in_force\"} 0\n"), "{text}");
        assert!(text.contains("haltpoll_autotune_decision_info{why=\"gains\",applied=\"true\"} 1\n"), "{text}");
        assert!(text.contains("haltpoll_autotune_changes_total 1\n"), "{text}");
        // Every sample's family has its HELP and TYPE.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(text.contains(&format!("# TYPE {name} ")), "{name}");
        }
    }
}
