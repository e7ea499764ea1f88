//! The VM: KVM VM with the in-kernel irqchip, guest memory with the guest image loaded, the
//! boot tables, and vCPUs set up to start at the image's entry in long mode.

use std::sync::Arc;

use kvm_bindings::{KVM_CAP_HALT_POLL, KVM_MP_STATE_RUNNABLE, kvm_enable_cap, kvm_mp_state};
use kvm_ioctls::{Kvm, VcpuFd, VmFd};

use crate::cpuid::{GuestCpuid, View};
use crate::memory::GuestRam;
use crate::{VmmError, boot, loader, system};

/// Where KVM may put the TSS it needs for real-mode emulation on Intel (unused by this guest,
/// but KVM on Intel wants it set before the first KVM_RUN); the address Firecracker uses.
const KVM_TSS_ADDRESS: usize = 0xfffb_d000;

/// A VM ready for its vCPUs.
#[derive(Debug)]
pub struct Vm {
    // Field order is drop order: the VM file goes before the memory it maps (vCPU threads hold
    // their own references to the memory).
    fd: VmFd,
    ram: Arc<GuestRam>,
    cpuid: GuestCpuid,
    entry: u64,
}

impl Vm {
    /// Creates the VM: per-VM halt-polling window (if given), in-kernel irqchip, memory with the
    /// guest image loaded, page tables, GDT and TSSs for `vcpus` vCPUs.
    pub fn new(kvm: &Kvm, vcpus: usize, host_halt_poll_ns: Option<u64>) -> Result<Vm, VmmError> {
        let fd = kvm.create_vm().map_err(VmmError::kvm("KVM_CREATE_VM"))?;
        if let Some(ns) = host_halt_poll_ns {
            if !system::has_per_vm_halt_poll(kvm) {
                return Err(VmmError::MissingCapability {
                    capability: "KVM_CAP_HALT_POLL (Linux 5.13+)",
                    consequence: "a VM cannot set its own host halt-polling window; leave it at the host default",
                });
            }
            let cap = kvm_enable_cap { cap: KVM_CAP_HALT_POLL, args: [ns, 0, 0, 0], ..Default::default() };
            fd.enable_cap(&cap).map_err(VmmError::kvm("KVM_ENABLE_CAP(KVM_CAP_HALT_POLL)"))?;
        }
        fd.set_tss_address(KVM_TSS_ADDRESS).map_err(VmmError::kvm("KVM_SET_TSS_ADDR"))?;
        // The irqchip comes before the vCPUs, so each gets an in-kernel LAPIC.
        fd.create_irq_chip().map_err(VmmError::kvm("KVM_CREATE_IRQCHIP"))?;
        let ram = Arc::new(GuestRam::new()?);
        // SAFETY: `ram` outlives `fd` (field order), and no vCPU outlives `ram`: whoever gets
        // one from `create_vcpu` (the only way) must keep a clone of `ram` alive until it goes.
        unsafe { ram.register(&fd)? };
        let entry = loader::load(&ram, loader::GUEST_IMAGE)?;
        boot::write_tables(&ram, vcpus)?;
        let cpuid = GuestCpuid::new(kvm)?;
        Ok(Vm { fd, ram, cpuid, entry })
    }

    /// Creates vCPU `index` (also its APIC id), with its CPUID (showing what `view` says),
    /// registers and, for all but the first, a runnable MP state (with an in-kernel LAPIC they
    /// would otherwise wait for a SIPI).
    ///
    /// # Safety
    /// The vCPU must not outlive guest memory: hold a clone of [`Vm::ram`] until the returned
    /// `VcpuFd` has been dropped. (KVM keeps the VM, and the vCPU's access to the memory, alive
    /// for as long as a vCPU file is open, even after the `Vm` is gone; with the memory unmapped,
    /// a running guest would read and write whatever the process maps there next.)
    pub unsafe fn create_vcpu(&self, index: usize, view: View) -> Result<VcpuFd, VmmError> {
        let vcpu = self.fd.create_vcpu(index as u64).map_err(VmmError::kvm("KVM_CREATE_VCPU"))?;
        vcpu.set_cpuid2(&self.cpuid.for_vcpu(index as u8, view)?).map_err(VmmError::kvm("KVM_SET_CPUID2"))?;
        let sregs = vcpu.get_sregs().map_err(VmmError::kvm("KVM_GET_SREGS"))?;
        vcpu.set_sregs(&boot::sregs(sregs, index)).map_err(VmmError::kvm("KVM_SET_SREGS"))?;
        vcpu.set_regs(&boot::regs(self.entry, index)).map_err(VmmError::kvm("KVM_SET_REGS"))?;
        if index > 0 {
            vcpu.set_mp_state(kvm_mp_state { mp_state: KVM_MP_STATE_RUNNABLE })
                .map_err(VmmError::kvm("KVM_SET_MP_STATE"))?;
        }
        Ok(vcpu)
    }

    /// Guest memory.
    pub fn ram(&self) -> &Arc<GuestRam> {
        &self.ram
    }

    /// What the guest's CPUID shows.
    pub fn cpuid(&self) -> &GuestCpuid {
        &self.cpuid
    }
}
