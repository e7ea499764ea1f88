//! Links the guest image (only when building for bare metal): at the address the ABI's memory
//! layout reserves (`link.ld`), as a plain static executable. The target's default is a static
//! PIE whose absolute relocations a loader would have to apply; the VMM copies segments only.
//!
//! For every build, it also tells the build scripts of the crates that depend on this one where
//! these sources are (`links = "haltpoll-guest"`: they read `DEP_HALTPOLL_GUEST_ROOT`), so that
//! haltpoll-vmm builds the image from this very package, in a workspace or packaged.

fn main() {
    println!("cargo::rerun-if-changed=link.ld");
    let Ok(dir) = std::env::var("CARGO_MANIFEST_DIR") else {
        println!("cargo::error=CARGO_MANIFEST_DIR is not set: run this build script through cargo");
        return;
    };
    println!("cargo::metadata=root={dir}");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        println!("cargo::rustc-link-arg-bins=-T{dir}/link.ld");
        println!("cargo::rustc-link-arg-bins=--no-pie");
    }
}
