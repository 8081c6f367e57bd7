//! GTask plumbing for the `*_async`/`*_finish` vfunc pairs.

use gio::ffi::{GAsyncReadyCallback, GAsyncResult, GCancellable, GTask};
use glib::ffi::{gboolean, gpointer, GError};
use glib::translate::*;

/// A pending GTask that a Rust completion will resolve exactly once, from
/// any thread (GTask delivers the result in the caller's context).
pub(crate) struct Completion(*mut GTask);

// SAFETY: GTask is thread-safe for returning a result; we own one reference.
unsafe impl Send for Completion {}

impl Completion {
    /// Creates the task for `source` as `g_task_new` does.
    ///
    /// # Safety
    /// `source` is a valid GObject; `cancellable` NULL or valid; `callback`
    /// and `user_data` are what GIO's caller passed.
    pub(crate) unsafe fn new(
        source: *mut glib::gobject_ffi::GObject,
        cancellable: *mut GCancellable,
        callback: GAsyncReadyCallback,
        user_data: gpointer,
        tag: gpointer,
    ) -> Completion {
        // SAFETY: per the function contract.
        unsafe {
            let task = gio::ffi::g_task_new(source, cancellable, callback, user_data);
            gio::ffi::g_task_set_source_tag(task, tag);
            Completion(task)
        }
    }

    /// Resolves the task with a GBytes (transfer full to the finisher) or an error.
    pub(crate) fn complete_bytes(self, result: Result<glib::Bytes, glib::Error>) {
        unsafe extern "C" fn unref_bytes(p: gpointer) {
            // SAFETY: the task only holds GBytes pointers with this notify.
            unsafe { glib::ffi::g_bytes_unref(p as *mut glib::ffi::GBytes) }
        }
        // SAFETY: as in `complete`; the task owns the GBytes reference until
        // the finisher takes it.
        unsafe {
            match result {
                Ok(b) => gio::ffi::g_task_return_pointer(
                    self.0,
                    IntoGlibPtr::<*mut glib::ffi::GBytes>::into_glib_ptr(b) as gpointer,
                    Some(unref_bytes),
                ),
                Err(e) => gio::ffi::g_task_return_error(self.0, e.into_glib_ptr()),
            }
            glib::gobject_ffi::g_object_unref(self.0 as *mut _);
        }
        std::mem::forget(self);
    }

    /// Resolves the task with a GObject (transfer full to the finisher) or
    /// an error.
    pub(crate) fn complete_object<T: glib::object::ObjectType>(
        self,
        result: Result<T, glib::Error>,
    ) {
        unsafe extern "C" fn unref_object(p: gpointer) {
            // SAFETY: the task only holds GObject pointers with this notify.
            unsafe { glib::gobject_ffi::g_object_unref(p as *mut glib::gobject_ffi::GObject) }
        }
        // SAFETY: as in `complete`; the task owns the object reference
        // until the finisher takes it (or drops it with `unref_object`).
        unsafe {
            match result {
                Ok(o) => gio::ffi::g_task_return_pointer(
                    self.0,
                    o.as_object_ref().to_glib_full() as gpointer,
                    Some(unref_object),
                ),
                Err(e) => gio::ffi::g_task_return_error(self.0, e.into_glib_ptr()),
            }
            glib::gobject_ffi::g_object_unref(self.0 as *mut _);
        }
        std::mem::forget(self);
    }

    /// Resolves the task with a boolean result or an error.    /// Resolves the task with a boolean result or an error.
    pub(crate) fn complete(self, result: Result<(), glib::Error>) {
        // SAFETY: self.0 is a live task we own a reference to; it is
        // resolved once (self is consumed) and then released.
        unsafe {
            match result {
                Ok(()) => gio::ffi::g_task_return_boolean(self.0, true.into_glib()),
                Err(e) => gio::ffi::g_task_return_error(self.0, e.into_glib_ptr()),
            }
            glib::gobject_ffi::g_object_unref(self.0 as *mut _);
        }
        std::mem::forget(self);
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        // Dropped without completing (a panic on the way): never leave the
        // caller waiting.
        // SAFETY: as in `complete`.
        unsafe {
            let e = glib::Error::new(gio::IOErrorEnum::Failed, "operation abandoned");
            gio::ffi::g_task_return_error(self.0, e.into_glib_ptr());
            glib::gobject_ffi::g_object_unref(self.0 as *mut _);
        }
    }
}

/// `g_task_propagate_boolean` for a `*_finish` vfunc.
///
/// # Safety
/// `result` is the GTask a [`Completion`] created; `error` is NULL or valid.
pub(crate) unsafe fn finish_boolean(
    result: *mut GAsyncResult,
    error: *mut *mut GError,
) -> gboolean {
    // SAFETY: per the function contract.
    unsafe { gio::ffi::g_task_propagate_boolean(result as *mut GTask, error) }
}

/// `g_task_propagate_pointer` for a `*_finish` returning GBytes.
///
/// # Safety
/// `result` is the GTask a [`Completion`] resolved with `complete_bytes`.
pub(crate) unsafe fn finish_bytes(
    result: *mut GAsyncResult,
    error: *mut *mut GError,
) -> *mut glib::ffi::GBytes {
    // SAFETY: per the function contract.
    unsafe {
        gio::ffi::g_task_propagate_pointer(result as *mut GTask, error) as *mut glib::ffi::GBytes
    }
}

/// `g_task_propagate_pointer` for a `*_finish` returning a GObject.
///
/// # Safety
/// `result` is the GTask a [`Completion`] resolved with `complete_object`.
pub(crate) unsafe fn finish_object(result: *mut GAsyncResult, error: *mut *mut GError) -> gpointer {
    // SAFETY: per the function contract.
    unsafe { gio::ffi::g_task_propagate_pointer(result as *mut GTask, error) }
}

/// Whether `result` is a task of `source` made by the function `tag`.
///
/// # Safety
/// `result` is NULL or a GAsyncResult.
pub(crate) unsafe fn is_task_of(
    result: *mut GAsyncResult,
    source: gpointer,
    tag: gpointer,
) -> bool {
    // SAFETY: g_task_is_valid accepts any GAsyncResult.
    unsafe {
        !result.is_null()
            && gio::ffi::g_task_is_valid(result, source as *mut glib::gobject_ffi::GObject) != 0
            && gio::ffi::g_task_get_source_tag(result as *mut GTask) == tag
    }
}
