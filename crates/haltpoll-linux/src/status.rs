//! A Linux guest's cpuidle-haltpoll state, read whole (cpuidle, the governor's parameters,
//! the driver's `force`, CPUID), and what it means for guest halt polling, in sentences that
//! say what to do.

use std::path::{Path, PathBuf};

use haltpoll::driver::Refusal;

use crate::cpuidle::Cpuidle;
use crate::hypervisor::{self, Cpuid, Hypervisor};
use crate::module_params::{self, ModuleParams, Param, ParamsError};
use crate::sysfs::{self, Sysfs, SysfsError};
use crate::units::percent;
use haltpoll::share;

/// Why the state cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// The parameters' directory cannot be read.
    #[error(transparent)]
    Params(#[from] ParamsError),
    /// A sysfs file cannot be read.
    #[error(transparent)]
    Sysfs(#[from] SysfsError),
}

/// A guest's cpuidle-haltpoll state, read whole.
#[derive(Clone, Debug)]
pub struct Status {
    /// Where sysfs is.
    pub root: PathBuf,
    /// cpuidle (`None`: this sysfs has none).
    pub cpuidle: Option<Cpuidle>,
    /// The parameters (Linux's default in place of one that could not be read; `None`: no
    /// haltpoll governor).
    pub params: Option<ModuleParams>,
    /// Parameters that could not be read (a write cut short, a file that is not one), and why.
    pub unreadable: Vec<(Param, String)>,
    /// `cpuidle_haltpoll.force` (`None`: no such driver parameter).
    pub force: Option<bool>,
    /// CPUID of the CPU this runs on.
    pub cpuid: Cpuid,
}

impl Status {
    /// Reads every source under `sys`, and CPUID here.
    pub fn read(sys: &Sysfs) -> Result<Status, StatusError> {
        let (params, unreadable) = match ModuleParams::read_each(sys) {
            Ok(reading) => {
                let unreadable = reading.unreadable.iter().map(|(p, e)| (*p, e.to_string())).collect::<Vec<_>>();
                (Some(reading.known), unreadable)
            }
            Err(ParamsError::NotLoaded(_)) => (None, Vec::new()),
            Err(e) => return Err(e.into()),
        };
        Ok(Status {
            root: sys.root().to_owned(),
            cpuidle: Cpuidle::read(sys)?,
            params,
            unreadable,
            force: sys.read_bool(module_params::FORCE)?,
            cpuid: hypervisor::probe(),
        })
    }

    /// The state with nothing read from sysfs at `root` (there is none, or no cpuidle to
    /// read): CPUID only.
    pub fn cpuid_only(root: PathBuf) -> Status {
        Status { root, cpuidle: None, params: None, unreadable: Vec::new(), force: None, cpuid: hypervisor::probe() }
    }

    /// What the state means for guest halt polling, one sentence each, most important first.
    pub fn findings(&self) -> Vec<String> {
        findings(self)
    }
}

/// What the state means for guest halt polling, one sentence each, most important first.
fn findings(s: &Status) -> Vec<String> {
    let Some(idle) = &s.cpuidle else { return vec![no_cpuidle(s)] };
    let mut out = Vec::new();
    if !idle.is_haltpoll() {
        let driver = idle.driver.as_deref().unwrap_or("none");
        out.push(format!(
            "the cpuidle driver is {driver}, not haltpoll: this system does not poll before it halts. {}",
            why_not_loaded(s)
        ));
    } else if idle.governor.as_deref() != Some("haltpoll") {
        out.push(format!(
            "the haltpoll driver is loaded but the governor is {}: the adaptive poll window is not in use; \
             boot with cpuidle.governor=haltpoll",
            idle.governor.as_deref().unwrap_or("unknown")
        ));
    }
    // Warnings are about a whole set: only when every parameter was read.
    if let Some(p) = s.params.as_ref().filter(|_| s.unreadable.is_empty()) {
        out.extend(p.warnings());
    }
    for (p, why) in &s.unreadable {
        out.push(format!("{p} cannot be read ({why}): `haltpoll set {}=VALUE` writes it anew", p.short()));
    }
    if idle.is_haltpoll() {
        out.extend(haltpoll_findings(s, idle));
    }
    out
}

/// Why there is no cpuidle to show.
fn no_cpuidle(s: &Status) -> String {
    if cfg!(target_os = "linux") || s.root != Path::new(sysfs::DEFAULT_ROOT) {
        format!(
            "{} has no {}: not a Linux sysfs (is sysfs mounted there?), or a kernel without CPU idle \
             support (CONFIG_CPU_IDLE); guest halt polling needs both",
            s.root.display(),
            crate::cpuidle::CPUIDLE_DIR
        )
    } else {
        format!(
            "this system runs {}, not Linux: cpuidle-haltpoll is a Linux driver, and `haltpoll status` \
             reads Linux's sysfs",
            std::env::consts::OS
        )
    }
}

/// What the haltpoll driver's state means: CPUs that never poll, a host that cannot stop its
/// own polling, and how much polling there was since boot.
fn haltpoll_findings(s: &Status, idle: &Cpuidle) -> Vec<String> {
    let mut out = Vec::new();
    let disabled: Vec<String> = idle
        .cpus
        .iter()
        .filter(|c| c.states.iter().any(|st| st.is_poll() && st.disabled == Some(true)))
        .map(|c| c.cpu.to_string())
        .collect();
    if !disabled.is_empty() {
        out.push(format!("POLL is disabled on cpu {}: those CPUs never poll", disabled.join(", ")));
    }
    if let Cpuid::Answered(Hypervisor { kvm: Some(kvm), .. }) = s.cpuid
        && !kvm.poll_control()
    {
        out.push(
            "the host offers no POLL_CONTROL: the guest cannot switch host-side polling off, so host and \
             guest may both spin for the same wakeup"
                .to_owned(),
        );
    }
    // Saturating: a counter near 2^64 (a bogus or very old one) must not wrap the sums.
    let (polls, entries, poll_us, idle_us) =
        idle.cpus.iter().flat_map(|c| &c.states).fold((0u64, 0u64, 0u64, 0u64), |(p, e, pt, t), st| {
            let poll = st.is_poll();
            (
                p.saturating_add(if poll { st.usage } else { 0 }),
                e.saturating_add(st.usage),
                pt.saturating_add(if poll { st.time_us } else { 0 }),
                t.saturating_add(st.time_us),
            )
        });
    out.push(format!(
        "since boot {} of idle entries were polls and {} of idle time was spent polling \
         (`--watch 1` shows the rates now)",
        percent(share(polls, entries)),
        percent(share(poll_us, idle_us))
    ));
    out
}

fn why_not_loaded(s: &Status) -> String {
    let hv = match s.cpuid {
        Cpuid::Unavailable { arch } => {
            return format!("CPUID does not exist on {arch}, so whether the driver could load is not known here");
        }
        Cpuid::Answered(hv) => hv,
    };
    if !hv.present {
        return "CPUID shows no hypervisor: on bare metal there is no VM exit to save, and the driver refuses to load"
            .to_owned();
    }
    match hypervisor::would_load(hv.kvm, s.force.unwrap_or(false)) {
        Err(Refusal::NotKvm) => format!(
            "the hypervisor is {:?}, not KVM, and the driver loads only on KVM",
            hv.signature_text().unwrap_or_default()
        ),
        Err(Refusal::NoRealtimeHint) => "KVM gives no REALTIME hint (dedicated physical CPUs), so the driver \
             refuses to load unless forced: boot with cpuidle_haltpoll.force=1 if the vCPUs have CPUs of \
             their own, or if polling may take host CPU time from others"
            .to_owned(),
        Ok(_) => "CPUID allows it to load: the kernel may lack it (CONFIG_HALTPOLL_CPUIDLE), or idle= on the \
             kernel command line chose another idle mode"
            .to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use haltpoll::driver::{KVM_FEATURE_POLL_CONTROL, KvmInfo};

    use crate::hypervisor::Hypervisor;

    fn status(driver: &str, params: Option<ModuleParams>, cpuid: Cpuid, force: Option<bool>) -> Status {
        Status {
            root: PathBuf::from("/sys"),
            cpuidle: Some(Cpuidle {
                driver: Some(driver.to_owned()),
                governor: Some(if driver == "haltpoll" { "haltpoll" } else { "menu" }.to_owned()),
                available_governors: None,
                cpus: vec![],
            }),
            params,
            unreadable: Vec::new(),
            force,
            cpuid,
        }
    }

    fn kvm(features: u32, hints: u32) -> Cpuid {
        Cpuid::Answered(Hypervisor {
            present: true,
            signature: Some(*b"KVMKVMKVM\0\0\0"),
            kvm: Some(KvmInfo { base: 0x4000_0000, features, hints }),
        })
    }

    #[test]
    fn this_machine_polling_off() {
        let p = ModuleParams { guest_halt_poll_ns: 0, ..ModuleParams::default() };
        let f = findings(&status("haltpoll", Some(p), kvm(KVM_FEATURE_POLL_CONTROL, 0), Some(true)));
        assert!(f[0].starts_with("guest polling is off: guest_halt_poll_ns=0"), "{f:?}");
        assert!(f.last().unwrap().starts_with("since boot 0.0% of idle entries were polls"), "{f:?}");
    }

    #[test]
    fn explains_why_the_driver_is_not_loaded() {
        let no_force = findings(&status("acpi_idle", None, kvm(0, 0), None));
        assert!(no_force[0].contains("the cpuidle driver is acpi_idle, not haltpoll"), "{no_force:?}");
        assert!(no_force[0].contains("boot with cpuidle_haltpoll.force=1"), "{no_force:?}");
        let bare = Cpuid::Answered(Hypervisor { present: false, signature: None, kvm: None });
        assert!(findings(&status("intel_idle", None, bare, None))[0].contains("bare metal"));
        let other = Cpuid::Answered(Hypervisor { present: true, signature: Some(*b"VMwareVMware"), kvm: None });
        assert!(findings(&status("none", None, other, None))[0].contains("\"VMwareVMware\", not KVM"));
        let arm = findings(&status("psci_idle", None, Cpuid::Unavailable { arch: "aarch64" }, None));
        assert!(arm[0].contains("CPUID does not exist on aarch64"), "{arm:?}");
        let could = findings(&status("none", None, kvm(0, 1), None));
        assert!(could[0].contains("CONFIG_HALTPOLL_CPUIDLE"), "{could:?}");
    }

    #[test]
    fn parameter_traps() {
        let on_off = ModuleParams { guest_halt_poll_ns: 2_400_000, grow_start: 24_000_000, ..Default::default() };
        let f = on_off.warnings();
        assert!(f.iter().any(|s| s.contains("on/off")), "{f:?}");
        assert!(f.iter().any(|s| s.contains("2.40 ms can keep CPUs busy")), "{f:?}");
        let zero_start = ModuleParams { grow_start: 0, ..Default::default() };
        assert!(zero_start.warnings()[0].contains("cannot work: grow_start must be at least 1 ns"));
        let no_shrink = ModuleParams { allow_shrink: false, ..Default::default() };
        assert!(no_shrink.warnings()[0].contains("never shrinks"));
        assert!(ModuleParams::default().warnings().is_empty());
    }

    #[test]
    fn no_cpuidle_at_all() {
        let s = Status {
            root: PathBuf::from("/tmp/x"),
            cpuidle: None,
            params: None,
            unreadable: Vec::new(),
            force: None,
            cpuid: kvm(0, 0),
        };
        let f = findings(&s);
        assert_eq!(f.len(), 1);
        assert!(f[0].starts_with("/tmp/x has no devices/system/cpu/cpuidle"), "{f:?}");
    }
}
