//! No code: the tests are the crate. `tests/common/behaviour.rs` is one test source written
//! against crossbeam's `Parker` / `Unparker` API; `tests/crossbeam.rs` compiles it with
//! `crossbeam_utils::sync::{Parker, Unparker}` and `tests/haltpoll.rs` with
//! `haltpoll_park::{Parker, Unparker}`, so `cargo test -p haltpoll-park-dropin` runs the same
//! tests once per side. The source compiling against haltpoll-park is the drop-in check for the
//! signatures and traits; the tests passing against crossbeam is the check that they test
//! crossbeam's behaviour, not ours.
