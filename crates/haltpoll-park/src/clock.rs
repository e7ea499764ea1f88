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
//! On aarch64 Linux the poll waits in `WFE` rather than spinning, when the kernel runs the
//! timer's event stream (`HWCAP_EVTSTRM`, 10 kHz): an unpark's write to the flags word ends the
//! wait at once, the event stream after at most 100 us, and the loop reads the clock after each
//! wait, so a poll overshoots its window by at most one period of the stream. A `wait_until`'s
//! poll waits the same way: its condition's write does not end the `WFE`, but the unpark that
//! follows it does.
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

/// What a park's poll waits for: the token ([`Token`], a park), or the caller's condition
/// ([`Condition`], [`Parker::wait_until`](crate::Parker::wait_until)).
pub(crate) trait Wakeup {
    /// Whether the poll also watches the token. A condition's poll does not: only the
    /// condition ends a `wait_until`, and every look at the token's cache line while the
    /// unparker writes it would delay the look at the condition's.
    const WATCHES_TOKEN: bool;
    /// Whether the caller's condition holds.
    fn ready(&mut self) -> bool;
}

/// A plain park's wakeup: the token alone (the compiler drops the condition).
pub(crate) struct Token;

impl Wakeup for Token {
    const WATCHES_TOKEN: bool = true;
    #[inline(always)]
    fn ready(&mut self) -> bool {
        false
    }
}

/// A `wait_until`'s wakeup: its condition.
pub(crate) struct Condition<F>(pub(crate) F);

impl<F: FnMut() -> bool> Wakeup for Condition<F> {
    const WATCHES_TOKEN: bool = false;
    #[inline(always)]
    fn ready(&mut self) -> bool {
        (self.0)()
    }
}

/// What [`haltpoll::poll::poll`] spins on: the parker's flags and clock, and the wakeup.
pub(crate) struct Spin<'a, W> {
    pub(crate) flags: &'a WakeFlags,
    pub(crate) clock: &'a Clock,
    pub(crate) wakeup: &'a mut W,
    /// Whether the governor needs a hit's poll time (the predictive one does, Linux's not).
    pub(crate) times_hits: bool,
    /// Set when the condition ended the poll: the caller then leaves the token (if any) where
    /// it is, rather than take the flags' cache line from the unparker that is writing it.
    pub(crate) ready_hit: bool,
}

impl<'a, W> Spin<'a, W> {
    pub(crate) fn new(flags: &'a WakeFlags, clock: &'a Clock, wakeup: &'a mut W, times_hits: bool) -> Spin<'a, W> {
        Spin { flags, clock, wakeup, times_hits, ready_hit: false }
    }
}

impl<W: Wakeup> PollPlatform for Spin<'_, W> {
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
        if self.wakeup.ready() {
            self.ready_hit = true;
            return true;
        }
        W::WATCHES_TOKEN && self.flags.need_resched()
    }

    fn times_hits(&self) -> bool {
        self.times_hits
    }

    #[cfg(all(target_arch = "aarch64", target_os = "linux", not(loom)))]
    fn wait(&mut self, _deadline_ns: u64) {
        wait_for_token(self.flags, event_stream());
    }

    #[cfg(all(target_arch = "aarch64", target_os = "linux", not(loom)))]
    fn waits_per_clock_read(&self) -> u32 {
        if event_stream() { 1 } else { haltpoll::poll::POLL_RELAX_COUNT }
    }
}

/// One wait of the poll: `WFE` on the flags word until it is written (or the event stream ticks)
/// if `wfe`, else a relax hint.
#[cfg(all(target_arch = "aarch64", target_os = "linux", not(loom)))]
fn wait_for_token(flags: &WakeFlags, wfe: bool) {
    if wfe {
        haltpoll::platform::aarch64::wfe_for_bits(flags.as_atomic(), haltpoll::wake::NEED_RESCHED);
    } else {
        core::hint::spin_loop();
    }
}

/// Whether the kernel runs the generic timer's event stream, which bounds a `WFE`: without it a
/// `WFE` could sleep until the next interrupt, far past the poll window.
#[cfg(all(target_arch = "aarch64", target_os = "linux", not(loom)))]
fn event_stream() -> bool {
    /// arm64's `HWCAP_EVTSTRM` in `AT_HWCAP`.
    const HWCAP_EVTSTRM: usize = 1 << 2;
    rustix::param::linux_hwcap().0 & HWCAP_EVTSTRM != 0
}

#[cfg(all(test, target_arch = "aarch64", target_os = "linux", not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    /// The WFE wait ends when another thread sets the token, whether or not this kernel (or
    /// qemu-user, which reports no event stream) would pick it.
    #[test]
    fn a_wfe_wait_ends_when_the_token_is_set() {
        let flags = Arc::new(WakeFlags::new());
        let unparker = {
            let flags = Arc::clone(&flags);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(5));
                flags.wake_once()
            })
        };
        while !flags.need_resched() {
            wait_for_token(&flags, true);
        }
        let _kick = unparker.join().unwrap();
        assert!(flags.take_need_resched());
    }
}
