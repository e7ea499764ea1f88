//! The bounds the VMM's runs and the thread benchmarks share, so that a think time or a host
//! window is refused the same way, with the same words, wherever it is given.

use std::time::Duration;

/// The longest think time before a message. A cell of a benchmark runs at least a few hundred
/// round trips of two think times each; at 1 s that is already minutes per cell, and beyond it a
/// run looks like a hang.
pub const MAX_THINK: Duration = Duration::from_secs(1);

/// Checks a think time against [`MAX_THINK`]; the error names `what` and the limit.
///
/// ```
/// use std::time::Duration;
/// use haltpoll_bench::limits::check_think;
/// assert!(check_think("think time", Duration::from_millis(1)).is_ok());
/// assert_eq!(
///     check_think("think time", Duration::from_secs(1000)).unwrap_err(),
///     "think time 1000s is too long: at most 1s per message"
/// );
/// ```
pub fn check_think(what: &str, think: Duration) -> Result<(), String> {
    if think > MAX_THINK {
        return Err(format!("{what} {think:?} is too long: at most {MAX_THINK:?} per message"));
    }
    Ok(())
}

/// The longest host halt-polling window, ns: KVM keeps a VM's `halt_poll_ns` in an unsigned
/// 32-bit int and refuses a larger one (EINVAL).
pub const MAX_HOST_HALT_POLL_NS: u64 = u32::MAX as u64;

/// Checks a host halt-polling window against [`MAX_HOST_HALT_POLL_NS`].
///
/// ```
/// use haltpoll_bench::limits::check_host_halt_poll_ns;
/// assert!(check_host_halt_poll_ns(200_000).is_ok());
/// assert!(check_host_halt_poll_ns(u64::MAX).unwrap_err().contains("0 to 4294967295 ns"));
/// ```
pub fn check_host_halt_poll_ns(ns: u64) -> Result<(), String> {
    if ns > MAX_HOST_HALT_POLL_NS {
        return Err(format!(
            "host halt-poll window {ns} ns is out of range: KVM holds it in 32 bits, so give 0 to \
             {MAX_HOST_HALT_POLL_NS} ns (about 4.29 s)"
        ));
    }
    Ok(())
}
