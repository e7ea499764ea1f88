//! What a halt costs this vCPU, learnt as it runs: the way into HLT, the waker's IPI and the
//! wake-up that follows, and the timer's wake-up with its spread. The driver tells the
//! governor the halt's cost (a caught wakeup saves one, so polling is budgeted net of it) and
//! aims its timer early by the spread.
//!
//! Integers only (the guest has no FPU state to save): moving averages in ns, each new sample
//! weighing 1/8, so one preempted wake-up moves them little and a change of the host's
//! behaviour shows within a few dozen halts.
//!
//! ```
//! use haltpoll_guest::wake_cost::WakeCostMeter;
//! let mut meter = WakeCostMeter::new(2_000);
//! assert_eq!(meter.halt_cost_ns(), None, "no wake-up seen yet");
//! meter.ipi_sent(1_000);
//! meter.ipi_woke(60_000);
//! assert_eq!(meter.halt_cost_ns(), Some(63_000));
//! ```

use haltpoll_abi::WakeCosts;

/// Moving averages of the costs of one vCPU's halts, ns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WakeCostMeter {
    halt_entry_ns: u64,
    ipi_send: Average,
    ipi_wake: Average,
    timer_wake: Average,
    /// Mean absolute deviation of the timer's wake-ups from `timer_wake`.
    timer_spread: Average,
}

/// A moving average that takes its first sample whole.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Average {
    ns: u64,
    samples: u64,
}

impl Average {
    fn add(&mut self, sample_ns: u64) {
        self.ns = if self.samples == 0 {
            sample_ns
        } else {
            // 7/8 of the old and 1/8 of the new, without overflow for any u64.
            self.ns - self.ns / 8 + sample_ns / 8
        };
        self.samples += 1;
    }
}

impl WakeCostMeter {
    /// A meter that knows only the way into HLT and back, `halt_entry_ns` (measured at load).
    pub const fn new(halt_entry_ns: u64) -> WakeCostMeter {
        let none = Average { ns: 0, samples: 0 };
        WakeCostMeter { halt_entry_ns, ipi_send: none, ipi_wake: none, timer_wake: none, timer_spread: none }
    }

    /// A waker's IPI to this vCPU took `ns` to send.
    pub fn ipi_sent(&mut self, ns: u64) {
        self.ipi_send.add(ns);
    }

    /// An IPI woke this vCPU from a halt `ns` after its waker's stamp.
    pub fn ipi_woke(&mut self, ns: u64) {
        self.ipi_wake.add(ns);
    }

    /// The timer woke this vCPU from a halt `ns` after it was due.
    pub fn timer_woke(&mut self, ns: u64) {
        if self.timer_wake.samples > 0 {
            self.timer_spread.add(ns.abs_diff(self.timer_wake.ns));
        }
        self.timer_wake.add(ns);
    }

    /// What one halt costs, ns: the way in, the waker's IPI and the wake-up; `None` until an
    /// IPI's wake-up has been measured (before that, the governor keeps its own figure).
    pub fn halt_cost_ns(&self) -> Option<u64> {
        (self.ipi_wake.samples > 0).then(|| self.halt_entry_ns + self.ipi_send.ns + self.ipi_wake.ns)
    }

    /// How much earlier than asked the timer is armed, ns: its wake-up's spread, so that the
    /// timer's wake-up ends before the wakeup it aims at more often than not.
    pub const fn timer_lead_ns(&self) -> u64 {
        self.timer_spread.ns
    }

    /// The figures for the report.
    pub fn report(&self) -> WakeCosts {
        WakeCosts {
            halt_cost_ns: self.halt_cost_ns().unwrap_or(0),
            halt_entry_ns: self.halt_entry_ns,
            ipi_send_ns: self.ipi_send.ns,
            ipi_wake_ns: self.ipi_wake.ns,
            timer_wake_ns: self.timer_wake.ns,
            timer_spread_ns: self.timer_spread.ns,
            ipi_wakes: self.ipi_wake.samples,
            timer_wakes: self.timer_wake.samples,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn averages_start_at_the_first_sample_and_move_an_eighth() {
        let mut meter = WakeCostMeter::new(0);
        meter.ipi_woke(80_000);
        meter.ipi_woke(0);
        assert_eq!(meter.report().ipi_wake_ns, 70_000);
        assert_eq!(meter.report().ipi_wakes, 2);
        // No overflow at the top of the range.
        meter.ipi_woke(u64::MAX);
        assert!(meter.report().ipi_wake_ns > 70_000);
    }

    #[test]
    fn the_spread_is_the_mean_distance_from_the_average() {
        let mut meter = WakeCostMeter::new(1_000);
        assert_eq!(meter.timer_lead_ns(), 0);
        // Alternating 40 and 80 us: the average settles near 60, the spread near 20.
        for _ in 0..200 {
            meter.timer_woke(40_000);
            meter.timer_woke(80_000);
        }
        let costs = meter.report();
        assert!((55_000..65_000).contains(&costs.timer_wake_ns), "{costs:?}");
        assert!((15_000..25_000).contains(&meter.timer_lead_ns()), "{costs:?}");
        assert_eq!(costs.halt_cost_ns, 0, "timers alone say nothing of an IPI's halt");
        // A steady timer has no spread to speak of.
        let mut steady = WakeCostMeter::new(0);
        for _ in 0..100 {
            steady.timer_woke(60_000);
        }
        assert_eq!(steady.timer_lead_ns(), 0);
    }

    #[test]
    fn the_halt_cost_adds_the_way_in_the_send_and_the_wake() {
        let mut meter = WakeCostMeter::new(13_000);
        meter.ipi_sent(2_000);
        assert_eq!(meter.halt_cost_ns(), None);
        meter.ipi_woke(60_000);
        assert_eq!(meter.halt_cost_ns(), Some(75_000));
        assert_eq!(meter.report().halt_cost_ns, 75_000);
    }
}
