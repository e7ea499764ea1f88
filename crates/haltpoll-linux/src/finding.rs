//! What `haltpoll status` concludes, each conclusion under a stable code (`HP001`...), so that
//! a script or an alert across a fleet can match the code while the sentence stays free to
//! improve. The codes are declared once, in [`Code::ALL`]; docs/operators.md lists them.

use std::fmt;

use serde::Serialize;

/// How much a finding matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// A fact worth knowing; nothing to do.
    Info,
    /// Something costs CPU time or latency, or does not work as set.
    Warning,
}

impl Severity {
    /// The name in JSON and in metrics' labels.
    pub const fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
        }
    }
}

/// A kind of finding. A code never changes meaning; a retired one is not reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Code {
    /// No cpuidle in this sysfs, or not Linux.
    NoCpuidle,
    /// The cpuidle driver is not haltpoll.
    DriverNotHaltpoll,
    /// The haltpoll driver runs under another governor.
    GovernorNotHaltpoll,
    /// The parameters cannot work together.
    ParamsInvalid,
    /// `guest_halt_poll_ns=0`: guest polling is off.
    PollingOff,
    /// `grow_start` above the ceiling: the window is on/off.
    OnOffWindow,
    /// The window never shrinks.
    NeverShrinks,
    /// The kernel's 32-bit window wraps.
    WindowWraps,
    /// A ceiling above 1 ms.
    LargeCeiling,
    /// A parameter's file cannot be read.
    ParamUnreadable,
    /// POLL disabled on some CPUs.
    PollDisabled,
    /// The host offers no POLL_CONTROL.
    NoPollControl,
    /// How much was polled since boot.
    PollShareSinceBoot,
    /// A PM QoS limit of 0 µs: every idle period polls, none halts.
    LatencyLimitZero,
    /// The vCPUs waited for a host CPU (steal time).
    StealTime,
    /// Host polling is still on while the guest polls.
    HostPollingOn,
    /// A parameter comes from the kernel command line.
    SetOnCommandLine,
    /// A parameter was changed since boot.
    ChangedAtRuntime,
}

impl Code {
    /// Every code, in the order of their numbers.
    pub const ALL: [Code; 18] = [
        Code::NoCpuidle,
        Code::DriverNotHaltpoll,
        Code::GovernorNotHaltpoll,
        Code::ParamsInvalid,
        Code::PollingOff,
        Code::OnOffWindow,
        Code::NeverShrinks,
        Code::WindowWraps,
        Code::LargeCeiling,
        Code::ParamUnreadable,
        Code::PollDisabled,
        Code::NoPollControl,
        Code::PollShareSinceBoot,
        Code::LatencyLimitZero,
        Code::StealTime,
        Code::HostPollingOn,
        Code::SetOnCommandLine,
        Code::ChangedAtRuntime,
    ];

    /// The code's number, written out rather than counted so that a code added or retired
    /// never renumbers the others.
    pub const fn number(self) -> u16 {
        match self {
            Code::NoCpuidle => 1,
            Code::DriverNotHaltpoll => 2,
            Code::GovernorNotHaltpoll => 3,
            Code::ParamsInvalid => 4,
            Code::PollingOff => 5,
            Code::OnOffWindow => 6,
            Code::NeverShrinks => 7,
            Code::WindowWraps => 8,
            Code::LargeCeiling => 9,
            Code::ParamUnreadable => 10,
            Code::PollDisabled => 11,
            Code::NoPollControl => 12,
            Code::PollShareSinceBoot => 13,
            Code::LatencyLimitZero => 14,
            Code::StealTime => 15,
            Code::HostPollingOn => 16,
            Code::SetOnCommandLine => 17,
            Code::ChangedAtRuntime => 18,
        }
    }

    /// The stable code: `HP` and three digits.
    pub fn id(self) -> String {
        format!("HP{:03}", self.number())
    }

    /// How much it matters.
    pub const fn severity(self) -> Severity {
        match self {
            Code::PollShareSinceBoot | Code::SetOnCommandLine | Code::ChangedAtRuntime => Severity::Info,
            _ => Severity::Warning,
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id())
    }
}

/// One conclusion: its code and a sentence that says what to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// What kind it is.
    pub code: Code,
    /// What it means here, one sentence.
    pub text: String,
}

impl Finding {
    /// A finding of kind `code`.
    pub fn new(code: Code, text: impl Into<String>) -> Finding {
        Finding { code, text: text.into() }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_numbered_in_order_and_unique() {
        assert_eq!(Code::NoCpuidle.id(), "HP001");
        assert_eq!(Code::PollingOff.id(), "HP005");
        assert_eq!(Code::ChangedAtRuntime.id(), "HP018");
        assert!(Code::ALL.windows(2).all(|w| w[0].number() < w[1].number()), "ALL in order, each once");
        let f = Finding::new(Code::StealTime, "steal");
        assert_eq!(f.to_string(), "HP015 steal");
        assert_eq!(Code::SetOnCommandLine.severity().name(), "info");
    }
}
