//! The cost of the governor's decision on the idle path: one `select` + `reflect` pair.

use divan::{Bencher, black_box};
use haltpoll::{Governor, IdleState, LATENCY_ANY, ValidParams};

fn main() {
    divan::main();
}

/// A poll hit: select POLL, reflect a poll ended by a wakeup (the window does not move).
#[divan::bench]
fn select_reflect_poll_hit(bencher: Bencher) {
    let mut gov = Governor::new(ValidParams::DEFAULT);
    gov.reflect(IdleState::Halt, 30_000, false);
    bencher.bench_local(|| {
        let state = gov.select(black_box(LATENCY_ANY));
        gov.reflect(state, black_box(20_000), false)
    });
}

/// A halt that moves the window: alternately grow and shrink, so every reflect adjusts.
#[divan::bench]
fn select_reflect_halt_adjust(bencher: Bencher) {
    let mut gov = Governor::new(ValidParams::DEFAULT);
    let mut long = false;
    bencher.bench_local(|| {
        long = !long;
        let _ = gov.select(black_box(LATENCY_ANY));
        let block = if long { 1_000_000 } else { 150_000 };
        gov.reflect(IdleState::Halt, black_box(block), false)
    });
}
