//! What can go wrong, as values a user can act on.
//!
//! Each message carries its cause (the errno) in its own text, and no error here returns that
//! cause again as its `source()`: a caller that prints the chain (`anyhow`'s `{:#}`) would
//! otherwise print it twice.

use std::fmt;
use std::io;
use std::time::Duration;

/// An error from setting up or running a VM.
#[derive(Debug, thiserror::Error)]
pub enum VmmError {
    /// There is no `/dev/kvm`.
    #[error(
        "/dev/kvm does not exist: this machine offers no KVM. Load the module (`modprobe kvm_amd` or \
         `modprobe kvm_intel`), enable virtualization in the firmware, or, inside a VM, ask for nested \
         virtualization"
    )]
    KvmMissing,
    /// `/dev/kvm` exists but this user may not open it.
    #[error(
        "/dev/kvm is not accessible ({error}): add your user to the kvm group (`sudo usermod -aG kvm $USER`, \
         then log in again) or run as root"
    )]
    KvmDenied {
        /// What the system said.
        error: io::Error,
    },
    /// `/dev/kvm` could not be opened for another reason.
    #[error("cannot open /dev/kvm: {0}")]
    KvmOpen(io::Error),
    /// What is at the KVM device's path is not KVM (`/dev/kvm` bound to `/dev/null`, say).
    #[error(
        "{path} is not a KVM device: it answers KVM_GET_API_VERSION with {answer}, where KVM answers 12. \
         Check what is at that path (`ls -l {path}`: KVM is the character device 10:232)"
    )]
    NotKvm {
        /// The device's path.
        path: String,
        /// What it answered ("an error", or the version).
        answer: String,
    },
    /// The host's KVM lacks something the VMM needs.
    #[error("this host's KVM lacks {capability}: {consequence}")]
    MissingCapability {
        /// The capability, by its KVM name.
        capability: &'static str,
        /// What it is needed for.
        consequence: &'static str,
    },
    /// An ioctl failed.
    #[error("KVM refused {operation}: {error}")]
    Kvm {
        /// What the VMM was doing.
        operation: &'static str,
        /// The errno.
        error: io::Error,
    },
    /// A host call other than KVM failed.
    #[error("{operation} failed: {error}")]
    Host {
        /// What the VMM was doing.
        operation: &'static str,
        /// The errno.
        error: io::Error,
    },
    /// The run options cannot work.
    #[error("invalid run options: {0}")]
    Options(String),
    /// Guest memory could not be set up or accessed.
    #[error("guest memory: {0}")]
    Memory(String),
    /// The embedded guest image does not load.
    #[error("the guest image does not load: {0}")]
    Image(String),
    /// The guest failed: faulted, panicked, hung, overran its time limit.
    #[error("{0}")]
    Guest(GuestFailures),
    /// The caller asked the run to stop ([`run_until`](crate::run::run_until)) before it ended;
    /// its vCPUs were stopped and the VM torn down.
    #[error("the run was interrupted before it ended")]
    Interrupted,
}

impl VmmError {
    /// Wraps a failed KVM ioctl.
    pub(crate) fn kvm(operation: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> VmmError {
        move |e| VmmError::Kvm { operation, error: io::Error::from_raw_os_error(e.errno()) }
    }

    /// The guest failures, if this is one.
    pub fn guest_failures(&self) -> Option<&[GuestError]> {
        match self {
            VmmError::Guest(GuestFailures(all)) => Some(all),
            _ => None,
        }
    }
}

/// Every vCPU that failed in one run, first the one whose failure stopped the run.
#[derive(Debug)]
pub struct GuestFailures(pub Vec<GuestError>);

impl fmt::Display for GuestFailures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// One vCPU's failure, with where it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("vCPU {vcpu} {failure} (RIP {rip:#x}, ring {ring})")]
pub struct GuestError {
    /// The vCPU.
    pub vcpu: usize,
    /// What happened.
    pub failure: Failure,
    /// The guest RIP: of the faulting instruction for an exception, where the vCPU stopped
    /// otherwise.
    pub rip: u64,
    /// The privilege level the vCPU was at (0 or 3).
    pub ring: u8,
}

/// How a vCPU failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// A CPU exception the guest does not handle.
    Exception {
        /// The vector.
        vector: u8,
        /// The error code (0 if the exception has none).
        error_code: u64,
        /// CR2 (the faulting address of a page fault).
        cr2: u64,
    },
    /// A triple fault (KVM_EXIT_SHUTDOWN): an exception while delivering one.
    TripleFault,
    /// The guest's Rust code panicked.
    Panic(String),
    /// The guest refused its run configuration.
    BadConfig,
    /// No progress for the stall limit.
    Hung {
        /// The stall limit.
        limit: Duration,
        /// Messages it had received.
        progress: u64,
        /// KVM had it halted (in HLT, waiting for an interrupt).
        halted: bool,
        /// Its interrupt flag (an HLT with interrupts off never ends).
        interrupts_enabled: bool,
    },
    /// Still making progress when the run's time limit ran out.
    Overran {
        /// The time limit.
        limit: Duration,
        /// Messages it had received.
        progress: u64,
    },
    /// Another vCPU failed, so this one was stopped (not itself at fault).
    Stopped,
    /// KVM could not run it (internal error, failed entry, an exit the VMM does not serve).
    Exit(String),
    /// It did not leave KVM_RUN when kicked.
    Unresponsive,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Exception { vector, error_code, cr2 } => {
                let (mnemonic, name) = exception_name(*vector);
                write!(f, "raised {mnemonic} ({name}, vector {vector})")?;
                if has_error_code(*vector) {
                    write!(f, ", error code {error_code:#x}")?;
                }
                if *vector == 14 {
                    write!(f, ", address {cr2:#x}")?;
                }
                Ok(())
            }
            Failure::TripleFault => f.write_str("triple-faulted (KVM_EXIT_SHUTDOWN)"),
            Failure::Panic(message) => write!(f, "panicked: {message}"),
            Failure::BadConfig => f.write_str("rejected its run configuration (VMM and guest image disagree?)"),
            Failure::Hung { limit, progress, halted, interrupts_enabled } => {
                write!(f, "hung: no progress for {limit:?} after {progress} messages")?;
                match (halted, interrupts_enabled) {
                    (true, false) => f.write_str(", halted with interrupts off"),
                    (true, true) => f.write_str(", halted waiting for an interrupt that never came"),
                    (false, _) => f.write_str(", running"),
                }
            }
            Failure::Overran { limit, progress } => {
                write!(f, "overran the {limit:?} time limit, still making progress ({progress} messages)")
            }
            Failure::Stopped => f.write_str("was stopped because another vCPU failed"),
            Failure::Exit(what) => f.write_str(what),
            Failure::Unresponsive => f.write_str("did not leave KVM_RUN when kicked"),
        }
    }
}

/// The mnemonic and name of an exception vector.
pub fn exception_name(vector: u8) -> (&'static str, &'static str) {
    match vector {
        0 => ("#DE", "divide error"),
        1 => ("#DB", "debug"),
        2 => ("NMI", "non-maskable interrupt"),
        3 => ("#BP", "breakpoint"),
        4 => ("#OF", "overflow"),
        5 => ("#BR", "bound range exceeded"),
        6 => ("#UD", "invalid opcode"),
        7 => ("#NM", "device not available"),
        8 => ("#DF", "double fault"),
        10 => ("#TS", "invalid TSS"),
        11 => ("#NP", "segment not present"),
        12 => ("#SS", "stack-segment fault"),
        13 => ("#GP", "general protection fault"),
        14 => ("#PF", "page fault"),
        16 => ("#MF", "x87 floating-point error"),
        17 => ("#AC", "alignment check"),
        18 => ("#MC", "machine check"),
        19 => ("#XM", "SIMD floating-point exception"),
        20 => ("#VE", "virtualization exception"),
        21 => ("#CP", "control protection"),
        _ => ("#??", "reserved exception"),
    }
}

fn has_error_code(vector: u8) -> bool {
    matches!(vector, 8 | 10..=14 | 17 | 21 | 29 | 30)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_with_an_errno_say_it_once() {
        let errno = || io::Error::from_raw_os_error(libc::EINVAL);
        for err in [
            VmmError::KvmDenied { error: io::Error::from_raw_os_error(libc::EACCES) },
            VmmError::KvmOpen(errno()),
            VmmError::Kvm { operation: "KVM_ENABLE_CAP(KVM_CAP_HALT_POLL)", error: errno() },
            VmmError::Host { operation: "sched_getaffinity", error: errno() },
        ] {
            let text = err.to_string();
            assert!(text.contains("(os error "), "the cause is in the message: {text}");
            assert!(std::error::Error::source(&err).is_none(), "and not again as a source: {text}");
        }
    }

    #[test]
    fn a_page_fault_names_vcpu_vector_rip_and_address() {
        let e = GuestError {
            vcpu: 1,
            failure: Failure::Exception { vector: 14, error_code: 4, cr2: 0xdead_0000_0000 },
            rip: 0x40_1234,
            ring: 3,
        };
        assert_eq!(
            e.to_string(),
            "vCPU 1 raised #PF (page fault, vector 14), error code 0x4, address 0xdead00000000 (RIP 0x401234, ring 3)"
        );
    }

    #[test]
    fn several_failures_are_listed() {
        let hung = |vcpu, halted| GuestError {
            vcpu,
            failure: Failure::Hung { limit: Duration::from_secs(1), progress: 0, halted, interrupts_enabled: false },
            rip: 0x40_0000,
            ring: 0,
        };
        let text = VmmError::Guest(GuestFailures(vec![hung(0, false), hung(1, true)])).to_string();
        assert!(text.starts_with("vCPU 0 hung: no progress for 1s after 0 messages, running"), "{text}");
        assert!(
            text.contains("; vCPU 1 hung: no progress for 1s after 0 messages, halted with interrupts off"),
            "{text}"
        );
    }
}
