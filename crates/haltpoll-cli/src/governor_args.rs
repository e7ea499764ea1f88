//! The governor's parameters as command-line options, shared by every subcommand that runs it.

use anyhow::Context;
use clap::{Args, ValueEnum};
use haltpoll::{BlockTime, Params, ShrinkRule};

/// Governor parameters (defaults are Linux's).
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Governor parameters")]
pub struct GovernorArgs {
    /// Ceiling of the poll window, ns (guest_halt_poll_ns).
    #[arg(long, value_name = "NS", default_value_t = Params::DEFAULT.guest_halt_poll_ns)]
    pub guest_halt_poll_ns: u64,
    /// Factor by which the window grows (guest_halt_poll_grow).
    #[arg(long, value_name = "FACTOR", default_value_t = Params::DEFAULT.grow)]
    pub grow: u32,
    /// First non-zero window and shrink floor, ns (guest_halt_poll_grow_start); at least 1.
    #[arg(long, value_name = "NS", default_value_t = Params::DEFAULT.grow_start)]
    pub grow_start: u64,
    /// Divisor by which the window shrinks; 0 resets it to 0 (guest_halt_poll_shrink).
    #[arg(long, value_name = "DIVISOR", default_value_t = Params::DEFAULT.shrink)]
    pub shrink: u32,
    /// Never shrink the window (guest_halt_poll_allow_shrink=N).
    #[arg(long)]
    pub no_shrink: bool,
    /// Shrink as Linux did before 6.9: no floor at grow_start.
    #[arg(long)]
    pub legacy_shrink: bool,
    /// What counts as the block time of a halt after a timed-out poll: the halt alone
    /// (Linux), or the poll and the halt (ours: no blind spot for periods between W and 2W).
    #[arg(long, value_name = "RULE", value_enum, default_value_t = BlockTimeArg::HaltOnly)]
    pub block_time: BlockTimeArg,
}

/// [`BlockTime`] as an option value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BlockTimeArg {
    /// Only the halt, as Linux.
    HaltOnly,
    /// The timed-out poll and the halt.
    PollAndHalt,
}

impl From<BlockTimeArg> for BlockTime {
    fn from(arg: BlockTimeArg) -> BlockTime {
        match arg {
            BlockTimeArg::HaltOnly => BlockTime::HaltOnly,
            BlockTimeArg::PollAndHalt => BlockTime::PollAndHalt,
        }
    }
}

/// The option value's name for `block_time`, as reports print it.
pub fn block_time_name(block_time: BlockTime) -> &'static str {
    match block_time {
        BlockTime::HaltOnly => "halt-only",
        BlockTime::PollAndHalt => "poll-and-halt",
    }
}

impl GovernorArgs {
    /// The validated parameters.
    pub fn params(&self) -> anyhow::Result<Params> {
        Params {
            guest_halt_poll_ns: self.guest_halt_poll_ns,
            grow: self.grow,
            grow_start: self.grow_start,
            shrink: self.shrink,
            allow_shrink: !self.no_shrink,
            shrink_rule: if self.legacy_shrink { ShrinkRule::Legacy } else { ShrinkRule::Floor },
            block_time: self.block_time.into(),
        }
        .validate()
        .context("invalid governor parameters")
    }
}
