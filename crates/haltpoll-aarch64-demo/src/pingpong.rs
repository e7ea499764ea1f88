//! The program: two CPUs pass messages back and forth in three phases, each CPU waiting with the
//! haltpoll driver's idle loop, and CPU 0 checks the counters at the end.
//!
//! - poll only (latency requirement 0, as Linux polls for a CPU that tolerates no exit latency):
//!   POLLING stays set, so every wake must skip its IPI;
//! - halt only (a ceiling of 0: the window never opens): POLLING is clear, so every wake must
//!   send an IPI; the sender waits until the receiver is about to execute `WFI` for that message
//!   (it says so in `HALTING`), so every IPI must wake a halt;
//! - the governor with Linux's defaults: whatever it picks, every message arrives.
//!
//! The wait is the core's idle loop (`haltpoll::idle::enter`), as the bare-metal x86_64
//! guest's driver (`crates/haltpoll-guest`) runs it: the token (NEED_RESCHED) is taken before
//! each look at the mailbox, POLLING stays set from a poll until the next halt, and the halt is
//! `WFI` after `clear_polling_and_test` said nothing is pending.

use core::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use core::sync::atomic::{AtomicU32, AtomicU64};

use haltpoll::idle::{self, Halted, Mechanism};
use haltpoll::platform::aarch64::{Wfe, Wfxt, counter};
use haltpoll::platform::{Counter, Cpu};
use haltpoll::poll::{PollOutcome, PollPlatform, poll};
use haltpoll::wake::{Kick, NEED_RESCHED, WakeFlags};
use haltpoll::{End, Governor, LATENCY_ANY, LatencyReq, Params, ValidParams};

use crate::boot::{self, exit, wfi};
use crate::gic;
use crate::uart::println;

/// Messages each way per phase.
const MESSAGES: u64 = 200;
/// How long a poll forced by a latency requirement of 0 lasts before the loop goes round again.
const TICK_NS: u64 = 1_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    PollOnly,
    HaltOnly,
    Adaptive,
}

const PHASES: [Phase; 3] = [Phase::PollOnly, Phase::HaltOnly, Phase::Adaptive];

impl Phase {
    const fn name(self) -> &'static str {
        match self {
            Phase::PollOnly => "poll only",
            Phase::HaltOnly => "halt only",
            Phase::Adaptive => "adaptive",
        }
    }

    fn governor(self) -> (Governor, LatencyReq) {
        match self {
            Phase::PollOnly => (Governor::new(ValidParams::DEFAULT), 0),
            Phase::HaltOnly => match (Params { guest_halt_poll_ns: 0, ..Params::DEFAULT }).validate() {
                Ok(params) => (Governor::new(params), LATENCY_ANY),
                Err(e) => panic!("a ceiling of 0 is valid: {e}"),
            },
            Phase::Adaptive => (Governor::new(ValidParams::DEFAULT), LATENCY_ANY),
        }
    }
}

/// One per cache line, so that the CPUs' words do not share one.
#[repr(align(64))]
struct Line<T>(T);

/// What one CPU counted in one phase (written by that CPU, read by CPU 0 after a barrier).
struct Counts {
    delivered: AtomicU64,
    kicks_skipped: AtomicU64,
    ipis_sent: AtomicU64,
    ipis_taken: AtomicU64,
    polls: AtomicU64,
    poll_hits: AtomicU64,
    halts: AtomicU64,
}

impl Counts {
    const fn new() -> Counts {
        Counts {
            delivered: AtomicU64::new(0),
            kicks_skipped: AtomicU64::new(0),
            ipis_sent: AtomicU64::new(0),
            ipis_taken: AtomicU64::new(0),
            polls: AtomicU64::new(0),
            poll_hits: AtomicU64::new(0),
            halts: AtomicU64::new(0),
        }
    }

    fn add(counter: &AtomicU64) {
        counter.store(counter.load(Relaxed) + 1, Relaxed);
    }

    fn get(counter: &AtomicU64) -> u64 {
        counter.load(Relaxed)
    }
}

static FLAGS: [Line<WakeFlags>; 2] = [Line(WakeFlags::new()), Line(WakeFlags::new())];
static MAILBOX: [Line<AtomicU64>; 2] = [Line(AtomicU64::new(0)), Line(AtomicU64::new(0))];
static COUNTS: [[Line<Counts>; 3]; 2] = [
    [Line(Counts::new()), Line(Counts::new()), Line(Counts::new())],
    [Line(Counts::new()), Line(Counts::new()), Line(Counts::new())],
];
/// The message each CPU last halted waiting for, stored just before its `WFI`.
static HALTING: [Line<AtomicU64>; 2] = [Line(AtomicU64::new(0)), Line(AtomicU64::new(0))];
/// IPIs still pending after the last phase, taken at the end.
static DRAINED: [Line<AtomicU64>; 2] = [Line(AtomicU64::new(0)), Line(AtomicU64::new(0))];
static ARRIVED: AtomicU32 = AtomicU32::new(0);

/// Waits until both CPUs have arrived here `round` times.
fn barrier(round: u32) {
    ARRIVED.fetch_add(1, Release);
    while ARRIVED.load(Acquire) < 2 * round {
        core::hint::spin_loop();
    }
}

/// The poll loop's view of a CPU waiting for message `seq`: the core's aarch64 wait on the
/// flags word, and the mailbox as well as NEED_RESCHED as the wake condition.
struct Waiting<'a> {
    cpu: Wfe,
    counter: Counter,
    flags: &'a WakeFlags,
    mailbox: &'a AtomicU64,
    seq: u64,
}

impl PollPlatform for Waiting<'_> {
    fn now_ns(&mut self) -> u64 {
        self.counter.ns(self.cpu.ticks())
    }

    fn relax(&mut self) {
        self.cpu.relax();
    }

    fn wake_pending(&mut self) -> bool {
        self.mailbox.load(Acquire) == self.seq || self.flags.need_resched()
    }

    fn wait(&mut self, deadline_ns: u64) {
        // The waker writes the flags word after the mailbox, so that write ends the WFE.
        self.cpu.wait_for_bits(self.flags.as_atomic(), NEED_RESCHED, self.counter.ticks(deadline_ns));
    }

    fn waits_per_clock_read(&self) -> u32 {
        self.cpu.waits_per_clock_read()
    }
}

/// Sends message `seq` to CPU `to`, with an IPI only if the wake protocol says one is needed.
fn send(to: usize, seq: u64, counts: &Counts) {
    MAILBOX[to].0.store(seq, Release);
    match FLAGS[to].0.wake() {
        Kick::Skipped => Counts::add(&counts.kicks_skipped),
        Kick::Needed => {
            gic::send_wake(to);
            Counts::add(&counts.ipis_sent);
        }
    }
}

/// Waits for message `seq` with the core's idle loop.
fn receive(me: usize, seq: u64, gov: &mut Governor, latency_req: LatencyReq, cpu: Wfe, counts: &Counts) {
    let (flags, mailbox) = (&FLAGS[me].0, &MAILBOX[me].0);
    loop {
        // The token only says "look at the mailbox": take it before looking, so a wake that
        // comes after the look leaves it set for the next poll or halt to see.
        flags.take_need_resched();
        let got = mailbox.load(Acquire);
        if got == seq {
            Counts::add(&counts.delivered);
            return;
        }
        assert!(got < seq, "CPU {me}: message {got} arrived while waiting for {seq}");
        let mut waiting = Waiting { cpu, counter: counter(), flags, mailbox, seq };
        idle::enter(gov, &mut Receiver { waiting: &mut waiting, me, counts, halt_start: 0 }, latency_req);
    }
}

/// The idle loop's mechanism on this CPU: the poll of [`Waiting`], and `WFI`.
struct Receiver<'a, 'w> {
    waiting: &'a mut Waiting<'w>,
    me: usize,
    counts: &'a Counts,
    /// When the current halt began (at its clear-then-test), ns.
    halt_start: u64,
}

impl Mechanism for Receiver<'_, '_> {
    fn now_ns(&mut self) -> u64 {
        self.waiting.now_ns()
    }

    fn set_polling_and_test(&mut self) -> bool {
        Counts::add(&self.counts.polls);
        let pending = self.waiting.flags.set_polling_and_test();
        if pending {
            Counts::add(&self.counts.poll_hits);
        }
        pending
    }

    /// Clear-then-test: from here every wake sends the SGI, and `WFI` ends on a pending
    /// interrupt even while interrupts are masked, so none is missed.
    fn clear_polling_and_test(&mut self) -> bool {
        self.halt_start = self.now_ns();
        self.waiting.flags.clear_polling_and_test()
    }

    fn poll(&mut self, limit_ns: u64, _times_hits: bool) -> PollOutcome {
        let out = poll(&mut *self.waiting, limit_ns);
        if !out.timed_out {
            Counts::add(&self.counts.poll_hits);
        }
        out
    }

    fn halt(&mut self, _timer_ns: Option<u64>) -> Halted {
        HALTING[self.me].0.store(self.waiting.seq, Release);
        wfi();
        Counts::add(&self.counts.halts);
        if gic::take_wake() {
            Counts::add(&self.counts.ipis_taken);
        }
        Halted { end: End::Wakeup, ns: self.now_ns().saturating_sub(self.halt_start) }
    }

    /// A halt the wakeup called off lasted from the clear-then-test to now, as the kernel
    /// measures a state's residency: a short one grows a window of 0.
    fn halt_called_off(&mut self) -> u64 {
        self.now_ns().saturating_sub(self.halt_start)
    }

    /// Without a window a forced poll lasts a tick, as Linux's `cpuidle_poll_time`.
    fn forced_poll_ns(&self, window_ns: u64) -> u64 {
        if window_ns == u64::MAX { TICK_NS } else { window_ns }
    }
}

fn run_phase(me: usize, index: usize, phase: Phase, cpu: Wfe) {
    let counts = &COUNTS[me][index].0;
    let flags = &FLAGS[me].0;
    let (mut gov, latency_req) = phase.governor();
    // Start each phase clean: no token; POLLING set (the CPU looks before it halts) unless the
    // phase only halts.
    flags.take_need_resched();
    match phase {
        Phase::HaltOnly => flags.clear_polling_and_test(),
        Phase::PollOnly | Phase::Adaptive => flags.set_polling_and_test(),
    };
    barrier(2 * index as u32 + 2);
    let peer = 1 - me;
    for k in 1..=MESSAGES {
        let seq = (index as u64 + 1) * 1_000_000 + k;
        let send_when_ready = |counts| {
            // Halt only: send once the peer is on its way into WFI for this message, so that
            // the IPI, not a look at the mailbox before the halt, is what ends its wait.
            while phase == Phase::HaltOnly && HALTING[peer].0.load(Acquire) != seq {
                core::hint::spin_loop();
            }
            send(peer, seq, counts);
        };
        if me == 0 {
            send_when_ready(counts);
            receive(me, seq, &mut gov, latency_req, cpu, counts);
        } else {
            receive(me, seq, &mut gov, latency_req, cpu, counts);
            send_when_ready(counts);
        }
    }
    barrier(2 * index as u32 + 3);
}

#[unsafe(no_mangle)]
extern "C" fn rust_main(cpu_index: u64) -> ! {
    let me = cpu_index as usize;
    if me == 0 {
        gic::init_distributor();
        println!("haltpoll-aarch64-demo: {MESSAGES} messages each way per phase, 2 CPUs");
        let ret = boot::start_cpu(1);
        if ret != 0 {
            println!("PSCI CPU_ON of CPU 1 failed: {ret}");
            exit(1);
        }
    }
    gic::init_cpu();
    boot::enable_event_stream();
    let cpu = Wfe::new(true, Wfxt::detect());
    barrier(1);
    for (index, phase) in PHASES.into_iter().enumerate() {
        run_phase(me, index, phase, cpu);
    }
    // Every wake is sent before the last barrier: what is still pending is taken now.
    while gic::take_wake() {
        Counts::add(&DRAINED[me].0);
    }
    barrier(2 * PHASES.len() as u32 + 2);
    if me != 0 {
        loop {
            wfi();
        }
    }
    exit(if report(cpu) { 0 } else { 1 })
}

/// Prints every counter and checks them; true if every check holds.
fn report(cpu: Wfe) -> bool {
    let wait = match (cpu.sleeps(), Wfxt::detect().is_some()) {
        (true, true) => "LDXR + WFET",
        (true, false) => "LDXR + WFE, bounded by the event stream",
        (false, _) => "spin",
    };
    println!("wait: {wait}");
    println!("phase       cpu delivered skipped ipis-sent ipis-taken polls poll-hits halts");
    let mut ok = true;
    let mut check = |holds: bool, what: &str| {
        if !holds {
            println!("FAILED: {what}");
            ok = false;
        }
    };
    let (mut sent, mut taken) = (0, 0);
    for (index, phase) in PHASES.into_iter().enumerate() {
        for (me, cpu_counts) in COUNTS.iter().enumerate() {
            let c = &cpu_counts[index].0;
            let get = Counts::get;
            println!(
                "{:<11} {me:>3} {:>9} {:>7} {:>9} {:>10} {:>5} {:>9} {:>5}",
                phase.name(),
                get(&c.delivered),
                get(&c.kicks_skipped),
                get(&c.ipis_sent),
                get(&c.ipis_taken),
                get(&c.polls),
                get(&c.poll_hits),
                get(&c.halts),
            );
            sent += get(&c.ipis_sent);
            taken += get(&c.ipis_taken);
            check(get(&c.delivered) == MESSAGES, "every message delivered");
            check(get(&c.kicks_skipped) + get(&c.ipis_sent) == MESSAGES, "one wake per message");
            match phase {
                Phase::PollOnly => {
                    check(get(&c.ipis_sent) == 0, "no IPI to a CPU that polls");
                    check(get(&c.halts) == 0, "no halt when no exit latency is tolerated");
                }
                Phase::HaltOnly => {
                    check(get(&c.ipis_sent) == MESSAGES, "an IPI for every wake of a CPU that halts");
                    check(get(&c.polls) == 0, "no poll with a window of 0");
                    check(get(&c.halts) >= MESSAGES, "a halt for every message");
                    check(get(&c.ipis_taken) == MESSAGES, "every halt woken by its SGI");
                }
                Phase::Adaptive => {}
            }
        }
    }
    let drained = Counts::get(&DRAINED[0].0) + Counts::get(&DRAINED[1].0);
    println!("IPIs: {sent} sent, {taken} taken by halts, {drained} pending at the end");
    // A GICv2 SGI sent again while the last one is pending merges with it: taken <= sent.
    check(taken + drained <= sent, "no IPI taken that was not sent");
    println!("{}", if ok { "PASS" } else { "FAIL" });
    ok
}
