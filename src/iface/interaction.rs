//! Asking a GTlsInteraction for a client certificate from a DTLS connection.
//!
//! `g_tls_interaction_invoke_request_certificate` insists on a
//! GTlsConnection, which a DTLS connection is not, so we call the
//! interaction's class method ourselves (on the handshaking thread). The
//! interaction sets the certificate with `g_dtls_connection_set_certificate`
//! or the `certificate` property.

use glib::translate::*;

fn class_of(interaction: &gio::TlsInteraction) -> &gio::ffi::GTlsInteractionClass {
    let ptr: *mut gio::ffi::GTlsInteraction = interaction.to_glib_none().0;
    // SAFETY: the instance is a live GTlsInteraction, so its class struct is
    // (at least) a GTlsInteractionClass, alive as long as the type.
    unsafe {
        &*((*(ptr as *mut glib::gobject_ffi::GTypeInstance)).g_class
            as *const gio::ffi::GTlsInteractionClass)
    }
}

/// Maps an interaction result to ours (`Ok(true)`: handled).
///
/// # Safety
/// `error` is NULL or a GError the caller owns.
unsafe fn outcome(
    result: gio::ffi::GTlsInteractionResult,
    error: *mut glib::ffi::GError,
) -> Result<bool, glib::Error> {
    match result {
        gio::ffi::G_TLS_INTERACTION_HANDLED => Ok(true),
        // SAFETY: FAILED comes with an error we now own (or none).
        gio::ffi::G_TLS_INTERACTION_FAILED if !error.is_null() => {
            Err(unsafe { from_glib_full(error) })
        }
        _ => Ok(false),
    }
}

/// Whether the interaction implements the asynchronous request.
pub(crate) fn has_async_request(interaction: &gio::TlsInteraction) -> bool {
    let k = class_of(interaction);
    k.request_certificate_async.is_some() && k.request_certificate_finish.is_some()
}

/// Runs `request_certificate_async`; `done` gets `Ok(true)` when handled.
/// Only call when [`has_async_request`] is true.
pub(crate) fn request_certificate_async<F: FnOnce(Result<bool, glib::Error>) + 'static>(
    interaction: &gio::TlsInteraction,
    connection: &glib::Object,
    cancellable: Option<&gio::Cancellable>,
    done: F,
) {
    unsafe extern "C" fn ready<F: FnOnce(Result<bool, glib::Error>) + 'static>(
        source: *mut glib::gobject_ffi::GObject,
        result: *mut gio::ffi::GAsyncResult,
        data: glib::ffi::gpointer,
    ) {
        // SAFETY: `data` is the box made below, called back exactly once.
        let done = unsafe { Box::from_raw(data as *mut F) };
        // SAFETY: GIO calls back with the interaction as source.
        let interaction: glib::translate::Borrowed<gio::TlsInteraction> =
            unsafe { from_glib_borrow(source as *mut gio::ffi::GTlsInteraction) };
        let finish = class_of(&interaction)
            .request_certificate_finish
            .expect("checked by has_async_request");
        let mut error = std::ptr::null_mut();
        // SAFETY: the result of the matching async call; `error` is ours.
        let r = unsafe {
            outcome(
                finish(interaction.to_glib_none().0, result, &mut error),
                error,
            )
        };
        super::guard("request_certificate_async callback", (), move || done(r));
    }
    let start = class_of(interaction)
        .request_certificate_async
        .expect("checked by has_async_request");
    let data = Box::into_raw(Box::new(done)) as glib::ffi::gpointer;
    // SAFETY: valid objects for the call; the connection is passed where GIO
    // declares a GTlsConnection, as in the sync case; `data` is freed by
    // `ready`, which GIO calls exactly once.
    unsafe {
        start(
            interaction.to_glib_none().0,
            ToGlibPtr::<*mut glib::gobject_ffi::GObject>::to_glib_none(connection).0
                as *mut gio::ffi::GTlsConnection,
            gio::ffi::G_TLS_CERTIFICATE_REQUEST_NONE,
            cancellable.to_glib_none().0,
            Some(ready::<F>),
            data,
        )
    };
}

/// Runs `request_certificate`; `Ok(true)` when the interaction handled it.
pub(crate) fn request_certificate(
    interaction: &gio::TlsInteraction,
    connection: &glib::Object,
    cancellable: Option<&gio::Cancellable>,
) -> Result<bool, glib::Error> {
    let interaction_ptr: *mut gio::ffi::GTlsInteraction = interaction.to_glib_none().0;
    let Some(func) = class_of(interaction).request_certificate else {
        return Ok(false);
    };
    let mut error = std::ptr::null_mut();
    // SAFETY: valid objects for the call; the connection is passed where
    // GIO declares a GTlsConnection, which implementations only hand back
    // to GObject APIs (as glib-networking's DTLS connections do).
    let result = unsafe {
        func(
            interaction_ptr,
            ToGlibPtr::<*mut glib::gobject_ffi::GObject>::to_glib_none(connection).0
                as *mut gio::ffi::GTlsConnection,
            gio::ffi::G_TLS_CERTIFICATE_REQUEST_NONE,
            cancellable.to_glib_none().0,
            &mut error,
        )
    };
    // SAFETY: `error` is what the call set, ours now.
    unsafe { outcome(result, error) }
}
