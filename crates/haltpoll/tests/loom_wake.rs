//! Model checks of the wake protocol with loom: `RUSTFLAGS="--cfg loom" cargo test -p haltpoll
//! --test loom_wake --release`.
#![cfg(loom)]

use haltpoll::wake::{Kick, WakeFlags};
use loom::sync::Arc;
use loom::sync::atomic::{AtomicU32, Ordering::Relaxed};
use loom::sync::{Condvar, Mutex};
use loom::thread;

/// The target CPU's interrupt controller. An IPI stays pending until the target takes it, as a
/// LAPIC's IRR does, and `sti; hlt` returns at once if one is pending. A halt that no IPI ends
/// is a deadlock, which loom reports.
#[derive(Default)]
struct Apic {
    pending: Mutex<bool>,
    interrupt: Condvar,
}

impl Apic {
    fn send_ipi(&self) {
        *self.pending.lock().unwrap() = true;
        self.interrupt.notify_one();
    }

    fn halt(&self) {
        let mut pending = self.pending.lock().unwrap();
        while !*pending {
            pending = self.interrupt.wait(pending).unwrap();
        }
        *pending = false;
    }
}

/// One idle entry of the poller: poll (bounded) with POLLING set, then clear-and-test and "halt"
/// (wait for the IPI). Returns (saw NEED_RESCHED while polling or at a test, halted).
fn idle(flags: &WakeFlags, apic: &Apic, poll_rounds: usize) -> (bool, bool) {
    if flags.set_polling_and_test() {
        flags.clear_polling_and_test();
        return (true, false);
    }
    for _ in 0..poll_rounds {
        if flags.need_resched() {
            flags.clear_polling_and_test();
            return (true, false);
        }
        thread::yield_now();
    }
    if flags.clear_polling_and_test() {
        return (true, false);
    }
    // Halt: only an IPI ends it. A lost wakeup shows as a deadlock, which loom reports.
    apic.halt();
    (false, true)
}

fn run(poll_rounds: usize, if_polling: bool) {
    loom::model(move || {
        let flags = Arc::new(WakeFlags::new());
        let apic = Arc::new(Apic::default());
        let message = Arc::new(AtomicU32::new(0));

        let waker = {
            let (flags, apic, message) = (flags.clone(), apic.clone(), message.clone());
            thread::spawn(move || {
                message.store(42, Relaxed);
                let skipped = if if_polling {
                    flags.wake_if_polling() || {
                        // Not polling: deliver through the IPI path, which also sets the flag.
                        let _ = flags.wake();
                        false
                    }
                } else {
                    flags.wake() == Kick::Skipped
                };
                if !skipped {
                    apic.send_ipi();
                }
                skipped
            })
        };

        let (saw_flag, halted) = idle(&flags, &apic, poll_rounds);
        let skipped = waker.join().unwrap();

        // No lost wakeup: the poller got out of idle (else loom reports a deadlock) and the
        // message written before the wake is visible.
        assert!(flags.take_need_resched(), "the wakeup is consumed exactly once");
        assert!(!flags.take_need_resched());
        assert_eq!(message.load(Relaxed), 42, "data written before the wake is visible after it");
        // The kick was skipped exactly when the poller saw the flag without one.
        if skipped {
            assert!(saw_flag && !halted, "waker skipped the IPI but the poller halted");
        }
        if halted {
            assert!(!skipped, "the poller halted, so the waker must have sent the IPI");
        }
    });
}

#[test]
fn no_lost_wakeup_without_polling() {
    run(0, false);
}

#[test]
fn no_lost_wakeup_with_polling() {
    run(2, false);
}

#[test]
fn wake_if_polling_no_lost_wakeup() {
    run(2, true);
}

/// Two wakers at once, each waking with `wake`; `check` sees the kicks they asked for, and the
/// poller always wakes.
fn two_wakers_with(wake: fn(&WakeFlags) -> Kick, check: fn(&[Kick])) {
    loom::model(move || {
        let flags = Arc::new(WakeFlags::new());
        let apic = Arc::new(Apic::default());
        let wakers: Vec<_> = (0..2)
            .map(|_| {
                let (flags, apic) = (flags.clone(), apic.clone());
                thread::spawn(move || {
                    let kick = wake(&flags);
                    if kick == Kick::Needed {
                        apic.send_ipi();
                    }
                    kick
                })
            })
            .collect();
        let _ = idle(&flags, &apic, 1);
        let kicks: Vec<Kick> = wakers.into_iter().map(|w| w.join().unwrap()).collect();
        check(&kicks);
        assert!(flags.take_need_resched());
    });
}

/// Two wakers with `wake`: either may kick, and the poller still wakes.
#[test]
fn two_wakers() {
    two_wakers_with(WakeFlags::wake, |_| {});
}

/// Two wakers with `wake_once`: at most one kicks (the first to set NEED_RESCHED while the
/// poller was not polling), yet the poller always wakes.
#[test]
fn two_wakers_wake_once() {
    two_wakers_with(WakeFlags::wake_once, |kicks| {
        assert!(kicks.iter().filter(|&&k| k == Kick::Needed).count() <= 1, "at most one kick");
    });
}
