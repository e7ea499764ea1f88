// One test source for both parkers: `Parker` and `Unparker` are whatever the including file
// imported (crossbeam's or haltpoll-park's). Written against crossbeam's documented API only.
//
// Timing: a park that must wait out a timeout is checked for waiting *at least* that long
// (both promise it); nothing checks an upper bound, which a loaded machine may blow.

use std::fmt::Debug;
use std::panic::{self, RefUnwindSafe, UnwindSafe};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::thread;
use std::time::{Duration, Instant};

/// How long a park without a token must wait, at least.
const WAIT: Duration = Duration::from_millis(20);

/// Parks with `WAIT` as timeout and says whether it waited it out (no token was there).
fn waited_out(p: &Parker) -> bool {
    let start = Instant::now();
    p.park_timeout(WAIT);
    start.elapsed() >= WAIT
}

/// The signatures a program written against crossbeam uses: function pointers, a tail call and
/// match arms of type `()`, the traits.
#[test]
fn the_api_has_crossbeams_signatures_and_traits() {
    let _: fn() -> Parker = Parker::new;
    let _: fn(&Parker) = Parker::park;
    let _: fn(&Parker, Duration) = Parker::park_timeout;
    let _: fn(&Parker, Instant) = Parker::park_deadline;
    let _: fn(&Parker) -> &Unparker = Parker::unparker;
    let _: fn(&Unparker) = Unparker::unpark;
    let _: fn(Parker) -> *const () = Parker::into_raw;
    let _: unsafe fn(*const ()) -> Parker = Parker::from_raw;
    let _: fn(Unparker) -> *const () = Unparker::into_raw;
    let _: unsafe fn(*const ()) -> Unparker = Unparker::from_raw;

    fn wait(p: &Parker, timeout: Option<Duration>) {
        match timeout {
            Some(t) => p.park_timeout(t),
            None => p.park(),
        }
    }
    fn wait_until(p: &Parker, deadline: Instant) {
        p.park_deadline(deadline)
    }
    let p = Parker::new();
    p.unparker().unpark();
    wait(&p, None);
    wait(&p, Some(Duration::ZERO));
    wait_until(&p, Instant::now());

    fn parker_traits<T: Default + Debug + Send + UnwindSafe + RefUnwindSafe + 'static>() {}
    fn unparker_traits<T: Clone + Debug + Send + Sync + UnwindSafe + RefUnwindSafe + 'static>() {}
    parker_traits::<Parker>();
    unparker_traits::<Unparker>();
}

#[test]
fn an_unpark_before_the_park_is_kept() {
    let p = Parker::new();
    p.unparker().unpark();
    let start = Instant::now();
    p.park(); // returns at once: would hang otherwise
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[test]
fn tokens_do_not_accumulate() {
    let p = Parker::default();
    for _ in 0..3 {
        p.unparker().unpark();
    }
    p.park();
    assert!(waited_out(&p), "three unparks left more than one token");
}

#[test]
fn a_park_consumes_the_token() {
    let p = Parker::new();
    p.unparker().unpark();
    p.park_timeout(Duration::from_secs(5));
    assert!(waited_out(&p), "the token was still there after the park that took it");
}

#[test]
fn timeouts_and_deadlines_are_waited_out_without_a_token() {
    let p = Parker::new();
    assert!(waited_out(&p));
    let deadline = Instant::now() + WAIT;
    p.park_deadline(deadline);
    assert!(Instant::now() >= deadline);
    // A zero timeout and a past deadline return at once, and take a token that is there.
    p.park_timeout(Duration::ZERO);
    p.park_deadline(Instant::now() - Duration::from_millis(1));
    p.unparker().unpark();
    p.park_deadline(Instant::now());
    assert!(waited_out(&p), "the past deadline left the token");
}

#[test]
fn an_unpark_from_another_thread_ends_a_park_with_its_message() {
    for delay in [Duration::ZERO, Duration::from_micros(100), Duration::from_millis(10)] {
        let p = Parker::new();
        let u = p.unparker().clone();
        let message = Arc::new(AtomicBool::new(false));
        let m = message.clone();
        let t = thread::spawn(move || {
            thread::sleep(delay);
            m.store(true, SeqCst);
            u.unpark();
        });
        p.park();
        assert!(message.load(SeqCst), "woken before the unpark (delay {delay:?})");
        t.join().unwrap();
    }
}

#[test]
fn unparks_from_many_threads_all_arrive() {
    const THREADS: usize = 8;
    const EACH: usize = 2_000;
    let p = Parker::new();
    let items = Arc::new(AtomicUsize::new(0));
    let producers: Vec<_> = (0..THREADS)
        .map(|_| {
            let (u, items) = (p.unparker().clone(), items.clone());
            thread::spawn(move || {
                for _ in 0..EACH {
                    items.fetch_add(1, SeqCst);
                    u.unpark();
                }
            })
        })
        .collect();
    // Tokens merge, but the last unpark comes after the last item: a consumer that sleeps only
    // without a token sees every item.
    while items.load(SeqCst) < THREADS * EACH {
        p.park();
    }
    for t in producers {
        t.join().unwrap();
    }
}

#[test]
fn raw_round_trips_keep_the_parker_and_its_token() {
    let p = Parker::new();
    p.unparker().unpark();
    let raw = Parker::into_raw(p);
    // SAFETY: `raw` comes from `Parker::into_raw` and is taken back once.
    let p = unsafe { Parker::from_raw(raw) };
    p.park(); // the token survived
    assert!(waited_out(&p));

    // An unparker through a pointer-sized integer to another thread, and back.
    let raw = Unparker::into_raw(p.unparker().clone()) as usize;
    let t = thread::spawn(move || {
        // SAFETY: the pointer comes from `Unparker::into_raw` and is taken back once, here.
        let u = unsafe { Unparker::from_raw(raw as *const ()) };
        u.unpark();
    });
    p.park();
    t.join().unwrap();
}

#[test]
fn clones_unpark_the_same_parker() {
    let p = Parker::new();
    let u = p.unparker().clone();
    let v = u.clone();
    drop(u);
    v.unpark();
    p.park();
    assert!(waited_out(&p));
}

#[test]
fn parks_survive_unwinding() {
    let p = Parker::new();
    // No AssertUnwindSafe: the parker itself is unwind safe.
    let timed_out = panic::catch_unwind(|| p.park_timeout(Duration::from_millis(1)));
    assert!(timed_out.is_ok());
    let panicked = panic::catch_unwind(|| {
        p.unparker().unpark();
        panic!("after the unpark");
    });
    assert!(panicked.is_err());
    p.park(); // the token the panicking closure left
    // A thread that panics while it holds an unparker leaves the parker working.
    let u = p.unparker().clone();
    let crashed = thread::spawn(move || {
        u.unpark();
        panic!("with an unparker");
    })
    .join();
    assert!(crashed.is_err());
    p.park();
    assert!(waited_out(&p));
}

#[test]
fn debug_names_the_type() {
    let p = Parker::new();
    assert!(format!("{p:?}").contains("Parker"));
    assert!(format!("{:?}", p.unparker()).contains("Unparker"));
}
