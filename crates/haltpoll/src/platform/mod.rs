//! Ready pieces for the poll loop on real CPUs: a free-running counter as the clock
//! ([`Counter`]), one architecture's clock and wait ([`Cpu`]), and [`Poller`], the
//! [`PollPlatform`] that polls one [`WakeFlags`] word with them.
//!
//! [`Counter`], [`Cpu`] and [`Poller`] are plain code and always here. The architectures'
//! [`Cpu`]s hold inline assembly and come with the `platform` feature, each built for its own
//! architecture only:
//! - `x86_64`: `Pause`, `pause` between looks and the TSC at the frequency
//!   the kernel knows (CPUID leaf 0x15, a calibration, KVM's pvclock);
//! - `aarch64`: `Wfe`, which arms the exclusive monitor on the flags word with `LDXR` and sleeps
//!   in `WFE` until the word is written (or the timer's event stream ticks), or in `WFET` until
//!   the poll's deadline where the CPU has it; the clock is `CNTVCT_EL0` at `CNTFRQ_EL0`;
//! - `riscv64`: `Hart`, the `pause` hint, or with Zawrs a reservation on the flags word and
//!   `wrs.sto`; the clock is `time` at the device tree's `timebase-frequency`.
//!
//! A kernel whose wake condition is more than NEED_RESCHED (a message, a run queue) writes its
//! own [`PollPlatform`] from the same pieces; `docs/porting.md` shows each architecture's hook
//! points.
//!
//! [`WakeFlags`]: crate::wake::WakeFlags

use core::sync::atomic::AtomicU32;

use crate::poll::PollPlatform;
use crate::wake::{NEED_RESCHED, WakeFlags};

#[cfg(all(feature = "platform", target_arch = "aarch64"))]
pub mod aarch64;
#[cfg(all(feature = "platform", target_arch = "riscv64"))]
pub mod riscv64;
#[cfg(all(feature = "platform", target_arch = "x86_64"))]
pub mod x86_64;

/// A free-running counter's frequency, to turn its ticks into ns and back (the TSC,
/// `CNTVCT_EL0`, RISC-V's `time`).
///
/// ```
/// use haltpoll::platform::Counter;
/// let cntvct = Counter::new(62_500_000); // CNTFRQ_EL0 of many arm64 boards: 16 ns a tick
/// assert_eq!(cntvct.ns(62_500), 1_000_000);
/// assert_eq!(cntvct.ticks(1_000_000), 62_500);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counter {
    hz: u64,
    /// ns per tick, 32.32 fixed point, rounded up so that a window of N ns never ends before
    /// N ns have passed.
    ns_per_tick: u64,
}

impl Counter {
    /// A counter that runs at `hz` ticks a second (0 is taken as 1).
    pub const fn new(hz: u64) -> Counter {
        let hz = if hz == 0 { 1 } else { hz };
        let ns_per_tick = (1_000_000_000u128 << 32).div_ceil(hz as u128);
        Counter { hz, ns_per_tick: ns_per_tick as u64 }
    }

    /// Its frequency, Hz.
    pub const fn hz(&self) -> u64 {
        self.hz
    }

    /// `ticks` in ns (saturating): a multiplication, cheap enough for every clock read.
    pub const fn ns(&self, ticks: u64) -> u64 {
        let ns = (ticks as u128 * self.ns_per_tick as u128) >> 32;
        if ns > u64::MAX as u128 { u64::MAX } else { ns as u64 }
    }

    /// `ns` in ticks (rounded up, saturating): where a deadline in ns falls on the counter.
    pub const fn ticks(&self, ns: u64) -> u64 {
        let ticks = (ns as u128 * self.hz as u128).div_ceil(1_000_000_000);
        if ticks > u64::MAX as u128 { u64::MAX } else { ticks as u64 }
    }
}

/// One architecture's half of a poll loop: its counter and how it waits on a word.
pub trait Cpu {
    /// The free-running counter, in ticks (what [`Counter`] converts).
    fn ticks(&mut self) -> u64;

    /// One spin-wait hint.
    fn relax(&mut self);

    /// Waits once for `word & bits != 0`: returns at once if it already is, else when `word`
    /// may have been written, at `deadline_ticks` where the CPU has a timed wait, or sooner.
    /// Never unbounded: a CPU that cannot bound a sleep spins instead.
    fn wait_for_bits(&mut self, word: &AtomicU32, bits: u32, deadline_ticks: u64);

    /// How many waits fit between two clock reads ([`PollPlatform::waits_per_clock_read`]).
    fn waits_per_clock_read(&self) -> u32;
}

/// The [`PollPlatform`] of a CPU that polls its [`WakeFlags`] for NEED_RESCHED: the clock is
/// `cpu`'s counter, each wait `cpu`'s wait on the flags word, until the poll's deadline.
///
/// ```
/// use core::sync::atomic::AtomicU32;
/// use haltpoll::platform::{Counter, Cpu, Poller};
/// use haltpoll::poll::poll;
/// use haltpoll::wake::WakeFlags;
///
/// /// A made-up CPU whose counter moves 100 ticks (100 ns at 1 GHz) per wait.
/// struct Fake(u64);
/// impl Cpu for Fake {
///     fn ticks(&mut self) -> u64 { self.0 }
///     fn relax(&mut self) { self.0 += 100 }
///     fn wait_for_bits(&mut self, _: &AtomicU32, _: u32, _: u64) { self.0 += 100 }
///     fn waits_per_clock_read(&self) -> u32 { 1 }
/// }
///
/// let flags = WakeFlags::new();
/// let out = poll(&mut Poller::new(&flags, Counter::new(1_000_000_000), Fake(0)), 1_000);
/// assert!(out.timed_out && out.polled_ns == 1_100);
/// ```
#[derive(Debug)]
pub struct Poller<'a, C> {
    flags: &'a WakeFlags,
    counter: Counter,
    cpu: C,
}

impl<'a, C: Cpu> Poller<'a, C> {
    /// Polls `flags` on `cpu`, whose counter runs as `counter` says.
    pub const fn new(flags: &'a WakeFlags, counter: Counter, cpu: C) -> Poller<'a, C> {
        Poller { flags, counter, cpu }
    }
}

impl<C: Cpu> PollPlatform for Poller<'_, C> {
    fn now_ns(&mut self) -> u64 {
        self.counter.ns(self.cpu.ticks())
    }

    fn relax(&mut self) {
        self.cpu.relax();
    }

    fn wake_pending(&mut self) -> bool {
        self.flags.need_resched()
    }

    fn wait(&mut self, deadline_ns: u64) {
        // The clock is `counter.ns(ticks)` with the counter's own origin, so this is where the
        // deadline falls on the counter (rounded up: never early).
        let deadline_ticks = self.counter.ticks(deadline_ns);
        self.cpu.wait_for_bits(self.flags.as_atomic(), NEED_RESCHED, deadline_ticks);
    }

    fn waits_per_clock_read(&self) -> u32 {
        self.cpu.waits_per_clock_read()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::poll::{POLL_RELAX_COUNT, poll};
    use core::sync::atomic::Ordering::Relaxed;

    #[test]
    fn counter_conversions_are_close_and_never_short() {
        for hz in [1, 1_000_000, 10_000_000, 19_200_000, 62_500_000, 1_000_000_000, 2_994_371_000, 3_700_000_000] {
            let c = Counter::new(hz);
            for ns in [0u64, 1, 999, 50_000, 200_000, 1_000_000_000, 3_600_000_000_000] {
                let ticks = c.ticks(ns);
                // Rounded up: the tick at which `ns` has surely passed, and no later.
                assert!(u128::from(ticks) * 1_000_000_000 >= u128::from(ns) * u128::from(hz), "{hz} Hz, {ns} ns");
                assert!(ticks == 0 || u128::from(ticks - 1) * 1_000_000_000 < u128::from(ns) * u128::from(hz));
                // ns() of it is at or past `ns`, by less than a tick plus the fixed point's
                // rounding (under 1 ns per 2^32 ticks).
                let back = c.ns(ticks);
                let slack = 1_000_000_000 / hz + 1 + (ticks >> 32) + 1;
                assert!(back >= ns && back <= ns + slack, "{hz} Hz, {ns} ns -> {back}");
            }
        }
        assert_eq!(Counter::new(0), Counter::new(1), "a zero frequency is taken as 1 Hz");
        assert_eq!(Counter::new(1).ns(u64::MAX), u64::MAX, "saturates");
        assert_eq!(Counter::new(u64::MAX).ticks(u64::MAX), u64::MAX, "saturates");
    }

    /// A CPU whose counter (1 tick = 1 ns) moves `wait_ticks` per wait, less when its waits
    /// are timed and the deadline comes first; `writer` sets the bits at a given tick, as
    /// another CPU's wake would.
    struct FakeCpu<'a> {
        now: u64,
        wait_ticks: u64,
        timed: bool,
        per_read: u32,
        writer: Option<(u64, &'a WakeFlags)>,
        deadlines: Vec<u64>,
    }

    impl Cpu for FakeCpu<'_> {
        fn ticks(&mut self) -> u64 {
            self.now
        }
        fn relax(&mut self) {
            self.now += 1;
        }
        fn wait_for_bits(&mut self, word: &AtomicU32, bits: u32, deadline_ticks: u64) {
            self.deadlines.push(deadline_ticks);
            assert_eq!(word.load(Relaxed) & bits, 0, "the loop waits only while nothing is pending");
            let mut end = self.now + self.wait_ticks;
            if self.timed {
                end = end.min(deadline_ticks).max(self.now + 1);
            }
            if let Some((at, flags)) = self.writer
                && at <= end
            {
                end = end.min(at.max(self.now + 1));
                let _ = flags.wake();
                self.writer = None;
            }
            self.now = end;
        }
        fn waits_per_clock_read(&self) -> u32 {
            self.per_read
        }
    }

    fn cpu<'a>(wait_ticks: u64, timed: bool, per_read: u32) -> FakeCpu<'a> {
        FakeCpu { now: 5_000, wait_ticks, timed, per_read, writer: None, deadlines: Vec::new() }
    }

    #[test]
    fn poller_passes_the_deadline_on_the_counter() {
        let flags = WakeFlags::new();
        // 1 tick = 2 ns: the deadline 10_000 + 40_000 ns is tick 25_000.
        let mut p = Poller::new(&flags, Counter::new(500_000_000), FakeCpu { now: 5_000, ..cpu(1_000_000, true, 1) });
        let out = poll(&mut p, 40_000);
        assert!(out.timed_out);
        assert_eq!(p.cpu.deadlines[0], 25_000);
        assert_eq!(out.polled_ns, 40_002, "the timed wait ends at the deadline; one more tick to see it passed");
    }

    #[test]
    fn poller_wakes_on_need_resched_written_during_a_wait() {
        let flags = WakeFlags::new();
        let mut fake = cpu(100_000, false, 1);
        fake.writer = Some((5_000 + 30_000, &flags));
        let mut p = Poller::new(&flags, Counter::new(1_000_000_000), fake);
        let out = poll(&mut p, 200_000);
        assert!(!out.timed_out);
        assert_eq!(out.polled_ns, 30_000);
        assert!(flags.take_need_resched());
    }

    #[test]
    fn poller_with_a_relax_wait_reads_the_clock_as_rarely_as_before() {
        let flags = WakeFlags::new();
        let mut p = Poller::new(&flags, Counter::new(1_000_000_000), cpu(10, false, POLL_RELAX_COUNT));
        let out = poll(&mut p, 100_000);
        assert!(out.timed_out);
        assert_eq!(p.cpu.deadlines.len() % POLL_RELAX_COUNT as usize, 0);
        assert!(out.polled_ns <= 100_000 + 10 * u64::from(POLL_RELAX_COUNT));
    }
}
