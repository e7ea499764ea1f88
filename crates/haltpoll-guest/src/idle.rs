//! The idle path: how a vCPU waits for work ([`Idle::wait`]) and how another vCPU wakes it
//! ([`Idle::wake`]), for each [`IdlePolicy`](haltpoll_abi::IdlePolicy).
//!
//! The two calls are the seam the idle policies plug into: a workload only ever says "wait
//! until `ready()`" and "I made `target` ready". `busy` spins, `halt` halts at once and is
//! woken by an IPI, and `haltpoll` is the cpuidle-haltpoll driver ([`crate::driver`]): a
//! governor per vCPU and a [`VcpuFlags`] word per vCPU shared by all of them, so that a waker
//! sends the IPI only when the target is not polling.

use crate::cpu::Cpu;
use crate::driver::{self, Haltpoll, VcpuFlags};
use haltpoll_abi::{Counters, WakeCosts};

/// One vCPU's idle policy.
///
/// ```
/// use haltpoll_abi::Counters;
/// use haltpoll_guest::idle::Idle;
/// # use haltpoll_guest::cpu::Cpu;
/// # use haltpoll::driver::CpuidRegs;
/// # struct Fake;
/// # impl Cpu for Fake {
/// #     fn index(&self) -> usize { 0 }
/// #     fn rdtsc(&self) -> u64 { 0 }
/// #     fn relax(&self) {}
/// #     fn irq_count(&self) -> u64 { 0 }
/// #     fn halt_unless_irq_since(&mut self, _: u64) -> bool { unreachable!() }
/// #     fn send_ipi(&mut self, _: usize) {}
/// #     fn arm_timer(&mut self, _: u64) {}
/// #     fn cancel_timer(&mut self) {}
/// #     fn timer_count(&self) -> u64 { 0 }
/// #     fn cpuid(&self, _: u32) -> CpuidRegs { CpuidRegs::default() }
/// #     fn write_poll_control(&mut self, _: bool) {}
/// #     fn begin_measurement(&mut self) {}
/// # }
/// let (mut cpu, mut counters) = (Fake, Counters::default());
/// let mut idle = Idle::halt();
/// idle.wait(&mut cpu, &mut counters, || true); // work is already there: no halt
/// idle.wake(&mut cpu, &mut counters, 1);        // the halt policy always sends the IPI
/// assert_eq!((counters.halts, counters.ipis_sent), (0, 1));
/// ```
#[derive(Debug)]
pub struct Idle<'a> {
    mode: Mode,
    /// Every vCPU's flags, by index (the haltpoll policy's; empty for the others).
    flags: &'a [VcpuFlags],
    /// This vCPU's index.
    me: usize,
}

// The driver holds a governor of up to 256 bytes; there is one `Idle` per vCPU and no
// allocator in the guest to box it in.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Mode {
    Busy,
    Halt,
    Haltpoll(Haltpoll),
}

impl Idle<'static> {
    /// Spin on the wake condition; wake nobody.
    pub const fn busy() -> Idle<'static> {
        Idle { mode: Mode::Busy, flags: &[], me: 0 }
    }

    /// Halt at once; wake with an IPI, always.
    pub const fn halt() -> Idle<'static> {
        Idle { mode: Mode::Halt, flags: &[], me: 0 }
    }
}

impl<'a> Idle<'a> {
    /// The haltpoll driver, loaded on vCPU `me`; `flags` holds every vCPU's flags, by index.
    pub fn haltpoll(driver: Haltpoll, flags: &'a [VcpuFlags], me: usize) -> Idle<'a> {
        assert!(me < flags.len(), "vCPU {me} has no wake flags ({} vCPUs)", flags.len());
        Idle { mode: Mode::Haltpoll(driver), flags, me }
    }

    /// The haltpoll driver's current poll window, ns (`None` under the other policies).
    pub fn poll_limit_ns(&self) -> Option<u64> {
        match &self.mode {
            Mode::Haltpoll(driver) => Some(driver.poll_limit_ns()),
            Mode::Busy | Mode::Halt => None,
        }
    }

    /// What the haltpoll driver learnt its halts cost (`None` under the other policies).
    pub fn wake_costs(&self) -> Option<WakeCosts> {
        match &self.mode {
            Mode::Haltpoll(driver) => Some(driver.costs()),
            Mode::Busy | Mode::Halt => None,
        }
    }

    /// Returns once `ready()` is true, idling the vCPU meanwhile. `ready` must become true only
    /// through memory another vCPU writes before calling [`Idle::wake`] for this one.
    pub fn wait<C: Cpu>(&mut self, cpu: &mut C, counters: &mut Counters, mut ready: impl FnMut() -> bool) {
        match &mut self.mode {
            Mode::Busy => {
                while !ready() {
                    cpu.relax();
                }
            }
            Mode::Halt => loop {
                // Read the interrupt count before the check: an IPI that lands after the check
                // changes the count, and the halt then returns at once instead of sleeping
                // through the only wakeup that was coming.
                let irqs = cpu.irq_count();
                if ready() {
                    return;
                }
                let start = cpu.rdtsc();
                if cpu.halt_unless_irq_since(irqs) {
                    counters.halts += 1;
                    counters.halt_tsc += cpu.rdtsc().saturating_sub(start);
                }
            },
            Mode::Haltpoll(driver) => driver.wait(cpu, counters, &self.flags[self.me], ready),
        }
    }

    /// Wakes vCPU `target`, whose wake condition the caller has just made true.
    pub fn wake<C: Cpu>(&mut self, cpu: &mut C, counters: &mut Counters, target: usize) {
        match self.mode {
            Mode::Busy => {}
            Mode::Halt => {
                cpu.send_ipi(target);
                counters.ipis_sent += 1;
            }
            Mode::Haltpoll(_) => driver::wake(cpu, counters, &self.flags[target], target),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;

    /// A single-threaded vCPU whose "other side" runs inside the `ready` closure.
    #[derive(Default)]
    struct Scripted {
        irqs: Rc<Cell<u64>>,
        halts: Cell<u32>,
        ipis_to: Cell<Option<usize>>,
    }

    impl Cpu for Scripted {
        fn index(&self) -> usize {
            0
        }
        fn rdtsc(&self) -> u64 {
            0
        }
        fn relax(&self) {}
        fn irq_count(&self) -> u64 {
            self.irqs.get()
        }
        fn halt_unless_irq_since(&mut self, irq_count: u64) -> bool {
            if self.irqs.get() != irq_count {
                return false;
            }
            self.halts.set(self.halts.get() + 1);
            assert!(self.halts.get() < 10, "halted with no wakeup coming: a lost IPI");
            false
        }
        fn send_ipi(&mut self, target: usize) {
            self.ipis_to.set(Some(target));
        }
        fn arm_timer(&mut self, _: u64) {
            unreachable!("no policy here arms a timer")
        }
        fn cancel_timer(&mut self) {}
        fn timer_count(&self) -> u64 {
            0
        }
        fn cpuid(&self, _: u32) -> haltpoll::driver::CpuidRegs {
            haltpoll::driver::CpuidRegs::default()
        }
        fn write_poll_control(&mut self, _: bool) {}
        fn begin_measurement(&mut self) {}
    }

    #[test]
    fn ipi_between_check_and_halt_is_not_lost() {
        let mut cpu = Scripted::default();
        let irqs = cpu.irqs.clone();
        let mut counters = Counters::default();
        let mut checks = 0;
        // The first check fails; right after it, the message lands and its IPI is taken
        // (the handler bumps the count) before the vCPU gets to the halt.
        Idle::halt().wait(&mut cpu, &mut counters, || {
            checks += 1;
            if checks == 1 {
                irqs.set(irqs.get() + 1);
                return false;
            }
            true
        });
        assert_eq!(checks, 2);
        assert_eq!(cpu.halts.get(), 0, "the halt must see the new interrupt and not sleep");
        assert_eq!(counters.halts, 0);
    }

    #[test]
    fn busy_never_halts_and_never_kicks() {
        let mut cpu = Scripted::default();
        let mut counters = Counters::default();
        let mut left = 3;
        let mut idle = Idle::busy();
        idle.wait(&mut cpu, &mut counters, || {
            left -= 1;
            left == 0
        });
        idle.wake(&mut cpu, &mut counters, 1);
        assert_eq!(cpu.halts.get(), 0);
        assert_eq!(cpu.ipis_to.get(), None);
        assert_eq!(counters, Counters::default());
    }

    #[test]
    fn halt_wakes_with_an_ipi() {
        let mut cpu = Scripted::default();
        let mut counters = Counters::default();
        Idle::halt().wake(&mut cpu, &mut counters, 3);
        assert_eq!(cpu.ipis_to.get(), Some(3));
        assert_eq!(counters.ipis_sent, 1);
    }
}
