//! The uncontended fast paths against the peers, one thread, nothing to wait for:
//! - `unpark_then_park`: give the token, take it (no poll, no syscall anywhere);
//! - `unpark_again`: an unpark while the token is already there;
//! - `park_timeout_zero`: look for a token that is not there and give up.
//!
//! And the costs that size the poll loop: the clock it reads every 200 relax hints
//! (`Instant::now` against a raw `rdtsc`) and one relax hint.
//!
//! `cargo bench -p haltpoll-park --bench fast_paths`

use std::hint::black_box;
use std::thread;
use std::time::{Duration, Instant};

use divan::Bencher;
use haltpoll_park::{Parker, Polling};

fn main() {
    divan::main();
}

fn haltpoll_parker() -> Parker {
    Parker::builder().polling(Polling::Force).start_polling(true).build().unwrap()
}

/// parking_lot has no token parker in its safe API: the usual flag + Mutex + Condvar.
#[derive(Default)]
struct LotEvent {
    flag: parking_lot::Mutex<bool>,
    cv: parking_lot::Condvar,
}

impl LotEvent {
    fn set(&self) {
        *self.flag.lock() = true;
        self.cv.notify_one();
    }

    fn wait_timeout(&self, timeout: Duration) -> bool {
        let mut flag = self.flag.lock();
        if !*flag {
            let _ = self.cv.wait_for(&mut flag, timeout);
        }
        std::mem::take(&mut *flag)
    }
}

mod unpark_then_park {
    use super::*;

    #[divan::bench]
    fn haltpoll(b: Bencher) {
        let p = haltpoll_parker();
        b.bench_local(|| {
            p.unparker().unpark();
            p.park();
        });
    }

    #[divan::bench]
    fn std_thread(b: Bencher) {
        let me = thread::current();
        b.bench_local(|| {
            me.unpark();
            thread::park();
        });
    }

    #[divan::bench]
    fn crossbeam(b: Bencher) {
        let p = crossbeam_utils::sync::Parker::new();
        b.bench_local(|| {
            p.unparker().unpark();
            p.park();
        });
    }

    #[divan::bench]
    fn parking_lot_condvar(b: Bencher) {
        let e = LotEvent::default();
        b.bench_local(|| {
            e.set();
            e.wait_timeout(Duration::MAX)
        });
    }
}

mod unpark_again {
    use super::*;

    #[divan::bench]
    fn haltpoll(b: Bencher) {
        let p = haltpoll_parker();
        b.bench_local(|| p.unparker().unpark());
    }

    #[divan::bench]
    fn std_thread(b: Bencher) {
        let me = thread::current();
        b.bench_local(|| me.unpark());
        thread::park(); // leave no token behind for the next benchmark
    }

    #[divan::bench]
    fn crossbeam(b: Bencher) {
        let p = crossbeam_utils::sync::Parker::new();
        b.bench_local(|| p.unparker().unpark());
    }

    #[divan::bench]
    fn parking_lot_condvar(b: Bencher) {
        let e = LotEvent::default();
        b.bench_local(|| e.set());
    }
}

mod park_timeout_zero {
    use super::*;

    #[divan::bench]
    fn haltpoll(b: Bencher) {
        let p = haltpoll_parker();
        b.bench_local(|| p.park_timeout(Duration::ZERO));
    }

    #[divan::bench]
    fn std_thread(b: Bencher) {
        b.bench_local(|| thread::park_timeout(Duration::ZERO));
    }

    #[divan::bench]
    fn crossbeam(b: Bencher) {
        let p = crossbeam_utils::sync::Parker::new();
        b.bench_local(|| p.park_timeout(Duration::ZERO));
    }

    #[divan::bench]
    fn parking_lot_condvar(b: Bencher) {
        let e = LotEvent::default();
        b.bench_local(|| e.wait_timeout(Duration::ZERO));
    }
}

mod poll_loop_costs {
    use super::*;

    #[divan::bench]
    fn instant_now() -> Instant {
        Instant::now()
    }

    #[cfg(target_arch = "x86_64")]
    #[divan::bench]
    fn rdtsc() -> u64 {
        // SAFETY: `rdtsc` exists on every x86_64 CPU and only reads the time-stamp counter.
        unsafe { core::arch::x86_64::_rdtsc() }
    }

    /// One relax hint (`pause`); the poll loop checks the token between two of them.
    #[divan::bench]
    fn relax() {
        std::hint::spin_loop();
        black_box(());
    }
}
