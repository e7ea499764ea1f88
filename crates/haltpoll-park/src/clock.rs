//! The parker's clock and the poll loop's platform: monotonic nanoseconds since the parker was
//! made, a relax hint, and "is the token here?".
//!
//! Which clock: `Instant::now()`, a vDSO read of the TSC where the clocksource is `tsc`. Measured
//! with `benches/fast_paths.rs` on a 2-vCPU KVM guest (AMD EPYC): `Instant::now()` 23 ns, a raw
//! `rdtsc` 9 ns, one relax hint (`pause`) 26 ns. The poll loop reads the clock once per
//! [`POLL_RELAX_COUNT`](haltpoll::poll::POLL_RELAX_COUNT) = 200 relax hints, about 5 us, so
//! the clock is 0.4% of a poll; `rdtsc` would save 0.3% and cost a calibration against the
//! real clock and an `unsafe` intrinsic. `Instant` it is.
//!
//! Under `cfg(loom)` the clock is fake and deterministic (loom replays executions and must see
//! the same decisions each time): every read advances it by `LOOM_TICK_NS`.

#[cfg(not(loom))]
use std::time::Instant;

use haltpoll::poll::PollPlatform;
use haltpoll::wake::WakeFlags;

/// How far the loom clock moves per read: one read past any window the models use, so a poll
/// times out after one round of relax hints.
#[cfg(loom)]
const LOOM_TICK_NS: u64 = 1_000_000;

/// Monotonic ns since the clock was made.
#[derive(Debug)]
pub(crate) struct Clock {
    #[cfg(not(loom))]
    base: Instant,
    #[cfg(loom)]
    now: std::cell::Cell<u64>,
}

impl Clock {
    pub(crate) fn new() -> Clock {
        Clock {
            #[cfg(not(loom))]
            base: Instant::now(),
            #[cfg(loom)]
            now: std::cell::Cell::new(0),
        }
    }

    /// Now, in ns since the clock was made (saturating after 584 years).
    #[cfg(not(loom))]
    pub(crate) fn now_ns(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    #[cfg(loom)]
    pub(crate) fn now_ns(&self) -> u64 {
        let t = self.now.get() + LOOM_TICK_NS;
        self.now.set(t);
        t
    }

    /// `deadline` on this clock (0 if it is before the clock was made).
    #[cfg(not(loom))]
    pub(crate) fn ns_of(&self, deadline: Instant) -> u64 {
        u64::try_from(deadline.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX)
    }
}

/// What [`haltpoll::poll::poll`] spins on: the parker's flags and clock.
pub(crate) struct Spin<'a> {
    pub(crate) flags: &'a WakeFlags,
    pub(crate) clock: &'a Clock,
}

impl PollPlatform for Spin<'_> {
    fn now_ns(&mut self) -> u64 {
        self.clock.now_ns()
    }

    fn relax(&mut self) {
        #[cfg(not(loom))]
        core::hint::spin_loop();
        // loom must be told that this thread spins, or it explores the spin forever.
        #[cfg(loom)]
        loom::hint::spin_loop();
    }

    fn wake_pending(&mut self) -> bool {
        self.flags.need_resched()
    }
}
