//! KVM's binary statistics of a vCPU (`KVM_GET_STATS_FD`, Linux 5.14+): halt exits, host halt
//! polls, wakeups, exits, read before and after a run.
//!
//! The stats file is a header, a table of descriptors (name, type, size, offset) and a data
//! block; the layout is fixed when the file is opened, so only the data block is re-read.

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

/// Declares [`KvmStat`] from one table, variant and KVM's name side by side, so the list of
/// counters, their names and `ALL` cannot disagree.
macro_rules! kvm_stats {
    ($($(#[doc = $doc:literal])* $variant:ident = $name:literal,)*) => {
        /// The KVM counters the VMM reads: those worth reporting about idling. Each is found in
        /// the statistics' descriptors once, when the file is opened, so a counter the kernel
        /// lacks is an error then rather than a 0 in every report.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum KvmStat {
            $($(#[doc = $doc])* $variant,)*
        }

        impl KvmStat {
            /// Every counter, in report order.
            pub const ALL: &'static [KvmStat] = &[$(KvmStat::$variant),*];

            /// KVM's name for it.
            pub fn name(self) -> &'static str {
                match self {
                    $(KvmStat::$variant => $name,)*
                }
            }
        }
    };
}

kvm_stats! {
    /// VM exits of any kind.
    Exits = "exits",
    /// Exits because the guest executed HLT.
    HaltExits = "halt_exits",
    /// Host halt polls that ended with a wakeup (the vCPU never slept).
    HaltSuccessfulPoll = "halt_successful_poll",
    /// Host halt polls attempted.
    HaltAttemptedPoll = "halt_attempted_poll",
    /// Host halt polls cut short because the vCPU could not block.
    HaltPollInvalid = "halt_poll_invalid",
    /// Times a halted vCPU was woken after sleeping.
    HaltWakeup = "halt_wakeup",
    /// Time the host spent in halt polls that caught the wakeup, ns.
    HaltPollSuccessNs = "halt_poll_success_ns",
    /// Time the host spent in halt polls that did not, ns.
    HaltPollFailNs = "halt_poll_fail_ns",
    /// Time halted vCPUs slept, ns.
    HaltWaitNs = "halt_wait_ns",
    /// Exits for a host interrupt.
    IrqExits = "irq_exits",
    /// Exits for port I/O.
    IoExits = "io_exits",
    /// Exits for MMIO.
    MmioExits = "mmio_exits",
    /// Instructions KVM emulated.
    InsnEmulation = "insn_emulation",
}

/// Where one counter sits in the data block.
#[derive(Clone, Copy, Debug)]
struct Slot {
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
    slots: [Slot; KvmStat::ALL.len()],
}

fn stats_error(error: io::Error) -> VmmError {
    VmmError::Host { operation: "reading KVM's binary statistics", error }
}

impl StatsFd {
    /// Opens the statistics of vCPU `fd` and finds every [`KvmStat`] in them.
    pub fn open(fd: &VcpuFd) -> Result<StatsFd, VmmError> {
        // SAFETY: KVM_GET_STATS_FD takes no argument and returns a new file descriptor or -1;
        // `fd` is a KVM vCPU file descriptor (the type says so) for the duration of the call.
        let raw = unsafe { ioctl(fd, KVM_GET_STATS_FD()) };
        if raw < 0 {
            return Err(VmmError::Kvm { operation: "KVM_GET_STATS_FD", error: io::Error::last_os_error() });
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
        let mut slots: [Option<Slot>; KvmStat::ALL.len()] = [None; KvmStat::ALL.len()];
        let mut data_len = 0;
        for raw in table.chunks_exact(stride) {
            let flags = u32::from_le_bytes(raw[0..4].try_into().expect("4 bytes"));
            let size = usize::from(u16::from_le_bytes(raw[6..8].try_into().expect("2 bytes")));
            let offset = u32::from_le_bytes(raw[8..12].try_into().expect("4 bytes")) as usize;
            let name = &raw[DESC_SIZE..];
            let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
            data_len = data_len.max(offset + size * 8);
            // Histograms (size > 1) are left out: the VMM reports plain counters.
            let Some(stat) = KvmStat::ALL.iter().copied().find(|s| s.name().as_bytes() == name) else { continue };
            if size == 1 {
                let cumulative = flags & KVM_STATS_TYPE_MASK == KVM_STATS_TYPE_CUMULATIVE;
                slots[stat as usize] = Some(Slot { offset, cumulative });
            }
        }
        let mut found = [Slot { offset: 0, cumulative: false }; KvmStat::ALL.len()];
        for &stat in KvmStat::ALL {
            found[stat as usize] = slots[stat as usize].ok_or(VmmError::MissingCapability {
                capability: stat.name(),
                consequence: "the VMM reports this counter of every vCPU's binary statistics (KVM_GET_STATS_FD)",
            })?;
        }
        Ok(StatsFd { file, data_offset: data_offset as u64, data_len, slots: found })
    }

    /// The counters now.
    pub fn read(&self) -> Result<KvmStats, VmmError> {
        let mut data = vec![0u8; self.data_len];
        self.file.read_exact_at(&mut data, self.data_offset).map_err(stats_error)?;
        let mut stats = KvmStats::default();
        for (i, slot) in self.slots.iter().enumerate() {
            stats.values[i] = u64::from_le_bytes(data[slot.offset..slot.offset + 8].try_into().expect("8 bytes"));
            stats.cumulative[i] = slot.cumulative;
        }
        Ok(stats)
    }
}

/// A snapshot (or, from [`KvmStats::since`], the change) of a vCPU's [`KvmStat`] counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KvmStats {
    values: [u64; KvmStat::ALL.len()],
    cumulative: [bool; KvmStat::ALL.len()],
}

impl KvmStats {
    /// The counter `stat`.
    pub fn get(&self, stat: KvmStat) -> u64 {
        self.values[stat as usize]
    }

    /// What changed from `before` to `self`: the difference of cumulative counters; gauges
    /// (current or peak values) keep their value in `self`.
    pub fn since(&self, before: &KvmStats) -> KvmStats {
        let mut delta = self.clone();
        for i in 0..delta.values.len() {
            if self.cumulative[i] {
                delta.values[i] = self.values[i].saturating_sub(before.values[i]);
            }
        }
        delta
    }

    /// VM exits of any kind.
    pub fn exits(&self) -> u64 {
        self.get(KvmStat::Exits)
    }

    /// Exits because the guest executed HLT.
    pub fn halt_exits(&self) -> u64 {
        self.get(KvmStat::HaltExits)
    }

    /// Host halt polls that ended with a wakeup (the vCPU never slept).
    pub fn halt_successful_poll(&self) -> u64 {
        self.get(KvmStat::HaltSuccessfulPoll)
    }

    /// Host halt polls attempted.
    pub fn halt_attempted_poll(&self) -> u64 {
        self.get(KvmStat::HaltAttemptedPoll)
    }

    /// Times a halted vCPU was woken after sleeping.
    pub fn halt_wakeup(&self) -> u64 {
        self.get(KvmStat::HaltWakeup)
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

    /// Every counter the VMM reads, as a plain cumulative counter, `value + its index`.
    fn every_stat(value: u64) -> Vec<(&'static str, u32, u16, u64)> {
        KvmStat::ALL.iter().enumerate().map(|(i, s)| (s.name(), 0, 1, value + i as u64)).collect()
    }

    #[test]
    fn parses_counters_and_skips_histograms() {
        const PEAK: u32 = 2;
        let mut values = vec![("halt_poll_success_hist", 0, 32, 0), ("max_mmu_page_hash_collisions", PEAK, 1, 7)];
        values.extend(every_stat(100));
        // A gauge among the counters the VMM reads: `since` keeps its value.
        values.retain(|v| v.0 != "halt_wakeup");
        values.push(("halt_wakeup", PEAK, 1, 9));
        let fd = StatsFd::parse(fake_stats_file(&values)).unwrap();
        let stats = fd.read().unwrap();
        assert_eq!(stats.exits(), 100);
        assert_eq!(stats.halt_exits(), 101);
        assert_eq!(stats.get(KvmStat::InsnEmulation), 112);
        let mut later = stats.clone();
        later.values.iter_mut().for_each(|v| *v += 3);
        let delta = later.since(&stats);
        assert_eq!(delta.halt_exits(), 3);
        assert_eq!(delta.halt_wakeup(), 12, "a gauge keeps its value");
    }

    #[test]
    fn a_missing_counter_is_an_error_that_names_it() {
        let mut values = every_stat(0);
        values.retain(|v| v.0 != "halt_wait_ns");
        let err = StatsFd::parse(fake_stats_file(&values)).unwrap_err();
        assert!(err.to_string().contains("lacks halt_wait_ns"), "{err}");
    }
}
