//! The bare-metal x86_64 part: boot at ring 0, interrupts, the ring-0 services, the LAPIC.
//!
//! Ring 0 is emulated instruction by instruction on some KVM backends (~0.6 us each:
//! docs/kvm-quirks.md), so the code that runs there is as short as it can be: boot once, the
//! interrupt stubs, and the services. The workload and the idle loops run at ring 3.

pub mod apic;
pub mod boot;
pub mod interrupts;
pub mod percpu;
pub mod services;

use core::arch::asm;

/// `wrmsr`. Ring 0 only.
///
/// # Safety
/// The caller is at ring 0 and the write is to an MSR whose new value does not break memory
/// safety (not EFER, not the GS/FS base while per-CPU data is in use elsewhere).
pub unsafe fn wrmsr(msr: u32, value: u64) {
    // SAFETY: the caller is at ring 0 and vouches for the MSR and value.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32,
            options(nostack, preserves_flags));
    }
}

/// `out dx, eax`: a 32-bit write to an I/O port. Ring 0 only (IOPL is 0).
///
/// # Safety
/// The caller is at ring 0; the port must not be one whose write changes guest memory.
pub unsafe fn outl(port: u16, value: u32) {
    // SAFETY: the caller is at ring 0 and vouches for the port.
    unsafe {
        asm!("out dx, eax", in("dx") port, in("eax") value, options(nomem, nostack, preserves_flags));
    }
}

/// Stops this vCPU for good: interrupts off, halt, forever.
pub fn halt_forever() -> ! {
    loop {
        // SAFETY: `cli; hlt` touches no memory; at ring 3 it raises #GP, which the fault
        // handler reports, so callers use it at ring 0 only.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) };
    }
}
