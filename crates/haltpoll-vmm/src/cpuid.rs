//! The CPUID each vCPU sees: what KVM supports, with the vCPU's APIC id, the KVM signature and
//! features (POLL_CONTROL), and the REALTIME hint only when the VMM asks for it. A [`View`] can
//! also hide the signature or POLL_CONTROL, to show how the guest's driver copes without them.

use haltpoll::driver::{
    CpuidRegs, KVM_CPUID_FEATURES_OFFSET, KVM_CPUID_SIGNATURE, KVM_FEATURE_POLL_CONTROL, KVM_HINTS_REALTIME, KvmInfo,
    detect_kvm,
};
use kvm_bindings::{CpuId, KVM_MAX_CPUID_ENTRIES, kvm_cpuid_entry2};
use kvm_ioctls::Kvm;

use crate::VmmError;

/// What of KVM the guest's CPUID shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct View {
    /// KVM_HINTS_REALTIME: every vCPU has a host CPU of its own.
    pub realtime_hint: bool,
    /// The KVM signature leaf (`false`: zeroed, so the guest finds no KVM).
    pub kvm_signature: bool,
    /// KVM_FEATURE_POLL_CONTROL, if the host has it.
    pub poll_control: bool,
}

impl Default for View {
    /// Everything the host offers, without the REALTIME hint.
    fn default() -> View {
        View { realtime_hint: false, kvm_signature: true, poll_control: true }
    }
}

/// KVM's supported CPUID, read once per VM.
#[derive(Clone, Debug)]
pub struct GuestCpuid {
    supported: CpuId,
}

impl GuestCpuid {
    /// Reads what the host's KVM supports and checks it shows the KVM signature.
    pub fn new(kvm: &Kvm) -> Result<GuestCpuid, VmmError> {
        let supported =
            kvm.get_supported_cpuid(KVM_MAX_CPUID_ENTRIES).map_err(VmmError::kvm("KVM_GET_SUPPORTED_CPUID"))?;
        let cpuid = GuestCpuid { supported };
        if cpuid.kvm_info().is_none() {
            return Err(VmmError::MissingCapability {
                capability: "the KVM CPUID signature (leaf 0x40000000)",
                consequence: "the guest cannot detect KVM or its poll-control feature",
            });
        }
        Ok(cpuid)
    }

    /// What a guest detects from these leaves (signature, features, hints), as the core crate's
    /// driver reads it.
    pub fn kvm_info(&self) -> Option<KvmInfo> {
        detect_kvm(|leaf| {
            self.supported
                .as_slice()
                .iter()
                .find(|e| e.function == leaf && e.index == 0)
                .map(|e| CpuidRegs { eax: e.eax, ebx: e.ebx, ecx: e.ecx, edx: e.edx })
                .unwrap_or_default()
        })
    }

    /// Whether the host offers MSR_KVM_POLL_CONTROL.
    pub fn poll_control(&self) -> bool {
        self.kvm_info().is_some_and(|k| k.poll_control())
    }

    /// The CPUID for vCPU `apic_id`, showing what `view` says.
    pub fn for_vcpu(&self, apic_id: u8, view: View) -> Result<CpuId, VmmError> {
        let features_leaf = KVM_CPUID_SIGNATURE + KVM_CPUID_FEATURES_OFFSET;
        let entries: Vec<kvm_cpuid_entry2> = self
            .supported
            .as_slice()
            .iter()
            .map(|&e| {
                let mut e = e;
                match e.function {
                    // Initial APIC id in EBX[31:24].
                    1 => e.ebx = (e.ebx & 0x00FF_FFFF) | u32::from(apic_id) << 24,
                    // x2APIC id of the topology leaves.
                    0xB | 0x1F => e.edx = u32::from(apic_id),
                    KVM_CPUID_SIGNATURE if !view.kvm_signature => (e.ebx, e.ecx, e.edx) = (0, 0, 0),
                    leaf if leaf == features_leaf => {
                        e.edx =
                            if view.realtime_hint { e.edx | KVM_HINTS_REALTIME } else { e.edx & !KVM_HINTS_REALTIME };
                        if !view.poll_control {
                            e.eax &= !KVM_FEATURE_POLL_CONTROL;
                        }
                    }
                    _ => {}
                }
                e
            })
            .collect();
        CpuId::from_entries(&entries).map_err(|e| VmmError::Host {
            operation: "building the guest's CPUID",
            error: std::io::Error::other(format!("{} entries: {e:?}", entries.len())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake() -> GuestCpuid {
        let entry =
            |function, eax, ebx, ecx, edx| kvm_cpuid_entry2 { function, eax, ebx, ecx, edx, ..Default::default() };
        let entries = [
            entry(1, 0, 0x0012_3456, 0, 0),
            entry(0xB, 0, 0, 0, 0),
            entry(0x4000_0000, 0x4000_0001, 0x4b4d_564b, 0x564b_4d56, 0x4d),
            entry(0x4000_0001, 0x0100_7efb, 0, 0, 0),
        ];
        GuestCpuid { supported: CpuId::from_entries(&entries).unwrap() }
    }

    fn leaf(cpuid: &CpuId, function: u32) -> kvm_cpuid_entry2 {
        *cpuid.as_slice().iter().find(|e| e.function == function).unwrap()
    }

    #[test]
    fn apic_id_and_realtime_hint_per_vcpu() {
        let cpuid = fake();
        assert!(cpuid.poll_control());
        let with = cpuid.for_vcpu(3, View { realtime_hint: true, ..View::default() }).unwrap();
        assert_eq!(leaf(&with, 1).ebx, 0x0312_3456);
        assert_eq!(leaf(&with, 0xB).edx, 3);
        assert_eq!(leaf(&with, 0x4000_0001).edx & KVM_HINTS_REALTIME, KVM_HINTS_REALTIME);
        let without = cpuid.for_vcpu(0, View::default()).unwrap();
        assert_eq!(leaf(&without, 0x4000_0001).edx & KVM_HINTS_REALTIME, 0);
        assert_eq!(leaf(&without, 0x4000_0001).eax & KVM_FEATURE_POLL_CONTROL, KVM_FEATURE_POLL_CONTROL);
    }

    #[test]
    fn the_signature_and_poll_control_can_be_hidden() {
        let cpuid = fake();
        let find = |view| {
            let table = cpuid.for_vcpu(0, view).unwrap();
            detect_kvm(|l| {
                let e = table.as_slice().iter().find(|e| e.function == l).copied().unwrap_or_default();
                CpuidRegs { eax: e.eax, ebx: e.ebx, ecx: e.ecx, edx: e.edx }
            })
        };
        assert!(find(View::default()).unwrap().poll_control());
        assert!(!find(View { poll_control: false, ..View::default() }).unwrap().poll_control());
        assert_eq!(find(View { kvm_signature: false, ..View::default() }), None);
    }
}
