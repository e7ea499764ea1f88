//! x86_64: `pause` between looks at the flags word, and the TSC as the clock.
//!
//! x86 has no wait a guest kernel can count on (`MONITOR`/`MWAIT` exit to the host on KVM, and
//! WAITPKG's `UMWAIT` is rarely passed through), so the wait is the relax hint and the clock is
//! read once per [`POLL_RELAX_COUNT`] of them, as Linux's poll state does.
//!
//! ```
//! use haltpoll::platform::x86_64::Pause;
//! use haltpoll::platform::{Counter, Poller};
//! use haltpoll::poll::poll;
//! use haltpoll::wake::WakeFlags;
//!
//! // The TSC's frequency is the kernel's to know: CPUID leaf 0x15, KVM's pvclock or a
//! // calibration against another timer. A wrong one only scales the windows.
//! let tsc = Counter::new(2_000_000_000);
//! let flags = WakeFlags::new();
//! let miss = poll(&mut Poller::new(&flags, tsc, Pause), 20_000);
//! assert!(miss.timed_out);
//! let _ = flags.wake(); // another CPU's wakeup
//! let hit = poll(&mut Poller::new(&flags, tsc, Pause), 20_000);
//! assert!(!hit.timed_out);
//! ```

use core::arch::asm;
use core::sync::atomic::AtomicU32;

use super::Cpu;
use crate::poll::POLL_RELAX_COUNT;

/// Reads the time-stamp counter (`rdtsc`).
pub fn rdtsc() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: `rdtsc` writes EDX:EAX (both declared as outputs) and nothing else: no memory,
    // no stack, no flags. Where the kernel has set CR4.TSD it raises #GP outside ring 0, a
    // fault the kernel handles, not undefined behaviour here.
    unsafe { asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags)) };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// The x86_64 [`Cpu`]: `pause` (what `core::hint::spin_loop` emits) for each wait, the TSC
/// for the clock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pause;

impl Cpu for Pause {
    fn ticks(&mut self) -> u64 {
        rdtsc()
    }

    fn relax(&mut self) {
        core::hint::spin_loop();
    }

    fn wait_for_bits(&mut self, _word: &AtomicU32, _bits: u32, _deadline_ticks: u64) {
        // The loop looks at the word itself between waits.
        core::hint::spin_loop();
    }

    fn waits_per_clock_read(&self) -> u32 {
        POLL_RELAX_COUNT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tsc_moves_forward() {
        let a = rdtsc();
        let mut b = rdtsc();
        for _ in 0..1_000 {
            b = rdtsc();
        }
        assert!(b > a, "{a} then {b}");
    }
}
