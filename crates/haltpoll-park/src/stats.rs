//! What a parker did: how its waits ended and how many wakes skipped the system call.

/// Counters of one parker since it was made. [`Parker::stats`](crate::Parker::stats) takes a
/// snapshot.
///
/// Every park ends in exactly one of: `immediate`, `poll_hits`, `late_hits`, a block
/// (`blocks`, which may still end by the deadline), or a deadline that passed before it
/// blocked. `timeouts` counts the parks that returned without a token, whichever way they
/// waited. The counters are plain statistics, not synchronisation: read them after the
/// threads involved are done (a counted unpark is counted before its token is set, so the
/// park it ends sees it). Only the owner's counters are plain adds; the unparkers' are atomics
/// on the slow path (`futex_wakes`) or opt-in (`unparks`).
///
/// ```
/// use haltpoll_park::Parker;
/// let p = Parker::new();
/// p.unparker().unpark(); // the parker's thread is running: no syscall
/// p.park(); // the token is already there
/// let s = p.stats();
/// assert_eq!((s.parks, s.immediate), (1, 1));
/// assert_eq!(s.wakes_without_syscall(), 1);
/// assert_eq!(s.unparks, None); // counted only with Builder::count_unparks(true)
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Stats {
    /// Calls to `park`, `park_timeout` and `park_deadline`, and the parks `wait_until` and its
    /// timed forms make (one per look at the token).
    pub parks: u64,
    /// Parks that found the token already there (or at once, with a deadline already past).
    pub immediate: u64,
    /// Parks ended while polling: by the token, or in `wait_until` by its condition (which
    /// leaves the token, if one comes, to a later park).
    pub poll_hits: u64,
    /// Polls that ran out of window (or reached the deadline) without the token.
    pub poll_timeouts: u64,
    /// Parks whose token came after the poll: the last look before sleeping (or at the
    /// deadline) found it, and its unparker had seen POLLING set, so no syscall on either side.
    pub late_hits: u64,
    /// Parks that slept on the futex (at least one `FUTEX_WAIT`).
    pub blocks: u64,
    /// Parks that returned without a token (their deadline passed).
    pub timeouts: u64,
    /// Calls to [`Unparker::unpark`](crate::Unparker::unpark), from every clone, if the parker
    /// counts them ([`Builder::count_unparks`](crate::Builder::count_unparks): a second atomic
    /// RMW in every unpark, so off by default).
    pub unparks: Option<u64>,
    /// Unparks that issued `FUTEX_WAKE`: the parker had announced it would sleep.
    pub futex_wakes: u64,
}

impl Stats {
    /// Parks that got their token without a system call on either side: it was there at once,
    /// came while polling, or came before the last look (`immediate + poll_hits + late_hits`).
    /// The unpark that set such a token found POLLING set, so it made none either.
    pub fn wakes_without_syscall(&self) -> u64 {
        self.immediate + self.poll_hits + self.late_hits
    }
}
