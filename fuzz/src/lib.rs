//! What the fuzz targets share: the `haltpoll-linux` readers of untrusted input (the two trace
//! formats and the sysfs files), called as the `haltpoll` command calls them.

pub use haltpoll_linux::{cpuidle, module_params, sysfs, trace};

/// The longest error message a reader may give: the text it quotes is cut to
/// [`haltpoll_linux::QUOTE_CHARS`] characters, so a message never grows with the input.
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
