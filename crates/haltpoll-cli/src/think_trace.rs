//! Think times from a recorded trace (`bench vm --think-trace`, `vm pingpong --think-trace`):
//! the guest's workload thinks for the idle periods a real CPU had, in their order.

use anyhow::{Context, Result};

use haltpoll_linux::trace::{self as traces, IdlePeriod};

/// The longest think time a think trace gives, ns: longer idle periods are all "long" to
/// either governor (above any ceiling and the predictive histogram's last edge), and the cut
/// keeps a run's length bounded.
pub const THINK_TRACE_CAP_NS: u64 = 10_000_000;

/// The think times a trace gives, ns, in order: the idle periods of the CPU with the most of
/// them, each cut to [`THINK_TRACE_CAP_NS`], at most `limit` of them.
pub fn read_think_trace(path: &std::path::Path, limit: usize) -> Result<Vec<u64>> {
    let trace = traces::read(path, None).with_context(|| format!("cannot read the think trace {}", path.display()))?;
    let cpu = trace
        .cpus
        .iter()
        .copied()
        .max_by_key(|&cpu| trace.periods.iter().filter(|p| p.cpu == cpu).count())
        .with_context(|| format!("the think trace {} has no idle periods", path.display()))?;
    Ok(trace
        .periods
        .iter()
        .filter(|p: &&IdlePeriod| p.cpu == cpu)
        .map(|p| p.idle_ns.min(THINK_TRACE_CAP_NS))
        .take(limit)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_think_trace_is_the_busiest_cpus_periods_in_order_cut_at_10_ms() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("idle.txt");
        std::fs::write(&path, "# cpu 0\n5\n# cpu 3\n30\n20000000\n10\n7\n").unwrap();
        assert_eq!(read_think_trace(&path, 100).unwrap(), [30, THINK_TRACE_CAP_NS, 10, 7]);
        assert_eq!(read_think_trace(&path, 2).unwrap(), [30, THINK_TRACE_CAP_NS], "at most the limit");
        std::fs::write(&path, "# nothing but a comment\n").unwrap();
        let empty = read_think_trace(&path, 100).unwrap_err();
        assert!(format!("{empty:#}").contains("no idle periods"), "{empty:#}");
    }
}
