//! A minimal VMM on the rust-vmm crates (kvm-ioctls, vm-memory, linux-loader) that runs
//! haltpoll's bare-metal guest on `/dev/kvm` and measures what idling costs: VM exits, IPIs,
//! host halt polls, CPU time.
//!
//! One module per object, each thin:
//! - [`system`]: `/dev/kvm` and its capabilities;
//! - [`vm`]: the VM (in-kernel irqchip, per-VM halt-polling window, memory, vCPU setup);
//! - [`memory`], [`loader`], [`boot`], [`cpuid`]: guest memory, the embedded guest image, long
//!   mode from the VMM, the CPUID the guest sees;
//! - [`vcpu`]: a vCPU on its own pinned host thread (pinned and measured with
//!   [`haltpoll_bench::host`], as the thread benchmarks' threads are); [`stats`]: KVM's binary
//!   statistics;
//! - [`watchdog`]: hang and overrun detection, and kicking a vCPU out of `KVM_RUN`;
//! - [`run()`](run::run) ties it together and returns a [`RunReport`]; [`run_until`]
//!   does the same and stops early when the caller says so (Ctrl-C).
//!
//! With the feature `testing`, `testing::kvm_or_skip` gates tests that run VMs (this crate's and
//! the command's); it is not part of the API.
//!
//! The VMM and the guest share one definition of their memory layout and structures:
//! [`haltpoll_abi`].
//!
//! ```no_run
//! use haltpoll_vmm::{IdlePolicy, RunOptions};
//! let report = haltpoll_vmm::run(&RunOptions { idle: IdlePolicy::Busy, ..RunOptions::default() })?;
//! println!("{} round trips, {:.0} ns each", report.round_trips(), report.round_trip_ns().unwrap());
//! for vcpu in &report.vcpus {
//!     println!("vCPU {}: {} halt exits", vcpu.index, vcpu.kvm.halt_exits());
//! }
//! # Ok::<(), haltpoll_vmm::VmmError>(())
//! ```

#![warn(missing_docs)]

// The VMM is KVM on x86_64 Linux; elsewhere this crate is empty.
cfg_if::cfg_if! {
    if #[cfg(all(target_os = "linux", target_arch = "x86_64"))] {
        pub mod boot;
        pub mod cpuid;
        pub mod error;
        pub mod loader;
        pub mod memory;
        pub mod report;
        pub mod run;
        pub mod stats;
        pub mod system;
        #[cfg(feature = "testing")]
        pub mod testing;
        pub mod vcpu;
        pub mod vm;
        pub mod watchdog;

        pub use error::{Failure, GuestError, GuestFailures, VmmError};
        pub use haltpoll_abi::{Counters, DriverLoad, DriverReport, IdlePolicy, PollControl, Sample, Workload};
        pub use report::{Pooled, RunReport, VcpuRun};
        pub use run::{RealtimeHint, RunOptions, run, run_until};
        pub use stats::{KvmStat, KvmStats};
    }
}

// The README's examples are compiled and run as doc tests, so they cannot go stale.
#[cfg(all(doctest, target_os = "linux", target_arch = "x86_64"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
