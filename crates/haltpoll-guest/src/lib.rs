//! The guest that haltpoll's VMM runs on KVM. The contract between the two (memory layout, run
//! configuration, reports) is the `haltpoll-abi` crate, which both depend on.
//!
//! - [`cpu`]: what the portable code needs from a vCPU (clock, relax, interrupt count, halt, IPI).
//! - [`driver`]: the cpuidle-haltpoll driver, built from the `haltpoll` core crate: load
//!   decision, host poll control, the governor's idle loop, the waker's side.
//! - [`idle`]: the idle policies: how a vCPU waits and how another wakes it.
//! - [`pingpong`]: the workload.
//! - [`wake_cost`]: what a halt and a timer's wake-up cost, learnt as the driver runs.
//!
//! The binary (`src/main.rs`, built for `x86_64-unknown-none` by haltpoll-vmm's build script)
//! boots each vCPU at ring 0, drops to ring 3 (this KVM backend emulates ring 0 and runs ring 3
//! natively) and runs the workload there, entering ring 0 only through `ud2` for privileged
//! services. Everything in this library is hardware-free and tested on the host.

#![cfg_attr(not(test), no_std)]
#![warn(missing_docs)]

pub mod cpu;
pub mod driver;
pub mod idle;
pub mod pingpong;
pub mod wake_cost;

#[cfg(test)]
mod tests {
    /// The image's link address is in two places, the linker script and the ABI's layout: the
    /// VMM loads the image at the ABI's address, so they must agree.
    #[test]
    fn link_script_agrees_with_layout() {
        let script = include_str!("../link.ld");
        let line = script.lines().find(|l| l.trim_start().starts_with("IMAGE_BASE")).expect("IMAGE_BASE in link.ld");
        let value = line.split('=').nth(1).unwrap().trim().trim_end_matches(';').trim();
        let base = u64::from_str_radix(value.trim_start_matches("0x"), 16).unwrap();
        assert_eq!(base, haltpoll_abi::layout::IMAGE);
    }
}

// The README's examples are compiled and run as doc tests, so they cannot go stale.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
