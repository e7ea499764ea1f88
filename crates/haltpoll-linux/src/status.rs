//! A Linux guest's cpuidle-haltpoll state, read whole (cpuidle, the governor's parameters,
//! the driver's `force`, CPUID), and what it means for guest halt polling, in sentences that
//! say what to do.

use std::path::{Path, PathBuf};

use haltpoll::driver::Refusal;

use crate::cpuidle::Cpuidle;
use crate::finding::{Code, Finding};
use crate::hypervisor::{self, Cpuid, HostPolling, Hypervisor};
use crate::module_params::{self, ModuleParams, Origin, Param, ParamsError};
use crate::pm_qos::PmQos;
use crate::procfs::{self, KernelCmdline, Procfs, Steal};
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

/// Where the other trees are, beside sysfs: `/proc` and `/dev`, or fixtures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Roots {
    /// procfs: the kernel command line, steal time.
    pub proc: PathBuf,
    /// /dev: the PM QoS limit, the MSRs.
    pub dev: PathBuf,
}

impl Default for Roots {
    fn default() -> Self {
        Roots { proc: PathBuf::from(procfs::DEFAULT_ROOT), dev: PathBuf::from("/dev") }
    }
}

/// A share of the CPUs' time stolen since boot above which `status` warns.
pub const STEAL_WARNING_SHARE: f64 = 0.02;

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
    /// The kernel command line (`None`: it could not be read).
    pub cmdline: Option<KernelCmdline>,
    /// Steal time since boot (`None`: it could not be read).
    pub steal: Option<Steal>,
    /// The PM QoS latency limits (`None`: the per-CPU ones could not be read).
    pub pm_qos: Option<PmQos>,
    /// Each CPU's `MSR_KVM_POLL_CONTROL`, or why it was not read.
    pub host_polling: HostPolling,
}

impl Status {
    /// Reads every source under `sys` and `roots`, and CPUID here.
    pub fn read(sys: &Sysfs, roots: &Roots) -> Result<Status, StatusError> {
        let (params, unreadable) = match ModuleParams::read_each(sys) {
            Ok(reading) => {
                let unreadable = reading.unreadable.iter().map(|(p, e)| (*p, e.to_string())).collect::<Vec<_>>();
                (Some(reading.known), unreadable)
            }
            Err(ParamsError::NotLoaded(_)) => (None, Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let proc = Procfs::open(&roots.proc).ok();
        Ok(Status {
            root: sys.root().to_owned(),
            cpuidle: Cpuidle::read(sys)?,
            params,
            unreadable,
            force: sys.read_bool(module_params::FORCE)?,
            cpuid: hypervisor::probe(),
            // What /proc and /dev hold adds to the picture; a tree without them still has one.
            cmdline: proc.as_ref().and_then(|p| p.cmdline().ok().flatten()),
            steal: proc.as_ref().and_then(|p| p.steal().ok().flatten()),
            pm_qos: PmQos::read(&roots.dev, sys).ok(),
            host_polling: hypervisor::read_host_polling(&roots.dev),
        })
    }

    /// The state with nothing read from sysfs at `root` (there is none, or no cpuidle to
    /// read): CPUID only.
    pub fn cpuid_only(root: PathBuf) -> Status {
        Status {
            root,
            cpuidle: None,
            params: None,
            unreadable: Vec::new(),
            force: None,
            cpuid: hypervisor::probe(),
            cmdline: None,
            steal: None,
            pm_qos: None,
            host_polling: HostPolling::Unread("there is no sysfs to go with it".to_owned()),
        }
    }

    /// What the state means for guest halt polling, one finding each, most important first.
    pub fn findings(&self) -> Vec<Finding> {
        findings(self)
    }

    /// Where each parameter that was read came from (empty without the command line).
    pub fn origins(&self) -> Vec<(Param, Origin)> {
        let (Some(p), Some(cmdline)) = (&self.params, &self.cmdline) else { return Vec::new() };
        Param::ALL
            .into_iter()
            .filter(|q| !self.unreadable.iter().any(|(u, _)| u == q))
            .map(|q| (q, p.origin(q, cmdline)))
            .collect()
    }

    /// Where `cpuidle_haltpoll.force` came from.
    pub fn force_origin(&self) -> Option<Origin> {
        Some(module_params::force_origin(self.force?, self.cmdline.as_ref()?))
    }

    /// Host-side polling as the driver left it.
    pub fn host_polling(&self) -> HostPollingView {
        host_polling_view(self)
    }
}

/// Whether the host halt-polls for the vCPUs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostPollState {
    /// The host may poll for every CPU.
    On,
    /// The host polls for none.
    Off,
    /// For some CPUs only.
    Mixed,
    /// Not known.
    Unknown,
}

impl HostPollState {
    /// The name in JSON and in `status`.
    pub const fn name(self) -> &'static str {
        match self {
            HostPollState::On => "on",
            HostPollState::Off => "off",
            HostPollState::Mixed => "mixed",
            HostPollState::Unknown => "unknown",
        }
    }
}

/// Host-side polling, read or inferred.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPollingView {
    /// Whether the host polls.
    pub state: HostPollState,
    /// Where that comes from: `msr` (read), `driver` (what the driver writes, inferred),
    /// `cpuid` (the guest cannot switch it off), `none` (not known).
    pub source: &'static str,
    /// The CPUs the host may poll for, when the MSRs were read.
    pub cpus_polled_by_host: Vec<u32>,
    /// How it is known, or why not, in words.
    pub detail: String,
}

fn host_polling_view(s: &Status) -> HostPollingView {
    let view =
        |state, source, detail: String| HostPollingView { state, source, cpus_polled_by_host: Vec::new(), detail };
    let why_unread = match &s.host_polling {
        HostPolling::Read(cpus) => {
            let on: Vec<u32> = cpus.iter().filter(|(_, on)| *on).map(|(c, _)| *c).collect();
            let state = match on.len() {
                0 => HostPollState::Off,
                n if n == cpus.len() => HostPollState::On,
                _ => HostPollState::Mixed,
            };
            let detail = "MSR_KVM_POLL_CONTROL read on each CPU (bit 0: the host may poll)".to_owned();
            return HostPollingView { cpus_polled_by_host: on, ..view(state, "msr", detail) };
        }
        HostPolling::Unread(why) => why,
    };
    let kvm = match s.cpuid {
        Cpuid::Answered(Hypervisor { kvm: Some(kvm), .. }) => kvm,
        _ => return view(HostPollState::Unknown, "none", format!("not KVM, and the MSR was not read: {why_unread}")),
    };
    if !kvm.poll_control() {
        return view(
            HostPollState::On,
            "cpuid",
            "the host offers no POLL_CONTROL, so the guest cannot switch it off".into(),
        );
    }
    let haltpoll = s.cpuidle.as_ref().is_some_and(Cpuidle::is_haltpoll);
    let (state, what) = if haltpoll {
        (HostPollState::Off, "the haltpoll driver writes MSR_KVM_POLL_CONTROL=0 on each CPU it brings online")
    } else {
        (HostPollState::On, "without the haltpoll driver MSR_KVM_POLL_CONTROL keeps its default, 1")
    };
    view(state, "driver", format!("inferred: {what}; the MSR was not read: {why_unread}"))
}

/// What the state means for guest halt polling, most important first.
fn findings(s: &Status) -> Vec<Finding> {
    let Some(idle) = &s.cpuidle else { return vec![Finding::new(Code::NoCpuidle, no_cpuidle(s))] };
    let mut out = Vec::new();
    if !idle.is_haltpoll() {
        let driver = idle.driver.as_deref().unwrap_or("none");
        out.push(Finding::new(
            Code::DriverNotHaltpoll,
            format!(
                "the cpuidle driver is {driver}, not haltpoll: this system does not poll before it halts. {}",
                why_not_loaded(s)
            ),
        ));
    } else if idle.governor.as_deref() != Some("haltpoll") {
        out.push(Finding::new(
            Code::GovernorNotHaltpoll,
            format!(
                "the haltpoll driver is loaded but the governor is {}: the adaptive poll window is not in use; \
                 boot with cpuidle.governor=haltpoll",
                idle.governor.as_deref().unwrap_or("unknown")
            ),
        ));
    }
    out.extend(latency_finding(s));
    // Warnings are about a whole set: only when every parameter was read.
    if let Some(p) = s.params.as_ref().filter(|_| s.unreadable.is_empty()) {
        out.extend(p.findings());
    }
    for (p, why) in &s.unreadable {
        out.push(Finding::new(
            Code::ParamUnreadable,
            format!("{p} cannot be read ({why}): `haltpoll set {}=VALUE` writes it anew", p.short()),
        ));
    }
    if idle.is_haltpoll() {
        out.extend(haltpoll_findings(s, idle));
    }
    out.extend(steal_finding(s));
    out.extend(origin_findings(s));
    out
}

/// A latency limit of 0 µs: the governor then polls every idle period and never halts.
fn latency_finding(s: &Status) -> Option<Finding> {
    let q = s.pm_qos.as_ref()?;
    let (all, cpus) = q.zero_latency();
    let whom = if all {
        "a PM QoS request holds every CPU's wakeup latency at 0 µs (a process holds /dev/cpu_dma_latency open \
         with 0: tuned's latency-performance profile, DPDK, a database)"
            .to_owned()
    } else if !cpus.is_empty() {
        format!(
            "cpu {} tolerate no wakeup latency (power/pm_qos_resume_latency_us is n/a)",
            cpus.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
        )
    } else {
        return None;
    };
    Some(Finding::new(
        Code::LatencyLimitZero,
        format!(
            "{whom}: cpuidle then picks POLL for every idle period and never halts, whatever guest_halt_poll_ns \
             says, so those CPUs spin whenever they are idle"
        ),
    ))
}

/// Steal time: the host's CPUs are shared, and polling spends host time others wait for.
fn steal_finding(s: &Status) -> Option<Finding> {
    let steal = s.steal.filter(|st| st.share_since_boot > STEAL_WARNING_SHARE)?;
    Some(Finding::new(
        Code::StealTime,
        format!(
            "the vCPUs waited {} of their time since boot for a host CPU (steal, /proc/stat): the host's CPUs \
             are shared, so time spent polling is taken from other vCPUs; keep the ceiling small, and watch \
             steal as polling goes up",
            percent(steal.share_since_boot)
        ),
    ))
}

/// Which parameters the command line set, and which were changed since boot.
fn origin_findings(s: &Status) -> Vec<Finding> {
    let origins = s.origins();
    let mut out = Vec::new();
    let p = s.params.unwrap_or_default();
    let from_cmdline: Vec<String> = origins
        .iter()
        .filter(|(_, o)| *o == Origin::CommandLine)
        .map(|(q, _)| format!("{q}={}", p.value(*q)))
        .collect();
    if !from_cmdline.is_empty() {
        out.push(Finding::new(
            Code::SetOnCommandLine,
            format!(
                "{} come{} from the kernel command line ({}.NAME=VALUE): `haltpoll set` changes it until the \
                 next boot; a lasting change goes on the command line",
                from_cmdline.join(" "),
                if from_cmdline.len() == 1 { "s" } else { "" },
                module_params::MODULE
            ),
        ));
    }
    let changed: Vec<String> = origins
        .iter()
        .filter_map(|(q, o)| match o {
            Origin::Runtime { command_line: Some(c) } => Some(format!("{q} (command line: {c})")),
            Origin::Runtime { command_line: None } => {
                Some(format!("{q} (Linux default: {})", ModuleParams::default().value(*q)))
            }
            _ => None,
        })
        .collect();
    if !changed.is_empty() {
        out.push(Finding::new(
            Code::ChangedAtRuntime,
            format!("changed since boot: {}; a reboot undoes it", changed.join(", ")),
        ));
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
fn haltpoll_findings(s: &Status, idle: &Cpuidle) -> Vec<Finding> {
    let mut out = Vec::new();
    let disabled: Vec<String> = idle
        .cpus
        .iter()
        .filter(|c| c.states.iter().any(|st| st.is_poll() && st.disabled == Some(true)))
        .map(|c| c.cpu.to_string())
        .collect();
    if !disabled.is_empty() {
        out.push(Finding::new(
            Code::PollDisabled,
            format!("POLL is disabled on cpu {}: those CPUs never poll", disabled.join(", ")),
        ));
    }
    if let Cpuid::Answered(Hypervisor { kvm: Some(kvm), .. }) = s.cpuid
        && !kvm.poll_control()
    {
        out.push(Finding::new(
            Code::NoPollControl,
            "the host offers no POLL_CONTROL: the guest cannot switch host-side polling off, so host and \
             guest may both spin for the same wakeup",
        ));
    }
    let host = host_polling_view(s);
    let guest_polls = s.params.is_some_and(|p| p.guest_halt_poll_ns > 0);
    if host.source == "msr" && host.state != HostPollState::Off && guest_polls {
        let cpus = host.cpus_polled_by_host.iter().map(u32::to_string).collect::<Vec<_>>().join(", ");
        out.push(Finding::new(
            Code::HostPollingOn,
            format!(
                "the host may still halt-poll for cpu {cpus} (MSR_KVM_POLL_CONTROL=1) while the guest polls too: \
                 both spin for the same wakeup; the haltpoll driver switches it off as it brings a CPU online"
            ),
        ));
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
    out.push(Finding::new(
        Code::PollShareSinceBoot,
        format!(
            "since boot {} of idle entries were polls and {} of idle time was spent polling \
             (`--watch 1` shows the rates now)",
            percent(share(polls, entries)),
            percent(share(poll_us, idle_us))
        ),
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
    use crate::pm_qos::GlobalLimit;

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
            cmdline: None,
            steal: None,
            pm_qos: None,
            host_polling: HostPolling::Unread("a test".into()),
        }
    }

    fn texts(f: &[Finding]) -> Vec<&str> {
        f.iter().map(|f| f.text.as_str()).collect()
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
        assert_eq!(f[0].code, Code::PollingOff);
        assert!(f[0].text.starts_with("guest polling is off: guest_halt_poll_ns=0"), "{f:?}");
        assert!(f.last().unwrap().text.starts_with("since boot 0.0% of idle entries were polls"), "{f:?}");
    }

    #[test]
    fn explains_why_the_driver_is_not_loaded() {
        let no_force = findings(&status("acpi_idle", None, kvm(0, 0), None));
        assert_eq!(no_force[0].code, Code::DriverNotHaltpoll);
        let no_force = texts(&no_force);
        assert!(no_force[0].contains("the cpuidle driver is acpi_idle, not haltpoll"), "{no_force:?}");
        assert!(no_force[0].contains("boot with cpuidle_haltpoll.force=1"), "{no_force:?}");
        let bare = Cpuid::Answered(Hypervisor { present: false, signature: None, kvm: None });
        assert!(findings(&status("intel_idle", None, bare, None))[0].text.contains("bare metal"));
        let other = Cpuid::Answered(Hypervisor { present: true, signature: Some(*b"VMwareVMware"), kvm: None });
        assert!(findings(&status("none", None, other, None))[0].text.contains("\"VMwareVMware\", not KVM"));
        let arm = findings(&status("psci_idle", None, Cpuid::Unavailable { arch: "aarch64" }, None));
        assert!(arm[0].text.contains("CPUID does not exist on aarch64"), "{arm:?}");
        let could = findings(&status("none", None, kvm(0, 1), None));
        assert!(could[0].text.contains("CONFIG_HALTPOLL_CPUIDLE"), "{could:?}");
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
        let s = Status { cpuidle: None, cpuid: kvm(0, 0), ..Status::cpuid_only(PathBuf::from("/tmp/x")) };
        let f = findings(&s);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].code, Code::NoCpuidle);
        assert!(f[0].text.starts_with("/tmp/x has no devices/system/cpu/cpuidle"), "{f:?}");
    }

    fn codes(f: &[Finding]) -> Vec<Code> {
        f.iter().map(|f| f.code).collect()
    }

    #[test]
    fn a_zero_latency_limit_means_every_idle_period_polls() {
        let mut s = status("haltpoll", Some(ModuleParams::default()), kvm(KVM_FEATURE_POLL_CONTROL, 0), None);
        s.pm_qos = Some(PmQos { global: GlobalLimit::Us(0), cpus: vec![] });
        let f = findings(&s);
        assert_eq!(f[0].code, Code::LatencyLimitZero, "{f:?}");
        assert!(f[0].text.contains("/dev/cpu_dma_latency") && f[0].text.contains("never halts"), "{f:?}");
        s.pm_qos =
            Some(PmQos { global: GlobalLimit::Us(20), cpus: vec![crate::pm_qos::CpuLimit { cpu: 1, limit_us: 0 }] });
        assert!(findings(&s)[0].text.starts_with("cpu 1 tolerate no wakeup latency"), "{:?}", findings(&s));
        s.pm_qos = Some(PmQos { global: GlobalLimit::Unknown("needs root".into()), cpus: vec![] });
        assert!(!codes(&findings(&s)).contains(&Code::LatencyLimitZero));
    }

    #[test]
    fn steal_and_origins() {
        let p = ModuleParams { guest_halt_poll_ns: 0, grow_start: 100_000, ..ModuleParams::default() };
        let mut s = status("haltpoll", Some(p), kvm(KVM_FEATURE_POLL_CONTROL, 0), Some(true));
        s.steal = Steal::parse("cpu  900 0 50 0 0 0 0 50 0 0");
        s.cmdline = Some(KernelCmdline::parse("cpuidle_haltpoll.force=1 haltpoll.guest_halt_poll_ns=0"));
        let f = findings(&s);
        assert_eq!(
            codes(&f),
            [
                Code::PollingOff,
                Code::PollShareSinceBoot,
                Code::StealTime,
                Code::SetOnCommandLine,
                Code::ChangedAtRuntime
            ]
        );
        assert!(f[2].text.starts_with("the vCPUs waited 5.0% of their time since boot"), "{f:?}");
        assert!(f[3].text.starts_with("guest_halt_poll_ns=0 comes from the kernel command line"), "{f:?}");
        assert_eq!(
            f[4].text,
            "changed since boot: guest_halt_poll_grow_start (Linux default: 50000); a reboot undoes it"
        );
        assert_eq!(s.force_origin(), Some(Origin::CommandLine));
        s.steal = Steal::parse("cpu  990 0 0 0 0 0 0 10 0 0");
        assert!(!codes(&findings(&s)).contains(&Code::StealTime), "1% is below the warning");
    }

    #[test]
    fn host_polling_read_or_inferred() {
        let mut s = status("haltpoll", Some(ModuleParams::default()), kvm(KVM_FEATURE_POLL_CONTROL, 0), None);
        let v = s.host_polling();
        assert_eq!((v.state, v.source), (HostPollState::Off, "driver"));
        assert!(v.detail.starts_with("inferred: the haltpoll driver writes MSR_KVM_POLL_CONTROL=0"), "{v:?}");
        s.host_polling = HostPolling::Read(vec![(0, false), (1, true)]);
        let v = s.host_polling();
        assert_eq!((v.state, v.source, v.cpus_polled_by_host.as_slice()), (HostPollState::Mixed, "msr", &[1][..]));
        assert!(codes(&findings(&s)).contains(&Code::HostPollingOn));
        let s = status("acpi_idle", None, kvm(0, 0), None);
        assert_eq!(s.host_polling().state, HostPollState::On, "no POLL_CONTROL: the guest cannot switch it off");
        let bare = Cpuid::Answered(Hypervisor { present: false, signature: None, kvm: None });
        assert_eq!(status("intel_idle", None, bare, None).host_polling().state, HostPollState::Unknown);
    }
}
