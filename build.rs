//! Link flags for the shared library.
//!
//! `-z nodelete` keeps the library mapped once loaded: GIO unloads modules
//! after querying them, and GObject types registered statically must never
//! point into unmapped code (see `src/module.rs`).
//! The version script exports only the public C symbols.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/symbols.map");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libgiodtlsopenssl.so");
    let map = std::path::Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("src/symbols.map");
    println!("cargo:rustc-cdylib-link-arg=-Wl,--version-script={}", map.display());
}
