//! The tuner offline, on real loads that change: corpus traces played one after the other
//! (Redis, then PostgreSQL, then the guest idling), with the policy deciding every interval
//! over the last few, as `haltpoll autotune` does live, starting from Linux's defaults.
//!
//! What holds, and is asserted, at budgets of 1, 2, 5 and 10%: the tuner keeps its budget over
//! the sequence, and every interval run under its own choices (all but the first) keeps it too;
//! at 5% it catches more wakeups than the best one setting, chosen with hindsight, that keeps
//! every interval within the budget. What does not hold, and is only printed: one setting
//! judged by its average over the sequence catches more (it spends the idle phase's budget on
//! the busy ones, and polls several times what the tuner does); at 10% the best one setting
//! within every interval catches more; and with the busiest interval of Linux's defaults as
//! its budget the tuner catches about as many as they do (a few more), for about as much
//! polling (a little more), not clearly more. The tuner takes `tune`'s advice, the knee: it
//! gives up the last point of wakeups when they cost much more polling, and every setting it
//! writes passes the idle-guest check; the settings chosen with hindsight do neither.
//!
//! Run with `--nocapture` for the numbers (docs/autotune.md quotes them).

use std::path::Path;

use haltpoll::replay::Summary;
use haltpoll::{ValidParams, share};
use haltpoll_linux::autotune::{Policy, Simulated, simulate};
use haltpoll_linux::trace::{self, Format, IdlePeriod, Span, Trace};
use haltpoll_linux::tune;

/// The interval, and the window in intervals, the test plays the tuner with.
const INTERVAL_NS: u64 = 2_000_000_000;
const WINDOW: usize = 3;

fn read(rel: &str) -> Trace {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(rel);
    trace::read(&path, Some(Format::Perf)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `parts` one after the other: each part's timestamps moved to begin where the one before
/// ended, the wall times summed.
fn concat(parts: &[Trace]) -> Trace {
    let mut periods = Vec::new();
    let mut offset = 0u64;
    let mut cpus_online = None;
    for part in parts {
        let first = part.periods.iter().filter_map(|p| p.start_ns).min().expect("a perf trace has timestamps");
        periods
            .extend(part.periods.iter().map(|p| IdlePeriod { start_ns: p.start_ns.map(|s| s - first + offset), ..*p }));
        let span = part.span.expect("a perf trace has a span");
        offset += span.wall_ns;
        cpus_online = span.cpus_online.or(cpus_online);
    }
    let mut t = Trace::of_periods(Format::Perf, periods);
    t.span = Some(Span { wall_ns: offset, cpus_online });
    t
}

/// A 250 Hz tick.
const IDLE_TICK_NS: u64 = 4_000_000;

/// The guest idle for `seconds`, as the idle check models it: CPU 0 woken by its 250 Hz tick
/// alone (no corpus trace is of an idle guest).
fn idle(seconds: u64) -> Trace {
    let ticks = seconds * 1_000_000_000 / IDLE_TICK_NS;
    let periods = (0..ticks).map(|i| IdlePeriod { cpu: 0, idle_ns: IDLE_TICK_NS, start_ns: Some(i * IDLE_TICK_NS) });
    let mut t = Trace::of_periods(Format::Perf, periods.collect());
    t.span = Some(Span { wall_ns: seconds * 1_000_000_000, cpus_online: Some(2) });
    t
}

/// The phases: 10 s of Redis with 8 clients, 10 s of pgbench at 300 tx/s, 10 s of the guest
/// idle.
fn phases() -> Trace {
    let redis = read("traces/corpus/redis-8-clients.perf.txt.gz");
    let pgbench = read("traces/corpus/pgbench-select-300.perf.txt.gz");
    concat(&[redis, pgbench, idle(10)])
}

/// Each interval's totals under `params`, cut as the simulation cuts them.
fn per_interval(trace: &Trace, params: ValidParams) -> Vec<Summary> {
    let first = trace.periods.iter().filter_map(|p| p.start_ns).min().unwrap();
    let mut out = Vec::new();
    trace.replay(params, |idle, period| {
        let i = ((idle.start_ns.unwrap() + idle.idle_ns - first) / INTERVAL_NS) as usize;
        if out.len() <= i {
            out.resize(i + 1, Summary::default());
        }
        out[i].add(period);
    });
    out
}

/// The largest share of an interval's CPU time spent polling.
fn busiest(intervals: &[Summary], cpus: u64) -> f64 {
    intervals.iter().map(|s| share(s.poll_ns, INTERVAL_NS * cpus)).fold(0.0, f64::max)
}

fn line(name: &str, s: &Summary, poll_share: f64, busiest: Option<f64>) -> String {
    let busiest = busiest.map_or(String::new(), |b| format!(" (busiest interval {:.2}%)", 100.0 * b));
    format!(
        "{name:<44} {:>6} of {} wakeups without exit ({:.1}%), polling {:.2}% of the CPU time{busiest}",
        s.poll_hits,
        s.periods,
        100.0 * s.no_exit_share(),
        100.0 * poll_share,
    )
}

fn changes(s: &Simulated) -> usize {
    s.decisions.iter().filter(|d| d.why.changes()).count()
}

/// Each setting's intervals, summed: the whole and the busiest interval.
struct OneSetting {
    whole: Summary,
    busiest: f64,
}

fn one_setting(trace: &Trace, params: ValidParams, cpus: u64) -> OneSetting {
    let intervals = per_interval(trace, params);
    let mut whole = Summary::default();
    for i in &intervals {
        whole.periods += i.periods;
        whole.poll_hits += i.poll_hits;
        whole.poll_ns += i.poll_ns;
    }
    OneSetting { whole, busiest: busiest(&intervals, cpus) }
}

/// One setting with hindsight: the best by its average over the sequence, and the best that
/// keeps every interval within the budget.
fn hindsight(all: &[OneSetting], cpu_ns: u64, budget: f64) -> (&Summary, &Summary) {
    let best = |fits: &dyn Fn(&OneSetting) -> bool| {
        let within = all.iter().filter(|s| fits(s));
        &within.max_by_key(|s| (s.whole.poll_hits, std::cmp::Reverse(s.whole.poll_ns))).expect("polling off fits").whole
    };
    (best(&|s| share(s.whole.poll_ns, cpu_ns) <= budget), best(&|s| s.busiest <= budget))
}

#[test]
fn the_tuner_keeps_its_budget_and_beats_one_setting_that_keeps_it_everywhere() {
    let trace = phases();
    let cpu = tune::cpu_time(&trace, None);
    let cpus = u64::from(trace.span.unwrap().cpus_online.unwrap());
    let settings = Policy::new(0.0, 0.0).unwrap().grid.valid_settings().unwrap();
    let all: Vec<OneSetting> = settings.iter().map(|&p| one_setting(&trace, p, cpus)).collect();
    for budget in [0.01, 0.02, 0.05, 0.1] {
        let policy = Policy::new(budget, 0.01).unwrap();
        let tuned = simulate(&policy, &trace, ValidParams::DEFAULT, INTERVAL_NS, WINDOW);
        let (average, everywhere) = hindsight(&all, cpu.ns, budget);
        // The first interval runs under the setting it found; the rest under its choices.
        let its_own = busiest(&tuned.intervals[1..], cpus);
        eprintln!("budget {:.0}%:", 100.0 * budget);
        let name = format!("  autotune ({} changes; from interval 2)", changes(&tuned));
        eprintln!("{}", line(&name, &tuned.summary, tuned.poll_share, Some(its_own)));
        let avg_share = share(average.poll_ns, cpu.ns);
        eprintln!("{}", line("  one setting, within it on average", average, avg_share, None));
        let every_share = share(everywhere.poll_ns, cpu.ns);
        eprintln!("{}", line("  one setting, within it in every interval", everywhere, every_share, None));
        assert!(tuned.poll_share <= budget, "the tuner polls {} of the CPU time, over {budget}", tuned.poll_share);
        assert!(its_own <= budget, "an interval under the tuner's choice polls {its_own}, over {budget}");
        if budget == 0.05 {
            assert!(tuned.summary.poll_hits > everywhere.poll_hits, "{:?} vs {everywhere:?}", tuned.summary);
        }
    }
}

#[test]
fn linux_defaults_and_the_tuner_at_their_busiest_interval() {
    let trace = phases();
    let cpu = tune::cpu_time(&trace, None);
    let cpus = u64::from(trace.span.unwrap().cpus_online.unwrap());
    let defaults = trace.replay(ValidParams::DEFAULT, |_, _| {}).summary;
    let their_busiest = busiest(&per_interval(&trace, ValidParams::DEFAULT), cpus);
    let policy = Policy::new(their_busiest, 0.01).unwrap();
    let tuned = simulate(&policy, &trace, ValidParams::DEFAULT, INTERVAL_NS, WINDOW);
    eprintln!("{}", line("Linux's defaults", &defaults, share(defaults.poll_ns, cpu.ns), Some(their_busiest)));
    let its_own = busiest(&tuned.intervals[1..], cpus);
    let name = format!("autotune, that budget ({} changes; from interval 2)", changes(&tuned));
    eprintln!("{}", line(&name, &tuned.summary, tuned.poll_share, Some(its_own)));
    // Reported, not claimed: the two catch about as many for about as much polling. What the
    // tuner holds to is the budget, in every interval it chose the setting for.
    assert!(its_own <= their_busiest, "{its_own} > {their_busiest}");
}
