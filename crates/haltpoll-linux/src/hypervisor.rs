//! What the hypervisor offers this CPU, from CPUID: executed here, decoded by the core crate's
//! [`haltpoll::driver`] exactly as the driver decides whether to load.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

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

/// Each vCPU's `MSR_KVM_POLL_CONTROL` as the msr driver reads it (`/dev/cpu/N/msr`): whether
/// the host may halt-poll for it. The cpuidle-haltpoll driver writes 0 (host polling off) on
/// each CPU it brings online and 1 when it goes away; nothing else in Linux writes it, and no
/// sysfs file shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostPolling {
    /// Read on each CPU: its number, and whether the host may poll for it (bit 0).
    Read(Vec<(u32, bool)>),
    /// Not read, and why.
    Unread(String),
}

/// Reads `MSR_KVM_POLL_CONTROL` of every CPU under `dev` (`/dev`). Reading an MSR changes
/// nothing; it needs root and the msr driver.
pub fn read_host_polling(dev: &Path) -> HostPolling {
    let cpu_dir = dev.join("cpu");
    let mut cpus: Vec<u32> = match std::fs::read_dir(&cpu_dir) {
        Ok(entries) => entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect(),
        Err(_) => return HostPolling::Unread(format!("{} does not exist: not Linux, or no /dev", cpu_dir.display())),
    };
    cpus.sort_unstable();
    let mut read = Vec::new();
    for cpu in cpus {
        let path = cpu_dir.join(cpu.to_string()).join("msr");
        let mut bytes = [0u8; 8];
        let result =
            File::open(&path).and_then(|f| f.read_exact_at(&mut bytes, u64::from(driver::MSR_KVM_POLL_CONTROL)));
        match result {
            Ok(()) => read.push((cpu, u64::from_le_bytes(bytes) & 1 == 1)),
            Err(e) => return HostPolling::Unread(msr_error(&path, &e)),
        }
    }
    if read.is_empty() {
        return HostPolling::Unread(format!("{} lists no CPU", cpu_dir.display()));
    }
    HostPolling::Read(read)
}

fn msr_error(path: &Path, e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => {
            format!("{} does not exist: the msr driver is not loaded (`modprobe msr` adds it)", path.display())
        }
        io::ErrorKind::PermissionDenied => format!("reading {} needs root (CAP_SYS_RAWIO)", path.display()),
        // The msr driver answers EIO when the CPU faults on the read: no such MSR here.
        _ if e.raw_os_error() == Some(5) => {
            format!("the CPU refused to read MSR_KVM_POLL_CONTROL ({}): the host does not offer it", path.display())
        }
        _ => format!("{}: {e}", path.display()),
    }
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
    fn host_polling_from_each_cpus_msr() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(read_host_polling(dir.path()), HostPolling::Unread(why) if why.contains("no /dev")));
        for (cpu, value) in [(0, 0u64), (1, 1)] {
            std::fs::create_dir_all(dir.path().join(format!("cpu/{cpu}"))).unwrap();
            // A sparse file with the MSR's 8 bytes at its number, as the msr driver reads.
            let file = File::create(dir.path().join(format!("cpu/{cpu}/msr"))).unwrap();
            file.write_all_at(&value.to_le_bytes(), u64::from(driver::MSR_KVM_POLL_CONTROL)).unwrap();
        }
        assert_eq!(read_host_polling(dir.path()), HostPolling::Read(vec![(0, false), (1, true)]));
        std::fs::create_dir_all(dir.path().join("cpu/2")).unwrap();
        let HostPolling::Unread(why) = read_host_polling(dir.path()) else { panic!() };
        assert!(
            why.ends_with("cpu/2/msr does not exist: the msr driver is not loaded (`modprobe msr` adds it)"),
            "{why}"
        );
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
