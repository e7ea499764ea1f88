//! For tests that run VMs (this crate's and the CLI's): skip where there is no usable KVM,
//! fail instead under `HALTPOLL_REQUIRE_KVM=1`, and run one VM at a time.

use std::sync::{Mutex, MutexGuard};

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
            None
        }
    }
}
