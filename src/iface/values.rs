//! GValues of boxed container types gtk-rs has no `ToValue` for.

use glib::translate::*;

/// A `GPtrArray` value owning `items`, freed with `free` (the element
/// type's unref function).
fn ptr_array_value(
    items: Vec<glib::ffi::gpointer>,
    free: glib::ffi::GDestroyNotify,
) -> glib::Value {
    // SAFETY: we build a fresh GPtrArray that owns one reference to each item
    // (the caller transferred them) and hand its ownership to the GValue,
    // whose type is exactly G_TYPE_PTR_ARRAY.
    unsafe {
        let array = glib::ffi::g_ptr_array_new_full(items.len() as u32, free);
        for item in items {
            glib::ffi::g_ptr_array_add(array, item);
        }
        let mut value = glib::Value::from_type(from_glib(glib::ffi::g_ptr_array_get_type()));
        glib::gobject_ffi::g_value_take_boxed(
            value.to_glib_none_mut().0,
            array as glib::ffi::gconstpointer,
        );
        value
    }
}

/// `GPtrArray<GBytes>` (GTlsCertificate:dns-names).
pub(crate) fn bytes_array(items: Vec<glib::Bytes>) -> glib::Value {
    let ptrs = items
        .into_iter()
        .map(|b| IntoGlibPtr::<*mut glib::ffi::GBytes>::into_glib_ptr(b) as glib::ffi::gpointer)
        .collect();
    ptr_array_value(ptrs, Some(unref_bytes))
}

/// `GPtrArray<GObject>` (GTlsCertificate:ip-addresses).
pub(crate) fn object_array<O: IsA<glib::Object>>(items: Vec<O>) -> glib::Value {
    let ptrs = items
        .into_iter()
        .map(|o| {
            IntoGlibPtr::<*mut glib::gobject_ffi::GObject>::into_glib_ptr(
                o.upcast::<glib::Object>(),
            ) as glib::ffi::gpointer
        })
        .collect();
    ptr_array_value(ptrs, Some(unref_object))
}

unsafe extern "C" fn unref_bytes(p: glib::ffi::gpointer) {
    // SAFETY: only used as the free function of arrays of GBytes.
    unsafe { glib::ffi::g_bytes_unref(p as *mut glib::ffi::GBytes) }
}

use glib::prelude::*;

unsafe extern "C" fn unref_object(p: glib::ffi::gpointer) {
    // SAFETY: only used as the free function of arrays of GObjects.
    unsafe { glib::gobject_ffi::g_object_unref(p as *mut glib::gobject_ffi::GObject) }
}

/// A `G_TYPE_POINTER` value holding a new `GList` of `GByteArray`s, as
/// GDtlsClientConnection:accepted-cas is (the getter's caller frees it with
/// `g_list_free_full (list, g_byte_array_unref)`).
pub(crate) fn byte_array_list(items: &[Vec<u8>]) -> glib::Value {
    let mut list: *mut glib::ffi::GList = std::ptr::null_mut();
    for item in items.iter().rev() {
        // SAFETY: fresh byte arrays owned by the list we build.
        unsafe {
            let array = glib::ffi::g_byte_array_sized_new(item.len() as u32);
            glib::ffi::g_byte_array_append(array, item.as_ptr(), item.len() as u32);
            list = glib::ffi::g_list_prepend(list, array as glib::ffi::gpointer);
        }
    }
    let mut value = glib::Value::from_type(glib::Type::POINTER);
    // SAFETY: a G_TYPE_POINTER value; ownership of the list passes to whoever
    // gets the property, as GIO documents for accepted-cas.
    unsafe {
        glib::gobject_ffi::g_value_set_pointer(
            value.to_glib_none_mut().0,
            list as glib::ffi::gpointer,
        )
    };
    value
}
