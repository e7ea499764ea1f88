//! Long mode from the VMM: identity-mapped page tables, the GDT with a TSS per vCPU, and each
//! vCPU's registers, so the guest starts at its ELF entry already in 64-bit mode at ring 0 (no
//! firmware, no real mode).
//!
//! Every page-table level has the user bit set, so the guest's ring-3 code can run anywhere in
//! the low 4 GiB (including the LAPIC page, where it sends IPIs).

use haltpoll_abi::{MAX_VCPUS, layout, selectors};
use kvm_bindings::{kvm_regs, kvm_segment, kvm_sregs};

use crate::VmmError;
use crate::memory::GuestRam;

const PML4: u64 = layout::PAGE_TABLES;
const PDPT: u64 = layout::PAGE_TABLES + 0x1000;
const PD: u64 = layout::PAGE_TABLES + 0x2000;
/// Gigabytes identity-mapped (one page directory each).
const MAPPED_GIB: u64 = 4;

const PRESENT: u64 = 1 << 0;
const WRITABLE: u64 = 1 << 1;
const USER: u64 = 1 << 2;
const HUGE: u64 = 1 << 7;

/// GDT entries: null, ring-0 code (64-bit), ring-0 data, ring-3 code (64-bit), ring-3 data.
const GDT_SEGMENTS: [u64; 5] =
    [0, 0x00AF_9B00_0000_FFFF, 0x00CF_9300_0000_FFFF, 0x00AF_FB00_0000_FFFF, 0x00CF_F300_0000_FFFF];
/// A TSS is 104 bytes; RSP0 is at offset 4, the I/O bitmap offset at 102.
const TSS_SIZE: u64 = 104;
/// Type of a busy 64-bit TSS (TR must hold a busy one).
const TSS_BUSY: u8 = 0xB;

const CR0_PE: u64 = 1 << 0;
const CR0_MP: u64 = 1 << 1;
const CR0_ET: u64 = 1 << 4;
const CR0_NE: u64 = 1 << 5;
const CR0_WP: u64 = 1 << 16;
const CR0_PG: u64 = 1 << 31;
const CR4_PAE: u64 = 1 << 5;
const CR4_OSFXSR: u64 = 1 << 9;
const CR4_OSXMMEXCPT: u64 = 1 << 10;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;
const EFER_NXE: u64 = 1 << 11;

/// Writes the page tables, the GDT and the TSSs of `vcpus` vCPUs.
pub fn write_tables(ram: &GuestRam, vcpus: usize) -> Result<(), VmmError> {
    assert!(vcpus <= MAX_VCPUS, "the layout has room for {MAX_VCPUS} vCPUs");
    ram.write(PML4, &(PDPT | PRESENT | WRITABLE | USER))?;
    for gib in 0..MAPPED_GIB {
        let directory = PD + gib * 0x1000;
        ram.write(PDPT + gib * 8, &(directory | PRESENT | WRITABLE | USER))?;
        let entries: Vec<u64> =
            (0..512).map(|i| ((gib << 30) + (i << 21)) | PRESENT | WRITABLE | USER | HUGE).collect();
        ram.write(directory, entries.as_slice())?;
    }
    ram.write(layout::GDT, &GDT_SEGMENTS)?;
    for vcpu in 0..vcpus {
        ram.write(layout::GDT + u64::from(selectors::tss(vcpu)), &tss_descriptor(layout::tss(vcpu)))?;
        let mut tss = [0u8; TSS_SIZE as usize];
        tss[4..12].copy_from_slice(&layout::ring0_stack_top(vcpu).to_le_bytes());
        // No I/O permission bitmap: ring 3 may use no port.
        tss[102..104].copy_from_slice(&(TSS_SIZE as u16).to_le_bytes());
        ram.write(layout::tss(vcpu), &tss)?;
    }
    Ok(())
}

/// A 16-byte 64-bit TSS descriptor for a TSS at `base`.
fn tss_descriptor(base: u64) -> [u64; 2] {
    let limit = TSS_SIZE - 1;
    let low = (limit & 0xFFFF)
        | (base & 0xFF_FFFF) << 16
        | u64::from(0x80 | TSS_BUSY) << 40
        | (limit >> 16 & 0xF) << 48
        | (base >> 24 & 0xFF) << 56;
    [low, base >> 32]
}

fn segment(selector: u16, code: bool, dpl: u8) -> kvm_segment {
    kvm_segment {
        base: 0,
        limit: 0xFFFF_FFFF,
        selector,
        type_: if code { 0xB } else { 0x3 },
        present: 1,
        dpl,
        db: u8::from(!code),
        s: 1,
        l: u8::from(code),
        g: 1,
        ..Default::default()
    }
}

/// vCPU `vcpu`'s system registers: long mode, paging on, ring 0, its TSS in TR. `base` is what
/// KVM reports after creating the vCPU (it keeps fields this function does not set).
pub fn sregs(base: kvm_sregs, vcpu: usize) -> kvm_sregs {
    let gdt_limit = u64::from(selectors::tss(MAX_VCPUS)) - 1;
    kvm_sregs {
        cs: segment(selectors::KERNEL_CODE, true, 0),
        ss: segment(selectors::KERNEL_DATA, false, 0),
        // Ring-3 data in DS..GS: an `iretq` to ring 3 would null a DPL-0 selector there, and
        // loading a selector into GS later would wipe the GS base the guest sets.
        ds: segment(selectors::USER_DATA, false, 3),
        es: segment(selectors::USER_DATA, false, 3),
        fs: segment(selectors::USER_DATA, false, 3),
        gs: segment(selectors::USER_DATA, false, 3),
        tr: kvm_segment {
            base: layout::tss(vcpu),
            limit: (TSS_SIZE - 1) as u32,
            selector: selectors::tss(vcpu),
            type_: TSS_BUSY,
            present: 1,
            ..Default::default()
        },
        gdt: kvm_bindings::kvm_dtable { base: layout::GDT, limit: gdt_limit as u16, ..Default::default() },
        // The guest loads its own IDT first thing.
        idt: kvm_bindings::kvm_dtable::default(),
        cr0: CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG,
        cr3: PML4,
        cr4: CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT,
        efer: EFER_LME | EFER_LMA | EFER_NXE,
        ..base
    }
}

/// vCPU `vcpu`'s general registers: at `entry`, on its ring-0 stack, interrupts off, RDI = its
/// index (the guest's `_start` takes it as its argument).
pub fn regs(entry: u64, vcpu: usize) -> kvm_regs {
    kvm_regs { rip: entry, rsp: layout::ring0_stack_top(vcpu), rdi: vcpu as u64, rflags: 0x2, ..Default::default() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tables_identity_map_4gib_for_ring_3() {
        let ram = GuestRam::new().unwrap();
        write_tables(&ram, 2).unwrap();
        let walk = |va: u64| -> u64 {
            let pml4e: u64 = ram.read(PML4 + (va >> 39 & 511) * 8).unwrap();
            let pdpte: u64 = ram.read((pml4e & !0xFFF) + (va >> 30 & 511) * 8).unwrap();
            let pde: u64 = ram.read((pdpte & !0xFFF) + (va >> 21 & 511) * 8).unwrap();
            for entry in [pml4e, pdpte, pde] {
                assert_eq!(entry & (PRESENT | WRITABLE | USER), PRESENT | WRITABLE | USER, "{va:#x}");
            }
            assert_ne!(pde & HUGE, 0);
            (pde & !0x1F_FFFF & !(HUGE | USER | WRITABLE | PRESENT)) | (va & 0x1F_FFFF)
        };
        for va in [0, 0x1234, layout::IMAGE + 0x42, 0x7FFF_FFFF, 0xFEE0_0300, 0xFFFF_FFF8] {
            assert_eq!(walk(va), va);
        }
    }

    #[test]
    fn tss_descriptor_and_tss_point_at_the_ring0_stack() {
        let ram = GuestRam::new().unwrap();
        write_tables(&ram, 3).unwrap();
        let [low, high]: [u64; 2] = ram.read(layout::GDT + u64::from(selectors::tss(2))).unwrap();
        let base = (low >> 16 & 0xFF_FFFF) | (low >> 56 & 0xFF) << 24 | high << 32;
        assert_eq!(base, layout::tss(2));
        assert_eq!(low & 0xFFFF, TSS_SIZE - 1);
        assert_eq!(low >> 40 & 0xFF, 0x8B, "present, busy 64-bit TSS");
        let rsp0_bytes: [u8; 8] = ram.read(layout::tss(2) + 4).unwrap();
        assert_eq!(u64::from_le_bytes(rsp0_bytes), layout::ring0_stack_top(2));
        let user_code: u64 = ram.read(layout::GDT + u64::from(selectors::USER_CODE & !3)).unwrap();
        assert_eq!(user_code >> 45 & 3, 3, "ring-3 code descriptor has DPL 3");
    }

    #[test]
    fn sregs_enter_long_mode_at_ring_0() {
        let s = sregs(kvm_sregs::default(), 1);
        assert_eq!(s.cs.l, 1);
        assert_eq!(s.cs.dpl, 0);
        assert_eq!(s.efer & (EFER_LME | EFER_LMA), EFER_LME | EFER_LMA);
        assert_eq!(s.cr0 & (CR0_PG | CR0_PE), CR0_PG | CR0_PE);
        assert_eq!(s.cr4 & 1 << 2, 0, "CR4.TSD clear: RDTSC works at ring 3");
        assert_eq!(s.tr.selector, selectors::tss(1));
        let r = regs(0x40_0000, 1);
        assert_eq!((r.rip, r.rdi, r.rsp), (0x40_0000, 1, layout::ring0_stack_top(1)));
    }
}
