//! The progress of a long run (`bench vm`, `bench threads`, `vm pingpong`): a bar on stderr
//! while it runs, and what is left standing when an interrupt or an error cuts it short.

use indicatif::{ProgressBar, ProgressStyle};

use crate::interrupt::{Partial, Stop};
use crate::output;

/// The progress bar of a run: elapsed time, `len` steps, and a message saying what runs.
/// It shows only where stderr is a terminal.
pub fn progress_bar(len: u64) -> ProgressBar {
    ProgressBar::new(len).with_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} {msg}")
            .expect("a valid template"),
    )
}

/// Ends a run's progress bar: cleared when every run finished; left standing, with a
/// newline, when an interrupt or an error cut the benchmark short, so the terminal shows where
/// it stopped.
pub fn end_progress(bar: &ProgressBar, partial: Option<&Partial>) {
    match partial {
        None => bar.finish_and_clear(),
        Some(p) => {
            bar.abandon_with_message(match p.stop {
                Stop::Interrupt => "interrupted",
                Stop::Error(_) => "failed",
            });
            // indicatif leaves the cursor at the end of the bar's line.
            if !bar.is_hidden() {
                output::stderr_line(format_args!(""));
            }
        }
    }
}

/// What a run ran, against what it planned: `Some` if `failure` (the error of the run
/// that failed) or an interrupt cut it short.
pub fn partial(finished: usize, planned: usize, unit: &'static str, failure: Option<anyhow::Error>) -> Option<Partial> {
    let stop = match failure {
        Some(e) => Stop::Error(e),
        None if finished < planned => Stop::Interrupt,
        None => return None,
    };
    Some(Partial { finished, planned, unit, stop })
}
