//! `haltpoll set PARAM=VALUE...`: writes the haltpoll governor's module parameters, after
//! checking that the whole resulting set works.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::module_params::{ModuleParams, Param};
use crate::output;
use crate::sysfs::{self, Sysfs};

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
pub struct SetArgs {
    /// Parameters to set: guest_halt_poll_ns (or ns), grow, grow_start, shrink, allow_shrink
    /// (the kernel's names or the short ones); the two times take units, e.g. ns=400us.
    #[arg(value_name = "PARAM=VALUE", required = true)]
    pub assignments: Vec<String>,
    /// Where sysfs is mounted (a fixture tree in tests).
    #[arg(long, value_name = "DIR", default_value = sysfs::DEFAULT_ROOT)]
    pub sysfs_root: PathBuf,
    /// Print what would be written, and write nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
}

/// One requested change.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Change {
    param: Param,
    old: String,
    new: String,
}

/// Applies `assignments` to `current`: the full resulting set, validated, and the changes.
fn plan(current: &ModuleParams, assignments: &[String]) -> Result<(ModuleParams, Vec<Change>)> {
    let mut next = *current;
    let mut seen = Vec::new();
    for a in assignments {
        let Some((name, value)) = a.split_once('=') else {
            bail!("{a:?} is not PARAM=VALUE (e.g. guest_halt_poll_ns=400000)");
        };
        let param = Param::from_name(name).with_context(|| {
            let names: Vec<_> = Param::ALL.iter().map(|p| format!("{} ({})", p.name(), p.short())).collect();
            format!("unknown parameter {name:?}: the haltpoll parameters are {}", names.join(", "))
        })?;
        if seen.contains(&param) {
            bail!("{param} is given twice");
        }
        seen.push(param);
        next.set(param, value).map_err(anyhow::Error::msg)?;
    }
    next.params().validate().with_context(|| format!("refusing to write {}", next.set_args()))?;
    let changes = Param::ALL
        .into_iter()
        .filter(|p| seen.contains(p))
        .map(|param| Change { param, old: current.value(param), new: next.value(param) })
        .collect();
    Ok((next, changes))
}

/// Runs `haltpoll set`.
pub fn run(args: &SetArgs) -> Result<()> {
    let sys = Sysfs::open(&args.sysfs_root)?;
    let current = ModuleParams::read(&sys)?;
    let (next, changes) = plan(&current, &args.assignments)?;
    for warning in next.warnings() {
        output::note(warning);
    }
    let (same, to_write): (Vec<_>, Vec<_>) = changes.iter().partition(|c| c.old == c.new);
    if args.dry_run {
        return output::write_stdout(|out| {
            for c in &to_write {
                writeln!(out, "would write {} to {} (now {})", c.new, sys.path(c.param.path()).display(), c.old)?;
            }
            for c in &same {
                writeln!(out, "{} is already {}", c.param, c.new)?;
            }
            Ok(())
        });
    }
    // Open every file before writing any, so that a missing permission changes nothing.
    let mut files = to_write.iter().map(|c| sys.open_for_write(c.param.path())).collect::<Result<Vec<_>, _>>()?;
    for (c, (path, file)) in to_write.iter().zip(&mut files) {
        Sysfs::write(path, file, &c.new)?;
    }
    let now = ModuleParams::read(&sys).context("reading the parameters back")?;
    for c in &to_write {
        if now.value(c.param) != c.new {
            bail!("wrote {} to {} but it reads {}: the kernel did not take it", c.new, c.param, now.value(c.param));
        }
    }
    output::write_stdout(|out| {
        for c in &to_write {
            writeln!(out, "{}: {} -> {}", c.param, c.old, c.new)?;
        }
        for c in &same {
            writeln!(out, "{}: already {}", c.param, c.new)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn plans_the_full_set() {
        let current = ModuleParams { guest_halt_poll_ns: 0, ..ModuleParams::default() };
        let (next, changes) = plan(&current, &args(&["grow_start=100us", "guest_halt_poll_ns=400000"])).unwrap();
        assert_eq!((next.guest_halt_poll_ns, next.grow_start), (400_000, 100_000));
        let params: Vec<_> = changes.iter().map(|c| (c.param, c.old.as_str(), c.new.as_str())).collect();
        assert_eq!(params, vec![(Param::PollNs, "0", "400000"), (Param::GrowStart, "50000", "100000")]);
    }

    #[test]
    fn validates_the_resulting_set() {
        let err = format!("{:#}", plan(&ModuleParams::default(), &args(&["grow_start=0"])).unwrap_err());
        assert!(err.starts_with("refusing to write guest_halt_poll_ns=200000"), "{err}");
        assert!(err.contains("grow_start must be at least 1 ns"), "{err}");
        // The SAP HANA guide's on/off setting is allowed.
        assert!(plan(&ModuleParams::default(), &args(&["ns=2.4ms", "grow_start=24ms"])).is_ok());
    }

    #[test]
    fn rejects_what_the_kernel_would_not_hold() {
        let d = ModuleParams::default();
        let err = |a: &[&str]| format!("{:#}", plan(&d, &args(a)).unwrap_err());
        assert!(err(&["ns=5s"]).contains("32-bit unsigned int"));
        assert!(err(&["allow_shrink=2"]).contains("not a bool"));
        assert!(err(&["halt_poll_ns=1"]).contains("unknown parameter \"halt_poll_ns\""));
        assert!(err(&["grow"]).contains("is not PARAM=VALUE"));
        assert!(err(&["grow=4", "guest_halt_poll_grow=3"]).contains("guest_halt_poll_grow is given twice"));
    }
}
