//! Fixture sysfs trees, built in a temporary directory.

#![allow(dead_code)] // each test binary uses its own part

use std::fs;
use std::path::Path;

/// One idle state: (name, desc, usage, time_us, above, below, latency_us, residency_us, disable).
pub type State<'a> = (&'a str, &'a str, u64, u64, u64, u64, u64, u64, u64);

/// Writes `contents` (and a newline) to `root/rel`, creating directories.
pub fn put(root: &Path, rel: &str, contents: &str) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, format!("{contents}\n")).unwrap();
}

/// cpuidle with `driver` and `governor`, and `states` on each of `cpus` CPUs.
pub fn cpuidle(root: &Path, driver: &str, governor: &str, cpus: u32, states: &[State]) {
    put(root, "devices/system/cpu/cpuidle/current_driver", driver);
    put(root, "devices/system/cpu/cpuidle/current_governor", governor);
    put(root, "devices/system/cpu/cpuidle/available_governors", "ladder menu teo haltpoll");
    fs::create_dir_all(root.join("devices/system/cpu/cpufreq")).unwrap();
    for cpu in 0..cpus {
        for (k, &(name, desc, usage, time, above, below, latency, residency, disable)) in states.iter().enumerate() {
            let dir = format!("devices/system/cpu/cpu{cpu}/cpuidle/state{k}");
            put(root, &format!("{dir}/name"), name);
            put(root, &format!("{dir}/desc"), desc);
            // Each CPU a little different, so a mix-up between CPUs shows.
            put(root, &format!("{dir}/usage"), &(usage + u64::from(cpu)).to_string());
            put(root, &format!("{dir}/time"), &time.to_string());
            put(root, &format!("{dir}/above"), &above.to_string());
            put(root, &format!("{dir}/below"), &below.to_string());
            put(root, &format!("{dir}/latency"), &latency.to_string());
            put(root, &format!("{dir}/residency"), &residency.to_string());
            put(root, &format!("{dir}/disable"), &disable.to_string());
            put(root, &format!("{dir}/rejected"), "0");
        }
    }
}

/// The haltpoll module parameters.
pub fn params(root: &Path, values: [&str; 5]) {
    let names = ["ns", "grow", "grow_start", "shrink", "allow_shrink"];
    for (name, value) in names.iter().zip(values) {
        put(root, &format!("module/haltpoll/parameters/guest_halt_poll_{name}"), value);
    }
}

/// A 2-CPU KVM guest running cpuidle-haltpoll with polling switched off on the command line
/// (guest_halt_poll_ns=0, force=Y): the machine this project is developed on.
pub fn haltpoll_guest(root: &Path) {
    cpuidle(
        root,
        "haltpoll",
        "haltpoll",
        2,
        &[
            ("POLL", "CPUIDLE CORE POLL IDLE", 0, 0, 0, 0, 0, 0, 0),
            ("haltpoll idle", "default architecture idle", 39520, 610_876_590, 3, 0, 1, 1, 0),
        ],
    );
    params(root, ["0", "2", "50000", "2", "Y"]);
    put(root, "module/cpuidle_haltpoll/parameters/force", "Y");
}

/// A guest that polls: the defaults, and counters with polls in them.
pub fn polling_guest(root: &Path) {
    cpuidle(
        root,
        "haltpoll",
        "haltpoll",
        2,
        &[
            ("POLL", "CPUIDLE CORE POLL IDLE", 30_000, 900_000, 0, 20_000, 0, 0, 0),
            ("haltpoll idle", "default architecture idle", 10_000, 9_100_000, 5, 0, 1, 1, 0),
        ],
    );
    params(root, ["200000", "2", "50000", "2", "Y"]);
}

/// Bare metal with intel_idle and the menu governor: no haltpoll anywhere.
pub fn bare_metal(root: &Path) {
    cpuidle(
        root,
        "intel_idle",
        "menu",
        4,
        &[
            ("POLL", "CPUIDLE CORE POLL IDLE", 100, 50, 0, 90, 0, 0, 0),
            ("C1", "MWAIT 0x00", 5000, 900_000, 10, 400, 2, 2, 0),
            ("C6", "MWAIT 0x20", 8000, 90_000_000, 300, 0, 85, 200, 0),
        ],
    );
}

/// /proc and /dev for a guest, under `root/proc` and `root/dev`: a command line that sets
/// `haltpoll.guest_halt_poll_ns=0`, 5% steal, a PM QoS latency limit of `latency_us` (held
/// open by someone), and each of `msrs` CPUs' MSR_KVM_POLL_CONTROL. Returns the options that
/// point `status` or `exporter` at them.
pub fn system(root: &Path, latency_us: i32, msrs: &[u64]) -> [String; 4] {
    use std::os::unix::fs::FileExt;
    put(root, "proc/cmdline", "console=ttyS0 cpuidle_haltpoll.force=1 haltpoll.guest_halt_poll_ns=0 -- init");
    put(root, "proc/stat", "cpu  900 0 50 0 0 0 0 50 0 0\ncpu0 450 0 25 0 0 0 0 25 0 0\nintr 1 2 3");
    fs::create_dir_all(root.join("dev")).unwrap();
    fs::write(root.join("dev/cpu_dma_latency"), latency_us.to_ne_bytes()).unwrap();
    for (cpu, value) in msrs.iter().enumerate() {
        fs::create_dir_all(root.join(format!("dev/cpu/{cpu}"))).unwrap();
        // Sparse: the MSR's 8 bytes at its number, where the msr driver reads them.
        let file = fs::File::create(root.join(format!("dev/cpu/{cpu}/msr"))).unwrap();
        file.write_all_at(&value.to_le_bytes(), 0x4b56_4d05).unwrap();
    }
    let path = |p: &str| root.join(p).to_str().unwrap().to_owned();
    ["--proc-root".into(), path("proc"), "--dev-root".into(), path("dev")]
}
