//! The Linux guest's side of halt polling, as a library: what the `haltpoll` command computes,
//! without KVM, the bare-metal guest or plotting.
//!
//! - [`sysfs`], [`module_params`], [`cpuidle`]: the cpuidle-haltpoll driver's and the haltpoll
//!   governor's files under `/sys`, read and checked; [`change`]: the parameters written, all or
//!   none; `lock` (Linux): one writer of them at a time;
//! - [`hypervisor`]: what the hypervisor offers a guest (CPUID), whether the driver loads, and
//!   each vCPU's poll-control MSR; [`procfs`]: the kernel command line and steal time;
//!   [`pm_qos`]: the CPU latency limits; [`status`]: all of it read at once, and what it means,
//!   each [`finding`] under a stable code;
//! - [`record`] (Linux): every CPU's idle periods through tracefs, as `perf script` text;
//! - [`trace`]: the two trace formats read, and the governor replayed over them per CPU;
//! - [`tune`]: the governor over a grid of settings, the Pareto front and the setting for a
//!   CPU budget, checked on the guest gone idle; [`compare`]: Linux's best setting, the
//!   predictive governor and the clairvoyant bound at several budgets; [`frontier`]: Linux's
//!   frontier against the predictive governor's budget sweep, in the planes of all polling and
//!   of polling net of halts;
//!   [`autotune`]: the tuner that follows the load, as a policy (recent idle periods and the
//!   setting in force in, a decision out);
//! - [`metrics`]: the cpuidle and haltpoll metrics in Prometheus's text format;
//! - [`units`]: the durations, shares and counts a person types and reads.
//!
//! Every reader of a file or a person's text bounds what it reads and what its messages quote
//! ([`quote`]), so that bad input gives a short error, never a panic.
//!
//! ```
//! use haltpoll::ValidParams;
//! use haltpoll_linux::trace::{self, Format};
//!
//! let text = b"# cpu 0\n40000\n250000\n30000\n";
//! let trace = trace::parse(text, "example".as_ref(), Some(Format::Text)).unwrap();
//! let replayed = trace.replay(ValidParams::DEFAULT, |_, _| {});
//! assert_eq!(replayed.summary.periods, 3);
//! ```

pub mod autotune;
pub mod change;
pub mod compare;
pub mod cpuidle;
pub mod finding;
pub mod frontier;
pub mod hypervisor;
#[cfg(target_os = "linux")]
pub mod lock;
pub mod metrics;
pub mod module_params;
pub mod pm_qos;
pub mod procfs;
#[cfg(target_os = "linux")]
pub mod record;
pub mod status;
pub mod sysfs;
pub mod trace;
pub mod tune;
pub mod units;

// The one cut of quoted text, shared with the core's duration parser; the fuzz targets bound
// messages by it.
pub use haltpoll::params::cli::{QUOTE_CHARS, quote};
