//! Linux's cpuidle as sysfs shows it: the driver and governor
//! (`devices/system/cpu/cpuidle/`), and per CPU each idle state's counters
//! (`devices/system/cpu/cpuN/cpuidle/stateK/`), plus the rates between two readings.
//!
//! # What the counters can tell about polling
//!
//! Per state the kernel counts entries (`usage`), time in µs (`time`), and two misses: `above`
//! (the state lasted less than its target residency while a shallower state was enabled: too
//! deep) and `below` (it lasted long enough for the next deeper state: too shallow). For the
//! POLL state `above` is always 0, as no state is shallower, and `below` counts every poll
//! longer than HALT's 1 µs residency, whatever ended it. Neither says whether a poll timed out.
//!
//! The haltpoll governor answers that through the order of states instead: it picks HALT
//! right after a POLL only when that poll timed out, and otherwise only when the CPU's window
//! is 0 (then it never polls). So over an interval, on each CPU, the polls that ended in a
//! halt number at most `min(polls, halts)`, exactly that when the window was never 0, and
//! the idle periods number `polls + halts - timed-out polls`. [`Rates`] reports these as
//! bounds; a `perf` trace (`haltpoll replay`) gives the exact sequence.

use serde::Serialize;

use crate::sysfs::{Sysfs, SysfsError};

/// The cpuidle directory, under the sysfs root.
pub const CPUIDLE_DIR: &str = "devices/system/cpu/cpuidle";
/// The CPUs' directory, under the sysfs root.
pub const CPU_DIR: &str = "devices/system/cpu";
/// The name the cpuidle core gives its poll state.
pub const POLL_STATE_NAME: &str = "POLL";

/// One idle state of one CPU.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StateStats {
    /// Its index K in `stateK`.
    pub index: u32,
    /// `name`.
    pub name: String,
    /// `desc`.
    pub desc: Option<String>,
    /// `usage`: times entered.
    pub usage: u64,
    /// `time`: total time in it, µs.
    pub time_us: u64,
    /// `above`: entries that lasted too short for it (too deep).
    pub above: Option<u64>,
    /// `below`: entries that lasted long enough for a deeper state (too shallow).
    pub below: Option<u64>,
    /// `rejected`: entries the state refused.
    pub rejected: Option<u64>,
    /// `disable` is non-zero: the governor may not pick it.
    pub disabled: Option<bool>,
    /// `latency`: exit latency, µs.
    pub latency_us: Option<u64>,
    /// `residency`: target residency, µs.
    pub residency_us: Option<u64>,
}

impl StateStats {
    /// Whether this is the cpuidle core's poll state.
    pub fn is_poll(&self) -> bool {
        self.name == POLL_STATE_NAME
    }
}

/// The idle states of one CPU.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CpuStates {
    /// The CPU number.
    pub cpu: u32,
    /// Its states, by index.
    pub states: Vec<StateStats>,
}

/// A reading of cpuidle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Cpuidle {
    /// `current_driver` (`none` when no driver registered).
    pub driver: Option<String>,
    /// `current_governor` (or `current_governor_ro`).
    pub governor: Option<String>,
    /// `available_governors`.
    pub available_governors: Option<String>,
    /// CPUs that have idle states.
    pub cpus: Vec<CpuStates>,
}

impl Cpuidle {
    /// Reads cpuidle, or `None` if this sysfs has no cpuidle directory at all.
    pub fn read(sys: &Sysfs) -> Result<Option<Cpuidle>, SysfsError> {
        if !sys.path(CPUIDLE_DIR).is_dir() {
            return Ok(None);
        }
        let file = |name: &str| sys.read(format!("{CPUIDLE_DIR}/{name}"));
        let governor = match file("current_governor")? {
            Some(g) => Some(g),
            None => file("current_governor_ro")?,
        };
        let mut cpus = Vec::new();
        for cpu in sys.numbered(CPU_DIR, "cpu")? {
            let dir = format!("{CPU_DIR}/cpu{cpu}/cpuidle");
            let mut states = Vec::new();
            for index in sys.numbered(&dir, "state")? {
                states.push(read_state(sys, &format!("{dir}/state{index}"), index)?);
            }
            if !states.is_empty() {
                cpus.push(CpuStates { cpu, states });
            }
        }
        Ok(Some(Cpuidle {
            driver: file("current_driver")?,
            governor,
            available_governors: file("available_governors")?,
            cpus,
        }))
    }

    /// Whether the haltpoll driver is the one in use.
    pub fn is_haltpoll(&self) -> bool {
        self.driver.as_deref() == Some("haltpoll")
    }
}

/// Why a state's `name`, `usage` and `time` must be there.
const EVERY_STATE: &str = "every cpuidle state has one (is this tree a copy cut short?)";

fn read_state(sys: &Sysfs, dir: &str, index: u32) -> Result<StateStats, SysfsError> {
    let num = |name: &str| sys.read_u64(format!("{dir}/{name}"));
    let required = |name: &str| -> Result<u64, SysfsError> {
        num(name)?.ok_or_else(|| SysfsError::Missing { path: sys.path(format!("{dir}/{name}")), why: EVERY_STATE })
    };
    Ok(StateStats {
        index,
        name: sys.read_required(format!("{dir}/name"), EVERY_STATE)?,
        desc: sys.read(format!("{dir}/desc"))?,
        usage: required("usage")?,
        time_us: required("time")?,
        above: num("above")?,
        below: num("below")?,
        rejected: num("rejected")?,
        disabled: num("disable")?.map(|d| d != 0),
        latency_us: num("latency")?,
        residency_us: num("residency")?,
    })
}

/// What happened on one CPU (or all of them) between two readings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Delta {
    /// Entries into the poll state.
    pub polls: u64,
    /// Entries into any other state (halts, for haltpoll).
    pub halts: u64,
    /// Time polling, µs.
    pub poll_us: u64,
    /// Time in the other states, µs.
    pub halt_us: u64,
    /// At most this many polls ended in a halt: `min(polls, halts)` per CPU (see the module
    /// documentation).
    pub polls_then_halt_max: u64,
}

impl Delta {
    fn add(&mut self, d: &Delta) {
        // Saturating, as every sum of counters here: a counter near 2^64 must not wrap.
        self.polls = self.polls.saturating_add(d.polls);
        self.halts = self.halts.saturating_add(d.halts);
        self.poll_us = self.poll_us.saturating_add(d.poll_us);
        self.halt_us = self.halt_us.saturating_add(d.halt_us);
        self.polls_then_halt_max = self.polls_then_halt_max.saturating_add(d.polls_then_halt_max);
    }

    /// Entries into idle states.
    pub fn entries(&self) -> u64 {
        self.polls.saturating_add(self.halts)
    }

    /// Share of idle time spent polling.
    pub fn poll_share_of_idle(&self) -> f64 {
        haltpoll::share(self.poll_us, self.poll_us.saturating_add(self.halt_us))
    }

    /// At most this share of polls ended in a halt (timed out).
    pub fn poll_to_halt_share_max(&self) -> f64 {
        haltpoll::share(self.polls_then_halt_max, self.polls)
    }
}

/// Rates between two readings.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Rates {
    /// The interval, s.
    pub seconds: f64,
    /// Per CPU present in both readings.
    pub cpus: Vec<(u32, Delta)>,
    /// Over all of them.
    pub total: Delta,
}

impl Rates {
    /// The change from `before` to `after`, `seconds` apart. A counter that went down (a CPU
    /// went offline and came back) counts as 0.
    pub fn between(before: &Cpuidle, after: &Cpuidle, seconds: f64) -> Rates {
        let mut cpus = Vec::new();
        let mut total = Delta::default();
        for a in &after.cpus {
            let Some(b) = before.cpus.iter().find(|b| b.cpu == a.cpu) else { continue };
            let mut d = Delta::default();
            for sa in &a.states {
                let Some(sb) = b.states.iter().find(|s| s.index == sa.index) else { continue };
                let (usage, time) = (sa.usage.saturating_sub(sb.usage), sa.time_us.saturating_sub(sb.time_us));
                let one = if sa.is_poll() {
                    Delta { polls: usage, poll_us: time, ..Delta::default() }
                } else {
                    Delta { halts: usage, halt_us: time, ..Delta::default() }
                };
                d.add(&one);
            }
            d.polls_then_halt_max = d.polls.min(d.halts);
            total.add(&d);
            cpus.push((a.cpu, d));
        }
        Rates { seconds, cpus, total }
    }

    /// `n` per second.
    pub fn per_second(&self, n: u64) -> f64 {
        if self.seconds > 0.0 { n as f64 / self.seconds } else { 0.0 }
    }

    /// Share of the CPUs' time that was idle (`time` counters over interval x CPUs).
    pub fn idle_share(&self) -> f64 {
        let capacity_us = self.seconds * 1e6 * self.cpus.len() as f64;
        let idle_us = self.total.poll_us as f64 + self.total.halt_us as f64;
        if capacity_us > 0.0 { idle_us / capacity_us } else { 0.0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(index: u32, name: &str, usage: u64, time_us: u64) -> StateStats {
        StateStats {
            index,
            name: name.to_owned(),
            desc: None,
            usage,
            time_us,
            above: None,
            below: None,
            rejected: None,
            disabled: None,
            latency_us: None,
            residency_us: None,
        }
    }

    fn reading(cpus: &[(u32, u64, u64, u64, u64)]) -> Cpuidle {
        Cpuidle {
            driver: Some("haltpoll".into()),
            governor: Some("haltpoll".into()),
            available_governors: None,
            cpus: cpus
                .iter()
                .map(|&(cpu, polls, poll_us, halts, halt_us)| CpuStates {
                    cpu,
                    states: vec![state(0, "POLL", polls, poll_us), state(1, "haltpoll idle", halts, halt_us)],
                })
                .collect(),
        }
    }

    #[test]
    fn rates_bound_the_polls_that_ended_in_a_halt_per_cpu() {
        let before = reading(&[(0, 100, 1_000, 50, 10_000), (1, 0, 0, 10, 5_000)]);
        // cpu 0: 400 polls, 100 halts: at most 100 polls timed out.
        // cpu 1: never polled; its 300 halts are halts at a window of 0, not after a poll.
        let after = reading(&[(0, 500, 21_000, 150, 410_000), (1, 0, 0, 310, 505_000)]);
        let r = Rates::between(&before, &after, 2.0);
        assert_eq!(
            r.cpus[0].1,
            Delta { polls: 400, halts: 100, poll_us: 20_000, halt_us: 400_000, polls_then_halt_max: 100 }
        );
        assert_eq!(r.cpus[1].1.polls_then_halt_max, 0);
        assert_eq!(r.total.polls_then_halt_max, 100, "per CPU, not min of the totals (400, 400)");
        assert_eq!(r.total.entries(), 800);
        assert_eq!(r.per_second(r.total.entries()), 400.0);
        assert_eq!(r.total.poll_to_halt_share_max(), 0.25);
        assert_eq!(r.total.poll_share_of_idle(), 20_000.0 / 920_000.0);
        assert_eq!(r.idle_share(), 920_000.0 / 4_000_000.0);
    }

    #[test]
    fn counters_that_go_down_count_as_zero() {
        let before = reading(&[(0, 100, 1_000, 50, 10_000)]);
        let after = reading(&[(0, 10, 100, 60, 20_000), (1, 5, 5, 5, 5)]);
        let r = Rates::between(&before, &after, 1.0);
        assert_eq!(r.cpus.len(), 1, "a CPU not in both readings has no rate");
        assert_eq!(r.total, Delta { polls: 0, halts: 10, poll_us: 0, halt_us: 10_000, polls_then_halt_max: 0 });
        assert_eq!(Rates::between(&before, &after, 0.0).per_second(5), 0.0);
    }
}
