//! Guest-side halt polling, as Linux's cpuidle-haltpoll driver and haltpoll governor do it, for
//! any Rust kernel: `no_std`, no allocation, no dependencies by default.
//!
//! An idle vCPU that executes HLT pays a VM exit, and whoever wakes it pays an IPI. Polling in
//! the guest first, with a POLLING flag set, lets a waker skip the IPI and the vCPU skip the exit;
//! the governor learns per CPU how long polling pays.
//!
//! Three seams, as in the kernel, and one loop over them ([`idle`]):
//! - [`governor`]: Linux's policy. [`Governor::select`] picks [`IdleState::Poll`] or
//!   [`IdleState::Halt`]; [`Governor::reflect`] learns from what ran. A pure state machine.
//! - [`driver`]: the idle-state table, whether to load at all ([`driver::decide_load`] from CPUID
//!   values on x86, from SMCCC call results on arm64), and what to write to
//!   `MSR_KVM_POLL_CONTROL`.
//! - [`poll`] and [`wake`]: the mechanism. The poll loop waits on a [`poll::PollPlatform`] (a
//!   relax hint, or a wait that sleeps until the flags word is written); the
//!   [`wake::WakeFlags`] word lets wakers skip the IPI when the target is polling.
//!
//! [`platform`] has ready poll platforms for x86_64 (`pause`, TSC), aarch64 (`LDXR` + `WFE` or
//! `WFET`, `CNTVCT_EL0`) and riscv64 (`pause` or Zawrs, `time`), behind the `platform` feature;
//! `docs/porting.md` shows where each architecture's kernel plugs the pieces in.
//!
//! [`predictive`] is a second governor: it predicts the next idle period from recent ones and
//! polls where a poll most likely catches the wakeup, within a budget of the CPU's time.
//! [`select`] is the seam every governor implements ([`IdleGovernor`]: a [`Decision`] at idle
//! entry, an [`Outcome`] when the period ends); it imports no governor. Each governor
//! implements it in its own module, and [`dispatch`] ([`AnyGovernor`]) picks one at run time.
//!
//! [`replay`] runs either governor over a trace of idle periods, for tuning.
//!
//! [`Params`] declares the governor's parameters once; [`Params::validate`] checks them once
//! into the [`ValidParams`] a [`Governor`] takes. Optional features derive the rest from it:
//! `clap` (command-line options with the kernel's names, `params::cli`), `serde` (JSON with
//! the kernel's names) and `zerocopy` (the byte layout [`params::RawParams`] a VMM hands its
//! guest, [`params::wire`]). `clap` brings
//! in `std`; the others keep the crate `no_std`.
//!
//! # A kernel's idle loop
//!
//! Once per CPU at boot, decide whether to load and switch host polling off:
//!
//! ```
//! use haltpoll::driver::{decide_load, detect_kvm, LoadOptions, MSR_KVM_POLL_CONTROL};
//! # use haltpoll::driver::CpuidRegs;
//! # fn cpuid(leaf: u32) -> CpuidRegs { match leaf {
//! #     0x4000_0000 => CpuidRegs { eax: 0x4000_0001, ebx: 0x4b4d_564b, ecx: 0x564b_4d56, edx: 0x4d },
//! #     0x4000_0001 => CpuidRegs { eax: 1 << 12, ebx: 0, ecx: 0, edx: 1 },
//! #     _ => CpuidRegs::default() } }
//! # fn wrmsr(_msr: u32, _value: u64) {}
//! match decide_load(detect_kvm(cpuid), LoadOptions::default()) {
//!     Ok(driver) => match driver.poll_control_msr(true) {
//!         Some(value) => wrmsr(MSR_KVM_POLL_CONTROL, value), // 0: the host need not poll
//!         None => { /* log once: the host keeps polling too */ }
//!     },
//!     Err(refusal) => { /* use plain HLT; `refusal` says why */ let _ = refusal; }
//! }
//! ```
//!
//! Then every time the CPU runs out of work, one period of the [`idle`] loop (Linux's
//! `cpuidle_enter_state`): the governor selects, the loop polls or halts with the wake protocol
//! around each state, and the governor learns from what happened. The kernel supplies the
//! mechanism: its clock, its poll platform, its halt and the CPU's wake word.
//!
//! ```
//! use haltpoll::idle::{self, Halted, Mechanism};
//! use haltpoll::poll::{poll, PollOutcome, PollPlatform};
//! use haltpoll::wake::WakeFlags;
//! use haltpoll::{End, Governor, ValidParams, LATENCY_ANY};
//!
//! struct Cpu<'a> { flags: &'a WakeFlags /* , clock, ... */ }
//! impl PollPlatform for Cpu<'_> {
//!     fn now_ns(&mut self) -> u64 { /* read the TSC */ 0 }
//!     fn relax(&mut self) { core::hint::spin_loop() }
//!     fn wake_pending(&mut self) -> bool { self.flags.need_resched() }
//! }
//! impl Mechanism for Cpu<'_> {
//!     fn now_ns(&mut self) -> u64 { PollPlatform::now_ns(self) }
//!     fn set_polling_and_test(&mut self) -> bool { self.flags.set_polling_and_test() }
//!     // Clear-then-test: after this, every waker sees POLLING clear and sends the IPI, which
//!     // `sti; hlt` takes, so nothing is lost between the test and the halt.
//!     fn clear_polling_and_test(&mut self) -> bool { self.flags.clear_polling_and_test() }
//!     fn poll(&mut self, limit_ns: u64, _times_hits: bool) -> PollOutcome { poll(self, limit_ns) }
//!     fn halt(&mut self, _timer_ns: Option<u64>) -> Halted {
//!         let start = PollPlatform::now_ns(self);
//!         safe_halt();
//!         Halted { end: End::Wakeup, ns: PollPlatform::now_ns(self) - start }
//!     }
//! }
//! # fn safe_halt() {} // `sti; hlt`: returns after an interrupt
//!
//! let (mut gov, flags) = (Governor::new(ValidParams::DEFAULT), WakeFlags::new());
//! flags.wake(); // someone queued work: the first idle returns at once
//! let period = idle::enter(&mut gov, &mut Cpu { flags: &flags }, LATENCY_ANY);
//! assert_eq!(period.outcome.end, End::Wakeup);
//! assert!(flags.take_need_resched()); // the caller consumes the wakeup
//! ```
//!
//! A waker sets NEED_RESCHED and sends the IPI only when [`wake::WakeFlags::wake`] says
//! [`wake::Kick::Needed`].

// clap's derives expand to code that uses the std prelude (`String`, `to_string`), and clap
// needs std anyway; without that feature the crate is `no_std`.
#![cfg_attr(not(any(test, feature = "clap")), no_std)]
#![warn(missing_docs)]

/// For a `#[repr(u32)]` enum whose values cross a boundary as numbers (guest memory, a report):
/// `ALL`, every variant, and `from_raw`, the variant with a given number, if any. A number read
/// from memory the other side wrote is checked this way before it becomes the enum. Used by this
/// crate and by haltpoll-abi, so each such enum is listed once, where it is declared.
#[doc(hidden)]
#[macro_export]
macro_rules! repr_u32_enum {
    ($ty:ident { $($variant:ident),* $(,)? }) => {
        impl $ty {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),*];

            /// The variant whose `as u32` is `raw`, if any.
            pub const fn from_raw(raw: u32) -> Option<$ty> {
                $(if raw == $ty::$variant as u32 { return Some($ty::$variant); })*
                None
            }
        }
    };
}

pub mod dispatch;
pub mod driver;
pub mod governor;
pub mod idle;
pub mod params;
#[cfg(not(loom))]
pub mod platform;
pub mod poll;
pub mod predictive;
pub mod replay;
pub mod select;
pub mod wake;

pub use dispatch::{AnyGovernor, GovernorKind, GovernorParams};
pub use driver::IdleState;
pub use governor::{Adjustment, Governor, LATENCY_ANY, LatencyReq};
pub use params::{BlockTime, ParamError, Params, ShrinkRule, ValidParams, WindowArithmetic};
pub use predictive::{Predictive, PredictiveParams, ValidPredictiveParams};
pub use select::{Decision, End, IdleGovernor, Outcome};

/// `part / whole`, or 0 when `whole` is 0: a share of something that did not happen is none of
/// it (a run that never idled spent no share of its idle time polling). The one such division,
/// so that an empty denominator reads the same in every report.
///
/// ```
/// assert_eq!(haltpoll::share(1, 4), 0.25);
/// assert_eq!(haltpoll::share(5, 0), 0.0);
/// ```
pub fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 / whole as f64 }
}

// The README's examples are compiled and run as doc tests, so they cannot go stale.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
