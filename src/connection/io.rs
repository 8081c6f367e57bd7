//! The base socket, touched only the way the strictest GDatagramBased
//! allows: `create_source`, and send/receive with flags 0 and timeout 0.
//! Blocking waits run a private main context on the calling thread.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Instant;

use gio::prelude::*;
use glib::translate::*;

/// Largest UDP payload; a receive buffer this big never truncates.
pub const MAX_DATAGRAM: usize = 65_536;

/// Receives one datagram into `buf` without blocking: `Ok(None)` when
/// none is queued.
pub fn try_receive(
    base: &gio::DatagramBased,
    buf: &mut [u8],
) -> Result<Option<usize>, glib::Error> {
    let mut vector = gio::ffi::GInputVector {
        buffer: buf.as_mut_ptr() as *mut _,
        size: buf.len(),
    };
    let mut message = gio::ffi::GInputMessage {
        address: std::ptr::null_mut(),
        vectors: &mut vector,
        num_vectors: 1,
        bytes_received: 0,
        flags: 0,
        control_messages: std::ptr::null_mut(),
        num_control_messages: std::ptr::null_mut(),
    };
    let mut error = std::ptr::null_mut();
    // SAFETY: one message over one vector covering `buf`, which outlives the
    // call; flags 0 and timeout 0 as the base-socket rule requires.
    let n = unsafe {
        gio::ffi::g_datagram_based_receive_messages(
            base.to_glib_none().0,
            &mut message,
            1,
            0,
            0,
            std::ptr::null_mut(),
            &mut error,
        )
    };
    // SAFETY: `error` is what GIO set when n < 0.
    Ok(unsafe { count_or_would_block(n, error) }?.map(|_| message.bytes_received))
}

/// The result of a one-message, timeout-0 call: `Some(())` when the message
/// moved, `None` when it would block.
///
/// # Safety
/// When `n < 0`, `error` is the GError GIO set, which we take.
unsafe fn count_or_would_block(
    n: i32,
    error: *mut glib::ffi::GError,
) -> Result<Option<()>, glib::Error> {
    if n < 0 {
        // SAFETY: per the contract.
        let e: glib::Error = unsafe { from_glib_full(error) };
        return if e.matches(gio::IOErrorEnum::WouldBlock) {
            Ok(None)
        } else {
            Err(e)
        };
    }
    Ok((n == 1).then_some(()))
}

/// Sends one datagram without blocking: `Ok(false)` when the socket would
/// block (the caller waits for `G_IO_OUT` and retries).
pub fn try_send(base: &gio::DatagramBased, data: &[u8]) -> Result<bool, glib::Error> {
    let vector = gio::ffi::GOutputVector {
        buffer: data.as_ptr() as *const _,
        size: data.len(),
    };
    let mut message = gio::ffi::GOutputMessage {
        address: std::ptr::null_mut(),
        vectors: &vector as *const _ as *mut _,
        num_vectors: 1,
        bytes_sent: 0,
        control_messages: std::ptr::null_mut(),
        num_control_messages: 0,
    };
    let mut error = std::ptr::null_mut();
    // SAFETY: one message over one vector covering `data`, which outlives
    // the call; flags 0 and timeout 0.
    let n = unsafe {
        gio::ffi::g_datagram_based_send_messages(
            base.to_glib_none().0,
            &mut message,
            1,
            0,
            0,
            std::ptr::null_mut(),
            &mut error,
        )
    };
    // SAFETY: `error` is what GIO set when n < 0.
    Ok(unsafe { count_or_would_block(n, error) }?.is_some())
}

/// How a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Woken {
    /// The base socket reported the condition (or may have).
    Ready,
    /// The deadline passed first.
    Deadline,
}

thread_local! {
    /// One private context per thread for blocking waits; never the
    /// caller's, so no application source runs inside our waits.
    static WAIT_CONTEXT: glib::MainContext = glib::MainContext::new();
}

/// Blocks until `base` reports `condition`, `deadline` passes, or
/// `cancellable` is cancelled (then `G_IO_ERROR_CANCELLED`).
pub fn wait(
    base: &gio::DatagramBased,
    condition: glib::IOCondition,
    deadline: Option<Instant>,
    cancellable: Option<&gio::Cancellable>,
) -> Result<Woken, glib::Error> {
    if let Some(c) = cancellable {
        c.set_error_if_cancelled()?;
    }
    WAIT_CONTEXT.with(|ctx| {
        let woken = Arc::new(AtomicU8::new(NOT_YET));
        let source = watch(
            base,
            condition,
            cancellable,
            &woken,
            glib::ControlFlow::Break,
        );
        source.attach(Some(ctx));
        let result = run_until_woken(ctx, &woken, deadline, cancellable);
        source.destroy();
        result
    })
}

/// Values of the flag the wait sources set.
const NOT_YET: u8 = 0;
const READY: u8 = 1;
const DEADLINE: u8 = 2;

/// An unattached source on `base` for `condition` that sets `woken` to READY.
fn watch(
    base: &gio::DatagramBased,
    condition: glib::IOCondition,
    cancellable: Option<&gio::Cancellable>,
    woken: &Arc<AtomicU8>,
    then: glib::ControlFlow,
) -> glib::Source {
    let w = woken.clone();
    base.create_source(
        condition | glib::IOCondition::ERR | glib::IOCondition::HUP,
        cancellable,
        None,
        glib::Priority::DEFAULT,
        move |_, _| {
            w.store(READY, Ordering::Relaxed);
            then
        },
    )
}

/// Iterates `ctx` (which the caller may use) until `woken` is set, the
/// deadline passes or `cancellable` is cancelled; the deadline's timer and
/// the cancellable's source live only for this wait.
fn run_until_woken(
    ctx: &glib::MainContext,
    woken: &Arc<AtomicU8>,
    deadline: Option<Instant>,
    cancellable: Option<&gio::Cancellable>,
) -> Result<Woken, glib::Error> {
    let timer = deadline.map(|d| {
        let w = woken.clone();
        let source = glib::timeout_source_new(
            d.saturating_duration_since(Instant::now()),
            None,
            glib::Priority::DEFAULT,
            move || {
                w.store(DEADLINE, Ordering::Relaxed);
                glib::ControlFlow::Break
            },
        );
        source.attach(Some(ctx));
        source
    });
    let cancel_source = cancellable.map(|c| cancellable_source(c, ctx));
    while woken.load(Ordering::Relaxed) == NOT_YET && !cancellable.is_some_and(|c| c.is_cancelled())
    {
        ctx.iteration(true);
    }
    if let Some(t) = timer {
        t.destroy();
    }
    if let Some(c) = cancel_source {
        c.destroy();
    }
    if let Some(c) = cancellable {
        c.set_error_if_cancelled()?;
    }
    Ok(if woken.load(Ordering::Relaxed) == DEADLINE {
        Woken::Deadline
    } else {
        Woken::Ready
    })
}

/// A source that wakes `ctx` when `c` is cancelled (a cancellable source
/// needs a callback; this one does nothing).
fn cancellable_source(c: &gio::Cancellable, ctx: &glib::MainContext) -> glib::Source {
    let source = on_cancelled(c, || glib::ControlFlow::Continue);
    source.attach(Some(ctx));
    source
}

/// An unattached source that calls `func` when `c` is cancelled.
pub fn on_cancelled<F: FnMut() -> glib::ControlFlow + 'static>(
    c: &gio::Cancellable,
    func: F,
) -> glib::Source {
    unsafe extern "C" fn trampoline<F: FnMut() -> glib::ControlFlow + 'static>(
        _c: *mut gio::ffi::GCancellable,
        data: glib::ffi::gpointer,
    ) -> glib::ffi::gboolean {
        // SAFETY: `data` is the boxed closure installed below, alive until
        // the destroy notify runs.
        let func = unsafe { &mut *(data as *mut F) };
        crate::iface::guard("cancellable source", glib::ControlFlow::Break, func).into_glib()
    }
    unsafe extern "C" fn destroy<F>(data: glib::ffi::gpointer) {
        // SAFETY: `data` came from Box::into_raw below and is freed once.
        drop(unsafe { Box::from_raw(data as *mut F) });
    }
    // SAFETY: a new source we own; the callback has the signature GLib calls
    // a cancellable source's callback with (GCancellableSourceFunc), cast to
    // GSourceFunc as g_source_set_callback requires; the closure is freed by
    // the destroy notify.
    unsafe {
        let raw = gio::ffi::g_cancellable_source_new(c.to_glib_none().0);
        let func_ptr: unsafe extern "C" fn(
            *mut gio::ffi::GCancellable,
            glib::ffi::gpointer,
        ) -> glib::ffi::gboolean = trampoline::<F>;
        glib::ffi::g_source_set_callback(
            raw,
            Some(std::mem::transmute::<
                unsafe extern "C" fn(
                    *mut gio::ffi::GCancellable,
                    glib::ffi::gpointer,
                ) -> glib::ffi::gboolean,
                unsafe extern "C" fn(glib::ffi::gpointer) -> glib::ffi::gboolean,
            >(func_ptr)),
            Box::into_raw(Box::new(func)) as glib::ffi::gpointer,
            Some(destroy::<F>),
        );
        from_glib_full(raw)
    }
}

/// A reusable wait for `G_IO_IN` on one base socket: a private main
/// context with the socket's source attached once, so the data path
/// allocates no sources per datagram. Used by one thread at a time (the
/// caller holds the lock around it); other waits use [`wait`].
pub struct Waiter {
    ctx: glib::MainContext,
    fired: Arc<AtomicU8>,
    source: glib::Source,
}

// SAFETY: the context and the source are thread-safe GLib objects; the
// source's callback only touches an atomic. Access is serialised by the
// Mutex the connection keeps the Waiter in.
unsafe impl Send for Waiter {}

impl Waiter {
    pub fn new(base: &gio::DatagramBased) -> Waiter {
        let ctx = glib::MainContext::new();
        let fired = Arc::new(AtomicU8::new(NOT_YET));
        let source = watch(
            base,
            glib::IOCondition::IN,
            None,
            &fired,
            glib::ControlFlow::Continue,
        );
        source.attach(Some(&ctx));
        Waiter { ctx, fired, source }
    }

    /// Like [`wait`] for `G_IO_IN`.
    pub fn wait_in(
        &self,
        deadline: Option<Instant>,
        cancellable: Option<&gio::Cancellable>,
    ) -> Result<Woken, glib::Error> {
        if let Some(c) = cancellable {
            c.set_error_if_cancelled()?;
        }
        let _owner = self.ctx.acquire().map_err(|_| {
            crate::error::io(
                gio::IOErrorEnum::Busy,
                "The connection's wait context is in use by another thread",
            )
        })?;
        self.fired.store(NOT_YET, Ordering::Relaxed);
        run_until_woken(&self.ctx, &self.fired, deadline, cancellable)
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        self.source.destroy();
    }
}
