//! The benchmarks' measuring and summarising, apart from the commands that present them
//! (`cmd::bench`): the thread harness runs here, and both benches go from repetitions to rows,
//! ratios and targets through one [`summary`]. (`bench vm`'s per-run figures come from the
//! VMM's report; its rows and targets sit beside the command, in `cmd::bench::vm::cells`,
//! because they exist only where the VMM does.)

pub mod summary;
pub mod threads;
