//! The GICv2 of QEMU's `virt` machine (`gic-version=2`), as much as the program needs: enable
//! the software-generated interrupts, send one to the other CPU, acknowledge one.
//!
//! Interrupts stay masked at the CPU (`PSTATE.I`) the whole time: `WFI` ends when an
//! interrupt is pending at the CPU interface even while it is masked, and the program then
//! acknowledges it through `GICC_IAR`, so it needs no exception vectors.

/// The distributor.
const GICD: usize = 0x0800_0000;
/// The CPU interface.
const GICC: usize = 0x0801_0000;

const GICD_CTLR: usize = GICD;
const GICD_ISENABLER0: usize = GICD + 0x100;
const GICD_SGIR: usize = GICD + 0xf00;
const GICC_CTLR: usize = GICC;
const GICC_PMR: usize = GICC + 0x4;
const GICC_IAR: usize = GICC + 0xc;
const GICC_EOIR: usize = GICC + 0x10;

/// The SGI the program wakes a CPU with.
pub const WAKE_SGI: u32 = 1;
/// What `GICC_IAR` returns when nothing is pending.
const SPURIOUS: u32 = 1023;

fn write(reg: usize, value: u32) {
    // SAFETY: `reg` is one of the GICv2 registers above, at QEMU virt's GIC addresses, which
    // are device memory no Rust object lives in; a volatile 32-bit write is how they are written.
    unsafe { core::ptr::write_volatile(reg as *mut u32, value) };
}

fn read(reg: usize) -> u32 {
    // SAFETY: as in `write`; reading GICC_IAR acknowledges an interrupt, which is what the
    // caller wants when it reads it.
    unsafe { core::ptr::read_volatile(reg as *const u32) }
}

/// Enables the distributor (once, by CPU 0).
pub fn init_distributor() {
    write(GICD_CTLR, 1);
}

/// Enables this CPU's interface and its SGIs (banked per CPU), every priority let through.
pub fn init_cpu() {
    write(GICD_ISENABLER0, 0xffff);
    write(GICC_PMR, 0xff);
    write(GICC_CTLR, 1);
}

/// Sends [`WAKE_SGI`] to CPU `target`.
pub fn send_wake(target: usize) {
    write(GICD_SGIR, (1 << (16 + target)) | WAKE_SGI);
}

/// Acknowledges and ends one pending interrupt; returns whether it was [`WAKE_SGI`].
pub fn take_wake() -> bool {
    let iar = read(GICC_IAR);
    if iar & 0x3ff == SPURIOUS {
        return false;
    }
    write(GICC_EOIR, iar);
    iar & 0x3ff == WAKE_SGI
}
