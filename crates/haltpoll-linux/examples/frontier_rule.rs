//! The predictive governor against Linux's frontier, by the rule its design is held to: on each
//! trace (one CPU's time, as `--cpus 1`), at budgets of 0.5-100%, with and without its timer,
//! in two planes (x = all polling; x = polling less 50 us per catch), it must catch no less
//! than 0.5 point below the best of Linux's grid settings whose x is within the budget (or
//! within its own x, if it spent more), and reach 99.9% wherever such a setting does.
//!
//! `cargo run --release -p haltpoll-linux --example frontier_rule -- traces/corpus/*.gz`
//! prints one line per case and, last, the shortfalls; it exits with 1 if there is any.
//! `haltpoll compare --frontier` is the command for people; this is the designer's loop.

use std::path::PathBuf;

use haltpoll::{Params, PredictiveParams};
use haltpoll_linux::trace::{self, Trace};
use haltpoll_linux::tune::{self, CpuTime, Grid, Outcome};

/// The budgets, shares of the CPU's time.
const BUDGETS: [f64; 8] = [0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0];
/// The second plane's halt cost, ns.
const HALT_COST_NS: u64 = 50_000;
/// How far below Linux's best a catch share may be.
const SLACK: f64 = 0.005;
/// What saturation means.
const SATURATED: f64 = 0.999;

/// One case's result.
struct Case {
    budget: f64,
    timer: bool,
    halt_cost_ns: u64,
    x: f64,
    caught: f64,
    linux: f64,
    bound: f64,
}

impl Case {
    fn short(&self) -> bool {
        self.caught < self.linux - SLACK || (self.linux >= SATURATED && self.caught < SATURATED)
    }
}

/// x of a summary in a plane: polling net of `halt_cost_ns` per catch, a share of `cpu`.
fn x_of(poll_ns: u64, hits: u64, halt_cost_ns: u64, cpu: CpuTime) -> f64 {
    (poll_ns as f64 - (halt_cost_ns * hits) as f64) / cpu.ns as f64
}

fn cases(trace: &Trace, linux: &[Outcome]) -> Vec<Case> {
    let cpu = tune::cpu_time(trace, Some(1));
    let mut out = Vec::new();
    for halt_cost_ns in [0, HALT_COST_NS] {
        for timer in [true, false] {
            for budget in BUDGETS {
                let base = PredictiveParams { timer_first: timer, halt_cost_ns, ..PredictiveParams::DEFAULT };
                let params = tune::predictive_at(base, trace, cpu, budget).validate().expect("valid");
                let s = trace.replay(params, |_, _| {}).summary;
                let x = x_of(s.poll_ns, s.poll_hits, halt_cost_ns, cpu);
                let limit = budget.max(x);
                let linux_best = linux
                    .iter()
                    .filter(|o| x_of(o.summary.poll_ns, o.summary.poll_hits, halt_cost_ns, cpu) <= limit + 1e-12)
                    .map(|o| o.summary.no_exit_share())
                    .fold(0.0, f64::max);
                let bound = tune::clairvoyant(trace, (budget * cpu.ns as f64) as u64).no_exit_share();
                out.push(Case { budget, timer, halt_cost_ns, x, caught: s.no_exit_share(), linux: linux_best, bound });
            }
        }
    }
    out
}

fn main() {
    let paths: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let grid = Grid {
        ceilings_ns: Grid::CEILINGS_NS.to_vec(),
        grow_starts_ns: Grid::GROW_STARTS_NS.to_vec(),
        allow_shrink: vec![true, false],
        base: Params::DEFAULT,
    };
    let settings = grid.valid_settings().expect("the grid is valid");
    let results: Vec<(String, Vec<Case>)> = std::thread::scope(|s| {
        let handles: Vec<_> = paths
            .iter()
            .map(|path| {
                let settings = &settings;
                s.spawn(move || {
                    let trace = trace::read(path, None).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                    let linux = tune::evaluate(&trace, settings, || {});
                    let name = path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
                    (name.trim_end_matches(".perf.txt.gz").to_owned(), cases(&trace, &linux))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("no panic")).collect()
    });
    let (mut short, mut all, mut wins, mut win_cases) = (Vec::new(), 0, 0, 0);
    for (name, cases) in &results {
        for c in cases {
            all += 1;
            let plane = if c.halt_cost_ns == 0 { "all" } else { "net" };
            let timer = if c.timer { "timer" } else { "no-timer" };
            let flag = if c.short() { "SHORT" } else { "" };
            let line = format!(
                "{name:28} {plane} {timer:8} {:6.1}%  x {:7.3}%  caught {:6.2}%  linux {:6.2}%  bound {:6.2}% {flag}",
                c.budget * 100.0,
                c.x * 100.0,
                c.caught * 100.0,
                c.linux * 100.0,
                c.bound * 100.0
            );
            println!("{line}");
            if c.short() {
                short.push(line);
            }
            if c.halt_cost_ns == 0 && c.bound - c.linux >= 0.1 && c.budget <= c.x.max(c.budget) {
                win_cases += 1;
                wins += usize::from(c.caught >= 1.5 * c.linux);
            }
        }
    }
    println!("\n{} of {all} cases short; >= 1.5x Linux's best in {wins} of {win_cases} with room", short.len());
    for line in &short {
        println!("{line}");
    }
    if !short.is_empty() {
        std::process::exit(1);
    }
}
