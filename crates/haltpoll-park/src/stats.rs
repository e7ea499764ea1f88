//! What a parker did: how its waits ended and how many wakes skipped the system call.

/// Counters of one parker since it was made. [`Parker::stats`](crate::Parker::stats) takes a
/// snapshot.
///
/// Every park ends in exactly one of: `immediate`, `poll_hits`, `late_hits`, a block
/// (`blocks`, which may still end by the deadline), or a deadline that passed before it
/// blocked. `timeouts` counts the parks that returned without a token, whichever way they
/// waited. The counters are plain statistics, not synchronisation: read them after the
/// threads involved are done (an unpark is counted before its token is set, so the park it
/// ends sees it).
///
/// ```
/// use haltpoll_park::Parker;
/// let p = Parker::new();
/// p.unparker().unpark(); // the parker's thread is running: no syscall
/// p.park(); // the token is already there
/// let s = p.stats();
/// assert_eq!((s.parks, s.immediate, s.unparks), (1, 1, 1));
/// assert_eq!(s.wakes_without_syscall(), 1);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Stats {
    /// Calls to `park`, `park_timeout` and `park_deadline`.
    pub parks: u64,
    /// Parks that found the token already there (or at once, with a deadline already past).
    pub immediate: u64,
    /// Parks ended by the token while polling.
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
    /// Calls to [`Unparker::unpark`](crate::Unparker::unpark), from every clone.
    pub unparks: u64,
    /// Unparks that issued `FUTEX_WAKE`: the parker had announced it would sleep.
    pub futex_wakes: u64,
}

impl Stats {
    /// Unparks that skipped the wake system call: the parker was running or polling (POLLING
    /// set), or another unpark's wake was already on its way.
    pub fn wakes_without_syscall(&self) -> u64 {
        self.unparks.saturating_sub(self.futex_wakes)
    }
}
