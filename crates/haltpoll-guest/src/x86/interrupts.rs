//! The IDT, the interrupt stubs, and the fault handler that reports an exception to the VMM.
//!
//! Every exception except #UD (the service gate, see [`super::services`]) goes to a stub that
//! pushes the vector and jumps to [`fault`], which writes the [`ExitRecord`] and stops the vCPU
//! through the exit port. The wakeup IPI's stub counts the interrupt and acknowledges it; the
//! timer's counts it twice (as an interrupt, so a pending halt returns, and as a timer).

use core::arch::{asm, global_asm};
use core::cell::UnsafeCell;
use core::ptr::write_volatile;

use haltpoll_abi::{EXIT_PORT, ExitRecord, ExitStatus, MAX_VCPUS, layout, selectors};

use super::apic::{self, IPI_VECTOR, SPURIOUS_VECTOR, TIMER_VECTOR};
use super::percpu::{self, IRQ_COUNT_OFFSET, TIMER_COUNT_OFFSET};

global_asm!(
    r#"
    .section .text.interrupts, "ax"
    .irp n, 0,1,2,3,4,5,6,7,9,15,16,18,19,20,22,23,24,25,26,27,28,31
    haltpoll_exc_\n:
        push 0
        push \n
        jmp haltpoll_exc_common
    .endr
    .irp n, 8,10,11,12,13,14,17,21,29,30
    haltpoll_exc_\n:
        push \n
        jmp haltpoll_exc_common
    .endr
    .global haltpoll_exc_common
    haltpoll_exc_common:
        mov rdi, rsp
        and rsp, -16
        call {fault}
    2:  cli
        hlt
        jmp 2b

    .global haltpoll_irq_ipi
    haltpoll_irq_ipi:
        inc qword ptr gs:[{irq_count}]
        push rax
        mov eax, {eoi}
        mov dword ptr [rax], 0
        pop rax
        iretq

    .global haltpoll_irq_timer
    haltpoll_irq_timer:
        inc qword ptr gs:[{timer_count}]
        jmp haltpoll_irq_ipi

    .global haltpoll_irq_spurious
    haltpoll_irq_spurious:
        iretq

    .section .rodata.interrupts, "a"
    .balign 8
    .global haltpoll_exception_stubs
    haltpoll_exception_stubs:
    .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
        .quad haltpoll_exc_\n
    .endr
    "#,
    fault = sym fault,
    irq_count = const IRQ_COUNT_OFFSET,
    timer_count = const TIMER_COUNT_OFFSET,
    eoi = const apic::EOI,
);

unsafe extern "C" {
    /// Entry points of the 32 exception stubs, by vector.
    static haltpoll_exception_stubs: [u64; 32];
    fn haltpoll_irq_ipi();
    fn haltpoll_irq_timer();
    fn haltpoll_irq_spurious();
    /// The #UD entry: the service gate (services.rs).
    fn haltpoll_ud_entry();
}

/// One 16-byte interrupt gate.
#[derive(Clone, Copy)]
#[repr(C)]
struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    attributes: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

impl Gate {
    const MISSING: Gate =
        Gate { offset_low: 0, selector: 0, ist: 0, attributes: 0, offset_mid: 0, offset_high: 0, reserved: 0 };

    /// A present 64-bit interrupt gate (interrupts off on entry), DPL 0, to `handler`.
    fn interrupt(handler: u64) -> Gate {
        Gate {
            offset_low: handler as u16,
            selector: selectors::KERNEL_CODE,
            ist: 0,
            attributes: 0x8E,
            offset_mid: (handler >> 16) as u16,
            offset_high: (handler >> 32) as u32,
            reserved: 0,
        }
    }
}

/// One vCPU's IDT.
#[repr(C, align(16))]
struct Idt(UnsafeCell<[Gate; 256]>);

// SAFETY: vCPU `i` writes `IDTS[i]` once, at boot, before loading it; after that only the CPU
// reads it. No two vCPUs touch the same table.
unsafe impl Sync for Idt {}

static IDTS: [Idt; MAX_VCPUS] = [const { Idt(UnsafeCell::new([Gate::MISSING; 256])) }; MAX_VCPUS];

#[repr(C, packed)]
struct DescriptorPointer {
    limit: u16,
    base: u64,
}

/// Fills vCPU `vcpu`'s IDT and loads it.
///
/// # Safety
/// Ring 0, once per vCPU, on vCPU `vcpu` itself, with interrupts off.
pub unsafe fn init(vcpu: usize) {
    let table = IDTS[vcpu].0.get();
    // SAFETY: only this vCPU touches its table, and it has not been loaded yet (see `Idt`).
    let gates = unsafe { &mut *table };
    // SAFETY: the stub table is a constant array in .rodata, written by the assembler.
    let stubs = unsafe { &*core::ptr::addr_of!(haltpoll_exception_stubs) };
    for (gate, &stub) in gates.iter_mut().zip(stubs) {
        *gate = Gate::interrupt(stub);
    }
    gates[6] = Gate::interrupt(haltpoll_ud_entry as *const () as u64);
    gates[usize::from(IPI_VECTOR)] = Gate::interrupt(haltpoll_irq_ipi as *const () as u64);
    gates[usize::from(TIMER_VECTOR)] = Gate::interrupt(haltpoll_irq_timer as *const () as u64);
    gates[usize::from(SPURIOUS_VECTOR)] = Gate::interrupt(haltpoll_irq_spurious as *const () as u64);
    let pointer = DescriptorPointer { limit: (size_of::<[Gate; 256]>() - 1) as u16, base: table as u64 };
    // SAFETY: ring 0; the table is static and fully initialized, every gate present or absent.
    unsafe { asm!("lidt [{}]", in(reg) &pointer, options(readonly, nostack, preserves_flags)) };
}

/// Loads an empty IDT: the next exception cannot be delivered and becomes a triple fault.
///
/// # Safety
/// Ring 0. Only for the triple-fault test: the vCPU is lost afterwards.
pub unsafe fn load_empty_idt() {
    let pointer = DescriptorPointer { limit: 0, base: 0 };
    // SAFETY: ring 0 (caller); the test wants exactly this.
    unsafe { asm!("lidt [{}]", in(reg) &pointer, options(readonly, nostack, preserves_flags)) };
}

/// What the exception stubs leave on the stack.
#[repr(C)]
struct FaultFrame {
    vector: u64,
    error_code: u64,
    rip: u64,
    cs: u64,
    rflags: u64,
    rsp: u64,
    ss: u64,
}

/// Reports an exception to the VMM and stops this vCPU.
extern "C" fn fault(frame: &FaultFrame) -> ! {
    let cr2: u64;
    // SAFETY: reading CR2 at ring 0 (exception handlers run there) has no side effect.
    unsafe { asm!("mov {}, cr2", out(reg) cr2, options(nomem, nostack, preserves_flags)) };
    let record = ExitRecord {
        vector: frame.vector as u32,
        error_code: frame.error_code,
        rip: frame.rip,
        cs: frame.cs,
        rflags: frame.rflags,
        rsp: frame.rsp,
        cr2,
        ..ExitRecord::new(ExitStatus::Fault)
    };
    // SAFETY: the layout reserves this vCPU's exit record; nothing else in the guest holds a
    // reference to it, and this vCPU never runs the workload again.
    unsafe { write_volatile(layout::exit_record(percpu::index()) as *mut ExitRecord, record) };
    // SAFETY: ring 0; the exit port only tells the VMM to stop this vCPU.
    unsafe { super::outl(EXIT_PORT, ExitStatus::Fault as u32) };
    super::halt_forever()
}
