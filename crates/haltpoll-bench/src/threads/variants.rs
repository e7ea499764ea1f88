//! The contenders: one way each to wait for a message and to wake its waiter.
//!
//! Every variant is a [`Primitive`]: a [`Waiter`] the waiting thread owns and a [`Waker`] the
//! other thread holds. The harness publishes the message itself (a sequence number with
//! release); a waiter returns once `arrived()` says so, so primitives that may wake spuriously
//! (std's park, a condvar) are measured doing what a real user must do.

use std::future::{Future, poll_fn};
use std::marker::PhantomData;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::{Arc, OnceLock};
use std::task::Poll;
use std::thread::{self, Thread};

use crossbeam_utils::Backoff;
use futures::task::AtomicWaker;

use haltpoll::BlockTime;

use haltpoll_park::{Builder, Parker, Stats, Unparker};

/// The waiting side of a variant.
pub(crate) trait Waiter: Send + 'static {
    /// Called once on the waiting thread before any message is sent.
    fn register(&mut self) {}
    /// Returns once `arrived()` is true (checking it after every wake).
    fn wait(&mut self, arrived: &dyn Fn() -> bool);
    /// Wakes so far that needed no system call on either side, if the variant can tell.
    fn no_syscall_wakes(&self) -> Option<u64> {
        None
    }
    /// The haltpoll parker's statistics, for haltpoll variants.
    fn parker_stats(&self) -> Option<Stats> {
        None
    }
}

/// The waking side of a variant: called right after the message is published.
pub(crate) trait Waker: Send + 'static {
    fn wake(&self);
}

/// Builds a connected waiter and waker.
pub(crate) trait Primitive {
    type Waiter: Waiter;
    type Waker: Waker;
    fn pair(haltpoll: &Builder) -> (Self::Waiter, Self::Waker);
}

/// Busy-waits on the message: the lower bound of wake latency, a whole CPU per waiter.
pub(crate) struct Spin;

/// Counts how often the spinner returned: every wake needed no syscall.
pub(crate) struct SpinWaiter(u64);

/// The spinner needs no wake: the message is the signal.
pub(crate) struct NoWake;

impl Primitive for Spin {
    type Waiter = SpinWaiter;
    type Waker = NoWake;
    fn pair(_: &Builder) -> (SpinWaiter, NoWake) {
        (SpinWaiter(0), NoWake)
    }
}

impl Waiter for SpinWaiter {
    fn wait(&mut self, arrived: &dyn Fn() -> bool) {
        while !arrived() {
            std::hint::spin_loop();
        }
        self.0 += 1;
    }
    fn no_syscall_wakes(&self) -> Option<u64> {
        Some(self.0)
    }
}

impl Waker for NoWake {
    fn wake(&self) {}
}

/// Busy-waits on a flag the waker sets after the message, on a cache line of its own: what any
/// wake through a flag costs at least, one line transfer more than [`Spin`].
pub(crate) struct SpinFlag;

/// The flag, alone on its lines (128 bytes, as the parker's word).
#[repr(align(128))]
#[derive(Default)]
pub(crate) struct Flag(AtomicBool);

impl Primitive for SpinFlag {
    type Waiter = FlagWaiter;
    type Waker = Arc<Flag>;
    fn pair(_: &Builder) -> (FlagWaiter, Arc<Flag>) {
        let flag = Arc::new(Flag::default());
        (FlagWaiter(flag.clone()), flag)
    }
}

/// Spins on the flag, clears it with a plain store (the cheapest way: the next message cannot
/// come before this one's ack), then looks at the message.
pub(crate) struct FlagWaiter(Arc<Flag>);

impl Waiter for FlagWaiter {
    fn wait(&mut self, arrived: &dyn Fn() -> bool) {
        loop {
            while !self.0.0.load(Acquire) {
                std::hint::spin_loop();
            }
            self.0.0.store(false, Relaxed);
            if arrived() {
                return;
            }
        }
    }
}

impl Waker for Arc<Flag> {
    fn wake(&self) {
        self.0.store(true, Release);
    }
}

/// The haltpoll [`Parker`] as its builder makes it.
pub(crate) struct Haltpoll;

/// The haltpoll parker with Linux's guest accounting ([`BlockTime::HaltOnly`]).
pub(crate) struct HaltpollGuestRule;

/// The haltpoll parker as its builder makes it, waiting with [`Parker::wait_until`].
pub(crate) struct HaltpollWaitUntil;

/// A parker that waits with [`Parker::wait_until`] on the message itself. A wait may take
/// two parks (one for the token the last message left), so it counts its own wakes without a
/// system call: waits during which the parker neither slept nor was sent a futex wake.
pub(crate) struct WaitUntil {
    parker: Parker,
    waits: u64,
    /// Waits before the last one that made no system call.
    quiet_waits: u64,
    /// The parker's blocks and futex wakes when the last wait started.
    syscalls_then: u64,
}

impl WaitUntil {
    fn syscalls(&self) -> u64 {
        let s = self.parker.stats();
        s.blocks + s.futex_wakes
    }

    /// Whether the last wait made no system call (none yet: false).
    fn last_was_quiet(&self) -> bool {
        self.waits > 0 && self.syscalls() == self.syscalls_then
    }
}

impl Waiter for WaitUntil {
    fn wait(&mut self, arrived: &dyn Fn() -> bool) {
        // The last wait's count is taken here, not after it: the harness reads the clock as
        // soon as a wait returns.
        self.quiet_waits += u64::from(self.last_was_quiet());
        self.syscalls_then = self.syscalls();
        self.waits += 1;
        self.parker.wait_until(arrived);
    }
    fn no_syscall_wakes(&self) -> Option<u64> {
        Some(self.quiet_waits + u64::from(self.last_was_quiet()))
    }
    fn parker_stats(&self) -> Option<Stats> {
        Some(self.parker.stats())
    }
}

impl Primitive for HaltpollWaitUntil {
    type Waiter = WaitUntil;
    type Waker = Unparker;
    fn pair(haltpoll: &Builder) -> (WaitUntil, Unparker) {
        let (parker, unparker) = haltpoll_pair(*haltpoll);
        (WaitUntil { parker, waits: 0, quiet_waits: 0, syscalls_then: 0 }, unparker)
    }
}

impl Waiter for Parker {
    fn wait(&mut self, arrived: &dyn Fn() -> bool) {
        // One unpark per message: the park that consumes its token sees the message.
        loop {
            self.park();
            if arrived() {
                return;
            }
        }
    }
    fn no_syscall_wakes(&self) -> Option<u64> {
        Some(self.stats().wakes_without_syscall())
    }
    fn parker_stats(&self) -> Option<Stats> {
        Some(self.stats())
    }
}

impl Waker for Unparker {
    fn wake(&self) {
        self.unpark();
    }
}

fn haltpoll_pair(builder: Builder) -> (Parker, Unparker) {
    // The harness validated the parameters before it started any thread.
    let parker = builder.build().expect("parameters validated by the harness");
    let unparker = parker.unparker().clone();
    (parker, unparker)
}

impl Primitive for Haltpoll {
    type Waiter = Parker;
    type Waker = Unparker;
    fn pair(haltpoll: &Builder) -> (Parker, Unparker) {
        haltpoll_pair(*haltpoll)
    }
}

impl Primitive for HaltpollGuestRule {
    type Waiter = Parker;
    type Waker = Unparker;
    fn pair(haltpoll: &Builder) -> (Parker, Unparker) {
        haltpoll_pair(haltpoll.block_time(BlockTime::HaltOnly))
    }
}

/// `std::thread::park` / `Thread::unpark`.
pub(crate) struct StdPark;

/// Publishes the waiting thread's handle to its waker.
pub(crate) struct StdWaiter(Arc<OnceLock<Thread>>);

/// Unparks the thread its waiter registered.
pub(crate) struct StdWaker(Arc<OnceLock<Thread>>);

impl Primitive for StdPark {
    type Waiter = StdWaiter;
    type Waker = StdWaker;
    fn pair(_: &Builder) -> (StdWaiter, StdWaker) {
        let slot = Arc::new(OnceLock::new());
        (StdWaiter(slot.clone()), StdWaker(slot))
    }
}

impl Waiter for StdWaiter {
    fn register(&mut self) {
        let _ = self.0.set(thread::current());
    }
    fn wait(&mut self, arrived: &dyn Fn() -> bool) {
        while !arrived() {
            thread::park();
        }
    }
}

impl Waker for StdWaker {
    fn wake(&self) {
        // Registered before the harness sends the first message.
        if let Some(t) = self.0.get() {
            t.unpark();
        }
    }
}

/// crossbeam-utils' `Parker`.
pub(crate) struct Crossbeam;

impl Primitive for Crossbeam {
    type Waiter = crossbeam_utils::sync::Parker;
    type Waker = crossbeam_utils::sync::Unparker;
    fn pair(_: &Builder) -> (Self::Waiter, Self::Waker) {
        let p = crossbeam_utils::sync::Parker::new();
        let u = p.unparker().clone();
        (p, u)
    }
}

impl Waiter for crossbeam_utils::sync::Parker {
    fn wait(&mut self, arrived: &dyn Fn() -> bool) {
        while !arrived() {
            self.park();
        }
    }
}

impl Waker for crossbeam_utils::sync::Unparker {
    fn wake(&self) {
        self.unpark();
    }
}

/// parking_lot's `Condvar` with a `Mutex<bool>` (its safe API has no token parker).
pub(crate) struct ParkingLot;

/// A flag under a parking_lot mutex and its condvar.
#[derive(Default)]
pub(crate) struct LotEvent {
    flag: parking_lot::Mutex<bool>,
    cv: parking_lot::Condvar,
}

impl Primitive for ParkingLot {
    type Waiter = Arc<LotEvent>;
    type Waker = Arc<LotEvent>;
    fn pair(_: &Builder) -> (Arc<LotEvent>, Arc<LotEvent>) {
        let e = Arc::new(LotEvent::default());
        (e.clone(), e)
    }
}

impl Waiter for Arc<LotEvent> {
    fn wait(&mut self, arrived: &dyn Fn() -> bool) {
        let mut flag = self.flag.lock();
        while !*flag {
            self.cv.wait(&mut flag);
        }
        *flag = false;
        drop(flag);
        debug_assert!(arrived());
    }
}

impl Waker for Arc<LotEvent> {
    fn wake(&self) {
        *self.flag.lock() = true;
        self.cv.notify_one();
    }
}

/// A fixed spin-then-park: crossbeam's `Backoff` (spin, then yield) until `is_completed`,
/// then crossbeam's `Parker`. No adaptation: the spin lasts the same few microseconds always.
pub(crate) struct SpinThenPark;

/// Snoozes of a fresh `Backoff` that spin rather than yield: its `SPIN_LIMIT` (6, in
/// crossbeam-utils 0.8) plus one. A wait that ends within them made no syscall.
const BACKOFF_SPINS: u32 = 7;

/// The spinning waiter; counts waits that ended while it still spun.
pub(crate) struct SpinThenParkWaiter {
    parker: crossbeam_utils::sync::Parker,
    ended_spinning: u64,
}

impl Primitive for SpinThenPark {
    type Waiter = SpinThenParkWaiter;
    type Waker = crossbeam_utils::sync::Unparker;
    fn pair(_: &Builder) -> (SpinThenParkWaiter, crossbeam_utils::sync::Unparker) {
        let parker = crossbeam_utils::sync::Parker::new();
        let u = parker.unparker().clone();
        (SpinThenParkWaiter { parker, ended_spinning: 0 }, u)
    }
}

impl Waiter for SpinThenParkWaiter {
    fn wait(&mut self, arrived: &dyn Fn() -> bool) {
        let backoff = Backoff::new();
        let (mut snoozes, mut parked) = (0, false);
        while !arrived() {
            if backoff.is_completed() {
                parked = true;
                self.parker.park();
            } else {
                backoff.snooze();
                snoozes += 1;
            }
        }
        // A wait that neither yielded nor parked: crossbeam's state was not PARKED when the
        // unpark came, so it made no syscall either (its token makes the next park return at
        // once, again without one).
        if !parked && snoozes <= BACKOFF_SPINS {
            self.ended_spinning += 1;
        }
    }
    fn no_syscall_wakes(&self) -> Option<u64> {
        Some(self.ended_spinning)
    }
}

/// A one-future executor: runs a future to completion on the calling thread.
pub(crate) trait Executor: Send + 'static {
    fn block_on<F: Future>(future: F) -> F::Output;
}

/// `haltpoll_park::block_on`: a haltpoll parker (the default parameters) between polls.
pub(crate) struct HaltpollBlockOn;

/// `futures::executor::block_on`: std's thread park between polls.
pub(crate) struct FuturesBlockOn;

/// `pollster::block_on`: a Mutex and a Condvar between polls.
pub(crate) struct PollsterBlockOn;

impl Executor for HaltpollBlockOn {
    fn block_on<F: Future>(future: F) -> F::Output {
        haltpoll_park::block_on(future)
    }
}

impl Executor for FuturesBlockOn {
    fn block_on<F: Future>(future: F) -> F::Output {
        futures::executor::block_on(future)
    }
}

impl Executor for PollsterBlockOn {
    fn block_on<F: Future>(future: F) -> F::Output {
        pollster::block_on(future)
    }
}

/// Waiting as async code does: the waiter blocks on a future that is ready once the message
/// has arrived, and the waker wakes the waker that future registered.
pub(crate) struct BlockOn<E>(PhantomData<E>);

/// Runs the message's future on its executor.
pub(crate) struct FutureWaiter<E> {
    registered: Arc<AtomicWaker>,
    executor: PhantomData<E>,
}

/// Wakes the future's last registered waker.
pub(crate) struct FutureWaker(Arc<AtomicWaker>);

impl<E: Executor> Primitive for BlockOn<E> {
    type Waiter = FutureWaiter<E>;
    type Waker = FutureWaker;
    fn pair(_: &Builder) -> (FutureWaiter<E>, FutureWaker) {
        let registered = Arc::new(AtomicWaker::new());
        (FutureWaiter { registered: registered.clone(), executor: PhantomData }, FutureWaker(registered))
    }
}

impl<E: Executor> Waiter for FutureWaiter<E> {
    fn wait(&mut self, arrived: &dyn Fn() -> bool) {
        let registered = &self.registered;
        E::block_on(poll_fn(|cx| {
            if arrived() {
                return Poll::Ready(());
            }
            // Register, then look again: a message published in between woke this waker.
            registered.register(cx.waker());
            if arrived() { Poll::Ready(()) } else { Poll::Pending }
        }));
    }
}

impl Waker for FutureWaker {
    fn wake(&self) {
        self.0.wake();
    }
}
