//! The idle-guest check: a setting replayed on the guest gone idle, woken only by its tick.
//!
//! A setting tuned on a busy phase leaves each CPU's window grown when the load stops. Linux's
//! governor adjusts its window only after a halt, and judges the halt alone (not the poll
//! before it): on a tick of period `T`, a window `W` with `T - W <= W` and `T - W <=
//! guest_halt_poll_ns` never shrinks, and a window of `T` or more catches every tick and is
//! never adjusted at all. The idle guest then polls `W / T` of its time for as long as it stays
//! idle. The check replays the tick from every window the governor can grow to (a busy phase
//! may leave any of them), lets it settle and measures the steady share.

use std::num::NonZeroU32;

use haltpoll::replay::Replay;
use haltpoll::{BlockTime, Governor, ValidParams, share};
use serde::Serialize;

/// The ticks checked unless told otherwise: 250 Hz (Debian's kernels, a wakeup every 4 ms) and
/// 1000 Hz (Fedora's, RHEL's and Ubuntu's, every 1 ms).
pub const TICKS_HZ: [NonZeroU32; 2] = [NonZeroU32::new(250).unwrap(), NonZeroU32::new(1000).unwrap()];

/// Ticks replayed before the share is measured. Each halt moves the window by one grow or one
/// shrink, and a 32-bit window is at most 32 grows from 0 and 32 halvings from its top, so a
/// constant tick brings it to its steady state within this many.
const SETTLE_TICKS: u32 = 64;

/// Ticks over which the steady share is measured.
const MEASURED_TICKS: u32 = 64;

/// The most windows the governor is grown through before the tick starts (its grows are at
/// least doublings unless `grow` is 1, when the window stops at `grow_start`).
const MAX_GROWS: usize = 64;

/// A setting on an idle guest: how much of the guest's time a CPU polls once its window has
/// settled on the tick, from the worst window a busy phase can leave.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct IdleGuest {
    /// The tick, in Hz.
    pub tick_hz: u32,
    /// Steady poll time, as a share of the idle CPU's time.
    pub poll_share: f64,
    /// The window at idle entry that gives that share, ns.
    pub from_window_ns: u64,
    /// Where the window settles from there, ns.
    pub settled_window_ns: u64,
}

impl IdleGuest {
    /// Whether the idle guest polls no more than `budget` (a share) of its time.
    pub fn fits(&self, budget: f64) -> bool {
        self.poll_share <= budget
    }
}

/// `params` replayed on an idle guest whose only wakeup is its tick of `tick_hz`, from every
/// window the governor can grow to: the worst steady poll share among them.
///
/// ```
/// use std::num::NonZeroU32;
/// use haltpoll::{Params, ValidParams};
/// use haltpoll_linux::tune::idle_guest_poll_share;
///
/// let hz = NonZeroU32::new(250).unwrap();
/// // Linux's defaults shrink back to 0 on a 4 ms tick.
/// assert_eq!(idle_guest_poll_share(&ValidParams::DEFAULT, hz).poll_share, 0.0);
/// // A 3.2 ms ceiling, once grown, polls 3.2 ms of every 4 ms: the halt after it is too short to shrink it.
/// let big = Params { guest_halt_poll_ns: 3_200_000, grow_start: 400_000, ..Params::DEFAULT }.validate()?;
/// assert!((idle_guest_poll_share(&big, hz).poll_share - 0.8).abs() < 1e-9);
/// # Ok::<(), haltpoll::ParamError>(())
/// ```
pub fn idle_guest_poll_share(params: &ValidParams, tick_hz: NonZeroU32) -> IdleGuest {
    let tick_ns = (1_000_000_000 / u64::from(tick_hz.get())).max(1);
    grown_windows(params)
        .into_iter()
        .map(|grown| {
            let from_window_ns = grown.governor().poll_limit_ns();
            let (poll_share, settled_window_ns) = steady_share(grown, tick_ns);
            IdleGuest { tick_hz: tick_hz.get(), poll_share, from_window_ns, settled_window_ns }
        })
        .reduce(|worst, g| if g.poll_share > worst.poll_share { g } else { worst })
        .expect("the window before any grow is always tried")
}

/// The worst of [`idle_guest_poll_share`] over `ticks_hz` ([`TICKS_HZ`] unless the guest's tick
/// is known): what decides whether `params` suits a guest that goes idle. `None` without ticks.
pub fn check_idle_guest(params: &ValidParams, ticks_hz: &[NonZeroU32]) -> Option<IdleGuest> {
    ticks_hz
        .iter()
        .map(|&hz| idle_guest_poll_share(params, hz))
        .reduce(|worst, g| if g.poll_share > worst.poll_share { g } else { worst })
}

/// The governor at each window it grows through from a CPU's start (0) to its top, fed waits
/// whose halt is as long as the ceiling allows (the longest halt that still grows the window).
fn grown_windows(params: &ValidParams) -> Vec<Replay<Governor>> {
    let mut replay = Replay::new(*params);
    let mut out = vec![replay.clone()];
    let ceiling = params.guest_halt_poll_ns;
    if ceiling == 0 {
        return out;
    }
    for _ in 0..MAX_GROWS {
        let window = replay.governor().poll_limit_ns();
        // The block time Linux judges is the halt after the poll: the wait is the window polled
        // in vain plus a halt of the ceiling.
        let wait = match params.block_time {
            BlockTime::HaltOnly => window.saturating_add(ceiling),
            BlockTime::PollAndHalt => ceiling,
        };
        replay.period(wait);
        if replay.governor().poll_limit_ns() == window {
            break;
        }
        out.push(replay.clone());
    }
    out
}

/// The share of its time a CPU polls on a tick of `tick_ns` once settled, and the window then.
fn steady_share(mut replay: Replay<Governor>, tick_ns: u64) -> (f64, u64) {
    for _ in 0..SETTLE_TICKS {
        replay.period(tick_ns);
    }
    let polled = (0..MEASURED_TICKS).fold(0u64, |sum, _| sum.saturating_add(replay.period(tick_ns).poll_ns));
    (share(polled, tick_ns.saturating_mul(MEASURED_TICKS.into())), replay.governor().poll_limit_ns())
}

#[cfg(test)]
mod tests {
    use super::*;
    use haltpoll::{Params, ShrinkRule};
    use proptest::prelude::*;

    fn hz(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).unwrap()
    }

    fn valid(ns: u64, grow_start: u64, allow_shrink: bool) -> ValidParams {
        Params { guest_halt_poll_ns: ns, grow_start, allow_shrink, ..Params::DEFAULT }.validate().unwrap()
    }

    #[test]
    fn linux_defaults_and_polling_off_leave_an_idle_guest_alone() {
        for t in TICKS_HZ {
            assert_eq!(idle_guest_poll_share(&ValidParams::DEFAULT, t).poll_share, 0.0);
            assert_eq!(idle_guest_poll_share(&valid(0, 50_000, true), t).poll_share, 0.0);
        }
    }

    #[test]
    fn the_big_ceiling_polls_most_of_an_idle_guest_with_shrink_on_or_off() {
        // The setting measured on a busy guest: on its 250 Hz tick it polls 3.2 ms of each 4 ms.
        for shrink in [true, false] {
            let g = idle_guest_poll_share(&valid(3_200_000, 400_000, shrink), hz(250));
            assert!((g.poll_share - 0.8).abs() < 1e-9, "{g:?}");
            // Any window from 800 us up grows on the tick (a halt of 3.2 ms is within the
            // ceiling) until it is trapped at the ceiling; 800 us is the first.
            assert_eq!((g.from_window_ns, g.settled_window_ns), (800_000, 3_200_000));
            // At 1000 Hz the window outlasts the tick and catches every one: all of the time.
            assert_eq!(idle_guest_poll_share(&valid(3_200_000, 400_000, shrink), hz(1000)).poll_share, 1.0);
        }
        let worst = check_idle_guest(&valid(3_200_000, 400_000, true), &TICKS_HZ).unwrap();
        assert_eq!((worst.tick_hz, worst.poll_share), (1000, 1.0));
        assert_eq!(check_idle_guest(&ValidParams::DEFAULT, &[]), None);
    }

    #[test]
    fn a_window_that_never_shrinks_polls_all_of_itself_each_tick() {
        // 400 us without shrink, on a 1 ms tick: the halt after it (600 us) exceeds the ceiling,
        // which would shrink it, but shrinking is off.
        let g = idle_guest_poll_share(&valid(400_000, 50_000, false), hz(1000));
        assert!((g.poll_share - 0.4).abs() < 1e-9, "{g:?}");
        // With shrink on it decays to 0.
        assert_eq!(idle_guest_poll_share(&valid(400_000, 50_000, true), hz(1000)).poll_share, 0.0);
    }

    fn arb_params() -> impl Strategy<Value = ValidParams> {
        let rule = prop_oneof![Just(ShrinkRule::Floor), Just(ShrinkRule::Legacy)];
        (0u64..6_000_000, 1u64..1_000_000, 1u32..5, 0u32..5, any::<bool>(), rule).prop_map(
            |(guest_halt_poll_ns, grow_start, grow, shrink, allow_shrink, shrink_rule)| {
                let p = Params {
                    guest_halt_poll_ns,
                    grow_start,
                    grow,
                    shrink,
                    allow_shrink,
                    shrink_rule,
                    ..Params::DEFAULT
                };
                p.validate().unwrap()
            },
        )
    }

    proptest! {
        #[test]
        fn no_busy_phase_leaves_an_idle_guest_polling_more_than_the_check_says(
            params in arb_params(),
            busy in proptest::collection::vec(1u64..8_000_000, 0..200),
            tick in prop_oneof![Just(100u32), Just(250), Just(300), Just(1000)],
        ) {
            let check = idle_guest_poll_share(&params, hz(tick));
            let mut replay = Replay::new(params);
            for d in busy {
                replay.period(d);
            }
            let (steady, _) = steady_share(replay, 1_000_000_000 / u64::from(tick));
            prop_assert!(steady <= check.poll_share + 1e-12, "{steady} after the busy phase, {check:?}");
        }
    }
}
