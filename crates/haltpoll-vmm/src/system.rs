//! `/dev/kvm`: opening it with an error a user can act on, and checking the capabilities the VMM
//! relies on before creating anything.

use std::ffi::CStr;
use std::io;

use kvm_bindings::{KVM_CAP_BINARY_STATS_FD, KVM_CAP_HALT_POLL};
use kvm_ioctls::{Cap, Kvm};

use crate::VmmError;

/// The only KVM API version there has ever been.
const KVM_API_VERSION: i32 = 12;

/// Opens `/dev/kvm` and checks that it offers what the VMM needs.
///
/// ```no_run
/// let kvm = haltpoll_vmm::system::open()?;
/// # Ok::<(), haltpoll_vmm::VmmError>(())
/// ```
pub fn open() -> Result<Kvm, VmmError> {
    open_path(c"/dev/kvm")
}

/// [`open`] for a KVM device at another path (the errors of opening it speak of `/dev/kvm`; one
/// that is not KVM is named by its path).
pub fn open_path(path: &CStr) -> Result<Kvm, VmmError> {
    let kvm = Kvm::new_with_path(path).map_err(|e| {
        let error = io::Error::from_raw_os_error(e.errno());
        match error.kind() {
            io::ErrorKind::NotFound => VmmError::KvmMissing,
            io::ErrorKind::PermissionDenied => VmmError::KvmDenied { error },
            _ => VmmError::KvmOpen(error),
        }
    })?;
    let version = kvm.get_api_version();
    if version != KVM_API_VERSION {
        let answer = if version < 0 { "an error".to_owned() } else { version.to_string() };
        return Err(VmmError::NotKvm { path: path.to_string_lossy().into_owned(), answer });
    }
    let required: [(bool, &'static str, &'static str); 5] = [
        (kvm.check_extension(Cap::Irqchip), "KVM_CAP_IRQCHIP", "the guest's LAPIC and IPIs live in the kernel"),
        (kvm.check_extension(Cap::ImmediateExit), "KVM_CAP_IMMEDIATE_EXIT", "the watchdog kicks vCPUs out of KVM_RUN"),
        (kvm.check_extension(Cap::GetTscKhz), "KVM_CAP_GET_TSC_KHZ", "guest TSC readings are converted to time"),
        (
            kvm.check_extension_raw(KVM_CAP_BINARY_STATS_FD.into()) > 0,
            "KVM_CAP_BINARY_STATS_FD (Linux 5.14+)",
            "halt exits and polls are read from each vCPU's statistics",
        ),
        (kvm.check_extension(Cap::ExtCpuid), "KVM_CAP_EXT_CPUID", "the guest is shown KVM's CPUID leaves"),
    ];
    for (present, capability, consequence) in required {
        if !present {
            return Err(VmmError::MissingCapability { capability, consequence });
        }
    }
    Ok(kvm)
}

/// Whether the host lets a VM set its own halt-polling window (`KVM_CAP_HALT_POLL`, Linux 5.13+).
pub fn has_per_vm_halt_poll(kvm: &Kvm) -> bool {
    kvm.check_extension_raw(KVM_CAP_HALT_POLL.into()) > 0
}

/// The host's default halt-polling window (KVM's `halt_poll_ns` module parameter), if readable.
/// A VM that does not set its own window uses this one.
pub fn default_halt_poll_ns() -> Option<u64> {
    std::fs::read_to_string("/sys/module/kvm/parameters/halt_poll_ns").ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_device_says_what_to_do() {
        let err = open_path(c"/nonexistent/kvm").unwrap_err();
        assert!(matches!(err, VmmError::KvmMissing));
        assert!(err.to_string().contains("modprobe kvm_amd"), "{err}");
    }

    #[test]
    fn a_device_that_is_not_kvm_is_refused_once_in_words() {
        let err = open_path(c"/dev/null").unwrap_err();
        assert!(matches!(err, VmmError::NotKvm { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            "/dev/null is not a KVM device: it answers KVM_GET_API_VERSION with an error, where KVM answers 12. \
             Check what is at that path (`ls -l /dev/null`: KVM is the character device 10:232)"
        );
        assert!(std::error::Error::source(&err).is_none(), "the message says it all, once");
    }
}
