//! `DtlsOpensslPeerSocket`: the GDatagramBased of one peer of a
//! [`crate::listener::Server`], the base socket of that peer's
//! `DtlsOpensslServerConnection`.
//!
//! Receiving pops from a bounded queue the listener fills with the peer's
//! datagrams (never blocking unless the caller gives a timeout); sending
//! is `g_socket_send_message_with_timeout` to the peer's address on the
//! listener's shared socket. A source made by `create_source` is woken per
//! peer: when the listener queues a datagram it marks each of this peer's
//! sources ready (`g_source_set_ready_time`, which also wakes the context
//! the source runs on, from any thread). No file descriptor per peer.
//!
//! Sources register themselves the first time their context prepares them
//! (so only attached sources are ever woken), holding a reference that is
//! dropped once the source is destroyed.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gio::prelude::*;
use gio::subclass::prelude::*;
use glib::ffi::{gboolean, gpointer, GSource, GSourceFunc, GSourceFuncs};
use glib::translate::*;

use crate::error;
use crate::iface::datagram_based::{DatagramBasedImpl, InputMessage, OutputMessage};

/// What the listener and the peer's socket share.
#[derive(Debug)]
pub(crate) struct PeerShared {
    socket: gio::Socket,
    address: gio::SocketAddress,
    queue: Mutex<VecDeque<Vec<u8>>>,
    capacity: usize,
    closed: AtomicBool,
    /// Attached sources to wake (strong references; destroyed ones are
    /// pruned).
    wakers: Mutex<Vec<glib::Source>>,
    /// `g_get_monotonic_time` of the last datagram received from the peer.
    last_activity: AtomicI64,
    /// Datagrams dropped because the queue was full.
    dropped: AtomicU64,
}

// SAFETY: GSocket and GSocketAddress are thread-safe GObjects; GSources
// are reference-counted thread-safely and only touched through GLib's
// thread-safe calls here; the rest is behind a Mutex or atomic.
#[allow(unsafe_code)]
unsafe impl Send for PeerShared {}
#[allow(unsafe_code)]
unsafe impl Sync for PeerShared {}

impl PeerShared {
    /// The peer at `address` on the listener's `socket`, keeping at most
    /// `capacity` received datagrams.
    pub(crate) fn new(
        socket: gio::Socket,
        address: gio::SocketAddress,
        capacity: usize,
    ) -> Arc<PeerShared> {
        Arc::new(PeerShared {
            socket,
            address,
            queue: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
            closed: AtomicBool::new(false),
            wakers: Mutex::new(Vec::new()),
            last_activity: AtomicI64::new(glib::monotonic_time()),
            dropped: AtomicU64::new(0),
        })
    }

    /// Queues one datagram from the peer and wakes its sources; `false`
    /// (datagram dropped) when the queue is full or the peer closed.
    pub(crate) fn deliver(&self, datagram: &[u8]) -> bool {
        self.last_activity
            .store(glib::monotonic_time(), Ordering::Relaxed);
        if self.closed.load(Ordering::Acquire) {
            return false;
        }
        {
            let mut q = self.queue.lock().unwrap();
            if q.len() >= self.capacity {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return false;
            }
            q.push_back(datagram.to_vec());
        }
        self.wake();
        true
    }

    /// Ends the peer: receives fail with `G_IO_ERROR_CLOSED` once the
    /// queue is empty, sends at once; sources wake with `G_IO_HUP`.
    pub(crate) fn close(&self) {
        if !self.closed.swap(true, Ordering::AcqRel) {
            self.queue.lock().unwrap().clear();
            self.wake();
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Time since the last datagram from the peer.
    pub(crate) fn idle(&self) -> Duration {
        let us = glib::monotonic_time() - self.last_activity.load(Ordering::Relaxed);
        Duration::from_micros(us.max(0) as u64)
    }

    /// Datagrams dropped because the queue was full.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub(crate) fn address(&self) -> &gio::SocketAddress {
        &self.address
    }

    fn pop(&self) -> Option<Vec<u8>> {
        self.queue.lock().unwrap().pop_front()
    }

    fn has_queued(&self) -> bool {
        !self.queue.lock().unwrap().is_empty()
    }

    fn ready(&self, condition: glib::IOCondition) -> glib::IOCondition {
        use glib::IOCondition as C;
        if self.is_closed() {
            return (condition & (C::IN | C::OUT)) | C::HUP;
        }
        let mut r = condition & C::OUT;
        if condition.contains(C::IN) && self.has_queued() {
            r |= C::IN;
        }
        r
    }

    fn register(&self, source: glib::Source) {
        let mut dead = Vec::new();
        {
            let mut w = self.wakers.lock().unwrap();
            let mut i = 0;
            while i < w.len() {
                if w[i].is_destroyed() {
                    dead.push(w.swap_remove(i));
                } else {
                    i += 1;
                }
            }
            w.push(source);
        }
        // Released outside the lock: a last reference runs finalize.
        drop(dead);
    }

    fn wake(&self) {
        let mut dead = Vec::new();
        {
            let mut w = self.wakers.lock().unwrap();
            let mut i = 0;
            while i < w.len() {
                if w[i].is_destroyed() {
                    dead.push(w.swap_remove(i));
                } else {
                    set_ready_time(&w[i], 0);
                    i += 1;
                }
            }
        }
        drop(dead);
    }
}

fn set_ready_time(source: &glib::Source, time: i64) {
    // SAFETY: a live source (we hold a reference) of ours; the call is
    // thread-safe and wakes the source's context.
    #[allow(unsafe_code)]
    unsafe {
        glib::ffi::g_source_set_ready_time(source.to_glib_none().0, time)
    };
}

glib::wrapper! {
    /// One peer of a listener, as a GDatagramBased.
    pub struct PeerSocket(ObjectSubclass<imp::PeerSocket>)
        @implements gio::DatagramBased;
}

// SAFETY: all state is in `PeerShared` (thread-safe) set once.
#[allow(unsafe_code)]
unsafe impl Send for PeerSocket {}
#[allow(unsafe_code)]
unsafe impl Sync for PeerSocket {}

impl PeerSocket {
    pub(crate) fn new(shared: Arc<PeerShared>) -> PeerSocket {
        let obj: PeerSocket = glib::Object::new();
        let _ = obj.imp().shared.set(shared);
        obj
    }

    pub(crate) fn shared(&self) -> &Arc<PeerShared> {
        self.imp().shared.get().expect("set at construction")
    }
}

fn closed_error() -> glib::Error {
    error::io(
        gio::IOErrorEnum::Closed,
        "The listener closed this peer (idle, replaced, or the listener closed)",
    )
}

/// Blocks until `shared` is ready for `condition`, the deadline passes
/// (`Ok(false)`) or `cancellable` is cancelled.
fn wait_ready(
    obj: &PeerSocket,
    condition: glib::IOCondition,
    timeout_us: i64,
    cancellable: Option<&gio::Cancellable>,
) -> Result<bool, glib::Error> {
    let shared = obj.shared();
    let deadline = (timeout_us > 0).then(|| glib::monotonic_time() + timeout_us);
    let ctx = glib::MainContext::new();
    // Without a callback our dispatch only clears the ready time.
    let source = new_source(obj, condition, cancellable);
    source.attach(Some(&ctx));
    let _owner = ctx
        .acquire()
        .map_err(|_| error::io(gio::IOErrorEnum::Failed, "could not acquire a wait context"))?;
    let result = loop {
        if let Some(c) = cancellable {
            if let Err(e) = c.set_error_if_cancelled() {
                break Err(e);
            }
        }
        if !shared.ready(condition).is_empty() {
            break Ok(true);
        }
        match deadline {
            Some(d) if glib::monotonic_time() >= d => break Ok(false),
            Some(d) => {
                let left = Duration::from_micros((d - glib::monotonic_time()).max(0) as u64);
                let t = glib::timeout_source_new(left, None, glib::Priority::DEFAULT, || {
                    glib::ControlFlow::Break
                });
                t.attach(Some(&ctx));
                ctx.iteration(true);
                t.destroy();
            }
            None => {
                ctx.iteration(true);
            }
        }
    };
    source.destroy();
    result
}

pub(crate) mod imp {
    use super::*;

    #[derive(Debug, Default)]
    pub struct PeerSocket {
        pub(super) shared: std::sync::OnceLock<Arc<PeerShared>>,
    }

    #[glib::object_subclass]
    impl ObjectSubclass for PeerSocket {
        const NAME: &'static str = "DtlsOpensslPeerSocket";
        type Type = super::PeerSocket;
        type Interfaces = (gio::DatagramBased,);
    }

    impl ObjectImpl for PeerSocket {}

    impl DatagramBasedImpl for PeerSocket {
        fn receive_messages(
            &self,
            messages: &mut [InputMessage],
            flags: i32,
            timeout_us: i64,
            cancellable: Option<&gio::Cancellable>,
        ) -> Result<usize, glib::Error> {
            if flags != 0 {
                return Err(error::io(
                    gio::IOErrorEnum::InvalidArgument,
                    "Receive flags are not supported",
                ));
            }
            if messages.is_empty() {
                return Ok(0);
            }
            let obj = self.obj();
            let shared = obj.shared();
            loop {
                if let Some(c) = cancellable {
                    c.set_error_if_cancelled()?;
                }
                let mut n = 0;
                while n < messages.len() {
                    let Some(d) = shared.pop() else { break };
                    // A datagram longer than the buffers is cut, as a
                    // socket would cut it.
                    let cap = messages[n].capacity().min(d.len());
                    messages[n].fill(&d[..cap]);
                    n += 1;
                }
                if n > 0 {
                    return Ok(n);
                }
                if shared.is_closed() {
                    return Err(closed_error());
                }
                if timeout_us == 0 {
                    return Err(error::io(
                        gio::IOErrorEnum::WouldBlock,
                        "No datagram from this peer yet",
                    ));
                }
                if !wait_ready(&obj, glib::IOCondition::IN, timeout_us, cancellable)? {
                    return Err(error::io(
                        gio::IOErrorEnum::TimedOut,
                        "Socket I/O timed out",
                    ));
                }
            }
        }

        fn send_messages(
            &self,
            messages: &mut [OutputMessage],
            flags: i32,
            timeout_us: i64,
            cancellable: Option<&gio::Cancellable>,
        ) -> Result<usize, glib::Error> {
            if flags != 0 {
                return Err(error::io(
                    gio::IOErrorEnum::InvalidArgument,
                    "Send flags are not supported",
                ));
            }
            let obj = self.obj();
            let shared = obj.shared();
            if shared.is_closed() {
                return Err(closed_error());
            }
            let timeout = match timeout_us {
                t if t < 0 => None,
                t => Some(Duration::from_micros(t as u64)),
            };
            let mut buf = Vec::new();
            for (i, m) in messages.iter_mut().enumerate() {
                if m.has_control_messages() {
                    return Err(error::io(
                        gio::IOErrorEnum::NotSupported,
                        "Control messages are not supported",
                    ));
                }
                buf.clear();
                m.gather(&mut buf);
                let sent = shared.socket.send_message_with_timeout(
                    Some(&shared.address),
                    &[gio::OutputVector::new(&buf)],
                    &[],
                    0,
                    timeout,
                    cancellable,
                );
                match sent {
                    Ok((gio::PollableReturn::Ok, n)) => m.set_bytes_sent(n),
                    Ok(_) if i > 0 => return Ok(i),
                    Ok(_) => {
                        return Err(error::io(
                            gio::IOErrorEnum::WouldBlock,
                            "The socket's send buffer is full",
                        ))
                    }
                    Err(_) if i > 0 => return Ok(i),
                    Err(e) => return Err(e),
                }
            }
            Ok(messages.len())
        }

        fn create_source(
            &self,
            condition: glib::IOCondition,
            cancellable: Option<&gio::Cancellable>,
        ) -> glib::Source {
            new_source(&self.obj(), condition, cancellable)
        }

        fn condition_check(&self, condition: glib::IOCondition) -> glib::IOCondition {
            self.obj().shared().ready(condition)
        }

        fn condition_wait(
            &self,
            condition: glib::IOCondition,
            timeout_us: i64,
            cancellable: Option<&gio::Cancellable>,
        ) -> Result<(), glib::Error> {
            if wait_ready(&self.obj(), condition, timeout_us, cancellable)? {
                Ok(())
            } else {
                Err(error::io(
                    gio::IOErrorEnum::TimedOut,
                    "Socket I/O timed out",
                ))
            }
        }
    }
}

// SAFETY: the trampolines are for `imp::PeerSocket`, whose instances this
// interface is added to.
#[allow(unsafe_code)]
unsafe impl IsImplementable<imp::PeerSocket> for gio::DatagramBased {
    fn interface_init(iface: &mut glib::Interface<Self>) {
        crate::iface::datagram_based::init::<imp::PeerSocket>(iface.as_mut());
    }
}

// ---- the per-peer GSource ---------------------------------------------------

#[repr(C)]
struct PeerSource {
    source: GSource,
    /// A strong reference to the PeerSocket.
    obj: *mut glib::gobject_ffi::GObject,
    condition: glib::ffi::GIOCondition,
    /// Whether the source put itself on the peer's wake list (only read
    /// and written by the context that runs it).
    registered: gboolean,
}

/// # Safety
/// `source` is a live PeerSource.
#[allow(unsafe_code)]
unsafe fn peer_of(source: *mut GSource) -> glib::translate::Borrowed<PeerSocket> {
    // SAFETY: per the contract; `obj` holds a strong reference.
    unsafe {
        from_glib_borrow(
            (*(source as *mut PeerSource)).obj as *mut <PeerSocket as ObjectType>::GlibType,
        )
    }
}

#[allow(unsafe_code)]
unsafe extern "C" fn prepare(source: *mut GSource, timeout: *mut i32) -> gboolean {
    crate::iface::guard("peer source prepare", true, || {
        // SAFETY: GLib calls prepare with our live source, on the thread
        // that runs its context.
        let s = unsafe { &mut *(source as *mut PeerSource) };
        // SAFETY: as above.
        let peer = unsafe { peer_of(source) };
        if s.registered == 0 {
            s.registered = 1;
            // SAFETY: a new reference to our live source.
            peer.shared().register(unsafe { from_glib_none(source) });
        }
        // SAFETY: the condition we stored, a valid GIOCondition.
        let condition = unsafe { from_glib(s.condition) };
        let ready = !peer.shared().ready(condition).is_empty();
        // SAFETY: GLib passes a valid out-pointer.
        unsafe { *timeout = if ready { 0 } else { -1 } };
        ready
    })
    .into_glib()
}

#[allow(unsafe_code)]
unsafe extern "C" fn check(source: *mut GSource) -> gboolean {
    crate::iface::guard("peer source check", true, || {
        // SAFETY: our live source.
        let s = unsafe { &*(source as *mut PeerSource) };
        // SAFETY: as above.
        let peer = unsafe { peer_of(source) };
        // SAFETY: the condition we stored, a valid GIOCondition.
        let condition = unsafe { from_glib(s.condition) };
        !peer.shared().ready(condition).is_empty()
    })
    .into_glib()
}

#[allow(unsafe_code)]
unsafe extern "C" fn dispatch(
    source: *mut GSource,
    callback: GSourceFunc,
    user_data: gpointer,
) -> gboolean {
    // SAFETY: our live source, dispatched on its context's thread.
    unsafe { glib::ffi::g_source_set_ready_time(source, -1) };
    let Some(callback) = callback else {
        return glib::ffi::G_SOURCE_CONTINUE;
    };
    // SAFETY: callbacks of datagram sources are GDatagramBasedSourceFunc,
    // stored as GSourceFunc by g_source_set_callback.
    let func: gio::ffi::GDatagramBasedSourceFunc = unsafe { std::mem::transmute(callback) };
    let Some(func) = func else {
        return glib::ffi::G_SOURCE_REMOVE;
    };
    // SAFETY: our live source.
    let (obj, wanted) = unsafe {
        let s = &*(source as *mut PeerSource);
        (s.obj, s.condition)
    };
    let ready = crate::iface::guard("peer source dispatch", glib::IOCondition::empty(), || {
        // SAFETY: our live source.
        let peer = unsafe { peer_of(source) };
        // SAFETY: the condition we stored, a valid GIOCondition.
        peer.shared().ready(unsafe { from_glib(wanted) })
    });
    // Woken with nothing left (another reader took it): report what was
    // asked for; the operation then answers WOULD_BLOCK, as GIO allows.
    let reported = if ready.is_empty() {
        wanted
    } else {
        ready.into_glib()
    };
    // SAFETY: the application's callback with the object the source is on.
    unsafe { func(obj as *mut gio::ffi::GDatagramBased, reported, user_data) }
}

#[allow(unsafe_code)]
unsafe extern "C" fn finalize(source: *mut GSource) {
    // SAFETY: releases the reference taken in `new_source`; called once.
    unsafe { glib::gobject_ffi::g_object_unref((*(source as *mut PeerSource)).obj) };
}

static FUNCS: GSourceFuncs = GSourceFuncs {
    prepare: Some(prepare),
    check: Some(check),
    dispatch: Some(dispatch),
    finalize: Some(finalize),
    closure_callback: None,
    closure_marshal: None,
};

/// A new, unattached source for `condition` on `obj`.
#[allow(unsafe_code)]
fn new_source(
    obj: &PeerSocket,
    condition: glib::IOCondition,
    cancellable: Option<&gio::Cancellable>,
) -> glib::Source {
    // SAFETY: g_source_new allocates a zeroed struct of our size whose head
    // is the GSource; FUNCS is static. The reference to `obj` is released
    // in finalize; a child source is owned by the parent once added.
    unsafe {
        let raw = glib::ffi::g_source_new(
            &FUNCS as *const _ as *mut _,
            std::mem::size_of::<PeerSource>() as u32,
        );
        let s = &mut *(raw as *mut PeerSource);
        s.obj = glib::gobject_ffi::g_object_ref(obj.as_ptr() as *mut _) as *mut _;
        s.condition = condition.into_glib();
        s.registered = 0;
        glib::ffi::g_source_set_name(raw, c"DtlsOpensslPeerSocket".as_ptr());
        if let Some(c) = cancellable {
            let child = super::io::on_cancelled(c, || glib::ControlFlow::Continue);
            glib::ffi::g_source_add_child_source(raw, child.to_glib_none().0);
        }
        from_glib_full(raw)
    }
}
