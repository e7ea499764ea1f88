//! The behaviour tests against crossbeam's parker: the reference.

use crossbeam_utils::sync::{Parker, Unparker};

include!("common/behaviour.rs");
