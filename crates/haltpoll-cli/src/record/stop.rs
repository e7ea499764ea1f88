//! Ctrl-C, SIGTERM and SIGHUP during a recording: a request to stop, which the recording loop
//! sees within one poll interval and answers by cleaning up as on any other end. Afterwards the
//! signals do what they did before (end the process), so a Ctrl-C while `tune` computes is not
//! swallowed.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::flag;

/// The signals that stop a recording.
const SIGNALS: [i32; 3] = [SIGINT, SIGTERM, SIGHUP];

/// Signal handling for the length of a recording.
#[derive(Debug)]
pub struct Stop {
    requested: Arc<AtomicBool>,
    over: Arc<AtomicBool>,
}

impl Stop {
    /// Installs the handlers.
    pub fn install() -> io::Result<Stop> {
        let stop = Stop { requested: Arc::new(AtomicBool::new(false)), over: Arc::new(AtomicBool::new(false)) };
        for signal in SIGNALS {
            // Registered first, so it runs first: once the recording is over, the signal's
            // default action (the process ends) before the flag below is even set.
            flag::register_conditional_default(signal, Arc::clone(&stop.over))?;
            flag::register(signal, Arc::clone(&stop.requested))?;
        }
        Ok(stop)
    }

    /// The flag a signal sets.
    pub fn flag(&self) -> &AtomicBool {
        &self.requested
    }
}

impl Drop for Stop {
    fn drop(&mut self) {
        // signal-hook cannot give the handler back to the kernel; this makes it act as the
        // default one from now on.
        self.over.store(true, Ordering::SeqCst);
    }
}
