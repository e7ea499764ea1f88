//! The poll loop: wait on the platform until woken or until the window runs out.
//!
//! The loop knows nothing of CPUs, flags or clocks; it drives a [`PollPlatform`] that does. The
//! caller brackets it with the wake protocol ([`WakeFlags::set_polling_and_test`] before,
//! [`WakeFlags::clear_polling_and_test`] after) and reports the outcome to the governor.
//!
//! How often the loop reads the clock is the platform's to say. A relax hint (x86 `pause`) takes
//! tens of ns, and a clock read costs more (it may even exit the VM), so by default the loop reads
//! the clock once per [`POLL_RELAX_COUNT`] waits, as Linux's poll state does. A platform whose
//! wait may sleep (arm64 `WFE` until the event stream ticks, RISC-V `wrs.sto`) says
//! [`PollPlatform::waits_per_clock_read`] = 1: the clock is then read after every wait, and the
//! loop overshoots its window by at most one wait, whatever the wait costs. The [`platform`]
//! module has such platforms for x86_64, aarch64 and riscv64.
//!
//! [`WakeFlags::set_polling_and_test`]: crate::wake::WakeFlags::set_polling_and_test
//! [`WakeFlags::clear_polling_and_test`]: crate::wake::WakeFlags::clear_polling_and_test
//! [`platform`]: crate::platform

/// Waits between two clock reads unless the platform says otherwise: relax hints of a few tens
/// of ns each, about 5 us in all. Reading the clock costs far more than a relax hint, so the
/// window is checked only this often; the loop may overrun the window by up to this many waits.
pub const POLL_RELAX_COUNT: u32 = 200;

/// What the poll loop needs from the machine it runs on.
pub trait PollPlatform {
    /// A monotonic clock in ns (any origin).
    fn now_ns(&mut self) -> u64;
    /// One spin-wait hint (x86 `pause`, `core::hint::spin_loop`).
    fn relax(&mut self);
    /// Whether the wakeup the loop waits for has arrived (NEED_RESCHED, a message, a token).
    fn wake_pending(&mut self) -> bool;

    /// Waits once for the wakeup: returns when what [`wake_pending`](Self::wake_pending) looks
    /// at may have changed, at `deadline_ns` (on [`now_ns`](Self::now_ns)'s clock) or sooner.
    /// It may return early for no reason; it must not sleep unboundedly (a platform whose wait
    /// sleeps bounds it: an event stream, a timed wait) and should return at once when
    /// `deadline_ns` has passed. The default is one [`relax`](Self::relax), which never sleeps.
    fn wait(&mut self, deadline_ns: u64) {
        let _ = deadline_ns;
        self.relax();
    }

    /// How many [`wait`](Self::wait)s the loop makes between two clock reads, which is also
    /// how many it may make past the end of the window: [`POLL_RELAX_COUNT`] for waits of tens
    /// of ns (the default), 1 for a wait that may sleep. 0 is taken as 1.
    fn waits_per_clock_read(&self) -> u32 {
        POLL_RELAX_COUNT
    }

    /// Whether a poll that ends in a wakeup reads the clock once more to time itself (the
    /// default). A caller whose governor ignores how long a successful poll took (Linux's: its
    /// `reflect` learns from halts only) says false and returns to the woken work a clock read
    /// sooner; [`PollOutcome::polled_ns`] of a hit is then a lower bound.
    fn times_hits(&self) -> bool {
        true
    }
}

/// How a poll ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PollOutcome {
    /// True if the window ran out before a wakeup; the governor then halts next.
    pub timed_out: bool,
    /// Time spent polling, ns, from the start to the clock read that ended the loop. For a hit
    /// on a platform that does not [time hits](PollPlatform::times_hits): to the last clock
    /// read of the loop, a lower bound (0 for a hit before the first).
    pub polled_ns: u64,
}

/// Polls for at most `limit_ns` (plus up to [`PollPlatform::waits_per_clock_read`] waits):
/// returns as soon as [`PollPlatform::wake_pending`] is true, or with `timed_out` once the
/// window has passed.
///
/// ```
/// use haltpoll::poll::{poll, PollPlatform};
/// struct Fake { t: u64, wake_at: u64 }
/// impl PollPlatform for Fake {
///     fn now_ns(&mut self) -> u64 { self.t }
///     fn relax(&mut self) { self.t += 10 }
///     fn wake_pending(&mut self) -> bool { self.t >= self.wake_at }
/// }
/// let hit = poll(&mut Fake { t: 0, wake_at: 5_000 }, 100_000);
/// assert!(!hit.timed_out);
/// let miss = poll(&mut Fake { t: 0, wake_at: u64::MAX }, 100_000);
/// assert!(miss.timed_out && miss.polled_ns >= 100_000);
/// ```
pub fn poll(platform: &mut impl PollPlatform, limit_ns: u64) -> PollOutcome {
    let start = platform.now_ns();
    let deadline = start.saturating_add(limit_ns);
    let per_read = platform.waits_per_clock_read().max(1);
    let mut waits: u32 = 0;
    // The last clock read's time into the poll: a hit's lower bound when it is not timed.
    let mut elapsed = 0;
    loop {
        if platform.wake_pending() {
            if platform.times_hits() {
                elapsed = platform.now_ns().saturating_sub(start);
            }
            return PollOutcome { timed_out: false, polled_ns: elapsed };
        }
        platform.wait(deadline);
        waits += 1;
        if waits < per_read {
            continue;
        }
        waits = 0;
        elapsed = platform.now_ns().saturating_sub(start);
        if elapsed > limit_ns {
            return PollOutcome { timed_out: true, polled_ns: platform.now_ns().saturating_sub(start) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A clock that moves `step` ns per relax and counts how often it is read.
    struct Fake {
        t: u64,
        step: u64,
        wake_at: u64,
        clock_reads: u32,
        relaxes: u32,
    }

    impl Fake {
        fn new(step: u64, wake_at: u64) -> Fake {
            Fake { t: 1_000, step, wake_at, clock_reads: 0, relaxes: 0 }
        }
    }

    impl PollPlatform for Fake {
        fn now_ns(&mut self) -> u64 {
            self.clock_reads += 1;
            self.t
        }
        fn relax(&mut self) {
            self.relaxes += 1;
            self.t += self.step;
        }
        fn wake_pending(&mut self) -> bool {
            self.t >= self.wake_at
        }
    }

    #[test]
    fn pending_wakeup_returns_without_relaxing() {
        let mut f = Fake::new(10, 0);
        let out = poll(&mut f, 1_000_000);
        assert_eq!(out, PollOutcome { timed_out: false, polled_ns: 0 });
        assert_eq!(f.relaxes, 0);
    }

    #[test]
    fn wakeup_ends_poll_early() {
        let mut f = Fake::new(10, 1_000 + 5_000);
        let out = poll(&mut f, 100_000);
        assert!(!out.timed_out);
        assert_eq!(out.polled_ns, 5_000);
        assert_eq!(f.relaxes, 500);
    }

    #[test]
    fn clock_is_read_once_per_relax_count() {
        let mut f = Fake::new(10, u64::MAX);
        let out = poll(&mut f, 100_000);
        assert!(out.timed_out);
        // The window passes after 10_000 relaxes but is noticed at the next multiple of 200.
        assert_eq!(f.relaxes % POLL_RELAX_COUNT, 0);
        assert!(out.polled_ns > 100_000 && out.polled_ns <= 100_000 + 10 * u64::from(POLL_RELAX_COUNT));
        // start + one read per 200 relaxes + the final read
        assert_eq!(f.clock_reads, 1 + f.relaxes / POLL_RELAX_COUNT + 1);
    }

    #[test]
    fn an_untimed_hit_reads_no_clock_after_the_wakeup() {
        struct Untimed(Fake);
        impl PollPlatform for Untimed {
            fn now_ns(&mut self) -> u64 {
                self.0.now_ns()
            }
            fn relax(&mut self) {
                self.0.relax();
            }
            fn wake_pending(&mut self) -> bool {
                self.0.wake_pending()
            }
            fn times_hits(&self) -> bool {
                false
            }
        }
        // A wakeup 2.5 rounds of relax hints in: the loop read the clock at the start and after
        // each of the two full rounds, and reports the last of those reads.
        let round = 10 * u64::from(POLL_RELAX_COUNT);
        let mut u = Untimed(Fake::new(10, 1_000 + 2 * round + round / 2));
        let out = poll(&mut u, 1_000_000);
        assert_eq!(out, PollOutcome { timed_out: false, polled_ns: 2 * round });
        assert_eq!(u.0.clock_reads, 3);
        let mut timed = Fake::new(10, 1_000 + 2 * round + round / 2);
        assert_eq!(poll(&mut timed, 1_000_000).polled_ns, 2 * round + round / 2);
        assert_eq!(timed.clock_reads, 4);
    }

    #[test]
    fn zero_window_polls_one_round() {
        let mut f = Fake::new(1, u64::MAX);
        let out = poll(&mut f, 0);
        assert!(out.timed_out);
        assert_eq!(f.relaxes, POLL_RELAX_COUNT);
    }

    #[test]
    fn clock_going_backwards_does_not_panic() {
        struct Back(u64);
        impl PollPlatform for Back {
            fn now_ns(&mut self) -> u64 {
                self.0 = self.0.saturating_sub(7);
                self.0
            }
            fn relax(&mut self) {}
            fn wake_pending(&mut self) -> bool {
                self.0 < 100
            }
        }
        let out = poll(&mut Back(1_000), 10);
        assert!(!out.timed_out);
        assert_eq!(out.polled_ns, 0);
    }
    /// A platform whose wait sleeps `wait_ns` (an event stream's period, a `wrs.sto` timeout),
    /// less if the wakeup lands during it (the write to the flags word ends a `WFE`) or, when
    /// `timed` (`WFET`), at the deadline. Time moves at least 1 ns per wait, as it does on a CPU.
    struct Sleeper {
        t: u64,
        wait_ns: u64,
        timed: bool,
        wake_at: u64,
        per_read: u32,
        waits: u32,
        clock_reads: u32,
    }

    impl Sleeper {
        fn new(wait_ns: u64) -> Sleeper {
            Sleeper { t: 1_000, wait_ns, timed: false, wake_at: u64::MAX, per_read: 1, waits: 0, clock_reads: 0 }
        }
    }

    impl PollPlatform for Sleeper {
        fn now_ns(&mut self) -> u64 {
            self.clock_reads += 1;
            self.t
        }
        fn relax(&mut self) {
            unreachable!("the loop waits through wait()")
        }
        fn wake_pending(&mut self) -> bool {
            self.t >= self.wake_at
        }
        fn wait(&mut self, deadline_ns: u64) {
            self.waits += 1;
            let mut end = self.t.saturating_add(self.wait_ns).min(self.wake_at);
            if self.timed {
                end = end.min(deadline_ns);
            }
            self.t = end.max(self.t + 1);
        }
        fn waits_per_clock_read(&self) -> u32 {
            self.per_read
        }
    }

    #[test]
    fn a_sleeping_wait_overshoots_by_at_most_one_wait() {
        for wait_ns in [1, 1_000, 100_000] {
            for limit in [0, 1, 50_000, 99_999, 100_000, 250_000] {
                let mut s = Sleeper::new(wait_ns);
                let out = poll(&mut s, limit);
                assert!(out.timed_out, "{wait_ns} ns waits, {limit} ns window");
                assert!(out.polled_ns > limit && out.polled_ns <= limit + wait_ns, "{wait_ns}, {limit}: {out:?}");
                // start + one read per wait + the final read
                assert_eq!(s.clock_reads, 1 + s.waits + 1);
            }
        }
    }

    #[test]
    fn a_sleeping_wait_read_as_rarely_as_a_relax_would_overshoot_by_hundreds() {
        // Why a platform whose wait sleeps must say so: at 200 waits per clock read, 100 us
        // waits turn a 50 us window into 20 ms.
        let mut s = Sleeper { per_read: POLL_RELAX_COUNT, ..Sleeper::new(100_000) };
        let out = poll(&mut s, 50_000);
        assert!(out.timed_out);
        assert_eq!(out.polled_ns, u64::from(POLL_RELAX_COUNT) * 100_000);
    }

    #[test]
    fn a_timed_wait_ends_at_the_deadline() {
        let mut s = Sleeper { timed: true, ..Sleeper::new(1_000_000) };
        let out = poll(&mut s, 50_000);
        assert!(out.timed_out);
        // The first wait returns at the deadline, the second (deadline passed) at once.
        assert_eq!(out.polled_ns, 50_001);
        assert_eq!(s.waits, 2);
    }

    #[test]
    fn a_wakeup_during_a_sleeping_wait_ends_the_poll() {
        let mut s = Sleeper { wake_at: 1_000 + 30_000, ..Sleeper::new(100_000) };
        let out = poll(&mut s, 200_000);
        assert_eq!(out, PollOutcome { timed_out: false, polled_ns: 30_000 });
        assert_eq!(s.waits, 1);
    }

    #[test]
    fn zero_waits_per_clock_read_is_one() {
        let mut s = Sleeper { per_read: 0, ..Sleeper::new(10) };
        let out = poll(&mut s, 25);
        assert!(out.timed_out);
        assert_eq!(out.polled_ns, 30);
        assert_eq!(s.clock_reads, 1 + 3 + 1);
    }

    proptest::proptest! {
        #[test]
        fn overshoot_is_bounded_by_the_waits_between_clock_reads(
            wait_ns in 1u64..2_000_000,
            limit in 0u64..20_000_000,
            per_read in 1u32..300,
            timed: bool,
        ) {
            let mut s = Sleeper { per_read, timed, ..Sleeper::new(wait_ns) };
            let out = poll(&mut s, limit);
            proptest::prop_assert!(out.timed_out);
            proptest::prop_assert!(out.polled_ns > limit);
            proptest::prop_assert!(out.polled_ns <= limit + u64::from(per_read) * wait_ns);
        }
    }
}
