//! The futex edge: sleep while the parker's flags word holds an expected value, and wake the
//! sleeper. Real futexes through rustix; under `cfg(loom)` a model built from loom's `Mutex` and
//! `Condvar` with the same contract, so the model checker sees every interleaving.
//!
//! The contract, which is the kernel's: [`Futex::wait`] compares the word with `expected` and
//! goes to sleep *atomically* with respect to [`Futex::wake_one`], so a wake issued after the
//! word changed cannot fall between the compare and the sleep. `wait` may return for no reason
//! at all (a signal, a stale wake, the timeout): the caller looks at the word again.

use std::time::Duration;

use haltpoll::wake::WakeFlags;

#[cfg(not(loom))]
pub(crate) use real::Futex;

#[cfg(loom)]
pub(crate) use model::Futex;

#[cfg(not(loom))]
mod real {
    use super::*;
    use rustix::thread::futex;

    /// A futex on a [`WakeFlags`] word. The kernel keeps the wait queue, so this holds nothing.
    #[derive(Debug, Default)]
    pub(crate) struct Futex;

    impl Futex {
        /// `FUTEX_WAIT_PRIVATE`: sleeps while the word is `expected`, for at most `timeout`.
        pub(crate) fn wait(&self, flags: &WakeFlags, expected: u32, timeout: Option<Duration>) {
            let timeout = timeout.map(|t| futex::Timespec {
                tv_sec: i64::try_from(t.as_secs()).unwrap_or(i64::MAX),
                tv_nsec: i64::from(t.subsec_nanos()),
            });
            // Every outcome is fine for the caller, which re-checks the word: woken, EAGAIN
            // (the word had already changed), EINTR, ETIMEDOUT. EFAULT and EINVAL cannot
            // happen with a reference and a normalised timespec.
            let _ = futex::wait(flags.as_atomic(), futex::Flags::PRIVATE, expected, timeout.as_ref());
        }

        /// `FUTEX_WAKE_PRIVATE` of one waiter (there is at most one: the parker's owner).
        pub(crate) fn wake_one(&self, flags: &WakeFlags) {
            let _ = futex::wake(flags.as_atomic(), futex::Flags::PRIVATE, 1);
        }
    }
}

#[cfg(loom)]
mod model {
    use super::*;
    use loom::sync::{Condvar, Mutex};
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

    /// The futex modelled for loom. The lock makes compare-and-sleep atomic with respect to
    /// `wake_one`, as the kernel's hash-bucket lock does.
    #[derive(Debug, Default)]
    pub(crate) struct Futex {
        lock: Mutex<()>,
        queue: Condvar,
        /// Untimed waits that return at once without a wake, to check that the parker
        /// tolerates spurious returns. Only the parker's thread touches it, so a std atomic
        /// (invisible to loom) is enough.
        spurious: AtomicUsize,
    }

    impl Futex {
        pub(crate) fn set_spurious_returns(&self, n: usize) {
            self.spurious.store(n, Relaxed);
        }

        /// Sleeps while the word is `expected`. A timed wait returns at once: a real timeout
        /// may expire at any moment, and the earliest is the one that races the unparker most.
        /// (A timed wait ended by a wake takes the same path afterwards as an untimed one.)
        pub(crate) fn wait(&self, flags: &WakeFlags, expected: u32, timeout: Option<Duration>) {
            let guard = self.lock.lock().unwrap();
            if flags.load() != expected || timeout.is_some() {
                return;
            }
            if self.spurious.load(Relaxed) > 0 {
                self.spurious.fetch_sub(1, Relaxed);
                return;
            }
            drop(self.queue.wait(guard).unwrap());
        }

        pub(crate) fn wake_one(&self, _flags: &WakeFlags) {
            let _guard = self.lock.lock().unwrap();
            self.queue.notify_one();
        }
    }
}
