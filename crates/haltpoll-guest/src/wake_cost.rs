//! What a halt costs this vCPU, learnt as it runs: the way into HLT, the waker's IPI and the
//! wake-up that follows, and the timer's wake-up with its spread. The driver tells the
//! governor the halt's cost (a caught wakeup saves one, so polling is budgeted net of it) and
//! aims its timer early by the spread.
//!
//! Integers only (the guest has no FPU state to save): moving quantiles in ns, each new sample
//! moving the estimate 1/16 of its value towards it (never past it). Quantiles, not means: on a
//! busy host a vCPU thread that waits for its CPU wakes milliseconds late, which is the host's
//! scheduling, not what a halt costs the host (a waiting thread burns no CPU, and a polling vCPU
//! preempted then is as late); a mean takes those in whole. The IPI's wake-up, which the halt
//! cost is made of, is its lower quartile, which ignores up to three in four such late wake-ups
//! and starts at the lowest of the first few; the timer's wake-up, which aims a timer, its
//! median. The step is a share of the estimate, so it settles within a few dozen halts whatever
//! the scale.
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

/// Moving quantiles of the costs of one vCPU's halts, ns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WakeCostMeter {
    halt_entry_ns: u64,
    ipi_send: Quantile,
    /// The lower quartile.
    ipi_wake: Quantile,
    timer_wake: Quantile,
    /// Median distance of the timer's wake-ups from `timer_wake`.
    timer_spread: Quantile,
}

/// A moving quantile (the median unless stepped down faster) that takes its first sample whole.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Quantile {
    ns: u64,
    samples: u64,
}

/// Timer wake-ups measured before the timer's own median alone aims the timer.
pub const TIMER_WAKES_TRUSTED: u64 = 16;

/// The timer's lead, in spreads (median distances from the median wake-up). Two: for a
/// wake-up spread as a normal distribution, the median distance is about 0.67 standard
/// deviations, so two of them are 1.35, which one wake-up in eleven exceeds on the late side;
/// one spread leaves one in four late, each a wakeup the window after the timer misses.
pub const TIMER_LEAD_SPREADS: u64 = 2;

/// IPI wake-ups whose lowest starts the IPI's lower quartile ([`WakeCostMeter::ipi_woke`]).
pub const IPI_WAKES_LOWEST: u64 = 4;

/// The smallest step of a moving median, ns: an estimate near 0 can still move.
const MIN_STEP_NS: u64 = 64;

impl Quantile {
    /// One step towards the sample: up when it is above, down when below, so the estimate
    /// settles where as many samples fall above as below (the median), however far off the
    /// outliers are.
    fn add(&mut self, sample_ns: u64) {
        self.step(sample_ns, 1);
    }

    /// As [`add`](Self::add), with steps down `down` times as long as steps up: the estimate
    /// settles where `down` samples fall above it for every one below, the `1 / (down + 1)`
    /// quantile.
    fn step(&mut self, sample_ns: u64, down: u64) {
        let step = (self.ns / 16).max(MIN_STEP_NS);
        self.ns = if self.samples == 0 {
            sample_ns
        } else if sample_ns > self.ns {
            self.ns + step.min(sample_ns - self.ns)
        } else {
            self.ns - step.saturating_mul(down).min(self.ns - sample_ns)
        };
        self.samples += 1;
    }
}

impl WakeCostMeter {
    /// A meter that knows only the way into HLT and back, `halt_entry_ns` (measured at load).
    pub const fn new(halt_entry_ns: u64) -> WakeCostMeter {
        let none = Quantile { ns: 0, samples: 0 };
        WakeCostMeter { halt_entry_ns, ipi_send: none, ipi_wake: none, timer_wake: none, timer_spread: none }
    }

    /// A waker's IPI to this vCPU took `ns` to send.
    pub fn ipi_sent(&mut self, ns: u64) {
        self.ipi_send.add(ns);
    }

    /// An IPI woke this vCPU from a halt `ns` after its waker's stamp.
    ///
    /// The lowest of the first [`IPI_WAKES_LOWEST`] samples starts the lower quartile, not the
    /// first: a vCPU that halts only while its partner is preempted (think 0 on a loaded host,
    /// 10-20 halts a run) often wakes late on its first halt too, and from a first sample of a
    /// millisecond or more the quartile's steps down (three sixteenths each) had not come back
    /// in a run: halt costs of 0.26-1.6 ms, and windows to a few ms through the preemptions.
    pub fn ipi_woke(&mut self, ns: u64) {
        if (1..IPI_WAKES_LOWEST).contains(&self.ipi_wake.samples) && ns < self.ipi_wake.ns {
            self.ipi_wake = Quantile { ns, samples: self.ipi_wake.samples + 1 };
        } else {
            self.ipi_wake.step(ns, 3);
        }
    }

    /// The timer woke this vCPU from a halt `ns` after it was due.
    ///
    /// The timer's median starts from the IPI's lower quartile where that is known, not from
    /// the first timer's wake-up: the host wakes a halted vCPU the same way for either, and a
    /// first sample taken whole may be a preempted wake-up of milliseconds, from which sixteen
    /// steps of a sixteenth come down only to a third of it. Above the period, the governor
    /// then aims no timer, no timer fires, and the median never comes down again.
    pub fn timer_woke(&mut self, ns: u64) {
        if self.timer_wake.samples == 0 && self.ipi_wake.samples > 0 {
            self.timer_wake = Quantile { ns: self.ipi_wake.ns, samples: 1 };
        }
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

    /// How long after it is due the timer gets the vCPU running, ns: its median wake-up, or,
    /// until [`TIMER_WAKES_TRUSTED`] timers have fired, the IPI's where that is lower (the host
    /// wakes a halted vCPU either way); `None` until either was measured.
    ///
    /// The lower of the two at first because the timer's own median can only come down as
    /// timers fire, and a governor told a wake-up longer than the period aims no timer: one
    /// preempted wake-up (milliseconds on a loaded host, taken whole as the first sample) would
    /// shut the timer path before it learnt anything. After that, the timer's own: on a loaded
    /// host it wakes later than the IPI's lower quartile says, and a timer aimed by that would
    /// wake the vCPU after the wakeup it is for.
    pub fn timer_wake_ns(&self) -> Option<u64> {
        match (self.timer_wake.samples, self.ipi_wake.samples > 0) {
            (TIMER_WAKES_TRUSTED.., _) | (1.., false) => Some(self.timer_wake.ns),
            (1.., true) => Some(self.timer_wake.ns.min(self.ipi_wake.ns)),
            (0, ipi) => ipi.then_some(self.ipi_wake.ns),
        }
    }

    /// How much earlier than asked the timer is armed, ns: [`TIMER_LEAD_SPREADS`] times its
    /// wake-up's spread, so that the timer's wake-up ends before the window it aims at opens in
    /// about nine in ten (the driver then polls on to the window's end, so the lead costs its
    /// length in polling and no catch); at most the wake-up itself, since a spread made of
    /// preempted wake-ups (milliseconds) would arm every timer at once, which is a poll from
    /// idle entry.
    pub fn timer_lead_ns(&self) -> u64 {
        self.timer_spread.ns.saturating_mul(TIMER_LEAD_SPREADS).min(self.timer_wake_ns().unwrap_or(0))
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
    fn medians_start_at_the_first_sample_and_step_a_sixteenth() {
        let mut meter = WakeCostMeter::new(0);
        meter.timer_woke(80_000);
        meter.timer_woke(0);
        assert_eq!(meter.report().timer_wake_ns, 75_000);
        assert_eq!(meter.report().timer_wakes, 2);
        // Never past the sample, and no overflow at the top of the range.
        meter.timer_woke(75_100);
        assert_eq!(meter.report().timer_wake_ns, 75_100);
        meter.timer_woke(u64::MAX);
        assert!(meter.report().timer_wake_ns > 75_100);
        // The IPI's wake-up steps down three times as far as up (after the first few, whose
        // lowest it takes).
        for _ in 0..IPI_WAKES_LOWEST {
            meter.ipi_woke(80_000);
        }
        meter.ipi_woke(0);
        assert_eq!(meter.report().ipi_wake_ns, 80_000 - 3 * 5_000);
    }

    #[test]
    fn preempted_wake_ups_do_not_move_the_quantiles_far() {
        // 60 us wake-ups, one in three 3 ms late (the vCPU thread waited for its host CPU).
        let mut meter = WakeCostMeter::new(0);
        for i in 0..600 {
            meter.timer_woke(if i % 3 == 0 { 3_000_000 } else { 60_000 });
        }
        let wake = meter.report().timer_wake_ns;
        assert!((60_000..70_000).contains(&wake), "{wake}");
        // Two in three late: the median goes with them, the IPI's lower quartile does not.
        let mut meter = WakeCostMeter::new(0);
        for i in 0..600 {
            meter.ipi_woke(if i % 3 == 0 { 60_000 } else { 3_000_000 });
        }
        let wake = meter.report().ipi_wake_ns;
        assert!((60_000..70_000).contains(&wake), "{wake}");
    }

    #[test]
    fn the_spread_is_the_mean_distance_from_the_average() {
        let mut meter = WakeCostMeter::new(1_000);
        assert_eq!(meter.timer_lead_ns(), 0);
        // Alternating 40 and 80 us: the median settles between them, the spread near 20.
        for _ in 0..200 {
            meter.timer_woke(40_000);
            meter.timer_woke(80_000);
        }
        let costs = meter.report();
        assert!((40_000..=80_000).contains(&costs.timer_wake_ns), "{costs:?}");
        assert!((30_000..50_000).contains(&meter.timer_lead_ns()), "two spreads: {costs:?}");
        assert_eq!(costs.halt_cost_ns, 0, "timers alone say nothing of an IPI's halt");
        // A steady timer has no spread to speak of.
        let mut steady = WakeCostMeter::new(0);
        for _ in 0..100 {
            steady.timer_woke(60_000);
        }
        assert_eq!(steady.timer_lead_ns(), 0);
    }

    #[test]
    fn the_timer_wake_falls_back_on_the_ipi_s_until_a_timer_fires() {
        let mut meter = WakeCostMeter::new(0);
        assert_eq!(meter.timer_wake_ns(), None);
        meter.ipi_woke(60_000);
        assert_eq!(meter.timer_wake_ns(), Some(60_000));
        // The timer's median starts at the IPI's and steps a sixteenth towards the timer's.
        meter.timer_woke(50_000);
        assert_eq!(meter.timer_wake_ns(), Some(60_000 - 60_000 / 16));
    }

    #[test]
    fn a_preempted_first_timer_wake_up_does_not_shut_the_timer_out() {
        // The first timer woke 3 ms late, the next 20 ms: the IPI's 60 us holds, and the lead
        // is at most that.
        let mut meter = WakeCostMeter::new(0);
        meter.ipi_woke(60_000);
        meter.timer_woke(3_000_000);
        meter.timer_woke(20_000_000);
        assert_eq!(meter.timer_wake_ns(), Some(60_000));
        assert_eq!(meter.timer_lead_ns(), 60_000);
        // Sixteen of them leave the median within a few IPI wake-ups (it started there, and
        // moves a sixteenth at a time): timers keep firing and keep teaching it.
        for _ in 2..TIMER_WAKES_TRUSTED {
            meter.timer_woke(3_000_000);
        }
        assert!(meter.timer_wake_ns().unwrap() < 200_000, "{:?}", meter.report());
        // A timer that really wakes that late moves it there, step by step.
        for _ in 0..100 {
            meter.timer_woke(3_000_000);
        }
        assert!(meter.timer_wake_ns().unwrap() > 1_000_000, "{:?}", meter.report());
    }

    #[test]
    fn a_late_first_ipi_wake_up_gives_way_to_a_lower_one() {
        // The first halt woke 1.5 ms late (a preempted vCPU thread), the next ones in 60 us.
        let mut meter = WakeCostMeter::new(0);
        meter.ipi_woke(1_500_000);
        meter.ipi_woke(60_000);
        assert_eq!(meter.report().ipi_wake_ns, 60_000);
        meter.ipi_woke(2_000_000);
        meter.ipi_woke(50_000);
        assert_eq!(meter.report().ipi_wake_ns, 50_000, "still among the first {IPI_WAKES_LOWEST}");
        // After them, a quartile's steps: up a sixteenth, down three.
        meter.ipi_woke(10_000);
        assert_eq!(meter.report().ipi_wake_ns, 50_000 - 3 * (50_000 / 16));
        assert_eq!(meter.report().ipi_wakes, 5);
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
