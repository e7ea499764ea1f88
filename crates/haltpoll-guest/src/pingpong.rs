//! The ping-pong workload: pairs of vCPUs (0 and 1, 2 and 3, ...) pass a message back and forth.
//!
//! The even vCPU of a pair starts each round trip; both sides spin for the think time before
//! each message they send, so each waits (idles) about that long for the next one. The sender
//! stamps the TSC into the message; the receiver records when it started waiting, the stamp and
//! when it saw the message (a [`Sample`]), from which the VMM derives the one-way wake latency
//! and the idle periods.

use core::sync::atomic::AtomicU64;
use core::sync::atomic::Ordering::{Acquire, Relaxed, Release};

use crate::abi::{Counters, Sample};
use crate::cpu::Cpu;
use crate::idle::Idle;

/// One vCPU's inbox: the latest message's sequence number and send stamp. A cache line of its
/// own, so the two sides of a pair never share a line except through the message itself.
#[derive(Debug, Default)]
#[repr(C, align(64))]
pub struct Mailbox {
    seq: AtomicU64,
    stamp: AtomicU64,
}

impl Mailbox {
    /// An empty inbox (no message yet: sequence 0).
    pub const fn new() -> Mailbox {
        Mailbox { seq: AtomicU64::new(0), stamp: AtomicU64::new(0) }
    }

    /// Delivers message `seq`, sent at TSC `stamp`.
    pub fn post(&self, seq: u64, stamp: u64) {
        self.stamp.store(stamp, Relaxed);
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
}

/// The ping-pong parameters.
#[derive(Clone, Copy, Debug)]
pub struct PingPong<'a> {
    /// Round trips per pair.
    pub round_trips: u64,
    /// TSC ticks to spin before sending each message.
    pub think_tsc: u64,
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
    pub fn run<C: Cpu>(&self, cpu: &mut C, idle: &mut Idle, record: &mut Record<'_>) {
        let me = cpu.index();
        let peer = me ^ 1;
        assert!(peer < self.mailboxes.len(), "vCPU {me} has no ping-pong partner (odd vCPU count)");
        let starts = me.is_multiple_of(2);
        let start = cpu.rdtsc();
        for seq in 1..=self.round_trips {
            if starts {
                self.send(cpu, idle, record, peer, seq);
                self.receive(cpu, idle, record, me, seq);
                record.counters.round_trips += 1;
            } else {
                self.receive(cpu, idle, record, me, seq);
                self.send(cpu, idle, record, peer, seq);
            }
        }
        if starts {
            record.counters.workload_tsc = cpu.rdtsc().saturating_sub(start);
        }
    }

    fn send<C: Cpu>(&self, cpu: &mut C, idle: &mut Idle, record: &mut Record<'_>, peer: usize, seq: u64) {
        if self.think_tsc > 0 {
            let until = cpu.rdtsc().saturating_add(self.think_tsc);
            while cpu.rdtsc() < until {
                cpu.relax();
            }
        }
        self.mailboxes[peer].post(seq, cpu.rdtsc());
        record.counters.messages_sent += 1;
        idle.wake(cpu, record.counters, peer);
    }

    fn receive<C: Cpu>(&self, cpu: &mut C, idle: &mut Idle, record: &mut Record<'_>, me: usize, seq: u64) {
        let inbox = &self.mailboxes[me];
        let enter = cpu.rdtsc();
        idle.wait(cpu, record.counters, || inbox.seq() >= seq);
        let seen = cpu.rdtsc();
        let got = inbox.seq();
        assert_eq!(got, seq, "vCPU {me} expected message {seq}, found {got}");
        let c = &mut *record.counters;
        c.messages_received += 1;
        c.idle_tsc += seen.saturating_sub(enter);
        record.progress.store(c.messages_received, Relaxed);
        if let Some(slot) = record.samples.get_mut(seq as usize - 1) {
            *slot = Sample { enter_tsc: enter, stamp_tsc: inbox.stamp(), seen_tsc: seen };
            record.samples_recorded += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::IdlePolicy;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    /// A vCPU on a host thread: the "IPI" bumps the target's interrupt count, the "halt" waits
    /// (with a deadline, so a lost wakeup fails the test instead of hanging it) for it to move.
    struct ThreadCpu {
        index: usize,
        irqs: Arc<[AtomicU64]>,
        epoch: Instant,
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
            }
            true
        }
        fn send_ipi(&mut self, target: usize) {
            self.irqs[target].fetch_add(1, Release);
        }
    }

    fn run_pair(policy: IdlePolicy, round_trips: u64, samples_cap: usize) -> Vec<(Counters, Vec<Sample>, u64)> {
        let mailboxes: Arc<[Mailbox]> = Arc::from([Mailbox::new(), Mailbox::new()]);
        let irqs: Arc<[AtomicU64]> = Arc::from([AtomicU64::new(0), AtomicU64::new(0)]);
        let epoch = Instant::now();
        let threads: Vec<_> = (0..2)
            .map(|index| {
                let (mailboxes, irqs) = (mailboxes.clone(), irqs.clone());
                std::thread::spawn(move || {
                    let mut cpu = ThreadCpu { index, irqs, epoch };
                    let mut counters = Counters::default();
                    let progress = AtomicU64::new(0);
                    let mut samples = vec![Sample::default(); samples_cap];
                    let mut record = Record {
                        counters: &mut counters,
                        progress: &progress,
                        samples: &mut samples,
                        samples_recorded: 0,
                    };
                    let pp = PingPong { round_trips, think_tsc: 1_000, mailboxes: &mailboxes };
                    pp.run(&mut cpu, &mut Idle::new(policy), &mut record);
                    let recorded = record.samples_recorded;
                    assert_eq!(progress.load(Relaxed), counters.messages_received);
                    (counters, samples, recorded)
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    }

    #[test]
    fn every_message_arrives_under_both_policies() {
        for policy in [IdlePolicy::Busy, IdlePolicy::Halt] {
            let sides = run_pair(policy, 200, 50);
            let (a, b) = (&sides[0].0, &sides[1].0);
            assert_eq!(a.round_trips, 200, "{policy:?}");
            assert_eq!(b.round_trips, 0, "only the starting side counts round trips");
            assert_eq!((a.messages_sent, a.messages_received), (200, 200));
            assert_eq!((b.messages_sent, b.messages_received), (200, 200));
            assert!(a.workload_tsc > 0);
            for (counters, samples, recorded) in &sides {
                assert_eq!(*recorded, 50, "samples stop at the capacity");
                for s in samples {
                    assert!(s.enter_tsc <= s.seen_tsc && s.stamp_tsc <= s.seen_tsc, "{s:?}");
                }
                match policy {
                    IdlePolicy::Busy => assert_eq!((counters.halts, counters.ipis_sent), (0, 0)),
                    IdlePolicy::Halt => assert_eq!(counters.ipis_sent, 200),
                }
            }
        }
    }

    #[test]
    #[should_panic(expected = "no ping-pong partner")]
    fn a_lone_vcpu_is_refused() {
        let mailboxes = [Mailbox::new()];
        let mut cpu = ThreadCpu { index: 0, irqs: Arc::from([AtomicU64::new(0)]), epoch: Instant::now() };
        let (mut counters, progress) = (Counters::default(), AtomicU64::new(0));
        let mut record = Record { counters: &mut counters, progress: &progress, samples: &mut [], samples_recorded: 0 };
        PingPong { round_trips: 1, think_tsc: 0, mailboxes: &mailboxes }.run(
            &mut cpu,
            &mut Idle::new(IdlePolicy::Busy),
            &mut record,
        );
    }
}
