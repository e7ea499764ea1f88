//! `haltpoll set PARAM=VALUE...`: writes the haltpoll governor's module parameters, after
//! checking that the whole resulting set works.

use std::time::Duration;

use anyhow::Result;
use clap::Args;
use haltpoll_linux::change::{self, PlanError, plan};
use haltpoll_linux::module_params::ModuleParams;
use haltpoll_linux::sysfs::Sysfs;
use haltpoll_linux::{lock, units};

use crate::options::SysfsRoot;
use crate::output;

/// Arguments of `haltpoll set`.
#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  # what would be written, writing nothing
  haltpoll set --dry-run guest_halt_poll_ns=400us grow_start=100us
  # write it (as root): the kernel's names or the short ones, times with units
  sudo haltpoll set ns=400us grow_start=100us
  # back to Linux's defaults
  sudo haltpoll set ns=200us grow=2 grow_start=50us shrink=2 allow_shrink=Y")]
#[command(mut_arg("sysfs_root", |a| a.help("Where sysfs is mounted (a fixture tree in tests)")))]
pub struct SetArgs {
    /// Parameters to set: guest_halt_poll_ns (or ns), grow, grow_start, shrink, allow_shrink
    /// (the kernel's names or the short ones); the two times take units, e.g. ns=400us.
    #[arg(value_name = "PARAM=VALUE", required = true)]
    pub assignments: Vec<String>,
    #[command(flatten)]
    pub sysfs: SysfsRoot,
    /// Print what would be written, and write nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// How long to wait for another `haltpoll set` to finish (one writer at a time: it holds
    /// /run/haltpoll.lock, or .haltpoll.lock inside a --sysfs-root other than /sys).
    #[arg(long, value_name = "TIME", default_value = "5s", value_parser = units::parse_duration)]
    pub wait: Duration,
}

/// Runs `haltpoll set`.
pub fn run(args: &SetArgs) -> Result<()> {
    let sys = Sysfs::open(&args.sysfs.sysfs_root)?;
    // Held from the read to the read-back and any rollback, so that concurrent writers run one
    // after the other and each plans against what the one before it left.
    let _lock = if args.dry_run { None } else { Some(lock::acquire(&sys, args.wait)?) };
    let current = ModuleParams::read_each(&sys)?;
    let (next, changes) = plan(&current, &args.assignments).map_err(usage_or_failure)?;
    for warning in next.warnings() {
        output::note(warning);
    }
    let (same, to_write): (Vec<_>, Vec<_>) = changes.iter().partition(|c| c.is_noop());
    if args.dry_run {
        return output::write_stdout(|out| {
            for c in &to_write {
                let path = sys.path(c.param.path());
                writeln!(out, "would write {} to {} (now {})", c.new, path.display(), c.old_text())?;
            }
            for c in &same {
                writeln!(out, "{} is already {}", c.param, c.new)?;
            }
            Ok(())
        });
    }
    change::write(&sys, &to_write)?;
    output::write_stdout(|out| {
        for c in &to_write {
            writeln!(out, "{}: {} -> {}", c.param, c.old_text(), c.new)?;
        }
        for c in &same {
            writeln!(out, "{}: already {}", c.param, c.new)?;
        }
        Ok(())
    })
}

/// A plan refused for what the command line says is a usage error (exit code 2); one refused
/// for what sysfs holds (a parameter that cannot be read) is a failure.
fn usage_or_failure(e: PlanError) -> anyhow::Error {
    match e {
        PlanError::Unreadable { .. } => e.into(),
        _ => crate::Usage(format!("{:#}", anyhow::Error::from(e))).into(),
    }
}
