//! Option groups several subcommands take, declared once and flattened into each
//! (`#[command(flatten)]`), so that the same option has the same name, value and parser
//! everywhere. A subcommand whose help words an option its own way says so with `mut_arg`.

use std::path::PathBuf;

use clap::Args;
use haltpoll_linux::sysfs;
use haltpoll_linux::trace::Format;

/// Where sysfs is: `/sys`, or a copy or fixture tree.
#[derive(Args, Clone, Debug)]
pub struct SysfsRoot {
    /// Where sysfs is mounted (a copy or a fixture tree works too). CPUID is always this CPU's.
    #[arg(long = "sysfs-root", value_name = "DIR", default_value = sysfs::DEFAULT_ROOT)]
    pub sysfs_root: PathBuf,
}

/// Where /proc and /dev are, beside sysfs, for what they add to `status` and the metrics.
#[derive(Args, Clone, Debug)]
pub struct SystemRoots {
    /// Where procfs is mounted (the kernel command line, steal time); a fixture tree works too.
    #[arg(long = "proc-root", value_name = "DIR", default_value = "/proc")]
    pub proc_root: PathBuf,
    /// Where /dev is (cpu_dma_latency, cpu/N/msr); a fixture tree works too.
    #[arg(long = "dev-root", value_name = "DIR", default_value = "/dev")]
    pub dev_root: PathBuf,
}

impl SystemRoots {
    /// As the library takes them.
    pub fn roots(&self) -> haltpoll_linux::status::Roots {
        haltpoll_linux::status::Roots { proc: self.proc_root.clone(), dev: self.dev_root.clone() }
    }
}

/// How a trace is read.
#[derive(Args, Clone, Copy, Debug)]
pub struct TraceFormat {
    /// The trace's format (default: detected from its first line).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
}

/// The CPUs a perf trace covers, when its header does not say.
#[derive(Args, Clone, Copy, Debug)]
pub struct TraceCpus {
    /// CPUs the trace covers (perf traces; default: the header's `nrcpus online`, else the CPUs
    /// with idle periods).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub cpus: Option<u32>,
}

#[cfg(all(feature = "vm", target_os = "linux", target_arch = "x86_64"))]
pub use guest::GuestGovernors;

/// The VM commands' governor options (they exist where the VMM does).
#[cfg(all(feature = "vm", target_os = "linux", target_arch = "x86_64"))]
mod guest {
    use anyhow::{Context, Result};
    use clap::Args;
    use haltpoll::{GovernorKind, GovernorParams, Params, PredictiveParams, ValidParams, ValidPredictiveParams};

    /// The parameters of both governors the guest's haltpoll driver can run (`bench vm`,
    /// `vm pingpong`): Linux's options and the predictive governor's.
    #[derive(Args, Debug)]
    pub struct GuestGovernors {
        #[command(flatten)]
        pub linux: Params,
        #[command(flatten)]
        pub predictive: PredictiveParams,
    }

    impl GuestGovernors {
        /// Linux's governor's parameters, validated.
        pub fn valid_linux(&self) -> Result<ValidParams> {
            self.linux.validate().context("invalid governor parameters")
        }

        /// The predictive governor's parameters, validated.
        pub fn valid_predictive(&self) -> Result<ValidPredictiveParams> {
            self.predictive.validate().context("invalid predictive governor parameters")
        }

        /// The parameters of the governor `kind` names, validated.
        pub fn select(&self, kind: GovernorKind) -> Result<GovernorParams> {
            Ok(match kind {
                GovernorKind::Linux => self.valid_linux()?.into(),
                GovernorKind::Predictive => self.valid_predictive()?.into(),
            })
        }
    }
}
