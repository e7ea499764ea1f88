//! `haltpoll`: run the haltpoll governor on traces, benchmark and tune guest halt polling.

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

mod cmd;
#[cfg(target_os = "linux")]
mod interrupt;
mod options;
mod output;
mod plot;
#[cfg(all(feature = "bench", target_os = "linux"))]
mod progress;
#[cfg(target_os = "linux")]
mod recording;
mod staged_file;
mod table;
#[cfg(all(feature = "vm", target_os = "linux", target_arch = "x86_64"))]
mod think_trace;

/// Guest-side halt polling: replay idle traces through the haltpoll governor, run the
/// benchmarks, tune and observe.
#[derive(Parser, Debug)]
#[command(
    name = "haltpoll",
    version,
    about,
    propagate_version = true,
    after_help = "\
Examples:
  # the governor over the example trace: no KVM, no root needed
  haltpoll replay examples/traces/mixed.txt
  # this machine's cpuidle-haltpoll state, and what it means
  haltpoll status
  # a setting for a recorded trace, within a CPU budget, and the command that applies it
  haltpoll tune examples/traces/perf-idle.txt --max-poll-share 2%

Exit status:
  0    success
  1    failure: the command could not do its work (the message says why)
  2    usage error: an unknown subcommand or option, a missing or invalid value
  130  interrupted (Ctrl-C)"
)]
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
    /// Compare Linux's best setting, the predictive governor and the clairvoyant bound on
    /// traces at several CPU budgets.
    Compare(cmd::compare::CompareArgs),
    /// Record every CPU's idle periods through tracefs (as root), for `replay` and `tune`.
    #[cfg(target_os = "linux")]
    Record(cmd::record::RecordArgs),
    /// Follow the load: record, replay and rewrite the parameters every interval (as root).
    #[cfg(target_os = "linux")]
    Autotune(cmd::autotune::AutotuneArgs),
    /// Serve the cpuidle and haltpoll metrics over HTTP for Prometheus.
    Exporter(cmd::exporter::ExporterArgs),
    /// Run a benchmark.
    #[cfg(all(feature = "bench", target_os = "linux"))]
    Bench(cmd::bench::BenchArgs),
    /// The benchmarks, left out of this build.
    #[cfg(all(not(feature = "bench"), target_os = "linux"))]
    #[command(hide = true)]
    Bench(LeftOut),
    /// Run haltpoll's own guest on KVM and measure what idling costs.
    #[cfg(all(feature = "vm", target_os = "linux", target_arch = "x86_64"))]
    Vm(cmd::vm::VmArgs),
    /// The VM commands, left out of this build.
    #[cfg(all(not(feature = "vm"), target_os = "linux", target_arch = "x86_64"))]
    #[command(hide = true)]
    Vm(LeftOut),
    /// Print the completion script of a shell for haltpoll.
    Completions(cmd::completions::CompletionsArgs),
    /// Write haltpoll's man pages.
    Man(cmd::man::ManArgs),
}

/// A value on the command line that the command refused after clap parsed it (a file that is
/// not one, a setting that cannot be): exit code 2, as clap's own usage errors.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

/// A subcommand this build leaves out (its cargo feature was off): it takes whatever follows and
/// stops with a message naming the feature, where clap would only say "unrecognized subcommand".
#[cfg(all(target_os = "linux", any(not(feature = "bench"), all(not(feature = "vm"), target_arch = "x86_64"))))]
#[derive(clap::Args, Debug)]
#[command(disable_help_flag = true)]
pub struct LeftOut {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    rest: Vec<std::ffi::OsString>,
}

#[cfg(all(target_os = "linux", any(not(feature = "bench"), all(not(feature = "vm"), target_arch = "x86_64"))))]
impl LeftOut {
    /// The usage error of `haltpoll COMMAND` in a build without `feature`.
    pub fn refuse(command: &str, feature: &str) -> anyhow::Error {
        Usage(format!(
            "`haltpoll {command}` is not in this build: it was built without the cargo feature `{feature}`; \
             rebuild it with the feature, which is on by default (e.g. `cargo install haltpoll-cli`, \
             without --no-default-features)"
        ))
        .into()
    }
}

// The exit codes, all of them, defined here only.
/// The command did what it was asked.
const EXIT_SUCCESS: u8 = 0;
/// It failed; stderr says why.
const EXIT_FAILURE: u8 = 1;
/// The command line is wrong (clap's usage errors); nothing ran.
const EXIT_USAGE: u8 = 2;
/// Ctrl-C or SIGTERM stopped a run, after it printed what had finished (128 + SIGINT, as a shell
/// reports a process that SIGINT ended).
const EXIT_INTERRUPTED: u8 = 130;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout, usage errors to stderr; either may be closed.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { EXIT_SUCCESS });
        }
    };
    let result = match cli.command {
        Command::Replay(args) => cmd::replay::run(&args),
        Command::Status(args) => cmd::status::run(&args),
        Command::Set(args) => cmd::set::run(&args),
        Command::Tune(args) => cmd::tune::run(&args),
        Command::Compare(args) => cmd::compare::run(&args),
        #[cfg(target_os = "linux")]
        Command::Record(args) => cmd::record::run(&args),
        #[cfg(target_os = "linux")]
        Command::Autotune(args) => cmd::autotune::run(&args),
        Command::Exporter(args) => cmd::exporter::run(&args),
        #[cfg(all(feature = "bench", target_os = "linux"))]
        Command::Bench(args) => cmd::bench::run(&args),
        #[cfg(all(not(feature = "bench"), target_os = "linux"))]
        Command::Bench(_) => Err(LeftOut::refuse("bench", "bench")),
        #[cfg(all(feature = "vm", target_os = "linux", target_arch = "x86_64"))]
        Command::Vm(args) => cmd::vm::run(&args),
        #[cfg(all(not(feature = "vm"), target_os = "linux", target_arch = "x86_64"))]
        Command::Vm(_) => Err(LeftOut::refuse("vm", "vm")),
        Command::Completions(args) => cmd::completions::run(&args, Cli::command()),
        Command::Man(args) => cmd::man::run(&args, Cli::command()),
    };
    let Err(err) = result else { return ExitCode::from(EXIT_SUCCESS) };
    // Both ways a signal ends a command (a bench's partial results, a recording that cleaned up)
    // say so in their own words and exit 130.
    #[cfg(target_os = "linux")]
    if let Some(interrupted) = interrupted(&err) {
        output::stderr_line(format_args!("haltpoll: {interrupted}"));
        return ExitCode::from(EXIT_INTERRUPTED);
    }
    output::stderr_line(format_args!("haltpoll: error: {err:#}"));
    ExitCode::from(if is_usage(&err) { EXIT_USAGE } else { EXIT_FAILURE })
}

/// Whether `err` is a usage error: [`Usage`], or an output path refused before anything ran.
fn is_usage(err: &anyhow::Error) -> bool {
    err.downcast_ref::<Usage>().is_some()
        || err.downcast_ref::<output::OutputError>().is_some_and(output::OutputError::is_usage)
        || err.downcast_ref::<plot::PlotError>().is_some_and(plot::PlotError::is_usage)
}

/// What a signal left of the command, if a signal ended it: a benchmark's partial results or a
/// recording that cleaned up.
#[cfg(target_os = "linux")]
fn interrupted(err: &anyhow::Error) -> Option<&dyn std::fmt::Display> {
    #[cfg(feature = "bench")]
    if let Some(bench) = err.downcast_ref::<interrupt::Interrupted>() {
        return Some(bench);
    }
    err.downcast_ref::<recording::Interrupted>().map(|i| i as &dyn std::fmt::Display)
}
