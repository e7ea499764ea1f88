//! The local APIC in xAPIC mode: memory-mapped registers at 0xFEE00000, handled by KVM's
//! in-kernel LAPIC. Unlike x2APIC's MSRs, a ring-3 store reaches them, so the workload sends
//! IPIs without the 13 us trip through ring 0.

use core::ptr::write_volatile;

/// The LAPIC's MMIO base (the reset value of `IA32_APIC_BASE`).
pub const BASE: u64 = 0xFEE0_0000;
/// End-of-interrupt register (the IPI stub writes it).
pub const EOI: u64 = BASE + 0xB0;
const SVR: u64 = BASE + 0xF0;
const ICR_LOW: u64 = BASE + 0x300;
const ICR_HIGH: u64 = BASE + 0x310;

/// The vector of the wakeup IPI.
pub const IPI_VECTOR: u8 = 0x40;
/// The spurious-interrupt vector.
pub const SPURIOUS_VECTOR: u8 = 0xFF;

/// Software-enables the LAPIC (SVR bit 8) with the spurious vector.
pub fn init() {
    // SAFETY: the LAPIC page is identity-mapped; KVM handles the store (no guest memory).
    unsafe { write_volatile(SVR as *mut u32, 0x100 | u32::from(SPURIOUS_VECTOR)) };
}

/// Sends the wakeup IPI to the vCPU with APIC id `dest` (fixed delivery, physical destination).
/// `last_dest` caches the destination last written to ICR high, so a vCPU that always wakes
/// the same peer pays one register write (one exit) per IPI.
pub fn send_ipi(dest: u8, last_dest: &mut Option<u8>) {
    if *last_dest != Some(dest) {
        // SAFETY: as in `init`.
        unsafe { write_volatile(ICR_HIGH as *mut u32, u32::from(dest) << 24) };
        *last_dest = Some(dest);
    }
    // Writing ICR low sends: vector, delivery mode fixed (0), level assert (bit 14).
    // SAFETY: as in `init`.
    unsafe { write_volatile(ICR_LOW as *mut u32, u32::from(IPI_VECTOR) | 1 << 14) };
}
