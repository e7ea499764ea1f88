//! One module per subcommand.

pub mod bench;
pub mod replay;
pub mod set;
pub mod status;
pub mod tune;
