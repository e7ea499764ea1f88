//! For tests that run VMs (this crate's and the CLI's): skip where there is no usable KVM,
//! fail instead under `HALTPOLL_REQUIRE_KVM=1`, run one VM at a time, and report (not fail on)
//! what depends on how the host schedules the vCPU threads ([`timing_check`]).
//!
//! A skipped test still counts as passed in libtest's `test result:` line (a test cannot mark
//! itself ignored at run time), and what it prints is captured. So the first skip in a test
//! binary registers an exit hook that writes one summary line straight to the terminal, after
//! that binary's `test result:` line:
//!
//! ```text
//! test result: ok. 5 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s
//!
//! SKIPPED 5 of these VM tests: KVM cannot be used (...) (HALTPOLL_REQUIRE_KVM=1 makes that a failure)
//! ```
//!
//! (cargo-nextest runs each test in a process of its own and captures its stderr, so there the
//! line shows only with the test's output; its summary counts the skips as passes.)

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, Once, OnceLock};

/// A check that reports. How often a guest's poll catches its wakeup, or where a governor's
/// window ends, is a property of timing: it holds on a quiet host, and a loaded one (another
/// build, `stress-ng --cpu 2`) that deschedules a vCPU thread for milliseconds breaks it, so it
/// cannot fail a test. When `holds` is false this prints `what` (to the process's stderr, past
/// the test harness's capture, so that it shows); under `HALTPOLL_STRICT_TIMING=1` (a quiet
/// machine) it panics instead. `bench vm` measures the same properties against its targets.
pub fn timing_check(holds: bool, what: impl FnOnce() -> String) {
    if holds {
        return;
    }
    let what = what();
    if std::env::var_os("HALTPOLL_STRICT_TIMING").is_some_and(|v| v == "1") {
        panic!("timing check: {what}");
    }
    let _ = writeln!(std::io::stderr(), "timing check (reported; HALTPOLL_STRICT_TIMING=1 fails it): {what}");
}

/// Returns a guard to hold while the test's VMs run, or `None` (after saying why) when this
/// machine cannot run KVM guests. With `HALTPOLL_REQUIRE_KVM=1` (CI), an unusable KVM fails the
/// test instead.
///
/// VM tests run one at a time: each pins its vCPUs to the host CPUs, and two busy-polling
/// guests on the same two CPUs would mostly wait for each other.
///
/// ```no_run
/// #[test]
/// fn boots() {
///     let Some(_vm) = haltpoll_vmm::testing::kvm_or_skip("boots") else { return };
///     // ... run a VM
/// }
/// ```
pub fn kvm_or_skip(test: &str) -> Option<MutexGuard<'static, ()>> {
    static ONE_VM_AT_A_TIME: Mutex<()> = Mutex::new(());
    match crate::system::open() {
        Ok(_) => Some(ONE_VM_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner())),
        Err(e) if std::env::var("HALTPOLL_REQUIRE_KVM").as_deref() == Ok("1") => {
            panic!("HALTPOLL_REQUIRE_KVM=1 but KVM cannot be used: {e}")
        }
        Err(e) => {
            eprintln!("skipping {test}: {e} (set HALTPOLL_REQUIRE_KVM=1 to make this a failure)");
            skipped(&e.to_string());
            None
        }
    }
}

static SKIPPED: AtomicUsize = AtomicUsize::new(0);
static WHY: OnceLock<String> = OnceLock::new();

/// Counts a skipped test and, on the first, arranges the summary line at exit.
fn skipped(why: &str) {
    static HOOK: Once = Once::new();
    WHY.get_or_init(|| why.to_owned());
    SKIPPED.fetch_add(1, Ordering::Relaxed);
    HOOK.call_once(|| {
        // SAFETY: `atexit` only records the function pointer; `summary` is an `extern "C" fn`
        // that takes nothing, never unwinds (it ignores write errors and does not panic), and
        // reads only statics that live until the process ends.
        unsafe { libc::atexit(summary) };
    });
}

/// Writes the skip summary to stderr, past libtest's output capture (which only redirects the
/// print macros of test threads).
extern "C" fn summary() {
    let count = SKIPPED.load(Ordering::Relaxed);
    let why = WHY.get().map_or("", String::as_str);
    let line = format!("\nSKIPPED {count} of these VM tests: {why} (HALTPOLL_REQUIRE_KVM=1 makes that a failure)\n\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
}
