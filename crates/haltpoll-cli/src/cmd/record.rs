//! `haltpoll record`: every CPU's idle periods, recorded through tracefs without the perf
//! tool, written as the `perf script` text `replay` and `tune` read; and the recording that
//! `tune --record` makes.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;

use crate::record::stop::Stop;
use crate::record::{self, Interrupted, Options, Recorded, tracefs};
use crate::sysfs;
use crate::trace::{self, Format, Trace};

/// Arguments of `haltpoll record`.
#[derive(Args, Debug)]
#[command(
    long_about = "Record every CPU's idle periods through tracefs (as root), for `replay` and `tune`.

It needs root, and no perf. It enables the power:cpu_idle tracepoint in a trace instance of its
own (instances/haltpoll-PID under tracefs), never in the global trace buffer, and removes the
instance when it ends: at the end, on an error, and on Ctrl-C or SIGTERM (exit status 130, with
what was recorded written).",
    after_help = "\
Examples:
  # 10 s of every CPU's idle periods, for `haltpoll tune idle.txt`
  sudo haltpoll record -o idle.txt
  # a minute, under the load that matters
  sudo haltpoll record --duration 60s -o idle.txt
  # straight into the governor
  sudo haltpoll record | haltpoll replay -"
)]
pub struct RecordArgs {
    /// How long to record, with a unit (e.g. 10s, 500ms).
    #[arg(short, long, value_name = "TIME", default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Write the trace to FILE ('-': standard output).
    #[arg(short, long, value_name = "FILE", default_value = "-")]
    pub output: PathBuf,
    /// Where tracefs is mounted; if DIR is an empty directory, tracefs is mounted there for the
    /// recording and unmounted after it.
    #[arg(long, value_name = "DIR", default_value = tracefs::DEFAULT_ROOT)]
    pub tracefs: PathBuf,
}

/// A recording's length: a duration with a unit, more than 0 and at most a day.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let d = crate::units::parse_duration(text)?;
    if d.is_zero() || d > record::MAX_DURATION {
        return Err(format!("{text:?}: a recording lasts more than 0 s and at most 86400 s (e.g. 10s)"));
    }
    Ok(d)
}

/// Runs `haltpoll record`.
pub fn run(args: &RecordArgs) -> Result<()> {
    let opts = Options { duration: args.duration, tracefs: args.tracefs.clone(), sysfs: sysfs::DEFAULT_ROOT.into() };
    let to_stdout = args.output == Path::new("-");
    let recorded = if to_stdout {
        let stdout = io::stdout();
        let mut out = BufWriter::new(stdout.lock());
        record_with_signals(&opts, &mut out)?
    } else {
        // Created before anything is recorded, so a path that cannot be written fails first.
        let file = File::create(&args.output)
            .with_context(|| format!("cannot create {}: give a writable path with -o", args.output.display()))?;
        let mut out = BufWriter::new(file);
        let result = record_with_signals(&opts, &mut out);
        if result.is_err() {
            drop(out);
            // Nothing worth keeping was recorded: leave no half-made trace behind.
            std::fs::remove_file(&args.output).ok();
        }
        result?
    };
    let to = if to_stdout { "standard output".to_owned() } else { args.output.display().to_string() };
    report(&recorded, &to);
    if recorded.interrupted {
        return Err(Interrupted(recorded.elapsed.as_secs_f64()).into());
    }
    Ok(())
}

/// Records with Ctrl-C and SIGTERM handled: they end the recording early and cleanly.
fn record_with_signals(opts: &Options, out: &mut dyn Write) -> Result<Recorded> {
    let stop = Stop::install().context("cannot install the signal handlers")?;
    let recorded = record::record(opts, stop.flag(), out)?;
    drop(stop);
    Ok(recorded)
}

/// What was recorded, on stderr (stdout may be the trace).
fn report(r: &Recorded, to: &str) {
    for stale in &r.stale_instances {
        match stale {
            Ok(name) => crate::output::stderr_line(format_args!(
                "haltpoll: note: removed the trace instance {name}, left by a recording that was killed"
            )),
            Err(problem) => crate::output::stderr_line(format_args!(
                "haltpoll: warning: a trace instance left by a killed recording: {problem}"
            )),
        }
    }
    crate::output::stderr_line(format_args!(
        "haltpoll: recorded {} power:cpu_idle events in {:.1} s (trace clock {}) to {to}",
        r.events,
        r.elapsed.as_secs_f64(),
        r.clock
    ));
    if r.lost > 0 {
        crate::output::stderr_line(format_args!(
            "haltpoll: note: the kernel lost {} events (a CPU's trace buffer was full): the readers skip \
             the idle periods they cut",
            r.lost
        ));
    }
    if r.other_lines > 0 {
        crate::output::stderr_line(format_args!(
            "haltpoll: note: skipped {} lines of the trace pipe that were not power:cpu_idle events",
            r.other_lines
        ));
    }
}

/// Records for `duration` (as `haltpoll record` does, at the default tracefs) and reads the
/// result as a trace: what `tune --record` tunes on.
pub fn record_trace(duration: Duration) -> Result<Trace> {
    let opts = Options { duration, tracefs: tracefs::DEFAULT_ROOT.into(), sysfs: sysfs::DEFAULT_ROOT.into() };
    let mut text = Vec::new();
    let recorded = record_with_signals(&opts, &mut text)?;
    report(&recorded, "memory");
    if recorded.interrupted {
        return Err(Interrupted(recorded.elapsed.as_secs_f64()).into());
    }
    let text = String::from_utf8(text).context("the recording is not UTF-8")?;
    Ok(trace::parse(text.as_bytes(), Path::new("the recording"), Some(Format::Perf))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("0").unwrap_err().contains("more than 0 s"));
        assert!(parse_duration("86401s").unwrap_err().contains("at most 86400 s"));
        assert!(parse_duration("10").unwrap_err().contains("no unit"));
    }
}
