//! aarch64: a wait that sleeps until the flags word is written, and the generic timer's virtual
//! counter as the clock.
//!
//! The wait arms the exclusive monitor on the flags word with `LDXR`, and if NEED_RESCHED is
//! still clear, executes `WFE`. Another CPU's write to the word clears the monitor, which sends
//! this CPU an event and ends the `WFE`; so do an interrupt, an `SEV` and, every period of it,
//! the generic timer's event stream. Without the event stream a `WFE` may sleep until the next
//! interrupt, far past the poll's window; `WFET` (FEAT_WFxT) sleeps at most until the deadline
//! it is given. So [`Wfe`] waits with `WFET` where the CPU has it, with `WFE` where the event
//! stream bounds it, and spins otherwise. This is Linux's `smp_cond_load_relaxed_timeout` on
//! arm64, which its arm64 cpuidle-haltpoll series polls with.
//!
//! The event stream: Linux turns it on (10 kHz, `CNTKCTL_EL1.EVNTEN`) and tells user space with
//! `HWCAP_EVTSTRM`; a kernel of its own sets `CNTKCTL_EL1.EVNTEN` and `EVNTI` (an event every
//! `2^(EVNTI+1)` ticks of the counter).
//!
//! ```
//! use haltpoll::platform::aarch64::{counter, Wfe, Wfxt};
//! use haltpoll::platform::Poller;
//! use haltpoll::poll::poll;
//! use haltpoll::wake::WakeFlags;
//!
//! // A kernel knows whether it enabled the event stream; Linux user space reads HWCAP_EVTSTRM.
//! let cpu = Wfe::new(true, Wfxt::detect());
//! let flags = WakeFlags::new();
//! let miss = poll(&mut Poller::new(&flags, counter(), cpu), 20_000);
//! assert!(miss.timed_out);
//! let _ = flags.wake(); // another CPU's wakeup
//! let hit = poll(&mut Poller::new(&flags, counter(), cpu), 20_000);
//! assert!(!hit.timed_out);
//! ```

use core::arch::asm;
use core::sync::atomic::AtomicU32;

use super::{Counter, Cpu};
use crate::driver::arm64::SmcccRegs;
use crate::poll::POLL_RELAX_COUNT;

/// Reads the virtual count, `CNTVCT_EL0`, after an `ISB` so that the read is not taken early.
pub fn cntvct() -> u64 {
    let ticks: u64;
    // SAFETY: `isb` and `mrs` of CNTVCT_EL0 touch no memory and write only the output
    // register. At EL0 the read needs CNTKCTL_EL1.EL0VCTEN, which Linux sets; without it the read
    // traps to the kernel, a fault it handles, not undefined behaviour.
    unsafe { asm!("isb", "mrs {}, cntvct_el0", out(reg) ticks, options(nomem, nostack, preserves_flags)) };
    ticks
}

/// Reads the counter's frequency, `CNTFRQ_EL0`, Hz (what firmware programmed).
pub fn cntfrq() -> u64 {
    let hz: u64;
    // SAFETY: an `mrs` of CNTFRQ_EL0, readable at every exception level: no memory, one output.
    unsafe { asm!("mrs {}, cntfrq_el0", out(reg) hz, options(nomem, nostack, preserves_flags)) };
    hz
}

/// The virtual counter at its frequency: the clock of a [`Poller`](super::Poller) on this CPU.
pub fn counter() -> Counter {
    Counter::new(cntfrq())
}

/// Reads `ID_AA64ISAR2_EL1` (by its encoding, which every assembler knows). Linux emulates the
/// read for user space, with the fields it exposes (WFxT among them since 5.19).
pub fn id_aa64isar2() -> u64 {
    let value: u64;
    // SAFETY: an `mrs` of an ID register: no memory, one output. At EL0 it traps to the kernel,
    // which emulates it (Linux) or faults, never undefined behaviour.
    unsafe { asm!("mrs {}, s3_0_c0_c6_2", out(reg) value, options(nomem, nostack, preserves_flags)) };
    value
}

/// Proof that this CPU has FEAT_WFxT (`WFET`, `WFIT`), so [`wfet_for_bits`] can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wfxt(());

impl Wfxt {
    /// From the value of `ID_AA64ISAR2_EL1`: its WFxT field (bits 3:0) is 0b0010 when both
    /// instructions are there.
    ///
    /// ```
    /// use haltpoll::platform::aarch64::Wfxt;
    /// assert!(Wfxt::from_id_aa64isar2(0x0000_0000_0000_0002).is_some());
    /// assert!(Wfxt::from_id_aa64isar2(0x0000_0000_0000_1100).is_none());
    /// ```
    pub const fn from_id_aa64isar2(value: u64) -> Option<Wfxt> {
        if value & 0xf >= 0b0010 { Some(Wfxt(())) } else { None }
    }

    /// Whether this CPU has it, from [`id_aa64isar2`].
    pub fn detect() -> Option<Wfxt> {
        Wfxt::from_id_aa64isar2(id_aa64isar2())
    }
}

/// Arms the exclusive monitor on `word` and, if `word & bits` is clear, executes `$wait` (`wfe`,
/// or `WFET` encoded, with its operand register): the wait shared by [`wfe_for_bits`] and
/// [`wfet_for_bits`].
macro_rules! armed_wait {
    ($word:expr, $bits:expr, $wait:literal $(, $reg:tt = $value:expr)?) => {
        // SAFETY: `word` is a live, aligned AtomicU32 (a reference), which `ldxr` reads with one
        // single-copy-atomic 32-bit load, as a relaxed atomic load would; nothing is written (no
        // STXR follows; any later one in other code pairs with its own LDXR). `sevl; wfe` only
        // clears a stale event so that the wait that follows waits for a new one; `wfe` and
        // `WFET` read at most their declared operand and have no memory effect. The flags
        // register is clobbered, which the options allow (no preserves_flags).
        unsafe {
            asm!(
                "sevl",
                "wfe",
                "ldxr {v:w}, [{addr}]",
                "tst {v:w}, {bits:w}",
                "b.ne 2f",
                $wait,
                "2:",
                addr = in(reg) $word.as_ptr(),
                bits = in(reg) $bits,
                v = out(reg) _,
                $(in($reg) $value,)?
                options(nostack, readonly),
            )
        }
    };
}

/// Waits once for `word & bits != 0`: returns at once if it already is, else sleeps in `WFE`
/// until an event (a write to `word` by another CPU, an interrupt, `SEV`, the event stream).
pub fn wfe_for_bits(word: &AtomicU32, bits: u32) {
    armed_wait!(word, bits, "wfe");
}

/// As [`wfe_for_bits`], but with `WFET`: sleeps at most until the virtual count reaches
/// `deadline_ticks` (at once if it has). The [`Wfxt`] proof says the CPU has the instruction.
pub fn wfet_for_bits(word: &AtomicU32, bits: u32, deadline_ticks: u64, _: Wfxt) {
    // `WFET x9`, encoded by hand (0xd5031000 | Rt): older assemblers do not know it.
    armed_wait!(word, bits, ".inst 0xd5031009", "x9" = deadline_ticks);
}

/// Makes one SMCCC call over the HVC conduit (`hvc #0`) with no arguments but the function id,
/// and returns `x0`..`x3`: what [`driver::arm64::detect_kvm`](crate::driver::arm64::detect_kvm)
/// asks with.
///
/// # Safety
///
/// The caller runs at EL1 in a VM whose SMCCC conduit is HVC (the PSCI node says `hvc`) and
/// `function_id` is a query without side effects (the two [`driver::arm64`] calls are). Without
/// a hypervisor `hvc` is undefined; a call with effects could change the VM under the kernel.
///
/// [`driver::arm64`]: crate::driver::arm64
pub unsafe fn smccc_hvc(function_id: u32) -> SmcccRegs {
    let (x0, x1, x2, x3): (u64, u64, u64, u64);
    // SAFETY: the caller's contract above. SMCCC returns results in x0..x3 and may change x4..x17
    // under version 1.0, all declared; the call touches no memory of ours.
    unsafe {
        asm!(
            "hvc #0",
            inlateout("x0") u64::from(function_id) => x0,
            lateout("x1") x1, lateout("x2") x2, lateout("x3") x3,
            lateout("x4") _, lateout("x5") _, lateout("x6") _, lateout("x7") _,
            lateout("x8") _, lateout("x9") _, lateout("x10") _, lateout("x11") _,
            lateout("x12") _, lateout("x13") _, lateout("x14") _, lateout("x15") _,
            lateout("x16") _, lateout("x17") _,
            options(nomem, nostack),
        );
    }
    [x0, x1, x2, x3]
}

/// The aarch64 [`Cpu`]: waits with `WFET` where the CPU has it, with `WFE` where the event
/// stream bounds it, and spins otherwise; the clock is [`cntvct`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wfe {
    event_stream: bool,
    wfxt: Option<Wfxt>,
}

impl Wfe {
    /// `event_stream`: the generic timer's event stream is on for this CPU, so a `WFE` ends
    /// within one of its periods. `wfxt`: the CPU has `WFET` ([`Wfxt::detect`]).
    pub const fn new(event_stream: bool, wfxt: Option<Wfxt>) -> Wfe {
        Wfe { event_stream, wfxt }
    }

    /// Whether a wait may sleep: then the clock is read after every wait.
    pub const fn sleeps(&self) -> bool {
        self.event_stream || self.wfxt.is_some()
    }
}

impl Cpu for Wfe {
    fn ticks(&mut self) -> u64 {
        cntvct()
    }

    fn relax(&mut self) {
        core::hint::spin_loop();
    }

    fn wait_for_bits(&mut self, word: &AtomicU32, bits: u32, deadline_ticks: u64) {
        match (self.wfxt, self.event_stream) {
            (Some(wfxt), _) => wfet_for_bits(word, bits, deadline_ticks, wfxt),
            (None, true) => wfe_for_bits(word, bits),
            (None, false) => core::hint::spin_loop(),
        }
    }

    fn waits_per_clock_read(&self) -> u32 {
        if self.sleeps() { 1 } else { POLL_RELAX_COUNT }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::Poller;
    use crate::poll::poll;
    use crate::wake::{NEED_RESCHED, WakeFlags};
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn the_counter_runs_forward_at_a_frequency() {
        assert!(cntfrq() > 0);
        let a = cntvct();
        std::thread::sleep(Duration::from_millis(2));
        let b = cntvct();
        assert!(b > a, "{a} then {b}");
    }

    #[test]
    fn reading_the_id_register_does_not_fault() {
        // Linux (and qemu-user) emulate the read for user space; whatever it says, detect()
        // agrees with the field.
        assert_eq!(Wfxt::detect().is_some(), id_aa64isar2() & 0xf >= 2);
    }

    #[test]
    fn waits_return_at_once_when_the_bits_are_set() {
        let word = AtomicU32::new(NEED_RESCHED);
        wfe_for_bits(&word, NEED_RESCHED);
        if let Some(wfxt) = Wfxt::detect() {
            wfet_for_bits(&word, NEED_RESCHED, u64::MAX, wfxt);
        }
    }

    #[test]
    fn a_timed_wait_returns_by_its_deadline() {
        let Some(wfxt) = Wfxt::detect() else { return };
        let word = AtomicU32::new(0);
        let deadline = cntvct() + counter().ticks(1_000_000);
        wfet_for_bits(&word, NEED_RESCHED, deadline, wfxt);
    }

    /// A poll with a window far longer than the test ends when another thread wakes it, on
    /// every kind of wait.
    #[test]
    fn a_wake_from_another_thread_ends_a_poll() {
        for cpu in [Wfe::new(true, Wfxt::detect()), Wfe::new(true, None), Wfe::new(false, None)] {
            let flags = Arc::new(WakeFlags::new());
            assert!(!flags.set_polling_and_test());
            let waker = {
                let flags = Arc::clone(&flags);
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(5));
                    flags.wake()
                })
            };
            let out = poll(&mut Poller::new(&flags, counter(), cpu), 60_000_000_000);
            assert!(!out.timed_out, "{cpu:?}");
            assert_eq!(waker.join().unwrap(), crate::wake::Kick::Skipped);
        }
    }

    #[test]
    fn a_sleeping_wait_reads_the_clock_after_each_wait() {
        assert_eq!(Wfe::new(true, None).waits_per_clock_read(), 1);
        assert_eq!(Wfe::new(false, None).waits_per_clock_read(), POLL_RELAX_COUNT);
        let flags = WakeFlags::new();
        let out = poll(&mut Poller::new(&flags, counter(), Wfe::new(true, Wfxt::detect())), 1_000_000);
        assert!(out.timed_out && out.polled_ns > 1_000_000);
    }
}
