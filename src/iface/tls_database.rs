//! `GTlsDatabaseClass`: the synchronous vfuncs.
//!
//! GTlsDatabase's own class supplies the `*_async`/`*_finish` variants, which
//! run these in a GTask thread, so subclasses only implement the sync ones.

use std::ffi::c_char;

use gio::ffi::GCancellable;
use gio::ffi::{
    GSocketConnectable, GTlsCertificate, GTlsCertificateFlags, GTlsDatabase, GTlsDatabaseClass,
    GTlsDatabaseLookupFlags, GTlsDatabaseVerifyFlags, GTlsInteraction,
};
use glib::ffi::{GByteArray, GError, GList};
use glib::subclass::prelude::*;
use glib::translate::*;

pub(crate) trait TlsDatabaseImpl: ObjectSubclass {
    fn verify_chain(
        &self,
        chain: &gio::TlsCertificate,
        purpose: &str,
        identity: Option<&gio::SocketConnectable>,
        cancellable: Option<&gio::Cancellable>,
    ) -> Result<gio::TlsCertificateFlags, glib::Error>;
    fn create_certificate_handle(&self, cert: &gio::TlsCertificate) -> Option<String>;
    fn lookup_certificate_for_handle(
        &self,
        handle: &str,
        cancellable: Option<&gio::Cancellable>,
    ) -> Result<Option<gio::TlsCertificate>, glib::Error>;
    fn lookup_certificate_issuer(
        &self,
        cert: &gio::TlsCertificate,
        cancellable: Option<&gio::Cancellable>,
    ) -> Result<Option<gio::TlsCertificate>, glib::Error>;
    fn lookup_certificates_issued_by(
        &self,
        issuer_raw_dn: &[u8],
        cancellable: Option<&gio::Cancellable>,
    ) -> Result<Vec<gio::TlsCertificate>, glib::Error>;
}

fn imp<'a, T: TlsDatabaseImpl>(db: *mut GTlsDatabase) -> &'a T {
    // SAFETY: GIO calls these vfuncs only on instances of `T::Type`.
    unsafe { (*(db as *const T::Instance)).imp() }
}

/// Borrows an object argument GIO passes in (NULL allowed).
///
/// # Safety
/// `ptr` is NULL or a valid instance of `O` for the duration of the call.
unsafe fn borrow<O: glib::object::ObjectType + FromGlibPtrNone<*mut O::GlibType>>(
    ptr: *mut O::GlibType,
) -> Option<O> {
    // SAFETY: per the function contract.
    unsafe { Option::<O>::from_glib_none(ptr) }
}

use super::internal_error;

unsafe extern "C" fn verify_chain<T: TlsDatabaseImpl>(
    db: *mut GTlsDatabase,
    chain: *mut GTlsCertificate,
    purpose: *const c_char,
    identity: *mut GSocketConnectable,
    _interaction: *mut GTlsInteraction,
    _flags: GTlsDatabaseVerifyFlags,
    cancellable: *mut GCancellable,
    error: *mut *mut GError,
) -> GTlsCertificateFlags {
    let result = super::guard_or(
        "verify_chain",
        || Err(internal_error()),
        || {
            // SAFETY: GIO checked chain and purpose are non-NULL (g_return_val_if_fail
            // in g_tls_database_verify_chain); the rest are NULL or valid.
            let (chain, purpose, identity, cancellable) = unsafe {
                (
                    borrow::<gio::TlsCertificate>(chain),
                    glib::GStr::from_ptr_checked(purpose).map(|s| s.to_string()),
                    borrow::<gio::SocketConnectable>(identity),
                    borrow::<gio::Cancellable>(cancellable),
                )
            };
            let chain = chain.ok_or_else(internal_error)?;
            let purpose = purpose.unwrap_or_default();
            imp::<T>(db).verify_chain(&chain, &purpose, identity.as_ref(), cancellable.as_ref())
        },
    );
    // SAFETY: `error` comes from GIO and is NULL or points at NULL.
    unsafe { super::set_error(result, error, gio::TlsCertificateFlags::GENERIC_ERROR) }.into_glib()
}

unsafe extern "C" fn create_certificate_handle<T: TlsDatabaseImpl>(
    db: *mut GTlsDatabase,
    cert: *mut GTlsCertificate,
) -> *mut c_char {
    super::guard("create_certificate_handle", None, || {
        // SAFETY: GIO passes a valid certificate.
        let cert = unsafe { borrow::<gio::TlsCertificate>(cert) }?;
        imp::<T>(db).create_certificate_handle(&cert)
    })
    .to_glib_full()
}

unsafe extern "C" fn lookup_certificate_for_handle<T: TlsDatabaseImpl>(
    db: *mut GTlsDatabase,
    handle: *const c_char,
    _interaction: *mut GTlsInteraction,
    _flags: GTlsDatabaseLookupFlags,
    cancellable: *mut GCancellable,
    error: *mut *mut GError,
) -> *mut GTlsCertificate {
    let result = super::guard_or(
        "lookup_certificate_for_handle",
        || Err(internal_error()),
        || {
            // SAFETY: GIO checked `handle` is non-NULL; cancellable is NULL or valid.
            let (handle, cancellable) = unsafe {
                (
                    glib::GStr::from_ptr_checked(handle).map(|s| s.to_string()),
                    borrow::<gio::Cancellable>(cancellable),
                )
            };
            let Some(handle) = handle else {
                return Ok(None);
            };
            imp::<T>(db).lookup_certificate_for_handle(&handle, cancellable.as_ref())
        },
    );
    // SAFETY: `error` comes from GIO.
    unsafe { super::set_error(result, error, None) }.into_glib_ptr()
}

unsafe extern "C" fn lookup_certificate_issuer<T: TlsDatabaseImpl>(
    db: *mut GTlsDatabase,
    cert: *mut GTlsCertificate,
    _interaction: *mut GTlsInteraction,
    _flags: GTlsDatabaseLookupFlags,
    cancellable: *mut GCancellable,
    error: *mut *mut GError,
) -> *mut GTlsCertificate {
    let result = super::guard_or(
        "lookup_certificate_issuer",
        || Err(internal_error()),
        || {
            // SAFETY: GIO checked `cert` is a certificate; cancellable is NULL or valid.
            let (cert, cancellable) = unsafe {
                (
                    borrow::<gio::TlsCertificate>(cert),
                    borrow::<gio::Cancellable>(cancellable),
                )
            };
            let cert = cert.ok_or_else(internal_error)?;
            imp::<T>(db).lookup_certificate_issuer(&cert, cancellable.as_ref())
        },
    );
    // SAFETY: `error` comes from GIO.
    unsafe { super::set_error(result, error, None) }.into_glib_ptr()
}

unsafe extern "C" fn lookup_certificates_issued_by<T: TlsDatabaseImpl>(
    db: *mut GTlsDatabase,
    issuer_raw_dn: *mut GByteArray,
    _interaction: *mut GTlsInteraction,
    _flags: GTlsDatabaseLookupFlags,
    cancellable: *mut GCancellable,
    error: *mut *mut GError,
) -> *mut GList {
    let result = super::guard_or(
        "lookup_certificates_issued_by",
        || Err(internal_error()),
        || {
            // SAFETY: GIO checked `issuer_raw_dn` is non-NULL; its data is valid
            // for `len` bytes during the call.
            let (dn, cancellable) = unsafe {
                let dn = &*issuer_raw_dn;
                let bytes = if dn.len == 0 || dn.data.is_null() {
                    Vec::new()
                } else {
                    std::slice::from_raw_parts(dn.data, dn.len as usize).to_vec()
                };
                (bytes, borrow::<gio::Cancellable>(cancellable))
            };
            imp::<T>(db).lookup_certificates_issued_by(&dn, cancellable.as_ref())
        },
    );
    // SAFETY: `error` comes from GIO.
    let list = unsafe { super::set_error(result, error, Vec::new()) };
    // Transfer full: a GList of owned references.
    let mut out: *mut GList = std::ptr::null_mut();
    for cert in list.into_iter().rev() {
        // SAFETY: prepending an owned reference to a list we own.
        out = unsafe {
            glib::ffi::g_list_prepend(
                out,
                IntoGlibPtr::<*mut GTlsCertificate>::into_glib_ptr(cert) as glib::ffi::gpointer,
            )
        };
    }
    out
}

/// Fills GIO's class structure with `T`'s implementation.
pub(crate) fn init<T: TlsDatabaseImpl>(class: &mut GTlsDatabaseClass) {
    class.verify_chain = Some(verify_chain::<T>);
    class.create_certificate_handle = Some(create_certificate_handle::<T>);
    class.lookup_certificate_for_handle = Some(lookup_certificate_for_handle::<T>);
    class.lookup_certificate_issuer = Some(lookup_certificate_issuer::<T>);
    class.lookup_certificates_issued_by = Some(lookup_certificates_issued_by::<T>);
}
