//! A recording as the commands make it (`haltpoll record`, `tune --record`): the library's
//! recorder with signals handled, and what it did reported on stderr.
//!
//! Ctrl-C, SIGTERM and SIGHUP during a recording are a request to stop, which the recording
//! loop sees within one poll interval and answers by cleaning up as on any other end.
//! Afterwards the signals do what they did before (end the process), so a Ctrl-C while `tune`
//! computes is not swallowed.

use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use haltpoll_linux::record::{self, Options, Recorded, tracefs};
use haltpoll_linux::sysfs;
use haltpoll_linux::trace::{self, Format, Trace};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::flag;

/// The signals that stop a recording.
const SIGNALS: [i32; 3] = [SIGINT, SIGTERM, SIGHUP];

/// Signal handling for the length of a recording.
#[derive(Debug)]
pub struct Stop {
    requested: Arc<AtomicBool>,
    over: Arc<AtomicBool>,
}

impl Stop {
    /// Installs the handlers.
    pub fn install() -> io::Result<Stop> {
        let stop = Stop { requested: Arc::new(AtomicBool::new(false)), over: Arc::new(AtomicBool::new(false)) };
        for signal in SIGNALS {
            // Registered first, so it runs first: once the recording is over, the signal's
            // default action (the process ends) before the flag below is even set.
            flag::register_conditional_default(signal, Arc::clone(&stop.over))?;
            flag::register(signal, Arc::clone(&stop.requested))?;
        }
        Ok(stop)
    }

    /// The flag a signal sets.
    pub fn flag(&self) -> &AtomicBool {
        &self.requested
    }
}

impl Drop for Stop {
    fn drop(&mut self) {
        // signal-hook cannot give the handler back to the kernel; this makes it act as the
        // default one from now on.
        self.over.store(true, Ordering::SeqCst);
    }
}

/// A recording stopped by a signal: the command ends with exit code 130.
#[derive(Debug, thiserror::Error)]
#[error("interrupted: the recording stopped after {0:.1} s, and the trace instance is removed")]
pub struct Interrupted(pub f64);

/// Records with Ctrl-C and SIGTERM handled: they end the recording early and cleanly.
pub fn record_with_signals(opts: &Options, out: &mut dyn Write) -> Result<Recorded> {
    let stop = Stop::install().context("cannot install the signal handlers")?;
    let recorded = record::record(opts, stop.flag(), out)?;
    drop(stop);
    Ok(recorded)
}

/// What was recorded, on stderr (stdout may be the trace).
pub fn report(r: &Recorded, to: &str) {
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
