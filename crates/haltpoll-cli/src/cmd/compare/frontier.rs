//! `haltpoll compare TRACE... --frontier`: per trace and plane, the predictive governor's budget
//! sweep (timer-first on and off) against Linux's frontier, as a table, JSON and a picture;
//! `haltpoll_linux::frontier` computes it all.

use std::io::{self, Write};
use std::path::PathBuf;

use anyhow::{Result, anyhow};
use haltpoll::replay::Summary;
use haltpoll::{Params, PredictiveParams};
use haltpoll_linux::frontier::{self, BigWins, Plane, PlaneSweep, Point, Sweep, TraceFrontier, Verdict};
use haltpoll_linux::trace::Trace;
use haltpoll_linux::tune::{Contender, CpuTime};
use serde::Serialize;

use super::{CompareArgs, TraceInfo, setting, write_trace_header};
use crate::output::{self, fmt_ns, percent, percent2};
use crate::plot::{Panel, PlotFile, Scale, Series};
use crate::table::{self, Column};

/// Runs `haltpoll compare --frontier` on the traces read.
pub(super) fn run(
    args: &CompareArgs,
    budgets: Vec<f64>,
    traces: Vec<(PathBuf, Trace)>,
    plot: Option<PlotFile>,
) -> Result<()> {
    let how = Sweep {
        budgets,
        halt_cost_ns: second_plane_halt_cost(args),
        cpus: args.cpus.cpus,
        predictive: args.predictive,
    };
    let all = frontier::sweep_all(traces, &how)?;
    output::write_stdout(|out| if args.json { write_json(out, &all) } else { write_human(out, &all) })?;
    if let Some(plot) = plot {
        plot.panels(&all.iter().flat_map(panels).collect::<Vec<_>>())?;
    }
    let shortfalls: Vec<String> = all
        .iter()
        .flat_map(|t| t.planes.iter().flat_map(move |p| p.points.iter().map(move |point| (t, p.plane, point))))
        .filter(|(_, _, point)| point.verdict.is_shortfall())
        .map(|(t, plane, point)| describe(t, plane, point))
        .collect();
    if args.check && !shortfalls.is_empty() {
        let n = shortfalls.len();
        return Err(anyhow!(
            "{n} point{} short of Linux's frontier:\n  {}",
            if n == 1 { "" } else { "s" },
            shortfalls.join("\n  ")
        ));
    }
    Ok(())
}

/// The second plane's halt cost: `--halt-cost`, or [`frontier::HALT_COST_NS`] for its default
/// of 0 (the plane of all polling is the first).
fn second_plane_halt_cost(args: &CompareArgs) -> u64 {
    match args.predictive.halt_cost_ns {
        0 => frontier::HALT_COST_NS,
        h => h,
    }
}

/// A plane's name: what its x counts.
fn plane_name(plane: Plane) -> String {
    match plane.halt_cost_ns {
        0 => "all polling".to_owned(),
        h => format!("polling less {} per catch", fmt_ns(h)),
    }
}

/// A shortfall, naming its trace, budget, timer-first and plane: what `--check` reports.
fn describe(t: &TraceFrontier, plane: Plane, point: &Point) -> String {
    let what = match point.verdict {
        Verdict::Unsaturated => "short of 99.9% where Linux reaches it",
        _ => "below Linux's frontier",
    };
    let linux = point.linux.map_or_else(|| "-".to_owned(), |l| percent(l.summary.no_exit_share()));
    format!(
        "{}: budget {}, timer-first {}, plane {}: {what} ({} caught against {linux})",
        t.path.display(),
        percent2(point.budget),
        on_off(point.timer_first),
        plane_name(plane),
        percent(point.summary.no_exit_share()),
    )
}

fn on_off(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}

/// A row of the table: one predictive point of one plane.
struct Row {
    cpu: CpuTime,
    plane: Plane,
    point: Point,
}

impl Row {
    fn x(&self, s: &Summary) -> String {
        percent2(self.plane.x(s, self.cpu))
    }

    fn linux(&self, cell: impl Fn(&haltpoll_linux::tune::Outcome) -> String) -> String {
        self.point.linux.as_ref().map_or_else(|| "-".to_owned(), cell)
    }
}

/// The table's columns.
const COLUMNS: [Column<Row>; 11] = [
    Column::right("budget", 2, 7, |_, r| percent2(r.point.budget)),
    Column::right("timer", 2, 5, |_, r| on_off(r.point.timer_first).to_owned()),
    Column::right("x", 2, 8, |_, r| r.x(&r.point.summary)),
    Column::right("caught", 1, 7, |_, r| percent(r.point.summary.no_exit_share())),
    Column::right("Linux within x: ceil/start/shr", 3, 30, |_, r| r.linux(|l| setting(&l.params))),
    Column::right("x", 1, 8, |_, r| r.linux(|l| r.x(&l.summary))),
    Column::right("caught", 1, 7, |_, r| r.linux(|l| percent(l.no_exit_share()))),
    Column::right("bound", 2, 7, |_, r| percent(r.point.clairvoyant.no_exit_share())),
    Column::right("x", 1, 8, |_, r| r.x(&r.point.clairvoyant)),
    Column::right("vs Linux", 2, 8, |_, r| format!("{:+.1}", -r.point.shortfall() * 100.0)),
    Column::left("", 2, 0, |_, r| flag(r.point.verdict).to_owned()),
];

/// The last column: empty for a point on or above the frontier.
fn flag(v: Verdict) -> &'static str {
    match v {
        Verdict::OnOrAbove => "",
        Verdict::Below => "BELOW",
        Verdict::Unsaturated => "<99.9%",
    }
}

/// What the columns mean, under the tables.
const LEGEND: [&str; 4] = [
    "x: CPU time polling, less the plane's halt cost per caught wakeup, as a share of the CPU time; caught: wakeups \
     that found the CPU polling",
    "predictive (budget, timer): the predictive governor at the budget, the budget spread over the CPUs that idle; \
     Linux within x: the setting of tune's grid catching the most within max(budget, the predictive x)",
    "bound: polls exactly the shortest periods that fit the budget; vs Linux: predictive's caught less Linux's, in \
     points",
    "BELOW: more than 0.5 point below Linux; <99.9%: Linux reaches 99.9% there and the predictive governor does not",
];

/// The summary of [`BigWins`].
fn big_wins(w: BigWins) -> String {
    let median = w.median_gap_closed.map_or_else(|| "-".to_owned(), percent);
    format!(
        "where the bound leaves 10 points or more: {} of {} at 1.5x Linux or more; median gap to the bound closed {median}",
        w.at_ratio, w.points
    )
}

fn write_human(out: &mut dyn Write, all: &[TraceFrontier]) -> io::Result<()> {
    for t in all {
        write_trace_header(out, &t.path, &t.trace, t.cpu)?;
        writeln!(out, "Linux: {} settings of tune's grid", t.settings)?;
        for plane in &t.planes {
            writeln!(out, "plane: {}", plane_name(plane.plane))?;
            table::write_header(out, &COLUMNS)?;
            for &point in &plane.points {
                table::write_row(out, &COLUMNS, &Row { cpu: t.cpu, plane: plane.plane, point })?;
            }
            writeln!(out, "  on/above frontier: {} of {} points", plane.on_or_above(), plane.points.len())?;
            writeln!(out, "  {}", big_wins(plane.big_wins()))?;
        }
        writeln!(out)?;
    }
    LEGEND.iter().try_for_each(|line| writeln!(out, "{line}"))
}

#[derive(Serialize)]
struct FrontierJson {
    traces: Vec<TraceJson>,
}

#[derive(Serialize)]
struct TraceJson {
    #[serde(flatten)]
    trace: TraceInfo,
    linux_settings: usize,
    planes: Vec<PlaneJson>,
}

#[derive(Serialize)]
struct PlaneJson {
    halt_cost_ns: u64,
    linux_frontier: Vec<InPlane<Params>>,
    points: Vec<PointJson>,
    on_or_above: usize,
    big_wins: BigWinsJson,
}

#[derive(Serialize)]
struct BigWinsJson {
    points: usize,
    at_ratio: usize,
    median_gap_closed: Option<f64>,
}

/// A contender with its x in the plane.
#[derive(Serialize)]
struct InPlane<P> {
    x: f64,
    result: Contender<P>,
}

impl<P> InPlane<P> {
    fn new(params: Option<P>, s: &Summary, plane: Plane, cpu: CpuTime) -> Self {
        InPlane { x: plane.x(s, cpu), result: Contender::new(params, s, cpu) }
    }
}

#[derive(Serialize)]
struct PointJson {
    budget: f64,
    timer_first: bool,
    predictive: InPlane<PredictiveParams>,
    linux_best: Option<InPlane<Params>>,
    clairvoyant: InPlane<()>,
    shortfall: f64,
    verdict: &'static str,
    ratio_to_linux: Option<f64>,
    gap_closed: Option<f64>,
}

impl PointJson {
    fn new(p: &Point, plane: Plane, cpu: CpuTime) -> Self {
        PointJson {
            budget: p.budget,
            timer_first: p.timer_first,
            predictive: InPlane::new(Some(p.params), &p.summary, plane, cpu),
            linux_best: p.linux.map(|l| InPlane::new(Some(l.params), &l.summary, plane, cpu)),
            clairvoyant: InPlane::new(None, &p.clairvoyant, plane, cpu),
            shortfall: p.shortfall(),
            ratio_to_linux: p.ratio_to_linux(),
            gap_closed: p.gap_closed(),
            verdict: match p.verdict {
                Verdict::OnOrAbove => "on or above",
                Verdict::Below => "below",
                Verdict::Unsaturated => "short of 99.9%",
            },
        }
    }
}

fn plane_json(p: &PlaneSweep, cpu: CpuTime) -> PlaneJson {
    PlaneJson {
        halt_cost_ns: p.plane.halt_cost_ns,
        linux_frontier: p.frontier.iter().map(|o| InPlane::new(Some(o.params), &o.summary, p.plane, cpu)).collect(),
        points: p.points.iter().map(|point| PointJson::new(point, p.plane, cpu)).collect(),
        on_or_above: p.on_or_above(),
        big_wins: {
            let w = p.big_wins();
            BigWinsJson { points: w.points, at_ratio: w.at_ratio, median_gap_closed: w.median_gap_closed }
        },
    }
}

fn write_json(out: &mut dyn Write, all: &[TraceFrontier]) -> io::Result<()> {
    let traces = all
        .iter()
        .map(|t| TraceJson {
            trace: TraceInfo::new(&t.path, &t.trace, t.cpu),
            linux_settings: t.settings,
            planes: t.planes.iter().map(|p| plane_json(p, t.cpu)).collect(),
        })
        .collect();
    output::write_json(out, &FrontierJson { traces })
}

/// A trace's panels, one per plane: Linux's frontier as a staircase, the predictive governor
/// with timer-first on and off, and the bound, caught wakeups against x (both in %).
fn panels(t: &TraceFrontier) -> Vec<Panel> {
    t.planes
        .iter()
        .map(|p| {
            let at = |s: &Summary| (p.plane.x(s, t.cpu) * 100.0, s.no_exit_share() * 100.0);
            let predictive = |timer_first: bool| Series {
                label: format!("predictive, timer-first {}", on_off(timer_first)),
                points: p.points.iter().filter(|q| q.timer_first == timer_first).map(|q| at(&q.summary)).collect(),
            };
            let right = p.points.iter().flat_map(|q| [at(&q.summary).0, q.budget * 100.0]).fold(f64::MIN, f64::max);
            let mut bound: Vec<(f64, f64)> = p.points.iter().map(|q| at(&q.clairvoyant)).collect();
            bound.dedup();
            Panel {
                title: format!("{}: wakeups caught against {}", t.path.display(), plane_name(p.plane)),
                x_label: format!("{} (% of the CPU time)", plane_name(p.plane)),
                y_label: "wakeups caught (%)".to_owned(),
                x_scale: Scale::Auto,
                y_scale: Scale::Linear,
                series: vec![
                    Series { label: "Linux's frontier".to_owned(), points: staircase(&p.frontier, &at, right) },
                    predictive(true),
                    predictive(false),
                    Series { label: "clairvoyant bound".to_owned(), points: bound },
                ],
            }
        })
        .collect()
}

/// The frontier's steps as a line: flat from each step to the next, then to `right`.
fn staircase(
    steps: &[haltpoll_linux::tune::Outcome],
    at: &dyn Fn(&Summary) -> (f64, f64),
    right: f64,
) -> Vec<(f64, f64)> {
    let mut line = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let (x, y) = at(&step.summary);
        line.push((x, y));
        let next_x = steps.get(i + 1).map_or(right.max(x), |n| at(&n.summary).0);
        line.push((next_x, y));
    }
    line
}
