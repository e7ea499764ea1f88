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
const LVT_TIMER: u64 = BASE + 0x320;
const TIMER_INITIAL_COUNT: u64 = BASE + 0x380;
const TIMER_DIVIDE: u64 = BASE + 0x3E0;
/// Divide configuration 0b1011: divide by 1, so the timer counts at the APIC bus clock, which
/// KVM's in-kernel LAPIC runs at 1 GHz (1 ns a count) unless the VMM changes it.
const DIVIDE_BY_1: u32 = 0b1011;

/// The vector of the wakeup IPI.
pub const IPI_VECTOR: u8 = 0x40;
/// The vector of the one-shot timer (the predictive governor's halt-then-poll).
pub const TIMER_VECTOR: u8 = 0x41;
/// The spurious-interrupt vector.
pub const SPURIOUS_VECTOR: u8 = 0xFF;

/// Software-enables the LAPIC (SVR bit 8) with the spurious vector.
/// Also sets the timer up one-shot (LVT mode 0, unmasked) on [`TIMER_VECTOR`], divide by 1,
/// unarmed.
pub fn init() {
    // SAFETY: the LAPIC page is identity-mapped; KVM handles the store (no guest memory).
    unsafe {
        write_volatile(SVR as *mut u32, 0x100 | u32::from(SPURIOUS_VECTOR));
        write_volatile(TIMER_DIVIDE as *mut u32, DIVIDE_BY_1);
        write_volatile(LVT_TIMER as *mut u32, u32::from(TIMER_VECTOR));
    }
}

/// Arms the one-shot timer to fire after `ns` (at least 1, at most `u32::MAX` ns): a store to
/// the initial count, which also replaces a timer already armed. One exit, from ring 3.
pub fn arm_timer(ns: u64) {
    let count = ns.clamp(1, u64::from(u32::MAX)) as u32;
    // SAFETY: as in `init`.
    unsafe { write_volatile(TIMER_INITIAL_COUNT as *mut u32, count) };
}

/// Stops the timer: an initial count of 0 disarms it.
pub fn cancel_timer() {
    // SAFETY: as in `init`.
    unsafe { write_volatile(TIMER_INITIAL_COUNT as *mut u32, 0) };
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
