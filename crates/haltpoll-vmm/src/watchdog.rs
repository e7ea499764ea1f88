//! The watchdog: deciding that a run has hung or overrun ([`Watchdog`], pure), and getting a vCPU
//! thread out of `KVM_RUN` when it has ([`kick`]).
//!
//! A vCPU can stay in `KVM_RUN` forever: halted with interrupts off, or spinning at ring 3. To
//! stop it the VMM sets the run's stop flag and sends its thread [`kick_signal`]; a signal makes
//! `KVM_RUN` return `EINTR`. A signal that lands after the thread checked the stop flag but
//! before it entered `KVM_RUN` would be lost, so the handler also sets the vCPU's
//! `kvm_run.immediate_exit`, which makes the next `KVM_RUN` return `EINTR` at once. The thread
//! clears `immediate_exit` *before* it checks the stop flag (see
//! [`Armed::clear_immediate_exit`]), so a kick is never wiped out. This is how rust-vmm VMMs
//! (Firecracker, Cloud Hypervisor) do it.
//!
//! The handler finds `immediate_exit` through a thread-local pointer into the vCPU's mmapped
//! `kvm_run`, so that pointer must never outlive the mapping. [`armed`] sets it only for the
//! length of a closure that holds the vCPU borrowed, and resets it when the closure returns or
//! unwinds; the closure gets an [`Armed`] that cannot leave the closure or the thread.
//!
//! One limit this module cannot remove: kvm-ioctls lends `kvm_run` only as `&mut kvm_run`
//! (`VcpuFd::get_kvm_run`), while the handler writes `immediate_exit` through its raw pointer.
//! The handler's write is an atomic byte store into memory KVM itself writes, and the code here
//! takes that `&mut` only to form a raw pointer or to read an exit's union, never across a
//! `KVM_RUN` or a point where the handler's store could be read back through it.

use std::ffi::c_void;
use std::marker::PhantomData;
use std::ptr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicPtr, AtomicU8, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kvm_bindings::kvm_run;
use kvm_ioctls::{VcpuExit, VcpuFd};
use libc::{c_int, siginfo_t};
use vmm_sys_util::signal::{Killable, SIGRTMIN, register_signal_handler};

use crate::VmmError;

thread_local! {
    /// This thread's vCPU's `kvm_run.immediate_exit`, while it runs one. Atomic, though only
    /// this thread touches it, because the signal handler reads it between any two instructions
    /// of the thread that sets it.
    static IMMEDIATE_EXIT: AtomicPtr<u8> = const { AtomicPtr::new(ptr::null_mut()) };
}

/// The signal that kicks a vCPU thread (the first real-time signal).
pub fn kick_signal() -> c_int {
    SIGRTMIN()
}

extern "C" fn on_kick(_signal: c_int, _info: *mut siginfo_t, _context: *mut c_void) {
    // Async-signal-safe: a const-initialized thread-local without a destructor (no lazy setup),
    // an atomic load and an atomic store.
    let flag = IMMEDIATE_EXIT.with(|exit| exit.load(Ordering::Relaxed));
    if !flag.is_null() {
        // SAFETY: a non-null `flag` was set by `armed` on this thread and points into the
        // mmapped `kvm_run` of the vCPU that `armed` holds borrowed: the vCPU (and with it the
        // mapping) cannot be dropped before `armed` puts the previous value back.
        unsafe { AtomicU8::from_ptr(flag).store(1, Ordering::SeqCst) };
    }
}

/// Installs the kick handler (once per process). Every call reports how that one installation
/// went: a run must not start vCPUs that a kick would kill with the signal's default action.
pub fn install() -> Result<(), VmmError> {
    static INSTALLED: OnceLock<Result<(), i32>> = OnceLock::new();
    let installed = INSTALLED.get_or_init(|| register_signal_handler(kick_signal(), on_kick).map_err(|e| e.errno()));
    installed.map_err(|errno| VmmError::Host {
        operation: "installing the vCPU kick signal handler",
        error: std::io::Error::from_raw_os_error(errno),
    })
}

/// A vCPU armed for kicks: while it exists, kicks of this thread set the vCPU's
/// `immediate_exit`. Only [`armed`] makes one, and only lends it to its closure.
///
/// It borrows the vCPU, so the vCPU cannot be dropped while the handler may write into its
/// `kvm_run`:
///
/// ```compile_fail,E0505
/// use haltpoll_vmm::watchdog;
/// use kvm_ioctls::VcpuFd;
///
/// fn drops_the_vcpu_while_armed(mut vcpu: VcpuFd) {
///     watchdog::armed(&mut vcpu, |_armed| drop(vcpu));
/// }
/// ```
///
/// It cannot escape the closure (where [`armed`] could no longer disarm the thread when the vCPU
/// goes):
///
/// ```compile_fail
/// use haltpoll_vmm::watchdog;
/// use kvm_ioctls::VcpuFd;
///
/// fn keeps_it_armed(vcpu: &mut VcpuFd) {
///     let escaped = watchdog::armed(vcpu, |armed| armed);
/// }
/// ```
///
/// And it stays on the thread whose thread-local points at the vCPU:
///
/// ```compile_fail,E0277
/// use haltpoll_vmm::watchdog;
/// use kvm_ioctls::VcpuFd;
///
/// fn runs_it_elsewhere(vcpu: &mut VcpuFd) {
///     watchdog::armed(vcpu, |armed| std::thread::scope(|s| s.spawn(|| armed.run().is_ok()).join()));
/// }
/// ```
#[derive(Debug)]
pub struct Armed<'a> {
    vcpu: &'a mut VcpuFd,
    /// Neither `Send` nor `Sync`: the thread-local that points at `vcpu` is this thread's.
    _this_thread: PhantomData<*mut u8>,
}

impl Armed<'_> {
    /// Clears the vCPU's `immediate_exit`. Call it before checking the stop flag and entering
    /// `KVM_RUN`: a kick after this call either finds the flag set when checked or leaves
    /// `immediate_exit` set for `KVM_RUN` to see.
    pub fn clear_immediate_exit(&mut self) {
        let flag = &raw mut self.vcpu.get_kvm_run().immediate_exit;
        // SAFETY: `flag` points into the vCPU's mmapped `kvm_run`, mapped while `self.vcpu` is
        // borrowed; the store is atomic like the handler's, which may run on this thread.
        unsafe { AtomicU8::from_ptr(flag).store(0, Ordering::SeqCst) };
    }

    /// Runs the vCPU (`KVM_RUN`) until its next exit.
    pub fn run(&mut self) -> Result<VcpuExit<'_>, kvm_ioctls::Error> {
        self.vcpu.run()
    }

    /// The vCPU's `kvm_run`, to read what the last exit left there.
    pub fn kvm_run(&mut self) -> &mut kvm_run {
        self.vcpu.get_kvm_run()
    }
}

/// Puts the thread-local back to what it was when [`armed`] began, on return or unwind.
struct Disarm(*mut u8);

impl Drop for Disarm {
    fn drop(&mut self) {
        IMMEDIATE_EXIT.with(|exit| exit.store(self.0, Ordering::Relaxed));
    }
}

/// Arms the current thread's kick for `vcpu` while `f` runs it, then disarms it (also if `f`
/// panics). An `armed` inside another restores the outer vCPU's arming when it ends.
pub fn armed<R>(vcpu: &mut VcpuFd, f: impl FnOnce(&mut Armed<'_>) -> R) -> R {
    let flag = &raw mut vcpu.get_kvm_run().immediate_exit;
    let _disarm = Disarm(IMMEDIATE_EXIT.with(|exit| exit.swap(flag, Ordering::Relaxed)));
    f(&mut Armed { vcpu, _this_thread: PhantomData })
}

/// Sends the kick signal to a vCPU thread that has not finished.
pub fn kick<T>(thread: &JoinHandle<T>) {
    // An error means the thread is gone already, which is what the kick wants.
    let _ = thread.kill(kick_signal());
}

/// The limits a run must stay within.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The whole run must end within this.
    pub time_limit: Duration,
    /// A vCPU that makes no progress for this long is hung.
    pub stall_limit: Duration,
}

/// What the watchdog concludes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Carry on.
    Running,
    /// These vCPUs made no progress for the stall limit.
    Hung(Vec<usize>),
    /// The time limit ran out while the vCPUs were still making progress.
    Overran,
}

/// Tracks each vCPU's progress counter and decides when a run has gone wrong. Pure: time is
/// passed in.
///
/// ```
/// use std::time::{Duration, Instant};
/// use haltpoll_vmm::watchdog::{Limits, Verdict, Watchdog};
/// let t0 = Instant::now();
/// let limits = Limits { time_limit: Duration::from_secs(10), stall_limit: Duration::from_secs(1) };
/// let mut dog = Watchdog::new(2, limits, t0);
/// dog.observe(0, 5, t0 + Duration::from_millis(1500));
/// assert_eq!(dog.verdict([0, 1], t0 + Duration::from_millis(1500)), Verdict::Hung(vec![1]));
/// ```
#[derive(Clone, Debug)]
pub struct Watchdog {
    limits: Limits,
    start: Instant,
    /// Per vCPU: the last progress value seen and when it last changed.
    last: Vec<(u64, Instant)>,
}

impl Watchdog {
    /// A watchdog for `vcpus` vCPUs starting at `now`, each with progress 0.
    pub fn new(vcpus: usize, limits: Limits, now: Instant) -> Watchdog {
        Watchdog { limits, start: now, last: vec![(0, now); vcpus] }
    }

    /// Records vCPU `vcpu`'s progress counter at `now`.
    pub fn observe(&mut self, vcpu: usize, progress: u64, now: Instant) {
        let last = &mut self.last[vcpu];
        if progress != last.0 {
            *last = (progress, now);
        }
    }

    /// The last progress seen from `vcpu`.
    pub fn progress(&self, vcpu: usize) -> u64 {
        self.last[vcpu].0
    }

    /// The verdict at `now` on the vCPUs still running.
    pub fn verdict(&self, running: impl IntoIterator<Item = usize>, now: Instant) -> Verdict {
        let running: Vec<usize> = running.into_iter().collect();
        let stalled: Vec<usize> = running
            .iter()
            .copied()
            .filter(|&v| now.saturating_duration_since(self.last[v].1) >= self.limits.stall_limit)
            .collect();
        if !stalled.is_empty() {
            return Verdict::Hung(stalled);
        }
        if !running.is_empty() && now.saturating_duration_since(self.start) >= self.limits.time_limit {
            return Verdict::Overran;
        }
        Verdict::Running
    }

    /// The limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits { time_limit: Duration::from_secs(5), stall_limit: Duration::from_secs(1) };

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn progress_keeps_a_vcpu_alive_until_the_time_limit() {
        let t0 = Instant::now();
        let mut dog = Watchdog::new(1, LIMITS, t0);
        for step in 1..=49 {
            dog.observe(0, step, at(t0, step * 100));
            assert_eq!(dog.verdict([0], at(t0, step * 100 + 50)), Verdict::Running);
        }
        dog.observe(0, 50, at(t0, 5_000));
        assert_eq!(dog.verdict([0], at(t0, 5_000)), Verdict::Overran);
    }

    #[test]
    fn only_stalled_vcpus_are_hung_and_finished_ones_are_ignored() {
        let t0 = Instant::now();
        let mut dog = Watchdog::new(3, LIMITS, t0);
        dog.observe(1, 3, at(t0, 900));
        assert_eq!(dog.verdict([0, 1, 2], at(t0, 999)), Verdict::Running);
        assert_eq!(dog.verdict([0, 1, 2], at(t0, 1_000)), Verdict::Hung(vec![0, 2]));
        assert_eq!(dog.verdict([1], at(t0, 1_000)), Verdict::Running, "vCPUs 0 and 2 finished");
        dog.observe(1, 3, at(t0, 1_950));
        assert_eq!(dog.verdict([1], at(t0, 1_950)), Verdict::Hung(vec![1]), "the same value is no progress");
        assert_eq!(dog.progress(1), 3);
        assert_eq!(dog.verdict([], at(t0, 60_000)), Verdict::Running, "nothing left to watch");
    }
}
