//! The Linux guest's side of halt polling, as a library: what the `haltpoll` command computes,
//! without KVM, the bare-metal guest or plotting.
//!
//! - [`sysfs`], [`module_params`], [`cpuidle`]: the cpuidle-haltpoll driver's and the haltpoll
//!   governor's files under `/sys`, read and checked; [`change`]: the parameters written, all or
//!   none; `lock` (Linux): one writer of them at a time;
//! - [`hypervisor`]: what the hypervisor offers a guest (CPUID), and whether the driver loads;
//!   [`status`]: all of it read at once, and what it means;
//! - [`record`] (Linux): every CPU's idle periods through tracefs, as `perf script` text;
//! - [`trace`]: the two trace formats read, and the governor replayed over them per CPU;
//! - [`tune`]: the governor over a grid of settings, the Pareto front and the setting for a
//!   CPU budget; [`compare`]: Linux's best setting, the predictive governor and the
//!   clairvoyant bound at several budgets;
//! - [`metrics`]: the cpuidle and haltpoll metrics in Prometheus's text format;
//! - [`units`]: the durations, shares and counts a person types and reads.
//!
//! Every reader of a file or a person's text bounds what it reads and what its messages quote
//! ([`quote`]), so that bad input gives a short error, never a panic.
//!
//! ```
//! use haltpoll::ValidParams;
//! use haltpoll_linux::trace::{self, Format};
//!
//! let text = b"# cpu 0\n40000\n250000\n30000\n";
//! let trace = trace::parse(text, "example".as_ref(), Some(Format::Text)).unwrap();
//! let replayed = trace.replay(ValidParams::DEFAULT, |_, _| {});
//! assert_eq!(replayed.summary.periods, 3);
//! ```

pub mod change;
pub mod compare;
pub mod cpuidle;
pub mod hypervisor;
#[cfg(target_os = "linux")]
pub mod lock;
pub mod metrics;
pub mod module_params;
#[cfg(target_os = "linux")]
pub mod record;
pub mod status;
pub mod sysfs;
pub mod trace;
pub mod tune;
pub mod units;

/// The most characters of a file's or a person's text an error message quotes.
pub const QUOTE_CHARS: usize = 80;

/// `text` quoted for a message, cut to its first [`QUOTE_CHARS`] characters (with its length)
/// when longer: a line of a trace or a file in sysfs can be megabytes long.
///
/// ```
/// assert_eq!(haltpoll_linux::quote("a\"b"), "\"a\\\"b\"");
/// assert!(haltpoll_linux::quote(&"x".repeat(1000)).ends_with("... (1000 bytes in all)"));
/// ```
pub fn quote(text: &str) -> String {
    match text.char_indices().nth(QUOTE_CHARS) {
        None => format!("{text:?}"),
        Some((cut, _)) => format!("{:?}... ({} bytes in all)", &text[..cut], text.len()),
    }
}

/// `part / whole`, or 0 when `whole` is 0: the share every report shows, defined here once so
/// that an empty denominator reads the same everywhere.
///
/// ```
/// assert_eq!(haltpoll_linux::share(1, 4), 0.25);
/// assert_eq!(haltpoll_linux::share(5, 0), 0.0);
/// ```
pub fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 / whole as f64 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_are_cut_by_characters() {
        let long = "é".repeat(100);
        assert_eq!(quote(&long), format!("{:?}... (200 bytes in all)", "é".repeat(80)));
        assert_eq!(quote(""), "\"\"");
    }

    #[test]
    fn shares_of_nothing_are_zero() {
        assert_eq!(share(0, 0), 0.0);
        assert_eq!(share(3, 2), 1.5);
    }
}
