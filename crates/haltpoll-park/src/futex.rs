//! The futex edge: sleep while the parker's flags word holds an expected value, and wake the
//! sleeper. One implementation per OS, each on the OS's own wait-on-address primitive with a
//! timeout, and a portable one for the rest:
//! - Linux and Android: `FUTEX_WAIT_PRIVATE` / `FUTEX_WAKE_PRIVATE` (through rustix);
//! - FreeBSD: `_umtx_op` with `UMTX_OP_WAIT_UINT_PRIVATE` / `UMTX_OP_WAKE_PRIVATE`;
//! - Windows: `WaitOnAddress` / `WakeByAddressSingle`;
//! - Apple: `os_sync_wait_on_address_with_timeout` / `os_sync_wake_by_address_any` (macOS 14.4,
//!   iOS 17.4), looked up at run time; the portable one where the OS is older;
//! - anything else: a `Mutex` and a `Condvar` per parker (the portable one);
//! - under `cfg(loom)`: the portable one on loom's `Mutex` and `Condvar`, so the model checker
//!   sees every interleaving, with spurious returns on demand.
//!
//! Why no crate: `atomic-wait` has no timeouts, and the crates that add them round a
//! sub-millisecond Windows timeout down to 0 (a busy loop until the deadline) or pass a relative
//! FreeBSD timeout as an absolute one. Each OS's part here is a few lines.
//!
//! The contract, which is the kernel's futex's: [`Futex::wait`] compares the word with
//! `expected` and goes to sleep *atomically* with respect to [`Futex::wake_one`], so a wake
//! issued after the word changed cannot fall between the compare and the sleep. `wait` may
//! return for no reason at all (a signal, a stale wake, the timeout): the caller looks at the
//! word again. There is at most one waiter per word: the parker's owner.

use std::time::Duration;

use haltpoll::wake::WakeFlags;

#[cfg(all(not(loom), any(target_os = "linux", target_os = "android")))]
pub(crate) use linux::Futex;

#[cfg(all(not(loom), target_os = "freebsd"))]
pub(crate) use freebsd::Futex;

#[cfg(all(not(loom), windows))]
pub(crate) use windows::Futex;

#[cfg(all(not(loom), target_vendor = "apple"))]
pub(crate) use apple::Futex;

#[cfg(any(
    loom,
    not(any(target_os = "linux", target_os = "android", target_os = "freebsd", windows, target_vendor = "apple"))
))]
pub(crate) use portable::Futex;

#[cfg(all(not(loom), any(target_os = "linux", target_os = "android")))]
mod linux {
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

        /// `FUTEX_WAKE_PRIVATE` of one waiter.
        pub(crate) fn wake_one(&self, flags: &WakeFlags) {
            let _ = futex::wake(flags.as_atomic(), futex::Flags::PRIVATE, 1);
        }
    }
}

#[cfg(all(not(loom), target_os = "freebsd"))]
mod freebsd {
    use super::*;
    use core::ffi::c_void;
    use core::ptr;

    /// A umtx wait on a [`WakeFlags`] word; the kernel keeps the queue.
    #[derive(Debug, Default)]
    pub(crate) struct Futex;

    impl Futex {
        /// `UMTX_OP_WAIT_UINT_PRIVATE`: sleeps while the word is `expected`, for at most
        /// `timeout` (relative, on the monotonic clock).
        pub(crate) fn wait(&self, flags: &WakeFlags, expected: u32, timeout: Option<Duration>) {
            let word = flags.as_atomic().as_ptr().cast::<c_void>();
            let mut time = timeout.map(|t| libc::_umtx_time {
                _timeout: libc::timespec {
                    tv_sec: libc::time_t::try_from(t.as_secs()).unwrap_or(libc::time_t::MAX),
                    tv_nsec: libc::c_long::from(t.subsec_nanos()),
                },
                _flags: 0, // relative, not UMTX_ABSTIME
                _clockid: libc::CLOCK_MONOTONIC as u32,
            });
            // With a timeout, `uaddr` carries the size of the `_umtx_time` that `uaddr2` points
            // to (the umtx calling convention); without, both are null.
            let (size, time_ptr) = match &mut time {
                Some(t) => {
                    (ptr::without_provenance_mut(size_of::<libc::_umtx_time>()), ptr::from_mut(t).cast::<c_void>())
                }
                None => (ptr::null_mut(), ptr::null_mut()),
            };
            // SAFETY: `word` points to a live, aligned u32 that the kernel only reads (an atomic
            // load: UMTX_OP_WAIT_UINT compares it with `expected`); `time_ptr` is null or points
            // to a `_umtx_time` on this stack frame, alive for the call, whose size is `size`.
            // Any result (woken, EINTR, ETIMEDOUT, the word had changed) is fine for the caller,
            // which re-checks the word.
            let _ = unsafe {
                libc::_umtx_op(word, libc::UMTX_OP_WAIT_UINT_PRIVATE, libc::c_ulong::from(expected), size, time_ptr)
            };
        }

        /// `UMTX_OP_WAKE_PRIVATE` of one waiter.
        pub(crate) fn wake_one(&self, flags: &WakeFlags) {
            let word = flags.as_atomic().as_ptr().cast::<c_void>();
            // SAFETY: a wake only uses the address as the key of the wait queue; it neither
            // reads nor writes the word, and the other pointers are unused (null).
            let _ = unsafe { libc::_umtx_op(word, libc::UMTX_OP_WAKE_PRIVATE, 1, ptr::null_mut(), ptr::null_mut()) };
        }
    }
}

#[cfg(all(not(loom), windows))]
mod windows {
    use super::*;
    use core::ffi::c_void;
    use windows_sys::Win32::System::Threading::{INFINITE, WaitOnAddress, WakeByAddressSingle};

    /// A `WaitOnAddress` on a [`WakeFlags`] word; the OS keeps the queue.
    #[derive(Debug, Default)]
    pub(crate) struct Futex;

    /// `timeout` in whole milliseconds for `WaitOnAddress`, rounded *up* (rounding a 0.3 ms wait
    /// down to 0 would make the caller spin until its deadline) and kept below `INFINITE`.
    pub(super) fn millis(timeout: Option<Duration>) -> u32 {
        match timeout {
            None => INFINITE,
            Some(t) => {
                let ms = t.as_nanos().div_ceil(1_000_000);
                u32::try_from(ms).unwrap_or(INFINITE - 1).min(INFINITE - 1)
            }
        }
    }

    impl Futex {
        /// Sleeps while the word is `expected`, for at most `timeout`.
        pub(crate) fn wait(&self, flags: &WakeFlags, expected: u32, timeout: Option<Duration>) {
            let word = flags.as_atomic().as_ptr().cast::<c_void>().cast_const();
            let expected_ptr = core::ptr::from_ref(&expected).cast::<c_void>();
            // SAFETY: `word` points to a live, aligned 4-byte atomic and `expected_ptr` to a u32
            // on this stack frame, both valid for the 4 bytes the call compares; the OS reads the
            // word atomically and writes neither. Any result (woken, timed out, spurious) is fine
            // for the caller, which re-checks the word.
            let _ = unsafe { WaitOnAddress(word, expected_ptr, size_of::<u32>(), millis(timeout)) };
        }

        /// `WakeByAddressSingle`.
        pub(crate) fn wake_one(&self, flags: &WakeFlags) {
            let word = flags.as_atomic().as_ptr().cast::<c_void>().cast_const();
            // SAFETY: the address is only the key of the wait queue: the call neither reads nor
            // writes the word.
            unsafe { WakeByAddressSingle(word) };
        }
    }
}

#[cfg(all(not(loom), target_vendor = "apple"))]
mod apple {
    use super::*;
    use core::ffi::{CStr, c_int, c_void};
    use std::sync::OnceLock;

    type WaitFn = unsafe extern "C" fn(*mut c_void, u64, libc::size_t, u32) -> c_int;
    type WaitTimeoutFn = unsafe extern "C" fn(*mut c_void, u64, libc::size_t, u32, u32, u64) -> c_int;
    type WakeFn = unsafe extern "C" fn(*mut c_void, libc::size_t, u32) -> c_int;

    /// `os_sync_wait_on_address` and friends (public since macOS 14.4 / iOS 17.4).
    struct OsSync {
        wait: WaitFn,
        wait_timeout: WaitTimeoutFn,
        wake_any: WakeFn,
    }

    /// The functions if this OS has them, looked up once: linking them directly would make the
    /// program fail to start on older systems.
    fn os_sync() -> Option<&'static OsSync> {
        static FNS: OnceLock<Option<OsSync>> = OnceLock::new();
        FNS.get_or_init(|| {
            let find = |name: &CStr| {
                // SAFETY: `name` is a NUL-terminated string; RTLD_DEFAULT searches the loaded
                // images and returns null when no image exports the symbol.
                let f = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
                (!f.is_null()).then_some(f)
            };
            let (wait, wait_timeout, wake_any) = (
                find(c"os_sync_wait_on_address")?,
                find(c"os_sync_wait_on_address_with_timeout")?,
                find(c"os_sync_wake_by_address_any")?,
            );
            // SAFETY: each symbol is the libSystem function of that name, whose C signature
            // (os/os_sync_wait_on_address.h) is the function pointer type it becomes.
            unsafe {
                Some(OsSync {
                    wait: core::mem::transmute::<*mut c_void, WaitFn>(wait),
                    wait_timeout: core::mem::transmute::<*mut c_void, WaitTimeoutFn>(wait_timeout),
                    wake_any: core::mem::transmute::<*mut c_void, WakeFn>(wake_any),
                })
            }
        })
        .as_ref()
    }

    /// The OS's wait on address, or the portable one on systems without it (the choice is
    /// per process, so a wait and its wake always take the same path).
    #[derive(Debug, Default)]
    pub(crate) struct Futex {
        portable: super::portable::Futex,
    }

    impl Futex {
        /// Sleeps while the word is `expected`, for at most `timeout`.
        pub(crate) fn wait(&self, flags: &WakeFlags, expected: u32, timeout: Option<Duration>) {
            let Some(os) = os_sync() else {
                self.portable.wait(flags, expected, timeout);
                return;
            };
            let word = flags.as_atomic().as_ptr().cast::<c_void>();
            let size = size_of::<u32>();
            let none = libc::OS_SYNC_WAIT_ON_ADDRESS_NONE;
            // SAFETY: `word` points to a live, aligned 4-byte atomic that the OS compares with
            // `expected` (an atomic load) and never writes; the timeout is non-zero, as the call
            // requires. Any result (woken, timed out, EINTR, the word had changed) is fine for
            // the caller, which re-checks the word.
            let _ = unsafe {
                match timeout {
                    None => (os.wait)(word, u64::from(expected), size, none),
                    Some(t) => {
                        let ns = u64::try_from(t.as_nanos()).unwrap_or(u64::MAX).max(1);
                        (os.wait_timeout)(word, u64::from(expected), size, none, libc::OS_CLOCK_MACH_ABSOLUTE_TIME, ns)
                    }
                }
            };
        }

        /// Wakes the waiter.
        pub(crate) fn wake_one(&self, flags: &WakeFlags) {
            let Some(os) = os_sync() else {
                self.portable.wake_one(flags);
                return;
            };
            let word = flags.as_atomic().as_ptr().cast::<c_void>();
            // SAFETY: the address is only the key of the wait queue: the call neither reads nor
            // writes the word.
            let _ = unsafe { (os.wake_any)(word, size_of::<u32>(), libc::OS_SYNC_WAKE_BY_ADDRESS_NONE) };
        }
    }
}

/// The portable futex: a lock and a condition variable per word. The lock makes
/// compare-and-sleep atomic with respect to `wake_one`, as the kernel's hash-bucket lock does.
#[cfg(any(
    loom,
    target_vendor = "apple",
    not(any(target_os = "linux", target_os = "android", target_os = "freebsd", windows))
))]
mod portable {
    use super::*;
    #[cfg(not(loom))]
    use std::sync::{Condvar, Mutex};

    #[cfg(loom)]
    use loom::sync::{Condvar, Mutex};

    /// A wait queue of one: the parker's owner.
    #[derive(Debug, Default)]
    pub(crate) struct Futex {
        lock: Mutex<()>,
        queue: Condvar,
        /// Untimed waits that return at once without a wake, to check that the parker
        /// tolerates spurious returns. Only the parker's thread touches it, so a std atomic
        /// (invisible to loom) is enough.
        #[cfg(loom)]
        spurious: std::sync::atomic::AtomicUsize,
    }

    impl Futex {
        #[cfg(loom)]
        pub(crate) fn set_spurious_returns(&self, n: usize) {
            self.spurious.store(n, std::sync::atomic::Ordering::Relaxed);
        }

        /// Sleeps while the word is `expected`, for at most `timeout`.
        #[cfg(not(loom))]
        pub(crate) fn wait(&self, flags: &WakeFlags, expected: u32, timeout: Option<Duration>) {
            // A poisoned lock guards nothing (the unit): go on with it.
            let guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
            if flags.load() != expected {
                return;
            }
            drop(match timeout {
                None => self.queue.wait(guard).unwrap_or_else(|e| e.into_inner()),
                Some(t) => self.queue.wait_timeout(guard, t).unwrap_or_else(|e| e.into_inner()).0,
            });
        }

        /// Sleeps while the word is `expected`. A timed wait returns at once: a real timeout
        /// may expire at any moment, and the earliest is the one that races the unparker most.
        /// (A timed wait ended by a wake takes the same path afterwards as an untimed one.)
        #[cfg(loom)]
        pub(crate) fn wait(&self, flags: &WakeFlags, expected: u32, timeout: Option<Duration>) {
            use std::sync::atomic::Ordering::Relaxed;
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

        /// Wakes the waiter, if it sleeps.
        pub(crate) fn wake_one(&self, _flags: &WakeFlags) {
            let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.queue.notify_one();
        }
    }
}

// `Futex` is a unit struct where the OS keeps the queue and holds a lock elsewhere: the same
// test source builds it the one way that fits both.
#[allow(clippy::default_constructed_unit_structs)]
#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::thread;
    use std::time::Instant;

    #[test]
    fn a_changed_word_returns_at_once() {
        let (futex, flags) = (Futex::default(), WakeFlags::new());
        let start = Instant::now();
        futex.wait(&flags, 7, Some(Duration::from_secs(30)));
        assert!(start.elapsed() < Duration::from_secs(30), "the word is 0, not 7");
    }

    #[test]
    fn wake_one_ends_a_wait() {
        let both = Arc::new((Futex::default(), WakeFlags::new()));
        let other = both.clone();
        let waiter = thread::spawn(move || {
            let (futex, flags) = &*other;
            while !flags.need_resched() {
                futex.wait(flags, 0, None);
            }
        });
        thread::sleep(Duration::from_millis(5));
        let (futex, flags) = &*both;
        let _ = flags.wake();
        futex.wake_one(flags);
        waiter.join().unwrap();
    }

    #[cfg(windows)]
    #[test]
    fn windows_timeouts_round_up() {
        assert_eq!(windows::millis(Some(Duration::from_micros(300))), 1);
        assert_eq!(windows::millis(Some(Duration::from_millis(2))), 2);
        assert!(windows::millis(Some(Duration::MAX)) < windows_sys::Win32::System::Threading::INFINITE);
    }
}
