//! The PM QoS limits on CPU wakeup latency, which every cpuidle governor obeys: the global
//! one a process sets by holding `/dev/cpu_dma_latency` open (tuned's latency-performance
//! profile, DPDK, some databases), and each CPU's resume latency in sysfs. At a limit of 0 µs
//! the haltpoll governor picks POLL for every idle period and never halts, whatever
//! `guest_halt_poll_ns` says: the CPUs spin whenever they are idle.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use serde::Serialize;

use crate::cpuidle::CPU_DIR;
use crate::sysfs::{Sysfs, SysfsError};

/// The global limit's device, under the /dev root.
pub const CPU_DMA_LATENCY: &str = "cpu_dma_latency";
/// What the kernel reports when no request limits the latency (2000 s, in µs).
pub const NO_CONSTRAINT_US: i32 = 2_000_000_000;
/// Each CPU's resume latency limit, under `devices/system/cpu/cpuN/` of sysfs.
pub const RESUME_LATENCY: &str = "power/pm_qos_resume_latency_us";

/// The global CPU latency limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GlobalLimit {
    /// No request limits it.
    None,
    /// Wakeups must take at most this many µs.
    Us(u32),
    /// It could not be read, and why.
    Unknown(String),
}

/// The limits in force.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PmQos {
    /// The global limit.
    pub global: GlobalLimit,
    /// The CPUs whose own resume latency is limited, with the limit in µs (0: none tolerated,
    /// sysfs's `n/a`).
    pub cpus: Vec<CpuLimit>,
}

/// One CPU's own resume latency limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct CpuLimit {
    /// The CPU number.
    pub cpu: u32,
    /// The limit, µs (0: no latency tolerated).
    pub limit_us: u32,
}

impl PmQos {
    /// Reads the global limit under `dev` and each CPU's under `sys`.
    pub fn read(dev: &Path, sys: &Sysfs) -> Result<PmQos, SysfsError> {
        let mut cpus = Vec::new();
        for cpu in sys.numbered(CPU_DIR, "cpu")? {
            let text = sys.read(format!("{CPU_DIR}/cpu{cpu}/{RESUME_LATENCY}"))?;
            // sysfs shows "0" for no limit and "n/a" for a limit of 0.
            let limit = match text.as_deref() {
                None | Some("0") => None,
                Some("n/a") => Some(0),
                Some(t) => Some(t.parse::<u32>().map_err(|_| SysfsError::Malformed {
                    path: sys.path(format!("{CPU_DIR}/cpu{cpu}/{RESUME_LATENCY}")),
                    text: t.to_owned(),
                    expected: "a whole number of µs, 0 or n/a",
                })?),
            };
            cpus.extend(limit.map(|limit_us| CpuLimit { cpu, limit_us }));
        }
        Ok(PmQos { global: read_global(&dev.join(CPU_DMA_LATENCY)), cpus })
    }

    /// The CPUs that may not wait at all: the global limit is 0 (then `all` is true), or their
    /// own is.
    pub fn zero_latency(&self) -> (bool, Vec<u32>) {
        let all = self.global == GlobalLimit::Us(0);
        (all, self.cpus.iter().filter(|c| c.limit_us == 0).map(|c| c.cpu).collect())
    }
}

/// Reads the global limit: the device answers a read with the current limit, 4 bytes.
///
/// Opening the device files a request of its own, at the default (no limit), so the limit
/// read is the one in force; the file is closed at once, which withdraws that request. A file
/// held open would be a request for as long as it is.
fn read_global(path: &Path) -> GlobalLimit {
    let read = || -> io::Result<i32> {
        let mut bytes = [0u8; 4];
        File::open(path)?.read_exact(&mut bytes)?;
        Ok(i32::from_ne_bytes(bytes))
    };
    match read() {
        Ok(us) if us >= NO_CONSTRAINT_US => GlobalLimit::None,
        Ok(us) => GlobalLimit::Us(us.max(0).unsigned_abs()),
        Err(e) => GlobalLimit::Unknown(match e.kind() {
            io::ErrorKind::NotFound => format!("{} does not exist (not Linux, or no /dev)", path.display()),
            io::ErrorKind::PermissionDenied => format!("reading {} needs root", path.display()),
            _ => format!("{}: {e}", path.display()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn tree(global: Option<i32>, per_cpu: &[&str]) -> (tempfile::TempDir, Result<PmQos, SysfsError>) {
        let dir = tempfile::tempdir().unwrap();
        let dev = dir.path().join("dev");
        fs::create_dir_all(&dev).unwrap();
        fs::create_dir_all(dir.path().join("sys")).unwrap();
        if let Some(us) = global {
            fs::write(dev.join(CPU_DMA_LATENCY), us.to_ne_bytes()).unwrap();
        }
        for (cpu, text) in per_cpu.iter().enumerate() {
            let path = dir.path().join(format!("sys/{CPU_DIR}/cpu{cpu}/{RESUME_LATENCY}"));
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, format!("{text}\n")).unwrap();
        }
        let q = PmQos::read(&dev, &Sysfs::open(&dir.path().join("sys")).unwrap());
        (dir, q)
    }

    #[test]
    fn no_request_is_no_limit() {
        let (_d, q) = tree(Some(NO_CONSTRAINT_US), &["0", "0"]);
        let q = q.unwrap();
        assert_eq!(q, PmQos { global: GlobalLimit::None, cpus: vec![] });
        assert_eq!(q.zero_latency(), (false, vec![]));
    }

    #[test]
    fn a_zero_limit_global_or_per_cpu() {
        let (_d, q) = tree(Some(0), &["0", "n/a", "20"]);
        let q = q.unwrap();
        assert_eq!(q.global, GlobalLimit::Us(0));
        assert_eq!(q.cpus, vec![CpuLimit { cpu: 1, limit_us: 0 }, CpuLimit { cpu: 2, limit_us: 20 }]);
        assert_eq!(q.zero_latency(), (true, vec![1]));
    }

    #[test]
    fn unreadable_says_why() {
        let (_d, q) = tree(None, &[]);
        let GlobalLimit::Unknown(why) = q.unwrap().global else { panic!("a limit read from no file") };
        assert!(why.ends_with("cpu_dma_latency does not exist (not Linux, or no /dev)"), "{why}");
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(CPU_DMA_LATENCY), [1u8, 2]).unwrap();
        let GlobalLimit::Unknown(why) = read_global(&dir.path().join(CPU_DMA_LATENCY)) else { panic!() };
        assert!(why.contains("failed to fill whole buffer"), "a short read: {why}");
        let (_d, q) = tree(Some(NO_CONSTRAINT_US), &["lots"]);
        let err = q.unwrap_err().to_string();
        assert!(err.contains("pm_qos_resume_latency_us: expected a whole number of µs, 0 or n/a"), "{err}");
    }
}
