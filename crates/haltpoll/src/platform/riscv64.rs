//! riscv64: the `pause` hint, or with the Zawrs extension a reservation on the flags word and
//! `wrs.sto`, and the `time` counter as the clock.
//!
//! With Zawrs the wait registers a reservation on the flags word with `lr.w`, and if
//! NEED_RESCHED is still clear, stalls in `wrs.sto` until the reservation is lost (another hart
//! wrote the word), an interrupt is pending, or a short timeout the implementation picks.
//! `wrs.nto` has no timeout of its own: [`Hart::WrsNto`] is for kernels that arm a timer
//! interrupt at the poll's deadline (`stimecmp`, SBI `set_timer`), as it may otherwise sleep far
//! past the window. Without Zawrs the wait is `pause` (Zihintpause; a `fence` hint that every
//! other hart executes as a no-op).
//!
//! The clock is `time` (`rdtime`), which runs at the device tree's `/cpus/timebase-frequency`
//! (10 MHz on QEMU's `virt`).
//!
//! ```no_run
//! use haltpoll::platform::riscv64::{Hart, Zawrs};
//! use haltpoll::platform::{Counter, Poller};
//! use haltpoll::poll::poll;
//! use haltpoll::wake::WakeFlags;
//!
//! let isa = "rv64imafdc_zicsr_zifencei_zawrs"; // the device tree's riscv,isa
//! let hart = Zawrs::from_isa(isa).map_or(Hart::Pause, Hart::WrsSto);
//! let time = Counter::new(10_000_000); // timebase-frequency
//! let flags = WakeFlags::new();
//! let out = poll(&mut Poller::new(&flags, time, hart), 20_000);
//! assert!(out.timed_out);
//! ```

use core::arch::asm;
use core::sync::atomic::AtomicU32;

use super::Cpu;
use crate::poll::POLL_RELAX_COUNT;

/// Reads the `time` counter (`rdtime`).
pub fn rdtime() -> u64 {
    let ticks: u64;
    // SAFETY: `rdtime` reads the `time` CSR into the output register and touches nothing else.
    // Where the higher privilege level has not enabled it ([ms]counteren.TM) it traps there and
    // is emulated (SBI) or faults, never undefined behaviour here.
    unsafe { asm!("rdtime {}", out(reg) ticks, options(nomem, nostack, preserves_flags)) };
    ticks
}

/// The `pause` hint (Zihintpause), encoded as the `fence w, 0` hint it is so that it assembles
/// without the extension: harts without it execute it as a no-op.
pub fn pause() {
    // SAFETY: a FENCE hint with an empty successor set: no register, memory or control effect.
    unsafe { asm!(".insn i 0x0f, 0, x0, x0, 0x010", options(nomem, nostack, preserves_flags)) };
}

/// Proof that this hart has Zawrs (`wrs.nto`, `wrs.sto`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Zawrs(());

impl Zawrs {
    /// From an ISA string (the device tree's `riscv,isa`, `/proc/cpuinfo`'s `isa`): whether
    /// `zawrs` is among its multi-letter extensions (case-insensitive).
    ///
    /// ```
    /// use haltpoll::platform::riscv64::Zawrs;
    /// assert!(Zawrs::from_isa("rv64imafdc_zicsr_zawrs").is_some());
    /// assert!(Zawrs::from_isa("RV64GC_ZAWRS_ZBA").is_some());
    /// assert!(Zawrs::from_isa("rv64imafdc_zicsr").is_none());
    /// assert!(Zawrs::from_isa("rv64imafdc_zawrsx").is_none());
    /// ```
    pub fn from_isa(isa: &str) -> Option<Zawrs> {
        isa.split('_').skip(1).any(|ext| ext.eq_ignore_ascii_case("zawrs")).then_some(Zawrs(()))
    }

    /// Takes the hart's word for it (the device tree's `riscv,isa-extensions`, a build for one
    /// machine).
    ///
    /// # Safety
    ///
    /// The hart implements Zawrs. On one that does not, the waits trap as illegal instructions,
    /// which a kernel may not survive.
    pub const unsafe fn assume() -> Zawrs {
        Zawrs(())
    }
}

/// Registers a reservation on `word` and, if `word & bits` is clear, executes `wrs` (the
/// instruction given as its encoding): the Zawrs wait shared by [`Hart::WrsSto`] and
/// [`Hart::WrsNto`].
macro_rules! wrs_for_bits {
    ($word:expr, $bits:expr, $wrs:literal) => {
        // SAFETY: `word` is a live, aligned AtomicU32 (a reference), which `lr.w` reads with
        // one atomic 32-bit load, as a relaxed atomic load would; nothing is written (no `sc.w`
        // follows; any later one in other code pairs with its own `lr`). `wrs.*` only stalls
        // the hart and has no register or memory effect; the Zawrs proof says the hart has it.
        unsafe {
            asm!(
                "lr.w {v}, ({addr})",
                "and {v}, {v}, {bits}",
                "bnez {v}, 2f",
                $wrs,
                "2:",
                addr = in(reg) $word.as_ptr(),
                bits = in(reg) $bits,
                v = out(reg) _,
                options(nostack, readonly, preserves_flags),
            )
        }
    };
}

/// Waits once for `word & bits != 0` with `wrs.sto`: returns at once if it already is, else
/// when another hart writes `word`, an interrupt is pending, or after a short timeout.
pub fn wrs_sto_for_bits(word: &AtomicU32, bits: u32, _: Zawrs) {
    wrs_for_bits!(word, bits, ".insn i 0x73, 0, x0, x0, 0x01d");
}

/// As [`wrs_sto_for_bits`] with `wrs.nto`: no timeout, so only an interrupt bounds it.
pub fn wrs_nto_for_bits(word: &AtomicU32, bits: u32, _: Zawrs) {
    wrs_for_bits!(word, bits, ".insn i 0x73, 0, x0, x0, 0x00d");
}

/// The riscv64 [`Cpu`]: how a hart waits; the clock is [`rdtime`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hart {
    /// No Zawrs: `pause`, with the clock read once per [`POLL_RELAX_COUNT`] of them.
    Pause,
    /// Zawrs: `wrs.sto`, and the clock after every wait.
    WrsSto(Zawrs),
    /// Zawrs: `wrs.nto`, for a kernel that arms a timer interrupt at every poll's deadline.
    WrsNto(Zawrs),
}

impl Cpu for Hart {
    fn ticks(&mut self) -> u64 {
        rdtime()
    }

    fn relax(&mut self) {
        pause();
    }

    fn wait_for_bits(&mut self, word: &AtomicU32, bits: u32, _deadline_ticks: u64) {
        match *self {
            Hart::Pause => pause(),
            Hart::WrsSto(zawrs) => wrs_sto_for_bits(word, bits, zawrs),
            Hart::WrsNto(zawrs) => wrs_nto_for_bits(word, bits, zawrs),
        }
    }

    fn waits_per_clock_read(&self) -> u32 {
        match self {
            Hart::Pause => POLL_RELAX_COUNT,
            Hart::WrsSto(_) | Hart::WrsNto(_) => 1,
        }
    }
}
