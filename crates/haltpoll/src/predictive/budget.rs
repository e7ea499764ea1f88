//! The polling budget: a credit of polling time the CPU earns as time passes and spends by
//! polling, and the price of a poll that keeps spending at the rate earned.
//!
//! The credit is the hard limit. It counts polling net of the halts caught wakeups saved
//! (`poll time - halt_cost x catches`; with a halt cost of 0, all polling). A window never
//! exceeds the credit plus one halt's cost (a poll that long, caught, has paid for itself; one
//! that is not leaves the credit at worst one halt cost in debt), so net polling takes at most
//! `budget x (time run + time idle)` plus the credit it started with plus one halt cost (only a
//! caller's forced poll, for a latency requirement of 0, can overdraw it further). Credit is
//! kept up to 4 times `budget x horizon` (the cap), and a CPU starts with one cap, as if it had
//! idled a horizon without polling: a credit that started empty missed most of a busy server's
//! first second, and one kept to a single cap lost what quiet stretches earned just before a
//! burst that needed it. With a halt cost, credit is kept up to 64 caps, earned or given back
//! by catches alike: a run of cheap catches pays for the next long poll, as polling everything
//! does for Linux's governor, and the time's share keeps adding to it meanwhile.
//!
//! The price is the soft control: what a caught wakeup is worth in ns of polling. The window
//! chosen is the one with the most `price x catches - ns polled` ([`super::histogram`]), so a
//! higher price polls more. The price follows the credit: an empty credit makes it 4 us (catch
//! only what is nearly free), a credit of a full reserve 2^28 ns (poll whatever may catch
//! something), exponentially in between. So polling settles where it spends what it earns, on the
//! periods most likely to end soonest, as the clairvoyant bound spends it on the shortest. The
//! reserve is a few ceilings' worth (or the cap, if smaller): enough for several of the longest
//! windows in a row, little enough that the price reacts within a few periods.
//!
//! Without a halt cost, a saturated server idles in bursts, and the price that follows the
//! credit is at its top in the quiet stretches between them (long windows on rare long periods)
//! and low within them, once they have drained the credit (short periods halted). The burst
//! price ([`BurstPrice`]) learns from those halts how much a catch is really worth there, and
//! lowers the top price the credit can reach to that.

use super::params::{MAX_HALT_COST_NS, PPM, ValidPredictiveParams};

/// The price's range as powers of two of ns: from 4 us to 2^28 ns (268 ms).
const MIN_PRICE_SHIFT: u32 = 12;
/// See [`MIN_PRICE_SHIFT`].
const MAX_PRICE_SHIFT: u32 = 28;

/// The highest price, in ceilings.
const MAX_PRICE_CEILINGS: u64 = 4;

/// With a halt cost, credit (earned, or given back by catches) is kept up to this many caps.
const SAVED_CAPS: i64 = 64;

/// Without one, earned credit is kept up to this many caps. A saturated server idles in rare
/// bursts (PostgreSQL under 4 closed-loop clients: 1,178 periods in 10 s, 577 of them within
/// one second) whose polling outgrows one cap, while the quiet seconds before them each earned
/// more than they spent: kept to one cap, those earnings were lost, and the governor spent 1.5%
/// of a 2% budget. Beyond the cap the price stays where the cap's credit puts it, so a store
/// after a quiet stretch does not buy longer windows (see [`CAP_PER_PRICE`]), only more of them.
/// 2 caps were too few there; 8 and 16 change no frontier point against 4.
const EARNED_CAPS: i64 = 4;

/// While the credit is within the cap, a catch is worth at most the cap over this. A full
/// credit after a quiet stretch bought windows of four ceilings' price at a low budget (nginx
/// with 8 connections at 1%: 4 ms windows on a 1-in-40 chance of a long period, the credit gone
/// within a burst of short ones): eight such catches may take the whole horizon's budget, no
/// more. Credit beyond the cap lifts the limit only with a halt cost, where catches gave it back
/// (those windows paid); earnings kept beyond it without one ([`EARNED_CAPS`]) do not.
const CAP_PER_PRICE: u64 = 8;

/// While the credit is within this many caps, a window from idle entry is priced apart from the
/// timer ([`Budget::window_price_ns`]). Savings from catches lift the credit above the cap, and
/// the top price they buy is what a timer's short window needs to win over a long window; spent
/// on windows from idle entry, it bought long windows on rare long periods (nginx with 8
/// connections, pgbench -S closed-loop, net of a halt per catch) and spent the savings as they
/// came. 3 caps: 330 of 352 frontier points on or above; 2 caps 328, 4 and 5 caps 329 (each
/// before earnings were kept beyond the cap). The same rule holds for earnings kept beyond the
/// cap without a halt cost ([`EARNED_CAPS`]), where the price is at most the cap's eighth
/// already: there it lowers only the windows of a governor without a timer, to the sixteenth
/// (nginx with 8 connections at 2%, no timer: 81.2% to 84.6% caught; 332 of 352 either way).
const WINDOW_CAPS: i64 = 3;

/// With a halt cost and without a timer, the window price's sixteenth of the cap (`WINDOW_CAPS`)
/// holds within the cap too once the cap is at least this many halt costs (the sixteenth then
/// 8 halts' worth or more): nginx with 8 connections, pgbench -S with 4 clients' CPU 0 and TPC-B
/// at 2000 tx/s's CPU 0 at 1%, and pipe bursts' CPU 0 at 2%, net of 50 us, short of Linux's
/// frontier at the eighth, are on or above at the sixteenth. On a cap of fewer halts (0.5% of a
/// second at 50 us: 100 halts) the sixteenth made the search halt where the eighth polled into
/// a cluster of periods, and the ski-rental floor's polls, too short for it, took the credit
/// instead (pgbench -S at 300 tx/s: 105 catches to 34; nginx bursty CPU 0 0.98 and pgbench -S
/// closed-loop 0.16 deeper short). Any bound from 7 to 12 halts a sixteenth gives the same
/// frontier. Without a halt cost the sixteenth fixed no point and lost nginx bursty CPU 0 at
/// 0.5% (1.96 to 3.79 short), so there it holds only above the cap.
const UNTIMED_CAP_HALTS: u64 = 128;

/// With a halt cost and without a timer, on a cap of many halts (`UNTIMED_CAP_HALTS`), the
/// window price holds only while the credit is within this many caps, not `WINDOW_CAPS`. There
/// the sixteenth holds within the cap too, and catches give back enough to hold the credit at
/// the band's top: spending beyond it stops as soon as the credit falls back in, so the band's
/// top is credit the governor never spends (about three caps, 30 ms, of a 1% budget's 110 ms
/// over 10 s on nginx with 32 connections' CPU 0 and the bursty web trace's CPU 0, net of 50 us:
/// 0.77% and 0.74% polled, and windows of 131-262 us halted the periods of 0.15-1.5 ms Linux's
/// best setting catches). Two caps: 549 of 576 points of the later traces on or above (from
/// 548), the corpus's 335 and its short points as before. For a governor with a timer, nginx
/// with 8 connections at 1% lost 1.9 points; at 0.5% (a cap of 100 halts) pgbench -S
/// closed-loop lost 0.25 and pgbench -S with 4 clients' CPU 0 2 points; without a halt cost
/// (nginx bursty CPU 0 at 1% 1.2 points up) pgbench -S with 4 clients' CPU 0 lost 6.6 points at
/// 1%: it needs the stock for its one burst.
const UNTIMED_WINDOW_CAPS: i64 = 2;

/// With a halt cost and without a timer, once the credit is above the window price's band
/// (`WINDOW_CAPS` caps, or `UNTIMED_WINDOW_CAPS` on a cap of many halts), a catch
/// is worth at most the credit over this to a window from idle entry (24 times the top price,
/// four ceilings, buys it; at three caps, 48 would give the cap's sixteenth that holds below).
/// Catches shorter than a halt lift the credit above three caps within a busy second, and at
/// the top price 4 ms windows bought rare periods of a millisecond or two with the savings the
/// next stretch of periods just above a halt's cost needed: on a bursty redis at 0.5%, six
/// windows timed out at 4 ms in its first second (22 ms, four seconds' earnings), and 975
/// periods of 40-100 us halted in the next; on pipe bursts at 0.5%, 81 catches of 1.4 ms on
/// average that Linux's best setting missed took 112 ms of polling. 24: 333 of 352 corpus
/// points on or above as before, 533 of 576 on the traces recorded later (from 530); 16 and 20
/// fixed fewer, 32 and 48 lost the 99.9% rule on redis with 50 clients and pgbench -S
/// closed-loop.
const NET_WINDOW_CREDIT_DIV: u64 = 24;

/// Without a halt cost, a window from idle entry spends at most 1/2^this of the credit. After
/// a quiet stretch the credit is full and the price at its top, and windows of milliseconds on
/// rare long periods spent what the next burst of short periods needed (nginx with 8
/// connections at 2%: bursts of about 40 periods of 130 us found the price at 45-130 us and
/// halted them). An eighth leaves most of a full credit for the burst. Below half the cap it
/// stops shrinking: there the price keeps windows short anyway, and an eighth of a nearly
/// empty credit cut the long windows that catch pgbench -S at 300 tx/s's long periods at 0.5%
/// (2.55% to 2.35% caught, below 1.5x Linux's). Without the floor, a quarter gained no point on
/// or above, a sixteenth one and lost one on traces recorded later. With a halt cost, where
/// catches give credit back, an eighth or a thirty-second of it traded points (nginx with 8
/// connections against nginx with 1 and redis with 50, net of a halt).
const WINDOW_CREDIT_SHIFT: u32 = 3;

/// Without a timer and without a halt cost, while the credit is below one cap, a window from
/// idle entry is at most 1/2^this of the cap. There the window limit
/// ([`Budget::window_limit_ns`]) is at least the cap's sixteenth, and in a quiet stretch at the
/// top price it bought windows of 0.6-1.7 ms that timed out on periods of 0.5-4 ms, spending
/// what the next burst of periods under 200 us needed (nginx with 32 connections' CPU 0 at 1%:
/// 18 ms of such timeouts before its bursts, then up to 53 halts of periods under 200 us a
/// half second within them). A governor with a timer meets those periods with one, and with a halt
/// cost catches give the credit back. A sixteenth fixed less; a 64th, or a 32nd of the credit
/// instead of the cap, cut the bursty web trace's CPU 0 at 0.5% (56.3% to 53.7-54.7%).
const UNTIMED_WINDOW_CAP_SHIFT: u32 = 5;

/// The reserve at which the price is highest, in ceilings.
const RESERVE_CEILINGS: u64 = 8;

/// `ppm` (at most [`PPM`]) in 2^-32, rounded down, at most `u32::MAX`.
pub const fn share_of(ppm: u32) -> u32 {
    let share = ((ppm as u64) << 32) / PPM as u64;
    if share > u32::MAX as u64 { u32::MAX } else { share as u32 }
}

/// The price's curve at a fill of `fill` 256ths of the reserve (at most 256): 2^(12 + 16 x
/// fill / 256) ns, interpolated linearly between powers of two.
const fn curve_of(fill: u64) -> u64 {
    // The range is 16 octaves, so a 256th of the fill is a sixteenth of an octave: with the
    // exponent in sixteenths, 4 octaves less, `(MIN_PRICE_SHIFT - 4) x 16 + fill`, the price
    // `2^whole x (16 + frac) / 16` is `(16 + frac) << (whole - 4)`: the same ns as
    // `(2^whole x (256 + 16 x frac)) >> 8` with the exponent in 256ths (exact, since whole is
    // at least 12), in 2 instructions fewer a period (`the_curve_is_the_one_in_256ths`).
    const _: () = assert!(MAX_PRICE_SHIFT - MIN_PRICE_SHIFT == 16 && MIN_PRICE_SHIFT >= 4);
    let exponent = (MIN_PRICE_SHIFT as u64 - 4) * 16 + fill;
    ((exponent & 15) | 16) << (exponent >> 4)
}

/// A CPU's polling budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// The share of time polling may take, in 2^-32: the parameters' ppm, rounded down, so that
    /// earning takes the whole ns by a shift instead of a division by 10^6. Earnings stay at
    /// most 1 ns, plus 1 ns in every 2^32 ns (4.3 s) of time, below the exact share, never
    /// above it. In 2^-20 (a product in 64 bits) they fell short by one part in 2^20, and that
    /// alone moved single points of the sweeps by up to 4.7 (docs/predictive-speed.md, round fourteen).
    share: u32,
    /// What `time x share` earned beyond the whole ns already credited, in 2^-32 ns.
    remainder: u32,
    /// Polling time available, ns, net of halts saved: from minus one halt cost (a poll that
    /// did not catch what it hoped to) to [`SAVED_CAPS`] caps.
    credit_ns: i64,
    /// What a halt costs, ns (at most [`MAX_HALT_COST_NS`]): a caught wakeup gives it back.
    halt_cost_ns: u32,
    /// The most credit kept: `ppm x horizon`.
    cap_ns: u64,
    /// The credit at which the price is highest: [`RESERVE_CEILINGS`] ceilings, at most half
    /// the cap.
    reserve_ns: u64,
    /// The longest poll window, ns (at most 1 s): the parameters', or the one a caller set
    /// ([`super::Predictive::set_ceiling_ns`]). The highest price is [`MAX_PRICE_CEILINGS`] of it
    /// ([`Budget::max_price_ns`]); kept here, where the price reads it, and not in the governor
    /// too (4 bytes of the state, which the burst price's cut top takes: [`BurstPrice`]).
    ceiling_ns: u32,
    /// `2^40 / reserve`, rounded up: the fill in 1/256 is `credit x fill_scale >> 32`, without a division on
    /// the idle path.
    fill_scale: u64,
}

impl Budget {
    /// A full credit (a horizon's worth), as after a quiet horizon.
    pub const fn new(params: &ValidPredictiveParams) -> Budget {
        let p = params.into_inner();
        // horizon <= 10^12 and ppm <= 10^6: the product fits; so does 8 x a ceiling <= 1 s.
        let cap_ns = p.budget_horizon_ns * p.poll_budget_ppm as u64 / PPM as u64;
        let reserve = RESERVE_CEILINGS * p.poll_ceiling_ns;
        let reserve_ns = if reserve < cap_ns / 2 { reserve } else { cap_ns / 2 };
        let fill_scale = match (1u64 << 40).checked_div(reserve_ns) {
            Some(q) if q * reserve_ns == 1 << 40 => q,
            Some(q) => q + 1, // rounded up
            None => 0,
        };
        Budget {
            // ppm <= 10^6: the share is below 2^32 but at 100%, which keeps 1 - 2^-32.
            share: share_of(p.poll_budget_ppm),
            remainder: 0,
            // cap <= 10^12: it fits.
            credit_ns: cap_ns as i64,
            // validate() keeps it at or below MAX_HALT_COST_NS, which fits.
            halt_cost_ns: p.halt_cost_ns as u32,
            cap_ns,
            reserve_ns,
            // validate() keeps the ceiling at or below 1 s.
            ceiling_ns: p.poll_ceiling_ns as u32,
            fill_scale,
        }
    }

    /// Sets the ceiling (at most 1 s, which the caller checks), and so the top price to four of
    /// it (`MAX_PRICE_CEILINGS`), in place of the parameters' ([`super::Predictive::set_ceiling_ns`]).
    /// The reserve stays the parameters' (its scale is worked out once, with a division).
    pub const fn set_ceiling_ns(&mut self, ceiling_ns: u32) {
        self.ceiling_ns = ceiling_ns;
    }

    /// The longest poll window, ns.
    pub const fn ceiling_ns(&self) -> u64 {
        self.ceiling_ns as u64
    }

    /// Makes whether the budget has a halt cost (`net`, which the caller passes as a constant:
    /// `halt_cost_ns() > 0`) plain to the compiler: the halt cost stays what it is, but reads
    /// 0 where `net` is false and at least 1 where it is true, so that a copy of the idle path
    /// compiled for each settles every rule that tests for a halt cost when it is compiled.
    /// Only for the governor's own idle path: with `net` not what the budget has, it would set
    /// the halt cost (a debug assertion checks).
    pub(super) const fn know(&mut self, net: bool) {
        debug_assert!(net == (self.halt_cost_ns > 0));
        self.halt_cost_ns = if !net {
            0
        } else if self.halt_cost_ns > 1 {
            self.halt_cost_ns
        } else {
            1
        };
    }

    /// Makes the credit `spend` left without a halt cost plain to the compiler, in a copy of the
    /// budget the plan reads: `credit_ns` is the limit `spend` returned, which without a halt
    /// cost is the credit, at least 0 (a register, where the credit read back from the budget is
    /// a load and a clamp at 0).
    pub(super) const fn know_credit(&mut self, credit_ns: u64) {
        debug_assert!(self.halt_cost_ns == 0 && credit_ns as i64 == self.credit_ns);
        self.credit_ns = credit_ns as i64;
    }

    /// Credit available, ns (0 while in debt).
    pub const fn credit_ns(&self) -> u64 {
        if self.credit_ns > 0 { self.credit_ns as u64 } else { 0 }
    }

    /// Whether, with a halt cost, the credit is far enough above the cap that every price and
    /// limit the plan reads from the budget is at its top, and stays there while this holds,
    /// whatever the credit (with `limit_ns`, which the caller checks is the ceiling): as at
    /// think 0, where catches that save more than they poll hold the credit near its top. Each
    /// condition is one of the budget's branches:
    /// - the price ([`Budget::price_ns`]): at least the reserve fills it (2^28), and above the
    ///   cap with a halt cost the top is `max_price_ns`, so it is `max_price_ns`;
    /// - the window price ([`Budget::window_price_ns`]): above `WINDOW_CAPS` caps it is the
    ///   price, or without a timer at most the credit's `NET_WINDOW_CREDIT_DIV`th, which is
    ///   above the price once the credit is that many top prices;
    /// - the window limits ([`Budget::window_limit_ns`], [`Budget::untimed_window_limit_ns`])
    ///   and the burst price's cut ([`BurstPrice`]) change nothing with a halt cost (its reserve
    ///   can: the caller checks that); the ski-rental floor's [`Budget::is_plentiful`] holds.
    pub const fn prices_at_top(&self, timer_first: bool) -> bool {
        let credit = self.credit_ns;
        // The timer's test first: without it, LLVM merged the others into selects.
        self.halt_cost_ns > 0
            && (timer_first || credit >= NET_WINDOW_CREDIT_DIV as i64 * self.max_price_ns() as i64)
            && credit > WINDOW_CAPS * self.cap_ns as i64
            && credit >= self.reserve_ns as i64
    }

    /// Whether the credit is at least the reserve: the budget does not bind now.
    pub const fn is_plentiful(&self) -> bool {
        self.credit_ns >= self.reserve_ns as i64
    }

    /// The longest window the credit allows: the credit plus one halt cost, ns.
    pub const fn limit_ns(&self) -> u64 {
        let limit = self.credit_ns + self.halt_cost_ns as i64;
        if limit > 0 { limit as u64 } else { 0 }
    }

    /// The price, ns: 2^(12 + 16 x credit / reserve), interpolated linearly between powers of
    /// two, at most four ceilings, and at most an eighth of the cap unless, with a halt cost, the
    /// credit is above it.
    pub const fn price_ns(&self) -> u64 {
        let price = self.curve_ns();
        // Credit earned buys catches at an eighth of the cap at most; only credit beyond the
        // cap with a halt cost, which catches gave back, buys the top price.
        let lifted = self.halt_cost_ns > 0 && self.credit_ns > self.cap_ns as i64;
        let max = if lifted { self.max_price_ns() } else { self.top_price_ns() };
        if price < max { price } else { max }
    }

    /// The price's curve, before its top ([`Budget::price_ns`]): 2^(12 + 16 x credit / reserve),
    /// interpolated linearly between powers of two.
    const fn curve_ns(&self) -> u64 {
        // The fill in 1/256, by the reciprocal kept (credit < reserve here, so the product is
        // below 2^40).
        let credit = self.credit_ns();
        let fill = if credit >= self.reserve_ns { 256 } else { (credit * self.fill_scale) >> 32 };
        curve_of(fill)
    }

    /// What a catch is worth to a window from idle entry, given the price ([`Budget::price_ns`]):
    /// while the credit is within `WINDOW_CAPS` (3) caps (without a timer, on a cap of many halts,
    /// `UNTIMED_WINDOW_CAPS`, 2), at most the cap's eighth, and for a
    /// governor without a timer (`timer_first` false) at most its sixteenth once the credit is
    /// above the cap, or with a halt cost on a cap of many halts within it too
    /// (`UNTIMED_CAP_HALTS`, 128 halts); beyond that, the price itself, or for a governor
    /// without a timer and with a halt cost, at most the credit over `NET_WINDOW_CREDIT_DIV`
    /// (24). Without a timer every
    /// catch is a window's, so its savings go further at the lower price; with one (the cap's
    /// sixteenth there too), pgbench -S closed-loop's timer-first points fell below Linux's
    /// frontier.
    pub const fn window_price_ns(&self, price_ns: u64, timer_first: bool) -> u64 {
        let cap = self.cap_ns as i64;
        // Without a timer, on a cap of many halts: the sixteenth within the cap, two caps' band.
        let many = !timer_first && self.untimed_sixteenth_within_cap();
        let caps = if many { UNTIMED_WINDOW_CAPS } else { WINDOW_CAPS };
        let above = self.credit_ns > caps * cap;
        if !timer_first && self.halt_cost_ns > 0 && above {
            return self.net_window_price_ns(price_ns);
        }
        // Within the cap the price is at most the cap's eighth already ([`Budget::price_ns`]);
        // only the untimed sixteenth, on a cap of many halts, is lower there.
        if (self.credit_ns <= cap && !many) || above {
            return price_ns;
        }
        let max = if timer_first { self.cap_ns / CAP_PER_PRICE } else { self.cap_ns / (2 * CAP_PER_PRICE) };
        if price_ns < max { price_ns } else { max }
    }

    /// Whether the untimed window price's sixteenth of the cap holds within the cap too: with a
    /// halt cost, on a cap of at least [`UNTIMED_CAP_HALTS`] (128) halts.
    const fn untimed_sixteenth_within_cap(&self) -> bool {
        // A halt cost is at most `MAX_HALT_COST_NS` (32 bits): the product fits.
        self.halt_cost_ns > 0 && self.cap_ns >= UNTIMED_CAP_HALTS * self.halt_cost_ns as u64
    }

    /// What a catch is worth to a window of a governor without a timer, with a halt cost,
    /// once the credit is above its window price's band (`WINDOW_CAPS`, or
    /// `UNTIMED_WINDOW_CAPS` on a cap of many halts): the price, at most the credit's
    /// `NET_WINDOW_CREDIT_DIV`th.
    const fn net_window_price_ns(&self, price_ns: u64) -> u64 {
        // Above three caps, so positive.
        let max = self.credit_ns as u64 / NET_WINDOW_CREDIT_DIV;
        if price_ns < max { price_ns } else { max }
    }

    /// The longest window from idle entry, given `limit_ns` (the ceiling's and the credit's):
    /// without a halt cost, at most an eighth of the credit, or of half the cap while the
    /// credit is below that (`WINDOW_CREDIT_SHIFT`); with one, `limit_ns` itself.
    pub const fn window_limit_ns(&self, limit_ns: u64) -> u64 {
        // Half the cap is at least 0, so a debt needs no check of its own.
        let half_cap = (self.cap_ns / 2) as i64;
        let share = (if self.credit_ns > half_cap { self.credit_ns } else { half_cap }) as u64 >> WINDOW_CREDIT_SHIFT;
        if self.halt_cost_ns > 0 || limit_ns < share { limit_ns } else { share }
    }

    /// The longest window from idle entry of a governor without a timer, given its window limit
    /// (`window_limit_ns`, [`Budget::window_limit_ns`]): without a halt cost and while the credit
    /// is below one cap, at most the cap's 32nd (`UNTIMED_WINDOW_CAP_SHIFT`).
    pub const fn untimed_window_limit_ns(&self, window_limit_ns: u64) -> u64 {
        let max = self.cap_ns >> UNTIMED_WINDOW_CAP_SHIFT;
        let bound = self.halt_cost_ns == 0 && self.credit_ns < self.cap_ns as i64;
        if bound && max < window_limit_ns { max } else { window_limit_ns }
    }

    /// The highest price: four ceilings (`MAX_PRICE_CEILINGS`), within the price's range; where,
    /// with a halt cost, the credit is above the cap and the reserve, [`Budget::price_ns`].
    pub const fn max_price_ns(&self) -> u64 {
        // A ceiling is at most 1 s: the product fits.
        let max = MAX_PRICE_CEILINGS * self.ceiling_ns as u64;
        if max > 1 << MAX_PRICE_SHIFT { 1 << MAX_PRICE_SHIFT } else { max }
    }

    /// The highest price the credit earned buys: four ceilings (`MAX_PRICE_CEILINGS`), at most
    /// the cap's eighth (`CAP_PER_PRICE`); [`Budget::price_ns`]'s top, but where, with a halt
    /// cost, credit beyond the cap lifts it to the four ceilings.
    pub const fn top_price_ns(&self) -> u64 {
        let (max, earned_max) = (self.max_price_ns(), self.cap_ns / CAP_PER_PRICE);
        if max < earned_max { max } else { earned_max }
    }

    /// The credit in reserve steps (the cap over [`RESERVE_STEP_DIV`]), at most 255.
    const fn credit_steps(&self) -> u8 {
        let step = self.cap_ns / RESERVE_STEP_DIV;
        match self.credit_ns().checked_div(step) {
            Some(n) if n < 255 => n as u8,
            Some(_) => 255,
            None => 0,
        }
    }

    /// Whether the credit is at least `caps` caps (a horizon's earnings each).
    pub const fn holds_caps(&self, caps: i64) -> bool {
        self.credit_ns >= caps * self.cap_ns as i64
    }

    /// Earns the budget's share of `elapsed_ns`, up to the credit kept.
    pub fn earn(&mut self, elapsed_ns: u64) {
        // The remainder carried in goes in before the shift; below 2^64 x 2^32: 128 bits (one
        // widening product), and the whole ns below 2^64, with no bound on the time.
        let product = u128::from(elapsed_ns) * u128::from(self.share) + u128::from(self.remainder);
        let whole = (product >> 32) as u64;
        self.remainder = product as u32;
        let cap = self.limit_kept();
        if self.credit_ns < cap {
            // Below the cap, so the room to it is positive; what fills it is compared unsigned.
            let room = (cap - self.credit_ns) as u64;
            self.credit_ns = if whole < room { self.credit_ns + whole as i64 } else { cap };
        }
    }

    /// What a halt costs, ns: what a caught wakeup gives back.
    pub const fn halt_cost_ns(&self) -> u64 {
        self.halt_cost_ns as u64
    }

    /// Sets what a halt costs, ns (at most [`MAX_HALT_COST_NS`]; more counts as that).
    pub fn set_halt_cost_ns(&mut self, ns: u64) {
        self.halt_cost_ns = ns.min(MAX_HALT_COST_NS) as u32;
    }

    /// The most credit kept, ns: [`EARNED_CAPS`] horizons' worth when all polling counts; with a
    /// halt cost, [`SAVED_CAPS`] of them, earned or given back alike. Were earnings kept to one
    /// horizon while catches' savings held the credit above it, they would be lost just when
    /// cheap catches had paid for the polling, and the next stretch of longer periods would have
    /// to be paid from the savings alone (memcached's periods around a 50 us halt: it halted there,
    /// yet its net polling over the whole trace came to -2% of the time, under a 5% budget).
    const fn limit_kept(&self) -> i64 {
        let cap = self.cap_ns as i64;
        if self.halt_cost_ns > 0 { SAVED_CAPS * cap } else { EARNED_CAPS * cap }
    }

    /// Spends `poll_ns` of polling, net of the halt a caught wakeup saved.
    /// Returns the credit's limit after it ([`Budget::limit_ns`]), which the debt's floor keeps
    /// at least 0 without `limit_ns`'s clamp.
    pub fn spend(&mut self, poll_ns: u64, caught: bool) -> u64 {
        debug_assert!(self.credit_ns <= SAVED_CAPS * self.cap_ns as i64);
        if self.halt_cost_ns == 0 {
            // Without a halt cost the debt stops at 0 and nothing is saved: the credit (at least 0,
            // where a halt cost that went back to 0 left a debt) less the poll, stopped at 0, is
            // what the rule below gives, in two instructions fewer than its bound on the poll and
            // its floor (`know` settles the test at compile time on the idle path).
            let credit = (self.credit_ns.max(0) as u64).saturating_sub(poll_ns);
            // At most the credit: it fits.
            self.credit_ns = credit as i64;
            return credit;
        }
        let saved = if caught { i64::from(self.halt_cost_ns) } else { 0 };
        // The credit is within +-2^47 and a halt cost below 2^24, so with the poll cut to 2^62
        // nothing overflows, and a poll that long leaves the debt at its floor anyway.
        let poll = poll_ns.min(1 << 62) as i64;
        let credit = self.credit_ns + saved - poll;
        // A forced poll can overdraw more than one halt cost; the debt stops there, as the
        // credit stopped at 0 before there was a halt cost. (A clamp, without `clamp`'s check
        // that its bounds are in order, a branch on every period: these always are.)
        let credit = credit.max(-i64::from(self.halt_cost_ns));
        // Only a catch's saving raises the credit past what earning keeps, and never past
        // `SAVED_CAPS` caps (with a halt cost, as here: without one the rule above returned).
        self.credit_ns = credit.min(SAVED_CAPS * self.cap_ns as i64);
        let limit = (self.credit_ns + i64::from(self.halt_cost_ns)) as u64;
        debug_assert!(limit == self.limit_ns());
        limit
    }
}

/// The most the burst price lowers the top price, in quarter octaves: 3 octaves, to an eighth.
/// 10 octaves cost redis with 50 clients at 5% with the timer 2.7 points; 2 and 2.5 octaves kept
/// 3 of the later traces' points (at 10-20%) below Linux's frontier.
const MAX_BURST_CUT: u8 = 12;

/// A halt counts against the top price when the price had fallen below the top over this, and
/// the period was no longer than the top over this: a catch the top price would have bought
/// cheaply, lost because the credit had gone elsewhere. 3 cut too often (the bursty web trace's
/// CPU 0 at 0.5% lost a point), 6 too seldom (nginx with 32 connections' CPU 0 at 1% gained 3.7
/// points instead of 5.7).
const STARVED_DIV: u64 = 4;

/// The top price recovers a step each period the credit holds this many caps: earnings pile up
/// unspent, so the top is lower than polling needs. At one cap it recovered between the bursts
/// of nginx with 8 connections and lost its gain; at 3 and 4 caps it recovered too seldom there
/// (2% without a timer, 89.4% to 87.5%), and at 4 on pgbench -S at 300 tx/s (a big win lost).
const RECOVER_CAPS: i64 = 2;

/// Each halt the reserve learns from adds the cap over this to it, without a halt cost; with
/// one, the credit is counted in these steps.
const RESERVE_STEP_DIV: u64 = 16;

/// The reserve is at most this many steps: three quarters of the cap. One cap (with a halt
/// cost) left nginx with 32 connections' CPU 0 at 0.5%, net of a halt, 0.7 point deeper below
/// Linux's frontier; half a cap kept nginx with 8 connections at 2%, net, short.
const MAX_RESERVE_STEPS: u8 = 12;

/// A timer-on window from idle entry may take the credit below the reserve up to the top price
/// over 2^this (the top at the deepest cut): the burst's own short periods still spend it.
const SHORT_WINDOW_SHIFT: u32 = 3;

// The kept top at the deepest cut is the short window ([`BurstPrice::window_limit_ns`]): the
// cut's whole octaves are the window's shift, and it has no quarter left.
const _: () = assert!(MAX_BURST_CUT as u32 / 4 == SHORT_WINDOW_SHIFT && MAX_BURST_CUT.is_multiple_of(4));

/// With a halt cost, a halt teaches the reserve if its period was at most the top price over
/// this, and the price had fallen below that. A quarter (the burst price's [`STARVED_DIV`]) and
/// an eighth learnt from pgbench -S at 300 tx/s's periods of 2.5 ms at 10% (where the top is
/// 12.5 ms), and the reserve then held back the long windows that catch them; a 32nd learnt
/// too seldom to move nginx with 8 connections.
const NET_STARVED_DIV: u64 = 16;

/// What the top price is worth where the CPU idles in bursts: a cut of the top price in quarter
/// octaves, learnt from the periods the budget could not afford; and a reserve of credit that
/// long windows leave for the next burst.
///
/// The price follows the credit, with no idea that bursts come back: after a quiet stretch it is
/// at its top and buys windows of a millisecond on rare long periods, and the next burst of short
/// periods drains the credit and halts them at a price of 50-150 us (nginx with 32 connections'
/// CPU 0 at 1%: 21 ms of windows timed out on periods of 0.5-4 ms, while about 170 periods
/// under 200 us halted). Every halt of a period the top price would have bought cheaply, while the
/// price was far below it, lowers the top a quarter octave; every period with two caps of credit
/// unspent raises it one. Without a halt cost only: with one, catches give the credit back and
/// the windows that spend it are the ones that pay.
///
/// The cut is forgotten as soon as the credit piles up again, before the next burst; the reserve
/// is not. Without a halt cost each halt the cut learns from adds a step to it; with one, a halt
/// of a short period for want of credit sets it to the credit drained since the most the credit
/// held (where the burst, or the quiet stretch's long windows before it, started), if that is
/// more. Sized so, it tells a burst that drained the credit from a steady trace whose credit
/// never piles up (pgbench -S at 300 tx/s), where counting halts held back the long windows
/// Linux's best setting catches its periods with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BurstPrice {
    /// The highest price a catch can be worth now (`BurstPrice::top_of`): without a halt cost,
    /// the budget's top price cut (the price reads it every period: 11 instructions of a
    /// product and shifts, kept here as the cut, the ceiling or the halt cost changes); with
    /// one, where the cut does not apply, the budget's highest, four ceilings (which a plan
    /// kept at the top reads: [`super::Predictive::keeps_plan`]). Within the price's range
    /// (2^28): 32 bits hold it.
    top_ns: u32,
    /// Quarter octaves off the top price, at most [`MAX_BURST_CUT`].
    cut: u8,
    /// Credit a timer-on window from idle entry leaves for the next burst, in
    /// [`RESERVE_STEP_DIV`]ths of the cap, at most [`MAX_RESERVE_STEPS`].
    reserve: u8,
    /// With a halt cost, the most credit since the last halt the reserve learnt from, in reserve
    /// steps (at most 255).
    high: u8,
}

impl BurstPrice {
    /// No cut and no reserve: the top price of `budget`, and all its credit.
    pub const fn new(budget: &Budget) -> BurstPrice {
        BurstPrice { top_ns: Self::top_of(0, budget), cut: 0, reserve: 0, high: 0 }
    }

    /// The highest price of `budget` with a cut of `cut` quarter octaves: with a halt cost its
    /// highest ([`Budget::max_price_ns`]); without one, its top price cut by `2^-(cut / 4)`,
    /// interpolated linearly between octaves. At most 2^28, so 32 bits hold it.
    const fn top_of(cut: u8, budget: &Budget) -> u32 {
        if budget.halt_cost_ns() > 0 {
            return budget.max_price_ns() as u32;
        }
        let (whole, quarters) = ((cut >> 2) as u32, (cut & 3) as u64);
        ((budget.top_price_ns() >> whole) * (8 - quarters) / 8) as u32
    }

    /// The highest price a catch can be worth now: without a halt cost, the top price cut;
    /// with one, four ceilings.
    pub const fn top_ns(&self) -> u64 {
        self.top_ns as u64
    }

    /// Sets the cut, and the cut top price with it.
    const fn cut_to(&mut self, cut: u8, budget: &Budget) {
        self.cut = cut;
        self.top_ns = Self::top_of(cut, budget);
    }

    /// Whether the kept top is what `budget` and the cut make it now (`BurstPrice::top_of`):
    /// the caller follows every change of the ceiling and the halt cost.
    pub const fn keeps_top(&self, budget: &Budget) -> bool {
        self.top_ns == Self::top_of(self.cut, budget)
    }

    /// Follows a new top price of `budget`: its ceiling ([`Budget::set_ceiling_ns`]) or its
    /// halt cost changed.
    pub const fn follow(&mut self, budget: &Budget) {
        self.cut_to(self.cut, budget);
    }

    /// `price_ns` (at most [`Budget::price_ns`]'s top), at most the cut top price; without a
    /// halt cost only.
    pub const fn price_ns(&self, budget: &Budget, price_ns: u64) -> u64 {
        if budget.halt_cost_ns() > 0 {
            return price_ns;
        }
        let top = self.top_ns();
        if price_ns < top { price_ns } else { top }
    }

    /// `budget`'s price ([`Budget::price_ns`]), at most the cut top price; without a halt cost
    /// only. There the price's own top is the uncut top, which the cut top is at most, so its
    /// curve is cut once, by the cut top alone.
    pub const fn price_of(&self, budget: &Budget) -> u64 {
        debug_assert!(self.keeps_top(budget));
        if budget.halt_cost_ns() > 0 { budget.price_ns() } else { self.price_ns(budget, budget.curve_ns()) }
    }

    /// The longest window from idle entry of a timer-on governor, given its window limit: one
    /// that leaves the reserve, or a short one (the top price over 2^`SHORT_WINDOW_SHIFT`).
    /// Applied to a governor without a timer too, it left the bursty web trace's CPU 1 at 10%
    /// newly short (99.16% to 98.17%): there every catch is a window's.
    pub const fn window_limit_ns(&self, budget: &Budget, window_limit_ns: u64) -> u64 {
        if self.reserve == 0 {
            return window_limit_ns;
        }
        // The credit beyond the reserve, signed (both below 2^41): where it is not more than
        // the short window, which is at least 0, the short window is the limit, so the
        // difference needs no clamp at 0.
        let spare = budget.credit_ns() as i64 - (budget.cap_ns / RESERVE_STEP_DIV * self.reserve as u64) as i64;
        // At the deepest cut, without a halt cost, the kept top is the short window itself
        // (`(top >> 3) x 8 / 8`, exact): a load and a test where the uncut top's clamps cost
        // about 10 instructions, on a path where the burst reserve has learnt, and the cut with it.
        let short = if budget.halt_cost_ns() == 0 && self.cut == MAX_BURST_CUT {
            self.top_ns()
        } else {
            budget.top_price_ns() >> SHORT_WINDOW_SHIFT
        };
        debug_assert!(short == budget.top_price_ns() >> SHORT_WINDOW_SHIFT);
        let max = if spare > short as i64 { spare as u64 } else { short };
        if window_limit_ns < max { window_limit_ns } else { max }
    }

    /// Lowers the top a step, and adds a step to the reserve, if a halt of `wakeup_ns` lost a
    /// cheap catch for want of credit. Apart, and never inlined: most periods are caught, and the
    /// idle path stays short.
    #[inline(never)]
    fn learn_halt(&mut self, budget: &Budget, wakeup_ns: u64) {
        let cheap = self.top_ns() / STARVED_DIV;
        if wakeup_ns <= cheap && budget.price_ns() < cheap {
            self.cut_to(self.cut + 1, budget);
            if self.reserve < MAX_RESERVE_STEPS {
                self.reserve += 1;
            }
        }
    }

    /// With a halt cost: if a halt of `wakeup_ns` lost a catch the top price would have bought
    /// cheaply ([`NET_STARVED_DIV`]) for want of credit, the reserve is at least the credit
    /// drained since the high mark, which starts again.
    #[inline(never)]
    fn learn_net_halt(&mut self, budget: &Budget, wakeup_ns: u64) {
        let cheap = budget.top_price_ns() / NET_STARVED_DIV;
        if wakeup_ns <= cheap && budget.price_ns() < cheap {
            let now = budget.credit_steps();
            let drained = self.high.saturating_sub(now);
            let drained = if drained < MAX_RESERVE_STEPS { drained } else { MAX_RESERVE_STEPS };
            if drained > self.reserve {
                self.reserve = drained;
            }
            self.high = now;
        }
    }

    /// With a halt cost: raises the high mark to the credit, and learns from a halt.
    fn learn_net(&mut self, budget: &Budget, wakeup_ns: u64, caught: bool) {
        // A division only when the credit passes the mark's next step, and never at the mark's
        // top: the steps are at most 255, so a mark of 255 cannot rise (and with the credit held
        // above 16 caps, as at think 0, every period would divide for nothing).
        if self.high < u8::MAX && budget.credit_ns() >= (self.high as u64 + 1) * (budget.cap_ns / RESERVE_STEP_DIV) {
            let now = budget.credit_steps();
            if now > self.high {
                self.high = now;
            }
        }
        if !caught && !budget.is_plentiful() {
            self.learn_net_halt(budget, wakeup_ns);
        }
    }

    /// Learns from a period that ended `wakeup_ns` after idle entry, caught or not, once the
    /// budget has been charged for it. Inline: on the idle path every period, and out of
    /// line it costs a call and the registers around it (7 instructions a period).
    #[inline(always)]
    pub fn learn(&mut self, budget: &Budget, wakeup_ns: u64, caught: bool) {
        if budget.halt_cost_ns() > 0 {
            self.learn_net(budget, wakeup_ns, caught);
        } else if budget.holds_caps(RECOVER_CAPS) {
            if self.cut > 0 {
                self.cut_to(self.cut - 1, budget);
            }
        } else if !caught && self.cut < MAX_BURST_CUT && !budget.is_plentiful() {
            self.learn_halt(budget, wakeup_ns);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::predictive::{MAX_HORIZON_NS, PredictiveParams};

    #[test]
    fn the_curve_is_the_one_in_256ths() {
        // Every fill the price reads (0 to 256): the exponent in 256ths of an octave, as it
        // was worked out before, gives the same ns.
        let range = u64::from(MAX_PRICE_SHIFT - MIN_PRICE_SHIFT);
        for fill in 0..=256 {
            let exponent = u64::from(MIN_PRICE_SHIFT) * 256 + range * fill;
            let (whole, frac) = (exponent >> 8, exponent & 255);
            assert_eq!(curve_of(fill), ((1u64 << whole) * (256 + frac)) >> 8, "fill {fill}");
        }
        assert_eq!((curve_of(0), curve_of(256)), (1 << MIN_PRICE_SHIFT, 1 << MAX_PRICE_SHIFT));
    }

    fn budget(ppm: u32, horizon_ns: u64) -> Budget {
        let p = PredictiveParams { poll_budget_ppm: ppm, budget_horizon_ns: horizon_ns, ..PredictiveParams::DEFAULT };
        Budget::new(&p.validate().unwrap())
    }

    #[test]
    fn earns_its_share_within_a_ns_and_caps() {
        let mut b = budget(50_000, 1_000_000); // 5%, cap 50 us
        assert_eq!(b.credit_ns(), 50_000, "a CPU starts with a full credit");
        b.spend(50_000, false);
        for _ in 0..1_000 {
            b.earn(333); // 16.65 ns each
        }
        // 16,650 ns less the share's rounding down (5% in 2^-32: under 1 ns in 4.3 s).
        assert_eq!(b.credit_ns(), 16_649);
        b.earn(u64::MAX);
        assert_eq!(b.credit_ns(), 200_000, "earnings are kept up to 4 caps");
        b.spend(210_000, true);
        assert_eq!(b.credit_ns(), 0);
    }

    proptest::proptest! {
        #[test]
        fn without_a_halt_cost_spending_stops_the_credit_at_0(
            credit in -(1i64 << 24)..1 << 35,
            poll in proptest::prop_oneof![0u64..1 << 41, proptest::strategy::Just(u64::MAX)],
            caught: bool,
        ) {
            // A cap of 10^9 ns (the longest horizon at 0.1%): any credit here is within 64 of them.
            let mut b = budget(1_000, MAX_HORIZON_NS);
            b.credit_ns = credit;
            // The rule with a halt cost, at 0: the poll bounded, the debt stopped at 0.
            let expected = (credit - poll.min(1 << 62) as i64).max(0);
            proptest::prop_assert_eq!(b.spend(poll, caught), expected as u64);
            proptest::prop_assert_eq!(b.credit_ns, expected);
        }

        #[test]
        fn earnings_are_the_exact_share_or_at_most_a_ns_a_4_s_below_it(
            ppm in 0u32..=PPM,
            elapsed in proptest::collection::vec(0u64..2_000_000_000, 1..200),
        ) {
            // A horizon long enough that the cap never binds, the credit spent first.
            let mut b = budget(ppm, MAX_HORIZON_NS);
            b.spend(b.credit_ns(), false);
            let mut time: u128 = 0;
            for ns in elapsed {
                b.earn(ns);
                time += u128::from(ns);
                let exact = time * u128::from(ppm) / u128::from(PPM);
                let earned = b.credit_ns() as u128;
                // Never more than the budget; less by under 1 ns in 2^32 ns of time.
                proptest::prop_assert!(earned <= exact && exact - earned <= (time >> 32) + 1, "{earned} {exact} {time}");
            }
        }
    }

    #[test]
    fn a_window_from_idle_entry_leaves_most_of_the_credit_for_the_next_burst() {
        let mut b = budget(20_000, 1_000_000_000); // 2%, a cap of 20 ms
        b.earn(u64::MAX);
        assert_eq!(b.credit_ns(), 80_000_000);
        assert_eq!(b.window_limit_ns(4_000_000), 4_000_000, "a full credit's eighth is above the ceiling");
        b.spend(56_000_000, false); // 24 ms left
        assert_eq!(b.window_limit_ns(4_000_000), 3_000_000, "an eighth of the credit");
        b.spend(20_000_000, false); // 4 ms left: below half the cap
        assert_eq!(b.window_limit_ns(4_000_000), 1_250_000, "an eighth of half the cap");
        assert_eq!(b.window_limit_ns(500_000), 500_000, "never above the limit given");
        b.set_halt_cost_ns(50_000);
        assert_eq!(b.window_limit_ns(4_000_000), 4_000_000, "with a halt cost, the limit given");
    }

    #[test]
    fn without_a_timer_a_window_is_short_until_the_credit_holds_a_cap() {
        let mut b = budget(10_000, 1_000_000_000); // 1%, a cap of 10 ms, its 32nd 312.5 us
        assert_eq!(b.untimed_window_limit_ns(1_250_000), 1_250_000, "a full cap: the limit given");
        b.spend(1, false);
        assert_eq!(b.untimed_window_limit_ns(1_250_000), 312_500, "below it: the cap's 32nd");
        assert_eq!(b.untimed_window_limit_ns(100_000), 100_000, "never above the limit given");
        b.set_halt_cost_ns(50_000);
        assert_eq!(b.untimed_window_limit_ns(1_250_000), 1_250_000, "with a halt cost, the limit given");
    }

    #[test]
    fn a_catch_gives_the_halt_cost_back() {
        let p = PredictiveParams { poll_budget_ppm: 50_000, halt_cost_ns: 20_000, ..PredictiveParams::DEFAULT };
        let mut b = Budget::new(&p.validate().unwrap());
        b.spend(b.credit_ns(), false);
        b.earn(1_000_000); // 50 us, less 1 ns: the share in 2^-32 is rounded down
        b.spend(30_000, true); // 10 us net
        assert_eq!(b.credit_ns(), 39_999);
        b.spend(5_000, true); // 15 us back
        assert_eq!(b.credit_ns(), 54_999);
        b.spend(30_000, false);
        assert_eq!(b.credit_ns(), 24_999);
        b.set_halt_cost_ns(0);
        b.spend(5_000, true);
        assert_eq!(b.credit_ns(), 19_999);
        b.set_halt_cost_ns(u64::MAX);
        assert_eq!(b.halt_cost_ns(), MAX_HALT_COST_NS);
        for _ in 0..400 {
            b.spend(0, true);
        }
        let saved_cap = SAVED_CAPS as u64 * b.cap_ns;
        assert_eq!(b.credit_ns(), saved_cap, "what catches give back stays within its cap");
        b.earn(1_000_000_000);
        assert_eq!(b.credit_ns(), saved_cap, "earning does not lower it");
        b.spend(u64::MAX, false);
        assert_eq!((b.credit_ns(), b.limit_ns()), (0, 0), "in debt by one halt cost at most");
    }

    #[test]
    fn with_a_halt_cost_earnings_are_kept_beyond_a_horizon() {
        let p = PredictiveParams { poll_budget_ppm: 50_000, halt_cost_ns: 20_000, ..PredictiveParams::DEFAULT };
        let mut b = Budget::new(&p.validate().unwrap());
        let cap = b.cap_ns;
        for _ in 0..10 {
            b.spend(0, true); // catches give 200 us back, above the cap
        }
        b.earn(1_000_000_000); // a horizon: 50 ms more (less 1 ns, rounded down), not lost to the savings
        assert_eq!(b.credit_ns(), cap + 200_000 + 50_000_000 - 1);
        b.earn(u64::MAX);
        assert_eq!(b.credit_ns(), SAVED_CAPS as u64 * cap);
        // Without a halt cost, 4 horizons' worth.
        b.set_halt_cost_ns(0);
        b.spend(b.credit_ns(), false);
        b.earn(u64::MAX);
        assert_eq!(b.credit_ns(), EARNED_CAPS as u64 * cap);
    }

    #[test]
    fn the_price_follows_the_credit() {
        // 5% of 1 s: a cap of 50 ms; a reserve of 8 ceilings of 100 us, 800 us.
        let p = PredictiveParams { poll_budget_ppm: 50_000, poll_ceiling_ns: 100_000, ..PredictiveParams::DEFAULT };
        let mut b = Budget::new(&p.validate().unwrap());
        b.spend(u64::MAX, false);
        assert_eq!((b.credit_ns(), b.price_ns()), (0, 1 << MIN_PRICE_SHIFT));
        let mut last = b.price_ns();
        for _ in 0..80 {
            b.earn(200_000); // 10 us each
            assert!(b.price_ns() >= last);
            last = b.price_ns();
        }
        assert_eq!(b.price_ns(), 400_000, "at most 4 ceilings");
        // 1% of 1 s: a cap of 10 ms, whose eighth (1.25 ms) is below 4 ceilings of 1 ms.
        let p = PredictiveParams { poll_budget_ppm: 10_000, poll_ceiling_ns: 1_000_000, ..PredictiveParams::DEFAULT };
        let mut low = Budget::new(&p.validate().unwrap());
        assert_eq!(low.price_ns(), 1_250_000, "a full credit of earnings buys an eighth of the cap");
        low.earn(10_000_000_000);
        assert_eq!(low.credit_ns(), 40_000_000, "4 caps of earnings kept");
        assert_eq!(low.price_ns(), 1_250_000, "earnings beyond the cap do not lift the price");
        low.set_halt_cost_ns(20_000);
        low.spend(0, true);
        assert_eq!(low.price_ns(), 4_000_000, "credit that catches gave back lifts it");
        b.spend(b.credit_ns() - 200_000, false);
        assert_eq!(b.price_ns(), 1 << 16, "at 1/4 of the reserve: 2^(12 + 16 x 1/4)");
    }

    #[test]
    fn windows_are_priced_apart_while_savings_are_few() {
        // 1% of 1 s: a cap of 10 ms; its eighth 1.25 ms, its sixteenth 625 us; 4 ceilings: 4 ms.
        let p = PredictiveParams {
            poll_budget_ppm: 10_000,
            poll_ceiling_ns: 1_000_000,
            halt_cost_ns: 50_000,
            ..PredictiveParams::DEFAULT
        };
        let mut b = Budget::new(&p.validate().unwrap());
        let windows = |b: &Budget| (b.window_price_ns(b.price_ns(), true), b.window_price_ns(b.price_ns(), false));
        assert_eq!(
            (b.price_ns(), windows(&b)),
            (1_250_000, (1_250_000, 625_000)),
            "within the cap: a cap of 200 halts, the sixteenth without a timer"
        );
        for _ in 0..20 {
            b.spend(0, true); // 1 ms saved: 11 ms
        }
        assert_eq!(b.price_ns(), 4_000_000, "the timer's price: savings buy the top");
        assert_eq!(windows(&b), (1_250_000, 625_000), "windows: the cap's eighth, a sixteenth without a timer");
        assert_eq!(b.window_price_ns(100_000, false), 100_000, "a lower price stays");
        for _ in 0..180 {
            b.spend(0, true); // 9 ms more: 20 ms, two caps
        }
        assert_eq!(windows(&b), (1_250_000, 625_000));
        b.spend(0, true); // 20.05 ms
        assert_eq!(
            windows(&b),
            (1_250_000, 835_416),
            "beyond two caps, on a cap of 200 halts: without a timer the credit's 24th"
        );
        for _ in 0..199 {
            b.spend(0, true); // 9.95 ms more: 30 ms, three caps
        }
        assert_eq!(windows(&b), (1_250_000, 1_250_000));
        b.spend(0, true); // 30.05 ms
        assert_eq!(windows(&b), (4_000_000, 1_252_083), "beyond three caps: the price, with a timer too");
        for _ in 0..1_400 {
            b.spend(0, true); // 70 ms more: 100.05 ms, whose 24th is above the top price
        }
        assert_eq!(windows(&b), (4_000_000, 4_000_000));
        b.set_halt_cost_ns(0);
        assert_eq!(windows(&b).1, b.price_ns(), "without a halt cost, the price itself");
    }

    #[test]
    fn within_the_cap_the_untimed_sixteenth_needs_a_cap_of_many_halts() {
        // 50 us halts: 0.5% of 1 s is a cap of 100 halts, 0.64% one of 128.
        let windows = |ppm: u32, halt_cost_ns: u64| {
            let p = PredictiveParams { poll_budget_ppm: ppm, halt_cost_ns, ..PredictiveParams::DEFAULT };
            let b = Budget::new(&p.validate().unwrap());
            (b.price_ns(), b.window_price_ns(b.price_ns(), true), b.window_price_ns(b.price_ns(), false))
        };
        assert_eq!(windows(5_000, 50_000), (625_000, 625_000, 625_000), "100 halts: the price");
        assert_eq!(windows(6_399, 50_000), (799_875, 799_875, 799_875), "just under 128 halts");
        assert_eq!(windows(6_400, 50_000), (800_000, 800_000, 400_000), "128 halts: the sixteenth");
        // Beyond two caps, on a cap of many halts only: the window price no longer holds.
        let beyond = |ppm: u32| {
            let p = PredictiveParams { poll_budget_ppm: ppm, halt_cost_ns: 50_000, ..PredictiveParams::DEFAULT };
            let mut b = Budget::new(&p.validate().unwrap());
            let cap = b.cap_ns as i64;
            b.credit_ns = 2 * cap + 1;
            b.window_price_ns(b.price_ns(), false) > (b.cap_ns / (2 * CAP_PER_PRICE))
        };
        assert!(!beyond(5_000), "100 halts: within three caps, the sixteenth");
        assert!(beyond(6_400), "128 halts: beyond two caps, the credit's 24th");
        assert_eq!(windows(10_000, 0), (1_250_000, 1_250_000, 1_250_000), "no halt cost: the price");
        // With a timer, never below the price within the cap; without one, never above it.
        for ppm in [1_000, 5_000, 6_400, 10_000, 50_000, 200_000] {
            for halt in [0, 1_000, 50_000, 200_000] {
                let (price, timed, untimed) = windows(ppm, halt);
                assert!(timed == price && untimed <= price, "{ppm} ppm, {halt} ns");
            }
        }
    }

    #[test]
    fn halts_the_credit_could_not_pay_for_lower_the_top_price_until_earnings_pile_up() {
        // 1% of 1 s: a cap of 10 ms; the top price its eighth, 1.25 ms.
        let p = PredictiveParams { poll_budget_ppm: 10_000, poll_ceiling_ns: 1_000_000, ..PredictiveParams::DEFAULT };
        let mut b = Budget::new(&p.validate().unwrap());
        let none = BurstPrice::new(&b);
        let mut burst = none;
        assert_eq!(burst.price_ns(&b, b.price_ns()), 1_250_000);
        burst.learn(&b, 50_000, false);
        assert_eq!(burst, none, "a halt while the credit is plentiful says nothing");
        b.spend(u64::MAX, false); // drained by a burst
        burst.learn(&b, 400_000, false);
        assert_eq!(burst, none, "nor does a period the top price would not buy cheaply");
        burst.learn(&b, 50_000, true);
        assert_eq!(burst, none, "nor a catch");
        burst.learn(&b, 50_000, false);
        b.earn(1_000_000_000); // a full cap again
        assert_eq!(burst.price_ns(&b, b.price_ns()), 1_250_000 * 7 / 8, "a quarter octave off the top");
        b.spend(u64::MAX, false);
        for _ in 0..100 {
            burst.learn(&b, 10_000, false);
        }
        b.earn(1_000_000_000);
        assert_eq!(burst.price_ns(&b, b.price_ns()), 1_250_000 / 8, "three octaves at most");
        assert_eq!(burst.price_ns(&b, 100_000), 100_000, "a lower price stays");
        burst.learn(&b, 0, true);
        assert_eq!(burst.price_ns(&b, b.price_ns()), 1_250_000 / 8, "one cap of credit is no surplus");
        b.earn(1_000_000_000);
        for _ in 0..12 {
            burst.learn(&b, 0, true);
        }
        assert_eq!(burst.cut, 0, "two caps unspent raise it back a step a period");
        assert_eq!(burst.reserve, MAX_RESERVE_STEPS, "the reserve stays: a step a halt the cut learnt from");
        // With a halt cost the cut neither learns nor applies.
        b.set_halt_cost_ns(20_000);
        b.spend(u64::MAX, false);
        burst.learn(&b, 10_000, false);
        assert_eq!(burst.cut, 0);
        let mut cut = none;
        cut.cut_to(MAX_BURST_CUT, &b);
        assert_eq!(cut.price_ns(&b, 1_000_000), 1_000_000);
    }

    #[test]
    fn at_the_deepest_cut_the_short_window_is_the_kept_top() {
        // Caps from 1 ms to 50 ms, ceilings from 0 to 1 s: the uncut top is four ceilings, the
        // cap's eighth or 2^28, each in turn; the credit spent, so the short window binds.
        for (ppm, ceiling_ns) in [(1_000, 100_000), (50_000, 7), (50_000, 0), (20_000, 1_000_000_000), (333, 99_999)] {
            let mut b = budget(ppm, 1_000_000_000);
            b.set_ceiling_ns(ceiling_ns);
            b.spend(u64::MAX, false);
            let mut burst = BurstPrice::new(&b);
            burst.cut_to(MAX_BURST_CUT, &b);
            burst.reserve = MAX_RESERVE_STEPS;
            let short = b.top_price_ns() >> SHORT_WINDOW_SHIFT;
            assert_eq!(burst.top_ns(), short, "{ppm} {ceiling_ns}");
            assert_eq!(burst.window_limit_ns(&b, u64::MAX), short, "{ppm} {ceiling_ns}");
        }
    }

    #[test]
    fn a_zero_ceiling_or_budget_has_no_reserve() {
        let p = PredictiveParams { poll_ceiling_ns: 0, ..PredictiveParams::DEFAULT };
        let b = Budget::new(&p.validate().unwrap());
        assert_eq!(b.price_ns(), 0);
    }

    #[test]
    fn the_net_reserve_is_the_credit_a_burst_drained() {
        let mut b = budget(20_000, 1_000_000_000); // 2%: a cap of 20 ms, steps of 1.25 ms
        b.set_halt_cost_ns(50_000);
        let cheap = b.top_price_ns() / NET_STARVED_DIV;
        let mut burst = BurstPrice::new(&b);
        burst.learn(&b, cheap, true);
        assert_eq!(burst.high, 16, "the high mark follows the credit");
        assert_eq!(burst.window_limit_ns(&b, u64::MAX), u64::MAX, "no reserve yet");
        b.spend(2_000_000, false);
        burst.learn(&b, cheap, false);
        assert_eq!(burst.reserve, 0, "a halt while the credit is plentiful says nothing");
        b.spend(15_000_000, false); // 3 ms left: a burst drained 14 steps
        burst.learn(&b, 2 * cheap, false);
        assert_eq!(burst.reserve, 0, "nor a period the top price would not buy cheaply");
        burst.learn(&b, cheap, false);
        assert_eq!((burst.reserve, burst.high), (MAX_RESERVE_STEPS, 2), "the drain, at most 12 steps");
        let short = b.top_price_ns() >> SHORT_WINDOW_SHIFT;
        assert_eq!(burst.window_limit_ns(&b, u64::MAX), short, "only short windows below the reserve");
        assert_eq!(burst.window_limit_ns(&b, 1_000), 1_000);
        b.earn(u64::MAX); // quiet: the credit piles up, the reserve stays
        burst.learn(&b, cheap, true);
        assert_eq!(burst.window_limit_ns(&b, u64::MAX), b.credit_ns() - 15_000_000);
        b.spend(b.credit_ns() - 3_000_000, false);
        burst.learn(&b, cheap, false);
        assert_eq!(burst.reserve, MAX_RESERVE_STEPS, "a smaller drain leaves it");
    }

    #[test]
    fn a_steady_drain_leaves_a_small_net_reserve() {
        let mut b = budget(20_000, 1_000_000_000);
        b.set_halt_cost_ns(50_000);
        let cheap = b.top_price_ns() / NET_STARVED_DIV;
        let mut burst = BurstPrice::new(&b);
        b.spend(17_000_000, false); // the credit never piles up: 3 ms
        for _ in 0..100 {
            burst.learn(&b, cheap, false);
            b.spend(1_250_000, false);
            b.earn(62_500_000); // 1.25 ms earned
        }
        assert!(burst.reserve <= 1, "{}", burst.reserve);
    }
}
