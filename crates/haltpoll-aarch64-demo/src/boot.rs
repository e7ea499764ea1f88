//! Boot and the machine's services: each CPU's entry (a stack of its own, FP/SIMD on), starting
//! CPU 1 through PSCI, the event stream, `WFI`, and leaving QEMU through semihosting.

use core::arch::{asm, global_asm};

use crate::uart::println;

// Both CPUs enter here: CPU 0 from QEMU's loader, CPU 1 from PSCI CPU_ON. Each takes the stack
// below `__stacks_top` that its MPIDR affinity 0 picks (64 KiB each), turns FP/SIMD on (Rust
// code may use the vector registers) and calls `rust_main(cpu)`.
global_asm!(
    ".section .text.boot, \"ax\"",
    ".global _start",
    "_start:",
    "    mrs x0, mpidr_el1",
    "    and x0, x0, #0xff",
    "    ldr x1, =__stacks_top",
    "    mov x2, #0x10000",
    "    msub x1, x0, x2, x1",
    "    mov sp, x1",
    "    mov x3, #(3 << 20)",
    "    msr cpacr_el1, x3",
    "    isb",
    "    bl rust_main",
    "1:  wfe",
    "    b 1b",
);

/// PSCI CPU_ON, SMC64 function id.
const PSCI_CPU_ON: u64 = 0xc400_0003;

/// Starts CPU `mpidr` at `_start`, through QEMU's PSCI (HVC conduit on `virt` without EL2).
pub fn start_cpu(mpidr: u64) -> i64 {
    unsafe extern "C" {
        fn _start();
    }
    let entry = _start as *const () as u64;
    let ret: u64;
    // SAFETY: QEMU virt implements PSCI on the HVC conduit (no EL2 here), and CPU_ON only starts
    // the other CPU at `_start`, which gives it a stack of its own; it reads no memory of ours.
    // PSCI returns in x0 and may change x1..x17, all declared.
    unsafe {
        asm!(
            "hvc #0",
            inlateout("x0") PSCI_CPU_ON => ret,
            inlateout("x1") mpidr => _,
            inlateout("x2") entry => _,
            inlateout("x3") 0u64 => _,
            lateout("x4") _, lateout("x5") _, lateout("x6") _, lateout("x7") _,
            lateout("x8") _, lateout("x9") _, lateout("x10") _, lateout("x11") _,
            lateout("x12") _, lateout("x13") _, lateout("x14") _, lateout("x15") _,
            lateout("x16") _, lateout("x17") _,
            options(nomem, nostack),
        );
    }
    ret as i64
}

/// Turns on the generic timer's event stream for this CPU: an event every 2^(EVNTI+1) ticks of
/// the counter, EVNTI = 9 (1024 ticks, 16 us at QEMU's 62.5 MHz), so that a `WFE` ends by then.
pub fn enable_event_stream() {
    const EVNTEN: u64 = 1 << 2;
    const EVNTI: u64 = 9 << 4;
    // SAFETY: at EL1, CNTKCTL_EL1 is this CPU's timer control; the read-modify-write sets only
    // the event stream's enable and rate, and touches no memory.
    unsafe {
        asm!(
            "mrs {v}, cntkctl_el1",
            "bic {v}, {v}, #0xf0",
            "orr {v}, {v}, {bits}",
            "msr cntkctl_el1, {v}",
            "isb",
            v = out(reg) _,
            bits = in(reg) EVNTEN | EVNTI,
            options(nomem, nostack, preserves_flags),
        );
    }
}

/// `WFI`: sleeps until an interrupt is pending (taken or not: they stay masked).
pub fn wfi() {
    // SAFETY: `wfi` has no register or memory effect.
    unsafe { asm!("wfi", options(nomem, nostack, preserves_flags)) };
}

/// Leaves QEMU with `status` (semihosting SYS_EXIT with ADP_Stopped_ApplicationExit).
pub fn exit(status: u32) -> ! {
    const SYS_EXIT: u64 = 0x18;
    const APPLICATION_EXIT: u64 = 0x2_0026;
    let block = [APPLICATION_EXIT, u64::from(status)];
    // SAFETY: `hlt #0xf000` is the AArch64 semihosting trap, which QEMU (-semihosting) handles:
    // it reads the two-word block x1 points to, which lives on this stack, and exits.
    unsafe { asm!("hlt #0xf000", in("x0") SYS_EXIT, in("x1") block.as_ptr(), options(nostack, readonly)) };
    // Without semihosting the `hlt` is undefined: park here rather than run on.
    loop {
        wfi();
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    println!("haltpoll-aarch64-demo: {info}");
    exit(1)
}
