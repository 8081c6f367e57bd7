//! The GSource of `g_datagram_based_create_source` on a DTLS connection.
//!
//! Ready when decrypted or received data is waiting (IN), when the
//! connection can send (OUT), or when the DTLS timer needs a step; woken by
//! a child source on the base socket (the only way the base-socket rule
//! lets us watch it) and by the cancellable.

use std::mem::size_of;

use glib::ffi::{gboolean, gpointer, GSource, GSourceFunc, GSourceFuncs};
use glib::prelude::ObjectType;
use glib::translate::*;

use super::base::Connection;
use super::datagram::ready_now;

#[repr(C)]
struct DtlsSource {
    source: GSource,
    /// A strong reference to the connection.
    conn: *mut glib::gobject_ffi::GObject,
    condition: glib::ffi::GIOCondition,
}

/// Borrows the connection a source watches.
///
/// # Safety
/// `source` is a live DtlsSource.
unsafe fn connection(source: *mut GSource) -> glib::translate::Borrowed<Connection> {
    // SAFETY: per the contract; `conn` holds a strong reference.
    unsafe {
        from_glib_borrow(
            (*(source as *mut DtlsSource)).conn
                as *mut <Connection as glib::object::ObjectType>::GlibType,
        )
    }
}

fn condition_of(source: *mut GSource) -> glib::IOCondition {
    // SAFETY: called only on our sources.
    unsafe { from_glib((*(source as *mut DtlsSource)).condition) }
}

unsafe extern "C" fn prepare(source: *mut GSource, timeout: *mut i32) -> gboolean {
    crate::iface::guard("DTLS source prepare", true, || {
        // SAFETY: GLib calls prepare with our live source.
        let conn = unsafe { connection(source) };
        let ready = !ready_now(&conn, condition_of(source)).is_empty();
        let wait_ms = conn
            .core()
            .ok()
            .filter(|c| !c.in_callback_here())
            .and_then(|c| c.engine().timeout())
            .map(|t| t.as_millis().min(i32::MAX as u128) as i32)
            .unwrap_or(-1);
        // SAFETY: GLib passes a valid out-pointer.
        unsafe { *timeout = if ready { 0 } else { wait_ms } };
        ready
    })
    .into_glib()
}

unsafe extern "C" fn check(source: *mut GSource) -> gboolean {
    crate::iface::guard("DTLS source check", true, || {
        // SAFETY: GLib calls check with our live source.
        let conn = unsafe { connection(source) };
        !ready_now(&conn, condition_of(source)).is_empty()
    })
    .into_glib()
}

unsafe extern "C" fn dispatch(
    source: *mut GSource,
    callback: GSourceFunc,
    user_data: gpointer,
) -> gboolean {
    let Some(callback) = callback else {
        return glib::ffi::G_SOURCE_REMOVE;
    };
    // SAFETY: callbacks of datagram sources are GDatagramBasedSourceFunc,
    // stored as GSourceFunc by g_source_set_callback.
    let func: gio::ffi::GDatagramBasedSourceFunc = unsafe { std::mem::transmute(callback) };
    let Some(func) = func else {
        return glib::ffi::G_SOURCE_REMOVE;
    };
    let (conn_ptr, wanted) = {
        // SAFETY: our live source.
        let s = unsafe { &*(source as *mut DtlsSource) };
        (s.conn, s.condition)
    };
    let ready = crate::iface::guard("DTLS source dispatch", glib::IOCondition::empty(), || {
        // SAFETY: our live source.
        let conn = unsafe { connection(source) };
        ready_now(&conn, condition_of(source))
    });
    // A wake-up from the socket or the timer with nothing decided yet is
    // reported as the condition asked for: the callback's operation then
    // makes progress or answers WOULD_BLOCK, as GIO allows.
    let reported = if ready.is_empty() {
        wanted
    } else {
        ready.into_glib() & (wanted | glib::ffi::G_IO_ERR | glib::ffi::G_IO_HUP)
    };
    // SAFETY: calling the application's callback with the connection it
    // created the source on.
    unsafe {
        func(
            conn_ptr as *mut gio::ffi::GDatagramBased,
            reported,
            user_data,
        )
    }
}

unsafe extern "C" fn finalize(source: *mut GSource) {
    // SAFETY: releases the reference taken in `new`; called once by GLib.
    unsafe { glib::gobject_ffi::g_object_unref((*(source as *mut DtlsSource)).conn) };
}

static FUNCS: GSourceFuncs = GSourceFuncs {
    prepare: Some(prepare),
    check: Some(check),
    dispatch: Some(dispatch),
    finalize: Some(finalize),
    closure_callback: None,
    closure_marshal: None,
};

/// A new, unattached source for `condition` on `conn`.
pub(crate) fn new(
    conn: &Connection,
    condition: glib::IOCondition,
    cancellable: Option<&gio::Cancellable>,
) -> glib::Source {
    // SAFETY: g_source_new allocates a zeroed struct of our size whose head
    // is the GSource; FUNCS is static. We take a reference to the connection
    // released in finalize. Child sources are owned by the parent once added.
    unsafe {
        let raw =
            glib::ffi::g_source_new(&FUNCS as *const _ as *mut _, size_of::<DtlsSource>() as u32);
        let s = &mut *(raw as *mut DtlsSource);
        s.conn = glib::gobject_ffi::g_object_ref(conn.as_ptr() as *mut _) as *mut _;
        s.condition = condition.into_glib();
        glib::ffi::g_source_set_name(raw, c"DtlsOpensslConnection".as_ptr());
        if let Ok(core) = conn.core() {
            // Incoming datagrams wake us for IN and for the handshake; the
            // callback only has to wake the parent.
            match super::io::base_source(
                core.base(),
                glib::IOCondition::IN | glib::IOCondition::ERR | glib::IOCondition::HUP,
                cancellable,
                || glib::ControlFlow::Continue,
            ) {
                Ok(child) => glib::ffi::g_source_add_child_source(raw, child.to_glib_none().0),
                // Then only the timer and the cancellable wake us; the
                // next operation reports the base socket's failure.
                Err(e) => crate::debug!("no base-socket source: {}", e),
            }
        }
        if let Some(c) = cancellable {
            let child = super::io::on_cancelled(c, || glib::ControlFlow::Continue);
            glib::ffi::g_source_add_child_source(raw, child.to_glib_none().0);
        }
        from_glib_full(raw)
    }
}
