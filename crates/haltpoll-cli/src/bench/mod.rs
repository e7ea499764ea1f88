//! The benchmarks' measuring and summarising, apart from the commands that present them
//! (`cmd::bench`): the thread harness runs here, and the figures both benches print are derived
//! here once.

pub mod summary;
pub mod threads;
