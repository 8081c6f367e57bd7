//! Asking a GTlsInteraction for a client certificate from a DTLS connection.
//!
//! `g_tls_interaction_invoke_request_certificate` insists on a
//! GTlsConnection, which a DTLS connection is not, so we call the
//! interaction's class method ourselves (on the handshaking thread). The
//! interaction sets the certificate with `g_dtls_connection_set_certificate`
//! or the `certificate` property.

use glib::translate::*;

/// Runs `request_certificate`; `Ok(true)` when the interaction handled it.
pub(crate) fn request_certificate(
    interaction: &gio::TlsInteraction,
    connection: &glib::Object,
    cancellable: Option<&gio::Cancellable>,
) -> Result<bool, glib::Error> {
    let interaction_ptr: *mut gio::ffi::GTlsInteraction = interaction.to_glib_none().0;
    // SAFETY: the instance is a live GTlsInteraction, so its class struct
    // is (at least) a GTlsInteractionClass.
    let klass = unsafe { &*((*(interaction_ptr as *mut glib::gobject_ffi::GTypeInstance)).g_class as *const gio::ffi::GTlsInteractionClass) };
    let Some(func) = klass.request_certificate else { return Ok(false) };
    let mut error = std::ptr::null_mut();
    // SAFETY: valid objects for the call; the connection is passed where
    // GIO declares a GTlsConnection, which implementations only hand back
    // to GObject APIs (as glib-networking's DTLS connections do).
    let result = unsafe {
        func(
            interaction_ptr,
            ToGlibPtr::<*mut glib::gobject_ffi::GObject>::to_glib_none(connection).0 as *mut gio::ffi::GTlsConnection,
            gio::ffi::G_TLS_CERTIFICATE_REQUEST_NONE,
            cancellable.to_glib_none().0,
            &mut error,
        )
    };
    match result {
        gio::ffi::G_TLS_INTERACTION_HANDLED => Ok(true),
        // SAFETY: FAILED comes with an error we now own (or none).
        gio::ffi::G_TLS_INTERACTION_FAILED if !error.is_null() => Err(unsafe { from_glib_full(error) }),
        _ => Ok(false),
    }
}
