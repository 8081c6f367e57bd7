//! `dtls_openssl_server_*`: the listener that serves many peers on one
//! UDP socket (`crate::listener::Server`).

use gio::ffi::{GAsyncReadyCallback, GAsyncResult, GCancellable, GSocket, GTlsCertificate};
use glib::ffi::{gboolean, gpointer, GError};
use glib::prelude::*;
use glib::translate::*;

use super::connection::{construct, error_ok, is_a};
use crate::iface::cancellable;
use crate::iface::task::{self, Completion};
use crate::listener::Server;
use crate::server::ServerConnection;

type CServer = <Server as glib::object::ObjectType>::GlibType;
type CServerConnection = <ServerConnection as glib::object::ObjectType>::GlibType;

fn is_server(server: *mut CServer) -> bool {
    is_a(server as gpointer, Server::static_type())
}

fn is_cancellable(c: *mut GCancellable) -> bool {
    c.is_null() || is_a(c as gpointer, gio::Cancellable::static_type())
}

/// # Safety
/// `server` passed `is_server`.
unsafe fn borrow(server: *mut CServer) -> Borrowed<Server> {
    // SAFETY: per the contract.
    unsafe { from_glib_borrow(server) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn dtls_openssl_server_new(
    socket: *mut GSocket,
    certificate: *mut GTlsCertificate,
    error: *mut *mut GError,
) -> *mut CServer {
    return_val_if_fail!(
        "dtls_openssl_server_new",
        is_a(socket as gpointer, gio::Socket::static_type()),
        "G_IS_SOCKET (socket)",
        std::ptr::null_mut()
    );
    return_val_if_fail!(
        "dtls_openssl_server_new",
        certificate.is_null() || is_a(certificate as gpointer, gio::TlsCertificate::static_type()),
        "certificate == NULL || G_IS_TLS_CERTIFICATE (certificate)",
        std::ptr::null_mut()
    );
    return_val_if_fail!(
        "dtls_openssl_server_new",
        error_ok(error),
        "error == NULL || *error == NULL",
        std::ptr::null_mut()
    );
    let build = || {
        // SAFETY: both checked above.
        let (socket, certificate): (gio::Socket, Option<gio::TlsCertificate>) =
            unsafe { (from_glib_none(socket), from_glib_none(certificate)) };
        Server::new(&socket, certificate.as_ref())
    };
    // SAFETY: `error` checked above.
    unsafe { construct("dtls_openssl_server_new", error, build) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn dtls_openssl_server_start(
    server: *mut CServer,
    error: *mut *mut GError,
) -> gboolean {
    return_val_if_fail!(
        "dtls_openssl_server_start",
        is_server(server),
        "DTLS_OPENSSL_IS_SERVER (server)",
        false.into_glib()
    );
    return_val_if_fail!(
        "dtls_openssl_server_start",
        error_ok(error),
        "error == NULL || *error == NULL",
        false.into_glib()
    );
    let result = crate::iface::guard_or(
        "dtls_openssl_server_start",
        || Err(crate::iface::internal_error()),
        || {
            // SAFETY: checked above.
            unsafe { borrow(server) }.start()
        },
    );
    // SAFETY: `error` checked above.
    unsafe { crate::iface::set_error(result.map(|_| true), error, false) }.into_glib()
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn dtls_openssl_server_accept(
    server: *mut CServer,
    cancel: *mut GCancellable,
    error: *mut *mut GError,
) -> *mut CServerConnection {
    return_val_if_fail!(
        "dtls_openssl_server_accept",
        is_server(server),
        "DTLS_OPENSSL_IS_SERVER (server)",
        std::ptr::null_mut()
    );
    return_val_if_fail!(
        "dtls_openssl_server_accept",
        is_cancellable(cancel),
        "cancellable == NULL || G_IS_CANCELLABLE (cancellable)",
        std::ptr::null_mut()
    );
    return_val_if_fail!(
        "dtls_openssl_server_accept",
        error_ok(error),
        "error == NULL || *error == NULL",
        std::ptr::null_mut()
    );
    let build = || {
        // SAFETY: checked above.
        let (s, c) = unsafe { (borrow(server), cancellable(cancel)) };
        s.accept(c.as_ref())
    };
    // SAFETY: `error` checked above.
    unsafe { construct("dtls_openssl_server_accept", error, build) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn dtls_openssl_server_accept_async(
    server: *mut CServer,
    cancel: *mut GCancellable,
    callback: GAsyncReadyCallback,
    user_data: gpointer,
) {
    return_if_fail!(
        "dtls_openssl_server_accept_async",
        is_server(server),
        "DTLS_OPENSSL_IS_SERVER (server)"
    );
    return_if_fail!(
        "dtls_openssl_server_accept_async",
        is_cancellable(cancel),
        "cancellable == NULL || G_IS_CANCELLABLE (cancellable)"
    );
    // SAFETY: checked above; the tag is this function's address.
    let done = unsafe {
        Completion::new(
            server as *mut _,
            cancel,
            callback,
            user_data,
            dtls_openssl_server_accept_async as gpointer,
        )
    };
    crate::iface::guard("dtls_openssl_server_accept_async", (), move || {
        // SAFETY: checked above.
        let (s, c) = unsafe { (borrow(server), cancellable(cancel)) };
        s.accept_with_callback(c.as_ref(), move |r| done.complete_object(r));
    });
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn dtls_openssl_server_accept_finish(
    server: *mut CServer,
    result: *mut GAsyncResult,
    error: *mut *mut GError,
) -> *mut CServerConnection {
    return_val_if_fail!(
        "dtls_openssl_server_accept_finish",
        is_server(server),
        "DTLS_OPENSSL_IS_SERVER (server)",
        std::ptr::null_mut()
    );
    return_val_if_fail!(
        "dtls_openssl_server_accept_finish",
        // SAFETY: g_task_is_valid accepts any pointer to a GAsyncResult.
        unsafe {
            task::is_task_of(
                result,
                server as gpointer,
                dtls_openssl_server_accept_async as gpointer,
            )
        },
        "g_task_is_valid (result, server)",
        std::ptr::null_mut()
    );
    return_val_if_fail!(
        "dtls_openssl_server_accept_finish",
        error_ok(error),
        "error == NULL || *error == NULL",
        std::ptr::null_mut()
    );
    // SAFETY: a task of ours resolved by complete_object, checked above.
    unsafe { task::finish_object(result, error) as *mut CServerConnection }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn dtls_openssl_server_close(
    server: *mut CServer,
    cancel: *mut GCancellable,
    error: *mut *mut GError,
) -> gboolean {
    return_val_if_fail!(
        "dtls_openssl_server_close",
        is_server(server),
        "DTLS_OPENSSL_IS_SERVER (server)",
        false.into_glib()
    );
    return_val_if_fail!(
        "dtls_openssl_server_close",
        is_cancellable(cancel),
        "cancellable == NULL || G_IS_CANCELLABLE (cancellable)",
        false.into_glib()
    );
    return_val_if_fail!(
        "dtls_openssl_server_close",
        error_ok(error),
        "error == NULL || *error == NULL",
        false.into_glib()
    );
    let result = crate::iface::guard_or(
        "dtls_openssl_server_close",
        || Err(crate::iface::internal_error()),
        || {
            // SAFETY: checked above.
            let (s, c) = unsafe { (borrow(server), cancellable(cancel)) };
            s.close(c.as_ref())
        },
    );
    // SAFETY: `error` checked above.
    unsafe { crate::iface::set_error(result.map(|_| true), error, false) }.into_glib()
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn dtls_openssl_server_get_peer_count(server: *mut CServer) -> u32 {
    return_val_if_fail!(
        "dtls_openssl_server_get_peer_count",
        is_server(server),
        "DTLS_OPENSSL_IS_SERVER (server)",
        0
    );
    crate::iface::guard("dtls_openssl_server_get_peer_count", 0, || {
        // SAFETY: checked above.
        unsafe { borrow(server) }.peer_count()
    })
}
