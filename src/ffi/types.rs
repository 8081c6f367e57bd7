//! `*_get_type()` functions and backend registration. They register the
//! types on call, so g-ir-scanner and programs linking the library directly
//! work without GIO having loaded the module.

use glib::prelude::*;
use glib::translate::IntoGlib;

macro_rules! get_type {
    ($name:ident, $ty:ty) => {
        #[unsafe(no_mangle)]
        pub extern "C" fn $name() -> glib::ffi::GType {
            crate::iface::guard(stringify!($name), glib::Type::INVALID, <$ty>::static_type)
                .into_glib()
        }
    };
}

get_type!(dtls_openssl_backend_get_type, crate::Backend);
get_type!(dtls_openssl_certificate_get_type, crate::Certificate);
get_type!(
    dtls_openssl_connection_get_type,
    crate::connection::Connection
);
get_type!(
    dtls_openssl_client_connection_get_type,
    crate::ClientConnection
);
get_type!(
    dtls_openssl_server_connection_get_type,
    crate::ServerConnection
);
get_type!(dtls_openssl_server_get_type, crate::Server);

/// Registers the `dtls-openssl` TLS backend with GIO for a program that
/// links the library directly (no module directory needed).
#[unsafe(no_mangle)]
pub extern "C" fn dtls_openssl_register_backend() {
    crate::iface::guard("dtls_openssl_register_backend", (), crate::module::register);
}
