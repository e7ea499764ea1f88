//! The wire form of [`Params`]: a fixed layout of integers a VMM writes into guest memory.

use crate::params::{BlockTime, Params, ShrinkRule, WindowArithmetic};

/// [`Params`] in a fixed C layout of integers without padding, for a VMM to write into guest
/// memory and the guest to read (the `haltpoll-abi` crate embeds it in its run configuration).
///
/// [`Params`] itself cannot be that layout: its `bool` is one byte, so any `#[repr(C)]` order of
/// its fields leaves padding, which zerocopy (rightly) refuses to turn into bytes, and a `bool`
/// or an enum read from memory another program wrote is undefined behaviour unless checked. So
/// the wire form is this struct, next to [`Params`] so that adding a parameter touches this
/// file only; [`RawParams::new`] and [`RawParams::params`] destructure [`Params`] completely, so
/// a new field does not compile until it is carried here too. The enums travel as their
/// `repr(u32)` values. With feature `zerocopy` it derives zerocopy's byte traits.
///
/// ```
/// use haltpoll::{params::RawParams, Params};
/// let params = Params { guest_halt_poll_ns: 400_000, ..Params::DEFAULT };
/// assert_eq!(RawParams::new(&params).params(), Some(params));
/// let garbage = RawParams { allow_shrink: 2, ..RawParams::new(&params) };
/// assert_eq!(garbage.params(), None);
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(
    feature = "zerocopy",
    derive(zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable, zerocopy::KnownLayout)
)]
pub struct RawParams {
    /// [`Params::guest_halt_poll_ns`].
    pub guest_halt_poll_ns: u64,
    /// [`Params::grow_start`].
    pub grow_start: u64,
    /// [`Params::grow`].
    pub grow: u32,
    /// [`Params::shrink`].
    pub shrink: u32,
    /// [`Params::allow_shrink`]: 1 or 0.
    pub allow_shrink: u32,
    /// [`Params::shrink_rule`], as its `repr(u32)` value.
    pub shrink_rule: u32,
    /// [`Params::block_time`], as its `repr(u32)` value.
    pub block_time: u32,
    /// [`Params::arithmetic`], as its `repr(u32)` value (the size stays a multiple of 8
    /// without hidden padding).
    pub arithmetic: u32,
}

impl RawParams {
    /// `params` in the fixed layout.
    pub const fn new(params: &Params) -> RawParams {
        let Params { guest_halt_poll_ns, grow, grow_start, shrink, allow_shrink, shrink_rule, block_time, arithmetic } =
            *params;
        RawParams {
            guest_halt_poll_ns,
            grow_start,
            grow,
            shrink,
            allow_shrink: allow_shrink as u32,
            shrink_rule: shrink_rule as u32,
            block_time: block_time as u32,
            arithmetic: arithmetic as u32,
        }
    }

    /// The parameters, if every field holds a value its type has (not yet
    /// [validated](Params::validate): the guest reports invalid ones as a refusal to load).
    pub const fn params(&self) -> Option<Params> {
        let allow_shrink = match self.allow_shrink {
            0 => false,
            1 => true,
            _ => return None,
        };
        let (Some(shrink_rule), Some(block_time), Some(arithmetic)) = (
            ShrinkRule::from_raw(self.shrink_rule),
            BlockTime::from_raw(self.block_time),
            WindowArithmetic::from_raw(self.arithmetic),
        ) else {
            return None;
        };
        let RawParams { guest_halt_poll_ns, grow_start, grow, shrink, .. } = *self;
        Some(Params { guest_halt_poll_ns, grow, grow_start, shrink, allow_shrink, shrink_rule, block_time, arithmetic })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_parameters_round_trip_and_garbage_is_refused() {
        for params in [
            Params::DEFAULT,
            Params { allow_shrink: false, shrink_rule: ShrinkRule::Legacy, grow: 7, ..Params::DEFAULT },
            Params { block_time: BlockTime::PollAndHalt, ..Params::DEFAULT },
        ] {
            assert_eq!(RawParams::new(&params).params(), Some(params));
        }
        let bad = RawParams { shrink_rule: 9, ..RawParams::new(&Params::DEFAULT) };
        assert_eq!(bad.params(), None);
        let bad = RawParams { allow_shrink: 2, ..RawParams::new(&Params::DEFAULT) };
        assert_eq!(bad.params(), None);
        let bad = RawParams { block_time: 2, ..RawParams::new(&Params::DEFAULT) };
        assert_eq!(bad.params(), None);
        let bad = RawParams { arithmetic: 2, ..RawParams::new(&Params::DEFAULT) };
        assert_eq!(bad.params(), None);
        let wide = Params { arithmetic: WindowArithmetic::Saturating, guest_halt_poll_ns: u64::MAX, ..Params::DEFAULT };
        assert_eq!(RawParams::new(&wide).params(), Some(wide));
    }
}
