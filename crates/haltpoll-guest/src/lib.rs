//! The guest that haltpoll's VMM runs on KVM, and the contract between the two.
//!
//! - [`abi`]: the memory layout and the structures the VMM and the guest exchange (defined once,
//!   used by both).
//! - [`cpu`]: what the portable code needs from a vCPU (clock, relax, interrupt count, halt, IPI).
//! - [`driver`]: the cpuidle-haltpoll driver, built from the `haltpoll` core crate: load
//!   decision, host poll control, the governor's idle loop, the waker's side.
//! - [`idle`]: the idle policies: how a vCPU waits and how another wakes it.
//! - [`pingpong`]: the workload.
//!
//! The binary (`src/main.rs`, built for `x86_64-unknown-none` by haltpoll-vmm's build script)
//! boots each vCPU at ring 0, drops to ring 3 (this KVM backend emulates ring 0 and runs ring 3
//! natively) and runs the workload there, entering ring 0 only through `ud2` for privileged
//! services. Everything in this library is hardware-free and tested on the host.

#![cfg_attr(not(test), no_std)]
#![warn(missing_docs)]

pub mod abi;
pub mod cpu;
pub mod driver;
pub mod idle;
pub mod pingpong;
