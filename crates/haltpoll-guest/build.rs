//! Links the guest image (only when building for bare metal): at the address the ABI's memory
//! layout reserves (`link.ld`), as a plain static executable. The target's default is a static
//! PIE whose absolute relocations a loader would have to apply; the VMM copies segments only.

fn main() {
    println!("cargo:rerun-if-changed=link.ld");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
        println!("cargo:rustc-link-arg-bins=-T{dir}/link.ld");
        println!("cargo:rustc-link-arg-bins=--no-pie");
    }
}
