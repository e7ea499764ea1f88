//! What the portable guest code needs from the (virtual) CPU it runs on.
//!
//! The bare-metal binary implements [`Cpu`] with RDTSC, PAUSE, CPUID, the LAPIC and ring-0
//! services; tests implement it with threads and fake clocks. Keeping the hardware behind this
//! trait is what lets the idle policies, the haltpoll driver and the workload be tested on the
//! host.

use haltpoll::driver::CpuidRegs;

/// One vCPU, as seen by the code running on it.
pub trait Cpu {
    /// This vCPU's index (0-based; also its APIC id).
    fn index(&self) -> usize;

    /// The time-stamp counter (the same clock on every vCPU).
    fn rdtsc(&self) -> u64;

    /// One spin-wait hint (`pause`).
    fn relax(&self);

    /// Interrupts this vCPU has taken so far. A waiter reads it *before* checking its wake
    /// condition and hands it to [`Cpu::halt_unless_irq_since`]. The read must be ordered
    /// before the wake check (an `Acquire` load, at least): a wake condition read first can be
    /// stale while the count already includes the IPI that announced it, and the halt would then
    /// sleep through that IPI.
    fn irq_count(&self) -> u64;

    /// Halts until the next interrupt, unless an interrupt was taken since `irq_count` was read
    /// (then returns at once). Returns whether it halted.
    ///
    /// The check and the halt run with interrupts off and the halt enables them in the same
    /// step (`sti; hlt`), so an IPI that comes after the caller's last look at its wake
    /// condition either bumps the count before the check or wakes the halt: never lost.
    fn halt_unless_irq_since(&mut self, irq_count: u64) -> bool;

    /// Sends the wakeup IPI to vCPU `target`.
    fn send_ipi(&mut self, target: usize);

    /// Executes `cpuid` for `leaf` (subleaf 0).
    fn cpuid(&self, leaf: u32) -> CpuidRegs;

    /// Writes `MSR_KVM_POLL_CONTROL` (a privileged operation): 1 (`true`) lets the host
    /// halt-poll for this vCPU, 0 (`false`) asks it not to. The only MSR the portable code
    /// (the driver, the idle policies, the workload) writes, so the only one it can name: a
    /// write to any other MSR (one that moves the per-CPU data, the APIC or the syscall entry,
    /// say) does not type-check.
    ///
    /// ```compile_fail,E0599
    /// use haltpoll_guest::cpu::Cpu;
    /// /// `IA32_GS_BASE`, where the guest's per-CPU data is.
    /// const MSR_GS_BASE: u32 = 0xC000_0101;
    /// fn moves_the_per_cpu_data(cpu: &mut impl Cpu) {
    ///     cpu.wrmsr(MSR_GS_BASE, 0);
    /// }
    /// ```
    ///
    /// ```compile_fail,E0308
    /// use haltpoll_guest::cpu::Cpu;
    /// fn writes_an_msr_number(cpu: &mut impl Cpu) {
    ///     cpu.write_poll_control(0xC000_0101);
    /// }
    /// ```
    fn write_poll_control(&mut self, host_polling: bool);

    /// Tells the VMM the measured part of the run starts now on this vCPU (the warm-up is
    /// over): it takes its "before" readings of this vCPU's counters here.
    fn begin_measurement(&mut self);
}

/// Converts TSC ticks to ns with one multiplication (no division on the hot path): the poll
/// loop reads the clock every few hundred relaxes and on its way out.
///
/// ```
/// use haltpoll_guest::cpu::TscClock;
/// let clock = TscClock::new(2_500_000); // 2.5 GHz
/// assert_eq!(clock.ns(2_500), 1_000);
/// assert_eq!(clock.ticks(1_000), 2_500);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TscClock {
    khz: u64,
    /// ns per tick, as a 32.32 fixed-point number.
    ns_per_tick: u64,
}

impl TscClock {
    /// A clock for a TSC running at `khz` kHz (at least 1).
    pub const fn new(khz: u64) -> TscClock {
        let khz = if khz == 0 { 1 } else { khz };
        // Rounded up, so that a window of N ns never ends before N ns have passed.
        TscClock { khz, ns_per_tick: ((1_000_000u128 << 32).div_ceil(khz as u128)) as u64 }
    }

    /// `ticks` in ns.
    pub const fn ns(&self, ticks: u64) -> u64 {
        let ns = (ticks as u128 * self.ns_per_tick as u128) >> 32;
        if ns > u64::MAX as u128 { u64::MAX } else { ns as u64 }
    }

    /// `ns` in ticks (rounded down).
    pub const fn ticks(&self, ns: u64) -> u64 {
        let ticks = ns as u128 * self.khz as u128 / 1_000_000;
        if ticks > u64::MAX as u128 { u64::MAX } else { ticks as u64 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_are_close_and_never_short() {
        for khz in [1, 1_000, 2_000_000, 2_994_371, 3_700_000] {
            let clock = TscClock::new(khz);
            for ns in [0u64, 1, 999, 50_000, 200_000, 1_000_000_000] {
                let back = clock.ns(clock.ticks(ns));
                assert!(back <= ns + 1, "{khz} kHz, {ns} ns -> {back}");
                // ticks() rounds down by less than one tick; ns() then loses under 1 ns more.
                assert!(ns - back <= 1_000_000 / khz + 1, "{khz} kHz, {ns} ns -> {back}");
            }
        }
        assert_eq!(TscClock::new(0).ns(5), 5_000_000, "a zero frequency is taken as 1 kHz");
        assert_eq!(TscClock::new(1).ns(u64::MAX), u64::MAX, "saturates");
    }
}
