//! `haltpoll replay TRACE`: the governor and the poll loop model over a trace of idle periods.

use std::io::{self, Write};
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use haltpoll::replay::{Period, Replay, Summary};
use haltpoll::{Adjustment, Params};
use serde::Serialize;

use crate::governor_args::GovernorArgs;
use crate::output::{self, fmt_ns, percent};
use crate::trace;

/// Arguments of `haltpoll replay`.
#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// Trace file: one idle period per line, ns from entering idle to the wakeup ('-' for stdin).
    #[arg(value_name = "TRACE")]
    pub trace: PathBuf,
    #[command(flatten)]
    pub governor: GovernorArgs,
    /// One JSON object per period (JSON Lines), then one with the summary.
    #[arg(long)]
    pub json: bool,
    /// Print only the summary.
    #[arg(long, conflicts_with = "json")]
    pub summary_only: bool,
}

/// One period as JSON.
#[derive(Serialize)]
struct PeriodJson {
    idle_ns: u64,
    poll_limit_ns_before: u64,
    poll_ns: u64,
    halt_ns: u64,
    poll_limit_ns_after: u64,
    hit: bool,
    adjustment: &'static str,
}

impl From<&Period> for PeriodJson {
    fn from(p: &Period) -> Self {
        PeriodJson {
            idle_ns: p.idle_ns,
            poll_limit_ns_before: p.poll_limit_ns_before,
            poll_ns: p.poll_ns,
            halt_ns: p.halt_ns,
            poll_limit_ns_after: p.poll_limit_ns_after,
            hit: p.hit(),
            adjustment: adjustment_name(p.adjustment),
        }
    }
}

#[derive(Serialize)]
struct SummaryJson {
    periods: u64,
    poll_hits: u64,
    halts: u64,
    idle_ns: u64,
    poll_ns: u64,
    wasted_poll_ns: u64,
    halt_ns: u64,
    grows: u64,
    shrinks: u64,
    no_exit_share: f64,
    poll_share_of_idle: f64,
    final_poll_limit_ns: u64,
    params: ParamsJson,
}

/// The parameters as JSON, with the kernel's names.
#[derive(Serialize)]
pub struct ParamsJson {
    guest_halt_poll_ns: u64,
    guest_halt_poll_grow: u32,
    guest_halt_poll_grow_start: u64,
    guest_halt_poll_shrink: u32,
    guest_halt_poll_allow_shrink: bool,
    legacy_shrink: bool,
}

impl From<&Params> for ParamsJson {
    fn from(p: &Params) -> Self {
        ParamsJson {
            guest_halt_poll_ns: p.guest_halt_poll_ns,
            guest_halt_poll_grow: p.grow,
            guest_halt_poll_grow_start: p.grow_start,
            guest_halt_poll_shrink: p.shrink,
            guest_halt_poll_allow_shrink: p.allow_shrink,
            legacy_shrink: p.shrink_rule == haltpoll::ShrinkRule::Legacy,
        }
    }
}

fn adjustment_name(a: Adjustment) -> &'static str {
    match a {
        Adjustment::Unchanged => "unchanged",
        Adjustment::Grew { .. } => "grew",
        Adjustment::Shrank { .. } => "shrank",
    }
}

/// Runs `haltpoll replay`.
pub fn run(args: &ReplayArgs) -> Result<()> {
    let params = args.governor.params()?;
    let periods = trace::read(&args.trace)?;
    output::write_stdout(|out| write_report(out, &periods, &params, args))
}

fn write_report(out: &mut dyn Write, periods: &[u64], params: &Params, args: &ReplayArgs) -> io::Result<()> {
    let mut replay = Replay::new(*params);
    let mut summary = Summary::default();
    if !args.json && !args.summary_only {
        writeln!(
            out,
            "{:>14} {:>14} {:>14} {:>14} {:>14}  outcome",
            "idle_ns", "window_ns", "poll_ns", "halt_ns", "window_after"
        )?;
    }
    for &idle_ns in periods {
        let p = replay.period(idle_ns);
        summary.add(&p);
        if args.json {
            serde_json::to_writer(&mut *out, &PeriodJson::from(&p))?;
            writeln!(out)?;
        } else if !args.summary_only {
            let outcome = match (p.hit(), p.adjustment) {
                (true, _) => "poll hit".to_owned(),
                (false, Adjustment::Unchanged) => "halt".to_owned(),
                (false, Adjustment::Grew { .. }) => "halt, window grew".to_owned(),
                (false, Adjustment::Shrank { .. }) => "halt, window shrank".to_owned(),
            };
            writeln!(
                out,
                "{:>14} {:>14} {:>14} {:>14} {:>14}  {outcome}",
                p.idle_ns, p.poll_limit_ns_before, p.poll_ns, p.halt_ns, p.poll_limit_ns_after
            )?;
        }
    }
    let final_window = replay.governor().poll_limit_ns();
    if args.json {
        let s = SummaryJson {
            periods: summary.periods,
            poll_hits: summary.poll_hits,
            halts: summary.halts,
            idle_ns: summary.idle_ns,
            poll_ns: summary.poll_ns,
            wasted_poll_ns: summary.wasted_poll_ns,
            halt_ns: summary.halt_ns,
            grows: summary.grows,
            shrinks: summary.shrinks,
            no_exit_share: summary.no_exit_share(),
            poll_share_of_idle: summary.poll_share_of_idle(),
            final_poll_limit_ns: final_window,
            params: params.into(),
        };
        serde_json::to_writer(&mut *out, &serde_json::json!({ "summary": s }))?;
        writeln!(out)?;
        return Ok(());
    }
    let s = &summary;
    if !args.summary_only {
        writeln!(out)?;
    }
    writeln!(out, "summary")?;
    writeln!(out, "  periods            {}", s.periods)?;
    writeln!(out, "  poll hits          {} ({} of wakeups needed no exit)", s.poll_hits, percent(s.no_exit_share()))?;
    writeln!(out, "  halts              {}", s.halts)?;
    writeln!(out, "  idle time          {}", fmt_ns(s.idle_ns))?;
    writeln!(out, "  poll time          {} ({} of idle time)", fmt_ns(s.poll_ns), percent(s.poll_share_of_idle()))?;
    writeln!(
        out,
        "  wasted poll time   {} ({} of poll time ended in a halt anyway)",
        fmt_ns(s.wasted_poll_ns),
        percent(if s.poll_ns == 0 { 0.0 } else { s.wasted_poll_ns as f64 / s.poll_ns as f64 })
    )?;
    writeln!(
        out,
        "  window             grew {} times, shrank {} times, ends at {}",
        s.grows,
        s.shrinks,
        fmt_ns(final_window)
    )?;
    Ok(())
}
