//! What a thread costs while it waits: its CPU time (`CLOCK_THREAD_CPUTIME_ID`, user and
//! system) and how often it went to sleep (voluntary context switches), and where it runs.

use std::fs;

use rustix::thread::{CpuSet, sched_getaffinity, sched_setaffinity};
use rustix::time::{ClockId, clock_gettime};

/// A reading of the calling thread's counters.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ThreadCost {
    cpu_ns: u64,
    /// None where /proc cannot say.
    sleeps: Option<u64>,
}

impl ThreadCost {
    /// The calling thread's counters now.
    pub(crate) fn now() -> ThreadCost {
        let t = clock_gettime(ClockId::ThreadCPUTime);
        let cpu_ns = u64::try_from(t.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(t.tv_nsec).unwrap_or(0);
        ThreadCost { cpu_ns, sleeps: voluntary_switches() }
    }

    /// (CPU ns, sleeps) from `earlier` to `self`.
    pub(crate) fn since(&self, earlier: &ThreadCost) -> (u64, Option<u64>) {
        let sleeps = match (self.sleeps, earlier.sleeps) {
            (Some(a), Some(b)) => Some(a.saturating_sub(b)),
            _ => None,
        };
        (self.cpu_ns.saturating_sub(earlier.cpu_ns), sleeps)
    }
}

/// `voluntary_ctxt_switches` of the calling thread: each is a sleep (a futex wait that
/// blocked, a `nanosleep`, ...), not a preemption.
fn voluntary_switches() -> Option<u64> {
    let status = fs::read_to_string("/proc/thread-self/status").ok()?;
    parse_voluntary_switches(&status)
}

fn parse_voluntary_switches(status: &str) -> Option<u64> {
    status.lines().find_map(|l| l.strip_prefix("voluntary_ctxt_switches:")).and_then(|v| v.trim().parse().ok())
}

/// The first two CPUs this process may run on, to put the two threads on different CPUs;
/// None if it may run on only one.
pub(crate) fn two_cpus() -> Option<(usize, usize)> {
    let allowed = sched_getaffinity(None).ok()?;
    let mut cpus = (0..CpuSet::MAX_CPU).filter(|&c| allowed.is_set(c));
    Some((cpus.next()?, cpus.next()?))
}

/// Pins the calling thread to `cpu` (best effort: a refusal leaves it where it was).
pub(crate) fn pin(cpu: usize) {
    let mut set = CpuSet::new();
    set.set(cpu);
    let _ = sched_setaffinity(None, &set);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status() {
        let status = "Name:\tx\nvoluntary_ctxt_switches:\t17\nnonvoluntary_ctxt_switches:\t3\n";
        assert_eq!(parse_voluntary_switches(status), Some(17));
        assert_eq!(parse_voluntary_switches("Name:\tx\n"), None);
    }

    #[test]
    fn a_sleep_counts_and_cpu_time_moves() {
        let before = ThreadCost::now();
        std::thread::sleep(std::time::Duration::from_millis(1));
        let mut x = 0u64;
        for i in 0..1_000_000u64 {
            x = std::hint::black_box(x.wrapping_add(i));
        }
        let (cpu, sleeps) = ThreadCost::now().since(&before);
        assert!(cpu > 0);
        if let Some(s) = sleeps {
            assert!(s >= 1, "a 1 ms sleep is a voluntary switch");
        }
    }
}
