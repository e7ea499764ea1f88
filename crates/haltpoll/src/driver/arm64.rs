//! arm64 KVM, found as Linux's `kvm_init_hyp_services` finds it: through the SMCCC
//! vendor-specific hypervisor service.
//!
//! A guest kernel asks with `hvc #0` (SMC Calling Convention 1.1, HVC conduit: the PSCI node of
//! the device tree or ACPI's FADT says `hvc`, and `SMCCC_VERSION` says 1.1 or later), the
//! function id in `w0`, the results in `x0`..`x3`. "Call UID" of the vendor-hypervisor range
//! returns KVM's UID; KVM's function 0 returns the bitmap of the services it offers. A kernel
//! that boots on SMC, or on SMCCC 1.0, has no hypervisor service to ask: it passes `None` to
//! [`decide_load`](super::decide_load), as Linux returns early.
//!
//! What arm64 KVM does not have: poll control (nothing like `MSR_KVM_POLL_CONTROL`, so the host
//! keeps halt polling on a vCPU that polls itself) and any REALTIME hint (no promise of dedicated
//! CPUs). So the driver loads only with `force`, as in Linux's arm64 cpuidle-haltpoll series;
//! [`KvmServices`] has no poll-control value to write.
//!
//! ```
//! use haltpoll::driver::arm64::{detect_kvm, KVM_UID, VENDOR_HYP_CALL_UID_FUNC_ID};
//! use haltpoll::driver::{decide_load, DriverLoad, LoadOptions, Refusal};
//! // What `hvc #0` returns in x0..x3 for each function id (here: KVM with PTP).
//! let hvc = |function: u32| match function {
//!     VENDOR_HYP_CALL_UID_FUNC_ID => KVM_UID.map(u64::from),
//!     0x8600_0000 => [0b11, 0, 0, 0],
//!     _ => [u64::MAX, 0, 0, 0], // SMCCC's NOT_SUPPORTED, -1
//! };
//! let kvm = detect_kvm(hvc);
//! assert!(kvm.is_some());
//! assert_eq!(decide_load(kvm, LoadOptions::default()), Err(Refusal::NoRealtimeHint));
//! let forced = decide_load(kvm, LoadOptions { force: true });
//! assert_eq!(DriverLoad::of(forced), DriverLoad::Forced);
//! ```

use super::KvmInterface;

/// The registers `x0`..`x3` one SMCCC call returns.
pub type SmcccRegs = [u64; 4];

/// SMCCC function id of "Call UID" in the vendor-specific hypervisor range: a fast call, SMC32
/// convention, owner 6 (vendor hypervisor), function 0xff01.
pub const VENDOR_HYP_CALL_UID_FUNC_ID: u32 = 0x8600_ff01;

/// SMCCC function id of KVM's feature query, function 0 of the vendor-hypervisor range (fast
/// call, SMC32, owner 6): the bitmap of the KVM services, 32 bits in each of `w0`..`w3`.
pub const VENDOR_HYP_KVM_FEATURES_FUNC_ID: u32 = 0x8600_0000;

/// KVM's UID, `28b46fb6-2ec5-11e9-a9ca-4b564d003a74`, as "Call UID" returns it in `w0`..`w3`.
pub const KVM_UID: [u32; 4] = [0xb66f_b428, 0xe911_c52e, 0x564b_caa9, 0x743a_004d];

/// Bit of the feature bitmap: the feature query itself (KVM always sets it).
pub const KVM_FUNC_FEATURES: u32 = 0;
/// Bit of the feature bitmap: the PTP call (`ptp_kvm`, the host's clock).
pub const KVM_FUNC_PTP: u32 = 1;

/// What arm64 KVM tells a guest about itself: the services it offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvmServices {
    /// The feature bitmap, 128 bits: bit `n` of word `n / 32` is function `n` of KVM's
    /// vendor-hypervisor range.
    pub features: [u32; 4],
}

impl KvmServices {
    /// Whether KVM offers vendor-hypervisor function `function` (0..128).
    pub const fn has(&self, function: u32) -> bool {
        function < 128 && self.features[(function / 32) as usize] & (1 << (function % 32)) != 0
    }
}

impl KvmInterface for KvmServices {
    /// Never: arm64 KVM has no way to promise dedicated CPUs, so loading takes `force`.
    fn realtime_hint(&self) -> bool {
        false
    }
}

/// The low 32 bits of each register: SMC32 calls return their results in `w0`..`w3`, and what
/// the upper halves hold is no part of the answer.
const fn words(regs: SmcccRegs) -> [u32; 4] {
    [regs[0] as u32, regs[1] as u32, regs[2] as u32, regs[3] as u32]
}

/// Whether a "Call UID" answer is KVM's UID.
pub const fn is_kvm_uid(regs: SmcccRegs) -> bool {
    let w = words(regs);
    w[0] == KVM_UID[0] && w[1] == KVM_UID[1] && w[2] == KVM_UID[2] && w[3] == KVM_UID[3]
}

/// Finds arm64 KVM: `hvc(function_id)` makes one SMCCC call over the HVC conduit (or looks it
/// up) and returns `x0`..`x3`. Asks "Call UID" of the vendor-hypervisor range, and if the
/// answer is KVM's UID, KVM's feature bitmap. Returns `None` for any other hypervisor (or none:
/// an unknown function returns NOT_SUPPORTED, -1, which is no UID).
pub fn detect_kvm(mut hvc: impl FnMut(u32) -> SmcccRegs) -> Option<KvmServices> {
    if !is_kvm_uid(hvc(VENDOR_HYP_CALL_UID_FUNC_ID)) {
        return None;
    }
    Some(KvmServices { features: words(hvc(VENDOR_HYP_KVM_FEATURES_FUNC_ID)) })
}

#[cfg(test)]
mod tests {
    use super::super::{DriverLoad, LoadOptions, Loaded, Refusal, decide_load};
    use super::*;

    const NOT_SUPPORTED: SmcccRegs = [u64::MAX, 0, 0, 0];

    fn kvm_answers(features: SmcccRegs) -> impl FnMut(u32) -> SmcccRegs {
        move |function| match function {
            VENDOR_HYP_CALL_UID_FUNC_ID => KVM_UID.map(u64::from),
            VENDOR_HYP_KVM_FEATURES_FUNC_ID => features,
            _ => NOT_SUPPORTED,
        }
    }

    #[test]
    fn function_ids_follow_the_smccc_encoding() {
        // bit 31 fast call, bit 30 clear (SMC32), bits 29:24 the owner (6: vendor hypervisor),
        // bits 15:0 the function.
        let id = |function: u32| (1 << 31) | (6 << 24) | function;
        assert_eq!(VENDOR_HYP_CALL_UID_FUNC_ID, id(0xff01));
        assert_eq!(VENDOR_HYP_KVM_FEATURES_FUNC_ID, id(0));
    }

    #[test]
    fn finds_kvm_and_its_services() {
        let kvm = detect_kvm(kvm_answers([0b11, 0, 0, 1 << 31])).unwrap();
        assert!(kvm.has(KVM_FUNC_FEATURES) && kvm.has(KVM_FUNC_PTP));
        assert!(!kvm.has(2));
        assert!(kvm.has(127), "the last word holds functions 96..128");
        assert!(!kvm.has(128), "no function past the bitmap");
    }

    #[test]
    fn reads_only_the_low_words() {
        let uid = KVM_UID.map(|w| u64::from(w) | 0xdead_0000_0000_0000);
        assert!(is_kvm_uid(uid));
        let kvm = detect_kvm(|f| if f == VENDOR_HYP_CALL_UID_FUNC_ID { uid } else { [0xffff_ffff_0000_0001, 0, 0, 0] });
        assert_eq!(kvm, Some(KvmServices { features: [1, 0, 0, 0] }));
    }

    #[test]
    fn another_hypervisor_or_none_is_not_kvm() {
        assert_eq!(detect_kvm(|_| NOT_SUPPORTED), None);
        // One word off (the UID read in the wrong byte order, say).
        let swapped = [KVM_UID[1], KVM_UID[0], KVM_UID[2], KVM_UID[3]].map(u64::from);
        assert_eq!(detect_kvm(|_| swapped), None);
        let decision = decide_load(detect_kvm(|_| NOT_SUPPORTED), LoadOptions { force: true });
        assert_eq!(decision, Err(Refusal::NotKvm));
    }

    #[test]
    fn loads_only_when_forced() {
        let kvm = detect_kvm(kvm_answers([1, 0, 0, 0]));
        let refused = decide_load(kvm, LoadOptions::default());
        assert_eq!(refused, Err(Refusal::NoRealtimeHint));
        assert_eq!(DriverLoad::of(refused), DriverLoad::RefusedNoRealtimeHint);
        let forced = decide_load(kvm, LoadOptions { force: true });
        assert_eq!(forced, Ok(Loaded { kvm: kvm.unwrap(), forced: true }));
        assert_eq!(DriverLoad::of(forced), DriverLoad::Forced);
    }
}
