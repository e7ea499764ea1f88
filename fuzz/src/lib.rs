//! The `haltpoll` command's readers of untrusted input, compiled in from the command's own
//! sources (the command is a binary, so it has no library to link): the two trace formats and
//! the sysfs readers. The fuzz targets call them as the command does.

#![allow(dead_code, unused_imports, reason = "only the readers' entry points are fuzzed")]

#[path = "../../crates/haltpoll-cli/src/cpuidle.rs"]
pub mod cpuidle;
#[path = "../../crates/haltpoll-cli/src/module_params.rs"]
pub mod module_params;
#[path = "../../crates/haltpoll-cli/src/output.rs"]
pub mod output;
#[path = "../../crates/haltpoll-cli/src/sysfs.rs"]
pub mod sysfs;
#[path = "../../crates/haltpoll-cli/src/trace/mod.rs"]
pub mod trace;
#[path = "../../crates/haltpoll-cli/src/units.rs"]
pub mod units;

/// The longest error message a reader may give: the text it quotes is cut to
/// [`output::QUOTE_CHARS`] characters, so a message never grows with the input.
pub const MAX_MESSAGE_BYTES: usize = 2048;

/// Reads `data` as a trace in `format` (detected if `None`), replays what it holds, and checks
/// that an error stays short.
pub fn trace(data: &[u8], format: Option<trace::Format>) {
    match trace::parse(data, std::path::Path::new("fuzz"), format) {
        Ok(t) => {
            let replayed = t.replay(haltpoll::ValidParams::DEFAULT, |_, _| {});
            assert_eq!(replayed.summary.periods as usize, t.periods.len());
            assert!(t.periods.iter().all(|p| p.cpu <= trace::MAX_CPU));
        }
        Err(e) => {
            let message = e.to_string();
            assert!(message.len() <= MAX_MESSAGE_BYTES, "{} bytes: {message:.200}", message.len());
        }
    }
}
