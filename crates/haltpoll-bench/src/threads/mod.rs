//! The harness behind `haltpoll bench threads`: two threads hand a message back and forth, for
//! every variant of waiting in one run, side by side.
//!
//! One *cell* is one variant at one think time. Two fresh threads, pinned to two different
//! CPUs when the process may use two:
//! - the **sender** thinks (spins or sleeps for the think time), takes a timestamp, publishes
//!   the next sequence number and wakes the receiver, then waits for the receiver's ack;
//! - the **receiver** waits for the message, reads the clock as soon as its wait returns (the
//!   one-way *wake latency* is that minus the sender's timestamp), acks, and waits again.
//!
//! The *round trip* is the sender's time from its timestamp to the return of its wait for the
//! ack: two wakes, one after the think time and one at once. The receiver's CPU time and sleeps
//! (voluntary context switches), read with [`ThreadUsage`] as the VMM reads its vCPU threads,
//! over the measured round trips, divided by their number, are the waiting thread's cost per
//! wake. The first `warmup` round trips of a cell are not measured (a haltpoll parker's window
//! starts at 0).
//!
//! Cells run repetition by repetition, and within one every think time and variant in turn, so
//! a disturbance (another build on the machine) spreads over all variants instead of hitting
//! one. [`summarize`] pools the repetitions; [`check_targets`] compares the variants.

mod rows;
mod variants;

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Acquire, Ordering::Relaxed, Ordering::Release};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::host::{self, ThreadUsage};
use crate::limits;
pub use rows::{Row, Target, check_targets, summarize};
use variants::{Primitive, Waiter, Waker};

use haltpoll::{GovernorParams, ValidPredictiveParams};
use haltpoll_park::{Builder, Stats};

/// A way of waiting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Variant {
    /// Busy-wait on the message: the limit.
    Spin,
    /// Busy-wait on a flag of its own cache line, which the waker sets after the message: the
    /// floor of any wake through a flag or token, the parker's included.
    SpinFlag,
    /// The haltpoll [`Parker`](haltpoll_park::Parker), as the configured builder makes it.
    Haltpoll,
    /// The haltpoll parker waiting with [`Parker::wait_until`](haltpoll_park::Parker::wait_until)
    /// on the message: its poll watches the message too, not only the token.
    HaltpollWaitUntil,
    /// The haltpoll parker with Linux's guest accounting,
    /// [`BlockTime::HaltOnly`](haltpoll::BlockTime::HaltOnly).
    HaltpollGuestRule,
    /// The haltpoll parker with the predictive governor ([`Config::predictive`]).
    HaltpollPredictive,
    /// `std::thread::park`.
    Std,
    /// crossbeam-utils' `Parker`.
    Crossbeam,
    /// parking_lot's `Condvar` on a `Mutex<bool>`.
    ParkingLot,
    /// crossbeam's `Backoff` until `is_completed`, then crossbeam's `Parker`.
    SpinThenPark,
    /// A future woken by its waker, run by `haltpoll_park::block_on`.
    BlockOnHaltpoll,
    /// The same future run by `futures::executor::block_on`.
    BlockOnFutures,
    /// The same future run by `pollster::block_on`.
    BlockOnPollster,
}

impl Variant {
    /// Every variant, in table order.
    pub const ALL: [Variant; 13] = [
        Variant::Spin,
        Variant::SpinFlag,
        Variant::Haltpoll,
        Variant::HaltpollWaitUntil,
        Variant::HaltpollGuestRule,
        Variant::HaltpollPredictive,
        Variant::Std,
        Variant::Crossbeam,
        Variant::ParkingLot,
        Variant::SpinThenPark,
        Variant::BlockOnHaltpoll,
        Variant::BlockOnFutures,
        Variant::BlockOnPollster,
    ];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Spin => "spin",
            Variant::SpinFlag => "spin-flag",
            Variant::Haltpoll => "haltpoll",
            Variant::HaltpollWaitUntil => "haltpoll-wait-until",
            Variant::HaltpollGuestRule => "haltpoll-guest-rule",
            Variant::HaltpollPredictive => "haltpoll-predictive",
            Variant::Std => "std",
            Variant::Crossbeam => "crossbeam",
            Variant::ParkingLot => "parking-lot",
            Variant::SpinThenPark => "spin-then-park",
            Variant::BlockOnHaltpoll => "block-on-haltpoll",
            Variant::BlockOnFutures => "block-on-futures",
            Variant::BlockOnPollster => "block-on-pollster",
        }
    }
}

impl Variant {
    /// Every variant's name, in table order, comma-separated (for error messages).
    pub fn names() -> String {
        Variant::ALL.map(Variant::name).join(", ")
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Variant {
    type Err = ThreadsError;
    fn from_str(s: &str) -> Result<Variant, ThreadsError> {
        Variant::ALL.into_iter().find(|v| v.name() == s).ok_or_else(|| ThreadsError::UnknownVariant(s.to_owned()))
    }
}

/// What the sender does for the think time before each message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Think {
    /// Spin on the clock: exact think times, the sender's CPU stays busy (a producer working).
    #[default]
    Spin,
    /// `thread::sleep`: the sender's CPU idles too; sleeps overshoot by the timer slack.
    Sleep,
}

/// What to run.
#[derive(Clone, Debug)]
pub struct Config {
    /// The variants, in the order of the table.
    pub variants: Vec<Variant>,
    /// Think times before each message.
    pub think_times: Vec<Duration>,
    /// What the sender does while it thinks.
    pub think: Think,
    /// Repetitions of every cell.
    pub repetitions: u32,
    /// Measured round trips per cell: at least this many...
    pub min_round_trips: u64,
    /// ...and at most this many...
    pub max_round_trips: u64,
    /// ...stopping between the two once a cell has run this long.
    pub cell_time: Duration,
    /// Round trips at the start of each cell that are not measured.
    pub warmup: u64,
    /// Pin the two threads to two different CPUs (when the process may use two).
    pub pin: bool,
    /// How the haltpoll variants build their parkers.
    pub haltpoll: Builder,
    /// The predictive governor's parameters, for `haltpoll-predictive` (the rest of its
    /// parker as [`Config::haltpoll`] says).
    pub predictive: ValidPredictiveParams,
}

impl Default for Config {
    /// Every variant at 0, 10 us, 100 us, 1 ms and 10 ms of spinning think time, 3
    /// repetitions, 100 to 20 000 round trips per cell in about 0.3 s, 20 warm-up round trips,
    /// pinned, the default haltpoll parker.
    fn default() -> Config {
        Config {
            variants: Variant::ALL.to_vec(),
            think_times: [0, 10_000, 100_000, 1_000_000, 10_000_000].map(Duration::from_nanos).to_vec(),
            think: Think::Spin,
            repetitions: 3,
            min_round_trips: 100,
            max_round_trips: 20_000,
            cell_time: Duration::from_millis(300),
            warmup: 20,
            pin: true,
            haltpoll: Builder::new(),
            predictive: ValidPredictiveParams::DEFAULT,
        }
    }
}

impl Config {
    /// Checks that the configuration can run, or says what to change.
    pub fn validate(&self) -> Result<(), ThreadsError> {
        if self.variants.is_empty() {
            return Err(ThreadsError::Empty("variants"));
        }
        if self.think_times.is_empty() {
            return Err(ThreadsError::Empty("think times"));
        }
        if self.repetitions == 0 {
            return Err(ThreadsError::Empty("repetitions"));
        }
        if self.repetitions > MAX_REPETITIONS {
            return Err(ThreadsError::Repetitions(self.repetitions));
        }
        if self.min_round_trips == 0 || self.min_round_trips > self.max_round_trips {
            return Err(ThreadsError::RoundTrips { min: self.min_round_trips, max: self.max_round_trips });
        }
        for &think in &self.think_times {
            limits::check_think("think time", think).map_err(ThreadsError::Think)?;
        }
        self.haltpoll.build().map(drop).map_err(ThreadsError::Params)
    }

    /// The number of cells [`run`] measures (saturating: a count too large is refused by
    /// [`Config::validate`] before anything is allocated for it).
    pub fn cells(&self) -> usize {
        (self.variants.len().saturating_mul(self.think_times.len())).saturating_mul(self.repetitions as usize)
    }
}

/// Why the benchmark cannot run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ThreadsError {
    /// A list that must not be empty is.
    #[error("no {0} to run: give at least one")]
    Empty(&'static str),
    /// More repetitions than [`MAX_REPETITIONS`].
    #[error("{0} repetitions: give 1 to {MAX_REPETITIONS}")]
    Repetitions(u32),
    /// The round-trip bounds are inverted or zero.
    #[error("round trips per cell must be at least 1 and min ({min}) at most max ({max})")]
    RoundTrips {
        /// The minimum asked for.
        min: u64,
        /// The maximum asked for.
        max: u64,
    },
    /// A think time above the benchmarks' limit.
    #[error("{0}")]
    Think(String),
    /// A variant name nobody knows.
    #[error("unknown variant {0:?}: choose from {list}", list = Variant::names())]
    UnknownVariant(String),
    /// The haltpoll parker's parameters cannot work.
    #[error("invalid haltpoll parameters: {0}")]
    Params(haltpoll::ParamError),
    /// A test asked this cell to fail (`HALTPOLL_TEST_FAIL_RUN`, [`crate::injected_failure`]).
    #[error("{0}")]
    Injected(String),
    /// A benchmark thread panicked (a bug in the harness or a variant).
    #[error("the {variant} benchmark thread panicked")]
    Panicked {
        /// The variant it ran.
        variant: Variant,
    },
}

/// One cell of one repetition, measured.
#[derive(Clone, Debug)]
pub struct Run {
    /// The variant.
    pub variant: Variant,
    /// The think time, ns.
    pub think_ns: u64,
    /// Which repetition (from 0).
    pub repetition: u32,
    /// One-way wake latencies, ns, one per measured round trip, in order.
    pub wake_ns: Vec<u64>,
    /// Round trips, ns, as the sender saw them, in order.
    pub round_trip_ns: Vec<u64>,
    /// The receiver's CPU time over the measured round trips, ns.
    pub waiter_cpu_ns: u64,
    /// The receiver's voluntary context switches (sleeps) over them.
    pub waiter_sleeps: u64,
    /// Measured wakes that needed no system call, if the variant can tell.
    pub no_syscall_wakes: Option<u64>,
    /// Whether the two threads ran pinned to two CPUs.
    pub pinned: bool,
    /// The receiving haltpoll parker's statistics over the whole cell, warm-up included.
    pub parker_stats: Option<Stats>,
}

/// The most repetitions of every cell: 10,000 is days of a default run, and bounds what the
/// results hold (a `Run` per cell) to megabytes.
pub const MAX_REPETITIONS: u32 = 10_000;

/// What [`run`] ran: the cells that finished, and the error that stopped the rest, if one did
/// (the cells before it stand, as after a stop).
#[derive(Debug)]
pub struct Ran {
    /// The cells that finished, in the order they ran.
    pub runs: Vec<Run>,
    /// The error of the cell that failed, or of the configuration.
    pub error: Option<ThreadsError>,
}

/// Runs every cell of `config`, calling `progress(done, total, run)` after each, until `stop`
/// is set (the cell then running ends at its next round trip and is left out) or a cell fails:
/// the cells that finished are returned either way.
pub fn run(config: &Config, progress: &mut dyn FnMut(usize, usize, &Run), stop: &AtomicBool) -> Ran {
    let total = config.cells();
    // Not more than a valid configuration holds: an invalid one is refused before its first cell.
    let mut runs = Vec::with_capacity(total.min(MAX_REPETITIONS as usize));
    let error = run_cells(config, progress, stop, &mut runs).err();
    Ran { runs, error }
}

fn run_cells(
    config: &Config,
    progress: &mut dyn FnMut(usize, usize, &Run),
    stop: &AtomicBool,
    runs: &mut Vec<Run>,
) -> Result<(), ThreadsError> {
    config.validate()?;
    let total = config.cells();
    for repetition in 0..config.repetitions {
        for &think in &config.think_times {
            for &variant in &config.variants {
                if let Some(why) = crate::injected_failure(runs.len() + 1) {
                    return Err(ThreadsError::Injected(why));
                }
                let cell = Cell { config, think, repetition, variant, stop };
                let run = match variant {
                    Variant::Spin => cell.run::<variants::Spin>(),
                    Variant::SpinFlag => cell.run::<variants::SpinFlag>(),
                    Variant::Haltpoll => cell.run::<variants::Haltpoll>(),
                    Variant::HaltpollWaitUntil => cell.run::<variants::HaltpollWaitUntil>(),
                    Variant::HaltpollGuestRule => cell.run::<variants::HaltpollGuestRule>(),
                    Variant::HaltpollPredictive => cell.run_with::<variants::Haltpoll>(
                        &config.haltpoll.governor(GovernorParams::Predictive(config.predictive)),
                    ),
                    Variant::Std => cell.run::<variants::StdPark>(),
                    Variant::Crossbeam => cell.run::<variants::Crossbeam>(),
                    Variant::ParkingLot => cell.run::<variants::ParkingLot>(),
                    Variant::SpinThenPark => cell.run::<variants::SpinThenPark>(),
                    Variant::BlockOnHaltpoll => cell.run::<variants::BlockOn<variants::HaltpollBlockOn>>(),
                    Variant::BlockOnFutures => cell.run::<variants::BlockOn<variants::FuturesBlockOn>>(),
                    Variant::BlockOnPollster => cell.run::<variants::BlockOn<variants::PollsterBlockOn>>(),
                }?;
                // A cell cut short measured fewer round trips than asked: not a result.
                let Some(run) = run.filter(|_| !stop.load(Relaxed)) else { return Ok(()) };
                runs.push(run);
                progress(runs.len(), total, &runs[runs.len() - 1]);
            }
        }
    }
    Ok(())
}

/// The last message of a cell carries this bit: the receiver acks it and ends.
const LAST: u64 = 1 << 63;

/// What the two threads of a cell share.
struct Shared {
    base: Instant,
    to_receiver: AtomicU64,
    to_sender: AtomicU64,
    stamp_ns: AtomicU64,
    start: Barrier,
}

impl Shared {
    fn now_ns(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// What the receiver measured.
struct Received {
    wake_ns: Vec<u64>,
    cpu_ns: u64,
    sleeps: u64,
    no_syscall_wakes: Option<u64>,
    parker_stats: Option<Stats>,
}

struct Cell<'a> {
    config: &'a Config,
    think: Duration,
    repetition: u32,
    variant: Variant,
    stop: &'a AtomicBool,
}

impl Cell<'_> {
    /// Runs the cell; `None` if `stop` cut it short.
    fn run<P: Primitive>(&self) -> Result<Option<Run>, ThreadsError> {
        self.run_with::<P>(&self.config.haltpoll)
    }

    /// Runs the cell with haltpoll parkers built by `haltpoll`.
    fn run_with<P: Primitive>(&self, haltpoll: &Builder) -> Result<Option<Run>, ThreadsError> {
        let (receiver_waits, sender_wakes) = P::pair(haltpoll);
        let (sender_waits, receiver_acks) = P::pair(haltpoll);
        let shared = Arc::new(Shared {
            base: Instant::now(),
            to_receiver: AtomicU64::new(0),
            to_sender: AtomicU64::new(0),
            stamp_ns: AtomicU64::new(0),
            start: Barrier::new(2),
        });
        let cpus = if self.config.pin { two_cpus() } else { None };
        let warmup = self.config.warmup;
        let receiver = {
            let shared = shared.clone();
            thread::spawn(move || {
                if let Some((_, cpu)) = cpus {
                    // Best effort: unpinned, the cell still measures, only noisier.
                    host::pin(cpu);
                }
                receive(receiver_waits, receiver_acks, &shared, warmup)
            })
        };
        // The sender runs on a thread of its own too, so the caller's affinity stays as it was.
        // It is scoped: it borrows the stop flag.
        let round_trip_ns = thread::scope(|scope| {
            let sender = scope.spawn(move || {
                if let Some((cpu, _)) = cpus {
                    host::pin(cpu);
                }
                send(sender_waits, sender_wakes, &shared, self.config, self.think, self.stop)
            });
            sender.join()
        });
        let panicked = |_| ThreadsError::Panicked { variant: self.variant };
        let round_trip_ns = round_trip_ns.map_err(panicked)?;
        let received = receiver.join().map_err(panicked)?;
        if self.stop.load(Relaxed) {
            return Ok(None);
        }
        Ok(Some(Run {
            variant: self.variant,
            think_ns: u64::try_from(self.think.as_nanos()).unwrap_or(u64::MAX),
            repetition: self.repetition,
            wake_ns: received.wake_ns,
            round_trip_ns,
            waiter_cpu_ns: received.cpu_ns,
            waiter_sleeps: received.sleeps,
            no_syscall_wakes: received.no_syscall_wakes,
            pinned: cpus.is_some(),
            parker_stats: received.parker_stats,
        }))
    }
}

/// The sender's loop; returns the measured round trips. Once `stop` is set, the next message
/// is the last (the receiver must see one to end).
fn send<W: Waiter, K: Waker>(
    mut acks: W,
    receiver: K,
    sh: &Shared,
    config: &Config,
    think: Duration,
    stop: &AtomicBool,
) -> Vec<u64> {
    acks.register();
    sh.start.wait();
    let (warmup, min, max) = (config.warmup, config.min_round_trips, config.max_round_trips);
    let mut round_trips = Vec::with_capacity(usize::try_from(max.min(1 << 20)).unwrap_or(0));
    let started = Instant::now();
    let mut i: u64 = 0;
    loop {
        i += 1;
        let measured = i.saturating_sub(warmup);
        let last = measured >= min && (measured >= max || started.elapsed() >= config.cell_time);
        think_for(config.think, think, stop);
        let last = last || stop.load(Relaxed);
        let msg = if last { i | LAST } else { i };
        let stamp = sh.now_ns();
        sh.stamp_ns.store(stamp, Relaxed);
        // Release: the stamp is visible to the receiver once it sees the message.
        sh.to_receiver.store(msg, Release);
        receiver.wake();
        acks.wait(&|| sh.to_sender.load(Acquire) == msg);
        let back = sh.now_ns();
        if i > warmup {
            round_trips.push(back.saturating_sub(stamp));
        }
        if last {
            return round_trips;
        }
    }
}

/// The receiver's loop: wait, time the wake, ack.
fn receive<W: Waiter, K: Waker>(mut messages: W, sender: K, sh: &Shared, warmup: u64) -> Received {
    messages.register();
    sh.start.wait();
    let mut wake_ns = Vec::new();
    let (mut usage0, mut syscalls0) = (ThreadUsage::now(), messages.no_syscall_wakes());
    let mut seen = 0;
    loop {
        messages.wait(&|| sh.to_receiver.load(Acquire) != seen);
        let woke = sh.now_ns();
        let msg = sh.to_receiver.load(Acquire);
        let i = msg & !LAST;
        if i > warmup {
            wake_ns.push(woke.saturating_sub(sh.stamp_ns.load(Relaxed)));
        }
        seen = msg;
        if msg & LAST != 0 {
            let usage = ThreadUsage::now().since(&usage0);
            let (cpu_ns, sleeps) = (u64::try_from(usage.cpu_time.as_nanos()).unwrap_or(u64::MAX), usage.slept);
            let no_syscall_wakes = match (messages.no_syscall_wakes(), syscalls0) {
                (Some(now), Some(then)) => Some(now - then),
                _ => None,
            };
            sh.to_sender.store(msg, Release);
            sender.wake();
            return Received { wake_ns, cpu_ns, sleeps, no_syscall_wakes, parker_stats: messages.parker_stats() };
        }
        if i == warmup {
            // The measured part starts with the next message.
            (usage0, syscalls0) = (ThreadUsage::now(), messages.no_syscall_wakes());
        }
        sh.to_sender.store(msg, Release);
        sender.wake();
    }
}

/// The first two CPUs this process may run on, to put the two threads on different CPUs;
/// None if it may run on only one.
fn two_cpus() -> Option<(usize, usize)> {
    let mut cpus = host::host_cpus().ok()?.into_iter();
    Some((cpus.next()?, cpus.next()?))
}

/// Spins or sleeps for `d`; a spin ends early once `stop` is set.
fn think_for(how: Think, d: Duration, stop: &AtomicBool) {
    if d.is_zero() {
        return;
    }
    match how {
        Think::Spin => {
            let start = Instant::now();
            while start.elapsed() < d && !stop.load(Relaxed) {
                std::hint::spin_loop();
            }
        }
        Think::Sleep => thread::sleep(d),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Ran {
        /// Every cell's run, or the error.
        fn all(self) -> Result<Vec<Run>, ThreadsError> {
            self.error.map_or(Ok(self.runs), Err)
        }
    }

    fn quick(variants: Vec<Variant>, think_us: u64) -> Config {
        Config {
            variants,
            think_times: vec![Duration::from_micros(think_us)],
            repetitions: 1,
            min_round_trips: 30,
            max_round_trips: 30,
            cell_time: Duration::ZERO,
            warmup: 5,
            ..Config::default()
        }
    }

    #[test]
    fn a_run_gives_a_row_per_variant() {
        let config = Config {
            variants: vec![Variant::Spin, Variant::Haltpoll],
            think_times: vec![Duration::ZERO],
            repetitions: 1,
            min_round_trips: 50,
            cell_time: Duration::from_millis(10),
            ..Config::default()
        };
        let runs = run(&config, &mut |_done, _total, _run| {}, &AtomicBool::new(false)).all().unwrap();
        let rows = summarize(&runs);
        assert_eq!(rows.len(), 2);
        assert!(rows.iter().all(|r| r.wakes >= 50));
    }

    #[test]
    fn every_variant_delivers_every_message() {
        let config = quick(Variant::ALL.to_vec(), 0);
        let mut calls = 0;
        let runs = run(
            &config,
            &mut |done, total, _| {
                calls += 1;
                assert_eq!((done, total), (calls, Variant::ALL.len()));
            },
            &AtomicBool::new(false),
        )
        .all()
        .unwrap();
        for r in &runs {
            assert_eq!(r.wake_ns.len(), 30, "{}", r.variant);
            assert_eq!(r.round_trip_ns.len(), 30, "{}", r.variant);
            // A round trip contains the one-way wake that started it (same clock, ordered).
            let (wake, rtt) = (r.wake_ns.iter().sum::<u64>(), r.round_trip_ns.iter().sum::<u64>());
            assert!(wake <= rtt, "{}: wakes {wake} > round trips {rtt}", r.variant);
            if let Some(n) = r.no_syscall_wakes {
                assert!(n <= 30, "{}: {n} wakes counted for 30 measured messages", r.variant);
            }
        }
        let spin = runs.iter().find(|r| r.variant == Variant::Spin).unwrap();
        assert_eq!(spin.no_syscall_wakes, Some(30), "every measured wake of the spinner");
        let hp = runs.iter().find(|r| r.variant == Variant::Haltpoll).unwrap();
        let stats = hp.parker_stats.unwrap();
        assert_eq!(stats.parks, 35, "warm-up and measured messages, one park each");
    }

    #[test]
    fn a_stop_keeps_the_cells_that_finished_and_drops_the_one_it_cut() {
        let config = quick(vec![Variant::Spin, Variant::Haltpoll, Variant::Std], 0);
        let stop = AtomicBool::new(false);
        // Stopped after the first cell: the harness runs no further cell.
        let runs = run(&config, &mut |_, _, _| stop.store(true, Relaxed), &stop).all().unwrap();
        assert_eq!(runs.iter().map(|r| r.variant).collect::<Vec<_>>(), [Variant::Spin]);

        // Stopped in the middle of a cell of 10 round trips of two 1 s think times: the cell
        // ends at its next round trip (the test would take 20 s otherwise) and is left out.
        let long = Config { min_round_trips: 10, max_round_trips: 10, ..quick(vec![Variant::Haltpoll], 1_000_000) };
        let stop = AtomicBool::new(false);
        let runs = thread::scope(|s| {
            s.spawn(|| {
                thread::sleep(Duration::from_millis(200));
                stop.store(true, Relaxed);
            });
            run(&long, &mut |_, _, _| {}, &stop).all().unwrap()
        });
        assert!(runs.is_empty(), "the cut cell is not a result");
    }

    #[test]
    fn a_sleeping_sender_delivers_too() {
        let config = Config { think: Think::Sleep, ..quick(vec![Variant::Haltpoll, Variant::Std], 50) };
        for r in run(&config, &mut |_, _, _| {}, &AtomicBool::new(false)).all().unwrap() {
            assert_eq!(r.wake_ns.len(), 30, "{}", r.variant);
            assert!(r.waiter_cpu_ns > 0, "{}", r.variant);
        }
    }

    #[test]
    fn bad_configs_are_refused_with_a_reason() {
        let c = Config { variants: vec![], ..Config::default() };
        assert!(
            run(&c, &mut |_, _, _| {}, &AtomicBool::new(false)).all().unwrap_err().to_string().contains("no variants")
        );
        let c = Config { min_round_trips: 10, max_round_trips: 5, ..Config::default() };
        assert!(matches!(c.validate(), Err(ThreadsError::RoundTrips { .. })));
        let bad = Builder::new().params(haltpoll::Params { grow_start: 0, ..haltpoll_park::DEFAULT_PARAMS });
        let c = Config { haltpoll: bad, ..Config::default() };
        assert!(c.validate().unwrap_err().to_string().contains("grow_start"));
        let c = Config { think_times: vec![Duration::from_secs(1000)], ..Config::default() };
        assert_eq!(c.validate().unwrap_err().to_string(), "think time 1000s is too long: at most 1s per message");
        assert!(Config { think_times: vec![Duration::from_secs(1)], ..Config::default() }.validate().is_ok());
        assert!("nope".parse::<Variant>().unwrap_err().to_string().contains("choose from"));
        for v in Variant::ALL {
            assert_eq!(v.name().parse::<Variant>().unwrap(), v);
        }
    }
}
