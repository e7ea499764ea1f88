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

    /// Arms this vCPU's one-shot timer to fire `after_ns` from now (replacing one already
    /// armed). Its interrupt counts in [`Cpu::irq_count`] (so a halt after the arming cannot
    /// sleep through it) and in [`Cpu::timer_count`].
    fn arm_timer(&mut self, after_ns: u64);

    /// Disarms the timer (nothing if it has fired or was never armed).
    fn cancel_timer(&mut self);

    /// Timer interrupts this vCPU has taken so far.
    fn timer_count(&self) -> u64;

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
