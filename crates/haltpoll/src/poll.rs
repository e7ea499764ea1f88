//! The poll loop: spin with a relax hint until woken or until the window runs out.
//!
//! The loop knows nothing of CPUs, flags or clocks; it drives a [`PollPlatform`] that does. The
//! caller brackets it with the wake protocol ([`WakeFlags::set_polling_and_test`] before,
//! [`WakeFlags::clear_polling_and_test`] after) and reports the outcome to the governor.
//!
//! [`WakeFlags::set_polling_and_test`]: crate::wake::WakeFlags::set_polling_and_test
//! [`WakeFlags::clear_polling_and_test`]: crate::wake::WakeFlags::clear_polling_and_test

/// Relax iterations between two clock reads. Reading the clock costs far more than a relax hint
/// (and may exit the VM on some hosts), so the window is checked only this often; the loop may
/// overrun the window by up to this many relaxes.
pub const POLL_RELAX_COUNT: u32 = 200;

/// What the poll loop needs from the machine it runs on.
pub trait PollPlatform {
    /// A monotonic clock in ns (any origin).
    fn now_ns(&mut self) -> u64;
    /// One spin-wait hint (x86 `pause`, `core::hint::spin_loop`).
    fn relax(&mut self);
    /// Whether the wakeup the loop waits for has arrived (NEED_RESCHED, a message, a token).
    fn wake_pending(&mut self) -> bool;
}

/// How a poll ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PollOutcome {
    /// True if the window ran out before a wakeup; the governor then halts next.
    pub timed_out: bool,
    /// Time spent polling, ns, from the start to the clock read that ended the loop.
    pub polled_ns: u64,
}

/// Polls for at most `limit_ns` (plus up to [`POLL_RELAX_COUNT`] relaxes): returns as soon as
/// [`PollPlatform::wake_pending`] is true, or with `timed_out` once the window has passed.
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
    let mut relaxes: u32 = 0;
    let timed_out = loop {
        if platform.wake_pending() {
            break false;
        }
        platform.relax();
        relaxes += 1;
        if relaxes < POLL_RELAX_COUNT {
            continue;
        }
        relaxes = 0;
        if platform.now_ns().saturating_sub(start) > limit_ns {
            break true;
        }
    };
    PollOutcome { timed_out, polled_ns: platform.now_ns().saturating_sub(start) }
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
}
