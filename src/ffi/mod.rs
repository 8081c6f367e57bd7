//! The C API declared in `include/dtls-openssl.h`.
//!
//! Every entry point checks its arguments like GLib's
//! `g_return_val_if_fail` (a CRITICAL naming the failed check, and a safe
//! return value) and runs its body under a panic guard.

#[macro_use]
mod macros;
mod connection;
mod server;
mod types;
