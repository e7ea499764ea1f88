//! What the next idle period will probably be: decayed histograms of idle lengths in
//! octave-wide buckets, one per bucket of the period before, and the poll window they make
//! worth most.
//!
//! Real servers' idle periods are not one distribution but several, and which one comes next
//! depends on what came before (a request's short wait for its next packet, then a long wait for
//! the next request). So the counts are kept per bucket of the previous period, with one
//! unconditioned histogram for rows that have not seen enough yet.

/// Number of buckets: `[0, 8 us)`, `[8, 16 us)`, ..., `[4.2, 8.4 ms)`, `[8.4 ms, ...)`.
pub const BUCKETS: usize = 12;

/// Bucket 0 ends at `2^FIRST_SHIFT` ns (8.2 us); each next one is twice as wide.
const FIRST_SHIFT: u32 = 13;

/// One observation adds this much to its count; a count that would pass `u8::MAX` halves its
/// whole row first. So a histogram weighs recent periods most, forgets in steps of a half, and
/// fits in a byte per bucket.
const WEIGHT: u8 = 16;

/// A row is used once it holds about this many observations' worth; until then the
/// unconditioned histogram speaks for it.
const MIN_ROW_TOTAL: u32 = 3 * WEIGHT as u32;

/// Every bucket of a prediction counts this much more than the histograms say: 1/64 of a recent
/// period, nothing against any bucket seen, but a reason to poll on into buckets not seen lately
/// when a catch is worth a long poll (the credit is plentiful), as a long fixed window does.
const PRIOR: u16 = 1;

/// [`Histograms::prediction_apart`]: the unconditioned counts speak for a phase of short periods
/// where at least 1 in this many of their periods is short (up to the halt cost's bucket). A
/// third to a fifth move the same points (docs/predictive-experiments.md).
const APART_ALL_SHORT: u32 = 4;

/// [`Histograms::prediction_apart`]: the row is apart where its share of short periods is below
/// the unconditioned counts' over this (a quarter to a sixteenth move the same points).
const APART_RATIO: u32 = 8;

/// No counts: the unconditioned ones where the row alone speaks
/// ([`Histograms::prediction_apart`]).
const NO_COUNTS: Row = [0; BUCKETS];

/// The bucket of an idle period of `ns`.
pub const fn bucket(ns: u64) -> usize {
    // The bit length of `ns >> FIRST_SHIFT`, 0 for 0: one bit more of `ns` kept and the lowest
    // set, its log is the same for every period from bucket 1 on and 0 below, with no branch for
    // a zero (a log of a number that cannot be 0; 4 instructions fewer a period).
    let b = ((ns >> (FIRST_SHIFT - 1)) | 1).ilog2() as usize;
    if b < BUCKETS { b } else { BUCKETS - 1 }
}

/// The end of bucket `j` (exclusive), ns, for `j < BUCKETS - 1` (the last is open).
pub const fn edge_ns(j: usize) -> u64 {
    1 << (FIRST_SHIFT + j as u32)
}

/// The start of bucket `j`, ns.
const fn start_ns(j: usize) -> u64 {
    if j == 0 { 0 } else { edge_ns(j - 1) }
}

/// Counts of one histogram.
type Row = [u8; BUCKETS];

/// Counts of a prediction: a blend of histograms, at most `4 x u8::MAX` each.
pub type Counts = [u16; BUCKETS];

/// The conditional histograms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Histograms {
    /// `rows[i][k]`: periods in bucket `k` that followed one in bucket `i`.
    rows: [Row; BUCKETS],
    /// Periods in bucket `k`, whatever came before.
    all: Row,
    /// The sum of `all`'s counts, kept as they change: summing them again for every
    /// prediction, just after one of them changed, cost 2-3 ns of a period's 33
    /// (docs/predictive-speed.md).
    all_total: u16,
    /// The bucket of the last period.
    prev: u8,
}

impl Histograms {
    /// Empty.
    pub const fn new() -> Histograms {
        Histograms { rows: [[0; BUCKETS]; BUCKETS], all: [0; BUCKETS], all_total: 0, prev: 0 }
    }

    /// Records a period of `ns`.
    pub fn add(&mut self, ns: u64) {
        const HALVES: u8 = u8::MAX - WEIGHT;
        let k = bucket(ns);
        let prev = self.prev as usize;
        if self.rows[prev][k] > HALVES || self.all[k] > HALVES {
            self.add_halving(k);
        } else {
            self.rows[prev][k] += WEIGHT;
            self.all[k] += WEIGHT;
            self.all_total += u16::from(WEIGHT);
        }
        self.prev = k as u8;
    }

    /// [`Histograms::add`]'s counts for a period in bucket `k` where a count halves (once in 16
    /// adds to a bucket at most): out of line whole, so that the common add tests both counts
    /// before it writes either, and the caller keeps only the bucket live through the call
    /// (a halving inside each add kept the row's address too).
    #[cold]
    #[inline(never)]
    fn add_halving(&mut self, k: usize) {
        // A row's sum is not kept (whatever goes in, what comes out is dropped): summed where a
        // prediction reads it, it costs no more.
        let _ = add_to(&mut self.rows[self.prev as usize], 0, k);
        self.all_total = add_to(&mut self.all, self.all_total, k);
    }

    /// Whether adding a period in bucket `k` changes the next prediction's counts only by
    /// adding the same (`4 x WEIGHT`) to bucket `k`'s and to the total: `k` is the last period's
    /// bucket too, so the row that predicts next is the row it goes into; neither that row nor
    /// all of them halves; and the row is not thin before (it holds at least
    /// `MIN_ROW_TOTAL` in bucket `k` alone) nor after, so the blend stays the same.
    pub fn grows_only(&self, k: usize) -> bool {
        const HALVES: u8 = u8::MAX - WEIGHT;
        // The row read as `rows[k]` where `k` is the last period's bucket: `k` is a bucket, which
        // the compiler knows is below `BUCKETS`, and the byte `prev` is not (a bounds check).
        let n = self.rows[k][k];
        k == self.prev as usize && u32::from(n) >= MIN_ROW_TOTAL && n <= HALVES && self.all[k] <= HALVES
    }

    /// Whether adding a period in bucket `k` changes the next prediction's counts in bucket 0
    /// alone (and the total): `k` and the last period's bucket are 0, so the row that predicts
    /// next is the row it goes into; a row that halves (its bucket 0 full) has no count above
    /// bucket 0 that a halving changes (none above 1); and the row is not thin before (it
    /// holds at least `MIN_ROW_TOTAL` in bucket 0 alone) nor after (it grows, or halves from
    /// a full bucket 0), so the blend stays the same. At think 0, where every period in 7-8
    /// halves bucket 0's row or all periods' counts, this is most of the periods that
    /// [`Histograms::grows_only`] leaves out.
    pub fn moves_only_0(&self, k: usize) -> bool {
        const HALVES: u8 = u8::MAX - WEIGHT;
        let row = &self.rows[0];
        let steady = |r: &Row| r[0] <= HALVES || at_most_1_above_0(r);
        k == 0 && self.prev == 0 && u32::from(row[0]) >= MIN_ROW_TOTAL && steady(row) && steady(&self.all)
    }

    /// [`Histograms::add`] of a period in bucket 0, where [`Histograms::moves_only_0`] holds:
    /// a halving changes bucket 0's count alone (every other count it would halve is 0 or 1,
    /// which it leaves), so this halves and adds to the two counts of bucket 0 and the kept
    /// sum, and calls nothing.
    pub fn grow_0(&mut self) {
        debug_assert!(self.moves_only_0(0));
        let grown = |n: u8| if n > u8::MAX - WEIGHT { n.div_ceil(2) } else { n } + WEIGHT;
        let all = grown(self.all[0]);
        self.all_total = self.all_total - u16::from(self.all[0]) + u16::from(all);
        self.all[0] = all;
        self.rows[0][0] = grown(self.rows[0][0]);
    }

    /// [`Histograms::add`] of a period in bucket `k`, where [`Histograms::grows_only`] holds:
    /// no count halves and `k` is the last period's bucket, so this adds to two counts and the
    /// kept sum, and calls nothing.
    pub fn grow(&mut self, k: usize) {
        debug_assert!(self.grows_only(k));
        self.rows[k][k] += WEIGHT;
        self.all[k] += WEIGHT;
        self.all_total += u16::from(WEIGHT);
    }

    /// The counts that predict the next period: those that followed the last period's bucket,
    /// weighted 3 to 1 against all of them (which keeps a bucket the row has not seen yet
    /// possible), or all of them alone while that row is thin; plus a small prior (1/64 of a
    /// period) in every bucket.
    #[inline]
    pub fn prediction(&self) -> Prediction<'_> {
        let row = &self.rows[self.prev as usize];
        let (row_total, all_total) = (u32::from(row_total(row)), u32::from(self.all_total));
        let thin = row_total < MIN_ROW_TOTAL;
        let total = if thin { 4 * all_total } else { 3 * row_total + all_total } + BUCKETS as u32 * u32::from(PRIOR);
        Prediction { row, all: &self.all, thin, total }
    }

    /// [`Histograms::prediction`], or the row alone (and the prior) where the unconditioned
    /// counts speak for another phase than the row's: after a period past bucket `k` (the halt
    /// cost's), where the unconditioned counts hold at least a quarter of periods up to bucket
    /// `k` (`APART_ALL_SHORT`) and the row's share of them is below an eighth of theirs
    /// (`APART_RATIO`). `pipe-bursts` sleeps between bursts: after a period of 2-4 ms the row
    /// says 2% below 65 us, the 3:1 blend with the unconditioned counts (its bursts') about a
    /// fifth, and 65 us windows timed out in every sleep (docs/predictive-experiments.md,
    /// "`pipe-bursts` net of a halt at low budgets"). Where the unconditioned counts say few short
    /// periods either (pgbench -S at 300 tx/s), they stay in the blend.
    #[inline]
    pub fn prediction_apart(&self, k: usize) -> Prediction<'_> {
        let p = self.prediction();
        if p.thin || usize::from(self.prev) <= k || !self.apart(k) {
            return p;
        }
        // 3 to 0: the blend's own scale, without the unconditioned counts (not thin: their
        // total is in the blend's once).
        Prediction { all: &NO_COUNTS, total: p.total - u32::from(self.all_total), ..p }
    }

    /// Whether the last period's row and the unconditioned counts disagree on periods up to
    /// bucket `k` ([`Histograms::prediction_apart`]).
    fn apart(&self, k: usize) -> bool {
        let row = &self.rows[self.prev as usize];
        let (row_short, all_short) = (short_sum(row, k), short_sum(&self.all, k));
        let (row_total, all_total) = (u32::from(row_total(row)), u32::from(self.all_total));
        APART_ALL_SHORT * all_short >= all_total && APART_RATIO * row_short * all_total < all_short * row_total
    }
}

/// The counts that predict the next period ([`Histograms::prediction`]), read in place: each
/// is a blend of two histograms' counts, made as the window search reaches its bucket.
#[derive(Clone, Copy, Debug)]
pub struct Prediction<'a> {
    row: &'a Row,
    all: &'a Row,
    /// Whether the row is thin, and all of them speak for it.
    thin: bool,
    total: u32,
}

impl Prediction<'_> {
    /// The count of bucket `k` (at most `4 x u8::MAX + PRIOR`).
    pub fn count(&self, k: usize) -> u16 {
        blend(self.thin, self.row[k], self.all[k])
    }

    /// The sum of the counts.
    pub const fn total(&self) -> u32 {
        self.total
    }

    /// All the counts.
    pub fn counts(&self) -> Counts {
        core::array::from_fn(|k| self.count(k))
    }

    /// [`best_window`] under these counts.
    #[inline]
    pub fn best_window(&self, price_ns: u64, limit_ns: u64) -> Choice {
        // One search for each blend, so that each count is a shift or two and no product.
        let (row, all) = (self.row, self.all);
        if self.thin {
            search(self.total, |k| blend(true, row[k], all[k]), price_ns, limit_ns)
        } else {
            search(self.total, |k| blend(false, row[k], all[k]), price_ns, limit_ns)
        }
    }
}

impl Prediction<'_> {
    /// Whether [`best_window`] under these counts at `price_ns` within `limit_ns` is sure to be
    /// the whole limit, read from the total and bucket 0's count alone (no search): every
    /// bucket up to the limit adds to the score. Sufficient, not necessary (false where unsure).
    ///
    /// Extending the window over a whole bucket `j` of width `w` adds (on the search's scale)
    /// `n x (2 x price - w) - 2 x above x w`, with `n` its count and `above` the counts above
    /// it. Every count is at least the prior's (1), every `above` at most `A`, the counts above
    /// bucket 0 (the limit is past it), and every whole bucket at most as wide as the bucket
    /// `c` the limit ends in; so `2 x price > width(c) x (2A + 1)` makes every step gain
    /// (and no bucket up to `c` is twice as wide as a catch is worth, so the search stops at
    /// none). Where the limit cuts inside `c`, the cut window adds
    /// `price x part + part x (w + 1) / 2 - 256 x above x w` to the last whole one, with `w`
    /// the part of `c` it covers, `part = 256 x n x w / width(c)` (rounded down) and `above`
    /// the counts from `c` on, at most `A`: `price x part(n = 1) > 256 x A x w` makes it gain.
    pub fn longest_wins(&self, price_ns: u64, limit_ns: u64) -> bool {
        // The bucket the window ends in: the limit in (its start, its end].
        let c = bucket(limit_ns.saturating_sub(1));
        if c == 0 || c >= BUCKETS - 1 {
            return false; // not past bucket 0, or past the last bucket a search scores
        }
        let shift = width_shift(c);
        let above = u64::from(self.total - u32::from(self.count(0)));
        // Below 2^22 x 2^15 and 2^36 x 2^8 (counts below 2^14, the price below 2^36).
        let whole = 2 * price_ns > (1 << shift) * (2 * above + 1);
        let w = limit_ns - start_ns(c);
        whole && (limit_ns == edge_ns(c) || price_ns * ((w << 8) >> shift) > (above << 8) * w)
    }
}

impl Prediction<'_> {
    /// Whether a poll of `window_ns` that covers bucket 0 whole (at least its end) and is at
    /// most `price_ns` scores above a halt at `price_ns`, read from the total and bucket 0's
    /// count alone. On the search's scale bucket 0's `n` periods add `n x (2 x price - 8192)`;
    /// every other bucket the window covers adds a catch worth the price for a poll of at most
    /// the window, no less than 0; and the rest, at most `total - n`, poll the whole window,
    /// `2 x window` each. So `n x (2 x price - 8192) > 2 x (total - n) x window` is enough.
    /// (The limit cutting inside a bucket the window covers changes neither bound.)
    pub fn beats_halt(&self, price_ns: u64, window_ns: u64) -> bool {
        let n = u64::from(self.count(0));
        let rest = u64::from(self.total) - n;
        // Below 2^11 x 2^37 and 2^15 x 2^31: the price below 2^36, a window below 2^30.
        window_ns <= price_ns && n * (2 * price_ns - edge_ns(0)) > 2 * rest * window_ns
    }
}

/// Whether no count of `row` above bucket 0 is above 1, so that a halving (which rounds up)
/// leaves them as they are: the row read as words, as [`row_total`] reads it.
fn at_most_1_above_0(row: &Row) -> bool {
    // A row is 8 + 4 bytes (below): neither conversion can fail.
    let (head, tail) = row.split_at(8);
    let head = u64::from_le_bytes(head.try_into().unwrap_or([0; 8]));
    let tail = u32::from_le_bytes(tail.try_into().unwrap_or([0; 4]));
    // Every bit but the lowest of each byte, bucket 0's byte left out.
    head & 0xfefe_fefe_fefe_fe00 == 0 && tail & 0xfefe_fefe == 0
}

/// A prediction's count of a bucket whose row and unconditioned counts are `row` and `all`.
#[inline(always)]
fn blend(thin: bool, row: u8, all: u8) -> u16 {
    let (row, all) = (u16::from(row), u16::from(all));
    (if thin { 4 * all } else { 3 * row + all }) + PRIOR
}

/// The sum of `row`'s counts of buckets `0..=k`.
fn short_sum(row: &Row, k: usize) -> u32 {
    row.iter().take(k + 1).map(|&n| u32::from(n)).sum()
}

/// Adds a period to bucket `k` of `row`, whose counts sum to `total`; returns their new sum.
#[inline]
fn add_to(row: &mut Row, total: u16, k: usize) -> u16 {
    let total = if row[k] > u8::MAX - WEIGHT { halve(row) } else { total };
    row[k] += WEIGHT;
    total + u16::from(WEIGHT)
}

/// Halves a row's counts, once in 16 observations of a bucket at most: kept out of line.
/// Returns their new sum.
#[cold]
fn halve(row: &mut Row) -> u16 {
    // Rounded up: a bucket once seen keeps a count of 1 however long ago, so a rare long
    // period stays possible and a poll with credit to spare still reaches it (halving to 0
    // capped every window at the last bucket still counted, below Linux's 99.9%).
    for n in row.iter_mut() {
        *n = n.div_ceil(2);
    }
    row_total(row)
}

/// The sum of a row's counts, read as one 64-bit and one 32-bit word (not byte by byte: built
/// from its bytes, the word's masks were folded into them, and the compiler loaded all twelve
/// one at a time, a dozen loads and shifts whose registers spilled the plan's). Where the build
/// has SSE2 (x86-64 user space: the benchmark, the replay) the words' bytes are summed by one
/// PSADBW, 8 instructions where the 16-bit lanes of [`lane_sums`] took about 18
/// (docs/predictive-speed.md, "The cost of a decision"); elsewhere (the guest image, a kernel: no
/// SSE there), those lanes.
fn row_total(row: &Row) -> u16 {
    let (head, tail) = row_words(row);
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    // SAFETY: the build has SSE2 (the cfg above), so every CPU it runs on does.
    return unsafe { byte_sums(head, tail) };
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
    return lane_sums(head, tail);
}

/// A row as one 64-bit and one 32-bit word.
fn row_words(row: &Row) -> (u64, u64) {
    // A row is 8 + 4 bytes (below): neither conversion can fail.
    let (head, tail) = row.split_at(8);
    let head = u64::from_le_bytes(head.try_into().unwrap_or([0; 8]));
    (head, u64::from(u32::from_le_bytes(tail.try_into().unwrap_or([0; 4]))))
}

/// The sum of the bytes of `head` and `tail`, by PSADBW against zero: each 64-bit lane the sum
/// of its 8 bytes (at most `8 x u8::MAX`), the two lanes added.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[target_feature(enable = "sse2")]
fn byte_sums(head: u64, tail: u64) -> u16 {
    use core::arch::x86_64::{_mm_cvtsi128_si64, _mm_sad_epu8, _mm_set_epi64x, _mm_setzero_si128, _mm_unpackhi_epi64};
    let sums = _mm_sad_epu8(_mm_set_epi64x(tail as i64, head as i64), _mm_setzero_si128());
    let (low, high) = (_mm_cvtsi128_si64(sums), _mm_cvtsi128_si64(_mm_unpackhi_epi64(sums, sums)));
    (low + high) as u16
}

/// The sum of the bytes of `head` and `tail` (at most 8 bytes each), by word operations: the
/// bytes added in pairs into 16-bit lanes (at most `4 x u8::MAX` each), the lanes summed at the
/// end. Where there is no PSADBW ([`row_total`]), and in the tests, its check.
#[cfg(any(not(all(target_arch = "x86_64", target_feature = "sse2")), test))]
fn lane_sums(head: u64, tail: u64) -> u16 {
    const LANES: u64 = 0x00ff_00ff_00ff_00ff;
    let pairs = (head & LANES) + ((head >> 8) & LANES) + (tail & LANES) + ((tail >> 8) & LANES);
    // Lane i and lane i + 2 into the low 32 bits (at most `6 x u8::MAX` each), then the two.
    let quads = pairs + (pairs >> 32);
    ((quads & 0xffff) + ((quads >> 16) & 0xffff)) as u16
}

// row_total reads a row as one 64-bit and one 32-bit word.
const _: () = assert!(BUCKETS == 12);

/// The sum of a histogram's counts.
pub fn total<T: Copy + Into<u32>>(counts: &[T; BUCKETS]) -> u32 {
    counts.iter().map(|&n| n.into()).sum()
}

/// A poll window and what the histogram expects of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Choice {
    /// The window, ns (0: do not poll).
    pub window_ns: u64,
    /// Its worth: `price_ns x expected catches - expected ns polled`, in count x ns (counts as
    /// in the row, times 256). 0 for not polling; the best window has the largest.
    pub score: i64,
}

/// The window up to `limit_ns` with the largest expected `price_ns x catches - ns polled` under
/// `row`: a poll is worth `price_ns` ns of CPU per wakeup it catches. Windows end at bucket
/// edges or at `limit_ns`. Within a bucket, periods are taken as spread evenly.
///
/// Counts below 2^10, `price_ns <= 2^36` and windows below 2^24 keep every product below 2^63.
pub fn best_window(row: &Counts, price_ns: u64, limit_ns: u64) -> Choice {
    search(total(row), |k| row[k], price_ns, limit_ns)
}

/// [`best_window`] over the counts `count(0..BUCKETS)`, which sum to `total`.
///
/// Above a price of 8 us every bucket up to the one the price stops at is narrower than the
/// price (from bucket 1 on a bucket is as wide as it starts, half its end), and bucket 0 is
/// too: such a bucket is scored whole where it ends below the limit and below twice the price
/// (`reach`, their lesser), one comparison, and the first that does not (it ends at or past
/// `reach`) is scored on its own ([`Sweep::last`]). Each is written out with its constants
/// (`step!`), so that each exit is its own code.
fn search(total: u32, count: impl Fn(usize) -> u16 + Copy, price_ns: u64, limit_ns: u64) -> Choice {
    // By value: the counts' references go to the rare bucket-by-bucket search in registers,
    // where a reference to `count` stored them on the stack every search.
    let n = move |v: usize| i64::from(count(v));
    if price_ns <= edge_ns(0) {
        return search_each(total, n, price_ns, limit_ns);
    }
    let mut sweep = Sweep::new(total, price_ns);
    let reach = limit_ns.min(2 * price_ns);
    // Written out, not a loop: a loop's exits LLVM merges into one last step whose bucket is a
    // variable (its edges and shifts worked out at run time), 19-30 instructions a period more.
    macro_rules! step {
        ($($v:literal)*) => {$(
            if edge_ns($v) >= reach {
                return sweep.last($v, n($v), price_ns, limit_ns, reach);
            }
            sweep.whole($v, n($v));
        )*};
    }
    // Where the reach is past bucket 3's end (2 x price above 64 us and the limit too) the
    // first four buckets are scored whole without a test each, one test for the four.
    if edge_ns(3) < reach {
        sweep.whole(0, n(0));
        sweep.whole(1, n(1));
        sweep.whole(2, n(2));
        sweep.whole(3, n(3));
        step!(4 5 6 7 8 9 10);
        return sweep.choice();
    }
    step!(0 1 2);
    // Bucket 3 ends at or past the reach: the last step.
    sweep.last(3, n(3), price_ns, limit_ns, reach)
}

const _: () = assert!(BUCKETS == 12); // step! writes out buckets 0 to 10

/// [`search`] a bucket at a time, each tested against both stops: for prices of at most 8 us
/// (rare: the credit nearly empty and no halt cost).
#[inline(never)]
fn search_each(total: u32, n: impl Fn(usize) -> i64, price_ns: u64, limit_ns: u64) -> Choice {
    let mut sweep = Sweep::new(total, price_ns);
    for v in 0..BUCKETS - 1 {
        if search_ends(v, price_ns, limit_ns) {
            break;
        }
        if edge_ns(v) > limit_ns {
            return sweep.cut(v, n(v), limit_ns);
        }
        sweep.whole(v, n(v));
    }
    sweep.choice()
}

/// Whether no window from bucket `v` on can score higher: it starts at or past `limit_ns`, or
/// it is at least twice as wide as a catch is worth (`price_ns`), so it and every wider one after
/// it poll more than their catches are worth.
const fn search_ends(v: usize, price_ns: u64, limit_ns: u64) -> bool {
    start_ns(v) >= limit_ns || 1 << width_shift(v) >= 2 * price_ns
}

/// A search's running sums, in whole counts: the counts above the window and the window's
/// score; and the best window so far. A window's score, `2 x price x caught - polled2` (twice
/// the ns it expects to poll: the caught ones at their mean length, the rest the whole
/// window), starts at 0 (a halt's) and, extending the window over a whole bucket, gains `2 x
/// price x n` and loses `width x (n + 2 x above)`, a shift (widths are powers of two): one
/// product a bucket and no division on the idle path, and neither the total nor the ns polled
/// kept through the search (a register fewer each; the search once kept `2 x price x above +
/// polled2` and a halt's, `2 x price x total`, to subtract at the end). Scores are 1/128 of
/// `Choice::score`'s (counts x 256, in ns), exactly.
struct Sweep {
    above: i64,
    price2: i64,
    score: i64,
    best: i64,
    window_ns: u64,
}

impl Sweep {
    const fn new(total: u32, price_ns: u64) -> Sweep {
        Sweep { above: total as i64, price2: 2 * price_ns as i64, score: 0, best: 0, window_ns: 0 }
    }

    /// Extends the window over the whole bucket `v`, which holds `n`, and keeps it if it
    /// scores best.
    #[inline(always)]
    fn whole(&mut self, v: usize, n: i64) {
        // `n + 2 x above` after the bucket is the counts above it before and after.
        let above = self.above - n;
        // As one subtraction: LLVM compiled `+= price2 x n - ...` 2 instructions a period longer.
        self.score -= ((self.above + above) << width_shift(v)) - self.price2 * n;
        self.above = above;
        if self.score > self.best {
            (self.best, self.window_ns) = (self.score, edge_ns(v));
        }
    }

    /// Scored bucket `v` (which holds `n`, and ends at or past `reach`, the lesser of the limit
    /// and twice the price) where the one-comparison loop stops ([`search`]), the last that can
    /// raise the score: cut by the limit; whole and ending at the limit, below twice the price
    /// (the next starts at the limit); or whole and at least as wide as the price (the next is
    /// at least twice as wide), where it adds `n x (2 x price - width) - 2 x above x width <=
    /// price x (n - 2 x above)`: nothing unless it holds more than twice the counts above it.
    #[inline(always)]
    fn last(mut self, v: usize, n: i64, price_ns: u64, limit_ns: u64, reach: u64) -> Choice {
        // [`search_ends`] in one comparison: from bucket 1 on a bucket is as wide as it starts,
        // and bucket 0 (8 us wide) is narrower than twice a price this search sees (above 8 us).
        debug_assert_eq!(start_ns(v) >= reach, search_ends(v, price_ns, limit_ns));
        if start_ns(v) >= reach {
            return self.choice();
        }
        if edge_ns(v) > limit_ns {
            return self.cut(v, n, limit_ns);
        }
        if (edge_ns(v) as i64) < self.price2 || n > 2 * (self.above - n) {
            self.whole(v, n);
        }
        self.choice()
    }

    /// The window cut inside bucket `v` (which holds `n`) at `limit_ns` if it scores best
    /// at `price_ns`, else the best so far: the part below it is caught at its mean length, the
    /// rest (and all above) polls it. Counts x 256 here, so that part of a bucket counts; the
    /// score on `Choice::score`'s scale, the whole buckets' `score x 128`. Inline: called by
    /// reference, the running sums went to the stack before every last step, cut or not (7
    /// stores a search).
    #[inline(always)]
    fn cut(&self, v: usize, n: i64, limit_ns: u64) -> Choice {
        // The price from twice it, so that the search keeps one register of the two.
        let price_ns = self.price2 >> 1;
        let (n, above) = (n << 8, self.above << 8);
        let w = (limit_ns - start_ns(v)) as i64;
        let part = (n * w) >> width_shift(v);
        let score = price_ns * part + (self.score << 7) + part * ((w + 1) / 2) - above * w;
        let best = self.choice();
        if score > best.score { Choice { window_ns: limit_ns, score } } else { best }
    }

    const fn choice(&self) -> Choice {
        Choice { window_ns: self.window_ns, score: self.best << 7 }
    }
}

/// Bucket `j`'s width, `edge_ns(j) - start_ns(j)`, as a power of two.
const fn width_shift(j: usize) -> u32 {
    if j == 0 { FIRST_SHIFT } else { FIRST_SHIFT + j as u32 - 1 }
}

impl Default for Histograms {
    fn default() -> Self {
        Histograms::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_octaves() {
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(8_191), 0);
        assert_eq!(bucket(8_192), 1);
        assert_eq!(bucket(16_383), 1);
        assert_eq!(bucket(16_384), 2);
        assert_eq!(bucket(edge_ns(BUCKETS - 2) - 1), BUCKETS - 2);
        assert_eq!(bucket(edge_ns(BUCKETS - 2)), BUCKETS - 1);
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
        for j in 0..BUCKETS - 1 {
            assert_eq!(bucket(edge_ns(j) - 1), j);
        }
    }

    #[test]
    fn rows_decay_and_condition_on_the_previous_bucket() {
        let mut h = Histograms::new();
        // Alternate 20 us and 2 ms: after a short one comes a long one and back.
        for _ in 0..100 {
            h.add(20_000);
            h.add(2_000_000);
        }
        let after_long = h.rows[bucket(2_000_000)]; // the last was 2 ms: the next is short
        assert_eq!(after_long.iter().position(|&n| n > 0), Some(bucket(20_000)));
        assert_eq!(total(&after_long), u32::from(after_long[bucket(20_000)]));
        let p = h.prediction().counts();
        assert!(p[bucket(20_000)] > 3 * p[bucket(2_000_000)], "the row weighs most: {p:?}");
        h.add(20_000);
        let after_short = h.prediction().counts();
        assert!(after_short[bucket(2_000_000)] > 3 * after_short[bucket(20_000)]);
    }

    #[test]
    fn at_think_0_the_ceiling_window_wins_outright() {
        // Sub-us periods, a few long ones' rounded-up counts; the top price of the parameters'
        // ceiling (four of 4 ms) and a 120 us halt. (The guest's driver sets a lower ceiling,
        // and the top price follows it: there the proof holds less often and more periods
        // search; the search's answer is the same either way, which the proptest below holds.)
        let mut h = Histograms::new();
        for i in 0..4_000u64 {
            h.add(if i % 500 == 499 { 200_000 << (i / 500 % 5) } else { 400 });
        }
        let p = h.prediction();
        let price = 16_000_000 + 120_000;
        for limit in [240_000, 262_144, 200_000, 65_536, 16_384] {
            assert!(p.longest_wins(price, limit), "{limit}");
            assert_eq!(p.best_window(price, limit).window_ns, limit);
        }
        // A limit 1 ns into a bucket (the cut part's count rounds to 0), not past bucket 0, or
        // past the last bucket a search scores: unsure.
        assert!(!p.longest_wins(price, 131_073));
        assert!(!p.longest_wins(price, 8_192));
        assert!(!p.longest_wins(price, edge_ns(BUCKETS - 2) + 1));
        // A price too low for the periods above bucket 0.
        assert!(!p.longest_wins(100_000, 240_000));
    }

    proptest::proptest! {
        #[test]
        fn where_the_longest_window_wins_outright_the_search_finds_it(
            row in proptest::array::uniform12(0u8..=u8::MAX),
            all in proptest::array::uniform12(proptest::prop_oneof![0u8..4, 0u8..=u8::MAX]),
            tail in 0u8..4,
            price_ns in proptest::prop_oneof![0u64..1 << 20, 0u64..1 << 30],
            limit_ns in proptest::prop_oneof![0u64..1 << 19, 0u64..1 << 24],
        ) {
            // Rows like think 0's (bucket 0 full, a little above it) as well as any row.
            let mut row = row;
            if tail > 0 {
                row[1..].iter_mut().for_each(|n| *n %= tail + 1);
            }
            let all_total = total(&all) as u16;
            let h = Histograms { rows: [row; BUCKETS], all, all_total, prev: 0 };
            let p = h.prediction();
            if p.longest_wins(price_ns, limit_ns) {
                proptest::prop_assert_eq!(p.best_window(price_ns, limit_ns).window_ns, limit_ns);
            }
        }

        #[test]
        fn a_bucket_is_the_bit_length_of_its_period_in_bucket_0_widths(ns in proptest::num::u64::ANY) {
            let bits = (u64::BITS - (ns >> FIRST_SHIFT).leading_zeros()) as usize;
            proptest::prop_assert_eq!(bucket(ns), bits.min(BUCKETS - 1));
        }

        #[test]
        fn a_row_total_is_the_sum_of_its_bytes(row in proptest::array::uniform12(0u8..=u8::MAX)) {
            proptest::prop_assert_eq!(u32::from(row_total(&row)), total(&row));
            // The word operations too, where they are not the row total's (x86-64).
            let (head, tail) = row_words(&row);
            proptest::prop_assert_eq!(u32::from(lane_sums(head, tail)), total(&row));
        }
    }

    proptest::proptest! {
        #[test]
        fn the_kept_sum_is_the_sum_of_the_counts(periods in proptest::collection::vec(0u64..1 << 24, 1..600)) {
            // Enough periods in the top buckets (half of them in the last) that counts halve.
            let mut h = Histograms::new();
            for ns in periods {
                h.add(ns);
                proptest::prop_assert_eq!(u32::from(h.all_total), total(&h.all));
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn a_period_that_grows_only_its_bucket_adds_to_that_count_and_the_total(
            periods in proptest::collection::vec(proptest::prop_oneof![0u64..8_192, 0u64..1 << 24], 1..600),
        ) {
            let mut h = Histograms::new();
            for ns in periods {
                let k = bucket(ns);
                let (before, total) = (h.prediction().counts(), h.prediction().total());
                let grows = h.grows_only(k);
                h.add(ns);
                if grows {
                    let mut expected = before;
                    expected[k] += 4 * u16::from(WEIGHT);
                    proptest::prop_assert_eq!(h.prediction().counts(), expected);
                    proptest::prop_assert_eq!(h.prediction().total(), total + 4 * u32::from(WEIGHT));
                }
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn a_period_that_moves_only_bucket_0_leaves_the_counts_above_it_and_grows_bucket_0(
            periods in proptest::collection::vec(proptest::prop_oneof![0u64..8_192, 0u64..8_192, 0u64..1 << 24], 1..1_500),
        ) {
            // Mostly bucket 0 (its counts halve every 16), now and then any other.
            let mut h = Histograms::new();
            for ns in periods {
                let (before, total) = (h.prediction().counts(), h.prediction().total());
                let only_0 = h.moves_only_0(bucket(ns));
                let mut grown = h;
                h.add(ns);
                if only_0 {
                    grown.grow_0();
                    proptest::prop_assert_eq!(grown, h);
                    let after = h.prediction().counts();
                    proptest::prop_assert_eq!(&after[1..], &before[1..]);
                    proptest::prop_assert_eq!(h.prediction().total() + u32::from(before[0]), total + u32::from(after[0]));
                }
            }
        }

        #[test]
        fn a_window_that_beats_a_halt_stays_the_best_whatever_bucket_0_holds(
            row in proptest::array::uniform12(0u8..=u8::MAX),
            all in proptest::array::uniform12(proptest::prop_oneof![0u8..4, 0u8..=u8::MAX]),
            tail in 0u8..4,
            zeros in proptest::prop_oneof![(0u8..16, 0u8..16), (0u8..=u8::MAX, 0u8..=u8::MAX)],
            price_ns in proptest::prop_oneof![0u64..1 << 20, 0u64..1 << 30],
            limit_ns in proptest::prop_oneof![0u64..1 << 19, 0u64..1 << 24],
        ) {
            // Rows like think 0's (bucket 0 full, a little above it) as well as any row; the
            // same counts with other ones in bucket 0, often few (where a halt may win).
            let mut row = row;
            if tail > 0 {
                row[1..].iter_mut().for_each(|n| *n %= tail + 1);
            }
            let histograms = |row: Row, all: Row| Histograms { rows: [row; BUCKETS], all, all_total: total(&all) as u16, prev: 0 };
            let h = histograms(row, all);
            let window_ns = h.prediction().best_window(price_ns, limit_ns).window_ns;
            let (mut row, mut all) = (row, all);
            (row[0], all[0]) = zeros;
            let moved = histograms(row, all);
            let p = moved.prediction();
            if window_ns >= edge_ns(0) && p.thin == h.prediction().thin && p.beats_halt(price_ns, window_ns) {
                proptest::prop_assert_eq!(p.best_window(price_ns, limit_ns).window_ns, window_ns);
            }
        }
    }

    #[test]
    fn a_row_apart_from_all_speaks_alone() {
        // Bursts of 100 periods of 50 us, sleeps of 20 of 3 ms: after a sleep's period the next is
        // another 3 ms one, while most periods (all of them) are 50 us.
        let (short, long) = (50_000, 3_000_000);
        let mut h = Histograms::new();
        for _ in 0..8 {
            (0..100).for_each(|_| h.add(short));
            (0..20).for_each(|_| h.add(long));
        }
        (0..100).for_each(|_| h.add(short));
        (0..3).for_each(|_| h.add(long));
        let k = bucket(short);
        // After a long period: the row alone, on the blend's scale.
        let apart = h.prediction_apart(k);
        let row = h.rows[bucket(long)];
        assert_eq!(apart.counts().to_vec(), row.iter().map(|&n| 3 * u16::from(n) + PRIOR).collect::<Vec<_>>());
        assert_eq!(apart.total(), apart.counts().iter().map(|&n| u32::from(n)).sum::<u32>());
        assert!(apart.count(k) < h.prediction().count(k));
        // After a short period, and where no count is short, the blend as before.
        h.add(short);
        assert_eq!(h.prediction_apart(k).counts(), h.prediction().counts());
        let mut quiet = Histograms::new();
        (0..40).for_each(|_| quiet.add(long));
        quiet.add(short);
        (0..40).for_each(|_| quiet.add(long));
        assert_eq!(quiet.prediction_apart(k).counts(), quiet.prediction().counts());
    }

    #[test]
    fn a_thin_row_defers_to_all() {
        let mut h = Histograms::new();
        h.add(20_000);
        h.add(20_000);
        h.add(2_000_000); // row of the 2 ms bucket is empty
        assert_eq!(
            h.prediction().counts().to_vec(),
            h.all.iter().map(|&n| 4 * u16::from(n) + PRIOR).collect::<Vec<_>>()
        );
    }

    #[test]
    fn the_best_window_catches_the_cheap_bucket_only() {
        let mut row = [0u16; BUCKETS];
        row[bucket(20_000)] = 160; // [16, 32) us
        row[bucket(3_000_000)] = 80; // [2, 4) ms
        // A catch is worth 100 us of polling: poll to the end of the short bucket.
        let c = best_window(&row, 100_000, 1_000_000);
        assert_eq!(c.window_ns, edge_ns(bucket(20_000)));
        assert!(c.score > 0);
        // Worth only 10 us: catching a 24 us period costs more than it is worth.
        assert_eq!(best_window(&row, 10_000, 1_000_000), Choice { window_ns: 0, score: 0 });
        // A limit inside the bucket polls to the limit.
        assert_eq!(best_window(&row, 100_000, 30_000).window_ns, 30_000);
        // ... unless it catches too little of it to pay.
        assert_eq!(best_window(&row, 100_000, 20_000).window_ns, 0);
        assert_eq!(best_window(&row, 100_000, 0).window_ns, 0);
        assert_eq!(best_window(&[0; BUCKETS], 100_000, 1_000_000).window_ns, 0);
    }

    /// The score of every window summed directly, bucket by bucket: what `best_window`
    /// computes by its running sums.
    fn best_window_directly(row: &Counts, price_ns: u64, limit_ns: u64) -> Choice {
        let price = price_ns as i64;
        let mut best = Choice { window_ns: 0, score: 0 };
        for j in 0..BUCKETS - 1 {
            let (lo, hi) = (start_ns(j), edge_ns(j));
            if lo >= limit_ns {
                break;
            }
            let w = hi.min(limit_ns);
            let mut score = 0i64;
            for (k, &n) in row.iter().enumerate() {
                let n = i64::from(n) << 8;
                let (lo_k, hi_k) = (start_ns(k), edge_ns(k));
                let part = match k.cmp(&j) {
                    core::cmp::Ordering::Less => n,
                    core::cmp::Ordering::Equal => n * (w - lo) as i64 / (hi - lo) as i64,
                    core::cmp::Ordering::Greater => 0,
                };
                let mean = if k < j { (lo_k + hi_k) / 2 } else { (lo + w) / 2 };
                score += price * part - part * mean as i64 - (n - part) * w as i64;
            }
            if score > best.score {
                best = Choice { window_ns: w, score };
            }
        }
        best
    }

    proptest::proptest! {
        #[test]
        fn the_running_sums_score_as_the_direct_sum(
            row in proptest::array::uniform12(0u16..1022),
            price_ns in 0u64..1 << 30,
            limit_ns in 0u64..1 << 25,
        ) {
            proptest::prop_assert_eq!(best_window(&row, price_ns, limit_ns), best_window_directly(&row, price_ns, limit_ns));
        }

        /// The same where the limit and twice the price fall on bucket edges or next to them,
        /// where the search's last step tells a whole bucket from a cut one and from the end.
        #[test]
        fn the_running_sums_score_as_the_direct_sum_at_bucket_edges(
            row in proptest::array::uniform12(0u16..1022),
            (j, dl) in (0..BUCKETS - 1, -1i64..=1),
            (i, half, dp) in (0..BUCKETS - 1, proptest::bool::ANY, -1i64..=1),
        ) {
            let limit_ns = edge_ns(j).saturating_add_signed(dl);
            let price_ns = (edge_ns(i) >> u32::from(half)).saturating_add_signed(dp);
            proptest::prop_assert_eq!(best_window(&row, price_ns, limit_ns), best_window_directly(&row, price_ns, limit_ns));
        }
    }

    #[test]
    fn extremes_do_not_overflow() {
        let row = [4 * u16::from(u8::MAX); BUCKETS];
        let c = best_window(&row, 1 << 36, 1 << 32);
        assert!(c.window_ns > 0);
        let c = best_window(&row, 0, 1 << 32);
        assert_eq!(c.window_ns, 0);
    }
}
