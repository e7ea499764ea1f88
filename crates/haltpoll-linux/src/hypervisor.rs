//! What the hypervisor offers this CPU, from CPUID: executed here, decoded by the core crate's
//! [`haltpoll::driver`] exactly as the driver decides whether to load.

use haltpoll::driver::{self, CpuidRegs, KvmInfo, LoadOptions, Loaded, Refusal};

/// What CPUID says about the hypervisor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cpuid {
    /// CPUID does not exist on this architecture.
    Unavailable {
        /// The architecture, as Rust names it.
        arch: &'static str,
    },
    /// What the CPU answered.
    Answered(Hypervisor),
}

/// The hypervisor leaves of CPUID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hypervisor {
    /// Leaf 1 ECX bit 31: a hypervisor says it is there (clear on bare metal).
    pub present: bool,
    /// The 12-byte signature at leaf 0x40000000, if a hypervisor is present.
    pub signature: Option<[u8; 12]>,
    /// KVM and what it offers, found as the driver finds it.
    pub kvm: Option<KvmInfo>,
}

impl Hypervisor {
    /// Decodes the leaves `cpuid` returns (pure: tests pass made-up leaves).
    pub fn decode(mut cpuid: impl FnMut(u32) -> CpuidRegs) -> Hypervisor {
        const HYPERVISOR_BIT: u32 = 1 << 31;
        // Linux looks for KVM only when the hypervisor bit is set: without it the leaves
        // above the basic range repeat the last basic leaf on some CPUs and mean nothing.
        if cpuid(1).ecx & HYPERVISOR_BIT == 0 {
            return Hypervisor { present: false, signature: None, kvm: None };
        }
        let sig = cpuid(driver::KVM_CPUID_SIGNATURE);
        let mut signature = [0u8; 12];
        for (chunk, reg) in signature.chunks_exact_mut(4).zip([sig.ebx, sig.ecx, sig.edx]) {
            chunk.copy_from_slice(&reg.to_le_bytes());
        }
        Hypervisor { present: true, signature: Some(signature), kvm: driver::detect_kvm(cpuid) }
    }

    /// The signature as text ("KVMKVMKVM", "Microsoft Hv"), with NULs dropped.
    pub fn signature_text(&self) -> Option<String> {
        self.signature.map(|s| s.iter().filter(|&&b| b != 0).map(|&b| char::from(b)).collect())
    }
}

/// Executes CPUID on the CPU this runs on.
pub fn probe() -> Cpuid {
    #[cfg(target_arch = "x86_64")]
    {
        Cpuid::Answered(Hypervisor::decode(|leaf| {
            let r = core::arch::x86_64::__cpuid(leaf);
            CpuidRegs { eax: r.eax, ebx: r.ebx, ecx: r.ecx, edx: r.edx }
        }))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        Cpuid::Unavailable { arch: std::env::consts::ARCH }
    }
}

/// Whether the cpuidle-haltpoll driver would load here, with `force` as given
/// (`cpuidle_haltpoll.force`).
pub fn would_load(kvm: Option<KvmInfo>, force: bool) -> Result<Loaded, Refusal> {
    // `idle=` on the kernel command line is not visible in sysfs; the driver's own presence
    // (`current_driver`) shows whether it loaded.
    driver::decide_load(kvm, LoadOptions { force })
}

#[cfg(test)]
mod tests {
    use super::*;
    use haltpoll::driver::{KVM_FEATURE_POLL_CONTROL, KVM_HINTS_REALTIME};

    const KVM_SIG: CpuidRegs = CpuidRegs { eax: 0x4000_0001, ebx: 0x4b4d_564b, ecx: 0x564b_4d56, edx: 0x4d };

    fn leaves(hv_bit: bool, sig: CpuidRegs, features: u32, hints: u32) -> impl FnMut(u32) -> CpuidRegs {
        move |leaf| match leaf {
            1 => CpuidRegs { ecx: if hv_bit { 1 << 31 } else { 0 }, ..Default::default() },
            0x4000_0000 => sig,
            0x4000_0001 => CpuidRegs { eax: features, edx: hints, ..Default::default() },
            _ => CpuidRegs::default(),
        }
    }

    #[test]
    fn kvm_with_poll_control_and_no_hint() {
        // What this project's development machine answers.
        let hv = Hypervisor::decode(leaves(true, KVM_SIG, 0x0100_7efb, 0));
        assert!(hv.present);
        assert_eq!(hv.signature_text().as_deref(), Some("KVMKVMKVM"));
        let kvm = hv.kvm.unwrap();
        assert!(kvm.poll_control() && !kvm.realtime_hint());
        assert_eq!(would_load(hv.kvm, false), Err(Refusal::NoRealtimeHint));
        assert!(would_load(hv.kvm, true).unwrap().forced);
    }

    #[test]
    fn realtime_hint_loads_unforced() {
        let hv = Hypervisor::decode(leaves(true, KVM_SIG, KVM_FEATURE_POLL_CONTROL, KVM_HINTS_REALTIME));
        assert!(!would_load(hv.kvm, false).unwrap().forced);
    }

    #[test]
    fn bare_metal_and_other_hypervisors() {
        let hv = Hypervisor::decode(leaves(false, KVM_SIG, 0, 0));
        assert_eq!(hv, Hypervisor { present: false, signature: None, kvm: None });
        let hyperv = CpuidRegs { eax: 0x4000_0006, ebx: 0x7263_694d, ecx: 0x666f_736f, edx: 0x7648_2074 };
        let hv = Hypervisor::decode(leaves(true, hyperv, 0, 0));
        assert_eq!(hv.signature_text().as_deref(), Some("Microsoft Hv"));
        assert_eq!(hv.kvm, None);
        assert_eq!(would_load(hv.kvm, true), Err(Refusal::NotKvm));
    }

    #[test]
    fn probe_answers_on_x86_64() {
        // Whatever machine the test runs on, the probe must not fault and must agree with itself.
        if let Cpuid::Answered(hv) = probe()
            && hv.signature_text().as_deref() == Some("KVMKVMKVM")
        {
            assert!(hv.kvm.is_some());
        }
    }
}
