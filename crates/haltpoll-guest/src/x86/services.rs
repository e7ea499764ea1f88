//! Ring-0 services for ring-3 code, entered with `ud2`.
//!
//! On a KVM backend that emulates ring 0, `syscall` and `int N` from ring 3 do not work
//! (docs/kvm-quirks.md, "`syscall`, `int N` and `sti` at ring 3 do not work"), but #UD
//! reaches its ring-0 handler: ring 3 calls [`haltpoll_service`], whose first instruction is
//! `ud2`; the #UD entry checks that RIP is exactly there (any other #UD is a real fault), runs
//! the service with RAX = number and RDI, RSI = arguments, puts the result in RAX, skips the
//! `ud2` and returns with `iretq`. Every other register is preserved.
//!
//! The halt service, the one on the hot path, is written in assembly so that as few
//! instructions as possible run in the emulated ring 0: 13 from the #UD entry to the `iretq`.
//! The RIP check compares with the service's absolute address, which the non-PIE link below
//! 2 GiB makes a 32-bit immediate.

use core::arch::{asm, global_asm};

use haltpoll::driver::{CpuidRegs, MSR_KVM_POLL_CONTROL};
use haltpoll_abi::{EXIT_PORT, ExitStatus, MARK_PORT};

use super::percpu::IRQ_COUNT_OFFSET;

/// Halt unless the interrupt count moved from RDI; returns 1 if it halted.
const HALT: u64 = 1;
/// Write `MSR_KVM_POLL_CONTROL`: 1 if RDI is non-zero (host polling on), else 0. The service
/// names the MSR itself: ring 3 cannot have ring 0 write any other.
const POLL_CONTROL: u64 = 2;
/// Stop this vCPU: write RDI (an [`ExitStatus`]) to the exit port.
const EXIT: u64 = 3;
/// Test: halt with interrupts off, forever.
const HALT_FOREVER: u64 = 4;
/// Test: load an empty IDT and raise #UD at ring 0 (a triple fault).
const TRIPLE_FAULT: u64 = 5;
/// Tell the VMM the measured part of the run begins: write 0 to the mark port.
const MARK: u64 = 6;
/// `cpuid` at ring 0 for leaf RDI, the four registers written to the `CpuidRegs` at RSI.
const CPUID: u64 = 7;

global_asm!(
    r#"
    .section .text.services, "ax"
    .global haltpoll_service
    haltpoll_service:
        ud2
        ret

    .global haltpoll_ud_entry
    haltpoll_ud_entry:
        cmp qword ptr [rsp], offset haltpoll_service
        jne 3f
        cmp rax, {halt}
        jne 2f
        xor eax, eax
        cmp rdi, gs:[{irq_count}]
        jne 1f
        sti
        hlt
        cli
        mov eax, 1
    1:  add qword ptr [rsp], 2
        iretq
    2:  push rcx
        push rdx
        push rsi
        push rdi
        push r8
        push r9
        push r10
        push r11
        sub rsp, 8
        mov rdx, rsi
        mov rsi, rdi
        mov rdi, rax
        call {dispatch}
        add rsp, 8
        pop r11
        pop r10
        pop r9
        pop r8
        pop rdi
        pop rsi
        pop rdx
        pop rcx
        jmp 1b
    3:  push 0
        push 6
        jmp haltpoll_exc_common
    "#,
    halt = const HALT,
    irq_count = const IRQ_COUNT_OFFSET,
    dispatch = sym dispatch,
);

/// The services other than halt, at ring 0.
///
/// # Safety
/// Called by the #UD entry only, at ring 0, for a [`call`] whose contract holds: for
/// [`CPUID`], `b` is the address of a `CpuidRegs` ring 0 may write.
unsafe extern "C" fn dispatch(service: u64, a: u64, b: u64) -> u64 {
    match service {
        POLL_CONTROL => {
            // SAFETY: ring 0. MSR_KVM_POLL_CONTROL only tells the host whether to halt-poll for
            // this vCPU, and 0 and 1 are its only valid values; no memory depends on it. A host
            // without it raises #GP, which the fault handler reports.
            unsafe { super::wrmsr(MSR_KVM_POLL_CONTROL, u64::from(a != 0)) };
            0
        }
        EXIT => {
            // SAFETY: ring 0; the exit port only tells the VMM to stop this vCPU.
            unsafe { super::outl(EXIT_PORT, a as u32) };
            super::halt_forever()
        }
        MARK => {
            // SAFETY: ring 0; the mark port only makes the VMM read this vCPU's counters.
            unsafe { super::outl(MARK_PORT, 0) };
            0
        }
        CPUID => {
            let r = core::arch::x86_64::__cpuid_count(a as u32, 0);
            let regs = CpuidRegs { eax: r.eax, ebx: r.ebx, ecx: r.ecx, edx: r.edx };
            // SAFETY: `call`'s contract (which `dispatch`'s caller upholds): `b` is the address
            // of a `CpuidRegs` that is live and not otherwise borrowed for the call, such as the
            // one on the stack of `cpuid` below; ring 0 may write user pages (no SMAP).
            unsafe { (b as *mut CpuidRegs).write(regs) };
            0
        }
        HALT_FOREVER => super::halt_forever(),
        TRIPLE_FAULT => {
            // SAFETY: ring 0; the test wants this vCPU to die of a triple fault.
            unsafe {
                super::interrupts::load_empty_idt();
                asm!("ud2", options(nomem, nostack, noreturn));
            }
        }
        _ => u64::MAX,
    }
}

unsafe extern "C" {
    fn haltpoll_service();
}

/// Runs ring-0 service `service` with arguments `a` and `b`; returns its result.
///
/// # Safety
/// For [`CPUID`], `b` must be the address of a `CpuidRegs` that ring 0 may write: valid,
/// aligned, and not otherwise borrowed until the call returns. The other services take no
/// address, and any values are safe for them.
unsafe fn call(service: u64, a: u64, b: u64) -> u64 {
    let result;
    // SAFETY: `haltpoll_service` is `ud2; ret`: the #UD entry runs the service and preserves
    // every register but RAX; the one service that writes memory writes where the caller
    // vouched for. The call needs the stack, hence no `nostack`.
    unsafe {
        asm!("call {}", sym haltpoll_service, inout("rax") service => result, in("rdi") a, in("rsi") b);
    }
    result
}

/// Halts until the next interrupt unless one was taken since the count was `irq_count`.
/// Returns whether it halted.
pub fn halt_unless_irq_since(irq_count: u64) -> bool {
    // SAFETY: HALT takes no address.
    unsafe { call(HALT, irq_count, 0) == 1 }
}

/// Writes `MSR_KVM_POLL_CONTROL` at ring 0: 1 (`host_polling`, the reset value: the host may
/// halt-poll for this vCPU) or 0 (it need not).
pub fn write_poll_control(host_polling: bool) {
    // SAFETY: POLL_CONTROL takes no address.
    unsafe { call(POLL_CONTROL, u64::from(host_polling), 0) };
}

/// Stops this vCPU with `status`; the exit record must be written already.
pub fn exit(status: ExitStatus) -> ! {
    // SAFETY: EXIT takes no address.
    unsafe { call(EXIT, status as u64, 0) };
    unreachable!("the VMM does not resume a vCPU after its exit")
}

/// `cpuid` for `leaf` (subleaf 0), executed at ring 0.
///
/// On a KVM backend that runs ring 3 natively (docs/kvm-quirks.md) a ring-3 `cpuid` is not the
/// VM's: it answers with the CPUID of the machine the VMM runs on (the outer hypervisor's
/// view), not the table the VMM gave this vCPU. At ring 0 the backend emulates it from the vCPU's own table.
pub fn cpuid(leaf: u32) -> CpuidRegs {
    let mut regs = CpuidRegs::default();
    // SAFETY: `regs` is a live local, borrowed by nothing else until the call returns.
    unsafe { call(CPUID, u64::from(leaf), &mut regs as *mut CpuidRegs as u64) };
    regs
}

/// Tells the VMM the measured part of the run begins on this vCPU.
pub fn mark() {
    // SAFETY: MARK takes no address.
    unsafe { call(MARK, 0, 0) };
}

/// Test: halts with interrupts off, forever (the watchdog must kick the vCPU out of the host).
pub fn halt_forever() -> ! {
    // SAFETY: HALT_FOREVER takes no address.
    unsafe { call(HALT_FOREVER, 0, 0) };
    unreachable!("halted with interrupts off")
}

/// Test: dies of a triple fault.
pub fn triple_fault() -> ! {
    // SAFETY: TRIPLE_FAULT takes no address.
    unsafe { call(TRIPLE_FAULT, 0, 0) };
    unreachable!("a triple fault ends the vCPU")
}
