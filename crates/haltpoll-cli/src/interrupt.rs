//! Ctrl-C and SIGTERM during a long run (`bench vm`, `bench threads`, `vm pingpong`). The first
//! signal sets a flag that the runs check at their safe points (between runs, each round trip of
//! a thread cell, each tick of the VMM's supervisor); the command then tears its VMs and
//! threads down, prints what finished marked as partial, and ends with [`Interrupted`], which
//! `main` turns into exit code 130. A second signal ends the process at once, with the same
//! code, for a run that does not stop. A run that fails keeps what finished the same way
//! ([`Partial`]), and ends with its error (exit 1).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::flag;

/// The flag the first Ctrl-C or SIGTERM sets.
#[derive(Clone, Debug)]
pub struct Interrupt(Arc<AtomicBool>);

impl Interrupt {
    /// Installs the handlers of SIGINT and SIGTERM and returns their flag. Until this is called
    /// the signals end the process as usual (commands that have nothing to save need nothing).
    pub fn watch() -> anyhow::Result<Interrupt> {
        let requested = Arc::new(AtomicBool::new(false));
        for signal in [SIGINT, SIGTERM] {
            // The order matters: the shutdown looks at the flag before the second action sets
            // it, so the first signal only sets it and the second one exits.
            flag::register_conditional_shutdown(signal, crate::EXIT_INTERRUPTED.into(), requested.clone())
                .and_then(|_| flag::register(signal, requested.clone()))
                .map_err(|e| anyhow::anyhow!("cannot install the Ctrl-C handler: {e}"))?;
        }
        Ok(Interrupt(requested))
    }

    /// Whether a signal asked the run to stop.
    #[cfg_attr(
        not(all(feature = "vm", target_arch = "x86_64")),
        allow(dead_code, reason = "the VM commands ask it, x86_64 only")
    )]
    pub fn requested(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// The flag itself, for a run that checks it on its own (the VMM's `run_until`, the thread
    /// harness).
    pub fn flag(&self) -> &AtomicBool {
        &self.0
    }
}

/// Why a run stopped before all of it finished.
#[derive(Debug)]
pub enum Stop {
    /// Ctrl-C or SIGTERM.
    Interrupt,
    /// A run failed (a VM error, the thread harness's error); the ones before it stand.
    Error(anyhow::Error),
}

/// A run cut short, by an interrupt or by an error, with what finished: it heads the partial
/// results, and the command ends with it (`anyhow::Error::from`: [`Interrupted`], exit 130, or
/// the error itself, exit 1).
#[derive(Debug)]
pub struct Partial {
    /// Runs (cells, repetitions) that finished and are in the results.
    pub finished: usize,
    /// Runs there were to be.
    pub planned: usize,
    /// What a run is called ("runs", "cells", "repetitions").
    pub unit: &'static str,
    /// What stopped it.
    pub stop: Stop,
}

impl Partial {
    /// The line that heads partial results.
    pub fn marker(&self) -> String {
        let (finished, planned, unit) = (self.finished, self.planned, self.unit);
        match &self.stop {
            Stop::Interrupt => format!(
                "PARTIAL RESULTS: interrupted after {finished} of {planned} {unit}; only those that finished are shown"
            ),
            Stop::Error(e) => format!(
                "PARTIAL RESULTS: stopped by an error after {finished} of {planned} {unit}; only those that \
                 finished are shown: {e:#}"
            ),
        }
    }

    /// What stopped it, as the JSON documents say: `interrupt` or `error`.
    pub fn stopped_by(&self) -> &'static str {
        match self.stop {
            Stop::Interrupt => "interrupt",
            Stop::Error(_) => "error",
        }
    }

    /// The error that stopped it, if one did, in a line.
    pub fn error(&self) -> Option<String> {
        match &self.stop {
            Stop::Interrupt => None,
            Stop::Error(e) => Some(format!("{e:#}")),
        }
    }
}

impl From<Partial> for anyhow::Error {
    fn from(partial: Partial) -> anyhow::Error {
        match partial.stop {
            Stop::Interrupt => {
                Interrupted { finished: partial.finished, planned: partial.planned, unit: partial.unit }.into()
            }
            Stop::Error(e) => e,
        }
    }
}

/// A run stopped by Ctrl-C or SIGTERM, after it printed what had finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct Interrupted {
    /// Runs (cells, repetitions) that finished and are in the results.
    pub finished: usize,
    /// Runs there were to be.
    pub planned: usize,
    /// What a run is called ("runs", "cells", "repetitions").
    pub unit: &'static str,
}

impl Interrupted {
    fn describe(&self) -> String {
        if self.finished == 0 {
            format!("interrupted before any of {} {} finished: nothing to show", self.planned, self.unit)
        } else {
            format!(
                "interrupted after {} of {} {}: the results printed are partial",
                self.finished, self.planned, self.unit
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_messages_say_how_far_it_got() {
        let i = Interrupted { finished: 3, planned: 20, unit: "runs" };
        assert_eq!(i.to_string(), "interrupted after 3 of 20 runs: the results printed are partial");
        let none = Interrupted { finished: 0, ..i };
        assert_eq!(none.to_string(), "interrupted before any of 20 runs finished: nothing to show");
    }

    #[test]
    fn an_interrupt_ends_as_interrupted_and_an_error_as_itself() {
        let p = Partial { finished: 3, planned: 20, unit: "runs", stop: Stop::Interrupt };
        assert!(p.marker().starts_with("PARTIAL RESULTS: interrupted after 3 of 20 runs"));
        assert_eq!((p.stopped_by(), p.error()), ("interrupt", None));
        let e = anyhow::Error::from(p);
        assert_eq!(e.downcast_ref::<Interrupted>(), Some(&Interrupted { finished: 3, planned: 20, unit: "runs" }));

        let failed = anyhow::anyhow!("overran the time limit").context("busy at think 1 ms");
        let p = Partial { finished: 3, planned: 20, unit: "runs", stop: Stop::Error(failed) };
        assert_eq!(
            p.marker(),
            "PARTIAL RESULTS: stopped by an error after 3 of 20 runs; only those that finished are shown: \
             busy at think 1 ms: overran the time limit"
        );
        assert_eq!(p.stopped_by(), "error");
        assert_eq!(p.error().as_deref(), Some("busy at think 1 ms: overran the time limit"));
        let e = anyhow::Error::from(p);
        assert!(e.downcast_ref::<Interrupted>().is_none());
        assert_eq!(format!("{e:#}"), "busy at think 1 ms: overran the time limit");
    }
}
