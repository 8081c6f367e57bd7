//! The connection core shared by client and server: one [`Engine`], the
//! base socket, and the loops that move datagrams between them under GIO's
//! timeout and cancellation rules. No GObject here; verification and
//! properties live in the connection type, which drives this.
//!
//! Lock order: an operation lock (`read_op` / `write_op`) first, then
//! `engine`, `outgoing` briefly, never while waiting on the
//! socket or calling application code.
//!
//! The handshake is driven by one caller at a time, which holds a claim
//! ([`Driver`], or the async handshake's guard) that knows its owner: the
//! thread, whether it is asynchronous, and which application callback (if
//! any) runs now. Other threads wait for the outcome; the owner's own
//! thread fails at once (see [`reentry_error`]).

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::ThreadId;

use gio::prelude::*;
use std::time::{Duration, Instant};

use super::engine::{Engine, EngineError, HandshakeStatus, ReadStatus};
use super::io::{self, Woken};
use crate::error;

/// When a blocking operation gives up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deadline {
    /// Timeout 0: never block (`G_IO_ERROR_WOULD_BLOCK`).
    Now,
    /// Positive timeout (`G_IO_ERROR_TIMED_OUT`).
    At(Instant),
    /// Negative timeout: block until done.
    Never,
}

impl Deadline {
    /// From a GIO timeout in microseconds.
    pub fn from_timeout_us(timeout: i64) -> Deadline {
        match timeout {
            0 => Deadline::Now,
            t if t < 0 => Deadline::Never,
            t => Deadline::At(Instant::now() + Duration::from_micros(t as u64)),
        }
    }

    fn instant(self) -> Option<Instant> {
        match self {
            Deadline::At(t) => Some(t),
            _ => None,
        }
    }

    /// The error for giving up at this deadline.
    fn expired_error(self) -> glib::Error {
        match self {
            Deadline::Now => error::io(gio::IOErrorEnum::WouldBlock, "Operation would block"),
            _ => error::io(gio::IOErrorEnum::TimedOut, "Socket I/O timed out"),
        }
    }

    fn passed(self) -> bool {
        match self {
            Deadline::Now => true,
            Deadline::At(t) => Instant::now() >= t,
            Deadline::Never => false,
        }
    }
}

/// The sooner of two optional instants (`None` is never).
pub fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// What the handshake needs next.
#[derive(Debug)]
pub enum Step {
    /// OpenSSL's handshake is complete (the caller verifies the peer).
    Done,
    /// The server asked for a client certificate and none is set.
    WantCertificate,
    /// Wait for the base socket or the DTLS timer, then step again.
    Wait(Wait),
}

/// A condition on the base socket, and when to step anyway (DTLS timer).
#[derive(Debug, Clone, Copy)]
pub struct Wait {
    pub condition: glib::IOCondition,
    pub deadline: Option<Instant>,
}

/// One received record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    Data(usize),
    /// close_notify: no more data.
    Eof,
}

thread_local! {
    /// Each thread's buffer for datagrams from base sockets (see
    /// [`Core::pull_one`]).
    static RECEIVE_BUFFER: std::cell::Cell<Box<[u8]>> = std::cell::Cell::new(Box::default());
}

/// Datagrams pulled from the socket per call, so one busy peer cannot keep
/// an operation looping forever.
const MAX_PULL: usize = 64;

/// Maps an engine error to the GIO error the documentation promises.
pub fn engine_error(e: EngineError) -> glib::Error {
    use gio::IOErrorEnum as Io;
    match e {
        EngineError::Handshake(m) => error::tls(gio::TlsError::Handshake, format!("DTLS handshake failed: {m}")),
        EngineError::CertificateRequired(m) => error::tls(
            gio::TlsError::CertificateRequired,
            format!("DTLS handshake failed: {m}"),
        ),
        EngineError::NoCertificate(m) => error::tls(
            gio::TlsError::BadCertificate,
            format!("DTLS handshake failed: {m}"),
        ),
        EngineError::TimedOut(m) => error::io(Io::TimedOut, format!("DTLS handshake timed out: {m}")),
        EngineError::NotTls(m) => error::tls(gio::TlsError::NotTls, format!("DTLS handshake failed: {m}")),
        EngineError::Protocol(m) => error::tls(gio::TlsError::Misc, format!("DTLS protocol error: {m}")),
        EngineError::NotConnected => error::io(Io::WouldBlock, "The DTLS handshake is not complete"),
        EngineError::Closed => error::io(Io::Closed, "The DTLS connection is closed"),
        EngineError::MessageTooLarge { max } => error::io(
            Io::MessageTooLarge,
            format!("Message too large for one DTLS record at the current MTU (at most {max} bytes)"),
        ),
        EngineError::Truncated { needed } => error::io(
            Io::MessageTooLarge,
            format!(
                "Received a {needed}-byte datagram, larger than the buffers given; it was kept: receive again with a buffer of at least {needed} bytes"
            ),
        ),
        EngineError::Config(m) => error::io(Io::InvalidArgument, format!("Invalid DTLS configuration: {m}")),
    }
}

/// The longest wait taken to mean that the datagram was already there (a
/// `poll` that does not sleep returns within a few microseconds; one that
/// sleeps waits at least for the peer to answer).
const EARLY_WAIT: Duration = Duration::from_micros(5);

fn set_mtu_or_warn(engine: &mut Engine, mtu: u32) {
    if let Err(e) = engine.set_mtu(mtu) {
        glib::g_warning!(crate::LOG_DOMAIN, "could not set MTU {}: {}", mtu, e);
    }
}

pub struct Core {
    base: io::Base,
    engine: Mutex<Engine>,
    /// Datagrams taken from the engine that the base socket has not
    /// accepted yet, oldest first: the next batch handed to it (see
    /// [`Core::flush`]). Holds at most [`io::MAX_BATCH`].
    outgoing: Mutex<Vec<Vec<u8>>>,
    /// An MTU set from inside a handshake callback, applied when the engine
    /// is next locked ([`Core::set_mtu`]); 0: none.
    deferred_mtu: AtomicU32,
    /// The last blocking read on a plain GSocket found its datagram
    /// already queued (see [`Core::read`]).
    early: AtomicBool,
    /// Whether `outgoing` holds datagrams (kept by [`Core::flush`]), so a
    /// read that queued nothing skips the flush and its two locks.
    unsent: AtomicBool,
    /// Serialise operations per direction, as GIO expects.
    pub read_op: Mutex<()>,
    pub write_op: Mutex<()>,
    handshake: Arc<HandshakeSync>,
    /// The handshake's outcome is success: the data path's check, without
    /// the handshake state's lock.
    established: AtomicBool,
    /// Reusable wait for incoming datagrams (created on first use).
    waiter: Mutex<Option<io::Waiter>>,
    /// Whether sends to the base socket may be segmented.
    gso: super::gso::Gso,
    /// When the handshake gives up (`handshake-timeout`), from its start.
    handshake_deadline: Mutex<Option<(Instant, Duration)>>,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("handshake", &self.handshake)
            .finish_non_exhaustive()
    }
}

/// Who drives the handshake, and how it ended.
#[derive(Debug, Default)]
struct HandshakeState {
    driver: Option<Owner>,
    outcome: Option<Result<(), glib::Error>>,
}

/// The handshake state and the condition variable its waiters sleep on,
/// shared with cancellation handlers (which wake the waiters).
#[derive(Debug, Default)]
struct HandshakeSync {
    state: Mutex<HandshakeState>,
    changed: Condvar,
}

/// Who holds the right to drive the handshake.
///
/// A thread that finds the handshake driven by itself cannot wait for it:
/// it is either inside application code the handshake called (a signal
/// handler, a GTlsInteraction, a GTlsDatabase) or it is the thread whose
/// main context runs the asynchronous handshake. Either way waiting would
/// never end, so such a call fails at once (see [`reentry_error`]).
#[derive(Debug, Clone)]
struct Owner {
    thread: ThreadId,
    /// Driven by `g_dtls_connection_handshake_async`: the steps run from a
    /// main context, so the owner is the thread that ran the latest step.
    asynchronous: bool,
    /// The application code the handshake is running now, if any.
    callback: Option<&'static str>,
}

impl Owner {
    fn here(asynchronous: bool) -> Owner {
        Owner {
            thread: std::thread::current().id(),
            asynchronous,
            callback: None,
        }
    }

    fn is_here(&self) -> bool {
        self.thread == std::thread::current().id()
    }

    /// This thread is running application code for the handshake.
    fn in_callback_here(&self) -> bool {
        self.is_here() && self.callback.is_some()
    }
}

/// The error for an operation the handshake's own thread starts while the
/// handshake is in progress: `G_IO_ERROR_PENDING` for a blocking call (it
/// could only wait forever), `G_IO_ERROR_WOULD_BLOCK` for a non-blocking
/// one (its usual "not now": retry when the source fires).
fn reentry_error(owner: &Owner, deadline: Deadline) -> glib::Error {
    let message = match (owner.callback, owner.asynchronous) {
        (Some(callback), _) => format!(
            "Cannot use this DTLS connection from its own {callback} handler: \
             the handshake is in progress and continues when the handler returns"
        ),
        (None, true) => "Cannot block on this DTLS connection from the thread running its \
                         asynchronous handshake: the handshake is in progress; wait for \
                         g_dtls_connection_handshake_async to complete"
            .to_string(),
        (None, false) => "Cannot use this DTLS connection from code its own handshake \
                          called: the handshake is in progress"
            .to_string(),
    };
    match deadline {
        Deadline::Now => error::io(gio::IOErrorEnum::WouldBlock, message),
        _ => error::io(gio::IOErrorEnum::Pending, message),
    }
}

/// The right to drive the handshake. Released when dropped (the handshake
/// stays unfinished and another caller may drive it); [`Driver::finish`]
/// records the outcome instead.
pub struct Driver<'a>(&'a Core);

impl Drop for Driver<'_> {
    fn drop(&mut self) {
        self.0.release(None);
    }
}

impl Driver<'_> {
    /// Records the handshake's final result (errors are sticky).
    pub fn finish(self, result: Result<(), glib::Error>) -> Result<(), glib::Error> {
        self.0.release(Some(result.clone()));
        std::mem::forget(self);
        result
    }
}

/// Result of [`Core::try_claim`], for drivers that cannot hold a borrow
/// (the async handshake keeps its claim in a `'static` state machine and
/// releases it through [`Core::release`], from a guard of its own).
pub enum TryClaim {
    Finished(Result<(), glib::Error>),
    /// The caller now drives; it must call [`Core::release`].
    Claimed,
    /// Someone else drives.
    Busy,
}

/// Result of [`Core::claim_handshake`].
pub enum Claim<'a> {
    /// The handshake already ended this way.
    Finished(Result<(), glib::Error>),
    /// The caller drives it.
    Drive(Driver<'a>),
}

/// Marks the handshake as running application code on this thread (see
/// [`Core::calling`]); restores the previous mark when dropped.
pub struct Calling<'a> {
    core: &'a Core,
    previous: Option<&'static str>,
    marked: bool,
}

impl Drop for Calling<'_> {
    fn drop(&mut self) {
        if !self.marked {
            return;
        }
        let mut hs = self.core.handshake.state.lock().unwrap();
        if let Some(owner) = hs.driver.as_mut() {
            owner.callback = self.previous;
        }
    }
}

impl Core {
    pub fn new(base: gio::DatagramBased, engine: Engine) -> Core {
        Core {
            base: io::Base::new(base),
            engine: Mutex::new(engine),
            outgoing: Mutex::new(Vec::new()),
            unsent: AtomicBool::new(false),
            early: AtomicBool::new(true),
            deferred_mtu: AtomicU32::new(0),
            read_op: Mutex::new(()),
            write_op: Mutex::new(()),
            handshake: Arc::new(HandshakeSync::default()),
            established: AtomicBool::new(false),
            waiter: Mutex::new(None),
            gso: super::gso::Gso::new(),
            handshake_deadline: Mutex::new(None),
        }
    }

    /// Starts counting the handshake's time limit (once, before the first
    /// flight); `None`: no limit.
    pub fn start_handshake_clock(&self, limit: Option<Duration>) {
        *self.handshake_deadline.lock().unwrap() = limit.map(|l| (Instant::now() + l, l));
    }

    /// The handshake's time limit: when it passes, and the error then.
    fn handshake_limit(&self) -> Result<Option<Instant>, glib::Error> {
        match *self.handshake_deadline.lock().unwrap() {
            Some((at, limit)) if Instant::now() >= at => match self.engine().not_dtls_peer() {
                Some(why) => Err(engine_error(EngineError::NotTls(format!(
                    "{why}; gave up after {:.1} s (handshake-timeout)",
                    limit.as_secs_f64()
                )))),
                None => Err(error::io(
                    gio::IOErrorEnum::TimedOut,
                    format!(
                        "DTLS handshake timed out: not complete after {:.1} s (handshake-timeout)",
                        limit.as_secs_f64()
                    ),
                )),
            },
            d => Ok(d.map(|(at, _)| at)),
        }
    }

    pub fn base(&self) -> &gio::DatagramBased {
        self.base.get()
    }

    /// The base socket as the I/O layer sees it.
    pub fn io(&self) -> &io::Base {
        &self.base
    }

    pub fn engine(&self) -> MutexGuard<'_, Engine> {
        let mut engine = self.engine.lock().unwrap();
        if self.deferred_mtu.load(Ordering::Relaxed) != 0 {
            set_mtu_or_warn(&mut engine, self.deferred_mtu.swap(0, Ordering::Relaxed));
        }
        engine
    }

    /// Sets the engine's MTU (the `mtu` property); the largest payload now
    /// if the handshake is done. From a handler the handshake called, which
    /// may hold the engine's lock (`psk-lookup` runs inside OpenSSL's
    /// handshake step), the change waits for the engine's next lock, and
    /// the handshake's end computes the largest payload.
    pub fn set_mtu(&self, mtu: u32) -> Option<usize> {
        if self.in_callback_here() {
            self.deferred_mtu.store(mtu, Ordering::Relaxed);
            return None;
        }
        let mut engine = self.engine();
        set_mtu_or_warn(&mut engine, mtu);
        engine.is_handshake_done().then(|| engine.max_plaintext())
    }

    /// Whether this thread is inside application code the handshake called
    /// (see [`Core::calling`]). Such code must not lock the engine (a
    /// `psk-lookup` handler runs inside OpenSSL's handshake step, with the
    /// engine locked) and cannot wait for the connection to move.
    pub fn in_callback_here(&self) -> bool {
        // (Once established, the handshake calls nothing any more.)
        !self.established.load(Ordering::Acquire)
            && self
                .handshake
                .state
                .lock()
                .unwrap()
                .driver
                .as_ref()
                .is_some_and(Owner::in_callback_here)
    }

    /// The error for a call from application code the handshake called on
    /// this thread (see [`reentry_error`]), if that is where we are.
    pub fn reentered(&self, deadline: Deadline) -> Result<(), glib::Error> {
        let hs = self.handshake.state.lock().unwrap();
        match hs.driver.as_ref() {
            Some(o) if o.in_callback_here() => Err(reentry_error(o, deadline)),
            _ => Ok(()),
        }
    }

    /// The handshake's outcome, if it ended.
    pub fn handshake_outcome(&self) -> Option<Result<(), glib::Error>> {
        if self.established.load(Ordering::Acquire) {
            return Some(Ok(()));
        }
        self.handshake.state.lock().unwrap().outcome.clone()
    }

    /// Takes the right to drive the handshake asynchronously if it is free.
    pub fn try_claim(&self) -> TryClaim {
        let mut hs = self.handshake.state.lock().unwrap();
        if let Some(outcome) = &hs.outcome {
            return TryClaim::Finished(outcome.clone());
        }
        if hs.driver.is_some() {
            return TryClaim::Busy;
        }
        hs.driver = Some(Owner::here(true));
        TryClaim::Claimed
    }

    /// Gives up driving, recording the outcome if the handshake ended.
    pub fn release(&self, outcome: Option<Result<(), glib::Error>>) {
        let mut hs = self.handshake.state.lock().unwrap();
        hs.driver = None;
        if outcome.is_some() {
            self.established
                .store(matches!(outcome, Some(Ok(()))), Ordering::Release);
            hs.outcome = outcome;
        }
        self.handshake.changed.notify_all();
    }

    /// The asynchronous driver runs a step on this thread.
    pub fn drive_here(&self) {
        let mut hs = self.handshake.state.lock().unwrap();
        if let Some(owner) = hs.driver.as_mut().filter(|o| o.asynchronous) {
            owner.thread = std::thread::current().id();
        }
    }

    /// Call around application code the handshake runs (`what` names it in
    /// the error a re-entrant call gets). Holds no lock: the mark lives in
    /// the handshake state, the guard only restores it.
    pub fn calling(&self, what: &'static str) -> Calling<'_> {
        let mut hs = self.handshake.state.lock().unwrap();
        let mut calling = Calling {
            core: self,
            previous: None,
            marked: false,
        };
        if let Some(owner) = hs.driver.as_mut() {
            if owner.asynchronous {
                owner.thread = std::thread::current().id();
            }
            if owner.is_here() {
                calling.previous = owner.callback.replace(what);
                calling.marked = true;
            }
        }
        calling
    }

    /// Takes the right to drive the handshake, or waits (until `deadline`,
    /// or until `cancellable` is cancelled) for the thread that has it. A
    /// thread that already drives it gets an error at once (re-entry from
    /// the handshake's own callbacks).
    pub fn claim_handshake(
        &self,
        deadline: Deadline,
        cancellable: Option<&gio::Cancellable>,
    ) -> Result<Claim<'_>, glib::Error> {
        // Cancelling wakes the waiters; the handler takes the state lock, so
        // a cancellation between our check and our wait is not lost.
        let wake = cancellable.and_then(|c| {
            let sync = self.handshake.clone();
            c.connect_cancelled(move |_| {
                let _hs = sync.state.lock().unwrap();
                sync.changed.notify_all();
            })
        });
        let result = self.claim_or_wait(deadline, cancellable);
        if let (Some(c), Some(id)) = (cancellable, wake) {
            c.disconnect_cancelled(id);
        }
        result
    }

    fn claim_or_wait(
        &self,
        deadline: Deadline,
        cancellable: Option<&gio::Cancellable>,
    ) -> Result<Claim<'_>, glib::Error> {
        let mut hs = self.handshake.state.lock().unwrap();
        loop {
            if let Some(outcome) = &hs.outcome {
                return Ok(Claim::Finished(outcome.clone()));
            }
            match &hs.driver {
                None => {
                    hs.driver = Some(Owner::here(false));
                    return Ok(Claim::Drive(Driver(self)));
                }
                Some(owner) if owner.is_here() => return Err(reentry_error(owner, deadline)),
                Some(_) => {}
            }
            if let Some(c) = cancellable {
                c.set_error_if_cancelled()?;
            }
            let changed = &self.handshake.changed;
            match deadline {
                Deadline::Now => return Err(deadline.expired_error()),
                Deadline::Never => hs = changed.wait(hs).unwrap(),
                Deadline::At(t) => {
                    let left = t.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(deadline.expired_error());
                    }
                    hs = changed.wait_timeout(hs, left).unwrap().0;
                }
            }
        }
    }

    /// Sends queued datagrams without blocking, up to [`io::MAX_BATCH`]
    /// per base-socket call (one `sendmmsg` on a GSocket); false if the
    /// socket would block with some left.
    pub fn flush(&self) -> Result<bool, glib::Error> {
        let mut batch = self.outgoing.lock().unwrap();
        let r = self.flush_batch(&mut batch);
        self.unsent.store(!batch.is_empty(), Ordering::Release);
        r
    }

    fn flush_batch(&self, batch: &mut Vec<Vec<u8>>) -> Result<bool, glib::Error> {
        let mut engine = self.engine();
        loop {
            while batch.len() < io::MAX_BATCH {
                match engine.pop_datagram() {
                    Some(d) => batch.push(d),
                    None => break,
                }
            }
            drop(engine);
            if batch.is_empty() {
                return Ok(true);
            }
            let sent = match io::try_send_batch(&self.base, batch, &self.gso) {
                Ok(0) => return Ok(false),
                Ok(n) => n,
                Err(e) => {
                    // The datagram the socket failed on is dropped (as a
                    // lossy network would), so it cannot wedge the queue.
                    batch.remove(0);
                    return Err(e);
                }
            };
            // One lock to give the buffers back and take what came since.
            engine = self.engine();
            for d in batch.drain(..sent) {
                engine.recycle(d);
            }
        }
    }

    /// Whether a datagram is waiting for the socket to accept it.
    pub fn has_unsent(&self) -> bool {
        !self.outgoing.lock().unwrap().is_empty() || self.engine().has_outgoing()
    }

    /// Flushes, waiting for the socket as `deadline` allows.
    fn flush_blocking(
        &self,
        deadline: Deadline,
        cancellable: Option<&gio::Cancellable>,
    ) -> Result<(), glib::Error> {
        while !self.flush()? {
            if deadline.passed() {
                return Err(deadline.expired_error());
            }
            io::wait(
                &self.base,
                glib::IOCondition::OUT,
                deadline.instant(),
                cancellable,
            )?;
        }
        Ok(())
    }

    /// Moves datagrams waiting on the socket into the engine, without
    /// blocking. Returns how many.
    pub fn pull(&self) -> Result<usize, glib::Error> {
        let mut n = 0;
        while n < MAX_PULL && self.pull_one()? {
            n += 1;
        }
        Ok(n)
    }

    /// Runs the DTLS timer if it expired (retransmits the last flight).
    /// Returns when it will next expire.
    fn run_timer(&self) -> Result<Option<Instant>, glib::Error> {
        let mut engine = self.engine();
        match engine.timeout() {
            Some(left) if left.is_zero() => {
                crate::debug!("{:p}: DTLS retransmission timer expired", self);
                let resent = engine.handle_timeout().map_err(engine_error)?;
                let next = engine.timeout();
                if resent {
                    crate::debug!(
                        "{:p}: retransmitted the last flight; next timeout in {:?}",
                        self,
                        next.unwrap_or_default()
                    );
                }
                Ok(next.map(|t| Instant::now() + t))
            }
            Some(left) => Ok(Some(Instant::now() + left)),
            None => Ok(None),
        }
    }

    /// Advances the handshake as far as possible without blocking.
    pub fn handshake_step(&self) -> Result<Step, glib::Error> {
        let limit = self.handshake_limit()?;
        loop {
            if !self.flush()? {
                return Ok(Step::Wait(Wait {
                    condition: glib::IOCondition::OUT,
                    deadline: limit,
                }));
            }
            self.pull()?;
            let status = self.engine().handshake();
            // Even a failure may have queued an alert for the peer.
            let flushed = self.flush();
            let status = status.map_err(engine_error)?;
            if !flushed? {
                return Ok(Step::Wait(Wait {
                    condition: glib::IOCondition::OUT,
                    deadline: limit,
                }));
            }
            match status {
                HandshakeStatus::Done => return Ok(Step::Done),
                HandshakeStatus::WantCertificate => return Ok(Step::WantCertificate),
                HandshakeStatus::WantRead => {
                    let timer = self.run_timer()?;
                    if self.has_unsent() || self.pull()? > 0 {
                        continue;
                    }
                    return Ok(Step::Wait(Wait {
                        condition: glib::IOCondition::IN,
                        deadline: earliest(timer, limit),
                    }));
                }
            }
        }
    }

    /// Drives the handshake to completion, blocking as `deadline` allows.
    /// Returns `WantCertificate` to the caller, which resolves it and calls
    /// again.
    pub fn handshake_blocking(
        &self,
        deadline: Deadline,
        cancellable: Option<&gio::Cancellable>,
    ) -> Result<Step, glib::Error> {
        loop {
            if let Some(c) = cancellable {
                c.set_error_if_cancelled()?;
            }
            match self.handshake_step()? {
                Step::Wait(w) => self.wait(w, deadline, cancellable)?,
                done => return Ok(done),
            }
        }
    }

    /// Waits for `w`, bounded by `deadline` (whose expiry is an error).
    fn wait(
        &self,
        w: Wait,
        deadline: Deadline,
        cancellable: Option<&gio::Cancellable>,
    ) -> Result<(), glib::Error> {
        if deadline.passed() {
            return Err(deadline.expired_error());
        }
        let until = earliest(w.deadline, deadline.instant());
        let woken = self.wait_base(w.condition, until, cancellable)?;
        if woken == Woken::Deadline && deadline.passed() {
            return Err(deadline.expired_error());
        }
        Ok(())
    }

    /// Waits on the base socket: for `G_IO_IN` through the reusable waiter
    /// when no other thread is using it.
    fn wait_base(
        &self,
        condition: glib::IOCondition,
        until: Option<Instant>,
        cancellable: Option<&gio::Cancellable>,
    ) -> Result<Woken, glib::Error> {
        // A GSocket is polled directly (no context, no source to keep).
        if condition == glib::IOCondition::IN && !self.base.polls_directly() {
            if let Ok(mut slot) = self.waiter.try_lock() {
                let waiter = slot.get_or_insert_with(|| io::Waiter::new(self.base.get()));
                return waiter.wait_in(until, cancellable);
            }
        }
        io::wait(&self.base, condition, until, cancellable)
    }

    /// Moves at most one waiting datagram into the engine; whether it did.
    fn pull_one(&self) -> Result<bool, glib::Error> {
        // The receive buffer is the thread's, not the connection's: a
        // 64 KiB buffer per connection was most of an idle connection's
        // memory. Moved out while in use, so a base socket that receives on
        // another connection from inside this call gets a buffer of its own.
        let mut buf = RECEIVE_BUFFER.take();
        if buf.is_empty() {
            buf = vec![0; io::MAX_DATAGRAM].into_boxed_slice();
        }
        let got = io::try_receive(&self.base, &mut buf);
        if let Ok(Some(len)) = got {
            self.engine().push_datagram(&buf[..len]);
        }
        RECEIVE_BUFFER.set(buf);
        Ok(got?.is_some())
    }

    /// Receives one record into `buf`.
    pub fn read(
        &self,
        buf: &mut [u8],
        deadline: Deadline,
        cancellable: Option<&gio::Cancellable>,
    ) -> Result<Received, glib::Error> {
        // A blocking read on a GSocket of GIO's own class tries the socket
        // before waiting when the previous one found its datagram already
        // there ([`Core::early`]): then a `recv` alone does, as in a
        // request/response exchange on one machine whose answer is often
        // queued by the time the request's send returns. When answers come
        // later (a network between the peers), it waits first and spares
        // the failed `recv`. On other bases a failed non-blocking receive
        // costs a GError, so a blocking read always waits first (the wait
        // returns at once if a datagram is queued).
        let mut learning = deadline != Deadline::Now && self.base.polls_directly();
        let mut try_first =
            deadline == Deadline::Now || (learning && self.early.load(Ordering::Relaxed));
        loop {
            if let Some(c) = cancellable {
                c.set_error_if_cancelled()?;
            }
            let (status, queued, timer_running) = {
                let mut engine = self.engine();
                let status = engine.read_record(buf);
                // After the handshake the timer may still be running (our
                // last flight, until the peer shows it got it).
                let running =
                    matches!(status, Ok(ReadStatus::WantRead)) && engine.timeout().is_some();
                (status, engine.has_outgoing(), running)
            };
            if queued || self.unsent.load(Ordering::Acquire) {
                self.flush()?;
            }
            match status.map_err(engine_error)? {
                ReadStatus::Data(n) => return Ok(Received::Data(n)),
                ReadStatus::Closed => return Ok(Received::Eof),
                ReadStatus::WantRead => {}
            }
            let timer = if timer_running {
                self.run_timer()?
            } else {
                None
            };
            if try_first {
                let got = self.pull_one()?;
                if learning {
                    self.early.store(got, Ordering::Relaxed);
                    learning = false;
                }
                if got {
                    continue;
                }
            }
            if deadline.passed() {
                return Err(deadline.expired_error());
            }
            let started = learning.then(Instant::now);
            self.wait(
                Wait {
                    condition: glib::IOCondition::IN,
                    deadline: timer,
                },
                deadline,
                cancellable,
            )?;
            if let Some(t) = started {
                // A wait this short did not sleep: a try would have found
                // the datagram.
                self.early
                    .store(t.elapsed() < EARLY_WAIT, Ordering::Relaxed);
                learning = false;
            }
            // The socket is most likely readable now: take the datagram
            // before asking the engine again (one SSL_read per record).
            self.pull_one()?;
            try_first = true;
        }
    }

    /// Sends one record. With `Deadline::Now` a record the socket refused
    /// stays queued and goes out with the next operation.
    pub fn write(
        &self,
        data: &[u8],
        deadline: Deadline,
        cancellable: Option<&gio::Cancellable>,
    ) -> Result<(), glib::Error> {
        if let Some(c) = cancellable {
            c.set_error_if_cancelled()?;
        }
        // Nothing is consumed while earlier datagrams are still stuck.
        self.flush_blocking(deadline, cancellable)?;
        self.engine().write_record(data).map_err(engine_error)?;
        match deadline {
            Deadline::Now => self.flush().map(|_| ()),
            _ => self.flush_blocking(deadline, cancellable),
        }
    }

    /// Sends the records `record` makes (`record(i, engine)` encrypts
    /// message `i` with `engine.write_record`), up to [`io::MAX_BATCH`] per
    /// base-socket call. Returns how many were sent; an error after at
    /// least one is that count (GIO's rule for send_messages). A record
    /// counts as sent once encrypted and queued: with `Deadline::Now` one
    /// the socket refused goes out with the next operation, as in
    /// [`Core::write`], and the call stops there.
    pub fn write_many(
        &self,
        count: usize,
        deadline: Deadline,
        cancellable: Option<&gio::Cancellable>,
        mut record: impl FnMut(usize, &mut Engine) -> Result<(), glib::Error>,
    ) -> Result<usize, glib::Error> {
        if let Some(c) = cancellable {
            c.set_error_if_cancelled()?;
        }
        let partial = |done: usize, e: glib::Error| if done > 0 { Ok(done) } else { Err(e) };
        let mut done = 0;
        while done < count {
            let end = count.min(done + io::MAX_BATCH);
            let mut failed = None;
            {
                let mut engine = self.engine();
                if done == 0 && (engine.has_outgoing() || self.unsent.load(Ordering::Acquire)) {
                    // Nothing is consumed while earlier datagrams are
                    // still stuck.
                    drop(engine);
                    self.flush_blocking(deadline, cancellable)?;
                    engine = self.engine();
                }
                while done < end {
                    if let Err(e) = record(done, &mut engine) {
                        failed = Some(e);
                        break;
                    }
                    done += 1;
                }
            }
            let flushed = match deadline {
                Deadline::Now => self.flush(),
                _ => self.flush_blocking(deadline, cancellable).map(|_| true),
            };
            if let Some(e) = failed {
                return partial(done, e);
            }
            match flushed {
                Ok(true) => {}
                Ok(false) => return Ok(done),
                Err(e) => return partial(done, e),
            }
        }
        Ok(done)
    }

    /// Queues close_notify and sends it.
    pub fn close_notify(&self, cancellable: Option<&gio::Cancellable>) -> Result<(), glib::Error> {
        let r = self.engine().shutdown();
        r.map_err(engine_error)?;
        self.flush_blocking(Deadline::Never, cancellable)
    }
}
