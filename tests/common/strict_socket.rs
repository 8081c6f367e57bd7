//! `StrictSocket`: a `GDatagramBased` wrapping a connected `gio::Socket`
//! that only tolerates the usage of a fully non-blocking, source-driven
//! user — like Frida's libnice wrapper:
//!
//! * `condition_check` / `condition_wait`: print a message and abort.
//! * `receive_messages` / `send_messages`: flags ≠ 0 → G_IO_ERROR_INVALID_ARGUMENT;
//!   timeout ≠ 0 → abort (a conforming user never blocks on it).
//! * `send_messages` fails with G_IO_ERROR_WOULD_BLOCK on every other call
//!   ([`SendMode`], default: first call WOULD_BLOCK, then success, …).
//! * `create_source` delegates to the inner socket's
//!   (`g_datagram_based_create_source`) and returns a thin parent source
//!   around it, so that the callback receives the StrictSocket (not the
//!   inner socket: gio-rs's `create_source` asserts on the type) and the
//!   inner socket's current condition.
//!
//! Every call is counted ([`StrictSocket::counts`]).

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::OnceLock;

use gio::ffi::{GCancellable, GDatagramBased, GInputMessage, GOutputMessage};
use glib::ffi::{gboolean, GError, GIOCondition, GSource};
use glib::prelude::*;
use glib::subclass::prelude::*;
use glib::translate::*;

/// When `send_messages` pretends the socket is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum SendMode {
    /// WOULD_BLOCK, success, WOULD_BLOCK, success, …
    #[default]
    AlternateWouldBlockFirst = 0,
    /// success, WOULD_BLOCK, success, …
    AlternateSuccessFirst = 1,
    /// Never pretend.
    Normal = 2,
}

/// Calls seen so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StrictCounts {
    pub receive_messages: usize,
    pub send_messages: usize,
    /// `send_messages` calls answered with the fake WOULD_BLOCK.
    pub send_would_block: usize,
    /// Calls (either direction) rejected for nonzero flags.
    pub bad_flags: usize,
    pub create_source: usize,
    pub condition_check: usize,
    pub condition_wait: usize,
}

pub mod imp {
    use super::*;

    #[derive(Default)]
    pub struct StrictSocket {
        pub(super) inner: OnceLock<gio::Socket>,
        pub(super) mode: AtomicU8,
        pub(super) receive_messages: AtomicUsize,
        pub(super) send_messages: AtomicUsize,
        pub(super) send_would_block: AtomicUsize,
        pub(super) bad_flags: AtomicUsize,
        pub(super) create_source: AtomicUsize,
        pub(super) condition_check: AtomicUsize,
        pub(super) condition_wait: AtomicUsize,
    }

    #[glib::object_subclass]
    impl ObjectSubclass for StrictSocket {
        const NAME: &'static str = "PeersTestStrictSocket";
        type Type = super::StrictSocket;
        type ParentType = glib::Object;
        type Interfaces = (gio::DatagramBased,);
    }

    impl ObjectImpl for StrictSocket {}

    impl StrictSocket {
        pub(super) fn inner(&self) -> &gio::Socket {
            self.inner
                .get()
                .expect("StrictSocket used before StrictSocket::new set its socket")
        }
    }
}

glib::wrapper! {
    /// See the module documentation.
    pub struct StrictSocket(ObjectSubclass<imp::StrictSocket>) @implements gio::DatagramBased;
}

impl StrictSocket {
    /// Wraps a connected socket (calls pass timeout 0 to it: non-blocking
    /// whatever its blocking mode).
    pub fn new(inner: &gio::Socket) -> Self {
        let obj: Self = glib::Object::new();
        assert!(obj.imp().inner.set(inner.clone()).is_ok(), "fresh object");
        obj
    }

    pub fn inner(&self) -> gio::Socket {
        self.imp().inner().clone()
    }

    pub fn set_send_mode(&self, mode: SendMode) {
        self.imp().mode.store(mode as u8, Ordering::SeqCst);
    }

    pub fn counts(&self) -> StrictCounts {
        let i = self.imp();
        let g = |a: &AtomicUsize| a.load(Ordering::SeqCst);
        StrictCounts {
            receive_messages: g(&i.receive_messages),
            send_messages: g(&i.send_messages),
            send_would_block: g(&i.send_would_block),
            bad_flags: g(&i.bad_flags),
            create_source: g(&i.create_source),
            condition_check: g(&i.condition_check),
            condition_wait: g(&i.condition_wait),
        }
    }
}

fn die(what: &str) -> ! {
    eprintln!(
        "StrictSocket: {what}: a non-blocking GDatagramBased user must never do this; aborting"
    );
    std::process::abort()
}

fn imp<'a>(d: *mut GDatagramBased) -> &'a imp::StrictSocket {
    // SAFETY: GIO calls these vfuncs only on instances of the type whose
    // GDatagramBased interface we initialised, i.e. StrictSocket instances,
    // which stay alive for the duration of the call.
    unsafe { (*(d as *const <imp::StrictSocket as ObjectSubclass>::Instance)).imp() }
}

/// Runs `f`, aborting if it panics (no unwinding into C).
fn guard<R>(what: &str, f: impl FnOnce() -> R) -> R {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(_) => die(&format!("panic in {what}")),
    }
}

/// # Safety
/// `error` is NULL or a valid, unset `GError**`.
unsafe fn set_error(error: *mut *mut GError, code: gio::IOErrorEnum, msg: &str) {
    if !error.is_null() {
        let e = glib::Error::new(code, msg);
        // SAFETY: per the contract; ownership of the GError moves to the caller.
        unsafe { *error = e.into_glib_ptr() };
    }
}

unsafe extern "C" fn receive_messages(
    d: *mut GDatagramBased,
    messages: *mut GInputMessage,
    num: u32,
    flags: i32,
    timeout: i64,
    cancellable: *mut GCancellable,
    error: *mut *mut GError,
) -> i32 {
    guard("receive_messages", || {
        let imp = imp(d);
        imp.receive_messages.fetch_add(1, Ordering::SeqCst);
        if timeout != 0 {
            die(&format!("receive_messages with timeout {timeout}"));
        }
        if flags != 0 {
            imp.bad_flags.fetch_add(1, Ordering::SeqCst);
            // SAFETY: `error` comes from GIO's wrapper.
            unsafe {
                set_error(
                    error,
                    gio::IOErrorEnum::InvalidArgument,
                    "StrictSocket: flags must be 0",
                )
            };
            return -1;
        }
        let inner: *mut GDatagramBased = imp
            .inner()
            .upcast_ref::<gio::DatagramBased>()
            .to_glib_none()
            .0;
        // SAFETY: forwards GIO's own arguments to the inner socket's
        // implementation; the inner socket is alive (we hold a reference).
        unsafe {
            gio::ffi::g_datagram_based_receive_messages(
                inner,
                messages,
                num,
                0,
                0,
                cancellable,
                error,
            )
        }
    })
}

unsafe extern "C" fn send_messages(
    d: *mut GDatagramBased,
    messages: *mut GOutputMessage,
    num: u32,
    flags: i32,
    timeout: i64,
    cancellable: *mut GCancellable,
    error: *mut *mut GError,
) -> i32 {
    guard("send_messages", || {
        let imp = imp(d);
        let call = imp.send_messages.fetch_add(1, Ordering::SeqCst);
        if timeout != 0 {
            die(&format!("send_messages with timeout {timeout}"));
        }
        if flags != 0 {
            imp.bad_flags.fetch_add(1, Ordering::SeqCst);
            // SAFETY: `error` comes from GIO's wrapper.
            unsafe {
                set_error(
                    error,
                    gio::IOErrorEnum::InvalidArgument,
                    "StrictSocket: flags must be 0",
                )
            };
            return -1;
        }
        let would_block = match imp.mode.load(Ordering::SeqCst) {
            0 => call % 2 == 0,
            1 => call % 2 == 1,
            _ => false,
        };
        if would_block {
            imp.send_would_block.fetch_add(1, Ordering::SeqCst);
            // SAFETY: `error` comes from GIO's wrapper.
            unsafe {
                set_error(
                    error,
                    gio::IOErrorEnum::WouldBlock,
                    "StrictSocket: pretending to be full",
                )
            };
            return -1;
        }
        let inner: *mut GDatagramBased = imp
            .inner()
            .upcast_ref::<gio::DatagramBased>()
            .to_glib_none()
            .0;
        // SAFETY: as in receive_messages.
        unsafe {
            gio::ffi::g_datagram_based_send_messages(inner, messages, num, 0, 0, cancellable, error)
        }
    })
}

/// `GDatagramBasedSourceFunc` and `GSourceFunc` (what GLib stores).
type DatagramSourceFn =
    unsafe extern "C" fn(*mut GDatagramBased, GIOCondition, glib::ffi::gpointer) -> gboolean;
type SourceFn = unsafe extern "C" fn(glib::ffi::gpointer) -> gboolean;

/// The parent source returned by `create_source`: dispatched when its child
/// (the inner socket's source) is ready.
#[repr(C)]
struct StrictSource {
    source: GSource,
    /// Strong reference to the StrictSocket, released in `finalize`.
    wrapper: *mut GDatagramBased,
    condition: GIOCondition,
}

static STRICT_SOURCE_FUNCS: glib::ffi::GSourceFuncs = glib::ffi::GSourceFuncs {
    prepare: None,
    check: None,
    dispatch: Some(strict_source_dispatch),
    finalize: Some(strict_source_finalize),
    closure_callback: None,
    closure_marshal: None,
};

unsafe extern "C" fn strict_source_dispatch(
    source: *mut GSource,
    callback: glib::ffi::GSourceFunc,
    user_data: glib::ffi::gpointer,
) -> gboolean {
    guard("source dispatch", || {
        // SAFETY: GLib dispatches only sources made by `create_source`
        // below, which are StrictSource-sized and initialised.
        let (wrapper, condition) = unsafe {
            (
                (*(source as *mut StrictSource)).wrapper,
                (*(source as *mut StrictSource)).condition,
            )
        };
        let Some(callback) = callback else {
            eprintln!("StrictSocket source dispatched without a callback");
            return glib::ffi::GFALSE;
        };
        // SAFETY: users of g_datagram_based_create_source set a
        // GDatagramBasedSourceFunc cast to GSourceFunc (as GSocket's do).
        let callback = unsafe { std::mem::transmute::<SourceFn, DatagramSourceFn>(callback) };
        // The *inner* GSocket's check: the StrictSocket's own would abort.
        let ready = gio::prelude::SocketExt::condition_check(imp(wrapper).inner(), unsafe {
            from_glib(condition)
        });
        // SAFETY: `wrapper` is kept alive by this source.
        unsafe { callback(wrapper, ready.into_glib(), user_data) }
    })
}

unsafe extern "C" fn strict_source_finalize(source: *mut GSource) {
    // SAFETY: as in dispatch; drops the reference taken in create_source.
    unsafe {
        glib::gobject_ffi::g_object_unref((*(source as *mut StrictSource)).wrapper as *mut _)
    };
}

unsafe extern "C" fn child_noop(
    _: *mut GDatagramBased,
    _: GIOCondition,
    _: glib::ffi::gpointer,
) -> gboolean {
    glib::ffi::GTRUE
}

unsafe extern "C" fn create_source(
    d: *mut GDatagramBased,
    condition: GIOCondition,
    cancellable: *mut GCancellable,
) -> *mut GSource {
    guard("create_source", || {
        let imp = imp(d);
        imp.create_source.fetch_add(1, Ordering::SeqCst);
        let inner: *mut GDatagramBased = imp
            .inner()
            .upcast_ref::<gio::DatagramBased>()
            .to_glib_none()
            .0;
        // SAFETY: plain GLib calls on objects we own. The child is the inner
        // socket's own source (full reference, handed to the parent); the
        // parent is a zero-initialised StrictSource whose fields are set
        // before anyone else sees it; GLib never writes to the funcs table.
        unsafe {
            let child = gio::ffi::g_datagram_based_create_source(inner, condition, cancellable);
            let cb = std::mem::transmute::<DatagramSourceFn, SourceFn>(child_noop);
            glib::ffi::g_source_set_callback(child, Some(cb), std::ptr::null_mut(), None);
            let parent = glib::ffi::g_source_new(
                &STRICT_SOURCE_FUNCS as *const _ as *mut glib::ffi::GSourceFuncs,
                std::mem::size_of::<StrictSource>() as u32,
            );
            let s = parent as *mut StrictSource;
            (*s).wrapper = glib::gobject_ffi::g_object_ref(d as *mut _) as *mut GDatagramBased;
            (*s).condition = condition;
            glib::ffi::g_source_add_child_source(parent, child);
            glib::ffi::g_source_unref(child);
            glib::ffi::g_source_set_static_name(parent, c"StrictSocket".as_ptr());
            parent
        }
    })
}

unsafe extern "C" fn condition_check(
    d: *mut GDatagramBased,
    condition: GIOCondition,
) -> GIOCondition {
    imp(d).condition_check.fetch_add(1, Ordering::SeqCst);
    die(&format!("condition_check({condition:#x})"))
}

unsafe extern "C" fn condition_wait(
    d: *mut GDatagramBased,
    condition: GIOCondition,
    timeout: i64,
    _cancellable: *mut GCancellable,
    _error: *mut *mut GError,
) -> gboolean {
    imp(d).condition_wait.fetch_add(1, Ordering::SeqCst);
    die(&format!(
        "condition_wait({condition:#x}, timeout {timeout})"
    ))
}

// SAFETY: fills GDatagramBasedInterface with trampolines that only ever see
// `imp::StrictSocket` instances.
unsafe impl IsImplementable<imp::StrictSocket> for gio::DatagramBased {
    fn interface_init(iface: &mut glib::Interface<Self>) {
        let iface: &mut gio::ffi::GDatagramBasedInterface = iface.as_mut();
        iface.receive_messages = Some(receive_messages);
        iface.send_messages = Some(send_messages);
        iface.create_source = Some(create_source);
        iface.condition_check = Some(condition_check);
        iface.condition_wait = Some(condition_wait);
    }
}
