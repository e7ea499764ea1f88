//! The guest image: built by this crate's build script, embedded here, loaded by linux-loader's
//! ELF loader into the image window of guest memory.

use std::io::Cursor;

use haltpoll_abi::layout;
use linux_loader::loader::{Elf, KernelLoader};
use vm_memory::GuestAddress;

use crate::VmmError;
use crate::memory::GuestRam;

/// The guest ELF (haltpoll-guest for x86_64-unknown-none), built with this crate.
pub static GUEST_IMAGE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/haltpoll-guest.elf"));

/// Loads `image`'s PT_LOAD segments at their physical addresses and returns the entry point.
/// Every segment must lie in the image window ([`layout::IMAGE`] to [`layout::IMAGE_END`]).
pub fn load(ram: &GuestRam, image: &[u8]) -> Result<u64, VmmError> {
    let loaded = Elf::load(ram.image_window(), None, &mut Cursor::new(image), Some(GuestAddress(layout::IMAGE)))
        .map_err(|e| {
            VmmError::Image(format!(
                "{e} (every segment must be linked between {:#x} and {:#x}, as crates/haltpoll-guest/link.ld does)",
                layout::IMAGE,
                layout::IMAGE_END
            ))
        })?;
    if loaded.kernel_end > layout::IMAGE_END {
        return Err(VmmError::Image(format!(
            "the image ends at {:#x}, past the end of its window at {:#x}",
            loaded.kernel_end,
            layout::IMAGE_END
        )));
    }
    Ok(loaded.kernel_load.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_guest_loads_into_its_window() {
        let ram = GuestRam::new().unwrap();
        let entry = load(&ram, GUEST_IMAGE).unwrap();
        assert!((layout::IMAGE..layout::IMAGE_END).contains(&entry), "{entry:#x}");
        let first: [u8; 4] = ram.read(entry).unwrap();
        assert_ne!(first, [0; 4], "code at the entry point");
    }

    #[test]
    fn garbage_and_misplaced_images_are_refused() {
        let ram = GuestRam::new().unwrap();
        let err = load(&ram, b"not an elf").unwrap_err().to_string();
        assert!(err.starts_with("the guest image does not load"), "{err}");
        // The real image with its first segment moved below the window.
        let mut image = GUEST_IMAGE.to_vec();
        let phoff = u64::from_le_bytes(image[0x20..0x28].try_into().unwrap()) as usize;
        let phentsize = u16::from_le_bytes(image[0x36..0x38].try_into().unwrap()) as usize;
        let phnum = u16::from_le_bytes(image[0x38..0x3A].try_into().unwrap()) as usize;
        let load_header = (0..phnum).map(|i| phoff + i * phentsize).find(|&h| image[h] == 1).unwrap();
        image[load_header + 0x18..load_header + 0x20].copy_from_slice(&0x1000u64.to_le_bytes()); // p_paddr
        let err = load(&ram, &image).unwrap_err().to_string();
        assert!(err.contains("must be linked between"), "{err}");
    }
}
