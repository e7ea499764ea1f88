//! Links the program (only when building for bare metal) at QEMU virt's RAM (`link.ld`), as a
//! plain static executable that QEMU's ELF loader places as it is.

fn main() {
    println!("cargo::rerun-if-changed=link.ld");
    let Ok(dir) = std::env::var("CARGO_MANIFEST_DIR") else {
        println!("cargo::error=CARGO_MANIFEST_DIR is not set: run this build script through cargo");
        return;
    };
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        println!("cargo::rustc-link-arg-bins=-T{dir}/link.ld");
        println!("cargo::rustc-link-arg-bins=--no-pie");
    }
}
