//! The core's replay under `WindowArithmetic::Kernel` against a model of Linux's haltpoll
//! governor written here, separately, in the shape of its C code and with its C types
//! (drivers/cpuidle/governors/haltpoll.c, 6.9 and later, and before 6.9): the parameters are
//! `unsigned int`, the per-CPU window `dev->poll_limit_ns` is a `u64`, and a grow stores
//! `dev->poll_limit_ns * guest_halt_poll_grow` into an `unsigned int`.

use haltpoll::replay::Replay;
use haltpoll::{BlockTime, Params, ShrinkRule, WindowArithmetic};
use proptest::prelude::*;

/// One CPU under Linux's governor, with the kernel's types.
struct Linux {
    guest_halt_poll_ns: u32,
    guest_halt_poll_grow: u32,
    guest_halt_poll_grow_start: u32,
    guest_halt_poll_shrink: u32,
    guest_halt_poll_allow_shrink: bool,
    /// 6.9 and later: a shrink below grow_start resets the window to 0.
    floor_at_grow_start: bool,
    poll_limit_ns: u64,
    last_state_idx: u32,
    poll_time_limit: bool,
}

impl Linux {
    fn new(p: &Params) -> Linux {
        let uint = |v: u64| u32::try_from(v).expect("kernel parameters are unsigned ints");
        Linux {
            guest_halt_poll_ns: uint(p.guest_halt_poll_ns),
            guest_halt_poll_grow: p.grow,
            guest_halt_poll_grow_start: uint(p.grow_start),
            guest_halt_poll_shrink: p.shrink,
            guest_halt_poll_allow_shrink: p.allow_shrink,
            floor_at_grow_start: p.shrink_rule == ShrinkRule::Floor,
            poll_limit_ns: 0,
            last_state_idx: 1,
            poll_time_limit: false,
        }
    }

    /// `haltpoll_select` with no latency constraint: 0 is POLL, 1 is HALT.
    fn select(&self) -> u32 {
        if self.poll_limit_ns == 0 {
            return 1;
        }
        if self.last_state_idx == 0 && self.poll_time_limit { 1 } else { 0 }
    }

    /// `adjust_poll_limit`, statement by statement.
    #[allow(clippy::manual_checked_ops, reason = "the C code's own shape is the point of this model")]
    fn adjust_poll_limit(&mut self, block_ns: u64) {
        let mut val: u32;
        if block_ns > self.poll_limit_ns && block_ns <= u64::from(self.guest_halt_poll_ns) {
            // C: a u64 times an unsigned int, stored into an unsigned int (its low 32 bits).
            let wide = u128::from(self.poll_limit_ns) * u128::from(self.guest_halt_poll_grow);
            val = (wide % (1u128 << 32)) as u32;
            if val < self.guest_halt_poll_grow_start {
                val = self.guest_halt_poll_grow_start;
            }
            if val > self.guest_halt_poll_ns {
                val = self.guest_halt_poll_ns;
            }
            self.poll_limit_ns = u64::from(val);
        } else if block_ns > u64::from(self.guest_halt_poll_ns) && self.guest_halt_poll_allow_shrink {
            let shrink = self.guest_halt_poll_shrink;
            val = (self.poll_limit_ns % (1u64 << 32)) as u32;
            if shrink == 0 {
                val = 0;
            } else {
                val /= shrink;
                if self.floor_at_grow_start && val < self.guest_halt_poll_grow_start {
                    val = 0;
                }
            }
            self.poll_limit_ns = u64::from(val);
        }
    }

    /// `haltpoll_reflect`.
    fn reflect(&mut self, index: u32, residency_ns: u64) {
        self.last_state_idx = index;
        if index != 0 {
            self.adjust_poll_limit(residency_ns);
        }
    }

    /// One idle period of `idle_ns`: poll up to the window (the cpuidle core's poll time is
    /// the window when it is not 0), then halt for the rest. Returns (hit, window after).
    fn period(&mut self, idle_ns: u64) -> (bool, u64) {
        if self.select() == 0 {
            let limit = self.poll_limit_ns;
            if idle_ns <= limit {
                self.poll_time_limit = false;
                self.reflect(0, idle_ns);
                return (true, self.poll_limit_ns);
            }
            self.poll_time_limit = true;
            self.reflect(0, limit);
            assert_eq!(self.select(), 1, "a timed-out poll is followed by a halt");
            self.reflect(1, idle_ns - limit);
        } else {
            self.reflect(1, idle_ns);
        }
        (false, self.poll_limit_ns)
    }
}

/// Parameters the kernel can hold, drawn so that grows near and past 2^32 are common.
fn kernel_params() -> impl Strategy<Value = Params> {
    let ceiling = prop_oneof![any::<u32>(), 3_000_000_000u32..=u32::MAX, 0u32..1_000_000];
    let grow = prop_oneof![0u32..8, Just(65_536u32), any::<u32>(), (0u32..32).prop_map(|b| 1 << b)];
    let start = prop_oneof![1u32..100_000, any::<u32>().prop_map(|v| v.max(1)), 1_000_000_000u32..=u32::MAX];
    let shrink = prop_oneof![0u32..5, any::<u32>()];
    (ceiling, grow, start, shrink, any::<bool>(), any::<bool>()).prop_map(
        |(ceiling, grow, grow_start, shrink, allow_shrink, legacy)| Params {
            guest_halt_poll_ns: ceiling.into(),
            grow,
            grow_start: grow_start.into(),
            shrink,
            allow_shrink,
            shrink_rule: if legacy { ShrinkRule::Legacy } else { ShrinkRule::Floor },
            block_time: BlockTime::HaltOnly,
            arithmetic: WindowArithmetic::Kernel,
        },
    )
}

fn periods() -> impl Strategy<Value = Vec<u64>> {
    let one = prop_oneof![0u64..300_000, 0u64..(1 << 33), Just(u64::from(u32::MAX)), 4_000_000_000u64..8_000_000_000];
    prop::collection::vec(one, 0..200)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    /// Period by period, the replay agrees with the kernel's arithmetic: every hit, every window.
    #[test]
    fn replay_is_the_kernel_bit_for_bit(params in kernel_params(), trace in periods()) {
        let mut ours = Replay::new(params.validate().unwrap());
        let mut linux = Linux::new(&params);
        for (i, &d) in trace.iter().enumerate() {
            let p = ours.period(d);
            let (hit, window) = linux.period(d);
            prop_assert_eq!((p.hit(), p.poll_limit_ns_after), (hit, window), "period {} of {} ns", i, d);
        }
    }
}

/// A wrap below grow_start, period by period: 3e9 * 2 wraps to 1705032704, below grow_start.
#[test]
fn the_issues_example_wraps_to_grow_start() {
    let params = Params { guest_halt_poll_ns: 4_000_000_000, grow_start: 3_000_000_000, ..Params::DEFAULT };
    let mut linux = Linux::new(&params);
    let mut ours = Replay::new(params.validate().unwrap());
    for d in [115_536, 6_999_999_999] {
        assert_eq!(ours.period(d).poll_limit_ns_after, linux.period(d).1);
    }
    assert_eq!(linux.poll_limit_ns, 3_000_000_000);
    let wide = Params { arithmetic: WindowArithmetic::Saturating, ..params };
    let mut saturating = Replay::new(wide.validate().unwrap());
    saturating.period(115_536);
    assert_eq!(saturating.period(6_999_999_999).poll_limit_ns_after, 4_000_000_000);
}
