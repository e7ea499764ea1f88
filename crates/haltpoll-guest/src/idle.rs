//! The idle path: how a vCPU waits for work ([`Idle::wait`]) and how another vCPU wakes it
//! ([`Idle::wake`]), for each [`IdlePolicy`].
//!
//! The two calls are the seam the cpuidle-haltpoll driver plugs into: a workload only ever says
//! "wait until `ready()`" and "I made `target` ready". A haltpoll policy would keep a
//! `haltpoll::Governor` per vCPU and a shared `haltpoll::wake::WakeFlags` per vCPU: `wait` asks
//! the governor, polls at ring 3 with POLLING set (`haltpoll::poll::poll`) or halts through
//! [`Cpu::halt_unless_irq_since`] after `clear_polling_and_test`, then reflects the residency;
//! `wake` calls `WakeFlags::wake` and sends the IPI only on `Kick::Needed`. The counters for all
//! of that (poll hits and timeouts, poll and halt time, grow and shrink, IPIs skipped) are
//! already in [`Counters`].

use crate::abi::{Counters, IdlePolicy};
use crate::cpu::Cpu;

/// One vCPU's idle policy.
///
/// ```
/// use haltpoll_guest::abi::{Counters, IdlePolicy};
/// use haltpoll_guest::idle::Idle;
/// # use haltpoll_guest::cpu::Cpu;
/// # struct Fake;
/// # impl Cpu for Fake {
/// #     fn index(&self) -> usize { 0 }
/// #     fn rdtsc(&self) -> u64 { 0 }
/// #     fn relax(&self) {}
/// #     fn irq_count(&self) -> u64 { 0 }
/// #     fn halt_unless_irq_since(&mut self, _: u64) -> bool { unreachable!() }
/// #     fn send_ipi(&mut self, _: usize) {}
/// # }
/// let (mut cpu, mut counters) = (Fake, Counters::default());
/// let mut idle = Idle::new(IdlePolicy::Halt);
/// idle.wait(&mut cpu, &mut counters, || true); // work is already there: no halt
/// idle.wake(&mut cpu, &mut counters, 1);        // the halt policy always sends the IPI
/// assert_eq!((counters.halts, counters.ipis_sent), (0, 1));
/// ```
#[derive(Debug)]
pub struct Idle {
    policy: IdlePolicy,
}

impl Idle {
    /// The idle path for `policy`.
    pub const fn new(policy: IdlePolicy) -> Idle {
        Idle { policy }
    }

    /// The policy.
    pub const fn policy(&self) -> IdlePolicy {
        self.policy
    }

    /// Returns once `ready()` is true, idling the vCPU meanwhile. `ready` must become true only
    /// through memory another vCPU writes before calling [`Idle::wake`] for this one.
    pub fn wait<C: Cpu>(&mut self, cpu: &mut C, counters: &mut Counters, mut ready: impl FnMut() -> bool) {
        match self.policy {
            IdlePolicy::Busy => {
                while !ready() {
                    cpu.relax();
                }
            }
            IdlePolicy::Halt => loop {
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
        }
    }

    /// Wakes vCPU `target`, whose wake condition the caller has just made true.
    pub fn wake<C: Cpu>(&mut self, cpu: &mut C, counters: &mut Counters, target: usize) {
        match self.policy {
            IdlePolicy::Busy => {}
            IdlePolicy::Halt => {
                cpu.send_ipi(target);
                counters.ipis_sent += 1;
            }
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
    }

    #[test]
    fn ipi_between_check_and_halt_is_not_lost() {
        let mut cpu = Scripted::default();
        let irqs = cpu.irqs.clone();
        let mut counters = Counters::default();
        let mut checks = 0;
        // The first check fails; right after it, the message lands and its IPI is taken
        // (the handler bumps the count) before the vCPU gets to the halt.
        Idle::new(IdlePolicy::Halt).wait(&mut cpu, &mut counters, || {
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
        let mut idle = Idle::new(IdlePolicy::Busy);
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
        Idle::new(IdlePolicy::Halt).wake(&mut cpu, &mut counters, 3);
        assert_eq!(cpu.ipis_to.get(), Some(3));
        assert_eq!(counters.ipis_sent, 1);
    }
}
