//! One module per subcommand.

#[cfg(target_os = "linux")]
pub mod autotune;
#[cfg(all(feature = "bench", target_os = "linux"))]
pub mod bench;
pub mod compare;
pub mod completions;
pub mod exporter;
pub mod man;
#[cfg(target_os = "linux")]
pub mod record;
pub mod replay;
pub mod set;
pub mod status;
pub mod tune;
#[cfg(all(feature = "vm", target_os = "linux", target_arch = "x86_64"))]
pub mod vm;
