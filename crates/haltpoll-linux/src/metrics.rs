//! The haltpoll metrics in Prometheus's text exposition format: one definition, written by
//! `haltpoll status --format prometheus` (for node_exporter's textfile collector) and served by
//! `haltpoll exporter`.
//!
//! Per CPU and idle state, the cpuidle counters (`usage`, `time`, `above`, `below`,
//! `rejected`) as `_total` counters, times in seconds; the haltpoll governor's parameters as
//! gauges in base units; the driver, governor and hypervisor as `_info` metrics (value 1, the
//! facts in labels). Each source is read on its own, so a file that vanished or holds nonsense
//! costs its own metrics, not the others: `haltpoll_read_success{source}` says which were read.
//! The encoding (escaping, HELP and TYPE lines) is the `prometheus` crate's.

use prometheus::core::{Collector, GenericCounterVec, GenericGaugeVec};
use prometheus::{CounterVec, GaugeVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

use std::path::PathBuf;

use crate::cpuidle::Cpuidle;
use crate::finding::Code;
use crate::hypervisor::{self, Cpuid, HostPolling};
use crate::module_params::{self, ModuleParams, Param, ParamsError};
use crate::pm_qos::{GlobalLimit, PmQos};
use crate::procfs::{KernelCmdline, Procfs, Steal};
use crate::status::{Roots, Status};
use crate::sysfs::Sysfs;

/// The media type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A source read, or why it could not be.
pub type Source<T> = Result<T, String>;

/// What the metrics are made of: one reading of sysfs, /proc, /dev and CPUID.
#[derive(Clone, Debug)]
pub struct Facts {
    /// Where sysfs is.
    pub root: PathBuf,
    /// cpuidle (`None`: this sysfs has none).
    pub cpuidle: Source<Option<Cpuidle>>,
    /// The governor's parameters (`None`: no haltpoll governor).
    pub params: Source<Option<ModuleParams>>,
    /// `cpuidle_haltpoll.force` (`None`: no such driver parameter).
    pub force: Source<Option<bool>>,
    /// CPUID of the CPU this runs on.
    pub cpuid: Cpuid,
    /// What /proc and /dev add (the kernel command line, steal time, the PM QoS limits, the
    /// poll-control MSRs), as `status` reads them.
    pub system: System,
}

/// What /proc and /dev say, as [`Status`] holds it.
#[derive(Clone, Debug)]
pub struct System {
    /// The kernel command line.
    pub cmdline: Option<KernelCmdline>,
    /// Steal time since boot.
    pub steal: Option<Steal>,
    /// The PM QoS latency limits.
    pub pm_qos: Option<PmQos>,
    /// Each CPU's `MSR_KVM_POLL_CONTROL`, or why it was not read.
    pub host_polling: HostPolling,
}

impl Facts {
    /// Reads every source, each on its own.
    pub fn read(sys: &Sysfs, roots: &Roots) -> Facts {
        // A parameter that cannot be read would show Linux's default in `known`: rather than
        // export a value nobody holds, the parameters' source counts as unreadable then.
        let params = match ModuleParams::read_each(sys) {
            Ok(reading) if reading.unreadable.is_empty() => Ok(Some(reading.known)),
            Ok(reading) => Err(format!("unreadable parameters: {}", reading.describe())),
            Err(ParamsError::NotLoaded(_)) => Ok(None),
            Err(e) => Err(e.to_string()),
        };
        let proc = Procfs::open(&roots.proc).ok();
        let system = System {
            cmdline: proc.as_ref().and_then(|p| p.cmdline().ok().flatten()),
            steal: proc.as_ref().and_then(|p| p.steal().ok().flatten()),
            pm_qos: PmQos::read(&roots.dev, sys).ok(),
            host_polling: hypervisor::read_host_polling(&roots.dev),
        };
        Facts {
            root: sys.root().to_owned(),
            system,
            cpuidle: Cpuidle::read(sys).map_err(|e| e.to_string()),
            params,
            force: sys.read_bool(module_params::FORCE).map_err(|e| e.to_string()),
            cpuid: hypervisor::probe(),
        }
    }

    /// The sources by their label, each read or not.
    fn sources(&self) -> [(&'static str, Option<&String>); 3] {
        [
            ("cpuidle", self.cpuidle.as_ref().err()),
            ("params", self.params.as_ref().err()),
            ("force", self.force.as_ref().err()),
        ]
    }

    /// The state as `status` sees it, when cpuidle, the parameters and `force` were read.
    pub fn status(&self) -> Option<Status> {
        let (Ok(cpuidle), Ok(params), Ok(force)) = (&self.cpuidle, &self.params, &self.force) else { return None };
        Some(Status {
            root: self.root.clone(),
            cpuidle: cpuidle.clone(),
            params: *params,
            unreadable: Vec::new(),
            force: *force,
            cpuid: self.cpuid,
            cmdline: self.system.cmdline.clone(),
            steal: self.system.steal,
            pm_qos: self.system.pm_qos.clone(),
            host_polling: self.system.host_polling.clone(),
        })
    }

    /// What could not be read, one sentence each.
    pub fn problems(&self) -> Vec<String> {
        self.sources().into_iter().filter_map(|(_, e)| e.cloned()).collect()
    }
}

/// Metric names, for the tests and the docs.
pub mod names {
    /// Entries into an idle state.
    pub const USAGE: &str = "haltpoll_cpuidle_state_usage_total";
    /// Time in an idle state.
    pub const TIME: &str = "haltpoll_cpuidle_state_time_seconds_total";
    /// The ceiling of the poll window (`guest_halt_poll_ns`): a setting, not time spent polling.
    pub const POLL_CEILING: &str = "haltpoll_guest_halt_poll_ceiling_seconds";
    /// The version of haltpoll that wrote the metrics.
    pub const BUILD_INFO: &str = "haltpoll_build_info";
    /// Each finding's code: 1 if `status` finds it now.
    pub const FINDING: &str = "haltpoll_finding";
    /// The driver and governor.
    pub const CPUIDLE_INFO: &str = "haltpoll_cpuidle_info";
    /// Which sources were read.
    pub const READ_SUCCESS: &str = "haltpoll_read_success";
}

/// The labels of a per-state metric: the CPU, the state's name and its index (names repeat
/// on some drivers' tables; the index never does).
const STATE_LABELS: [&str; 3] = ["cpu", "state", "index"];

/// The metrics of `facts`, in the text exposition format.
pub fn render(facts: &Facts) -> String {
    let registry = Registry::new();
    if let Ok(Some(idle)) = &facts.cpuidle {
        cpuidle(&registry, idle);
    }
    if let Ok(Some(params)) = &facts.params {
        parameters(&registry, params);
    }
    if let Ok(Some(force)) = facts.force {
        let g = gauge_vec(&registry, "haltpoll_cpuidle_haltpoll_force", FORCE_HELP, &[]);
        g.with_label_values::<&str>(&[]).set(i64::from(force));
    }
    if let Cpuid::Answered(hv) = facts.cpuid {
        let load = hypervisor::would_load(hv.kvm, matches!(facts.force, Ok(Some(true))));
        let labels = ["signature", "kvm", "poll_control", "realtime_hint", "driver_would_load"];
        let info = gauge_vec(&registry, "haltpoll_hypervisor_info", HYPERVISOR_HELP, &labels);
        let yes_no = |b: bool| if b { "true" } else { "false" };
        let signature = if hv.present { hv.signature_text().unwrap_or_default() } else { String::new() };
        info.with_label_values(&[
            signature.as_str(),
            yes_no(hv.kvm.is_some()),
            yes_no(hv.kvm.is_some_and(|k| k.poll_control())),
            yes_no(hv.kvm.is_some_and(|k| k.realtime_hint())),
            yes_no(load.is_ok()),
        ])
        .set(1);
    }
    if let Some(status) = facts.status() {
        findings(&registry, &status);
    }
    let build = gauge_vec(&registry, names::BUILD_INFO, BUILD_HELP, &["version"]);
    build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
    let read = gauge_vec(&registry, names::READ_SUCCESS, READ_HELP, &["source"]);
    for (source, error) in facts.sources() {
        read.with_label_values(&[source]).set(i64::from(error.is_none()));
    }
    let mut out = String::new();
    TextEncoder::new().encode_utf8(&registry.gather(), &mut out).expect("writing to a String cannot fail");
    out
}

const FINDING_HELP: &str = "1 if haltpoll status finds this (code, severity) now, 0 if not; \
    absent when cpuidle or the parameters could not be read. The codes: docs/operators.md.";
const HOST_POLLING_HELP: &str = "Host-side halt polling as the driver left it (state on, off, mixed or unknown), \
    and how that is known (source msr, driver, cpuid or none).";
const LATENCY_HELP: &str = "The PM QoS CPU wakeup latency limit from /dev/cpu_dma_latency, seconds \
    (absent when no request limits it or it cannot be read: reading needs root).";

/// Every finding's code, 1 if found; the host's polling; the latency limit.
fn findings(registry: &Registry, status: &Status) {
    let found: Vec<Code> = status.findings().iter().map(|f| f.code).collect();
    let g = gauge_vec(registry, names::FINDING, FINDING_HELP, &["code", "severity"]);
    for code in Code::ALL {
        g.with_label_values(&[code.id().as_str(), code.severity().name()]).set(i64::from(found.contains(&code)));
    }
    let host = status.host_polling();
    let info = gauge_vec(registry, "haltpoll_host_polling_info", HOST_POLLING_HELP, &["state", "source"]);
    info.with_label_values(&[host.state.name(), host.source]).set(1);
    if let Some(GlobalLimit::Us(us)) = status.pm_qos.as_ref().map(|q| &q.global) {
        let limit =
            registry_add(registry, GaugeVec::new(Opts::new("haltpoll_cpu_latency_limit_seconds", LATENCY_HELP), &[]));
        limit.with_label_values::<&str>(&[]).set(f64::from(*us) / 1e6);
    }
}

const BUILD_HELP: &str = "The version of haltpoll that wrote these metrics (value 1).";
const FORCE_HELP: &str = "cpuidle_haltpoll.force: 1 if the driver loads without KVM's REALTIME hint.";
const HYPERVISOR_HELP: &str =
    "The hypervisor as CPUID shows it to the CPU this runs on, and whether the cpuidle-haltpoll driver would load.";
const READ_HELP: &str =
    "1 if the source (cpuidle, params, force) was read at this scrape, 0 if a file of it could not be read.";

fn cpuidle(registry: &Registry, idle: &Cpuidle) {
    let info =
        gauge_vec(registry, names::CPUIDLE_INFO, "The cpuidle driver and governor in use.", &["driver", "governor"]);
    info.with_label_values(&[idle.driver.as_deref().unwrap_or(""), idle.governor.as_deref().unwrap_or("")]).set(1);
    let usage = counter_vec(registry, names::USAGE, "Times the CPU entered the idle state (cpuidle stateK/usage).");
    let time = registry_add(
        registry,
        CounterVec::new(
            Opts::new(names::TIME, "Time the CPU spent in the idle state (cpuidle stateK/time), seconds."),
            &STATE_LABELS,
        ),
    );
    let above = counter_vec(
        registry,
        "haltpoll_cpuidle_state_above_total",
        "Entries into the state that lasted too short for it: a shallower state would have done (stateK/above).",
    );
    let below = counter_vec(
        registry,
        "haltpoll_cpuidle_state_below_total",
        "Entries into the state that lasted long enough for a deeper state (stateK/below); for POLL, \
         polls longer than the next state's target residency.",
    );
    let rejected = counter_vec(
        registry,
        "haltpoll_cpuidle_state_rejected_total",
        "Entries into the state that it refused (stateK/rejected).",
    );
    let disabled = gauge_vec(
        registry,
        "haltpoll_cpuidle_state_disabled",
        "1 if the governor may not pick the state (stateK/disable).",
        &STATE_LABELS,
    );
    let seconds_gauge =
        |name: &str, help: &str| registry_add(registry, GaugeVec::new(Opts::new(name, help), &STATE_LABELS));
    let latency =
        seconds_gauge("haltpoll_cpuidle_state_exit_latency_seconds", "The state's exit latency (stateK/latency).");
    let residency = seconds_gauge(
        "haltpoll_cpuidle_state_target_residency_seconds",
        "The shortest stay for which the state pays (stateK/residency).",
    );
    for cpu in &idle.cpus {
        let cpu_label = cpu.cpu.to_string();
        for st in &cpu.states {
            let index = st.index.to_string();
            let labels = [cpu_label.as_str(), st.name.as_str(), index.as_str()];
            usage.with_label_values(&labels).inc_by(st.usage);
            time.with_label_values(&labels).inc_by(us_to_s(st.time_us));
            counter_if(&above, &labels, st.above);
            counter_if(&below, &labels, st.below);
            counter_if(&rejected, &labels, st.rejected);
            if let Some(d) = st.disabled {
                disabled.with_label_values(&labels).set(i64::from(d));
            }
            seconds_if(&latency, &labels, st.latency_us);
            seconds_if(&residency, &labels, st.residency_us);
        }
    }
}

fn counter_if(c: &IntCounterVec, labels: &[&str], value: Option<u64>) {
    if let Some(v) = value {
        c.with_label_values(labels).inc_by(v);
    }
}

fn seconds_if(g: &GaugeVec, labels: &[&str], us: Option<u64>) {
    if let Some(us) = us {
        g.with_label_values(labels).set(us_to_s(us));
    }
}

fn us_to_s(us: u64) -> f64 {
    us as f64 / 1e6
}

/// Each parameter's metric: its name, its help, and the factor to its base unit (seconds for
/// the two times, the kernel's number for the rest).
const PARAM_METRICS: [(Param, &str, &str, f64); 5] = [
    (
        Param::PollNs,
        names::POLL_CEILING,
        "guest_halt_poll_ns: the ceiling of each CPU's poll window, seconds (0: guest polling off).",
        1e-9,
    ),
    (
        Param::Grow,
        "haltpoll_guest_halt_poll_grow",
        "guest_halt_poll_grow: the factor the window grows by after a halt that a longer poll would have caught.",
        1.0,
    ),
    (
        Param::GrowStart,
        "haltpoll_guest_halt_poll_grow_start_seconds",
        "guest_halt_poll_grow_start: the window a CPU's first growth starts at, seconds.",
        1e-9,
    ),
    (
        Param::Shrink,
        "haltpoll_guest_halt_poll_shrink",
        "guest_halt_poll_shrink: the divisor the window shrinks by after a long halt (0: back to 0).",
        1.0,
    ),
    (
        Param::AllowShrink,
        "haltpoll_guest_halt_poll_allow_shrink",
        "guest_halt_poll_allow_shrink: 1 if the window may shrink.",
        1.0,
    ),
];

/// Each parameter as a gauge in base units.
fn parameters(registry: &Registry, params: &ModuleParams) {
    for (param, name, help, scale) in PARAM_METRICS {
        let raw = match param {
            Param::PollNs => params.guest_halt_poll_ns,
            Param::Grow => params.grow,
            Param::GrowStart => params.grow_start,
            Param::Shrink => params.shrink,
            Param::AllowShrink => u32::from(params.allow_shrink),
        };
        let gauge = registry_add(registry, GaugeVec::new(Opts::new(name, help), &[]));
        gauge.with_label_values::<&str>(&[]).set(f64::from(raw) * scale);
    }
}

fn counter_vec(registry: &Registry, name: &str, help: &str) -> IntCounterVec {
    registry_add(registry, GenericCounterVec::new(Opts::new(name, help), &STATE_LABELS))
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    registry_add(registry, GenericGaugeVec::new(Opts::new(name, help), labels))
}

/// Registers a metric whose name and labels are this module's constants: a failure is a bug
/// here (a bad or repeated name), which the tests exercise.
fn registry_add<C: Collector + Clone + 'static>(registry: &Registry, metric: prometheus::Result<C>) -> C {
    let metric = metric.expect("metric names and labels are valid constants");
    registry.register(Box::new(metric.clone())).expect("each metric is registered once");
    metric
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// A one-CPU haltpoll guest as a sysfs tree, with a state name that needs escaping and a
    /// counter at its limit.
    fn facts() -> (tempfile::TempDir, Facts) {
        let dir = tempfile::tempdir().unwrap();
        let put = |rel: &str, v: &str| {
            let path = dir.path().join(rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, format!("{v}\n")).unwrap();
        };
        put("devices/system/cpu/cpuidle/current_driver", "haltpoll");
        put("devices/system/cpu/cpuidle/current_governor", "haltpoll");
        let states = [("POLL", "10", "1500000", "2"), ("haltpoll \"idle\\", "18446744073709551615", "0", "1")];
        for (k, (name, usage, time, latency)) in states.into_iter().enumerate() {
            let d = format!("devices/system/cpu/cpu3/cpuidle/state{k}");
            put(&format!("{d}/name"), name);
            put(&format!("{d}/usage"), usage);
            put(&format!("{d}/time"), time);
            put(&format!("{d}/latency"), latency);
            put(&format!("{d}/above"), "1");
            put(&format!("{d}/disable"), "0");
        }
        for (p, v) in ["200000", "2", "50000", "2", "Y"].into_iter().enumerate() {
            put(&Param::ALL[p].path(), v);
        }
        put(module_params::FORCE, "Y");
        put("proc/cmdline", "quiet cpuidle_haltpoll.force=1");
        put("proc/stat", "cpu  100 0 0 0 0 0 0 0 0 0");
        fs::create_dir_all(dir.path().join("dev")).unwrap();
        fs::write(dir.path().join("dev/cpu_dma_latency"), 0i32.to_ne_bytes()).unwrap();
        let roots = Roots { proc: dir.path().join("proc"), dev: dir.path().join("dev") };
        let facts = Facts::read(&Sysfs::open(dir.path()).unwrap(), &roots);
        (dir, facts)
    }

    #[test]
    fn counters_gauges_and_infos() {
        let (_dir, facts) = facts();
        let text = render(&facts);
        for line in [
            "# TYPE haltpoll_cpuidle_state_usage_total counter",
            "haltpoll_cpuidle_state_usage_total{cpu=\"3\",index=\"0\",state=\"POLL\"} 10",
            "haltpoll_cpuidle_state_time_seconds_total{cpu=\"3\",index=\"0\",state=\"POLL\"} 1.5",
            // label values escaped as the format wants; values are float64 in Prometheus
            "haltpoll_cpuidle_state_usage_total{cpu=\"3\",index=\"1\",state=\"haltpoll \\\"idle\\\\\"} 18446744073709552000",
            "haltpoll_cpuidle_state_exit_latency_seconds{cpu=\"3\",index=\"0\",state=\"POLL\"} 0.000002",
            "haltpoll_cpuidle_info{driver=\"haltpoll\",governor=\"haltpoll\"} 1",
            "haltpoll_guest_halt_poll_ceiling_seconds 0.0002",
            "haltpoll_guest_halt_poll_grow_start_seconds 0.00005",
            "haltpoll_guest_halt_poll_grow 2",
            "haltpoll_guest_halt_poll_allow_shrink 1",
            "haltpoll_cpuidle_haltpoll_force 1",
            "haltpoll_read_success{source=\"cpuidle\"} 1",
            concat!("haltpoll_build_info{version=\"", env!("CARGO_PKG_VERSION"), "\"} 1"),
            // cpu_dma_latency holds 0: every idle period polls
            "haltpoll_finding{code=\"HP014\",severity=\"warning\"} 1",
            "haltpoll_finding{code=\"HP005\",severity=\"warning\"} 0",
            "haltpoll_cpu_latency_limit_seconds 0",
        ] {
            assert!(text.lines().any(|l| l == line), "no line {line:?} in\n{text}");
        }
        assert!(!text.contains("below_total{"), "a counter the kernel does not have is left out:\n{text}");
        // What it says depends on this machine's CPUID; that it says something does not.
        assert_eq!(text.lines().filter(|l| l.starts_with("haltpoll_host_polling_info{")).count(), 1, "{text}");
        assert_eq!(text.lines().filter(|l| l.starts_with("haltpoll_finding{")).count(), Code::ALL.len());
    }

    #[test]
    fn a_source_that_failed_costs_only_its_own_metrics() {
        let (_dir, facts) = facts();
        let f = Facts { cpuidle: Err("cannot read x".into()), ..facts };
        let text = render(&f);
        assert!(!text.contains("haltpoll_cpuidle_state_usage_total{"), "{text}");
        assert!(text.contains("haltpoll_read_success{source=\"cpuidle\"} 0"), "{text}");
        assert!(!text.contains("haltpoll_finding{"), "no findings from half a state:\n{text}");
        assert!(text.contains("haltpoll_guest_halt_poll_ceiling_seconds 0.0002"), "{text}");
        assert_eq!(f.problems(), vec!["cannot read x".to_owned()]);
    }
}
