//! Model checks of the parker with loom: every interleaving of park, park_timeout and unpark,
//! with the futex modelled (including spurious returns) and the clock faked.
//!
//! `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p haltpoll-park --test loom_park --release`
//!
//! What each model shows:
//! - no lost wakeup: a park whose token was given returns (else loom reports a deadlock);
//! - no wakeup consumed twice: after the park that consumed the one token, a zero-timeout park
//!   finds none, and a park_timeout that timed out leaves the token for the next park;
//! - the message: what the unparker wrote (Relaxed) before `unpark` is visible after the park;
//! - `wait_until`: returns once its condition holds, whether its poll saw the condition or the
//!   token woke it, and the token it left behind makes no later wait sleep through an unpark.
#![cfg(loom)]

use std::time::Duration;

use haltpoll::Params;
use haltpoll::wake::POLLING;
use haltpoll_park::{DEFAULT_PARAMS, Parker, Polling};
use loom::sync::Arc;
use loom::sync::atomic::{AtomicU32, Ordering::Acquire, Ordering::Relaxed, Ordering::Release};
use loom::thread;

/// The parker configurations the models run under: each takes a different path to sleep.
#[derive(Clone, Copy, Debug)]
enum Mode {
    /// No polling: block at once (the std-like path).
    Off,
    /// Polling, window 0: the governor says HALT first.
    Cold,
    /// Polling, window grown: POLL (one round on the fake clock), then HALT.
    Warm,
    /// Latency limit 0: poll only, never block.
    PollOnly,
}

const MODES: [Mode; 4] = [Mode::Off, Mode::Cold, Mode::Warm, Mode::PollOnly];

fn parker(mode: Mode) -> Parker {
    // Windows of 1 ns: one round of relax hints on the fake clock (1 ms per read) times out.
    let params = Params { guest_halt_poll_ns: 2, grow_start: 1, ..DEFAULT_PARAMS };
    let b = Parker::builder().params(params).polling(Polling::Force).count_unparks(true);
    match mode {
        Mode::Off => b.polling(Polling::Off),
        Mode::Cold => b,
        Mode::Warm => b.start_polling(true),
        Mode::PollOnly => b.latency_limit(Duration::ZERO),
    }
    .build()
    .unwrap()
}

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    // The poll loop makes long executions: 4 preemptions cover every race of the protocol
    // (each needs at most two steps of one thread between two of another) in seconds.
    // LOOM_MAX_PREEMPTIONS=6 explores more and takes about a minute.
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(4);
    }
    b.check(f);
}

/// One unpark, one park: the park returns with the message, and leaves no token behind.
fn unpark_wakes_park(mode: Mode, spurious: usize) {
    model(move || {
        let p = parker(mode);
        p.spurious_futex_returns(spurious);
        let message = Arc::new(AtomicU32::new(0));
        let u = p.unparker().clone();
        let m = message.clone();
        let t = thread::spawn(move || {
            m.store(42, Relaxed);
            u.unpark();
        });
        p.park();
        assert_eq!(message.load(Relaxed), 42, "the park returned before the unpark's write was visible");
        assert_ne!(p.flags_now() & POLLING, 0, "the park returned with POLLING clear: unparks would make syscalls");
        t.join().unwrap();
        assert!(!p.park_timeout_unparked(Duration::ZERO), "the one token was consumed twice");
        let s = p.stats();
        assert_eq!(s.unparks, Some(1));
        assert!(s.futex_wakes <= s.blocks + s.late_hits, "a futex wake without a sleeper that announced itself");
    });
}

#[test]
fn unpark_wakes_park_in_every_mode() {
    for mode in MODES {
        unpark_wakes_park(mode, 0);
    }
}

/// The futex returns without a wake, twice: the park must not return without the token.
#[test]
fn spurious_futex_returns_are_not_wakeups() {
    unpark_wakes_park(Mode::Off, 2);
    unpark_wakes_park(Mode::Warm, 1);
}

/// park_timeout against an unpark: exactly one of the two parks gets the token.
#[test]
fn park_timeout_races_unpark() {
    for mode in MODES {
        model(move || {
            let p = parker(mode);
            let message = Arc::new(AtomicU32::new(0));
            let u = p.unparker().clone();
            let m = message.clone();
            let t = thread::spawn(move || {
                m.store(42, Relaxed);
                u.unpark();
            });
            let first = p.park_timeout_unparked(Duration::from_nanos(1));
            assert_ne!(p.flags_now() & POLLING, 0, "{mode:?}: returned with POLLING clear");
            if first {
                assert_eq!(message.load(Relaxed), 42, "{mode:?}: woken before the write was visible");
            }
            t.join().unwrap();
            let second = p.park_timeout_unparked(Duration::ZERO);
            assert!(first != second, "{mode:?}: token consumed {} times", u32::from(first) + u32::from(second));
        });
    }
}

/// Two unparkers, one park: the park returns with at least one message, and the two unparks
/// leave at most one token.
#[test]
fn two_unparkers() {
    for mode in [Mode::Off, Mode::Warm] {
        model(move || {
            let p = parker(mode);
            let messages = Arc::new([AtomicU32::new(0), AtomicU32::new(0)]);
            let threads: Vec<_> = (0..2)
                .map(|i| {
                    let (u, m) = (p.unparker().clone(), messages.clone());
                    thread::spawn(move || {
                        m[i].store(1, Relaxed);
                        u.unpark();
                    })
                })
                .collect();
            p.park();
            assert!(messages[0].load(Relaxed) + messages[1].load(Relaxed) >= 1, "{mode:?}: woken without a message");
            for t in threads {
                t.join().unwrap();
            }
            let _ = p.park_timeout_unparked(Duration::ZERO);
            assert!(!p.park_timeout_unparked(Duration::ZERO), "{mode:?}: two unparks left two tokens");
            assert_eq!(p.stats().unparks, Some(2));
        });
    }
}

/// Two threads hand a token back and forth twice, each parked on its own parker.
#[test]
fn ping_pong() {
    for mode in [Mode::Off, Mode::Warm] {
        model(move || {
            let (a, b) = (parker(mode), parker(mode));
            let (ua, ub) = (a.unparker().clone(), b.unparker().clone());
            let t = thread::spawn(move || {
                for _ in 0..2 {
                    b.park();
                    ua.unpark();
                }
            });
            for _ in 0..2 {
                ub.unpark();
                a.park();
            }
            t.join().unwrap();
        });
    }
}

/// Another thread writes a message (42), makes the condition (1) true, then unparks `p`.
fn ready_then_unpark(p: &Parker) -> (Arc<AtomicU32>, Arc<AtomicU32>, thread::JoinHandle<()>) {
    let (ready, message) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let (u, r, m) = (p.unparker().clone(), ready.clone(), message.clone());
    let t = thread::spawn(move || {
        m.store(42, Relaxed);
        r.store(1, Release);
        u.unpark();
    });
    (ready, message, t)
}

/// `wait_until` on a condition another thread makes true before it unparks: the wait returns
/// with the condition true (and the write behind it visible) in every mode, whether its poll saw
/// the condition or the token woke it; a token it did not need stays for one later park at most.
#[test]
fn wait_until_returns_once_the_condition_holds() {
    for mode in MODES {
        model(move || {
            let p = parker(mode);
            let (ready, message, t) = ready_then_unpark(&p);
            p.wait_until(|| ready.load(Acquire) == 1);
            assert_eq!(message.load(Relaxed), 42, "{mode:?}: the condition held but the write was not visible");
            assert_ne!(p.flags_now() & POLLING, 0, "{mode:?}: returned with POLLING clear");
            t.join().unwrap();
            let _ = p.park_timeout_unparked(Duration::ZERO);
            assert!(!p.park_timeout_unparked(Duration::ZERO), "{mode:?}: one unpark left two tokens");
        });
    }
}

/// Two conditions made true by two threads, waited for one after the other: the second wait
/// must not sleep through its unpark because the first left a token or took one.
#[test]
fn wait_until_twice_with_two_unparkers() {
    for mode in [Mode::Off, Mode::Warm] {
        model(move || {
            let p = parker(mode);
            let bits = Arc::new(AtomicU32::new(0));
            let threads: Vec<_> = (0..2)
                .map(|i| {
                    let (u, b) = (p.unparker().clone(), bits.clone());
                    thread::spawn(move || {
                        b.fetch_or(1 << i, Release);
                        u.unpark();
                    })
                })
                .collect();
            p.wait_until(|| bits.load(Acquire) & 1 != 0);
            p.wait_until(|| bits.load(Acquire) & 2 != 0);
            for t in threads {
                t.join().unwrap();
            }
        });
    }
}

/// `wait_until_timeout` against the unpark: true only when the condition holds, and the
/// parker left running (POLLING set) either way.
#[test]
fn wait_until_timeout_races_the_condition() {
    for mode in MODES {
        model(move || {
            let p = parker(mode);
            let (ready, _, t) = ready_then_unpark(&p);
            let ok = p.wait_until_timeout(|| ready.load(Acquire) == 1, Duration::from_nanos(1));
            if ok {
                assert_eq!(ready.load(Relaxed), 1, "{mode:?}: true without the condition");
            }
            assert_ne!(p.flags_now() & POLLING, 0, "{mode:?}: returned with POLLING clear");
            t.join().unwrap();
            assert!(p.wait_until_timeout(|| ready.load(Acquire) == 1, Duration::ZERO));
        });
    }
}
