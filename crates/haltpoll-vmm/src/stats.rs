//! KVM's binary statistics of a vCPU (`KVM_GET_STATS_FD`, Linux 5.14+): halt exits, host halt
//! polls, wakeups, exits, read before and after a run.
//!
//! The stats file is a header, a table of descriptors (name, type, size, offset) and a data
//! block; the layout is fixed when the file is opened, so only the data block is re-read.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::fd::FromRawFd;
use std::os::unix::fs::FileExt;

use kvm_bindings::{KVM_STATS_TYPE_CUMULATIVE, KVM_STATS_TYPE_MASK};
use kvm_ioctls::VcpuFd;
use vmm_sys_util::ioctl::ioctl;

use crate::VmmError;
use ioctls::KVM_GET_STATS_FD;

mod ioctls {
    use kvm_bindings::KVMIO;
    // kvm-ioctls 0.25 does not wrap this one.
    vmm_sys_util::ioctl_io_nr!(KVM_GET_STATS_FD, KVMIO, 0xce);
}

/// Size of `struct kvm_stats_header`.
const HEADER_SIZE: usize = 24;
/// Size of `struct kvm_stats_desc` without its name.
const DESC_SIZE: usize = 16;

/// One counter's place in the data block.
#[derive(Clone, Debug)]
struct Descriptor {
    name: String,
    /// Byte offset in the data block.
    offset: usize,
    cumulative: bool,
}

/// An open stats file of one vCPU.
#[derive(Debug)]
pub struct StatsFd {
    file: File,
    data_offset: u64,
    data_len: usize,
    descriptors: Vec<Descriptor>,
}

fn stats_error(source: io::Error) -> VmmError {
    VmmError::Host { operation: "reading KVM's binary statistics", source }
}

impl StatsFd {
    /// Opens the statistics of vCPU `fd` and reads their layout.
    pub fn open(fd: &VcpuFd) -> Result<StatsFd, VmmError> {
        // SAFETY: KVM_GET_STATS_FD takes no argument and returns a new file descriptor or -1;
        // `fd` is a KVM vCPU file descriptor (the type says so) for the duration of the call.
        let raw = unsafe { ioctl(fd, KVM_GET_STATS_FD()) };
        if raw < 0 {
            return Err(VmmError::Kvm { operation: "KVM_GET_STATS_FD", source: io::Error::last_os_error() });
        }
        // SAFETY: the ioctl returned a fresh descriptor that nothing else owns.
        let file = unsafe { File::from_raw_fd(raw) };
        StatsFd::parse(file)
    }

    fn parse(file: File) -> Result<StatsFd, VmmError> {
        let mut header = [0u8; HEADER_SIZE];
        file.read_exact_at(&mut header, 0).map_err(stats_error)?;
        let field = |i: usize| u32::from_le_bytes(header[i * 4..i * 4 + 4].try_into().expect("4 bytes")) as usize;
        let (name_size, num_desc, desc_offset, data_offset) = (field(1), field(2), field(4), field(5));
        let stride = DESC_SIZE + name_size;
        let mut table = vec![0u8; stride * num_desc];
        file.read_exact_at(&mut table, desc_offset as u64).map_err(stats_error)?;
        let mut descriptors = Vec::with_capacity(num_desc);
        let mut data_len = 0;
        for raw in table.chunks_exact(stride) {
            let flags = u32::from_le_bytes(raw[0..4].try_into().expect("4 bytes"));
            let size = usize::from(u16::from_le_bytes(raw[6..8].try_into().expect("2 bytes")));
            let offset = u32::from_le_bytes(raw[8..12].try_into().expect("4 bytes")) as usize;
            let name = &raw[DESC_SIZE..];
            let name = String::from_utf8_lossy(&name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())]);
            data_len = data_len.max(offset + size * 8);
            // Histograms (size > 1) are left out: the VMM reports plain counters.
            if size == 1 {
                descriptors.push(Descriptor {
                    name: name.into_owned(),
                    offset,
                    cumulative: flags & KVM_STATS_TYPE_MASK == KVM_STATS_TYPE_CUMULATIVE,
                });
            }
        }
        Ok(StatsFd { file, data_offset: data_offset as u64, data_len, descriptors })
    }

    /// The counters now.
    pub fn read(&self) -> Result<KvmStats, VmmError> {
        let mut data = vec![0u8; self.data_len];
        self.file.read_exact_at(&mut data, self.data_offset).map_err(stats_error)?;
        let values = self
            .descriptors
            .iter()
            .map(|d| {
                let value = u64::from_le_bytes(data[d.offset..d.offset + 8].try_into().expect("8 bytes"));
                (d.name.clone(), Stat { value, cumulative: d.cumulative })
            })
            .collect();
        Ok(KvmStats(values))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stat {
    value: u64,
    cumulative: bool,
}

/// The counters worth reporting about idling, by their KVM names.
pub const IDLE_STATS: [&str; 13] = [
    "exits",
    "halt_exits",
    "halt_successful_poll",
    "halt_attempted_poll",
    "halt_poll_invalid",
    "halt_wakeup",
    "halt_poll_success_ns",
    "halt_poll_fail_ns",
    "halt_wait_ns",
    "irq_exits",
    "io_exits",
    "mmio_exits",
    "insn_emulation",
];

/// A snapshot (or, from [`KvmStats::since`], the change) of a vCPU's KVM counters by their KVM
/// names: `halt_exits`, `halt_successful_poll`, `halt_attempted_poll`, `halt_wakeup`, `exits`...
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KvmStats(BTreeMap<String, Stat>);

impl KvmStats {
    /// The counter called `name` (0 if this kernel does not have it).
    pub fn get(&self, name: &str) -> u64 {
        self.0.get(name).map_or(0, |s| s.value)
    }

    /// What changed from `before` to `self`: the difference of cumulative counters; gauges
    /// (current or peak values) keep their value in `self`.
    pub fn since(&self, before: &KvmStats) -> KvmStats {
        KvmStats(
            self.0
                .iter()
                .map(|(name, s)| {
                    let value = if s.cumulative {
                        s.value.saturating_sub(before.0.get(name).map_or(0, |b| b.value))
                    } else {
                        s.value
                    };
                    (name.clone(), Stat { value, ..*s })
                })
                .collect(),
        )
    }

    /// Every counter, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> {
        self.0.iter().map(|(name, s)| (name.as_str(), s.value))
    }

    /// VM exits of any kind.
    pub fn exits(&self) -> u64 {
        self.get("exits")
    }

    /// Exits because the guest executed HLT.
    pub fn halt_exits(&self) -> u64 {
        self.get("halt_exits")
    }

    /// Host halt polls that ended with a wakeup (the vCPU never slept).
    pub fn halt_successful_poll(&self) -> u64 {
        self.get("halt_successful_poll")
    }

    /// Host halt polls attempted.
    pub fn halt_attempted_poll(&self) -> u64 {
        self.get("halt_attempted_poll")
    }

    /// Times a halted vCPU was woken after sleeping.
    pub fn halt_wakeup(&self) -> u64 {
        self.get("halt_wakeup")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A stats file as the kernel lays it out: header, descriptors, data.
    fn fake_stats_file(values: &[(&str, u32, u16, u64)]) -> File {
        let name_size = 32;
        let desc_offset = HEADER_SIZE + 8; // the id string sits between
        let data_offset = desc_offset + values.len() * (DESC_SIZE + name_size);
        let mut bytes = Vec::new();
        for field in [0, name_size, values.len(), HEADER_SIZE, desc_offset, data_offset] {
            bytes.extend_from_slice(&(field as u32).to_le_bytes());
        }
        bytes.extend_from_slice(b"kvm-1/0\0");
        let mut data = Vec::new();
        for &(name, flags, size, value) in values {
            bytes.extend_from_slice(&flags.to_le_bytes());
            bytes.extend_from_slice(&0i16.to_le_bytes());
            bytes.extend_from_slice(&size.to_le_bytes());
            bytes.extend_from_slice(&(data.len() as u32).to_le_bytes());
            bytes.extend_from_slice(&0u32.to_le_bytes());
            let mut padded = name.as_bytes().to_vec();
            padded.resize(name_size, 0);
            bytes.extend_from_slice(&padded);
            for i in 0..size {
                data.extend_from_slice(&(value + u64::from(i)).to_le_bytes());
            }
        }
        bytes.extend_from_slice(&data);
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&bytes).unwrap();
        file
    }

    #[test]
    fn parses_counters_and_skips_histograms() {
        const PEAK: u32 = 2;
        let file = fake_stats_file(&[
            ("halt_exits", 0, 1, 10),
            ("halt_poll_success_hist", 0, 32, 0),
            ("exits", 0, 1, 500),
            ("max_mmu_page_hash_collisions", PEAK, 1, 7),
        ]);
        let stats = StatsFd::parse(file).unwrap().read().unwrap();
        assert_eq!(stats.halt_exits(), 10);
        assert_eq!(stats.exits(), 500);
        assert_eq!(stats.get("halt_poll_success_hist"), 0, "histograms are left out");
        assert_eq!(stats.get("no_such_counter"), 0);
        let later = KvmStats(
            stats.0.iter().map(|(n, s)| (n.clone(), Stat { value: s.value + 3, cumulative: s.cumulative })).collect(),
        );
        let delta = later.since(&stats);
        assert_eq!(delta.halt_exits(), 3);
        assert_eq!(delta.get("max_mmu_page_hash_collisions"), 10, "a peak keeps its value");
    }
}
