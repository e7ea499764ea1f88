//! The guest image: boots every vCPU (see `x86::boot`), then runs the workload the VMM put in
//! the run configuration at ring 3 and reports back through guest memory and the exit port.

#![no_std]
#![no_main]

mod x86;

use core::fmt::{self, Write};
use core::ptr::{read_volatile, write_volatile};

use haltpoll::driver::CpuidRegs;
use haltpoll_abi::{
    CONFIG_MAGIC, DriverReport, ExitRecord, ExitStatus, IdlePolicy, MAX_VCPUS, PollControl, RunConfig, Sample,
    VcpuReport, Workload, layout,
};
use haltpoll_guest::cpu::Cpu;
use haltpoll_guest::driver::{DriverOptions, Haltpoll, VcpuFlags};
use haltpoll_guest::idle::Idle;
use haltpoll_guest::pingpong::{Mailbox, PingPong, Record};

use x86::{apic, percpu, services};

/// An address the fault test reads: canonical, but no page maps it.
const UNMAPPED: u64 = 0x4000_0000_0000;

/// The ping-pong inboxes, shared by all vCPUs.
static MAILBOXES: [Mailbox; MAX_VCPUS] = [const { Mailbox::new() }; MAX_VCPUS];

/// The haltpoll driver's wake flags, one per vCPU, shared by all.
static WAKE_FLAGS: [VcpuFlags; MAX_VCPUS] = [const { VcpuFlags::new() }; MAX_VCPUS];

/// This vCPU, at ring 3.
struct Vcpu {
    index: usize,
    ipi_dest: Option<u8>,
}

impl Cpu for Vcpu {
    fn index(&self) -> usize {
        self.index
    }

    fn rdtsc(&self) -> u64 {
        // SAFETY: RDTSC is allowed at ring 3 (the VMM leaves CR4.TSD clear) and has no side effect.
        unsafe { core::arch::x86_64::_rdtsc() }
    }

    fn relax(&self) {
        core::hint::spin_loop();
    }

    fn irq_count(&self) -> u64 {
        percpu::irq_count()
    }

    fn halt_unless_irq_since(&mut self, irq_count: u64) -> bool {
        services::halt_unless_irq_since(irq_count)
    }

    fn send_ipi(&mut self, target: usize) {
        apic::send_ipi(target as u8, &mut self.ipi_dest);
    }

    fn arm_timer(&mut self, after_ns: u64) {
        apic::arm_timer(after_ns);
    }

    fn cancel_timer(&mut self) {
        apic::cancel_timer();
    }

    fn timer_count(&self) -> u64 {
        percpu::timer_count()
    }

    fn cpuid(&self, leaf: u32) -> CpuidRegs {
        // At ring 0: a ring-3 CPUID on this backend shows the outer machine, not this VM.
        services::cpuid(leaf)
    }

    fn write_poll_control(&mut self, host_polling: bool) {
        services::write_poll_control(host_polling);
    }

    fn begin_measurement(&mut self) {
        services::mark();
    }
}

/// The idle path for `policy` on this vCPU: for haltpoll, the driver loads (or refuses, and
/// the vCPU halts at once as Linux's default idle does); `driver` records what happened.
fn idle_path(cpu: &mut Vcpu, config: &RunConfig, policy: IdlePolicy, driver: &mut DriverReport) -> Idle<'static> {
    match policy {
        IdlePolicy::Busy => Idle::busy(),
        IdlePolicy::Halt => Idle::halt(),
        IdlePolicy::Haltpoll => {
            let Some(governor) = config.governor_params() else {
                exit(ExitRecord::new(ExitStatus::BadConfig));
            };
            let options = DriverOptions {
                governor: governor.ok(),
                latency_req: config.latency_req_ns[cpu.index],
                force: config.force != 0,
                tsc_khz: config.tsc_khz,
            };
            match Haltpoll::load(cpu, &options, driver) {
                Some(haltpoll) => Idle::haltpoll(haltpoll, &WAKE_FLAGS[..config.vcpus as usize], cpu.index),
                None => Idle::halt(),
            }
        }
    }
}

/// Writes this vCPU's exit record and stops it.
fn exit(record: ExitRecord) -> ! {
    // SAFETY: the layout reserves this vCPU's exit record (`percpu::index` is below MAX_VCPUS);
    // nothing else in the guest refers to it.
    unsafe { write_volatile(layout::exit_record(percpu::index()) as *mut ExitRecord, record) };
    services::exit(ExitStatus::from_raw(record.status).unwrap_or(ExitStatus::Panic))
}

/// The run configuration the VMM wrote, checked for vCPU `index`, with its workload, idle
/// policy, poll control and think trace; exits with [`ExitStatus::BadConfig`] if it does not
/// hold together.
fn checked_config(index: usize) -> (RunConfig, Workload, IdlePolicy, PollControl, &'static [u64]) {
    // SAFETY: the VMM wrote the configuration before starting any vCPU and never changes it.
    let config = unsafe { read_volatile(layout::CONFIG as *const RunConfig) };
    let (Some(workload), Some(policy), Some(poll_control)) =
        (config.workload(), config.idle_policy(), config.poll_control())
    else {
        exit(ExitRecord::new(ExitStatus::BadConfig));
    };
    if config.magic != CONFIG_MAGIC
        || config.vcpus as usize > MAX_VCPUS
        || index >= config.vcpus as usize
        || config.think_trace_len > layout::THINKS_MAX
    {
        exit(ExitRecord::new(ExitStatus::BadConfig));
    }
    // SAFETY: the layout reserves THINKS_MAX think times at THINKS, in RAM; the VMM wrote the
    // first `think_trace_len` (checked above to fit) before starting any vCPU and never changes
    // them, and nothing in the guest writes there.
    let think_trace =
        unsafe { core::slice::from_raw_parts(layout::THINKS as *const u64, config.think_trace_len as usize) };
    (config, workload, policy, poll_control, think_trace)
}

/// Ring 3, on every vCPU: the guest program.
///
/// # Safety
/// Entered once per vCPU (by `x86::boot`), with `vcpu` its index: it takes the only references
/// to this vCPU's report and samples.
unsafe extern "C" fn user_main(vcpu: u64) -> ! {
    let index = vcpu as usize;
    let (config, workload, policy, poll_control, think_trace) = checked_config(index);
    let vcpus = config.vcpus as usize;
    match poll_control {
        PollControl::Leave => {}
        PollControl::HostPollOff => services::write_poll_control(false),
        PollControl::HostPollOn => services::write_poll_control(true),
    }

    let mut cpu = Vcpu { index, ipi_dest: None };
    // SAFETY: the layout reserves one report per vCPU; this is the only reference to this one
    // in the guest (`user_main` runs once per vCPU; the VMM reads it from outside, only
    // `progress` while the guest runs).
    let report = unsafe { &mut *(layout::report(index) as *mut VcpuReport) };
    let mut driver = DriverReport::default();
    let mut idle = idle_path(&mut cpu, &config, policy, &mut driver);
    let capacity = config.sample_capacity.min(layout::SAMPLES_PER_VCPU) as usize;
    // SAFETY: the layout reserves SAMPLES_PER_VCPU samples per vCPU, in RAM, for this vCPU only.
    let samples = unsafe { core::slice::from_raw_parts_mut(layout::samples(index) as *mut Sample, capacity) };
    let mut counters = report.counters;
    let never = || false;

    match workload {
        Workload::PingPong => {
            let pingpong = PingPong {
                round_trips: config.round_trips,
                think_tsc: config.think_tsc,
                warmup_round_trips: config.warmup_round_trips,
                warmup_think_tsc: config.warmup_think_tsc,
                think_trace,
                mailboxes: &MAILBOXES[..vcpus],
            };
            let mut record =
                Record { counters: &mut counters, progress: &report.progress, samples, samples_recorded: 0 };
            pingpong.run(&mut cpu, &mut idle, &mut record);
            report.samples = record.samples_recorded;
        }
        Workload::Fault if index == 1 => {
            // SAFETY: the read is meant to fault and never completes: no page maps this canonical
            // address (the page tables cover the low 4 GiB), so the CPU raises #PF, whose handler
            // reports it and stops this vCPU. No value is ever produced.
            let value = unsafe { read_volatile(UNMAPPED as *const u64) };
            panic!("read unmapped memory and got {value:#x}");
        }
        Workload::Hang if index == 0 => loop {
            cpu.relax();
        },
        Workload::Hang => services::halt_forever(),
        Workload::TripleFault if index == 0 => services::triple_fault(),
        Workload::Fault | Workload::TripleFault => idle.wait(&mut cpu, &mut counters, never),
    }
    driver.poll_limit_ns = idle.poll_limit_ns().unwrap_or(0);
    driver.costs = idle.wake_costs().unwrap_or_default();
    report.driver = driver;
    report.counters = counters;
    exit(ExitRecord::new(ExitStatus::Done))
}

/// A `fmt::Write` into a fixed buffer that drops what does not fit.
struct Truncating<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl Write for Truncating<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for ch in s.chars() {
            let mut utf8 = [0; 4];
            let bytes = ch.encode_utf8(&mut utf8).as_bytes();
            if self.len + bytes.len() > self.buf.len() {
                break;
            }
            self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
            self.len += bytes.len();
        }
        Ok(())
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let mut record = ExitRecord::new(ExitStatus::Panic);
    let mut out = Truncating { buf: &mut record.message, len: 0 };
    let _ = write!(out, "{info}");
    record.message_len = out.len as u64;
    exit(record)
}
