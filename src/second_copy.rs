//! A second copy of this library in one process.
//!
//! GObject types are registered once per process by name. When a program
//! maps two *copies* of this library (another inode: e.g. it links the
//! library while GIO loads a copy from its module directory), the second
//! copy cannot register `DtlsOpensslBackend` and friends again. Rather than
//! a panic per call, that copy reports it once, in one line naming both
//! files and the fix, and every entry point of that copy declines (GIO and
//! callers go on with the first copy's types).
#![allow(unsafe_code)]

use std::ffi::CStr;
use std::sync::OnceLock;

/// A type every copy registers first (the backend).
const PROBE_TYPE: &CStr = c"DtlsOpensslBackend";

/// Whether this copy must stay unused because another copy registered the
/// types first; says so once. Decided at the first entry into this copy
/// (every C entry point passes `iface::guard`, which asks), before this
/// copy has registered anything.
pub(crate) fn declined() -> bool {
    static DECLINED: OnceLock<bool> = OnceLock::new();
    *DECLINED.get_or_init(|| {
        // SAFETY: a NUL-terminated name; GLib's type table is thread-safe.
        let taken = unsafe { glib::gobject_ffi::g_type_from_name(PROBE_TYPE.as_ptr()) } != 0;
        if taken {
            glib::g_warning!(crate::LOG_DOMAIN, "{}", message());
        }
        taken
    })
}

fn message() -> String {
    let here = this_file().unwrap_or_else(|| "this copy".into());
    let others: Vec<String> = mapped_copies().into_iter().filter(|p| *p != here).collect();
    let other = if others.is_empty() {
        "another copy".to_string()
    } else {
        others.join(", ")
    };
    format!(
        "two copies of libgiodtlsopenssl are loaded in this process: {other} registered the DtlsOpenssl types first, so {here} stays unused. Install one file and make the other a symlink to it (e.g. the GIO module directory's entry)"
    )
}

/// The file this copy was loaded from.
fn this_file() -> Option<String> {
    // SAFETY: Dl_info is plain data (pointers and integers): all-zero is
    // a valid value.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: dladdr only reads the address (of a function of this copy)
    // and fills `info`; `dli_fname` points into the loader's own storage.
    let found = unsafe { libc::dladdr(this_file as *const libc::c_void, &mut info) } != 0;
    if !found || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: non-NULL, NUL-terminated, owned by the dynamic loader.
    let path = unsafe { CStr::from_ptr(info.dli_fname) };
    Some(canonical(&path.to_string_lossy()))
}

/// Files named like this library mapped in the process.
fn mapped_copies() -> Vec<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let mut paths: Vec<String> = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|p| p.contains("giodtlsopenssl"))
        .map(canonical)
        .collect();
    paths.sort();
    paths.dedup();
    paths
}

fn canonical(path: &str) -> String {
    std::fs::canonicalize(path).map_or_else(|_| path.to_string(), |p| p.display().to_string())
}
