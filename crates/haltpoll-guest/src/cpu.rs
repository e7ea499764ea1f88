//! What the portable guest code needs from the (virtual) CPU it runs on.
//!
//! The bare-metal binary implements [`Cpu`] with RDTSC, PAUSE, the LAPIC and a ring-0 halt
//! service; tests implement it with threads and fake clocks. Keeping the hardware behind this
//! trait is what lets the idle policies and the workload be tested on the host.

/// One vCPU, as seen by the code running on it.
pub trait Cpu {
    /// This vCPU's index (0-based; also its APIC id).
    fn index(&self) -> usize;

    /// The time-stamp counter (the same clock on every vCPU).
    fn rdtsc(&self) -> u64;

    /// One spin-wait hint (`pause`).
    fn relax(&self);

    /// Interrupts this vCPU has taken so far. A waiter reads it *before* checking its wake
    /// condition and hands it to [`Cpu::halt_unless_irq_since`].
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
}
