//! `haltpoll status`: a Linux guest's cpuidle-haltpoll state, what the hypervisor offers, and
//! what that means; `--watch` for rates.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use haltpoll::driver::Refusal;
use haltpoll_linux::cpuidle::{Cpuidle, Delta, Rates, StateStats};
use haltpoll_linux::hypervisor::{self, Cpuid, Hypervisor};
use haltpoll_linux::module_params::{self, ModuleParams, Param, ParamsError};
use haltpoll_linux::sysfs::{self, Sysfs, SysfsError};
use haltpoll_linux::{metrics, share, units};
use serde::Serialize;

use crate::options::SysfsRoot;
use crate::output::{self, Column, fmt_ns, percent};

/// Output formats of `haltpoll status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusFormat {
    /// For a person.
    Human,
    /// JSON, as --json.
    Json,
    /// Prometheus's text exposition format (for node_exporter's textfile collector).
    Prometheus,
}

/// Arguments of `haltpoll status`.
#[derive(Args, Clone, Debug)]
#[command(after_help = "\
Examples:
  # this machine: cpuidle driver, governor, parameters, hypervisor, and what they mean
  haltpoll status
  # the rates now: idle entries per second, time polling, over three 1-second intervals
  haltpoll status --watch 1 --count 3
  # the same facts for a script
  haltpoll status --json
  # the counters as metrics, for node_exporter's textfile collector (docs/operators.md)
  haltpoll status --format prometheus")]
pub struct StatusArgs {
    #[command(flatten)]
    pub sysfs: SysfsRoot,
    /// Print rates over intervals of SECONDS instead: idle entries per second, share of idle
    /// time polling, how many polls ended in a halt.
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    pub watch: Option<f64>,
    /// With --watch: stop after N intervals (default: until interrupted).
    #[arg(long, value_name = "N", requires = "watch")]
    pub count: Option<u64>,
    /// Print JSON (with --watch, one object per interval).
    #[arg(long)]
    pub json: bool,
    /// The output format; `prometheus` writes the metrics `haltpoll exporter` serves.
    #[arg(long, value_enum, default_value = "human", conflicts_with = "json")]
    pub format: StatusFormat,
}

/// Seconds, as a bare number ("0.5") or a duration with a unit ("500ms"), as every time
/// option takes.
fn parse_seconds(text: &str) -> Result<f64, String> {
    let seconds = match text.trim().parse::<f64>() {
        Ok(s) => Ok(s),
        Err(_) => units::parse_ns(text).map(|ns| ns as f64 / 1e9),
    }?;
    if seconds > 0.0 && seconds <= 86_400.0 {
        Ok(seconds)
    } else {
        Err(format!("{text:?} is not an interval above 0 and at most 86400 s (1 day), e.g. 1, 0.5 or 500ms"))
    }
}

/// Writes the metrics of `sys` to `out`, and what could not be read to stderr.
fn write_prometheus(out: &mut dyn Write, sys: &Sysfs) -> io::Result<()> {
    let facts = metrics::Facts::read(sys);
    for problem in facts.problems() {
        output::stderr_line(format_args!(
            "haltpoll: warning: {problem} (its metrics are left out; {} says so)",
            metrics::names::READ_SUCCESS
        ));
    }
    out.write_all(metrics::render(&facts).as_bytes())
}

/// Everything `status` reads.
struct Status {
    root: PathBuf,
    cpuidle: Option<Cpuidle>,
    /// The parameters (Linux's default in place of one that could not be read).
    params: Option<ModuleParams>,
    /// Parameters that could not be read (a write cut short, a file that is not one), and why.
    unreadable: Vec<(Param, String)>,
    force: Option<bool>,
    cpuid: Cpuid,
}

/// Runs `haltpoll status`.
pub fn run(args: &StatusArgs) -> Result<()> {
    if args.format == StatusFormat::Prometheus {
        if args.watch.is_some() {
            bail!("--format prometheus is a single reading: scrape `haltpoll exporter` for a series");
        }
        let sys = Sysfs::open(&args.sysfs.sysfs_root)?;
        return output::write_stdout(|out| write_prometheus(out, &sys));
    }
    let args = &StatusArgs { json: args.json || args.format == StatusFormat::Json, ..args.clone() };
    let status = match Sysfs::open(&args.sysfs.sysfs_root) {
        Ok(sys) => {
            if let Some(seconds) = args.watch {
                return watch(&sys, seconds, args);
            }
            read(&sys)?
        }
        // No /sys at all (not Linux, or sysfs not mounted) is a state to explain; a root the
        // user named that does not exist is a mistake to report.
        Err(SysfsError::NoRoot(root)) if root == Path::new(sysfs::DEFAULT_ROOT) && args.watch.is_none() => Status {
            root,
            cpuidle: None,
            params: None,
            unreadable: Vec::new(),
            force: None,
            cpuid: hypervisor::probe(),
        },
        Err(e) => return Err(e.into()),
    };
    let findings = findings(&status);
    output::write_stdout(|out| {
        if args.json { write_json(out, &status, &findings) } else { write_human(out, &status, &findings) }
    })
}

fn read(sys: &Sysfs) -> Result<Status> {
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
            haltpoll_linux::cpuidle::CPUIDLE_DIR
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

fn write_human(out: &mut dyn Write, s: &Status, findings: &[String]) -> io::Result<()> {
    if let Some(idle) = &s.cpuidle {
        writeln!(out, "cpuidle ({})", s.root.join(haltpoll_linux::cpuidle::CPUIDLE_DIR).display())?;
        let available = idle.available_governors.as_deref().map(|a| format!(" (available: {a})")).unwrap_or_default();
        let fields = [
            ("driver", idle.driver.as_deref().unwrap_or("-").to_owned()),
            ("governor", format!("{}{available}", idle.governor.as_deref().unwrap_or("-"))),
        ];
        output::write_fields(out, "  ", 12, &fields)?;
        writeln!(out)?;
    }
    if let Some(p) = &s.params {
        writeln!(out, "haltpoll parameters ({})", s.root.join(module_params::DIR).display())?;
        output::write_fields(out, "  ", 30, &param_fields(s, p))?;
        writeln!(out)?;
    }
    write_hypervisor(out, s)?;
    if let Some(idle) = s.cpuidle.as_ref().filter(|i| !i.cpus.is_empty()) {
        writeln!(out, "idle states since boot")?;
        let columns = state_columns();
        output::write_header(out, &columns)?;
        for cpu in &idle.cpus {
            cpu.states.iter().try_for_each(|st| output::write_row(out, &columns, &(cpu.cpu, st)))?;
        }
        writeln!(out)?;
    }
    writeln!(out, "what this means")?;
    findings.iter().try_for_each(|f| writeln!(out, "  - {f}"))
}

/// The parameters' lines: each value, and Linux's default where it differs.
fn param_fields(s: &Status, p: &ModuleParams) -> Vec<(&'static str, String)> {
    let defaults = ModuleParams::default();
    let mut fields: Vec<(&str, String)> = Param::ALL
        .into_iter()
        .map(|param| {
            if s.unreadable.iter().any(|(q, _)| *q == param) {
                return (param.name(), "(unreadable)".to_owned());
            }
            let (value, default) = (p.value(param), defaults.value(param));
            let note = if value == default { String::new() } else { format!("  (Linux default {default})") };
            (param.name(), format!("{value}{note}"))
        })
        .collect();
    if let Some(force) = s.force {
        fields.push(("cpuidle_haltpoll.force", if force { "Y" } else { "N" }.to_owned()));
    }
    fields
}

/// The columns of the idle states' table, a row per CPU and state.
fn state_columns<'a>() -> [Column<(u32, &'a StateStats)>; 10] {
    fn opt(v: Option<u64>) -> String {
        v.map_or("-".to_owned(), |v| v.to_string())
    }
    fn us(v: Option<u64>) -> String {
        v.map_or("-".to_owned(), |v| format!("{v} us"))
    }
    [
        Column::right("  ", "cpu", 4, |(cpu, _)| cpu.to_string()),
        Column::right(" ", "state", 5, |(_, st)| st.index.to_string()),
        Column::left("  ", "name", 16, |(_, st)| st.name.clone()),
        Column::right(" ", "usage", 12, |(_, st)| st.usage.to_string()),
        Column::right(" ", "time", 12, |(_, st)| fmt_ns(st.time_us.saturating_mul(1_000))),
        Column::right(" ", "above", 10, |(_, st)| opt(st.above)),
        Column::right(" ", "below", 10, |(_, st)| opt(st.below)),
        Column::right(" ", "latency", 8, |(_, st)| us(st.latency_us)),
        Column::right(" ", "residency", 9, |(_, st)| us(st.residency_us)),
        Column::left("  ", "disabled", 0, |(_, st)| {
            match st.disabled {
                Some(true) => "yes",
                Some(false) => "no",
                None => "-",
            }
            .to_owned()
        }),
    ]
}

fn write_hypervisor(out: &mut dyn Write, s: &Status) -> io::Result<()> {
    writeln!(out, "hypervisor (CPUID of the CPU this command runs on)")?;
    let hv = match s.cpuid {
        Cpuid::Unavailable { arch } => {
            writeln!(out, "  unavailable: CPUID is an x86 instruction and this is {arch}")?;
            return writeln!(out);
        }
        Cpuid::Answered(hv) => hv,
    };
    if !hv.present {
        writeln!(out, "  none: the CPU does not report a hypervisor (bare metal)")?;
        return writeln!(out);
    }
    let sig = hv.signature_text().unwrap_or_default();
    let Some(kvm) = hv.kvm else {
        writeln!(out, "  signature     {sig:?}: not KVM")?;
        return writeln!(out);
    };
    writeln!(out, "  signature     KVMKVMKVM (KVM, leaf {:#x})", kvm.base)?;
    let features = [
        (
            "POLL_CONTROL",
            kvm.poll_control(),
            "the guest can switch host-side polling off (MSR_KVM_POLL_CONTROL)",
            "host-side polling cannot be switched off from the guest",
        ),
        (
            "REALTIME",
            kvm.realtime_hint(),
            "the host promises each vCPU a dedicated physical CPU",
            "no promise of dedicated physical CPUs",
        ),
    ];
    for (name, on, yes, no) in features {
        writeln!(out, "  {name:<13} {}", if on { format!("yes: {yes}") } else { format!("no: {no}") })?;
    }
    let force = s.force.unwrap_or(false);
    let load = match hypervisor::would_load(hv.kvm, force) {
        Ok(l) if l.forced => "yes, because cpuidle_haltpoll.force=Y (without it: no REALTIME hint, refused)".to_owned(),
        Ok(_) => "yes".to_owned(),
        Err(refusal) => format!("no: {refusal}"),
    };
    writeln!(out, "  driver loads  {load}")?;
    writeln!(out)
}

#[derive(Serialize)]
struct StatusJson<'a> {
    sysfs_root: &'a std::path::Path,
    cpuidle: Option<&'a Cpuidle>,
    haltpoll_active: bool,
    params: Option<ModuleParams>,
    /// Parameters that could not be read, and why.
    unreadable_params: Vec<(&'static str, &'a str)>,
    cpuidle_haltpoll_force: Option<bool>,
    hypervisor: HypervisorJson,
    findings: &'a [String],
}

#[derive(Serialize)]
struct HypervisorJson {
    cpuid_available: bool,
    present: bool,
    signature: Option<String>,
    kvm: bool,
    kvm_base: Option<u32>,
    poll_control: bool,
    realtime_hint: bool,
    driver_would_load: bool,
    driver_refusal: Option<String>,
}

fn write_json(out: &mut dyn Write, s: &Status, findings: &[String]) -> io::Result<()> {
    let (hv, available) = match s.cpuid {
        Cpuid::Answered(hv) => (hv, true),
        Cpuid::Unavailable { .. } => (Hypervisor { present: false, signature: None, kvm: None }, false),
    };
    let load = hypervisor::would_load(hv.kvm, s.force.unwrap_or(false));
    let json = StatusJson {
        sysfs_root: &s.root,
        cpuidle: s.cpuidle.as_ref(),
        haltpoll_active: s.cpuidle.as_ref().is_some_and(Cpuidle::is_haltpoll),
        params: s.params.filter(|_| s.unreadable.is_empty()),
        unreadable_params: s.unreadable.iter().map(|(p, why)| (p.name(), why.as_str())).collect(),
        cpuidle_haltpoll_force: s.force,
        hypervisor: HypervisorJson {
            cpuid_available: available,
            present: hv.present,
            signature: hv.signature_text(),
            kvm: hv.kvm.is_some(),
            kvm_base: hv.kvm.map(|k| k.base),
            poll_control: hv.kvm.is_some_and(|k| k.poll_control()),
            realtime_hint: hv.kvm.is_some_and(|k| k.realtime_hint()),
            driver_would_load: available && load.is_ok(),
            driver_refusal: load.err().filter(|_| available).map(|r| r.to_string()),
        },
        findings,
    };
    output::write_json(out, &json)
}

fn watch(sys: &Sysfs, seconds: f64, args: &StatusArgs) -> Result<()> {
    let read = || -> Result<Cpuidle> {
        match Cpuidle::read(sys)? {
            Some(idle) if !idle.cpus.is_empty() => Ok(idle),
            _ => {
                let status = Status {
                    root: sys.root().to_owned(),
                    cpuidle: None,
                    params: None,
                    unreadable: Vec::new(),
                    force: None,
                    cpuid: hypervisor::probe(),
                };
                bail!("nothing to watch: {}", findings(&status).join("; "))
            }
        }
    };
    let mut before = read()?;
    let mut start = Instant::now();
    output::write_stdout(|out| {
        let mut n = 0u64;
        while args.count.is_none_or(|c| n < c) {
            std::thread::sleep(Duration::from_secs_f64(seconds));
            let after = read().map_err(io::Error::other)?;
            let now = Instant::now();
            let rates = Rates::between(&before, &after, now.duration_since(start).as_secs_f64());
            if args.json {
                write_rates_json(out, &rates)?
            } else {
                write_rates(out, &rates, n == 0)?
            }
            out.flush()?;
            (before, start, n) = (after, now, n + 1);
        }
        Ok(())
    })
    .context("watching cpuidle")
}

fn write_rates(out: &mut dyn Write, r: &Rates, first: bool) -> io::Result<()> {
    if first {
        writeln!(
            out,
            "{:>8} {:>4} {:>11} {:>9} {:>9} {:>10} {:>7}  polls ending in a halt",
            "interval", "cpu", "entries/s", "POLL/s", "halts/s", "poll time", "idle"
        )?;
    }
    let row = |out: &mut dyn Write, cpu: &str, d: &Delta, idle: f64| {
        writeln!(
            out,
            "{:>7.2}s {cpu:>4} {:>11.0} {:>9.0} {:>9.0} {:>10} {:>7}  at most {} of {} ({})",
            r.seconds,
            r.per_second(d.entries()),
            r.per_second(d.polls),
            r.per_second(d.halts),
            percent(d.poll_share_of_idle()),
            percent(idle),
            d.polls_then_halt_max,
            d.polls,
            percent(d.poll_to_halt_share_max()),
        )
    };
    for (cpu, d) in &r.cpus {
        let idle = if r.seconds > 0.0 { d.poll_us.saturating_add(d.halt_us) as f64 / (r.seconds * 1e6) } else { 0.0 };
        row(out, &cpu.to_string(), d, idle)?;
    }
    row(out, "all", &r.total, r.idle_share())
}

#[derive(Serialize)]
struct RatesJson<'a> {
    seconds: f64,
    idle_share: f64,
    total: DeltaJson<'a>,
    cpus: Vec<CpuRatesJson<'a>>,
}

/// One CPU's rates: an object with its number, not a `[cpu, rates]` pair, so that every
/// field has a name (docs/json.md).
#[derive(Serialize)]
struct CpuRatesJson<'a> {
    cpu: u32,
    #[serde(flatten)]
    rates: DeltaJson<'a>,
}

#[derive(Serialize)]
struct DeltaJson<'a> {
    #[serde(flatten)]
    counts: &'a Delta,
    entries_per_s: f64,
    polls_per_s: f64,
    halts_per_s: f64,
    poll_share_of_idle: f64,
    poll_to_halt_share_max: f64,
}

fn delta_json<'a>(r: &Rates, d: &'a Delta) -> DeltaJson<'a> {
    DeltaJson {
        counts: d,
        entries_per_s: r.per_second(d.entries()),
        polls_per_s: r.per_second(d.polls),
        halts_per_s: r.per_second(d.halts),
        poll_share_of_idle: d.poll_share_of_idle(),
        poll_to_halt_share_max: d.poll_to_halt_share_max(),
    }
}

fn write_rates_json(out: &mut dyn Write, r: &Rates) -> io::Result<()> {
    let json = RatesJson {
        seconds: r.seconds,
        idle_share: r.idle_share(),
        total: delta_json(r, &r.total),
        cpus: r.cpus.iter().map(|(cpu, d)| CpuRatesJson { cpu: *cpu, rates: delta_json(r, d) }).collect(),
    };
    output::write_json_line(out, &json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use haltpoll::driver::{KVM_FEATURE_POLL_CONTROL, KvmInfo};

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

    #[test]
    fn seconds() {
        assert_eq!(parse_seconds("0.5"), Ok(0.5));
        assert_eq!(parse_seconds("500ms"), Ok(0.5), "units, as every time option");
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("2d").unwrap_err().contains("unknown unit"));
        assert!(parse_seconds("0").is_err());
        assert!(parse_seconds("soon").is_err());
    }
}
