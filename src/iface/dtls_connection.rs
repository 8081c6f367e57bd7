//! `GDtlsConnectionInterface`.

use std::ffi::c_char;

use super::cancellable;
use gio::ffi::{
    GAsyncReadyCallback, GAsyncResult, GCancellable, GDtlsConnection, GDtlsConnectionInterface,
    GTlsChannelBindingType,
};
use glib::ffi::{gboolean, gpointer, GByteArray, GError};
use glib::subclass::prelude::*;
use glib::translate::*;

use super::task::{finish_boolean, Completion};

pub(crate) trait DtlsConnectionImpl: ObjectSubclass {
    fn handshake(&self, cancellable: Option<&gio::Cancellable>) -> Result<(), glib::Error>;
    fn handshake_async(
        &self,
        priority: glib::Priority,
        cancellable: Option<gio::Cancellable>,
        done: Completion,
    );
    fn shutdown(
        &self,
        read: bool,
        write: bool,
        cancellable: Option<&gio::Cancellable>,
    ) -> Result<(), glib::Error>;
    fn shutdown_async(
        &self,
        read: bool,
        write: bool,
        priority: glib::Priority,
        cancellable: Option<gio::Cancellable>,
        done: Completion,
    );
    fn set_advertised_protocols(&self, protocols: Option<Vec<String>>);
    /// Owned by the connection (transfer none).
    fn negotiated_protocol(&self) -> Option<&std::ffi::CStr>;
    fn binding_data(&self, kind: gio::TlsChannelBindingType) -> Result<Vec<u8>, glib::Error>;
}

fn imp<'a, T: DtlsConnectionImpl>(c: *mut GDtlsConnection) -> &'a T {
    // SAFETY: GIO calls these vfuncs only on instances of `T::Type`.
    unsafe { (*(c as *const T::Instance)).imp() }
}

unsafe extern "C" fn handshake<T: DtlsConnectionImpl>(
    c: *mut GDtlsConnection,
    cancel: *mut GCancellable,
    error: *mut *mut GError,
) -> gboolean {
    let r = super::guard_or(
        "handshake",
        || Err(super::internal_error()),
        || {
            // SAFETY: cancellable from GIO.
            imp::<T>(c).handshake(unsafe { cancellable(cancel) }.as_ref())
        },
    );
    // SAFETY: `error` from GIO.
    unsafe { super::set_error(r.map(|_| true), error, false) }.into_glib()
}

unsafe extern "C" fn handshake_async<T: DtlsConnectionImpl>(
    c: *mut GDtlsConnection,
    priority: i32,
    cancel: *mut GCancellable,
    callback: GAsyncReadyCallback,
    user_data: gpointer,
) {
    // SAFETY: arguments from GIO; the tag is this function's address.
    let done = unsafe {
        Completion::new(
            c as *mut _,
            cancel,
            callback,
            user_data,
            handshake_async::<T> as gpointer,
        )
    };
    super::guard("handshake_async", (), move || {
        // SAFETY: cancellable from GIO.
        imp::<T>(c).handshake_async(
            unsafe { from_glib(priority) },
            unsafe { cancellable(cancel) },
            done,
        )
    });
}

unsafe extern "C" fn finish<T: DtlsConnectionImpl>(
    _c: *mut GDtlsConnection,
    result: *mut GAsyncResult,
    error: *mut *mut GError,
) -> gboolean {
    // SAFETY: `result` is the task our *_async created.
    unsafe { finish_boolean(result, error) }
}

unsafe extern "C" fn shutdown<T: DtlsConnectionImpl>(
    c: *mut GDtlsConnection,
    read: gboolean,
    write: gboolean,
    cancel: *mut GCancellable,
    error: *mut *mut GError,
) -> gboolean {
    let r = super::guard_or(
        "shutdown",
        || Err(super::internal_error()),
        || {
            // SAFETY: cancellable from GIO.
            imp::<T>(c).shutdown(
                read != 0,
                write != 0,
                unsafe { cancellable(cancel) }.as_ref(),
            )
        },
    );
    // SAFETY: `error` from GIO.
    unsafe { super::set_error(r.map(|_| true), error, false) }.into_glib()
}

unsafe extern "C" fn shutdown_async<T: DtlsConnectionImpl>(
    c: *mut GDtlsConnection,
    read: gboolean,
    write: gboolean,
    priority: i32,
    cancel: *mut GCancellable,
    callback: GAsyncReadyCallback,
    user_data: gpointer,
) {
    // SAFETY: arguments from GIO; the tag is this function's address.
    let done = unsafe {
        Completion::new(
            c as *mut _,
            cancel,
            callback,
            user_data,
            shutdown_async::<T> as gpointer,
        )
    };
    super::guard("shutdown_async", (), move || {
        // SAFETY: cancellable from GIO.
        imp::<T>(c).shutdown_async(
            read != 0,
            write != 0,
            unsafe { from_glib(priority) },
            unsafe { cancellable(cancel) },
            done,
        )
    });
}

unsafe extern "C" fn set_advertised_protocols<T: DtlsConnectionImpl>(
    c: *mut GDtlsConnection,
    protocols: *const *const c_char,
) {
    super::guard("set_advertised_protocols", (), || {
        let list = if protocols.is_null() {
            None
        } else {
            // SAFETY: GIO passes a NULL-terminated array of strings.
            let v: Vec<glib::GString> =
                unsafe { FromGlibPtrContainer::from_glib_none(protocols as *mut *mut c_char) };
            Some(v.into_iter().map(|s| s.to_string()).collect())
        };
        imp::<T>(c).set_advertised_protocols(list)
    })
}

unsafe extern "C" fn negotiated_protocol<T: DtlsConnectionImpl>(
    c: *mut GDtlsConnection,
) -> *const c_char {
    super::guard("get_negotiated_protocol", std::ptr::null(), || {
        imp::<T>(c)
            .negotiated_protocol()
            .map_or(std::ptr::null(), |s| s.as_ptr())
    })
}

unsafe extern "C" fn binding_data<T: DtlsConnectionImpl>(
    c: *mut GDtlsConnection,
    kind: GTlsChannelBindingType,
    data: *mut GByteArray,
    error: *mut *mut GError,
) -> gboolean {
    let r = super::guard_or(
        "get_binding_data",
        || Err(super::internal_error()),
        || {
            // SAFETY: a GTlsChannelBindingType value from GIO.
            imp::<T>(c).binding_data(unsafe { from_glib(kind) })
        },
    );
    // SAFETY: `error` from GIO.
    match unsafe { super::set_error(r.map(Some), error, None) } {
        Some(bytes) => {
            if !data.is_null() {
                // SAFETY: GIO passes a valid GByteArray to fill, or NULL.
                unsafe {
                    glib::ffi::g_byte_array_set_size(data, 0);
                    glib::ffi::g_byte_array_append(data, bytes.as_ptr(), bytes.len() as u32);
                }
            }
            true.into_glib()
        }
        None => false.into_glib(),
    }
}

/// Fills GIO's vtable with `T`'s implementation. `accept_certificate` is
/// the signal's class handler slot and stays NULL.
pub(crate) fn init<T: DtlsConnectionImpl>(iface: &mut GDtlsConnectionInterface) {
    iface.handshake = Some(handshake::<T>);
    iface.handshake_async = Some(handshake_async::<T>);
    iface.handshake_finish = Some(finish::<T>);
    iface.shutdown = Some(shutdown::<T>);
    iface.shutdown_async = Some(shutdown_async::<T>);
    iface.shutdown_finish = Some(finish::<T>);
    iface.set_advertised_protocols = Some(set_advertised_protocols::<T>);
    iface.get_negotiated_protocol = Some(negotiated_protocol::<T>);
    iface.get_binding_data = Some(binding_data::<T>);
}
