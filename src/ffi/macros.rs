//! Argument checks in GLib's style.

/// `g_return_val_if_fail`: logs "assertion 'EXPR' failed" in our log domain
/// and returns `$val` when `$cond` is false.
macro_rules! return_val_if_fail {
    ($func:literal, $cond:expr, $expr:literal, $val:expr) => {
        if !$cond {
            // SAFETY: NUL-terminated static strings.
            unsafe {
                glib::ffi::g_return_if_fail_warning(
                    c"dtls-openssl".as_ptr(),
                    concat!($func, "\0").as_ptr() as *const std::ffi::c_char,
                    concat!($expr, "\0").as_ptr() as *const std::ffi::c_char,
                )
            };
            return $val;
        }
    };
}

/// `g_return_if_fail` for functions returning nothing.
macro_rules! return_if_fail {
    ($func:literal, $cond:expr, $expr:literal) => {
        return_val_if_fail!($func, $cond, $expr, ())
    };
}
