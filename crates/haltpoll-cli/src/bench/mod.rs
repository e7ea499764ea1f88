//! The benchmarks' measuring and summarising, apart from the commands that present them
//! (`cmd::bench`): the thread harness runs here, and both benches go from repetitions to rows,
//! ratios and targets through one [`summary`]. (`bench vm`'s per-run figures come from the
//! VMM's report; its rows and targets sit beside the command, in `cmd::bench::vm::cells`,
//! because they exist only where the VMM does.)

pub mod summary;
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
