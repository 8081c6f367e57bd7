//! `dtls_openssl_client_connection_new`, `dtls_openssl_server_connection_new`
//! and the `dtls_openssl_connection_*`
//! extras: bytes send/receive (sync and async), MTU, payload size, keying
//! material.

use std::ffi::{c_char, c_int};

use crate::iface::cancellable;
use gio::ffi::{
    GAsyncReadyCallback, GAsyncResult, GCancellable, GDatagramBased, GSocketConnectable,
    GTlsCertificate,
};
use glib::ffi::{gboolean, gpointer, GBytes, GError};
use glib::prelude::*;
use glib::translate::*;

use crate::client::ClientConnection;
use crate::connection::Connection;
use crate::iface::task::{self, Completion};
use crate::server::ServerConnection;

type CConnection = <Connection as glib::object::ObjectType>::GlibType;
type CClient = <ClientConnection as glib::object::ObjectType>::GlibType;
type CServer = <ServerConnection as glib::object::ObjectType>::GlibType;

pub(super) fn is_a(ptr: gpointer, ty: glib::Type) -> bool {
    // SAFETY: g_type_check_instance_is_a accepts any non-NULL instance
    // pointer; NULL is checked first.
    !ptr.is_null()
        && unsafe {
            glib::gobject_ffi::g_type_check_instance_is_a(ptr as *mut _, ty.into_glib()) != 0
        }
}

fn is_connection(conn: *mut CConnection) -> bool {
    is_a(conn as gpointer, Connection::static_type())
}

pub(super) fn error_ok(error: *mut *mut GError) -> bool {
    // SAFETY: reading the out-pointer's target only when it is non-NULL.
    error.is_null() || unsafe { (*error).is_null() }
}

/// # Safety
/// `conn` passed `is_connection`.
unsafe fn borrow_conn(conn: *mut CConnection) -> Borrowed<Connection> {
    // SAFETY: per the contract.
    unsafe { from_glib_borrow(conn) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn dtls_openssl_client_connection_new(
    base_socket: *mut GDatagramBased,
    server_identity: *mut GSocketConnectable,
    error: *mut *mut GError,
) -> *mut CClient {
    return_val_if_fail!(
        "dtls_openssl_client_connection_new",
        is_a(base_socket as gpointer, gio::DatagramBased::static_type()),
        "G_IS_DATAGRAM_BASED (base_socket)",
        std::ptr::null_mut()
    );
    return_val_if_fail!(
        "dtls_openssl_client_connection_new",
        server_identity.is_null()
            || is_a(
                server_identity as gpointer,
                gio::SocketConnectable::static_type()
            ),
        "server_identity == NULL || G_IS_SOCKET_CONNECTABLE (server_identity)",
        std::ptr::null_mut()
    );
    return_val_if_fail!(
        "dtls_openssl_client_connection_new",
        error_ok(error),
        "error == NULL || *error == NULL",
        std::ptr::null_mut()
    );
    let build = || {
        // SAFETY: both checked above.
        let (base, identity): (gio::DatagramBased, Option<gio::SocketConnectable>) =
            unsafe { (from_glib_none(base_socket), from_glib_none(server_identity)) };
        ClientConnection::new(&base, identity.as_ref())
    };
    // SAFETY: `error` checked above.
    unsafe { construct("dtls_openssl_client_connection_new", error, build) }
}

/// A constructor's end: runs `build` behind the panic guard and returns the
/// new object, or NULL with `error` set.
///
/// # Safety
/// `error` is NULL or points at a NULL `GError *`.
pub(super) unsafe fn construct<T: glib::object::ObjectType>(
    func: &'static str,
    error: *mut *mut GError,
    build: impl FnOnce() -> Result<T, glib::Error>,
) -> *mut T::GlibType {
    let result = crate::iface::guard_or(func, || Err(crate::iface::internal_error()), build);
    // SAFETY: per the contract.
    match unsafe { crate::iface::set_error(result.map(Some), error, None) } {
        Some(c) => c.into_glib_ptr(),
        None => std::ptr::null_mut(),
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn dtls_openssl_server_connection_new(
    base_socket: *mut GDatagramBased,
    certificate: *mut GTlsCertificate,
    error: *mut *mut GError,
) -> *mut CServer {
    return_val_if_fail!(
        "dtls_openssl_server_connection_new",
        is_a(base_socket as gpointer, gio::DatagramBased::static_type()),
        "G_IS_DATAGRAM_BASED (base_socket)",
        std::ptr::null_mut()
    );
    return_val_if_fail!(
        "dtls_openssl_server_connection_new",
        certificate.is_null() || is_a(certificate as gpointer, gio::TlsCertificate::static_type()),
        "certificate == NULL || G_IS_TLS_CERTIFICATE (certificate)",
        std::ptr::null_mut()
    );
    return_val_if_fail!(
        "dtls_openssl_server_connection_new",
        error_ok(error),
        "error == NULL || *error == NULL",
        std::ptr::null_mut()
    );
    let build = || {
        // SAFETY: both checked above.
        let (base, certificate): (gio::DatagramBased, Option<gio::TlsCertificate>) =
            unsafe { (from_glib_none(base_socket), from_glib_none(certificate)) };
        ServerConnection::new(&base, certificate.as_ref())
    };
    // SAFETY: `error` checked above.
    unsafe { construct("dtls_openssl_server_connection_new", error, build) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn dtls_openssl_connection_send_bytes(
    conn: *mut CConnection,
    bytes: *mut GBytes,
    timeout_us: i64,
    cancel: *mut GCancellable,
    error: *mut *mut GError,
) -> gboolean {
    return_val_if_fail!(
        "dtls_openssl_connection_send_bytes",
        is_connection(conn),
        "DTLS_OPENSSL_IS_CONNECTION (conn)",
        false.into_glib()
    );
    return_val_if_fail!(
        "dtls_openssl_connection_send_bytes",
        !bytes.is_null(),
        "bytes != NULL",
        false.into_glib()
    );
    return_val_if_fail!(
        "dtls_openssl_connection_send_bytes",
        error_ok(error),
        "error == NULL || *error == NULL",
        false.into_glib()
    );
    let result = crate::iface::guard_or(
        "dtls_openssl_connection_send_bytes",
        || Err(crate::iface::internal_error()),
        || {
            // SAFETY: all checked above.
            let (c, b, cancellable): (_, glib::Bytes, _) = unsafe {
                (
                    borrow_conn(conn),
                    from_glib_none(bytes),
                    cancellable(cancel),
                )
            };
            c.send_bytes(&b, timeout_us, cancellable.as_ref())
        },
    );
    // SAFETY: `error` checked above.
    unsafe { crate::iface::set_error(result.map(|_| true), error, false) }.into_glib()
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn dtls_openssl_connection_receive_bytes(
    conn: *mut CConnection,
    max_size: usize,
    timeout_us: i64,
    cancel: *mut GCancellable,
    error: *mut *mut GError,
) -> *mut GBytes {
    return_val_if_fail!(
        "dtls_openssl_connection_receive_bytes",
        is_connection(conn),
        "DTLS_OPENSSL_IS_CONNECTION (conn)",
        std::ptr::null_mut()
    );
    return_val_if_fail!(
        "dtls_openssl_connection_receive_bytes",
        error_ok(error),
        "error == NULL || *error == NULL",
        std::ptr::null_mut()
    );
    let result = crate::iface::guard_or(
        "dtls_openssl_connection_receive_bytes",
        || Err(crate::iface::internal_error()),
        || {
            // SAFETY: checked above.
            let (c, cancellable) = unsafe { (borrow_conn(conn), cancellable(cancel)) };
            c.receive_bytes(max_size, timeout_us, cancellable.as_ref())
        },
    );
    // SAFETY: `error` checked above.
    match unsafe { crate::iface::set_error(result.map(Some), error, None) } {
        Some(b) => b.into_glib_ptr(),
        None => std::ptr::null_mut(),
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn dtls_openssl_connection_send_bytes_async(
    conn: *mut CConnection,
    bytes: *mut GBytes,
    io_priority: c_int,
    cancel: *mut GCancellable,
    callback: GAsyncReadyCallback,
    user_data: gpointer,
) {
    return_if_fail!(
        "dtls_openssl_connection_send_bytes_async",
        is_connection(conn),
        "DTLS_OPENSSL_IS_CONNECTION (conn)"
    );
    return_if_fail!(
        "dtls_openssl_connection_send_bytes_async",
        !bytes.is_null(),
        "bytes != NULL"
    );
    // SAFETY: checked above; the tag is this function's address.
    let done = unsafe {
        Completion::new(
            conn as *mut _,
            cancel,
            callback,
            user_data,
            dtls_openssl_connection_send_bytes_async as gpointer,
        )
    };
    crate::iface::guard("dtls_openssl_connection_send_bytes_async", (), move || {
        // SAFETY: checked above.
        let (c, b, cancellable): (_, glib::Bytes, _) = unsafe {
            (
                borrow_conn(conn),
                from_glib_none(bytes),
                cancellable(cancel),
            )
        };
        c.send_bytes_async(
            b,
            unsafe { from_glib(io_priority) },
            cancellable.as_ref(),
            move |r| done.complete(r),
        );
    });
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn dtls_openssl_connection_send_bytes_finish(
    conn: *mut CConnection,
    result: *mut GAsyncResult,
    error: *mut *mut GError,
) -> gboolean {
    return_val_if_fail!(
        "dtls_openssl_connection_send_bytes_finish",
        is_connection(conn),
        "DTLS_OPENSSL_IS_CONNECTION (conn)",
        false.into_glib()
    );
    return_val_if_fail!(
        "dtls_openssl_connection_send_bytes_finish",
        // SAFETY: g_task_is_valid accepts any pointer to a GAsyncResult.
        unsafe {
            task::is_task_of(
                result,
                conn as gpointer,
                dtls_openssl_connection_send_bytes_async as gpointer,
            )
        },
        "g_task_is_valid (result, conn)",
        false.into_glib()
    );
    return_val_if_fail!(
        "dtls_openssl_connection_send_bytes_finish",
        error_ok(error),
        "error == NULL || *error == NULL",
        false.into_glib()
    );
    // SAFETY: a task of ours, checked above.
    unsafe { task::finish_boolean(result, error) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn dtls_openssl_connection_receive_bytes_async(
    conn: *mut CConnection,
    max_size: usize,
    io_priority: c_int,
    cancel: *mut GCancellable,
    callback: GAsyncReadyCallback,
    user_data: gpointer,
) {
    return_if_fail!(
        "dtls_openssl_connection_receive_bytes_async",
        is_connection(conn),
        "DTLS_OPENSSL_IS_CONNECTION (conn)"
    );
    // SAFETY: checked above; the tag is this function's address.
    let done = unsafe {
        Completion::new(
            conn as *mut _,
            cancel,
            callback,
            user_data,
            dtls_openssl_connection_receive_bytes_async as gpointer,
        )
    };
    crate::iface::guard(
        "dtls_openssl_connection_receive_bytes_async",
        (),
        move || {
            // SAFETY: checked above.
            let (c, cancellable) = unsafe { (borrow_conn(conn), cancellable(cancel)) };
            c.receive_bytes_async(
                max_size,
                unsafe { from_glib(io_priority) },
                cancellable.as_ref(),
                move |r| done.complete_bytes(r),
            );
        },
    );
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn dtls_openssl_connection_receive_bytes_finish(
    conn: *mut CConnection,
    result: *mut GAsyncResult,
    error: *mut *mut GError,
) -> *mut GBytes {
    return_val_if_fail!(
        "dtls_openssl_connection_receive_bytes_finish",
        is_connection(conn),
        "DTLS_OPENSSL_IS_CONNECTION (conn)",
        std::ptr::null_mut()
    );
    return_val_if_fail!(
        "dtls_openssl_connection_receive_bytes_finish",
        // SAFETY: g_task_is_valid accepts any pointer to a GAsyncResult.
        unsafe {
            task::is_task_of(
                result,
                conn as gpointer,
                dtls_openssl_connection_receive_bytes_async as gpointer,
            )
        },
        "g_task_is_valid (result, conn)",
        std::ptr::null_mut()
    );
    return_val_if_fail!(
        "dtls_openssl_connection_receive_bytes_finish",
        error_ok(error),
        "error == NULL || *error == NULL",
        std::ptr::null_mut()
    );
    // SAFETY: a task of ours, checked above.
    unsafe { task::finish_bytes(result, error) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn dtls_openssl_connection_get_mtu(conn: *mut CConnection) -> u32 {
    return_val_if_fail!(
        "dtls_openssl_connection_get_mtu",
        is_connection(conn),
        "DTLS_OPENSSL_IS_CONNECTION (conn)",
        0
    );
    // SAFETY: checked above.
    crate::iface::guard("dtls_openssl_connection_get_mtu", 0, || {
        unsafe { borrow_conn(conn) }.mtu()
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn dtls_openssl_connection_set_mtu(
    conn: *mut CConnection,
    mtu: u32,
    error: *mut *mut GError,
) -> gboolean {
    return_val_if_fail!(
        "dtls_openssl_connection_set_mtu",
        is_connection(conn),
        "DTLS_OPENSSL_IS_CONNECTION (conn)",
        false.into_glib()
    );
    return_val_if_fail!(
        "dtls_openssl_connection_set_mtu",
        error_ok(error),
        "error == NULL || *error == NULL",
        false.into_glib()
    );
    // An out-of-range MTU is a runtime error (it may come from a path MTU
    // probe or a configuration file), not a programming error.
    let result = crate::iface::guard_or(
        "dtls_openssl_connection_set_mtu",
        || Err(crate::iface::internal_error()),
        || {
            // SAFETY: checked above.
            unsafe { borrow_conn(conn) }.set_mtu(mtu)
        },
    );
    // SAFETY: `error` checked above.
    unsafe { crate::iface::set_error(result.map(|_| true), error, false) }.into_glib()
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn dtls_openssl_connection_get_max_payload(
    conn: *mut CConnection,
    error: *mut *mut GError,
) -> usize {
    return_val_if_fail!(
        "dtls_openssl_connection_get_max_payload",
        is_connection(conn),
        "DTLS_OPENSSL_IS_CONNECTION (conn)",
        0
    );
    return_val_if_fail!(
        "dtls_openssl_connection_get_max_payload",
        error_ok(error),
        "error == NULL || *error == NULL",
        0
    );
    let result = crate::iface::guard_or(
        "dtls_openssl_connection_get_max_payload",
        || Err(crate::iface::internal_error()),
        || {
            // SAFETY: checked above.
            unsafe { borrow_conn(conn) }.max_payload()
        },
    );
    // SAFETY: `error` checked above.
    unsafe { crate::iface::set_error(result, error, 0) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn dtls_openssl_connection_export_keying_material(
    conn: *mut CConnection,
    label: *const c_char,
    length: usize,
    context: *mut GBytes,
    error: *mut *mut GError,
) -> *mut GBytes {
    return_val_if_fail!(
        "dtls_openssl_connection_export_keying_material",
        is_connection(conn),
        "DTLS_OPENSSL_IS_CONNECTION (conn)",
        std::ptr::null_mut()
    );
    return_val_if_fail!(
        "dtls_openssl_connection_export_keying_material",
        !label.is_null(),
        "label != NULL",
        std::ptr::null_mut()
    );
    return_val_if_fail!(
        "dtls_openssl_connection_export_keying_material",
        length > 0,
        "length > 0",
        std::ptr::null_mut()
    );
    return_val_if_fail!(
        "dtls_openssl_connection_export_keying_material",
        error_ok(error),
        "error == NULL || *error == NULL",
        std::ptr::null_mut()
    );
    let result = crate::iface::guard_or(
        "dtls_openssl_connection_export_keying_material",
        || Err(crate::iface::internal_error()),
        || {
            // SAFETY: checked above; `context` is NULL or a GBytes.
            let (c, label, ctx): (_, glib::GString, Option<glib::Bytes>) = unsafe {
                (
                    borrow_conn(conn),
                    from_glib_none(label),
                    from_glib_none(context),
                )
            };
            c.export_keying_material(&label, ctx.as_deref(), length)
                .map(glib::Bytes::from_owned)
        },
    );
    // SAFETY: `error` checked above.
    match unsafe { crate::iface::set_error(result.map(Some), error, None) } {
        Some(b) => b.into_glib_ptr(),
        None => std::ptr::null_mut(),
    }
}
