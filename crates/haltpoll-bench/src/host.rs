//! The host side of a thread: the CPUs the process may use, pinning a thread to one, and what a
//! thread has cost so far (CPU time, and the context switches that tell a sleep from a
//! preemption). The vCPU threads measure themselves with it, and so does any benchmark that
//! wants its threads' costs counted the same way.

use std::io;
use std::time::Duration;

use rustix::thread::{CpuSet, sched_getaffinity, sched_setaffinity};
use rustix::time::{ClockId, clock_gettime};

/// The host CPUs this process may run on, in order.
pub fn host_cpus() -> io::Result<Vec<usize>> {
    let set = sched_getaffinity(None)?;
    Ok((0..CpuSet::MAX_CPU).filter(|&cpu| set.is_set(cpu)).collect())
}

/// Pins the calling thread to host CPU `cpu`; false if the host refused (the thread then stays
/// where it was, which a caller may accept as best effort).
pub fn pin(cpu: usize) -> bool {
    let mut set = CpuSet::new();
    set.set(cpu);
    sched_setaffinity(None, &set).is_ok()
}

/// What the calling thread has cost since it started, or between two readings
/// ([`ThreadUsage::since`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThreadUsage {
    /// CPU time, user and system (for a vCPU thread: host and guest mode).
    pub cpu_time: Duration,
    /// Involuntary context switches: the scheduler took the CPU while the thread could still
    /// run, because another task was runnable there.
    pub preempted: u64,
    /// Voluntary context switches: the thread gave up the CPU itself, each one a sleep (a futex
    /// wait that blocked, a halted vCPU the host did not poll through, a `nanosleep`).
    pub slept: u64,
}

impl ThreadUsage {
    /// The calling thread's usage now. `getrusage(RUSAGE_THREAD)` rather than
    /// `/proc/thread-self/status`: the same kernel counters without opening and parsing a file
    /// between two measured operations.
    pub fn now() -> ThreadUsage {
        let t = clock_gettime(ClockId::ThreadCPUTime);
        let cpu_time = Duration::new(u64::try_from(t.tv_sec).unwrap_or(0), u32::try_from(t.tv_nsec).unwrap_or(0));
        // SAFETY: all-zero bytes are a valid `rusage` (integers and timevals).
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: RUSAGE_THREAD asks about the calling thread; `usage` is a valid, writable rusage.
        // It cannot fail for the calling thread; were it to, the switches read as 0 and a
        // difference of two readings stays 0 rather than wrong.
        if unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) } != 0 {
            return ThreadUsage { cpu_time, preempted: 0, slept: 0 };
        }
        ThreadUsage {
            cpu_time,
            preempted: u64::try_from(usage.ru_nivcsw).unwrap_or(0),
            slept: u64::try_from(usage.ru_nvcsw).unwrap_or(0),
        }
    }

    /// What the thread cost from `earlier` to `self`.
    pub fn since(&self, earlier: &ThreadUsage) -> ThreadUsage {
        ThreadUsage {
            cpu_time: self.cpu_time.saturating_sub(earlier.cpu_time),
            preempted: self.preempted.saturating_sub(earlier.preempted),
            slept: self.slept.saturating_sub(earlier.slept),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sleep_counts_and_cpu_time_moves() {
        let before = ThreadUsage::now();
        std::thread::sleep(Duration::from_millis(1));
        let mut x = 0u64;
        for i in 0..1_000_000u64 {
            x = std::hint::black_box(x.wrapping_add(i));
        }
        let used = ThreadUsage::now().since(&before);
        assert!(used.cpu_time > Duration::ZERO);
        assert!(used.slept >= 1, "a 1 ms sleep is a voluntary switch");
    }

    #[test]
    fn this_process_may_run_somewhere() {
        let cpus = host_cpus().unwrap();
        assert!(!cpus.is_empty());
        assert!(cpus.windows(2).all(|w| w[0] < w[1]));
    }
}
