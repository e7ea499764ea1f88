//! Linux's frontier held to the predictive governor's per-moment allowance (`.ci/frontier-moment`).
//!
//! `compare --frontier` judges a Linux setting over the whole trace, in hindsight: it is within
//! a budget if its polling over the trace is. The predictive governor lives under a rule at every
//! moment instead: no window longer than its credit plus one halt cost, the credit starting at a
//! horizon's earnings (`budget x horizon`, the cap), earning `budget x (busy + idle)` at the end
//! of each period (capped at 4 caps, with a halt cost 64), spent by polling net of the halt cost
//! per catch (a catch's saving kept up to 64 caps). Per point of the sweep this replays every
//! setting of Linux's grid and gives:
//! - the overdraft of each setting: the most its poll in one period ran past the credit before
//!   that period plus one halt cost, the credit following the same rule without its floor (after
//!   an overdraft the debt stays, as net polling ran ahead of the allowance by that much);
//! - (a) the per-moment frontier: the best setting that never overdraws;
//! - (b) Linux with the allowance enforced: each setting replayed with a guard that halts at once
//!   (the governor told of a halt) whenever its window is longer than the credit plus one halt
//!   cost, the governor's own `Budget` keeping the credit; the best of the grid.
//!
//! Both are also held to compare's whole-trace limit (x within `max(budget, the governor's x)`),
//! so with an unlimited allowance (`--unlimited`: a 100% budget over a horizon of 1000 s) both
//! are compare's frontier, which the last line checks at every point.
//!
//! Usage: `frontier_moment [--all] [--unlimited] TRACE...` (`--cpus 1`, the sweep's budgets and
//! a second plane of 50 us, as `compare --frontier --cpus 1`); `--all` reports every point, not
//! only those short of compare's frontier.

use std::path::PathBuf;

use haltpoll::predictive::MAX_HORIZON_NS;
use haltpoll::predictive::budget::{self, Budget};
use haltpoll::replay::{Replay, Summary};
use haltpoll::select::{Adjustment, Decision, IdleGovernor, LatencyReq, Outcome};
use haltpoll::{Governor, Params, Predictive, PredictiveParams, ValidParams, ValidPredictiveParams};
use haltpoll_linux::compare;
use haltpoll_linux::frontier::{self, Plane, Point, Sweep, TraceFrontier, Verdict};
use haltpoll_linux::trace::{self, PerCpu, Trace};
use haltpoll_linux::tune::Outcome as LinuxOutcome;

/// One CPU's allowance as the governor's budget keeps it, without the floor on its debt: what
/// net polling may still take, and the largest overdraft so far.
#[derive(Clone, Copy, Debug)]
struct Allowance {
    credit: i128,
    remainder: u128,
    share: u128,
    halt_cost: i128,
    kept: i128,
    saved: i128,
    worst: i128,
}

impl Allowance {
    fn new(p: &PredictiveParams) -> Allowance {
        let cap = i128::from(p.budget_horizon_ns) * i128::from(p.poll_budget_ppm) / 1_000_000;
        // The budget's own share in 2^-32, so that the credit is the governor's to the ns until
        // the first overdraft.
        let share = u128::from(budget::share_of(p.poll_budget_ppm));
        let net = p.halt_cost_ns > 0;
        Allowance {
            credit: cap,
            remainder: 0,
            share,
            halt_cost: i128::from(p.halt_cost_ns),
            kept: if net { 64 * cap } else { 4 * cap },
            saved: 64 * cap,
            worst: i128::MIN,
        }
    }

    /// One period: `poll_ns` against the credit before it, then earn and spend as `reflect`.
    fn period(&mut self, elapsed_ns: u64, poll_ns: u64, caught: bool) {
        self.worst = self.worst.max(i128::from(poll_ns) - self.credit - self.halt_cost);
        let product = u128::from(elapsed_ns) * self.share + self.remainder;
        self.remainder = product & u128::from(u32::MAX);
        if self.credit < self.kept {
            self.credit = (self.credit + (product >> 32) as i128).min(self.kept);
        }
        let saved = if caught { self.halt_cost } else { 0 };
        self.credit = (self.credit + saved - i128::from(poll_ns)).min(self.saved);
    }
}

/// A governor under the allowance: it keeps the credit, and with `enforce` refuses (halts) any
/// poll whose window the credit plus one halt cost does not cover.
struct Guarded<G> {
    inner: G,
    budget: Budget,
    allowance: Allowance,
    enforce: bool,
    busy_ns: u64,
}

impl<G: IdleGovernor> IdleGovernor for Guarded<G> {
    fn select(&mut self, latency_req: LatencyReq, busy_ns: u64) -> Decision {
        self.busy_ns += busy_ns;
        let decision = self.inner.select(latency_req, busy_ns);
        if self.enforce && decision.window_ns() > self.budget.limit_ns() { Decision::Halt } else { decision }
    }

    fn reflect(&mut self, outcome: &Outcome) -> Adjustment {
        let elapsed = self.busy_ns + outcome.idle_ns;
        self.busy_ns = 0;
        self.allowance.period(elapsed, outcome.poll_ns, outcome.caught);
        self.budget.earn(elapsed);
        self.budget.spend(outcome.poll_ns, outcome.caught);
        self.inner.reflect(outcome)
    }

    fn window_ns(&self) -> u64 {
        self.inner.window_ns()
    }
}

/// A replay under the allowance: what it did, its largest overdraft (ns, the worst CPU's; at
/// most 0 when it never overdrew) and, per period, (poll ns, caught, credit before it).
struct Run {
    outcome: LinuxOutcome,
    overdraft_ns: i128,
    periods: Vec<(u64, bool, i128)>,
}

/// Replays `trace` with a governor `make` builds on every CPU, each with its own allowance of
/// `allow`, as `Trace::replay` does (busy time from the timestamps, [`PerCpu`]); `keep` keeps
/// the periods.
fn replay<G: IdleGovernor>(
    trace: &Trace,
    make: impl Fn() -> G,
    allow: ValidPredictiveParams,
    enforce: bool,
    keep: bool,
) -> Run {
    let mut cpus: PerCpu<Replay<Guarded<G>>> = PerCpu::default();
    let (mut summary, mut periods) = (Summary::default(), Vec::new());
    for idle in &trace.periods {
        let (r, busy_ns) = cpus.next(idle, || {
            let allowance = Allowance::new(&allow.into_inner());
            Replay::of(Guarded { inner: make(), budget: Budget::new(&allow), allowance, enforce, busy_ns: 0 })
        });
        let credit = r.governor().allowance.credit;
        let p = r.period_after(busy_ns, idle.idle_ns);
        if keep {
            periods.push((p.poll_ns, p.hit(), credit));
        }
        summary.add(&p);
    }
    let overdraft_ns = cpus.iter().map(|(_, r)| r.governor().allowance.worst).max().unwrap_or(0);
    Run { outcome: LinuxOutcome { params: Params::DEFAULT, summary }, overdraft_ns, periods }
}

/// Linux's setting `s` replayed under the allowance.
fn linux(trace: &Trace, s: ValidParams, allow: ValidPredictiveParams, enforce: bool, keep: bool) -> Run {
    let mut run = replay(trace, || Governor::new(s), allow, enforce, keep);
    run.outcome.params = s.into_inner();
    run
}

/// The best of `runs` (those `admit` keeps) within compare's limit for `point`, as compare picks.
fn best(runs: &[Run], plane: Plane, limit: i128, admit: impl Fn(&Run) -> bool) -> Option<LinuxOutcome> {
    let kept: Vec<LinuxOutcome> = runs.iter().filter(|r| admit(r)).map(|r| r.outcome).collect();
    frontier::best_within(&frontier::linux_frontier(&kept, plane), plane, limit).copied()
}

/// A setting as compare prints it: ceiling/start/shrink.
fn setting(p: &Params) -> String {
    format!("{}/{}/{}", p.guest_halt_poll_ns / 1000, p.grow_start / 1000, if p.allow_shrink { "s" } else { "ns" })
}

fn caught(o: Option<LinuxOutcome>) -> String {
    o.map_or_else(|| "-".into(), |o| format!("{:.2}% ({})", o.summary.no_exit_share() * 100.0, setting(&o.params)))
}

fn verdict(point: &Point, o: Option<LinuxOutcome>) -> Verdict {
    frontier::verdict(&point.summary, o.as_ref().map(|o| &o.summary))
}

/// What the allowance is for `point`: its own parameters, or unlimited.
fn allowance_of(point: &Point, unlimited: bool) -> ValidPredictiveParams {
    let p = if unlimited {
        PredictiveParams { poll_budget_ppm: 1_000_000, budget_horizon_ns: MAX_HORIZON_NS, ..point.params }
    } else {
        point.params
    };
    p.validate().expect("the sweep's parameters are valid")
}

/// What the command line asks for.
struct Options {
    /// Every point, not only those short of compare's frontier.
    all: bool,
    /// The cross-check: an unlimited allowance.
    unlimited: bool,
    /// Where to write each point's periods (the governor's and the best enforced setting's).
    periods: Option<PathBuf>,
}

/// What the checks found: points where (a) or (b) with an unlimited allowance are not compare's
/// Linux, where the governor under the observer is not compare's, and where it overdrew.
#[derive(Default)]
struct Checks {
    linux: usize,
    governor: usize,
    overdrawn: usize,
}

/// Each setting replayed under `point`'s allowance: observed, and enforced.
fn runs(t: &TraceFrontier, settings: &[ValidParams], point: &Point, unlimited: bool) -> (Vec<Run>, Vec<Run>) {
    let allow = allowance_of(point, unlimited);
    let observed = settings.iter().map(|&s| linux(&t.trace, s, allow, false, false)).collect();
    let enforced = settings.iter().map(|&s| linux(&t.trace, s, allow, true, false)).collect();
    (observed, enforced)
}

/// Prints one row per point of `t` (short ones unless `all`), adding to `checks`.
fn report(t: &TraceFrontier, settings: &[ValidParams], o: &Options, checks: &mut Checks) -> std::io::Result<()> {
    let name = t.path.file_name().map_or_else(String::new, |n| n.to_string_lossy().replace(".perf.txt.gz", ""));
    for plane in &t.planes {
        let mut done: Option<(f64, Vec<Run>, Vec<Run>)> = None;
        for point in plane.points.iter().filter(|p| o.all || p.verdict.is_shortfall()) {
            if done.as_ref().is_none_or(|d| d.0 != point.budget) {
                let (observed, enforced) = runs(t, settings, point, o.unlimited);
                done = Some((point.budget, observed, enforced));
            }
            let (_, observed, enforced) = done.as_ref().expect("just set");
            let limit = plane.plane.x_ns(&point.summary).max(i128::from(frontier::budget_ns(point.budget, t.cpu)));
            let a = best(observed, plane.plane, limit, |r| r.overdraft_ns <= 0);
            let b = best(enforced, plane.plane, limit, |_| true);
            let hits = |o: Option<LinuxOutcome>| o.map(|o| o.summary.poll_hits);
            checks.linux += usize::from(o.unlimited && (hits(a) != hits(point.linux) || hits(b) != hits(point.linux)));
            let allow = allowance_of(point, false);
            let mine =
                replay(&t.trace, || Predictive::new(point.params.validate().expect("valid")), allow, false, true);
            checks.governor += usize::from(mine.outcome.summary != point.summary);
            checks.overdrawn += usize::from(mine.overdraft_ns > 0);
            if let (Some(dir), Some(b)) = (&o.periods, b) {
                let theirs = linux(&t.trace, b.params.validate().expect("valid"), allow, true, true);
                write_periods(
                    &dir.join(format!(
                        "{name}-{}-{}-{}.csv",
                        plane.plane.halt_cost_ns / 1000,
                        point.budget * 100.0,
                        u8::from(point.timer_first)
                    )),
                    &t.trace,
                    &mine,
                    &theirs,
                )?;
            }
            let held = point.linux.and_then(|l| observed.iter().find(|r| r.outcome.params == l.params));
            row(&name, plane.plane, point, held, a, b);
        }
    }
    Ok(())
}

/// Writes per period: CPU, idle entry (ns, empty without timestamps), length, then the
/// governor's and the enforced setting's poll ns, catch (0/1) and credit before the period.
fn write_periods(path: &std::path::Path, trace: &Trace, mine: &Run, theirs: &Run) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(out, "cpu,start_ns,idle_ns,gov_poll,gov_caught,gov_credit,lin_poll,lin_caught,lin_credit")?;
    for ((idle, g), l) in trace.periods.iter().zip(&mine.periods).zip(&theirs.periods) {
        let start = idle.start_ns.map_or_else(String::new, |s| s.to_string());
        writeln!(
            out,
            "{},{start},{},{},{},{},{},{},{}",
            idle.cpu,
            idle.idle_ns,
            g.0,
            u8::from(g.1),
            g.2,
            l.0,
            u8::from(l.1),
            l.2
        )?;
    }
    Ok(())
}

/// One row of the table.
fn row(name: &str, plane: Plane, point: &Point, held: Option<&Run>, a: Option<LinuxOutcome>, b: Option<LinuxOutcome>) {
    let cap = point.params.budget_horizon_ns as f64 * f64::from(point.params.poll_budget_ppm) / 1e6;
    let over = held.map_or_else(
        || "-".into(),
        |r| format!("{:.2} ms, {:.2}", r.overdraft_ns.max(0) as f64 / 1e6, r.overdraft_ns.max(0) as f64 / cap),
    );
    // Short of compare's frontier: borrowing if on or above both, real if short of either. On or
    // above it: (a) is below compare's Linux (fewer settings), but (b) can be above it (a refused
    // poll is a halt that Linux's window learns from).
    let class = match (point.verdict.is_shortfall(), verdict(point, a).is_shortfall(), verdict(point, b).is_shortfall())
    {
        (true, false, false) => "borrowing",
        (true, true, false) => "real (a)",
        (true, false, true) => "real (b)",
        (true, true, true) => "real (a, b)",
        (false, _, true) => "on or above, short of (b)",
        (false, _, false) => "on or above",
    };
    println!(
        "| {name} | {} us | {}% | {} | {:.2}% | {} | {over} | {} | {} | {class} |",
        plane.halt_cost_ns / 1000,
        point.budget * 100.0,
        if point.timer_first { "on" } else { "off" },
        point.summary.no_exit_share() * 100.0,
        caught(point.linux),
        caught(a),
        caught(b),
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let periods = match args.iter().position(|a| a == "--periods") {
        Some(i) => Some(PathBuf::from(args.get(i + 1).ok_or("--periods needs a directory: --periods DIR")?)),
        None => None,
    };
    let o = Options { all: args.contains(&"--all".into()), unlimited: args.contains(&"--unlimited".into()), periods };
    let settings = compare::linux_grid().valid_settings()?;
    let how = Sweep {
        budgets: frontier::BUDGETS.to_vec(),
        halt_cost_ns: frontier::HALT_COST_NS,
        cpus: Some(1),
        predictive: PredictiveParams::DEFAULT,
    };
    println!(
        "| trace | plane | budget | timer | governor | compare's Linux | its overdraft (ms, horizons) | (a) per-moment frontier | (b) enforced | class |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut checks = Checks::default();
    let paths =
        args.iter().enumerate().filter(|(i, a)| !a.starts_with("--") && (*i == 0 || args[i - 1] != "--periods"));
    for path in paths.map(|(_, a)| PathBuf::from(a)) {
        let trace = trace::read(&path, None)?;
        let t = frontier::sweep(path, trace, &how)?;
        report(&t, &settings, &o, &mut checks)?;
    }
    println!();
    if o.unlimited {
        println!("unlimited allowance: {} points where (a) or (b) differ from compare's Linux", checks.linux);
    }
    println!(
        "governor under the observer: {} points differ from compare's, {} overdrew",
        checks.governor, checks.overdrawn
    );
    Ok(())
}
