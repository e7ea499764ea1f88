//! `haltpoll status`: a Linux guest's cpuidle-haltpoll state, what the hypervisor offers, and
//! what that means; `--watch` for rates.

use std::io::{self, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use haltpoll_linux::cpuidle::{Cpuidle, Delta, Rates, StateStats};
use haltpoll_linux::finding::Finding;
use haltpoll_linux::hypervisor::{self, Cpuid, Hypervisor};
use haltpoll_linux::module_params::Origin;
use haltpoll_linux::module_params::{self, ModuleParams, Param};
use haltpoll_linux::pm_qos::{CpuLimit, GlobalLimit};
use haltpoll_linux::procfs::Steal;
use haltpoll_linux::status::{Roots, Status};
use haltpoll_linux::sysfs::{self, Sysfs, SysfsError};
use haltpoll_linux::{metrics, units};
use serde::Serialize;

use crate::options::{SysfsRoot, SystemRoots};
use crate::output::{self, fmt_ns, percent};
use crate::table::{self, Column};

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
    #[command(flatten)]
    pub system: SystemRoots,
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
fn write_prometheus(out: &mut dyn Write, sys: &Sysfs, roots: &Roots) -> io::Result<()> {
    let facts = metrics::Facts::read(sys, roots);
    for problem in facts.problems() {
        output::stderr_line(format_args!(
            "haltpoll: warning: {problem} (its metrics are left out; {} says so)",
            metrics::names::READ_SUCCESS
        ));
    }
    out.write_all(metrics::render(&facts).as_bytes())
}

/// Runs `haltpoll status`.
pub fn run(args: &StatusArgs) -> Result<()> {
    if args.format == StatusFormat::Prometheus {
        if args.watch.is_some() {
            return Err(crate::Usage(
                "--format prometheus is a single reading: scrape `haltpoll exporter` for a series".into(),
            )
            .into());
        }
        let sys = Sysfs::open(&args.sysfs.sysfs_root)?;
        return output::write_stdout(|out| write_prometheus(out, &sys, &args.system.roots()));
    }
    let args = &StatusArgs { json: args.json || args.format == StatusFormat::Json, ..args.clone() };
    let status = match Sysfs::open(&args.sysfs.sysfs_root) {
        Ok(sys) => {
            if let Some(seconds) = args.watch {
                return watch(&sys, seconds, args);
            }
            Status::read(&sys, &args.system.roots())?
        }
        // No /sys at all (not Linux, or sysfs not mounted) is a state to explain; a root the
        // user named that does not exist is a mistake to report.
        Err(SysfsError::NoRoot(root)) if root == Path::new(sysfs::DEFAULT_ROOT) && args.watch.is_none() => {
            Status::cpuid_only(root)
        }
        Err(e) => return Err(e.into()),
    };
    let findings = status.findings();
    output::write_stdout(|out| {
        if args.json { write_json(out, &status, &findings) } else { write_human(out, &status, &findings) }
    })
}

fn write_human(out: &mut dyn Write, s: &Status, findings: &[Finding]) -> io::Result<()> {
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
    write_host_and_limits(out, s)?;
    if let Some(idle) = s.cpuidle.as_ref().filter(|i| !i.cpus.is_empty()) {
        writeln!(out, "idle states since boot")?;
        let columns = state_columns();
        table::write_header(out, &columns)?;
        for cpu in &idle.cpus {
            cpu.states.iter().try_for_each(|st| table::write_row(out, &columns, &(cpu.cpu, st)))?;
        }
        writeln!(out)?;
    }
    writeln!(out, "what this means")?;
    findings.iter().try_for_each(|f| writeln!(out, "  - {f}"))
}

/// Host polling, steal time and the PM QoS limit: what outside the governor decides how
/// much polling there is.
fn write_host_and_limits(out: &mut dyn Write, s: &Status) -> io::Result<()> {
    writeln!(out, "host and limits")?;
    let host = s.host_polling();
    let steal = match s.steal {
        Some(st) => format!("{} of the CPUs' time since boot (/proc/stat)", percent(st.share_since_boot)),
        None => "unknown: no steal column in /proc/stat (or no /proc)".to_owned(),
    };
    let latency = match s.pm_qos.as_ref().map(|q| (&q.global, &q.cpus)) {
        None => "unknown: the CPUs' power/pm_qos_resume_latency_us cannot be read".to_owned(),
        Some((global, cpus)) => {
            let global = match global {
                GlobalLimit::None => "no limit (/dev/cpu_dma_latency)".to_owned(),
                GlobalLimit::Us(us) => format!("{us} us (/dev/cpu_dma_latency)"),
                GlobalLimit::Unknown(why) => format!("unknown: {why}"),
            };
            let per_cpu: Vec<String> = cpus.iter().map(|c| format!("cpu {} {} us", c.cpu, c.limit_us)).collect();
            let per_cpu = if per_cpu.is_empty() { String::new() } else { format!("; per CPU: {}", per_cpu.join(", ")) };
            format!("{global}{per_cpu}")
        }
    };
    let fields = [
        ("host polling", format!("{}: {}", host.state.name(), host.detail)),
        ("steal", steal),
        ("PM QoS latency", latency),
    ];
    output::write_fields(out, "  ", 16, &fields)?;
    writeln!(out)
}

/// The parameters' lines: each value, and Linux's default where it differs.
fn param_fields(s: &Status, p: &ModuleParams) -> Vec<(&'static str, String)> {
    let defaults = ModuleParams::default();
    let origins = s.origins();
    let mut fields: Vec<(&str, String)> = Param::ALL
        .into_iter()
        .map(|param| {
            if s.unreadable.iter().any(|(q, _)| *q == param) {
                return (param.name(), "(unreadable)".to_owned());
            }
            let (value, default) = (p.value(param), defaults.value(param));
            let mut notes = Vec::new();
            if value != default {
                notes.push(format!("Linux default {default}"));
            }
            notes.extend(origins.iter().find(|(q, _)| *q == param).map(|(_, o)| origin_words(o)));
            (param.name(), format!("{value}{}", parenthesized(&notes)))
        })
        .collect();
    if let Some(force) = s.force {
        let notes: Vec<String> = s.force_origin().iter().map(origin_words).collect();
        fields.push(("cpuidle_haltpoll.force", format!("{}{}", if force { "Y" } else { "N" }, parenthesized(&notes))));
    }
    fields
}

/// `notes` as `  (a; b)`, or nothing.
fn parenthesized(notes: &[String]) -> String {
    if notes.is_empty() { String::new() } else { format!("  ({})", notes.join("; ")) }
}

/// Where a value came from, in words.
fn origin_words(o: &Origin) -> String {
    match o {
        Origin::CommandLine => "from the kernel command line".to_owned(),
        Origin::Default => "the default".to_owned(),
        Origin::Runtime { command_line: Some(c) } => format!("changed since boot; the command line says {c}"),
        Origin::Runtime { command_line: None } => "changed since boot".to_owned(),
        Origin::LoadOption => "given as the module loaded".to_owned(),
    }
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
        Column::right("cpu", 2, 4, |_, (cpu, _)| cpu.to_string()),
        Column::right("state", 1, 5, |_, (_, st)| st.index.to_string()),
        Column::left("name", 2, 16, |_, (_, st)| st.name.clone()),
        Column::right("usage", 1, 12, |_, (_, st)| st.usage.to_string()),
        Column::right("time", 1, 12, |_, (_, st)| fmt_ns(st.time_us.saturating_mul(1_000))),
        Column::right("above", 1, 10, |_, (_, st)| opt(st.above)),
        Column::right("below", 1, 10, |_, (_, st)| opt(st.below)),
        Column::right("latency", 1, 8, |_, (_, st)| us(st.latency_us)),
        Column::right("residency", 1, 9, |_, (_, st)| us(st.residency_us)),
        Column::left("disabled", 2, 0, |_, (_, st)| {
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
    param_origins: Vec<OriginJson>,
    host_polling: HostPollingJson,
    steal: Option<Steal>,
    pm_qos: Option<PmQosJson<'a>>,
    /// The findings' sentences, as before codes were added.
    findings: Vec<&'a str>,
    coded_findings: Vec<FindingJson<'a>>,
}

#[derive(Serialize)]
struct OriginJson {
    param: &'static str,
    source: &'static str,
    command_line: Option<String>,
}

#[derive(Serialize)]
struct HostPollingJson {
    state: &'static str,
    source: &'static str,
    cpus_polled_by_host: Vec<u32>,
    detail: String,
}

#[derive(Serialize)]
struct PmQosJson<'a> {
    cpu_latency: &'static str,
    cpu_latency_limit_us: Option<u32>,
    why_unknown: Option<&'a str>,
    resume_latency_limits: &'a [CpuLimit],
}

#[derive(Serialize)]
struct FindingJson<'a> {
    code: String,
    severity: &'static str,
    text: &'a str,
}

/// The parameters' origins, `cpuidle_haltpoll.force`'s last.
fn origins_json(s: &Status) -> Vec<OriginJson> {
    let force = s.force_origin().map(|o| ("cpuidle_haltpoll.force", o));
    s.origins()
        .into_iter()
        .map(|(p, o)| (p.name(), o))
        .chain(force)
        .map(|(param, o)| OriginJson {
            param,
            source: o.name(),
            command_line: match o {
                Origin::Runtime { command_line } => command_line,
                _ => None,
            },
        })
        .collect()
}

fn pm_qos_json(s: &Status) -> Option<PmQosJson<'_>> {
    let q = s.pm_qos.as_ref()?;
    let (cpu_latency, limit, why) = match &q.global {
        GlobalLimit::None => ("none", None, None),
        GlobalLimit::Us(us) => ("limited", Some(*us), None),
        GlobalLimit::Unknown(why) => ("unknown", None, Some(why.as_str())),
    };
    Some(PmQosJson { cpu_latency, cpu_latency_limit_us: limit, why_unknown: why, resume_latency_limits: &q.cpus })
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

fn write_json(out: &mut dyn Write, s: &Status, findings: &[Finding]) -> io::Result<()> {
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
        param_origins: origins_json(s),
        host_polling: {
            let h = s.host_polling();
            HostPollingJson {
                state: h.state.name(),
                source: h.source,
                cpus_polled_by_host: h.cpus_polled_by_host,
                detail: h.detail,
            }
        },
        steal: s.steal,
        pm_qos: pm_qos_json(s),
        findings: findings.iter().map(|f| f.text.as_str()).collect(),
        coded_findings: findings
            .iter()
            .map(|f| FindingJson { code: f.code.id(), severity: f.code.severity().name(), text: &f.text })
            .collect(),
    };
    output::write_json(out, &json)
}

fn watch(sys: &Sysfs, seconds: f64, args: &StatusArgs) -> Result<()> {
    let read = || -> Result<Cpuidle> {
        match Cpuidle::read(sys)? {
            Some(idle) if !idle.cpus.is_empty() => Ok(idle),
            _ => {
                let status = Status::cpuid_only(sys.root().to_owned());
                let findings: Vec<String> = status.findings().iter().map(|f| f.text.clone()).collect();
                bail!("nothing to watch: {}", findings.join("; "))
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

/// A line of the rates: one CPU's (or all CPUs') counts over an interval.
struct RateRow<'a> {
    rates: &'a Rates,
    cpu: String,
    delta: &'a Delta,
    /// Share of the interval the CPUs were idle.
    idle: f64,
}

/// The columns of the rates.
fn rate_columns<'a>() -> [Column<RateRow<'a>>; 8] {
    [
        Column::right("interval", 0, 8, |_, r| format!("{:.2}s", r.rates.seconds)),
        Column::right("cpu", 1, 4, |_, r| r.cpu.clone()),
        Column::right("entries/s", 1, 11, |_, r| format!("{:.0}", r.rates.per_second(r.delta.entries()))),
        Column::right("POLL/s", 1, 9, |_, r| format!("{:.0}", r.rates.per_second(r.delta.polls))),
        Column::right("halts/s", 1, 9, |_, r| format!("{:.0}", r.rates.per_second(r.delta.halts))),
        Column::right("poll time", 1, 10, |_, r| percent(r.delta.poll_share_of_idle())),
        Column::right("idle", 1, 7, |_, r| percent(r.idle)),
        Column::left("polls ending in a halt", 2, 0, |_, r| {
            let d = r.delta;
            format!("at most {} of {} ({})", d.polls_then_halt_max, d.polls, percent(d.poll_to_halt_share_max()))
        }),
    ]
}

fn write_rates(out: &mut dyn Write, r: &Rates, first: bool) -> io::Result<()> {
    let columns = rate_columns();
    if first {
        table::write_header(out, &columns)?;
    }
    for (cpu, d) in &r.cpus {
        let idle = if r.seconds > 0.0 { d.poll_us.saturating_add(d.halt_us) as f64 / (r.seconds * 1e6) } else { 0.0 };
        table::write_row(out, &columns, &RateRow { rates: r, cpu: cpu.to_string(), delta: d, idle })?;
    }
    table::write_row(out, &columns, &RateRow { rates: r, cpu: "all".to_owned(), delta: &r.total, idle: r.idle_share() })
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
