//! The base socket, touched only the way the strictest GDatagramBased
//! allows: `create_source`, and send/receive with flags 0 and timeout 0.
//! Blocking waits run a private main context on the calling thread, except
//! on a GSocket of GIO's own class, where a wait is one `poll` on its
//! descriptor and the cancellable's ([`wait`]; GIO's own
//! `g_socket_condition_timed_wait` does the same): the data path then costs
//! the socket calls only, no main-context iteration and no eventfd.
//!
//! One exception: a GSocket with a timeout (`g_socket_set_timeout`). GLib's
//! GSocket refuses every GDatagramBased call then (its `check_datagram_based`:
//! "Cannot use datagram operations on a socket with a timeout set";
//! receive/send return 0 *with* that error, which GIO's wrappers turn into a
//! CRITICAL and −1 without an error; `create_source` returns NULL). For
//! such a socket we use GSocket's own non-blocking calls
//! (`g_socket_receive_with_blocking`/`g_socket_send_with_blocking`, FALSE)
//! and watch its file descriptor with a plain unix-fd source, so GSocket's
//! hidden "timed out" flag (set by its own sources) is never set by us. The
//! timeout itself bounds the explicit handshake ([`socket_timeout`]).
//!
//! Every call into a base socket survives a misbehaving implementation: −1
//! without an error, or a NULL source, is a `G_IO_ERROR_FAILED`.
//!
//! For speed, a connection classifies its base socket once ([`Base`]).
//! The datagrams of an open GSocket of GIO's own class are read from its
//! descriptor directly (one `recv`, [`try_receive`]); sends to such a
//! socket, connected, are written to it directly (one `send`, or UDP
//! segmentation offload for a batch: [`super::gso`]). Both report
//! GSocket's errors, and both work whether or not the socket has a
//! timeout (GSocket's own calls are then only for its subclasses).

use std::cell::RefCell;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use gio::prelude::*;
use glib::translate::*;

/// Largest UDP payload; a receive buffer this big never truncates.
pub const MAX_DATAGRAM: usize = 65_536;

/// Most datagrams handed to the base socket in one call
/// ([`try_send_batch`]: one `sendmmsg` on a GSocket). Equal to the number
/// of spare buffers the engine's transport keeps, so a full batch is
/// recycled without allocating.
pub const MAX_BATCH: usize = 32;

/// Receives one datagram into `buf` without blocking: `Ok(None)` when
/// none is queued.
pub fn try_receive(base: &Base, buf: &mut [u8]) -> Result<Option<usize>, glib::Error> {
    if let Some(fd) = base.open_plain_fd() {
        return receive_on_fd(fd, buf);
    }
    let base = base.get();
    if let Some(socket) = timed_socket(base) {
        let mut error = std::ptr::null_mut();
        // SAFETY: `buf` is writable for its length and outlives the call.
        let n = unsafe {
            gio::ffi::g_socket_receive_with_blocking(
                socket.to_glib_none().0,
                buf.as_mut_ptr() as *mut _,
                buf.len(),
                false.into_glib(),
                std::ptr::null_mut(),
                &mut error,
            )
        };
        // SAFETY: `error` is what GSocket set, if anything.
        return unsafe { timed_socket_result(n, error) };
    }
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
/// A base socket that breaks GIO's contract is an error, never a crash:
/// −1 without a GError (what `g_datagram_based_receive_messages` returns
/// when the implementation broke its postcondition) is `G_IO_ERROR_FAILED`;
/// an error next to a success is dropped.
///
/// # Safety
/// `error` is NULL or a GError the call set, which we take.
unsafe fn count_or_would_block(
    n: i32,
    error: *mut glib::ffi::GError,
) -> Result<Option<()>, glib::Error> {
    // SAFETY: per the contract.
    let moved = unsafe { bytes_or_would_block(n as isize, error) }?;
    Ok(moved.filter(|&n| n == 1).map(|_| ()))
}

/// Like [`count_or_would_block`] for a byte count (GSocket's calls).
///
/// # Safety
/// As for [`count_or_would_block`].
unsafe fn bytes_or_would_block(
    n: isize,
    error: *mut glib::ffi::GError,
) -> Result<Option<usize>, glib::Error> {
    // SAFETY: per the contract.
    let error: Option<glib::Error> = unsafe { from_glib_full(error) };
    if n < 0 {
        let e = error.unwrap_or_else(failed_without_error);
        return if e.matches(gio::IOErrorEnum::WouldBlock) {
            Ok(None)
        } else {
            Err(e)
        };
    }
    Ok(Some(n as usize))
}

/// [`bytes_or_would_block`] for GSocket's own calls on a socket with a
/// timeout. Their TIMED_OUT only means that some GSocketSource on the
/// socket (not ours: we watch the descriptor) reached the timeout, and the
/// flag it set is cleared by this report: it is "nothing now", like
/// WOULD_BLOCK. The connection's own operations time out by their rules.
///
/// # Safety
/// As for [`count_or_would_block`].
unsafe fn timed_socket_result(
    n: isize,
    error: *mut glib::ffi::GError,
) -> Result<Option<usize>, glib::Error> {
    // SAFETY: per the contract.
    match unsafe { bytes_or_would_block(n, error) } {
        Err(e) if e.matches(gio::IOErrorEnum::TimedOut) => Ok(None),
        r => r,
    }
}

/// What a base socket's failure without a GError becomes.
fn failed_without_error() -> glib::Error {
    crate::error::io(
        gio::IOErrorEnum::Failed,
        "The base socket failed without an error",
    )
}

/// GSocket's type, looked up once: GLib 2.74's `g_socket_get_type` costs
/// four `g_type_ensure` calls each time, and the data path asks often.
fn socket_type() -> glib::Type {
    static TYPE: std::sync::OnceLock<glib::Type> = std::sync::OnceLock::new();
    *TYPE.get_or_init(gio::Socket::static_type)
}

/// `base` as a GSocket (of any class).
fn as_socket(base: &gio::DatagramBased) -> Option<&gio::Socket> {
    // SAFETY: an instance whose type is GSocket or derives from it is a
    // GSocket.
    base.type_()
        .is_a(socket_type())
        .then(|| unsafe { base.unsafe_cast_ref::<gio::Socket>() })
}

/// `base` as a GSocket with a timeout set (see the module comment).
fn timed_socket(base: &gio::DatagramBased) -> Option<&gio::Socket> {
    as_socket(base).filter(|s| s.timeout() != 0)
}

/// The timeout set on the base socket with `g_socket_set_timeout`, if any:
/// the explicit handshake must finish within it (`G_IO_ERROR_TIMED_OUT`),
/// like GSocket's own blocking calls (see `Connection::bounded`).
pub fn socket_timeout(base: &gio::DatagramBased) -> Option<Duration> {
    timed_socket(base).map(|s| Duration::from_secs(s.timeout().into()))
}

/// Sends one datagram without blocking: `Ok(false)` when the socket would
/// block (the caller waits for `G_IO_OUT` and retries).
pub fn try_send(base: &Base, data: &[u8]) -> Result<bool, glib::Error> {
    // A connected GSocket of GIO's own class: one send(2), as GSocket
    // itself would make (unconnected or closed: its own call gives its
    // error).
    if let Some(fd) = base.connected_plain_fd() {
        return send_on_fd(fd, data);
    }
    let base = base.get();
    if let Some(socket) = timed_socket(base) {
        let mut error = std::ptr::null_mut();
        // SAFETY: `data` is readable for its length and outlives the call.
        let n = unsafe {
            gio::ffi::g_socket_send_with_blocking(
                socket.to_glib_none().0,
                data.as_ptr() as *const _,
                data.len(),
                false.into_glib(),
                std::ptr::null_mut(),
                &mut error,
            )
        };
        // A datagram goes whole or not at all.
        // SAFETY: `error` is what GSocket set, if anything.
        return Ok(unsafe { timed_socket_result(n, error) }?.is_some());
    }
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

/// Sends `datagrams` in order, as many as the socket takes now, in one
/// call (`g_datagram_based_send_messages` with several messages: one
/// `sendmmsg` on a GSocket; on a connected GSocket of GIO's own class,
/// our own `sendmmsg` with runs of equal-size datagrams segmented by the
/// kernel, as `gso` allows: see [`super::gso`]). Returns how many went; 0
/// when the first would block. At most [`MAX_BATCH`] per call.
pub fn try_send_batch(
    base: &Base,
    datagrams: &[Vec<u8>],
    gso: &super::gso::Gso,
) -> Result<usize, glib::Error> {
    let n = datagrams.len().min(MAX_BATCH);
    // Closed or unconnected: GSocket's own call gives its error.
    if let Some(fd) = (n > 1).then(|| base.connected_plain_fd()).flatten() {
        if let Some(sent) = super::gso::try_send(fd, &datagrams[..n], gso)? {
            return Ok(sent);
        }
    }
    if n <= 1 || timed_socket(base.get()).is_some() {
        // One at a time: nothing to gain, or GSocket refuses its
        // GDatagramBased calls (see the module comment).
        let mut sent = 0;
        for d in &datagrams[..n] {
            if !try_send(base, d)? {
                break;
            }
            sent += 1;
        }
        return Ok(sent);
    }
    let mut vectors = [gio::ffi::GOutputVector {
        buffer: std::ptr::null(),
        size: 0,
    }; MAX_BATCH];
    let mut messages = [gio::ffi::GOutputMessage {
        address: std::ptr::null_mut(),
        vectors: std::ptr::null_mut(),
        num_vectors: 1,
        bytes_sent: 0,
        control_messages: std::ptr::null_mut(),
        num_control_messages: 0,
    }; MAX_BATCH];
    for ((d, v), m) in datagrams.iter().zip(&mut vectors).zip(&mut messages) {
        *v = gio::ffi::GOutputVector {
            buffer: d.as_ptr() as *const _,
            size: d.len(),
        };
        m.vectors = v;
    }
    let mut error = std::ptr::null_mut();
    // SAFETY: `n` messages, each over one vector covering a datagram; the
    // vectors and datagrams outlive the call; flags 0 and timeout 0.
    let sent = unsafe {
        gio::ffi::g_datagram_based_send_messages(
            base.get().to_glib_none().0,
            messages.as_mut_ptr(),
            n as u32,
            0,
            0,
            std::ptr::null_mut(),
            &mut error,
        )
    };
    // SAFETY: `error` is what GIO set when sent < 0.
    Ok(unsafe { bytes_or_would_block(sent as isize, error) }?
        .unwrap_or(0)
        .min(n))
}

/// `base` as a GSocket of GIO's own class (a subclass might implement
/// GDatagramBased another way): the socket we may use directly, by its
/// descriptor.
fn plain_socket(base: &gio::DatagramBased) -> Option<&gio::Socket> {
    // SAFETY: an instance of exactly GSocket's type is a GSocket.
    (base.type_() == socket_type()).then(|| unsafe { base.unsafe_cast_ref::<gio::Socket>() })
}

/// A connection's base socket, classified once: the data path asks on
/// every datagram, and each GSocket call costs a type check (four
/// `g_type_ensure` in GLib 2.74).
#[derive(Debug)]
pub struct Base {
    socket: gio::DatagramBased,
    /// The descriptor of a GSocket of GIO's own class. Fixed for the
    /// socket's life, but only ours to use while the socket is open
    /// ([`Base::open_plain_fd`]): after `g_socket_close` the number may
    /// belong to another file.
    plain_fd: Option<RawFd>,
    /// The plain socket was seen connected (GSocket has no way back).
    connected: AtomicBool,
}

impl Base {
    pub fn new(socket: gio::DatagramBased) -> Base {
        let plain_fd = plain_socket(&socket).and_then(|s| {
            // SAFETY: `s` is alive for the call.
            let fd = unsafe { gio::ffi::g_socket_get_fd(s.to_glib_none().0) };
            (fd >= 0).then_some(fd)
        });
        Base {
            socket,
            plain_fd,
            connected: AtomicBool::new(false),
        }
    }

    /// The base socket as GIO knows it.
    pub fn get(&self) -> &gio::DatagramBased {
        &self.socket
    }

    /// The plain GSocket, if that is what the base is.
    fn plain(&self) -> Option<&gio::Socket> {
        // SAFETY: `plain_fd` is set only for an instance of exactly
        // GSocket's type.
        self.plain_fd
            .map(|_| unsafe { self.socket.unsafe_cast_ref::<gio::Socket>() })
    }

    /// The descriptor of a plain GSocket that is still open. Its datagrams
    /// are then received with one plain `recv` (what
    /// `g_socket_receive_messages` itself does for one message, without its
    /// type checks, GError for EAGAIN and message conversions).
    fn open_plain_fd(&self) -> Option<RawFd> {
        let fd = self.plain_fd?;
        (!self.plain()?.is_closed()).then_some(fd)
    }

    /// [`Base::open_plain_fd`] for a connected socket: where datagrams may
    /// be sent without an address (unconnected: GSocket's own call gives
    /// its error).
    fn connected_plain_fd(&self) -> Option<RawFd> {
        let fd = self.open_plain_fd()?;
        if !self.connected.load(Ordering::Relaxed) {
            if !self.plain()?.is_connected() {
                return None;
            }
            self.connected.store(true, Ordering::Relaxed);
        }
        Some(fd)
    }

    /// Whether waits on this base poll its descriptor ([`wait`]'s fast
    /// path) rather than iterate a main context.
    pub fn polls_directly(&self) -> bool {
        self.plain_fd.is_some()
    }
}

/// Runs one non-blocking socket call (`MSG_DONTWAIT`; GSocket keeps its
/// descriptors non-blocking anyway) until it is not interrupted: the byte
/// count, `Ok(None)` when it would block, otherwise the error as GSocket
/// reports it (`what: strerror`, coded by `g_io_error_from_errno`).
fn nonblocking(what: &str, mut call: impl FnMut() -> isize) -> Result<Option<usize>, glib::Error> {
    loop {
        let n = call();
        if n >= 0 {
            return Ok(Some(n as usize));
        }
        let err = std::io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) => return Ok(None),
            errno => return Err(socket_error(errno.unwrap_or(0), what, &err)),
        }
    }
}

/// One datagram from `fd` without blocking: `Ok(None)` when none is queued.
fn receive_on_fd(fd: std::os::fd::RawFd, buf: &mut [u8]) -> Result<Option<usize>, glib::Error> {
    nonblocking("Error receiving message", || {
        // SAFETY: `buf` is writable for its length; `fd` is the open
        // descriptor of a GSocket the caller holds a reference to.
        unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) }
    })
}

/// One datagram to the connected `fd` without blocking: `Ok(false)` when
/// the socket would block (a datagram goes whole or not at all).
fn send_on_fd(fd: std::os::fd::RawFd, data: &[u8]) -> Result<bool, glib::Error> {
    let sent = nonblocking("Error sending message", || {
        // SAFETY: `data` is readable for its length; `fd` is the open
        // descriptor of a GSocket the caller holds a reference to.
        unsafe {
            libc::send(
                fd,
                data.as_ptr().cast(),
                data.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        }
    })?;
    Ok(sent.is_some())
}

/// A socket call's failure as GSocket words it: `what: strerror`, in the
/// GIOError domain by errno.
pub(super) fn socket_error(errno: i32, what: &str, err: &std::io::Error) -> glib::Error {
    // SAFETY: g_io_error_from_errno is a pure mapping; its result is a
    // GIOErrorEnum value (from_glib maps unknown ones to __Unknown).
    let code: gio::IOErrorEnum = unsafe { from_glib(gio::ffi::g_io_error_from_errno(errno)) };
    let reason = err.to_string();
    // std appends " (os error N)": GSocket's message is strerror alone.
    let reason = reason.split(" (os error").next().unwrap_or(&reason);
    crate::error::io(code, format!("{what}: {reason}"))
}

/// [`wait`] on a GSocket of GIO's own class: one `poll` on its descriptor
/// and the cancellable's (`g_cancellable_make_pollfd`), which is what
/// `g_socket_condition_timed_wait` does, with microsecond deadlines rounded
/// up rather than down (no early wake-ups) and without GSocket's own
/// timeout (a socket with `g_socket_set_timeout` keeps its hidden flag
/// untouched: see the module comment). No main context, no source, no
/// allocation.
fn poll_socket(
    fd: RawFd,
    condition: glib::IOCondition,
    deadline: Option<Instant>,
    cancellable: Option<&gio::Cancellable>,
) -> Result<Woken, glib::Error> {
    let mut events = 0;
    for (c, e) in [
        (glib::IOCondition::IN, libc::POLLIN),
        (glib::IOCondition::OUT, libc::POLLOUT),
        (glib::IOCondition::PRI, libc::POLLPRI),
    ] {
        if condition.contains(c) {
            events |= e;
        }
    }
    let mut fds = [
        libc::pollfd {
            fd,
            events,
            revents: 0,
        },
        libc::pollfd {
            fd: -1,
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    let mut cancel_fd = glib::ffi::GPollFD {
        fd: -1,
        events: 0,
        revents: 0,
    };
    // SAFETY: `cancel_fd` is writable; a TRUE result is paired with
    // g_cancellable_release_fd below.
    let cancel = cancellable.filter(|c| unsafe {
        gio::ffi::g_cancellable_make_pollfd(c.to_glib_none().0, &mut cancel_fd) != 0
    });
    fds[1].fd = cancel_fd.fd;
    let nfds = if cancel.is_some() { 2 } else { 1 };
    let polled = loop {
        let timeout_ms = match deadline {
            None => -1,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                // Rounded up, so a wait never ends before its deadline.
                left.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32
            }
        };
        // SAFETY: `fds` holds `nfds` initialised entries.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), nfds, timeout_ms) };
        if r >= 0 {
            break Ok(r);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            break Err(e);
        }
    };
    if let Some(c) = cancel {
        // SAFETY: pairs the successful g_cancellable_make_pollfd above.
        unsafe { gio::ffi::g_cancellable_release_fd(c.to_glib_none().0) };
    }
    if let Some(c) = cancellable {
        c.set_error_if_cancelled()?;
    }
    match polled {
        Ok(0) => Ok(Woken::Deadline),
        Ok(_) => Ok(Woken::Ready),
        Err(e) => Err(crate::error::io(
            gio::IOErrorEnum::Failed,
            format!("Could not wait on the base socket: {e}"),
        )),
    }
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
    /// The one [`Waiter`] source left attached to this thread's
    /// [`WAIT_CONTEXT`] between waits, if any.
    static PARKED: RefCell<Weak<Parked>> = const { RefCell::new(Weak::new()) };
}

/// Takes the source parked on this thread's wait context off it: a wait
/// for something else must not iterate it (on a readable base it would
/// fire at every iteration). Its waiter makes a new one next time.
fn unpark() {
    if let Some(parked) = PARKED.with(|p| p.take().upgrade()) {
        parked.source.destroy();
    }
}

/// Blocks until `base` reports `condition`, `deadline` passes, or
/// `cancellable` is cancelled (then `G_IO_ERROR_CANCELLED`).
pub fn wait(
    base: &Base,
    condition: glib::IOCondition,
    deadline: Option<Instant>,
    cancellable: Option<&gio::Cancellable>,
) -> Result<Woken, glib::Error> {
    if let Some(c) = cancellable {
        c.set_error_if_cancelled()?;
    }
    match base.plain_fd {
        // (Closed meanwhile: poll reports it, and the receive or send that
        // follows gives GSocket's error.)
        Some(fd) => poll_socket(fd, condition, deadline, cancellable),
        None => wait_on_source(base.get(), condition, deadline, cancellable),
    }
}

/// [`wait`] on any base socket: its source on this thread's wait context.
fn wait_on_source(
    base: &gio::DatagramBased,
    condition: glib::IOCondition,
    deadline: Option<Instant>,
    cancellable: Option<&gio::Cancellable>,
) -> Result<Woken, glib::Error> {
    unpark();
    WAIT_CONTEXT.with(|ctx| {
        let woken = Arc::new(AtomicU8::new(NOT_YET));
        let source = watch(
            base,
            condition,
            cancellable,
            &woken,
            glib::ControlFlow::Break,
        )?;
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
) -> Result<glib::Source, glib::Error> {
    let w = woken.clone();
    base_source(
        base,
        condition | glib::IOCondition::ERR | glib::IOCondition::HUP,
        cancellable,
        move || {
            w.store(READY, Ordering::Relaxed);
            then
        },
    )
}

extern "C" {
    // GLib's, declared in glib-unix.h (glib-sys does not bind it).
    fn g_unix_fd_source_new(
        fd: std::ffi::c_int,
        condition: glib::ffi::GIOCondition,
    ) -> *mut glib::ffi::GSource;
}

/// An unattached source that calls `func` when `base` may be ready for
/// `condition` (or `cancellable` is cancelled). For a GSocket with a
/// timeout, a unix-fd source on its descriptor (GSocket refuses
/// `create_source` then; see the module comment). A base socket that
/// returns no source is `G_IO_ERROR_FAILED`.
pub fn base_source<F: FnMut() -> glib::ControlFlow + 'static>(
    base: &gio::DatagramBased,
    condition: glib::IOCondition,
    cancellable: Option<&gio::Cancellable>,
    func: F,
) -> Result<glib::Source, glib::Error> {
    unsafe extern "C" fn on_base<F: FnMut() -> glib::ControlFlow + 'static>(
        _base: *mut gio::ffi::GDatagramBased,
        _condition: glib::ffi::GIOCondition,
        data: glib::ffi::gpointer,
    ) -> glib::ffi::gboolean {
        // SAFETY: `data` is the boxed closure set below, alive until the
        // destroy notify runs.
        let func = unsafe { &mut *(data as *mut F) };
        crate::iface::guard("base socket source", glib::ControlFlow::Break, func).into_glib()
    }
    unsafe extern "C" fn on_fd<F: FnMut() -> glib::ControlFlow + 'static>(
        _fd: std::ffi::c_int,
        _condition: glib::ffi::GIOCondition,
        data: glib::ffi::gpointer,
    ) -> glib::ffi::gboolean {
        // SAFETY: as in `on_base`.
        let func = unsafe { &mut *(data as *mut F) };
        crate::iface::guard("base socket source", glib::ControlFlow::Break, func).into_glib()
    }
    unsafe extern "C" fn destroy<F>(data: glib::ffi::gpointer) {
        // SAFETY: `data` came from Box::into_raw below and is freed once.
        drop(unsafe { Box::from_raw(data as *mut F) });
    }
    type Callback<T> = unsafe extern "C" fn(
        T,
        glib::ffi::GIOCondition,
        glib::ffi::gpointer,
    ) -> glib::ffi::gboolean;
    type SourceFunc = unsafe extern "C" fn(glib::ffi::gpointer) -> glib::ffi::gboolean;
    // SAFETY: each source gets the callback type its dispatch calls
    // (GDatagramBasedSourceFunc, GUnixFDSourceFunc), stored as GSourceFunc
    // as g_source_set_callback requires; the closure is freed by the destroy
    // notify; the new source is owned by the returned wrapper.
    unsafe {
        let (raw, callback) = match timed_socket(base) {
            Some(socket) => {
                let fd = gio::ffi::g_socket_get_fd(socket.to_glib_none().0);
                let raw = g_unix_fd_source_new(fd, condition.into_glib());
                if let Some(c) = cancellable {
                    let child = on_cancelled(c, || glib::ControlFlow::Continue);
                    glib::ffi::g_source_add_child_source(raw, child.to_glib_none().0);
                }
                let f: Callback<std::ffi::c_int> = on_fd::<F>;
                (
                    raw,
                    std::mem::transmute::<Callback<std::ffi::c_int>, SourceFunc>(f),
                )
            }
            None => {
                let raw = gio::ffi::g_datagram_based_create_source(
                    base.to_glib_none().0,
                    condition.into_glib(),
                    cancellable.to_glib_none().0,
                );
                let f: Callback<*mut gio::ffi::GDatagramBased> = on_base::<F>;
                (
                    raw,
                    std::mem::transmute::<Callback<*mut gio::ffi::GDatagramBased>, SourceFunc>(f),
                )
            }
        };
        if raw.is_null() {
            return Err(crate::error::io(
                gio::IOErrorEnum::Failed,
                "The base socket could not create a source to wait on",
            ));
        }
        glib::ffi::g_source_set_callback(
            raw,
            Some(callback),
            Box::into_raw(Box::new(func)) as glib::ffi::gpointer,
            Some(destroy::<F>),
        );
        Ok(from_glib_full(raw))
    }
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

/// A reusable wait for `G_IO_IN` on one base socket: its source stays
/// attached ("parked") to the wait context of the thread that waited last,
/// so the data path allocates no sources per datagram. At most one source
/// is parked per thread: a wait on another base takes it off (that
/// connection's next wait makes a new one), so a connection owns no main
/// context and no descriptor of its own, and an idle one costs a source.
/// Used by one thread at a time (the caller holds the lock around it);
/// other waits use [`wait`].
pub struct Waiter {
    base: gio::DatagramBased,
    /// The source, attached to the wait context of the thread that waited
    /// last (destroyed there when another wait took it off).
    parked: Option<Arc<Parked>>,
}

/// A [`Waiter`]'s source and the flag it sets.
struct Parked {
    source: glib::Source,
    fired: Arc<AtomicU8>,
}

impl Drop for Parked {
    fn drop(&mut self) {
        // Thread-safe, and a no-op on a source already destroyed.
        self.source.destroy();
    }
}

impl Waiter {
    pub fn new(base: &gio::DatagramBased) -> Waiter {
        Waiter {
            base: base.clone(),
            parked: None,
        }
    }

    /// Like [`wait`] for `G_IO_IN`.
    pub fn wait_in(
        &mut self,
        deadline: Option<Instant>,
        cancellable: Option<&gio::Cancellable>,
    ) -> Result<Woken, glib::Error> {
        if let Some(c) = cancellable {
            c.set_error_if_cancelled()?;
        }
        if timed_socket(&self.base).is_some() {
            // The socket's fd source is made per wait there (the timeout
            // may be set or cleared at any time).
            return wait_on_source(&self.base, glib::IOCondition::IN, deadline, cancellable);
        }
        WAIT_CONTEXT.with(|ctx| {
            let here = PARKED.with(|p| p.borrow().upgrade());
            let parked = match (&self.parked, here) {
                (Some(mine), Some(here)) if Arc::ptr_eq(mine, &here) => here,
                (_, here) => {
                    if let Some(other) = here {
                        other.source.destroy();
                    }
                    let fired = Arc::new(AtomicU8::new(NOT_YET));
                    let source = watch(
                        &self.base,
                        glib::IOCondition::IN,
                        None,
                        &fired,
                        glib::ControlFlow::Continue,
                    )?;
                    source.attach(Some(ctx));
                    let parked = Arc::new(Parked { source, fired });
                    PARKED.with(|p| *p.borrow_mut() = Arc::downgrade(&parked));
                    // Our previous source, parked on another thread's
                    // context, goes.
                    self.parked = Some(parked.clone());
                    parked
                }
            };
            parked.fired.store(NOT_YET, Ordering::Relaxed);
            run_until_woken(ctx, &parked.fired, deadline, cancellable)
        })
    }
}
