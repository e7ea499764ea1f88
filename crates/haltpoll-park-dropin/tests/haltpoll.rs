//! The behaviour tests against haltpoll-park's parker: the drop-in.

use haltpoll_park::{Parker, Unparker};

include!("common/behaviour.rs");
