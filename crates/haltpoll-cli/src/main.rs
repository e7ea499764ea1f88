//! `haltpoll`: run the haltpoll governor on traces, benchmark and tune guest halt polling.

use clap::{Parser, Subcommand};

// The benchmarks count their threads' costs with the VMM's `host` helpers, on any Linux.
#[cfg(target_os = "linux")]
mod bench;
mod cmd;
mod cpuidle;
mod hypervisor;
mod module_params;
mod output;
mod plot;
mod sysfs;
mod trace;
mod tune;
mod units;

/// Guest-side halt polling: replay idle traces through the haltpoll governor, run the
/// benchmarks, tune and observe.
#[derive(Parser, Debug)]
#[command(name = "haltpoll", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Feed a trace of idle periods through the governor and the poll loop model.
    Replay(cmd::replay::ReplayArgs),
    /// Show a Linux guest's cpuidle-haltpoll state and what the hypervisor offers.
    Status(cmd::status::StatusArgs),
    /// Write the haltpoll governor's parameters (as root), after checking them.
    Set(cmd::set::SetArgs),
    /// Replay a trace over a grid of parameters and recommend a setting for a CPU budget.
    Tune(cmd::tune::TuneArgs),
    /// Run a benchmark.
    #[cfg(target_os = "linux")]
    Bench(cmd::bench::BenchArgs),
    /// Run haltpoll's own guest on KVM and measure what idling costs.
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    Vm(cmd::vm::VmArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Replay(args) => cmd::replay::run(&args),
        Command::Status(args) => cmd::status::run(&args),
        Command::Set(args) => cmd::set::run(&args),
        Command::Tune(args) => cmd::tune::run(&args),
        #[cfg(target_os = "linux")]
        Command::Bench(args) => cmd::bench::run(&args),
        #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
        Command::Vm(args) => cmd::vm::run(&args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("haltpoll: error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
