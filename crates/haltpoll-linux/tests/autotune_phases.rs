//! The tuner offline, on real loads that change: corpus traces played one after the other
//! (Redis, then PostgreSQL, then the guest idling), with the policy deciding every interval
//! over the last few, as `haltpoll autotune` does live, starting from Linux's defaults.
//!
//! The rivals are one setting each, chosen with hindsight over the whole sequence. The fair one
//! obeys what the tuner obeys: safe on the guest gone idle, worth its polling (`tune`'s rules),
//! and within the budget in every interval. Two more are printed, not admissible: one within
//! the budget only on average over the sequence (it spends the idle phase's budget on the busy
//! ones, which a tuner that decides on what it has seen cannot do), and one held to no rule.
//!
//! What holds, and is asserted: at 1, 2, 5 and 10% the tuner keeps its budget over the
//! sequence, and every interval run under its own choices (all but the first) keeps it too; at
//! 1, 2 and 5% it catches more than the admissible rival; with the busiest interval of Linux's
//! defaults as its budget it catches more than they do. What does not, and is only printed: at
//! 10% the admissible rival catches 1.4% more, for 30% more polling. It is the tuner's own
//! choice for Redis, held with hindsight from the first interval (which the tuner runs under
//! Linux's defaults, not having seen the load yet), and kept through pgbench, where its polls
//! are mostly wasted: the tuner turns polling off there (`tune`'s rule 3 over pgbench's first
//! interval), the rival is worth it only over the whole sequence, Redis's catches paying for
//! pgbench's waste. Against the defaults the tuner polls a little more on average (1.68% of
//! the CPU time against 1.59%). The rivals on average catch more at 2% and up.
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

/// Each interval's totals under `params`, cut as the simulation cuts them, and the whole.
fn per_interval(trace: &Trace, params: ValidParams) -> (Vec<Summary>, Summary) {
    let first = trace.periods.iter().filter_map(|p| p.start_ns).min().unwrap();
    let mut out = Vec::new();
    let whole = trace
        .replay(params, |idle, period| {
            let i = ((idle.start_ns.unwrap() + idle.idle_ns - first) / INTERVAL_NS) as usize;
            if out.len() <= i {
                out.resize(i + 1, Summary::default());
            }
            out[i].add(period);
        })
        .summary;
    (out, whole)
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

/// One setting over the whole sequence: its totals and its busiest interval.
struct OneSetting {
    params: ValidParams,
    whole: Summary,
    busiest: f64,
    /// Wakeups caught in the first interval.
    first_hits: u64,
}

fn one_setting(trace: &Trace, params: ValidParams, cpus: u64) -> OneSetting {
    let (intervals, whole) = per_interval(trace, params);
    OneSetting { params, whole, busiest: busiest(&intervals, cpus), first_hits: intervals[0].poll_hits }
}

/// The one settings chosen with hindsight for `budget`, each the one that catches most of the
/// sequence's wakeups among those that
/// - `admissible`: pass `tune`'s rules the tuner obeys, judged over the whole sequence (safe
///   on an idle guest, worth it), and keep the budget in every interval, as the tuner must;
/// - `on_average`: pass the same rules, with the budget kept on average over the sequence
///   only (the idle phase's budget spent on the busy ones, which no tuner deciding on what it
///   has seen can do);
/// - `any`: keep the budget on average, whatever the rules (not an admissible rival: on the
///   guest gone idle it may poll more than the budget).
struct Rivals<'a> {
    admissible: &'a OneSetting,
    on_average: &'a OneSetting,
    any: &'a OneSetting,
}

fn rivals(all: &[OneSetting], cpu: tune::CpuTime, budget: f64) -> Rivals<'_> {
    let judged = |s: &OneSetting| {
        let outcome = tune::Outcome { params: *s.params.params(), summary: s.whole };
        tune::Judged::new(&outcome, tune::check_idle_guest(&s.params, &tune::TICKS_HZ), cpu, budget)
    };
    let best = |fits: &dyn Fn(&OneSetting) -> bool| {
        let within = all.iter().filter(|s| fits(s));
        within.max_by_key(|s| (s.whole.poll_hits, std::cmp::Reverse(s.whole.poll_ns))).expect("polling off fits")
    };
    Rivals {
        admissible: best(&|s| {
            let j = judged(s);
            j.idle_guest_ok && j.worth_it && s.busiest <= budget
        }),
        on_average: best(&|s| judged(s).eligible()),
        any: best(&|s| judged(s).fits_budget),
    }
}

fn rival_line(name: &str, s: &OneSetting, cpu: tune::CpuTime) -> String {
    let p = s.params.params();
    let name = format!("{name} ({} us, {} us)", p.guest_halt_poll_ns / 1000, p.grow_start / 1000);
    line(&name, &s.whole, share(s.whole.poll_ns, cpu.ns), Some(s.busiest))
}

#[test]
fn the_tuner_keeps_its_budget_and_beats_the_admissible_one_setting() {
    let trace = phases();
    let cpu = tune::cpu_time(&trace, None);
    let cpus = u64::from(trace.span.unwrap().cpus_online.unwrap());
    let settings = Policy::new(0.0, 0.0).unwrap().grid.valid_settings().unwrap();
    let all: Vec<OneSetting> = settings.iter().map(|&p| one_setting(&trace, p, cpus)).collect();
    for budget in [0.01, 0.02, 0.05, 0.1] {
        let policy = Policy::new(budget, 0.01).unwrap();
        let tuned = simulate(&policy, &trace, ValidParams::DEFAULT, INTERVAL_NS, WINDOW);
        let rivals = rivals(&all, cpu, budget);
        // The first interval runs under the setting it found; the rest under its choices.
        let its_own = busiest(&tuned.intervals[1..], cpus);
        eprintln!("budget {:.0}%:", 100.0 * budget);
        let name = format!("  autotune ({} changes; from interval 2)", changes(&tuned));
        eprintln!("{}", line(&name, &tuned.summary, tuned.poll_share, Some(its_own)));
        eprintln!("{}", rival_line("  admissible, every interval", rivals.admissible, cpu));
        eprintln!("{}", rival_line("  admissible, on average", rivals.on_average, cpu));
        eprintln!("{}", rival_line("  any rule, on average", rivals.any, cpu));
        assert!(tuned.poll_share <= budget, "the tuner polls {} of the CPU time, over {budget}", tuned.poll_share);
        assert!(its_own <= budget, "an interval under the tuner's choice polls {its_own}, over {budget}");
        let later: u64 = tuned.intervals[1..].iter().map(|s| s.poll_hits).sum();
        let rival_later = rivals.admissible.whole.poll_hits - rivals.admissible.first_hits;
        eprintln!("  from interval 2: autotune {later}, the admissible rival {rival_later}");
        // Up to 5% the tuner catches more than the admissible rival. At 10% it does not (the
        // module's comment says why).
        if budget < 0.1 {
            let rival = &rivals.admissible.whole;
            assert!(tuned.summary.poll_hits > rival.poll_hits, "{:?} vs {rival:?}", tuned.summary);
        }
    }
}

#[test]
fn linux_defaults_and_the_tuner_at_their_busiest_interval() {
    let trace = phases();
    let cpu = tune::cpu_time(&trace, None);
    let cpus = u64::from(trace.span.unwrap().cpus_online.unwrap());
    let (intervals, defaults) = per_interval(&trace, ValidParams::DEFAULT);
    let their_busiest = busiest(&intervals, cpus);
    let policy = Policy::new(their_busiest, 0.01).unwrap();
    let tuned = simulate(&policy, &trace, ValidParams::DEFAULT, INTERVAL_NS, WINDOW);
    eprintln!("{}", line("Linux's defaults", &defaults, share(defaults.poll_ns, cpu.ns), Some(their_busiest)));
    let its_own = busiest(&tuned.intervals[1..], cpus);
    let name = format!("autotune, that budget ({} changes; from interval 2)", changes(&tuned));
    eprintln!("{}", line(&name, &tuned.summary, tuned.poll_share, Some(its_own)));
    assert!(its_own <= their_busiest, "{its_own} > {their_busiest}");
    // 0.9% more, never polling more of an interval than the defaults did at their busiest,
    // though a little more on average.
    assert!(tuned.summary.poll_hits > defaults.poll_hits, "{:?} vs {defaults:?}", tuned.summary);
}

/// Three more sequences, each two corpus loads then the guest idle, for docs/autotune.md; slow
/// (the loads are large), so run on demand: `cargo test -p haltpoll-linux --test
/// autotune_phases -- --ignored --nocapture`. It asserts only that, after the first interval
/// (run under Linux's defaults, which may poll far over the budget), the tuner catches at least
/// as many as the admissible rival; it does not keep the budget everywhere (a phase change can
/// cost an interval far over it), which it prints.
#[test]
#[ignore]
fn other_sequences() {
    let sequences = [
        ["nginx-wrk-8-conns", "pgbench-select-2000"],
        ["memcached-memcslap", "redis-1-clients"],
        ["sched-pipe", "pgbench-tpcb-500"],
    ];
    let settings = Policy::new(0.0, 0.0).unwrap().grid.valid_settings().unwrap();
    for names in sequences {
        let parts = names.map(|n| read(&format!("traces/corpus/{n}.perf.txt.gz")));
        let trace = concat(&[parts[0].clone(), parts[1].clone(), idle(10)]);
        let cpu = tune::cpu_time(&trace, None);
        let cpus = u64::from(trace.span.unwrap().cpus_online.unwrap());
        let all: Vec<OneSetting> = settings.iter().map(|&p| one_setting(&trace, p, cpus)).collect();
        let (intervals, defaults) = per_interval(&trace, ValidParams::DEFAULT);
        eprintln!("{} then {} then idle:", names[0], names[1]);
        eprintln!(
            "{}",
            line("  Linux's defaults", &defaults, share(defaults.poll_ns, cpu.ns), Some(busiest(&intervals, cpus)))
        );
        for budget in [0.01, 0.02, 0.05, 0.1] {
            let tuned =
                simulate(&Policy::new(budget, 0.01).unwrap(), &trace, ValidParams::DEFAULT, INTERVAL_NS, WINDOW);
            let rivals = rivals(&all, cpu, budget);
            let its_own = busiest(&tuned.intervals[1..], cpus);
            let later: u64 = tuned.intervals[1..].iter().map(|s| s.poll_hits).sum();
            let rival_later = rivals.admissible.whole.poll_hits - rivals.admissible.first_hits;
            eprintln!(
                "  budget {:.0}%: from interval 2, autotune {later}, the admissible rival {rival_later}",
                100.0 * budget
            );
            eprintln!("{}", line("    autotune", &tuned.summary, tuned.poll_share, Some(its_own)));
            eprintln!("{}", rival_line("    admissible, every interval", rivals.admissible, cpu));
            eprintln!("{}", rival_line("    admissible, on average", rivals.on_average, cpu));
            eprintln!("{}", rival_line("    any rule, on average", rivals.any, cpu));
            assert!(later >= rival_later, "{names:?} at {budget}: {later} < {rival_later}");
        }
    }
}
