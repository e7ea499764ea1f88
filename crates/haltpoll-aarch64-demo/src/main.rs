//! A 2-CPU bare-metal aarch64 program for QEMU's `virt` machine that runs the haltpoll driver's
//! two paths, poll (`LDXR` + `WFE` on the flags word) and halt (`WFI`, woken by a GIC
//! software-generated interrupt), as two CPUs pass messages back and forth, and checks what
//! happened by its counters: every message delivered, no IPI sent to a CPU that polls, one sent
//! to every CPU that halts, every IPI sent taken. Times under emulation mean nothing, so it
//! asserts counts, never durations.
//!
//! Build and run (what `.ci/arm` does):
//!
//! ```sh
//! cargo build -p haltpoll-aarch64-demo --target aarch64-unknown-none --release
//! qemu-system-aarch64 -M virt,gic-version=2 -cpu cortex-a57 -smp 2 -m 64M -nographic \
//!     -semihosting -kernel target/aarch64-unknown-none/release/haltpoll-aarch64-demo
//! ```
//!
//! It prints its counters on the UART and exits QEMU (semihosting) with status 0 when every
//! check holds, 1 otherwise.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod boot;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod gic;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod pingpong;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod uart;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "haltpoll-aarch64-demo is a bare-metal program: build it for aarch64-unknown-none and run it \
         under qemu-system-aarch64 (see .ci/arm)"
    );
    std::process::exit(2);
}
