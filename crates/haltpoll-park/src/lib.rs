//! Guest-side halt polling one level up: a thread parker that polls before it sleeps, with the
//! haltpoll governor deciding how long polling pays.
//!
//! On a machine whose idle CPUs halt (every VM with guest polling off, like this project's),
//! waking a thread that sleeps in `FUTEX_WAIT` on another CPU costs the waker a system call and
//! the sleeper the whole idle path: tens of microseconds here. A [`Parker`] first spins with a
//! POLLING flag set; an [`Unparker`] that finds the flag set only sets the token, and the
//! spinner sees it within a few hundred nanoseconds. Each parker owns a [`haltpoll::Governor`]
//! that grows its poll window after waits a longer poll would have caught and shrinks it after
//! waits too long for polling to pay, so a thread that waits long stops burning CPU.
//!
//! ```
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use std::sync::Arc;
//! use std::thread;
//! use haltpoll_park::Parker;
//!
//! let parker = Parker::new();
//! let unparker = parker.unparker().clone();
//! let slot = Arc::new(AtomicU64::new(0));
//! let producer = {
//!     let slot = slot.clone();
//!     thread::spawn(move || {
//!         slot.store(42, Ordering::Relaxed);
//!         unparker.unpark(); // orders the store before the park's return
//!     })
//! };
//! parker.park();
//! assert_eq!(slot.load(Ordering::Relaxed), 42);
//! producer.join().unwrap();
//! println!("{:?}", parker.stats()); // poll hits, blocks, wakes that skipped the syscall, ...
//! ```
//!
//! The pieces: [`Parker`] / [`Unparker`] (the protocol, proved in `tests/loom_park.rs`; a
//! drop-in for crossbeam's, checked by `crates/haltpoll-park-dropin`; beyond it,
//! [`Parker::wait_until`], whose poll watches the caller's condition), [`Builder`] (parameters,
//! [`Polling`], a latency limit), [`Stats`] (serde's `Serialize` with the `serde` feature),
//! [`block_on`] (one future, parked on a parker between polls). The sleep is each OS's wait on
//! address with a timeout (Linux, Android, FreeBSD, Windows, macOS 14.4+) or a `Mutex` and a
//! `Condvar` elsewhere. `haltpoll bench threads` measures the parker against spinning,
//! `std::thread::park`, crossbeam and parking_lot, and `block_on` against futures' and pollster's.
//!
//! # Choosing the defaults
//!
//! [`DEFAULT_PARAMS`] are Linux's shape with numbers for threads on a VM, from
//! `haltpoll bench threads` on a 2-vCPU KVM guest (AMD EPYC; its idle CPUs halt):
//! - a one-way wake of a thread blocked in `FUTEX_WAIT` on the other CPU takes 20-50 us (the
//!   system call, the IPI, the halted CPU's exit to the host) and 15-30 us of the waiting
//!   thread's CPU; a poll hit takes about 0.13 us (spinning on a flag: 0.09 us);
//! - `grow_start` 25 us: about the CPU cost of one blocked wake, so a poll that misses and
//!   then blocks costs at most about twice what blocking at once would have (the classic
//!   spin-then-block bound). Linux's 50 us measured the same at think times of 0 to 1 ms;
//! - ceiling (`guest_halt_poll_ns`) 200 us, Linux's: gaps up to it (the benchmark's 0, 10 and
//!   100 us think times) are caught polling; past it a blocked wake adds at most a quarter of
//!   the gap, while polling through the gap would burn a CPU for all of it. Gaps of 1 ms and
//!   more shrink the window to 0 and the parker blocks at once, like `std::thread::park`.
//!
//! [`BlockTime::PollAndHalt`](haltpoll::BlockTime::PollAndHalt) (count the poll as part of
//! the block, as KVM's host-side polling does) is the default because Linux's guest rule has a
//! blind spot for steady gaps between one and two windows, which is where a thread handing work
//! back and forth lives (at a 100 us think time it skipped the system call on 44% of wakes,
//! against 100%).

//!
//! # Choosing the governor
//!
//! [`Builder::governor`] chooses Linux's governor (the default, above) or the predictive one
//! ([`haltpoll::Predictive`]: polls within a CPU budget, may sleep on a timer and poll just
//! before a predicted unpark). Linux's stays the default by measurement (docs/measurements.md,
//! "The predictive governor in the parker"): at a 5% budget the predictive one woke a ping-pong
//! at 0-100 us think in 32-47 us (std's speed) where Linux's took 0.27-0.37 us, and at 10 ms it
//! caught 88% of wakes polling but at 5.4x Linux's CPU per wake.

#![warn(missing_docs)]

mod block_on;
mod builder;
mod clock;
mod futex;
mod parker;
mod stats;

pub use block_on::block_on;
pub use builder::{Builder, DEFAULT_PARAMS, Polling, polling_can_help};
pub use parker::{Parker, Unparker};
pub use stats::Stats;

// The README's examples are compiled and run as doc tests, so they cannot go stale.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
