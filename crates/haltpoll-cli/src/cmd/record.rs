//! `haltpoll record`: every CPU's idle periods, recorded through tracefs without the perf
//! tool, written as the `perf script` text `replay` and `tune` read.

use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use haltpoll_linux::record::{Options, Recorded, parse_duration, tracefs};
use haltpoll_linux::sysfs;

use crate::Usage;
use crate::recording::{Interrupted, record_with_signals, report};
use crate::staged_file::{StagedFile, kept_note};

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
    /// recording and unmounted by the last recording on it (a killed one's mount included).
    #[arg(long, value_name = "DIR", default_value = tracefs::DEFAULT_ROOT)]
    pub tracefs: PathBuf,
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
        record_to_file(&opts, &args.output)?
    };
    let to = if to_stdout { "standard output".to_owned() } else { args.output.display().to_string() };
    report(&recorded, &to);
    if recorded.interrupted {
        return Err(Interrupted(recorded.elapsed.as_secs_f64()).into());
    }
    Ok(())
}

/// Records into a file beside `path`, renamed onto it once whole: a failure leaves what `path`
/// held as it was, and keeps what was recorded under a name the message gives.
fn record_to_file(opts: &Options, path: &Path) -> Result<Recorded> {
    // Created before anything is recorded, so a path that cannot be written fails first.
    let mut staged = match StagedFile::create(path) {
        Err(e) if e.is_refusal() => return Err(Usage(format!("{e}, or - for standard output")).into()),
        other => other?,
    };
    match record_with_signals(opts, staged.writer()) {
        Ok(recorded) => {
            staged.commit()?;
            Ok(recorded)
        }
        Err(e) => Err(anyhow::anyhow!("{e:#}{}", kept_note(path, staged.keep().as_deref()))),
    }
}
