//! Guest RAM: anonymous mappings through vm-memory, registered with KVM, and typed access to the
//! ABI structures in it.
//!
//! RAM is three regions: below the image, the image window ([`layout::IMAGE`] to
//! [`layout::IMAGE_END`]), and above it. The loader writes the ELF through a view that holds
//! only the image window, so a segment linked anywhere else fails to load instead of silently
//! overwriting page tables or the run configuration.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use haltpoll_abi::layout;
use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::VmFd;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion, GuestRegionMmap};
use zerocopy::{FromBytes, Immutable, IntoBytes};

use crate::VmmError;

/// The VM's memory.
#[derive(Debug)]
pub struct GuestRam {
    all: GuestMemoryMmap,
    image: GuestMemoryMmap,
}

fn memory_error(e: impl std::fmt::Display) -> VmmError {
    VmmError::Memory(e.to_string())
}

impl GuestRam {
    /// Maps [`layout::MEMORY_SIZE`] bytes of zeroed anonymous memory.
    pub fn new() -> Result<GuestRam, VmmError> {
        let region = |start: u64, end: u64| -> Result<Arc<GuestRegionMmap>, VmmError> {
            GuestRegionMmap::from_range(GuestAddress(start), (end - start) as usize, None)
                .map(Arc::new)
                .map_err(memory_error)
        };
        let low = region(0, layout::IMAGE)?;
        let image = region(layout::IMAGE, layout::IMAGE_END)?;
        let high = region(layout::IMAGE_END, layout::MEMORY_SIZE)?;
        Ok(GuestRam {
            all: GuestMemoryMmap::from_arc_regions(vec![low, image.clone(), high]).map_err(memory_error)?,
            image: GuestMemoryMmap::from_arc_regions(vec![image]).map_err(memory_error)?,
        })
    }

    /// Registers every region with `vm` as a memory slot.
    ///
    /// # Safety
    /// `self` must outlive every use of `vm` that can touch guest memory (KVM keeps pointers to
    /// the mappings): the VM file and every vCPU file of that VM, which keeps the VM alive.
    /// [`crate::vm::Vm`] drops its file first, and each [`crate::vm::Vcpu`] holds the memory.
    pub unsafe fn register(&self, vm: &VmFd) -> Result<(), VmmError> {
        for (slot, region) in self.all.iter().enumerate() {
            let host = region.as_ptr();
            let slot_region = kvm_userspace_memory_region {
                slot: slot as u32,
                guest_phys_addr: region.start_addr().0,
                memory_size: region.len(),
                userspace_addr: host as u64,
                flags: 0,
            };
            // SAFETY: the region is a live anonymous mapping of `memory_size` bytes owned by
            // `self`, which the caller guarantees outlives the VM's use of it; slots do not
            // overlap (vm-memory checked the regions when building the collection).
            unsafe { vm.set_user_memory_region(slot_region) }.map_err(VmmError::kvm("KVM_SET_USER_MEMORY_REGION"))?;
        }
        Ok(())
    }

    /// Only the image window: where the loader may write.
    pub fn image_window(&self) -> &GuestMemoryMmap {
        &self.image
    }

    /// Writes `value` at `addr`.
    pub fn write<T: IntoBytes + Immutable + ?Sized>(&self, addr: u64, value: &T) -> Result<(), VmmError> {
        self.all.write_slice(value.as_bytes(), GuestAddress(addr)).map_err(memory_error)
    }

    /// Reads a `T` at `addr`.
    pub fn read<T: FromBytes>(&self, addr: u64) -> Result<T, VmmError> {
        let mut bytes = vec![0u8; size_of::<T>()];
        self.all.read_slice(&mut bytes, GuestAddress(addr)).map_err(memory_error)?;
        T::read_from_bytes(&bytes).map_err(|_| VmmError::Memory(format!("cannot read a value at {addr:#x}")))
    }

    /// Reads `count` consecutive `T`s at `addr`.
    pub fn read_vec<T: FromBytes>(&self, addr: u64, count: usize) -> Result<Vec<T>, VmmError> {
        let mut bytes = vec![0u8; count * size_of::<T>()];
        self.all.read_slice(&mut bytes, GuestAddress(addr)).map_err(memory_error)?;
        Ok(bytes.chunks_exact(size_of::<T>()).map(|chunk| T::read_from_bytes(chunk).expect("sized chunk")).collect())
    }

    /// Loads a `u64` the guest updates while it runs (atomically, as the guest stores it).
    pub fn load_u64(&self, addr: u64) -> Result<u64, VmmError> {
        self.all.load(GuestAddress(addr), Ordering::Relaxed).map_err(memory_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use haltpoll_abi::{IdlePolicy, RunConfig, Workload};

    #[test]
    fn typed_access_round_trips_and_regions_join_up() {
        let ram = GuestRam::new().unwrap();
        let cfg = RunConfig { round_trips: 7, ..RunConfig::new(2, Workload::PingPong, IdlePolicy::Busy) };
        ram.write(layout::CONFIG, &cfg).unwrap();
        assert_eq!(ram.read::<RunConfig>(layout::CONFIG).unwrap(), cfg);
        // A value across the boundary of two regions.
        let addr = layout::IMAGE - 4;
        ram.write(addr, &0x1122_3344_5566_7788u64).unwrap();
        assert_eq!(ram.read::<u64>(addr).unwrap(), 0x1122_3344_5566_7788);
        assert_eq!(ram.read_vec::<u32>(addr, 2).unwrap(), vec![0x5566_7788, 0x1122_3344]);
        assert!(ram.read::<u64>(layout::MEMORY_SIZE).is_err());
        assert!(ram.image_window().write_slice(&[1], GuestAddress(layout::IMAGE - 1)).is_err());
    }
}
