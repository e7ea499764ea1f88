//! Stress: many handoffs between real threads with random think times, every token accounted
//! for. A lost wakeup shows as a stall, which a watchdog turns into a failure that names the
//! parkers' state; a token consumed twice shows as a handoff that arrives out of sequence.
//!
//! `HALTPOLL_STRESS_HANDOFFS` sets the handoffs each way per test (default 20 000, a debug
//! build does them in seconds; `.ci/run` sets 500 000 in release: 4.5 million handoffs over
//! the five tests). `HALTPOLL_STRESS_SEED` replays a run.

#![cfg(not(loom))]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::thread;
use std::time::{Duration, Instant};

use haltpoll::Params;
use haltpoll_park::{Builder, DEFAULT_PARAMS, Parker, Polling, Stats};

fn handoffs() -> u64 {
    if cfg!(miri) {
        return 200;
    }
    std::env::var("HALTPOLL_STRESS_HANDOFFS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000)
}

fn seed() -> u64 {
    std::env::var("HALTPOLL_STRESS_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| fastrand::u64(..))
}

/// A think time: mostly none, sometimes a short spin, rarely a sleep long enough to make the
/// waiter's poll time out and block (and its governor shrink). Sleeps are left out under miri,
/// whose clock is virtual.
fn think(rng: &mut fastrand::Rng) {
    match rng.u32(0..1000) {
        0..500 => {}
        500..900 => spin(Duration::from_nanos(rng.u64(0..2_000))),
        900..990 => spin(Duration::from_nanos(rng.u64(2_000..30_000))),
        _ if cfg!(miri) => {}
        _ => thread::sleep(Duration::from_micros(rng.u64(50..400))),
    }
}

fn spin(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}

/// Waits until `done`, failing if `progress` stops moving for `stall` (a lost wakeup).
fn watch(done: &AtomicBool, progress: &AtomicU64, stall: Duration, state: impl Fn() -> String) {
    let (mut last, mut since) = (progress.load(Relaxed), Instant::now());
    while !done.load(Relaxed) {
        thread::sleep(Duration::from_millis(20));
        let now = progress.load(Relaxed);
        if now != last {
            (last, since) = (now, Instant::now());
        } else if since.elapsed() > stall {
            panic!("no handoff for {stall:?} after {now}: a lost wakeup. {}", state());
        }
    }
}

fn stall() -> Duration {
    // Generous: CI machines may have two CPUs shared with other builds, and miri is slow.
    Duration::from_secs(if cfg!(miri) { 600 } else { 30 })
}

/// Two threads hand a sequence number back and forth. The ping side parks without a
/// deadline; the pong side parks with random short timeouts and retries, so timeouts race
/// unparks all along. Every number must arrive once and in order.
fn ping_pong(name: &str, builder: Builder) {
    let n = handoffs();
    let seed = seed();
    let builder = builder.count_unparks(true);
    let (ping, pong) = (builder.build().unwrap(), builder.build().unwrap());
    let (to_ping, to_pong) = (ping.unparker().clone(), pong.unparker().clone());
    let (ping_box, pong_box) = (Arc::new(AtomicU64::new(u64::MAX)), Arc::new(AtomicU64::new(u64::MAX)));
    let progress = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));

    let ponger = {
        let (ping_box, pong_box, progress) = (ping_box.clone(), pong_box.clone(), progress.clone());
        thread::spawn(move || {
            let mut rng = fastrand::Rng::with_seed(seed ^ 1);
            let mut timeouts = 0u64;
            for i in 0..n {
                while !pong.park_timeout_unparked(Duration::from_nanos(rng.u64(0..100_000))) {
                    timeouts += 1;
                }
                let got = pong_box.load(Relaxed);
                assert_eq!(got, i, "pong: woken without the handoff (seed {seed})");
                think(&mut rng);
                ping_box.store(i, Relaxed);
                progress.fetch_add(1, Relaxed);
                to_ping.unpark();
            }
            (pong, timeouts)
        })
    };
    let pinger = {
        let (ping_box, pong_box, progress, done) = (ping_box.clone(), pong_box.clone(), progress.clone(), done.clone());
        thread::spawn(move || {
            let mut rng = fastrand::Rng::with_seed(seed);
            for i in 0..n {
                think(&mut rng);
                pong_box.store(i, Relaxed);
                to_pong.unpark();
                ping.park();
                let got = ping_box.load(Relaxed);
                assert_eq!(got, i, "ping: woken without the handoff (seed {seed})");
                progress.fetch_add(1, Relaxed);
            }
            done.store(true, Relaxed);
            ping
        })
    };
    watch(&done, &progress, stall(), || {
        format!("seed {seed}, ping box {}, pong box {}", ping_box.load(Relaxed), pong_box.load(Relaxed))
    });
    let ping_stats = pinger.join().unwrap().stats();
    let (pong, timeouts) = ponger.join().unwrap();
    let pong_stats = pong.stats();
    assert_eq!(progress.load(Relaxed), 2 * n);
    check_accounting(&ping_stats, n, 0);
    check_accounting(&pong_stats, n, timeouts);
    eprintln!("{name}, {n} handoffs each way, seed {seed}\n  ping {ping_stats:?}\n  pong {pong_stats:?}");
}

/// Every park ended one way; every token was consumed once; no futex wake without a sleeper.
fn check_accounting(s: &Stats, handoffs: u64, timeouts: u64) {
    assert_eq!(s.unparks, Some(handoffs), "{s:?}");
    assert_eq!(s.parks, handoffs + timeouts, "one park per token plus the timed-out ones: {s:?}");
    assert_eq!(s.timeouts, timeouts, "{s:?}");
    // A park ends immediate, poll hit, late hit or block; only a timed-out one may instead end
    // in a poll that reached its deadline.
    let ended = s.immediate + s.poll_hits + s.late_hits + s.blocks;
    assert!(ended <= s.parks && ended + s.timeouts >= s.parks, "{s:?}");
    // POLLING is clear only while a park blocks (or, for a late hit, between its clear and its
    // set), and only the unpark that sets the token then wakes the futex: at most one wake per
    // block or late hit.
    assert!(s.futex_wakes <= s.blocks + s.late_hits, "{s:?}");
}

#[test]
fn ping_pong_polling() {
    ping_pong("polling", Parker::builder().polling(Polling::Force));
}

#[test]
fn ping_pong_without_polling() {
    ping_pong("no polling", Parker::builder().polling(Polling::Off));
}

/// A latency limit of 0: both sides only poll, never block.
#[test]
fn ping_pong_poll_only() {
    ping_pong("poll only", Parker::builder().polling(Polling::Force).latency_limit(Duration::ZERO));
}

/// Windows of 1 to 10 ms from the start: most waits are caught polling, the sleeps in the
/// think times sometimes outlast a window. (Under miri, whose clock runs fast, the default
/// window never grows; this one makes it poll.)
#[test]
fn ping_pong_wide_windows() {
    let params = Params { guest_halt_poll_ns: 10_000_000, grow_start: 1_000_000, ..DEFAULT_PARAMS };
    ping_pong("wide windows", Parker::builder().polling(Polling::Force).params(params).start_polling(true));
}

/// Three producers unpark one consumer after each item; tokens merge, but the consumer must
/// never sleep through the last one: it ends only once it has seen every item.
#[test]
fn many_unparkers_one_parker() {
    const PRODUCERS: u64 = 3;
    let per_producer = handoffs() / PRODUCERS;
    let total = per_producer * PRODUCERS;
    let seed = seed();
    let consumer = Parker::builder().polling(Polling::Force).count_unparks(true).build().unwrap();
    let items = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let (u, items) = (consumer.unparker().clone(), items.clone());
            thread::spawn(move || {
                let mut rng = fastrand::Rng::with_seed(seed.wrapping_add(p));
                for _ in 0..per_producer {
                    think(&mut rng);
                    items.fetch_add(1, Relaxed);
                    u.unpark();
                }
            })
        })
        .collect();
    let consumer = {
        let (items, done) = (items.clone(), done.clone());
        thread::spawn(move || {
            let mut parks = 0u64;
            while items.load(Relaxed) < total {
                consumer.park();
                parks += 1;
            }
            done.store(true, Relaxed);
            (consumer, parks)
        })
    };
    watch(&done, &items, stall(), || format!("seed {seed}"));
    for p in producers {
        p.join().unwrap();
    }
    let (consumer, parks) = consumer.join().unwrap();
    let s = consumer.stats();
    assert_eq!(s.unparks, Some(total));
    assert_eq!(s.parks, parks);
    // Not one wake per sleep or late hit here: a producer preempted between its unpark's RMW
    // and its load can wake a later sleep for nothing (the parker's module docs). Each unpark
    // makes at most one wake.
    assert!(s.futex_wakes <= total, "at most one futex wake per unpark: {s:?}");
    eprintln!("{PRODUCERS} producers, {total} items, {parks} parks, seed {seed}\n  {s:?}");
}
