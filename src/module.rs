//! The GIO module entry points.
//!
//! Types are registered statically, once per process, and the library is
//! linked with `-z nodelete` (build.rs) so it stays mapped after GIO's
//! `g_io_module_unload`: GObject types cannot be unregistered, and the same
//! file is also linked directly by C programs and loaded through the
//! typelib. Dynamic types on the GIOModule were measured to crash when GIO
//! maps the module again at another address. `g_io_module_load` may run
//! several times; registration is idempotent and unload tears nothing down.

use std::ffi::c_char;

use gio::prelude::*;

use crate::backend::Backend;

/// The extension point we implement and our name on it.
const EXTENSION_POINT: &str = "gio-tls-backend";
const EXTENSION_NAME: &str = "dtls-openssl";
/// Below glib-networking's GnuTLS (0) and OpenSSL (-1) modules: installing us
/// never replaces a user's default; `GIO_USE_TLS=dtls-openssl` picks us.
const PRIORITY: i32 = -10;

/// Registers the types and the `dtls-openssl` TLS backend extension.
/// Safe to call any number of times, from any thread.
pub fn register() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let ty = Backend::static_type();
        // GIO registers its extension points before loading modules; a
        // program linking us directly may not have, so make sure.
        let _ = gio::TlsBackend::static_type();
        if gio::IOExtensionPoint::lookup(EXTENSION_POINT).is_none() {
            let _ = gio::IOExtensionPoint::builder(EXTENSION_POINT)
                .required_type(gio::TlsBackend::static_type())
                .build();
        }
        gio::IOExtensionPoint::implement(EXTENSION_POINT, ty, EXTENSION_NAME, PRIORITY);
        crate::debug!("registered {} as {}", ty.name(), EXTENSION_NAME);
    });
}

/// Called by GIO when it loads the module.
#[unsafe(no_mangle)]
pub extern "C" fn g_io_module_load(_module: *mut gio::ffi::GIOModule) {
    crate::iface::guard("g_io_module_load", (), register);
}

/// Called by GIO before it unmaps the module; `-z nodelete` keeps it mapped.
#[unsafe(no_mangle)]
pub extern "C" fn g_io_module_unload(_module: *mut gio::ffi::GIOModule) {}

/// The extension points this module implements, for `gio-querymodules`.
#[unsafe(no_mangle)]
pub extern "C" fn g_io_module_query() -> *mut *mut c_char {
    crate::iface::guard("g_io_module_query", std::ptr::null_mut(), || {
        use glib::translate::ToGlibPtr;
        let names: glib::StrV = glib::StrV::from([EXTENSION_POINT]);
        names.to_glib_full()
    })
}
