//! `haltpoll bench ...`: the benchmarks, one subcommand each. Every benchmark measures its
//! contenders side by side in one run and reports ratios, since this project's machines are
//! shared and absolute numbers drift.

use anyhow::Result;
use clap::{Args, Subcommand};

pub mod threads;

/// Arguments of `haltpoll bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub command: BenchCommand,
}

/// The benchmarks.
#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Two threads hand a token back and forth: the haltpoll parker against spinning,
    /// std::thread::park, crossbeam, parking_lot and a fixed spin-then-park.
    Threads(threads::ThreadsArgs),
}

/// Runs `haltpoll bench`.
pub fn run(args: &BenchArgs) -> Result<()> {
    match &args.command {
        BenchCommand::Threads(a) => threads::run(a),
    }
}
