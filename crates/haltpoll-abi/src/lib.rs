//! The contract between the VMM and the guest, defined once: where everything lives in guest
//! memory, what the VMM writes before the run ([`RunConfig`]) and what the guest writes back
//! ([`VcpuReport`], [`ExitRecord`], [`Sample`]).
//!
//! Guest memory is identity-mapped (virtual = physical), so every address here is both. All
//! structures are `#[repr(C)]` with explicit padding; with the `zerocopy` feature (the VMM's) they
//! derive zerocopy's traits, whose derive refuses a layout with hidden padding at compile time.
//!
//! Concepts the core crate owns are not declared again here: the governor's parameters travel as
//! the core's [`RawParams`] (its fixed layout of [`haltpoll::Params`]) and
//! [`RawPredictiveParams`], the governor's choice as the core's `GovernorKind`, and the driver's load
//! decision is the core's [`DriverLoad`], written as its `repr(u32)` value. Enums travel as
//! `u32` fields with a typed accessor (`from_raw`), because a value read from memory the other
//! side wrote must be checked before it becomes an enum.
//!
//! Features: `zerocopy` (the VMM's byte traits), `serde` (`Serialize` on the counters and the
//! driver report) and `clap` ([`IdlePolicy`] and [`PollControl`] as option values).
//!
//! ```
//! use haltpoll_abi::{layout, RunConfig, IdlePolicy, Workload};
//! let cfg = RunConfig::new(2, Workload::PingPong, IdlePolicy::Halt);
//! assert_eq!(cfg.idle_policy(), Some(IdlePolicy::Halt));
//! assert!(layout::report(1) > layout::report(0));
//! ```

// clap's derives expand to code that uses the std prelude, and clap needs std anyway; without
// that feature the crate is `no_std`.
#![cfg_attr(not(any(test, feature = "clap")), no_std)]
#![warn(missing_docs)]

use core::sync::atomic::AtomicU64;

pub use haltpoll::driver::DriverLoad;
pub use haltpoll::params::RawParams;
pub use haltpoll::predictive::RawPredictiveParams;
use haltpoll::{GovernorKind, GovernorParams, LATENCY_ANY, Params, PredictiveParams};

#[cfg(feature = "zerocopy")]
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// The most vCPUs a VM can have (the layout reserves room for this many).
pub const MAX_VCPUS: usize = 8;

/// [`RunConfig::magic`]: tells the guest the VMM wrote a configuration.
pub const CONFIG_MAGIC: u64 = u64::from_le_bytes(*b"HALTPOLL");

/// The I/O port a vCPU writes its [`ExitStatus`] to (32-bit `out`) when it stops for good; the
/// details are in its [`ExitRecord`]. 0xf4 is the port QEMU's isa-debug-exit uses.
pub const EXIT_PORT: u16 = 0xf4;

/// The I/O port a vCPU writes to (32-bit `out`, value 0) when its warm-up ends and the measured
/// part of the run begins: the VMM takes its "before" readings of that vCPU's KVM counters and
/// CPU time there, so the warm-up (boot included) stays out of the figures. The guest resets its
/// own counters at the same moment.
pub const MARK_PORT: u16 = 0xf5;

/// The GDT's selectors (the VMM builds the GDT; the guest loads these into segment registers).
pub mod selectors {
    /// Ring-0 64-bit code.
    pub const KERNEL_CODE: u16 = 0x08;
    /// Ring-0 data.
    pub const KERNEL_DATA: u16 = 0x10;
    /// Ring-3 64-bit code, with RPL 3.
    pub const USER_CODE: u16 = 0x18 | 3;
    /// Ring-3 data, with RPL 3.
    pub const USER_DATA: u16 = 0x20 | 3;
    /// Index in the GDT of the first TSS descriptor (each takes two 8-byte slots).
    pub const FIRST_TSS_SLOT: u16 = 5;

    /// vCPU `vcpu`'s TSS selector.
    pub const fn tss(vcpu: usize) -> u16 {
        (FIRST_TSS_SLOT + 2 * vcpu as u16) * 8
    }
}

/// Where things are in guest memory.
pub mod layout {
    use super::{ExitRecord, MAX_VCPUS, Sample, VcpuReport};

    /// Page tables (VMM-owned): PML4, PDPT, then four page directories identity-mapping the low
    /// 4 GiB with 2 MiB pages.
    pub const PAGE_TABLES: u64 = 0x1000;
    /// Size of the page-table area: 6 pages.
    pub const PAGE_TABLES_SIZE: u64 = 6 * 0x1000;
    /// The GDT (VMM-owned): null, ring-0 code/data, ring-3 code/data, then one 16-byte TSS
    /// descriptor per vCPU.
    pub const GDT: u64 = 0x7000;
    /// The TSS of each vCPU (VMM-owned), [`TSS_STRIDE`] bytes apart.
    pub const TSS: u64 = 0x8000;
    /// Distance between two vCPUs' TSSs.
    pub const TSS_STRIDE: u64 = 128;

    /// The [`RunConfig`](super::RunConfig), written by the VMM before the vCPUs start.
    pub const CONFIG: u64 = 0x10_0000;
    /// The [`VcpuReport`]s, one per vCPU, [`REPORT_STRIDE`] bytes apart.
    pub const REPORTS: u64 = 0x10_1000;
    /// Distance between two vCPUs' reports.
    pub const REPORT_STRIDE: u64 = 512;
    /// The [`ExitRecord`]s, one per vCPU, [`EXIT_STRIDE`] bytes apart.
    pub const EXITS: u64 = 0x10_3000;
    /// Distance between two vCPUs' exit records.
    pub const EXIT_STRIDE: u64 = 512;

    /// Ring-0 stacks, [`RING0_STACK_SIZE`] each: the VMM starts each vCPU on its own and points
    /// its TSS's RSP0 there.
    pub const RING0_STACKS: u64 = 0x20_0000;
    /// Size of one ring-0 stack.
    pub const RING0_STACK_SIZE: u64 = 0x4000;
    /// Ring-3 stacks, [`USER_STACK_SIZE`] each: the workload runs on them.
    pub const USER_STACKS: u64 = 0x30_0000;
    /// Size of one ring-3 stack.
    pub const USER_STACK_SIZE: u64 = 0x1_0000;

    /// The guest image is linked here (`link.ld` says the same; a test checks).
    pub const IMAGE: u64 = 0x40_0000;
    /// End of the room for the guest image.
    pub const IMAGE_END: u64 = 0x100_0000;

    /// Per-message [`Sample`]s, [`SAMPLES_PER_VCPU`] per vCPU.
    pub const SAMPLES: u64 = 0x100_0000;
    /// How many samples each vCPU can record.
    pub const SAMPLES_PER_VCPU: u64 = 1 << 16;
    const SAMPLE_BYTES: u64 = size_of::<Sample>() as u64;

    /// The think trace (VMM-written, read-only for the guest): one think time per measured
    /// message, TSC ticks as `u64`, [`RunConfig::think_trace_len`](super::RunConfig::think_trace_len) of them.
    pub const THINKS: u64 = SAMPLES + MAX_VCPUS as u64 * SAMPLES_PER_VCPU * SAMPLE_BYTES;
    /// The most think times the trace area holds.
    pub const THINKS_MAX: u64 = 1 << 18;

    /// Guest RAM: from 0 to the end of the think trace.
    pub const MEMORY_SIZE: u64 = THINKS + THINKS_MAX * 8;

    /// Where vCPU `vcpu`'s report is.
    pub const fn report(vcpu: usize) -> u64 {
        REPORTS + vcpu as u64 * REPORT_STRIDE
    }

    /// Where vCPU `vcpu`'s exit record is.
    pub const fn exit_record(vcpu: usize) -> u64 {
        EXITS + vcpu as u64 * EXIT_STRIDE
    }

    /// Where vCPU `vcpu`'s samples start.
    pub const fn samples(vcpu: usize) -> u64 {
        SAMPLES + vcpu as u64 * SAMPLES_PER_VCPU * SAMPLE_BYTES
    }

    /// Top of vCPU `vcpu`'s ring-0 stack (stacks grow down).
    pub const fn ring0_stack_top(vcpu: usize) -> u64 {
        RING0_STACKS + (vcpu as u64 + 1) * RING0_STACK_SIZE
    }

    /// Top of vCPU `vcpu`'s ring-3 stack.
    pub const fn user_stack_top(vcpu: usize) -> u64 {
        USER_STACKS + (vcpu as u64 + 1) * USER_STACK_SIZE
    }

    /// Where vCPU `vcpu`'s TSS is.
    pub const fn tss(vcpu: usize) -> u64 {
        TSS + vcpu as u64 * TSS_STRIDE
    }

    // The areas must not overlap; checked when this crate compiles.
    const _: () = {
        assert!(PAGE_TABLES + PAGE_TABLES_SIZE <= GDT);
        assert!(GDT + super::selectors::tss(MAX_VCPUS) as u64 <= TSS);
        assert!(tss(MAX_VCPUS) <= CONFIG);
        assert!(size_of::<super::RunConfig>() as u64 <= REPORTS - CONFIG);
        assert!(size_of::<VcpuReport>() as u64 <= REPORT_STRIDE);
        assert!(report(MAX_VCPUS) <= EXITS);
        assert!(size_of::<ExitRecord>() as u64 <= EXIT_STRIDE);
        assert!(exit_record(MAX_VCPUS) <= RING0_STACKS);
        assert!(ring0_stack_top(MAX_VCPUS - 1) <= USER_STACKS);
        assert!(user_stack_top(MAX_VCPUS - 1) <= IMAGE);
        assert!(IMAGE_END <= SAMPLES);
        assert!(THINKS.is_multiple_of(8));
        assert!(MEMORY_SIZE.is_multiple_of(2 << 20));
    };
}

/// What the guest runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Workload {
    /// Pairs of vCPUs (0 and 1, 2 and 3, ...) exchange a message back and forth.
    PingPong = 0,
    /// Test: vCPU 1 reads unmapped memory (0x4000_0000_0000) at ring 3, a page fault; the others
    /// wait.
    Fault = 1,
    /// Test: vCPU 0 spins at ring 3 forever, the others halt with interrupts off forever.
    Hang = 2,
    /// Test: vCPU 0 loads an empty IDT and raises an exception (a triple fault); the others wait.
    TripleFault = 3,
}

/// How a vCPU waits for a message. With feature `clap`, an option value: `busy`, `halt`,
/// `haltpoll`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[repr(u32)]
pub enum IdlePolicy {
    /// Spin on the mailbox at ring 3: no exit, no IPI (the physical limit).
    Busy = 0,
    /// Halt at once (a VM exit); the waker sends an IPI.
    Halt = 1,
    /// The cpuidle-haltpoll driver: the governor picks POLL (spin at ring 3 with POLLING set, so
    /// wakers skip the IPI) or HALT, and learns the poll window. If the driver refuses to load
    /// (see [`DriverLoad`]) the vCPU falls back to [`IdlePolicy::Halt`], as Linux falls back to
    /// its default idle.
    #[cfg_attr(
        feature = "clap",
        value(help = "The cpuidle-haltpoll driver: poll with POLLING set (no IPI needed), halt when the \
                      governor says so. Refuses to load without the REALTIME hint unless forced")
    )]
    Haltpoll = 2,
}

/// What the guest writes to `MSR_KVM_POLL_CONTROL` on each vCPU at start. With feature
/// `clap`, an option value: `leave`, `off`, `on`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[repr(u32)]
pub enum PollControl {
    /// Leave the MSR alone (host polling stays as the host configured it).
    Leave = 0,
    /// Write 0: ask the host not to halt-poll for this vCPU.
    #[cfg_attr(feature = "clap", value(name = "off"))]
    HostPollOff = 1,
    /// Write 1: host halt polling on (the reset value).
    #[cfg_attr(feature = "clap", value(name = "on"))]
    HostPollOn = 2,
}

/// How a vCPU stopped: the value it writes to [`EXIT_PORT`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum ExitStatus {
    /// The workload finished; the report is complete.
    Done = 1,
    /// A CPU exception: vector, error code, RIP and CR2 are in the exit record.
    Fault = 2,
    /// The guest's Rust code panicked: the message is in the exit record.
    Panic = 3,
    /// The run configuration made no sense to the guest (no magic, unknown enum value).
    BadConfig = 4,
}

haltpoll::repr_u32_enum!(Workload { PingPong, Fault, Hang, TripleFault });
haltpoll::repr_u32_enum!(IdlePolicy { Busy, Halt, Haltpoll });
haltpoll::repr_u32_enum!(PollControl { Leave, HostPollOff, HostPollOn });
haltpoll::repr_u32_enum!(Phase { Running, Idle, Polling, Halting });
haltpoll::repr_u32_enum!(ExitStatus { Done, Fault, Panic, BadConfig });

/// The run configuration, at [`layout::CONFIG`]. Written by the VMM, read by every vCPU.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "zerocopy", derive(FromBytes, IntoBytes, Immutable, KnownLayout))]
pub struct RunConfig {
    /// [`CONFIG_MAGIC`].
    pub magic: u64,
    /// Number of vCPUs.
    pub vcpus: u32,
    /// A [`Workload`].
    pub workload: u32,
    /// An [`IdlePolicy`].
    pub idle: u32,
    /// A [`PollControl`].
    pub poll_control: u32,
    /// Round trips each ping-pong pair makes.
    pub round_trips: u64,
    /// Think time: TSC ticks a vCPU spins before sending each message.
    pub think_tsc: u64,
    /// TSC frequency in kHz (the same on every vCPU).
    pub tsc_khz: u64,
    /// How many [`Sample`]s each vCPU records (at most [`layout::SAMPLES_PER_VCPU`]).
    pub sample_capacity: u64,
    /// Round trips each pair makes before the measured ones (not counted, not sampled); the
    /// vCPUs write [`MARK_PORT`] when they end.
    pub warmup_round_trips: u64,
    /// Think time of the warm-up round trips, TSC ticks.
    pub warmup_think_tsc: u64,
    /// The haltpoll governor's parameters ([`IdlePolicy::Haltpoll`]), in the core crate's
    /// fixed layout.
    pub governor: RawParams,
    /// Load the haltpoll driver even without KVM_HINTS_REALTIME (Linux's
    /// `cpuidle_haltpoll.force=1`): 1 to force, 0 not to.
    pub force: u32,
    /// Reserved, 0.
    pub reserved: u32,
    /// Each vCPU's latency requirement, ns: the longest exit latency it tolerates. 0 means poll
    /// only; [`LATENCY_ANY`] means no constraint.
    pub latency_req_ns: [u64; MAX_VCPUS],
    /// Which governor the haltpoll driver runs, a [`GovernorKind`]: Linux's (with
    /// [`RunConfig::governor`]) or the predictive one (with [`RunConfig::predictive`]); see
    /// [`RunConfig::governor_params`].
    pub governor_kind: u32,
    /// Reserved, 0.
    pub reserved2: u32,
    /// The predictive governor's parameters, in the core crate's fixed layout.
    pub predictive: RawPredictiveParams,
    /// Think times at [`layout::THINKS`] (at most [`layout::THINKS_MAX`]): when not 0, the
    /// measured message `i` of each pair is sent after `THINKS[i % think_trace_len]` ticks
    /// instead of [`RunConfig::think_tsc`].
    pub think_trace_len: u64,
}

impl RunConfig {
    /// A configuration with the magic set, no think time, no warm-up, no samples, TSC frequency
    /// unknown, the governor's default parameters, no latency constraint, not forced.
    pub const fn new(vcpus: u32, workload: Workload, idle: IdlePolicy) -> RunConfig {
        RunConfig {
            magic: CONFIG_MAGIC,
            vcpus,
            workload: workload as u32,
            idle: idle as u32,
            poll_control: PollControl::Leave as u32,
            round_trips: 0,
            think_tsc: 0,
            tsc_khz: 0,
            sample_capacity: 0,
            warmup_round_trips: 0,
            warmup_think_tsc: 0,
            governor: RawParams::new(&Params::DEFAULT),
            force: 0,
            reserved: 0,
            latency_req_ns: [LATENCY_ANY; MAX_VCPUS],
            governor_kind: GovernorKind::Linux as u32,
            reserved2: 0,
            predictive: RawPredictiveParams::new(&PredictiveParams::DEFAULT),
            think_trace_len: 0,
        }
    }

    /// Sets the governor and its parameters.
    pub fn with_governor(mut self, params: &GovernorParams) -> RunConfig {
        match params {
            GovernorParams::Linux(p) => self.governor = RawParams::new(p),
            GovernorParams::Predictive(p) => self.predictive = RawPredictiveParams::new(p),
        }
        self.governor_kind = params.kind() as u32;
        self
    }

    /// The governor the driver runs with its parameters, validated; `None` if a raw value names
    /// nothing, `Some(Err(()))` if the parameters are out of range (the driver then refuses to
    /// load).
    pub fn governor_params(&self) -> Option<Result<GovernorParams, ()>> {
        Some(match GovernorKind::from_raw(self.governor_kind)? {
            GovernorKind::Linux => self.governor.params()?.validate().map(GovernorParams::from).map_err(drop),
            GovernorKind::Predictive => self.predictive.params()?.validate().map(GovernorParams::from).map_err(drop),
        })
    }

    /// The workload, if the raw value names one.
    pub const fn workload(&self) -> Option<Workload> {
        Workload::from_raw(self.workload)
    }

    /// The idle policy, if the raw value names one.
    pub const fn idle_policy(&self) -> Option<IdlePolicy> {
        IdlePolicy::from_raw(self.idle)
    }

    /// The poll-control request, if the raw value names one.
    pub const fn poll_control(&self) -> Option<PollControl> {
        PollControl::from_raw(self.poll_control)
    }
}

/// Per-vCPU event counters. Times are in TSC ticks (see [`RunConfig::tsc_khz`]). Fields an idle
/// policy has no use for stay 0.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "zerocopy", derive(FromBytes, IntoBytes, Immutable, KnownLayout))]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Counters {
    /// Messages this vCPU sent.
    pub messages_sent: u64,
    /// Messages this vCPU received.
    pub messages_received: u64,
    /// Round trips completed (counted by the vCPU that starts each one).
    pub round_trips: u64,
    /// Ticks from the first message to the last, on the vCPU that starts the round trips.
    pub workload_tsc: u64,
    /// Ticks spent waiting for messages (idle), whatever the policy.
    pub idle_tsc: u64,
    /// HLT instructions executed (each a VM exit).
    pub halts: u64,
    /// Ticks spent in HLT (from the halt request to the return).
    pub halt_tsc: u64,
    /// Interrupts taken (the IPI or the timer handler ran).
    pub irqs: u64,
    /// IPIs this vCPU sent to wake another.
    pub ipis_sent: u64,
    /// Wakeups that needed no IPI because the target was polling.
    pub ipis_skipped: u64,
    /// Polls ended by a wakeup.
    pub poll_hits: u64,
    /// Polls ended by the window running out.
    pub poll_timeouts: u64,
    /// Ticks spent polling.
    pub poll_tsc: u64,
    /// Times the poll window grew.
    pub grows: u64,
    /// Times the poll window shrank (a window already at 0 that stays 0 is not counted).
    pub shrinks: u64,
    /// HALT states entered that did not halt: a wakeup came between the governor's choice and
    /// the HLT (the flag re-check or the interrupt count saw it).
    pub halts_aborted: u64,
    /// IPIs this vCPU sent to a vCPU that was running its workload ([`Phase::Running`]) when
    /// the waker found its POLLING flag clear.
    pub ipis_to_running: u64,
    /// ... to a vCPU in its idle loop between states ([`Phase::Idle`]).
    pub ipis_to_idle: u64,
    /// ... to a vCPU in its poll loop ([`Phase::Polling`]; its flag lagged its phase).
    pub ipis_to_polling: u64,
    /// ... to a vCPU on its way into HLT, halted, or on its way back ([`Phase::Halting`]).
    pub ipis_to_halting: u64,
    /// Halts with a timer set to poll from just before a predicted wakeup (the predictive
    /// governor's `TimerThenPoll`).
    pub timers_armed: u64,
    /// Of those, halts the timer ended (no wakeup yet): the vCPU then polled.
    pub timer_fires: u64,
}

/// What the haltpoll driver found and did on one vCPU, at [`VcpuReport::driver`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "zerocopy", derive(FromBytes, IntoBytes, Immutable, KnownLayout))]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct DriverReport {
    /// A [`DriverLoad`].
    pub load: u32,
    /// The [`PollControl`] the driver wrote to `MSR_KVM_POLL_CONTROL` ([`PollControl::Leave`]:
    /// it wrote nothing).
    pub poll_control: u32,
    /// 1 if the host has no KVM_FEATURE_POLL_CONTROL, so the driver could not switch host
    /// polling off (Linux logs that once and carries on; so does this driver).
    pub poll_control_missing: u32,
    /// KVM's feature bits (CPUID 0x40000001 EAX) as the driver read them.
    pub kvm_features: u32,
    /// KVM's hint bits (CPUID 0x40000001 EDX).
    pub kvm_hints: u32,
    /// The governor the driver ran, a [`GovernorKind`] as `repr(u32)`.
    pub governor_kind: u32,
    /// The latency requirement the vCPU ran with, ns.
    pub latency_req_ns: u64,
    /// The poll window at the end of the run, ns (`poll_limit_ns`; the predictive governor's
    /// next planned window).
    pub poll_limit_ns: u64,
    /// What the driver learnt its halts and its timer's wake-ups cost, at the end of the run.
    pub costs: WakeCosts,
}

/// What the haltpoll driver learnt, as it ran, a halt and a timer's wake-up cost on its vCPU, ns
/// (moving quantiles; 0: never measured). The governor is told `halt_cost_ns`, and the timer is
/// aimed `timer_spread_ns` earlier than the governor asks, so that it fires before the wakeup
/// it is meant to catch more often than not.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "zerocopy", derive(FromBytes, IntoBytes, Immutable, KnownLayout))]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct WakeCosts {
    /// What one halt costs in all: `halt_entry_ns + ipi_send_ns + ipi_wake_ns`.
    pub halt_cost_ns: u64,
    /// The way into HLT and back without sleeping (the ring-0 service's round trip when an
    /// interrupt is already in), measured at load.
    pub halt_entry_ns: u64,
    /// The waker's side: its IPI's send (the ICR write).
    pub ipi_send_ns: u64,
    /// From the waker's stamp, just before its IPI, to the woken vCPU running again: the lower
    /// quartile (a wake-up late because the host ran something else costs the host no more).
    pub ipi_wake_ns: u64,
    /// From the timer's due time to the vCPU running again.
    pub timer_wake_ns: u64,
    /// How far a timer's wake-up strays from `timer_wake_ns` (median absolute deviation).
    pub timer_spread_ns: u64,
    /// Samples behind `ipi_wake_ns` and `timer_wake_ns`.
    pub ipi_wakes: u64,
    /// See `ipi_wakes`.
    pub timer_wakes: u64,
}

impl DriverReport {
    /// The load decision, if the raw value names one.
    pub const fn load(&self) -> Option<DriverLoad> {
        DriverLoad::from_raw(self.load)
    }

    /// What the driver wrote to `MSR_KVM_POLL_CONTROL`, if the raw value names it.
    pub const fn poll_control(&self) -> Option<PollControl> {
        PollControl::from_raw(self.poll_control)
    }
}

/// What a vCPU reports, at [`layout::report`].
#[repr(C)]
#[derive(Debug, Default)]
#[cfg_attr(feature = "zerocopy", derive(FromBytes, IntoBytes, KnownLayout))]
pub struct VcpuReport {
    /// Messages received so far, updated as they arrive: the VMM's watchdog reads it while the
    /// guest runs to tell a hung vCPU from a slow one.
    pub progress: AtomicU64,
    /// How many [`Sample`]s the vCPU recorded.
    pub samples: u64,
    /// Final counters, written once the workload ends.
    pub counters: Counters,
    /// The haltpoll driver's decisions.
    pub driver: DriverReport,
}

/// Where a vCPU is in its idle path: published by the haltpoll driver, read by a waker that
/// has to send an IPI, so the report can say where the targets of the IPIs were.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Phase {
    /// Outside `wait`: running the workload.
    Running = 0,
    /// In the idle loop, between states (choosing, reflecting, checking for work).
    Idle = 1,
    /// In the poll loop.
    Polling = 2,
    /// POLLING cleared on the way into HLT, halted, or on the way back.
    Halting = 3,
}

/// How a vCPU stopped, at [`layout::exit_record`]. Written just before the exit port.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "zerocopy", derive(FromBytes, IntoBytes, Immutable, KnownLayout))]
pub struct ExitRecord {
    /// An [`ExitStatus`].
    pub status: u32,
    /// The exception vector ([`ExitStatus::Fault`]).
    pub vector: u32,
    /// The exception's error code, 0 if it has none.
    pub error_code: u64,
    /// RIP of the faulting instruction.
    pub rip: u64,
    /// CS at the fault (its low two bits are the ring).
    pub cs: u64,
    /// RFLAGS at the fault.
    pub rflags: u64,
    /// RSP at the fault.
    pub rsp: u64,
    /// CR2: the address of a page fault.
    pub cr2: u64,
    /// Bytes used in `message`.
    pub message_len: u64,
    /// A panic message (UTF-8, truncated).
    pub message: [u8; 192],
}

impl ExitRecord {
    /// A record with only the status set.
    pub const fn new(status: ExitStatus) -> ExitRecord {
        ExitRecord {
            status: status as u32,
            vector: 0,
            error_code: 0,
            rip: 0,
            cs: 0,
            rflags: 0,
            rsp: 0,
            cr2: 0,
            message_len: 0,
            message: [0; 192],
        }
    }

    /// The panic message, as far as it is valid UTF-8.
    pub fn message(&self) -> &str {
        let bytes = &self.message[..(self.message_len as usize).min(self.message.len())];
        match core::str::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => core::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or_default(),
        }
    }
}

/// One received message, at [`layout::samples`]: TSC readings from which the VMM derives the
/// one-way wake latency (`seen - stamp`) and the idle period (`stamp - enter`, the time the
/// receiver had nothing to do before the wakeup was sent).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "zerocopy", derive(FromBytes, IntoBytes, Immutable, KnownLayout))]
pub struct Sample {
    /// The receiver started waiting.
    pub enter_tsc: u64,
    /// The sender stamped the message, just before sending it.
    pub stamp_tsc: u64,
    /// The receiver saw the message.
    pub seen_tsc: u64,
    /// The think time the sender was told to spin before this message, ticks (the constant one
    /// or the think trace's).
    pub think_tsc: u64,
}

impl Sample {
    /// One-way wake latency in ticks: from the send to the receiver seeing the message.
    pub const fn latency_tsc(&self) -> u64 {
        self.seen_tsc.saturating_sub(self.stamp_tsc)
    }

    /// The idle period in ticks: from the receiver starting to wait until the wakeup was sent
    /// (0 if the message was already there).
    pub const fn idle_tsc(&self) -> u64 {
        self.stamp_tsc.saturating_sub(self.enter_tsc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_round_trip_through_raw() {
        for &w in Workload::ALL {
            assert_eq!(Workload::from_raw(w as u32), Some(w));
        }
        for &p in IdlePolicy::ALL {
            assert_eq!(IdlePolicy::from_raw(p as u32), Some(p));
        }
        for &p in PollControl::ALL {
            assert_eq!(PollControl::from_raw(p as u32), Some(p));
        }
        for &p in Phase::ALL {
            assert_eq!(Phase::from_raw(p as u32), Some(p));
        }
        for &e in ExitStatus::ALL {
            assert_eq!(ExitStatus::from_raw(e as u32), Some(e));
        }
        assert_eq!(IdlePolicy::from_raw(99), None);
        assert_eq!(ExitStatus::from_raw(0), None, "0 is not a valid exit: an unwritten record");
    }

    #[test]
    fn exit_message_is_cut_at_invalid_utf8() {
        let mut r = ExitRecord::new(ExitStatus::Panic);
        r.message[..5].copy_from_slice(b"ab\xffcd");
        r.message_len = 5;
        assert_eq!(r.message(), "ab");
        r.message_len = 1000;
        r.message[2] = b'c';
        assert_eq!(&r.message()[..5], "abccd");
    }

    #[test]
    fn sample_arithmetic_saturates() {
        let s = Sample { enter_tsc: 100, stamp_tsc: 50, seen_tsc: 40, think_tsc: 0 };
        assert_eq!(s.idle_tsc(), 0);
        assert_eq!(s.latency_tsc(), 0);
        let s = Sample { enter_tsc: 100, stamp_tsc: 150, seen_tsc: 400, think_tsc: 0 };
        assert_eq!((s.idle_tsc(), s.latency_tsc()), (50, 250));
    }
}

// The README's examples are compiled and run as doc tests, so they cannot go stale.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
