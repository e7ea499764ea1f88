//! `Parker` and `Unparker`: the core crate's wake protocol, governor and idle loop, one level up.
//!
//! A park that finds no token runs one idle period of the core's loop
//! ([`haltpoll::idle::enter`]) over a futex: the poll state spins on the token, the halt state
//! is steps 3 to 6 below, the governor's timer and the park's deadline are the futex wait's
//! timeout, and a deadline that ends the wait is said to the governor as such
//! ([`haltpoll::End::Deadline`]), so that either governor goes through the seam.
//!
//! # The protocol
//!
//! The parker's futex word *is* a [`WakeFlags`] word, and the core's two flags keep their
//! meaning for a thread:
//! - NEED_RESCHED is the token: [`Unparker::unpark`] sets it, a park consumes it.
//! - POLLING means "this thread will look at the token before it sleeps": set while the owner
//!   runs or polls, clear only from the last look before `FUTEX_WAIT` until it wakes.
//!
//! An unpark is [`WakeFlags::wake_by_swap`]: one release swap that writes POLLING | token and
//! returns the old word (one `xchg` on x86). A token already set: the unpark that set it is
//! responsible for any wake, done. POLLING set: the owner is bound to see the token, done, no
//! syscall. Neither (the owner is asleep or about to be): `FUTEX_WAKE`. The swap sets POLLING
//! even then, which is what stays true: the word is no longer 0, so the owner cannot sleep
//! until it has seen the token (step 4 compares, step 5 looks).
//!
//! A park:
//! 1. takes the token if it is already there (an unpark while we ran found POLLING set);
//! 2. asks the governor: POLL spins in [`haltpoll::poll::poll`] (relax hints, clock every
//!    200) on the token with POLLING still set, so a hit costs nobody a syscall;
//! 3. to block, [`WakeFlags::clear_polling_and_test`]: one RMW that clears POLLING and
//!    returns the token bit. From this RMW on, every unpark sees POLLING clear and wakes the
//!    futex; a token set before it is returned by it, and the owner does not sleep;
//! 4. `FUTEX_WAIT` with expected value 0 (no POLLING, no token). The kernel compares and
//!    sleeps atomically with respect to `FUTEX_WAKE`, so a token set after step 3 either makes
//!    the compare fail (the wait returns at once) or comes with a wake that ends the sleep;
//! 5. after any return of the wait, look at the token; no token and no deadline passed (a
//!    spurious or stale wake): wait again;
//! 6. set POLLING again (running), then consume the token with an acquire RMW.
//!
//! Why no wakeup is lost: the token and POLLING live in one word, so every unpark's swap and
//! the clear of step 3 are ordered in that word's modification order. Unpark first: step 3
//! returns the token. Step 3 first: the swap finds POLLING clear; either the token too, and it
//! wakes the futex, which step 4 cannot sleep through (its compare fails on the swapped word,
//! or the wake ends the sleep); or the token set, by an unpark that found the same and woke the
//! futex. A POLLING some swap set while the owner was past step 3 sends later unparks on
//! without a wake, which is right: the token is there and the owner does not sleep before it
//! has taken it. An unpark wakes at most once, and only an owner past step 3; a wake may still
//! find no sleeper (it comes between the owner's step-3 look and its wait, or after step 5),
//! and step 5 absorbs a wake meant for an earlier block.
//!
//! Why no token is consumed twice: only the owner clears NEED_RESCHED, and only by
//! [`WakeFlags::take_need_resched`], whose RMW reports whether it cleared it. A park returns
//! "woken" only on a take that returned true.
//!
//! Why the message is visible: every unpark is a release RMW on the word (even when the token
//! was already set), every later RMW on the word continues its release sequence, and the take
//! is an acquire RMW, so whatever each unparker wrote before `unpark` happens-before the
//! return of the park that consumes the token.
//!
//! [`Parker::wait_until`] polls the caller's condition instead of the token (step 2), and
//! leaves a token that came with it for a later park: blocking (steps 3 to 6) is unchanged, so
//! the argument above holds for it as it is.
//!
//! `tests/loom_park.rs` model-checks all of it, spurious returns and timeouts included.

use std::cell::Cell;
use std::fmt;
use std::panic::RefUnwindSafe;
use std::time::{Duration, Instant};

#[cfg(test)]
use haltpoll::Decision;
use haltpoll::idle::{self, Halted, Mechanism};
use haltpoll::poll::{PollOutcome, poll};
use haltpoll::wake::{Kick, WakeFlags};
use haltpoll::{AnyGovernor, End, IdleGovernor, LatencyReq, Outcome};

#[cfg(not(loom))]
use std::sync::Arc;
#[cfg(not(loom))]
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[cfg(loom)]
use loom::sync::Arc;
// Statistics carry no synchronisation, so loom need not model them.
#[cfg(loom)]
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::builder::Builder;
use crate::clock::{Clock, Condition, Spin, Token, Wakeup};
use crate::futex::Futex;
use crate::stats::Stats;

/// What the parker and its unparkers share. The owner's own state (governor, clock, counters)
/// lives in the [`Parker`], so the owner's bookkeeping never touches this cache line. Aligned
/// to 128 bytes (two lines: x86's adjacent-line prefetcher fetches pairs) so that no other
/// allocation, such as the other parker of a ping-pong pair made right before, shares it.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Inner {
    flags: WakeFlags,
    futex: Futex,
    /// Unparks that issued a futex wake: only on the slow path, where the system call dwarfs it.
    futex_wakes: AtomicU64,
    /// Whether `unpark` counts its calls: a second RMW on the fast path, so opt-in
    /// ([`Builder::count_unparks`]).
    count_unparks: bool,
    unparks: AtomicU64,
}

/// The settings a [`Builder`] fixed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Config {
    /// Whether to poll at all (false: block at once, like `std::thread::park`).
    pub(crate) polling: bool,
    pub(crate) latency_req: LatencyReq,
    pub(crate) count_unparks: bool,
}

/// A counter only the owner touches: a plain add, no atomic.
#[derive(Debug, Default)]
struct Count(Cell<u64>);

impl Count {
    fn add(&self, n: u64) {
        self.0.set(self.0.get() + n);
    }

    fn inc(&self) {
        self.add(1);
    }

    fn get(&self) -> u64 {
        self.0.get()
    }
}

/// The owner's counters, one field at a time. Every park ends in exactly one of `immediate`,
/// `poll_hits`, `late_hits`, `blocks` and `expired`, so a park counts one add (the fast path's
/// only bookkeeping) and `parks` and `timeouts` are sums.
#[derive(Debug, Default)]
struct Counters {
    immediate: Count,
    poll_hits: Count,
    poll_timeouts: Count,
    late_hits: Count,
    blocks: Count,
    /// Parks that returned without the token and without blocking (a zero timeout, a deadline
    /// that passed at once or while polling).
    expired: Count,
    /// Blocks that the deadline ended without the token.
    blocked_timeouts: Count,
}

/// How one block ended.
struct Blocked {
    woken: bool,
    blocked_ns: u64,
    /// Step 3 found the token: the owner never slept (a late hit).
    late: bool,
}

/// How one idle period ended, for the tests of the timed wait.
#[cfg(test)]
struct Period {
    woken: bool,
    poll_ns: u64,
    /// The token found the thread polling.
    caught: bool,
}

/// A thread parker that polls before it sleeps: `park` spins with a POLLING flag set for as
/// long as its [`haltpoll::Governor`] says polling pays, then blocks on the OS's wait on
/// address (a futex on Linux). An unpark that finds the thread polling (or running) skips the
/// wake system call.
///
/// A drop-in for crossbeam's `Parker`: the same methods with the same signatures
/// (`park_timeout` and `park_deadline` return nothing, as crossbeam's and std's do; the
/// `*_unparked` variants say whether the token came), `into_raw` / `from_raw`, `Default`,
/// `Debug`, `Send` but not `Sync`, `UnwindSafe` and `RefUnwindSafe`. The semantics are
/// `std::thread::park`'s: a token, initially absent; [`Unparker::unpark`] makes it available,
/// a park consumes it or waits for it, so an unpark before the park is not lost, and tokens
/// do not accumulate. Unlike `std`, a park never returns without the token except at its
/// deadline.
///
/// ```
/// use std::thread;
/// use haltpoll_park::Parker;
///
/// let parker = Parker::new();
/// let unparker = parker.unparker().clone();
/// let worker = thread::spawn(move || {
///     // ... produce something, then:
///     unparker.unpark();
/// });
/// parker.park(); // returns once the worker has unparked (or at once if it already did)
/// worker.join().unwrap();
/// ```
pub struct Parker {
    unparker: Unparker,
    config: Config,
    governor: Cell<AnyGovernor>,
    clock: Clock,
    counters: Counters,
    /// When the last park under the predictive governor returned (its last clock read), ns:
    /// the busy time that earns it budget runs from here to the next park's first clock read.
    /// Fast paths (a token already there, a zero timeout) read no clock and leave it alone:
    /// the time they take counts as busy, which it is.
    last_exit_ns: Cell<u64>,
    /// The futex sleep's wake cost, ns: an average of how late timed waits (the predictive
    /// governor's timers) got the thread running after their due time. A wake by an unpark
    /// costs about the same (the scheduler's wake-up, the idle CPU's exit), but measuring it
    /// would need a clock read in `unpark`; until a timer has fired this is 0 (unknown).
    wake_ns: Cell<u64>,
}

// A park never runs code of its caller's and panics nowhere (its arithmetic saturates, its
// system calls report errors as values), so no unwinding can leave the parker's cells half
// updated: observing a parker after a caught panic is as safe as crossbeam's, which is
// `RefUnwindSafe` too. (The cells are what keeps it from being so automatically.)
impl RefUnwindSafe for Parker {}

/// Unparks a [`Parker`]: `Clone + Send + Sync`, from any thread.
///
/// ```
/// use std::time::Duration;
/// use haltpoll_park::Parker;
/// let p = Parker::new();
/// let u = p.unparker().clone();
/// u.unpark();
/// u.unpark(); // tokens do not accumulate
/// assert!(p.park_timeout_unparked(Duration::ZERO));
/// assert!(!p.park_timeout_unparked(Duration::ZERO));
/// ```
#[derive(Clone)]
pub struct Unparker {
    inner: Arc<Inner>,
}

impl Parker {
    /// A parker with the [default parameters](crate::DEFAULT_PARAMS), polling unless this
    /// process may run on only one CPU.
    pub fn new() -> Parker {
        Builder::new().build().expect("the default parameters are valid")
    }

    /// A [`Builder`] to choose the governor's parameters, a latency limit, and more.
    pub fn builder() -> Builder {
        Builder::new()
    }

    pub(crate) fn with(config: Config, governor: AnyGovernor) -> Parker {
        let inner = Inner { count_unparks: config.count_unparks, ..Inner::default() };
        // The owner is running: it will look at the token before it sleeps.
        let _ = inner.flags.set_polling_and_test();
        Parker {
            unparker: Unparker { inner: Arc::new(inner) },
            config,
            governor: Cell::new(governor),
            clock: Clock::new(),
            counters: Counters::default(),
            last_exit_ns: Cell::new(0),
            wake_ns: Cell::new(0),
        }
    }

    /// The unparker of this parker; clone it to hand it to other threads.
    pub fn unparker(&self) -> &Unparker {
        &self.unparker
    }

    /// Waits for the token and consumes it: at once if it is there, else after polling for
    /// the governor's window, else asleep until an unpark.
    ///
    /// ```
    /// use haltpoll_park::Parker;
    /// let p = Parker::new();
    /// p.unparker().unpark();
    /// p.park(); // consumed the token
    /// assert_eq!(p.stats().immediate, 1);
    /// ```
    #[inline]
    pub fn park(&self) {
        let woken = self.park_until(None, &mut Token);
        debug_assert!(woken, "a park without deadline returns only with the token");
    }

    /// Like [`park`](Self::park), but returns after `timeout` at the latest (std's and
    /// crossbeam's signature; [`park_timeout_unparked`](Self::park_timeout_unparked) also says
    /// whether the token came).
    ///
    /// ```
    /// use std::time::Duration;
    /// use haltpoll_park::Parker;
    /// let p = Parker::new();
    /// p.park_timeout(Duration::from_micros(10)); // no token: returns after 10 us
    /// ```
    #[inline]
    pub fn park_timeout(&self, timeout: Duration) {
        let _ = self.park_timeout_unparked(timeout);
    }

    /// [`park_timeout`](Self::park_timeout) that returns true if it consumed the token, false
    /// if the time ran out first.
    ///
    /// ```
    /// use std::time::Duration;
    /// use haltpoll_park::Parker;
    /// let p = Parker::new();
    /// assert!(!p.park_timeout_unparked(Duration::from_micros(10)));
    /// p.unparker().unpark();
    /// assert!(p.park_timeout_unparked(Duration::from_secs(1)));
    /// ```
    #[inline]
    pub fn park_timeout_unparked(&self, timeout: Duration) -> bool {
        self.park_until(Some(self.deadline_after(timeout)), &mut Token)
    }

    /// The deadline `timeout` from now, in ns on the parker's clock. A zero timeout gives 0,
    /// the parker's birth: passed without reading the clock.
    #[inline]
    fn deadline_after(&self, timeout: Duration) -> u64 {
        if timeout.is_zero() {
            return 0;
        }
        let timeout_ns = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
        self.clock.now_ns().saturating_add(timeout_ns)
    }

    /// Like [`park`](Self::park), but returns at `deadline` at the latest (std's and
    /// crossbeam's signature; [`park_deadline_unparked`](Self::park_deadline_unparked) also
    /// says whether the token came).
    pub fn park_deadline(&self, deadline: Instant) {
        let _ = self.park_deadline_unparked(deadline);
    }

    /// [`park_deadline`](Self::park_deadline) that returns true if it consumed the token.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use haltpoll_park::Parker;
    /// let p = Parker::new();
    /// let deadline = Instant::now() + Duration::from_micros(50);
    /// assert!(!p.park_deadline_unparked(deadline));
    /// assert!(Instant::now() >= deadline);
    /// ```
    pub fn park_deadline_unparked(&self, deadline: Instant) -> bool {
        self.park_until(Some(self.deadline_at(deadline)), &mut Token)
    }

    /// Waits until `ready()` is true: the loop `while !ready() { parker.park() }`, but faster.
    /// While the governor says poll, the poll watches `ready()` itself rather than the token,
    /// and returns as soon as it is true, without waiting for the unpark that follows. A waiter
    /// that watches the token sees the message one cache-line transfer later (the token's line
    /// first, then the message's): on the measuring machine that transfer is most of what a
    /// parker's wake costs over spinning on the message (`haltpoll bench threads`, the
    /// `haltpoll` and `haltpoll-wait-until` rows).
    ///
    /// The contract is the loop's: whoever makes `ready()` true calls
    /// [`unpark`](Unparker::unpark) after it, because a sleeping waiter wakes only for the token.
    /// `ready` is called once per relax hint while polling, so it should be a load or two with
    /// no side effects. An unpark whose token the wait did not need stays for the next park,
    /// which then returns at once ([`Stats::immediate`](crate::Stats::immediate)); the next
    /// `wait_until` takes it, finds `ready()` false and waits on.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use haltpoll_park::Parker;
    ///
    /// let parker = Parker::new();
    /// let unparker = parker.unparker().clone();
    /// let done = Arc::new(AtomicBool::new(false));
    /// let worker = {
    ///     let done = done.clone();
    ///     std::thread::spawn(move || {
    ///         done.store(true, Ordering::Release);
    ///         unparker.unpark(); // after the condition, always
    ///     })
    /// };
    /// parker.wait_until(|| done.load(Ordering::Acquire));
    /// worker.join().unwrap();
    /// ```
    #[inline]
    pub fn wait_until(&self, ready: impl FnMut() -> bool) {
        let mut condition = Condition(ready);
        while !condition.ready() {
            self.park_until(None, &mut condition);
        }
    }

    /// [`wait_until`](Self::wait_until) for at most `timeout`; returns whether `ready()` became
    /// true (it is checked once more when the time is up).
    ///
    /// ```
    /// use std::time::Duration;
    /// use haltpoll_park::Parker;
    /// let p = Parker::new();
    /// assert!(!p.wait_until_timeout(|| false, Duration::from_micros(20)));
    /// assert!(p.wait_until_timeout(|| true, Duration::ZERO));
    /// ```
    pub fn wait_until_timeout(&self, ready: impl FnMut() -> bool, timeout: Duration) -> bool {
        self.wait_until_ns(ready, self.deadline_after(timeout))
    }

    /// [`wait_until`](Self::wait_until) until `deadline` at the latest; returns whether
    /// `ready()` became true.
    pub fn wait_until_deadline(&self, ready: impl FnMut() -> bool, deadline: Instant) -> bool {
        self.wait_until_ns(ready, self.deadline_at(deadline))
    }

    fn wait_until_ns(&self, ready: impl FnMut() -> bool, deadline: u64) -> bool {
        let mut condition = Condition(ready);
        loop {
            if condition.ready() {
                return true;
            }
            // No token: the deadline passed (or the poll saw `ready()`, checked above next).
            if !self.park_until(Some(deadline), &mut condition) && self.clock.now_ns() >= deadline {
                return condition.ready();
            }
        }
    }

    /// `deadline` in ns on the parker's clock.
    fn deadline_at(&self, deadline: Instant) -> u64 {
        #[cfg(not(loom))]
        let deadline_ns = self.clock.ns_of(deadline);
        // The loom clock is fake: map the real remaining time onto it.
        #[cfg(loom)]
        let deadline_ns = {
            let remaining = deadline.saturating_duration_since(Instant::now());
            self.clock.now_ns().saturating_add(u64::try_from(remaining.as_nanos()).unwrap_or(u64::MAX))
        };
        deadline_ns
    }

    /// The parker as a raw pointer, to carry through an FFI boundary or a `*const ()` slot;
    /// [`Parker::from_raw`] takes it back. Leaks the parker if it is never taken back.
    ///
    /// ```
    /// use haltpoll_park::Parker;
    /// let raw = Parker::into_raw(Parker::new());
    /// // SAFETY: `raw` came from `into_raw` and is taken back once.
    /// let p = unsafe { Parker::from_raw(raw) };
    /// p.unparker().unpark();
    /// p.park();
    /// ```
    #[cfg(not(loom))]
    pub fn into_raw(this: Parker) -> *const () {
        Box::into_raw(Box::new(this)).cast_const().cast()
    }

    /// Takes back a parker that [`Parker::into_raw`] made a pointer of.
    ///
    /// # Safety
    ///
    /// `ptr` must come from [`Parker::into_raw`], and be taken back only once.
    #[cfg(not(loom))]
    pub unsafe fn from_raw(ptr: *const ()) -> Parker {
        // SAFETY: the caller promises `ptr` is the box `into_raw` leaked, not yet taken back,
        // so it points to a live, owned `Parker` allocated by `Box`.
        *unsafe { Box::from_raw(ptr.cast_mut().cast::<Parker>()) }
    }

    /// Statistics since the parker was made.
    pub fn stats(&self) -> Stats {
        let c = &self.counters;
        let inner = &self.unparker.inner;
        Stats {
            parks: c.immediate.get() + c.poll_hits.get() + c.late_hits.get() + c.blocks.get() + c.expired.get(),
            immediate: c.immediate.get(),
            poll_hits: c.poll_hits.get(),
            poll_timeouts: c.poll_timeouts.get(),
            late_hits: c.late_hits.get(),
            blocks: c.blocks.get(),
            timeouts: c.expired.get() + c.blocked_timeouts.get(),
            unparks: inner.count_unparks.then(|| inner.unparks.load(Relaxed)),
            futex_wakes: inner.futex_wakes.load(Relaxed),
        }
    }

    /// The governor's current poll window, ns (Linux's `poll_limit_ns`, the predictive
    /// governor's planned window): how long the next park may poll.
    pub fn poll_limit_ns(&self) -> u64 {
        self.governor.get().window_ns()
    }

    /// Whether this parker polls at all (see [`Polling`](crate::Polling)).
    pub fn polls(&self) -> bool {
        self.config.polling
    }

    /// Makes the loom model's futex return `n` times without a wake (spurious returns).
    #[cfg(loom)]
    #[doc(hidden)]
    pub fn spurious_futex_returns(&self, n: usize) {
        self.unparker.inner.futex.set_spurious_returns(n);
    }

    /// The flags word now, for the loom models' invariants.
    #[cfg(loom)]
    #[doc(hidden)]
    pub fn flags_now(&self) -> u32 {
        self.unparker.inner.flags.load()
    }

    /// One park; `deadline` in ns on `self.clock`. True if the token was consumed. A poll ends
    /// as the wakeup says: on the token, or on the condition (leaving any token for later).
    /// The fast paths inline into the caller; waiting does not.
    #[inline]
    fn park_until<W: Wakeup>(&self, deadline: Option<u64>, wakeup: &mut W) -> bool {
        let flags = &self.unparker.inner.flags;
        // Step 1. A plain load first: when no token is there, an RMW would take the cache
        // line away from an unparker for nothing (and, measured, a take right after the
        // unpark's RMW costs more than the load and the take). Only this thread clears the
        // token, so one seen here is still there for the take.
        if flags.need_resched() {
            self.counters.immediate.inc();
            return flags.take_need_resched();
        }
        if deadline == Some(0) {
            // A zero timeout. A token that came since the load above is left for the next
            // park: this park is ordered before its unpark.
            self.counters.expired.inc();
            return false;
        }
        self.wait(deadline, wakeup)
    }

    /// A park that found no token: poll and block under the governor, or block at once.
    fn wait<W: Wakeup>(&self, deadline: Option<u64>, wakeup: &mut W) -> bool {
        if deadline.is_some_and(|d| self.clock.now_ns() >= d) {
            self.counters.expired.inc();
            false
        } else if self.config.polling {
            self.poll_then_block(deadline, wakeup)
        } else {
            self.block(deadline).woken
        }
    }

    /// Steps 2 to 6 under the governor the builder chose, each monomorphised.
    fn poll_then_block<W: Wakeup>(&self, deadline: Option<u64>, wakeup: &mut W) -> bool {
        match self.governor.get() {
            AnyGovernor::Linux(mut gov) => {
                let woken = self.idle(&mut gov, deadline, wakeup).0;
                self.governor.set(AnyGovernor::Linux(gov));
                woken
            }
            AnyGovernor::Predictive(mut gov) => {
                let woken = self.idle(&mut gov, deadline, wakeup).0;
                self.governor.set(AnyGovernor::Predictive(gov));
                woken
            }
        }
    }

    /// Steps 2 to 6 through the core's idle loop: select (with the busy time since the last
    /// park, for a governor that times its periods), poll, block, or block with a timer then
    /// poll, reflect. Returns whether the token was consumed, and the period's outcome.
    fn idle<G: IdleGovernor, W: Wakeup>(&self, gov: &mut G, deadline: Option<u64>, wakeup: &mut W) -> (bool, Outcome) {
        let mut park = Park { parker: self, wakeup, deadline, woken: false };
        let entered = idle::enter(gov, &mut park, self.config.latency_req);
        if let Some(exit) = entered.exit_ns {
            self.last_exit_ns.set(exit);
        }
        let mut woken = park.woken;
        if entered.outcome.end == (End::Deadline { polling: true }) {
            // The deadline passed while polling. A token that came after the last look is as
            // good as one in time (and its unpark saw POLLING set: a late hit).
            woken = self.unparker.inner.flags.take_need_resched();
            let ended = if woken { &self.counters.late_hits } else { &self.counters.expired };
            ended.inc();
        }
        (woken, entered.outcome)
    }

    /// `Decision::TimerThenPoll` with the timer due at `due`, through the idle loop, for the
    /// tests of the timed wait.
    #[cfg(test)]
    fn timer_then_poll<W: Wakeup>(&self, due: u64, window_ns: u64, deadline: Option<u64>, wakeup: &mut W) -> Period {
        let timer_ns = due.saturating_sub(self.clock.now_ns());
        let mut gov = Fixed(Decision::TimerThenPoll { timer_ns, window_ns });
        let (woken, outcome) = self.idle(&mut gov, deadline, wakeup);
        Period { woken, poll_ns: outcome.poll_ns, caught: outcome.caught }
    }

    /// Steps 3 to 6, counted in the statistics as one park's end.
    fn block(&self, deadline: Option<u64>) -> Blocked {
        let blocked = self.sleep(deadline);
        self.count_block(&blocked);
        blocked
    }

    /// Counts a park that ended in `blocked`.
    fn count_block(&self, blocked: &Blocked) {
        let c = &self.counters;
        if blocked.late {
            c.late_hits.inc();
        } else {
            c.blocks.inc();
            if !blocked.woken {
                c.blocked_timeouts.inc();
            }
        }
    }

    /// Steps 3 to 6: clear POLLING, sleep until the token or the deadline, set POLLING again
    /// and take the token. Counts nothing (the caller knows how the park ends).
    fn sleep(&self, deadline: Option<u64>) -> Blocked {
        // Step 3. One RMW: an unpark ordered before it left the token, which we see here; one
        // ordered after it sees POLLING clear and wakes the futex.
        if self.unparker.inner.flags.clear_polling_and_test() {
            return self.late_token();
        }
        self.sleep_cleared(deadline)
    }

    /// Step 3 found the token: running again (POLLING set), take it.
    fn late_token(&self) -> Blocked {
        let flags = &self.unparker.inner.flags;
        let _ = flags.set_polling_and_test();
        Blocked { woken: flags.take_need_resched(), blocked_ns: 0, late: true }
    }

    /// Steps 4 to 6, after a step 3 that found no token.
    fn sleep_cleared(&self, deadline: Option<u64>) -> Blocked {
        let inner = &*self.unparker.inner;
        let flags = &inner.flags;
        let start = self.clock.now_ns();
        loop {
            let timeout = match deadline {
                None => None,
                Some(d) => {
                    let now = self.clock.now_ns();
                    if now >= d {
                        break;
                    }
                    Some(Duration::from_nanos(d - now))
                }
            };
            // Step 4. Sleep only while the word is 0: POLLING clear (we cleared it and only
            // we set it) and no token. A token set since step 3 makes this return at once.
            inner.futex.wait(flags, 0, timeout);
            // Step 5. Woken, or a spurious return, a signal, a wake meant for an earlier park
            // of ours that arrived late, the timeout: only the token counts.
            if flags.need_resched() {
                break;
            }
        }
        let blocked_ns = self.clock.now_ns().saturating_sub(start);
        // Step 6. Running again: POLLING first, so that unparks from now on skip the syscall,
        // then the token (acquire: the unparkers' writes are visible from here).
        let _ = flags.set_polling_and_test();
        let woken = flags.take_need_resched();
        Blocked { woken, blocked_ns, late: false }
    }
}

/// One park's side of the core's idle loop: the parker's flags, clock and futex, the wakeup
/// its poll looks for, the park's deadline, and whether the token was consumed.
struct Park<'a, W> {
    parker: &'a Parker,
    wakeup: &'a mut W,
    deadline: Option<u64>,
    woken: bool,
}

impl<W: Wakeup> Mechanism for Park<'_, W> {
    fn now_ns(&mut self) -> u64 {
        self.parker.clock.now_ns()
    }

    /// POLLING stays set while the owner runs, so there is nothing to set: the poll's first
    /// look sees a token already there (an RMW here would take the cache line from an
    /// unparker for nothing).
    fn set_polling_and_test(&mut self) -> bool {
        false
    }

    /// Step 3.
    fn clear_polling_and_test(&mut self) -> bool {
        self.parker.unparker.inner.flags.clear_polling_and_test()
    }

    /// Step 2: spin on the wakeup with POLLING set, so a hit costs nobody a syscall.
    fn poll(&mut self, limit_ns: u64, times_hits: bool) -> PollOutcome {
        let (flags, c) = (&self.parker.unparker.inner.flags, &self.parker.counters);
        // Linux's governor learns nothing from a poll that caught its wakeup, so its hit
        // returns without a clock read (20 ns of the wake, measured).
        let mut spin = Spin::new(flags, &self.parker.clock, &mut *self.wakeup, times_hits);
        let out = poll(&mut spin, limit_ns);
        if out.timed_out {
            c.poll_timeouts.inc();
        } else {
            // The token first, the bookkeeping after: the caller waits for the return, not
            // for the governor.
            self.woken = !spin.ready_hit && flags.take_need_resched();
            c.poll_hits.inc();
        }
        out
    }

    /// Steps 4 to 6, until the token, the timer (the governor's) or the park's deadline. A
    /// timer that fired before any token is no park's end and is not counted.
    fn halt(&mut self, timer_ns: Option<u64>) -> Halted {
        let until = match (timer_ns, self.deadline) {
            (Some(t), Some(d)) => Some(t.min(d)),
            (t, d) => t.or(d),
        };
        let blocked = self.parker.sleep_cleared(until);
        self.woken = blocked.woken;
        let end = if blocked.woken {
            End::Wakeup
        } else if timer_ns.is_some_and(|t| self.deadline.is_none_or(|d| d > t)) {
            return Halted { end: End::Timer, ns: blocked.blocked_ns };
        } else {
            End::Deadline { polling: false }
        };
        self.parker.count_block(&blocked);
        Halted { end, ns: blocked.blocked_ns }
    }

    fn deadline_ns(&self) -> Option<u64> {
        self.deadline
    }

    /// Step 3 found the token: a late hit.
    fn halt_called_off(&mut self) -> u64 {
        let blocked = self.parker.late_token();
        self.woken = blocked.woken;
        self.parker.count_block(&blocked);
        0
    }

    /// How late the timer got the thread running is the futex sleep's wake cost.
    fn timer_fired(&mut self, due_ns: u64) {
        let late_ns = self.parker.clock.now_ns().saturating_sub(due_ns);
        let avg = self.parker.wake_ns.get();
        self.parker.wake_ns.set(if avg == 0 { late_ns } else { avg - avg / 4 + late_ns / 4 });
    }

    /// From the last park's return (its last clock read) to this one's first.
    fn busy_ns(&mut self, entry_ns: u64) -> u64 {
        entry_ns.saturating_sub(self.parker.last_exit_ns.get())
    }

    /// A period that ended blocked: the futex sleep's wake cost as measured so far.
    fn halt_wake_ns(&mut self, _entry_ns: u64) -> u64 {
        self.parker.wake_ns.get()
    }

    /// What a block costs, as far as the parker measures it: the futex sleep's wake-up (the
    /// unparker's syscall and the scheduler's wake-up are in it); `None` until a timer has
    /// measured it, so the governor keeps its parameter.
    fn halt_cost_ns(&mut self) -> Option<u64> {
        let wake_ns = self.parker.wake_ns.get();
        (wake_ns > 0).then_some(wake_ns)
    }
}

/// A governor that always decides the same, for the tests of one decision's mechanics.
#[cfg(test)]
struct Fixed(Decision);

#[cfg(test)]
impl IdleGovernor for Fixed {
    fn select(&mut self, _latency_req: LatencyReq, _busy_ns: u64) -> Decision {
        self.0
    }

    fn reflect(&mut self, _outcome: &Outcome) -> haltpoll::Adjustment {
        haltpoll::Adjustment::Unchanged
    }

    fn window_ns(&self) -> u64 {
        self.0.window_ns()
    }
}

impl Default for Parker {
    fn default() -> Parker {
        Parker::new()
    }
}

impl fmt::Debug for Parker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Parker")
            .field("flags", &self.unparker.inner.flags.load())
            .field("polls", &self.config.polling)
            .field("poll_limit_ns", &self.poll_limit_ns())
            .finish_non_exhaustive()
    }
}

impl Unparker {
    /// Makes the token available: the parked thread wakes, or its next park returns at once.
    ///
    /// One swap on the parker's word (crossbeam's unpark is one swap too), plus a wake system
    /// call only when the parker's owner has announced that it sleeps (POLLING clear) and no
    /// other unpark's wake is already on its way.
    #[inline]
    pub fn unpark(&self) {
        let inner = &*self.inner;
        if inner.count_unparks {
            // Counted before the token is set, so a park that returns with it sees it counted.
            inner.unparks.fetch_add(1, Relaxed);
        }
        // A release RMW even when the token is set already: it orders this thread's writes
        // before the park that consumes the token (see the module docs).
        if inner.flags.wake_by_swap() == Kick::Needed {
            inner.kick();
        }
    }

    /// The unparker as a raw pointer (one reference to what it shares with its parker);
    /// [`Unparker::from_raw`] takes it back. Leaks the reference if it is never taken back.
    ///
    /// ```
    /// use haltpoll_park::{Parker, Unparker};
    /// let p = Parker::new();
    /// let raw = Unparker::into_raw(p.unparker().clone());
    /// // SAFETY: `raw` came from `into_raw` and is taken back once.
    /// let u = unsafe { Unparker::from_raw(raw) };
    /// u.unpark();
    /// p.park();
    /// ```
    #[cfg(not(loom))]
    pub fn into_raw(this: Unparker) -> *const () {
        Arc::into_raw(this.inner).cast()
    }

    /// Takes back an unparker that [`Unparker::into_raw`] made a pointer of.
    ///
    /// # Safety
    ///
    /// `ptr` must come from [`Unparker::into_raw`], and be taken back only once.
    #[cfg(not(loom))]
    pub unsafe fn from_raw(ptr: *const ()) -> Unparker {
        // SAFETY: the caller promises `ptr` is what `Arc::into_raw` returned for an `Inner`,
        // whose reference it carries and hands back here once.
        Unparker { inner: unsafe { Arc::from_raw(ptr.cast::<Inner>()) } }
    }
}

impl Inner {
    /// The wake system call, out of the unpark's inlined fast path.
    #[cold]
    fn kick(&self) {
        self.futex_wakes.fetch_add(1, Relaxed);
        self.futex.wake_one(&self.flags);
    }
}

impl fmt::Debug for Unparker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Unparker").field("flags", &self.inner.flags.load()).finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::{DEFAULT_PARAMS, Polling};
    use haltpoll::Params;
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    use std::thread;

    fn forced() -> Parker {
        Parker::builder().polling(Polling::Force).build().unwrap()
    }

    // The tests below that hand a token from another thread do not guess with sleeps where
    // the parker is: the other thread waits until the parker says where it is (asleep, or
    // polling), so what they assert holds whatever the scheduler does.

    /// Unparks `p` from another thread once `p` is asleep (POLLING clear: only a block clears
    /// it) and `after` more has passed, so the block lasts at least `after`.
    fn unpark_once_blocked(p: &Parker, after: Duration) -> thread::JoinHandle<()> {
        let u = p.unparker().clone();
        thread::spawn(move || {
            while u.inner.flags.load() & haltpoll::wake::POLLING != 0 {
                thread::yield_now();
            }
            thread::sleep(after);
            u.unpark();
        })
    }

    /// A park's wakeup (the token) that says when the poll first looks at it.
    struct Announce(Arc<AtomicBool>);

    impl Wakeup for Announce {
        const WATCHES_TOKEN: bool = true;
        fn ready(&mut self) -> bool {
            self.0.store(true, SeqCst);
            false
        }
    }

    /// A wakeup for a park of `p`, and a thread that unparks `p` once that park polls.
    fn unpark_once_polling(p: &Parker) -> (Announce, thread::JoinHandle<()>) {
        let (u, polling) = (p.unparker().clone(), Arc::new(AtomicBool::new(false)));
        let seen = polling.clone();
        let t = thread::spawn(move || {
            while !seen.load(SeqCst) {
                thread::yield_now();
            }
            u.unpark();
        });
        (Announce(polling), t)
    }

    #[test]
    fn unparkers_go_anywhere_and_parkers_move() {
        fn send_sync<T: Send + Sync + Clone + 'static>() {}
        fn send<T: Send + 'static>() {}
        fn unwind_safe<T: std::panic::UnwindSafe + RefUnwindSafe>() {}
        send_sync::<Unparker>();
        send::<Parker>();
        unwind_safe::<Parker>();
        unwind_safe::<Unparker>();
    }

    #[test]
    fn starts_running_with_no_token() {
        let p = forced();
        assert_eq!(p.unparker.inner.flags.load(), haltpoll::wake::POLLING);
        assert!(!p.park_timeout_unparked(Duration::ZERO));
        assert_eq!(p.unparker.inner.flags.load(), haltpoll::wake::POLLING, "a timeout restores POLLING");
    }

    #[test]
    fn unpark_while_running_skips_the_syscall_and_the_park_is_immediate() {
        let p = Parker::builder().polling(Polling::Force).count_unparks(true).build().unwrap();
        p.unparker().unpark();
        p.park();
        let s = p.stats();
        assert_eq!((s.immediate, s.unparks, s.futex_wakes), (1, Some(1), 0));
        assert_eq!(s.wakes_without_syscall(), 1);
        assert_eq!(forced().stats().unparks, None, "not counted unless asked");
    }

    #[test]
    fn a_zero_timeout_takes_a_token_that_is_there_and_nothing_else() {
        let p = forced();
        assert!(!p.park_timeout_unparked(Duration::ZERO));
        p.unparker().unpark();
        assert!(p.park_timeout_unparked(Duration::ZERO));
        assert!(!p.park_timeout_unparked(Duration::ZERO));
        let s = p.stats();
        assert_eq!((s.parks, s.immediate, s.timeouts, s.blocks), (3, 1, 2, 0), "{s:?}");
    }

    #[test]
    fn raw_round_trips_keep_the_token_and_the_state() {
        let p = forced();
        p.unparker().unpark();
        // SAFETY: each pointer comes from `into_raw` and is taken back once.
        let p = unsafe { Parker::from_raw(Parker::into_raw(p)) };
        assert!(p.park_timeout_unparked(Duration::ZERO), "the token survived the round trip");
        // SAFETY: as above.
        let u = unsafe { Unparker::from_raw(Unparker::into_raw(p.unparker().clone())) };
        u.unpark();
        assert!(p.park_timeout_unparked(Duration::ZERO));
        assert_eq!(p.stats().parks, 2, "the counters survived the round trip");
        drop(u);
        assert_eq!(std::sync::Arc::strong_count(&p.unparker.inner), 1, "no reference leaked");
    }

    #[test]
    fn a_wait_past_the_ceiling_leaves_the_window_at_zero() {
        let p = Parker::builder()
            .polling(Polling::Force)
            .params(Params { guest_halt_poll_ns: 100_000, grow_start: 50_000, ..DEFAULT_PARAMS })
            .build()
            .unwrap();
        // A block of at least 20 ms, 200 times the ceiling.
        let t = unpark_once_blocked(&p, Duration::from_millis(20));
        p.park();
        t.join().unwrap();
        assert_eq!(p.stats().blocks, 1);
        assert_eq!(p.poll_limit_ns(), 0, "a wait far past the ceiling does not grow the window");
    }

    // The timeouts below are long enough that the deadline has not passed when the park
    // starts waiting, but nothing depends on it: a park whose deadline passed at once does
    // not wait at all, which the assertions allow.

    #[test]
    fn a_timed_out_block_does_not_grow_the_window() {
        let p = forced();
        assert!(!p.park_timeout_unparked(Duration::from_millis(2)));
        assert_eq!(p.poll_limit_ns(), 0);
        let s = p.stats();
        assert!(s.blocks <= 1 && s.timeouts == 1, "{s:?}");
    }

    #[test]
    fn short_waits_grow_the_window_and_are_then_caught_polling() {
        // A ceiling of 4 s (about the most Linux's 32-bit parameters allow): the first wait,
        // however long the scheduler makes it, is shorter, blocks (window 0) and grows the
        // window to 2 s; the next two are unparked while they poll.
        let p = Parker::builder()
            .polling(Polling::Force)
            .params(Params { guest_halt_poll_ns: 4_000_000_000, grow_start: 2_000_000_000, ..DEFAULT_PARAMS })
            .build()
            .unwrap();
        let t = unpark_once_blocked(&p, Duration::ZERO);
        p.park();
        t.join().unwrap();
        assert_eq!(p.poll_limit_ns(), 2_000_000_000);
        for _ in 0..2 {
            let (mut polling, t) = unpark_once_polling(&p);
            assert!(p.park_until(None, &mut polling));
            t.join().unwrap();
        }
        let s = p.stats();
        assert_eq!(s.blocks, 1, "{s:?}");
        assert_eq!(s.poll_hits, 2, "{s:?}");
        assert!(s.wakes_without_syscall() >= 2, "{s:?}");
    }

    #[test]
    fn polling_off_never_polls() {
        let p = Parker::builder().polling(Polling::Off).build().unwrap();
        assert!(!p.polls());
        assert!(!p.park_timeout_unparked(Duration::from_millis(2)));
        let s = p.stats();
        assert_eq!((s.poll_timeouts, s.poll_hits, s.timeouts), (0, 0, 1), "{s:?}");
        assert!(s.blocks <= 1, "{s:?}");
    }

    #[test]
    fn latency_limit_zero_polls_until_the_deadline() {
        let p = Parker::builder().polling(Polling::Force).latency_limit(Duration::ZERO).build().unwrap();
        assert!(!p.park_timeout_unparked(Duration::from_millis(1)));
        let s = p.stats();
        assert_eq!((s.blocks, s.timeouts), (0, 1), "never blocks: {s:?}");
    }

    #[test]
    fn latency_limit_zero_polls_until_the_token() {
        let p = Parker::builder().polling(Polling::Force).latency_limit(Duration::ZERO).build().unwrap();
        // (Not "unpark 2 ms after the park starts": a park that starts late takes the token
        // at once, as a loaded qemu-user once made it.)
        let (mut polling, t) = unpark_once_polling(&p);
        assert!(p.park_until(None, &mut polling));
        t.join().unwrap();
        let s = p.stats();
        assert_eq!((s.poll_hits, s.blocks, s.futex_wakes), (1, 0, 0), "{s:?}");
    }

    #[test]
    fn park_deadline_in_the_past_returns_the_token_or_nothing() {
        let p = forced();
        let past = Instant::now();
        assert!(!p.park_deadline_unparked(past));
        p.unparker().unpark();
        assert!(p.park_deadline_unparked(past));
    }

    #[test]
    fn huge_timeouts_saturate_and_still_wake() {
        for polling in [Polling::Force, Polling::Off] {
            let p = Parker::builder().polling(polling).build().unwrap();
            let u = p.unparker().clone();
            let t = thread::spawn(move || {
                thread::sleep(Duration::from_millis(1));
                u.unpark();
            });
            assert!(p.park_timeout_unparked(Duration::MAX));
            t.join().unwrap();
        }
    }

    /// Unparks `p` from another thread after `after`.
    fn unpark_after(p: &Parker, after: Duration) -> thread::JoinHandle<()> {
        let u = p.unparker().clone();
        thread::spawn(move || {
            thread::sleep(after);
            u.unpark();
        })
    }

    fn predictive() -> Parker {
        let params = haltpoll::PredictiveParams { poll_budget_ppm: 1_000_000, ..haltpoll::PredictiveParams::DEFAULT };
        Parker::builder()
            .polling(Polling::Force)
            .governor(haltpoll::GovernorParams::Predictive(params.validate().unwrap()))
            .build()
            .unwrap()
    }

    #[test]
    fn predictive_keeps_the_token_semantics_and_timeouts() {
        let p = predictive();
        assert!(matches!(p.governor.get(), AnyGovernor::Predictive(_)));
        let u = p.unparker().clone();
        assert!(!p.park_timeout_unparked(Duration::ZERO));
        u.unpark();
        u.unpark(); // tokens do not accumulate
        assert!(p.park_timeout_unparked(Duration::ZERO));
        assert!(!p.park_timeout_unparked(Duration::from_millis(2)), "no token: the timeout ends it");
        let deadline = Instant::now() + Duration::from_micros(300);
        assert!(!p.park_deadline_unparked(deadline));
        assert!(Instant::now() >= deadline);
        // Unparks from another thread, each consumed by one park. Each unpark waits for the
        // park before it to return: two unparks while the owner runs leave one token (tokens
        // do not accumulate), and the last park would wait for ever (as it did under miri).
        let returned = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = returned.clone();
        let t = thread::spawn(move || {
            for i in 0..50 {
                while seen.load(SeqCst) < i {
                    thread::yield_now();
                }
                thread::sleep(Duration::from_micros(100));
                u.unpark();
            }
        });
        for _ in 0..50 {
            p.park();
            returned.fetch_add(1, SeqCst);
        }
        t.join().unwrap();
        let s = p.stats();
        assert_eq!(s.parks - s.timeouts, 51, "{s:?}");
        assert_eq!(s.timeouts, 3, "{s:?}");
        assert!(p.last_exit_ns.get() > 0, "the slow paths record when they returned");
    }

    #[test]
    fn predictive_under_a_latency_limit_of_zero_polls_until_the_token() {
        let params = haltpoll::ValidPredictiveParams::DEFAULT;
        let p = Parker::builder()
            .polling(Polling::Force)
            .latency_limit(Duration::ZERO)
            .governor(haltpoll::GovernorParams::Predictive(params))
            .build()
            .unwrap();
        let (mut polling, t) = unpark_once_polling(&p);
        assert!(p.park_until(None, &mut polling));
        t.join().unwrap();
        let s = p.stats();
        assert_eq!((s.poll_hits, s.blocks, s.futex_wakes), (1, 0, 0), "{s:?}");
    }

    #[test]
    fn timer_then_poll_catches_a_wakeup_in_its_window() {
        let p = predictive();
        let start = p.clock.now_ns();
        // The timer fires 1 ms from now; the unpark comes once the poll that follows looks,
        // inside its 4 s window.
        let (mut polling, t) = unpark_once_polling(&p);
        let period = p.timer_then_poll(start + 1_000_000, 4_000_000_000, None, &mut polling);
        t.join().unwrap();
        assert!(period.woken && period.caught, "found polling");
        assert!(period.poll_ns > 0);
        assert!(p.wake_ns.get() > 0, "the timer's wake cost was measured");
        let s = p.stats();
        assert_eq!((s.poll_hits, s.blocks, s.futex_wakes), (1, 0, 0), "{s:?}");
    }

    #[test]
    fn timer_then_poll_woken_during_the_timed_wait_is_not_caught() {
        let p = predictive();
        let start = p.clock.now_ns();
        let t = unpark_after(&p, Duration::from_millis(2));
        // A timer 10 s away: only the unpark ends the wait.
        let period = p.timer_then_poll(start + 10_000_000_000, 1_000, None, &mut Token);
        t.join().unwrap();
        assert!(period.woken && !period.caught && period.poll_ns == 0);
        assert_eq!(p.wake_ns.get(), 0, "no timer fired");
        let s = p.stats();
        assert_eq!(s.poll_hits, 0, "{s:?}");
        assert_eq!(s.blocks + s.late_hits, 1, "{s:?}");
    }

    #[test]
    fn timer_then_poll_then_blocks_until_the_token_or_the_deadline() {
        let p = predictive();
        let start = p.clock.now_ns();
        // Timer at 1 ms, a 100 us poll, then the wait until the deadline at 50 ms: no token.
        // (The deadline is far from the poll's end so that a slow run, miri's, still blocks.)
        let period = p.timer_then_poll(start + 1_000_000, 100_000, Some(start + 50_000_000), &mut Token);
        assert!(!period.woken && !period.caught);
        assert!(p.clock.now_ns() >= start + 50_000_000);
        let s = p.stats();
        // (A thread the scheduler held past the deadline before it could block ends without
        // blocking.)
        assert_eq!((s.poll_timeouts, s.timeouts), (1, 1), "{s:?}");
        assert!(s.blocks <= 1, "{s:?}");
        // A deadline before the timer: the timed wait ends the park, no poll.
        let start = p.clock.now_ns();
        let period = p.timer_then_poll(start + 5_000_000, 100_000, Some(start + 1_000_000), &mut Token);
        assert!(!period.woken && period.poll_ns == 0);
        assert_eq!(p.stats().poll_timeouts, 1);
    }

    /// After `after`, sets `ready`; after `then` more, unparks.
    fn ready_then_unpark(
        p: &Parker,
        ready: &Arc<AtomicBool>,
        after: Duration,
        then: Duration,
    ) -> thread::JoinHandle<()> {
        let (u, ready) = (p.unparker().clone(), ready.clone());
        thread::spawn(move || {
            thread::sleep(after);
            ready.store(true, SeqCst);
            thread::sleep(then);
            u.unpark();
        })
    }

    #[test]
    fn wait_until_returns_on_the_condition_and_leaves_the_token() {
        // Poll only. The condition's second look is inside the poll (the first is before the
        // park): an unpark there sets the token while the thread polls, and the third look
        // ends the wait. One thread: the order is the test's, not the scheduler's.
        let p = Parker::builder().polling(Polling::Force).latency_limit(Duration::ZERO).build().unwrap();
        let u = p.unparker().clone();
        let mut looks = 0;
        p.wait_until(|| {
            looks += 1;
            if looks == 2 {
                u.unpark();
            }
            looks > 2
        });
        let token = p.unparker.inner.flags.load() & haltpoll::wake::NEED_RESCHED;
        let s = p.stats();
        assert_eq!(token, haltpoll::wake::NEED_RESCHED, "returned on the condition, the token left: {s:?}");
        assert_eq!((s.parks, s.poll_hits, s.blocks, s.futex_wakes), (1, 1, 0, 0), "{s:?}");
        assert!(p.park_timeout_unparked(Duration::ZERO), "the unpark's token waits for the next park");
        let parks = p.stats().parks;
        p.wait_until(|| true);
        assert_eq!(p.stats().parks, parks, "a condition that holds needs no park");
    }

    #[test]
    fn wait_until_sleeps_on_the_token_when_it_does_not_poll() {
        let p = Parker::builder().polling(Polling::Off).build().unwrap();
        let ready = Arc::new(AtomicBool::new(false));
        let t = ready_then_unpark(&p, &ready, Duration::from_millis(2), Duration::ZERO);
        p.wait_until(|| ready.load(SeqCst));
        t.join().unwrap();
        let s = p.stats();
        assert_eq!((s.poll_hits, s.poll_timeouts), (0, 0), "never polls: {s:?}");
    }

    #[test]
    fn wait_until_timeouts_say_whether_the_condition_came() {
        for p in [forced(), predictive()] {
            assert!(!p.wait_until_timeout(|| false, Duration::from_micros(300)));
            let deadline = Instant::now() + Duration::from_micros(300);
            assert!(!p.wait_until_deadline(|| false, deadline));
            assert!(Instant::now() >= deadline);
            assert!(!p.wait_until_timeout(|| false, Duration::ZERO));
            // A stray token does not end the wait early.
            p.unparker().unpark();
            let start = Instant::now();
            assert!(!p.wait_until_timeout(|| false, Duration::from_millis(2)));
            assert!(start.elapsed() >= Duration::from_millis(2));
            let ready = Arc::new(AtomicBool::new(false));
            let t = ready_then_unpark(&p, &ready, Duration::ZERO, Duration::from_millis(1));
            assert!(p.wait_until_timeout(|| ready.load(SeqCst), Duration::from_secs(60)));
            t.join().unwrap();
        }
    }

    #[test]
    fn debug_shows_the_state() {
        let p = forced();
        let s = format!("{p:?} {:?}", p.unparker());
        assert!(s.contains("poll_limit_ns: 0") && s.contains("flags: 1"), "{s}");
    }
}
