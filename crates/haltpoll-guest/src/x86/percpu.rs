//! Per-CPU data, reached through the GS base (`gs:[0]` is the vCPU index, `gs:[8]` the count of
//! interrupts taken), as kernels do. GS base is the same at ring 0 and ring 3 (no `swapgs`), so
//! the interrupt stubs, the ring-0 services and the ring-3 code all find it with one instruction.

use core::arch::asm;
use core::mem::offset_of;
use core::sync::atomic::AtomicU64;
use core::sync::atomic::Ordering::Acquire;

use haltpoll_abi::MAX_VCPUS;

/// `IA32_GS_BASE`.
const MSR_GS_BASE: u32 = 0xC000_0101;

/// One vCPU's data.
#[repr(C, align(64))]
pub struct PerCpu {
    index: u64,
    /// Bumped by the IPI and timer handlers (`inc qword ptr gs:[8]`), read by the idle path at
    /// ring 3.
    irq_count: AtomicU64,
    /// Bumped by the timer handler only (`gs:[16]`): tells a timer's end of a halt from an IPI's.
    timer_count: AtomicU64,
}

/// Offset of the interrupt count, which the assembly stubs use.
pub const IRQ_COUNT_OFFSET: usize = 8;
/// Offset of the timer interrupt count, which the timer stub uses.
pub const TIMER_COUNT_OFFSET: usize = 16;
const _: () = assert!(
    offset_of!(PerCpu, irq_count) == IRQ_COUNT_OFFSET
        && offset_of!(PerCpu, timer_count) == TIMER_COUNT_OFFSET
        && offset_of!(PerCpu, index) == 0
);

static PER_CPU: [PerCpu; MAX_VCPUS] = {
    let mut all =
        [const { PerCpu { index: 0, irq_count: AtomicU64::new(0), timer_count: AtomicU64::new(0) } }; MAX_VCPUS];
    let mut i = 0;
    while i < MAX_VCPUS {
        all[i].index = i as u64;
        i += 1;
    }
    all
};

/// Points GS at vCPU `vcpu`'s data. Ring 0, once, at boot.
///
/// # Safety
/// Ring 0, before anything uses per-CPU data; `vcpu < MAX_VCPUS`.
pub unsafe fn init(vcpu: usize) {
    // SAFETY: ring 0 (caller); the base points at a static that lives forever.
    unsafe { super::wrmsr(MSR_GS_BASE, &PER_CPU[vcpu] as *const PerCpu as u64) };
}

/// This vCPU's index.
pub fn index() -> usize {
    let index: u64;
    // SAFETY: GS points at this vCPU's `PerCpu` (set at boot before any other code runs);
    // offset 0 is `index`, which never changes.
    unsafe { asm!("mov {}, gs:[0]", out(reg) index, options(nostack, readonly, preserves_flags)) };
    index as usize
}

/// Interrupts this vCPU has taken so far.
///
/// `Acquire` closes the lost-IPI race of a waiter that reads the count, then its wake
/// condition, then halts unless the count moved (`Cpu::irq_count`). With a `Relaxed` load the
/// compiler may read the wake condition first: the waiter sees "not ready", the waker makes it
/// ready and sends the IPI, the IPI handler bumps the count, the waiter's late read of the count
/// already includes that bump, and the halt check finds it unchanged and sleeps through the only
/// wakeup. `Acquire` keeps every later load (the wake condition) after this one, so a count
/// that includes the IPI comes with a wake condition that shows the waker's store (the waker
/// stores before it sends the IPI, and x86 does not reorder loads with loads). The increment
/// needs no ordering of its own: it is the IPI handler's `inc` on this same vCPU, and the edge
/// between the vCPUs is the IPI itself, which the waker sends after its store.
pub fn irq_count() -> u64 {
    PER_CPU[index()].irq_count.load(Acquire)
}

/// Timer interrupts this vCPU has taken so far. `Acquire`, as [`irq_count`], so that what the
/// caller reads after it is not older than the interrupt it counts.
pub fn timer_count() -> u64 {
    PER_CPU[index()].timer_count.load(Acquire)
}
