//! The VM: KVM VM with the in-kernel irqchip, guest memory with the guest image loaded, the
//! boot tables, and vCPUs set up to start at the image's entry in long mode.

use std::sync::Arc;

use kvm_bindings::{KVM_CAP_HALT_POLL, KVM_MP_STATE_RUNNABLE, kvm_enable_cap, kvm_mp_state};
use kvm_ioctls::{Kvm, VcpuFd, VmFd};

use crate::cpuid::{GuestCpuid, View};
use crate::memory::GuestRam;
use crate::{VmmError, boot, loader, system, watchdog};

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
        // SAFETY: nothing that can run the guest outlives `ram`: `Vm` drops `fd` before `ram`
        // (field order), and each vCPU (KVM keeps the VM alive while one is open) is a `Vcpu`,
        // which holds a clone of `ram` and drops its file first.
        unsafe { ram.register(&fd)? };
        let entry = loader::load(&ram, loader::GUEST_IMAGE)?;
        boot::write_tables(&ram, vcpus)?;
        let cpuid = GuestCpuid::new(kvm)?;
        Ok(Vm { fd, ram, cpuid, entry })
    }

    /// Creates vCPU `index` (also its APIC id), with its CPUID (showing what `view` says),
    /// registers and, for all but the first, a runnable MP state (with an in-kernel LAPIC they
    /// would otherwise wait for a SIPI). The [`Vcpu`] holds the guest memory, so it may outlive
    /// the `Vm`.
    pub fn create_vcpu(&self, index: usize, view: View) -> Result<Vcpu, VmmError> {
        let vcpu = self.fd.create_vcpu(index as u64).map_err(VmmError::kvm("KVM_CREATE_VCPU"))?;
        vcpu.set_cpuid2(&self.cpuid.for_vcpu(index as u8, view)?).map_err(VmmError::kvm("KVM_SET_CPUID2"))?;
        let sregs = vcpu.get_sregs().map_err(VmmError::kvm("KVM_GET_SREGS"))?;
        vcpu.set_sregs(&boot::sregs(sregs, index)).map_err(VmmError::kvm("KVM_SET_SREGS"))?;
        vcpu.set_regs(&boot::regs(self.entry, index)).map_err(VmmError::kvm("KVM_SET_REGS"))?;
        if index > 0 {
            vcpu.set_mp_state(kvm_mp_state { mp_state: KVM_MP_STATE_RUNNABLE })
                .map_err(VmmError::kvm("KVM_SET_MP_STATE"))?;
        }
        Ok(Vcpu { fd: vcpu, _ram: self.ram.clone() })
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

/// A vCPU of a [`Vm`]. It holds the VM's guest memory: KVM keeps a VM, and its vCPUs' access to
/// the memory, alive for as long as a vCPU file is open, even after the [`Vm`] is gone, and with
/// the memory unmapped a running guest would read and write whatever the process maps there
/// next. The file is never handed out by value or by `&mut` (a `mem::swap` could move it away
/// from the memory), only lent: shared through [`Vcpu::fd`], or armed to run through
/// [`Vcpu::armed`].
#[derive(Debug)]
pub struct Vcpu {
    // Field order is drop order: the vCPU file goes before the memory.
    fd: VcpuFd,
    _ram: Arc<GuestRam>,
}

impl Vcpu {
    /// The KVM vCPU, for the ioctls that take it shared (registers, MP state, statistics).
    pub fn fd(&self) -> &VcpuFd {
        &self.fd
    }

    /// Runs `f` with the vCPU armed for the watchdog's kick on this thread
    /// ([`watchdog::armed`]).
    pub fn armed<R>(&mut self, f: impl FnOnce(&mut watchdog::Armed<'_>) -> R) -> R {
        watchdog::armed(&mut self.fd, f)
    }
}
