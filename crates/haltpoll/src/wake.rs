//! The wake protocol: a flags word per CPU with POLLING and NEED_RESCHED, so that a waker can
//! skip the IPI when the target is polling and will see NEED_RESCHED by itself.
//!
//! Both sides work on the same word with read-modify-write operations, and every RMW on one
//! atomic reads the latest value in that atomic's modification order. That single order is what
//! makes the protocol safe: whichever of "poller clears POLLING" and "waker sets NEED_RESCHED"
//! comes first, the other one's RMW returns its effect.
//! - waker first: the poller's clear returns NEED_RESCHED set, so it does not halt;
//! - poller first: the waker's set returns POLLING clear, so it sends the IPI, which is pending
//!   when the poller halts (`sti; hlt` takes it) and wakes it.
//!
//! The same holds for "poller sets POLLING" against "waker sets NEED_RESCHED", which is why the
//! poller tests NEED_RESCHED in the value its set returns ("set-then-test"), never in a separate
//! load. Linux orders each side's set and test with a full barrier; the fused RMW gives the same
//! guarantee here without one.
//!
//! Release/acquire on the RMWs orders the data around the flag: what the waker wrote before
//! waking (a message, a queued task) is visible to the poller once it sees NEED_RESCHED.

#[cfg(not(loom))]
use core::sync::atomic::AtomicU32;
use core::sync::atomic::Ordering::{Acquire, Relaxed, Release};
#[cfg(loom)]
use loom::sync::atomic::AtomicU32;

/// Flag: the CPU is polling (or otherwise certain to look at [`NEED_RESCHED`] before it sleeps),
/// so a waker need not interrupt it.
pub const POLLING: u32 = 1 << 0;
/// Flag: there is work for the CPU; whoever sees it set must stop idling.
pub const NEED_RESCHED: u32 = 1 << 1;

/// What a waker must do after setting [`NEED_RESCHED`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[must_use = "a waker that ignores Kick::Needed loses the wakeup"]
pub enum Kick {
    /// The target was polling: it will see the flag, no IPI needed.
    Skipped,
    /// The target was not polling: send the IPI (or futex wake) now.
    Needed,
}

/// One CPU's flags word.
///
/// ```
/// use haltpoll::wake::{Kick, WakeFlags};
/// let flags = WakeFlags::new();
/// // Poller: announce polling; nothing pending yet.
/// assert!(!flags.set_polling_and_test());
/// // Waker: the target polls, so no IPI.
/// assert_eq!(flags.wake(), Kick::Skipped);
/// // Poller: sees the flag, stops polling, consumes the wakeup.
/// assert!(flags.need_resched());
/// assert!(flags.clear_polling_and_test());
/// assert!(flags.take_need_resched());
/// // A wake while nobody polls needs an IPI.
/// assert_eq!(flags.wake(), Kick::Needed);
/// ```
#[derive(Debug, Default)]
#[repr(transparent)]
pub struct WakeFlags {
    word: AtomicU32,
}

impl WakeFlags {
    /// A word with no flag set: not polling, nothing pending.
    #[cfg(not(loom))]
    pub const fn new() -> WakeFlags {
        WakeFlags { word: AtomicU32::new(0) }
    }

    /// A word with no flag set: not polling, nothing pending.
    #[cfg(loom)]
    pub fn new() -> WakeFlags {
        WakeFlags { word: AtomicU32::new(0) }
    }

    /// The raw word, for waiting on it (a futex) or placing it in shared memory.
    #[cfg(not(loom))]
    pub const fn as_atomic(&self) -> &AtomicU32 {
        &self.word
    }

    /// The flags now (a snapshot; for waiting and diagnostics).
    #[inline]
    pub fn load(&self) -> u32 {
        self.word.load(Acquire)
    }

    // ---- the poller's side ----

    /// Sets POLLING and returns whether NEED_RESCHED was already set, in one RMW: a wake that
    /// came before is seen here, one that comes after sees POLLING and may skip the kick.
    #[inline]
    pub fn set_polling_and_test(&self) -> bool {
        // Acquire: if a wake is already pending, its data must be visible once we return true.
        self.word.fetch_or(POLLING, Acquire) & NEED_RESCHED != 0
    }

    /// Whether NEED_RESCHED is set: the poll loop's wake check.
    #[inline]
    pub fn need_resched(&self) -> bool {
        // Acquire pairs with the waker's release so the woken CPU sees the waker's data.
        self.word.load(Acquire) & NEED_RESCHED != 0
    }

    /// Clears POLLING and returns whether NEED_RESCHED is set, in one RMW: the re-check before
    /// halting. If it returns false, every later waker sees POLLING clear and sends a kick, so
    /// it is safe to halt (with interrupts enabled by the halting sequence itself).
    #[inline]
    pub fn clear_polling_and_test(&self) -> bool {
        self.word.fetch_and(!POLLING, Acquire) & NEED_RESCHED != 0
    }

    /// Clears NEED_RESCHED and returns whether it was set: the woken CPU consumes the wakeup.
    #[inline]
    pub fn take_need_resched(&self) -> bool {
        self.word.fetch_and(!NEED_RESCHED, Acquire) & NEED_RESCHED != 0
    }

    // ---- the waker's side ----

    /// Sets NEED_RESCHED and says whether the target needs a kick (it was not polling). Linux's
    /// `set_nr_and_not_polling`.
    #[inline]
    pub fn wake(&self) -> Kick {
        // Release: the data the waker wrote before this call happens-before the poller's
        // acquire of NEED_RESCHED. Acquire is not needed for the decision: the RMW reads the
        // latest POLLING in the word's modification order regardless.
        if self.word.fetch_or(NEED_RESCHED, Release) & POLLING != 0 { Kick::Skipped } else { Kick::Needed }
    }

    /// Like [`wake`](Self::wake), but a wake that finds NEED_RESCHED already set needs no kick
    /// either: the waker that set it first saw the same POLLING bit and is responsible for the
    /// kick. Many wakers of one sleeping target thus send one kick, not one each (Linux's
    /// `resched_curr` returns early on a pending NEED_RESCHED for the same reason).
    ///
    /// The RMW still happens when the flag is already set, so the data this waker wrote before
    /// the call is visible to whoever later consumes NEED_RESCHED with acquire: skipping the
    /// store would leave that data unordered and could lose the message behind the wakeup.
    ///
    /// ```
    /// use haltpoll::wake::{Kick, WakeFlags};
    /// let flags = WakeFlags::new(); // not polling
    /// assert_eq!(flags.wake_once(), Kick::Needed);
    /// assert_eq!(flags.wake_once(), Kick::Skipped, "the first waker kicks");
    /// ```
    #[inline]
    pub fn wake_once(&self) -> Kick {
        // Release as in `wake`: orders this waker's data before the flag, even when the flag
        // was already set (the RMW extends the release sequence the consumer acquires).
        kick_unless_pending_or_polling(self.word.fetch_or(NEED_RESCHED, Release))
    }

    /// [`wake_once`](Self::wake_once) in one swap, the cheapest RMW on x86 (`xchg`; a
    /// `fetch_or` whose result needs both old bits is a compare-exchange loop), at the price of
    /// setting POLLING too: the word becomes POLLING | NEED_RESCHED whatever it was.
    ///
    /// Sound for a sleeper that, like a futex waiter, sleeps only while the whole word is 0 and
    /// looks at NEED_RESCHED after every return of its sleep. A swap that finds POLLING clear
    /// returns [`Kick::Needed`], and its caller kicks: the sleeper's compare fails or the kick
    /// wakes it, and it finds NEED_RESCHED. Until it takes the token, a POLLING this swap set
    /// only tells later wakers what is true, that it will look at NEED_RESCHED before it
    /// sleeps again, so they skip their kicks as they would for a pending wakeup anyway. Not for
    /// a CPU halting with `sti; hlt`, whose halt compares nothing: there POLLING must stay the
    /// poller's own.
    ///
    /// Release, as in `wake`: the RMW extends the release sequence the consumer acquires, even
    /// when NEED_RESCHED was set already.
    ///
    /// ```
    /// use haltpoll::wake::{Kick, NEED_RESCHED, POLLING, WakeFlags};
    /// let flags = WakeFlags::new(); // asleep
    /// assert_eq!(flags.wake_by_swap(), Kick::Needed);
    /// assert_eq!(flags.wake_by_swap(), Kick::Skipped, "the first waker kicks");
    /// assert_eq!(flags.load(), POLLING | NEED_RESCHED);
    /// ```
    #[inline]
    pub fn wake_by_swap(&self) -> Kick {
        kick_unless_pending_or_polling(self.word.swap(POLLING | NEED_RESCHED, Release))
    }

    /// Sets NEED_RESCHED only if the target is polling, and returns whether it did (so no kick
    /// is needed). Returns false, and sets nothing, when the target is not polling: the caller
    /// then delivers the wakeup another way (queue it and send the IPI). Linux's
    /// `set_nr_if_polling`.
    pub fn wake_if_polling(&self) -> bool {
        let mut old = self.word.load(Relaxed);
        loop {
            if old & POLLING == 0 {
                return false;
            }
            if old & NEED_RESCHED != 0 {
                // Already pending and the target polls: it will see it.
                return true;
            }
            // The CAS fails if POLLING was cleared meanwhile, so we never set NEED_RESCHED on
            // a CPU that has already passed its re-check and may be halting.
            match self.word.compare_exchange_weak(old, old | NEED_RESCHED, Release, Relaxed) {
                Ok(_) => return true,
                Err(now) => old = now,
            }
        }
    }
}

/// What a waker that found `old` must do: nothing if a wakeup was already pending (its waker
/// kicks) or the target polls, else kick.
#[inline]
fn kick_unless_pending_or_polling(old: u32) -> Kick {
    if old & (POLLING | NEED_RESCHED) != 0 { Kick::Skipped } else { Kick::Needed }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn wake_before_poll_is_seen_by_set() {
        let f = WakeFlags::new();
        assert_eq!(f.wake(), Kick::Needed);
        assert!(f.set_polling_and_test());
    }

    #[test]
    fn wake_during_poll_skips_kick_and_is_seen_at_clear() {
        let f = WakeFlags::new();
        assert!(!f.set_polling_and_test());
        assert_eq!(f.wake(), Kick::Skipped);
        assert!(f.need_resched());
        assert!(f.clear_polling_and_test());
        assert!(f.take_need_resched());
        assert!(!f.take_need_resched(), "consumed once");
        assert_eq!(f.load(), 0);
    }

    #[test]
    fn wake_after_clear_needs_kick() {
        let f = WakeFlags::new();
        assert!(!f.set_polling_and_test());
        assert!(!f.clear_polling_and_test());
        assert_eq!(f.wake(), Kick::Needed);
    }

    #[test]
    fn wake_once_kicks_once_per_pending_wakeup() {
        let f = WakeFlags::new();
        assert_eq!(f.wake_once(), Kick::Needed);
        assert_eq!(f.wake_once(), Kick::Skipped);
        assert!(f.take_need_resched());
        assert_eq!(f.wake_once(), Kick::Needed, "consumed: the next wake kicks again");
        assert!(f.take_need_resched());
        assert!(!f.set_polling_and_test());
        assert_eq!(f.wake_once(), Kick::Skipped, "polling");
    }

    #[test]
    fn wake_by_swap_kicks_as_wake_once_does() {
        for polling in [false, true] {
            let (a, b) = (WakeFlags::new(), WakeFlags::new());
            if polling {
                assert!(!a.set_polling_and_test());
                assert!(!b.set_polling_and_test());
            }
            for _ in 0..2 {
                assert_eq!(a.wake_by_swap(), b.wake_once(), "polling {polling}");
            }
            assert!(a.take_need_resched() && b.take_need_resched());
            assert_eq!(a.load(), POLLING, "the swap left POLLING set");
        }
    }

    #[test]
    fn wake_if_polling_sets_only_while_polling() {
        let f = WakeFlags::new();
        assert!(!f.wake_if_polling());
        assert_eq!(f.load(), 0, "nothing set when not polling");
        assert!(!f.set_polling_and_test());
        assert!(f.wake_if_polling());
        assert!(f.wake_if_polling(), "already pending");
        assert_eq!(f.load(), POLLING | NEED_RESCHED);
    }
}
