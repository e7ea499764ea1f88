//! The haltpoll governor: the per-CPU policy that picks POLL or HALT and learns the poll window.
//!
//! A pure state machine: no clock, no atomics. The caller measures and reports; the governor
//! decides. One [`Governor`] per CPU (or per waiting thread).

use crate::driver::{HALT, IdleState};
use crate::params::{BlockTime, Params, ShrinkRule, ValidParams, WindowArithmetic};
pub use crate::select::{Adjustment, LATENCY_ANY, LatencyReq};
use crate::select::{Decision, End, IdleGovernor, Outcome};

/// The haltpoll governor of one CPU.
///
/// ```
/// use haltpoll::{Governor, IdleState, ValidParams, LATENCY_ANY};
/// let mut gov = Governor::new(ValidParams::DEFAULT);
/// assert_eq!(gov.select(LATENCY_ANY), IdleState::Halt); // the window starts at 0
/// gov.reflect(IdleState::Halt, 30_000, false); // woken after 30 us: polling would have paid
/// assert_eq!(gov.poll_limit_ns(), 50_000); // grow_start
/// assert_eq!(gov.select(LATENCY_ANY), IdleState::Poll);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Governor {
    params: Params,
    poll_limit_ns: u64,
    last_state: IdleState,
    last_poll_timed_out: bool,
    /// How long the last POLL lasted, for [`BlockTime::PollAndHalt`].
    last_poll_ns: u64,
}

impl Governor {
    /// A governor with a window of 0, as every CPU starts, following `params`
    /// ([`Params::validate`] makes them).
    pub const fn new(params: ValidParams) -> Governor {
        Governor {
            params: params.into_inner(),
            poll_limit_ns: 0,
            last_state: IdleState::Halt,
            last_poll_timed_out: false,
            last_poll_ns: 0,
        }
    }

    /// The parameters this governor follows.
    pub const fn params(&self) -> &Params {
        &self.params
    }

    /// Replaces the parameters (as writing the module parameters does); the window is kept.
    pub fn set_params(&mut self, params: ValidParams) {
        self.params = params.into_inner();
    }

    /// The current poll window, ns (`poll_limit_ns`).
    pub const fn poll_limit_ns(&self) -> u64 {
        self.poll_limit_ns
    }

    /// The state reflected last.
    pub const fn last_state(&self) -> IdleState {
        self.last_state
    }

    /// How long a POLL chosen now should spin, ns: the window, or `fallback_ns` when the window
    /// is 0 (which happens only when the latency requirement forced POLL). A kernel passes its
    /// tick length, as Linux's `cpuidle_poll_time` does; a system without a tick passes
    /// `u64::MAX` to poll until woken.
    pub const fn poll_time_ns(&self, fallback_ns: u64) -> u64 {
        if self.poll_limit_ns == 0 { fallback_ns } else { self.poll_limit_ns }
    }

    /// Picks the idle state to enter.
    ///
    /// - a latency requirement below HALT's exit latency (in particular 0) -> POLL;
    /// - window 0 -> HALT;
    /// - last state POLL and it timed out -> HALT (polling did not pay, sleep now);
    /// - otherwise (POLL ended by a wakeup, or last state HALT) -> POLL.
    ///
    /// Linux's governor tests only for a requirement of exactly 0; this one also refuses HALT
    /// for a requirement below HALT's 1 us exit latency, which agrees with Linux at 0 and at
    /// every requirement of 1 us or more.
    pub const fn select(&self, latency_req: LatencyReq) -> IdleState {
        if latency_req < HALT.exit_latency_ns {
            return IdleState::Poll;
        }
        if self.poll_limit_ns == 0 {
            return IdleState::Halt;
        }
        match self.last_state {
            IdleState::Poll if self.last_poll_timed_out => IdleState::Halt,
            IdleState::Poll | IdleState::Halt => IdleState::Poll,
        }
    }

    /// Learns from the state that just ran: `residency_ns` is how long it lasted, and
    /// `poll_timed_out` whether a POLL ended by running out of window (ignored for HALT).
    ///
    /// Only a HALT moves the window. Its `block_ns` is `residency_ns`, the time spent halted,
    /// plus, under [`BlockTime::PollAndHalt`], the timed-out POLL right before it:
    /// - `poll_limit_ns < block_ns <= guest_halt_poll_ns`: grow to `poll_limit_ns * grow`,
    ///   at least `grow_start`, at most `guest_halt_poll_ns`;
    /// - `block_ns > guest_halt_poll_ns` and shrinking allowed: shrink to
    ///   `poll_limit_ns / shrink` (0 if `shrink == 0`); under [`ShrinkRule::Floor`] a result
    ///   below `grow_start` becomes 0;
    /// - otherwise unchanged.
    ///
    /// Under [`WindowArithmetic::Kernel`] the product and the quotient are the kernel's
    /// `unsigned int`s: a product of 2^32 or more wraps before it meets `grow_start`.
    pub fn reflect(&mut self, state: IdleState, residency_ns: u64, poll_timed_out: bool) -> Adjustment {
        match state {
            IdleState::Poll => {
                self.last_state = IdleState::Poll;
                self.last_poll_timed_out = poll_timed_out;
                self.last_poll_ns = residency_ns;
                Adjustment::Unchanged
            }
            IdleState::Halt => {
                let block_ns = self.block_ns(residency_ns);
                self.adjust(block_ns)
            }
        }
    }

    /// Learns from a HALT that a deadline of the caller's ended (a timeout, a timer) before
    /// any wakeup came. Whatever it waited for comes later, if at all, so the halt can show
    /// that polling is waste (it shrinks the window when `block_ns` passed the ceiling) but
    /// never that a longer poll would have caught something: it never grows the window.
    ///
    /// ```
    /// use haltpoll::{Adjustment, Governor, IdleState, ValidParams};
    /// let mut gov = Governor::new(ValidParams::DEFAULT);
    /// assert_eq!(gov.reflect_deadline(30_000), Adjustment::Unchanged); // a 30 us timeout
    /// assert_eq!(gov.poll_limit_ns(), 0);
    /// ```
    pub fn reflect_deadline(&mut self, residency_ns: u64) -> Adjustment {
        let block_ns = self.block_ns(residency_ns);
        if block_ns > self.params.guest_halt_poll_ns { self.adjust(block_ns) } else { Adjustment::Unchanged }
    }

    /// Records a HALT and returns its block time under the parameters' [`BlockTime`].
    fn block_ns(&mut self, halt_ns: u64) -> u64 {
        let after_timed_out_poll = self.last_state == IdleState::Poll && self.last_poll_timed_out;
        self.last_state = IdleState::Halt;
        match self.params.block_time {
            BlockTime::PollAndHalt if after_timed_out_poll => halt_ns.saturating_add(self.last_poll_ns),
            BlockTime::PollAndHalt | BlockTime::HaltOnly => halt_ns,
        }
    }

    fn adjust(&mut self, block_ns: u64) -> Adjustment {
        let p = &self.params;
        let from = self.poll_limit_ns;
        if from < block_ns && block_ns <= p.guest_halt_poll_ns {
            let to = grown(p, from);
            self.poll_limit_ns = to;
            Adjustment::Grew { from, to }
        } else if block_ns > p.guest_halt_poll_ns && p.allow_shrink {
            let mut to = match p.arithmetic {
                // The kernel copies the window into an `unsigned int` before it divides (a
                // window from these parameters always fits; one left by wider ones is cut).
                WindowArithmetic::Kernel => u64::from((from as u32).checked_div(p.shrink).unwrap_or(0)),
                WindowArithmetic::Saturating => from.checked_div(u64::from(p.shrink)).unwrap_or(0),
            };
            if p.shrink_rule == ShrinkRule::Floor && to < p.grow_start {
                to = 0;
            }
            self.poll_limit_ns = to;
            Adjustment::Shrank { from, to }
        } else {
            Adjustment::Unchanged
        }
    }
}

/// The window a grow from `from` gives: `from * grow` in the parameters' arithmetic, at least
/// `grow_start`, at most the ceiling. The kernel multiplies in 64 bits and stores the product
/// into an `unsigned int`, which keeps its low 32 bits.
pub(crate) const fn grown(p: &Params, from: u64) -> u64 {
    let product = match p.arithmetic {
        WindowArithmetic::Kernel => from.wrapping_mul(p.grow as u64) as u32 as u64,
        WindowArithmetic::Saturating => from.saturating_mul(p.grow as u64),
    };
    let raised = if product < p.grow_start { p.grow_start } else { product };
    if raised > p.guest_halt_poll_ns { p.guest_halt_poll_ns } else { raised }
}

impl IdleGovernor for Governor {
    const TIMES_PERIODS: bool = false;

    fn select(&mut self, latency_req: LatencyReq, _busy_ns: u64) -> Decision {
        match Governor::select(self, latency_req) {
            IdleState::Halt => Decision::Halt,
            IdleState::Poll => Decision::Poll { window_ns: self.poll_time_ns(u64::MAX) },
        }
    }

    fn reflect(&mut self, outcome: &Outcome) -> Adjustment {
        // Linux polls only with a window above 0 (or forced, until woken): it polled exactly
        // when it caught the wakeup or spent time polling.
        if outcome.caught || outcome.poll_ns > 0 {
            Governor::reflect(self, IdleState::Poll, outcome.poll_ns, !outcome.caught);
        }
        let halt_ns = outcome.idle_ns.saturating_sub(outcome.poll_ns);
        match outcome.end {
            _ if outcome.caught => Adjustment::Unchanged,
            // A wait the caller's deadline ended says only that the wakeup, if any, comes
            // later: that may shrink the window (past the ceiling) but must not grow it.
            End::Deadline { polling: false } => self.reflect_deadline(halt_ns),
            End::Deadline { polling: true } => Adjustment::Unchanged,
            End::Wakeup | End::Timer => {
                // The poll+halt rule learns the period until its wakeup, which is what a poll
                // would have had to outlast: the halt's own wake-up is not in it (the kernel's
                // rule has no such input and keeps the whole residency).
                let halt_ns = match self.params.block_time {
                    BlockTime::PollAndHalt => outcome.wakeup_ns().saturating_sub(outcome.poll_ns),
                    BlockTime::HaltOnly => halt_ns,
                };
                Governor::reflect(self, IdleState::Halt, halt_ns, false)
            }
        }
    }

    fn window_ns(&self) -> u64 {
        self.poll_limit_ns()
    }
}

/// A grow whose product does not fit the kernel's 32 bits: what
/// [`kernel_window_wrap`] finds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowWrap {
    /// The window that grows, ns.
    pub from: u64,
    /// `from * grow`, as wide as it really is.
    pub product: u64,
    /// What the kernel's window becomes: the product modulo 2^32, raised to `grow_start`
    /// and held to the ceiling.
    pub to: u64,
}

/// The first grow, on the way up from a window of 0, whose product `window * grow` does
/// not fit the kernel's 32 bits, under `params`: where a Linux guest's window
/// wraps (see [`WindowArithmetic`]) and a 64-bit model would mispredict it. `None` if the
/// window reaches the ceiling, or stops growing, without one.
///
/// Only the way up from 0 is followed, which every CPU takes and takes again after each
/// shrink to 0; a legacy shrink to an odd value can reach windows that way does not.
///
/// ```
/// use haltpoll::{governor::kernel_window_wrap, Params};
/// assert_eq!(kernel_window_wrap(&Params::DEFAULT), None);
/// // 65536 * 65536 is 2^32, which wraps to 0: the kernel's window stays at 65536.
/// let stuck = Params { grow: 65_536, grow_start: 65_536, ..Params::DEFAULT };
/// assert_eq!(kernel_window_wrap(&stuck).map(|w| w.to), Some(65_536));
/// ```
pub fn kernel_window_wrap(params: &Params) -> Option<WindowWrap> {
    let kernel = Params { arithmetic: WindowArithmetic::Kernel, ..*params };
    let mut window = 0u64;
    // Each grow at least doubles the window (grow >= 2) until 2^32, or stalls: 64 steps
    // are more than the way up can take.
    for _ in 0..64 {
        if window >= params.guest_halt_poll_ns {
            return None; // no block is above the window and at most the ceiling
        }
        let product = u128::from(window) * u128::from(params.grow);
        let next = grown(&kernel, window);
        if product > u128::from(u32::MAX) {
            return Some(WindowWrap { from: window, product: u64::try_from(product).unwrap_or(u64::MAX), to: next });
        }
        if next <= window {
            return None;
        }
        window = next;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::ParamError;

    fn gov_at(window: u64, params: Params) -> Governor {
        let mut g = Governor::new(params.validate().unwrap());
        g.poll_limit_ns = window;
        g
    }

    #[test]
    fn starts_at_zero_and_halts() {
        let g = Governor::new(ValidParams::DEFAULT);
        assert_eq!(g.poll_limit_ns(), 0);
        assert_eq!(g.select(LATENCY_ANY), IdleState::Halt);
    }

    #[test]
    fn zero_latency_requirement_polls_even_with_window_zero() {
        let g = Governor::new(ValidParams::DEFAULT);
        assert_eq!(g.select(0), IdleState::Poll);
        assert_eq!(g.select(HALT.exit_latency_ns - 1), IdleState::Poll);
        assert_eq!(g.select(HALT.exit_latency_ns), IdleState::Halt);
        assert_eq!(g.poll_time_ns(4_000_000), 4_000_000, "window 0 polls for the fallback");
    }

    #[test]
    fn select_after_poll_depends_on_timeout() {
        let mut g = gov_at(100_000, Params::DEFAULT);
        assert_eq!(g.reflect(IdleState::Poll, 100_000, true), Adjustment::Unchanged);
        assert_eq!(g.select(LATENCY_ANY), IdleState::Halt);
        assert_eq!(g.reflect(IdleState::Poll, 3_000, false), Adjustment::Unchanged);
        assert_eq!(g.select(LATENCY_ANY), IdleState::Poll);
        assert_eq!(g.poll_time_ns(7), 100_000);
    }

    #[test]
    fn select_after_halt_polls() {
        let mut g = gov_at(100_000, Params::DEFAULT);
        g.reflect(IdleState::Poll, 100_000, true);
        g.reflect(IdleState::Halt, 100_000, false); // inside (limit, ceiling]: grows
        assert_eq!(g.select(LATENCY_ANY), IdleState::Poll);
    }

    #[test]
    fn halt_timeout_flag_is_ignored() {
        let mut g = gov_at(100_000, Params::DEFAULT);
        g.reflect(IdleState::Poll, 10, false);
        g.reflect(IdleState::Halt, 10, true);
        assert_eq!(g.select(LATENCY_ANY), IdleState::Poll);
    }

    #[test]
    fn grow_from_zero_starts_at_grow_start() {
        let mut g = Governor::new(ValidParams::DEFAULT);
        assert_eq!(g.reflect(IdleState::Halt, 1, false), Adjustment::Grew { from: 0, to: 50_000 });
    }

    #[test]
    fn grow_doubles_then_clamps_at_ceiling() {
        let mut g = gov_at(50_000, Params::DEFAULT);
        assert_eq!(g.reflect(IdleState::Halt, 60_000, false), Adjustment::Grew { from: 50_000, to: 100_000 });
        assert_eq!(g.reflect(IdleState::Halt, 150_000, false), Adjustment::Grew { from: 100_000, to: 200_000 });
        // At the ceiling a block of exactly the ceiling is not above the window: unchanged.
        assert_eq!(g.reflect(IdleState::Halt, 200_000, false), Adjustment::Unchanged, "limit == block");
        // Below it, block == ceiling grows (the upper bound is inclusive), clamped to the ceiling.
        let mut g = gov_at(150_000, Params::DEFAULT);
        assert_eq!(g.reflect(IdleState::Halt, 200_000, false), Adjustment::Grew { from: 150_000, to: 200_000 });
    }

    #[test]
    fn block_not_above_window_leaves_it() {
        let mut g = gov_at(100_000, Params::DEFAULT);
        assert_eq!(g.reflect(IdleState::Halt, 100_000, false), Adjustment::Unchanged);
        assert_eq!(g.reflect(IdleState::Halt, 5, false), Adjustment::Unchanged);
        assert_eq!(g.poll_limit_ns(), 100_000);
    }

    #[test]
    fn poll_never_moves_the_window() {
        let mut g = gov_at(100_000, Params::DEFAULT);
        for (ns, t) in [(0, false), (1_000_000, true), (u64::MAX, true), (50, false)] {
            assert_eq!(g.reflect(IdleState::Poll, ns, t), Adjustment::Unchanged);
            assert_eq!(g.poll_limit_ns(), 100_000);
        }
    }

    #[test]
    fn shrink_halves_and_floors_below_grow_start() {
        let mut g = gov_at(200_000, Params::DEFAULT);
        assert_eq!(g.reflect(IdleState::Halt, 200_001, false), Adjustment::Shrank { from: 200_000, to: 100_000 });
        assert_eq!(g.reflect(IdleState::Halt, 1_000_000, false), Adjustment::Shrank { from: 100_000, to: 50_000 });
        // 25 us < grow_start: floor to 0.
        assert_eq!(g.reflect(IdleState::Halt, 1_000_000, false), Adjustment::Shrank { from: 50_000, to: 0 });
        // Shrinking 0 stays 0 (reported as a shrink that changed nothing).
        assert_eq!(g.reflect(IdleState::Halt, 1_000_000, false), Adjustment::Shrank { from: 0, to: 0 });
    }

    #[test]
    fn legacy_shrink_decays_without_floor() {
        let params = Params { shrink_rule: ShrinkRule::Legacy, ..Params::DEFAULT };
        let mut g = gov_at(50_000, params);
        assert_eq!(g.reflect(IdleState::Halt, 1_000_000, false), Adjustment::Shrank { from: 50_000, to: 25_000 });
        assert_eq!(g.reflect(IdleState::Halt, 1_000_000, false), Adjustment::Shrank { from: 25_000, to: 12_500 });
    }

    #[test]
    fn shrink_zero_resets() {
        let mut g = gov_at(200_000, Params { shrink: 0, shrink_rule: ShrinkRule::Legacy, ..Params::DEFAULT });
        assert_eq!(g.reflect(IdleState::Halt, 300_000, false), Adjustment::Shrank { from: 200_000, to: 0 });
    }

    #[test]
    fn shrink_disallowed_keeps_window() {
        let mut g = gov_at(200_000, Params { allow_shrink: false, ..Params::DEFAULT });
        assert_eq!(g.reflect(IdleState::Halt, 10_000_000, false), Adjustment::Unchanged);
        assert_eq!(g.poll_limit_ns(), 200_000);
    }

    #[test]
    fn on_off_controller() {
        let params = Params { guest_halt_poll_ns: 2_400_000, grow_start: 24_000_000, ..Params::DEFAULT };
        let mut g = Governor::new(params.validate().unwrap());
        assert_eq!(g.reflect(IdleState::Halt, 1_000, false), Adjustment::Grew { from: 0, to: 2_400_000 });
        assert_eq!(g.reflect(IdleState::Halt, 3_000_000, false), Adjustment::Shrank { from: 2_400_000, to: 0 });
    }

    #[test]
    fn zero_grow_start_would_never_grow() {
        // This is why validation rejects it.
        let params = Params { grow_start: 0, ..Params::DEFAULT };
        assert_eq!(params.validate(), Err(ParamError::ZeroGrowStart));
        let mut g = Governor::new(ValidParams::unchecked(params));
        assert_eq!(g.reflect(IdleState::Halt, 10_000, false), Adjustment::Grew { from: 0, to: 0 });
        assert_eq!(g.select(LATENCY_ANY), IdleState::Halt);
    }

    #[test]
    fn ceiling_zero_never_polls() {
        let mut g = Governor::new(Params { guest_halt_poll_ns: 0, ..Params::DEFAULT }.validate().unwrap());
        for block in [0, 1, 10_000, u64::MAX] {
            g.reflect(IdleState::Halt, block, false);
            assert_eq!(g.poll_limit_ns(), 0);
            assert_eq!(g.select(LATENCY_ANY), IdleState::Halt);
        }
    }

    #[test]
    fn extreme_values_do_not_overflow() {
        let params = Params {
            guest_halt_poll_ns: u64::MAX,
            grow: u32::MAX,
            grow_start: u64::MAX,
            shrink: u32::MAX,
            allow_shrink: true,
            shrink_rule: ShrinkRule::Floor,
            block_time: BlockTime::PollAndHalt,
            arithmetic: WindowArithmetic::Saturating,
        };
        let mut g = gov_at(u64::MAX - 1, params);
        g.reflect(IdleState::Poll, u64::MAX, true);
        assert_eq!(g.reflect(IdleState::Halt, u64::MAX, false), Adjustment::Grew { from: u64::MAX - 1, to: u64::MAX });
        let wide = Params { grow: u32::MAX, guest_halt_poll_ns: u64::MAX, ..params };
        let mut g = gov_at(u64::MAX / 2, wide);
        g.reflect(IdleState::Halt, u64::MAX, false);
        assert_eq!(g.poll_limit_ns(), u64::MAX, "saturates instead of wrapping");
    }

    #[test]
    fn the_kernel_wraps_the_grow_and_then_raises_it_to_grow_start() {
        // A ceiling of 4e9 and grow_start of 3e9: 3e9 * 2 = 6e9 wraps to 1705032704, below grow_start.
        let p = Params { guest_halt_poll_ns: 4_000_000_000, grow_start: 3_000_000_000, ..Params::DEFAULT };
        let mut g = gov_at(3_000_000_000, p);
        let grew = Adjustment::Grew { from: 3_000_000_000, to: 3_000_000_000 };
        assert_eq!(g.reflect(IdleState::Halt, 3_999_999_999, false), grew);
        let mut ours = gov_at(3_000_000_000, Params { arithmetic: WindowArithmetic::Saturating, ..p });
        let saturated = Adjustment::Grew { from: 3_000_000_000, to: 4_000_000_000 };
        assert_eq!(ours.reflect(IdleState::Halt, 3_999_999_999, false), saturated);
        // A wrap above grow_start is kept: 2^31 + 2^30 times 2 is 2^31 modulo 2^32.
        let p = Params { guest_halt_poll_ns: u32::MAX.into(), grow_start: 1, ..Params::DEFAULT };
        let mut g = gov_at((1 << 31) + (1 << 30), p);
        assert_eq!(g.reflect(IdleState::Halt, u32::MAX.into(), false), Adjustment::Grew { from: 3 << 30, to: 1 << 31 });
        // The shrink divides the window as an unsigned int.
        let mut g = gov_at(u64::from(u32::MAX) + 7, Params { shrink: 1, shrink_rule: ShrinkRule::Legacy, ..p });
        assert_eq!(g.reflect(IdleState::Halt, u64::MAX, false), Adjustment::Shrank { from: (1 << 32) + 6, to: 6 });
    }

    #[test]
    fn poll_and_halt_counts_the_timed_out_poll() {
        let params = Params { block_time: BlockTime::PollAndHalt, ..Params::DEFAULT };
        // A steady 150 us period: Linux's rule is stuck at 100 us, this one grows past it.
        let mut g = gov_at(100_000, params);
        g.reflect(IdleState::Poll, 100_000, true);
        assert_eq!(g.reflect(IdleState::Halt, 50_000, false), Adjustment::Grew { from: 100_000, to: 200_000 });
        let mut linux = gov_at(100_000, Params::DEFAULT);
        linux.reflect(IdleState::Poll, 100_000, true);
        assert_eq!(linux.reflect(IdleState::Halt, 50_000, false), Adjustment::Unchanged);
        // Poll plus halt past the ceiling shrinks even though the halt alone would not.
        let mut g = gov_at(200_000, params);
        g.reflect(IdleState::Poll, 200_000, true);
        assert_eq!(g.reflect(IdleState::Halt, 1_000, false), Adjustment::Shrank { from: 200_000, to: 100_000 });
    }

    #[test]
    fn poll_and_halt_ignores_polls_that_did_not_precede_the_halt() {
        let params = Params { block_time: BlockTime::PollAndHalt, ..Params::DEFAULT };
        // A halt after a poll hit (a latency requirement can force such a sequence): only the
        // halt counts.
        let mut g = gov_at(100_000, params);
        g.reflect(IdleState::Poll, 90_000, false);
        assert_eq!(g.reflect(IdleState::Halt, 50_000, false), Adjustment::Unchanged);
        // The poll is counted once: a second halt in a row is only itself.
        let mut g = gov_at(100_000, params);
        g.reflect(IdleState::Poll, 100_000, true);
        g.reflect(IdleState::Halt, 0, false); // 100 us: not above the window
        assert_eq!(g.poll_limit_ns(), 100_000);
        assert_eq!(g.reflect(IdleState::Halt, 50_000, false), Adjustment::Unchanged, "50 us alone");
    }

    #[test]
    fn poll_and_halt_leaves_out_the_halts_own_wake_up() {
        // The window-0 trap on a slow backend: a 100 us think time, the partner's 55 us wake-up
        // in the period and the halt's own 55 us on top make 210 us, past the 200 us ceiling.
        let halted = Outcome { idle_ns: 210_000, halt_wake_ns: 55_000, ..Outcome::default() };
        let mut ours = gov_at(0, Params { block_time: BlockTime::PollAndHalt, ..Params::DEFAULT });
        assert_eq!(IdleGovernor::reflect(&mut ours, &halted), Adjustment::Grew { from: 0, to: 50_000 });
        // After a timed-out poll, the poll counts and the wake-up still does not: 195 us.
        let timed_out = Outcome { idle_ns: 250_000, poll_ns: 50_000, halt_wake_ns: 55_000, ..Outcome::default() };
        assert_eq!(IdleGovernor::reflect(&mut ours, &timed_out), Adjustment::Grew { from: 50_000, to: 100_000 });
        // Linux's rule keeps the whole residency, as the kernel does: 210 us shrinks it.
        let mut linux = gov_at(100_000, Params::DEFAULT);
        assert_eq!(IdleGovernor::reflect(&mut linux, &halted), Adjustment::Shrank { from: 100_000, to: 50_000 });
        // A deadline's halt has no wakeup to subtract from: past the ceiling it shrinks.
        let deadline = Outcome { end: End::Deadline { polling: false }, ..halted };
        assert_eq!(IdleGovernor::reflect(&mut ours, &deadline), Adjustment::Shrank { from: 100_000, to: 50_000 });
    }

    #[test]
    fn deadline_halts_shrink_but_never_grow() {
        let mut g = gov_at(100_000, Params::DEFAULT);
        assert_eq!(g.reflect_deadline(150_000), Adjustment::Unchanged);
        assert_eq!(g.last_state(), IdleState::Halt);
        assert_eq!(g.select(LATENCY_ANY), IdleState::Poll);
        assert_eq!(g.reflect_deadline(300_000), Adjustment::Shrank { from: 100_000, to: 50_000 });
        let params = Params { block_time: BlockTime::PollAndHalt, ..Params::DEFAULT };
        let mut g = gov_at(150_000, params);
        g.reflect(IdleState::Poll, 150_000, true);
        assert_eq!(g.reflect_deadline(60_000), Adjustment::Shrank { from: 150_000, to: 75_000 }, "poll counted");
    }

    #[test]
    fn set_params_keeps_window() {
        let mut g = gov_at(100_000, Params::DEFAULT);
        g.set_params(Params { guest_halt_poll_ns: 50_000, ..Params::DEFAULT }.validate().unwrap());
        assert_eq!(g.poll_limit_ns(), 100_000);
        assert_eq!(g.params().guest_halt_poll_ns, 50_000);
        // The next long halt shrinks it under the new ceiling.
        assert_eq!(g.reflect(IdleState::Halt, 60_000, false), Adjustment::Shrank { from: 100_000, to: 50_000 });
    }

    #[test]
    fn wraps_are_found_on_the_way_up() {
        // A wrap back to grow_start, and one to 0.
        let big = Params { guest_halt_poll_ns: 4_000_000_000, grow_start: 3_000_000_000, ..Params::DEFAULT };
        assert_eq!(
            kernel_window_wrap(&big),
            Some(WindowWrap { from: 3_000_000_000, product: 6_000_000_000, to: 3_000_000_000 })
        );
        let stuck = Params { grow: 65_536, grow_start: 65_536, ..Params::DEFAULT };
        assert_eq!(kernel_window_wrap(&stuck), Some(WindowWrap { from: 65_536, product: 1 << 32, to: 65_536 }));
        // Up to the largest ceiling without a wrap: 2^31 * 2 is the first product that needs 33 bits.
        let fits = Params { guest_halt_poll_ns: 1 << 31, grow_start: 1, ..Params::DEFAULT };
        assert_eq!(kernel_window_wrap(&fits), None);
        let over = Params { guest_halt_poll_ns: (1 << 31) + 1, grow_start: 1, ..Params::DEFAULT };
        assert_eq!(kernel_window_wrap(&over).map(|w| (w.from, w.product)), Some((1 << 31, 1 << 32)));
        // A stalled window (grow 1, or 0) never wraps; neither does polling off.
        assert_eq!(
            kernel_window_wrap(&Params { grow: 1, guest_halt_poll_ns: u32::MAX.into(), ..Params::DEFAULT }),
            None
        );
        assert_eq!(kernel_window_wrap(&Params { guest_halt_poll_ns: 0, grow: u32::MAX, ..Params::DEFAULT }), None);
    }
}
