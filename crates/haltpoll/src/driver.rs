//! The cpuidle-haltpoll driver's side: the table of idle states, the decision whether to load at
//! all, and the host coordination through `MSR_KVM_POLL_CONTROL`.
//!
//! Everything here is a pure function of values the caller reads (CPUID leaves, SMCCC call
//! results, options), so it can be tested anywhere; executing `cpuid`, `hvc` and `wrmsr` is the
//! kernel's job. Each hypervisor interface finds KVM in its own registers: x86 KVM through the
//! CPUID hypervisor leaves ([`detect_kvm`], [`KvmInfo`], here), arm64 KVM through the SMCCC
//! vendor-hypervisor service ([`arm64`]). [`decide_load`] takes either.

use core::fmt;

pub mod arm64;

/// An entry of the driver's idle-state table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateInfo {
    /// The name Linux shows in `/sys/devices/system/cpu/cpuN/cpuidle/stateK/name`.
    pub name: &'static str,
    /// What the state does.
    pub desc: &'static str,
    /// Worst-case time to leave the state, ns.
    pub exit_latency_ns: u64,
    /// Shortest stay for which entering the state pays, ns.
    pub target_residency_ns: u64,
}

/// State 0: spin in the guest with the POLLING flag set.
pub const POLL: StateInfo =
    StateInfo { name: "POLL", desc: "CPUIDLE CORE POLL IDLE", exit_latency_ns: 0, target_residency_ns: 0 };

/// State 1: halt (a VM exit), woken by an interrupt.
pub const HALT: StateInfo = StateInfo {
    name: "haltpoll idle",
    desc: "default architecture idle",
    exit_latency_ns: 1_000,
    target_residency_ns: 1_000,
};

/// The driver's table, indexed by [`IdleState`].
pub const STATES: [StateInfo; 2] = [POLL, HALT];

/// The idle states of the haltpoll driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum IdleState {
    /// Spin with POLLING set until woken or the window runs out.
    Poll = 0,
    /// Halt until an interrupt.
    Halt = 1,
}

impl IdleState {
    /// This state's entry in [`STATES`].
    pub const fn info(self) -> &'static StateInfo {
        &STATES[self as usize]
    }
}

/// The registers one `cpuid` instruction returns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuidRegs {
    /// EAX.
    pub eax: u32,
    /// EBX.
    pub ebx: u32,
    /// ECX.
    pub ecx: u32,
    /// EDX.
    pub edx: u32,
}

/// First leaf of the hypervisor range; KVM answers its signature here (or at a multiple of
/// 0x100 above it when it also emulates another hypervisor's interface).
pub const KVM_CPUID_SIGNATURE: u32 = 0x4000_0000;
/// Offset of the KVM features leaf from the signature leaf.
pub const KVM_CPUID_FEATURES_OFFSET: u32 = 1;
/// Leaf 0x40000001 EAX bit: the host honours `MSR_KVM_POLL_CONTROL`.
pub const KVM_FEATURE_POLL_CONTROL: u32 = 1 << 12;
/// Leaf 0x40000001 EDX bit: each vCPU has a dedicated physical CPU (nothing else to run there).
pub const KVM_HINTS_REALTIME: u32 = 1 << 0;
/// The MSR whose bit 0 enables (1) or disables (0) host-side halt polling for this vCPU.
pub const MSR_KVM_POLL_CONTROL: u32 = 0x4b56_4d05;
/// The signature KVM returns in EBX, ECX, EDX of its signature leaf.
pub const KVM_SIGNATURE: &[u8; 12] = b"KVMKVMKVM\0\0\0";

/// What KVM tells a guest about itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvmInfo {
    /// The leaf the signature was found at.
    pub base: u32,
    /// Raw feature bits (leaf base+1 EAX).
    pub features: u32,
    /// Raw hint bits (leaf base+1 EDX).
    pub hints: u32,
}

/// What the load decision needs to know of a hypervisor interface's KVM: x86's [`KvmInfo`],
/// arm64's [`arm64::KvmServices`].
pub trait KvmInterface: Copy {
    /// Whether the host promises a dedicated physical CPU per vCPU (x86's REALTIME hint).
    fn realtime_hint(&self) -> bool;
}

impl KvmInterface for KvmInfo {
    fn realtime_hint(&self) -> bool {
        KvmInfo::realtime_hint(self)
    }
}

impl KvmInfo {
    /// Whether the host lets the guest switch host-side polling off.
    pub const fn poll_control(&self) -> bool {
        self.features & KVM_FEATURE_POLL_CONTROL != 0
    }

    /// Whether the host promises a dedicated physical CPU per vCPU.
    pub const fn realtime_hint(&self) -> bool {
        self.hints & KVM_HINTS_REALTIME != 0
    }
}

/// Whether a signature leaf's registers spell KVM's signature.
pub fn is_kvm_signature(regs: CpuidRegs) -> bool {
    let mut sig = [0u8; 12];
    sig[0..4].copy_from_slice(&regs.ebx.to_le_bytes());
    sig[4..8].copy_from_slice(&regs.ecx.to_le_bytes());
    sig[8..12].copy_from_slice(&regs.edx.to_le_bytes());
    &sig == KVM_SIGNATURE
}

/// Finds KVM in the hypervisor CPUID range, as Linux's `kvm_cpuid_base` does: `cpuid(leaf)`
/// executes (or looks up) one leaf. Returns `None` on a CPU with no KVM signature.
///
/// ```
/// use haltpoll::driver::{detect_kvm, CpuidRegs};
/// let leaves = |leaf: u32| match leaf {
///     0x4000_0000 => CpuidRegs { eax: 0x4000_0001, ebx: 0x4b4d_564b, ecx: 0x564b_4d56, edx: 0x4d },
///     0x4000_0001 => CpuidRegs { eax: 0x0100_7efb, ebx: 0, ecx: 0, edx: 0 },
///     _ => CpuidRegs::default(),
/// };
/// let kvm = detect_kvm(leaves).unwrap();
/// assert!(kvm.poll_control());
/// assert!(!kvm.realtime_hint());
/// ```
pub fn detect_kvm(mut cpuid: impl FnMut(u32) -> CpuidRegs) -> Option<KvmInfo> {
    (KVM_CPUID_SIGNATURE..0x4001_0000).step_by(0x100).find_map(|base| {
        if !is_kvm_signature(cpuid(base)) {
            return None;
        }
        let feat = cpuid(base + KVM_CPUID_FEATURES_OFFSET);
        Some(KvmInfo { base, features: feat.eax, hints: feat.edx })
    })
}

/// The options a user gives the driver.
///
/// (Linux also refuses when `idle=` on the kernel command line chose another idle mode; a
/// kernel with such an option would not call [`decide_load`] at all.)
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Load even without the REALTIME hint (Linux's `cpuidle_haltpoll.force=1`).
    pub force: bool,
}

/// Why the driver refused to load (Linux returns `-ENODEV` in each case).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No KVM signature (x86: in the CPUID hypervisor leaves; arm64: the SMCCC
    /// vendor-hypervisor UID): there is no VM exit to save.
    NotKvm,
    /// The host does not promise dedicated CPUs (x86 KVM's REALTIME hint is clear; arm64 KVM
    /// has no such hint at all), so polling could steal time from other runnable work on the
    /// host; `force` overrides.
    NoRealtimeHint,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::NotKvm => {
                "not KVM (no KVM signature in CPUID, nor KVM's UID from the SMCCC vendor-hypervisor \
                 call): there is no VM exit to save"
            }
            Refusal::NoRealtimeHint => {
                "no REALTIME hint (KVM_HINTS_REALTIME: the host promises no dedicated physical CPUs; \
                 arm64 KVM has no such hint), so polling may steal time from other work on the host; \
                 force loads it anyway"
            }
        })
    }
}

impl core::error::Error for Refusal {}

/// The driver, loaded: what it found and what it must do with host polling. `K` is the
/// hypervisor interface's view of KVM: x86's [`KvmInfo`] (the default) or
/// [`arm64::KvmServices`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Loaded<K = KvmInfo> {
    /// What KVM offers.
    pub kvm: K,
    /// Whether the load needed `force` (no REALTIME hint).
    pub forced: bool,
}

impl Loaded<KvmInfo> {
    /// The value to write to [`MSR_KVM_POLL_CONTROL`] on a CPU as guest polling is enabled
    /// (`true`: 0, host polling off) or disabled (`false`: 1, host polling back on), or `None`
    /// when the host has no poll control (log that once and carry on).
    pub const fn poll_control_msr(&self, guest_polling: bool) -> Option<u64> {
        if self.kvm.poll_control() { Some(poll_control_value(guest_polling)) } else { None }
    }
}

/// The `MSR_KVM_POLL_CONTROL` value for a CPU: 0 while the guest polls (the host need not),
/// 1 when guest polling is off (a CPU going offline, the driver unloading).
pub const fn poll_control_value(guest_polling: bool) -> u64 {
    if guest_polling { 0 } else { 1 }
}

/// Decides whether the driver loads, in Linux's order: KVM signature, then REALTIME hint
/// (unless forced). `kvm` is what the interface's detection found: [`detect_kvm`] on x86,
/// [`arm64::detect_kvm`] on arm64, where there is never a REALTIME hint, so only `force` loads
/// it (as in Linux's arm64 series).
pub fn decide_load<K: KvmInterface>(kvm: Option<K>, options: LoadOptions) -> Result<Loaded<K>, Refusal> {
    let kvm = kvm.ok_or(Refusal::NotKvm)?;
    if !kvm.realtime_hint() && !options.force {
        return Err(Refusal::NoRealtimeHint);
    }
    Ok(Loaded { kvm, forced: !kvm.realtime_hint() })
}

/// What became of the driver on one CPU: loaded, and how, or not, and why. A kernel reports it
/// (the haltpoll guest writes it for its VMM as a number, hence `#[repr(u32)]` with fixed
/// values); its [`Display`](fmt::Display) is the one place it is put into words: `{}` gives the
/// short form for tables and JSON (`loaded`, `refused: no REALTIME hint`), `{:#}` a sentence.
///
/// ```
/// use haltpoll::driver::{decide_load, DriverLoad, LoadOptions};
/// let load = DriverLoad::of(decide_load(None::<haltpoll::driver::KvmInfo>, LoadOptions::default()));
/// assert_eq!(load, DriverLoad::RefusedNotKvm);
/// assert_eq!(load.to_string(), "refused: not KVM");
/// assert_eq!(DriverLoad::from_raw(load as u32), Some(load));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum DriverLoad {
    /// The CPU does not use the haltpoll driver at all (another idle policy).
    NotUsed = 0,
    /// Loaded: KVM with the REALTIME hint.
    Loaded = 1,
    /// Loaded without the REALTIME hint because it was forced.
    Forced = 2,
    /// Refused: [`Refusal::NotKvm`]. The CPU halts at once instead.
    RefusedNotKvm = 3,
    /// Refused: [`Refusal::NoRealtimeHint`]. The CPU halts at once instead.
    RefusedNoRealtimeHint = 4,
    /// Refused: the governor parameters are invalid ([`Params::validate`](crate::Params::validate)).
    RefusedBadParams = 5,
}

crate::repr_u32_enum!(DriverLoad { NotUsed, Loaded, Forced, RefusedNotKvm, RefusedNoRealtimeHint, RefusedBadParams });

impl DriverLoad {
    /// What [`decide_load`] decided, on any hypervisor interface.
    pub const fn of<K: KvmInterface>(decision: Result<Loaded<K>, Refusal>) -> DriverLoad {
        match decision {
            Ok(Loaded { forced: false, .. }) => DriverLoad::Loaded,
            Ok(Loaded { forced: true, .. }) => DriverLoad::Forced,
            Err(Refusal::NotKvm) => DriverLoad::RefusedNotKvm,
            Err(Refusal::NoRealtimeHint) => DriverLoad::RefusedNoRealtimeHint,
        }
    }

    /// Whether the driver runs (guest polling possible).
    pub const fn loaded(self) -> bool {
        matches!(self, DriverLoad::Loaded | DriverLoad::Forced)
    }
}

impl fmt::Display for DriverLoad {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let alternate = f.alternate();
        let words = |f: &mut fmt::Formatter<'_>, short: &str, sentence: &str| {
            f.write_str(if alternate { sentence } else { short })
        };
        // A refusal's sentence is the refusal's own words, so the two cannot drift apart.
        let refused = |f: &mut fmt::Formatter<'_>, short: &str, why: Refusal| {
            if alternate { write!(f, "refused: {why}. The vCPUs halt at once") } else { write!(f, "refused: {short}") }
        };
        match self {
            DriverLoad::NotUsed => words(f, "not used", "not used"),
            DriverLoad::Loaded => words(f, "loaded", "loaded (REALTIME hint)"),
            DriverLoad::Forced => words(f, "forced", "loaded without the REALTIME hint because it was forced (force)"),
            DriverLoad::RefusedNotKvm => refused(f, "not KVM", Refusal::NotKvm),
            DriverLoad::RefusedNoRealtimeHint => refused(f, "no REALTIME hint", Refusal::NoRealtimeHint),
            DriverLoad::RefusedBadParams => words(f, "refused: bad parameters", "refused: invalid governor parameters"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIG: CpuidRegs = CpuidRegs { eax: 0x4000_0001, ebx: 0x4b4d_564b, ecx: 0x564b_4d56, edx: 0x4d };

    fn kvm(features: u32, hints: u32) -> KvmInfo {
        KvmInfo { base: KVM_CPUID_SIGNATURE, features, hints }
    }

    #[test]
    fn table_matches_linux() {
        assert_eq!(IdleState::Poll.info().exit_latency_ns, 0);
        assert_eq!(IdleState::Poll.info().target_residency_ns, 0);
        assert_eq!(IdleState::Halt.info().exit_latency_ns, 1_000);
        assert_eq!(IdleState::Halt.info().target_residency_ns, 1_000);
        assert_eq!(IdleState::Halt.info().name, "haltpoll idle");
        assert_eq!(IdleState::Poll.info().name, "POLL");
    }

    #[test]
    fn signature_is_recognised() {
        assert!(is_kvm_signature(SIG));
        assert!(!is_kvm_signature(CpuidRegs { ebx: 0x7263_694d, ..SIG })); // "Micr..."
        assert!(!is_kvm_signature(CpuidRegs::default()));
    }

    #[test]
    fn detect_finds_kvm_at_a_shifted_base() {
        let found = detect_kvm(|leaf| match leaf {
            0x4000_0000 => CpuidRegs { ebx: 0x7263_694d, ecx: 0x666f_736f, edx: 0x7648_2074, eax: 0 },
            0x4000_0100 => SIG,
            0x4000_0101 => CpuidRegs { eax: KVM_FEATURE_POLL_CONTROL, edx: KVM_HINTS_REALTIME, ..Default::default() },
            _ => CpuidRegs::default(),
        })
        .unwrap();
        assert_eq!(found.base, 0x4000_0100);
        assert!(found.poll_control() && found.realtime_hint());
        assert_eq!(detect_kvm(|_| CpuidRegs::default()), None);
    }

    #[test]
    fn refuses_off_kvm_even_when_forced() {
        let opts = LoadOptions { force: true };
        assert_eq!(decide_load(None::<KvmInfo>, opts), Err(Refusal::NotKvm));
    }

    #[test]
    fn refuses_without_hint_unless_forced() {
        let info = kvm(KVM_FEATURE_POLL_CONTROL, 0);
        assert_eq!(decide_load(Some(info), LoadOptions::default()), Err(Refusal::NoRealtimeHint));
        let loaded = decide_load(Some(info), LoadOptions { force: true }).unwrap();
        assert!(loaded.forced);
        let loaded = decide_load(Some(kvm(0, KVM_HINTS_REALTIME)), LoadOptions::default()).unwrap();
        assert!(!loaded.forced);
    }

    #[test]
    fn load_decisions_round_trip_through_raw() {
        for load in [
            DriverLoad::NotUsed,
            DriverLoad::Loaded,
            DriverLoad::Forced,
            DriverLoad::RefusedNotKvm,
            DriverLoad::RefusedNoRealtimeHint,
            DriverLoad::RefusedBadParams,
        ] {
            assert_eq!(DriverLoad::from_raw(load as u32), Some(load));
        }
        assert_eq!(DriverLoad::from_raw(6), None);
        let refused = decide_load(Some(kvm(0, 0)), LoadOptions::default());
        assert_eq!(DriverLoad::of(refused), DriverLoad::RefusedNoRealtimeHint);
    }

    #[test]
    fn msr_values() {
        assert_eq!(MSR_KVM_POLL_CONTROL, 0x4b564d05);
        let with =
            decide_load(Some(kvm(KVM_FEATURE_POLL_CONTROL, KVM_HINTS_REALTIME)), LoadOptions::default()).unwrap();
        assert_eq!(with.poll_control_msr(true), Some(0));
        assert_eq!(with.poll_control_msr(false), Some(1));
        let without = decide_load(Some(kvm(0, KVM_HINTS_REALTIME)), LoadOptions::default()).unwrap();
        assert_eq!(without.poll_control_msr(true), None);
    }
}
