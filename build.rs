//! Link flags for the shared library.
//!
//! `-z nodelete` keeps the library mapped once loaded: GIO unloads modules
//! after querying them, and GObject types registered statically must never
//! point into unmapped code (see `src/module.rs`). rustc already exports only
//! the `#[no_mangle]` C entry points of a cdylib.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libgiodtlsopenssl.so");
}
