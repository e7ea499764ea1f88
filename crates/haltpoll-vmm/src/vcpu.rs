//! One vCPU on its own host thread: pinned to a host CPU, run until the guest writes to the exit
//! port or the watchdog stops it, with its KVM statistics and the thread's CPU time measured
//! from the guest's mark (the end of its warm-up; the start if it never marks) to the end.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use haltpoll_abi::{EXIT_PORT, MARK_PORT};
use kvm_bindings::{KVM_EXIT_INTERNAL_ERROR, KVM_MP_STATE_HALTED};
use kvm_ioctls::VcpuExit;

use crate::VmmError;
use crate::stats::{KvmStats, StatsFd};
use crate::vm::Vcpu;
use crate::watchdog;
use haltpoll_bench::host::{ThreadUsage, pin};

/// A vCPU ready to run on a thread of its own.
#[derive(Debug)]
pub struct VcpuThread {
    /// Its index (and APIC id).
    pub index: usize,
    /// The vCPU (it keeps the guest memory mapped while it can run, even if the VMM gives up
    /// on an unresponsive thread).
    pub vcpu: Vcpu,
    /// Its statistics.
    pub stats: StatsFd,
    /// The host CPU to pin the thread to, if any.
    pub host_cpu: Option<usize>,
    /// Set by the VMM when the run must stop.
    pub stop: Arc<AtomicBool>,
}

/// How a vCPU's run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    /// The guest wrote this value to the exit port.
    Exited(u32),
    /// KVM_EXIT_SHUTDOWN.
    TripleFault,
    /// Something the VMM does not serve (an exit, a KVM error), described.
    Unexpected(String),
    /// The stop flag was set; the thread left KVM_RUN.
    Stopped,
}

/// Why `run_loop` returned.
enum Leave {
    /// The guest marked the start of its measured part.
    Mark,
    /// The run is over.
    End(End),
}

/// What the thread brings back.
#[derive(Debug)]
pub struct VcpuOutcome {
    /// The vCPU.
    pub index: usize,
    /// How it ended.
    pub end: End,
    /// Where it was when it ended.
    pub rip: u64,
    /// Its privilege level then (CS RPL).
    pub ring: u8,
    /// Whether KVM had it halted.
    pub halted: bool,
    /// RFLAGS.IF.
    pub interrupts_enabled: bool,
    /// The host CPU it ran on, if pinned.
    pub host_cpu: Option<usize>,
    /// Its KVM counters over the run.
    pub kvm: Result<KvmStats, VmmError>,
    /// The thread's CPU time over the run (host and guest mode).
    pub cpu_time: Duration,
    /// Times the host scheduler took the CPU from the thread while it could still run
    /// (preempted: something else was runnable there), over the run.
    pub preempted: u64,
    /// Times the thread gave up the CPU itself (a halted vCPU going to sleep), over the run.
    pub slept: u64,
}

impl VcpuThread {
    /// Runs the vCPU on the calling thread until it ends.
    pub fn run(mut self) -> VcpuOutcome {
        let host_cpu = self.host_cpu.filter(|&cpu| pin(cpu));
        let (end, kvm, usage) = self.vcpu.armed(|vcpu| {
            let mut before = self.stats.read();
            let mut usage = ThreadUsage::now();
            let end = loop {
                match Self::run_loop(vcpu, &self.stop) {
                    Leave::Mark => {
                        before = self.stats.read();
                        usage = ThreadUsage::now();
                    }
                    Leave::End(end) => break end,
                }
            };
            let usage = ThreadUsage::now().since(&usage);
            let after = self.stats.read();
            (end, before.and_then(|before| Ok(after?.since(&before))), usage)
        });
        let (rip, interrupts_enabled) =
            self.vcpu.fd().get_regs().map_or((0, false), |r| (r.rip, r.rflags & 0x200 != 0));
        let ring = self.vcpu.fd().get_sregs().map_or(0, |s| (s.cs.selector & 3) as u8);
        let halted = self.vcpu.fd().get_mp_state().is_ok_and(|m| m.mp_state == KVM_MP_STATE_HALTED);
        VcpuOutcome {
            index: self.index,
            end,
            rip,
            ring,
            halted,
            interrupts_enabled,
            host_cpu,
            kvm,
            cpu_time: usage.cpu_time,
            preempted: usage.preempted,
            slept: usage.slept,
        }
    }

    fn run_loop(vcpu: &mut watchdog::Armed<'_>, stop: &AtomicBool) -> Leave {
        loop {
            // Clear first, then look at the flag: see the watchdog module.
            vcpu.clear_immediate_exit();
            if stop.load(Ordering::SeqCst) {
                return Leave::End(End::Stopped);
            }
            let exit = match vcpu.run() {
                Ok(exit) => exit,
                Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => continue,
                Err(e) => return Leave::End(End::Unexpected(format!("KVM_RUN failed: {e}"))),
            };
            return Leave::End(match exit {
                VcpuExit::IoOut(MARK_PORT, _) => return Leave::Mark,
                VcpuExit::IoOut(EXIT_PORT, data) => {
                    let mut status = [0u8; 4];
                    let n = data.len().min(4);
                    status[..n].copy_from_slice(&data[..n]);
                    End::Exited(u32::from_le_bytes(status))
                }
                VcpuExit::Intr => continue,
                VcpuExit::Shutdown => End::TripleFault,
                VcpuExit::IoOut(port, _) => {
                    End::Unexpected(format!("wrote to I/O port {port:#x}, which nothing serves"))
                }
                VcpuExit::IoIn(port, _) => End::Unexpected(format!("read I/O port {port:#x}, which nothing serves")),
                VcpuExit::MmioRead(addr, _) => End::Unexpected(format!("read unbacked memory at {addr:#x}")),
                VcpuExit::MmioWrite(addr, _) => End::Unexpected(format!("wrote unbacked memory at {addr:#x}")),
                VcpuExit::FailEntry(reason, cpu) => End::Unexpected(format!(
                    "could not be entered (KVM_EXIT_FAIL_ENTRY, reason {reason:#x}, host CPU {cpu})"
                )),
                VcpuExit::InternalError => {
                    let run = vcpu.kvm_run();
                    debug_assert_eq!(run.exit_reason, KVM_EXIT_INTERNAL_ERROR);
                    // SAFETY: the exit reason is KVM_EXIT_INTERNAL_ERROR, so `internal` is the
                    // union member KVM filled in.
                    let suberror = unsafe { run.__bindgen_anon_1.internal.suberror };
                    End::Unexpected(format!(
                        "stopped KVM (KVM_EXIT_INTERNAL_ERROR, suberror {suberror}{})",
                        if suberror == 1 { ": an instruction KVM could not emulate" } else { "" }
                    ))
                }
                other => End::Unexpected(format!("made an exit the VMM does not serve: {other:?}")),
            });
        }
    }
}
