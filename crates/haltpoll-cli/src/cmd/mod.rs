//! One module per subcommand.

pub mod replay;
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
pub mod vm;
