//! Measuring haltpoll: what a thread costs, how repeated runs become one figure, and the thread
//! benchmark of the haltpoll parker against its peers.
//!
//! - `host` (Linux): the CPUs a process may use, pinning a thread to one, and a thread's CPU
//!   time and context switches;
//! - [`quantile`]: the one quantile of the project's measurements;
//! - [`limits`]: the bounds on think times and host windows that every benchmark and the VMM
//!   refuse in the same words;
//! - `summary` (feature `summary`): from repetitions to medians, ratios and targets, the same
//!   way for `bench vm` and `bench threads`;
//! - `threads` (feature `threads`, Linux): two threads hand a message back and forth, for every
//!   way of waiting (the haltpoll parker, spinning, std, crossbeam, parking_lot, executors).
//!
//! # Why the VMM depends on this crate
//!
//! A vCPU thread is measured as a benchmark thread is: pinned to a host CPU, its CPU time and
//! sleeps read with `host::ThreadUsage`; its wake latencies summarised by
//! [`quantile()`](quantile::quantile); its think times refused by [`limits`]. Those pieces are
//! measurement, not VM objects, so they live here, and `haltpoll-vmm` depends on this crate with `default-features = false`: it gets
//! `host`, `quantile` and `limits` (std, libc and rustix only), and none of the thread
//! harness's contenders. The arrow points one way: nothing here knows the VMM, and `bench vm`'s
//! rows, which read the VMM's report, sit beside the command that runs the VMM.
//!
//! ```
//! use haltpoll_bench::quantile::quantile;
//! assert_eq!(quantile(&[30.0, 10.0, 20.0], 0.5), Some(20.0));
//! ```

#![warn(missing_docs)]

#[cfg(target_os = "linux")]
pub mod host;
pub mod limits;
pub mod quantile;
#[cfg(feature = "summary")]
pub mod summary;
#[cfg(all(feature = "threads", target_os = "linux"))]
pub mod threads;

/// The failure a test asks for with `HALTPOLL_TEST_FAIL_RUN=N`: run (or cell) `n` of a
/// benchmark, counted from 1 in the order they run, fails instead of running, so the tests can
/// see what a failure after some finished runs prints (no option makes a later run fail on its
/// own). The tests' knob, documented in docs/testing.md; `None` for every other `n`.
pub fn injected_failure(n: usize) -> Option<String> {
    let asked = std::env::var("HALTPOLL_TEST_FAIL_RUN").ok()?;
    (asked.trim().parse::<usize>().ok()? == n)
        .then(|| format!("run {n} failed on purpose (HALTPOLL_TEST_FAIL_RUN={n})"))
}

// The README's examples are compiled and run as doc tests, so they cannot go stale.
#[cfg(all(doctest, feature = "threads", target_os = "linux"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
