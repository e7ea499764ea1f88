//! Periodic wakeups: a client at a fixed rate, a timer. Such a wakeup is predictable to within a
//! few us, but a window from idle entry long enough to reach it costs the whole period. Halting
//! with a timer set just before it and polling a short window around it costs only the window.
//!
//! The detector keeps a moving average of the period and of its deviation from that average, and
//! how often recent periods fell within the window it would have polled. While it catches, it
//! aims at the shortest of the periods that recur: a period that ends after the window and
//! beyond what a poll from idle entry could reach (its wakeup delayed, say, by a late reply, or
//! a long idle among regular ones) counts as a miss but barely moves the aim, since averaging
//! it in would widen the window over both and catch neither for its cost (a message every 1 ms
//! whose reply is late half the time: periods of 1.1 ms and 2-5 ms). A late period a poll could
//! reach, from idle entry or from the window's start, averages in as before: the poll may catch
//! it. When it no longer catches, it follows every period again; and a run of late periods that
//! the catch rate makes unlikely (three in a row at 15 in 16) is a period that has moved, not
//! late replies, so the aim follows it at once instead of after the rate has fallen (32
//! periods): a vCPU whose waits go from microseconds to 1 ms arms timers within a few dozen.

/// Half a window is at least this, ns: the poll has to start a little early even for a perfectly
/// regular wakeup, since the timer's own wake-up varies.
pub const MIN_HALF_WINDOW_NS: u64 = 2_000;

/// The halt before the timer must last at least this, ns, beyond the halt's wake cost, or a poll
/// from idle entry costs little more.
pub const MIN_TIMER_HALT_NS: u64 = 10_000;

/// Catch rate in 1/1024.
const ONE: u32 = 1 << 10;

/// Below this catch rate (in 1/1024) the aim follows every period, late ones too: it has lost the
/// periods it aimed at, or never found them.
const LOCKED_RATE: u16 = (ONE / 8) as u16;

/// The most of a timer's catch rate a decision trusts, in 1/1024: 15 in 16. The rate is high
/// just after a run of periods near the mean, which is also when the deviation, and with it the
/// window, has shrunk; the next periods regress toward the trace's own spread. On bursty traces
/// (a pipe's bursts, redis and pgbench at high rates) timers chosen at a rate of 97-98% caught
/// 81-91%, where a window from idle entry would have caught 97-99%.
const TRUSTED_RATE: u32 = ONE * 15 / 16;

/// A run of late periods less likely than this (in 1/65536: 1 in 1024) at the catch rates it
/// came at is not late replies among the periods aimed at: the period has moved, and the aim
/// follows it at once instead of waiting for the rate to fall below [`LOCKED_RATE`] (32 periods
/// from a steady one). At a rate of 15 in 16 that is three late periods in a row; at 40%, 14.
const UNLIKELY_LATE_RUN: u16 = 64;

/// The detector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Periodic {
    /// Moving average of the period (1/4 of each new one), ns.
    mean_ns: u32,
    /// Moving average of `|period - mean|` (1/4 of each new one), ns.
    dev_ns: u32,
    /// How often a recent period fell within `mean +- half_window` (1/16 of each new one), in
    /// 1/1024.
    catch_rate: u16,
    /// How likely the run of late periods since the last one that was not is, at the catch
    /// rates it came at, in 1/65536 (the product of `1 - rate` over the run).
    late_run_odds: u16,
}

/// A window around the predicted wakeup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Aim {
    /// When polling should start, ns after idle entry.
    pub start_ns: u64,
    /// How long to poll, ns.
    pub window_ns: u64,
    /// The share of recent periods such a window caught, in 1/1024.
    pub catch_rate: u32,
}

impl Periodic {
    /// No history.
    pub const fn new() -> Periodic {
        Periodic { mean_ns: 0, dev_ns: 0, catch_rate: 0, late_run_odds: u16::MAX }
    }

    fn half_window_ns(&self) -> u64 {
        2 * u64::from(self.dev_ns) + MIN_HALF_WINDOW_NS
    }

    /// Records a period of `ns`; one that ends after the window, and further after its start
    /// than `reach_ns` (what a poll could reach: a window from idle entry, or one the timer
    /// starts), is late, not part of the aim, unless a run of them says the period has moved.
    pub fn add(&mut self, ns: u64, reach_ns: u64) {
        // Periods beyond 4 s are not worth a timer; the cap keeps the averages in 32 bits.
        let d = i64::from(u32::try_from(ns).unwrap_or(u32::MAX));
        let (mean, dev) = (i64::from(self.mean_ns), i64::from(self.dev_ns));
        let half = self.half_window_ns() as i64;
        let err = (d - mean).abs();
        let locked = self.catch_rate >= LOCKED_RATE;
        self.catch_rate = stepped_rate(self.catch_rate, err <= half, ONE as u16);
        // A late period a window from the aim's start could reach averages in: a ping-pong
        // partner that halted replies a wake-up late (1.07 ms for 1 ms), and a window over both
        // catches that reply, so the partner's next reply comes on time again; aimed at the
        // on-time replies alone, a late one makes the next late too, in runs.
        let beyond = d > mean + half && (d - (mean - half).max(0)) as u64 > reach_ns;
        if locked && beyond && !self.late_run_moves() {
            // Late: a step of at most half a window, so a run of late ones still shifts the aim
            // (toward a window that would have caught more), but slower than a caught one
            // pulls it back.
            self.mean_ns = (mean + (d - mean).min(half) / 16) as u32;
            return;
        }
        if !beyond {
            self.late_run_odds = u16::MAX;
        }
        // Each stays between its old value and the new sample, so within its type.
        self.mean_ns = (mean + (d - mean) / 4) as u32;
        self.dev_ns = (dev + (err - dev) / 4) as u32;
    }

    /// Counts a late period into the odds of the run it ends, at the catch rate it leaves, and
    /// returns whether the run is now too unlikely for late replies ([`UNLIKELY_LATE_RUN`]).
    fn late_run_moves(&mut self) -> bool {
        let miss = ONE - u32::from(self.catch_rate);
        self.late_run_odds = ((u32::from(self.late_run_odds) * miss) >> 10) as u16;
        self.late_run_odds < UNLIKELY_LATE_RUN
    }

    /// Whether no timer can be aimed, whatever its wake cost: the aim starts at or before the
    /// mean ([`Periodic::aim`]), and a timer needs a halt of [`MIN_TIMER_HALT_NS`] before it.
    /// One comparison, where working the aim out takes a dozen (at think 0, a mean under a
    /// microsecond, it settles most periods' `Predictive::keeps_plan`).
    pub const fn too_soon_for_a_timer(&self) -> bool {
        (self.mean_ns as u64) < MIN_TIMER_HALT_NS
    }

    /// Whether the aim ([`Periodic::aim`]) starts at `ns` (more than 0) or later: its start
    /// alone, from the mean and the deviation.
    pub fn aim_start_at_least(&self, ns: u64) -> bool {
        u64::from(self.mean_ns) >= self.half_window_ns() + ns
    }

    /// The window that would catch the next period if it is like the recent ones.
    pub fn aim(&self) -> Aim {
        let half = self.half_window_ns();
        Aim {
            start_ns: u64::from(self.mean_ns).saturating_sub(half),
            window_ns: 2 * half,
            catch_rate: u32::from(self.catch_rate),
        }
    }
}

/// A catch rate out of `all` (the detector's in 1/1024, [`ONE`]; the governor's timer rate in
/// 1/65536, `u16::MAX`), moved a sixteenth of the way toward all (`caught`) or none, rounded
/// toward the old rate: the step's sign is known, so it is a shift either way, where a signed
/// division by 16 needs a correction toward 0 (5 instructions a period fewer; the same rates,
/// `the_stepped_rate_is_the_signed_step`).
pub(super) const fn stepped_rate(rate: u16, caught: bool, all: u16) -> u16 {
    let (rate, all) = (rate as u32, all as u32);
    // `rate` is at most `all`: each step stays between the two, so within a u16.
    (if caught { rate + ((all - rate) >> 4) } else { rate - (rate >> 4) }) as u16
}

impl Aim {
    /// The catch rate a decision counts on, in 1/1024: the recent rate, at most 15 in 16
    /// (960). A perfectly regular wakeup loses little by it (a timer costs a short
    /// window against a window from idle entry that costs the whole period), and a window from
    /// idle entry has to catch more than 15 in 16 of the periods to win over the timer.
    pub const fn trusted_rate(&self) -> u32 {
        if self.catch_rate < TRUSTED_RATE { self.catch_rate } else { TRUSTED_RATE }
    }
}

impl Default for Periodic {
    fn default() -> Self {
        Periodic::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The next value of a linear congruential generator: jitter the tests can repeat.
    fn lcg(x: u64) -> u64 {
        x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407)
    }

    impl Periodic {
        /// Every late period beyond reach.
        fn add_all(&mut self, ns: u64) {
            self.add(ns, 0);
        }
    }

    #[test]
    fn a_steady_period_is_aimed_at_closely() {
        let mut p = Periodic::new();
        for i in 0..200u64 {
            p.add_all(300_000 + (i % 3) * 500); // 300 us, 0.5 us of jitter
        }
        let aim = p.aim();
        assert!(aim.catch_rate > 1000, "{aim:?}");
        assert!((295_000..300_000).contains(&aim.start_ns), "{aim:?}");
        assert!(aim.window_ns < 8_000, "{aim:?}");
    }

    #[test]
    fn a_decision_trusts_a_rate_of_15_in_16_at_most() {
        let mut p = Periodic::new();
        for _ in 0..200 {
            p.add_all(300_000);
        }
        let aim = p.aim();
        assert!(aim.catch_rate > TRUSTED_RATE && aim.trusted_rate() == TRUSTED_RATE, "{aim:?}");
        let low = Aim { catch_rate: 700, ..aim };
        assert_eq!(low.trusted_rate(), 700);
    }

    #[test]
    fn random_periods_give_a_wide_window_or_a_low_rate() {
        let mut p = Periodic::new();
        let mut x: u64 = 1;
        for _ in 0..500 {
            x = lcg(x);
            p.add_all(10_000 + (x >> 33) % 1_000_000);
        }
        let aim = p.aim();
        assert!(aim.window_ns > 200_000 || aim.catch_rate < 400, "{aim:?}");
    }

    /// A message every 1 ms (40 us of jitter), its reply late (2-5 ms) six times in ten, with
    /// `reach_ns` as what a poll could reach.
    fn late_replies(reach_ns: u64) -> Aim {
        let mut p = Periodic::new();
        let mut x: u64 = 7;
        for i in 0..2_000u64 {
            x = lcg(x);
            let jitter = (x >> 33) % 40_000;
            p.add(if i % 10 < 4 { 1_050_000 + jitter } else { 2_000_000 + (x >> 33) % 3_000_000 }, reach_ns);
        }
        p.aim()
    }

    #[test]
    fn late_periods_do_not_widen_the_aim_at_the_short_ones() {
        // Beyond reach: the window stays around 1 ms and catches the four in ten, where
        // averaging all of them would span 1-5 ms.
        let aim = late_replies(0);
        assert!((900_000..1_060_000).contains(&aim.start_ns), "{aim:?}");
        assert!(aim.start_ns + aim.window_ns >= 1_090_000 && aim.window_ns < 300_000, "{aim:?}");
        assert!((300..500).contains(&aim.catch_rate), "{aim:?}");
    }

    #[test]
    fn late_periods_within_reach_of_a_poll_still_average_in() {
        // All within what a poll from idle entry reaches: as before, one window over both.
        let aim = late_replies(u64::MAX);
        assert!(aim.window_ns > 1_000_000, "{aim:?}");
    }

    #[test]
    fn a_period_that_moves_for_good_is_followed() {
        let mut p = Periodic::new();
        for _ in 0..500 {
            p.add_all(300_000);
        }
        for _ in 0..200 {
            p.add_all(900_000);
        }
        let aim = p.aim();
        assert!(aim.catch_rate > 900 && (890_000..900_000).contains(&aim.start_ns), "{aim:?}");
    }

    #[test]
    fn a_late_reply_a_window_from_the_aims_start_could_reach_widens_the_aim() {
        // A ping-pong at 1 ms whose partner halted, three times in ten, and replied a wake-up
        // (70 us) late; a poll reaches 200 us. A window from idle entry cannot reach 1.07 ms,
        // one from the aim's start can: the aim spans both, within what a poll reaches.
        let mut p = Periodic::new();
        let mut x: u64 = 3;
        for _ in 0..2_000u64 {
            x = lcg(x);
            p.add(if (x >> 33) % 10 < 3 { 1_070_000 } else { 1_000_000 + (x >> 40) % 2_000 }, 200_000);
        }
        let aim = p.aim();
        assert!(aim.start_ns <= 1_000_000 && aim.start_ns + aim.window_ns >= 1_070_000, "{aim:?}");
        assert!(aim.window_ns <= 200_000, "{aim:?}");
    }

    #[test]
    fn a_run_of_late_periods_the_rate_cannot_explain_is_followed_at_once() {
        // Waits of 5 us (think 0), then of 1 ms: three late periods in a row at a rate of 15
        // in 16 are a period that moved, not late replies, and the aim is at 1 ms within 20
        // periods, where waiting for the rate to fall below its lock would take 32.
        let mut p = Periodic::new();
        for _ in 0..500 {
            p.add(5_000, 200_000);
        }
        for _ in 0..20 {
            p.add(1_000_000, 200_000);
        }
        let aim = p.aim();
        assert!(aim.start_ns <= 1_000_000 && aim.start_ns + aim.window_ns >= 1_000_000, "{aim:?}");
        assert!(aim.window_ns <= 200_000, "{aim:?}");
    }

    #[test]
    fn the_stepped_rate_is_the_signed_step() {
        // Both scales it is used at: the detector's (1/1024) and the timer rate's (1/65536).
        for all in [ONE as u16, u16::MAX] {
            for rate in 0..=all {
                for caught in [false, true] {
                    let signed = i64::from(rate) + (if caught { i64::from(all) } else { 0 } - i64::from(rate)) / 16;
                    assert_eq!(i64::from(stepped_rate(rate, caught, all)), signed, "{rate} {caught} {all}");
                }
            }
        }
    }

    #[test]
    fn extremes_stay_in_range() {
        let mut p = Periodic::new();
        for ns in [u64::MAX, 0, u64::MAX, u64::MAX, 0, 1] {
            p.add_all(ns);
            let aim = p.aim();
            assert!(aim.catch_rate <= ONE && aim.window_ns >= 2 * MIN_HALF_WINDOW_NS);
        }
    }

    proptest::proptest! {
        /// `too_soon_for_a_timer` rules out only detectors whose aim starts before a timer's
        /// least halt, so that `Predictive::keeps_plan` may skip working the aim out.
        #[test]
        fn too_soon_for_a_timer_means_the_aim_starts_too_soon(
            periods in proptest::collection::vec(proptest::prop_oneof![0u64..20_000, 0u64..1 << 33], 1..200),
            reach in 0u64..1 << 22,
        ) {
            let mut p = Periodic::new();
            for ns in periods {
                p.add(ns, reach);
                proptest::prop_assert!(!p.too_soon_for_a_timer() || p.aim().start_ns < MIN_TIMER_HALT_NS);
            }
        }

        /// `aim_start_at_least` is the aim's start tested directly, so that `Predictive::plan` may
        /// test it before the search and skip the timer's aim after it.
        #[test]
        fn aim_start_at_least_is_the_aims_start(
            periods in proptest::collection::vec(proptest::prop_oneof![0u64..40_000, 0u64..1 << 33], 1..200),
            reach in 0u64..1 << 22,
            ns in 1u64..1 << 33,
        ) {
            let mut p = Periodic::new();
            for d in periods {
                p.add(d, reach);
                for ns in [ns, MIN_TIMER_HALT_NS, u64::from(p.mean_ns).saturating_sub(p.half_window_ns()).max(1)] {
                    proptest::prop_assert_eq!(p.aim_start_at_least(ns), p.aim().start_ns >= ns);
                }
            }
        }
    }
}
