//! `GTlsBackendInterface`.

use gio::ffi::{GTlsBackend, GTlsBackendInterface, GTlsDatabase};
use glib::ffi::gboolean;
use glib::subclass::prelude::*;
use glib::translate::*;

/// What a TLS backend provides to GIO.
pub(crate) trait TlsBackendImpl: ObjectSubclass {
    fn supports_tls(&self) -> bool;
    fn supports_dtls(&self) -> bool;
    fn default_database(&self) -> gio::TlsDatabase;
    fn certificate_type() -> glib::Type;
    fn client_connection_type() -> glib::Type;
    fn server_connection_type() -> glib::Type;
    fn file_database_type() -> glib::Type;
    fn dtls_client_connection_type() -> glib::Type;
    fn dtls_server_connection_type() -> glib::Type;
}

fn imp<'a, T: TlsBackendImpl>(backend: *mut GTlsBackend) -> &'a T {
    // SAFETY: GIO calls these vfuncs only on instances of the type whose
    // interface we initialised, i.e. instances of `T::Type`.
    unsafe { (*(backend as *const T::Instance)).imp() }
}

unsafe extern "C" fn supports_tls<T: TlsBackendImpl>(b: *mut GTlsBackend) -> gboolean {
    super::guard("supports_tls", false, || imp::<T>(b).supports_tls()).into_glib()
}

unsafe extern "C" fn supports_dtls<T: TlsBackendImpl>(b: *mut GTlsBackend) -> gboolean {
    super::guard("supports_dtls", false, || imp::<T>(b).supports_dtls()).into_glib()
}

unsafe extern "C" fn default_database<T: TlsBackendImpl>(b: *mut GTlsBackend) -> *mut GTlsDatabase {
    super::guard("get_default_database", std::ptr::null_mut(), || {
        imp::<T>(b).default_database().into_glib_ptr()
    })
}

macro_rules! type_getter {
    ($name:ident, $method:ident) => {
        unsafe extern "C" fn $name<T: TlsBackendImpl>() -> glib::ffi::GType {
            super::guard(stringify!($method), glib::Type::INVALID, T::$method).into_glib()
        }
    };
}
type_getter!(certificate_type, certificate_type);
type_getter!(client_connection_type, client_connection_type);
type_getter!(server_connection_type, server_connection_type);
type_getter!(file_database_type, file_database_type);
type_getter!(dtls_client_connection_type, dtls_client_connection_type);
type_getter!(dtls_server_connection_type, dtls_server_connection_type);

/// Fills GIO's vtable with `T`'s implementation.
pub(crate) fn init<T: TlsBackendImpl>(iface: &mut GTlsBackendInterface) {
    iface.supports_tls = Some(supports_tls::<T>);
    iface.supports_dtls = Some(supports_dtls::<T>);
    iface.get_default_database = Some(default_database::<T>);
    iface.get_certificate_type = Some(certificate_type::<T>);
    iface.get_client_connection_type = Some(client_connection_type::<T>);
    iface.get_server_connection_type = Some(server_connection_type::<T>);
    iface.get_file_database_type = Some(file_database_type::<T>);
    iface.get_dtls_client_connection_type = Some(dtls_client_connection_type::<T>);
    iface.get_dtls_server_connection_type = Some(dtls_server_connection_type::<T>);
}
