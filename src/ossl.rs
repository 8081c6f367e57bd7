//! The few OpenSSL calls the `openssl` crate does not wrap, behind safe functions.

use std::cell::Cell;
use std::ffi::c_int;

use foreign_types::ForeignTypeRef;
use openssl::x509::verify::X509VerifyParamRef;
use openssl::x509::X509StoreContextRef;
use openssl_sys::{X509_STORE_CTX, X509_VERIFY_PARAM};

extern "C" {
    fn X509_STORE_CTX_get0_param(ctx: *mut X509_STORE_CTX) -> *mut X509_VERIFY_PARAM;
    fn X509_STORE_CTX_set_verify_cb(
        ctx: *mut X509_STORE_CTX,
        cb: Option<unsafe extern "C" fn(c_int, *mut X509_STORE_CTX) -> c_int>,
    );
}

/// The verification parameters of an initialised store context.
pub(crate) fn verify_param(ctx: &mut X509StoreContextRef) -> &mut X509VerifyParamRef {
    // SAFETY: an initialised X509_STORE_CTX always owns a param object, which
    // lives as long as the context; the &mut borrow of `ctx` keeps it unique.
    unsafe { X509VerifyParamRef::from_ptr_mut(X509_STORE_CTX_get0_param(ctx.as_ptr())) }
}

thread_local! {
    static VERIFY_ERRORS: Cell<Option<Vec<(c_int, c_int)>>> = const { Cell::new(None) };
}

unsafe extern "C" fn record_error(ok: c_int, ctx: *mut X509_STORE_CTX) -> c_int {
    if ok == 0 {
        // SAFETY: OpenSSL passes the context being verified.
        let (err, depth) = unsafe {
            (
                openssl_sys::X509_STORE_CTX_get_error(ctx),
                openssl_sys::X509_STORE_CTX_get_error_depth(ctx),
            )
        };
        VERIFY_ERRORS.with(|cell| {
            let mut v = cell.take().unwrap_or_default();
            v.push((err, depth));
            cell.set(Some(v));
        });
    }
    // Keep going: we want every problem, not the first one.
    1
}

/// Runs `X509_verify_cert` on `ctx`, continuing past errors, and returns every
/// `X509_V_ERR_*` code met on the way with the chain depth it concerns
/// (empty when the chain is fine).
pub(crate) fn verify_collecting_errors(ctx: &mut X509StoreContextRef) -> Vec<(c_int, c_int)> {
    // SAFETY: `ctx` is initialised; the callback only reads the context.
    unsafe { X509_STORE_CTX_set_verify_cb(ctx.as_ptr(), Some(record_error)) };
    VERIFY_ERRORS.with(|cell| cell.set(Some(Vec::new())));
    let ok = ctx.verify_cert();
    let mut errors = VERIFY_ERRORS.with(|cell| cell.take()).unwrap_or_default();
    if errors.is_empty() && !matches!(ok, Ok(true)) {
        // Failed without calling the callback (e.g. out of memory).
        errors.push((ctx.error().as_raw(), ctx.error_depth() as c_int));
    }
    errors
}

extern "C" {
    fn X509_STORE_add_crl(
        store: *mut openssl_sys::X509_STORE,
        crl: *mut openssl_sys::X509_CRL,
    ) -> c_int;
}

/// Adds `crl` to the store being built (the store takes its own reference).
pub(crate) fn store_add_crl(
    builder: &mut openssl::x509::store::X509StoreBuilderRef,
    crl: &openssl::x509::X509CrlRef,
) -> Result<(), openssl::error::ErrorStack> {
    // SAFETY: both pointers are valid for the call; X509_STORE_add_crl
    // takes its own reference to the CRL (up_ref) and does not keep ours.
    let ok = unsafe { X509_STORE_add_crl(builder.as_ptr(), crl.as_ptr()) };
    if ok == 1 {
        Ok(())
    } else {
        Err(openssl::error::ErrorStack::get())
    }
}

/// Whether `cert` has an extension of type `nid`, whether or not it parses.
pub(crate) fn has_extension(cert: &openssl::x509::X509Ref, nid: openssl::nid::Nid) -> bool {
    // SAFETY: `cert` is a valid X509 for the call; X509_get_ext_by_NID only
    // reads its extension list.
    unsafe { openssl_sys::X509_get_ext_by_NID(cert.as_ptr(), nid.as_raw(), -1) >= 0 }
}
