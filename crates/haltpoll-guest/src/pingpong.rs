//! The ping-pong workload: pairs of vCPUs (0 and 1, 2 and 3, ...) pass a message back and forth.
//!
//! The even vCPU of a pair starts each round trip; both sides spin for the think time before
//! each message they send, so each waits (idles) about that long for the next one. The sender
//! stamps the TSC into the message; the receiver records when it started waiting, the stamp and
//! when it saw the message (a [`Sample`]), from which the VMM derives the one-way wake latency
//! and the idle periods.
//!
//! A warm-up of its own length and think time may come first (to let a governor's window settle,
//! or to show it move when the pattern changes). When it ends each vCPU calls
//! [`Cpu::begin_measurement`] and starts its counters afresh, so that counters, samples and the
//! VMM's readings cover the measured round trips only.

use core::sync::atomic::AtomicU64;
use core::sync::atomic::Ordering::{Acquire, Relaxed, Release};

use crate::cpu::Cpu;
use crate::idle::Idle;
use haltpoll_abi::{Counters, Sample};

/// One vCPU's inbox: the latest message's sequence number and send stamp. A cache line of its
/// own, so the two sides of a pair never share a line except through the message itself.
#[derive(Debug, Default)]
#[repr(C, align(64))]
pub struct Mailbox {
    seq: AtomicU64,
    stamp: AtomicU64,
    think: AtomicU64,
}

impl Mailbox {
    /// An empty inbox (no message yet: sequence 0).
    pub const fn new() -> Mailbox {
        Mailbox { seq: AtomicU64::new(0), stamp: AtomicU64::new(0), think: AtomicU64::new(0) }
    }

    /// Delivers message `seq`, sent at TSC `stamp` after a think time of `think` ticks.
    pub fn post(&self, seq: u64, stamp: u64, think: u64) {
        self.stamp.store(stamp, Relaxed);
        self.think.store(think, Relaxed);
        // Release: a receiver that sees `seq` also sees its stamp. The sender writes the next
        // stamp only after the reply to this message, which comes after the receiver read it.
        self.seq.store(seq, Release);
    }

    /// The latest message's sequence number (0: none yet).
    pub fn seq(&self) -> u64 {
        self.seq.load(Acquire)
    }

    /// The latest message's send stamp (valid once [`Mailbox::seq`] showed the message).
    pub fn stamp(&self) -> u64 {
        self.stamp.load(Relaxed)
    }

    /// The think time the latest message was sent after, ticks (valid as [`Mailbox::stamp`]).
    pub fn think(&self) -> u64 {
        self.think.load(Relaxed)
    }
}

/// The ping-pong parameters.
#[derive(Clone, Copy, Debug)]
pub struct PingPong<'a> {
    /// Measured round trips per pair.
    pub round_trips: u64,
    /// TSC ticks to spin before sending each measured message.
    pub think_tsc: u64,
    /// Round trips per pair before the measured ones.
    pub warmup_round_trips: u64,
    /// TSC ticks to spin before sending each warm-up message.
    pub warmup_think_tsc: u64,
    /// When not empty, the think times of the measured messages instead of `think_tsc`, ticks:
    /// measured message `i` of each side follows `think_trace[i % len]`, so each waiting vCPU
    /// idles through the trace's periods in order.
    pub think_trace: &'a [u64],
    /// One inbox per vCPU, indexed by vCPU; the count must be even.
    pub mailboxes: &'a [Mailbox],
}

/// Where a vCPU's results go.
#[derive(Debug)]
pub struct Record<'a> {
    /// Counters, updated as the workload runs.
    pub counters: &'a mut Counters,
    /// Messages received so far, for the watchdog.
    pub progress: &'a AtomicU64,
    /// One slot per received message, as far as there is room.
    pub samples: &'a mut [Sample],
    /// Samples written.
    pub samples_recorded: u64,
}

impl PingPong<'_> {
    /// Runs this vCPU's side of the ping-pong to the end.
    ///
    /// Panics if the vCPU has no partner or a message arrives out of order (a broken protocol,
    /// which the guest's panic handler reports to the VMM).
    ///
    /// Afterwards `record.counters` covers the measured round trips, `irqs` included.
    pub fn run<C: Cpu>(&self, cpu: &mut C, idle: &mut Idle<'_>, record: &mut Record<'_>) {
        let me = cpu.index();
        let peer = me ^ 1;
        assert!(peer < self.mailboxes.len(), "vCPU {me} has no ping-pong partner (odd vCPU count)");
        let starts = me.is_multiple_of(2);
        let warmup = self.warmup_round_trips;
        let (mut start, mut irqs) = (0, 0);
        for seq in 1..=warmup + self.round_trips {
            // The starter is here once the last warm-up reply is in, the responder once it has
            // sent it: neither has a message in flight towards it.
            if seq == warmup + 1 {
                cpu.begin_measurement();
                *record.counters = Counters::default();
                irqs = cpu.irq_count();
                start = cpu.rdtsc();
            }
            let sample = seq.checked_sub(warmup + 1);
            let think = match sample {
                None => self.warmup_think_tsc,
                Some(_) if self.think_trace.is_empty() => self.think_tsc,
                Some(i) => self.think_trace[(i % self.think_trace.len() as u64) as usize],
            };
            if starts {
                self.send(cpu, idle, record, peer, seq, think);
                self.receive(cpu, idle, record, me, seq, sample);
                record.counters.round_trips += 1;
            } else {
                self.receive(cpu, idle, record, me, seq, sample);
                self.send(cpu, idle, record, peer, seq, think);
            }
        }
        if starts {
            record.counters.workload_tsc = cpu.rdtsc().saturating_sub(start);
        }
        record.counters.irqs = cpu.irq_count() - irqs;
    }

    fn send<C: Cpu>(
        &self,
        cpu: &mut C,
        idle: &mut Idle<'_>,
        record: &mut Record<'_>,
        peer: usize,
        seq: u64,
        think_tsc: u64,
    ) {
        if think_tsc > 0 {
            let until = cpu.rdtsc().saturating_add(think_tsc);
            while cpu.rdtsc() < until {
                cpu.relax();
            }
        }
        self.mailboxes[peer].post(seq, cpu.rdtsc(), think_tsc);
        record.counters.messages_sent += 1;
        idle.wake(cpu, record.counters, peer);
    }

    /// Waits for message `seq`; records it in sample slot `sample` (`None` during the warm-up).
    fn receive<C: Cpu>(
        &self,
        cpu: &mut C,
        idle: &mut Idle<'_>,
        record: &mut Record<'_>,
        me: usize,
        seq: u64,
        sample: Option<u64>,
    ) {
        let inbox = &self.mailboxes[me];
        let enter = cpu.rdtsc();
        idle.wait(cpu, record.counters, || inbox.seq() >= seq);
        let seen = cpu.rdtsc();
        let got = inbox.seq();
        assert_eq!(got, seq, "vCPU {me} expected message {seq}, found {got}");
        // Progress counts every message, warm-up included: the watchdog only asks "still moving?".
        record.progress.store(seq, Relaxed);
        let Some(sample) = sample else { return };
        let c = &mut *record.counters;
        c.messages_received += 1;
        c.idle_tsc += seen.saturating_sub(enter);
        if let Some(slot) = record.samples.get_mut(sample as usize) {
            *slot = Sample { enter_tsc: enter, stamp_tsc: inbox.stamp(), seen_tsc: seen, think_tsc: inbox.think() };
            record.samples_recorded += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::{DriverOptions, Haltpoll, VcpuFlags};
    use haltpoll::driver::{CpuidRegs, KVM_FEATURE_POLL_CONTROL, KVM_HINTS_REALTIME};
    use haltpoll::{GovernorParams, Params, ValidParams, ValidPredictiveParams};
    use haltpoll_abi::{DriverReport, IdlePolicy};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    /// A vCPU on a host thread: the "IPI" bumps the target's interrupt count, the "halt" waits
    /// (with a deadline, so a lost wakeup fails the test instead of hanging it) for it to move
    /// or for the vCPU's timer to come due. The "TSC" counts ns; CPUID shows KVM with the
    /// REALTIME hint.
    struct ThreadCpu {
        index: usize,
        irqs: Arc<[AtomicU64]>,
        epoch: Instant,
        marks: u32,
        timer_due: Option<Instant>,
        timers: u64,
    }

    impl ThreadCpu {
        fn new(index: usize, irqs: Arc<[AtomicU64]>, epoch: Instant) -> ThreadCpu {
            ThreadCpu { index, irqs, epoch, marks: 0, timer_due: None, timers: 0 }
        }

        /// The timer's interrupt, if it is due.
        fn fire_timer_if_due(&mut self) {
            if self.timer_due.is_some_and(|due| Instant::now() >= due) {
                self.timer_due = None;
                self.timers += 1;
                self.irqs[self.index].fetch_add(1, Release);
            }
        }
    }

    impl Cpu for ThreadCpu {
        fn index(&self) -> usize {
            self.index
        }
        fn rdtsc(&self) -> u64 {
            self.epoch.elapsed().as_nanos() as u64
        }
        fn relax(&self) {
            std::thread::yield_now();
        }
        fn irq_count(&self) -> u64 {
            self.irqs[self.index].load(Acquire)
        }
        fn halt_unless_irq_since(&mut self, irq_count: u64) -> bool {
            let deadline = Instant::now() + Duration::from_secs(10);
            if self.irq_count() != irq_count {
                return false;
            }
            while self.irq_count() == irq_count {
                assert!(Instant::now() < deadline, "vCPU {} halted and no IPI came: lost wakeup", self.index);
                std::thread::yield_now();
                self.fire_timer_if_due();
            }
            true
        }
        fn send_ipi(&mut self, target: usize) {
            self.irqs[target].fetch_add(1, Release);
        }
        fn arm_timer(&mut self, after_ns: u64) {
            self.timer_due = Some(Instant::now() + Duration::from_nanos(after_ns));
        }
        fn cancel_timer(&mut self) {
            self.timer_due = None;
        }
        fn timer_count(&self) -> u64 {
            self.timers
        }
        fn cpuid(&self, leaf: u32) -> CpuidRegs {
            match leaf {
                0x4000_0000 => CpuidRegs { eax: 0x4000_0001, ebx: 0x4b4d_564b, ecx: 0x564b_4d56, edx: 0x4d },
                0x4000_0001 => {
                    CpuidRegs { eax: KVM_FEATURE_POLL_CONTROL, edx: KVM_HINTS_REALTIME, ..Default::default() }
                }
                _ => CpuidRegs::default(),
            }
        }
        fn write_poll_control(&mut self, _: bool) {}
        fn begin_measurement(&mut self) {
            self.marks += 1;
        }
    }

    struct Side {
        counters: Counters,
        samples: Vec<Sample>,
        recorded: u64,
        progress: u64,
        marks: u32,
    }

    fn run_pair(
        policy: IdlePolicy,
        pingpong: PingPong<'static>,
        samples_cap: usize,
        governor: GovernorParams,
    ) -> Vec<Side> {
        let mailboxes: Arc<[Mailbox]> = Arc::from([Mailbox::new(), Mailbox::new()]);
        let flags: Arc<[VcpuFlags]> = Arc::from([VcpuFlags::new(), VcpuFlags::new()]);
        let irqs: Arc<[AtomicU64]> = Arc::from([AtomicU64::new(0), AtomicU64::new(0)]);
        let epoch = Instant::now();
        let threads: Vec<_> = (0..2)
            .map(|index| {
                let (mailboxes, flags, irqs) = (mailboxes.clone(), flags.clone(), irqs.clone());
                std::thread::spawn(move || {
                    let mut cpu = ThreadCpu::new(index, irqs, epoch);
                    let mut idle = match policy {
                        IdlePolicy::Busy => Idle::busy(),
                        IdlePolicy::Halt => Idle::halt(),
                        IdlePolicy::Haltpoll => {
                            let options = DriverOptions {
                                governor: Some(governor),
                                latency_req: u64::MAX,
                                force: false,
                                tsc_khz: 1_000_000,
                            };
                            let driver = Haltpoll::load(&mut cpu, &options, &mut DriverReport::default()).unwrap();
                            Idle::haltpoll(driver, &flags, index)
                        }
                    };
                    let mut counters = Counters::default();
                    let progress = AtomicU64::new(0);
                    let mut samples = vec![Sample::default(); samples_cap];
                    let mut record = Record {
                        counters: &mut counters,
                        progress: &progress,
                        samples: &mut samples,
                        samples_recorded: 0,
                    };
                    PingPong { mailboxes: &mailboxes, ..pingpong }.run(&mut cpu, &mut idle, &mut record);
                    let recorded = record.samples_recorded;
                    Side { counters, samples, recorded, progress: progress.load(Relaxed), marks: cpu.marks }
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    }

    const PINGPONG: PingPong<'static> = PingPong {
        round_trips: 200,
        think_tsc: 1_000,
        warmup_round_trips: 0,
        warmup_think_tsc: 0,
        think_trace: &[],
        mailboxes: &[],
    };
    const LINUX: GovernorParams = GovernorParams::Linux(ValidParams::DEFAULT);
    const PREDICTIVE: GovernorParams = GovernorParams::Predictive(ValidPredictiveParams::DEFAULT);

    #[test]
    fn every_message_arrives_under_every_policy() {
        let policies = [
            (IdlePolicy::Busy, LINUX),
            (IdlePolicy::Halt, LINUX),
            (IdlePolicy::Haltpoll, LINUX),
            (IdlePolicy::Haltpoll, PREDICTIVE),
        ];
        for (policy, governor) in policies {
            let sides = run_pair(policy, PINGPONG, 50, governor);
            let (a, b) = (&sides[0].counters, &sides[1].counters);
            assert_eq!(a.round_trips, 200, "{policy:?}");
            assert_eq!(b.round_trips, 0, "only the starting side counts round trips");
            assert_eq!((a.messages_sent, a.messages_received), (200, 200));
            assert_eq!((b.messages_sent, b.messages_received), (200, 200));
            assert!(a.workload_tsc > 0);
            for side in &sides {
                let counters = &side.counters;
                assert_eq!((side.progress, side.marks), (200, 1));
                assert_eq!(side.recorded, 50, "samples stop at the capacity");
                for s in &side.samples {
                    assert!(s.enter_tsc <= s.seen_tsc && s.stamp_tsc <= s.seen_tsc, "{s:?}");
                }
                match policy {
                    IdlePolicy::Busy => assert_eq!((counters.halts, counters.ipis_sent), (0, 0)),
                    IdlePolicy::Halt => assert_eq!(counters.ipis_sent, 200),
                    IdlePolicy::Haltpoll => {
                        assert_eq!(counters.ipis_sent + counters.ipis_skipped, 200, "each message wakes once");
                        let to = counters.ipis_to_running
                            + counters.ipis_to_idle
                            + counters.ipis_to_polling
                            + counters.ipis_to_halting;
                        assert_eq!(to, counters.ipis_sent, "every IPI says where its target was");
                    }
                }
            }
        }
    }

    #[test]
    fn haltpoll_with_polling_off_kicks_every_message() {
        // A ceiling of 0: the window never opens, every wait halts, every wake sends an IPI.
        let off = Params { guest_halt_poll_ns: 0, ..Params::DEFAULT }.validate().unwrap();
        for side in run_pair(IdlePolicy::Haltpoll, PINGPONG, 0, off.into()) {
            let c = side.counters;
            assert_eq!((c.ipis_sent, c.ipis_skipped, c.poll_hits, c.poll_timeouts), (200, 0, 0, 0));
        }
    }

    #[test]
    fn the_warmup_is_neither_counted_nor_sampled() {
        let pingpong = PingPong { round_trips: 30, warmup_round_trips: 70, warmup_think_tsc: 0, ..PINGPONG };
        for policy in [IdlePolicy::Halt, IdlePolicy::Haltpoll] {
            let sides = run_pair(policy, pingpong, 1_000, LINUX);
            assert_eq!(sides[0].counters.round_trips, 30, "{policy:?}");
            for side in &sides {
                let c = &side.counters;
                assert_eq!((c.messages_sent, c.messages_received, side.recorded), (30, 30, 30));
                assert_eq!((side.progress, side.marks), (100, 1), "progress counts the warm-up too");
                assert!(side.samples[29].seen_tsc > 0 && side.samples[30] == Sample::default());
                // At most one IPI per measured message, and the last warm-up message's: its
                // sender posts before it sends the IPI, so a preempted sender's IPI can land
                // after the receiver has answered and started counting.
                assert!(c.ipis_sent + c.ipis_skipped == 30 && c.irqs <= 31, "{c:?}");
            }
        }
    }

    #[test]
    fn a_think_trace_is_followed_in_order_and_cycles() {
        const TRACE: &[u64] = &[3_000, 40_000, 1_000, 20_000];
        let pingpong = PingPong { round_trips: 10, think_trace: TRACE, ..PINGPONG };
        for (policy, governor) in [(IdlePolicy::Halt, LINUX), (IdlePolicy::Haltpoll, PREDICTIVE)] {
            let sides = run_pair(policy, pingpong, 100, governor);
            for side in &sides {
                let thinks: Vec<u64> = side.samples[..10].iter().map(|s| s.think_tsc).collect();
                let expected: Vec<u64> = TRACE.iter().copied().cycle().take(10).collect();
                assert_eq!(thinks, expected, "{policy:?}");
            }
            // Each reply is stamped at least its think time after its sender saw the message it
            // answers, whichever thread the scheduler ran when. (Not "the starter idles through
            // the whole think": the starter stamps its own wait's start after its send returns,
            // and a preempted starter can do that after the partner has thought and replied.)
            let [starter, partner] = &sides[..] else { unreachable!() };
            for i in 0..10 {
                let (asked, answer) = (&partner.samples[i], &starter.samples[i]);
                assert!(answer.stamp_tsc >= asked.seen_tsc + answer.think_tsc, "{policy:?}: {asked:?} {answer:?}");
                if i + 1 < 10 {
                    let next = &partner.samples[i + 1];
                    assert!(next.stamp_tsc >= answer.seen_tsc + next.think_tsc, "{policy:?}: {answer:?} {next:?}");
                }
            }
            for s in sides.iter().flat_map(|side| &side.samples[..10]) {
                assert!(s.enter_tsc <= s.seen_tsc && s.stamp_tsc <= s.seen_tsc, "{policy:?}: {s:?}");
            }
        }
    }

    #[test]
    #[should_panic(expected = "no ping-pong partner")]
    fn a_lone_vcpu_is_refused() {
        let mailboxes = [Mailbox::new()];
        let mut cpu = ThreadCpu::new(0, Arc::from([AtomicU64::new(0)]), Instant::now());
        let (mut counters, progress) = (Counters::default(), AtomicU64::new(0));
        let mut record = Record { counters: &mut counters, progress: &progress, samples: &mut [], samples_recorded: 0 };
        PingPong { round_trips: 1, mailboxes: &mailboxes, ..PINGPONG }.run(&mut cpu, &mut Idle::busy(), &mut record);
    }
}
