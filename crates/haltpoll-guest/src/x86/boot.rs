//! Boot, once per vCPU: the VMM starts every vCPU in long mode at ring 0 at `_start` with RDI =
//! its index and RSP = its ring-0 stack (page tables, GDT and TSS are the VMM's). The guest
//! points GS at its per-CPU data, loads its IDT, enables the LAPIC and drops to ring 3.

use core::arch::{asm, global_asm};

use haltpoll_abi::{MAX_VCPUS, layout, selectors};

use super::{apic, interrupts, percpu};

global_asm!(
    r#"
    .section .text.start, "ax"
    .global _start
    _start:
        call {kernel_main}
    2:  cli
        hlt
        jmp 2b
    "#,
    kernel_main = sym kernel_main,
);

/// Ring 0 (emulated: keep it short).
///
/// # Safety
/// Only `_start` calls it: once per vCPU, at ring 0 with interrupts off, before anything else
/// runs there, with `vcpu` this vCPU's index.
unsafe extern "C" fn kernel_main(vcpu: u64) -> ! {
    let vcpu = vcpu as usize;
    if vcpu >= MAX_VCPUS {
        super::halt_forever();
    }
    // SAFETY: ring 0, interrupts off, first thing on this vCPU (the caller's contract), index
    // checked above.
    unsafe {
        percpu::init(vcpu);
        interrupts::init(vcpu);
    }
    apic::init();
    // SAFETY: ring 0 at boot: nothing runs on this vCPU's user stack yet; `vcpu` checked above.
    unsafe { enter_user(vcpu) }
}

/// Jumps to [`crate::user_main`] at ring 3 on this vCPU's user stack, interrupts on.
///
/// # Safety
/// Called at most once per vCPU (`user_main` takes the only `&mut` to this vCPU's report):
/// `vcpu` is this vCPU's index (below MAX_VCPUS) and nothing lives on its user stack: the jump
/// starts that stack afresh.
unsafe fn enter_user(vcpu: usize) -> ! {
    // As if called: RSP + 8 is 16-byte aligned at a function's entry.
    let stack = layout::user_stack_top(vcpu) - 8;
    // SAFETY: an `iretq` frame to a ring-3 function that never returns, with a stack the layout
    // reserves for this vCPU and nothing uses (the caller's contract); the selectors are the
    // VMM's GDT's ring-3 ones. This is `user_main`'s one entry on this vCPU (`enter_user` runs
    // once, at boot), with this vCPU's index.
    unsafe {
        asm!(
            "push {ss}", "push {rsp}", "push {rflags}", "push {cs}", "push {rip}", "iretq",
            ss = in(reg) u64::from(selectors::USER_DATA),
            rsp = in(reg) stack,
            rflags = in(reg) 0x202u64,
            cs = in(reg) u64::from(selectors::USER_CODE),
            rip = in(reg) crate::user_main as *const () as u64,
            in("rdi") vcpu as u64,
            options(noreturn),
        );
    }
}
