//! Vtables that gio-rs cannot subclass: one file per GIO class or interface.
//!
//! Each file defines a `…Impl` trait with safe Rust signatures, the
//! `extern "C"` trampolines GIO calls, and an `init` function that fills the
//! vtable. The concrete `IsSubclassable`/`IsImplementable` impls live next to
//! the types (orphan rules forbid a generic impl here).
//!
//! Every trampoline runs its body under [`guard`], so a Rust panic never
//! unwinds into C: it is logged as a critical and a safe value is returned.

pub(crate) mod datagram_based;
pub(crate) mod dtls_connection;
pub(crate) mod interaction;
pub(crate) mod task;
pub(crate) mod tls_backend;
pub(crate) mod tls_certificate;
pub(crate) mod tls_database;
pub(crate) mod values;

use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs `f`, turning a panic into a critical log message and `fallback`;
/// in a second copy of the library (`second_copy.rs`), returns `fallback`
/// without running it.
pub(crate) fn guard<R>(what: &str, fallback: R, f: impl FnOnce() -> R) -> R {
    guard_or(what, || fallback, f)
}

/// [`guard`] with a fallback made only when needed (e.g. a GError: making
/// one on every call would cost an allocation per datagram).
pub(crate) fn guard_or<R>(what: &str, fallback: impl FnOnce() -> R, f: impl FnOnce() -> R) -> R {
    if crate::second_copy::declined() {
        return fallback();
    }
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            glib::g_critical!(crate::LOG_DOMAIN, "internal error in {}: {}", what, msg);
            fallback()
        }
    }
}

/// Stores `result`'s error in a C `GError **` and returns the value or `fallback`.
///
/// # Safety
/// `error` is NULL or a valid `GError **` pointing at NULL, as GIO guarantees.
pub(crate) unsafe fn set_error<T>(
    result: Result<T, glib::Error>,
    error: *mut *mut glib::ffi::GError,
    fallback: T,
) -> T {
    use glib::translate::IntoGlibPtr;
    match result {
        Ok(v) => v,
        Err(e) => {
            if !error.is_null() {
                // SAFETY: caller guarantees `error` is a valid out-pointer;
                // ownership of the GError passes to the caller.
                unsafe { *error = e.into_glib_ptr() };
            }
            fallback
        }
    }
}

/// Borrows the cancellable argument GIO or a C caller passed.
///
/// # Safety
/// `c` is NULL or a valid GCancellable for the duration of the call.
pub(crate) unsafe fn cancellable(c: *mut gio::ffi::GCancellable) -> Option<gio::Cancellable> {
    // SAFETY: per the contract.
    unsafe { glib::translate::from_glib_none(c) }
}

/// The error a vfunc reports when its implementation panicked.
pub(crate) fn internal_error() -> glib::Error {
    glib::Error::new(
        gio::IOErrorEnum::Failed,
        "internal error in the dtls-openssl backend",
    )
}
